/* The disk spool (core/spool/spool.c) and its event encoding
 * (core/spool/spool_event.c): order across segments, reopening, acks and the
 * persisted floor, torn tails at every byte, corruption in the middle, the size
 * bound, write errors, and packing events with every kind of field. */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "runner.h"

#include "event_int.h"
#include "gateway.h"
#include "natka/error.h"
#include "pipe.h"
#include "spool.h"
#include "spool_int.h"
#include "util.h"

#define HDR NATKA__SPOOL_HEADER_BYTES

typedef struct fixture {
  char dir[64];
  natka__spool *sp;
  natka__spool_report rep;
  char err[512];
} fixture;

static int rm_one(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static void make_dir(fixture *f) {
  snprintf(f->dir, sizeof(f->dir), "/tmp/natka-spool-XXXXXX");
  assert_non_null(mkdtemp(f->dir));
}

static void remove_dir(fixture *f) {
  nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static natka__spool_opts opts(uint64_t segment, uint64_t max) {
  natka__spool_opts o = {.segment_bytes = segment,
                         .max_bytes = max,
                         .fsync = NATKA__SPOOL_FSYNC_NEVER};
  return o;
}

static void open_with(fixture *f, natka__spool_opts o) {
  natka__spool_report_free(&f->rep);
  int rc =
      natka__spool_open(&f->sp, f->dir, &o, &f->rep, f->err, sizeof(f->err));
  if (rc != 0)
    fail_msg("open: %s", f->err);
}

static void reopen(fixture *f, natka__spool_opts o) {
  assert_int_equal(natka__spool_close(f->sp, f->err, sizeof(f->err)), 0);
  open_with(f, o);
}

static void done(fixture *f) {
  natka__spool_close(f->sp, NULL, 0);
  natka__spool_report_free(&f->rep);
  remove_dir(f);
}

/* Record i's payload: "rec-<i>-" then i % 37 bytes of filler. */
static size_t payload(int i, char *buf) {
  int n = sprintf(buf, "rec-%d-", i);
  for (int k = 0; k < i % 37; k++)
    buf[n++] = (char)('a' + k % 26);
  return (size_t)n;
}

static void append_n(fixture *f, int from, int n) {
  char buf[128];
  for (int i = from; i < from + n; i++) {
    uint64_t seq = 0;
    size_t len = payload(i, buf);
    int rc = natka__spool_append(f->sp, buf, len, &seq, f->err, sizeof(f->err));
    if (rc != 0)
      fail_msg("append %d: %s", i, f->err);
  }
}

/* Reads the next record and checks it is record i with sequence seq. */
static void expect_next(fixture *f, int i, uint64_t seq) {
  char buf[128];
  natka__spool_rec rec;
  size_t len = payload(i, buf);
  int rc = natka__spool_next(f->sp, &rec, f->err, sizeof(f->err));
  if (rc != 1)
    fail_msg("next (record %d): %d %s", i, rc, f->err);
  assert_int_equal(rec.seq, seq);
  assert_int_equal(rec.len, len);
  assert_memory_equal(rec.data, buf, len);
  assert_int_equal(rec.size, HDR + len);
  free(rec.data);
}

static void expect_end(fixture *f) {
  natka__spool_rec rec;
  assert_int_equal(natka__spool_next(f->sp, &rec, f->err, sizeof(f->err)), 0);
}

static size_t count_segments(fixture *f) {
  size_t n = 0;
  DIR *d = opendir(f->dir);
  struct dirent *e;
  assert_non_null(d);
  while ((e = readdir(d)) != NULL)
    n += strstr(e->d_name, ".seg") != NULL;
  closedir(d);
  return n;
}

static off_t file_size(const char *path) {
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  return st.st_size;
}

static natka__spool_stats stats(fixture *f) {
  natka__spool_stats st;
  natka__spool_get_stats(f->sp, &st);
  return st;
}

/* ------------------------------------------------------------ storage */

static void test_records_come_back_in_order_across_segments(void **state) {
  (void)state;
  fixture f = {0};
  make_dir(&f);
  open_with(&f, opts(256, 0));
  assert_int_equal(f.rep.nproblems, 0);
  append_n(&f, 1, 100);
  assert_true(count_segments(&f) > 10);
  assert_int_equal(stats(&f).pending, 100);
  for (int i = 1; i <= 100; i++)
    expect_next(&f, i, (uint64_t)i);
  expect_end(&f);
  append_n(&f, 101, 3); /* a reader at the end sees new records */
  for (int i = 101; i <= 103; i++)
    expect_next(&f, i, (uint64_t)i);
  expect_end(&f);
  assert_int_equal(stats(&f).outstanding, 103);
  done(&f);
}

static void test_reopen_keeps_everything(void **state) {
  (void)state;
  fixture f = {0};
  make_dir(&f);
  open_with(&f, opts(300, 0));
  append_n(&f, 1, 40);
  reopen(&f, opts(300, 0));
  assert_int_equal(f.rep.nproblems, 0);
  assert_int_equal(f.rep.records, 40);
  assert_int_equal(f.rep.pending, 40);
  assert_int_equal(f.rep.segments, count_segments(&f));
  for (int i = 1; i <= 40; i++)
    expect_next(&f, i, (uint64_t)i);
  expect_end(&f);
  append_n(&f, 41, 1);
  expect_next(&f, 41, 41);
  done(&f);
}

static void test_acks_move_a_persisted_floor_and_delete_segments(void **state) {
  (void)state;
  fixture f = {0};
  make_dir(&f);
  open_with(&f, opts(256, 0));
  append_n(&f, 1, 60);
  size_t segs = count_segments(&f);
  for (int i = 1; i <= 60; i++)
    expect_next(&f, i, (uint64_t)i);
  /* Out of order: the even ones first leave the floor at 1. */
  for (uint64_t s = 2; s <= 40; s += 2)
    assert_int_equal(natka__spool_ack(f.sp, s), 0);
  assert_int_equal(stats(&f).floor, 1);
  assert_int_equal(natka__spool_ack(f.sp, 2), NATKA_EINVAL); /* twice */
  assert_int_equal(natka__spool_ack(f.sp, 999), NATKA_EINVAL);
  for (uint64_t s = 1; s <= 29; s += 2)
    assert_int_equal(natka__spool_ack(f.sp, s), 0);
  assert_int_equal(stats(&f).floor, 31);
  assert_int_equal(stats(&f).pending, 60 - 35);
  assert_true(natka__spool_sync_due(f.sp));
  assert_int_equal(natka__spool_sync(f.sp, f.err, sizeof(f.err)), 0);
  assert_false(natka__spool_sync_due(f.sp));
  assert_true(count_segments(&f) < segs);

  /* Restart: replay from the floor, so 32..40 (acked above it) come back
   * again: at least once. */
  reopen(&f, opts(256, 0));
  assert_int_equal(f.rep.floor, 31);
  assert_int_equal(f.rep.pending, 30);
  for (int i = 31; i <= 60; i++)
    expect_next(&f, i, (uint64_t)i);
  expect_end(&f);
  done(&f);
}

static void test_a_drained_spool_keeps_no_segment(void **state) {
  (void)state;
  fixture f = {0};
  make_dir(&f);
  open_with(&f, opts(4096, 0));
  append_n(&f, 1, 5);
  for (int i = 1; i <= 5; i++)
    expect_next(&f, i, (uint64_t)i);
  for (uint64_t s = 5; s >= 1; s--)
    assert_int_equal(natka__spool_ack(f.sp, s), 0);
  assert_int_equal(natka__spool_sync(f.sp, f.err, sizeof(f.err)), 0);
  assert_int_equal(count_segments(&f), 0);
  assert_int_equal(stats(&f).bytes, 0);
  assert_int_equal(stats(&f).pending, 0);
  append_n(&f, 6, 1); /* sequence numbers go on */
  expect_next(&f, 6, 6);
  reopen(&f, opts(4096, 0));
  assert_int_equal(f.rep.pending, 1);
  expect_next(&f, 6, 6);
  done(&f);
}

static void test_sync_is_due_as_the_fsync_policy_says(void **state) {
  (void)state;
  static const natka__spool_fsync policies[] = {NATKA__SPOOL_FSYNC_ALWAYS,
                                                NATKA__SPOOL_FSYNC_INTERVAL,
                                                NATKA__SPOOL_FSYNC_NEVER};
  natka__spool_fsync parsed;
  assert_int_equal(natka__spool_fsync_parse("interval", &parsed), 0);
  assert_int_equal(parsed, NATKA__SPOOL_FSYNC_INTERVAL);
  assert_int_equal(natka__spool_fsync_parse("sometimes", &parsed),
                   NATKA_EINVAL);
  for (int i = 0; i < 3; i++) {
    fixture f = {0};
    natka__spool_opts o = opts(256, 0);
    o.fsync = policies[i];
    make_dir(&f);
    open_with(&f, o);
    assert_false(natka__spool_sync_due(f.sp));
    append_n(&f, 1, 20); /* several segments: rotation syncs too */
    assert_int_equal(natka__spool_sync_due(f.sp),
                     policies[i] == NATKA__SPOOL_FSYNC_INTERVAL);
    assert_int_equal(natka__spool_sync(f.sp, f.err, sizeof(f.err)), 0);
    assert_false(natka__spool_sync_due(f.sp));
    expect_next(&f, 1, 1);
    assert_false(natka__spool_sync_due(f.sp)); /* read is not consumed */
    assert_int_equal(natka__spool_ack(f.sp, 1), 0);
    assert_true(natka__spool_sync_due(f.sp)); /* the floor moved */
    assert_int_equal(natka__spool_sync(f.sp, f.err, sizeof(f.err)), 0);
    assert_false(natka__spool_sync_due(f.sp));
    reopen(&f, o);
    assert_int_equal(f.rep.floor, 2);
    assert_int_equal(f.rep.pending, 19);
    done(&f);
  }
}

/* Cuts the newest segment inside its last record at every byte: open must
 * report a torn tail, keep the records before it, and take new ones. */
static void test_a_torn_tail_at_every_byte_is_cut_and_reported(void **state) {
  (void)state;
  char path[512];
  natka__spool_rec rec;
  for (size_t cut = 1;; cut++) {
    fixture f = {0};
    make_dir(&f);
    open_with(&f, opts(4096, 0));
    append_n(&f, 1, 3);
    natka__spool_segment_path(f.sp, 1, path, sizeof(path));
    reopen(&f, opts(4096, 0));
    for (int i = 1; i <= 2; i++)
      expect_next(&f, i, (uint64_t)i);
    assert_int_equal(natka__spool_next(f.sp, &rec, f.err, sizeof(f.err)), 1);
    free(rec.data);
    if (cut >= rec.size) {
      done(&f);
      break;
    }
    assert_int_equal(natka__spool_close(f.sp, NULL, 0), 0);
    f.sp = NULL;
    assert_int_equal(truncate(path, (off_t)(rec.offset + cut)), 0);

    open_with(&f, opts(4096, 0));
    assert_int_equal(f.rep.nproblems, 1);
    assert_true(f.rep.problems[0].tail);
    assert_int_equal(f.rep.problems[0].offset, rec.offset);
    assert_int_equal(f.rep.problems[0].bytes, cut);
    assert_int_equal(f.rep.problems[0].records_before, 2);
    assert_string_equal(f.rep.problems[0].path, path);
    assert_int_equal(f.rep.records, 2);
    assert_int_equal(file_size(path), (off_t)rec.offset);
    expect_next(&f, 1, 1);
    expect_next(&f, 2, 2);
    expect_end(&f);
    append_n(&f, 3, 1); /* sequence 4: the torn record's 3 is not reused */
    reopen(&f, opts(4096, 0));
    assert_int_equal(f.rep.nproblems, 0);
    assert_int_equal(f.rep.records, 3);
    for (int i = 1; i <= 3; i++)
      expect_next(&f, i, i < 3 ? (uint64_t)i : 4);
    done(&f);
  }
}

static void flip_byte(const char *path, off_t at) {
  int fd = open(path, O_RDWR);
  unsigned char b;
  assert_true(fd >= 0);
  assert_int_equal(pread(fd, &b, 1, at), 1);
  b ^= 0x40;
  assert_int_equal(pwrite(fd, &b, 1, at), 1);
  close(fd);
}

static void test_a_flipped_byte_in_the_middle_is_detected(void **state) {
  (void)state;
  char path[512];
  natka__spool_rec rec;
  /* 0: in the payload; 5: in the length field. */
  for (int where = 0; where < 2; where++) {
    fixture f = {0};
    make_dir(&f);
    open_with(&f, opts(4096, 0));
    append_n(&f, 1, 3);
    natka__spool_segment_path(f.sp, 1, path, sizeof(path));
    expect_next(&f, 1, 1);
    assert_int_equal(natka__spool_next(f.sp, &rec, f.err, sizeof(f.err)), 1);
    free(rec.data);
    assert_int_equal(natka__spool_close(f.sp, NULL, 0), 0);
    off_t size = file_size(path);
    flip_byte(path, (off_t)rec.offset + (where == 0 ? HDR + 2 : 5));

    open_with(&f, opts(4096, 0));
    assert_int_equal(f.rep.nproblems, 1);
    assert_false(f.rep.problems[0].tail);
    assert_int_equal(f.rep.problems[0].offset, rec.offset);
    assert_int_equal(f.rep.problems[0].records_before, 1);
    assert_int_equal(f.rep.records, 1);
    assert_int_equal(file_size(path), size); /* evidence stays on disk */
    expect_next(&f, 1, 1);
    expect_end(&f);
    /* A new segment, and a sequence above every one handed out before
     * (2 and 3 are lost, never reused). */
    append_n(&f, 10, 1);
    assert_int_equal(count_segments(&f), 2);
    reopen(&f, opts(4096, 0));
    assert_int_equal(f.rep.nproblems, 1);
    assert_int_equal(f.rep.records, 2);
    expect_next(&f, 1, 1);
    expect_next(&f, 10, 4);
    expect_end(&f);
    done(&f);
  }
}

static void
test_corruption_in_an_older_segment_skips_only_its_rest(void **state) {
  (void)state;
  char path[512];
  fixture f = {0};
  make_dir(&f);
  open_with(&f, opts(200, 0));
  append_n(&f, 1, 20);
  natka__spool_segment_path(f.sp, 1, path, sizeof(path));
  assert_true(count_segments(&f) > 2);
  assert_int_equal(natka__spool_close(f.sp, NULL, 0), 0);
  /* Records 1 and 2 of the first segment are "rec-1-a" and "rec-2-ab":
   * flip a byte of the second one's payload. */
  flip_byte(path, HDR + 7 + HDR + 1);
  open_with(&f, opts(200, 0));
  assert_int_equal(f.rep.nproblems, 1);
  assert_false(f.rep.problems[0].tail);
  assert_int_equal(f.rep.problems[0].records_before, 1);
  expect_next(&f, 1, 1);
  natka__spool_rec rec;
  assert_int_equal(natka__spool_next(f.sp, &rec, f.err, sizeof(f.err)), 1);
  assert_true(rec.seq > 2); /* the next segment's first */
  assert_true(rec.segment == rec.seq);
  free(rec.data);
  done(&f);
}

static void test_read_only_open_reports_without_cutting(void **state) {
  (void)state;
  char path[512];
  fixture f = {0};
  make_dir(&f);
  open_with(&f, opts(4096, 0));
  append_n(&f, 1, 3);
  natka__spool_segment_path(f.sp, 1, path, sizeof(path));
  assert_int_equal(natka__spool_close(f.sp, NULL, 0), 0);
  off_t size = file_size(path);
  assert_int_equal(truncate(path, size - 3), 0);
  natka__spool_opts o = opts(4096, 0);
  o.read_only = 1;
  open_with(&f, o);
  assert_int_equal(f.rep.nproblems, 1);
  assert_true(f.rep.problems[0].tail);
  assert_int_equal(f.rep.problems[0].bytes,
                   size - 3 - f.rep.problems[0].offset);
  assert_int_equal(file_size(path), size - 3);
  assert_int_equal(
      natka__spool_append(f.sp, "x", 1, NULL, f.err, sizeof(f.err)),
      NATKA_EINVAL);
  assert_int_equal(natka__spool_seek(f.sp, 2, f.err, sizeof(f.err)), 0);
  expect_next(&f, 2, 2);
  expect_end(&f);
  done(&f);
}

static void test_a_bad_floor_file_replays_everything(void **state) {
  (void)state;
  char path[600];
  fixture f = {0};
  make_dir(&f);
  open_with(&f, opts(4096, 0));
  append_n(&f, 1, 4);
  for (int i = 1; i <= 4; i++)
    expect_next(&f, i, (uint64_t)i);
  assert_int_equal(natka__spool_ack(f.sp, 1), 0);
  assert_int_equal(natka__spool_close(f.sp, NULL, 0), 0);
  snprintf(path, sizeof(path), "%s/floor", f.dir);
  flip_byte(path, 9);
  open_with(&f, opts(4096, 0));
  assert_int_equal(f.rep.nproblems, 1);
  assert_non_null(strstr(f.rep.problems[0].what, "floor"));
  expect_next(&f, 1, 1);
  done(&f);
}

static void test_a_second_writer_is_refused(void **state) {
  (void)state;
  fixture f = {0};
  natka__spool *other = NULL;
  natka__spool_opts o = opts(4096, 0);
  make_dir(&f);
  open_with(&f, o);
  assert_int_equal(
      natka__spool_open(&other, f.dir, &o, NULL, f.err, sizeof(f.err)),
      NATKA_EBUSY);
  assert_non_null(strstr(f.err, "in use"));
  done(&f);
}

static void test_open_fails_only_on_real_io_errors(void **state) {
  (void)state;
  char err[512];
  natka__spool *sp = NULL;
  natka__spool_opts o = opts(4096, 0);
  assert_int_equal(
      natka__spool_open(&sp, "/proc/natka-spool", &o, NULL, err, sizeof(err)),
      NATKA_EIO);
  assert_non_null(strstr(err, "/proc/natka-spool"));
  o.read_only = 1;
  assert_int_equal(
      natka__spool_open(&sp, "/nonexistent/natka", &o, NULL, err, sizeof(err)),
      NATKA_EIO);
  assert_non_null(strstr(err, "/nonexistent/natka"));
}

static void test_a_full_spool_pushes_back_unchanged(void **state) {
  (void)state;
  char buf[100] = {0};
  fixture f = {0};
  make_dir(&f);
  open_with(&f, opts(512, 1000));
  int n = 0;
  int rc;
  while ((rc = natka__spool_append(f.sp, buf, sizeof(buf), NULL, f.err,
                                   sizeof(f.err))) == 0)
    n++;
  assert_int_equal(rc, NATKA_EBUSY);
  assert_int_equal(n, 1000 / (HDR + 100));
  natka__spool_stats before = stats(&f);
  size_t segs = count_segments(&f);
  assert_int_equal(
      natka__spool_append(f.sp, buf, sizeof(buf), NULL, f.err, sizeof(f.err)),
      NATKA_EBUSY);
  natka__spool_stats after = stats(&f);
  assert_memory_equal(&before, &after, sizeof(before));
  assert_int_equal(count_segments(&f), segs);
  assert_true(before.bytes <= 1000);
  reopen(&f, opts(512, 1000));
  assert_int_equal(f.rep.records, (uint64_t)n);
  done(&f);
}

/* RLIMIT_FSIZE makes the write fail half-way (EFBIG, as a full disk would
 * with ENOSPC): the part already written must be cut back off. */
static void test_a_failed_write_leaves_no_partial_record(void **state) {
  (void)state;
  char buf[300], path[512];
  struct rlimit old, lim;
  memset(buf, 'z', sizeof(buf));
  fixture f = {0};
  make_dir(&f);
  open_with(&f, opts(1 << 20, 0));
  append_n(&f, 1, 2);
  natka__spool_segment_path(f.sp, 1, path, sizeof(path));
  off_t size = file_size(path);
  natka__spool_stats before = stats(&f);

  signal(SIGXFSZ, SIG_IGN);
  assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
  lim = old;
  lim.rlim_cur = (rlim_t)size + HDR + 100;
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
  int rc =
      natka__spool_append(f.sp, buf, sizeof(buf), NULL, f.err, sizeof(f.err));
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
  signal(SIGXFSZ, SIG_DFL);

  assert_int_equal(rc, NATKA_EIO);
  assert_non_null(strstr(f.err, path));
  assert_non_null(strstr(f.err, "File too large"));
  assert_int_equal(file_size(path), size);
  natka__spool_stats after = stats(&f);
  assert_memory_equal(&before, &after, sizeof(before));

  append_n(&f, 3, 1); /* the next one works and gets the same sequence */
  reopen(&f, opts(1 << 20, 0));
  assert_int_equal(f.rep.nproblems, 0);
  for (int i = 1; i <= 3; i++)
    expect_next(&f, i, (uint64_t)i);
  expect_end(&f);
  done(&f);
}

/* ------------------------------------------------------------ events */

static natka_event *sample_event(void) {
  natka_event *ev = NULL;
  assert_int_equal(natka_event_new(&ev), 0);
  assert_int_equal(natka_event_set_id(ev, "e-1"), 0);
  assert_int_equal(natka_event_set_kind(ev, "orders.created"), 0);
  natka_event_set_ts(ev, 1700000000123456789LL);
  assert_int_equal(natka_event_set_key(ev, "k\0y", 3), 0);
  assert_int_equal(natka_event_set_data(ev, "\0\1\2bin\0\377", 8), 0);
  assert_int_equal(natka_event_add_header(ev, "x-a", "1", 1), 0);
  assert_int_equal(natka_event_add_header(ev, "x-b", "\0two", 4), 0);
  assert_int_equal(natka_event_add_header(ev, "x-a", "", 0), 0);
  return ev;
}

static void assert_same_event(const natka_event *a, const natka_event *b) {
  size_t la, lb;
  const void *pa, *pb;
  if (a->id == NULL)
    assert_null(b->id);
  else
    assert_string_equal(a->id, b->id);
  if (a->kind == NULL)
    assert_null(b->kind);
  else
    assert_string_equal(a->kind, b->kind);
  assert_int_equal(natka_event_ts(a), natka_event_ts(b));
  pa = natka_event_key(a, &la);
  pb = natka_event_key(b, &lb);
  assert_int_equal(pa == NULL, pb == NULL);
  assert_int_equal(la, lb);
  if (la > 0)
    assert_memory_equal(pa, pb, la);
  pa = natka_event_data(a, &la);
  pb = natka_event_data(b, &lb);
  assert_int_equal(la, lb);
  if (la > 0)
    assert_memory_equal(pa, pb, la);
  assert_int_equal(natka_event_header_count(a), natka_event_header_count(b));
  for (size_t i = 0; i < natka_event_header_count(a); i++) {
    const char *na, *nb;
    assert_int_equal(natka_event_header_at(a, i, &na, &pa, &la), 0);
    assert_int_equal(natka_event_header_at(b, i, &nb, &pb, &lb), 0);
    assert_string_equal(na, nb);
    assert_int_equal(la, lb);
    if (la > 0)
      assert_memory_equal(pa, pb, la);
  }
}

static natka_event *round_trip(const natka_event *ev) {
  char *buf = NULL;
  size_t len = 0;
  natka_event *back = NULL;
  assert_int_equal(natka__spool_event_pack(ev, &buf, &len), 0);
  assert_int_equal(natka__spool_event_unpack(buf, len, &back), 0);
  free(buf);
  assert_same_event(ev, back);
  return back;
}

static void test_events_round_trip_byte_for_byte(void **state) {
  (void)state;
  natka_event *ev = sample_event(), *back = round_trip(ev);
  natka_event_free(back);

  /* No key vs an empty key; no id, no kind, no headers, no data. */
  assert_int_equal(natka_event_set_key(ev, "", 0), 0);
  back = round_trip(ev);
  assert_non_null(natka_event_key(back, NULL));
  natka_event_free(back);
  natka_event_free(ev);

  assert_int_equal(natka_event_new(&ev), 0);
  natka_event_set_ts(ev, -5);
  back = round_trip(ev);
  assert_null(natka_event_key(back, NULL));
  assert_null(natka_event_id(back));
  assert_null(natka_event_kind(back));
  natka_event_free(back);
  natka_event_free(ev);
}

static void test_unpack_refuses_truncated_and_garbage_input(void **state) {
  (void)state;
  char *buf = NULL;
  size_t len = 0;
  natka_event *out = NULL;
  natka_event *ev = sample_event();
  assert_int_equal(natka__spool_event_pack(ev, &buf, &len), 0);
  natka_event_free(ev);
  /* Every prefix: its own allocation, so ASan sees any read past it. */
  for (size_t n = 0; n < len; n++) {
    char *cut = malloc(n > 0 ? n : 1);
    memcpy(cut, buf, n);
    assert_int_equal(natka__spool_event_unpack(n ? cut : NULL, n, &out),
                     NATKA_EMALFORMED);
    free(cut);
  }
  char *longer = malloc(len + 1);
  memcpy(longer, buf, len);
  longer[len] = 0;
  assert_int_equal(natka__spool_event_unpack(longer, len + 1, &out),
                   NATKA_EMALFORMED);
  free(longer);
  buf[0] = 2; /* unknown version */
  assert_int_equal(natka__spool_event_unpack(buf, len, &out), NATKA_EMALFORMED);
  buf[0] = 1;
  buf[1] |= 8; /* unknown flag */
  assert_int_equal(natka__spool_event_unpack(buf, len, &out), NATKA_EMALFORMED);
  free(buf);

  /* Random bytes (and random lengths in otherwise valid headers) must fail
   * cleanly or decode, never read outside the buffer. */
  unsigned seed = 12345;
  for (int round = 0; round < 5000; round++) {
    size_t n = (size_t)(rand_r(&seed) % 64) + 1;
    unsigned char *g = malloc(n);
    for (size_t i = 0; i < n; i++)
      g[i] = (unsigned char)rand_r(&seed);
    g[0] = 1;
    if (n > 1)
      g[1] &= 7;
    int rc = natka__spool_event_unpack(g, n, &out);
    assert_true(rc == 0 || rc == NATKA_EMALFORMED);
    if (rc == 0)
      natka_event_free(out);
    free(g);
  }
}

static void test_put_event_then_read_it_back(void **state) {
  (void)state;
  fixture f = {0};
  natka__spool_rec rec;
  natka_event *ev = sample_event(), *back = NULL;
  uint64_t seq = 0;
  make_dir(&f);
  open_with(&f, opts(4096, 0));
  assert_int_equal(natka__spool_put_event(f.sp, ev, &seq, f.err, sizeof(f.err)),
                   0);
  assert_int_equal(seq, 1);
  reopen(&f, opts(4096, 0));
  assert_int_equal(natka__spool_next(f.sp, &rec, f.err, sizeof(f.err)), 1);
  assert_int_equal(natka__spool_event_unpack(rec.data, rec.len, &back), 0);
  assert_same_event(ev, back);
  free(rec.data);
  natka_event_free(back);
  natka_event_free(ev);
  done(&f);
}

/* ------------------------------------------------------------ the source */

/* The source against a real gateway (embedded Kafka, rules from a file, no
 * NATS), driven by hand since the gateway does not create it itself here:
 * every event reaches Kafka, a record that is not an event is dead-lettered,
 * a held one is offered again after the nak delay, credit bounds what is
 * outstanding, and a drained spool is empty on disk. */

#define SOURCE_EVENTS 40
#define SOURCE_CREDIT 5

typedef struct source_run {
  natka *gw;
  natka__spool *sp;
  natka__source *src;
  uv_timer_t poll;
  uv_check_t check;
  uint64_t max_outstanding;
  int64_t deadline;
  int src_closed;
} source_run;

static void on_src_closed(natka__source *src) {
  source_run *r = natka_get_data(src->host->data);
  r->src_closed = 1;
}

static void on_check(uv_check_t *h) {
  source_run *r = h->data;
  natka__spool_stats st;
  natka__spool_get_stats(r->sp, &st);
  if (st.outstanding > r->max_outstanding)
    r->max_outstanding = st.outstanding;
}

static void on_poll(uv_timer_t *t) {
  source_run *r = t->data;
  natka__spool_stats st;
  natka__spool_get_stats(r->sp, &st);
  if (st.pending > 0 && natka__mono_ns() < r->deadline)
    return;
  uv_close((uv_handle_t *)&r->poll, NULL);
  uv_close((uv_handle_t *)&r->check, NULL);
  r->src->vt->stop(r->src, NULL);
  r->src->vt->close(r->src, on_src_closed);
  natka_stop(r->gw, NULL, NULL);
}

static void set(natka_config *c, const char *k, const char *v) {
  char err[512];
  if (natka_config_set(c, k, v, err, sizeof(err)) != 0)
    fail_msg("%s: %s", k, err);
}

static void test_the_source_feeds_a_gateway_until_drained(void **state) {
  (void)state;
  char rules[600], err[1024], buf[64];
  fixture f = {0};
  source_run r = {0};
  natka_config *conf = NULL;
  make_dir(&f);
  open_with(&f, opts(1024, 0));
  for (int i = 0; i < SOURCE_EVENTS; i++) {
    natka_event *ev = sample_event();
    snprintf(buf, sizeof(buf), "e-%d", i);
    assert_int_equal(natka_event_set_id(ev, buf), 0);
    if (i == 7)
      assert_int_equal(natka_event_set_kind(ev, "hold.once"), 0);
    assert_int_equal(
        natka__spool_put_event(f.sp, ev, NULL, f.err, sizeof(f.err)), 0);
    natka_event_free(ev);
  }
  assert_int_equal(
      natka__spool_append(f.sp, "junk", 4, NULL, f.err, sizeof(f.err)), 0);

  snprintf(rules, sizeof(rules), "%s/hold_once.lua", f.dir);
  FILE *lua = fopen(rules, "w");
  assert_non_null(lua);
  fputs("local seen = {}\n"
        "return { degrade = function(ev)\n"
        "  if ev.kind == 'hold.once' and not seen[ev.id] then\n"
        "    seen[ev.id] = true\n"
        "    return 'hold'\n"
        "  end\n"
        "end }\n",
        lua);
  fclose(lua);
  assert_int_equal(natka_config_new(&conf), 0);
  set(conf, "kafka.brokers", "embedded");
  set(conf, "jetstream.enabled", "false");
  set(conf, "jetstream.nak_delay_ms", "50");
  set(conf, "rules.files", rules);
  set(conf, "switches.bucket", "");
  set(conf, "route.default_topic", "spool.test");
  set(conf, "limits.max_inflight", "5");
  set(conf, "log.level", "error");
  if (natka_new(&r.gw, conf, NULL, err, sizeof(err)) != 0)
    fail_msg("natka_new: %s", err);
  natka_set_data(r.gw, &r);
  r.sp = f.sp;
  assert_int_equal(natka__source_spool_new(&r.src, natka__gateway_host(r.gw),
                                           f.sp, err, sizeof(err)),
                   0);
  assert_int_equal(natka_start(r.gw), 0);
  assert_int_equal(r.src->vt->start(r.src), 0);
  r.deadline = natka__mono_ns() + 60 * 1000000000LL;
  uv_timer_init(natka_loop(r.gw), &r.poll);
  uv_check_init(natka_loop(r.gw), &r.check);
  r.poll.data = r.check.data = &r;
  uv_timer_start(&r.poll, on_poll, 20, 20);
  uv_check_start(&r.check, on_check);
  uv_run(natka_loop(r.gw), UV_RUN_DEFAULT);

  assert_true(r.src_closed);
  assert_int_equal(natka_stat(r.gw, "delivered"), SOURCE_EVENTS);
  assert_int_equal(natka_stat(r.gw, "deadlettered"), 1);
  assert_int_equal(natka_stat(r.gw, "held"), 1);
  assert_true(r.max_outstanding <= SOURCE_CREDIT);
  assert_true(r.max_outstanding > 0);
  natka_free(r.gw);
  reopen(&f, opts(1024, 0));
  assert_int_equal(f.rep.pending, 0);
  assert_int_equal(count_segments(&f), 0);
  done(&f);
}

/* An OS crash can take records that were appended (and maybe delivered)
 * but never synced; their sequences must not come back for new records.
 * (After a crash the open continues above the durable reservation; after a
 * clean close, as here, right after the last sequence handed out.) */
static void test_sequences_are_never_reused(void **state) {
  (void)state;
  char path[512];
  fixture f = {0};
  make_dir(&f);
  open_with(&f, opts(4096, 0));
  append_n(&f, 1, 5);
  natka__spool_segment_path(f.sp, 1, path, sizeof(path));
  off_t two = 0;
  natka__spool_rec rec;
  for (int i = 1; i <= 2; i++) {
    assert_int_equal(natka__spool_next(f.sp, &rec, f.err, sizeof(f.err)), 1);
    two = (off_t)(rec.offset + rec.size);
    free(rec.data);
  }
  assert_int_equal(natka__spool_close(f.sp, NULL, 0), 0);
  f.sp = NULL;
  /* The file ends after record 2, as if 3..5 had never reached the disk. */
  assert_int_equal(truncate(path, two), 0);
  open_with(&f, opts(4096, 0));
  assert_int_equal(f.rep.records, 2);
  uint64_t seq = 0;
  assert_int_equal(
      natka__spool_append(f.sp, "x", 1, &seq, f.err, sizeof(f.err)), 0);
  assert_true(seq > 5);
  done(&f);
}

/* ----------------------------------- strange names, the sequence range */

/* <dir>/<name> holding len bytes of data. */
static void put_file(fixture *f, const char *name, const void *data,
                     size_t len) {
  char path[600];
  snprintf(path, sizeof(path), "%s/%s", f->dir, name);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0640);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, data, len), (ssize_t)len);
  close(fd);
}

