/*
 * Dead-lettering: events a rule raises on, an event with an unparsable
 * ce-time, one larger than limits.max_event_bytes and events Kafka refuses
 * for good (a partition that does not exist: inside a transaction, which
 * is aborted and the dead letter written in the next one) land in the DLQ
 * topic
 * with natka-* headers saying why, and a copy of each on the NATS subject
 * dlq.subject; the good ones reach their topic; every source message ends
 * up acked.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define N_EVENTS 300
#define POISON_EVERY 10
#define N_POISONED (N_EVENTS / POISON_EVERY)
#define N_GOOD (N_EVENTS - N_POISONED)
#define N_BAD_PARTITION 3
#define N_DLQ (N_POISONED + 2 + N_BAD_PARTITION)
#define MAX_EVENT_BYTES 65536
#define BIG_BYTES (100 * 1024)
#define RULE_NAME "poison_guard"

typedef struct names {
  char stream[96], subject[128], durable[96], good[128], dlq[128];
  char dead_subject[128];
} names;

static void write_files(it_test *t, const names *n, char *config) {
  char rule[PATH_MAX];
  it_write_file(t, RULE_NAME ".lua", rule,
                "return {\n"
                "  route = function(ev)\n"
                "    if ev.data:find(\"poison\", 1, true) then\n"
                "      error(\"poisoned event \" .. ev.id)\n"
                "    end\n"
                "    if ev.data:find(\"no such partition\", 1, true) then\n"
                "      return { topic = \"%s\", partition = 99 }\n"
                "    end\n"
                "    return \"%s\"\n"
                "  end,\n"
                "}\n",
                n->good, n->good);
  it_write_file(t, "natka.conf", config,
                "return {\n"
                "  nats = { url = \"%s\" },\n"
                "  kafka = { brokers = \"%s\" },\n"
                "  jetstream = { stream = \"%s\", subjects = { \"%s\" },\n"
                "    durable = \"%s\", ack_wait_ms = 30000 },\n"
                "  rules = { files = { \"%s\" } },\n"
                "  dlq = { topic = \"%s\", subject = \"%s\" },\n"
                "  limits = { max_event_bytes = %d },\n"
                "  shutdown = { drain_timeout_ms = 10000 },\n"
                "}\n",
                t->nats_url, t->kafka_brokers, n->stream, n->subject,
                n->durable, rule, n->dlq, n->dead_subject, MAX_EVENT_BYTES);
}

static void payload(int i, char *buf, size_t len) {
  if (i % POISON_EVERY == 0)
    snprintf(buf, len, "this one is poison, number %d", i);
  else
    snprintf(buf, len, "good payload %d", i);
}

static void publish_all(it_test *t, const names *n) {
  it_js js;
  char id[32], data[64];
  it_js_connect(t, &js);
  it_js_add_stream(t, &js, n->stream, n->subject);
  for (int i = 0; i < N_EVENTS; i++) {
    snprintf(id, sizeof(id), "d-%d", i);
    payload(i, data, sizeof(data));
    it_hdr h[] = {{"Nats-Msg-Id", id}, {"ce-type", "dlq.test"}};
    it_js_publish(t, &js, n->subject, h, 2, data, strlen(data));
  }
  it_hdr bad_time[] = {{"Nats-Msg-Id", "d-malformed"},
                       {"ce-type", "dlq.test"},
                       {"ce-time", "yesterday"}};
  it_js_publish(t, &js, n->subject, bad_time, 3, "bad time", 8);
  char *big = malloc(BIG_BYTES);
  IT_CHECK(t, big != NULL);
  memset(big, 'B', BIG_BYTES);
  it_hdr big_h[] = {{"Nats-Msg-Id", "d-big"}, {"ce-type", "dlq.test"}};
  it_js_publish(t, &js, n->subject, big_h, 2, big, BIG_BYTES);
  free(big);
  for (int i = 1; i <= N_BAD_PARTITION; i++) {
    char bp[32];
    snprintf(bp, sizeof(bp), "d-bp-%d", i);
    it_hdr bp_h[] = {{"Nats-Msg-Id", bp}, {"ce-type", "dlq.test"}};
    it_js_publish(t, &js, n->subject, bp_h, 2, "no such partition", 17);
  }
  it_js_publish_wait(t, &js, 30000);
  it_js_close(&js);
}

/* The number after "d-" in a record's ce_id, or -1. */
static int event_number(const it_record *r) {
  const char *id = it_record_hstr(r, "ce_id");
  if (id == NULL || strncmp(id, "d-", 2) != 0 || id[2] < '0' || id[2] > '9')
    return -1;
  return atoi(id + 2);
}

