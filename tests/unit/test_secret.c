/* Unit tests of secrets and transport security: reading secrets from files
 * and the environment, hiding them in URLs and librdkafka errors, the keys
 * that refer to them, deriving an NKey's public key, and what `natka check`
 * refuses about TLS and credentials (core/base/secret.c, nkey.c, nats_conn.c,
 * kafka_conf.c). */
#include "runner.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_int.h"
#include "kafka_conf.h"
#include "nats_conn.h"
#include "natka/error.h"
#include "nkey.h"
#include "secret.h"

#define SECRET "Hunter2-correct-horse"

/* A temporary file holding text; its path goes to path (PATH_MAX). */
static void temp_file(char *path, const char *text) {
  snprintf(path, PATH_MAX, "/tmp/natka-unit-secret-XXXXXX");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
}

static natka_config *new_config(void) {
  natka_config *c = NULL;
  assert_int_equal(natka_config_new(&c), 0);
  return c;
}

static void set(natka_config *c, const char *key, const char *value) {
  char err[512];
  if (natka_config_set(c, key, value, err, sizeof(err)) != 0)
    fail_msg("set %s=%s: %s", key, value, err);
}

static void redacts(const char *url, const char *want) {
  char out[256];
  assert_string_equal(natka__url_redact(url, out, sizeof(out)), want);
}

static void url_passwords_and_tokens_are_hidden(void **state) {
  (void)state;
  redacts("nats://127.0.0.1:4222", "nats://127.0.0.1:4222");
  redacts("nats://natka:" SECRET "@h:4222", "nats://natka:***@h:4222");
  redacts("tls://" SECRET "@h:4222", "tls://***@h:4222");
  redacts("natka:" SECRET "@h:4222", "natka:***@h:4222"); /* no scheme */
  redacts("nats://u:p@a:1, nats://b:2,nats://t@c:3/x@y",
          "nats://u:***@a:1, nats://b:2,nats://***@c:3/x@y");
  redacts("nats://u:p@ss@h", "nats://u:***@h"); /* the last @ ends it */
  redacts("", "");
  char small[16];
  natka__url_redact("nats://u:" SECRET "@host", small, sizeof(small));
  assert_null(strstr(small, "Hunter2"));
  assert_int_equal(strlen(small), sizeof(small) - 1);
}

static void secret_from_file_drops_line_breaks(void **state) {
  (void)state;
  char path[PATH_MAX], ref[PATH_MAX + 8], err[512], *s = NULL;
  temp_file(path, SECRET "\r\n\n");
  snprintf(ref, sizeof(ref), "file:%s", path);
  assert_int_equal(
      natka__secret_read("nats.password", ref, &s, err, sizeof(err)), 0);
  assert_string_equal(s, SECRET);
  natka__secret_free(s);
  unlink(path);
}

static void secret_from_environment(void **state) {
  (void)state;
  char err[512], *s = NULL;
  setenv("NATKA_UNIT_SECRET", SECRET, 1);
  assert_int_equal(natka__secret_read("kafka.sasl.password",
                                      "env:NATKA_UNIT_SECRET", &s, err,
                                      sizeof(err)),
                   0);
  assert_string_equal(s, SECRET);
  natka__secret_free(s);
  unsetenv("NATKA_UNIT_SECRET");
  assert_int_equal(natka__secret_read("kafka.sasl.password",
                                      "env:NATKA_UNIT_SECRET", &s, err,
                                      sizeof(err)),
                   NATKA_ECONFIG);
  assert_null(s);
  assert_non_null(strstr(err, "kafka.sasl.password"));
  assert_non_null(strstr(err, "NATKA_UNIT_SECRET is not set"));
}

