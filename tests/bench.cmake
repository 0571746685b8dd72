# Benchmark (issue 3): ratios against baselines measured in the same run.
add_executable(baseline bench/baseline.c)
set_target_properties(baseline PROPERTIES RUNTIME_OUTPUT_DIRECTORY
                      ${CMAKE_BINARY_DIR}/tests/bench)
tr_cuda_app(bench_calls bench/bench_calls.cu)
if(TR_SANITIZE STREQUAL "")
  tr_script_test(bench bench/run.sh TIMEOUT 300)
  # Ratios mean something only on a machine that runs nothing else of ours.
  set_tests_properties(bench PROPERTIES RUN_SERIAL TRUE)
endif()
