// emu_prefix_scan: exclusive prefix sum of ints, exact, for n that are not
// powers of two (1, 1000, 1025, 4097, 1000003).
//   Pass 1: each block of 512 threads scans 1024 elements in shared memory
//           with Blelloch's up-sweep / down-sweep (zero padding past n) and
//           writes its total to a block-sums array.
//   Pass 2: one block of 1024 threads scans the block sums with a
//           Hillis-Steele double-buffered inclusive scan, made exclusive by
//           subtracting each input.
//   Pass 3: every element adds its block's scanned offset.
// Checked element by element against a host scan.
#include "emu_check.h"

#include <vector>

#define SCAN_THREADS 512
#define SCAN_ELEMS (2 * SCAN_THREADS)

__global__ void scan_blocks(const int *in, int *out, int *block_sums, int n)
{
  __shared__ int t[SCAN_ELEMS];
  int tid = threadIdx.x;
  long long base = (long long)blockIdx.x * SCAN_ELEMS;
  int ai = tid, bi = tid + SCAN_THREADS;
  t[ai] = base + ai < n ? in[base + ai] : 0;
  t[bi] = base + bi < n ? in[base + bi] : 0;
  int offset = 1;
  for (int d = SCAN_ELEMS >> 1; d > 0; d >>= 1) { // up-sweep
    __syncthreads();
    if (tid < d) {
      int a = offset * (2 * tid + 1) - 1, b = offset * (2 * tid + 2) - 1;
      t[b] += t[a];
    }
    offset <<= 1;
  }
  if (tid == 0) {
    block_sums[blockIdx.x] = t[SCAN_ELEMS - 1];
    t[SCAN_ELEMS - 1] = 0;
  }
  for (int d = 1; d < SCAN_ELEMS; d <<= 1) { // down-sweep
    offset >>= 1;
    __syncthreads();
    if (tid < d) {
      int a = offset * (2 * tid + 1) - 1, b = offset * (2 * tid + 2) - 1;
      int x = t[a];
      t[a] = t[b];
      t[b] += x;
    }
  }
  __syncthreads();
  if (base + ai < n)
    out[base + ai] = t[ai];
  if (base + bi < n)
    out[base + bi] = t[bi];
}

// One block; blockDim.x (a power of two) >= n.
__global__ void scan_sums(int *sums, int n)
{
  __shared__ int buf[2][1024];
  int tid = threadIdx.x, p = 0;
  int v = tid < n ? sums[tid] : 0;
  buf[0][tid] = v;
  __syncthreads();
  for (int off = 1; off < blockDim.x; off <<= 1) {
    int x = buf[p][tid];
    if (tid >= off)
      x += buf[p][tid - off];
    buf[p ^ 1][tid] = x;
    p ^= 1;
    __syncthreads();
  }
  if (tid < n)
    sums[tid] = buf[p][tid] - v;
}

__global__ void add_offsets(int *out, const int *sums, int n)
{
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n)
    out[i] += sums[i / SCAN_ELEMS];
}

int main()
{
  EmuCheck chk("emu_prefix_scan");
  const int sizes[] = {1, 1000, 1025, 4097, 1000003};
  for (int n : sizes) {
    int blocks = (n + SCAN_ELEMS - 1) / SCAN_ELEMS; // <= 1024
    std::vector<int> h(n), got(n);
    for (int i = 0; i < n; i++)
      h[i] = (int)(emu_hash(i ^ n) % 201u) - 50;
    int *din, *dout, *dsums;
    CK(cudaMalloc(&din, n * sizeof(int)));
    CK(cudaMalloc(&dout, n * sizeof(int)));
    CK(cudaMalloc(&dsums, blocks * sizeof(int)));
    CK(cudaMemcpy(din, h.data(), n * sizeof(int), cudaMemcpyHostToDevice));
    scan_blocks<<<blocks, SCAN_THREADS>>>(din, dout, dsums, n);
    CK_LAUNCH();
    scan_sums<<<1, 1024>>>(dsums, blocks);
    CK_LAUNCH();
    add_offsets<<<(n + 255) / 256, 256>>>(dout, dsums, n);
    CK_LAUNCH();
    CK(cudaDeviceSynchronize());
    CK(cudaMemcpy(got.data(), dout, n * sizeof(int), cudaMemcpyDeviceToHost));
    char what[32];
    snprintf(what, sizeof what, "n=%d", n);
    long long acc = 0;
    for (int i = 0; i < n; i++) {
      chk.eq(what, i, (long long)got[i], acc);
      acc += h[i];
    }
    CK(cudaFree(din));
    CK(cudaFree(dout));
    CK(cudaFree(dsums));
  }
  return chk.finish();
}
