// devices.cu: lists the devices the program sees ("devices N", then
// "device I: NAME" for each) after running a small kernel on each and
// checking its result, so a listed device is one that works.  With no
// device it prints "devices 0" and exits 0.  Used by static_machine.sh to
// check TREMOTE_VISIBLE_DEVICES (which machines, in which order).
#include <cuda_runtime.h>

#include <stdio.h>

#include "app_check.h"

__global__ void put(int *p, int v) { *p = v * 3 + 1; }

int main()
{
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);

  EXPECT(e == cudaSuccess || (e == cudaErrorNoDevice && n == 0),
         "cudaGetDeviceCount: %s", cudaGetErrorName(e));
  printf("devices %d\n", n);
  for (int i = 0; i < n; i++) {
    cudaDeviceProp p;
    int *d, h = -1;

    CK(cudaSetDevice(i));
    CK(cudaGetDeviceProperties(&p, i));
    CK(cudaMalloc(&d, sizeof(int)));
    put<<<1, 1>>>(d, i);
    CK(cudaGetLastError());
    CK(cudaMemcpy(&h, d, sizeof(int), cudaMemcpyDeviceToHost));
    EXPECT(h == i * 3 + 1, "device %d computed %d", i, h);
    CK(cudaFree(d));
    printf("device %d: %s\n", i, p.name);
  }
  return 0;
}
