/*
 * Dedup and degrade rules steered by switches, all without a restart. A
 * dedup rule keyed by an order id lets one event per order through (the
 * duplicates are acked and counted) until the window has passed. Then, while
 * events stream in, switches flipped in KV hold events (and release them),
 * drop heartbeats, copy events to NATS, and move everything to NATS; each
 * flip must take effect within MARGIN_MS (the measured delay is printed).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define N_ORDERS 50
#define PUBLISH_EVERY_MS 10
#define PHASE_MS 3000
#define MARGIN_MS 1000 /* a flip takes effect within this */
#define EDGE_MS 200    /* events this close before a flip may go either way */
#define N_MAX 20000

typedef enum { P_NONE, P_HOLD, P_DROP_HB, P_DUAL, P_NATS_ONLY } phase_kind;

static const struct flip {
  const char *key, *value;
  phase_kind phase;
} flips[] = {{"(start)", "", P_NONE},
             {"hold", "on", P_HOLD},
             {"hold", "off", P_NONE},
             {"drop_heartbeats", "on", P_DROP_HB},
             {"drop_heartbeats", "off", P_NONE},
             {"dual", "on", P_DUAL},
             {"dual", "off", P_NONE},
             {"mode", "nats_only", P_NATS_ONLY},
             {"mode", "kafka_only", P_NONE}};
#define N_FLIPS (sizeof(flips) / sizeof(*flips))

typedef struct ev_state {
  int64_t pub_ms, kafka_ms;      /* kafka_ms: when the test read it */
  uint8_t kafka, dual, nats, hb; /* copies read; hb: a heartbeat */
} ev_state;

typedef struct degrade {
  it_test *t;
  char stream[96], subject[128], durable[96], out[128], dlq[128];
  char status_key[256];
  it_js js;
  it_kafka_tail *tail;
  int order_copies[N_ORDERS];
  pthread_mutex_t mu; /* guards ev and last */
  ev_state ev[N_MAX + 1];
  int last, stop;
  int64_t flip_at[N_FLIPS];
  char thread_error[256];
  char problems[2048]; /* natka misbehaviour, reported at the end */
} degrade;

static void problem(degrade *s, const char *what) {
  size_t n = strlen(s->problems);
  snprintf(s->problems + n, sizeof(s->problems) - n, "\n  %s", what);
  it_log(s->t, "PROBLEM: %s", what);
}

/* ---------------------------------------------------------------- status */

/* The status natka wrote for `revision` (polls the status bucket). */
static cJSON *status_at(degrade *s, kvStore *st_kv, uint64_t revision) {
  int64_t deadline = it_now_ms() + 15000;
  char *text = NULL;
  do {
    free(text);
    text = it_kv_get(s->t, st_kv, s->status_key);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    if (it_json_num(j, "revision") == (double)revision) {
      free(text);
      return j;
    }
    cJSON_Delete(j);
    it_sleep_ms(100);
  } while (it_now_ms() < deadline);
  IT_FAIL(s->t, "no status for revision %llu; last: %s",
          (unsigned long long)revision, text ? text : "(none)");
}

/* stats.<name> of a status, or -1 (a problem) when it is missing. */
static double stat(degrade *s, const cJSON *j, const char *name) {
  char path[64], msg[160];
  snprintf(path, sizeof(path), "stats.%s", name);
  double v = it_json_num(j, path);
  snprintf(msg, sizeof(msg), "status JSON has no stats.%s", name);
  if (v < 0)
    problem(s, msg);
  return v;
}

/* ---------------------------------------------------------------- dedup */

static int on_order(it_test *t, const it_record *r, void *data) {
  degrade *s = data;
  const char *id = it_record_hstr(r, "ce_id");
  const char *order = it_record_hstr(r, "order-id");
  if (strcmp(r->topic, s->out) != 0 || id == NULL || order == NULL ||
      strncmp(order, "o-", 2) != 0 || atoi(order + 2) >= N_ORDERS)
    IT_FAIL(t, "unexpected record in %s: ce_id %s, order-id %s", r->topic,
            id ? id : "(none)", order ? order : "(none)");
  s->order_copies[atoi(order + 2)]++;
  for (int i = 0; i < N_ORDERS; i++)
    if (s->order_copies[i] == 0)
      return 0;
  return 1;
}