static int file_exists(fixture *f, const char *name) {
  char path[600];
  struct stat st;
  snprintf(path, sizeof(path), "%s/%s", f->dir, name);
  return stat(path, &st) == 0;
}

static void put64le(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}

/* A floor or seq file (spool_int.h) holding `value`, checksum and all: what
 * only a bug, a bad restore or an attacker leaves. */
static void put_mark(fixture *f, const char *name, const char *magic,
                     uint64_t value) {
  unsigned char b[NATKA__SPOOL_MARK_BYTES] = {0};
  memcpy(b, magic, 4);
  put64le(b + 8, value);
  put64le(b + 16, XXH64(b, 16, 0));
  put_file(f, name, b, sizeof(b));
}

/* A segment file `name` holding n records with sequences seqs[], each
 * with a good checksum and the payload "evil". */
static void put_segment(fixture *f, const char *name, const uint64_t *seqs,
                        int n) {
  unsigned char b[4][HDR + 4];
  assert_true(n <= 4);
  for (int i = 0; i < n; i++) {
    memcpy(b[i], natka__spool_rec_magic, 4);
    b[i][4] = 4, b[i][5] = b[i][6] = b[i][7] = 0;
    put64le(b[i] + 8, seqs[i]);
    memcpy(b[i] + HDR, "evil", 4);
    put64le(b[i] + 16, natka__spool_record_sum(b[i], b[i] + HDR, 4));
  }
  put_file(f, name, b, (size_t)n * sizeof(b[0]));
}

