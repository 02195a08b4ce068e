/*
 * libnatka: the natka gateway as a library.
 *
 * A gateway (natka *) consumes events from NATS (a JetStream durable pull
 * consumer, and optionally core NATS subjects), decides with Lua rules where
 * each goes, produces it to Kafka, and settles the source (acks JetStream)
 * only after Kafka has confirmed. A host program may also inject events
 * directly and learn each one's fate through a callback.
 *
 * Threads: a gateway lives on one libuv loop, the caller's or its own. Every
 * function here must be called on that loop's thread (before natka_start():
 * on the thread that created the gateway), except natka_version() and the
 * error functions, which any thread may call. Every callback runs on the
 * loop thread. natka never re-enters uv_run() from a callback.
 *
 * Lifetime: natka_new() -> natka_start() -> ... -> natka_stop() -> (stop
 * callback) -> natka_free(). natka_free() on a gateway that was never started
 * is fine too.
 */
#ifndef NATKA_NATKA_H
#define NATKA_NATKA_H

#include "natka/export.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "natka/config.h"
#include "natka/error.h"
#include "natka/event.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NATKA_VERSION_MAJOR 0
#define NATKA_VERSION_MINOR 1
#define NATKA_VERSION_PATCH 0

typedef struct natka natka;
typedef struct natka_report natka_report;

/* What finally happened to an event. */
typedef enum {
  NATKA_DELIVERED = 0, /* every destination confirmed by Kafka */
  NATKA_DROPPED = 1,   /* a rule returned natka.drop (counted) */
  NATKA_DEADLETTERED =
      2,           /* written to the dead-letter topic, with the reason */
  NATKA_FAILED = 3 /* not delivered; see natka_report_error() */
} natka_fate;

/* Called once per injected event with its fate. `r` and everything it points
 * to are valid only during the call. */
typedef void (*natka_report_cb)(natka *gw, const natka_report *r, void *data);

/* Called once when natka_stop() has finished: sources stopped, in-flight
 * events settled, handles closed. status is 0, or NATKA_ETIMEDOUT when the
 * drain timeout passed with events still in flight (they were not acked, so
 * JetStream redelivers them). */
typedef void (*natka_stop_cb)(natka *gw, int status, void *data);

/* "0.1.0". Any thread. */
NATKA_EXTERN const char *natka_version(void);

/*
 * Creates a gateway from `conf`. With loop == NULL the gateway makes and owns
 * a loop (see natka_run()); otherwise it registers its handles on `loop`,
 * which must outlive the gateway. Loads the rules named by the config; it
 * does not connect to NATS or Kafka yet, nor open the disk spool. Loop
 * thread (or before the loop runs).
 *
 * Ownership: on success the gateway owns `conf` (do not free it); on error
 * the caller still does. Errors: NATKA_EINVAL, NATKA_ENOMEM, NATKA_ECONFIG,
 * NATKA_ERULE (rules failed to load), NATKA_EKAFKA (producer refused the
 * configuration); errbuf receives the reason.
 */
NATKA_EXTERN int natka_new(natka **out, natka_config *conf, uv_loop_t *loop,
                           char *errbuf, size_t errlen);

/*
 * Starts the gateway: opens the disk spool (spool.dir; a torn tail is cut
 * and logged), creates the Kafka producer and, when rules come from a KV
 * bucket, starts watching it. The sources start fetching once Kafka has
 * answered (with transactions: init_transactions succeeded and the last
 * checkpoint was read) and a valid rule set is active. Connecting happens in
 * the background with retries and backoff; an unreachable server is logged,
 * never fatal. Later, a fenced or fatal producer stops the gateway with
 * NATKA_EFENCED or NATKA_EKAFKA as its stop status. Loop thread. Returns 0,
 * NATKA_ESTOPPED (stopping or already started), NATKA_EKAFKA, NATKA_ENATS,
 * or NATKA_EIO / NATKA_EBUSY (the spool cannot be opened, or another
 * process holds it).
 */
NATKA_EXTERN int natka_start(natka *gw);

/*
 * For a gateway that owns its loop: natka_start() then runs the loop until
 * natka_stop() completes, and installs SIGINT/SIGTERM handlers that call
 * natka_stop(). Returns the stop status, or NATKA_EINVAL when the gateway
 * runs on the caller's loop.
 */
NATKA_EXTERN int natka_run(natka *gw);

/*
 * Hands an event to the gateway as if it came from a source: rules decide its
 * destinations, it is produced to Kafka, and `cb` (may be NULL) reports its
 * fate, on the loop thread. Events injected before Kafka answered wait
 * inside the gateway. With transactions the report comes once the event's
 * transaction committed (NATKA_DELIVERED) or was aborted (NATKA_FAILED,
 * NATKA_EKAFKA: nothing of it is visible to read_committed consumers).
 * On success the gateway owns `ev`; on error the caller keeps it and `cb` is
 * not called. Loop thread. Errors: NATKA_EINVAL, NATKA_ESTOPPED, NATKA_EBUSY
 * (limits.max_inflight or limits.max_inflight_bytes reached, or rules from
 * KV not loaded yet: retry later), NATKA_ETOOBIG.
 */
NATKA_EXTERN int natka_inject(natka *gw, natka_event *ev, natka_report_cb cb,
                              void *data);

/*
 * Stops gracefully: stops fetching, waits for in-flight events to be
 * confirmed (up to shutdown.drain_timeout_ms), settles their sources, closes
 * connections and handles, then calls `cb` (may be NULL). Calling it again is
 * a no-op returning NATKA_ESTOPPED.
 */
NATKA_EXTERN int natka_stop(natka *gw, natka_stop_cb cb, void *data);

/* Frees the gateway. Only after the stop callback ran, or if never started. */
NATKA_EXTERN void natka_free(natka *gw);

/* The loop the gateway runs on. */
NATKA_EXTERN uv_loop_t *natka_loop(natka *gw);

/* A pointer for the host's own use; natka never touches it. */
NATKA_EXTERN void natka_set_data(natka *gw, void *data);
NATKA_EXTERN void *natka_get_data(const natka *gw);

/* A counter by name (events_in, delivered, dropped, deadlettered, failed,
 * nacked, rule_errors, malformed, oversized, dropped_overload,
 * rules_reloads, rules_rejected, rules_revision, deduplicated, held,
 * degrade_drops, dual_writes, txn_commits, txn_aborts, already_committed,
 * ingress_accepted, ingress_refused, inflight, inflight_bytes, kafka_queued,
 * spool_pending, spool_bytes); -1 for an unknown name. Loop thread. */
NATKA_EXTERN int64_t natka_stat(const natka *gw, const char *name);

/* Report accessors; valid only inside the natka_report_cb call. */
NATKA_EXTERN natka_fate natka_report_fate(const natka_report *r);
NATKA_EXTERN const natka_event *natka_report_event(const natka_report *r);
/* 0 or the NATKA_E* code, and a message, for NATKA_FAILED and
 * NATKA_DEADLETTERED; NULL message otherwise. */
NATKA_EXTERN int natka_report_error(const natka_report *r, const char **msg);
/* Number of destinations the event was written to (for NATKA_DEADLETTERED:
 * 1, the dead-letter topic), and the i-th one. */
NATKA_EXTERN size_t natka_report_count(const natka_report *r);
NATKA_EXTERN int natka_report_dest(const natka_report *r, size_t i,
                                   const char **topic, int32_t *partition,
                                   int64_t *offset);

#ifdef __cplusplus
}
#endif
#endif /* NATKA_NATKA_H */
