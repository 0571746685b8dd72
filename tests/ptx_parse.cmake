# ptx_parse: tests of the PTX parser (gpu-agent/emu/ptx_parse.c).
#
# test_ptx_parse checks the IR of hand-written snippets and parses every
# real nvcc output in tests/fuzz/corpus/ptx/ (its argument).

tr_unit_test(test_ptx_parse
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_ptx_parse.c
  LIBS ptxparse Threads::Threads
  TIMEOUT 60 FAST
  ARGS ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/ptx)

# fuzz_ptx: as fuzz_fatbin (tests/fatbin.cmake): libFuzzer needs clang,
# which the main build may not use, so the target is built by calling
# clang directly; without a clang that has the libFuzzer runtime the test
# reports "skipped" (77).
find_program(PTX_CLANG NAMES clang clang-19 clang-18 clang-17 clang-16
             clang-15 clang-14)
if(PTX_CLANG AND NOT DEFINED PTX_CLANG_FUZZER_OK)
  set(probe_dir ${CMAKE_CURRENT_BINARY_DIR}/ptx_fuzz_probe)
  file(WRITE ${probe_dir}/probe.c
       "#include <stddef.h>\n#include <stdint.h>\n"
       "int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);\n"
       "int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)\n"
       "{ (void)d; (void)n; return 0; }\n")
  execute_process(
    COMMAND ${PTX_CLANG} -fsanitize=fuzzer,address,undefined
            ${probe_dir}/probe.c -o ${probe_dir}/probe
    RESULT_VARIABLE probe_rc OUTPUT_QUIET ERROR_QUIET)
  if(probe_rc EQUAL 0)
    set(PTX_CLANG_FUZZER_OK ON CACHE INTERNAL "clang builds libFuzzer targets")
  else()
    set(PTX_CLANG_FUZZER_OK OFF CACHE INTERNAL "clang builds libFuzzer targets")
  endif()
endif()
set(ptx_fuzz_bin ${CMAKE_CURRENT_BINARY_DIR}/fuzz_ptx)
set(ptx_fuzz_srcs ${CMAKE_SOURCE_DIR}/gpu-agent/emu/ptx_parse.c
    ${CMAKE_SOURCE_DIR}/gpu-agent/emu/ptx_names.c
    ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_ptx.c)
if(PTX_CLANG AND PTX_CLANG_FUZZER_OK)
  add_custom_command(OUTPUT ${ptx_fuzz_bin}
    COMMAND ${PTX_CLANG} -std=gnu11 -g -O1
            -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
            ${TR_WARN} -I${CMAKE_SOURCE_DIR}/gpu-agent/emu
            -o ${ptx_fuzz_bin} ${ptx_fuzz_srcs}
    DEPENDS ${ptx_fuzz_srcs} ${CMAKE_SOURCE_DIR}/gpu-agent/emu/ptx_ir.h
    COMMENT "clang -fsanitize=fuzzer fuzz_ptx"
    VERBATIM)
  add_custom_target(fuzz_ptx_bin ALL DEPENDS ${ptx_fuzz_bin})
  # The seed corpus stays read-only; what the run finds goes to the build
  # tree, and so do crash artifacts.  A build of other targets only (e.g.
  # --target test_ptx_parse) leaves the fuzzer unbuilt: skipped, not failed.
  set(ptx_fuzz_work ${CMAKE_CURRENT_BINARY_DIR}/fuzz-corpus/ptx)
  add_test(NAME fuzz_ptx
    COMMAND bash -c "if [ ! -x \"$3\" ]; then echo \"$3 not built (target fuzz_ptx_bin): skipped\"; exit 77; fi; mkdir -p \"$1\" \"$2\" && exec \"$3\" -max_total_time=20 -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 -artifact_prefix=\"$2/\" \"$1\" \"$4\""
            fuzz_ptx ${ptx_fuzz_work}
            ${CMAKE_CURRENT_BINARY_DIR}/fuzz-artifacts/ptx
            ${ptx_fuzz_bin} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/ptx)
else()
  add_test(NAME fuzz_ptx
    COMMAND sh -c "echo 'no clang with libFuzzer: fuzz_ptx skipped'; exit 77")
endif()
set_tests_properties(fuzz_ptx PROPERTIES TIMEOUT 90 SKIP_RETURN_CODE 77
                     LABELS fuzz)
