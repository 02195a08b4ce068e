/*
 * natka.core: the core's rules host and events as a Lua C module, so that
 * busted specs (and rule authors at a prompt) exercise the real C code.
 *
 *   local core = require "natka.core"
 *   local ev = core.event{kind = "orders.created", data = "{}"}
 *   local rules = core.rules{instruction_budget = 1e6, time_limit_ms = 200,
 *                            load_time_limit_ms = 2000, memory_mb = 64}
 *   assert(rules:load("orders", "return { route = function(ev) ... end }"))
 *   local dests, rule = rules:route(ev)  -- "drop" | { {topic=...}, ... }
 *                                        -- or nil, err, rule
 *   local key, rule = rules:dedup(ev)    -- key | nil, or nil, err, rule
 *   local v, extra = rules:degrade(ev)   -- "hold", {subject=, reason=,
 *                                        -- rule=} or nil, err, rule
 *   rules:set_switches{ mode = "x" }     -- true, or nil, err
 *   assert(rules:selftest())             -- true, or nil, err
 *   rules:logs()                         -- lines print() sent, then cleared
 *   rules:close()                        -- also __gc and __close
 *
 * The rules userdata is created inert and gets its natka__rules only once
 * natka__rules_new() succeeds; every method checks that it is still open.
 */
#include <lauxlib.h>
#include <lua.h>
#include <stdlib.h>
#include <string.h>

#include "lua_event.h"
#include "natka/natka.h"
#include "rules_int.h"
#include "util.h"

#define RULES_MT "natka.rules"
#define ROUTE_MT "natka.route"
#define DEDUP_MT "natka.dedup"
#define DEGRADE_MT "natka.degrade"
#define MAX_LOG_LINES 256

typedef struct rules_ud {
  natka__rules *rules; /* NULL: not created yet, or closed */
  natka__log log;
  int has_log;
  char *lines[MAX_LOG_LINES]; /* captured log lines, oldest first */
  size_t nlines;
} rules_ud;

#define check_rules(L, i) ((rules_ud *)luaL_checkudata(L, i, RULES_MT))

int luaopen_natka_core(lua_State *L);

static natka__rules *open_rules(lua_State *L, int i) {
  rules_ud *u = check_rules(L, i);
  if (u->rules == NULL)
    luaL_error(L, "natka.rules is closed");
  return u->rules;
}

/* Keeps the lines natka logs for this rules state, for rules:logs(). */
static void capture(natka_log_level level, const char *msg, void *data) {
  rules_ud *u = data;
  if (u->nlines == MAX_LOG_LINES)
    return;
  size_t n = strlen(msg) + 8;
  char *line = malloc(n);
  if (line != NULL) {
    snprintf(line, n, "%s: %s", natka__log_level_name(level), msg);
    u->lines[u->nlines++] = line;
  }
}

static void clear_lines(rules_ud *u) {
  for (size_t i = 0; i < u->nlines; i++)
    free(u->lines[i]);
  u->nlines = 0;
}

/* ----------------------------------------------------------- functions */

static lua_Integer opt_int_field(lua_State *L, const char *f, lua_Integer def,
                                 lua_Integer max) {
  int isint = 0;
  lua_Integer v = def;
  if (lua_getfield(L, 1, f) != LUA_TNIL) {
    v = lua_tointegerx(L, -1, &isint);
    if (!isint || v < 0 || v > max)
      luaL_error(L, "natka.rules: %s must be an integer from 0 to %I", f,
                 (LUAI_UACINT)max);
  }
  lua_pop(L, 1);
  return v;
}

static const char *const option_names[] = {"instruction_budget",
                                           "time_limit_ms",
                                           "load_time_limit_ms",
                                           "memory_mb",
                                           "max_answer_bytes",
                                           "default_topic",
                                           NULL};

/* core.rules{instruction_budget=, time_limit_ms=, load_time_limit_ms=,
 * memory_mb=, max_answer_bytes=, default_topic=}, with natka's defaults.
 * Stack: [opts?] -> [opts?, rules] */
