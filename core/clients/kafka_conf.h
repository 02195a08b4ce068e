/*
 * The librdkafka configuration every Kafka client of natka shares: the
 * producer (sink_kafka.c), the checkpoint reader (checkpoint.c) and the
 * consumer of `natka dlq replay` connect to the cluster the same way.
 *
 * The typed keys map onto librdkafka's properties:
 *
 *   kafka.security.protocol   security.protocol
 *   kafka.sasl.mechanism      sasl.mechanisms
 *   kafka.sasl.username       sasl.username
 *   kafka.sasl.password       sasl.password (the secret it refers to)
 *   kafka.tls.ca_file         ssl.ca.location ("": librdkafka finds the
 *                             system's CA certificates)
 *   kafka.tls.cert_file       ssl.certificate.location
 *   kafka.tls.key_file        ssl.key.location
 *   kafka.tls.key_password    ssl.key.password (the secret it refers to)
 *   kafka.tls.verify = false  enable.ssl.certificate.verification = false,
 *                             ssl.endpoint.identification.algorithm = none
 *
 * and kafka.properties comes after them, raw, so it can add or override
 * anything (README: applied last).
 *
 * Errors about a property name it; its value only when it cannot be a
 * secret. A misspelt key ("sasl.pasword") is unknown to librdkafka, so the
 * value it was given is never repeated for an unknown key either.
 */
#ifndef NATKA_KAFKA_CONF_H
#define NATKA_KAFKA_CONF_H

#include <stddef.h>

#include <librdkafka/rdkafka.h>

#include "config_int.h"

/* A consumer: kafka.properties that only natka's producer may take
 * (transactional.id) are left out. */
#define NATKA__KAFKA_CONSUMER 1u

/* rd_kafka_conf_set() with natka's message on failure: NATKA_ECONFIG,
 * "kafka: property 'key': <librdkafka's reason>" with the value hidden
 * from that reason when the property holds secrets. */
int natka__kafka_conf_set(rd_kafka_conf_t *kc, const char *key,
                          const char *value, char *err, size_t errlen);

/* Sets the typed security keys, then kafka.properties, on kc. Secrets are
 * read now (librdkafka keeps its own copy). 0, NATKA_ENOMEM or
 * NATKA_ECONFIG naming the key or property. */
int natka__kafka_conf_apply(const natka_config *c, rd_kafka_conf_t *kc,
                            unsigned flags, char *err, size_t errlen);

/* What natka__kafka_conf_apply() would refuse and what librdkafka would
 * fail on only once connected, found before anything starts: keys that go
 * together or need a protocol, files that cannot be read, secrets that are
 * not there. 0 or NATKA_ECONFIG / ENOMEM. */
int natka__kafka_conf_check(const natka_config *c, char *err, size_t errlen);

/* A warning about the configuration that natka cannot refuse but should
 * not keep quiet about, or NULL. Today: SCRAM with a librdkafka older than
 * 2.6.1, which Kafka 4 brokers refuse (the client repeats the server's
 * nonce; librdkafka issue 4895). */
const char *natka__kafka_conf_warning(const natka_config *c);

/* Whether a librdkafka property holds secrets (sasl.password,
 * ssl.key.password, ssl.key.pem, ...). */
int natka__kafka_secret_property(const char *key);

#endif
