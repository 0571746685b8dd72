// basic_usage.cu: the seed's "Basic Usage" in C (torch_remote ->
// libtremote).  Create a machine (LOCAL here; the seed creates a Modal
// A100-40GB), fill two matrices with normal random numbers on it, multiply
// them there, and bring the result back, checked against the host.
//
//   seed:  machine = create_modal_machine("A100-40GB")
//          x = torch.randn(N, N, device=machine.device()); y = ...
//          z = x @ y; result = z.cpu()
//
// Build: nvcc -cudart shared basic_usage.cu $(pkg-config --cflags --libs tremote)
// Run:   tremote run -- ./basic_usage
#include <cuda_runtime.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "tremote/tremote.h"

#define N 192

#define CK(x)                                                                  \
  do {                                                                         \
    cudaError_t e_ = (x);                                                      \
    if (e_ != cudaSuccess) {                                                   \
      fprintf(stderr, "%s: %s\n", #x, cudaGetErrorString(e_));                 \
      return 1;                                                                \
    }                                                                          \
  } while (0)

__global__ void matmul(const float *a, const float *b, float *c, int n)
{
  int i = blockIdx.y * blockDim.y + threadIdx.y;
  int j = blockIdx.x * blockDim.x + threadIdx.x;

  if (i < n && j < n) {
    float s = 0;
    for (int k = 0; k < n; k++)
      s += a[i * n + k] * b[k * n + j];
    c[i * n + j] = s;
  }
}

int main(void)
{
  tremote_machine *m = tremote_create_machine(TREMOTE_PROVIDER_LOCAL,
                                              "A100-40GB", NULL);
  float *x, *y, *z, *hx, *hy, *hz;
  int dev, bad = 0;

  if (!m) {
    fprintf(stderr, "create: %s\n", tremote_last_error());
    return 1;
  }
  dev = tremote_machine_device(m); /* the seed's machine.device() */
  if (dev < 0) {
    fprintf(stderr, "device: %s\n", tremote_last_error());
    return 1;
  }
  printf("%s (%s) is CUDA device %d\n", tremote_machine_device_id(m),
         tremote_machine_device_name(m), dev);
  CK(cudaSetDevice(dev));
  CK(cudaMalloc(&x, N * N * 4));
  CK(cudaMalloc(&y, N * N * 4));
  CK(cudaMalloc(&z, N * N * 4));
  if (tremote_manual_seed(2024) < 0 ||
      tremote_rand_fill(x, N * N, TREMOTE_RAND_NORMAL) < 0 || /* randn */
      tremote_rand_fill(y, N * N, TREMOTE_RAND_NORMAL) < 0) {
    fprintf(stderr, "randn: %s\n", tremote_last_error());
    return 1;
  }
  matmul<<<dim3(N / 16, N / 16), dim3(16, 16)>>>(x, y, z, N); /* z = x @ y */
  CK(cudaGetLastError());
  hx = (float *)malloc(N * N * 4);
  hy = (float *)malloc(N * N * 4);
  hz = (float *)malloc(N * N * 4);
  CK(cudaMemcpy(hz, z, N * N * 4, cudaMemcpyDeviceToHost)); /* z.cpu() */
  CK(cudaMemcpy(hx, x, N * N * 4, cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(hy, y, N * N * 4, cudaMemcpyDeviceToHost));
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++) {
      double s = 0;
      for (int k = 0; k < N; k++)
        s += (double)hx[i * N + k] * hy[k * N + j];
      bad += fabs(s - hz[i * N + j]) > 1e-3 * (1 + fabs(s));
    }
  printf("z = x @ y (%dx%d) on %s: %s\n", N, N, tremote_machine_device_name(m),
         bad ? "WRONG" : "matches the host");
  CK(cudaFree(x));
  CK(cudaFree(y));
  CK(cudaFree(z));
  free(hx);
  free(hy);
  free(hz);
  tremote_remove_machine(m);
  tremote_machine_free(m);
  return bad != 0;
}
