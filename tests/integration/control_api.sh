#!/usr/bin/env bash
# control_api.sh BUILD_DIR: the registry through the control socket.
# Machines are listed with their origin; a STATIC machine added at run
# time becomes a device for programs started after it and is kept in the
# state file, so it comes back when the broker restarts; removing it
# takes it out of both; SIGHUP and the reload op apply a changed machines
# file (new sections added at new indices, removed or changed ones taken
# out); bad requests get one error naming what is valid, and change
# nothing (a FIFO as secret_file or ca= among them, at once).
set -u
source "$(dirname "$0")/lib.sh"
tr_init "$1"

secret=$TR_TMP/secret
printf 'ctl-test-secret-%s\n' "$RANDOM$RANDOM" >"$secret"
chmod 600 "$secret"
fifo=$TR_TMP/agent-ready
mkfifo "$fifo"
"$AGENT" --listen 127.0.0.1:0 --secret-file "$secret" --backend emu \
    --emu-mem 1G --emu-name "box device" --ready-fd 3 3>"$fifo" 2>"$TR_TMP/agent.log" &
AGENT_PID=$!
trap 'kill -9 $AGENT_PID 2>/dev/null; tr_cleanup' EXIT
read -r -t 30 PORT <"$fifo" || tr_fail "the agent did not start"

mfile=$TR_TMP/machines.ini
state=$TR_TMP/state.ini
printf '[machine a]\nprovider = local\n' >"$mfile"

machines() { # the machines as "index:name:origin:state" words
    tr_ctl '{"version":1,"op":"machines"}' | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(" ".join("%d:%s:%s:%s" % (m["index"], m["name"], m["origin"], m["state"]) for m in d["machines"]))'
}
wait_machines() { # wait_machines WANT: until machines prints WANT (10 s)
    local i got
    for i in $(seq 100); do
        got=$(machines)
        [ "$got" = "$1" ] && return 0
        sleep 0.1
    done
    tr_fail "machines: '$got', want '$1'"
}
ctl_error() { # ctl_error NAME JSON TEXT: the answer is an error saying TEXT
    local out
    out=$(tr_ctl "$2")
    case "$out" in
    *'"error":'*"$3"*) echo "refused: $1" ;;
    *) tr_fail "$1: '$out' is not an error saying '$3'" ;;
    esac
}
devices() { # devices WANT-COUNT
    tr_run "$APPS/devices" || tr_fail "devices exited with $?"
    grep -q "^devices $1\$" "$TR_TMP/out" || tr_fail "devices: not $1"
}

tr_start_broker --machines "$mfile" --state "$state" --emu-mem 1G
wait_machines "0:a:file:ready"
add='{"version":1,"op":"add","name":"box","provider":"static","address":"127.0.0.1:'$PORT'","secret_file":"'$secret'","gpu":"H100"}'
out=$(tr_ctl "$add")
[ "$out" = '{"version":1,"added":{"index":1,"name":"box"}}' ] || tr_fail "add: $out"
wait_machines "0:a:file:ready 1:box:control:ready"
devices 2
grep -q '^device 1: box device$' "$TR_TMP/out" || tr_fail "the added machine is not device 1"
grep -q '^\[machine box\]$' "$state" && grep -q "^address = 127.0.0.1:$PORT\$" "$state" ||
    tr_fail "the state file does not hold box: $(cat "$state")"
[ "$(stat -c %a "$state")" = 600 ] || tr_fail "the state file is not 0600"
echo "add: a STATIC machine becomes device 1 and is kept in the state file"

