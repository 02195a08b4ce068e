/*
 * Kafka transactions over batches of flights; see txn.h for the model.
 *
 * States: IDLE (no transaction open), OPEN (members join), CLOSING (full or
 * old enough: no new members, waiting for the members' reports), ENDING (a
 * commit or abort runs on the threadpool). New flights pass the gate in
 * IDLE and OPEN only.
 */
#include "txn.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "util.h"

#define RETRY_MS 200

typedef enum { T_IDLE, T_OPEN, T_CLOSING, T_ENDING } txn_state;

typedef struct flight_list {
  natka__flight *head, *tail;
} flight_list;

/* The positions of the flights in natka, per source: a hash set with linear
 * probing (keys never 0: positions start at 1). */
typedef struct pos_slot {
  const natka__source *src;
  uint64_t pos;
} pos_slot;

typedef struct pos_set {
  pos_slot *v;
  size_t cap, n; /* cap: a power of two, or 0 */
} pos_set;

struct natka__txn {
  natka *gw;
  txn_state state;
  flight_list members;
  int64_t nmembers;
  int64_t incomplete; /* members whose sends are not all reported */
  flight_list waiting;
  natka__flight *resuming;
  natka__checkpoint committed; /* what committed transactions hold */
  natka__checkpoint next;      /* the same, with the ending one's members */
  uv_timer_t timer;            /* age of the open transaction; retries */
  int timer_open;
  int committing; /* what the ENDING state does: commit (1) or abort */
  int64_t max_members;
  int ckpt_rc;       /* writing this transaction's checkpoint failed */
  int retry_pending; /* on_retry is due on the timer */
  int64_t ending_ns; /* when the commit or abort was asked (mono) */
  pos_set inflight;
  int closing;
  void (*closed)(void *data);
  void *closed_data;
};

static void push(flight_list *l, natka__flight *f) {
  f->txn_next = NULL;
  if (l->tail != NULL)
    l->tail->txn_next = f;
  else
    l->head = f;
  l->tail = f;
}

static natka__flight *pop(flight_list *l) {
  natka__flight *f = l->head;
  if (f != NULL && (l->head = f->txn_next) == NULL)
    l->tail = NULL;
  return f;
}

/* "jetstream EVENTS@1764614400000000000": a source's name in the
 * checkpoint; 0 when the source does not know yet what it reads. */
static int source_key(natka__source *src, char *buf, size_t len) {
  const char *id = src->vt->identity ? src->vt->identity(src) : src->name;
  if (id == NULL)
    return -1;
  snprintf(buf, len, "%s %s", src->vt->kind, id);
  return 0;
}

static void maybe_end(natka__txn *t);
static void resume_waiting(natka__txn *t);
static void stop_joining(natka__txn *t);

static void on_timer(uv_timer_t *h) {
  natka__txn *t = h->data;
  if (t->state == T_OPEN) {
    stop_joining(t);
    maybe_end(t);
  }
}

static void on_timer_closed(uv_handle_t *h) {
  natka__txn *t = h->data;
  t->timer_open = 0;
  if (t->closed != NULL && t->state != T_ENDING)
    t->closed(t->closed_data);
}

int natka__txn_new(natka__txn **out, natka *gw, const char *checkpoint,
                   char *err, size_t errlen) {
  natka__txn *t = calloc(1, sizeof(*t));
  if (t == NULL)
    return natka__errf(err, errlen, NATKA_ENOMEM, "out of memory");
  t->gw = gw;
  if (checkpoint != NULL) {
    char why[512];
    int rc = natka__checkpoint_decode(
        &t->committed, checkpoint, strlen(checkpoint),
        gw->sink->vt->txn_id(gw->sink), why, sizeof(why));
    if (rc != 0) {
      free(t);
      return natka__errf(err, errlen, rc,
                         "%s (kafka.checkpoint_topic '%s', key '%s'); natka "
                         "will not guess what was committed: produce a "
                         "tombstone (null value) for that key to start from "
                         "JetStream's ack floor",
                         why, gw->conf->kafka_checkpoint_topic,
                         gw->sink->vt->txn_id(gw->sink));
    }
  }
  /* A transaction cannot hold more than JetStream lets natka have unacked
   * (its members are acked only after the commit): waiting for more would
   * only wait for kafka.transaction_ms. So it closes a batch short of that. */
  const natka_config *c = gw->conf;
  t->max_members = c->kafka_txn_max_events;
  if (c->js_enabled) {
    int64_t room = c->js_max_ack_pending - c->js_batch;
    room = room < 1 ? 1 : room;
    t->max_members = room < t->max_members ? room : t->max_members;
  }
  if (c->max_inflight * 3 / 4 < t->max_members)
    t->max_members = c->max_inflight * 3 / 4 > 0 ? c->max_inflight * 3 / 4 : 1;
  uv_timer_init(gw->loop, &t->timer);
  t->timer.data = t;
  t->timer_open = 1;
  *out = t;
  return 0;
}

