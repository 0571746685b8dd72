# fatbin: tests of the fatbin parser (tools/common/fatbin.c, lzfb.c).
#
# test_fatbin dlopen()s tests/apps/fatbin_params.cu built by nvcc in each
# variant below, catching the __cudaRegisterFatBinary/__cudaRegisterFunction
# calls its constructor makes (so the executable exports those symbols).
# Nothing runs on a GPU; only nvcc is needed, and the top-level CMakeLists
# already insists on the toolkit.

set(FATBIN_APPS_DIR ${CMAKE_CURRENT_BINARY_DIR}/fatbin_apps)
set(FATBIN_APP_SRC ${CMAKE_CURRENT_SOURCE_DIR}/apps/fatbin_params.cu)

# Variant name -> nvcc flags.  The default arch of nvcc 13 is sm_75 with
# compute_75 PTX; its default compression is zstd.
set(fatbin_flags_zstd "")
set(fatbin_flags_speed -compress-mode=speed)
set(fatbin_flags_none -compress-mode=none)
set(fatbin_flags_ptx -gencode arch=compute_75,code=compute_75)
set(fatbin_flags_sass -gencode arch=compute_75,code=sm_75)
set(fatbin_flags_multi -gencode arch=compute_75,code=compute_75
    -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90
    -gencode arch=compute_100,code=sm_100)
set(fatbin_flags_zall -Xfatbin -compress-all)
set(fatbin_flags_lzall -compress-mode=speed -Xfatbin -compress-all)

set(fatbin_app_libs "")
foreach(v zstd speed none ptx sass multi zall lzall)
  set(lib ${FATBIN_APPS_DIR}/libfbp_${v}.so)
  add_custom_command(OUTPUT ${lib}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${FATBIN_APPS_DIR}
    COMMAND ${TR_NVCC} -shared -Xcompiler -fPIC -cudart shared
            ${fatbin_flags_${v}} -I${CMAKE_CURRENT_SOURCE_DIR}/apps
            -Xlinker -rpath,${CUDA_HOME}/lib64 -o ${lib} ${FATBIN_APP_SRC}
    DEPENDS ${FATBIN_APP_SRC} ${CMAKE_CURRENT_SOURCE_DIR}/apps/fatbin_params.h
    COMMENT "nvcc fatbin_params.cu (${v})"
    VERBATIM)
  list(APPEND fatbin_app_libs ${lib})
endforeach()
# Modules whose kernels call printf (apps/emu_printf.cu), as containers
# (nvcc -fatbin): what tr_fatbin_may_print must answer 1 for, in each
# encoding the driver could be handed.  fatbin_params.cu prints nothing.
set(fatbin_printf_src ${CMAKE_CURRENT_SOURCE_DIR}/apps/emu_printf.cu)
foreach(v zstd ptx sass lzall)
  set(fb ${FATBIN_APPS_DIR}/printf_${v}.fatbin)
  add_custom_command(OUTPUT ${fb}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${FATBIN_APPS_DIR}
    COMMAND ${TR_NVCC} -fatbin ${fatbin_flags_${v}}
            -I${CMAKE_CURRENT_SOURCE_DIR}/apps -o ${fb} ${fatbin_printf_src}
    DEPENDS ${fatbin_printf_src}
    COMMENT "nvcc -fatbin emu_printf.cu (${v})"
    VERBATIM)
  list(APPEND fatbin_app_libs ${fb})
endforeach()
add_custom_target(fatbin_apps DEPENDS ${fatbin_app_libs})

tr_unit_test(test_fatbin
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_fatbin.c
  LIBS ${CMAKE_DL_LIBS}
  TIMEOUT 120 FAST
  ARGS ${FATBIN_APPS_DIR})
add_dependencies(test_fatbin fatbin_apps)
# The dlopen()ed libraries must bind their CUDA registration calls to ours.
set_target_properties(test_fatbin PROPERTIES ENABLE_EXPORTS ON)