ctl_error "a name taken" "$add" "a machine named box exists already"
ctl_error "an unknown key" '{"version":1,"op":"add","name":"x","provider":"local","colour":"red"}' "unknown key 'colour' (valid: provider, gpu"
ctl_error "no provider" '{"version":1,"op":"add","name":"x"}' "provider missing (valid: local, static, modal)"
ctl_error "a bad name" '{"version":1,"op":"add","name":"a b","provider":"local"}' "add needs \\\"name\\\""
ctl_error "a name of digits" '{"version":1,"op":"add","name":"0","provider":"local"}' "a letter, then up to 30 letters"
ctl_error "the name -1" '{"version":1,"op":"add","name":"-1","provider":"local"}' "a letter, then up to 30 letters"
ctl_error "h2c beyond loopback" '{"version":1,"op":"add","name":"x","provider":"static","address":"10.9.9.9:7","secret_file":"'$secret'"}' "is not on loopback"
ctl_error "remove what is not there" '{"version":1,"op":"remove","name":"nope"}' "no machine named nope"
ctl_error "an unknown op" '{"version":1,"op":"fly"}' "unknown op 'fly' (valid: stats, machines, sessions, broker, add, remove, reload)"
ctl_error "a newer version" '{"version":2,"op":"machines"}' "unsupported version 2"
ctl_error "no version" '{"op":"machines"}' 'missing version (every request carries \"version\":1)'
ctl_error "a member twice" '{"version":1,"op":"remove","name":"box","name":"a"}' "name given twice"
ctl_error "op twice" '{"version":1,"op":"machines","op":"remove"}' "op given twice"
# A state file that cannot be written: the add works, and says so.
mkdir "$state.tmp"
out=$(tr_ctl '{"version":1,"op":"add","name":"unsaved","provider":"static","address":"127.0.0.1:9","secret_file":"'$secret'"}')
rmdir "$state.tmp"
case "$out" in
*'"added":{"index":'*'"warning":"state file not written: '*'will not come back after a restart"}') echo "add without a state file: a warning" ;;
*) tr_fail "add with the state file unwritable: '$out' has no warning" ;;
esac
out=$(tr_ctl '{"version":1,"op":"remove","name":"unsaved"}')
[ "$out" = '{"version":1,"removed":"unsaved"}' ] || tr_fail "remove unsaved: $out"
# A FIFO as secret_file or ca= (mode 0600 passes the mode check) is
# refused at once: opened as it is, it would block the broker's event loop
# (every program, this socket) until someone writes to it.  A writer after
# 5 s keeps a broker that blocks from hanging the test.
mkfifo -m 600 "$TR_TMP/fifo1" "$TR_TMP/fifo2"
for f in fifo1 fifo2; do
    timeout 10 sh -c "sleep 5; echo x >$TR_TMP/$f; sleep 1; echo x >$TR_TMP/$f" &
    eval "unblock_$f=\$!"
done
t0=$(date +%s)
ctl_error "a FIFO as secret_file" '{"version":1,"op":"add","name":"x","provider":"static","address":"127.0.0.1:'$PORT'","secret_file":"'$TR_TMP/fifo1'"}' \
    "secret_file $TR_TMP/fifo1: not a regular file"
ctl_error "a FIFO as ca" '{"version":1,"op":"add","name":"x","provider":"static","address":"127.0.0.1:'$PORT'","secret_file":"'$secret'","tls":"on","ca":"'$TR_TMP/fifo2'"}' \
    "ca $TR_TMP/fifo2: not a regular file"
[ $(( $(date +%s) - t0 )) -le 3 ] || tr_fail "the FIFOs held the broker up"
kill "$unblock_fifo1" "$unblock_fifo2" 2>/dev/null
wait_machines "0:a:file:ready 1:box:control:ready"

# A restart brings box back from the state file.
tr_stop_broker
tr_start_broker --machines "$mfile" --state "$state" --emu-mem 1G
grep -q "box: restored from $state" "$TR_TMP/broker.log" || tr_fail "box was not restored"
wait_machines "0:a:file:ready 1:box:control:ready"
devices 2
echo "restart: box is back"

out=$(tr_ctl '{"version":1,"op":"remove","name":"box"}')
[ "$out" = '{"version":1,"removed":"box"}' ] || tr_fail "remove: $out"
wait_machines "0:a:file:ready"
devices 1
grep -q 'machine box' "$state" && tr_fail "box is still in the state file"
echo "remove: box is gone, from the state file too"

# SIGHUP: a new section is added at a new index (1 stays box's).
printf '[machine a]\nprovider = local\n[machine b]\nprovider = local\n' >"$mfile"
kill -HUP "$BROKER_PID"
tr_wait_line ".*SIGHUP: .* 1 machine(s) added, 0 removed" "$TR_TMP/broker.log" "$BROKER_PID" 10 ||
    tr_fail "SIGHUP did not reload"
wait_machines "0:a:file:ready 2:b:file:ready"
devices 2
# The reload op: a gone, b changed (gpu=) so taken out and added anew.
printf '[machine b]\nprovider = local\ngpu = L4\n' >"$mfile"
out=$(tr_ctl '{"version":1,"op":"reload"}')
[ "$out" = '{"version":1,"added":1,"removed":2}' ] || tr_fail "reload: $out"
wait_machines "3:b:file:ready"
devices 1
# A broken file changes nothing.
printf '[machine b]\nprovider = lokal\n' >"$mfile"
ctl_error "a broken machines file" '{"version":1,"op":"reload"}' "unknown provider 'lokal'"
wait_machines "3:b:file:ready"
echo "reload: added, removed, and nothing on a broken file"
tr_stop_broker
[ "$BROKER_STATUS" = 0 ] || tr_fail "broker exited with $BROKER_STATUS"
echo "control_api: ok"
