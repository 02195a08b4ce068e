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
  int64_t kafka_linger_ms;
  int64_t kafka_batch_size;
  char *kafka_compression;
  int64_t kafka_message_timeout_ms;
  int64_t kafka_queue_high; /* pause sources above this many queued */
  int64_t kafka_queue_low;  /* resume below this */
  natka__strmap kafka_props; /* raw librdkafka properties */

  /* rules.* */
  natka__strlist rules_files;
  int64_t rules_instr_budget;
  int64_t rules_memory_mb;

  /* route.* / event.* / dlq.* */
  char *route_default_topic;
  char *event_source;
  char *dlq_topic;

  /* limits.* / shutdown.* */
  int64_t max_event_bytes;
  int64_t max_inflight;
  int64_t drain_timeout_ms;

  /* log.* */
  natka_log_level log_level;
  natka_log_cb log_cb;
  void *log_data;
};

/* Checks that need several keys at once (kafka.queue_low < kafka.queue_high,
 * ...). Loading and natka_config_set() call it on the would-be result before
 * applying it. Returns 0 or NATKA_ECONFIG with the reason in err. */
int natka__config_validate(const natka_config *conf, char *err, size_t errlen);

#endif
