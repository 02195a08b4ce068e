#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "natka/error.h"

int natka__errf(char *err, size_t errlen, int code, const char *fmt, ...) {
  if (err != NULL && errlen > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return code;
}

char *natka__strdup(const char *s) {
  return s == NULL ? NULL : natka__memdup(s, strlen(s));
}

char *natka__memdup(const void *p, size_t len) {
  char *out = malloc(len + 1);
  if (out == NULL)
    return NULL;
  if (len > 0)
    memcpy(out, p, len);
  out[len] = '\0';
  return out;
}

static int64_t clock_ns(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t natka__now_ns(void) {
  return clock_ns(CLOCK_REALTIME);
}
int64_t natka__mono_ns(void) {
  return clock_ns(CLOCK_MONOTONIC);
}

int natka__uuid7(char out[37]) {
  unsigned char b[16];
  if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
    return NATKA_EIO;
  uint64_t ms = (uint64_t)(natka__now_ns() / 1000000);
  for (int i = 0; i < 6; i++)
    b[i] = (unsigned char)(ms >> (40 - 8 * i));
  b[6] = (unsigned char)(0x70 | (b[6] & 0x0f)); /* version 7 */
  b[8] = (unsigned char)(0x80 | (b[8] & 0x3f)); /* RFC 4122 variant */
  static const char hex[] = "0123456789abcdef";
  char *p = out;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10)
      *p++ = '-';
    *p++ = hex[b[i] >> 4];
    *p++ = hex[b[i] & 0x0f];
  }
  *p = '\0';
  return 0;
}

void natka__topic_from_name(const char *name, char *out, size_t outlen) {
  size_t n = 0;
  if (outlen == 0)
    return;
  for (const char *s = name;
       s != NULL && *s != '\0' && n + 1 < outlen && n < 249; s++) {
    char c = *s;
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
             (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    out[n++] = ok ? c : '_';
  }
  out[n] = '\0';
  if (n == 0 || strcmp(out, ".") == 0 || strcmp(out, "..") == 0)
    snprintf(out, outlen, "_");
}

int natka__glob_match(const char *p, const char *s) {
  const char *star = NULL, *resume = NULL;
  while (*s != '\0') {
    if (*p == '*') {
      star = p++;
      resume = s;
    } else if (*p == '?' || *p == *s) {
      p++;
      s++;
    } else if (star != NULL) {
      p = star + 1;
      s = ++resume;
    } else {
      return 0;
    }
  }
  while (*p == '*')
    p++;
  return *p == '\0';
}

int natka__subject_match(const char *p, const char *s) {
  for (;;) {
    size_t pl = strcspn(p, "."), sl = strcspn(s, ".");
    if (pl == 1 && *p == '>')
      return p[1] == '\0' && sl > 0;
    if (sl == 0 ||
        !((pl == 1 && *p == '*') || (pl == sl && memcmp(p, s, pl) == 0)))
      return 0;
    p += pl;
    s += sl;
    if (*p == '\0' || *s == '\0')
      return *p == '\0' && *s == '\0';
    p++;
    s++;
  }
}
