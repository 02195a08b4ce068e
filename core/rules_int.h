/*
 * Shared by rules.c (the state, the sandbox, modules, calling route() under
 * a budget) and rules_answer.c (what route() returned, as a natka__route).
 * Not installed. Loop thread only, like the rest of rules.h.
 */
#ifndef NATKA_RULES_INT_H
#define NATKA_RULES_INT_H

#include <lua.h>
#include <stddef.h>

#include "rules.h"

/* Registry key of the natka.drop sentinel, stored by the prelude's setup. */
#define NATKA__RULES_REG_DROP "natka.rules.drop"

/* Letters and digits, the base of module and topic names. */
#define NATKA__RULES_ALNUM                                                     \
  "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

/* What natka__rules_topic_ok accepts, for messages. */
#define NATKA__RULES_TOPIC_RULE "1 to 249 of A-Z a-z 0-9 . _ -, not '.' or '..'"

/* A Kafka topic name: 1..249 of [A-Za-z0-9._-], not "." or "..". */
int natka__rules_topic_ok(const char *s, size_t len);

/*
 * Turns what the route() of module `rule` returned (at idx) into out: 0 for
 * nil (no opinion), 1 when it decided, -1 when the value is not a valid
 * answer, with *rc set (NATKA_ERULE or NATKA_ENOMEM) and the reason in err.
 * Only raw accesses: a metamethod here would run outside the rule's budget.
 * Allocates Lua values, so call it inside lua_pcall. On -1, out may hold
 * some destinations: free them with natka__route_clear_dests.
 * Stack: unchanged
 */
int natka__rules_answer(lua_State *L, int idx, const char *rule,
                        natka__route *out, char *err, size_t errlen, int *rc);

/* Frees out's destinations and clears drop, keeping out->rule. */
void natka__route_clear_dests(natka__route *out);

#endif
