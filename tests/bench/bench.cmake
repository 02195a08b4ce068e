# Benchmark programs, run by scripts/bench (not by ctest: they measure, they
# do not pass or fail). Included from tests/CMakeLists.txt with
#   include(bench/bench.cmake)
# Everything lands in <build>/bench/; `cmake --build <build> --target
# benchmarks` builds them together with the natka daemon they drive.

set(natka_bench_dir ${CMAKE_CURRENT_LIST_DIR})

# The baselines use nats.c and librdkafka directly; natka_static brings
# their include directories and libraries.
add_library(natka_bench_util STATIC ${natka_bench_dir}/bench_util.c)
target_link_libraries(natka_bench_util PUBLIC natka_static)

set(natka_bench_programs bench_fill bench_raw_js bench_raw_kafka bench_natka
  bench_reload bench_ingress)
foreach(p ${natka_bench_programs})
  add_executable(${p} ${natka_bench_dir}/${p}.c)
  target_link_libraries(${p} PRIVATE natka_bench_util)
  set_target_properties(${p} PROPERTIES
    RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bench)
endforeach()

add_custom_target(benchmarks)
add_dependencies(benchmarks natka ${natka_bench_programs})
