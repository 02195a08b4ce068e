/* Unit tests for core/event/event.c: the public event API and the internal
 * helpers of event_int.h. */
#include "runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event_int.h"
#include "natka/error.h"

static natka_event *new_event(void) {
  natka_event *ev = NULL;
  assert_int_equal(natka_event_new(&ev), 0);
  assert_non_null(ev);
  return ev;
}

static void assert_header(const natka_event *ev, size_t i, const char *name,
                          const void *value, size_t len) {
  const char *n = NULL;
  const void *v = NULL;
  size_t l = 0;
  assert_int_equal(natka_event_header_at(ev, i, &n, &v, &l), 0);
  assert_string_equal(n, name);
  assert_int_equal(l, len);
  assert_memory_equal(v, value, len);
}

static void event_new_is_empty(void **state) {
  (void)state;
  natka_event *ev = new_event();
  size_t len = 99;
  assert_null(natka_event_id(ev));
  assert_null(natka_event_kind(ev));
  assert_int_equal(natka_event_ts(ev), 0);
  assert_null(natka_event_key(ev, &len));
  assert_int_equal(len, 0);
  len = 99;
  const char *data = natka_event_data(ev, &len);
  assert_non_null(data);
  assert_int_equal(len, 0);
  assert_int_equal(natka_event_header_count(ev), 0);
  assert_int_equal(natka_event_header_at(ev, 0, NULL, NULL, NULL),
                   NATKA_EINVAL);
  natka_event_free(ev);
}

static void event_null_arguments(void **state) {
  (void)state;
  assert_int_equal(natka_event_new(NULL), NATKA_EINVAL);
  assert_int_equal(natka_event_set_id(NULL, "x"), NATKA_EINVAL);
  assert_int_equal(natka_event_set_kind(NULL, "x"), NATKA_EINVAL);
  assert_int_equal(natka_event_set_key(NULL, "k", 1), NATKA_EINVAL);
  assert_int_equal(natka_event_set_data(NULL, "d", 1), NATKA_EINVAL);
  assert_int_equal(natka_event_add_header(NULL, "n", "v", 1), NATKA_EINVAL);
  natka_event_set_ts(NULL, 5);
  natka_event_free(NULL);
  assert_null(natka_event_id(NULL));
  assert_int_equal(natka_event_header_count(NULL), 0);
  assert_null(natka__event_clone(NULL));
}

static void event_id_and_kind_are_copied(void **state) {
  (void)state;
  natka_event *ev = new_event();
  char buf[16];
  strcpy(buf, "id-1");
  assert_int_equal(natka_event_set_id(ev, buf), 0);
  strcpy(buf, "orders.created");
  assert_int_equal(natka_event_set_kind(ev, buf), 0);
  strcpy(buf, "changed");
  assert_string_equal(natka_event_id(ev), "id-1");
  assert_string_equal(natka_event_kind(ev), "orders.created");

  assert_int_equal(natka_event_set_id(ev, "id-2"), 0);
  assert_string_equal(natka_event_id(ev), "id-2");
  assert_int_equal(natka_event_set_id(ev, NULL), 0);
  assert_null(natka_event_id(ev));
  assert_int_equal(natka_event_set_kind(ev, NULL), 0);
  assert_null(natka_event_kind(ev));
  natka_event_free(ev);
}

static void event_ts(void **state) {
  (void)state;
  natka_event *ev = new_event();
  natka_event_set_ts(ev, INT64_C(1718000000123456789));
  assert_int_equal(natka_event_ts(ev), INT64_C(1718000000123456789));
  natka_event_set_ts(ev, 0);
  assert_int_equal(natka_event_ts(ev), 0);
  natka_event_free(ev);
}

static void event_binary_key_with_nul(void **state) {
  (void)state;
  natka_event *ev = new_event();
  const char key[] = {'a', '\0', 'b', '\xff', '\0'};
  assert_int_equal(natka_event_set_key(ev, key, sizeof(key)), 0);
  size_t len = 0;
  const char *k = natka_event_key(ev, &len);
  assert_int_equal(len, 5);
  assert_memory_equal(k, key, 5);
  assert_non_null(natka_event_key(ev, NULL));
  natka_event_free(ev);
}

static void event_empty_key_differs_from_no_key(void **state) {
  (void)state;
  natka_event *ev = new_event();
  size_t len = 7;
  assert_int_equal(natka_event_set_key(ev, "", 0), 0);
  assert_non_null(natka_event_key(ev, &len));
  assert_int_equal(len, 0);

  assert_int_equal(natka_event_set_key(ev, NULL, 3), 0);
  len = 7;
  assert_null(natka_event_key(ev, &len));
  assert_int_equal(len, 0);
  natka_event_free(ev);
}

