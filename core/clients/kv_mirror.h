/*
 * A local copy of a NATS JetStream KV bucket, kept current on the loop
 * thread. Rules (one module per key) and switches (one switch per key) are
 * both read this way.
 *
 * nats.c's kvWatcher_Next() blocks, so each mirror runs a thread with its own
 * connection: it connects with backoff, opens (or creates) the bucket,
 * watches every key, and hands changes to the loop with uv_async_send(). The
 * loop applies them to its copy and calls back with the whole bucket once the
 * initial snapshot is complete, then after each batch of changes. After a
 * lost watch the thread watches again; the loop calls back only once the new
 * snapshot is complete, so a callback never sees a half-read bucket.
 *
 * The same thread carries the loop's writes (status keys, status messages):
 * natka__kv_mirror_post() queues them, so the loop never waits on NATS.
 */
#ifndef NATKA_KV_MIRROR_H
#define NATKA_KV_MIRROR_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "config_int.h"
#include "log.h"

typedef struct natka__kv_mirror natka__kv_mirror;

typedef struct natka__kv_entry {
  char *key;
  char *value; /* NUL-terminated for convenience */
  size_t len;
  uint64_t revision;
} natka__kv_entry;

/* The whole bucket, sorted by key; `revision` is the highest revision the
 * mirror has seen (deletes included). Valid only during the call. */
typedef void (*natka__kv_mirror_cb)(natka__kv_mirror *m,
                                    const natka__kv_entry *entries, size_t n,
                                    uint64_t revision, void *data);

typedef struct natka__kv_mirror_opts {
  const natka_config *conf; /* the connection's (nats_conn.h); read by
                               natka__kv_mirror_new() only */
  const char *bucket;
  int create;  /* create the bucket when missing */
  int history; /* values kept per key when creating (1..64) */
  natka__log *log;
} natka__kv_mirror_opts;

/* Creates a mirror (not started). The strings in opts are copied. Errors:
 * NATKA_ENOMEM, NATKA_ECONFIG (the NATS options, see nats_conn.h) with the
 * reason in err. */
int natka__kv_mirror_new(natka__kv_mirror **out, uv_loop_t *loop,
                         const natka__kv_mirror_opts *opts,
                         natka__kv_mirror_cb cb, void *data, char *err,
                         size_t errlen);

/* Starts the thread. Returns 0 or NATKA_ENOMEM. */
int natka__kv_mirror_start(natka__kv_mirror *m);

/* Queues, for the mirror's thread: a put of value under `key` in `bucket`
 * (created when missing, history 1) when bucket is not NULL, and a publish
 * of value on `subject` when subject is not NULL. Best effort: a failure is
 * logged, and the next post carries newer data anyway. */
void natka__kv_mirror_post(natka__kv_mirror *m, const char *bucket,
                           const char *key, const char *subject,
                           const char *value);

/* Stops the thread (pending posts are attempted first), closes the handle
 * and frees the mirror, then calls done(data) on the loop thread. */
void natka__kv_mirror_close(natka__kv_mirror *m, void (*done)(void *data),
                            void *data);

#endif
