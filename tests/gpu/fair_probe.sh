#!/usr/bin/env bash
# fair_probe.sh BUNDLE: where a small call waits while another stream of
# the same program copies device -> host (stream_fairness, threads mode),
# on a host with enough cores (the GPU machine).  For each backend and
# configuration (TR_PROBE_CONFIGS: environment settings joined by "+",
# e.g. TREMOTE_NET_TUNE=frame=32K+TREMOTE_AGENT_SPIN_US=200; "-" is the
# defaults), TR_PROBE_REPS runs, each printing the small calls' idle and
# busy p50/p99 and their ratios, and what the broker-agent connections'
# kernel queues held while the copy ran (both connections to the agent's
# port, added up): the bytes the broker had not yet read (receive
# queues) and the bytes the agent had queued (send queues), sampled every
# millisecond from /proc/net/tcp.  Prints figures, judges nothing.
# TR_PROBE_APP=clients measures many_clients' figure instead: one
# program's small calls (a 4-byte copy back) idle, then beside another
# program copying 64 MiB there and back (4 GiB, so that it exits and
# leaves its trace).  A configuration with TREMOTE_TRACE_DIR=DIR also
# prints the hop table of tests/gpu/trace_hops.py for each run.
# TR_PROBE_ONE_THREAD=1 runs stream_fairness in its one-thread mode (run.sh
# 6c's harder case: the copies queued back to back).
#   TR_PROBE_CONFIGS="- TREMOTE_NET_TUNE=rcvbuf=64K" bash tests/gpu/fair_probe.sh gpub
#   TR_PROBE_ONE_THREAD=1 TR_PROBE_BACKENDS=cuda \
#     TR_PROBE_CONFIGS="- TREMOTE_NET_TUNE=cucopypoll=1 TREMOTE_NET_TUNE=cupoll=300" \
#     bash tests/gpu/fair_probe.sh gpub   (does the copy's polling cost a launch?)
set -u
B=$(cd "${1:?usage: fair_probe.sh BUNDLE_DIR}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
export LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
backends=${TR_PROBE_BACKENDS:-emu cuda}
tunes=${TR_PROBE_CONFIGS:--}
reps=${TR_PROBE_REPS:-2}

probe_one() { # backend tune
    (
        source "$here/../integration/lib.sh"
        tr_init "$B"
        [ "$2" = - ] || { IFS=+ read -ra kv <<<"$2"; export "${kv[@]}"; }
        [ -z "${TREMOTE_TRACE_DIR:-}" ] || mkdir -p "$TREMOTE_TRACE_DIR"
        TR_BACKEND=$1 tr_start_broker --local 1 --emu-mem 3G
        port=$(grep -o "at 127.0.0.1:[0-9]*" "$TR_TMP/broker.log" | head -1 | cut -d: -f2)
        python3 - "$port" "$TR_TMP/q" <<'PY' &
import sys, time
port, out = int(sys.argv[1]), sys.argv[2]
hexport = "%04X" % port
rx, tx = [], []
end = time.time() + 60
with open(out, "w") as f:
    while time.time() < end:
        try:
            lines = open("/proc/net/tcp").read().splitlines()[1:]
        except OSError:
            break
        r = t = 0
        for l in lines:
            c = l.split()
            tq, rq = (int(x, 16) for x in c[4].split(":"))
            if c[2].endswith(":" + hexport):      # the broker's end
                r += rq
            elif c[1].endswith(":" + hexport) and c[3] == "01":  # the agent's
                t += tq
        f.write("%d %d\n" % (r, t))
        f.flush()
        time.sleep(0.001)
PY
        sampler=$!
        if [ "${TR_PROBE_APP:-fairness}" = clients ]; then
            load=$APPS/client_load
            tr_run timeout 60 "$load" latency 2000
            idle=$(awk '/^p50/ {print $4}' "$TR_TMP/out")
            LD_PRELOAD="$TR_PRELOAD" timeout 120 "$load" bulk 4096 >"$TR_TMP/bulk.out" 2>&1 &
            bulk=$!
            sleep 0.3
            tr_run timeout 60 "$load" latency 2000
            busy=$(awk '/^p50/ {print $4}' "$TR_TMP/out")
            kill -0 $bulk 2>/dev/null || echo "the bulk copy ended before the small calls did"
            wait $bulk
            echo "small call p99: idle $idle us, beside another program's copy $busy us: ratio $(awk -v a="$busy" -v b="$idle" 'BEGIN {printf "%.2f", a / b}')"
        else
            # shellcheck disable=SC2046
            tr_run timeout 60 "$APPS/stream_fairness" 1024 "${TR_PROBE_SAMPLES:-2000}" \
                $([ "${TR_PROBE_ONE_THREAD:-0}" = 1 ] && echo one-thread)
            grep -E "^(idle|busy):|ratio=" "$TR_TMP/out" | sed -n 1,3p
            grep -q "^PASS" "$TR_TMP/out" || { echo "NO PASS:"; tail -5 "$TR_TMP/out"; }
        fi
        kill $sampler 2>/dev/null; wait $sampler 2>/dev/null
        python3 - "$TR_TMP/q" <<'PY'
import sys
s = [tuple(map(int, l.split())) for l in open(sys.argv[1]) if l.strip()]
busy = [x for x in s if x[0] + x[1] > 16384]
def pct(v, p):
    v = sorted(v); return v[min(len(v) - 1, int(len(v) * p))] if v else 0
if busy:
    r = [x[0] for x in busy]; t = [x[1] for x in busy]
    print("queues while busy (%d of %d samples): broker unread p50 %dK p90 %dK max %dK; agent queued p50 %dK p90 %dK max %dK"
          % (len(busy), len(s), pct(r, .5) >> 10, pct(r, .9) >> 10, max(r) >> 10,
             pct(t, .5) >> 10, pct(t, .9) >> 10, max(t) >> 10))
else:
    print("queues: never above 16K (%d samples)" % len(s))
PY
        if [ -n "${TREMOTE_TRACE_DIR:-}" ]; then
            tr_stop_broker # the broker and its agent write their notes
            python3 "$here/trace_hops.py" "$TREMOTE_TRACE_DIR" | head -40
            rm -rf "$TREMOTE_TRACE_DIR"
        fi
    )
}

for be in $backends; do
    for t in $tunes; do
        for rep in $(seq "$reps"); do
            echo "##### backend $be, TREMOTE_NET_TUNE=$t, run $rep"
            probe_one "$be" "$t"
        done
    done
done
