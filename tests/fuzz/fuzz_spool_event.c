/*
 * A spool record's payload (spool_event.c): what natka__spool_event_unpack
 * makes of bytes read back from disk. A payload that unpacks is exactly what
 * natka__spool_event_pack writes for that event (the encoding has one form),
 * and the event is then encoded for Kafka as the spool source's would be.
 *
 * Input: the payload, raw (the layout is in spool.h).
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "natka/error.h"
#include "spool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  natka_event *ev = NULL;
  int rc = natka__spool_event_unpack(data, size, &ev);
  FUZZ_CHECK(rc == 0 || rc == NATKA_EMALFORMED, "spool_event_unpack: %s",
             natka_err_name(rc));
  if (rc != 0) {
    FUZZ_CHECK(ev == NULL, "a refused payload gave an event");
    return 0;
  }
  char *buf = NULL;
  size_t len = 0;
  FUZZ_CHECK(natka__spool_event_pack(ev, &buf, &len) == 0,
             "spool_event_pack failed");
  FUZZ_CHECK(len == size && memcmp(buf, data, size) == 0,
             "packing the unpacked event gives other bytes (%zu, not %zu)", len,
             size);
  free(buf);
  natka__wire_headers w = {0};
  FUZZ_CHECK(natka__event_to_kafka(ev, "natka://fuzz", &w) == 0,
             "event_to_kafka failed");
  natka__wire_headers_clear(&w);
  (void)natka__event_wire_size(ev);
  natka_event_free(ev);
  return 0;
}
