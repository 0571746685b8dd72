// device_context.cu: the seed's "Advanced Usage with Context Manager" in
// C.  The seed's `with torch.remote.device(i):` is making that machine's
// device current (cudaSetDevice); random numbers created while it is
// current come from that device's generator, and operations on two
// tensors of the same machine work.
//
// Build: nvcc -cudart shared device_context.cu $(pkg-config --cflags --libs tremote)
// Run:   tremote run -- ./device_context
#include <cuda_runtime.h>

#include <stdio.h>

#include "tremote/tremote.h"

__global__ void add(const float *a, const float *b, float *c, int n)
{
  int i = blockIdx.x * blockDim.x + threadIdx.x;

  if (i < n)
    c[i] = a[i] + b[i];
}

int main(void)
{
  tremote_machine *m = tremote_create_machine(TREMOTE_PROVIDER_LOCAL, "H100",
                                              NULL);
  float *x, *y, *z, hx[25], hy[25], hz[25];
  int dev, prev = 0, bad = 0;

  if (!m) {
    fprintf(stderr, "create: %s\n", tremote_last_error());
    return 1;
  }
  dev = tremote_machine_device(m);
  cudaSetDevice(dev);
  cudaMalloc(&x, 25 * 4);
  tremote_rand_fill(x, 25, TREMOTE_RAND_NORMAL); /* x = randn(5, 5, device=) */

  cudaGetDevice(&prev); /* with torch.remote.device(machine.remote_index): */
  cudaSetDevice(dev);
  printf("current device %d (machine %s, index %d)\n", tremote_current_device(),
         tremote_machine_device_id(m), tremote_machine_remote_index(m));
  cudaMalloc(&y, 25 * 4);
  cudaMalloc(&z, 25 * 4);
  tremote_rand_fill(y, 25, TREMOTE_RAND_NORMAL); /* y = randn(5, 5) */
  add<<<1, 32>>>(x, y, z, 25);                   /* z = x + y */
  cudaSetDevice(prev); /* leaving the block */

  cudaMemcpy(hx, x, sizeof(hx), cudaMemcpyDeviceToHost);
  cudaMemcpy(hy, y, sizeof(hy), cudaMemcpyDeviceToHost);
  cudaMemcpy(hz, z, sizeof(hz), cudaMemcpyDeviceToHost);
  for (int i = 0; i < 25; i++)
    bad += hz[i] != hx[i] + hy[i];
  printf("z = x + y on the remote device: %s\n", bad ? "WRONG" : "right");
  cudaFree(x);
  cudaFree(y);
  cudaFree(z);
  tremote_remove_machine(m);
  tremote_machine_free(m);
  return bad != 0;
}
