#include "kafka_conf.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "natka/error.h"
#include "secret.h"
#include "util.h"

int natka__kafka_secret_property(const char *key) {
  static const char *const exact[] = {"ssl.key.pem", "ssl_key",
                                      "sasl.oauthbearer.config"};
  for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
    if (strcmp(key, exact[i]) == 0)
      return 1;
  return strstr(key, "password") != NULL || strstr(key, "secret") != NULL;
}

int natka__kafka_conf_set(rd_kafka_conf_t *kc, const char *key,
                          const char *value, char *err, size_t errlen) {
  char why[512];
  if (rd_kafka_conf_set(kc, key, value, why, sizeof(why)) == RD_KAFKA_CONF_OK)
    return 0;
  /* librdkafka's reason quotes an invalid value ("Invalid value "x" for
   * configuration property ..."). */
  if (natka__kafka_secret_property(key) && *value != '\0' &&
      strstr(why, value) != NULL)
    snprintf(why, sizeof(why), "invalid value (not shown: it is a secret)");
  return natka__errf(err, errlen, NATKA_ECONFIG, "kafka: property '%s': %s",
                     key, why);
}

/* security.protocol in effect: kafka.properties may still set it. */
static const char *protocol(const natka_config *c) {
  const natka__strmap *m = &c->kafka_props;
  for (size_t i = 0; i < m->n; i++)
    if (strcmp(m->keys[i], "security.protocol") == 0)
      return m->values[i];
  return c->kafka_security_protocol;
}

static int is_protocol(const natka_config *c, const char *a, const char *b) {
  const char *p = protocol(c);
  return strcasecmp(p, a) == 0 || (b != NULL && strcasecmp(p, b) == 0);
}

/* One typed key, set when it has a value. */
static int set_if(rd_kafka_conf_t *kc, const char *prop, const char *value,
                  char *err, size_t errlen) {
  return value[0] == '\0' ? 0
                          : natka__kafka_conf_set(kc, prop, value, err, errlen);
}

static int set_secret(rd_kafka_conf_t *kc, const char *prop, const char *key,
                      const char *ref, char *err, size_t errlen) {
  char *secret = NULL;
  if (ref[0] == '\0')
    return 0;
  int rc = natka__secret_read(key, ref, &secret, err, errlen);
  if (rc == 0)
    rc = natka__kafka_conf_set(kc, prop, secret, err, errlen);
  natka__secret_free(secret);
  return rc;
}

int natka__kafka_conf_apply(const natka_config *c, rd_kafka_conf_t *kc,
                            unsigned flags, char *err, size_t errlen) {
  int rc = 0;
  if (strcmp(c->kafka_security_protocol, "plaintext") != 0) {
    rc = natka__kafka_conf_set(kc, "security.protocol",
                               c->kafka_security_protocol, err, errlen);
    if (rc == 0 && strncmp(c->kafka_security_protocol, "sasl_", 5) == 0)
      rc = natka__kafka_conf_set(kc, "sasl.mechanisms", c->kafka_sasl_mechanism,
                                 err, errlen);
  }
  if (rc == 0)
    rc = set_if(kc, "sasl.username", c->kafka_sasl_username, err, errlen);
  if (rc == 0)
    rc = set_secret(kc, "sasl.password", "kafka.sasl.password",
                    c->kafka_sasl_password, err, errlen);
  if (rc == 0)
    rc = set_if(kc, "ssl.ca.location", c->kafka_tls_ca_file, err, errlen);
  if (rc == 0)
    rc = set_if(kc, "ssl.certificate.location", c->kafka_tls_cert_file, err,
                errlen);
  if (rc == 0)
    rc = set_if(kc, "ssl.key.location", c->kafka_tls_key_file, err, errlen);
  if (rc == 0)
    rc = set_secret(kc, "ssl.key.password", "kafka.tls.key_password",
                    c->kafka_tls_key_password, err, errlen);
  if (rc == 0 && !c->kafka_tls_verify)
    rc = natka__kafka_conf_set(kc, "enable.ssl.certificate.verification",
                               "false", err, errlen);
  if (rc == 0)
    rc = natka__kafka_conf_set(kc, "ssl.endpoint.identification.algorithm",
                               c->kafka_tls_verify ? "https" : "none", err,
                               errlen);
  for (size_t i = 0; rc == 0 && i < c->kafka_props.n; i++) {
    const char *k = c->kafka_props.keys[i];
    if ((flags & NATKA__KAFKA_CONSUMER) && strcmp(k, "transactional.id") == 0)
      continue;
    rc = natka__kafka_conf_set(kc, k, c->kafka_props.values[i], err, errlen);
  }
  return rc;
}

