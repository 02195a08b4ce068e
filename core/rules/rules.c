/*
 * The rules host (rules.h): one sandboxed lua_State per natka__rules, its
 * modules, and asking them under a budget; route() lives here, dedup(),
 * degrade(), switches and self-tests in rules_verdicts.c.
 *
 * Everything that touches the Lua API runs inside lua_pcall, either of the
 * rule itself or of a small C entry function (setup, load_entry,
 * ask_entry), so an allocation refused by the memory cap can never reach
 * the panic handler. The C side keeps what it must free (module names,
 * destinations) in structs it owns, and registry refs are taken last, once
 * nothing else can fail.
 *
 * The sandbox is a whitelist. Only the base, string, table, math and utf8
 * libraries are opened, into the state's real globals, which rules never
 * see. The prelude (lua/natka/prelude.lua) copies a list of names from them
 * into a shared, read-only base, with library tables and `natka` behind
 * read-only views. Each module chunk gets its own _ENV whose __index is that
 * base, which raises for names it does not have; what a module assigns stays
 * in its own _ENV. Bytecode is never loaded.
 *
 * The budget belongs to the event (natka_event.spent): every rule call made
 * for it draws on one count of instructions and one time limit. The count
 * hook checks both every HOOK_STEP instructions; the allocator reads the
 * clock too, for C calls that keep allocating; and the standard functions
 * that would loop in C without allocating are replaced by bounded ones that
 * charge their work (rules_stdlib.c, and rules_pattern.c for patterns).
 */
#include "rules_int.h"

#include <assert.h>
#include <errno.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua_event.h"
#include "natka/natka.h"
#include "util.h"

extern const char natka__lua_prelude[];
extern const size_t natka__lua_prelude_len;

#define MAX_FRAMES 5       /* Lua frames in an error's traceback */
#define HOOK_STEP 100      /* instructions between two budget checks */
#define LOAD_BUDGET_MUL 10 /* a module chunk may use 10x an event */
#define MAX_SOURCE (16 << 20)
#define PRINT_LINE_MAX 1024    /* bytes of values one print() logs */
#define PRINT_EVENT_MAX 8192   /* bytes one event's print() calls log */
#define CLOCK_EVERY 64         /* allocations between two clock reads */
#define CLOCK_BYTES (64 << 10) /* and at every allocation this large */

#define REG_ENV_MT "natka.rules.env_mt" /* metatable of every module _ENV */

const char *const natka__rules_fn_names[NATKA__NFNS] = {"route", "dedup",
                                                        "degrade"};

typedef natka__module module;

/* Registry refs a module holds: its table and each function it has. */
static int module_refs(const module *m) {
  int n = 1;
  for (int f = 0; f < NATKA__NFNS; f++)
    n += m->fns[f] != LUA_NOREF;
  return n;
}

/* --------------------------------------------------------- memory, budget */

static void stop(natka__rules *r, int why);

/*
 * Counts every byte the state holds and refuses growth past mem_limit.
 * Returning NULL makes Lua run an emergency collection and retry before it
 * raises LUA_ERRMEM, so the cap is on live data, not on garbage. Shrinking
 * is never refused.
 *
 * It also watches the clock while budgeted work runs, since a C function
 * (string.rep, natka.mask_json) may run long between two hook calls: once
 * the deadline has passed, growth is refused until the hook runs again, so
 * the C call raises and the hook then stops the rule.
 */
static void *rules_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  natka__rules *r = ud;
  size_t old = ptr != NULL ? osize : 0;
  if (nsize == 0) {
    free(ptr);
    r->mem_used -= old;
    return NULL;
  }
  if (r->mem_limit != 0 && nsize > old &&
      r->mem_used + (nsize - old) > r->mem_limit)
    return NULL;
  if (r->deadline != 0 && nsize > old) {
    if (r->refuse)
      return NULL;
    if (!r->killed &&
        (nsize - old >= CLOCK_BYTES || ++r->ticks % CLOCK_EVERY == 0) &&
        natka__mono_ns() > r->deadline) {
      stop(r, r->deadline_kind);
      r->refuse = 1;
      return NULL;
    }
  }
  void *p = realloc(ptr, nsize);
  if (p != NULL)
    r->mem_used = r->mem_used - old + nsize;
  return p;
}

static natka__rules *rules_of(lua_State *L) {
  void *ud;
  lua_getallocf(L, &ud);
  return ud;
}

static const char *kill_text(int why) {
  return why == NATKA__KILL_INSTR ? "instruction budget exhausted"
                                  : "time limit exceeded";
}