static void secret_errors_name_key_and_file_only(void **state) {
  (void)state;
  char path[PATH_MAX], ref[PATH_MAX + 8], err[512], *s = NULL;
  assert_int_equal(natka__secret_read("nats.token", "file:/no/such/token", &s,
                                      err, sizeof(err)),
                   NATKA_ECONFIG);
  assert_string_equal(
      err, "config: 'nats.token': cannot read '/no/such/token': No such file "
           "or directory");
  temp_file(path, "\n");
  snprintf(ref, sizeof(ref), "file:%s", path);
  assert_int_equal(natka__secret_read("nats.token", ref, &s, err, sizeof(err)),
                   NATKA_ECONFIG);
  assert_non_null(strstr(err, "is empty"));
  unlink(path);
  assert_int_equal(
      natka__secret_read("nats.token", SECRET, &s, err, sizeof(err)),
      NATKA_ECONFIG);
  assert_null(strstr(err, SECRET));
}

/* A secret written into the configuration is refused, and not repeated. */
static void config_refuses_literal_secrets(void **state) {
  (void)state;
  static const char *const keys[] = {"nats.password", "nats.token",
                                     "kafka.sasl.password",
                                     "kafka.tls.key_password"};
  char err[512];
  natka_config *c = new_config();
  for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
    assert_int_equal(natka_config_set(c, keys[i], SECRET, err, sizeof(err)),
                     NATKA_ECONFIG);
    assert_non_null(strstr(err, keys[i]));
    assert_non_null(strstr(err, "file:PATH"));
    assert_null(strstr(err, SECRET));
    set(c, keys[i], "env:SOME_VARIABLE");
    set(c, keys[i], "file:/run/secrets/x");
    set(c, keys[i], "");
  }
  assert_int_equal(natka_config_load_string(
                       c, "return { nats = { password = '" SECRET "' } }", NULL,
                       err, sizeof(err)),
                   NATKA_ECONFIG);
  assert_null(strstr(err, SECRET));
  natka_config_free(c);
}

/* The user seed and public key of nats.c's and nats.go's tests. */
static void nkey_public_key_from_seed(void **state) {
  (void)state;
  char path[PATH_MAX], pub[NATKA__NKEY_PUBLIC_LEN + 1], err[512];
  temp_file(path,
            "SUAMK2FG4MI6UE3ACF3FK3OIQBCEIEZV7NSWFFEW63UXMRLFM2XLAXK4GY\n");
  assert_int_equal(natka__nkey_public_from_file("nats.nkey_seed_file", path,
                                                pub, err, sizeof(err)),
                   0);
  assert_string_equal(
      pub, "UAT6BWCSCWLUKJT6K6MBJJOEOTXZ5AJDOYKNEVRFC7VNO6OA43N4TRNO");
  unlink(path);
  /* In a credentials file, between the decorations. */
  temp_file(path, "-----BEGIN NATS USER JWT-----\neyJ0eXAiOiJKV1Qi.x.y\n"
                  "------END NATS USER JWT------\n\n"
                  "-----BEGIN USER NKEY SEED-----\n"
                  "SUAMK2FG4MI6UE3ACF3FK3OIQBCEIEZV7NSWFFEW63UXMRLFM2XLAXK4GY\n"
                  "------END USER NKEY SEED------\n");
  assert_int_equal(natka__nkey_public_from_file("nats.creds_file", path, pub,
                                                err, sizeof(err)),
                   0);
  assert_string_equal(
      pub, "UAT6BWCSCWLUKJT6K6MBJJOEOTXZ5AJDOYKNEVRFC7VNO6OA43N4TRNO");
  unlink(path);
  /* One character changed: the checksum catches it, nothing is echoed. */
  temp_file(path,
            "SUAMK2FG4MI6UE4ACF3FK3OIQBCEIEZV7NSWFFEW63UXMRLFM2XLAXK4GY\n");
  assert_int_equal(natka__nkey_public_from_file("nats.nkey_seed_file", path,
                                                pub, err, sizeof(err)),
                   NATKA_ECONFIG);
  assert_non_null(strstr(err, "checksum"));
  assert_null(strstr(err, "SUAMK2"));
  unlink(path);
  /* An account seed is not a user's. */
  temp_file(path,
            "SAAASUPRY3ONU4GJR7J5RUVYRUFZXG56F4WEXELLLORQ65AEPSMIFTOJGE\n");
  assert_int_equal(natka__nkey_public_from_file("nats.nkey_seed_file", path,
                                                pub, err, sizeof(err)),
                   NATKA_ECONFIG);
  assert_non_null(strstr(err, "not a user's"));
  unlink(path);
}

