/*
 * `natka rules status`: the reports that running natka instances write to
 * rules.status_bucket (reload.c), as a table or as a JSON array.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cmd_rules.h"
#include "cmd_rules_kv.h"
#include "config_int.h"

enum {
  C_INSTANCE,
  C_STATE,
  C_REVISION,
  C_MODULES,
  C_REJECTION,
  C_UPDATED,
  NCOLS
};

static const char *const headings[NCOLS] = {
    "INSTANCE", "STATE", "REVISION", "MODULES", "LAST REJECTION", "UPDATED"};

typedef struct row {
  char *cell[NCOLS];
} row;

static char *text_of(const cJSON *j, const char *name) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
  char *s = NULL;
  if (cJSON_IsString(v))
    return strdup(v->valuestring);
  if (!cJSON_IsNumber(v))
    return strdup("-");
  if (asprintf(&s, "%.0f", v->valuedouble) < 0)
    return NULL;
  return s;
}

/* The module names joined by commas, or "-". */
static char *modules_of(const cJSON *j) {
  const cJSON *mods = cJSON_GetObjectItemCaseSensitive(j, "modules"), *m;
  size_t len = 2;
  cJSON_ArrayForEach(m, mods) {
    if (cJSON_IsString(m))
      len += strlen(m->valuestring) + 1;
  }
  char *s = malloc(len);
  if (s == NULL)
    return NULL;
  s[0] = '\0';
  cJSON_ArrayForEach(m, mods) {
    if (!cJSON_IsString(m))
      continue;
    if (s[0] != '\0')
      strcat(s, ",");
    strcat(s, m->valuestring);
  }
  if (s[0] == '\0')
    strcpy(s, "-");
  return s;
}

/* "<revision>: <first line of the reason>", or "-". */
static char *rejection_of(const cJSON *j) {
  const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "last_rejection");
  if (!cJSON_IsObject(r))
    return strdup("-");
  const cJSON *rev = cJSON_GetObjectItemCaseSensitive(r, "revision");
  const cJSON *why = cJSON_GetObjectItemCaseSensitive(r, "reason");
  const char *reason = cJSON_IsString(why) ? why->valuestring : "?";
  char *s = NULL;
  if (asprintf(&s, "%.0f: %.*s", cJSON_IsNumber(rev) ? rev->valuedouble : 0.0,
               (int)strcspn(reason, "\n"), reason) < 0)
    return NULL;
  return s;
}

static int fill_row(row *r, const natka__cli_rec *rec) {
  cJSON *j = cJSON_ParseWithLength(rec->value, rec->len);
  if (!cJSON_IsObject(j)) {
    r->cell[C_INSTANCE] = strdup(rec->key);
    r->cell[C_STATE] = strdup("(unreadable report)");
    for (int i = C_REVISION; i < NCOLS; i++)
      r->cell[i] = strdup("-");
  } else {
    r->cell[C_INSTANCE] =
        cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "instance"))
            ? text_of(j, "instance")
            : strdup(rec->key);
    r->cell[C_STATE] = text_of(j, "state");
    r->cell[C_REVISION] = text_of(j, "revision");
    r->cell[C_MODULES] = modules_of(j);
    r->cell[C_REJECTION] = rejection_of(j);
    r->cell[C_UPDATED] = text_of(j, "updated");
  }
  cJSON_Delete(j);
  for (int i = 0; i < NCOLS; i++)
    if (r->cell[i] == NULL)
      return -1;
  return 0;
}

static void print_row(const char *const *cells, const size_t *width) {
  for (int i = 0; i < NCOLS; i++) {
    if (i == NCOLS - 1)
      printf("%s\n", cells[i]);
    else
      printf("%-*s  ", (int)width[i], cells[i]);
  }
}

static int print_table(natka__rules_cli *c, const natka__cli_recs *rs) {
  row *rows = calloc(rs->n + 1, sizeof(*rows));
  size_t width[NCOLS], n = 0;
  int rc = rows != NULL ? 0 : -1;
  for (int i = 0; i < NCOLS; i++)
    width[i] = strlen(headings[i]);
  for (size_t i = 0; rc == 0 && i < rs->n; i++) {
    if (rs->v[i].op != kvOp_Put)
      continue;
    rc = fill_row(&rows[n++], &rs->v[i]);
    for (int k = 0; rc == 0 && k < NCOLS; k++)
      if (strlen(rows[n - 1].cell[k]) > width[k])
        width[k] = strlen(rows[n - 1].cell[k]);
  }
  if (rc == 0) {
    print_row(headings, width);
    for (size_t i = 0; i < n; i++)
      print_row((const char *const *)rows[i].cell, width);
  }
  for (size_t i = 0; rows != NULL && i < n; i++)
    for (int k = 0; k < NCOLS; k++)
      free(rows[i].cell[k]);
  free(rows);
  return rc == 0 ? 0 : natka__cli_fail(c, NATKA__CLI_FAILED, "out of memory");
}

/* The reports as written; one that is not JSON becomes a JSON string. */
static int print_json(natka__rules_cli *c, const natka__cli_recs *rs) {
  const char *sep = "";
  printf("[");
  for (size_t i = 0; i < rs->n; i++) {
    if (rs->v[i].op != kvOp_Put)
      continue;
    cJSON *j = cJSON_ParseWithLength(rs->v[i].value, rs->v[i].len);
    if (j != NULL) {
      printf("%s\n  %.*s", sep, (int)rs->v[i].len, rs->v[i].value);
    } else {
      cJSON *s = cJSON_CreateString(rs->v[i].value);
      char *text = s != NULL ? cJSON_PrintUnformatted(s) : NULL;
      cJSON_Delete(s);
      if (text == NULL)
        return natka__cli_fail(c, NATKA__CLI_FAILED, "out of memory");
      printf("%s\n  %s", sep, text);
      cJSON_free(text);
    }
    cJSON_Delete(j);
    sep = ",";
  }
  printf("%s]\n", sep[0] != '\0' ? "\n" : "");
  return 0;
}

int natka__cli_status(natka__rules_cli *c) {
  natka__cli_kv k = {0};
  natka__cli_recs rs = {0};
  int missing = 0, rc;
  size_t reports = 0;
  const char *bucket = c->conf->rules_status_bucket;

  if ((rc = natka__cli_connect(c, &k)) == 0 &&
      (rc = natka__cli_open_bucket(c, &k, bucket, 0, &missing)) == 0 &&
      !missing)
    rc = natka__cli_read_bucket(c, &k, 0, &rs);
  for (size_t i = 0; i < rs.n; i++)
    reports += rs.v[i].op == kvOp_Put;
  if (rc == 0 && c->json)
    rc = print_json(c, &rs);
  else if (rc == 0 && reports == 0)
    printf("no natka has reported yet (status bucket %s)\n", bucket);
  else if (rc == 0)
    rc = print_table(c, &rs);
  natka__cli_disconnect(&k);
  natka__cli_recs_free(&rs);
  return rc;
}
