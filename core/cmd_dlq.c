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
#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <librdkafka/rdkafka.h>
#include <nats/nats.h>

#include "cmd_rules.h"
#include "codec.h"
#include "config_int.h"
#include "nats_msg.h"
#include "natka/error.h"
#include "util.h"

#define KAFKA_WAIT_MS 10000   /* metadata, watermarks, committed offsets */
#define IDLE_LIMIT_MS 30000   /* reading: no record and no end this long */
#define PUBLISH_WAIT_MS 10000 /* one JetStream ack */
#define COMMIT_EVERY 100      /* records acked between two commits */
#define CLOSE_WAIT_MS 2000
#define MAX_PARTS 100000

static const char overview[] =
    "Usage: natka dlq COMMAND [OPTIONS]\n"
    "\n"
    "Work with natka's dead-letter topic (dlq.topic): the events a rule\n"
    "raised on (ERULE), malformed ones (EMALFORMED), oversized ones\n"
    "(ETOOBIG), ones Kafka refused (EKAFKA) and those a degrade rule sent\n"
    "there (EDEGRADED), each with the reason in its natka-* headers.\n"
    "\n"
    "Commands:\n"
    "  replay    publish dead letters into JetStream again, so that the\n"
    "            running natka takes them through the (fixed) rules\n"
    "\n"
    "See 'natka dlq replay --help'.\n";

static const char replay_help[] =
    "Usage: natka dlq replay [OPTIONS]\n"
    "\n"
    "Reads the dead-letter topic from Kafka and publishes each record back\n"
    "into JetStream, where natka's normal path (rules, then Kafka) takes it\n"
    "again: fix the rule first, then replay. Each event keeps its id\n"
    "(ce-id), kind, time, key, data and headers; the headers natka added\n"
    "when it dead-lettered it (natka-error, natka-error-code, natka-rule,\n"
    "natka-source, natka-attempts, natka-rules-revision) are dropped and\n"
    "two are added:\n"
    "  natka-replayed-from: TOPIC/PARTITION@OFFSET   where it was read\n"
    "  natka-replay-reason: CODE                     its natka-error-code\n"
    "Its Nats-Msg-Id is 'ID:replay:TOPIC/PARTITION@OFFSET', so JetStream\n"
    "stores it although the original id was stored before, and stores it\n"
    "once even when a replay is repeated. An ETOOBIG record has no data\n"
    "(it was removed); its data is read back from the stream position in\n"
    "natka-source, if JetStream still has it.\n"
    "\n"
    "Where it starts: at the offsets committed by the consumer group\n"
    "(--group) in the last replay, or at the beginning the first time.\n"
    "Where it stops: at the end of each partition as it was when the replay\n"
    "started (dead letters written meanwhile wait for the next replay).\n"
    "A record's offset is committed only after JetStream acked it, so a\n"
    "second replay with the same group does not send it again. Records\n"
    "skipped by --code are committed past too: replay other codes later\n"
    "with another --group or with --from-offset. The first record that\n"
    "JetStream does not take stops the replay (what was acked before is\n"
    "committed): run it again once the server is back.\n"
    "\n"
    "Options:\n"
    "      --topic TOPIC       the dead-letter topic (default: dlq.topic)\n"
    "      --group GROUP       consumer group keeping the replay position\n"
    "                          (default: natka-dlq-replay)\n"
    "      --from-offset N     start every partition at offset N instead\n"
    "      --from-offset P:N   start partition P at offset N and read only\n"
    "                          the partitions named (repeatable)\n"
    "      --since TIME        start at the first record written at or after\n"
    "                          TIME: RFC 3339 (2025-01-31T08:00:00Z) or an\n"
    "                          age (90s, 15m, 2h, 7d)\n"
    "      --subject SUBJECT   JetStream subject to publish on (default:\n"
    "                          <ingress.stream_prefix>.dlq-replay, which the\n"
    "                          default jetstream.subjects capture)\n"
    "      --code CODE         only records with this natka-error-code\n"
    "                          (ERULE, EMALFORMED, ETOOBIG, EKAFKA,\n"
    "                          EDEGRADED, ERETRIES; repeatable)\n"
    "      --max N             send at most N records\n"
    "      --dry-run           print what would be sent (offset, id, code,\n"
    "                          reason); send and commit nothing, no NATS\n"
    "      --skip-bad          records that cannot be decoded or replayed\n"
    "                          are skipped either way; with this option\n"
    "                          they do not make the exit status 1\n"
    "  -c, --config FILE       configuration file, as for 'natka run'\n"
    "                          (nats.url, kafka.brokers, kafka.properties,\n"
    "                          dlq.topic, ingress.stream_prefix)\n"
    "  -s, --set KEY=VALUE     override one configuration key\n"
    "  -h, --help              this text\n"
    "\n"
    "Output: one line per record sent ('sent ...'), skipped for being bad\n"
    "(on stderr, with its offset and why) or, with --dry-run, that would\n"
    "be sent; then 'read N, sent N, skipped N, bad N, failed N'.\n"
    "\n"
    "Exit status: 0 success; 1 NATS or Kafka failed (the message names the\n"
    "server), or a record could not be replayed (without --skip-bad);\n"
    "2 bad usage or configuration.\n"
    "\n"
    "Examples:\n"
    "  natka dlq replay -c natka.conf --dry-run\n"
    "  natka dlq replay -c natka.conf --code ERULE\n"
    "  natka dlq replay -c natka.conf --since 2h --max 100 --group ops-1\n"
    "  natka dlq replay -c natka.conf --from-offset 0:1200 --dry-run\n";

