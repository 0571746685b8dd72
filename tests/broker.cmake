# Tests of tremote-broker (broker/).
#
# test_broker_units: the loop abstraction and the pure helpers (byte queue,
#   string builder, JSON reader), no processes.
# test_broker: the real broker with two LOCAL machines (real agents on the
#   emulated device), driven as a client; skipped (77) until the agent
#   binary exists.  tests/unit/test_broker.c: the broker process, the
#   helpers (test_broker.h), the test table; the failure paths in
#   test_broker_faults.c.
tr_unit_test(test_broker_units
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_broker_units.c
  LIBS brkcore Threads::Threads
  TIMEOUT 60 FAST)

tr_unit_test(test_broker
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_broker.c
          ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_broker_faults.c
  LIBS Threads::Threads
  TIMEOUT 90 FAST
  ARGS $<TARGET_FILE:tremote-broker>
       ${CMAKE_BINARY_DIR}/gpu-agent/tremote-gpu-agent)
add_dependencies(test_broker tremote-broker)

# An agent impostor that fails on purpose (version mismatch, 401, garbage).
add_executable(test_broker_fakeagent
  ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_broker_fakeagent.c)
target_link_libraries(test_broker_fakeagent PRIVATE trcommon PkgConfig::NGHTTP2)

# The command line, exit codes, sockets, the control socket, and machines
# that fail to start (with fake agents).
tr_script_test(broker_cli integration/broker_cli.sh TIMEOUT 90 FAST)
