/*
 * `natka dlq replay`: dead letters back through the rules.
 *
 * A replay reads the DLQ topic with a librdkafka consumer (read_committed,
 * every partition assigned by hand, no group membership) from the offsets
 * the replay group committed last time (or --from-offset / --since), up to
 * the end each partition had when the replay started. Each record is decoded
 * with the codec's Kafka mapping, loses the natka-* headers the dead-letter
 * write added, gains natka-replayed-from / natka-replay-reason, and is
 * published into JetStream with a synchronous js_PublishMsg, so the daemon
 * takes it through the rules again like any event. ce-id stays the original
 * id (consumers dedup on it); the Nats-Msg-Id names the DLQ position, so
 * JetStream stores it although the original id was stored before, and a
 * replay repeated after a crash is stored once.
 *
 * A record's offset is committed only after JetStream acked it (in batches,
 * and always before exit), so a second replay with the same group starts
 * after what the first one sent. One blocking connection to each server, no
 * reconnects: the command finishes or says which server failed.
 */
#include "cmd_dlq_replay.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <librdkafka/rdkafka.h>
#include <nats/nats.h>

#include "cmd_rules.h"
#include "codec.h"
#include "config_int.h"
#include "kafka_conf.h"
#include "nats_conn.h"
#include "nats_msg.h"
#include "natka/error.h"
#include "secret.h"
#include "util.h"

#define KAFKA_WAIT_MS 10000   /* metadata, watermarks, committed offsets */
#define IDLE_LIMIT_MS 30000   /* reading: no record and no end this long */
#define PUBLISH_WAIT_MS 10000 /* one JetStream ack */
#define COMMIT_EVERY 100      /* records acked between two commits */
#define CLOSE_WAIT_MS 2000
#define MAX_PARTS 100000

/* Headers of the dead-letter write, and of an earlier replay (which
 * reached Kafka as x-natka-*: see codec.h). */
static const char *const dropped_headers[] = {
    "natka-error",          "natka-error-code",    "natka-rule",
    "natka-source",         "natka-attempts",      "natka-rules-revision",
    "natka-replayed-from",  "natka-replay-reason", "x-natka-replayed-from",
    "x-natka-replay-reason"};

static int is_dropped(const char *name) {
  for (size_t i = 0; i < sizeof(dropped_headers) / sizeof(*dropped_headers);
       i++)
    if (strcasecmp(name, dropped_headers[i]) == 0)
      return 1;
  return 0;
}

/* A replay under way: what was asked, and the connections and counts. */
typedef struct replay {
  const natka__dlq_opts *o;
  rd_kafka_t *rk;
  natka__dlq_part *parts;
  size_t nparts;
  natsConnection *nc;
  jsCtx *js;
  int nats_opened;
  char url[NATKA__URL_SHOWN]; /* nats.url for messages, credentials hidden */
  int64_t max_payload;
  int64_t read, sent, skipped, bad, failed, dups, uncommitted;
} replay;

/* --------------------------------------------------------------- Kafka */

static void kafka_log(const rd_kafka_t *rk, int level, const char *fac,
                      const char *buf) {
  const replay *r = rd_kafka_opaque(rk);
  if (r != NULL && r->o->conf->log_level >= NATKA_LOG_DEBUG)
    fprintf(stderr, "dlq replay: kafka %d %s: %s\n", level, fac, buf);
}

