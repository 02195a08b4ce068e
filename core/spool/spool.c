/*
 * The disk spool's storage engine: segment files of checksummed records, a
 * read cursor with out-of-order acks, and the persisted consumed floor. The
 * format and the guarantees are described in spool.h.
 *
 * In memory the spool keeps one small entry per segment (its first
 * sequence, how many good records it holds and how many bytes they take),
 * never one per record: records of a segment have consecutive sequence
 * numbers, so a position is (segment, offset, sequence). Only the records
 * read and not yet acked are listed one by one (the "outstanding" window,
 * bounded by the reader's credit).
 */
#include "spool_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <xxhash.h>

#include "natka/error.h"
#include "util.h"

#define HDR NATKA__SPOOL_HEADER_BYTES
#define DEFAULT_MAX_BYTES ((uint64_t)1 << 30)
#define DEFAULT_SEGMENT_BYTES ((uint64_t)64 << 20)

const unsigned char natka__spool_rec_magic[4] = {'N', 'K', 'S', '1'};
const unsigned char natka__spool_floor_magic[4] = {'N', 'K', 'F', '1'};
const unsigned char natka__spool_seq_magic[4] = {'N', 'K', 'R', '1'};

/* Sequences are reserved on disk this many at a time (see reserve()). */
#define RESERVE_STEP ((uint64_t)1 << 20)

/* ------------------------------------------------------------ helpers */

static void put32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}
static void put64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}
uint32_t natka__spool_get32(const unsigned char *p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}
uint64_t natka__spool_get64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

uint64_t natka__spool_record_sum(const unsigned char *hdr, const void *payload,
                                 size_t len) {
  return XXH64(len > 0 ? payload : "", len, XXH64(hdr, 16, 0));
}

void natka__spool_file_path(const natka__spool *sp, const char *name, char *buf,
                            size_t len) {
  snprintf(buf, len, "%s/%s", sp->dir, name);
}

void natka__spool_segment_path(const natka__spool *sp, uint64_t segment,
                               char *buf, size_t len) {
  snprintf(buf, len, "%s/%020" PRIu64 ".seg", sp->dir, segment);
}

const char *natka__spool_dir(const natka__spool *sp) {
  return sp->dir;
}

void natka__spool_set_notify(natka__spool *sp, void (*cb)(void *data),
                             void *data) {
  sp->notify = cb;
  sp->notify_data = data;
}

int natka__spool_fsync_parse(const char *s, natka__spool_fsync *out) {
  static const char *const names[] = {"always", "interval", "never"};
  for (int i = 0; s != NULL && i < 3; i++)
    if (strcmp(s, names[i]) == 0) {
      *out = (natka__spool_fsync)i;
      return 0;
    }
  return NATKA_EINVAL;
}

int natka__spool_io_fail(char *err, size_t errlen, const char *what,
                         const char *path, int e) {
  return natka__errf(err, errlen, NATKA_EIO, "spool: cannot %s %s: %s", what,
                     path, strerror(e));
}

static int pread_full(int fd, void *buf, size_t n, uint64_t off) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = pread(fd, (char *)buf + got, n - got, (off_t)(off + got));
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0) {
      if (r == 0)
        errno = EIO; /* shorter than open saw: treat as a read error */
      return -1;
    }
    got += (size_t)r;
  }
  return 0;
}

static int pwritev_full(int fd, struct iovec *iov, int n, uint64_t off) {
  while (n > 0) {
    ssize_t r = pwritev(fd, iov, n, (off_t)off);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return -1;
    off += (uint64_t)r;
    while (n > 0 && (size_t)r >= iov->iov_len) {
      r -= (ssize_t)iov->iov_len;
      iov++;
      n--;
    }
    if (n > 0) {
      iov->iov_base = (char *)iov->iov_base + r;
      iov->iov_len -= (size_t)r;
    }
  }
  return 0;
}

