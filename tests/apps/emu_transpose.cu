// emu_transpose: tiled matrix transpose through a padded [32][33] shared
// tile (the extra column avoids bank conflicts), 32x8 threads per block,
// each thread moving 4 elements, for non-square matrices whose sides are
// not multiples of 32: 300x517 floats and 77x1000 doubles.  The output must
// be exactly the host transpose, and transposing back must give the input.
#include "emu_check.h"

#include <vector>

#define TDIM 32
#define BROWS 8

template <typename T>
__global__ void transpose(T *out, const T *in, int rows, int cols)
{
  __shared__ T tile[TDIM][TDIM + 1];
  int x = blockIdx.x * TDIM + threadIdx.x; // column of in
  int y = blockIdx.y * TDIM + threadIdx.y; // row of in
  for (int j = 0; j < TDIM; j += BROWS)
    if (x < cols && y + j < rows)
      tile[threadIdx.y + j][threadIdx.x] = in[(size_t)(y + j) * cols + x];
  __syncthreads();
  x = blockIdx.y * TDIM + threadIdx.x; // column of out = row of in
  y = blockIdx.x * TDIM + threadIdx.y; // row of out = column of in
  for (int j = 0; j < TDIM; j += BROWS)
    if (x < rows && y + j < cols)
      out[(size_t)(y + j) * rows + x] = tile[threadIdx.x][threadIdx.y + j];
}

template <typename T>
static void run(EmuCheck &chk, const char *name, int rows, int cols)
{
  size_t n = (size_t)rows * cols;
  std::vector<T> h(n), t(n), back(n);
  for (size_t i = 0; i < n; i++)
    h[i] = (T)(emu_hash((uint32_t)i) % 1000003u) / (T)8 - (T)(i % 3);
  T *din, *dt, *dback;
  CK(cudaMalloc(&din, n * sizeof(T)));
  CK(cudaMalloc(&dt, n * sizeof(T)));
  CK(cudaMalloc(&dback, n * sizeof(T)));
  CK(cudaMemcpy(din, h.data(), n * sizeof(T), cudaMemcpyHostToDevice));
  CK(cudaMemset(dt, 0, n * sizeof(T)));
  dim3 block(TDIM, BROWS);
  transpose<T><<<dim3((cols + TDIM - 1) / TDIM, (rows + TDIM - 1) / TDIM), block>>>(dt, din, rows, cols);
  CK_LAUNCH();
  transpose<T><<<dim3((rows + TDIM - 1) / TDIM, (cols + TDIM - 1) / TDIM), block>>>(dback, dt, cols, rows);
  CK_LAUNCH();
  CK(cudaDeviceSynchronize());
  CK(cudaMemcpy(t.data(), dt, n * sizeof(T), cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(back.data(), dback, n * sizeof(T), cudaMemcpyDeviceToHost));
  char what[64];
  snprintf(what, sizeof what, "%s.transposed", name);
  for (int r = 0; r < cols; r++)
    for (int c = 0; c < rows; c++)
      chk.same_bits(what, (long long)r * rows + c, t[(size_t)r * rows + c], h[(size_t)c * cols + r]);
  snprintf(what, sizeof what, "%s.back", name);
  for (size_t i = 0; i < n; i++)
    chk.same_bits(what, (long long)i, back[i], h[i]);
  CK(cudaFree(din));
  CK(cudaFree(dt));
  CK(cudaFree(dback));
}

int main()
{
  EmuCheck chk("emu_transpose");
  run<float>(chk, "float300x517", 300, 517);
  run<double>(chk, "double77x1000", 77, 1000);
  return chk.finish();
}
