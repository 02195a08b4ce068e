/*
 * What libnatka exports: the functions declared NATKA_EXTERN in these public
 * headers, nothing else. The library is built with hidden visibility, so the
 * core's internal functions (natka__*) stay out of its symbol table and out
 * of its ABI.
 */
#ifndef NATKA_EXPORT_H
#define NATKA_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#define NATKA_EXTERN __attribute__((visibility("default")))
#else
#define NATKA_EXTERN
#endif

#endif
