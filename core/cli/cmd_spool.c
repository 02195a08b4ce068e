/*
 * `natka spool`: the disk spool from the command line.
 *
 *   inspect DIR [--limit N] [--all] [--json]   what the spool holds
 *   verify DIR                                 every checksum, read-only
 *   replay DIR -c CONF [-s K=V]...             deliver what is pending
 *
 * inspect and verify open the spool read-only (spool.h): no lock, nothing
 * cut or deleted, so they are safe next to a running natka and on a copy
 * taken from a broken machine. replay runs a gateway whose only source is
 * the spool and stops it once every record is acked.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <nats/nats.h>

#include "cli_opts.h"
#include "cmd_rules.h"
#include "event_int.h"
#include "natka/error.h"
#include "spool.h"

#define DEFAULT_LIMIT 100
#define SHOW_BYTES 48
#define REPLAY_POLL_MS 100

enum { INSPECT = 1, VERIFY = 2, REPLAY = 4 };

static const char overview[] =
    "Usage: natka spool COMMAND DIR [OPTIONS]\n"
    "\n"
    "Look inside natka's disk spool (spool.dir: the events natka accepted\n"
    "and Kafka has not confirmed yet) and act on it.\n"
    "\n"
    "Commands:\n"
    "  inspect DIR     list the records (pending by default) and a summary\n"
    "  verify DIR      check every record's checksum; exit 1 on any problem\n"
    "  replay DIR      deliver the pending records through the rules to\n"
    "                  Kafka, then exit\n"
    "\n"
    "inspect and verify only read: they take no lock and cut nothing, so\n"
    "they can run next to the natka that owns the spool. They say what the\n"
    "next read-write open (natka run, natka spool replay) would cut.\n"
    "\n"
    "Examples:\n"
    "  natka spool verify /var/lib/natka/spool\n"
    "  natka spool inspect /var/lib/natka/spool --limit 20\n"
    "  natka spool replay /var/lib/natka/spool -c /etc/natka/natka.conf\n"
    "\n"
    "Help for one command: natka spool inspect --help\n"
    "\n"
    "Exit status: 0 success; 1 problems found (verify), runtime failure;\n"
    "2 bad usage.\n";

static const char inspect_help[] =
    "Usage: natka spool inspect DIR [--limit N] [--all] [--json]\n"
    "\n"
    "Prints one line per record, oldest first:\n"
    "  seq=N segment=FILE offset=N size=N pending|consumed id=ID kind=KIND\n"
    "  key=\"...\"|- time=RFC3339\n"
    "(key: - for no key, \"\" for an empty one, bytes outside printable ASCII\n"
    "as \\xNN), then a summary: segments, records, pending, bytes, consumed\n"
    "floor, and every problem a read-write open would cut or skip.\n"
    "Nothing is written.\n"
    "\n"
    "Options:\n"
    "      --limit N     at most N records (default 100; 0: no limit)\n"
    "      --all         also the consumed records still on disk\n"
    "      --json        one JSON object per record, then one summary object\n"
    "\n"
    "Example:\n"
    "  natka spool inspect /var/lib/natka/spool --all --limit 0 --json\n";

static const char verify_help[] =
    "Usage: natka spool verify DIR\n"
    "\n"
    "Reads every segment and checks every record (header, length, sequence,\n"
    "XXH64 checksum) and the floor file, without changing anything. Prints\n"
    "each problem: the file, the offset, what is wrong, how many good\n"
    "records come before it in that file, and whether a read-write open\n"
    "would cut it off (a torn tail) or skip the rest of that segment.\n"
    "\n"
    "Exit status: 0 all good; 1 a torn tail or corruption was found (or the\n"
    "spool could not be read); 2 bad usage.\n"
    "\n"
    "Example:\n"
    "  natka spool verify /var/lib/natka/spool || echo damaged\n";

static const char replay_help[] =
    "Usage: natka spool replay DIR -c FILE [-s KEY=VALUE]...\n"
    "\n"
    "Runs natka with the configuration FILE, but reading only the spool in\n"
    "DIR (spool.dir=DIR; jetstream.enabled=false, no nats.subjects, no\n"
    "ingress): every pending record goes through the rules to Kafka (or the\n"
    "dead-letter topic) exactly as in 'natka run'. Exits once every record\n"
    "is settled, printing how many were delivered, dead-lettered and\n"
    "dropped. The spool must not be in use by a running natka (it is\n"
    "locked). Delivery is at least once: records delivered but not yet\n"
    "marked consumed when natka stops may be delivered again. While Kafka is\n"
    "unreachable, records are retried; SIGINT stops the replay.\n"
    "\n"
    "Options:\n"
    "  -c, --config FILE     configuration file, as for 'natka run'\n"
    "  -s, --set KEY=VALUE   override one configuration key\n"
    "\n"
    "Example:\n"
    "  natka spool replay /var/lib/natka/spool -c natka.conf \\\n"
    "      -s kafka.brokers=10.0.0.5:9092\n";

static const struct {
  const char *name;
  int bit;
  const char *help;
} commands[] = {
    {"inspect", INSPECT, inspect_help},
    {"verify", VERIFY, verify_help},
    {"replay", REPLAY, replay_help},
};

typedef struct spool_cli {
  const char *cmd;
  const char *dir;
  long long limit;
  int all, json;
  char **confv; /* -c/-s pairs, in order */
  int nconf;
} spool_cli;

