/* Committed positions (core/sinks/seqset.c) and the checkpoint record that
 * carries them (core/sinks/checkpoint.c): ranges merge, prune and survive a
 * round trip; a record that is not natka's is refused, never guessed at. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner.h"

#include "checkpoint.h"
#include "natka/error.h"
#include "seqset.h"

static void assert_format(const natka__seqset *s, const char *want) {
  char *text = natka__seqset_format(s);
  assert_non_null(text);
  assert_string_equal(text, want);
  free(text);
}

static void test_positions_merge_into_ranges(void **state) {
  (void)state;
  natka__seqset s = {0};
  for (uint64_t p = 1; p <= 5; p++)
    assert_int_equal(natka__seqset_add(&s, p), 0);
  assert_int_equal(natka__seqset_add(&s, 8), 0);
  assert_int_equal(natka__seqset_add(&s, 7), 0);
  assert_int_equal(natka__seqset_add(&s, 3), 0); /* already in */
  assert_format(&s, "1-5,7-8");
  assert_int_equal(natka__seqset_add(&s, 6), 0); /* fills the hole */
  assert_format(&s, "1-8");
  assert_int_equal(s.n, 1);
  natka__seqset_clear(&s);
}

static void test_membership_holes_included(void **state) {
  (void)state;
  natka__seqset s = {0};
  uint64_t in[] = {10, 11, 12, 20, 30, 31};
  for (size_t i = 0; i < sizeof(in) / sizeof(*in); i++)
    natka__seqset_add(&s, in[i]);
  assert_true(natka__seqset_has(&s, 10));
  assert_true(natka__seqset_has(&s, 12));
  assert_false(natka__seqset_has(&s, 13));
  assert_false(natka__seqset_has(&s, 9));
  assert_true(natka__seqset_has(&s, 20));
  assert_false(natka__seqset_has(&s, 21));
  assert_true(natka__seqset_has(&s, 31));
  assert_false(natka__seqset_has(&s, 32));
  natka__seqset_clear(&s);
  assert_false(natka__seqset_has(&s, 10));
}

static void test_prune_forgets_the_floor_and_below(void **state) {
  (void)state;
  natka__seqset s = {0};
  assert_int_equal(natka__seqset_parse(&s, "1-10,15,20-25"), 0);
  natka__seqset_prune(&s, 5);
  assert_format(&s, "6-10,15,20-25");
  natka__seqset_prune(&s, 15);
  assert_format(&s, "20-25");
  natka__seqset_prune(&s, 100);
  assert_format(&s, "");
  natka__seqset_clear(&s);
}

static void test_out_of_order_adds_stay_sorted(void **state) {
  (void)state;
  natka__seqset s = {0};
  /* 1000 positions in a scrambled order, every other one. */
  for (uint64_t i = 0; i < 1000; i++)
    natka__seqset_add(&s, ((i * 7919) % 1000) * 2 + 1);
  assert_int_equal(s.n, 1000);
  for (size_t i = 1; i < s.n; i++)
    assert_true(s.r[i - 1].hi < s.r[i].lo);
  for (uint64_t i = 0; i < 1000; i++)
    natka__seqset_add(&s, i * 2 + 2);
  assert_format(&s, "1-2000");
  natka__seqset_clear(&s);
}

static void test_parse_refuses_what_format_never_writes(void **state) {
  (void)state;
  const char *bad[] = {"x", "1-", "5-3", "3,2", "1-4,4", "1,,2", "1 2", "-1"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
    natka__seqset s = {0};
    assert_int_equal(natka__seqset_parse(&s, bad[i]), NATKA_EINVAL);
    assert_int_equal(s.n, 0);
  }
  natka__seqset s = {0};
  assert_int_equal(natka__seqset_parse(&s, ""), 0);
  assert_int_equal(s.n, 0);
  assert_int_equal(natka__seqset_parse(&s, "18446744073709551615"), 0);
  assert_true(natka__seqset_has(&s, UINT64_MAX));
  natka__seqset_clear(&s);
}

/* strtoull takes a sign, blanks and "0x", and turns an overflow into
 * UINT64_MAX: a list that says "everything is committed". */
static void test_parse_refuses_signs_blanks_and_overflow(void **state) {
  (void)state;
  const char *bad[] = {"+1", " 1", "1 ", "0x10", "1-+5", "1- 5", "1--5", "-5",
                       "1,", ",1", "18446744073709551616",
                       "99999999999999999999", "1-18446744073709551616",
                       "1-99999999999999999999", "184467440737095516150",
                       /* sorted only if hi + 1 wraps to 0 */
                       "18446744073709551615,5", "1-18446744073709551615,3"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
    natka__seqset s = {0};
    if (natka__seqset_parse(&s, bad[i]) != NATKA_EINVAL)
      fail_msg("'%s' was taken", bad[i]);
    assert_int_equal(s.n, 0);
  }
  natka__seqset s = {0};
  assert_int_equal(natka__seqset_parse(&s, "1-18446744073709551615"), 0);
  assert_true(natka__seqset_has(&s, UINT64_MAX));
  assert_true(natka__seqset_has(&s, 1));
  natka__seqset_clear(&s);
}

