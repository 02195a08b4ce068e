/* Unit tests of core/config/config.c: defaults, loading a Lua config, the
 * sandbox, every kind of bad input, natka_config_set/get and the reference. */
#include "runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_int.h"
#include "natka/error.h"
#include "util.h"

/* Every key of the configuration, as the README documents them. */
static const char *const all_keys[] = {
    "nats.url",
    "nats.name",
    "nats.connect_timeout_ms",
    "nats.reconnect_wait_ms",
    "nats.subjects",
    "nats.tls.ca_file",
    "nats.tls.cert_file",
    "nats.tls.key_file",
    "nats.tls.server_name",
    "nats.tls.verify",
    "nats.creds_file",
    "nats.nkey_seed_file",
    "nats.token",
    "nats.user",
    "nats.password",
    "jetstream.enabled",
    "jetstream.stream",
    "jetstream.subjects",
    "jetstream.durable",
    "jetstream.create_stream",
    "jetstream.batch",
    "jetstream.fetch_expires_ms",
    "jetstream.max_ack_pending",
    "jetstream.ack_wait_ms",
    "jetstream.nak_delay_ms",
    "jetstream.max_deliver",
    "kafka.brokers",
    "kafka.security.protocol",
    "kafka.sasl.mechanism",
    "kafka.sasl.username",
    "kafka.sasl.password",
    "kafka.tls.ca_file",
    "kafka.tls.cert_file",
    "kafka.tls.key_file",
    "kafka.tls.key_password",
    "kafka.tls.verify",
    "kafka.linger_ms",
    "kafka.batch_size",
    "kafka.compression",
    "kafka.message_timeout_ms",
    "kafka.queue_high",
    "kafka.queue_low",
    "kafka.properties",
    "rules.files",
    "rules.instruction_budget",
    "rules.memory_mb",
    "route.default_topic",
    "event.source",
    "dlq.topic",
    "limits.max_event_bytes",
    "limits.max_inflight",
    "shutdown.drain_timeout_ms",
    "log.level",
};
#define NKEYS (sizeof(all_keys) / sizeof(all_keys[0]))

static natka_config *new_config(void) {
  natka_config *conf = NULL;
  assert_int_equal(natka_config_new(&conf), 0);
  assert_non_null(conf);
  return conf;
}

/* Loads `chunk` (named "natka.conf") into a fresh config; returns the code
 * and leaves the message in err. */
static int load(const char *chunk, char *err, size_t errlen) {
  natka_config *conf = new_config();
  err[0] = '\0';
  int rc = natka_config_load_string(conf, chunk, "natka.conf", err, errlen);
  natka_config_free(conf);
  return rc;
}

/* Asserts that `chunk` fails with NATKA_ECONFIG and a message containing
 * every one of the given fragments. */
#define assert_load_fails(chunk, ...)                                          \
  do {                                                                         \
    char err_[512];                                                            \
    const char *const frags_[] = {__VA_ARGS__};                                \
    assert_int_equal(load((chunk), err_, sizeof(err_)), NATKA_ECONFIG);        \
    for (size_t i_ = 0; i_ < sizeof(frags_) / sizeof(frags_[0]); i_++) {       \
      if (strstr(err_, frags_[i_]) == NULL)                                    \
        fail_msg("message \"%s\" lacks \"%s\"", err_, frags_[i_]);             \
    }                                                                          \
  } while (0)

static void assert_loads(const char *chunk) {
  char err[512];
  int rc = load(chunk, err, sizeof(err));
  if (rc != 0)
    fail_msg("load failed (%d): %s", rc, err);
}

static void assert_get(const natka_config *conf, const char *key,
                       const char *want) {
  char buf[512];
  assert_int_equal(natka_config_get(conf, key, buf, sizeof(buf)), 0);
  assert_string_equal(buf, want);
}

static void assert_set(natka_config *conf, const char *key, const char *value) {
  char err[512] = "";
  int rc = natka_config_set(conf, key, value, err, sizeof(err));
  if (rc != 0)
    fail_msg("set %s=%s failed (%d): %s", key, value, rc, err);
}

static void assert_set_fails(natka_config *conf, const char *key,
                             const char *value, const char *frag) {
  char err[512] = "";
  assert_int_equal(natka_config_set(conf, key, value, err, sizeof(err)),
                   NATKA_ECONFIG);
  if (strstr(err, frag) == NULL)
    fail_msg("message \"%s\" lacks \"%s\"", err, frag);
}

/* --- Defaults ------------------------------------------------------------- */

