/*
 * The spool source: offers the disk spool's records to the gateway, oldest
 * first, and acks them in the spool once the gateway settles them.
 *
 * Everything is local, so there is no thread: a uv_idle handle pumps records
 * while there is something to offer (the spool's notify callback starts it
 * again after an append), a timer re-offers nak'ed records once their delay
 * is up, and a second timer runs natka__spool_sync() every
 * spool.fsync_interval_ms, which fsyncs (fsync=interval), persists the floor
 * and deletes consumed segments.
 *
 * Credit bounds memory: every record read from the spool holds its payload
 * here until it is acked or termed (a nak keeps it, for the re-offer), so at
 * most `credit` records are held, in flight or waiting to be offered again.
 * Delivery is at least once (see spool.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "host.h"
#include "pipe.h"
#include "spool.h"
#include "util.h"

#define MAX_CREDIT 1000
#define PUMP_BATCH 128
#define ERROR_BACKOFF_MS 1000

typedef struct spool_item {
  uint64_t seq;
  char *data; /* the record's payload; NULL when it could not be read */
  size_t len;
  char *unreadable; /* why it could not be read, or NULL */
  int64_t due;      /* retry list: when to offer it again (mono ns) */
  int attempts;     /* offers so far, for backoff and retry.max_attempts */
  struct spool_item *prev, *next;
} spool_item;

typedef struct item_list {
  spool_item *head, *tail;
} item_list;

typedef struct spool_source {
  natka__source base;
  natka__log *log;
  const natka_config *conf;
  natka__spool *sp;
  uv_idle_t idle;   /* pumps while there is something to offer */
  uv_timer_t wake;  /* the next retry, or the end of an error backoff */
  uv_timer_t flush; /* natka__spool_sync() */
  int handles_open;
  int started, paused, stopped;
  int64_t credit;      /* records that may still be read from the spool */
  item_list held;      /* handed to the gateway, not settled */
  item_list retry;     /* nak'ed, by due time */
  int64_t error_until; /* mono ns: no reading before this, after an error */
  char last_error[512];
  void (*closed)(natka__source *src);
} spool_source;

static void list_push(item_list *l, spool_item *it) {
  it->next = NULL;
  it->prev = l->tail;
  if (l->tail != NULL)
    l->tail->next = it;
  else
    l->head = it;
  l->tail = it;
}

static void list_remove(item_list *l, spool_item *it) {
  if (it->prev != NULL)
    it->prev->next = it->next;
  else
    l->head = it->next;
  if (it->next != NULL)
    it->next->prev = it->prev;
  else
    l->tail = it->prev;
  it->prev = it->next = NULL;
}

/* Keeps the retry list ordered by due time; naks mostly share one delay, so
 * the walk from the tail is short. */
static void retry_insert(item_list *l, spool_item *it) {
  spool_item *after = l->tail;
  while (after != NULL && after->due > it->due)
    after = after->prev;
  if (after == NULL) {
    it->prev = NULL;
    it->next = l->head;
    if (l->head != NULL)
      l->head->prev = it;
    else
      l->tail = it;
    l->head = it;
    return;
  }
  it->prev = after;
  it->next = after->next;
  if (after->next != NULL)
    after->next->prev = it;
  else
    l->tail = it;
  after->next = it;
}

static void item_free(spool_item *it) {
  free(it->data);
  free(it->unreadable);
  free(it);
}

/* Logs a problem once until it changes. */
static void problem(spool_source *s, const char *msg) {
  if (strcmp(msg, s->last_error) == 0)
    return;
  natka__error(s->log, "%s", msg);
  snprintf(s->last_error, sizeof(s->last_error), "%s", msg);
}

static int can_offer(const spool_source *s) {
  return s->started && !s->paused && !s->stopped;
}

static void on_idle(uv_idle_t *h);

static void kick(spool_source *s) {
  if (can_offer(s))
    uv_idle_start(&s->idle, on_idle);
}

static void on_wake(uv_timer_t *t) {
  kick(t->data);
}

static void on_append(void *data) {
  spool_source *s = data;
  if (s->credit > 0)
    kick(s);
}

