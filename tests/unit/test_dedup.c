/* The dedup window (core/pipeline/dedup.c): duplicates within the window by
 * count and by age, forgetting failed keys, binary keys; and how the shared
 * window (core/services/dedup_shared.c) reads a key's value from its bucket. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner.h"

#include "dedup.h"
#include "dedup_shared.h"
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

/* The shared window's value for a key, as nats.c hands it over: `len`
 * bytes in a buffer of exactly that size, no terminator. */
static natka__claim_result judge(const char *text, size_t len,
                                 const char *mine) {
  char *v = malloc(len); /* malloc(0): nothing readable at all */
  assert_true(v != NULL || len == 0);
  if (len > 0)
    memcpy(v, text, len);
  natka__claim_result r = natka__claims_judge(v, len, mine);
  free(v);
  return r;
}

/* A value is read within its length: an empty one (a key someone else put
 * "" under) and one without a terminator are judged, not overrun. */
static void test_a_shared_value_is_read_within_its_length(void **state) {
  (void)state;
  assert_int_equal(judge("", 0, "p x-1"), NATKA__CLAIM_PENDING);
  assert_int_equal(judge("p", 1, "p x-1"), NATKA__CLAIM_PENDING);
  assert_int_equal(judge("d", 1, "p x-1"), NATKA__CLAIM_DUPLICATE);
  assert_int_equal(judge("d x-1", 5, "p x-1"), NATKA__CLAIM_DUPLICATE);
  assert_int_equal(judge("p x-1", 5, "p x-1"), NATKA__CLAIM_TAKEN);
  assert_int_equal(judge("p x-12", 6, "p x-1"), NATKA__CLAIM_PENDING);
  assert_int_equal(judge("p x-", 4, "p x-1"), NATKA__CLAIM_PENDING);
  assert_int_equal(judge("p x-2", 5, "p x-1"), NATKA__CLAIM_PENDING);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_a_second_key_is_a_duplicate),
    cmocka_unit_test(test_a_key_in_flight_is_pending_not_a_duplicate),
    cmocka_unit_test(test_keys_older_than_the_window_expire),
    cmocka_unit_test(test_the_oldest_keys_leave_past_the_count),
    cmocka_unit_test(test_a_removed_key_is_new_again),
    cmocka_unit_test(test_keys_are_bytes),
    cmocka_unit_test(test_many_keys_stay_consistent),
    cmocka_unit_test(test_a_shared_value_is_read_within_its_length),
};

NATKA_TEST_MAIN(tests)
