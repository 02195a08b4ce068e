/*
 * `natka dlq`: the command's help and its command line. `natka dlq replay`
 * parses its options into a natka__dlq_opts, loads the configuration and
 * hands over to the replay engine in cmd_dlq_replay.c, which says how a
 * replay reads, republishes and commits.
 */
#include "cmd_dlq_replay.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli_opts.h"
#include "cmd_rules.h"
#include "codec.h"
#include "config_int.h"
#include "util.h"

static const char overview[] =
    "Usage: natka dlq COMMAND [OPTIONS]\n"
    "\n"
    "Work with natka's dead-letter topic (dlq.topic): the events a rule\n"
    "raised on (ERULE), malformed ones (EMALFORMED), oversized ones\n"
    "(ETOOBIG), ones Kafka refused (EKAFKA) or kept failing (ERETRIES),\n"
    "those a degrade rule sent there (EDEGRADED) and those routed to a\n"
    "topic reserved for natka (EFORBIDDEN), each with the reason in its\n"
    "natka-* headers.\n"
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
    "                          EDEGRADED, ERETRIES, EFORBIDDEN;\n"
    "                          repeatable)\n"
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
static const char *const dlq_codes[] = {"ERULE",     "EMALFORMED", "ETOOBIG",
                                        "EKAFKA",    "EDEGRADED",  "ERETRIES",
                                        "EFORBIDDEN"};

#define usage(...) natka__cli_usage("dlq replay", __VA_ARGS__)

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
static int parse_from(natka__dlq_opts *r, const char *s,
                      natka__dlq_part **named, size_t *nnamed) {
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
  natka__dlq_part *grown = realloc(*named, (*nnamed + 1) * sizeof(*grown));
  if (grown == NULL)
    return natka__dlq_fail(NATKA__CLI_FAILED, "out of memory");
  *named = grown;
  (*named)[(*nnamed)++] = (natka__dlq_part){.id = (int32_t)p, .start = off};
  r->named_parts = 1;
  return 0;
}

/* RFC 3339, or an age: digits and one of s, m, h, d. */
static int parse_since(natka__dlq_opts *r, const char *s) {
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

static int parse_code(natka__dlq_opts *r, const char *s) {
  for (size_t i = 0; i < sizeof(dlq_codes) / sizeof(dlq_codes[0]); i++)
    if (strcasecmp(s, dlq_codes[i]) == 0) {
      r->codes[r->ncodes++] = dlq_codes[i];
      return 0;
    }
  return usage("--code '%s' is not a dead-letter code (ERULE, EMALFORMED, "
               "ETOOBIG, EKAFKA, ERETRIES, EDEGRADED, EFORBIDDEN)",
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

static const natka__cli_opt options[] = {
    {"-c", "--config", O_CONFIG, 1, 0},
    {"-s", "--set", O_SET, 1, 0},
    {NULL, "--topic", O_TOPIC, 1, 0},
    {NULL, "--group", O_GROUP, 1, 0},
    {NULL, "--from-offset", O_FROM, 1, 0},
    {NULL, "--since", O_SINCE, 1, 0},
    {NULL, "--subject", O_SUBJECT, 1, 0},
    {NULL, "--code", O_CODE, 1, 0},
    {NULL, "--max", O_MAX, 1, 0},
    {NULL, "--dry-run", O_DRY_RUN, 0, 0},
    {NULL, "--skip-bad", O_SKIP_BAD, 0, 0},
};

/* What parsing fills in besides the options themselves. */
typedef struct parse_state {
  natka__dlq_opts *r;
  char **confv; /* the -c/-s pairs, in order */
  int nconf;
  natka__dlq_part **named;
  size_t *nnamed;
} parse_state;

static int set_option(void *data, int id, const char *v) {
  parse_state *ps = data;
  natka__dlq_opts *r = ps->r;
  switch (id) {
  case NATKA__CLI_ARG:
    return usage("unexpected argument '%s'", v);
  case O_CONFIG:
  case O_SET:
    ps->confv[ps->nconf++] = id == O_CONFIG ? "-c" : "-s";
    ps->confv[ps->nconf++] = (char *)v;
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
    return parse_from(r, v, ps->named, ps->nnamed);
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
static int parse(natka__dlq_opts *r, int argc, char **argv, char **confv,
                 int *nconf, natka__dlq_part **named, size_t *nnamed) {
  parse_state ps = {r, confv, 0, named, nnamed};
  natka__cli_parser p = {.who = "dlq replay",
                         .help = replay_help,
                         .opts = options,
                         .nopts = sizeof(options) / sizeof(options[0]),
                         .on = set_option,
                         .data = &ps};
  int rc = natka__cli_parse(&p, argc, argv, 3);
  *nconf = ps.nconf;
  if (rc != 0)
    return rc;
  if (r->since_ms >= 0 && (r->from_all >= 0 || r->named_parts))
    return usage("%s", "--since and --from-offset exclude each other");
  return 0;
}

int natka__cmd_dlq(int argc, char **argv) {
  const char *names[] = {"replay"};
  int status;
  if (natka__cli_subcommand(argc, argv, "dlq", names, 1, overview, &status) < 0)
    return status;
  natka__dlq_opts r = {
      .group = "natka-dlq-replay", .from_all = -1, .since_ms = -1};
  natka__dlq_part *named = NULL;
  size_t nnamed = 0;
  int nconf = 0, rc;
  char **confv = calloc((size_t)argc, sizeof(*confv));
  r.codes = calloc((size_t)argc, sizeof(*r.codes));
  if (confv == NULL || r.codes == NULL) {
    rc = natka__dlq_fail(NATKA__CLI_FAILED, "out of memory");
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
  rc = natka__dlq_replay_run(&r, named, nnamed);
done:
  natka_config_free(r.conf);
  free(named);
  free(confv);
  free(r.codes);
  return rc;
}
