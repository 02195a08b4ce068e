/* Turning a nats.c message into an event, shared by the NATS sources. */
#ifndef NATKA_NATS_MSG_H
#define NATKA_NATS_MSG_H

#include <nats/nats.h>

#include "event_int.h"

/*
 * Decodes msg into a new event (*out). default_ts (ns, 0: now) is the time
 * given to an event without ce-time: JetStream passes the time the stream
 * stored the message, so a redelivery keeps its timestamp. When the message is
 * malformed (see natka__event_from_nats) the event still carries what could be
 * kept (kind = subject, id, data, headers as given) and *malformed receives the
 * reason (malloc'ed; the caller frees it). default_id as for
 * natka__event_from_nats. Returns 0 or NATKA_ENOMEM. Any thread.
 */
int natka__nats_msg_decode(natsMsg *msg, const char *default_id,
                           int64_t default_ts, natka_event **out,
                           char **malformed);

#endif
