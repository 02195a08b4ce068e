/*
 * bench_raw_kafka: the Kafka baseline. Produces N events of B bytes with
 * librdkafka alone, as natka writes the events bench_fill publishes: the
 * same headers (bench_event_make, ce-* as ce_*, ce_specversion), the key
 * taken from x-account, the timestamp from ce-time. Idempotent, acks=all,
 * no compression (natka's default), linger.ms and batch.size at their best
 * (below); waits for every delivery report. The topic is created before the
 * clock starts, with --partitions P partitions (default: the broker's). The
 * events are made before the clock starts too (POOL distinct ones, reused
 * in turn), so that the CPU measured is librdkafka's.
 *
 *   bench_raw_kafka --brokers HOST:PORT --topic T --size B --events N
 *                   [--partitions P] [--linger-ms 20] [--batch-size 1000000]
 *                   [--property KEY=VALUE ...] [--window W]
 *                   [--transactional K]
 *
 * The defaults are the best found on the reference machine (2 cores,
 * shared with nats-server and Kafka) in three sweeps of 3 to 5 interleaved
 * runs, one by hand and two with `scripts/bench --tune`: linger.ms 5, 20
 * and 50 with batch.size 262144 and 1000000, events of 100 B and 1 KiB into
 * 4 partitions. linger.ms 20 with batch.size 1000000 had the highest sum of
 * its median relative to the fastest of each sweep and size (4.97 of 6;
 * 50 / 1000000 4.95, 20 / 262144 4.85, 5 / 1000000 4.66): about 54-83k
 * events/s at 100 B and 55-59k at 1 KiB, 5-7 CPU µs per event. The medians
 * move by ±30% from sweep to sweep there: rerun --tune elsewhere.
 * --property sets any other librdkafka property (after the others).
 *
 * --window W keeps at most W messages awaiting their delivery report, as
 * natka does with jetstream.max_ack_pending: it shows how much of natka's
 * rate the window alone explains. The default (0) is no limit.
 *
 * --transactional K makes it a transactional producer (transactional.id
 * bench_raw_txn_<pid>, otherwise the same settings): after
 * rd_kafka_init_transactions and a metadata request for the topic, both
 * outside the clock like the topic creation, every K messages are one
 * transaction (begin, produce K, commit; the commit waits for their
 * delivery reports), as natka batches with kafka.transaction_max_events.
 * The window does not apply then.
 *
 * Prints RESULT name=raw_kafka (raw_kafka_txn when transactional), with
 * extra fields cpu (CPU seconds of this process while the clock ran),
 * startup (seconds to the first delivery report), linger_ms, batch_size and
 * window; when transactional also txn (K),
 * transactions (committed) and init (seconds of init_transactions).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "bench_util.h"

#define PROG "raw_kafka"
#define FLUSH_TIMEOUT_MS 300000
#define TXN_INIT_TIMEOUT_MS 30000
#define TXN_RETRIES 10 /* of a retriable init or commit */
#define POOL 4096      /* distinct events, made before the clock starts */
#define LINGER_MS "20"
#define BATCH_SIZE "1000000"

typedef struct {
  int64_t delivered, failed;
  rd_kafka_resp_err_t first_err;
  double first_report; /* bench_now() of the first delivery report */
} counts;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque) {
  counts *c = opaque;
  (void)rk;
  if (c->first_report == 0)
    c->first_report = bench_now();
  if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    c->delivered++;
  } else if (c->failed++ == 0) {
    c->first_err = m->err;
  }
}

static void set(rd_kafka_conf_t *kc, const char *key, const char *value) {
  char err[512];
  if (rd_kafka_conf_set(kc, key, value, err, sizeof(err)) != RD_KAFKA_CONF_OK)
    bench_die(PROG, "%s=%s: %s", key, value, err);
}

/* Calls init_transactions or commit_transaction until it succeeds, retrying
 * what librdkafka marks retriable (a timeout: the operation goes on in the
 * background). Any other error ends the run: an aborted transaction would
 * make the figure meaningless. An abortable one is aborted first, so that
 * the broker does not keep it open until transaction.timeout.ms. */
