#!/usr/bin/env bash
# modal_machine.sh BUILD_DIR: the broker's MODAL provider, for real,
# against tools/modal/standin.py (the Modal app's HTTP contract on
# loopback, a real agent with its own TLS behind a raw TCP relay per
# machine).  Checked:
#   - a machines-file modal machine with a slow start shows its progress
#     ("waiting for an A100-40GB on Modal... N s") and then runs a program
#     (TLS end to end through the relay, pinned to the agent's fingerprint);
#   - tremote machine add modal: an invalid GPU type is one line listing
#     the valid ones and adds nothing; 503 (no capacity) is retried after
#     Retry-After, shown meanwhile, and the machine comes;
#   - preemption mid-program: the program gets a CUDA error within 10 s
#     (no hang), the broker logs Modal's reason and asks for a new Sandbox,
#     and a new program works;
#   - an idle machine is stopped on Modal after idle_timeout and asked for
#     again when a program connects;
#   - a broker restart reconnects to the machines still running (no new
#     Sandbox) and stops this broker's orphans;
#   - removal deletes the Sandbox;
#   - wrong token, unreachable app, missing or world-readable config: one
#     clear line each, nothing half-created, never a hang.
set -u
source "$(dirname "$0")/lib.sh"
tr_init "$1"
src=$(cd "$(dirname "$0")/../.." && pwd)
TREMOTE="$BUILD/tools/tremote/tremote"
san=${TR_PRELOAD%:"$SHIM"}   # a sanitizer runtime for non-shim programs
san=${san#"$SHIM"}

SPORT=
start_standin() {
    rm -f "$TR_TMP/standin.port"
    python3 "$src/tools/modal/standin.py" --agent "$AGENT" \
        --port-file "$TR_TMP/standin.port" --token-id wk-test \
        --token-secret ws-test --agent-arg=--emu-mem=512M \
        >>"$TR_TMP/standin.log" 2>&1 &
    STANDIN_PID=$!
    for _ in $(seq 100); do
        [ -s "$TR_TMP/standin.port" ] && break
        sleep 0.1
    done
    SPORT=$(cat "$TR_TMP/standin.port" 2>/dev/null) ||
        { cat "$TR_TMP/standin.log"; tr_fail "the stand-in did not start"; }
}
stop_standin() {
    [ -n "${STANDIN_PID:-}" ] || return 0
    kill -TERM "$STANDIN_PID" 2>/dev/null
    wait "$STANDIN_PID" 2>/dev/null
    STANDIN_PID=
}
trap 'stop_standin; tr_cleanup' EXIT

# sapi METHOD PATH [JSON]: a request to the stand-in, the answer on stdout.
sapi() {
    curl -sS -X "$1" -H "Modal-Key: wk-test" -H "Modal-Secret: ws-test" \
        ${3:+-d "$3"} "http://127.0.0.1:$SPORT$2"
}
# field JSON-PATH: read stdin's JSON (python expression on j).
field() { python3 -c "import json,sys; j=json.load(sys.stdin); print($1)"; }
# mstate NAME: the broker's state of machine NAME, then its progress/error.
mstate() {
    tr_stats | python3 -c '
import json, sys
for m in json.load(sys.stdin)["machines"]:
    if m["name"] == sys.argv[1]:
        print(m["state"], m.get("progress", m.get("error", "")))' "$1"
}
# wait_state NAME STATE SECONDS
wait_state() {
    local i
    for i in $(seq $(( $3 * 10 ))); do
        case "$(mstate "$1")" in "$2"*) return 0 ;; esac
        sleep 0.1
    done
    return 1
}

start_standin
export TREMOTE_MODAL_URL="http://127.0.0.1:$SPORT"
export TREMOTE_MODAL_TOKEN_ID=wk-test TREMOTE_MODAL_TOKEN_SECRET=ws-test
export TREMOTE_MODAL_CONFIG="$TR_TMP/none.ini" # only the environment

# ---- a slow start shows progress, then a program runs ---------------------
sapi POST /standin/config '{"start_delay_s": 6, "retry_after_s": 1}' >/dev/null
cat >"$TR_TMP/machines.ini" <<EOF
[machine gpu0]
provider = modal
gpu = a100-40gb
idle_timeout = 0
EOF
tr_start_broker --machines "$TR_TMP/machines.ini" --state "$TR_TMP/state"
# The progress counts while the Sandbox starts (6 s here).
st=
for _ in $(seq 50); do
    st=$(mstate gpu0)
    case "$st" in "starting waiting for an A100-40GB on Modal... "[1-9]" s"*) break ;; esac
    sleep 0.1
