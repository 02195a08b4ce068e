/*
 * What happens to one event: a flight.
 *
 * Each accepted event becomes a flight. The rules decide its destinations;
 * the flight is sent to each; when the last delivery report arrives the
 * flight completes and its source is settled: ack when every destination
 * confirmed, nak (redeliver later) when one failed for a reason that may pass,
 * dead-letter when it can never succeed (rule error, oversized, permanent
 * Kafka error). A dead-lettered flight is itself a send to the DLQ topic, and
 * its source is settled only when that send is confirmed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway_int.h"
#include "txn.h"
#include "util.h"

static void flight_free(natka__flight *f) {
  for (size_t i = 0; i < f->ndests; i++)
    free(f->dests[i].topic);
  free(f->dests);
  free(f->errmsg);
  free(f->dedup_key);
  free(f->rule);
  natka_event_free(f->ev);
  free(f);
}

static void note_failure(natka__flight *f, int err, const char *msg,
                         int retriable) {
  if (f->err != 0) {
    /* One permanent failure makes the whole natka__flight permanent. */
    f->retriable = f->retriable && retriable;
    return;
  }
  f->err = err;
  free(f->errmsg); /* a failed DLQ write replaces the reason it carried */
  f->errmsg = natka__strdup(msg != NULL ? msg : natka_strerror(err));
  f->retriable = retriable;
}

/* The redelivery delay after the attempt-th failure: jetstream.nak_delay_ms,
 * doubled per attempt up to retry.backoff_max_ms. */
static int64_t backoff_ms(const natka_config *c, int attempt) {
  int64_t d = c->js_nak_delay_ms;
  for (int i = 1; i < attempt && d < c->retry_backoff_max_ms; i++)
    d *= 2;
  return d > c->retry_backoff_max_ms &&
                 c->retry_backoff_max_ms >= c->js_nak_delay_ms
             ? c->retry_backoff_max_ms
             : d;
}

/* A member of a transaction is settled once the transaction is decided
 * (txn.c); everything else now. */
static void finish(natka__flight *f, natka_fate fate, natka__settle how) {
  if (f->txn_member)
    natka__txn_park(f->gw->txn, f, fate, how);
  else
    natka__flight_settle(f, fate, how);
}

void natka__flight_settle(natka__flight *f, natka_fate fate,
                          natka__settle how) {
  natka *gw = f->gw;
  if (f->tracked)
    natka__txn_untrack(gw->txn, f);
  switch (fate) {
  case NATKA_DELIVERED:
    if (!f->committed_before) /* counted in already_committed */
      gw->stats.delivered++;
    break;
  case NATKA_DROPPED:
    gw->stats.dropped++;
    break;
  case NATKA_DEADLETTERED:
    gw->stats.deadlettered++;
    break;
  case NATKA_FAILED:
    if (f->err != NATKA_EHELD) /* held on purpose: counted in `held` */
      gw->stats.failed++;
    break;
  }
  if (f->src != NULL) {
    int64_t delay = gw->conf->js_nak_delay_ms;
    if (how == NATKA__SETTLE_NAK) {
      gw->stats.nacked++;
      /* Held events come back at the plain delay: holding is no failure. */
      if (f->err != NATKA_EHELD && !f->plain_delay)
        delay = backoff_ms(gw->conf, f->attempts);
    }
    f->src->vt->settle(f->src, f->token, how, delay);
  }
  if (f->cb != NULL) {
    int code = fate == NATKA_DEADLETTERED ? f->reason_code
               : fate == NATKA_FAILED     ? f->err
                                          : 0;
    natka_report r = {fate,     f->ev,    code, code ? f->errmsg : NULL,
                      f->dests, f->ndests};
    f->cb(gw, &r, f->cb_data);
  }
  /* Not delivered (dead letters included: a replay must get through):
   * its redelivery must not count as a duplicate. */
  if (f->dedup_key != NULL &&
      (fate == NATKA_FAILED || fate == NATKA_DEADLETTERED)) {
    natka__dedup_remove(gw->dedup, f->dedup_key, f->dedup_len);
    if (gw->claims != NULL)
      natka__claims_release(gw->claims, f->dedup_key, f->dedup_len);
  } else if (f->dedup_key != NULL) {
    natka__dedup_confirm(gw->dedup, f->dedup_key, f->dedup_len);
    if (gw->claims != NULL)
      natka__claims_confirm(gw->claims, f->dedup_key, f->dedup_len,
                            natka_event_id(f->ev));
  }
  gw->inflight--;
  gw->inflight_bytes -= f->bytes;
  flight_free(f);
  natka__gateway_update_pressure(gw);
  natka__gateway_maybe_finish_stop(gw);
}

