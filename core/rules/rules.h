/*
 * The rules host: one sandboxed Lua 5.4 state holding the loaded rule
 * modules. Used only on the loop thread.
 *
 * A rule module is a chunk that returns a table with any of `route(ev)`,
 * `dedup(ev)`, `degrade(ev, switches)` and `tests`. For each of the three
 * functions, modules are consulted in name order: the first whose function
 * returns something other than nil decides.
 *
 * route(ev) may return:
 *   "topic"                                   one destination
 *   { topic = "t", key = "k", partition = 2,
 *     headers = { {"name", "value"}, ... } }  one destination with overrides
 *   { dest, dest, ... }                       several (each a string or table)
 *   natka.drop                                drop the event (counted)
 *   nil                                       no opinion: ask the next module
 * When no module decides, the default route applies (route.default_topic,
 * or a topic named after the event's kind).
 *
 * dedup(ev) may return a string of 1 to 1024 bytes (any bytes), the key
 * under which duplicates of this event are recognised, or nil.
 *
 * degrade(ev, switches) may return "forward", "dual", "hold", "dlq", "drop",
 * a table { "dual", subject = "x.y" } (subject: the NATS subject for the
 * copy), { "dlq" | "drop" | "hold", reason = "..." } or { "forward" }, or
 * nil. `switches` is the read-only table of natka__rules_set_switches; every
 * rule function can also read one switch with natka.switch(name).
 *
 * tests = { case, ... } lists sample events and the verdicts they must get
 * from the module alone; natka__rules_selftest runs them. A case is
 *   { name = "...", event = { fields of natka.core's event{} },
 *     expect = "drop" | "pass" | { dest, ... } | { error = "text" },
 *     dedup = "key" | false | { error = "text" },
 *     degrade = "hold" | { "dual", subject = "s" } | false | { error = "..." },
 *     switches = { name = "value", ... } }
 * with at least one of expect, dedup and degrade. A dest is a topic or a
 * table whose given fields must match; false means "returns nil"; switches
 * are what degrade() and natka.switch see during the case (none if absent).
 */
#ifndef NATKA_RULES_H
#define NATKA_RULES_H

#include <stddef.h>
#include <stdint.h>

#include "event_int.h"
#include "log.h"

typedef struct natka__rules natka__rules;

typedef struct natka__route {
  int drop; /* 1: the rule returned natka.drop */
  natka__dest *dests;
  size_t n;
  char *rule;   /* module that decided (or failed); NULL: default route */
  size_t bytes; /* what the copies hold: topics, keys, data, header names
                   and values; at most opts.max_answer_bytes */
} natka__route;

void natka__route_clear(natka__route *r);

/*
 * Limits. An event's budget covers every rule call made for it (its dedup,
 * degrade and route, in every module): the instructions and the time they
 * use are kept on the event. Loading modules and running self-tests share
 * one more time limit, the state's load time.
 */
typedef struct natka__rules_opts {
  int64_t instr_budget;       /* VM instructions per event; 0: unlimited */
  int64_t time_limit_ms;      /* wall-clock ms per event; 0: unlimited */
  int64_t load_time_limit_ms; /* ms for loading modules and self-testing
                                  them, in all; 0: unlimited */
  size_t mem_limit;           /* bytes for the whole state; 0: unlimited */
  size_t max_answer_bytes;    /* bytes one route() answer may carry (topics,
                                 keys, data, headers); 0: unlimited */
  const char *default_topic;  /* NULL or "": topic from the event's kind */
  natka__log *log;            /* may be NULL */
} natka__rules_opts;

/* A new state with the sandbox and no modules. Errors: NATKA_ENOMEM. */
int natka__rules_new(natka__rules **out, const natka__rules_opts *opts,
                     char *err, size_t errlen);
void natka__rules_free(natka__rules *r);

/* Compiles and runs a module chunk (text only, never bytecode) in its own
 * environment, with ten times an event's instruction budget and within what
 * is left of the state's load time, and checks what it returns. Replaces a
 * module of the same name. Errors: NATKA_ERULE with "<name>: <reason>" in err;
 * the state keeps its previous modules. */
int natka__rules_add_module(natka__rules *r, const char *name, const char *src,
                            size_t len, char *err, size_t errlen);

/* Reads a file and adds it as a module named after the file (basename without
 * ".lua"). Errors: NATKA_EIO, NATKA_ERULE. */
