// emu_grid_stride: a grid-stride loop over 100 M ints with a small grid
// (64 blocks x 256 threads: about 6100 iterations per thread):
// out[i] = 3 * i + 1.  The buffer starts as 0xff bytes; every element is
// checked.  This is the long one for the emulator (about 10^9 PTX
// instructions).
#include "emu_check.h"

__global__ void fill(int *out, size_t n)
{
  size_t stride = (size_t)gridDim.x * blockDim.x;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] = (int)(3 * i + 1);
}

int main()
{
  const size_t n = 100000000;
  int *d;
  CK(cudaMalloc(&d, n * sizeof(int)));
  CK(cudaMemset(d, 0xff, n * sizeof(int)));
  fill<<<64, 256>>>(d, n);
  CK_LAUNCH();
  CK(cudaDeviceSynchronize());
  int *h = (int *)malloc(n * sizeof(int));
  if (!h) {
    fprintf(stderr, "out of host memory\n");
    return 1;
  }
  CK(cudaMemcpy(h, d, n * sizeof(int), cudaMemcpyDeviceToHost));
  EmuCheck chk("emu_grid_stride");
  for (size_t i = 0; i < n; i++)
    chk.eq("out", (long long)i, h[i], (int)(3 * i + 1));
  free(h);
  CK(cudaFree(d));
  return chk.finish();
}
