/*
 * What every NATS user in natka does with a connection: options built from
 * the configuration, and a close after which no callback of the connection
 * runs any more.
 *
 * nats.c runs connection callbacks (disconnected, reconnected, closed) on a
 * thread of its own, queued in order; the closed callback comes last. A
 * component that frees the closure of those callbacks must first wait for
 * the closed callback, which natka__nats_close() does.
 */
#ifndef NATKA_NATS_CONN_H
#define NATKA_NATS_CONN_H

#include <nats/nats.h>
#include <uv.h>

#include "config_int.h"

typedef struct natka__nats_closed {
  uv_mutex_t mu;
  uv_cond_t cond;
  int closed;
} natka__nats_closed;

/* Options with nats.url, nats.name, the connect timeout, unlimited
 * reconnects every nats.reconnect_wait_ms, and the closed callback wired to
 * `closed` (initialised here; destroy it with natka__nats_closed_destroy).
 * Returns NATS_OK or the nats.c status. */
natsStatus natka__nats_options(const natka_config *conf, natsOptions **out,
                               natka__nats_closed *closed);
void natka__nats_closed_destroy(natka__nats_closed *closed);

/* Closes nc, waits (up to 5 s) for its closed callback, destroys it. NULL
 * is a no-op. Blocks: call it off the loop, or at shutdown. */
void natka__nats_close(natsConnection *nc, natka__nats_closed *closed);

#endif
