/*
 * The request-reply ingress (ingress.subjects): publishers get a receipt
 * once their event is stored in JetStream, or an error reply. See ingress.c
 * for the protocol.
 */
#ifndef NATKA_INGRESS_H
#define NATKA_INGRESS_H

#include <stddef.h>
#include <stdint.h>

#include "host.h"
#include "spool.h"

typedef struct natka__ingress natka__ingress;

/* spool: where requests are stored with ingress.store = "spool" (owned by
 * the gateway, outliving the ingress), else NULL. */
int natka__ingress_new(natka__ingress **out, const natka__host *host,
                       natka__spool *spool, char *err, size_t errlen);
/* Answers what was handed to the loop and closes the loop handle; `done`
 * runs on the loop once it is closed. Loop thread, once, before free. */
void natka__ingress_close(natka__ingress *in, void (*done)(void *data),
                          void *data);
/* Connects (in the background when NATS is not there yet) and subscribes.
 * Returns 0 or NATKA_ENATS. Loop thread. */
int natka__ingress_start(natka__ingress *in);
/* Stops taking requests; those already received are still answered. Does
 * not block. */
void natka__ingress_stop(natka__ingress *in);
/* Waits (up to 5 s) for the last answers, then closes. Not on a running
 * loop's callback: natka_free() calls it. */
void natka__ingress_free(natka__ingress *in);
/* Requests accepted (refused != 0: refused). Any thread. */
int64_t natka__ingress_stat(const natka__ingress *in, int refused);

#endif
