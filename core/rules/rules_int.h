/*
 * Shared by the files of the rules host (rules.h): rules.c (the state, the
 * sandbox, modules, calling rule functions under a budget, route),
 * rules_answer.c (what route() returned, as a natka__route),
 * rules_verdicts.c (dedup, degrade, switches and self-tests), rules_json.c
 * (natka.mask_json), rules_stdlib.c and rules_pattern.c (the standard
 * functions, bounded). Not installed. Loop thread only, like the rest of
 * rules.h.
 */
#ifndef NATKA_RULES_INT_H
#define NATKA_RULES_INT_H

#include <lua.h>
#include <stddef.h>

#include "rules.h"

/* Registry key of the natka.drop sentinel, stored by the prelude's setup. */
#define NATKA__RULES_REG_DROP "natka.rules.drop"

/* Registry key of the current switches: a read-only view (see
 * natka__rules_set_switches), never nil once the state is set up. */
#define NATKA__RULES_REG_SWITCHES "natka.rules.switches"

/* Registry key of the table of prelude functions only C calls (`host` in
 * lua/natka/prelude.lua): readonly(t, name) and selftest(...). */
#define NATKA__RULES_REG_HOST "natka.rules.host"

/* Letters and digits, the base of module and topic names. */
#define NATKA__RULES_ALNUM                                                     \
  "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

/* What natka__rules_topic_ok accepts, for messages. */
#define NATKA__RULES_TOPIC_RULE "1 to 249 of A-Z a-z 0-9 . _ -, not '.' or '..'"

/* The functions a module may export, as indexes into natka__module.fns. */
enum { NATKA__FN_ROUTE, NATKA__FN_DEDUP, NATKA__FN_DEGRADE, NATKA__NFNS };

/* Their names, in that order. */
extern const char *const natka__rules_fn_names[NATKA__NFNS];

typedef struct natka__module {
  char *name;
  int table;            /* registry ref: the table the chunk returned */
  int fns[NATKA__NFNS]; /* registry refs to its functions, or LUA_NOREF */
} natka__module;

/* Why budgeted Lua work was stopped (natka__rules.killed). */
enum {
  NATKA__KILL_NONE,
  NATKA__KILL_INSTR,    /* the instruction budget is spent */
  NATKA__KILL_TIME,     /* the event's time limit passed */
  NATKA__KILL_LOAD_TIME /* the rule set's load time limit passed */
};

struct natka__rules {
  lua_State *L;
  natka__log *log;
  char *default_topic;  /* NULL: a topic named after the event's kind */
  int64_t instr_budget; /* per event; 0: unlimited */
  int64_t time_ns;      /* per event; 0: unlimited */
  int64_t load_time_ns; /* loading modules and self-tests, in all */
  int64_t load_spent_ns;
  int64_t load_started;  /* mono ns, while loading or self-testing */
  int64_t load_deadline; /* mono ns while loading or self-testing; 0: none */
  size_t mem_limit, mem_used;
  size_t max_answer;   /* bytes a route answer may carry; 0: unlimited */
  natka__module *mods; /* sorted by name */
  size_t nmods, cap;
  int nrefs; /* registry refs held by mods, checked when freed */

  /* The budgeted work in progress (natka__rules_arm). */
  const char *current;       /* module being loaded or called */
  natka__rules_spent *acct;  /* what the work spends is added here */
  int64_t limit, used;       /* instructions it may use, has used */
  int64_t started, deadline; /* mono ns; deadline 0: none */
  int deadline_kind;         /* NATKA__KILL_TIME or NATKA__KILL_LOAD_TIME */
  int killed;                /* NATKA__KILL_*: why it was stopped */
  int refuse;     /* allocations refused until the hook runs (time is up) */
  unsigned ticks; /* allocations, to read the clock every few of them */
};

/*
 * Budgeted Lua work. natka__rules_arm starts work charged to acct: at most
 * `budget` instructions (0: unlimited) and `time_ns` of wall-clock time (0:
 * unlimited), less what acct already holds, and no later than the load
 * deadline while a rule set loads. The count hook, the allocator and
 * natka__rules_charge enforce them; natka__rules_disarm adds what was spent
 * to acct. Returns NATKA__KILL_NONE, or why nothing is left (also in
 * r->killed; nothing may run then).
 */
int natka__rules_arm(natka__rules *r, natka__rules_spent *acct, int64_t budget,
                     int64_t time_ns);
void natka__rules_disarm(natka__rules *r);

/* Loading modules and running self-tests: between the two calls, work is
 * also bounded by what is left of the load time. load_end returns 1 when
 * the state has now spent more than its load time. */
