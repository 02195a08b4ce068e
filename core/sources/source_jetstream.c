/*
 * The JetStream source: a durable pull consumer fetched in batches.
 *
 * nats.c 3.4's natsSubscription_Fetch() blocks, so fetching runs on a thread
 * of its own. That thread connects (with backoff), makes sure the stream and
 * the durable consumer exist, fetches up to `credit` messages, decodes them
 * into events and queues them for the loop, waking it with uv_async_send().
 * The loop hands them to the gateway and later settles each message (ack,
 * nak with delay, term) from the loop thread; nats.c publishes are
 * thread-safe.
 *
 * Credit bounds what is in flight: it starts at jetstream.max_ack_pending,
 * each fetched message takes one, each settled message gives one back. With
 * pause() (gateway backpressure) the thread stops fetching after the current
 * request. Nothing is acked before the gateway says every destination has
 * confirmed.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>

#include "host.h"
#include "pipe.h"
#include "nats_conn.h"
#include "nats_msg.h"
#include "secret.h"
#include "util.h"

#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 30000
#define FLUSH_TIMEOUT_MS 5000
#define FLOOR_EVERY_MS 2000

/* A fetched message: queued for the loop, then, once handed to the gateway,
 * held (the gateway's token) until settled. */
typedef struct js_item {
  natsMsg *msg;
  natka_event *ev;
  char *malformed;
  struct js_item *next;
  struct js_item *held_prev, *held_next; /* loop thread only */
  int64_t since; /* fetched, or last marked in progress (mono ns) */
  uint64_t seq;  /* stream sequence (0: unknown) */
  int delivered; /* JetStream's delivery count */
} js_item;

typedef struct js_source {
  natka__source base;
  natka__log *log;
  const natka_config *conf;

  uv_thread_t thread;
  int thread_started;
  uv_mutex_t mu;
  uv_cond_t cond;
  /* Guarded by mu. */
  js_item *head, *tail;
  int64_t credit;
  int paused, stopping, finish;
  int fetching_done, thread_done;
  uint64_t ack_floor;      /* the consumer's, last read from the server */
  char identity[160];      /* "<stream>@<created ns>", "" until known */
  char identity_seen[160]; /* loop side: the copy js_identity() returns */

  /* Loop side. */
  uv_async_t async;
  uv_timer_t progress; /* keeps held messages from being redelivered */
  int handles_open;
  js_item *held; /* handed to the gateway, not settled yet */
  void (*closed)(natka__source *src);
  void (*stopped)(natka__source *src);
  int stop_reported;

  /* Fetch thread side (and settle, once connected). */
  natsOptions *opts;
  natsConnection *nc;
  jsCtx *js;
  natsSubscription *sub;
  /* Subscriptions replaced by a rebind: messages still held by flights are
   * acked through them, so they live until close. */
  natsSubscription **retired;
  size_t nretired;
  char last_problem[512];
  int64_t floor_read_ns;
  int64_t avg_msg_bytes; /* moving average of fetched messages' sizes */
  natka__nats_closed closed_state; /* see nats_conn.h */
  int have_closed_state;
  int closing; /* our own close: the disconnect is expected */
} js_source;

static void item_free(js_item *it) {
  if (it->msg != NULL)
    natsMsg_Destroy(it->msg);
  natka_event_free(it->ev);
  free(it->malformed);
  free(it);
}

/* Logs a problem once until it changes, so an unreachable server gives one
 * line per kind of failure rather than one per retry. */
