/*
 * Exactly-once JetStream -> Kafka: batches of flights as Kafka transactions.
 *
 * A flight joins the open transaction at its first Kafka send (the first
 * join begins it). When the transaction is full (kafka.transaction_max_events)
 * or old enough (kafka.transaction_ms), it takes no new members; once every
 * member's sends are reported, the checkpoint record (per source, the
 * positions committed transactions hold; see checkpoint.h) is produced into
 * it and it is committed. Only then are the members settled: their sources
 * acked, their reports delivered. A transaction with a member that failed is
 * aborted instead; its members are nak'ed (redelivered, decided again), and
 * those that were dead-lettered are dead-lettered again in the next one.
 *
 * While a commit or abort runs, new flights wait in order (natka__txn_gate)
 * and are resumed when it is done. JetStream acks are clean-up: a message
 * redelivered after a crash between commit and ack is found in the
 * checkpoint (natka__txn_committed) and settled without a second record.
 *
 * Loop thread only.
 */
#ifndef NATKA_TXN_H
#define NATKA_TXN_H

#include "gateway_int.h"

/* Created once the sink is ready with transactions on; `checkpoint` is the
 * record read at start (or NULL). 0, NATKA_ENOMEM, or NATKA_EMALFORMED when
 * the checkpoint cannot be read (reason in err). */
int natka__txn_new(natka__txn **out, natka *gw, const char *checkpoint,
                   char *err, size_t errlen);

/* 1 when f must wait for the commit under way (it is queued, and resumed
 * with resume(f) afterwards, in order); 0 when it may go on now. */
int natka__txn_gate(natka__txn *t, natka__flight *f,
                    void (*resume)(natka__flight *f));

/* Makes f a member of the open transaction (beginning one when none is
 * open) before its first Kafka send. 0, or NATKA_EBUSY / NATKA_EKAFKA. */
int natka__txn_join(natka__txn *t, natka__flight *f);

/* A member is complete; its settlement waits for the outcome. */
void natka__txn_park(natka__txn *t, natka__flight *f, natka_fate fate,
                     natka__settle how);

/* Notes that f's source position is in natka; 1 when it already was (a
 * redelivery of a message natka still works on: the caller naks the copy,
 * whose position the first one settles). */
int natka__txn_track(natka__txn *t, natka__flight *f);
/* Forgets f's position (natka__flight_settle). */
void natka__txn_untrack(natka__txn *t, natka__flight *f);
/* Ends the open transaction as soon as its members are reported (a stop:
 * no point waiting for kafka.transaction_ms). */
void natka__txn_flush(natka__txn *t);

/* 1 when the event behind (src, token) is in a committed transaction. */
int natka__txn_committed(natka__txn *t, natka__source *src, void *token);

/* Stops taking members: what is open is abandoned (members nak'ed: their
 * records are in a transaction that is never committed, which Kafka aborts
 * when this producer goes or its successor starts); a commit under way is
 * waited for. `done` runs once nothing of t remains in use; then free. */
void natka__txn_close(natka__txn *t, void (*done)(void *data), void *data);
void natka__txn_free(natka__txn *t);

#endif