static void event_binary_and_empty_data(void **state) {
  (void)state;
  natka_event *ev = new_event();
  const char data[] = {'\0', '\1', '\0', 'x'};
  assert_int_equal(natka_event_set_data(ev, data, sizeof(data)), 0);
  size_t len = 0;
  const char *d = natka_event_data(ev, &len);
  assert_int_equal(len, 4);
  assert_memory_equal(d, data, 4);

  assert_int_equal(natka_event_set_data(ev, NULL, 0), 0);
  d = natka_event_data(ev, &len);
  assert_non_null(d);
  assert_int_equal(len, 0);

  assert_int_equal(natka_event_set_data(ev, NULL, 3), NATKA_EINVAL);
  natka_event_free(ev);
}

static void event_large_payload(void **state) {
  (void)state;
  natka_event *ev = new_event();
  size_t n = (size_t)2 << 20;
  unsigned char *big = malloc(n);
  assert_non_null(big);
  for (size_t i = 0; i < n; i++)
    big[i] = (unsigned char)(i * 31 + 7);
  assert_int_equal(natka_event_set_data(ev, big, n), 0);
  big[0] ^= 0xff; /* the event holds its own copy */
  size_t len = 0;
  const unsigned char *d = natka_event_data(ev, &len);
  assert_int_equal(len, n);
  assert_int_equal(d[0], 7);
  big[0] ^= 0xff;
  assert_memory_equal(d, big, n);
  assert_int_equal(natka__event_wire_size(ev), n);
  free(big);
  natka_event_free(ev);
}

static void event_multi_value_headers_keep_order(void **state) {
  (void)state;
  natka_event *ev = new_event();
  char name[16], value[16];
  for (int i = 0; i < 100; i++) {
    snprintf(name, sizeof(name), "h%d", i % 3);
    snprintf(value, sizeof(value), "v%d", i);
    assert_int_equal(natka_event_add_header(ev, name, value, strlen(value)), 0);
  }
  assert_int_equal(natka_event_header_count(ev), 100);
  for (int i = 0; i < 100; i++) {
    snprintf(name, sizeof(name), "h%d", i % 3);
    snprintf(value, sizeof(value), "v%d", i);
    assert_header(ev, (size_t)i, name, value, strlen(value));
  }
  assert_int_equal(natka_event_header_at(ev, 100, NULL, NULL, NULL),
                   NATKA_EINVAL);
  assert_int_equal(natka_event_header_at(ev, 99, NULL, NULL, NULL), 0);
  natka_event_free(ev);
}

static void event_header_values_are_bytes(void **state) {
  (void)state;
  natka_event *ev = new_event();
  const char bin[] = {'\0', 'a', '\0'};
  assert_int_equal(natka_event_add_header(ev, "bin", bin, 3), 0);
  assert_int_equal(natka_event_add_header(ev, "empty", NULL, 0), 0);
  assert_int_equal(natka_event_add_header(ev, "empty2", "", 0), 0);
  assert_header(ev, 0, "bin", bin, 3);
  assert_header(ev, 1, "empty", "", 0);
  assert_header(ev, 2, "empty2", "", 0);
  natka_event_free(ev);
}

static void event_header_rejects_bad_arguments(void **state) {
  (void)state;
  natka_event *ev = new_event();
  assert_int_equal(natka_event_add_header(ev, NULL, "v", 1), NATKA_EINVAL);
  assert_int_equal(natka_event_add_header(ev, "", "v", 1), NATKA_EINVAL);
  assert_int_equal(natka_event_add_header(ev, "n", NULL, 1), NATKA_EINVAL);
  assert_int_equal(natka_event_header_count(ev), 0);
  natka_event_free(ev);
}

static void event_find_header(void **state) {
  (void)state;
  natka_event *ev = new_event();
  assert_int_equal(natka_event_add_header(ev, "a", "1", 1), 0);
  assert_int_equal(natka_event_add_header(ev, "b", "2", 1), 0);
  assert_int_equal(natka_event_add_header(ev, "a", "3", 1), 0);
  assert_int_equal(natka__event_find_header(ev, "a", 0), 0);
  assert_int_equal(natka__event_find_header(ev, "a", 1), 2);
  assert_int_equal(natka__event_find_header(ev, "a", 3), -1);
  assert_int_equal(natka__event_find_header(ev, "b", 0), 1);
  assert_int_equal(natka__event_find_header(ev, "A", 0), -1);
  assert_int_equal(natka__event_find_header(ev, "c", 0), -1);
  natka_event_free(ev);
}

