/*
 * The NATS side: the core NATS source (nats.subjects, at most once) delivers
 * alongside JetStream, and nats-server going away mid-stream is survived:
 * natka logs it, neither exits nor spins while the server is down, reconnects
 * when it is back, and every JetStream event still arrives.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"

#define JS_BATCH 500 /* JetStream events published before and after */
#define N_JS (2 * JS_BATCH)
#define N_CORE 50
#define DOWN_MS 3000

typedef struct state {
  char stream[96], subject[128], core_subject[128], durable[96], topic[128];
  int nats_down;
  unsigned char js_seen[N_JS + 1];
  unsigned char core_seen[N_CORE + 1];
  size_t js_distinct, core_distinct;
} state;

static void bring_nats_back(it_test *t, void *data) {
  state *s = data;
  if (s->nats_down && it_servers(t, "nats-start") == 0)
    s->nats_down = 0;
}

static int count_record(it_test *t, const it_record *r, void *data) {
  state *s = data;
  const char *id = it_record_hstr(r, "ce_id");
  if (id != NULL && strncmp(id, "js-", 3) == 0) {
    int i = atoi(id + 3);
    IT_CHECK(t, i >= 1 && i <= N_JS);
    if (s->js_seen[i]++ == 0)
      s->js_distinct++;
  } else if (r->value != NULL && strncmp(r->value, "core ", 5) == 0) {
    int i = atoi(r->value + 5);
    IT_CHECK(t, i >= 1 && i <= N_CORE);
    IT_CHECK_STR(t, it_record_hstr(r, "ce_type"), s->core_subject);
    if (s->core_seen[i]++ == 0)
      s->core_distinct++;
  } else {
    IT_FAIL(t, "unexpected record in %s", r->topic);
  }
  return s->js_distinct == N_JS && s->core_distinct == N_CORE;
}

static void publish_js(it_test *t, state *s, it_js *js, int first, int last) {
  char id[32], data[64];
  for (int i = first; i <= last; i++) {
    snprintf(id, sizeof(id), "js-%d", i);
    int len = snprintf(data, sizeof(data), "jetstream event %d", i);
    it_hdr h[] = {{"Nats-Msg-Id", id}};
    it_js_publish(t, js, s->subject, h, 1, data, (size_t)len);
  }
  it_js_publish_wait(t, js, 30000);
}

static int still_running(it_proc *p) {
  int status;
  return waitpid(p->pid, &status, WNOHANG) == 0;
}

int main(int argc, char **argv) {
  it_test t;
  it_js js;
  it_proc natka;
  state *s = calloc(1, sizeof(*s));
  char rule[PATH_MAX], config[PATH_MAX], data[64];

  it_init(&t, "nats", argc, argv, 1);
  IT_CHECK(&t, s != NULL);
  snprintf(s->stream, sizeof(s->stream), "%s", t.uniq);
  snprintf(s->subject, sizeof(s->subject), "%s.js", t.uniq);
  snprintf(s->core_subject, sizeof(s->core_subject), "%s.core", t.uniq);
  snprintf(s->durable, sizeof(s->durable), "%s_d", t.uniq);
  snprintf(s->topic, sizeof(s->topic), "%s_all", t.uniq);
  t.on_fail = bring_nats_back;
  t.on_fail_data = s;

  it_write_file(&t, "route.lua", rule,
                "return { route = function(ev) return \"%s\" end }\n",
                s->topic);
  it_write_file(&t, "natka.conf", config,
                "return {\n"
                "  nats = { url = \"%s\", subjects = { \"%s\" },\n"
                "           reconnect_wait_ms = 200 },\n"
                "  kafka = { brokers = \"%s\" },\n"
                "  jetstream = { stream = \"%s\", subjects = { \"%s\" },\n"
                "    durable = \"%s\", ack_wait_ms = 10000 },\n"
                "  rules = { files = { \"%s\" } },\n"
                "  dlq = { topic = \"%s_dlq\" },\n"
                "}\n",
                t.nats_url, s->core_subject, t.kafka_brokers, s->stream,
                s->subject, s->durable, rule, t.uniq);

  it_natka_start(&t, &natka, config, "natka.log");
  IT_CHECK_INT(&t, it_wait_log(&natka, "nats: connected", 15000), ==, 0);
  IT_CHECK_INT(&t, it_wait_log(&natka, "jetstream: consuming", 15000), ==, 0);
  it_js_connect(&t, &js);

  /* Core NATS: at most once, but delivered while everything is up. */
  for (int i = 1; i <= N_CORE; i++) {
    int len = snprintf(data, sizeof(data), "core %d", i);
    IT_CHECK(&t, natsConnection_Publish(js.nc, s->core_subject, data, len) ==
                     NATS_OK);
  }
  IT_CHECK(&t, natsConnection_FlushTimeout(js.nc, 5000) == NATS_OK);
  publish_js(&t, s, &js, 1, JS_BATCH);
  it_log(&t, "published %d core NATS and %d JetStream events", N_CORE,
         JS_BATCH);

  /* nats-server goes away: natka must stay up and idle. */
  IT_CHECK_INT(&t, it_servers(&t, "nats-stop"), ==, 0);
  s->nats_down = 1;
  int64_t cpu_before = it_cpu_ms(natka.pid);
  it_sleep_ms(DOWN_MS);
  IT_CHECK(&t, still_running(&natka));
  int64_t cpu_used = it_cpu_ms(natka.pid) - cpu_before;
  it_log(&t, "natka used %lld ms of CPU in %d ms without NATS",
         (long long)cpu_used, DOWN_MS);
  IT_CHECK_INT(&t, cpu_used, <, DOWN_MS / 3);
  IT_CHECK_INT(&t, it_wait_log(&natka, "disconnected", 1000), ==, 0);

  IT_CHECK_INT(&t, it_servers(&t, "nats-start"), ==, 0);
  s->nats_down = 0;
  IT_CHECK_INT(&t, it_wait_log(&natka, "reconnected", 20000), ==, 0);
  it_js_close(&js);
  it_js_connect(&t, &js);
  publish_js(&t, s, &js, JS_BATCH + 1, N_JS);
  it_log(&t, "published %d more JetStream events after the restart", JS_BATCH);

  const char *topics[] = {s->topic};
  it_kafka_read(&t, topics, 1, 0, 60000, count_record, s);
  IT_CHECK_INT(&t, s->core_distinct, ==, N_CORE);
  IT_CHECK_INT(&t, s->js_distinct, ==, N_JS);

  IT_CHECK_INT(&t, it_natka_stop(&t, &natka, 30000), ==, 0);
  it_js_wait_settled(&t, &js, s->stream, s->durable, 10000);
  it_js_close(&js);
  free(s);
  return it_pass(&t);
}