const char *natka__kafka_conf_warning(const natka_config *c) {
  if (is_protocol(c, "sasl_ssl", "sasl_plaintext") &&
      strncmp(c->kafka_sasl_mechanism, "SCRAM", 5) == 0 &&
      rd_kafka_version() < 0x020601ff)
    return "SCRAM with this librdkafka (before 2.6.1) fails against Kafka 4 "
           "brokers (\"invalid credentials\"): use a newer librdkafka, or "
           "kafka.sasl.mechanism = \"PLAIN\" (over sasl_ssl only)";
  return NULL;
}

int natka__kafka_conf_check(const natka_config *c, char *err, size_t errlen) {
  static const char *const files[] = {
      "kafka.tls.ca_file", "kafka.tls.cert_file", "kafka.tls.key_file"};
  const char *const paths[] = {c->kafka_tls_ca_file, c->kafka_tls_cert_file,
                               c->kafka_tls_key_file};
  int sasl = is_protocol(c, "sasl_ssl", "sasl_plaintext");
  int tls = is_protocol(c, "ssl", "sasl_ssl");
  char *secret = NULL;
  int rc;
  if (strcmp(c->kafka_brokers, "embedded") == 0 &&
      !is_protocol(c, "plaintext", NULL))
    return natka__errf(err, errlen, NATKA_ECONFIG,
                       "config: the embedded cluster speaks plaintext only; "
                       "'kafka.security.protocol' is '%s'",
                       protocol(c));
  if (sasl &&
      (c->kafka_sasl_username[0] == '\0' ||
       c->kafka_sasl_password[0] == '\0') &&
      !(c->kafka_sasl_username[0] == '\0' && c->kafka_sasl_password[0] == '\0'))
    return natka__errf(err, errlen, NATKA_ECONFIG,
                       "config: 'kafka.sasl.username' and "
                       "'kafka.sasl.password' go together: set both");
  if (!sasl &&
      (c->kafka_sasl_username[0] != '\0' || c->kafka_sasl_password[0] != '\0'))
    return natka__errf(err, errlen, NATKA_ECONFIG,
                       "config: 'kafka.sasl.%s' is set but "
                       "'kafka.security.protocol' is '%s', which does not log "
                       "in: use sasl_ssl",
                       c->kafka_sasl_username[0] ? "username" : "password",
                       protocol(c));
  for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
    if (paths[i][0] == '\0')
      continue;
    if (!tls)
      return natka__errf(err, errlen, NATKA_ECONFIG,
                         "config: '%s' is set but 'kafka.security.protocol' "
                         "is '%s', which has no TLS: use ssl or sasl_ssl",
                         files[i], protocol(c));
    if ((rc = natka__file_check(files[i], paths[i], err, errlen)) != 0)
      return rc;
  }
  if ((c->kafka_tls_cert_file[0] == '\0') != (c->kafka_tls_key_file[0] == '\0'))
    return natka__errf(err, errlen, NATKA_ECONFIG,
                       "config: 'kafka.tls.cert_file' and "
                       "'kafka.tls.key_file' go together: set both or "
                       "neither");
  if (c->kafka_tls_key_password[0] != '\0' && c->kafka_tls_key_file[0] == '\0')
    return natka__errf(err, errlen, NATKA_ECONFIG,
                       "config: 'kafka.tls.key_password' is set but "
                       "'kafka.tls.key_file' is not");
  if (c->kafka_sasl_password[0] != '\0' &&
      (rc = natka__secret_read("kafka.sasl.password", c->kafka_sasl_password,
                               &secret, err, errlen)) != 0)
    return rc;
  natka__secret_free(secret);
  secret = NULL;
  if (c->kafka_tls_key_password[0] != '\0' &&
      (rc = natka__secret_read("kafka.tls.key_password",
                               c->kafka_tls_key_password, &secret, err,
                               errlen)) != 0)
    return rc;
  natka__secret_free(secret);
  return 0;
}
