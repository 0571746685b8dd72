#!/usr/bin/env bash
# One CUDA stream never waits behind another (issue 5): while stream A of
# a program copies device -> host in 64 MiB pieces (1 GiB and on), the p99
# of a stream query and of a small launch + synchronise on stream B must
# stay within 3x of their idle p99 (the issue names these two; the p99 of a
# plain round trip, cudaMemGetInfo, is printed beside them).  Twice: A and B fed by
# two threads, and by one thread (A's copies queued asynchronously into
# page-locked memory); non-blocking streams have lanes of their own, so B
# never waits behind A on the agent.
#
# Judged only where the host has the cores for it (TR_FAIR_MIN_CPUS, 8):
# the program, the broker and the agent share this machine, and on two
# vCPUs the copy alone keeps both busy, so every hop of a small call
# waits ~0.1 ms for a core (perf sched; see docs/BENCHMARKS.md).  Below
# that the figures are printed, and the test still fails on wrong bytes,
# a hang, or a busy p99 above TR_FAIR_MAX_MS (250 ms).
set -u
source "$(dirname "$0")/lib.sh"
tr_init "$1"
min_cpus=${TR_FAIR_MIN_CPUS:-8}
# 2000 samples of each phase: the p99 of 300 is the third-worst value, and
# the idle one (the denominator) then varied 4x from run to run.
samples=${TR_FAIR_SAMPLES:-2000}
max_ms=${TR_FAIR_MAX_MS:-250}
tr_start_broker --local 1 --emu-mem 3G
judge() { # what
python3 - "$TR_TMP/out" "$(nproc)" "$min_cpus" "$max_ms" <<'PY' || tr_fail "fairness ($1)"
import re, sys
out, ncpu, min_cpus, max_ms = open(sys.argv[1]).read(), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
ratios = dict((k, float(v)) for k, v in re.findall(r"(\w+)_ratio=([\d.]+)", out))
busy = [float(x) for x in re.findall(r"p99=(\d+)us", out.split("busy:")[1].split("\n")[0])]
assert set(ratios) >= {"query", "launch", "info"}, ratios
worst = max(busy) / 1000
print("busy p99 worst %.1f ms; ratios %s" % (worst, ratios))
if worst > max_ms:
    sys.exit("a small call took %.1f ms at p99 while the copy ran (bound %g ms)" % (worst, max_ms))
if ncpu >= min_cpus:
    bad = {k: v for k, v in ratios.items() if k in ("query", "launch") and v > 3}
    if bad:
        sys.exit("p99 busy/idle above 3x: %s" % bad)
    print("within 3x of idle p99 on %d CPUs" % ncpu)
else:
    print("not judged against 3x: %d CPUs here, %d needed (see the header)" % (ncpu, min_cpus))
PY
}
for mode in threads one-thread; do
    echo "--- stream A and stream B in $mode"
    extra=""
    [ $mode = one-thread ] && extra=one-thread
    # shellcheck disable=SC2086
    tr_run "$APPS/stream_fairness" 1024 "$samples" $extra ||
        tr_fail "stream_fairness ($mode) exited with $?"
    cat "$TR_TMP/out"
    grep -q "^PASS" "$TR_TMP/out" || tr_fail "stream_fairness ($mode) printed no PASS line"
    judge "$mode"
done
tr_stop_broker
echo "stream_fairness: ok"
