/*
 * Sources and sinks: the two small interfaces every bus hides behind.
 *
 * A source produces events (JetStream pull consumer, core NATS subjects, ...)
 * and settles each one when the gateway tells it the event's fate: ack after
 * every destination confirmed, nak (redeliver after a delay) when a sink
 * refused, term when it must never come back. A sink takes events with a
 * destination and reports each one's fate asynchronously. The gateway sits
 * between them; sources never see sinks. Adding Kafka -> NATS is a Kafka
 * source plus a NATS sink behind these same tables.
 *
 * Every function pointer is called on the loop thread. A source running its
 * own threads hands events over with natka__gateway_accept() from the loop
 * thread only (queue + uv_async).
 */
#ifndef NATKA_PIPE_H
#define NATKA_PIPE_H

#include <stddef.h>
#include <stdint.h>

#include "event_int.h"
#include "host.h"
#include "spool.h"

typedef struct natka__source natka__source;
typedef struct natka__sink natka__sink;

typedef enum {
  NATKA__SETTLE_ACK = 0, /* done: never deliver again */
  NATKA__SETTLE_NAK = 1, /* redeliver after delay_ms */
  NATKA__SETTLE_TERM = 2 /* failed for good (it went to the DLQ) */
} natka__settle;

typedef struct natka__source_vt {
  const char *kind; /* "jetstream", "nats" */
  int (*start)(natka__source *src);
  /* Stop / resume fetching (backpressure). Idempotent. */
  void (*pause)(natka__source *src);
  void (*resume)(natka__source *src);
  /* Settles one event handed over with natka__gateway_accept(). */
  void (*settle)(natka__source *src, void *token, natka__settle how,
                 int64_t delay_ms);
  /* Writes where the event behind token came from, for dead-letter headers
   * and logs ("stream EVENTS seq 42 delivery 3"). */
  void (*describe)(natka__source *src, void *token, char *buf, size_t len);
  /* Where the event behind token stands in the source (a JetStream stream
   * sequence): 0 with *pos set, or -1 when the source has no positions.
   * NULL when none of its events have one. */
  int (*position)(natka__source *src, void *token, uint64_t *pos);
  /* What the positions are positions in, so that a stream deleted and
   * created again, or a new spool in the same directory, does not inherit
   * the old one's checkpoint: "EVENTS@<creation time>". NULL when unknown
   * yet (no event was handed over); NULL function: the source's name. */
  const char *(*identity)(natka__source *src);
  /* Positions at or below this are never handed over again (JetStream: the
   * consumer's ack floor, refreshed every few seconds); 0 when unknown. */
  uint64_t (*floor)(natka__source *src);
  /* How many times the event behind token was handed over (1 the first
   * time); NULL when the source does not know. */
  int (*attempt)(natka__source *src, void *token);
  /* Stops fetching for good; settle still works until close. `done` runs
   * once nothing more will be accepted from this source. */
  void (*stop)(natka__source *src, void (*done)(natka__source *src));
  /* Flushes pending settlements, closes connections and handles, calls
   * `done` (still on the loop thread, src->gw still valid) and frees the
   * source. Tokens not settled are dropped unsettled: the server redelivers
   * them. */
  void (*close)(natka__source *src, void (*done)(natka__source *src));
} natka__source_vt;

struct natka__source {
  const natka__source_vt *vt;
  const natka__host *host; /* lent by the gateway (host.h) */
  char *name;              /* for logs and DLQ headers */
};

/* What a sink tells the gateway about one send. */
typedef struct natka__delivery {
  int err; /* 0 or NATKA_E* */
  const char *errmsg;
  const char *topic;
  int32_t partition;
  int64_t offset;
  int retriable; /* err may pass if tried again later */
} natka__delivery;

typedef void (*natka__delivery_cb)(natka__sink *sink, void *opaque,
                                   const natka__delivery *d);

/* How a transaction ended (natka__sink_vt.txn_end). */
typedef enum {
  NATKA__TXN_OK = 0,
  NATKA__TXN_ABORT,  /* the transaction failed: abort it, retry its events */
  NATKA__TXN_RETRY,  /* a passing failure: call txn_end again */
  NATKA__TXN_FENCED, /* another producer took our transactional.id: stop */
  NATKA__TXN_FATAL   /* the producer is unusable: stop */
} natka__txn_status;
typedef void (*natka__txn_done)(natka__sink *sink, natka__txn_status st,
                                const char *msg, void *data);