static int fsync_dir(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  int rc = fsync(fd);
  close(fd);
  return rc;
}

static int write_mark(natka__spool *sp, const char *name,
                      const unsigned char magic[4], uint64_t value, char *err,
                      size_t errlen);

static int write_floor(natka__spool *sp, uint64_t floor, char *err,
                       size_t errlen) {
  return write_mark(sp, "floor", natka__spool_floor_magic, floor, err, errlen);
}

/*
 * A sequence number is never handed out twice, even when an OS crash takes
 * records that were never synced: checkpoints (txn.c) name delivered records
 * by sequence, and a new record under a delivered one's number would be
 * taken for it. So sequences are reserved durably, RESERVE_STEP at a time,
 * and an open continues above the reservation.
 */
static int reserve(natka__spool *sp, char *err, size_t errlen) {
  if (sp->next_seq < sp->reserved)
    return 0;
  uint64_t upto = sp->next_seq + RESERVE_STEP; /* no wrap: see spool.h */
  if (upto > NATKA__SPOOL_MAX_SEQ + 1)
    upto = NATKA__SPOOL_MAX_SEQ + 1;
  int rc = write_mark(sp, "seq", natka__spool_seq_magic, upto, err, errlen);
  if (rc == 0)
    sp->reserved = upto;
  return rc;
}

/* Writes <dir>/<name>: magic, 4 zero bytes, value, XXH64 of the first 16
 * bytes; atomically (temp file, fsync, rename, directory fsync). */
static int write_mark(natka__spool *sp, const char *name,
                      const unsigned char magic[4], uint64_t value, char *err,
                      size_t errlen) {
  char tmp[PATH_MAX], path[PATH_MAX], tname[32];
  unsigned char b[NATKA__SPOOL_MARK_BYTES] = {0};
  memcpy(b, magic, 4);
  put64(b + 8, value);
  put64(b + 16, XXH64(b, 16, 0));
  snprintf(tname, sizeof(tname), "%s.tmp", name);
  natka__spool_file_path(sp, tname, tmp, sizeof(tmp));
  natka__spool_file_path(sp, name, path, sizeof(path));
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0)
    return natka__spool_io_fail(err, errlen, "create", tmp, errno);
  struct iovec iov = {b, sizeof(b)};
  if (pwritev_full(fd, &iov, 1, 0) != 0 || fsync(fd) != 0) {
    int e = errno;
    close(fd);
    unlink(tmp);
    return natka__spool_io_fail(err, errlen, "write", tmp, e);
  }
  close(fd);
  if (rename(tmp, path) != 0) {
    int e = errno;
    unlink(tmp);
    return natka__spool_io_fail(err, errlen, "rename to", path, e);
  }
  if (fsync_dir(sp->dir) != 0)
    return natka__spool_io_fail(err, errlen, "fsync", sp->dir, errno);
  return 0;
}

static int make_dirs(const char *dir) {
  char tmp[PATH_MAX];
  struct stat st;
  snprintf(tmp, sizeof(tmp), "%s", dir);
  for (char *p = tmp + 1; *p != '\0'; p++) {
    if (*p != '/')
      continue;
    *p = '\0';
    if (mkdir(tmp, 0750) != 0 && errno != EEXIST)
      return -1;
    *p = '/';
  }
  if (mkdir(tmp, 0750) != 0 && errno != EEXIST)
    return -1;
  if (stat(tmp, &st) != 0)
    return -1;
  if (!S_ISDIR(st.st_mode)) {
    errno = ENOTDIR;
    return -1;
  }
  return 0;
}

/* Read-only: whether a writer holds the lock right now. */
static int lock_held(const natka__spool *sp) {
  char path[PATH_MAX];
  natka__spool_file_path(sp, "lock", path, sizeof(path));
  int fd = open(path, O_RDONLY | O_CLOEXEC), held = 0;
  if (fd >= 0) {
    held = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    close(fd); /* releases a shared lock we got */
  }
  return held;
}

