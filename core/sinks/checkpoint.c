/*
 * Checkpoints: encoding, and reading the last one back at start. See
 * checkpoint.h for what a checkpoint means.
 */
#include "checkpoint.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <librdkafka/rdkafka.h>

#include "kafka_conf.h"
#include "natka/error.h"
#include "util.h"

#define READ_TIMEOUT_MS 10000
#define POLL_MS 200

natka__ckpt_source *natka__checkpoint_source(natka__checkpoint *c,
                                             const char *name) {
  for (size_t i = 0; i < c->n; i++)
    if (strcmp(c->v[i].name, name) == 0)
      return &c->v[i];
  natka__ckpt_source *v = realloc(c->v, (c->n + 1) * sizeof(*v));
  if (v == NULL)
    return NULL;
  c->v = v;
  memset(&v[c->n], 0, sizeof(*v));
  if ((v[c->n].name = natka__strdup(name)) == NULL)
    return NULL;
  return &v[c->n++];
}

void natka__checkpoint_clear(natka__checkpoint *c) {
  for (size_t i = 0; i < c->n; i++) {
    free(c->v[i].name);
    natka__seqset_clear(&c->v[i].done);
  }
  free(c->v);
  memset(c, 0, sizeof(*c));
}

char *natka__checkpoint_encode(const natka__checkpoint *c, const char *id) {
  char floor[24], *text = NULL;
  cJSON *root = cJSON_CreateObject(), *sources = NULL;
  if (root == NULL || !cJSON_AddNumberToObject(root, "v", 1) ||
      !cJSON_AddStringToObject(root, "id", id) ||
      (sources = cJSON_AddObjectToObject(root, "sources")) == NULL)
    goto done;
  for (size_t i = 0; i < c->n; i++) {
    cJSON *s = cJSON_AddObjectToObject(sources, c->v[i].name);
    char *done = natka__seqset_format(&c->v[i].done);
    /* Positions go as strings: a JSON number is a double. */
    snprintf(floor, sizeof(floor), "%" PRIu64, c->v[i].floor);
    int ok = s != NULL && done != NULL &&
             cJSON_AddStringToObject(s, "floor", floor) &&
             cJSON_AddStringToObject(s, "done", done);
    free(done);
    if (!ok)
      goto done;
  }
  text = cJSON_PrintUnformatted(root);
done:
  cJSON_Delete(root);
  return text;
}

/* One source's floor and done. Positions are read strictly (digits within
 * uint64): a floor or a set read wrong says that events were committed that
 * were not, and they would be acked without being produced. */
static int decode_source(natka__checkpoint *c, const cJSON *s, char *err,
                         size_t errlen) {
  const cJSON *floor = cJSON_GetObjectItemCaseSensitive(s, "floor");
  const cJSON *done = cJSON_GetObjectItemCaseSensitive(s, "done");
  uint64_t f;
  if (!cJSON_IsString(floor) || !cJSON_IsString(done))
    return natka__errf(err, errlen, NATKA_EMALFORMED,
                       "checkpoint: source '%s' lacks floor/done (strings)",
                       s->string);
  if (natka__seqset_parse_pos(floor->valuestring, &f) != 0)
    return natka__errf(err, errlen, NATKA_EMALFORMED,
                       "checkpoint: source '%s': floor '%.40s' is not a "
                       "position (decimal digits, at most %" PRIu64 ")",
                       s->string, floor->valuestring, UINT64_MAX);
  size_t before = c->n;
  natka__ckpt_source *cs = natka__checkpoint_source(c, s->string);
  if (cs == NULL)
    return natka__errf(err, errlen, NATKA_ENOMEM, "out of memory");
  if (c->n == before)
    return natka__errf(err, errlen, NATKA_EMALFORMED,
                       "checkpoint: source '%s' is there twice", s->string);
  cs->floor = f;
  int rc = natka__seqset_parse(&cs->done, done->valuestring);
  if (rc == NATKA_ENOMEM)
    return natka__errf(err, errlen, rc, "out of memory");
  if (rc != 0)
    return natka__errf(err, errlen, NATKA_EMALFORMED,
                       "checkpoint: source '%s': done '%.60s' is not a list "
                       "of positions (\"1-5,7\", sorted, each at most "
                       "%" PRIu64 ")",
                       s->string, done->valuestring, UINT64_MAX);
  return 0;
}