int natka__rules_load_file(natka__rules *r, const char *path, char *err,
                           size_t errlen);

size_t natka__rules_count(const natka__rules *r);

/*
 * Decides where `ev` goes. On success fills `out` (cleared first; free with
 * natka__route_clear); out->bytes is what its copies hold, which the caller
 * should count against its memory bounds while it keeps them (or copies of
 * them). Errors: NATKA_ERULE when a route function raised, ran past the
 * event's budget or returned something invalid, more than
 * opts.max_answer_bytes included: err holds the reason and out->rule the
 * module's name; NATKA_ENOMEM.
 */
int natka__rules_route(natka__rules *r, natka_event *ev, natka__route *out,
                       char *err, size_t errlen);

/*
 * Finds the deduplication key of `ev`. On success *key is NULL when no
 * module has a dedup or all returned nil; otherwise it is the key (malloc'ed,
 * with a NUL after *len bytes; the caller frees it). *rule is the name of the
 * module that decided or failed (malloc'ed, caller frees; NULL when none).
 * Errors: NATKA_ERULE when a dedup raised, ran past its budget or returned
 * something other than a string of 1 to 1024 bytes (err names the module;
 * *key is NULL); NATKA_ENOMEM; NATKA_EINVAL.
 */
int natka__rules_dedup(natka__rules *r, natka_event *ev, char **key,
                       size_t *len, char **rule, char *err, size_t errlen);

typedef enum {
  NATKA__DEGRADE_FORWARD,
  NATKA__DEGRADE_DUAL,
  NATKA__DEGRADE_HOLD,
  NATKA__DEGRADE_DLQ,
  NATKA__DEGRADE_DROP
} natka__degrade_kind;

typedef struct natka__degrade {
  natka__degrade_kind kind;
  char *subject; /* DUAL: NATS subject, or NULL for the default */
  char *reason;  /* DLQ/DROP/HOLD: why, or NULL */
  char *rule;    /* module that decided (or failed); NULL: none */
  int decided;   /* 0: no module decided (kind is FORWARD) */
} natka__degrade;

/* Frees d's strings and resets it to an undecided FORWARD. */
void natka__degrade_clear(natka__degrade *d);

/* "forward", "dual", "hold", "dlq", "drop"; NULL for an unknown kind. */
const char *natka__degrade_kind_name(natka__degrade_kind kind);

/*
 * Asks the modules' degrade(ev, switches) what to do with `ev`. On success
 * fills `out` (cleared first; free with natka__degrade_clear): when no module
 * decided, out->decided is 0 and out->kind FORWARD, and the core applies the
 * `mode` switch itself. Errors: NATKA_ERULE when a degrade raised, ran past
 * its budget or returned something not listed above: err holds the module
 * and what it returned, out->rule the module; NATKA_ENOMEM; NATKA_EINVAL.
 */
int natka__rules_degrade(natka__rules *r, natka_event *ev, natka__degrade *out,
                         char *err, size_t errlen);

/*
 * Replaces the switches rules see (degrade's second argument and
 * natka.switch(name)) with names[i] = values[i], i < n, all copied; a name
 * given twice keeps its last value. The new set is built aside and swapped
 * in whole, so a failure leaves the previous one. Until the first call the
 * set is empty. Errors: NATKA_EINVAL (NULL r, or a NULL array or string),
 * NATKA_ENOMEM (the previous switches stay).
 */
int natka__rules_set_switches(natka__rules *r, const char *const *names,
                              const char *const *values, size_t n);

/*
 * Runs the `tests` of every loaded module in name order, each against that
 * module alone (its own route, dedup and degrade, not the chain), each case
 * with an event's budget, all of them within what is left of the state's
 * load time (then: NATKA_ERULE, "... time limit exceeded (N ms to load and
 * self-test the rule set)"). Each case sees its own switches only; the switches
 * set before are back afterwards. A module without tests passes. Returns 0, or
 * NATKA_ERULE with the first failure in err, one line naming the module and
 * the case (followed by a short traceback when the rule raised):
 *   module 'orders': test 'keyed by account': expected {...}, got {...}
 *   module 'x': tests[2]: event must be a table
 * NATKA_EINVAL for a NULL r. Meant for a state about to go live (it runs
 * every rule function at least once per case).
 */
int natka__rules_selftest(natka__rules *r, char *err, size_t errlen);

#endif
