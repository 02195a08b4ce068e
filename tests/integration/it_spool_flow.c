/*
 * The disk spool on the way in: request-reply ingress with ingress.store =
 * "spool" and core NATS subjects, through the spool source to Kafka.
 *
 *  1. Kafka up: every request gets a spool receipt, every event arrives.
 *  2. Kafka killed: the spool holds what comes in until spool.max_bytes,
 *     then requests are answered "busy" (pushed back, no receipt). natka is
 *     killed with SIGKILL and the last segment is cut mid-record (a torn
 *     tail, as a crash during a write leaves it; here it takes the last
 *     request stored). `natka spool verify` reports it; natka starts
 *     anyway, reports and cuts the torn record, and once Kafka is back
 *     delivers every other receipted request, exactly once.
 *  3. Disk full (a file size limit on natka: writes fail like ENOSPC):
 *     requests get an error reply naming the failure, never a receipt for
 *     what was not stored; what was stored is delivered after a restart.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

#define MAX_ID 4000
#define REQ_BYTES 2048
#define SPOOL_BYTES (256 * 1024)

typedef struct flow {
  it_test *t;
  char req[128], core[128], topic[128], spool[PATH_MAX + 16];
  unsigned char receipted[MAX_ID + 1]; /* r-N got a receipt */
  unsigned char seen[MAX_ID + 1];      /* r-N (and c-N at +MAX_ID/2) read */
  size_t distinct, dups, want;
  int kafka_down;
} flow;

static void write_config(it_test *t, flow *f, const char *name, char *path,
                         const char *spool) {
  char rule[PATH_MAX];
  it_write_file(t, "route.lua", rule,
                "return { route = function(ev) return \"%s\" end }\n",
                f->topic);
  it_write_file(t, name, path,
                "return {\n"
                "  nats = { url = \"%s\", subjects = { \"%s\" } },\n"
                "  kafka = { brokers = \"%s\", checkpoint_topic = \"%s_ckpt\" "
                "},\n"
                "  jetstream = { enabled = false },\n"
                "  ingress = { subjects = { \"%s\" }, store = \"spool\" },\n"
                "  spool = { dir = \"%s\", max_bytes = %d, fsync = \"always\" "
                "},\n"
                "  rules = { files = { \"%s\" } },\n"
                "  switches = { bucket = \"\" },\n"
                "  dlq = { topic = \"%s_dlq\" },\n"
                "}\n",
                t->nats_url, f->core, t->kafka_brokers, t->uniq, f->req, spool,
                SPOOL_BYTES, rule, t->uniq);
}

/* Sends request r-n; returns the reply (free it) or NULL on no reply. */
static char *request(flow *f, natsConnection *nc, int n) {
  char id[32], *body = malloc(REQ_BYTES);
  natsMsg *req = NULL, *reply = NULL;
  IT_CHECK(f->t, body != NULL);
  snprintf(id, sizeof(id), "r-%d", n);
  memset(body, 'q', REQ_BYTES);
  natsMsg_Create(&req, f->req, NULL, body, REQ_BYTES);
  natsMsgHeader_Set(req, "ce-id", id);
  natsMsgHeader_Set(req, "ce-type", "spool.request");
  natsStatus st = natsConnection_RequestMsg(&reply, nc, req, 5000);
  natsMsg_Destroy(req);
  free(body);
  if (st != NATS_OK)
    return NULL;
  char *text = strndup(natsMsg_GetData(reply), natsMsg_GetDataLength(reply));
  natsMsg_Destroy(reply);
  if (strstr(text, "\"seq\"") != NULL)
    f->receipted[n] = 1;
  return text;
}

static void publish_core(flow *f, natsConnection *nc, int n) {
  char data[64];
  natsMsg *m = NULL;
  snprintf(data, sizeof(data), "c-%d", n);
  natsMsg_Create(&m, f->core, NULL, data, (int)strlen(data));
  natsMsgHeader_Set(m, "ce-id", data);
  natsConnection_PublishMsg(nc, m);
  natsMsg_Destroy(m);
  natsConnection_Flush(nc);
}

static int count(it_test *t, const it_record *r, void *data) {
  flow *f = data;
  const char *id = it_record_hstr(r, "ce_id");
  int i = 0;
  if (id != NULL && strncmp(id, "probe-", 6) == 0)
    return 0; /* see wait_core_subscribed() */
  if (id != NULL && strncmp(id, "r-", 2) == 0)
    i = atoi(id + 2);
  else if (id != NULL && strncmp(id, "c-", 2) == 0)
    i = MAX_ID / 2 + atoi(id + 2);
  if (i < 1 || i > MAX_ID)
    IT_FAIL(t, "unexpected record: ce_id %s", id ? id : "(none)");
  if (f->seen[i]++ == 0)
    f->distinct++;
  else
    f->dups++;
  return f->want > 0 && f->distinct >= f->want;
}

