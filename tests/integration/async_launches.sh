#!/usr/bin/env bash
# Launches are queued, not round trips (issue 5): after a warm-up, 1000
# launches and one cudaStreamSynchronize take exactly 1 round trip to the
# agent by the broker's count; a fault in the 500th launch is reported at
# that synchronisation with cudaErrorIllegalAddress; and the enqueue rate
# is printed (the benchmark judges it).
set -u
source "$(dirname "$0")/lib.sh"
tr_init "$1"
tr_start_broker --local 1 --emu-mem 1G


fifo="$TR_TMP/go"
mkfifo "$fifo"
LD_PRELOAD="$TR_PRELOAD" "$APPS/async_launches" count <"$fifo" >"$TR_TMP/out" 2>&1 &
app=$!
exec 7>"$fifo"
tr_wait_line READY "$TR_TMP/out" $app || tr_fail "no READY"
before=$(tr_session round_trips)
echo go >&7
tr_wait_line PAUSE "$TR_TMP/out" $app || tr_fail "no PAUSE"
after=$(tr_session round_trips)
echo go >&7
exec 7>&-
wait $app || tr_fail "async_launches count exited with $?"
grep -q "^PASS" "$TR_TMP/out" || tr_fail "no PASS"
echo "1000 launches + cudaStreamSynchronize: $((after - before)) round trip(s)"
[ $((after - before)) = 1 ] || tr_fail "expected exactly 1 round trip, got $((after - before))"

tr_run "$APPS/async_launches" fault || tr_fail "async_launches fault exited with $?"
grep -q "^PASS" "$TR_TMP/out" || tr_fail "fault: no PASS"
echo "fault in launch 500 of 1000: cudaErrorIllegalAddress at the synchronisation"

tr_run "$APPS/async_launches" rate 100000 || tr_fail "async_launches rate exited with $?"
grep "^launches=" "$TR_TMP/out"
echo "async_launches: ok"
