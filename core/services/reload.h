/*
 * Rules as live code: rule modules read from a NATS KV bucket (one module per
 * key), rebuilt and swapped in whenever the bucket changes.
 *
 * Each complete snapshot of the bucket is compiled into a fresh sandboxed
 * state, the modules' own `tests` are run, and only then is the new state
 * swapped in, on the loop thread between two batches: an event is decided
 * entirely by one revision (the bucket's revision when the set was read),
 * which its Kafka record carries in natka-rules-revision. A set that fails
 * to compile, load or self-test is rejected: the running set stays, and the
 * rejection is logged, counted, written to the status bucket and published on
 * the status subject. Until a first valid set is active natka fetches nothing.
 */
#ifndef NATKA_RELOAD_H
#define NATKA_RELOAD_H

#include <stddef.h>
#include <stdint.h>

#include "host.h"

typedef struct natka__reload natka__reload;

/* Creates the watcher of rules.bucket (not started). Errors: NATKA_ENOMEM,
 * NATKA_ENATS, with the reason in err. */
int natka__reload_new(natka__reload **out, const natka__host *host, char *err,
                      size_t errlen);
int natka__reload_start(natka__reload *rl);

/* Writes the status (revision, modules, last rejection, counters) to the
 * status bucket and subject; called after each change and periodically. */
void natka__reload_post_status(natka__reload *rl);

/* Stops watching and frees, then calls done(data) on the loop thread. */
void natka__reload_close(natka__reload *rl, void (*done)(void *data),
                         void *data);

#endif
