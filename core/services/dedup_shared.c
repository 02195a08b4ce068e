#include "dedup_shared.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>
#include <xxhash.h>

#include "host.h"
#include "pipe.h"
#include "nats_conn.h"
#include "util.h"

#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 5000

typedef enum { ASK, CONFIRM, RELEASE } req_kind;

/* The value of a claimed key: "p <event id>" while its event is in flight,
 * "d <event id>" once it was handled. */
typedef struct req {
  char kvkey[40]; /* "k" + 32 hex digits of XXH3-128 */
  req_kind kind;
  char value[260];
  void *opaque;
  natka__claim_result result;
  struct req *next;
} req;

struct natka__claims {
  natka__log *log;
  const natka_config *conf;
  natka__claim_cb cb;

  uv_thread_t thread;
  int started;
  uv_mutex_t mu;
  uv_cond_t cond;
  /* Guarded by mu. */
  req *todo_head, *todo_tail; /* loop -> thread */
  req *done_head, *done_tail; /* thread -> loop */
  int stopping, thread_done;

  uv_async_t async;
  void (*closed)(void *data);
  void *closed_data;

  /* Thread side. */
  natsOptions *opts;
  natsConnection *nc;
  jsCtx *js;
  kvStore *kv;
  int64_t last_problem_ns;
};

static void append(req **head, req **tail, req *r) {
  r->next = NULL;
  if (*tail != NULL)
    (*tail)->next = r;
  else
    *head = r;
  *tail = r;
}

/* KV keys are subject tokens; dedup keys are any bytes: name a key by a
 * 128-bit hash of it. */
static void kv_key(const void *key, size_t len, char out[40]) {
  XXH128_hash_t h = XXH3_128bits(key, len);
  snprintf(out, 40, "k%016" PRIx64 "%016" PRIx64, (uint64_t)h.high64,
           (uint64_t)h.low64);
}

static int open_bucket(natka__claims *c) {
  natsStatus st = NATS_OK;
  if (c->nc == NULL &&
      (st = natsConnection_Connect(&c->nc, c->opts)) != NATS_OK)
    c->nc = NULL;
  if (st == NATS_OK && c->js == NULL &&
      (st = natsConnection_JetStream(&c->js, c->nc, NULL)) != NATS_OK)
    c->js = NULL;
  if (st == NATS_OK && c->kv == NULL) {
    st = js_KeyValue(&c->kv, c->js, c->conf->dedup_shared_bucket);
    if (st == NATS_NOT_FOUND) {
      kvConfig kc;
      kvConfig_Init(&kc);
      kc.Bucket = c->conf->dedup_shared_bucket;
      kc.History = 1;
      kc.TTL = c->conf->dedup_window_ms * 1000000; /* the window, by age */
      st = js_CreateKeyValue(&c->kv, c->js, &kc);
    }
    if (st != NATS_OK)
      c->kv = NULL;
  }
  if (st != NATS_OK) {
    int64_t now = natka__mono_ns();
    if (now - c->last_problem_ns > 10 * 1000000000LL) {
      natka__warn(c->log, "dedup: shared bucket %s: %s (retrying)",
                  c->conf->dedup_shared_bucket, natka__nats_why(st));
      c->last_problem_ns = now;
    }
    return -1;
  }
  return 0;
}

/* The value is nats.c's message data: `len` bytes, with a NUL after them
 * only "if the value is an actual string" (nats.h), and empty (or NULL)
 * when something other than natka put the key. So it is compared by
 * length, never read as a C string: the old strcmp(v + 1, ...) read past
 * the end of an empty value. */
natka__claim_result natka__claims_judge(const void *value, size_t len,
                                        const char *mine) {
  const char *v = value;
  size_t n = strlen(mine);
  if (len > 0 && v[0] == 'd')
    return NATKA__CLAIM_DUPLICATE;
  /* The id after the first byte is this very event's: a copy of it that
   * was not handled left the claim. */
  if (len > 0 && len == n && memcmp(v + 1, mine + 1, n - 1) == 0)
    return NATKA__CLAIM_TAKEN; /* this event again: take it over */
  return NATKA__CLAIM_PENDING;
}

static void serve(natka__claims *c, req *r) {
  if (r->kind == RELEASE) {
    kvStore_Delete(c->kv, r->kvkey);
    return;
  }
  if (r->kind == CONFIRM) {
    kvStore_PutString(NULL, c->kv, r->kvkey, r->value);
    return;
  }
  uint64_t rev = 0;
  natsStatus st = kvStore_CreateString(&rev, c->kv, r->kvkey, r->value);
  kvEntry *e = NULL;
  if (st == NATS_OK) {
    r->result = NATKA__CLAIM_TAKEN;
  } else if (st == NATS_ERR && kvStore_Get(&e, c->kv, r->kvkey) == NATS_OK) {
    /* NATS_ERR is also what a full stream or a limit gives: only a key
     * that is really there answers for the event. */
    int len = kvEntry_ValueLen(e);
    r->result = natka__claims_judge(kvEntry_Value(e), len > 0 ? (size_t)len : 0,
                                    r->value);
  } else {
    r->result = NATKA__CLAIM_ERROR;
  }
  kvEntry_Destroy(e);
}

