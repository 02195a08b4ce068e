/*
 * JSON helpers for rules, in C over libcjson: masking sensitive fields of a
 * JSON payload before it leaves for Kafka or NATS.
 */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "rules_int.h"

/* Whether name is one of the strings in the table at idx (a list). */
static int listed(lua_State *L, int idx, const char *name) {
  lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, i);
    int hit = lua_type(L, -1) == LUA_TSTRING &&
              strcmp(lua_tostring(L, -1), name) == 0;
    lua_pop(L, 1);
    if (hit)
      return 1;
  }
  return 0;
}

/* Replaces, at any depth, the value of every member named in the fields
 * list at idx by a copy of mask. Returns 0 or -1 when out of memory. */
static int mask(lua_State *L, cJSON *node, int idx, const char *with) {
  for (cJSON *child = node ? node->child : NULL; child != NULL;
       child = child->next) {
    if (cJSON_IsObject(node) && child->string != NULL &&
        listed(L, idx, child->string)) {
      /* Replacing by pointer keeps the place but not the name: give the new
       * item the name (cJSON frees it with free(), its default hook). */
      cJSON *masked = cJSON_CreateString(with);
      if (masked != NULL)
        masked->string = strdup(child->string);
      if (masked == NULL || masked->string == NULL ||
          !cJSON_ReplaceItemViaPointer(node, child, masked)) {
        cJSON_Delete(masked);
        return -1;
      }
      child = masked; /* the replaced child is freed; go on from its place */
    } else if (mask(L, child, idx, with) != 0) {
      return -1;
    }
  }
  return 0;
}

/*
 * natka.mask_json(data, fields [, mask]) -> string
 * data: JSON text; fields: a list of member names; mask: replacement text
 * ("***"). Raises on data that is not JSON. cJSON allocates outside the
 * rules' counting allocator, so the input is bounded by the event size.
 * Stack: [data, fields, mask?] -> [.., result]
 */
int natka__rules_mask_json(lua_State *L) {
  size_t len;
  const char *data = luaL_checklstring(L, 1, &len);
  luaL_checktype(L, 2, LUA_TTABLE);
  const char *with = luaL_optstring(L, 3, "***");
  const char *end = NULL;
  cJSON *doc = cJSON_ParseWithLengthOpts(data, len, &end, 0);
  if (doc == NULL)
    return luaL_error(L, "natka.mask_json: data is not JSON (near byte %d)",
                      (int)(end != NULL ? end - data : 0));
  char *text = mask(L, doc, 2, with) == 0 ? cJSON_PrintUnformatted(doc) : NULL;
  cJSON_Delete(doc);
  if (text == NULL)
    return luaL_error(L, "natka.mask_json: out of memory");
  lua_pushstring(L, text);
  cJSON_free(text);
  return 1;
}
