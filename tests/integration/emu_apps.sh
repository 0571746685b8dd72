#!/usr/bin/env bash
# emu_apps.sh BUILD_DIR [APP...]
#
# Runs the self-checking CUDA programs tests/apps/emu_*.cu (all of them, or
# the APPs named) under the preloaded shim against ONE real broker with one
# LOCAL agent (the emulated device), each with its own timeout, and checks
# for each: exit status 0, "PASS <app>" as the last line of stdout, and for
# emu_printf the device printf lines (the set, and their order around the
# host's line between the two kernels).  Prints one line per app with its
# verdict and wall time, then fails listing every app that failed (it never
# stops at the first).  Verdicts: PASS; FAIL (wrong results, a crash, a CUDA
# error); TIMEOUT; and two that name a missing feature: NOKERNEL (the shim's
# "cannot execute kernels yet") and UNSUPPORTED (a CUDA call the shim only
# stubs: "tremote: NAME is not supported yet"; the detail names the calls).
#
# A broker that died, or a timed-out app (whose kernel may still occupy the
# agent), gets the broker restarted for the apps that follow; both are
# reported.  Environment: EMU_APP_TIMEOUT (s, default 120; emu_grid_stride
# gets 300), EMU_APPS_BUDGET (s for all apps together, default 840, under
# ctest's 900), TR_BACKEND (the agent's backend, default emu; cuda runs the
# programs on this machine's GPU through the cuda backend, lib.sh).
set -u
source "$(dirname "$0")/lib.sh"
tr_init "$1"
shift

ALL_APPS=(emu_vector_add emu_saxpy_double emu_matmul_tiled emu_reduce_shared
	emu_reduce_shuffle emu_histogram emu_prefix_scan emu_transpose emu_template
	emu_struct_param emu_recursion emu_printf emu_constant emu_grid_stride emu_oob
	emu_half emu_divergence emu_device_props)
if [ $# -gt 0 ]; then apps=("$@"); else apps=("${ALL_APPS[@]}"); fi

app_timeout() {
	case $1 in
	emu_grid_stride) echo "${EMU_GRID_STRIDE_TIMEOUT:-300}" ;;
	*) echo "${EMU_APP_TIMEOUT:-120}" ;;
	esac
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# check_printf STDOUT EXPECTED: the device lines of emu_printf.  EXPECTED
# (written by the program) has "1 line" (kernel 1, any order, before the
# marker), "H line" (the host's marker), "2 line" (kernel 2, any order,
# after the marker).  The last stdout line is the PASS line (checked
# elsewhere).  Prints what is wrong; returns 1 then.
check_printf() {
	local out=$1 exp=$2 d=$TR_TMP/printf marker m
	mkdir -p "$d"
	[ -s "$exp" ] || { echo "no expected-lines file"; return 1; }
	marker=$(sed -n 's/^H //p' "$exp")
	m=$(grep -n -x -F -- "$marker" "$out" | cut -d: -f1)
	case $(printf '%s\n' "$m" | grep -c .) in
	1) ;;
	0) echo "the host's line between the kernels is missing"; return 1 ;;
	*) echo "the host's line between the kernels appears more than once"; return 1 ;;
	esac
	head -n $((m - 1)) "$out" | LC_ALL=C sort >"$d/got1"
	sed -n 's/^1 //p' "$exp" | LC_ALL=C sort >"$d/want1"
	tail -n +$((m + 1)) "$out" | sed '$d' | LC_ALL=C sort >"$d/got2"
	sed -n 's/^2 //p' "$exp" | LC_ALL=C sort >"$d/want2"
	if ! cmp -s "$d/got1" "$d/want1"; then
		echo "kernel 1's lines before the marker differ (- expected, + got):"
		diff "$d/want1" "$d/got1" | grep '^[<>]' | head -8 | sed 's/^</  -/; s/^>/  +/'
		return 1
	fi
	if ! cmp -s "$d/got2" "$d/want2"; then
		echo "kernel 2's lines after the marker differ (- expected, + got):"
		diff "$d/want2" "$d/got2" | grep '^[<>]' | head -8 | sed 's/^</  -/; s/^>/  +/'
		return 1
	fi
}

tr_start_broker --local 1 --emu-mem 2G

