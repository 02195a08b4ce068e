/*
 * The Kafka sink: an idempotent librdkafka producer whose delivery reports
 * arrive on the loop thread.
 *
 * librdkafka runs its own threads. Its main queue (delivery reports, errors,
 * logs) is wired to a pipe with rd_kafka_queue_io_event_enable(); a uv_poll on
 * the pipe's read end wakes the loop, which serves the queue with
 * rd_kafka_poll(rk, 0) until it is empty. librdkafka writes to the pipe only
 * when the queue goes from empty to non-empty, so each wake-up drains it all;
 * a slow timer covers the one race in that scheme (a report queued between
 * our last poll and the next write).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "codec.h"
#include "gateway.h"
#include "util.h"

#define SAFETY_POLL_MS 200
#define PROBE_TIMEOUT_MS 3000
#define PROBE_BACKOFF_MIN_MS 250
#define PROBE_BACKOFF_MAX_MS 10000
#define EMBEDDED_BROKERS 3

typedef struct kafka_sink {
  natka__sink base;
  natka__log *log;
  const natka_config *conf;
  rd_kafka_t *rk;
  rd_kafka_queue_t *mainq;
  int pipefd[2];
  uv_poll_t poll;
  uv_timer_t timer;
  int handles_open;

  /* Readiness: a metadata request on the threadpool, retried with backoff
   * on `retry` until the cluster answers. */
  uv_work_t probe;
  int probing;
  rd_kafka_resp_err_t probe_err;
  int probe_brokers;
  uv_timer_t retry;
  int64_t retry_ms;
  void (*ready)(natka__sink *sink);
  int closing;
  size_t queued;
  char *embedded; /* bootstrap address of the embedded cluster */
  void (*closed)(natka__sink *sink);
  int64_t last_error_log_ns;
} kafka_sink;

static int kafka_set(rd_kafka_conf_t *kc, const char *key, const char *value,
                     char *err, size_t errlen) {
  char why[512];
  if (rd_kafka_conf_set(kc, key, value, why, sizeof(why)) != RD_KAFKA_CONF_OK)
    return natka__errf(err, errlen, NATKA_ECONFIG,
                       "kafka: property '%s' = '%s': %s", key, value, why);
  return 0;
}

/* Errors that no retry can cure: the event goes to the dead-letter topic.
 * Everything else (timeouts, brokers down, leader changes) is retriable and
 * the source redelivers the event later. */
static int permanent_error(rd_kafka_resp_err_t err) {
  switch (err) {
  case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
  case RD_KAFKA_RESP_ERR_INVALID_MSG:
  case RD_KAFKA_RESP_ERR_INVALID_RECORD:
  case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
  case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
  case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
  case RD_KAFKA_RESP_ERR__INVALID_ARG:
  case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
  case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
  case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    return 1;
  default:
    return 0;
  }
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque) {
  kafka_sink *ks = opaque;
  natka__delivery d = {0};
  (void)rk;
  d.topic = rd_kafka_topic_name(m->rkt);
  d.partition = m->partition;
  d.offset = m->offset;
  if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    d.err = NATKA_EKAFKA;
    d.errmsg = rd_kafka_err2str(m->err);
    d.retriable = !permanent_error(m->err);
  }
  ks->queued--;
  ks->base.on_delivery(&ks->base, m->_private, &d);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason,
                     void *opaque) {
  kafka_sink *ks = opaque;
  char fatal[512];
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    rd_kafka_fatal_error(rk, fatal, sizeof(fatal));
    natka__error(ks->log,
                 "kafka: fatal producer error: %s; stopping (what "
                 "was not confirmed is redelivered)",
                 fatal);
    natka__gateway_fatal(ks->base.gw, NATKA_EKAFKA);
    return;
  }
  /* Brokers going away repeat this often; one line every 10 s is enough. */
  int64_t now = natka__mono_ns();
  if (now - ks->last_error_log_ns < 10 * 1000000000LL &&
      ks->last_error_log_ns != 0)
    return;
  ks->last_error_log_ns = now;
  natka__warn(ks->log, "kafka: %s: %s (retrying)",
              rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac,
                   const char *buf) {
  kafka_sink *ks = rd_kafka_opaque(rk);
  /* Level 3 lines (connection FAILs) repeat what on_error already reports
   * once per 10 s, so they only show at debug level. */
  natka_log_level lvl = level <= 2   ? NATKA_LOG_ERROR
                        : level == 4 ? NATKA_LOG_WARN
                                     : NATKA_LOG_DEBUG;
  natka__logf(ks->log, lvl, "kafka: %s: %s", fac, buf);
}

