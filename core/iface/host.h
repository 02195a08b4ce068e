/*
 * What a component needs from the gateway above it, lent at construction.
 *
 * Sources, sinks, the ingress, the rules reloader, the switches and the
 * shared dedup window run under a gateway, but none of them includes it:
 * the gateway hands each one this small table (the loop, its log, the
 * configuration, and the few calls that go up), as libuv hands a callback
 * and a data pointer. So every arrow in the code points down, and a
 * component can be built under another host (a test, another pipeline).
 *
 * Every call runs on the loop thread. The host outlives the components it
 * built.
 */
#ifndef NATKA_HOST_H
#define NATKA_HOST_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "config_int.h"
#include "event_int.h"
#include "log.h"

typedef struct natka__source natka__source;
typedef struct natka__rules natka__rules;
typedef struct natka__host natka__host;

struct natka__host {
  uv_loop_t *loop;
  natka__log *log;
  const natka_config *conf;
  void *data; /* the host's own (the gateway) */

  /*
   * A source hands over one event; the host owns `ev` from here on and
   * settles `token` through the source's vtable exactly once. `malformed` is
   * NULL, or why the message could not be decoded: the event (built as far
   * as possible) then goes to the dead-letter topic with that reason.
   */
  void (*accept)(const natka__host *h, natka__source *src, natka_event *ev,
                 void *token, const char *malformed);
  /*
   * For sources without acks (core NATS): stores ev in the disk spool, from
   * which the spool source delivers it. Returns 1 when there is no spool
   * (accept ev as usual; still the caller's); otherwise ev is taken and 0
   * means stored, NATKA_EBUSY (spool full) or NATKA_EIO (write failed) that
   * it was dropped and counted.
   */
  int (*spool)(const natka__host *h, natka__source *src, natka_event *ev);
  /* Counts an event a source had to drop before handing it over
   * (at-most-once sources under overload), so the loss is never silent. */
  void (*count_drop)(const natka__host *h, natka__source *src, const char *why);
  /* The component can no longer work (a fatal Kafka producer error, a
   * fenced transactional id): the host stops with `status`. */
  void (*fatal)(const natka__host *h, int status);

  /* Puts `rules` in force for every event decided from now on (revision:
   * the KV revision it was read at) and returns the set it replaces, which
   * the caller frees. */
  natka__rules *(*swap_rules)(const natka__host *h, natka__rules *rules,
                              uint64_t revision);
  /* Counts a rejected rule set. */
  void (*rules_rejected)(const natka__host *h);
  /* The switches changed: hand them to the active rules. */
  void (*switches_changed)(const natka__host *h);
  /* The host's counters, for status reports: every name, and one value. */
  const char *const *(*stat_names)(size_t *n);
  int64_t (*stat)(const natka__host *h, const char *name);
};

#endif