static int kafka_open(replay *r) {
  char why[512];
  const natka_config *c = r->o->conf;
  const char *const ours[][2] = {
      {"bootstrap.servers", c->kafka_brokers},
      {"group.id", r->o->group},
      {"client.id", "natka-dlq-replay"},
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      {"isolation.level", "read_committed"},
      {"enable.partition.eof", "true"},
      {"auto.offset.reset", "earliest"},
  };
  rd_kafka_conf_t *kc = rd_kafka_conf_new();
  /* Security and client settings come from the kafka.* keys (kafka_conf.h);
   * what the replay depends on is set after them, so they cannot undo it. */
  int rc = natka__kafka_conf_check(c, why, sizeof(why));
  if (rc == 0)
    rc =
        natka__kafka_conf_apply(c, kc, NATKA__KAFKA_CONSUMER, why, sizeof(why));
  for (size_t i = 0; rc == 0 && i < sizeof(ours) / sizeof(ours[0]); i++)
    rc = natka__kafka_conf_set(kc, ours[i][0], ours[i][1], why, sizeof(why));
  if (rc != 0) {
    rd_kafka_conf_destroy(kc);
    return natka__dlq_fail(
        rc == NATKA_ENOMEM ? NATKA__CLI_FAILED : NATKA__CLI_USAGE, "%s", why);
  }
  rd_kafka_conf_set_opaque(kc, r);
  rd_kafka_conf_set_log_cb(kc, kafka_log);
  r->rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, why, sizeof(why));
  if (r->rk == NULL) {
    rd_kafka_conf_destroy(kc);
    return natka__dlq_fail(NATKA__CLI_FAILED,
                           "cannot create a Kafka consumer: %s", why);
  }
  /* Errors (all brokers down, ...) then come out of consumer_poll too. */
  rd_kafka_poll_set_consumer(r->rk);
  return 0;
}

/* The topic's partitions (the named ones only, with --from-offset P:N). */
static int kafka_partitions(replay *r, const natka__dlq_part *named,
                            size_t nnamed) {
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_topic_t *rkt = rd_kafka_topic_new(r->rk, r->o->topic, NULL);
  rd_kafka_resp_err_t err =
      rkt != NULL ? rd_kafka_metadata(r->rk, 0, rkt, &md, KAFKA_WAIT_MS)
                  : rd_kafka_last_error();
  if (rkt != NULL)
    rd_kafka_topic_destroy(rkt);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
    return natka__dlq_fail(NATKA__CLI_FAILED, "cannot reach Kafka at %s: %s",
                           r->o->conf->kafka_brokers, rd_kafka_err2str(err));
  const struct rd_kafka_metadata_topic *mt = &md->topics[0];
  int rc = 0;
  if (md->topic_cnt != 1 || mt->err != RD_KAFKA_RESP_ERR_NO_ERROR ||
      mt->partition_cnt <= 0) {
    rc = natka__dlq_fail(
        NATKA__CLI_FAILED,
        "topic %s not found on %s (%s): no dead letters yet, or a "
        "wrong --topic",
        r->o->topic, r->o->conf->kafka_brokers,
        md->topic_cnt == 1 ? rd_kafka_err2str(mt->err) : "no answer");
    goto done;
  }
  size_t n = r->o->named_parts ? nnamed : (size_t)mt->partition_cnt;
  if (n > MAX_PARTS || (r->parts = calloc(n, sizeof(*r->parts))) == NULL) {
    rc = natka__dlq_fail(NATKA__CLI_FAILED, "out of memory");
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    int32_t id = r->o->named_parts ? named[i].id : mt->partitions[i].id;
    if (id >= mt->partition_cnt) {
      rc = natka__dlq_fail(NATKA__CLI_USAGE,
                           "--from-offset: topic %s has no partition %" PRId32
                           " (it has %d)",
                           r->o->topic, id, mt->partition_cnt);
      goto done;
    }
    r->parts[i] =
        r->o->named_parts ? named[i] : (natka__dlq_part){.id = id, .start = -1};
    r->nparts++;
  }
done:
  rd_kafka_metadata_destroy(md);
  return rc;
}

/* Sets each partition's start: --from-offset, --since, the group's
 * committed offset, or the beginning; clamped to what Kafka still has. */
