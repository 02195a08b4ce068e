/*
 * The request-reply ingress: a synchronous receipt for edge publishers.
 *
 * A publisher sends a NATS request to one of ingress.subjects. natka decodes
 * it as an event (so a malformed one is refused with the reason), publishes
 * it into JetStream on "<ingress.stream_prefix>.<request subject>" with
 * Nats-Msg-Id = the event id, and replies only once JetStream has stored it:
 *
 *   {"id":"<event id>","stream":"EVENTS","seq":42,"duplicate":false}
 *
 * From there the JetStream source carries the event to Kafka as any other.
 * A request that cannot be accepted gets an error reply, never silence:
 *
 *   {"error":"busy","reason":"..."}       JetStream refused or timed out
 *   {"error":"malformed","reason":"..."}  the event cannot be decoded
 *
 * Because the JetStream publish carries Nats-Msg-Id, a publisher that
 * retries after a lost reply does not store the event twice (within the
 * stream's duplicate window).
 *
 * Requests are handled on nats.c's delivery thread for the subscription:
 * one JetStream round trip at a time per subject, off the loop, and no Lua.
 */
#include "ingress.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <nats/nats.h>

#include "gateway.h"
#include "nats_conn.h"
#include "nats_msg.h"
#include "util.h"

#define PUBLISH_WAIT_MS 5000

struct natka__ingress {
  natka__log *log;
  const natka_config *conf;
  natsOptions *opts;
  natsConnection *nc;
  jsCtx *js;
  natsSubscription **subs;
  size_t nsubs;
  atomic_llong accepted, refused;
  natka__nats_closed closed_state; /* see nats_conn.h */
  int have_closed_state;
};

static void reply_json(natka__ingress *in, natsMsg *req, cJSON *j) {
  const char *to = natsMsg_GetReply(req);
  char *text = j != NULL ? cJSON_PrintUnformatted(j) : NULL;
  if (to != NULL && text != NULL)
    natsConnection_PublishString(in->nc, to, text);
  else if (to == NULL)
    natka__debug(in->log,
                 "ingress: a message on %s has no reply subject; "
                 "use a request to get a receipt",
                 natsMsg_GetSubject(req));
  cJSON_free(text);
  cJSON_Delete(j);
}

static void refuse(natka__ingress *in, natsMsg *req, const char *error,
                   const char *reason) {
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "error", error);
  cJSON_AddStringToObject(j, "reason", reason);
  atomic_fetch_add(&in->refused, 1);
  natka__debug(in->log, "ingress: refused a request on %s: %s: %s",
               natsMsg_GetSubject(req), error, reason);
  reply_json(in, req, j);
}

/* The JetStream copy of the request: same data and headers, with the event
 * id as ce-id and Nats-Msg-Id. */
static natsStatus copy_for_stream(natka__ingress *in, natsMsg *req,
                                  const char *id, natsMsg **out) {
  char subject[512];
  const char **keys = NULL;
  int nkeys = 0;
  snprintf(subject, sizeof(subject), "%s.%s", in->conf->ingress_stream_prefix,
           natsMsg_GetSubject(req));
  natsStatus st = natsMsg_Create(out, subject, NULL, natsMsg_GetData(req),
                                 natsMsg_GetDataLength(req));
  if (st == NATS_OK && natsMsgHeader_Keys(req, &keys, &nkeys) == NATS_OK) {
    for (int k = 0; st == NATS_OK && k < nkeys; k++) {
      const char **vals = NULL;
      int nvals = 0;
      if (natsMsgHeader_Values(req, keys[k], &vals, &nvals) != NATS_OK)
        continue;
      for (int v = 0; st == NATS_OK && v < nvals; v++)
        st = natsMsgHeader_Add(*out, keys[k], vals[v]);
      free((void *)vals);
    }
    free((void *)keys);
  }
  if (st == NATS_OK)
    st = natsMsgHeader_Set(*out, "ce-id", id);
  if (st == NATS_OK && natsMsgHeader_Get(req, "ce-type", NULL) != NATS_OK)
    st = natsMsgHeader_Set(*out, "ce-type", natsMsg_GetSubject(req));
  return st;
}