static void defaults(void **state) {
  (void)state;
  natka_config *conf = new_config();
  assert_string_equal(conf->nats_url, "nats://127.0.0.1:4222");
  assert_string_equal(conf->nats_name, "natka");
  assert_int_equal(conf->nats_connect_timeout_ms, 2000);
  assert_int_equal(conf->nats_reconnect_wait_ms, 1000);
  assert_int_equal(conf->nats_subjects.n, 0);
  assert_true(conf->js_enabled);
  assert_string_equal(conf->js_stream, "EVENTS");
  assert_int_equal(conf->js_subjects.n, 1);
  assert_string_equal(conf->js_subjects.v[0], "events.>");
  assert_string_equal(conf->js_durable, "natka");
  assert_true(conf->js_create_stream);
  assert_int_equal(conf->js_batch, 100);
  assert_int_equal(conf->js_fetch_expires_ms, 500);
  assert_int_equal(conf->js_max_ack_pending, 5000);
  assert_int_equal(conf->js_ack_wait_ms, 30000);
  assert_int_equal(conf->js_nak_delay_ms, 1000);
  assert_int_equal(conf->js_max_deliver, -1);
  assert_string_equal(conf->kafka_brokers, "");
  assert_int_equal(conf->kafka_linger_ms, 5);
  assert_int_equal(conf->kafka_batch_size, 1000000);
  assert_string_equal(conf->kafka_compression, "none");
  assert_int_equal(conf->kafka_message_timeout_ms, 300000);
  assert_int_equal(conf->kafka_queue_high, 50000);
  assert_int_equal(conf->kafka_queue_low, 10000);
  assert_int_equal(conf->kafka_props.n, 0);
  assert_int_equal(conf->rules_files.n, 0);
  assert_int_equal(conf->rules_instr_budget, 1000000);
  assert_int_equal(conf->rules_memory_mb, 64);
  assert_string_equal(conf->route_default_topic, "");
  assert_string_equal(conf->event_source, "natka");
  assert_string_equal(conf->dlq_topic, "natka.dlq");
  assert_int_equal(conf->max_event_bytes, 1048576);
  assert_int_equal(conf->max_inflight, 10000);
  assert_int_equal(conf->drain_timeout_ms, 30000);
  assert_int_equal(conf->log_level, NATKA_LOG_INFO);
  assert_null(conf->log_cb);
  assert_get(conf, "jetstream.subjects", "events.>");
  assert_get(conf, "log.level", "info");
  assert_get(conf, "jetstream.max_deliver", "-1");
  natka_config_free(conf);
}

static void new_and_free_reject_null(void **state) {
  (void)state;
  assert_int_equal(natka_config_new(NULL), NATKA_EINVAL);
  natka_config_free(NULL);
}

/* --- Loading -------------------------------------------------------------- */

static void load_every_type(void **state) {
  (void)state;
  char err[512] = "";
  natka_config *conf = new_config();
  const char *chunk =
      "local env_name = 'prod'\n"
      "return {\n"
      "  nats = { url = 'nats://a:4222,nats://b:4222',\n"
      "           subjects = { 'audit.*', 'ping' } },\n"
      "  jetstream = { enabled = false, batch = 2.5e2, max_deliver = 5 },\n"
      "  kafka = { linger_ms = 20, compression = 'zstd',\n"
      "            properties = { acks = 'all', ['client.id'] = 'n' } },\n"
      "  rules = { files = { 'a.lua', 'b.lua' },\n"
      "            instruction_budget = 1 << 40 },\n"
      "  route = { default_topic = 'all-' .. env_name },\n"
      "  log = { level = string.lower('DEBUG') },\n"
      "}\n";
  assert_int_equal(
      natka_config_load_string(conf, chunk, "natka.conf", err, sizeof(err)), 0);
  assert_string_equal(conf->nats_url, "nats://a:4222,nats://b:4222");
  assert_int_equal(conf->nats_subjects.n, 2);
  assert_string_equal(conf->nats_subjects.v[1], "ping");
  assert_false(conf->js_enabled);
  assert_int_equal(conf->js_batch, 250);
  assert_int_equal(conf->js_max_deliver, 5);
  assert_int_equal(conf->kafka_linger_ms, 20);
  assert_string_equal(conf->kafka_compression, "zstd");
  assert_get(conf, "kafka.properties", "acks=all,client.id=n");
  assert_get(conf, "rules.files", "a.lua,b.lua");
  assert_int_equal(conf->rules_instr_budget, (int64_t)1 << 40);
  assert_string_equal(conf->route_default_topic, "all-prod");
  assert_int_equal(conf->log_level, NATKA_LOG_DEBUG);
  /* Keys the chunk did not mention keep their values. */
  assert_string_equal(conf->js_stream, "EVENTS");
  assert_int_equal(conf->kafka_queue_high, 50000);
  natka_config_free(conf);
}

static void load_file_ok_and_missing(void **state) {
  (void)state;
  char path[] = "/tmp/natka_test_configXXXXXX", err[512] = "";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  const char *text = "return {\n kafka = { linger_ms = 42 },\n}\n";
  assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  natka_config *conf = new_config();
  assert_int_equal(natka_config_load_file(conf, path, err, sizeof(err)), 0);
  assert_int_equal(conf->kafka_linger_ms, 42);
  unlink(path);
  assert_int_equal(natka_config_load_file(conf, path, err, sizeof(err)),
                   NATKA_EIO);
  assert_non_null(strstr(err, path));
  assert_int_equal(conf->kafka_linger_ms, 42);
  natka_config_free(conf);
}

static void load_file_syntax_error_names_path(void **state) {
  (void)state;
  char path[] = "/tmp/natka_test_configXXXXXX", err[512] = "", want[600];
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  const char *text = "return {\n  kafka = {\n    linger_ms = = 5\n  }\n}\n";
  assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  natka_config *conf = new_config();
  assert_int_equal(natka_config_load_file(conf, path, err, sizeof(err)),
                   NATKA_ECONFIG);
  snprintf(want, sizeof(want), "%s:3:", path);
  if (strncmp(err, want, strlen(want)) != 0)
    fail_msg("message \"%s\" does not start with \"%s\"", err, want);
  unlink(path);
  natka_config_free(conf);
}

