/*
 * Exactly-once JetStream -> Kafka under SIGKILL.
 *
 * A publisher thread streams N events into JetStream while natka (with
 * transactions, the default) is killed with SIGKILL at random moments, K
 * times, and restarted each time. Afterwards a read_committed consumer of
 * the target topic must see every event exactly once: nothing missing,
 * nothing twice. Each kill lands wherever it lands: inside an open
 * transaction (Kafka aborts it when the next incarnation starts), during a
 * commit, or between a commit and the acks (the checkpoint says what is
 * already in Kafka).
 *
 * Then the Kafka broker itself is killed with SIGKILL mid-stream and
 * restarted: again every event exactly once for read_committed consumers.
 *
 * NATKA_EOS_EVENTS and NATKA_EOS_KILLS (defaults 100000 and 10) make it a
 * longer soak: scripts/soak sets them. NATKA_EOS_TRANSACTIONS=off shows
 * what the test catches: idempotent-only produce duplicates on every kill.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

typedef struct eos {
  it_test *t;
  char stream[96], subject[128], durable[96], topic[128];
  int first, last; /* published by the next publisher() */
  int events;      /* in all */
  int rate;        /* events/s published */
  int kafka_down;
  unsigned char *seen;
  size_t distinct, dups;
} eos;

static void *publisher(void *arg) {
  eos *e = arg;
  it_js js;
  char id[32], data[64];
  it_js_connect(e->t, &js);
  int64_t start = it_now_ms();
  for (int i = e->first; i <= e->last; i++) {
    snprintf(id, sizeof(id), "x-%d", i);
    int len = snprintf(data, sizeof(data), "exactly once %d", i);
    it_hdr h[] = {{"Nats-Msg-Id", id}, {"ce-type", "eos.test"}};
    it_js_publish(e->t, &js, e->subject, h, 2, data, (size_t)len);
    /* Paced, so that the stream lasts through the kills. */
    if (i % 500 == 0) {
      int64_t due = start + (int64_t)(i - e->first) * 1000 / e->rate;
      int64_t now = it_now_ms();
      if (due > now)
        it_sleep_ms(due - now);
    }
  }
  it_js_publish_wait(e->t, &js, 60000);
  it_log(e->t, "published x-%d..x-%d", e->first, e->last);
  it_js_close(&js);
  return NULL;
}

static int count(it_test *t, const it_record *r, void *data) {
  eos *e = data;
  const char *id = it_record_hstr(r, "ce_id");
  int i = id != NULL && strncmp(id, "x-", 2) == 0 ? atoi(id + 2) : 0;
  if (i < 1 || i > e->events)
    IT_FAIL(t, "unexpected record: ce_id %s", id ? id : "(none)");
  if (e->seen[i]++ == 0) {
    e->distinct++;
  } else if (++e->dups <= 10) {
    it_log(t, "duplicate: x-%d (copy %d, partition %d offset %lld)", i,
           e->seen[i], (int)r->partition, (long long)r->offset);
  }
  return e->distinct == (size_t)e->events;
}

/* Reads the topic from the start: every event so far exactly once. */
static void check_exactly_once(it_test *t, eos *e) {
  const char *topics[] = {e->topic};
  memset(e->seen, 0, (size_t)e->events + 1);
  e->distinct = e->dups = 0;
  size_t n = it_kafka_read(t, topics, 1, 0, 180000, count, e);
  it_log(t, "read_committed: %zu records, %zu distinct, %zu duplicate(s)", n,
         e->distinct, e->dups);
  IT_CHECK_INT(t, e->distinct, ==, e->events);
  IT_CHECK_INT(t, e->dups, ==, 0);
}

/* Whatever failed, later tests need a broker. */
static void bring_kafka_back(it_test *t, void *data) {
  eos *e = data;
  if (e->kafka_down && it_servers(t, "kafka-start") == 0)
    e->kafka_down = 0;
}

