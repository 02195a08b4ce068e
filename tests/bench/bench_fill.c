/*
 * bench_fill: (re)creates a JetStream stream and fills it with N events of B
 * bytes, published asynchronously, so that consumers are measured on a ready
 * backlog. An existing stream of that name is deleted first, with its
 * consumers, so every run starts from sequence 1. Each event carries the
 * headers of bench_event_make (bench_util.h): a unique ce-id, kind, source,
 * time, traceparent, tenant, x-account (the Kafka key the rules pick) and
 * x-tag twice, about 330 bytes of headers next to the B bytes of payload.
 *
 *   bench_fill --url URL --stream NAME --subject SUBJ --size B --events N
 *
 * Prints RESULT name=fill (the publish rate, for information only).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nats/nats.h>

#include "bench_util.h"

#define PROG "fill"
#define MAX_PENDING 20000
#define STALL_WAIT_MS 1000 /* a full window waits this long, then retries */
#define STALL_RETRIES 60
#define COMPLETE_WAIT_MS 120000

static atomic_long publish_errors;

static void on_pub_error(jsCtx *js, jsPubAckErr *pae, void *closure) {
  (void)js;
  (void)closure;
  if (atomic_fetch_add(&publish_errors, 1) == 0)
    fprintf(stderr, "bench fill: publish failed: %s (%s)\n",
            natsStatus_GetText(pae->Err),
            pae->ErrText != NULL ? pae->ErrText : "");
}

static const char usage[] =
    "Usage: bench_fill --url URL --stream NAME --subject SUBJ "
    "--size BYTES --events N\n"
    "Recreates stream NAME (subject SUBJ, file storage) and "
    "publishes N events of BYTES bytes.\n";

int main(int argc, char **argv) {
  const char *url = NULL, *stream = NULL, *subject = NULL;
  int64_t size = -1, events = -1;
  const bench_opt opts[] = {BENCH_STR("url", &url, 1),
                            BENCH_STR("stream", &stream, 1),
                            BENCH_STR("subject", &subject, 1),
                            BENCH_SIZE_EVENTS(&size, &events),
                            {NULL}};
  bench_options(argc, argv, opts, usage);

  natsConnection *nc = NULL;
  jsCtx *js = NULL;
  jsOptions jo;
  jsErrCode jerr = 0;
  jsOptions_Init(&jo);
  jo.PublishAsync.MaxPending = MAX_PENDING;
  jo.PublishAsync.ErrHandler = on_pub_error;
  jo.PublishAsync.StallWait = STALL_WAIT_MS;
  bench_js_connect(PROG, url, &jo, &nc, &js);

  bench_js_recreate_stream(PROG, js, stream, subject);

  natsStatus st = NATS_OK;
  jsStreamInfo *si = NULL;
  char *payload = bench_payload((size_t)size);
  uint64_t seed = (uint64_t)time(NULL) << 20 ^ (uint64_t)getpid();
  bench_event ev;
  double t0 = bench_now();
  for (int64_t i = 0; i < events; i++) {
    natsMsg *msg = NULL;
    bench_event_make(&ev, seed, i, 0);
    st = natsMsg_Create(&msg, subject, NULL, payload, (int)size);
    for (int h = 0; st == NATS_OK && h < ev.n; h++)
      st = natsMsgHeader_Add(msg, ev.h[h].name, ev.h[h].value);
    if (st == NATS_OK)
      st = js_PublishMsgAsync(js, &msg, NULL);
    /* A full window leaves the message with the caller: try it again. */
    for (int r = 0; st == NATS_TIMEOUT && r < STALL_RETRIES; r++)
      st = js_PublishMsgAsync(js, &msg, NULL);
    natsMsg_Destroy(msg); /* NULL once the library took it */
    if (st != NATS_OK)
      bench_die(PROG, "publish #%lld: %s", (long long)i,
                natsStatus_GetText(st));
  }
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = COMPLETE_WAIT_MS;
  if ((st = js_PublishAsyncComplete(js, &po)) != NATS_OK)
    bench_die(PROG, "waiting for publish acks: %s", natsStatus_GetText(st));
  double secs = bench_now() - t0;
  if (atomic_load(&publish_errors) > 0)
    bench_die(PROG, "%ld publishes failed", atomic_load(&publish_errors));

  if ((st = js_GetStreamInfo(&si, js, stream, NULL, &jerr)) != NATS_OK)
    bench_die(PROG, "stream info: %s", natsStatus_GetText(st));
  uint64_t msgs = si->State.Msgs;
  jsStreamInfo_Destroy(si);
  if (msgs != (uint64_t)events)
    bench_die(PROG, "stream %s holds %llu messages, expected %lld", stream,
              (unsigned long long)msgs, (long long)events);

  char extra[64];
  snprintf(extra, sizeof(extra), "cpu=%.2f", bench_cpu_self());
  bench_result("fill", (size_t)size, events, secs, extra);

  free(payload);
  bench_js_close(nc, js);
  return 0;
}
