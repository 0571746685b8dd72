#!/usr/bin/env bash
# broker_cli.sh BUILD_DIR: tremote-broker's command line and socket
# handling, without agents (--local 0) except where an agent is looked for.
#
#   --help / --version / bad options and their exit codes (0, 2)
#   agent binary not found: exit 4, the places searched are named
#   ready on --ready-fd; SIGTERM: exit 0, socket files removed
#   a second broker on the same socket: exit 3
#   a stale socket file (broker killed -9) is replaced
#   a non-socket file at the socket path: exit 1
#   the default socket directory is created 0700
#   the control socket answers stats and errors
#   LOCAL machines whose agent fails to start (exits, never reports a port,
#   reports garbage, speaks another protocol version, refuses the secret,
#   answers garbage) end up "failed" with the reason, the broker still
#   becomes ready, HELLO counts only ready machines, and only curable
#   failures are retried
#   io_uring refused (a seccomp filter, tests/tools/no_uring): exit 1 with
#   one line naming the cause and the fix, and no socket file created
set -u
build=${1:?usage: broker_cli.sh BUILD_DIR}
broker=$build/broker/tremote-broker
fake=$build/tests/test_broker_fakeagent
no_uring=$build/tests/tools/no_uring
[ -x "$broker" ] || { echo "no broker at $broker"; exit 1; }