static const natka__spool_problem *problem_for(fixture *f, const char *name) {
  for (size_t i = 0; i < f->rep.nproblems; i++) {
    const char *p = f->rep.problems[i].path;
    size_t n = strlen(p), k = strlen(name);
    if (n >= k && strcmp(p + n - k, name) == 0)
      return &f->rep.problems[i];
  }
  fail_msg("no problem reported for %s", name);
  return NULL;
}

/* Segment names are sequence numbers; a file named like one but out of
 * their range (above 2^64, or 0) cannot be natka's. It must not stop the
 * spool from opening: it is reported, naming it, and left alone. */
static void
test_a_segment_name_out_of_range_is_ignored_and_reported(void **state) {
  (void)state;
  static const char *const names[] = {"99999999999999999999.seg",
                                      "18446744073709551616.seg",
                                      "00000000000000000000.seg"};
  fixture f = {0};
  make_dir(&f);
  open_with(&f, opts(4096, 0));
  append_n(&f, 1, 3);
  assert_int_equal(natka__spool_close(f.sp, NULL, 0), 0);
  f.sp = NULL;
  for (size_t i = 0; i < 3; i++)
    put_file(&f, names[i], "junk", 4);
  for (int ro = 1; ro >= 0; ro--) { /* natka spool verify, then natka run */
    natka__spool_opts o = opts(4096, 0);
    o.read_only = ro;
    open_with(&f, o);
    assert_int_equal(f.rep.nproblems, 3);
    for (size_t i = 0; i < 3; i++) {
      const natka__spool_problem *p = problem_for(&f, names[i]);
      assert_non_null(strstr(p->what, "out of range"));
      assert_true(p->ignored);
      assert_int_equal(p->bytes, 4);
    }
    assert_int_equal(f.rep.records, 3);
    if (ro) {
      assert_int_equal(natka__spool_close(f.sp, NULL, 0), 0);
      f.sp = NULL;
    }
  }
  for (int i = 1; i <= 3; i++)
    expect_next(&f, i, (uint64_t)i);
  expect_end(&f);
  append_n(&f, 4, 1);
  expect_next(&f, 4, 4);
  for (size_t i = 0; i < 3; i++)
    assert_true(file_exists(&f, names[i])); /* not ours to delete */
  done(&f);
}

