#!/usr/bin/env bash
# Express lanes (docs/PROTOCOL.md §3): the broker keeps a second
# connection to a LOCAL agent for lanes that move no bulk, and moves a
# lane to the main connection before its first large copy.  lane_move
# checks what a move must keep (order, a queued call's error); here the
# broker's counters must show the lanes opened on the express connection
# and moved (a program's first lane too, which waits for its session to
# be answered) and returned (a lane whose copies are over a second old),
# and with TREMOTE_EXPRESS=0 none of it (one connection), the program
# passing both ways.  stream_fairness then runs its two streams
# with the express connection on: the copy's lane moves, the small calls'
# lane stays.
set -u
source "$(dirname "$0")/lib.sh"
tr_init "$1"

counters() { # express express_lanes lane_moves lane_returns of machine 0
    tr_ctl '{"version":1,"op":"machines"}' | python3 -c '
import json, sys
m = json.load(sys.stdin)["machines"][0]
print(str(m["express"]).lower(), m["express_lanes"], m["lane_moves"], m["lane_returns"])'
}

tr_start_broker --local 1 --emu-mem 1G
tr_run "$APPS/lane_move" || tr_fail "lane_move exited with $?"
grep -q "^PASS" "$TR_TMP/out" || tr_fail "lane_move printed no PASS"
read -r on lanes moves returns <<<"$(counters)"
echo "express connection: $on; lanes opened on it: $lanes; moved: $moves; returned: $returns"
[ "$on" = true ] || tr_fail "no express connection to local-0"
# Four streams each start with a launch and then copy 1 MiB back; the
# last one returns after a second and moves again.
[ "$lanes" -ge 4 ] || tr_fail "expected >= 4 express lanes, got $lanes"
[ "$moves" -ge 5 ] || tr_fail "expected >= 5 lane moves, got $moves"
[ "$returns" -ge 1 ] || tr_fail "the lane whose copy was over a second old did not return to the express connection"
# Again, its module now in the agent's cache: the first launch's load is
# answered at once, with the error queued before it, and must still bind
# the module (a load that reported an earlier error once left it unbound,
# and every later launch failed).
tr_run "$APPS/lane_move" || tr_fail "lane_move (module cached) exited with $?"
grep -q "^PASS" "$TR_TMP/out" || tr_fail "lane_move (module cached) printed no PASS: $(tail -3 "$TR_TMP/out")"
read -r on lanes moves returns <<<"$(counters)"

# A program's first lane opens with its session: it waits for the agent
# to answer the session, then goes express like any other.
tr_run "$APPS/client_load" latency 50 || tr_fail "client_load latency exited with $?"
read -r on lanes1 moves1 _ <<<"$(counters)"
echo "client_load latency: $((lanes1 - lanes)) express lane(s), $((moves1 - moves)) moved"
[ "$((lanes1 - lanes)) $((moves1 - moves))" = "1 0" ] ||
    tr_fail "the small calls of client_load did not stay on the express connection"
lanes=$lanes1 moves=$moves1

tr_run "$APPS/stream_fairness" 64 100 || tr_fail "stream_fairness exited with $?"
grep -q "^PASS" "$TR_TMP/out" || tr_fail "stream_fairness printed no PASS"
read -r on lanes2 moves2 _ <<<"$(counters)"
echo "stream_fairness: $((lanes2 - lanes)) express lanes, $((moves2 - moves)) moved"
[ $((lanes2 - lanes)) -gt $((moves2 - moves)) ] ||
    tr_fail "every express lane of stream_fairness moved: its small calls share the bulk connection"
tr_stop_broker

TREMOTE_EXPRESS=0 tr_start_broker --local 1 --emu-mem 1G
tr_run "$APPS/lane_move" || tr_fail "lane_move (one connection) exited with $?"
grep -q "^PASS" "$TR_TMP/out" || tr_fail "lane_move (one connection) printed no PASS"
read -r on lanes moves returns <<<"$(counters)"
echo "TREMOTE_EXPRESS=0: express connection: $on; lanes on it: $lanes; moved: $moves; returned: $returns"
[ "$on $lanes $moves $returns" = "false 0 0 0" ] || tr_fail "TREMOTE_EXPRESS=0 still used an express connection"
tr_stop_broker
echo "express_lanes: ok"
