/* Unit tests for core/event/codec.c: CloudEvents binary mode on NATS and Kafka,
 * and RFC 3339 times. */
#include "runner.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "codec.h"
#include "natka/error.h"
#include "util.h"

/* 2024-06-10T12:34:56Z */
#define T0 INT64_C(1718022896000000000)
#define SEC INT64_C(1000000000)

/* A wire header from a string literal (may contain NUL bytes). */
#define WH(n, v)                                                               \
  { (n), (v), sizeof(v) - 1 }
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static natka_event *new_event(void) {
  natka_event *ev = NULL;
  assert_int_equal(natka_event_new(&ev), 0);
  return ev;
}

static void assert_wire(const natka__wire_headers *w,
                        const natka__wire_header *want, size_t n) {
  assert_int_equal(w->n, n);
  for (size_t i = 0; i < n; i++) {
    assert_string_equal(w->h[i].name, want[i].name);
    assert_int_equal(w->h[i].len, want[i].len);
    assert_memory_equal(w->h[i].value, want[i].value, want[i].len);
  }
}

static void assert_headers(const natka_event *ev,
                           const natka__wire_header *want, size_t n) {
  assert_int_equal(natka_event_header_count(ev), n);
  for (size_t i = 0; i < n; i++) {
    const char *name;
    const void *value;
    size_t len;
    assert_int_equal(natka_event_header_at(ev, i, &name, &value, &len), 0);
    assert_string_equal(name, want[i].name);
    assert_int_equal(len, want[i].len);
    assert_memory_equal(value, want[i].value, len);
  }
}

static void assert_key(const natka_event *ev, const void *key, size_t len) {
  size_t got_len = 99;
  const void *got = natka_event_key(ev, &got_len);
  assert_non_null(got);
  assert_int_equal(got_len, len);
  assert_memory_equal(got, key, len);
}

static void assert_uuid7(const char *s) {
  const char *shape = "........-....-7...-v...-............";
  assert_non_null(s);
  assert_int_equal(strlen(s), 36);
  for (int i = 0; i < 36; i++) {
    if (shape[i] == '.' || shape[i] == 'v')
      assert_non_null(
          strchr(shape[i] == 'v' ? "89ab" : "0123456789abcdef", s[i]));
    else
      assert_int_equal(s[i], shape[i]);
  }
}

/* Decodes the headers of a NATS message on subject "s" with no payload. */
static natka_event *nats_event(const natka__wire_header *in, size_t n,
                               const char *default_id) {
  natka_event *ev = new_event();
  char err[128] = "";
  int rc = natka__event_from_nats(ev, "s", in, n, NULL, 0, default_id, err,
                                  sizeof(err));
  if (rc != 0)
    fail_msg("from_nats: %s: %s", natka_err_name(rc), err);
  return ev;
}

static int64_t parse(const char *s) {
  int64_t ts = 0;
  assert_int_equal(natka__rfc3339_parse(s, &ts), 0);
  return ts;
}

static void assert_format(int64_t ts, const char *want) {
  char buf[48];
  natka__rfc3339_format(ts, buf);
  assert_string_equal(buf, want);
}

/* ---- RFC 3339 ---------------------------------------------------------- */

static void rfc3339_parse_utc(void **state) {
  (void)state;
  assert_int_equal(parse("2024-06-10T12:34:56Z"), T0);
  assert_int_equal(parse("2024-06-10t12:34:56z"), T0);
  assert_int_equal(parse("1970-01-01T00:00:00Z"), 0);
  assert_int_equal(parse("2024-02-29T23:59:59Z"), INT64_C(1709251199) * SEC);
  assert_int_equal(parse("1969-12-31T23:59:59Z"), -SEC);
}

static void rfc3339_parse_offsets(void **state) {
  (void)state;
  assert_int_equal(parse("2024-06-10T14:34:56+02:00"), T0);
  assert_int_equal(parse("2024-06-10T07:04:56-05:30"), T0);
  assert_int_equal(parse("2024-06-10T12:34:56+00:00"), T0);
  assert_int_equal(parse("2024-06-10T12:34:56-00:00"), T0);
  assert_int_equal(parse("2024-06-11T00:34:56+12:00"), T0);
}

static void rfc3339_parse_fraction_digits(void **state) {
  (void)state;
  assert_int_equal(parse("2024-06-10T12:34:56.5Z"), T0 + 500000000);
  assert_int_equal(parse("2024-06-10T12:34:56.123Z"), T0 + 123000000);
  assert_int_equal(parse("2024-06-10T12:34:56.123456Z"), T0 + 123456000);
  assert_int_equal(parse("2024-06-10T12:34:56.123456789Z"), T0 + 123456789);
  assert_int_equal(parse("2024-06-10T12:34:56.000000001Z"), T0 + 1);
  assert_int_equal(parse("2024-06-10T14:34:56.123456789+02:00"),
                   T0 + 123456789);
  assert_int_equal(parse("1969-12-31T23:59:59.25Z"), -750000000);
}