static void serve(kafka_sink *ks) {
  char drain[64];
  while (read(ks->pipefd[0], drain, sizeof(drain)) > 0)
    ;
  while (rd_kafka_poll(ks->rk, 0) > 0)
    ;
}

static void on_poll(uv_poll_t *h, int status, int events) {
  (void)status;
  (void)events;
  serve(h->data);
}

static void on_timer(uv_timer_t *t) {
  serve(t->data);
}

/* Asks the cluster for every topic it has. Besides proving the cluster is
 * there, this fills librdkafka's metadata cache, so the first event for an
 * existing topic is sent at once instead of waiting for the topic scan
 * (up to a second) while the producer settles on its brokers. */
static void probe_work(uv_work_t *w) {
  kafka_sink *ks = w->data;
  const struct rd_kafka_metadata *md = NULL;
  ks->probe_err = rd_kafka_metadata(ks->rk, 1, NULL, &md, PROBE_TIMEOUT_MS);
  if (ks->probe_err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    ks->probe_brokers = md->broker_cnt;
    rd_kafka_metadata_destroy(md);
  }
}

static void close_handles(kafka_sink *ks);
static void start_probe(kafka_sink *ks);
static void on_retry(uv_timer_t *t) {
  start_probe(t->data);
}

static void after_probe(uv_work_t *w, int status) {
  kafka_sink *ks = w->data;
  (void)status;
  ks->probing = 0;
  if (ks->closing) {
    close_handles(ks);
    return;
  }
  if (ks->probe_err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    natka__info(ks->log, "kafka: cluster answered (%d broker(s))",
                ks->probe_brokers);
    if (ks->ready != NULL)
      ks->ready(&ks->base);
    ks->ready = NULL;
    return;
  }
  if (ks->retry_ms == 0 || ks->retry_ms >= PROBE_BACKOFF_MAX_MS)
    natka__warn(ks->log,
                "kafka: %s not reachable (%s); nothing is fetched until it "
                "answers (retrying)",
                ks->conf->kafka_brokers, rd_kafka_err2str(ks->probe_err));
  ks->retry_ms = ks->retry_ms == 0 ? PROBE_BACKOFF_MIN_MS : ks->retry_ms * 2;
  if (ks->retry_ms > PROBE_BACKOFF_MAX_MS)
    ks->retry_ms = PROBE_BACKOFF_MAX_MS;
  uv_timer_start(&ks->retry, on_retry, (uint64_t)ks->retry_ms, 0);
}

static void start_probe(kafka_sink *ks) {
  if (ks->closing || ks->probing)
    return;
  ks->probe.data = ks;
  if (uv_queue_work(natka_loop(ks->base.gw), &ks->probe, probe_work,
                    after_probe) == 0)
    ks->probing = 1;
}

static void ks_await_ready(natka__sink *sink,
                           void (*ready)(natka__sink *sink)) {
  kafka_sink *ks = (kafka_sink *)sink;
  ks->ready = ready;
  start_probe(ks);
}

