/*
 * `natka rules`: the command line (options, help) and the checks the
 * subcommands share: module names, files, and compiling a candidate set and
 * running its self-tests exactly as the daemon does before a swap.
 */
#include "cmd_rules.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_opts.h"
#include "config_int.h"
#include "natka/error.h"
#include "rules.h"

#define MAX_FILE_BYTES (64 << 20)

enum { PUSH = 1, TEST = 2, STATUS = 4, ROLLBACK = 8, ALL = 15 };

static const char overview[] =
    "Usage: natka rules COMMAND [OPTIONS]\n"
    "\n"
    "Manage the rule modules that natka loads from its NATS KV bucket\n"
    "(rules.bucket, one module per key: the file's name without .lua).\n"
    "\n"
    "Commands:\n"
    "  push FILE...     validate the set the bucket would hold, then write it\n"
    "  test FILE...     run rules over events from a JSONL file, offline\n"
    "  status           what each running natka reports (state, revision)\n"
    "  rollback REV     put the bucket back as it was at revision REV\n"
    "\n"
    "Common options:\n"
    "  -c, --config FILE     configuration file, as for 'natka run'\n"
    "  -s, --set KEY=VALUE   override one configuration key\n"
    "      --bucket NAME     the rules bucket (default: rules.bucket)\n"
    "  -h, --help            help for a command: natka rules push --help\n"
    "\n"
    "Exit status: 0 success; 1 runtime failure (NATS unreachable, ...);\n"
    "2 bad usage or input, or rules that fail to compile or self-test.\n";

static const char push_help[] =
    "Usage: natka rules push [OPTIONS] FILE... [--delete NAME]...\n"
    "\n"
    "Writes each FILE to the rules bucket as the module named after it\n"
    "(orders.lua -> orders; names must match [A-Za-z0-9_-]+). First, the\n"
    "set natka would load afterwards (the bucket's modules with these\n"
    "replaced or added, and the deleted ones gone) is compiled and its\n"
    "self-tests run; if anything fails, nothing is written (exit 2).\n"
    "Prints 'pushed NAME at revision N' per module, then 'revision N'.\n"
    "\n"
    "Options:\n"
    "      --delete NAME     also delete module NAME (repeatable)\n"
    "      --dry-run         validate only, write nothing\n"
    "  -c, -s, --bucket      see 'natka rules --help'\n";

static const char test_help[] =
    "Usage: natka rules test [OPTIONS] FILE... --events FILE.jsonl\n"
    "\n"
    "Loads the rule files in a fresh rules state (no servers), runs their\n"
    "self-tests (failures are reported, the run goes on), and asks the rules\n"
    "about each event of the JSONL file, one JSON object per line:\n"
    "  {\"id\": \"e-1\", \"kind\": \"orders.created\", \"key\": \"k\",\n"
    "   \"data\": \"...\", \"ts\": 1700000000000, \"headers\": [[\"name\", "
    "\"value\"]]}\n"
    "(all fields optional; ts in milliseconds; data may also be a JSON\n"
    "object or array, passed on as its text). Prints per event:\n"
    "  LINE ID-OR-KIND: dedup=KEY|- degrade=VERDICT[ SUBJECT|REASON]|-"
    " route=TOPIC[,TOPIC...]|drop|error: MESSAGE\n"
    "\n"
    "Options:\n"
    "      --events FILE     the events (required)\n"
    "      --switch N=V      a switch the rules see (repeatable)\n"
    "      --json            one JSON object per event instead\n"
    "  -c, -s                budgets and route.default_topic come from the\n"
    "                        configuration\n"
    "\n"
    "Exit status: 0 when every event got a verdict (a rule error is one);\n"
    "2 for unreadable rules or events.\n";

static const char status_help[] =
    "Usage: natka rules status [OPTIONS]\n"
    "\n"
    "Reads every key of the status bucket (rules.status_bucket), where each\n"
    "running natka reports itself, and prints one row per instance:\n"
    "instance, state, active revision, modules, last rejected revision and\n"
    "why, and when the report was written.\n"
    "\n"
    "Options:\n"
    "      --json            the reports as a JSON array, as written\n"
    "  -c, -s                see 'natka rules --help'\n";

