/*
 * Kafka goes away mid-stream. While it is down natka holds what it fetched
 * unacked (never acks what Kafka did not take) and fetches no more than
 * jetstream.max_ack_pending; once Kafka is back every event arrives (at
 * least once) and everything gets acked.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define BATCH 2000 /* published before and again during the outage */
#define N_EVENTS (2 * BATCH)
#define MAX_ACK_PENDING 500
#define OUTAGE_WAIT_MS 8000

typedef struct outage {
  char stream[96], subject[128], durable[96], topic[128];
  int kafka_down;
  unsigned char seen[N_EVENTS + 1]; /* copies read per event number */
  size_t distinct, dups, want;
  int64_t all_read_ms; /* when the last missing event arrived */
} outage;

/* Whatever failed, later tests need a broker. */
static void bring_kafka_back(it_test *t, void *data) {
  outage *o = data;
  if (o->kafka_down && it_servers(t, "kafka-start") == 0)
    o->kafka_down = 0;
}

static void write_config(it_test *t, const outage *o, char *config) {
  char rule[PATH_MAX];
  it_write_file(t, "route.lua", rule,
                "return { route = function(ev) return \"%s\" end }\n",
                o->topic);
  it_write_file(t, "natka.conf", config,
                "return {\n"
                "  nats = { url = \"%s\" },\n"
                "  kafka = { brokers = \"%s\" },\n"
                "  jetstream = { stream = \"%s\", subjects = { \"%s\" },\n"
                "    durable = \"%s\", ack_wait_ms = 60000,\n"
                "    max_ack_pending = %d },\n"
                "  rules = { files = { \"%s\" } },\n"
                "  dlq = { topic = \"%s_dlq\" },\n"
                "  shutdown = { drain_timeout_ms = 15000 },\n"
                "}\n",
                t->nats_url, t->kafka_brokers, o->stream, o->subject,
                o->durable, MAX_ACK_PENDING, rule, t->uniq);
}

/* Publishes events first..last (numbers in their ids "o-N"). */
static void publish(it_test *t, const outage *o, it_js *js, int first,
                    int last) {
  char id[32], data[64];
  for (int i = first; i <= last; i++) {
    snprintf(id, sizeof(id), "o-%d", i);
    int len = snprintf(data, sizeof(data), "outage event %d", i);
    it_hdr h[] = {{"Nats-Msg-Id", id}, {"ce-type", "outage.test"}};
    it_js_publish(t, js, o->subject, h, 2, data, (size_t)len);
  }
  it_js_publish_wait(t, js, 30000);
  it_log(t, "published o-%d..o-%d", first, last);
}

/* Counts distinct events and duplicates; done once `want` are distinct. */
static int count_record(it_test *t, const it_record *r, void *data) {
  outage *o = data;
  const char *id = it_record_hstr(r, "ce_id");
  int i = id != NULL && strncmp(id, "o-", 2) == 0 ? atoi(id + 2) : 0;
  if (i < 1 || i > N_EVENTS)
    IT_FAIL(t, "unexpected record in %s: ce_id %s", r->topic,
            id ? id : "(none)");
  if (o->seen[i]++ == 0) {
    o->distinct++;
  } else {
    o->dups++;
    if (o->dups <= 10)
      it_log(t, "duplicate: o-%d (copy %d, partition %d offset %lld)", i,
             o->seen[i], (int)r->partition, (long long)r->offset);
  }
  if (o->distinct == o->want && o->all_read_ms == 0)
    o->all_read_ms = it_now_ms();
  return o->distinct >= o->want;
}

static void read_until(it_test *t, outage *o, size_t want, int64_t timeout) {
  const char *topics[] = {o->topic};
  memset(o->seen, 0, sizeof(o->seen));
  o->distinct = o->dups = 0;
  o->want = want;
  o->all_read_ms = 0;
  size_t n = it_kafka_read(t, topics, 1, 0, timeout, count_record, o);
  it_log(t, "read %zu records: %zu distinct events, %zu duplicate(s)", n,
         o->distinct, o->dups);
  IT_CHECK_INT(t, o->distinct, ==, want);
}

static void log_consumer(it_test *t, const char *when, const it_consumer *c) {
  it_log(t,
         "consumer %s: ack floor %llu, delivered %llu, %lld unacked, %llu "
         "pending, %lld redelivered",
         when, (unsigned long long)c->ack_floor_stream,
         (unsigned long long)c->delivered_stream, (long long)c->num_ack_pending,
         (unsigned long long)c->num_pending, (long long)c->num_redelivered);
}

int main(int argc, char **argv) {
  it_test t;
  it_proc natka;
  it_js js;
  it_consumer c;
  char config[PATH_MAX];
  outage *o = calloc(1, sizeof(*o));

  it_init(&t, "outage", argc, argv, 1);
  IT_CHECK(&t, o != NULL);
  t.on_fail = bring_kafka_back;
  t.on_fail_data = o;
  snprintf(o->stream, sizeof(o->stream), "%s", t.uniq);
  snprintf(o->subject, sizeof(o->subject), "%s.in", t.uniq);
  snprintf(o->durable, sizeof(o->durable), "%s_d", t.uniq);
  snprintf(o->topic, sizeof(o->topic), "%s_out", t.uniq);
  write_config(&t, o, config);

  it_natka_start(&t, &natka, config, "natka.log");
  it_js_connect(&t, &js);
  it_js_wait_consumer(&t, &js, o->stream, o->durable, 30000);
  publish(&t, o, &js, 1, BATCH);
  read_until(&t, o, BATCH, 120000);
  it_js_wait_settled(&t, &js, o->stream, o->durable, 15000);

  o->kafka_down = 1; /* from here on a failure restarts it */
  IT_CHECK_INT(&t, it_servers(&t, "kafka-stop"), ==, 0);
  it_log(&t, "kafka stopped");
  publish(&t, o, &js, BATCH + 1, N_EVENTS);
  it_sleep_ms(OUTAGE_WAIT_MS);
  IT_CHECK(&t, it_js_consumer(&t, &js, o->stream, o->durable, &c) == 0);
  log_consumer(&t, "during the outage", &c);
  /* Nothing past the first batch may be acked: the ack floor stays there
   * and every later message is either unacked or not yet delivered. */
  IT_CHECK_INT(&t, c.ack_floor_stream, ==, BATCH);
  IT_CHECK_INT(&t, (long long)c.num_pending + c.num_ack_pending, ==, BATCH);
  IT_CHECK_INT(&t, c.num_ack_pending, >, 0);
  IT_CHECK_INT(&t, c.num_ack_pending, ==, MAX_ACK_PENDING);
  IT_CHECK_INT(&t, c.delivered_stream, ==, BATCH + MAX_ACK_PENDING);

  int64_t back = it_now_ms();
  IT_CHECK_INT(&t, it_servers(&t, "kafka-start"), ==, 0);
  o->kafka_down = 0;
  it_log(&t, "kafka started again");
  read_until(&t, o, N_EVENTS, 240000);
  it_log(&t, "all %d events in Kafka %.1f s after kafka-start", N_EVENTS,
         (o->all_read_ms - back) / 1000.0);

  IT_CHECK_INT(&t, it_natka_stop(&t, &natka, 30000), ==, 0);
  it_js_wait_settled(&t, &js, o->stream, o->durable, 5000);
  IT_CHECK(&t, it_js_consumer(&t, &js, o->stream, o->durable, &c) == 0);
  log_consumer(&t, "after natka stopped", &c);
  IT_CHECK_INT(&t, c.ack_floor_stream, ==, N_EVENTS);
  it_js_close(&js);
  free(o);
  return it_pass(&t);
}