/* The natka-error-code values a dead letter can carry. */
static const char *const dlq_codes[] = {"ERULE", "EMALFORMED", "ETOOBIG",
                                        "EKAFKA", "EDEGRADED"};

/* Headers of the dead-letter write, and of an earlier replay. */
static const char *const dropped_headers[] = {
    "natka-error",         "natka-error-code",   "natka-rule",
    "natka-source",        "natka-attempts",     "natka-rules-revision",
    "natka-replayed-from", "natka-replay-reason"};

typedef struct part {
  int32_t id;
  int64_t lo, hi;    /* watermarks when the replay started */
  int64_t start;     /* first offset to read */
  int64_t handled;   /* next offset after the last record dealt with */
  int64_t committed; /* what the group holds after our last commit */
  int done;
} part;

typedef struct replay {
  natka_config *conf;
  const char *topic, *group, *subject;
  const char **codes;
  size_t ncodes;
  int64_t from_all; /* --from-offset N; -1: none */
  int64_t since_ms; /* --since; -1: none */
  int64_t max;      /* --max; 0: no limit */
  int dry_run, skip_bad, named_parts;
  char subject_buf[512];

  rd_kafka_t *rk;
  part *parts;
  size_t nparts;
  natsConnection *nc;
  jsCtx *js;
  int nats_opened;
  int64_t max_payload;
  int64_t read, sent, skipped, bad, failed, dups, uncommitted;
} replay;

