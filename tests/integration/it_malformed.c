/*
 * Malformed input on every ingress natka has: the JetStream stream, core
 * NATS subjects (nats.subjects) and the request-reply ingress
 * (ingress.subjects). Oversized events (data, and headers), ce-time that is
 * not RFC 3339, ce-id given twice (also in two spellings), natka-key-b64
 * that is not base64, both key headers, a header with an empty value (which
 * nats.c can send but not parse back), header bytes nats.c passes on but
 * that are odd (CR/LF, control and non-UTF-8 bytes, ':' in a name), empty
 * data, NUL bytes in data and keys that are not UTF-8.
 *
 * Each case is checked for what natka promises: a bad one is dead-lettered
 * with natka-error-code (JetStream and core NATS) or refused with an error
 * reply (ingress), a good one reaches its topic once with its bytes intact,
 * the malformed / oversized / ingress_refused counters in the status add
 * up, and a good event sent after all of them on each bus arrives. Every
 * mismatch is collected and reported at the end, so one run shows them all.
 * Configurations with an empty subject are rejected with exit status 2.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "harness.h"

#define MAX_EVENT_BYTES 4096
#define BIG_BYTES 8000
#define PAD_BYTES 5000
#define MAX_HDRS 6
#define MAX_PROBLEMS 64

enum bus { JS, CORE, REQ };
static const char *const bus_names[] = {"jetstream", "core", "ingress"};

/* What natka should do with a case. */
enum outcome {
  DELIVER, /* reaches the topic (after a receipt, for the ingress) */
  DEAD,    /* dead-lettered with `code` (JetStream, core NATS) */
  REFUSE   /* an error reply with `needle` in its reason (ingress) */
};

typedef struct mcase {
  const char *name;
  const char *id_name; /* the id header's spelling; NULL: "ce-id" */
  it_hdr h[MAX_HDRS];  /* after the id; "$ID" in a value becomes the id */
  size_t data_len;     /* 0: "case=<id>"; else that many 'B' bytes */
  const char *raw;     /* else these raw_len bytes */
  size_t raw_len;
  int empty_data;
  enum outcome want[3]; /* per bus */
  const char *code;     /* for DEAD */
  const char *needle;   /* in natka-error or the reply's reason */
  const char *key;      /* for DELIVER: the record key expected */
  size_t key_len;
  const char *hname, *hvalue; /* for DELIVER: a header expected */
} mcase;

static char pad[PAD_BYTES + 1];

#define BAD .want = {DEAD, DEAD, REFUSE}
#define OK .want = {DELIVER, DELIVER, DELIVER}

/* Every case runs on every bus with its own id "<bus>-<name>" in ce-id,
 * sent before the headers below. */