done
echo "while starting: $st"
case "$st" in
"starting waiting for an A100-40GB on Modal... "[1-9]" s"*) ;;
*) tr_fail "no progress line while starting: '$st'" ;;
esac
LD_PRELOAD="$san" "$BUILD/tools/smi/tremote-smi" >"$TR_TMP/smi.out" 2>&1
grep -q "gpu0 .*A100-40GB .*modal .*starting" "$TR_TMP/smi.out" &&
    grep -q "waiting for an A100-40GB on Modal" "$TR_TMP/smi.out" ||
    { cat "$TR_TMP/smi.out"; tr_fail "tremote-smi does not show the progress"; }
wait_state gpu0 ready 20 || tr_fail "gpu0 not ready: $(mstate gpu0)"
id0=$(tr_stats | field '[m["modal_id"] for m in j["machines"] if m["name"]=="gpu0"][0]')
sb0=$(sapi GET "/v1/machines/$id0" | field 'j["sandbox_id"]')
echo "gpu0 is $id0 in $sb0"
tr_run "$APPS/memory_roundtrip" || tr_fail "memory_roundtrip on the Modal machine"
grep -q '^PASS' "$TR_TMP/out" || tr_fail "no PASS from memory_roundtrip"
# The express connection: the tunnel dialled once more, its own TLS
# handshake; lanes open on it and move before their copies.
tr_run "$APPS/lane_move" || tr_fail "lane_move on the Modal machine exited with $?"
grep -q '^PASS' "$TR_TMP/out" || tr_fail "no PASS from lane_move on the Modal machine"
xc=$(tr_stats | field '[(m["express"], m["express_lanes"], m["lane_moves"]) for m in j["machines"] if m["name"]=="gpu0"][0]')
echo "gpu0's express connection (up, lanes, moves): $xc"
case "$xc" in "(True, "*) ;; *) tr_fail "no express connection through the tunnel: $xc" ;; esac
[ "$(echo "$xc" | tr -d '(),' | awk '{print ($2 >= 4 && $3 >= 4)}')" = 1 ] ||
    tr_fail "lane_move's lanes did not open express and move: $xc"

# ---- tremote machine add modal ----------------------------------------------
export TREMOTE_BROKER_SOCKET
n_before=$(sapi GET /v1/machines | field 'len(j["machines"])')
if LD_PRELOAD="$san" "$TREMOTE" machine add modal X100 >"$TR_TMP/add.out" 2>&1; then
    tr_fail "an invalid GPU type was accepted"
fi
grep -q "unknown GPU type 'X100' (valid: T4, L4, A10G, A100-40GB, A100-80GB, L40S, H100, H200, B200)" \
    "$TR_TMP/add.out" || { cat "$TR_TMP/add.out"; tr_fail "no clear line for X100"; }
[ "$(sapi GET /v1/machines | field 'len(j["machines"])')" = "$n_before" ] ||
    tr_fail "an invalid GPU type created something on Modal"

sapi POST /standin/config '{"start_delay_s": 0, "capacity": 2}' >/dev/null
LD_PRELOAD="$san" "$TREMOTE" machine add modal l4 --idle-timeout 3 >"$TR_TMP/add.out" 2>"$TR_TMP/add.err" ||
    { cat "$TR_TMP/add.out" "$TR_TMP/add.err"; tr_fail "machine add modal l4 failed"; }
cat "$TR_TMP/add.err"
grep -q "no L4 capacity" "$TR_TMP/add.err" || tr_fail "503 was not shown as progress"
read -r l4 l4idx <"$TR_TMP/add.out"
case "$l4" in modal-l4-????????) ;; *) tr_fail "machine id '$l4' is not modal-l4-8HEX" ;; esac
grep -q "$l4: no L4 capacity on Modal.*asking again in 1 s" "$TR_TMP/broker.log" ||
    tr_fail "the broker did not log the capacity retry"
echo "added $l4 (index $l4idx) after two 503s"

# ---- idle: stopped on Modal, asked again by the next program ---------------
wait_state "$l4" stopped 15 || tr_fail "$l4 was not stopped when idle: $(mstate "$l4")"
[ "$(sapi GET "/v1/machines/$l4" | field 'j["state"]')" = stopped ] ||
    tr_fail "the idle machine still runs on Modal"
TREMOTE_VISIBLE_DEVICES=$l4idx tr_run "$APPS/memory_roundtrip" ||
    tr_fail "a program could not use the machine stopped when idle"
grep -q '^PASS' "$TR_TMP/out" || tr_fail "no PASS on the woken machine"
grep -q "$l4: a program connected: asking Modal for it again" "$TR_TMP/broker.log" ||
    tr_fail "the broker did not ask for the idle machine again"

