/*
 * Lua patterns for rules: string.find, match, gmatch and gsub, written for
 * natka so that every step of the matcher is charged to the event's budget.
 *
 * Lua's own matcher backtracks in C and allocates nothing, so neither the
 * count hook nor the allocator's clock sees it: `ev.data:find("card=(.-);")`
 * on 100 KB of "card=" ran 11 s (a megabyte would run for minutes), and the
 * pattern is an ordinary one; the data is what the sender chose. This one
 * follows the same rules (the manual's section 6.4.1: classes, sets, the
 * four quantifiers, anchors, captures, %b, %f and back-references), finds
 * the same matches and raises the same errors; tests/lua/stdlib_spec.lua
 * compares the two. What differs is that it counts its steps: every match
 * attempt, repetition and character of a %b, charged in batches through
 * natka__rules_charge, which also checks the deadline. A plain find is a
 * memmem (linear), charged by the bytes it may scan.
 */
#include <ctype.h>
#include <lauxlib.h>
#include <lualib.h>
#include <string.h>

#include "rules_int.h"

#define MAX_DEPTH 200   /* nested matcher calls: "pattern too complex" */
#define MAX_CAPTURES 32 /* as Lua's LUA_MAXCAPTURES */
#define CHARGE_EVERY 1024
#define SPECIALS "^$*+?.([%-"

enum { CAP_OPEN = -1, CAP_POSITION = -2 };

typedef struct matcher {
  lua_State *L;
  const char *s0, *s_end; /* the subject */
  const char *p_end;      /* end of the pattern */
  int depth;              /* nested calls left */
  int steps;              /* not charged yet */
  int level;              /* captures open or closed */
  struct {
    const char *init;
    ptrdiff_t len; /* or CAP_OPEN, CAP_POSITION */
  } cap[MAX_CAPTURES];
} matcher;

static void step(matcher *m) {
  if (++m->steps == CHARGE_EVERY) {
    m->steps = 0;
    natka__rules_charge(m->L, CHARGE_EVERY);
  }
}

/* Charges what is left, once the call is done. */
static void settle(matcher *m) {
  natka__rules_charge(m->L, m->steps);
  m->steps = 0;
}

static void start(matcher *m, lua_State *L, const char *s, size_t ls,
                  const char *p, size_t lp) {
  m->L = L;
  m->s0 = s;
  m->s_end = s + ls;
  m->p_end = p + lp;
  m->steps = 0;
}

/* Before each attempt. */
static void restart(matcher *m) {
  m->level = 0;
  m->depth = MAX_DEPTH;
}

/* ---------------------------------------------------------------- classes */

/* Whether c is in class cl (%a, %d, ...); an upper-case letter is the
 * complement; any other cl stands for itself. */
static int in_class(int c, int cl) {
  int in;
  switch (tolower(cl)) {
  case 'a':
    in = isalpha(c);
    break;
  case 'c':
    in = iscntrl(c);
    break;
  case 'd':
    in = isdigit(c);
    break;
  case 'g':
    in = isgraph(c);
    break;
  case 'l':
    in = islower(c);
    break;
  case 'p':
    in = ispunct(c);
    break;
  case 's':
    in = isspace(c);
    break;
  case 'u':
    in = isupper(c);
    break;
  case 'w':
    in = isalnum(c);
    break;
  case 'x':
    in = isxdigit(c);
    break;
  case 'z':
    in = c == 0;
    break; /* deprecated, still accepted by Lua */
  default:
    return cl == c;
  }
  return isupper(cl) ? !in : in != 0;
}

/* Whether c is in the set [...] from p (at '[') to close (at its ']'). */
static int in_set(int c, const char *p, const char *close) {
  int yes = 1;
  if (*++p == '^') {
    yes = 0;
    p++;
  }
  for (; p < close; p++) {
    if (*p == '%') {
      p++;
      if (in_class(c, (unsigned char)*p))
        return yes;
    } else if (p[1] == '-' && p + 2 < close) {
      if ((unsigned char)p[0] <= c && c <= (unsigned char)p[2])
        return yes;
      p += 2;
    } else if ((unsigned char)*p == c) {
      return yes;
    }
  }
  return !yes;
}