static void test_a_position_is_digits_within_uint64(void **state) {
  (void)state;
  uint64_t pos = 7;
  assert_int_equal(natka__seqset_parse_pos("0", &pos), 0);
  assert_int_equal(pos, 0);
  assert_int_equal(natka__seqset_parse_pos("18446744073709551615", &pos), 0);
  assert_true(pos == UINT64_MAX);
  const char *bad[] = {"",
                       "-1",
                       "+1",
                       " 1",
                       "1 ",
                       "0x1",
                       "1e3",
                       "1.0",
                       "1,2",
                       "18446744073709551616",
                       "99999999999999999999",
                       "1-2"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
    pos = 7;
    if (natka__seqset_parse_pos(bad[i], &pos) != NATKA_EINVAL)
      fail_msg("'%s' was taken", bad[i]);
    assert_int_equal(pos, 7);
  }
}

static void test_checkpoint_round_trip(void **state) {
  (void)state;
  natka__checkpoint c = {0}, back = {0};
  char err[256];
  natka__ckpt_source *js = natka__checkpoint_source(&c, "jetstream EVENTS");
  assert_non_null(js);
  js->floor = 1200;
  natka__seqset_parse(&js->done, "1201-1350,1352");
  natka__ckpt_source *other = natka__checkpoint_source(&c, "spool /var/x");
  other->floor = 7; /* (entries move as the list grows: look up again) */
  assert_int_equal(natka__checkpoint_source(&c, "jetstream EVENTS")->floor,
                   1200);
  assert_int_equal(c.n, 2);

  char *rec = natka__checkpoint_encode(&c, "natka-a");
  assert_non_null(rec);
  assert_int_equal(natka__checkpoint_decode(&back, rec, strlen(rec), "natka-a",
                                            err, sizeof(err)),
                   0);
  assert_int_equal(back.n, 2);
  natka__ckpt_source *b = natka__checkpoint_source(&back, "jetstream EVENTS");
  assert_int_equal(b->floor, 1200);
  assert_format(&b->done, "1201-1350,1352");
  assert_int_equal(natka__checkpoint_source(&back, "spool /var/x")->floor, 7);
  free(rec);
  natka__checkpoint_clear(&c);
  natka__checkpoint_clear(&back);
}

static void test_a_foreign_record_is_refused(void **state) {
  (void)state;
  natka__checkpoint c = {0};
  char err[256];
  const char *bad[] = {
      "",
      "not json",
      "{}",
      "{\"sources\":[]}",
      "{\"sources\":{\"jetstream E\":{\"floor\":1,\"done\":\"\"}}}",
      "{\"sources\":{\"jetstream E\":{\"floor\":\"1x\",\"done\":\"\"}}}",
      "{\"sources\":{\"jetstream E\":{\"floor\":\"1\",\"done\":\"3-2\"}}}"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
    err[0] = '\0';
    assert_int_equal(natka__checkpoint_decode(&c, bad[i], strlen(bad[i]),
                                              "natka-a", err, sizeof(err)),
                     NATKA_EMALFORMED);
    assert_non_null(strstr(err, "checkpoint"));
    assert_int_equal(c.n, 0);
  }
}

/* A record of instance "natka-a" around one source's floor and done. */
static char *record(const char *head, const char *floor, const char *done) {
  static char buf[512];
  snprintf(buf, sizeof(buf),
           "{%s\"sources\":{\"jetstream E@1\":{\"floor\":%s,\"done\":%s}}}",
           head, floor, done);
  return buf;
}

#define HEAD "\"v\":1,\"id\":\"natka-a\","

/* Refused with NATKA_EMALFORMED, the reason naming `why`, nothing kept. */
static void assert_refused(const char *json, const char *why) {
  natka__checkpoint c = {0};
  char err[512] = "";
  int rc = natka__checkpoint_decode(&c, json, strlen(json), "natka-a", err,
                                    sizeof(err));
  if (rc != NATKA_EMALFORMED)
    fail_msg("taken (%d): %s", rc, json);
  if (strstr(err, why) == NULL)
    fail_msg("reason '%s' lacks '%s' for %s", err, why, json);
  assert_int_equal(c.n, 0);
}

