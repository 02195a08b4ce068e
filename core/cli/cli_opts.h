/*
 * The command line's shared parts: the one option parser, the subcommand
 * dispatch and the -c/-s configuration, used by `natka run|check` and the
 * rules, spool and dlq subcommands.
 *
 * A command describes its options in a table (short and long name, whether
 * it takes a value, which of the group's subcommands it applies to); the
 * parser walks argv, accepts "--name=value" and "--name value", answers -h
 * and --help with the command's help, and hands every option and every
 * plain argument to the command's callback in order. Usage errors are
 * printed in one format:
 *
 *   <who>: unknown option '--frob'
 *   Try 'natka <who> --help'.
 *
 * and return NATKA__CLI_USAGE (2).
 */
#ifndef NATKA_CLI_OPTS_H
#define NATKA_CLI_OPTS_H

#include <stddef.h>

#include "natka/config.h"

#define NATKA__CLI_FAILED 1 /* runtime failure: NATS unreachable, ... */
#define NATKA__CLI_USAGE 2  /* bad usage, input or rules */

#define NATKA__CLI_ARG (-1) /* the id given to a plain argument */

typedef struct natka__cli_opt {
  const char *shrt; /* "-c", or NULL */
  const char *lng;  /* "--config" */
  int id;
  int value;        /* takes a value */
  unsigned allowed; /* subcommand bits it applies to; 0: all */
} natka__cli_opt;

typedef struct natka__cli_parser {
  const char *who;  /* "rules push": what messages begin with */
  const char *help; /* printed to stdout for -h / --help; NULL: none */
  const natka__cli_opt *opts;
  size_t nopts;
  unsigned bit;                 /* this subcommand's bit (0: none) */
  const char *const *bit_names; /* names of the bits, for "only applies to" */
  size_t nbits;
  int dashdash; /* "--" makes the rest plain arguments */
  /* Each option (its id and value, or NULL) and each plain argument
   * (NATKA__CLI_ARG and the argument), in order: 0 to go on, or an exit
   * status (after its own message, e.g. natka__cli_usage). */
  int (*on)(void *data, int id, const char *value);
  void *data;
} natka__cli_parser;

/* Parses argv[first..argc). Returns 0, -1 after printing the help, or an
 * exit status (NATKA__CLI_USAGE, or what the callback returned). */
int natka__cli_parse(const natka__cli_parser *p, int argc, char **argv,
                     int first);

/* Prints "<who>: <message>" to stderr and returns status. */
int natka__cli_error(const char *who, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prints "<who>: <message>\nTry 'natka <who> --help'." to stderr and
 * returns NATKA__CLI_USAGE. */
int natka__cli_usage(const char *who, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The subcommand of `natka GROUP SUB ...` (argv[2]), one of
 * names[0..n). Returns its index, or -1 with the exit status in *status:
 * 0 after printing `overview` for --help, 2 with a message for a missing
 * or unknown subcommand. */
int natka__cli_subcommand(int argc, char **argv, const char *group,
                          const char *const *names, size_t n,
                          const char *overview, int *status);

/* The configuration from the -c/-s options in argv[first..argc),
 * in order. Returns 0 (*out is the caller's), 1 (out of memory) or 2 (bad
 * option or configuration; the reason is on stderr). */
int natka__cli_load_config(int argc, char **argv, int first,
                           natka_config **out);

#endif