/* The rules revision every record carries: the KV revision of the set that
 * decided it, or "files" when the rules come from rules.files. */
static natka__header revision_header(natka *gw) {
  return (natka__header){"natka-rules-revision", gw->rules_revision_text,
                         strlen(gw->rules_revision_text)};
}

static void dead_letter(natka__flight *f, int err, const char *reason,
                        const char *rule);

static void complete(natka__flight *f) {
  natka *gw = f->gw;
  if (f->err == 0) {
    finish(f, f->dlq ? NATKA_DEADLETTERED : NATKA_DELIVERED,
           f->dlq ? NATKA__SETTLE_TERM : NATKA__SETTLE_ACK);
    return;
  }
  int64_t max = gw->conf->retry_max_attempts;
  int give_up = f->retriable && !f->dlq && max > 0 && f->attempts >= max;
  if ((f->dlq || f->retriable || gw->state >= GW_CLOSING) && !give_up) {
    /* Not stored anywhere: the source redelivers it later. */
    natka__debug(&gw->log, "event %s not delivered (%s); nak'ed",
                 natka_event_id(f->ev), f->errmsg);
    finish(f, NATKA_FAILED, NATKA__SETTLE_NAK);
    return;
  }
  char reason[600];
  if (give_up)
    snprintf(reason, sizeof(reason),
             "gave up after %d attempt(s) (retry.max_attempts): %s",
             f->attempts, f->errmsg ? f->errmsg : "unknown error");
  else
    snprintf(reason, sizeof(reason), "kafka refused the event: %s",
             f->errmsg ? f->errmsg : "unknown error");
  int code = give_up ? NATKA_ERETRIES : NATKA_EKAFKA;
  for (size_t i = 0; i < f->ndests; i++)
    free(f->dests[i].topic);
  f->ndests = 0;
  if (f->txn_member) {
    /* The failed record poisoned its transaction: librdkafka takes nothing
     * more into it, and it will be aborted. The dead letter goes into the
     * next one (natka__flight_aborted). */
    free(f->errmsg);
    f->errmsg = natka__strdup(reason);
    f->reason_code = code;
    f->dlq_pending = 1;
    finish(f, NATKA_FAILED, NATKA__SETTLE_NAK);
    return;
  }
  dead_letter(f, code, reason, NULL);
}

static int add_dest(natka__flight *f, const natka__delivery *d) {
  natka__flight_dest *grown =
      realloc(f->dests, (f->ndests + 1) * sizeof(*grown));
  if (grown == NULL)
    return NATKA_ENOMEM;
  f->dests = grown;
  f->dests[f->ndests] =
      (natka__flight_dest){natka__strdup(d->topic), d->partition, d->offset};
  f->ndests++;
  return 0;
}

