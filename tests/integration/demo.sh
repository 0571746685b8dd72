#!/usr/bin/env bash
# demo.sh BUILD_DIR: what `./build.sh demo` runs.  Starts the broker (which
# starts a LOCAL agent: the emulated device, since this machine may have no
# GPU), runs two unmodified nvcc-built programs under the shim (one that
# moves memory, one whose kernels multiply matrices in shared memory),
# shows the broker's view, and stops everything.
set -u
source "$(dirname "$0")/lib.sh"
tr_init "$1"
echo "demo: starting tremote-broker with one LOCAL machine..."
tr_start_broker --local 1 --emu-mem 2G
echo "demo: running tests/apps/memory_roundtrip (built with nvcc -cudart shared)"
echo "      LD_PRELOAD=$SHIM"
if tr_run "$APPS/memory_roundtrip" 1; then
    cat "$TR_TMP/out"
    echo "demo: running tests/apps/emu_matmul_tiled: kernels on the emulated device"
    if ! tr_run "$APPS/emu_matmul_tiled"; then
        rc=$?
        cat "$TR_TMP/out"
        echo "demo: the program failed (exit $rc); broker log:"
        cat "$TR_TMP/broker.log"
        exit 1
    fi
    cat "$TR_TMP/out"
    echo "demo: broker statistics:"
    tr_stats | python3 -m json.tool
    echo "demo: ok"
else
    rc=$?
    cat "$TR_TMP/out"
    echo "demo: the program failed (exit $rc); broker log:"
    cat "$TR_TMP/broker.log"
    exit 1
fi
