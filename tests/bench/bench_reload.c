/*
 * bench_reload: how long a rules reload takes under load. The natka daemon
 * reads its rules from a KV bucket; while a thread publishes a steady stream
 * of events to JetStream, this program puts R new revisions of the rule
 * module, one after the other, and a Kafka consumer notes when the first
 * record decided by each revision arrives (its natka-rules-revision header
 * equals the revision kvStore_Put returned).
 *
 *   bench_reload --natka PATH --config FILE --url URL --brokers HOST:PORT
 *                --bucket NAME --stream NAME --subject SUBJ --topic T
 *                [--size B] [--rate EVENTS_PER_S] [--reloads R]
 *                [--log FILE] [--timeout-ms MS] [--pause-ms MS]
 *                [--warmup-ms MS]
 *
 * The configuration must read its rules from --bucket (rules.files empty)
 * and consume --stream. The bucket and the stream are recreated before the
 * daemon starts, the bucket holding one module (key "route") that routes
 * every event to --topic. Each reload puts the same module with a changed
 * comment, so the value differs and the route does not.
 *
 * Reload latency runs from just before kvStore_Put to the arrival of the
 * first record carrying the returned revision; a reload not seen within
 * --timeout-ms (default 5000) is a miss and counts as that timeout in the
 * percentiles. Reloads start --warmup-ms (default 3000) after the first
 * record arrived and follow each other --pause-ms (default 100) apart. The
 * latency includes an event's trip through natka into Kafka, so the same run
 * also measures plain events: each payload starts with its publish time, and
 * event latency runs from js_PublishAsync to the consumer.
 *
 * With --log, natka's log (info level at least) gives when each revision
 * became active ("rules: revision N active", wall clock, millisecond
 * resolution), which splits each reload into put -> active and active ->
 * first record.
 *
 * Prints, per reload, a line to stderr, then RESULT name=reload (size, events
 * published, seconds and eps of the publisher) with extra fields: reloads,
 * misses, p50_ms, p99_ms, max_ms (reload latency; nearest rank), event_p50_ms,
 * event_p99_ms, active_p50_ms, active_p99_ms, active_max_ms (put -> active,
 * -1 without --log), slowest_events_ms (the longest wait of the plain events
 * that arrived during the slowest reload: close to max_ms when the whole
 * pipeline stalled rather than the reload) and exit (natka's status after
 * SIGTERM).
 */
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <nats/nats.h>

#include "bench_util.h"

#define PROG "reload"
#define MODULE_KEY "route"
#define REV_HEADER "natka-rules-revision"
#define SLOTS 4096 /* revisions remembered by the consumer (a ring) */
#define START_WAIT_S 60
#define STAMP_LEN 20 /* decimal nanoseconds at the start of each payload */

static double wall_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---------------------------------------------------------- publisher */

typedef struct publisher {
  jsCtx *js;
  const char *subject;
  size_t size;
  double rate;
  atomic_int stop;
  atomic_long errors;
  int64_t sent;
  natsStatus failed; /* the first publish error that stopped it */
} publisher;

static void on_pub_error(jsCtx *js, jsPubAckErr *pae, void *closure) {
  publisher *p = closure;
  (void)js;
  if (atomic_fetch_add(&p->errors, 1) == 0)
    fprintf(stderr, "bench reload: publish failed: %s (%s)\n",
            natsStatus_GetText(pae->Err),
            pae->ErrText != NULL ? pae->ErrText : "");
}

/* Publishes at `rate` events/s, catching up every millisecond; each
 * payload starts with its monotonic publish time in nanoseconds. */
