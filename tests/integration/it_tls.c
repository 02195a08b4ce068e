/*
 * Transport security and credentials, against servers that demand them:
 * `scripts/servers start --secure` on free ports in this test's temp dir
 * (stopped at the end, and on failure), apart from the shared plain pair.
 *
 *   flow      JetStream -> Kafka with TLS, a client certificate and a
 *             password (read from a file) on NATS, SASL_SSL on Kafka (the
 *             password from the environment): every event arrives once
 *   nkey      an NKey seed on NATS, mutual TLS on Kafka (protocol ssl)
 *   creds     a credentials file (JWT + seed) on a server in operator mode,
 *             core NATS subjects
 *   refused   a CA that did not sign the server, an expired server and an
 *             expired client certificate, a wrong name, a wrong password:
 *             `natka rules status` exits 1 at once naming the server and
 *             the reason; the daemon says why (NATS or Kafka) and retries,
 *             as documented, and stops promptly on SIGTERM
 *   secrets   no password appears in any log or output of the test
 *
 * SCRAM is not exercised: Kafka 4 refuses it from librdkafka before 2.6.1
 * and Debian's is 2.0.2; the broker takes PLAIN on the same SASL_SSL
 * listener (natka's configuration is the same but for the mechanism).
 */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define START_MS 60000 /* the first transactions on a fresh broker */
#define FLOW_EVENTS 200
#define KAFKA_PW_ENV "NATKA_IT_KAFKA_PASSWORD"

/* snprintf that stops the test rather than cut a path or a setting. */
static void put(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void put(char *buf, size_t len, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, len, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= len) {
    fprintf(stderr, "FAIL it_tls: text too long: %.80s...\n", buf);
    exit(1);
  }
}

typedef struct tls_ctx {
  it_test *t;
  char pki[PATH_MAX];
  char nats_url[256], op_url[256], expired_url[256];
  char kafka_sasl[128], kafka_ssl[128];
  char nats_pw[128], kafka_pw[128];
  const char *client_creds; /* the test's own client: creds, or password */
  char conf_a[PATH_MAX];    /* the flow's configuration */
} tls_ctx;

static void read_secret(tls_ctx *x, const char *name, char *out, size_t len) {
  char path[PATH_MAX + 32];
  put(path, sizeof(path), "%s/%s", x->pki, name);
  char *text = it_read_file(path, NULL);
  IT_CHECK(x->t, text != NULL);
  text[strcspn(text, "\r\n")] = '\0';
  put(out, len, "%s", text);
  free(text);
}

static void stop_servers(it_test *t, void *data) {
  (void)data;
  it_servers(t, "stop");
}

static void start_servers(tls_ctx *x) {
  it_test *t = x->t;
  char script[PATH_MAX + 32];
  put(t->servers_dir, sizeof(t->servers_dir), "%s/servers", t->tmpdir);
  put(script, sizeof(script), "%s/scripts/servers", t->repo);
  char *argv[] = {script, "start", "--secure", "--dir", t->servers_dir, NULL};
  t->on_fail = stop_servers;
  int64_t t0 = it_now_ms();
  int rc = it_run(t, "servers-start", argv, 240000, NULL, NULL);
  if (rc != 0)
    IT_FAIL(t, "scripts/servers start --secure exited %d (see %s)", rc,
            t->servers_dir);
  it_log(t, "secured servers up in %lld ms", (long long)(it_now_ms() - t0));
  it_load_env(t, "PKI", x->pki, sizeof(x->pki));
  it_load_env(t, "NATS_URL", x->nats_url, sizeof(x->nats_url));
  it_load_env(t, "NATS_OP_URL", x->op_url, sizeof(x->op_url));
  it_load_env(t, "NATS_EXPIRED_URL", x->expired_url, sizeof(x->expired_url));
  it_load_env(t, "KAFKA_BROKERS", x->kafka_sasl, sizeof(x->kafka_sasl));
  it_load_env(t, "KAFKA_SSL_BROKERS", x->kafka_ssl, sizeof(x->kafka_ssl));
  /* The test's own Kafka clients read through the PLAINTEXT listener. */
  it_load_env(t, "KAFKA_PLAIN_BROKERS", t->kafka_brokers,
              sizeof(t->kafka_brokers));
  read_secret(x, "nats-password", x->nats_pw, sizeof(x->nats_pw));
  read_secret(x, "kafka-password", x->kafka_pw, sizeof(x->kafka_pw));
  setenv(KAFKA_PW_ENV, x->kafka_pw, 1); /* natka's children inherit it */
}

/* The test's own NATS client: TLS with its certificate, then a password
 * or the credentials file. */
