/*
 * The gateway's own layout, shared by gateway.c (lifecycle and public API)
 * and flight.c (what happens to one event). Not for sources and sinks:
 * they use gateway.h. Loop thread only.
 */
#ifndef NATKA_GATEWAY_INT_H
#define NATKA_GATEWAY_INT_H

#include <stdint.h>

#include "dedup.h"
#include "dedup_shared.h"
#include "gateway.h"
#include "ingress.h"
#include "reload.h"
#include "rules.h"
#include "spool.h"
#include "switches.h"

typedef enum {
  GW_NEW,
  GW_STARTED,
  GW_STOPPING,
  GW_CLOSING,
  GW_STOPPED
} natka__gw_state;

#define STATS_MAP(XX)                                                          \
  XX(events_in)                                                                \
  XX(delivered)                                                                \
  XX(dropped)                                                                  \
  XX(deadlettered)                                                             \
  XX(failed)                                                                   \
  XX(nacked)                                                                   \
  XX(rule_errors)                                                              \
  XX(malformed)                                                                \
  XX(oversized)                                                                \
  XX(dropped_overload)                                                         \
  XX(rules_reloads)                                                            \
  XX(rules_rejected)                                                           \
  XX(deduplicated)                                                             \
  XX(held)                                                                     \
  XX(degrade_drops)                                                            \
  XX(dual_writes)                                                              \
  XX(txn_commits)                                                              \
  XX(txn_aborts)                                                               \
  XX(already_committed)                                                        \
  XX(forbidden)

typedef struct natka__gw_stats {
#define STAT_FIELD(name) int64_t name;
  STATS_MAP(STAT_FIELD)
#undef STAT_FIELD
} natka__gw_stats;

typedef struct natka__flight_dest {
  char *topic;
  int32_t partition;
  int64_t offset;
} natka__flight_dest;

typedef struct natka__txn natka__txn;

typedef struct natka__flight {
  natka *gw;
  natka_event *ev;
  natka__source *src; /* NULL: injected */
  void *token;
  natka_report_cb cb;
  void *cb_data;
  int pending;     /* sends not yet reported */
  int dlq;         /* this natka__flight is the dead-letter write */
  int reason_code; /* why it was dead-lettered (with errmsg) */
  int err;         /* first delivery failure, 0 when none */
  char *errmsg;
  int retriable;
  natka__flight_dest *dests;
  size_t ndests;
  char *dedup_key; /* taken in the dedup window; released if not delivered */
  size_t dedup_len;
  char *rule;   /* the rule that dead-lettered it, for a second DLQ write */
  int attempts; /* deliveries of its source message (1 when unknown) */
  int committed_before; /* found in the checkpoint: acked, not produced */
  int dlq_pending;      /* to be dead-lettered in the next transaction */
  int plain_delay;      /* nak'ed without backoff */
  int tracked;          /* its position is in the transactions' in-flight set */
  uint64_t tracked_pos;
  int64_t bytes; /* counted in gw->inflight_bytes */

  /* Transactions (txn.c). */
  struct natka__flight *txn_next; /* members, or flights waiting */
  void (*txn_resume)(struct natka__flight *f);
  int txn_member;
  natka_fate txn_fate; /* parked outcome */
  natka__settle txn_how;
  int has_pos;
  uint64_t pos; /* source position, when has_pos */
} natka__flight;

struct natka_report {
  natka_fate fate;
  const natka_event *ev;
  int err;
  const char *msg;
  const natka__flight_dest *dests;
  size_t n;
};

struct natka {
  natka_config *conf;
  natka__log log;
  uv_loop_t *loop;
  natka__host host; /* lent to the components (host.h) */
  uv_loop_t own_loop;
  int owns_loop;
  void *data;
  natka__gw_state state;

  natka__rules *rules;     /* NULL until a first valid set (KV mode) */
  uint64_t rules_revision; /* 0: rules from files (or none) */
  char rules_revision_text[24];
  natka__reload *reload; /* KV mode only */
  int reload_open;
  natka__sink *sink;      /* Kafka */
  natka__sink *nats_sink; /* dual writes; NULL when NATS is not used */
  int nats_sink_open;
  natka__switches *switches;
  int switches_open;
  natka__dedup *dedup;
  natka__claims *claims;             /* shared dedup window; NULL when off */
  natka__ingress *ingress;           /* request-reply ingress; NULL when off */
  natka__txn *txn;                   /* NULL: no transactions */
  natka__spool *spool;               /* NULL: spool.dir is "" */
  natka__flight *early, *early_tail; /* injected before Kafka answered */
  int txn_open;
  int ingress_open, ingress_closing;
  int claims_open;
  int sink_ready;
  int sources_started;
  natka__source *sources[3];
  size_t nsources;
  size_t sources_stopped;
  size_t sources_open;
  int sink_open;

  int paused;
  int64_t inflight;
  int64_t inflight_bytes;
  natka__gw_stats stats;

  uv_timer_t drain_timer;
  int drain_timer_open;
  uv_signal_t sigint, sigterm;
  int signals_open;
  natka_stop_cb stop_cb;
  void *stop_data;
  int stop_status;
};

/* flight.c */
natka__flight *natka__flight_new(natka *gw, natka_event *ev);
/* Settles f's source, reports its fate and frees it (txn.c calls it once
 * the transaction f belongs to is decided). */
void natka__flight_settle(natka__flight *f, natka_fate fate, natka__settle how);
/* f's transaction was aborted: nak it, or dead-letter it again when that
 * was its fate. */
void natka__flight_aborted(natka__flight *f);
void natka__flight_dispatch(natka__flight *f);
void natka__flight_on_claim(void *opaque, natka__claim_result result);
void natka__flight_on_delivery(natka__sink *sink, void *opaque,
                               const natka__delivery *d);
void natka__gateway_update_pressure(natka *gw);

/* gateway.c */
void natka__gateway_maybe_finish_stop(natka *gw);

#endif