static void *publish_thread(void *arg) {
  publisher *p = arg;
  char *payload = bench_payload(p->size);
  double t0 = bench_now();
  while (!atomic_load(&p->stop)) {
    int64_t due = (int64_t)((bench_now() - t0) * p->rate);
    for (; p->sent < due; p->sent++) {
      char stamp[STAMP_LEN + 1];
      snprintf(stamp, sizeof(stamp), "%0*" PRId64, STAMP_LEN,
               (int64_t)(bench_now() * 1e9));
      memcpy(payload, stamp, STAMP_LEN);
      natsStatus st =
          js_PublishAsync(p->js, p->subject, payload, (int)p->size, NULL);
      if (st != NATS_OK) {
        p->failed = st;
        free(payload);
        return NULL;
      }
    }
    bench_sleep_ms(1);
  }
  free(payload);
  return NULL;
}

/* ---------------------------------------------------------- consumer */

typedef struct seen {
  uint64_t rev;
  double at; /* monotonic arrival of its first record */
} seen;

typedef struct sample {
  double at; /* monotonic arrival */
  double ms; /* publish -> arrival */
} sample;

typedef struct consumer {
  rd_kafka_t *rk;
  atomic_int stop;
  pthread_mutex_t mu;
  pthread_cond_t cond;
  /* Guarded by mu. */
  seen slots[SLOTS];
  int64_t records;
  int measuring;
  /* Consumer thread only until joined. */
  sample *lat; /* events arrived while measuring, in arrival order */
  size_t nlat, caplat;
  int64_t unstamped;
} consumer;

static uint64_t header_rev(const rd_kafka_message_t *m) {
  rd_kafka_headers_t *hdrs = NULL;
  const void *val = NULL;
  size_t len = 0;
  char buf[32];
  if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      rd_kafka_header_get_last(hdrs, REV_HEADER, &val, &len) !=
          RD_KAFKA_RESP_ERR_NO_ERROR ||
      val == NULL || len == 0 || len >= sizeof(buf))
    return 0;
  memcpy(buf, val, len);
  buf[len] = '\0';
  return strtoull(buf, NULL, 10);
}

static void note_latency(consumer *c, const rd_kafka_message_t *m, double now) {
  char stamp[STAMP_LEN + 1];
  if (m->len < STAMP_LEN) {
    c->unstamped++;
    return;
  }
  memcpy(stamp, m->payload, STAMP_LEN);
  stamp[STAMP_LEN] = '\0';
  char *end = NULL;
  double sent = (double)strtoll(stamp, &end, 10) / 1e9;
  if (end != stamp + STAMP_LEN) {
    c->unstamped++;
    return;
  }
  if (c->nlat == c->caplat) {
    size_t cap = c->caplat ? c->caplat * 2 : 65536;
    sample *grown = realloc(c->lat, cap * sizeof(*grown));
    if (grown == NULL)
      return;
    c->lat = grown;
    c->caplat = cap;
  }
  c->lat[c->nlat++] = (sample){now, (now - sent) * 1e3};
}

static void *consume_thread(void *arg) {
  consumer *c = arg;
  while (!atomic_load(&c->stop)) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, 100);
    if (m == NULL)
      continue;
    double now = bench_now();
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
        fprintf(stderr, "bench reload: consumer: %s\n",
                rd_kafka_message_errstr(m));
      rd_kafka_message_destroy(m);
      continue;
    }
    uint64_t rev = header_rev(m);
    pthread_mutex_lock(&c->mu);
    c->records++;
    int measuring = c->measuring;
    seen *s = &c->slots[rev % SLOTS];
    if (rev != 0 && s->rev != rev) {
      s->rev = rev;
      s->at = now;
      pthread_cond_broadcast(&c->cond);
    }
    pthread_mutex_unlock(&c->mu);
    if (measuring)
      note_latency(c, m, now);
    rd_kafka_message_destroy(m);
  }
  return NULL;
}

/* Waits until a record of revision `rev` has arrived or `deadline`
 * (monotonic) has passed; returns its arrival time or -1. */