static void publish_order(degrade *s, int n, int order) {
  char id[32], oid[32], data[64];
  snprintf(id, sizeof(id), "d-%d", n);
  snprintf(oid, sizeof(oid), "o-%d", order);
  int len = snprintf(data, sizeof(data), "order %d, copy %s", order, id);
  it_hdr h[] = {{"Nats-Msg-Id", id}, {"ce-type", "order"}, {"order-id", oid}};
  it_js_publish(s->t, &s->js, s->subject, h, 3, data, (size_t)len);
}

/* 100 events, 50 order ids: one per order is delivered, the others acked. */
static void dedup_orders(degrade *s) {
  int n_seen = 0;
  for (int i = 0; i < 2 * N_ORDERS; i++)
    publish_order(s, i, i % N_ORDERS);
  it_js_publish_wait(s->t, &s->js, 30000);
  int64_t deadline = it_now_ms() + 60000;
  int all = 0;
  while (!all && it_now_ms() < deadline) {
    it_kafka_tail_poll(s->t, s->tail, 500, on_order, s);
    while (n_seen < N_ORDERS && s->order_copies[n_seen] > 0)
      n_seen++;
    all = n_seen == N_ORDERS;
  }
  it_kafka_tail_poll(s->t, s->tail, IT_KAFKA_LINGER_MS, on_order, s);
  for (int i = 0; i < N_ORDERS; i++)
    if (s->order_copies[i] != 1)
      IT_FAIL(s->t, "order o-%d delivered %d times", i, s->order_copies[i]);
  it_js_wait_settled(s->t, &s->js, s->stream, s->durable, 10000);
  it_log(s->t, "%d events, %d orders: one record per order, all acked",
         2 * N_ORDERS, N_ORDERS);
}

/* ---------------------------------------------------------------- switches */

static void *publisher(void *arg) {
  degrade *s = arg;
  char id[32], data[64];
  while (!__atomic_load_n(&s->stop, __ATOMIC_SEQ_CST)) {
    pthread_mutex_lock(&s->mu);
    int n = s->last < N_MAX ? ++s->last : 0;
    if (n > 0) {
      s->ev[n].pub_ms = it_now_ms();
      s->ev[n].hb = n % 4 == 0;
    }
    pthread_mutex_unlock(&s->mu);
    if (n == 0)
      break;
    snprintf(id, sizeof(id), "e-%d", n);
    int len = snprintf(data, sizeof(data), "stream event %d", n);
    natsMsg *m = NULL;
    natsStatus st = natsMsg_Create(&m, s->subject, NULL, data, len);
    if (st == NATS_OK)
      st = natsMsgHeader_Set(m, "Nats-Msg-Id", id);
    if (st == NATS_OK)
      st = natsMsgHeader_Set(m, "ce-type", n % 4 == 0 ? "heartbeat" : "tick");
    if (st == NATS_OK)
      st = js_PublishMsgAsync(s->js.js, &m, NULL);
    natsMsg_Destroy(m);
    if (st != NATS_OK) {
      snprintf(s->thread_error, sizeof(s->thread_error), "publish: %s",
               natsStatus_GetText(st));
      break;
    }
    it_sleep_ms(PUBLISH_EVERY_MS);
  }
  return NULL;
}

static int on_event(it_test *t, const it_record *r, void *data) {
  degrade *s = data;
  const char *id = it_record_hstr(r, "ce_id");
  int n = id != NULL && strncmp(id, "e-", 2) == 0 ? atoi(id + 2) : 0;
  if (strcmp(r->topic, s->out) != 0 || n < 1 || n > N_MAX)
    IT_FAIL(t, "unexpected record in %s: ce_id %s, natka-error %s", r->topic,
            id ? id : "(none)", it_record_hstr(r, "natka-error"));
  pthread_mutex_lock(&s->mu);
  int copies = ++s->ev[n].kafka;
  if (copies == 1)
    s->ev[n].kafka_ms = it_now_ms();
  pthread_mutex_unlock(&s->mu);
  if (copies > 1)
    IT_FAIL(t, "e-%d read twice from Kafka", n);
  return 0;
}

