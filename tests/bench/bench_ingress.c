/*
 * bench_ingress: how long a synchronous receipt takes. Without --raw, it
 * starts the natka daemon, whose configuration takes requests on --subject
 * (ingress.subjects), and sends it requests with natsConnection_Request; every
 * reply must be a receipt {"id":...,"stream":<--stream>,"seq":N,
 * "duplicate":false}, not an error. With --raw, the baseline: the same
 * payload published to JetStream by nats.c alone, js_Publish waiting for the
 * PubAck, with a Nats-Msg-Id of its own as natka sets one; no natka.
 *
 *   bench_ingress --url URL --stream NAME --stream-subject SUBJ
 *                 --subject SUBJ --size B --events R
 *                 [--concurrency C] [--warmup W] [--timeout-ms MS]
 *                 (--raw | --natka PATH --config FILE --brokers HOST:PORT
 *                          --topic T [--log FILE])
 *
 * The stream is recreated over --stream-subject first, so every run starts
 * empty. With natka it must be the stream natka stores the requests in
 * (<ingress.stream_prefix>.<request subject> under --stream-subject) and
 * consumes; --topic, where its rule routes them, is created before natka
 * starts. natka carries the events on to Kafka during the measurement, as
 * it would in service.
 *
 * Once natka answers (or at once with --raw), W round trips (default 200)
 * warm up unmeasured. Then R round trips one after the other, each timed;
 * then, with C > 1, R more shared by C requesters, each with a connection
 * of its own, all sending one round trip after the other at the same time.
 * A failed round trip (an error reply, a timeout after --timeout-ms, default
 * 10000) ends the run with status 1. At the end the stream must hold as
 * many messages as there were receipts.
 *
 * Prints RESULT name=ingress (raw_js_publish with --raw): size, events R,
 * seconds and eps of the sequential round trips, with extra fields p50_ms,
 * p99_ms, max_ms (sequential, nearest rank), concurrency, c_eps, c_p50_ms,
 * c_p99_ms, c_max_ms (the concurrent round trips; -1 when C is 1), cpu (this
 * process), startup (seconds from spawning natka to its first receipt; 0
 * with --raw) and exit (natka's status after SIGTERM; 0 with --raw).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <nats/nats.h>

#include "bench_util.h"

#define PROG "ingress"
#define START_WAIT_S 60
#define PROBE_TIMEOUT_MS 1000

/* One requester: a connection and the round trips it makes. */
typedef struct requester {
  const char *stream, *subject, *payload;
  int size, raw, index;
  int64_t timeout_ms, sent; /* sent: round trips so far, for the msg ids */
  natsConnection *nc;
  jsCtx *js;
  double *lat; /* milliseconds of round trip i, i < n */
  int64_t n;
  pthread_barrier_t *go;
  char failed[512]; /* "" unless a round trip failed */
} requester;

/* 0 when `data` is a receipt from the expected stream, else -1 with `why`. */
static int check_receipt(const requester *r, const char *data, int len,
                         char *why, size_t whylen) {
  cJSON *j = cJSON_ParseWithLength(data, (size_t)len);
  cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
  cJSON *stream = cJSON_GetObjectItemCaseSensitive(j, "stream");
  cJSON *seq = cJSON_GetObjectItemCaseSensitive(j, "seq");
  cJSON *dup = cJSON_GetObjectItemCaseSensitive(j, "duplicate");
  int ok = cJSON_IsString(id) && *id->valuestring != '\0' &&
           cJSON_IsString(stream) &&
           strcmp(stream->valuestring, r->stream) == 0 && cJSON_IsNumber(seq) &&
           seq->valuedouble >= 1 && cJSON_IsFalse(dup);
  cJSON_Delete(j);
  if (!ok)
    snprintf(why, whylen, "not a receipt from stream %s: %.*s", r->stream,
             len > 300 ? 300 : len, data);
  return ok ? 0 : -1;
}

