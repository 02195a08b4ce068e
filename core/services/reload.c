#include "reload.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "codec.h"
#include "host.h"
#include "pipe.h"
#include "kv_mirror.h"
#include "rules.h"
#include "util.h"

#define STATUS_EVERY_MS 10000

struct natka__reload {
  const natka__host *host;
  natka__log *log;
  const natka_config *conf;
  natka__kv_mirror *mirror;
  uv_timer_t timer;
  int timer_open;

  uint64_t active_rev; /* 0: no set active yet */
  char **modules;      /* names in the active set */
  size_t nmodules;
  uint64_t rejected_rev;
  char *rejected_reason;
  int64_t rejected_at_ns;
  uint64_t last_seen_rev;
  char status_key[256];

  int pending_closes;
  void (*closed)(void *data);
  void *closed_data;
};

static void set_modules(natka__reload *rl, const natka__kv_entry *e, size_t n) {
  for (size_t i = 0; i < rl->nmodules; i++)
    free(rl->modules[i]);
  free(rl->modules);
  rl->nmodules = 0;
  rl->modules = calloc(n ? n : 1, sizeof(*rl->modules));
  for (size_t i = 0; rl->modules != NULL && i < n; i++)
    if ((rl->modules[rl->nmodules] = natka__strdup(e[i].key)) != NULL)
      rl->nmodules++;
}

static void reject(natka__reload *rl, uint64_t revision, const char *why) {
  int first_line = (int)strcspn(why, "\n");
  if (rl->active_rev != 0)
    natka__warn(rl->log,
                "rules: revision %" PRIu64 " of bucket %s rejected: %.*s; "
                "revision %" PRIu64 " stays active",
                revision, rl->conf->rules_bucket, first_line, why,
                rl->active_rev);
  else
    natka__error(rl->log,
                 "rules: revision %" PRIu64 " of bucket %s rejected: %.*s; "
                 "no valid rule set yet, so nothing is fetched until one is "
                 "pushed",
                 revision, rl->conf->rules_bucket, first_line, why);
  free(rl->rejected_reason);
  rl->rejected_reason = natka__strdup(why);
  rl->rejected_rev = revision;
  rl->rejected_at_ns = natka__now_ns();
  rl->host->rules_rejected(rl->host);
}

/* Builds, checks and swaps in the bucket's rule set; see reload.h. */
static void on_bucket(natka__kv_mirror *m, const natka__kv_entry *e, size_t n,
                      uint64_t revision, void *data) {
  natka__reload *rl = data;
  natka__rules *rules = NULL;
  natka__rules_opts ro = {0};
  char err[1024];
  (void)m;

  if (revision == rl->last_seen_rev)
    return; /* a re-read after a reconnect: nothing changed */
  rl->last_seen_rev = revision;
  ro.instr_budget = rl->conf->rules_instr_budget;
  ro.time_limit_ms = rl->conf->rules_time_limit_ms;
  ro.load_time_limit_ms = rl->conf->rules_load_time_limit_ms;
  ro.mem_limit = (size_t)rl->conf->rules_memory_mb * 1024 * 1024;
  ro.max_answer_bytes = (size_t)rl->conf->rules_max_answer_bytes;
  ro.default_topic = rl->conf->route_default_topic;
  ro.log = rl->log;
  int rc = natka__rules_new(&rules, &ro, err, sizeof(err));
  for (size_t i = 0; rc == 0 && i < n; i++)
    rc = natka__rules_add_module(rules, e[i].key, e[i].value, e[i].len, err,
                                 sizeof(err));
  if (rc == 0)
    rc = natka__rules_selftest(rules, err, sizeof(err));
  if (rc != 0) {
    natka__rules_free(rules);
    reject(rl, revision, err);
    natka__reload_post_status(rl);
    return;
  }
  natka__rules_free(rl->host->swap_rules(rl->host, rules, revision));
  rl->active_rev = revision;
  set_modules(rl, e, n);
  natka__info(rl->log, "rules: revision %" PRIu64 " active (%zu module(s))",
              revision, n);
  natka__reload_post_status(rl);
}

