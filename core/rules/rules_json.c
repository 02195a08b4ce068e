/*
 * JSON helpers for rules: masking sensitive fields of a JSON payload before
 * it leaves for Kafka or NATS.
 *
 * natka.mask_json does not build a document. It checks the text in one
 * pass, in place, and copies it to a Lua buffer with the value of every
 * named member replaced, so that what it takes is the result's bytes,
 * counted by the rules' allocator and collected by Lua whatever happens;
 * the names it looks for are a Lua table used as a set. The former version
 * parsed with cJSON outside the memory cap (a 10 MB document of small
 * values took 400 MB), compared every member with every name (40,000
 * members and 65,536 names: a minute) and leaked its output when Lua
 * raised while taking it.
 */
#include <lauxlib.h>
#include <stdio.h>
#include <string.h>

#include "rules_int.h"

#define MAX_NESTING 1000 /* as cJSON's limit */
#define SCAN_UNIT 64     /* bytes scanned per instruction charged */
#define CHARGE_BYTES (64 << 10)

typedef struct scan {
  lua_State *L;
  const char *s;
  size_t len, pos;
  size_t charged; /* position up to which the scan was charged */
} scan;

static void ws(scan *c) {
  while (c->pos < c->len && (c->s[c->pos] == ' ' || c->s[c->pos] == '\t' ||
                             c->s[c->pos] == '\n' || c->s[c->pos] == '\r'))
    c->pos++;
}

static int hex(int ch) {
  return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
         (ch >= 'A' && ch <= 'F');
}

/* A string at c->pos (at its quote); on success c->pos is past it and
 * *escaped says whether it holds a backslash. */
static int string_token(scan *c, int *escaped) {
  *escaped = 0;
  c->pos++;
  while (c->pos < c->len) {
    char ch = c->s[c->pos++];
    if (ch == '"')
      return 0;
    if (ch != '\\')
      continue;
    *escaped = 1;
    if (c->pos >= c->len)
      return -1;
    ch = c->s[c->pos++];
    if (ch == 'u') {
      for (int i = 0; i < 4; i++)
        if (c->pos >= c->len || !hex((unsigned char)c->s[c->pos++]))
          return -1;
    } else if (strchr("\"\\/bfnrt", ch) == NULL || ch == '\0') {
      return -1;
    }
  }
  return -1;
}

static int digits(scan *c) {
  size_t from = c->pos;
  while (c->pos < c->len && c->s[c->pos] >= '0' && c->s[c->pos] <= '9')
    c->pos++;
  return c->pos > from ? 0 : -1;
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int number_token(scan *c) {
  if (c->s[c->pos] == '-')
    c->pos++;
  if (c->pos < c->len && c->s[c->pos] == '0')
    c->pos++;
  else if (digits(c) != 0)
    return -1;
  if (c->pos < c->len && c->s[c->pos] == '.') {
    c->pos++;
    if (digits(c) != 0)
      return -1;
  }
  if (c->pos < c->len && (c->s[c->pos] == 'e' || c->s[c->pos] == 'E')) {
    c->pos++;
    if (c->pos < c->len && (c->s[c->pos] == '+' || c->s[c->pos] == '-'))
      c->pos++;
    if (digits(c) != 0)
      return -1;
  }
  return 0;
}

static int literal(scan *c, const char *word) {
  size_t n = strlen(word);
  if (c->len - c->pos < n || memcmp(c->s + c->pos, word, n) != 0)
    return -1;
  c->pos += n;
  return 0;
}

static unsigned hex4(const char *p) {
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    int ch = (unsigned char)p[i];
    v = v * 16 + (unsigned)(ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10);
  }
  return v;
}

/* Decodes the escapes of the string s[0..n) (already checked) into out,
 * which has n bytes; returns the decoded length. */
static size_t unescape(const char *s, size_t n, char *out) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] != '\\') {
      out[o++] = s[i];
      continue;
    }
    char ch = s[++i];
    if (ch != 'u') {
      const char *from = "bfnrt", *to = "\b\f\n\r\t";
      const char *at = strchr(from, ch);
      out[o++] = at != NULL ? to[at - from] : ch;
      continue;
    }
    unsigned cp = hex4(s + i + 1);
    i += 4;
    if (cp >= 0xd800 && cp < 0xdc00 && i + 6 < n && s[i + 1] == '\\' &&
        s[i + 2] == 'u') {
      unsigned lo = hex4(s + i + 3);
      if (lo >= 0xdc00 && lo < 0xe000) {
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        i += 6;
      }
    }
    /* at most 4 bytes, from at least 6 of input */
    if (cp < 0x80) {
      out[o++] = (char)cp;
    } else if (cp < 0x800) {
      out[o++] = (char)(0xc0 | cp >> 6);
      out[o++] = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out[o++] = (char)(0xe0 | cp >> 12);
      out[o++] = (char)(0x80 | (cp >> 6 & 0x3f));
      out[o++] = (char)(0x80 | (cp & 0x3f));
    } else {
      out[o++] = (char)(0xf0 | cp >> 18);
      out[o++] = (char)(0x80 | (cp >> 12 & 0x3f));
      out[o++] = (char)(0x80 | (cp >> 6 & 0x3f));
      out[o++] = (char)(0x80 | (cp & 0x3f));
    }
  }
  return o;
}

/* Whether the member name s[0..n) (raw, between its quotes) is in the set
 * at index `set`. Stack: unchanged */
static int named(lua_State *L, int set, const char *s, size_t n, int escaped) {
  if (escaped) {
    char *plain = lua_newuserdatauv(L, n, 0);
    lua_pushlstring(L, plain, unescape(s, n, plain));
    lua_remove(L, -2);
  } else {
    lua_pushlstring(L, s, n);
  }
  int hit = lua_rawget(L, set) != LUA_TNIL;
  lua_pop(L, 1);
  return hit;
}

