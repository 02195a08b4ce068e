/*
 * The C unit runner: each tests/unit/test_<area>.c lists its cases with
 * cmocka_unit_test() in one array and ends with NATKA_TEST_MAIN(that array).
 * ctest registers one entry per case (tests/CMakeLists.txt reads the list)
 * and runs `unit_<area> <case>`; with no argument every case runs.
 */
#ifndef NATKA_TEST_RUNNER_H
#define NATKA_TEST_RUNNER_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define NATKA_TEST_MAIN(tests)                                                 \
  int main(int argc, char **argv) {                                            \
    if (argc > 1)                                                              \
      cmocka_set_test_filter(argv[1]);                                         \
    return cmocka_run_group_tests(tests, NULL, NULL);                          \
  }

#endif