/* The end of the single-character class at p. The pattern is a Lua string,
 * so p_end points at a NUL that may be read. */
static const char *class_end(matcher *m, const char *p) {
  char c = *p++;
  if (c == '%') {
    if (p == m->p_end)
      luaL_error(m->L, "malformed pattern (ends with '%%')");
    return p + 1;
  }
  if (c == '[') {
    if (*p == '^')
      p++;
    do { /* the first character may be ']' */
      if (p == m->p_end)
        luaL_error(m->L, "malformed pattern (missing ']')");
      c = *p++;
      if (c == '%' && p < m->p_end)
        p++;
    } while (*p != ']');
    return p + 1;
  }
  return p;
}

/* Whether the character at s matches the class from p to ep. */
static int one(matcher *m, const char *s, const char *p, const char *ep) {
  if (s >= m->s_end)
    return 0;
  int c = (unsigned char)*s;
  switch (*p) {
  case '.':
    return 1;
  case '%':
    return in_class(c, (unsigned char)p[1]);
  case '[':
    return in_set(c, p, ep - 1);
  default:
    return (unsigned char)*p == c;
  }
}

/* --------------------------------------------------------------- matching */

static const char *match(matcher *m, const char *s, const char *p);

/* c* or c+ (from its second character): the longest run first. */
static const char *longest(matcher *m, const char *s, const char *p,
                           const char *ep) {
  ptrdiff_t n = 0;
  while (one(m, s + n, p, ep)) {
    n++;
    step(m);
  }
  for (; n >= 0; n--) {
    const char *r = match(m, s + n, ep + 1);
    if (r != NULL)
      return r;
    step(m);
  }
  return NULL;
}

/* c-: the shortest run first. */
static const char *shortest(matcher *m, const char *s, const char *p,
                            const char *ep) {
  for (;;) {
    const char *r = match(m, s, ep + 1);
    if (r != NULL)
      return r;
    if (!one(m, s, p, ep))
      return NULL;
    s++;
    step(m);
  }
}

static const char *open_capture(matcher *m, const char *s, const char *p,
                                ptrdiff_t what) {
  if (m->level >= MAX_CAPTURES)
    luaL_error(m->L, "too many captures");
  m->cap[m->level].init = s;
  m->cap[m->level].len = what;
  m->level++;
  const char *r = match(m, s, p);
  if (r == NULL)
    m->level--;
  return r;
}

static const char *close_capture(matcher *m, const char *s, const char *p) {
  int l = m->level - 1;
  while (l >= 0 && m->cap[l].len != CAP_OPEN)
    l--;
  if (l < 0)
    luaL_error(m->L, "invalid pattern capture");
  m->cap[l].len = s - m->cap[l].init;
  const char *r = match(m, s, p);
  if (r == NULL)
    m->cap[l].len = CAP_OPEN;
  return r;
}

/* %bxy at s, p at x. */
static const char *balanced(matcher *m, const char *s, const char *p) {
  if (p >= m->p_end - 1)
    luaL_error(m->L, "malformed pattern (missing arguments to '%%b')");
  if (s >= m->s_end || *s != p[0])
    return NULL;
  int depth = 1;
  while (++s < m->s_end) {
    step(m);
    if (*s == p[1]) {
      if (--depth == 0)
        return s + 1;
    } else if (*s == p[0]) {
      depth++;
    }
  }
  return NULL;
}

/* The capture a %1 .. %9 refers to (c: its digit). */
static int capture_index(matcher *m, int c) {
  int l = c - '1';
  if (l < 0 || l >= m->level || m->cap[l].len == CAP_OPEN)
    luaL_error(m->L, "invalid capture index %%%d", l + 1);
  return l;
}

