/*
 * The gateway: sources in, rules in the middle, sinks out.
 *
 * Each accepted event becomes a flight. The rules decide its destinations;
 * the flight is sent to each; when the last delivery report arrives the
 * flight completes and its source is settled: ack when every destination
 * confirmed, nak (redeliver later) when one failed for a reason that may pass,
 * dead-letter when it can never succeed (rule error, oversized, permanent
 * Kafka error). A dead-lettered flight is itself a send to the DLQ topic, and
 * its source is settled only when that send is confirmed.
 *
 * Everything here runs on the loop thread.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_int.h"
#include "gateway.h"
#include "rules.h"
#include "util.h"

typedef enum {
  GW_NEW,
  GW_STARTED,
  GW_STOPPING,
  GW_CLOSING,
  GW_STOPPED
} gw_state;

#define STATS_MAP(XX)                                                          \
  XX(events_in)                                                                \
  XX(delivered)                                                                \
  XX(dropped)                                                                  \
  XX(deadlettered)                                                             \
  XX(failed)                                                                   \
  XX(nacked)                                                                   \
  XX(rule_errors)                                                              \
  XX(malformed)                                                                \
  XX(oversized)                                                                \
  XX(dropped_overload)

typedef struct gw_stats {
#define STAT_FIELD(name) int64_t name;
  STATS_MAP(STAT_FIELD)
#undef STAT_FIELD
} gw_stats;

typedef struct flight_dest {
  char *topic;
  int32_t partition;
  int64_t offset;
} flight_dest;

typedef struct flight {
  natka *gw;
  natka_event *ev;
  natka__source *src; /* NULL: injected */
  void *token;
  natka_report_cb cb;
  void *cb_data;
  int pending;     /* sends not yet reported */
  int dlq;         /* this flight is the dead-letter write */
  int reason_code; /* why it was dead-lettered (with errmsg) */
  int err;         /* first delivery failure, 0 when none */
  char *errmsg;
  int retriable;
  flight_dest *dests;
  size_t ndests;
} flight;

struct natka_report {
  natka_fate fate;
  const natka_event *ev;
  int err;
  const char *msg;
  const flight_dest *dests;
  size_t n;
};

struct natka {
  natka_config *conf;
  natka__log log;
  uv_loop_t *loop;
  uv_loop_t own_loop;
  int owns_loop;
  void *data;
  gw_state state;

  natka__rules *rules;
  natka__sink *sink;
  natka__source *sources[2];
  size_t nsources;
  size_t sources_stopped;
  size_t sources_open;
  int sink_open;

  int paused;
  int64_t inflight;
  gw_stats stats;

  uv_timer_t drain_timer;
  int drain_timer_open;
  uv_signal_t sigint, sigterm;
  int signals_open;
  natka_stop_cb stop_cb;
  void *stop_data;
  int stop_status;
};

/* ------------------------------------------------------------ flights */

static void flight_free(flight *f) {
  for (size_t i = 0; i < f->ndests; i++)
    free(f->dests[i].topic);
  free(f->dests);
  free(f->errmsg);
  natka_event_free(f->ev);
  free(f);
}

static void note_failure(flight *f, int err, const char *msg, int retriable) {
  if (f->err != 0) {
    /* One permanent failure makes the whole flight permanent. */
    f->retriable = f->retriable && retriable;
    return;
  }
  f->err = err;
  free(f->errmsg); /* a failed DLQ write replaces the reason it carried */
  f->errmsg = natka__strdup(msg != NULL ? msg : natka_strerror(err));
  f->retriable = retriable;
}

static void maybe_finish_stop(natka *gw);
static void update_pressure(natka *gw);

static void finish(flight *f, natka_fate fate, natka__settle how) {
  natka *gw = f->gw;
  switch (fate) {
  case NATKA_DELIVERED:
    gw->stats.delivered++;
    break;
  case NATKA_DROPPED:
    gw->stats.dropped++;
    break;
  case NATKA_DEADLETTERED:
    gw->stats.deadlettered++;
    break;
  case NATKA_FAILED:
    gw->stats.failed++;
    break;
  }
  if (f->src != NULL) {
    if (how == NATKA__SETTLE_NAK)
      gw->stats.nacked++;
    f->src->vt->settle(f->src, f->token, how, gw->conf->js_nak_delay_ms);
  }
  if (f->cb != NULL) {
    int code = fate == NATKA_DEADLETTERED ? f->reason_code
               : fate == NATKA_FAILED     ? f->err
                                          : 0;
    natka_report r = {fate,     f->ev,    code, code ? f->errmsg : NULL,
                      f->dests, f->ndests};
    f->cb(gw, &r, f->cb_data);
  }
  gw->inflight--;
  flight_free(f);
  update_pressure(gw);
  maybe_finish_stop(gw);
}