/* One writer per directory: a second natka on the same spool would
 * interleave records and sequences. The pid is for the message only. */
static int take_lock(natka__spool *sp, char *err, size_t errlen) {
  char path[PATH_MAX], pid[32] = "";
  natka__spool_file_path(sp, "lock", path, sizeof(path));
  sp->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (sp->lock_fd < 0)
    return natka__spool_io_fail(err, errlen, "open", path, errno);
  if (flock(sp->lock_fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK)
      return natka__spool_io_fail(err, errlen, "lock", path, errno);
    ssize_t n = pread(sp->lock_fd, pid, sizeof(pid) - 1, 0);
    pid[n > 0 ? n : 0] = '\0';
    pid[strcspn(pid, "\n")] = '\0';
    return natka__errf(err, errlen, NATKA_EBUSY,
                       "spool: %s is in use by another process (pid %s)",
                       sp->dir, pid[0] ? pid : "unknown");
  }
  int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
  if (ftruncate(sp->lock_fd, 0) != 0 ||
      pwrite(sp->lock_fd, pid, (size_t)n, 0) != n)
    return natka__spool_io_fail(err, errlen, "write", path, errno);
  return 0;
}

/* ------------------------------------------------------------ positions */

static void close_rfd(natka__spool *sp) {
  if (sp->rfd >= 0)
    close(sp->rfd);
  sp->rfd = -1;
}

/* The sequence of the next record the cursor will read (whether or not it
 * has been appended yet). */
static uint64_t cursor_seq(const natka__spool *sp) {
  if (sp->cur_idx < sp->nsegs) {
    if (sp->cur_off < sp->segs[sp->cur_idx].valid)
      return sp->cur_seq;
    for (size_t j = sp->cur_idx + 1; j < sp->nsegs; j++)
      if (sp->segs[j].count > 0)
        return sp->segs[j].first;
  }
  return sp->next_seq;
}

static uint64_t floor_now(const natka__spool *sp) {
  return sp->out_n > 0 ? sp->outs[sp->out_head].seq : cursor_seq(sp);
}

/* Leaves the segments the cursor has read to the end, except the newest. */
static void advance(natka__spool *sp) {
  while (sp->cur_idx + 1 < sp->nsegs &&
         sp->cur_off >= sp->segs[sp->cur_idx].valid) {
    close_rfd(sp);
    sp->cur_idx++;
    sp->cur_off = 0;
    sp->cur_seq = sp->segs[sp->cur_idx].first;
  }
}

/* Puts the cursor at the end of everything (nothing to read). */
static void cursor_at_end(natka__spool *sp) {
  close_rfd(sp);
  sp->cur_idx = sp->nsegs > 0 ? sp->nsegs - 1 : 0;
  sp->cur_off = sp->nsegs > 0 ? sp->segs[sp->cur_idx].valid : 0;
  sp->cur_seq = sp->next_seq;
}

/* Deletes the oldest segments whose records are all below the persisted
 * floor; the newest one too, so a drained spool takes no space. */
static int drop_consumed(natka__spool *sp, char *err, size_t errlen) {
  char path[PATH_MAX];
  int dropped = 0;
  while (sp->nsegs > 0 &&
         sp->segs[0].first + sp->segs[0].count <= sp->floor_disk) {
    natka__spool_segment_path(sp, sp->segs[0].first, path, sizeof(path));
    if (unlink(path) != 0 && errno != ENOENT)
      return natka__spool_io_fail(err, errlen, "delete", path, errno);
    dropped = 1;
    sp->bytes -= sp->segs[0].file_bytes;
    if (sp->nsegs == 1 && sp->afd >= 0) {
      close(sp->afd);
      sp->afd = -1;
    }
    memmove(sp->segs, sp->segs + 1, (sp->nsegs - 1) * sizeof(*sp->segs));
    sp->nsegs--;
    /* Every record of it is below the floor, so the cursor was past them. */
    if (sp->cur_idx == 0) {
      close_rfd(sp);
      sp->cur_off = 0;
      sp->cur_seq = sp->nsegs > 0 ? sp->segs[0].first : sp->next_seq;
    } else {
      sp->cur_idx--;
    }
  }
  if (dropped && fsync_dir(sp->dir) != 0)
    return natka__spool_io_fail(err, errlen, "fsync", sp->dir, errno);
  return 0;
}

