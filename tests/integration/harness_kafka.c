/*
 * Integration test helpers, Kafka side (see harness.h): a reader that
 * assigns every partition of the given topics from the beginning, outside
 * any consumer group, and copies what it reads into it_records.
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

/* ---------------------------------------------------------------- Kafka */

static char *dup_bytes(const void *p, size_t len) {
  char *s = p != NULL ? malloc(len + 1) : NULL;
  if (s != NULL) {
    memcpy(s, p, len);
    s[len] = '\0';
  }
  return s;
}

static void record_clear(it_record *r) {
  for (size_t i = 0; i < r->nhdrs; i++) {
    free(r->hdrs[i].name);
    free(r->hdrs[i].value);
  }
  free(r->hdrs);
  free(r->topic);
  free(r->key);
  free(r->value);
}

static void record_fill(it_record *r, const rd_kafka_message_t *m) {
  rd_kafka_headers_t *hs = NULL;
  const char *name;
  const void *val;
  size_t size;
  memset(r, 0, sizeof(*r));
  r->topic = strdup(rd_kafka_topic_name(m->rkt));
  r->partition = m->partition;
  r->offset = m->offset;
  r->key = dup_bytes(m->key, m->key_len);
  r->key_len = m->key_len;
  r->value = dup_bytes(m->payload, m->len);
  r->value_len = m->len;
  if (rd_kafka_message_headers(m, &hs) != RD_KAFKA_RESP_ERR_NO_ERROR)
    return;
  r->hdrs = calloc(rd_kafka_header_cnt(hs) + 1, sizeof(*r->hdrs));
  while (r->hdrs != NULL &&
         rd_kafka_header_get_all(hs, r->nhdrs, &name, &val, &size) == 0) {
    r->hdrs[r->nhdrs++] = (it_header){strdup(name), dup_bytes(val, size), size};
  }
}

/* Waits for each topic and assigns all its partitions from the start. */
static void assign_all(it_test *t, rd_kafka_t *rk, const char *const *topics,
                       size_t ntopics, int64_t deadline) {
  rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(8);
  for (size_t i = 0; i < ntopics; i++) {
    const struct rd_kafka_metadata *md = NULL;
    int found = 0;
    while (!found) {
      rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topics[i], NULL);
      if (rd_kafka_metadata(rk, 0, rkt, &md, 2000) == 0) {
        const struct rd_kafka_metadata_topic *mt = &md->topics[0];
        found = md->topic_cnt == 1 && mt->err == 0 && mt->partition_cnt > 0;
        for (int p = 0; found && p < mt->partition_cnt; p++)
          rd_kafka_topic_partition_list_add(parts, topics[i],
                                            mt->partitions[p].id)
              ->offset = RD_KAFKA_OFFSET_BEGINNING;
        rd_kafka_metadata_destroy(md);
      }
      rd_kafka_topic_destroy(rkt);
      if (!found && it_now_ms() >= deadline) {
        rd_kafka_topic_partition_list_destroy(parts);
        IT_FAIL(t, "Kafka topic %s did not appear in time", topics[i]);
      }
      if (!found)
        it_sleep_ms(250);
    }
  }
  rd_kafka_resp_err_t err = rd_kafka_assign(rk, parts);
  rd_kafka_topic_partition_list_destroy(parts);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
    IT_FAIL(t, "assign: %s", rd_kafka_err2str(err));
}

static rd_kafka_t *reader_new(it_test *t) {
  static const char *const props[][2] = {{"enable.auto.commit", "false"},
                                         {"isolation.level", "read_committed"},
                                         {"enable.partition.eof", "false"},
                                         {"fetch.wait.max.ms", "100"},
                                         {"allow.auto.create.topics", "false"},
                                         {"client.id", "natka-it-reader"}};
  char why[512];
  char group[96];
  rd_kafka_conf_t *kc = rd_kafka_conf_new();
  /* assign() wants a group.id; the reader never joins or commits to it. */
  snprintf(group, sizeof(group), "%s_reader", t->uniq);
  if (rd_kafka_conf_set(kc, "bootstrap.servers", t->kafka_brokers, why,
                        sizeof(why)) != RD_KAFKA_CONF_OK ||
      rd_kafka_conf_set(kc, "group.id", group, why, sizeof(why)) !=
          RD_KAFKA_CONF_OK)
    IT_FAIL(t, "reader config: %s", why);
  for (size_t i = 0; i < sizeof(props) / sizeof(props[0]); i++)
    if (rd_kafka_conf_set(kc, props[i][0], props[i][1], why, sizeof(why)) !=
        RD_KAFKA_CONF_OK)
      IT_FAIL(t, "reader config %s: %s", props[i][0], why);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, why, sizeof(why));
  if (rk == NULL)
    IT_FAIL(t, "cannot create the Kafka reader: %s", why);
  return rk;
}

