/*
 * Mapping events to and from the wire of each bus (CloudEvents binary content
 * mode). Pure functions: no I/O, no client library types, so they are unit
 * tested offline and shared by every source and sink.
 *
 *   event field  NATS header          Kafka record
 *   id           ce-id (Nats-Msg-Id)  header ce_id
 *   kind         ce-type              header ce_type
 *   ts           ce-time (RFC 3339)   timestamp (ms) + header ce_time (ns)
 *   key          ce-partitionkey      key
 *   data         payload              value
 *   headers      as named             as named, with "ce-" written "ce_"
 *
 * ce-specversion is written as "1.0" on the way out and dropped on the way
 * in; ce-source is an ordinary header, added with the configured source when
 * absent on the way out.
 *
 * What a publisher sets is data, never control. natka-* names are natka's
 * own (its dead-letter and revision headers): one that arrives on either
 * bus is renamed x-natka-*. Nats-* names steer the NATS server (Nats-TTL,
 * Nats-Rollup, Nats-Expected-*): an event's own is written to NATS as
 * x-Nats-*; the only Nats-* header natka writes is its Nats-Msg-Id.
 */
#ifndef NATKA_CODEC_H
#define NATKA_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "event_int.h"

/* A header as seen on a wire: name, value bytes, length. */
typedef struct natka__wire_header {
  const char *name;
  const char *value;
  size_t len;
} natka__wire_header;

/* A list of wire headers built by the codec; owns its strings. */
typedef struct natka__wire_headers {
  natka__wire_header *h;
  size_t n, cap;
} natka__wire_headers;

void natka__wire_headers_clear(natka__wire_headers *w);

/*
 * Fills the empty event `ev` from a NATS message. `default_id` is used when
 * the message has neither ce-id nor Nats-Msg-Id (JetStream passes
 * "<stream>:<seq>" so redeliveries keep their id); NULL generates a UUIDv7.
 * Missing kind: the subject. Missing ts: now. Returns 0, NATKA_ENOMEM or
 * NATKA_EMALFORMED (e.g. an unparsable ce-time) with the reason in err.
 */
int natka__event_from_nats(natka_event *ev, const char *subject,
                           const natka__wire_header *hdrs, size_t nhdrs,
                           const void *data, size_t len, const char *default_id,
                           char *err, size_t errlen);

/* Headers for a NATS publish of `ev` (ce-*, Nats-Msg-Id, then the event's
 * own headers in order). Returns 0 or NATKA_ENOMEM. */
int natka__event_to_nats(const natka_event *ev, const char *source,
                         natka__wire_headers *out);

/* Headers for a Kafka record of `ev`; the caller uses ev's key, data and
 * ts / 1e6 for the rest of the record. Returns 0 or NATKA_ENOMEM. */
int natka__event_to_kafka(const natka_event *ev, const char *source,
                          natka__wire_headers *out);

/* Fills the empty event `ev` from a Kafka record (key may be NULL: no key;
 * ts_ms <= 0: unknown). Returns 0, NATKA_ENOMEM or NATKA_EMALFORMED. */
int natka__event_from_kafka(natka_event *ev, const void *key, size_t key_len,
                            int64_t ts_ms, const natka__wire_header *hdrs,
                            size_t nhdrs, const void *data, size_t len,
                            char *err, size_t errlen);

/* Whether the NATS server acts on a header of this name (the "Nats-"
 * namespace, any case): see the note at the top. */
int natka__nats_control_name(const char *name);

/* RFC 3339 <-> ns since epoch. format writes at most 40 bytes with as many
 * fraction digits as needed (0, 3, 6 or 9), always in UTC ("Z"). parse
 * accepts any offset and 0-9 fraction digits; returns 0 or NATKA_EMALFORMED. */
int natka__rfc3339_parse(const char *s, int64_t *ts_ns);
void natka__rfc3339_format(int64_t ts_ns, char buf[48]);

#endif