/* Arms `wake` for the first retry due, or the end of an error backoff. */
static void arm_wake(spool_source *s, int64_t now) {
  int64_t at = s->retry.head != NULL ? s->retry.head->due : INT64_MAX;
  if (s->error_until > now && s->error_until < at)
    at = s->error_until;
  uv_timer_stop(&s->wake);
  if (at == INT64_MAX || !can_offer(s))
    return;
  uint64_t ms = at > now ? (uint64_t)((at - now + 999999) / 1000000) : 0;
  uv_timer_start(&s->wake, on_wake, ms, 0);
}

/* Hands one held item to the gateway; a record that does not decode goes
 * as malformed, so it reaches the DLQ instead of vanishing. Out of memory,
 * it waits in the retry list. */
static void offer(spool_source *s, spool_item *it) {
  char why[512], id[64];
  natka_event *ev = NULL;
  const char *malformed = it->data != NULL ? NULL
                          : it->unreadable != NULL
                              ? it->unreadable
                              : "spool record unreadable (checksum)";
  int rc = it->data != NULL ? natka__spool_event_unpack(it->data, it->len, &ev)
                            : NATKA_EMALFORMED;
  if (rc == NATKA_ENOMEM)
    goto later;
  if (rc != 0 && it->data != NULL) {
    snprintf(why, sizeof(why),
             "spool record %" PRIu64 " in %s is not an event (%s)", it->seq,
             natka__spool_dir(s->sp), natka_strerror(rc));
    malformed = why;
  }
  snprintf(id, sizeof(id), "spool:%" PRIu64, it->seq);
  if (ev == NULL &&
      (natka_event_new(&ev) != 0 || natka_event_set_id(ev, id) != 0))
    goto later;
  it->attempts++;
  list_push(&s->held, it);
  s->base.host->accept(s->base.host, &s->base, ev, it, malformed);
  return;

later:
  natka_event_free(ev);
  it->due = natka__mono_ns() + (int64_t)ERROR_BACKOFF_MS * 1000000;
  retry_insert(&s->retry, it);
}

/* Reads the next record into a new held item; 1 offered, 0 nothing now. */
static int read_one(spool_source *s, int64_t now) {
  char err[512];
  natka__spool_rec rec;
  spool_item *it = calloc(1, sizeof(*it));
  if (it == NULL) {
    s->error_until = now + (int64_t)ERROR_BACKOFF_MS * 1000000;
    problem(s, "spool: out of memory; retrying");
    return 0;
  }
  int rc = natka__spool_next(s->sp, &rec, err, sizeof(err));
  if (rc == 0 || rc == NATKA_EIO || rc == NATKA_ENOMEM) {
    free(it);
    if (rc != 0) {
      s->error_until = now + (int64_t)ERROR_BACKOFF_MS * 1000000;
      problem(s, err);
    }
    return 0;
  }
  it->seq = rec.seq;
  it->data = rec.data;
  it->len = rec.len;
  if (rc == NATKA_EMALFORMED) {
    natka__error(s->log, "%s", err);
    it->unreadable = natka__strdup(err);
  }
  s->last_error[0] = '\0';
  s->credit--;
  offer(s, it);
  return 1;
}

static void on_idle(uv_idle_t *h) {
  spool_source *s = h->data;
  int64_t now = natka__mono_ns();
  int budget = PUMP_BATCH;
  while (budget-- > 0 && can_offer(s)) {
    spool_item *it = s->retry.head;
    if (it != NULL && it->due <= now) {
      list_remove(&s->retry, it);
      offer(s, it);
      continue;
    }
    if (s->credit <= 0 || s->error_until > now || !read_one(s, now))
      break;
  }
  if (budget < 0 && can_offer(s))
    return; /* more to do: stay on for the next loop iteration */
  uv_idle_stop(&s->idle);
  arm_wake(s, now);
}

static void on_flush(uv_timer_t *t) {
  spool_source *s = t->data;
  char err[512];
  if (natka__spool_sync_due(s->sp) &&
      natka__spool_sync(s->sp, err, sizeof(err)) != 0)
    problem(s, err);
}

/* ------------------------------------------------------------ the vtable */

static int spool_start(natka__source *src) {
  spool_source *s = (spool_source *)src;
  uint64_t every = (uint64_t)s->conf->spool_fsync_interval_ms;
  s->started = 1;
  natka__spool_set_notify(s->sp, on_append, s);
  uv_timer_start(&s->flush, on_flush, every, every);
  kick(s);
  return 0;
}

