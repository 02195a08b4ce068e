/* sink_kafka.c: being written. */
#include "natka/natka.h"
