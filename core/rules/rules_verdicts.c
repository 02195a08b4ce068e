/*
 * The rules host's other two verdicts and what feeds and checks them
 * (rules.h): dedup() keys, degrade() verdicts, the switches degrade() and
 * natka.switch() read, and self-tests, which run each module's `tests`
 * against its own route, dedup and degrade.
 *
 * Answers are read with raw accesses only, as in rules_answer.c. Self-tests
 * split the work: C calls the rule function under the budget and turns its
 * answer into the same C struct the gateway would get, then back into a
 * plain Lua value; the prelude (host.selftest in lua/natka/prelude.lua)
 * reads the cases and compares, so the format lives in one place.
 */
#include "rules_int.h"

#include <assert.h>
#include <lauxlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua_event.h"
#include "natka/error.h"
#include "util.h"

#define MAX_KEY 1024
#define MAX_REASON 1024
#define MAX_SUBJECT 255

static const char *const kind_names[] = {"forward", "dual", "hold", "dlq",
                                         "drop"};
#define NKINDS (sizeof(kind_names) / sizeof(kind_names[0]))

#define DEGRADE_FORMS                                                          \
  "expected \"forward\", \"dual\", \"hold\", \"dlq\", \"drop\", a table "      \
  "such as { \"dual\", subject = \"x.y\" } or nil"

const char *natka__degrade_kind_name(natka__degrade_kind kind) {
  return (unsigned)kind < NKINDS ? kind_names[kind] : NULL;
}

static int kind_of(const char *s) {
  for (size_t i = 0; i < NKINDS; i++)
    if (strcmp(s, kind_names[i]) == 0)
      return (int)i;
  return -1;
}

static int bad(char *err, size_t errlen, int *rc, const char *rule,
               const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Records why an answer was refused. Returns -1. */
static int bad(char *err, size_t errlen, int *rc, const char *rule,
               const char *fmt, ...) {
  char why[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof(why), fmt, ap);
  va_end(ap);
  *rc = natka__errf(err, errlen, NATKA_ERULE, "rule '%s': %s", rule, why);
  return -1;
}

static int nomem(char *err, size_t errlen, int *rc) {
  *rc = natka__errf(err, errlen, NATKA_ENOMEM, "rules: out of memory");
  return -1;
}

/* A returned string for a message: at most 64 bytes, one line. */
static const char *shown(lua_State *L, int idx, char *buf, size_t n) {
  size_t len, i;
  const char *s = lua_tolstring(L, idx, &len);
  for (i = 0; i < len && i < 64 && i + 4 < n; i++)
    buf[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
  if (i < len && i + 4 < n) {
    memcpy(buf + i, "...", 3);
    i += 3;
  }
  buf[i] = '\0';
  return buf;
}

/* ------------------------------------------------------------------ dedup */

int natka__rules_dedup_answer(lua_State *L, int idx, const char *rule,
                              void *out, char *err, size_t errlen, int *rc) {
  natka__dedup_key *k = out;
  size_t len;
  int t = lua_type(L, idx);
  if (t == LUA_TNIL)
    return 0;
  if (t != LUA_TSTRING)
    return bad(err, errlen, rc, rule,
               "dedup returned a %s; expected a key string of 1 to %d bytes "
               "or nil",
               lua_typename(L, t), MAX_KEY);
  const char *s = lua_tolstring(L, idx, &len);
  if (len == 0 || len > MAX_KEY)
    return bad(err, errlen, rc, rule,
               "dedup returned a key of %zu bytes; expected 1 to %d bytes, "
               "or nil for no key",
               len, MAX_KEY);
  if ((k->key = natka__memdup(s, len)) == NULL)
    return nomem(err, errlen, rc);
  k->len = len;
  return 1;
}

int natka__rules_dedup(natka__rules *r, natka_event *ev, char **key,
                       size_t *len, char **rule, char *err, size_t errlen) {
  if (key != NULL)
    *key = NULL;
  if (len != NULL)
    *len = 0;
  if (rule != NULL)
    *rule = NULL;
  if (r == NULL || ev == NULL || key == NULL || len == NULL)
    return natka__errf(err, errlen, NATKA_EINVAL, "rules: invalid argument");
  natka__dedup_key k = {0};
  natka__ask a = {.r = r,
                  .ev = ev,
                  .fn = NATKA__FN_DEDUP,
                  .convert = natka__rules_dedup_answer,
                  .out = &k,
                  .err = err,
                  .errlen = errlen};
  int rc = natka__rules_ask(&a);
  if (rule != NULL && a.rule != NULL &&
      (*rule = natka__strdup(a.rule)) == NULL && rc == 0)
    rc = natka__errf(err, errlen, NATKA_ENOMEM, "rules: out of memory");
  if (rc != 0) {
    free(k.key);
    return rc;
  }
  *key = k.key;
  *len = k.len;
  return 0;
}

/* ---------------------------------------------------------------- degrade */

/* A subject to publish to: 1..255 printable ASCII bytes, no spaces, tokens
 * separated by single dots, no wildcard token. */
static int subject_ok(const char *s, size_t len) {
  if (len == 0 || len > MAX_SUBJECT || s[0] == '.' || s[len - 1] == '.')
    return 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] <= 0x20 || s[i] >= 0x7f || (s[i] == '.' && s[i + 1] == '.'))
      return 0;
    if ((s[i] == '*' || s[i] == '>') && (i == 0 || s[i - 1] == '.') &&
        (i + 1 == len || s[i + 1] == '.'))
      return 0;
  }
  return 1;
}

