/*
 * bench_raw_kafka: the Kafka baseline. Produces N messages of B bytes with
 * librdkafka alone, configured like natka's producer by default (idempotent,
 * acks=all, linger.ms 5, batch.size 1000000, no compression, no key), and
 * waits for every delivery report. The topic is created before the clock
 * starts.
 *
 *   bench_raw_kafka --brokers HOST:PORT --topic T --size B --events N
 *                   [--linger-ms 5] [--batch-size 1000000] [--window W]
 *                   [--transactional K]
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
 * extra fields cpu (CPU seconds of this process) and startup (seconds to
 * the first delivery report); when transactional also txn (K),
 * transactions (committed) and init (seconds of init_transactions).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "bench_util.h"

#define PROG "raw_kafka"
#define FLUSH_TIMEOUT_MS 300000
#define TXN_INIT_TIMEOUT_MS 30000
#define TXN_RETRIES 10 /* of a retriable init or commit */

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
    "                       [--linger-ms MS] [--batch-size BYTES] "
    "[--window W]\n"
    "                       [--transactional K]\n"
    "Produces N messages with an idempotent producer and waits for "
    "all delivery reports;\n"
    "with --transactional, commits a transaction every K messages.\n";

int main(int argc, char **argv) {
  const char *brokers = NULL, *topic = NULL, *linger = "5",
             *batch_size = "1000000";
  int64_t size = -1, events = -1, window = 0, txn = 0;
  const bench_opt opts[] = {BENCH_STR("brokers", &brokers, 1),
                            BENCH_STR("topic", &topic, 1),
                            BENCH_SIZE_EVENTS(&size, &events),
                            BENCH_STR("linger-ms", &linger, 0),
                            BENCH_STR("batch-size", &batch_size, 0),
                            BENCH_INT("window", &window, 0, INT32_MAX, 0),
                            BENCH_INT("transactional", &txn, 1, INT32_MAX, 0),
                            {NULL}};
  bench_options(argc, argv, opts, usage);

  char err[512];
  if (bench_kafka_topic(brokers, topic, err, sizeof(err)) != 0)
    bench_die(PROG, "%s", err);

  counts c = {0};
  rd_kafka_conf_t *kc = rd_kafka_conf_new();
  set(kc, "bootstrap.servers", brokers);
  set(kc, "enable.idempotence", "true");
  set(kc, "acks", "all");
  set(kc, "linger.ms", linger);
  set(kc, "batch.size", batch_size);
  set(kc, "compression.codec", "none");
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
  int64_t transactions = 0, in_txn = -1; /* -1: no transaction open */
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
    rd_kafka_resp_err_t e = rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_VALUE(payload, (size_t)size), RD_KAFKA_V_END);
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
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
    bench_die(PROG, "flush: %s (%lld of %lld delivered)", rd_kafka_err2str(e),
              (long long)c.delivered, (long long)events);
  if (c.failed > 0 || c.delivered != events)
    bench_die(PROG, "%lld delivered, %lld failed (first: %s)",
              (long long)c.delivered, (long long)c.failed,
              rd_kafka_err2str(c.first_err));

  char extra[192];
  int len = snprintf(
      extra, sizeof(extra), "cpu=%.2f startup=%.3f linger_ms=%s window=%lld",
      bench_cpu_self(), c.first_report - t0, linger, (long long)window);
  if (txn > 0)
    snprintf(extra + len, sizeof(extra) - (size_t)len,
             " txn=%lld transactions=%lld init=%.3f", (long long)txn,
             (long long)transactions, init_secs);
  bench_result(txn > 0 ? PROG "_txn" : PROG, (size_t)size, c.delivered, secs,
               extra);

  free(payload);
  rd_kafka_destroy(rk);
  return 0;
}
