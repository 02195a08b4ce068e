#include "nats_msg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "codec.h"
#include "natka/error.h"
#include "util.h"

/* nats.c keeps headers in a map of name -> values; flatten it into the
 * codec's list. The values of one name keep their order. */
static int flatten(natsMsg *msg, natka__wire_header **out, size_t *n) {
  const char **keys = NULL;
  int nkeys = 0;
  natka__wire_header *wh = NULL;
  size_t count = 0;
  *out = NULL;
  *n = 0;
  natsStatus st = natsMsgHeader_Keys(msg, &keys, &nkeys);
  if (st == NATS_NOT_FOUND)
    return 0; /* no headers */
  if (st != NATS_OK)
    return st == NATS_NO_MEMORY ? NATKA_ENOMEM : NATKA_EMALFORMED;
  for (int pass = 0; pass < 2; pass++) {
    count = 0;
    for (int k = 0; k < nkeys; k++) {
      const char **vals = NULL;
      int nvals = 0;
      if (natsMsgHeader_Values(msg, keys[k], &vals, &nvals) != NATS_OK)
        continue;
      for (int v = 0; v < nvals; v++, count++)
        if (pass == 1)
          wh[count] = (natka__wire_header){keys[k], vals[v], strlen(vals[v])};
      free((void *)vals);
    }
    if (pass == 0 && (wh = calloc(count ? count : 1, sizeof(*wh))) == NULL) {
      free((void *)keys);
      return NATKA_ENOMEM;
    }
  }
  /* The names point into msg, which outlives this call; keys is ours. */
  free((void *)keys);
  *out = wh;
  *n = count;
  return 0;
}

static const char *find_header(const natka__wire_header *wh, size_t n,
                               const char *name) {
  for (size_t i = 0; i < n; i++)
    if (strcasecmp(wh[i].name, name) == 0 && wh[i].len > 0)
      return wh[i].value;
  return NULL;
}

/* The publisher's id matters most in the DLQ: keep it when there is one. */
static int salvage(natsMsg *msg, const char *default_id,
                   const natka__wire_header *wh, size_t nwh, natka_event *ev) {
  const char *id = find_header(wh, nwh, "ce-id");
  char uuid[37];
  if (id == NULL)
    id = find_header(wh, nwh, "Nats-Msg-Id");
  if (id == NULL)
    id = default_id;
  if (id == NULL && natka__uuid7(uuid) == 0)
    id = uuid;
  int rc = natka_event_set_kind(ev, natsMsg_GetSubject(msg));
  if (rc == 0)
    rc = natka_event_set_id(ev, id);
  if (rc == 0)
    rc = natka_event_set_data(ev, natsMsg_GetData(msg),
                              (size_t)natsMsg_GetDataLength(msg));
  for (size_t i = 0; rc == 0 && i < nwh; i++)
    rc = natka_event_add_header(ev, wh[i].name, wh[i].value, wh[i].len);
  return rc;
}

int natka__nats_msg_decode(natsMsg *msg, const char *default_id,
                           int64_t default_ts, natka_event **out,
                           char **malformed) {
  natka__wire_header *wh = NULL;
  size_t nwh = 0;
  natka_event *ev = NULL;
  char err[256] = "";
  int rc;

  *out = NULL;
  *malformed = NULL;
  if ((rc = flatten(msg, &wh, &nwh)) == NATKA_EMALFORMED) {
    /* nats.c could not parse the header block: keep the payload. */
    const char *why = nats_GetLastError(NULL);
    snprintf(err, sizeof(err), "headers cannot be parsed: %s",
             why != NULL && *why ? why : "protocol error");
    if ((rc = natka_event_new(&ev)) == 0 &&
        (rc = salvage(msg, default_id, NULL, 0, ev)) == 0 &&
        (*malformed = natka__strdup(err)) == NULL)
      rc = NATKA_ENOMEM;
    if (rc == 0) {
      *out = ev;
      ev = NULL;
    }
    goto done;
  }
  if (rc != 0)
    return rc;
  if ((rc = natka_event_new(&ev)) != 0)
    goto done;
  rc = natka__event_from_nats(
      ev, natsMsg_GetSubject(msg), wh, nwh, natsMsg_GetData(msg),
      (size_t)natsMsg_GetDataLength(msg), default_id, err, sizeof(err));
  if (rc == 0 && default_ts > 0 && find_header(wh, nwh, "ce-time") == NULL)
    natka_event_set_ts(ev, default_ts);
  if (rc != 0 && rc != NATKA_ENOMEM) {
    /* Keep what can be kept; the gateway dead-letters it with the reason. */
    natka_event_free(ev);
    ev = NULL;
    if ((rc = natka_event_new(&ev)) == 0 &&
        (rc = salvage(msg, default_id, wh, nwh, ev)) == 0 &&
        (*malformed = natka__strdup(err)) == NULL)
      rc = NATKA_ENOMEM;
  }
  if (rc == 0) {
    *out = ev;
    ev = NULL;
  }
done:
  natka_event_free(ev);
  free(wh);
  return rc;
}
