# The CUDA 12 ABI of libtremote_shim.so against CUDA 12 itself: PyPI's
# nvidia-cuda-runtime-cu12 wheel, fetched at test time into
# <build>/abi12 (skipped, exit 77, only where it cannot be fetched).
# (Included by tests/CMakeLists.txt; paths are relative to tests/.)

# shim/cudart12.exports is what shim/abi12_audit.py says; shim_abi12.h's
# CUDA 12 cudaDeviceProp and numbers are the wheel's.
tr_script_test(abi12_layout integration/abi12.sh FAST TIMEOUT 180 ARGS layout)
# A C program built against the wheel runs under the shim: CUDA 12's
# version, device properties, memory, streams, events, errors, stubs.
tr_script_test(abi12_app integration/abi12.sh FAST TIMEOUT 180 ARGS app)
