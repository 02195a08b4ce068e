/* The mailbox from client-library threads to the loop (core/base/mailbox.h). */
#include "runner.h"

#include <stdatomic.h>
#include <stdlib.h>

#include "mailbox.h"
#include "natka/error.h"

typedef struct item {
  natka__letter letter;
  int n;
} item;

typedef struct box {
  natka__mailbox mb;
  int drains, seen, last, closed;
  item items[64];
} box;

static void drain(natka__mailbox *mb, natka__letter *list) {
  box *b = mb->data;
  b->drains++;
  for (; list != NULL; list = list->next) {
    item *it = (item *)list;
    assert_true(it->n > b->last); /* in order */
    b->last = it->n;
    b->seen++;
  }
}

static void on_closed(natka__mailbox *mb) {
  ((box *)mb->data)->closed = 1;
  natka__mailbox_destroy(mb);
}

static item *letter(box *b, int n, size_t bytes) {
  item *it = &b->items[n];
  it->n = n;
  it->letter.bytes = bytes;
  return it;
}

static void close_box(uv_loop_t *loop, box *b) {
  natka__mailbox_close(&b->mb, on_closed);
  uv_run(loop, UV_RUN_DEFAULT);
  assert_int_equal(b->closed, 1);
  assert_int_equal(uv_loop_close(loop), 0);
}

/* The loop is stalled: a poster must be told, not queue without end. */
static void test_a_full_mailbox_refuses_letters(void **state) {
  (void)state;
  uv_loop_t loop;
  static box b;
  b = (box){0};
  uv_loop_init(&loop);
  assert_int_equal(natka__mailbox_init(&b.mb, &loop, 3, 0, drain, &b), 0);
  for (int i = 1; i <= 3; i++)
    assert_int_equal(natka__mailbox_post(&b.mb, &letter(&b, i, 10)->letter), 0);
  assert_int_equal(natka__mailbox_post(&b.mb, &letter(&b, 4, 10)->letter),
                   NATKA_EBUSY);
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_int_equal(b.seen, 3);
  /* Drained letters no longer count. */
  assert_int_equal(natka__mailbox_post(&b.mb, &letter(&b, 5, 10)->letter), 0);
  close_box(&loop, &b);
  assert_int_equal(b.seen, 4);
}

static void test_the_byte_bound_holds(void **state) {
  (void)state;
  uv_loop_t loop;
  static box b;
  b = (box){0};
  uv_loop_init(&loop);
  assert_int_equal(natka__mailbox_init(&b.mb, &loop, 0, 100, drain, &b), 0);
  assert_int_equal(natka__mailbox_post(&b.mb, &letter(&b, 1, 60)->letter), 0);
  assert_int_equal(natka__mailbox_post(&b.mb, &letter(&b, 2, 60)->letter),
                   NATKA_EBUSY);
  assert_int_equal(natka__mailbox_post(&b.mb, &letter(&b, 3, 40)->letter), 0);
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_int_equal(b.seen, 2);
  /* A letter larger than the bound passes alone, or it never would. */
  assert_int_equal(natka__mailbox_post(&b.mb, &letter(&b, 4, 500)->letter), 0);
  assert_int_equal(natka__mailbox_post(&b.mb, &letter(&b, 5, 1)->letter),
                   NATKA_EBUSY);
  close_box(&loop, &b);
  assert_int_equal(b.seen, 3);
}

static void test_close_drains_then_refuses(void **state) {
  (void)state;
  uv_loop_t loop;
  static box b;
  b = (box){0};
  uv_loop_init(&loop);
  assert_int_equal(natka__mailbox_init(&b.mb, &loop, 0, 0, drain, &b), 0);
  for (int i = 1; i <= 10; i++)
    assert_int_equal(natka__mailbox_post(&b.mb, &letter(&b, i, 1)->letter), 0);
  natka__mailbox_close(&b.mb, on_closed);
  assert_int_equal(b.seen, 10); /* nothing posted is lost at close */
  assert_int_equal(natka__mailbox_post(&b.mb, &letter(&b, 11, 1)->letter),
                   NATKA_ESTOPPED);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(b.closed, 1);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* Posting from another thread, as nats.c does, while the loop drains. */
typedef struct poster {
  box *b;
  atomic_int accepted, refused;
} poster;

static void post_many(void *arg) {
  poster *p = arg;
  static item many[20000];
  for (int i = 0; i < 20000; i++) {
    many[i].n = i + 1;
    many[i].letter.bytes = 1;
    if (natka__mailbox_post(&p->b->mb, &many[i].letter) == 0)
      atomic_fetch_add(&p->accepted, 1);
    else
      atomic_fetch_add(&p->refused, 1);
  }
}

static void count_only(natka__mailbox *mb, natka__letter *list) {
  box *b = mb->data;
  for (; list != NULL; list = list->next)
    b->seen++;
}

static void test_letters_from_a_thread_all_arrive(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_thread_t th;
  static box b;
  static poster p;
  b = (box){0};
  p.b = &b;
  atomic_store(&p.accepted, 0);
  atomic_store(&p.refused, 0);
  uv_loop_init(&loop);
  assert_int_equal(natka__mailbox_init(&b.mb, &loop, 100, 0, count_only, &b),
                   0);
  assert_int_equal(uv_thread_create(&th, post_many, &p), 0);
  while (atomic_load(&p.accepted) + atomic_load(&p.refused) < 20000)
    uv_run(&loop, UV_RUN_NOWAIT);
  uv_thread_join(&th);
  close_box(&loop, &b);
  assert_int_equal(b.seen, atomic_load(&p.accepted));
  assert_true(atomic_load(&p.accepted) > 0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_a_full_mailbox_refuses_letters),
    cmocka_unit_test(test_the_byte_bound_holds),
    cmocka_unit_test(test_close_drains_then_refuses),
    cmocka_unit_test(test_letters_from_a_thread_all_arrive),
};

NATKA_TEST_MAIN(tests)
