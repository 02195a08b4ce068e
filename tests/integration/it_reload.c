/*
 * Rules as live code: natka reads its rule modules from a KV bucket and
 * swaps each new revision in without a restart. Nothing is fetched before a
 * first valid set; 50,000 events are delivered exactly once while the set
 * changes every 200 ms, each in the topic the revision named in its record
 * routes to; every kind of bad module is rejected (the status bucket and
 * subject say why) while the previous revision keeps delivering; a rule that
 * runs away at event time dead-letters only its own events; deleting a key
 * removes its module.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define N_LOAD 50000
#define N_MAX (N_LOAD + 10000)
#define RELOAD_EVERY_MS 200
#define MAX_REVS 2048
#define N_LATENCY 20
#define ANY 255
#define ROUTE_ALL "return { route = function(ev) return \"%s\" end }\n"

enum { T_A, T_B, T_Z, T_DFLT, T_DLQ, N_TOPICS };

typedef struct seen {
  uint8_t records, topic, want_topic; /* want_topic ANY: by revision */
  uint64_t rev, want_rev;             /* want_rev 0: checked by revision */
  const char *want_error;             /* DLQ: what natka-error names */
} seen;

typedef struct reload {
  it_test *t;
  char topic[N_TOPICS][128];
  char stream[96], subject[128], durable[96], status_key[256];
  it_js js;
  kvStore *kv;
  natsSubscription *status_sub;
  it_kafka_tail *tail;
  seen ev[N_MAX + 1];
  int last; /* events published: e-1 .. e-last */
  int wait_first, wait_last, missing;
  uint64_t max_rev;   /* highest natka-rules-revision read */
  pthread_mutex_t mu; /* guards revs with the reloader thread running */
  uint64_t revs[MAX_REVS];
  int rev_topic[MAX_REVS];
  size_t nrevs;
  int stop;
  char thread_error[256];
} reload;

/* ---------------------------------------------------------------- revisions */

static void add_rev(reload *s, uint64_t rev, int topic) {
  pthread_mutex_lock(&s->mu);
  if (s->nrevs < MAX_REVS) {
    s->revs[s->nrevs] = rev;
    s->rev_topic[s->nrevs++] = topic;
  }
  pthread_mutex_unlock(&s->mu);
}

/* The topic revision `rev` routes to, or -1 when the test never pushed it. */
static int topic_of_rev(reload *s, uint64_t rev) {
  for (size_t i = 0; i < s->nrevs; i++)
    if (s->revs[i] == rev)
      return s->rev_topic[i];
  return -1;
}

static uint64_t put_route_all(reload *s, int topic) {
  char src[256];
  snprintf(src, sizeof(src), ROUTE_ALL, s->topic[topic]);
  uint64_t rev = it_kv_put(s->t, s->kv, "r", src);
  add_rev(s, rev, topic);
  return rev;
}

/* Replaces module r every RELOAD_EVERY_MS, alternating its topic. */
static void *reloader(void *arg) {
  reload *s = arg;
  char src[256];
  for (int i = 0; !__atomic_load_n(&s->stop, __ATOMIC_SEQ_CST); i++) {
    int topic = i % 2 == 0 ? T_B : T_A;
    uint64_t rev = 0;
    snprintf(src, sizeof(src), ROUTE_ALL, s->topic[topic]);
    natsStatus st = kvStore_PutString(&rev, s->kv, "r", src);
    if (st != NATS_OK) {
      snprintf(s->thread_error, sizeof(s->thread_error), "KV put: %s",
               natsStatus_GetText(st));
      break;
    }
    add_rev(s, rev, topic);
    it_sleep_ms(RELOAD_EVERY_MS);
  }
  return NULL;
}

/* ---------------------------------------------------------------- Kafka */