static void syntax_error_has_line(void **state) {
  (void)state;
  char err[512];
  assert_int_equal(
      load("return {\n  nats = {\n    url = ,\n  }\n}\n", err, sizeof(err)),
      NATKA_ECONFIG);
  assert_true(strncmp(err, "natka.conf:3:", 13) == 0);
}

static void runtime_error_has_line(void **state) {
  (void)state;
  char err[512];
  assert_int_equal(load("local x\n\nreturn { nats = x.y }\n", err, sizeof(err)),
                   NATKA_ECONFIG);
  assert_true(strncmp(err, "natka.conf:3:", 13) == 0);
  assert_non_null(strstr(err, "attempt to index"));
  assert_load_fails("return { nats = { url = 'a' .. {} } }",
                    "natka.conf:1:", "concatenate");
}

static void must_return_table(void **state) {
  (void)state;
  assert_load_fails("return 5", "natka.conf", "must return a table",
                    "got number");
  assert_load_fails("local x = 1", "natka.conf", "must return a table",
                    "got nil");
  assert_load_fails("return 'kafka'", "must return a table", "got string");
}

static void binary_chunk_rejected(void **state) {
  (void)state;
  assert_load_fails("\x1bLua\x54\x00 garbage", "natka.conf", "binary");
}

static void unknown_top_level_key(void **state) {
  (void)state;
  assert_load_fails("return { kafak = { linger_ms = 1 } }",
                    "config: unknown key 'kafak'", "did you mean 'kafka'?");
  assert_load_fails("return { zookeeper = {} }",
                    "config: unknown key 'zookeeper'");
  char err[512];
  load("return { zookeeper = {} }", err, sizeof(err));
  assert_null(strstr(err, "did you mean"));
  assert_load_fails("return { 'x' }", "keys must be names", "number");
}

static void unknown_nested_key(void **state) {
  (void)state;
  assert_load_fails("return { kafka = { lingr_ms = 1 } }",
                    "config: unknown key 'kafka.lingr_ms' (did you mean "
                    "'kafka.linger_ms'?)");
  assert_load_fails("return { jetstream = { bach = 1 } }",
                    "unknown key 'jetstream.bach'", "'jetstream.batch'");
  char err[512];
  load("return { kafka = { totally_new = 1 } }", err, sizeof(err));
  assert_non_null(strstr(err, "unknown key 'kafka.totally_new'"));
  assert_null(strstr(err, "did you mean"));
}

static void section_must_be_table(void **state) {
  (void)state;
  assert_load_fails("return { kafka = 5 }",
                    "config: 'kafka' must be a table, got number");
  assert_load_fails("return { log = 'debug' }", "'log' must be a table",
                    "got string");
}

static void wrong_type_string(void **state) {
  (void)state;
  assert_load_fails("return { nats = { url = 5 } }",
                    "config: 'nats.url' must be a string, got number");
  assert_load_fails("return { dlq = { topic = true } }",
                    "'dlq.topic' must be a string, got boolean");
}

static void wrong_type_integer(void **state) {
  (void)state;
  assert_load_fails("return { kafka = { linger_ms = '5' } }",
                    "config: 'kafka.linger_ms' must be an integer, got string");
  assert_load_fails("return { kafka = { linger_ms = 1.5 } }",
                    "'kafka.linger_ms' must be an integer, got 1.5");
  assert_load_fails("return { jetstream = { batch = {} } }",
                    "'jetstream.batch' must be an integer, got table");
  assert_loads("return { kafka = { linger_ms = 20.0 } }");
}

static void wrong_type_boolean(void **state) {
  (void)state;
  assert_load_fails(
      "return { jetstream = { enabled = 'yes' } }",
      "config: 'jetstream.enabled' must be a boolean, got string");
  assert_load_fails("return { jetstream = { create_stream = 1 } }",
                    "'jetstream.create_stream' must be a boolean, got number");
}

static void wrong_type_list(void **state) {
  (void)state;
  assert_load_fails("return { nats = { subjects = 'a.b' } }",
                    "'nats.subjects' must be a list of strings, got string");
  assert_load_fails("return { rules = { files = { 'a.lua', 7 } } }",
                    "'rules.files[2]' must be a string, got number");
  assert_load_fails("return { rules = { files = { main = 'a.lua' } } }",
                    "'rules.files' must be a list of strings");
  assert_load_fails("return { jetstream = { subjects = { 'a', '' } } }",
                    "'jetstream.subjects' entries must not be empty");
}

static void wrong_type_map(void **state) {
  (void)state;
  assert_load_fails("return { kafka = { properties = 'acks=all' } }",
                    "'kafka.properties' must be a table of strings, got "
                    "string");
  assert_load_fails("return { kafka = { properties = { acks = 1 } } }",
                    "'kafka.properties.acks' must be a string, got number");
  assert_load_fails("return { kafka = { properties = { 'all' } } }",
                    "'kafka.properties' keys must be strings, got number");
  assert_load_fails("return { kafka = { properties = { [''] = 'x' } } }",
                    "'kafka.properties' keys must not be empty");
}