static int fail(int status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int fail(int status, const char *fmt, ...) {
  va_list ap;
  fputs("dlq replay: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  return status;
}

static int usage(const char *fmt, const char *arg) {
  fputs("dlq replay: ", stderr);
  fprintf(stderr, fmt, arg);
  fputs("\nTry 'natka dlq replay --help'.\n", stderr);
  return NATKA__CLI_USAGE;
}

/* ------------------------------------------------------------- options */

static int parse_count(const char *s, int64_t *out) {
  char *end = NULL;
  if (s[0] < '0' || s[0] > '9')
    return -1;
  unsigned long long v = strtoull(s, &end, 10);
  if (*end != '\0' || v > INT64_MAX)
    return -1;
  *out = (int64_t)v;
  return 0;
}

/* "N" for every partition, or "P:N" for partition P (marked named). */
static int parse_from(replay *r, const char *s, part **named, size_t *nnamed) {
  const char *colon = strchr(s, ':');
  int64_t p = -1, off = 0;
  char pbuf[32] = "";
  if (colon != NULL) {
    size_t n = (size_t)(colon - s);
    if (n == 0 || n >= sizeof(pbuf))
      return usage("--from-offset wants N or PARTITION:N, got '%s'", s);
    memcpy(pbuf, s, n);
    pbuf[n] = '\0';
    if (parse_count(pbuf, &p) != 0 || p > INT32_MAX)
      return usage("--from-offset wants N or PARTITION:N, got '%s'", s);
  }
  if (parse_count(colon != NULL ? colon + 1 : s, &off) != 0)
    return usage("--from-offset wants N or PARTITION:N, got '%s'", s);
  if ((p < 0 && (r->named_parts || r->from_all >= 0)) ||
      (p >= 0 && r->from_all >= 0))
    return usage("%s", "--from-offset: give one N for every partition, or "
                       "PARTITION:N for each partition to read, not both");
  if (p < 0) {
    r->from_all = off;
    return 0;
  }
  for (size_t i = 0; i < *nnamed; i++)
    if ((*named)[i].id == (int32_t)p)
      return usage("--from-offset: partition %s given twice", pbuf);
  part *grown = realloc(*named, (*nnamed + 1) * sizeof(*grown));
  if (grown == NULL)
    return fail(NATKA__CLI_FAILED, "out of memory");
  *named = grown;
  (*named)[(*nnamed)++] = (part){.id = (int32_t)p, .start = off};
  r->named_parts = 1;
  return 0;
}

/* RFC 3339, or an age: digits and one of s, m, h, d. */
static int parse_since(replay *r, const char *s) {
  int64_t ns = 0, n = 0;
  size_t len = strlen(s);
  static const struct {
    char unit;
    int64_t ms;
  } units[] = {{'s', 1000}, {'m', 60000}, {'h', 3600000}, {'d', 86400000}};
  if (natka__rfc3339_parse(s, &ns) == 0) {
    r->since_ms = ns / 1000000;
    return 0;
  }
  for (size_t i = 0; len > 1 && i < sizeof(units) / sizeof(units[0]); i++) {
    char digits[32];
    if (s[len - 1] != units[i].unit || len > sizeof(digits))
      continue;
    memcpy(digits, s, len - 1);
    digits[len - 1] = '\0';
    if (parse_count(digits, &n) != 0 || n > INT64_MAX / units[i].ms / 2)
      break;
    r->since_ms = natka__now_ns() / 1000000 - n * units[i].ms;
    return 0;
  }
  return usage("--since wants an RFC 3339 time or an age like 90s, 15m, "
               "2h, 7d; got '%s'",
               s);
}

static int parse_code(replay *r, const char *s) {
  for (size_t i = 0; i < sizeof(dlq_codes) / sizeof(dlq_codes[0]); i++)
    if (strcasecmp(s, dlq_codes[i]) == 0) {
      r->codes[r->ncodes++] = dlq_codes[i];
      return 0;
    }
  return usage("--code '%s' is not a dead-letter code (ERULE, EMALFORMED, "
               "ETOOBIG, EKAFKA, EDEGRADED)",
               s);
}

enum {
  O_CONFIG,
  O_SET,
  O_TOPIC,
  O_GROUP,
  O_FROM,
  O_SINCE,
  O_SUBJECT,
  O_CODE,
  O_MAX,
  O_DRY_RUN,
  O_SKIP_BAD
};

static const struct {
  const char *shrt, *lng;
  int id, value;
} options[] = {
    {"-c", "--config", O_CONFIG, 1},     {"-s", "--set", O_SET, 1},
    {NULL, "--topic", O_TOPIC, 1},       {NULL, "--group", O_GROUP, 1},
    {NULL, "--from-offset", O_FROM, 1},  {NULL, "--since", O_SINCE, 1},
    {NULL, "--subject", O_SUBJECT, 1},   {NULL, "--code", O_CODE, 1},
    {NULL, "--max", O_MAX, 1},           {NULL, "--dry-run", O_DRY_RUN, 0},
    {NULL, "--skip-bad", O_SKIP_BAD, 0},
};

static int set_option(replay *r, int id, const char *v, char **confv,
                      int *nconf, part **named, size_t *nnamed) {
  switch (id) {
  case O_CONFIG:
  case O_SET:
    confv[(*nconf)++] = id == O_CONFIG ? "-c" : "-s";
    confv[(*nconf)++] = (char *)v;
    return 0;
  case O_TOPIC:
    r->topic = v;
    return v[0] != '\0' ? 0 : usage("%s", "--topic must not be empty");
  case O_GROUP:
    r->group = v;
    return v[0] != '\0' ? 0 : usage("%s", "--group must not be empty");
  case O_SUBJECT:
    r->subject = v;
    return v[0] != '\0' && strpbrk(v, " \t\r\n*>") == NULL
               ? 0
               : usage("--subject '%s' is not a subject to publish on", v);
  case O_FROM:
    return parse_from(r, v, named, nnamed);
  case O_SINCE:
    return parse_since(r, v);
  case O_CODE:
    return parse_code(r, v);
  case O_MAX:
    return parse_count(v, &r->max) == 0 && r->max > 0
               ? 0
               : usage("--max wants a positive integer, got '%s'", v);
  case O_DRY_RUN:
    r->dry_run = 1;
    return 0;
  default:
    r->skip_bad = 1;
    return 0;
  }
}

/* Sorts argv[3..] into r; the -c/-s pairs go to confv in order. Returns 0,
 * -1 after printing the help, or an exit status. */
static int parse(replay *r, int argc, char **argv, char **confv, int *nconf,
                 part **named, size_t *nnamed) {
  for (int i = 3; i < argc; i++) {
    const char *a = argv[i], *v = NULL;
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      fputs(replay_help, stdout);
      return -1;
    }
    if (a[0] != '-' || a[1] == '\0')
      return usage("unexpected argument '%s'", a);
    size_t alen = strcspn(a, "=");
    const char *inline_value = a[alen] == '=' ? a + alen + 1 : NULL;
    size_t k = 0, nopts = sizeof(options) / sizeof(options[0]);
    while (k < nopts &&
           !(options[k].shrt != NULL && strcmp(a, options[k].shrt) == 0) &&
           !(strncmp(a, options[k].lng, alen) == 0 &&
             options[k].lng[alen] == '\0'))
      k++;
    if (k == nopts)
      return usage("unknown option '%s'", a);
    if (!options[k].value && inline_value != NULL)
      return usage("option '%s' takes no value", a);
    if (options[k].value && inline_value == NULL && i + 1 >= argc)
      return usage("option '%s' needs a value", a);
    if (options[k].value)
      v = inline_value != NULL ? inline_value : argv[++i];
    int rc = set_option(r, options[k].id, v, confv, nconf, named, nnamed);
    if (rc != 0)
      return rc;
  }
  if (r->since_ms >= 0 && (r->from_all >= 0 || r->named_parts))
    return usage("%s", "--since and --from-offset exclude each other");
  return 0;
}

/* --------------------------------------------------------------- Kafka */

static void kafka_log(const rd_kafka_t *rk, int level, const char *fac,
                      const char *buf) {
  const replay *r = rd_kafka_opaque(rk);
  if (r != NULL && r->conf->log_level >= NATKA_LOG_DEBUG)
    fprintf(stderr, "dlq replay: kafka %d %s: %s\n", level, fac, buf);
}

static int kafka_open(replay *r) {
  char why[512];
  const natka_config *c = r->conf;
  const char *const ours[][2] = {
      {"bootstrap.servers", c->kafka_brokers},
      {"group.id", r->group},
      {"client.id", "natka-dlq-replay"},
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      {"isolation.level", "read_committed"},
      {"enable.partition.eof", "true"},
      {"auto.offset.reset", "earliest"},
  };
  rd_kafka_conf_t *kc = rd_kafka_conf_new();
  /* Security and client settings come from kafka.properties; what the
   * replay depends on is set after them, so they cannot undo it. */
  for (size_t i = 0; i < c->kafka_props.n; i++)
    if (rd_kafka_conf_set(kc, c->kafka_props.keys[i], c->kafka_props.values[i],
                          why, sizeof(why)) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(kc);
      return fail(NATKA__CLI_USAGE, "kafka.properties.%s: %s",
                  c->kafka_props.keys[i], why);
    }
  for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++)
    if (rd_kafka_conf_set(kc, ours[i][0], ours[i][1], why, sizeof(why)) !=
        RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(kc);
      return fail(NATKA__CLI_USAGE, "kafka property %s: %s", ours[i][0], why);
    }
  rd_kafka_conf_set_opaque(kc, r);
  rd_kafka_conf_set_log_cb(kc, kafka_log);
  r->rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, why, sizeof(why));
  if (r->rk == NULL) {
    rd_kafka_conf_destroy(kc);
    return fail(NATKA__CLI_FAILED, "cannot create a Kafka consumer: %s", why);
  }
  /* Errors (all brokers down, ...) then come out of consumer_poll too. */
  rd_kafka_poll_set_consumer(r->rk);
  return 0;
}

