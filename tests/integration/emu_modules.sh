#!/usr/bin/env bash
# emu_modules.sh BUILD_DIR: one program (emu_vector_add) built every way
# nvcc 13 writes a fatbin, run under the shim against the emulated device:
#   - PTX compressed with the LZ scheme (-compress-mode=speed, what CUDA
#     11/12 wrote) and uncompressed (-compress-mode=none) run and pass (the
#     zstd default is every other emu_* program);
#   - with PTX for compute_75, 80 and 90 the device (compute capability 8.0)
#     runs the compute_80 entry, and one set to 9.0 (--emu-cc) the
#     compute_90 one;
#   - SASS only: the launch fails with cudaErrorNoKernelImageForDevice and
#     one line that names the nvcc flag adding PTX;
#   - PTX for compute_90 only on the 8.0 device: the same error, saying the
#     PTX is newer than the device; on a 9.0 device it runs.
set -u
source "$(dirname "$0")/lib.sh"
tr_init "$1"

expect_pass() { # app
    tr_run "$APPS/$1" || { cat "$TR_TMP/out"; tr_fail "$1 failed"; }
    grep -q "^PASS" "$TR_TMP/out" || tr_fail "$1 did not print PASS"
    echo "$1: PASS"
}
expect_noimage() { # app pattern
    if tr_run "$APPS/$1"; then tr_fail "$1 ran, but should not load"; fi
    grep -q "cudaErrorNoKernelImageForDevice" "$TR_TMP/out" ||
        tr_fail "$1: expected cudaErrorNoKernelImageForDevice"
    grep -q "^tremote: .*$2" "$TR_TMP/out" || tr_fail "$1: no line saying '$2'"
    [ "$(grep -c '^tremote:' "$TR_TMP/out")" = 1 ] ||
        tr_fail "$1: expected exactly one tremote: line"
    echo "$1: refused as expected: $(grep '^tremote:' "$TR_TMP/out")"
}
chosen() { # app -> the compute_XX the agent ran, from its log
    grep "running its compute_" "$TR_TMP/broker.log" | tail -1 |
        sed 's/.*running its \(compute_[0-9]*\).*/\1/'
}

tr_start_broker --local 1 --emu-mem 1G
expect_pass emu_va_lz
expect_pass emu_va_raw
expect_pass emu_va_multi
[ "$(chosen)" = compute_80 ] || tr_fail "expected compute_80 to run, not $(chosen)"
expect_noimage emu_va_sass "machine code for sm_75 only.*-gencode arch=compute_75,code=compute_75"
expect_noimage emu_va_ptx90 "compute_90, newer than the emulated device"
tr_stop_broker
[ "$BROKER_STATUS" = 0 ] || tr_fail "broker exited with $BROKER_STATUS"

# A device of compute capability 9.0: the agent behind a wrapper.
printf '#!/bin/sh\nexec "%s" --emu-cc 9.0 "$@"\n' "$AGENT" >"$TR_TMP/agent90"
chmod +x "$TR_TMP/agent90"
AGENT="$TR_TMP/agent90"
tr_start_broker --local 1 --emu-mem 1G
expect_pass emu_va_multi
[ "$(chosen)" = compute_90 ] || tr_fail "expected compute_90 to run, not $(chosen)"
expect_pass emu_va_ptx90
echo "emu_modules: ok"
