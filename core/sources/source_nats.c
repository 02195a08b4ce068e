/*
 * The core NATS source: plain subscriptions on nats.subjects, at most once.
 *
 * Core NATS keeps no copy of a message and has no ack, so an event is lost
 * when natka is down, when nats.c drops it as a slow consumer, or when the
 * gateway is pushing back (then it is dropped here and counted in
 * dropped_overload, never silently). Use JetStream for anything that must
 * arrive.
 *
 * nats.c calls on_msg on its own thread; events go to the loop through a
 * mailbox bounded by limits.handoff_events / handoff_bytes, so a slow loop
 * costs dropped (and counted) events, not memory.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>

#include "host.h"
#include "pipe.h"
#include "mailbox.h"
#include "nats_conn.h"
#include "nats_msg.h"
#include "natka/error.h"
#include "secret.h"
#include "util.h"

typedef struct core_item {
  natka__letter letter; /* first: the mailbox links items through it */
  natka_event *ev;
  char *malformed;
} core_item;

typedef struct core_source {
  natka__source base;
  natka__log *log;
  const natka_config *conf;
  natsOptions *opts;
  natsConnection *nc;
  natsSubscription **subs;
  size_t nsubs;

  natka__mailbox mb;
  atomic_int paused;
  atomic_llong overload_drops; /* since the loop last counted them */

  void (*closed)(natka__source *src);
  int closing; /* our own close: the disconnect is expected */
  natka__nats_closed closed_state; /* see nats_conn.h */
  int have_closed_state;
} core_source;

static void item_free(core_item *it) {
  natka_event_free(it->ev);
  free(it->malformed);
  free(it);
}

/* nats.c's thread. A message that cannot be queued (the gateway pushes
 * back, or the loop is behind by limits.handoff_*) is dropped and counted:
 * core NATS is at most once. */
static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg,
                   void *closure) {
  core_source *s = closure;
  core_item *it = NULL;
  (void)nc;
  (void)sub;
  if (atomic_load(&s->paused) || (it = calloc(1, sizeof(*it))) == NULL ||
      natka__nats_msg_decode(msg, NULL, 0, &it->ev, &it->malformed) != 0) {
    free(it);
    it = NULL;
  }
  natsMsg_Destroy(msg);
  if (it != NULL) {
    it->letter.bytes = natka__event_wire_size(it->ev) + sizeof(*it);
    if (natka__mailbox_post(&s->mb, &it->letter) == 0)
      return;
    item_free(it);
  }
  atomic_fetch_add(&s->overload_drops, 1);
  /* The loop counts the drops when it next drains. */
  natka__mailbox_post_wake(&s->mb);
}

static void count_drops(core_source *s) {
  for (long long drops = atomic_exchange(&s->overload_drops, 0); drops > 0;
       drops--)
    s->base.host->count_drop(s->base.host, &s->base,
                             "core NATS event dropped under backpressure");
}

static void on_mail(natka__mailbox *mb, natka__letter *list) {
  core_source *s = mb->data;
  count_drops(s);
  while (list != NULL) {
    core_item *it = (core_item *)list;
    list = list->next;
    if (s->closing) { /* the gateway takes nothing more */
      item_free(it);
      continue;
    }
    if (it->malformed != NULL ||
        s->base.host->spool(s->base.host, &s->base, it->ev) == 1)
      s->base.host->accept(s->base.host, &s->base, it->ev, NULL, it->malformed);
    free(it->malformed);
    free(it);
  }
}

static void on_disconnected(natsConnection *nc, void *closure) {
  core_source *s = closure;
  (void)nc;
  if (s->closing)
    return;
  natka__warn(s->log, "nats: disconnected; core NATS events published "
                      "meanwhile are lost (at-most-once); reconnecting");
}

static void on_reconnected(natsConnection *nc, void *closure) {
  core_source *s = closure;
  (void)nc;
  natka__info(s->log, "nats: reconnected");
}

static void on_connected(natsConnection *nc, void *closure) {
  core_source *s = closure;
  char url[NATKA__URL_SHOWN];
  (void)nc;
  natka__info(s->log, "nats: connected to %s",
              natka__url_redact(s->conf->nats_url, url, sizeof(url)));
}

