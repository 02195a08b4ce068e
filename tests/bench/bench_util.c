/*
 * Helpers shared by the benchmark programs; see bench_util.h.
 */
#include "bench_util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#define TOPIC_WAIT_MS 30000
#define MAX_OPTS 16
#define OPT_BASE 256 /* getopt_long values above every short option */

double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double bench_cpu_self(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0)
    return 0;
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

void bench_die(const char *prog, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "bench %s: ", prog);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  exit(1);
}

int64_t bench_arg_int(const char *opt, const char *value, int64_t min,
                      int64_t max) {
  char *end = NULL;
  errno = 0;
  long long v = strtoll(value, &end, 10);
  if (errno != 0 || end == value || *end != '\0' || v < min || v > max)
    bench_die("options",
              "%s wants an integer in %" PRId64 "..%" PRId64 ", got '%s'", opt,
              min, max, value);
  return (int64_t)v;
}

void bench_options(int argc, char **argv, const bench_opt *opts,
                   const char *usage) {
  struct option lo[MAX_OPTS + 2];
  int given[MAX_OPTS] = {0};
  size_t n = 0;
  for (; opts[n].name != NULL; n++) {
    if (n == MAX_OPTS)
      bench_die("options", "more than %d options", MAX_OPTS);
    lo[n] = (struct option){
        opts[n].name, opts[n].flag != NULL ? no_argument : required_argument,
        NULL, OPT_BASE + (int)n};
  }
  lo[n] = (struct option){"help", no_argument, NULL, 'h'};
  lo[n + 1] = (struct option){NULL, 0, NULL, 0};
  for (int c; (c = getopt_long(argc, argv, "h", lo, NULL)) != -1;) {
    if (c == 'h') {
      fputs(usage, stdout);
      exit(0);
    }
    if (c < OPT_BASE) {
      fputs(usage, stderr);
      exit(2);
    }
    const bench_opt *o = &opts[c - OPT_BASE];
    given[c - OPT_BASE] = 1;
    if (o->flag != NULL) {
      *o->flag = 1;
    } else if (o->list != NULL) {
      if (o->list->n == BENCH_LIST_MAX)
        bench_die("options", "--%s given more than %d times", o->name,
                  BENCH_LIST_MAX);
      o->list->v[o->list->n++] = optarg;
    } else if (o->num != NULL) {
      char name[64];
      snprintf(name, sizeof(name), "--%s", o->name);
      *o->num = bench_arg_int(name, optarg, o->min, o->max);
    } else {
      *o->str = optarg;
    }
  }
  for (size_t i = 0; i < n; i++) {
    if (opts[i].required && !given[i]) {
      fputs(usage, stderr);
      exit(2);
    }
  }
}

void bench_js_connect(const char *prog, const char *url, jsOptions *jo,
                      natsConnection **nc, jsCtx **js) {
  natsStatus st = natsConnection_ConnectTo(nc, url);
  if (st != NATS_OK)
    bench_die(prog, "connect %s: %s", url, natsStatus_GetText(st));
  if ((st = natsConnection_JetStream(js, *nc, jo)) != NATS_OK)
    bench_die(prog, "JetStream context: %s", natsStatus_GetText(st));
}

void bench_js_close(natsConnection *nc, jsCtx *js) {
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
  nats_Close();
}

char *bench_payload(size_t size) {
  static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  char *p = malloc(size ? size : 1);
  if (p == NULL)
    bench_die("payload", "out of memory");
  for (size_t i = 0; i < size; i++)
    p[i] = alphabet[(i * 7) % (sizeof(alphabet) - 1)];
  return p;
}

static uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

/* Writes the low 4 * n bits of v as n lowercase hex digits. */
static char *hex(char *out, uint64_t v, int n) {
  static const char digits[] = "0123456789abcdef";
  for (int i = n - 1; i >= 0; i--, v >>= 4)
    out[i] = digits[v & 15];
  return out + n;
}

