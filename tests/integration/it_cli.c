/*
 * The daemon's command line, without servers: help and version, `check`
 * with good and bad configurations (exit 2 naming the key or file), and
 * `run` against a NATS URL nobody listens on: it says so (the URL's password
 * hidden), keeps retrying without spinning, and stops promptly on SIGTERM.
 * Secrets never appear in what `check` prints.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define RUN_TIMEOUT_MS 15000

/* Runs natka with up to four arguments; returns the exit status. */
static int natka_cmd(it_test *t, const char *tag, const char *a1,
                     const char *a2, const char *a3, const char *a4, char **out,
                     char **err) {
  char *argv[] = {t->natka_bin, (char *)a1, (char *)a2,
                  (char *)a3,   (char *)a4, NULL};
  int rc = it_run(t, tag, argv, RUN_TIMEOUT_MS, out, err);
  it_log(t, "natka %s %s %s %s: exit %d", a1, a2 ? a2 : "", a3 ? a3 : "",
         a4 ? a4 : "", rc);
  return rc;
}

/* The output file `name` of a run in the temp dir must not hold `secret`. */
static void expect_no(it_test *t, const char *name, const char *secret) {
  char path[PATH_MAX + 64];
  snprintf(path, sizeof(path), "%s/%s", t->tmpdir, name);
  char *text = it_read_file(path, NULL);
  if (text != NULL && strstr(text, secret) != NULL)
    IT_FAIL(t, "%s shows the secret: %s", path, text);
  free(text);
}

/* `natka check -c <config>` must exit 2 with `needle` on stderr. */
static void expect_bad(it_test *t, const char *tag, const char *config_text,
                       const char *needle) {
  char name[64], path[PATH_MAX], *err = NULL;
  snprintf(name, sizeof(name), "%s.conf", tag);
  it_write_file(t, name, path, "%s", config_text);
  int rc = natka_cmd(t, tag, "check", "-c", path, NULL, NULL, &err);
  if (rc != 2)
    IT_FAIL(t, "%s: exit %d, expected 2; stderr: %s", tag, rc, err);
  IT_CHECK_HAS(t, err, needle);
  it_log(t, "  stderr: %.*s", (int)strcspn(err, "\n"), err);
  free(err);
}

static void help_and_version(it_test *t) {
  char *out = NULL;
  IT_CHECK_INT(t, natka_cmd(t, "help", "--help", NULL, NULL, NULL, &out, NULL),
               ==, 0);
  IT_CHECK_HAS(t, out, "run");
  IT_CHECK_HAS(t, out, "check");
  free(out);
  IT_CHECK_INT(
      t, natka_cmd(t, "version", "--version", NULL, NULL, NULL, &out, NULL), ==,
      0);
  IT_CHECK(t, strncmp(out, "natka ", 6) == 0 && out[6] >= '0' && out[6] <= '9');
  free(out);
  IT_CHECK_INT(
      t, natka_cmd(t, "nocmd", "frobnicate", NULL, NULL, NULL, NULL, NULL), ==,
      2);
}

