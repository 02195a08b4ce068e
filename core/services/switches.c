#include "switches.h"

#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "pipe.h"
#include "kv_mirror.h"
#include "util.h"

struct natka__switches {
  const natka__host *host;
  natka__log *log;
  natka__kv_mirror *mirror;
  char **names, **values;
  size_t n;
  natka__mode mode;
  void (*closed)(void *data);
  void *closed_data;
};

static void clear(natka__switches *sw) {
  for (size_t i = 0; i < sw->n; i++) {
    free(sw->names[i]);
    free(sw->values[i]);
  }
  free(sw->names);
  free(sw->values);
  sw->names = sw->values = NULL;
  sw->n = 0;
}

static natka__mode parse_mode(natka__switches *sw) {
  const char *mode = natka__switches_value(sw, "mode");
  const char *dual = natka__switches_value(sw, "dual_write");
  if (dual != NULL && strcmp(dual, "on") == 0)
    return NATKA__MODE_BOTH;
  if (mode == NULL || strcmp(mode, "kafka_only") == 0)
    return NATKA__MODE_KAFKA_ONLY;
  if (strcmp(mode, "nats_only") == 0)
    return NATKA__MODE_NATS_ONLY;
  if (strcmp(mode, "both") == 0)
    return NATKA__MODE_BOTH;
  natka__warn(sw->log,
              "switches: mode '%s' is not kafka_only, nats_only or both; "
              "using kafka_only",
              mode);
  return NATKA__MODE_KAFKA_ONLY;
}

static void on_bucket(natka__kv_mirror *m, const natka__kv_entry *e, size_t n,
                      uint64_t revision, void *data) {
  natka__switches *sw = data;
  (void)m;
  clear(sw);
  sw->names = calloc(n ? n : 1, sizeof(*sw->names));
  sw->values = calloc(n ? n : 1, sizeof(*sw->values));
  for (size_t i = 0; sw->names && sw->values && i < n; i++) {
    sw->names[sw->n] = natka__strdup(e[i].key);
    sw->values[sw->n] = natka__strdup(e[i].value);
    if (sw->names[sw->n] == NULL || sw->values[sw->n] == NULL) {
      free(sw->names[sw->n]);
      free(sw->values[sw->n]);
      break;
    }
    sw->n++;
  }
  sw->mode = parse_mode(sw);
  natka__info(sw->log, "switches: revision %llu, %zu switch(es), mode %s",
              (unsigned long long)revision, sw->n,
              sw->mode == NATKA__MODE_BOTH        ? "both"
              : sw->mode == NATKA__MODE_NATS_ONLY ? "nats_only"
                                                  : "kafka_only");
  sw->host->switches_changed(sw->host);
}

int natka__switches_new(natka__switches **out, const natka__host *host,
                        char *err, size_t errlen) {
  const natka_config *c = host->conf;
  natka__switches *sw = calloc(1, sizeof(*sw));
  if (sw == NULL)
    return natka__errf(err, errlen, NATKA_ENOMEM, "switches: out of memory");
  sw->host = host;
  sw->log = host->log;
  natka__kv_mirror_opts mo = {
      .conf = c,
      .bucket = c->switches_bucket,
      .create = 1,
      .history = 16,
      .log = sw->log,
  };
  int rc = natka__kv_mirror_new(&sw->mirror, host->loop, &mo, on_bucket, sw,
                                err, errlen);
  if (rc != 0) {
    free(sw);
    return rc;
  }
  *out = sw;
  return 0;
}

int natka__switches_start(natka__switches *sw) {
  return natka__kv_mirror_start(sw->mirror);
}

static void on_mirror_closed(void *data) {
  natka__switches *sw = data;
  void (*done)(void *) = sw->closed;
  void *closed_data = sw->closed_data;
  clear(sw);
  free(sw);
  if (done != NULL)
    done(closed_data);
}

void natka__switches_close(natka__switches *sw, void (*done)(void *data),
                           void *data) {
  sw->closed = done;
  sw->closed_data = data;
  natka__kv_mirror_close(sw->mirror, on_mirror_closed, sw);
}

size_t natka__switches_get(const natka__switches *sw, const char *const **names,
                           const char *const **values) {
  *names = (const char *const *)sw->names;
  *values = (const char *const *)sw->values;
  return sw->n;
}

const char *natka__switches_value(const natka__switches *sw, const char *name) {
  for (size_t i = 0; i < sw->n; i++)
    if (strcmp(sw->names[i], name) == 0)
      return sw->values[i];
  return NULL;
}

natka__mode natka__switches_mode(const natka__switches *sw) {
  return sw == NULL ? NATKA__MODE_KAFKA_ONLY : sw->mode;
}