static void test_a_floor_is_digits_within_uint64(void **state) {
  (void)state;
  const char *bad[] = {"\"-1\"",
                       "\"99999999999999999999\"",
                       "\"18446744073709551616\"",
                       "\"+1\"",
                       "\" 1\"",
                       "\"1 \"",
                       "\"0x10\"",
                       "\"1e3\"",
                       "\"\"",
                       "1"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
    assert_refused(record(HEAD, bad[i], "\"\""), "floor");
  /* The largest position is a position. */
  natka__checkpoint c = {0};
  char err[256];
  const char *max = record(HEAD, "\"18446744073709551615\"", "\"1-2\"");
  assert_int_equal(natka__checkpoint_decode(&c, max, strlen(max), "natka-a",
                                            err, sizeof(err)),
                   0);
  assert_true(c.v[0].floor == UINT64_MAX);
  natka__checkpoint_clear(&c);
}

static void test_done_is_a_strict_list(void **state) {
  (void)state;
  const char *bad[] = {"\"-1\"",   "\"99999999999999999999\"",
                       "\"1-+2\"", "\" 1\"",
                       "\"1,\"",   "\"0x1\"",
                       "7"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
    assert_refused(record(HEAD, "\"1\"", bad[i]), "done");
}

static void test_only_version_1_is_read(void **state) {
  (void)state;
  assert_refused(record("\"id\":\"natka-a\",", "\"1\"", "\"\""), "no version");
  assert_refused(record("\"v\":2,\"id\":\"natka-a\",", "\"1\"", "\"\""),
                 "version 2");
  assert_refused(record("\"v\":1.5,\"id\":\"natka-a\",", "\"1\"", "\"\""),
                 "version 1.5");
  assert_refused(record("\"v\":\"1\",\"id\":\"natka-a\",", "\"1\"", "\"\""),
                 "not a number");
  assert_refused(record("\"v\":null,\"id\":\"natka-a\",", "\"1\"", "\"\""),
                 "not a number");
}

static void test_the_id_must_be_the_key_read(void **state) {
  (void)state;
  assert_refused(record("\"v\":1,", "\"1\"", "\"\""), "no \"id\"");
  assert_refused(record("\"v\":1,\"id\":7,", "\"1\"", "\"\""), "no \"id\"");
  assert_refused(record("\"v\":1,\"id\":\"natka-b\",", "\"1\"", "\"\""),
                 "'natka-b'");
  assert_refused(record("\"v\":1,\"id\":\"natka-a2\",", "\"1\"", "\"\""),
                 "not 'natka-a'");
}

static void test_odd_shapes_are_refused(void **state) {
  (void)state;
  /* Trailing bytes after the object. */
  assert_refused("{\"v\":1,\"id\":\"natka-a\",\"sources\":{}} x", "JSON");
  /* Not an object at the top. */
  assert_refused("[1]", "not a natka checkpoint");
  /* A source that is not an object. */
  assert_refused("{\"v\":1,\"id\":\"natka-a\",\"sources\":{\"js E\":1}}",
                 "floor");
  /* The same source twice: which one holds? */
  assert_refused("{\"v\":1,\"id\":\"natka-a\",\"sources\":{"
                 "\"js E\":{\"floor\":\"1\",\"done\":\"\"},"
                 "\"js E\":{\"floor\":\"9\",\"done\":\"\"}}}",
                 "twice");
}

/* What the reader keeps of the records on the topic: the last value of its
 * key; a tombstone (NULL value) after it means no checkpoint, a record after
 * the tombstone counts again. */
static void test_a_tombstone_resets_the_checkpoint(void **state) {
  (void)state;
  char *value = NULL;
  assert_int_equal(
      natka__checkpoint_take("natka-a", "natka-a", 7, "A", 1, &value), 0);
  assert_string_equal(value, "A");
  assert_int_equal(
      natka__checkpoint_take("natka-a", "natka-b", 7, "B", 1, &value), 0);
  assert_string_equal(value, "A"); /* another instance's key */
  assert_int_equal(
      natka__checkpoint_take("natka-a", "natka-a", 7, NULL, 0, &value), 0);
  assert_null(value);
  assert_int_equal(
      natka__checkpoint_take("natka-a", "natka-a", 7, "C", 1, &value), 0);
  assert_string_equal(value, "C");
  /* An empty value is a record, not a tombstone: decoding refuses it. */
  assert_int_equal(
      natka__checkpoint_take("natka-a", "natka-a", 7, "", 0, &value), 0);
  assert_non_null(value);
  assert_string_equal(value, "");
  free(value);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_positions_merge_into_ranges),
    cmocka_unit_test(test_membership_holes_included),
    cmocka_unit_test(test_prune_forgets_the_floor_and_below),
    cmocka_unit_test(test_out_of_order_adds_stay_sorted),
    cmocka_unit_test(test_parse_refuses_what_format_never_writes),
    cmocka_unit_test(test_parse_refuses_signs_blanks_and_overflow),
    cmocka_unit_test(test_a_position_is_digits_within_uint64),
    cmocka_unit_test(test_checkpoint_round_trip),
    cmocka_unit_test(test_a_foreign_record_is_refused),
    cmocka_unit_test(test_a_floor_is_digits_within_uint64),
    cmocka_unit_test(test_done_is_a_strict_list),
    cmocka_unit_test(test_only_version_1_is_read),
    cmocka_unit_test(test_the_id_must_be_the_key_read),
    cmocka_unit_test(test_odd_shapes_are_refused),
    cmocka_unit_test(test_a_tombstone_resets_the_checkpoint),
};

NATKA_TEST_MAIN(tests)