/* Dual writes (<uniq>.dual.<kind>) and mode copies (<uniq>.nats.<kind>). */
static void on_nats(natsConnection *nc, natsSubscription *sub, natsMsg *m,
                    void *data) {
  degrade *s = data;
  const char *id = NULL;
  (void)nc, (void)sub;
  if (natsMsgHeader_Get(m, "ce-id", &id) == NATS_OK && id != NULL &&
      strncmp(id, "e-", 2) == 0) {
    int n = atoi(id + 2);
    pthread_mutex_lock(&s->mu);
    if (n >= 1 && n <= N_MAX) {
      if (strstr(natsMsg_GetSubject(m), ".dual.") != NULL)
        s->ev[n].dual++;
      else
        s->ev[n].nats++;
    }
    pthread_mutex_unlock(&s->mu);
  }
  natsMsg_Destroy(m);
}

/* Reads Kafka for ms. */
static void pump(degrade *s, int64_t ms) {
  int64_t until = it_now_ms() + ms;
  while (it_now_ms() < until)
    it_kafka_tail_poll(s->t, s->tail, until - it_now_ms(), on_event, s);
}

/* Whether e did what phase k asks; -1 when k says nothing about it. */
static int behaves(degrade *s, size_t k, const ev_state *e) {
  int64_t next = k + 1 < N_FLIPS ? s->flip_at[k + 1] : INT64_MAX;
  switch (flips[k].phase) {
  case P_HOLD:
    return e->kafka == 1 && e->kafka_ms >= next && !e->dual && !e->nats;
  case P_DROP_HB:
    return e->hb ? !e->kafka && !e->dual && !e->nats : -1;
  case P_DUAL:
    return e->kafka == 1 && e->dual == 1 && !e->nats;
  case P_NATS_ONLY:
    return !e->kafka && !e->dual && e->nats == 1;
  default:
    return e->kafka == 1 && !e->dual && !e->nats;
  }
}

/* Checks every event against the phase it was published in and prints how
 * long each flip took to show. */
static void check_phases(degrade *s) {
  char msg[256];
  for (size_t k = 0; k < N_FLIPS; k++) {
    int64_t at = s->flip_at[k];
    int64_t next = k + 1 < N_FLIPS ? s->flip_at[k + 1] : INT64_MAX;
    int64_t last_old = -1, first_new = -1;
    int n = 0, wrong = 0, first_wrong = 0;
    for (int i = 1; i <= s->last; i++) {
      const ev_state *e = &s->ev[i];
      int ok = behaves(s, k, e);
      if (e->pub_ms < at || e->pub_ms >= next || ok < 0)
        continue;
      n++;
      if (!ok && e->pub_ms < next - EDGE_MS && e->pub_ms - at > last_old)
        last_old = e->pub_ms - at;
      if (ok && first_new < 0)
        first_new = e->pub_ms - at;
      if (!ok && e->pub_ms >= at + MARGIN_MS && e->pub_ms < next - EDGE_MS &&
          wrong++ == 0)
        first_wrong = i;
    }
    snprintf(msg, sizeof(msg), last_old < 0 ? "none" : "+%lld ms",
             (long long)last_old);
    if (k > 0)
      it_log(s->t,
             "%s=%s: %d events; handled the new way from one "
             "published +%lld ms after the put; old way after it: %s",
             flips[k].key, flips[k].value, n, (long long)first_new, msg);
    if (wrong > 0) {
      const ev_state *e = &s->ev[first_wrong];
      snprintf(msg, sizeof(msg),
               "%s=%s: %d events published >= %d ms after the flip were not "
               "handled by it, e.g. e-%d (%s, +%lld ms): kafka %d, dual %d, "
               "nats %d",
               flips[k].key, flips[k].value, wrong, MARGIN_MS, first_wrong,
               e->hb ? "heartbeat" : "tick", (long long)(e->pub_ms - at),
               e->kafka, e->dual, e->nats);
      problem(s, msg);
    }
  }
  for (int i = 1; i <= s->last; i++) {
    const ev_state *e = &s->ev[i];
    if (e->dual > 1 || e->nats > 1 || (!e->hb && e->kafka + e->nats == 0))
      IT_FAIL(s->t, "e-%d: %d Kafka, %d dual and %d NATS copies", i, e->kafka,
              e->dual, e->nats);
  }
}

