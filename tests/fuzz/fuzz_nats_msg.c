/*
 * A NATS message as it comes off the wire, through what the request-reply
 * ingress does with a request before publishing it (ingress.c on_request):
 * nats.c's own parsing of the header block, natka__nats_msg_decode, the
 * size check, and the spool record an ingress with store = "spool" writes.
 * Then the same bytes as the JetStream source decodes them (a default id
 * and time), and as a dead letter (a malformed message is still encoded).
 *
 * Input (lines; fuzz_common.h):
 *   subject            (empty: "fuzz.in")
 *   header length      decimal: how many bytes of the rest are the header
 *                      block (0: none; at most the rest, as nats.c's
 *                      protocol parser ensures)
 *   header block + payload, raw: "NATS/1.0\r\nname: value\r\n\r\n..."
 */
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>

#include "fuzz_common.h"
#include "nats_msg.h"
#include "natka/error.h"

/* nats.c's constructor for a message read from the socket, and its free
 * (src/msg.h; in libnats's exported symbols but not in nats.h): buf holds
 * hdrLen bytes of header block, parsed lazily by natsMsgHeader_*, then the
 * payload. natsMsg_Destroy would hand the message to the library's collector
 * thread; freed here and now, libFuzzer's leak check stays cheap. */
natsStatus natsMsg_create(natsMsg **newMsg, const char *subject, int subjLen,
                          const char *reply, int replyLen, const char *buf,
                          int bufLen, int hdrLen);
void natsMsg_free(void *object);

#define MAX_EVENT_BYTES 4096 /* a small limits.max_event_bytes */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  /* As in natka: nats.c keeps the reason of a failure (a header block it
   * cannot parse) for nats_GetLastError. */
  FUZZ_CHECK(nats_Open(-1) == NATS_OK, "nats_Open failed");
  return 0;
}

static natsMsg *message(const char *subject, const char *buf, size_t len,
                        size_t hdr_len) {
  static const char reply[] = "_INBOX.fuzz";
  natsMsg *m = NULL;
  natsStatus st =
      natsMsg_create(&m, subject, (int)strlen(subject), reply,
                     (int)sizeof(reply) - 1, buf, (int)len, (int)hdr_len);
  FUZZ_CHECK(st == NATS_OK, "natsMsg_create: %s", natsStatus_GetText(st));
  return m;
}

static void decode(const char *subject, const char *buf, size_t len,
                   size_t hdr_len, const char *default_id, int64_t default_ts) {
  natsMsg *m = message(subject, buf, len, hdr_len);
  natka_event *ev = NULL;
  char *malformed = NULL;
  int rc = natka__nats_msg_decode(m, default_id, default_ts, &ev, &malformed);
  FUZZ_CHECK(rc == 0, "nats_msg_decode: %s", natka_err_name(rc));
  FUZZ_CHECK(ev != NULL && ev->id != NULL && ev->kind != NULL,
             "no event, or one without id or kind");
  size_t size = natka__event_wire_size(ev);
  if (malformed == NULL && size <= MAX_EVENT_BYTES) {
    /* Accepted: it goes to JetStream (or the spool) and on to Kafka. */
    fuzz_check_wire_round_trip(ev);
    fuzz_check_spool_round_trip(ev);
  } else {
    /* Refused, or dead-lettered as it was: still encoded for Kafka. */
    natka__wire_headers w = {0};
    FUZZ_CHECK(natka__event_to_kafka(ev, "natka://fuzz", &w) == 0,
               "event_to_kafka failed");
    natka__wire_headers_clear(&w);
  }
  free(malformed);
  natka_event_free(ev);
  natsMsg_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_text t = {(const char *)data, (const char *)data + size};
  const char *line;
  size_t len;

  fuzz_line(&t, &line, &len);
  char *subject = fuzz_unescape(line, len, NULL);
  fuzz_line(&t, &line, &len);
  char *hdr_text = fuzz_unescape(line, len, NULL);
  size_t rest = (size_t)(t.end - t.p);
  unsigned long long hdr_len = strtoull(hdr_text, NULL, 10);
  if (hdr_len > rest)
    hdr_len = rest;
  if (rest <= (size_t)1 << 20) {
    const char *subj = subject[0] != '\0' ? subject : "fuzz.in";
    decode(subj, t.p, rest, (size_t)hdr_len, NULL, 0); /* the ingress */
    decode(subj, t.p, rest, (size_t)hdr_len, "EVENTS:42",
           INT64_C(1700000000123456789)); /* the JetStream source */
  }
  free(hdr_text);
  free(subject);
  return 0;
}