# ---- preemption mid-program ------------------------------------------------
LD_PRELOAD="$TR_PRELOAD" TREMOTE_VISIBLE_DEVICES=gpu0 "$APPS/client_load" check 60 \
    >"$TR_TMP/victim.out" 2>&1 &
victim=$!
sleep 1.5
kill -0 $victim 2>/dev/null || { cat "$TR_TMP/victim.out"; tr_fail "client_load ended early"; }
t0=$(date +%s%N)
sapi POST "/standin/preempt/$id0" >/dev/null
for _ in $(seq 100); do kill -0 $victim 2>/dev/null || break; sleep 0.1; done
if kill -0 $victim 2>/dev/null; then
    kill -9 $victim; tr_fail "the program hung after its machine was preempted"
fi
wait $victim; rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "preempted: the program ended with status $rc after $ms ms:"
cat "$TR_TMP/victim.out"
[ "$rc" != 0 ] || tr_fail "the program did not see an error"
grep -q "FAIL" "$TR_TMP/victim.out" || { cat "$TR_TMP/victim.out"; tr_fail "no FAIL line"; }
grep -q "^tremote: machine gpu0 (CUDA device 0) was lost" "$TR_TMP/victim.out" ||
    tr_fail "no line naming the lost machine"
[ "$ms" -lt 10000 ] || tr_fail "the error took $ms ms (bound: 10 s)"
tr_wait_line ".*gpu0: Modal says $id0 is stopped: preempted" "$TR_TMP/broker.log" "$BROKER_PID" 10 ||
    tr_fail "the broker did not log Modal's reason"
wait_state gpu0 ready 20 || tr_fail "gpu0 did not come back: $(mstate gpu0)"
sb1=$(sapi GET "/v1/machines/$id0" | field 'j["sandbox_id"]')
[ "$sb1" != "$sb0" ] || tr_fail "no new Sandbox after the preemption"
TREMOTE_VISIBLE_DEVICES=gpu0 tr_run "$APPS/memory_roundtrip" || tr_fail "no program after the preemption"
grep -q '^PASS' "$TR_TMP/out" || tr_fail "no PASS after the preemption"

# ---- broker restart: reconnect, reap orphans --------------------------------
owner=$(sapi GET "/v1/machines/$id0" | field 'j["owner"]')
sapi POST /v1/machines "{\"machine_id\":\"modal-t4-0badf00d\",\"gpu\":\"T4\",\"secret\":\"$(printf 'b%.0s' $(seq 40))\",\"owner\":\"$owner\",\"timeout_s\":600,\"idle_timeout_s\":0}" >/dev/null
tr_stop_broker
[ "$(sapi GET "/v1/machines/$id0" | field 'j["state"]')" = ready ] ||
    tr_fail "stopping the broker stopped its Modal machine"
tr_start_broker --machines "$TR_TMP/machines.ini" --state "$TR_TMP/state"
wait_state gpu0 ready 20 || tr_fail "gpu0 not ready after a restart: $(mstate gpu0)"
[ "$(sapi GET "/v1/machines/$id0" | field 'j["sandbox_id"]')" = "$sb1" ] ||
    tr_fail "the restarted broker asked for a new Sandbox instead of reconnecting"
# (It may be stopped again for idleness by the time we look.)
tr_wait_line ".*$l4: ready" "$TR_TMP/broker.log" "$BROKER_PID" 15 ||
    tr_fail "the machine added at run time did not come back: $(mstate "$l4")"
for _ in $(seq 50); do
    [ "$(sapi GET /v1/machines/modal-t4-0badf00d | field 'j["state"]')" = stopped ] && break
    sleep 0.1
done
[ "$(sapi GET /v1/machines/modal-t4-0badf00d | field 'j["state"]')" = stopped ] ||
    tr_fail "the orphan was not stopped"
grep -q "modal-t4-0badf00d is this broker's but in none of its machines" "$TR_TMP/broker.log" ||
    tr_fail "the orphan's stop was not logged"
TREMOTE_VISIBLE_DEVICES=gpu0 tr_run "$APPS/memory_roundtrip" ||
    tr_fail "no program after the broker restart"
grep -q '^PASS' "$TR_TMP/out" || tr_fail "no PASS after the broker restart"

# ---- a machine Modal has no capacity for does not hold programs back -------
sapi POST /standin/config '{"capacity": -1, "retry_after_s": 30}' >/dev/null
LD_PRELOAD="$san" "$TREMOTE" machine add modal h100 --no-wait >"$TR_TMP/add.out" 2>&1 ||
    { cat "$TR_TMP/add.out"; tr_fail "machine add --no-wait"; }
