/*
 * `natka rules push / rollback / status`: the side that talks to NATS.
 *
 * Everything here is one blocking nats.c connection that never reconnects:
 * a command either finishes or says why within the configured timeouts.
 * Writes happen only after the set the bucket would hold has compiled and
 * passed its self-tests (natka__cli_check_set), the same check the daemon
 * runs before it swaps a set in.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <nats/nats.h>

#include "cmd_rules.h"
#include "cmd_rules_kv.h"
#include "config_int.h"
#include "nats_conn.h"
#include "natka/error.h"
#include "secret.h"
#include "util.h"

#define HISTORY 64         /* values per module, as the daemon creates it */
#define MIN_WAIT_MS 5000   /* for a JetStream API answer */
#define CLOSE_WAIT_MS 2000 /* for nats.c's threads at exit */

int natka__cli_connect(natka__rules_cli *c, natka__cli_kv *k) {
  const natka_config *cf = c->conf;
  char err[512], url[NATKA__URL_SHOWN];
  natsOptions *o = NULL;
  jsOptions jo;
  memset(k, 0, sizeof(*k));
  k->opened = 1;
  natka__url_redact(cf->nats_url, url, sizeof(url));
  int rc = natka__nats_options(cf, NULL, NATKA__NATS_ONESHOT, NULL, &o, err,
                               sizeof(err));
  if (rc != 0)
    return natka__cli_fail(
        c, rc == NATKA_ECONFIG ? NATKA__CLI_USAGE : NATKA__CLI_FAILED, "%s",
        err);
  natsStatus st = natsConnection_Connect(&k->nc, o);
  natsOptions_Destroy(o);
  if (st != NATS_OK) {
    k->nc = NULL;
    return natka__cli_fail(c, NATKA__CLI_FAILED, "cannot connect to %s: %s",
                           url, natka__nats_why(st));
  }
  k->wait_ms = cf->nats_connect_timeout_ms > MIN_WAIT_MS
                   ? cf->nats_connect_timeout_ms
                   : MIN_WAIT_MS;
  jsOptions_Init(&jo);
  jo.Wait = k->wait_ms;
  st = natsConnection_JetStream(&k->js, k->nc, &jo);
  if (st != NATS_OK) {
    k->js = NULL;
    return natka__cli_fail(c, NATKA__CLI_FAILED, "no JetStream on %s: %s", url,
                           natka__nats_why(st));
  }
  return 0;
}

void natka__cli_disconnect(natka__cli_kv *k) {
  if (!k->opened)
    return;
  kvStore_Destroy(k->kv);
  jsCtx_Destroy(k->js);
  natsConnection_Destroy(k->nc);
  memset(k, 0, sizeof(*k));
  nats_CloseAndWait(CLOSE_WAIT_MS);
}

int natka__cli_open_bucket(natka__rules_cli *c, natka__cli_kv *k,
                           const char *bucket, int create, int *missing) {
  *missing = 0;
  natsStatus st = js_KeyValue(&k->kv, k->js, bucket);
  if (st == NATS_NOT_FOUND && create) {
    kvConfig kc;
    kvConfig_Init(&kc);
    kc.Bucket = bucket;
    kc.History = HISTORY;
    st = js_CreateKeyValue(&k->kv, k->js, &kc);
  }
  if (st == NATS_OK)
    return 0;
  k->kv = NULL;
  if (st == NATS_NOT_FOUND) {
    *missing = 1;
    return 0;
  }
  return natka__cli_fail(c, NATKA__CLI_FAILED, "cannot open bucket %s: %s",
                         bucket, natka__nats_why(st));
}

static int recs_add(natka__cli_recs *rs, kvEntry *e) {
  if (rs->n == rs->cap) {
    size_t cap = rs->cap ? rs->cap * 2 : 16;
    natka__cli_rec *v = realloc(rs->v, cap * sizeof(*v));
    if (v == NULL)
      return -1;
    rs->v = v;
    rs->cap = cap;
  }
  natka__cli_rec *r = &rs->v[rs->n];
  r->len = (size_t)kvEntry_ValueLen(e);
  r->key = natka__strdup(kvEntry_Key(e));
  r->value = natka__memdup(kvEntry_Value(e), r->len);
  r->rev = kvEntry_Revision(e);
  r->op = kvEntry_Operation(e);
  if (r->key == NULL || r->value == NULL) {
    free(r->key);
    free(r->value);
    return -1;
  }
  rs->n++;
  return 0;
}

