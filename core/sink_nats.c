/*
 * The NATS sink: publishes events on NATS subjects (CloudEvents headers, see
 * codec.h). Used for dual writes decided by degrade rules and the `mode`
 * switch, and the first half of a Kafka -> NATS path.
 *
 * It publishes with core NATS: nats.c buffers the message and sends it from
 * its own thread, so a publish is reported delivered once nats.c has taken
 * it. That is at most once on the NATS side (NATS carries the real-time
 * copy; Kafka stays the record). During a disconnection nats.c keeps
 * publishes in its reconnect buffer; when that is full the publish fails
 * and the event is nak'ed like any failed delivery.
 */
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>

#include "codec.h"
#include "gateway.h"
#include "util.h"

typedef struct nats_sink {
  natka__sink base;
  natka__log *log;
  const natka_config *conf;
  natsOptions *opts;
  natsConnection *nc;
  int closing;
} nats_sink;

static void on_disconnected(natsConnection *nc, void *closure) {
  nats_sink *ns = closure;
  (void)nc;
  if (!ns->closing)
    natka__warn(ns->log, "nats sink: disconnected; publishes are buffered "
                         "until the connection is back");
}

static void on_connected(natsConnection *nc, void *closure) {
  nats_sink *ns = closure;
  (void)nc;
  natka__info(ns->log, "nats sink: connected to %s", ns->conf->nats_url);
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
  natka__delivery d = {.topic = dest->topic, .partition = -1, .offset = -1};
  ns->base.on_delivery(sink, opaque, &d);
  return 0;
}

static size_t ns_queued(natka__sink *sink) {
  (void)sink;
  return 0;
}

static void ns_close(natka__sink *sink, void (*done)(natka__sink *sink)) {
  nats_sink *ns = (nats_sink *)sink;
  ns->closing = 1;
  if (ns->nc != NULL) {
    natsConnection_FlushTimeout(ns->nc, 2000);
    natsConnection_Close(ns->nc);
  }
  if (done != NULL)
    done(sink);
}

static void ns_free(natka__sink *sink) {
  nats_sink *ns = (nats_sink *)sink;
  natsConnection_Destroy(ns->nc);
  natsOptions_Destroy(ns->opts);
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

int natka__sink_nats_new(natka__sink **out, natka *gw, natka__delivery_cb cb,
                         char *err, size_t errlen) {
  nats_sink *ns = calloc(1, sizeof(*ns));
  if (ns == NULL)
    return natka__errf(err, errlen, NATKA_ENOMEM, "nats sink: out of memory");
  ns->base.vt = &nats_vt;
  ns->base.gw = gw;
  ns->base.on_delivery = cb;
  ns->conf = natka__gateway_config(gw);
  ns->log = natka__gateway_log(gw);
  const natka_config *c = ns->conf;
  natsStatus st = natsOptions_Create(&ns->opts);
  if (st == NATS_OK)
    st = natsOptions_SetURL(ns->opts, c->nats_url);
  if (st == NATS_OK)
    st = natsOptions_SetName(ns->opts, c->nats_name);
  if (st == NATS_OK)
    st = natsOptions_SetMaxReconnect(ns->opts, -1);
  if (st == NATS_OK)
    st = natsOptions_SetReconnectWait(ns->opts, c->nats_reconnect_wait_ms);
  if (st == NATS_OK)
    st = natsOptions_SetDisconnectedCB(ns->opts, on_disconnected, ns);
  /* With a callback, a failed first attempt returns at once and nats.c
   * retries in the background; without one it would retry right here. */
  if (st == NATS_OK)
    st = natsOptions_SetRetryOnFailedConnect(ns->opts, true, on_connected, ns);
  if (st == NATS_OK) {
    st = natsConnection_Connect(&ns->nc, ns->opts);
    if (st == NATS_NOT_YET_CONNECTED)
      st = NATS_OK;
  }
  if (st != NATS_OK) {
    ns_free(&ns->base);
    return natka__errf(err, errlen, NATKA_ENATS, "nats sink: %s",
                       natsStatus_GetText(st));
  }
  *out = &ns->base;
  return 0;
}
