/*
 * The rules host: one sandboxed Lua 5.4 state holding the loaded rule
 * modules. Used only on the loop thread.
 *
 * A rule module is a chunk that returns a table; this file knows its
 * `route(ev)` function. Modules are consulted in name order: the first whose
 * route returns something other than nil decides. When none decides, the
 * default route applies (route.default_topic, or a topic named after the
 * event's kind).
 *
 * route(ev) may return:
 *   "topic"                                   one destination
 *   { topic = "t", key = "k", partition = 2,
 *     headers = { {"name", "value"}, ... } }  one destination with overrides
 *   { dest, dest, ... }                       several (each a string or table)
 *   natka.drop                                drop the event (counted)
 *   nil                                       no opinion: ask the next module
 */
#ifndef NATKA_RULES_H
#define NATKA_RULES_H

#include <stddef.h>
#include <stdint.h>

#include "event_int.h"
#include "log.h"

typedef struct natka__rules natka__rules;

typedef struct natka__dest {
  char *topic;
  char *key; /* NULL: keep the event's key (see has_key) */
  size_t key_len;
  int has_key;       /* 1: the rule set a key override (key may be "") */
  int32_t partition; /* -1: the partitioner decides */
  natka__header *hdrs; /* extra headers appended to the event's */
  size_t nhdrs;
} natka__dest;

typedef struct natka__route {
  int drop;          /* 1: the rule returned natka.drop */
  natka__dest *dests;
  size_t n;
  char *rule;        /* module that decided (or failed); NULL: default route */
} natka__route;

void natka__route_clear(natka__route *r);

typedef struct natka__rules_opts {
  int64_t instr_budget;      /* VM instructions per rule call; 0: unlimited */
  size_t mem_limit;          /* bytes for the whole state; 0: unlimited */
  const char *default_topic; /* NULL or "": topic from the event's kind */
  natka__log *log;           /* may be NULL */
} natka__rules_opts;

/* A new state with the sandbox and no modules. Errors: NATKA_ENOMEM. */
int natka__rules_new(natka__rules **out, const natka__rules_opts *opts,
                     char *err, size_t errlen);
void natka__rules_free(natka__rules *r);

/* Compiles and runs a module chunk (text only, never bytecode) in its own
 * environment and checks what it returns. Replaces a module of the same
 * name. Errors: NATKA_ERULE with "<name>: <reason>" in err; the state keeps
 * its previous modules. */
int natka__rules_add_module(natka__rules *r, const char *name, const char *src,
                            size_t len, char *err, size_t errlen);

/* Reads a file and adds it as a module named after the file (basename without
 * ".lua"). Errors: NATKA_EIO, NATKA_ERULE. */
int natka__rules_load_file(natka__rules *r, const char *path, char *err,
                           size_t errlen);

size_t natka__rules_count(const natka__rules *r);

/*
 * Decides where `ev` goes. On success fills `out` (cleared first; free with
 * natka__route_clear). Errors: NATKA_ERULE when a route function raised, ran
 * past its budget or returned something invalid: err holds the reason and
 * out->rule the module's name; NATKA_ENOMEM.
 */
int natka__rules_route(natka__rules *r, natka_event *ev, natka__route *out,
                       char *err, size_t errlen);

#endif