void natka__cli_recs_free(natka__cli_recs *rs) {
  for (size_t i = 0; i < rs->n; i++) {
    free(rs->v[i].key);
    free(rs->v[i].value);
  }
  free(rs->v);
  memset(rs, 0, sizeof(*rs));
}

static int by_key_then_rev(const void *a, const void *b) {
  const natka__cli_rec *x = a, *y = b;
  int d = strcmp(x->key, y->key);
  if (d != 0)
    return d;
  return x->rev < y->rev ? -1 : x->rev > y->rev;
}

/* Watches the whole bucket until the end-of-snapshot marker: the latest
 * entry per key, or with `history` every entry kept. Delete and purge
 * markers are included. Sorted by key, then revision. */
int natka__cli_read_bucket(natka__rules_cli *c, natka__cli_kv *k, int history,
                           natka__cli_recs *out) {
  kvWatchOptions wo;
  kvWatcher *w = NULL;
  int oom = 0;
  kvWatchOptions_Init(&wo);
  wo.IncludeHistory = history != 0;
  natsStatus st = kvStore_WatchAll(&w, k->kv, &wo);
  while (st == NATS_OK && !oom) {
    kvEntry *e = NULL;
    st = kvWatcher_Next(&e, w, k->wait_ms);
    if (st != NATS_OK || e == NULL)
      break;
    oom = recs_add(out, e) != 0;
    kvEntry_Destroy(e);
  }
  kvWatcher_Destroy(w);
  if (oom)
    return natka__cli_fail(c, NATKA__CLI_FAILED, "out of memory");
  if (st != NATS_OK)
    return natka__cli_fail(c, NATKA__CLI_FAILED, "cannot read bucket %s: %s",
                           kvStore_Bucket(k->kv),
                           st == NATS_TIMEOUT ? "timed out"
                                              : natka__nats_why(st));
  if (out->n > 1)
    qsort(out->v, out->n, sizeof(*out->v), by_key_then_rev);
  return 0;
}

/* The bucket's latest revision (deletes included) and the values it keeps
 * per key (0: no limit). */
static int bucket_info(natka__rules_cli *c, natka__cli_kv *k,
                       const char *bucket, uint64_t *last, int64_t *history) {
  char stream[300];
  jsStreamInfo *si = NULL;
  jsErrCode jerr = 0;
  snprintf(stream, sizeof(stream), "KV_%s", bucket);
  natsStatus st = js_GetStreamInfo(&si, k->js, stream, NULL, &jerr);
  if (st != NATS_OK)
    return natka__cli_fail(c, NATKA__CLI_FAILED, "cannot read bucket %s: %s",
                           bucket, natka__nats_why(st));
  *last = si->State.LastSeq;
  if (history != NULL)
    *history =
        si->Config->MaxMsgsPerSubject > 0 ? si->Config->MaxMsgsPerSubject : 0;
  jsStreamInfo_Destroy(si);
  return 0;
}

static int is_named(const char *name, const char **names, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(name, names[i]) == 0)
      return 1;
  return 0;
}

/* The pushed files, read and named; checked alone, before any connection,
 * so that a broken file is reported without NATS. */