/*
 * Checks the budget every HOOK_STEP instructions. Once the instructions or
 * the time are spent it raises, and re-arms itself to fire on every
 * instruction: a rule that catches the error with pcall is stopped again at
 * its very next instruction, until the error reaches our lua_pcall (Redis
 * does the same).
 */
static void charge(lua_State *L, natka__rules *r, int64_t units);

static void budget_hook(lua_State *L, lua_Debug *ar) {
  natka__rules *r = rules_of(L);
  (void)ar;
  r->refuse = 0; /* the error below needs a little memory */
  charge(L, r, HOOK_STEP);
}

/* Marks the work stopped and makes the hook fire on every instruction. */
static void stop(natka__rules *r, int why) {
  r->killed = why;
  lua_sethook(r->L, budget_hook, LUA_MASKCOUNT | LUA_MASKLINE, 1);
}

int natka__rules_arm(natka__rules *r, natka__rules_spent *acct, int64_t budget,
                     int64_t time_ns) {
  int64_t now = natka__mono_ns();
  r->acct = acct;
  r->started = now;
  r->used = 0;
  r->killed = NATKA__KILL_NONE;
  r->refuse = 0;
  r->limit = budget > 0 ? budget - acct->instr : INT64_MAX;
  r->deadline = time_ns > 0 ? now + (time_ns - acct->ns) : 0;
  r->deadline_kind = NATKA__KILL_TIME;
  if (r->load_deadline != 0 &&
      (r->deadline == 0 || r->load_deadline < r->deadline)) {
    r->deadline = r->load_deadline;
    r->deadline_kind = NATKA__KILL_LOAD_TIME;
  }
  if (r->limit <= 0)
    r->killed = NATKA__KILL_INSTR;
  else if (r->deadline != 0 && r->deadline <= now)
    r->killed = r->deadline_kind;
  if (r->limit != INT64_MAX || r->deadline != 0)
    lua_sethook(r->L, budget_hook, LUA_MASKCOUNT, HOOK_STEP);
  return r->killed;
}

void natka__rules_disarm(natka__rules *r) {
  lua_sethook(r->L, NULL, 0, 0);
  if (r->acct != NULL) {
    r->acct->instr += r->used;
    r->acct->ns += natka__mono_ns() - r->started;
  }
  r->acct = NULL;
  r->deadline = 0;
  r->refuse = 0;
}

/* Adds `units` to what the current call used; raises once the budget or
 * the deadline is past (and again at every later charge of a stopped
 * call, so that a pcall inside the rule cannot swallow the stop). */
static void charge(lua_State *L, natka__rules *r, int64_t units) {
  if (!r->killed) {
    r->used += units;
    if (r->used > r->limit)
      stop(r, NATKA__KILL_INSTR);
    else if (r->deadline != 0 && natka__mono_ns() > r->deadline)
      stop(r, r->deadline_kind);
    else
      return;
  }
  luaL_error(L, "%s", kill_text(r->killed));
}

void natka__rules_charge(lua_State *L, int64_t units) {
  natka__rules *r = rules_of(L);
  if (r->acct == NULL)
    return; /* not budgeted work (the prelude's self-test code) */
  charge(L, r, units);
}

/* ------------------------------------------------------- what rules see */

/*
 * Message handler of every rule call: the error plus a short traceback of
 * the rule's own Lua frames (C frames such as error() and the prelude's are
 * noise here). Short, because the reason goes to a log line and a DLQ
 * header. It is C so that it runs even after the budget hook has started
 * killing every Lua instruction. Stack: [err] -> [err, ..., text]
 */
static int msgh(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL)
    msg =
        lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addstring(&b, msg);
  luaL_addstring(&b, "\nstack traceback:");
  lua_Debug ar;
  int shown = 0;
  for (int level = 1; lua_getstack(L, level, &ar); level++) {
    char fn[LUA_IDSIZE + 64];
    lua_getinfo(L, "Sln", &ar);
    if (ar.currentline <= 0 || strcmp(ar.source, "=natka.prelude") == 0)
      continue;
    if (shown++ == MAX_FRAMES) {
      luaL_addstring(&b, "\n\t...");
      break;
    }
    if (ar.name != NULL)
      snprintf(fn, sizeof(fn), "function '%s'", ar.name);
    else if (*ar.what == 'm')
      snprintf(fn, sizeof(fn), "main chunk");
    else
      snprintf(fn, sizeof(fn), "function <%s:%d>", ar.short_src,
               ar.linedefined);
    lua_pushfstring(L, "\n\t%s:%d: in %s", ar.short_src, ar.currentline, fn);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  return 1;
}

