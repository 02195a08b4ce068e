/*
 * What a publisher controls is data, never control. A publisher tries to:
 *
 * - reach a topic outside route.allow (EFORBIDDEN too).
 * - write natka's own topics: an event kind naming dlq.topic,
 *   kafka.checkpoint_topic or a Kafka internal topic (the default route
 *   names the topic after the kind), and a rule routing to the DLQ topic.
 *   Each is dead-lettered with EFORBIDDEN and counted; the checkpoint topic
 *   holds only natka's own records.
 * - forge natka's headers: natka-error-code / natka-source / natka-rules-
 *   revision on an event arrive as x-natka-*, and the dead letter carries
 *   natka's own, once each.
 * - steer `natka dlq replay`: a dead letter whose natka-source names another
 *   stream is not read from there.
 * - steer JetStream through the ingress: Nats-TTL, Nats-Rollup and
 *   Nats-Expected-Last-Sequence on a request are stored as x-Nats-* data,
 *   and the request gets its receipt.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "harness.h"

#define N_FORBIDDEN 6

typedef struct run {
  it_test *t;
  char stream[96], subject[128], req[128], good[128], dlq[128], ckpt[128];
  char other[128];
  char rules_bucket[96], status_bucket[96], name[96], config[PATH_MAX];
  int forbidden, forged_checked, good_seen, ttl_seen;
} run;

/* The number of headers called `name` on r. */
static int header_count(const it_record *r, const char *name) {
  int n = 0;
  while (it_record_header(r, name, (size_t)n) != NULL)
    n++;
  return n;
}

static void check_dead_letter(run *x, const it_record *r, const char *id) {
  it_test *t = x->t;
  IT_CHECK_STR(t, it_record_hstr(r, "natka-error-code"), "EFORBIDDEN");
  IT_CHECK_HAS(t, it_record_hstr(r, "natka-error"),
               strcmp(id, "f-notallowed") == 0 ? "not in route.allow"
                                               : "reserved for");
  IT_CHECK_INT(t, header_count(r, "natka-error-code"), ==, 1);
  IT_CHECK_INT(t, header_count(r, "natka-source"), ==, 1);
  IT_CHECK_INT(t, header_count(r, "natka-rules-revision"), ==, 1);
  IT_CHECK_HAS(t, it_record_hstr(r, "natka-source"), x->stream);
  if (strcmp(id, "f-rule") == 0)
    IT_CHECK_STR(t, it_record_hstr(r, "natka-rule"), "route");
  if (strcmp(id, "f-forged") == 0) {
    IT_CHECK_STR(t, it_record_hstr(r, "x-natka-error-code"), "ETOOBIG");
    IT_CHECK_STR(t, it_record_hstr(r, "x-natka-source"), "stream OTHER seq 1");
    IT_CHECK_STR(t, it_record_hstr(r, "x-natka-rules-revision"), "999");
    x->forged_checked++;
  }
  x->forbidden++;
}

static int on_record(it_test *t, const it_record *r, void *data) {
  run *x = data;
  const char *id = it_record_hstr(r, "ce_id");
  if (strcmp(r->topic, x->ckpt) == 0) {
    /* Only natka's checkpoints: no event ever lands here. */
    IT_CHECK(t, id == NULL);
    IT_CHECK(t, r->value != NULL && strncmp(r->value, "{\"v\":1,", 7) == 0);
    return 0;
  }
  IT_CHECK(t, id != NULL);
  if (strcmp(r->topic, x->dlq) == 0) {
    IT_CHECK(t, strncmp(id, "f-", 2) == 0);
    check_dead_letter(x, r, id);
  } else if (strcmp(id, "r-ttl") == 0) {
    IT_CHECK_STR(t, r->topic, x->good);
    IT_CHECK_STR(t, it_record_hstr(r, "x-Nats-TTL"), "1s");
    IT_CHECK_STR(t, it_record_hstr(r, "x-Nats-Rollup"), "sub");
    IT_CHECK_STR(t, it_record_hstr(r, "x-Nats-Expected-Last-Sequence"), "1");
    IT_CHECK(t, it_record_hstr(r, "Nats-TTL") == NULL);
    x->ttl_seen++;
  } else {
    IT_CHECK_STR(t, id, "f-good");
    IT_CHECK_STR(t, r->topic, x->good);
    x->good_seen++;
  }
  return x->forbidden >= N_FORBIDDEN && x->good_seen >= 1 && x->ttl_seen >= 1;
}

