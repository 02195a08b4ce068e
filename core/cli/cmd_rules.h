/*
 * `natka rules`: the rules bucket from the command line.
 *
 *   push FILE... [--delete NAME]... [--dry-run]   validate, then write
 *   test FILE... --events FILE.jsonl              offline verdicts
 *   status                                        what each natka reports
 *   rollback REV                                  the bucket as at REV
 *
 * The layout is the daemon's (reload.c): one module per key of rules.bucket,
 * key = module name, value = the Lua source; status JSON per instance in
 * rules.status_bucket. Exit status: 0 success, 1 runtime failure (NATS), 2
 * bad usage or rules that fail to compile or their self-tests.
 *
 * cmd_rules.c parses the command line and runs the shared checks,
 * cmd_rules_kv.c talks to NATS (push, rollback, status), cmd_rules_test.c
 * runs rules over events without servers.
 */
#ifndef NATKA_CMD_RULES_H
#define NATKA_CMD_RULES_H

#include <stddef.h>
#include <stdint.h>

#include "cli_opts.h"
#include "log.h"
#include "natka/config.h"
#include "rules.h"

/* `natka rules ...` with main()'s argv (argv[1] is "rules"); returns the
 * exit status. */
int natka__cmd_rules(int argc, char **argv);
/* `natka spool inspect|verify|replay ...` (cmd_spool.c), same convention. */
int natka__cmd_spool(int argc, char **argv);
/* `natka dlq replay ...` (cmd_dlq.c), same convention. */
int natka__cmd_dlq(int argc, char **argv);

/* ------------------------------------------- between the cmd_rules files */

/* One parsed command line. Strings point into argv. */
typedef struct natka__rules_cli {
  const char *cmd; /* "push", "test", "status", "rollback" */
  natka_config *conf;
  const char *bucket; /* rules bucket in effect (conf's, or --bucket) */
  natka__log log;     /* for rule modules' print() and warnings */
  const char **args;  /* positional arguments */
  size_t nargs;
  const char **deletes; /* push --delete NAME */
  size_t ndeletes;
  const char **switches; /* test --switch NAME=VALUE, as given */
  size_t nswitches;
  const char *events; /* test --events FILE */
  int dry_run, json;
} natka__rules_cli;

/* A module of a candidate set: its source, and the file it comes from
 * (NULL when it comes from the bucket). */
typedef struct natka__cli_module {
  char *name;
  char *src;
  size_t len;
  const char *path;
} natka__cli_module;

/* Prints "rules <cmd>: <text>" to stderr; returns status. */
int natka__cli_fail(const natka__rules_cli *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A new rules state with the configured budgets and default topic. */
int natka__cli_rules_new(natka__rules_cli *c, natka__rules **out);

/* The module name of a rule file: its basename without ".lua", which must
 * match [A-Za-z0-9_-]+. Returns 0, or 2 with the reason printed. */
int natka__cli_module_name(const natka__rules_cli *c, const char *path,
                           char *name, size_t len);

/* Reads a whole file; the buffer has a NUL after *len bytes. Returns 0, or
 * 2 with the reason printed. */
int natka__cli_read_file(const natka__rules_cli *c, const char *path,
                         char **buf, size_t *len);

/* Compiles the modules of mods[0..n) (a file's with its path, so messages
 * name the file and line) in a fresh state and runs their self-tests.
 * Returns 0, or 2 with "rules <cmd>: <reason>" printed. */
int natka__cli_check_set(natka__rules_cli *c, const natka__cli_module *mods,
                         size_t n);
void natka__cli_modules_free(natka__cli_module *mods, size_t n);

int natka__cli_push(natka__rules_cli *c);
int natka__cli_rollback(natka__rules_cli *c);
int natka__cli_status(natka__rules_cli *c);
int natka__cli_test(natka__rules_cli *c);

#endif
