// emu_constant: __constant__ and __device__ variables.
//   - __constant__ int c_table[256] filled with cudaMemcpyToSymbol in two
//     pieces (the second at an offset), read by a kernel at run-time indices;
//     __constant__ float c_coef[4] set in one call;
//   - __device__ int d_init[8] and __device__ float d_scale with static
//     initializers: read back with cudaMemcpyFromSymbol before any kernel
//     ran, and used by a kernel;
//   - __device__ int d_result[512], written by a kernel and read back with
//     cudaMemcpyFromSymbol (whole, and a piece at an offset);
//   - __device__ unsigned long long d_counter: its address from
//     cudaGetSymbolAddress, set and read with plain cudaMemcpy around a
//     kernel that atomically adds to it; cudaGetSymbolSize too.
#include "emu_check.h"

__constant__ int c_table[256];
__constant__ float c_coef[4];
__device__ int d_init[8] = {3, 1, 4, 1, 5, 9, 2, 6};
__device__ float d_scale = 2.5f;
__device__ int d_result[512];
__device__ unsigned long long d_counter;

__global__ void use_symbols(float *fout)
{
  int i = blockIdx.x * blockDim.x + threadIdx.x; // 0..511
  int idx = (i * 37 + 11) & 255;
  d_result[i] = c_table[idx] * d_init[i & 7] + c_table[255 - idx];
  // Only exactly rounded operations, and no multiply feeding an add.
  fout[i] = (float)c_table[idx] * c_coef[i & 3] * d_scale;
  atomicAdd(&d_counter, (unsigned long long)(i + 1));
}

int main()
{
  EmuCheck chk("emu_constant");

  // Static initializers, before any kernel.
  int init[8];
  float scale;
  CK(cudaMemcpyFromSymbol(init, d_init, sizeof init));
  CK(cudaMemcpyFromSymbol(&scale, d_scale, sizeof scale));
  const int want_init[8] = {3, 1, 4, 1, 5, 9, 2, 6};
  for (int k = 0; k < 8; k++)
    chk.eq("d_init", k, init[k], want_init[k]);
  chk.same_bits("d_scale", 0, scale, 2.5f);

  int table[256];
  for (int k = 0; k < 256; k++)
    table[k] = (int)(emu_hash(k) % 20001u) - 10000;
  CK(cudaMemcpyToSymbol(c_table, table, 100 * sizeof(int)));
  CK(cudaMemcpyToSymbol(c_table, table + 100, 156 * sizeof(int), 100 * sizeof(int)));
  const float coef[4] = {0.5f, -1.25f, 3.0f, 1.0f / 1024.0f};
  CK(cudaMemcpyToSymbol(c_coef, coef, sizeof coef));

  unsigned long long *pcounter = NULL;
  size_t counter_size = 0;
  CK(cudaGetSymbolAddress((void **)&pcounter, d_counter));
  CK(cudaGetSymbolSize(&counter_size, d_counter));
  chk.eq("cudaGetSymbolSize(d_counter)", 0, (unsigned long long)counter_size, 8ull);
  const unsigned long long start = 1000000000000ull;
  CK(cudaMemcpy(pcounter, &start, sizeof start, cudaMemcpyHostToDevice));

  float *dfout;
  CK(cudaMalloc(&dfout, 512 * sizeof(float)));
  use_symbols<<<4, 128>>>(dfout);
  CK_LAUNCH();
  CK(cudaDeviceSynchronize());

  int result[512], piece[64];
  float fout[512];
  unsigned long long counter = 0;
  CK(cudaMemcpyFromSymbol(result, d_result, sizeof result));
  CK(cudaMemcpyFromSymbol(piece, d_result, sizeof piece, 200 * sizeof(int)));
  CK(cudaMemcpy(fout, dfout, sizeof fout, cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(&counter, pcounter, sizeof counter, cudaMemcpyDeviceToHost));
  for (int i = 0; i < 512; i++) {
    int idx = (i * 37 + 11) & 255;
    int want = table[idx] * want_init[i & 7] + table[255 - idx];
    chk.eq("d_result", i, result[i], want);
    if (i >= 200 && i < 264)
      chk.eq("d_result[200..263]", i, piece[i - 200], want);
    float wf = (float)table[idx] * coef[i & 3] * 2.5f;
    chk.same_bits("fout", i, fout[i], wf);
  }
  chk.eq("d_counter", 0, counter, start + 512ull * 513ull / 2ull);
  CK(cudaFree(dfout));
  return chk.finish();
}
