/*
 * The happy path at volume: 10,000 events with binary payloads, keys,
 * repeated headers and four kinds go through natka to five topics. Each
 * arrives exactly once in each topic its kind maps to, intact and in key
 * order; after SIGTERM natka exits 0 with everything acked.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define N_EVENTS 10000
#define N_KEYS 100

enum { T_ORDERS, T_PAYMENTS, T_AUDIT, T_ARCHIVE, T_MISC, N_TOPICS };
enum { K_ORDERS, K_PAYMENTS, K_AUDIT, K_MISC, N_KINDS };

typedef struct sent {
  int kind, key;
  unsigned char *data;
  size_t len;
  unsigned seen[N_TOPICS]; /* copies read per topic */
} sent;

typedef struct key_pos {
  int32_t partition;
  int64_t offset;
  long seq;
} key_pos;

typedef struct flow {
  it_test *t;
  char kinds[N_KINDS][128];
  char topics[N_TOPICS][128];
  sent *ev;
  key_pos last[N_TOPICS][N_KEYS];
  size_t expected, read;
  int64_t publish_start_ms, all_read_ms;
} flow;

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(void) { /* xorshift64*, fixed seed: reproducible */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (uint32_t)((rng_state * 2685821657736338717ULL) >> 32);
}

static int kind_maps_to(int kind, int topic) {
  switch (kind) {
  case K_ORDERS:
    return topic == T_ORDERS;
  case K_PAYMENTS:
    return topic == T_PAYMENTS;
  case K_AUDIT:
    return topic == T_AUDIT || topic == T_ARCHIVE;
  default:
    return topic == T_MISC;
  }
}

static void setup_names(flow *f) {
  const char *u = f->t->uniq;
  snprintf(f->kinds[K_ORDERS], 128, "orders.created");
  snprintf(f->kinds[K_PAYMENTS], 128, "payments.settled");
  snprintf(f->kinds[K_AUDIT], 128, "audit.login");
  /* Unique per run, with a '/' that the default route turns into '_'. */
  snprintf(f->kinds[K_MISC], 128, "%s.misc/thing", u);
  snprintf(f->topics[T_ORDERS], 128, "%s_orders", u);
  snprintf(f->topics[T_PAYMENTS], 128, "%s_payments", u);
  snprintf(f->topics[T_AUDIT], 128, "%s_audit", u);
  snprintf(f->topics[T_ARCHIVE], 128, "%s_archive", u);
  snprintf(f->topics[T_MISC], 128, "%s.misc_thing", u);
}

static void write_files(flow *f, char *config) {
  it_test *t = f->t;
  char rule[PATH_MAX];
  it_write_file(t, "route.lua", rule,
                "local U = \"%s\"\n"
                "return {\n"
                "  route = function(ev)\n"
                "    local k = ev.kind\n"
                "    if k:find(\"^orders%%.\") then return U .. \"_orders\" "
                "end\n"
                "    if k:find(\"^payments%%.\") then return U .. "
                "\"_payments\" end\n"
                "    if k:find(\"^audit%%.\") then\n"
                "      return { U .. \"_audit\", U .. \"_archive\" }\n"
                "    end\n"
                "    return nil\n"
                "  end,\n"
                "}\n",
                t->uniq);
  it_write_file(t, "natka.conf", config,
                "return {\n"
                "  nats = { url = \"%s\" },\n"
                "  kafka = { brokers = \"%s\" },\n"
                "  jetstream = { stream = \"%s\", subjects = { \"%s.>\" },\n"
                "    durable = \"%s_d\", ack_wait_ms = 30000,\n"
                "    max_ack_pending = 1000 },\n"
                "  rules = { files = { \"%s\" } },\n"
                "  dlq = { topic = \"%s_dlq\" },\n"
                "  shutdown = { drain_timeout_ms = 10000 },\n"
                "  log = { level = \"info\" },\n"
                "}\n",
                t->nats_url, t->kafka_brokers, t->uniq, t->uniq, t->uniq, rule,
                t->uniq);
}

