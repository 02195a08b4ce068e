/*
 * `natka rules test`: rule files against sample events, offline. The files
 * are loaded and self-tested as `push` would, then each event of a JSONL
 * file is put to the three questions the gateway asks (dedup, degrade,
 * route), each answered on its own so that one rule error does not hide
 * the other verdicts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cmd_rules.h"
#include "natka/error.h"
#include "rules.h"
#include "util.h"

#define MAX_TS_MS 9000000000000LL /* keeps ts * 1e6 inside int64 */

typedef struct sample {
  int line;
  natka_event *ev;
} sample;

/* The three answers for one event. */
typedef struct verdicts {
  int dedup_rc, degrade_rc, route_rc;
  char *key, *key_rule;
  size_t key_len;
  natka__degrade degrade;
  natka__route route;
  char dedup_err[1024], degrade_err[1024], route_err[2048];
} verdicts;

/* ------------------------------------------------------------- events */

static int bad(char *why, size_t len, const char *fmt, const char *arg) {
  snprintf(why, len, fmt, arg);
  return -1;
}

static int set_headers(natka_event *ev, const cJSON *hs, char *why,
                       size_t len) {
  const cJSON *h;
  int i = 0;
  if (!cJSON_IsArray(hs))
    return bad(why, len, "%s",
               "\"headers\" must be an array of "
               "[\"name\", \"value\"] pairs");
  cJSON_ArrayForEach(h, hs) {
    const cJSON *n = cJSON_GetArrayItem(h, 0), *v = cJSON_GetArrayItem(h, 1);
    char at[32];
    snprintf(at, sizeof(at), "%d", i++);
    if (!cJSON_IsArray(h) || cJSON_GetArraySize(h) != 2 || !cJSON_IsString(n) ||
        !cJSON_IsString(v) || n->valuestring[0] == '\0')
      return bad(why, len,
                 "\"headers\"[%s] must be [\"name\", \"value\"] (two strings, "
                 "a non-empty name)",
                 at);
    if (natka_event_add_header(ev, n->valuestring, v->valuestring,
                               strlen(v->valuestring)) != 0)
      return bad(why, len, "%s", "out of memory");
  }
  return 0;
}

static int set_field(natka_event *ev, const cJSON *f, char *why, size_t len) {
  const char *name = f->string, *s = cJSON_IsString(f) ? f->valuestring : NULL;
  int rc = 0;
  if (strcmp(name, "headers") == 0)
    return set_headers(ev, f, why, len);
  if (strcmp(name, "ts") == 0) {
    double ms = f->valuedouble;
    if (cJSON_IsNull(f))
      return 0;
    if (!cJSON_IsNumber(f) || ms != (double)(int64_t)ms || ms < 0 ||
        ms > (double)MAX_TS_MS)
      return bad(why, len, "%s",
                 "\"ts\" must be a whole number of milliseconds since the "
                 "epoch");
    natka_event_set_ts(ev, (int64_t)ms * 1000000);
    return 0;
  }
  if (strcmp(name, "data") == 0 && (cJSON_IsObject(f) || cJSON_IsArray(f))) {
    char *text = cJSON_PrintUnformatted(f);
    rc = text != NULL ? natka_event_set_data(ev, text, strlen(text)) : -1;
    cJSON_free(text);
  } else if (strcmp(name, "id") != 0 && strcmp(name, "kind") != 0 &&
             strcmp(name, "key") != 0 && strcmp(name, "data") != 0) {
    return bad(why, len,
               "unknown field \"%s\" (an event has id, kind, key, data, ts, "
               "headers)",
               name);
  } else if (s == NULL && !cJSON_IsNull(f)) {
    return bad(why, len, "\"%s\" must be a string", name);
  } else if (strcmp(name, "id") == 0) {
    rc = natka_event_set_id(ev, s);
  } else if (strcmp(name, "kind") == 0) {
    rc = natka_event_set_kind(ev, s);
  } else if (strcmp(name, "key") == 0) {
    rc = natka_event_set_key(ev, s, s != NULL ? strlen(s) : 0);
  } else {
    rc = natka_event_set_data(ev, s, s != NULL ? strlen(s) : 0);
  }
  return rc == 0 ? 0 : bad(why, len, "%s", "out of memory");
}

