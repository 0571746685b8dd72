// multiple_devices.cu: the seed's "Multiple Devices" in C.  Two machines
// (LOCAL here; the seed's are a Modal T4 and A100-40GB), a matrix on each;
// operations within one machine work, and a kernel given memory of the
// other machine fails with cudaErrorInvalidValue (the seed's RuntimeError),
// with a line on stderr that names both machines.
//
// Build: nvcc -cudart shared multiple_devices.cu $(pkg-config --cflags --libs tremote)
// Run:   tremote run -- ./multiple_devices
#include <cuda_runtime.h>

#include <stdio.h>

#include "tremote/tremote.h"

__global__ void add(const float *a, const float *b, float *c, int n)
{
  int i = blockIdx.x * blockDim.x + threadIdx.x;

  if (i < n)
    c[i] = a[i] + b[i];
}

__global__ void scale(float *a, float k, int n)
{
  int i = blockIdx.x * blockDim.x + threadIdx.x;

  if (i < n)
    a[i] *= k;
}

int main(void)
{
  tremote_machine *t4 = tremote_create_machine(TREMOTE_PROVIDER_LOCAL, "T4",
                                               NULL);
  tremote_machine *a100 = tremote_create_machine(TREMOTE_PROVIDER_LOCAL,
                                                 "A100-40GB", NULL);
  float *x_t4, *y_t4, *x_a100, h[4];
  int d_t4, d_a100, rc = 0;
  cudaError_t e;

  if (!t4 || !a100) {
    fprintf(stderr, "create: %s\n", tremote_last_error());
    return 1;
  }
  d_t4 = tremote_machine_device(t4);
  d_a100 = tremote_machine_device(a100);
  printf("T4 machine: device %d, A100-40GB machine: device %d\n", d_t4,
         d_a100);

  cudaSetDevice(d_t4);
  cudaMalloc(&x_t4, 100 * 100 * 4);
  cudaMalloc(&y_t4, 100 * 100 * 4);
  tremote_rand_fill(x_t4, 100 * 100, TREMOTE_RAND_NORMAL);
  add<<<40, 256>>>(x_t4, x_t4, y_t4, 100 * 100); /* y_t4 = x_t4 + x_t4 */
  cudaMemcpy(h, y_t4, sizeof(h), cudaMemcpyDeviceToHost);
  printf("y_t4 = x_t4 + x_t4: %s\n", cudaGetErrorString(cudaGetLastError()));

  cudaSetDevice(d_a100);
  cudaMalloc(&x_a100, 200 * 200 * 4);
  tremote_rand_fill(x_a100, 200 * 200, TREMOTE_RAND_NORMAL);
  scale<<<157, 256>>>(x_a100, 2.0f, 200 * 200); /* y_a100 = x_a100 * 2 */
  e = cudaDeviceSynchronize();
  printf("x_a100 * 2: %s\n", cudaGetErrorString(e));
  rc |= e != cudaSuccess;

  /* z = x_t4 + x_a100: memory of two machines in one kernel. */
  add<<<40, 256>>>(x_t4, x_a100, x_a100, 100 * 100);
  e = cudaGetLastError();
  printf("x_t4 + x_a100: %s (%s)\n", cudaGetErrorName(e),
         e == cudaErrorInvalidValue ? "refused, as it must be" : "WRONG");
  rc |= e != cudaErrorInvalidValue;

  cudaFree(x_a100);
  cudaSetDevice(d_t4);
  cudaFree(x_t4);
  cudaFree(y_t4);
  tremote_remove_machine(t4);
  tremote_remove_machine(a100);
  tremote_machine_free(t4);
  tremote_machine_free(a100);
  return rc;
}
