/*
 * natka events.
 *
 * An event is natka's one currency: Event { id, ts, key, kind, data, headers }.
 * Both buses map onto it (CloudEvents binary content mode, see README), and
 * every rule sees it.
 *
 *   id       text, unique per source. natka assigns one when the input has
 * none. ts       nanoseconds since the Unix epoch; 0 means "not set" (natka
 * sets it to the time the event was accepted). key      optional bytes, any
 * content; "no key" differs from "empty key". kind     text, the CloudEvents
 * type; defaults to the NATS subject. data     bytes, binary-safe (NUL bytes
 * allowed), may be empty. headers  an ordered multimap of text names to byte
 * values: a name given twice stays twice, in the order given.
 *
 * Ownership: an event is owned by whoever holds the pointer returned by
 * natka_event_new() until it is passed to a function documented as taking it
 * (natka_inject() on success). Setters copy what they are given. Getters
 * return pointers into the event, valid until the next setter call or until
 * the event is freed.
 *
 * Threads: an event is not shared; any thread may build one, but only one
 * thread at a time may touch a given event.
 */
#ifndef NATKA_EVENT_H
#define NATKA_EVENT_H

#include "natka/export.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct natka_event natka_event;

/* Creates an empty event: no id, ts 0, no key, no kind, empty data, no
 * headers. Returns 0, NATKA_EINVAL (out is NULL) or NATKA_ENOMEM. */
NATKA_EXTERN int natka_event_new(natka_event **out);

/* Frees the event and everything it owns. NULL is a no-op. */
NATKA_EXTERN void natka_event_free(natka_event *ev);

/* Sets (copies) the id / kind; NULL clears it. Returns 0, NATKA_EINVAL
 * (ev is NULL) or NATKA_ENOMEM; on error the event is unchanged. */
NATKA_EXTERN int natka_event_set_id(natka_event *ev, const char *id);
NATKA_EXTERN int natka_event_set_kind(natka_event *ev, const char *kind);

/* Sets (copies) the key. key == NULL clears it ("no key"); a non-NULL key of
 * length 0 is an empty key. Returns 0, NATKA_EINVAL or NATKA_ENOMEM. */
NATKA_EXTERN int natka_event_set_key(natka_event *ev, const void *key,
                                     size_t len);

/* Sets (copies) the payload; data may be NULL when len is 0. Returns 0,
 * NATKA_EINVAL or NATKA_ENOMEM. */
NATKA_EXTERN int natka_event_set_data(natka_event *ev, const void *data,
                                      size_t len);

/* Sets the timestamp in nanoseconds since the epoch (0: unset). */
NATKA_EXTERN void natka_event_set_ts(natka_event *ev, int64_t ts_ns);

/* Appends a header; earlier headers of the same name are kept. The name must
 * be non-empty text; the value is bytes (copied). Returns 0, NATKA_EINVAL or
 * NATKA_ENOMEM. */
NATKA_EXTERN int natka_event_add_header(natka_event *ev, const char *name,
                                        const void *value, size_t len);

/* Getters. id and kind return NULL when unset. key returns NULL when there is
 * no key; *len receives the length (len may be NULL). */
NATKA_EXTERN const char *natka_event_id(const natka_event *ev);
NATKA_EXTERN const char *natka_event_kind(const natka_event *ev);
NATKA_EXTERN int64_t natka_event_ts(const natka_event *ev);
NATKA_EXTERN const void *natka_event_key(const natka_event *ev, size_t *len);
NATKA_EXTERN const void *natka_event_data(const natka_event *ev, size_t *len);

/* Number of headers, and the i-th (0-based, in order). Returns 0 or
 * NATKA_EINVAL when i is out of range; name/value/len may be NULL. */
NATKA_EXTERN size_t natka_event_header_count(const natka_event *ev);
NATKA_EXTERN int natka_event_header_at(const natka_event *ev, size_t i,
                                       const char **name, const void **value,
                                       size_t *len);

#ifdef __cplusplus
}
#endif
#endif /* NATKA_EVENT_H */
