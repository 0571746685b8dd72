# The record codec (tools/common/proto.c) and its fuzzer.
tr_unit_test(test_proto SOURCES unit/test_proto.c FAST)
# HTTP/2 frame tracking for reads in place (tools/common/h2track.c).
tr_unit_test(test_h2track SOURCES unit/test_h2track.c FAST)

# fuzz_decoder: libFuzzer needs clang, and trcommon is built with gcc, so the
# fuzzer compiles the sources it exercises itself (proto.c, ring.c).  The
# test runs it for 30 s on a copy of the seed corpus in the build tree, so
# that what it learns never lands in the source tree.  Without clang (or a
# clang without libFuzzer) the test reports itself skipped (77).
set(TR_FUZZ_DECODER_SRCS
    ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_decoder.c
    ${CMAKE_SOURCE_DIR}/tools/common/proto.c
    ${CMAKE_SOURCE_DIR}/tools/common/ring.c)
set(TR_FUZZ_DECODER_FLAGS -std=gnu11 -g -O1 -D_GNU_SOURCE
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
    -Wall -Wextra -Werror -Wno-unused-parameter
    -I${CMAKE_SOURCE_DIR}/include -I${CMAKE_SOURCE_DIR}/tools/common)
find_program(CLANG clang)
set(TR_FUZZ_DECODER_OK OFF)
if(CLANG)
  # A clang without compiler-rt's libFuzzer is as good as none.
  set(probe ${CMAKE_CURRENT_BINARY_DIR}/fuzz_decoder_probe.c)
  file(WRITE ${probe} "#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { return d && n ? 0 : 0; }\n")
  execute_process(COMMAND ${CLANG} -fsanitize=fuzzer,address,undefined ${probe}
                  -o ${CMAKE_CURRENT_BINARY_DIR}/fuzz_decoder_probe
                  RESULT_VARIABLE probe_rc OUTPUT_QUIET ERROR_QUIET)
  if(probe_rc EQUAL 0)
    set(TR_FUZZ_DECODER_OK ON)
  endif()
endif()

set(fuzz_corpus ${CMAKE_CURRENT_BINARY_DIR}/fuzz_decoder_corpus)
if(TR_FUZZ_DECODER_OK)
  set(fuzz_exe ${CMAKE_CURRENT_BINARY_DIR}/fuzz_decoder)
  add_custom_command(
    OUTPUT ${fuzz_exe}
    COMMAND ${CLANG} ${TR_FUZZ_DECODER_FLAGS} ${TR_FUZZ_DECODER_SRCS} -o ${fuzz_exe}
    DEPENDS ${TR_FUZZ_DECODER_SRCS} ${CMAKE_SOURCE_DIR}/include/tremote/proto.h
            ${CMAKE_SOURCE_DIR}/tools/common/ring.h
    COMMENT "Building libFuzzer target fuzz_decoder with clang"
    VERBATIM)
  add_custom_target(fuzz_decoder ALL DEPENDS ${fuzz_exe})
  add_test(NAME fuzz_decoder
           COMMAND sh -c "rm -rf \"$1\" \"$1.art\" && mkdir -p \"$1.art\" && cp -R \"$2\" \"$1\" && exec \"$3\" -max_total_time=30 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=\"$1.art/\" \"$1\""
                   fuzz_decoder ${fuzz_corpus}
                   ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/decoder ${fuzz_exe}
           WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
else()
  add_test(NAME fuzz_decoder
           COMMAND sh -c "echo 'fuzz_decoder: no clang with -fsanitize=fuzzer; skipped'; exit 77")
endif()
set_tests_properties(fuzz_decoder PROPERTIES TIMEOUT 120 SKIP_RETURN_CODE 77
                     LABELS fuzz)