read -r stuck _ <"$TR_TMP/add.out"
wait_state "$stuck" "requested no H100 capacity" 10 || tr_fail "no capacity not shown: $(mstate "$stuck")"
# (HELLO waits up to 60 s for machines that start: it must not for this
# one, nor wake the idle $l4, which the program does not name.)
wakes=$(grep -c "$l4: a program connected" "$TR_TMP/broker.log")
t0=$(date +%s%N)
TREMOTE_VISIBLE_DEVICES=gpu0 tr_run "$APPS/devices" || tr_fail "a program beside a machine waiting for capacity"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "a program while $stuck waits for capacity: $ms ms"
[ "$ms" -lt 30000 ] || tr_fail "the program waited $ms ms for a machine Modal has no capacity for"
grep -q "^devices 1" "$TR_TMP/out" || tr_fail "devices: $(cat "$TR_TMP/out")"
[ "$(grep -c "$l4: a program connected" "$TR_TMP/broker.log")" = "$wakes" ] ||
    tr_fail "a program that names only gpu0 woke $l4"
sapi POST /standin/config '{"capacity": 0}' >/dev/null
LD_PRELOAD="$san" "$TREMOTE" machine rm "$stuck" >/dev/null 2>&1 || tr_fail "machine rm $stuck"

# ---- removal deletes ----------------------------------------------------------
LD_PRELOAD="$san" "$TREMOTE" machine rm gpu0 >/dev/null 2>&1 || tr_fail "machine rm gpu0"
for _ in $(seq 50); do
    [ "$(sapi GET "/v1/machines/$id0" | field 'j["state"]')" = stopped ] && break
    sleep 0.1
done
[ "$(sapi GET "/v1/machines/$id0" | field 'j["state"]')" = stopped ] ||
    tr_fail "removing the machine did not stop its Sandbox"

# ---- bad credentials, unreachable app, bad config ------------------------------
tr_stop_broker
rm -f "$TR_TMP/state"
TREMOTE_MODAL_TOKEN_SECRET=wrong tr_start_broker --machines "$TR_TMP/machines.ini" --state "$TR_TMP/state"
wait_state gpu0 failed 10 || tr_fail "a wrong token did not fail the machine: $(mstate gpu0)"
mstate gpu0 | grep -q "refused the proxy auth token (HTTP 401)" ||
    tr_fail "no clear line for a wrong token: $(mstate gpu0)"
if LD_PRELOAD="$san" "$TREMOTE" machine add modal t4 >"$TR_TMP/add.out" 2>&1; then
    tr_fail "machine add succeeded with a wrong token"
fi
cat "$TR_TMP/add.out"
grep -q "refused the proxy auth token" "$TR_TMP/add.out" || tr_fail "add: no line for the wrong token"
[ "$(tr_stats | field 'len(j["machines"])')" = 1 ] || tr_fail "the failed add left a machine behind"
tr_stop_broker

TREMOTE_MODAL_URL=http://127.0.0.1:1 tr_start_broker --machines "$TR_TMP/machines.ini" --state "$TR_TMP/state"
sleep 1
mstate gpu0 | grep -q "^requested cannot reach the Modal app" ||
    tr_fail "an unreachable app is not shown: $(mstate gpu0)"
tr_stop_broker

unset TREMOTE_MODAL_URL
if "$BROKER" --socket "$TR_TMP/x.sock" --machines "$TR_TMP/machines.ini" >"$TR_TMP/x.out" 2>&1; then
    tr_fail "a broker started with a modal machine and no Modal configuration"
fi
grep -q "Modal is not configured: url, token_id and token_secret are needed" "$TR_TMP/x.out" ||
    { cat "$TR_TMP/x.out"; tr_fail "no clear line for a missing configuration"; }
printf '[modal]\nurl = http://127.0.0.1:%s\ntoken_id = a\ntoken_secret = b\n' "$SPORT" >"$TR_TMP/modal.ini"
chmod 644 "$TR_TMP/modal.ini"
if TREMOTE_MODAL_CONFIG="$TR_TMP/modal.ini" "$BROKER" --socket "$TR_TMP/x.sock" \
        --machines "$TR_TMP/machines.ini" >"$TR_TMP/x.out" 2>&1; then
    tr_fail "a world-readable modal.ini was accepted"
fi
grep -q "is readable by other users (mode 0644).*chmod 600" "$TR_TMP/x.out" ||
    { cat "$TR_TMP/x.out"; tr_fail "no clear line for a world-readable modal.ini"; }

stop_standin
echo "PASS modal_machine"