/* One line of the JSONL file as an event; -1 with the reason in why. */
static int parse_event(const char *line, size_t n, natka_event **out, char *why,
                       size_t len) {
  cJSON *j = cJSON_ParseWithLength(line, n), *f;
  natka_event *ev = NULL;
  int rc = 0;
  if (j == NULL) {
    const char *at = cJSON_GetErrorPtr();
    char col[32] = "?";
    if (at != NULL && at >= line && at <= line + n)
      snprintf(col, sizeof(col), "%d", (int)(at - line) + 1);
    return bad(why, len, "invalid JSON (near column %s)", col);
  }
  if (!cJSON_IsObject(j))
    rc = bad(why, len, "%s", "an event must be a JSON object");
  else if (natka_event_new(&ev) != 0)
    rc = bad(why, len, "%s", "out of memory");
  for (f = rc == 0 ? j->child : NULL; f != NULL && rc == 0; f = f->next)
    rc = set_field(ev, f, why, len);
  cJSON_Delete(j);
  if (rc != 0) {
    natka_event_free(ev);
    return rc;
  }
  *out = ev;
  return 0;
}

static void samples_free(sample *s, size_t n) {
  for (size_t i = 0; s != NULL && i < n; i++)
    natka_event_free(s[i].ev);
  free(s);
}

/* Every event of the file, or 2 naming the first bad line. Blank lines are
 * skipped. */
static int read_samples(natka__rules_cli *c, sample **out, size_t *nout) {
  char *buf = NULL, why[256];
  size_t len = 0, n = 0, cap = 0;
  sample *s = NULL;
  int rc = natka__cli_read_file(c, c->events, &buf, &len);
  char *p = buf;
  for (int line = 1; rc == 0 && p != NULL && p < buf + len; line++) {
    char *nl = memchr(p, '\n', (size_t)(buf + len - p));
    size_t l = nl != NULL ? (size_t)(nl - p) : (size_t)(buf + len - p);
    char *next = nl != NULL ? nl + 1 : NULL;
    if (l > 0 && p[l - 1] == '\r')
      l--;
    if (strspn(p, " \t") >= l) {
      p = next;
      continue;
    }
    if (n == cap) {
      cap = cap ? cap * 2 : 64;
      sample *ns = realloc(s, cap * sizeof(*s));
      if (ns == NULL) {
        rc = natka__cli_fail(c, NATKA__CLI_FAILED, "out of memory");
        break;
      }
      s = ns;
    }
    if (parse_event(p, l, &s[n].ev, why, sizeof(why)) != 0)
      rc = natka__cli_fail(c, NATKA__CLI_USAGE, "%s:%d: %s", c->events, line,
                           why);
    else
      s[n++].line = line;
    p = next;
  }
  free(buf);
  if (rc != 0) {
    samples_free(s, n);
    return rc;
  }
  *out = s;
  *nout = n;
  return 0;
}

/* ------------------------------------------------------------ verdicts */

static int ask(natka__rules *r, natka_event *ev, verdicts *v) {
  v->dedup_rc = natka__rules_dedup(r, ev, &v->key, &v->key_len, &v->key_rule,
                                   v->dedup_err, sizeof(v->dedup_err));
  v->degrade_rc = natka__rules_degrade(r, ev, &v->degrade, v->degrade_err,
                                       sizeof(v->degrade_err));
  v->route_rc =
      natka__rules_route(r, ev, &v->route, v->route_err, sizeof(v->route_err));
  return v->dedup_rc == NATKA_ENOMEM || v->degrade_rc == NATKA_ENOMEM ||
                 v->route_rc == NATKA_ENOMEM
             ? -1
             : 0;
}

static void verdicts_clear(verdicts *v) {
  free(v->key);
  free(v->key_rule);
  natka__degrade_clear(&v->degrade);
  natka__route_clear(&v->route);
}

/* Bytes as one space-free word: printable ASCII as is, the rest \xNN. */
static void put_word(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch > ' ' && ch < 0x7f && ch != '\\')
      putchar(ch);
    else
      printf("\\x%02x", ch);
  }
}