/*
 * Field `field` (subject or reason) of the table at idx into *dst, when
 * present: it must be a string, and allowed with this kind. Returns 0 or -1.
 * Stack: unchanged
 */
static int extra_field(lua_State *L, int idx, const char *rule, int kind,
                       const char *field, int allowed, char **dst, char *err,
                       size_t errlen, int *rc) {
  size_t len;
  char b[80];
  lua_pushstring(L, field);
  int t = lua_rawget(L, idx), rv = 0;
  const char *s = t == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
  if (t == LUA_TNIL)
    rv = 0;
  else if (!allowed)
    rv = bad(err, errlen, rc, rule, "degrade: '%s' does not go with \"%s\"",
             field, kind_names[kind]);
  else if (s == NULL)
    rv = bad(err, errlen, rc, rule, "degrade: '%s' must be a string, got %s",
             field, lua_typename(L, t));
  else if (*field == 's' && !subject_ok(s, len))
    rv = bad(err, errlen, rc, rule,
             "degrade: invalid subject '%s' (1 to %d printable characters, "
             "tokens separated by '.', no wildcards)",
             shown(L, -1, b, sizeof(b)), MAX_SUBJECT);
  else if (*field == 'r' && (strlen(s) != len || len > MAX_REASON))
    rv = bad(err, errlen, rc, rule,
             "degrade: 'reason' must be text of at most %d bytes", MAX_REASON);
  else if ((*dst = natka__memdup(s, len)) == NULL)
    rv = nomem(err, errlen, rc);
  lua_pop(L, 1);
  return rv;
}

/* The table form at idx: { kind, subject = (dual), reason = (dlq, drop,
 * hold) }. Returns the kind, or -1. Stack: unchanged */
static int degrade_table(lua_State *L, int idx, const char *rule,
                         natka__degrade *d, char *err, size_t errlen, int *rc) {
  char b[80];
  for (lua_pushnil(L); lua_next(L, idx); lua_pop(L, 1)) {
    int t = lua_type(L, -2);
    const char *k = t == LUA_TSTRING ? lua_tostring(L, -2) : "";
    if ((t == LUA_TNUMBER && lua_isinteger(L, -2) &&
         lua_tointeger(L, -2) == 1) ||
        strcmp(k, "subject") == 0 || strcmp(k, "reason") == 0)
      continue;
    lua_pop(L, 2);
    return bad(err, errlen, rc, rule,
               "degrade returned a table with %s%s%s; " DEGRADE_FORMS,
               *k ? "unknown field '" : "a ", *k ? k : lua_typename(L, t),
               *k ? "'" : " key");
  }
  int kind = -1;
  if (lua_rawgeti(L, idx, 1) == LUA_TSTRING)
    kind = kind_of(lua_tostring(L, -1));
  if (kind < 0) {
    int t = lua_type(L, -1);
    if (t == LUA_TSTRING)
      bad(err, errlen, rc, rule,
          "degrade returned a table whose first item is \"%s\"; " DEGRADE_FORMS,
          shown(L, -1, b, sizeof(b)));
    else
      bad(err, errlen, rc, rule,
          "degrade returned a table whose first item is %s; " DEGRADE_FORMS,
          t == LUA_TNIL ? "missing" : lua_typename(L, t));
    lua_pop(L, 1);
    return -1;
  }
  lua_pop(L, 1);
  int has_reason = kind == NATKA__DEGRADE_HOLD || kind == NATKA__DEGRADE_DLQ ||
                   kind == NATKA__DEGRADE_DROP;
  if (extra_field(L, idx, rule, kind, "subject", kind == NATKA__DEGRADE_DUAL,
                  &d->subject, err, errlen, rc) < 0 ||
      extra_field(L, idx, rule, kind, "reason", has_reason, &d->reason, err,
                  errlen, rc) < 0)
    return -1;
  return kind;
}