static const mcase cases[] = {
    {.name = "big",
     .data_len = BIG_BYTES,
     BAD,
     .code = "ETOOBIG",
     .needle = "max_event_bytes"},
    {.name = "big-headers",
     .h = {{"x-pad", pad}},
     BAD,
     .code = "ETOOBIG",
     .needle = "max_event_bytes"},
    {.name = "time-month-13",
     .h = {{"ce-time", "2024-13-01T00:00:00Z"}},
     BAD,
     .code = "EMALFORMED",
     .needle = "ce-time"},
    {.name = "time-words",
     .h = {{"ce-time", "yesterday at noon"}},
     BAD,
     .code = "EMALFORMED",
     .needle = "ce-time"},
    {.name = "dup-id",
     .h = {{"ce-id", "$ID-again"}},
     BAD,
     .code = "EMALFORMED",
     .needle = "given 2 times"},
    {.name = "dup-id-case",
     .h = {{"CE-ID", "$ID-again"}},
     BAD,
     .code = "EMALFORMED",
     .needle = "given 2 times"},
    {.name = "key-b64-bad",
     .h = {{"natka-key-b64", "not base64!"}},
     BAD,
     .code = "EMALFORMED",
     .needle = "not base64"},
    {.name = "key-both",
     .h = {{"ce-partitionkey", "k"}, {"natka-key-b64", "aw=="}},
     BAD,
     .code = "EMALFORMED",
     .needle = "both given"},
    /* nats.c puts "x-empty: " on the wire but fails to parse it back. */
    {.name = "empty-value",
     .h = {{"x-empty", ""}},
     BAD,
     .code = "EMALFORMED",
     .needle = "header"},
    {.name = "empty-data", .empty_data = 1, OK},
    {.name = "nul-data", .raw = "a\0b\0\xff", .raw_len = 5, OK},
    {.name = "key-not-utf8",
     .h = {{"ce-partitionkey", "\xff\xfek\x80"}},
     OK,
     .key = "\xff\xfek\x80",
     .key_len = 4},
    {.name = "key-b64-binary",
     .h = {{"natka-key-b64", "AP+A"}},
     OK,
     .key = "\x00\xff\x80",
     .key_len = 3},
    /* nats.c writes CR/LF in a value as spaces: no header injection. */
    {.name = "crlf-value",
     .h = {{"x-odd", "a\r\nce-id: injected"}},
     OK,
     .hname = "x-odd",
     .hvalue = "a  ce-id: injected"},
    {.name = "bytes-value",
     .h = {{"x-bin", "\x01\xc3\x28\x7f\xff"}},
     OK,
     .hname = "x-bin",
     .hvalue = "\x01\xc3\x28\x7f\xff"},
    {.name = "type-not-utf8",
     .h = {{"ce-type", "kind.\xff\xfe"}},
     OK,
     .hname = "ce_type",
     .hvalue = "kind.\xff\xfe"},
    /* Header names are case-insensitive to natka. */
    {.name = "id-upper-case", .id_name = "CE-ID", OK},
    /* On the wire "x-a:b: c" reads back as x-a = "b: c". */
    {.name = "colon-name", .h = {{"x-a:b", "c"}}, OK},
    {.name = "good-last",
     .h = {{"ce-type", "orders.created"}},
     OK,
     .hname = "ce_type",
     .hvalue = "orders.created"},
};
#define N_CASES (sizeof(cases) / sizeof(cases[0]))
#define N_ALL (3 * N_CASES)

/* What happened to each case on each bus. */
typedef struct result {
  int delivered, dead, refused, receipt;
  char code[32], error[512], reason[512], source[128];
  char got_id[128], got_header[128]; /* of a delivered record */
  int key_ok, header_ok, value_ok;
} result;

typedef struct run {
  it_test *t;
  char stream[96], js_subject[128], core_subject[128], req_subject[128];
  char good[128], dlq[128], status_bucket[96], name[96];
  result res[N_ALL];
  char problems[MAX_PROBLEMS][400];
  int nproblems;
} run;

