/*
 * The request-reply ingress: a request gets its receipt (event id, stream,
 * sequence) only once JetStream has stored the event, a retried request is
 * stored once, a bad one gets an error reply (never silence), and every
 * accepted event reaches Kafka.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "harness.h"

#define N 100

/* Sends one request and returns its parsed JSON reply (cJSON_Delete it). */
static cJSON *request(it_test *t, it_js *js, const char *subject,
                      const it_hdr *h, size_t nh, const char *data,
                      size_t len) {
  natsMsg *msg = NULL, *reply = NULL;
  IT_CHECK(t, natsMsg_Create(&msg, subject, NULL, data, (int)len) == NATS_OK);
  for (size_t i = 0; i < nh; i++)
    IT_CHECK(t, natsMsgHeader_Add(msg, h[i].name, h[i].value) == NATS_OK);
  natsStatus st = natsConnection_RequestMsg(&reply, js->nc, msg, 10000);
  natsMsg_Destroy(msg);
  if (st != NATS_OK)
    IT_FAIL(t, "request on %s: %s", subject, natsStatus_GetText(st));
  cJSON *j = cJSON_ParseWithLength(natsMsg_GetData(reply),
                                   (size_t)natsMsg_GetDataLength(reply));
  if (j == NULL)
    IT_FAIL(t, "reply is not JSON: %.*s", natsMsg_GetDataLength(reply),
            natsMsg_GetData(reply));
  natsMsg_Destroy(reply);
  return j;
}

static const char *jstr(cJSON *j, const char *k) {
  cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double jnum(cJSON *j, const char *k) {
  cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
  return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static int count(it_test *t, const it_record *r, void *data) {
  unsigned char *seen = data;
  const char *id = it_record_hstr(r, "ce_id");
  int i = id != NULL && strncmp(id, "r-", 2) == 0 ? atoi(id + 2) : 0;
  IT_CHECK(t, i >= 1 && i <= N);
  seen[0] += seen[i]++ == 0;
  return seen[0] == N;
}

int main(int argc, char **argv) {
  it_test t;
  it_js js;
  it_proc natka;
  char rule[PATH_MAX], config[PATH_MAX], stream[96], req[128], topic[128];
  char id[32], data[64];
  unsigned char seen[N + 1] = {0};

  it_init(&t, "ingress", argc, argv, 1);
  snprintf(stream, sizeof(stream), "%s", t.uniq);
  snprintf(req, sizeof(req), "%s.req.orders", t.uniq);
  snprintf(topic, sizeof(topic), "%s_orders", t.uniq);
  it_write_file(&t, "route.lua", rule,
                "return { route = function(ev) return '%s' end }\n", topic);
  it_write_file(&t, "natka.conf", config,
                "return {\n"
                "  nats = { url = '%s' },\n"
                "  kafka = { brokers = '%s' },\n"
                "  ingress = { subjects = { '%s.req.>' },\n"
                "              stream_prefix = '%s.stored' },\n"
                "  jetstream = { stream = '%s', subjects = { '%s.stored.>' },\n"
                "    durable = 'd' },\n"
                "  rules = { files = { '%s' } },\n"
                "  switches = { bucket = '' },\n"
                "  limits = { max_event_bytes = 4096 },\n"
                "  dlq = { topic = '%s_dlq' },\n"
                "}\n",
                t.nats_url, t.kafka_brokers, t.uniq, t.uniq, stream, t.uniq,
                rule, t.uniq);
  it_natka_start(&t, &natka, config, "natka.log");
  IT_CHECK_INT(&t, it_wait_log(&natka, "ingress: taking requests", 15000), ==,
               0);
  IT_CHECK_INT(&t, it_wait_log(&natka, "consuming", 15000), ==, 0);
  it_js_connect(&t, &js);

  double last_seq = 0;
  for (int i = 1; i <= N; i++) {
    snprintf(id, sizeof(id), "r-%d", i);
    int len = snprintf(data, sizeof(data), "{\"order\":%d}", i);
    it_hdr h[] = {{"Nats-Msg-Id", id}, {"ce-type", "orders.created"}};
    cJSON *j = request(&t, &js, req, h, 2, data, (size_t)len);
    IT_CHECK_STR(&t, jstr(j, "id"), id);
    IT_CHECK_STR(&t, jstr(j, "stream"), stream);
    IT_CHECK(&t, jnum(j, "seq") > last_seq);
    IT_CHECK(&t, cJSON_IsFalse(cJSON_GetObjectItem(j, "duplicate")));
    last_seq = jnum(j, "seq");
    cJSON_Delete(j);
  }
  it_log(&t, "%d receipts, stream seq up to %.0f", N, last_seq);

  /* A retry after a lost reply is stored once. */
  it_hdr again[] = {{"Nats-Msg-Id", "r-1"}, {"ce-type", "orders.created"}};
  cJSON *j = request(&t, &js, req, again, 2, "{\"order\":1}", 11);
  IT_CHECK_STR(&t, jstr(j, "id"), "r-1");
  IT_CHECK(&t, cJSON_IsTrue(cJSON_GetObjectItem(j, "duplicate")));
  cJSON_Delete(j);

  /* Bad requests get an error reply with the reason. */
  it_hdr bad_time[] = {{"ce-time", "yesterday"}};
  j = request(&t, &js, req, bad_time, 1, "x", 1);
  IT_CHECK_STR(&t, jstr(j, "error"), "malformed");
  IT_CHECK_HAS(&t, jstr(j, "reason"), "ce-time");
  cJSON_Delete(j);
  char *big = calloc(1, 8192);
  IT_CHECK(&t, big != NULL);
  memset(big, 'x', 8191);
  j = request(&t, &js, req, NULL, 0, big, 8191);
  IT_CHECK_STR(&t, jstr(j, "error"), "malformed");
  IT_CHECK_HAS(&t, jstr(j, "reason"), "max_event_bytes");
  cJSON_Delete(j);
  free(big);

  const char *topics[] = {topic};
  it_kafka_read(&t, topics, 1, 0, 60000, count, seen);
  IT_CHECK_INT(&t, seen[0], ==, N);
  for (int i = 1; i <= N; i++)
    IT_CHECK_INT(&t, seen[i], ==, 1); /* the retried r-1 was stored once */

  IT_CHECK_INT(&t, it_natka_stop(&t, &natka, 30000), ==, 0);
  it_js_wait_settled(&t, &js, stream, "d", 10000);
  it_js_close(&js);
  return it_pass(&t);
}
