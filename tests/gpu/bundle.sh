#!/usr/bin/env bash
# bundle.sh BUILD_DIR OUT_DIR: gather what tests/gpu/run.sh needs on a GPU
# machine that has the NVIDIA driver but none of our Debian libraries and no
# package registry: the broker, the agent, the shim, the test programs and
# va_probe, tr_relay, tremote-bench, tremote-smi, test_cuda_backend with its fake
# driver, fatbin and the toolkit's stub libcuda (in tests/cuda_backend/stub,
# never in lib/, where it would hide the real driver), laid out like a build
# directory, plus every shared library they
# load that is not part of glibc (found with ldd) in OUT_DIR/lib, with
# libcudart.so.13 from the toolkit for the native runs.
set -eu
build=$(cd "$1" && pwd)
out=$2
cuda=${CUDA_HOME:-/usr/local/cuda}
src=$(cd "$(dirname "$0")/../.." && pwd)
rm -rf "$out"
mkdir -p "$out/lib" "$out/shim" "$out/broker" "$out/gpu-agent" "$out/tests/apps" "$out/bin" \
    "$out/tests/tools" "$out/tools/bench" "$out/tests/cuda_backend/fake" \
    "$out/tests/cuda_backend/stub" "$out/tools/smi"
cp "$build/shim/libtremote_shim.so" "$out/shim/"
cp "$build/broker/tremote-broker" "$out/broker/"
cp "$build/gpu-agent/tremote-gpu-agent" "$out/gpu-agent/"
cp "$build/tests/tools/tr_relay" "$out/tests/tools/"
cp "$build/tools/bench/tremote-bench" "$out/tools/bench/"
cp "$build/tools/smi/tremote-smi" "$out/tools/smi/"
cp "$build/tests/test_cuda_backend" "$out/tests/"
cp "$build/tests/cuda_backend/fake/libcuda.so.1" "$out/tests/cuda_backend/fake/"
cp "$build/tests/cuda_backend/test_cuda_backend_kernels.fatbin" "$out/tests/cuda_backend/"
cp -L "$cuda/lib64/stubs/libcuda.so" "$out/tests/cuda_backend/stub/"
for f in "$build"/tests/apps/*; do
    [ -f "$f" ] && [ -x "$f" ] && cp "$f" "$out/tests/apps/"
done
gcc -std=gnu11 -O2 -Wall -Wextra -Werror -I"$src/include" -I"$cuda/include" \
    "$src/tests/gpu/va_probe.c" -o "$out/bin/va_probe" -ldl
cp -L "$cuda/lib64/libcudart.so.13" "$out/lib/"
# Libraries outside glibc that our binaries load.  The test programs' C++
# runtime (libstdc++, libgcc_s) goes to lib/cxx: run.sh uses it only where
# the machine's own cannot serve them (a bare image, or an older one),
# since first in the path it would also serve the machine's own programs,
# which may need a newer one.
for f in "$out"/shim/*.so "$out"/broker/* "$out"/gpu-agent/* "$out"/tests/tools/* "$out"/tools/bench/* \
    "$out"/tests/test_cuda_backend "$out"/tools/smi/* "$out"/tests/apps/*; do
    ldd "$f" | awk '/=> \// {print $3}'
done | sort -u | while read -r lib; do
    case "$(basename "$lib")" in
    libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|ld-linux*) ;;
    libresolv.so*|libnss_*|libanl.so*|libutil.so*) ;; # glibc's too (GLIBC_PRIVATE)
    libcuda.so*|libnvidia*) ;; # the driver's own, never ours to carry
    libstdc++.so*|libgcc_s.so*) mkdir -p "$out/lib/cxx"; cp -L "$lib" "$out/lib/cxx/" ;;
    *) cp -L "$lib" "$out/lib/" ;;
    esac
done
du -sh "$out"