static int on_record(it_test *t, const it_record *r, void *data) {
  reload *s = data;
  const char *id = it_record_hstr(r, "ce_id");
  const char *rev = it_record_hstr(r, "natka-rules-revision");
  int n = id != NULL && strncmp(id, "e-", 2) == 0 ? atoi(id + 2) : 0;
  int topic = 0;
  while (topic < N_TOPICS && strcmp(r->topic, s->topic[topic]) != 0)
    topic++;
  if (n < 1 || n > s->last || topic == N_TOPICS || rev == NULL)
    IT_FAIL(t, "unexpected record in %s: ce_id %s, revision %s", r->topic,
            id ? id : "(none)", rev ? rev : "(none)");
  seen *e = &s->ev[n];
  if (e->records++ != 0)
    IT_FAIL(t,
            "e-%d read twice: from %s (revision %llu), then from %s "
            "(revision %s)",
            n, s->topic[e->topic], (unsigned long long)e->rev, r->topic, rev);
  e->topic = (uint8_t)topic;
  e->rev = strtoull(rev, NULL, 10);
  if (e->rev > s->max_rev)
    s->max_rev = e->rev;
  if (e->want_topic != ANY && e->want_topic != topic)
    IT_FAIL(t, "e-%d went to %s (revision %s), expected %s", n, r->topic, rev,
            s->topic[e->want_topic]);
  if (e->want_rev != 0 && e->want_rev != e->rev)
    IT_FAIL(t, "e-%d carries natka-rules-revision %s, expected %llu", n, rev,
            (unsigned long long)e->want_rev);
  if (topic == T_DLQ) {
    if (e->want_error == NULL)
      IT_FAIL(t, "e-%d dead-lettered: %s", n, it_record_hstr(r, "natka-error"));
    IT_CHECK_STR(t, it_record_hstr(r, "natka-error-code"), "ERULE");
    IT_CHECK_STR(t, it_record_hstr(r, "natka-rule"), "r");
    IT_CHECK_HAS(t, it_record_hstr(r, "natka-error"), e->want_error);
  }
  if (n >= s->wait_first && n <= s->wait_last)
    s->missing--;
  return s->missing == 0;
}

/* Waits until every event in first..last was read (each check in on_record
 * applies as it arrives). */
static void wait_events(reload *s, int first, int last, int64_t timeout_ms) {
  s->wait_first = first;
  s->wait_last = last;
  s->missing = 0;
  for (int i = first; i <= last; i++)
    s->missing += s->ev[i].records == 0;
  int64_t deadline = it_now_ms() + timeout_ms;
  while (s->missing > 0 && it_now_ms() < deadline)
    it_kafka_tail_poll(s->t, s->tail, deadline - it_now_ms(), on_record, s);
  if (s->missing > 0)
    IT_FAIL(s->t, "%d of e-%d..e-%d not in Kafka after %lld ms", s->missing,
            first, last, (long long)timeout_ms);
}

/* Publishes n events of `kind`; returns the number of the first. */
static int publish(reload *s, const char *kind, int n, int want_topic,
                   uint64_t want_rev, const char *want_error) {
  char id[32], data[64];
  IT_CHECK(s->t, s->last + n <= N_MAX);
  int first = s->last + 1;
  for (int i = first; i < first + n; i++) {
    snprintf(id, sizeof(id), "e-%d", i);
    int len = snprintf(data, sizeof(data), "reload event %d", i);
    it_hdr h[] = {{"Nats-Msg-Id", id}, {"ce-type", kind}};
    s->ev[i] = (seen){.want_topic = (uint8_t)want_topic,
                      .want_rev = want_rev,
                      .want_error = want_error};
    it_js_publish(s->t, &s->js, s->subject, h, 2, data, (size_t)len);
  }
  s->last = first + n - 1;
  it_js_publish_wait(s->t, &s->js, 60000);
  return first;
}

/* ---------------------------------------------------------------- status */

