#!/usr/bin/env bash
# demo.sh BUILD_DIR: what `./build.sh demo` runs.  Starts the broker (which
# starts a LOCAL agent: the emulated device, since this machine may have no
# GPU), runs two unmodified nvcc-built programs under the shim (one that
# moves memory, one whose kernels multiply matrices in shared memory), then
# the seed's first example in C with `tremote run`, shows the machines as
# tremote-smi lists them and the broker's statistics, and stops everything.
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
    echo "demo: the seed's first example in C, through the tremote command:"
    echo "      tremote run -- tests/apps/example_basic_usage"
    san=${TR_PRELOAD%:"$SHIM"} # a sanitizer's runtime, never the shim
    san=${san#"$SHIM"}
    if ! LD_PRELOAD="$san" "$BUILD/tools/tremote/tremote" run -- \
            "$APPS/example_basic_usage" >"$TR_TMP/out" 2>&1; then
        cat "$TR_TMP/out"
        echo "demo: tremote run failed; broker log:"
        cat "$TR_TMP/broker.log"
        exit 1
    fi
    cat "$TR_TMP/out"
    LD_PRELOAD="$san" "$BUILD/tools/smi/tremote-smi"
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
