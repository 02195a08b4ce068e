/*
 * The layout of natka_config. Every field is described by one row of the
 * schema in config.c (its dotted key, type, default, range and meaning);
 * that table drives loading, validation, natka_config_set/get and the
 * README's reference.
 */
#ifndef NATKA_CONFIG_INT_H
#define NATKA_CONFIG_INT_H

#include <stddef.h>
#include <stdint.h>

#include "natka/config.h"

typedef struct natka__strlist {
  char **v;
  size_t n;
} natka__strlist;

typedef struct natka__strmap {
  char **keys;
  char **values;
  size_t n;
} natka__strmap;

struct natka_config {
  /* nats.* */
  char *nats_url;
  char *nats_name;
  int64_t nats_connect_timeout_ms;
  int64_t nats_reconnect_wait_ms;
  natka__strlist nats_subjects; /* core NATS source, at-most-once */
  char *nats_tls_ca_file;       /* "": the system's trust store */
  char *nats_tls_cert_file;
  char *nats_tls_key_file;
  char *nats_tls_server_name; /* "": the host in nats_url */
  int nats_tls_verify;
  char *nats_creds_file;
  char *nats_nkey_seed_file;
  char *nats_token; /* secrets: "file:PATH" or "env:NAME" (secret.h) */
  char *nats_user;
  char *nats_password;

  /* ingress.* */
  natka__strlist ingress_subjects;
  char *ingress_queue;
  char *ingress_stream_prefix;
  char *ingress_store; /* "jetstream" or "spool" */

  /* jetstream.* */
  int js_enabled;
  char *js_stream;
  natka__strlist js_subjects;
  char *js_durable;
  int js_create_stream;
  int64_t js_batch;
  int64_t js_fetch_expires_ms;
  int64_t js_max_ack_pending;
  int64_t js_ack_wait_ms;
  int64_t js_nak_delay_ms;
  int64_t js_max_deliver; /* -1: unlimited */

  /* kafka.* */
  char *kafka_brokers; /* "embedded": librdkafka's in-process mock cluster */
  char *kafka_security_protocol; /* "plaintext", "ssl", "sasl_ssl", ... */
  char *kafka_sasl_mechanism;
  char *kafka_sasl_username;
  char *kafka_sasl_password; /* a secret reference, as nats_password */
  char *kafka_tls_ca_file;
  char *kafka_tls_cert_file;
  char *kafka_tls_key_file;
  char *kafka_tls_key_password; /* a secret reference */
  int kafka_tls_verify;
  int64_t kafka_linger_ms;
  int64_t kafka_batch_size;
  char *kafka_compression;
  int64_t kafka_message_timeout_ms;
  int64_t kafka_queue_high;     /* pause sources above this many queued */
  int64_t kafka_queue_low;      /* resume below this */
  natka__strmap kafka_props;    /* raw librdkafka properties */
  char *kafka_transactions;     /* "auto", "on", "off" */
  char *kafka_transactional_id; /* "": derived */
  char *kafka_checkpoint_topic;
  int64_t kafka_txn_max_events;
  int64_t kafka_txn_ms;

  /* rules.* */
  natka__strlist rules_files;
  char *rules_bucket; /* "": no rules from KV */
  char *rules_status_bucket;
  char *rules_status_subject;
  char *switches_bucket; /* "": no switches */
  int64_t dedup_window_count;
  int64_t dedup_window_ms;
  char *dedup_shared_bucket; /* "": local window only */
  char *degrade_subject_prefix;
  int64_t rules_instr_budget;
  int64_t rules_time_limit_ms;
  int64_t rules_load_time_limit_ms;
  int64_t rules_memory_mb;
  int64_t rules_max_answer_bytes;

  /* route.* / event.* / dlq.* */
  char *route_default_topic;
  natka__strlist route_allow;          /* topic globs; empty: any */
  natka__strlist route_allow_subjects; /* NATS patterns; empty: any */
  char *event_source;
  char *dlq_topic;
  char *dlq_subject; /* "": none */

  /* retry.* */
  int64_t retry_max_attempts; /* 0: unlimited */
  int64_t retry_backoff_max_ms;

  /* spool.* */
  char *spool_dir; /* "": no spool */
  int64_t spool_max_bytes;
  int64_t spool_segment_bytes;
  char *spool_fsync; /* "always", "interval", "never" */
  int64_t spool_fsync_interval_ms;

  /* limits.* / shutdown.* */
  int64_t max_event_bytes;
  int64_t max_inflight;
  int64_t max_inflight_bytes;
  int64_t handoff_events; /* mailbox bounds: see mailbox.h */
  int64_t handoff_bytes;
  int64_t drain_timeout_ms;

  /* log.* */
  natka_log_level log_level;
  natka_log_cb log_cb;
  void *log_data;
};

/* --- Shared by config.c (the schema, set/get, validation, reference) and
 * config_lua.c (evaluating a config chunk). Every natka__config_* function
 * below that takes err returns 0 or a negative NATKA_E* code with a message
 * naming the key in err. */