/* %1 .. %9 at s: the same bytes as that capture. */
static const char *backref(matcher *m, const char *s, int c) {
  int l = capture_index(m, c);
  size_t len = (size_t)m->cap[l].len; /* a position never matches */
  if ((size_t)(m->s_end - s) >= len && memcmp(m->cap[l].init, s, len) == 0)
    return s + len;
  return NULL;
}

/*
 * The end of the match of pattern p at s, or NULL. As in Lua, a nested call
 * is made only to try an alternative (a capture, c?, or each length of a
 * c*, c+ or c-), and their depth is bounded by MAX_DEPTH; everything else
 * goes on in the loop.
 */
static const char *match(matcher *m, const char *s, const char *p) {
  if (m->depth-- == 0)
    luaL_error(m->L, "pattern too complex");
  for (;;) {
    step(m);
    if (p == m->p_end)
      break;
    if (*p == '(') {
      s = p[1] == ')' ? open_capture(m, s, p + 2, CAP_POSITION)
                      : open_capture(m, s, p + 1, CAP_OPEN);
      break;
    }
    if (*p == ')') {
      s = close_capture(m, s, p + 1);
      break;
    }
    if (*p == '$' && p + 1 == m->p_end) {
      s = s == m->s_end ? s : NULL;
      break;
    }
    if (*p == '%' && p[1] == 'b') {
      if ((s = balanced(m, s, p + 2)) == NULL)
        break;
      p += 4;
      continue;
    }
    if (*p == '%' && p[1] == 'f') {
      p += 2;
      if (*p != '[')
        luaL_error(m->L, "missing '[' after '%%f' in pattern");
      const char *ep = class_end(m, p);
      int before = s == m->s0 ? 0 : (unsigned char)s[-1];
      int here = s < m->s_end ? (unsigned char)*s : 0;
      if (in_set(before, p, ep - 1) || !in_set(here, p, ep - 1)) {
        s = NULL;
        break;
      }
      p = ep;
      continue;
    }
    if (*p == '%' && isdigit((unsigned char)p[1])) {
      if ((s = backref(m, s, p[1])) == NULL)
        break;
      p += 2;
      continue;
    }
    /* a single-character class, and its quantifier if any */
    const char *ep = class_end(m, p), *r;
    if (!one(m, s, p, ep)) {
      if (*ep == '*' || *ep == '?' || *ep == '-') { /* none of them */
        p = ep + 1;
        continue;
      }
      s = NULL;
      break;
    }
    if (*ep == '?') {
      if ((r = match(m, s + 1, ep + 1)) != NULL) {
        s = r;
        break;
      }
      p = ep + 1;
      continue;
    }
    if (*ep == '+' || *ep == '*') {
      s = longest(m, *ep == '+' ? s + 1 : s, p, ep);
      break;
    }
    if (*ep == '-') {
      s = shortest(m, s, p, ep);
      break;
    }
    s++;
    p = ep;
  }
  m->depth++;
  return s;
}

/* -------------------------------------------------------------- captures */

/* Pushes capture i of the match from s to e (i == 0 with no capture: the
 * whole match). */
static void push_capture(matcher *m, int i, const char *s, const char *e) {
  if (i >= m->level) {
    if (i != 0)
      luaL_error(m->L, "invalid capture index %%%d", i + 1);
    lua_pushlstring(m->L, s, (size_t)(e - s));
    return;
  }
  ptrdiff_t len = m->cap[i].len;
  if (len == CAP_OPEN)
    luaL_error(m->L, "unfinished capture");
  if (len == CAP_POSITION)
    lua_pushinteger(m->L, m->cap[i].init - m->s0 + 1);
  else
    lua_pushlstring(m->L, m->cap[i].init, (size_t)len);
}

/* Pushes every capture, or the whole match when there is none and s is
 * not NULL. Returns how many. */
static int push_captures(matcher *m, const char *s, const char *e) {
  int n = m->level == 0 && s != NULL ? 1 : m->level;
  luaL_checkstack(m->L, n, "too many captures");
  for (int i = 0; i < n; i++)
    push_capture(m, i, s, e);
  return n;
}

