/*
 * The spool's verification at open: every segment file is read through,
 * record by record, to find where its good records end, whether what
 * follows is a torn tail (cut off) or damage (reported, the segment closed
 * to appends), and where reading resumes above the floor. The floor file is
 * checked here too. What was wrong goes into the natka__spool_report.
 */
#include "spool_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "natka/error.h"
#include "util.h"

#define HDR NATKA__SPOOL_HEADER_BYTES
#define SCAN_CHUNK ((size_t)1 << 20)

/* ------------------------------------------------------------ the report */

/* Returns the problem added (to set its flags), or NULL out of memory. */
static natka__spool_problem *
add_problem(natka__spool_report *rep, const char *path, uint64_t offset,
            uint64_t bytes, uint64_t before, int tail, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
static natka__spool_problem *add_problem(natka__spool_report *rep,
                                         const char *path, uint64_t offset,
                                         uint64_t bytes, uint64_t before,
                                         int tail, const char *fmt, ...) {
  natka__spool_problem *grown =
      realloc(rep->problems, (rep->nproblems + 1) * sizeof(*grown));
  if (grown == NULL)
    return NULL; /* the report is best effort; the spool is consistent */
  rep->problems = grown;
  natka__spool_problem *p = &grown[rep->nproblems];
  if ((p->path = natka__strdup(path)) == NULL)
    return NULL;
  p->offset = offset;
  p->bytes = bytes;
  p->records_before = before;
  p->tail = tail;
  p->floor_file = 0;
  p->ignored = 0;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->what, sizeof(p->what), fmt, ap);
  va_end(ap);
  rep->nproblems++;
  return p;
}

void natka__spool_report_free(natka__spool_report *r) {
  if (r == NULL)
    return;
  for (size_t i = 0; i < r->nproblems; i++)
    free(r->problems[i].path);
  free(r->problems);
  memset(r, 0, sizeof(*r));
}

/* ------------------------------------------------------------ scanning */

/* Buffered reads over one segment file for open's scan. */
typedef struct scanner {
  int fd;
  uint64_t size;
  unsigned char *buf;
  size_t cap;
  uint64_t off; /* file offset of buf[0] */
  size_t len;
} scanner;

/* Points *p at n bytes at file offset `at`: 1, 0 (the file is shorter) or
 * -1 (errno). */
static int scan_get(scanner *s, uint64_t at, size_t n,
                    const unsigned char **p) {
  if (at >= s->off && at + n <= s->off + s->len) {
    *p = s->buf + (at - s->off);
    return 1;
  }
  size_t want = n > SCAN_CHUNK ? n : SCAN_CHUNK;
  if (want > s->cap) {
    unsigned char *nb = realloc(s->buf, want);
    if (nb == NULL) {
      errno = ENOMEM;
      return -1;
    }
    s->buf = nb;
    s->cap = want;
  }
  size_t got = 0;
  while (got < want) {
    ssize_t r = pread(s->fd, s->buf + got, want - got, (off_t)(at + got));
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return -1;
    if (r == 0)
      break;
    got += (size_t)r;
  }
  s->off = at;
  s->len = got;
  if (got < n)
    return 0;
  *p = s->buf;
  return 1;
}

/* What is at `off`: 1 a good record (payload length in *len), 0 bad data
 * (why in `what`), -1 a read error (errno). expect 0: any sequence. */
