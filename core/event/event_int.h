/* The layout of natka_event, shared by the core's files (not installed). */
#ifndef NATKA_EVENT_INT_H
#define NATKA_EVENT_INT_H

#include "natka/event.h"

typedef struct natka__header {
  char *name;  /* NUL-terminated text */
  char *value; /* bytes, NUL-terminated for convenience; never NULL */
  size_t len;
} natka__header;

/* Where an event goes: a topic (or subject) and what to change on the way
 * (a route's destination, decided by the rules or the default route). */
typedef struct natka__dest {
  char *topic;
  char *key; /* NULL: keep the event's key (see has_key) */
  size_t key_len;
  int has_key;       /* 1: the rule set a key override (key may be "") */
  int32_t partition; /* -1: the partitioner decides */
  char *data;        /* has_data: the payload written to this destination */
  size_t data_len;   /* (e.g. masked with natka.mask_json) */
  int has_data;
  natka__header *hdrs; /* extra headers appended to the event's */
  size_t nhdrs;
} natka__dest;

/* What rule calls have spent on one event (see rules.h): all of its route,
 * dedup and degrade calls, in every module, draw on one budget. */
typedef struct natka__rules_spent {
  int64_t instr;  /* VM instructions (counted in steps) and helper work */
  int64_t ns;     /* wall-clock time */
  size_t printed; /* bytes print() logged */
} natka__rules_spent;

struct natka_event {
  char *id;   /* NULL: unset */
  char *kind; /* NULL: unset */
  int64_t ts; /* ns since epoch; 0: unset */
  char *key;  /* NULL: no key; NUL-terminated for convenience */
  size_t key_len;
  char *data; /* never NULL once set; NUL-terminated for convenience */
  size_t data_len;
  natka__header *hdrs;
  size_t nhdrs;
  size_t cap;
  natka__rules_spent spent; /* zero when the event is made */
};

/* Bytes the event occupies on the wire (data + key + header names/values +
 * id + kind), compared against limits.max_event_bytes. */
size_t natka__event_wire_size(const natka_event *ev);

/* Index of the first header called `name` (exact match) at or after `from`,
 * or -1. */
long natka__event_find_header(const natka_event *ev, const char *name,
                              size_t from);

/* Removes every header called `name`; returns how many were removed. */
size_t natka__event_remove_headers(natka_event *ev, const char *name);

/* Deep copy. Returns NULL on out-of-memory. */
natka_event *natka__event_clone(const natka_event *ev);

#endif
