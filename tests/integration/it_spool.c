/*
 * `natka spool` on real spool directories, through the natka binary, without
 * servers: verify and inspect on a spool with a torn tail (reported, exit 1
 * for verify, nothing cut), --all and --json, the fix a read-write open
 * makes, a stray file named like a segment (reported, ignored, kept), and
 * the command line's usage errors (exit 2 naming what is wrong).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "spool.h"

#define RUN_TIMEOUT_MS 30000

static int spool_cmd(it_test *t, const char *tag, const char *a1,
                     const char *a2, const char *a3, const char *a4,
                     const char *a5, char **out, char **err) {
  char *argv[] = {t->natka_bin, "spool",    (char *)a1, (char *)a2,
                  (char *)a3,   (char *)a4, (char *)a5, NULL};
  int rc = it_run(t, tag, argv, RUN_TIMEOUT_MS, out, err);
  it_log(t, "natka spool %s %s %s %s: exit %d", a1 ? a1 : "", a2 ? a2 : "",
         a3 ? a3 : "", a4 ? a4 : "", rc);
  return rc;
}

static natka__spool *open_rw(it_test *t, const char *dir,
                             natka__spool_report *rep) {
  char err[512];
  natka__spool *sp = NULL;
  natka__spool_opts o = {.fsync = NATKA__SPOOL_FSYNC_NEVER};
  if (natka__spool_open(&sp, dir, &o, rep, err, sizeof(err)) != 0)
    IT_FAIL(t, "open %s: %s", dir, err);
  return sp;
}

/* Six events, the first two consumed, then the last one torn by 5 bytes. */
static void make_spool(it_test *t, const char *dir, char *seg, size_t len) {
  char err[512], id[32];
  natka__spool_report rep;
  natka__spool_rec rec;
  natka__spool *sp = open_rw(t, dir, &rep);
  natka__spool_report_free(&rep);
  for (int i = 1; i <= 6; i++) {
    natka_event *ev = NULL;
    IT_CHECK_INT(t, natka_event_new(&ev), ==, 0);
    snprintf(id, sizeof(id), "order-%d", i);
    natka_event_set_id(ev, id);
    natka_event_set_kind(ev, "orders.created");
    natka_event_set_ts(ev, 1767225600000000000LL + i);
    if (i != 3)
      natka_event_set_key(ev, "k\0\n", 3);
    natka_event_set_data(ev, "{\"total\":12}", 12);
    if (natka__spool_put_event(sp, ev, NULL, err, sizeof(err)) != 0)
      IT_FAIL(t, "put: %s", err);
    natka_event_free(ev);
  }
  for (int i = 1; i <= 2; i++) {
    IT_CHECK_INT(t, natka__spool_next(sp, &rec, err, sizeof(err)), ==, 1);
    free(rec.data);
    IT_CHECK_INT(t, natka__spool_ack(sp, rec.seq), ==, 0);
  }
  natka__spool_segment_path(sp, 1, seg, len);
  IT_CHECK_INT(t, natka__spool_close(sp, err, sizeof(err)), ==, 0);
  struct stat st;
  IT_CHECK_INT(t, stat(seg, &st), ==, 0);
  IT_CHECK_INT(t, truncate(seg, st.st_size - 5), ==, 0);
}

static off_t size_of(it_test *t, const char *path) {
  struct stat st;
  IT_CHECK_INT(t, stat(path, &st), ==, 0);
  return st.st_size;
}

static void damaged_spool(it_test *t, const char *dir) {
  char seg[PATH_MAX], *out = NULL;
  make_spool(t, dir, seg, sizeof(seg));
  off_t torn = size_of(t, seg);

  IT_CHECK_INT(t, spool_cmd(t, "verify", "verify", dir, 0, 0, 0, &out, NULL),
               ==, 1);
  IT_CHECK_HAS(t, out, seg);
  IT_CHECK_HAS(t, out, "short payload");
  IT_CHECK_HAS(t, out, "5 good record(s) before it");
  IT_CHECK_HAS(t, out, "would be cut (torn tail)");
  IT_CHECK_HAS(t, out, "1 problem(s)");
  free(out);

  IT_CHECK_INT(t, spool_cmd(t, "inspect", "inspect", dir, 0, 0, 0, &out, NULL),
               ==, 0);
  IT_CHECK(t, strstr(out, "seq=2 ") == NULL); /* consumed: not by default */
  IT_CHECK_HAS(t, out, "seq=3 segment=00000000000000000001.seg");
  IT_CHECK_HAS(t, out,
               "pending id=order-3 kind=orders.created key=- "
               "time=2026-01-01T00:00:00.000000003Z");
  IT_CHECK_HAS(t, out, "id=order-5 kind=orders.created key=\"k\\x00\\x0a\"");
  IT_CHECK(t, strstr(out, "order-6") == NULL); /* the torn one */
  IT_CHECK_HAS(t, out, "records 5 (3 pending, 2 consumed)");
  IT_CHECK_HAS(t, out, "consumed floor 3");
  IT_CHECK_HAS(t, out, "problem: ");
  free(out);
  IT_CHECK_INT(t, size_of(t, seg), ==, torn); /* read-only: nothing cut */

  IT_CHECK_INT(t,
               spool_cmd(t, "json", "inspect", dir, "--all", "--json",
                         "--limit=2", &out, NULL),
               ==, 0);
  cJSON *first = cJSON_Parse(out);
  IT_CHECK(t, first != NULL);
  IT_CHECK_STR(t, cJSON_GetObjectItem(first, "state")->valuestring, "consumed");
  IT_CHECK_INT(t, cJSON_GetObjectItem(first, "seq")->valuedouble, ==, 1);
  cJSON_Delete(first);
  const char *last = strstr(out, "{\"summary\"");
  IT_CHECK(t, last != NULL);
  cJSON *root = cJSON_Parse(last);
  cJSON *sum = cJSON_GetObjectItem(root, "summary");
  IT_CHECK(t, sum != NULL);
  IT_CHECK_INT(t, cJSON_GetObjectItem(sum, "shown")->valuedouble, ==, 2);
  IT_CHECK_INT(t, cJSON_GetObjectItem(sum, "not_shown")->valuedouble, ==, 3);
  cJSON *p = cJSON_GetArrayItem(cJSON_GetObjectItem(sum, "problems"), 0);
  IT_CHECK_STR(t, cJSON_GetObjectItem(p, "action")->valuestring, "cut");
  cJSON_Delete(root);
  free(out);

  /* What natka run does at start: cut the tail. Then all is well. */
  natka__spool_report rep;
  natka__spool *sp = open_rw(t, dir, &rep);
  IT_CHECK_INT(t, rep.nproblems, ==, 1);
  IT_CHECK_INT(t, rep.problems[0].tail, ==, 1);
  natka__spool_report_free(&rep);
  natka__spool_close(sp, NULL, 0);
  IT_CHECK_INT(t, size_of(t, seg), <, torn);
  IT_CHECK_INT(t, spool_cmd(t, "verify2", "verify", dir, 0, 0, 0, &out, NULL),
               ==, 0);
  IT_CHECK_HAS(t, out, "0 problem(s)");
  free(out);
}

