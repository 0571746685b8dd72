#!/usr/bin/env bash
# run.sh BUILD_DIR [--strict]: the ctest `bench`: tremote-bench --quick.
#
# tremote-bench (tools/bench) measures every figure of issue 5 against a
# yardstick taken in the same run and exits 1 when a figure could not be
# measured or 1000 launches + sync took other than exactly 1 round trip.
# Here, on top of that, bounds far outside the goals fail the test (the
# goals themselves are judged only with --strict: CI machines are shared
# and noisy):
#   null call p50 <= 3x the relay yardstick
#   every H2D/D2H copy of >= 16 MiB >= 0.2x TCP
#   launch enqueue rate >= 0.25 M/s
#   the delay workload <= 4x its bound (a flow-control window or a round
#   trip per chunk would cost 10x and more)
# With gnuplot installed the plot is drawn too and must not be empty.
# A broken bound is measured again (three runs at most) before it fails.
set -u
BUILD=$(cd "$1" && pwd)
strict=${2:-}
BENCH="$BUILD/tools/bench/tremote-bench"
[ -x "$BENCH" ] || { echo "missing $BENCH (build first)"; exit 1; }
TMP=$(mktemp -d /tmp/tremote-bench-test.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

# A backend it does not know is a usage error that says what is valid.
"$BENCH" --backend gpu >"$TMP/usage.out" 2>&1
rc=$?
[ $rc = 2 ] && grep -q "'gpu' is not a backend (valid: emu, cuda)" "$TMP/usage.out" ||
    { cat "$TMP/usage.out"; echo "FAIL: --backend gpu: exit $rc"; exit 1; }

plot=()
command -v gnuplot >/dev/null && plot=(--plot "$TMP/bench.png")

# judge CSV: the bounds above; exit 1 if one is broken.
judge() {
python3 - "$1" <<'PY'
import csv, sys
rows = {r["figure"]: r for r in csv.DictReader(open(sys.argv[1]))}
bad = []
def need(name):
    r = rows.get(name)
    if r is None or r["value"] == "":
        bad.append("%s: not measured" % name)
        return None
    return r
def ratio(name, le=None, ge=None):
    r = need(name)
    if r is None:
        return
    x = float(r["ratio"] or r["value"])
    if le is not None and x > le:
        bad.append("%s: %.2f > %g" % (name, x, le))
    if ge is not None and x < ge:
        bad.append("%s: %.2f < %g" % (name, x, ge))
ratio("null call p50 / relay", le=3.0)
need("null call p99 / relay")
ratio("launch enqueue rate", ge=0.25)
r = need("round trips: 1000 launches + sync")
if r is not None and float(r["value"]) != 1:
    bad.append("1000 launches + sync: %s round trips, not 1" % r["value"])
copies = [n for n in rows if n.startswith(("H2D ", "D2H "))]
if len(copies) != 4 * 5:
    bad.append("%d copy figures, not 20" % len(copies))
for n in copies:
    if "MiB" in n and int(n.split()[2]) >= 16:
        ratio(n, ge=0.2)
    else:
        need(n)
ratio("delay: total / bound", le=4.0)
need("delay: round trips per iteration")
for b in bad:
    print("FAIL:", b)
print("bench: %d figures, %s" % (len(rows), "FAIL" if bad else "ok"))
sys.exit(1 if bad else 0)
PY
}

# The bounds are about ratios of times on a shared machine, where another
# tenant can double a p50 for a few seconds (this ran alone, RUN_SERIAL,
# and still saw a null call at 3.8x once): a broken bound is measured
# again, up to three runs, before it fails.  What is not noise fails at
# once: a figure not measured, round trips other than 1 (tremote-bench's
# own exit status), no plot.
for try in 1 2 3; do
    "$BENCH" --quick --csv "$TMP/bench.csv" "${plot[@]}" $strict
    rc=$?
    [ $rc = 0 ] || { echo "FAIL: tremote-bench exited with $rc"; exit 1; }
    if [ ${#plot[@]} -gt 0 ] && ! [ -s "$TMP/bench.png" ]; then
        echo "FAIL: no plot"; exit 1
    fi
    judge "$TMP/bench.csv" && exit 0
    [ $try = 3 ] || echo "run $try broke a bound: measuring again"
done
exit 1