static void rfc3339_parse_rejects_invalid(void **state) {
  (void)state;
  const char *bad[] = {
      "2024-13-01T00:00:00Z",
      "yesterday",
      "",
      "2024-06-10T12:34:56Zjunk",
      "2024-06-10T12:34:56",
      "2024-06-10 12:34:56Z",
      "2024-02-30T00:00:00Z",
      "2023-02-29T00:00:00Z",
      "2024-00-10T12:34:56Z",
      "2024-06-00T12:34:56Z",
      "2024-06-10T24:00:00Z",
      "2024-06-10T12:60:00Z",
      "2024-06-10T12:34:61Z",
      "2024-06-10T12:34:56.Z",
      "2024-06-10T12:34:56.1234567890Z",
      "2024-06-10T12:34:56+0200",
      "2024-06-10T12:34:56+24:00",
      "2024-6-10T12:34:56Z",
      "2024-06-10T12:34:56+02:00 ",
      "9999-12-31T23:59:59Z",
  };
  for (size_t i = 0; i < COUNT(bad); i++) {
    int64_t ts = 7;
    if (natka__rfc3339_parse(bad[i], &ts) != NATKA_EMALFORMED)
      fail_msg("accepted '%s'", bad[i]);
    assert_int_equal(ts, 7);
  }
  assert_int_equal(natka__rfc3339_parse(NULL, NULL), NATKA_EMALFORMED);
}

static void rfc3339_format_fraction_digits(void **state) {
  (void)state;
  assert_format(T0, "2024-06-10T12:34:56Z");
  assert_format(T0 + 500000000, "2024-06-10T12:34:56.500Z");
  assert_format(T0 + 123456000, "2024-06-10T12:34:56.123456Z");
  assert_format(T0 + 1, "2024-06-10T12:34:56.000000001Z");
  assert_format(T0 + 123456789, "2024-06-10T12:34:56.123456789Z");
  assert_format(0, "1970-01-01T00:00:00Z");
  assert_format(-1, "1969-12-31T23:59:59.999999999Z");
  assert_format(INT64_MAX, "2262-04-11T23:47:16.854775807Z");
  assert_format(INT64_MIN, "1677-09-21T00:12:43.145224192Z");
}

static void rfc3339_format_parse_round_trip(void **state) {
  (void)state;
  const int64_t values[] = {0,
                            1,
                            -1,
                            T0,
                            T0 + 1000,
                            T0 + 7000000,
                            -SEC * 86400 * 365,
                            INT64_MAX,
                            INT64_MIN,
                            INT64_C(951782400) * SEC};
  for (size_t i = 0; i < COUNT(values); i++) {
    char buf[48];
    natka__rfc3339_format(values[i], buf);
    assert_int_equal(parse(buf), values[i]);
  }
}

/* ---- from NATS ----------------------------------------------------------- */

static void from_nats_maps_attributes(void **state) {
  (void)state;
  const natka__wire_header in[] = {
      WH("ce-specversion", "1.0"),
      WH("ce-id", "evt-1"),
      WH("ce-source", "/orders"),
      WH("ce-type", "orders.created"),
      WH("ce-time", "2024-06-10T14:34:56.123456789+02:00"),
      WH("traceparent", "00-abc-def-01"),
      WH("ce-partitionkey", "customer 7"),
      WH("x-multi", "a"),
      WH("x-multi", "b")};
  const natka__wire_header kept[] = {WH("ce-source", "/orders"),
                                     WH("traceparent", "00-abc-def-01"),
                                     WH("x-multi", "a"), WH("x-multi", "b")};
  natka_event *ev = new_event();
  char err[128] = "";
  assert_int_equal(natka__event_from_nats(ev, "orders.in", in, COUNT(in),
                                          "pay\0load", 8, "js:1", err,
                                          sizeof(err)),
                   0);
  assert_string_equal(natka_event_id(ev), "evt-1");
  assert_string_equal(natka_event_kind(ev), "orders.created");
  assert_int_equal(natka_event_ts(ev), T0 + 123456789);
  assert_key(ev, "customer 7", 10);
  size_t len = 0;
  assert_memory_equal(natka_event_data(ev, &len), "pay\0load", 8);
  assert_int_equal(len, 8);
  assert_headers(ev, kept, COUNT(kept));
  natka_event_free(ev);
}

