/*
 * The Kafka sink: an idempotent (by default transactional) librdkafka
 * producer whose delivery reports arrive on the loop thread.
 *
 * librdkafka runs its own threads. Its main queue (delivery reports, errors,
 * logs) is wired to a pipe with rd_kafka_queue_io_event_enable(); a uv_poll on
 * the pipe's read end wakes the loop, which serves the queue as events with
 * rd_kafka_queue_poll() until it is empty. librdkafka writes to the pipe only
 * when the queue goes from empty to non-empty, so each wake-up drains it all;
 * a slow timer covers the one race in that scheme (a report queued between
 * our last poll and the next write). Events rather than callbacks: the
 * blocking transaction calls below run on the threadpool, and with callbacks
 * their internal flush would serve the queue, and run our callbacks, there.
 *
 * Start-up runs on the threadpool, retried with backoff until it succeeds:
 * a metadata request (the cluster is there; it also warms the metadata
 * cache), then with transactions init_transactions() (which fences a
 * previous incarnation and ends its open transaction), creating the
 * checkpoint topic, and reading this instance's last checkpoint.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "checkpoint.h"
#include "codec.h"
#include "host.h"
#include "pipe.h"
#include "kafka_conf.h"
#include "util.h"

#define SAFETY_POLL_MS 200
#define PROBE_TIMEOUT_MS 3000
#define PROBE_BACKOFF_MIN_MS 250
#define PROBE_BACKOFF_MAX_MS 10000
#define EMBEDDED_BROKERS 3
#define TXN_INIT_TIMEOUT_MS 5000
#define TXN_TIMEOUT_MS 60000

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
  int handles_closing;
  int stopped; /* a fatal error stopped the gateway */

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

  /* Transactions (txn != 0). Start-up results, written by the probe work. */
  int txn;
  char *txn_id;
  int txn_inited;        /* init_transactions done */
  int txn_ready;         /* ... and the checkpoint topic is there */
  int start_rc;          /* NATKA_E* of the step that failed */
  int start_fatal;       /* ... and the producer cannot be used again */
  int start_unsupported; /* the cluster has no transactions */
  char start_err[512];
  char *checkpoint; /* the last checkpoint read at start, or NULL */
  /* One commit or abort at a time, on the threadpool. */
  uv_work_t txn_work;
  int txn_busy;
  int txn_commit;  /* 1 commit, 0 abort */
  int txn_waiting; /* commit asked, waiting for the checkpoint's report */
  rd_kafka_error_t *txn_error;
  natka__txn_done txn_cb;
  void *txn_data;
  int ckpt_tag; /* its address marks the checkpoint record's reports */
  int ckpt_pending;
} kafka_sink;