static int kafka_starts(replay *r) {
  rd_kafka_topic_partition_list_t *l =
      rd_kafka_topic_partition_list_new((int)r->nparts);
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
  const char *what = "watermarks";
  for (size_t i = 0; err == 0 && i < r->nparts; i++) {
    natka__dlq_part *p = &r->parts[i];
    err = rd_kafka_query_watermark_offsets(r->rk, r->o->topic, p->id, &p->lo,
                                           &p->hi, KAFKA_WAIT_MS);
    rd_kafka_topic_partition_list_add(l, r->o->topic, p->id)->offset =
        r->o->since_ms >= 0 ? r->o->since_ms : RD_KAFKA_OFFSET_INVALID;
  }
  if (err == 0 && r->o->since_ms >= 0) {
    what = "offsets for --since";
    err = rd_kafka_offsets_for_times(r->rk, l, KAFKA_WAIT_MS);
  } else if (err == 0 && r->o->from_all < 0 && !r->o->named_parts) {
    what = "committed offsets";
    err = rd_kafka_committed(r->rk, l, KAFKA_WAIT_MS);
  }
  for (size_t i = 0; err == 0 && i < r->nparts; i++) {
    natka__dlq_part *p = &r->parts[i];
    int64_t got = l->elems[i].offset;
    if (r->o->from_all >= 0)
      p->start = r->o->from_all;
    else if (!r->o->named_parts)
      p->start = got >= 0 ? got : r->o->since_ms >= 0 ? p->hi : p->lo;
    if (p->start < p->lo)
      p->start = p->lo;
    p->handled = p->committed = p->start; /* only progress is committed */
    p->done = p->start >= p->hi;
  }
  rd_kafka_topic_partition_list_destroy(l);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
    return natka__dlq_fail(
        NATKA__CLI_FAILED, "cannot read the %s of %s from %s: %s", what,
        r->o->topic, r->o->conf->kafka_brokers, rd_kafka_err2str(err));
  return 0;
}

static int kafka_assign(replay *r) {
  rd_kafka_topic_partition_list_t *l =
      rd_kafka_topic_partition_list_new((int)r->nparts);
  for (size_t i = 0; i < r->nparts; i++)
    if (!r->parts[i].done)
      rd_kafka_topic_partition_list_add(l, r->o->topic, r->parts[i].id)
          ->offset = r->parts[i].start;
  rd_kafka_resp_err_t err = rd_kafka_assign(r->rk, l);
  rd_kafka_topic_partition_list_destroy(l);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
    return natka__dlq_fail(NATKA__CLI_FAILED, "cannot assign %s: %s",
                           r->o->topic, rd_kafka_err2str(err));
  return 0;
}

/* Commits every partition's progress since the last commit. */
static int kafka_commit(replay *r) {
  rd_kafka_topic_partition_list_t *l =
      rd_kafka_topic_partition_list_new((int)r->nparts);
  for (size_t i = 0; i < r->nparts; i++)
    if (r->parts[i].handled != r->parts[i].committed)
      rd_kafka_topic_partition_list_add(l, r->o->topic, r->parts[i].id)
          ->offset = r->parts[i].handled;
  rd_kafka_resp_err_t err =
      l->cnt > 0 ? rd_kafka_commit(r->rk, l, 0) : RD_KAFKA_RESP_ERR_NO_ERROR;
  for (size_t i = 0; err == 0 && i < r->nparts; i++)
    r->parts[i].committed = r->parts[i].handled;
  rd_kafka_topic_partition_list_destroy(l);
  r->uncommitted = 0;
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
    return natka__dlq_fail(
        NATKA__CLI_FAILED,
        "cannot commit the offsets of group %s to %s: %s (the next "
        "replay may send some records again; JetStream stores a "
        "repeat once within its duplicate window)",
        r->o->group, r->o->conf->kafka_brokers, rd_kafka_err2str(err));
  return 0;
}

/* ---------------------------------------------------------------- NATS */

static int nats_open(replay *r) {
  char err[512];
  natsOptions *o = NULL;
  jsOptions jo;
  r->nats_opened = 1;
  int rc = natka__nats_options(r->o->conf, "natka-dlq-replay",
                               NATKA__NATS_ONESHOT, NULL, &o, err, sizeof(err));
  if (rc != 0)
    return natka__dlq_fail(
        rc == NATKA_ECONFIG ? NATKA__CLI_USAGE : NATKA__CLI_FAILED, "%s", err);
  natsStatus st = natsConnection_Connect(&r->nc, o);
  natsOptions_Destroy(o);
  if (st != NATS_OK) {
    r->nc = NULL;
    return natka__dlq_fail(NATKA__CLI_FAILED,
                           "cannot connect to NATS at %s: %s", r->url,
                           natka__nats_why(st));
  }
  r->max_payload = natsConnection_GetMaxPayload(r->nc);
  jsOptions_Init(&jo);
  jo.Wait = PUBLISH_WAIT_MS;
  if ((st = natsConnection_JetStream(&r->js, r->nc, &jo)) != NATS_OK) {
    r->js = NULL;
    return natka__dlq_fail(NATKA__CLI_FAILED, "no JetStream on %s: %s", r->url,
                           natka__nats_why(st));
  }
  return 0;
}

