/*
 * The Kafka side of the codec: natka__event_from_kafka with a record key,
 * timestamp, headers and value from the fuzzer, as `natka dlq replay` reads
 * them off a topic. A decoded event must survive natka's own encoders
 * (fuzz_common.h).
 *
 * Input (lines; fuzz_common.h):
 *   key: bytes         the record key; any other line: no key
 *   timestamp          decimal ms (<= 0, or not a number: unknown)
 *   name: value        headers, up to an empty line ("name" alone: a null
 *                      value, as librdkafka hands one over)
 *   value              the rest, raw
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "natka/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_text t = {(const char *)data, (const char *)data + size};
  fuzz_headers hs;
  const char *line;
  size_t len, key_len = 0;
  char *key = NULL, err[256];

  fuzz_line(&t, &line, &len);
  if (len >= 4 && memcmp(line, "key:", 4) == 0) {
    size_t skip = len > 4 && line[4] == ' ' ? 5 : 4;
    key = fuzz_unescape(line + skip, len - skip, &key_len);
  }
  fuzz_line(&t, &line, &len);
  char *ts_text = fuzz_unescape(line, len, NULL);
  int64_t ts_ms = strtoll(ts_text, NULL, 10);
  fuzz_read_headers(&t, &hs);

  natka_event *ev = NULL;
  FUZZ_CHECK(natka_event_new(&ev) == 0, "out of memory");
  int rc = natka__event_from_kafka(ev, key, key_len, ts_ms, hs.h, hs.n, t.p,
                                   (size_t)(t.end - t.p), err, sizeof(err));
  FUZZ_CHECK(rc == 0 || rc == NATKA_EMALFORMED, "from_kafka: %s: %s",
             natka_err_name(rc), err);
  if (rc == 0) {
    FUZZ_CHECK(ev->id != NULL && ev->id[0] != '\0', "decoded without an id");
    fuzz_check_wire_round_trip(ev);
    fuzz_check_spool_round_trip(ev);
  } else {
    FUZZ_CHECK(ev->id == NULL && ev->nhdrs == 0 && ev->data == NULL,
               "a refused record left the event filled");
  }
  natka_event_free(ev);
  fuzz_headers_free(&hs);
  free(ts_text);
  free(key);
  return 0;
}