static void flip_switches(degrade *s, kvStore *sw_kv) {
  pthread_t th;
  int64_t t0 = it_now_ms();
  s->flip_at[0] = t0;
  IT_CHECK(s->t, pthread_create(&th, NULL, publisher, s) == 0);
  pump(s, PHASE_MS);
  for (size_t k = 1; k < N_FLIPS; k++) {
    s->flip_at[k] = it_now_ms();
    it_kv_put(s->t, sw_kv, flips[k].key, flips[k].value);
    it_log(s->t, "switch %s = %s", flips[k].key, flips[k].value);
    pump(s, PHASE_MS);
    if (flips[k - 1].phase != P_HOLD)
      continue;
    /* Released: everything held arrives before the next flip. */
    int64_t deadline = it_now_ms() + 30000, first = INT64_MAX, last = 0;
    int held = 1;
    while (held > 0 && it_now_ms() < deadline) {
      held = 0;
      pthread_mutex_lock(&s->mu);
      for (int i = 1; i <= s->last; i++) {
        const ev_state *e = &s->ev[i];
        if (e->pub_ms < s->flip_at[k - 1] || e->pub_ms >= s->flip_at[k])
          continue;
        held += e->kafka == 0;
        if (e->kafka && e->kafka_ms >= s->flip_at[k]) {
          first = e->kafka_ms < first ? e->kafka_ms : first;
          last = e->kafka_ms > last ? e->kafka_ms : last;
        }
      }
      pthread_mutex_unlock(&s->mu);
      if (held > 0)
        pump(s, 200);
    }
    if (held > 0)
      IT_FAIL(s->t,
              "%d events held by hold=on not in Kafka 30 s after "
              "hold=off",
              held);
    it_log(s->t, "held events arrived %lld to %lld ms after hold=off",
           (long long)(first - s->flip_at[k]),
           (long long)(last - s->flip_at[k]));
  }
  __atomic_store_n(&s->stop, 1, __ATOMIC_SEQ_CST);
  pthread_join(th, NULL);
  if (s->thread_error[0] != '\0')
    IT_FAIL(s->t, "publisher: %s", s->thread_error);
  it_js_publish_wait(s->t, &s->js, 30000);
  it_log(s->t, "published %d events in %.1f s", s->last,
         (it_now_ms() - t0) / 1000.0);
  for (int64_t end = it_now_ms() + 30000; it_now_ms() < end;) {
    it_consumer c;
    pump(s, 500);
    if (it_js_consumer(s->t, &s->js, s->stream, s->durable, &c) == 0 &&
        c.num_pending == 0 && c.num_ack_pending == 0)
      break;
  }
  pump(s, IT_KAFKA_LINGER_MS);
}

/* ---------------------------------------------------------------- main */