typedef struct want_status {
  const char *state;  /* NULL: any */
  uint64_t revision;  /* 0: any */
  uint64_t rejected;  /* last_rejection.revision; 0: any */
  uint64_t after;     /* revision greater than this; 0: any */
  const char *module; /* the only module; NULL: any */
} want_status;

static int status_matches(const cJSON *j, const void *arg) {
  const want_status *w = arg;
  const char *state = it_json_str(j, "state");
  const cJSON *mods = cJSON_GetObjectItemCaseSensitive(j, "modules");
  const char *first = cJSON_GetStringValue(cJSON_GetArrayItem(mods, 0));
  double rev = it_json_num(j, "revision");
  return (w->state == NULL || (state && strcmp(state, w->state) == 0)) &&
         (w->revision == 0 || rev == (double)w->revision) &&
         (w->after == 0 || rev > (double)w->after) &&
         (w->rejected == 0 ||
          it_json_num(j, "last_rejection.revision") == (double)w->rejected) &&
         (w->module == NULL || (cJSON_GetArraySize(mods) == 1 && first &&
                                strcmp(first, w->module) == 0));
}

/* The next status on the status subject that matches w. */
static cJSON *wait_status(reload *s, const want_status *w, int64_t timeout_ms) {
  return it_json_wait(s->t, s->status_sub, status_matches, w, timeout_ms);
}

/* The status in the KV bucket, which must say the same as j. */
static void check_status_kv(reload *s, kvStore *st_kv, const want_status *w) {
  char *text = it_kv_get(s->t, st_kv, s->status_key);
  cJSON *j = text ? cJSON_Parse(text) : NULL;
  if (j == NULL || !status_matches(j, w))
    IT_FAIL(s->t, "status key %s holds: %s", s->status_key,
            text ? text : "(nothing)");
  cJSON_Delete(j);
  free(text);
}

/* ---------------------------------------------------------------- phases */

static const struct bad_module {
  const char *what, *src, *reason;
} bad_modules[] = {
    {"a syntax error", "return { route = function(ev) return 'x' }\n",
     "'end' expected"},
    {"an error at load", "error('boom')\n", "boom"},
    {"a route that is not a function", "return { route = 'x' }\n",
     "route must be a function"},
    {"a failing self-test",
     "return { route = function(ev) return 'x' end,\n"
     "  tests = { { name = 'goes nowhere', event = { kind = 'k' },\n"
     "              expect = { 'nowhere' } } } }\n",
     "goes nowhere"},
    {"an endless loop at load", "while true do end\n", "budget"},
    {"a memory bomb at load", "local s = 'x'\nwhile true do s = s .. s end\n",
     "memory"},
    {"io at load", "io.write('x')\nreturn {}\n", "'io'"},
    {"os.execute at load", "os.execute('true')\nreturn {}\n", "'os'"},
    {"require at load", "require('os')\nreturn {}\n", "'require'"},
    {"load at load", "load('return 1')()\nreturn {}\n", "'load'"},
    {"debug at load", "debug.sethook()\nreturn {}\n", "'debug'"},
};

