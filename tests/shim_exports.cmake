# Tests of the shim's surface: the CUDA error table, the start-up ELF
# checks, and the export list against the toolkit's libcudart.so.13.
# (Included by tests/CMakeLists.txt; paths are relative to tests/.)

# cuerr.h against driver_types.h (compile time) and libcudart (run time).
tr_unit_test(test_cuerr SOURCES unit/test_cuerr.c LIBS ${CMAKE_DL_LIBS} FAST)
target_include_directories(test_cuerr SYSTEM PRIVATE ${CUDA_HOME}/include)
target_compile_definitions(test_cuerr PRIVATE TR_CUDART_SO="${TR_CUDART_SO}")

# shim_elf_scan, on built and real images, truncated and corrupted.
tr_unit_test(test_preflight
  SOURCES unit/test_preflight.c ${CMAKE_SOURCE_DIR}/shim/shim_preflight.c
  LIBS ${CMAKE_DL_LIBS} FAST)
target_include_directories(test_preflight PRIVATE ${CMAKE_SOURCE_DIR}/shim)
target_compile_definitions(test_preflight PRIVATE TR_CUDART_SO="${TR_CUDART_SO}")

# libtremote_shim.so exports exactly libcudart.so.13's (name, version) set.
tr_script_test(shim_exports integration/exports.sh FAST TIMEOUT 60 ARGS symbols)
# nvcc-built programs under the preloaded shim: a stubbed call returns 801
# with its stderr line, cudaGetErrorString answers, and a statically linked
# program gets the preflight warning.
tr_script_test(shim_stub_app integration/exports.sh FAST TIMEOUT 300 ARGS app)
