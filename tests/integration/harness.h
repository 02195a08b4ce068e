/*
 * Helpers for natka's integration tests: real nats-server and Kafka started
 * by scripts/servers, the natka binary run as a child process.
 *
 * Every test is one executable run by ctest with the arguments
 *   <servers_dir> <path of the natka binary> <repo source dir>
 * It fills an it_test with it_init(), passes it to every helper and ends
 * with it_pass(). Nothing here keeps state outside the it_test and the
 * objects a test passes in.
 *
 * Failures: the IT_CHECK* macros and every helper that cannot go on call
 * it_fail(), which prints file:line and the values, dumps the tail of the
 * natka log, kills natka, runs the test's on_fail hook, keeps the temp dir
 * (printing its path) and exits with status 1.
 */
#ifndef NATKA_IT_HARNESS_H
#define NATKA_IT_HARNESS_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include <cjson/cJSON.h>
#include <nats/nats.h>

/* A child process with its output in a file. */
typedef struct it_proc {
  pid_t pid;          /* 0: not running */
  int status;         /* exit code once reaped; 128+N when killed by N */
  char log[PATH_MAX]; /* stdout and stderr, or stdout only (see it_run) */
} it_proc;

typedef struct it_test it_test;
struct it_test {
  const char *name;
  char servers_dir[PATH_MAX];
  char natka_bin[PATH_MAX];
  char repo[PATH_MAX];
  /* From <servers_dir>/env; empty when the servers are not needed. */
  char nats_url[256];
  char kafka_brokers[256];
  char nats_cli[PATH_MAX];
  char tmpdir[PATH_MAX]; /* removed by it_pass, kept on failure */
  char uniq[64];         /* "<name>_<pid>_<time>": prefix for run names */
  it_proc *natka;        /* the natka whose log a failure dumps */
  void (*on_fail)(it_test *t, void *data); /* e.g. bring Kafka back */
  void *on_fail_data;
  int failing;
  int64_t start_ms;
};

/* Fills t from argv and, when need_servers, <servers_dir>/env; makes the
 * temp dir and the unique prefix. Exits 1 on bad arguments. */
void it_init(it_test *t, const char *name, int argc, char **argv,
             int need_servers);
/* (Re)reads NATS_URL, KAFKA_BROKERS and NATS_CLI from <servers_dir>/env;
 * with `key`, also copies that variable's value to out (len bytes), failing
 * when it is not there. */