/* A segment named 2^64 - 1 (in uint64_t's range) holding a good record of
 * that sequence: first + count wraps to 0. It is not read (natka never
 * hands out sequences that high), and appends do not land in it. */
static void
test_a_segment_at_the_top_of_uint64_is_not_wrapped_into(void **state) {
  (void)state;
  static const char name[] = "18446744073709551615.seg";
  fixture f = {0};
  make_dir(&f);
  open_with(&f, opts(4096, 0));
  append_n(&f, 1, 3);
  assert_int_equal(natka__spool_close(f.sp, NULL, 0), 0);
  f.sp = NULL;
  put_segment(&f, name, (const uint64_t[]){UINT64_MAX}, 1);
  open_with(&f, opts(4096, 0));
  assert_int_equal(f.rep.nproblems, 1);
  assert_non_null(strstr(problem_for(&f, name)->what, "out of range"));
  assert_int_equal(f.rep.records, 3);
  for (int i = 1; i <= 3; i++)
    expect_next(&f, i, (uint64_t)i);
  expect_end(&f);
  append_n(&f, 4, 2);
  reopen(&f, opts(4096, 0));
  assert_int_equal(f.rep.records, 5);
  for (int i = 1; i <= 5; i++)
    expect_next(&f, i, (uint64_t)i);
  expect_end(&f);
  assert_int_equal(file_size(problem_for(&f, name)->path), HDR + 4);
  done(&f);
}