static void problem(run *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void problem(run *r, const char *fmt, ...) {
  va_list ap;
  if (r->nproblems >= MAX_PROBLEMS)
    return;
  va_start(ap, fmt);
  vsnprintf(r->problems[r->nproblems++], sizeof(r->problems[0]), fmt, ap);
  va_end(ap);
}

static void case_id(int bus, size_t c, char *buf, size_t len) {
  snprintf(buf, len, "%s-%s", bus_names[bus], cases[c].name);
}

/* The message of case c on `bus`, on `subject`. */
static natsMsg *build(it_test *t, int bus, size_t c, const char *subject) {
  char id[96], value[PAD_BYTES + 128], data[128];
  natsMsg *m = NULL;
  const mcase *k = &cases[c];
  char *big = NULL;
  const char *d = data;
  int len;
  case_id(bus, c, id, sizeof(id));
  if (k->raw != NULL) {
    d = k->raw;
    len = (int)k->raw_len;
  } else if (k->data_len > 0) {
    big = malloc(k->data_len);
    IT_CHECK(t, big != NULL);
    memset(big, 'B', k->data_len);
    d = big;
    len = (int)k->data_len;
  } else {
    len = k->empty_data ? 0 : snprintf(data, sizeof(data), "case=%s", id);
  }
  IT_CHECK(t, natsMsg_Create(&m, subject, NULL, d, len) == NATS_OK);
  IT_CHECK(t, natsMsgHeader_Add(m, k->id_name ? k->id_name : "ce-id", id) ==
                  NATS_OK);
  free(big);
  for (size_t i = 0; i < MAX_HDRS && k->h[i].name != NULL; i++) {
    const char *at = strstr(k->h[i].value, "$ID");
    if (at != NULL)
      snprintf(value, sizeof(value), "%.*s%s%s", (int)(at - k->h[i].value),
               k->h[i].value, id, at + 3);
    else
      snprintf(value, sizeof(value), "%s", k->h[i].value);
    IT_CHECK(t, natsMsgHeader_Add(m, k->h[i].name, value) == NATS_OK);
  }
  return m;
}

static void send_js(run *r, it_js *js) {
  for (size_t c = 0; c < N_CASES; c++) {
    natsMsg *m = build(r->t, JS, c, r->js_subject);
    jsPubAck *ack = NULL;
    jsErrCode jerr = 0;
    natsStatus st = js_PublishMsg(&ack, js->js, m, NULL, &jerr);
    if (st != NATS_OK)
      problem(r, "jetstream-%s: JetStream refused the publish: %s (%d)",
              cases[c].name, natsStatus_GetText(st), (int)jerr);
    jsPubAck_Destroy(ack);
    natsMsg_Destroy(m);
  }
}

static void send_core(run *r, it_js *js) {
  for (size_t c = 0; c < N_CASES; c++) {
    natsMsg *m = build(r->t, CORE, c, r->core_subject);
    IT_CHECK(r->t, natsConnection_PublishMsg(js->nc, m) == NATS_OK);
    natsMsg_Destroy(m);
    /* Core NATS drops what a slow consumer cannot take: keep it gentle. */
    IT_CHECK(r->t, natsConnection_FlushTimeout(js->nc, 5000) == NATS_OK);
  }
}

static void send_requests(run *r, it_js *js) {
  for (size_t c = 0; c < N_CASES; c++) {
    result *res = &r->res[REQ * N_CASES + c];
    natsMsg *m = build(r->t, REQ, c, r->req_subject), *reply = NULL;
    natsStatus st = natsConnection_RequestMsg(&reply, js->nc, m, 10000);
    natsMsg_Destroy(m);
    if (st != NATS_OK) {
      problem(r, "ingress-%s: no reply: %s", cases[c].name,
              natsStatus_GetText(st));
      continue;
    }
    cJSON *j = cJSON_ParseWithLength(natsMsg_GetData(reply),
                                     (size_t)natsMsg_GetDataLength(reply));
    const char *error = it_json_str(j, "error");
    const char *reason = it_json_str(j, "reason");
    if (error != NULL) {
      res->refused = 1;
      snprintf(res->reason, sizeof(res->reason), "%s: %s", error,
               reason ? reason : "");
    } else if (it_json_str(j, "id") != NULL) {
      res->receipt = 1;
      snprintf(res->reason, sizeof(res->reason), "receipt for id %s",
               it_json_str(j, "id"));
    } else {
      problem(r, "ingress-%s: reply neither receipt nor error: %.*s",
              cases[c].name, natsMsg_GetDataLength(reply),
              natsMsg_GetData(reply));
    }
    cJSON_Delete(j);
    natsMsg_Destroy(reply);
  }
}

/* Finds the case a record belongs to: by ce_id, else by its data. */
static long record_case(const it_record *rec) {
  char id[96], data[128];
  const char *ce_id = it_record_hstr(rec, "ce_id");
  for (int bus = 0; bus < 3; bus++)
    for (size_t c = 0; c < N_CASES; c++) {
      case_id(bus, c, id, sizeof(id));
      snprintf(data, sizeof(data), "case=%s", id);
      if ((ce_id != NULL && strcmp(ce_id, id) == 0) ||
          (rec->value_len == strlen(data) &&
           memcmp(rec->value, data, rec->value_len) == 0))
        return (long)(bus * N_CASES + c);
    }
  return -1;
}

static void hcopy(char *dst, size_t len, const char *src) {
  snprintf(dst, len, "%s", src != NULL ? src : "");
}

static int on_record(it_test *t, const it_record *rec, void *data) {
  run *r = data;
  long i = record_case(rec);
  (void)t;
  if (i < 0) {
    problem(r, "a record of no case in %s: ce_id %s, %zu bytes", rec->topic,
            it_record_hstr(rec, "ce_id") ? it_record_hstr(rec, "ce_id")
                                         : "(none)",
            rec->value_len);
    return 0;
  }
  const mcase *k = &cases[i % N_CASES];
  result *res = &r->res[i];
  if (strcmp(rec->topic, r->dlq) == 0) {
    res->dead++;
    hcopy(res->code, sizeof(res->code),
          it_record_hstr(rec, "natka-error-code"));
    hcopy(res->error, sizeof(res->error), it_record_hstr(rec, "natka-error"));
    hcopy(res->source, sizeof(res->source),
          it_record_hstr(rec, "natka-source"));
  } else {
    res->delivered++;
    const it_header *h = k->hname ? it_record_header(rec, k->hname, 0) : NULL;
    res->key_ok =
        k->key == NULL || (rec->key != NULL && rec->key_len == k->key_len &&
                           memcmp(rec->key, k->key, k->key_len) == 0);
    res->header_ok =
        k->hname == NULL || (h != NULL && h->len == strlen(k->hvalue) &&
                             memcmp(h->value, k->hvalue, h->len) == 0);
    res->value_ok = k->raw != NULL
                        ? rec->value_len == k->raw_len &&
                              memcmp(rec->value, k->raw, k->raw_len) == 0
                    : k->empty_data ? rec->value_len == 0
                                    : rec->value_len > 0;
    hcopy(res->got_id, sizeof(res->got_id), it_record_hstr(rec, "ce_id"));
    if (h != NULL)
      hcopy(res->got_header, sizeof(res->got_header), h->value);
  }
  int all = 1;
  for (size_t j = 0; j < N_ALL; j++)
    all &= r->res[j].delivered + r->res[j].dead > 0 ||
           cases[j % N_CASES].want[j / N_CASES] == REFUSE;
  return all;
}

static const char *outcome_text(const result *res) {
  return res->dead        ? "dead-lettered"
         : res->delivered ? "delivered"
         : res->refused   ? "refused"
                          : "lost";
}

static void check_case(run *r, int bus, size_t c) {
  const mcase *k = &cases[c];
  const result *res = &r->res[bus * N_CASES + c];
  char id[96];
  case_id(bus, c, id, sizeof(id));
  if (res->delivered + res->dead > 1)
    problem(r, "%s: %d records, expected one", id, res->delivered + res->dead);
  switch (k->want[bus]) {
  case DEAD:
    if (!res->dead)
      problem(r,
              "%s: expected a dead letter with %s, but it was %s (ce_id "
              "\"%s\")",
              id, k->code, outcome_text(res), res->got_id);
    else if (strcmp(res->code, k->code) != 0 ||
             strstr(res->error, k->needle) == NULL)
      problem(r,
              "%s: dead letter with code %s, error \"%s\"; expected %s "
              "and \"%s\"",
              id, res->code, res->error, k->code, k->needle);
    else if (strstr(res->source, bus == JS ? "seq" : "core NATS") == NULL)
      problem(r, "%s: natka-source \"%s\"", id, res->source);
    break;
  case REFUSE:
    if (!res->refused || strstr(res->reason, k->needle) == NULL)
      problem(r,
              "%s: expected an error reply mentioning \"%s\", got %s; "
              "the event was %s",
              id, k->needle, res->reason[0] ? res->reason : "nothing",
              outcome_text(res));
    break;
  case DELIVER:
    if (!res->delivered)
      problem(r, "%s: expected delivery, but it was %s%s%s", id,
              outcome_text(res), res->dead ? ": " : "",
              res->dead ? res->error : res->reason);
    else if (!res->key_ok || !res->header_ok || !res->value_ok)
      problem(r, "%s: delivered with a different %s (%s)", id,
              !res->key_ok      ? "key"
              : !res->header_ok ? k->hname
                                : "value",
              res->key_ok && !res->header_ok ? res->got_header : "...");
    if (bus == REQ && !res->receipt)
      problem(r, "%s: no receipt: %s", id, res->reason);
    break;
  }
}

/* The status natka writes to KV: its counters once they are at least
 * what the events sent so far make. */
static void check_counters(run *r, it_js *js) {
  int64_t malformed = 0, oversized = 0, refused = 0;
  for (size_t i = 0; i < N_ALL; i++) {
    const mcase *k = &cases[i % N_CASES];
    enum outcome want = k->want[i / N_CASES];
    malformed += want == DEAD && strcmp(k->code, "EMALFORMED") == 0;
    oversized += want == DEAD && strcmp(k->code, "ETOOBIG") == 0;
    refused += want == REFUSE;
  }
  cJSON_Delete(it_status_wait(r->t, js, r->status_bucket, r->name,
                              "stats.malformed", (double)malformed, 30000));
  cJSON *j = it_status_wait(r->t, js, r->status_bucket, r->name,
                            "stats.oversized", (double)oversized, 30000);
  it_log(r->t, "status: malformed %.0f, oversized %.0f, ingress_refused %.0f",
         it_json_num(j, "stats.malformed"), it_json_num(j, "stats.oversized"),
         it_json_num(j, "stats.ingress_refused"));
  if (it_json_num(j, "stats.malformed") != (double)malformed)
    problem(r, "stats.malformed is %.0f, expected %lld",
            it_json_num(j, "stats.malformed"), (long long)malformed);
  if (it_json_num(j, "stats.oversized") != (double)oversized)
    problem(r, "stats.oversized is %.0f, expected %lld",
            it_json_num(j, "stats.oversized"), (long long)oversized);
  if (it_json_num(j, "stats.ingress_refused") != (double)refused)
    problem(r, "stats.ingress_refused is %.0f, expected %lld",
            it_json_num(j, "stats.ingress_refused"), (long long)refused);
  cJSON_Delete(j);
}

/* An empty subject cannot be published to; in the configuration it must
 * be refused at start, naming the key. */
static void empty_subjects(it_test *t) {
  static const char *const keys[][2] = {
      {"nats", "nats.subjects"},
      {"ingress", "ingress.subjects"},
      {"jetstream", "jetstream.subjects"},
  };
  char path[PATH_MAX], name[64], tag[64], *err = NULL;
  for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
    snprintf(name, sizeof(name), "empty-%s.conf", keys[i][0]);
    snprintf(tag, sizeof(tag), "empty-%s", keys[i][0]);
    it_write_file(t, name, path,
                  "return { %s = { subjects = { 'ok.x', '' } },\n"
                  "  kafka = { brokers = '127.0.0.1:9' } }\n",
                  keys[i][0]);
    const char *args[] = {"check", "-c", path, NULL};
    int rc = it_natka_cmd(t, tag, args, 15000, NULL, &err);
    if (rc != 2)
      IT_FAIL(t, "%s with an empty subject: exit %d, expected 2: %s",
              keys[i][1], rc, err);
    IT_CHECK_HAS(t, err, keys[i][1]);
    it_log(t, "  %.*s", (int)strcspn(err, "\n"), err);
    free(err);
  }
}