/* ------------------------------------------------------------- records */

static const char *record_header(const rd_kafka_message_t *m, const char *name,
                                 char *buf, size_t len) {
  rd_kafka_headers_t *hs = NULL;
  const void *v = NULL;
  size_t n = 0;
  /* natka writes its own headers after the event's: the last one is
   * natka's even in a record written before inbound natka-* headers were
   * renamed (see codec.c). */
  if (rd_kafka_message_headers(m, &hs) != 0 ||
      rd_kafka_header_get_last(hs, name, &v, &n) != 0 || v == NULL)
    return NULL;
  snprintf(buf, len, "%.*s", (int)(n < len ? n : len - 1), (const char *)v);
  return buf;
}

static int wanted(const replay *r, const char *code) {
  for (size_t i = 0; i < r->o->ncodes; i++)
    if (code != NULL && strcmp(code, r->o->codes[i]) == 0)
      return 1;
  return r->o->ncodes == 0;
}

/* Whether NATS carries a header unchanged: nats.c writes "name: value",
 * turns CR/LF into spaces, trims the value and rejects an empty one. */
static int nats_header_ok(const natka__wire_header *h) {
  size_t n = strlen(h->name);
  if (n == 0 || strpbrk(h->name, ": \t\r\n") != NULL)
    return 0;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)h->name[i] < 0x20 || h->name[i] == 0x7f)
      return 0;
  return h->len > 0 && memchr(h->value, '\0', h->len) == NULL &&
         strpbrk(h->value, "\r\n") == NULL &&
         !isspace((unsigned char)h->value[0]) &&
         !isspace((unsigned char)h->value[h->len - 1]);
}

/* An ETOOBIG record lost its data; the original may still be in the
 * stream at "stream S seq N ..." (natka-source). NATKA_EMALFORMED when it
 * is not, NATKA_ENATS when JetStream did not answer. */
static int fetch_data(replay *r, natka_event *ev, const char *source, char *why,
                      size_t len) {
  char stream[256], id[300], *malformed = NULL;
  unsigned long long seq = 0;
  natsMsg *msg = NULL;
  natka_event *orig = NULL;
  jsErrCode jerr = 0;
  if (source == NULL ||
      sscanf(source, "stream %255s seq %llu", stream, &seq) != 2)
    return natka__errf(why, len, NATKA_EMALFORMED,
                       "ETOOBIG without its data, and natka-source (%s) "
                       "names no stream position to read it from",
                       source ? source : "absent");
  /* A record is not trusted to pick what the replay reads. */
  if (strcmp(stream, r->o->conf->js_stream) != 0)
    return natka__errf(why, len, NATKA_EMALFORMED,
                       "ETOOBIG without its data, and natka-source names "
                       "stream %s, not jetstream.stream (%s): not read",
                       stream, r->o->conf->js_stream);
  if (r->o->dry_run)
    return 0;
  natsStatus st = js_GetMsg(&msg, r->js, stream, seq, NULL, &jerr);
  if (st != NATS_OK)
    return natka__errf(
        why, len,
        st == NATS_NOT_FOUND || jerr != 0 ? NATKA_EMALFORMED : NATKA_ENATS,
        "ETOOBIG without its data, and stream %s seq %llu on %s cannot be "
        "read: %s",
        stream, seq, r->url, natka__nats_why(st));
  snprintf(id, sizeof(id), "%s:%llu", stream, seq);
  int rc = natka__nats_msg_decode(msg, id, 0, &orig, &malformed);
  if (rc == 0 && strcmp(natka_event_id(orig), natka_event_id(ev)) != 0)
    rc = natka__errf(why, len, NATKA_EMALFORMED,
                     "ETOOBIG: stream %s seq %llu holds event %s, not %s",
                     stream, seq, natka_event_id(orig), natka_event_id(ev));
  else if (rc == 0)
    rc = natka_event_set_data(ev, natsMsg_GetData(msg),
                              (size_t)natsMsg_GetDataLength(msg));
  natka_event_free(orig);
  free(malformed);
  natsMsg_Destroy(msg);
  return rc;
}

