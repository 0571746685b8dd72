#!/usr/bin/env bash
# run_app.sh BUILD_DIR APP [ARGS...]: run one self-checking program of
# tests/apps under the shim against the real broker and a LOCAL emulated
# agent; it must exit 0 and print a line starting with PASS.
set -u
source "$(dirname "$0")/lib.sh"
tr_init "$1"
app=$2
shift 2
tr_start_broker --local 1 --emu-mem 1G
tr_run "$APPS/$app" "$@" || tr_fail "$app exited with $?"
cat "$TR_TMP/out"
grep -q "^PASS" "$TR_TMP/out" || tr_fail "$app printed no PASS line"
tr_stop_broker
[ "$BROKER_STATUS" = 0 ] || tr_fail "broker exited with $BROKER_STATUS on SIGTERM"
echo "$app: ok"