static cJSON *status_json(natka__reload *rl) {
  char when[48];
  cJSON *j = cJSON_CreateObject();
  cJSON *mods = cJSON_AddArrayToObject(j, "modules");
  cJSON *st = NULL;
  cJSON_AddStringToObject(j, "instance", rl->status_key);
  cJSON_AddStringToObject(j, "bucket", rl->conf->rules_bucket);
  cJSON_AddStringToObject(j, "state",
                          rl->active_rev ? "active" : "waiting for rules");
  if (rl->active_rev)
    cJSON_AddNumberToObject(j, "revision", (double)rl->active_rev);
  else
    cJSON_AddNullToObject(j, "revision");
  for (size_t i = 0; mods != NULL && i < rl->nmodules; i++)
    cJSON_AddItemToArray(mods, cJSON_CreateString(rl->modules[i]));
  if (rl->rejected_reason != NULL) {
    cJSON *r = cJSON_AddObjectToObject(j, "last_rejection");
    cJSON_AddNumberToObject(r, "revision", (double)rl->rejected_rev);
    cJSON_AddStringToObject(r, "reason", rl->rejected_reason);
    natka__rfc3339_format(rl->rejected_at_ns, when);
    cJSON_AddStringToObject(r, "at", when);
  } else {
    cJSON_AddNullToObject(j, "last_rejection");
  }
  st = cJSON_AddObjectToObject(j, "stats");
  size_t nstats;
  const char *const *stats = rl->host->stat_names(&nstats);
  for (size_t i = 0; st != NULL && i < nstats; i++)
    cJSON_AddNumberToObject(st, stats[i],
                            (double)rl->host->stat(rl->host, stats[i]));
  natka__rfc3339_format(natka__now_ns(), when);
  cJSON_AddStringToObject(j, "updated", when);
  return j;
}

void natka__reload_post_status(natka__reload *rl) {
  char subject[512];
  cJSON *j = status_json(rl);
  char *text = j ? cJSON_PrintUnformatted(j) : NULL;
  cJSON_Delete(j);
  if (text == NULL)
    return;
  snprintf(subject, sizeof(subject), "%s.%s", rl->conf->rules_status_subject,
           rl->status_key);
  natka__kv_mirror_post(rl->mirror, rl->conf->rules_status_bucket,
                        rl->status_key, subject, text);
  cJSON_free(text);
}

static void on_timer(uv_timer_t *t) {
  natka__reload_post_status(t->data);
}

/* "<host>-<nats.name>", reduced to what KV keys and subjects allow. */
static void make_status_key(natka__reload *rl) {
  char raw[256], host[128] = "host";
  gethostname(host, sizeof(host) - 1);
  snprintf(raw, sizeof(raw), "%s-%s", host, rl->conf->nats_name);
  size_t i = 0;
  for (const char *s = raw; *s && i + 1 < sizeof(rl->status_key); s++) {
    char c = *s;
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
             (c >= '0' && c <= '9') || c == '-' || c == '_';
    rl->status_key[i++] = ok ? c : '_';
  }
  rl->status_key[i] = '\0';
}

int natka__reload_new(natka__reload **out, const natka__host *host, char *err,
                      size_t errlen) {
  const natka_config *c = host->conf;
  natka__reload *rl = calloc(1, sizeof(*rl));
  if (rl == NULL)
    return natka__errf(err, errlen, NATKA_ENOMEM, "rules: out of memory");
  rl->host = host;
  rl->conf = c;
  rl->log = host->log;
  make_status_key(rl);
  natka__kv_mirror_opts mo = {
      .conf = c,
      .bucket = c->rules_bucket,
      .create = 1,
      .history = 64, /* what `natka rules rollback` can go back to */
      .log = rl->log,
  };
  int rc = natka__kv_mirror_new(&rl->mirror, host->loop, &mo, on_bucket, rl,
                                err, errlen);
  if (rc != 0) {
    free(rl);
    return rc;
  }
  uv_timer_init(host->loop, &rl->timer);
  rl->timer.data = rl;
  rl->timer_open = 1;
  *out = rl;
  return 0;
}

int natka__reload_start(natka__reload *rl) {
  natka__info(rl->log, "rules: watching KV bucket %s (status: %s/%s)",
              rl->conf->rules_bucket, rl->conf->rules_status_bucket,
              rl->status_key);
  uv_timer_start(&rl->timer, on_timer, STATUS_EVERY_MS, STATUS_EVERY_MS);
  uv_unref((uv_handle_t *)&rl->timer);
  return natka__kv_mirror_start(rl->mirror);
}

static void maybe_done(natka__reload *rl) {
  if (--rl->pending_closes > 0)
    return;
  void (*done)(void *) = rl->closed;
  void *data = rl->closed_data;
  for (size_t i = 0; i < rl->nmodules; i++)
    free(rl->modules[i]);
  free(rl->modules);
  free(rl->rejected_reason);
  free(rl);
  if (done != NULL)
    done(data);
}

static void on_timer_closed(uv_handle_t *h) {
  maybe_done(h->data);
}
static void on_mirror_closed(void *data) {
  maybe_done(data);
}

void natka__reload_close(natka__reload *rl, void (*done)(void *data),
                         void *data) {
  rl->closed = done;
  rl->closed_data = data;
  rl->pending_closes = 2;
  natka__reload_post_status(rl); /* the last word: counters at stop */
  uv_close((uv_handle_t *)&rl->timer, on_timer_closed);
  natka__kv_mirror_close(rl->mirror, on_mirror_closed, rl);
}