static void problem(js_source *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void problem(js_source *s, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (strcmp(msg, s->last_problem) != 0) {
    natka__warn(s->log, "jetstream: %s (retrying with backoff)", msg);
    snprintf(s->last_problem, sizeof(s->last_problem), "%s", msg);
  }
}

/* Waits up to ms or until stop; returns nonzero when stopping. */
static int nap(js_source *s, int64_t ms) {
  uv_mutex_lock(&s->mu);
  if (!s->stopping)
    uv_cond_timedwait(&s->cond, &s->mu, (uint64_t)ms * 1000000);
  int stopping = s->stopping;
  uv_mutex_unlock(&s->mu);
  return stopping;
}

static void on_disconnected(natsConnection *nc, void *closure) {
  js_source *s = closure;
  (void)nc;
  if (!s->closing)
    natka__warn(s->log, "jetstream: disconnected from NATS; reconnecting");
}

static void on_reconnected(natsConnection *nc, void *closure) {
  js_source *s = closure;
  char url[256] = "", shown[NATKA__URL_SHOWN];
  natsConnection_GetConnectedUrl(nc, url, sizeof(url)); /* with user info */
  natka__info(s->log, "jetstream: reconnected to %s",
              natka__url_redact(url, shown, sizeof(shown)));
}

static int make_options(js_source *s, char *err, size_t errlen) {
  int rc = natka__nats_closed_init(&s->closed_state);
  s->have_closed_state = rc == 0;
  if (rc == 0)
    rc = natka__nats_options(s->conf, NULL, 0, &s->closed_state, &s->opts, err,
                             errlen);
  natsStatus st = NATS_OK;
  if (rc == 0)
    st = natsOptions_SetDisconnectedCB(s->opts, on_disconnected, s);
  if (rc == 0 && st == NATS_OK)
    st = natsOptions_SetReconnectedCB(s->opts, on_reconnected, s);
  if (rc == 0 && st != NATS_OK)
    rc = natka__errf(err, errlen, NATKA_ENOMEM, "jetstream: out of memory");
  return rc;
}

/* Names the stream as it was created, for checkpoints (see pipe.h). */
static void set_identity(js_source *s, const jsStreamInfo *si) {
  uv_mutex_lock(&s->mu);
  snprintf(s->identity, sizeof(s->identity), "%s@%" PRId64, s->conf->js_stream,
           si->Created);
  uv_mutex_unlock(&s->mu);
}

static int ensure_stream(js_source *s) {
  const natka_config *c = s->conf;
  jsStreamInfo *si = NULL;
  jsErrCode jerr = 0;
  natsStatus st = js_GetStreamInfo(&si, s->js, c->js_stream, NULL, &jerr);
  if (st == NATS_OK) {
    set_identity(s, si);
    jsStreamInfo_Destroy(si);
    return 0;
  }
  if (st != NATS_NOT_FOUND) {
    problem(s, "stream '%s': %s", c->js_stream, natsStatus_GetText(st));
    return -1;
  }
  if (!c->js_create_stream) {
    problem(s, "stream '%s' does not exist and jetstream.create_stream is off",
            c->js_stream);
    return -1;
  }
  jsStreamConfig sc;
  jsStreamConfig_Init(&sc);
  sc.Name = c->js_stream;
  sc.Subjects = (const char **)c->js_subjects.v;
  sc.SubjectsLen = (int)c->js_subjects.n;
  sc.Storage = js_FileStorage;
  st = js_AddStream(&si, s->js, &sc, NULL, &jerr);
  if (st != NATS_OK) {
    problem(s, "creating stream '%s': %s (error %d)", c->js_stream,
            natsStatus_GetText(st), (int)jerr);
    return -1;
  }
  set_identity(s, si);
  jsStreamInfo_Destroy(si);
  natka__info(s->log, "jetstream: created stream '%s'", c->js_stream);
  return 0;
}

static void consumer_config(const natka_config *c, jsConsumerConfig *cc) {
  jsConsumerConfig_Init(cc);
  cc->Durable = c->js_durable;
  cc->AckPolicy = js_AckExplicit;
  cc->DeliverPolicy = js_DeliverAll;
  cc->AckWait = c->js_ack_wait_ms * 1000000;
  cc->MaxAckPending = c->js_max_ack_pending;
  cc->MaxDeliver = c->js_max_deliver;
}

static int ensure_consumer(js_source *s) {
  const natka_config *c = s->conf;
  jsConsumerConfig cc;
  jsConsumerInfo *ci = NULL;
  jsErrCode jerr = 0;
  consumer_config(c, &cc);
  natsStatus st = js_AddConsumer(&ci, s->js, c->js_stream, &cc, NULL, &jerr);
  if (st != NATS_OK) /* exists with other settings: bring them up to date */
    st = js_UpdateConsumer(&ci, s->js, c->js_stream, &cc, NULL, &jerr);
  if (st != NATS_OK) {
    problem(s, "consumer '%s' on stream '%s': %s (error %d)", c->js_durable,
            c->js_stream, natsStatus_GetText(st), (int)jerr);
    return -1;
  }
  jsConsumerInfo_Destroy(ci);

  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = c->js_stream;
  so.Consumer = c->js_durable;
  st = js_PullSubscribe(&s->sub, s->js, NULL, c->js_durable, NULL, &so, &jerr);
  if (st != NATS_OK) {
    problem(s, "binding to consumer '%s': %s (error %d)", c->js_durable,
            natsStatus_GetText(st), (int)jerr);
    return -1;
  }
  return 0;
}

/* Connects and binds; returns 0 when ready to fetch. */
static int setup(js_source *s) {
  char url[NATKA__URL_SHOWN];
  if (s->nc == NULL) {
    natsStatus st = natsConnection_Connect(&s->nc, s->opts);
    if (st != NATS_OK) {
      problem(s, "cannot connect to %s: %s",
              natka__url_redact(s->conf->nats_url, url, sizeof(url)),
              natka__nats_why(st));
      s->nc = NULL;
      return -1;
    }
    natka__info(s->log, "jetstream: connected to %s",
                natka__url_redact(s->conf->nats_url, url, sizeof(url)));
  }
  if (s->js == NULL &&
      natsConnection_JetStream(&s->js, s->nc, NULL) != NATS_OK) {
    problem(s, "no JetStream context");
    s->js = NULL;
    return -1;
  }
  if (ensure_stream(s) != 0 || ensure_consumer(s) != 0)
    return -1;
  natka__info(s->log,
              "jetstream: consuming stream '%s' with durable '%s' "
              "(batch %" PRId64 ", max ack pending %" PRId64 ")",
              s->conf->js_stream, s->conf->js_durable, s->conf->js_batch,
              s->conf->js_max_ack_pending);
  s->last_problem[0] = '\0';
  return 0;
}

static js_item *decode(natsMsg *msg) {
  char default_id[160] = "";
  int64_t default_ts = 0;
  jsMsgMetaData *meta = NULL;
  js_item *it = calloc(1, sizeof(*it));
  if (it == NULL)
    return NULL;
  /* Without an id or time of its own, an event is named by its stream
   * position and dated by the stream, so a redelivery is the same event. */
  it->delivered = 1;
  if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
    snprintf(default_id, sizeof(default_id), "%s:%" PRIu64, meta->Stream,
             meta->Sequence.Stream);
    default_ts = meta->Timestamp;
    it->seq = meta->Sequence.Stream;
    it->delivered = meta->NumDelivered > 0 && meta->NumDelivered < 1000000000
                        ? (int)meta->NumDelivered
                        : 1;
    jsMsgMetaData_Destroy(meta);
  }
  if (natka__nats_msg_decode(msg, default_id[0] ? default_id : NULL, default_ts,
                             &it->ev, &it->malformed) != 0) {
    free(it);
    return NULL;
  }
  it->msg = msg;
  return it;
}

