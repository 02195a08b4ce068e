/*
 * Backpressure and memory under a Kafka outage at full ingress.
 *
 * Kafka is killed while publishers keep going: JetStream publishers at a
 * steady rate, and request-reply publishers through natka's ingress. natka
 * must stop fetching once limits.max_inflight_bytes worth of events wait
 * for Kafka, so its resident memory stays under its bound while JetStream
 * keeps the backlog; the ingress keeps answering with receipts (JetStream
 * stores what it accepts). Once Kafka is back, every event arrives exactly
 * once (read_committed).
 *
 * NATKA_OUTAGE_S (default 20) makes the outage longer: scripts/soak sets it.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define EVENT_BYTES (16 * 1024)
#define RATE 500  /* JetStream events/s during the outage */
#define CAP_MB 32 /* limits.max_inflight_bytes */
#define MAX_ACK_PENDING 10000
/* What natka may hold besides its events: Lua, librdkafka and nats.c
 * buffers, allocator slack (measured: about 40 MiB). */
#define BASE_MB 80

typedef struct bp {
  it_test *t;
  char stream[96], subject[128], req[128], durable[96], topic[128];
  volatile int stop;
  int published; /* by the publisher thread */
  int receipts;  /* ingress requests answered with a receipt */
  unsigned char *seen;
  int cap; /* size of seen */
  size_t distinct, dups;
} bp;

static void *publisher(void *arg) {
  bp *b = arg;
  it_js js;
  char id[32];
  char *data = malloc(EVENT_BYTES);
  if (data == NULL)
    IT_FAIL(b->t, "out of memory");
  memset(data, 'p', EVENT_BYTES);
  it_js_connect(b->t, &js);
  int64_t start = it_now_ms();
  while (!b->stop && b->published < b->cap - 10000) {
    int i = ++b->published;
    snprintf(id, sizeof(id), "p-%d", i);
    it_hdr h[] = {{"Nats-Msg-Id", id}, {"ce-type", "bp.test"}};
    it_js_publish(b->t, &js, b->subject, h, 2, data, EVENT_BYTES);
    int64_t due = start + (int64_t)i * 1000 / RATE;
    int64_t now = it_now_ms();
    if (due > now)
      it_sleep_ms(due - now);
  }
  it_js_publish_wait(b->t, &js, 60000);
  it_js_close(&js);
  free(data);
  return NULL;
}

/* Resident memory of pid in MiB, or -1. */
static long rss_mb(pid_t pid) {
  char path[64], line[256];
  long kb = -1;
  snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return -1;
  while (fgets(line, sizeof(line), f) != NULL)
    if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
      break;
  fclose(f);
  return kb < 0 ? -1 : kb / 1024;
}

/* One ingress request; 1 when it got a receipt. */
static int request(bp *b, natsConnection *nc, int n) {
  char id[32], body[64];
  natsMsg *req = NULL, *reply = NULL;
  snprintf(id, sizeof(id), "r-%d", n);
  int len = snprintf(body, sizeof(body), "request %d", n);
  natsMsg_Create(&req, b->req, NULL, body, len);
  natsMsgHeader_Set(req, "ce-id", id);
  natsMsgHeader_Set(req, "ce-type", "bp.request");
  natsStatus st = natsConnection_RequestMsg(&reply, nc, req, 5000);
  natsMsg_Destroy(req);
  int ok = st == NATS_OK && strstr(natsMsg_GetData(reply), "\"seq\"") != NULL;
  if (st == NATS_OK && !ok)
    it_log(b->t, "ingress answered: %.*s", natsMsg_GetDataLength(reply),
           natsMsg_GetData(reply));
  natsMsg_Destroy(reply);
  return ok;
}

static int count(it_test *t, const it_record *r, void *data) {
  bp *b = data;
  const char *id = it_record_hstr(r, "ce_id");
  int i = 0;
  if (id != NULL && strncmp(id, "p-", 2) == 0)
    i = atoi(id + 2);
  else if (id != NULL && strncmp(id, "r-", 2) == 0)
    i = b->cap - 10000 + atoi(id + 2);
  if (i < 1 || i >= b->cap)
    IT_FAIL(t, "unexpected record: ce_id %s", id ? id : "(none)");
  if (b->seen[i]++ == 0)
    b->distinct++;
  else if (++b->dups <= 10)
    it_log(t, "duplicate: %s", id);
  return b->distinct == (size_t)(b->published + b->receipts);
}

static void bring_kafka_back(it_test *t, void *data) {
  (void)data;
  it_servers(t, "kafka-start");
}