static void from_nats_attribute_names_ignore_case(void **state) {
  (void)state;
  const natka__wire_header in[] = {
      WH("CE-SpecVersion", "1.0"), WH("CE-ID", "evt-2"),
      WH("Ce-Type", "t"),          WH("CE-TIME", "2024-06-10T12:34:56Z"),
      WH("CE-PartitionKey", "k"),  WH("nats-msg-id", "evt-2"),
      WH("X-Other", "o")};
  const natka__wire_header kept[] = {WH("X-Other", "o")};
  natka_event *ev = nats_event(in, COUNT(in), NULL);
  assert_string_equal(natka_event_id(ev), "evt-2");
  assert_string_equal(natka_event_kind(ev), "t");
  assert_int_equal(natka_event_ts(ev), T0);
  assert_key(ev, "k", 1);
  assert_headers(ev, kept, COUNT(kept));
  natka_event_free(ev);
}

static void from_nats_msg_id_is_the_id_without_ce_id(void **state) {
  (void)state;
  const natka__wire_header in[] = {WH("Nats-Msg-Id", "m-1"), WH("a", "1")};
  const natka__wire_header kept[] = {WH("a", "1")};
  natka_event *ev = nats_event(in, COUNT(in), "js:9");
  assert_string_equal(natka_event_id(ev), "m-1");
  assert_headers(ev, kept, COUNT(kept));
  natka_event_free(ev);
}

static void from_nats_keeps_msg_id_that_differs(void **state) {
  (void)state;
  const natka__wire_header in[] = {WH("Nats-Msg-Id", "dedup-7"),
                                   WH("ce-id", "evt-3")};
  const natka__wire_header kept[] = {WH("Nats-Msg-Id", "dedup-7")};
  natka_event *ev = nats_event(in, COUNT(in), NULL);
  assert_string_equal(natka_event_id(ev), "evt-3");
  assert_headers(ev, kept, COUNT(kept));
  natka_event_free(ev);
}

static void from_nats_default_id(void **state) {
  (void)state;
  const natka__wire_header in[] = {WH("traceparent", "tp")};
  natka_event *ev = nats_event(in, COUNT(in), "ORDERS:42");
  assert_string_equal(natka_event_id(ev), "ORDERS:42");
  assert_headers(ev, in, COUNT(in));
  natka_event_free(ev);
}

static void from_nats_defaults_uuid7_subject_now(void **state) {
  (void)state;
  natka_event *ev = new_event();
  int64_t before = natka__now_ns();
  assert_int_equal(
      natka__event_from_nats(ev, "orders.eu", NULL, 0, NULL, 0, NULL, NULL, 0),
      0);
  int64_t after = natka__now_ns();
  assert_uuid7(natka_event_id(ev));
  assert_string_equal(natka_event_kind(ev), "orders.eu");
  assert_in_range(natka_event_ts(ev), before, after);
  size_t len = 9;
  assert_null(natka_event_key(ev, &len));
  assert_int_equal(len, 0);
  assert_non_null(natka_event_data(ev, &len));
  assert_int_equal(len, 0);
  assert_int_equal(natka_event_header_count(ev), 0);

  natka_event *ev2 = new_event();
  assert_int_equal(
      natka__event_from_nats(ev2, "orders.eu", NULL, 0, NULL, 0, NULL, NULL, 0),
      0);
  assert_string_not_equal(natka_event_id(ev), natka_event_id(ev2));
  natka_event_free(ev2);
  natka_event_free(ev);
}

static void from_nats_rejects_bad_time(void **state) {
  (void)state;
  const char *bad[] = {"2024-13-01T00:00:00Z", "yesterday", "",
                       "2024-06-10T12:34:56Z trailing"};
  for (size_t i = 0; i < COUNT(bad); i++) {
    natka__wire_header in[] = {WH("ce-id", "x"), WH("h", "v")};
    in[1] = (natka__wire_header){"ce-time", bad[i], strlen(bad[i])};
    char err[128], want[128];
    natka_event *ev = new_event();
    assert_int_equal(natka__event_from_nats(ev, "s", in, COUNT(in), "d", 1,
                                            NULL, err, sizeof(err)),
                     NATKA_EMALFORMED);
    snprintf(want, sizeof(want), "header ce-time: not an RFC 3339 time: '%s'",
             bad[i]);
    assert_string_equal(err, want);
    /* a rejected message leaves the event untouched */
    assert_null(natka_event_id(ev));
    assert_int_equal(natka_event_header_count(ev), 0);
    natka_event_free(ev);
  }
}