static void publish_events(run *x, it_js *js) {
  struct {
    const char *id, *kind;
  } ev[] = {{"f-dlq", x->dlq},
            {"f-ckpt", x->ckpt},
            {"f-internal", "__consumer_offsets"},
            {"f-rule", "rule.to.dlq"},
            {"f-notallowed", x->other},
            {"f-good", x->good}};
  for (size_t i = 0; i < sizeof(ev) / sizeof(ev[0]); i++) {
    it_hdr h[] = {{"ce-id", ev[i].id}, {"ce-type", ev[i].kind}};
    it_js_publish(x->t, js, x->subject, h, 2, "x", 1);
  }
  it_hdr forged[] = {{"ce-id", "f-forged"},
                     {"ce-type", x->dlq},
                     {"natka-error-code", "ETOOBIG"},
                     {"natka-source", "stream OTHER seq 1"},
                     {"natka-rules-revision", "999"}};
  it_js_publish(x->t, js, x->subject, forged, 5, "x", 1);
  it_js_publish_wait(x->t, js, 30000);
}

/* A request carrying JetStream control headers gets its receipt. */
static void request_with_controls(run *x, it_js *js) {
  it_test *t = x->t;
  natsMsg *msg = NULL, *reply = NULL;
  it_hdr h[] = {{"ce-id", "r-ttl"},
                {"ce-type", x->good},
                {"Nats-TTL", "1s"},
                {"Nats-Rollup", "sub"},
                {"Nats-Expected-Last-Sequence", "1"}};
  IT_CHECK(t, natsMsg_Create(&msg, x->req, NULL, "y", 1) == NATS_OK);
  for (size_t i = 0; i < sizeof(h) / sizeof(h[0]); i++)
    IT_CHECK(t, natsMsgHeader_Add(msg, h[i].name, h[i].value) == NATS_OK);
  natsStatus st = natsConnection_RequestMsg(&reply, js->nc, msg, 10000);
  natsMsg_Destroy(msg);
  if (st != NATS_OK)
    IT_FAIL(t, "request on %s: %s", x->req, natsStatus_GetText(st));
  cJSON *j = cJSON_ParseWithLength(natsMsg_GetData(reply),
                                   (size_t)natsMsg_GetDataLength(reply));
  it_log(t, "receipt: %.*s", natsMsg_GetDataLength(reply),
         natsMsg_GetData(reply));
  IT_CHECK(t, j != NULL);
  IT_CHECK(t, it_json_str(j, "error") == NULL);
  IT_CHECK_STR(t, it_json_str(j, "id"), "r-ttl");
  cJSON_Delete(j);
  natsMsg_Destroy(reply);
}

/* A dead letter claiming to be an ETOOBIG from another stream: the replay
 * must not read that stream. */
static void replay_stays_in_its_stream(run *x) {
  it_test *t = x->t;
  char *out = NULL, *err = NULL;
  it_hdr h[] = {{"ce_id", "f-steer"},
                {"natka-error-code", "ETOOBIG"},
                {"natka-source", "stream OTHER seq 1 delivery 1"}};
  it_kafka_produce(t, x->dlq, NULL, 0, "", 0, h, 3);
  const char *args[] = {"dlq",    "replay",  "-c",        x->config,
                        "--code", "ETOOBIG", "--dry-run", NULL};
  int rc = it_natka_cmd(t, "replay", args, 120000, &out, &err);
  it_log(t, "replay: exit %d; stdout: %s; stderr: %s", rc, out, err);
  IT_CHECK_INT(t, rc, ==, 1);
  IT_CHECK_HAS(t, err, "not jetstream.stream");
  IT_CHECK_HAS(t, out, "bad 1");
  free(out);
  free(err);
}

