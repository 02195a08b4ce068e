/*
 * The NATS sink: publishes events on NATS subjects (CloudEvents headers, see
 * codec.h). Used for dual writes decided by degrade rules and the `mode`
 * switch, and the first half of a Kafka -> NATS path.
 *
 * It publishes with core NATS and reports a publish delivered once a flush
 * (a PING/PONG round trip, run on the threadpool, off the loop) has shown
 * that the server received everything sent before it: the server has the
 * message, though core NATS keeps no copy for subscribers that are away.
 * Publishes arriving during a flush wait for the next one. A failed flush
 * (server away) reports its publishes failed, so their events are nak'ed.
 */
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>

#include "codec.h"
#include "host.h"
#include "pipe.h"
#include "nats_conn.h"
#include "secret.h"
#include "util.h"

/* A publish waiting for the flush that confirms it. */
typedef struct pending {
  void *opaque;
  char *subject;
  struct pending *next;
} pending;

typedef struct nats_sink {
  natka__sink base;
  /* Publishes not confirmed yet: `waiting` for the next flush, `flushing`
   * for the one on the threadpool. */
  pending *waiting, **waiting_tail, *flushing;
  size_t nwaiting, nflushing;
  uv_work_t work;
  int flush_busy;
  natsStatus flush_st;
  void (*closed)(natka__sink *sink);
  natka__log *log;
  const natka_config *conf;
  natsOptions *opts;
  natsConnection *nc;
  int closing;
  natka__nats_closed closed_state; /* see nats_conn.h */
  int have_closed_state;
} nats_sink;

static void on_disconnected(natsConnection *nc, void *closure) {
  nats_sink *ns = closure;
  (void)nc;
  if (!ns->closing)
    natka__warn(ns->log, "nats sink: disconnected; publishes are buffered "
                         "until the connection is back");
}

#define FLUSH_TIMEOUT_MS 5000

static void start_flush(nats_sink *ns);

static void on_connected(natsConnection *nc, void *closure) {
  nats_sink *ns = closure;
  (void)nc;
  char url[NATKA__URL_SHOWN];
  natka__info(ns->log, "nats sink: connected to %s",
              natka__url_redact(ns->conf->nats_url, url, sizeof(url)));
}

static void ns_await_ready(natka__sink *sink,
                           void (*ready)(natka__sink *sink)) {
  ready(sink); /* nats.c connects in the background and buffers meanwhile */
}

static int ns_send(natka__sink *sink, const natka_event *ev,
                   const natka__dest *dest, const natka__header *extra,
                   size_t nextra, void *opaque) {
  nats_sink *ns = (nats_sink *)sink;
  natka__wire_headers wh = {0};
  natsMsg *msg = NULL;
  int rc = natka__event_to_nats(ev, ns->conf->event_source, &wh);
  if (rc != 0)
    return rc;
  natsStatus st = natsMsg_Create(
      &msg, dest->topic, NULL, dest->has_data ? dest->data : ev->data,
      (int)(dest->has_data ? dest->data_len : ev->data_len));
  /* NATS header values are text: extra headers come from natka itself. */
  for (size_t i = 0; st == NATS_OK && i < wh.n; i++)
    st = natsMsgHeader_Add(msg, wh.h[i].name, wh.h[i].value);
  for (size_t i = 0; st == NATS_OK && i < nextra; i++)
    st = natsMsgHeader_Add(msg, extra[i].name, extra[i].value);
  if (st == NATS_OK)
    st = natsConnection_PublishMsg(ns->nc, msg);
  natsMsg_Destroy(msg);
  natka__wire_headers_clear(&wh);
  if (st != NATS_OK)
    return st == NATS_INSUFFICIENT_BUFFER ? NATKA_EBUSY : NATKA_ENATS;
  pending *p = calloc(1, sizeof(*p));
  if (p == NULL || (p->subject = natka__strdup(dest->topic)) == NULL) {
    free(p);
    return NATKA_ENOMEM; /* published, but unconfirmed: redelivered */
  }
  p->opaque = opaque;
  *ns->waiting_tail = p;
  ns->waiting_tail = &p->next;
  ns->nwaiting++;
  start_flush(ns);
  return 0;
}

static void flush_work(uv_work_t *w) {
  nats_sink *ns = w->data;
  ns->flush_st = natsConnection_FlushTimeout(ns->nc, FLUSH_TIMEOUT_MS);
}