static uint64_t unread(const natka__spool *sp) {
  uint64_t n = 0;
  for (size_t j = sp->cur_idx; j < sp->nsegs; j++) {
    const natka__spool_seg *sg = &sp->segs[j];
    if (j > sp->cur_idx)
      n += sg->count;
    else if (sp->cur_off < sg->valid)
      n += sg->first + sg->count - sp->cur_seq;
  }
  return n;
}

void natka__spool_get_stats(const natka__spool *sp, natka__spool_stats *st) {
  memset(st, 0, sizeof(*st));
  st->outstanding = sp->out_unacked;
  st->pending = unread(sp) + sp->out_unacked;
  for (size_t j = 0; j < sp->nsegs; j++)
    st->records += sp->segs[j].count;
  st->bytes = sp->bytes;
  st->max_bytes = sp->opts.max_bytes;
  st->floor = floor_now(sp);
  st->next_seq = sp->next_seq;
  st->segments = sp->nsegs;
}

/* ------------------------------------------------------------ open/close */

/* After the scan: where appends continue, and where reading starts. */
static void place(natka__spool *sp, uint64_t floor) {
  sp->next_seq = floor > 1 ? floor : 1;
  for (size_t j = 0; j < sp->nsegs; j++) {
    const natka__spool_seg *sg = &sp->segs[j];
    uint64_t end = sg->first + (sg->damaged && sg->count == 0 ? 1 : sg->count);
    if (end > sp->next_seq)
      sp->next_seq = end;
  }
  for (size_t j = 0; j < sp->nsegs; j++) {
    const natka__spool_seg *sg = &sp->segs[j];
    if (sg->count > 0 && sg->first + sg->count > floor) {
      sp->cur_idx = j;
      sp->cur_off = sg->start_off;
      sp->cur_seq = floor > sg->first ? floor : sg->first;
      return;
    }
  }
  cursor_at_end(sp);
}