static size_t slot_of(const pos_set *ps, const natka__source *src,
                      uint64_t pos) {
  uint64_t h = (pos ^ (uint64_t)(uintptr_t)src) * 0x9e3779b97f4a7c15ULL;
  return (size_t)(h >> 17) & (ps->cap - 1);
}

static int pos_insert(pos_set *ps, const natka__source *src, uint64_t pos) {
  if ((ps->n + 1) * 2 > ps->cap) {
    pos_set grown = {calloc(ps->cap ? ps->cap * 2 : 1024, sizeof(pos_slot)),
                     ps->cap ? ps->cap * 2 : 1024, 0};
    if (grown.v == NULL)
      return NATKA_ENOMEM;
    for (size_t i = 0; i < ps->cap; i++)
      if (ps->v[i].pos != 0)
        pos_insert(&grown, ps->v[i].src, ps->v[i].pos);
    free(ps->v);
    *ps = grown;
  }
  size_t i = slot_of(ps, src, pos);
  while (ps->v[i].pos != 0) {
    if (ps->v[i].pos == pos && ps->v[i].src == src)
      return 1;
    i = (i + 1) & (ps->cap - 1);
  }
  ps->v[i] = (pos_slot){src, pos};
  ps->n++;
  return 0;
}

/* Linear probing's deletion: later entries of the cluster move back into
 * the hole when their home slot allows it. */
static void pos_remove(pos_set *ps, const natka__source *src, uint64_t pos) {
  if (ps->cap == 0)
    return;
  size_t i = slot_of(ps, src, pos);
  while (ps->v[i].pos != 0 && (ps->v[i].pos != pos || ps->v[i].src != src))
    i = (i + 1) & (ps->cap - 1);
  if (ps->v[i].pos == 0)
    return;
  ps->n--;
  for (size_t j = (i + 1) & (ps->cap - 1); ps->v[j].pos != 0;
       j = (j + 1) & (ps->cap - 1)) {
    size_t home = slot_of(ps, ps->v[j].src, ps->v[j].pos);
    /* Can v[j] move to i? Only if home is not in (i, j] cyclically. */
    if ((j > i && (home <= i || home > j)) ||
        (j < i && home <= i && home > j)) {
      ps->v[i] = ps->v[j];
      i = j;
    }
  }
  ps->v[i] = (pos_slot){NULL, 0};
}

int natka__txn_track(natka__txn *t, natka__flight *f) {
  uint64_t pos;
  if (f->src == NULL || f->src->vt->position == NULL ||
      f->src->vt->position(f->src, f->token, &pos) != 0 || pos == 0)
    return 0;
  int rc = pos_insert(&t->inflight, f->src, pos);
  if (rc == 0) {
    f->tracked = 1;
    f->tracked_pos = pos;
  }
  return rc == 1;
}

void natka__txn_untrack(natka__txn *t, natka__flight *f) {
  if (f->tracked)
    pos_remove(&t->inflight, f->src, f->tracked_pos);
  f->tracked = 0;
}

void natka__txn_free(natka__txn *t) {
  if (t == NULL)
    return;
  free(t->inflight.v);
  natka__checkpoint_clear(&t->committed);
  natka__checkpoint_clear(&t->next);
  free(t);
}

int natka__txn_gate(natka__txn *t, natka__flight *f,
                    void (*resume)(natka__flight *f)) {
  if (t->resuming == f) {
    t->resuming = NULL;
    return 0;
  }
  if (t->closing)
    return 0; /* joins fail from now on: the flight is nak'ed */
  if ((t->state == T_IDLE || t->state == T_OPEN) && t->waiting.head == NULL)
    return 0;
  f->txn_resume = resume;
  push(&t->waiting, f);
  return 1;
}

int natka__txn_join(natka__txn *t, natka__flight *f) {
  natka *gw = t->gw;
  char err[512];
  if (t->closing || (t->state != T_IDLE && t->state != T_OPEN))
    return NATKA_EBUSY;
  if (t->state == T_IDLE) {
    if (gw->sink->vt->txn_begin(gw->sink, err, sizeof(err)) != 0) {
      natka__warn(&gw->log, "%s", err);
      return NATKA_EBUSY; /* retriable: the event is nak'ed, not refused */
    }
    t->state = T_OPEN;
    uv_timer_start(&t->timer, on_timer, (uint64_t)gw->conf->kafka_txn_ms, 0);
  }
  f->txn_member = 1;
  if (f->src != NULL && f->src->vt->position != NULL &&
      f->src->vt->position(f->src, f->token, &f->pos) == 0)
    f->has_pos = 1;
  push(&t->members, f);
  t->nmembers++;
  t->incomplete++;
  if (t->nmembers >= t->max_members)
    stop_joining(t);
  return 0;
}