/* The topic's partitions (the named ones only, with --from-offset P:N). */
static int kafka_partitions(replay *r, part *named, size_t nnamed) {
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_topic_t *rkt = rd_kafka_topic_new(r->rk, r->topic, NULL);
  rd_kafka_resp_err_t err =
      rkt != NULL ? rd_kafka_metadata(r->rk, 0, rkt, &md, KAFKA_WAIT_MS)
                  : rd_kafka_last_error();
  if (rkt != NULL)
    rd_kafka_topic_destroy(rkt);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
    return fail(NATKA__CLI_FAILED, "cannot reach Kafka at %s: %s",
                r->conf->kafka_brokers, rd_kafka_err2str(err));
  const struct rd_kafka_metadata_topic *mt = &md->topics[0];
  int rc = 0;
  if (md->topic_cnt != 1 || mt->err != RD_KAFKA_RESP_ERR_NO_ERROR ||
      mt->partition_cnt <= 0) {
    rc = fail(NATKA__CLI_FAILED,
              "topic %s not found on %s (%s): no dead letters yet, or a "
              "wrong --topic",
              r->topic, r->conf->kafka_brokers,
              md->topic_cnt == 1 ? rd_kafka_err2str(mt->err) : "no answer");
    goto done;
  }
  size_t n = r->named_parts ? nnamed : (size_t)mt->partition_cnt;
  if (n > MAX_PARTS || (r->parts = calloc(n, sizeof(*r->parts))) == NULL) {
    rc = fail(NATKA__CLI_FAILED, "out of memory");
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    int32_t id = r->named_parts ? named[i].id : mt->partitions[i].id;
    if (id >= mt->partition_cnt) {
      rc = fail(NATKA__CLI_USAGE,
                "--from-offset: topic %s has no partition %" PRId32
                " (it has %d)",
                r->topic, id, mt->partition_cnt);
      goto done;
    }
    r->parts[i] = r->named_parts ? named[i] : (part){.id = id, .start = -1};
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
    part *p = &r->parts[i];
    err = rd_kafka_query_watermark_offsets(r->rk, r->topic, p->id, &p->lo,
                                           &p->hi, KAFKA_WAIT_MS);
    rd_kafka_topic_partition_list_add(l, r->topic, p->id)->offset =
        r->since_ms >= 0 ? r->since_ms : RD_KAFKA_OFFSET_INVALID;
  }
  if (err == 0 && r->since_ms >= 0) {
    what = "offsets for --since";
    err = rd_kafka_offsets_for_times(r->rk, l, KAFKA_WAIT_MS);
  } else if (err == 0 && r->from_all < 0 && !r->named_parts) {
    what = "committed offsets";
    err = rd_kafka_committed(r->rk, l, KAFKA_WAIT_MS);
  }
  for (size_t i = 0; err == 0 && i < r->nparts; i++) {
    part *p = &r->parts[i];
    int64_t got = l->elems[i].offset;
    if (r->from_all >= 0)
      p->start = r->from_all;
    else if (!r->named_parts)
      p->start = got >= 0 ? got : r->since_ms >= 0 ? p->hi : p->lo;
    if (p->start < p->lo)
      p->start = p->lo;
    p->handled = p->committed = p->start; /* only progress is committed */
    p->done = p->start >= p->hi;
  }
  rd_kafka_topic_partition_list_destroy(l);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
    return fail(NATKA__CLI_FAILED, "cannot read the %s of %s from %s: %s", what,
                r->topic, r->conf->kafka_brokers, rd_kafka_err2str(err));
  return 0;
}

