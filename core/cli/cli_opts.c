/*
 * The command line's shared parts (cli_opts.h): the option parser, the
 * subcommand dispatch and the -c/-s configuration every command reads.
 */
#include "cli_opts.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "natka/config.h"

int natka__cli_error(const char *who, int status, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "%s: ", who);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  return status;
}

int natka__cli_usage(const char *who, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "%s: ", who);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nTry 'natka %s --help'.\n", who);
  return NATKA__CLI_USAGE;
}

/* The option `a` names ("--name=value" names "--name"), or NULL. */
static const natka__cli_opt *find(const natka__cli_parser *p, const char *a,
                                  size_t alen) {
  for (size_t k = 0; k < p->nopts; k++) {
    const natka__cli_opt *o = &p->opts[k];
    if ((o->shrt != NULL && strcmp(a, o->shrt) == 0) ||
        (strncmp(a, o->lng, alen) == 0 && o->lng[alen] == '\0'))
      return o;
  }
  return NULL;
}

/* "option '--json' only applies to inspect" (or "to test, status"). */
static int not_here(const natka__cli_parser *p, const natka__cli_opt *o,
                    const char *a) {
  char where[256] = "";
  size_t n = 0;
  for (size_t b = 0; b < p->nbits && n < sizeof(where); b++)
    if (o->allowed & (1u << b))
      n += (size_t)snprintf(where + n, sizeof(where) - n, "%s%s",
                            n > 0 ? ", " : "", p->bit_names[b]);
  return natka__cli_usage(p->who, "option '%s' only applies to %s", a,
                          n > 0 ? where : "other commands");
}

int natka__cli_parse(const natka__cli_parser *p, int argc, char **argv,
                     int first) {
  int only_args = 0;
  for (int i = first; i < argc; i++) {
    const char *a = argv[i], *v = NULL;
    int rc;
    if (only_args || a[0] != '-' || a[1] == '\0') {
      if ((rc = p->on(p->data, NATKA__CLI_ARG, a)) != 0)
        return rc;
      continue;
    }
    if (p->dashdash && strcmp(a, "--") == 0) {
      only_args = 1;
      continue;
    }
    if (p->help != NULL && (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)) {
      fputs(p->help, stdout);
      return -1;
    }
    size_t alen = strcspn(a, "=");
    const char *inline_value = a[alen] == '=' ? a + alen + 1 : NULL;
    const natka__cli_opt *o = find(p, a, alen);
    if (o == NULL)
      return natka__cli_usage(p->who, "unknown option '%s'", a);
    if (o->allowed != 0 && !(o->allowed & p->bit))
      return not_here(p, o, a);
    if (!o->value && inline_value != NULL)
      return natka__cli_usage(p->who, "option '%s' takes no value", a);
    if (o->value && inline_value == NULL && i + 1 >= argc)
      return natka__cli_usage(p->who, "option '%s' needs a value", a);
    if (o->value)
      v = inline_value != NULL ? inline_value : argv[++i];
    if ((rc = p->on(p->data, o->id, v)) != 0)
      return rc;
  }
  return 0;
}

int natka__cli_subcommand(int argc, char **argv, const char *group,
                          const char *const *names, size_t n,
                          const char *overview, int *status) {
  const char *sub = argc > 2 ? argv[2] : NULL;
  if (sub == NULL || strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0 ||
      strcmp(sub, "help") == 0) {
    fputs(overview, sub != NULL ? stdout : stderr);
    *status = sub != NULL ? 0 : NATKA__CLI_USAGE;
    return -1;
  }
  for (size_t k = 0; k < n; k++)
    if (strcmp(sub, names[k]) == 0)
      return (int)k;
  fprintf(stderr, "natka %s: unknown command '%s'\nTry 'natka %s --help'.\n",
          group, sub, group);
  *status = NATKA__CLI_USAGE;
  return -1;
}

enum { O_CONFIG, O_SET };

static const natka__cli_opt config_options[] = {
    {"-c", "--config", O_CONFIG, 1, 0},
    {"-s", "--set", O_SET, 1, 0},
};

typedef struct config_state {
  const char *who;
  natka_config *conf;
} config_state;

/* Applies one -c FILE or -s KEY=VALUE, in the order given. */
static int apply(void *data, int id, const char *v) {
  config_state *cs = data;
  char err[1024];
  int rc;
  if (id == NATKA__CLI_ARG)
    return natka__cli_usage(cs->who, "unexpected argument '%s'", v);
  if (id == O_CONFIG) {
    rc = natka_config_load_file(cs->conf, v, err, sizeof(err));
  } else {
    char *key = strdup(v);
    char *eq = key ? strchr(key, '=') : NULL;
    if (eq == NULL) {
      free(key);
      return natka__cli_usage(cs->who, "--set wants KEY=VALUE, got '%s'", v);
    }
    *eq = '\0';
    rc = natka_config_set(cs->conf, key, eq + 1, err, sizeof(err));
    free(key);
  }
  if (rc != 0) {
    fprintf(stderr, "natka: %s\n", err);
    return NATKA__CLI_USAGE;
  }
  return 0;
}

/* Builds the configuration from the -c and -s options in argv[first..argc),
 * in order; see cmd_rules.h. */
int natka__cli_load_config(int argc, char **argv, int first,
                           natka_config **out) {
  config_state cs = {first > 0 ? argv[first - 1] : "natka", NULL};
  if (natka_config_new(&cs.conf) != 0) {
    fprintf(stderr, "natka: out of memory\n");
    return 1;
  }
  natka__cli_parser p = {.who = cs.who,
                         .opts = config_options,
                         .nopts = 2,
                         .on = apply,
                         .data = &cs};
  int rc = natka__cli_parse(&p, argc, argv, first);
  if (rc != 0) {
    natka_config_free(cs.conf);
    return rc;
  }
  *out = cs.conf;
  return 0;
}