static void from_nats_rejects_duplicate_attributes(void **state) {
  (void)state;
  const natka__wire_header dup_id[] = {WH("ce-id", "a"), WH("x", "1"),
                                       WH("CE-ID", "b")};
  const natka__wire_header dup_type[] = {WH("ce-type", "a"),
                                         WH("ce-type", "a")};
  const natka__wire_header two_keys[] = {WH("ce-partitionkey", "a"),
                                         WH("natka-key-b64", "YQ==")};
  char err[128];
  natka_event *ev = new_event();
  assert_int_equal(natka__event_from_nats(ev, "s", dup_id, COUNT(dup_id), NULL,
                                          0, NULL, err, sizeof(err)),
                   NATKA_EMALFORMED);
  assert_string_equal(err, "header ce-id given 2 times");
  assert_int_equal(natka__event_from_nats(ev, "s", dup_type, COUNT(dup_type),
                                          NULL, 0, NULL, err, sizeof(err)),
                   NATKA_EMALFORMED);
  assert_string_equal(err, "header ce-type given 2 times");
  assert_int_equal(natka__event_from_nats(ev, "s", two_keys, COUNT(two_keys),
                                          NULL, 0, NULL, err, sizeof(err)),
                   NATKA_EMALFORMED);
  assert_null(natka_event_id(ev));
  natka_event_free(ev);
}

static void from_nats_decodes_key_b64(void **state) {
  (void)state;
  natka__wire_header in[] = {WH("natka-key-b64", "awAB")};
  natka_event *ev = nats_event(in, 1, NULL);
  assert_key(ev, "k\0\1", 3);
  assert_int_equal(natka_event_header_count(ev), 0);
  natka_event_free(ev);

  const char *bad[] = {"a*==", "abc", "YQ=a", "====", "Y==="};
  for (size_t i = 0; i < COUNT(bad); i++) {
    char err[128] = "";
    in[0].value = bad[i];
    in[0].len = strlen(bad[i]);
    ev = new_event();
    assert_int_equal(
        natka__event_from_nats(ev, "s", in, 1, NULL, 0, NULL, err, sizeof(err)),
        NATKA_EMALFORMED);
    assert_string_equal(err, "header natka-key-b64: not base64");
    natka_event_free(ev);
  }
}

/* ---- to NATS ------------------------------------------------------------- */

static void to_nats_headers(void **state) {
  (void)state;
  natka_event *ev = new_event();
  assert_int_equal(natka_event_set_id(ev, "e-1"), 0);
  assert_int_equal(natka_event_set_kind(ev, "k"), 0);
  natka_event_set_ts(ev, T0 + 500000000);
  assert_int_equal(natka_event_set_key(ev, "caf\xc3\xa9 7", 7), 0);
  assert_int_equal(natka_event_add_header(ev, "x", "1", 1), 0);
  assert_int_equal(natka_event_add_header(ev, "Nats-Msg-Id", "other", 5), 0);
  /* A publisher's JetStream control header stays data on the way out. */
  assert_int_equal(natka_event_add_header(ev, "nats-rollup", "all", 3), 0);
  const natka__wire_header want[] = {WH("ce-specversion", "1.0"),
                                     WH("ce-id", "e-1"),
                                     WH("ce-type", "k"),
                                     WH("ce-time", "2024-06-10T12:34:56.500Z"),
                                     WH("ce-source", "natka://gw"),
                                     WH("ce-partitionkey", "caf\xc3\xa9 7"),
                                     WH("Nats-Msg-Id", "e-1"),
                                     WH("x", "1"),
                                     WH("x-Nats-Msg-Id", "other"),
                                     WH("x-nats-rollup", "all")};
  natka__wire_headers w = {0};
  assert_int_equal(natka__event_to_nats(ev, "natka://gw", &w), 0);
  assert_wire(&w, want, COUNT(want));
  natka__wire_headers_clear(&w);
  assert_int_equal(w.n, 0);
  assert_null(w.h);

  /* an empty event carries only the spec version */
  natka_event *empty = new_event();
  const natka__wire_header only[] = {WH("ce-specversion", "1.0")};
  assert_int_equal(natka__event_to_nats(empty, NULL, &w), 0);
  assert_wire(&w, only, 1);
  natka__wire_headers_clear(&w);
  natka_event_free(empty);
  natka_event_free(ev);
}

