#include "natka/natka.h"
int main(void) { return 0; }