static void read_all(flow *f, size_t want) {
  const char *topics[] = {f->topic};
  memset(f->seen, 0, sizeof(f->seen));
  f->distinct = f->dups = 0;
  f->want = want;
  it_kafka_read(f->t, topics, 1, 0, 120000, count, f);
  it_log(f->t, "in Kafka: %zu distinct events, %zu duplicate(s)", f->distinct,
         f->dups);
}

/* What the spool says about event `id`, from an `natka spool inspect --all`
 * listing: "pending", "consumed", or "not on disk" (never stored, or
 * consumed and its segment deleted: the floor tells which). */
static const char *spool_state(const char *listing, const char *id) {
  char needle[64];
  snprintf(needle, sizeof(needle), " id=%s ", id);
  const char *hit = listing != NULL ? strstr(listing, needle) : NULL;
  if (hit == NULL)
    return "not on disk";
  const char *line = hit;
  while (line > listing && line[-1] != '\n')
    line--;
  const char *pending = strstr(line, " pending ");
  return pending != NULL && pending < hit ? "pending" : "consumed";
}

/* Whether event slot i (see flow.seen) was sent and is due in Kafka: a
 * receipted request, or one of c-1..c-`ncore`. */
static int expected(const flow *f, int i, int ncore) {
  return i <= MAX_ID / 2 ? f->receipted[i] : i - MAX_ID / 2 <= ncore;
}

static int count_missing(const flow *f, int ncore) {
  int n = 0;
  for (int i = 1; i <= MAX_ID; i++)
    n += expected(f, i, ncore) && !f->seen[i];
  return n;
}

/*
 * After a read that came up short: names every receipted request and every
 * core message c-1..c-`ncore` that is not in Kafka, says what the spool
 * holds (natka spool inspect only reads: safe next to the running natka),
 * and fails.
 *
 * The spool numbers records 1, 2, 3 ... and its consumed floor is the first
 * sequence not consumed yet, so a spool that natka never restarted on holds
 * floor - 1 + pending records: `sent` says how many it should (0: it was
 * restarted, sequences jumped). Fewer: an event never reached the spool (a
 * core NATS message natka did not get). All, with the missing one consumed
 * or not on disk: natka acked a record that is not in Kafka.
 */
static void name_missing(flow *f, int ncore, int sent) {
  const char *inspect[] = {"spool",   "inspect", f->spool, "--all",
                           "--limit", "0",       NULL};
  char *listing = NULL, missing[1024] = "";
  unsigned long long segs = 0, recs = 0, pending = 0, consumed = 0, bytes = 0,
                     floor = 0;
  size_t used = 0;
  int n = 0;
  it_natka_cmd(f->t, "inspect", inspect, 30000, &listing, NULL);
  const char *sum = listing != NULL ? strstr(listing, "segments ") : NULL;
  if (sum == NULL ||
      sscanf(sum,
             "segments %llu, records %llu (%llu pending, %llu consumed), "
             "%llu bytes, consumed floor %llu",
             &segs, &recs, &pending, &consumed, &bytes, &floor) != 6)
    it_log(f->t, "spool inspect gave no summary:\n%s", listing ? listing : "");
  else if (sent > 0)
    it_log(f->t,
           "spool: %llu record(s) on disk (%llu pending), consumed floor "
           "%llu: natka stored %llu of the %d events sent",
           recs, pending, floor, floor - 1 + pending, sent);
  else
    it_log(f->t,
           "spool: %llu record(s) on disk (%llu pending), consumed "
           "floor %llu",
           recs, pending, floor);
  for (int i = 1; i <= MAX_ID; i++) {
    char id[32];
    if (!expected(f, i, ncore) || f->seen[i])
      continue;
    snprintf(id, sizeof(id), i <= MAX_ID / 2 ? "r-%d" : "c-%d",
             i <= MAX_ID / 2 ? i : i - MAX_ID / 2);
    n++;
    if (used < sizeof(missing))
      used +=
          (size_t)snprintf(missing + used, sizeof(missing) - used, "%s%s (%s)",
                           n > 1 ? ", " : "", id, spool_state(listing, id));
  }
  free(listing);
  IT_FAIL(f->t, "%d event(s) not in Kafka: %s", n, missing);
}

