# The PTX executor (ptx_exec.h): sources for the ptxemu library.
set(PTX_EXEC_SRCS
  ${CMAKE_CURRENT_LIST_DIR}/ptx_exec.c
  ${CMAKE_CURRENT_LIST_DIR}/ptx_exec_alu.c
  ${CMAKE_CURRENT_LIST_DIR}/ptx_exec_cvt.c
  ${CMAKE_CURRENT_LIST_DIR}/ptx_exec_fp.c
  ${CMAKE_CURRENT_LIST_DIR}/ptx_exec_mem.c
  ${CMAKE_CURRENT_LIST_DIR}/ptx_exec_warp.c
  ${CMAKE_CURRENT_LIST_DIR}/ptx_printf.c)
# Floating point must behave as the PTX says, not as the host compiler
# likes: no contraction of a*b+c into an fma the kernel did not ask for,
# and the file that switches rounding modes must not have its arithmetic
# folded or moved across fesetround.  The interpreter's lane loops want
# -O3 (gcc vectorises them only there, with a run-time alias check), in
# every build type.
set_source_files_properties(${PTX_EXEC_SRCS} PROPERTIES
  COMPILE_OPTIONS "-ffp-contract=off;-O3")
set_property(SOURCE ${CMAKE_CURRENT_LIST_DIR}/ptx_exec_fp.c APPEND
  PROPERTY COMPILE_OPTIONS "-frounding-math")
