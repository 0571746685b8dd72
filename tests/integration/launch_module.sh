#!/usr/bin/env bash
# Kernel launches: the fatbin is uploaded to the agent the first time (by
# XXH3-128 hash), not the second time, the agent finds the kernel in it and
# the emulated device runs it.  Also: without a broker a program sees 0
# devices and does not hang.
set -u
source "$(dirname "$0")/lib.sh"
tr_init "$1"

# No broker at all.
TREMOTE_BROKER_SOCKET="$TR_TMP/none.sock" timeout 20 \
    env LD_PRELOAD="$TR_PRELOAD" "$APPS/launch_module" nobroker >"$TR_TMP/out" 2>&1 ||
    tr_fail "without a broker: exit $?"
grep -q "no tremote broker is running" "$TR_TMP/out" || tr_fail "no hint about the broker"
[ "$(grep -c '^tremote:' "$TR_TMP/out")" = 1 ] || tr_fail "expected exactly one tremote: line"

tr_start_broker --local 1 --emu-mem 1G
run_once() { # -> prints "round_trips bytes_to_agent"
    local fifo="$TR_TMP/go$1"
    mkfifo "$fifo"
    LD_PRELOAD="$TR_PRELOAD" "$APPS/launch_module" <"$fifo" >"$TR_TMP/out$1" 2>&1 &
    local app=$!
    exec 7>"$fifo"
    tr_wait_line PAUSE "$TR_TMP/out$1" $app ||
        { cp "$TR_TMP/out$1" "$TR_TMP/out"; tr_fail "run $1 did not pause"; }
    local counts
    counts=$(tr_session round_trips bytes_to_agent)
    echo go >&7
    exec 7>&-
    wait $app || { cp "$TR_TMP/out$1" "$TR_TMP/out"; tr_fail "run $1 exited with $?"; }
    # Printed last: the caller reads it once the program has finished.
    echo "$counts"
}
read -r rt1 b1 < <(run_once 1)
read -r rt2 b2 < <(run_once 2)
echo "first run: $rt1 round trips, $b1 bytes; second run: $rt2 round trips, $b2 bytes"
for i in 1 2; do
    grep -q '^PASS' "$TR_TMP/out$i" || { cp "$TR_TMP/out$i" "$TR_TMP/out"; tr_fail "run $i did not pass"; }
done
# Run 1: MALLOC, MODULE_LOAD (needs module), MODULE_PUT, MODULE_LOAD,
# FUNCTION_GET, SYNC.  Run 2: MALLOC, MODULE_LOAD (cached), FUNCTION_GET,
# SYNC.  (FUNCTION_GET is waited for, once per kernel and device: launches
# of other lanes use its handle.)
[ "$rt1" = 6 ] || tr_fail "first run: $rt1 round trips, expected 6"
[ "$rt2" = 4 ] || tr_fail "second run: $rt2 round trips, expected 4"
[ $((b1 - b2)) -gt 1000 ] || tr_fail "the module was sent again ($b1 vs $b2 bytes)"
echo "launch_module: ok"
