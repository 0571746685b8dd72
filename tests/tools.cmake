# Test tools (tests/tools): tr_relay, the delaying TCP relay the benchmark
# and the fault tests put between a broker and its agent; no_uring, which
# runs a program with io_uring refused (as a container's seccomp profile
# does), for broker_cli.
add_executable(tr_relay tools/tr_relay.c)
add_executable(test_relay tools/test_relay.c)
add_executable(no_uring tools/no_uring.c)
target_link_libraries(test_relay PRIVATE Threads::Threads)
set_target_properties(tr_relay test_relay no_uring PROPERTIES
                      RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests/tools)
add_test(NAME relay COMMAND test_relay $<TARGET_FILE:tr_relay>)
# Timings: a machine busy with other tests makes the rate cases noisy.
set_tests_properties(relay PROPERTIES TIMEOUT 120 LABELS "unit" RUN_SERIAL TRUE)