static void wrong_type_enum_and_level(void **state) {
  (void)state;
  assert_load_fails("return { log = { level = 3 } }",
                    "'log.level' must be a string, got number");
  assert_load_fails("return { log = { level = 'verbose' } }",
                    "'log.level' must be one of error, warn, info, debug",
                    "'verbose'");
  assert_load_fails("return { kafka = { compression = 'brotli' } }",
                    "config: 'kafka.compression' must be one of none, gzip, "
                    "snappy, lz4, zstd; got 'brotli'");
  assert_load_fails("return { kafka = { compression = false } }",
                    "'kafka.compression' must be a string, got boolean");
}

static void out_of_range_low(void **state) {
  (void)state;
  assert_load_fails("return { jetstream = { batch = 0 } }",
                    "config: 'jetstream.batch' must be between 1 and 10000, "
                    "got 0");
  assert_load_fails("return { nats = { connect_timeout_ms = 99 } }",
                    "'nats.connect_timeout_ms' must be between 100 and "
                    "600000, got 99");
  assert_load_fails("return { kafka = { queue_low = -1 } }",
                    "'kafka.queue_low' must be between 0 and 10000000");
}

static void out_of_range_high(void **state) {
  (void)state;
  assert_load_fails("return { jetstream = { batch = 10001 } }",
                    "'jetstream.batch' must be between 1 and 10000, got 10001");
  assert_load_fails("return { rules = { instruction_budget = (1 << 40) + 1 } }",
                    "'rules.instruction_budget' must be between 0 and "
                    "1099511627776");
  assert_load_fails("return { kafka = { batch_size = 2147483648 } }",
                    "'kafka.batch_size' must be between 1 and 2147483647");
  assert_load_fails("return { kafka = { linger_ms = 2^63 } }",
                    "'kafka.linger_ms' must be an integer");
}

static void max_deliver_minus_one(void **state) {
  (void)state;
  assert_loads("return { jetstream = { max_deliver = -1 } }");
  assert_loads("return { jetstream = { max_deliver = 1 } }");
  assert_load_fails("return { jetstream = { max_deliver = 0 } }",
                    "'jetstream.max_deliver' must be -1 or between 1 and "
                    "1000000, got 0");
  assert_load_fails("return { jetstream = { max_deliver = -2 } }",
                    "'jetstream.max_deliver'", "got -2");
}

static void queue_low_must_be_below_high(void **state) {
  (void)state;
  assert_load_fails("return { kafka = { queue_low = 60000 } }",
                    "'kafka.queue_low' (60000) must be less than "
                    "'kafka.queue_high' (50000)");
  assert_load_fails("return { kafka = { queue_low = 100, queue_high = 100 } }",
                    "'kafka.queue_low'", "'kafka.queue_high'");
  assert_loads("return { kafka = { queue_low = 10, queue_high = 11 } }");
  natka_config *conf = new_config();
  assert_set_fails(conf, "kafka.queue_high", "10000", "'kafka.queue_low'");
  assert_int_equal(conf->kafka_queue_high, 50000);
  natka_config_free(conf);
}

static void bad_topic_name(void **state) {
  (void)state;
  char chunk[600], name[251];
  assert_load_fails("return { dlq = { topic = 'dead letters' } }",
                    "'dlq.topic' must be a Kafka topic name", "dead letters");
  assert_load_fails("return { dlq = { topic = '..' } }", "'dlq.topic'");
  assert_load_fails("return { dlq = { topic = '.' } }", "'dlq.topic'");
  assert_load_fails("return { dlq = { topic = 'a/b' } }", "'dlq.topic'");
  assert_load_fails("return { route = { default_topic = 'x y' } }",
                    "'route.default_topic' must be a Kafka topic name");
  memset(name, 'a', 249);
  name[249] = '\0';
  snprintf(chunk, sizeof(chunk), "return { dlq = { topic = '%s' } }", name);
  assert_loads(chunk);
  snprintf(chunk, sizeof(chunk), "return { dlq = { topic = '%sa' } }", name);
  assert_load_fails(chunk, "'dlq.topic' must be a Kafka topic name");
  assert_loads("return { dlq = { topic = 'A.b_c-9' }, route = { "
               "default_topic = '' } }");
}

/* Only natka writes its checkpoints and dead letters, and nobody writes
 * Kafka's internal topics: the default route may not name them. */
