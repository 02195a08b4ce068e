/* config.c: being written. */
#include "natka/natka.h"
