/*
 * `natka rules` against a real nats-server, in a bucket of its own: push
 * (a good module, one whose self-test fails, one that does not compile, a
 * dry run, a second version, a second module), rollback, --delete, status
 * with a report the test writes itself, and `test` offline over
 * examples/events/sample.jsonl and over a malformed file. An unreachable
 * NATS fails with exit 1 at once. Every check compares the exact output.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define RUN_TIMEOUT_MS 20000
#define MAX_ARGS 32

/* snprintf into an array, failing the test rather than cutting text. */
#define FMT(t, buf, ...)                                                       \
  do {                                                                         \
    if ((size_t)snprintf((buf), sizeof(buf), __VA_ARGS__) >= sizeof(buf))      \
      IT_FAIL((t), "%s: text too long", #buf);                                 \
  } while (0)

typedef struct ctx {
  it_test *t;
  it_js js;
  char bucket[128], status_bucket[128];
  char url_opt[300], status_opt[200];
} ctx;

static const char good_v1[] =
    "return {\n"
    "  route = function(ev) if ev.kind == \"x\" then return \"x1\" end end,\n"
    "  tests = { { name = \"x\", event = { kind = \"x\" }, expect = { \"x1\" } "
    "} },\n"
    "}\n";
static const char good_v2[] =
    "return {\n"
    "  route = function(ev) if ev.kind == \"x\" then return \"x2\" end end,\n"
    "  tests = { { name = \"x\", event = { kind = \"x\" }, expect = { \"x2\" } "
    "} },\n"
    "}\n";
static const char failing[] =
    "return {\n"
    "  route = function(ev) return \"y\" end,\n"
    "  tests = { { name = \"wants z\", event = { kind = \"x\" }, expect = { "
    "\"z\" } } },\n"
    "}\n";
static const char broken[] = "return {\n"
                             "  route = function(ev) return ( end,\n"
                             "}\n";
static const char extra[] = "return { route = function(ev) return nil end }\n";
static const char flags[] =
    "return {\n"
    "  dedup = function(ev) return ev:header(\"idem\") end,\n"
    "  degrade = function(ev, switches)\n"
    "    if ev.kind == \"bulk\" then return { \"hold\", reason = \"paused\" } "
    "end\n"
    "    if switches.mode == \"drain\" then\n"
    "      return { \"dual\", subject = \"backup.\" .. ev.kind }\n"
    "    end\n"
    "  end,\n"
    "  route = function(ev) if ev.kind == \"bad\" then return 42 end end,\n"
    "}\n";

/* natka rules SUB <common options> ARGS... (NULL-terminated); returns the
 * exit status with stdout and stderr. */
static int vrules(ctx *c, const char *tag, char **out, char **err,
                  const char *sub, va_list ap) {
  char *argv[MAX_ARGS];
  int n = 0;
  argv[n++] = c->t->natka_bin;
  argv[n++] = "rules";
  argv[n++] = (char *)sub;
  argv[n++] = "-s";
  argv[n++] = c->url_opt;
  argv[n++] = "--bucket";
  argv[n++] = c->bucket;
  argv[n++] = "-s";
  argv[n++] = c->status_opt;
  for (const char *a; (a = va_arg(ap, const char *)) != NULL;) {
    if (n + 1 >= MAX_ARGS)
      IT_FAIL(c->t, "%s: too many arguments", tag);
    argv[n++] = (char *)a;
  }
  argv[n] = NULL;
  int rc = it_run(c->t, tag, argv, RUN_TIMEOUT_MS, out, err);
  it_log(c->t, "natka rules %s (%s): exit %d", sub, tag, rc);
  return rc;
}

/* Runs natka rules SUB ARGS... and checks its exit status and both
 * outputs exactly. */
static void expect(ctx *c, const char *tag, int want_rc, const char *want_out,
                   const char *want_err, const char *sub, ...) {
  char *out = NULL, *err = NULL;
  va_list ap;
  va_start(ap, sub);
  int rc = vrules(c, tag, &out, &err, sub, ap);
  va_end(ap);
  if (rc != want_rc)
    IT_FAIL(c->t, "%s: exit %d, expected %d; stdout:\n%s\nstderr:\n%s", tag, rc,
            want_rc, out, err);
  IT_CHECK_STR(c->t, out, want_out);
  IT_CHECK_STR(c->t, err, want_err);
  free(out);
  free(err);
}

/* The value of key in the rules bucket, or NULL when it has none. */
static char *kv_value(ctx *c, const char *key) {
  kvStore *kv = NULL;
  kvEntry *e = NULL;
  char *v = NULL;
  natsStatus st = js_KeyValue(&kv, c->js.js, c->bucket);
  if (st == NATS_OK)
    st = kvStore_Get(&e, kv, key);
  if (st == NATS_OK)
    v = strndup(kvEntry_ValueString(e), (size_t)kvEntry_ValueLen(e));
  else if (st != NATS_NOT_FOUND)
    IT_FAIL(c->t, "kv get %s/%s: %s", c->bucket, key, natsStatus_GetText(st));
  kvEntry_Destroy(e);
  kvStore_Destroy(kv);
  return v;
}

static void check_value(ctx *c, const char *key, const char *want) {
  char *v = kv_value(c, key);
  if (want == NULL && v != NULL)
    IT_FAIL(c->t, "%s holds \"%s\", expected no value", key, v);
  if (want != NULL)
    IT_CHECK_STR(c->t, v, want);
  free(v);
}

static uint64_t bucket_revision(ctx *c) {
  char stream[200];
  jsStreamInfo *si = NULL;
  FMT(c->t, stream, "KV_%s", c->bucket);
  natsStatus st = js_GetStreamInfo(&si, c->js.js, stream, NULL, NULL);
  if (st != NATS_OK)
    IT_FAIL(c->t, "stream info %s: %s", stream, natsStatus_GetText(st));
  uint64_t rev = si->State.LastSeq;
  jsStreamInfo_Destroy(si);
  return rev;
}

/* A NATS nobody listens on: exit 1 naming the URL, without waiting, and
 * without the password the URL carries. */
static void unreachable(ctx *c, const char *good) {
  char url[64], opt[80], want[200], *out = NULL, *err = NULL;
  int port = it_free_port(c->t);
  FMT(c->t, url, "nats://natka:***@127.0.0.1:%d", port);
  FMT(c->t, opt, "nats.url=nats://natka:Pw-in-the-url@127.0.0.1:%d", port);
  char *argv[] = {c->t->natka_bin, "rules", "push", "-s", opt,
                  (char *)good,    NULL};
  int64_t start = it_now_ms();
  int rc = it_run(c->t, "unreachable", argv, RUN_TIMEOUT_MS, &out, &err);
  int64_t took = it_now_ms() - start;
  it_log(c->t, "unreachable NATS: exit %d after %lld ms", rc, (long long)took);
  IT_CHECK_INT(c->t, rc, ==, 1);
  IT_CHECK_INT(c->t, took, <, 3000);
  FMT(c->t, want,
      "rules push: cannot connect to %s: No server available for "
      "connection\n",
      url);
  IT_CHECK_STR(c->t, out, "");
  IT_CHECK_STR(c->t, err, want);
  free(out);
  free(err);
}

static void push_and_rollback(ctx *c) {
  it_test *t = c->t;
  char good[PATH_MAX], bad_test[PATH_MAX], syntax[PATH_MAX], more[PATH_MAX];
  char want[PATH_MAX + 512];

  it_write_file(t, "good.lua", good, "%s", good_v1);
  expect(c, "push-good", 0, "pushed good at revision 1\nrevision 1\n", "",
         "push", good, NULL);
  check_value(c, "good", good_v1);

  it_write_file(t, "failing.lua", bad_test, "%s", failing);
  expect(c, "push-failing", 2, "",
         "rules push: module 'failing': test 'wants z': expected {z}, got "
         "{y}\n",
         "push", bad_test, NULL);
  IT_CHECK_INT(t, bucket_revision(c), ==, 1);
  check_value(c, "failing", NULL);

  it_write_file(t, "broken.lua", syntax, "%s", broken);
  FMT(t, want,
      "rules push: module 'broken': %s:2: unexpected symbol near "
      "'end'\n",
      syntax);
  expect(c, "push-syntax", 2, "", want, "push", syntax, NULL);
  IT_CHECK_INT(t, bucket_revision(c), ==, 1);

  it_write_file(t, "good.lua", NULL, "%s", good_v2);
  expect(c, "push-dry", 0,
         "would push good\n"
         "dry run: the resulting 1 module(s) pass their self-tests; nothing "
         "written\n",
         "", "push", "--dry-run", good, NULL);
  IT_CHECK_INT(t, bucket_revision(c), ==, 1);
  check_value(c, "good", good_v1);

  expect(c, "push-v2", 0, "pushed good at revision 2\nrevision 2\n", "", "push",
         good, NULL);
  check_value(c, "good", good_v2);
  it_write_file(t, "extra.lua", more, "%s", extra);
  expect(c, "push-extra", 0, "pushed extra at revision 3\nrevision 3\n", "",
         "push", more, NULL);

  expect(c, "rollback", 0,
         "deleted extra\n"
         "restored good at revision 5\n"
         "rolled back to revision 1 as revision 5\n",
         "", "rollback", "1", NULL);
  check_value(c, "good", good_v1);
  check_value(c, "extra", NULL);
  expect(c, "rollback-again", 0, "nothing to change\n", "", "rollback", "1",
         NULL);
  FMT(t, want,
      "rules rollback: revision 99 does not exist: bucket %s is at "
      "revision 5\n",
      c->bucket);
  expect(c, "rollback-future", 2, "", want, "rollback", "99", NULL);

  expect(c, "delete", 0, "deleted good\nrevision 6\n", "", "push", "--delete",
         "good", NULL);
  check_value(c, "good", NULL);
  FMT(t, want, "rules push: --delete good: no module 'good' in bucket %s\n",
      c->bucket);
  expect(c, "delete-again", 2, "", want, "push", "--delete", "good", NULL);
  IT_CHECK_INT(t, bucket_revision(c), ==, 6);
}

static void offline_test(ctx *c) {
  it_test *t = c->t;
  char poison[PATH_MAX], by_kind[PATH_MAX], sample[PATH_MAX], want[4096];
  char rules[PATH_MAX], events[PATH_MAX], malformed[PATH_MAX];
  FMT(t, poison, "%s/examples/rules/fail_on_poison.lua", t->repo);
  FMT(t, by_kind, "%s/examples/rules/route_by_kind.lua", t->repo);
  FMT(t, sample, "%s/examples/events/sample.jsonl", t->repo);
  FMT(t, want,
      "1 e-1: dedup=- degrade=- route=orders\n"
      "2 e-2: dedup=- degrade=- route=payments\n"
      "3 e-3: dedup=- degrade=- route=payments\n"
      "4 e-4: dedup=- degrade=- route=audit,archive\n"
      "5 e-5: dedup=- degrade=- route=drop\n"
      "6 e-6: dedup=- degrade=- route=users.signup\n"
      "7 e-7: dedup=- degrade=- route=error: rule 'fail_on_poison': "
      "%s:12: poison pill in event e-7\n",
      poison);
  expect(c, "test-sample", 0, want, "", "test", poison, by_kind, "--events",
         sample, NULL);

  it_write_file(t, "flags.lua", rules, "%s", flags);
  it_write_file(t, "flags.jsonl", events,
                "{\"id\": \"f-1\", \"kind\": \"orders\", \"headers\": "
                "[[\"idem\", \"k-1\"]]}\n"
                "\n"
                "{\"kind\": \"bulk\", \"ts\": 1700000000000}\n"
                "{\"kind\": \"bad\", \"data\": {\"n\": 1}}\n");
  expect(c, "test-flags", 0,
         "1 f-1: dedup=k-1 degrade=dual backup.orders route=orders\n"
         "3 bulk: dedup=- degrade=hold paused route=bulk\n"
         "4 bad: dedup=- degrade=dual backup.bad route=error: rule 'flags': "
         "route returned a number; expected a topic, a destination table, a "
         "list or natka.drop\n",
         "", "test", rules, "--events", events, "--switch", "mode=drain", NULL);
  expect(c, "test-json", 0,
         "{\"line\":1,\"id\":\"f-1\",\"kind\":\"orders\",\"dedup\":{\"key\":"
         "\"k-1\",\"rule\":\"flags\"},\"degrade\":null,\"route\":{\"dests\":"
         "[{\"topic\":\"orders\"}],\"rule\":null}}\n"
         "{\"line\":3,\"id\":null,\"kind\":\"bulk\",\"dedup\":null,"
         "\"degrade\":{\"verdict\":\"hold\",\"reason\":\"paused\",\"rule\":"
         "\"flags\"},\"route\":{\"dests\":[{\"topic\":\"bulk\"}],\"rule\":"
         "null}}\n"
         "{\"line\":4,\"id\":null,\"kind\":\"bad\",\"dedup\":null,"
         "\"degrade\":null,\"route\":{\"error\":\"rule 'flags': route "
         "returned a number; expected a topic, a destination table, a list "
         "or natka.drop\",\"rule\":\"flags\"}}\n",
         "", "test", rules, "--events", events, "--json", NULL);

  it_write_file(t, "malformed.jsonl", malformed,
                "{\"id\": \"m-1\", \"kind\": \"orders.created\"}\n"
                "{\"id\": \"m-2\", \"kind\": }\n");
  FMT(t, want, "rules test: %s:2: invalid JSON (near column 23)\n", malformed);
  expect(c, "test-malformed", 2, "", want, "test", by_kind, "--events",
         malformed, NULL);
}

static void status(ctx *c) {
  kvStore *kv = NULL;
  kvConfig kc;
  char want[1024];
  static const char report[] =
      "{\"instance\":\"it-host-a\",\"bucket\":\"b\",\"state\":\"active\","
      "\"revision\":5,\"modules\":[\"extra\",\"good\"],\"last_rejection\":"
      "{\"revision\":4,\"reason\":\"module 'good': test 'x': expected {a}, "
      "got {b}\\nstack traceback\",\"at\":\"2025-01-01T00:00:00Z\"},"
      "\"stats\":{\"events_in\":3},\"updated\":\"2025-01-01T00:00:10Z\"}";

  FMT(c->t, want, "no natka has reported yet (status bucket %s)\n",
      c->status_bucket);
  expect(c, "status-empty", 0, want, "", "status", NULL);

  kvConfig_Init(&kc);
  kc.Bucket = c->status_bucket;
  kc.History = 1;
  natsStatus st = js_CreateKeyValue(&kv, c->js.js, &kc);
  if (st == NATS_OK)
    st = kvStore_PutString(NULL, kv, "it-host-a", report);
  if (st == NATS_OK)
    st = kvStore_PutString(NULL, kv, "it-host-b",
                           "{\"instance\":\"it-host-b\",\"state\":\"waiting "
                           "for rules\",\"revision\":null,\"modules\":[],"
                           "\"last_rejection\":null,\"updated\":"
                           "\"2025-01-01T00:00:11Z\"}");
  kvStore_Destroy(kv);
  if (st != NATS_OK)
    IT_FAIL(c->t, "cannot write the status reports: %s",
            natsStatus_GetText(st));

  expect(c, "status", 0,
         "INSTANCE   STATE              REVISION  MODULES     LAST REJECTION"
         "                                     UPDATED\n"
         "it-host-a  active             5         extra,good  4: module "
         "'good': test 'x': expected {a}, got {b}  2025-01-01T00:00:10Z\n"
         "it-host-b  waiting for rules  -         -           -            "
         "                                      2025-01-01T00:00:11Z\n",
         "", "status", NULL);
  FMT(c->t, want,
      "[\n  %s,\n  {\"instance\":\"it-host-b\",\"state\":\"waiting for "
      "rules\",\"revision\":null,\"modules\":[],\"last_rejection\":null,"
      "\"updated\":\"2025-01-01T00:00:11Z\"}\n]\n",
      report);
  expect(c, "status-json", 0, want, "", "status", "--json", NULL);
}

int main(int argc, char **argv) {
  it_test t;
  ctx c = {.t = &t};
  char good[PATH_MAX];
  it_init(&t, "rules_cli", argc, argv, 1);
  snprintf(c.bucket, sizeof(c.bucket), "%s_rules", t.uniq);
  snprintf(c.status_bucket, sizeof(c.status_bucket), "%s_status", t.uniq);
  snprintf(c.url_opt, sizeof(c.url_opt), "nats.url=%s", t.nats_url);
  snprintf(c.status_opt, sizeof(c.status_opt), "rules.status_bucket=%s",
           c.status_bucket);
  it_js_connect(&t, &c.js);

  it_write_file(&t, "good.lua", good, "%s", good_v1);
  unreachable(&c, good);
  push_and_rollback(&c);
  offline_test(&c);
  status(&c);

  it_js_close(&c.js);
  return it_pass(&t);
}
