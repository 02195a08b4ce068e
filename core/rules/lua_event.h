/*
 * The event as Lua sees it: a userdata of metatable "natka.event" holding a
 * pointer, with fields read lazily through __index (no table per event).
 *
 *   ev.id ev.kind ev.ts (ms, integer) ev.ts_ns ev.key (nil: no key) ev.data
 *   ev:header(name)   first value or nil
 *   ev:headers(name)  every value of name, in order (a new table)
 *   ev:headers()      every header as { {name, value}, ... } (a new table)
 *
 * A borrowed view (what rules get) is detached after the call, so a rule
 * that keeps `ev` past its call gets a clear error, never freed memory. An
 * owned event (from the Lua module's natka.event{...}) is freed by __gc /
 * __close.
 */
#ifndef NATKA_LUA_EVENT_H
#define NATKA_LUA_EVENT_H

#include <lua.h>

#include "event_int.h"

#define NATKA__EVENT_MT "natka.event"

/* Registers the metatable (idempotent). Stack: unchanged. */
void natka__lua_event_register(lua_State *L);

/* Pushes a view of ev. owned != 0 hands ev to Lua's GC. Stack: +1. */
void natka__lua_event_push(lua_State *L, natka_event *ev, int owned);

/* Detaches the view at idx (borrowed views only). Stack: unchanged. */
void natka__lua_event_detach(lua_State *L, int idx);

/* The event behind the view at idx; raises a Lua error when idx is not an
 * event or is detached. */
natka_event *natka__lua_event_check(lua_State *L, int idx);

/* Builds an event from the table at idx ({id=, kind=, ts=, key=, data=,
 * headers={{n,v},...}}) and pushes it as an owned view, for tests and the Lua
 * module. Raises on bad fields. Stack: +1. */
int natka__lua_event_new(lua_State *L);

#endif