static int usage(const spool_cli *c, const char *fmt, const char *arg) {
  char who[64];
  snprintf(who, sizeof(who), "spool %s", c->cmd);
  return natka__cli_usage(who, fmt, arg);
}

static int fail(const spool_cli *c, int status, const char *msg) {
  fprintf(stderr, "spool %s: %s\n", c->cmd, msg);
  return status;
}

enum { O_CONFIG, O_SET, O_LIMIT, O_ALL, O_JSON };

static const natka__cli_opt options[] = {
    {"-c", "--config", O_CONFIG, 1, REPLAY}, {"-s", "--set", O_SET, 1, REPLAY},
    {NULL, "--limit", O_LIMIT, 1, INSPECT},  {NULL, "--all", O_ALL, 0, INSPECT},
    {NULL, "--json", O_JSON, 0, INSPECT},
};

/* The names of the command bits, for "only applies to ...". */
static const char *const bit_names[] = {"inspect", "verify", "replay"};

static int set_option(void *data, int id, const char *v) {
  spool_cli *c = data;
  char *end = NULL;
  switch (id) {
  case NATKA__CLI_ARG:
    if (c->dir != NULL)
      return usage(c, "unexpected argument '%s' (one DIR only)", v);
    c->dir = v;
    return 0;
  case O_CONFIG:
  case O_SET:
    c->confv[c->nconf++] = id == O_CONFIG ? "-c" : "-s";
    c->confv[c->nconf++] = (char *)v;
    return 0;
  case O_LIMIT:
    errno = 0;
    c->limit = strtoll(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || c->limit < 0)
      return usage(c, "--limit wants a number >= 0, got '%s'", v);
    return 0;
  case O_ALL:
    c->all = 1;
    return 0;
  default:
    c->json = 1;
    return 0;
  }
}

/* Returns 0, -1 after printing --help, or an exit status. */
static int parse(spool_cli *c, int bit, const char *help, int argc,
                 char **argv) {
  char who[64];
  snprintf(who, sizeof(who), "spool %s", c->cmd);
  natka__cli_parser p = {.who = who,
                         .help = help,
                         .opts = options,
                         .nopts = sizeof(options) / sizeof(options[0]),
                         .bit = (unsigned)bit,
                         .bit_names = bit_names,
                         .nbits = 3,
                         .on = set_option,
                         .data = c};
  int rc = natka__cli_parse(&p, argc, argv, 3);
  if (rc != 0)
    return rc;
  if (c->dir == NULL)
    return usage(c, "%s", "no spool directory given");
  if (bit == REPLAY && c->nconf == 0)
    return usage(c, "%s", "replay needs a configuration: -c FILE");
  struct stat st;
  if (stat(c->dir, &st) != 0 || !S_ISDIR(st.st_mode))
    return usage(c, "'%s' is not a directory", c->dir);
  return 0;
}