/* A floor or a sequence reservation near 2^64 (checksum intact) would make
 * sequences wrap to 0 after a few appends, and order with them. Either is
 * refused as a bad file (reported), and sequences stay in order. */
static void
test_a_floor_or_reservation_near_uint64_max_is_refused(void **state) {
  (void)state;
  for (int which = 0; which < 2; which++) {
    const char *name = which == 0 ? "floor" : "seq";
    fixture f = {0};
    make_dir(&f);
    put_mark(&f, name, which == 0 ? "NKF1" : "NKR1", UINT64_MAX - 1);
    open_with(&f, opts(4096, 0));
    assert_int_equal(f.rep.nproblems, 1);
    assert_non_null(strstr(problem_for(&f, name)->what, "out of range"));
    assert_int_equal(problem_for(&f, name)->floor_file, which == 0);
    uint64_t last = 0;
    for (int i = 1; i <= 4; i++) {
      uint64_t seq = 0;
      assert_int_equal(
          natka__spool_append(f.sp, "x", 1, &seq, f.err, sizeof(f.err)), 0);
      assert_true(seq > last);
      assert_true(seq <= NATKA__SPOOL_MAX_SEQ);
      last = seq;
    }
    reopen(&f, opts(4096, 0));
    assert_int_equal(f.rep.nproblems, 0); /* rewritten at the first sync */
    assert_int_equal(f.rep.records, 4);
    done(&f);
  }
}