int natka__rules_degrade_answer(lua_State *L, int idx, const char *rule,
                                void *out, char *err, size_t errlen, int *rc) {
  natka__degrade *d = out;
  char b[80];
  int kind, t = lua_type(L, idx);
  if (t == LUA_TNIL)
    return 0;
  if (t == LUA_TSTRING) {
    if ((kind = kind_of(lua_tostring(L, idx))) < 0)
      return bad(err, errlen, rc, rule,
                 "degrade returned \"%s\"; " DEGRADE_FORMS,
                 shown(L, idx, b, sizeof(b)));
  } else if (t == LUA_TTABLE) {
    if ((kind = degrade_table(L, idx, rule, d, err, errlen, rc)) < 0)
      return -1;
  } else
    return bad(err, errlen, rc, rule, "degrade returned a %s; " DEGRADE_FORMS,
               lua_typename(L, t));
  d->kind = (natka__degrade_kind)kind;
  d->decided = 1;
  return 1;
}

void natka__degrade_clear(natka__degrade *d) {
  if (d == NULL)
    return;
  free(d->subject);
  free(d->reason);
  free(d->rule);
  memset(d, 0, sizeof(*d));
  d->kind = NATKA__DEGRADE_FORWARD;
}

/* Frees what the answer holds, keeping d->rule. */
static void degrade_clear_answer(natka__degrade *d) {
  char *rule = d->rule;
  d->rule = NULL;
  natka__degrade_clear(d);
  d->rule = rule;
}

int natka__rules_degrade(natka__rules *r, natka_event *ev, natka__degrade *out,
                         char *err, size_t errlen) {
  if (out != NULL) {
    memset(out, 0, sizeof(*out));
    out->kind = NATKA__DEGRADE_FORWARD;
  }
  if (r == NULL || ev == NULL || out == NULL)
    return natka__errf(err, errlen, NATKA_EINVAL, "rules: invalid argument");
  natka__ask a = {.r = r,
                  .ev = ev,
                  .fn = NATKA__FN_DEGRADE,
                  .convert = natka__rules_degrade_answer,
                  .out = out,
                  .err = err,
                  .errlen = errlen};
  int rc = natka__rules_ask(&a);
  if (a.rule != NULL && (out->rule = natka__strdup(a.rule)) == NULL && rc == 0)
    rc = natka__errf(err, errlen, NATKA_ENOMEM, "rules: out of memory");
  if (rc != 0) /* out->rule still names the module that failed */
    degrade_clear_answer(out);
  return rc;
}

void natka__degrade_push(lua_State *L, const natka__degrade *d) {
  lua_createtable(L, 1, 2);
  lua_pushstring(L, kind_names[d->kind]);
  lua_rawseti(L, -2, 1);
  if (d->subject != NULL) {
    lua_pushstring(L, d->subject);
    lua_setfield(L, -2, "subject");
  }
  if (d->reason != NULL) {
    lua_pushstring(L, d->reason);
    lua_setfield(L, -2, "reason");
  }
}

/* --------------------------------------------------------------- switches */

typedef struct switches_ctx {
  const char *const *names, *const *values;
  size_t n;
} switches_ctx;

/* Builds the new set aside and stores it with one registry write.
 * Stack: [c] -> [c, ...] */
