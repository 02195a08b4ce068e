/*
 * natka error codes.
 *
 * Every natka function that can fail returns 0 on success or one of the
 * negative NATKA_E* codes below. The table is the single source of the codes,
 * their names and their messages; details a caller needs (which config key,
 * which rule, which line) go to the error buffer of the call that failed.
 */
#ifndef NATKA_ERROR_H
#define NATKA_ERROR_H

#include "natka/export.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NATKA_ERRNO_MAP(XX)                                                    \
  XX(EINVAL, -1, "invalid argument")                                           \
  XX(ENOMEM, -2, "out of memory")                                              \
  XX(ECONFIG, -3, "invalid configuration")                                     \
  XX(ERULE, -4, "rule error")                                                  \
  XX(ETOOBIG, -5, "event larger than limits.max_event_bytes")                  \
  XX(ESTOPPED, -6, "gateway is stopping or stopped")                           \
  XX(EBUSY, -7, "too many events in flight")                                   \
  XX(ENATS, -8, "NATS error")                                                  \
  XX(EKAFKA, -9, "Kafka error")                                                \
  XX(ETIMEDOUT, -10, "timed out")                                              \
  XX(EIO, -11, "I/O error")                                                    \
  XX(EMALFORMED, -12, "malformed event")                                       \
  XX(EDEGRADED, -13, "sent to the dead-letter topic by a degrade rule")        \
  XX(EHELD, -14, "held by a degrade rule; redelivered later")                  \
  XX(EFENCED, -15,                                                             \
     "another natka with the same kafka.transactional_id took over")           \
  XX(ERETRIES, -16, "Kafka kept refusing the event; retry.max_attempts used")  \
  XX(EFORBIDDEN, -17, "destination reserved for natka, or outside route.allow")

typedef enum {
  NATKA_OK = 0,
#define NATKA__ERR_ENUM(name, code, msg) NATKA_##name = (code),
  NATKA_ERRNO_MAP(NATKA__ERR_ENUM)
#undef NATKA__ERR_ENUM
} natka_errno;

/*
 * Returns a static, human-readable message for `err` ("invalid argument").
 * Unknown codes give "unknown error". Any thread.
 */
NATKA_EXTERN const char *natka_strerror(int err);

/*
 * Returns the static name of `err` ("EINVAL"), or "UNKNOWN". Any thread.
 */
NATKA_EXTERN const char *natka_err_name(int err);

#ifdef __cplusplus
}
#endif
#endif /* NATKA_ERROR_H */
