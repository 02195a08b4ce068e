/*
 * natka configuration: one schema table, and the code that walks it.
 *
 * Every key is one row of `schema` below: its dotted name, type, default
 * (written as natka_config_set() text), range, extra checks, where it lives
 * in struct natka_config and a one-line meaning. Defaults, loading a Lua
 * config (evaluated by config_lua.c), natka_config_set/get, freeing and the
 * Markdown reference all walk that table, so adding a key is adding a row
 * (and a struct field).
 *
 * Every change is made on a scratch copy of the configuration and moved into
 * place only once the whole change, cross-key checks included, succeeded: a
 * failed load or set leaves the configuration exactly as it was.
 */
#include "config_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "natka/error.h"
#include "secret.h"
#include "util.h"

#define KEY_MAX NATKA__CONFIG_KEY_MAX

/* Checks beyond type and range. */
enum {
  F_NONEMPTY = 1 << 0, /* "" rejected; for lists, "" entries rejected */
  F_JSNAME = 1 << 1,   /* JetStream stream / consumer name */
  F_TOPIC = 1 << 2,    /* legal Kafka topic name (when non-empty) */
  F_MINUS1 = 1 << 3,   /* integers: -1 allowed besides min..max */
  F_BUCKET = 1 << 4,   /* KV bucket name (when non-empty) */
  F_SECRET = 1 << 5    /* "file:PATH" or "env:NAME" (when non-empty) */
};

typedef natka__config_row row;

#define OFF(f) offsetof(natka_config, f)
#define STR(k, f, fl, d, doc)                                                  \
  { k, NATKA__CONFIG_STR, fl, d, 0, 0, NULL, OFF(f), doc }
#define INT(k, f, fl, d, lo, hi, doc)                                          \
  { k, NATKA__CONFIG_INT, fl, d, lo, hi, NULL, OFF(f), doc }
#define BOOL(k, f, d, doc)                                                     \
  { k, NATKA__CONFIG_BOOL, 0, d, 0, 0, NULL, OFF(f), doc }
#define LIST(k, f, fl, d, doc)                                                 \
  { k, NATKA__CONFIG_LIST, fl, d, 0, 0, NULL, OFF(f), doc }
#define MAP(k, f, doc)                                                         \
  { k, NATKA__CONFIG_MAP, 0, "", 0, 0, NULL, OFF(f), doc }
#define ENUM(k, t, f, d, a, doc)                                               \
  { k, t, 0, d, 0, 0, a, OFF(f), doc }

