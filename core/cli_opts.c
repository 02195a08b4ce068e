/*
 * The command line's option parser (cli_opts.h).
 */
#include "cli_opts.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cmd_rules.h"

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
