#!/usr/bin/env bash
# tls_machine.sh BUILD_DIR: a STATIC machine over TLS.  The agent makes its
# own certificate (--gen-cert) and serves TLS (ALPN h2) on 127.0.0.1; the
# broker pins the printed fingerprint, or verifies by the certificate as
# CA; a program runs on it (64 MiB round trips through TLS included), and
# lane_move on both its connections (the express one has its own handshake).
# Refused, each before any CUDA call: a wrong pinned fingerprint, a CA
# that did not sign it, h2c to the TLS agent, a wrong secret, a request
# without a secret, and an agent asked to listen beyond loopback without
# TLS.
set -u
source "$(dirname "$0")/lib.sh"
tr_init "$1"

secret=$TR_TMP/secret
printf 'tls-test-secret-%s\n' "$RANDOM$RANDOM" >"$secret"
chmod 600 "$secret"
mkdir "$TR_TMP/cert" "$TR_TMP/other"
gen=$("$AGENT" --gen-cert "$TR_TMP/cert") || tr_fail "--gen-cert failed: $gen"
fp=$(echo "$gen" | awk 'NR == 1 {print $2}')
case "$fp" in SHA256:????????????????????????????????????????????????????????????????) ;;
*) tr_fail "--gen-cert printed no fingerprint: $gen" ;; esac
[ "$(stat -c %a "$TR_TMP/cert/key.pem")" = 600 ] || tr_fail "key.pem is not mode 600"
"$AGENT" --gen-cert "$TR_TMP/cert" >/dev/null 2>&1 && tr_fail "--gen-cert overwrote a key"
other=$("$AGENT" --gen-cert "$TR_TMP/other" | awk 'NR == 1 {print $2}')
# openssl agrees on the fingerprint
want=$(openssl x509 -in "$TR_TMP/cert/cert.pem" -noout -fingerprint -sha256 |
       sed 's/.*=//; s/://g' | tr A-F a-f)
[ "$fp" = "SHA256:$want" ] || tr_fail "fingerprint $fp, openssl says $want"
echo "--gen-cert: $fp"

"$AGENT" --listen 0.0.0.0:0 --secret-file "$secret" >"$TR_TMP/wide.log" 2>&1 &&
    tr_fail "the agent served h2c beyond loopback"
grep -q "only a loopback address may be served without TLS" "$TR_TMP/wide.log" ||
    tr_fail "no reason given for refusing h2c beyond loopback: $(cat "$TR_TMP/wide.log")"
echo "h2c beyond loopback: refused"

fifo=$TR_TMP/agent-ready
mkfifo "$fifo"
"$AGENT" --listen 127.0.0.1:0 --secret-file "$secret" --backend emu \
    --emu-mem 1G --emu-name "tls device" --tls-cert "$TR_TMP/cert/cert.pem" \
    --tls-key "$TR_TMP/cert/key.pem" --ready-fd 3 3>"$fifo" 2>"$TR_TMP/agent.log" &
AGENT_PID=$!
trap 'kill -9 $AGENT_PID 2>/dev/null; tr_cleanup' EXIT
read -r -t 30 PORT <"$fifo" || tr_fail "the TLS agent did not start: $(cat "$TR_TMP/agent.log")"
grep -q "fingerprint $fp" "$TR_TMP/agent.log" || tr_fail "the agent did not log its fingerprint"

machines() { # machines FILE KEY=VALUE...: one static machine "tbox"
    local f=$1
    shift
    { echo "[machine tbox]"; echo "provider = static"
      echo "address = 127.0.0.1:$PORT"; echo "secret_file = ${SECRET:-$secret}"
      for kv in "$@"; do echo "$kv"; done; } >"$f"
}

