# libtremote (tools/libtremote): the GPU type table and errors offline,
# and the machine calls against a real broker.
tr_unit_test(test_libtremote SOURCES unit/test_libtremote.c LIBS tremote FAST)
tr_script_test(libtremote integration/libtremote.sh TIMEOUT 120 FAST)
tr_script_test(smi integration/smi.sh TIMEOUT 120 FAST)
# The same program as apps/devices.cu, linked the way nvcc does by default
# (the CUDA runtime statically), which tremote cannot carry: `tremote
# doctor` must say so, with the flag that fixes it.
add_custom_command(OUTPUT ${CMAKE_BINARY_DIR}/tests/apps/devices_static
  COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/tests/apps
  COMMAND ${TR_NVCC} -O2 -o ${CMAKE_BINARY_DIR}/tests/apps/devices_static
          ${CMAKE_CURRENT_SOURCE_DIR}/apps/devices.cu
  DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/apps/devices.cu
  COMMENT "nvcc (static runtime) apps/devices.cu" VERBATIM)
add_custom_target(app_devices_static ALL
  DEPENDS ${CMAKE_BINARY_DIR}/tests/apps/devices_static)
tr_script_test(tremote_cli integration/tremote_cli.sh TIMEOUT 180 FAST)
# A CUDA program that uses libtremote (the shim's entry table).
tr_cuda_app(machine_device apps/machine_device.cu
  -I${CMAKE_SOURCE_DIR}/include -L${CMAKE_BINARY_DIR}/tools/libtremote
  -ltremote -Xlinker -rpath=${CMAKE_BINARY_DIR}/tools/libtremote)
add_dependencies(app_machine_device tremote)
tr_cuda_app(rand_fill apps/rand_fill.cu
  -I${CMAKE_SOURCE_DIR}/include -L${CMAKE_BINARY_DIR}/tools/libtremote
  -ltremote -Xlinker -rpath=${CMAKE_BINARY_DIR}/tools/libtremote)
add_dependencies(app_rand_fill tremote)
# The seed's examples in C (tools/examples), built as a user would, against
# libtremote, and run by examples.sh.
foreach(ex basic_usage multiple_devices registry device_context)
  tr_cuda_app(example_${ex} ../tools/examples/${ex}.cu
    -I${CMAKE_SOURCE_DIR}/include -L${CMAKE_BINARY_DIR}/tools/libtremote
    -ltremote -Xlinker -rpath=${CMAKE_BINARY_DIR}/tools/libtremote)
  add_dependencies(app_example_${ex} tremote)
endforeach()
tr_script_test(examples integration/examples.sh TIMEOUT 300 FAST)