static natsStatus secure_client(natsOptions *o, void *data) {
  tls_ctx *x = data;
  char ca[PATH_MAX + 16], cert[PATH_MAX + 16], key[PATH_MAX + 16];
  put(ca, sizeof(ca), "%s/ca.pem", x->pki);
  put(cert, sizeof(cert), "%s/client.pem", x->pki);
  put(key, sizeof(key), "%s/client-key.pem", x->pki);
  natsStatus st = natsOptions_SetSecure(o, true);
  if (st == NATS_OK)
    st = natsOptions_LoadCATrustedCertificates(o, ca);
  if (st == NATS_OK)
    st = natsOptions_LoadCertificatesChain(o, cert, key);
  if (st == NATS_OK && x->client_creds != NULL)
    st = natsOptions_SetUserCredentialsFromFiles(o, x->client_creds, NULL);
  else if (st == NATS_OK)
    st = natsOptions_SetUserInfo(o, "natka", x->nats_pw);
  return st;
}

/* nats = { url, tls files (client certificate `client`), <login> } */
static void nats_part(tls_ctx *x, char *out, size_t len, const char *url,
                      const char *client, const char *login) {
  put(out, len,
      "url = \"%s\", tls = { ca_file = \"%s/ca.pem\", cert_file = "
      "\"%s/%s.pem\", key_file = \"%s/%s-key.pem\" }, %s",
      url, x->pki, x->pki, client, x->pki, client, login);
}

static void kafka_sasl_part(tls_ctx *x, char *out, size_t len,
                            const char *password) {
  put(out, len,
      "brokers = \"%s\", security = { protocol = \"sasl_ssl\" }, "
      "sasl = { mechanism = \"PLAIN\", username = \"natka\", password = "
      "\"%s\" }, tls = { ca_file = \"%s/ca.pem\" }",
      x->kafka_sasl, password, x->pki);
}

/* A configuration `name` in the temp dir: one natka instance `tag`
 * consuming `source` (a Lua table body) into the topic "tls-<tag>". */
static void write_conf(tls_ctx *x, const char *name, char *path,
                       const char *nats, const char *kafka, const char *tag,
                       const char *source) {
  it_write_file(x->t, name, path,
                "return {\n"
                "  nats = { name = \"natka-%s\", %s },\n"
                "  kafka = { %s, transactional_id = \"%s-%s\" },\n"
                "  %s,\n"
                "  rules = { bucket = \"\" }, switches = { bucket = \"\" },\n"
                "  route = { default_topic = \"tls-%s\" },\n"
                "}\n",
                tag, nats, kafka, x->t->uniq, tag, source, tag);
}

static void password_login(tls_ctx *x, char *out, size_t len) {
  put(out, len, "user = \"natka\", password = \"file:%s/nats-password\"",
      x->pki);
}

/* Runs `natka check -c conf`: exit 0. */
static void check_ok(tls_ctx *x, const char *tag, const char *conf) {
  const char *args[] = {"check", "-c", conf, NULL};
  char *out = NULL, *err = NULL;
  int rc = it_natka_cmd(x->t, tag, args, 30000, &out, &err);
  if (rc != 0)
    IT_FAIL(x->t, "natka check %s: exit %d: %s", conf, rc, err);
  free(out);
  free(err);
}

static void start_and_wait(tls_ctx *x, it_proc *p, const char *conf,
                           const char *log, const char *ready) {
  it_natka_start(x->t, p, conf, log);
  if (it_wait_log(p, ready, START_MS) != 0)
    IT_FAIL(x->t, "no \"%s\" in %s within %d ms", ready, log, START_MS);
}

static size_t read_topic(tls_ctx *x, const char *topic, size_t want,
                         it_records *rs) {
  const char *topics[] = {topic};
  return it_kafka_collect(x->t, topics, 1, want, 60000, rs);
}

