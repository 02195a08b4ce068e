/*
 * A whole event as one spool record (the layout is in spool.h). Fixed-width
 * lengths rather than varints: the encoding is read back by natka alone,
 * records are small next to their payload, and unpacking stays a sequence
 * of bounds checks that cannot be misread.
 */
#include "spool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event_int.h"
#include "natka/error.h"

#define VERSION 1
#define F_ID 1
#define F_KIND 2
#define F_KEY 4

/* ------------------------------------------------------------ packing */

typedef struct writer {
  char *p;
} writer;

static void w_u32(writer *w, uint32_t v) {
  for (int i = 0; i < 4; i++)
    *w->p++ = (char)(v >> (8 * i));
}

static void w_bytes(writer *w, const void *b, size_t n) {
  w_u32(w, (uint32_t)n);
  if (n > 0)
    memcpy(w->p, b, n);
  w->p += n;
}

/* Adds 4 + n to *total; nonzero when n does not fit a u32 length. */
static int grow(size_t *total, size_t n) {
  if (n > UINT32_MAX || *total > SIZE_MAX - 4 - n)
    return 1;
  *total += 4 + n;
  return 0;
}

int natka__spool_event_pack(const natka_event *ev, char **buf, size_t *len) {
  size_t total = 2 + 8;
  int bad = 0;
  if (ev == NULL || buf == NULL || len == NULL)
    return NATKA_EINVAL;
  if (ev->id != NULL)
    bad |= grow(&total, strlen(ev->id));
  if (ev->kind != NULL)
    bad |= grow(&total, strlen(ev->kind));
  if (ev->key != NULL)
    bad |= grow(&total, ev->key_len);
  bad |= grow(&total, ev->data_len);
  bad |= grow(&total, 0); /* the header count */
  for (size_t i = 0; i < ev->nhdrs; i++)
    bad |=
        grow(&total, strlen(ev->hdrs[i].name)) | grow(&total, ev->hdrs[i].len);
  if (bad || ev->nhdrs > UINT32_MAX)
    return NATKA_EINVAL;
  char *b = malloc(total);
  if (b == NULL)
    return NATKA_ENOMEM;
  writer w = {b};
  *w.p++ = VERSION;
  *w.p++ = (char)((ev->id ? F_ID : 0) | (ev->kind ? F_KIND : 0) |
                  (ev->key ? F_KEY : 0));
  uint64_t ts = (uint64_t)ev->ts;
  for (int i = 0; i < 8; i++)
    *w.p++ = (char)(ts >> (8 * i));
  if (ev->id != NULL)
    w_bytes(&w, ev->id, strlen(ev->id));
  if (ev->kind != NULL)
    w_bytes(&w, ev->kind, strlen(ev->kind));
  if (ev->key != NULL)
    w_bytes(&w, ev->key, ev->key_len);
  w_bytes(&w, ev->data, ev->data_len);
  w_u32(&w, (uint32_t)ev->nhdrs);
  for (size_t i = 0; i < ev->nhdrs; i++) {
    w_bytes(&w, ev->hdrs[i].name, strlen(ev->hdrs[i].name));
    w_bytes(&w, ev->hdrs[i].value, ev->hdrs[i].len);
  }
  *buf = b;
  *len = total;
  return 0;
}

/* ------------------------------------------------------------ unpacking */

typedef struct reader {
  const unsigned char *p, *end;
} reader;

static int r_u32(reader *r, uint32_t *v) {
  if (r->end - r->p < 4)
    return -1;
  *v = 0;
  for (int i = 3; i >= 0; i--)
    *v = *v << 8 | r->p[i];
  r->p += 4;
  return 0;
}

/* A length-prefixed field, pointing into the buffer; `text` refuses NULs. */
static int r_field(reader *r, const char **out, size_t *n, int text) {
  uint32_t len;
  if (r_u32(r, &len) != 0 || (size_t)(r->end - r->p) < len)
    return -1;
  if (text && memchr(r->p, '\0', len) != NULL)
    return -1;
  *out = (const char *)r->p;
  *n = len;
  r->p += len;
  return 0;
}

