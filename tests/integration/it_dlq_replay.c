/*
 * `natka dlq replay`: natka dead-letters events (a rule raising on poisoned
 * ones, a malformed one, an oversized one), and stops. A dry run lists
 * them and sends nothing; replays with the default group (first with
 * --max, then the rest with a bad record among them) send each once; natka,
 * run again with the rule fixed and a larger size limit, delivers every
 * replayed event to its topic exactly once with its ce_id unchanged and
 * natka-replayed-from / natka-replay-reason set. A replay after that sends
 * nothing; bad usage exits 2 with a message; an unreachable server exits 1
 * naming it. Last, a replay into a natka that kept running (the rule fixed
 * live) must be delivered although its dedup window saw the ids.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define N_EVENTS 40
#define POISON_EVERY 4
#define N_POISONED (N_EVENTS / POISON_EVERY)
#define N_GOOD (N_EVENTS - N_POISONED)
#define N_DEAD (N_POISONED + 2) /* + the malformed and the oversized one */
#define FIRST_MAX 3
#define MAX_EVENT_BYTES 4096
#define BIG_BYTES 8000
#define CMD_MS 60000

typedef struct names {
  char stream[96], subject[128], prefix[128], durable[96], good[128], dlq[128];
  char config[PATH_MAX], fixed_config[PATH_MAX];
} names;

static void write_files(it_test *t, names *n) {
  char poison[PATH_MAX], fixed[PATH_MAX];
  static const char conf[] =
      "return {\n"
      "  nats = { url = '%s' },\n"
      "  kafka = { brokers = '%s' },\n"
      "  ingress = { stream_prefix = '%s' },\n"
      "  jetstream = { stream = '%s', subjects = { '%s.>' }, durable = '%s' "
      "},\n"
      "  rules = { files = { '%s' } },\n"
      "  switches = { bucket = '' },\n"
      "  dlq = { topic = '%s' },\n"
      "  limits = { max_event_bytes = %d },\n"
      "  shutdown = { drain_timeout_ms = 10000 },\n"
      "}\n";
  it_write_file(t, "poison_guard.lua", poison,
                "return { route = function(ev)\n"
                "  if ev.data:find('poison', 1, true) then\n"
                "    error('poisoned event ' .. ev.id)\n"
                "  end\n"
                "  return '%s'\n"
                "end }\n",
                n->good);
  it_write_file(t, "fixed.lua", fixed,
                "return { route = function(ev) return '%s' end }\n", n->good);
  it_write_file(t, "natka.conf", n->config, conf, t->nats_url, t->kafka_brokers,
                n->prefix, n->stream, t->uniq, n->durable, poison, n->dlq,
                MAX_EVENT_BYTES);
  it_write_file(t, "fixed.conf", n->fixed_config, conf, t->nats_url,
                t->kafka_brokers, n->prefix, n->stream, t->uniq, n->durable,
                fixed, n->dlq, BIG_BYTES * 2);
}

static void payload(int i, char *buf, size_t len) {
  snprintf(buf, len, i % POISON_EVERY == 0 ? "poison %d" : "good %d", i);
}

static void publish_all(it_test *t, const names *n) {
  it_js js;
  char id[32], data[64], key[32], trace[32];
  it_js_connect(t, &js);
  it_js_add_stream(t, &js, n->stream, n->subject);
  for (int i = 0; i < N_EVENTS; i++) {
    snprintf(id, sizeof(id), "d-%d", i);
    snprintf(key, sizeof(key), "key-%d", i);
    snprintf(trace, sizeof(trace), "t-%d", i);
    payload(i, data, sizeof(data));
    it_hdr h[] = {{"Nats-Msg-Id", id},
                  {"ce-type", "replay.test"},
                  {"ce-partitionkey", key},
                  {"x-trace", trace}};
    it_js_publish(t, &js, n->subject, h, 4, data, strlen(data));
  }
  it_hdr bad_time[] = {{"Nats-Msg-Id", "d-malformed"},
                       {"ce-type", "replay.test"},
                       {"ce-time", "yesterday"}};
  it_js_publish(t, &js, n->subject, bad_time, 3, "bad time", 8);
  char *big = malloc(BIG_BYTES);
  IT_CHECK(t, big != NULL);
  memset(big, 'B', BIG_BYTES);
  it_hdr big_h[] = {{"Nats-Msg-Id", "d-big"}, {"ce-type", "replay.test"}};
  it_js_publish(t, &js, n->subject, big_h, 2, big, BIG_BYTES);
  free(big);
  it_js_publish_wait(t, &js, 30000);
  it_js_close(&js);
}

