# gpu-agent: the real tremote-gpu-agent binary, started by the test and
# driven over loopback HTTP/2 (tests/unit/test_agent.c: the agent process,
# the helpers and the test tables; the tests by area in
# test_agent_{sessions,lanes,kernels}.c).
tr_unit_test(test_agent
  SOURCES unit/test_agent.c unit/test_agent_sessions.c unit/test_agent_lanes.c
          unit/test_agent_kernels.c unit/test_agent_h2c.c
  LIBS PkgConfig::NGHTTP2 OpenSSL::SSL
  TIMEOUT 180 FAST
  ARGS $<TARGET_FILE:tremote-gpu-agent>)
add_dependencies(test_agent tremote-gpu-agent)

# Sessions in worker processes (gpu-agent/backends/proc.c) around the
# emulated device, through the backend interface: the staging arena.  The
# workers are the test program itself (--worker-fd).
tr_unit_test(test_proc_backend
  SOURCES unit/test_proc_backend.c
  LIBS agtbackend Threads::Threads
  TIMEOUT 60 FAST)
target_compile_options(test_proc_backend PRIVATE
  "SHELL:-isystem ${CUDA_HOME}/include")