static const row schema[] = {
    STR("nats.url", nats_url, F_NONEMPTY, "nats://127.0.0.1:4222",
        "NATS server URL(s), comma-separated"),
    STR("nats.name", nats_name, 0, "natka",
        "connection name shown by the server"),
    INT("nats.connect_timeout_ms", nats_connect_timeout_ms, 0, "2000", 100,
        600000, "timeout of one connection attempt"),
    INT("nats.reconnect_wait_ms", nats_reconnect_wait_ms, 0, "1000", 10, 600000,
        "pause between reconnection attempts"),
    LIST("nats.subjects", nats_subjects, F_NONEMPTY, "",
         "core NATS subjects consumed at-most-once (no acks)"),
    STR("nats.tls.ca_file", nats_tls_ca_file, 0, "",
        "PEM file of the CA(s) the servers' certificates must chain to; \"\": "
        "the system's trust store. A tls:// URL or any nats.tls file makes "
        "TLS required"),
    STR("nats.tls.cert_file", nats_tls_cert_file, 0, "",
        "PEM certificate (chain) natka shows the servers (mutual TLS), with "
        "nats.tls.key_file"),
    STR("nats.tls.key_file", nats_tls_key_file, 0, "",
        "PEM private key of nats.tls.cert_file (unencrypted)"),
    STR("nats.tls.server_name", nats_tls_server_name, 0, "",
        "name (or address) the servers' certificates must carry; \"\": the "
        "host nats.url names"),
    BOOL("nats.tls.verify", nats_tls_verify, "true",
         "verify the servers' certificates; false: anyone on the path can "
         "pose as the server (tests only)"),
    STR("nats.creds_file", nats_creds_file, 0, "",
        "credentials file (user JWT and NKey seed) of a server with "
        "decentralized (JWT) authentication"),
    STR("nats.nkey_seed_file", nats_nkey_seed_file, 0, "",
        "file holding a user NKey seed (SU...): natka signs the server's "
        "challenge with it"),
    STR("nats.token", nats_token, F_SECRET, "",
        "authentication token, as \"file:PATH\" or \"env:NAME\" (never the "
        "token itself)"),
    STR("nats.user", nats_user, 0, "", "user name, with nats.password"),
    STR("nats.password", nats_password, F_SECRET, "",
        "password of nats.user, as \"file:PATH\" or \"env:NAME\" (never "
        "the password itself)"),

    LIST("ingress.subjects", ingress_subjects, F_NONEMPTY, "",
         "subjects taking NATS requests: each event is stored in JetStream, "
         "then answered with a receipt (id, stream, seq) or an error"),
    STR("ingress.queue", ingress_queue, F_NONEMPTY, "natka",
        "queue group of the ingress subscriptions (natka processes share the "
        "requests)"),
    STR("ingress.stream_prefix", ingress_stream_prefix, F_NONEMPTY,
        "events.ingress",
        "requests are stored on <prefix>.<request subject>, which the "
        "consumed stream must capture"),
    ENUM("ingress.store", NATKA__CONFIG_ENUM, ingress_store, "jetstream",
         "jetstream|spool",
         "where a request is stored before its receipt: JetStream, or "
         "natka's disk spool (spool.dir; busy replies once it is full)"),

    BOOL("jetstream.enabled", js_enabled, "true",
         "consume from a JetStream durable pull consumer"),
    STR("jetstream.stream", js_stream, F_NONEMPTY | F_JSNAME, "EVENTS",
        "stream to consume from"),
    LIST("jetstream.subjects", js_subjects, F_NONEMPTY, "events.>",
         "subjects of the stream, used when creating it"),
    STR("jetstream.durable", js_durable, F_NONEMPTY | F_JSNAME, "natka",
        "durable consumer name"),
    BOOL("jetstream.create_stream", js_create_stream, "true",
         "create the stream when it does not exist"),
    INT("jetstream.batch", js_batch, 0, "100", 1, 10000,
        "messages asked for per pull request"),
    INT("jetstream.fetch_expires_ms", js_fetch_expires_ms, 0, "500", 10, 60000,
        "how long one pull request waits for messages"),
    INT("jetstream.max_ack_pending", js_max_ack_pending, 0, "5000", 1, 1000000,
        "unacknowledged messages the server lets the consumer hold"),
    INT("jetstream.ack_wait_ms", js_ack_wait_ms, 0, "30000", 1000, 3600000,
        "redelivery when a message is not acked within this time"),
    INT("jetstream.nak_delay_ms", js_nak_delay_ms, 0, "1000", 0, 3600000,
        "redelivery delay after a failed delivery to Kafka"),
    INT("jetstream.max_deliver", js_max_deliver, F_MINUS1, "-1", 1, 1000000,
        "deliveries of one message before giving up; -1: unlimited"),

    STR("kafka.brokers", kafka_brokers, 0, "",
        "required: \"host:port,...\", or \"embedded\" for librdkafka's "
        "in-process mock cluster (demos and tests only: it keeps nothing)"),
    ENUM("kafka.security.protocol", NATKA__CONFIG_ENUM, kafka_security_protocol,
         "plaintext", "plaintext|ssl|sasl_ssl|sasl_plaintext",
         "ssl: TLS (with kafka.tls.cert_file: mutual TLS); sasl_ssl: TLS and "
         "a SASL login; sasl_plaintext: a SASL login without TLS"),
    ENUM("kafka.sasl.mechanism", NATKA__CONFIG_ENUM, kafka_sasl_mechanism,
         "SCRAM-SHA-512", "SCRAM-SHA-512|SCRAM-SHA-256|PLAIN",
         "SASL mechanism of the sasl_* protocols"),
    STR("kafka.sasl.username", kafka_sasl_username, 0, "",
        "SASL user name (sasl_* protocols)"),
    STR("kafka.sasl.password", kafka_sasl_password, F_SECRET, "",
        "SASL password, as \"file:PATH\" or \"env:NAME\" (never the "
        "password itself)"),
    STR("kafka.tls.ca_file", kafka_tls_ca_file, 0, "",
        "PEM file of the CA(s) the brokers' certificates must chain to; \"\": "
        "the system's trust store"),
    STR("kafka.tls.cert_file", kafka_tls_cert_file, 0, "",
        "PEM certificate (chain) natka shows the brokers (mutual TLS), with "
        "kafka.tls.key_file"),
    STR("kafka.tls.key_file", kafka_tls_key_file, 0, "",
        "PEM private key of kafka.tls.cert_file"),
    STR("kafka.tls.key_password", kafka_tls_key_password, F_SECRET, "",
        "password of an encrypted kafka.tls.key_file, as \"file:PATH\" or "
        "\"env:NAME\""),
    BOOL("kafka.tls.verify", kafka_tls_verify, "true",
         "verify the brokers' certificates and host names; false: anyone on "
         "the path can pose as a broker (tests only)"),
    INT("kafka.linger_ms", kafka_linger_ms, 0, "5", 0, 900000,
        "how long the producer waits to fill a batch"),
    INT("kafka.batch_size", kafka_batch_size, 0, "1000000", 1, 2147483647,
        "maximum bytes of one produce batch"),
    ENUM("kafka.compression", NATKA__CONFIG_ENUM, kafka_compression, "none",
         "none|gzip|snappy|lz4|zstd", "compression codec"),
    INT("kafka.message_timeout_ms", kafka_message_timeout_ms, 0, "300000", 1000,
        2147483647,
        "a message not confirmed by then fails (with transactions at most "
        "60000: a transaction's timeout)"),
    INT("kafka.queue_high", kafka_queue_high, 0, "50000", 1, 10000000,
        "sources pause above this many messages queued in the producer"),
    INT("kafka.queue_low", kafka_queue_low, 0, "10000", 0, 10000000,
        "sources resume below this many (less than kafka.queue_high)"),
    ENUM("kafka.transactions", NATKA__CONFIG_ENUM, kafka_transactions, "auto",
         "auto|on|off",
         "exactly-once: each batch is one Kafka transaction with the JetStream "
         "position in a checkpoint topic; auto: on unless the cluster lacks "
         "transactions (then idempotent only, with a warning)"),
    STR("kafka.transactional_id", kafka_transactional_id, 0, "",
        "transactional.id of this natka instance (fences its zombies), stable "
        "across its restarts; \"\": "
        "natka-<host>-<nats.name>-<stream>-<durable>"),
    STR("kafka.checkpoint_topic", kafka_checkpoint_topic, F_NONEMPTY | F_TOPIC,
        "natka.checkpoints",
        "compacted topic holding each instance's committed positions"),
    INT("kafka.transaction_max_events", kafka_txn_max_events, 0, "2000", 1,
        1000000, "events in one transaction at most"),
    INT("kafka.transaction_ms", kafka_txn_ms, 0, "20", 1, 60000,
        "a transaction is committed at the latest this long after it began"),
    MAP("kafka.properties", kafka_props,
        "raw librdkafka properties (string values), applied last"),

    LIST("rules.files", rules_files, F_NONEMPTY, "",
         "paths of rule modules to load at start instead of the KV bucket "
         "(no hot reload)"),
    STR("rules.bucket", rules_bucket, F_BUCKET, "natka_rules",
        "KV bucket of rule modules (one per key), watched and hot-reloaded "
        "when rules.files is empty; \"\": no rules, the default route"),
    STR("rules.status_bucket", rules_status_bucket, F_NONEMPTY | F_BUCKET,
        "natka_status",
        "KV bucket where each natka writes its status (key: host-nats.name)"),
    STR("rules.status_subject", rules_status_subject, F_NONEMPTY,
        "natka.status",
        "status changes are also published on <this>.<host-nats.name>"),
    INT("rules.instruction_budget", rules_instr_budget, 0, "1000000", 0,
        (int64_t)1 << 40,
        "Lua instructions one event may use, in all its rule calls (dedup, "
        "degrade, route, every module); 0: unlimited"),
    INT("rules.time_limit_ms", rules_time_limit_ms, 0, "200", 0, 3600000,
        "wall-clock milliseconds one event's rule calls may take together; "
        "past it the event is dead-lettered (ERULE); 0: unlimited"),
    INT("rules.load_time_limit_ms", rules_load_time_limit_ms, 0, "2000", 0,
        3600000,
        "wall-clock milliseconds loading a rule set may take: compiling its "
        "modules and running their self-tests, together; past it the set is "
        "rejected; 0: unlimited"),
    INT("rules.memory_mb", rules_memory_mb, 0, "64", 1, 65536,
        "memory cap of the rules' Lua state"),
    INT("rules.max_answer_bytes", rules_max_answer_bytes, 0, "8388608", 1024,
        (int64_t)1 << 30,
        "bytes one route() answer may carry: the topics, keys, data and "
        "headers of all its destinations, as copied for the sinks; more is "
        "a rule error (ERULE)"),

    STR("switches.bucket", switches_bucket, F_BUCKET, "natka_switches",
        "KV bucket of switches (strings) that degrade rules and the core read, "
        "watched live; \"\": none"),
    INT("dedup.window_count", dedup_window_count, 0, "100000", 1, 100000000,
        "idempotency keys remembered (oldest forgotten first)"),
    INT("dedup.window_ms", dedup_window_ms, 0, "600000", 1000,
        (int64_t)30 * 24 * 3600 * 1000,
        "how long an idempotency key is "
        "remembered"),
    STR("dedup.shared_bucket", dedup_shared_bucket, F_BUCKET, "",
        "KV bucket shared by several natka processes to dedup against each "
        "other (keys expire after dedup.window_ms); \"\": this process only"),
    STR("degrade.subject_prefix", degrade_subject_prefix, F_NONEMPTY,
        "natka.dual",
        "NATS subject prefix of dual writes: <prefix>.<kind>, unless the "
        "degrade rule names a subject"),

    STR("route.default_topic", route_default_topic, F_TOPIC, "",
        "topic for events no rule routes; empty: a topic named after the "
        "event's kind"),
    LIST("route.allow", route_allow, F_NONEMPTY, "",
         "topics a route may name (globs: * any run, ? one character); a "
         "destination outside them is dead-lettered (EFORBIDDEN); empty: any "
         "topic not reserved for natka"),
    LIST("route.allow_subjects", route_allow_subjects, F_NONEMPTY, "",
         "NATS subjects a dual write may go to (NATS patterns: * one token, "
         "> the rest); outside them it is dead-lettered (EFORBIDDEN); empty: "
         "any"),
    STR("event.source", event_source, F_NONEMPTY, "natka",
        "ce-source given to events that have none"),
    STR("dlq.topic", dlq_topic, F_NONEMPTY | F_TOPIC, "natka.dlq",
        "dead-letter topic"),
    STR("dlq.subject", dlq_subject, 0, "",
        "NATS subject that also receives a copy of every dead letter (stored "
        "by JetStream when a stream captures it); \"\": none"),

    INT("retry.max_attempts", retry_max_attempts, 0, "0", 0, 1000000,
        "deliveries of an event that Kafka keeps refusing before it is "
        "dead-lettered; 0: retry until it succeeds"),
    INT("retry.backoff_max_ms", retry_backoff_max_ms, 0, "60000", 0, 3600000,
        "the redelivery delay doubles from jetstream.nak_delay_ms up to this"),

    STR("spool.dir", spool_dir, 0, "",
        "directory of the disk spool for core NATS subjects, request-reply "
        "ingress and injected events; \"\": no spool"),
    INT("spool.max_bytes", spool_max_bytes, 0, "1073741824", 65536,
        (int64_t)1 << 50,
        "size bound of the spool; when full, publishers are "
        "pushed back"),
    INT("spool.segment_bytes", spool_segment_bytes, 0, "67108864", 4096,
        1073741824, "size of one spool segment file"),
    ENUM("spool.fsync", NATKA__CONFIG_ENUM, spool_fsync, "interval",
         "always|interval|never",
         "always: fsync before a record is acknowledged; interval: every "
         "spool.fsync_interval_ms; never: leave it to the OS"),
    INT("spool.fsync_interval_ms", spool_fsync_interval_ms, 0, "100", 1, 60000,
        "fsync period with spool.fsync = interval"),

    INT("limits.max_event_bytes", max_event_bytes, 0, "1048576", 1, 104857600,
        "larger events are dead-lettered"),
    INT("limits.max_inflight", max_inflight, 0, "10000", 1, 10000000,
        "events between source and Kafka confirmation"),
    INT("limits.max_inflight_bytes", max_inflight_bytes, 0, "134217728",
        1048576, (int64_t)1 << 40,
        "bytes of events between source and Kafka confirmation; above it the "
        "sources pause (the memory bound under a Kafka outage)"),
    INT("limits.handoff_events", handoff_events, 0, "10000", 1, 10000000,
        "events a NATS thread may queue for the loop (core NATS subjects, "
        "spool-backed ingress); beyond it core NATS events are dropped and "
        "counted, requests get a busy reply"),
    INT("limits.handoff_bytes", handoff_bytes, 0, "16777216", 65536,
        (int64_t)1 << 40, "bytes of events queued for the loop, as above"),
    INT("shutdown.drain_timeout_ms", drain_timeout_ms, 0, "30000", 0, 3600000,
        "how long a stop waits for in-flight events"),
    ENUM("log.level", NATKA__CONFIG_LEVEL, log_level, "info",
         "error|warn|info|debug", "lowest level logged"),
};