static void to_nats_skips_event_headers_owned_by_fields(void **state) {
  (void)state;
  natka_event *ev = new_event();
  assert_int_equal(natka_event_set_id(ev, "e"), 0);
  const char *owned[] = {"ce-id",          "CE-TYPE",         "ce-time",
                         "ce-specversion", "ce-partitionkey", "natka-key-b64"};
  for (size_t i = 0; i < COUNT(owned); i++)
    assert_int_equal(natka_event_add_header(ev, owned[i], "bogus", 5), 0);
  assert_int_equal(natka_event_add_header(ev, "ce_id", "u", 1), 0);
  assert_int_equal(natka_event_add_header(ev, "ok", "1", 1), 0);
  const natka__wire_header nats[] = {WH("ce-specversion", "1.0"),
                                     WH("ce-id", "e"), WH("Nats-Msg-Id", "e"),
                                     WH("ce_id", "u"), WH("ok", "1")};
  const natka__wire_header kafka[] = {WH("ce_specversion", "1.0"),
                                      WH("ce_id", "e"), WH("ok", "1")};
  natka__wire_headers w = {0};
  assert_int_equal(natka__event_to_nats(ev, NULL, &w), 0);
  assert_wire(&w, nats, COUNT(nats));
  natka__wire_headers_clear(&w);
  assert_int_equal(natka__event_to_kafka(ev, NULL, &w), 0);
  assert_wire(&w, kafka, COUNT(kafka));
  natka__wire_headers_clear(&w);
  natka_event_free(ev);
}

/* Encodes an event with `key` to NATS, checks which header carries it, and
 * decodes it back. */
static void check_key_on_nats(const char *key, size_t len, const char *name,
                              const char *value) {
  natka_event *ev = new_event();
  assert_int_equal(natka_event_set_id(ev, "e"), 0);
  assert_int_equal(natka_event_set_key(ev, key, len), 0);
  natka__wire_headers w = {0};
  assert_int_equal(natka__event_to_nats(ev, NULL, &w), 0);
  const natka__wire_header want[] = {WH("ce-specversion", "1.0"),
                                     WH("ce-id", "e"),
                                     {name, value, strlen(value)},
                                     WH("Nats-Msg-Id", "e")};
  assert_wire(&w, want, COUNT(want));

  natka_event *back = nats_event(w.h, w.n, NULL);
  assert_key(back, key, len);
  assert_int_equal(natka_event_header_count(back), 0);
  natka_event_free(back);
  natka__wire_headers_clear(&w);
  natka_event_free(ev);
}

static void to_nats_binary_key_goes_b64_and_back(void **state) {
  (void)state;
  check_key_on_nats("k\0\1", 3, "natka-key-b64", "awAB");
  check_key_on_nats("\0\xff", 2, "natka-key-b64", "AP8=");
  check_key_on_nats(" lead", 5, "natka-key-b64", "IGxlYWQ=");
  check_key_on_nats("a\tb", 3, "natka-key-b64", "YQli");
  check_key_on_nats("a\r\nb", 4, "natka-key-b64", "YQ0KYg==");
  check_key_on_nats("\xc3", 1, "natka-key-b64", "ww==");
  check_key_on_nats("\xed\xa0\x80", 3, "natka-key-b64", "7aCA");
  check_key_on_nats("plain key", 9, "ce-partitionkey", "plain key");
  check_key_on_nats("\xe2\x82\xac", 3, "ce-partitionkey", "\xe2\x82\xac");
}

static void to_nats_empty_key(void **state) {
  (void)state;
  check_key_on_nats("", 0, "natka-key-b64", "=");
}

/* ---- Kafka ------------------------------------------------------------ */

static void to_kafka_headers(void **state) {
  (void)state;
  natka_event *ev = new_event();
  assert_int_equal(natka_event_set_id(ev, "e-1"), 0);
  assert_int_equal(natka_event_set_kind(ev, "k"), 0);
  natka_event_set_ts(ev, T0 + 123456789);
  assert_int_equal(natka_event_set_key(ev, "key", 3), 0);
  assert_int_equal(natka_event_add_header(ev, "ce-ext", "v", 1), 0);
  assert_int_equal(natka_event_add_header(ev, "x", "\0", 1), 0);
  assert_int_equal(natka_event_add_header(ev, "CE-Up", "u", 1), 0);
  assert_int_equal(natka_event_add_header(ev, "xce-no", "n", 1), 0);
  const natka__wire_header want[] = {
      WH("ce_specversion", "1.0"),
      WH("ce_id", "e-1"),
      WH("ce_type", "k"),
      WH("ce_time", "2024-06-10T12:34:56.123456789Z"),
      WH("ce_source", "natka://gw"),
      WH("ce_ext", "v"),
      WH("x", "\0"),
      WH("CE_Up", "u"),
      WH("xce-no", "n")};
  natka__wire_headers w = {0};
  assert_int_equal(natka__event_to_kafka(ev, "natka://gw", &w), 0);
  assert_wire(&w, want, COUNT(want));

  /* encoders append after what the list already holds */
  assert_int_equal(natka__event_to_kafka(ev, "natka://gw", &w), 0);
  assert_int_equal(w.n, 2 * COUNT(want));
  assert_string_equal(w.h[COUNT(want)].name, "ce_specversion");
  natka__wire_headers_clear(&w);
  natka_event_free(ev);
}

