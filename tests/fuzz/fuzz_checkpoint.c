/*
 * The checkpoint record natka reads back at start (checkpoint.c) and the
 * position lists inside it (seqset.c), from the fuzzer. Whatever the bytes,
 * decoding either refuses them with a reason or gives a checkpoint that
 * natka's encoder writes back into a record that decodes the same; a list
 * that parses formats into one that parses to the same set.
 *
 * Input: the record's value, raw JSON, read for the instance "natka-a-EVENTS"
 * (a record written for another id is refused). The same bytes, up to a NUL,
 * are also parsed as a seqset ("1-500,502").
 */
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "fuzz_common.h"
#include "natka/error.h"
#include "seqset.h"

#define ID "natka-a-EVENTS"

static void check_same_set(const natka__seqset *a, const natka__seqset *b,
                           const char *what) {
  FUZZ_CHECK(a->n == b->n, "%s: %zu ranges became %zu", what, a->n, b->n);
  for (size_t i = 0; i < a->n; i++)
    FUZZ_CHECK(a->r[i].lo == b->r[i].lo && a->r[i].hi == b->r[i].hi,
               "%s: range #%zu changed", what, i + 1);
}

static void fuzz_seqset(const char *text) {
  natka__seqset s = {0}, again = {0};
  int rc = natka__seqset_parse(&s, text);
  FUZZ_CHECK(rc == 0 || rc == NATKA_EINVAL, "seqset_parse: %s",
             natka_err_name(rc));
  if (rc != 0) {
    FUZZ_CHECK(s.n == 0, "a refused list left ranges");
    return;
  }
  for (size_t i = 0; i < s.n; i++) {
    FUZZ_CHECK(s.r[i].lo <= s.r[i].hi, "range #%zu is upside down", i + 1);
    FUZZ_CHECK(
        i == 0 || (s.r[i].lo > s.r[i - 1].hi && s.r[i].lo - s.r[i - 1].hi >= 2),
        "ranges #%zu and #%zu touch or overlap", i, i + 1);
  }
  char *text2 = natka__seqset_format(&s);
  FUZZ_CHECK(text2 != NULL, "out of memory");
  rc = natka__seqset_parse(&again, text2);
  FUZZ_CHECK(rc == 0, "natka's own list '%.80s' is refused", text2);
  check_same_set(&s, &again, "seqset round trip");
  free(text2);
  natka__seqset_clear(&again);
  natka__seqset_clear(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  natka__checkpoint c = {0}, again = {0};
  char err[512] = "";
  int rc = natka__checkpoint_decode(&c, (const char *)data, size, ID, err,
                                    sizeof(err));
  FUZZ_CHECK(rc == 0 || rc == NATKA_EMALFORMED, "checkpoint_decode: %s: %s",
             natka_err_name(rc), err);
  if (rc != 0) {
    FUZZ_CHECK(c.n == 0 && err[0] != '\0', "refused without a reason");
  } else {
    char *json = natka__checkpoint_encode(&c, ID);
    FUZZ_CHECK(json != NULL, "out of memory");
    rc = natka__checkpoint_decode(&again, json, strlen(json), ID, err,
                                  sizeof(err));
    FUZZ_CHECK(rc == 0, "natka's own record is refused: %s", err);
    FUZZ_CHECK(again.n == c.n, "%zu sources became %zu", c.n, again.n);
    for (size_t i = 0; i < c.n; i++) {
      FUZZ_CHECK(strcmp(c.v[i].name, again.v[i].name) == 0 &&
                     c.v[i].floor == again.v[i].floor,
                 "source #%zu changed", i + 1);
      check_same_set(&c.v[i].done, &again.v[i].done, "checkpoint round trip");
    }
    free(json);
    natka__checkpoint_clear(&again);
  }
  natka__checkpoint_clear(&c);

  char *text = malloc(size + 1);
  FUZZ_CHECK(text != NULL, "out of memory");
  memcpy(text, data, size);
  text[size] = '\0';
  fuzz_seqset(text);
  free(text);
  return 0;
}