/* A request to natka and its receipt. */
static int request_once(const requester *r, int64_t timeout_ms, char *why,
                        size_t whylen, natsStatus *status) {
  natsMsg *reply = NULL;
  natsStatus st = natsConnection_Request(&reply, r->nc, r->subject, r->payload,
                                         r->size, timeout_ms);
  *status = st;
  if (st != NATS_OK) {
    snprintf(why, whylen, "request on %s: %s", r->subject,
             natsStatus_GetText(st));
    return -1;
  }
  int rc = check_receipt(r, natsMsg_GetData(reply),
                         natsMsg_GetDataLength(reply), why, whylen);
  natsMsg_Destroy(reply);
  return rc;
}

/* The baseline: a synchronous JetStream publish and its PubAck. */
static int publish_once(const requester *r, char *why, size_t whylen) {
  char id[64];
  jsPubOptions po;
  jsPubAck *ack = NULL;
  jsErrCode jerr = 0;
  snprintf(id, sizeof(id), "raw-%d-%d-%lld", (int)getpid(), r->index,
           (long long)r->sent);
  jsPubOptions_Init(&po);
  po.MsgId = id;
  po.MaxWait = r->timeout_ms;
  natsStatus st =
      js_Publish(&ack, r->js, r->subject, r->payload, r->size, &po, &jerr);
  int rc = 0;
  if (st != NATS_OK) {
    snprintf(why, whylen, "publish on %s: %s (error %d)", r->subject,
             natsStatus_GetText(st), (int)jerr);
    rc = -1;
  } else if (strcmp(ack->Stream, r->stream) != 0 || ack->Sequence < 1 ||
             ack->Duplicate) {
    snprintf(why, whylen, "unexpected ack: stream %s seq %llu duplicate %d",
             ack->Stream, (unsigned long long)ack->Sequence,
             (int)ack->Duplicate);
    rc = -1;
  }
  jsPubAck_Destroy(ack);
  return rc;
}

/* One round trip, timed into *ms; 0 or -1 with r->failed filled. */
static int round_trip(requester *r, double *ms) {
  natsStatus st;
  double t = bench_now();
  int rc = r->raw ? publish_once(r, r->failed, sizeof(r->failed))
                  : request_once(r, r->timeout_ms, r->failed, sizeof(r->failed),
                                 &st);
  *ms = (bench_now() - t) * 1e3;
  r->sent++;
  return rc;
}

/* n round trips in a row; stops at the first failure. */
static int64_t run_requests(requester *r, int64_t n, double *lat) {
  double ignored;
  for (int64_t i = 0; i < n; i++)
    if (round_trip(r, lat != NULL ? &lat[i] : &ignored) != 0)
      return i;
  return n;
}

static void *requester_thread(void *arg) {
  requester *r = arg;
  pthread_barrier_wait(r->go);
  run_requests(r, r->n, r->lat);
  return NULL;
}

