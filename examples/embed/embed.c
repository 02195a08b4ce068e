/*
 * Embedding libnatka in a C program that owns its own libuv loop.
 *
 * The host creates a gateway on its loop, injects a few events, learns each
 * one's fate from the report callback (which topic, partition and offset
 * Kafka gave it), then stops the gateway and lets the loop run dry.
 *
 *   natka_embed_example [KAFKA_BROKERS]
 *
 * Without an argument it uses the embedded (in-process) Kafka cluster. It
 * consumes nothing from NATS (jetstream.enabled = false), so no server is
 * needed. Exit status 0 when every event was delivered.
 */
#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "natka/natka.h"

#define EVENTS 5

typedef struct host {
  int reported;
  int delivered;
  natka *gw;
} host;

/* No NATS here: no JetStream source, no rules or switches bucket to watch, so
 * every event takes the default route (a topic named after its kind). Rule
 * modules would come from rules.files or, by default, the rules.bucket KV
 * bucket. */
static const char config[] = "return {\n"
                             "  kafka = { brokers = 'embedded' },\n"
                             "  jetstream = { enabled = false },\n"
                             "  rules = { bucket = '' },\n"
                             "  switches = { bucket = '' },\n"
                             "  log = { level = 'warn' },\n"
                             "}\n";

static void on_stopped(natka *gw, int status, void *data) {
  host *h = data;
  (void)gw;
  printf("gateway stopped (%s), %d/%d delivered\n", natka_err_name(status),
         h->delivered, EVENTS);
}

static void on_report(natka *gw, const natka_report *r, void *data) {
  host *h = data;
  const natka_event *ev = natka_report_event(r);
  const char *msg = NULL;

  if (natka_report_fate(r) == NATKA_DELIVERED) {
    const char *topic;
    int32_t partition;
    int64_t offset;
    natka_report_dest(r, 0, &topic, &partition, &offset);
    printf("event %s (%s) -> %s [%d] @ %lld\n", natka_event_id(ev),
           natka_event_kind(ev), topic, (int)partition, (long long)offset);
    h->delivered++;
  } else {
    int err = natka_report_error(r, &msg);
    printf("event %s not delivered: %s (%s)\n", natka_event_id(ev),
           natka_err_name(err), msg ? msg : "-");
  }
  if (++h->reported == EVENTS)
    natka_stop(gw, on_stopped, h);
}

static int inject(host *h, int i) {
  natka_event *ev = NULL;
  char data[64];
  char key[16];
  int rc = natka_event_new(&ev);
  if (rc != 0)
    return rc;
  snprintf(data, sizeof(data), "{\"order\": %d}", i);
  snprintf(key, sizeof(key), "customer-%d", i % 2);
  natka_event_set_kind(ev, "orders.created");
  natka_event_set_key(ev, key, strlen(key));
  natka_event_set_data(ev, data, strlen(data));
  natka_event_add_header(ev, "x-origin", "embed-example", 13);
  rc = natka_inject(h->gw, ev, on_report, h);
  if (rc != 0)
    natka_event_free(ev); /* still ours when inject fails */
  return rc;
}

int main(int argc, char **argv) {
  char err[512];
  uv_loop_t loop;
  natka_config *conf = NULL;
  host h = {0};
  int rc;

  uv_loop_init(&loop);
  if ((rc = natka_config_new(&conf)) != 0 ||
      (rc = natka_config_load_string(conf, config, "embed", err,
                                     sizeof(err))) != 0 ||
      (argc > 1 && (rc = natka_config_set(conf, "kafka.brokers", argv[1], err,
                                          sizeof(err))) != 0)) {
    fprintf(stderr, "config: %s\n", rc == NATKA_ENOMEM ? "out of memory" : err);
    natka_config_free(conf);
    return 2;
  }
  if ((rc = natka_new(&h.gw, conf, &loop, err, sizeof(err))) != 0) {
    fprintf(stderr, "natka_new: %s\n", err);
    natka_config_free(conf); /* natka_new takes it on success only */
    return 2;
  }
  if ((rc = natka_start(h.gw)) != 0) {
    fprintf(stderr, "natka_start: %s\n", natka_strerror(rc));
    natka_stop(h.gw, NULL, NULL);
  }
  for (int i = 0; rc == 0 && i < EVENTS; i++) {
    if ((rc = inject(&h, i)) != 0) {
      fprintf(stderr, "natka_inject: %s\n", natka_strerror(rc));
      natka_stop(h.gw, on_stopped, &h); /* drains what was injected */
    }
  }

  uv_run(&loop, UV_RUN_DEFAULT); /* returns once the gateway has stopped */
  natka_free(h.gw);
  uv_loop_close(&loop);
  return rc == 0 && h.delivered == EVENTS ? 0 : 1;
}