/* The record as the event to publish: decoded, the DLQ headers replaced by
 * the replay's, ETOOBIG data read back. 0 or a NATKA_E* code with why. */
static int to_event(replay *r, const rd_kafka_message_t *m, const char *from,
                    const char *code, natka_event **out, char *why,
                    size_t len) {
  rd_kafka_headers_t *hs = NULL;
  natka__wire_header *wh = NULL;
  size_t n = 0, vlen;
  const char *name;
  const void *v;
  char source[512];
  natka_event *ev = NULL;
  if (rd_kafka_message_headers(m, &hs) != 0)
    hs = NULL;
  if (hs != NULL &&
      (wh = calloc(rd_kafka_header_cnt(hs) + 1, sizeof(*wh))) == NULL)
    return natka__errf(why, len, NATKA_ENOMEM, "out of memory");
  /* The dead-letter write's headers go before decoding, which would keep
   * them as x-natka-* (an inbound natka-* header is not natka's own). */
  for (size_t i = 0;
       hs != NULL && rd_kafka_header_get_all(hs, i, &name, &v, &vlen) == 0; i++)
    if (!is_dropped(name))
      wh[n++] = (natka__wire_header){name, v, vlen};
  int rc = natka_event_new(&ev);
  if (rc == 0)
    rc = natka__event_from_kafka(ev, m->key, m->key_len,
                                 rd_kafka_message_timestamp(m, NULL), wh, n,
                                 m->payload, m->len, why, len);
  free(wh);
  if (rc == 0)
    rc = natka_event_add_header(ev, "natka-replayed-from", from, strlen(from));
  if (rc == 0 && code != NULL)
    rc = natka_event_add_header(ev, "natka-replay-reason", code, strlen(code));
  if (rc == 0 && code != NULL && strcmp(code, "ETOOBIG") == 0)
    rc = fetch_data(r, ev,
                    record_header(m, "natka-source", source, sizeof(source)),
                    why, len);
  if (rc == NATKA_ENOMEM)
    snprintf(why, len, "out of memory");
  if (rc != 0) {
    natka_event_free(ev);
    return rc;
  }
  *out = ev;
  return 0;
}

/* Publishes ev and waits for JetStream's ack. 0; NATKA_EMALFORMED when NATS
 * cannot carry this record; NATKA_ENATS or NATKA_ENOMEM when the replay
 * cannot go on. The reason goes to why. */
static int publish(replay *r, const natka_event *ev, const char *from,
                   char *why, size_t len) {
  natka__wire_headers wh = {0};
  natsMsg *msg = NULL;
  jsPubAck *ack = NULL;
  jsErrCode jerr = 0;
  char msg_id[1024];
  size_t data_len = 0, size = 16;
  const void *data = natka_event_data(ev, &data_len);
  int rc = natka__event_to_nats(ev, r->o->conf->event_source, &wh);
  if (rc != 0)
    return natka__errf(why, len, rc, "out of memory");
  for (size_t i = 0; rc == 0 && i < wh.n; i++) {
    size += strlen(wh.h[i].name) + wh.h[i].len + 4;
    if (!nats_header_ok(&wh.h[i]))
      rc = natka__errf(why, len, NATKA_EMALFORMED,
                       "header %s: a name or value NATS cannot carry "
                       "unchanged (empty, CR/LF/NUL, ':' in a name, or "
                       "leading/trailing space)",
                       wh.h[i].name);
  }
  if (rc == 0 && (int64_t)(size + data_len) > r->max_payload)
    rc = natka__errf(why, len, NATKA_EMALFORMED,
                     "%zu bytes, more than %s takes in one message (%" PRId64
                     ")",
                     size + data_len, r->url, r->max_payload);
  natsStatus st = NATS_OK;
  if (rc == 0)
    st = natsMsg_Create(&msg, r->o->subject, NULL, data, (int)data_len);
  /* The Nats-Msg-Id is the replay's own, set through po.MsgId. */
  for (size_t i = 0; rc == 0 && st == NATS_OK && i < wh.n; i++)
    if (strcasecmp(wh.h[i].name, "Nats-Msg-Id") != 0)
      st = natsMsgHeader_Add(msg, wh.h[i].name, wh.h[i].value);
  natka__wire_headers_clear(&wh);
  if (rc == 0 && st == NATS_OK) {
    jsPubOptions po;
    jsPubOptions_Init(&po);
    snprintf(msg_id, sizeof(msg_id), "%s:replay:%s", natka_event_id(ev), from);
    po.MsgId = msg_id;
    po.MaxWait = PUBLISH_WAIT_MS;
    st = js_PublishMsg(&ack, r->js, msg, &po, &jerr);
  }
  natsMsg_Destroy(msg);
  if (rc != 0)
    return rc;
  if (st == NATS_OK) {
    r->dups += ack->Duplicate;
    jsPubAck_Destroy(ack);
    return 0;
  }
  if (st == NATS_NO_RESPONDERS)
    return natka__errf(why, len, NATKA_ENATS,
                       "no JetStream stream on %s captures subject %s (give "
                       "--subject, a subject of jetstream.stream)",
                       r->url, r->o->subject);
  return natka__errf(why, len, NATKA_ENATS,
                     "JetStream on %s did not store it: %s (error %d)", r->url,
                     natka__nats_why(st), (int)jerr);
}