static void dead_letter(flight *f, int err, const char *reason,
                        const char *rule);

static void complete(flight *f) {
  natka *gw = f->gw;
  if (f->err == 0) {
    finish(f, f->dlq ? NATKA_DEADLETTERED : NATKA_DELIVERED,
           f->dlq ? NATKA__SETTLE_TERM : NATKA__SETTLE_ACK);
    return;
  }
  if (f->dlq || f->retriable || gw->state >= GW_CLOSING) {
    /* Not stored anywhere: the source redelivers it later. */
    natka__debug(&gw->log, "event %s not delivered (%s); nak'ed",
                 natka_event_id(f->ev), f->errmsg);
    finish(f, NATKA_FAILED, NATKA__SETTLE_NAK);
    return;
  }
  char reason[512];
  snprintf(reason, sizeof(reason), "kafka refused the event: %s",
           f->errmsg ? f->errmsg : "unknown error");
  for (size_t i = 0; i < f->ndests; i++)
    free(f->dests[i].topic);
  f->ndests = 0;
  dead_letter(f, NATKA_EKAFKA, reason, NULL);
}

static int add_dest(flight *f, const natka__delivery *d) {
  flight_dest *grown = realloc(f->dests, (f->ndests + 1) * sizeof(*grown));
  if (grown == NULL)
    return NATKA_ENOMEM;
  f->dests = grown;
  f->dests[f->ndests] =
      (flight_dest){natka__strdup(d->topic), d->partition, d->offset};
  f->ndests++;
  return 0;
}

static void on_delivery(natka__sink *sink, void *opaque,
                        const natka__delivery *d) {
  flight *f = opaque;
  (void)sink;
  if (d->err != 0)
    note_failure(f, d->err, d->errmsg, d->retriable);
  else if (add_dest(f, d) != 0)
    note_failure(f, NATKA_ENOMEM, NULL, 1);
  if (--f->pending == 0)
    complete(f);
}

/* Sends f to one destination; a refusal counts as that destination's
 * delivery report. */
static void send_one(flight *f, const natka__dest *dest,
                     const natka__header *extra, size_t nextra) {
  natka *gw = f->gw;
  f->pending++;
  int rc = gw->sink->vt->send(gw->sink, f->ev, dest, extra, nextra, f);
  if (rc != 0) {
    natka__delivery d = {.err = rc,
                         .errmsg = natka_strerror(rc),
                         .retriable = rc == NATKA_EBUSY || rc == NATKA_ENOMEM};
    on_delivery(gw->sink, f, &d);
  }
}

/*
 * Writes f's event to the dead-letter topic with the reason in its headers.
 * An oversized event loses its data there (it would not fit either); its
 * source position in natka-source says where the original still is.
 */
static void dead_letter(flight *f, int err, const char *reason,
                        const char *rule) {
  natka *gw = f->gw;
  char where[256] = "injected";
  char attempts[32];
  natka__header extra[5];
  size_t n = 0;

  /* The log gets the first line; the DLQ header keeps any traceback. */
  int first_line = (int)strcspn(reason, "\n");
  natka__warn(&gw->log, "event %s dead-lettered to %s: %.*s",
              natka_event_id(f->ev) ? natka_event_id(f->ev) : "(no id)",
              gw->conf->dlq_topic, first_line, reason);
  free(f->errmsg);
  f->errmsg = natka__strdup(reason);
  f->reason_code = err;
  f->err = 0; /* the DLQ write succeeds or fails on its own */
  f->dlq = 1;
  if (f->src != NULL)
    f->src->vt->describe(f->src, f->token, where, sizeof(where));
  if (err == NATKA_ETOOBIG)
    natka_event_set_data(f->ev, "", 0);

  extra[n++] = (natka__header){"natka-error", (char *)reason, strlen(reason)};
  extra[n++] = (natka__header){"natka-error-code", (char *)natka_err_name(err),
                               strlen(natka_err_name(err))};
  if (rule != NULL)
    extra[n++] = (natka__header){"natka-rule", (char *)rule, strlen(rule)};
  extra[n++] = (natka__header){"natka-source", where, strlen(where)};
  snprintf(attempts, sizeof(attempts), "%d", 1);
  extra[n++] = (natka__header){"natka-attempts", attempts, strlen(attempts)};

  natka__dest dest = {.topic = gw->conf->dlq_topic, .partition = -1};
  send_one(f, &dest, extra, n);
}