int natka__spool_open(natka__spool **out, const char *dir,
                      const natka__spool_opts *opts,
                      natka__spool_report *report, char *err, size_t errlen) {
  natka__spool_report rep = {0};
  struct stat st;
  uint64_t floor = 0;
  int rc;
  if (report != NULL)
    memset(report, 0, sizeof(*report));
  if (out == NULL || dir == NULL || dir[0] == '\0' || opts == NULL)
    return natka__errf(err, errlen, NATKA_EINVAL, "spool: no directory given");
  if (strlen(dir) + 32 >= PATH_MAX)
    return natka__errf(err, errlen, NATKA_EINVAL, "spool: path too long: %s",
                       dir);
  natka__spool *sp = calloc(1, sizeof(*sp));
  if (sp == NULL || (sp->dir = natka__strdup(dir)) == NULL) {
    free(sp);
    return natka__errf(err, errlen, NATKA_ENOMEM, "out of memory");
  }
  sp->opts = *opts;
  if (sp->opts.max_bytes == 0)
    sp->opts.max_bytes = DEFAULT_MAX_BYTES;
  if (sp->opts.segment_bytes == 0)
    sp->opts.segment_bytes = DEFAULT_SEGMENT_BYTES;
  sp->lock_fd = sp->afd = sp->rfd = -1;

  if (sp->opts.read_only) {
    int e = stat(dir, &st) != 0 ? errno : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
    if (e != 0) {
      rc =
          natka__spool_io_fail(err, errlen, "open the spool directory", dir, e);
      goto fail;
    }
    rep.in_use = lock_held(sp);
  } else {
    char tmp[PATH_MAX];
    if (make_dirs(dir) != 0) {
      rc = natka__spool_io_fail(err, errlen, "create the spool directory", dir,
                                errno);
      goto fail;
    }
    if ((rc = take_lock(sp, err, errlen)) != 0)
      goto fail;
    natka__spool_file_path(sp, "floor.tmp", tmp, sizeof(tmp));
    unlink(tmp); /* a floor write that a crash interrupted */
    natka__spool_file_path(sp, "seq.tmp", tmp, sizeof(tmp));
    unlink(tmp);
  }
  if ((rc = natka__spool_read_floor(sp, &rep, &floor, err, errlen)) != 0)
    goto fail;
  /* No floor file means nothing consumed, the same as a floor at the oldest
   * record: nothing to write until it moves. A bad one is rewritten. */
  int no_file = floor == UINT64_MAX;
  if (no_file)
    floor = 0;
  if ((rc = natka__spool_scan_all(sp, floor, &rep, err, errlen)) != 0)
    goto fail;
  place(sp, floor);
  /* Read-only too, so that verify reports what a writer's open would. */
  uint64_t reserved = natka__spool_read_reserved(sp, &rep);
  if (!sp->opts.read_only) {
    if (reserved > sp->next_seq) { /* what a lost tail may have used */
      sp->next_seq = reserved;
      sp->seq_gap = 1;
      if (sp->cur_idx >= sp->nsegs ||
          sp->cur_off >= sp->segs[sp->cur_idx].valid)
        sp->cur_seq = sp->next_seq;
    }
    sp->reserved = reserved;
  }
  sp->floor_disk = no_file ? floor_now(sp) : floor;
  if (!sp->opts.read_only && (rc = drop_consumed(sp, err, errlen)) != 0)
    goto fail;

  natka__spool_stats s;
  natka__spool_get_stats(sp, &s);
  rep.segments = s.segments;
  rep.records = s.records;
  rep.pending = s.pending;
  rep.floor = s.floor;
  rep.bytes = s.bytes;
  if (report != NULL)
    *report = rep;
  else
    natka__spool_report_free(&rep);
  sp->opened = 1;
  *out = sp;
  return 0;

fail:
  natka__spool_report_free(&rep);
  natka__spool_close(sp, NULL, 0);
  return rc;
}

int natka__spool_close(natka__spool *sp, char *err, size_t errlen) {
  if (sp == NULL)
    return 0;
  int rc = sp->opened ? natka__spool_sync(sp, err, errlen) : 0;
  /* Synced: every sequence handed out is on disk, so the next open may go
   * on right after them instead of above the reservation. */
  if (rc == 0 && sp->opened && !sp->opts.read_only &&
      sp->reserved > sp->next_seq)
    rc = write_mark(sp, "seq", natka__spool_seq_magic, sp->next_seq, err,
                    errlen);
  if (sp->afd >= 0)
    close(sp->afd);
  close_rfd(sp);
  if (sp->lock_fd >= 0)
    close(sp->lock_fd); /* releases the flock */
  free(sp->segs);
  free(sp->outs);
  free(sp->dir);
  free(sp);
  return rc;
}

/* ------------------------------------------------------------ writing */

