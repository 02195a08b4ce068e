/*
 * Evaluating a config chunk (config_int.h: natka__config_eval), and the
 * public natka_config_load_file / _load_string built on it.
 *
 * The chunk runs in a fresh lua_State of its own, closed again once the
 * returned table has been read: an empty environment with only the string,
 * table and math libraries and env(NAME[, DEFAULT]), an instruction budget
 * and a memory cap. The table it returns is walked with raw accesses, each
 * key either a schema key (stored through config.c's checks) or a section to
 * walk in turn.
 */
#include "config_int.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "natka/error.h"
#include "util.h"

/* A config is a few dozen assignments; this many instructions is far beyond
 * any honest config and stops `while true do end` in a fraction of a second. */
#define CONFIG_MAX_INSTRUCTIONS 10000000
/* A count hook cannot interrupt one long C call (string.rep), so the state's
 * memory is capped too. */
#define CONFIG_MAX_MEMORY ((size_t)64 << 20)

/* --- Values from Lua ----------------------------------------------------- */

/* The string at idx, which must be a real string (not a number) and hold no
 * NUL byte, or NULL with *rc set; `label` names it in the message. */
static const char *lua_text(lua_State *L, int idx, const char *label, char *err,
                            size_t errlen, int *rc) {
  size_t len;
  if (lua_type(L, idx) != LUA_TSTRING) {
    *rc = natka__config_bad(err, errlen, "'%s' must be a string, got %s", label,
                            luaL_typename(L, idx));
    return NULL;
  }
  const char *s = lua_tolstring(L, idx, &len);
  if (strlen(s) != len) {
    *rc = natka__config_bad(err, errlen, "'%s' must not contain NUL bytes",
                            label);
    return NULL;
  }
  return s;
}

/* A sequence of strings: keys 1..n and nothing else. */
static int lua_list(lua_State *L, int idx, const natka__config_row *r,
                    natka__strlist *out, char *err, size_t errlen) {
  lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
  int rc = 0;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    lua_Integer k = lua_isinteger(L, -2) ? lua_tointeger(L, -2) : 0;
    lua_pop(L, 1);
    if (k < 1 || k > n) {
      lua_pop(L, 1);
      return natka__config_bad(
          err, errlen,
          "'%s' must be a list of strings, got a table with other keys",
          r->key);
    }
  }
  for (lua_Integer i = 1; rc == 0 && i <= n; i++) {
    char label[NATKA__CONFIG_KEY_MAX + 24];
    snprintf(label, sizeof(label), "%s[%lld]", r->key, (long long)i);
    lua_rawgeti(L, idx, i);
    const char *s = lua_text(L, -1, label, err, errlen, &rc);
    if (s != NULL && natka__config_list_add(out, s, strlen(s)) != 0)
      rc = natka__config_oom(err, errlen);
    lua_pop(L, 1);
  }
  return rc;
}

static int lua_map(lua_State *L, int idx, const natka__config_row *r,
                   natka__strmap *out, char *err, size_t errlen) {
  int rc = 0;
  lua_pushnil(L);
  while (rc == 0 && lua_next(L, idx) != 0) {
    char label[NATKA__CONFIG_KEY_MAX * 2];
    const char *k = NULL, *v = NULL;
    if (lua_type(L, -2) != LUA_TSTRING)
      rc = natka__config_bad(err, errlen, "'%s' keys must be strings, got %s",
                             r->key, luaL_typename(L, -2));
    else if ((k = lua_text(L, -2, r->key, err, errlen, &rc)) != NULL) {
      snprintf(label, sizeof(label), "%s.%s", r->key, k);
      v = lua_text(L, -1, label, err, errlen, &rc);
    }
    if (v != NULL)
      rc = natka__config_store_entry(out, r, k, v, err, errlen);
    lua_pop(L, rc == 0 ? 1 : 2);
  }
  return rc;
}