/* Appends s[0..n) to line (at *len, which has room for PRINT_LINE_MAX
 * bytes), control characters and backslashes escaped. Returns 0, or -1
 * when it did not all fit. */
static int add_escaped(char *line, size_t *len, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    char e[4] = {'\\', 0, 0, 0};
    size_t w = 2;
    if (c == '\n' || c == '\r' || c == '\t' || c == '\\')
      e[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : c == '\t' ? 't' : '\\';
    else if (c < 0x20 || c == 0x7f) {
      e[1] = 'x';
      e[2] = hex[c >> 4];
      e[3] = hex[c & 15];
      w = 4;
    } else {
      e[0] = (char)c;
      w = 1;
    }
    if (*len + w > PRINT_LINE_MAX)
      return -1;
    memcpy(line + *len, e, w);
    *len += w;
  }
  return 0;
}

/*
 * print(...) for rules: one info line in natka's log, tagged with the
 * module being loaded or called; the values are separated by tabs, with
 * their control characters escaped, so a value cannot forge a line. A line
 * holds at most PRINT_LINE_MAX bytes of them, and an event's (or a module
 * load's) print() calls log at most PRINT_EVENT_MAX bytes in all: past it,
 * one line says so and the rest is dropped. Only what is logged is read.
 * Stack: [args...] -> [args...]
 */
static int sb_print(lua_State *L) {
  natka__rules *r = rules_of(L);
  natka__rules_spent none = {0}, *acct = r->acct != NULL ? r->acct : &none;
  const char *who = r->current ? r->current : "?";
  if (acct->printed >= PRINT_EVENT_MAX)
    return 0;
  char line[PRINT_LINE_MAX + 1];
  size_t len = 0;
  int n = lua_gettop(L), cut = 0;
  for (int i = 1; i <= n && !cut; i++) {
    size_t vlen;
    const char *v = luaL_tolstring(L, i, &vlen); /* [args..., v] */
    if (i > 1 && len < PRINT_LINE_MAX)
      line[len++] = '\t';
    else if (i > 1)
      cut = 1;
    cut = cut || add_escaped(line, &len, v, vlen) != 0;
    lua_pop(L, 1);
  }
  line[len] = '\0';
  natka__info(r->log, "rule '%s': %s%s", who, line, cut ? " [cut]" : "");
  acct->printed += len;
  if (acct->printed >= PRINT_EVENT_MAX)
    natka__info(r->log,
                "rule '%s': print() output of this event stopped at %d bytes",
                who, PRINT_EVENT_MAX);
  return 0;
}

static int now_ms(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)(natka__now_ns() / 1000000));
  return 1;
}

/* spent(): whether the running call has used up its budget or time. */
static int spent(lua_State *L) {
  lua_pushboolean(L, rules_of(L)->killed != NATKA__KILL_NONE);
  return 1;
}

/* natka.switch(name): the current value of one switch, or nil. A lookup in
 * the registry's view, whose __index is a plain table: no Lua function runs
 * and nothing is allocated. Stack: [name] -> [name, view, value] */
static int switch_value(lua_State *L) {
  luaL_checkstring(L, 1);
  lua_getfield(L, LUA_REGISTRYINDEX, NATKA__RULES_REG_SWITCHES);
  lua_pushvalue(L, 1);
  lua_gettable(L, -2);
  return 1;
}

/* event(fields) for self-tests: an owned event, or nil and why natka.event
 * refused the fields. Running out of memory stays an error, so that it is
 * never reported as a bad test. Stack: [fields] -> [fields, ev | nil, why] */
static int test_event(lua_State *L) {
  lua_settop(L, 1);
  lua_pushcfunction(L, natka__lua_event_new);
  lua_pushvalue(L, 1);
  int st = lua_pcall(L, 1, 1, 0);
  if (st == LUA_ERRMEM)
    return lua_error(L);
  if (st == LUA_OK)
    return 1;
  luaL_pushfail(L);
  lua_insert(L, -2);
  return 2;
}

static const luaL_Reg libs[] = {
    {LUA_GNAME, luaopen_base},       {LUA_STRLIBNAME, luaopen_string},
    {LUA_TABLIBNAME, luaopen_table}, {LUA_MATHLIBNAME, luaopen_math},
    {LUA_UTF8LIBNAME, luaopen_utf8}, {NULL, NULL},
};

/* Rules never see the real globals (the prelude copies a whitelist); these
 * go anyway, so that no prelude function could ever hand one out. */
static const char *const unsafe_names[] = {
    "dofile", "loadfile", "load", "require", "collectgarbage", "warn", NULL};