static const char rollback_help[] =
    "Usage: natka rules rollback [OPTIONS] REV\n"
    "\n"
    "Puts the rules bucket back as it was at revision REV (a revision that\n"
    "'natka rules push' printed): from the bucket's history, each module\n"
    "gets the value it had then, or is deleted if it did not exist. The\n"
    "resulting set is validated like a push first. The bucket keeps 64\n"
    "values per module; an older REV is refused (exit 2).\n"
    "Prints 'rolled back to revision REV as revision NEW'.\n"
    "\n"
    "Options:\n"
    "  -c, -s, --bucket      see 'natka rules --help'\n";

static const struct {
  const char *name;
  int bit;
  const char *help;
  int (*run)(natka__rules_cli *c);
} commands[] = {
    {"push", PUSH, push_help, natka__cli_push},
    {"test", TEST, test_help, natka__cli_test},
    {"status", STATUS, status_help, natka__cli_status},
    {"rollback", ROLLBACK, rollback_help, natka__cli_rollback},
};

/* Options after the command; `allowed` is a mask of commands. */
typedef enum {
  O_CONFIG,
  O_SET,
  O_BUCKET,
  O_DRY_RUN,
  O_DELETE,
  O_EVENTS,
  O_SWITCH,
  O_JSON
} opt_id;

static const natka__cli_opt options[] = {
    {"-c", "--config", O_CONFIG, 1, 0},
    {"-s", "--set", O_SET, 1, 0},
    {NULL, "--bucket", O_BUCKET, 1, 0},
    {NULL, "--dry-run", O_DRY_RUN, 0, PUSH},
    {NULL, "--delete", O_DELETE, 1, PUSH},
    {NULL, "--events", O_EVENTS, 1, TEST},
    {NULL, "--switch", O_SWITCH, 1, TEST},
    {NULL, "--json", O_JSON, 0, TEST | STATUS},
};

/* The names of the command bits, for "only applies to ...". */
static const char *const bit_names[] = {"push", "test", "status", "rollback"};

int natka__cli_fail(const natka__rules_cli *c, int status, const char *fmt,
                    ...) {
  va_list ap;
  fprintf(stderr, "rules %s: ", c->cmd);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  return status;
}

static int usage(const natka__rules_cli *c, const char *fmt, const char *arg) {
  char who[64];
  snprintf(who, sizeof(who), "rules %s", c->cmd);
  return natka__cli_usage(who, fmt, arg);
}

int natka__cli_rules_new(natka__rules_cli *c, natka__rules **out) {
  char err[512];
  natka__rules_opts ro = {
      .instr_budget = c->conf->rules_instr_budget,
      .time_limit_ms = c->conf->rules_time_limit_ms,
      .load_time_limit_ms = c->conf->rules_load_time_limit_ms,
      .mem_limit = (size_t)c->conf->rules_memory_mb * 1024 * 1024,
      .max_answer_bytes = (size_t)c->conf->rules_max_answer_bytes,
      .default_topic = c->conf->route_default_topic,
      .log = &c->log,
  };
  if (natka__rules_new(out, &ro, err, sizeof(err)) != 0)
    return natka__cli_fail(c, NATKA__CLI_FAILED, "%s", err);
  return 0;
}

