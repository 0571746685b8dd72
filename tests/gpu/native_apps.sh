#!/usr/bin/env bash
# native_apps.sh BUILD_DIR [CUDART_DIR] [APP...]
#
# The cross-check on a machine with a real NVIDIA GPU: runs the prebuilt
# self-checking programs BUILD_DIR/tests/apps/emu_* natively (no shim, no
# broker; nvcc is not needed), with the same checks as
# tests/integration/emu_apps.sh: exit status 0, "PASS <app>" as the last
# line of stdout, and for emu_printf the set and order of the device printf
# lines.  libcudart.so.13 is looked for in CUDART_DIR (or "" to skip), else
# $CUDA_HOME/lib64, else wherever the dynamic linker finds it.  APPs: run
# only those (default: all).  Prints one line per app and a summary; exit 0
# if all passed, 1 otherwise.  EMU_APP_TIMEOUT: seconds per app (default
# 120).  NATIVE_APPS_KEEP=DIR: copy every app's stdout and stderr there.
set -u

build=${1:?usage: native_apps.sh BUILD_DIR [CUDART_DIR] [APP...]}
apps_dir=$(cd "$build/tests/apps" 2>/dev/null && pwd) ||
	{ echo "no $build/tests/apps (build the emu_* apps first)"; exit 1; }
cudart_dir=${2-}
[ $# -ge 2 ] || { [ -n "${CUDA_HOME:-}" ] && [ -e "$CUDA_HOME/lib64/libcudart.so.13" ] &&
	cudart_dir=$CUDA_HOME/lib64; }
[ $# -ge 2 ] && shift 2 || shift $#
if [ -n "$cudart_dir" ]; then
	[ -e "$cudart_dir/libcudart.so.13" ] || echo "warning: no libcudart.so.13 in $cudart_dir"
	export LD_LIBRARY_PATH=$cudart_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
unset LD_PRELOAD

ALL_APPS=(emu_vector_add emu_saxpy_double emu_matmul_tiled emu_reduce_shared
	emu_reduce_shuffle emu_histogram emu_prefix_scan emu_transpose emu_template
	emu_struct_param emu_recursion emu_printf emu_constant emu_grid_stride emu_oob
	emu_half emu_divergence emu_device_props)
if [ $# -gt 0 ]; then apps=("$@"); else apps=("${ALL_APPS[@]}"); fi

tmp=$(mktemp -d /tmp/native-apps.XXXXXX) || exit 1
keep() {
	[ -n "${NATIVE_APPS_KEEP:-}" ] && mkdir -p "$NATIVE_APPS_KEEP" &&
		cp -r "$tmp"/. "$NATIVE_APPS_KEEP"/
	rm -rf "$tmp"
}
trap keep EXIT

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# check_printf STDOUT EXPECTED: as in tests/integration/emu_apps.sh.
check_printf() {
	local out=$1 exp=$2 d=$tmp/printf marker m
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

failed=() passed=0
t_all=$(now)
printf '%-20s %-8s %8s  %s\n' app verdict wall detail
for app in "${apps[@]}"; do
	out=$tmp/$app.out err=$tmp/$app.err
	args=()
	[ "$app" = emu_printf ] && args=("$tmp/$app.expected")
	to=${EMU_APP_TIMEOUT:-120}
	verdict=FAIL detail=
	rm -f "$tmp/why"
	t0=$(now)
	if [ ! -x "$apps_dir/$app" ]; then
		rc=127 detail="not built: $apps_dir/$app"
	else
		timeout -k 5 "$to" "$apps_dir/$app" ${args[@]+"${args[@]}"} >"$out" 2>"$err"
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
	elif [ "$app" = emu_printf ] && ! check_printf "$out" "$tmp/$app.expected" >"$tmp/why"; then
		detail="printf: $(head -n 1 "$tmp/why")"
	else
		verdict=PASS
	fi
	printf '%-20s %-8s %7ss  %s\n' "$app" "$verdict" "$t" "$detail"
	if [ $verdict = PASS ]; then
		passed=$((passed + 1))
	else
		failed+=("$app")
		[ -s "$tmp/why" ] && sed 's/^/    /' "$tmp/why"
		echo "    --- stdout (last 12 lines)"
		tail -n 12 "$out" 2>/dev/null | sed 's/^/    /'
		echo "    --- stderr (last 12 lines)"
		tail -n 12 "$err" 2>/dev/null | sed 's/^/    /'
	fi
done
echo "$passed of ${#apps[@]} passed in $(elapsed "$t_all" "$(now)")s"
if [ ${#failed[@]} -gt 0 ]; then
	echo "FAILED: ${failed[*]}"
	exit 1
fi
echo "native_apps: ok"
