#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *const level_names[] = {"error", "warn", "info", "debug"};

const char *natka__log_level_name(natka_log_level level) {
  return (unsigned)level < 4 ? level_names[level] : "?";
}

int natka__log_level_parse(const char *s, natka_log_level *out) {
  for (int i = 0; i < 4; i++) {
    if (strcmp(s, level_names[i]) == 0) {
      *out = (natka_log_level)i;
      return 0;
    }
  }
  return -1;
}

int natka__log_init(natka__log *log, natka_log_cb cb, void *data,
                    natka_log_level level) {
  log->cb = cb;
  log->data = data;
  log->level = level;
  return uv_mutex_init(&log->mu);
}

void natka__log_destroy(natka__log *log) {
  uv_mutex_destroy(&log->mu);
}

void natka__logf(natka__log *log, natka_log_level level, const char *fmt, ...) {
  if (log == NULL || level > log->level)
    return;
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);

  uv_mutex_lock(&log->mu);
  if (log->cb != NULL) {
    log->cb(level, msg, log->data);
  } else {
    struct timespec ts;
    struct tm tm;
    char when[32];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(stderr, "%s.%03ldZ natka %-5s %s\n", when, ts.tv_nsec / 1000000,
            natka__log_level_name(level), msg);
  }
  uv_mutex_unlock(&log->mu);
}