static void allow_lists_match(void **state) {
  (void)state;
  natka_config *conf = NULL;
  char err[256];
  assert_int_equal(natka_config_new(&conf), 0);
  assert_true(natka__config_topic_allowed(conf, "anything"));
  assert_true(natka__config_subject_allowed(conf, "a.b"));
  assert_int_equal(natka_config_load_string(
                       conf,
                       "return { route = { allow = { 'orders.*', 'audit', "
                       "'p?y' }, allow_subjects = { 'dual.*.x', 'ops.>' } } }",
                       "t", err, sizeof(err)),
                   0);
  assert_true(natka__config_topic_allowed(conf, "orders.created"));
  assert_true(natka__config_topic_allowed(conf, "orders."));
  assert_true(natka__config_topic_allowed(conf, "audit"));
  assert_true(natka__config_topic_allowed(conf, "pay"));
  assert_false(natka__config_topic_allowed(conf, "audit2"));
  assert_false(natka__config_topic_allowed(conf, "order"));
  assert_false(natka__config_topic_allowed(conf, "paay"));
  assert_true(natka__config_subject_allowed(conf, "dual.a.x"));
  assert_false(natka__config_subject_allowed(conf, "dual.a.b.x"));
  assert_false(natka__config_subject_allowed(conf, "dual.a"));
  assert_true(natka__config_subject_allowed(conf, "ops.a"));
  assert_true(natka__config_subject_allowed(conf, "ops.a.b"));
  assert_false(natka__config_subject_allowed(conf, "ops"));
  assert_false(natka__config_subject_allowed(conf, "$KV.rules.x"));
  natka_config_free(conf);
  assert_load_fails("return { route = { allow = { 'a*' }, default_topic = "
                    "'b' } }",
                    "'route.default_topic' is 'b', which 'route.allow' does "
                    "not allow");
  /* A pathological glob stays cheap (no backtracking blow-up). */
  assert_false(natka__glob_match("*a*a*a*a*a*a*a*a*b",
                                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
}

static void default_topic_not_reserved(void **state) {
  (void)state;
  assert_load_fails("return { route = { default_topic = 'natka.dlq' } }",
                    "'route.default_topic' is 'natka.dlq', which is reserved "
                    "for dlq.topic");
  assert_load_fails("return { kafka = { checkpoint_topic = 'ck' }, route = { "
                    "default_topic = 'ck' } }",
                    "reserved for kafka.checkpoint_topic");
  assert_load_fails("return { route = { default_topic = '__consumer_offsets' "
                    "} }",
                    "reserved for Kafka's internal topics");
  assert_load_fails("return { dlq = { topic = '__dlq' } }",
                    "must not begin with __");
  assert_loads("return { route = { default_topic = 'natka.dlq2' } }");
}

static void bad_stream_name(void **state) {
  (void)state;
  static const char *const bad[] = {"EV.ENTS", "EV ENTS", "EV*",  "EV>",
                                    "a/b",     "a\\\\b",  "a\\tb"};
  char chunk[256];
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    snprintf(chunk, sizeof(chunk), "return { jetstream = { stream = '%s' } }",
             bad[i]);
    assert_load_fails(chunk, "'jetstream.stream' must be a JetStream name");
  }
  assert_load_fails("return { jetstream = { durable = 'my.durable' } }",
                    "'jetstream.durable' must be a JetStream name");
  assert_loads("return { jetstream = { stream = 'ORDERS_v2-x' } }");
}

static void empty_string_forbidden(void **state) {
  (void)state;
  static const char *const keys[][2] = {{"jetstream", "stream"},
                                        {"jetstream", "durable"},
                                        {"event", "source"},
                                        {"dlq", "topic"},
                                        {"nats", "url"}};
  char chunk[256], want[128];
  for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
    snprintf(chunk, sizeof(chunk), "return { %s = { %s = '' } }", keys[i][0],
             keys[i][1]);
    snprintf(want, sizeof(want), "'%s.%s' must not be empty", keys[i][0],
             keys[i][1]);
    assert_load_fails(chunk, want);
  }
  assert_loads("return { nats = { name = '' } }");
  assert_load_fails("return { nats = { url = 'a\\0b' } }",
                    "'nats.url' must not contain NUL");
}

static void jetstream_subjects_needed_to_create(void **state) {
  (void)state;
  assert_load_fails("return { jetstream = { subjects = {} } }",
                    "'jetstream.subjects' must not be empty");
  assert_loads("return { jetstream = { subjects = {}, create_stream = false } "
               "}");
}

/* --- The sandbox ---------------------------------------------------------- */

static void infinite_loop_stops(void **state) {
  (void)state;
  char err[512];
  assert_int_equal(
      load("local n = 0\nwhile true do n = n + 1 end\n", err, sizeof(err)),
      NATKA_ECONFIG);
  assert_non_null(strstr(err, "config: ran too long"));
  assert_true(strncmp(err, "natka.conf:2:", 13) == 0);
  assert_load_fails("local function f() return f() end return f()",
                    "ran too long");
  assert_load_fails("return { kafka = { linger_ms = #string.rep('x', 1 << 30) "
                    "} }",
                    "natka.conf", "memory");
}

static void no_io_os_require_load(void **state) {
  (void)state;
  static const char *const chunks[][2] = {
      {"io.open('/etc/passwd')", "'io'"},
      {"os.exit(1)", "'os'"},
      {"require('socket')", "'require'"},
      {"load('return 1')()", "'load'"},
      {"loadstring('return 1')", "'loadstring'"},
      {"dofile('/etc/passwd')", "'dofile'"},
      {"debug.getinfo(1)", "'debug'"},
      {"print('hi')", "'print'"},
      {"setmetatable({}, {})", "'setmetatable'"},
      {"getmetatable('').__index.rep('x', 2)", "'getmetatable'"},
      {"_G.os.exit(1)", "'_G'"},
      {"collectgarbage()", "'collectgarbage'"},
      {"package.loaded.os.exit(1)", "'package'"},
  };
  char chunk[256];
  for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
    snprintf(chunk, sizeof(chunk), "local x = %s\nreturn {}", chunks[i][0]);
    assert_load_fails(chunk, "natka.conf:1:", chunks[i][1], "not available");
  }
  /* What is there works, and does not reach the real global table. */
  assert_loads("return { kafka = { linger_ms = math.max(1, 2) + #table.concat("
               "{ string.upper('a'), ('b'):rep(2) }) } }");
}