static void flow(tls_ctx *x) {
  it_test *t = x->t;
  char nats[1024], kafka[1024], login[512], source[256], line[256];
  password_login(x, login, sizeof(login));
  nats_part(x, nats, sizeof(nats), x->nats_url, "client", login);
  kafka_sasl_part(x, kafka, sizeof(kafka), "env:" KAFKA_PW_ENV);
  put(source, sizeof(source),
      "jetstream = { stream = \"TLSFLOW\", subjects = { \"tlsflow.>\" } }");
  write_conf(x, "flow.conf", x->conf_a, nats, kafka, "flow", source);
  check_ok(x, "check-flow", x->conf_a);

  it_proc natka;
  start_and_wait(x, &natka, x->conf_a, "flow.log", "jetstream: consuming");
  put(line, sizeof(line), "jetstream: connected to %s", x->nats_url);
  IT_CHECK(t, it_wait_log(&natka, line, 1000) == 0);

  it_js js;
  it_js_connect_with(t, &js, secure_client, x); /* TLS, mTLS, password */
  for (int i = 0; i < FLOW_EVENTS; i++) {
    char data[32];
    put(data, sizeof(data), "event-%d", i);
    it_js_publish(t, &js, "tlsflow.x", NULL, 0, data, strlen(data));
  }
  it_js_publish_wait(t, &js, 30000);
  it_js_wait_settled(t, &js, "TLSFLOW", "natka", 60000);
  it_js_close(&js);

  it_records rs = {0};
  size_t n = read_topic(x, "tls-flow", FLOW_EVENTS, &rs);
  IT_CHECK_INT(t, n, ==, FLOW_EVENTS);
  char *seen = calloc(FLOW_EVENTS, 1);
  IT_CHECK(t, seen != NULL);
  for (size_t i = 0; i < rs.n; i++) {
    int k = -1;
    IT_CHECK(t, rs.v[i].value != NULL &&
                    sscanf(rs.v[i].value, "event-%d", &k) == 1 && k >= 0 &&
                    k < FLOW_EVENTS && !seen[k]);
    seen[k] = 1;
  }
  free(seen);
  it_records_free(&rs);
  IT_CHECK_INT(t, it_natka_stop(t, &natka, 30000), ==, 0);
  t->natka = NULL;
  it_log(t, "flow: %d events over TLS + mTLS + password to SASL_SSL, once",
         FLOW_EVENTS);
}

static void nkey_and_kafka_mtls(tls_ctx *x) {
  it_test *t = x->t;
  char nats[1024], kafka[1024], login[512], conf[PATH_MAX];
  put(login, sizeof(login), "nkey_seed_file = \"%s/user.nk\"", x->pki);
  nats_part(x, nats, sizeof(nats), x->nats_url, "client", login);
  put(kafka, sizeof(kafka),
      "brokers = \"%s\", security = { protocol = \"ssl\" }, tls = { "
      "ca_file = \"%s/ca.pem\", cert_file = \"%s/client.pem\", key_file "
      "= \"%s/client-key.pem\" }",
      x->kafka_ssl, x->pki, x->pki, x->pki);
  write_conf(x, "nkey.conf", conf, nats, kafka, "nkey",
             "jetstream = { stream = \"TLSNKEY\", subjects = { \"tlsnkey.>\" } "
             "}");
  it_proc natka;
  start_and_wait(x, &natka, conf, "nkey.log", "jetstream: consuming");
  it_js js;
  it_js_connect_with(t, &js, secure_client, x);
  for (int i = 0; i < 10; i++)
    it_js_publish(t, &js, "tlsnkey.x", NULL, 0, "nkey", 4);
  it_js_publish_wait(t, &js, 30000);
  it_js_close(&js);
  it_records rs = {0};
  IT_CHECK_INT(t, read_topic(x, "tls-nkey", 10, &rs), ==, 10);
  it_records_free(&rs);
  IT_CHECK_INT(t, it_natka_stop(t, &natka, 30000), ==, 0);
  t->natka = NULL;
  it_log(t, "nkey: NKey login on NATS, mutual TLS on Kafka");
}

