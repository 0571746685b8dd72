#!/usr/bin/env bash
# exports.sh - the shim's surface as a program sees it.
#
#   exports.sh BUILD_DIR symbols   the defined dynamic symbols of
#                                  libtremote_shim.so, as (name, version),
#                                  are exactly those of the toolkit's
#                                  libcudart.so.13 plus CUDA 12's, as
#                                  shim/cudart12.exports lists them, under
#                                  libcudart.so.12 (default version only for
#                                  the names CUDA 13 lacks)
#   exports.sh BUILD_DIR app       programs built here with nvcc, run with the
#                                  shim preloaded: a stubbed call returns 801
#                                  and says so once on stderr (also when 8
#                                  threads race to call it first), the pure calls
#                                  answer like libcudart, a statically linked
#                                  program and a driver-API program get the
#                                  preflight warnings, TREMOTE_QUIET=1 hushes
#                                  them
#
# Environment (set by ctest): CUDA_HOME, TR_SRC, TR_SANITIZE.  Under
# TR_SANITIZE=address|thread the shim is instrumented but the programs are
# not, so the sanitizer's runtime is preloaded first, as it must be.
# Exit 0 pass, 1 fail, 77 skip.
set -uo pipefail

build=${1:?usage: exports.sh BUILD_DIR symbols|app}
mode=${2:-symbols}
cuda=${CUDA_HOME:-/usr/local/cuda}
src=${TR_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
shim=$build/shim/libtremote_shim.so
cudart=$cuda/lib64/libcudart.so.13

passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok: $*"; }
bad() { failed=$((failed + 1)); echo "FAIL: $*"; }
finish() {
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
	exit $?
}

[ -f "$shim" ] || { echo "FAIL: $shim not built"; exit 1; }
[ -f "$cudart" ] || { echo "SKIP: no $cudart"; exit 77; }

# name@@version per defined dynamic symbol; the version definition itself
# shows as its bare name.
exports_of() {
	nm -D --defined-only --with-symbol-versions "$1" | awk 'NF == 3 { print $3 }' |
		LC_ALL=C sort
}

run_symbols() {
	local tmp ours theirs n12
	tmp=$(mktemp -d) || exit 1
	exports_of "$shim" >"$tmp/ours"
	# CUDA 12's: NAME@@libcudart.so.12 for a name CUDA 13 lacks (as
	# libcudart.so.12 has it), NAME@libcudart.so.12 for the others (CUDA
	# 13's NAME@@libcudart.so.13 is the default version of their name).
	awk -F'\t' '/^#/ || NF < 2 { next }
		{ print $1 ($2 == "only12" ? "@@" : "@") "libcudart.so.12" }' \
		"$src/shim/cudart12.exports" >"$tmp/cuda12"
	n12=$(wc -l <"$tmp/cuda12")
	[ "$n12" -gt 400 ] || { bad "shim/cudart12.exports lists only $n12 functions"; finish; }
	# ... and the shim's one export of its own (include/tremote/shim_entry.h).
	{ exports_of "$cudart"; cat "$tmp/cuda12"; echo libcudart.so.12;
	  echo TREMOTE_SHIM_1; echo tremote_shim_v1@@TREMOTE_SHIM_1; } |
		LC_ALL=C sort >"$tmp/theirs"
	ours=$(wc -l <"$tmp/ours")
	theirs=$(wc -l <"$tmp/theirs")
	if diff -u "$tmp/theirs" "$tmp/ours" >"$tmp/diff"; then
		ok "libtremote_shim.so exports the same $ours (name, version) pairs as libcudart.so.13 plus the $n12 of shim/cudart12.exports and tremote_shim_v1"
	else
		bad "exports differ (libcudart.so.13 + cudart12.exports: $theirs, shim: $ours); - only expected, + only in the shim:"
		grep '^[-+][^-+]' "$tmp/diff" | head -50
	fi
	# Every CUDA 13 function must carry the default version, like
	# libcudart's; nothing but CUDA 12's may carry another.
	if grep -v '^libcudart\.so\.1[23]$' "$tmp/ours" | grep -v 'libcudart\.so\.12$' |
		grep -v '^TREMOTE_SHIM_1$\|^tremote_shim_v1@@TREMOTE_SHIM_1$' |
		grep -qv '@@libcudart\.so\.13$'; then
		bad "symbols of neither node, or without the default version node libcudart.so.13:"
		grep -v '^libcudart\.so\.1[23]$' "$tmp/ours" | grep -v 'libcudart\.so\.12$' |
			grep -v '@@libcudart\.so\.13$' | head
	else
		ok "every CUDA 13 export has the default version node libcudart.so.13"
	fi
	# The CUDA 12 names jump to code of this library: a trampoline's first
	# instruction is a jump, so its symbol has a size.
	if nm -D --defined-only -S "$shim" | awk 'NF == 4 && $4 ~ /@libcudart\.so\.12$/ && $2 ~ /^0+$/' | grep -q .; then
		bad "CUDA 12 symbols of size 0"
	else
		ok "every CUDA 12 symbol is code"
	fi
	rm -rf "$tmp"
	finish
}

# The LD_PRELOAD value for a program: the sanitizer runtime must come first.
preload_value() {
	local rt
	case "${TR_SANITIZE:-}" in
	address) rt=$(gcc -print-file-name=libasan.so) ;;
	thread) rt=$(gcc -print-file-name=libtsan.so) ;;
	*) echo "$shim"; return ;;
	esac
	[ -f "$rt" ] || return 1
	echo "$rt:$shim"
}