static void from_kafka_maps_attributes(void **state) {
  (void)state;
  const natka__wire_header in[] = {
      WH("ce_specversion", "1.0"), WH("ce_id", "k-1"),
      WH("ce_type", "kt"),         WH("ce_time", "2024-06-10T12:34:56.123Z"),
      WH("ce_source", "/s"),       {"x-null", NULL, 0},
      WH("CE_Ext", "e"),           WH("traceparent", "tp")};
  const natka__wire_header kept[] = {WH("ce-source", "/s"), WH("x-null", ""),
                                     WH("CE-Ext", "e"),
                                     WH("traceparent", "tp")};
  natka_event *ev = new_event();
  assert_int_equal(
      natka__event_from_kafka(ev, "\0k", 2, 5, in, COUNT(in), NULL, 0, NULL, 0),
      0);
  assert_string_equal(natka_event_id(ev), "k-1");
  assert_string_equal(natka_event_kind(ev), "kt");
  assert_int_equal(natka_event_ts(ev), T0 + 123000000);
  assert_key(ev, "\0k", 2);
  size_t len = 9;
  assert_non_null(natka_event_data(ev, &len));
  assert_int_equal(len, 0);
  assert_headers(ev, kept, COUNT(kept));
  natka_event_free(ev);
}

static void from_kafka_defaults(void **state) {
  (void)state;
  natka_event *ev = new_event();
  assert_int_equal(natka__event_from_kafka(ev, NULL, 0, 1718022896123, NULL, 0,
                                           "v", 1, NULL, 0),
                   0);
  assert_uuid7(natka_event_id(ev));
  assert_null(natka_event_kind(ev));
  assert_int_equal(natka_event_ts(ev), T0 + 123000000);
  assert_null(natka_event_key(ev, NULL));
  natka_event_free(ev);

  const int64_t unknown[] = {0, -1};
  for (size_t i = 0; i < COUNT(unknown); i++) {
    ev = new_event();
    int64_t before = natka__now_ns();
    assert_int_equal(natka__event_from_kafka(ev, "", 0, unknown[i], NULL, 0,
                                             NULL, 0, NULL, 0),
                     0);
    assert_in_range(natka_event_ts(ev), before, natka__now_ns());
    assert_key(ev, "", 0);
    natka_event_free(ev);
  }
}

/* A publisher's natka-* headers must not pass for natka's own (a forged
 * natka-error-code + natka-source would steer `natka dlq replay`). */
static void inbound_natka_headers_are_renamed(void **state) {
  (void)state;
  const natka__wire_header in[] = {
      WH("ce-id", "e"), WH("natka-error-code", "ETOOBIG"),
      WH("NATKA-Source", "stream OTHER seq 1"), WH("natka-key-b64", "YQ=="),
      WH("natkaish", "1")};
  const char *want[][2] = {{"x-natka-error-code", "ETOOBIG"},
                           {"x-NATKA-Source", "stream OTHER seq 1"},
                           {"natkaish", "1"}};
  for (int kafka = 0; kafka <= 1; kafka++) {
    natka_event *ev = new_event();
    /* On Kafka the key is the record's: natka-key-b64 is a plain header. */
    size_t n = kafka ? COUNT(in) : COUNT(in) - 1;
    int rc = kafka ? natka__event_from_kafka(ev, NULL, 0, 0, in + 1, n - 1, "v",
                                             1, NULL, 0)
                   : natka__event_from_nats(ev, "s", in, COUNT(in), "v", 1,
                                            NULL, NULL, 0);
    assert_int_equal(rc, 0);
    size_t got = natka_event_header_count(ev), w = 0;
    for (size_t i = 0; i < got; i++) {
      const char *name = NULL;
      const void *value = NULL;
      size_t len = 0;
      assert_int_equal(natka_event_header_at(ev, i, &name, &value, &len), 0);
      assert_true(strncasecmp(name, "natka-", 6) != 0);
      if (kafka && strcmp(name, "x-natka-key-b64") == 0)
        continue;
      assert_true(w < COUNT(want));
      assert_string_equal(name, want[w][0]);
      assert_memory_equal(value, want[w][1], len);
      w++;
    }
    assert_int_equal(w, COUNT(want));
    assert_int_equal(got, kafka ? COUNT(want) + 1 : COUNT(want));
    natka_event_free(ev);
  }
}