/* Phase 2: N_LOAD events while another thread replaces module r. */
static void reload_under_load(reload *s) {
  pthread_t th;
  size_t before = s->nrevs;
  IT_CHECK(s->t, pthread_create(&th, NULL, reloader, s) == 0);
  int first = publish(s, "load", N_LOAD, ANY, 0, NULL);
  it_log(s->t, "published %d events while reloading", N_LOAD);
  wait_events(s, first, s->last, 180000);
  __atomic_store_n(&s->stop, 1, __ATOMIC_SEQ_CST);
  pthread_join(th, NULL);
  if (s->thread_error[0] != '\0')
    IT_FAIL(s->t, "reloader: %s", s->thread_error);
  it_kafka_tail_poll(s->t, s->tail, IT_KAFKA_LINGER_MS, on_record, s);

  size_t used = 0;
  for (size_t k = 0; k < s->nrevs; k++) {
    int count = 0;
    for (int i = first; i <= s->last; i++)
      count += s->ev[i].rev == s->revs[k];
    if (count > 0)
      it_log(s->t, "  revision %llu -> %s: %d events",
             (unsigned long long)s->revs[k], s->topic[s->rev_topic[k]], count);
    used += count > 0;
  }
  for (int i = first; i <= s->last; i++) {
    int want = topic_of_rev(s, s->ev[i].rev);
    if (want < 0 || want != s->ev[i].topic)
      IT_FAIL(s->t, "e-%d in %s carries revision %llu, which routes to %s", i,
              s->topic[s->ev[i].topic], (unsigned long long)s->ev[i].rev,
              want < 0 ? "(not a revision the test pushed)" : s->topic[want]);
  }
  it_log(s->t, "%d events exactly once; %zu revisions pushed, %zu used", N_LOAD,
         s->nrevs - before, used);
  IT_CHECK_INT(s->t, used, >=, 2);
}

/* Phase 3: each bad module is rejected; the good revision keeps going. */
static void reject_bad_modules(reload *s, kvStore *st_kv) {
  uint64_t good = put_route_all(s, T_A);
  cJSON *j = wait_status(s, &(want_status){"active", good, 0, 0, "r"}, 15000);
  double rejected = it_json_num(j, "stats.rules_rejected");
  cJSON_Delete(j);
  for (size_t i = 0; i < sizeof(bad_modules) / sizeof(*bad_modules); i++) {
    const struct bad_module *b = &bad_modules[i];
    int64_t t0 = it_now_ms();
    uint64_t rev = it_kv_put(s->t, s->kv, "r", b->src);
    want_status w = {"active", good, rev, 0, NULL};
    j = wait_status(s, &w, 15000);
    const char *reason = it_json_str(j, "last_rejection.reason");
    double now = it_json_num(j, "stats.rules_rejected");
    it_log(s->t, "%s: revision %llu rejected in %lld ms: %.*s", b->what,
           (unsigned long long)rev, (long long)(it_now_ms() - t0),
           reason ? (int)strcspn(reason, "\n") : 6, reason ? reason : "(null)");
    IT_CHECK_HAS(s->t, reason, b->reason);
    IT_CHECK(s->t, it_json_str(j, "last_rejection.at") != NULL);
    IT_CHECK(s->t, now > rejected);
    rejected = now;
    cJSON_Delete(j);
    check_status_kv(s, st_kv, &w);
    int first = publish(s, "after.bad", 5, T_A, good, NULL);
    wait_events(s, first, s->last, 30000);
  }
}

/* Phase 3, at event time: endless loops and memory bombs in route(). */
static void runaway_rules(reload *s) {
  char src[512];
  snprintf(src, sizeof(src),
           "return { route = function(ev)\n"
           "  if ev.kind == 'loop' then while true do end end\n"
           "  if ev.kind == 'bomb' then\n"
           "    local s = 'x'\n"
           "    while true do s = s .. s end\n"
           "  end\n"
           "  return '%s'\n"
           "end }\n",
           s->topic[T_A]);
  uint64_t rev = it_kv_put(s->t, s->kv, "r", src);
  add_rev(s, rev, T_A);
  cJSON_Delete(wait_status(s, &(want_status){"active", rev, 0, 0, "r"}, 15000));
  int first = publish(s, "loop", 3, T_DLQ, rev, "budget");
  publish(s, "bomb", 3, T_DLQ, rev, "memory");
  publish(s, "plain", 5, T_A, rev, NULL);
  wait_events(s, first, s->last, 30000);
  it_log(s->t, "runaway rules: 3 loops and 3 memory bombs dead-lettered "
               "(ERULE), 5 other events delivered");
}