static void claims_thread(void *arg) {
  natka__claims *c = arg;
  int64_t backoff = BACKOFF_MIN_MS;
  for (;;) {
    uv_mutex_lock(&c->mu);
    while (!c->stopping && c->todo_head == NULL)
      uv_cond_wait(&c->cond, &c->mu);
    req *r = c->todo_head;
    if (r != NULL) {
      c->todo_head = r->next;
      if (c->todo_head == NULL)
        c->todo_tail = NULL;
    }
    int stopping = c->stopping;
    uv_mutex_unlock(&c->mu);
    if (r == NULL && stopping)
      break;
    if (stopping && c->kv == NULL) {
      r->result = NATKA__CLAIM_ERROR; /* no new connection while stopping */
    } else if (open_bucket(c) != 0) {
      /* Answer rather than wait: the event is nak'ed and comes back. */
      r->result = NATKA__CLAIM_ERROR;
      if (!stopping) {
        uv_mutex_lock(&c->mu);
        uv_cond_timedwait(&c->cond, &c->mu, (uint64_t)backoff * 1000000);
        uv_mutex_unlock(&c->mu);
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
      }
    } else {
      backoff = BACKOFF_MIN_MS;
      serve(c, r);
    }
    if (r->kind != ASK) {
      free(r);
      continue;
    }
    uv_mutex_lock(&c->mu);
    append(&c->done_head, &c->done_tail, r);
    uv_mutex_unlock(&c->mu);
    uv_async_send(&c->async);
  }
  kvStore_Destroy(c->kv);
  jsCtx_Destroy(c->js);
  natsConnection_Destroy(c->nc);
  c->kv = NULL;
  c->js = NULL;
  c->nc = NULL;
  uv_mutex_lock(&c->mu);
  c->thread_done = 1;
  uv_mutex_unlock(&c->mu);
  uv_async_send(&c->async);
}

static void release_all(natka__claims *c) {
  natsOptions_Destroy(c->opts);
  uv_cond_destroy(&c->cond);
  uv_mutex_destroy(&c->mu);
  free(c);
}

static void on_closed(uv_handle_t *h) {
  natka__claims *c = h->data;
  void (*done)(void *) = c->closed;
  void *data = c->closed_data;
  release_all(c);
  if (done != NULL)
    done(data);
}

static void on_async(uv_async_t *a) {
  natka__claims *c = a->data;
  uv_mutex_lock(&c->mu);
  req *r = c->done_head;
  c->done_head = c->done_tail = NULL;
  int thread_done = c->thread_done;
  uv_mutex_unlock(&c->mu);
  while (r != NULL) {
    req *next = r->next;
    c->cb(r->opaque, r->result);
    free(r);
    r = next;
  }
  if (thread_done) {
    uv_thread_join(&c->thread);
    uv_close((uv_handle_t *)&c->async, on_closed);
  }
}

int natka__claims_new(natka__claims **out, const natka__host *host,
                      natka__claim_cb cb, char *err, size_t errlen) {
  const natka_config *conf = host->conf;
  natka__claims *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return natka__errf(err, errlen, NATKA_ENOMEM, "dedup: out of memory");
  c->log = host->log;
  c->conf = conf;
  c->cb = cb;
  int rc = NATKA_ENOMEM;
  int have_mu = uv_mutex_init(&c->mu) == 0;
  int have_cond = have_mu && uv_cond_init(&c->cond) == 0;
  if (!have_cond)
    goto fail;
  if ((rc = natka__nats_options(conf, NULL, 0, NULL, &c->opts, err, errlen)) !=
      0)
    goto fail;
  rc = NATKA_ENOMEM;
  if (uv_async_init(host->loop, &c->async, on_async) != 0)
    goto fail;
  c->async.data = c;
  *out = c;
  return 0;

fail:
  natsOptions_Destroy(c->opts);
  if (have_cond)
    uv_cond_destroy(&c->cond);
  if (have_mu)
    uv_mutex_destroy(&c->mu);
  free(c);
  if (rc == NATKA_ENOMEM)
    natka__errf(err, errlen, rc, "dedup: out of memory");
  return rc;
}

int natka__claims_start(natka__claims *c) {
  if (uv_thread_create(&c->thread, claims_thread, c) != 0)
    return NATKA_ENOMEM;
  c->started = 1;
  return 0;
}

static int enqueue(natka__claims *c, const void *key, size_t len, req_kind kind,
                   const char *id, void *opaque) {
  req *r = calloc(1, sizeof(*r));
  if (r == NULL)
    return NATKA_ENOMEM;
  kv_key(key, len, r->kvkey);
  r->kind = kind;
  snprintf(r->value, sizeof(r->value), "%c %s", kind == CONFIRM ? 'd' : 'p',
           id != NULL ? id : "");
  r->opaque = opaque;
  uv_mutex_lock(&c->mu);
  append(&c->todo_head, &c->todo_tail, r);
  uv_cond_signal(&c->cond);
  uv_mutex_unlock(&c->mu);
  return 0;
}

int natka__claims_ask(natka__claims *c, const void *key, size_t len,
                      const char *id, void *opaque) {
  return enqueue(c, key, len, ASK, id, opaque);
}

void natka__claims_confirm(natka__claims *c, const void *key, size_t len,
                           const char *id) {
  enqueue(c, key, len, CONFIRM, id, NULL);
}

void natka__claims_release(natka__claims *c, const void *key, size_t len) {
  enqueue(c, key, len, RELEASE, NULL, NULL);
}

void natka__claims_close(natka__claims *c, void (*done)(void *data),
                         void *data) {
  c->closed = done;
  c->closed_data = data;
  if (!c->started) {
    uv_close((uv_handle_t *)&c->async, on_closed);
    return;
  }
  uv_mutex_lock(&c->mu);
  c->stopping = 1;
  uv_cond_signal(&c->cond);
  uv_mutex_unlock(&c->mu);
}
