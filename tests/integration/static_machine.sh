#!/usr/bin/env bash
# static_machine.sh BUILD_DIR: a STATIC machine (an agent started on its
# own on 127.0.0.1 with a secret) and a LOCAL one in the same broker,
# both from a machines file: a program sees two devices and uses both
# (memory_roundtrip 2, which also crosses them); TREMOTE_VISIBLE_DEVICES
# picks and orders them as CUDA_VISIBLE_DEVICES does; the STATIC agent killed
# with -9 is lost, started again on the same port it is reconnected to and
# a new program uses both again; a wrong secret fails that machine for
# good while the LOCAL one serves; a lost machine that retries keeps no
# program waiting that does not list it; and every kind of bad machines file
# stops the broker with exit 2 and a line that says what was wrong and
# what is valid.
set -u
source "$(dirname "$0")/lib.sh"
tr_init "$1"

secret=$TR_TMP/secret
printf 'static-test-secret-%s\n' "$RANDOM$RANDOM" >"$secret"
chmod 600 "$secret"

# start_agent PORT: an agent on 127.0.0.1:PORT (0: any); sets AGENT_PID
# and PORT.
start_agent() {
    local fifo=$TR_TMP/agent-ready line
    rm -f "$fifo"
    mkfifo "$fifo"
    "$AGENT" --listen "127.0.0.1:$1" --secret-file "$secret" --backend emu \
        --emu-mem 1G --emu-name "box device" --ready-fd 3 3>"$fifo" 2>>"$TR_TMP/agent.log" &
    AGENT_PID=$!
    if ! read -r -t 30 line <"$fifo"; then
        cat "$TR_TMP/agent.log"
        tr_fail "the agent did not say where it listens"
    fi
    PORT=${line##*:}
}
stop_agent() {
    [ -n "${AGENT_PID:-}" ] && kill -9 "$AGENT_PID" 2>/dev/null
    wait "${AGENT_PID:-}" 2>/dev/null
    AGENT_PID=
}
trap 'stop_agent; tr_cleanup' EXIT

start_agent 0
cat >"$TR_TMP/machines.ini" <<EOF
; a LOCAL machine the broker starts, and the agent started above
[machine here]
provider = local
gpu = any

[machine box]
provider = static
address = 127.0.0.1:$PORT
secret_file = $secret
EOF

tr_start_broker --machines "$TR_TMP/machines.ini" --emu-mem 1G
tr_stats >"$TR_TMP/stats.json"
python3 - "$TR_TMP/stats.json" "$PORT" <<'PY' || tr_fail "stats do not show both machines ready"
import json, sys
m = json.load(open(sys.argv[1]))["machines"]
assert [(x["index"], x["name"], x["provider"], x["state"]) for x in m] == \
    [(0, "here", "local", "ready"), (1, "box", "static", "ready")], m
assert m[1]["address"] == "127.0.0.1:" + sys.argv[2], m
PY
tr_run "$APPS/devices" || tr_fail "devices exited with $?"
[ "$(cat "$TR_TMP/out")" = "devices 2
device 0: tremote emulated device
device 1: box device" ] || tr_fail "devices: not the LOCAL then the STATIC machine"
echo "a LOCAL and a STATIC machine: a program uses both"

# TREMOTE_VISIBLE_DEVICES: machine indices or names, order kept, the first
# invalid entry (no such machine, not ready, listed already) ends the list.
visible() { # visible VALUE EXPECTED-NAMES...
    local v=$1 want="devices $(( $# - 1 ))" i=0
    shift
    for n in "$@"; do want="$want
device $i: $n"; i=$((i + 1)); done
    TREMOTE_VISIBLE_DEVICES=$v tr_run "$APPS/devices" ||
        tr_fail "devices with TREMOTE_VISIBLE_DEVICES='$v' exited with $?"
    [ $# = 0 ] && { grep -q "^tremote: TREMOTE_VISIBLE_DEVICES=\"$v\" names no ready machine" "$TR_TMP/out" ||
        tr_fail "no line saying TREMOTE_VISIBLE_DEVICES='$v' hides every device"; }
    [ "$(grep -v '^tremote:' "$TR_TMP/out")" = "$want" ] ||
        tr_fail "TREMOTE_VISIBLE_DEVICES='$v': want '$want'"
    echo "TREMOTE_VISIBLE_DEVICES='$v': $*"
}
visible "1,0" "box device" "tremote emulated device"
visible "1" "box device"
visible "box" "box device"
visible " here , box" "tremote emulated device" "box device"
visible "0,7,1" "tremote emulated device"
visible "1,1,0" "box device"
visible "0,x" "tremote emulated device"
visible "-1"
visible ""

tr_run "$APPS/memory_roundtrip" 2 "tremote emulated device" "box device" ||
    tr_fail "memory_roundtrip on LOCAL + STATIC exited with $?"
grep -q '^2 devices: ok$' "$TR_TMP/out" || tr_fail "no '2 devices: ok' line"
grep -q '^PASS$' "$TR_TMP/out" || tr_fail "no PASS line (LOCAL + STATIC)"

# The STATIC agent dies: lost; back on the same port: reconnected.
stop_agent
tr_wait_line ".*box: machine lost" "$TR_TMP/broker.log" "$BROKER_PID" 20 ||
    tr_fail "the broker did not notice the STATIC agent die"
start_agent "$PORT"
[ "$PORT" != 0 ] || tr_fail "no port"
for i in $(seq 200); do
    [ "$(grep -c 'box: ready' "$TR_TMP/broker.log")" -ge 2 ] && break
    sleep 0.1
done
[ "$(grep -c 'box: ready' "$TR_TMP/broker.log")" -ge 2 ] ||
    tr_fail "the broker did not reconnect to the STATIC agent"
tr_run "$APPS/memory_roundtrip" 2 "tremote emulated device" "box device" ||
    tr_fail "memory_roundtrip after the reconnect exited with $?"
grep -q '^PASS$' "$TR_TMP/out" || tr_fail "no PASS line after the reconnect"
echo "a STATIC agent that comes back is connected to again"
tr_stop_broker
[ "$BROKER_STATUS" = 0 ] || tr_fail "broker exited with $BROKER_STATUS on SIGTERM"
kill -0 "$AGENT_PID" 2>/dev/null || tr_fail "stopping the broker stopped the STATIC agent"

# A wrong secret: that machine fails for good, the LOCAL one serves.
wrong=$TR_TMP/wrong
echo "not-the-secret" >"$wrong"
chmod 600 "$wrong"
sed "s|^secret_file = .*|secret_file = $wrong|" "$TR_TMP/machines.ini" >"$TR_TMP/wrong.ini"
tr_start_broker --machines "$TR_TMP/wrong.ini" --emu-mem 1G
grep -q 'box: start failed: the agent refused the secret' "$TR_TMP/broker.log" ||
    tr_fail "no line saying the STATIC agent refused the secret"
tr_run "$APPS/memory_roundtrip" 1 "tremote emulated device" ||
    tr_fail "memory_roundtrip on the LOCAL machine alone exited with $?"
grep -q '^PASS$' "$TR_TMP/out" || tr_fail "no PASS line (wrong secret)"
tr_stop_broker
echo "a wrong secret fails only that machine"

# A machine that was ready and now retries (its agent gone, and what
# listens on its port never answers: "starting" until the start timeout)
# keeps no program waiting, least of all one that does not list it.
tr_start_broker --machines "$TR_TMP/machines.ini" --emu-mem 1G
stop_agent
python3 - "$PORT" <<'PY' &
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8); time.sleep(90)
PY
HUNG=$!
for i in $(seq 300); do
    tr_ctl '{"version":1,"op":"machines"}' | grep -q '"name":"box","provider":"static","state":"starting"' && break
    sleep 0.1
done
t0=$(date +%s%N)
TREMOTE_VISIBLE_DEVICES=here tr_run "$APPS/devices" || tr_fail "devices (here) exited with $?"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
kill $HUNG
grep -q "^devices 1$" "$TR_TMP/out" || tr_fail "TREMOTE_VISIBLE_DEVICES=here: not 1 device"
[ "$ms" -lt 5000 ] || tr_fail "a program that lists only here waited $ms ms for box to start again"
tr_stop_broker
echo "a machine retrying after it was lost: a program that does not list it waits $ms ms"
stop_agent

# Bad machines files: exit 2, one line with what is valid.
bad() { # bad NAME EXPECTED-TEXT: the file $TR_TMP/bad.ini must be refused
    local err rc
    # (a broker that takes the file runs until the timeout: 124)
    err=$(timeout 20 "$BROKER" --socket "$TR_TMP/bad.sock" --machines "$TR_TMP/bad.ini" 2>&1)
    rc=$?
    [ "$rc" = 2 ] || tr_fail "$1: exit $rc, want 2 ($err)"
    case "$err" in
    *"$2"*) echo "refused: $1" ;;
    *) tr_fail "$1: '$err' does not say '$2'" ;;
    esac
}
printf '[machine a]\nprovider = local\ncolour = red\n' >"$TR_TMP/bad.ini"
bad "unknown key" "bad.ini:3: [machine a]: unknown key 'colour' (valid: provider, gpu"
printf '[machines a]\nprovider = local\n' >"$TR_TMP/bad.ini"
bad "unknown section" "unknown section (valid: [machine NAME])"
printf '[machine a]\nprovider = cloud\n' >"$TR_TMP/bad.ini"
bad "unknown provider" "unknown provider 'cloud' (valid: local, static, modal)"
printf '[machine a]\ngpu = T4\n' >"$TR_TMP/bad.ini"
bad "no provider" "[machine a]: provider missing (valid: local, static, modal)"
printf '[machine a]\nprovider = static\naddress = 10.1.2.3:7000\nsecret_file = %s\n' "$secret" >"$TR_TMP/bad.ini"
bad "h2c beyond loopback" "is not on loopback: an agent elsewhere must be reached over TLS"
printf '[machine a]\nprovider = static\naddress = 127.0.0.1:99999\nsecret_file = %s\n' "$secret" >"$TR_TMP/bad.ini"
bad "bad port" "(valid: IPv4:PORT, [IPv6]:PORT or localhost:PORT, port 1..65535)"
printf '[machine a]\nprovider = static\naddress = gpu.example.com:7000\nsecret_file = %s\n' "$secret" >"$TR_TMP/bad.ini"
bad "host name" "is not an IP address"
printf '[machine a]\nprovider = static\naddress = 127.0.0.1:7000\n' >"$TR_TMP/bad.ini"
bad "no secret" "a static machine needs address= and secret_file="
chmod 644 "$wrong"
printf '[machine a]\nprovider = static\naddress = 127.0.0.1:7000\nsecret_file = %s\n' "$wrong" >"$TR_TMP/bad.ini"
bad "secret readable by others" "open to group or others (mode 644); chmod 600 it"
printf '[machine a]\nprovider = static\naddress = 127.0.0.1:7000\nsecret_file = %s\ntls = on\n' "$secret" >"$TR_TMP/bad.ini"
bad "tls without a pin or CA" "tls=on needs one of fingerprint="
printf '[machine a]\nprovider = static\naddress = 127.0.0.1:7000\nsecret_file = %s\ntls = on\nfingerprint = SHA256:abc\n' "$secret" >"$TR_TMP/bad.ini"
bad "short fingerprint" "(valid: SHA256: and 64 hex digits, colons allowed)"
printf '[machine a]\nprovider = static\naddress = 127.0.0.1:7000\nsecret_file = %s\ntls = on\nca = /nonexistent.pem\n' "$secret" >"$TR_TMP/bad.ini"
bad "missing CA file" "ca /nonexistent.pem:"
printf '[machine a]\nprovider = static\naddress = 127.0.0.1:7000\nsecret_file = %s\nfingerprint = SHA256:%064d\n' "$secret" 0 >"$TR_TMP/bad.ini"
bad "a pin without tls" "ca= and fingerprint= need tls=on"
# Sections without keys are no less wrong.
printf '[machine a]\nprovider = local\n[machine b]\n' >"$TR_TMP/bad.ini"
bad "a machine with no keys" "bad.ini:3: [machine b]: a machine with no keys (valid: provider ="
printf '[machine a]\nprovider = local\n\n[bogus]\n; nothing\n' >"$TR_TMP/bad.ini"
bad "an unknown section with no keys" "bad.ini:4: [bogus]: unknown section (valid: [machine NAME])"
# TREMOTE_VISIBLE_DEVICES takes digits as an index and -1 as no devices.
printf '[machine 0]\nprovider = local\n' >"$TR_TMP/bad.ini"
bad "a name of digits" "[machine 0]: a machine name is a letter, then up to 30"
printf '[machine -1]\nprovider = local\n' >"$TR_TMP/bad.ini"
bad "the name -1" "[machine -1]: a machine name is a letter, then up to 30"
printf '[machine a]\nprovider = local\naddress = 127.0.0.1:1\n' >"$TR_TMP/bad.ini"
bad "address on local" "a local machine takes only gpu="
printf '[machine a]\nprovider = local\n[machine a]\nprovider = local\n' >"$TR_TMP/bad.ini"
bad "name twice" "provider given twice"
printf '[machine a b]\nprovider = local\n' >"$TR_TMP/bad.ini"
bad "bad name" "a machine name is a letter, then up to 30 letters"
printf 'provider = local\n' >"$TR_TMP/bad.ini"
bad "key outside a section" "unknown section"
printf '[machine a]\nprovider local\n' >"$TR_TMP/bad.ini"
bad "not INI" "not INI syntax"
bad_missing=$("$BROKER" --socket "$TR_TMP/bad.sock" --machines "$TR_TMP/none.ini" 2>&1); rc=$?
[ "$rc" = 2 ] && case "$bad_missing" in *"none.ini: No such file"*) true ;; *) false ;; esac ||
    tr_fail "a missing machines file: exit $rc, '$bad_missing'"
echo "static_machine: ok"