static int switches_entry(lua_State *L) {
  switches_ctx *c = lua_touserdata(L, 1);
  lua_getfield(L, LUA_REGISTRYINDEX, NATKA__RULES_REG_HOST);
  lua_getfield(L, -1, "readonly"); /* [c, host, readonly] */
  lua_createtable(L, 0, c->n > 64 ? 64 : (int)c->n);
  for (size_t i = 0; i < c->n; i++) {
    lua_pushstring(L, c->names[i]);
    lua_pushstring(L, c->values[i]);
    lua_rawset(L, -3);
  }
  lua_pushliteral(L, "switches");
  lua_call(L, 2, 1); /* [c, host, view] */
  lua_setfield(L, LUA_REGISTRYINDEX, NATKA__RULES_REG_SWITCHES);
  return 0;
}

int natka__rules_set_switches(natka__rules *r, const char *const *names,
                              const char *const *values, size_t n) {
  if (r == NULL || (n > 0 && (names == NULL || values == NULL)))
    return NATKA_EINVAL;
  for (size_t i = 0; i < n; i++)
    if (names[i] == NULL || values[i] == NULL)
      return NATKA_EINVAL;
  lua_State *L = r->L;
  int top = lua_gettop(L);
  switches_ctx c = {.names = names, .values = values, .n = n};
  lua_pushcfunction(L, switches_entry);
  lua_pushlightuserdata(L, &c);
  int st = lua_pcall(L, 1, 0, 0);
  lua_settop(L, top);
  if (st != LUA_OK) {
    lua_gc(L, LUA_GCCOLLECT);
    return NATKA_ENOMEM;
  }
  return 0;
}

/* -------------------------------------------------------------- self-tests */

typedef struct selftest_ctx {
  natka__rules *r;
  const char *module; /* the module whose tests run */
  char *err;
  size_t errlen;
  int rc;
  int collect;
  int out_of_time; /* the load time ran out during a case */
} selftest_ctx;

/* One rule call of a case and what it holds in C until it is a Lua value. */
typedef struct run_ctx {
  selftest_ctx *st;
  const natka__module *m;
  int fn;
  natka__route route;
  natka__dedup_key key;
  natka__degrade degrade;
  char err[2048];
} run_ctx;

static const natka__rules_convert converters[NATKA__NFNS] = {
    natka__rules_answer, natka__rules_dedup_answer,
    natka__rules_degrade_answer};

/* Calls the function, converts its answer as the gateway would and pushes
 * it back as a plain value. Stack: [c, ev] -> [c, ev, ..., ok, value] */
static int run_entry(lua_State *L) {
  run_ctx *c = lua_touserdata(L, 1);
  int rc = 0;
  if (c->m->fns[c->fn] == LUA_NOREF) { /* like a function returning nil */
    lua_pushboolean(L, 1);
    lua_pushnil(L);
    return 2;
  }
  if (natka__rules_call(c->st->r, c->m, c->fn, 2, c->err, sizeof(c->err),
                        &c->st->collect) != 0) {
    lua_pushboolean(L, 0);
    lua_pushstring(L, c->err);
    return 2;
  }
  void *outs[NATKA__NFNS] = {&c->route, &c->key, &c->degrade};
  int d = converters[c->fn](L, 3, c->m->name, outs[c->fn], c->err,
                            sizeof(c->err), &rc);
  lua_pushboolean(L, d >= 0);
  if (d < 0)
    lua_pushstring(L, c->err);
  else if (d == 0)
    lua_pushnil(L);
  else if (c->fn == NATKA__FN_ROUTE)
    natka__route_push(L, &c->route);
  else if (c->fn == NATKA__FN_DEDUP)
    lua_pushlstring(L, c->key.key, c->key.len);
  else
    natka__degrade_push(L, &c->degrade);
  return 2;
}

/*
 * run(fn, ev, switches), the closure host.selftest gets for one module
 * (upvalues: the selftest_ctx and the module's index): makes `switches` the
 * current set and calls the module's route, dedup or degrade with a view of
 * ev lent for the call only, as the gateway does. Returns true and the
 * answer (nil for none), or false and why it failed. What C holds is freed
 * and the view detached before any error goes on.
 * Stack: [fn, ev, switches] -> [fn, ev, view, ok, value]
 */
