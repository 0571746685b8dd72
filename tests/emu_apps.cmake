# Self-checking CUDA programs for the emulated device (tests/apps/emu_*.cu).
# Each prints "PASS <name>" and exits 0, or says what differed and exits 1
# (2: a CUDA call failed).  They are plain CUDA: tests/gpu/native_apps.sh
# runs the same binaries on a real GPU as a cross-check.
# (Included by tests/CMakeLists.txt; paths are relative to tests/.)
set(tr_emu_apps
  emu_vector_add emu_saxpy_double emu_matmul_tiled emu_reduce_shared
  emu_reduce_shuffle emu_histogram emu_prefix_scan emu_transpose
  emu_template emu_struct_param emu_recursion emu_printf emu_constant
  emu_grid_stride emu_oob emu_half emu_divergence emu_device_props)
foreach(app ${tr_emu_apps})
  tr_cuda_app(${app} apps/${app}.cu)
  # tr_cuda_app's command depends on the .cu only; the shared header too.
  add_custom_command(OUTPUT ${CMAKE_BINARY_DIR}/tests/apps/${app} APPEND
    DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/apps/emu_check.h)
endforeach()

# All of them under the shim, against one real broker and LOCAL agent; one
# result line per app, and the failure lists every app that failed.  Exit 77
# (skipped) while the emulated device cannot execute kernels at all.
tr_script_test(emu_apps integration/emu_apps.sh TIMEOUT 900)
# The quick ones (all but emu_grid_stride), for the sanitizer runs.
set(tr_emu_fast_apps ${tr_emu_apps})
list(REMOVE_ITEM tr_emu_fast_apps emu_grid_stride)
tr_script_test(emu_apps_fast integration/emu_apps.sh TIMEOUT 900 FAST
  ARGS ${tr_emu_fast_apps})
foreach(t emu_apps emu_apps_fast)
  set_property(TEST ${t} APPEND PROPERTY LABELS emu)
endforeach()