static int core_rules(lua_State *L) {
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  for (lua_pushnil(L); lua_next(L, 1); lua_pop(L, 1)) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
    int known = 0;
    for (int i = 0; option_names[i] != NULL && !known; i++)
      known = strcmp(k, option_names[i]) == 0;
    if (!known)
      return luaL_error(L, "natka.rules: unknown option '%s'", k);
  }
  natka__rules_opts opts = {0};
  opts.instr_budget =
      opt_int_field(L, "instruction_budget", 1000000, (lua_Integer)1 << 40);
  opts.time_limit_ms = opt_int_field(L, "time_limit_ms", 200, 3600000);
  opts.load_time_limit_ms =
      opt_int_field(L, "load_time_limit_ms", 2000, 3600000);
  opts.mem_limit = (size_t)opt_int_field(L, "memory_mb", 64, 65536) << 20;
  opts.max_answer_bytes = (size_t)opt_int_field(L, "max_answer_bytes", 8 << 20,
                                                (lua_Integer)1 << 30);
  int t = lua_getfield(L, 1, "default_topic"); /* [opts, topic] */
  if (t != LUA_TNIL && t != LUA_TSTRING)
    return luaL_error(L, "natka.rules: default_topic must be a string");
  opts.default_topic = lua_tostring(L, -1);

  rules_ud *u = lua_newuserdatauv(L, sizeof(*u), 0); /* [opts, topic, ud] */
  memset(u, 0, sizeof(*u));
  luaL_setmetatable(L, RULES_MT);
  if (natka__log_init(&u->log, capture, u, NATKA_LOG_DEBUG) != 0)
    return luaL_error(L, "natka.rules: cannot create its log");
  u->has_log = 1;
  opts.log = &u->log;
  char err[512];
  if (natka__rules_new(&u->rules, &opts, err, sizeof(err)) != 0)
    return luaL_error(L, "%s", err);
  return 1;
}

/* ------------------------------------------------------------- methods */