static const luaL_Reg prelude_funcs[] = {
    {"now_ms", now_ms},    {"print", sb_print},
    {"spent", spent},      {"switch", switch_value},
    {"event", test_event}, {"mask_json", natka__rules_mask_json},
    {NULL, NULL},
};

/*
 * Opens the allowed libraries and runs the prelude, which builds `natka`,
 * the metatable of module environments and the functions only C calls (see
 * lua/natka/prelude.lua); all are kept in the registry, with an empty set
 * of switches. Stack: [] -> []
 */
static int setup(lua_State *L) {
  for (const luaL_Reg *l = libs; l->name != NULL; l++) {
    luaL_requiref(L, l->name, l->func, 1);
    lua_pop(L, 1);
  }
  natka__rules_bound_stdlib(L);
  natka__rules_patterns(L);
  natka__lua_event_register(L);
  for (int i = 0; unsafe_names[i] != NULL; i++) {
    lua_pushnil(L);
    lua_setglobal(L, unsafe_names[i]);
  }
  /* The loader refuses bytecode, so nothing makes it either; ("").dump
   * would reach it through the string metatable, which rules may not read
   * (nor rewrite) any more. */
  lua_getglobal(L, LUA_STRLIBNAME);
  lua_pushnil(L);
  lua_setfield(L, -2, "dump");
  lua_pushliteral(L, "");
  lua_getmetatable(L, -1); /* [string, "", strmt] */
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 3);

  if (luaL_loadbufferx(L, natka__lua_prelude, natka__lua_prelude_len,
                       "=natka.prelude", "t") != LUA_OK)
    return lua_error(L);
  luaL_newlib(L, prelude_funcs);
  lua_pushfstring(L, "%d.%d.%d", NATKA_VERSION_MAJOR, NATKA_VERSION_MINOR,
                  NATKA_VERSION_PATCH);
  lua_setfield(L, -2, "version");
  lua_call(L, 1, 3); /* [natka, env_mt, host] */
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_getfield(L, 3, "readonly"); /* [natka, env_mt, host, readonly] */
  lua_newtable(L);
  lua_pushliteral(L, "switches");
  lua_call(L, 2, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, NATKA__RULES_REG_SWITCHES);
  lua_setfield(L, LUA_REGISTRYINDEX, NATKA__RULES_REG_HOST);
  lua_setfield(L, LUA_REGISTRYINDEX, REG_ENV_MT);
  lua_getfield(L, 1, "drop");
  lua_setfield(L, LUA_REGISTRYINDEX, NATKA__RULES_REG_DROP);
  lua_pop(L, 1);
  return 0;
}

/* ---------------------------------------------------------------- errors */

/*
 * The message for a Lua call or load that failed: "<what> '<name>': ..."
 * (or "rules: ..." outside any module). A spent budget and a refused
 * allocation get their own words; the Lua message for those says nothing
 * useful.
 */
int natka__rules_failure(natka__rules *r, char *err, size_t errlen,
                         const char *what, const char *name, int st,
                         const char *msg, int killed, int64_t budget) {
  char who[300], limit[64] = "";
  if (name != NULL)
    snprintf(who, sizeof(who), "%s '%s'", what, name);
  else
    snprintf(who, sizeof(who), "rules");
  if (killed == NATKA__KILL_INSTR)
    return natka__errf(err, errlen, NATKA_ERULE,
                       "%s: instruction budget exhausted (%lld instructions)",
                       who, (long long)budget);
  if (killed == NATKA__KILL_TIME)
    return natka__errf(err, errlen, NATKA_ERULE,
                       "%s: time limit exceeded (%lld ms per event)", who,
                       (long long)(r->time_ns / 1000000));
  if (killed == NATKA__KILL_LOAD_TIME)
    return natka__errf(err, errlen, NATKA_ERULE,
                       "%s: time limit exceeded (%lld ms to load and "
                       "self-test the rule set)",
                       who, (long long)(r->load_time_ns / 1000000));
  if (st != LUA_ERRMEM)
    return natka__errf(err, errlen, NATKA_ERULE, "%s: %s", who,
                       msg != NULL ? msg : "unknown error");
  if (r->mem_limit != 0) {
    int shift = r->mem_limit % (1u << 20) == 0 ? 20
                : r->mem_limit % 1024 == 0     ? 10
                                               : 0;
    snprintf(limit, sizeof(limit), " (limit %zu %s)", r->mem_limit >> shift,
             shift == 20   ? "MiB"
             : shift == 10 ? "KiB"
                           : "bytes");
  }
  return natka__errf(err, errlen, NATKA_ERULE, "%s: out of memory%s", who,
                     limit);
}

