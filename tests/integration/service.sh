#!/usr/bin/env bash
# service.sh BUILD_DIR: the broker as a service.  systemd's readiness
# protocol (READY=1 once the machines are up, RELOADING=1 and READY=1
# around SIGHUP, STOPPING=1 at SIGTERM) against a NOTIFY_SOCKET of our
# own; Prometheus metrics on a loopback port (sessions, round trips,
# bytes, module cache misses then hits with the same upload byte count on
# a second run, machine states; 404/405 for other requests; a non-loopback
# address refused); READY=1 and --ready-fd once a machine still in its
# first start is removed; SIGHUP during a shutdown ignored; and the
# shipped unit file passes systemd-analyze
# verify where that tool exists.
set -u
source "$(dirname "$0")/lib.sh"
tr_init "$1"

notify=$TR_TMP/notify
python3 - "$notify" "$TR_TMP/notified" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as f:
    while True:
        f.write(s.recv(4096).decode().replace("\n", " ") + "\n")
PY
LISTENER=$!
trap 'kill $LISTENER 2>/dev/null; tr_cleanup' EXIT
for i in $(seq 50); do [ -S "$notify" ] && break; sleep 0.1; done
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

notified() { # notified TEXT: a datagram holding TEXT arrives (5 s)
    local i
    for i in $(seq 50); do
        grep -q "$1" "$TR_TMP/notified" 2>/dev/null && return 0
        sleep 0.1
    done
    tr_fail "no '$1' on NOTIFY_SOCKET; got: $(cat "$TR_TMP/notified" 2>/dev/null)"
}
metric() { # metric NAME-WITH-LABELS: its value
    curl -s "http://127.0.0.1:$port/metrics" | awk -v n="$1" '$1 == n {print $2}'
}

NOTIFY_SOCKET=$notify tr_start_broker --local 1 --emu-mem 1G --metrics "127.0.0.1:$port"
notified "READY=1 STATUS=1 machine(s) MAINPID=$BROKER_PID"
echo "READY=1 when the machines are up"

[ "$(metric tremote_sessions_total)" = 0 ] || tr_fail "sessions before any program"
[ "$(metric 'tremote_machine_state{index="0",name="local-0",provider="local",state="ready"}')" = 1 ] ||
    tr_fail "local-0 is not ready in the metrics"
tr_run "$APPS/memory_roundtrip" || tr_fail "memory_roundtrip exited with $?"
[ "$(metric tremote_sessions_total)" = 1 ] || tr_fail "tremote_sessions_total is not 1"
[ "$(metric tremote_sessions)" = 0 ] || tr_fail "a session is still counted"
[ "$(metric tremote_round_trips_total)" -gt 0 ] || tr_fail "no round trips counted"
[ "$(metric tremote_bytes_to_agent_total)" -gt $((64 << 20)) ] || tr_fail "64 MiB not counted"
[ "$(metric tremote_bytes_from_agent_total)" -gt $((64 << 20)) ] || tr_fail "64 MiB back not counted"
tr_run "$APPS/devices" || tr_fail "devices exited with $?" # a kernel: a module
miss=$(metric tremote_module_cache_misses_total)
up=$(metric tremote_module_bytes_uploaded_total)
[ "$miss" -ge 1 ] && [ "$up" -gt 0 ] || tr_fail "the first run uploaded no module ($miss misses, $up bytes)"
[ "$(metric tremote_module_cache_hits_total)" = 0 ] || tr_fail "a hit on the first run"
tr_run "$APPS/devices" || tr_fail "devices (again) exited with $?"
[ "$(metric tremote_module_cache_misses_total)" = "$miss" ] || tr_fail "the second run missed the cache"
[ "$(metric tremote_module_bytes_uploaded_total)" = "$up" ] || tr_fail "the second run uploaded module bytes"
[ "$(metric tremote_module_cache_hits_total)" -ge 1 ] || tr_fail "the second run's load was no hit"
echo "metrics: sessions, round trips, bytes; the second run uploads 0 module bytes ($up the first time)"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/other")
[ "$code" = 404 ] || tr_fail "GET /other: $code, want 404"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$port/metrics")
[ "$code" = 405 ] || tr_fail "POST /metrics: $code, want 405"

kill -HUP "$BROKER_PID"
notified "RELOADING=1"
for i in $(seq 50); do [ "$(grep -c 'READY=1' "$TR_TMP/notified")" -ge 2 ] && break; sleep 0.1; done
[ "$(grep -c 'READY=1' "$TR_TMP/notified")" -ge 2 ] || tr_fail "no READY=1 after the reload"
tr_stop_broker
notified "STOPPING=1"
echo "RELOADING=1/READY=1 around SIGHUP, STOPPING=1 at SIGTERM"

