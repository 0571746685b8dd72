#!/usr/bin/env bash
# A CUDA program's life under tremote (issue 5, part 3):
#   - fork: the child gets a session of its own on its first CUDA call and
#     never shares its parent's ring; both use the device at once;
#   - a static destructor that calls cudaFree after main returns works;
#   - a TLS key destructor that calls cudaFree after the shim's own thread
#     state is gone works (a fresh state, not the freed one);
#   - fork from a thread that never called CUDA while another did
#     default-stream work: the child's default stream must not wait for
#     the parent's threads;
#   - a program killed in the middle of a 256 MiB copy leaves nothing behind:
#     its session disappears from the broker and the agent's device memory
#     is all free again.
set -u
source "$(dirname "$0")/lib.sh"
tr_init "$1"
tr_start_broker --local 1 --emu-mem 2G

tr_run "$APPS/program_life" fork || tr_fail "program_life fork exited with $?"
for l in "parent before fork: ok" "child: ok" "parent after fork: ok" \
         "PASS program_life fork" "static destructor cudaFree: ok"; do
    grep -qx "$l" "$TR_TMP/out" || tr_fail "missing line: $l"
done
echo "fork: the child used its own session; static destructor cudaFree: ok"

tr_run "$APPS/program_life" keydtor || tr_fail "program_life keydtor exited with $?"
grep -qx "PASS program_life keydtor" "$TR_TMP/out" || tr_fail "keydtor printed no PASS line"
echo "keydtor: cudaFree in a TLS destructor after the shim's: ok"

tr_run "$APPS/program_life" forkidle || tr_fail "program_life forkidle exited with $?"
grep -qx "PASS program_life forkidle" "$TR_TMP/out" || tr_fail "forkidle printed no PASS line"
echo "forkidle: the child's default stream is its own: ok"

meminfo() {
    tr_run "$APPS/program_life" meminfo || tr_fail "meminfo exited with $?"
    sed -n 's/^free=\([0-9]*\) total=\([0-9]*\)$/\1 \2/p' "$TR_TMP/out"
}
sessions() {
    tr_stats | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["sessions"]))'
}
read -r free0 total < <(meminfo)
[ "$free0" = "$total" ] || tr_fail "device memory not all free at the start: $free0 of $total"

LD_PRELOAD="$TR_PRELOAD" "$APPS/program_life" copyloop >"$TR_TMP/loop.out" 2>&1 &
victim=$!
tr_wait_line COPYING "$TR_TMP/loop.out" $victim ||
    { cat "$TR_TMP/loop.out"; tr_fail "copyloop never got going"; }
sleep 0.3 # in the middle of a copy: it copies without pause
kill -0 $victim 2>/dev/null || tr_fail "copyloop ended by itself"
kill -9 $victim
wait $victim 2>/dev/null
for i in $(seq 200); do
    [ "$(sessions)" = 0 ] && break
    sleep 0.05
done
[ "$(sessions)" = 0 ] || tr_fail "the killed program's session is still in the broker"
read -r free1 total < <(meminfo)
echo "after kill -9 mid-copy: $free1 of $total bytes free"
[ "$free1" = "$total" ] || tr_fail "the killed program's device memory was not freed ($free1 of $total free)"
echo "program_life: ok"