static int kafka_set(rd_kafka_conf_t *kc, const char *key, const char *value,
                     char *err, size_t errlen) {
  return natka__kafka_conf_set(kc, key, value, err, errlen);
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

static void start_txn_work(kafka_sink *ks);

static void on_delivery(kafka_sink *ks, const rd_kafka_message_t *m) {
  natka__delivery d = {0};
  if (m->_private == &ks->ckpt_tag) {
    /* A failed checkpoint fails the commit too; librdkafka says why. */
    ks->ckpt_pending--;
    if (ks->ckpt_pending == 0 && ks->txn_waiting) {
      ks->txn_waiting = 0;
      start_txn_work(ks);
    }
    return;
  }
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

/* Another producer took over our transactional.id. */
static int fenced(rd_kafka_resp_err_t err) {
  return err == RD_KAFKA_RESP_ERR__FENCED ||
         err == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
         err == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH;
}

static void fatal_stop(kafka_sink *ks, rd_kafka_resp_err_t err,
                       const char *why) {
  if (ks->stopped++) /* librdkafka reports it more than once */
    return;
  if (fenced(err)) {
    natka__error(ks->log,
                 "kafka: fenced: another natka started with transactional.id "
                 "'%s' (%s); this one stops. Give each instance its own "
                 "nats.name or kafka.transactional_id",
                 ks->txn_id, why);
    ks->base.host->fatal(ks->base.host, NATKA_EFENCED);
    return;
  }
  natka__error(ks->log,
               "kafka: fatal producer error: %s; stopping (what "
               "was not confirmed is redelivered)",
               why);
  ks->base.host->fatal(ks->base.host, NATKA_EKAFKA);
}

static void on_error(kafka_sink *ks, int err, const char *reason) {
  char fatal[512];
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    rd_kafka_resp_err_t orig =
        rd_kafka_fatal_error(ks->rk, fatal, sizeof(fatal));
    fatal_stop(ks, orig, fatal);
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

static void on_log(kafka_sink *ks, int level, const char *fac,
                   const char *buf) {
  /* Level 3 lines (connection FAILs) repeat what on_error already reports
   * once per 10 s, so they only show at debug level. */
  natka_log_level lvl = level <= 2   ? NATKA_LOG_ERROR
                        : level == 4 ? NATKA_LOG_WARN
                                     : NATKA_LOG_DEBUG;
  natka__logf(ks->log, lvl, "kafka: %s: %s", fac, buf);
}

static void serve_event(kafka_sink *ks, rd_kafka_event_t *ev) {
  const rd_kafka_message_t *m;
  const char *fac, *text;
  int level;
  switch (rd_kafka_event_type(ev)) {
  case RD_KAFKA_EVENT_DR:
    while ((m = rd_kafka_event_message_next(ev)) != NULL)
      on_delivery(ks, m);
    break;
  case RD_KAFKA_EVENT_ERROR:
    on_error(ks, rd_kafka_event_error(ev), rd_kafka_event_error_string(ev));
    break;
  case RD_KAFKA_EVENT_LOG:
    if (rd_kafka_event_log(ev, &fac, &text, &level) == 0)
      on_log(ks, level, fac, text);
    break;
  default:
    break;
  }
  rd_kafka_event_destroy(ev);
}

/* Serves the main queue until it is empty, waiting up to wait_ms for the
 * first event. */
static void serve_for(kafka_sink *ks, int wait_ms) {
  char drain[64];
  rd_kafka_event_t *ev;
  while (read(ks->pipefd[0], drain, sizeof(drain)) > 0)
    ;
  while ((ev = rd_kafka_queue_poll(ks->mainq, wait_ms)) != NULL) {
    serve_event(ks, ev);
    wait_ms = 0;
  }
}

static void serve(kafka_sink *ks) {
  serve_for(ks, 0);
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
  ks->start_rc = 0;
  ks->start_fatal = 0;
  ks->start_unsupported = 0;
  ks->probe_err = rd_kafka_metadata(ks->rk, 1, NULL, &md, PROBE_TIMEOUT_MS);
  if (ks->probe_err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    ks->probe_brokers = md->broker_cnt;
    rd_kafka_metadata_destroy(md);
  }
  if (ks->probe_err != 0 || !ks->txn || ks->txn_ready)
    return;
  rd_kafka_error_t *e =
      ks->txn_inited ? NULL
                     : rd_kafka_init_transactions(ks->rk, TXN_INIT_TIMEOUT_MS);
  if (e != NULL) {
    rd_kafka_resp_err_t code = rd_kafka_error_code(e);
    snprintf(ks->start_err, sizeof(ks->start_err),
             "kafka: initializing transactions for '%s': %s", ks->txn_id,
             rd_kafka_error_string(e));
    ks->start_rc = NATKA_EKAFKA;
    ks->start_fatal = rd_kafka_error_is_fatal(e);
    ks->start_unsupported =
        code == RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE ||
        code == RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION ||
        code == RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED ||
        code == RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED;
    rd_kafka_error_destroy(e);
    return;
  }
  ks->txn_inited = 1;
  /* From here on a failure retries only these steps: init_transactions
   * must not be called twice on a producer that completed it. */
  /* The embedded cluster creates topics as they are produced to (and has
   * no controller to ask). Without the topic every commit would fail: the
   * start waits for it (retried), saying why. */
  if (ks->embedded == NULL &&
      natka__checkpoint_ensure_topic(ks->rk, ks->conf, ks->start_err,
                                     sizeof(ks->start_err)) != 0) {
    ks->start_rc = NATKA_EKAFKA;
    return;
  }
  ks->txn_ready = 1;
}

/* The checkpoint read, after init_transactions: that call ends what a
 * previous incarnation left open, so what we read is final. */
static void checkpoint_work(uv_work_t *w) {
  kafka_sink *ks = w->data;
  ks->start_rc = natka__checkpoint_read(
      ks->conf, ks->embedded ? ks->embedded : ks->conf->kafka_brokers,
      ks->txn_id, &ks->checkpoint, ks->start_err, sizeof(ks->start_err));
}

static void close_handles(kafka_sink *ks);
static void start_probe(kafka_sink *ks);
static void on_retry(uv_timer_t *t) {
  start_probe(t->data);
}

static int open_producer(kafka_sink *ks, char *err, size_t errlen);
static void close_producer(kafka_sink *ks);
static void after_checkpoint(uv_work_t *w, int status);

static void report_ready(kafka_sink *ks) {
  if (ks->ready != NULL)
    ks->ready(&ks->base);
  ks->ready = NULL;
}

/* The cluster lacks transactions and kafka.transactions is "auto": a new,
 * idempotent-only producer replaces the failed one. */
static int fall_back(kafka_sink *ks) {
  char err[512];
  natka__warn(ks->log,
              "%s; kafka.transactions is auto: producing idempotently "
              "without transactions (at least once; set it to on to refuse, "
              "off to silence this)",
              ks->start_err);
  close_producer(ks);
  ks->txn = 0;
  if (open_producer(ks, err, sizeof(err)) != 0) {
    natka__error(ks->log, "%s", err);
    ks->base.host->fatal(ks->base.host, NATKA_EKAFKA);
    return -1;
  }
  return 0;
}

/* A start-up step is back from the threadpool: the sink, or NULL when it
 * is closing (the close, which waited for the step, goes on now). */
static kafka_sink *back_from_start_step(uv_work_t *w) {
  kafka_sink *ks = w->data;
  ks->probing = 0;
  if (!ks->closing)
    return ks;
  close_handles(ks);
  return NULL;
}

static void after_probe(uv_work_t *w, int status) {
  kafka_sink *ks = back_from_start_step(w);
  (void)status;
  if (ks == NULL)
    return;
  if (ks->probe_err == RD_KAFKA_RESP_ERR_NO_ERROR && ks->start_rc == 0) {
    if (!ks->txn) {
      natka__info(ks->log, "kafka: cluster answered (%d broker(s))",
                  ks->probe_brokers);
      report_ready(ks);
      return;
    }
    ks->probe.data = ks;
    if (uv_queue_work(ks->base.host->loop, &ks->probe, checkpoint_work,
                      after_checkpoint) == 0)
      ks->probing = 1;
    return;
  }
  if (ks->start_fatal) {
    if (ks->start_unsupported &&
        strcmp(ks->conf->kafka_transactions, "auto") == 0) {
      if (fall_back(ks) == 0)
        start_probe(ks);
      return;
    }
    natka__error(ks->log, "%s; stopping%s", ks->start_err,
                 ks->start_unsupported
                     ? " (kafka.transactions = off produces without them)"
                     : "");
    ks->base.host->fatal(ks->base.host, NATKA_EKAFKA);
    return;
  }
  if (ks->start_rc != 0)
    natka__warn(ks->log, "%s (retrying)", ks->start_err);
  else if (ks->retry_ms == 0 || ks->retry_ms >= PROBE_BACKOFF_MAX_MS)
    natka__warn(ks->log,
                "kafka: %s not reachable (%s); nothing is fetched until it "
                "answers (retrying)",
                ks->conf->kafka_brokers, rd_kafka_err2str(ks->probe_err));
  ks->retry_ms = ks->retry_ms == 0 ? PROBE_BACKOFF_MIN_MS : ks->retry_ms * 2;
  if (ks->retry_ms > PROBE_BACKOFF_MAX_MS)
    ks->retry_ms = PROBE_BACKOFF_MAX_MS;
  uv_timer_start(&ks->retry, on_retry, (uint64_t)ks->retry_ms, 0);
}

static void after_checkpoint(uv_work_t *w, int status) {
  kafka_sink *ks = back_from_start_step(w);
  (void)status;
  if (ks == NULL)
    return;
  if (ks->start_rc != 0) {
    natka__warn(ks->log, "%s (retrying)", ks->start_err);
    uv_timer_start(&ks->retry, on_retry, PROBE_BACKOFF_MAX_MS / 4, 0);
    return;
  }
  natka__info(ks->log,
              "kafka: cluster answered (%d broker(s)); transactions on as "
              "'%s', checkpoint %s",
              ks->probe_brokers, ks->txn_id,
              ks->checkpoint ? "read" : "none yet");
  report_ready(ks);
}

static void start_probe(kafka_sink *ks) {
  if (ks->closing || ks->probing)
    return;
  ks->probe.data = ks;
  if (uv_queue_work(ks->base.host->loop, &ks->probe, probe_work, after_probe) ==
      0)
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
    /* _STATE: the transaction failed (another record of it) and takes no
     * more; the event is retried in the next one, nothing refused it. */
    return err == RD_KAFKA_RESP_ERR__QUEUE_FULL ||
                   err == RD_KAFKA_RESP_ERR__STATE
               ? NATKA_EBUSY
               : NATKA_EKAFKA;
  }
  ks->queued++;
  return 0;
}

static size_t ks_queued(natka__sink *sink) {
  return ((kafka_sink *)sink)->queued;
}

static void close_producer(kafka_sink *ks) {
  if (ks->mainq != NULL) {
    rd_kafka_queue_io_event_enable(ks->mainq, -1, NULL, 0);
    rd_kafka_queue_destroy(ks->mainq);
    ks->mainq = NULL;
  }
  if (ks->rk != NULL)
    rd_kafka_destroy(ks->rk);
  ks->rk = NULL;
}

static void release(kafka_sink *ks) {
  close_producer(ks);
  for (int i = 0; i < 2; i++)
    if (ks->pipefd[i] >= 0)
      close(ks->pipefd[i]);
  if (ks->txn_error != NULL)
    rd_kafka_error_destroy(ks->txn_error);
  free(ks->embedded);
  free(ks->txn_id);
  free(ks->checkpoint);
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
  /* else after_probe / the transaction's work closes once it is back */
  if (!ks->probing && !ks->txn_busy)
    close_handles(ks);
}

static void close_handles(kafka_sink *ks) {
  if (ks->handles_closing)
    return;
  ks->handles_closing = 1;
  if (ks->queued > 0 && ks->rk != NULL) {
    rd_kafka_purge(ks->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    for (int i = 0; i < 50 && ks->queued > 0; i++)
      serve_for(ks, 10);
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

static int ks_txn_on(natka__sink *sink);
static const char *ks_txn_id(natka__sink *sink);
static const char *ks_checkpoint(natka__sink *sink);
static int ks_txn_begin(natka__sink *sink, char *err, size_t errlen);
static int ks_txn_checkpoint(natka__sink *sink, const char *value, size_t len);
static void ks_txn_end(natka__sink *sink, int commit, natka__txn_done cb,
                       void *data);

static const natka__sink_vt kafka_vt = {
    .kind = "kafka",
    .await_ready = ks_await_ready,
    .send = ks_send,
    .queued = ks_queued,
    .close = ks_close,
    .free = ks_free,
    .txn_on = ks_txn_on,
    .txn_id = ks_txn_id,
    .checkpoint = ks_checkpoint,
    .txn_begin = ks_txn_begin,
    .txn_checkpoint = ks_txn_checkpoint,
    .txn_end = ks_txn_end,
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
  if (rc == 0 && ks->txn_id != NULL) {
    rc = kafka_set(kc, "transactional.id", ks->txn_id, err, errlen);
    snprintf(num, sizeof(num), "%d", TXN_TIMEOUT_MS);
    if (rc == 0)
      rc = kafka_set(kc, "transaction.timeout.ms", num, err, errlen);
  }
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
    /* A transaction cannot outlive transaction.timeout.ms, so neither can
     * one of its records. */
    int64_t timeout = c->kafka_message_timeout_ms;
    if (ks->txn_id != NULL && timeout > TXN_TIMEOUT_MS)
      timeout = TXN_TIMEOUT_MS;
    snprintf(num, sizeof(num), "%lld", (long long)timeout);
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
  if (rc == 0) /* security, then kafka.properties: applied last */
    rc = natka__kafka_conf_apply(c, kc, 0, err, errlen);
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
  if (strcmp(key, "transactional.id") == 0 ||
      strcmp(key, "transaction.timeout.ms") == 0)
    return 1; /* kafka.transactional_id; the timeout is natka's */
  return 0;
}

/* The transactional.id: kafka.transactional_id, or one derived from what
 * names this instance and its source. NULL when transactions are off. */
static char *transactional_id(const natka_config *c) {
  char buf[512], host[128] = "host";
  if (strcmp(c->kafka_transactions, "off") == 0)
    return NULL;
  if (c->kafka_transactional_id[0] != '\0')
    return natka__strdup(c->kafka_transactional_id);
  gethostname(host, sizeof(host) - 1);
  if (c->js_enabled)
    snprintf(buf, sizeof(buf), "natka-%s-%s-%s-%s", host, c->nats_name,
             c->js_stream, c->js_durable);
  else
    snprintf(buf, sizeof(buf), "natka-%s-%s", host, c->nats_name);
  return natka__strdup(buf);
}

int natka__sink_kafka_check(const natka_config *conf, char *err,
                            size_t errlen) {
  for (size_t i = 0; i < conf->kafka_props.n; i++) {
    const char *k = conf->kafka_props.keys[i], *v = conf->kafka_props.values[i];
    if (!guarantee_breaking(k, v))
      continue;
    if (strncmp(k, "transaction", 11) == 0)
      return natka__errf(err, errlen, NATKA_ECONFIG,
                         "config: 'kafka.properties.%s' is natka's to set; "
                         "use kafka.transactional_id and kafka.transactions",
                         k);
    return natka__errf(err, errlen, NATKA_ECONFIG,
                       "config: 'kafka.properties.%s' = '%s' would let "
                       "natka ack events Kafka may not have; natka needs "
                       "acks=all with idempotence and every delivery report",
                       k, v);
  }
  /* No default cluster: one forgotten line must not send the events natka
   * acks from NATS into an in-process mock that keeps nothing. */
  if (conf->kafka_brokers[0] == '\0')
    return natka__errf(err, errlen, NATKA_ECONFIG,
                       "config: kafka.brokers is not set: name the cluster "
                       "(\"host:port,...\"), or \"embedded\" for the "
                       "in-process demo cluster, which keeps nothing");
  int rc = natka__kafka_conf_check(conf, err, errlen);
  if (rc != 0)
    return rc;
  if (strcmp(conf->kafka_checkpoint_topic, conf->dlq_topic) == 0)
    return natka__errf(err, errlen, NATKA_ECONFIG,
                       "config: kafka.checkpoint_topic and dlq.topic are both "
                       "'%s'; they need topics of their own",
                       conf->dlq_topic);
  kafka_sink probe = {.conf = conf};
  probe.txn_id = transactional_id(conf);
  rd_kafka_conf_t *kc = rd_kafka_conf_new();
  rc = configure(&probe, kc, err, errlen);
  rd_kafka_conf_destroy(kc);
  free(probe.txn_id);
  return rc;
}

/* Creates the producer (transactional when ks->txn) and wires its main
 * queue to the pipe. */
static int open_producer(kafka_sink *ks, char *err, size_t errlen) {
  char why[512];
  char *id = ks->txn_id;
  if (!ks->txn)
    ks->txn_id = NULL; /* configure() sets transactional.id from it */
  rd_kafka_conf_t *kc = rd_kafka_conf_new();
  int rc = configure(ks, kc, err, errlen);
  ks->txn_id = id;
  if (rc != 0) {
    rd_kafka_conf_destroy(kc);
    return rc;
  }
  rd_kafka_conf_set_events(kc, RD_KAFKA_EVENT_DR | RD_KAFKA_EVENT_ERROR |
                                   RD_KAFKA_EVENT_LOG);
  rd_kafka_conf_set_opaque(kc, ks);
  ks->rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, why, sizeof(why));
  if (ks->rk == NULL) {
    rd_kafka_conf_destroy(kc); /* still ours when rd_kafka_new() fails */
    return natka__errf(err, errlen, NATKA_EKAFKA, "kafka: %s", why);
  }
  rd_kafka_set_log_queue(ks->rk, NULL);
  ks->mainq = rd_kafka_queue_get_main(ks->rk);
  rd_kafka_queue_io_event_enable(ks->mainq, ks->pipefd[1], "1", 1);
  if (strcmp(ks->conf->kafka_brokers, "embedded") == 0 &&
      ks->embedded == NULL) {
    rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(ks->rk);
    ks->embedded =
        natka__strdup(mc ? rd_kafka_mock_cluster_bootstraps(mc) : "");
  }
  return 0;
}

int natka__sink_kafka_new(natka__sink **out, const natka__host *host,
                          natka__delivery_cb cb, char *err, size_t errlen) {
  kafka_sink *ks = calloc(1, sizeof(*ks));
  int rc;
  if (ks == NULL)
    return natka__errf(err, errlen, NATKA_ENOMEM, "out of memory");
  ks->base.vt = &kafka_vt;
  ks->base.host = host;
  ks->base.on_delivery = cb;
  ks->conf = host->conf;
  ks->log = host->log;
  ks->pipefd[0] = ks->pipefd[1] = -1;
  ks->txn_id = transactional_id(ks->conf);
  ks->txn = ks->txn_id != NULL;

  if (pipe2(ks->pipefd, O_NONBLOCK | O_CLOEXEC) != 0) {
    rc =
        natka__errf(err, errlen, NATKA_EIO, "kafka: pipe: %s", strerror(errno));
    goto fail;
  }
  /* The embedded cluster lives inside its producer: replacing that producer
   * (fall_back) would lose it, and it does transactions anyway. */
  if ((rc = open_producer(ks, err, errlen)) != 0)
    goto fail;

  uv_loop_t *loop = host->loop;
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
  release(ks);
  return rc;
}

const char *natka__sink_kafka_embedded(natka__sink *sink) {
  return ((kafka_sink *)sink)->embedded;
}

/* ------------------------------------------------------- transactions */

static int ks_txn_on(natka__sink *sink) {
  return ((kafka_sink *)sink)->txn;
}

static const char *ks_txn_id(natka__sink *sink) {
  return ((kafka_sink *)sink)->txn_id;
}

static const char *ks_checkpoint(natka__sink *sink) {
  return ((kafka_sink *)sink)->checkpoint;
}

static int ks_txn_begin(natka__sink *sink, char *err, size_t errlen) {
  kafka_sink *ks = (kafka_sink *)sink;
  rd_kafka_error_t *e = rd_kafka_begin_transaction(ks->rk);
  if (e == NULL)
    return 0;
  int rc =
      natka__errf(err, errlen, NATKA_EKAFKA, "kafka: begin transaction: %s",
                  rd_kafka_error_string(e));
  rd_kafka_error_destroy(e);
  return rc;
}

static int ks_txn_checkpoint(natka__sink *sink, const char *value, size_t len) {
  kafka_sink *ks = (kafka_sink *)sink;
  rd_kafka_resp_err_t err = rd_kafka_producev(
      ks->rk, RD_KAFKA_V_TOPIC(ks->conf->kafka_checkpoint_topic),
      RD_KAFKA_V_PARTITION(0), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
      RD_KAFKA_V_KEY(ks->txn_id, strlen(ks->txn_id)),
      RD_KAFKA_V_VALUE((void *)value, len), RD_KAFKA_V_OPAQUE(&ks->ckpt_tag),
      RD_KAFKA_V_END);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
    return err == RD_KAFKA_RESP_ERR__QUEUE_FULL ? NATKA_EBUSY : NATKA_EKAFKA;
  ks->ckpt_pending++;
  return 0;
}

static void txn_work(uv_work_t *w) {
  kafka_sink *ks = w->data;
  /* -1: bounded by the transaction's own timeout, as librdkafka advises. */
  ks->txn_error = ks->txn_commit ? rd_kafka_commit_transaction(ks->rk, -1)
                                 : rd_kafka_abort_transaction(ks->rk, -1);
}

static void after_txn(uv_work_t *w, int status) {
  kafka_sink *ks = w->data;
  rd_kafka_error_t *e = ks->txn_error;
  natka__txn_status st = NATKA__TXN_OK;
  char msg[512] = "";
  (void)status;
  ks->txn_error = NULL;
  ks->txn_busy = 0;
  if (e != NULL) {
    snprintf(msg, sizeof(msg), "%s", rd_kafka_error_string(e));
    if (rd_kafka_error_is_fatal(e))
      st =
          fenced(rd_kafka_error_code(e)) ? NATKA__TXN_FENCED : NATKA__TXN_FATAL;
    else if (rd_kafka_error_txn_requires_abort(e))
      st = NATKA__TXN_ABORT;
    else if (rd_kafka_error_is_retriable(e))
      st = NATKA__TXN_RETRY;
    else
      st = NATKA__TXN_FATAL;
    if (st == NATKA__TXN_FENCED || st == NATKA__TXN_FATAL)
      fatal_stop(ks, rd_kafka_error_code(e), msg);
    rd_kafka_error_destroy(e);
  }
  natka__txn_done cb = ks->txn_cb;
  ks->txn_cb = NULL;
  if (cb != NULL)
    cb(&ks->base, st, msg, ks->txn_data);
  if (ks->closing && !ks->probing && !ks->txn_busy)
    close_handles(ks);
}

static void start_txn_work(kafka_sink *ks) {
  ks->txn_work.data = ks;
  if (uv_queue_work(ks->base.host->loop, &ks->txn_work, txn_work, after_txn) !=
      0) {
    /* Only a loop that is closing refuses work. */
    ks->txn_busy = 0;
    natka__txn_done cb = ks->txn_cb;
    ks->txn_cb = NULL;
    if (cb != NULL)
      cb(&ks->base, NATKA__TXN_FATAL, "the loop refused work", ks->txn_data);
  }
}

static void ks_txn_end(natka__sink *sink, int commit, natka__txn_done cb,
                       void *data) {
  kafka_sink *ks = (kafka_sink *)sink;
  ks->txn_busy = 1;
  ks->txn_commit = commit;
  ks->txn_cb = cb;
  ks->txn_data = data;
  /* The commit's own flush must find nothing to report: the checkpoint's
   * report is served here first (the flights' ones already were). */
  if (commit && ks->ckpt_pending > 0)
    ks->txn_waiting = 1;
  else
    start_txn_work(ks);
}
