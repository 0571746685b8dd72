#!/usr/bin/env bash
# isolation.sh BUILD_DIR: sessions in worker processes (tremote-gpu-agent
# --isolation process, the default on the cuda backend; here around the
# emulated device, through TREMOTE_ISOLATION).  Checked:
#   - programs run as before: memory_roundtrip, emu_printf (device printf
#     reaches the program from its worker) and emu_apps' checks of a few;
#   - one worker per connected program, and none left once they end;
#   - a worker killed with -9 fails its own program with a CUDA error
#     (no hang) while a second program on the same machine goes on to
#     the end, and the agent says which worker went; a program making
#     nothing but synchronisations (which the agent answers without the
#     worker) gets the error too;
#   - a program killed with -9 leaves no worker behind.
set -u
source "$(dirname "$0")/lib.sh"
tr_init "$1"
export TREMOTE_ISOLATION=process

tr_start_broker --local 1 --emu-mem 2G
grep -q "sessions run in worker processes of their own" "$TR_TMP/broker.log" ||
    tr_fail "the agent does not isolate sessions in processes"
agent=$(pgrep -P "$BROKER_PID" | head -1) # the LOCAL agent
# workers: the agent's children that serve a session (a spare waits too),
# oldest first (by start time: pids wrap around where pid_max is 32768)
workers() {
    local p
    for p in $(pgrep -P "$agent" -f -- "--worker-fd"); do
        echo "$(awk '{print $22}' "/proc/$p/stat" 2>/dev/null) $p"
    done | sort -n | awk '{print $2}'
}

tr_run "$APPS/memory_roundtrip" || tr_fail "memory_roundtrip in a worker"
grep -q '^PASS' "$TR_TMP/out" || tr_fail "no PASS from memory_roundtrip"
bash "$(dirname "$0")/emu_apps.sh" "$BUILD" emu_printf emu_constant emu_matmul_tiled emu_oob \
    >"$TR_TMP/apps.out" 2>&1 || { cat "$TR_TMP/apps.out"; tr_fail "emu programs in workers"; }
echo "memory_roundtrip, emu_printf, emu_constant, emu_matmul_tiled, emu_oob: PASS in workers"

spare=$(workers | wc -l)
echo "workers with no program: $spare (the spare)"
[ "$spare" -le 1 ] || tr_fail "$spare workers with no program connected"

# Two programs; one's worker is killed.
# wait_workers N: until the agent has N workers (10 s at most).
wait_workers() {
    local i
    for i in $(seq 100); do
        [ "$(workers | wc -l)" -ge "$1" ] && return 0
        sleep 0.1
    done
    return 1
}
LD_PRELOAD="$TR_PRELOAD" "$APPS/client_load" check 6 >"$TR_TMP/a.out" 2>&1 &
pa=$!
wait_workers 2 || tr_fail "no worker for the first program"
before=$(workers)
LD_PRELOAD="$TR_PRELOAD" "$APPS/client_load" check 6 >"$TR_TMP/b.out" 2>&1 &
pb=$!
wait_workers 3 || tr_fail "no worker for the second program"
after=$(workers)
n=$(echo "$after" | wc -l)
echo "workers with two programs: $n (and the spare)"
[ "$n" -ge 3 ] || tr_fail "two programs but $n workers"
# A program takes the spare worker and a new spare starts: before b came,
# a's worker and the spare b then took were there, the spare the newer.
victim=$(echo "$before" | tail -1)
echo "$after" | grep -qx "$victim" || tr_fail "b's worker $victim is not running"
kill -9 "$victim"
t0=$(date +%s)
wait $pb; rb=$?
wait $pa; ra=$?
echo "program a (its worker untouched): exit $ra; program b (worker $victim killed): exit $rb after $(( $(date +%s) - t0 )) s"
grep -q '^ok ' "$TR_TMP/a.out" || { cat "$TR_TMP/a.out"; tr_fail "the other program did not finish"; }
[ "$ra" = 0 ] || tr_fail "the other program failed"
[ "$rb" != 0 ] || { cat "$TR_TMP/b.out"; tr_fail "the program whose worker died did not fail"; }
grep -q "FAIL.*cudaErrorDevicesUnavailable" "$TR_TMP/b.out" ||
    { cat "$TR_TMP/b.out"; tr_fail "no CUDA error in the program whose worker died"; }
grep -q "worker process $victim of a session is gone" "$TR_TMP/broker.log" ||
    tr_fail "the agent did not say which worker went"

# A program that only synchronises hears of its worker's death too: the
# agent answers a synchronise without asking the worker (every call the
# worker answered had finished), but looks for its hang-up first.
for _ in $(seq 100); do
    [ "$(workers | wc -l)" -le 1 ] && break
    sleep 0.1
done
victim=$(workers | tail -1) # the spare, which the program takes
LD_PRELOAD="$TR_PRELOAD" "$APPS/client_load" sync 30 >"$TR_TMP/s.out" 2>&1 &
ps_=$!
wait_workers 2 || tr_fail "no new spare worker once the program came"
sleep 0.5
kill -9 "$victim"
t0=$(date +%s)
wait $ps_; rs=$?
echo "a program making only synchronisations, its worker killed: exit $rs after $(( $(date +%s) - t0 )) s"
[ "$rs" != 0 ] || { cat "$TR_TMP/s.out"; tr_fail "the synchronising program did not fail"; }
grep -q "FAIL cudaDeviceSynchronize.*cudaErrorDevicesUnavailable" "$TR_TMP/s.out" ||
    { cat "$TR_TMP/s.out"; tr_fail "no cudaErrorDevicesUnavailable from cudaDeviceSynchronize"; }

# A program killed mid-run leaves no worker.
LD_PRELOAD="$TR_PRELOAD" "$APPS/client_load" check 30 >"$TR_TMP/c.out" 2>&1 &
pc=$!
sleep 1.5
kill -9 $pc
wait $pc 2>/dev/null
for _ in $(seq 100); do
    [ "$(workers | wc -l)" -le 1 ] && break
    sleep 0.1
done
left=$(workers | wc -l)
echo "workers after the programs ended: $left (the spare)"
[ "$left" -le 1 ] || tr_fail "$left workers left behind"
tr_run "$APPS/memory_roundtrip" || tr_fail "no program after the kills"
grep -q '^PASS' "$TR_TMP/out" || tr_fail "no PASS after the kills"
echo "PASS isolation"