/* One record. Returns 0 to go on, -1 to stop (--max reached), or
 * NATKA__CLI_FAILED with the reason printed. */
static int handle(replay *r, natka__dlq_part *p, const rd_kafka_message_t *m) {
  char from[400], code[64], reason[512], why[1024] = "";
  natka_event *ev = NULL;
  snprintf(from, sizeof(from), "%s/%" PRId32 "@%" PRId64, r->o->topic,
           m->partition, m->offset);
  const char *c = record_header(m, "natka-error-code", code, sizeof(code));
  r->read++;
  if (!wanted(r, c)) {
    r->skipped++;
    p->handled = m->offset + 1;
    return 0;
  }
  int rc = to_event(r, m, from, c, &ev, why, sizeof(why));
  if (rc == 0 && r->o->dry_run) {
    const char *e = record_header(m, "natka-error", reason, sizeof(reason));
    printf("would send %s id=%s code=%s reason=%.*s\n", from,
           natka_event_id(ev), c ? c : "-", e ? (int)strcspn(e, "\n") : 1,
           e ? e : "-");
  } else if (rc == 0 && (rc = publish(r, ev, from, why, sizeof(why))) == 0) {
    printf("sent %s id=%s code=%s\n", from, natka_event_id(ev), c ? c : "-");
  }
  natka_event_free(ev);
  if (rc == NATKA_ENATS || rc == NATKA_ENOMEM) {
    r->failed++;
    return natka__dlq_fail(NATKA__CLI_FAILED, "%s: %s; stopped", from, why);
  }
  if (rc != 0) {
    fprintf(stderr, "dlq replay: %s: skipped, cannot be replayed: %s\n", from,
            why);
    r->bad++;
  } else {
    r->sent++;
  }
  p->handled = m->offset + 1;
  if (!r->o->dry_run && ++r->uncommitted >= COMMIT_EVERY &&
      kafka_commit(r) != 0)
    return NATKA__CLI_FAILED;
  return r->o->max > 0 && r->sent >= r->o->max ? -1 : 0;
}

static natka__dlq_part *part_of(replay *r, const rd_kafka_message_t *m) {
  if (m->rkt == NULL || strcmp(rd_kafka_topic_name(m->rkt), r->o->topic) != 0)
    return NULL;
  for (size_t i = 0; i < r->nparts; i++)
    if (r->parts[i].id == m->partition)
      return &r->parts[i];
  return NULL;
}

static int all_done(const replay *r) {
  for (size_t i = 0; i < r->nparts; i++)
    if (!r->parts[i].done)
      return 0;
  return 1;
}

/* Reads until every partition reached its end mark, --max or a failure.
 * Only records and ends count as progress: librdkafka keeps reporting
 * "all brokers down" while it retries, and that must not keep us here. */
