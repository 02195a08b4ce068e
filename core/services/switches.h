/*
 * Switches: strings in a NATS KV bucket (switches.bucket) that rules and the
 * core read, changed at run time without a restart (e.g. `mode`,
 * `dual_write`). The bucket is mirrored on the loop thread (kv_mirror.h);
 * every change is handed to the gateway, which gives it to the active rules
 * state and reads the ones the core acts on.
 *
 * Switches the core reads:
 *   mode        kafka_only (default) | nats_only | both: where an event goes
 *               when no degrade rule decides
 *   dual_write  on: the same as mode = both
 */
#ifndef NATKA_SWITCHES_H
#define NATKA_SWITCHES_H

#include <stddef.h>

#include "host.h"

typedef struct natka__switches natka__switches;

typedef enum {
  NATKA__MODE_KAFKA_ONLY = 0,
  NATKA__MODE_NATS_ONLY = 1,
  NATKA__MODE_BOTH = 2
} natka__mode;

int natka__switches_new(natka__switches **out, const natka__host *host,
                        char *err, size_t errlen);
int natka__switches_start(natka__switches *sw);
void natka__switches_close(natka__switches *sw, void (*done)(void *data),
                           void *data);

/* The current switches, as parallel arrays of names and values (sorted by
 * name; valid until the next change). */
size_t natka__switches_get(const natka__switches *sw, const char *const **names,
                           const char *const **values);
/* The value of one switch, or NULL. */
const char *natka__switches_value(const natka__switches *sw, const char *name);
natka__mode natka__switches_mode(const natka__switches *sw);

#endif
