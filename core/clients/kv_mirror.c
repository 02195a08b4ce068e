#include "kv_mirror.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>

#include "natka/error.h"
#include "nats_conn.h"
#include "secret.h"
#include "util.h"

#define WATCH_POLL_MS 100 /* also how soon queued posts go out */
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 10000

typedef enum { ITEM_RESET, ITEM_PUT, ITEM_DELETE, ITEM_SYNCED } item_kind;

/* From the thread to the loop. */
typedef struct item {
  item_kind kind;
  natka__kv_entry e;
  struct item *next;
} item;

/* From the loop to the thread. */
typedef struct post {
  char *bucket, *key, *subject, *value;
  struct post *next;
} post;

struct natka__kv_mirror {
  char *url; /* credentials hidden: for messages */
  char *bucket;
  int create, history;
  natka__log *log;
  natka__kv_mirror_cb cb;
  void *data;

  uv_thread_t thread;
  int started;
  uv_mutex_t mu;
  uv_cond_t cond;
  /* Guarded by mu. */
  item *in_head, *in_tail;
  post *out_head, *out_tail;
  int stopping, thread_done;

  /* Loop side: the copy, sorted by key. */
  uv_async_t async;
  natka__kv_entry *entries;
  size_t n, cap;
  uint64_t revision;
  int synced, changed;
  void (*closed)(void *data);
  void *closed_data;

  /* Thread side. */
  natsOptions *opts;
  natsConnection *nc;
  jsCtx *js;
  kvStore *kv;
  kvWatcher *watcher;
  kvStore *out_kv; /* bucket of the last post */
  char last_problem[512];
};

/* ------------------------------------------------------------ thread */

