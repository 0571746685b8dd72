# ptx_exec: tests of the PTX executor (gpu-agent/emu/ptx_exec*.c).
#
# test_ptx_exec: control flow, warps, blocks, faults and launches with
# hand-written kernels; test_ptx_exec_alu: instruction semantics;
# test_ptx_exec_nvcc: kernels nvcc compiles at build time
# (unit/test_ptx_exec_kernels.cu -> PTX, read at run time).
if(TARGET ptxemu)
  set(PTXEXEC_LIB ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_ptx_exec_lib.c)
  tr_unit_test(test_ptx_exec
    SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_ptx_exec.c ${PTXEXEC_LIB}
    LIBS ptxemu
    TIMEOUT 120 FAST)
  target_include_directories(test_ptx_exec PRIVATE
    ${CMAKE_CURRENT_SOURCE_DIR}/unit)
endif()
