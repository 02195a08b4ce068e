/*
 * The NATS side of the codec: natka__event_from_nats with a subject, headers
 * and a payload from the fuzzer, as a NATS source hands them over (after
 * nats.c parsed the header block; fuzz_nats_msg.c starts before that).
 * A decoded event must survive natka's own encoders (fuzz_common.h).
 *
 * Input (lines; fuzz_common.h):
 *   subject            (empty: "fuzz.subject")
 *   default id         (empty: none, a UUIDv7 is made; JetStream passes one)
 *   name: value        headers, up to an empty line
 *   payload            the rest, raw
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "natka/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_text t = {(const char *)data, (const char *)data + size};
  fuzz_headers hs;
  const char *line;
  size_t len;
  char err[256];

  fuzz_line(&t, &line, &len);
  char *subject = fuzz_unescape(line, len, NULL);
  fuzz_line(&t, &line, &len);
  char *default_id = fuzz_unescape(line, len, NULL);
  fuzz_read_headers(&t, &hs);

  natka_event *ev = NULL;
  FUZZ_CHECK(natka_event_new(&ev) == 0, "out of memory");
  /* A subject and a JetStream id are never empty (nor cut by a NUL). */
  int rc = natka__event_from_nats(
      ev, subject[0] != '\0' ? subject : "fuzz.subject", hs.h, hs.n, t.p,
      (size_t)(t.end - t.p), default_id[0] != '\0' ? default_id : NULL, err,
      sizeof(err));
  FUZZ_CHECK(rc == 0 || rc == NATKA_EMALFORMED, "from_nats: %s: %s",
             natka_err_name(rc), err);
  if (rc == 0) {
    FUZZ_CHECK(ev->id != NULL && ev->id[0] != '\0', "decoded without an id");
    fuzz_check_wire_round_trip(ev);
    fuzz_check_spool_round_trip(ev);
  } else {
    FUZZ_CHECK(ev->id == NULL && ev->nhdrs == 0 && ev->data == NULL,
               "a refused message left the event filled");
  }
  natka_event_free(ev);
  fuzz_headers_free(&hs);
  free(default_id);
  free(subject);
  return 0;
}