static int read_pushed(natka__rules_cli *c, natka__cli_module *mods) {
  char name[256];
  for (size_t i = 0; i < c->nargs; i++) {
    int rc = natka__cli_module_name(c, c->args[i], name, sizeof(name));
    if (rc != 0)
      return rc;
    for (size_t j = 0; j < i; j++)
      if (strcmp(mods[j].name, name) == 0)
        return natka__cli_fail(c, NATKA__CLI_USAGE,
                               "%s and %s are both module '%s'", mods[j].path,
                               c->args[i], name);
    if (is_named(name, c->deletes, c->ndeletes))
      return natka__cli_fail(c, NATKA__CLI_USAGE,
                             "module '%s' is both pushed and deleted", name);
    mods[i].path = c->args[i];
    if ((mods[i].name = natka__strdup(name)) == NULL)
      return natka__cli_fail(c, NATKA__CLI_FAILED, "out of memory");
    rc = natka__cli_read_file(c, c->args[i], &mods[i].src, &mods[i].len);
    if (rc != 0)
      return rc;
  }
  return natka__cli_check_set(c, mods, c->nargs);
}

/* The set after the push: the bucket's modules that are neither pushed nor
 * deleted, then the pushed ones. Borrows every string. */
static int push_set(natka__rules_cli *c, const natka__cli_recs *cur,
                    const natka__cli_module *pushed, natka__cli_module *set,
                    size_t *nset) {
  size_t n = 0;
  for (size_t d = 0; d < c->ndeletes; d++) {
    size_t i = 0;
    while (i < cur->n && (cur->v[i].op != kvOp_Put ||
                          strcmp(cur->v[i].key, c->deletes[d]) != 0))
      i++;
    if (i == cur->n)
      return natka__cli_fail(c, NATKA__CLI_USAGE,
                             "--delete %s: no module '%s' in bucket %s",
                             c->deletes[d], c->deletes[d], c->bucket);
  }
  for (size_t i = 0; i < cur->n; i++) {
    const natka__cli_rec *r = &cur->v[i];
    int replaced = 0;
    for (size_t j = 0; j < c->nargs; j++)
      replaced |= strcmp(pushed[j].name, r->key) == 0;
    if (r->op == kvOp_Put && !replaced &&
        !is_named(r->key, c->deletes, c->ndeletes))
      set[n++] = (natka__cli_module){r->key, r->value, r->len, NULL};
  }
  for (size_t j = 0; j < c->nargs; j++)
    set[n++] = pushed[j];
  *nset = n;
  return 0;
}

static int write_push(natka__rules_cli *c, natka__cli_kv *k,
                      const natka__cli_module *pushed) {
  char url[NATKA__URL_SHOWN];
  uint64_t rev = 0;
  int64_t max = natsConnection_GetMaxPayload(k->nc);
  for (size_t i = 0; i < c->nargs; i++)
    if ((int64_t)pushed[i].len > max)
      return natka__cli_fail(
          c, NATKA__CLI_USAGE,
          "%s: %zu bytes, more than %s accepts in one "
          "message (%" PRId64 "); nothing written",
          pushed[i].path, pushed[i].len,
          natka__url_redact(c->conf->nats_url, url, sizeof(url)), max);
  for (size_t i = 0; i < c->nargs; i++) {
    natsStatus st = kvStore_Put(&rev, k->kv, pushed[i].name, pushed[i].src,
                                (int)pushed[i].len);
    if (st != NATS_OK)
      return natka__cli_fail(c, NATKA__CLI_FAILED,
                             "cannot put %s: %s (%zu of %zu written)",
                             pushed[i].name, natka__nats_why(st), i, c->nargs);
    printf("pushed %s at revision %" PRIu64 "\n", pushed[i].name, rev);
  }
  for (size_t i = 0; i < c->ndeletes; i++) {
    natsStatus st = kvStore_Delete(k->kv, c->deletes[i]);
    if (st != NATS_OK)
      return natka__cli_fail(c, NATKA__CLI_FAILED, "cannot delete %s: %s",
                             c->deletes[i], natka__nats_why(st));
    printf("deleted %s\n", c->deletes[i]);
  }
  if (c->ndeletes > 0 && bucket_info(c, k, c->bucket, &rev, NULL) != 0)
    return NATKA__CLI_FAILED;
  printf("revision %" PRIu64 "\n", rev);
  return 0;
}

