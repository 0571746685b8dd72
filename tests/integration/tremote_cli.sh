#!/usr/bin/env bash
# tremote_cli.sh BUILD_DIR: the tremote command.  `run` starts a broker
# when none runs and passes the program's exit status through; `broker
# start|stop|status`; `machine add|ls|rm` with the seed's GPU types;
# `doctor` on a program linked against the shared runtime and on one
# linked statically (nvcc's default), with the rebuild flag; every bad
# input exits non-zero with a line naming what is valid.
set -u
source "$(dirname "$0")/lib.sh"
tr_init "$1"
t=$BUILD/tools/tremote/tremote
export TREMOTE_BROKER_SOCKET=$TR_TMP/s/broker.sock
# Under a sanitizer its runtime is preloaded first; tremote run adds the
# shim after what is preloaded already.
san=
[ "$TR_PRELOAD" != "$SHIM" ] && san=${TR_PRELOAD%:"$SHIM"}
trap '"$t" broker stop >/dev/null 2>&1; tr_cleanup' EXIT

expect() { # expect WHAT EXIT TEXT CMD...: exit status and a line with TEXT
    local what=$1 want=$2 text=$3 out rc
    shift 3
    out=$("$@" 2>&1); rc=$?
    [ "$rc" = "$want" ] && case "$out" in *"$text"*) true ;; *) false ;; esac ||
        tr_fail "$what: exit $rc (want $want), '$out'"
    echo "$what: exit $rc"
}

expect "status, no broker" 3 "no broker runs" "$t" broker status
expect "stop, no broker" 3 "no broker runs" "$t" broker stop
# run starts a broker, and the program's output and status are its own.
out=$(LD_PRELOAD=$san "$t" run -- "$APPS/devices" 2>"$TR_TMP/err") || tr_fail "run: exit $?"
[ "$(echo "$out" | head -1)" = "devices 1" ] || tr_fail "run: '$out'"
grep -q "no broker runs; starting one" "$TR_TMP/err" || tr_fail "run did not say it started a broker"
expect "run passes the exit status" 7 "" env LD_PRELOAD="$san" "$t" run sh -c 'exit 7'
expect "run a program that is not there" 127 "cannot run /nonexistent" env LD_PRELOAD="$san" "$t" run /nonexistent
expect "status" 0 "1 machine(s), 1 ready" "$t" broker status
expect "start again" 1 "a broker already runs (pid" "$t" broker start

out=$("$t" machine add local a100-80gb) || tr_fail "machine add: exit $?"
case "$out" in "local-a10080gb-"????????" 1") ;; *) tr_fail "machine add: '$out'" ;; esac
id=${out% *}
for i in $(seq 100); do
    "$t" machine ls | grep -q "^1 .*$id .*local .*A100-80GB .*ready" && break
    sleep 0.1
done
"$t" machine ls | grep -q "^1 .*$id .*local .*A100-80GB .*ready" || tr_fail "machine ls: $("$t" machine ls)"
out=$(LD_PRELOAD=$san "$t" run "$APPS/devices") || tr_fail "run on 2 machines: exit $?"
[ "$(echo "$out" | head -1)" = "devices 2" ] || tr_fail "the added machine is no device: '$out'"
expect "machine rm" 0 "removed $id (index 1)" "$t" machine rm "$id"
expect "machine rm again" 1 "no machine '$id'" "$t" machine rm "$id"
expect "an unknown GPU type" 1 "unknown GPU type 'A100' (valid: T4, L4, A10G, A100-40GB, A100-80GB, L40S, H100, H200, B200)" "$t" machine add local A100
expect "an unknown provider" 2 "unknown provider 'aws' (valid: local, static, modal)" "$t" machine add aws T4
expect "static without an address" 1 "needs opts.address" "$t" machine add static H100
expect "an unknown option" 2 "unknown option '--port' (valid: --address" "$t" machine add static H100 --port 7
# Without Modal configured: one line saying what is needed; nothing added.
export TREMOTE_MODAL_CONFIG=$TR_TMP/no-modal.ini
unset TREMOTE_MODAL_URL TREMOTE_MODAL_TOKEN_ID TREMOTE_MODAL_TOKEN_SECRET
expect "modal, not configured" 1 "Modal is not configured: url, token_id and token_secret are needed" "$t" machine add modal T4
[ "$("$t" machine ls | grep -c modal)" = 0 ] || tr_fail "a refused modal machine was added"
expect "an unknown command" 2 "unknown command 'fly' (valid: run, machine, broker, modal, doctor, help)" "$t" fly
expect "modal setup, dry run" 0 "dry run: nothing written; the image would be debian:bookworm-slim plus the bundle" "$t" modal setup --dry-run
expect "modal, unknown command" 2 "unknown modal command 'up' (valid: setup)" "$t" modal up
expect "machine without a command" 2 "Usage: tremote machine" "$t" machine

expect "doctor, a shared-runtime program" 0 "uses the shared CUDA runtime" "$t" doctor "$APPS/devices"
expect "doctor, a static-runtime program" 1 "links the CUDA runtime statically (nvcc's default), so tremote cannot carry its calls: rebuild it with 'nvcc -cudart shared'" "$t" doctor "$APPS/devices_static"
expect "doctor, not a program" 1 "is not a 64-bit ELF program" "$t" doctor "$0"

for c in run machine broker doctor; do
    "$t" help $c | grep -q "^Usage: tremote $c" || tr_fail "help $c"
done
bash -n "$TR_SRC/tools/tremote/tremote.bash" || tr_fail "the completion script does not parse"

expect "stop" 0 "stopped" "$t" broker stop
expect "status after stop" 3 "no broker runs" "$t" broker status
expect "doctor without a broker" 1 "no tremote broker answers" "$t" doctor
echo "tremote_cli: ok"