err=$("$BROKER" --socket "$TR_TMP/x.sock" --local 0 --metrics 0.0.0.0:9464 2>&1); rc=$?
[ "$rc" = 2 ] && case "$err" in *"loopback address only"*) true ;; *) false ;; esac ||
    tr_fail "--metrics 0.0.0.0: exit $rc, '$err'"
echo "--metrics beyond loopback: refused"

# A machine removed before its first start ended (here a STATIC one whose
# agent accepts the connection and never answers) is not waited for: the
# broker says ready once it is gone, or systemd (Type=notify) would kill it.
python3 - "$TR_TMP/hung.port" <<'PY' &
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
time.sleep(120)
PY
HUNG=$!
trap 'kill $LISTENER $HUNG 2>/dev/null; tr_cleanup' EXIT
for i in $(seq 50); do [ -s "$TR_TMP/hung.port" ] && break; sleep 0.1; done
printf 'static-secret\n' >"$TR_TMP/hung.secret"
chmod 600 "$TR_TMP/hung.secret"
printf '[machine hung]\nprovider = static\naddress = 127.0.0.1:%s\nsecret_file = %s\n' \
    "$(cat "$TR_TMP/hung.port")" "$TR_TMP/hung.secret" >"$TR_TMP/hung.ini"
: >"$TR_TMP/notified"
NOTIFY_SOCKET=$notify "$BROKER" --socket "$TREMOTE_BROKER_SOCKET" \
    --control "$TR_TMP/control.sock" --machines "$TR_TMP/hung.ini" \
    --state "$TR_TMP/hung.state" --ready-fd 3 3>"$TR_TMP/hung.ready" \
    2>"$TR_TMP/broker.log" &
BROKER_PID=$!
for i in $(seq 100); do [ -S "$TR_TMP/control.sock" ] && break; sleep 0.1; done
sleep 1
[ -s "$TR_TMP/hung.ready" ] && tr_fail "ready while a machine is still starting"
out=$(tr_ctl '{"version":1,"op":"remove","name":"hung"}')
grep -q '"error"' <<<"$out" && tr_fail "remove: $out"
notified "READY=1 STATUS=1 machine(s)"
[ "$(cat "$TR_TMP/hung.ready")" = ready ] || tr_fail "--ready-fd: not 'ready' after the remove"
tr_stop_broker
kill $HUNG 2>/dev/null
echo "a machine removed while it starts: ready (--ready-fd, READY=1) once it is gone"

# SIGHUP while stopping (an agent slow to exit on SIGTERM) is ignored: no
# reload, no agent started during the shutdown.
printf '[machine a]\nprovider = local\n' >"$TR_TMP/hup.ini"
tr_start_broker --machines "$TR_TMP/hup.ini" --state "$TR_TMP/hup.state" --emu-mem 256M
printf '[machine a]\nprovider = local\ngpu = T4\n[machine b]\nprovider = local\n' >"$TR_TMP/hup.ini"
slow=$(pgrep -P "$BROKER_PID")
[ -n "$slow" ] || tr_fail "no agent"
kill -STOP $slow
kill -TERM "$BROKER_PID"
tr_wait_line ".*SIGTERM: shutting down" "$TR_TMP/broker.log" "$BROKER_PID" 5 ||
    tr_fail "no shutdown"
kill -HUP "$BROKER_PID"
wait "$BROKER_PID"
BROKER_PID=
kill -CONT $slow 2>/dev/null
sed -n '/SIGTERM: shutting down/,$p' "$TR_TMP/broker.log" >"$TR_TMP/after"
grep -q "starting agent\|reloaded" "$TR_TMP/after" &&
    tr_fail "SIGHUP during the shutdown: $(grep 'starting agent\|reloaded' "$TR_TMP/after")"
grep -q "SIGHUP while stopping: ignored" "$TR_TMP/after" || tr_fail "no line saying SIGHUP was ignored"
echo "SIGHUP while stopping: ignored"

unit=$BUILD/tools/systemd/tremote-broker.service
[ -f "$unit" ] || tr_fail "no unit file in the build"
grep -q '^Type=notify$' "$unit" || tr_fail "the unit is not Type=notify"
if command -v systemd-analyze >/dev/null; then
    sed "s|^ExecStart=[^ ]*|ExecStart=$BROKER|" "$unit" >"$TR_TMP/tremote-broker.service"
    out=$(timeout 30 systemd-analyze verify --man=no "$TR_TMP/tremote-broker.service" 2>&1)
    [ -z "$out" ] || tr_fail "systemd-analyze verify: $out"
    echo "the unit file verifies"
else
    echo "(no systemd-analyze here: the unit file was not verified)"
fi
echo "service: ok"
