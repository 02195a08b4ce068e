/*
 * The mailbox between a client library's thread and the loop (mailbox.h).
 */
#include "mailbox.h"

#include "natka/error.h"

static void on_async(uv_async_t *a) {
  natka__mailbox_drain_now(a->data);
}

int natka__mailbox_init(natka__mailbox *mb, uv_loop_t *loop, size_t max_letters,
                        size_t max_bytes, natka__mailbox_drain drain,
                        void *data) {
  *mb = (natka__mailbox){.data = data,
                         .drain = drain,
                         .max_letters = max_letters,
                         .max_bytes = max_bytes};
  if (uv_mutex_init(&mb->mu) != 0)
    return NATKA_ENOMEM;
  if (uv_async_init(loop, &mb->async, on_async) != 0) {
    uv_mutex_destroy(&mb->mu);
    return NATKA_ENOMEM;
  }
  mb->async.data = mb;
  return 0;
}

int natka__mailbox_post(natka__mailbox *mb, natka__letter *letter) {
  int rc = 0;
  letter->next = NULL;
  uv_mutex_lock(&mb->mu);
  if (mb->closing) {
    rc = NATKA_ESTOPPED;
  } else if (mb->letters > 0 &&
             ((mb->max_letters > 0 && mb->letters >= mb->max_letters) ||
              (mb->max_bytes > 0 &&
               mb->bytes + letter->bytes > mb->max_bytes))) {
    rc = NATKA_EBUSY;
  } else {
    if (mb->tail != NULL)
      mb->tail->next = letter;
    else
      mb->head = letter;
    mb->tail = letter;
    mb->letters++;
    mb->bytes += letter->bytes;
    /* Under the lock: the loop closes the handle only after setting
     * `closing` under it, so the handle is alive here. */
    uv_async_send(&mb->async);
  }
  uv_mutex_unlock(&mb->mu);
  return rc;
}

void natka__mailbox_post_wake(natka__mailbox *mb) {
  uv_mutex_lock(&mb->mu);
  if (!mb->closing)
    uv_async_send(&mb->async);
  uv_mutex_unlock(&mb->mu);
}

void natka__mailbox_drain_now(natka__mailbox *mb) {
  uv_mutex_lock(&mb->mu);
  natka__letter *list = mb->head;
  mb->head = mb->tail = NULL;
  mb->letters = 0;
  mb->bytes = 0;
  uv_mutex_unlock(&mb->mu);
  mb->drain(mb, list);
}

static void on_closed(uv_handle_t *h) {
  natka__mailbox *mb = h->data;
  if (mb->closed != NULL)
    mb->closed(mb);
}

void natka__mailbox_close(natka__mailbox *mb,
                          void (*closed)(natka__mailbox *mb)) {
  uv_mutex_lock(&mb->mu);
  mb->closing = 1;
  uv_mutex_unlock(&mb->mu);
  natka__mailbox_drain_now(mb);
  mb->closed = closed;
  uv_close((uv_handle_t *)&mb->async, on_closed);
}

void natka__mailbox_destroy(natka__mailbox *mb) {
  uv_mutex_destroy(&mb->mu);
}