static void publish_all(flow *f, it_js *js) {
  it_test *t = f->t;
  char subject[160], id[32], key[32], seq[32], tag1[48], tag2[48];
  f->publish_start_ms = it_now_ms();
  for (int i = 0; i < N_EVENTS; i++) {
    sent *e = &f->ev[i];
    e->kind = (int)(rnd() % N_KINDS);
    e->key = (int)(rnd() % N_KEYS);
    e->len = i % 500 == 7 ? 0 : rnd() % 2001;
    e->data = malloc(e->len + 1);
    IT_CHECK(t, e->data != NULL);
    for (size_t b = 0; b < e->len; b++)
      e->data[b] = (unsigned char)(b % 97 == 3 ? 0 : rnd());
    f->expected += e->kind == K_AUDIT ? 2 : 1;
    snprintf(subject, sizeof(subject), "%s.in.%d", t->uniq, e->kind);
    snprintf(id, sizeof(id), "ev-%d", i);
    snprintf(key, sizeof(key), "key-%d", e->key);
    snprintf(seq, sizeof(seq), "%d", i);
    snprintf(tag1, sizeof(tag1), "first-%d", i);
    snprintf(tag2, sizeof(tag2), "second-%d", i);
    it_hdr h[] = {{"Nats-Msg-Id", id},
                  {"ce-type", f->kinds[e->kind]},
                  {"ce-partitionkey", key},
                  {"x-seq", seq},
                  {"x-tag", tag1},
                  {"x-tag", tag2},
                  {"traceparent",
                   "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}};
    it_js_publish(t, js, subject, h, sizeof(h) / sizeof(h[0]), e->data, e->len);
  }
  it_js_publish_wait(t, js, 60000);
  it_log(t, "published %d events in %lld ms", N_EVENTS,
         (long long)(it_now_ms() - f->publish_start_ms));
}

static int topic_index(flow *f, const char *topic) {
  for (int i = 0; i < N_TOPICS; i++)
    if (strcmp(f->topics[i], topic) == 0)
      return i;
  return -1;
}

static const char *hval(const it_record *r, const char *name, size_t nth) {
  const it_header *h = it_record_header(r, name, nth);
  return h != NULL ? h->value : NULL;
}

/* Checks one record against what was published. */
static int check_record(it_test *t, const it_record *r, void *data) {
  flow *f = data;
  char want[64];
  const char *id = it_record_hstr(r, "ce_id");
  int ti = topic_index(f, r->topic);
  IT_CHECK(t, ti >= 0);
  IT_CHECK(t, id != NULL && strncmp(id, "ev-", 3) == 0);
  long i = strtol(id + 3, NULL, 10);
  IT_CHECK_INT(t, i, >=, 0);
  IT_CHECK_INT(t, i, <, N_EVENTS);
  sent *e = &f->ev[i];
  if (!kind_maps_to(e->kind, ti))
    IT_FAIL(t, "%s (kind %s) found in topic %s", id, f->kinds[e->kind],
            r->topic);
  if (e->seen[ti]++ != 0)
    IT_FAIL(t, "%s read twice from %s (offset %lld)", id, r->topic,
            (long long)r->offset);
  IT_CHECK_STR(t, it_record_hstr(r, "ce_type"), f->kinds[e->kind]);
  IT_CHECK_STR(t, it_record_hstr(r, "ce_specversion"), "1.0");
  snprintf(want, sizeof(want), "key-%d", e->key);
  IT_CHECK_MEM(t, r->key, r->key_len, want, strlen(want));
  IT_CHECK(t, r->value != NULL);
  IT_CHECK_MEM(t, r->value, r->value_len, e->data, e->len);
  snprintf(want, sizeof(want), "first-%ld", i);
  IT_CHECK_STR(t, hval(r, "x-tag", 0), want);
  snprintf(want, sizeof(want), "second-%ld", i);
  IT_CHECK_STR(t, hval(r, "x-tag", 1), want);
  IT_CHECK(t, hval(r, "x-tag", 2) == NULL);
  IT_CHECK_HAS(t, it_record_hstr(r, "traceparent"), "4bf92f3577b34da6");
  IT_CHECK(t, it_record_hstr(r, "x-seq") != NULL);
  long seq = strtol(it_record_hstr(r, "x-seq"), NULL, 10);
  IT_CHECK_INT(t, seq, ==, i);

  /* Per key and topic: one partition, offsets and sequences increasing. */
  key_pos *k = &f->last[ti][e->key];
  if (k->seq >= 0) {
    IT_CHECK_INT(t, r->partition, ==, k->partition);
    IT_CHECK_INT(t, r->offset, >, k->offset);
    if (seq <= k->seq)
      IT_FAIL(t,
              "key-%d out of order in %s: seq %ld at offset %lld after "
              "seq %ld at offset %lld",
              e->key, r->topic, seq, (long long)r->offset, k->seq,
              (long long)k->offset);
  }
  *k = (key_pos){r->partition, r->offset, seq};
  if (++f->read == f->expected)
    f->all_read_ms = it_now_ms();
  return f->read >= f->expected;
}

int main(int argc, char **argv) {
  it_test t;
  flow f = {0};
  it_proc natka;
  it_js js;
  char config[PATH_MAX], durable[96];
  it_consumer c;

  it_init(&t, "flow", argc, argv, 1);
  f.t = &t;
  f.ev = calloc(N_EVENTS, sizeof(*f.ev));
  IT_CHECK(&t, f.ev != NULL);
  for (int ti = 0; ti < N_TOPICS; ti++)
    for (int k = 0; k < N_KEYS; k++)
      f.last[ti][k].seq = -1;
  setup_names(&f);
  write_files(&f, config);

  snprintf(durable, sizeof(durable), "%s_d", t.uniq);
  it_natka_start(&t, &natka, config, "natka.log");
  it_js_connect(&t, &js);
  it_js_wait_consumer(&t, &js, t.uniq, durable, 30000); /* natka made both */
  publish_all(&f, &js);

  const char *topics[N_TOPICS];
  for (int i = 0; i < N_TOPICS; i++)
    topics[i] = f.topics[i];
  size_t n = it_kafka_read(&t, topics, N_TOPICS, 0, 240000, check_record, &f);
  it_log(&t, "read %zu records (expected %zu)", n, f.expected);
  IT_CHECK_INT(&t, n, ==, f.expected);
  for (int i = 0; i < N_EVENTS; i++)
    for (int ti = 0; ti < N_TOPICS; ti++)
      if (f.ev[i].seen[ti] != (unsigned)kind_maps_to(f.ev[i].kind, ti))
        IT_FAIL(&t, "ev-%d (kind %s) read %u time(s) from %s", i,
                f.kinds[f.ev[i].kind], f.ev[i].seen[ti], f.topics[ti]);
  double secs = (f.all_read_ms - f.publish_start_ms) / 1000.0;
  it_log(&t,
         "%d events (%zu records) published to read in %.2f s: %.0f "
         "events/s (informational)",
         N_EVENTS, f.expected, secs, secs > 0 ? N_EVENTS / secs : 0.0);

  IT_CHECK_INT(&t, it_natka_stop(&t, &natka, 30000), ==, 0);
  /* The server applies acks asynchronously: allow it a moment. */
  it_js_wait_settled(&t, &js, t.uniq, durable, 5000);
  IT_CHECK(&t, it_js_consumer(&t, &js, t.uniq, durable, &c) == 0);
  it_log(&t, "consumer: ack floor %llu, %lld redelivered",
         (unsigned long long)c.ack_floor_stream, (long long)c.num_redelivered);
  IT_CHECK_INT(&t, c.ack_floor_stream, ==, N_EVENTS);
  it_js_close(&js);
  for (int i = 0; i < N_EVENTS; i++)
    free(f.ev[i].data);
  free(f.ev);
  return it_pass(&t);
}
