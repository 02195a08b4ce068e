/*
 * What the two halves of `natka dlq replay` share: cmd_dlq.c parses the
 * command line into a natka__dlq_opts, cmd_dlq_replay.c runs the replay it
 * describes. Internal to the natka executable.
 */
#ifndef NATKA_CMD_DLQ_REPLAY_H
#define NATKA_CMD_DLQ_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "cli_opts.h"
#include "natka/config.h"

/* One partition of the DLQ topic. From the command line only id and start
 * are set (--from-offset P:N); the replay fills in the rest. */
typedef struct natka__dlq_part {
  int32_t id;
  int64_t lo, hi;    /* watermarks when the replay started */
  int64_t start;     /* first offset to read */
  int64_t handled;   /* next offset after the last record dealt with */
  int64_t committed; /* what the group holds after our last commit */
  int done;
} natka__dlq_part;

/* The replay the command line asked for. */
typedef struct natka__dlq_opts {
  natka_config *conf;
  const char *topic, *group, *subject;
  const char **codes; /* --code values; none: every record */
  size_t ncodes;
  int64_t from_all; /* --from-offset N; -1: none */
  int64_t since_ms; /* --since; -1: none */
  int64_t max;      /* --max; 0: no limit */
  int dry_run, skip_bad, named_parts;
  char subject_buf[512];
} natka__dlq_opts;

/* Prints "dlq replay: <message>" to stderr and returns status. */
#define natka__dlq_fail(status, ...)                                           \
  natka__cli_error("dlq replay", (status), __VA_ARGS__)

/*
 * Runs the replay: reads the DLQ topic of o->conf's Kafka (every partition,
 * or the nnamed ones in named when o->named_parts), publishes what is
 * wanted into JetStream and commits the offsets of o->group. Prints what
 * it did to stdout and what went wrong to stderr. Returns 0,
 * NATKA__CLI_FAILED or NATKA__CLI_USAGE. o, its conf and named stay the
 * caller's; every connection the replay opened is closed on return.
 */
int natka__dlq_replay_run(const natka__dlq_opts *o,
                          const natka__dlq_part *named, size_t nnamed);

#endif