void it_load_env(it_test *t, const char *key, char *out, size_t len);
/* Removes the temp dir, prints PASS with the elapsed time, returns 0. */
int it_pass(it_test *t);
/* Reports a failure as described above. Never returns. */
void it_fail(it_test *t, const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));
/* Prints one progress line prefixed with the test name and elapsed time. */
void it_log(it_test *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define IT_FAIL(t, ...) it_fail((t), __FILE__, __LINE__, __VA_ARGS__)
#define IT_CHECK(t, cond)                                                      \
  do {                                                                         \
    if (!(cond))                                                               \
      IT_FAIL(t, "CHECK(%s) failed", #cond);                                   \
  } while (0)
/* Integers compared with op (==, <, ...), both printed on failure. */
#define IT_CHECK_INT(t, a, op, b)                                              \
  do {                                                                         \
    long long it_a_ = (long long)(a), it_b_ = (long long)(b);                  \
    if (!(it_a_ op it_b_))                                                     \
      IT_FAIL(t, "CHECK(%s %s %s) failed: %lld vs %lld", #a, #op, #b, it_a_,   \
              it_b_);                                                          \
  } while (0)
#define IT_CHECK_STR(t, a, b)                                                  \
  do {                                                                         \
    const char *it_a_ = (a), *it_b_ = (b);                                     \
    if (it_a_ == NULL || it_b_ == NULL || strcmp(it_a_, it_b_) != 0)           \
      IT_FAIL(t, "CHECK(%s == %s) failed: \"%s\" vs \"%s\"", #a, #b,           \
              it_a_ ? it_a_ : "(null)", it_b_ ? it_b_ : "(null)");             \
  } while (0)
#define IT_CHECK_HAS(t, hay, needle)                                           \
  do {                                                                         \
    const char *it_h_ = (hay), *it_n_ = (needle);                              \
    if (it_h_ == NULL || strstr(it_h_, it_n_) == NULL)                         \
      IT_FAIL(t, "CHECK(%s contains \"%s\") failed; it is: \"%s\"", #hay,      \
              it_n_, it_h_ ? it_h_ : "(null)");                                \
  } while (0)
#define IT_CHECK_MEM(t, a, alen, b, blen)                                      \
  do {                                                                         \
    size_t it_al_ = (alen), it_bl_ = (blen);                                   \
    if (it_al_ != it_bl_ || (it_al_ > 0 && memcmp((a), (b), it_al_) != 0))     \
      IT_FAIL(t, "CHECK(%s == %s) failed: %zu vs %zu bytes, different", #a,    \
              #b, it_al_, it_bl_);                                             \
  } while (0)

/* ---------------------------------------------------------------- files */

int64_t it_now_ms(void);
void it_sleep_ms(int64_t ms);
/* Writes a printf-formatted file `name` into the temp dir; its path goes to
 * path (PATH_MAX bytes) when not NULL. */
void it_write_file(it_test *t, const char *name, char *path, const char *fmt,
                   ...) __attribute__((format(printf, 4, 5)));
/* The whole file, NUL-terminated, or NULL; free() it. */
char *it_read_file(const char *path, size_t *len);
/* A 127.0.0.1 TCP port nobody listens on at the time of the call. */
int it_free_port(it_test *t);

/* ---------------------------------------------------------------- processes */

/* Starts argv[0] (a path) with stdout+stderr appended to <tmpdir>/<logname>;
 * with err_log, stderr goes there instead. */
void it_spawn(it_test *t, it_proc *p, const char *logname, const char *err_log,
              char *const argv[]);
/* Waits for p to exit; returns its status, or -1 after timeout_ms. */
int it_wait(it_proc *p, int64_t timeout_ms);
void it_kill(it_proc *p, int sig);
/* Runs argv to completion (killing it after timeout_ms: failure); returns
 * its exit status. Outputs are NUL-terminated heap strings (free them) when
 * out / err are not NULL. */
int it_run(it_test *t, const char *tag, char *const argv[], int64_t timeout_ms,
           char **out, char **err);
/* Runs <repo>/scripts/servers CMD --dir <servers_dir>; returns its status. */
int it_servers(it_test *t, const char *cmd);
/* Prints the last `lines` lines of p's log to stderr. */
void it_log_tail(const it_proc *p, int lines);
/* Waits until p's log contains needle; 0 when it does, -1 on timeout. */
int it_wait_log(const it_proc *p, const char *needle, int64_t timeout_ms);
/* User+system CPU time of a running process, in ms; -1 if unknown. */
int64_t it_cpu_ms(pid_t pid);

/* Starts `natka run -c config` logging to <tmpdir>/<logname>; t->natka = p. */
void it_natka_start(it_test *t, it_proc *p, const char *config,
                    const char *logname);
/* SIGTERM, then waits up to timeout_ms; fails when natka does not exit or
 * its log has a sanitizer report. Returns the exit status. */
int it_natka_stop(it_test *t, it_proc *p, int64_t timeout_ms);
/* Fails when the log holds an ASan/UBSan/LeakSanitizer report. */
void it_check_no_sanitizer_report(it_test *t, const char *log);

/* ---------------------------------------------------------------- JetStream */

typedef struct it_js {
  natsConnection *nc;
  jsCtx *js;
  int64_t publish_errors; /* counted by the async error handler */
  char last_error[256];
} it_js;

typedef struct it_hdr {
  const char *name, *value;
} it_hdr;

typedef struct it_consumer {
  int64_t num_ack_pending;
  uint64_t num_pending;
  uint64_t ack_floor_stream;
  uint64_t delivered_stream;
  int64_t num_redelivered;
} it_consumer;

void it_js_connect(it_test *t, it_js *j);
/* The same, calling setup(o, data) on the options before connecting: TLS
 * and credentials of a secured server (it_tls.c). */
void it_js_connect_with(it_test *t, it_js *j,
                        natsStatus (*setup)(natsOptions *o, void *data),
                        void *data);
void it_js_close(it_js *j);
/* Creates a file stream over one subject pattern. */
void it_js_add_stream(it_test *t, it_js *j, const char *stream,
                      const char *subject);
/* Queues one publish; blocks while too many are unconfirmed. */
void it_js_publish(it_test *t, it_js *j, const char *subject,
                   const it_hdr *hdrs, size_t nhdrs, const void *data,
                   size_t len);
/* Waits for every queued publish to be confirmed; fails on any error. */
void it_js_publish_wait(it_test *t, it_js *j, int64_t timeout_ms);
/* 0 and *out filled, or -1 when the consumer does not exist (yet). */
int it_js_consumer(it_test *t, it_js *j, const char *stream,
                   const char *durable, it_consumer *out);
/* Polls until the durable consumer exists (e.g. natka made it and so the
 * stream); fails after timeout_ms. */
void it_js_wait_consumer(it_test *t, it_js *j, const char *stream,
                         const char *durable, int64_t timeout_ms);
/* Polls until the consumer has nothing pending or unacked; fails after
 * timeout_ms. */
void it_js_wait_settled(it_test *t, it_js *j, const char *stream,
                        const char *durable, int64_t timeout_ms);

/* ---------------------------------------------------------------- Kafka */

typedef struct it_header {
  char *name;
  char *value; /* NUL-terminated copy; NULL for a null header */
  size_t len;
} it_header;

typedef struct it_record {
  char *topic;
  int32_t partition;
  int64_t offset;
  char *key; /* NUL-terminated copy; NULL: no key */
  size_t key_len;
  char *value; /* NUL-terminated copy; NULL: null value */
  size_t value_len;
  it_header *hdrs; /* in record order, repeated names kept */
  size_t nhdrs;
} it_record;

typedef struct it_records {
  it_record *v;
  size_t n, cap;
} it_records;

/* Called for each record read. Return nonzero once the test has all it
 * waits for; the reader then goes on for IT_KAFKA_LINGER_MS to catch
 * duplicates. */
typedef int (*it_record_cb)(it_test *t, const it_record *r, void *data);

#define IT_KAFKA_LINGER_MS 2000

/*
 * Reads every partition of `topics` from the beginning (no consumer group,
 * read_committed), waiting up to timeout_ms for each topic to exist. Stops
 * when `want` records (0: no limit) were read or cb returned nonzero, plus
 * IT_KAFKA_LINGER_MS, or at timeout_ms. Returns the number of records.
 */
size_t it_kafka_read(it_test *t, const char *const *topics, size_t ntopics,
                     size_t want, int64_t timeout_ms, it_record_cb cb,
                     void *data);
/* it_kafka_read() keeping copies of the records in out (appended). */
size_t it_kafka_collect(it_test *t, const char *const *topics, size_t ntopics,
                        size_t want, int64_t timeout_ms, it_records *out);
void it_records_free(it_records *rs);
/* The nth (0-based) header called name, or NULL. */
const it_header *it_record_header(const it_record *r, const char *name,
                                  size_t nth);
/* Its value as a string, or NULL when absent. */
const char *it_record_hstr(const it_record *r, const char *name);

/* ---------------------------------------------------------------- KV */

/* Opens a KV bucket, creating it with `history` values per key when it does
 * not exist. Destroy it with kvStore_Destroy(). */
kvStore *it_kv_open(it_test *t, it_js *j, const char *bucket, int history);
/* Puts value under key; returns the revision of the put. */
uint64_t it_kv_put(it_test *t, kvStore *kv, const char *key, const char *value);
/* Deletes key (a delete marker: watchers see it go). */
void it_kv_delete(it_test *t, kvStore *kv, const char *key);
/* The value under key as a NUL-terminated heap string (free it), or NULL
 * when the key does not exist or was deleted. */
char *it_kv_get(it_test *t, kvStore *kv, const char *key);
/* The status record natka `name` keeps in `bucket` (rules.status_bucket),
 * once the number at `stat` ("stats.forbidden") is at least `want`; after
 * timeout_ms the last record read (fails when there was none).
 * cJSON_Delete() it. */
cJSON *it_status_wait(it_test *t, it_js *j, const char *bucket,
                      const char *name, const char *stat, double want,
                      int64_t timeout_ms);
/* natka's status key for nats.name = name: "<hostname>-<name>", each with
 * the characters outside [A-Za-z0-9_-] replaced by '_'. */
void it_status_key(char *out, size_t len, const char *name);

/* ----------------------------------------------------------- Kafka tail */

/* Creates topics with `partitions` partitions each (ones that exist already
 * are kept) and waits until the broker lists them. */
void it_kafka_create_topics(it_test *t, const char *const *topics,
                            size_t ntopics, int partitions);

/* A reader left open between reads: it assigns every partition of its
 * topics from the beginning once (waiting up to timeout_ms for them to
 * exist), then each poll goes on where the last one stopped. */
typedef struct it_kafka_tail it_kafka_tail;

it_kafka_tail *it_kafka_tail_open(it_test *t, const char *const *topics,
                                  size_t ntopics, int64_t timeout_ms);
/* Reads for up to timeout_ms, calling cb (when not NULL) on each record;
 * returns as soon as cb returns nonzero (no linger). Returns the number of
 * records read by this call. */
size_t it_kafka_tail_poll(it_test *t, it_kafka_tail *k, int64_t timeout_ms,
                          it_record_cb cb, void *data);
void it_kafka_tail_close(it_kafka_tail *k);

/* ------------------------------------------------------------ JSON status */

/* A member of a JSON object by dotted path ("stats.rules_rejected"): a
 * number (or -1 when absent or not a number), a string (or NULL). */
double it_json_num(const cJSON *j, const char *path);
const char *it_json_str(const cJSON *j, const char *path);
/* The next JSON message on sub for which match(json, arg) is nonzero
 * (messages before it are skipped); fails after timeout_ms showing the last
 * message seen. cJSON_Delete() the result. */
cJSON *it_json_wait(it_test *t, natsSubscription *sub,
                    int (*match)(const cJSON *j, const void *arg),
                    const void *arg, int64_t timeout_ms);

/* ------------------------------------------------ added for dlq / malformed */

/* Produces one record (key NULL: no key; hdrs as text) and waits until
 * Kafka confirmed it; fails otherwise. */
void it_kafka_produce(it_test *t, const char *topic, const char *key,
                      size_t key_len, const void *value, size_t len,
                      const it_hdr *hdrs, size_t nhdrs);
/* The last sequence number stored in `stream` (0 when empty). */
uint64_t it_js_stream_last_seq(it_test *t, it_js *j, const char *stream);
/* Runs natka with the NULL-terminated arguments args (natka itself not
 * included) within timeout_ms; returns its exit status, stdout and stderr
 * as for it_run. */
int it_natka_cmd(it_test *t, const char *tag, const char *const *args,
                 int64_t timeout_ms, char **out, char **err);

#endif
