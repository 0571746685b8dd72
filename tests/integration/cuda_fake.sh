#!/usr/bin/env bash
# cuda_fake.sh BUILD_DIR FAKE_DIR: the agent's cuda backend on the whole
# path, without a GPU.  FAKE_DIR holds the test stand-ins of the NVIDIA
# driver (libcuda.so.1, tests/unit/fake_libcuda.c: device memory is host
# memory at the window's addresses, no kernels) and of NVML
# (libnvidia-ml.so.1, tests/unit/fake_nvml.c).  Checked:
#   - a broker's LOCAL agent with --backend cuda comes up on the "driver"
#     and says so;
#   - unmodified programs under the shim pass through the cuda backend's
#     memory path on two such machines: memory_roundtrip (copies,
#     memsets, 8 threads; its kernel part is left to a GPU), pinned_copies
#     (page-locked memory) and rand_fill (libtremote's Philox numbers made
#     on the machine: the same bytes as the host's reference, per device);
#   - a worker's reply that comes after driver output (a kernel's printf,
#     which the driver writes at any synchronising call) does not end
#     the session;
#   - tremote-smi shows NVML's figures of the GPU whose UUID is the CUDA
#     device's (not NVML's first GPU) and the PCI address from the
#     driver's attributes; an agent without NVML shows [N/A] and says why;
#   - a GPU in EXCLUSIVE_PROCESS compute mode keeps sessions in the agent
#     process, and refuses --isolation process with the reason;
#   - with sessions in workers and NVML there, the agent process itself
#     holds no CUDA context (its memory figures are NVML's).
# On a real GPU, tests/gpu/run.sh runs the kernels too.
set -u
source "$(dirname "$0")/lib.sh"
tr_init "$1"
fake=$(cd "$2" && pwd)
san=${TR_PRELOAD%:"$SHIM"}
san=${san#"$SHIM"}
smi="$BUILD/tools/smi/tremote-smi"

# The fake driver and NVML first, for the agents a broker starts.
fakepath="$fake${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

[ -e "$fake/libcuda.so.1" ] && [ -e "$fake/libnvidia-ml.so.1" ] ||
    tr_fail "no fake driver or NVML in $fake (build first)"

LD_LIBRARY_PATH="$fakepath" \
    TR_BACKEND=cuda tr_start_broker --local 2
grep -q "backend cuda" "$TR_TMP/broker.log" || tr_fail "the agent is not on the cuda backend"
grep -q 'cuda: GPU 0 is tremote fake GPU' "$TR_TMP/broker.log" ||
    tr_fail "the agent did not use the fake driver"
grep -q 'cuda: the agent process holds no CUDA context' "$TR_TMP/broker.log" ||
    tr_fail "the agent kept a CUDA context though its sessions run in workers"

for app in memory_roundtrip pinned_copies rand_fill; do
    vis=0 # one machine for the first two, both for rand_fill
    [ $app = rand_fill ] && vis=0,1
    TREMOTE_VISIBLE_DEVICES=$vis tr_run "$APPS/$app" || tr_fail "$app through the cuda backend"
    grep -q '^PASS' "$TR_TMP/out" || tr_fail "no PASS from $app"
    echo "$app: PASS through the cuda backend"
done

# The driver writes what kernels printed at its next synchronising call,
# which may be a copy of another thread's, so a worker's reply to any copy
# piece may come after output: the session must go on (it was declared
# dead: "worker process ... is gone").
tr_stop_broker
FAKECUDA_COPY_PRINTS=1 LD_LIBRARY_PATH="$fakepath" \
    TR_BACKEND=cuda tr_start_broker --local 1
tr_run "$APPS/memory_roundtrip" || tr_fail "memory_roundtrip with output at copies: $(tail -3 "$TR_TMP/out")"
grep -q '^PASS' "$TR_TMP/out" || tr_fail "no PASS from memory_roundtrip with output at copies"
grep -q 'is gone' "$TR_TMP/broker.log" && tr_fail "a worker that printed at a copy was taken for gone"
echo "memory_roundtrip: PASS with driver output at copies"

# slowest_call_during WHAT WHY CMD...: a program making 40000 small calls
# runs while CMD does; its slowest call must stay under 700 ms, else the
# test fails saying WHY.  Under a sanitizer the figure is only printed
# (each worker's fork, on the network thread, copies the runtime's shadow
# mappings: seconds for a few).
slowest_call_during() {
    local what=$1 why=$2 lat worst
    shift 2
    LD_PRELOAD="$TR_PRELOAD" "$APPS/client_load" latency 40000 >"$TR_TMP/lat.out" 2>&1 &
    lat=$!
    sleep 0.5
    "$@"
    wait $lat || tr_fail "the running program failed: $(tail -3 "$TR_TMP/lat.out")"
    worst=$(awk '/^p50/ {print $10}' "$TR_TMP/lat.out")
    echo "a running program's slowest small call while $what: ${worst} us"
    [ -n "$worst" ] || tr_fail "no figure from the running program: $(cat "$TR_TMP/lat.out")"
    [ -n "${TR_SANITIZE:-}" ] || awk -v w="$worst" 'BEGIN {exit !(w < 700000)}' ||
        tr_fail "a small call waited ${worst} us: $why"
}

# Sessions that open together start their workers together: a worker's
# driver start (cuInit and a context, here made to take 800 ms) is waited
# for by the session's first call, not on the agent's network thread,
# where one after another they would add up (6 programs: 4.8 s; 32 on an
# H200 took 8 s, every other session stalled meanwhile).
tr_stop_broker
FAKECUDA_INIT_DELAY_MS=800 LD_LIBRARY_PATH="$fakepath" \
    TR_BACKEND=cuda tr_start_broker --local 1
sleep 1 # the spare worker has started
ready="cuda: GPU 0 is tremote fake GPU"
n0=$(grep -c "$ready" "$TR_TMP/broker.log")
pids=()
for i in 1 2 3 4 5 6; do
    LD_PRELOAD="$TR_PRELOAD" "$APPS/memory_roundtrip" >"$TR_TMP/burst$i.out" 2>&1 &
    pids+=($!)
done
for i in 1 2 3 4 5 6; do
    wait "${pids[$((i - 1))]}" || tr_fail "program $i of 6 started at once: $(tail -3 "$TR_TMP/burst$i.out")"
done
# When each new worker's driver was up (the log's "GPU 0 is" lines, with
# milliseconds): one after another they are 800 ms apart, together within
# a fraction of that.
spread=$(grep "$ready" "$TR_TMP/broker.log" | tail -n +$((n0 + 1)) |
    awk '{split($2, t, ":"); ms = ((t[1] * 60 + t[2]) * 60 + t[3]) * 1000;
          if (n++ == 0 || ms < lo) lo = ms; if (ms > hi) hi = ms}
         END {printf "%d %d", n, hi - lo}')
set -- $spread
echo "six programs at once: $1 workers started, their driver starts (800 ms each) ended within $2 ms"
[ "$1" -ge 5 ] || tr_fail "only $1 workers started for six programs"
[ "$2" -lt 500 ] || tr_fail "the workers' driver starts ended $2 ms apart: one after another"
tr_stop_broker

# Nor does a starting session hold an execution thread: with one, a
# running program's small calls go on while four others' workers start
# (1500 ms each); their lanes wait parked, not on the thread.  (The four
# make a few small calls each: bulk copies would hold the one thread too,
# for long under a sanitizer.)
TREMOTE_AGENT_EXEC_THREADS=1 FAKECUDA_INIT_DELAY_MS=1500 LD_LIBRARY_PATH="$fakepath" \
    TR_BACKEND=cuda tr_start_broker --local 1
sleep 1.6 # the spare worker has started
four_starting() {
    local i pids=()
    for i in 1 2 3 4; do
        LD_PRELOAD="$TR_PRELOAD" "$APPS/client_load" latency 50 >"$TR_TMP/burst$i.out" 2>&1 &
        pids+=($!)
    done
    for i in 1 2 3 4; do
        wait "${pids[$((i - 1))]}" || tr_fail "program $i of 4: $(tail -3 "$TR_TMP/burst$i.out")"
    done
}
slowest_call_during "four sessions started (one execution thread)" \
    "a starting session held the execution thread" four_starting

# A program killed while its session's worker is still starting: the
# session goes at once, its worker is killed (not waited for), nothing is
# logged as an error, and the next program is served.  A first program
# takes the ready spare; the next spare then starts (1500 ms), and the
# victim, started right after, gets that one.
sleep 1.6 # a spare worker is up again
agent=$(pgrep -P "$BROKER_PID" -f gpu-agent | head -1)
tr_run "$APPS/client_load" latency 50 || tr_fail "the first program"
sleep 0.2 # its worker has ended
opened=$(grep -c ": opened, window" "$TR_TMP/broker.log")
LD_PRELOAD="$TR_PRELOAD" "$APPS/client_load" latency 50 >"$TR_TMP/killed.out" 2>&1 &
victim=$!
for _ in $(seq 100); do
    [ "$(grep -c ": opened, window" "$TR_TMP/broker.log")" -gt "$opened" ] && break
    sleep 0.01
done
n1=$(pgrep -P "$agent" | wc -l)
kill -9 $victim
wait $victim 2>/dev/null
t0=$(date +%s%N)
for _ in $(seq 300); do
    [ "$(pgrep -P "$agent" | wc -l)" -lt "$n1" ] && break
    sleep 0.01
done
gone=$(( ($(date +%s%N) - t0) / 1000000 ))
n2=$(pgrep -P "$agent" | wc -l)
echo "a program killed while its worker started: the agent's workers $n1 -> $n2 in $gone ms"
[ "$n2" -lt "$n1" ] || tr_fail "the killed program's starting worker is still there after 3 s"
[ -n "${TR_SANITIZE:-}" ] || [ "$gone" -lt 500 ] ||
    tr_fail "the killed program's starting worker went after $gone ms: it was waited for"
grep -q "could not open its session" "$TR_TMP/broker.log" &&
    tr_fail "a session closed while starting was logged as an error"
tr_run "$APPS/client_load" latency 50 || tr_fail "no program served after one was killed while starting"
tr_stop_broker

# Nor does a session's end hold up the others.  A worker's context takes a
# while to go (cuCtxDestroy: 90 ms on an H200, here 1500 ms), and the last
# reference to a session often drops on the agent's network thread: on
# the H200, 8 equal programs finished one after another, each as the
# previous one's context went (slowest/fastest 3.10, natively 1.01).
FAKECUDA_DESTROY_DELAY_MS=1500 LD_LIBRARY_PATH="$fakepath" \
    TR_BACKEND=cuda tr_start_broker --local 1
three_ending() {
    local i
    for i in 1 2 3; do
        tr_run "$APPS/client_load" latency 50 || tr_fail "short program $i: $(tail -3 "$TR_TMP/out")"
    done
}
slowest_call_during "three sessions ended (1500 ms each)" \
    "a session's end held up the others" three_ending
tr_stop_broker
LD_LIBRARY_PATH="$fakepath" TR_BACKEND=cuda tr_start_broker --local 2

# The broker asks the agent's status every 2 s.
q=
for _ in $(seq 50); do
    q=$(LD_PRELOAD="$san" "$smi" -i 0 --format=csv,noheader \
        --query-gpu=name,utilization.gpu,utilization.memory,temperature.gpu,power.draw,memory.used,memory.total,memory.free,driver_version,pci.bus_id)
    [ "${q#*, 37 %}" != "$q" ] && break
    sleep 0.1
done
echo "tremote-smi: $q"
# Memory as nvidia-smi shows it: of 1024 MiB, 24 reserved by the driver,
# 300 used, 700 free.
[ "$q" = "tremote fake GPU, 37 %, 12 %, 61, 123.45 W, 300 MiB, 1024 MiB, 700 MiB, 999.99.fake, 00000000:3B:00.0" ] ||
    tr_fail "NVML's figures: '$q'"
LD_PRELOAD="$san" "$smi" >"$TR_TMP/table"
grep -q '^|   0 | local-0 .* tremote fake GPU .* ready .* |  37% |        0 |$' "$TR_TMP/table" ||
    tr_fail "the table does not show the utilization: $(cat "$TR_TMP/table")"
tr_stop_broker

# The driver without NVML: figures unknown, and the agent says why.
mkdir "$TR_TMP/nonvml"
ln -s "$fake/libcuda.so.1" "$TR_TMP/nonvml/libcuda.so.1"
LD_LIBRARY_PATH="$TR_TMP/nonvml${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
    TR_BACKEND=cuda tr_start_broker --local 1
grep -q "NVML: libnvidia-ml.so.1 not found; utilization, temperature and the driver version are reported unknown" \
    "$TR_TMP/broker.log" || tr_fail "no line saying NVML is missing"
sleep 2.5
q=$(LD_PRELOAD="$san" "$smi" --format=csv,noheader --query-gpu=utilization.gpu,temperature.gpu,driver_version,pci.bus_id)
[ "$q" = "[N/A], [N/A], [N/A], [N/A]" ] || tr_fail "without NVML: '$q'"
echo "without NVML: $q"
tr_stop_broker

# A GPU in EXCLUSIVE_PROCESS compute mode (3) admits one process, the
# agent: by default its sessions stay in it (and work); worker processes
# asked for are refused at start, with the way out.
FAKECUDA_COMPUTE_MODE=3 LD_LIBRARY_PATH="$fakepath" \
    TR_BACKEND=cuda tr_start_broker --local 1
grep -q "EXCLUSIVE_PROCESS compute mode: one process may use it, so sessions share the agent process" \
    "$TR_TMP/broker.log" || tr_fail "no line about the exclusive compute mode"
tr_run "$APPS/memory_roundtrip" || tr_fail "memory_roundtrip on an exclusive GPU"
grep -q '^PASS' "$TR_TMP/out" || tr_fail "no PASS on an exclusive GPU"
tr_stop_broker
FAKECUDA_COMPUTE_MODE=3 LD_LIBRARY_PATH="$fakepath" \
    LD_PRELOAD="$san" timeout 30 "$AGENT" --listen 127.0.0.1:0 --insecure --backend cuda \
    --isolation process >"$TR_TMP/agent.out" 2>&1 && tr_fail "--isolation process started on an exclusive GPU"
grep -q "EXCLUSIVE_PROCESS compute mode.*use --isolation thread" "$TR_TMP/agent.out" ||
    tr_fail "no reason for refusing --isolation process: $(cat "$TR_TMP/agent.out")"
echo "exclusive compute mode: sessions in the agent; --isolation process refused with its reason"
echo "PASS cuda_fake"
