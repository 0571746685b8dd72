#!/usr/bin/env bash
# state_file.sh BUILD_DIR: what the state file of machines added at run
# time must survive.  The control API refuses values the INI file could
# not give back as they went in (a newline that would write a section of
# its own, a blank at either end, " ;", a line longer than inih reads) and
# relative paths; a machine of the file that no longer passes the checks
# (its secret_file now 0644) is left out with a warning while the others
# come back; a file that does not parse is set aside under a name of its
# own each time, an earlier one kept.
set -u
source "$(dirname "$0")/lib.sh"
tr_init "$1"

state=$TR_TMP/machines.state
printf 'state-test-secret\n' >"$TR_TMP/secret"
printf 'other-secret\n' >"$TR_TMP/secret2"
chmod 600 "$TR_TMP/secret" "$TR_TMP/secret2"
static() { # static NAME SECRET: an add request for a STATIC machine
    echo '{"version":1,"op":"add","name":"'$1'","provider":"static","address":"127.0.0.1:9","secret_file":"'$2'"}'
}
ctl_error() { # ctl_error NAME JSON TEXT: the answer is an error saying TEXT
    local out
    out=$(tr_ctl "$2")
    case "$out" in
    *'"error":'*"$3"*) echo "refused: $1" ;;
    *) tr_fail "$1: '$out' is not an error saying '$3'" ;;
    esac
}
names() { # the machines' names, space-separated
    tr_ctl '{"version":1,"op":"machines"}' | python3 -c '
import json, sys
print(" ".join(m["name"] for m in json.load(sys.stdin)["machines"]))'
}

tr_start_broker --local 0 --state "$state"
ctl_error "a newline in a value" \
    '{"version":1,"op":"add","name":"a","provider":"local","gpu":"T4\n[machine e]\nprovider=local"}' \
    "gpu holds a control character"
ctl_error "a blank at the end" \
    '{"version":1,"op":"add","name":"a","provider":"local","gpu":"T4 "}' \
    "gpu starts or ends with a blank"
ctl_error "' ;' in a value" \
    '{"version":1,"op":"add","name":"a","provider":"local","gpu":"T4 ;x"}' \
    "gpu holds ' ;'"
long=$TR_TMP/$(printf 'd%.0s' $(seq 190))
mkdir "$long" && cp -p "$TR_TMP/secret" "$long/secret"
ctl_error "a path longer than a state file line" "$(static a "$long/secret")" \
    "'secret_file = ...' would be 236 bytes; a line of the machines and state files holds at most 198"
ctl_error "a relative secret_file" "$(static a secret)" \
    "secret_file must be an absolute path"
[ -z "$(names)" ] || tr_fail "a refused add left machines: $(names)"
[ ! -e "$state" ] || ! grep -q '^\[' "$state" || tr_fail "a refused add reached the state file"

# One machine of the state file gone bad: the others come back.
for m in keep1 keep2; do
    out=$(tr_ctl "$(static $m "$TR_TMP/secret")")
    grep -q '"added"' <<<"$out" || tr_fail "add $m: $out"
done
out=$(tr_ctl "$(static s "$TR_TMP/secret2")")
grep -q '"added"' <<<"$out" || tr_fail "add s: $out"
tr_stop_broker
chmod 644 "$TR_TMP/secret2"
tr_start_broker --local 0 --state "$state"
[ "$(names)" = "keep1 keep2" ] || tr_fail "after one bad entry: '$(names)', want 'keep1 keep2'"
grep -q "warn: state file $state: \[machine s\]: secret_file .*mode 644.*not restored" \
    "$TR_TMP/broker.log" || tr_fail "no warning naming the bad machine"
ls "$TR_TMP" | grep -q 'machines.state.bad' && tr_fail "a file that parses was set aside"
echo "one bad entry: left out with a warning, the others restored"

# A file that does not parse is set aside, each time under its own name.
tr_stop_broker
for i in 1 2; do
    echo "this is not INI" >"$state"
    tr_start_broker --local 0 --state "$state"
    tr_stop_broker
done
[ "$(ls "$TR_TMP" | grep -c '^machines\.state\.bad-')" = 2 ] ||
    tr_fail "two broken state files: set aside as $(ls "$TR_TMP" | grep bad)"
grep -q "set aside as $state.bad-" "$TR_TMP/broker.log" || tr_fail "no warning"
echo "a broken state file: set aside, an earlier one kept"
echo "state_file: ok"