static int open_read_only(const spool_cli *c, natka__spool **sp,
                          natka__spool_report *rep) {
  char err[1024];
  natka__spool_opts o = {.read_only = 1};
  if (natka__spool_open(sp, c->dir, &o, rep, err, sizeof(err)) != 0)
    return fail(c, NATKA__CLI_FAILED, err);
  if (rep->in_use)
    fprintf(stderr,
            "spool %s: note: %s is in use by a running natka; a record being "
            "written right now may show as a torn tail\n",
            c->cmd, c->dir);
  return 0;
}

/* ------------------------------------------------------------ inspect */

/* Bytes as text: printable ASCII kept, the rest \xNN, cut with "...". */
static void show(const char *p, size_t n, char *out, size_t outlen) {
  size_t o = 0;
  for (size_t i = 0; i < n && o + 8 < outlen; i++) {
    unsigned char ch = (unsigned char)p[i];
    if (i == SHOW_BYTES) {
      o += (size_t)snprintf(out + o, outlen - o, "...");
      break;
    }
    if (ch >= 0x20 && ch < 0x7f && ch != '\\' && ch != '"')
      out[o++] = (char)ch;
    else
      o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", ch);
  }
  out[o] = '\0';
}

static void rfc3339(int64_t ns, char *out, size_t len) {
  struct tm tm;
  time_t sec = (time_t)(ns / 1000000000);
  long frac = (long)(ns % 1000000000);
  if (frac < 0) {
    frac += 1000000000;
    sec--;
  }
  if (ns == 0 || gmtime_r(&sec, &tm) == NULL) {
    snprintf(out, len, "-");
    return;
  }
  size_t n = strftime(out, len, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out + n, len - n, ".%09ldZ", frac);
}

static void print_record(const spool_cli *c, const natka__spool_rec *r,
                         int consumed, const char *bad) {
  char seg[40], key[SHOW_BYTES * 4 + 8], id[SHOW_BYTES * 4 + 8],
      kind[SHOW_BYTES * 4 + 8], when[48];
  natka_event *ev = NULL;
  snprintf(seg, sizeof(seg), "%020" PRIu64 ".seg", r->segment);
  int rc = bad != NULL ? NATKA_EMALFORMED
                       : natka__spool_event_unpack(r->data, r->len, &ev);
  const char *state = consumed ? "consumed" : "pending";
  if (rc == 0) {
    show(ev->id ? ev->id : "-", strlen(ev->id ? ev->id : "-"), id, sizeof(id));
    show(ev->kind ? ev->kind : "-", strlen(ev->kind ? ev->kind : "-"), kind,
         sizeof(kind));
    if (ev->key != NULL)
      show(ev->key, ev->key_len, key, sizeof(key));
    rfc3339(ev->ts, when, sizeof(when));
  }
  if (c->json) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "seq", (double)r->seq);
    cJSON_AddStringToObject(o, "segment", seg);
    cJSON_AddNumberToObject(o, "offset", (double)r->offset);
    cJSON_AddNumberToObject(o, "size", (double)r->size);
    cJSON_AddStringToObject(o, "state", state);
    if (rc == 0) {
      cJSON_AddStringToObject(o, "id", id);
      cJSON_AddStringToObject(o, "kind", kind);
      if (ev->key != NULL)
        cJSON_AddStringToObject(o, "key", key);
      else
        cJSON_AddNullToObject(o, "key");
      cJSON_AddStringToObject(o, "time", when);
      cJSON_AddNumberToObject(o, "data_bytes", (double)ev->data_len);
      cJSON_AddNumberToObject(o, "headers", (double)ev->nhdrs);
    } else {
      cJSON_AddStringToObject(o, "error",
                              bad != NULL ? bad : natka_strerror(rc));
    }
    char *text = cJSON_PrintUnformatted(o);
    if (text != NULL)
      puts(text);
    free(text);
    cJSON_Delete(o);
  } else if (rc == 0) {
    printf("seq=%" PRIu64 " segment=%s offset=%" PRIu64
           " size=%zu %s id=%s kind=%s key=%s%s%s time=%s\n",
           r->seq, seg, r->offset, r->size, state, id, kind,
           ev->key ? "\"" : "-", ev->key ? key : "", ev->key ? "\"" : "", when);
  } else {
    printf("seq=%" PRIu64 " segment=%s offset=%" PRIu64
           " size=%zu %s error=\"%s\"\n",
           r->seq, seg, r->offset, r->size, state,
           bad != NULL ? bad : "not an event (malformed)");
  }
  natka_event_free(ev);
}

