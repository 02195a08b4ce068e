/* event.c: being written. */
#include "natka/natka.h"
