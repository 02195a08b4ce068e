/* The dedup window (core/dedup.c): duplicates within the window by count and
 * by age, forgetting failed keys, binary keys. */
#include <stdio.h>
#include <stdlib.h>

#include "runner.h"

#include "dedup.h"
#include "natka/error.h"

#define SEC 1000000000LL

static natka__dedup *window(size_t max, int64_t ns) {
  natka__dedup *d = NULL;
  assert_int_equal(natka__dedup_new(&d, max, ns), 0);
  return d;
}

static void test_a_second_key_is_a_duplicate(void **state) {
  (void)state;
  natka__dedup *d = window(10, 60 * SEC);
  assert_int_equal(natka__dedup_check_add(d, "o-1:1", 5, 0), 0);
  natka__dedup_confirm(d, "o-1:1", 5);
  assert_int_equal(natka__dedup_check_add(d, "o-1:1", 5, SEC), 1);
  assert_int_equal(natka__dedup_check_add(d, "o-1:2", 5, SEC), 0);
  assert_int_equal(natka__dedup_count(d), 2);
  natka__dedup_free(d);
}

static void test_a_key_in_flight_is_pending_not_a_duplicate(void **state) {
  (void)state;
  natka__dedup *d = window(10, 60 * SEC);
  assert_int_equal(natka__dedup_check_add(d, "k", 1, 0), 0);
  assert_int_equal(natka__dedup_check_add(d, "k", 1, 1), 2);
  natka__dedup_confirm(d, "k", 1);
  assert_int_equal(natka__dedup_check_add(d, "k", 1, 2), 1);
  natka__dedup_confirm(d, "absent", 6);
  natka__dedup_free(d);
}

static void test_keys_older_than_the_window_expire(void **state) {
  (void)state;
  natka__dedup *d = window(10, 60 * SEC);
  assert_int_equal(natka__dedup_check_add(d, "k", 1, 0), 0);
  natka__dedup_confirm(d, "k", 1);
  assert_int_equal(natka__dedup_check_add(d, "k", 1, 60 * SEC), 1);
  assert_int_equal(natka__dedup_check_add(d, "k", 1, 60 * SEC + 1), 0);
  natka__dedup_free(d);
}

static void test_the_oldest_keys_leave_past_the_count(void **state) {
  (void)state;
  char key[16];
  natka__dedup *d = window(100, 3600 * SEC);
  for (int i = 0; i < 150; i++) {
    int n = snprintf(key, sizeof(key), "k%d", i);
    assert_int_equal(natka__dedup_check_add(d, key, (size_t)n, i), 0);
  }
  assert_int_equal(natka__dedup_count(d), 100);
  assert_int_equal(natka__dedup_check_add(d, "k49", 3, 200), 0); /* gone */
  assert_int_equal(natka__dedup_check_add(d, "k149", 4, 201), 2);
  natka__dedup_free(d);
}

static void test_a_removed_key_is_new_again(void **state) {
  (void)state;
  natka__dedup *d = window(10, 60 * SEC);
  assert_int_equal(natka__dedup_check_add(d, "k", 1, 0), 0);
  natka__dedup_remove(d, "k", 1);
  natka__dedup_remove(d, "absent", 6);
  assert_int_equal(natka__dedup_count(d), 0);
  assert_int_equal(natka__dedup_check_add(d, "k", 1, 1), 0);
  natka__dedup_free(d);
}

static void test_keys_are_bytes(void **state) {
  (void)state;
  natka__dedup *d = window(10, 60 * SEC);
  assert_int_equal(natka__dedup_check_add(d, "a\0b", 3, 0), 0);
  assert_int_equal(natka__dedup_check_add(d, "a\0c", 3, 0), 0);
  assert_int_equal(natka__dedup_check_add(d, "a", 1, 0), 0);
  assert_int_equal(natka__dedup_check_add(d, "a\0b", 3, 0), 2);
  natka__dedup_free(d);
}

static void test_many_keys_stay_consistent(void **state) {
  (void)state;
  char key[16];
  natka__dedup *d = window(5000, 3600 * SEC);
  for (int i = 0; i < 20000; i++) {
    int n = snprintf(key, sizeof(key), "%d", i % 7000);
    int rc = natka__dedup_check_add(d, key, (size_t)n, i);
    assert_true(rc == 0 || rc == 2);
    if (i % 3 == 0)
      natka__dedup_remove(d, key, (size_t)n);
  }
  assert_true(natka__dedup_count(d) <= 5000);
  natka__dedup_free(d);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_a_second_key_is_a_duplicate),
    cmocka_unit_test(test_a_key_in_flight_is_pending_not_a_duplicate),
    cmocka_unit_test(test_keys_older_than_the_window_expire),
    cmocka_unit_test(test_the_oldest_keys_leave_past_the_count),
    cmocka_unit_test(test_a_removed_key_is_new_again),
    cmocka_unit_test(test_keys_are_bytes),
    cmocka_unit_test(test_many_keys_stay_consistent),
};

NATKA_TEST_MAIN(tests)