static void print_problem(const natka__spool_problem *p, const char *prefix) {
  if (p->floor_file) {
    printf("%s%s: %s; every record on disk counts as not consumed (they "
           "would be delivered again)\n",
           prefix, p->path, p->what);
    return;
  }
  if (p->ignored) { /* `what` says what becomes of it */
    printf("%s%s: %s\n", prefix, p->path, p->what);
    return;
  }
  printf("%s%s offset %" PRIu64 ": %s; %" PRIu64
         " good record(s) before it in this file; %" PRIu64 " byte(s) %s\n",
         prefix, p->path, p->offset, p->what, p->records_before, p->bytes,
         p->tail ? "would be cut (torn tail)"
                 : "skipped by open (the rest of the segment)");
}

static void summary_json(const natka__spool_report *rep, uint64_t shown,
                         uint64_t more) {
  cJSON *o = cJSON_CreateObject(), *s = cJSON_AddObjectToObject(o, "summary");
  cJSON_AddNumberToObject(s, "segments", (double)rep->segments);
  cJSON_AddNumberToObject(s, "records", (double)rep->records);
  cJSON_AddNumberToObject(s, "pending", (double)rep->pending);
  cJSON_AddNumberToObject(s, "consumed", (double)(rep->records - rep->pending));
  cJSON_AddNumberToObject(s, "bytes", (double)rep->bytes);
  cJSON_AddNumberToObject(s, "floor", (double)rep->floor);
  cJSON_AddNumberToObject(s, "shown", (double)shown);
  cJSON_AddNumberToObject(s, "not_shown", (double)more);
  cJSON *arr = cJSON_AddArrayToObject(s, "problems");
  for (size_t i = 0; i < rep->nproblems; i++) {
    const natka__spool_problem *p = &rep->problems[i];
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "file", p->path);
    cJSON_AddNumberToObject(j, "offset", (double)p->offset);
    cJSON_AddNumberToObject(j, "bytes", (double)p->bytes);
    cJSON_AddNumberToObject(j, "records_before", (double)p->records_before);
    cJSON_AddStringToObject(j, "action",
                            p->floor_file ? "replay all"
                            : p->ignored  ? "ignore"
                            : p->tail     ? "cut"
                                          : "skip");
    cJSON_AddStringToObject(j, "what", p->what);
    cJSON_AddItemToArray(arr, j);
  }
  char *text = cJSON_PrintUnformatted(o);
  if (text != NULL)
    puts(text);
  free(text);
  cJSON_Delete(o);
}

