#!/usr/bin/env bash
# Stream capture and graphs (issue 5): a graph of 100 kernels, a memset and
# a copy replays correctly 10 times; the 10 launches and their
# synchronisation are 1 round trip and travel as a few small records (the
# graph was uploaded once, at instantiation); destroying an exec whose
# launches are still queued lets them run; a capture holding what a
# graph cannot hold here is invalidated with a clear line.
set -u
source "$(dirname "$0")/lib.sh"
tr_init "$1"
tr_start_broker --local 1 --emu-mem 1G

fifo="$TR_TMP/go"
mkfifo "$fifo"
LD_PRELOAD="$TR_PRELOAD" "$APPS/graphs" count <"$fifo" >"$TR_TMP/out" 2>&1 &
app=$!
exec 7>"$fifo"
tr_wait_line READY "$TR_TMP/out" $app || tr_fail "no READY"
read -r rt0 b0 < <(tr_session round_trips bytes_to_agent)
echo go >&7
tr_wait_line PAUSE "$TR_TMP/out" $app || tr_fail "no PAUSE"
read -r rt1 b1 < <(tr_session round_trips bytes_to_agent)
echo go >&7
exec 7>&-
wait $app || tr_fail "graphs count exited with $?"
grep -q "^PASS" "$TR_TMP/out" || tr_fail "no PASS"
echo "10 graph launches (102 nodes each) + sync: $((rt1 - rt0)) round trip(s), $((b1 - b0)) bytes to the agent"
[ $((rt1 - rt0)) = 1 ] || tr_fail "expected 1 round trip"
[ $((b1 - b0)) -lt 4096 ] || tr_fail "the graph travelled again ($((b1 - b0)) bytes)"

tr_run "$APPS/graphs" refuse || tr_fail "graphs refuse exited with $?"
grep -q "^PASS" "$TR_TMP/out" || tr_fail "refuse: no PASS"
grep -q "^tremote: a stream capture met MEMCPY_H2D" "$TR_TMP/out" || tr_fail "no line about the uncapturable copy"
tr_run "$APPS/graphs" destroy || tr_fail "graphs destroy exited with $?"
grep -q "^PASS" "$TR_TMP/out" || tr_fail "destroy: no PASS"
echo "an exec destroyed with its launches queued: they ran"
echo "graphs: ok"