static void event_remove_headers(void **state) {
  (void)state;
  natka_event *ev = new_event();
  const char *names[] = {"x", "keep1", "x", "keep2", "x"};
  for (size_t i = 0; i < 5; i++)
    assert_int_equal(natka_event_add_header(ev, names[i], "value", i), 0);
  assert_int_equal(natka__event_remove_headers(ev, "x"), 3);
  assert_int_equal(natka_event_header_count(ev), 2);
  assert_header(ev, 0, "keep1", "v", 1);
  assert_header(ev, 1, "keep2", "val", 3);
  assert_int_equal(natka__event_remove_headers(ev, "x"), 0);
  assert_int_equal(natka_event_add_header(ev, "x", "again", 5), 0);
  assert_header(ev, 2, "x", "again", 5);
  natka_event_free(ev);
}

static void event_clone_is_deep(void **state) {
  (void)state;
  natka_event *ev = new_event();
  assert_int_equal(natka_event_set_id(ev, "id"), 0);
  assert_int_equal(natka_event_set_kind(ev, "kind"), 0);
  natka_event_set_ts(ev, 42);
  assert_int_equal(natka_event_set_key(ev, "k\0y", 3), 0);
  assert_int_equal(natka_event_set_data(ev, "d\0ta", 4), 0);
  assert_int_equal(natka_event_add_header(ev, "h", "1", 1), 0);
  assert_int_equal(natka_event_add_header(ev, "h", "\0", 1), 0);

  natka_event *c = natka__event_clone(ev);
  assert_non_null(c);
  assert_int_equal(natka_event_set_id(ev, "other"), 0);
  assert_int_equal(natka_event_set_data(ev, "zz", 2), 0);
  natka__event_remove_headers(ev, "h");
  natka_event_free(ev);

  size_t len = 0;
  assert_string_equal(natka_event_id(c), "id");
  assert_string_equal(natka_event_kind(c), "kind");
  assert_int_equal(natka_event_ts(c), 42);
  assert_memory_equal(natka_event_key(c, &len), "k\0y", 3);
  assert_int_equal(len, 3);
  assert_memory_equal(natka_event_data(c, &len), "d\0ta", 4);
  assert_int_equal(len, 4);
  assert_int_equal(natka_event_header_count(c), 2);
  assert_header(c, 0, "h", "1", 1);
  assert_header(c, 1, "h", "\0", 1);
  /* the clone can still grow */
  assert_int_equal(natka_event_add_header(c, "more", "x", 1), 0);
  assert_int_equal(natka_event_header_count(c), 3);
  natka_event_free(c);
}

static void event_clone_of_empty_event(void **state) {
  (void)state;
  natka_event *ev = new_event();
  natka_event *c = natka__event_clone(ev);
  assert_non_null(c);
  size_t len = 1;
  assert_null(natka_event_id(c));
  assert_null(natka_event_key(c, &len));
  assert_int_equal(len, 0);
  assert_int_equal(natka_event_header_count(c), 0);
  natka_event_free(c);

  assert_int_equal(natka_event_set_key(ev, "", 0), 0);
  c = natka__event_clone(ev);
  assert_non_null(c);
  assert_non_null(natka_event_key(c, &len));
  assert_int_equal(len, 0);
  natka_event_free(c);
  natka_event_free(ev);
}

static void event_wire_size(void **state) {
  (void)state;
  natka_event *ev = new_event();
  assert_int_equal(natka__event_wire_size(ev), 0);
  assert_int_equal(natka_event_set_id(ev, "12345"), 0);            /* 5 */
  assert_int_equal(natka_event_set_kind(ev, "abc"), 0);            /* 3 */
  assert_int_equal(natka_event_set_key(ev, "k\0", 2), 0);          /* 2 */
  assert_int_equal(natka_event_set_data(ev, "data\0!", 6), 0);     /* 6 */
  assert_int_equal(natka_event_add_header(ev, "name", "v", 1), 0); /* 5 */
  assert_int_equal(natka_event_add_header(ev, "n", "\0\0", 2), 0); /* 3 */
  natka_event_set_ts(ev, 123456789);
  assert_int_equal(natka__event_wire_size(ev), 24);
  natka_event_free(ev);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(event_new_is_empty),
    cmocka_unit_test(event_null_arguments),
    cmocka_unit_test(event_id_and_kind_are_copied),
    cmocka_unit_test(event_ts),
    cmocka_unit_test(event_binary_key_with_nul),
    cmocka_unit_test(event_empty_key_differs_from_no_key),
    cmocka_unit_test(event_binary_and_empty_data),
    cmocka_unit_test(event_large_payload),
    cmocka_unit_test(event_multi_value_headers_keep_order),
    cmocka_unit_test(event_header_values_are_bytes),
    cmocka_unit_test(event_header_rejects_bad_arguments),
    cmocka_unit_test(event_find_header),
    cmocka_unit_test(event_remove_headers),
    cmocka_unit_test(event_clone_is_deep),
    cmocka_unit_test(event_clone_of_empty_event),
    cmocka_unit_test(event_wire_size),
};

NATKA_TEST_MAIN(tests)