# fuzz_fatbin: libFuzzer needs clang, which the main build may not use, so
# the target is built by calling clang directly; without a clang that has
# the libFuzzer runtime the test reports "skipped" (77).
find_program(FATBIN_CLANG NAMES clang clang-19 clang-18 clang-17 clang-16
             clang-15 clang-14)
# Probe once that this clang has the libFuzzer runtime, so that a clang
# without it skips the test instead of breaking everyone's build.
if(FATBIN_CLANG AND NOT DEFINED FATBIN_CLANG_FUZZER_OK)
  set(probe_dir ${CMAKE_CURRENT_BINARY_DIR}/fatbin_fuzz_probe)
  file(WRITE ${probe_dir}/probe.c
       "#include <stddef.h>\n#include <stdint.h>\n"
       "int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);\n"
       "int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)\n"
       "{ (void)d; (void)n; return 0; }\n")
  execute_process(
    COMMAND ${FATBIN_CLANG} -fsanitize=fuzzer,address,undefined
            ${probe_dir}/probe.c -o ${probe_dir}/probe
    RESULT_VARIABLE probe_rc OUTPUT_QUIET ERROR_QUIET)
  if(probe_rc EQUAL 0)
    set(FATBIN_CLANG_FUZZER_OK ON CACHE INTERNAL "clang builds libFuzzer targets")
  else()
    set(FATBIN_CLANG_FUZZER_OK OFF CACHE INTERNAL "clang builds libFuzzer targets")
  endif()
endif()
set(fatbin_fuzz_bin ${CMAKE_CURRENT_BINARY_DIR}/fuzz_fatbin)
set(fatbin_fuzz_srcs ${CMAKE_SOURCE_DIR}/tools/common/fatbin.c
    ${CMAKE_SOURCE_DIR}/tools/common/lzfb.c
    ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_fatbin.c)
if(FATBIN_CLANG AND FATBIN_CLANG_FUZZER_OK)
  add_custom_command(OUTPUT ${fatbin_fuzz_bin}
    COMMAND ${FATBIN_CLANG} -std=gnu11 -g -O1
            -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
            ${TR_WARN} -I${CMAKE_SOURCE_DIR}/tools/common
            -I${CMAKE_SOURCE_DIR}/include ${XXHASH_CFLAGS} ${ZSTD_CFLAGS}
            -o ${fatbin_fuzz_bin} ${fatbin_fuzz_srcs}
            ${XXHASH_LDFLAGS} ${ZSTD_LDFLAGS}
    DEPENDS ${fatbin_fuzz_srcs} ${CMAKE_SOURCE_DIR}/tools/common/fatbin.h
            ${CMAKE_SOURCE_DIR}/tools/common/lzfb.h
    COMMENT "clang -fsanitize=fuzzer fuzz_fatbin"
    VERBATIM)
  add_custom_target(fuzz_fatbin_bin ALL DEPENDS ${fatbin_fuzz_bin})
  # The seed corpus stays read-only; what the run finds goes to the build
  # tree, and so do crash artifacts.  A build of other targets only (e.g.
  # --target test_fatbin) leaves the fuzzer unbuilt: skipped, not failed.
  set(fatbin_fuzz_work ${CMAKE_CURRENT_BINARY_DIR}/fuzz-corpus/fatbin)
  add_test(NAME fuzz_fatbin
    COMMAND bash -c "if [ ! -x \"$3\" ]; then echo \"$3 not built (target fuzz_fatbin_bin): skipped\"; exit 77; fi; mkdir -p \"$1\" \"$2\" && exec \"$3\" -max_total_time=20 -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 -artifact_prefix=\"$2/\" \"$1\" \"$4\""
            fuzz_fatbin ${fatbin_fuzz_work}
            ${CMAKE_CURRENT_BINARY_DIR}/fuzz-artifacts/fatbin
            ${fatbin_fuzz_bin} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/fatbin)
else()
  add_test(NAME fuzz_fatbin
    COMMAND sh -c "echo 'no clang with libFuzzer: fuzz_fatbin skipped'; exit 77")
endif()
set_tests_properties(fuzz_fatbin PROPERTIES TIMEOUT 90 SKIP_RETURN_CODE 77
                     LABELS fuzz)
