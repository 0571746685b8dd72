#!/usr/bin/env bash
# examples.sh BUILD_DIR: the seed reference's examples in C
# (tools/examples), each run with `tremote run` against a broker that
# starts with no machine: each creates its LOCAL machines through
# libtremote, uses them, checks its own results and removes them.
set -u
source "$(dirname "$0")/lib.sh"
tr_init "$1"
t=$BUILD/tools/tremote/tremote
san=
[ "$TR_PRELOAD" != "$SHIM" ] && san=${TR_PRELOAD%:"$SHIM"}
tr_start_broker --local 0 --emu-mem 1G

run_example() { # run_example NAME LINE...: exit 0 and every LINE printed
    local name=$1
    shift
    LD_PRELOAD=$san "$t" run "$APPS/example_$name" >"$TR_TMP/out" 2>&1 ||
        tr_fail "example $name exited with $?"
    for line in "$@"; do
        grep -q -- "$line" "$TR_TMP/out" || tr_fail "example $name: no line '$line'"
    done
    echo "example $name: ok"
}
run_example basic_usage "^local-a10040gb-[0-9a-f]\{8\} (Local A100-40GB) is CUDA device 0$" \
    "^z = x @ y (192x192) on Local A100-40GB: matches the host$"
run_example multiple_devices "^y_t4 = x_t4 + x_t4: no error$" "^x_a100 \* 2: no error$" \
    "^x_t4 + x_a100: cudaErrorInvalidValue (refused, as it must be)$" \
    "is memory of device 0 (machine .*) but is used with device 1"
run_example registry "^Registered devices: 2$" "retrieved tremote_machine(device_id=local-t4-" \
    "the same machine$" "^Devices compatible: False$"
run_example device_context "^current device 0 (machine local-h100-" "^z = x + y on the remote device: right$"
# They removed what they created.
[ "$(tr_ctl '{"version":1,"op":"machines"}')" = '{"version":1,"machines":[]}' ] ||
    tr_fail "machines left behind: $(tr_ctl '{"version":1,"op":"machines"}')"
tr_stop_broker
echo "examples: ok"
