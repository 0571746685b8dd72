#!/usr/bin/env bash
# build.sh — install what is missing, configure and build tremote.
#
#   ./build.sh            install missing Debian packages, build into build/
#   ./build.sh demo       build, then run a real CUDA program under the shim
#                         against a LOCAL agent (emulated device, no GPU needed)
#   ./build.sh test       build; run the whole suite, then the fast suite again
#                         under ASan+UBSan (build-asan/) and TSan (build-tsan/)
#   ./build.sh fast       build and run only the fast suite (no sanitizers)
#   ./build.sh help       this text
#
# Environment: CUDA_HOME (default /usr/local/cuda), JOBS (default: nproc),
# TR_SKIP_APT=1 to never call apt-get, TR_NO_SAN=1 to skip the sanitizer
# builds in `test` (for quick local runs; CI never sets it).
set -euo pipefail
cd "$(dirname "$0")"
top=$(pwd)

die() { echo "build.sh: $*" >&2; exit 1; }

PKGS=(build-essential cmake pkg-config liburing-dev libnghttp2-dev
      libcurl4-openssl-dev libxxhash-dev libzstd-dev libssl-dev clang
      libclang-rt-14-dev libcmocka-dev libinih-dev libjansson-dev python3
      python3-pip curl procps
      gnuplot-nox)

install_deps() {
    [ "${TR_SKIP_APT:-0}" = 1 ] && return 0
    local missing=() p
    for p in "${PKGS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "build.sh: installing ${missing[*]}"
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" \
        || die "apt-get install ${missing[*]} failed"
}

find_cuda() {
    CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
    [ -x "$CUDA_HOME/bin/nvcc" ] && [ -f "$CUDA_HOME/include/cuda_runtime_api.h" ] ||
        die "no CUDA toolkit at $CUDA_HOME (nvcc and headers are needed to build;
set CUDA_HOME to the toolkit's root, e.g. CUDA_HOME=/usr/local/cuda-13.0)"
    export CUDA_HOME
}

JOBS=${JOBS:-$(nproc)}

configure_build() { # dir [cmake args...]
    local dir=$1; shift
    cmake -S "$top" -B "$dir" -DCUDA_HOME="$CUDA_HOME" "$@" >/dev/null ||
        die "cmake configure of $dir failed"
    cmake --build "$dir" -j "$JOBS" || die "build of $dir failed"
}

run_ctest() { # dir label-args...
    local dir=$1; shift
    local log="$dir/ctest.log"
    ( cd "$dir" && ctest --output-on-failure -j "$JOBS" "$@" ) 2>&1 | tee "$log"
    local rc=${PIPESTATUS[0]}
    # ctest exits 0 when no test matched; that must not pass.
    grep -Eq '^[0-9]+% tests passed, [0-9]+ tests failed out of [1-9]' "$log" ||
        { echo "build.sh: no test ran in $dir" >&2; return 1; }
    return "$rc"
}

cmd=${1:-build}
case "$cmd" in
help|-h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
build|demo|test|fast) ;;
*) die "unknown command '$cmd' (valid: build, demo, test, fast, help)" ;;
esac

install_deps
find_cuda
configure_build "$top/build"

case "$cmd" in
build) echo "build.sh: built into build/ (run ./build.sh demo, ./build.sh test)" ;;
demo)  exec "$top/tests/integration/demo.sh" "$top/build" ;;
fast)  run_ctest "$top/build" -L fast ;;
test)
    rc=0
    echo "== full suite (build/)"
    run_ctest "$top/build" || rc=1
    if [ "${TR_NO_SAN:-0}" != 1 ]; then
        echo "== fast suite under ASan+UBSan (build-asan/)"
        configure_build "$top/build-asan" -DTR_SANITIZE=address
        run_ctest "$top/build-asan" -L fast || rc=1
        echo "== fast suite under TSan (build-tsan/)"
        configure_build "$top/build-tsan" -DTR_SANITIZE=thread
        run_ctest "$top/build-tsan" -L fast || rc=1
    fi
    [ $rc = 0 ] && echo "build.sh: all suites passed" || echo "build.sh: FAILED" >&2
    exit $rc ;;
esac