budget=${EMU_APPS_BUDGET:-840}
t_all=$(now)
failed=() missing=0 passed=0
: >"$TR_TMP/out"
printf '%-20s %-11s %8s  %s\n' app verdict wall detail
for app in "${apps[@]}"; do
	out=$TR_TMP/$app.out err=$TR_TMP/$app.err
	args=()
	[ "$app" = emu_printf ] && args=("$TR_TMP/$app.expected")
	to=$(app_timeout "$app")
	left=$(awk -v s="$t_all" -v n="$(now)" -v b="$budget" 'BEGIN { printf "%d", b - (n - s) }')
	[ "$left" -lt "$to" ] && to=$left
	verdict=FAIL detail=
	rm -f "$TR_TMP/why"
	t0=$(now)
	if [ ! -x "$APPS/$app" ]; then
		rc=127 detail="not built: $APPS/$app"
	elif [ "$to" -le 0 ]; then
		rc=124 verdict=NOTRUN detail="no time left in the ${budget}s budget"
	else
		timeout -k 5 "$to" env LD_PRELOAD="$TR_PRELOAD" "$APPS/$app" ${args[@]+"${args[@]}"} \
			>"$out" 2>"$err"
		rc=$?
	fi
	t=$(elapsed "$t0" "$(now)")
	last=$(tail -n 1 "$out" 2>/dev/null)
	if [ -n "$detail" ]; then
		:
	elif [ $rc = 124 ] || [ $rc = 137 ]; then
		verdict=TIMEOUT detail="killed after ${to}s"
	elif [ $rc != 0 ]; then
		case $rc in
		1) detail="exit 1: results differ" ;;
		2) detail="exit 2: $(grep -m1 -A1 '^CUDA call failed' "$err" | tr '\n' ' ' | tr -s ' ')" ;;
		*) detail="exit $rc" ;;
		esac
	elif [ "$last" != "PASS $app" ]; then
		detail="exit 0 but the last line is not 'PASS $app': '$last'"
	elif [ "$app" = emu_printf ] && ! check_printf "$out" "$TR_TMP/$app.expected" >"$TR_TMP/why"; then
		detail="printf: $(head -n 1 "$TR_TMP/why")"
	else
		verdict=PASS
	fi
	if [ $verdict != PASS ] && [ $verdict != TIMEOUT ] && [ -s "$err" ]; then
		stubs=$(sed -n 's/^tremote: \([A-Za-z_0-9]*\) is not supported yet.*/\1/p' "$err" |
			sort -u | tr '\n' ' ')
		if grep -q "cannot execute kernels yet" "$err"; then
			verdict=NOKERNEL detail="the device cannot execute kernels yet; $detail"
			missing=$((missing + 1))
		elif [ -n "$stubs" ]; then
			verdict=UNSUPPORTED detail="not supported by the shim yet: ${stubs% }; $detail"
			missing=$((missing + 1))
		fi
	fi
	printf '%-20s %-11s %7ss  %s\n' "$app" "$verdict" "$t" "$detail"
	if [ $verdict = PASS ]; then
		passed=$((passed + 1))
	else
		failed+=("$app")
		{
			echo "=== $app: $verdict, $detail"
			[ -s "$TR_TMP/why" ] && [ "$app" = emu_printf ] && cat "$TR_TMP/why"
			echo "--- stdout (last 20 lines)"
			tail -n 20 "$out" 2>/dev/null
			echo "--- stderr (last 20 lines)"
			tail -n 20 "$err" 2>/dev/null
		} >>"$TR_TMP/out"
	fi
	# Keep the later apps' results meaningful.
	if ! kill -0 "$BROKER_PID" 2>/dev/null; then
		echo "  (the broker died during $app; restarting it)"
		echo "=== the broker died during $app; its log:" >>"$TR_TMP/out"
		cat "$TR_TMP/broker.log" >>"$TR_TMP/out"
		tr_stop_broker
		tr_start_broker --local 1 --emu-mem 2G
	elif [ $verdict = TIMEOUT ]; then
		echo "  (restarting the broker after the timeout)"
		tr_stop_broker
		tr_start_broker --local 1 --emu-mem 2G
	fi
done
echo "$passed of ${#apps[@]} passed in $(elapsed "$t_all" "$(now)")s"

if [ ${#failed[@]} -gt 0 ]; then
	tr_fail "${#failed[@]} of ${#apps[@]} apps failed: ${failed[*]}"
fi
tr_stop_broker
[ "$BROKER_STATUS" = 0 ] || tr_fail "broker exited with $BROKER_STATUS on SIGTERM"
echo "emu_apps: ok"
