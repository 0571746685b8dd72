#!/usr/bin/env bash
# abi12.sh - the CUDA 12 ABI of libtremote_shim.so, against CUDA 12 itself.
#
#   abi12.sh BUILD_DIR layout   with PyPI's nvidia-cuda-runtime-cu12 wheel:
#                               shim/cudart12.exports is what
#                               shim/abi12_audit.py says of the wheel's
#                               libcudart.so.12 and headers against this
#                               toolkit's, and tests/apps/abi12_layout.c
#                               (shim_abi12.h against the wheel's
#                               cudaDeviceProp and numbers) compiles and
#                               passes
#   abi12.sh BUILD_DIR app      tests/apps/abi12_check.c, built with the host
#                               C compiler against the wheel's headers and
#                               libcudart.so.12, passes under the shim
#                               against the real broker and a LOCAL emulated
#                               device; each stub it calls says so once
#
# The wheel is fetched into BUILD_DIR/abi12 once (shim/abi12_wheel.sh).
# Environment (set by ctest): CUDA_HOME, TR_SRC, TR_SANITIZE.
# Exit 0 pass, 1 fail, 77 skip (only when the wheel cannot be fetched).
set -uo pipefail

build=${1:?usage: abi12.sh BUILD_DIR layout|app}
mode=${2:?usage: abi12.sh BUILD_DIR layout|app}
cuda=${CUDA_HOME:-/usr/local/cuda}
src=${TR_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
cc=${CC:-cc}

passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok: $*"; }
bad() { failed=$((failed + 1)); echo "FAIL: $*"; }
finish() {
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
	exit $?
}

rt=$(bash "$src/shim/abi12_wheel.sh" "$build/abi12" 2>"$build/abi12.err")
case $? in
0) ;;
3) echo "SKIP: $(cat "$build/abi12.err")"; exit 77 ;;
*) echo "FAIL: cannot get the CUDA 12 wheel: $(cat "$build/abi12.err")"; exit 1 ;;
esac
ok "CUDA 12 runtime wheel at $rt"
inc=$rt/include
so=$rt/lib/libcudart.so.12

work=$(mktemp -d) || exit 1
trap 'rm -rf "$work"' EXIT
# The wheel's headers include crt/host_defines.h (macros: __host__,
# CUDARTAPI, alignment), which ships in another wheel; the toolkit's
# stands in, searched after everything else.
mkdir -p "$work/crt" && ln -s "$cuda/include/crt" "$work/crt/crt"
cflags=(-std=gnu11 -Wall -Wextra -Werror -Wno-deprecated-declarations
	-I "$inc" -idirafter "$work/crt")

run_layout() {
	local version
	version=$(sed -n 's/^# nvidia-cuda-runtime-cu12 \([0-9.]*\) .*/\1/p' "$src/shim/cudart12.exports")
	if python3 "$src/shim/abi12_audit.py" "$inc" "$so" "$cuda/include" \
		"$cuda/lib64/libcudart.so.13" "$src/shim/gen/compat" "$version" \
		--check "$src/shim/cudart12.exports" >"$work/audit" 2>&1; then
		ok "$(tail -1 "$work/audit")"
	else
		bad "shim/cudart12.exports is not what the audit says (regenerate: shim/abi12_wheel.sh --regen DIR):"
		head -40 "$work/audit"
	fi
	if ! "$cc" "${cflags[@]}" -I "$src/shim" -o "$work/layout" \
		"$src/tests/apps/abi12_layout.c" >"$work/cc.log" 2>&1; then
		bad "abi12_layout.c does not compile against the CUDA 12 headers: shim_abi12.h disagrees with them:"
		grep -E 'error|assert' "$work/cc.log" | head -20
		finish
	fi
	if "$work/layout" >"$work/out"; then
		ok "$(cat "$work/out")"
	else
		bad "abi12_layout: $(cat "$work/out")"
	fi
	finish
}

run_app() {
	local name="tremote emulated device" line n
	if ! "$cc" "${cflags[@]}" -o "$work/abi12_check" "$src/tests/apps/abi12_check.c" \
		"$so" >"$work/cc.log" 2>&1; then
		cat "$work/cc.log"
		bad "abi12_check.c does not build against the CUDA 12 wheel"
		finish
	fi
	# Linked against the wheel: every CUDA call is NAME@libcudart.so.12.
	n=$(nm -D --undefined-only --with-symbol-versions "$work/abi12_check" |
		grep -c '@libcudart\.so\.12$')
	[ "$n" -gt 20 ] && ok "abi12_check calls $n functions @libcudart.so.12" ||
		bad "abi12_check references only $n symbols @libcudart.so.12"

	source "$src/tests/integration/lib.sh"
	tr_init "$build"
	tr_start_broker --local 1 --emu-mem 1G
	# The loader must find the program's libcudart.so.12; the shim,
	# preloaded, answers its calls first.
	LD_LIBRARY_PATH=$(dirname "$so")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} \
		tr_run "$work/abi12_check" "$name"
	local rc=$?
	cat "$TR_TMP/out"
	if [ "$rc" -eq 0 ] && grep -q "^PASS: abi12_check" "$TR_TMP/out"; then
		ok "abi12_check passed under the shim"
	else
		bad "abi12_check exited $rc; broker log:"
		cat "$TR_TMP/broker.log"
	fi
	for line in "tremote: cudaLaunchCooperativeKernelMultiDevice is not supported yet (cudaErrorNotSupported)" \
		"tremote: cudaGraphGetEdges is not supported yet (cudaErrorNotSupported)"; do
		[ "$(grep -cxF -- "$line" "$TR_TMP/out")" = 1 ] && ok "said once: $line" ||
			bad "expected once: $line"
	done
	tr_stop_broker
	[ "$BROKER_STATUS" = 0 ] && ok "broker exited 0 on SIGTERM" ||
		bad "broker exited $BROKER_STATUS on SIGTERM"
	finish
}

case "$mode" in
layout) run_layout ;;
app) run_app ;;
*) echo "abi12.sh: unknown mode $mode (layout or app)" >&2; exit 2 ;;
esac