int natka__cli_module_name(const natka__rules_cli *c, const char *path,
                           char *name, size_t len) {
  static const char ok[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
      "0123456789_-";
  const char *base = strrchr(path, '/');
  base = base != NULL ? base + 1 : path;
  size_t n = strlen(base);
  if (n > 4 && strcmp(base + n - 4, ".lua") == 0)
    n -= 4;
  if (n == 0 || n >= len || strspn(base, ok) < n)
    return natka__cli_fail(c, NATKA__CLI_USAGE,
                           "%s: the module name '%.*s' must match "
                           "[A-Za-z0-9_-]+ (1 to %zu characters)",
                           path, (int)n, base, len - 1);
  memcpy(name, base, n);
  name[n] = '\0';
  return 0;
}

int natka__cli_read_file(const natka__rules_cli *c, const char *path,
                         char **buf, size_t *len) {
  FILE *f = fopen(path, "rb");
  char *b = NULL;
  size_t n = 0, cap = 0;
  if (f == NULL)
    return natka__cli_fail(c, NATKA__CLI_USAGE, "cannot read %s: %s", path,
                           strerror(errno));
  for (;;) {
    if (cap - n < 4096) {
      cap = cap ? cap * 2 : 16384;
      char *nb = cap <= MAX_FILE_BYTES + 8192 ? realloc(b, cap + 1) : NULL;
      if (nb == NULL) {
        free(b);
        fclose(f);
        return natka__cli_fail(c, NATKA__CLI_USAGE, "%s: larger than %d MiB",
                               path, MAX_FILE_BYTES >> 20);
      }
      b = nb;
    }
    size_t got = fread(b + n, 1, cap - n, f);
    n += got;
    if (got == 0)
      break;
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    free(b);
    return natka__cli_fail(c, NATKA__CLI_USAGE, "cannot read %s: read error",
                           path);
  }
  b[n] = '\0';
  *buf = b;
  *len = n;
  return 0;
}

int natka__cli_check_set(natka__rules_cli *c, const natka__cli_module *mods,
                         size_t n) {
  char err[2048];
  natka__rules *r = NULL;
  int rc = natka__cli_rules_new(c, &r);
  if (rc != 0)
    return rc;
  for (size_t i = 0; rc == 0 && i < n; i++)
    rc = mods[i].path != NULL
             ? natka__rules_load_file(r, mods[i].path, err, sizeof(err))
             : natka__rules_add_module(r, mods[i].name, mods[i].src,
                                       mods[i].len, err, sizeof(err));
  if (rc == 0)
    rc = natka__rules_selftest(r, err, sizeof(err));
  natka__rules_free(r);
  if (rc == 0)
    return 0;
  return natka__cli_fail(
      c, rc == NATKA_ENOMEM ? NATKA__CLI_FAILED : NATKA__CLI_USAGE, "%s", err);
}

void natka__cli_modules_free(natka__cli_module *mods, size_t n) {
  for (size_t i = 0; mods != NULL && i < n; i++) {
    free(mods[i].name);
    free(mods[i].src);
  }
  free(mods);
}

typedef struct parse_state {
  natka__rules_cli *c;
  char **confv; /* the -c/-s pairs, in order */
  int nconf;
} parse_state;

static int set_option(void *data, int id, const char *v) {
  parse_state *ps = data;
  natka__rules_cli *c = ps->c;
  switch ((opt_id)id) {
  case O_CONFIG:
  case O_SET:
    ps->confv[ps->nconf++] = id == O_CONFIG ? "-c" : "-s";
    ps->confv[ps->nconf++] = (char *)v;
    break;
  case O_BUCKET:
    c->bucket = v;
    break;
  case O_DRY_RUN:
    c->dry_run = 1;
    break;
  case O_DELETE:
    c->deletes[c->ndeletes++] = v;
    break;
  case O_EVENTS:
    c->events = v;
    break;
  case O_SWITCH:
    if (strchr(v, '=') == NULL || v[0] == '=')
      return usage(c, "--switch wants NAME=VALUE, got '%s'", v);
    c->switches[c->nswitches++] = v;
    break;
  case O_JSON:
    c->json = 1;
    break;
  default: /* NATKA__CLI_ARG */
    c->args[c->nargs++] = v;
    break;
  }
  return 0;
}

/*
 * Sorts argv[3..] into c. The -c/-s pairs are collected in order into
 * confv (argc slots) for natka__cli_load_config, so `rules` reads its
 * configuration exactly as `run` does. Returns 0, -1 for --help (printed),
 * or an exit status.
 */
static int parse(natka__rules_cli *c, int bit, const char *help, int argc,
                 char **argv, char **confv, int *nconf) {
  char who[64];
  snprintf(who, sizeof(who), "rules %s", c->cmd);
  parse_state ps = {c, confv, 0};
  natka__cli_parser p = {.who = who,
                         .help = help,
                         .opts = options,
                         .nopts = sizeof(options) / sizeof(options[0]),
                         .bit = (unsigned)bit,
                         .bit_names = bit_names,
                         .nbits = 4,
                         .dashdash = 1,
                         .on = set_option,
                         .data = &ps};
  int rc = natka__cli_parse(&p, argc, argv, 3);
  *nconf = ps.nconf;
  return rc;
}

/* The arguments each command needs, once the options are sorted out. */
static int check_args(natka__rules_cli *c, int bit) {
  if (bit == PUSH && c->nargs == 0 && c->ndeletes == 0)
    return usage(c, "%s", "no rule files to push (and no --delete)");
  if (bit == TEST && c->nargs == 0)
    return usage(c, "%s", "no rule files given");
  if (bit == TEST && c->events == NULL)
    return usage(c, "%s", "--events FILE.jsonl is required");
  if (bit == STATUS && c->nargs > 0)
    return usage(c, "unexpected argument '%s'", c->args[0]);
  if (bit == ROLLBACK && c->nargs != 1)
    return usage(c, "%s", "wants exactly one revision");
  return 0;
}

static int configure(natka__rules_cli *c, int nconf, char **confv) {
  char err[1024];
  int rc = natka__cli_load_config(nconf, confv, 0, &c->conf);
  if (rc != 0)
    return rc;
  if (c->bucket != NULL && natka_config_set(c->conf, "rules.bucket", c->bucket,
                                            err, sizeof(err)) != 0)
    return natka__cli_fail(c, NATKA__CLI_USAGE, "--bucket: %s", err);
  c->bucket = c->conf->rules_bucket;
  if (natka__log_init(&c->log, c->conf->log_cb, c->conf->log_data,
                      c->conf->log_level) != 0)
    return natka__cli_fail(c, NATKA__CLI_FAILED, "cannot set up logging");
  return 0;
}

int natka__cmd_rules(int argc, char **argv) {
  natka__rules_cli c = {.cmd = "?"};
  const char *names[] = {"push", "test", "status", "rollback"};
  int status, k = natka__cli_subcommand(argc, argv, "rules", names, 4, overview,
                                        &status);
  if (k < 0)
    return status;
  c.cmd = commands[k].name;

  /* Every list gets argc slots: it cannot hold more arguments than that. */
  char **confv = calloc((size_t)argc, sizeof(*confv));
  c.args = calloc((size_t)argc, sizeof(*c.args));
  c.deletes = calloc((size_t)argc, sizeof(*c.deletes));
  c.switches = calloc((size_t)argc, sizeof(*c.switches));
  int nconf = 0, log_ready = 0, rc;
  if (confv == NULL || c.args == NULL || c.deletes == NULL ||
      c.switches == NULL) {
    rc = natka__cli_fail(&c, NATKA__CLI_FAILED, "out of memory");
    goto done;
  }
  rc = parse(&c, commands[k].bit, commands[k].help, argc, argv, confv, &nconf);
  if (rc == -1) {
    rc = 0;
    goto done;
  }
  if (rc == 0)
    rc = check_args(&c, commands[k].bit);
  if (rc == 0 && (rc = configure(&c, nconf, confv)) == 0)
    log_ready = 1;
  if (rc == 0 && commands[k].bit != TEST && commands[k].bit != STATUS &&
      c.bucket[0] == '\0')
    rc = natka__cli_fail(&c, NATKA__CLI_USAGE,
                         "rules.bucket is empty: natka runs without a rules "
                         "bucket; give one with --bucket NAME");
  if (rc == 0)
    rc = commands[k].run(&c);

done:
  if (log_ready)
    natka__log_destroy(&c.log);
  natka_config_free(c.conf);
  free(confv);
  free(c.args);
  free(c.deletes);
  free(c.switches);
  return rc;
}