run_app() {
	local nvcc=$cuda/bin/nvcc tmp preload call decl out err rc
	[ -x "$nvcc" ] || { echo "SKIP: no $nvcc"; exit 77; }
	preload=$(preload_value) || {
		echo "SKIP: no runtime for TR_SANITIZE=$TR_SANITIZE"
		exit 77
	}
	tmp=$(mktemp -d) || exit 1
	trap 'rm -rf "$tmp"' EXIT
	# No broker is reachable from here, whatever the machine runs.
	export XDG_RUNTIME_DIR=$tmp
	unset TREMOTE_QUIET

	# A call the shim does not implement: the first of these that is not in
	# implemented.list (the list grows as the shim does).
	call=
	for c in cudaStreamCreate cudaEventCreate cudaGraphCreate; do
		if ! grep -qx "$c" "$src/shim/implemented.list"; then
			call=$c
			break
		fi
	done
	case "$call" in
	cudaStreamCreate) decl='cudaStream_t h; cudaError_t e = cudaStreamCreate(&h)' ;;
	cudaEventCreate) decl='cudaEvent_t h; cudaError_t e = cudaEventCreate(&h)' ;;
	cudaGraphCreate) decl='cudaGraph_t h; cudaError_t e = cudaGraphCreate(&h, 0)' ;;
	esac

	cat >"$tmp/prog.cu" <<EOF
#include <cstdio>
#include <thread>
#include <vector>
#include <cuda_runtime.h>

__global__ void kern(int *p) { if (p) *p = 1; }

static void stubbed(const char *tag)
{
#ifdef STUB_CALL
	$decl;
	std::printf("%s=%d\n", tag, (int)e);
	std::printf("string=%s\n", cudaGetErrorString(e));
	std::printf("name=%s\n", cudaGetErrorName(e));
#endif
}

int main()
{
#ifdef STUB_CALL
	/* Racing first calls: still one line on stderr. */
	std::vector<std::thread> threads;
	for (int i = 0; i < 8; i++)
		threads.emplace_back([] { $decl; (void)e; });
	for (auto &t : threads)
		t.join();
#endif
	stubbed("stub");
	stubbed("again");
	std::printf("unknown=%s|%s\n", cudaGetErrorName((cudaError_t)12345),
		    cudaGetErrorString((cudaError_t)12345));
	std::printf("nodev=%s\n", cudaGetErrorString(cudaErrorNoDevice));
	cudaChannelFormatDesc d = cudaCreateChannelDesc(8, 16, 0, 32, cudaChannelFormatKindFloat);
	std::printf("channel=%d,%d,%d,%d,%d\n", d.x, d.y, d.z, d.w, (int)d.f);
	void *fn = (void *)&d;
	cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSuccess;
	cudaError_t e = cudaGetDriverEntryPointByVersion("cuInit", &fn, 12000, cudaEnableDefault, &q);
	std::printf("entry=%d,%s,%d\n", (int)e, fn ? "pointer" : "null", (int)q);
	return 0;
}
EOF
	cat >"$tmp/drv.cu" <<'EOF'
