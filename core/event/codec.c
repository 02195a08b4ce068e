/*
 * CloudEvents binary content mode on NATS and Kafka (see codec.h for the
 * mapping table).
 *
 * Decoding builds a fresh event and swaps it into the caller's only when
 * everything succeeded, so a rejected message leaves `ev` empty. Encoding
 * appends to the caller's list and truncates back to where it started on
 * failure.
 */
#include "codec.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "natka/error.h"
#include "util.h"

#define NS_PER_SEC INT64_C(1000000000)
#define NS_PER_MS INT64_C(1000000)

/* The value of natka-key-b64 for an empty key. nats.c trims header values
 * and rejects empty ones when parsing, so "" would not survive the bus. */
#define EMPTY_KEY_B64 "="

/* What an inbound natka-* header is renamed to: "x-natka-error". */
#define UNTRUSTED_PREFIX "x-"

/* ---- small text helpers ---------------------------------------------- */

/* ASCII-only so the result does not depend on the process locale. */
static int lower(int c) {
  return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static int name_eq(const char *a, const char *b) {
  for (; *a != '\0' && *b != '\0'; a++, b++) {
    if (lower((unsigned char)*a) != lower((unsigned char)*b))
      return 0;
  }
  return *a == *b;
}

static int has_prefix(const char *s, const char *prefix) {
  for (; *prefix != '\0'; s++, prefix++) {
    if (lower((unsigned char)*s) != lower((unsigned char)*prefix))
      return 0;
  }
  return 1;
}

/* Attributes carried by event fields. A header of the same name inside an
 * event (set by a rule) is not written: the field wins, and writing both
 * would produce a duplicate the decoder rejects. On Kafka "ce-x" and "ce_x"
 * end up as the same name, so both spellings count there. */
static const char *const owned_attrs[] = {"specversion", "id", "type", "time",
                                          "partitionkey"};

static int is_owned_name(const char *name, int kafka) {
  if (name_eq(name, "natka-key-b64"))
    return 1;
  if (!has_prefix(name, "ce-") && !(kafka && has_prefix(name, "ce_")))
    return 0;
  for (size_t i = 0; i < sizeof(owned_attrs) / sizeof(owned_attrs[0]); i++) {
    if (name_eq(name + 3, owned_attrs[i]))
      return 1;
  }
  return 0;
}

/* Whether nats.c carries `p` unchanged as a header value: non-empty valid
 * UTF-8 without control characters, and no leading or trailing space
 * (nats.c trims both when it parses a message). */
static int is_nats_text(const unsigned char *p, size_t len) {
  if (len == 0 || p[0] == ' ' || p[len - 1] == ' ')
    return 0;
  for (size_t i = 0; i < len;) {
    unsigned char c = p[i];
    if (c < 0x80) {
      if (c < 0x20 || c == 0x7f)
        return 0;
      i++;
      continue;
    }
    size_t n;
    uint32_t cp, min;
    if ((c & 0xe0) == 0xc0) {
      n = 2, cp = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
      n = 3, cp = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
      n = 4, cp = c & 0x07, min = 0x10000;
    } else {
      return 0;
    }
    if (len - i < n)
      return 0;
    for (size_t k = 1; k < n; k++) {
      if ((p[i + k] & 0xc0) != 0x80)
        return 0;
      cp = (cp << 6) | (p[i + k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ||
        (cp >= 0x80 && cp < 0xa0))
      return 0;
    i += n;
  }
  return 1;
}

int natka__nats_control_name(const char *name) {
  return has_prefix(name, "Nats-");
}

/* "<prefix><name>", malloc'd; NULL when out of memory. */
static char *prefixed(const char *prefix, const char *name) {
  size_t a = strlen(prefix), b = strlen(name);
  char *s = malloc(a + b + 1);
  if (s != NULL) {
    memcpy(s, prefix, a);
    memcpy(s + a, name, b + 1);
  }
  return s;
}

/* ---- base64 (RFC 4648, padded) ---------------------------------------- */

static const char b64_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *b64_encode(const unsigned char *in, size_t len, size_t *out_len) {
  if (len == 0) {
    *out_len = sizeof(EMPTY_KEY_B64) - 1;
    return natka__strdup(EMPTY_KEY_B64);
  }
  if (len > (SIZE_MAX - 1) / 4 * 3 - 3)
    return NULL;
  size_t n = (len + 2) / 3 * 4;
  char *out = malloc(n + 1);
  if (out == NULL)
    return NULL;
  char *o = out;
  for (size_t i = 0; i < len; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16;
    if (i + 1 < len)
      v |= (uint32_t)in[i + 1] << 8;
    if (i + 2 < len)
      v |= in[i + 2];
    *o++ = b64_chars[(v >> 18) & 63];
    *o++ = b64_chars[(v >> 12) & 63];
    *o++ = i + 1 < len ? b64_chars[(v >> 6) & 63] : '=';
    *o++ = i + 2 < len ? b64_chars[v & 63] : '=';
  }
  *o = '\0';
  *out_len = n;
  return out;
}

static int b64_value(unsigned char c) {
  const char *p = c != '\0' ? strchr(b64_chars, c) : NULL;
  return p != NULL ? (int)(p - b64_chars) : -1;
}

/* Strict: whole quads, padding only at the end. */
static int b64_decode(const char *in, size_t len, char **out, size_t *out_len) {
  *out = NULL;
  if (len == sizeof(EMPTY_KEY_B64) - 1 && memcmp(in, EMPTY_KEY_B64, len) == 0)
    len = 0;
  if (len % 4 != 0)
    return NATKA_EMALFORMED;
  size_t pad = 0;
  if (len > 0 && in[len - 1] == '=')
    pad = len > 1 && in[len - 2] == '=' ? 2 : 1;
  char *buf = malloc(len / 4 * 3 + 1);
  if (buf == NULL)
    return NATKA_ENOMEM;
  size_t n = 0;
  for (size_t i = 0; i < len; i += 4) {
    int last = i + 4 == len;
    uint32_t v = 0;
    for (size_t k = 0; k < 4; k++) {
      int d = last && k >= 4 - pad ? 0 : b64_value((unsigned char)in[i + k]);
      if (d < 0) {
        free(buf);
        return NATKA_EMALFORMED;
      }
      v = (v << 6) | (uint32_t)d;
    }
    buf[n++] = (char)(v >> 16);
    if (!last || pad < 2)
      buf[n++] = (char)(v >> 8);
    if (!last || pad < 1)
      buf[n++] = (char)v;
  }
  buf[n] = '\0';
  *out = buf;
  *out_len = n;
  return 0;
}

/* ---- RFC 3339 ---------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date, and back (Howard
 * Hinnant's era-based algorithms, exact for every int64 ns timestamp). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int *y, int *m, int *d) {
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  *d = (int)(doy - (153 * mp + 2) / 5 + 1);
  *m = (int)(mp < 10 ? mp + 3 : mp - 9);
  *y = (int)(yoe + era * 400 + (*m <= 2));
}

static int days_in_month(int y, int m) {
  static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : days[m - 1];
}

/* Reads exactly n digits; returns -1 when one is missing. */
static int read_digits(const char **p, int n) {
  int v = 0;
  for (int i = 0; i < n; i++, (*p)++) {
    if (**p < '0' || **p > '9')
      return -1;
    v = v * 10 + (**p - '0');
  }
  return v;
}

static int expect(const char **p, char c) {
  if (lower((unsigned char)**p) != lower((unsigned char)c))
    return 0;
  (*p)++;
  return 1;
}

int natka__rfc3339_parse(const char *s, int64_t *ts_ns) {
  if (s == NULL || ts_ns == NULL)
    return NATKA_EMALFORMED;
  const char *p = s;
  int y = read_digits(&p, 4);
  int mo = expect(&p, '-') ? read_digits(&p, 2) : -1;
  int d = expect(&p, '-') ? read_digits(&p, 2) : -1;
  int h = expect(&p, 'T') ? read_digits(&p, 2) : -1;
  int mi = expect(&p, ':') ? read_digits(&p, 2) : -1;
  int sec = expect(&p, ':') ? read_digits(&p, 2) : -1;
  if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) ||
      h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 60)
    return NATKA_EMALFORMED;

  int64_t frac = 0;
  if (*p == '.') {
    int digits = 0;
    for (p++; *p >= '0' && *p <= '9'; p++, digits++) {
      if (digits == 9)
        return NATKA_EMALFORMED;
      frac = frac * 10 + (*p - '0');
    }
    if (digits == 0)
      return NATKA_EMALFORMED;
    for (; digits < 9; digits++)
      frac *= 10;
  }

  int64_t offset = 0;
  if (*p == '+' || *p == '-') {
    int sign = *p++ == '-' ? -1 : 1;
    int oh = read_digits(&p, 2);
    int om = expect(&p, ':') ? read_digits(&p, 2) : -1;
    if (oh < 0 || oh > 23 || om < 0 || om > 59)
      return NATKA_EMALFORMED;
    offset = sign * (oh * 3600 + om * 60);
  } else if (!expect(&p, 'Z')) {
    return NATKA_EMALFORMED;
  }
  if (*p != '\0')
    return NATKA_EMALFORMED;

  int64_t secs =
      days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset;
  /* Before the epoch, borrow one second so the partial products stay in
   * range down to INT64_MIN itself. */
  if (secs < 0 && frac > 0) {
    secs++;
    frac -= NS_PER_SEC;
  }
  if (secs > INT64_MAX / NS_PER_SEC || secs < INT64_MIN / NS_PER_SEC)
    return NATKA_EMALFORMED;
  if ((secs > 0 && secs * NS_PER_SEC > INT64_MAX - frac) ||
      (secs < 0 && secs * NS_PER_SEC < INT64_MIN - frac))
    return NATKA_EMALFORMED;
  *ts_ns = secs * NS_PER_SEC + frac;
  return 0;
}

void natka__rfc3339_format(int64_t ts_ns, char buf[48]) {
  int64_t secs = ts_ns / NS_PER_SEC;
  int64_t ns = ts_ns % NS_PER_SEC;
  if (ns < 0) {
    ns += NS_PER_SEC;
    secs--;
  }
  int64_t days = secs / 86400;
  int64_t rem = secs % 86400;
  if (rem < 0) {
    rem += 86400;
    days--;
  }
  int y, m, d;
  civil_from_days(days, &y, &m, &d);
  int n = snprintf(buf, 48, "%04d-%02d-%02dT%02d:%02d:%02d", y, m, d,
                   (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60));
  if (ns == 0)
    snprintf(buf + n, (size_t)(48 - n), "Z");
  else if (ns % NS_PER_MS == 0)
    snprintf(buf + n, (size_t)(48 - n), ".%03dZ", (int)(ns / NS_PER_MS));
  else if (ns % 1000 == 0)
    snprintf(buf + n, (size_t)(48 - n), ".%06dZ", (int)(ns / 1000));
  else
    snprintf(buf + n, (size_t)(48 - n), ".%09dZ", (int)ns);
}

/* ---- wire header lists ----------------------------------------------- */

/* Drops the entries appended since `n0`: the undo step of an encoder. */
static void wire_truncate(natka__wire_headers *w, size_t n0) {
  for (size_t i = n0; i < w->n; i++) {
    free((char *)w->h[i].name);
    free((char *)w->h[i].value);
  }
  w->n = n0;
}

void natka__wire_headers_clear(natka__wire_headers *w) {
  if (w == NULL)
    return;
  wire_truncate(w, 0);
  free(w->h);
  *w = (natka__wire_headers){0};
}

/* Appends a header, copying both strings. When `underscore_ce` is set, a
 * leading "ce-" of the name is written "ce_" (Kafka's CloudEvents binding). */
static int wire_add(natka__wire_headers *w, const char *name, const void *value,
                    size_t len, int underscore_ce) {
  if (w->n == w->cap) {
    size_t cap = w->cap == 0 ? 16 : w->cap * 2;
    if (cap < w->cap || cap > SIZE_MAX / sizeof(*w->h))
      return NATKA_ENOMEM;
    natka__wire_header *h = realloc(w->h, cap * sizeof(*h));
    if (h == NULL)
      return NATKA_ENOMEM;
    w->h = h;
    w->cap = cap;
  }
  char *n = natka__strdup(name);
  char *v = natka__memdup(value, len);
  if (n == NULL || v == NULL) {
    free(n);
    free(v);
    return NATKA_ENOMEM;
  }
  if (underscore_ce && has_prefix(n, "ce-"))
    n[2] = '_';
  w->h[w->n++] = (natka__wire_header){.name = n, .value = v, .len = len};
  return 0;
}

static int wire_add_text(natka__wire_headers *w, const char *name,
                         const char *value) {
  return wire_add(w, name, value, strlen(value), 0);
}

static int has_source_header(const natka_event *ev, int kafka) {
  for (size_t i = 0; i < ev->nhdrs; i++) {
    if (name_eq(ev->hdrs[i].name, "ce-source") ||
        (kafka && name_eq(ev->hdrs[i].name, "ce_source")))
      return 1;
  }
  return 0;
}

/* Where an attribute header was found in the input: first index, or -1. */
typedef struct attr {
  const char *name;
  long at;
} attr;

/* Locates each attribute header (case-insensitively) and rejects a second
 * occurrence: with two ce-id values there is no right one to pick. */
static int find_attrs(const natka__wire_header *hdrs, size_t nhdrs, attr *a,
                      size_t na, char *err, size_t errlen) {
  for (size_t k = 0; k < na; k++) {
    size_t count = 0;
    a[k].at = -1;
    for (size_t i = 0; i < nhdrs; i++) {
      if (!name_eq(hdrs[i].name, a[k].name))
        continue;
      if (count++ == 0)
        a[k].at = (long)i;
    }
    if (count > 1)
      return natka__errf(err, errlen, NATKA_EMALFORMED,
                         "header %s given %zu times", a[k].name, count);
  }
  return 0;
}

static int is_attr_index(const attr *a, size_t na, size_t i) {
  for (size_t k = 0; k < na; k++) {
    if (a[k].at == (long)i)
      return 1;
  }
  return 0;
}

/* CloudEvents requires id and type to be non-empty strings; a NUL inside
 * would silently cut them short. */
static int set_text_attr(natka_event *ev, const natka__wire_header *h,
                         int (*set)(natka_event *, const char *), char *err,
                         size_t errlen) {
  if (h->len == 0 || memchr(h->value, '\0', h->len) != NULL)
    return natka__errf(err, errlen, NATKA_EMALFORMED,
                       "header %s: empty or not text", h->name);
  char *s = natka__memdup(h->value, h->len);
  if (s == NULL)
    return NATKA_ENOMEM;
  int rc = set(ev, s);
  free(s);
  return rc;
}

static int set_time_attr(natka_event *ev, const natka__wire_header *h,
                         char *err, size_t errlen) {
  char buf[64];
  int64_t ts = 0;
  /* An empty value may come as NULL (a Kafka null header): no memchr. */
  int ok = h->len > 0 && h->len < sizeof(buf) &&
           memchr(h->value, '\0', h->len) == NULL;
  if (ok) {
    memcpy(buf, h->value, h->len);
    buf[h->len] = '\0';
    ok = natka__rfc3339_parse(buf, &ts) == 0;
  }
  if (!ok)
    return natka__errf(err, errlen, NATKA_EMALFORMED,
                       "header %s: not an RFC 3339 time: '%.*s'", h->name,
                       (int)(h->len < 64 ? h->len : 64),
                       h->len > 0 ? h->value : "");
  natka_event_set_ts(ev, ts);
  return 0;
}

static int set_generated_id(natka_event *ev) {
  char uuid[37];
  int rc = natka__uuid7(uuid);
  return rc != 0 ? rc : natka_event_set_id(ev, uuid);
}

static int check_names(const natka__wire_header *hdrs, size_t nhdrs, char *err,
                       size_t errlen) {
  for (size_t i = 0; i < nhdrs; i++) {
    if (hdrs[i].name == NULL || hdrs[i].name[0] == '\0')
      return natka__errf(err, errlen, NATKA_EMALFORMED,
                         "header #%zu has no name", i + 1);
    if (hdrs[i].value == NULL && hdrs[i].len > 0)
      return natka__errf(err, errlen, NATKA_EINVAL,
                         "header %s: NULL value of length %zu", hdrs[i].name,
                         hdrs[i].len);
  }
  return 0;
}

/* Moves the freshly decoded `tmp` into the caller's event and frees what
 * was there (nothing, by contract, but never leak it). */
static void adopt(natka_event *ev, natka_event *tmp) {
  natka_event old = *ev;
  *ev = *tmp;
  *tmp = old;
  natka_event_free(tmp);
}

/* ---- decoding ----------------------------------------------------------- */

/* What a decoder gets besides the headers; the defaults differ by bus. */
typedef struct wire_in {
  const natka__wire_header *hdrs;
  size_t nhdrs;
  const void *data;
  size_t len;
  const char *kind;       /* without ce-type: the NATS subject */
  const char *default_id; /* without ce-id or Nats-Msg-Id */
  const void *key;        /* Kafka's record key; NATS keys are headers */
  size_t key_len;
  int64_t ts_ms; /* Kafka's record timestamp; <= 0: unknown */
  int kafka;
} wire_in;

enum { A_ID, A_TYPE, A_TIME, A_PKEY, A_PKEY_B64, A_ALL };

static long first_msg_id(const natka__wire_header *hdrs, size_t nhdrs) {
  for (size_t i = 0; i < nhdrs; i++) {
    if (name_eq(hdrs[i].name, "Nats-Msg-Id") && hdrs[i].len > 0)
      return (long)i;
  }
  return -1;
}

static int decode_key(natka_event *e, const wire_in *in, const attr *a,
                      char *err, size_t errlen) {
  if (a[A_PKEY].at >= 0) {
    const natka__wire_header *h = &in->hdrs[a[A_PKEY].at];
    return natka_event_set_key(e, h->len > 0 ? h->value : "", h->len);
  }
  if (a[A_PKEY_B64].at < 0)
    return in->key != NULL ? natka_event_set_key(e, in->key, in->key_len) : 0;
  const natka__wire_header *h = &in->hdrs[a[A_PKEY_B64].at];
  char *key = NULL;
  size_t key_len = 0;
  int rc = b64_decode(h->len > 0 ? h->value : "", h->len, &key, &key_len);
  if (rc == NATKA_EMALFORMED)
    return natka__errf(err, errlen, rc, "header %s: not base64", h->name);
  if (rc == 0)
    rc = natka_event_set_key(e, key, key_len);
  free(key);
  return rc;
}

static int decode(natka_event *ev, const wire_in *in, char *err,
                  size_t errlen) {
  const natka__wire_header *hdrs = in->hdrs;
  attr a[A_ALL] = {{in->kafka ? "ce_id" : "ce-id", -1},
                   {in->kafka ? "ce_type" : "ce-type", -1},
                   {in->kafka ? "ce_time" : "ce-time", -1},
                   {"ce-partitionkey", -1},
                   {"natka-key-b64", -1}};
  const char *spec = in->kafka ? "ce_specversion" : "ce-specversion";
  natka_event *e = NULL;
  char *name = NULL;
  int rc;

  if (ev == NULL || (hdrs == NULL && in->nhdrs > 0) ||
      (in->data == NULL && in->len > 0))
    return natka__errf(err, errlen, NATKA_EINVAL, "invalid argument");
  /* On Kafka the key is the record's, so its headers are not looked at. */
  if ((rc = check_names(hdrs, in->nhdrs, err, errlen)) != 0 ||
      (rc = find_attrs(hdrs, in->nhdrs, a, in->kafka ? A_PKEY : A_ALL, err,
                       errlen)) != 0)
    return rc;
  if (a[A_PKEY].at >= 0 && a[A_PKEY_B64].at >= 0)
    return natka__errf(err, errlen, NATKA_EMALFORMED,
                       "headers ce-partitionkey and natka-key-b64 both given");
  if ((rc = natka_event_new(&e)) != 0)
    return rc;

  long msg_id = in->kafka ? -1 : first_msg_id(hdrs, in->nhdrs);
  if (a[A_ID].at >= 0)
    rc = set_text_attr(e, &hdrs[a[A_ID].at], natka_event_set_id, err, errlen);
  else if (msg_id >= 0)
    rc = set_text_attr(e, &hdrs[msg_id], natka_event_set_id, err, errlen);
  else if (in->default_id != NULL)
    rc = natka_event_set_id(e, in->default_id);
  else
    rc = set_generated_id(e);
  if (rc != 0)
    goto fail;

  if (a[A_TYPE].at >= 0)
    rc = set_text_attr(e, &hdrs[a[A_TYPE].at], natka_event_set_kind, err,
                       errlen);
  else
    rc = natka_event_set_kind(e, in->kind);
  if (rc != 0)
    goto fail;

  /* ce_time keeps the nanoseconds the Kafka timestamp rounds away. */
  if (a[A_TIME].at >= 0)
    rc = set_time_attr(e, &hdrs[a[A_TIME].at], err, errlen);
  else if (in->ts_ms > 0 && in->ts_ms <= INT64_MAX / NS_PER_MS)
    natka_event_set_ts(e, in->ts_ms * NS_PER_MS);
  else
    natka_event_set_ts(e, natka__now_ns());
  if (rc != 0 || (rc = decode_key(e, in, a, err, errlen)) != 0 ||
      (rc = natka_event_set_data(e, in->data, in->len)) != 0)
    goto fail;

  size_t id_len = strlen(e->id);
  for (size_t i = 0; i < in->nhdrs; i++) {
    const natka__wire_header *h = &hdrs[i];
    /* Nats-Msg-Id repeating the id is JetStream's dedup copy of it; one
     * that differs carries information and stays. */
    if (is_attr_index(a, A_ALL, i) || name_eq(h->name, spec) ||
        (!in->kafka && name_eq(h->name, "Nats-Msg-Id") && h->len == id_len &&
         (id_len == 0 || memcmp(h->value, e->id, id_len) == 0)))
      continue;
    const char *n = h->name;
    if (has_prefix(n, "natka-")) {
      /* Only natka writes natka-* headers: one that arrives is data
       * from whoever published it, kept under another name so that
       * nothing downstream (dlq replay, an auditor) takes it for
       * natka's own. */
      if ((name = prefixed(UNTRUSTED_PREFIX, n)) == NULL) {
        rc = NATKA_ENOMEM;
        goto fail;
      }
      n = name;
    } else if (in->kafka && has_prefix(n, "ce_")) {
      if ((name = natka__strdup(n)) == NULL) {
        rc = NATKA_ENOMEM;
        goto fail;
      }
      name[2] = '-';
      n = name;
    }
    /* librdkafka hands a null header value over as NULL, length 0. */
    rc = natka_event_add_header(e, n, h->len > 0 ? h->value : "", h->len);
    free(name);
    name = NULL;
    if (rc != 0)
      goto fail;
  }

  adopt(ev, e);
  return 0;

fail:
  natka_event_free(e);
  return rc;
}

int natka__event_from_nats(natka_event *ev, const char *subject,
                           const natka__wire_header *hdrs, size_t nhdrs,
                           const void *data, size_t len, const char *default_id,
                           char *err, size_t errlen) {
  wire_in in = {.hdrs = hdrs,
                .nhdrs = nhdrs,
                .data = data,
                .len = len,
                .kind = subject,
                .default_id = default_id};
  return decode(ev, &in, err, errlen);
}

int natka__event_from_kafka(natka_event *ev, const void *key, size_t key_len,
                            int64_t ts_ms, const natka__wire_header *hdrs,
                            size_t nhdrs, const void *data, size_t len,
                            char *err, size_t errlen) {
  wire_in in = {.hdrs = hdrs,
                .nhdrs = nhdrs,
                .data = data,
                .len = len,
                .key = key,
                .key_len = key_len,
                .ts_ms = ts_ms,
                .kafka = 1};
  return decode(ev, &in, err, errlen);
}

/* ---- encoding ----------------------------------------------------------- */

/* Both buses carry the same attribute block; only the name separator
 * differs ("ce-id" / "ce_id"). The key and Nats-Msg-Id are NATS's business:
 * on Kafka they are the record key and nothing. */
static int encode(const natka_event *ev, const char *source, int kafka,
                  natka__wire_headers *out) {
  static const char *const nats_names[] = {"ce-specversion", "ce-id", "ce-type",
                                           "ce-time", "ce-source"};
  static const char *const kafka_names[] = {"ce_specversion", "ce_id",
                                            "ce_type", "ce_time", "ce_source"};
  const char *const *name = kafka ? kafka_names : nats_names;
  if (ev == NULL || out == NULL)
    return NATKA_EINVAL;
  size_t n0 = out->n;
  char when[48];
  char *b64 = NULL;
  int rc = wire_add_text(out, name[0], "1.0");
  if (rc == 0 && ev->id != NULL)
    rc = wire_add_text(out, name[1], ev->id);
  if (rc == 0 && ev->kind != NULL)
    rc = wire_add_text(out, name[2], ev->kind);
  if (rc == 0 && ev->ts != 0) {
    natka__rfc3339_format(ev->ts, when);
    rc = wire_add_text(out, name[3], when);
  }
  if (rc == 0 && source != NULL && !has_source_header(ev, kafka))
    rc = wire_add_text(out, name[4], source);
  if (rc == 0 && !kafka && ev->key != NULL) {
    if (is_nats_text((const unsigned char *)ev->key, ev->key_len)) {
      rc = wire_add(out, "ce-partitionkey", ev->key, ev->key_len, 0);
    } else {
      size_t b64_len = 0;
      b64 = b64_encode((const unsigned char *)ev->key, ev->key_len, &b64_len);
      rc = b64 == NULL ? NATKA_ENOMEM
                       : wire_add(out, "natka-key-b64", b64, b64_len, 0);
    }
  }
  if (rc == 0 && !kafka && ev->id != NULL)
    rc = wire_add_text(out, "Nats-Msg-Id", ev->id);
  for (size_t i = 0; rc == 0 && i < ev->nhdrs; i++) {
    const natka__header *h = &ev->hdrs[i];
    if (is_owned_name(h->name, kafka))
      continue;
    if (!kafka && natka__nats_control_name(h->name)) {
      /* An event's Nats-* header is data (a publisher's): under its own
       * name it would steer the stream this publish lands in. */
      char *n = prefixed(UNTRUSTED_PREFIX, h->name);
      rc = n == NULL ? NATKA_ENOMEM : wire_add(out, n, h->value, h->len, 0);
      free(n);
    } else {
      rc = wire_add(out, h->name, h->value, h->len, kafka);
    }
  }
  free(b64);
  if (rc != 0)
    wire_truncate(out, n0);
  return rc;
}

int natka__event_to_nats(const natka_event *ev, const char *source,
                         natka__wire_headers *out) {
  return encode(ev, source, 0, out);
}

int natka__event_to_kafka(const natka_event *ev, const char *source,
                          natka__wire_headers *out) {
  return encode(ev, source, 1, out);
}