void natka__txn_park(natka__txn *t, natka__flight *f, natka_fate fate,
                     natka__settle how) {
  f->txn_fate = fate;
  f->txn_how = how;
  t->incomplete--;
  /* A failed member dooms the transaction: end it without more members. */
  if (fate != NATKA_DELIVERED && fate != NATKA_DEADLETTERED &&
      t->state == T_OPEN && !t->closing)
    stop_joining(t);
  maybe_end(t);
}

int natka__txn_committed(natka__txn *t, natka__source *src, void *token) {
  char key[256];
  uint64_t pos;
  if (src->vt->position == NULL || src->vt->position(src, token, &pos) != 0 ||
      source_key(src, key, sizeof(key)) != 0)
    return 0;
  for (size_t i = 0; i < t->committed.n; i++)
    if (strcmp(t->committed.v[i].name, key) == 0)
      return pos <= t->committed.v[i].floor ||
             natka__seqset_has(&t->committed.v[i].done, pos);
  return 0;
}

/* Settles every member through `how` (one of the flight functions). */
static void settle_members(natka__txn *t, int committed) {
  natka__flight *f;
  t->nmembers = 0;
  t->incomplete = 0;
  while ((f = pop(&t->members)) != NULL) {
    f->txn_member = 0;
    if (committed)
      natka__flight_settle(f, f->txn_fate, f->txn_how);
    else
      natka__flight_aborted(f);
  }
}

/* What the new checkpoint holds: the committed one, plus this transaction's
 * members, less what each source will never hand over again. */
static int build_next(natka__txn *t) {
  char key[256];
  natka__checkpoint_clear(&t->next);
  for (size_t i = 0; i < t->committed.n; i++) {
    natka__ckpt_source *c = &t->committed.v[i];
    natka__ckpt_source *n = natka__checkpoint_source(&t->next, c->name);
    if (n == NULL || natka__seqset_copy(&n->done, &c->done) != 0)
      return NATKA_ENOMEM;
    n->floor = c->floor;
  }
  for (natka__flight *f = t->members.head; f != NULL; f = f->txn_next) {
    if (!f->has_pos || source_key(f->src, key, sizeof(key)) != 0)
      continue;
    natka__ckpt_source *n = natka__checkpoint_source(&t->next, key);
    if (n == NULL || natka__seqset_add(&n->done, f->pos) != 0)
      return NATKA_ENOMEM;
  }
  for (size_t i = 0; i < t->gw->nsources; i++) {
    natka__source *src = t->gw->sources[i];
    if (src->vt->floor == NULL || source_key(src, key, sizeof(key)) != 0)
      continue;
    for (size_t j = 0; j < t->next.n; j++) {
      natka__ckpt_source *n = &t->next.v[j];
      uint64_t floor = src->vt->floor(src);
      if (strcmp(n->name, key) != 0 || floor <= n->floor)
        continue;
      n->floor = floor;
      natka__seqset_prune(&n->done, floor);
    }
  }
  return 0;
}

static void end(natka__txn *t, int commit);

static void after_end(natka__sink *sink, natka__txn_status st, const char *msg,
                      void *data);

/* librdkafka asks for the same call again after a passing failure. */
static void on_retry(uv_timer_t *h) {
  natka__txn *t = h->data;
  t->retry_pending = 0;
  t->gw->sink->vt->txn_end(t->gw->sink, t->committing, after_end, t);
}

/* A transaction whose members did not all succeed cannot be committed
 * without committing a record of an event that is redelivered. */
static int all_succeeded(natka__txn *t) {
  for (natka__flight *f = t->members.head; f != NULL; f = f->txn_next)
    if (f->txn_fate != NATKA_DELIVERED && f->txn_fate != NATKA_DEADLETTERED)
      return 0;
  return 1;
}

/*
 * Takes no new members from here on and writes the checkpoint into the
 * transaction at once, while the last members' reports are still on their
 * way: their positions are known since they joined, and should one of them
 * fail, the checkpoint is aborted with the rest. This saves the commit a
 * produce round trip.
 */
static void stop_joining(natka__txn *t) {
  natka *gw = t->gw;
  t->state = T_CLOSING;
  uv_timer_stop(&t->timer);
  char *rec =
      build_next(t) == 0
          ? natka__checkpoint_encode(&t->next, gw->sink->vt->txn_id(gw->sink))
          : NULL;
  t->ckpt_rc = rec != NULL
                   ? gw->sink->vt->txn_checkpoint(gw->sink, rec, strlen(rec))
                   : NATKA_ENOMEM;
  free(rec);
}