typedef struct natka__sink_vt {
  const char *kind; /* "kafka" */
  /* Queues ev for dest (dest may override key/partition and add headers).
   * On success `opaque` comes back in exactly one delivery callback, which
   * may run before send returns; on error there is no callback. */
  int (*send)(natka__sink *sink, const natka_event *ev, const natka__dest *dest,
              const natka__header *extra, size_t nextra, void *opaque);
  /* Calls `ready` once the sink can reach its destination, retrying with
   * backoff (and logging) until then; sources start fetching only after it,
   * so nothing is pulled that cannot be delivered. */
  void (*await_ready)(natka__sink *sink, void (*ready)(natka__sink *sink));
  /* Events queued and not yet reported. */
  size_t (*queued)(natka__sink *sink);
  /* Closes once everything queued was reported or timed out; `done` runs
   * on the loop thread. */
  void (*close)(natka__sink *sink, void (*done)(natka__sink *sink));
  void (*free)(natka__sink *sink);

  /*
   * Transactions (NULL in a sink without them; the Kafka sink with
   * kafka.transactions on). The sink is ready only once it can produce in
   * transactions and has read its last checkpoint; then every send falls
   * between txn_begin and txn_end. txn.c drives them.
   */
  /* Whether this sink produces in transactions (known once it is ready). */
  int (*txn_on)(natka__sink *sink);
  const char *(*txn_id)(natka__sink *sink);
  /* The checkpoint record read at start (JSON), or NULL when there was
   * none. */
  const char *(*checkpoint)(natka__sink *sink);
  int (*txn_begin)(natka__sink *sink, char *err, size_t errlen);
  /* Produces the checkpoint record into the open transaction (partition 0
   * of kafka.checkpoint_topic, key = the transactional.id). 0, NATKA_EBUSY
   * or NATKA_EKAFKA; a failed delivery fails the commit. */
  int (*txn_checkpoint)(natka__sink *sink, const char *value, size_t len);
  /* Commits (commit != 0) or aborts the open transaction on the
   * threadpool; `cb` runs on the loop with the outcome. Every send of the
   * transaction must have been reported before a commit. Fenced and fatal
   * outcomes have also stopped the host. */
  void (*txn_end)(natka__sink *sink, int commit, natka__txn_done cb,
                  void *data);
} natka__sink_vt;

struct natka__sink {
  const natka__sink_vt *vt;
  const natka__host *host; /* lent by the gateway (host.h) */
  natka__delivery_cb on_delivery;
};

/* The implementations. Each returns 0 or NATKA_E* with the reason in err;
 * the config must outlive the object. */
int natka__sink_kafka_new(natka__sink **out, const natka__host *host,
                          natka__delivery_cb cb, char *err, size_t errlen);
/* Checks the Kafka part of a configuration without creating a producer. */
int natka__sink_kafka_check(const natka_config *conf, char *err, size_t errlen);
int natka__sink_nats_new(natka__sink **out, const natka__host *host,
                         natka__delivery_cb cb, char *err, size_t errlen);
/* The bootstrap address of the embedded (mock) cluster, or NULL. */
const char *natka__sink_kafka_embedded(natka__sink *sink);

int natka__source_jetstream_new(natka__source **out, const natka__host *host,
                                char *err, size_t errlen);
/*
 * A source that offers the spool's records to the gateway in order (at most
 * min(limits.max_inflight, 1000) unsettled), acks them in the spool on
 * ACK/TERM, offers a NAK'ed one again after delay_ms, and runs the
 * spool.fsync_interval_ms timer that calls natka__spool_sync() (so the floor
 * is persisted and consumed segments deleted under every fsync policy).
 * Records that do not unpack go to the gateway as malformed (DLQ). describe:
 * "spool <dir> seq N"; attempt: offers of this record since start (positions
 * and floor: none, the spool keeps its own floor). Stopping only stops
 * offering; records still in flight are acked as they settle, and whatever
 * is unsettled at close stays in the spool for the next run.
 *
 * Ownership: the gateway owns `sp` and closes it (natka__spool_close) only
 * after this source's close callback ran; the source sets and clears the
 * spool's notify callback. Loop thread. Errors: NATKA_ENOMEM.
 */
int natka__source_spool_new(natka__source **out, const natka__host *host,
                            natka__spool *sp, char *err, size_t errlen);
int natka__source_nats_new(natka__source **out, const natka__host *host,
                           char *err, size_t errlen);

#endif
