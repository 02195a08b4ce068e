/*
 * The NATS side of `natka rules` (cmd_rules_kv.c), shared with the status
 * command (cmd_rules_status.c). One blocking connection without
 * reconnects; every function prints "rules <cmd>: <reason>" itself and
 * returns 0 or the exit status.
 */
#ifndef NATKA_CMD_RULES_KV_H
#define NATKA_CMD_RULES_KV_H

#include <stddef.h>
#include <stdint.h>

#include <nats/nats.h>

#include "cmd_rules.h"

typedef struct natka__cli_kv {
  natsConnection *nc;
  jsCtx *js;
  kvStore *kv; /* the bucket opened last */
  int64_t wait_ms;
  int opened; /* nats.c was started: disconnect closes it */
} natka__cli_kv;

/* One KV entry (a put, delete or purge). */
typedef struct natka__cli_rec {
  char *key;
  char *value; /* NUL after len bytes */
  size_t len;
  uint64_t rev;
  kvOperation op;
} natka__cli_rec;

typedef struct natka__cli_recs {
  natka__cli_rec *v;
  size_t n, cap;
} natka__cli_recs;

/* Connects to nats.url within nats.connect_timeout_ms. */
int natka__cli_connect(natka__rules_cli *c, natka__cli_kv *k);
/* Closes what connect opened (also after a failed connect) and nats.c. */
void natka__cli_disconnect(natka__cli_kv *k);
/* Opens (or, with create, creates with the daemon's history) `bucket` as
 * k->kv; *missing is 1 when it does not exist and create is 0. */
int natka__cli_open_bucket(natka__rules_cli *c, natka__cli_kv *k,
                           const char *bucket, int create, int *missing);
/* Reads k->kv: the latest entry of each key, or every kept entry with
 * history; delete/purge markers included; sorted by key, then revision. */
int natka__cli_read_bucket(natka__rules_cli *c, natka__cli_kv *k, int history,
                           natka__cli_recs *out);
void natka__cli_recs_free(natka__cli_recs *rs);

#endif
