#!/usr/bin/env bash
# Stream priorities (issue 5): the range and clamping of
# cudaStreamCreateWithPriority, a launch's own priority, and that the
# agent acts on them.  With one execution thread (every thread busy is
# what makes the run queue decide), 16 long kernels are queued on a stream
# of priority 0, then one on another stream: at priority -5 it runs after
# at most the kernel running when it arrived and the next, at priority 0
# it waits for most of the 16 (the control: without it the first half
# could pass by accident).  And a less urgent stream is not starved.
set -u
source "$(dirname "$0")/lib.sh"
tr_init "$1"
TREMOTE_AGENT_EXEC_THREADS=1 tr_start_broker --local 1 --emu-mem 1G

tr_run "$APPS/stream_priority" api || tr_fail "stream_priority api exited with $?"
grep -q "^PASS" "$TR_TMP/out" || tr_fail "api: no PASS"
echo "api: range [-5, 0], clamping, priority stream and launch attribute"

# Kernels of ~40 ms; under a sanitizer the emulator is slower by itself.
iters=3000000
[ -n "${TR_SANITIZE:-}" ] && iters=600000
tr_run "$APPS/stream_priority" order -5 max 3 $iters ||
    tr_fail "priority -5 did not go ahead of the queued kernels"
grep "^priority=" "$TR_TMP/out"
tr_run "$APPS/stream_priority" order 0 min 8 $iters ||
    tr_fail "priority 0 went ahead (the control)"
grep "^priority=" "$TR_TMP/out"
# Priorities do not starve: two priority -5 streams of 100 kernels each
# take turns (a lane yields its thread after 64 records), and the priority
# 0 kernel queued after them has waited longer than 2 ms by the first
# turn, so it goes then (after 64 or 128), not after all 200.
tr_run "$APPS/stream_priority" starve 180 ||
    tr_fail "the priority 0 stream waited for every priority -5 kernel"
grep "^rank=" "$TR_TMP/out"
tr_stop_broker
echo "stream_priority: ok"
