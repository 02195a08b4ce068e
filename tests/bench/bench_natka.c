/*
 * bench_natka: the whole natka pipeline on a filled stream. Starts the natka
 * daemon with the given configuration, watches its durable JetStream
 * consumer until every message of the stream is acked (natka acks only after
 * Kafka confirmed), then stops it with SIGTERM. Nothing is subtracted: the
 * time runs from spawning the daemon to the last ack, so it includes start-up
 * (connecting, loading rules, creating the consumer). The Kafka topic is
 * created before the clock starts, as for the raw Kafka baseline.
 *
 *   bench_natka --natka PATH --config FILE --url URL --brokers HOST:PORT
 *               --stream NAME --durable NAME --topic T --size B --events N
 *               [--set KEY=VALUE ...] [--transactional] [--log FILE]
 *               [--timeout SECONDS] [--stall SECONDS] [--progress]
 *               [--partitions P]
 *
 * --timeout (default 600) bounds the whole run; --stall (default 0: none)
 * ends it sooner when the ack floor has not moved for that long. --set passes
 * `-s KEY=VALUE` to natka after the configuration file (may be repeated).
 * --progress prints the consumer's ack floor to stderr every 100 ms, to see
 * where the time goes (start-up, ramp, steady rate). --partitions P creates
 * the topic with P partitions (default: the broker's); an existing topic
 * with another count is an error.
 *
 * --transactional is for a natka writing Kafka transactions: each commit
 * adds a control record (commit marker) to every partition it wrote, and
 * those count in the topic's offsets, so the topic must then hold at least
 * N records rather than exactly N; records - N is the number of markers
 * (0 means no transaction was committed).
 *
 * Prints RESULT name=natka with extra fields: cpu (the daemon's CPU seconds
 * up to the last ack), startup (seconds to the first ack), redelivered (as
 * counted by the consumer; expected 0), records (added to the topic during
 * the run; expected N, or at least N with --transactional) and exit (the
 * daemon's exit status after SIGTERM).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nats/nats.h>

#include "bench_util.h"

#define PROG "natka"
#define POLL_MS 10

/* CPU seconds (user + system) of a child, from /proc; -1 if unknown. */
static double cpu_of(pid_t pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return -1;
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = '\0';
  /* The command name may hold spaces; fields restart after its ')'. */
  const char *p = strrchr(buf, ')');
  unsigned long utime = 0, stime = 0;
  if (p == NULL || sscanf(p + 2,
                          "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
                          "%lu %lu",
                          &utime, &stime) != 2)
    return -1;
  return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static const char usage[] =
    "Usage: bench_natka --natka PATH --config FILE --url URL "
    "--brokers HOST:PORT\n"
    "                   --stream NAME --durable NAME --topic T "
    "--size BYTES --events N\n"
    "                   [--set KEY=VALUE ...] [--transactional] "
    "[--log FILE]\n"
    "                   [--timeout SECONDS] [--stall SECONDS] "
    "[--progress]\n"
    "                   [--partitions P]\n"
    "Runs the natka daemon until its consumer has acked the whole "
    "stream.\n";

int main(int argc, char **argv) {
  const char *natka = NULL, *config = NULL, *url = NULL, *brokers = NULL,
             *stream = NULL, *durable = NULL, *topic = NULL, *log = NULL;
  int64_t size = -1, events = -1, timeout_s = 600, stall_s = 0, partitions = 0;
  int progress = 0, transactional = 0;
  bench_list sets = {0};
  const bench_opt opts[] = {BENCH_STR("natka", &natka, 1),
                            BENCH_STR("config", &config, 1),
                            BENCH_STR("url", &url, 1),
                            BENCH_STR("brokers", &brokers, 1),
                            BENCH_STR("stream", &stream, 1),
                            BENCH_STR("durable", &durable, 1),
                            BENCH_STR("topic", &topic, 1),
                            BENCH_SIZE_EVENTS(&size, &events),
                            BENCH_STR("log", &log, 0),
                            BENCH_INT("timeout", &timeout_s, 1, 86400, 0),
                            BENCH_INT("stall", &stall_s, 0, 86400, 0),
                            BENCH_FLAG("progress", &progress),
                            BENCH_LIST("set", &sets),
                            BENCH_FLAG("transactional", &transactional),
                            BENCH_INT("partitions", &partitions, 0, 10000, 0),
                            {NULL}};
  bench_options(argc, argv, opts, usage);

  char err[512];
  if (bench_kafka_topic(brokers, topic, (int)partitions, err, sizeof(err)) != 0)
    bench_die(PROG, "%s", err);
  int64_t records_before =
      bench_kafka_records(brokers, topic, err, sizeof(err));
  if (records_before < 0)
    bench_die(PROG, "%s", err);

  natsConnection *nc = NULL;
  jsCtx *js = NULL;
  jsErrCode jerr = 0;
  natsStatus st;
  bench_js_connect(PROG, url, NULL, &nc, &js);
  jsStreamInfo *si = NULL;
  if ((st = js_GetStreamInfo(&si, js, stream, NULL, &jerr)) != NATS_OK)
    bench_die(PROG, "stream %s: %s", stream, natsStatus_GetText(st));
  uint64_t last_seq = si->State.LastSeq, msgs = si->State.Msgs;
  jsStreamInfo_Destroy(si);
  if (msgs != (uint64_t)events)
    bench_die(PROG, "stream %s holds %llu messages, expected %lld", stream,
              (unsigned long long)msgs, (long long)events);

  /* A consumer left by an earlier run would look finished at once. */
  jsConsumerInfo *stale = NULL;
  st = js_GetConsumerInfo(&stale, js, stream, durable, NULL, &jerr);
  jsConsumerInfo_Destroy(stale);
  if (st != NATS_NOT_FOUND)
    bench_die(PROG,
              "consumer %s already exists on stream %s (%s); refill the "
              "stream or name another durable",
              durable, stream, natsStatus_GetText(st));

  double t0 = bench_now(), t_first = -1, t_end = -1, cpu = -1, t_shown = 0;
  double t_moved = t0; /* when the ack floor last moved */
  uint64_t ack_floor = 0;
  int64_t redelivered = 0;
  pid_t pid = bench_natka_spawn(PROG, natka, config, &sets, log);
  for (;;) {
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid)
      bench_die(PROG,
                "natka exited early (status %d) at ack floor %llu of "
                "%llu; see its log",
                WIFEXITED(status) ? WEXITSTATUS(status) : -1,
                (unsigned long long)ack_floor, (unsigned long long)last_seq);
    jsConsumerInfo *ci = NULL;
    st = js_GetConsumerInfo(&ci, js, stream, durable, NULL, &jerr);
    if (st == NATS_OK) {
      if (ci->AckFloor.Stream != ack_floor)
        t_moved = bench_now();
      ack_floor = ci->AckFloor.Stream;
      redelivered = ci->NumRedelivered;
      int done = ack_floor >= last_seq && ci->NumAckPending == 0;
      jsConsumerInfo_Destroy(ci);
      if (ack_floor > 0 && t_first < 0)
        t_first = bench_now() - t0;
      if (progress && bench_now() - t_shown >= 0.1) {
        t_shown = bench_now();
        fprintf(stderr, "bench natka: %.3f s ack floor %llu\n", t_shown - t0,
                (unsigned long long)ack_floor);
      }
      if (done) {
        t_end = bench_now();
        cpu = cpu_of(pid);
        break;
      }
    } else if (st != NATS_NOT_FOUND) {
      fprintf(stderr, "bench natka: consumer info: %s\n",
              natsStatus_GetText(st));
    }
    if (bench_now() - t0 > (double)timeout_s) {
      bench_natka_stop(PROG, pid);
      bench_die(PROG, "timed out after %llds at ack floor %llu of %llu",
                (long long)timeout_s, (unsigned long long)ack_floor,
                (unsigned long long)last_seq);
    }
    if (stall_s > 0 && bench_now() - t_moved > (double)stall_s) {
      bench_natka_stop(PROG, pid);
      bench_die(PROG, "no ack for %llds, at ack floor %llu of %llu",
                (long long)stall_s, (unsigned long long)ack_floor,
                (unsigned long long)last_seq);
    }
    bench_sleep_ms(POLL_MS);
  }
  int exit_status = bench_natka_stop(PROG, pid);
  int64_t records = bench_kafka_records(brokers, topic, err, sizeof(err));
  if (records < 0)
    fprintf(stderr, "bench natka: %s\n", err);
  else
    records -= records_before;

  char extra[160];
  snprintf(extra, sizeof(extra),
           "cpu=%.2f startup=%.3f redelivered=%lld records=%lld exit=%d", cpu,
           t_first, (long long)redelivered, (long long)records, exit_status);
  bench_result(PROG, (size_t)size, events, t_end - t0, extra);

  bench_js_close(nc, js);
  if (exit_status != 0)
    bench_die(PROG, "natka exited with status %d after SIGTERM", exit_status);
  if (transactional ? records < events : records != events)
    bench_die(PROG, "topic %s got %lld records, expected %s%lld", topic,
              (long long)records, transactional ? "at least " : "",
              (long long)events);
  return 0;
}
