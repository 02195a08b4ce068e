/*
 * Checkpoints: where each source stood when a Kafka transaction committed.
 *
 * With transactions on, every transaction also writes one record to the
 * compacted topic kafka.checkpoint_topic (partition 0, key = the instance's
 * transactional.id). Its value says, per source, which positions a committed
 * transaction holds: `floor` (the source's own ack floor when it was written:
 * nothing at or below it is ever redelivered) and `done`, the positions above
 * the floor that committed transactions hold (a natka__seqset). On start natka
 * reads the last such record and settles a redelivered message whose position
 * is in it without producing it again.
 *
 *   {"v":1,"id":"natka-a-EVENTS","sources":{"jetstream EVENTS/natka":
 *     {"floor":1200,"done":"1201-1350,1352"}}}
 */
#ifndef NATKA_CHECKPOINT_H
#define NATKA_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "config_int.h"
#include "seqset.h"

typedef struct natka__ckpt_source {
  char *name; /* "<kind> <what>": "jetstream EVENTS/natka" */
  uint64_t floor;
  natka__seqset done;
} natka__ckpt_source;

typedef struct natka__checkpoint {
  natka__ckpt_source *v;
  size_t n;
} natka__checkpoint;

/* The entry for `name`, created (empty) when missing; NULL when out of
 * memory. Valid until the next call adds an entry (the array moves). */
natka__ckpt_source *natka__checkpoint_source(natka__checkpoint *c,
                                             const char *name);
void natka__checkpoint_clear(natka__checkpoint *c);

/* The JSON record (malloc'd; NULL when out of memory). */
char *natka__checkpoint_encode(const natka__checkpoint *c, const char *id);
/* Parses a record of the instance `id` (its transactional.id, the key it
 * was read under) into an empty checkpoint; 0, or NATKA_EMALFORMED with the
 * reason in err (NATKA_ENOMEM). Strict: "v" must be 1, "id" must be `id`,
 * every position decimal digits within uint64. Anything else is refused,
 * never skipped or guessed at (the checkpoint stays empty then). */
int natka__checkpoint_decode(natka__checkpoint *c, const char *json, size_t len,
                             const char *id, char *err, size_t errlen);

/* One record read from the checkpoint topic, with key mkey: when it is
 * `key`'s, *value becomes its value (malloc'd, NUL-terminated), or NULL for
 * a tombstone (payload NULL), which resets the checkpoint. 0 or
 * NATKA_ENOMEM (*value unchanged then). */
int natka__checkpoint_take(const char *key, const void *mkey, size_t mkey_len,
                           const void *payload, size_t len, char **value);

/*
 * Reads the last committed checkpoint of `key` from partition 0 of the
 * checkpoint topic with a read_committed consumer (blocks: threadpool only).
 * *value is the record's value (malloc'd, NUL-terminated) or NULL when there
 * is none (no topic, no record of that key, or a tombstone after the last
 * one). `bootstrap` is the cluster to read (the embedded one's address for
 * "embedded"). Returns 0 or NATKA_EKAFKA / NATKA_ETIMEDOUT with the reason
 * in err.
 */
int natka__checkpoint_read(const natka_config *conf, const char *bootstrap,
                           const char *key, char **value, char *err,
                           size_t errlen);

/* Creates the checkpoint topic (compacted, one partition) when it does not
 * exist (blocks: threadpool only). An existing topic is left as it is.
 * Returns 0 or NATKA_EKAFKA / NATKA_ETIMEDOUT with the reason in err (the
 * topic is not there and cannot be created). */
int natka__checkpoint_ensure_topic(void *rk, const natka_config *conf,
                                   char *err, size_t errlen);

#endif