#include <cstdio>
#include <cuda.h>
int main() { int v = 0; std::printf("cuDriverGetVersion=%d\n", (int)cuDriverGetVersion(&v)); return 0; }
EOF
	local defs=()
	[ -n "$call" ] && defs=(-DSTUB_CALL)
	if ! (cd "$tmp" && "$nvcc" -cudart shared "${defs[@]}" -o prog_shared prog.cu) >"$tmp/nvcc.log" 2>&1 ||
		! (cd "$tmp" && "$nvcc" -o prog_static prog.cu) >>"$tmp/nvcc.log" 2>&1; then
		cat "$tmp/nvcc.log"
		echo "FAIL: nvcc could not build the test programs"
		exit 1
	fi

	# 1. The shared-runtime program under the shim.
	(cd "$tmp" && LD_PRELOAD=$preload ./prog_shared) >"$tmp/out" 2>"$tmp/err"
	rc=$?
	out=$(cat "$tmp/out")
	err=$(cat "$tmp/err")
	[ "$rc" -eq 0 ] && ok "prog_shared ran under the shim" ||
		bad "prog_shared exited $rc; stderr: $err"
	expect_line() { # where what
		if grep -qxF -- "$2" <<<"$1"; then ok "saw: $2"; else bad "missing: $2"; fi
	}
	if [ -n "$call" ]; then
		expect_line "$out" "stub=801"
		expect_line "$out" "again=801"
		expect_line "$out" "string=operation not supported"
		expect_line "$out" "name=cudaErrorNotSupported"
		local line="tremote: $call is not supported yet (cudaErrorNotSupported)"
		if [ "$(grep -cxF -- "$line" <<<"$err")" = 1 ]; then
			ok "stderr says once: $line"
		else
			bad "stderr should hold '$line' exactly once; it was: $err"
		fi
	else
		echo "note: cudaStreamCreate, cudaEventCreate and cudaGraphCreate are all implemented; stub check skipped"
	fi
	expect_line "$out" "unknown=unrecognized error code|unrecognized error code"
	expect_line "$out" "nodev=no CUDA-capable device is detected"
	expect_line "$out" "channel=8,16,0,32,2"
	expect_line "$out" "entry=801,null,1"
	expect_line "$err" "tremote: cudaGetDriverEntryPointByVersion is not supported yet (cudaErrorNotSupported)"
	if grep -q "links the CUDA runtime statically\|calls the CUDA driver directly" <<<"$err"; then
		bad "preflight warned about a shared-runtime program: $err"
	else
		ok "no preflight warning for the shared-runtime program"
	fi

	# 2. The statically linked program: one warning line, then it runs on
	#    its own runtime (which fails without a GPU: not our business).
	local static_line="tremote: ./prog_static links the CUDA runtime statically, so tremote cannot carry its calls; rebuild with 'nvcc -cudart shared' (CMake: set CMAKE_CUDA_RUNTIME_LIBRARY Shared)"
	(cd "$tmp" && LD_PRELOAD=$preload ./prog_static) >"$tmp/out" 2>"$tmp/err"
	err=$(cat "$tmp/err")
	if [ "$(grep -cxF -- "$static_line" <<<"$err")" = 1 ]; then
		ok "static program warned once"
	else
		bad "static program: expected '$static_line' once; stderr was: $err"
	fi
	(cd "$tmp" && TREMOTE_QUIET=1 LD_PRELOAD=$preload ./prog_static) >"$tmp/out" 2>"$tmp/err"
	if grep -q '^tremote:' "$tmp/err"; then
		bad "TREMOTE_QUIET=1 did not silence: $(cat "$tmp/err")"
	else
		ok "TREMOTE_QUIET=1 silences the preflight"
	fi

	# 3. A program that links the driver API.  The toolkit's stub libcuda
	#    stands in for the driver so it can start on a machine without one.
	if [ -f "$cuda/lib64/stubs/libcuda.so" ]; then
		mkdir -p "$tmp/drvlib"
		ln -s "$cuda/lib64/stubs/libcuda.so" "$tmp/drvlib/libcuda.so.1"
		if (cd "$tmp" && "$nvcc" -cudart shared -o prog_drv drv.cu \
			-L"$cuda/lib64/stubs" -lcuda) >>"$tmp/nvcc.log" 2>&1; then
			(cd "$tmp" && LD_LIBRARY_PATH=$tmp/drvlib LD_PRELOAD=$preload ./prog_drv) \
				>"$tmp/out" 2>"$tmp/err"
			local drv_line="tremote: ./prog_drv calls the CUDA driver directly (libcuda.so.1); tremote does not carry driver calls yet, so its GPU work will fail"
			if [ "$(grep -cxF -- "$drv_line" <<<"$(cat "$tmp/err")")" = 1 ]; then
				ok "driver-API program warned once"
			else
				bad "driver-API program: expected '$drv_line'; stderr was: $(cat "$tmp/err")"
			fi
		else
			cat "$tmp/nvcc.log"
			bad "nvcc could not build the driver-API program"
		fi
	fi
	finish
}

case "$mode" in
symbols) run_symbols ;;
app) run_app ;;
*) echo "exports.sh: unknown mode $mode" >&2; exit 2 ;;
esac