/* The number after "d-", -2 for d-malformed, -3 for d-big, else -1. */
static int event_number(const char *id) {
  if (id == NULL)
    return -1;
  if (strcmp(id, "d-malformed") == 0)
    return -2;
  if (strcmp(id, "d-big") == 0)
    return -3;
  if (strncmp(id, "d-", 2) != 0 || id[2] < '0' || id[2] > '9')
    return -1;
  return atoi(id + 2);
}

static int lines_with(const char *text, const char *needle) {
  int n = 0;
  for (const char *p = text; (p = strstr(p, needle)) != NULL; p++)
    n++;
  return n;
}

/* Runs `natka dlq replay -c config <extra...>`; returns its exit status. */
static int replay(it_test *t, const names *n, const char *tag,
                  const char *const *extra, char **out, char **err) {
  const char *args[24] = {"dlq", "replay", "-c", n->config};
  size_t k = 4;
  for (; extra != NULL && *extra != NULL && k < 23; extra++)
    args[k++] = *extra;
  args[k] = NULL;
  int rc = it_natka_cmd(t, tag, args, CMD_MS, out, err);
  it_log(t, "  stdout: %s", *out);
  if (**err)
    it_log(t, "  stderr: %s", *err);
  return rc;
}

/* Every dead letter natka wrote, before any replay. */
static void wait_dead_letters(it_test *t, const names *n) {
  it_records rs = {0};
  const char *topics[] = {n->good, n->dlq};
  it_kafka_collect(t, topics, 2, N_GOOD + N_DEAD, 120000, &rs);
  int good = 0, dead = 0;
  for (size_t i = 0; i < rs.n; i++) {
    if (strcmp(rs.v[i].topic, n->good) == 0)
      good++;
    else
      dead++;
  }
  it_records_free(&rs);
  IT_CHECK_INT(t, good, ==, N_GOOD);
  IT_CHECK_INT(t, dead, ==, N_DEAD);
}

static void usage_errors(it_test *t, const names *n) {
  static const struct {
    const char *tag, *a1, *a2, *needle;
  } bad[] = {
      {"u-max", "--max", "0", "--max wants a positive integer"},
      {"u-code", "--code", "EBOGUS", "not a dead-letter code"},
      {"u-since", "--since", "last tuesday", "--since wants"},
      {"u-from", "--from-offset", "x:1", "--from-offset wants"},
      {"u-unknown", "--frobnicate", NULL, "unknown option '--frobnicate'"},
      {"u-arg", "extra", NULL, "unexpected argument 'extra'"},
      {"u-value", "--topic", NULL, "needs a value"},
  };
  char *out = NULL, *err = NULL;
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    const char *extra[] = {bad[i].a1, bad[i].a2, NULL};
    IT_CHECK_INT(t, replay(t, n, bad[i].tag, extra, &out, &err), ==, 2);
    IT_CHECK_HAS(t, err, bad[i].needle);
    IT_CHECK_HAS(t, err, "Try 'natka dlq replay --help'");
    IT_CHECK_STR(t, out, "");
    free(out);
    free(err);
  }
  const char *both[] = {"--since", "1h", "--from-offset", "0", NULL};
  IT_CHECK_INT(t, replay(t, n, "u-both", both, &out, &err), ==, 2);
  IT_CHECK_HAS(t, err, "exclude each other");
  free(out);
  free(err);
  const char *emb[] = {"-s", "kafka.brokers=embedded", NULL};
  IT_CHECK_INT(t, replay(t, n, "u-embedded", emb, &out, &err), ==, 2);
  IT_CHECK_HAS(t, err, "embedded");
  free(out);
  free(err);

  const char *none[] = {"dlq", NULL}, *frob[] = {"dlq", "frob", NULL};
  IT_CHECK_INT(t, it_natka_cmd(t, "u-none", none, CMD_MS, &out, &err), ==, 2);
  IT_CHECK_HAS(t, err, "replay");
  free(out);
  free(err);
  IT_CHECK_INT(t, it_natka_cmd(t, "u-frob", frob, CMD_MS, &out, &err), ==, 2);
  IT_CHECK_HAS(t, err, "unknown command 'frob'");
  free(out);
  free(err);

  const char *help[] = {"dlq", "--help", NULL};
  IT_CHECK_INT(t, it_natka_cmd(t, "help", help, CMD_MS, &out, &err), ==, 0);
  IT_CHECK_HAS(t, out, "replay");
  free(out);
  free(err);
  const char *rhelp[] = {"dlq", "replay", "--help", NULL};
  IT_CHECK_INT(t, it_natka_cmd(t, "rhelp", rhelp, CMD_MS, &out, &err), ==, 0);
  static const char *const documented[] = {
      "--topic",       "--group",
      "--from-offset", "--since",
      "--subject",     "--code",
      "--max",         "--dry-run",
      "--skip-bad",    "natka-replayed-from",
      "Exit status",   "Examples"};
  for (size_t i = 0; i < sizeof(documented) / sizeof(documented[0]); i++)
    IT_CHECK_HAS(t, out, documented[i]);
  free(out);
  free(err);
}