/* One pull request for at most `batch` messages. */
static void fetch_once(js_source *s, int batch) {
  natsMsgList list = {0};
  natsStatus st = natsSubscription_Fetch(&list, s->sub, batch,
                                         s->conf->js_fetch_expires_ms, NULL);
  if (st != NATS_OK && !(st == NATS_TIMEOUT && list.Count > 0)) {
    natsMsgList_Destroy(&list);
    if (st == NATS_TIMEOUT)
      return; /* nothing new within the expiry: normal */
    problem(s, "fetch failed: %s (%s)", natsStatus_GetText(st),
            nats_GetLastError(NULL));
    if (st == NATS_NOT_FOUND || st == NATS_INVALID_SUBSCRIPTION) {
      natsSubscription **grown =
          realloc(s->retired, (s->nretired + 1) * sizeof(*grown));
      if (grown != NULL) { /* the consumer went away: rebind */
        s->retired = grown;
        s->retired[s->nretired++] = s->sub;
        s->sub = NULL;
      }
    }
    nap(s, BACKOFF_MIN_MS * 4);
    return;
  }
  js_item *head = NULL, *tail = NULL;
  int n = 0;
  int64_t bytes = 0;
  for (int i = 0; i < list.Count; i++) {
    bytes += natsMsg_GetDataLength(list.Msgs[i]) + 64; /* + headers, roughly */
    js_item *it = decode(list.Msgs[i]);
    if (it == NULL) {
      /* Out of memory: leave it unacked; JetStream redelivers it. The list
       * must not destroy it a second time. */
      natsMsg_Destroy(list.Msgs[i]);
      list.Msgs[i] = NULL;
      continue;
    }
    list.Msgs[i] = NULL;
    if (tail != NULL)
      tail->next = it;
    else
      head = it;
    tail = it;
    n++;
  }
  if (list.Count > 0) {
    int64_t mean = bytes / list.Count;
    s->avg_msg_bytes =
        s->avg_msg_bytes == 0 ? mean : (3 * s->avg_msg_bytes + mean) / 4;
  }
  natsMsgList_Destroy(&list);
  if (n == 0)
    return;
  uv_mutex_lock(&s->mu);
  s->credit -= n;
  if (s->tail != NULL)
    s->tail->next = head;
  else
    s->head = head;
  s->tail = tail;
  uv_mutex_unlock(&s->mu);
  uv_async_send(&s->async);
}

