/*
 * The event as Lua sees it (see lua_event.h): a full userdata of metatable
 * "natka.event" that holds a pointer to a natka_event and whether Lua owns
 * it. Fields are produced on demand by __index, so routing an event costs
 * one small userdata, not a table with copies of the payload.
 *
 * A borrowed view (the one rules receive) points into an event the C side
 * owns; natka__lua_event_detach() clears that pointer when the rule call
 * returns, so a view a rule kept in a global raises a clear error instead of
 * reading freed memory. An owned view (natka.core's event{...}) frees its
 * event in the one release function behind both __gc and __close.
 */
#include "lua_event.h"

#include <lauxlib.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "natka/error.h"

typedef struct event_ud {
  natka_event *ev; /* NULL: detached (borrowed) or released (owned) */
  int owned;
} event_ud;

#define check_event(L, i) ((event_ud *)luaL_checkudata(L, i, NATKA__EVENT_MT))

/* The event behind the view at i, raising when it is gone. */
static natka_event *live_event(lua_State *L, int i) {
  event_ud *u = check_event(L, i);
  if (u->ev == NULL) {
    if (u->owned)
      luaL_error(L, "natka.event used after it was closed");
    luaL_error(L, "natka.event used after its rule call returned");
  }
  return u->ev;
}

static void push_nstring(lua_State *L, const char *s) {
  if (s != NULL)
    lua_pushstring(L, s);
  else
    lua_pushnil(L);
}

/* Nanoseconds to milliseconds, rounding towards minus infinity so that
 * ts is monotonic across the epoch too. */
static lua_Integer ns_to_ms(int64_t ns) {
  int64_t ms = ns / 1000000;
  if (ns % 1000000 < 0)
    ms--;
  return (lua_Integer)ms;
}

/* ---------------------------------------------------------------- methods */

/* ev:header(name). Stack: [ev, name] -> [value or nil] */
static int ev_header(lua_State *L) {
  natka_event *ev = live_event(L, 1);
  const char *name = luaL_checkstring(L, 2);
  for (size_t i = 0; i < ev->nhdrs; i++) {
    if (strcasecmp(ev->hdrs[i].name, name) == 0) {
      lua_pushlstring(L, ev->hdrs[i].value, ev->hdrs[i].len);
      return 1;
    }
  }
  lua_pushnil(L);
  return 1;
}

/* ev:headers([name]). Stack: [ev, name?] -> [list] */
static int ev_headers(lua_State *L) {
  natka_event *ev = live_event(L, 1);
  const char *name = luaL_optstring(L, 2, NULL);
  lua_Integer n = 0;
  lua_createtable(L, name != NULL ? 0 : (int)ev->nhdrs, 0);
  for (size_t i = 0; i < ev->nhdrs; i++) {
    const natka__header *h = &ev->hdrs[i];
    if (name != NULL) {
      if (strcasecmp(h->name, name) != 0)
        continue;
      lua_pushlstring(L, h->value, h->len);
    } else {
      lua_createtable(L, 2, 0);
      lua_pushstring(L, h->name);
      lua_rawseti(L, -2, 1);
      lua_pushlstring(L, h->value, h->len);
      lua_rawseti(L, -2, 2);
    }
    lua_rawseti(L, -2, ++n);
  }
  return 1;
}

static const luaL_Reg event_methods[] = {
    {"header", ev_header},
    {"headers", ev_headers},
    {NULL, NULL},
};

/* ----------------------------------------------------------- metamethods */

/*
 * Methods come first so that `ev.header` on a detached view still finds the
 * function (which then raises the detached error when called); every data
 * field needs a live event. An unknown name raises rather than returning
 * nil: a rule that reads `ev.knd` has a typo, and silence would hide it.
 * Stack: [ev, key] -> [value]
 */
static int ev_index(lua_State *L) {
  check_event(L, 1);
  const char *k = luaL_checkstring(L, 2);
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL)
    return 1;
  lua_pop(L, 1);
  natka_event *ev = live_event(L, 1);
  if (strcmp(k, "id") == 0)
    push_nstring(L, ev->id);
  else if (strcmp(k, "kind") == 0)
    push_nstring(L, ev->kind);
  else if (strcmp(k, "ts") == 0)
    lua_pushinteger(L, ns_to_ms(ev->ts));
  else if (strcmp(k, "ts_ns") == 0)
    lua_pushinteger(L, (lua_Integer)ev->ts);
  else if (strcmp(k, "key") == 0) {
    if (ev->key != NULL)
      lua_pushlstring(L, ev->key, ev->key_len);
    else
      lua_pushnil(L);
  } else if (strcmp(k, "data") == 0)
    lua_pushlstring(L, ev->data != NULL ? ev->data : "", ev->data_len);
  else
    return luaL_error(L, "natka.event has no field '%s'", k);
  return 1;
}

