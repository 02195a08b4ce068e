/*
 * The spool's internals, shared by spool.c (the engine: appends, the read
 * cursor, acks and the floor) and spool_scan.c (the verification done at
 * open). Not part of the module's API, which is spool.h; include it from
 * those two files only.
 */
#ifndef NATKA_SPOOL_INT_H
#define NATKA_SPOOL_INT_H

#include <stddef.h>
#include <stdint.h>

#include "spool.h"

/* A floor or seq file: magic, 4 zero bytes, the value, XXH64 of the first
 * 16 bytes. */
#define NATKA__SPOOL_MARK_BYTES 24

/* The first bytes of every record, of the floor file and of the seq file. */
extern const unsigned char natka__spool_rec_magic[4];
extern const unsigned char natka__spool_floor_magic[4];
extern const unsigned char natka__spool_seq_magic[4];

/* One segment file. In memory the spool keeps one of these per segment,
 * never one per record (see spool.c). */
typedef struct natka__spool_seg {
  uint64_t first;      /* the file name; the first good record's seq */
  uint64_t count;      /* good records: first .. first + count - 1 */
  uint64_t valid;      /* bytes those records take, from offset 0 */
  uint64_t file_bytes; /* size on disk */
  uint64_t start_off;  /* open only: offset of the first record >= floor */
  int damaged;         /* bad data after `valid`: never appended to */
} natka__spool_seg;

/* A record read and not yet settled. */
typedef struct natka__spool_out {
  uint64_t seq;
  int acked;
} natka__spool_out;

struct natka__spool {
  char *dir;
  natka__spool_opts opts;
  int lock_fd;
  natka__spool_seg *segs;
  size_t nsegs, cap;
  uint64_t bytes;
  uint64_t next_seq;
  int afd;          /* append descriptor of the last segment, or -1 */
  int unsynced;     /* fsync=interval: appended since the last fdatasync */
  int dirty_tail;   /* a failed write could not be cut back yet */
  size_t cur_idx;   /* read cursor: segment index ... */
  uint64_t cur_off; /* ... offset ... */
  uint64_t cur_seq; /* ... and the sequence of the record there */
  int rfd;          /* read descriptor of segs[cur_idx], or -1 */
  natka__spool_out *outs; /* outstanding, in sequence order */
  size_t out_head, out_n, out_cap;
  uint64_t out_unacked;
  uint64_t floor_disk; /* the floor as persisted */
  void (*notify)(void *data);
  void *notify_data;
  int opened;        /* open completed: close syncs */
  uint64_t reserved; /* sequences below this may have been handed out */
  int seq_gap;       /* next_seq jumped: the next append starts a segment */
};

/* ------------------------------------------------------- spool.c */

/* Little-endian integers at p. */
uint32_t natka__spool_get32(const unsigned char *p);
uint64_t natka__spool_get64(const unsigned char *p);

/* A record's checksum: XXH64 of the payload, seeded with the XXH64 of the
 * header's first 16 bytes (magic, length, sequence). */
uint64_t natka__spool_record_sum(const unsigned char *hdr, const void *payload,
                                 size_t len);

/* <dir>/<name> into buf. */
void natka__spool_file_path(const natka__spool *sp, const char *name, char *buf,
                            size_t len);

/* Reports "spool: cannot <what> <path>: <strerror(e)>" and returns
 * NATKA_EIO. */
int natka__spool_io_fail(char *err, size_t errlen, const char *what,
                         const char *path, int e);

/* -------------------------------------------------- spool_scan.c */

/* Reads <dir>/floor into *floor: UINT64_MAX when there is none (a new
 * spool), 0 with a problem in rep (floor_file set) when it is bad. Returns
 * 0 or a NATKA_E* code for a read error. */
int natka__spool_read_floor(natka__spool *sp, natka__spool_report *rep,
                            uint64_t *floor, char *err, size_t errlen);

/* The sequence reservation in <dir>/seq (see spool.c, reserve()), or 0 when
 * there is none. One that cannot be used (bad magic or checksum, out of
 * range) is 0 too, and reported in rep: a new reservation replaces it. */
uint64_t natka__spool_read_reserved(natka__spool *sp, natka__spool_report *rep);

/* Lists and verifies every segment file into sp->segs (sorted, empty ones
 * dropped), adding their sizes to sp->bytes and what was wrong to rep; a
 * torn tail of the newest segment is cut off unless read-only. start_off of
 * each segment is set relative to `floor`. A file named like a segment for
 * a sequence out of range is reported and left alone. Returns 0 or a
 * NATKA_E* code. */
int natka__spool_scan_all(natka__spool *sp, uint64_t floor,
                          natka__spool_report *rep, char *err, size_t errlen);

#endif