/* Decides where f goes and sends it there. */
static void dispatch(flight *f) {
  natka *gw = f->gw;
  natka__route route = {0};
  char err[1024];

  size_t size = natka__event_wire_size(f->ev);
  if (size > (size_t)gw->conf->max_event_bytes) {
    gw->stats.oversized++;
    snprintf(err, sizeof(err),
             "event of %zu bytes exceeds limits.max_event_bytes (%" PRId64 ")",
             size, gw->conf->max_event_bytes);
    dead_letter(f, NATKA_ETOOBIG, err, NULL);
    return;
  }
  int rc = natka__rules_route(gw->rules, f->ev, &route, err, sizeof(err));
  if (rc != 0) {
    gw->stats.rule_errors++;
    dead_letter(f, NATKA_ERULE, err, route.rule);
    natka__route_clear(&route);
    return;
  }
  if (route.drop) {
    natka__debug(&gw->log, "event %s dropped by rule '%s'",
                 natka_event_id(f->ev), route.rule ? route.rule : "?");
    natka__route_clear(&route);
    finish(f, NATKA_DROPPED, NATKA__SETTLE_ACK);
    return;
  }
  /* Hold one extra count so that no report completes f mid-loop. */
  f->pending++;
  for (size_t i = 0; i < route.n; i++)
    send_one(f, &route.dests[i], NULL, 0);
  natka__route_clear(&route);
  if (--f->pending == 0)
    complete(f);
}

static flight *flight_new(natka *gw, natka_event *ev) {
  flight *f = calloc(1, sizeof(*f));
  if (f == NULL)
    return NULL;
  f->gw = gw;
  f->ev = ev;
  gw->inflight++;
  gw->stats.events_in++;
  return f;
}

void natka__gateway_accept(natka *gw, natka__source *src, natka_event *ev,
                           void *token, const char *malformed) {
  flight *f = flight_new(gw, ev);
  if (f == NULL) {
    /* Not accepted: the source redelivers it. */
    natka_event_free(ev);
    src->vt->settle(src, token, NATKA__SETTLE_NAK, gw->conf->js_nak_delay_ms);
    return;
  }
  f->src = src;
  f->token = token;
  if (malformed != NULL) {
    gw->stats.malformed++;
    dead_letter(f, NATKA_EMALFORMED, malformed, NULL);
  } else {
    dispatch(f);
  }
  update_pressure(gw);
}

void natka__gateway_count_drop(natka *gw, natka__source *src, const char *why) {
  if (gw->stats.dropped_overload++ % 1000 == 0)
    natka__warn(&gw->log, "%s: %s (%" PRId64 " so far)", src->name, why,
                gw->stats.dropped_overload);
}

/* Pauses the sources above the high-water marks and resumes them once both
 * the in-flight count and the producer queue have drained well below. */
static void update_pressure(natka *gw) {
  if (gw->sink == NULL)
    return;
  int64_t queued = (int64_t)gw->sink->vt->queued(gw->sink);
  const natka_config *c = gw->conf;
  if (!gw->paused &&
      (gw->inflight >= c->max_inflight || queued >= c->kafka_queue_high)) {
    gw->paused = 1;
    natka__debug(&gw->log,
                 "backpressure: pausing sources (%" PRId64
                 " in flight, %" PRId64 " queued for Kafka)",
                 gw->inflight, queued);
    for (size_t i = 0; i < gw->nsources; i++)
      gw->sources[i]->vt->pause(gw->sources[i]);
  } else if (gw->paused && gw->inflight <= c->max_inflight * 3 / 4 &&
             queued <= c->kafka_queue_low) {
    gw->paused = 0;
    natka__debug(&gw->log, "backpressure: resuming sources");
    for (size_t i = 0; i < gw->nsources; i++)
      gw->sources[i]->vt->resume(gw->sources[i]);
  }
}

/* ------------------------------------------------------------ public API */

const char *natka_version(void) {
  return "0.1.0";
}

const natka_config *natka__gateway_config(natka *gw) {
  return gw->conf;
}
natka__log *natka__gateway_log(natka *gw) {
  return &gw->log;
}
uv_loop_t *natka_loop(natka *gw) {
  return gw->loop;
}
void natka_set_data(natka *gw, void *data) {
  gw->data = data;
}
void *natka_get_data(const natka *gw) {
  return gw->data;
}

