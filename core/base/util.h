/* Small helpers shared by the core's files. */
#ifndef NATKA_UTIL_H
#define NATKA_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Writes a message to err (errlen bytes, always NUL-terminated; err may be
 * NULL) and returns `code`, so failures read `return natka__errf(...)`. */
int natka__errf(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

char *natka__strdup(const char *s);
char *natka__memdup(const void *p, size_t len); /* adds a NUL after len */

int64_t natka__now_ns(void);  /* CLOCK_REALTIME */
int64_t natka__mono_ns(void); /* CLOCK_MONOTONIC */

/* A UUIDv7 (time-ordered) in canonical text form, 36 chars + NUL. Returns 0
 * or NATKA_EIO when the system random source fails. */
int natka__uuid7(char out[37]);

/* Writes to out (size >= 250) a legal Kafka topic name derived from `name`:
 * characters outside [A-Za-z0-9._-] become '_', cut to 249 chars; "" and the
 * reserved "." / ".." become "_". */
void natka__topic_from_name(const char *name, char *out, size_t outlen);

/* Whether `s` matches the glob `pattern`: '*' any run of characters
 * (including none), '?' one character, everything else itself. Iterative:
 * linear in practice, quadratic at worst, never recursive. */
int natka__glob_match(const char *pattern, const char *s);

/* Whether a NATS subject matches a subscription-style pattern: tokens split
 * by '.', '*' one token, '>' (last) one or more tokens. */
int natka__subject_match(const char *pattern, const char *subject);

#endif