int natka__checkpoint_decode(natka__checkpoint *c, const char *json, size_t len,
                             const char *id, char *err, size_t errlen) {
  int rc = NATKA_EMALFORMED;
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "v");
  const cJSON *rid = cJSON_GetObjectItemCaseSensitive(root, "id");
  const cJSON *sources = cJSON_GetObjectItemCaseSensitive(root, "sources");
  const cJSON *s;
  /* cJSON stops after the value: what follows must be blanks. */
  while (root != NULL && end < json + len &&
         (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
    end++;
  if (root == NULL || end != json + len) {
    natka__errf(err, errlen, rc, "checkpoint: not JSON");
    goto done;
  }
  if (!cJSON_IsObject(root)) {
    natka__errf(err, errlen, rc, "checkpoint: not a natka checkpoint record");
    goto done;
  }
  /* A later version may mean something else by the same fields. */
  if (v == NULL) {
    natka__errf(err, errlen, rc, "checkpoint: no version (\"v\")");
    goto done;
  }
  if (!cJSON_IsNumber(v)) {
    natka__errf(err, errlen, rc, "checkpoint: version (\"v\") is not a number");
    goto done;
  }
  if (v->valuedouble != 1) {
    natka__errf(err, errlen, rc,
                "checkpoint: version %g, natka reads version 1 only",
                v->valuedouble);
    goto done;
  }
  /* Another instance's positions are not this one's. */
  if (!cJSON_IsString(rid)) {
    natka__errf(err, errlen, rc, "checkpoint: no \"id\" (a string)");
    goto done;
  }
  if (strcmp(rid->valuestring, id) != 0) {
    natka__errf(err, errlen, rc,
                "checkpoint: written for id '%.200s', not '%s'",
                rid->valuestring, id);
    goto done;
  }
  if (!cJSON_IsObject(sources)) {
    natka__errf(err, errlen, rc, "checkpoint: not a natka checkpoint record");
    goto done;
  }
  cJSON_ArrayForEach(s, sources) {
    if ((rc = decode_source(c, s, err, errlen)) != 0)
      goto done;
  }
  rc = 0;
done:
  if (rc != 0)
    natka__checkpoint_clear(c);
  cJSON_Delete(root);
  return rc;
}

/* A consumer that connects as the producer does (kafka_conf.h); the
 * producer-only properties in kafka.properties are ignored by librdkafka
 * with a warning. */
static rd_kafka_t *new_consumer(const natka_config *conf, const char *bootstrap,
                                char *err, size_t errlen) {
  char why[512];
  rd_kafka_conf_t *kc = rd_kafka_conf_new();
  const char *fixed[][2] = {{"bootstrap.servers", bootstrap},
                            {"isolation.level", "read_committed"},
                            {"enable.partition.eof", "true"},
                            {"enable.auto.commit", "false"},
                            /* assign() needs one; nothing is committed */
                            {"group.id", "natka-checkpoint-reader"},
                            {"log_level", "3"}};
  int rc =
      natka__kafka_conf_apply(conf, kc, NATKA__KAFKA_CONSUMER, err, errlen);
  for (size_t i = 0; rc == 0 && i < sizeof(fixed) / sizeof(*fixed); i++)
    rc = natka__kafka_conf_set(kc, fixed[i][0], fixed[i][1], err, errlen);
  if (rc != 0) {
    rd_kafka_conf_destroy(kc);
    return NULL;
  }
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, why, sizeof(why));
  if (rk == NULL) {
    natka__errf(err, errlen, NATKA_EKAFKA, "checkpoint: %s", why);
    rd_kafka_conf_destroy(kc);
  }
  return rk;
}

int natka__checkpoint_take(const char *key, const void *mkey, size_t mkey_len,
                           const void *payload, size_t len, char **value) {
  size_t klen = strlen(key);
  if (mkey_len != klen || (klen > 0 && memcmp(mkey, key, klen) != 0))
    return 0;
  /* A tombstone deletes the checkpoint, as compaction will once it runs:
   * what comes before it no longer counts, what comes after does. */
  if (payload == NULL) {
    free(*value);
    *value = NULL;
    return 0;
  }
  char *v = natka__memdup(payload, len);
  if (v == NULL)
    return NATKA_ENOMEM;
  free(*value);
  *value = v;
  return 0;
}