static void spool_pause(natka__source *src) {
  spool_source *s = (spool_source *)src;
  s->paused = 1;
  uv_idle_stop(&s->idle);
  uv_timer_stop(&s->wake);
}

static void spool_resume(natka__source *src) {
  spool_source *s = (spool_source *)src;
  s->paused = 0;
  kick(s);
}

static void spool_settle(natka__source *src, void *token, natka__settle how,
                         int64_t delay_ms) {
  spool_source *s = (spool_source *)src;
  spool_item *it = token;
  list_remove(&s->held, it);
  if (how == NATKA__SETTLE_NAK) {
    int64_t now = natka__mono_ns();
    it->due = now + (delay_ms > 0 ? delay_ms : 0) * 1000000;
    retry_insert(&s->retry, it);
    if (!uv_is_active((uv_handle_t *)&s->idle))
      arm_wake(s, now);
    return;
  }
  if (natka__spool_ack(s->sp, it->seq) != 0)
    natka__warn(s->log, "spool: record %" PRIu64 " settled twice", it->seq);
  item_free(it);
  s->credit++;
  kick(s);
}

static void spool_describe(natka__source *src, void *token, char *buf,
                           size_t len) {
  spool_source *s = (spool_source *)src;
  snprintf(buf, len, "spool %s seq %" PRIu64, natka__spool_dir(s->sp),
           ((spool_item *)token)->seq);
}

static int spool_attempt(natka__source *src, void *token) {
  (void)src;
  return ((spool_item *)token)->attempts;
}

/* Spool sequences are positions for checkpoints (txn.c), like JetStream's:
 * a record replayed after a crash between a commit and its ack is found
 * there. */
static int spool_position(natka__source *src, void *token, uint64_t *pos) {
  (void)src;
  *pos = ((spool_item *)token)->seq;
  return 0;
}

static uint64_t spool_floor(natka__source *src) {
  spool_source *s = (spool_source *)src;
  natka__spool_stats st;
  natka__spool_get_stats(s->sp, &st);
  return st.floor > 0 ? st.floor - 1 : 0; /* every seq below st.floor */
}

static void spool_stop(natka__source *src, void (*done)(natka__source *src)) {
  spool_source *s = (spool_source *)src;
  s->stopped = 1;
  uv_idle_stop(&s->idle);
  uv_timer_stop(&s->wake);
  natka__spool_set_notify(s->sp, NULL, NULL);
  if (done != NULL)
    done(src);
}

static void free_list(item_list *l) {
  while (l->head != NULL) {
    spool_item *it = l->head;
    l->head = it->next;
    item_free(it);
  }
  l->tail = NULL;
}

static void on_handle_closed(uv_handle_t *h) {
  spool_source *s = h->data;
  if (--s->handles_open > 0)
    return;
  if (s->closed != NULL)
    s->closed(&s->base);
  /* Unsettled and nak'ed records stay in the spool, above the floor: the
   * next run offers them again. */
  free_list(&s->held);
  free_list(&s->retry);
  free(s->base.name);
  free(s);
}

static void spool_close(natka__source *src, void (*done)(natka__source *src)) {
  spool_source *s = (spool_source *)src;
  s->closed = done;
  s->stopped = 1;
  natka__spool_set_notify(s->sp, NULL, NULL);
  uv_idle_stop(&s->idle);
  uv_timer_stop(&s->wake);
  uv_timer_stop(&s->flush);
  uv_close((uv_handle_t *)&s->idle, on_handle_closed);
  uv_close((uv_handle_t *)&s->wake, on_handle_closed);
  uv_close((uv_handle_t *)&s->flush, on_handle_closed);
}

static const natka__source_vt spool_vt = {
    .kind = "spool",
    .start = spool_start,
    .pause = spool_pause,
    .resume = spool_resume,
    .settle = spool_settle,
    .describe = spool_describe,
    .attempt = spool_attempt,
    .position = spool_position,
    .floor = spool_floor,
    .stop = spool_stop,
    .close = spool_close,
};

/*
 * The spool's incarnation: a UUID kept in <dir>/id, made when the directory
 * first holds a spool. Checkpoints name the spool by it, so a spool that was
 * wiped (its sequences start again at 1) does not inherit the checkpoint of
 * the one before. 0, or NATKA_EIO with the path in err.
 */