static void check_configs(it_test *t, const char *good_rule) {
  char path[PATH_MAX], text[PATH_MAX + 256], *err = NULL;

  it_write_file(t, "good.conf", path,
                "return { kafka = { brokers = \"127.0.0.1:9092\" },\n"
                "  rules = { files = { \"%s\" } } }\n",
                good_rule);
  int rc = natka_cmd(t, "good", "check", "-c", path, NULL, NULL, &err);
  if (rc != 0)
    IT_FAIL(t, "check of a good config: exit %d; stderr: %s", rc, err);
  free(err);

  expect_bad(t, "unknown", "return { kafka = { lingr_ms = 5 } }\n",
             "kafka.lingr_ms");
  expect_bad(t, "type", "return { kafka = { linger_ms = \"soon\" } }\n",
             "kafka.linger_ms");
  expect_bad(t, "range", "return { jetstream = { max_ack_pending = 0 } }\n",
             "jetstream.max_ack_pending");

  /* A misspelt key, its value a password: named, the value never shown. */
  expect_bad(t, "typo",
             "return { kafka = { brokers = \"127.0.0.1:9092\",\n"
             "  properties = { [\"sasl.pasword\"] = \"Pw-typo-1234\" } } }\n",
             "sasl.pasword");
  expect_no(t, "typo.err", "Pw-typo-1234");
  expect_bad(t, "secret", "return { nats = { password = \"Pw-literal\" } }\n",
             "'nats.password' must say where the secret is");
  expect_no(t, "secret.err", "Pw-literal");
  expect_bad(t, "nocafile",
             "return { kafka = { brokers = \"embedded\" },\n"
             "  nats = { tls = { ca_file = \"/no/such/ca.pem\" } } }\n",
             "'nats.tls.ca_file': cannot read '/no/such/ca.pem'");

  /* No default cluster: a forgotten kafka.brokers must not "deliver" into
   * the in-process mock. */
  expect_bad(t, "nobrokers", "return { jetstream = { stream = \"E\" } }\n",
             "kafka.brokers is not set");

  char broken[PATH_MAX];
  it_write_file(t, "broken_rule.lua", broken,
                "return { route = function(ev) return ( end }\n");
  snprintf(text, sizeof(text),
           "return { kafka = { brokers = \"embedded\" },\n"
           "  rules = { files = { \"%s\" } } }\n",
           broken);
  expect_bad(t, "syntax", text, "broken_rule.lua");
  snprintf(text, sizeof(text),
           "return { kafka = { brokers = \"embedded\" },\n"
           "  rules = { files = { \"%s/%s\" } } }\n",
           t->tmpdir, "missing_rule.lua");
  expect_bad(t, "missing", text, "missing_rule.lua");

  rc = natka_cmd(t, "set", "check", "-s", "kafka.lingr_ms=5", NULL, NULL, &err);
  IT_CHECK_INT(t, rc, ==, 2);
  IT_CHECK_HAS(t, err, "kafka.lingr_ms");
  free(err);

  snprintf(text, sizeof(text), "%s/no/such/natka.conf", t->tmpdir);
  rc = natka_cmd(t, "noconf", "run", "-c", text, NULL, NULL, &err);
  IT_CHECK_INT(t, rc, ==, 2);
  IT_CHECK_HAS(t, err, "natka.conf");
  free(err);
}

/* `run` against a port nobody listens on. */
static void unreachable_nats(it_test *t, const char *good_rule) {
  char config[PATH_MAX];
  it_proc natka;
  int port = it_free_port(t);
  it_write_file(
      t, "unreachable.conf", config,
      "return {\n"
      "  nats = { url = \"nats://natka:Pw-in-url-99@127.0.0.1:%d\" },\n"
      "  kafka = { brokers = \"embedded\" },\n"
      "  rules = { files = { \"%s\" } },\n"
      "}\n",
      port, good_rule);
  int64_t start = it_now_ms();
  it_natka_start(t, &natka, config, "unreachable.log");
  if (it_wait_log(&natka, "cannot connect", 3000) != 0)
    IT_FAIL(t, "no \"cannot connect\" line within 3 s (exit status %d)",
            it_wait(&natka, 0));
  it_log(t, "\"cannot connect\" logged after %lld ms",
         (long long)(it_now_ms() - start));
  char want[128];
  snprintf(want, sizeof(want),
           "cannot connect to nats://natka:***@127.0.0.1:%d", port);
  if (it_wait_log(&natka, want, 1000) != 0)
    IT_FAIL(t, "the log does not name the server as %s", want);
  it_sleep_ms(start + 3000 - it_now_ms());
  if (it_wait(&natka, 0) >= 0)
    IT_FAIL(t, "natka exited with %d while NATS was unreachable", natka.status);
  int64_t cpu = it_cpu_ms(natka.pid);
  it_log(t, "CPU time after 3 s: %lld ms", (long long)cpu);
  IT_CHECK_INT(t, cpu, >=, 0);
  IT_CHECK_INT(t, cpu, <, 1000);
  IT_CHECK_INT(t, it_natka_stop(t, &natka, 5000), ==, 0);
  t->natka = NULL;
  expect_no(t, "unreachable.log", "Pw-in-url-99");
}

int main(int argc, char **argv) {
  it_test t;
  char rule[PATH_MAX];
  it_init(&t, "cli", argc, argv, 0);
  it_write_file(&t, "good_rule.lua", rule,
                "return { route = function(ev) return nil end }\n");
  help_and_version(&t);
  check_configs(&t, rule);
  unreachable_nats(&t, rule);
  return it_pass(&t);
}