/* Stack: [ev, key, value] -> error */
static int ev_newindex(lua_State *L) {
  check_event(L, 1);
  return luaL_error(L, "natka.event is read-only (cannot set '%s')",
                    luaL_tolstring(L, 2, NULL));
}

/* Stack: [ev] -> [text] */
static int ev_tostring(lua_State *L) {
  event_ud *u = check_event(L, 1);
  if (u->ev == NULL)
    lua_pushstring(L, u->owned ? "natka.event (closed)"
                               : "natka.event (detached)");
  else
    lua_pushfstring(L, "natka.event (kind=%s, id=%s)",
                    u->ev->kind != NULL ? u->ev->kind : "",
                    u->ev->id != NULL ? u->ev->id : "");
  return 1;
}

/* __gc and __close: frees an owned event once; a borrowed one is only
 * forgotten. Stack: [ev, ...] -> [] */
static int ev_release(lua_State *L) {
  event_ud *u = check_event(L, 1);
  if (u->owned)
    natka_event_free(u->ev);
  u->ev = NULL;
  return 0;
}

static const luaL_Reg event_metamethods[] = {
    {"__index", NULL}, /* a closure over the methods table, set below */
    {"__newindex", ev_newindex},
    {"__tostring", ev_tostring},
    {"__gc", ev_release},
    {"__close", ev_release},
    {NULL, NULL},
};

/* ------------------------------------------------------------ entry points */

void natka__lua_event_register(lua_State *L) {
  if (luaL_newmetatable(L, NATKA__EVENT_MT)) { /* [mt] */
    luaL_setfuncs(L, event_metamethods, 0);
    luaL_newlibtable(L, event_methods); /* [mt, methods] */
    luaL_setfuncs(L, event_methods, 0);
    lua_pushcclosure(L, ev_index, 1); /* [mt, __index] */
    lua_setfield(L, -2, "__index");
    /* Rules see a name, not the metatable they could rewrite. */
    lua_pushliteral(L, NATKA__EVENT_MT);
    lua_setfield(L, -2, "__metatable");
  }
  lua_pop(L, 1);
}

void natka__lua_event_push(lua_State *L, natka_event *ev, int owned) {
  event_ud *u = lua_newuserdatauv(L, sizeof(*u), 0);
  u->ev = NULL; /* inert until the metatable is set */
  u->owned = owned != 0;
  if (luaL_getmetatable(L, NATKA__EVENT_MT) == LUA_TNIL) {
    lua_pop(L, 1);
    natka__lua_event_register(L);
    luaL_getmetatable(L, NATKA__EVENT_MT);
  }
  lua_setmetatable(L, -2);
  u->ev = ev;
}

void natka__lua_event_detach(lua_State *L, int idx) {
  event_ud *u = luaL_testudata(L, idx, NATKA__EVENT_MT);
  if (u != NULL && !u->owned)
    u->ev = NULL;
}

natka_event *natka__lua_event_check(lua_State *L, int idx) {
  return live_event(L, idx);
}

/* Field `f` of the table at 1 when it is a string (binary-safe), else NULL.
 * Stack: [t, ev] -> [t, ev, value]; the caller pops once it has copied. */
static const char *opt_string_field(lua_State *L, const char *f, size_t *len) {
  int t = lua_getfield(L, 1, f);
  if (t != LUA_TNIL && t != LUA_TSTRING)
    luaL_error(L, "natka.event: field '%s' must be a string, got %s", f,
               lua_typename(L, t));
  return t == LUA_TSTRING ? lua_tolstring(L, -1, len) : NULL;
}

/* The same for id and kind, which are text. */
static const char *opt_text_field(lua_State *L, const char *f) {
  size_t len;
  const char *s = opt_string_field(L, f, &len);
  if (s != NULL && strlen(s) != len)
    luaL_error(L, "natka.event: field '%s' must not contain NUL bytes", f);
  return s;
}

