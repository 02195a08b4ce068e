/*
 * natka configuration.
 *
 * A configuration is a Lua chunk that returns a table (see README,
 * "Configuration"). It is evaluated in an empty environment: only the string,
 * table and math libraries and env(NAME[, DEFAULT]) are visible, so a config
 * file can do no I/O. Every key but kafka.brokers has a documented default
 * (natka_new() refuses a configuration without brokers); unknown keys, wrong
 * types and out-of-range values are rejected with the key's dotted name.
 *
 * Ownership: natka_config_new() returns an object owned by the caller until
 * natka_new() takes it (on success only). Threads: a config is not shared;
 * use it from one thread at a time.
 */
#ifndef NATKA_CONFIG_H
#define NATKA_CONFIG_H

#include "natka/export.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct natka_config natka_config;

typedef enum {
  NATKA_LOG_ERROR = 0,
  NATKA_LOG_WARN = 1,
  NATKA_LOG_INFO = 2,
  NATKA_LOG_DEBUG = 3
} natka_log_level;

/* Receives each log line (no trailing newline) at or above the configured
 * level. Called on the loop thread, or on the thread that called natka_new()
 * while a gateway is being created. */
typedef void (*natka_log_cb)(natka_log_level level, const char *msg,
                             void *data);

/* Creates a configuration holding every default. Returns 0, NATKA_EINVAL or
 * NATKA_ENOMEM. */
NATKA_EXTERN int natka_config_new(natka_config **out);

/* Frees a configuration not taken by natka_new(). NULL is a no-op. */
NATKA_EXTERN void natka_config_free(natka_config *conf);

/* Evaluates a config file / a config chunk and applies the table it returns
 * over the current values. `name` names the chunk in messages. On error
 * returns NATKA_ECONFIG (or NATKA_EIO when the file cannot be read) and writes
 * a message naming the key or line to errbuf (errlen bytes, always
 * NUL-terminated); the configuration is then unchanged. */
NATKA_EXTERN int natka_config_load_file(natka_config *conf, const char *path,
                                        char *errbuf, size_t errlen);
NATKA_EXTERN int natka_config_load_string(natka_config *conf, const char *chunk,
                                          const char *name, char *errbuf,
                                          size_t errlen);

/* Sets one key by its dotted name from text ("kafka.linger_ms", "20");
 * the text is parsed as the key's type (lists: comma-separated; maps such
 * as kafka.properties: "kafka.properties.NAME"). Returns 0 or NATKA_ECONFIG
 * with the reason in errbuf. */
NATKA_EXTERN int natka_config_set(natka_config *conf, const char *key,
                                  const char *value, char *errbuf,
                                  size_t errlen);

/* Reads one key back as text into buf (same names as natka_config_set).
 * Returns 0, NATKA_ECONFIG (unknown key) or NATKA_EINVAL (buf too small). */
NATKA_EXTERN int natka_config_get(const natka_config *conf, const char *key,
                                  char *buf, size_t len);

/* Sets where log lines go (default: stderr with a timestamp). */
NATKA_EXTERN void natka_config_set_logger(natka_config *conf, natka_log_cb cb,
                                          void *data);

/* Writes the configuration reference (every key, its type, default and
 * meaning) as Markdown to `out` (a FILE *, passed as void * to keep stdio out
 * of this header). */
NATKA_EXTERN void natka_config_write_reference(void *out);

#ifdef __cplusplus
}
#endif
#endif /* NATKA_CONFIG_H */