static void creds(tls_ctx *x) {
  it_test *t = x->t;
  char nats[1024], kafka[1024], login[512], conf[PATH_MAX], creds[PATH_MAX];
  char line[320];
  put(creds, sizeof(creds), "%s/natka.creds", x->pki);
  put(login, sizeof(login), "creds_file = \"%s\"", creds);
  nats_part(x, nats, sizeof(nats), x->op_url, "client", login);
  kafka_sasl_part(x, kafka, sizeof(kafka), "env:" KAFKA_PW_ENV);
  /* Core NATS subjects: the operator-mode server runs no JetStream. */
  it_write_file(t, "creds.conf", conf,
                "return {\n"
                "  nats = { name = \"natka-creds\", subjects = { "
                "\"tlscore.>\" }, %s },\n"
                "  kafka = { %s, transactional_id = \"%s-creds\" },\n"
                "  jetstream = { enabled = false },\n"
                "  rules = { bucket = \"\" }, switches = { bucket = \"\" },\n"
                "  route = { default_topic = \"tls-creds\" },\n"
                "}\n",
                nats, kafka, t->uniq);
  it_proc natka;
  put(line, sizeof(line), "nats: connected to %s", x->op_url);
  start_and_wait(x, &natka, conf, "creds.log", line);

  it_js js;
  char main_url[sizeof(t->nats_url)];
  put(main_url, sizeof(main_url), "%s", t->nats_url);
  put(t->nats_url, sizeof(t->nats_url), "%s", x->op_url);
  x->client_creds = creds;
  it_js_connect_with(t, &js, secure_client, x);
  x->client_creds = NULL;
  put(t->nats_url, sizeof(t->nats_url), "%s", main_url);
  /* Core NATS is at most once and natka's subscription may reach the
   * server a moment after the line above: publish until one arrives. */
  size_t got = 0;
  for (int i = 0; i < 40 && got == 0; i++) {
    IT_CHECK(t, natsConnection_PublishString(js.nc, "tlscore.x", "creds") ==
                    NATS_OK);
    IT_CHECK(t, natsConnection_FlushTimeout(js.nc, 5000) == NATS_OK);
    it_records rs = {0};
    const char *topics[] = {"tls-creds"};
    if (i > 0) /* the topic exists once the first event went out */
      got = it_kafka_collect(t, topics, 1, 1, 500, &rs);
    else
      it_sleep_ms(500);
    it_records_free(&rs);
  }
  it_js_close(&js);
  IT_CHECK_INT(t, got, >=, 1);
  IT_CHECK_INT(t, it_natka_stop(t, &natka, 30000), ==, 0);
  t->natka = NULL;
  it_log(t, "creds: JWT login on an operator-mode server");
}

/* `natka rules status -c <flow config> -s <override>...` must exit 1 at
 * once, naming the server and with `why` on stderr. */
static void refused_cli(tls_ctx *x, const char *tag, const char *url,
                        const char *const *sets, const char *why) {
  it_test *t = x->t;
  const char *args[16] = {"rules", "status", "-c", x->conf_a};
  size_t n = 4;
  for (size_t i = 0; sets[i] != NULL && n < 14; i++) {
    args[n++] = "-s";
    args[n++] = sets[i];
  }
  args[n] = NULL;
  char *out = NULL, *err = NULL, want[320];
  int64_t t0 = it_now_ms();
  int rc = it_natka_cmd(t, tag, args, 30000, &out, &err);
  int64_t took = it_now_ms() - t0;
  it_log(t, "%s: exit %d after %lld ms: %.*s", tag, rc, (long long)took,
         (int)strcspn(err, "\n"), err);
  IT_CHECK_INT(t, rc, ==, 1);
  IT_CHECK_INT(t, took, <, 10000);
  put(want, sizeof(want), "rules status: cannot connect to %s: ", url);
  IT_CHECK_HAS(t, err, want);
  IT_CHECK_HAS(t, err, why);
  free(out);
  free(err);
}

static void refused_commands(tls_ctx *x) {
  char other_ca[PATH_MAX + 48], url[300], cert[PATH_MAX + 48],
      key[PATH_MAX + 48], pw[PATH_MAX + 48], wrong[PATH_MAX];
  put(other_ca, sizeof(other_ca), "nats.tls.ca_file=%s/other-ca.pem", x->pki);
  refused_cli(x, "wrong-ca", x->nats_url, (const char *[]){other_ca, NULL},
              "SSL handshake error");
  put(url, sizeof(url), "nats.url=%s", x->expired_url);
  refused_cli(x, "expired-server", x->expired_url, (const char *[]){url, NULL},
              "certificate has expired");
  put(cert, sizeof(cert), "nats.tls.cert_file=%s/expired-client.pem", x->pki);
  put(key, sizeof(key), "nats.tls.key_file=%s/expired-client-key.pem", x->pki);
  refused_cli(x, "expired-client", x->nats_url,
              (const char *[]){cert, key, NULL},
              "refused the client certificate");
  refused_cli(x, "wrong-name", x->nats_url,
              (const char *[]){"nats.tls.server_name=wrong.example", NULL},
              "hostname mismatch");
  it_write_file(x->t, "wrong-nats-password", wrong, "Wrong-nats-pw-77\n");
  put(pw, sizeof(pw), "nats.password=file:%s", wrong);
  refused_cli(x, "wrong-password", x->nats_url, (const char *[]){pw, NULL},
              "Authorization Violation");
}

/* The daemon keeps running and retrying after `needle`, then stops
 * promptly on SIGTERM. */