/*
 * Waits until the NATS server routes f->core to natka. natka subscribes to
 * nats.subjects only once Kafka answered, and nats.c sends the SUB from its
 * flusher thread, a moment after natka has moved on: natka may already
 * answer requests while the server does not know the subscription yet, and
 * drops a core message published then (core NATS keeps nothing for a
 * subject without subscribers). So the test asks the server: a request on
 * f->core gets "no responders" while nobody subscribes, and times out once
 * natka does (it takes the message and never replies). The probe that got
 * through is an event like the others (count() skips it).
 */
static void wait_core_subscribed(flow *f, natsConnection *nc) {
  int64_t start = it_now_ms();
  for (int n = 1;; n++) {
    char id[32];
    natsMsg *m = NULL, *reply = NULL;
    snprintf(id, sizeof(id), "probe-%d", n);
    natsMsg_Create(&m, f->core, NULL, id, (int)strlen(id));
    natsMsgHeader_Set(m, "ce-id", id);
    natsStatus st = natsConnection_RequestMsg(&reply, nc, m, 500);
    natsMsg_Destroy(m);
    natsMsg_Destroy(reply);
    if (st != NATS_NO_RESPONDERS) {
      it_log(f->t, "natka takes core NATS messages (%s after %d probe(s))",
             natsStatus_GetText(st), n);
      return;
    }
    if (it_now_ms() - start > 30000)
      IT_FAIL(f->t, "natka did not subscribe to %s within 30 s", f->core);
    it_sleep_ms(20);
  }
}

/* The newest segment file of the spool. */
static void last_segment(flow *f, char *path, size_t len) {
  DIR *d = opendir(f->spool);
  struct dirent *e;
  char best[256] = "";
  IT_CHECK(f->t, d != NULL);
  while ((e = readdir(d)) != NULL)
    if (strstr(e->d_name, ".seg") != NULL && strcmp(e->d_name, best) > 0)
      snprintf(best, sizeof(best), "%s", e->d_name);
  closedir(d);
  IT_CHECK(f->t, best[0] != '\0');
  snprintf(path, len, "%s/%s", f->spool, best);
}

static void bring_kafka_back(it_test *t, void *data) {
  flow *f = data;
  if (f->kafka_down && it_servers(t, "kafka-start") == 0)
    f->kafka_down = 0;
}

static int receipts(const flow *f) {
  int n = 0;
  for (int i = 1; i <= MAX_ID; i++)
    n += f->receipted[i];
  return n;
}

