/*
 * The disk spool: natka's own append-only, checksummed queue of events it
 * has accepted and Kafka has not taken yet.
 *
 * A spool is a directory:
 *
 *   00000000000000000001.seg   segments, named by their first sequence
 *   00000000000000004711.seg   number (20 digits), each up to
 *   ...                        segment_bytes (a larger record gets its own)
 *   floor                      the consumed floor (see below)
 *   seq                        sequences reserved (see spool.c, reserve())
 *   lock                       flock()ed by the process that writes
 *
 * Sequence numbers run from 1 to NATKA__SPOOL_MAX_SEQ (2^63 - 1: at a
 * million records a second, 292,000 years). The bound sits far below
 * UINT64_MAX so that no sum of a sequence and a count can wrap. A segment
 * name, record, floor or reservation outside it is bad data, never read as
 * a sequence; an append past it is refused.
 *
 * A segment is a run of records, each a 24-byte header then the payload:
 *
 *   offset  size  field (little-endian)
 *        0     4  magic "NKS1" (the format version is its last byte)
 *        4     4  payload length (at most NATKA__SPOOL_MAX_RECORD)
 *        8     8  sequence number: 1, 2, 3 ... without gaps in a segment
 *       16     8  XXH64(payload, seed = XXH64(bytes 0..15, seed 0))
 *       24     n  payload (opaque bytes; natka's are spool_event.c's)
 *
 * The floor file is 24 bytes: "NKF1", 4 zero bytes, the floor (u64), and
 * XXH64 of the first 16 bytes. Every record below the floor was consumed
 * (acked); it is written as floor.tmp, fsync'ed and renamed over floor.
 *
 * Delivery is AT LEAST ONCE. Records are read in order and settled out of
 * order: the floor only passes a record once it and every record before it
 * are acked, and it is persisted by natka__spool_sync(), not by every ack.
 * After a crash the spool replays from the persisted floor, so records acked
 * above it (or after the last sync) are offered again.
 *
 * Durability, by spool.fsync (what a record that append returned 0 for can
 * still lose):
 *   always    fdatasync() before append returns. A process crash loses
 *             nothing; a power loss loses nothing (one fdatasync per record:
 *             by far the slowest).
 *   interval  the owner calls natka__spool_sync() every
 *             spool.fsync_interval_ms. A process crash loses nothing (the
 *             data is in the kernel); a power loss or kernel crash loses up
 *             to one interval of appends.
 *   never     the kernel writes back when it likes. A process crash loses
 *             nothing; a power loss can lose everything not yet written back
 *             (typically up to 30 s on Linux).
 * Whatever is lost to a power loss is lost from the tail: open finds the
 * torn tail, cuts it off and reports it.
 *
 * Threads: a spool is not thread-safe. One thread at a time; in natka, the
 * loop thread. Calls are plain POSIX I/O on local files: an append is one
 * pwritev() (plus an fdatasync() with fsync=always).
 *
 * Errors: 0 or a negative NATKA_E* code; where a function takes err/errlen
 * the reason, naming the file, is written there.
 */
#ifndef NATKA_SPOOL_H
#define NATKA_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "natka/natka.h"

/* Forward declarations of what the source half needs (pipe.h, log.h). */
typedef struct natka__source natka__source;
typedef struct natka__log natka__log;

#define NATKA__SPOOL_HEADER_BYTES 24
#define NATKA__SPOOL_MAX_RECORD ((size_t)256 << 20)
#define NATKA__SPOOL_MAX_SEQ ((uint64_t)INT64_MAX)

typedef struct natka__spool natka__spool;

typedef enum {
  NATKA__SPOOL_FSYNC_ALWAYS = 0,
  NATKA__SPOOL_FSYNC_INTERVAL = 1,
  NATKA__SPOOL_FSYNC_NEVER = 2
} natka__spool_fsync;

typedef struct natka__spool_opts {
  uint64_t max_bytes;     /* bound on all segment files together; 0: 1 GiB */
  uint64_t segment_bytes; /* rotate past this; 0: 64 MiB */
  natka__spool_fsync fsync;
  /* Tools (natka spool inspect/verify): no lock, no directory creation,
   * nothing truncated, deleted or written; append and ack are refused. */
  int read_only;
} natka__spool_opts;

/* "always" | "interval" | "never". Returns 0 or NATKA_EINVAL. */
int natka__spool_fsync_parse(const char *s, natka__spool_fsync *out);

/* One problem open found. Open never refuses a spool for bad data, nor for
 * a strange file in its directory. */