static int ks_send(natka__sink *sink, const natka_event *ev,
                   const natka__dest *dest, const natka__header *extra,
                   size_t nextra, void *opaque) {
  kafka_sink *ks = (kafka_sink *)sink;
  natka__wire_headers wh = {0};
  rd_kafka_headers_t *hdrs = NULL;
  int rc = natka__event_to_kafka(ev, ks->conf->event_source, &wh);
  if (rc != 0)
    return rc;
  hdrs = rd_kafka_headers_new(wh.n + dest->nhdrs + nextra);
  for (size_t i = 0; i < wh.n; i++)
    rd_kafka_header_add(hdrs, wh.h[i].name, -1, wh.h[i].value,
                        (ssize_t)wh.h[i].len);
  for (size_t i = 0; i < dest->nhdrs; i++)
    rd_kafka_header_add(hdrs, dest->hdrs[i].name, -1, dest->hdrs[i].value,
                        (ssize_t)dest->hdrs[i].len);
  for (size_t i = 0; i < nextra; i++)
    rd_kafka_header_add(hdrs, extra[i].name, -1, extra[i].value,
                        (ssize_t)extra[i].len);
  natka__wire_headers_clear(&wh);

  const char *key = dest->has_key ? dest->key : ev->key;
  size_t key_len = key == NULL     ? 0
                   : dest->has_key ? dest->key_len
                                   : ev->key_len;
  int64_t ts_ms = ev->ts / 1000000;
  /* A non-NULL pointer keeps empty data an empty value, not a tombstone. */
  const char *data = dest->has_data     ? dest->data
                     : ev->data != NULL ? ev->data
                                        : "";
  size_t data_len = dest->has_data ? dest->data_len : ev->data_len;
  rd_kafka_resp_err_t err = rd_kafka_producev(
      ks->rk, RD_KAFKA_V_TOPIC(dest->topic),
      RD_KAFKA_V_PARTITION(dest->partition >= 0 ? dest->partition
                                                : RD_KAFKA_PARTITION_UA),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
      RD_KAFKA_V_VALUE((void *)data, data_len), RD_KAFKA_V_KEY(key, key_len),
      RD_KAFKA_V_TIMESTAMP(ts_ms), RD_KAFKA_V_HEADERS(hdrs),
      RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    rd_kafka_headers_destroy(hdrs); /* still ours when produce fails */
    return err == RD_KAFKA_RESP_ERR__QUEUE_FULL ? NATKA_EBUSY : NATKA_EKAFKA;
  }
  ks->queued++;
  return 0;
}

static size_t ks_queued(natka__sink *sink) {
  return ((kafka_sink *)sink)->queued;
}

static void release(kafka_sink *ks) {
  if (ks->mainq != NULL) {
    rd_kafka_queue_io_event_enable(ks->mainq, -1, NULL, 0);
    rd_kafka_queue_destroy(ks->mainq);
  }
  if (ks->rk != NULL)
    rd_kafka_destroy(ks->rk);
  for (int i = 0; i < 2; i++)
    if (ks->pipefd[i] >= 0)
      close(ks->pipefd[i]);
  free(ks->embedded);
  free(ks);
}

static void on_handle_closed(uv_handle_t *h) {
  kafka_sink *ks = h->data;
  if (--ks->handles_open > 0)
    return;
  void (*closed)(natka__sink *) = ks->closed;
  /* The producer stays until free: its last reports were already served. */
  if (closed != NULL)
    closed(&ks->base);
}

/* Events still queued here were given up by the gateway (drain timeout):
 * purging makes librdkafka report them as failed, so their sources are
 * nak'ed rather than acked. */
static void ks_close(natka__sink *sink, void (*done)(natka__sink *sink)) {
  kafka_sink *ks = (kafka_sink *)sink;
  ks->closed = done;
  ks->closing = 1;
  ks->ready = NULL;
  if (!ks->probing) /* else after_probe closes once the probe is back */
    close_handles(ks);
}

