/*
 * A mailbox: how a client library's thread hands work to the loop.
 *
 * nats.c calls natka on its own threads; everything natka owns lives on the
 * libuv loop. A thread posts a letter (any struct that begins with a
 * natka__letter) under a mutex and wakes the loop with uv_async_send(); the
 * loop takes every letter posted so far in one go, in order.
 *
 * The mailbox is bounded in letters and in bytes: a thread that posts while
 * the loop is slow (a stalled rule, a disk that does not keep up) gets
 * NATKA_EBUSY instead of growing memory at network speed, and decides what
 * pushing back means for it (a busy reply, a counted drop). What the loop
 * took no longer counts: from there the gateway's own bounds apply.
 *
 *   natka__mailbox_init   loop thread, once
 *   natka__mailbox_post   any thread, until natka__mailbox_close
 *   drain callback        loop thread, with the letters taken (a list,
 *                         NULL after a bare wake-up)
 *   natka__mailbox_close  loop thread; drains what is left first, then
 *                         closes the handle; `closed` runs after that
 *   natka__mailbox_destroy once no thread can call post any more (a post
 *                         after close is refused, but still takes the lock)
 */
#ifndef NATKA_MAILBOX_H
#define NATKA_MAILBOX_H

#include <stddef.h>

#include <uv.h>

typedef struct natka__letter {
  struct natka__letter *next;
  size_t bytes; /* what it holds, for the byte bound (set by the poster) */
} natka__letter;

typedef struct natka__mailbox natka__mailbox;
typedef void (*natka__mailbox_drain)(natka__mailbox *mb, natka__letter *list);

struct natka__mailbox {
  void *data; /* the owner's */
  natka__mailbox_drain drain;
  void (*closed)(natka__mailbox *mb);
  size_t max_letters, max_bytes;
  uv_async_t async;
  uv_mutex_t mu;
  /* Guarded by mu. */
  natka__letter *head, *tail;
  size_t letters, bytes;
  int closing;
};

/* Sets mb up on `loop` with its bounds (0: no bound) and drain callback.
 * 0 or NATKA_ENOMEM. */
int natka__mailbox_init(natka__mailbox *mb, uv_loop_t *loop, size_t max_letters,
                        size_t max_bytes, natka__mailbox_drain drain,
                        void *data);

/* Any thread. 0: queued (the loop will drain it); NATKA_EBUSY: a bound is
 * reached; NATKA_ESTOPPED: the mailbox is closing. On an error the letter
 * stays the caller's. A letter bigger than max_bytes is taken when the
 * mailbox is empty, so that one large letter cannot be refused forever. */
int natka__mailbox_post(natka__mailbox *mb, natka__letter *letter);

/* Any thread: wakes the loop to run the drain callback even with nothing
 * posted (an owner that keeps counters for the loop to read). A no-op once
 * the mailbox is closing. */
void natka__mailbox_post_wake(natka__mailbox *mb);

/* Loop thread: drains now what was posted (without waiting for the async
 * wake-up). */
void natka__mailbox_drain_now(natka__mailbox *mb);

/* Loop thread: refuses further posts, drains what is queued, closes the
 * handle and then calls `closed` (NULL: nothing). The struct must stay
 * valid until then. */
void natka__mailbox_close(natka__mailbox *mb,
                          void (*closed)(natka__mailbox *mb));

/* Frees the mailbox's lock. Call it after the close callback ran and once
 * no client thread can post any more (its subscriptions are gone). */
void natka__mailbox_destroy(natka__mailbox *mb);

#endif