static int apply_lua(lua_State *L, int idx, natka_config *c,
                     const natka__config_row *r, char *err, size_t errlen) {
  int t = lua_type(L, idx), ok = 0, rc = 0;
  const char *s;
  if (r->type == NATKA__CONFIG_BOOL && t == LUA_TBOOLEAN) {
    natka__config_store_bool(c, r, lua_toboolean(L, idx));
    return 0;
  }
  if (r->type == NATKA__CONFIG_INT && t == LUA_TNUMBER) {
    lua_Integer v = lua_tointegerx(L, idx, &ok); /* integral floats too */
    if (!ok)
      return natka__config_bad(err, errlen,
                               "'%s' must be an integer, got %.14g", r->key,
                               (double)lua_tonumber(L, idx));
    return natka__config_store_int(c, r, v, err, errlen);
  }
  if (r->type == NATKA__CONFIG_STR || r->type == NATKA__CONFIG_ENUM ||
      r->type == NATKA__CONFIG_LEVEL) {
    s = lua_text(L, idx, r->key, err, errlen, &rc);
    return s == NULL ? rc : natka__config_store_string(c, r, s, err, errlen);
  }
  if (t != LUA_TTABLE || r->type == NATKA__CONFIG_INT ||
      r->type == NATKA__CONFIG_BOOL)
    return natka__config_bad(err, errlen, "'%s' must be %s, got %s", r->key,
                             natka__config_type_name(r->type),
                             luaL_typename(L, idx));
  if (r->type == NATKA__CONFIG_LIST) {
    natka__strlist l = {0};
    if ((rc = lua_list(L, idx, r, &l, err, errlen)) == 0)
      rc = natka__config_store_list(c, r, &l, err, errlen);
    natka__config_list_clear(&l);
    return rc;
  }
  natka__strmap m = {0}; /* a map in a config replaces the whole map */
  if ((rc = lua_map(L, idx, r, &m, err, errlen)) == 0) {
    natka__config_store_map(c, r, &m);
  }
  natka__config_map_clear(&m);
  return rc;
}

/* Walks the table at idx whose dotted name is prefix ("" at the top): each
 * key is a schema key or a section to walk in turn. Raw access only, so the
 * returned table's metamethods never run. Stack: balanced. */
static int walk(lua_State *L, int idx, const char *prefix, natka_config *c,
                char *err, size_t errlen) {
  int rc = 0;
  lua_pushnil(L);
  while (rc == 0 && lua_next(L, idx) != 0) {
    char key[NATKA__CONFIG_KEY_MAX];
    const natka__config_row *r;
    if (lua_type(L, -2) != LUA_TSTRING) {
      rc = natka__config_bad(
          err, errlen, "keys must be names, got a %s key in '%s'",
          luaL_typename(L, -2), *prefix ? prefix : "(top level)");
    } else {
      snprintf(key, sizeof(key), "%s%s%s", prefix, *prefix ? "." : "",
               lua_tostring(L, -2));
      if ((r = natka__config_find(key)) != NULL)
        rc = apply_lua(L, lua_gettop(L), c, r, err, errlen);
      else if (!natka__config_is_section(key))
        rc = natka__config_unknown_key(key, err, errlen);
      else if (lua_type(L, -1) != LUA_TTABLE)
        rc = natka__config_bad(err, errlen, "'%s' must be a table, got %s", key,
                               luaL_typename(L, -1));
      else
        rc = walk(L, lua_gettop(L), key, c, err, errlen);
    }
    lua_pop(L, rc == 0 ? 1 : 2);
  }
  return rc;
}

/* --- Evaluating a config chunk ------------------------------------------- */

typedef struct {
  size_t used, limit;
} memcap;

static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  memcap *m = ud;
  size_t old = ptr != NULL ? osize : 0;
  if (nsize == 0) {
    free(ptr);
    m->used -= old < m->used ? old : m->used;
    return NULL;
  }
  if (nsize > old && nsize - old > m->limit - m->used)
    return NULL;
  void *p = realloc(ptr, nsize);
  if (p != NULL)
    m->used = m->used - old + nsize;
  return p;
}

/* A hook runs inside the hooked function, so luaL_where(L, 0) names the
 * config's line. Re-armed to fire on every instruction, so that the error
 * cannot be outrun should a later Lua ever let the chunk catch it. */
static void count_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
  luaL_where(L, 0);
  lua_pushstring(L, "config: ran too long");
  lua_concat(L, 2);
  lua_error(L);
}

/* env(NAME[, DEFAULT]): the variable's value, else DEFAULT (or nil). */
static int env_fn(lua_State *L) {
  luaL_checktype(L, 1, LUA_TSTRING);
  const char *v = getenv(lua_tostring(L, 1));
  lua_settop(L, 2);
  if (v != NULL)
    lua_pushstring(L, v);
  return 1;
}

/* Reading a name the sandbox does not have is an error rather than nil, so
 * `io.open` or a misspelt variable says what is wrong. */
static int env_index(lua_State *L) {
  const char *name = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "?";
  return luaL_error(L,
                    "'%s' is not available in a config (only string, table, "
                    "math and env)",
                    name);
}

/* Builds the chunk's environment; run protected since it allocates. Stack:
 * in nothing, out the environment table. */