void bench_event_make(bench_event *ev, uint64_t seed, int64_t i, int kafka) {
  static const char *const kinds[] = {
      "com.example.order.created", "com.example.order.paid",
      "com.example.payment.authorized", "com.example.shipment.dispatched"};
  static const char *const priorities[] = {"priority:normal", "priority:high"};
  uint64_t r1 = splitmix64(seed + (uint64_t)i * 2);
  uint64_t r2 = splitmix64(seed + (uint64_t)i * 2 + 1);
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  ev->ts_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;

  /* UUIDv7: 48 bits of ms, version 7, 12 random bits, variant 10, 62
   * random bits; the event's number in the low bits keeps ids unique. */
  char *p = ev->id;
  p = hex(p, (uint64_t)ev->ts_ms >> 16, 8);
  *p++ = '-';
  p = hex(p, (uint64_t)ev->ts_ms, 4);
  *p++ = '-';
  p = hex(p, 0x7000 | (r1 & 0xfff), 4);
  *p++ = '-';
  p = hex(p, 0x8000 | ((r1 >> 12) & 0x3fff), 4);
  *p++ = '-';
  p = hex(p, ((r2 << 16) & 0xffffffff0000ULL) | ((uint64_t)i & 0xffff), 12);
  *p = '\0';

  struct tm tm;
  gmtime_r(&now.tv_sec, &tm);
  size_t n = strftime(ev->time, sizeof(ev->time), "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(ev->time + n, sizeof(ev->time) - n, ".%03ldZ",
           now.tv_nsec / 1000000);

  p = ev->traceparent;
  memcpy(p, "00-", 3);
  p = hex(p + 3, splitmix64(r1), 16);
  p = hex(p, splitmix64(r2), 16);
  *p++ = '-';
  p = hex(p, splitmix64(r1 ^ r2), 16);
  memcpy(p, "-01", 4);

  snprintf(ev->tenant, sizeof(ev->tenant), "tenant-%02u",
           (unsigned)(r2 >> 40) % 16);
  snprintf(ev->account, sizeof(ev->account), "acct-%05u",
           (unsigned)(r1 >> 32) % BENCH_ACCOUNTS);
  ev->key = ev->account;

  int k = 0;
  ev->h[k++] = (bench_header){kafka ? "ce_id" : "ce-id", ev->id};
  ev->h[k++] = (bench_header){kafka ? "ce_type" : "ce-type", kinds[r2 % 4]};
  ev->h[k++] = (bench_header){kafka ? "ce_source" : "ce-source",
                              "//orders.example.com/eu-west-1"};
  ev->h[k++] = (bench_header){kafka ? "ce_time" : "ce-time", ev->time};
  if (kafka)
    ev->h[k++] = (bench_header){"ce_specversion", "1.0"};
  ev->h[k++] = (bench_header){"traceparent", ev->traceparent};
  ev->h[k++] = (bench_header){"x-tenant", ev->tenant};
  ev->h[k++] = (bench_header){"x-account", ev->account};
  ev->h[k++] = (bench_header){"x-tag", priorities[(r1 >> 8) % 8 == 0]};
  ev->h[k++] = (bench_header){"x-tag", "region:eu-west-1"};
  ev->n = k;
}

void bench_result(const char *name, size_t size, int64_t events, double seconds,
                  const char *extra) {
  double eps = seconds > 0 ? (double)events / seconds : 0;
  double mbps = eps * (double)size / 1e6;
  printf("RESULT name=%s size=%zu events=%" PRId64
         " seconds=%.3f eps=%.0f mbps=%.2f%s%s\n",
         name, size, events, seconds, eps, mbps,
         extra != NULL && *extra ? " " : "", extra != NULL ? extra : "");
  fflush(stdout);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

void bench_sort(double *v, size_t n) {
  if (n > 1)
    qsort(v, n, sizeof(*v), cmp_double);
}

double bench_pct(const double *sorted, size_t n, double p) {
  if (n == 0)
    return -1;
  size_t rank = (size_t)(p / 100 * (double)n + 0.999999);
  return sorted[rank < 1 ? 0 : rank > n ? n - 1 : rank - 1];
}

/* A plain producer handle used for admin and metadata requests only. */
static rd_kafka_t *admin_handle(const char *brokers, char *err, size_t errlen) {
  rd_kafka_conf_t *kc = rd_kafka_conf_new();
  if (rd_kafka_conf_set(kc, "bootstrap.servers", brokers, err, errlen) !=
          RD_KAFKA_CONF_OK ||
      rd_kafka_conf_set(kc, "log_level", "3", err, errlen) !=
          RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(kc);
    return NULL;
  }
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, err, errlen);
  if (rk == NULL)
    rd_kafka_conf_destroy(kc);
  return rk;
}

/* Partition count of `topic` once every partition has a leader; 0 while
 * not ready, -1 on a request failure. */
static int topic_partitions(rd_kafka_t *rk, rd_kafka_topic_t *rkt) {
  const struct rd_kafka_metadata *md = NULL;
  if (rd_kafka_metadata(rk, 0, rkt, &md, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR)
    return -1;
  int n = 0;
  if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    n = md->topics[0].partition_cnt;
    for (int i = 0; i < md->topics[0].partition_cnt; i++)
      if (md->topics[0].partitions[i].leader < 0)
        n = 0;
  }
  rd_kafka_metadata_destroy(md);
  return n;
}

