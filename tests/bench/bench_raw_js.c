/*
 * bench_raw_js: the JetStream baseline. Consumes N events from a filled
 * stream with nats.c alone, at its best: a durable pull consumer (explicit
 * acks, deliver all) fetching K messages at a time and acking every one
 * (natsMsg_Ack, no wait). No decoding, no Kafka.
 *
 *   bench_raw_js --url URL --stream NAME --durable NAME --size B --events N
 *                [--batch 2048] [--max-ack-pending 2048]
 *
 * The defaults are the best found on the reference machine (2 cores,
 * shared with nats-server and Kafka) in three sweeps of 3 to 5 interleaved
 * runs, one by hand and two with `scripts/bench --tune`: fetches of 1024,
 * 2048 and 4096 with max ack pending equal to the fetch and twice it,
 * events of 100 B and 1 KiB. 2048 / 2048 had the highest sum of its median
 * relative to the fastest of each sweep and size (5.76 of 6; 1024 / 1024
 * 5.63, 4096 / 8192 5.24, the others below 5): about 120k events/s at
 * 100 B and 67-89k at 1 KiB, 1.8 and 4.5 CPU µs per event. A max ack
 * pending above the fetch did not help overall. The medians move by ±30%
 * from sweep to sweep there: rerun --tune elsewhere.
 *
 * The clock starts once the consumer is bound and stops when the last ack
 * has been flushed to the server. Prints RESULT name=raw_jetstream, with
 * extra fields cpu (CPU seconds of this process while the clock ran),
 * startup (seconds to the first batch), batch and max_ack_pending.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>

#include "bench_util.h"

#define PROG "raw_jetstream"
#define FETCH_EXPIRES_MS 5000
#define IDLE_LIMIT 6 /* empty fetches in a row before giving up (30 s) */

static const char usage[] =
    "Usage: bench_raw_js --url URL --stream NAME --durable NAME "
    "--size BYTES --events N\n"
    "                    [--batch K] [--max-ack-pending M]\n"
    "Consumes N events with a durable pull consumer, acking each.\n";

int main(int argc, char **argv) {
  const char *url = NULL, *stream = NULL, *durable = NULL;
  int64_t size = -1, events = -1, batch = 2048, max_ack_pending = 2048;
  const bench_opt opts[] = {
      BENCH_STR("url", &url, 1),
      BENCH_STR("stream", &stream, 1),
      BENCH_STR("durable", &durable, 1),
      BENCH_SIZE_EVENTS(&size, &events),
      BENCH_INT("batch", &batch, 1, 10000, 0),
      BENCH_INT("max-ack-pending", &max_ack_pending, 1, 1000000, 0),
      {NULL}};
  bench_options(argc, argv, opts, usage);

  natsConnection *nc = NULL;
  jsCtx *js = NULL;
  natsSubscription *sub = NULL;
  jsErrCode jerr = 0;
  natsStatus st;
  bench_js_connect(PROG, url, NULL, &nc, &js);

  jsConsumerConfig cc;
  jsConsumerInfo *ci = NULL;
  jsConsumerConfig_Init(&cc);
  cc.Durable = durable;
  cc.AckPolicy = js_AckExplicit;
  cc.DeliverPolicy = js_DeliverAll;
  cc.AckWait = (int64_t)30000 * 1000000;
  cc.MaxAckPending = max_ack_pending;
  if ((st = js_AddConsumer(&ci, js, stream, &cc, NULL, &jerr)) != NATS_OK)
    bench_die(PROG, "add consumer %s: %s (error %d)", durable,
              natsStatus_GetText(st), (int)jerr);
  jsConsumerInfo_Destroy(ci);
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = stream;
  so.Consumer = durable;
  if ((st = js_PullSubscribe(&sub, js, NULL, durable, NULL, &so, &jerr)) !=
      NATS_OK)
    bench_die(PROG, "bind consumer %s: %s (error %d)", durable,
              natsStatus_GetText(st), (int)jerr);

  int64_t got = 0, bytes = 0;
  int idle = 0;
  double cpu0 = bench_cpu_self();
  double t0 = bench_now(), t_first = -1;
  while (got < events) {
    natsMsgList list = {0};
    int want = (int)(events - got < batch ? events - got : batch);
    st = natsSubscription_Fetch(&list, sub, want, FETCH_EXPIRES_MS, &jerr);
    if (st != NATS_OK && !(st == NATS_TIMEOUT && list.Count > 0)) {
      natsMsgList_Destroy(&list);
      if (st == NATS_TIMEOUT && ++idle < IDLE_LIMIT)
        continue;
      bench_die(PROG, "fetch after %lld events: %s", (long long)got,
                natsStatus_GetText(st));
    }
    idle = 0;
    if (t_first < 0)
      t_first = bench_now() - t0;
    for (int i = 0; i < list.Count; i++) {
      bytes += natsMsg_GetDataLength(list.Msgs[i]);
      if ((st = natsMsg_Ack(list.Msgs[i], NULL)) != NATS_OK)
        bench_die(PROG, "ack: %s", natsStatus_GetText(st));
    }
    got += list.Count;
    natsMsgList_Destroy(&list);
  }
  if ((st = natsConnection_Flush(nc)) != NATS_OK)
    bench_die(PROG, "flushing acks: %s", natsStatus_GetText(st));
  double secs = bench_now() - t0;
  double cpu = bench_cpu_self() - cpu0;
  if (bytes != got * size)
    bench_die(PROG, "received %lld bytes, expected %lld", (long long)bytes,
              (long long)(got * size));

  char extra[128];
  snprintf(extra, sizeof(extra),
           "cpu=%.3f startup=%.3f batch=%lld max_ack_pending=%lld", cpu,
           t_first, (long long)batch, (long long)max_ack_pending);
  bench_result(PROG, (size_t)size, got, secs, extra);

  natsSubscription_Destroy(sub);
  bench_js_close(nc, js);
  return 0;
}
