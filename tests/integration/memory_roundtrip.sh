#!/usr/bin/env bash
# Issue 3's proof: a real nvcc-built program (tests/apps/memory_roundtrip.cu,
# -cudart shared) runs its memory calls through shim -> lane -> broker ->
# HTTP/2 -> agent (emulated device) and gets every byte back.
set -u
source "$(dirname "$0")/lib.sh"
tr_init "$1"
tr_start_broker --local 1 --emu-mem 2G

tr_run "$APPS/memory_roundtrip" 1 "tremote emulated device" ||
    tr_fail "memory_roundtrip exited with $?"
grep -q '^PASS$' "$TR_TMP/out" || tr_fail "no PASS line"
# The bad-pointer paths must not have disturbed the broker or the agent.
kill -0 "$BROKER_PID" || tr_fail "broker died"
tr_stats >"$TR_TMP/stats.json" || tr_fail "stats query failed"
python3 - "$TR_TMP/stats.json" <<'PY' || tr_fail "stats check"
import json, sys
st = json.load(open(sys.argv[1]))
assert st["version"] == 1, st
assert any(m["state"] == "ready" for m in st["machines"]), st
PY
tr_stop_broker
[ "$BROKER_STATUS" = 0 ] || tr_fail "broker exited with $BROKER_STATUS on SIGTERM"
cat "$TR_TMP/out"

# Two LOCAL machines: two CUDA devices.
tr_start_broker --local 2 --emu-mem 1G
tr_run "$APPS/memory_roundtrip" 2 "tremote emulated device" ||
    tr_fail "memory_roundtrip on 2 devices exited with $?"
grep -q '^2 devices: ok$' "$TR_TMP/out" || tr_fail "no '2 devices: ok' line"
grep -q '^tremote: cudaMemcpy: .* is memory of device 1 (machine 1, .*) but is used with device 0 (machine 0' "$TR_TMP/out" ||
    tr_fail "no line naming both machines for the cross-machine copy"
grep -q '^tremote: _Z5touchPi: .* is memory of device 1 (machine 1' "$TR_TMP/out" ||
    tr_fail "no line naming both machines for the kernel argument"
grep -q '^PASS$' "$TR_TMP/out" || tr_fail "no PASS line (2 devices)"
tr_stop_broker
echo "memory_roundtrip: ok"