static int kafka_assign(replay *r) {
  rd_kafka_topic_partition_list_t *l =
      rd_kafka_topic_partition_list_new((int)r->nparts);
  for (size_t i = 0; i < r->nparts; i++)
    if (!r->parts[i].done)
      rd_kafka_topic_partition_list_add(l, r->topic, r->parts[i].id)->offset =
          r->parts[i].start;
  rd_kafka_resp_err_t err = rd_kafka_assign(r->rk, l);
  rd_kafka_topic_partition_list_destroy(l);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
    return fail(NATKA__CLI_FAILED, "cannot assign %s: %s", r->topic,
                rd_kafka_err2str(err));
  return 0;
}

/* Commits every partition's progress since the last commit. */
static int kafka_commit(replay *r) {
  rd_kafka_topic_partition_list_t *l =
      rd_kafka_topic_partition_list_new((int)r->nparts);
  for (size_t i = 0; i < r->nparts; i++)
    if (r->parts[i].handled != r->parts[i].committed)
      rd_kafka_topic_partition_list_add(l, r->topic, r->parts[i].id)->offset =
          r->parts[i].handled;
  rd_kafka_resp_err_t err =
      l->cnt > 0 ? rd_kafka_commit(r->rk, l, 0) : RD_KAFKA_RESP_ERR_NO_ERROR;
  for (size_t i = 0; err == 0 && i < r->nparts; i++)
    r->parts[i].committed = r->parts[i].handled;
  rd_kafka_topic_partition_list_destroy(l);
  r->uncommitted = 0;
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
    return fail(NATKA__CLI_FAILED,
                "cannot commit the offsets of group %s to %s: %s (the next "
                "replay may send some records again; JetStream stores a "
                "repeat once within its duplicate window)",
                r->group, r->conf->kafka_brokers, rd_kafka_err2str(err));
  return 0;
}

