#!/usr/bin/env bash
# abi12_wheel.sh - the CUDA 12 runtime from PyPI, for the CUDA 12 ABI.
#
#   abi12_wheel.sh DIR           download nvidia-cuda-runtime-cu12 into DIR
#                                (once: a second run reuses it), unpack it and
#                                print the directory holding its include/ and
#                                lib/libcudart.so.12
#   abi12_wheel.sh --regen DIR   the same, then rewrite shim/cudart12.exports
#                                with shim/abi12_audit.py (a developer's step,
#                                when moving to another wheel or toolkit)
#
# The version is the one shim/cudart12.exports was made from, or
# $TR_CU12_VERSION.  The build never runs this (it reads the committed
# cudart12.exports); the abi12 tests do, to build a CUDA 12 program and to
# check the committed file against the wheel.  Needs pip (python3 -m pip)
# and network access to PyPI.  Environment: CUDA_HOME (default
# /usr/local/cuda), for --regen.
#
# Exit 0; 3 with one line saying why if the wheel cannot be fetched (no
# pip, no network, no such version); 1 for any other failure; 2 usage.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
regen=0
if [ "${1:-}" = --regen ]; then
	regen=1
	shift
fi
if [ $# -ne 1 ]; then
	echo "usage: $0 [--regen] DIR" >&2
	exit 2
fi
dir=$1

die() { echo "abi12_wheel.sh: $*" >&2; exit 1; }
cannot_fetch() { echo "abi12_wheel.sh: $*" >&2; exit 3; }

version=${TR_CU12_VERSION:-$(sed -n 's/^# nvidia-cuda-runtime-cu12 \([0-9.]*\) .*/\1/p' \
	"$here/cudart12.exports")}
[ -n "$version" ] || die "no wheel version in $here/cudart12.exports (set TR_CU12_VERSION)"
pkg=nvidia-cuda-runtime-cu12==$version
dest=$dir/nvidia-cuda-runtime-cu12-$version
rt=$dest/nvidia/cuda_runtime

mkdir -p "$dir" || die "cannot create $dir"
# One fetch at a time: ctest may start two abi12 tests together.
exec 9>"$dir/.lock"
flock 9 || die "cannot lock $dir/.lock"
if [ ! -f "$rt/lib/libcudart.so.12" ] || [ ! -f "$rt/include/cuda_runtime_api.h" ]; then
	python3 -m pip --version >/dev/null 2>&1 ||
		cannot_fetch "pip is not installed (Debian: apt-get install python3-pip), so $pkg cannot be fetched"
	rm -rf "$dest" "$dir/dl"
	if ! python3 -m pip download --quiet --no-deps --only-binary=:all: \
		--disable-pip-version-check -d "$dir/dl" "$pkg" >"$dir/pip.log" 2>&1; then
		cannot_fetch "pip could not download $pkg: $(grep -v '^\s*$' "$dir/pip.log" | tail -1)"
	fi
	whl=$(ls "$dir"/dl/nvidia_cuda_runtime_cu12-"$version"-*.whl 2>/dev/null | head -1)
	[ -n "$whl" ] || die "pip downloaded no wheel of $pkg into $dir/dl"
	python3 -m zipfile -e "$whl" "$dest.tmp" || die "cannot unpack $whl"
	mv "$dest.tmp" "$dest"
	[ -f "$rt/lib/libcudart.so.12" ] || die "$whl holds no nvidia/cuda_runtime/lib/libcudart.so.12"
fi

if [ "$regen" = 1 ]; then
	cuda=${CUDA_HOME:-/usr/local/cuda}
	python3 "$here/abi12_audit.py" "$rt/include" "$rt/lib/libcudart.so.12" \
		"$cuda/include" "$cuda/lib64/libcudart.so.13" "$here/gen/compat" \
		"$version" >"$here/cudart12.exports.tmp" ||
		{ rm -f "$here/cudart12.exports.tmp"; die "the audit failed"; }
	mv "$here/cudart12.exports.tmp" "$here/cudart12.exports"
	echo "abi12_wheel.sh: wrote $here/cudart12.exports from $pkg" >&2
fi
echo "$rt"
