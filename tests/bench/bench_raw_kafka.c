/*
 * bench_raw_kafka: the Kafka baseline. Produces N messages of B bytes with
 * librdkafka alone, configured like natka's producer by default (idempotent,
 * acks=all, linger.ms 5, batch.size 1000000, no compression, no key), and
 * waits for every delivery report. The topic is created before the clock
 * starts.
 *
 *   bench_raw_kafka --brokers HOST:PORT --topic T --size B --events N
 *                   [--linger-ms 5] [--batch-size 1000000] [--window W]
 *
 * --window W keeps at most W messages awaiting their delivery report, as
 * natka does with jetstream.max_ack_pending: it shows how much of natka's
 * rate the window alone explains. The default (0) is no limit.
 *
 * Prints RESULT name=raw_kafka, with extra fields cpu (CPU seconds of this
 * process) and startup (seconds to the first delivery report).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "bench_util.h"

#define PROG "raw_kafka"
#define FLUSH_TIMEOUT_MS 300000

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

static const char usage[] =
    "Usage: bench_raw_kafka --brokers HOST:PORT --topic T "
    "--size BYTES --events N\n"
    "                       [--linger-ms MS] [--batch-size BYTES] "
    "[--window W]\n"
    "Produces N messages with an idempotent producer and waits for "
    "all delivery reports.\n";

int main(int argc, char **argv) {
  const char *brokers = NULL, *topic = NULL, *linger = "5",
             *batch_size = "1000000";
  int64_t size = -1, events = -1, window = 0;
  const bench_opt opts[] = {BENCH_STR("brokers", &brokers, 1),
                            BENCH_STR("topic", &topic, 1),
                            BENCH_SIZE_EVENTS(&size, &events),
                            BENCH_STR("linger-ms", &linger, 0),
                            BENCH_STR("batch-size", &batch_size, 0),
                            BENCH_INT("window", &window, 0, INT32_MAX, 0),
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
  rd_kafka_conf_set_dr_msg_cb(kc, on_delivery);
  rd_kafka_conf_set_opaque(kc, &c);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, err, sizeof(err));
  if (rk == NULL)
    bench_die(PROG, "producer: %s", err);

  char *payload = bench_payload((size_t)size);
  double t0 = bench_now();
  for (int64_t i = 0; i < events;) {
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

  char extra[96];
  snprintf(extra, sizeof(extra),
           "cpu=%.2f startup=%.3f linger_ms=%s window=%lld", bench_cpu_self(),
           c.first_report - t0, linger, (long long)window);
  bench_result(PROG, (size_t)size, c.delivered, secs, extra);

  free(payload);
  rd_kafka_destroy(rk);
  return 0;
}