/* A record numbered past the range, right after the last good one, is bad
 * data (here a torn tail: cut), not a record that moves next_seq past it. */
static void test_a_record_past_the_range_is_bad_data(void **state) {
  (void)state;
  fixture f = {0};
  make_dir(&f);
  put_segment(
      &f, "09223372036854775807.seg",
      (const uint64_t[]){NATKA__SPOOL_MAX_SEQ, NATKA__SPOOL_MAX_SEQ + 1}, 2);
  open_with(&f, opts(4096, 0));
  assert_int_equal(f.rep.nproblems, 1);
  assert_true(f.rep.problems[0].tail);
  assert_non_null(strstr(f.rep.problems[0].what, "out of range"));
  assert_int_equal(f.rep.records, 1);
  assert_int_equal(stats(&f).next_seq, NATKA__SPOOL_MAX_SEQ + 1);
  natka__spool_rec rec;
  assert_int_equal(natka__spool_next(f.sp, &rec, f.err, sizeof(f.err)), 1);
  assert_int_equal(rec.seq, NATKA__SPOOL_MAX_SEQ);
  free(rec.data);
  expect_end(&f);
  assert_int_equal(
      natka__spool_append(f.sp, "x", 1, NULL, f.err, sizeof(f.err)), NATKA_EIO);
  done(&f);
}