/* A misspelt property is unknown to librdkafka; its value may be the
 * password it was meant for. */
static void kafka_property_errors_keep_values_out(void **state) {
  (void)state;
  char err[512];
  rd_kafka_conf_t *kc = rd_kafka_conf_new();
  assert_int_equal(
      natka__kafka_conf_set(kc, "sasl.pasword", SECRET, err, sizeof(err)),
      NATKA_ECONFIG);
  assert_non_null(strstr(err, "sasl.pasword"));
  assert_null(strstr(err, SECRET));
  /* A value librdkafka refuses is shown when it cannot be a secret. */
  assert_int_equal(
      natka__kafka_conf_set(kc, "compression.codec", "lz5", err, sizeof(err)),
      NATKA_ECONFIG);
  assert_non_null(strstr(err, "lz5"));
  rd_kafka_conf_destroy(kc);
  assert_true(natka__kafka_secret_property("sasl.password"));
  assert_true(natka__kafka_secret_property("ssl.key.password"));
  assert_true(natka__kafka_secret_property("ssl.key.pem"));
  assert_true(natka__kafka_secret_property("sasl.oauthbearer.client.secret"));
  assert_false(natka__kafka_secret_property("sasl.username"));
}

/* `natka check`'s NATS part: every message names the key (and the file). */
static void nats_check_names_key_and_file(void **state) {
  (void)state;
  char err[512], path[PATH_MAX];
  natka_config *c = new_config();
  assert_int_equal(natka__nats_check(c, err, sizeof(err)), 0);

  set(c, "nats.tls.ca_file", "/no/such/ca.pem");
  assert_int_equal(natka__nats_check(c, err, sizeof(err)), NATKA_ECONFIG);
  assert_string_equal(err, "config: 'nats.tls.ca_file': cannot read "
                           "'/no/such/ca.pem': No such file or directory");
  set(c, "nats.tls.ca_file", "/tmp");
  assert_int_equal(natka__nats_check(c, err, sizeof(err)), NATKA_ECONFIG);
  assert_non_null(strstr(err, "is not a regular file"));
  temp_file(path, "not a certificate\n");
  set(c, "nats.tls.ca_file", path);
  assert_int_equal(natka__nats_check(c, err, sizeof(err)), NATKA_ECONFIG);
  assert_non_null(strstr(err, "'nats.tls.ca_file'"));
  set(c, "nats.tls.ca_file", "");

  set(c, "nats.tls.cert_file", path);
  assert_int_equal(natka__nats_check(c, err, sizeof(err)), NATKA_ECONFIG);
  assert_non_null(strstr(err, "go together"));
  set(c, "nats.tls.cert_file", "");

  set(c, "nats.user", "natka");
  assert_int_equal(natka__nats_check(c, err, sizeof(err)), NATKA_ECONFIG);
  assert_non_null(strstr(err, "'nats.password' is not"));
  set(c, "nats.password", "env:NATKA_UNIT_NO_SUCH_VARIABLE");
  assert_int_equal(natka__nats_check(c, err, sizeof(err)), NATKA_ECONFIG);
  assert_non_null(strstr(err, "NATKA_UNIT_NO_SUCH_VARIABLE is not set"));
  set(c, "nats.token", "env:NATKA_UNIT_NO_SUCH_VARIABLE");
  assert_int_equal(natka__nats_check(c, err, sizeof(err)), NATKA_ECONFIG);
  assert_non_null(strstr(err, "two ways of logging in"));
  set(c, "nats.token", "");
  set(c, "nats.user", "");
  set(c, "nats.password", "");

  set(c, "nats.nkey_seed_file", path);
  assert_int_equal(natka__nats_check(c, err, sizeof(err)), NATKA_ECONFIG);
  assert_non_null(strstr(err, "does not hold an NKey seed"));
  set(c, "nats.nkey_seed_file", "");

  /* One name checked against every server: several hosts need one. */
  set(c, "nats.url", "tls://a.example:4222,tls://b.example:4222");
  assert_int_equal(natka__nats_check(c, err, sizeof(err)), NATKA_ECONFIG);
  assert_non_null(strstr(err, "nats.tls.server_name"));
  set(c, "nats.tls.verify", "false");
  assert_int_equal(natka__nats_check(c, err, sizeof(err)), 0);
  unlink(path);
  natka_config_free(c);
}

