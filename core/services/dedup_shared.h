/*
 * The shared dedup window: idempotency keys claimed in a NATS KV bucket
 * (dedup.shared_bucket) with create-if-absent, so that several natka
 * processes dedup against each other. The bucket's max age is
 * dedup.window_ms: a key is forgotten that long after it was claimed.
 *
 * kvStore_Create() is a blocking round trip, so claims run on a thread of
 * their own, one at a time and in the order asked: answers come back to the
 * loop in the same order, which keeps events of one key in order. The cost
 * is one KV round trip per event that has a key (see scripts/bench).
 */
#ifndef NATKA_DEDUP_SHARED_H
#define NATKA_DEDUP_SHARED_H

#include <stddef.h>

#include "host.h"

typedef struct natka__claims natka__claims;

typedef enum {
  NATKA__CLAIM_TAKEN = 0,     /* the key was free (or held by this very
                                 event, redelivered): go on */
  NATKA__CLAIM_DUPLICATE = 1, /* another event with the key was handled */
  NATKA__CLAIM_PENDING = 2,   /* another event with the key is in flight:
                                 the caller naks and asks again later */
  NATKA__CLAIM_ERROR = 3      /* KV did not answer: the caller naks */
} natka__claim_result;

/* What a key's value in the bucket (`len` bytes, no terminator needed;
 * value may be NULL when len is 0) says to the claim `mine` ("p <event
 * id>"): handled (a "d" value), this very event's (taken), or anything else
 * (pending). Exposed for the tests. */
natka__claim_result natka__claims_judge(const void *value, size_t len,
                                        const char *mine);

/* Called on the loop thread, once per claim, in the order asked. */
typedef void (*natka__claim_cb)(void *opaque, natka__claim_result result);

int natka__claims_new(natka__claims **out, const natka__host *host,
                      natka__claim_cb cb, char *err, size_t errlen);
int natka__claims_start(natka__claims *c);

/* Asks for key on behalf of the event `id` (both copied). The answer comes
 * through the callback. Returns 0 or NATKA_ENOMEM (then no callback). */
int natka__claims_ask(natka__claims *c, const void *key, size_t len,
                      const char *id, void *opaque);

/* The event `id` holding key was handled: later claims are duplicates. */
void natka__claims_confirm(natka__claims *c, const void *key, size_t len,
                           const char *id);

/* Gives a key back (its event was not delivered), best effort. */
void natka__claims_release(natka__claims *c, const void *key, size_t len);

/* Answers what is still queued, stops the thread, frees, then done(data). */
void natka__claims_close(natka__claims *c, void (*done)(void *data),
                         void *data);

#endif