static void txn_call(rd_kafka_t *rk, const char *what,
                     rd_kafka_error_t *(*call)(rd_kafka_t *, int),
                     int timeout_ms) {
  for (int attempt = 1;; attempt++) {
    rd_kafka_error_t *e = call(rk, timeout_ms);
    if (e == NULL)
      return;
    if (rd_kafka_error_is_retriable(e) && attempt < TXN_RETRIES) {
      rd_kafka_error_destroy(e);
      continue;
    }
    char why[512];
    snprintf(why, sizeof(why), "%s: %s (%s%s%s)", what,
             rd_kafka_error_string(e), rd_kafka_error_name(e),
             rd_kafka_error_is_fatal(e) ? ", fatal" : "",
             rd_kafka_error_txn_requires_abort(e) ? ", abortable" : "");
    if (rd_kafka_error_txn_requires_abort(e)) {
      rd_kafka_error_t *ae = rd_kafka_abort_transaction(rk, -1);
      if (ae != NULL)
        rd_kafka_error_destroy(ae);
    }
    rd_kafka_error_destroy(e);
    bench_die(PROG, "%s", why);
  }
}

static void txn_begin(rd_kafka_t *rk) {
  rd_kafka_error_t *e = rd_kafka_begin_transaction(rk);
  if (e != NULL) {
    char why[512];
    snprintf(why, sizeof(why), "%s (%s)", rd_kafka_error_string(e),
             rd_kafka_error_name(e));
    rd_kafka_error_destroy(e);
    bench_die(PROG, "begin transaction: %s", why);
  }
}

static const char usage[] =
    "Usage: bench_raw_kafka --brokers HOST:PORT --topic T "
    "--size BYTES --events N\n"
    "                       [--partitions P] [--linger-ms MS] "
    "[--batch-size BYTES]\n"
    "                       [--property KEY=VALUE ...] [--window W] "
    "[--transactional K]\n"
    "Produces N events with an idempotent producer and waits for "
    "all delivery reports;\n"
    "with --transactional, commits a transaction every K messages.\n";