/* ---------------------------------------------------------------- NATS */

static const char *nats_why(natsStatus st) {
  const char *t = nats_GetLastError(NULL);
  return t != NULL && *t != '\0' ? t : natsStatus_GetText(st);
}

static int nats_open(replay *r) {
  natsOptions *o = NULL;
  jsOptions jo;
  r->nats_opened = 1;
  natsStatus st = natsOptions_Create(&o);
  if (st == NATS_OK)
    st = natsOptions_SetURL(o, r->conf->nats_url);
  if (st == NATS_OK)
    st = natsOptions_SetName(o, "natka-dlq-replay");
  if (st == NATS_OK)
    st = natsOptions_SetTimeout(o, r->conf->nats_connect_timeout_ms);
  if (st == NATS_OK)
    st = natsOptions_SetAllowReconnect(o, false);
  if (st == NATS_OK)
    st = natsConnection_Connect(&r->nc, o);
  natsOptions_Destroy(o);
  if (st != NATS_OK) {
    r->nc = NULL;
    return fail(NATKA__CLI_FAILED, "cannot connect to NATS at %s: %s",
                r->conf->nats_url, natsStatus_GetText(st));
  }
  r->max_payload = natsConnection_GetMaxPayload(r->nc);
  jsOptions_Init(&jo);
  jo.Wait = PUBLISH_WAIT_MS;
  if ((st = natsConnection_JetStream(&r->js, r->nc, &jo)) != NATS_OK) {
    r->js = NULL;
    return fail(NATKA__CLI_FAILED, "no JetStream on %s: %s", r->conf->nats_url,
                nats_why(st));
  }
  return 0;
}

