/* source_jetstream.c: being written. */
#include "natka/natka.h"