static int examine(scanner *s, uint64_t off, uint64_t expect, uint32_t *len,
                   char *what, size_t wlen) {
  const unsigned char *p;
  unsigned char h[HDR];
  uint64_t left = s->size - off;
  if (left < HDR) {
    snprintf(what, wlen, "short header (%" PRIu64 " of %d bytes)", left, HDR);
    return 0;
  }
  int r = scan_get(s, off, HDR, &p);
  if (r <= 0) {
    snprintf(what, wlen, "file shrank while reading");
    return r;
  }
  memcpy(h, p, HDR);
  uint32_t n = natka__spool_get32(h + 4);
  uint64_t seq = natka__spool_get64(h + 8);
  if (memcmp(h, natka__spool_rec_magic, 4) != 0) {
    snprintf(what, wlen, "bad magic");
    return 0;
  }
  if (n > NATKA__SPOOL_MAX_RECORD) {
    snprintf(what, wlen, "implausible payload length %" PRIu32, n);
    return 0;
  }
  if (n > left - HDR) {
    snprintf(what, wlen,
             "short payload (%" PRIu32 " bytes declared, %" PRIu64 " present)",
             n, left - HDR);
    return 0;
  }
  if ((r = scan_get(s, off, HDR + (size_t)n, &p)) <= 0) {
    snprintf(what, wlen, "file shrank while reading");
    return r;
  }
  if (natka__spool_record_sum(h, p + HDR, n) != natka__spool_get64(h + 16)) {
    snprintf(what, wlen, "bad checksum (record of %" PRIu32 " bytes)", n);
    return 0;
  }
  if (seq == 0 || seq > NATKA__SPOOL_MAX_SEQ) {
    snprintf(what, wlen, "sequence %" PRIu64 " out of range (1..%" PRIu64 ")",
             seq, NATKA__SPOOL_MAX_SEQ);
    return 0;
  }
  if (expect != 0 && seq != expect) {
    snprintf(what, wlen, "sequence %" PRIu64 " where %" PRIu64 " was expected",
             seq, expect);
    return 0;
  }
  *len = n;
  return 1;
}

/* Whether a good record starts somewhere in [from, size): what tells bad
 * data in the middle of the newest segment from a torn tail. A torn tail
 * can be megabytes of zeros, hence memchr for the magic's first byte. */
static int probe(scanner *s, uint64_t from, uint64_t *found) {
  char what[128];
  uint32_t len;
  uint64_t at = from;
  while (at + HDR <= s->size) {
    const unsigned char *p, *hit;
    if (at < s->off || at + HDR > s->off + s->len) {
      uint64_t left = s->size - at;
      int r =
          scan_get(s, at, left < SCAN_CHUNK ? (size_t)left : SCAN_CHUNK, &p);
      if (r <= 0)
        return r;
    }
    /* Scan what the buffer holds; examine() refills it as it needs. */
    p = s->buf + (at - s->off);
    size_t n = (size_t)(s->off + s->len - at);
    if ((hit = memchr(p, natka__spool_rec_magic[0], n)) == NULL) {
      at += n;
      continue;
    }
    at += (uint64_t)(hit - p);
    int r = examine(s, at, 0, &len, what, sizeof(what));
    if (r != 0) {
      *found = at;
      return r;
    }
    at++;
  }
  return 0;
}

/*
 * Verifies one segment. `seen_next` is the sequence after the good records
 * of the segments before it; `last` says whether this is the newest one,
 * where bad data up to the end of the file is a torn tail and is cut off.
 */
