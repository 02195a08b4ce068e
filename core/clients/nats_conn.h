/*
 * What every NATS user in natka does with a connection: options built from
 * the configuration, and a close after which no callback of the connection
 * runs any more.
 *
 * Every connection natka opens (sources, sinks, ingress, KV mirrors, the
 * shared dedup window, the command-line tools) takes its options from
 * natka__nats_options(), so all of them connect to the same servers the
 * same way: TLS with server verification and an optional client
 * certificate (nats.tls.*), and one way of logging in (nats.creds_file,
 * nats.nkey_seed_file, nats.token, or nats.user with nats.password).
 *
 * TLS is required when a URL in nats.url says tls:// or any nats.tls file
 * is set; then a server offering no TLS is refused rather than talked to in
 * the clear. A server that requires TLS gets it either way (nats.c switches
 * over), but is only trusted if its certificate chains to nats.tls.ca_file
 * or the system's trust store. nats.c checks the server's name only when
 * told which one to expect: natka tells it nats.tls.server_name, or the
 * host that nats.url names.
 *
 * nats.c runs connection callbacks (disconnected, reconnected, closed) on a
 * thread of its own, queued in order; the closed callback comes last. A
 * component that frees the closure of those callbacks must first wait for
 * the closed callback, which natka__nats_close() does.
 */
#ifndef NATKA_NATS_CONN_H
#define NATKA_NATS_CONN_H

#include <stddef.h>

#include <nats/nats.h>
#include <uv.h>

#include "config_int.h"

typedef struct natka__nats_closed {
  uv_mutex_t mu;
  uv_cond_t cond;
  int closed;
} natka__nats_closed;

/* Returns 0 or NATKA_ENOMEM. */
int natka__nats_closed_init(natka__nats_closed *closed);
void natka__nats_closed_destroy(natka__nats_closed *closed);

/* A command-line connection: no reconnects, so a command fails and says why
 * instead of waiting for a server that went away. */
#define NATKA__NATS_ONESHOT 1u

/*
 * New options in *out for a connection called `name` (NULL: nats.name):
 * nats.url, the connect timeout, TLS and credentials as above; unless
 * NATKA__NATS_ONESHOT, unlimited reconnects every nats.reconnect_wait_ms.
 * With `closed` (initialised by the caller), the closed callback signals
 * it. Secrets are read now and wiped once nats.c has its copy; a
 * credentials or seed file is read again by nats.c at each connect.
 *
 * Returns 0, NATKA_ENOMEM, or NATKA_ECONFIG with a message naming the key
 * and file at fault (never a secret); *out is NULL on failure.
 */
int natka__nats_options(const natka_config *conf, const char *name,
                        unsigned flags, natka__nats_closed *closed,
                        natsOptions **out, char *err, size_t errlen);

/* What natka__nats_options() would refuse, found before anything starts:
 * keys that go together or exclude each other, files that cannot be read,
 * certificates and keys that do not load. 0 or NATKA_ECONFIG / ENOMEM. */
int natka__nats_check(const natka_config *conf, char *err, size_t errlen);

/* Why the last nats.c call on this thread failed with st: nats.c's own
 * message when it left one ("SSL handshake error: ... certificate has
 * expired"), else the status text. Static or thread-local text. */
const char *natka__nats_why(natsStatus st);

/* Closes nc, waits (up to 5 s) for its closed callback, destroys it. NULL
 * is a no-op. Blocks: call it off the loop, or at shutdown. */
void natka__nats_close(natsConnection *nc, natka__nats_closed *closed);

#endif