/* The setters take C strings; the fields in the buffer are not terminated. */
static int set_text(natka_event *ev, const char *s, size_t n,
                    int (*set)(natka_event *, const char *)) {
  char *copy = malloc(n + 1);
  if (copy == NULL)
    return NATKA_ENOMEM;
  memcpy(copy, s, n);
  copy[n] = '\0';
  int rc = set(ev, copy);
  free(copy);
  return rc;
}

static int add_header(natka_event *ev, const char *name, size_t nlen,
                      const char *value, size_t vlen) {
  char *copy = malloc(nlen + 1);
  if (copy == NULL)
    return NATKA_ENOMEM;
  memcpy(copy, name, nlen);
  copy[nlen] = '\0';
  int rc = natka_event_add_header(ev, copy, value, vlen);
  free(copy);
  return rc;
}

static int decode(reader *r, natka_event *ev) {
  const char *s, *v;
  size_t n, vn;
  uint32_t nhdrs;
  int rc;
  if (r->end - r->p < 10 || r->p[0] != VERSION ||
      (r->p[1] & ~(F_ID | F_KIND | F_KEY)) != 0)
    return NATKA_EMALFORMED;
  unsigned flags = r->p[1];
  uint64_t ts = 0;
  for (int i = 7; i >= 0; i--)
    ts = ts << 8 | r->p[2 + i];
  r->p += 10;
  natka_event_set_ts(ev, (int64_t)ts);
  if (flags & F_ID) {
    if (r_field(r, &s, &n, 1) != 0)
      return NATKA_EMALFORMED;
    if ((rc = set_text(ev, s, n, natka_event_set_id)) != 0)
      return rc;
  }
  if (flags & F_KIND) {
    if (r_field(r, &s, &n, 1) != 0)
      return NATKA_EMALFORMED;
    if ((rc = set_text(ev, s, n, natka_event_set_kind)) != 0)
      return rc;
  }
  if (flags & F_KEY) {
    if (r_field(r, &s, &n, 0) != 0)
      return NATKA_EMALFORMED;
    if ((rc = natka_event_set_key(ev, s, n)) != 0)
      return rc;
  }
  if (r_field(r, &s, &n, 0) != 0)
    return NATKA_EMALFORMED;
  if ((rc = natka_event_set_data(ev, s, n)) != 0)
    return rc;
  /* Each header takes at least 8 bytes: a count beyond that is a lie, and
   * must not drive a loop (or an allocation) of its own size. */
  if (r_u32(r, &nhdrs) != 0 || nhdrs > (size_t)(r->end - r->p) / 8)
    return NATKA_EMALFORMED;
  for (uint32_t i = 0; i < nhdrs; i++) {
    if (r_field(r, &s, &n, 1) != 0 || n == 0 || r_field(r, &v, &vn, 0) != 0)
      return NATKA_EMALFORMED;
    if ((rc = add_header(ev, s, n, v, vn)) != 0)
      return rc;
  }
  return r->p == r->end ? 0 : NATKA_EMALFORMED;
}

int natka__spool_event_unpack(const void *buf, size_t len, natka_event **out) {
  natka_event *ev = NULL;
  if (out == NULL || (buf == NULL && len > 0))
    return NATKA_EINVAL;
  if (buf == NULL)
    return NATKA_EMALFORMED;
  int rc = natka_event_new(&ev);
  if (rc != 0)
    return rc;
  reader r = {buf, (const unsigned char *)buf + len};
  if ((rc = decode(&r, ev)) != 0) {
    natka_event_free(ev);
    return rc;
  }
  *out = ev;
  return 0;
}

int natka__spool_put_event(natka__spool *sp, const natka_event *ev,
                           uint64_t *seq, char *err, size_t errlen) {
  char *buf = NULL;
  size_t len = 0;
  int rc = natka__spool_event_pack(ev, &buf, &len);
  if (rc != 0) {
    if (err != NULL && errlen > 0)
      snprintf(err, errlen, "spool: cannot pack event: %s", natka_strerror(rc));
    return rc;
  }
  rc = natka__spool_append(sp, buf, len, seq, err, errlen);
  free(buf);
  return rc;
}