/* -------------------------------------------------------------- functions */

/* An initial position as find, match and gmatch read it, from 1. */
static size_t init_position(lua_Integer pos, size_t len) {
  if (pos > 0)
    return (size_t)pos;
  if (pos == 0 || (lua_Unsigned)-pos > len)
    return 1;
  return len - (size_t)(-pos) + 1;
}

static int no_specials(const char *p, size_t lp) {
  for (size_t i = 0; i < lp; i++)
    if (p[i] != '\0' && strchr(SPECIALS, p[i]) != NULL)
      return 0;
  return 1;
}

/* string.find(s, p [, init [, plain]]) and string.match(s, p [, init]). */
static int find_or_match(lua_State *L, int find) {
  size_t ls, lp;
  const char *s = luaL_checklstring(L, 1, &ls);
  const char *p = luaL_checklstring(L, 2, &lp);
  size_t init = init_position(luaL_optinteger(L, 3, 1), ls) - 1;
  if (init > ls) {
    luaL_pushfail(L);
    return 1;
  }
  if (find && (lua_toboolean(L, 4) || no_specials(p, lp))) {
    natka__rules_charge(L, (int64_t)((ls - init) / 64 + 1));
    const char *at = lp == 0 ? s + init : memmem(s + init, ls - init, p, lp);
    if (at == NULL) {
      luaL_pushfail(L);
      return 1;
    }
    lua_pushinteger(L, at - s + 1);
    lua_pushinteger(L, (lua_Integer)(at - s + lp));
    return 2;
  }
  matcher m;
  const char *s1 = s + init;
  int anchor = *p == '^';
  if (anchor) {
    p++;
    lp--;
  }
  start(&m, L, s, ls, p, lp);
  do {
    restart(&m);
    const char *e = match(&m, s1, p);
    if (e != NULL) {
      settle(&m);
      if (!find)
        return push_captures(&m, s1, e);
      lua_pushinteger(L, s1 - s + 1);
      lua_pushinteger(L, e - s);
      return push_captures(&m, NULL, NULL) + 2;
    }
  } while (s1++ < m.s_end && !anchor);
  settle(&m);
  luaL_pushfail(L);
  return 1;
}

static int p_find(lua_State *L) {
  return find_or_match(L, 1);
}

static int p_match(lua_State *L) {
  return find_or_match(L, 0);
}

/* Where a gmatch iteration is. */
typedef struct gmatch_state {
  size_t pos;  /* next start, from 0 */
  size_t last; /* end of the last match, or SIZE_MAX */
} gmatch_state;

/* The iterator: upvalues s, p and the state. As in Lua, '^' is not an
 * anchor here, and no empty match ends where the previous match did. */
static int gmatch_next(lua_State *L) {
  size_t ls, lp;
  const char *s = lua_tolstring(L, lua_upvalueindex(1), &ls);
  const char *p = lua_tolstring(L, lua_upvalueindex(2), &lp);
  gmatch_state *g = lua_touserdata(L, lua_upvalueindex(3));
  matcher m;
  start(&m, L, s, ls, p, lp);
  for (size_t at = g->pos; at <= ls; at++) {
    restart(&m);
    const char *e = match(&m, s + at, p);
    if (e != NULL && (size_t)(e - s) != g->last) {
      settle(&m);
      g->pos = g->last = (size_t)(e - s);
      return push_captures(&m, s + at, e);
    }
  }
  settle(&m);
  g->pos = ls + 1;
  return 0;
}

/* string.gmatch(s, p [, init]) */
static int p_gmatch(lua_State *L) {
  size_t ls;
  luaL_checklstring(L, 1, &ls);
  luaL_checkstring(L, 2);
  size_t init = init_position(luaL_optinteger(L, 3, 1), ls) - 1;
  lua_settop(L, 2);
  gmatch_state *g = lua_newuserdatauv(L, sizeof(*g), 0);
  g->pos = init > ls ? ls + 1 : init;
  g->last = SIZE_MAX;
  lua_pushcclosure(L, gmatch_next, 3);
  return 1;
}