int main(int argc, char **argv) {
  const char *brokers = NULL, *topic = NULL, *linger = LINGER_MS,
             *batch_size = BATCH_SIZE;
  int64_t size = -1, events = -1, window = 0, txn = 0, partitions = 0;
  bench_list props = {0};
  const bench_opt opts[] = {BENCH_STR("brokers", &brokers, 1),
                            BENCH_STR("topic", &topic, 1),
                            BENCH_SIZE_EVENTS(&size, &events),
                            BENCH_INT("partitions", &partitions, 0, 10000, 0),
                            BENCH_STR("linger-ms", &linger, 0),
                            BENCH_STR("batch-size", &batch_size, 0),
                            BENCH_LIST("property", &props),
                            BENCH_INT("window", &window, 0, INT32_MAX, 0),
                            BENCH_INT("transactional", &txn, 1, INT32_MAX, 0),
                            {NULL}};
  bench_options(argc, argv, opts, usage);

  char err[512];
  if (bench_kafka_topic(brokers, topic, (int)partitions, err, sizeof(err)) != 0)
    bench_die(PROG, "%s", err);

  counts c = {0};
  rd_kafka_conf_t *kc = rd_kafka_conf_new();
  set(kc, "bootstrap.servers", brokers);
  set(kc, "enable.idempotence", "true");
  set(kc, "acks", "all");
  set(kc, "linger.ms", linger);
  set(kc, "batch.size", batch_size);
  set(kc, "compression.codec", "none");
  for (int i = 0; i < props.n; i++) {
    char key[128];
    const char *eq = strchr(props.v[i], '=');
    if (eq == NULL || eq == props.v[i] ||
        (size_t)(eq - props.v[i]) >= sizeof(key))
      bench_die(PROG, "--property wants KEY=VALUE, got '%s'", props.v[i]);
    memcpy(key, props.v[i], (size_t)(eq - props.v[i]));
    key[eq - props.v[i]] = '\0';
    set(kc, key, eq + 1);
  }
  if (txn > 0) {
    char id[64];
    snprintf(id, sizeof(id), "bench_raw_txn_%d", (int)getpid());
    set(kc, "transactional.id", id);
    window = 0;
  }
  rd_kafka_conf_set_dr_msg_cb(kc, on_delivery);
  rd_kafka_conf_set_opaque(kc, &c);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, err, sizeof(err));
  if (rk == NULL)
    bench_die(PROG, "producer: %s", err);

  double init_secs = 0;
  if (txn > 0) {
    double ti = bench_now();
    txn_call(rk, "init transactions", rd_kafka_init_transactions,
             TXN_INIT_TIMEOUT_MS);
    init_secs = bench_now() - ti;
    /* A transactional producer learns a new topic's partitions only from
     * its next periodic metadata refresh, a second later: ask now, outside
     * the clock, like the topic creation. */
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t me = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
    if (me != RD_KAFKA_RESP_ERR_NO_ERROR)
      bench_die(PROG, "topic %s: metadata: %s", topic, rd_kafka_err2str(me));
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
  }

  char *payload = bench_payload((size_t)size);
  bench_event *pool = malloc(POOL * sizeof(*pool));
  if (pool == NULL)
    bench_die(PROG, "out of memory");
  uint64_t seed = (uint64_t)time(NULL) << 20 ^ (uint64_t)getpid();
  for (int64_t i = 0; i < POOL; i++)
    bench_event_make(&pool[i], seed, i, 1);
  int64_t transactions = 0, in_txn = -1; /* -1: no transaction open */
  double cpu0 = bench_cpu_self();
  double t0 = bench_now();
  for (int64_t i = 0; i < events;) {
    if (txn > 0 && in_txn < 0) {
      txn_begin(rk);
      in_txn = 0;
    }
    if (window > 0 && i - c.delivered - c.failed >= window) {
      rd_kafka_poll(rk, 1);
      continue;
    }
    const bench_event *ev = &pool[i % POOL];
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new((size_t)ev->n);
    for (int h = 0; h < ev->n; h++)
      rd_kafka_header_add(hdrs, ev->h[h].name, -1, ev->h[h].value, -1);
    rd_kafka_resp_err_t e = rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(ev->key, strlen(ev->key)),
        RD_KAFKA_V_VALUE(payload, (size_t)size),
        RD_KAFKA_V_TIMESTAMP(ev->ts_ms), RD_KAFKA_V_HEADERS(hdrs),
        RD_KAFKA_V_END);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
      rd_kafka_headers_destroy(hdrs); /* kept by librdkafka only on success */
    if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      rd_kafka_poll(rk, 1); /* let delivery reports make room */
      continue;
    }
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
      bench_die(PROG, "produce #%lld: %s", (long long)i, rd_kafka_err2str(e));
    if (++i % 1000 == 0)
      rd_kafka_poll(rk, 0);
    if (txn > 0 && ++in_txn == txn) {
      txn_call(rk, "commit transaction", rd_kafka_commit_transaction, -1);
      transactions++;
      in_txn = -1;
    }
  }
  if (in_txn > 0) {
    txn_call(rk, "commit transaction", rd_kafka_commit_transaction, -1);
    transactions++;
  }
  rd_kafka_resp_err_t e = rd_kafka_flush(rk, FLUSH_TIMEOUT_MS);
  double secs = bench_now() - t0;
  double cpu = bench_cpu_self() - cpu0;
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
    bench_die(PROG, "flush: %s (%lld of %lld delivered)", rd_kafka_err2str(e),
              (long long)c.delivered, (long long)events);
  if (c.failed > 0 || c.delivered != events)
    bench_die(PROG, "%lld delivered, %lld failed (first: %s)",
              (long long)c.delivered, (long long)c.failed,
              rd_kafka_err2str(c.first_err));

  char extra[192];
  int len =
      snprintf(extra, sizeof(extra),
               "cpu=%.3f startup=%.3f linger_ms=%s batch_size=%s "
               "window=%lld",
               cpu, c.first_report - t0, linger, batch_size, (long long)window);
  if (txn > 0)
    snprintf(extra + len, sizeof(extra) - (size_t)len,
             " txn=%lld transactions=%lld init=%.3f", (long long)txn,
             (long long)transactions, init_secs);
  bench_result(txn > 0 ? PROG "_txn" : PROG, (size_t)size, c.delivered, secs,
               extra);

  free(pool);
  free(payload);
  rd_kafka_destroy(rk);
  return 0;
}