static int scan_segment(natka__spool *sp, natka__spool_seg *sg, int last,
                        uint64_t seen_next, uint64_t floor,
                        natka__spool_report *rep, char *err, size_t errlen) {
  char path[PATH_MAX], what[128];
  scanner s = {.fd = -1};
  struct stat st;
  int rc = 0;
  natka__spool_segment_path(sp, sg->first, path, sizeof(path));
  s.fd = open(path, (sp->opts.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (s.fd < 0 || fstat(s.fd, &st) != 0) {
    rc = natka__spool_io_fail(err, errlen, "open", path, errno);
    goto done;
  }
  s.size = (uint64_t)st.st_size;
  sg->file_bytes = s.size;
  sg->start_off = UINT64_MAX;
  if (sg->first < seen_next) {
    sg->damaged = 1;
    add_problem(rep, path, 0, s.size, 0, 0,
                "starts at sequence %" PRIu64 ", which an older segment "
                "already holds: the whole segment is skipped",
                sg->first);
    goto done;
  }
  uint64_t off = 0;
  while (off < s.size) {
    uint32_t len;
    int r = examine(&s, off, sg->first + sg->count, &len, what, sizeof(what));
    if (r < 0) {
      rc = natka__spool_io_fail(err, errlen, "read", path, errno);
      goto done;
    }
    if (r == 0)
      break;
    if (sg->first + sg->count >= floor && sg->start_off == UINT64_MAX)
      sg->start_off = off;
    off += HDR + (uint64_t)len;
    sg->count++;
  }
  sg->valid = off;
  if (sg->start_off == UINT64_MAX)
    sg->start_off = off;
  if (off == s.size)
    goto done;

  uint64_t found = 0;
  int r = last ? probe(&s, off + 1, &found) : 1;
  if (r < 0) {
    rc = natka__spool_io_fail(err, errlen, "read", path, errno);
    goto done;
  }
  if (r == 0) {
    add_problem(rep, path, off, s.size - off, sg->count, 1, "%s", what);
    if (!sp->opts.read_only) {
      if (ftruncate(s.fd, (off_t)off) != 0 || fsync(s.fd) != 0) {
        rc = natka__spool_io_fail(err, errlen, "truncate", path, errno);
        goto done;
      }
      sg->file_bytes = off;
    }
  } else if (last) {
    sg->damaged = 1; /* new records go to a new natka__spool_seg */
    add_problem(rep, path, off, s.size - off, sg->count, 0,
                "%s; a good record follows at offset %" PRIu64, what, found);
  } else {
    sg->damaged = 1;
    add_problem(rep, path, off, s.size - off, sg->count, 0, "%s", what);
  }

done:
  if (s.fd >= 0)
    close(s.fd);
  free(s.buf);
  return rc;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/*
 * A file named like a segment whose name is no sequence natka hands out (0,
 * above NATKA__SPOOL_MAX_SEQ, above 2^64): no natka wrote it, so it holds
 * nothing natka accepted. Refusing to open would stop natka for good over a
 * stray file, and deleting it is not natka's call: it is reported (a warning
 * at every start, `natka spool verify` fails) and left alone.
 */
static void ignore_name(natka__spool *sp, natka__spool_report *rep,
                        const char *name) {
  char path[PATH_MAX];
  struct stat st;
  natka__spool_file_path(sp, name, path, sizeof(path));
  uint64_t size = stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
  natka__spool_problem *p =
      add_problem(rep, path, 0, size, 0, 0,
                  "name out of range (1..%" PRIu64 "): not natka's; ignored, "
                  "left on disk: move it away",
                  NATKA__SPOOL_MAX_SEQ);
  if (p != NULL)
    p->ignored = 1;
}

/* The first sequences of the segment files in the directory, sorted. */
static int list_segments(natka__spool *sp, natka__spool_report *rep,
                         uint64_t **out, size_t *n, char *err, size_t errlen) {
  DIR *d = opendir(sp->dir);
  uint64_t *v = NULL;
  size_t cap = 0;
  struct dirent *e;
  *n = 0;
  if (d == NULL)
    return natka__spool_io_fail(err, errlen, "list", sp->dir, errno);
  while ((e = readdir(d)) != NULL) {
    const char *nm = e->d_name;
    if (strlen(nm) != 24 || strspn(nm, "0123456789") != 20 ||
        strcmp(nm + 20, ".seg") != 0)
      continue;
    errno = 0;
    unsigned long long first = strtoull(nm, NULL, 10);
    if (errno == ERANGE || first == 0 || first > NATKA__SPOOL_MAX_SEQ) {
      ignore_name(sp, rep, nm);
      continue;
    }
    if (*n == cap) {
      cap = cap ? cap * 2 : 16;
      uint64_t *nv = realloc(v, cap * sizeof(*nv));
      if (nv == NULL) {
        free(v);
        closedir(d);
        return natka__errf(err, errlen, NATKA_ENOMEM, "out of memory");
      }
      v = nv;
    }
    v[(*n)++] = first;
  }
  closedir(d);
  if (*n > 0)
    qsort(v, *n, sizeof(*v), cmp_u64);
  *out = v;
  return 0;
}

/* ------------------------------------------------------------ open */

int natka__spool_read_floor(natka__spool *sp, natka__spool_report *rep,
                            uint64_t *floor, char *err, size_t errlen) {
  char path[PATH_MAX];
  unsigned char b[NATKA__SPOOL_MARK_BYTES + 1];
  *floor = 0;
  natka__spool_file_path(sp, "floor", path, sizeof(path));
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) {
    *floor = UINT64_MAX; /* none yet: a new spool */
    return 0;
  }
  if (fd < 0)
    return natka__spool_io_fail(err, errlen, "open", path, errno);
  ssize_t n = read(fd, b, sizeof(b));
  int e = errno;
  close(fd);
  if (n < 0)
    return natka__spool_io_fail(err, errlen, "read", path, e);
  int bad = n != NATKA__SPOOL_MARK_BYTES ||
            memcmp(b, natka__spool_floor_magic, 4) != 0 ||
            XXH64(b, 16, 0) != natka__spool_get64(b + 16);
  /* The floor is the first sequence not consumed: at most one past the
   * last sequence there can be. */
  uint64_t v = bad ? 0 : natka__spool_get64(b + 8);
  if (bad || v > NATKA__SPOOL_MAX_SEQ + 1) {
    natka__spool_problem *p =
        bad ? add_problem(rep, path, 0, (uint64_t)n, 0, 0,
                          "bad floor file (%zd bytes, bad magic or checksum)",
                          n)
            : add_problem(rep, path, 0, (uint64_t)n, 0, 0,
                          "bad floor file (floor %" PRIu64
                          " out of range, at most %" PRIu64 ")",
                          v, NATKA__SPOOL_MAX_SEQ + 1);
    if (p != NULL)
      p->floor_file = 1;
    return 0;
  }
  *floor = v;
  return 0;
}

uint64_t natka__spool_read_reserved(natka__spool *sp,
                                    natka__spool_report *rep) {
  char path[PATH_MAX];
  unsigned char b[NATKA__SPOOL_MARK_BYTES + 1];
  natka__spool_file_path(sp, "seq", path, sizeof(path));
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return 0;
  ssize_t n = read(fd, b, sizeof(b));
  int e = errno;
  close(fd);
  natka__spool_problem *p;
  if (n < 0) {
    p = add_problem(rep, path, 0, 0, 0, 0,
                    "cannot read the seq file (%s): ignored, a new one "
                    "replaces it",
                    strerror(e));
  } else if (n != NATKA__SPOOL_MARK_BYTES ||
             memcmp(b, natka__spool_seq_magic, 4) != 0 ||
             XXH64(b, 16, 0) != natka__spool_get64(b + 16)) {
    p = add_problem(rep, path, 0, (uint64_t)n, 0, 0,
                    "bad seq file (%zd bytes, bad magic or checksum): "
                    "ignored, a new one replaces it",
                    n);
  } else {
    uint64_t v = natka__spool_get64(b + 8);
    if (v <= NATKA__SPOOL_MAX_SEQ + 1)
      return v;
    p = add_problem(rep, path, 0, (uint64_t)n, 0, 0,
                    "bad seq file (reservation %" PRIu64 " out of range, up "
                    "to %" PRIu64 "): ignored, a new one replaces it",
                    v, NATKA__SPOOL_MAX_SEQ + 1);
  }
  if (p != NULL)
    p->ignored = 1;
  return 0;
}

/* Drops empty segments (a segment is created with its first record, so an
 * empty one is what a failed or torn first write leaves). */
static int drop_empty(natka__spool *sp, char *err, size_t errlen) {
  char path[PATH_MAX];
  size_t k = 0;
  for (size_t j = 0; j < sp->nsegs; j++) {
    if (sp->segs[j].file_bytes == 0) {
      natka__spool_segment_path(sp, sp->segs[j].first, path, sizeof(path));
      if (!sp->opts.read_only && unlink(path) != 0 && errno != ENOENT)
        return natka__spool_io_fail(err, errlen, "delete", path, errno);
      continue;
    }
    sp->segs[k++] = sp->segs[j];
  }
  sp->nsegs = k;
  return 0;
}

int natka__spool_scan_all(natka__spool *sp, uint64_t floor,
                          natka__spool_report *rep, char *err, size_t errlen) {
  uint64_t *firsts = NULL, seen_next = 0;
  size_t n = 0;
  int rc = list_segments(sp, rep, &firsts, &n, err, errlen);
  if (rc != 0)
    return rc;
  if (n > 0 && (sp->segs = calloc(n, sizeof(*sp->segs))) == NULL)
    rc = natka__errf(err, errlen, NATKA_ENOMEM, "out of memory");
  sp->cap = n;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    natka__spool_seg *sg = &sp->segs[sp->nsegs++];
    sg->first = firsts[i];
    rc = scan_segment(sp, sg, i + 1 == n, seen_next, floor, rep, err, errlen);
    sp->bytes += sg->file_bytes;
    if (sg->count > 0 && sg->first + sg->count > seen_next)
      seen_next = sg->first + sg->count;
  }
  free(firsts);
  if (rc == 0)
    rc = drop_empty(sp, err, errlen);
  return rc;
}