int64_t natka_stat(const natka *gw, const char *name) {
#define STAT_GET(n)                                                            \
  if (strcmp(name, #n) == 0)                                                   \
    return gw->stats.n;
  STATS_MAP(STAT_GET)
#undef STAT_GET
  if (strcmp(name, "inflight") == 0)
    return gw->inflight;
  if (strcmp(name, "kafka_queued") == 0)
    return gw->sink ? (int64_t)gw->sink->vt->queued(gw->sink) : 0;
  return -1;
}

int natka_new(natka **out, natka_config *conf, uv_loop_t *loop, char *errbuf,
              size_t errlen) {
  natka__rules_opts ro = {0};
  natka *gw;
  int rc;

  if (out == NULL || conf == NULL)
    return natka__errf(errbuf, errlen, NATKA_EINVAL,
                       "natka_new: NULL argument");
  if ((rc = natka__config_validate(conf, errbuf, errlen)) != 0)
    return rc;
  if ((rc = natka__sink_kafka_check(conf, errbuf, errlen)) != 0)
    return rc;
  if ((gw = calloc(1, sizeof(*gw))) == NULL)
    return natka__errf(errbuf, errlen, NATKA_ENOMEM, "out of memory");
  if (natka__log_init(&gw->log, conf->log_cb, conf->log_data,
                      conf->log_level) != 0) {
    free(gw);
    return natka__errf(errbuf, errlen, NATKA_ENOMEM, "out of memory");
  }
  gw->conf = conf;

  ro.instr_budget = conf->rules_instr_budget;
  ro.mem_limit = (size_t)conf->rules_memory_mb * 1024 * 1024;
  ro.default_topic = conf->route_default_topic;
  ro.log = &gw->log;
  if ((rc = natka__rules_new(&gw->rules, &ro, errbuf, errlen)) != 0)
    goto fail;
  for (size_t i = 0; i < conf->rules_files.n; i++)
    if ((rc = natka__rules_load_file(gw->rules, conf->rules_files.v[i], errbuf,
                                     errlen)) != 0)
      goto fail;

  if (loop == NULL) {
    if (uv_loop_init(&gw->own_loop) != 0) {
      rc = natka__errf(errbuf, errlen, NATKA_ENOMEM, "cannot create a loop");
      goto fail;
    }
    gw->owns_loop = 1;
    loop = &gw->own_loop;
  }
  gw->loop = loop;
  *out = gw;
  return 0;

fail:
  natka__rules_free(gw->rules);
  natka__log_destroy(&gw->log);
  gw->conf = NULL; /* still the caller's */
  free(gw);
  return rc;
}

static void close_all(natka *gw, int status);

/* Sources start only once Kafka answers: fetching earlier would only hold
 * messages unacked that cannot be delivered yet. */
static void on_sink_ready(natka__sink *sink) {
  natka *gw = sink->gw;
  if (gw->state != GW_STARTED)
    return;
  for (size_t i = 0; i < gw->nsources; i++) {
    int rc = gw->sources[i]->vt->start(gw->sources[i]);
    if (rc != 0) {
      natka__error(&gw->log, "cannot start source '%s': %s; stopping",
                   gw->sources[i]->name, natka_strerror(rc));
      gw->state = GW_STOPPING;
      close_all(gw, rc);
      return;
    }
  }
}

int natka_start(natka *gw) {
  char err[1024];
  natka__source *src;
  int rc;

  if (gw == NULL)
    return NATKA_EINVAL;
  if (gw->state != GW_NEW)
    return NATKA_ESTOPPED;
  gw->state = GW_STARTED;
  if ((rc = natka__sink_kafka_new(&gw->sink, gw, on_delivery, err,
                                  sizeof(err))) != 0) {
    natka__error(&gw->log, "%s", err);
    gw->state = GW_STOPPED;
    return rc;
  }
  gw->sink_open = 1;
  if (natka__sink_kafka_embedded(gw->sink) != NULL)
    natka__info(&gw->log,
                "kafka: embedded cluster (in memory, for demos) at %s; "
                "see it with: kcat -b %s -L",
                natka__sink_kafka_embedded(gw->sink),
                natka__sink_kafka_embedded(gw->sink));
  else
    natka__info(&gw->log, "kafka: producing to %s", gw->conf->kafka_brokers);

  if (gw->conf->js_enabled) {
    if ((rc = natka__source_jetstream_new(&src, gw, err, sizeof(err))) != 0)
      goto fail;
    gw->sources[gw->nsources++] = src;
  }
  if (gw->conf->nats_subjects.n > 0) {
    if ((rc = natka__source_nats_new(&src, gw, err, sizeof(err))) != 0)
      goto fail;
    gw->sources[gw->nsources++] = src;
  }
  gw->sources_open = gw->nsources;
  natka__info(&gw->log, "natka %s started: %zu rule module(s), dlq %s",
              natka_version(), natka__rules_count(gw->rules),
              gw->conf->dlq_topic);
  gw->sink->vt->await_ready(gw->sink, on_sink_ready);
  return 0;

fail:
  natka__error(&gw->log, "%s", err);
  /* What was created is closed by natka_stop(); natka_run() calls it. */
  return rc;
}

static void on_stop_done(natka *gw) {
  gw->state = GW_STOPPED;
  natka__info(&gw->log,
              "natka stopped: %" PRId64 " in, %" PRId64 " delivered, %" PRId64
              " dead-lettered, %" PRId64 " dropped by rules, %" PRId64
              " nak'ed",
              gw->stats.events_in, gw->stats.delivered, gw->stats.deadlettered,
              gw->stats.dropped, gw->stats.nacked);
  if (gw->stop_cb != NULL)
    gw->stop_cb(gw, gw->stop_status, gw->stop_data);
}

static void maybe_closed(natka *gw) {
  if (gw->state == GW_CLOSING && gw->sources_open == 0 && !gw->sink_open &&
      !gw->drain_timer_open && gw->signals_open == 0)
    on_stop_done(gw);
}

static void on_source_closed(natka__source *src) {
  natka *gw = src->gw;
  gw->sources_open--;
  maybe_closed(gw);
}

static void on_sink_closed(natka__sink *sink) {
  natka *gw = sink->gw;
  /* Acks for everything the sink confirmed were sent; now the sources may
   * flush them and go. */
  for (size_t i = 0; i < gw->nsources; i++)
    gw->sources[i]->vt->close(gw->sources[i], on_source_closed);
  gw->nsources = 0;
  sink->vt->free(sink);
  gw->sink = NULL;
  gw->sink_open = 0;
  maybe_closed(gw);
}

static void on_handle_closed(uv_handle_t *h) {
  natka *gw = h->data;
  if (h == (uv_handle_t *)&gw->drain_timer)
    gw->drain_timer_open = 0;
  else
    gw->signals_open--;
  maybe_closed(gw);
}

static void close_all(natka *gw, int status) {
  if (gw->state == GW_CLOSING || gw->state == GW_STOPPED)
    return;
  gw->state = GW_CLOSING;
  gw->stop_status = status;
  if (status != 0)
    natka__warn(&gw->log,
                "shutdown: %" PRId64 " event(s) still in flight after "
                "shutdown.drain_timeout_ms; they are not acked and will be "
                "redelivered",
                gw->inflight);
  if (gw->drain_timer_open) {
    uv_timer_stop(&gw->drain_timer);
    uv_close((uv_handle_t *)&gw->drain_timer, on_handle_closed);
  }
  if (gw->signals_open > 0) {
    uv_close((uv_handle_t *)&gw->sigint, on_handle_closed);
    uv_close((uv_handle_t *)&gw->sigterm, on_handle_closed);
  }
  if (gw->sink != NULL) {
    gw->sink->vt->close(gw->sink, on_sink_closed);
  } else {
    for (size_t i = 0; i < gw->nsources; i++)
      gw->sources[i]->vt->close(gw->sources[i], on_source_closed);
    gw->nsources = 0;
    maybe_closed(gw);
  }
}

static void maybe_finish_stop(natka *gw) {
  if (gw->state == GW_STOPPING && gw->inflight == 0 &&
      gw->sources_stopped == gw->nsources)
    close_all(gw, 0);
}

static void on_source_stopped(natka__source *src) {
  natka *gw = src->gw;
  gw->sources_stopped++;
  maybe_finish_stop(gw);
}

static void on_drain_timeout(uv_timer_t *t) {
  close_all(t->data, NATKA_ETIMEDOUT);
}

int natka_stop(natka *gw, natka_stop_cb cb, void *data) {
  if (gw == NULL)
    return NATKA_EINVAL;
  if (gw->state == GW_STOPPING || gw->state == GW_CLOSING ||
      gw->state == GW_STOPPED)
    return NATKA_ESTOPPED;
  gw->stop_cb = cb;
  gw->stop_data = data;
  if (gw->state == GW_NEW) {
    gw->state = GW_STOPPED;
    if (cb != NULL)
      cb(gw, 0, data);
    return 0;
  }
  gw->state = GW_STOPPING;
  natka__info(&gw->log,
              "stopping: no more fetching; waiting for %" PRId64
              " event(s) in flight",
              gw->inflight);
  if (uv_timer_init(gw->loop, &gw->drain_timer) == 0) {
    gw->drain_timer.data = gw;
    gw->drain_timer_open = 1;
    uv_timer_start(&gw->drain_timer, on_drain_timeout,
                   (uint64_t)gw->conf->drain_timeout_ms, 0);
  }
  for (size_t i = 0; i < gw->nsources; i++)
    gw->sources[i]->vt->stop(gw->sources[i], on_source_stopped);
  maybe_finish_stop(gw);
  return 0;
}

int natka_inject(natka *gw, natka_event *ev, natka_report_cb cb, void *data) {
  char id[37];
  if (gw == NULL || ev == NULL)
    return NATKA_EINVAL;
  if (gw->state != GW_STARTED)
    return NATKA_ESTOPPED;
  if (gw->inflight >= gw->conf->max_inflight)
    return NATKA_EBUSY;
  if (natka__event_wire_size(ev) > (size_t)gw->conf->max_event_bytes)
    return NATKA_ETOOBIG;
  if (natka_event_id(ev) == NULL &&
      (natka__uuid7(id) != 0 || natka_event_set_id(ev, id) != 0))
    return NATKA_ENOMEM;
  if (natka_event_ts(ev) == 0)
    natka_event_set_ts(ev, natka__now_ns());
  flight *f = flight_new(gw, ev);
  if (f == NULL)
    return NATKA_ENOMEM;
  f->cb = cb;
  f->cb_data = data;
  dispatch(f);
  update_pressure(gw);
  return 0;
}

void natka_free(natka *gw) {
  if (gw == NULL)
    return;
  natka__rules_free(gw->rules);
  if (gw->owns_loop)
    uv_loop_close(&gw->own_loop);
  natka__log_destroy(&gw->log);
  natka_config_free(gw->conf);
  free(gw);
}

/* ------------------------------------------------------------ natka_run */

/* The first signal stops gracefully; a second one stops waiting for the
 * events in flight (they stay unacked, so JetStream redelivers them). */
static void on_signal(uv_signal_t *h, int signum) {
  natka *gw = h->data;
  if (gw->state == GW_STARTED) {
    natka__info(&gw->log, "%s received: stopping (again to skip the drain)",
                signum == SIGINT ? "SIGINT" : "SIGTERM");
    natka_stop(gw, NULL, NULL);
  } else if (gw->state == GW_STOPPING) {
    close_all(gw, NATKA_ETIMEDOUT);
  }
}

int natka_run(natka *gw) {
  if (gw == NULL || !gw->owns_loop)
    return NATKA_EINVAL;
  if (uv_signal_init(gw->loop, &gw->sigint) == 0 &&
      uv_signal_init(gw->loop, &gw->sigterm) == 0) {
    gw->sigint.data = gw->sigterm.data = gw;
    gw->signals_open = 2;
    uv_signal_start(&gw->sigint, on_signal, SIGINT);
    uv_signal_start(&gw->sigterm, on_signal, SIGTERM);
  }
  int rc = natka_start(gw);
  if (rc != 0) {
    gw->state = GW_STOPPING;
    close_all(gw, rc);
  }
  uv_run(gw->loop, UV_RUN_DEFAULT);
  return rc != 0 ? rc : gw->stop_status;
}

/* ------------------------------------------------------------ reports */

natka_fate natka_report_fate(const natka_report *r) {
  return r->fate;
}
const natka_event *natka_report_event(const natka_report *r) {
  return r->ev;
}

int natka_report_error(const natka_report *r, const char **msg) {
  if (msg != NULL)
    *msg = r->err != 0 ? r->msg : NULL;
  return r->err;
}

size_t natka_report_count(const natka_report *r) {
  return r->n;
}

int natka_report_dest(const natka_report *r, size_t i, const char **topic,
                      int32_t *partition, int64_t *offset) {
  if (i >= r->n)
    return NATKA_EINVAL;
  if (topic != NULL)
    *topic = r->dests[i].topic;
  if (partition != NULL)
    *partition = r->dests[i].partition;
  if (offset != NULL)
    *offset = r->dests[i].offset;
  return 0;
}