void natka__rules_load_begin(natka__rules *r) {
  r->load_started = natka__mono_ns();
  if (r->load_time_ns > 0)
    r->load_deadline = r->load_started + r->load_time_ns - r->load_spent_ns;
}

int natka__rules_load_end(natka__rules *r) {
  r->load_spent_ns += natka__mono_ns() - r->load_started;
  r->load_deadline = 0;
  return r->load_time_ns > 0 && r->load_spent_ns > r->load_time_ns;
}

/* A module name, as a NATS KV key or a file's basename: [A-Za-z0-9._/=-]. */
static int name_ok(const char *s) {
  size_t len = strlen(s);
  if (len == 0 || len > 255)
    return 0;
  return strspn(s, NATKA__RULES_ALNUM "._/=-") == len;
}

/* --------------------------------------------------------------- loading */

typedef struct load_ctx {
  natka__rules *r;
  const char *name, *chunkname, *src;
  size_t len;
  char *err;
  size_t errlen;
  int rc;
  module m; /* refs taken, until the module list owns them (no name yet) */
} load_ctx;

static const struct {
  const char *name;
  int type;
} module_fields[] = {
    {"route", LUA_TFUNCTION},
    {"dedup", LUA_TFUNCTION},
    {"degrade", LUA_TFUNCTION},
    {"tests", LUA_TTABLE},
};

/*
 * Compiles and runs one module chunk in a fresh _ENV, under the load budget,
 * and checks the table it returns. Refs are taken last. Stack: [c] -> [c, ...]
 */