/* Adds mask as a JSON string, escaped as cJSON printed it. */
static void add_mask(luaL_Buffer *b, const char *mask, size_t n) {
  luaL_addchar(b, '"');
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)mask[i];
    const char *esc = ch == '"'    ? "\\\""
                      : ch == '\\' ? "\\\\"
                      : ch == '\b' ? "\\b"
                      : ch == '\f' ? "\\f"
                      : ch == '\n' ? "\\n"
                      : ch == '\r' ? "\\r"
                      : ch == '\t' ? "\\t"
                                   : NULL;
    if (esc != NULL) {
      luaL_addstring(b, esc);
    } else if (ch < 0x20) {
      char u[8];
      snprintf(u, sizeof(u), "\\u%04x", ch);
      luaL_addstring(b, u);
    } else {
      luaL_addchar(b, (char)ch);
    }
  }
  luaL_addchar(b, '"');
}

/* Charges the bytes scanned since the last charge, in steps. */
static void charge(scan *c) {
  if (c->pos - c->charged >= CHARGE_BYTES) {
    natka__rules_charge(c->L, (int64_t)((c->pos - c->charged) / SCAN_UNIT));
    c->charged = c->pos;
  }
}

/*
 * One pass over the document: validates it and copies it to b, with the
 * value of every member whose name is in the set at index `set` replaced
 * by the mask. Containers are kept on a stack of their opening characters;
 * inside a masked value, names are not looked up. Returns 0, or -1 with
 * c->pos near the fault.
 */
static int mask_doc(scan *c, int set, luaL_Buffer *b, const char *mask,
                    size_t mlen) {
  char stack[MAX_NESTING];
  int depth = 0, masked_at = -1, mask_next = 0, escaped;
  size_t copied = 0, masked_from = 0;
  for (;;) {
    /* a value */
    charge(c);
    ws(c);
    if (c->pos >= c->len)
      return -1;
    if (mask_next) {
      masked_at = depth;
      masked_from = c->pos;
      mask_next = 0;
    }
    char ch = c->s[c->pos];
    if (ch == '{' || ch == '[') {
      if (depth == MAX_NESTING)
        return -1;
      stack[depth++] = ch;
      c->pos++;
      ws(c);
      if (c->pos < c->len && c->s[c->pos] == (ch == '{' ? '}' : ']')) {
        c->pos++;
        depth--;
      } else if (ch == '{') {
        goto member;
      } else {
        continue;
      }
    } else if (ch == '"') {
      if (string_token(c, &escaped) != 0)
        return -1;
    } else if (ch == '-' || (ch >= '0' && ch <= '9')) {
      if (number_token(c) != 0)
        return -1;
    } else if (literal(c, "true") != 0 && literal(c, "false") != 0 &&
               literal(c, "null") != 0) {
      return -1;
    }

    for (;;) { /* a value ended at c->pos */
      if (masked_at == depth) {
        luaL_addlstring(b, c->s + copied, masked_from - copied);
        add_mask(b, mask, mlen);
        copied = c->pos;
        masked_at = -1;
      }
      ws(c);
      if (depth == 0) {
        if (c->pos != c->len)
          return -1;
        luaL_addlstring(b, c->s + copied, c->len - copied);
        return 0;
      }
      char open = stack[depth - 1];
      if (c->pos < c->len && c->s[c->pos] == ',') {
        c->pos++;
        if (open == '{')
          goto member;
        break; /* the next item of an array */
      }
      if (c->pos >= c->len || c->s[c->pos] != (open == '{' ? '}' : ']'))
        return -1;
      c->pos++;
      depth--;
    }
    continue;

  member:
    ws(c);
    if (c->pos >= c->len || c->s[c->pos] != '"')
      return -1;
    size_t name = c->pos + 1;
    if (string_token(c, &escaped) != 0)
      return -1;
    if (masked_at < 0)
      mask_next = named(c->L, set, c->s + name, c->pos - 1 - name, escaped);
    ws(c);
    if (c->pos >= c->len || c->s[c->pos] != ':')
      return -1;
    c->pos++;
  }
}

/*
 * natka.mask_json(data, fields [, mask]) -> string
 * data: JSON text (one value, whitespace around it allowed); fields: a list
 * of member names; mask: the replacement text ("***"). The result is data
 * byte for byte except for the masked values. Raises on data that is not
 * JSON. Stack: [data, fields, mask?] -> [data, fields, mask, set, result]
 */
int natka__rules_mask_json(lua_State *L) {
  size_t len, mlen;
  const char *data = luaL_checklstring(L, 1, &len);
  luaL_checktype(L, 2, LUA_TTABLE);
  const char *mask = luaL_optlstring(L, 3, "***", &mlen);
  lua_settop(L, 3);
  lua_Unsigned n = lua_rawlen(L, 2);
  natka__rules_charge(L, (int64_t)n);
  lua_createtable(L, 0, n < (1u << 20) ? (int)n : 1 << 20); /* [.., set] */
  for (lua_Unsigned i = 1; i <= n; i++) {
    if (lua_rawgeti(L, 2, (lua_Integer)i) == LUA_TSTRING) {
      lua_pushboolean(L, 1);
      lua_rawset(L, 4);
    } else {
      lua_pop(L, 1);
    }
  }
  scan c = {.L = L, .s = data, .len = len};
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  if (mask_doc(&c, 4, &b, mask, mlen) != 0)
    return luaL_error(L, "natka.mask_json: data is not JSON (near byte %I)",
                      (LUAI_UACINT)c.pos);
  natka__rules_charge(L, (int64_t)((c.pos - c.charged) / SCAN_UNIT));
  luaL_pushresult(&b);
  return 1;
}
