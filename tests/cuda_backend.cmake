# cuda_backend: the agent's cuda backend (gpu-agent/backends/cuda.c) and
# backend.c's choice between it and the emulated device
# (tests/unit/test_cuda_backend.c).  Runs everywhere: against the toolkit's
# stub library, without any libcuda.so.1, and against a fake driver built
# here (unit/fake_libcuda.c, alone in a directory as libcuda.so.1); on a
# machine with a GPU it also runs the backend on the GPU with kernels nvcc
# builds into a fatbin here (tests/gpu/run.sh runs it there).
set(CUDA_BACKEND_DIR ${CMAKE_CURRENT_BINARY_DIR}/cuda_backend)
set(CUDA_BACKEND_FATBIN ${CUDA_BACKEND_DIR}/test_cuda_backend_kernels.fatbin)

add_library(fakecuda SHARED unit/fake_libcuda.c)
set_target_properties(fakecuda PROPERTIES
  OUTPUT_NAME cuda PREFIX lib SUFFIX .so.1
  LIBRARY_OUTPUT_DIRECTORY ${CUDA_BACKEND_DIR}/fake)
target_compile_options(fakecuda PRIVATE "SHELL:-isystem ${CUDA_HOME}/include")
target_link_libraries(fakecuda PRIVATE Threads::Threads)

# compute_75 PTX runs on every GPU CUDA 13 supports (the driver compiles
# it); sm_90 machine code spares the H100/H200 that step.
add_custom_command(OUTPUT ${CUDA_BACKEND_FATBIN}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${CUDA_BACKEND_DIR}
  COMMAND ${TR_NVCC} -fatbin -gencode arch=compute_75,code=compute_75
          -gencode arch=compute_90,code=sm_90 -o ${CUDA_BACKEND_FATBIN}
          ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_cuda_backend_kernels.cu
  DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_cuda_backend_kernels.cu
  COMMENT "nvcc -fatbin test_cuda_backend_kernels.cu" VERBATIM)
add_custom_target(cuda_backend_fatbin DEPENDS ${CUDA_BACKEND_FATBIN})

# NVML's stand-in beside it (unit/fake_nvml.c): the agent's sampling of
# utilization, temperature and the driver (cuda_fake.sh checks them in
# tremote-smi).
add_library(fakenvml SHARED unit/fake_nvml.c)
set_target_properties(fakenvml PROPERTIES
  OUTPUT_NAME nvidia-ml PREFIX lib SUFFIX .so.1
  LIBRARY_OUTPUT_DIRECTORY ${CUDA_BACKEND_DIR}/fake)

# The whole path on the fake driver: programs under the shim, the broker,
# a LOCAL agent with --backend cuda (copies and memsets: the fake runs no
# kernels), and NVML's figures in tremote-smi.
tr_script_test(cuda_fake integration/cuda_fake.sh TIMEOUT 180 FAST
  ARGS ${CUDA_BACKEND_DIR}/fake)
add_dependencies(fakenvml fakecuda)

tr_unit_test(test_cuda_backend
  SOURCES unit/test_cuda_backend.c
  LIBS agtbackend ${CMAKE_DL_LIBS} Threads::Threads
  TIMEOUT 120 FAST
  ARGS ${CUDA_HOME}/lib64/stubs/libcuda.so ${CUDA_BACKEND_DIR}/fake
       ${CUDA_BACKEND_FATBIN})
target_compile_options(test_cuda_backend PRIVATE
  "SHELL:-isystem ${CUDA_HOME}/include")
add_dependencies(test_cuda_backend fakecuda cuda_backend_fatbin)