static void env_reads_environment(void **state) {
  (void)state;
  char err[512] = "";
  natka_config *conf = new_config();
  setenv("NATKA_TEST_BROKERS", "k1:9092,k2:9092", 1);
  unsetenv("NATKA_TEST_UNSET");
  const char *chunk =
      "return {\n"
      "  kafka = { brokers = env('NATKA_TEST_BROKERS', 'embedded') },\n"
      "  event = { source = env('NATKA_TEST_UNSET', 'fallback') },\n"
      "  dlq = { topic = env('NATKA_TEST_UNSET') },\n" /* nil: left alone */
      "}\n";
  assert_int_equal(
      natka_config_load_string(conf, chunk, "natka.conf", err, sizeof(err)), 0);
  assert_string_equal(conf->kafka_brokers, "k1:9092,k2:9092");
  assert_string_equal(conf->event_source, "fallback");
  assert_string_equal(conf->dlq_topic, "natka.dlq");
  unsetenv("NATKA_TEST_BROKERS");
  natka_config_free(conf);
  assert_load_fails("return { nats = { url = env(42) } }",
                    "natka.conf:1:", "bad argument #1", "string expected");
  assert_load_fails("return { nats = { url = env() } }", "bad argument #1");
}

static void failed_load_changes_nothing(void **state) {
  (void)state;
  char err[512];
  natka_config *conf = new_config();
  assert_int_equal(natka_config_load_string(
                       conf,
                       "return { kafka = { linger_ms = 7, properties = { a = "
                       "'1' } }, rules = { files = { 'x.lua' } } }",
                       "first", err, sizeof(err)),
                   0);
  /* Valid values first in each table, then one bad value. */
  assert_int_equal(
      natka_config_load_string(
          conf,
          "return { nats = { url = 'nats://other:4222' }, kafka = { "
          "linger_ms = 99, properties = { b = '2' }, compression = 'rar' }, "
          "rules = { files = { 'y.lua' } } }",
          "second", err, sizeof(err)),
      NATKA_ECONFIG);
  assert_non_null(strstr(err, "kafka.compression"));
  assert_int_equal(conf->kafka_linger_ms, 7);
  assert_string_equal(conf->nats_url, "nats://127.0.0.1:4222");
  assert_get(conf, "kafka.properties", "a=1");
  assert_get(conf, "rules.files", "x.lua");
  /* A cross-key failure is atomic too. */
  assert_int_equal(
      natka_config_load_string(conf,
                               "return { kafka = { linger_ms = 1, queue_low = "
                               "50000 } }",
                               "third", err, sizeof(err)),
      NATKA_ECONFIG);
  assert_int_equal(conf->kafka_linger_ms, 7);
  assert_set_fails(conf, "jetstream.batch", "0", "'jetstream.batch'");
  assert_int_equal(conf->js_batch, 100);
  natka_config_free(conf);
}

static void map_in_config_replaces_map(void **state) {
  (void)state;
  char err[512];
  natka_config *conf = new_config();
  assert_set(conf, "kafka.properties.acks", "all");
  assert_int_equal(natka_config_load_string(
                       conf,
                       "return { kafka = { properties = { ['linger.ms'] = "
                       "'3' } } }",
                       NULL, err, sizeof(err)),
                   0);
  assert_get(conf, "kafka.properties", "linger.ms=3");
  natka_config_free(conf);
}

static void null_chunk_name_is_config(void **state) {
  (void)state;
  char err[512];
  natka_config *conf = new_config();
  assert_int_equal(
      natka_config_load_string(conf, "return 1", NULL, err, sizeof(err)),
      NATKA_ECONFIG);
  assert_true(strncmp(err, "config: ", 8) == 0);
  assert_int_equal(natka_config_load_string(conf, NULL, NULL, err, sizeof(err)),
                   NATKA_EINVAL);
  assert_int_equal(
      natka_config_load_string(NULL, "return {}", NULL, err, sizeof(err)),
      NATKA_EINVAL);
  natka_config_free(conf);
}

static void small_error_buffer(void **state) {
  (void)state;
  char err[8];
  natka_config *conf = new_config();
  assert_int_equal(natka_config_load_string(conf, "return { x = 1 }", NULL, err,
                                            sizeof(err)),
                   NATKA_ECONFIG);
  assert_int_equal(strlen(err), sizeof(err) - 1);
  assert_int_equal(
      natka_config_load_string(conf, "return { x = 1 }", NULL, NULL, 0),
      NATKA_ECONFIG);
  natka_config_free(conf);
}

/* --- natka_config_set / natka_config_get ---------------------------------- */

static void set_get_string(void **state) {
  (void)state;
  natka_config *conf = new_config();
  assert_set(conf, "nats.url", "nats://x:1,nats://y:2");
  assert_get(conf, "nats.url", "nats://x:1,nats://y:2");
  assert_set(conf, "route.default_topic", "");
  assert_get(conf, "route.default_topic", "");
  assert_set_fails(conf, "event.source", "",
                   "'event.source' must not be empty");
  assert_set_fails(conf, "jetstream.stream", "A.B", "'jetstream.stream'");
  assert_set_fails(conf, "dlq.topic", "..", "'dlq.topic'");
  natka_config_free(conf);
}