static double wait_rev(consumer *c, uint64_t rev, double deadline) {
  double at = -1;
  pthread_mutex_lock(&c->mu);
  for (;;) {
    const seen *s = &c->slots[rev % SLOTS];
    if (s->rev == rev) {
      at = s->at;
      break;
    }
    double left = deadline - bench_now();
    if (left <= 0)
      break;
    /* The condition variable uses CLOCK_MONOTONIC (see consumer_new). */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double wake = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 +
                  (left < 0.05 ? left : 0.05);
    ts.tv_sec = (time_t)wake;
    ts.tv_nsec = (long)((wake - (double)ts.tv_sec) * 1e9);
    pthread_cond_timedwait(&c->cond, &c->mu, &ts);
  }
  pthread_mutex_unlock(&c->mu);
  return at;
}

static void set_conf(rd_kafka_conf_t *kc, const char *k, const char *v) {
  char err[256];
  if (rd_kafka_conf_set(kc, k, v, err, sizeof(err)) != RD_KAFKA_CONF_OK)
    bench_die(PROG, "kafka %s: %s", k, err);
}

/* A consumer of every partition of `topic`, from its end. */
static void consumer_new(consumer *c, const char *brokers, const char *topic) {
  char err[512], group[64];
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&c->cond, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&c->mu, NULL);

  rd_kafka_conf_t *kc = rd_kafka_conf_new();
  snprintf(group, sizeof(group), "bench_reload_%d", (int)getpid());
  set_conf(kc, "bootstrap.servers", brokers);
  set_conf(kc, "group.id",
           group); /* required, though partitions are assigned */
  set_conf(kc, "enable.auto.commit", "false");
  set_conf(kc, "isolation.level", "read_uncommitted");
  set_conf(kc, "fetch.wait.max.ms", "10");
  set_conf(kc, "log_level", "3");
  c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, err, sizeof(err));
  if (c->rk == NULL)
    bench_die(PROG, "kafka consumer: %s", err);
  rd_kafka_poll_set_consumer(c->rk);

  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_topic_t *rkt = rd_kafka_topic_new(c->rk, topic, NULL);
  rd_kafka_resp_err_t e = rd_kafka_metadata(c->rk, 0, rkt, &md, 10000);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR || md->topic_cnt != 1 ||
      md->topics[0].partition_cnt < 1)
    bench_die(PROG, "topic %s: no metadata (%s)", topic, rd_kafka_err2str(e));
  rd_kafka_topic_partition_list_t *parts =
      rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
  for (int i = 0; i < md->topics[0].partition_cnt; i++)
    rd_kafka_topic_partition_list_add(parts, topic,
                                      md->topics[0].partitions[i].id)
        ->offset = RD_KAFKA_OFFSET_END;
  rd_kafka_metadata_destroy(md);
  rd_kafka_topic_destroy(rkt);
  if ((e = rd_kafka_assign(c->rk, parts)) != RD_KAFKA_RESP_ERR_NO_ERROR)
    bench_die(PROG, "assign %s: %s", topic, rd_kafka_err2str(e));
  rd_kafka_topic_partition_list_destroy(parts);
}

/* ---------------------------------------------------------- natka */