int bench_kafka_topic(const char *brokers, const char *topic, int partitions,
                      char *err, size_t errlen) {
  int rc = -1;
  rd_kafka_queue_t *q = NULL;
  rd_kafka_event_t *ev = NULL;
  rd_kafka_topic_t *rkt = NULL;
  rd_kafka_NewTopic_t *nt = NULL;
  rd_kafka_t *rk = admin_handle(brokers, err, errlen);
  if (rk == NULL)
    return -1;

  nt = rd_kafka_NewTopic_new(topic, partitions > 0 ? partitions : -1, -1, err,
                             errlen);
  if (nt == NULL)
    goto done;
  q = rd_kafka_queue_new(rk);
  rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
  ev = rd_kafka_queue_poll(q, TOPIC_WAIT_MS);
  if (ev == NULL) {
    snprintf(err, errlen, "creating topic %s: no answer", topic);
    goto done;
  }
  const rd_kafka_CreateTopics_result_t *res =
      rd_kafka_event_CreateTopics_result(ev);
  size_t n = 0;
  const rd_kafka_topic_result_t **tr =
      res != NULL ? rd_kafka_CreateTopics_result_topics(res, &n) : NULL;
  rd_kafka_resp_err_t e = rd_kafka_event_error(ev);
  if (e == RD_KAFKA_RESP_ERR_NO_ERROR && n == 1)
    e = rd_kafka_topic_result_error(tr[0]);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR &&
      e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
    snprintf(err, errlen, "creating topic %s: %s", topic, rd_kafka_err2str(e));
    goto done;
  }

  rkt = rd_kafka_topic_new(rk, topic, NULL);
  for (int waited = 0; waited < TOPIC_WAIT_MS; waited += 100) {
    int n = topic_partitions(rk, rkt);
    if (n > 0 && partitions > 0 && n != partitions) {
      snprintf(err, errlen, "topic %s exists with %d partitions, not %d", topic,
               n, partitions);
      goto done;
    }
    if (n > 0) {
      rc = 0;
      goto done;
    }
    struct timespec ts = {0, 100 * 1000000L};
    nanosleep(&ts, NULL);
  }
  snprintf(err, errlen, "topic %s has no leaders after %d ms", topic,
           TOPIC_WAIT_MS);

done:
  if (ev != NULL)
    rd_kafka_event_destroy(ev);
  if (nt != NULL)
    rd_kafka_NewTopic_destroy(nt);
  if (q != NULL)
    rd_kafka_queue_destroy(q);
  if (rkt != NULL)
    rd_kafka_topic_destroy(rkt);
  rd_kafka_destroy(rk);
  return rc;
}

int64_t bench_kafka_records(const char *brokers, const char *topic, char *err,
                            size_t errlen) {
  int64_t total = -1;
  rd_kafka_t *rk = admin_handle(brokers, err, errlen);
  if (rk == NULL)
    return -1;
  rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
  int parts = topic_partitions(rk, rkt);
  if (parts <= 0) {
    snprintf(err, errlen, "topic %s: no metadata", topic);
    goto done;
  }
  total = 0;
  for (int p = 0; p < parts; p++) {
    int64_t lo = 0, hi = 0;
    rd_kafka_resp_err_t e;
    /* A partition that has just been created may not be served yet. */
    for (int waited = 0;; waited += 100) {
      e = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000);
      if (e == RD_KAFKA_RESP_ERR_NO_ERROR || waited >= TOPIC_WAIT_MS)
        break;
      struct timespec ts = {0, 100 * 1000000L};
      nanosleep(&ts, NULL);
    }
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      snprintf(err, errlen, "topic %s [%d]: watermarks: %s", topic, p,
               rd_kafka_err2str(e));
      total = -1;
      goto done;
    }
    total += hi - lo;
  }
done:
  rd_kafka_topic_destroy(rkt);
  rd_kafka_destroy(rk);
  return total;
}

extern char **environ;

#define STOP_WAIT_S 60

void bench_sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

void bench_js_recreate_stream(const char *prog, jsCtx *js, const char *stream,
                              const char *subject) {
  jsErrCode jerr = 0;
  natsStatus st = js_DeleteStream(js, stream, NULL, &jerr);
  if (st != NATS_OK && st != NATS_NOT_FOUND)
    bench_die(prog, "delete stream %s: %s (error %d)", stream,
              natsStatus_GetText(st), (int)jerr);
  jsStreamConfig sc;
  jsStreamInfo *si = NULL;
  jsStreamConfig_Init(&sc);
  sc.Name = stream;
  sc.Subjects = &subject;
  sc.SubjectsLen = 1;
  sc.Storage = js_FileStorage;
  if ((st = js_AddStream(&si, js, &sc, NULL, &jerr)) != NATS_OK)
    bench_die(prog, "add stream %s: %s (error %d)", stream,
              natsStatus_GetText(st), (int)jerr);
  jsStreamInfo_Destroy(si);
}

pid_t bench_natka_spawn(const char *prog, const char *natka, const char *config,
                        const bench_list *sets, const char *log) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (log != NULL) {
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND,
                                     0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
  }
  char *argv[4 + 2 * BENCH_LIST_MAX + 1] = {(char *)natka, "run", "-c",
                                            (char *)config};
  int argc = 4;
  for (int i = 0; sets != NULL && i < sets->n; i++) {
    argv[argc++] = "-s";
    argv[argc++] = (char *)sets->v[i];
  }
  argv[argc] = NULL;
  pid_t pid;
  int rc = posix_spawn(&pid, natka, &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0)
    bench_die(prog, "cannot start %s: %s", natka, strerror(rc));
  return pid;
}

int bench_natka_stop(const char *prog, pid_t pid) {
  int status = 0;
  kill(pid, SIGTERM);
  for (int i = 0; i < STOP_WAIT_S * 100; i++) {
    if (waitpid(pid, &status, WNOHANG) == pid)
      return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    bench_sleep_ms(10);
  }
  fprintf(stderr, "bench %s: no exit %ds after SIGTERM; killing it\n", prog,
          STOP_WAIT_S);
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return -1;
}