/* The replacement string (argument 3) for the match from s to e. */
static void add_string(matcher *m, luaL_Buffer *b, const char *s,
                       const char *e) {
  lua_State *L = m->L;
  size_t l;
  const char *r = lua_tolstring(L, 3, &l);
  for (size_t i = 0; i < l; i++) {
    if (r[i] != '%') {
      luaL_addchar(b, r[i]);
      continue;
    }
    char c = r[++i]; /* may be the NUL after the string */
    if (c == '%') {
      luaL_addchar(b, '%');
    } else if (c == '0') {
      luaL_addlstring(b, s, (size_t)(e - s));
    } else if (isdigit((unsigned char)c)) {
      push_capture(m, c - '1', s, e);
      luaL_tolstring(L, -1, NULL);
      lua_remove(L, -2);
      luaL_addvalue(b);
    } else {
      luaL_error(L, "invalid use of '%%' in replacement string");
    }
  }
}

/* Adds the replacement of the match from s to e; returns whether the text
 * changed. */
static int add_value(matcher *m, luaL_Buffer *b, const char *s, const char *e,
                     int type) {
  lua_State *L = m->L;
  if (type == LUA_TFUNCTION) {
    lua_pushvalue(L, 3);
    lua_call(L, push_captures(m, s, e), 1);
  } else if (type == LUA_TTABLE) {
    push_capture(m, 0, s, e);
    lua_gettable(L, 3);
  } else {
    add_string(m, b, s, e);
    return 1;
  }
  if (!lua_toboolean(L, -1)) { /* false or nil: keep the match */
    lua_pop(L, 1);
    luaL_addlstring(b, s, (size_t)(e - s));
    return 0;
  }
  if (!lua_isstring(L, -1))
    return luaL_error(L, "invalid replacement value (a %s)",
                      luaL_typename(L, -1));
  luaL_addvalue(b);
  return 1;
}

/* string.gsub(s, p, repl [, n]) */
static int p_gsub(lua_State *L) {
  size_t ls, lp;
  const char *src = luaL_checklstring(L, 1, &ls);
  const char *p = luaL_checklstring(L, 2, &lp);
  const char *last = NULL;
  int type = lua_type(L, 3);
  lua_Integer max = luaL_optinteger(L, 4, (lua_Integer)ls + 1), n = 0;
  int anchor = *p == '^', changed = 0;
  luaL_argexpected(L,
                   type == LUA_TNUMBER || type == LUA_TSTRING ||
                       type == LUA_TFUNCTION || type == LUA_TTABLE,
                   3, "string/function/table");
  if (anchor) {
    p++;
    lp--;
  }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  matcher m;
  start(&m, L, src, ls, p, lp);
  while (n < max) {
    restart(&m);
    const char *e = match(&m, src, p);
    if (e != NULL && e != last) {
      n++;
      changed |= add_value(&m, &b, src, e, type);
      src = last = e;
    } else if (src < m.s_end) {
      luaL_addchar(&b, *src++);
    } else {
      break;
    }
    if (anchor)
      break;
  }
  settle(&m);
  if (!changed) {
    lua_pushvalue(L, 1);
  } else {
    luaL_addlstring(&b, src, (size_t)(m.s_end - src));
    luaL_pushresult(&b);
  }
  lua_pushinteger(L, n);
  return 2;
}

void natka__rules_patterns(lua_State *L) {
  static const luaL_Reg fns[] = {{"find", p_find},
                                 {"match", p_match},
                                 {"gmatch", p_gmatch},
                                 {"gsub", p_gsub},
                                 {NULL, NULL}};
  lua_getglobal(L, LUA_STRLIBNAME);
  luaL_setfuncs(L, fns, 0);
  lua_pop(L, 1);
}