static void check_alive(pid_t pid) {
  int status;
  if (waitpid(pid, &status, WNOHANG) == pid)
    bench_die(PROG, "natka exited early (status %d); see its log",
              WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

/* Wall-clock time (s) at which natka logged "rules: revision <rev> active",
 * or -1. Log lines start with an RFC 3339 UTC time with milliseconds. */
static double active_at(const char *log, uint64_t rev) {
  FILE *f = log != NULL ? fopen(log, "r") : NULL;
  char line[4096], needle[64];
  double at = -1;
  if (f == NULL)
    return -1;
  snprintf(needle, sizeof(needle), "rules: revision %" PRIu64 " active", rev);
  while (at < 0 && fgets(line, sizeof(line), f) != NULL) {
    struct tm tm = {0};
    int ms = 0;
    if (strstr(line, needle) == NULL)
      continue;
    const char *rest = strptime(line, "%Y-%m-%dT%H:%M:%S", &tm);
    if (rest != NULL && sscanf(rest, ".%3dZ", &ms) == 1)
      at = (double)timegm(&tm) + ms / 1e3;
  }
  fclose(f);
  return at;
}

/* ---------------------------------------------------------- setup */

static kvStore *recreate_bucket(jsCtx *js, const char *bucket) {
  natsStatus st = js_DeleteKeyValue(js, bucket);
  if (st != NATS_OK && st != NATS_NOT_FOUND)
    bench_die(PROG, "delete bucket %s: %s", bucket, natsStatus_GetText(st));
  kvConfig kc;
  kvStore *kv = NULL;
  kvConfig_Init(&kc);
  kc.Bucket = bucket;
  kc.History = 64; /* as natka creates it */
  if ((st = js_CreateKeyValue(&kv, js, &kc)) != NATS_OK)
    bench_die(PROG, "create bucket %s: %s", bucket, natsStatus_GetText(st));
  return kv;
}

/* Puts version `n` of the module; returns the revision. */
static uint64_t put_module(kvStore *kv, const char *topic, int n) {
  char src[512];
  uint64_t rev = 0;
  int len = snprintf(src, sizeof(src),
                     "-- bench_reload version %d\n"
                     "return { route = function(ev) return \"%s\" end }\n",
                     n, topic);
  natsStatus st = kvStore_Put(&rev, kv, MODULE_KEY, src, len);
  if (st != NATS_OK)
    bench_die(PROG, "put %s: %s", MODULE_KEY, natsStatus_GetText(st));
  return rev;
}

/* The longest publish -> arrival of the events that arrived in [from, to]:
 * when it is close to a reload's latency, the whole pipeline stalled
 * meanwhile, not the reload. */
static double window_max(const consumer *c, double from, double to) {
  size_t lo = 0, hi = c->nlat;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (c->lat[mid].at < from)
      lo = mid + 1;
    else
      hi = mid;
  }
  double max = -1;
  for (size_t i = lo; i < c->nlat && c->lat[i].at <= to; i++)
    if (c->lat[i].ms > max)
      max = c->lat[i].ms;
  return max;
}

static const char usage[] =
    "Usage: bench_reload --natka PATH --config FILE --url URL "
    "--brokers HOST:PORT\n"
    "                    --bucket NAME --stream NAME --subject SUBJ "
    "--topic T\n"
    "                    [--size BYTES] [--rate EVENTS_PER_S] "
    "[--reloads R] [--log FILE]\n"
    "                    [--timeout-ms MS] [--pause-ms MS] "
    "[--warmup-ms MS]\n"
    "Measures KV put -> first Kafka record decided by the new rules revision, "
    "under load.\n";

int main(int argc, char **argv) {
  const char *natka = NULL, *config = NULL, *url = NULL, *brokers = NULL,
             *bucket = NULL, *stream = NULL, *subject = NULL, *topic = NULL,
             *log = NULL;
  int64_t size = 100, rate = 5000, reloads = 50, timeout_ms = 5000,
          pause_ms = 100, warmup_ms = 3000;
  const bench_opt opts[] = {BENCH_STR("natka", &natka, 1),
                            BENCH_STR("config", &config, 1),
                            BENCH_STR("url", &url, 1),
                            BENCH_STR("brokers", &brokers, 1),
                            BENCH_STR("bucket", &bucket, 1),
                            BENCH_STR("stream", &stream, 1),
                            BENCH_STR("subject", &subject, 1),
                            BENCH_STR("topic", &topic, 1),
                            BENCH_INT("size", &size, STAMP_LEN, 1 << 20, 0),
                            BENCH_INT("rate", &rate, 1, 1000000, 0),
                            BENCH_INT("reloads", &reloads, 1, 100000, 0),
                            BENCH_STR("log", &log, 0),
                            BENCH_INT("timeout-ms", &timeout_ms, 1, 600000, 0),
                            BENCH_INT("pause-ms", &pause_ms, 0, 600000, 0),
                            BENCH_INT("warmup-ms", &warmup_ms, 0, 600000, 0),
                            {NULL}};
  bench_options(argc, argv, opts, usage);

  char err[512];
  if (bench_kafka_topic(brokers, topic, 0, err, sizeof(err)) != 0)
    bench_die(PROG, "%s", err);

  natsConnection *nc = NULL, *pub_nc = NULL;
  jsCtx *js = NULL, *pub_js = NULL;
  bench_js_connect(PROG, url, NULL, &nc, &js);
  bench_js_recreate_stream(PROG, js, stream, subject);
  kvStore *kv = recreate_bucket(js, bucket);
  uint64_t first_rev = put_module(kv, topic, 0);

  consumer *c = calloc(1, sizeof(*c));
  if (c == NULL)
    bench_die(PROG, "out of memory");
  consumer_new(c, brokers, topic);
  pthread_t consumer_thread, publisher_thread;
  pthread_create(&consumer_thread, NULL, consume_thread, c);

  /* The publisher has a connection of its own, so that its stream of
   * publishes does not queue in front of the puts. */
  publisher p = {
      .subject = subject, .size = (size_t)size, .rate = (double)rate};
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.PublishAsync.ErrHandler = on_pub_error;
  jo.PublishAsync.ErrHandlerClosure = &p;
  jo.PublishAsync.MaxPending = 100000;
  bench_js_connect(PROG, url, &jo, &pub_nc, &pub_js);
  p.js = pub_js;

  pid_t pid = bench_natka_spawn(PROG, natka, config, NULL, log);
  double t_pub = bench_now();
  pthread_create(&publisher_thread, NULL, publish_thread, &p);

  /* Running once the first revision's records arrive; then the warm-up, so
   * that the first seconds of a fresh topic, producer and broker threads
   * (stalls of a few hundred ms on a busy machine) stay out of the figures. */
  double t_start = bench_now();
  while (wait_rev(c, first_rev, bench_now() + 0.1) < 0) {
    check_alive(pid);
    if (bench_now() - t_start > START_WAIT_S)
      bench_die(PROG, "no record of revision %" PRIu64 " after %ds", first_rev,
                START_WAIT_S);
  }
  fprintf(stderr, "bench reload: natka running %.3f s after its start\n",
          bench_now() - t_start);
  bench_sleep_ms((long)warmup_ms);
  pthread_mutex_lock(&c->mu);
  c->measuring = 1;
  pthread_mutex_unlock(&c->mu);

  double *lat = calloc((size_t)reloads, sizeof(*lat));
  double *act = calloc((size_t)reloads, sizeof(*act));
  double *put_wall = calloc((size_t)reloads, sizeof(*put_wall));
  double *put_mono = calloc((size_t)reloads, sizeof(*put_mono));
  uint64_t *revs = calloc((size_t)reloads, sizeof(*revs));
  if (lat == NULL || act == NULL || put_wall == NULL || put_mono == NULL ||
      revs == NULL)
    bench_die(PROG, "out of memory");
  int64_t misses = 0;
  for (int64_t i = 0; i < reloads; i++) {
    check_alive(pid);
    put_wall[i] = wall_now();
    double t_put = put_mono[i] = bench_now();
    revs[i] = put_module(kv, topic, (int)i + 1);
    double at = wait_rev(c, revs[i], t_put + (double)timeout_ms / 1e3);
    if (at < 0) {
      misses++;
      lat[i] = (double)timeout_ms;
      fprintf(stderr,
              "bench reload: revision %" PRIu64 " not seen in %lld ms\n",
              revs[i], (long long)timeout_ms);
    } else {
      lat[i] = (at - t_put) * 1e3;
    }
    bench_sleep_ms((long)pause_ms);
  }

  pthread_mutex_lock(&c->mu);
  c->measuring = 0;
  pthread_mutex_unlock(&c->mu);
  atomic_store(&p.stop, 1);
  pthread_join(publisher_thread, NULL);
  double pub_secs = bench_now() - t_pub;
  if (p.failed != NATS_OK)
    bench_die(PROG, "publish: %s", natsStatus_GetText(p.failed));
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = 30000;
  natsStatus st = js_PublishAsyncComplete(pub_js, &po);
  if (st != NATS_OK)
    bench_die(PROG, "waiting for publish acks: %s", natsStatus_GetText(st));
  if (atomic_load(&p.errors) > 0)
    bench_die(PROG, "%ld publishes failed", atomic_load(&p.errors));

  int exit_status = bench_natka_stop(PROG, pid);
  atomic_store(&c->stop, 1);
  pthread_join(consumer_thread, NULL);

  /* put -> active, from natka's log. */
  int have_log = log != NULL;
  int64_t slowest = 0;
  for (int64_t i = 0; i < reloads; i++) {
    double a = have_log ? active_at(log, revs[i]) : -1;
    act[i] = a < 0 ? -1 : (a - put_wall[i]) * 1e3;
    if (have_log && a < 0)
      have_log = 0; /* one missing line makes the split meaningless */
    if (lat[i] > lat[slowest])
      slowest = i;
    fprintf(stderr,
            "bench reload: revision %" PRIu64
            " first record %.1f ms after the put (active after %.0f ms; "
            "events arriving meanwhile waited up to %.1f ms)\n",
            revs[i], lat[i], act[i],
            window_max(c, put_mono[i], put_mono[i] + lat[i] / 1e3));
  }
  double slowest_events =
      window_max(c, put_mono[slowest], put_mono[slowest] + lat[slowest] / 1e3);

  bench_sort(lat, (size_t)reloads);
  bench_sort(act, (size_t)reloads);
  double *ev = malloc((c->nlat ? c->nlat : 1) * sizeof(*ev));
  if (ev == NULL)
    bench_die(PROG, "out of memory");
  for (size_t i = 0; i < c->nlat; i++)
    ev[i] = c->lat[i].ms;
  bench_sort(ev, c->nlat);
  size_t n = (size_t)reloads;
  char extra[640];
  snprintf(extra, sizeof(extra),
           "reloads=%lld misses=%lld p50_ms=%.1f p99_ms=%.1f max_ms=%.1f "
           "event_p50_ms=%.1f event_p99_ms=%.1f active_p50_ms=%.0f "
           "active_p99_ms=%.0f active_max_ms=%.0f slowest_events_ms=%.1f "
           "exit=%d",
           (long long)reloads, (long long)misses, bench_pct(lat, n, 50),
           bench_pct(lat, n, 99), lat[n - 1], bench_pct(ev, c->nlat, 50),
           bench_pct(ev, c->nlat, 99), have_log ? bench_pct(act, n, 50) : -1,
           have_log ? bench_pct(act, n, 99) : -1, have_log ? act[n - 1] : -1,
           slowest_events, exit_status);
  bench_result(PROG, (size_t)size, p.sent, pub_secs, extra);
  if (c->unstamped > 0)
    fprintf(stderr, "bench reload: %lld records without a publish time\n",
            (long long)c->unstamped);

  rd_kafka_consumer_close(c->rk);
  rd_kafka_destroy(c->rk);
  free(c->lat);
  free(ev);
  free(put_mono);
  free(c);
  free(lat);
  free(act);
  free(put_wall);
  free(revs);
  kvStore_Destroy(kv);
  jsCtx_Destroy(pub_js);
  natsConnection_Destroy(pub_nc);
  bench_js_close(nc, js);
  if (exit_status != 0)
    bench_die(PROG, "natka exited with status %d after SIGTERM", exit_status);
  return 0;
}