static int load_entry(lua_State *L) {
  load_ctx *c = lua_touserdata(L, 1);
  natka__rules *r = c->r;
  natka__rules_spent spent = {0};
  int64_t budget = r->instr_budget * LOAD_BUDGET_MUL;
  lua_pushcfunction(L, msgh); /* [c, msgh] */
  /* Armed while compiling too: the parser is C, but the allocator watches
   * the load deadline. */
  int st = LUA_OK;
  if (natka__rules_arm(r, &spent, budget, 0) == NATKA__KILL_NONE)
    st = luaL_loadbufferx(L, c->src, c->len, c->chunkname, "t");
  if (st == LUA_OK && !r->killed) {
    lua_newtable(L); /* [c, msgh, chunk, env] */
    lua_pushvalue(L, -1);
    lua_setfield(L, -2, "_G");
    lua_getfield(L, LUA_REGISTRYINDEX, REG_ENV_MT);
    lua_setmetatable(L, -2);
    lua_setupvalue(L, -2, 1);   /* [c, msgh, chunk] */
    st = lua_pcall(L, 0, 1, 2); /* [c, msgh, module | err] */
  }
  natka__rules_disarm(r);
  if (st != LUA_OK || r->killed) {
    c->rc = natka__rules_failure(r, c->err, c->errlen, "module", c->name, st,
                                 lua_tostring(L, -1), r->killed, budget);
    return 0;
  }
  if (!lua_istable(L, 3)) {
    c->rc = natka__errf(c->err, c->errlen, NATKA_ERULE,
                        "module '%s': must return a table, got %s", c->name,
                        luaL_typename(L, 3));
    return 0;
  }
  for (size_t i = 0; i < sizeof(module_fields) / sizeof(module_fields[0]);
       i++) {
    lua_pushstring(L, module_fields[i].name);
    int t = lua_rawget(L, 3);
    lua_pop(L, 1);
    if (t != LUA_TNIL && t != module_fields[i].type) {
      c->rc = natka__errf(c->err, c->errlen, NATKA_ERULE,
                          "module '%s': %s must be a %s, got %s", c->name,
                          module_fields[i].name,
                          lua_typename(L, module_fields[i].type),
                          lua_typename(L, t));
      return 0;
    }
  }
  for (int f = 0; f < NATKA__NFNS; f++) {
    lua_pushstring(L, natka__rules_fn_names[f]);
    if (lua_rawget(L, 3) == LUA_TFUNCTION)
      c->m.fns[f] = luaL_ref(L, LUA_REGISTRYINDEX);
    else
      lua_pop(L, 1);
  }
  lua_pushvalue(L, 3);
  c->m.table = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

static void unref_module(lua_State *L, module *m) {
  for (int f = 0; f < NATKA__NFNS; f++)
    luaL_unref(L, LUA_REGISTRYINDEX, m->fns[f]);
  luaL_unref(L, LUA_REGISTRYINDEX, m->table);
}

static int add_module(natka__rules *r, const char *name, const char *chunkname,
                      const char *src, size_t len, char *err, size_t errlen) {
  if (!name_ok(name))
    return natka__errf(err, errlen, NATKA_ERULE,
                       "module '%s': invalid name (want 1 to 255 of "
                       "A-Z a-z 0-9 . _ / = -)",
                       name);
  lua_State *L = r->L;
  int top = lua_gettop(L);
  if (r->nmods == r->cap) {
    size_t cap = r->cap == 0 ? 8 : r->cap * 2;
    module *m = realloc(r->mods, cap * sizeof(*m));
    if (m == NULL)
      return natka__errf(err, errlen, NATKA_ENOMEM, "rules: out of memory");
    r->mods = m;
    r->cap = cap;
  }
  char *copy = natka__strdup(name);
  if (copy == NULL)
    return natka__errf(err, errlen, NATKA_ENOMEM, "rules: out of memory");

  load_ctx c = {
      .r = r,
      .name = name,
      .chunkname = chunkname,
      .src = src,
      .len = len,
      .err = err,
      .errlen = errlen,
      .m = {.table = LUA_NOREF, .fns = {LUA_NOREF, LUA_NOREF, LUA_NOREF}}};
  r->current = name;
  natka__rules_load_begin(r);
  lua_pushcfunction(L, load_entry);
  lua_pushlightuserdata(L, &c);
  int st = lua_pcall(L, 1, 0, 0);
  if (st != LUA_OK)
    c.rc = natka__rules_failure(r, err, errlen, "module", name, st,
                                lua_tostring(L, -1), 0, 0);
  lua_settop(L, top);
  natka__rules_load_end(r);
  r->current = NULL;
  if (c.rc != 0) {
    unref_module(L, &c.m);
    free(copy);
    lua_gc(L, LUA_GCCOLLECT); /* what the failed chunk left behind */
    assert(lua_gettop(L) == top);
    return c.rc;
  }

  size_t i = 0;
  while (i < r->nmods && strcmp(r->mods[i].name, name) < 0)
    i++;
  if (i < r->nmods && strcmp(r->mods[i].name, name) == 0) {
    module *old = &r->mods[i];
    r->nrefs -= module_refs(old);
    unref_module(L, old);
    free(old->name);
  } else {
    memmove(&r->mods[i + 1], &r->mods[i], (r->nmods - i) * sizeof(module));
    r->nmods++;
  }
  c.m.name = copy;
  r->mods[i] = c.m;
  r->nrefs += module_refs(&c.m);
  assert(lua_gettop(L) == top);
  return 0;
}

int natka__rules_add_module(natka__rules *r, const char *name, const char *src,
                            size_t len, char *err, size_t errlen) {
  if (r == NULL || name == NULL || (src == NULL && len > 0))
    return natka__errf(err, errlen, NATKA_EINVAL, "rules: invalid argument");
  char chunkname[300];
  snprintf(chunkname, sizeof(chunkname), "=%s", name);
  return add_module(r, name, chunkname, src != NULL ? src : "", len, err,
                    errlen);
}

int natka__rules_load_file(natka__rules *r, const char *path, char *err,
                           size_t errlen) {
  if (r == NULL || path == NULL)
    return natka__errf(err, errlen, NATKA_EINVAL, "rules: invalid argument");
  const char *base = strrchr(path, '/');
  base = base != NULL ? base + 1 : path;
  size_t n = strlen(base);
  if (n > 4 && strcmp(base + n - 4, ".lua") == 0)
    n -= 4;
  char name[256];
  if (n >= sizeof(name))
    return natka__errf(err, errlen, NATKA_ERULE, "%s: file name too long",
                       path);
  memcpy(name, base, n);
  name[n] = '\0';

  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return natka__errf(err, errlen, NATKA_EIO, "%s: %s", path, strerror(errno));
  char *buf = NULL, chunkname[512];
  long size = -1;
  int rc;
  if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0)
    rewind(f);
  if (size < 0)
    rc = natka__errf(err, errlen, NATKA_EIO, "%s: %s", path, strerror(errno));
  else if (size > MAX_SOURCE)
    rc = natka__errf(err, errlen, NATKA_ERULE, "%s: larger than %d MiB", path,
                     MAX_SOURCE >> 20);
  else if ((buf = malloc((size_t)size + 1)) == NULL)
    rc = natka__errf(err, errlen, NATKA_ENOMEM, "rules: out of memory");
  else if (fread(buf, 1, (size_t)size, f) != (size_t)size)
    rc = natka__errf(err, errlen, NATKA_EIO, "%s: read error", path);
  else {
    snprintf(chunkname, sizeof(chunkname), "@%s", path);
    rc = add_module(r, name, chunkname, buf, (size_t)size, err, errlen);
  }
  free(buf);
  fclose(f);
  return rc;
}

