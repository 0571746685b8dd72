#!/usr/bin/env bash
# libtremote.sh BUILD_DIR: libtremote against a real broker with one LOCAL
# machine (tests/unit/test_libtremote.c, "broker" group): a machine created
# through the library becomes machine 1 and a device, is found by index,
# compares equal to itself and not to machine 0, and is removed.  Then,
# from inside a CUDA program (apps/machine_device.cu), each machine's CUDA
# ordinal in that program, through the shim's entry table.
set -u
source "$(dirname "$0")/lib.sh"
tr_init "$1"
tr_start_broker --local 1 --emu-mem 1G
"$BUILD/tests/test_libtremote" broker || tr_fail "test_libtremote broker failed"
tr_stop_broker

# From inside a CUDA program: a machine's CUDA ordinal there.
tr_start_broker --local 2 --emu-mem 1G
TREMOTE_VISIBLE_DEVICES=1,0 tr_run "$APPS/machine_device" || tr_fail "machine_device (1,0) exited with $?"
grep -q '^machine 0 (local-0): device 1$' "$TR_TMP/out" &&
    grep -q '^machine 1 (local-1): device 0$' "$TR_TMP/out" ||
    tr_fail "TREMOTE_VISIBLE_DEVICES=1,0: $(cat "$TR_TMP/out")"
TREMOTE_VISIBLE_DEVICES=1 tr_run "$APPS/machine_device" || tr_fail "machine_device (1) exited with $?"
grep -q '^machine 0 (local-0): device -1: local-0 (machine 0) is not a device of this program' "$TR_TMP/out" &&
    grep -q '^machine 1 (local-1): device 0$' "$TR_TMP/out" ||
    tr_fail "TREMOTE_VISIBLE_DEVICES=1: $(cat "$TR_TMP/out")"
# Without the shim the library says so (a sanitizer's runtime, if any,
# still goes first).
san=
[ "$TR_PRELOAD" != "$SHIM" ] && san=${TR_PRELOAD%:"$SHIM"}
LD_PRELOAD=$san "$APPS/machine_device" >"$TR_TMP/out" 2>&1
grep -q '^machine 0 (local-0): device -1: this program does not run under tremote' "$TR_TMP/out" ||
    tr_fail "without the shim: $(cat "$TR_TMP/out")"
echo "tremote_machine_device: ordinals after TREMOTE_VISIBLE_DEVICES, and -1 with why"

# Random numbers per device, filled on the machine, as the host computes.
tr_run "$APPS/rand_fill" || tr_fail "rand_fill exited with $?"
grep -q '^PASS$' "$TR_TMP/out" || tr_fail "rand_fill printed no PASS"
cat "$TR_TMP/out"
tr_stop_broker
echo "libtremote: ok"