int natka__cli_push(natka__rules_cli *c) {
  natka__cli_kv k = {0};
  natka__cli_recs cur = {0};
  natka__cli_module *pushed = calloc(c->nargs + 1, sizeof(*pushed));
  natka__cli_module *set = NULL;
  size_t nset = 0;
  int missing = 0, rc;

  if (pushed == NULL)
    return natka__cli_fail(c, NATKA__CLI_FAILED, "out of memory");
  if ((rc = read_pushed(c, pushed)) != 0)
    goto done;
  if ((rc = natka__cli_connect(c, &k)) != 0)
    goto done;
  rc = natka__cli_open_bucket(c, &k, c->bucket, !c->dry_run, &missing);
  if (rc == 0 && !missing)
    rc = natka__cli_read_bucket(c, &k, 0, &cur);
  if (rc != 0)
    goto done;
  if ((set = calloc(cur.n + c->nargs + 1, sizeof(*set))) == NULL) {
    rc = natka__cli_fail(c, NATKA__CLI_FAILED, "out of memory");
    goto done;
  }
  if ((rc = push_set(c, &cur, pushed, set, &nset)) != 0)
    goto done;
  if (nset != c->nargs && (rc = natka__cli_check_set(c, set, nset)) != 0)
    goto done;
  if (c->dry_run) {
    for (size_t i = 0; i < c->nargs; i++)
      printf("would push %s\n", pushed[i].name);
    for (size_t i = 0; i < c->ndeletes; i++)
      printf("would delete %s\n", c->deletes[i]);
    printf("dry run: the resulting %zu module(s) pass their self-tests; "
           "nothing written\n",
           nset);
    goto done;
  }
  rc = write_push(c, &k, pushed);

done:
  natka__cli_disconnect(&k);
  free(set);
  natka__cli_recs_free(&cur);
  natka__cli_modules_free(pushed, c->nargs);
  return rc;
}

/* ----------------------------------------------------------- rollback */

/* A change that puts the bucket back: value != NULL puts it, else deletes. */
typedef struct change {
  const char *key;
  const char *value;
  size_t len;
} change;

/*
 * What key k held at revision `rev`, from its retained history h[0..n)
 * (oldest first): the newest entry at or before rev, a put meaning present.
 * With nothing that old, the key did not exist yet, unless older entries
 * may have been dropped: the key keeps as many values as the bucket
 * allows, or its oldest entry is a purge. Returns the entry, NULL when
 * absent, or sets *lost.
 */
static const natka__cli_rec *at_revision(const natka__cli_rec *h, size_t n,
                                         uint64_t rev, int64_t history,
                                         int *lost) {
  const natka__cli_rec *found = NULL;
  for (size_t i = 0; i < n && h[i].rev <= rev; i++)
    found = &h[i];
  if (found == NULL)
    *lost = (history > 0 && (int64_t)n >= history) || h[0].op == kvOp_Purge;
  return found != NULL && found->op == kvOp_Put ? found : NULL;
}

/* Fills the changes and the resulting set (both borrow from all). */
static int plan_rollback(natka__rules_cli *c, const natka__cli_recs *all,
                         uint64_t rev, int64_t history, change *changes,
                         size_t *nchanges, natka__cli_module *set,
                         size_t *nset) {
  for (size_t a = 0, b; a < all->n; a = b) {
    for (b = a + 1; b < all->n && strcmp(all->v[a].key, all->v[b].key) == 0;)
      b++;
    const natka__cli_rec *now = &all->v[b - 1];
    int lost = 0;
    const natka__cli_rec *then =
        at_revision(&all->v[a], b - a, rev, history, &lost);
    if (lost)
      return natka__cli_fail(c, NATKA__CLI_USAGE,
                             "revision %" PRIu64
                             " is older than the history kept for module "
                             "'%s' (oldest kept: revision %" PRIu64 ")",
                             rev, now->key, all->v[a].rev);
    if (then != NULL)
      set[(*nset)++] =
          (natka__cli_module){then->key, then->value, then->len, NULL};
    if (then != NULL && (now->op != kvOp_Put || now->len != then->len ||
                         memcmp(now->value, then->value, then->len) != 0))
      changes[(*nchanges)++] = (change){then->key, then->value, then->len};
    else if (then == NULL && now->op == kvOp_Put)
      changes[(*nchanges)++] = (change){now->key, NULL, 0};
  }
  return 0;
}

