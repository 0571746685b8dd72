#!/usr/bin/env bash
# A 1 GiB cudaMemcpy each way through shim -> broker -> agent, checked byte
# for byte, with two bounds: the broker's peak RSS stays far below the copy
# (it streams chunks of at most 1 MiB), and the agent's peak RSS is the
# device memory plus a bounded overhead.  Also: cudaMalloc and a 64 MiB
# copy from pageable memory cost exactly one round trip (the broker's
# count): the copy does not wait for the agent.
set -u
source "$(dirname "$0")/lib.sh"
tr_init "$1"
MIB=${TR_BIG_MIB:-1024}
tr_start_broker --local 1 --emu-mem 3G

fifo="$TR_TMP/go"
mkfifo "$fifo"
LD_PRELOAD="$TR_PRELOAD" "$APPS/big_copy" "$MIB" <"$fifo" >"$TR_TMP/out" 2>&1 &
app=$!
exec 7>"$fifo"
tr_wait_line PAUSE "$TR_TMP/out" $app 60 || tr_fail "big_copy did not reach its pause"
tr_stats >"$TR_TMP/stats.json" || tr_fail "stats query failed"
python3 - "$TR_TMP/stats.json" <<'PY' || tr_fail "round trips"
import json, sys
st = json.load(open(sys.argv[1]))
s = [x for x in st["sessions"]]
assert len(s) == 1, st
rt = s[0]["round_trips"]
print("round trips for cudaMalloc + 64 MiB cudaMemcpy:", rt)
# The malloc waits for its address; the copy from pageable memory into a
# live allocation returns once its bytes are queued, as CUDA allows.
assert rt == 1, "expected 1 round trip, got %d" % rt
assert s[0]["bytes_to_agent"] >= 64 << 20, s[0]
PY
echo go >&7
exec 7>&-
wait $app || tr_fail "big_copy exited with $?"
grep -q "^PASS" "$TR_TMP/out" || tr_fail "no PASS line"

agent=$(pgrep -P "$BROKER_PID" -x tremote-gpu-age | head -1)
hwm() { awk '/^VmHWM/ {print int($2/1024)}' "/proc/$1/status"; }
bh=$(hwm "$BROKER_PID"); ah=$(hwm "$agent")
echo "peak RSS: broker ${bh} MiB, agent ${ah} MiB, copy ${MIB} MiB"
case "${TR_SANITIZE:-}" in
"") # Sanitizer runtimes add shadow memory; the bounds are for plain builds.
    [ "$bh" -lt 160 ] || tr_fail "broker peak RSS ${bh} MiB: it buffered the copy"
    [ "$ah" -lt $((MIB + 256)) ] || tr_fail "agent peak RSS ${ah} MiB > device memory + 256 MiB" ;;
esac
cat "$TR_TMP/out"
echo "big_copy: ok"