void natka__flight_on_delivery(natka__sink *sink, void *opaque,
                               const natka__delivery *d) {
  natka__flight *f = opaque;
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
static void send_one(natka__flight *f, natka__sink *sink,
                     const natka__dest *dest, const natka__header *extra,
                     size_t nextra) {
  natka *gw = f->gw;
  int rc = 0;
  f->pending++;
  if (sink == gw->sink && gw->txn != NULL && !f->txn_member)
    rc = natka__txn_join(gw->txn, f);
  if (rc == 0)
    rc = sink->vt->send(sink, f->ev, dest, extra, nextra, f);
  if (rc != 0) {
    natka__delivery d = {.err = rc,
                         .errmsg = natka_strerror(rc),
                         .retriable = rc == NATKA_EBUSY || rc == NATKA_ENOMEM ||
                                      rc == NATKA_ENATS};
    natka__flight_on_delivery(sink, f, &d);
  }
}

/*
 * Writes f's event to the dead-letter topic with the reason in its headers.
 * An oversized event loses its data there (it would not fit either); its
 * source position in natka-source says where the original still is.
 */
static void dead_letter(natka__flight *f, int err, const char *reason,
                        const char *rule) {
  natka *gw = f->gw;
  char where[256] = "injected";
  char attempts[32];
  natka__header extra[6];
  size_t n = 0;

  /* The log gets the first line; the DLQ header keeps any traceback. */
  int first_line = (int)strcspn(reason, "\n");
  natka__warn(&gw->log, "event %s dead-lettered to %s: %.*s",
              natka_event_id(f->ev) ? natka_event_id(f->ev) : "(no id)",
              gw->conf->dlq_topic, first_line, reason);
  char *keep_rule = rule != NULL ? natka__strdup(rule) : NULL;
  free(f->rule); /* rule may be f->rule: copied first */
  f->rule = keep_rule;
  rule = keep_rule;
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
  snprintf(attempts, sizeof(attempts), "%d", f->attempts);
  extra[n++] = (natka__header){"natka-attempts", attempts, strlen(attempts)};
  extra[n++] = revision_header(gw);

  natka__dest dest = {.topic = gw->conf->dlq_topic, .partition = -1};
  const char *subject = gw->conf->dlq_subject;
  if (subject[0] == '\0' || gw->nats_sink == NULL) {
    send_one(f, gw->sink, &dest, extra, n);
    return;
  }
  /* Both copies must be confirmed; one extra count keeps a quick report of
   * the first from completing f before the second is sent. */
  natka__dest copy = {.topic = (char *)subject, .partition = -1};
  f->pending++;
  send_one(f, gw->sink, &dest, extra, n);
  send_one(f, gw->nats_sink, &copy, extra, n);
  if (--f->pending == 0)
    complete(f);
}

/* Decides where f goes and sends it there. */
/* The dedup stage: 1 when f was finished here (a duplicate, or dead-lettered
 * because its dedup rule failed), 2 when it waits for the shared window's
 * answer, 0 to go on. */
static int dedup_stage(natka__flight *f) {
  natka *gw = f->gw;
  char err[1024], *key = NULL, *rule = NULL;
  size_t len = 0;
  int rc =
      natka__rules_dedup(gw->rules, f->ev, &key, &len, &rule, err, sizeof(err));
  if (rc != 0) {
    gw->stats.rule_errors++;
    dead_letter(f, NATKA_ERULE, err, rule);
    free(rule);
    return 1;
  }
  free(rule);
  if (key == NULL)
    return 0;
  rc = natka__dedup_check_add(gw->dedup, key, len, natka__mono_ns());
  if (rc == 2) {
    /* The first event with this key is still in flight and may yet fail:
     * ask again later rather than drop this one. */
    free(key);
    note_failure(f, NATKA_EBUSY,
                 "an event with the same dedup key is still in flight", 1);
    finish(f, NATKA_FAILED, NATKA__SETTLE_NAK);
    return 1;
  }
  if (rc == 1) {
    gw->stats.deduplicated++;
    natka__debug(&gw->log,
                 "event %s is a duplicate (dedup key seen within "
                 "the window); acked, not produced",
                 natka_event_id(f->ev));
    free(key);
    finish(f, NATKA_DROPPED, NATKA__SETTLE_ACK);
    return 1;
  }
  if (rc != 0) {
    free(key); /* out of memory: deliver without dedup rather than lose it */
    return 0;
  }
  f->dedup_key = key;
  f->dedup_len = len;
  if (gw->claims != NULL &&
      natka__claims_ask(gw->claims, key, len, natka_event_id(f->ev), f) == 0)
    return 2; /* natka__flight_on_claim() goes on */
  return 0;
}

/* The degrade stage: fills *d (what degrade rules decided, or the `mode`
 * switch when none did); 1 when f was finished here. */
static int degrade_stage(natka__flight *f, natka__degrade *d) {
  natka *gw = f->gw;
  char err[1024], why[1200];
  int rc = natka__rules_degrade(gw->rules, f->ev, d, err, sizeof(err));
  if (rc != 0) {
    gw->stats.rule_errors++;
    dead_letter(f, NATKA_ERULE, err, d->rule);
    return 1;
  }
  if (!d->decided) {
    natka__mode mode = natka__switches_mode(gw->switches);
    d->kind =
        mode == NATKA__MODE_BOTH ? NATKA__DEGRADE_DUAL : NATKA__DEGRADE_FORWARD;
    if (mode == NATKA__MODE_NATS_ONLY)
      d->kind = NATKA__DEGRADE_DUAL; /* and Kafka skipped, see dispatch */
  }
  snprintf(why, sizeof(why), "degrade rule '%s'%s%s", d->rule ? d->rule : "?",
           d->reason ? ": " : "", d->reason ? d->reason : "");
  switch (d->kind) {
  case NATKA__DEGRADE_HOLD:
    gw->stats.held++;
    note_failure(f, NATKA_EHELD, why, 1);
    finish(f, NATKA_FAILED, NATKA__SETTLE_NAK);
    return 1;
  case NATKA__DEGRADE_DLQ:
    dead_letter(f, NATKA_EDEGRADED, why, d->rule);
    return 1;
  case NATKA__DEGRADE_DROP:
    gw->stats.degrade_drops++;
    finish(f, NATKA_DROPPED, NATKA__SETTLE_ACK);
    return 1;
  default:
    return 0;
  }
}

/* The NATS subject of a dual write: the rule's, or <prefix>.<kind>. */
static void dual_subject(natka *gw, const natka__flight *f,
                         const natka__degrade *d, char *buf, size_t len) {
  if (d->subject != NULL) {
    snprintf(buf, len, "%s", d->subject);
    return;
  }
  snprintf(buf, len, "%s.%s", gw->conf->degrade_subject_prefix,
           natka_event_kind(f->ev) ? natka_event_kind(f->ev) : "unknown");
  for (char *p = buf; *p; p++)
    if (*p == ' ' || *p == '*' || *p == '>')
      *p = '_';
}

/*
 * Decides what becomes of f and sends it: size limit, then the rules in
 * order — dedup (a duplicate is acked and counted), degrade (hold, DLQ,
 * drop, or forward / dual write), route — then one send per destination.
 * Every stage that fails dead-letters f with its reason.
 */
static void dispatch_rest(natka__flight *f);

static void dispatch_now(natka__flight *f);

/* Events injected before Kafka answered wait: until then it is not known
 * whether they go out in transactions (see on_sink_ready). */
void natka__flight_dispatch(natka__flight *f) {
  natka *gw = f->gw;
  if (!gw->sink_ready) {
    f->txn_next = NULL;
    if (gw->early_tail != NULL)
      gw->early_tail->txn_next = f;
    else
      gw->early = f;
    gw->early_tail = f;
    return;
  }
  if (gw->txn == NULL || !natka__txn_gate(gw->txn, f, dispatch_now))
    dispatch_now(f);
}

static void dispatch_now(natka__flight *f) {
  natka *gw = f->gw;
  char err[1024];

  if (f->reason_code == NATKA_EMALFORMED) { /* see natka__gateway_accept */
    char *why = f->errmsg;
    f->errmsg = NULL;
    dead_letter(f, NATKA_EMALFORMED, why, NULL);
    free(why);
    return;
  }
  size_t size = (size_t)f->bytes;
  if (size > (size_t)gw->conf->max_event_bytes) {
    gw->stats.oversized++;
    snprintf(err, sizeof(err),
             "event of %zu bytes exceeds limits.max_event_bytes (%" PRId64 ")",
             size, gw->conf->max_event_bytes);
    dead_letter(f, NATKA_ETOOBIG, err, NULL);
    return;
  }
  if (dedup_stage(f) == 0)
    dispatch_rest(f);
}

/* The shared dedup window answered for f (see dedup_shared.h). */
void natka__flight_on_claim(void *opaque, natka__claim_result result) {
  natka__flight *f = opaque;
  natka *gw = f->gw;
  if (result == NATKA__CLAIM_DUPLICATE) {
    gw->stats.deduplicated++;
    finish(f, NATKA_DROPPED, NATKA__SETTLE_ACK);
  } else if (result == NATKA__CLAIM_PENDING) {
    /* Another event holds the shared key: drop only our local mark, not
     * its claim, and ask again later. */
    natka__dedup_remove(gw->dedup, f->dedup_key, f->dedup_len);
    free(f->dedup_key);
    f->dedup_key = NULL;
    note_failure(f, NATKA_EBUSY,
                 "an event with the same dedup key is in flight elsewhere", 1);
    finish(f, NATKA_FAILED, NATKA__SETTLE_NAK);
  } else if (result == NATKA__CLAIM_ERROR || gw->state >= GW_CLOSING) {
    note_failure(f, NATKA_ENATS, "the shared dedup window did not answer", 1);
    finish(f, NATKA_FAILED, NATKA__SETTLE_NAK);
  } else {
    dispatch_rest(f);
  }
}

/* A destination natka may not write (a topic reserved for natka, or one
 * outside route.allow / route.allow_subjects) sends the whole event to the
 * DLQ instead, before anything was sent: 1 when it did. Rules, the default
 * route and replays all pass here. */
static int forbidden(natka__flight *f, const natka__route *route, int kafka,
                     const char *subject) {
  natka *gw = f->gw;
  const natka_config *c = gw->conf;
  char reason[600] = "";
  for (size_t i = 0; kafka && reason[0] == '\0' && i < route->n; i++) {
    const char *topic = route->dests[i].topic;
    const char *why = natka__config_topic_reserved(c, topic);
    if (why != NULL)
      snprintf(reason, sizeof(reason),
               "route to topic '%.250s' refused: reserved for %s", topic, why);
    else if (!natka__config_topic_allowed(c, topic))
      snprintf(reason, sizeof(reason),
               "route to topic '%.250s' refused: not in route.allow", topic);
  }
  if (reason[0] == '\0' && subject != NULL &&
      !natka__config_subject_allowed(c, subject))
    snprintf(reason, sizeof(reason),
             "dual write to subject '%.250s' refused: not in "
             "route.allow_subjects",
             subject);
  if (reason[0] == '\0')
    return 0;
  gw->stats.forbidden++;
  dead_letter(f, NATKA_EFORBIDDEN, reason, route->rule);
  return 1;
}

/* degrade, route and the sends, once dedup has let f through. */
static void dispatch_rest(natka__flight *f) {
  natka *gw = f->gw;
  natka__route route = {0};
  natka__degrade d = {0};
  char err[1024], subject[512];

  if (gw->txn != NULL && natka__txn_gate(gw->txn, f, dispatch_rest))
    return;

  if (degrade_stage(f, &d)) {
    natka__degrade_clear(&d);
    return;
  }
  int rc = natka__rules_route(gw->rules, f->ev, &route, err, sizeof(err));
  if (rc != 0) {
    gw->stats.rule_errors++;
    dead_letter(f, NATKA_ERULE, err, route.rule);
    goto done;
  }
  if (route.drop) {
    natka__debug(&gw->log, "event %s dropped by rule '%s'",
                 natka_event_id(f->ev), route.rule ? route.rule : "?");
    finish(f, NATKA_DROPPED, NATKA__SETTLE_ACK);
    goto done;
  }
  /* What the answer carries (topics, keys, replaced data, headers) is
   * copied into the producer's queue until delivery: it counts against
   * limits.max_inflight_bytes like the event itself, and is given back when
   * the flight is settled. */
  f->bytes += (int64_t)route.bytes;
  gw->inflight_bytes += (int64_t)route.bytes;
  natka__gateway_update_pressure(gw);
  int kafka =
      natka__switches_mode(gw->switches) != NATKA__MODE_NATS_ONLY || d.decided;
  int dual = d.kind == NATKA__DEGRADE_DUAL;
  if (dual && gw->nats_sink == NULL) {
    natka__warn(&gw->log,
                "event %s: dual write asked, but natka has no NATS "
                "connection; Kafka only",
                natka_event_id(f->ev));
    dual = 0;
    kafka = 1;
  }
  if (dual)
    dual_subject(gw, f, &d, subject, sizeof(subject));
  if (forbidden(f, &route, kafka, dual ? subject : NULL))
    goto done;
  /* Hold one extra count so that no report completes f mid-loop. */
  f->pending++;
  natka__header rev = revision_header(gw);
  for (size_t i = 0; kafka && i < route.n; i++)
    send_one(f, gw->sink, &route.dests[i], &rev, 1);
  if (dual) {
    natka__dest to = {.topic = subject, .partition = -1};
    gw->stats.dual_writes++;
    send_one(f, gw->nats_sink, &to, &rev, 1);
  }
  if (--f->pending == 0)
    complete(f);
done:
  natka__route_clear(&route);
  natka__degrade_clear(&d);
}

/* A second write of a dead letter whose transaction was aborted. */
static void dead_letter_again(natka__flight *f) {
  char *why = f->errmsg;
  f->errmsg = NULL;
  dead_letter(f, f->reason_code, why ? why : "(reason lost)", f->rule);
  free(why);
}

void natka__flight_aborted(natka__flight *f) {
  natka *gw = f->gw;
  for (size_t i = 0; i < f->ndests; i++)
    free(f->dests[i].topic);
  f->ndests = 0;
  f->pending = 0;
  /* Dead-lettered stays dead-lettered: what failed for good fails again,
   * and its transaction would abort again, forever. */
  if (((f->txn_fate == NATKA_DEADLETTERED && f->dlq) || f->dlq_pending) &&
      gw->state < GW_CLOSING) {
    f->err = 0;
    f->dlq = 0;
    f->dlq_pending = 0;
    if (!natka__txn_gate(gw->txn, f, dead_letter_again))
      dead_letter_again(f);
    return;
  }
  f->err = 0;
  note_failure(f, NATKA_EKAFKA, "its Kafka transaction was aborted", 1);
  f->plain_delay = 1; /* maybe through no fault of its own: no backoff */
  natka__flight_settle(f, NATKA_FAILED, NATKA__SETTLE_NAK);
}

natka__flight *natka__flight_new(natka *gw, natka_event *ev) {
  natka__flight *f = calloc(1, sizeof(*f));
  if (f == NULL)
    return NULL;
  f->gw = gw;
  f->ev = ev;
  f->attempts = 1;
  f->bytes = (int64_t)natka__event_wire_size(ev);
  gw->inflight++;
  gw->inflight_bytes += f->bytes;
  gw->stats.events_in++;
  return f;
}

void natka__gateway_accept(natka *gw, natka__source *src, natka_event *ev,
                           void *token, const char *malformed) {
  natka__flight *f = NULL;
  /* Closing: the sink may be gone; the source redelivers it later. */
  if (gw->state >= GW_CLOSING || (f = natka__flight_new(gw, ev)) == NULL) {
    /* Not accepted: the source redelivers it. */
    natka_event_free(ev);
    src->vt->settle(src, token, NATKA__SETTLE_NAK, gw->conf->js_nak_delay_ms);
    return;
  }
  f->src = src;
  f->token = token;
  if (src->vt->attempt != NULL)
    f->attempts = src->vt->attempt(src, token);
  /* A redelivery of what a committed transaction holds (natka died between
   * the commit and the ack): the ack is all that is left to do. */
  if (gw->txn != NULL && natka__txn_committed(gw->txn, src, token)) {
    gw->stats.already_committed++;
    f->committed_before = 1;
    natka__debug(&gw->log, "event %s: already committed; acked",
                 natka_event_id(ev));
    natka__flight_settle(f, NATKA_DELIVERED, NATKA__SETTLE_ACK);
    return;
  }
  if (gw->txn != NULL && natka__txn_track(gw->txn, f)) {
    /* JetStream gave it again while the first copy is still here (its
     * in-progress marks did not reach the server): that copy decides. */
    note_failure(f, NATKA_EBUSY, "redelivered while still in flight", 1);
    f->plain_delay = 1;
    natka__flight_settle(f, NATKA_FAILED, NATKA__SETTLE_NAK);
    return;
  }
  if (malformed != NULL) {
    gw->stats.malformed++;
    f->reason_code = NATKA_EMALFORMED;
    if ((f->errmsg = natka__strdup(malformed)) == NULL)
      f->errmsg = natka__strdup("malformed");
  }
  natka__flight_dispatch(f);
  natka__gateway_update_pressure(gw);
}

int natka__gateway_spool(natka *gw, natka__source *src, natka_event *ev) {
  char err[512];
  if (gw->spool == NULL)
    return 1;
  int rc = natka__spool_put_event(gw->spool, ev, NULL, err, sizeof(err));
  natka_event_free(ev);
  if (rc == NATKA_EBUSY)
    natka__gateway_count_drop(gw, src, "spool full (spool.max_bytes)");
  else if (rc != 0)
    natka__gateway_count_drop(gw, src, err);
  return rc;
}

void natka__gateway_count_drop(natka *gw, natka__source *src, const char *why) {
  if (gw->stats.dropped_overload++ % 1000 == 0)
    natka__warn(&gw->log, "%s: %s (%" PRId64 " so far)", src->name, why,
                gw->stats.dropped_overload);
}

/* Pauses the sources above the high-water marks and resumes them once both
 * the in-natka__flight count and the producer queue have drained well below. */
void natka__gateway_update_pressure(natka *gw) {
  if (gw->sink == NULL)
    return;
  int64_t queued = (int64_t)gw->sink->vt->queued(gw->sink);
  const natka_config *c = gw->conf;
  if (!gw->paused &&
      (gw->inflight >= c->max_inflight || queued >= c->kafka_queue_high ||
       gw->inflight_bytes >= c->max_inflight_bytes)) {
    gw->paused = 1;
    natka__debug(&gw->log,
                 "backpressure: pausing sources (%" PRId64 " event(s), %" PRId64
                 " bytes in flight, %" PRId64 " queued for Kafka)",
                 gw->inflight, gw->inflight_bytes, queued);
    for (size_t i = 0; i < gw->nsources; i++)
      gw->sources[i]->vt->pause(gw->sources[i]);
  } else if (gw->paused && gw->inflight <= c->max_inflight * 3 / 4 &&
             gw->inflight_bytes <= c->max_inflight_bytes * 3 / 4 &&
             queued <= c->kafka_queue_low) {
    gw->paused = 0;
    natka__debug(&gw->log, "backpressure: resuming sources");
    for (size_t i = 0; i < gw->nsources; i++)
      gw->sources[i]->vt->resume(gw->sources[i]);
  }
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