#define NATKA__CONFIG_KEY_MAX 128 /* longest dotted key built from a config */

typedef enum {
  NATKA__CONFIG_STR,   /* char * */
  NATKA__CONFIG_INT,   /* int64_t */
  NATKA__CONFIG_BOOL,  /* int */
  NATKA__CONFIG_LIST,  /* natka__strlist */
  NATKA__CONFIG_MAP,   /* natka__strmap; "key.NAME" addresses one entry */
  NATKA__CONFIG_LEVEL, /* natka_log_level: index into `allowed`, enum order */
  NATKA__CONFIG_ENUM   /* char *, one of `allowed` */
} natka__config_type;

/* One key: a row of the schema in config.c. */
typedef struct natka__config_row {
  const char *key;
  natka__config_type type;
  unsigned flags;  /* checks beyond type and range (F_* in config.c) */
  const char *def; /* default, as natka_config_set() text */
  int64_t min, max;
  const char *allowed; /* NATKA__CONFIG_ENUM / _LEVEL: "a|b|c" */
  size_t off;          /* of the field in struct natka_config */
  const char *doc;
} natka__config_row;

/* The row called exactly `key` ("kafka.linger_ms"), or NULL. */
const natka__config_row *natka__config_find(const char *key);
/* Whether some key starts with "<name>." ("kafka" is a section). */
int natka__config_is_section(const char *name);
/* NATKA_ECONFIG, naming the nearest key or section when there is one. */
int natka__config_unknown_key(const char *key, char *err, size_t errlen);
/* "an integer", "a list of strings", ...: what a value of type t must be. */
const char *natka__config_type_name(natka__config_type t);

/* NATKA_ECONFIG with "config: <printf text>" in err. */
int natka__config_bad(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* NATKA_ENOMEM with "config: out of memory" in err. */
int natka__config_oom(char *err, size_t errlen);

/* Appends a copy of s (len bytes). 0 or NATKA_ENOMEM. */
int natka__config_list_add(natka__strlist *l, const char *s, size_t len);
void natka__config_list_clear(natka__strlist *l);
void natka__config_map_clear(natka__strmap *m);

/* Check a value against row r and store it in c. A list or map is moved
 * into c on success only (then emptied); store_entry sets one entry of m. */
int natka__config_store_string(natka_config *c, const natka__config_row *r,
                               const char *s, char *err, size_t errlen);
int natka__config_store_int(natka_config *c, const natka__config_row *r,
                            int64_t v, char *err, size_t errlen);
void natka__config_store_bool(natka_config *c, const natka__config_row *r,
                              int b);
int natka__config_store_list(natka_config *c, const natka__config_row *r,
                             natka__strlist *l, char *err, size_t errlen);
void natka__config_store_map(natka_config *c, const natka__config_row *r,
                             natka__strmap *m);
int natka__config_store_entry(natka__strmap *m, const natka__config_row *r,
                              const char *k, const char *v, char *err,
                              size_t errlen);

/* Frees what conf's fields hold (not conf itself). */
void natka__config_free_fields(natka_config *conf);
/* dst = a deep copy of src, logger included; 0 or NATKA_ENOMEM (dst holds
 * nothing then). */
int natka__config_clone(natka_config *dst, const natka_config *src);
/* Replaces conf's values by scratch's; conf owns them from now on and
 * scratch is left empty. */
void natka__config_commit(natka_config *conf, natka_config *scratch);

/* Evaluates buf (len bytes, named `name` in messages) or, when buf is NULL,
 * the file `name` in a fresh sandboxed Lua state, and applies the table it
 * returns to conf (config_lua.c). The caller passes a scratch copy and moves
 * it into place only on success: on failure conf may be partly changed. */
int natka__config_eval(natka_config *conf, const char *buf, size_t len,
                       const char *name, char *err, size_t errlen);

/* Whether no route may reach `topic`: what it is reserved for
 * ("dlq.topic", "kafka.checkpoint_topic", Kafka's internal __ topics), or
 * NULL when it is an ordinary topic. Only natka itself writes those: a
 * publisher who could name them (the default route names the topic after
 * the event's kind) could forge checkpoints or dead letters. */
const char *natka__config_topic_reserved(const natka_config *conf,
                                         const char *topic);

/* Whether route.allow lets a route name `topic` / route.allow_subjects
 * lets a dual write go to `subject` (an empty list allows everything). */
int natka__config_topic_allowed(const natka_config *conf, const char *topic);
int natka__config_subject_allowed(const natka_config *conf,
                                  const char *subject);

/* Checks that need several keys at once (kafka.queue_low < kafka.queue_high,
 * ...). Loading and natka_config_set() call it on the would-be result before
 * applying it. Returns 0 or NATKA_ECONFIG with the reason in err. */
int natka__config_validate(const natka_config *conf, char *err, size_t errlen);

#endif