static void refused_daemon(tls_ctx *x, const char *tag, const char *conf,
                           const char *needle) {
  it_test *t = x->t;
  char log[64];
  it_proc natka;
  put(log, sizeof(log), "%s.log", tag);
  int64_t t0 = it_now_ms();
  start_and_wait(x, &natka, conf, log, needle);
  it_log(t, "%s: \"%s\" after %lld ms", tag, needle,
         (long long)(it_now_ms() - t0));
  it_sleep_ms(1500);
  if (it_wait(&natka, 0) >= 0)
    IT_FAIL(t, "%s: natka exited with %d instead of retrying", tag,
            natka.status);
  int rc = it_natka_stop(t, &natka, 15000);
  IT_CHECK(t, rc == 0 || rc == 1);
  t->natka = NULL;
}

static void refused_daemons(tls_ctx *x) {
  char nats[1024], kafka[1024], login[512], conf[PATH_MAX], wrong[PATH_MAX];
  char needle[320];
  const char *source = "jetstream = { stream = \"TLSFLOW\", subjects = { "
                       "\"tlsflow.>\" } }";
  password_login(x, login, sizeof(login));

  /* NATS: a CA that did not sign the server. */
  nats_part(x, nats, sizeof(nats), x->nats_url, "client", login);
  char *ca = strstr(nats, "/ca.pem");
  IT_CHECK(x->t, ca != NULL);
  char swapped[1100];
  put(swapped, sizeof(swapped), "%.*s/other-ca.pem%s", (int)(ca - nats), nats,
      ca + strlen("/ca.pem"));
  kafka_sasl_part(x, kafka, sizeof(kafka), "env:" KAFKA_PW_ENV);
  write_conf(x, "nats-wrong-ca.conf", conf, swapped, kafka, "wrongca", source);
  put(needle, sizeof(needle),
      "jetstream: cannot connect to %s: SSL handshake error", x->nats_url);
  refused_daemon(x, "nats-wrong-ca", conf, needle);

  /* Kafka: a wrong password, then a CA that did not sign the broker. */
  nats_part(x, nats, sizeof(nats), x->nats_url, "client", login);
  it_write_file(x->t, "wrong-kafka-password", wrong, "Wrong-kafka-pw-88\n");
  char ref[PATH_MAX + 8];
  put(ref, sizeof(ref), "file:%s", wrong);
  kafka_sasl_part(x, kafka, sizeof(kafka), ref);
  write_conf(x, "kafka-wrong-password.conf", conf, nats, kafka, "wrongpw",
             source);
  refused_daemon(x, "kafka-wrong-password", conf,
                 "Authentication failed: Invalid username or password");

  kafka_sasl_part(x, kafka, sizeof(kafka), "env:" KAFKA_PW_ENV);
  ca = strstr(kafka, "/ca.pem");
  IT_CHECK(x->t, ca != NULL);
  put(swapped, sizeof(swapped), "%.*s/other-ca.pem%s", (int)(ca - kafka), kafka,
      ca + strlen("/ca.pem"));
  write_conf(x, "kafka-wrong-ca.conf", conf, nats, swapped, "kafkaca", source);
  refused_daemon(x, "kafka-wrong-ca", conf, "certificate verify failed");
}

/* Every log, output and configuration the test wrote: no password. */
static void no_secret_anywhere(tls_ctx *x) {
  it_test *t = x->t;
  const char *secrets[] = {x->nats_pw, x->kafka_pw, "Wrong-nats-pw-77",
                           "Wrong-kafka-pw-88"};
  DIR *d = opendir(t->tmpdir);
  struct dirent *e;
  int files = 0;
  IT_CHECK(t, d != NULL);
  while ((e = readdir(d)) != NULL) {
    char path[PATH_MAX + 300];
    if (e->d_name[0] == '.' || strncmp(e->d_name, "wrong-", 6) == 0 ||
        strcmp(e->d_name, "servers") == 0)
      continue; /* the secrets themselves */
    put(path, sizeof(path), "%s/%s", t->tmpdir, e->d_name);
    char *text = it_read_file(path, NULL);
    for (size_t i = 0; text != NULL && i < 4; i++)
      if (strstr(text, secrets[i]) != NULL)
        IT_FAIL(t, "%s holds a password (%zu)", path, i);
    files += text != NULL;
    free(text);
  }
  closedir(d);
  it_log(t, "secrets: none in %d logs, outputs and configurations", files);
}

int main(int argc, char **argv) {
  it_test t;
  tls_ctx x = {.t = &t};
  it_init(&t, "tls", argc, argv, 0);
  start_servers(&x);
  flow(&x);
  nkey_and_kafka_mtls(&x);
  creds(&x);
  refused_commands(&x);
  refused_daemons(&x);
  no_secret_anywhere(&x);
  stop_servers(&t, NULL);
  t.on_fail = NULL;
  return it_pass(&t);
}