void natka__rules_load_begin(natka__rules *r);
int natka__rules_load_end(natka__rules *r);

/*
 * For C functions rules call whose work the instruction counter cannot see:
 * charges `units` (an element moved, a pattern step, ...) to the budget
 * and checks the deadline, before the work is done. Raises when either is
 * spent, and the rule is stopped as by the hook. No-op outside budgeted
 * work. Stack: unchanged (or raises)
 */
void natka__rules_charge(lua_State *L, int64_t units);

/* A Kafka topic name: 1..249 of [A-Za-z0-9._-], not "." or "..". */
int natka__rules_topic_ok(const char *s, size_t len);

/*
 * Turns what a rule function of module `rule` returned (at idx) into out:
 * 0 for nil (no opinion), 1 when it decided, -1 when the value is not a
 * valid answer, with *rc set (NATKA_ERULE or NATKA_ENOMEM) and the reason in
 * err. Only raw accesses: a metamethod here would run outside the rule's
 * budget. May allocate Lua values, so call it inside lua_pcall; on -1, out
 * may hold part of the answer for its clear function to free.
 * Stack: unchanged
 */
typedef int (*natka__rules_convert)(lua_State *L, int idx, const char *rule,
                                    void *out, char *err, size_t errlen,
                                    int *rc);

/* route(): out is a natka__route. */
int natka__rules_answer(lua_State *L, int idx, const char *rule, void *out,
                        char *err, size_t errlen, int *rc);

/* dedup(): out is a natka__dedup_key; degrade(): out is a natka__degrade. */
typedef struct natka__dedup_key {
  char *key;
  size_t len;
} natka__dedup_key;

int natka__rules_dedup_answer(lua_State *L, int idx, const char *rule,
                              void *out, char *err, size_t errlen, int *rc);
int natka__rules_degrade_answer(lua_State *L, int idx, const char *rule,
                                void *out, char *err, size_t errlen, int *rc);

/* Frees out's destinations and clears drop, keeping out->rule. */
void natka__route_clear_dests(natka__route *out);

/* An answer as the Lua value self-tests and natka.core compare: "drop" or
 * a list of { topic=, key=, partition=, headers={{n, v}, ...} } for a route;
 * { kind, subject=, reason= } for a degrade verdict. Stack: +1 */
void natka__route_push(lua_State *L, const natka__route *r);
void natka__degrade_push(lua_State *L, const natka__degrade *d);

/*
 * Asking the modules. natka__rules_ask lends `ev` to each module's function
 * `fn` in name order (degrade also gets the switches) until one decides or
 * fails, converting the answer into `out` with `convert`. `rule` then names
 * that module (it points into the module list); NULL when none decided.
 * Returns 0, or rc with err set: NATKA_ERULE, NATKA_ENOMEM.
 */
typedef struct natka__ask {
  natka__rules *r;
  natka_event *ev;
  int fn;
  natka__rules_convert convert;
  void *out;
  char *err;
  size_t errlen;
  int rc;
  int collect; /* an allocation was refused: collect once the call is over */
  const char *rule;
} natka__ask;

int natka__rules_ask(natka__ask *a);

/*
 * Calls function `fn` of module m with the event view at ev_idx (and the
 * switches, for degrade), as part of armed work (natka__rules_arm). Returns
 * 0 with the result pushed, or NATKA_ERULE with err set and nothing pushed
 * (also when the work was stopped before); *collect becomes 1 when the call
 * ran out of memory. Run inside lua_pcall.
 * Stack: [] -> [result] | []
 */
int natka__rules_call(natka__rules *r, const natka__module *m, int fn,
                      int ev_idx, char *err, size_t errlen, int *collect);

/* The "<what> '<name>': reason" message for a failed Lua call (rules.c);
 * killed is a NATKA__KILL_* reason, budget the instructions it had. */
int natka__rules_failure(natka__rules *r, char *err, size_t errlen,
                         const char *what, const char *name, int st,
                         const char *msg, int killed, int64_t budget);

/* Replaces the standard functions whose work the count hook cannot see
 * with bounded ones (rules_stdlib.c), in the library tables of the state's
 * real globals. Stack: unchanged */
void natka__rules_bound_stdlib(lua_State *L);

/* Replaces string.find, match, gmatch and gsub with natka's matcher, which
 * charges its steps to the budget (rules_pattern.c). Stack: unchanged */
void natka__rules_patterns(lua_State *L);

/* natka.mask_json(data, fields [, mask]) (rules_json.c). */
int natka__rules_mask_json(lua_State *L);

#endif