int natka__checkpoint_read(const natka_config *conf, const char *bootstrap,
                           const char *key, char **value, char *err,
                           size_t errlen) {
  const char *topic = conf->kafka_checkpoint_topic;
  int64_t lo = 0, hi = 0;
  int rc = 0;
  *value = NULL;
  rd_kafka_t *rk = new_consumer(conf, bootstrap, err, errlen);
  if (rk == NULL)
    return NATKA_EKAFKA;
  rd_kafka_resp_err_t e =
      rd_kafka_query_watermark_offsets(rk, topic, 0, &lo, &hi, READ_TIMEOUT_MS);
  if (e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
      e == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
      e == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION || (e == 0 && hi <= lo))
    goto done; /* nothing committed yet */
  if (e != 0) {
    rc = natka__errf(err, errlen, NATKA_EKAFKA, "checkpoint: topic '%s': %s",
                     topic, rd_kafka_err2str(e));
    goto done;
  }
  rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(parts, topic, 0)->offset = lo;
  e = rd_kafka_assign(rk, parts);
  rd_kafka_topic_partition_list_destroy(parts);
  if (e != 0) {
    rc = natka__errf(err, errlen, NATKA_EKAFKA, "checkpoint: assign: %s",
                     rd_kafka_err2str(e));
    goto done;
  }
  /* read_committed stops at the last stable offset: a transaction still
   * open there (another instance's) holds us until it ends, and the record
   * we need may lie beyond it. So the end is `hi`, not the first EOF. */
  int64_t deadline = natka__mono_ns() + (int64_t)READ_TIMEOUT_MS * 1000000;
  int64_t reached = lo;
  while (reached < hi && rc == 0) {
    if (natka__mono_ns() > deadline) {
      rc = natka__errf(err, errlen, NATKA_ETIMEDOUT,
                       "checkpoint: topic '%s' not readable up to offset "
                       "%" PRId64 " (at %" PRId64 ") within %d ms: a "
                       "transaction is still open there",
                       topic, hi, reached, READ_TIMEOUT_MS);
      break;
    }
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, POLL_MS);
    if (m == NULL)
      continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      reached = m->offset > reached ? m->offset : reached;
    } else if (m->err != 0) {
      rc =
          natka__errf(err, errlen, NATKA_EKAFKA, "checkpoint: reading '%s': %s",
                      topic, rd_kafka_message_errstr(m));
    } else {
      reached = m->offset + 1 > reached ? m->offset + 1 : reached;
      if (natka__checkpoint_take(key, m->key, m->key_len, m->payload, m->len,
                                 value) != 0)
        rc = natka__errf(err, errlen, NATKA_ENOMEM, "out of memory");
    }
    rd_kafka_message_destroy(m);
  }
done:
  if (rc != 0) {
    free(*value);
    *value = NULL;
  }
  rd_kafka_destroy(rk);
  return rc;
}

/* 1 when the cluster lists `topic` (with partitions). */
static int topic_exists(rd_kafka_t *rk, const char *topic) {
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
  int found = 0;
  if (rkt != NULL && rd_kafka_metadata(rk, 0, rkt, &md, READ_TIMEOUT_MS) == 0) {
    found = md->topic_cnt == 1 && md->topics[0].err == 0 &&
            md->topics[0].partition_cnt > 0;
    rd_kafka_metadata_destroy(md);
  }
  if (rkt != NULL)
    rd_kafka_topic_destroy(rkt);
  return found;
}

int natka__checkpoint_ensure_topic(void *handle, const natka_config *conf,
                                   char *err, size_t errlen) {
  rd_kafka_t *rk = handle;
  char why[512];
  int rc = 0;
  rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(conf->kafka_checkpoint_topic,
                                                  1, -1, why, sizeof(why));
  if (nt == NULL)
    return natka__errf(err, errlen, NATKA_EKAFKA, "checkpoint topic: %s", why);
  /* Compacted, with segments short enough that compaction keeps the
   * start-up read small. */
  rd_kafka_NewTopic_set_config(nt, "cleanup.policy", "compact");
  rd_kafka_NewTopic_set_config(nt, "segment.ms", "600000");
  rd_kafka_NewTopic_set_config(nt, "min.cleanable.dirty.ratio", "0.1");
  rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
  rd_kafka_AdminOptions_t *o =
      rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_request_timeout(o, READ_TIMEOUT_MS, NULL, 0);
  rd_kafka_CreateTopics(rk, &nt, 1, o, q);
  rd_kafka_event_t *ev = rd_kafka_queue_poll(q, READ_TIMEOUT_MS + 1000);
  if (ev == NULL) {
    rc = natka__errf(err, errlen, NATKA_ETIMEDOUT,
                     "checkpoint topic '%s': no answer to CreateTopics",
                     conf->kafka_checkpoint_topic);
  } else if (rd_kafka_event_error(ev) != 0) {
    rc = natka__errf(err, errlen, NATKA_EKAFKA, "checkpoint topic '%s': %s",
                     conf->kafka_checkpoint_topic,
                     rd_kafka_event_error_string(ev));
  } else {
    size_t n = 0;
    const rd_kafka_topic_result_t **res = rd_kafka_CreateTopics_result_topics(
        rd_kafka_event_CreateTopics_result(ev), &n);
    rd_kafka_resp_err_t e = n > 0 ? rd_kafka_topic_result_error(res[0]) : 0;
    if (e != 0 && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
      rc = natka__errf(err, errlen, NATKA_EKAFKA, "checkpoint topic '%s': %s",
                       conf->kafka_checkpoint_topic,
                       rd_kafka_topic_result_error_string(res[0]));
  }
  if (ev != NULL)
    rd_kafka_event_destroy(ev);
  rd_kafka_AdminOptions_destroy(o);
  rd_kafka_queue_destroy(q);
  rd_kafka_NewTopic_destroy(nt);
  /* Not allowed to create topics, but someone made it: fine. */
  if (rc != 0 && topic_exists(rk, conf->kafka_checkpoint_topic))
    rc = 0;
  return rc;
}