/* Servers nobody listens on: exit 1 naming them. */
static void unreachable(it_test *t, const names *n) {
  char nats[128], kafka[128], *out = NULL, *err = NULL;
  snprintf(nats, sizeof(nats), "nats.url=nats://127.0.0.1:%d", it_free_port(t));
  snprintf(kafka, sizeof(kafka), "kafka.brokers=127.0.0.1:%d", it_free_port(t));
  const char *a[] = {"-s", nats, NULL};
  IT_CHECK_INT(t, replay(t, n, "no-nats", a, &out, &err), ==, 1);
  IT_CHECK_HAS(t, err, nats + strlen("nats.url="));
  free(out);
  free(err);
  const char *b[] = {"-s", kafka, "--dry-run", NULL};
  IT_CHECK_INT(t, replay(t, n, "no-kafka", b, &out, &err), ==, 1);
  IT_CHECK_HAS(t, err, kafka + strlen("kafka.brokers="));
  free(out);
  free(err);
}

/* A record in the DLQ topic that cannot be decoded: ce_id given twice. */
static void add_bad_record(it_test *t, const names *n) {
  it_hdr h[] = {{"ce_id", "x-1"},
                {"ce_id", "x-2"},
                {"natka-error-code", "ERULE"},
                {"natka-error", "hand-made"}};
  it_kafka_produce(t, n->dlq, NULL, 0, "undecodable", 11, h, 4);
}

/* Lines of out that start with `verb` and the DLQ topic ("sent T/..."). */
static int record_lines(const names *n, const char *out, const char *verb) {
  char needle[256];
  snprintf(needle, sizeof(needle), "%s %s/", verb, n->dlq);
  return lines_with(out, needle);
}

static void dry_runs(it_test *t, const names *n, uint64_t seq0) {
  char *out = NULL, *err = NULL, needle[256];
  const char *dry[] = {"--dry-run", NULL};
  it_js js;
  /* The bad record makes it exit 1; --skip-bad would not. */
  IT_CHECK_INT(t, replay(t, n, "dry", dry, &out, &err), ==, 1);
  IT_CHECK_INT(t, record_lines(n, out, "would send"), ==, N_DEAD);
  IT_CHECK_INT(t, lines_with(out, "code=ERULE reason="), ==, N_POISONED);
  IT_CHECK_HAS(t, out, "id=d-malformed code=EMALFORMED");
  IT_CHECK_HAS(t, out, "id=d-big code=ETOOBIG");
  IT_CHECK_HAS(t, out, "poisoned event d-0");
  IT_CHECK_HAS(t, out, "read 13, would send 12, skipped 0, bad 1");
  IT_CHECK_HAS(t, err, ": skipped, cannot be replayed");
  IT_CHECK_HAS(t, err, "ce_id given 2 times");
  IT_CHECK_HAS(t, err, "1 record(s) could not be replayed");
  free(out);
  free(err);
  const char *only[] = {"--dry-run", "--code", "emalformed", "--skip-bad",
                        NULL};
  IT_CHECK_INT(t, replay(t, n, "dry-code", only, &out, &err), ==, 0);
  IT_CHECK_INT(t, record_lines(n, out, "would send"), ==, 1);
  IT_CHECK_HAS(t, out, "read 13, would send 1, skipped 12, bad 0");
  free(out);
  free(err);
  /* One partition only: every line names partition 0. */
  const char *p0[] = {"--dry-run", "--from-offset", "0:0", "--skip-bad", NULL};
  IT_CHECK_INT(t, replay(t, n, "dry-p0", p0, &out, &err), ==, 0);
  snprintf(needle, sizeof(needle), "%s/0@", n->dlq);
  IT_CHECK_INT(t, record_lines(n, out, "would send"), ==,
               lines_with(out, needle));
  free(out);
  free(err);
  it_js_connect(t, &js);
  IT_CHECK_INT(t, it_js_stream_last_seq(t, &js, n->stream), ==, seq0);
  it_js_close(&js);
}