static void problem(natka__kv_mirror *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void problem(natka__kv_mirror *m, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (strcmp(msg, m->last_problem) != 0) {
    natka__warn(m->log, "kv %s: %s (retrying)", m->bucket, msg);
    snprintf(m->last_problem, sizeof(m->last_problem), "%s", msg);
  }
}

static int stopping(natka__kv_mirror *m) {
  uv_mutex_lock(&m->mu);
  int stopping = m->stopping;
  uv_mutex_unlock(&m->mu);
  return stopping;
}

static int nap(natka__kv_mirror *m, int64_t ms) {
  uv_mutex_lock(&m->mu);
  if (!m->stopping)
    uv_cond_timedwait(&m->cond, &m->mu, (uint64_t)ms * 1000000);
  int stopping = m->stopping;
  uv_mutex_unlock(&m->mu);
  return stopping;
}

static void push(natka__kv_mirror *m, item *it) {
  uv_mutex_lock(&m->mu);
  if (m->in_tail != NULL)
    m->in_tail->next = it;
  else
    m->in_head = it;
  m->in_tail = it;
  uv_mutex_unlock(&m->mu);
  uv_async_send(&m->async);
}

static void push_marker(natka__kv_mirror *m, item_kind kind) {
  item *it = calloc(1, sizeof(*it));
  if (it != NULL) {
    it->kind = kind;
    push(m, it);
  }
}

static int push_entry(natka__kv_mirror *m, kvEntry *e) {
  item *it = calloc(1, sizeof(*it));
  if (it == NULL)
    return NATKA_ENOMEM;
  kvOperation op = kvEntry_Operation(e);
  it->kind = op == kvOp_Put ? ITEM_PUT : ITEM_DELETE;
  it->e.key = natka__strdup(kvEntry_Key(e));
  it->e.len = (size_t)kvEntry_ValueLen(e);
  it->e.value = natka__memdup(kvEntry_Value(e), it->e.len);
  it->e.revision = kvEntry_Revision(e);
  if (it->e.key == NULL || it->e.value == NULL) {
    free(it->e.key);
    free(it->e.value);
    free(it);
    return NATKA_ENOMEM;
  }
  push(m, it);
  return 0;
}

static int open_bucket(natka__kv_mirror *m) {
  natsStatus st;
  if (m->nc == NULL) {
    st = natsConnection_Connect(&m->nc, m->opts);
    if (st != NATS_OK) {
      m->nc = NULL;
      problem(m, "cannot connect to %s: %s", m->url, natka__nats_why(st));
      return -1;
    }
  }
  if (m->js == NULL &&
      (st = natsConnection_JetStream(&m->js, m->nc, NULL)) != NATS_OK) {
    m->js = NULL;
    problem(m, "no JetStream: %s", natsStatus_GetText(st));
    return -1;
  }
  if (m->kv == NULL) {
    st = js_KeyValue(&m->kv, m->js, m->bucket);
    if (st == NATS_NOT_FOUND && m->create) {
      kvConfig kc;
      kvConfig_Init(&kc);
      kc.Bucket = m->bucket;
      kc.History = (uint8_t)m->history;
      st = js_CreateKeyValue(&m->kv, m->js, &kc);
      if (st == NATS_OK)
        natka__info(m->log, "kv %s: created the bucket", m->bucket);
    }
    if (st != NATS_OK) {
      m->kv = NULL;
      problem(m, "%s",
              st == NATS_NOT_FOUND ? "bucket does not exist"
                                   : natsStatus_GetText(st));
      return -1;
    }
  }
  if (m->watcher == NULL) {
    st = kvStore_WatchAll(&m->watcher, m->kv, NULL);
    if (st != NATS_OK) {
      m->watcher = NULL;
      problem(m, "cannot watch: %s", natsStatus_GetText(st));
      return -1;
    }
    /* A fresh watch replays the bucket: the loop rebuilds its copy. */
    push_marker(m, ITEM_RESET);
    m->last_problem[0] = '\0';
  }
  return 0;
}

static void send_post(natka__kv_mirror *m, post *p) {
  natsStatus st = NATS_OK;
  if (p->bucket != NULL && m->js != NULL) {
    if (m->out_kv == NULL ||
        strcmp(kvStore_Bucket(m->out_kv), p->bucket) != 0) {
      kvStore_Destroy(m->out_kv);
      m->out_kv = NULL;
      st = js_KeyValue(&m->out_kv, m->js, p->bucket);
      if (st == NATS_NOT_FOUND) {
        kvConfig kc;
        kvConfig_Init(&kc);
        kc.Bucket = p->bucket;
        kc.History = 1;
        st = js_CreateKeyValue(&m->out_kv, m->js, &kc);
      }
      if (st != NATS_OK)
        m->out_kv = NULL;
    }
    if (st == NATS_OK)
      st = kvStore_PutString(NULL, m->out_kv, p->key, p->value);
  }
  if (st == NATS_OK && p->subject != NULL && m->nc != NULL)
    st = natsConnection_PublishString(m->nc, p->subject, p->value);
  if (st != NATS_OK)
    natka__warn(m->log, "kv %s: cannot write status to %s/%s: %s", m->bucket,
                p->bucket ? p->bucket : "-", p->key ? p->key : "-",
                natsStatus_GetText(st));
}

static void post_free(post *p) {
  free(p->bucket);
  free(p->key);
  free(p->subject);
  free(p->value);
  free(p);
}

static void flush_posts(natka__kv_mirror *m) {
  uv_mutex_lock(&m->mu);
  post *p = m->out_head;
  m->out_head = m->out_tail = NULL;
  uv_mutex_unlock(&m->mu);
  while (p != NULL) {
    post *next = p->next;
    if (m->nc != NULL)
      send_post(m, p);
    post_free(p);
    p = next;
  }
}

static void mirror_thread(void *arg) {
  natka__kv_mirror *m = arg;
  int64_t backoff = BACKOFF_MIN_MS;

  while (!stopping(m)) {
    if (open_bucket(m) != 0) {
      if (nap(m, backoff))
        break;
      backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
      continue;
    }
    backoff = BACKOFF_MIN_MS;
    flush_posts(m);
    kvEntry *e = NULL;
    natsStatus st = kvWatcher_Next(&e, m->watcher, WATCH_POLL_MS);
    if (st == NATS_TIMEOUT)
      continue;
    if (st != NATS_OK) {
      problem(m, "watch ended: %s", natsStatus_GetText(st));
      kvWatcher_Destroy(m->watcher);
      m->watcher = NULL;
      nap(m, BACKOFF_MIN_MS);
      continue;
    }
    if (e == NULL) {
      push_marker(m, ITEM_SYNCED);
      continue;
    }
    if (push_entry(m, e) != 0) {
      /* Out of memory: watch again later rather than miss a change. */
      kvWatcher_Destroy(m->watcher);
      m->watcher = NULL;
    }
    kvEntry_Destroy(e);
  }

  flush_posts(m);
  if (m->nc != NULL)
    natsConnection_FlushTimeout(m->nc, 2000);
  kvWatcher_Destroy(m->watcher);
  kvStore_Destroy(m->kv);
  kvStore_Destroy(m->out_kv);
  jsCtx_Destroy(m->js);
  natsConnection_Destroy(m->nc);
  m->watcher = NULL;
  m->kv = m->out_kv = NULL;
  m->js = NULL;
  m->nc = NULL;
  uv_mutex_lock(&m->mu);
  m->thread_done = 1;
  uv_mutex_unlock(&m->mu);
  uv_async_send(&m->async);
}

/* ------------------------------------------------------------ loop */

static void entry_free(natka__kv_entry *e) {
  free(e->key);
  free(e->value);
}

/* Binary search; returns the index of key or where it would go. */
static size_t find(const natka__kv_mirror *m, const char *key, int *found) {
  size_t lo = 0, hi = m->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(m->entries[mid].key, key);
    if (c == 0) {
      *found = 1;
      return mid;
    }
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  *found = 0;
  return lo;
}

/* Takes it->e (moved into the copy or freed). */
static void apply(natka__kv_mirror *m, item *it) {
  int found;
  size_t i = find(m, it->e.key, &found);
  if (it->e.revision > m->revision)
    m->revision = it->e.revision;
  m->changed = 1;
  if (it->kind == ITEM_DELETE) {
    if (found) {
      entry_free(&m->entries[i]);
      memmove(&m->entries[i], &m->entries[i + 1],
              (m->n - i - 1) * sizeof(*m->entries));
      m->n--;
    }
    entry_free(&it->e);
    return;
  }
  if (found) {
    entry_free(&m->entries[i]);
    m->entries[i] = it->e;
    return;
  }
  if (m->n == m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 16;
    natka__kv_entry *grown = realloc(m->entries, cap * sizeof(*grown));
    if (grown == NULL) {
      natka__error(m->log, "kv %s: out of memory; key '%s' ignored", m->bucket,
                   it->e.key);
      entry_free(&it->e);
      return;
    }
    m->entries = grown;
    m->cap = cap;
  }
  memmove(&m->entries[i + 1], &m->entries[i], (m->n - i) * sizeof(*m->entries));
  m->entries[i] = it->e;
  m->n++;
}

static void clear(natka__kv_mirror *m) {
  for (size_t i = 0; i < m->n; i++)
    entry_free(&m->entries[i]);
  m->n = 0;
}

static void release(natka__kv_mirror *m) {
  while (m->in_head != NULL) {
    item *it = m->in_head;
    m->in_head = it->next;
    entry_free(&it->e);
    free(it);
  }
  while (m->out_head != NULL) {
    post *p = m->out_head;
    m->out_head = p->next;
    post_free(p);
  }
  clear(m);
  free(m->entries);
  natsOptions_Destroy(m->opts);
  uv_cond_destroy(&m->cond);
  uv_mutex_destroy(&m->mu);
  free(m->url);
  free(m->bucket);
  free(m);
}

static void on_closed(uv_handle_t *h) {
  natka__kv_mirror *m = h->data;
  void (*done)(void *) = m->closed;
  void *data = m->closed_data;
  release(m);
  if (done != NULL)
    done(data);
}

static void on_async(uv_async_t *a) {
  natka__kv_mirror *m = a->data;
  uv_mutex_lock(&m->mu);
  item *it = m->in_head;
  m->in_head = m->in_tail = NULL;
  int thread_done = m->thread_done;
  uv_mutex_unlock(&m->mu);

  while (it != NULL) {
    item *next = it->next;
    switch (it->kind) {
    case ITEM_RESET:
      clear(m);
      m->synced = 0;
      break;
    case ITEM_SYNCED:
      m->synced = 1;
      m->changed = 1;
      break;
    default:
      apply(m, it);
      break;
    }
    free(it);
    it = next;
  }
  if (m->synced && m->changed && !thread_done) {
    m->changed = 0;
    m->cb(m, m->entries, m->n, m->revision, m->data);
  }
  if (thread_done) {
    uv_thread_join(&m->thread);
    uv_close((uv_handle_t *)&m->async, on_closed);
  }
}

int natka__kv_mirror_new(natka__kv_mirror **out, uv_loop_t *loop,
                         const natka__kv_mirror_opts *o, natka__kv_mirror_cb cb,
                         void *data, char *err, size_t errlen) {
  char url[NATKA__URL_SHOWN];
  int have_mu = 0, have_cond = 0;
  int rc = NATKA_ENOMEM;
  natka__kv_mirror *m = calloc(1, sizeof(*m));
  if (m == NULL)
    goto fail;
  m->url =
      natka__strdup(natka__url_redact(o->conf->nats_url, url, sizeof(url)));
  m->bucket = natka__strdup(o->bucket);
  m->create = o->create;
  m->history = o->history < 1 ? 1 : o->history > 64 ? 64 : o->history;
  m->log = o->log;
  m->cb = cb;
  m->data = data;
  if (m->url == NULL || m->bucket == NULL ||
      !(have_mu = uv_mutex_init(&m->mu) == 0) ||
      !(have_cond = uv_cond_init(&m->cond) == 0))
    goto fail;
  if ((rc = natka__nats_options(o->conf, NULL, 0, NULL, &m->opts, err,
                                errlen)) != 0)
    goto fail;
  rc = NATKA_ENOMEM;
  if (uv_async_init(loop, &m->async, on_async) != 0)
    goto fail;
  m->async.data = m;
  *out = m;
  return 0;

fail:
  if (rc == NATKA_ENOMEM)
    natka__errf(err, errlen, rc, "kv: out of memory");
  if (m != NULL) {
    natsOptions_Destroy(m->opts);
    if (have_cond)
      uv_cond_destroy(&m->cond);
    if (have_mu)
      uv_mutex_destroy(&m->mu);
    free(m->url);
    free(m->bucket);
    free(m);
  }
  return rc;
}

int natka__kv_mirror_start(natka__kv_mirror *m) {
  if (uv_thread_create(&m->thread, mirror_thread, m) != 0)
    return NATKA_ENOMEM;
  m->started = 1;
  return 0;
}

void natka__kv_mirror_post(natka__kv_mirror *m, const char *bucket,
                           const char *key, const char *subject,
                           const char *value) {
  post *p = calloc(1, sizeof(*p));
  if (p == NULL)
    return;
  p->bucket = bucket ? natka__strdup(bucket) : NULL;
  p->key = key ? natka__strdup(key) : NULL;
  p->subject = subject ? natka__strdup(subject) : NULL;
  p->value = natka__strdup(value);
  if ((bucket && !p->bucket) || (key && !p->key) || (subject && !p->subject) ||
      !p->value) {
    post_free(p);
    return;
  }
  uv_mutex_lock(&m->mu);
  if (m->out_tail != NULL)
    m->out_tail->next = p;
  else
    m->out_head = p;
  m->out_tail = p;
  uv_mutex_unlock(&m->mu);
}

void natka__kv_mirror_close(natka__kv_mirror *m, void (*done)(void *data),
                            void *data) {
  m->closed = done;
  m->closed_data = data;
  if (!m->started) {
    uv_close((uv_handle_t *)&m->async, on_closed);
    return;
  }
  uv_mutex_lock(&m->mu);
  m->stopping = 1;
  uv_cond_signal(&m->cond);
  uv_mutex_unlock(&m->mu);
  /* on_async joins the thread and closes the handle once it is done. */
}
