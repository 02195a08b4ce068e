/*
 * Bounded versions of the standard functions rules see, installed over the
 * library tables before the prelude copies them (rules.c, setup).
 *
 * The count hook sees VM instructions only, and the allocator's clock sees
 * only work that allocates. A few standard functions loop in C over a count
 * their arguments choose without allocating anything: table.move over an
 * empty range of 2^27 elements ran 6 s at a budget of 1,000 instructions,
 * string.rep("", 2^50) never returned. Each of them here charges its work
 * to the budget before doing it (natka__rules_charge, which also checks the
 * deadline), in the same units as instructions:
 *
 *   one per element moved, concatenated, unpacked, shifted by insert or
 *   remove, or byte returned by string.byte / utf8.codepoint;
 *   n * log2(n) for sorting n elements;
 *   one per 64 bytes scanned by utf8.len, utf8.offset, tonumber, or
 *   written by string.rep, upper, lower and reverse.
 *
 * Those that walk a range also take at most MAX_ELEMS elements per call, so
 * that one call stays short whatever the budget, and table.insert, remove
 * and sort refuse a table with a __len metamethod: its length would be
 * asked again by the function itself, and could differ. Everything else is
 * the standard function, called with the same arguments. A wrapper checks
 * the arguments first: the standard function, called from C, would name
 * itself '?' in its argument errors.
 */
#include <lauxlib.h>
#include <lualib.h>
#include <stdint.h>
#include <string.h>

#include "rules_int.h"

#define MAX_ELEMS (1 << 20) /* elements one table call may walk */
#define MAX_SORT (1 << 18)  /* elements table.sort may sort */
#define BYTES_PER_UNIT 64

/* Calls the standard function (upvalue 1) with this call's arguments.
 * Stack: [args...] -> [results...] */
static int call_std(lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

/* Raises unless n elements fit in one call of `what`. */
static void check_count(lua_State *L, const char *what, lua_Unsigned n,
                        lua_Unsigned max) {
  if (n > max)
    luaL_error(L, "%s: %I elements; at most %I in one call", what,
               (LUAI_UACINT)n, (LUAI_UACINT)max);
}

/* Elements from i to j, inclusive; 0 when j < i. */
static lua_Unsigned span(lua_Integer i, lua_Integer j) {
  return j < i ? 0 : (lua_Unsigned)j - (lua_Unsigned)i + 1;
}

/* A table argument without __len, and its raw length. */
static lua_Unsigned plain_len(lua_State *L, const char *what) {
  luaL_checktype(L, 1, LUA_TTABLE);
  if (luaL_getmetafield(L, 1, "__len") != LUA_TNIL)
    luaL_error(L,
               "%s: a table with a __len metamethod is not supported in "
               "rules",
               what);
  return lua_rawlen(L, 1);
}

/* ------------------------------------------------------------------ table */

/* table.move(a1, f, e, t [, a2]) */
static int b_move(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_Integer f = luaL_checkinteger(L, 2), e = luaL_checkinteger(L, 3);
  luaL_checkinteger(L, 4);
  if (!lua_isnoneornil(L, 5))
    luaL_checktype(L, 5, LUA_TTABLE);
  lua_Unsigned n = span(f, e);
  check_count(L, "table.move", n, MAX_ELEMS);
  natka__rules_charge(L, (int64_t)n);
  return call_std(L);
}

/* The range [i, j] of arguments i_arg and i_arg + 1, j defaulting to #t,
 * made explicit so that the standard function does not ask #t again.
 * Stack: [t, x, i?, j?] -> [t, x, i, j] (x: the argument before i, or none
 * when i_arg is 2) */
static lua_Unsigned explicit_range(lua_State *L, int i_arg, const char *what) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_Integer i = luaL_optinteger(L, i_arg, 1);
  lua_Integer j = lua_isnoneornil(L, i_arg + 1)
                      ? luaL_len(L, 1)
                      : luaL_checkinteger(L, i_arg + 1);
  lua_settop(L, i_arg - 1);
  lua_pushinteger(L, i);
  lua_pushinteger(L, j);
  lua_Unsigned n = span(i, j);
  check_count(L, what, n, MAX_ELEMS);
  natka__rules_charge(L, (int64_t)n);
  return n;
}

/* table.concat(list [, sep [, i [, j]]]) */
static int b_concat(lua_State *L) {
  luaL_optlstring(L, 2, "", NULL);
  explicit_range(L, 3, "table.concat");
  return call_std(L);
}

/* table.unpack(list [, i [, j]]) */
static int b_unpack(lua_State *L) {
  explicit_range(L, 2, "table.unpack");
  return call_std(L);
}

