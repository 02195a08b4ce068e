/*
 * Helpers shared by the benchmark programs in tests/bench: a monotonic clock,
 * number parsing for options, the payload every program sends, the RESULT
 * line that scripts/bench reads, and making a Kafka topic ahead of a run.
 *
 * RESULT line (one per program run, on stdout):
 *   RESULT name=<n> size=<B> events=<N> seconds=<s> eps=<events/s>
 *          mbps=<MB/s> [key=value ...]
 * MB is 10^6 bytes of event payload; headers and framing are not counted.
 */
#ifndef NATKA_BENCH_UTIL_H
#define NATKA_BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Monotonic seconds. */
double bench_now(void);

/* CPU seconds (user + system) this process has used. */
double bench_cpu_self(void);

/* Parses a positive integer option value or exits with a message naming
 * the option. */
int64_t bench_arg_int(const char *opt, const char *value, int64_t min,
                      int64_t max);

/* A payload of `size` printable bytes (not NUL-terminated); the caller
 * frees it. Exits when out of memory. */
char *bench_payload(size_t size);

/* Prints the RESULT line; `extra` (may be NULL or "") is appended as is,
 * e.g. "cpu=1.20 batch=100". */
void bench_result(const char *name, size_t size, int64_t events, double seconds,
                  const char *extra);

/* Prints "bench <prog>: <message>" to stderr and exits with status 1. */
void bench_die(const char *prog, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

/* Creates `topic` with the broker's default partitions and replication
 * unless it exists, and waits until every partition has a leader, so that
 * topic creation stays out of every timed window. 0 or -1 (err filled). */
int bench_kafka_topic(const char *brokers, const char *topic, char *err,
                      size_t errlen);

/* Records in `topic` (sum over partitions of high - low watermark), or -1
 * (err filled). */
int64_t bench_kafka_records(const char *brokers, const char *topic, char *err,
                            size_t errlen);

#endif /* NATKA_BENCH_UTIL_H */