int main(int argc, char **argv) {
  it_test t;
  it_js js;
  it_proc natka;
  char config[PATH_MAX];
  static run r;

  it_init(&t, "malformed", argc, argv, 1);
  memset(pad, 'p', PAD_BYTES);
  r.t = &t;
  empty_subjects(&t);

  snprintf(r.stream, sizeof(r.stream), "%s", t.uniq);
  snprintf(r.js_subject, sizeof(r.js_subject), "%s.js.in", t.uniq);
  snprintf(r.core_subject, sizeof(r.core_subject), "%s.core.in", t.uniq);
  snprintf(r.req_subject, sizeof(r.req_subject), "%s.req.in", t.uniq);
  snprintf(r.good, sizeof(r.good), "%s_good", t.uniq);
  snprintf(r.dlq, sizeof(r.dlq), "%s_dlq", t.uniq);
  snprintf(r.status_bucket, sizeof(r.status_bucket), "%s_status", t.uniq);
  snprintf(r.name, sizeof(r.name), "%s", t.uniq);
  it_js_connect(&t, &js);
  kvStore *rules = it_kv_open(&t, &js, t.uniq, 8);
  char src[256];
  snprintf(src, sizeof(src),
           "return { route = function(ev) return '%s' end }\n", r.good);
  it_kv_put(&t, rules, "route", src);
  kvStore_Destroy(rules);
  it_write_file(&t, "natka.conf", config,
                "return {\n"
                "  nats = { url = '%s', name = '%s',\n"
                "           subjects = { '%s.core.>' } },\n"
                "  kafka = { brokers = '%s' },\n"
                "  ingress = { subjects = { '%s.req.>' },\n"
                "              stream_prefix = '%s.js.stored' },\n"
                "  jetstream = { stream = '%s', subjects = { '%s.js.>' } },\n"
                "  rules = { bucket = '%s', status_bucket = '%s' },\n"
                "  switches = { bucket = '' },\n"
                "  dlq = { topic = '%s' },\n"
                "  limits = { max_event_bytes = %d },\n"
                "}\n",
                t.nats_url, r.name, t.uniq, t.kafka_brokers, t.uniq, t.uniq,
                r.stream, t.uniq, t.uniq, r.status_bucket, r.dlq,
                MAX_EVENT_BYTES);
  it_natka_start(&t, &natka, config, "natka.log");
  IT_CHECK_INT(&t, it_wait_log(&natka, "consuming", 30000), ==, 0);
  IT_CHECK_INT(&t, it_wait_log(&natka, "ingress: taking requests", 15000), ==,
               0);
  IT_CHECK_INT(&t, it_wait_log(&natka, "nats: connected", 15000), ==, 0);

  send_js(&r, &js);
  send_core(&r, &js);
  send_requests(&r, &js);
  it_log(&t, "sent %zu cases on each of 3 ingresses", N_CASES);

  const char *topics[] = {r.good, r.dlq};
  it_kafka_read(&t, topics, 2, 0, 60000, on_record, &r);
  for (int bus = 0; bus < 3; bus++)
    for (size_t c = 0; c < N_CASES; c++)
      check_case(&r, bus, c);
  check_counters(&r, &js);

  IT_CHECK_INT(&t, it_natka_stop(&t, &natka, 30000), ==, 0);
  it_js_wait_settled(&t, &js, r.stream, "natka", 10000);
  it_js_close(&js);
  for (int i = 0; i < r.nproblems; i++)
    fprintf(stderr, "PROBLEM %d: %s\n", i + 1, r.problems[i]);
  if (r.nproblems > 0)
    IT_FAIL(&t, "%d problem(s), listed above", r.nproblems);
  return it_pass(&t);
}