# Pinned fingerprint (with colons and upper case, as openssl prints it).
colons=$(openssl x509 -in "$TR_TMP/cert/cert.pem" -noout -fingerprint -sha256 | sed 's/.*=//')
machines "$TR_TMP/pin.ini" "tls = on" "fingerprint = SHA256:$colons"
tr_start_broker --machines "$TR_TMP/pin.ini"
tr_run "$APPS/devices" || tr_fail "devices over TLS exited with $?"
[ "$(cat "$TR_TMP/out")" = "devices 1
device 0: tls device" ] || tr_fail "devices over TLS: not the TLS agent"
tr_run "$APPS/memory_roundtrip" 1 "tls device" || tr_fail "memory_roundtrip over TLS exited with $?"
grep -q '^PASS$' "$TR_TMP/out" || tr_fail "no PASS line over TLS"
# The express connection (docs/PROTOCOL.md §3) makes its own handshake:
# lanes open on it and move to the main connection before a copy, each
# connection TLS, with order and a queued error kept across the move.
tr_run "$APPS/lane_move" || tr_fail "lane_move over TLS exited with $?"
grep -q "^PASS" "$TR_TMP/out" || tr_fail "lane_move over TLS printed no PASS"
read -r on lanes moves <<<"$(tr_ctl '{"version":1,"op":"machines"}' | python3 -c '
import json, sys
m = json.load(sys.stdin)["machines"][0]
print(str(m["express"]).lower(), m["express_lanes"], m["lane_moves"])')"
echo "express connection over TLS: $on; lanes opened on it: $lanes; moved: $moves"
[ "$on" = true ] || tr_fail "no express connection to the TLS machine: $(grep express "$TR_TMP/broker.log")"
[ "$lanes" -ge 4 ] && [ "$moves" -ge 4 ] ||
    tr_fail "expected >= 4 express lanes and moves over TLS, got $lanes and $moves"
tr_stop_broker
echo "pinned fingerprint: programs run over TLS, on both connections"

# An express connection whose handshake stalls (the relay passes one byte
# of the second connection and no more) is given up at its deadline; the
# lanes share the main connection and the program runs.
rfifo=$TR_TMP/relay-ready
mkfifo "$rfifo"
"$BUILD/tests/tools/tr_relay" --listen 127.0.0.1:0 --to "127.0.0.1:$PORT" \
    --stall-after 1 --fault-conn 2 --ready-fd 3 3>"$rfifo" 2>"$TR_TMP/relay.log" &
RELAY_PID=$!
trap 'kill -9 $AGENT_PID $RELAY_PID 2>/dev/null; tr_cleanup' EXIT
read -r -t 10 RPORT <"$rfifo" || tr_fail "the relay did not start: $(cat "$TR_TMP/relay.log")"
{ echo "[machine tbox]"; echo "provider = static"; echo "address = 127.0.0.1:$RPORT"
  echo "secret_file = $secret"; echo "tls = on"; echo "fingerprint = $fp"; } >"$TR_TMP/stall.ini"
tr_start_broker --machines "$TR_TMP/stall.ini"
for _ in $(seq 150); do
    grep -q "tbox: no express connection" "$TR_TMP/broker.log" && break
    sleep 0.1
done
grep "tbox: no express connection" "$TR_TMP/broker.log" | grep -q "no answer within 5 s" ||
    tr_fail "a stalled express handshake was not given up at its deadline: $(grep express "$TR_TMP/broker.log")"
tr_run "$APPS/lane_move" || tr_fail "lane_move beside a stalled express connection exited with $?"
grep -q "^PASS" "$TR_TMP/out" || tr_fail "lane_move beside a stalled express connection printed no PASS"
tr_stop_broker
kill $RELAY_PID 2>/dev/null
echo "stalled express handshake: given up at its deadline, lanes share the main connection"

# Verified by a CA (the self-signed certificate is its own) and the address.
machines "$TR_TMP/ca.ini" "tls = on" "ca = $TR_TMP/cert/cert.pem"
tr_start_broker --machines "$TR_TMP/ca.ini"
tr_run "$APPS/memory_roundtrip" 1 "tls device" || tr_fail "memory_roundtrip (CA) exited with $?"
grep -q '^PASS$' "$TR_TMP/out" || tr_fail "no PASS line (CA)"
tr_stop_broker
echo "CA: a program runs over TLS"

refused() { # refused NAME INI EXPECTED-LOG: the machine fails, no device
    tr_start_broker --machines "$2"
    grep -q "tbox: start failed: .*$3" "$TR_TMP/broker.log" ||
        tr_fail "$1: the broker log does not say '$3'"
    tr_run "$APPS/devices" || tr_fail "devices ($1) exited with $?"
    grep -q '^devices 0$' "$TR_TMP/out" || tr_fail "$1: a device was offered"
    tr_stop_broker
    echo "refused: $1"
}
machines "$TR_TMP/badpin.ini" "tls = on" "fingerprint = $other"
refused "another certificate pinned" "$TR_TMP/badpin.ini" "not the pinned $other"
machines "$TR_TMP/badca.ini" "tls = on" "ca = $TR_TMP/other/cert.pem"
refused "a CA that did not sign it" "$TR_TMP/badca.ini" "did not verify against ca"
machines "$TR_TMP/h2c.ini"
refused "h2c to a TLS agent" "$TR_TMP/h2c.ini" "."
grep -q "TLS handshake failed" "$TR_TMP/agent.log" ||
    tr_fail "the agent did not refuse the h2c connection at the handshake"
echo "nothing-but-a-secret" >"$TR_TMP/wrong"
chmod 600 "$TR_TMP/wrong"
SECRET=$TR_TMP/wrong machines "$TR_TMP/wrong.ini" "tls = on" "fingerprint = $fp"
refused "a wrong secret" "$TR_TMP/wrong.ini" "refused the secret"

# A request without a secret, from an HTTP/2 client of its own.
code=$(curl -sk --http2 -X POST -o /dev/null -w '%{http_code}' \
       "https://127.0.0.1:$PORT/v1/hello") || tr_fail "curl failed"
[ "$code" = 401 ] || tr_fail "a request without a secret got HTTP $code, want 401"
echo "no secret: 401"
kill -0 $AGENT_PID || tr_fail "the agent died"
echo "tls_machine: ok"