#define NROWS (sizeof(schema) / sizeof(schema[0]))
#define FIELD(conf, r, T) ((T *)(void *)((char *)(conf) + (r)->off))
#define CFIELD(conf, r, T)                                                     \
  ((const T *)(const void *)((const char *)(conf) + (r)->off))

/* Every validation message starts with "config: " and names the key. */
int natka__config_bad(char *err, size_t errlen, const char *fmt, ...) {
  if (err != NULL && errlen > 0) {
    va_list ap;
    int n = snprintf(err, errlen, "config: ");
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < errlen)
      vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
  }
  return NATKA_ECONFIG;
}

int natka__config_oom(char *err, size_t errlen) {
  return natka__errf(err, errlen, NATKA_ENOMEM, "config: out of memory");
}

/* --- Lists, maps and whole configurations -------------------------------- */

void natka__config_list_clear(natka__strlist *l) {
  for (size_t i = 0; i < l->n; i++)
    free(l->v[i]);
  free(l->v);
  memset(l, 0, sizeof(*l));
}

int natka__config_list_add(natka__strlist *l, const char *s, size_t len) {
  char **v = realloc(l->v, (l->n + 1) * sizeof(*v));
  if (v == NULL)
    return NATKA_ENOMEM;
  l->v = v;
  if ((v[l->n] = natka__memdup(s, len)) == NULL)
    return NATKA_ENOMEM;
  l->n++;
  return 0;
}