static const char degrade_rule[] =
    "return {\n"
    "  degrade = function(ev, sw)\n"
    "    if sw.hold == 'on' then return 'hold' end\n"
    "    if sw.drop_heartbeats == 'on' and ev.kind == 'heartbeat' then\n"
    "      return 'drop'\n"
    "    end\n"
    "    if sw.dual == 'on' then\n"
    "      return { 'dual', subject = '%s.dual.' .. ev.kind }\n"
    "    end\n"
    "  end,\n"
    "  tests = {\n"
    "    { name = 'hold wins', event = { kind = 'heartbeat' },\n"
    "      switches = { hold = 'on', dual = 'on' }, degrade = 'hold' },\n"
    "    { name = 'dual copy', event = { kind = 'tick' },\n"
    "      switches = { dual = 'on' },\n"
    "      degrade = { 'dual', subject = '%s.dual.tick' } },\n"
    "    { name = 'no switch, no opinion', event = { kind = 'tick' },\n"
    "      degrade = false },\n"
    "  },\n"
    "}\n";

static void write_config(it_test *t, degrade *s, char *config) {
  it_write_file(t, "natka.conf", config,
                "return {\n"
                "  nats = { url = \"%s\", name = \"%s\" },\n"
                "  kafka = { brokers = \"%s\" },\n"
                "  jetstream = { stream = \"%s\", subjects = { \"%s\" },\n"
                "    durable = \"%s\", ack_wait_ms = 30000,\n"
                "    nak_delay_ms = 200 },\n"
                "  rules = { bucket = \"%s_rules\",\n"
                "    status_bucket = \"%s_status\",\n"
                "    status_subject = \"%s.status\" },\n"
                "  switches = { bucket = \"%s_switches\" },\n"
                "  dedup = { window_ms = 2000 },\n"
                "  degrade = { subject_prefix = \"%s.nats\" },\n"
                "  dlq = { topic = \"%s\" },\n"
                "  shutdown = { drain_timeout_ms = 15000 },\n"
                "}\n",
                t->nats_url, t->uniq, t->kafka_brokers, s->stream, s->subject,
                s->durable, t->uniq, t->uniq, t->uniq, t->uniq, t->uniq,
                s->dlq);
}