/* The consumer's ack floor: JetStream hands over nothing at or below it
 * again, so checkpoints need not remember those positions. */
static void read_floor(js_source *s) {
  jsConsumerInfo *ci = NULL;
  int64_t now = natka__mono_ns();
  if (now - s->floor_read_ns < (int64_t)FLOOR_EVERY_MS * 1000000)
    return;
  s->floor_read_ns = now;
  if (js_GetConsumerInfo(&ci, s->js, s->conf->js_stream, s->conf->js_durable,
                         NULL, NULL) != NATS_OK)
    return;
  uv_mutex_lock(&s->mu);
  s->ack_floor = ci->AckFloor.Stream;
  uv_mutex_unlock(&s->mu);
  jsConsumerInfo_Destroy(ci);
}

static void fetch_thread(void *arg) {
  js_source *s = arg;
  int64_t backoff = BACKOFF_MIN_MS;

  for (;;) {
    uv_mutex_lock(&s->mu);
    while (!s->stopping && (s->paused || s->credit <= 0))
      uv_cond_wait(&s->cond, &s->mu);
    int stopping = s->stopping;
    int64_t credit = s->credit;
    uv_mutex_unlock(&s->mu);
    if (stopping)
      break;
    if (s->sub == NULL) {
      if (setup(s) != 0) {
        if (nap(s, backoff))
          break;
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
        continue;
      }
      backoff = BACKOFF_MIN_MS;
    }
    /* While disconnected nothing can arrive, and a pull request issued then
     * would sit in nats.c's reconnect buffer and be replayed with the
     * reconnect, racing the requests that follow (heap corruption under
     * load with nats.c 3.4); wait for the connection instead (nats.c
     * reconnects by itself). */
    if (natsConnection_Status(s->nc) != NATS_CONN_STATUS_CONNECTED) {
      if (nap(s, BACKOFF_MIN_MS))
        break;
      continue;
    }
    int64_t batch = credit < s->conf->js_batch ? credit : s->conf->js_batch;
    /* Bounded in bytes too (limits.handoff_bytes), by the size of the
     * messages seen so far: a slow loop must not make natka pull a batch of
     * large messages it cannot take yet. (A pull request's own max_bytes is
     * not used: with it, nats.c 3.4.1 ended fetches with a "Batch
     * Completed" error, and natka aborted on a double free right after.) */
    if (s->avg_msg_bytes > 0) {
      int64_t fit = s->conf->handoff_bytes / s->avg_msg_bytes;
      batch = fit < 1 ? 1 : fit < batch ? fit : batch;
    }
    fetch_once(s, (int)batch);
    read_floor(s);
  }

  /* No more fetching: let the loop know, then wait until it has settled
   * what it will settle, and flush those acks before closing. */
  uv_mutex_lock(&s->mu);
  s->fetching_done = 1;
  uv_mutex_unlock(&s->mu);
  uv_async_send(&s->async);

  uv_mutex_lock(&s->mu);
  while (!s->finish)
    uv_cond_wait(&s->cond, &s->mu);
  uv_mutex_unlock(&s->mu);
  if (s->nc != NULL)
    natsConnection_FlushTimeout(s->nc, FLUSH_TIMEOUT_MS);
  natsSubscription_Destroy(s->sub);
  s->sub = NULL;
  for (size_t i = 0; i < s->nretired; i++)
    natsSubscription_Destroy(s->retired[i]);
  free(s->retired);
  s->retired = NULL;
  s->nretired = 0;
  jsCtx_Destroy(s->js);
  s->js = NULL;
  s->closing = 1;
  natka__nats_close(s->nc, &s->closed_state);
  s->nc = NULL;

  uv_mutex_lock(&s->mu);
  s->thread_done = 1;
  uv_mutex_unlock(&s->mu);
  uv_async_send(&s->async);
}