tmp=$(mktemp -d /tmp/tr-brk-cli-XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT

pass=0 fail=0
ok()   { echo "ok   $*"; pass=$((pass + 1)); }
bad()  { echo "FAIL $*"; fail=$((fail + 1)); }
check() { # description, then a command that must succeed
    local what=$1; shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}
absent() { ! grep -q "$@"; }

# Run the broker in the background with --ready-fd; wait for "ready".
# Sets $bpid.  Usage: start LOGFILE ARGS...
start() {
    local log=$1; shift
    local fifo=$tmp/ready.$RANDOM
    mkfifo "$fifo"
    "$broker" --ready-fd 9 "$@" 9>"$fifo" 2>"$log" &
    bpid=$!
    pids+=("$bpid")
    local line=""
    read -r -t 20 line <"$fifo" || true
    rm -f "$fifo"
    [ "$line" = ready ]
}

# stats over the control socket, with python3 (AF_UNIX stream).
ctl() { # path, request
    python3 - "$1" "$2" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
out = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    out += b
sys.stdout.write(out.decode())
PY
}

# -- help, version, usage errors --
out=$("$broker" --help); rc=$?
check "--help exits 0" [ $rc = 0 ]
check "--help documents the exit status" grep -q "Exit status" <<<"$out"
check "--help documents --ready-fd" grep -q -- "--ready-fd" <<<"$out"
"$broker" --version >/dev/null; check "--version exits 0" [ $? = 0 ]
"$broker" --bogus 2>/dev/null; check "unknown option exits 2" [ $? = 2 ]
"$broker" --local 99 2>/dev/null; check "--local 99 exits 2" [ $? = 2 ]
"$broker" --backend gpu 2>/dev/null; check "--backend gpu exits 2" [ $? = 2 ]
"$broker" --emu-mem lots 2>/dev/null; check "--emu-mem lots exits 2" [ $? = 2 ]
"$broker" --ready-fd 99 2>/dev/null; check "--ready-fd of a closed fd exits 2" [ $? = 2 ]
"$broker" extra 2>/dev/null; check "a stray argument exits 2" [ $? = 2 ]

# -- agent not found --
err=$(env -u TREMOTE_AGENT PATH=/nonexistent "$broker" --socket "$tmp/x.sock" \
      --agent "$tmp/no-such-agent" 2>&1); rc=$?
check "missing --agent exits 4" [ $rc = 4 ]
check "missing agent names the place searched" grep -q "no-such-agent" <<<"$err"
mkdir -p "$tmp/bin"
cp "$broker" "$tmp/bin/tremote-broker"
err=$(env -u TREMOTE_AGENT PATH=/nonexistent "$tmp/bin/tremote-broker" \
      --socket "$tmp/y.sock" 2>&1); rc=$?
check "no agent anywhere exits 4" [ $rc = 4 ]
check "the search list names the directory of the broker" \
      grep -q "$tmp/bin/tremote-gpu-agent" <<<"$err"
check "the search list names \$PATH" grep -q "PATH" <<<"$err"

# -- start, second broker, stop --
sock=$tmp/run/deep/broker.sock
check "broker with --local 0 becomes ready" start "$tmp/b1.log" --local 0 --socket "$sock"
check "socket directory is created 0700" [ "$(stat -c %a "$tmp/run/deep")" = 700 ]
check "control socket next to the client socket" [ -S "$tmp/run/deep/control.sock" ]
"$broker" --local 0 --socket "$sock" 2>"$tmp/b2.log"; rc=$?
check "a second broker on the same socket exits 3" [ $rc = 3 ]
check "and says why" grep -q "already listening" "$tmp/b2.log"
out=$(ctl "$tmp/run/deep/control.sock" '{"version":1,"op":"stats"}')
check "stats answers" grep -q '^{"version":1,"sessions":\[\],"machines":\[\]}$' <<<"$out"
out=$(ctl "$tmp/run/deep/control.sock" '{"version":1,"op":"x\"y"}')
check "unknown op is an error naming the valid ones" \
      grep -qF '{"version":1,"error":"unknown op '"'"'x\"y'"'"' (valid: stats, machines, sessions, broker, add, remove, reload)"}' <<<"$out"
out=$(ctl "$tmp/run/deep/control.sock" '{"version":2,"op":"stats"}')
check "unsupported version is an error" grep -q '"error":"unsupported version 2' <<<"$out"
# Another user is turned away even if the file mode would let it in.
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
    chmod 755 "$tmp" "$tmp/run" "$tmp/run/deep"
    chmod 777 "$sock"
    out=$(python3 - "$sock" <<'PY'
import os, socket, sys
os.setgid(65534); os.setuid(65534)
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.settimeout(10)
s.connect(sys.argv[1])
try:
    print("eof" if s.recv(100) == b"" else "data")
except ConnectionResetError:
    print("eof")
PY
)
    check "a silent client of another uid is disconnected" [ "$out" = eof ]
    check "and logged" grep -q "rejecting client pid .*: uid 65534" "$tmp/b1.log"
    chmod 700 "$tmp"
else
    echo "skip other-uid check: not root"
fi
kill -TERM "$bpid"; wait "$bpid"; rc=$?
check "SIGTERM exits 0" [ $rc = 0 ]
check "socket files are removed" [ ! -e "$sock" ] && [ ! -e "$tmp/run/deep/control.sock" ]

# -- stale socket --
check "broker starts again" start "$tmp/b3.log" --local 0 --socket "$sock"
kill -9 "$bpid"; wait "$bpid" 2>/dev/null
check "a killed broker leaves its socket" [ -S "$sock" ]
check "a new broker replaces the stale socket" start "$tmp/b4.log" --local 0 --socket "$sock"
check "and says so" grep -q "removed stale socket" "$tmp/b4.log"
kill -INT "$bpid"; wait "$bpid"; rc=$?
check "SIGINT exits 0" [ $rc = 0 ]

# -- a file that is not a socket --
echo hello >"$tmp/file.sock"
"$broker" --local 0 --socket "$tmp/file.sock" 2>"$tmp/b5.log"; rc=$?
check "a regular file at the socket path exits 1" [ $rc = 1 ]
check "and is left alone" grep -q hello "$tmp/file.sock"

# -- TREMOTE_BROKER_SOCKET and XDG_RUNTIME_DIR --
TREMOTE_BROKER_SOCKET=$tmp/env.sock start "$tmp/b6.log" --local 0
check "TREMOTE_BROKER_SOCKET is honoured" [ -S "$tmp/env.sock" ]
kill "$bpid"; wait "$bpid"
mkdir -p "$tmp/xdg"
( unset TREMOTE_BROKER_SOCKET; XDG_RUNTIME_DIR=$tmp/xdg start "$tmp/b7.log" --local 0 &&
  [ -S "$tmp/xdg/tremote/broker.sock" ] && kill "$bpid" && wait "$bpid" )
check "XDG_RUNTIME_DIR/tremote is the default directory" [ $? = 0 ]

# -- machines that fail to start --
# hello SOCK: HELLO as a shim; prints the number of devices.
hello() {
    python3 - "$1" <<'PY'
import os, socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.settimeout(20)
s.connect(sys.argv[1])
V = 2  # the protocol version (include/tremote/proto.h)
hello = struct.pack("<HHIQII", V, V, 1, 3, os.getpid(), 0)
hdr = struct.pack("<IHHHHIQII", 0x314d5254, V, 1, 2, 0, 0, 7, len(hello), 0)
s.send(hdr + hello)
r = s.recv(65536)
magic, ver, op, flags, dev, status, rid, plen, aux = struct.unpack("<IHHHHIQII", r[:32])
assert magic == 0x314d5254 and op == 1 and flags & 1 and rid == 7, r[:32]
assert status == 0, hex(status)
print(struct.unpack("<I", r[32 + 24:32 + 28])[0])
PY
}
# machine_field NAME: the value of "NAME":"..." of machine 0.
machine_field() {
    ctl "$msock/control.sock" '{"version":1,"op":"stats"}' |
        python3 -c 'import json,sys; m=json.load(sys.stdin)["machines"][0]; print("|".join(str(m.get(f, "")) for f in sys.argv[1:]))' "$@"
}
mkdir -p "$tmp/agents"
cat >"$tmp/agents/exits" <<'SH'
#!/bin/sh
echo "fake agent: cannot start" >&2
exit 1
SH
cat >"$tmp/agents/silent" <<'SH'
#!/bin/sh
exec sleep 100
SH
cat >"$tmp/agents/noport" <<'SH'
#!/bin/sh
echo "listening somewhere" >&4
exec sleep 100
SH
chmod +x "$tmp/agents"/*
# failing_machine NAME AGENT EXPECTED-ERROR RETRIED [broker args...]
failing_machine() {
    local name=$1 agent=$2 want=$3 retried=$4; shift 4
    msock=$tmp/m-$name
    mkdir -p "$msock"
    if ! start "$tmp/m-$name.log" --local 1 --agent "$agent" --socket "$msock/broker.sock" "$@"; then
        bad "$name: broker becomes ready"; cat "$tmp/m-$name.log"; return
    fi
    ok "$name: broker becomes ready"
    # One snapshot: a retry may start between two (and clear the error).
    local snap err; snap=$(machine_field state error)
    err=${snap#*|}
    check "$name: machine state is failed" [ "${snap%%|*}" = failed ]
    check "$name: stats give the reason ($err)" grep -q -- "$want" <<<"$err"
    check "$name: HELLO sees no device" [ "$(hello "$msock/broker.sock")" = 0 ]
    sleep 1.3
    if [ "$retried" = yes ]; then
        check "$name: the start is retried" grep -q "restarting the agent" "$tmp/m-$name.log"
    else
        check "$name: the start is not retried" absent "restarting the agent" "$tmp/m-$name.log"
    fi
    kill -TERM "$bpid"; wait "$bpid"
    check "$name: SIGTERM exits 0" [ $? = 0 ]
}
failing_machine exits "$tmp/agents/exits" "before reporting a port\\|died during start-up" yes
failing_machine silent "$tmp/agents/silent" "did not become ready in 1000 ms" yes --start-timeout 1
failing_machine noport "$tmp/agents/noport" "cannot find a port" yes
if [ -x "$fake" ]; then
    FAKE_AGENT_MODE=version failing_machine version "$fake" "fake agent speaks versions 7..9" no
    check "version: the mismatch is logged" grep -q "protocol version mismatch" "$tmp/m-version.log"
    FAKE_AGENT_MODE=401 failing_machine 401 "$fake" "refused the secret" no
    FAKE_AGENT_MODE=garbage failing_machine garbage "$fake" "malformed /v1/hello reply" yes
    msock=$tmp/m-ok; mkdir -p "$msock"
    FAKE_AGENT_MODE=ok start "$tmp/m-ok.log" --local 1 --agent "$fake" --socket "$msock/broker.sock"
    check "a working agent makes a ready machine" [ "$(machine_field state)" = ready ]
    check "named as the agent says" [ "$(machine_field device)" = "Fake Device" ]
    check "HELLO sees it" [ "$(hello "$msock/broker.sock")" = 1 ]
    kill -TERM "$bpid"; wait "$bpid"
else
    echo "skip fake-agent cases: no $fake"
fi

# -- io_uring refused --
uring_refused() { # errno, what the line must say
    local e=$1 want=$2 err rc
    err=$("$no_uring" "$e" "$broker" --local 0 --socket "$tmp/u$e/b.sock" 2>&1)
    rc=$?
    check "io_uring refused ($e): exits 1" [ $rc = 1 ]
    check "io_uring refused ($e): one line" [ "$(wc -l <<<"$err")" = 1 ]
    check "io_uring refused ($e): says '$want'" grep -q -- "$want" <<<"$err"
    check "io_uring refused ($e): no socket directory made" [ ! -e "$tmp/u$e" ]
}
if [ -x "$no_uring" ] && "$no_uring" 1 true 2>/dev/null; then
    uring_refused 1 "kernel.io_uring_disabled=0"   # EPERM: seccomp, sysctl
    uring_refused 1 "seccomp profile"
    uring_refused 38 "Linux 5.10 or newer"         # ENOSYS: no io_uring
    uring_refused 12 "LimitMEMLOCK="               # ENOMEM: memlock
else
    echo "skip io_uring refusal cases: no working $no_uring"
fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ] && [ "$pass" -gt 0 ]