static void replays(it_test *t, const names *n, uint64_t seq0) {
  char *out = NULL, *err = NULL, max[16];
  it_js js;
  snprintf(max, sizeof(max), "%d", FIRST_MAX);
  const char *first[] = {"--max", max, NULL};
  IT_CHECK_INT(t, replay(t, n, "replay-1", first, &out, &err), ==, 0);
  IT_CHECK_INT(t, record_lines(n, out, "sent"), ==, FIRST_MAX);
  IT_CHECK_HAS(t, out, "sent 3, skipped 0, bad 0, failed 0");
  free(out);
  free(err);
  /* The rest, from the group's offsets: one bad record, accepted with
   * --skip-bad. */
  const char *rest[] = {"--skip-bad", NULL};
  IT_CHECK_INT(t, replay(t, n, "replay-2", rest, &out, &err), ==, 0);
  IT_CHECK_INT(t, record_lines(n, out, "sent"), ==, N_DEAD - FIRST_MAX);
  IT_CHECK_HAS(t, out, "read 10, sent 9, skipped 0, bad 1, failed 0");
  IT_CHECK_HAS(t, err, ": skipped, cannot be replayed");
  free(out);
  free(err);
  it_js_connect(t, &js);
  IT_CHECK_INT(t, it_js_stream_last_seq(t, &js, n->stream), ==, seq0 + N_DEAD);
  it_js_close(&js);
  /* --from-offset overrides the group's offsets (a dry run: nothing sent). */
  const char *again[] = {"--dry-run", "--from-offset", "0", "--skip-bad", NULL};
  IT_CHECK_INT(t, replay(t, n, "dry-from", again, &out, &err), ==, 0);
  IT_CHECK_INT(t, record_lines(n, out, "would send"), ==, N_DEAD);
  free(out);
  free(err);
}

typedef struct seen {
  int plain[N_EVENTS], replayed[N_EVENTS], malformed, big;
  const names *n;
} seen;

static int check_record(it_test *t, const it_record *r, void *data) {
  seen *s = data;
  const char *id = it_record_hstr(r, "ce_id");
  /* Written by the replay into JetStream, where any publisher could have
   * written them: natka passes them on as x-natka-* (codec.h). */
  const char *from = it_record_hstr(r, "x-natka-replayed-from");
  const char *why = it_record_hstr(r, "x-natka-replay-reason");
  IT_CHECK(t, it_record_hstr(r, "natka-replayed-from") == NULL);
  int i = event_number(id);
  char want[256];
  IT_CHECK_STR(t, r->topic, s->n->good);
  IT_CHECK(t, it_record_hstr(r, "natka-error") == NULL);
  IT_CHECK(t, it_record_hstr(r, "natka-source") == NULL);
  if (from == NULL) {
    IT_CHECK_INT(t, i, >=, 0);
    IT_CHECK_INT(t, i % POISON_EVERY, !=, 0);
    if (s->plain[i]++ != 0)
      IT_FAIL(t, "d-%d delivered twice", i);
    return 0;
  }
  snprintf(want, sizeof(want), "%s/", s->n->dlq);
  IT_CHECK(t, strncmp(from, want, strlen(want)) == 0 && strchr(from, '@'));
  if (i == -2) {
    IT_CHECK_STR(t, why, "EMALFORMED");
    IT_CHECK_MEM(t, r->value, r->value_len, "bad time", 8);
    IT_CHECK_INT(t, ++s->malformed, ==, 1);
  } else if (i == -3) {
    IT_CHECK_STR(t, why, "ETOOBIG");
    IT_CHECK_INT(t, r->value_len, ==, BIG_BYTES);
    IT_CHECK(t, r->value[0] == 'B' && r->value[BIG_BYTES - 1] == 'B');
    IT_CHECK_INT(t, ++s->big, ==, 1);
  } else {
    IT_CHECK_INT(t, i, >=, 0);
    IT_CHECK_INT(t, i % POISON_EVERY, ==, 0);
    IT_CHECK_STR(t, why, "ERULE");
    if (s->replayed[i]++ != 0)
      IT_FAIL(t, "replayed d-%d delivered twice", i);
    payload(i, want, sizeof(want));
    IT_CHECK_MEM(t, r->value, r->value_len, want, strlen(want));
    snprintf(want, sizeof(want), "key-%d", i);
    IT_CHECK_MEM(t, r->key, r->key_len, want, strlen(want));
    snprintf(want, sizeof(want), "t-%d", i);
    IT_CHECK_STR(t, it_record_hstr(r, "x-trace"), want);
  }
  return 0;
}