int main(int argc, char **argv) {
  it_test t;
  it_proc natka;
  it_consumer c;
  natsSubscription *dual_sub = NULL, *nats_sub = NULL;
  char config[PATH_MAX], name[512], src[2048];
  degrade *s = calloc(1, sizeof(*s));

  it_init(&t, "degrade", argc, argv, 1);
  IT_CHECK(&t, s != NULL);
  s->t = &t;
  pthread_mutex_init(&s->mu, NULL);
  snprintf(s->stream, sizeof(s->stream), "%s", t.uniq);
  snprintf(s->subject, sizeof(s->subject), "%s.in", t.uniq);
  snprintf(s->durable, sizeof(s->durable), "%s_d", t.uniq);
  snprintf(s->out, sizeof(s->out), "%s_out", t.uniq);
  snprintf(s->dlq, sizeof(s->dlq), "%s_dlq", t.uniq);
  it_status_key(s->status_key, sizeof(s->status_key), t.uniq);
  write_config(&t, s, config);

  it_js_connect(&t, &s->js);
  it_js_add_stream(&t, &s->js, s->stream, s->subject);
  snprintf(name, sizeof(name), "%s_rules", t.uniq);
  kvStore *rules_kv = it_kv_open(&t, &s->js, name, 64);
  snprintf(name, sizeof(name), "%s_switches", t.uniq);
  kvStore *sw_kv = it_kv_open(&t, &s->js, name, 16);
  snprintf(name, sizeof(name), "%s_status", t.uniq);
  kvStore *st_kv = it_kv_open(&t, &s->js, name, 1);
  const char *topics[] = {s->out, s->dlq};
  it_kafka_create_topics(&t, topics, 2, 3);
  s->tail = it_kafka_tail_open(&t, topics, 2, 30000);

  /* 1. Dedup by order id, then the same order again after the window. */
  snprintf(src, sizeof(src),
           "return {\n"
           "  dedup = function(ev) return ev:header('order-id') end,\n"
           "  route = function(ev) return '%s' end,\n"
           "  tests = { { name = 'keyed by order', event = { kind = 'k',\n"
           "    headers = { { 'order-id', 'o-1' } } }, dedup = 'o-1' } },\n"
           "}\n",
           s->out);
  uint64_t rev = it_kv_put(&t, rules_kv, "d", src);
  it_natka_start(&t, &natka, config, "natka.log");
  cJSON_Delete(status_at(s, st_kv, rev));
  it_js_wait_consumer(&t, &s->js, s->stream, s->durable, 30000);
  dedup_orders(s);
  int64_t dedup_done = it_now_ms();

  snprintf(src, sizeof(src), degrade_rule, t.uniq, t.uniq);
  rev = it_kv_put(&t, rules_kv, "g", src);
  cJSON *j = status_at(s, st_kv, rev); /* posted with the counters so far */
  double dedup_stat = stat(s, j, "deduplicated");
  it_log(&t, "status after the dedup: deduplicated %.0f, dropped %.0f",
         dedup_stat, stat(s, j, "dropped"));
  if (dedup_stat >= 0 && dedup_stat != N_ORDERS)
    problem(s, "stats.deduplicated is not 50");
  cJSON_Delete(j);

  if (it_now_ms() - dedup_done < 3000)
    it_sleep_ms(3000 - (it_now_ms() - dedup_done));
  publish_order(s, 2 * N_ORDERS, 0);
  it_js_publish_wait(&t, &s->js, 30000);
  for (int64_t end = it_now_ms() + 30000;
       s->order_copies[0] < 2 && it_now_ms() < end;)
    it_kafka_tail_poll(&t, s->tail, 500, on_order, s);
  IT_CHECK_INT(&t, s->order_copies[0], ==, 2);
  it_log(&t, "o-0 sent again 3 s later (window 2 s): delivered again");

  /* 2. Switches flipped under a steady stream. */
  snprintf(name, sizeof(name), "%s.dual.>", t.uniq);
  IT_CHECK(&t, natsConnection_Subscribe(&dual_sub, s->js.nc, name, on_nats,
                                        s) == NATS_OK);
  snprintf(name, sizeof(name), "%s.nats.>", t.uniq);
  IT_CHECK(&t, natsConnection_Subscribe(&nats_sub, s->js.nc, name, on_nats,
                                        s) == NATS_OK);
  IT_CHECK(&t, natsConnection_FlushTimeout(s->js.nc, 5000) == NATS_OK);
  flip_switches(s, sw_kv);
  natsSubscription_Unsubscribe(dual_sub);
  natsSubscription_Unsubscribe(nats_sub);
  check_phases(s);
  int drops = 0;
  for (int i = 1; i <= s->last; i++)
    drops += s->ev[i].hb && !s->ev[i].kafka && !s->ev[i].nats;

  IT_CHECK_INT(&t, it_natka_stop(&t, &natka, 30000), ==, 0);
  it_js_wait_settled(&t, &s->js, s->stream, s->durable, 10000);
  IT_CHECK(&t, it_js_consumer(&t, &s->js, s->stream, s->durable, &c) == 0);
  IT_CHECK_INT(&t, c.ack_floor_stream, ==, 2 * N_ORDERS + 1 + s->last);
  j = status_at(s, st_kv, rev); /* the last word, written at stop */
  it_log(&t,
         "final status: dropped %.0f, degrade_drops %.0f, held %.0f, "
         "dual_writes %.0f (%d heartbeats dropped)",
         stat(s, j, "dropped"), stat(s, j, "degrade_drops"), stat(s, j, "held"),
         stat(s, j, "dual_writes"), drops);
  IT_CHECK_INT(&t, stat(s, j, "dropped"), ==, N_ORDERS + drops);
  cJSON_Delete(j);
  natsSubscription_Destroy(dual_sub);
  natsSubscription_Destroy(nats_sub);
  it_kafka_tail_close(s->tail);
  kvStore_Destroy(st_kv);
  kvStore_Destroy(sw_kv);
  kvStore_Destroy(rules_kv);
  it_js_close(&s->js);
  if (s->problems[0] != '\0')
    IT_FAIL(&t, "natka misbehaved:%s", s->problems);
  pthread_mutex_destroy(&s->mu);
  free(s);
  return it_pass(&t);
}
