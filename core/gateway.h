/*
 * What sources and sinks may ask of the gateway (internal). Every function
 * here runs on the loop thread.
 */
#ifndef NATKA_GATEWAY_H
#define NATKA_GATEWAY_H

#include "config_int.h"
#include "log.h"
#include "pipe.h"

const natka_config *natka__gateway_config(natka *gw);
natka__log *natka__gateway_log(natka *gw);

/*
 * A source hands over one event; the gateway owns `ev` from here on and
 * settles `token` through the source's vtable exactly once. `malformed` is
 * NULL, or why the message could not be decoded: the event (built as far as
 * possible) then goes to the dead-letter topic with that reason.
 */
void natka__gateway_accept(natka *gw, natka__source *src, natka_event *ev,
                           void *token, const char *malformed);

/* Counts an event a source had to drop before it reached the gateway
 * (at-most-once sources under overload), so the loss is never silent. */
void natka__gateway_count_drop(natka *gw, natka__source *src, const char *why);

#endif