static void release(js_source *s) {
  while (s->head != NULL) {
    js_item *it = s->head;
    s->head = it->next;
    item_free(it);
  }
  while (s->held != NULL) { /* unsettled: the server redelivers them */
    js_item *it = s->held;
    s->held = it->held_next;
    item_free(it);
  }
  natsOptions_Destroy(s->opts);
  if (s->have_closed_state)
    natka__nats_closed_destroy(&s->closed_state);
  uv_cond_destroy(&s->cond);
  uv_mutex_destroy(&s->mu);
  free(s->base.name);
  free(s);
}

static void on_handle_closed(uv_handle_t *h) {
  js_source *s = h->data;
  if (--s->handles_open > 0)
    return;
  if (s->closed != NULL)
    s->closed(&s->base);
  release(s);
}

static void close_handles(js_source *s) {
  uv_timer_stop(&s->progress);
  uv_close((uv_handle_t *)&s->async, on_handle_closed);
  uv_close((uv_handle_t *)&s->progress, on_handle_closed);
}

/* JetStream redelivers what is not acked within ack_wait. While natka still
 * works on a message (Kafka slow or down), that copy would race the first:
 * "in progress" resets the server's timer, so a message comes back only if
 * natka naks it or dies. */
static void on_progress(uv_timer_t *t) {
  js_source *s = t->data;
  int64_t now = natka__mono_ns();
  int64_t every = (int64_t)uv_timer_get_repeat(t) * 1000000;
  for (js_item *h = s->held; h != NULL; h = h->held_next) {
    if (now - h->since < every)
      continue;
    natsMsg_InProgress(h->msg, NULL);
    h->since = now;
  }
}

static void on_async(uv_async_t *a) {
  js_source *s = a->data;
  uv_mutex_lock(&s->mu);
  js_item *it = s->head;
  s->head = s->tail = NULL;
  int fetching_done = s->fetching_done;
  int thread_done = s->thread_done;
  uv_mutex_unlock(&s->mu);

  while (it != NULL) {
    js_item *next = it->next;
    natka_event *ev = it->ev;
    char *malformed = it->malformed;
    it->ev = NULL;
    it->malformed = NULL;
    it->since = natka__mono_ns();
    it->held_prev = NULL;
    it->held_next = s->held;
    if (s->held != NULL)
      s->held->held_prev = it;
    s->held = it;
    s->base.host->accept(s->base.host, &s->base, ev, it, malformed);
    free(malformed);
    it = next;
  }
  if (fetching_done && !s->stop_reported && s->stopped != NULL) {
    s->stop_reported = 1;
    s->stopped(&s->base);
  }
  if (thread_done) {
    uv_thread_join(&s->thread);
    close_handles(s);
  }
}

static int js_start(natka__source *src) {
  js_source *s = (js_source *)src;
  if (uv_thread_create(&s->thread, fetch_thread, s) != 0)
    return NATKA_ENOMEM;
  s->thread_started = 1;
  uint64_t every = (uint64_t)s->conf->js_ack_wait_ms / 3;
  uv_timer_start(&s->progress, on_progress, every, every);
  return 0;
}

static void set_paused(js_source *s, int paused) {
  uv_mutex_lock(&s->mu);
  s->paused = paused;
  uv_cond_signal(&s->cond);
  uv_mutex_unlock(&s->mu);
}

static void js_pause(natka__source *src) {
  set_paused((js_source *)src, 1);
}
static void js_resume(natka__source *src) {
  set_paused((js_source *)src, 0);
}

static void js_settle(natka__source *src, void *token, natka__settle how,
                      int64_t delay_ms) {
  js_source *s = (js_source *)src;
  js_item *it = token;
  natsMsg *msg = it->msg;
  natsStatus st;
  switch (how) {
  case NATKA__SETTLE_ACK:
    st = natsMsg_Ack(msg, NULL);
    break;
  case NATKA__SETTLE_NAK:
    st = natsMsg_NakWithDelay(msg, delay_ms, NULL);
    break;
  default:
    st = natsMsg_Term(msg, NULL);
    break;
  }
  if (st != NATS_OK)
    natka__debug(s->log,
                 "jetstream: settling a message failed: %s (it will be "
                 "redelivered after jetstream.ack_wait_ms)",
                 natsStatus_GetText(st));
  if (it->held_prev != NULL)
    it->held_prev->held_next = it->held_next;
  else
    s->held = it->held_next;
  if (it->held_next != NULL)
    it->held_next->held_prev = it->held_prev;
  item_free(it);
  uv_mutex_lock(&s->mu);
  s->credit++;
  uv_cond_signal(&s->cond);
  uv_mutex_unlock(&s->mu);
}

