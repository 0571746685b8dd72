# Test tools (tests/tools): tr_relay, the delaying TCP relay the benchmark
# and the fault tests put between a broker and its agent.
add_executable(tr_relay tools/tr_relay.c)
add_executable(test_relay tools/test_relay.c)
target_link_libraries(test_relay PRIVATE Threads::Threads)
set_target_properties(tr_relay test_relay PROPERTIES RUNTIME_OUTPUT_DIRECTORY
                      ${CMAKE_BINARY_DIR}/tests/tools)
add_test(NAME relay COMMAND test_relay $<TARGET_FILE:tr_relay>)
# Timings: a machine busy with other tests makes the rate cases noisy.
set_tests_properties(relay PROPERTIES TIMEOUT 120 LABELS "unit" RUN_SERIAL TRUE)
