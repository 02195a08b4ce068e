/*
 * A set of 64-bit positions (JetStream stream sequences) kept as sorted,
 * disjoint ranges. Committed positions are nearly contiguous, so a set that
 * covers millions of them stays a handful of ranges; the holes are the
 * events still in flight or redelivered later.
 *
 * Not thread-safe: one owner, on the loop thread.
 */
#ifndef NATKA_SEQSET_H
#define NATKA_SEQSET_H

#include <stddef.h>
#include <stdint.h>

typedef struct natka__seqrange {
  uint64_t lo, hi; /* inclusive */
} natka__seqrange;

typedef struct natka__seqset {
  natka__seqrange *r;
  size_t n, cap;
} natka__seqset;

/* Adds pos; 0 or NATKA_ENOMEM (the set is unchanged then). */
int natka__seqset_add(natka__seqset *s, uint64_t pos);
/* 1 when pos is in the set. */
int natka__seqset_has(const natka__seqset *s, uint64_t pos);
/* Forgets every position <= floor. */
void natka__seqset_prune(natka__seqset *s, uint64_t floor);
/* dst = a copy of src; 0 or NATKA_ENOMEM (dst untouched then). */
int natka__seqset_copy(natka__seqset *dst, const natka__seqset *src);
/* Moves src into dst (dst's old ranges are freed; src is left empty). */
void natka__seqset_move(natka__seqset *dst, natka__seqset *src);
void natka__seqset_clear(natka__seqset *s);
/* "1-500,502,507-510" (malloc'd, the caller frees; "" for an empty set), or
 * NULL when out of memory. */
char *natka__seqset_format(const natka__seqset *s);
/* Parses what natka__seqset_format() wrote into an empty set; 0, or
 * NATKA_EINVAL for text that is not such a list (the set stays empty):
 * positions are decimal digits within uint64 (no sign, no blanks, no
 * overflow), ranges sorted and apart, commas only between them. */
int natka__seqset_parse(natka__seqset *s, const char *text);
/* One position, the whole of text, by the same rule; 0, or NATKA_EINVAL
 * (*pos untouched then). */
int natka__seqset_parse_pos(const char *text, uint64_t *pos);

#endif
