/* Input reading and checks shared by the fuzz harnesses (fuzz_common.h). */
#include "fuzz_common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "natka/error.h"
#include "spool.h"

void fuzz_fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("fuzz: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  abort();
}

/* ---------------------------------------------------------- text input */

int fuzz_line(fuzz_text *t, const char **line, size_t *len) {
  *line = t->p;
  *len = 0;
  if (t->p >= t->end)
    return 0;
  const char *nl = memchr(t->p, '\n', (size_t)(t->end - t->p));
  const char *stop = nl != NULL ? nl : t->end;
  *len = (size_t)(stop - t->p);
  t->p = nl != NULL ? nl + 1 : t->end;
  return 1;
}

static int hex(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

char *fuzz_unescape(const char *s, size_t n, size_t *len) {
  char *out = malloc(n + 1);
  size_t o = 0;
  FUZZ_CHECK(out != NULL, "out of memory");
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == '\\' && i + 1 < n) {
      char e = s[i + 1];
      if (e == '\\' || e == 'n' || e == 'r' || e == '0') {
        c = e == 'n' ? '\n' : e == 'r' ? '\r' : e == '0' ? '\0' : '\\';
        i++;
      } else if (e == 'x' && i + 3 < n && hex(s[i + 2]) >= 0 &&
                 hex(s[i + 3]) >= 0) {
        c = (char)(hex(s[i + 2]) << 4 | hex(s[i + 3]));
        i += 3;
      }
    }
    out[o++] = c;
  }
  out[o] = '\0';
  if (len != NULL)
    *len = o;
  return out;
}

void fuzz_read_headers(fuzz_text *t, fuzz_headers *out) {
  const char *line;
  size_t len;
  out->n = 0;
  while (out->n < FUZZ_MAX_HEADERS && fuzz_line(t, &line, &len) && len > 0) {
    natka__wire_header *h = &out->h[out->n++];
    const char *colon = memchr(line, ':', len);
    size_t nlen = colon != NULL ? (size_t)(colon - line) : len;
    /* A name is a C string on both buses: an escaped NUL ends it. */
    h->name = fuzz_unescape(line, nlen, NULL);
    h->value = NULL;
    h->len = 0;
    if (colon != NULL) {
      const char *v = colon + 1, *end = line + len;
      if (v < end && *v == ' ')
        v++;
      h->value = fuzz_unescape(v, (size_t)(end - v), &h->len);
    }
  }
}

void fuzz_headers_free(fuzz_headers *h) {
  for (size_t i = 0; i < h->n; i++) {
    free((char *)h->h[i].name);
    free((char *)h->h[i].value);
  }
  h->n = 0;
}

/* ---------------------------------------------------------- checks */

static int same_text(const char *a, const char *b) {
  return (a == NULL && b == NULL) ||
         (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static int same_bytes(const char *a, size_t an, const char *b, size_t bn) {
  return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

static void check_same_key_data(const natka_event *a, const natka_event *b,
                                const char *what) {
  FUZZ_CHECK((a->key == NULL) == (b->key == NULL) &&
                 (a->key == NULL ||
                  same_bytes(a->key, a->key_len, b->key, b->key_len)),
             "%s: the key changed", what);
  FUZZ_CHECK(same_bytes(a->data, a->data_len, b->data, b->data_len),
             "%s: the data changed", what);
}

void fuzz_check_same_event(const natka_event *a, const natka_event *b,
                           const char *what) {
  FUZZ_CHECK(same_text(a->id, b->id), "%s: the id changed", what);
  FUZZ_CHECK(same_text(a->kind, b->kind), "%s: the kind changed", what);
  FUZZ_CHECK(a->ts == b->ts, "%s: ts %lld became %lld", what, (long long)a->ts,
             (long long)b->ts);
  check_same_key_data(a, b, what);
  FUZZ_CHECK(a->nhdrs == b->nhdrs, "%s: %zu headers became %zu", what, a->nhdrs,
             b->nhdrs);
  for (size_t i = 0; i < a->nhdrs; i++)
    FUZZ_CHECK(strcmp(a->hdrs[i].name, b->hdrs[i].name) == 0 &&
                   same_bytes(a->hdrs[i].value, a->hdrs[i].len,
                              b->hdrs[i].value, b->hdrs[i].len),
               "%s: header #%zu (%s) changed", what, i + 1, a->hdrs[i].name);
}

static void check_decoded_again(const natka_event *ev, const natka_event *back,
                                const char *what) {
  FUZZ_CHECK(same_text(ev->id, back->id), "%s: id '%s' came back as '%s'", what,
             ev->id, back->id);
  FUZZ_CHECK(ev->kind == NULL || same_text(ev->kind, back->kind),
             "%s: kind '%s' came back as '%s'", what, ev->kind, back->kind);
  FUZZ_CHECK(ev->ts == 0 || ev->ts == back->ts, "%s: ts %lld came back as %lld",
             what, (long long)ev->ts, (long long)back->ts);
  check_same_key_data(ev, back, what);
}

void fuzz_check_wire_round_trip(const natka_event *ev) {
  natka__wire_headers w = {0};
  natka_event *back = NULL;
  char err[256] = "";
  int rc;

  FUZZ_CHECK(natka__event_to_nats(ev, "natka://fuzz", &w) == 0,
             "event_to_nats failed");
  FUZZ_CHECK(natka_event_new(&back) == 0, "out of memory");
  rc = natka__event_from_nats(back, "fuzz.subject", w.h, w.n, ev->data,
                              ev->data_len, NULL, err, sizeof(err));
  FUZZ_CHECK(rc == 0, "natka's own NATS encoding is refused: %s: %s",
             natka_err_name(rc), err);
  check_decoded_again(ev, back, "NATS round trip");
  natka_event_free(back);
  natka__wire_headers_clear(&w);

  /* What sink_kafka.c produces: ev's key, data, ts in ms, and headers. */
  FUZZ_CHECK(natka__event_to_kafka(ev, "natka://fuzz", &w) == 0,
             "event_to_kafka failed");
  FUZZ_CHECK(natka_event_new(&back) == 0, "out of memory");
  rc =
      natka__event_from_kafka(back, ev->key, ev->key_len, ev->ts / 1000000, w.h,
                              w.n, ev->data, ev->data_len, err, sizeof(err));
  FUZZ_CHECK(rc == 0, "natka's own Kafka encoding is refused: %s: %s",
             natka_err_name(rc), err);
  check_decoded_again(ev, back, "Kafka round trip");
  natka_event_free(back);
  natka__wire_headers_clear(&w);
}

void fuzz_check_spool_round_trip(const natka_event *ev) {
  char *buf = NULL;
  size_t len = 0;
  natka_event *back = NULL;
  FUZZ_CHECK(natka__spool_event_pack(ev, &buf, &len) == 0,
             "spool_event_pack failed");
  int rc = natka__spool_event_unpack(buf, len, &back);
  FUZZ_CHECK(rc == 0, "natka's own spool record is refused: %s",
             natka_err_name(rc));
  fuzz_check_same_event(ev, back, "spool round trip");
  natka_event_free(back);
  free(buf);
}