static int parse_revision(natka__rules_cli *c, const char *s, uint64_t *out) {
  char *end = NULL;
  if (s[0] < '0' || s[0] > '9')
    return natka__cli_fail(c, NATKA__CLI_USAGE,
                           "the revision must be a positive integer, got '%s'",
                           s);
  unsigned long long v = strtoull(s, &end, 10);
  if (*end != '\0' || v == 0)
    return natka__cli_fail(c, NATKA__CLI_USAGE,
                           "the revision must be a positive integer, got '%s'",
                           s);
  *out = (uint64_t)v;
  return 0;
}

static int write_rollback(natka__rules_cli *c, natka__cli_kv *k,
                          const change *changes, size_t n, uint64_t rev) {
  uint64_t now = 0;
  for (size_t i = 0; i < n; i++) {
    natsStatus st;
    if (changes[i].value != NULL)
      st = kvStore_Put(&now, k->kv, changes[i].key, changes[i].value,
                       (int)changes[i].len);
    else
      st = kvStore_Delete(k->kv, changes[i].key);
    if (st != NATS_OK)
      return natka__cli_fail(c, NATKA__CLI_FAILED,
                             "cannot %s %s: %s (%zu of %zu changes made)",
                             changes[i].value ? "put" : "delete",
                             changes[i].key, natka__nats_why(st), i, n);
    if (changes[i].value != NULL)
      printf("restored %s at revision %" PRIu64 "\n", changes[i].key, now);
    else
      printf("deleted %s\n", changes[i].key);
  }
  if (bucket_info(c, k, c->bucket, &now, NULL) != 0)
    return NATKA__CLI_FAILED;
  printf("rolled back to revision %" PRIu64 " as revision %" PRIu64 "\n", rev,
         now);
  return 0;
}

int natka__cli_rollback(natka__rules_cli *c) {
  natka__cli_kv k = {0};
  natka__cli_recs all = {0};
  change *changes = NULL;
  natka__cli_module *set = NULL;
  size_t nchanges = 0, nset = 0;
  uint64_t rev = 0, last = 0;
  int64_t history = 0;
  int missing = 0, rc;

  if ((rc = parse_revision(c, c->args[0], &rev)) != 0)
    return rc;
  if ((rc = natka__cli_connect(c, &k)) != 0)
    goto done;
  if ((rc = natka__cli_open_bucket(c, &k, c->bucket, 0, &missing)) != 0)
    goto done;
  if (missing) {
    rc = natka__cli_fail(c, NATKA__CLI_USAGE, "bucket %s does not exist",
                         c->bucket);
    goto done;
  }
  if ((rc = bucket_info(c, &k, c->bucket, &last, &history)) != 0)
    goto done;
  if (rev > last) {
    rc = natka__cli_fail(c, NATKA__CLI_USAGE,
                         "revision %" PRIu64 " does not exist: bucket %s is "
                         "at revision %" PRIu64,
                         rev, c->bucket, last);
    goto done;
  }
  if ((rc = natka__cli_read_bucket(c, &k, 1, &all)) != 0)
    goto done;
  changes = calloc(all.n + 1, sizeof(*changes));
  set = calloc(all.n + 1, sizeof(*set));
  if (changes == NULL || set == NULL) {
    rc = natka__cli_fail(c, NATKA__CLI_FAILED, "out of memory");
    goto done;
  }
  rc = plan_rollback(c, &all, rev, history, changes, &nchanges, set, &nset);
  if (rc == 0 && nchanges == 0)
    printf("nothing to change\n");
  else if (rc == 0 && (rc = natka__cli_check_set(c, set, nset)) == 0)
    rc = write_rollback(c, &k, changes, nchanges, rev);

done:
  natka__cli_disconnect(&k);
  free(changes);
  free(set);
  natka__cli_recs_free(&all);
  return rc;
}
