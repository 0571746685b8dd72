# Benchmark (issue 5): tremote-bench (tools/bench) and its workload.  The
# ctest `bench` runs tremote-bench --quick with bounds far outside the
# goals (tests/bench/run.sh).
tr_cuda_app(bench_calls bench/bench_calls.cu)
if(TR_SANITIZE STREQUAL "")
  tr_script_test(bench bench/run.sh TIMEOUT 300)
  # Ratios mean something only on a machine that runs nothing else of ours.
  set_tests_properties(bench PROPERTIES RUN_SERIAL TRUE)
endif()