static size_t read_loop(it_test *t, const char *const *topics, size_t ntopics,
                        size_t want, int64_t timeout_ms, it_record_cb cb,
                        void *data, it_records *keep) {
  int64_t deadline = it_now_ms() + timeout_ms, until = deadline;
  size_t count = 0;
  int done = 0;
  rd_kafka_t *rk = reader_new(t);
  assign_all(t, rk, topics, ntopics, deadline);
  while (it_now_ms() < until) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
    if (m == NULL)
      continue;
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      fprintf(stderr, "kafka reader: %s\n", rd_kafka_message_errstr(m));
      rd_kafka_message_destroy(m);
      continue;
    }
    it_record r;
    record_fill(&r, m);
    rd_kafka_message_destroy(m);
    count++;
    int enough = cb != NULL && cb(t, &r, data);
    if (keep != NULL && keep->n == keep->cap) {
      keep->cap = keep->cap * 2 + 1024;
      keep->v = realloc(keep->v, keep->cap * sizeof(*keep->v));
      if (keep->v == NULL)
        IT_FAIL(t, "out of memory");
    }
    if (keep != NULL)
      keep->v[keep->n++] = r;
    else
      record_clear(&r);
    if (!done && (enough || (want > 0 && count >= want))) {
      done = 1;
      until = it_now_ms() + IT_KAFKA_LINGER_MS;
    }
  }
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return count;
}

size_t it_kafka_read(it_test *t, const char *const *topics, size_t ntopics,
                     size_t want, int64_t timeout_ms, it_record_cb cb,
                     void *data) {
  return read_loop(t, topics, ntopics, want, timeout_ms, cb, data, NULL);
}

size_t it_kafka_collect(it_test *t, const char *const *topics, size_t ntopics,
                        size_t want, int64_t timeout_ms, it_records *out) {
  return read_loop(t, topics, ntopics, want, timeout_ms, NULL, NULL, out);
}

void it_records_free(it_records *rs) {
  for (size_t i = 0; i < rs->n; i++)
    record_clear(&rs->v[i]);
  free(rs->v);
  memset(rs, 0, sizeof(*rs));
}

const it_header *it_record_header(const it_record *r, const char *name,
                                  size_t nth) {
  for (size_t i = 0; i < r->nhdrs; i++)
    if (strcmp(r->hdrs[i].name, name) == 0 && nth-- == 0)
      return &r->hdrs[i];
  return NULL;
}

const char *it_record_hstr(const it_record *r, const char *name) {
  const it_header *h = it_record_header(r, name, 0);
  return h != NULL ? h->value : NULL;
}

/* ---------------------------------------------------------------- tail */

struct it_kafka_tail {
  rd_kafka_t *rk;
};

void it_kafka_create_topics(it_test *t, const char *const *topics,
                            size_t ntopics, int partitions) {
  char why[512];
  rd_kafka_conf_t *kc = rd_kafka_conf_new();
  if (rd_kafka_conf_set(kc, "bootstrap.servers", t->kafka_brokers, why,
                        sizeof(why)) != RD_KAFKA_CONF_OK)
    IT_FAIL(t, "admin config: %s", why);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, why, sizeof(why));
  if (rk == NULL)
    IT_FAIL(t, "cannot create the Kafka admin client: %s", why);
  rd_kafka_NewTopic_t **nt = calloc(ntopics, sizeof(*nt));
  IT_CHECK(t, nt != NULL);
  for (size_t i = 0; i < ntopics; i++)
    if ((nt[i] = rd_kafka_NewTopic_new(topics[i], partitions, 1, why,
                                       sizeof(why))) == NULL)
      IT_FAIL(t, "topic %s: %s", topics[i], why);
  rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
  rd_kafka_CreateTopics(rk, nt, ntopics, NULL, q);
  rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
  const rd_kafka_CreateTopics_result_t *res =
      ev != NULL ? rd_kafka_event_CreateTopics_result(ev) : NULL;
  if (res == NULL)
    IT_FAIL(t, "CreateTopics: %s",
            ev != NULL ? rd_kafka_event_error_string(ev) : "no answer");
  size_t n = 0;
  const rd_kafka_topic_result_t **tr =
      rd_kafka_CreateTopics_result_topics(res, &n);
  for (size_t i = 0; i < n; i++) {
    rd_kafka_resp_err_t err = rd_kafka_topic_result_error(tr[i]);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR &&
        err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
      IT_FAIL(t, "creating topic %s: %s", rd_kafka_topic_result_name(tr[i]),
              rd_kafka_topic_result_error_string(tr[i]));
  }
  rd_kafka_event_destroy(ev);
  rd_kafka_queue_destroy(q);
  rd_kafka_NewTopic_destroy_array(nt, ntopics);
  free(nt);
  rd_kafka_destroy(rk);
}