/* A file named like a segment but for no sequence natka hands out: verify
 * and inspect name it and say it is ignored, the open natka run makes goes
 * on without it, and it stays where it is. */
static void stray_segment_name(it_test *t, const char *dir) {
  char stray[PATH_MAX + 64], *out = NULL;
  snprintf(stray, sizeof(stray), "%s/99999999999999999999.seg", dir);
  FILE *f = fopen(stray, "w");
  IT_CHECK(t, f != NULL);
  fputs("not a segment", f);
  fclose(f);

  IT_CHECK_INT(t, spool_cmd(t, "stray", "verify", dir, 0, 0, 0, &out, NULL), ==,
               1);
  IT_CHECK_HAS(t, out, stray);
  IT_CHECK_HAS(t, out, "name out of range");
  IT_CHECK_HAS(t, out, "ignored, left on disk: move it away");
  IT_CHECK_HAS(t, out, "1 problem(s)");
  free(out);
  IT_CHECK_INT(
      t, spool_cmd(t, "stray_json", "inspect", dir, "--json", 0, 0, &out, NULL),
      ==, 0);
  IT_CHECK_HAS(t, out, "\"action\":\"ignore\"");
  free(out);

  natka__spool_report rep;
  natka__spool *sp = open_rw(t, dir, &rep);
  IT_CHECK_INT(t, rep.nproblems, ==, 1);
  IT_CHECK_INT(t, rep.problems[0].ignored, ==, 1);
  IT_CHECK_INT(t, rep.pending, ==, 3);
  natka__spool_report_free(&rep);
  natka__spool_close(sp, NULL, 0);
  IT_CHECK_INT(t, size_of(t, stray), ==, 13);
}

/* `natka spool ...` must exit 2 with stderr naming the problem. */
static void expect_usage(it_test *t, const char *tag, const char *a1,
                         const char *a2, const char *a3, const char *needle) {
  char *err = NULL;
  IT_CHECK_INT(t, spool_cmd(t, tag, a1, a2, a3, 0, 0, NULL, &err), ==, 2);
  IT_CHECK_HAS(t, err, needle);
  free(err);
}

static void command_line(it_test *t, const char *dir) {
  char *out = NULL;
  IT_CHECK_INT(t, spool_cmd(t, "help", "--help", 0, 0, 0, 0, &out, NULL), ==,
               0);
  IT_CHECK_HAS(t, out, "inspect DIR");
  IT_CHECK_HAS(t, out, "Examples:");
  free(out);
  IT_CHECK_INT(t,
               spool_cmd(t, "help_v", "verify", "--help", 0, 0, 0, &out, NULL),
               ==, 0);
  IT_CHECK_HAS(t, out, "Usage: natka spool verify DIR");
  free(out);
  expect_usage(t, "nocmd", "frobnicate", NULL, NULL, "unknown command");
  expect_usage(t, "nodir", "inspect", NULL, NULL, "no spool directory");
  expect_usage(t, "missing", "verify", "/nonexistent/spool", NULL,
               "'/nonexistent/spool' is not a directory");
  expect_usage(t, "limit", "inspect", dir, "--limit=x", "--limit");
  expect_usage(t, "option", "inspect", dir, "--bogus", "'--bogus'");
  expect_usage(t, "notapply", "verify", dir, "--json", "only applies");
  expect_usage(t, "noconf", "replay", dir, NULL, "-c FILE");
}

int main(int argc, char **argv) {
  it_test t;
  char dir[PATH_MAX + 16];
  it_init(&t, "spool", argc, argv, 0);
  snprintf(dir, sizeof(dir), "%s/spool", t.tmpdir);
  damaged_spool(&t, dir);
  stray_segment_name(&t, dir);
  command_line(&t, dir);
  return it_pass(&t);
}