static void check_alive(pid_t pid) {
  int status;
  if (pid > 0 && waitpid(pid, &status, WNOHANG) == pid)
    bench_die(PROG, "natka exited early (status %d); see its log",
              WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

/* Requests until natka answers with a receipt; returns how many requests
 * timed out meanwhile (each may have been stored all the same). */
static int64_t wait_ready(requester *r, pid_t pid) {
  char why[512];
  int64_t timeouts = 0;
  double t0 = bench_now();
  for (;;) {
    natsStatus st;
    check_alive(pid);
    if (request_once(r, PROBE_TIMEOUT_MS, why, sizeof(why), &st) == 0)
      return timeouts;
    if (st == NATS_OK)
      bench_die(PROG, "natka's first reply: %s", why);
    if (st == NATS_TIMEOUT)
      timeouts++;
    else if (st != NATS_NO_RESPONDERS)
      bench_die(PROG, "%s", why);
    if (bench_now() - t0 > START_WAIT_S)
      bench_die(PROG, "no receipt from natka after %ds (%s)", START_WAIT_S,
                why);
    bench_sleep_ms(10);
  }
}

/* Sorts lat and writes "<prefix>p50_ms=.. <prefix>p99_ms=.. <prefix>max_ms=..".
 */
static int percentiles(char *out, size_t len, const char *prefix, double *lat,
                       size_t n) {
  bench_sort(lat, n);
  return snprintf(out, len, "%sp50_ms=%.3f %sp99_ms=%.3f %smax_ms=%.3f", prefix,
                  bench_pct(lat, n, 50), prefix, bench_pct(lat, n, 99), prefix,
                  n > 0 ? lat[n - 1] : -1);
}

static const char usage[] =
    "Usage: bench_ingress --url URL --stream NAME --stream-subject SUBJ "
    "--subject SUBJ\n"
    "                     --size BYTES --events R [--concurrency C] "
    "[--warmup W]\n"
    "                     [--timeout-ms MS]\n"
    "                     (--raw | --natka PATH --config FILE --brokers "
    "HOST:PORT\n"
    "                              --topic T [--log FILE])\n"
    "Times R request-reply receipts from natka (or, with --raw, R synchronous "
    "JetStream\n"
    "publishes), one at a time, then R more from C requesters at once.\n";

int main(int argc, char **argv) {
  const char *url = NULL, *stream = NULL, *stream_subject = NULL,
             *subject = NULL, *natka = NULL, *config = NULL, *brokers = NULL,
             *topic = NULL, *log = NULL;
  int64_t size = -1, events = -1, conc = 1, warmup = 200, timeout_ms = 10000;
  int raw = 0;
  const bench_opt opts[] = {BENCH_STR("url", &url, 1),
                            BENCH_STR("stream", &stream, 1),
                            BENCH_STR("stream-subject", &stream_subject, 1),
                            BENCH_STR("subject", &subject, 1),
                            BENCH_SIZE_EVENTS(&size, &events),
                            BENCH_INT("concurrency", &conc, 1, 1000, 0),
                            BENCH_INT("warmup", &warmup, 0, INT32_MAX, 0),
                            BENCH_INT("timeout-ms", &timeout_ms, 1, 600000, 0),
                            BENCH_FLAG("raw", &raw),
                            BENCH_STR("natka", &natka, 0),
                            BENCH_STR("config", &config, 0),
                            BENCH_STR("brokers", &brokers, 0),
                            BENCH_STR("topic", &topic, 0),
                            BENCH_STR("log", &log, 0),
                            {NULL}};
  bench_options(argc, argv, opts, usage);
  if (!raw &&
      (natka == NULL || config == NULL || brokers == NULL || topic == NULL)) {
    fputs(usage, stderr);
    return 2;
  }
  const char *name = raw ? "raw_js_publish" : PROG;

  char err[512];
  if (!raw && bench_kafka_topic(brokers, topic, 0, err, sizeof(err)) != 0)
    bench_die(PROG, "%s", err);

  char *payload = bench_payload((size_t)size);
  double *lat = malloc((size_t)events * sizeof(*lat));
  double *clat = conc > 1 ? malloc((size_t)events * sizeof(*clat)) : NULL;
  requester *reqs = calloc((size_t)conc, sizeof(*reqs));
  if (lat == NULL || reqs == NULL || (conc > 1 && clat == NULL))
    bench_die(PROG, "out of memory");
  for (int64_t k = 0; k < conc; k++)
    reqs[k] = (requester){.stream = stream,
                          .subject = subject,
                          .payload = payload,
                          .size = (int)size,
                          .raw = raw,
                          .index = (int)k,
                          .timeout_ms = timeout_ms};

  /* Requester 0 also sets the stream up and does the sequential part. */
  requester *r0 = &reqs[0];
  bench_js_connect(PROG, url, NULL, &r0->nc, &r0->js);
  bench_js_recreate_stream(PROG, r0->js, stream, stream_subject);
  for (int64_t k = 1; k < conc; k++)
    bench_js_connect(PROG, url, NULL, &reqs[k].nc, &reqs[k].js);

  pid_t pid = -1;
  int64_t probes = 0, probe_timeouts = 0;
  double startup = 0;
  if (!raw) {
    double t0 = bench_now();
    pid = bench_natka_spawn(PROG, natka, config, NULL, log);
    probe_timeouts = wait_ready(r0, pid);
    probes = 1;
    startup = bench_now() - t0;
    fprintf(stderr, "bench ingress: first receipt %.3f s after natka's start\n",
            startup);
  }

  if (run_requests(r0, warmup, NULL) != warmup)
    bench_die(PROG, "warm-up: %s", r0->failed);

  double t_seq = bench_now();
  if (run_requests(r0, events, lat) != events)
    bench_die(PROG, "%s", r0->failed);
  double seq_secs = bench_now() - t_seq;
  check_alive(pid);

  double c_secs = 0;
  if (conc > 1) {
    pthread_barrier_t go;
    pthread_t *threads = calloc((size_t)conc, sizeof(*threads));
    if (threads == NULL)
      bench_die(PROG, "out of memory");
    pthread_barrier_init(&go, NULL, (unsigned)conc + 1);
    for (int64_t k = 0, at = 0; k < conc; k++) {
      reqs[k].n = events / conc + (k < events % conc);
      reqs[k].lat = clat + at;
      reqs[k].go = &go;
      at += reqs[k].n;
      pthread_create(&threads[k], NULL, requester_thread, &reqs[k]);
    }
    pthread_barrier_wait(&go);
    double t_c = bench_now();
    for (int64_t k = 0; k < conc; k++)
      pthread_join(threads[k], NULL);
    c_secs = bench_now() - t_c;
    pthread_barrier_destroy(&go);
    free(threads);
    for (int64_t k = 0; k < conc; k++)
      if (reqs[k].failed[0] != '\0')
        bench_die(PROG, "requester %lld of %lld: %s", (long long)k + 1,
                  (long long)conc, reqs[k].failed);
  }

  /* Every receipt stands for one message stored, and nothing else was. */
  int64_t receipts = probes + warmup + events + (conc > 1 ? events : 0);
  jsStreamInfo *si = NULL;
  jsErrCode jerr = 0;
  natsStatus st = js_GetStreamInfo(&si, r0->js, stream, NULL, &jerr);
  if (st != NATS_OK)
    bench_die(PROG, "stream %s: %s", stream, natsStatus_GetText(st));
  int64_t msgs = (int64_t)si->State.Msgs;
  jsStreamInfo_Destroy(si);

  int exit_status = pid > 0 ? bench_natka_stop(PROG, pid) : 0;

  char extra[512];
  int len = percentiles(extra, sizeof(extra), "", lat, (size_t)events);
  len += snprintf(extra + len, sizeof(extra) - (size_t)len,
                  " concurrency=%lld c_eps=%.0f ", (long long)conc,
                  c_secs > 0 ? (double)events / c_secs : -1);
  if (conc > 1)
    len += percentiles(extra + len, sizeof(extra) - (size_t)len, "c_", clat,
                       (size_t)events);
  else
    len += snprintf(extra + len, sizeof(extra) - (size_t)len,
                    "c_p50_ms=-1 c_p99_ms=-1 c_max_ms=-1");
  snprintf(extra + len, sizeof(extra) - (size_t)len,
           " cpu=%.2f startup=%.3f exit=%d", bench_cpu_self(), startup,
           exit_status);
  bench_result(name, (size_t)size, events, seq_secs, extra);

  for (int64_t k = 1; k < conc; k++) {
    jsCtx_Destroy(reqs[k].js);
    natsConnection_Destroy(reqs[k].nc);
  }
  bench_js_close(r0->nc, r0->js);
  free(reqs);
  free(clat);
  free(lat);
  free(payload);
  if (msgs < receipts || msgs > receipts + probe_timeouts)
    bench_die(PROG, "stream %s holds %lld messages for %lld receipts", stream,
              (long long)msgs, (long long)receipts);
  if (exit_status != 0)
    bench_die(PROG, "natka exited with status %d after SIGTERM", exit_status);
  return 0;
}