static void set_get_integer(void **state) {
  (void)state;
  natka_config *conf = new_config();
  assert_set(conf, "kafka.linger_ms", "20");
  assert_get(conf, "kafka.linger_ms", "20");
  assert_set(conf, "rules.instruction_budget", "1099511627776");
  assert_get(conf, "rules.instruction_budget", "1099511627776");
  assert_set(conf, "jetstream.max_deliver", "-1");
  assert_get(conf, "jetstream.max_deliver", "-1");
  assert_set_fails(conf, "kafka.linger_ms", "12x",
                   "'kafka.linger_ms' must be an integer, got '12x'");
  assert_set_fails(conf, "kafka.linger_ms", "", "'kafka.linger_ms'");
  assert_set_fails(conf, "kafka.linger_ms", " 5", "'kafka.linger_ms'");
  assert_set_fails(conf, "kafka.linger_ms", "1.5", "'kafka.linger_ms'");
  assert_set_fails(conf, "kafka.linger_ms", "99999999999999999999",
                   "'kafka.linger_ms'");
  assert_set_fails(conf, "kafka.linger_ms", "900001",
                   "'kafka.linger_ms' must be between 0 and 900000");
  assert_set_fails(conf, "jetstream.batch", "0", "between 1 and 10000, got 0");
  assert_get(conf, "kafka.linger_ms", "20");
  natka_config_free(conf);
}

static void set_get_boolean(void **state) {
  (void)state;
  static const char *const texts[][2] = {
      {"false", "false"}, {"true", "true"}, {"off", "false"},  {"on", "true"},
      {"0", "false"},     {"1", "true"},    {"FALSE", "false"}};
  natka_config *conf = new_config();
  for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
    assert_set(conf, "jetstream.enabled", texts[i][0]);
    assert_get(conf, "jetstream.enabled", texts[i][1]);
  }
  assert_set_fails(conf, "jetstream.enabled", "maybe",
                   "'jetstream.enabled' must be a boolean");
  assert_set_fails(conf, "jetstream.enabled", "", "'jetstream.enabled'");
  natka_config_free(conf);
}

static void set_get_list(void **state) {
  (void)state;
  natka_config *conf = new_config();
  assert_set(conf, "nats.subjects", "a.b, c.* ,d.>");
  assert_int_equal(conf->nats_subjects.n, 3);
  assert_get(conf, "nats.subjects", "a.b,c.*,d.>");
  assert_set(conf, "nats.subjects", "");
  assert_int_equal(conf->nats_subjects.n, 0);
  assert_get(conf, "nats.subjects", "");
  assert_set(conf, "rules.files", "one.lua");
  assert_get(conf, "rules.files", "one.lua");
  assert_set_fails(conf, "jetstream.subjects", "a,,b",
                   "'jetstream.subjects' entries must not be empty");
  assert_set_fails(conf, "jetstream.subjects", "a,", "'jetstream.subjects'");
  assert_get(conf, "jetstream.subjects", "events.>");
  natka_config_free(conf);
}

static void set_get_map(void **state) {
  (void)state;
  char buf[64];
  natka_config *conf = new_config();
  assert_set(conf, "kafka.properties.linger.ms", "3");
  assert_set(conf, "kafka.properties.acks", "all");
  assert_set(conf, "kafka.properties.acks", "1");
  assert_get(conf, "kafka.properties.acks", "1");
  assert_get(conf, "kafka.properties.linger.ms", "3");
  assert_get(conf, "kafka.properties", "acks=1,linger.ms=3");
  assert_int_equal(
      natka_config_get(conf, "kafka.properties.nope", buf, sizeof(buf)),
      NATKA_ECONFIG);
  assert_set_fails(conf, "kafka.properties.", "x",
                   "'kafka.properties' keys must not be empty");
  assert_set_fails(conf, "kafka.properties", "acks=all", "kafka.properties");
  assert_set(conf, "kafka.properties", "");
  assert_get(conf, "kafka.properties", "");
  natka_config_free(conf);
}

static void set_get_enum_and_level(void **state) {
  (void)state;
  static const char *const levels[] = {"error", "warn", "info", "debug"};
  natka_config *conf = new_config();
  for (size_t i = 0; i < 4; i++) {
    assert_set(conf, "log.level", levels[i]);
    assert_get(conf, "log.level", levels[i]);
    assert_int_equal(conf->log_level, (natka_log_level)i);
  }
  assert_set_fails(conf, "log.level", "trace",
                   "'log.level' must be one of error, warn, info, debug");
  assert_set(conf, "kafka.compression", "lz4");
  assert_get(conf, "kafka.compression", "lz4");
  assert_set_fails(conf, "kafka.compression", "LZ4", "'kafka.compression'");
  natka_config_free(conf);
}

static void set_unknown_key_suggests(void **state) {
  (void)state;
  natka_config *conf = new_config();
  assert_set_fails(conf, "kafka.lingr_ms", "5",
                   "unknown key 'kafka.lingr_ms' (did you mean "
                   "'kafka.linger_ms'?)");
  assert_set_fails(conf, "kafka", "5", "unknown key 'kafka'");
  char err[64];
  assert_int_equal(natka_config_set(conf, NULL, "1", err, sizeof(err)),
                   NATKA_EINVAL);
  assert_int_equal(
      natka_config_set(conf, "kafka.linger_ms", NULL, err, sizeof(err)),
      NATKA_EINVAL);
  natka_config_free(conf);
}

