#!/usr/bin/env bash
# socket_dir.sh BUILD_DIR: the broker's directory is its own.  Without
# XDG_RUNTIME_DIR the default socket directory is /tmp/tremote-$UID, which
# another user can make first; so the broker refuses a socket directory
# that is a symbolic link, belongs to another uid or that group or others
# may write (one line, exit 1, nothing created), never writes its state
# file through a link planted in its place, and a program refuses a broker
# of another uid on the default socket path (the one TREMOTE_BROKER_SOCKET
# does not name).  The parts with another uid need root and are skipped
# otherwise (the rest runs as any user).
set -u
source "$(dirname "$0")/lib.sh"
tr_init "$1"

# refused WHAT DIR TEXT: a broker on DIR/broker.sock exits 1 with TEXT.
refused() {
    local rc
    # (a broker that takes the directory runs until the timeout: 124)
    timeout 5 "$BROKER" --local 0 --socket "$2/broker.sock" >"$TR_TMP/out" 2>&1; rc=$?
    [ $rc = 1 ] || tr_fail "$1: the broker exited $rc, not 1"
    grep -q "$3" "$TR_TMP/out" || tr_fail "$1: no line saying '$3'"
    [ "$(wc -l <"$TR_TMP/out")" = 1 ] || tr_fail "$1: more than one line"
    [ ! -e "$2/broker.sock" ] && [ ! -e "$2/control.sock" ] ||
        tr_fail "$1: the broker left a socket in $2"
    echo "$1: refused"
}

mkdir -m 0777 "$TR_TMP/open"
chmod 0777 "$TR_TMP/open"
refused "a directory others may write" "$TR_TMP/open" \
    "has mode 0777: other users could replace.*chmod 0700"
mkdir -m 0770 "$TR_TMP/grp"
refused "a directory its group may write" "$TR_TMP/grp" "has mode 0770"
mkdir -m 0700 "$TR_TMP/real"
ln -s "$TR_TMP/real" "$TR_TMP/link"
refused "a symbolic link" "$TR_TMP/link" "is a symbolic link"

# A link planted where the state file is written first.
echo "precious" >"$TR_TMP/precious"
ln -s "$TR_TMP/precious" "$TR_TMP/machines.state.tmp"
echo secret >"$TR_TMP/secret" && chmod 600 "$TR_TMP/secret"
tr_start_broker --local 0
out=$(tr_ctl '{"version":1,"op":"add","name":"x","provider":"static","address":"127.0.0.1:1","secret_file":"'"$TR_TMP/secret"'"}')
grep -q '"index":0' <<<"$out" || tr_fail "add: $out"
[ "$(cat "$TR_TMP/precious")" = precious ] ||
    tr_fail "the broker wrote through machines.state.tmp into $(cat "$TR_TMP/precious")"
[ ! -L "$TR_TMP/machines.state.tmp" ] && grep -q '^\[machine x\]$' "$TR_TMP/machines.state" ||
    tr_fail "the state file was not written in its place"
echo "a link at machines.state.tmp: not followed, state written"
tr_stop_broker

if [ "$(id -u)" != 0 ] || ! command -v setpriv >/dev/null; then
    echo "skip: the checks with another uid need root and setpriv"
    exit 0
fi
mkdir -m 0700 "$TR_TMP/theirs"
chown nobody:nogroup "$TR_TMP/theirs"
refused "a directory of another user" "$TR_TMP/theirs" \
    "belongs to uid 65534, not to this user (uid 0)"

# A broker of uid 65534 (nobody) on daemon's default socket, open to
# daemon's group: daemon's program, with neither TREMOTE_BROKER_SOCKET nor
# XDG_RUNTIME_DIR, must not use it.
dsock=/tmp/tremote-$(id -u daemon)
if [ -e "$dsock" ]; then
    echo "skip: $dsock exists on this host"
    exit 0
fi
chmod 711 "$TR_TMP"
bin=$TR_TMP/bin
mkdir -m 755 "$bin"
cp "$SHIM" "$BROKER" "$APPS/devices" "$bin/"
chmod 755 "$bin"/*
preload=${TR_PRELOAD/"$SHIM"/"$bin/libtremote_shim.so"}
setpriv --reuid=nobody --regid=nogroup --groups="$(id -g daemon)" \
    "$bin/tremote-broker" --local 0 --socket "$dsock/broker.sock" \
    --group "$(id -gn daemon)" 2>"$TR_TMP/broker.log" &
BROKER_PID=$!
for _ in $(seq 100); do [ -S "$dsock/control.sock" ] && break; sleep 0.1; done
[ -S "$dsock/broker.sock" ] || { rm -rf "$dsock"; tr_fail "nobody's broker did not start"; }
setpriv --reuid=daemon --regid=daemon --clear-groups \
    env -u TREMOTE_BROKER_SOCKET -u XDG_RUNTIME_DIR LD_PRELOAD="$preload" \
    "$bin/devices" >"$TR_TMP/out" 2>&1
tr_stop_broker
rm -rf "$dsock"
grep -q "^devices 0$" "$TR_TMP/out" || tr_fail "daemon's program: not 'devices 0'"
grep -q "served by uid 65534, not by this user (uid $(id -u daemon)) or root" \
    "$TR_TMP/out" || tr_fail "daemon's program used a broker of uid 65534"
grep -q "client pid .* connected" "$TR_TMP/broker.log" &&
    tr_fail "the program got a session at nobody's broker"
echo "a broker of another uid on the default socket: not used"
echo "PASS"
