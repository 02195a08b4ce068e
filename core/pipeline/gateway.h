/*
 * The gateway's calls, as the pipeline's own files (gateway.c, flight.c,
 * txn.c) use them. Components below the gateway never include this: they
 * get a natka__host (host.h), whose calls end up here. Every function here
 * runs on the loop thread.
 */
#ifndef NATKA_GATEWAY_H
#define NATKA_GATEWAY_H

#include "config_int.h"
#include "log.h"
#include "pipe.h"
#include "rules.h"

/* The host the gateway lends its components (valid as long as gw). */
const natka__host *natka__gateway_host(natka *gw);

/*
 * A source hands over one event; the gateway owns `ev` from here on and
 * settles `token` through the source's vtable exactly once. `malformed` is
 * NULL, or why the message could not be decoded: the event (built as far as
 * possible) then goes to the dead-letter topic with that reason.
 */
void natka__gateway_accept(natka *gw, natka__source *src, natka_event *ev,
                           void *token, const char *malformed);

/* Puts `rules` in force for every event decided from now on (revision: the
 * KV revision it was read at) and returns the set it replaces, which the
 * caller frees; starts the sources when this is the first set. */
natka__rules *natka__gateway_swap_rules(natka *gw, natka__rules *rules,
                                        uint64_t revision);
/* Every name natka_stat() knows, for reports that list them all. */
const char *const *natka__gateway_stat_names(size_t *n);

/* A sink or source can no longer work (e.g. a fatal Kafka producer error):
 * the gateway stops, and natka_run() returns `status`. */
void natka__gateway_fatal(natka *gw, int status);

/* The switches changed: hand them to the active rules. */
void natka__gateway_switches_changed(natka *gw);

/* Counts a rejected rule set (rules_rejected). */
void natka__gateway_rules_rejected(natka *gw);

/*
 * For sources without acks (core NATS): stores ev in the disk spool, from
 * which the spool source delivers it, so that it survives a Kafka outage
 * and a restart. Returns 1 when there is no spool (accept ev as usual;
 * still the caller's); otherwise ev is taken and 0 means stored, NATKA_EBUSY
 * (spool full) or NATKA_EIO (write failed) that it was dropped and counted.
 */
int natka__gateway_spool(natka *gw, natka__source *src, natka_event *ev);

/* Counts an event a source had to drop before it reached the gateway
 * (at-most-once sources under overload), so the loss is never silent. */
void natka__gateway_count_drop(natka *gw, natka__source *src, const char *why);

#endif
