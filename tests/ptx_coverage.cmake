# ptx_coverage: every (opcode, type, modifier) form in the PTX of the test
# programs (tests/apps/*.cu, compiled by nvcc -ptx with default flags, as
# the programs' own fatbins carry it) is implemented by the emulated device.
if(TARGET ptxemu)
  set(PTXCOV_DIR ${CMAKE_CURRENT_BINARY_DIR}/apps_ptx)
  file(GLOB ptxcov_sources ${CMAKE_CURRENT_SOURCE_DIR}/apps/*.cu)
  list(SORT ptxcov_sources)
  set(ptxcov_files "")
  foreach(src ${ptxcov_sources})
    get_filename_component(n ${src} NAME_WE)
    set(out ${PTXCOV_DIR}/${n}.ptx)
    add_custom_command(OUTPUT ${out}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${PTXCOV_DIR}
      COMMAND ${TR_NVCC} -ptx -I${CMAKE_CURRENT_SOURCE_DIR}/apps
              -I${CMAKE_SOURCE_DIR}/include -o ${out} ${src}
      DEPENDS ${src} ${CMAKE_CURRENT_SOURCE_DIR}/apps/emu_check.h
      COMMENT "nvcc -ptx ${n}.cu" VERBATIM)
    list(APPEND ptxcov_files ${out})
  endforeach()
  add_custom_target(ptx_coverage_ptx ALL DEPENDS ${ptxcov_files})
  tr_unit_test(ptx_coverage
    SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/ptx_coverage.c
    LIBS ptxemu
    TIMEOUT 60 FAST
    ARGS ${ptxcov_files})
  add_dependencies(ptx_coverage ptx_coverage_ptx)
endif()