void natka__config_map_clear(natka__strmap *m) {
  for (size_t i = 0; i < m->n; i++) {
    free(m->keys[i]);
    free(m->values[i]);
  }
  free(m->keys);
  free(m->values);
  memset(m, 0, sizeof(*m));
}

/* Sets key=value, keeping keys sorted so that get and logs are stable
 * whatever order Lua's table traversal produced. */
static int map_set(natka__strmap *m, const char *key, const char *value) {
  size_t i = 0;
  while (i < m->n && strcmp(m->keys[i], key) < 0)
    i++;
  char *v = natka__strdup(value), *k = NULL;
  if (v != NULL && i < m->n && strcmp(m->keys[i], key) == 0) {
    free(m->values[i]);
    m->values[i] = v;
    return 0;
  }
  char **keys = v != NULL ? realloc(m->keys, (m->n + 1) * sizeof(*keys)) : NULL;
  if (keys != NULL)
    m->keys = keys;
  char **vals =
      keys != NULL ? realloc(m->values, (m->n + 1) * sizeof(*vals)) : NULL;
  if (vals != NULL)
    m->values = vals;
  if (vals == NULL || (k = natka__strdup(key)) == NULL) {
    free(v);
    return NATKA_ENOMEM;
  }
  memmove(keys + i + 1, keys + i, (m->n - i) * sizeof(*keys));
  memmove(vals + i + 1, vals + i, (m->n - i) * sizeof(*vals));
  keys[i] = k;
  vals[i] = v;
  m->n++;
  return 0;
}

void natka__config_free_fields(natka_config *conf) {
  for (size_t i = 0; i < NROWS; i++) {
    const row *r = &schema[i];
    if (r->type == NATKA__CONFIG_STR || r->type == NATKA__CONFIG_ENUM) {
      free(*FIELD(conf, r, char *));
      *FIELD(conf, r, char *) = NULL;
    } else if (r->type == NATKA__CONFIG_LIST) {
      natka__config_list_clear(FIELD(conf, r, natka__strlist));
    } else if (r->type == NATKA__CONFIG_MAP) {
      natka__config_map_clear(FIELD(conf, r, natka__strmap));
    }
  }
}

/* A deep copy of src, logger included. Every row is visited even after a
 * failure, so that dst never shares memory with src and can be freed. */
int natka__config_clone(natka_config *dst, const natka_config *src) {
  int rc = 0;
  *dst = *src;
  for (size_t i = 0; i < NROWS; i++) {
    const row *r = &schema[i];
    if (r->type == NATKA__CONFIG_STR || r->type == NATKA__CONFIG_ENUM) {
      const char *s = *CFIELD(src, r, char *);
      char *copy = rc == 0 ? natka__strdup(s) : NULL;
      if (s != NULL && copy == NULL)
        rc = NATKA_ENOMEM;
      *FIELD(dst, r, char *) = copy;
    } else if (r->type == NATKA__CONFIG_LIST) {
      const natka__strlist *l = CFIELD(src, r, natka__strlist);
      memset(FIELD(dst, r, natka__strlist), 0, sizeof(*l));
      for (size_t j = 0; rc == 0 && j < l->n; j++)
        rc = natka__config_list_add(FIELD(dst, r, natka__strlist), l->v[j],
                                    strlen(l->v[j]));
    } else if (r->type == NATKA__CONFIG_MAP) {
      const natka__strmap *m = CFIELD(src, r, natka__strmap);
      memset(FIELD(dst, r, natka__strmap), 0, sizeof(*m));
      for (size_t j = 0; rc == 0 && j < m->n; j++)
        rc = map_set(FIELD(dst, r, natka__strmap), m->keys[j], m->values[j]);
    }
  }
  if (rc != 0)
    natka__config_free_fields(dst);
  return rc;
}

