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
 *
 * With ingress.store = "spool" the event goes to natka's disk spool
 * instead, which lives on the loop: the delivery thread queues the decoded
 * request and wakes the loop, which appends everything queued, syncs the
 * spool once for all of them (unless spool.fsync is never) and only then
 * replies {"id":..,"spool":"<dir>","seq":N}. A full spool answers busy.
 */
#include "ingress.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <nats/nats.h>

#include "codec.h"
#include "host.h"
#include "pipe.h"
#include "mailbox.h"
#include "nats_conn.h"
#include "spool.h"
#include "nats_msg.h"
#include "secret.h"
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

  /* ingress.store = "spool": requests waiting for the loop. */
  natka__spool *spool;
  natka__mailbox mb;
  int mb_open;
  void (*close_done)(void *data);
  void *close_data;
};

typedef struct spool_req {
  natka__letter letter; /* first: the mailbox links requests through it */
  natsMsg *req;
  natka_event *ev;
  uint64_t seq;
  int rc;
  char err[256];
} spool_req;

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
 * id as ce-id and Nats-Msg-Id. A request's own Nats-* headers (Nats-TTL,
 * Nats-Rollup, Nats-Expected-*) would steer the stream: they are stored as
 * x-Nats-*, as data (see codec.h). */
static natsStatus copy_for_stream(natka__ingress *in, natsMsg *req,
                                  const natka_event *ev, natsMsg **out) {
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
      /* The decoded id and kind are written below, in one spelling. */
      if (strcasecmp(keys[k], "ce-id") == 0 ||
          strcasecmp(keys[k], "ce-type") == 0 ||
          natsMsgHeader_Values(req, keys[k], &vals, &nvals) != NATS_OK)
        continue;
      char *renamed = NULL;
      const char *n = keys[k];
      if (natka__nats_control_name(n)) {
        size_t len = strlen(n) + 3;
        if ((renamed = malloc(len)) == NULL)
          st = NATS_NO_MEMORY;
        else
          snprintf(renamed, len, "x-%s", n);
        n = renamed;
      }
      for (int v = 0; st == NATS_OK && v < nvals; v++)
        st = natsMsgHeader_Add(*out, n, vals[v]);
      free(renamed);
      free((void *)vals);
    }
    free((void *)keys);
  }
  if (st == NATS_OK)
    st = natsMsgHeader_Set(*out, "ce-id", natka_event_id(ev));
  if (st == NATS_OK)
    st = natsMsgHeader_Set(*out, "ce-type", natka_event_kind(ev));
  return st;
}

/* "seq" as an exact JSON number: a double would round it above 2^53. */
static void add_seq(cJSON *j, uint64_t seq) {
  char digits[24];
  snprintf(digits, sizeof(digits), "%" PRIu64, seq);
  cJSON_AddRawToObject(j, "seq", digits);
}

/* A request the loop is too far behind to take (limits.handoff_*) or that
 * comes after the close gets a busy reply: never silence, never unbounded
 * memory. */
static void hand_to_loop(natka__ingress *in, natsMsg *req, natka_event *ev) {
  spool_req *r = calloc(1, sizeof(*r));
  const char *why = "natka is out of memory";
  if (r != NULL) {
    r->req = req;
    r->ev = ev;
    r->letter.bytes = natka__event_wire_size(ev) + sizeof(*r);
    int rc = natka__mailbox_post(&in->mb, &r->letter);
    if (rc == 0)
      return;
    why = rc == NATKA_ESTOPPED ? "natka is stopping"
                               : "natka is behind (limits.handoff_events / "
                                 "limits.handoff_bytes)";
    free(r);
  }
  refuse(in, req, "busy", why);
  natsMsg_Destroy(req);
  natka_event_free(ev);
}

/* On the loop: stores every queued request, syncs once, then answers each
 * (a receipt only for what the sync covered). */