static int cmd_inspect(spool_cli *c) {
  char err[1024];
  natka__spool *sp = NULL;
  natka__spool_report rep;
  natka__spool_rec r;
  uint64_t shown = 0, more = 0;
  int rc = open_read_only(c, &sp, &rep);
  if (rc != 0)
    return rc;
  if (c->all && natka__spool_seek(sp, 0, err, sizeof(err)) != 0) {
    rc = fail(c, NATKA__CLI_FAILED, err);
    goto done;
  }
  for (;;) {
    int n = natka__spool_next(sp, &r, err, sizeof(err));
    if (n == 0)
      break;
    if (n < 0 && n != NATKA_EMALFORMED) {
      rc = fail(c, NATKA__CLI_FAILED, err);
      goto done;
    }
    if (c->limit == 0 || shown < (uint64_t)c->limit) {
      print_record(c, &r, r.seq < rep.floor, n < 0 ? err : NULL);
      shown++;
    } else {
      more++;
    }
    free(r.data);
  }
  if (c->json) {
    summary_json(&rep, shown, more);
    goto done;
  }
  if (more > 0)
    printf("... %" PRIu64 " more record(s) not shown (--limit 0: all)\n", more);
  printf("segments %zu, records %" PRIu64 " (%" PRIu64 " pending, %" PRIu64
         " consumed), %" PRIu64 " bytes, consumed floor %" PRIu64 "\n",
         rep.segments, rep.records, rep.pending, rep.records - rep.pending,
         rep.bytes, rep.floor);
  for (size_t i = 0; i < rep.nproblems; i++)
    print_problem(&rep.problems[i], "problem: ");
  if (rep.nproblems == 0)
    printf("no problems: a read-write open would cut nothing\n");

done:
  natka__spool_report_free(&rep);
  natka__spool_close(sp, NULL, 0);
  return rc;
}

/* ------------------------------------------------------------ verify */

static int cmd_verify(spool_cli *c) {
  natka__spool *sp = NULL;
  natka__spool_report rep;
  int rc = open_read_only(c, &sp, &rep);
  if (rc != 0)
    return rc;
  for (size_t i = 0; i < rep.nproblems; i++)
    print_problem(&rep.problems[i], "");
  printf("%s: %zu segment(s), %" PRIu64 " good record(s) (%" PRIu64
         " pending), %zu problem(s)\n",
         c->dir, rep.segments, rep.records, rep.pending, rep.nproblems);
  rc = rep.nproblems > 0 ? 1 : 0;
  natka__spool_report_free(&rep);
  natka__spool_close(sp, NULL, 0);
  return rc;
}

/* ------------------------------------------------------------ replay */

typedef struct replay {
  natka *gw;
  uv_timer_t poll;
  int drained, unsupported;
} replay;

/* The gateway reports the spool's pending count as spool_pending; at 0
 * everything was settled and the replay stops (draining what is in flight,
 * which is nothing by then). */
static void on_poll(uv_timer_t *t) {
  replay *r = t->data;
  int64_t pending = natka_stat(r->gw, "spool_pending");
  if (pending > 0)
    return;
  uv_timer_stop(t);
  if (pending < 0)
    r->unsupported = 1;
  else
    r->drained = 1;
  natka_stop(r->gw, NULL, NULL);
}

static int configure(spool_cli *c, natka_config **conf) {
  static const char *const keys[][2] = {
      {"jetstream.enabled", "false"},
      {"nats.subjects", ""},
      {"ingress.subjects", ""},
  };
  char err[1024];
  int rc = natka__cli_load_config(c->nconf, c->confv, 0, conf);
  if (rc != 0)
    return rc;
  if (natka_config_set(*conf, "spool.dir", c->dir, err, sizeof(err)) != 0)
    return fail(c, NATKA__CLI_USAGE, err);
  for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
    if (natka_config_set(*conf, keys[i][0], keys[i][1], err, sizeof(err)) != 0)
      return fail(c, NATKA__CLI_USAGE, err);
  return 0;
}