/* Replaces conf's values by scratch's; conf owns them from now on. */
void natka__config_commit(natka_config *conf, natka_config *scratch) {
  natka__config_free_fields(conf);
  *conf = *scratch;
  memset(scratch, 0, sizeof(*scratch));
}

/* --- Keys ---------------------------------------------------------------- */

const row *natka__config_find(const char *key) {
  for (size_t i = 0; i < NROWS; i++)
    if (strcmp(schema[i].key, key) == 0)
      return &schema[i];
  return NULL;
}

/* A key naming a row, or for a map row "key.NAME" (*entry = "NAME"). */
static const row *find_row(const char *key, const char **entry) {
  const row *r = natka__config_find(key);
  *entry = NULL;
  for (size_t i = 0; r == NULL && i < NROWS; i++) {
    size_t n = strlen(schema[i].key);
    if (schema[i].type == NATKA__CONFIG_MAP &&
        strncmp(key, schema[i].key, n) == 0 && key[n] == '.') {
      r = &schema[i];
      *entry = key + n + 1;
    }
  }
  return r;
}

/* "kafka" is a section because some key starts with "kafka.". */
int natka__config_is_section(const char *name) {
  size_t n = strlen(name);
  for (size_t i = 0; i < NROWS; i++)
    if (strncmp(schema[i].key, name, n) == 0 && schema[i].key[n] == '.')
      return 1;
  return 0;
}

static size_t edit_distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b), prev[KEY_MAX + 1], cur[KEY_MAX + 1];
  if (la > KEY_MAX || lb > KEY_MAX)
    return SIZE_MAX;
  for (size_t j = 0; j <= lb; j++)
    prev[j] = j;
  for (size_t i = 1; i <= la; i++) {
    cur[0] = i;
    for (size_t j = 1; j <= lb; j++) {
      size_t best = prev[j - 1] + (a[i - 1] != b[j - 1]);
      if (prev[j] + 1 < best)
        best = prev[j] + 1;
      cur[j] = cur[j - 1] + 1 < best ? cur[j - 1] + 1 : best;
    }
    memcpy(prev, cur, (lb + 1) * sizeof(prev[0]));
  }
  return prev[lb];
}

/* Names the nearest key or section (within 2 edits) when there is one. */
int natka__config_unknown_key(const char *key, char *err, size_t errlen) {
  const char *best = NULL;
  size_t best_d = 3, best_n = 0;
  for (size_t i = 0; i < NROWS; i++) {
    const char *k = schema[i].key;
    size_t n = strcspn(k, "."), d = edit_distance(key, k);
    char section[KEY_MAX];
    snprintf(section, sizeof(section), "%.*s", (int)n, k);
    if (d > 0 && d < best_d) {
      best = k;
      best_d = d;
      best_n = strlen(k);
    }
    if ((d = edit_distance(key, section)) > 0 && d < best_d) {
      best = k;
      best_d = d;
      best_n = n;
    }
  }
  if (best == NULL)
    return natka__config_bad(err, errlen, "unknown key '%s'", key);
  return natka__config_bad(err, errlen,
                           "unknown key '%s' (did you mean '%.*s'?)", key,
                           (int)best_n, best);
}

/* --- Checking and storing values ----------------------------------------- */

static int is_topic_name(const char *s) {
  size_t n = strlen(s);
  if (n > 249 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
    return 0;
  return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                   "0123456789._-") == n;
}