static void on_request(natsConnection *nc, natsSubscription *sub, natsMsg *req,
                       void *closure) {
  natka__ingress *in = closure;
  natka_event *ev = NULL;
  char *malformed = NULL;
  natsMsg *out = NULL;
  jsPubAck *ack = NULL;
  jsErrCode jerr = 0;
  (void)nc;
  (void)sub;

  if (natka__nats_msg_decode(req, NULL, 0, &ev, &malformed) != 0) {
    refuse(in, req, "busy", "natka is out of memory");
    goto done;
  }
  if (malformed != NULL) {
    refuse(in, req, "malformed", malformed);
    goto done;
  }
  if ((size_t)natsMsg_GetDataLength(req) > (size_t)in->conf->max_event_bytes) {
    refuse(in, req, "malformed", "event larger than limits.max_event_bytes");
    goto done;
  }
  const char *id = natka_event_id(ev);
  natsStatus st = copy_for_stream(in, req, id, &out);
  if (st == NATS_OK) {
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MsgId = id;
    po.MaxWait = PUBLISH_WAIT_MS;
    st = js_PublishMsg(&ack, in->js, out, &po, &jerr);
  }
  if (st != NATS_OK) {
    char why[256];
    snprintf(why, sizeof(why), "JetStream did not store it: %s (error %d)",
             natsStatus_GetText(st), (int)jerr);
    refuse(in, req, "busy", why);
    goto done;
  }
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "id", id);
  cJSON_AddStringToObject(j, "stream", ack->Stream);
  cJSON_AddNumberToObject(j, "seq", (double)ack->Sequence);
  cJSON_AddBoolToObject(j, "duplicate", ack->Duplicate);
  atomic_fetch_add(&in->accepted, 1);
  reply_json(in, req, j);
done:
  jsPubAck_Destroy(ack);
  natsMsg_Destroy(out);
  free(malformed);
  natka_event_free(ev);
  natsMsg_Destroy(req);
}

int natka__ingress_new(natka__ingress **out, natka *gw, char *err,
                       size_t errlen) {
  natka__ingress *in = calloc(1, sizeof(*in));
  if (in == NULL)
    return natka__errf(err, errlen, NATKA_ENOMEM, "ingress: out of memory");
  in->conf = natka__gateway_config(gw);
  in->log = natka__gateway_log(gw);
  *out = in;
  return 0;
}

static void on_connected(natsConnection *nc, void *closure) {
  natka__ingress *in = closure;
  (void)nc;
  natka__info(in->log, "ingress: taking requests on %zu subject(s)", in->nsubs);
}

int natka__ingress_start(natka__ingress *in) {
  const natka_config *c = in->conf;
  natsStatus st = natka__nats_options(c, &in->opts, &in->closed_state);
  in->have_closed_state = st != NATS_NO_MEMORY;
  /* With a callback a failed first attempt returns at once; nats.c keeps
   * trying and sends the subscriptions once connected. */
  if (st == NATS_OK)
    st = natsOptions_SetRetryOnFailedConnect(in->opts, true, on_connected, in);
  int connected = 0;
  if (st == NATS_OK) {
    st = natsConnection_Connect(&in->nc, in->opts);
    connected = st == NATS_OK;
    if (st == NATS_NOT_YET_CONNECTED)
      st = NATS_OK;
  }
  if (st == NATS_OK)
    st = natsConnection_JetStream(&in->js, in->nc, NULL);
  in->subs = calloc(c->ingress_subjects.n, sizeof(*in->subs));
  if (st == NATS_OK && in->subs == NULL)
    st = NATS_NO_MEMORY;
  for (size_t i = 0; st == NATS_OK && i < c->ingress_subjects.n; i++) {
    st = natsConnection_QueueSubscribe(&in->subs[i], in->nc,
                                       c->ingress_subjects.v[i],
                                       c->ingress_queue, on_request, in);
    if (st == NATS_OK)
      in->nsubs++;
  }
  if (st != NATS_OK) {
    natka__error(in->log, "ingress: cannot take requests on %s: %s",
                 c->ingress_subjects.v[0], natsStatus_GetText(st));
    return NATKA_ENATS;
  }
  /* nats.c calls on_connected only for a connection made by a retry. */
  if (connected)
    on_connected(in->nc, in);
  return 0;
}

int64_t natka__ingress_stat(const natka__ingress *in, int refused) {
  if (in == NULL)
    return 0;
  return refused ? atomic_load(&in->refused) : atomic_load(&in->accepted);
}

void natka__ingress_stop(natka__ingress *in) {
  /* Requests already received are still answered; no new ones come. */
  for (size_t i = 0; i < in->nsubs; i++)
    natsSubscription_Drain(in->subs[i]);
}

void natka__ingress_free(natka__ingress *in) {
  if (in == NULL)
    return;
  for (size_t i = 0; i < in->nsubs; i++) {
    natsSubscription_WaitForDrainCompletion(in->subs[i], 5000);
    natsSubscription_Destroy(in->subs[i]);
  }
  free(in->subs);
  jsCtx_Destroy(in->js);
  natka__nats_close(in->nc, &in->closed_state);
  natsOptions_Destroy(in->opts);
  if (in->have_closed_state)
    natka__nats_closed_destroy(&in->closed_state);
  free(in);
}