static void from_kafka_rejects_malformed(void **state) {
  (void)state;
  const natka__wire_header bad_time[] = {WH("ce_time", "yesterday")};
  const natka__wire_header dup_id[] = {WH("ce_id", "a"), WH("ce_id", "a")};
  const natka__wire_header empty_id[] = {{"ce_id", NULL, 0}};
  char err[128];
  natka_event *ev = new_event();
  assert_int_equal(natka__event_from_kafka(ev, NULL, 0, 0, bad_time, 1, NULL, 0,
                                           err, sizeof(err)),
                   NATKA_EMALFORMED);
  assert_string_equal(err, "header ce_time: not an RFC 3339 time: 'yesterday'");
  assert_int_equal(natka__event_from_kafka(ev, NULL, 0, 0, dup_id, 2, NULL, 0,
                                           err, sizeof(err)),
                   NATKA_EMALFORMED);
  assert_string_equal(err, "header ce_id given 2 times");
  assert_int_equal(natka__event_from_kafka(ev, NULL, 0, 0, empty_id, 1, NULL, 0,
                                           err, sizeof(err)),
                   NATKA_EMALFORMED);
  assert_null(natka_event_id(ev));
  natka_event_free(ev);
}

/* Found by fuzzing (tests/fuzz/corpus/codec_kafka/null-ce-time): a Kafka
 * null header value (NULL, length 0) named ce_time went to memchr(NULL),
 * undefined behaviour that UBSan reports. It is an empty time: malformed. */
static void from_kafka_null_ce_time_is_malformed(void **state) {
  (void)state;
  const natka__wire_header null_time[] = {{"ce_time", NULL, 0}};
  char err[128];
  natka_event *ev = new_event();
  assert_int_equal(natka__event_from_kafka(ev, NULL, 0, 0, null_time, 1, "v", 1,
                                           err, sizeof(err)),
                   NATKA_EMALFORMED);
  assert_string_equal(err, "header ce_time: not an RFC 3339 time: ''");
  assert_null(natka_event_id(ev));
  natka_event_free(ev);
}

/* ---- round trips ------------------------------------------------------- */

static void assert_same_event(const natka_event *a, const natka_event *b) {
  assert_string_equal(natka_event_id(a), natka_event_id(b));
  assert_string_equal(natka_event_kind(a), natka_event_kind(b));
  assert_int_equal(natka_event_ts(a), natka_event_ts(b));
  size_t la, lb;
  const void *ka = natka_event_key(a, &la), *kb = natka_event_key(b, &lb);
  assert_int_equal(ka == NULL, kb == NULL);
  assert_int_equal(la, lb);
  assert_memory_equal(ka, kb, la);
  const void *da = natka_event_data(a, &la), *db = natka_event_data(b, &lb);
  assert_int_equal(la, lb);
  assert_memory_equal(da, db, la);
  natka__wire_header hb[16];
  size_t n = natka_event_header_count(b);
  assert_true(n <= COUNT(hb));
  for (size_t i = 0; i < n; i++) {
    const void *v;
    assert_int_equal(natka_event_header_at(b, i, &hb[i].name, &v, &hb[i].len),
                     0);
    hb[i].value = v;
  }
  assert_headers(a, hb, n);
}

