/*
 * The dedup window: the idempotency keys of events natka has taken on,
 * remembered by count and by age. It belongs to the gateway, not to a rules
 * state, so it survives rule reloads. Loop thread only.
 *
 * A key is added when its event is dispatched, and removed again when that
 * event fails (so its redelivery is not mistaken for a duplicate); a second
 * event with the key while it is in the window is a duplicate.
 */
#ifndef NATKA_DEDUP_H
#define NATKA_DEDUP_H

#include <stddef.h>
#include <stdint.h>

typedef struct natka__dedup natka__dedup;

/* max_keys >= 1; window_ns > 0. Returns 0 or NATKA_ENOMEM. */
int natka__dedup_new(natka__dedup **out, size_t max_keys, int64_t window_ns);
void natka__dedup_free(natka__dedup *d);

/* Adds key, pending, at time now (ns, monotonic) unless it is already in
 * the window. Returns 0 when added, 1 when it was there and its event was
 * handled (a duplicate), 2 when it was there and its event is still in
 * flight (the caller retries later: the first may yet fail), or
 * NATKA_ENOMEM. Expires old keys first. */
int natka__dedup_check_add(natka__dedup *d, const void *key, size_t len,
                           int64_t now);

/* Marks key handled: later events with it are duplicates. */
void natka__dedup_confirm(natka__dedup *d, const void *key, size_t len);

/* Forgets key (its event was not delivered). */
void natka__dedup_remove(natka__dedup *d, const void *key, size_t len);

size_t natka__dedup_count(const natka__dedup *d);

#endif