int main(int argc, char **argv) {
  it_test t;
  it_proc natka;
  it_js js;
  char rule[PATH_MAX], config[PATH_MAX], logname[64];
  pthread_t pub;
  eos e = {.t = &t};

  it_init(&t, "exactly_once", argc, argv, 1);
  const char *ev_env = getenv("NATKA_EOS_EVENTS");
  const char *kill_env = getenv("NATKA_EOS_KILLS");
  int first_part = ev_env != NULL ? atoi(ev_env) : 100000;
  int kills = kill_env != NULL ? atoi(kill_env) : 10;
  int second_part = first_part / 5 > 1000 ? first_part / 5 : 1000;
  e.events = first_part + second_part;
  const char *txn = getenv("NATKA_EOS_TRANSACTIONS");
  e.rate = first_part / 10 > 1000 ? first_part / 10 : 1000; /* about 10 s */
  e.seen = calloc((size_t)e.events + 1, 1);
  IT_CHECK(&t, e.seen != NULL && e.events > 0 && kills >= 0);
  unsigned seed = (unsigned)it_now_ms();
  srand(seed);
  it_log(&t, "%d events, %d kills, seed %u; then %d events, one broker kill",
         first_part, kills, seed, second_part);
  t.on_fail = bring_kafka_back;
  t.on_fail_data = &e;

  snprintf(e.stream, sizeof(e.stream), "%s", t.uniq);
  snprintf(e.subject, sizeof(e.subject), "%s.in", t.uniq);
  snprintf(e.durable, sizeof(e.durable), "%s_d", t.uniq);
  snprintf(e.topic, sizeof(e.topic), "%s_out", t.uniq);
  it_write_file(&t, "route.lua", rule,
                "return { route = function(ev) return \"%s\" end }\n", e.topic);
  /* ack_wait short: what a killed natka held comes back within seconds. */
  it_write_file(&t, "natka.conf", config,
                "return {\n"
                "  nats = { url = \"%s\" },\n"
                "  kafka = { brokers = \"%s\", transactions = \"%s\",\n"
                "    checkpoint_topic = \"%s_ckpt\" },\n"
                "  jetstream = { stream = \"%s\", subjects = { \"%s\" },\n"
                "    durable = \"%s\", ack_wait_ms = 2000 },\n"
                "  rules = { files = { \"%s\" } },\n"
                "  switches = { bucket = \"\" },\n"
                "  dlq = { topic = \"%s_dlq\" },\n"
                "}\n",
                t.nats_url, t.kafka_brokers, txn ? txn : "on", t.uniq, e.stream,
                e.subject, e.durable, rule, t.uniq);
  const char *topics[] = {e.topic};
  it_kafka_create_topics(&t, topics, 1, 3);

  it_js_connect(&t, &js);
  it_js_add_stream(&t, &js, e.stream, e.subject);
  it_natka_start(&t, &natka, config, "natka-0.log");
  IT_CHECK_INT(&t, it_wait_log(&natka, "consuming", 30000), ==, 0);
  e.first = 1;
  e.last = first_part;
  IT_CHECK(&t, pthread_create(&pub, NULL, publisher, &e) == 0);

  /* Kill at a random moment 0.2 to 1.2 s into each incarnation's work. */
  for (int k = 1; k <= kills; k++) {
    it_sleep_ms(200 + rand() % 1000);
    it_kill(&natka, 9);
    it_wait(&natka, 10000);
    it_log(&t, "kill %d: SIGKILL", k);
    snprintf(logname, sizeof(logname), "natka-%d.log", k);
    it_natka_start(&t, &natka, config, logname);
    IT_CHECK_INT(&t, it_wait_log(&natka, "consuming", 30000), ==, 0);
  }
  pthread_join(pub, NULL);

  const int total = e.events;
  e.events = first_part;
  check_exactly_once(&t, &e);

  /* The broker crashes mid-stream and comes back. */
  e.events = total;
  e.first = first_part + 1;
  e.last = total;
  e.rate = second_part / 8 > 100 ? second_part / 8 : 100; /* about 8 s */
  IT_CHECK(&t, pthread_create(&pub, NULL, publisher, &e) == 0);
  it_sleep_ms(1500);
  e.kafka_down = 1;
  IT_CHECK_INT(&t, it_servers(&t, "kafka-kill"), ==, 0);
  it_log(&t, "kafka killed");
  it_sleep_ms(3000);
  IT_CHECK_INT(&t, it_servers(&t, "kafka-start"), ==, 0);
  e.kafka_down = 0;
  it_log(&t, "kafka started again");
  pthread_join(pub, NULL);
  check_exactly_once(&t, &e);

  IT_CHECK_INT(&t, it_natka_stop(&t, &natka, 30000), ==, 0);
  it_js_wait_settled(&t, &js, e.stream, e.durable, 30000);
  it_js_close(&js);
  free(e.seen);
  return it_pass(&t);
}