static int opt_integer_field(lua_State *L, const char *f, lua_Integer *out) {
  int t = lua_getfield(L, 1, f);
  int ok = 0;
  if (t == LUA_TNUMBER)
    *out = lua_tointegerx(L, -1, &ok);
  lua_pop(L, 1);
  if (t == LUA_TNIL)
    return 0;
  if (!ok)
    luaL_error(L, "natka.event: field '%s' must be an integer, got %s", f,
               t == LUA_TNUMBER ? "a float" : lua_typename(L, t));
  return 1;
}

static void check_rc(lua_State *L, int rc, const char *what) {
  if (rc != 0)
    luaL_error(L, "natka.event: %s: %s", what, natka_strerror(rc));
}

/* headers = { {name, value}, ... }. Stack: [t, ev] -> [t, ev] */
static void add_headers(lua_State *L, natka_event *ev) {
  if (lua_getfield(L, 1, "headers") == LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  if (!lua_istable(L, -1))
    luaL_error(L, "natka.event: field 'headers' must be a table, got %s",
               luaL_typename(L, -1));
  lua_Integer n = luaL_len(L, -1);
  for (lua_Integer i = 1; i <= n; i++) {
    size_t vlen = 0;
    if (lua_geti(L, -1, i) != LUA_TTABLE)
      luaL_error(L, "natka.event: headers[%I] must be a {name, value} pair",
                 (LUAI_UACINT)i);
    lua_geti(L, -1, 1);
    lua_geti(L, -2, 2);
    const char *name =
        lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
    const char *value =
        lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &vlen) : NULL;
    if (name == NULL || name[0] == '\0' || value == NULL)
      luaL_error(L,
                 "natka.event: headers[%I] must be a {name, value} pair of "
                 "strings with a non-empty name",
                 (LUAI_UACINT)i);
    check_rc(L, natka_event_add_header(ev, name, value, vlen), "headers");
    lua_pop(L, 3);
  }
  lua_pop(L, 1);
}

static const char *const event_fields[] = {"id",  "kind", "ts",      "ts_ns",
                                           "key", "data", "headers", NULL};

/* Stack: [t] -> [t, ev] */
int natka__lua_event_new(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  for (lua_pushnil(L); lua_next(L, 1); lua_pop(L, 1)) {
    int known = 0;
    if (lua_type(L, -2) == LUA_TSTRING)
      for (int i = 0; event_fields[i] != NULL && !known; i++)
        known = strcmp(lua_tostring(L, -2), event_fields[i]) == 0;
    if (!known)
      return luaL_error(L, "natka.event: unknown field '%s'",
                        luaL_tolstring(L, -2, NULL));
  }

  /* Inert (owned, no event) until the event exists; from then on the GC
   * frees it whatever error the remaining fields raise. */
  natka__lua_event_push(L, NULL, 1);
  event_ud *u = check_event(L, 2);
  check_rc(L, natka_event_new(&u->ev), "new");
  natka_event *ev = u->ev;

  size_t len = 0;
  const char *s;
  if ((s = opt_text_field(L, "id")) != NULL)
    check_rc(L, natka_event_set_id(ev, s), "id");
  lua_pop(L, 1);
  if ((s = opt_text_field(L, "kind")) != NULL)
    check_rc(L, natka_event_set_kind(ev, s), "kind");
  lua_pop(L, 1);
  if ((s = opt_string_field(L, "key", &len)) != NULL)
    check_rc(L, natka_event_set_key(ev, s, len), "key");
  lua_pop(L, 1);
  if ((s = opt_string_field(L, "data", &len)) == NULL) {
    s = "";
    len = 0;
  }
  check_rc(L, natka_event_set_data(ev, s, len), "data");
  lua_pop(L, 1);

  lua_Integer ms = 0, ns = 0;
  int has_ms = opt_integer_field(L, "ts", &ms);
  int has_ns = opt_integer_field(L, "ts_ns", &ns);
  if (has_ms && has_ns)
    return luaL_error(L, "natka.event: give ts (ms) or ts_ns, not both");
  if (has_ms) {
    if (ms > INT64_MAX / 1000000 || ms < INT64_MIN / 1000000)
      return luaL_error(L, "natka.event: ts out of range");
    ns = ms * 1000000;
  }
  natka_event_set_ts(ev, (int64_t)ns);
  add_headers(L, ev);
  return 1;
}