static void end(natka__txn *t, int commit) {
  natka *gw = t->gw;
  t->state = T_ENDING;
  if (commit && t->ckpt_rc != 0) {
    natka__warn(&gw->log,
                "kafka: cannot write the checkpoint (%s); aborting the "
                "transaction",
                natka_strerror(t->ckpt_rc));
    commit = 0;
  }
  if (!commit)
    gw->stats.txn_aborts++;
  t->committing = commit;
  t->ending_ns = natka__mono_ns();
  gw->sink->vt->txn_end(gw->sink, commit, after_end, t);
}

static void maybe_end(natka__txn *t) {
  /* Draining, or the sources paused by backpressure: nothing more is
   * coming until this transaction is settled. */
  if ((t->gw->state >= GW_STOPPING || t->gw->paused) && t->state == T_OPEN &&
      !t->closing)
    stop_joining(t);
  if (t->state != T_CLOSING || t->incomplete > 0)
    return;
  if (t->closing) {
    settle_members(t, 0);
    t->state = T_IDLE;
    return;
  }
  end(t, all_succeeded(t));
}

static void after_end(natka__sink *sink, natka__txn_status st, const char *msg,
                      void *data) {
  natka__txn *t = data;
  natka *gw = t->gw;
  (void)sink;
  if (st == NATKA__TXN_RETRY && !t->closing) {
    natka__warn(&gw->log, "kafka: transaction: %s (retrying)", msg);
    t->retry_pending = 1;
    uv_timer_start(&t->timer, on_retry, RETRY_MS, 0);
    return;
  }
  if (st == NATKA__TXN_ABORT && t->committing && !t->closing) {
    natka__warn(&gw->log,
                "kafka: transaction of %" PRId64 " event(s) failed (%s); "
                "aborting it, its events are retried",
                t->nmembers, msg);
    natka__checkpoint_clear(&t->next);
    gw->stats.txn_aborts++;
    t->committing = 0;
    gw->sink->vt->txn_end(gw->sink, 0, after_end, t);
    return;
  }
  if (st == NATKA__TXN_OK && t->committing) {
    gw->stats.txn_commits++;
    natka__debug(&gw->log,
                 "kafka: transaction of %" PRId64 " event(s) committed in "
                 "%.1f ms",
                 t->nmembers, (natka__mono_ns() - t->ending_ns) / 1e6);
    natka__checkpoint tmp = t->committed;
    t->committed = t->next;
    t->next = tmp;
    natka__checkpoint_clear(&t->next);
    settle_members(t, 1);
  } else {
    /* Aborted; or fenced, fatal, or given up while closing: the gateway is
     * stopping then, and whether a commit took hold is for the next start to
     * read in the checkpoint. */
    natka__checkpoint_clear(&t->next);
    settle_members(t, 0);
  }
  t->state = T_IDLE;
  if (t->closing) {
    if (!t->timer_open && t->closed != NULL)
      t->closed(t->closed_data);
    return;
  }
  resume_waiting(t);
}

void natka__txn_flush(natka__txn *t) {
  if (t->state == T_OPEN && !t->closing) {
    stop_joining(t);
    maybe_end(t);
  }
}

/* Resumes the flights that waited for the last transaction, in order, as
 * long as they may join. */
static void resume_waiting(natka__txn *t) {
  while (t->waiting.head != NULL &&
         (t->closing || t->state == T_IDLE || t->state == T_OPEN)) {
    natka__flight *f = pop(&t->waiting);
    t->resuming = f;
    f->txn_resume(f);
    if (t->resuming == f) /* it did not pass the gate again */
      t->resuming = NULL;
  }
}

void natka__txn_close(natka__txn *t, void (*done)(void *data), void *data) {
  t->closing = 1;
  t->closed = done;
  t->closed_data = data;
  /* Waiting flights are nak'ed where they are: going on would take them to
   * sinks that are closing. */
  natka__flight *f;
  while ((f = pop(&t->waiting)) != NULL) {
    f->err = NATKA_ESTOPPED;
    free(f->errmsg);
    f->errmsg = natka__strdup("natka stopped before it was sent");
    f->txn_member = 0;
    natka__flight_settle(f, NATKA_FAILED, NATKA__SETTLE_NAK);
  }
  /* A commit waiting to be tried again: it will not be. */
  if (t->retry_pending) {
    t->retry_pending = 0;
    settle_members(t, 0);
    t->state = T_IDLE;
  }
  if (t->state == T_OPEN || t->state == T_CLOSING) {
    if (t->incomplete == 0) {
      settle_members(t, 0);
      t->state = T_IDLE;
    } else {
      t->state = T_CLOSING; /* members settle as their reports come in */
    }
  }
  uv_timer_stop(&t->timer);
  uv_close((uv_handle_t *)&t->timer, on_timer_closed);
}
