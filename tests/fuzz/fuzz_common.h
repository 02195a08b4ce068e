/*
 * What the fuzz harnesses share: reading their input, and the checks they
 * make beyond "does not crash" (a failed check aborts, which libFuzzer
 * reports as a crash and saves the input).
 *
 * Each harness is tests/fuzz/fuzz_<target>.c and defines
 * LLVMFuzzerTestOneInput (and LLVMFuzzerInitialize when it needs set-up).
 * The fuzz build (-DNATKA_FUZZ=ON, clang) links them with libFuzzer; any other
 * build links them with replay.c instead, which runs them over their corpus
 * (tests/fuzz/corpus/<target>/) as regression tests.
 *
 * The text inputs (codec, nats_msg) are lines; a field that takes bytes
 * reads the escapes \\ \n \r \0 and \xHH, so that any byte can be written
 * in a seed, while the fuzzer is free to put raw bytes anywhere.
 */
#ifndef NATKA_FUZZ_COMMON_H
#define NATKA_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "event_int.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Prints "fuzz: <message>" and aborts. */
void fuzz_fail(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

#define FUZZ_CHECK(cond, ...)                                                  \
  do {                                                                         \
    if (!(cond))                                                               \
      fuzz_fail(__VA_ARGS__);                                                  \
  } while (0)

/* ---------------------------------------------------------- text input */

typedef struct fuzz_text {
  const char *p, *end;
} fuzz_text;

/* The next line, without its '\n'. Returns 0 (and an empty line) at the end
 * of the input. */
int fuzz_line(fuzz_text *t, const char **line, size_t *len);

/* A malloc'd, NUL-terminated copy of s[0..n) with its escapes decoded;
 * *len (may be NULL) receives its length. Aborts when out of memory. */
char *fuzz_unescape(const char *s, size_t n, size_t *len);

/* Wire headers read from lines "name: value" up to an empty line or the end.
 * "name:" is an empty value; "name" without a colon a NULL one (a Kafka null
 * header). At most FUZZ_MAX_HEADERS. */
#define FUZZ_MAX_HEADERS 64
typedef struct fuzz_headers {
  natka__wire_header h[FUZZ_MAX_HEADERS];
  size_t n;
} fuzz_headers;
void fuzz_read_headers(fuzz_text *t, fuzz_headers *out);
void fuzz_headers_free(fuzz_headers *h);

/* ---------------------------------------------------------- checks */

/* Every field and header of a and b is the same. */
void fuzz_check_same_event(const natka_event *a, const natka_event *b,
                           const char *what);

/* An event natka decoded from a bus survives its own encoders: encoded for
 * NATS and decoded again, and encoded for Kafka and decoded again, it has
 * the same id, kind (when set), key, data and time (when set). */
void fuzz_check_wire_round_trip(const natka_event *ev);

/* Packed into a spool record and unpacked, ev comes back the same. */
void fuzz_check_spool_round_trip(const natka_event *ev);

#endif