static void check_good(it_test *t, const it_record *r, int *seen) {
  char want[64];
  int i = event_number(r);
  IT_CHECK_INT(t, i, >=, 0);
  IT_CHECK_INT(t, i, <, N_EVENTS);
  IT_CHECK_INT(t, i % POISON_EVERY, !=, 0);
  if (seen[i]++ != 0)
    IT_FAIL(t, "d-%d read twice from the good topic", i);
  payload(i, want, sizeof(want));
  IT_CHECK_MEM(t, r->value, r->value_len, want, strlen(want));
}

static void check_dead(it_test *t, const it_record *r, int *seen,
                       int *malformed, int *big, int *kafka_refused,
                       char *malformed_id) {
  const char *code = it_record_hstr(r, "natka-error-code");
  const char *error = it_record_hstr(r, "natka-error");
  char want[64];
  IT_CHECK(t, code != NULL && error != NULL);
  IT_CHECK_HAS(t, it_record_hstr(r, "natka-source"), "seq");
  IT_CHECK(t, it_record_hstr(r, "natka-attempts") != NULL);
  if (strcmp(code, "ERULE") == 0) {
    int i = event_number(r);
    IT_CHECK_INT(t, i, >=, 0);
    IT_CHECK_INT(t, i % POISON_EVERY, ==, 0);
    if (seen[i]++ != 0)
      IT_FAIL(t, "d-%d read twice from the DLQ topic", i);
    snprintf(want, sizeof(want), "poisoned event d-%d", i);
    IT_CHECK_HAS(t, error, want);
    IT_CHECK_HAS(t, error, RULE_NAME);
    IT_CHECK_STR(t, it_record_hstr(r, "natka-rule"), RULE_NAME);
    payload(i, want, sizeof(want));
    IT_CHECK_MEM(t, r->value, r->value_len, want, strlen(want));
  } else if (strcmp(code, "EMALFORMED") == 0) {
    IT_CHECK_INT(t, ++*malformed, ==, 1);
    IT_CHECK_MEM(t, r->value, r->value_len, "bad time", 8);
    IT_CHECK_HAS(t, error, "ce-time");
    snprintf(malformed_id, 128, "%s", it_record_hstr(r, "ce_id"));
  } else if (strcmp(code, "EKAFKA") == 0) {
    IT_CHECK_INT(t, ++*kafka_refused, <=, N_BAD_PARTITION);
    IT_CHECK_HAS(t, it_record_hstr(r, "ce_id"), "d-bp-");
    IT_CHECK_HAS(t, error, "kafka refused the event");
    IT_CHECK_MEM(t, r->value, r->value_len, "no such partition", 17);
  } else if (strcmp(code, "ETOOBIG") == 0) {
    IT_CHECK_INT(t, ++*big, ==, 1);
    IT_CHECK_STR(t, it_record_hstr(r, "ce_id"), "d-big");
    IT_CHECK_INT(t, r->value_len, ==, 0);
    IT_CHECK_HAS(t, error, "max_event_bytes");
  } else {
    IT_FAIL(t, "unexpected natka-error-code %s (natka-error: %s)", code, error);
  }
}