static void after_flush(uv_work_t *w, int status) {
  nats_sink *ns = w->data;
  pending *p = ns->flushing;
  natsStatus st = status == 0 ? ns->flush_st : NATS_ERR;
  ns->flushing = NULL;
  ns->nflushing = 0;
  ns->flush_busy = 0;
  while (p != NULL) {
    pending *next = p->next;
    natka__delivery d = {.topic = p->subject, .partition = -1, .offset = -1};
    if (st != NATS_OK) {
      d.err = NATKA_ENATS;
      d.errmsg = natsStatus_GetText(st);
      d.retriable = 1;
    }
    ns->base.on_delivery(&ns->base, p->opaque, &d);
    free(p->subject);
    free(p);
    p = next;
  }
  start_flush(ns);
  if (ns->closing && !ns->flush_busy && ns->closed != NULL) {
    void (*closed)(natka__sink *) = ns->closed;
    ns->closed = NULL;
    closed(&ns->base);
  }
}

static void start_flush(nats_sink *ns) {
  if (ns->flush_busy || ns->waiting == NULL)
    return;
  ns->flushing = ns->waiting;
  ns->nflushing = ns->nwaiting;
  ns->waiting = NULL;
  ns->waiting_tail = &ns->waiting;
  ns->nwaiting = 0;
  ns->work.data = ns;
  if (uv_queue_work(ns->base.host->loop, &ns->work, flush_work, after_flush) ==
      0)
    ns->flush_busy = 1;
  else
    after_flush(&ns->work, UV_ENOMEM);
}

static size_t ns_queued(natka__sink *sink) {
  nats_sink *ns = (nats_sink *)sink;
  return ns->nwaiting + ns->nflushing;
}

/* Done once the last flush has reported its publishes. */
static void ns_close(natka__sink *sink, void (*done)(natka__sink *sink)) {
  nats_sink *ns = (nats_sink *)sink;
  ns->closing = 1;
  if (ns->flush_busy || ns->waiting != NULL) {
    ns->closed = done;
    start_flush(ns);
    return;
  }
  if (done != NULL)
    done(sink);
}

static void ns_free(natka__sink *sink) {
  nats_sink *ns = (nats_sink *)sink;
  natka__nats_close(ns->nc, &ns->closed_state);
  natsOptions_Destroy(ns->opts);
  if (ns->have_closed_state)
    natka__nats_closed_destroy(&ns->closed_state);
  free(ns);
}

static const natka__sink_vt nats_vt = {
    .kind = "nats",
    .await_ready = ns_await_ready,
    .send = ns_send,
    .queued = ns_queued,
    .close = ns_close,
    .free = ns_free,
};

int natka__sink_nats_new(natka__sink **out, const natka__host *host,
                         natka__delivery_cb cb, char *err, size_t errlen) {
  nats_sink *ns = calloc(1, sizeof(*ns));
  if (ns == NULL)
    return natka__errf(err, errlen, NATKA_ENOMEM, "nats sink: out of memory");
  ns->base.vt = &nats_vt;
  ns->waiting_tail = &ns->waiting;
  ns->base.host = host;
  ns->base.on_delivery = cb;
  ns->conf = host->conf;
  ns->log = host->log;
  const natka_config *c = ns->conf;
  char url[NATKA__URL_SHOWN];
  int rc = natka__nats_closed_init(&ns->closed_state);
  ns->have_closed_state = rc == 0;
  if (rc == 0)
    rc = natka__nats_options(c, NULL, 0, &ns->closed_state, &ns->opts, err,
                             errlen);
  if (rc != 0) {
    ns_free(&ns->base);
    return rc == NATKA_ENOMEM
               ? natka__errf(err, errlen, rc, "nats sink: out of memory")
               : rc;
  }
  natsStatus st = natsOptions_SetDisconnectedCB(ns->opts, on_disconnected, ns);
  /* With a callback, a failed first attempt returns at once and nats.c
   * retries in the background; without one it would retry right here. */
  if (st == NATS_OK)
    st = natsOptions_SetRetryOnFailedConnect(ns->opts, true, on_connected, ns);
  if (st == NATS_OK) {
    st = natsConnection_Connect(&ns->nc, ns->opts);
    if (st == NATS_NOT_YET_CONNECTED) {
      natka__warn(ns->log, "nats sink: cannot connect to %s yet (%s); retrying",
                  natka__url_redact(c->nats_url, url, sizeof(url)),
                  natka__nats_why(st));
      st = NATS_OK;
    }
  }
  if (st != NATS_OK) {
    ns_free(&ns->base);
    return natka__errf(err, errlen, NATKA_ENATS, "nats sink: %s",
                       natka__nats_why(st));
  }
  *out = &ns->base;
  return 0;
}