typedef struct natka__spool_problem {
  char *path;              /* the segment (floor, seq, stray) file */
  uint64_t offset;         /* where the bad bytes start */
  uint64_t bytes;          /* bytes cut (tail) or skipped (not tail) */
  uint64_t records_before; /* good records before it in this file */
  /* 1: a torn or corrupt tail of the newest segment: cut off with
   * ftruncate() (read_only: what open would cut). 0: bad data with good
   * records after it, or in an older segment: the records before it are
   * kept, the rest of that segment is skipped (left on disk, never
   * delivered, deleted with the segment once the floor passes it). */
  int tail;
  /* 1: the floor file is unreadable: every record on disk counts as not
   * consumed (delivered again: at least once); it is rewritten at the next
   * sync. bytes: its size. */
  int floor_file;
  /* 1: a file open does not use: named like a segment but for a sequence
   * out of range (no natka wrote it: never read, never deleted), or a seq
   * file that cannot be used (the next reservation replaces it). bytes: its
   * size. */
  int ignored;
  char what[128]; /* the defect: "short header (10 of 24 bytes)", ... */
} natka__spool_problem;

typedef struct natka__spool_report {
  size_t segments;  /* segment files kept */
  uint64_t records; /* good records on disk, consumed or not */
  uint64_t pending; /* of those, not consumed (at or above the floor) */
  uint64_t floor;
  uint64_t bytes; /* size of the segment files */
  /* read_only: another process holds the lock (a running natka), so a
   * record being written as open scanned may look like a torn tail. */
  int in_use;
  natka__spool_problem *problems;
  size_t nproblems;
} natka__spool_report;

/* Frees what the report owns (not the struct itself); zeroes it. */
void natka__spool_report_free(natka__spool_report *r);

/*
 * Opens (read-write: creates, with parents) the spool in `dir`, takes its
 * lock, and scans every segment, verifying every record's checksum. Bad data
 * is handled and listed in *report (see natka__spool_problem) but is never a
 * reason to fail. The read cursor starts at the floor.
 *
 * Ownership: *out is the caller's (natka__spool_close); `dir` and `opts` are
 * copied; report (may be NULL) is filled on success and then owns memory
 * (natka__spool_report_free); on error it is left empty.
 * Errors: NATKA_EINVAL, NATKA_ENOMEM, NATKA_EBUSY (another process holds the
 * lock), NATKA_EIO (cannot create, list, read or truncate: err names the
 * path and says why).
 */
int natka__spool_open(natka__spool **out, const char *dir,
                      const natka__spool_opts *opts,
                      natka__spool_report *report, char *err, size_t errlen);

/*
 * Syncs (data with fsync != never, and the floor), closes the files,
 * releases the lock and frees the spool. NULL is a no-op. Returns 0 or the
 * error of that last sync (the spool is freed either way).
 */
int natka__spool_close(natka__spool *sp, char *err, size_t errlen);

/*
 * Appends one record holding data[0..len) and gives its sequence number
 * (seq may be NULL). With fsync=always it is on disk when this returns.
 * Errors leave the spool as it was, with nothing of the record on disk:
 *   NATKA_EBUSY   the spool would grow past max_bytes: push back, try later
 *   NATKA_EIO     a write error (ENOSPC, EFBIG, EIO...): the partial record
 *                 was cut back off; err has the file and strerror(). Or no
 *                 sequence number is left (the next would pass
 *                 NATKA__SPOOL_MAX_SEQ): for good, err says so and what to do
 *   NATKA_EINVAL  read_only, or len > NATKA__SPOOL_MAX_RECORD
 *   NATKA_ENOMEM
 * Calls the notify callback (natka__spool_set_notify) after a success.
 */
int natka__spool_append(natka__spool *sp, const void *data, size_t len,
                        uint64_t *seq, char *err, size_t errlen);

/*
 * What the owner's timer does: fdatasync()s the data appended since the last
 * sync (fsync=interval; always has nothing left to do, never skips it),
 * persists the floor when it moved, and deletes the segments wholly below it
 * (a fully consumed newest segment too: the next append starts a new one).
 * Returns 0 or NATKA_EIO.
 */
int natka__spool_sync(natka__spool *sp, char *err, size_t errlen);

/* Nonzero when natka__spool_sync() has something to do. */
int natka__spool_sync_due(const natka__spool *sp);

/* One record read for delivery. */
typedef struct natka__spool_rec {
  uint64_t seq;
  uint64_t segment; /* first sequence of its segment (the file name) */
  uint64_t offset;  /* of the header in that file */
  size_t size;      /* header + payload */
  char *data;       /* the payload, malloc()ed, NUL after len: the caller's */
  size_t len;
} natka__spool_rec;

