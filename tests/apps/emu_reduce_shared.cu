// emu_reduce_shared: integer sum reduction, tree-shaped, in shared memory,
// with __syncthreads() inside the halving loop.  Each thread first sums a
// grid-stride slice of the input in a register; the block then folds its
// blockDim.x partial sums pairwise.  The loop starts at the power of two
// at or above blockDim.x and skips partners past the end, so block sizes
// that are not powers of two work too.  Run for block sizes 32, 64, 96,
// 128, 200, 256, 512 and 1024 with dynamically sized shared memory, and for
// 256 with a statically sized __shared__ array; every block's partial sum
// and the total (a second, one-block launch over the partials) are checked
// exactly against the host.
#include "emu_check.h"

__device__ int fold_block(int *sh, int v)
{
  unsigned tid = threadIdx.x, n = blockDim.x;
  sh[tid] = v;
  __syncthreads();
  unsigned p = 1;
  while (p < n)
    p <<= 1;
  for (unsigned s = p >> 1; s > 0; s >>= 1) {
    if (tid < s && tid + s < n)
      sh[tid] += sh[tid + s];
    __syncthreads();
  }
  return sh[0];
}

__global__ void reduce_dynamic(const int *in, int n, int *out)
{
  extern __shared__ int sh[];
  int v = 0;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
    v += in[i];
  int total = fold_block(sh, v);
  if (threadIdx.x == 0)
    out[blockIdx.x] = total;
}

__global__ void reduce_static256(const int *in, int n, int *out)
{
  __shared__ int sh[256];
  int v = 0;
  for (int i = blockIdx.x * 256 + threadIdx.x; i < n; i += gridDim.x * 256)
    v += in[i];
  sh[threadIdx.x] = v;
  __syncthreads();
  for (int s = 128; s > 0; s >>= 1) {
    if (threadIdx.x < s)
      sh[threadIdx.x] += sh[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0)
    out[blockIdx.x] = sh[0];
}

int main()
{
  const int n = 1000003, grid = 77;
  int *h = (int *)malloc(n * sizeof(int));
  long long total = 0;
  for (int i = 0; i < n; i++) {
    h[i] = (int)(emu_hash(i) % 2001u) - 1000;
    total += h[i];
  }
  int *din, *dpart, *dtot;
  CK(cudaMalloc(&din, n * sizeof(int)));
  CK(cudaMalloc(&dpart, grid * sizeof(int)));
  CK(cudaMalloc(&dtot, sizeof(int)));
  CK(cudaMemcpy(din, h, n * sizeof(int), cudaMemcpyHostToDevice));

  EmuCheck chk("emu_reduce_shared");
  const int sizes[] = {32, 64, 96, 128, 200, 256, 512, 1024, -256};
  for (int bs : sizes) {
    int block = bs < 0 ? -bs : bs;
    CK(cudaMemset(dpart, 0, grid * sizeof(int)));
    if (bs < 0)
      reduce_static256<<<grid, 256>>>(din, n, dpart);
    else
      reduce_dynamic<<<grid, block, block * sizeof(int)>>>(din, n, dpart);
    CK_LAUNCH();
    // The partials, summed again by one block of 128 threads.
    reduce_dynamic<<<1, 128, 128 * sizeof(int)>>>(dpart, grid, dtot);
    CK_LAUNCH();
    CK(cudaDeviceSynchronize());
    int part[grid], tot;
    CK(cudaMemcpy(part, dpart, sizeof part, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(&tot, dtot, sizeof tot, cudaMemcpyDeviceToHost));
    char what[64];
    snprintf(what, sizeof what, "block%d%s.partial", block, bs < 0 ? "static" : "");
    for (int b = 0; b < grid; b++) {
      long long want = 0;
      for (int t = 0; t < block; t++)
        for (long long i = (long long)b * block + t; i < n; i += (long long)grid * block)
          want += h[i];
      chk.eq(what, b, (long long)part[b], want);
    }
    snprintf(what, sizeof what, "block%d%s.total", block, bs < 0 ? "static" : "");
    chk.eq(what, 0, (long long)tot, total);
  }
  CK(cudaFree(din));
  CK(cudaFree(dpart));
  CK(cudaFree(dtot));
  free(h);
  return chk.finish();
}