int main(int argc, char **argv) {
  it_test t;
  it_js js;
  it_proc natka;
  static run x;

  it_init(&t, "forgery", argc, argv, 1);
  x.t = &t;
  snprintf(x.stream, sizeof(x.stream), "%s", t.uniq);
  snprintf(x.subject, sizeof(x.subject), "%s.js.in", t.uniq);
  snprintf(x.req, sizeof(x.req), "%s.req.in", t.uniq);
  snprintf(x.good, sizeof(x.good), "%s_good", t.uniq);
  snprintf(x.dlq, sizeof(x.dlq), "%s_dlq", t.uniq);
  snprintf(x.ckpt, sizeof(x.ckpt), "%s_ckpt", t.uniq);
  snprintf(x.other, sizeof(x.other), "%s_other", t.uniq);
  snprintf(x.rules_bucket, sizeof(x.rules_bucket), "%s_rules", t.uniq);
  snprintf(x.status_bucket, sizeof(x.status_bucket), "%s_status", t.uniq);
  snprintf(x.name, sizeof(x.name), "%s", t.uniq);

  it_js_connect(&t, &js);
  kvStore *rules = it_kv_open(&t, &js, x.rules_bucket, 8);
  char src[512];
  snprintf(src, sizeof(src),
           "return { route = function(ev)\n"
           "  if ev.kind == 'rule.to.dlq' then return '%s' end\n"
           "end }\n",
           x.dlq);
  it_kv_put(&t, rules, "route", src);
  kvStore_Destroy(rules);
  it_write_file(
      &t, "natka.conf", x.config,
      "return {\n"
      "  nats = { url = '%s', name = '%s' },\n"
      "  kafka = { brokers = '%s', checkpoint_topic = '%s' },\n"
      "  ingress = { subjects = { '%s.req.>' },\n"
      "              stream_prefix = '%s.js.stored' },\n"
      "  jetstream = { stream = '%s', subjects = { '%s.js.>' } },\n"
      "  rules = { bucket = '%s', status_bucket = '%s' },\n"
      "  switches = { bucket = '' },\n"
      "  dlq = { topic = '%s' },\n"
      "  route = { allow = { '%s_g*', '%s_dlq', '%s_ckpt', '__*' } },\n"
      "}\n",
      t.nats_url, x.name, t.kafka_brokers, x.ckpt, t.uniq, t.uniq, x.stream,
      t.uniq, x.rules_bucket, x.status_bucket, x.dlq, t.uniq, t.uniq, t.uniq);
  it_natka_start(&t, &natka, x.config, "natka.log");
  IT_CHECK_INT(&t, it_wait_log(&natka, "consuming", 30000), ==, 0);
  IT_CHECK_INT(&t, it_wait_log(&natka, "ingress: taking requests", 15000), ==,
               0);

  publish_events(&x, &js);
  request_with_controls(&x, &js);

  const char *topics[] = {x.good, x.dlq, x.ckpt};
  it_kafka_read(&t, topics, 3, 0, 60000, on_record, &x);
  IT_CHECK_INT(&t, x.forbidden, ==, N_FORBIDDEN);
  IT_CHECK_INT(&t, x.forged_checked, ==, 1);
  IT_CHECK_INT(&t, x.good_seen, ==, 1);
  IT_CHECK_INT(&t, x.ttl_seen, ==, 1);
  cJSON *j = it_status_wait(&t, &js, x.status_bucket, x.name, "stats.forbidden",
                            N_FORBIDDEN, 30000);
  IT_CHECK_INT(&t, (int)it_json_num(j, "stats.forbidden"), ==, N_FORBIDDEN);
  cJSON_Delete(j);

  IT_CHECK_INT(&t, it_natka_stop(&t, &natka, 30000), ==, 0);
  it_js_wait_settled(&t, &js, x.stream, "natka", 10000);
  it_js_close(&js);

  replay_stays_in_its_stream(&x);
  return it_pass(&t);
}