static void get_errors(void **state) {
  (void)state;
  char buf[8];
  natka_config *conf = new_config();
  assert_int_equal(natka_config_get(conf, "kafka.nope", buf, sizeof(buf)),
                   NATKA_ECONFIG);
  assert_int_equal(natka_config_get(conf, "nats.url", buf, sizeof(buf)),
                   NATKA_EINVAL);
  assert_int_equal(natka_config_get(conf, "nats.url", buf, 0), NATKA_EINVAL);
  assert_int_equal(natka_config_get(conf, "kafka.linger_ms", buf, 2), 0);
  assert_string_equal(buf, "5");
  natka_config_free(conf);
}

static void every_key_gets_and_sets_back(void **state) {
  (void)state;
  char buf[512];
  natka_config *conf = new_config();
  for (size_t i = 0; i < NKEYS; i++) {
    assert_int_equal(natka_config_get(conf, all_keys[i], buf, sizeof(buf)), 0);
    assert_set(conf, all_keys[i], buf);
    assert_get(conf, all_keys[i], buf);
  }
  natka_config_free(conf);
}

static void logger_is_kept_across_loads(void **state) {
  (void)state;
  char err[256];
  int tag = 0;
  natka_config *conf = new_config();
  natka_config_set_logger(conf, NULL, &tag);
  assert_int_equal(
      natka_config_load_string(conf, "return {}", NULL, err, sizeof(err)), 0);
  assert_ptr_equal(conf->log_data, &tag);
  natka_config_set_logger(NULL, NULL, NULL);
  natka_config_free(conf);
}

/* --- Reference ------------------------------------------------------------ */

static void reference_lists_every_key(void **state) {
  (void)state;
  char *text = NULL, want[128];
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  assert_non_null(f);
  natka_config_write_reference(f);
  fclose(f);
  for (size_t i = 0; i < NKEYS; i++) {
    snprintf(want, sizeof(want), "| `%s` |", all_keys[i]);
    if (strstr(text, want) == NULL)
      fail_msg("reference lacks %s", all_keys[i]);
  }
  assert_non_null(strstr(text, "## kafka\n"));
  assert_non_null(strstr(text, "| key | type | default | meaning |"));
  assert_non_null(
      strstr(text, "| `kafka.linger_ms` | integer, 0..900000 | `5` |"));
  assert_non_null(strstr(text, "| `jetstream.subjects` | list of strings | "
                               "`{\"events.>\"}` |"));
  assert_non_null(strstr(text, "one of none, gzip, snappy, lz4, zstd"));
  assert_non_null(strstr(text, "`\"nats://127.0.0.1:4222\"`"));
  free(text);
  natka_config_write_reference(NULL);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(defaults),
    cmocka_unit_test(new_and_free_reject_null),
    cmocka_unit_test(load_every_type),
    cmocka_unit_test(load_file_ok_and_missing),
    cmocka_unit_test(load_file_syntax_error_names_path),
    cmocka_unit_test(syntax_error_has_line),
    cmocka_unit_test(runtime_error_has_line),
    cmocka_unit_test(must_return_table),
    cmocka_unit_test(binary_chunk_rejected),
    cmocka_unit_test(unknown_top_level_key),
    cmocka_unit_test(unknown_nested_key),
    cmocka_unit_test(section_must_be_table),
    cmocka_unit_test(wrong_type_string),
    cmocka_unit_test(wrong_type_integer),
    cmocka_unit_test(wrong_type_boolean),
    cmocka_unit_test(wrong_type_list),
    cmocka_unit_test(wrong_type_map),
    cmocka_unit_test(wrong_type_enum_and_level),
    cmocka_unit_test(out_of_range_low),
    cmocka_unit_test(out_of_range_high),
    cmocka_unit_test(max_deliver_minus_one),
    cmocka_unit_test(queue_low_must_be_below_high),
    cmocka_unit_test(bad_topic_name),
    cmocka_unit_test(bad_stream_name),
    cmocka_unit_test(empty_string_forbidden),
    cmocka_unit_test(default_topic_not_reserved),
    cmocka_unit_test(allow_lists_match),
    cmocka_unit_test(jetstream_subjects_needed_to_create),
    cmocka_unit_test(infinite_loop_stops),
    cmocka_unit_test(no_io_os_require_load),
    cmocka_unit_test(env_reads_environment),
    cmocka_unit_test(failed_load_changes_nothing),
    cmocka_unit_test(map_in_config_replaces_map),
    cmocka_unit_test(null_chunk_name_is_config),
    cmocka_unit_test(small_error_buffer),
    cmocka_unit_test(set_get_string),
    cmocka_unit_test(set_get_integer),
    cmocka_unit_test(set_get_boolean),
    cmocka_unit_test(set_get_list),
    cmocka_unit_test(set_get_map),
    cmocka_unit_test(set_get_enum_and_level),
    cmocka_unit_test(set_unknown_key_suggests),
    cmocka_unit_test(get_errors),
    cmocka_unit_test(every_key_gets_and_sets_back),
    cmocka_unit_test(logger_is_kept_across_loads),
    cmocka_unit_test(reference_lists_every_key),
};

NATKA_TEST_MAIN(tests)
