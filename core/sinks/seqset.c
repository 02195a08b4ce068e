/*
 * Sorted disjoint ranges; see seqset.h. Additions land almost always at the
 * end or fill a hole next to a range, so the linear moves below are short.
 */
#include "seqset.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "natka/error.h"

static int reserve(natka__seqset *s, size_t n) {
  if (n <= s->cap)
    return 0;
  size_t cap = s->cap ? s->cap * 2 : 8;
  while (cap < n)
    cap *= 2;
  natka__seqrange *r = realloc(s->r, cap * sizeof(*r));
  if (r == NULL)
    return NATKA_ENOMEM;
  s->r = r;
  s->cap = cap;
  return 0;
}

/* Index of the first range whose hi >= pos (s->n when none). */
static size_t lower(const natka__seqset *s, uint64_t pos) {
  size_t lo = 0, hi = s->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (s->r[mid].hi < pos)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

int natka__seqset_has(const natka__seqset *s, uint64_t pos) {
  size_t i = lower(s, pos);
  return i < s->n && s->r[i].lo <= pos;
}

int natka__seqset_add(natka__seqset *s, uint64_t pos) {
  size_t i = lower(s, pos);
  if (i < s->n && s->r[i].lo <= pos)
    return 0;
  int joins_prev = i > 0 && s->r[i - 1].hi + 1 == pos;
  int joins_next = i < s->n && pos + 1 == s->r[i].lo;
  if (joins_prev && joins_next) {
    s->r[i - 1].hi = s->r[i].hi;
    memmove(s->r + i, s->r + i + 1, (s->n - i - 1) * sizeof(*s->r));
    s->n--;
  } else if (joins_prev) {
    s->r[i - 1].hi = pos;
  } else if (joins_next) {
    s->r[i].lo = pos;
  } else {
    if (reserve(s, s->n + 1) != 0)
      return NATKA_ENOMEM;
    memmove(s->r + i + 1, s->r + i, (s->n - i) * sizeof(*s->r));
    s->r[i] = (natka__seqrange){pos, pos};
    s->n++;
  }
  return 0;
}

void natka__seqset_prune(natka__seqset *s, uint64_t floor) {
  size_t i = lower(s, floor + 1 == 0 ? floor : floor + 1);
  if (i < s->n && s->r[i].lo <= floor)
    s->r[i].lo = floor + 1;
  memmove(s->r, s->r + i, (s->n - i) * sizeof(*s->r));
  s->n -= i;
}

int natka__seqset_copy(natka__seqset *dst, const natka__seqset *src) {
  natka__seqset c = {0};
  if (src->n > 0) {
    if (reserve(&c, src->n) != 0)
      return NATKA_ENOMEM;
    memcpy(c.r, src->r, src->n * sizeof(*c.r));
    c.n = src->n;
  }
  natka__seqset_move(dst, &c);
  return 0;
}

void natka__seqset_move(natka__seqset *dst, natka__seqset *src) {
  free(dst->r);
  *dst = *src;
  memset(src, 0, sizeof(*src));
}

void natka__seqset_clear(natka__seqset *s) {
  free(s->r);
  memset(s, 0, sizeof(*s));
}

char *natka__seqset_format(const natka__seqset *s) {
  size_t cap = s->n * 42 + 1, len = 0;
  char *buf = malloc(cap);
  if (buf == NULL)
    return NULL;
  buf[0] = '\0';
  for (size_t i = 0; i < s->n; i++) {
    const natka__seqrange *r = &s->r[i];
    int w =
        r->lo == r->hi
            ? snprintf(buf + len, cap - len, "%s%" PRIu64, i ? "," : "", r->lo)
            : snprintf(buf + len, cap - len, "%s%" PRIu64 "-%" PRIu64,
                       i ? "," : "", r->lo, r->hi);
    len += (size_t)w;
  }
  return buf;
}

/* Decimal digits only, within uint64. Not strtoull: it takes a sign, blanks
 * and "0x", and turns an overflow into UINT64_MAX, which in a checkpoint
 * reads as "everything is committed" and would ack events never produced. */
static int parse_u64(const char **p, uint64_t *out) {
  const char *s = *p;
  uint64_t v = 0;
  if (*s < '0' || *s > '9')
    return -1;
  for (; *s >= '0' && *s <= '9'; s++) {
    unsigned d = (unsigned)(*s - '0');
    if (v > (UINT64_MAX - d) / 10)
      return -1;
    v = v * 10 + d;
  }
  *p = s;
  *out = v;
  return 0;
}

int natka__seqset_parse_pos(const char *text, uint64_t *pos) {
  const char *p = text;
  uint64_t v;
  if (parse_u64(&p, &v) != 0 || *p != '\0')
    return NATKA_EINVAL;
  *pos = v;
  return 0;
}

int natka__seqset_parse(natka__seqset *s, const char *text) {
  const char *p = text;
  natka__seqset out = {0};
  while (*p != '\0') {
    uint64_t lo, hi;
    if (parse_u64(&p, &lo) != 0)
      goto bad;
    hi = lo;
    if (*p == '-') {
      p++;
      if (parse_u64(&p, &hi) != 0 || hi < lo)
        goto bad;
    }
    /* Ranges come sorted and apart (lo > prev.hi + 1, asked without the
     * + 1, which wraps at UINT64_MAX); anything else is not ours. */
    if (out.n > 0 &&
        (lo <= out.r[out.n - 1].hi || lo - out.r[out.n - 1].hi < 2))
      goto bad;
    if (reserve(&out, out.n + 1) != 0) {
      natka__seqset_clear(&out);
      return NATKA_ENOMEM;
    }
    out.r[out.n++] = (natka__seqrange){lo, hi};
    if (*p == ',' && p[1] != '\0')
      p++;
    else if (*p != '\0')
      goto bad;
  }
  natka__seqset_move(s, &out);
  return 0;
bad:
  natka__seqset_clear(&out);
  return NATKA_EINVAL;
}