int main(int argc, char **argv) {
  it_test t;
  it_proc natka;
  it_js js;
  it_consumer c;
  char rule[PATH_MAX], config[PATH_MAX];
  pthread_t pub;
  bp b = {.t = &t};

  it_init(&t, "backpressure", argc, argv, 1);
  const char *env = getenv("NATKA_OUTAGE_S");
  int outage_s = env != NULL ? atoi(env) : 20;
  b.cap = (outage_s + 30) * RATE + 20000;
  b.seen = calloc((size_t)b.cap, 1);
  IT_CHECK(&t, b.seen != NULL && outage_s > 0);
  snprintf(b.stream, sizeof(b.stream), "%s", t.uniq);
  snprintf(b.subject, sizeof(b.subject), "%s.in.js", t.uniq);
  snprintf(b.req, sizeof(b.req), "%s.req", t.uniq);
  snprintf(b.durable, sizeof(b.durable), "%s_d", t.uniq);
  snprintf(b.topic, sizeof(b.topic), "%s_out", t.uniq);
  it_write_file(&t, "route.lua", rule,
                "return { route = function(ev) return \"%s\" end }\n", b.topic);
  it_write_file(&t, "natka.conf", config,
                "return {\n"
                "  nats = { url = \"%s\" },\n"
                "  kafka = { brokers = \"%s\", checkpoint_topic = \"%s_ckpt\" "
                "},\n"
                "  jetstream = { stream = \"%s\", subjects = { \"%s.in.>\" },\n"
                "    durable = \"%s\", max_ack_pending = %d },\n"
                "  ingress = { subjects = { \"%s\" },\n"
                "    stream_prefix = \"%s.in.ingress\" },\n"
                "  rules = { files = { \"%s\" } },\n"
                "  switches = { bucket = \"\" },\n"
                "  dlq = { topic = \"%s_dlq\" },\n"
                "  limits = { max_inflight_bytes = %d, max_inflight = 100000 "
                "},\n"
                "}\n",
                t.nats_url, t.kafka_brokers, t.uniq, b.stream, t.uniq,
                b.durable, MAX_ACK_PENDING, b.req, t.uniq, rule, t.uniq,
                CAP_MB * 1024 * 1024);
  t.on_fail = bring_kafka_back;

  const char *topics[] = {b.topic};
  it_kafka_create_topics(&t, topics, 1, 3);
  it_natka_start(&t, &natka, config, "natka.log");
  IT_CHECK_INT(&t, it_wait_log(&natka, "consuming", 30000), ==, 0);
  it_js_connect(&t, &js);
  long base = rss_mb(natka.pid);

  IT_CHECK_INT(&t, it_servers(&t, "kafka-kill"), ==, 0);
  it_log(&t, "kafka killed; natka at %ld MiB", base);
  IT_CHECK(&t, pthread_create(&pub, NULL, publisher, &b) == 0);
  long peak = 0;
  int requests = 0;
  int64_t end = it_now_ms() + (int64_t)outage_s * 1000;
  while (it_now_ms() < end) {
    b.receipts += request(&b, js.nc, ++requests);
    long rss = rss_mb(natka.pid);
    IT_CHECK_INT(&t, rss, >, 0); /* natka is alive */
    peak = rss > peak ? rss : peak;
    it_sleep_ms(200);
  }
  b.stop = 1;
  pthread_join(pub, NULL);
  IT_CHECK(&t, it_js_consumer(&t, &js, b.stream, b.durable, &c) == 0);
  it_log(&t,
         "outage of %d s: %d events published (%d MiB), %d/%d ingress "
         "receipts; natka peak %ld MiB; consumer: %lld unacked, %llu pending",
         outage_s, b.published, (int)((int64_t)b.published * EVENT_BYTES >> 20),
         b.receipts, requests, peak, (long long)c.num_ack_pending,
         (unsigned long long)c.num_pending);
  /* It stopped fetching at the byte bound, well before max_ack_pending. */
  IT_CHECK_INT(&t, c.num_ack_pending, <, MAX_ACK_PENDING);
  IT_CHECK_INT(&t, (long long)c.num_ack_pending * EVENT_BYTES, <=,
               (long long)2 * CAP_MB * 1024 * 1024);
  IT_CHECK_INT(&t, c.num_pending, >, 0); /* JetStream keeps the backlog */
  IT_CHECK_INT(&t, peak, <, BASE_MB + 3 * CAP_MB);
  IT_CHECK_INT(&t, b.receipts, ==, requests);

  IT_CHECK_INT(&t, it_servers(&t, "kafka-start"), ==, 0);
  it_log(&t, "kafka started again");
  size_t n = it_kafka_read(&t, topics, 1, 0, 240000, count, &b);
  it_log(&t, "read_committed: %zu records, %zu distinct, %zu duplicate(s)", n,
         b.distinct, b.dups);
  IT_CHECK_INT(&t, b.distinct, ==, b.published + b.receipts);
  IT_CHECK_INT(&t, b.dups, ==, 0);

  IT_CHECK_INT(&t, it_natka_stop(&t, &natka, 30000), ==, 0);
  it_js_close(&js);
  free(b.seen);
  return it_pass(&t);
}
