/*
 * Helpers shared by the benchmark programs in tests/bench: a monotonic clock,
 * option parsing, connecting to JetStream, starting and stopping natka, the
 * payload every program sends and the headers of a throughput event,
 * percentiles, the RESULT line that scripts/bench reads, and making a Kafka
 * topic ahead of a run.
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

#include <sys/types.h>

#include <nats/nats.h>

/* Monotonic seconds. */
double bench_now(void);

/* CPU seconds (user + system) this process has used. */
double bench_cpu_self(void);

/* Parses a positive integer option value or exits with a message naming
 * the option. */
int64_t bench_arg_int(const char *opt, const char *value, int64_t min,
                      int64_t max);

/* The values of an option that may be given several times, in order. */
#define BENCH_LIST_MAX 16
typedef struct bench_list {
  const char *v[BENCH_LIST_MAX];
  int n;
} bench_list;

/* One long option of a program; a table of them ends with {NULL}. Exactly
 * one of str, num, flag and list is set: a string value, an integer value in
 * min..max (checked with bench_arg_int), an option without a value that
 * sets *flag to 1, or a string value that may be repeated (each one appended
 * to *list). What is not given keeps the value it had. */
typedef struct bench_opt {
  const char *name; /* without the leading "--" */
  const char **str;
  int64_t *num;
  int64_t min, max;
  int *flag;
  int required;
  bench_list *list;
} bench_opt;

#define BENCH_STR(name, p, required)                                           \
  { name, p, NULL, 0, 0, NULL, required, NULL }
#define BENCH_INT(name, p, min, max, required)                                 \
  { name, NULL, p, min, max, NULL, required, NULL }
#define BENCH_FLAG(name, p)                                                    \
  { name, NULL, NULL, 0, 0, p, 0, NULL }
#define BENCH_LIST(name, p)                                                    \
  { name, NULL, NULL, 0, 0, NULL, 0, p }
/* --size BYTES and --events N, required by every program. */
#define BENCH_SIZE_EVENTS(size, events)                                        \
  BENCH_INT("size", size, 0, 8 << 20, 1),                                      \
      BENCH_INT("events", events, 1, INT32_MAX, 1)

/* Parses argv against opts (at most 16), plus --help / -h, which prints
 * `usage` to stdout and exits 0. An unknown option, or a required one not
 * given, prints `usage` to stderr and exits 2. */
void bench_options(int argc, char **argv, const bench_opt *opts,
                   const char *usage);

/* Connects to `url` and makes a JetStream context with `jo` (NULL: the
 * defaults); exits through bench_die(prog, ...) when either fails. */
void bench_js_connect(const char *prog, const char *url, jsOptions *jo,
                      natsConnection **nc, jsCtx **js);

/* Deletes `stream` if it exists and creates it again over `subject` (file
 * storage); exits through bench_die(prog, ...) on failure. */
void bench_js_recreate_stream(const char *prog, jsCtx *js, const char *stream,
                              const char *subject);

/* Starts `natka run -c config [-s KEY=VALUE ...]`, one -s per entry of
 * `sets` (NULL: none), with stdout and stderr appended to `log` (NULL:
 * inherited); exits through bench_die(prog, ...) on failure. */
pid_t bench_natka_spawn(const char *prog, const char *natka, const char *config,
                        const bench_list *sets, const char *log);

/* SIGTERM, then SIGKILL after 60 s; returns the exit status, or -1. */
int bench_natka_stop(const char *prog, pid_t pid);

void bench_sleep_ms(long ms);

/* Destroys js and nc, then releases the NATS library (nats_Close). */
void bench_js_close(natsConnection *nc, jsCtx *js);

/* A payload of `size` printable bytes (not NUL-terminated); the caller
 * frees it. Exits when out of memory. */
char *bench_payload(size_t size);

/*
 * The headers of a throughput event, as a real one carries them: a
 * CloudEvents id (UUIDv7), kind, source and time, a W3C traceparent, a
 * tenant, the account the event belongs to (x-account, one of
 * BENCH_ACCOUNTS values: the rules read it and make it the Kafka key), and
 * one name given twice (x-tag). bench_fill publishes them on NATS;
 * bench_raw_kafka produces what natka writes on Kafka for such an event
 * (ce-* written ce_*, ce_specversion added, the key taken from x-account).
 */
#define BENCH_ACCOUNTS 400
#define BENCH_EVENT_HEADERS 10

typedef struct bench_header {
  const char *name, *value;
} bench_header;

typedef struct bench_event {
  bench_header h[BENCH_EVENT_HEADERS];
  int n;
  const char *key; /* the value of x-account */
  int64_t ts_ms;   /* ce-time, ms since the epoch */
  char id[37], time[32], traceparent[56], tenant[16], account[16];
} bench_event;

/* Fills ev with event number i of a run whose ids start at `seed`, timed
 * now (CLOCK_REALTIME); kafka selects the header names natka writes on
 * Kafka. ev's strings live in ev itself. */
void bench_event_make(bench_event *ev, uint64_t seed, int64_t i, int kafka);

/* Prints the RESULT line; `extra` (may be NULL or "") is appended as is,
 * e.g. "cpu=1.20 batch=100". */
void bench_result(const char *name, size_t size, int64_t events, double seconds,
                  const char *extra);

/* Sorts n values in increasing order. */
void bench_sort(double *v, size_t n);

/* Nearest-rank percentile p (0..100) of n sorted values; -1 when n is 0. */
double bench_pct(const double *sorted, size_t n, double p);

/* Prints "bench <prog>: <message>" to stderr and exits with status 1. */
void bench_die(const char *prog, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

/* Creates `topic` with `partitions` partitions (0: the broker's default)
 * and the default replication unless it exists, and waits until every
 * partition has a leader, so that topic creation stays out of every timed
 * window. An existing topic with another partition count is an error. 0 or
 * -1 (err filled). */
int bench_kafka_topic(const char *brokers, const char *topic, int partitions,
                      char *err, size_t errlen);

/* Records in `topic` (sum over partitions of high - low watermark), or -1
 * (err filled). */
int64_t bench_kafka_records(const char *brokers, const char *topic, char *err,
                            size_t errlen);

#endif /* NATKA_BENCH_UTIL_H */
