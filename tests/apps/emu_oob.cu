// emu_oob: an illegal address, and how the error behaves afterwards.
//   1. A non-sticky error first: cudaMemcpy to an address that is no
//      allocation returns cudaErrorInvalidValue, cudaGetLastError then
//      clears it, and a kernel still runs fine.
//   2. A kernel writes p[1 << 38] (1 TiB past a 4 KiB allocation: no
//      allocation there on a GPU or on the emulated device).  The launch
//      itself is accepted (or already reports the fault);
//      cudaDeviceSynchronize returns cudaErrorIllegalAddress;
//      cudaPeekAtLastError and cudaGetLastError report it; its name and
//      text are right; and it is sticky: a cudaMalloc, a cudaMemcpy,
//      another synchronize and another launch all return it.  As on a real
//      GPU (checked on an H200, CUDA 13.0 runtime, driver 580), the
//      cudaGetLastError that reported it does reset the last-error slot (the
//      next one returns cudaSuccess), and each call that then fails sets it
//      again.
// Prints PASS and exits 0 when all of that holds.  (CUDA calls that are
// expected to fail are not wrapped in CK.)
#include "emu_check.h"

__global__ void write_at(int *p, size_t index, int v) { p[index] = v; }

#define EXPECT_ERR(call, want)                                                 \
  do {                                                                         \
    cudaError_t e_ = (call);                                                   \
    chk.expect(e_ == (want), "%s returned %s (%d), expected %s", #call,        \
               cudaGetErrorName(e_), (int)e_, cudaGetErrorName(want));         \
  } while (0)

int main()
{
  EmuCheck chk("emu_oob");
  int *p;
  CK(cudaMalloc(&p, 4096));

  // 1. Non-sticky.
  int x = 5;
  EXPECT_ERR(cudaMemcpy((void *)0x10, &x, sizeof x, cudaMemcpyHostToDevice),
             cudaErrorInvalidValue);
  EXPECT_ERR(cudaGetLastError(), cudaErrorInvalidValue);
  EXPECT_ERR(cudaGetLastError(), cudaSuccess);
  write_at<<<1, 1>>>(p, 3, 42);
  CK_LAUNCH();
  CK(cudaDeviceSynchronize());
  CK(cudaMemcpy(&x, p + 3, sizeof x, cudaMemcpyDeviceToHost));
  chk.eq("p[3]", 3, x, 42);

  // 2. The illegal address.
  write_at<<<1, 1>>>(p, (size_t)1 << 38, 7);
  cudaError_t launch = cudaGetLastError();
  chk.expect(launch == cudaSuccess || launch == cudaErrorIllegalAddress,
             "the launch returned %s", cudaGetErrorName(launch));
  EXPECT_ERR(cudaDeviceSynchronize(), cudaErrorIllegalAddress);
  EXPECT_ERR(cudaPeekAtLastError(), cudaErrorIllegalAddress);
  EXPECT_ERR(cudaGetLastError(), cudaErrorIllegalAddress);
  chk.expect(strcmp(cudaGetErrorName(cudaErrorIllegalAddress), "cudaErrorIllegalAddress") == 0,
             "cudaGetErrorName gave \"%s\"", cudaGetErrorName(cudaErrorIllegalAddress));
  chk.expect(strcmp(cudaGetErrorString(cudaErrorIllegalAddress),
                    "an illegal memory access was encountered") == 0,
             "cudaGetErrorString gave \"%s\"", cudaGetErrorString(cudaErrorIllegalAddress));
  // The last-error slot was reset by cudaGetLastError...
  EXPECT_ERR(cudaGetLastError(), cudaSuccess);
  EXPECT_ERR(cudaPeekAtLastError(), cudaSuccess);
  // ...but the context is unusable from now on (sticky).
  void *q = NULL;
  EXPECT_ERR(cudaMalloc(&q, 1024), cudaErrorIllegalAddress);
  EXPECT_ERR(cudaGetLastError(), cudaErrorIllegalAddress);
  EXPECT_ERR(cudaMemcpy(&x, p, sizeof x, cudaMemcpyDeviceToHost), cudaErrorIllegalAddress);
  EXPECT_ERR(cudaDeviceSynchronize(), cudaErrorIllegalAddress);
  EXPECT_ERR(cudaPeekAtLastError(), cudaErrorIllegalAddress);
  write_at<<<1, 1>>>(p, 0, 1);
  EXPECT_ERR(cudaGetLastError(), cudaErrorIllegalAddress);
  EXPECT_ERR(cudaFree(p), cudaErrorIllegalAddress);
  return chk.finish();
}