/* At the top of the range appends are refused, with an error that says so
 * and what to do; what is stored stays readable, in order. */
static void test_sequences_run_out_with_a_clear_error(void **state) {
  (void)state;
  fixture f = {0};
  uint64_t seq = 0;
  make_dir(&f);
  put_mark(&f, "floor", "NKF1", NATKA__SPOOL_MAX_SEQ - 1);
  open_with(&f, opts(4096, 0));
  assert_int_equal(f.rep.nproblems, 0);
  append_n(&f, 1, 2);
  assert_int_equal(
      natka__spool_append(f.sp, "x", 1, &seq, f.err, sizeof(f.err)), NATKA_EIO);
  assert_non_null(strstr(f.err, "sequence"));
  assert_non_null(strstr(f.err, f.dir));
  assert_int_equal(stats(&f).records, 2);
  expect_next(&f, 1, NATKA__SPOOL_MAX_SEQ - 1);
  expect_next(&f, 2, NATKA__SPOOL_MAX_SEQ);
  expect_end(&f);
  reopen(&f, opts(4096, 0));
  assert_int_equal(f.rep.records, 2);
  expect_next(&f, 1, NATKA__SPOOL_MAX_SEQ - 1);
  expect_next(&f, 2, NATKA__SPOOL_MAX_SEQ);
  assert_int_equal(
      natka__spool_append(f.sp, "x", 1, &seq, f.err, sizeof(f.err)), NATKA_EIO);
  done(&f);
}