/* Starts the segment that the record with sequence next_seq opens. */
static int new_segment(natka__spool *sp, char *err, size_t errlen) {
  char path[PATH_MAX];
  if (sp->nsegs == sp->cap) {
    size_t cap = sp->cap ? sp->cap * 2 : 8;
    natka__spool_seg *ns = realloc(sp->segs, cap * sizeof(*ns));
    if (ns == NULL)
      return natka__errf(err, errlen, NATKA_ENOMEM, "out of memory");
    sp->segs = ns;
    sp->cap = cap;
  }
  if (sp->afd >= 0) {
    if (sp->unsynced && fdatasync(sp->afd) != 0) {
      natka__spool_segment_path(sp, sp->segs[sp->nsegs - 1].first, path,
                                sizeof(path));
      return natka__spool_io_fail(err, errlen, "fsync", path, errno);
    }
    sp->unsynced = 0;
    close(sp->afd);
    sp->afd = -1;
  }
  natka__spool_segment_path(sp, sp->next_seq, path, sizeof(path));
  sp->afd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
  if (sp->afd < 0)
    return natka__spool_io_fail(err, errlen, "create", path, errno);
  if (sp->opts.fsync != NATKA__SPOOL_FSYNC_NEVER && fsync_dir(sp->dir) != 0) {
    int e = errno;
    close(sp->afd);
    sp->afd = -1;
    unlink(path);
    return natka__spool_io_fail(err, errlen, "fsync", sp->dir, e);
  }
  sp->segs[sp->nsegs++] = (natka__spool_seg){.first = sp->next_seq};
  return 0;
}

int natka__spool_append(natka__spool *sp, const void *data, size_t len,
                        uint64_t *seq, char *err, size_t errlen) {
  char path[PATH_MAX];
  unsigned char h[HDR];
  int rc;
  if (sp == NULL || sp->opts.read_only)
    return natka__errf(err, errlen, NATKA_EINVAL, "spool: opened read-only");
  if (len > NATKA__SPOOL_MAX_RECORD)
    return natka__errf(err, errlen, NATKA_EINVAL,
                       "spool: a record of %zu bytes is over the %zu limit",
                       len, NATKA__SPOOL_MAX_RECORD);
  uint64_t size = HDR + (uint64_t)len;
  if (sp->next_seq > NATKA__SPOOL_MAX_SEQ)
    return natka__errf(
        err, errlen, NATKA_EIO,
        "spool: %s has used every sequence number (up to %" PRIu64
        "): it takes no more records; let natka deliver what "
        "it holds, then point spool.dir at a new, empty "
        "directory",
        sp->dir, NATKA__SPOOL_MAX_SEQ);
  if (sp->bytes + size > sp->opts.max_bytes)
    return natka__errf(err, errlen, NATKA_EBUSY,
                       "spool: %s is full (%" PRIu64
                       " of spool.max_bytes %" PRIu64 " bytes used, %" PRIu64
                       " more needed)",
                       sp->dir, sp->bytes, sp->opts.max_bytes, size);
  if ((rc = reserve(sp, err, errlen)) != 0)
    return rc;
  natka__spool_seg *last = sp->nsegs > 0 ? &sp->segs[sp->nsegs - 1] : NULL;
  if (last == NULL || last->damaged || sp->seq_gap ||
      (last->file_bytes > 0 &&
       last->file_bytes + size > sp->opts.segment_bytes)) {
    if ((rc = new_segment(sp, err, errlen)) != 0)
      return rc;
    sp->seq_gap = 0;
    last = &sp->segs[sp->nsegs - 1];
  }
  natka__spool_segment_path(sp, last->first, path, sizeof(path));
  if (sp->afd < 0 && (sp->afd = open(path, O_RDWR | O_CLOEXEC)) < 0)
    return natka__spool_io_fail(err, errlen, "open", path, errno);
  if (sp->dirty_tail) {
    if (ftruncate(sp->afd, (off_t)last->file_bytes) != 0)
      return natka__spool_io_fail(err, errlen, "truncate", path, errno);
    sp->dirty_tail = 0;
  }

  memcpy(h, natka__spool_rec_magic, 4);
  put32(h + 4, (uint32_t)len);
  put64(h + 8, sp->next_seq);
  put64(h + 16, natka__spool_record_sum(h, data, len));
  struct iovec iov[2] = {{h, HDR}, {(void *)data, len}};
  int fail = pwritev_full(sp->afd, iov, len > 0 ? 2 : 1, last->file_bytes);
  if (!fail && sp->opts.fsync == NATKA__SPOOL_FSYNC_ALWAYS)
    fail = fdatasync(sp->afd);
  if (fail) {
    /* Nothing half-written may stay: a later open would take it for a torn
     * tail at best, and the caller was told it is not stored. */
    int e = errno;
    if (ftruncate(sp->afd, (off_t)last->file_bytes) != 0)
      sp->dirty_tail = 1;
    return natka__spool_io_fail(err, errlen, "write to", path, e);
  }
  if (sp->opts.fsync == NATKA__SPOOL_FSYNC_INTERVAL)
    sp->unsynced = 1;
  last->file_bytes += size;
  last->valid += size;
  last->count++;
  sp->bytes += size;
  if (seq != NULL)
    *seq = sp->next_seq;
  sp->next_seq++;
  if (sp->notify != NULL)
    sp->notify(sp->notify_data);
  return 0;
}

