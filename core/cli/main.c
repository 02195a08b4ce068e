/*
 * natka: the daemon and its command line.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>

#include "cli_opts.h"
#include "cmd_rules.h"
#include "natka/natka.h"

#define EXIT_USAGE 2 /* bad command line, configuration or rules */

static const char usage_text[] =
    "Usage: natka COMMAND [OPTIONS]\n"
    "\n"
    "An event gateway from NATS JetStream to Kafka, with routing rules in "
    "Lua.\n"
    "\n"
    "Commands:\n"
    "  run     run the gateway until SIGINT/SIGTERM (a second signal skips\n"
    "          waiting for events in flight; they stay unacked and are\n"
    "          redelivered)\n"
    "  check   validate the configuration and load the rules, then exit:\n"
    "          0 when both are good, 2 with the reason otherwise\n"
    "  config  print the configuration reference (every key, its default)\n"
    "  rules   manage the rules bucket in NATS KV: push, test, status,\n"
    "          rollback (see 'natka rules --help')\n"
    "  spool   look inside the disk spool and act on it: inspect, verify,\n"
    "          replay (see 'natka spool --help')\n"
    "  dlq     send dead letters back through the rules: replay\n"
    "          (see 'natka dlq --help')\n"
    "\n"
    "Options (run, check):\n"
    "  -c, --config FILE     configuration file: a Lua chunk returning a "
    "table\n"
    "                        (without it every key has its default)\n"
    "  -s, --set KEY=VALUE   override one key after the file, e.g.\n"
    "                        -s kafka.brokers=127.0.0.1:9092 -s "
    "rules.files=a.lua,b.lua\n"
    "  -h, --help            this text\n"
    "  -V, --version         print the version\n"
    "\n"
    "Exit status: 0 success; 1 runtime failure (e.g. the drain timed out);\n"
    "2 bad usage, configuration or rules.\n"
    "\n"
    "Example:\n"
    "  natka check -c natka.conf && natka run -c natka.conf\n";

static int usage_error(const char *fmt, const char *arg) {
  fprintf(stderr, "natka: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\nTry 'natka --help'.\n");
  return EXIT_USAGE;
}

static int cmd_run(int argc, char **argv, int check_only) {
  char err[1024];
  natka_config *conf = NULL;
  natka *gw = NULL;
  int rc = natka__cli_load_config(argc, argv, 2, &conf);
  if (rc != 0)
    return rc;
  rc = natka_new(&gw, conf, NULL, err, sizeof(err));
  if (rc != 0) {
    fprintf(stderr, "natka: %s\n", err);
    natka_config_free(conf);
    return rc == NATKA_ECONFIG || rc == NATKA_ERULE || rc == NATKA_EIO
               ? EXIT_USAGE
               : 1;
  }
  if (check_only) {
    printf("natka: configuration and rules are valid\n");
    natka_free(gw);
    return 0;
  }
  rc = natka_run(gw);
  natka_free(gw);
  nats_Close();
  if (rc != 0) {
    fprintf(stderr, "natka: stopped with %s: %s\n", natka_err_name(rc),
            natka_strerror(rc));
    return 1;
  }
  return 0;
}

/* libuv and librdkafka open descriptors of their own; started with 0, 1 or
 * 2 closed, one of those would land there and be mistaken for stdio. */
static void ensure_stdio(void) {
  for (int fd = 0; fd < 3; fd++)
    if (fcntl(fd, F_GETFD) < 0 && errno == EBADF &&
        open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY) < 0)
      break;
}

int main(int argc, char **argv) {
  ensure_stdio();
  /* Past a file size limit, a write to the spool fails (EFBIG) and is
   * reported like a full disk, instead of the signal killing natka. */
  signal(SIGXFSZ, SIG_IGN);
  if (argc < 2)
    return usage_error("%s", "no command given");
  const char *cmd = argv[1];
  if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 ||
      strcmp(cmd, "help") == 0) {
    fputs(usage_text, stdout);
    return 0;
  }
  if (strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0) {
    printf("natka %s\n", natka_version());
    return 0;
  }
  if (strcmp(cmd, "rules") == 0)
    return natka__cmd_rules(argc, argv);
  if (strcmp(cmd, "spool") == 0)
    return natka__cmd_spool(argc, argv);
  if (strcmp(cmd, "dlq") == 0)
    return natka__cmd_dlq(argc, argv);
  for (int i = 2; i < argc; i++)
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      fputs(usage_text, stdout);
      return 0;
    }
  if (strcmp(cmd, "run") == 0)
    return cmd_run(argc, argv, 0);
  if (strcmp(cmd, "check") == 0)
    return cmd_run(argc, argv, 1);
  if (strcmp(cmd, "config") == 0) {
    natka_config_write_reference(stdout);
    return 0;
  }
  return usage_error("unknown command '%s'", cmd);
}