static int read_all(replay *r) {
  int64_t last = natka__mono_ns() / 1000000;
  char last_error[512] = "no error reported";
  while (!all_done(r)) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(r->rk, 200);
    int64_t now = natka__mono_ns() / 1000000;
    natka__dlq_part *p = m != NULL ? part_of(r, m) : NULL;
    int rc = 0;
    if (m == NULL ||
        (m->err != 0 && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)) {
      if (m != NULL)
        snprintf(last_error, sizeof(last_error), "%s",
                 rd_kafka_message_errstr(m));
      if (m != NULL && (m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                        m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC))
        rc =
            natka__dlq_fail(NATKA__CLI_FAILED, "reading %s from %s: %s",
                            r->o->topic, r->o->conf->kafka_brokers, last_error);
      else if (now - last >= IDLE_LIMIT_MS)
        rc = natka__dlq_fail(
            NATKA__CLI_FAILED,
            "Kafka at %s sent nothing from %s for %d s (last: %s); "
            "stopped",
            r->o->conf->kafka_brokers, r->o->topic, IDLE_LIMIT_MS / 1000,
            last_error);
    } else if (p != NULL && !p->done) {
      last = now;
      if (m->err != 0 || m->offset >= p->hi)
        p->done = 1; /* the end, or written after the replay started */
      else if ((rc = handle(r, p, m)) == 0)
        p->done = m->offset + 1 >= p->hi;
    }
    if (m != NULL)
      rd_kafka_message_destroy(m);
    if (rc != 0)
      return rc < 0 ? 0 : rc;
  }
  return 0;
}

/* ---------------------------------------------------------------- main */

static int run(replay *r, const natka__dlq_part *named, size_t nnamed) {
  int rc = 0;
  if (r->o->conf->kafka_brokers[0] == '\0')
    return natka__dlq_fail(NATKA__CLI_USAGE,
                           "kafka.brokers is not set; give the brokers with "
                           "-s kafka.brokers=HOST:PORT");
  if (strcmp(r->o->conf->kafka_brokers, "embedded") == 0)
    return natka__dlq_fail(
        NATKA__CLI_USAGE,
        "kafka.brokers is \"embedded\" (the in-process demo cluster, "
        "gone with the process that ran it); give the brokers with "
        "-s kafka.brokers=HOST:PORT");
  if (!r->o->dry_run && (rc = nats_open(r)) != 0)
    return rc;
  if ((rc = kafka_open(r)) != 0 ||
      (rc = kafka_partitions(r, named, nnamed)) != 0 ||
      (rc = kafka_starts(r)) != 0 || (rc = kafka_assign(r)) != 0)
    return rc;
  rc = read_all(r);
  if (!r->o->dry_run) {
    int crc = kafka_commit(r);
    rc = rc != 0 ? rc : crc;
  }
  if (r->o->dry_run)
    printf("dry run: read %" PRId64 ", would send %" PRId64 ", skipped %" PRId64
           ", bad %" PRId64 "; nothing sent, no offsets committed\n",
           r->read, r->sent, r->skipped, r->bad);
  else
    printf("read %" PRId64 ", sent %" PRId64 ", skipped %" PRId64
           ", bad %" PRId64 ", failed %" PRId64 " (%s to %s, group %s%s)\n",
           r->read, r->sent, r->skipped, r->bad, r->failed, r->o->topic,
           r->o->subject, r->o->group,
           r->dups > 0 ? "; some were in JetStream already" : "");
  if (rc == 0 && r->bad > 0 && !r->o->skip_bad)
    rc = natka__dlq_fail(NATKA__CLI_FAILED,
                         "%" PRId64
                         " record(s) could not be replayed (see above; "
                         "--skip-bad accepts that)",
                         r->bad);
  return rc;
}

static void cleanup(replay *r) {
  if (r->rk != NULL) {
    rd_kafka_consumer_close(r->rk);
    rd_kafka_destroy(r->rk);
  }
  if (r->nats_opened) {
    jsCtx_Destroy(r->js);
    natsConnection_Destroy(r->nc);
    nats_CloseAndWait(CLOSE_WAIT_MS);
  }
  free(r->parts);
}

int natka__dlq_replay_run(const natka__dlq_opts *o,
                          const natka__dlq_part *named, size_t nnamed) {
  replay r = {.o = o};
  natka__url_redact(o->conf->nats_url, r.url, sizeof(r.url));
  int rc = run(&r, named, nnamed);
  cleanup(&r);
  return rc;
}
