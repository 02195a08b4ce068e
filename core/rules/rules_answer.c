/*
 * What a rule's route() returned, as a natka__route (rules_int.h): one
 * destination or a list of them, each a topic or a table with topic, key,
 * partition and headers, or natka.drop. Everything is read with raw
 * accesses, so no metamethod of a returned table runs outside the rule's
 * budget; every refusal names the rule and says what was expected. What the
 * copies hold is counted, and bounded by rules.max_answer_bytes. And back:
 * a natka__route as the Lua value self-tests and natka.core compare.
 */
#include "rules_int.h"

#include <lauxlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "natka/error.h"
#include "util.h"

#define MAX_DESTS 64

/* The answer being converted. */
typedef struct answer {
  const char *rule; /* the module whose route() returned it */
  natka__route *out;
  size_t limit; /* out->bytes may not exceed it; 0: no limit */
  char *err;
  size_t errlen;
  int *rc;
} answer;

/* A Kafka topic name: 1..249 of [A-Za-z0-9._-], not "." or "..". */
int natka__rules_topic_ok(const char *s, size_t len) {
  return len > 0 && len <= 249 && strspn(s, NATKA__RULES_ALNUM "._-") == len &&
         strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

static int bad(answer *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Records why route()'s return was refused. Returns -1. */
static int bad(answer *c, const char *fmt, ...) {
  char why[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof(why), fmt, ap);
  va_end(ap);
  *c->rc = natka__errf(c->err, c->errlen, NATKA_ERULE, "rule '%s': %s", c->rule,
                       why);
  return -1;
}

static int nomem(answer *c) {
  *c->rc = natka__errf(c->err, c->errlen, NATKA_ENOMEM, "rules: out of memory");
  return -1;
}

/*
 * A copy of n bytes of s, counted in out->bytes first: an answer may name
 * one big string many times (64 destinations of 1,024 headers each), so
 * what its copies would hold is bounded before anything is copied.
 */
static char *copy(answer *c, const char *s, size_t n, const char *at) {
  c->out->bytes += n;
  if (c->limit != 0 && c->out->bytes > c->limit) {
    bad(c, "%sthe answer carries more than %zu bytes (rules.max_answer_bytes)",
        at, c->limit);
    return NULL;
  }
  char *p = natka__memdup(s, n);
  if (p == NULL)
    nomem(c);
  return p;
}

/* Field f of the table at idx, raw (no metamethod runs outside the budget).
 * Stack: [] -> [value]; returns its type. */
static int raw_field(lua_State *L, int idx, const char *f) {
  lua_pushstring(L, f);
  return lua_rawget(L, idx);
}

/* headers (at idx) = { {name, value}, ... }. Stack: unchanged */
static int to_headers(lua_State *L, answer *c, int idx, natka__dest *d,
                      const char *at) {
  lua_Unsigned n = lua_rawlen(L, idx);
  if (n == 0)
    return 0;
  if (n > 1024)
    return bad(c, "%s%llu headers; at most 1024", at, (unsigned long long)n);
  d->hdrs = calloc(n, sizeof(*d->hdrs));
  if (d->hdrs == NULL)
    return nomem(c);
  for (lua_Unsigned i = 1; i <= n; i++) {
    size_t nlen = 0, vlen = 0;
    const char *name = NULL, *value = NULL;
    if (lua_rawgeti(L, idx, (lua_Integer)i) == LUA_TTABLE) {
      lua_rawgeti(L, -1, 1);
      lua_rawgeti(L, -2, 2); /* [..., pair, name, value] */
    } else {
      lua_pushnil(L);
      lua_pushnil(L);
    }
    if (lua_type(L, -2) == LUA_TSTRING)
      name = lua_tolstring(L, -2, &nlen);
    if (lua_type(L, -1) == LUA_TSTRING)
      value = lua_tolstring(L, -1, &vlen);
    if (name == NULL || nlen == 0 || strlen(name) != nlen || value == NULL) {
      lua_pop(L, 3);
      return bad(c,
                 "%sheaders[%llu] must be a {name, value} pair of strings "
                 "with a non-empty name",
                 at, (unsigned long long)i);
    }
    char where[64];
    snprintf(where, sizeof(where), "%sheaders[%llu]: ", at,
             (unsigned long long)i);
    natka__header *h = &d->hdrs[d->nhdrs++]; /* route_clear frees it */
    h->len = vlen;
    int ok = (h->name = copy(c, name, nlen, where)) != NULL &&
             (h->value = copy(c, value, vlen, where)) != NULL;
    lua_pop(L, 3);
    if (!ok)
      return -1;
  }
  return 0;
}

static const char *const dest_fields[] = {"topic",   "key",  "partition",
                                          "headers", "data", NULL};

/* The topic string at idx into d. */
static int set_topic(lua_State *L, answer *c, int idx, natka__dest *d,
                     const char *at) {
  size_t len;
  const char *topic = lua_tolstring(L, idx, &len);
  if (!natka__rules_topic_ok(topic, len))
    return bad(c, "%sinvalid topic '%.250s' (" NATKA__RULES_TOPIC_RULE ")", at,
               topic);
  d->topic = copy(c, topic, len, at);
  return d->topic != NULL ? 0 : -1;
}

/* The fields of a destination table, pushed at f .. f+4 in dest_fields'
 * order. Stack: unchanged */
static int dest_from_fields(lua_State *L, answer *c, int f, natka__dest *d,
                            const char *at) {
  size_t len;
  int t = lua_type(L, f), isint = 0;
  if (t != LUA_TSTRING)
    return bad(c, "%sa destination needs a string 'topic', got %s", at,
               lua_typename(L, t));
  if (set_topic(L, c, f, d, at) < 0)
    return -1;
  if ((t = lua_type(L, f + 1)) == LUA_TSTRING) {
    const char *key = lua_tolstring(L, f + 1, &len);
    d->has_key = 1;
    d->key_len = len;
    if ((d->key = copy(c, key, len, at)) == NULL)
      return -1;
  } else if (t != LUA_TNIL)
    return bad(c, "%s'key' must be a string, got %s", at, lua_typename(L, t));
  if ((t = lua_type(L, f + 2)) != LUA_TNIL) {
    lua_Integer p = lua_tointegerx(L, f + 2, &isint);
    if (t != LUA_TNUMBER || !isint || p < 0 || p > INT32_MAX)
      return bad(c, "%s'partition' must be an integer from 0, got %s", at,
                 t == LUA_TNUMBER ? lua_tostring(L, f + 2)
                                  : lua_typename(L, t));
    d->partition = (int32_t)p;
  }
  if ((t = lua_type(L, f + 4)) == LUA_TSTRING) {
    const char *data = lua_tolstring(L, f + 4, &len);
    d->has_data = 1;
    d->data_len = len;
    if ((d->data = copy(c, data, len, at)) == NULL)
      return -1;
  } else if (t != LUA_TNIL)
    return bad(c, "%s'data' must be a string, got %s", at, lua_typename(L, t));
  if ((t = lua_type(L, f + 3)) == LUA_TTABLE)
    return to_headers(L, c, f + 3, d, at);
  if (t != LUA_TNIL)
    return bad(c, "%s'headers' must be a list of {name, value}, got %s", at,
               lua_typename(L, t));
  return 0;
}

/*
 * Copies the destination at idx (a topic, or a table with topic and optional
 * key, partition, headers) into d. `at` prefixes errors ("destination 2: ").
 * Returns 0 or -1 (c->rc set). Stack: unchanged
 */
static int to_dest(lua_State *L, answer *c, int idx, natka__dest *d,
                   const char *at) {
  d->partition = -1;
  int t = lua_type(L, idx);
  if (t == LUA_TSTRING)
    return set_topic(L, c, idx, d, at);
  if (t != LUA_TTABLE)
    return bad(c, "%sa %s is not a destination; expected a topic or a table",
               at, lua_typename(L, t));
  for (lua_pushnil(L); lua_next(L, idx); lua_pop(L, 1)) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
    int known = 0;
    for (int i = 0; dest_fields[i] != NULL && !known; i++)
      known = strcmp(k, dest_fields[i]) == 0;
    if (!known) {
      bad(c, "%sunknown field '%s' in a destination (%s)", at,
          *k ? k : luaL_typename(L, -2),
          "topic, key, partition, headers, data");
      lua_pop(L, 2);
      return -1;
    }
  }
  for (int i = 0; dest_fields[i] != NULL; i++)
    raw_field(L, idx, dest_fields[i]); /* [..., topic .. data] */
  int rc = dest_from_fields(L, c, lua_gettop(L) - 4, d, at);
  lua_pop(L, 5);
  return rc;
}

static int one_dest(lua_State *L, answer *c, int idx) {
  if ((c->out->dests = calloc(1, sizeof(natka__dest))) == NULL)
    return nomem(c);
  c->out->n = 1;
  return to_dest(L, c, idx, &c->out->dests[0], "") < 0 ? -1 : 1;
}

/* See natka__rules_answer. Stack: unchanged */
static int convert(lua_State *L, answer *c, int idx) {
  int t = lua_type(L, idx);
  if (t == LUA_TNIL)
    return 0;
  if (t == LUA_TSTRING)
    return one_dest(L, c, idx);
  if (t != LUA_TTABLE)
    return bad(c,
               "route returned a %s; expected a topic, a destination table, "
               "a list or natka.drop",
               lua_typename(L, t));
  lua_getfield(L, LUA_REGISTRYINDEX, NATKA__RULES_REG_DROP);
  int drop = lua_rawequal(L, idx, -1);
  lua_pop(L, 1);
  if (drop) {
    c->out->drop = 1;
    return 1;
  }
  t = raw_field(L, idx, "topic");
  lua_pop(L, 1);
  if (t != LUA_TNIL)
    return one_dest(L, c, idx);

  lua_Unsigned n = lua_rawlen(L, idx), keys = 0;
  for (lua_pushnil(L); lua_next(L, idx); lua_pop(L, 1))
    keys++;
  if (keys == 0)
    return bad(c, "route returned an empty list; return natka.drop to drop");
  if (n == 0 || keys != n)
    return bad(c, "route returned a table that is neither a destination "
                  "(no 'topic') nor a list of destinations");
  if (n > MAX_DESTS)
    return bad(c, "route returned %llu destinations; at most %d",
               (unsigned long long)n, MAX_DESTS);
  if ((c->out->dests = calloc(n, sizeof(natka__dest))) == NULL)
    return nomem(c);
  for (lua_Unsigned i = 1; i <= n; i++) {
    char at[32];
    snprintf(at, sizeof(at), "destination %llu: ", (unsigned long long)i);
    c->out->n = i;
    lua_rawgeti(L, idx, (lua_Integer)i);
    int rc = to_dest(L, c, lua_gettop(L), &c->out->dests[i - 1], at);
    lua_pop(L, 1);
    if (rc < 0)
      return -1;
  }
  return 1;
}

int natka__rules_answer(lua_State *L, int idx, const char *rule, void *out,
                        char *err, size_t errlen, int *rc) {
  void *ud;
  lua_getallocf(L, &ud); /* the rules state's allocator has it */
  answer c = {.rule = rule,
              .out = out,
              .limit = ((natka__rules *)ud)->max_answer,
              .err = err,
              .errlen = errlen,
              .rc = rc};
  return convert(L, &c, idx);
}

void natka__route_clear_dests(natka__route *out) {
  for (size_t i = 0; i < out->n; i++) {
    natka__dest *d = &out->dests[i];
    for (size_t j = 0; j < d->nhdrs; j++) {
      free(d->hdrs[j].name);
      free(d->hdrs[j].value);
    }
    free(d->hdrs);
    free(d->topic);
    free(d->key);
    free(d->data);
  }
  free(out->dests);
  out->dests = NULL;
  out->n = 0;
  out->drop = 0;
  out->bytes = 0;
}

void natka__route_clear(natka__route *r) {
  if (r == NULL)
    return;
  natka__route_clear_dests(r);
  free(r->rule);
  r->rule = NULL;
}

/* A destination as a table. Stack: +1 */
static void push_dest(lua_State *L, const natka__dest *d) {
  lua_createtable(L, 0, 4);
  lua_pushstring(L, d->topic);
  lua_setfield(L, -2, "topic");
  if (d->has_key) {
    lua_pushlstring(L, d->key != NULL ? d->key : "", d->key_len);
    lua_setfield(L, -2, "key");
  }
  if (d->partition >= 0) {
    lua_pushinteger(L, d->partition);
    lua_setfield(L, -2, "partition");
  }
  if (d->has_data) {
    lua_pushlstring(L, d->data, d->data_len);
    lua_setfield(L, -2, "data");
  }
  lua_createtable(L, (int)d->nhdrs, 0);
  for (size_t j = 0; j < d->nhdrs; j++) {
    lua_createtable(L, 2, 0);
    lua_pushstring(L, d->hdrs[j].name);
    lua_rawseti(L, -2, 1);
    lua_pushlstring(L, d->hdrs[j].value, d->hdrs[j].len);
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, (lua_Integer)j + 1);
  }
  lua_setfield(L, -2, "headers");
}

void natka__route_push(lua_State *L, const natka__route *r) {
  if (r->drop) {
    lua_pushliteral(L, "drop");
    return;
  }
  lua_createtable(L, (int)r->n, 0);
  for (size_t i = 0; i < r->n; i++) {
    push_dest(L, &r->dests[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
}