static void round_trip_nats_kafka_nats(void **state) {
  (void)state;
  /* Written in the order the encoder emits, so the final NATS headers must
   * equal the input exactly. */
  const natka__wire_header in[] = {
      WH("ce-specversion", "1.0"),
      WH("ce-id", "r-1"),
      WH("ce-type", "orders.created"),
      WH("ce-time", "2024-06-10T12:34:56.000000001Z"),
      WH("natka-key-b64", "awAB"),
      WH("Nats-Msg-Id", "r-1"),
      WH("ce-source", "/orders"),
      WH("traceparent", "00-0af7651916cd43dd8448eb211c80319c-01"),
      WH("x-Nats-Msg-Id", "upstream-9"),
      WH("x-bin", "\0\1\0\xff"),
      WH("x-empty", ""),
      WH("x-multi", "1"),
      WH("x-multi", "2"),
      WH("CE-Custom", "c")};
  const char data[] = "{\"a\":1}\0tail";
  char err[128] = "";
  natka_event *first = new_event();
  assert_int_equal(natka__event_from_nats(first, "orders.in", in, COUNT(in),
                                          data, sizeof(data), NULL, err,
                                          sizeof(err)),
                   0);
  assert_key(first, "k\0\1", 3);
  assert_int_equal(natka_event_ts(first), T0 + 1);

  natka__wire_headers kw = {0};
  assert_int_equal(natka__event_to_kafka(first, "natka://gw", &kw), 0);
  const natka__wire_header kafka[] = {
      WH("ce_specversion", "1.0"),
      WH("ce_id", "r-1"),
      WH("ce_type", "orders.created"),
      WH("ce_time", "2024-06-10T12:34:56.000000001Z"),
      WH("ce_source", "/orders"),
      WH("traceparent", "00-0af7651916cd43dd8448eb211c80319c-01"),
      WH("x-Nats-Msg-Id", "upstream-9"),
      WH("x-bin", "\0\1\0\xff"),
      WH("x-empty", ""),
      WH("x-multi", "1"),
      WH("x-multi", "2"),
      WH("CE_Custom", "c")};
  assert_wire(&kw, kafka, COUNT(kafka));

  size_t key_len, data_len;
  const void *key = natka_event_key(first, &key_len);
  const void *payload = natka_event_data(first, &data_len);
  natka_event *second = new_event();
  assert_int_equal(natka__event_from_kafka(
                       second, key, key_len, natka_event_ts(first) / 1000000,
                       kw.h, kw.n, payload, data_len, err, sizeof(err)),
                   0);
  assert_same_event(first, second);

  natka__wire_headers nw = {0};
  assert_int_equal(natka__event_to_nats(second, "natka://gw", &nw), 0);
  assert_wire(&nw, in, COUNT(in));

  natka__wire_headers_clear(&nw);
  natka__wire_headers_clear(&kw);
  natka_event_free(second);
  natka_event_free(first);
}

/* ce-source is an ordinary header that the first hop adds, so a message
 * without one comes back with the configured source, after Nats-Msg-Id. */
static void round_trip_adds_missing_source(void **state) {
  (void)state;
  const natka__wire_header in[] = {WH("ce-id", "r-2"), WH("a", "1")};
  natka_event *first = nats_event(in, COUNT(in), NULL);
  natka__wire_headers kw = {0};
  assert_int_equal(natka__event_to_kafka(first, "natka://gw", &kw), 0);
  natka_event *second = new_event();
  assert_int_equal(
      natka__event_from_kafka(second, NULL, 0, 0, kw.h, kw.n, NULL, 0, NULL, 0),
      0);
  const natka__wire_header hdrs[] = {WH("ce-source", "natka://gw"),
                                     WH("a", "1")};
  assert_headers(second, hdrs, COUNT(hdrs));
  assert_string_equal(natka_event_kind(second), "s");
  assert_int_equal(natka_event_ts(second), natka_event_ts(first));
  natka__wire_headers_clear(&kw);
  natka_event_free(second);
  natka_event_free(first);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(rfc3339_parse_utc),
    cmocka_unit_test(rfc3339_parse_offsets),
    cmocka_unit_test(rfc3339_parse_fraction_digits),
    cmocka_unit_test(rfc3339_parse_rejects_invalid),
    cmocka_unit_test(rfc3339_format_fraction_digits),
    cmocka_unit_test(rfc3339_format_parse_round_trip),
    cmocka_unit_test(from_nats_maps_attributes),
    cmocka_unit_test(from_nats_attribute_names_ignore_case),
    cmocka_unit_test(from_nats_msg_id_is_the_id_without_ce_id),
    cmocka_unit_test(from_nats_keeps_msg_id_that_differs),
    cmocka_unit_test(from_nats_default_id),
    cmocka_unit_test(from_nats_defaults_uuid7_subject_now),
    cmocka_unit_test(from_nats_rejects_bad_time),
    cmocka_unit_test(from_nats_rejects_duplicate_attributes),
    cmocka_unit_test(from_nats_decodes_key_b64),
    cmocka_unit_test(to_nats_headers),
    cmocka_unit_test(to_nats_skips_event_headers_owned_by_fields),
    cmocka_unit_test(to_nats_binary_key_goes_b64_and_back),
    cmocka_unit_test(to_nats_empty_key),
    cmocka_unit_test(to_kafka_headers),
    cmocka_unit_test(from_kafka_maps_attributes),
    cmocka_unit_test(from_kafka_defaults),
    cmocka_unit_test(from_kafka_rejects_malformed),
    cmocka_unit_test(from_kafka_null_ce_time_is_malformed),
    cmocka_unit_test(inbound_natka_headers_are_renamed),
    cmocka_unit_test(round_trip_nats_kafka_nats),
    cmocka_unit_test(round_trip_adds_missing_source),
};

NATKA_TEST_MAIN(tests)