int natka__spool_sync_due(const natka__spool *sp) {
  return !sp->opts.read_only &&
         (sp->unsynced || floor_now(sp) != sp->floor_disk);
}

int natka__spool_sync(natka__spool *sp, char *err, size_t errlen) {
  char path[PATH_MAX];
  if (sp->opts.read_only)
    return 0;
  if (sp->unsynced && sp->afd >= 0 && fdatasync(sp->afd) != 0) {
    natka__spool_segment_path(sp, sp->segs[sp->nsegs - 1].first, path,
                              sizeof(path));
    return natka__spool_io_fail(err, errlen, "fsync", path, errno);
  }
  sp->unsynced = 0;
  uint64_t floor = floor_now(sp);
  if (floor == sp->floor_disk)
    return 0;
  int rc = write_floor(sp, floor, err, errlen);
  if (rc != 0)
    return rc;
  sp->floor_disk = floor;
  return drop_consumed(sp, err, errlen);
}

/* ------------------------------------------------------------ reading */

static int push_outstanding(natka__spool *sp, uint64_t seq) {
  if (sp->opts.read_only)
    return 0; /* tools read without settling */
  if (sp->out_head + sp->out_n == sp->out_cap) {
    if (sp->out_head > 0) {
      memmove(sp->outs, sp->outs + sp->out_head, sp->out_n * sizeof(*sp->outs));
      sp->out_head = 0;
    } else {
      size_t cap = sp->out_cap ? sp->out_cap * 2 : 64;
      natka__spool_out *no = realloc(sp->outs, cap * sizeof(*no));
      if (no == NULL)
        return NATKA_ENOMEM;
      sp->outs = no;
      sp->out_cap = cap;
    }
  }
  sp->outs[sp->out_head + sp->out_n++] = (natka__spool_out){seq, 0};
  sp->out_unacked++;
  return 0;
}

