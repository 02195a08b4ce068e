/*
 * The gateway: sources in, rules in the middle, sinks out. This file holds
 * its lifecycle (start, stop, drain, close) and public API; flight.c holds
 * what happens to each event.
 *
 * Everything here runs on the loop thread.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_int.h"
#include "gateway_int.h"
#include "kafka_conf.h"
#include "nats_conn.h"
#include "txn.h"
#include "util.h"

/* ------------------------------------------------------------ public API */

const char *natka_version(void) {
  return "0.1.0";
}

const natka__host *natka__gateway_host(natka *gw) {
  return &gw->host;
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

const char *const *natka__gateway_stat_names(size_t *n) {
  static const char *const names[] = {
#define STAT_NAME(name) #name,
      STATS_MAP(STAT_NAME)
#undef STAT_NAME
          "rules_revision",
      "ingress_accepted",
      "ingress_refused",
      "inflight",
      "inflight_bytes",
      "kafka_queued",
      "spool_pending",
      "spool_bytes"};
  *n = sizeof(names) / sizeof(*names);
  return names;
}

int64_t natka_stat(const natka *gw, const char *name) {
#define STAT_GET(n)                                                            \
  if (strcmp(name, #n) == 0)                                                   \
    return gw->stats.n;
  STATS_MAP(STAT_GET)
#undef STAT_GET
  if (strcmp(name, "ingress_accepted") == 0)
    return natka__ingress_stat(gw->ingress, 0);
  if (strcmp(name, "ingress_refused") == 0)
    return natka__ingress_stat(gw->ingress, 1);
  if (strcmp(name, "rules_revision") == 0)
    return (int64_t)gw->rules_revision;
  if (strcmp(name, "spool_pending") == 0 || strcmp(name, "spool_bytes") == 0) {
    natka__spool_stats st = {0};
    if (gw->spool != NULL)
      natka__spool_get_stats(gw->spool, &st);
    return (int64_t)(name[6] == 'p' ? st.pending : st.bytes);
  }
  if (strcmp(name, "inflight") == 0)
    return gw->inflight;
  if (strcmp(name, "inflight_bytes") == 0)
    return gw->inflight_bytes;
  if (strcmp(name, "kafka_queued") == 0)
    return gw->sink ? (int64_t)gw->sink->vt->queued(gw->sink) : 0;
  return -1;
}

/* Rules come from the KV bucket unless files are named or the bucket is "". */
static int kv_mode(const natka_config *c) {
  return c->rules_files.n == 0 && c->rules_bucket[0] != '\0';
}

/* Whether the configuration talks to NATS at all (then dual writes have a
 * connection to go out on). */
static int uses_nats(const natka_config *c) {
  return c->js_enabled || c->nats_subjects.n > 0 || kv_mode(c) ||
         c->ingress_subjects.n > 0 || c->switches_bucket[0] != '\0' ||
         c->dedup_shared_bucket[0] != '\0' || c->dlq_subject[0] != '\0';
}

/* ------------------------------------------- the host lent to components */

static natka *gw_of(const natka__host *h) {
  return h->data;
}

static void host_accept(const natka__host *h, natka__source *src,
                        natka_event *ev, void *token, const char *malformed) {
  natka__gateway_accept(gw_of(h), src, ev, token, malformed);
}

static int host_spool(const natka__host *h, natka__source *src,
                      natka_event *ev) {
  return natka__gateway_spool(gw_of(h), src, ev);
}

static void host_count_drop(const natka__host *h, natka__source *src,
                            const char *why) {
  natka__gateway_count_drop(gw_of(h), src, why);
}

static void host_fatal(const natka__host *h, int status) {
  natka__gateway_fatal(gw_of(h), status);
}

static natka__rules *host_swap_rules(const natka__host *h, natka__rules *rules,
                                     uint64_t revision) {
  return natka__gateway_swap_rules(gw_of(h), rules, revision);
}

static void host_rules_rejected(const natka__host *h) {
  natka__gateway_rules_rejected(gw_of(h));
}

static void host_switches_changed(const natka__host *h) {
  natka__gateway_switches_changed(gw_of(h));
}

static int64_t host_stat(const natka__host *h, const char *name) {
  return natka_stat(gw_of(h), name);
}

/* What the gateway lends every component it builds (host.h). */
static void host_init(natka *gw) {
  gw->host = (natka__host){.loop = gw->loop,
                           .log = &gw->log,
                           .conf = gw->conf,
                           .data = gw,
                           .accept = host_accept,
                           .spool = host_spool,
                           .count_drop = host_count_drop,
                           .fatal = host_fatal,
                           .swap_rules = host_swap_rules,
                           .rules_rejected = host_rules_rejected,
                           .switches_changed = host_switches_changed,
                           .stat_names = natka__gateway_stat_names,
                           .stat = host_stat};
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
  if (uses_nats(conf) && (rc = natka__nats_check(conf, errbuf, errlen)) != 0)
    return rc;
  if ((gw = calloc(1, sizeof(*gw))) == NULL)
    return natka__errf(errbuf, errlen, NATKA_ENOMEM, "out of memory");
  if (natka__log_init(&gw->log, conf->log_cb, conf->log_data,
                      conf->log_level) != 0) {
    free(gw);
    return natka__errf(errbuf, errlen, NATKA_ENOMEM, "out of memory");
  }
  gw->conf = conf;
  if (natka__dedup_new(&gw->dedup, (size_t)conf->dedup_window_count,
                       conf->dedup_window_ms * 1000000) != 0) {
    rc = natka__errf(errbuf, errlen, NATKA_ENOMEM, "out of memory");
    goto fail;
  }

  /* Rules from files are loaded now, so that a bad one stops the start;
   * rules from KV arrive once the gateway runs (see reload.c). */
  snprintf(gw->rules_revision_text, sizeof(gw->rules_revision_text), "%s",
           kv_mode(conf) ? "" : "files");
  if (!kv_mode(conf)) {
    ro.instr_budget = conf->rules_instr_budget;
    ro.time_limit_ms = conf->rules_time_limit_ms;
    ro.load_time_limit_ms = conf->rules_load_time_limit_ms;
    ro.mem_limit = (size_t)conf->rules_memory_mb * 1024 * 1024;
    ro.max_answer_bytes = (size_t)conf->rules_max_answer_bytes;
    ro.default_topic = conf->route_default_topic;
    ro.log = &gw->log;
    if ((rc = natka__rules_new(&gw->rules, &ro, errbuf, errlen)) != 0)
      goto fail;
    for (size_t i = 0; i < conf->rules_files.n; i++)
      if ((rc = natka__rules_load_file(gw->rules, conf->rules_files.v[i],
                                       errbuf, errlen)) != 0)
        goto fail;
    if ((rc = natka__rules_selftest(gw->rules, errbuf, errlen)) != 0)
      goto fail;
  }

  if (loop == NULL) {
    if (uv_loop_init(&gw->own_loop) != 0) {
      rc = natka__errf(errbuf, errlen, NATKA_ENOMEM, "cannot create a loop");
      goto fail;
    }
    gw->owns_loop = 1;
    loop = &gw->own_loop;
  }
  gw->loop = loop;
  host_init(gw);
  *out = gw;
  return 0;

fail:
  natka__rules_free(gw->rules);
  natka__dedup_free(gw->dedup);
  natka__log_destroy(&gw->log);
  gw->conf = NULL; /* still the caller's */
  free(gw);
  return rc;
}

static void close_all(natka *gw, int status);

/* Sources start only once Kafka answers and a rule set is active: fetching
 * earlier would only hold messages unacked that cannot be decided or
 * delivered yet. */
static void maybe_start_sources(natka *gw) {
  if (gw->state != GW_STARTED || !gw->sink_ready || gw->rules == NULL ||
      gw->sources_started)
    return;
  gw->sources_started = 1;
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

/* Dispatches the events injected before Kafka answered (fail: they are
 * reported as not delivered, the gateway is stopping). */
static void dispatch_early(natka *gw) {
  natka__flight *f = gw->early;
  gw->early = gw->early_tail = NULL;
  while (f != NULL) {
    natka__flight *next = f->txn_next;
    if (gw->state >= GW_CLOSING) {
      f->err = NATKA_ESTOPPED;
      f->errmsg = natka__strdup("natka stopped before Kafka answered");
      natka__flight_settle(f, NATKA_FAILED, NATKA__SETTLE_NAK);
    } else {
      natka__flight_dispatch(f);
    }
    f = next;
  }
}

/* With transactions, the checkpoint read at start says what committed
 * transactions already hold; nothing is fetched before it is known. */
static void on_sink_ready(natka__sink *sink) {
  natka *gw = sink->host->data;
  char err[1024];
  if (sink->vt->txn_on != NULL && sink->vt->txn_on(sink) && gw->txn == NULL) {
    if (natka__txn_new(&gw->txn, gw, sink->vt->checkpoint(sink), err,
                       sizeof(err)) != 0) {
      natka__error(&gw->log, "%s", err);
      natka__gateway_fatal(gw, NATKA_EKAFKA);
      return;
    }
    gw->txn_open = 1;
  }
  gw->sink_ready = 1;
  dispatch_early(gw);
  maybe_start_sources(gw);
}

/* Gives the current switches to a rules state. */
static void share_switches(natka *gw, natka__rules *rules) {
  const char *const *names = NULL, *const *values = NULL;
  size_t n =
      gw->switches ? natka__switches_get(gw->switches, &names, &values) : 0;
  if (rules != NULL && natka__rules_set_switches(rules, names, values, n) != 0)
    natka__error(&gw->log, "switches: out of memory; rules keep the previous "
                           "switches");
}

void natka__gateway_switches_changed(natka *gw) {
  share_switches(gw, gw->rules);
}

natka__rules *natka__gateway_swap_rules(natka *gw, natka__rules *rules,
                                        uint64_t revision) {
  natka__rules *old = gw->rules;
  share_switches(gw, rules);
  gw->rules = rules;
  gw->rules_revision = revision;
  snprintf(gw->rules_revision_text, sizeof(gw->rules_revision_text), "%" PRIu64,
           revision);
  gw->stats.rules_reloads++;
  maybe_start_sources(gw);
  return old;
}

void natka__gateway_rules_rejected(natka *gw) {
  gw->stats.rules_rejected++;
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
  /* Opened here, not in natka_new(), so that `natka check` leaves a spool
   * a running natka holds alone. One that cannot be opened (permissions,
   * another natka holds it) stops the start; a damaged one is repaired and
   * reported. */
  if (gw->conf->spool_dir[0] != '\0' &&
      (rc = natka__spool_open_conf(&gw->spool, gw->conf, &gw->log, err,
                                   sizeof(err))) != 0) {
    natka__error(&gw->log, "%s", err);
    gw->state = GW_STOPPED;
    return rc;
  }
  if ((rc = natka__sink_kafka_new(&gw->sink, &gw->host,
                                  natka__flight_on_delivery, err,
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
  if (natka__kafka_conf_warning(gw->conf) != NULL)
    natka__warn(&gw->log, "kafka: %s", natka__kafka_conf_warning(gw->conf));

  if (gw->conf->js_enabled) {
    if ((rc = natka__source_jetstream_new(&src, &gw->host, err, sizeof(err))) !=
        0)
      goto fail;
    gw->sources[gw->nsources++] = src;
    gw->sources_open++;
  }
  if (gw->conf->nats_subjects.n > 0) {
    if ((rc = natka__source_nats_new(&src, &gw->host, err, sizeof(err))) != 0)
      goto fail;
    gw->sources[gw->nsources++] = src;
    gw->sources_open++;
  }
  if (gw->spool != NULL) {
    if ((rc = natka__source_spool_new(&src, &gw->host, gw->spool, err,
                                      sizeof(err))) != 0)
      goto fail;
    gw->sources[gw->nsources++] = src;
    gw->sources_open++;
  }
  if (uses_nats(gw->conf)) {
    if ((rc = natka__sink_nats_new(&gw->nats_sink, &gw->host,
                                   natka__flight_on_delivery, err,
                                   sizeof(err))) != 0)
      goto fail;
    gw->nats_sink_open = 1;
  }
  if (gw->conf->ingress_subjects.n > 0) {
    if ((rc = natka__ingress_new(&gw->ingress, &gw->host, gw->spool, err,
                                 sizeof(err))) != 0 ||
        (rc = natka__ingress_start(gw->ingress)) != 0)
      goto fail;
  }
  if (gw->conf->dedup_shared_bucket[0] != '\0') {
    if ((rc = natka__claims_new(&gw->claims, &gw->host, natka__flight_on_claim,
                                err, sizeof(err))) != 0)
      goto fail;
    gw->claims_open = 1; /* from here on, natka_stop() closes it */
    if ((rc = natka__claims_start(gw->claims)) != 0)
      goto fail;
  }
  if (gw->conf->switches_bucket[0] != '\0') {
    if ((rc = natka__switches_new(&gw->switches, &gw->host, err,
                                  sizeof(err))) != 0)
      goto fail;
    gw->switches_open = 1;
    if ((rc = natka__switches_start(gw->switches)) != 0)
      goto fail;
    share_switches(gw, gw->rules);
  }
  if (kv_mode(gw->conf)) {
    if ((rc = natka__reload_new(&gw->reload, &gw->host, err, sizeof(err))) != 0)
      goto fail;
    gw->reload_open = 1;
    if ((rc = natka__reload_start(gw->reload)) != 0)
      goto fail;
    natka__info(&gw->log, "natka %s started: rules from KV bucket %s, dlq %s",
                natka_version(), gw->conf->rules_bucket, gw->conf->dlq_topic);
  } else {
    natka__info(&gw->log, "natka %s started: %zu rule module(s), dlq %s",
                natka_version(), natka__rules_count(gw->rules),
                gw->conf->dlq_topic);
  }
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
      !gw->reload_open && !gw->switches_open && !gw->claims_open &&
      !gw->nats_sink_open && !gw->drain_timer_open && gw->signals_open == 0 &&
      !gw->txn_open && !gw->ingress_open)
    on_stop_done(gw);
}

static void on_source_closed(natka__source *src) {
  natka *gw = src->host->data;
  gw->sources_open--;
  maybe_closed(gw);
}

/* Sources go last: flights may still settle through them until the sink and
 * the shared dedup window have answered for every one of them. */
static void maybe_close_sources(natka *gw) {
  if (gw->sink_open || gw->claims_open || gw->nats_sink_open)
    return;
  for (size_t i = 0; i < gw->nsources; i++)
    gw->sources[i]->vt->close(gw->sources[i], on_source_closed);
  gw->nsources = 0;
}

static void on_nats_sink_closed(natka__sink *sink) {
  natka *gw = sink->host->data;
  gw->nats_sink_open = 0;
  maybe_close_sources(gw);
  maybe_closed(gw);
}

static void on_sink_closed(natka__sink *sink) {
  natka *gw = sink->host->data;
  sink->vt->free(sink);
  gw->sink = NULL;
  gw->sink_open = 0;
  maybe_close_sources(gw);
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

static void on_claims_closed(void *data) {
  natka *gw = data;
  gw->claims = NULL;
  gw->claims_open = 0;
  maybe_close_sources(gw);
  maybe_closed(gw);
}

static void on_switches_closed(void *data) {
  natka *gw = data;
  gw->switches = NULL;
  gw->switches_open = 0;
  maybe_closed(gw);
}

static void on_ingress_closed(void *data) {
  natka *gw = data;
  gw->ingress_open = 0;
  maybe_closed(gw);
}

static void on_txn_closed(void *data) {
  natka *gw = data;
  gw->txn_open = 0;
  maybe_closed(gw);
}

static void on_reload_closed(void *data) {
  natka *gw = data;
  gw->reload = NULL;
  gw->reload_open = 0;
  maybe_closed(gw);
}

static void close_all(natka *gw, int status) {
  if (gw->state == GW_CLOSING || gw->state == GW_STOPPED)
    return;
  gw->state = GW_CLOSING;
  if (gw->stop_status == 0) /* a fatal status set first is kept */
    gw->stop_status = status;
  /* Transactions first: flights waiting for one must be settled before the
   * sinks they would go to close. */
  if (gw->txn_open)
    natka__txn_close(gw->txn, on_txn_closed, gw);
  if (status != 0)
    natka__warn(&gw->log,
                "shutdown: %" PRId64 " event(s) still in natka__flight after "
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
  if (gw->reload_open)
    natka__reload_close(gw->reload, on_reload_closed, gw);
  if (gw->switches_open)
    natka__switches_close(gw->switches, on_switches_closed, gw);
  if (gw->claims_open)
    natka__claims_close(gw->claims, on_claims_closed, gw);
  /* A source whose stop was never asked (a start that failed half-way)
   * must not hand over more events. */
  for (size_t i = 0; i < gw->nsources && gw->sources_stopped == 0; i++)
    gw->sources[i]->vt->pause(gw->sources[i]);
  if (gw->nats_sink_open)
    gw->nats_sink->vt->close(gw->nats_sink, on_nats_sink_closed);
  if (gw->ingress != NULL && !gw->ingress_closing) {
    gw->ingress_closing = 1;
    gw->ingress_open = 1;
    natka__ingress_close(gw->ingress, on_ingress_closed, gw);
  }
  dispatch_early(gw);
  if (gw->sink != NULL) {
    gw->sink->vt->close(gw->sink, on_sink_closed);
  } else {
    maybe_close_sources(gw);
    maybe_closed(gw);
  }
}

void natka__gateway_maybe_finish_stop(natka *gw) {
  if (gw->state == GW_STOPPING && gw->inflight == 0 &&
      gw->sources_stopped == gw->nsources)
    close_all(gw, 0);
}

static void on_source_stopped(natka__source *src) {
  natka *gw = src->host->data;
  gw->sources_stopped++;
  natka__gateway_maybe_finish_stop(gw);
}

void natka__gateway_fatal(natka *gw, int status) {
  if (gw->stop_status == 0)
    gw->stop_status = status;
  if (gw->state == GW_STARTED)
    natka_stop(gw, NULL, NULL);
  /* Nothing more can be confirmed: do not wait for the drain. */
  close_all(gw, status);
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
  if (gw->ingress != NULL)
    natka__ingress_stop(gw->ingress);
  natka__info(&gw->log,
              "stopping: no more fetching; waiting for %" PRId64
              " event(s) in natka__flight",
              gw->inflight);
  if (uv_timer_init(gw->loop, &gw->drain_timer) == 0) {
    gw->drain_timer.data = gw;
    gw->drain_timer_open = 1;
    uv_timer_start(&gw->drain_timer, on_drain_timeout,
                   (uint64_t)gw->conf->drain_timeout_ms, 0);
  }
  for (size_t i = 0; i < gw->nsources; i++)
    gw->sources[i]->vt->stop(gw->sources[i], on_source_stopped);
  if (gw->txn != NULL)
    natka__txn_flush(gw->txn);
  natka__gateway_maybe_finish_stop(gw);
  return 0;
}

int natka_inject(natka *gw, natka_event *ev, natka_report_cb cb, void *data) {
  char id[37];
  if (gw == NULL || ev == NULL)
    return NATKA_EINVAL;
  if (gw->state != GW_STARTED)
    return NATKA_ESTOPPED;
  if (gw->inflight >= gw->conf->max_inflight ||
      gw->inflight_bytes >= gw->conf->max_inflight_bytes || gw->rules == NULL)
    return NATKA_EBUSY;
  if (natka__event_wire_size(ev) > (size_t)gw->conf->max_event_bytes)
    return NATKA_ETOOBIG;
  if (natka_event_id(ev) == NULL &&
      (natka__uuid7(id) != 0 || natka_event_set_id(ev, id) != 0))
    return NATKA_ENOMEM;
  if (natka_event_ts(ev) == 0)
    natka_event_set_ts(ev, natka__now_ns());
  natka__flight *f = natka__flight_new(gw, ev);
  if (f == NULL)
    return NATKA_ENOMEM;
  f->cb = cb;
  f->cb_data = data;
  natka__flight_dispatch(f);
  natka__gateway_update_pressure(gw);
  return 0;
}

void natka_free(natka *gw) {
  if (gw == NULL)
    return;
  natka__rules_free(gw->rules);
  natka__dedup_free(gw->dedup);
  natka__ingress_free(gw->ingress);
  natka__txn_free(gw->txn);
  if (gw->spool != NULL) { /* persists the floor the sources reached */
    char err[512];
    if (natka__spool_close(gw->spool, err, sizeof(err)) != 0)
      natka__error(&gw->log, "%s", err);
  }
  if (gw->nats_sink != NULL)
    gw->nats_sink->vt->free(gw->nats_sink);
  if (gw->owns_loop)
    uv_loop_close(&gw->own_loop);
  natka__log_destroy(&gw->log);
  natka_config_free(gw->conf);
  free(gw);
}

/* ------------------------------------------------------------ natka_run */

/* The first signal stops gracefully; a second one stops waiting for the
 * events in natka__flight (they stay unacked, so JetStream redelivers them). */
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