int main(int argc, char **argv) {
  it_test t;
  it_proc natka;
  it_js js;
  char config[PATH_MAX], seg[PATH_MAX + 300], *out = NULL;
  flow *f = calloc(1, sizeof(*f));

  it_init(&t, "spool_flow", argc, argv, 1);
  IT_CHECK(&t, f != NULL);
  f->t = &t;
  t.on_fail = bring_kafka_back;
  t.on_fail_data = f;
  snprintf(f->req, sizeof(f->req), "%s.req", t.uniq);
  snprintf(f->core, sizeof(f->core), "%s.core", t.uniq);
  snprintf(f->topic, sizeof(f->topic), "%s_out", t.uniq);
  snprintf(f->spool, sizeof(f->spool), "%s/spool", t.tmpdir);
  write_config(&t, f, "natka.conf", config, f->spool);
  const char *topics[] = {f->topic};
  it_kafka_create_topics(&t, topics, 1, 3);
  it_js_connect(&t, &js);

  /* 1. Kafka up. */
  it_natka_start(&t, &natka, config, "natka-1.log");
  IT_CHECK_INT(&t, it_wait_log(&natka, "taking requests", 30000), ==, 0);
  IT_CHECK_INT(&t, it_wait_log(&natka, "cluster answered", 30000), ==, 0);
  wait_core_subscribed(f, js.nc);
  for (int i = 1; i <= 40; i++) {
    char *reply = request(f, js.nc, i);
    IT_CHECK(&t, reply != NULL);
    IT_CHECK_HAS(&t, reply, "\"spool\"");
    free(reply);
    publish_core(f, js.nc, i);
  }
  read_all(f, 80);
  if (count_missing(f, 40) > 0) /* 81 sent: 40 + 40, and the probe */
    name_missing(f, 40, 81);

  /* 2. Kafka gone: the spool fills, then pushes back. */
  f->kafka_down = 1;
  IT_CHECK_INT(&t, it_servers(&t, "kafka-kill"), ==, 0);
  int busy = 0, n = 40;
  while (busy == 0 && n < 1000) {
    char *reply = request(f, js.nc, ++n);
    IT_CHECK(&t, reply != NULL);
    if (strstr(reply, "\"busy\"") != NULL) {
      IT_CHECK_HAS(&t, reply, "spool.max_bytes");
      busy = n;
    } else {
      IT_CHECK_HAS(&t, reply, "\"spool\"");
    }
    free(reply);
  }
  IT_CHECK_INT(&t, busy, >, 41);
  it_log(&t, "spool full after %d requests during the outage: busy reply",
         busy - 41);
  it_kill(&natka, 9);
  it_wait(&natka, 10000);
  int torn = busy - 1; /* the last record stored */
  f->receipted[torn] = 0;
  last_segment(f, seg, sizeof(seg));
  struct stat st;
  IT_CHECK(&t, stat(seg, &st) == 0);
  IT_CHECK(&t, truncate(seg, st.st_size - 100) == 0);
  it_log(&t, "natka killed; %s cut from %lld to %lld bytes", seg,
         (long long)st.st_size, (long long)st.st_size - 100);
  const char *verify[] = {"spool", "verify", f->spool, NULL};
  IT_CHECK_INT(&t, it_natka_cmd(&t, "verify", verify, 30000, &out, NULL), ==,
               1);
  IT_CHECK_HAS(&t, out, "torn");
  free(out);

  it_natka_start(&t, &natka, config, "natka-2.log");
  IT_CHECK_INT(&t, it_wait_log(&natka, "torn tail", 30000), ==, 0);
  IT_CHECK_INT(&t, it_servers(&t, "kafka-start"), ==, 0);
  f->kafka_down = 0;
  read_all(f, (size_t)receipts(f) + 40);
  if (count_missing(f, 40) > 0)
    name_missing(f, 40, 0);
  IT_CHECK_INT(&t, f->seen[torn], ==, 0);
  IT_CHECK_INT(&t, f->distinct, ==, receipts(f) + 40);
  IT_CHECK_INT(&t, f->dups, ==, 0);
  it_log(&t, "all %d receipted requests delivered after the torn tail",
         receipts(f));
  IT_CHECK_INT(&t, it_natka_stop(&t, &natka, 30000), ==, 0);

  /* 3. Disk full: a file size limit makes every write past it fail. */
  char spool3[PATH_MAX + 16], config3[PATH_MAX], limit[64];
  snprintf(spool3, sizeof(spool3), "%s/spool3", t.tmpdir);
  write_config(&t, f, "natka-full.conf", config3, spool3);
  snprintf(limit, sizeof(limit), "--fsize=%d", 40 * 1024);
  char *argv_full[] = {
      "/usr/bin/prlimit", limit, "--", t.natka_bin, "run", "-c", config3, NULL};
  it_spawn(&t, &natka, "natka-3.log", NULL, argv_full);
  t.natka = &natka;
  IT_CHECK_INT(&t, it_wait_log(&natka, "taking requests", 30000), ==, 0);
  IT_CHECK_INT(&t, it_servers(&t, "kafka-kill"), ==, 0);
  f->kafka_down = 1;
  int failed = 0, first = 3000; /* r-3001...: clear of c-N at 2000 + N */
  n = first;
  while (failed == 0 && n < first + 100) {
    char *reply = request(f, js.nc, ++n);
    IT_CHECK(&t, reply != NULL);
    if (strstr(reply, "\"error\"") != NULL) {
      it_log(&t, "disk full reply: %s", reply);
      IT_CHECK_HAS(&t, reply, "unavailable");
      IT_CHECK_HAS(&t, reply, "large");
      IT_CHECK(&t, !f->receipted[n]);
      failed = n;
    }
    free(reply);
  }
  IT_CHECK_INT(&t, failed, >, first + 1);
  it_kill(&natka, 9);
  it_wait(&natka, 10000);
  IT_CHECK_INT(&t, it_servers(&t, "kafka-start"), ==, 0);
  f->kafka_down = 0;
  it_natka_start(&t, &natka, config3, "natka-4.log");
  size_t before = f->distinct;
  read_all(f, before + (size_t)(failed - first - 1));
  for (int i = first + 1; i < failed; i++)
    if (f->seen[i] == 0)
      IT_FAIL(&t, "r-%d was stored before the disk filled, not delivered", i);
  IT_CHECK_INT(&t, f->seen[failed], ==, 0);
  it_log(&t, "%d requests stored before the disk filled, all delivered",
         failed - first - 1);
  IT_CHECK_INT(&t, it_natka_stop(&t, &natka, 30000), ==, 0);
  it_js_close(&js);
  free(f);
  return it_pass(&t);
}
