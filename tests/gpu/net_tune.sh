#!/bin/bash
# net_tune.sh BUNDLE: what the sizes of the broker-agent connection buy
# (TREMOTE_NET_TUNE, docs/OPERATIONS.md), on a host with enough cores
# (the GPU machine; on 2 vCPUs the figures are CPU starvation).  For each
# setting, twice: run.sh steps 6 (stream_fairness, emulated device) and 6b
# (many_clients), printing the small calls' idle and busy latencies and
# ratios; then tremote-bench's copies for the default and the smallest
# sizes.  Prints figures, judges nothing; results in docs/BENCHMARKS.md.
#   bash tests/gpu/net_tune.sh gpub   (a bundle made by bundle.sh)
B=${1:?usage: net_tune.sh BUNDLE_DIR}
here=$(cd "$(dirname "$0")" && pwd)
for rep in 1 2; do
    for t in "" "frame=16K,rcvbuf=128K,lowat=16K" "frame=32K" "rcvbuf=128K,lowat=16K"; do
        echo "##### TREMOTE_NET_TUNE='$t', run $rep"
        TREMOTE_NET_TUNE=$t TR_GPU_STEPS="6 6b" timeout 60 bash "$here/run.sh" "$B" 2>&1 |
            grep -E "^(idle|busy):|ratio=|small call p99" | sort -u
    done
done
for t in "" "frame=16K,rcvbuf=128K,lowat=16K"; do
    echo "##### tremote-bench, TREMOTE_NET_TUNE='$t'"
    TREMOTE_NET_TUNE=$t LD_LIBRARY_PATH=$B/lib timeout 60 "$B/tools/bench/tremote-bench" \
        --quick --no-delay --sizes 1M,16M,64M --build-dir "$B" 2>&1 |
        grep -E "MiB / TCP|null call p"
done
