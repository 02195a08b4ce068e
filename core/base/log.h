/* Logging: one sink per gateway, serialized, filtered by level. */
#ifndef NATKA_LOG_H
#define NATKA_LOG_H

#include <uv.h>

#include "natka/config.h"

typedef struct natka__log {
  natka_log_cb cb; /* NULL: stderr with a UTC timestamp */
  void *data;
  natka_log_level level;
  uv_mutex_t mu; /* lines may come from natka's NATS threads */
} natka__log;

int natka__log_init(natka__log *log, natka_log_cb cb, void *data,
                    natka_log_level level);
void natka__log_destroy(natka__log *log);

void natka__logf(natka__log *log, natka_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define natka__error(log, ...) natka__logf((log), NATKA_LOG_ERROR, __VA_ARGS__)
#define natka__warn(log, ...) natka__logf((log), NATKA_LOG_WARN, __VA_ARGS__)
#define natka__info(log, ...) natka__logf((log), NATKA_LOG_INFO, __VA_ARGS__)
#define natka__debug(log, ...) natka__logf((log), NATKA_LOG_DEBUG, __VA_ARGS__)

const char *natka__log_level_name(natka_log_level level);
int natka__log_level_parse(const char *s, natka_log_level *out);

#endif