size_t natka__rules_count(const natka__rules *r) {
  return r != NULL ? r->nmods : 0;
}

/* ------------------------------------------------------ asking modules */

int natka__rules_call(natka__rules *r, const module *m, int fn, int ev_idx,
                      char *err, size_t errlen, int *collect) {
  lua_State *L = r->L;
  int base = lua_gettop(L), nargs = 1;
  r->current = m->name;
  if (r->killed) /* nothing left of the event's budget */
    return natka__rules_failure(r, err, errlen, "rule", m->name, LUA_OK, NULL,
                                r->killed, r->instr_budget);
  ev_idx = lua_absindex(L, ev_idx);
  lua_pushcfunction(L, msgh); /* [msgh] */
  lua_rawgeti(L, LUA_REGISTRYINDEX, m->fns[fn]);
  lua_pushvalue(L, ev_idx); /* [msgh, fn, ev] */
  if (fn == NATKA__FN_DEGRADE) {
    lua_getfield(L, LUA_REGISTRYINDEX, NATKA__RULES_REG_SWITCHES);
    nargs++;
  }
  int st = lua_pcall(L, nargs, 1, base + 1); /* [msgh, result | err] */
  if (st != LUA_OK || r->killed) {
    int rc =
        natka__rules_failure(r, err, errlen, "rule", m->name, st,
                             lua_tostring(L, -1), r->killed, r->instr_budget);
    *collect |= st == LUA_ERRMEM;
    lua_settop(L, base);
    return rc;
  }
  lua_remove(L, base + 1);
  return 0;
}

/* Asks each module's function in name order until one decides or fails.
 * Stack: [a, view] -> [a, view, ...] */
static int ask_modules(lua_State *L) {
  natka__ask *a = lua_touserdata(L, 1);
  natka__rules *r = a->r;
  for (size_t i = 0; i < r->nmods; i++) {
    const module *m = &r->mods[i];
    if (m->fns[a->fn] == LUA_NOREF)
      continue;
    a->rule = m->name;
    if ((a->rc = natka__rules_call(r, m, a->fn, 2, a->err, a->errlen,
                                   &a->collect)) != 0)
      return 0;
    int d = a->convert(L, 3, m->name, a->out, a->err, a->errlen, &a->rc);
    lua_settop(L, 2);
    if (d != 0)
      return 0;
  }
  a->rule = NULL;
  return 0;
}

/*
 * Lends the event to the rules for the duration of ask_modules and
 * detaches the view whatever happened, so a rule that kept it in a global
 * finds it dead. Stack: [a] -> [a, view, ...]
 */
static int ask_entry(lua_State *L) {
  natka__ask *a = lua_touserdata(L, 1);
  natka__rules *r = a->r;
  natka__lua_event_push(L, a->ev, 0); /* [a, view] */
  lua_pushcfunction(L, ask_modules);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  /* One budget for every module asked, drawn from the event's. */
  natka__rules_arm(r, &a->ev->spent, r->instr_budget, r->time_ns);
  int st = lua_pcall(L, 2, 0, 0);
  natka__rules_disarm(r);
  natka__lua_event_detach(L, 2);
  if (st != LUA_OK) { /* outside the rule itself: converting its answer */
    a->rc =
        natka__rules_failure(r, a->err, a->errlen, "rule", a->rule, st,
                             lua_tostring(L, -1), r->killed, r->instr_budget);
    a->collect = 1;
  }
  return 0;
}

int natka__rules_ask(natka__ask *a) {
  natka__rules *r = a->r;
  lua_State *L = r->L;
  int top = lua_gettop(L);
  a->rule = NULL;
  a->rc = 0;
  lua_pushcfunction(L, ask_entry);
  lua_pushlightuserdata(L, a);
  int st = lua_pcall(L, 1, 0, 0);
  if (st != LUA_OK) { /* the view itself could not be made */
    a->rc = natka__rules_failure(r, a->err, a->errlen, "rule", NULL, st,
                                 lua_tostring(L, -1), 0, 0);
    a->collect = 1;
  }
  lua_settop(L, top);
  r->current = NULL;
  if (a->collect)
    lua_gc(L, LUA_GCCOLLECT);
  assert(lua_gettop(L) == top);
  return a->rc;
}

/* --------------------------------------------------------------- routing */

