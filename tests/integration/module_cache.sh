#!/usr/bin/env bash
# module_cache.sh BUILD_DIR: the agent's module cache on disk
# (--cache-dir).  A program's module is uploaded once; after the agent
# restarts, the same program uploads 0 module bytes (the broker's byte
# counters, through --metrics).  A damaged cache file is a miss, never a
# wrong module: it is removed, the module uploaded and written again.
# --cache-max bounds the directory, least recently used out first.
set -u
source "$(dirname "$0")/lib.sh"
tr_init "$1"

secret=$TR_TMP/secret
printf 'cache-test-secret-%s\n' "$RANDOM$RANDOM" >"$secret"
chmod 600 "$secret"
cache=$TR_TMP/modules
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
AGENT_PID=
trap 'kill -9 $AGENT_PID 2>/dev/null; tr_cleanup' EXIT

start_agent() { # start_agent PORT MAX
    local fifo=$TR_TMP/agent-ready
    rm -f "$fifo"; mkfifo "$fifo"
    "$AGENT" --listen "127.0.0.1:$1" --secret-file "$secret" --backend emu \
        --emu-mem 1G --cache-dir "$cache" --cache-max "$2" --ready-fd 3 \
        --log-level debug 3>"$fifo" 2>>"$TR_TMP/agent.log" &
    AGENT_PID=$!
    read -r -t 30 PORT <"$fifo" || tr_fail "the agent did not start"
}
restart_agent() { # restart_agent MAX: same port, same directory
    local n
    kill -9 "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null
    n=$(grep -c 'box: ready' "$TR_TMP/broker.log")
    start_agent "$PORT" "$1"
    for i in $(seq 150); do
        [ "$(grep -c 'box: ready' "$TR_TMP/broker.log")" -gt "$n" ] && return 0
        sleep 0.1
    done
    tr_fail "the broker did not reconnect to the restarted agent"
}
metric() {
    curl -s "http://127.0.0.1:$port/metrics" | awk -v n="$1" '$1 == n {print $2}'
}
files() { ls "$cache" | grep -c '^[0-9a-f]\{32\}$'; }

start_agent 0 1G
printf '[machine box]\nprovider = static\naddress = 127.0.0.1:%s\nsecret_file = %s\n' \
    "$PORT" "$secret" >"$TR_TMP/machines.ini"
tr_start_broker --machines "$TR_TMP/machines.ini" --metrics "127.0.0.1:$port"

tr_run "$APPS/devices" || tr_fail "devices exited with $?"
up=$(metric tremote_module_bytes_uploaded_total)
[ "$up" -gt 0 ] || tr_fail "the first run uploaded nothing"
[ "$(files)" = 1 ] || tr_fail "not one module file in the cache: $(ls "$cache")"
f=$cache/$(ls "$cache")
[ "$(stat -c %a "$cache") $(stat -c %a "$f")" = "700 600" ] ||
    tr_fail "cache modes: $(stat -c %a "$cache") $(stat -c %a "$f")"
echo "first run: $up module bytes uploaded, kept in $(basename "$f")"

restart_agent 1G
tr_run "$APPS/devices" || tr_fail "devices after the restart exited with $?"
[ "$(metric tremote_module_bytes_uploaded_total)" = "$up" ] ||
    tr_fail "after the agent restarted, the same program uploaded module bytes"
[ "$(metric tremote_module_cache_hits_total)" -ge 1 ] || tr_fail "no cache hit after the restart"
grep -q "module cache: [0-9]* bytes read from disk" "$TR_TMP/agent.log" ||
    tr_fail "the agent did not read the module from disk"
echo "after an agent restart: 0 module bytes uploaded"

# Damage the file: a miss, never a wrong module.
printf 'garbage' | dd of="$f" bs=1 seek=100 conv=notrunc status=none
restart_agent 1G
tr_run "$APPS/devices" || tr_fail "devices with a damaged cache file exited with $?"
grep -q '^device 0:' "$TR_TMP/out" || tr_fail "devices printed no device"
grep -q "does not hold what its name says; removed" "$TR_TMP/agent.log" ||
    tr_fail "the damaged file was not noticed"
[ "$(metric tremote_module_bytes_uploaded_total)" -gt "$up" ] || tr_fail "the module was not uploaded again"
[ "$(files)" = 1 ] || tr_fail "the module was not written again"
echo "a damaged file: noticed, removed, uploaded and written again"

# A cap smaller than two modules keeps only the newest.
restart_agent 1
for app in graphs streams_events devices; do
    tr_run "$APPS/$app" || tr_fail "$app exited with $?"
done
[ "$(files)" = 1 ] || tr_fail "--cache-max 1: $(files) files kept"
tr_stop_broker
echo "module_cache: ok"