/* ---- a replay into a natka still running, whose dedup window holds the
 * keys of the events it dead-lettered (the rule fixed live, here by a
 * switch, as a hot reload would). */

#define N_LIVE 4 /* e-0 .. e-3; the even ones fail while the switch is on */

/* Counts e-N records in seen[N]; done once e-0 and e-2 were seen. */
static int count_live(it_test *t, const it_record *r, void *data) {
  int *seen = data;
  const char *id = it_record_hstr(r, "ce_id");
  (void)t;
  if (id != NULL && strncmp(id, "e-", 2) == 0 && id[2] >= '0' &&
      id[2] < '0' + N_LIVE && id[3] == '\0')
    seen[id[2] - '0']++;
  return seen[0] > 0 && seen[2] > 0;
}

static void live_replay(it_test *t, names *n) {
  char rule[PATH_MAX], config[PATH_MAX], bucket[128], id[16], data[32];
  char *out = NULL, *err = NULL;
  int dead[N_LIVE] = {0}, good[N_LIVE] = {0};
  it_proc natka;
  it_js js;
  snprintf(bucket, sizeof(bucket), "%s_sw", t->uniq);
  it_write_file(t, "live.lua", rule,
                "return {\n"
                "  dedup = function(ev) return ev.id end,\n"
                "  route = function(ev)\n"
                "    if ev.data:find('poison', 1, true) and\n"
                "       natka.switch('poison_fails') == 'yes' then\n"
                "      error('poisoned event ' .. ev.id)\n"
                "    end\n"
                "    return '%s'\n"
                "  end,\n"
                "}\n",
                n->good);
  it_write_file(t, "live.conf", config,
                "return {\n"
                "  nats = { url = '%s' },\n"
                "  kafka = { brokers = '%s' },\n"
                "  ingress = { stream_prefix = '%s' },\n"
                "  jetstream = { stream = '%s', subjects = { '%s.>' },\n"
                "                durable = '%s' },\n"
                "  rules = { files = { '%s' } },\n"
                "  switches = { bucket = '%s' },\n"
                "  dlq = { topic = '%s' },\n"
                "}\n",
                t->nats_url, t->kafka_brokers, n->prefix, n->stream, t->uniq,
                n->durable, rule, bucket, n->dlq);
  it_js_connect(t, &js);
  kvStore *sw = it_kv_open(t, &js, bucket, 1);
  it_kv_put(t, sw, "poison_fails", "yes");
  it_natka_start(t, &natka, config, "natka-3.log");
  IT_CHECK_INT(t, it_wait_log(&natka, "consuming", 30000), ==, 0);
  for (int i = 0; i < N_LIVE; i++) {
    snprintf(id, sizeof(id), "e-%d", i);
    snprintf(data, sizeof(data), i % 2 == 0 ? "poison %d" : "good %d", i);
    it_hdr h[] = {{"Nats-Msg-Id", id}, {"ce-type", "replay.live"}};
    it_js_publish(t, &js, n->subject, h, 2, data, strlen(data));
  }
  it_js_publish_wait(t, &js, 30000);
  const char *dlq[] = {n->dlq};
  it_kafka_read(t, dlq, 1, 0, 60000, count_live, dead);
  IT_CHECK_INT(t, dead[0], ==, 1);
  IT_CHECK_INT(t, dead[2], ==, 1);

  /* The fix, live: natka keeps running (and its dedup window). */
  it_kv_put(t, sw, "poison_fails", "no");
  kvStore_Destroy(sw);
  it_sleep_ms(500);
  IT_CHECK_INT(t, replay(t, n, "replay-live", NULL, &out, &err), ==, 0);
  IT_CHECK_HAS(t, out, "read 2, sent 2, skipped 0, bad 0, failed 0");
  free(out);
  free(err);
  const char *topics[] = {n->good};
  it_kafka_read(t, topics, 1, 0, 20000, count_live, good);
  IT_CHECK_INT(t, it_natka_stop(t, &natka, 30000), ==, 0);
  it_js_wait_settled(t, &js, n->stream, n->durable, 10000);
  it_js_close(&js);
  IT_CHECK_INT(t, good[1], ==, 1);
  IT_CHECK_INT(t, good[3], ==, 1);
  if (good[0] != 1 || good[2] != 1)
    IT_FAIL(t,
            "replayed e-0 / e-2 reached %s %d / %d time(s), expected once: "
            "natka dropped them as duplicates of the dead-lettered originals "
            "(flight.c finish() confirms the dedup key of a dead-lettered "
            "event)",
            n->good, good[0], good[2]);
}