/* table.insert(t, [pos,] v): shifts up the elements from pos. */
static int b_insert(lua_State *L) {
  lua_Unsigned e = plain_len(L, "table.insert") + 1;
  if (lua_gettop(L) == 3) {
    lua_Integer pos = luaL_checkinteger(L, 2);
    luaL_argcheck(L, pos >= 1 && (lua_Unsigned)pos <= e, 2,
                  "position out of bounds");
    check_count(L, "table.insert", e - (lua_Unsigned)pos, MAX_ELEMS);
    natka__rules_charge(L, (int64_t)(e - (lua_Unsigned)pos));
  }
  return call_std(L);
}

/* table.remove(t [, pos]): shifts down the elements after pos. */
static int b_remove(lua_State *L) {
  lua_Unsigned size = plain_len(L, "table.remove");
  lua_Integer pos = luaL_optinteger(L, 2, (lua_Integer)size);
  /* argument 1, as Lua 5.4.4 says */
  luaL_argcheck(L, (lua_Unsigned)pos == size || (lua_Unsigned)pos - 1u <= size,
                1, "position out of bounds");
  if (pos >= 1 && (lua_Unsigned)pos < size) {
    check_count(L, "table.remove", size - (lua_Unsigned)pos, MAX_ELEMS);
    natka__rules_charge(L, (int64_t)(size - (lua_Unsigned)pos));
  }
  return call_std(L);
}

/* table.sort(t [, comp]) */
static int b_sort(lua_State *L) {
  lua_Unsigned n = plain_len(L, "table.sort"), log2n = 1;
  if (!lua_isnoneornil(L, 2))
    luaL_checktype(L, 2, LUA_TFUNCTION);
  check_count(L, "table.sort", n, MAX_SORT);
  while (((lua_Unsigned)1 << log2n) < n)
    log2n++;
  natka__rules_charge(L, (int64_t)(n * log2n));
  return call_std(L);
}

/* ----------------------------------------------------------------- string */

/* A string position as the standard functions read it: negative counts
 * from the end; the result is clamped to [0, len + 1]. */
static size_t position(lua_Integer pos, size_t len) {
  if (pos > 0)
    return (lua_Unsigned)pos > len ? len + 1 : (size_t)pos;
  if (pos == 0)
    return 0;
  return (lua_Unsigned)-pos > len ? 0 : len - (size_t)(-pos) + 1;
}

/* Bytes of s from argument i_arg (default 1) to the next (default: i when
 * j_is_i, else -1), as string.byte takes them. */
static size_t byte_span(lua_State *L, size_t len, int i_arg, int j_is_i) {
  lua_Integer i = luaL_optinteger(L, i_arg, 1);
  lua_Integer j = luaL_optinteger(L, i_arg + 1, j_is_i ? i : -1);
  size_t a = position(i, len), b = position(j, len);
  if (a < 1)
    a = 1;
  if (b > len)
    b = len;
  return b >= a ? b - a + 1 : 0;
}

/* string.byte(s [, i [, j]]): one value per byte at most. */
static int b_byte(lua_State *L) {
  size_t len;
  luaL_checklstring(L, 1, &len);
  natka__rules_charge(L, (int64_t)byte_span(L, len, 2, 1));
  return call_std(L);
}

/* A position as utf8's functions read it: negative counts from the end. */
static lua_Integer u_position(lua_Integer pos, size_t len) {
  if (pos >= 0)
    return pos;
  if ((lua_Unsigned)-pos > len)
    return 0;
  return (lua_Integer)len + pos + 1;
}

/* utf8.codepoint(s [, i [, j]]): one value per byte at most. */
static int b_codepoint(lua_State *L) {
  size_t len;
  luaL_checklstring(L, 1, &len);
  lua_Integer i = u_position(luaL_optinteger(L, 2, 1), len);
  lua_Integer j = u_position(luaL_optinteger(L, 3, i), len);
  luaL_argcheck(L, i >= 1, 2, "out of bounds");
  luaL_argcheck(L, j <= (lua_Integer)len, 3, "out of bounds");
  natka__rules_charge(L, (int64_t)span(i, j));
  return call_std(L);
}

/* utf8.len(s [, i [, j]]): a scan of the bytes from i to j. */
static int b_utf8_len(lua_State *L) {
  size_t len;
  luaL_checklstring(L, 1, &len);
  lua_Integer i = u_position(luaL_optinteger(L, 2, 1), len);
  lua_Integer j = u_position(luaL_optinteger(L, 3, -1), len);
  luaL_argcheck(L, 1 <= i && i - 1 <= (lua_Integer)len, 2,
                "initial position out of bounds");
  luaL_argcheck(L, j - 1 < (lua_Integer)len, 3, "final position out of bounds");
  natka__rules_charge(L, (int64_t)(span(i, j) / BYTES_PER_UNIT));
  return call_std(L);
}