static void js_describe(natka__source *src, void *token, char *buf,
                        size_t len) {
  jsMsgMetaData *meta = NULL;
  natsMsg *msg = ((js_item *)token)->msg;
  (void)src;
  if (natsMsg_GetMetaData(&meta, msg) != NATS_OK) {
    snprintf(buf, len, "jetstream subject %s", natsMsg_GetSubject(msg));
    return;
  }
  snprintf(buf, len, "stream %s seq %" PRIu64 " delivery %" PRIu64,
           meta->Stream, meta->Sequence.Stream, meta->NumDelivered);
  jsMsgMetaData_Destroy(meta);
}

static int js_position(natka__source *src, void *token, uint64_t *pos) {
  js_item *it = token;
  (void)src;
  if (it->seq == 0)
    return -1;
  *pos = it->seq;
  return 0;
}

static uint64_t js_floor(natka__source *src) {
  js_source *s = (js_source *)src;
  uv_mutex_lock(&s->mu);
  uint64_t floor = s->ack_floor;
  uv_mutex_unlock(&s->mu);
  return floor;
}

static const char *js_identity(natka__source *src) {
  js_source *s = (js_source *)src;
  uv_mutex_lock(&s->mu);
  memcpy(s->identity_seen, s->identity, sizeof(s->identity_seen));
  uv_mutex_unlock(&s->mu);
  return s->identity_seen[0] ? s->identity_seen : NULL;
}

static int js_attempt(natka__source *src, void *token) {
  (void)src;
  return ((js_item *)token)->delivered;
}

static void js_stop(natka__source *src, void (*done)(natka__source *src)) {
  js_source *s = (js_source *)src;
  s->stopped = done;
  uv_mutex_lock(&s->mu);
  s->stopping = 1;
  uv_cond_signal(&s->cond);
  uv_mutex_unlock(&s->mu);
  if (!s->thread_started && !s->stop_reported) {
    s->stop_reported = 1;
    if (done != NULL)
      done(src);
  }
}

static void js_close(natka__source *src, void (*done)(natka__source *src)) {
  js_source *s = (js_source *)src;
  s->closed = done;
  if (!s->thread_started) {
    close_handles(s);
    return;
  }
  uv_mutex_lock(&s->mu);
  s->stopping = 1;
  s->finish = 1;
  uv_cond_signal(&s->cond);
  uv_mutex_unlock(&s->mu);
  /* on_async joins the thread and closes the handle once it is done. */
}

static const natka__source_vt jetstream_vt = {
    .kind = "jetstream",
    .start = js_start,
    .pause = js_pause,
    .resume = js_resume,
    .settle = js_settle,
    .describe = js_describe,
    .position = js_position,
    .floor = js_floor,
    .attempt = js_attempt,
    .identity = js_identity,
    .stop = js_stop,
    .close = js_close,
};

int natka__source_jetstream_new(natka__source **out, const natka__host *host,
                                char *err, size_t errlen) {
  const natka_config *conf = host->conf;
  int have_mu = 0, have_cond = 0;
  int rc = NATKA_ENOMEM;
  js_source *s = calloc(1, sizeof(*s));
  if (s == NULL)
    goto fail;
  s->base.vt = &jetstream_vt;
  s->base.host = host;
  s->conf = conf;
  s->log = host->log;
  s->credit = conf->js_max_ack_pending;
  if ((s->base.name = natka__strdup(conf->js_stream)) == NULL ||
      !(have_mu = uv_mutex_init(&s->mu) == 0) ||
      !(have_cond = uv_cond_init(&s->cond) == 0))
    goto fail;
  if ((rc = make_options(s, err, errlen)) != 0)
    goto fail;
  rc = NATKA_ENOMEM;
  if (uv_async_init(host->loop, &s->async, on_async) != 0)
    goto fail;
  uv_timer_init(host->loop, &s->progress);
  uv_unref((uv_handle_t *)&s->progress);
  s->async.data = s;
  s->progress.data = s;
  s->handles_open = 2;
  *out = &s->base;
  return 0;

fail:
  if (rc == NATKA_ENOMEM)
    natka__errf(err, errlen, rc, "jetstream: out of memory");
  if (s != NULL) {
    natsOptions_Destroy(s->opts);
    if (s->have_closed_state)
      natka__nats_closed_destroy(&s->closed_state);
    if (have_cond)
      uv_cond_destroy(&s->cond);
    if (have_mu)
      uv_mutex_destroy(&s->mu);
    free(s->base.name);
    free(s);
  }
  return rc;
}
