#!/usr/bin/env bash
# smi.sh BUILD_DIR: tremote-smi against a real broker (a --local machine
# and a machines-file machine that asked for an H100): the table, -L,
# --query-gpu in csv with and without header and units, --json, --id,
# --loop, the programs using a machine and its round trips; every bad
# input exits non-zero with a line naming what is valid; no broker exits 3.
set -u
source "$(dirname "$0")/lib.sh"
tr_init "$1"
smi=$BUILD/tools/smi/tremote-smi

out=$("$smi" 2>&1); rc=$?
[ $rc = 3 ] && case "$out" in *"no tremote broker answers at"*) true ;; *) false ;; esac ||
    tr_fail "no broker: exit $rc, '$out'"
echo "no broker: exit 3 and how to start one"

printf '[machine gpu-a]\nprovider = local\ngpu = H100\n' >"$TR_TMP/m.ini"
tr_start_broker --local 1 --machines "$TR_TMP/m.ini" --emu-mem 1G

"$smi" >"$TR_TMP/table" || tr_fail "the table: exit $?"
grep -q '^|   0 | local-0 .* | -  .* | tremote emulated device .* | local .* | ready .* / 1024 MiB |  N/A |        0 |$' "$TR_TMP/table" ||
    tr_fail "the table has no row for local-0: $(cat "$TR_TMP/table")"
grep -q '^|   1 | gpu-a .* | H100 ' "$TR_TMP/table" || tr_fail "the table has no row for gpu-a"
echo "table: both machines, asked and actual GPU"

"$smi" -L >"$TR_TMP/list"
[ "$(wc -l <"$TR_TMP/list")" = 2 ] &&
    grep -q '^GPU 1: tremote emulated device (machine: gpu-a, local, ready, UUID: GPU-[0-9a-f-]\{36\})$' "$TR_TMP/list" ||
    tr_fail "-L: $(cat "$TR_TMP/list")"

q=$("$smi" --query-gpu=index,machine.id,machine.gpu,memory.total,temperature.gpu,compute_cap --format=csv)
want="index, machine.id, machine.gpu, memory.total [MiB], temperature.gpu, compute_cap
0, local-0, [N/A], 1024 MiB, [N/A], 8.0
1, gpu-a, H100, 1024 MiB, [N/A], 8.0"
[ "$q" = "$want" ] || tr_fail "--query-gpu csv: '$q'"
q=$("$smi" --query-gpu=index,memory.total --format=csv,noheader,nounits)
[ "$q" = "0, 1024
1, 1024" ] || tr_fail "csv,noheader,nounits: '$q'"
echo "--query-gpu: csv, noheader, nounits, [N/A]"

"$smi" --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert [m["index"] for m in d] == [0, 1], d
assert d[1]["machine.gpu"] == "H100" and d[0]["utilization.gpu"] is None, d
assert d[0]["memory.total"] == 1024 and d[0]["machine.state"] == "ready", d' ||
    tr_fail "--json"
[ "$("$smi" --id 1 -L | cut -c1-6)" = "GPU 1:" ] || tr_fail "--id 1"
"$smi" --id 7 >/dev/null 2>"$TR_TMP/err"; rc=$?
[ $rc = 6 ] && grep -q "no machine with index 7" "$TR_TMP/err" || tr_fail "--id 7: exit $rc"
echo "--json, --id"

# The agent's own figures arrive within a couple of seconds.
for i in $(seq 50); do
    used=$("$smi" --id 0 --query-gpu=memory.used --format=csv,noheader,nounits)
    [ "$used" != "[N/A]" ] && break
    sleep 0.1
done
[ "$used" = 0 ] || tr_fail "memory.used of an idle machine: '$used'"
rtt=$("$smi" --id 0 --query-gpu=machine.rtt_ms --format=csv,noheader,nounits)
awk -v r="$rtt" 'BEGIN {exit !(r > 0 && r < 1000)}' || tr_fail "machine.rtt_ms: '$rtt'"
echo "memory.used $used MiB idle, rtt $rtt ms"

# A program on machine 0: seen while it runs, its round trips after.
# (Long enough for two of the broker's status polls, 2 s apart, even on
# a loaded machine.)
LD_PRELOAD="$TR_PRELOAD" TREMOTE_VISIBLE_DEVICES=0 "$APPS/client_load" check 5 >"$TR_TMP/load.out" 2>&1 &
load=$!
for i in $(seq 40); do
    s=$("$smi" --id 0 --query-gpu=machine.sessions --format=csv,noheader)
    [ "$s" = 1 ] && break
    sleep 0.05
done
[ "$s" = 1 ] || tr_fail "a running program is not counted on machine 0"
for i in $(seq 40); do
    used=$("$smi" --id 0 --query-gpu=memory.used --format=csv,noheader,nounits)
    [ "$used" -ge 1 ] 2>/dev/null && break
    sleep 0.1
done
[ "$used" -ge 1 ] || tr_fail "memory.used while a program holds 1 MiB: '$used'"
wait $load || tr_fail "client_load failed: $(cat "$TR_TMP/load.out")"
rt=$("$smi" --id 0 --query-gpu=machine.round_trips,machine.sessions,cache.misses --format=csv,noheader)
set -- $(echo "$rt" | tr -d ,)
[ "$1" -gt 0 ] && [ "$2" = 0 ] && [ "$3" -ge 1 ] || tr_fail "after the program: '$rt'"
echo "programs on a machine, its round trips ($1) and module misses ($3)"

n=$(timeout 1 "$smi" --loop 0.2 -L | grep -c '^GPU 0:')
[ "$n" -ge 3 ] || tr_fail "--loop 0.2 printed $n times in 1 s"
echo "--loop: printed $n times in 1 s"

bad() { # bad WHAT EXIT TEXT ARGS...
    local what=$1 want=$2 text=$3 out rc
    shift 3
    out=$("$smi" "$@" 2>&1); rc=$?
    [ $rc = "$want" ] && case "$out" in *"$text"*) true ;; *) false ;; esac ||
        tr_fail "$what: exit $rc, '$out'"
    echo "refused: $what"
}
bad "an unknown field" 2 "unknown field 'gpu_name' (valid: index, name, uuid" --query-gpu=index,gpu_name
bad "an unknown format" 2 "unknown 'xml' (valid: csv, noheader, nounits)" --query-gpu=index --format=xml
bad "--format alone" 2 "--format goes with --query-gpu" --format=csv
bad "a bad --id" 2 "expected a machine index" --id x
bad "a bad --loop" 2 "expected a number of seconds" --loop 0
bad "an unknown option" 2 "Try 'tremote-smi --help'" --frobnicate
"$smi" --help | grep -q "^FIELDS" || tr_fail "--help lists no fields"
tr_stop_broker
echo "smi: ok"