int main(int argc, char **argv) {
  it_test t;
  it_proc natka;
  it_js js;
  it_consumer c;
  it_records rs = {0};
  names n;
  char config[PATH_MAX], malformed_id[128] = "";
  int seen_good[N_EVENTS] = {0}, seen_dead[N_EVENTS] = {0};
  int malformed = 0, big = 0, good = 0, dead = 0, refused = 0;

  it_init(&t, "dlq", argc, argv, 1);
  snprintf(n.stream, sizeof(n.stream), "%s", t.uniq);
  snprintf(n.subject, sizeof(n.subject), "%s.in", t.uniq);
  snprintf(n.durable, sizeof(n.durable), "%s_d", t.uniq);
  snprintf(n.good, sizeof(n.good), "%s_good", t.uniq);
  snprintf(n.dlq, sizeof(n.dlq), "%s_dlq", t.uniq);
  snprintf(n.dead_subject, sizeof(n.dead_subject), "%s.dead", t.uniq);
  write_files(&t, &n, config);
  natsSubscription *dead_sub = NULL;
  it_js_connect(&t, &js);
  IT_CHECK(&t, natsConnection_SubscribeSync(&dead_sub, js.nc, n.dead_subject) ==
                   NATS_OK);
  publish_all(&t, &n); /* into a stream the test made, before natka runs */
  it_natka_start(&t, &natka, config, "natka.log");

  const char *topics[] = {n.good, n.dlq};
  it_kafka_collect(&t, topics, 2, N_GOOD + N_DLQ, 120000, &rs);
  it_log(&t, "read %zu records (expected %d)", rs.n, N_GOOD + N_DLQ);
  for (size_t i = 0; i < rs.n; i++) {
    if (strcmp(rs.v[i].topic, n.good) == 0) {
      good++;
      check_good(&t, &rs.v[i], seen_good);
    } else {
      dead++;
      check_dead(&t, &rs.v[i], seen_dead, &malformed, &big, &refused,
                 malformed_id);
    }
  }
  it_records_free(&rs);
  IT_CHECK_INT(&t, good, ==, N_GOOD);
  IT_CHECK_INT(&t, dead, ==, N_DLQ);
  IT_CHECK_INT(&t, malformed, ==, 1);
  IT_CHECK_INT(&t, big, ==, 1);
  IT_CHECK_INT(&t, refused, ==, N_BAD_PARTITION);

  /* The NATS copies: one per dead letter, with the same reason. */
  int copies = 0;
  natsMsg *m = NULL;
  while (natsSubscription_NextMsg(&m, dead_sub, 2000) == NATS_OK) {
    const char *code = NULL;
    IT_CHECK(&t, natsMsgHeader_Get(m, "natka-error-code", &code) == NATS_OK);
    copies++;
    natsMsg_Destroy(m);
  }
  natsSubscription_Destroy(dead_sub);
  it_log(&t, "%d dead-letter copies on %s", copies, n.dead_subject);
  /* At least one each: the NATS copy is outside the Kafka transaction, so
   * a transaction aborted (the bad partitions) and retried sends again. */
  IT_CHECK_INT(&t, copies, >=, N_DLQ);

  IT_CHECK_INT(&t, it_natka_stop(&t, &natka, 30000), ==, 0);
  it_js_wait_settled(&t, &js, n.stream, n.durable, 5000);
  IT_CHECK(&t, it_js_consumer(&t, &js, n.stream, n.durable, &c) == 0);
  IT_CHECK_INT(&t, c.ack_floor_stream, ==, N_EVENTS + 2 + N_BAD_PARTITION);
  it_js_close(&js);
  /* Last, so that the checks above run either way: a malformed event keeps
   * the id it was published with (Nats-Msg-Id), like any other. */
  IT_CHECK_STR(&t, malformed_id, "d-malformed");
  return it_pass(&t);
}
