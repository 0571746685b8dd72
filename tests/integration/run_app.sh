#!/usr/bin/env bash
# run_app.sh BUILD_DIR APP [ARGS...]: run one self-checking program of
# tests/apps under the shim against the real broker and a LOCAL emulated
# agent; it must exit 0 and print a line starting with PASS.  With
# TREMOTE_AGENT_SPIN_US set, the agent must have said it polls that long.
set -u
source "$(dirname "$0")/lib.sh"
tr_init "$1"
app=$2
shift 2
tr_start_broker --local 1 --emu-mem 1G
tr_run "$APPS/$app" "$@" || tr_fail "$app exited with $?"
cat "$TR_TMP/out"
grep -q "^PASS" "$TR_TMP/out" || tr_fail "$app printed no PASS line"
if [ -n "${TREMOTE_AGENT_SPIN_US:-}" ]; then
    grep -q "execution threads; polling $TREMOTE_AGENT_SPIN_US us" "$TR_TMP/broker.log" ||
        tr_fail "the agent did not take TREMOTE_AGENT_SPIN_US=$TREMOTE_AGENT_SPIN_US"
fi
tr_stop_broker
[ "$BROKER_STATUS" = 0 ] || tr_fail "broker exited with $BROKER_STATUS on SIGTERM"
echo "$app: ok"