static int default_route(natka__rules *r, natka_event *ev, natka__route *out) {
  char topic[256];
  if (r->default_topic != NULL)
    snprintf(topic, sizeof(topic), "%s", r->default_topic);
  else
    natka__topic_from_name(ev->kind != NULL ? ev->kind : "", topic,
                           sizeof(topic));
  if ((out->dests = calloc(1, sizeof(natka__dest))) == NULL)
    return NATKA_ENOMEM;
  out->n = 1;
  out->dests[0].partition = -1;
  if ((out->dests[0].topic = natka__strdup(topic)) == NULL)
    return NATKA_ENOMEM;
  out->bytes = strlen(topic);
  return 0;
}

int natka__rules_route(natka__rules *r, natka_event *ev, natka__route *out,
                       char *err, size_t errlen) {
  if (out != NULL)
    memset(out, 0, sizeof(*out));
  if (r == NULL || ev == NULL || out == NULL)
    return natka__errf(err, errlen, NATKA_EINVAL, "rules: invalid argument");
  natka__ask a = {.r = r,
                  .ev = ev,
                  .fn = NATKA__FN_ROUTE,
                  .convert = natka__rules_answer,
                  .out = out,
                  .err = err,
                  .errlen = errlen};
  int rc = natka__rules_ask(&a);
  if (a.rule != NULL && (out->rule = natka__strdup(a.rule)) == NULL && rc == 0)
    rc = natka__errf(err, errlen, NATKA_ENOMEM, "rules: out of memory");
  if (rc == 0 && a.rule == NULL && (rc = default_route(r, ev, out)) != 0)
    natka__errf(err, errlen, rc, "rules: out of memory");
  if (rc != 0) /* out->rule still names the module that failed */
    natka__route_clear_dests(out);
  return rc;
}

/* ------------------------------------------------------------- lifetime */

static int panic(lua_State *L) {
  fprintf(stderr, "natka: unprotected error in the rules state: %s\n",
          lua_tostring(L, -1) != NULL ? lua_tostring(L, -1) : "?");
  return 0; /* Lua aborts */
}

int natka__rules_new(natka__rules **out, const natka__rules_opts *opts,
                     char *err, size_t errlen) {
  static const natka__rules_opts defaults = {0};
  if (out == NULL)
    return natka__errf(err, errlen, NATKA_EINVAL, "rules: invalid argument");
  *out = NULL;
  if (opts == NULL)
    opts = &defaults;
  const char *dt = opts->default_topic;
  if (dt != NULL && dt[0] != '\0' && !natka__rules_topic_ok(dt, strlen(dt)))
    return natka__errf(
        err, errlen, NATKA_EINVAL,
        "rules: invalid default topic '%.250s' (" NATKA__RULES_TOPIC_RULE ")",
        dt);
  natka__rules *r = calloc(1, sizeof(*r));
  if (r == NULL)
    return natka__errf(err, errlen, NATKA_ENOMEM, "rules: out of memory");
  r->log = opts->log;
  r->instr_budget = opts->instr_budget > 0 ? opts->instr_budget : 0;
  if (opts->time_limit_ms > 0)
    r->time_ns = opts->time_limit_ms * 1000000;
  if (opts->load_time_limit_ms > 0)
    r->load_time_ns = opts->load_time_limit_ms * 1000000;
  r->mem_limit = opts->mem_limit;
  r->max_answer = opts->max_answer_bytes;
  if (dt != NULL && dt[0] != '\0' &&
      (r->default_topic = natka__strdup(dt)) == NULL)
    goto nomem;
  if ((r->L = lua_newstate(rules_alloc, r)) == NULL)
    goto nomem;
  lua_atpanic(r->L, panic);
  lua_pushcfunction(r->L, setup);
  if (lua_pcall(r->L, 0, 0, 0) != LUA_OK) {
    natka__errf(err, errlen, NATKA_ENOMEM,
                "rules: cannot set up the Lua state: %s (memory limit %zu "
                "bytes)",
                lua_tostring(r->L, -1), r->mem_limit);
    natka__rules_free(r);
    return NATKA_ENOMEM;
  }
  *out = r;
  return 0;
nomem:
  natka__rules_free(r);
  return natka__errf(err, errlen, NATKA_ENOMEM, "rules: out of memory");
}

void natka__rules_free(natka__rules *r) {
  if (r == NULL)
    return;
  int refs = 0;
  for (size_t i = 0; i < r->nmods; i++) {
    refs += module_refs(&r->mods[i]);
    free(r->mods[i].name);
  }
  assert(refs == r->nrefs);
  (void)refs;
  if (r->L != NULL)
    lua_close(r->L); /* frees every ref with the registry */
  free(r->mods);
  free(r->default_topic);
  free(r);
}
