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
  tr_unit_test(test_ptx_exec_alu
    SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_ptx_exec_alu.c ${PTXEXEC_LIB}
    LIBS ptxemu
    TIMEOUT 120 FAST)
  target_include_directories(test_ptx_exec_alu PRIVATE
    ${CMAKE_CURRENT_SOURCE_DIR}/unit)
endif()

# The kernels test_ptx_exec_nvcc runs: nvcc -ptx at build time.  The golden
# kernels are compiled exactly as for the GPU run that recorded
# unit/test_ptx_exec_golden.bin.zst (compute_90 PTX, no fma contraction).
if(TARGET ptxemu)
  set(PTXEXEC_PTX ${CMAKE_CURRENT_BINARY_DIR}/ptx_exec)
  add_custom_command(OUTPUT ${PTXEXEC_PTX}/test_ptx_exec_kernels.ptx
    COMMAND ${CMAKE_COMMAND} -E make_directory ${PTXEXEC_PTX}
    COMMAND ${TR_NVCC} -ptx -arch=sm_80
            -o ${PTXEXEC_PTX}/test_ptx_exec_kernels.ptx
            ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_ptx_exec_kernels.cu
    DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_ptx_exec_kernels.cu
    COMMENT "nvcc -ptx test_ptx_exec_kernels.cu" VERBATIM)
  add_custom_command(OUTPUT ${PTXEXEC_PTX}/test_ptx_exec_golden.ptx
    COMMAND ${CMAKE_COMMAND} -E make_directory ${PTXEXEC_PTX}
    COMMAND ${TR_NVCC} -ptx -arch=sm_90 -fmad=false
            -I${CMAKE_CURRENT_SOURCE_DIR}/unit
            -o ${PTXEXEC_PTX}/test_ptx_exec_golden.ptx
            ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_ptx_exec_golden.cu
    DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_ptx_exec_golden.cu
            ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_ptx_exec_golden.h
    COMMENT "nvcc -ptx test_ptx_exec_golden.cu" VERBATIM)
  add_custom_target(test_ptx_exec_ptx DEPENDS
    ${PTXEXEC_PTX}/test_ptx_exec_kernels.ptx
    ${PTXEXEC_PTX}/test_ptx_exec_golden.ptx)
  tr_unit_test(test_ptx_exec_nvcc
    SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_ptx_exec_nvcc.c ${PTXEXEC_LIB}
    LIBS ptxemu PkgConfig::ZSTD
    TIMEOUT 120 FAST
    ARGS ${PTXEXEC_PTX}
         ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_ptx_exec_golden.bin.zst
         ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/ptx)
  target_include_directories(test_ptx_exec_nvcc PRIVATE
    ${CMAKE_CURRENT_SOURCE_DIR}/unit)
  add_dependencies(test_ptx_exec_nvcc test_ptx_exec_ptx)
endif()

# emu_bench: the executor's speed against plain C on one core (matmul,
# reduction, histogram).  A tool first (run it by hand for the numbers);
# also a test outside the fast set that fails only beyond the 200x floor,
# alone on the machine and not under sanitizers (timings there mean
# nothing).
if(TARGET ptxemu)
  add_executable(emu_bench bench/emu_bench.c)
  target_link_libraries(emu_bench PRIVATE ptxemu)
  set_target_properties(emu_bench PROPERTIES RUNTIME_OUTPUT_DIRECTORY
                        ${CMAKE_BINARY_DIR}/tests/bench)
  add_dependencies(emu_bench test_ptx_exec_ptx)
  if(TR_SANITIZE STREQUAL "")
    add_test(NAME emu_bench COMMAND emu_bench
             ${PTXEXEC_PTX}/test_ptx_exec_kernels.ptx --check)
    set_tests_properties(emu_bench PROPERTIES TIMEOUT 300 RUN_SERIAL TRUE
                         LABELS bench)
  endif()
endif()