static void put_error(const char *err) {
  printf("error: %.*s", (int)strcspn(err, "\n"), err);
}

static void print_text(const sample *s, const verdicts *v) {
  const char *id = natka_event_id(s->ev), *kind = natka_event_kind(s->ev);
  printf("%d %s: dedup=", s->line, id ? id : kind ? kind : "-");
  if (v->dedup_rc != 0)
    put_error(v->dedup_err);
  else if (v->key == NULL)
    putchar('-');
  else
    put_word(v->key, v->key_len);

  const natka__degrade *d = &v->degrade;
  fputs(" degrade=", stdout);
  if (v->degrade_rc != 0)
    put_error(v->degrade_err);
  else if (!d->decided)
    putchar('-');
  else
    printf("%s%s%s", natka__degrade_kind_name(d->kind),
           d->subject || d->reason ? " " : "",
           d->subject  ? d->subject
           : d->reason ? d->reason
                       : "");

  fputs(" route=", stdout);
  if (v->route_rc != 0)
    put_error(v->route_err);
  else if (v->route.drop)
    fputs("drop", stdout);
  for (size_t i = 0; v->route_rc == 0 && i < v->route.n; i++)
    printf("%s%s", i ? "," : "", v->route.dests[i].topic);
  putchar('\n');
}

static cJSON *error_json(const char *err, const char *rule) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "error", err);
  if (rule != NULL)
    cJSON_AddStringToObject(o, "rule", rule);
  return o;
}

static cJSON *dest_json(const natka__dest *d) {
  cJSON *o = cJSON_CreateObject(), *hs;
  cJSON_AddStringToObject(o, "topic", d->topic);
  if (d->has_key) {
    char *k = natka__memdup(d->key ? d->key : "", d->key_len);
    cJSON_AddStringToObject(o, "key", k ? k : "");
    free(k);
  }
  if (d->partition >= 0)
    cJSON_AddNumberToObject(o, "partition", d->partition);
  if (d->nhdrs > 0 && (hs = cJSON_AddArrayToObject(o, "headers")) != NULL)
    for (size_t i = 0; i < d->nhdrs; i++) {
      const char *pair[2] = {d->hdrs[i].name, d->hdrs[i].value};
      cJSON_AddItemToArray(hs, cJSON_CreateStringArray(pair, 2));
    }
  return o;
}

static cJSON *verdicts_json(const sample *s, const verdicts *v) {
  const char *id = natka_event_id(s->ev), *kind = natka_event_kind(s->ev);
  const natka__degrade *d = &v->degrade;
  cJSON *j = cJSON_CreateObject(), *o, *a;
  cJSON_AddNumberToObject(j, "line", s->line);
  cJSON_AddItemToObject(j, "id",
                        id ? cJSON_CreateString(id) : cJSON_CreateNull());
  cJSON_AddItemToObject(j, "kind",
                        kind ? cJSON_CreateString(kind) : cJSON_CreateNull());

  if (v->dedup_rc != 0) {
    o = error_json(v->dedup_err, v->key_rule);
  } else if (v->key == NULL) {
    o = cJSON_CreateNull();
  } else {
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "key", v->key);
    cJSON_AddStringToObject(o, "rule", v->key_rule ? v->key_rule : "");
  }
  cJSON_AddItemToObject(j, "dedup", o);

  if (v->degrade_rc != 0) {
    o = error_json(v->degrade_err, d->rule);
  } else if (!d->decided) {
    o = cJSON_CreateNull();
  } else {
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "verdict", natka__degrade_kind_name(d->kind));
    if (d->subject != NULL)
      cJSON_AddStringToObject(o, "subject", d->subject);
    if (d->reason != NULL)
      cJSON_AddStringToObject(o, "reason", d->reason);
    cJSON_AddStringToObject(o, "rule", d->rule ? d->rule : "");
  }
  cJSON_AddItemToObject(j, "degrade", o);

  if (v->route_rc != 0) {
    o = error_json(v->route_err, v->route.rule);
  } else {
    o = cJSON_CreateObject();
    if (v->route.drop)
      cJSON_AddTrueToObject(o, "drop");
    else if ((a = cJSON_AddArrayToObject(o, "dests")) != NULL)
      for (size_t i = 0; i < v->route.n; i++)
        cJSON_AddItemToArray(a, dest_json(&v->route.dests[i]));
    cJSON_AddItemToObject(o, "rule",
                          v->route.rule ? cJSON_CreateString(v->route.rule)
                                        : cJSON_CreateNull());
  }
  cJSON_AddItemToObject(j, "route", o);
  return j;
}

