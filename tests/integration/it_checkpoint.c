/*
 * The checkpoint record is read strictly, and a tombstone resets it.
 *
 * 1. A forged checkpoint under the instance's key, its floor
 *    "99999999999999999999" (past uint64: strtoull made that UINT64_MAX,
 *    which said every event was committed, and natka acked all of them
 *    without producing one). natka must refuse to start, saying which
 *    topic, key and field, and ack nothing: the events stay in JetStream.
 * 2. A tombstone for the key after it: natka starts from JetStream's ack
 *    floor ("checkpoint none yet") and delivers every event.
 * 3. natka's own checkpoint, written after the tombstone, counts again on
 *    the next start, and later events are delivered once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define EVENTS 20
#define MORE 5

typedef struct seen {
  unsigned char n[EVENTS + MORE + 1];
  size_t distinct, dups;
} seen;

static int count(it_test *t, const it_record *r, void *data) {
  seen *s = data;
  const char *id = it_record_hstr(r, "ce_id");
  int i = id != NULL && strncmp(id, "c-", 2) == 0 ? atoi(id + 2) : 0;
  if (i < 1 || i > EVENTS + MORE)
    IT_FAIL(t, "unexpected record: ce_id %s", id ? id : "(none)");
  if (s->n[i]++ == 0)
    s->distinct++;
  else
    s->dups++;
  return 0;
}

static void publish(it_test *t, it_js *js, const char *subject, int first,
                    int last) {
  char id[32], data[64];
  for (int i = first; i <= last; i++) {
    snprintf(id, sizeof(id), "c-%d", i);
    int len = snprintf(data, sizeof(data), "checkpoint %d", i);
    it_hdr h[] = {{"Nats-Msg-Id", id}, {"ce-type", "ckpt.test"}};
    it_js_publish(t, js, subject, h, 2, data, (size_t)len);
  }
  it_js_publish_wait(t, js, 30000);
}

/* Every event 1..want in the topic exactly once. */
static void check_delivered(it_test *t, const char *topic, int want) {
  seen s = {0};
  const char *topics[] = {topic};
  size_t n = it_kafka_read(t, topics, 1, (size_t)want, 30000, count, &s);
  it_log(t, "%zu records, %zu distinct, %zu duplicate(s)", n, s.distinct,
         s.dups);
  IT_CHECK_INT(t, s.distinct, ==, want);
  IT_CHECK_INT(t, s.dups, ==, 0);
}

int main(int argc, char **argv) {
  it_test t;
  it_js js;
  it_proc natka;
  char rule[PATH_MAX], config[PATH_MAX], stream[96], subject[128];
  char durable[96], topic[128], ckpt[128], tid[128], forged[512];

  it_init(&t, "checkpoint", argc, argv, 1);
  snprintf(stream, sizeof(stream), "%s", t.uniq);
  snprintf(subject, sizeof(subject), "%s.in", t.uniq);
  snprintf(durable, sizeof(durable), "%s_d", t.uniq);
  snprintf(topic, sizeof(topic), "%s_out", t.uniq);
  snprintf(ckpt, sizeof(ckpt), "%s_ckpt", t.uniq);
  snprintf(tid, sizeof(tid), "%s_tid", t.uniq);

  it_write_file(&t, "route.lua", rule,
                "return { route = function(ev) return '%s' end }\n", topic);
  it_write_file(&t, "natka.conf", config,
                "return {\n"
                "  nats = { url = '%s' },\n"
                "  kafka = { brokers = '%s', transactions = 'on',\n"
                "    transactional_id = '%s', checkpoint_topic = '%s' },\n"
                "  jetstream = { stream = '%s', subjects = { '%s' },\n"
                "    durable = '%s', ack_wait_ms = 2000 },\n"
                "  rules = { files = { '%s' } },\n"
                "  switches = { bucket = '' },\n"
                "  dlq = { topic = '%s_dlq' },\n"
                "}\n",
                t.nats_url, t.kafka_brokers, tid, ckpt, stream, subject,
                durable, rule, t.uniq);

  it_js_connect(&t, &js);
  it_js_add_stream(&t, &js, stream, subject);
  publish(&t, &js, subject, 1, EVENTS);
  const char *topics[] = {topic, ckpt};
  it_kafka_create_topics(&t, topics, 2, 1);

  /* 1. The forged floor names this very stream, as natka would. */
  jsStreamInfo *si = NULL;
  jsErrCode jerr = 0;
  IT_CHECK(&t, js_GetStreamInfo(&si, js.js, stream, NULL, &jerr) == NATS_OK);
  snprintf(forged, sizeof(forged),
           "{\"v\":1,\"id\":\"%s\",\"sources\":{\"jetstream %s@%lld\":"
           "{\"floor\":\"99999999999999999999\",\"done\":\"\"}}}",
           tid, stream, (long long)si->Created);
  jsStreamInfo_Destroy(si);
  it_kafka_produce(&t, ckpt, tid, strlen(tid), forged, strlen(forged), NULL, 0);
  it_natka_start(&t, &natka, config, "natka-forged.log");
  int rc = it_wait(&natka, 30000);
  if (rc < 0)
    IT_FAIL(&t, "natka runs on a forged checkpoint floor");
  IT_CHECK_INT(&t, rc, !=, 0);
  it_check_no_sanitizer_report(&t, natka.log);
  char *log = it_read_file(natka.log, NULL);
  IT_CHECK_HAS(&t, log, "floor '99999999999999999999' is not a position");
  IT_CHECK_HAS(&t, log, ckpt);
  IT_CHECK_HAS(&t, log, tid);
  IT_CHECK_HAS(&t, log, "tombstone");
  const char *line = strstr(log, "checkpoint: ");
  it_log(&t, "natka exited with %d: %.*s", rc,
         (int)strcspn(line ? line : "", "\n"), line ? line : "");
  free(log);
  /* Nothing acked: the consumer is not there yet, or holds everything. */
  it_consumer c;
  if (it_js_consumer(&t, &js, stream, durable, &c) == 0)
    IT_CHECK_INT(&t, c.ack_floor_stream, ==, 0);
  IT_CHECK_INT(&t, it_js_stream_last_seq(&t, &js, stream), ==, EVENTS);
  it_log(&t, "forged checkpoint refused, nothing acked");

  /* 2. The tombstone resets it. */
  it_kafka_produce(&t, ckpt, tid, strlen(tid), NULL, 0, NULL, 0);
  it_natka_start(&t, &natka, config, "natka-reset.log");
  IT_CHECK_INT(&t, it_wait_log(&natka, "checkpoint none yet", 30000), ==, 0);
  check_delivered(&t, topic, EVENTS);
  it_js_wait_settled(&t, &js, stream, durable, 15000);
  IT_CHECK_INT(&t, it_natka_stop(&t, &natka, 30000), ==, 0);

  /* 3. natka's checkpoint after the tombstone is read again. */
  it_natka_start(&t, &natka, config, "natka-again.log");
  IT_CHECK_INT(&t, it_wait_log(&natka, "checkpoint read", 30000), ==, 0);
  publish(&t, &js, subject, EVENTS + 1, EVENTS + MORE);
  check_delivered(&t, topic, EVENTS + MORE);
  it_js_wait_settled(&t, &js, stream, durable, 15000);
  IT_CHECK_INT(&t, it_natka_stop(&t, &natka, 30000), ==, 0);

  it_js_close(&js);
  return it_pass(&t);
}