static int make_env(lua_State *L) {
  static const luaL_Reg libs[] = {{LUA_STRLIBNAME, luaopen_string},
                                  {LUA_TABLIBNAME, luaopen_table},
                                  {LUA_MATHLIBNAME, luaopen_math}};
  lua_newtable(L);
  for (size_t i = 0; i < sizeof(libs) / sizeof(libs[0]); i++) {
    luaL_requiref(L, libs[i].name, libs[i].func, 0); /* not into _G */
    lua_setfield(L, -2, libs[i].name);
  }
  lua_pushcfunction(L, env_fn);
  lua_setfield(L, -2, "env");
  lua_newtable(L);
  lua_pushcfunction(L, env_index);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, -2);
  return 1;
}

/* See config_int.h. The state is closed before returning. */
int natka__config_eval(natka_config *conf, const char *buf, size_t len,
                       const char *name, char *err, size_t errlen) {
  char chunkname[256];
  memcap cap = {0, CONFIG_MAX_MEMORY};
  lua_State *L = NULL;
  int rc, st;
  if ((L = luaL_newstate()) == NULL) {
    rc = natka__config_oom(err, errlen);
    goto done;
  }
  cap.used = (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024 +
             (size_t)lua_gc(L, LUA_GCCOUNTB, 0);
  lua_setallocf(L, capped_alloc, &cap);
  lua_pushcfunction(L, make_env);
  if (lua_pcall(L, 0, 1, 0) != LUA_OK) {
    rc = natka__config_oom(err, errlen);
    goto done;
  }
  if (buf != NULL) {
    snprintf(chunkname, sizeof(chunkname), "=%s", name);
    st = luaL_loadbufferx(L, buf, len, chunkname, "t");
  } else {
    st = luaL_loadfilex(L, name, "t"); /* names the chunk "@path" */
  }
  if (st == LUA_OK) {
    lua_pushvalue(L, -2);
    lua_setupvalue(L, -2, 1); /* a main chunk's only upvalue is _ENV */
    lua_sethook(L, count_hook, LUA_MASKCOUNT, CONFIG_MAX_INSTRUCTIONS);
    st = lua_pcall(L, 0, 1, 0);
    lua_sethook(L, NULL, 0, 0);
  }
  if (st != LUA_OK) {
    /* Syntax and runtime errors carry "name:line:", and an unreadable file's
     * message names it; a binary chunk's does not, so it gets the name. */
    const char *msg = lua_tostring(L, -1);
    size_t n = strlen(name) < 40 ? strlen(name) : 40; /* Lua cuts long names */
    int named = st == LUA_ERRFILE ||
                (msg != NULL &&
                 (strncmp(msg, name, n) == 0 || strncmp(msg, "...", 3) == 0));
    if (st == LUA_ERRMEM || msg == NULL)
      rc = natka__errf(err, errlen, NATKA_ECONFIG,
                       "%s: config used more than %zu MiB of memory", name,
                       CONFIG_MAX_MEMORY >> 20);
    else
      rc = natka__errf(err, errlen,
                       st == LUA_ERRFILE ? NATKA_EIO : NATKA_ECONFIG, "%s%s%s",
                       named ? "" : name, named ? "" : ": ", msg);
    goto done;
  }
  if (lua_type(L, -1) != LUA_TTABLE) {
    rc = natka__errf(err, errlen, NATKA_ECONFIG,
                     "%s: a config must return a table, got %s", name,
                     luaL_typename(L, -1));
    goto done;
  }
  rc = walk(L, lua_gettop(L), "", conf, err, errlen);

done:
  if (L != NULL)
    lua_close(L);
  return rc;
}

/* Evaluates a config chunk over a copy of conf, moved into conf only if the
 * whole load, cross-key checks included, succeeded. */
static int load(natka_config *conf, const char *buf, size_t len,
                const char *name, char *err, size_t errlen) {
  natka_config scratch;
  int rc;
  if (natka__config_clone(&scratch, conf) != 0)
    return natka__config_oom(err, errlen);
  if ((rc = natka__config_eval(&scratch, buf, len, name, err, errlen)) == 0 &&
      (rc = natka__config_validate(&scratch, err, errlen)) == 0)
    natka__config_commit(conf, &scratch);
  natka__config_free_fields(&scratch);
  return rc;
}

int natka_config_load_string(natka_config *conf, const char *chunk,
                             const char *name, char *errbuf, size_t errlen) {
  if (conf == NULL || chunk == NULL)
    return natka__errf(errbuf, errlen, NATKA_EINVAL, "config: no config");
  return load(conf, chunk, strlen(chunk), name != NULL ? name : "config",
              errbuf, errlen);
}

int natka_config_load_file(natka_config *conf, const char *path, char *errbuf,
                           size_t errlen) {
  if (conf == NULL || path == NULL)
    return natka__errf(errbuf, errlen, NATKA_EINVAL, "config: no config");
  return load(conf, NULL, 0, path, errbuf, errlen);
}