static int spool_identity(const char *dir, char *out, size_t len, char *err,
                          size_t errlen) {
  char path[4096], tmp[4200], id[40] = "";
  snprintf(path, sizeof(path), "%s/id", dir);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t n = read(fd, id, 36);
    close(fd);
    if (n == 36) {
      id[36] = '\0';
      snprintf(out, len, "%s#%s", dir, id);
      return 0;
    }
  }
  /* Missing or unreadable: a new incarnation (everything on disk is then
   * delivered as new, at least once). */
  snprintf(tmp, sizeof(tmp), "%s.tmp", path);
  if (natka__uuid7(id) != 0 ||
      (fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640)) < 0)
    return natka__errf(err, errlen, NATKA_EIO, "spool: cannot write %s: %s",
                       tmp, strerror(errno));
  int ok = write(fd, id, 36) == 36 && fsync(fd) == 0;
  close(fd);
  if (!ok || rename(tmp, path) != 0)
    return natka__errf(err, errlen, NATKA_EIO, "spool: cannot write %s: %s",
                       path, strerror(errno));
  snprintf(out, len, "%s#%s", dir, id);
  return 0;
}

int natka__source_spool_new(natka__source **out, const natka__host *host,
                            natka__spool *sp, char *err, size_t errlen) {
  const natka_config *conf = host->conf;
  uv_loop_t *loop = host->loop;
  char name[4200];
  int rc =
      spool_identity(natka__spool_dir(sp), name, sizeof(name), err, errlen);
  if (rc != 0)
    return rc;
  spool_source *s = calloc(1, sizeof(*s));
  if (s == NULL || (s->base.name = natka__strdup(name)) == NULL) {
    free(s);
    return natka__errf(err, errlen, NATKA_ENOMEM, "spool: out of memory");
  }
  s->base.vt = &spool_vt;
  s->base.host = host;
  s->conf = conf;
  s->log = host->log;
  s->sp = sp;
  s->credit = conf->max_inflight < MAX_CREDIT ? conf->max_inflight : MAX_CREDIT;
  uv_idle_init(loop, &s->idle);
  uv_timer_init(loop, &s->wake);
  uv_timer_init(loop, &s->flush);
  uv_unref((uv_handle_t *)&s->wake);
  uv_unref((uv_handle_t *)&s->flush);
  s->idle.data = s->wake.data = s->flush.data = s;
  s->handles_open = 3;
  *out = &s->base;
  return 0;
}

/* ------------------------------------------------------------ opening */

int natka__spool_open_conf(natka__spool **out, const natka_config *conf,
                           natka__log *log, char *err, size_t errlen) {
  natka__spool_report rep;
  natka__spool_opts o = {
      .max_bytes = (uint64_t)conf->spool_max_bytes,
      .segment_bytes = (uint64_t)conf->spool_segment_bytes,
  };
  if (natka__spool_fsync_parse(conf->spool_fsync, &o.fsync) != 0)
    return natka__errf(err, errlen, NATKA_ECONFIG,
                       "spool.fsync must be always, interval or never, got "
                       "'%s'",
                       conf->spool_fsync);
  int rc = natka__spool_open(out, conf->spool_dir, &o, &rep, err, errlen);
  if (rc != 0)
    return rc;
  for (size_t i = 0; i < rep.nproblems; i++) {
    const natka__spool_problem *p = &rep.problems[i];
    if (p->floor_file)
      natka__warn(log,
                  "spool: %s: %s; every record on disk will be delivered "
                  "again",
                  p->path, p->what);
    else if (p->ignored) /* `what` says what becomes of it */
      natka__warn(log, "spool: %s: %s", p->path, p->what);
    else
      natka__warn(log,
                  "spool: %s offset %" PRIu64 ": %s (%" PRIu64
                  " good record(s) before it, %" PRIu64 " byte(s) %s)",
                  p->path, p->offset, p->what, p->records_before, p->bytes,
                  p->tail ? "cut off: torn tail"
                          : "skipped: the rest of the segment");
  }
  natka__info(log,
              "spool: %s: %zu segment(s), %" PRIu64
              " record(s) pending, %" PRIu64 " of %" PRIu64
              " bytes used, fsync %s",
              conf->spool_dir, rep.segments, rep.pending, rep.bytes,
              o.max_bytes, conf->spool_fsync);
  natka__spool_report_free(&rep);
  return 0;
}
