#include "nats_conn.h"

#define CLOSE_WAIT_NS (5 * 1000000000ULL)

static void on_closed(natsConnection *nc, void *closure) {
  natka__nats_closed *c = closure;
  (void)nc;
  uv_mutex_lock(&c->mu);
  c->closed = 1;
  uv_cond_signal(&c->cond);
  uv_mutex_unlock(&c->mu);
}

natsStatus natka__nats_options(const natka_config *conf, natsOptions **out,
                               natka__nats_closed *closed) {
  closed->closed = 0;
  if (uv_mutex_init(&closed->mu) != 0)
    return NATS_NO_MEMORY;
  if (uv_cond_init(&closed->cond) != 0) {
    uv_mutex_destroy(&closed->mu);
    return NATS_NO_MEMORY;
  }
  natsStatus st = natsOptions_Create(out);
  if (st == NATS_OK)
    st = natsOptions_SetURL(*out, conf->nats_url);
  if (st == NATS_OK)
    st = natsOptions_SetName(*out, conf->nats_name);
  if (st == NATS_OK)
    st = natsOptions_SetTimeout(*out, conf->nats_connect_timeout_ms);
  if (st == NATS_OK)
    st = natsOptions_SetMaxReconnect(*out, -1);
  if (st == NATS_OK)
    st = natsOptions_SetReconnectWait(*out, conf->nats_reconnect_wait_ms);
  if (st == NATS_OK)
    st = natsOptions_SetReconnectJitter(*out, 100, 1000);
  if (st == NATS_OK)
    st = natsOptions_SetClosedCB(*out, on_closed, closed);
  return st;
}

void natka__nats_closed_destroy(natka__nats_closed *closed) {
  uv_cond_destroy(&closed->cond);
  uv_mutex_destroy(&closed->mu);
}

void natka__nats_close(natsConnection *nc, natka__nats_closed *closed) {
  if (nc == NULL)
    return;
  natsConnection_Close(nc);
  uv_mutex_lock(&closed->mu);
  if (!closed->closed)
    uv_cond_timedwait(&closed->cond, &closed->mu, CLOSE_WAIT_NS);
  uv_mutex_unlock(&closed->mu);
  natsConnection_Destroy(nc);
}
