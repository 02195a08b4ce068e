/*
 * A spool directory whose files come from the fuzzer, through what natka
 * does with one: open (scan every segment, cut a torn tail), read every
 * record in order and ack it, maybe append, close; then open it again.
 * Beyond not crashing, looping or reading out of bounds:
 *   - open never fails for bad data, and reading delivers exactly the
 *     records open counted as pending, in increasing sequence order;
 *   - what was read and acked is not offered again after a reopen, and an
 *     appended record is; the reopen finds no torn tail to cut.
 * Optionally the directory is first opened read-only, as the `natka spool`
 * tools do: it must count and deliver the same pending records, and after
 * a seek nothing before the sequence sought.
 *
 * Input (binary, little-endian):
 *   u8   flags: bits 0-1 segment files - 1; 4 a floor file, 8 a seq file
 *        (reservation), 16 fix the checksums of the records the segment
 *        bytes frame (so the fuzzer gets past the XXH64 to what follows),
 *        32 a read-only pass first, 64 append an event after reading
 *   u64  the floor                            (flag 4)
 *   u64  the reservation                      (flag 8)
 *   u64  where the read-only pass seeks to    (flag 32)
 *   per segment file: u64 its first sequence (the file name), u32 its size,
 *   its bytes; the last one takes the rest of the input instead.
 * Everything cut short by the end of the input is zeros or empty.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "fuzz_common.h"
#include "natka/error.h"
#include "spool.h"

#define HDR NATKA__SPOOL_HEADER_BYTES
#define F_SEGS 3
#define F_FLOOR 4
#define F_SEQ 8
#define F_FIX 16
#define F_READ_ONLY 32
#define F_APPEND 64

static char dir[256];

typedef struct input {
  const uint8_t *p, *end;
} input;

static uint64_t take_u(input *in, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes && in->p < in->end; i++)
    v |= (uint64_t)*in->p++ << (8 * i);
  return v;
}

static void empty_dir(void) {
  DIR *d = opendir(dir);
  struct dirent *e;
  char path[sizeof(dir) + 1 + sizeof(e->d_name)];
  FUZZ_CHECK(d != NULL, "cannot list %s: %s", dir, strerror(errno));
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
    unlink(path);
  }
  closedir(d);
}

static void remove_dir(void) {
  empty_dir();
  rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  /* Opens and closes write and fsync small files: tmpfs when there is one. */
  const char *base = getenv("TMPDIR");
  if (access("/dev/shm", W_OK) == 0)
    base = "/dev/shm";
  snprintf(dir, sizeof(dir), "%s/natka-fuzz-spool-%ld",
           base != NULL ? base : "/tmp", (long)getpid());
  FUZZ_CHECK(mkdir(dir, 0700) == 0 || errno == EEXIST, "cannot create %s: %s",
             dir, strerror(errno));
  atexit(remove_dir);
  return 0;
}

static void write_file(const char *name, const void *data, size_t len) {
  char path[PATH_MAX];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  FUZZ_CHECK(fd >= 0, "cannot create %s: %s", path, strerror(errno));
  FUZZ_CHECK(len == 0 || write(fd, data, len) == (ssize_t)len,
             "cannot write %s", path);
  close(fd);
}

/* A floor or seq file with a valid checksum (the layout is in spool.h). */
static void write_mark(const char *name, const char magic[4], uint64_t v) {
  unsigned char b[24] = {0};
  memcpy(b, magic, 4);
  for (int i = 0; i < 8; i++)
    b[8 + i] = (unsigned char)(v >> (8 * i));
  uint64_t sum = XXH64(b, 16, 0);
  for (int i = 0; i < 8; i++)
    b[16 + i] = (unsigned char)(sum >> (8 * i));
  write_file(name, b, sizeof(b));
}

/* Rewrites the checksum (spool.h) of every record that its header frames,
 * from the start of the segment to the first one that does not fit. */
static void fix_checksums(unsigned char *seg, size_t len) {
  size_t off = 0;
  while (len - off >= HDR && memcmp(seg + off, "NKS1", 4) == 0) {
    uint64_t n = 0;
    for (int i = 3; i >= 0; i--)
      n = n << 8 | seg[off + 4 + (size_t)i];
    if (n > len - off - HDR)
      break;
    uint64_t sum = XXH64(seg + off + HDR, n, XXH64(seg + off, 16, 0));
    for (int i = 0; i < 8; i++)
      seg[off + 16 + (size_t)i] = (unsigned char)(sum >> (8 * i));
    off += HDR + (size_t)n;
  }
}

static natka__spool *open_spool(int read_only, natka__spool_report *rep) {
  natka__spool_opts o = {.max_bytes = 1 << 20,
                         .segment_bytes = 4096,
                         .fsync = NATKA__SPOOL_FSYNC_NEVER,
                         .read_only = read_only};
  natka__spool *sp = NULL;
  char err[512] = "";
  int rc = natka__spool_open(&sp, dir, &o, rep, err, sizeof(err));
  FUZZ_CHECK(rc == 0, "open%s refused the spool: %s", read_only ? " -r" : "",
             err);
  return sp;
}

/* Reads until nothing is left; returns how many records came (each acked
 * unless read-only). None may come before sequence `from`. */