/* JetStream names become subject tokens and file names on the server. */
static int is_bucket_name(const char *s) {
  for (; *s != '\0'; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
          (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
      return 0;
  return 1;
}

static int is_js_name(const char *s) {
  for (; *s != '\0'; s++)
    if ((unsigned char)*s <= ' ' || *s == 0x7f || strchr(".*>/\\", *s))
      return 0;
  return 1;
}

/* Checks one string: the value, or a list entry when entry != 0. */
static int check_text(const row *r, const char *s, int entry, char *err,
                      size_t errlen) {
  if ((r->flags & F_NONEMPTY) && *s == '\0')
    return natka__config_bad(err, errlen, "'%s'%s must not be empty", r->key,
                             entry ? " entries" : "");
  if ((r->flags & F_JSNAME) && !is_js_name(s))
    return natka__config_bad(
        err, errlen,
        "'%s' must be a JetStream name (no spaces, '.', '*', '>', "
        "'/' or '\\'), got '%s'",
        r->key, s);
  if ((r->flags & F_BUCKET) && !is_bucket_name(s))
    return natka__config_bad(err, errlen,
                             "'%s' must be a KV bucket name (letters, digits, "
                             "'-' and '_'), got '%s'",
                             r->key, s);
  if ((r->flags & F_SECRET) && *s != '\0' && !natka__secret_ref_ok(s))
    return natka__config_bad(/* s may be the secret: never repeat it */
                             err, errlen,
                             "'%s' must say where the secret is, as "
                             "\"file:PATH\" or "
                             "\"env:NAME\"; the secret itself is not accepted "
                             "(and not shown)",
                             r->key);
  if ((r->flags & F_TOPIC) && *s != '\0' && !is_topic_name(s))
    return natka__config_bad(
        err, errlen,
        "'%s' must be a Kafka topic name ([A-Za-z0-9._-], at most 249, "
        "not '.' or '..'), got '%s'",
        r->key, s);
  return 0;
}

/* The position of s in r->allowed ("a|b|c"), or -1. */
static int allowed_index(const row *r, const char *s) {
  const char *p = r->allowed;
  for (int i = 0; *p != '\0'; i++) {
    size_t n = strcspn(p, "|");
    if (n == strlen(s) && strncmp(p, s, n) == 0)
      return i;
    p += n + (p[n] == '|');
  }
  return -1;
}

/* Writes r->allowed to out as "a, b, c", or only its i-th name if i >= 0. */
static void allowed_text(const row *r, int i, char *out, size_t len) {
  const char *p = r->allowed;
  size_t j = 0;
  out[0] = '\0';
  for (int k = 0; *p != '\0' && j < len; k++) {
    size_t n = strcspn(p, "|");
    if (i < 0 || i == k)
      j += (size_t)snprintf(out + j, len - j, "%s%.*s", i < 0 && k ? ", " : "",
                            (int)n, p);
    p += n + (p[n] == '|');
  }
}

/* Stores the string value of a NATKA__CONFIG_STR, NATKA__CONFIG_ENUM or
 * NATKA__CONFIG_LEVEL row. */
int natka__config_store_string(natka_config *c, const row *r, const char *s,
                               char *err, size_t errlen) {
  int i = r->type == NATKA__CONFIG_STR ? 0 : allowed_index(r, s), rc;
  if (i < 0) {
    char list[128];
    allowed_text(r, -1, list, sizeof(list));
    return natka__config_bad(err, errlen, "'%s' must be one of %s; got '%s'",
                             r->key, list, s);
  }
  if (r->type == NATKA__CONFIG_LEVEL) {
    *FIELD(c, r, natka_log_level) = (natka_log_level)i;
    return 0;
  }
  if ((rc = check_text(r, s, 0, err, errlen)) != 0)
    return rc;
  char *copy = natka__strdup(s);
  if (copy == NULL)
    return natka__config_oom(err, errlen);
  free(*FIELD(c, r, char *));
  *FIELD(c, r, char *) = copy;
  return 0;
}

int natka__config_store_int(natka_config *c, const row *r, int64_t v, char *err,
                            size_t errlen) {
  if ((v < r->min || v > r->max) && !((r->flags & F_MINUS1) && v == -1))
    return natka__config_bad(
        err, errlen, "'%s' must be %sbetween %lld and %lld, got %lld", r->key,
        (r->flags & F_MINUS1) ? "-1 or " : "", (long long)r->min,
        (long long)r->max, (long long)v);
  *FIELD(c, r, int64_t) = v;
  return 0;
}

/* Checks every entry of a new list, then moves it into the field. */
int natka__config_store_list(natka_config *c, const row *r, natka__strlist *l,
                             char *err, size_t errlen) {
  for (size_t i = 0; i < l->n; i++) {
    int rc = check_text(r, l->v[i], 1, err, errlen);
    if (rc != 0)
      return rc;
  }
  natka__config_list_clear(FIELD(c, r, natka__strlist));
  *FIELD(c, r, natka__strlist) = *l;
  memset(l, 0, sizeof(*l));
  return 0;
}

void natka__config_store_bool(natka_config *c, const row *r, int b) {
  *FIELD(c, r, int) = b;
}

/* A map from a config replaces the whole map. */
void natka__config_store_map(natka_config *c, const row *r, natka__strmap *m) {
  natka__config_map_clear(FIELD(c, r, natka__strmap));
  *FIELD(c, r, natka__strmap) = *m;
  memset(m, 0, sizeof(*m));
}

int natka__config_store_entry(natka__strmap *m, const row *r, const char *k,
                              const char *v, char *err, size_t errlen) {
  if (*k == '\0')
    return natka__config_bad(err, errlen, "'%s' keys must not be empty",
                             r->key);
  return map_set(m, k, v) == 0 ? 0 : natka__config_oom(err, errlen);
}

const char *natka__config_type_name(natka__config_type t) {
  return t == NATKA__CONFIG_INT    ? "an integer"
         : t == NATKA__CONFIG_BOOL ? "a boolean"
         : t == NATKA__CONFIG_LIST ? "a list of strings"
         : t == NATKA__CONFIG_MAP  ? "a table of strings"
                                   : "a string";
}

/* --- Values from text (natka_config_set and the defaults) ---------------- */

static int parse_int(const char *s, int64_t *out) {
  char *end;
  if (!((*s >= '0' && *s <= '9') || *s == '-' || *s == '+'))
    return -1; /* strtoll would skip blanks */
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0')
    return -1;
  *out = v;
  return 0;
}

static int parse_bool(const char *s, int *out) {
  static const char *const names[] = {"false", "true", "off", "on", "0", "1"};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    if (strcasecmp(s, names[i]) == 0) {
      *out = (int)(i % 2);
      return 0;
    }
  }
  return -1;
}

/* Splits "a, b,c" at commas, trimming blanks around entries; "" is empty. */
static int split_list(const char *s, natka__strlist *out) {
  s += strspn(s, " \t");
  while (*s != '\0') {
    size_t n = strcspn(s, ","), len = n;
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
      len--;
    if (natka__config_list_add(out, s, len) != 0)
      return NATKA_ENOMEM;
    if (s[n] == '\0')
      break;
    s += n + 1;
    s += strspn(s, " \t");
    if (*s == '\0' &&
        natka__config_list_add(out, "", 0) != 0) /* "a," has an empty entry */
      return NATKA_ENOMEM;
  }
  return 0;
}

/* Applies text to one row of c; `entry` names a map entry, or is NULL. */
static int apply_text(natka_config *c, const row *r, const char *entry,
                      const char *text, char *err, size_t errlen) {
  natka__strlist l = {0};
  int64_t i;
  int b, rc;
  switch (r->type) {
  case NATKA__CONFIG_INT:
    if (parse_int(text, &i) != 0)
      return natka__config_bad(err, errlen, "'%s' must be an integer, got '%s'",
                               r->key, text);
    return natka__config_store_int(c, r, i, err, errlen);
  case NATKA__CONFIG_BOOL:
    if (parse_bool(text, &b) != 0)
      return natka__config_bad(
          err, errlen,
          "'%s' must be a boolean (true/false/on/off/1/0), got '%s'", r->key,
          text);
    natka__config_store_bool(c, r, b);
    return 0;
  case NATKA__CONFIG_LIST:
    rc = split_list(text, &l) == 0
             ? natka__config_store_list(c, r, &l, err, errlen)
             : natka__config_oom(err, errlen);
    natka__config_list_clear(&l);
    return rc;
  case NATKA__CONFIG_MAP: /* one entry at a time; "" clears the whole map */
    if (entry != NULL)
      return natka__config_store_entry(FIELD(c, r, natka__strmap), r, entry,
                                       text, err, errlen);
    if (*text != '\0')
      return natka__config_bad(err, errlen, "set entries of '%s' as '%s.NAME'",
                               r->key, r->key);
    natka__config_map_clear(FIELD(c, r, natka__strmap));
    return 0;
  default:
    return natka__config_store_string(c, r, text, err, errlen);
  }
}

/* --- Public API ---------------------------------------------------------- */

const char *natka__config_topic_reserved(const natka_config *conf,
                                         const char *topic) {
  if (strcmp(topic, conf->kafka_checkpoint_topic) == 0)
    return "kafka.checkpoint_topic";
  if (strcmp(topic, conf->dlq_topic) == 0)
    return "dlq.topic";
  if (strncmp(topic, "__", 2) == 0)
    return "Kafka's internal topics (names beginning with __)";
  return NULL;
}

static int any_match(const natka__strlist *l, const char *s,
                     int (*match)(const char *pattern, const char *s)) {
  if (l->n == 0)
    return 1;
  for (size_t i = 0; i < l->n; i++)
    if (match(l->v[i], s))
      return 1;
  return 0;
}

int natka__config_topic_allowed(const natka_config *conf, const char *topic) {
  return any_match(&conf->route_allow, topic, natka__glob_match);
}

int natka__config_subject_allowed(const natka_config *conf,
                                  const char *subject) {
  return any_match(&conf->route_allow_subjects, subject, natka__subject_match);
}

int natka__config_validate(const natka_config *conf, char *err, size_t errlen) {
  const char *dt = conf->route_default_topic, *why = NULL;
  if (dt[0] != '\0' && (why = natka__config_topic_reserved(conf, dt)) != NULL)
    return natka__config_bad(err, errlen,
                             "'route.default_topic' is '%s', which is "
                             "reserved for %s",
                             dt, why);
  if (dt[0] != '\0' && !natka__config_topic_allowed(conf, dt))
    return natka__config_bad(err, errlen,
                             "'route.default_topic' is '%s', which "
                             "'route.allow' does not allow",
                             dt);
  if (strncmp(conf->dlq_topic, "__", 2) == 0 ||
      strncmp(conf->kafka_checkpoint_topic, "__", 2) == 0)
    return natka__config_bad(err, errlen,
                             "'dlq.topic' and 'kafka.checkpoint_topic' must "
                             "not begin with __ (Kafka's internal topics)");
  if (conf->kafka_queue_low >= conf->kafka_queue_high)
    return natka__config_bad(
        err, errlen,
        "'kafka.queue_low' (%lld) must be less than 'kafka.queue_high' "
        "(%lld)",
        (long long)conf->kafka_queue_low, (long long)conf->kafka_queue_high);
  if (conf->js_enabled && conf->js_create_stream && conf->js_subjects.n == 0)
    return natka__config_bad(err, errlen,
                             "'jetstream.subjects' must not be empty when "
                             "'jetstream.create_stream' is true");
  if (strcmp(conf->ingress_store, "spool") == 0 && conf->spool_dir[0] == '\0')
    return natka__config_bad(err, errlen,
                             "'ingress.store' is 'spool' but 'spool.dir' is "
                             "empty: set the directory of the spool");
  return 0;
}

int natka_config_new(natka_config **out) {
  char err[256];
  natka_config *conf = out != NULL ? calloc(1, sizeof(*conf)) : NULL;
  int rc = out == NULL ? NATKA_EINVAL : conf == NULL ? NATKA_ENOMEM : 0;
  for (size_t i = 0; rc == 0 && i < NROWS; i++)
    rc = apply_text(conf, &schema[i], NULL, schema[i].def, err, sizeof(err));
  if (rc == 0)
    rc = natka__config_validate(conf, err, sizeof(err));
  if (rc != 0) { /* NATKA_ECONFIG here would be a bad default in the table */
    natka_config_free(conf);
    return rc == NATKA_ENOMEM ? rc : NATKA_EINVAL;
  }
  *out = conf;
  return 0;
}

void natka_config_free(natka_config *conf) {
  if (conf == NULL)
    return;
  natka__config_free_fields(conf);
  free(conf);
}

int natka_config_set(natka_config *conf, const char *key, const char *value,
                     char *errbuf, size_t errlen) {
  natka_config scratch;
  const char *entry;
  const row *r;
  int rc;
  if (conf == NULL || key == NULL || value == NULL)
    return natka__errf(errbuf, errlen, NATKA_EINVAL, "config: no key or value");
  if ((r = find_row(key, &entry)) == NULL)
    return natka__config_unknown_key(key, errbuf, errlen);
  if (natka__config_clone(&scratch, conf) != 0)
    return natka__config_oom(errbuf, errlen);
  if ((rc = apply_text(&scratch, r, entry, value, errbuf, errlen)) == 0 &&
      (rc = natka__config_validate(&scratch, errbuf, errlen)) == 0)
    natka__config_commit(conf, &scratch);
  natka__config_free_fields(&scratch);
  return rc;
}

/* Appends s to buf (len bytes); *pos becomes SIZE_MAX once it did not fit. */
static void put(char *buf, size_t len, size_t *pos, const char *s) {
  size_t n = strlen(s);
  if (*pos == SIZE_MAX || n >= len - *pos) {
    *pos = SIZE_MAX;
    return;
  }
  memcpy(buf + *pos, s, n + 1);
  *pos += n;
}

int natka_config_get(const natka_config *conf, const char *key, char *buf,
                     size_t len) {
  const char *entry;
  const row *r;
  char num[32];
  size_t pos = 0;
  if (conf == NULL || key == NULL || buf == NULL || len == 0)
    return NATKA_EINVAL;
  if ((r = find_row(key, &entry)) == NULL)
    return NATKA_ECONFIG;
  buf[0] = '\0';
  if (r->type == NATKA__CONFIG_INT) {
    snprintf(num, sizeof(num), "%lld", (long long)*CFIELD(conf, r, int64_t));
    put(buf, len, &pos, num);
  } else if (r->type == NATKA__CONFIG_BOOL) {
    put(buf, len, &pos, *CFIELD(conf, r, int) ? "true" : "false");
  } else if (r->type == NATKA__CONFIG_LEVEL) {
    allowed_text(r, (int)*CFIELD(conf, r, natka_log_level), num, sizeof(num));
    put(buf, len, &pos, num);
  } else if (r->type == NATKA__CONFIG_LIST) {
    const natka__strlist *l = CFIELD(conf, r, natka__strlist);
    for (size_t i = 0; i < l->n; i++) {
      put(buf, len, &pos, i > 0 ? "," : "");
      put(buf, len, &pos, l->v[i]);
    }
  } else if (r->type == NATKA__CONFIG_MAP) {
    const natka__strmap *m = CFIELD(conf, r, natka__strmap);
    size_t i = 0;
    while (entry != NULL && i < m->n && strcmp(m->keys[i], entry) != 0)
      i++;
    if (entry != NULL && i == m->n)
      return NATKA_ECONFIG;
    if (entry != NULL)
      put(buf, len, &pos, m->values[i]);
    for (i = 0; entry == NULL && i < m->n; i++) { /* "k=v,k2=v2" */
      put(buf, len, &pos, i > 0 ? "," : "");
      put(buf, len, &pos, m->keys[i]);
      put(buf, len, &pos, "=");
      put(buf, len, &pos, m->values[i]);
    }
  } else {
    const char *s = *CFIELD(conf, r, char *);
    put(buf, len, &pos, s != NULL ? s : "");
  }
  return pos == SIZE_MAX ? NATKA_EINVAL : 0;
}

void natka_config_set_logger(natka_config *conf, natka_log_cb cb, void *data) {
  if (conf == NULL)
    return;
  conf->log_cb = cb;
  conf->log_data = data;
}

/* One reference row: key | type | default | meaning. Defaults are shown in
 * config syntax (`5`, `"info"`, `{"events.>"}`). */
static void write_row(FILE *f, const row *r) {
  char text[128];
  fprintf(f, "| `%s` | ", r->key);
  if (r->type == NATKA__CONFIG_INT)
    fprintf(f, "integer, %s%lld..%lld | `%s`",
            (r->flags & F_MINUS1) ? "-1 or " : "", (long long)r->min,
            (long long)r->max, r->def);
  else if (r->type == NATKA__CONFIG_BOOL)
    fprintf(f, "boolean | `%s`", r->def);
  else if (r->type == NATKA__CONFIG_STR)
    fprintf(f, "string | `\"%s\"`", r->def);
  else if (r->type == NATKA__CONFIG_MAP)
    fputs("table of strings | `{}`", f);
  else if (r->type == NATKA__CONFIG_LIST)
    fprintf(f, "list of strings | `{%s%s%s}`", *r->def ? "\"" : "", r->def,
            *r->def ? "\"" : ""); /* list defaults have at most one entry */
  else {
    allowed_text(r, -1, text, sizeof(text));
    fprintf(f, "one of %s | `\"%s\"`", text, r->def);
  }
  fputs(" | ", f);
  for (const char *p = r->doc; *p != '\0'; p++) { /* a '|' would split a cell */
    if (*p == '|')
      fputc('\\', f);
    fputc(*p, f);
  }
  fputs(" |\n", f);
}

void natka_config_write_reference(void *out) {
  FILE *f = out;
  for (size_t i = 0; f != NULL && i < NROWS; i++) {
    const char *k = schema[i].key, *prev = i > 0 ? schema[i - 1].key : "";
    size_t n = strcspn(k, ".");
    if (strncmp(k, prev, n + 1) != 0) /* first key of a section */
      fprintf(f,
              "%s### %.*s\n\n| key | type | default | meaning |\n"
              "|---|---|---|---|\n",
              i > 0 ? "\n" : "", (int)n, k);
    write_row(f, &schema[i]);
  }
}
