#!/usr/bin/env bash
# Page-locked host memory is shared with the broker (issue 5): the program's
# copies of every size and offset are right, and the broker's statistics
# show its two blocks as regions and the large copies as moved by
# reference (nothing through the areas).
set -u
source "$(dirname "$0")/lib.sh"
tr_init "$1"
tr_start_broker --local 1 --emu-mem 1G

fifo="$TR_TMP/go"
mkfifo "$fifo"
LD_PRELOAD="$TR_PRELOAD" "$APPS/pinned_copies" pause <"$fifo" >"$TR_TMP/out" 2>&1 &
app=$!
exec 7>"$fifo"
tr_wait_line READY "$TR_TMP/out" $app || tr_fail "no READY"
tr_stats | python3 -c '
import json, sys
s = json.load(sys.stdin)["sessions"]
assert len(s) == 1, s
s = s[0]
print("regions=%d by reference: %d bytes to the agent, %d from it"
      % (s["regions"], s["region_bytes_to_agent"], s["region_bytes_from_agent"]))
assert s["regions"] == 2, "expected the 2 page-locked blocks as regions"
# Every copy of >= 64 KiB went by reference both ways: at least the 9 MiB
# copy after re-allocation, and many more.
assert s["region_bytes_to_agent"] >= 60 << 20, s
assert s["region_bytes_from_agent"] >= 60 << 20, s
' || tr_fail "region statistics"
echo go >&7
exec 7>&-
wait $app || { cat "$TR_TMP/out"; tr_fail "pinned_copies exited with $?"; }
grep -q "^PASS" "$TR_TMP/out" || tr_fail "no PASS"
tr_stop_broker
[ "$BROKER_STATUS" = 0 ] || tr_fail "broker exited with $BROKER_STATUS"
echo "pinned_copies: ok"