static int core_start(natka__source *src) {
  core_source *s = (core_source *)src;
  const natka_config *c = s->conf;
  char err[512], url[NATKA__URL_SHOWN];
  int rc = natka__nats_closed_init(&s->closed_state);
  s->have_closed_state = rc == 0;
  if (rc == 0)
    rc = natka__nats_options(c, NULL, 0, &s->closed_state, &s->opts, err,
                             sizeof(err));
  if (rc != 0) {
    natka__error(s->log, "nats: %s",
                 rc == NATKA_ENOMEM ? "out of memory" : err);
    return rc;
  }
  natsStatus st = natsOptions_SetDisconnectedCB(s->opts, on_disconnected, s);
  if (st == NATS_OK)
    st = natsOptions_SetReconnectedCB(s->opts, on_reconnected, s);
  /* Not reachable yet: nats.c keeps trying in the background and sends the
   * subscriptions once connected. */
  if (st == NATS_OK)
    st = natsOptions_SetRetryOnFailedConnect(s->opts, true, on_connected, s);
  if (st == NATS_OK) {
    st = natsConnection_Connect(&s->nc, s->opts);
    if (st == NATS_NOT_YET_CONNECTED) {
      natka__warn(s->log, "nats: cannot connect to %s yet (%s); retrying",
                  natka__url_redact(c->nats_url, url, sizeof(url)),
                  natka__nats_why(st));
      st = NATS_OK;
    } else if (st == NATS_OK) {
      on_connected(s->nc, s);
    }
  }
  s->subs = calloc(c->nats_subjects.n, sizeof(*s->subs));
  if (st == NATS_OK && s->subs == NULL)
    st = NATS_NO_MEMORY;
  for (size_t i = 0; st == NATS_OK && i < c->nats_subjects.n; i++) {
    st = natsConnection_Subscribe(&s->subs[i], s->nc, c->nats_subjects.v[i],
                                  on_msg, s);
    if (st == NATS_OK)
      s->nsubs++;
  }
  if (st != NATS_OK) {
    natka__error(s->log, "nats: cannot subscribe to nats.subjects: %s",
                 natka__nats_why(st));
    return NATKA_ENATS;
  }
  return 0;
}

static void core_pause(natka__source *src) {
  atomic_store(&((core_source *)src)->paused, 1);
}
static void core_resume(natka__source *src) {
  atomic_store(&((core_source *)src)->paused, 0);
}

static void core_settle(natka__source *src, void *token, natka__settle how,
                        int64_t delay_ms) {
  /* Core NATS has nothing to acknowledge. */
  (void)src;
  (void)token;
  (void)how;
  (void)delay_ms;
}

static void core_describe(natka__source *src, void *token, char *buf,
                          size_t len) {
  (void)src;
  (void)token;
  snprintf(buf, len, "core NATS");
}

/* Unsubscribing first means nats.c delivers nothing more after this. */
static void core_stop(natka__source *src, void (*done)(natka__source *src)) {
  core_source *s = (core_source *)src;
  for (size_t i = 0; i < s->nsubs; i++) {
    natsSubscription_Unsubscribe(s->subs[i]);
    natsSubscription_Destroy(s->subs[i]);
  }
  s->nsubs = 0;
  /* Queued events still go to the gateway before the source is done. */
  natka__mailbox_drain_now(&s->mb);
  if (done != NULL)
    done(src);
}

static void on_mailbox_closed(natka__mailbox *mb) {
  core_source *s = mb->data;
  natka__mailbox_destroy(mb); /* the connection is closed: nobody posts */
  if (s->closed != NULL)
    s->closed(&s->base);
  free(s->subs);
  natsOptions_Destroy(s->opts);
  if (s->have_closed_state)
    natka__nats_closed_destroy(&s->closed_state);
  free(s->base.name);
  free(s);
}

static void core_close(natka__source *src, void (*done)(natka__source *src)) {
  core_source *s = (core_source *)src;
  s->closed = done;
  for (size_t i = 0; i < s->nsubs; i++)
    natsSubscription_Destroy(s->subs[i]);
  s->nsubs = 0;
  s->closing = 1;
  natka__nats_close(s->nc, &s->closed_state);
  s->nc = NULL;
  natka__mailbox_close(&s->mb, on_mailbox_closed);
}

static const natka__source_vt core_vt = {
    .kind = "nats",
    .start = core_start,
    .pause = core_pause,
    .resume = core_resume,
    .settle = core_settle,
    .describe = core_describe,
    .stop = core_stop,
    .close = core_close,
};

int natka__source_nats_new(natka__source **out, const natka__host *host,
                           char *err, size_t errlen) {
  core_source *s = calloc(1, sizeof(*s));
  if (s == NULL || (s->base.name = natka__strdup("nats")) == NULL) {
    if (s != NULL)
      free(s->base.name);
    free(s);
    return natka__errf(err, errlen, NATKA_ENOMEM, "out of memory");
  }
  s->base.vt = &core_vt;
  s->base.host = host;
  s->conf = host->conf;
  s->log = host->log;
  if (natka__mailbox_init(&s->mb, host->loop, (size_t)s->conf->handoff_events,
                          (size_t)s->conf->handoff_bytes, on_mail, s) != 0) {
    free(s->base.name);
    free(s);
    return natka__errf(err, errlen, NATKA_ENOMEM, "out of memory");
  }
  *out = &s->base;
  return 0;
}