static void store_queued(natka__mailbox *mb, natka__letter *list) {
  natka__ingress *in = mb->data;
  spool_req *head = (spool_req *)list;
  char err[256] = "";
  int stored = 0;
  for (spool_req *r = head; r != NULL; r = (spool_req *)r->letter.next) {
    r->rc = natka__spool_put_event(in->spool, r->ev, &r->seq, r->err,
                                   sizeof(r->err));
    stored += r->rc == 0;
  }
  int sync_rc = 0;
  if (stored > 0 && strcmp(in->conf->spool_fsync, "never") != 0)
    sync_rc = natka__spool_sync(in->spool, err, sizeof(err));
  while (head != NULL) {
    spool_req *r = head;
    head = (spool_req *)r->letter.next;
    if (r->rc == 0 && sync_rc != 0) {
      /* Appended but not known to be on disk: no receipt. It may still be
       * delivered (at least once; a retry would store it twice). */
      refuse(in, r->req, "unavailable", err);
    } else if (r->rc == NATKA_EBUSY) {
      refuse(in, r->req, "busy", "the spool is full (spool.max_bytes)");
    } else if (r->rc != 0) {
      refuse(in, r->req, "unavailable", r->err);
    } else {
      cJSON *j = cJSON_CreateObject();
      cJSON_AddStringToObject(j, "id", natka_event_id(r->ev));
      cJSON_AddStringToObject(j, "spool", in->conf->spool_dir);
      add_seq(j, r->seq);
      cJSON_AddBoolToObject(j, "duplicate", 0);
      atomic_fetch_add(&in->accepted, 1);
      reply_json(in, r->req, j);
    }
    natsMsg_Destroy(r->req);
    natka_event_free(r->ev);
    free(r);
  }
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
  size_t size = natka__event_wire_size(ev);
  if (size > (size_t)in->conf->max_event_bytes) {
    char why[160];
    snprintf(why, sizeof(why),
             "event of %zu bytes exceeds limits.max_event_bytes (%" PRId64 ")",
             size, in->conf->max_event_bytes);
    refuse(in, req, "malformed", why);
    goto done;
  }
  if (in->spool != NULL) {
    hand_to_loop(in, req, ev);
    req = NULL;
    ev = NULL;
    goto done;
  }
  const char *id = natka_event_id(ev);
  natsStatus st = copy_for_stream(in, req, ev, &out);
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
  add_seq(j, ack->Sequence);
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

int natka__ingress_new(natka__ingress **out, const natka__host *host,
                       natka__spool *spool, char *err, size_t errlen) {
  natka__ingress *in = calloc(1, sizeof(*in));
  if (in == NULL)
    return natka__errf(err, errlen, NATKA_ENOMEM, "ingress: out of memory");
  in->conf = host->conf;
  in->log = host->log;
  if (strcmp(in->conf->ingress_store, "spool") == 0 && spool != NULL) {
    if (natka__mailbox_init(
            &in->mb, host->loop, (size_t)in->conf->handoff_events,
            (size_t)in->conf->handoff_bytes, store_queued, in) != 0) {
      free(in);
      return natka__errf(err, errlen, NATKA_ENOMEM, "ingress: out of memory");
    }
    in->mb_open = 1;
    in->spool = spool;
  }
  *out = in;
  return 0;
}

static void on_mailbox_closed(natka__mailbox *mb) {
  natka__ingress *in = mb->data;
  in->mb_open = 0;
  if (in->close_done != NULL)
    in->close_done(in->close_data);
}

/* What was handed over is answered (the mailbox drains it first), never
 * dropped; what comes after gets a busy reply. */
void natka__ingress_close(natka__ingress *in, void (*done)(void *data),
                          void *data) {
  if (in == NULL || !in->mb_open) {
    done(data);
    return;
  }
  in->close_done = done;
  in->close_data = data;
  natka__mailbox_close(&in->mb, on_mailbox_closed);
}

static void on_connected(natsConnection *nc, void *closure) {
  natka__ingress *in = closure;
  (void)nc;
  natka__info(in->log, "ingress: taking requests on %zu subject(s)", in->nsubs);
}

int natka__ingress_start(natka__ingress *in) {
  const natka_config *c = in->conf;
  char err[512], url[NATKA__URL_SHOWN];
  int rc = natka__nats_closed_init(&in->closed_state);
  in->have_closed_state = rc == 0;
  if (rc == 0)
    rc = natka__nats_options(c, NULL, 0, &in->closed_state, &in->opts, err,
                             sizeof(err));
  if (rc != 0) {
    natka__error(in->log, "ingress: %s",
                 rc == NATKA_ENOMEM ? "out of memory" : err);
    return rc;
  }
  /* With a callback a failed first attempt returns at once; nats.c keeps
   * trying and sends the subscriptions once connected. */
  natsStatus st =
      natsOptions_SetRetryOnFailedConnect(in->opts, true, on_connected, in);
  /* The connection mostly sends replies: each one out at once, rather than
   * waiting in nats.c's write buffer (about 1 ms per receipt). */
  if (st == NATS_OK)
    st = natsOptions_SetSendAsap(in->opts, true);
  int connected = 0;
  if (st == NATS_OK) {
    st = natsConnection_Connect(&in->nc, in->opts);
    connected = st == NATS_OK;
    if (st == NATS_NOT_YET_CONNECTED) {
      natka__warn(in->log, "ingress: cannot connect to %s yet (%s); retrying",
                  natka__url_redact(c->nats_url, url, sizeof(url)),
                  natka__nats_why(st));
      st = NATS_OK;
    }
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
                 c->ingress_subjects.v[0], natka__nats_why(st));
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
  /* Only now can no request callback post any more (a request drained
   * after the close got a busy reply through the closed mailbox). */
  if (in->spool != NULL)
    natka__mailbox_destroy(&in->mb);
  free(in);
}