static uint64_t read_all(natka__spool *sp, uint64_t bound, uint64_t from,
                         int ack) {
  natka__spool_rec rec;
  char err[512] = "";
  uint64_t n = 0, last = 0;
  int rc;
  while ((rc = natka__spool_next(sp, &rec, err, sizeof(err))) == 1) {
    FUZZ_CHECK(++n <= bound, "more than the %" PRIu64 " records open counted",
               bound);
    FUZZ_CHECK(n == 1 || rec.seq > last,
               "record %" PRIu64 " after record %" PRIu64, rec.seq, last);
    FUZZ_CHECK(rec.seq >= from, "record %" PRIu64 " read from %" PRIu64,
               rec.seq, from);
    last = rec.seq;
    natka_event *ev = NULL;
    if (natka__spool_event_unpack(rec.data, rec.len, &ev) == 0)
      natka_event_free(ev);
    free(rec.data);
    FUZZ_CHECK(!ack || natka__spool_ack(sp, rec.seq) == 0,
               "ack of record %" PRIu64 " refused", rec.seq);
  }
  /* Nothing changes the files under the spool here. */
  FUZZ_CHECK(rc == 0, "spool_next: %s: %s", natka_err_name(rc), err);
  return n;
}

static uint64_t count_tails(const natka__spool_report *r) {
  uint64_t n = 0;
  for (size_t i = 0; i < r->nproblems; i++)
    n += r->problems[i].tail != 0;
  return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  input in = {data, data + size};
  natka__spool_report rep = {0};
  char err[512] = "", name[32];
  empty_dir();

  unsigned flags = (unsigned)take_u(&in, 1);
  if (flags & F_FLOOR)
    write_mark("floor", "NKF1", take_u(&in, 8));
  if (flags & F_SEQ)
    write_mark("seq", "NKR1", take_u(&in, 8));
  uint64_t seek = flags & F_READ_ONLY ? take_u(&in, 8) : 0;
  int nsegs = (int)(flags & F_SEGS) + 1;
  for (int i = 0; i < nsegs; i++) {
    uint64_t first = take_u(&in, 8);
    size_t left = (size_t)(in.end - in.p);
    size_t len = i + 1 < nsegs ? (size_t)take_u(&in, 4) : left;
    left = (size_t)(in.end - in.p);
    len = len < left ? len : left;
    unsigned char *seg = malloc(len + 1);
    FUZZ_CHECK(seg != NULL, "out of memory");
    if (len > 0)
      memcpy(seg, in.p, len);
    in.p += len;
    if (flags & F_FIX)
      fix_checksums(seg, len);
    snprintf(name, sizeof(name), "%020" PRIu64 ".seg", first);
    write_file(name, seg, len);
    free(seg);
  }

  /* What `natka spool inspect` shows is what natka delivers. */
  natka__spool *sp;
  uint64_t ro_pending = UINT64_MAX;
  if (flags & F_READ_ONLY) {
    sp = open_spool(1, &rep);
    ro_pending = rep.pending;
    FUZZ_CHECK(read_all(sp, rep.records, 0, 0) == ro_pending,
               "a read-only open delivers other than its %" PRIu64
               " pending records",
               ro_pending);
    int rc = natka__spool_seek(sp, seek, err, sizeof(err));
    FUZZ_CHECK(rc == 0, "seek to %" PRIu64 ": %s", seek, err);
    read_all(sp, rep.records, seek, 0);
    natka__spool_close(sp, NULL, 0);
    natka__spool_report_free(&rep);
  }

  sp = open_spool(0, &rep);
  uint64_t pending = rep.pending;
  FUZZ_CHECK(pending <= rep.records, "%" PRIu64 " of %" PRIu64 " pending",
             pending, rep.records);
  FUZZ_CHECK(ro_pending == UINT64_MAX || ro_pending == pending,
             "read-only open: %" PRIu64 " pending, read-write: %" PRIu64,
             ro_pending, pending);
  uint64_t got = read_all(sp, pending, 0, 1);
  FUZZ_CHECK(got == pending,
             "%" PRIu64 " records read where open counted %" PRIu64 " pending",
             got, pending);
  uint64_t appended = 0;
  if (flags & F_APPEND) {
    natka_event *ev = NULL;
    FUZZ_CHECK(natka_event_new(&ev) == 0 && natka_event_set_id(ev, "x") == 0,
               "out of memory");
    int rc = natka__spool_put_event(sp, ev, NULL, err, sizeof(err));
    FUZZ_CHECK(rc == 0 || rc == NATKA_EBUSY, "append: %s", err);
    appended = rc == 0;
    natka_event_free(ev);
  }
  int rc = natka__spool_close(sp, err, sizeof(err));
  FUZZ_CHECK(rc == 0, "close: %s", err);
  natka__spool_report_free(&rep);

  sp = open_spool(0, &rep);
  FUZZ_CHECK(count_tails(&rep) == 0, "a second open cut a tail again");
  FUZZ_CHECK(rep.pending == appended,
             "%" PRIu64 " records offered again after a reopen (%" PRIu64
             " appended)",
             rep.pending, appended);
  FUZZ_CHECK(read_all(sp, rep.pending, 0, 1) == appended,
             "the appended record is not read back");
  natka__spool_close(sp, NULL, 0);
  natka__spool_report_free(&rep);
  return 0;
}