/* ------------------------------------------------------------- records */

static const char *record_header(const rd_kafka_message_t *m, const char *name,
                                 char *buf, size_t len) {
  rd_kafka_headers_t *hs = NULL;
  const void *v = NULL;
  size_t n = 0;
  if (rd_kafka_message_headers(m, &hs) != 0 ||
      rd_kafka_header_get(hs, 0, name, &v, &n) != 0 || v == NULL)
    return NULL;
  snprintf(buf, len, "%.*s", (int)(n < len ? n : len - 1), (const char *)v);
  return buf;
}

static int wanted(const replay *r, const char *code) {
  for (size_t i = 0; i < r->ncodes; i++)
    if (code != NULL && strcmp(code, r->codes[i]) == 0)
      return 1;
  return r->ncodes == 0;
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
  if (r->dry_run)
    return 0;
  natsStatus st = js_GetMsg(&msg, r->js, stream, seq, NULL, &jerr);
  if (st != NATS_OK)
    return natka__errf(
        why, len,
        st == NATS_NOT_FOUND || jerr != 0 ? NATKA_EMALFORMED : NATKA_ENATS,
        "ETOOBIG without its data, and stream %s seq %llu on %s cannot be "
        "read: %s",
        stream, seq, r->conf->nats_url, nats_why(st));
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
  while (hs != NULL && rd_kafka_header_get_all(hs, n, &name, &v, &vlen) == 0)
    wh[n++] = (natka__wire_header){name, v, vlen};
  int rc = natka_event_new(&ev);
  if (rc == 0)
    rc = natka__event_from_kafka(ev, m->key, m->key_len,
                                 rd_kafka_message_timestamp(m, NULL), wh, n,
                                 m->payload, m->len, why, len);
  free(wh);
  for (size_t i = 0; rc == 0 && i < sizeof(dropped_headers) / sizeof(char *);
       i++)
    natka__event_remove_headers(ev, dropped_headers[i]);
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
  int rc = natka__event_to_nats(ev, r->conf->event_source, &wh);
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
                     size + data_len, r->conf->nats_url, r->max_payload);
  natsStatus st = NATS_OK;
  if (rc == 0)
    st = natsMsg_Create(&msg, r->subject, NULL, data, (int)data_len);
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
                       r->conf->nats_url, r->subject);
  return natka__errf(why, len, NATKA_ENATS,
                     "JetStream on %s did not store it: %s (error %d)",
                     r->conf->nats_url, nats_why(st), (int)jerr);
}

/* One record. Returns 0 to go on, -1 to stop (--max reached), or
 * NATKA__CLI_FAILED with the reason printed. */
static int handle(replay *r, part *p, const rd_kafka_message_t *m) {
  char from[400], code[64], reason[512], why[1024] = "";
  natka_event *ev = NULL;
  snprintf(from, sizeof(from), "%s/%" PRId32 "@%" PRId64, r->topic,
           m->partition, m->offset);
  const char *c = record_header(m, "natka-error-code", code, sizeof(code));
  r->read++;
  if (!wanted(r, c)) {
    r->skipped++;
    p->handled = m->offset + 1;
    return 0;
  }
  int rc = to_event(r, m, from, c, &ev, why, sizeof(why));
  if (rc == 0 && r->dry_run) {
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
    return fail(NATKA__CLI_FAILED, "%s: %s; stopped", from, why);
  }
  if (rc != 0) {
    fprintf(stderr, "dlq replay: %s: skipped, cannot be replayed: %s\n", from,
            why);
    r->bad++;
  } else {
    r->sent++;
  }
  p->handled = m->offset + 1;
  if (!r->dry_run && ++r->uncommitted >= COMMIT_EVERY && kafka_commit(r) != 0)
    return NATKA__CLI_FAILED;
  return r->max > 0 && r->sent >= r->max ? -1 : 0;
}