static int selftest_run(lua_State *L) {
  selftest_ctx *st = lua_touserdata(L, lua_upvalueindex(1));
  const natka__module *m = &st->r->mods[lua_tointeger(L, lua_upvalueindex(2))];
  const char *what = luaL_checkstring(L, 1);
  int fn = 0;
  while (fn < NATKA__NFNS && strcmp(what, natka__rules_fn_names[fn]) != 0)
    fn++;
  if (fn == NATKA__NFNS)
    return luaL_error(L, "no rule function '%s'", what);
  natka_event *ev = natka__lua_event_check(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 3);
  lua_setfield(L, LUA_REGISTRYINDEX, NATKA__RULES_REG_SWITCHES);
  natka__lua_event_push(L, ev, 0); /* [fn, ev, view] */

  run_ctx c = {.st = st, .m = m, .fn = fn};
  c.degrade.kind = NATKA__DEGRADE_FORWARD;
  lua_pushcfunction(L, run_entry);
  lua_pushlightuserdata(L, &c);
  lua_pushvalue(L, 3);
  /* The case's event carries the budget of its route, dedup and degrade. */
  natka__rules *r = st->r;
  natka__rules_arm(r, &ev->spent, r->instr_budget, r->time_ns);
  int s = lua_pcall(L, 2, 2, 0); /* [fn, ev, view, ok, value] */
  natka__rules_disarm(r);
  natka__lua_event_detach(L, 3);
  natka__route_clear(&c.route);
  free(c.key.key);
  natka__degrade_clear(&c.degrade);
  r->current = NULL;
  if (s != LUA_OK)
    return lua_error(L);
  if (r->killed == NATKA__KILL_LOAD_TIME) { /* no case may pass by it */
    st->out_of_time = 1;
    return luaL_error(L, "out of time");
  }
  return 2;
}

/* Hands each module's tests to host.selftest, stopping at the first
 * failure. Stack: [c] -> [c, ...] */
static int selftest_entry(lua_State *L) {
  selftest_ctx *c = lua_touserdata(L, 1);
  natka__rules *r = c->r;
  for (size_t i = 0; i < r->nmods; i++) {
    const natka__module *m = &r->mods[i];
    lua_rawgeti(L, LUA_REGISTRYINDEX, m->table); /* [c, module] */
    lua_pushliteral(L, "tests");
    if (lua_rawget(L, 2) == LUA_TNIL) { /* [c, module, tests] */
      lua_settop(L, 1);
      continue;
    }
    c->module = m->name;
    lua_getfield(L, LUA_REGISTRYINDEX, NATKA__RULES_REG_HOST);
    lua_getfield(L, -1, "selftest"); /* [c, module, tests, host, selftest] */
    lua_pushstring(L, m->name);
    lua_pushvalue(L, 3);
    lua_pushlightuserdata(L, c);
    lua_pushinteger(L, (lua_Integer)i);
    lua_pushcclosure(L, selftest_run, 2);
    lua_call(L, 3, 1); /* [c, module, tests, host, failure | nil] */
    if (!lua_isnil(L, -1)) {
      c->rc = natka__errf(c->err, c->errlen, NATKA_ERULE, "%s",
                          lua_tostring(L, -1));
      return 0;
    }
    lua_settop(L, 1);
  }
  return 0;
}

int natka__rules_selftest(natka__rules *r, char *err, size_t errlen) {
  if (r == NULL)
    return natka__errf(err, errlen, NATKA_EINVAL, "rules: invalid argument");
  lua_State *L = r->L;
  int top = lua_gettop(L);
  selftest_ctx c = {.r = r, .err = err, .errlen = errlen};
  /* The switches in force, put back whatever the cases set. Fetching an
   * existing registry field with an interned key allocates nothing. */
  lua_getfield(L, LUA_REGISTRYINDEX, NATKA__RULES_REG_SWITCHES);
  natka__rules_load_begin(r);
  lua_pushcfunction(L, selftest_entry);
  lua_pushlightuserdata(L, &c);
  int st = lua_pcall(L, 1, 0, 0);
  if (natka__rules_load_end(r) || c.out_of_time)
    c.rc = natka__rules_failure(r, err, errlen, "module", c.module, LUA_OK,
                                NULL, NATKA__KILL_LOAD_TIME, 0);
  else if (st != LUA_OK)
    c.rc = natka__rules_failure(r, err, errlen, "module", c.module, st,
                                lua_tostring(L, -1), 0, 0);
  lua_settop(L, top + 1);
  lua_setfield(L, LUA_REGISTRYINDEX, NATKA__RULES_REG_SWITCHES);
  r->current = NULL;
  lua_gc(L, LUA_GCCOLLECT); /* the cases' garbage, before the state goes live */
  assert(lua_gettop(L) == top);
  return c.rc;
}
