/* source_nats.c: being written. */
#include "natka/natka.h"