static int cmd_replay(spool_cli *c) {
  char err[1024];
  natka_config *conf = NULL;
  natka__spool *sp = NULL;
  natka__spool_report rep;
  replay r = {0};
  int rc = open_read_only(c, &sp, &rep);
  if (rc != 0)
    return rc;
  uint64_t pending = rep.pending;
  natka__spool_report_free(&rep);
  natka__spool_close(sp, NULL, 0);
  if ((rc = configure(c, &conf)) != 0) {
    natka_config_free(conf);
    return rc;
  }
  if (pending == 0) {
    printf("%s: nothing pending\n", c->dir);
    natka_config_free(conf);
    return 0;
  }
  if ((rc = natka_new(&r.gw, conf, NULL, err, sizeof(err))) != 0) {
    natka_config_free(conf);
    return fail(c,
                rc == NATKA_ECONFIG || rc == NATKA_ERULE ? NATKA__CLI_USAGE
                                                         : NATKA__CLI_FAILED,
                err);
  }
  printf("%s: replaying %" PRIu64 " pending record(s)\n", c->dir, pending);
  fflush(stdout);
  uv_timer_init(natka_loop(r.gw), &r.poll);
  uv_unref((uv_handle_t *)&r.poll); /* the gateway decides when the loop ends */
  r.poll.data = &r;
  uv_timer_start(&r.poll, on_poll, REPLAY_POLL_MS, REPLAY_POLL_MS);
  rc = natka_run(r.gw);
  uv_close((uv_handle_t *)&r.poll, NULL);
  uv_run(natka_loop(r.gw), UV_RUN_DEFAULT);

  int64_t delivered = natka_stat(r.gw, "delivered");
  int64_t dead = natka_stat(r.gw, "deadlettered");
  int64_t dropped = natka_stat(r.gw, "dropped");
  natka_free(r.gw); /* closes the spool: the floor is on disk */
  nats_Close();

  /* What is left, as the spool itself says. */
  uint64_t left = pending;
  if (natka__spool_open(&sp, c->dir, &(natka__spool_opts){.read_only = 1}, &rep,
                        err, sizeof(err)) == 0) {
    left = rep.pending;
    natka__spool_report_free(&rep);
    natka__spool_close(sp, NULL, 0);
  }
  printf("%s: %" PRId64 " delivered, %" PRId64 " dead-lettered, %" PRId64
         " dropped by rules, %" PRIu64 " still pending\n",
         c->dir, delivered, dead, dropped, left);
  if (r.unsupported)
    return fail(c, NATKA__CLI_FAILED,
                "this natka has no spool source (natka_stat knows no "
                "spool_pending): nothing was replayed");
  if (rc != 0 || !r.drained) {
    fprintf(stderr, "spool replay: stopped before the spool was drained%s%s\n",
            rc != 0 ? ": " : "", rc != 0 ? natka_strerror(rc) : "");
    return NATKA__CLI_FAILED;
  }
  return 0;
}

/* ------------------------------------------------------------ dispatch */

int natka__cmd_spool(int argc, char **argv) {
  spool_cli c = {.cmd = "?", .limit = DEFAULT_LIMIT};
  const char *names[] = {"inspect", "verify", "replay"};
  int status, k = natka__cli_subcommand(argc, argv, "spool", names, 3, overview,
                                        &status);
  if (k < 0)
    return status;
  c.cmd = commands[k].name;
  if ((c.confv = calloc((size_t)argc, sizeof(*c.confv))) == NULL)
    return fail(&c, NATKA__CLI_FAILED, "out of memory");
  int rc = parse(&c, commands[k].bit, commands[k].help, argc, argv);
  if (rc == -1)
    rc = 0;
  else if (rc == 0)
    rc = commands[k].bit == INSPECT  ? cmd_inspect(&c)
         : commands[k].bit == VERIFY ? cmd_verify(&c)
                                     : cmd_replay(&c);
  free(c.confv);
  return rc;
}