/* Phase 4: module z routes kind "zz" until its key is deleted. */
static void delete_module(reload *s) {
  char src[256];
  snprintf(src, sizeof(src),
           "return { route = function(ev)\n"
           "  if ev.kind ~= 'zz' then return '%s' end\n"
           "end }\n",
           s->topic[T_A]);
  add_rev(s, it_kv_put(s->t, s->kv, "r", src), T_A);
  snprintf(src, sizeof(src),
           "return { route = function(ev)\n"
           "  if ev.kind == 'zz' then return '%s' end\n"
           "end }\n",
           s->topic[T_Z]);
  uint64_t rev = it_kv_put(s->t, s->kv, "z", src);
  cJSON_Delete(
      wait_status(s, &(want_status){"active", rev, 0, 0, NULL}, 15000));
  int first = publish(s, "zz", 5, T_Z, rev, NULL);
  publish(s, "plain", 5, T_A, rev, NULL);
  wait_events(s, first, s->last, 30000);

  it_kv_delete(s->t, s->kv, "z");
  cJSON *j = wait_status(s, &(want_status){"active", 0, 0, rev, "r"}, 15000);
  uint64_t now = (uint64_t)it_json_num(j, "revision");
  cJSON_Delete(j);
  first = publish(s, "zz", 5, T_DFLT, now, NULL);
  wait_events(s, first, s->last, 30000);
  it_log(s->t,
         "module z deleted (revision %llu): zz events take the default "
         "route",
         (unsigned long long)now);
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* Phase 5: KV put -> first record carrying the new revision (informal). */
static void reload_latency(reload *s) {
  int64_t lat[N_LATENCY];
  int first = s->last + 1;
  for (int i = 0; i < N_LATENCY; i++) {
    int64_t t0 = it_now_ms();
    uint64_t rev = put_route_all(s, i % 2 ? T_A : T_B);
    while (s->max_rev < rev) {
      if (it_now_ms() - t0 > 15000)
        IT_FAIL(s->t, "revision %llu not seen in 15 s",
                (unsigned long long)rev);
      publish(s, "latency", 1, ANY, 0, NULL);
      it_kafka_tail_poll(s->t, s->tail, 10, on_record, s);
    }
    lat[i] = it_now_ms() - t0;
  }
  wait_events(s, first, s->last, 30000);
  for (int i = first; i <= s->last; i++)
    IT_CHECK_INT(s->t, topic_of_rev(s, s->ev[i].rev), ==, s->ev[i].topic);
  qsort(lat, N_LATENCY, sizeof(*lat), cmp_i64);
  it_log(s->t,
         "reload latency (KV put -> first record of the revision, %d "
         "reloads): p50 %lld ms, p99 %lld ms",
         N_LATENCY, (long long)lat[N_LATENCY / 2],
         (long long)lat[N_LATENCY - 1]);
}

/* ---------------------------------------------------------------- main */

static void write_config(it_test *t, reload *s, char *config) {
  it_write_file(t, "natka.conf", config,
                "return {\n"
                "  nats = { url = \"%s\", name = \"%s\" },\n"
                "  kafka = { brokers = \"%s\" },\n"
                "  jetstream = { stream = \"%s\", subjects = { \"%s\" },\n"
                "    durable = \"%s\", ack_wait_ms = 30000 },\n"
                "  rules = { bucket = \"%s_rules\",\n"
                "    status_bucket = \"%s_status\",\n"
                "    status_subject = \"%s.status\", memory_mb = 16 },\n"
                "  switches = { bucket = \"\" },\n"
                "  route = { default_topic = \"%s\" },\n"
                "  dlq = { topic = \"%s\" },\n"
                "  shutdown = { drain_timeout_ms = 15000 },\n"
                "}\n",
                t->nats_url, t->uniq, t->kafka_brokers, s->stream, s->subject,
                s->durable, t->uniq, t->uniq, t->uniq, s->topic[T_DFLT],
                s->topic[T_DLQ]);
}

int main(int argc, char **argv) {
  static const char *const suffix[N_TOPICS] = {"a", "b", "z", "dflt", "dlq"};
  it_test t;
  it_proc natka;
  it_consumer c;
  char config[PATH_MAX], name[512];
  const char *topics[N_TOPICS];
  reload *s = calloc(1, sizeof(*s));

  it_init(&t, "reload", argc, argv, 1);
  IT_CHECK(&t, s != NULL);
  s->t = &t;
  pthread_mutex_init(&s->mu, NULL);
  for (int i = 0; i < N_TOPICS; i++) {
    snprintf(s->topic[i], sizeof(s->topic[i]), "%s_%s", t.uniq, suffix[i]);
    topics[i] = s->topic[i];
  }
  snprintf(s->stream, sizeof(s->stream), "%s", t.uniq);
  snprintf(s->subject, sizeof(s->subject), "%s.in", t.uniq);
  snprintf(s->durable, sizeof(s->durable), "%s_d", t.uniq);
  it_status_key(s->status_key, sizeof(s->status_key), t.uniq);
  write_config(&t, s, config);

  it_js_connect(&t, &s->js);
  it_js_add_stream(&t, &s->js, s->stream, s->subject);
  snprintf(name, sizeof(name), "%s_rules", t.uniq);
  s->kv = it_kv_open(&t, &s->js, name, 64);
  snprintf(name, sizeof(name), "%s_status", t.uniq);
  kvStore *st_kv = it_kv_open(&t, &s->js, name, 1);
  snprintf(name, sizeof(name), "%s.status.%s", t.uniq, s->status_key);
  IT_CHECK(&t, natsConnection_SubscribeSync(&s->status_sub, s->js.nc, name) ==
                   NATS_OK);
  it_kafka_create_topics(&t, topics, N_TOPICS, 3);
  s->tail = it_kafka_tail_open(&t, topics, N_TOPICS, 30000);

  /* 1. A bad first set: natka waits and fetches nothing. */
  uint64_t bad = it_kv_put(&t, s->kv, "r", bad_modules[0].src);
  it_natka_start(&t, &natka, config, "natka.log");
  want_status waiting = {"waiting for rules", 0, bad, 0, NULL};
  cJSON *j = wait_status(s, &waiting, 30000);
  IT_CHECK(&t, cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "revision")));
  cJSON_Delete(j);
  check_status_kv(s, st_kv, &waiting);
  int first = publish(s, "early", 10, T_A, 0, NULL);
  IT_CHECK_INT(&t, it_kafka_tail_poll(&t, s->tail, 3000, on_record, s), ==, 0);
  IT_CHECK(&t, it_js_consumer(&t, &s->js, s->stream, s->durable, &c) != 0 ||
                   c.delivered_stream == 0);
  uint64_t good = put_route_all(s, T_A);
  for (int i = first; i <= s->last; i++)
    s->ev[i].want_rev = good;
  wait_events(s, first, s->last, 30000);
  it_log(&t, "waited with a bad first set; revision %llu delivered the 10",
         (unsigned long long)good);

  reload_under_load(s);         /* 2 */
  reject_bad_modules(s, st_kv); /* 3 */
  runaway_rules(s);
  delete_module(s);  /* 4 */
  reload_latency(s); /* 5 */

  IT_CHECK_INT(&t, it_natka_stop(&t, &natka, 30000), ==, 0);
  it_js_wait_settled(&t, &s->js, s->stream, s->durable, 10000);
  IT_CHECK(&t, it_js_consumer(&t, &s->js, s->stream, s->durable, &c) == 0);
  IT_CHECK_INT(&t, c.ack_floor_stream, ==, s->last);
  it_kafka_tail_close(s->tail);
  natsSubscription_Destroy(s->status_sub);
  kvStore_Destroy(st_kv);
  kvStore_Destroy(s->kv);
  it_js_close(&s->js);
  pthread_mutex_destroy(&s->mu);
  free(s);
  return it_pass(&t);
}