static void close_handles(kafka_sink *ks) {
  if (ks->queued > 0) {
    rd_kafka_purge(ks->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    for (int i = 0; i < 50 && ks->queued > 0; i++)
      rd_kafka_poll(ks->rk, 10);
  }
  if (ks->handles_open == 0) {
    if (ks->closed != NULL)
      ks->closed(&ks->base);
    return;
  }
  uv_poll_stop(&ks->poll);
  uv_close((uv_handle_t *)&ks->poll, on_handle_closed);
  uv_close((uv_handle_t *)&ks->timer, on_handle_closed);
  uv_close((uv_handle_t *)&ks->retry, on_handle_closed);
}

static void ks_free(natka__sink *sink) {
  release((kafka_sink *)sink);
}

static const natka__sink_vt kafka_vt = {
    .kind = "kafka",
    .await_ready = ks_await_ready,
    .send = ks_send,
    .queued = ks_queued,
    .close = ks_close,
    .free = ks_free,
};

static int configure(kafka_sink *ks, rd_kafka_conf_t *kc, char *err,
                     size_t errlen) {
  const natka_config *c = ks->conf;
  char num[32];
  int rc = 0;
  int embedded = strcmp(c->kafka_brokers, "embedded") == 0;

  if (embedded) {
    snprintf(num, sizeof(num), "%d", EMBEDDED_BROKERS);
    rc = kafka_set(kc, "test.mock.num.brokers", num, err, errlen);
  } else {
    rc = kafka_set(kc, "bootstrap.servers", c->kafka_brokers, err, errlen);
  }
  if (rc == 0)
    rc = kafka_set(kc, "enable.idempotence", "true", err, errlen);
  if (rc == 0)
    rc = kafka_set(kc, "client.id", c->nats_name, err, errlen);
  if (rc == 0) {
    snprintf(num, sizeof(num), "%lld", (long long)c->kafka_linger_ms);
    rc = kafka_set(kc, "linger.ms", num, err, errlen);
  }
  if (rc == 0) {
    snprintf(num, sizeof(num), "%lld", (long long)c->kafka_batch_size);
    rc = kafka_set(kc, "batch.size", num, err, errlen);
  }
  if (rc == 0)
    rc = kafka_set(kc, "compression.codec", c->kafka_compression, err, errlen);
  if (rc == 0) {
    snprintf(num, sizeof(num), "%lld", (long long)c->kafka_message_timeout_ms);
    rc = kafka_set(kc, "message.timeout.ms", num, err, errlen);
  }
  if (rc == 0) {
    /* Room for the high watermark plus what is in flight when it is hit. */
    long long room = c->kafka_queue_high + c->max_inflight * 2 + 1000;
    snprintf(num, sizeof(num), "%lld", room > 10000000 ? 10000000 : room);
    rc = kafka_set(kc, "queue.buffering.max.messages", num, err, errlen);
  }
  if (rc == 0) {
    snprintf(num, sizeof(num), "%lld",
             (long long)(c->max_event_bytes + 64 * 1024));
    rc = kafka_set(kc, "message.max.bytes", num, err, errlen);
  }
  if (rc == 0)
    rc = kafka_set(kc, "log.queue", "true", err, errlen);
  for (size_t i = 0; rc == 0 && i < c->kafka_props.n; i++)
    rc = kafka_set(kc, c->kafka_props.keys[i], c->kafka_props.values[i], err,
                   errlen);
  return rc;
}

/* Raw properties that would make a delivery report mean less than "Kafka
 * has it": natka acks its sources on those reports. */
static int guarantee_breaking(const char *key, const char *value) {
  if (strcmp(key, "acks") == 0 || strcmp(key, "request.required.acks") == 0)
    return strcmp(value, "all") != 0 && strcmp(value, "-1") != 0;
  if (strcmp(key, "enable.idempotence") == 0)
    return strcmp(value, "true") != 0;
  if (strcmp(key, "delivery.report.only.error") == 0)
    return strcmp(value, "false") != 0;
  return 0;
}

int natka__sink_kafka_check(const natka_config *conf, char *err,
                            size_t errlen) {
  for (size_t i = 0; i < conf->kafka_props.n; i++)
    if (guarantee_breaking(conf->kafka_props.keys[i],
                           conf->kafka_props.values[i]))
      return natka__errf(err, errlen, NATKA_ECONFIG,
                         "config: 'kafka.properties.%s' = '%s' would let "
                         "natka ack events Kafka may not have; natka needs "
                         "acks=all with idempotence and every delivery report",
                         conf->kafka_props.keys[i],
                         conf->kafka_props.values[i]);
  kafka_sink probe = {.conf = conf};
  rd_kafka_conf_t *kc = rd_kafka_conf_new();
  int rc = configure(&probe, kc, err, errlen);
  rd_kafka_conf_destroy(kc);
  return rc;
}

int natka__sink_kafka_new(natka__sink **out, natka *gw, natka__delivery_cb cb,
                          char *err, size_t errlen) {
  char why[512];
  rd_kafka_conf_t *kc = NULL;
  kafka_sink *ks = calloc(1, sizeof(*ks));
  int rc;
  if (ks == NULL)
    return natka__errf(err, errlen, NATKA_ENOMEM, "out of memory");
  ks->base.vt = &kafka_vt;
  ks->base.gw = gw;
  ks->base.on_delivery = cb;
  ks->conf = natka__gateway_config(gw);
  ks->log = natka__gateway_log(gw);
  ks->pipefd[0] = ks->pipefd[1] = -1;

  kc = rd_kafka_conf_new();
  rc = configure(ks, kc, err, errlen);
  if (rc != 0)
    goto fail;
  rd_kafka_conf_set_dr_msg_cb(kc, on_delivery);
  rd_kafka_conf_set_error_cb(kc, on_error);
  rd_kafka_conf_set_log_cb(kc, on_log);
  rd_kafka_conf_set_opaque(kc, ks);

  ks->rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, why, sizeof(why));
  if (ks->rk == NULL) {
    rc = natka__errf(err, errlen, NATKA_EKAFKA, "kafka: %s", why);
    goto fail;
  }
  kc = NULL; /* rd_kafka_new() owns it now */
  rd_kafka_set_log_queue(ks->rk, NULL);

  if (strcmp(ks->conf->kafka_brokers, "embedded") == 0) {
    rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(ks->rk);
    ks->embedded =
        natka__strdup(mc ? rd_kafka_mock_cluster_bootstraps(mc) : "");
  }

  if (pipe2(ks->pipefd, O_NONBLOCK | O_CLOEXEC) != 0) {
    rc =
        natka__errf(err, errlen, NATKA_EIO, "kafka: pipe: %s", strerror(errno));
    goto fail;
  }
  ks->mainq = rd_kafka_queue_get_main(ks->rk);
  rd_kafka_queue_io_event_enable(ks->mainq, ks->pipefd[1], "1", 1);

  uv_loop_t *loop = natka_loop(gw);
  if (uv_poll_init(loop, &ks->poll, ks->pipefd[0]) != 0 ||
      uv_timer_init(loop, &ks->timer) != 0 ||
      uv_timer_init(loop, &ks->retry) != 0) {
    rc = natka__errf(err, errlen, NATKA_EIO, "kafka: cannot watch the pipe");
    goto fail;
  }
  ks->poll.data = ks;
  ks->timer.data = ks;
  ks->retry.data = ks;
  ks->handles_open = 3;
  uv_poll_start(&ks->poll, UV_READABLE, on_poll);
  uv_timer_start(&ks->timer, on_timer, SAFETY_POLL_MS, SAFETY_POLL_MS);
  /* The timer alone must not keep a host's loop alive. */
  uv_unref((uv_handle_t *)&ks->timer);
  *out = &ks->base;
  return 0;

fail:
  if (kc != NULL)
    rd_kafka_conf_destroy(kc);
  release(ks);
  return rc;
}

const char *natka__sink_kafka_embedded(natka__sink *sink) {
  return ((kafka_sink *)sink)->embedded;
}
