#include "natka/error.h"

const char *natka_strerror(int err) {
  switch (err) {
  case NATKA_OK:
    return "success";
#define NATKA__ERR_MSG(name, code, msg)                                        \
  case NATKA_##name:                                                           \
    return msg;
    NATKA_ERRNO_MAP(NATKA__ERR_MSG)
#undef NATKA__ERR_MSG
  }
  return "unknown error";
}

const char *natka_err_name(int err) {
  switch (err) {
  case NATKA_OK:
    return "OK";
#define NATKA__ERR_NAME(name, code, msg)                                       \
  case NATKA_##name:                                                           \
    return #name;
    NATKA_ERRNO_MAP(NATKA__ERR_NAME)
#undef NATKA__ERR_NAME
  }
  return "UNKNOWN";
}