int main(int argc, char **argv) {
  it_test t;
  it_proc natka;
  it_js js;
  names n;
  seen s = {.n = &n};
  char *out = NULL, *err = NULL;

  it_init(&t, "dlq_replay", argc, argv, 1);
  snprintf(n.stream, sizeof(n.stream), "%s", t.uniq);
  snprintf(n.subject, sizeof(n.subject), "%s.>", t.uniq);
  snprintf(n.prefix, sizeof(n.prefix), "%s.ingress", t.uniq);
  snprintf(n.durable, sizeof(n.durable), "%s_d", t.uniq);
  snprintf(n.good, sizeof(n.good), "%s_good", t.uniq);
  snprintf(n.dlq, sizeof(n.dlq), "%s_dlq", t.uniq);
  write_files(&t, &n);
  usage_errors(&t, &n);

  publish_all(&t, &n);
  it_natka_start(&t, &natka, n.config, "natka-1.log");
  wait_dead_letters(&t, &n);
  IT_CHECK_INT(&t, it_natka_stop(&t, &natka, 30000), ==, 0);
  it_js_connect(&t, &js);
  it_js_wait_settled(&t, &js, n.stream, n.durable, 10000);
  uint64_t seq0 = it_js_stream_last_seq(&t, &js, n.stream);
  it_js_close(&js);
  IT_CHECK_INT(&t, seq0, ==, N_EVENTS + 2);

  add_bad_record(&t, &n);
  unreachable(&t, &n);
  dry_runs(&t, &n, seq0);
  replays(&t, &n, seq0);

  /* The rule fixed and the limit raised: everything reaches its topic. */
  it_natka_start(&t, &natka, n.fixed_config, "natka-2.log");
  const char *topics[] = {n.good};
  it_kafka_read(&t, topics, 1, N_GOOD + N_DEAD, 120000, check_record, &s);
  for (int i = 0; i < N_EVENTS; i++)
    IT_CHECK_INT(&t, s.plain[i] + s.replayed[i], ==, 1);
  IT_CHECK_INT(&t, s.malformed, ==, 1);
  IT_CHECK_INT(&t, s.big, ==, 1);
  IT_CHECK_INT(&t, it_natka_stop(&t, &natka, 30000), ==, 0);
  it_js_connect(&t, &js);
  it_js_wait_settled(&t, &js, n.stream, n.durable, 10000);
  it_js_close(&js);

  /* Nothing new in the DLQ: a second replay sends nothing. */
  IT_CHECK_INT(&t, replay(&t, &n, "replay-3", NULL, &out, &err), ==, 0);
  IT_CHECK_HAS(&t, out, "read 0, sent 0, skipped 0, bad 0, failed 0");
  free(out);
  free(err);
  live_replay(&t, &n);
  return it_pass(&t);
}