/*
 * Reads the next record in sequence order into *rec, and counts it as
 * outstanding until natka__spool_ack(). Returns
 *   1                 a record (rec->data is the caller's to free())
 *   0                 nothing more for now
 *   NATKA_EMALFORMED  record rec->seq no longer matches its checksum (the
 *                     disk changed since open): rec->data is NULL, the seq is
 *                     outstanding (ack it once dealt with, e.g. dead-
 *                     lettered), and the rest of its segment is skipped; err
 *                     says where and how many records that skips
 *   NATKA_EIO / NATKA_ENOMEM  nothing was consumed; try again later
 * A record that must be offered again (nak) is the reader's business: keep
 * its bytes and offer them again; the spool only needs the final ack.
 */
int natka__spool_next(natka__spool *sp, natka__spool_rec *rec, char *err,
                      size_t errlen);

/*
 * Marks outstanding record `seq` done (delivered or dead-lettered) and moves
 * the floor past every leading done record. Returns 0, or NATKA_EINVAL when
 * seq is not outstanding (never read, or already acked).
 */
int natka__spool_ack(natka__spool *sp, uint64_t seq);

/*
 * Read-only spools only (tools): moves the read cursor to the first record
 * at or after `seq` (0: the oldest on disk, consumed or not). Returns 0,
 * NATKA_EINVAL or NATKA_EIO.
 */
int natka__spool_seek(natka__spool *sp, uint64_t seq, char *err, size_t errlen);

typedef struct natka__spool_stats {
  uint64_t pending;     /* records not acked yet, outstanding included */
  uint64_t outstanding; /* read by natka__spool_next, not acked */
  uint64_t records;     /* good records on disk, consumed or not */
  uint64_t bytes;       /* size of the segment files */
  uint64_t max_bytes;
  uint64_t floor;    /* every record below it is consumed (in memory) */
  uint64_t next_seq; /* the sequence the next append gets */
  size_t segments;
} natka__spool_stats;

/* Fills *st (cheap: a loop over the segments, not the records). With a
 * read-only spool after natka__spool_seek(), pending counts from the cursor.
 * This is what the gateway's natka_stat("spool_pending") reports. */
void natka__spool_get_stats(const natka__spool *sp, natka__spool_stats *st);

/* The directory, as given to open. */
const char *natka__spool_dir(const natka__spool *sp);

/* Writes "<dir>/<20 digits>.seg" for a segment's first sequence. */
void natka__spool_segment_path(const natka__spool *sp, uint64_t segment,
                               char *buf, size_t len);

/* Calls cb(data) after every successful append (cb NULL: none), so a reader
 * waiting for records wakes up. */
void natka__spool_set_notify(natka__spool *sp, void (*cb)(void *data),
                             void *data);

/* ----------------------------------------------- events (spool_event.c) */

/*
 * The payload natka writes: a whole event in a compact, versioned,
 * binary-safe form (little-endian; "u32 len + bytes" strings):
 *
 *   u8  version (1)
 *   u8  flags: 1 id present, 2 kind present, 4 key present ("no key" is
 *       flag 4 clear; an empty key is flag 4 set and length 0)
 *   i64 ts (ns)
 *   [id] [kind] [key]   each as u32 len + bytes, when flagged
 *   data                u32 len + bytes
 *   u32 header count, then per header: name (u32 len + bytes, non-empty, no
 *       NUL), value (u32 len + bytes), in order (repeated names kept)
 *
 * pack: *buf is malloc()ed, the caller's. Returns 0, NATKA_EINVAL (a field
 * longer than 4 GiB) or NATKA_ENOMEM.
 * unpack: reads only buf[0..len); *out is the caller's. Returns 0,
 * NATKA_EMALFORMED (bad version, flags, lengths, trailing bytes, a NUL in
 * id/kind/name, an empty name) or NATKA_ENOMEM.
 */
int natka__spool_event_pack(const natka_event *ev, char **buf, size_t *len);
int natka__spool_event_unpack(const void *buf, size_t len, natka_event **out);

/* Packs ev and appends it (ev stays the caller's): what the gateway, the
 * ingress and `hold` call to store an event. With NATKA_EBUSY (full) push
 * back on the publisher; with NATKA_EIO nothing was stored. Errors as
 * natka__spool_append() and natka__spool_event_pack(). Loop thread. */
int natka__spool_put_event(natka__spool *sp, const natka_event *ev,
                           uint64_t *seq, char *err, size_t errlen);

/* ------------------------------------------- the source (source_spool.c) */

/*
 * Opens conf's spool.dir with conf's spool.* settings (read-write) and logs
 * every problem open reported (warn), then one info line with what it holds.
 * Errors as natka__spool_open(); err names the directory.
 */
int natka__spool_open_conf(natka__spool **out, const natka_config *conf,
                           natka__log *log, char *err, size_t errlen);

#endif