static int print_json(const sample *s, const verdicts *v) {
  cJSON *j = verdicts_json(s, v);
  char *text = j != NULL ? cJSON_PrintUnformatted(j) : NULL;
  cJSON_Delete(j);
  if (text == NULL)
    return -1;
  printf("%s\n", text);
  cJSON_free(text);
  return 0;
}

/* -------------------------------------------------------------- command */

static int load(natka__rules_cli *c, natka__rules *r) {
  char err[2048], name[256], (*names)[256] = calloc(c->nargs, sizeof(*names));
  int rc = names != NULL ? 0 : natka__cli_fail(c, 1, "out of memory");
  for (size_t i = 0; rc == 0 && i < c->nargs; i++) {
    rc = natka__cli_module_name(c, c->args[i], name, sizeof(name));
    for (size_t k = 0; rc == 0 && k < i; k++)
      if (strcmp(names[k], name) == 0)
        rc = natka__cli_fail(c, NATKA__CLI_USAGE,
                             "%s and %s are both module '%s'", c->args[k],
                             c->args[i], name);
    if (rc == 0 && natka__rules_load_file(r, c->args[i], err, sizeof(err)) != 0)
      rc = natka__cli_fail(c, NATKA__CLI_USAGE, "%s", err);
    if (rc == 0)
      memcpy(names[i], name, sizeof(name));
  }
  free(names);
  return rc;
}

static int set_switches(natka__rules_cli *c, natka__rules *r) {
  const char **names = calloc(c->nswitches + 1, sizeof(*names));
  const char **values = calloc(c->nswitches + 1, sizeof(*values));
  char **copies = calloc(c->nswitches + 1, sizeof(*copies));
  int rc = names && values && copies ? 0 : -1;
  for (size_t i = 0; rc == 0 && i < c->nswitches; i++) {
    if ((copies[i] = natka__strdup(c->switches[i])) == NULL) {
      rc = -1;
      break;
    }
    char *eq = strchr(copies[i], '=');
    *eq = '\0';
    names[i] = copies[i];
    values[i] = eq + 1;
  }
  if (rc == 0)
    rc = natka__rules_set_switches(r, names, values, c->nswitches);
  for (size_t i = 0; copies != NULL && i < c->nswitches; i++)
    free(copies[i]);
  free(copies);
  free(names);
  free(values);
  return rc == 0 ? 0 : natka__cli_fail(c, NATKA__CLI_FAILED, "out of memory");
}

int natka__cli_test(natka__rules_cli *c) {
  char err[2048];
  natka__rules *r = NULL;
  sample *s = NULL;
  size_t n = 0;
  int rc = natka__cli_rules_new(c, &r);
  if (rc == 0)
    rc = load(c, r);
  if (rc == 0 && natka__rules_selftest(r, err, sizeof(err)) != 0)
    fprintf(stderr, "rules test: self-test failed (going on): %s\n", err);
  if (rc == 0)
    rc = set_switches(c, r);
  if (rc == 0)
    rc = read_samples(c, &s, &n);
  for (size_t i = 0; rc == 0 && i < n; i++) {
    verdicts v = {0};
    if (ask(r, s[i].ev, &v) != 0)
      rc = natka__cli_fail(c, NATKA__CLI_FAILED, "line %d: out of memory",
                           s[i].line);
    else if (!c->json)
      print_text(&s[i], &v);
    else if (print_json(&s[i], &v) != 0)
      rc = natka__cli_fail(c, NATKA__CLI_FAILED, "out of memory");
    verdicts_clear(&v);
  }
  samples_free(s, n);
  natka__rules_free(r);
  return rc;
}