/* Writes <dir>/<name> as the spool writes its floor and seq files: magic,
 * 4 zero bytes, the value, XXH64 of the first 16 bytes. */
static void write_mark(fixture *f, const char *name, const char *magic,
                       uint64_t v) {
  unsigned char b[24] = {0};
  char path[600];
  memcpy(b, magic, 4);
  for (int i = 0; i < 8; i++)
    b[8 + i] = (unsigned char)(v >> (8 * i));
  uint64_t sum = XXH64(b, 16, 0);
  for (int i = 0; i < 8; i++)
    b[16 + i] = (unsigned char)(sum >> (8 * i));
  snprintf(path, sizeof(path), "%s/%s", f->dir, name);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, b, sizeof(b)), sizeof(b));
  close(fd);
}

/* Found by fuzzing (tests/fuzz/corpus/spool/segment-zero): a segment file
 * named 0 was scanned as if any sequence could open it (0 is what "any"
 * means to the scan), then every record in it failed to read as "changed
 * since open". Next to it, a name of 20 digits above UINT64_MAX made open
 * fail. Neither is natka's: they are not segments. */
static void
test_segment_names_natka_never_writes_are_not_segments(void **state) {
  (void)state;
  char one[512], zero[600], huge[600];
  fixture f = {0};
  make_dir(&f);
  open_with(&f, opts(4096, 0));
  append_n(&f, 1, 1);
  natka__spool_segment_path(f.sp, 1, one, sizeof(one));
  assert_int_equal(natka__spool_close(f.sp, NULL, 0), 0);
  snprintf(zero, sizeof(zero), "%s/00000000000000000000.seg", f.dir);
  assert_int_equal(rename(one, zero), 0);
  snprintf(huge, sizeof(huge), "%s/99999999999999999999.seg", f.dir);
  int fd = open(huge, O_WRONLY | O_CREAT, 0600);
  assert_true(fd >= 0);
  close(fd);
  open_with(&f, opts(4096, 0));
  assert_int_equal(f.rep.segments, 0);
  assert_int_equal(f.rep.pending, 0);
  expect_end(&f);
  done(&f);
}

/* Found by fuzzing (tests/fuzz/corpus/spool/sequences-at-uint64-max): a
 * reservation (seq file) at UINT64_MAX made the next append take that
 * sequence and wrap next_seq to 0, so after a reopen the record counted as
 * consumed and was never delivered; a floor of UINT64_MAX read as "no floor
 * file". Values above NATKA__SPOOL_MAX_SEQ are refused as bad files. */
static void test_sequences_beyond_the_maximum_are_refused(void **state) {
  (void)state;
  fixture f = {0};
  make_dir(&f);
  write_mark(&f, "seq", "NKR1", UINT64_MAX);
  write_mark(&f, "floor", "NKF1", UINT64_MAX);
  open_with(&f, opts(4096, 0));
  /* Both files are reported: the floor, and the reservation. */
  assert_int_equal(f.rep.nproblems, 2);
  assert_true(f.rep.problems[0].floor_file || f.rep.problems[1].floor_file);
  append_n(&f, 1, 1);
  reopen(&f, opts(4096, 0));
  assert_int_equal(f.rep.pending, 1);
  expect_next(&f, 1, 1);
  done(&f);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_segment_names_natka_never_writes_are_not_segments),
    cmocka_unit_test(test_sequences_beyond_the_maximum_are_refused),
    cmocka_unit_test(test_records_come_back_in_order_across_segments),
    cmocka_unit_test(test_reopen_keeps_everything),
    cmocka_unit_test(test_acks_move_a_persisted_floor_and_delete_segments),
    cmocka_unit_test(test_a_drained_spool_keeps_no_segment),
    cmocka_unit_test(test_sync_is_due_as_the_fsync_policy_says),
    cmocka_unit_test(test_a_torn_tail_at_every_byte_is_cut_and_reported),
    cmocka_unit_test(test_a_flipped_byte_in_the_middle_is_detected),
    cmocka_unit_test(test_sequences_are_never_reused),
    cmocka_unit_test(test_corruption_in_an_older_segment_skips_only_its_rest),
    cmocka_unit_test(test_read_only_open_reports_without_cutting),
    cmocka_unit_test(test_a_bad_floor_file_replays_everything),
    cmocka_unit_test(test_a_second_writer_is_refused),
    cmocka_unit_test(test_open_fails_only_on_real_io_errors),
    cmocka_unit_test(test_a_full_spool_pushes_back_unchanged),
    cmocka_unit_test(test_a_failed_write_leaves_no_partial_record),
    cmocka_unit_test(test_events_round_trip_byte_for_byte),
    cmocka_unit_test(test_unpack_refuses_truncated_and_garbage_input),
    cmocka_unit_test(test_put_event_then_read_it_back),
    cmocka_unit_test(test_the_source_feeds_a_gateway_until_drained),
    cmocka_unit_test(test_a_segment_name_out_of_range_is_ignored_and_reported),
    cmocka_unit_test(test_a_segment_at_the_top_of_uint64_is_not_wrapped_into),
    cmocka_unit_test(test_a_floor_or_reservation_near_uint64_max_is_refused),
    cmocka_unit_test(test_a_record_past_the_range_is_bad_data),
    cmocka_unit_test(test_sequences_run_out_with_a_clear_error),
};

NATKA_TEST_MAIN(tests)
