# lib.sh: helpers for the integration tests (sourced, not run).
#
# They start the REAL broker (which starts the real agents) in a private
# directory, run real nvcc-built programs under LD_PRELOAD, and clean up.
# Usage:  source lib.sh; tr_init BUILD_DIR; tr_start_broker [broker args];
#         tr_run PROGRAM ARGS...; (tr_stop_broker runs at exit)

tr_init() {
    BUILD=$(cd "$1" && pwd)
    SHIM="$BUILD/shim/libtremote_shim.so"
    BROKER="$BUILD/broker/tremote-broker"
    AGENT="$BUILD/gpu-agent/tremote-gpu-agent"
    APPS="$BUILD/tests/apps"
    for f in "$SHIM" "$BROKER" "$AGENT"; do
        [ -e "$f" ] || { echo "missing $f (build first)"; exit 1; }
    done
    TR_TMP=$(mktemp -d /tmp/tremote-test.XXXXXX)
    export TREMOTE_BROKER_SOCKET="$TR_TMP/broker.sock"
    trap tr_cleanup EXIT
    # A sanitizer-built shim needs its runtime loaded before anything else.
    TR_PRELOAD="$SHIM"
    case "${TR_SANITIZE:-}" in
    address) TR_PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so):$SHIM"
             export ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:exitcode=99${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
             export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" ;;
    thread)  TR_PRELOAD="$(gcc -print-file-name=libtsan.so):$SHIM"
             export TSAN_OPTIONS="exitcode=66 report_signal_unsafe=0${TSAN_OPTIONS:+:$TSAN_OPTIONS}" ;;
    esac
}

tr_cleanup() {
    tr_stop_broker
    # TR_KEEP_LOGS=DIR keeps each run's broker (and agent) log there, named
    # after the script: tests/gpu/run.sh brings them back from a GPU loan.
    if [ -n "${TR_KEEP_LOGS:-}" ] && [ -s "${TR_TMP:-}/broker.log" ]; then
        mkdir -p "$TR_KEEP_LOGS" &&
            cp "$TR_TMP/broker.log" "$TR_KEEP_LOGS/$(basename "$0" .sh)-${TR_TMP##*.}.log"
    fi
    [ -n "${TR_TMP:-}" ] && rm -rf "$TR_TMP"
}

# tr_start_broker [args...]: start the broker, wait until it says ready.
# Its LOCAL agents use the backend TR_BACKEND names (default emu: the
# broker's own default, auto, would take the GPU where there is one, and
# these tests' expectations are the emulated device's; TR_BACKEND=cuda runs
# them on the GPU, as tests/gpu/run.sh does).  A --backend in args wins.
tr_start_broker() {
    local fifo="$TR_TMP/ready" line
    rm -f "$fifo"
    mkfifo "$fifo"
    "$BROKER" --socket "$TREMOTE_BROKER_SOCKET" --control "$TR_TMP/control.sock" \
        --agent "$AGENT" --ready-fd 3 --backend "${TR_BACKEND:-emu}" "$@" \
        3>"$fifo" 2>"$TR_TMP/broker.log" &
    BROKER_PID=$!
    if ! read -r -t 60 line <"$fifo" || [ "$line" != ready ]; then
        echo "broker did not become ready; its log:"; cat "$TR_TMP/broker.log"
        exit 1
    fi
}

tr_stop_broker() {
    [ -n "${BROKER_PID:-}" ] || return 0
    kill -TERM "$BROKER_PID" 2>/dev/null
    local i
    for i in $(seq 50); do
        kill -0 "$BROKER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$BROKER_PID" 2>/dev/null
    wait "$BROKER_PID" 2>/dev/null
    BROKER_STATUS=$?
    BROKER_PID=
}

# tr_run PROGRAM ARGS...: run under the shim; stdout+stderr to $TR_TMP/out.
tr_run() {
    LD_PRELOAD="$TR_PRELOAD" "$@" >"$TR_TMP/out" 2>&1
}

# tr_wait_line WORD FILE PID [SECONDS]: wait until FILE has a line that
# starts with WORD (status 0); 1 if PID exits first or SECONDS (default 30)
# pass.  For programs that pause at a marker so a test can look at the
# broker meanwhile.
tr_wait_line() {
    local i
    for i in $(seq $(( ${4:-30} * 20 ))); do
        grep -q "^$1" "$2" && return 0
        kill -0 "$3" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# tr_session FIELD...: those fields of the broker's one client session,
# space-separated (fails unless there is exactly one session).
tr_session() {
    tr_stats | python3 -c '
import json, sys
s = json.load(sys.stdin)["sessions"]
assert len(s) == 1, s
print(*[s[0][k] for k in sys.argv[1:]])' "$@"
}

# tr_stats: the broker's stats JSON on stdout.
tr_stats() {
    tr_ctl '{"version":1,"op":"stats"}'
}

# tr_ctl JSON: one request on the broker's control socket; the answer on
# stdout.
tr_ctl() {
    python3 - "$TR_TMP/control.sock" "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
data = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    data += b
sys.stdout.write(data.decode())
PY
}

tr_fail() {
    echo "FAIL: $*"
    echo "--- program output"; cat "$TR_TMP/out" 2>/dev/null
    echo "--- broker log"; cat "$TR_TMP/broker.log" 2>/dev/null
    exit 1
}

# tr_equal_clients LOAD PRELOAD DIR: 8 programs LOAD (client_load) "work
# 60", with PRELOAD ("" for none), their rounds started together once all
# are up (TR_LOAD_BARRIER=DIR, where their outputs go too): on a GPU,
# contexts start one after another, and the first would otherwise run
# alone for a while.  Sets EQ_MIN and EQ_MAX (ms) and EQ_RATIO
# (slowest/fastest, "" if none finished); status 1 if one failed.
tr_equal_clients() {
    local load=$1 pre=$2 dir=$3 pids=() i p bad=0
    for i in 1 2 3 4 5 6 7 8; do
        TR_LOAD_BARRIER=$dir LD_PRELOAD="$pre" "$load" work 60 >"$dir/w$i.out" 2>&1 &
        pids+=($!)
    done
    # Until all are ready, or one has ended (failed before the barrier).
    for _ in $(seq 600); do
        [ "$(find "$dir" -name 'ready.*' | wc -l)" -ge 8 ] && break
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || break 2; done
        sleep 0.1
    done
    touch "$dir/go"
    for p in "${pids[@]}"; do wait "$p" || bad=1; done
    read -r EQ_RATIO EQ_MIN EQ_MAX < <(cat "$dir"/w*.out | awk '/^done/ {t = $4;
        if (min == "" || t < min) min = t; if (t > max) max = t}
        END {if (min) printf "%.2f %d %d\n", max / min, min, max; else print ""}')
    return $bad
}