/* Stack: [rules, name, source] -> [..., true | nil, err] */
static int rules_load(lua_State *L) {
  natka__rules *r = open_rules(L, 1);
  const char *name = luaL_checkstring(L, 2);
  size_t len;
  const char *src = luaL_checklstring(L, 3, &len);
  char err[1024];
  if (natka__rules_add_module(r, name, src, len, err, sizeof(err)) != 0) {
    luaL_pushfail(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* Stack: [rules, path] -> [..., true | nil, err] */
static int rules_load_file(lua_State *L) {
  natka__rules *r = open_rules(L, 1);
  const char *path = luaL_checkstring(L, 2);
  char err[1024];
  if (natka__rules_load_file(r, path, err, sizeof(err)) != 0) {
    luaL_pushfail(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* __gc of the box that holds a natka__route while it becomes Lua values, so
 * an error on the way cannot leak it. Stack: [box] -> [] */
static int route_gc(lua_State *L) {
  natka__route_clear(luaL_checkudata(L, 1, ROUTE_MT));
  return 0;
}

/* rules:route(ev) -> "drop" | {dest, ...}, rule | nil, err, rule.
 * Stack: [rules, ev] -> [rules, ev, box, results...] */
static int rules_route(lua_State *L) {
  natka__rules *r = open_rules(L, 1);
  natka_event *ev = natka__lua_event_check(L, 2);
  lua_settop(L, 2);
  natka__route *out = lua_newuserdatauv(L, sizeof(*out), 0);
  memset(out, 0, sizeof(*out));
  luaL_setmetatable(L, ROUTE_MT);
  char err[2048];
  if (natka__rules_route(r, ev, out, err, sizeof(err)) != 0) {
    luaL_pushfail(L);
    lua_pushstring(L, err);
    if (out->rule != NULL)
      lua_pushstring(L, out->rule);
    else
      lua_pushnil(L);
    natka__route_clear(out);
    return 3;
  }
  natka__route_push(L, out);
  if (out->rule != NULL)
    lua_pushstring(L, out->rule);
  else
    lua_pushnil(L);
  natka__route_clear(out);
  return 2;
}

static void push_nstring(lua_State *L, const char *s) {
  if (s != NULL)
    lua_pushstring(L, s);
  else
    lua_pushnil(L);
}

/* What natka__rules_dedup hands back, boxed like a route. */
typedef struct dedup_box {
  char *key, *rule;
  size_t len;
} dedup_box;

static void dedup_box_clear(dedup_box *b) {
  free(b->key);
  free(b->rule);
  b->key = b->rule = NULL;
}

/* __gc of the dedup box. Stack: [box] -> [] */
static int dedup_gc(lua_State *L) {
  dedup_box_clear(luaL_checkudata(L, 1, DEDUP_MT));
  return 0;
}

/* rules:dedup(ev) -> key, rule | nil (no key) | nil, err, rule.
 * Stack: [rules, ev] -> [rules, ev, box, results...] */
static int rules_dedup(lua_State *L) {
  natka__rules *r = open_rules(L, 1);
  natka_event *ev = natka__lua_event_check(L, 2);
  lua_settop(L, 2);
  dedup_box *b = lua_newuserdatauv(L, sizeof(*b), 0);
  memset(b, 0, sizeof(*b));
  luaL_setmetatable(L, DEDUP_MT);
  char err[2048];
  if (natka__rules_dedup(r, ev, &b->key, &b->len, &b->rule, err, sizeof(err)) !=
      0) {
    luaL_pushfail(L);
    lua_pushstring(L, err);
    push_nstring(L, b->rule);
    dedup_box_clear(b);
    return 3;
  }
  if (b->key == NULL) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushlstring(L, b->key, b->len);
  push_nstring(L, b->rule);
  dedup_box_clear(b);
  return 2;
}

/* __gc of the box that holds a natka__degrade. Stack: [box] -> [] */
static int degrade_gc(lua_State *L) {
  natka__degrade_clear(luaL_checkudata(L, 1, DEGRADE_MT));
  return 0;
}

/* rules:degrade(ev) -> verdict, { subject=, reason=, rule= } | nil, err,
 * rule. With no decision: "forward", {} (no rule).
 * Stack: [rules, ev] -> [rules, ev, box, results...] */
static int rules_degrade(lua_State *L) {
  natka__rules *r = open_rules(L, 1);
  natka_event *ev = natka__lua_event_check(L, 2);
  lua_settop(L, 2);
  natka__degrade *d = lua_newuserdatauv(L, sizeof(*d), 0);
  memset(d, 0, sizeof(*d));
  luaL_setmetatable(L, DEGRADE_MT);
  char err[2048];
  if (natka__rules_degrade(r, ev, d, err, sizeof(err)) != 0) {
    luaL_pushfail(L);
    lua_pushstring(L, err);
    push_nstring(L, d->rule);
    natka__degrade_clear(d);
    return 3;
  }
  lua_pushstring(L, natka__degrade_kind_name(d->kind));
  lua_createtable(L, 0, 3);
  push_nstring(L, d->subject);
  lua_setfield(L, -2, "subject");
  push_nstring(L, d->reason);
  lua_setfield(L, -2, "reason");
  push_nstring(L, d->rule);
  lua_setfield(L, -2, "rule");
  natka__degrade_clear(d);
  return 2;
}

/* rules:set_switches{ name = value, ... } -> true | nil, err. The strings
 * stay in the argument table while C reads them; the arrays are userdata.
 * Stack: [rules, t] -> [rules, t, names, values] */
static int rules_set_switches(lua_State *L) {
  natka__rules *r = open_rules(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  size_t n = 0;
  for (lua_pushnil(L); lua_next(L, 2); lua_pop(L, 1)) {
    if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
      return luaL_error(L, "natka.rules: switches must map string names to "
                           "string values");
    n++;
  }
  const char **names = lua_newuserdatauv(L, (n + 1) * sizeof(char *), 0);
  const char **values = lua_newuserdatauv(L, (n + 1) * sizeof(char *), 0);
  size_t i = 0;
  for (lua_pushnil(L); lua_next(L, 2); lua_pop(L, 1)) {
    names[i] = lua_tostring(L, -2);
    values[i++] = lua_tostring(L, -1);
  }
  int rc = natka__rules_set_switches(r, names, values, n);
  if (rc != 0) {
    luaL_pushfail(L);
    lua_pushstring(L, natka_strerror(rc));
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* rules:selftest() -> true | nil, err. Stack: [rules] -> [rules, results] */
static int rules_selftest(lua_State *L) {
  natka__rules *r = open_rules(L, 1);
  char err[4096];
  if (natka__rules_selftest(r, err, sizeof(err)) != 0) {
    luaL_pushfail(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* Stack: [rules] -> [rules, n] */
static int rules_count(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)natka__rules_count(open_rules(L, 1)));
  return 1;
}

/* The lines logged since the last call (print() from rules lands here).
 * Stack: [rules] -> [rules, lines] */
static int rules_logs(lua_State *L) {
  rules_ud *u = check_rules(L, 1);
  lua_createtable(L, (int)u->nlines, 0);
  for (size_t i = 0; i < u->nlines; i++) {
    lua_pushstring(L, u->lines[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  clear_lines(u);
  return 1;
}

/* close, __gc and __close: idempotent. Stack: [rules, ...] -> [] */
static int rules_close(lua_State *L) {
  rules_ud *u = check_rules(L, 1);
  natka__rules_free(u->rules);
  u->rules = NULL;
  clear_lines(u);
  if (u->has_log) {
    natka__log_destroy(&u->log);
    u->has_log = 0;
  }
  return 0;
}

/* Stack: [rules] -> [rules, text] */
static int rules_tostring(lua_State *L) {
  rules_ud *u = check_rules(L, 1);
  if (u->rules == NULL)
    lua_pushliteral(L, "natka.rules (closed)");
  else
    lua_pushfstring(L, "natka.rules (%I modules)",
                    (LUAI_UACINT)natka__rules_count(u->rules));
  return 1;
}

static const luaL_Reg core_functions[] = {
    {"event", natka__lua_event_new},
    {"rules", core_rules},
    {NULL, NULL},
};

static const luaL_Reg rules_methods[] = {
    {"load", rules_load},
    {"load_file", rules_load_file},
    {"route", rules_route},
    {"dedup", rules_dedup},
    {"degrade", rules_degrade},
    {"set_switches", rules_set_switches},
    {"selftest", rules_selftest},
    {"count", rules_count},
    {"logs", rules_logs},
    {"close", rules_close},
    {NULL, NULL},
};

static const luaL_Reg rules_metamethods[] = {
    {"__index", NULL}, /* the methods table, set below */
    {"__gc", rules_close},
    {"__close", rules_close},
    {"__tostring", rules_tostring},
    {NULL, NULL},
};

int luaopen_natka_core(lua_State *L) {
  natka__lua_event_register(L);
  luaL_newmetatable(L, RULES_MT);
  luaL_setfuncs(L, rules_metamethods, 0);
  luaL_newlib(L, rules_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  static const struct {
    const char *name;
    lua_CFunction gc;
  } boxes[] = {
      {ROUTE_MT, route_gc}, {DEDUP_MT, dedup_gc}, {DEGRADE_MT, degrade_gc}};
  for (size_t i = 0; i < sizeof(boxes) / sizeof(boxes[0]); i++) {
    luaL_newmetatable(L, boxes[i].name);
    lua_pushcfunction(L, boxes[i].gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
  }

  luaL_newlib(L, core_functions);
  lua_pushstring(L, natka_version());
  lua_setfield(L, -2, "version");
  return 1;
}