static void kafka_check_needs_matching_protocol(void **state) {
  (void)state;
  char err[512], path[PATH_MAX];
  natka_config *c = new_config();
  set(c, "kafka.brokers", "127.0.0.1:9092");
  assert_int_equal(natka__kafka_conf_check(c, err, sizeof(err)), 0);
  set(c, "kafka.sasl.username", "natka");
  assert_int_equal(natka__kafka_conf_check(c, err, sizeof(err)), NATKA_ECONFIG);
  assert_non_null(strstr(err, "use sasl_ssl"));
  set(c, "kafka.security.protocol", "sasl_ssl");
  assert_int_equal(natka__kafka_conf_check(c, err, sizeof(err)), NATKA_ECONFIG);
  assert_non_null(strstr(err, "go together"));
  temp_file(path, SECRET "\n");
  char ref[PATH_MAX + 8];
  snprintf(ref, sizeof(ref), "file:%s", path);
  set(c, "kafka.sasl.password", ref);
  assert_int_equal(natka__kafka_conf_check(c, err, sizeof(err)), 0);
  set(c, "kafka.tls.ca_file", "/no/such/ca.pem");
  assert_int_equal(natka__kafka_conf_check(c, err, sizeof(err)), NATKA_ECONFIG);
  assert_string_equal(err, "config: 'kafka.tls.ca_file': cannot read "
                           "'/no/such/ca.pem': No such file or directory");
  set(c, "kafka.tls.ca_file", "");
  set(c, "kafka.tls.key_file", path);
  assert_int_equal(natka__kafka_conf_check(c, err, sizeof(err)), NATKA_ECONFIG);
  assert_non_null(strstr(err, "go together"));
  set(c, "kafka.tls.key_file", "");

  /* The password reaches librdkafka, and only there. */
  rd_kafka_conf_t *kc = rd_kafka_conf_new();
  char value[256];
  size_t len = sizeof(value);
  assert_int_equal(natka__kafka_conf_apply(c, kc, 0, err, sizeof(err)), 0);
  assert_int_equal(rd_kafka_conf_get(kc, "sasl.password", value, &len),
                   RD_KAFKA_CONF_OK);
  assert_string_equal(value, SECRET);
  len = sizeof(value);
  assert_int_equal(rd_kafka_conf_get(kc, "sasl.mechanisms", value, &len),
                   RD_KAFKA_CONF_OK);
  assert_string_equal(value, "SCRAM-SHA-512");
  rd_kafka_conf_destroy(kc);

  set(c, "kafka.security.protocol", "ssl");
  set(c, "kafka.sasl.username", "");
  set(c, "kafka.sasl.password", "");
  set(c, "kafka.brokers", "embedded");
  assert_int_equal(natka__kafka_conf_check(c, err, sizeof(err)), NATKA_ECONFIG);
  assert_non_null(strstr(err, "embedded"));
  unlink(path);
  natka_config_free(c);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(url_passwords_and_tokens_are_hidden),
    cmocka_unit_test(secret_from_file_drops_line_breaks),
    cmocka_unit_test(secret_from_environment),
    cmocka_unit_test(secret_errors_name_key_and_file_only),
    cmocka_unit_test(config_refuses_literal_secrets),
    cmocka_unit_test(nkey_public_key_from_seed),
    cmocka_unit_test(kafka_property_errors_keep_values_out),
    cmocka_unit_test(nats_check_names_key_and_file),
    cmocka_unit_test(kafka_check_needs_matching_protocol),
};

NATKA_TEST_MAIN(tests)
