// emu_matmul_tiled: C = A * B with 16x16 shared-memory tiles and
// __syncthreads() inside the tile loop, for sizes that are not multiples of
// 16 (200x150 times 150x170), so edge tiles are partly filled with zeros.
//   Pass 1: small-integer entries; every product and partial sum is an
//           integer below 2^24, so the float result is exact whatever the
//           order or fusing, and the check is exact.
//   Pass 2: random floats in [-1, 1); compared with a double-precision host
//           product with tolerance 1e-5 * sum_k |a_ik * b_kj| (the bound for
//           150-term float dot products is about 150 * 2^-24 = 9e-6 of that).
#include "emu_check.h"

#include <math.h>

#define TILE 16

__global__ void matmul_tiled(const float *A, const float *B, float *C, int M, int K, int N)
{
  __shared__ float As[TILE][TILE];
  __shared__ float Bs[TILE][TILE];
  int tx = threadIdx.x, ty = threadIdx.y;
  int row = blockIdx.y * TILE + ty;
  int col = blockIdx.x * TILE + tx;
  float acc = 0.0f;
  for (int t = 0; t < (K + TILE - 1) / TILE; t++) {
    int ka = t * TILE + tx, kb = t * TILE + ty;
    As[ty][tx] = (row < M && ka < K) ? A[row * K + ka] : 0.0f;
    Bs[ty][tx] = (kb < K && col < N) ? B[kb * N + col] : 0.0f;
    __syncthreads();
    for (int k = 0; k < TILE; k++)
      acc += As[ty][k] * Bs[k][tx];
    __syncthreads();
  }
  if (row < M && col < N)
    C[row * N + col] = acc;
}

int main()
{
  const int M = 200, K = 150, N = 170;
  float *hA = (float *)malloc(M * K * sizeof(float));
  float *hB = (float *)malloc(K * N * sizeof(float));
  float *hC = (float *)malloc(M * N * sizeof(float));
  float *dA, *dB, *dC;
  CK(cudaMalloc(&dA, M * K * sizeof(float)));
  CK(cudaMalloc(&dB, K * N * sizeof(float)));
  CK(cudaMalloc(&dC, M * N * sizeof(float)));
  dim3 block(TILE, TILE), grid((N + TILE - 1) / TILE, (M + TILE - 1) / TILE);
  EmuCheck chk("emu_matmul_tiled");

  for (int pass = 0; pass < 2; pass++) {
    for (int i = 0; i < M * K; i++)
      hA[i] = pass == 0 ? (float)((int)(emu_hash(i) % 17u) - 8)
                        : (float)((double)emu_hash(i) / 2147483648.0 - 1.0);
    for (int i = 0; i < K * N; i++)
      hB[i] = pass == 0 ? (float)((int)(emu_hash(i + 777777) % 9u) - 4)
                        : (float)((double)emu_hash(i + 777777) / 2147483648.0 - 1.0);
    CK(cudaMemcpy(dA, hA, M * K * sizeof(float), cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dB, hB, K * N * sizeof(float), cudaMemcpyHostToDevice));
    CK(cudaMemset(dC, 0xFF, M * N * sizeof(float)));
    matmul_tiled<<<grid, block>>>(dA, dB, dC, M, K, N);
    CK_LAUNCH();
    CK(cudaDeviceSynchronize());
    CK(cudaMemcpy(hC, dC, M * N * sizeof(float), cudaMemcpyDeviceToHost));
    for (int i = 0; i < M; i++)
      for (int j = 0; j < N; j++) {
        double ref = 0, mag = 0;
        for (int k = 0; k < K; k++) {
          double p = (double)hA[i * K + k] * (double)hB[k * N + j];
          ref += p;
          mag += fabs(p);
        }
        if (pass == 0)
          chk.same_bits("C(int)", (long long)i * N + j, hC[i * N + j], (float)ref);
        else
          chk.near("C(float)", (long long)i * N + j, hC[i * N + j], ref, 1e-5 * mag + 1e-30);
      }
  }
  CK(cudaFree(dA));
  CK(cudaFree(dB));
  CK(cudaFree(dC));
  free(hA);
  free(hB);
  free(hC);
  return chk.finish();
}