/* utf8.offset(s, n [, i]): a scan of s at most. */
static int b_utf8_offset(lua_State *L) {
  size_t len;
  luaL_checklstring(L, 1, &len);
  lua_Integer n = luaL_checkinteger(L, 2);
  lua_Integer i =
      u_position(luaL_optinteger(L, 3, n >= 0 ? 1 : (lua_Integer)len + 1), len);
  luaL_argcheck(L, 1 <= i && i - 1 <= (lua_Integer)len, 3,
                "position out of bounds");
  natka__rules_charge(L, (int64_t)(len / BYTES_PER_UNIT));
  return call_std(L);
}

/* string.upper, lower, reverse: a pass over the whole of s. */
static int b_scan(lua_State *L) {
  size_t len;
  luaL_checklstring(L, 1, &len);
  natka__rules_charge(L, (int64_t)(len / BYTES_PER_UNIT));
  return call_std(L);
}

/* tonumber(v [, base]): a scan of v when it is a string. */
static int b_tonumber(lua_State *L) {
  luaL_checkany(L, 1);
  if (!lua_isnoneornil(L, 2)) {
    lua_Integer base = luaL_checkinteger(L, 2);
    luaL_checktype(L, 1, LUA_TSTRING);
    luaL_argcheck(L, 2 <= base && base <= 36, 2, "base out of range");
  }
  if (lua_type(L, 1) == LUA_TSTRING)
    natka__rules_charge(L, (int64_t)(lua_rawlen(L, 1) / BYTES_PER_UNIT));
  return call_std(L);
}

/*
 * string.rep(s, n [, sep]), in full: the standard one makes n copies one by
 * one, even when s and sep are empty. Here the result, periodic with s ..
 * sep, is written once and then doubled, so the work is that of the bytes
 * written; the result is allocated before it is charged, so that a result
 * past the memory cap fails as out of memory.
 */
static int b_rep(lua_State *L) {
  size_t l, lsep;
  const char *s = luaL_checklstring(L, 1, &l);
  lua_Integer n = luaL_checkinteger(L, 2);
  const char *sep = luaL_optlstring(L, 3, "", &lsep);
  if (n <= 0 || l + lsep == 0) {
    lua_pushliteral(L, "");
    return 1;
  }
  size_t period = l + lsep;
  if (period < l || (lua_Unsigned)n > (SIZE_MAX / 2) / period)
    return luaL_error(L, "resulting string too large");
  size_t total = (size_t)n * period - lsep, done;
  luaL_Buffer b;
  char *p = luaL_buffinitsize(L, &b, total);
  natka__rules_charge(L, (int64_t)(total / BYTES_PER_UNIT) + 1);
  memcpy(p, s, l);
  if (l < total)
    memcpy(p + l, sep, lsep);
  for (done = period < total ? period : total; done < total; done *= 2)
    memcpy(p + done, p, done < total - done ? done : total - done);
  luaL_pushresultsize(&b, total);
  return 1;
}

/* ---------------------------------------------------------------- install */

static const struct {
  const char *lib, *name;
  lua_CFunction fn; /* a closure over the standard function */
} bounded[] = {
    {LUA_TABLIBNAME, "move", b_move},
    {LUA_TABLIBNAME, "concat", b_concat},
    {LUA_TABLIBNAME, "unpack", b_unpack},
    {LUA_TABLIBNAME, "insert", b_insert},
    {LUA_TABLIBNAME, "remove", b_remove},
    {LUA_TABLIBNAME, "sort", b_sort},
    {LUA_STRLIBNAME, "byte", b_byte},
    {LUA_STRLIBNAME, "upper", b_scan},
    {LUA_STRLIBNAME, "lower", b_scan},
    {LUA_STRLIBNAME, "reverse", b_scan},
    {LUA_UTF8LIBNAME, "codepoint", b_codepoint},
    {LUA_UTF8LIBNAME, "len", b_utf8_len},
    {LUA_UTF8LIBNAME, "offset", b_utf8_offset},
    {LUA_GNAME, "tonumber", b_tonumber},
};

void natka__rules_bound_stdlib(lua_State *L) {
  for (size_t i = 0; i < sizeof(bounded) / sizeof(bounded[0]); i++) {
    if (strcmp(bounded[i].lib, LUA_GNAME) == 0)
      lua_pushglobaltable(L);
    else
      lua_getglobal(L, bounded[i].lib); /* [lib] */
    lua_getfield(L, -1, bounded[i].name);
    lua_pushcclosure(L, bounded[i].fn, 1);
    lua_setfield(L, -2, bounded[i].name);
    lua_pop(L, 1);
  }
  lua_getglobal(L, LUA_STRLIBNAME);
  lua_pushcfunction(L, b_rep);
  lua_setfield(L, -2, "rep");
  lua_pop(L, 1);
}
