# gpu-agent: the real tremote-gpu-agent binary, started by the test and
# driven over loopback HTTP/2 (tests/unit/test_agent.c).
tr_unit_test(test_agent
  SOURCES unit/test_agent.c unit/test_agent_h2c.c
  LIBS PkgConfig::NGHTTP2
  TIMEOUT 180 FAST
  ARGS $<TARGET_FILE:tremote-gpu-agent>)
add_dependencies(test_agent tremote-gpu-agent)
