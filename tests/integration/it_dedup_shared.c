/*
 * The shared dedup window: two natka processes consume one durable consumer
 * (so the copies of an event land on either), and dedup against each other
 * through one KV bucket (dedup.shared_bucket). Every order reaches Kafka
 * exactly once, and every message is acked.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define ORDERS 200
#define COPIES 2

typedef struct state {
  unsigned char seen[ORDERS + 1];
  size_t distinct, dups;
} state;

static int count(it_test *t, const it_record *r, void *data) {
  state *s = data;
  const char *id = it_record_hstr(r, "order-id");
  int i = id != NULL ? atoi(id) : 0;
  if (i < 1 || i > ORDERS)
    IT_FAIL(t, "unexpected record without a known order-id");
  if (s->seen[i]++ == 0)
    s->distinct++;
  else
    s->dups++;
  return s->distinct == ORDERS;
}

int main(int argc, char **argv) {
  it_test t;
  it_js js;
  it_proc natka[2];
  state st = {0};
  char rule[PATH_MAX], config[2][PATH_MAX], stream[96], subject[128];
  char topic[128], id[32], order[16], data[64];

  it_init(&t, "dedup_shared", argc, argv, 1);
  snprintf(stream, sizeof(stream), "%s", t.uniq);
  snprintf(subject, sizeof(subject), "%s.orders", t.uniq);
  snprintf(topic, sizeof(topic), "%s_orders", t.uniq);

  it_write_file(&t, "orders.lua", rule,
                "return {\n"
                "  dedup = function(ev) return ev:header('order-id') end,\n"
                "  route = function(ev) return '%s' end,\n"
                "}\n",
                topic);
  /* Small batches spread the copies over both processes. Each has a name
   * of its own: with transactions, one name (one transactional.id) per
   * instance. */
  for (int i = 0; i < 2; i++)
    it_write_file(&t, i == 0 ? "natka-a.conf" : "natka-b.conf", config[i],
                  "return {\n"
                  "  nats = { url = '%s', name = 'natka-%c' },\n"
                  "  kafka = { brokers = '%s' },\n"
                  "  jetstream = { stream = '%s', subjects = { '%s' },\n"
                  "    durable = 'shared', batch = 5 },\n"
                  "  rules = { files = { '%s' } },\n"
                  "  switches = { bucket = '' },\n"
                  "  dedup = { shared_bucket = '%s_dedup' },\n"
                  "  dlq = { topic = '%s_dlq' },\n"
                  "}\n",
                  t.nats_url, 'a' + i, t.kafka_brokers, stream, subject, rule,
                  t.uniq, t.uniq);

  it_js_connect(&t, &js);
  it_js_add_stream(&t, &js, stream, subject);
  it_natka_start(&t, &natka[0], config[0], "natka-a.log");
  it_natka_start(&t, &natka[1], config[1], "natka-b.log");
  IT_CHECK_INT(&t, it_wait_log(&natka[0], "consuming", 15000), ==, 0);
  IT_CHECK_INT(&t, it_wait_log(&natka[1], "consuming", 15000), ==, 0);

  for (int copy = 0; copy < COPIES; copy++) {
    for (int i = 1; i <= ORDERS; i++) {
      snprintf(id, sizeof(id), "m-%d-%d", i, copy);
      snprintf(order, sizeof(order), "%d", i);
      int len = snprintf(data, sizeof(data), "order %d copy %d", i, copy);
      it_hdr h[] = {{"Nats-Msg-Id", id}, {"order-id", order}};
      it_js_publish(&t, &js, subject, h, 2, data, (size_t)len);
    }
  }
  it_js_publish_wait(&t, &js, 30000);
  it_log(&t, "published %d orders, %d copies each", ORDERS, COPIES);

  const char *topics[] = {topic};
  it_kafka_read(&t, topics, 1, 0, 60000, count, &st);
  it_log(&t, "%zu distinct orders in Kafka, %zu duplicates", st.distinct,
         st.dups);
  IT_CHECK_INT(&t, st.distinct, ==, ORDERS);
  IT_CHECK_INT(&t, st.dups, ==, 0);

  IT_CHECK_INT(&t, it_natka_stop(&t, &natka[0], 30000), ==, 0);
  t.natka = &natka[1];
  IT_CHECK_INT(&t, it_natka_stop(&t, &natka[1], 30000), ==, 0);
  it_js_wait_settled(&t, &js, stream, "shared", 10000);
  it_js_close(&js);
  return it_pass(&t);
}