static part *part_of(replay *r, const rd_kafka_message_t *m) {
  if (m->rkt == NULL || strcmp(rd_kafka_topic_name(m->rkt), r->topic) != 0)
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
    part *p = m != NULL ? part_of(r, m) : NULL;
    int rc = 0;
    if (m == NULL ||
        (m->err != 0 && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)) {
      if (m != NULL)
        snprintf(last_error, sizeof(last_error), "%s",
                 rd_kafka_message_errstr(m));
      if (m != NULL && (m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                        m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC))
        rc = fail(NATKA__CLI_FAILED, "reading %s from %s: %s", r->topic,
                  r->conf->kafka_brokers, last_error);
      else if (now - last >= IDLE_LIMIT_MS)
        rc = fail(NATKA__CLI_FAILED,
                  "Kafka at %s sent nothing from %s for %d s (last: %s); "
                  "stopped",
                  r->conf->kafka_brokers, r->topic, IDLE_LIMIT_MS / 1000,
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

static int run(replay *r, part *named, size_t nnamed) {
  int rc = 0;
  if (strcmp(r->conf->kafka_brokers, "embedded") == 0)
    return fail(NATKA__CLI_USAGE,
                "kafka.brokers is \"embedded\" (the in-process demo cluster, "
                "gone with the process that ran it); give the brokers with "
                "-s kafka.brokers=HOST:PORT");
  if (!r->dry_run && (rc = nats_open(r)) != 0)
    return rc;
  if ((rc = kafka_open(r)) != 0 ||
      (rc = kafka_partitions(r, named, nnamed)) != 0 ||
      (rc = kafka_starts(r)) != 0 || (rc = kafka_assign(r)) != 0)
    return rc;
  rc = read_all(r);
  if (!r->dry_run) {
    int crc = kafka_commit(r);
    rc = rc != 0 ? rc : crc;
  }
  if (r->dry_run)
    printf("dry run: read %" PRId64 ", would send %" PRId64 ", skipped %" PRId64
           ", bad %" PRId64 "; nothing sent, no offsets committed\n",
           r->read, r->sent, r->skipped, r->bad);
  else
    printf("read %" PRId64 ", sent %" PRId64 ", skipped %" PRId64
           ", bad %" PRId64 ", failed %" PRId64 " (%s to %s, group %s%s)\n",
           r->read, r->sent, r->skipped, r->bad, r->failed, r->topic,
           r->subject, r->group,
           r->dups > 0 ? "; some were in JetStream already" : "");
  if (rc == 0 && r->bad > 0 && !r->skip_bad)
    rc = fail(NATKA__CLI_FAILED,
              "%" PRId64 " record(s) could not be replayed (see above; "
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
  natka_config_free(r->conf);
}

int natka__cmd_dlq(int argc, char **argv) {
  const char *names[] = {"replay"};
  int status;
  if (natka__cli_subcommand(argc, argv, "dlq", names, 1, overview, &status) < 0)
    return status;
  replay r = {.group = "natka-dlq-replay", .from_all = -1, .since_ms = -1};
  part *named = NULL;
  size_t nnamed = 0;
  int nconf = 0, rc;
  char **confv = calloc((size_t)argc, sizeof(*confv));
  r.codes = calloc((size_t)argc, sizeof(*r.codes));
  if (confv == NULL || r.codes == NULL) {
    rc = fail(NATKA__CLI_FAILED, "out of memory");
    goto done;
  }
  rc = parse(&r, argc, argv, confv, &nconf, &named, &nnamed);
  if (rc == -1) {
    rc = 0;
    goto done;
  }
  if (rc == 0)
    rc = natka__cli_load_config(nconf, confv, 0, &r.conf);
  if (rc != 0)
    goto done;
  if (r.topic == NULL)
    r.topic = r.conf->dlq_topic;
  if (r.subject == NULL) {
    snprintf(r.subject_buf, sizeof(r.subject_buf), "%s.dlq-replay",
             r.conf->ingress_stream_prefix);
    r.subject = r.subject_buf;
  }
  rc = run(&r, named, nnamed);
done:
  cleanup(&r);
  free(named);
  free(confv);
  free(r.codes);
  return rc;
}