int natka__spool_next(natka__spool *sp, natka__spool_rec *rec, char *err,
                      size_t errlen) {
  char path[PATH_MAX];
  unsigned char h[HDR];
  const char *what = NULL;
  memset(rec, 0, sizeof(*rec));
  advance(sp);
  if (sp->cur_idx >= sp->nsegs || sp->cur_off >= sp->segs[sp->cur_idx].valid)
    return 0;
  natka__spool_seg *sg = &sp->segs[sp->cur_idx];
  natka__spool_segment_path(sp, sg->first, path, sizeof(path));
  if (sp->rfd < 0 && (sp->rfd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
    return natka__spool_io_fail(err, errlen, "open", path, errno);
  if (pread_full(sp->rfd, h, HDR, sp->cur_off) != 0)
    return natka__spool_io_fail(err, errlen, "read", path, errno);
  uint32_t len = natka__spool_get32(h + 4);
  if (memcmp(h, natka__spool_rec_magic, 4) != 0 ||
      natka__spool_get64(h + 8) != sp->cur_seq ||
      sp->cur_off + HDR + len > sg->valid)
    what = "bad header";
  char *data = what == NULL ? malloc((size_t)len + 1) : NULL;
  if (what == NULL && data == NULL)
    return natka__errf(err, errlen, NATKA_ENOMEM, "out of memory");
  if (what == NULL && pread_full(sp->rfd, data, len, sp->cur_off + HDR) != 0) {
    free(data);
    return natka__spool_io_fail(err, errlen, "read", path, errno);
  }
  if (what == NULL &&
      natka__spool_record_sum(h, data, len) != natka__spool_get64(h + 16)) {
    free(data);
    data = NULL;
    what = "bad checksum";
  }
  if (push_outstanding(sp, sp->cur_seq) != 0) {
    free(data);
    return natka__errf(err, errlen, NATKA_ENOMEM, "out of memory");
  }
  rec->seq = sp->cur_seq;
  rec->segment = sg->first;
  rec->offset = sp->cur_off;
  if (what != NULL) {
    /* Verified at open, so the disk changed under us: the lengths after it
     * cannot be trusted, so the rest of this segment is given up. */
    uint64_t skipped = sg->first + sg->count - sp->cur_seq - 1;
    sp->cur_off = sg->valid;
    sp->cur_seq = sg->first + sg->count;
    return natka__errf(err, errlen, NATKA_EMALFORMED,
                       "spool: %s offset %" PRIu64 ": %s (changed since "
                       "open); record %" PRIu64 " is unreadable and %" PRIu64
                       " later record(s) of this segment are skipped",
                       path, rec->offset, what, rec->seq, skipped);
  }
  data[len] = '\0';
  rec->size = HDR + (size_t)len;
  rec->data = data;
  rec->len = len;
  sp->cur_off += rec->size;
  sp->cur_seq++;
  return 1;
}

int natka__spool_ack(natka__spool *sp, uint64_t seq) {
  if (sp->out_n == 0)
    return NATKA_EINVAL;
  size_t lo = sp->out_head, hi = sp->out_head + sp->out_n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (sp->outs[mid].seq < seq)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo == sp->out_head + sp->out_n || sp->outs[lo].seq != seq ||
      sp->outs[lo].acked)
    return NATKA_EINVAL;
  sp->outs[lo].acked = 1;
  sp->out_unacked--;
  while (sp->out_n > 0 && sp->outs[sp->out_head].acked) {
    sp->out_head++;
    sp->out_n--;
  }
  if (sp->out_n == 0)
    sp->out_head = 0;
  return 0;
}

int natka__spool_seek(natka__spool *sp, uint64_t seq, char *err,
                      size_t errlen) {
  char path[PATH_MAX];
  unsigned char h[HDR];
  if (!sp->opts.read_only)
    return natka__errf(err, errlen, NATKA_EINVAL,
                       "spool: seek is for read-only spools");
  close_rfd(sp);
  for (size_t j = 0; j < sp->nsegs; j++) {
    const natka__spool_seg *sg = &sp->segs[j];
    if (sg->count == 0 || sg->first + sg->count <= seq)
      continue;
    sp->cur_idx = j;
    sp->cur_off = 0;
    sp->cur_seq = sg->first;
    if (sp->cur_seq >= seq)
      return 0;
    natka__spool_segment_path(sp, sg->first, path, sizeof(path));
    if ((sp->rfd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
      return natka__spool_io_fail(err, errlen, "open", path, errno);
    for (; sp->cur_seq < seq; sp->cur_seq++) {
      if (pread_full(sp->rfd, h, HDR, sp->cur_off) != 0)
        return natka__spool_io_fail(err, errlen, "read", path, errno);
      sp->cur_off += HDR + (uint64_t)natka__spool_get32(h + 4);
    }
    return 0;
  }
  cursor_at_end(sp);
  return 0;
}