it_kafka_tail *it_kafka_tail_open(it_test *t, const char *const *topics,
                                  size_t ntopics, int64_t timeout_ms) {
  it_kafka_tail *k = calloc(1, sizeof(*k));
  IT_CHECK(t, k != NULL);
  k->rk = reader_new(t);
  assign_all(t, k->rk, topics, ntopics, it_now_ms() + timeout_ms);
  return k;
}

size_t it_kafka_tail_poll(it_test *t, it_kafka_tail *k, int64_t timeout_ms,
                          it_record_cb cb, void *data) {
  int64_t deadline = it_now_ms() + timeout_ms;
  size_t count = 0;
  do {
    int64_t left = deadline - it_now_ms();
    rd_kafka_message_t *m = rd_kafka_consumer_poll(
        k->rk, left < 100 ? (int)(left > 0 ? left : 0) : 100);
    if (m == NULL)
      continue;
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      fprintf(stderr, "kafka reader: %s\n", rd_kafka_message_errstr(m));
      rd_kafka_message_destroy(m);
      continue;
    }
    it_record r;
    record_fill(&r, m);
    rd_kafka_message_destroy(m);
    count++;
    int enough = cb != NULL && cb(t, &r, data);
    record_clear(&r);
    if (enough)
      break;
  } while (it_now_ms() < deadline);
  return count;
}

void it_kafka_tail_close(it_kafka_tail *k) {
  if (k == NULL)
    return;
  rd_kafka_consumer_close(k->rk);
  rd_kafka_destroy(k->rk);
  free(k);
}

/* ------------------------------------------------ added for dlq / malformed */

static void on_produced(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque) {
  (void)rk;
  (void)opaque;
  *(rd_kafka_resp_err_t *)m->_private = m->err;
}

void it_kafka_produce(it_test *t, const char *topic, const char *key,
                      size_t key_len, const void *value, size_t len,
                      const it_hdr *hdrs, size_t nhdrs) {
  char why[512];
  rd_kafka_resp_err_t result = RD_KAFKA_RESP_ERR__IN_PROGRESS;
  rd_kafka_conf_t *kc = rd_kafka_conf_new();
  if (rd_kafka_conf_set(kc, "bootstrap.servers", t->kafka_brokers, why,
                        sizeof(why)) != RD_KAFKA_CONF_OK)
    IT_FAIL(t, "producer config: %s", why);
  rd_kafka_conf_set_dr_msg_cb(kc, on_produced);
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, why, sizeof(why));
  if (rk == NULL)
    IT_FAIL(t, "cannot create the Kafka producer: %s", why);
  rd_kafka_headers_t *hs = rd_kafka_headers_new(nhdrs + 1);
  size_t klen = key != NULL ? key_len : 0;
  for (size_t i = 0; i < nhdrs; i++)
    rd_kafka_header_add(hs, hdrs[i].name, -1, hdrs[i].value, -1);
  rd_kafka_resp_err_t err = rd_kafka_producev(
      rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
      RD_KAFKA_V_KEY(key, klen), RD_KAFKA_V_VALUE((void *)value, len),
      RD_KAFKA_V_HEADERS(hs), RD_KAFKA_V_OPAQUE(&result), RD_KAFKA_V_END);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    rd_kafka_headers_destroy(hs);
    IT_FAIL(t, "produce to %s: %s", topic, rd_kafka_err2str(err));
  }
  rd_kafka_flush(rk, 30000);
  rd_kafka_destroy(rk);
  if (result != RD_KAFKA_RESP_ERR_NO_ERROR)
    IT_FAIL(t, "produce to %s not confirmed: %s", topic,
            rd_kafka_err2str(result));
}
