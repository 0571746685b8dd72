#!/usr/bin/env bash
# other_user.sh BUILD_DIR: who may use a broker.  A program run as another
# local user (nobody, through setpriv) against a root broker is refused,
# with a line that says why, whether the socket's permissions stop it (the
# default: directory 0700) or the broker itself does (SO_PEERCRED, once the
# permissions are opened by hand); with --group nogroup, a member of that
# group gets a session and a working device while a non-member is still
# refused.  Needs root to switch users: skipped (77) otherwise.
set -u
source "$(dirname "$0")/lib.sh"
tr_init "$1"
if [ "$(id -u)" != 0 ] || ! command -v setpriv >/dev/null; then
    echo "SKIP: needs root and setpriv to run a program as another user"
    exit 77
fi

# What the other user runs must be reachable by it: copies in a
# world-readable directory (the build tree may sit under /root).
chmod 711 "$TR_TMP"
bin=$TR_TMP/bin
mkdir -m 755 "$bin"
cp "$SHIM" "$APPS/devices" "$bin/"
chmod 755 "$bin"/*
export TREMOTE_BROKER_SOCKET=$TR_TMP/s/broker.sock
preload=${TR_PRELOAD/"$SHIM"/"$bin/libtremote_shim.so"} # sanitizers first

as() { # as USER GROUP: run the devices program as them
    setpriv --reuid="$1" --regid="$2" --clear-groups \
        env LD_PRELOAD="$preload" \
        TREMOTE_BROKER_SOCKET="$TREMOTE_BROKER_SOCKET" "$bin/devices" \
        >"$TR_TMP/out" 2>&1
}
expect() { # expect WHAT DEVICES TEXT
    grep -q "^devices $2\$" "$TR_TMP/out" || tr_fail "$1: not 'devices $2'"
    [ -z "$3" ] || grep -q "$3" "$TR_TMP/out" || tr_fail "$1: no line saying '$3'"
    echo "$1: devices $2"
}

tr_start_broker --local 1 --emu-mem 1G
[ "$(stat -c %a "$TR_TMP/s")" = 700 ] || tr_fail "the socket directory is not 0700"
as nobody nogroup || tr_fail "devices as nobody exited with $?"
expect "another user, socket directory 0700" 0 "not open to this user"
chmod 755 "$TR_TMP/s"
chmod 666 "$TREMOTE_BROKER_SOCKET"
as nobody nogroup || tr_fail "devices as nobody exited with $?"
expect "another user, permissions opened" 0 "this broker admits only uid 0; uid 65534 is not admitted"
grep -q "rejecting client pid .*: uid 65534" "$TR_TMP/broker.log" ||
    tr_fail "the broker did not log the refusal"
tr_stop_broker

rm -rf "$TR_TMP/s"
tr_start_broker --local 1 --emu-mem 1G --group nogroup
[ "$(stat -c '%a %G' "$TR_TMP/s")" = "750 nogroup" ] ||
    tr_fail "--group: the socket directory is $(stat -c '%a %G' "$TR_TMP/s")"
as nobody nogroup || tr_fail "devices as a member of --group exited with $?"
expect "a member of --group" 1 ""
grep -q "client pid .* (uid 65534) connected" "$TR_TMP/broker.log" ||
    tr_fail "no session for uid 65534"
as daemon daemon || tr_fail "devices as daemon exited with $?"
expect "not a member of --group" 0 "not open to this user"
chmod 755 "$TR_TMP/s"
chmod 666 "$TREMOTE_BROKER_SOCKET"
as daemon daemon || tr_fail "devices as daemon exited with $?"
expect "not a member, permissions opened" 0 "admits only uid 0 and its group"
tr_stop_broker
echo "other_user: ok"
