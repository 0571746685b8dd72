/*
 * test_ptx_exec_kernels.cu: ordinary CUDA kernels, compiled to PTX by
 * nvcc at build time and run on the executor by test_ptx_exec_nvcc.c,
 * which checks their results against plain C.
 */
#include <cooperative_groups.h>
#include <cooperative_groups/reduce.h>
#include <cstdio>
#include <cassert>

namespace cg = cooperative_groups;

#define TILE 16

extern "C" __global__ void matmul(const float *A, const float *B, float *C,
                                  int n)
{
  __shared__ float As[TILE][TILE], Bs[TILE][TILE];
  int r = blockIdx.y * TILE + threadIdx.y, c = blockIdx.x * TILE + threadIdx.x;
  float acc = 0;
  for (int t = 0; t < n / TILE; t++) {
    As[threadIdx.y][threadIdx.x] = A[r * n + t * TILE + threadIdx.x];
    Bs[threadIdx.y][threadIdx.x] = B[(t * TILE + threadIdx.y) * n + c];
    __syncthreads();
    for (int k = 0; k < TILE; k++)
      acc += As[threadIdx.y][k] * Bs[k][threadIdx.x];
    __syncthreads();
  }
  C[r * n + c] = acc;
}

/* shared-memory tree, then warp shuffles, then one atomic per block */
extern "C" __global__ void reduce(const float *in, float *out, int n)
{
  extern __shared__ float s[];
  int tid = threadIdx.x, i = blockIdx.x * blockDim.x * 2 + tid;
  float v = 0;
  if (i < n)
    v = in[i];
  if (i + blockDim.x < n)
    v += in[i + blockDim.x];
  s[tid] = v;
  __syncthreads();
  for (int st = blockDim.x / 2; st > 32; st >>= 1) {
    if (tid < st)
      s[tid] += s[tid + st];
    __syncthreads();
  }
  if (tid < 32) {
    v = s[tid] + s[tid + 32];
    for (int o = 16; o > 0; o >>= 1)
      v += __shfl_down_sync(0xffffffff, v, o);
    if (tid == 0)
      atomicAdd(out, v);
  }
}

extern "C" __global__ void histogram(const unsigned char *in, unsigned *h,
                                     int n)
{
  __shared__ unsigned sh[256];
  for (int i = threadIdx.x; i < 256; i += blockDim.x)
    sh[i] = 0;
  __syncthreads();
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += blockDim.x * gridDim.x)
    atomicAdd(&sh[in[i]], 1);
  __syncthreads();
  for (int i = threadIdx.x; i < 256; i += blockDim.x)
    atomicAdd(&h[i], sh[i]);
}

__device__ int fib(int n)
{
  return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

extern "C" __global__ void fibs(int *o)
{
  o[threadIdx.x] = fib(threadIdx.x);
  printf("fib(%d) = %d %s %.3f\n", threadIdx.x, o[threadIdx.x],
         threadIdx.x & 1 ? "odd" : "even", threadIdx.x * 0.5);
}

extern "C" __global__ void checker(const int *v)
{
  assert(v[threadIdx.x] >= 0);
}

struct params {
  int a;
  double b;
  char tag[5];
  float f[3];
};

/* a struct passed by value: ld.param at offsets, or through its generic
   address */
extern "C" __global__ void by_value(struct params p, double *out)
{
  out[threadIdx.x] = p.a * p.b + p.f[threadIdx.x % 3] + p.tag[threadIdx.x % 5];
}

template <typename T> __device__ T twice(T v) { return v + v; }

extern "C" __global__ void grid_stride(double *y, const double *x, double a,
                                       int n)
{
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += blockDim.x * gridDim.x)
    y[i] = a * x[i] + twice(y[i]);
}

/* cooperative groups: tiles of 8, their shuffles and reductions */
extern "C" __global__ void tiles(const int *in, int *out)
{
  cg::thread_block b = cg::this_thread_block();
  cg::thread_block_tile<8> t = cg::tiled_partition<8>(b);
  int v = in[b.thread_rank()];
  int sum = cg::reduce(t, v, cg::plus<int>());
  int first = t.shfl(v, 0);
  out[b.thread_rank()] = sum * 1000 + first + (int)t.thread_rank();
}

/* a per-thread array big enough to live in local memory */
extern "C" __global__ void local_array(int *out, int k)
{
  int a[40];
  for (int i = 0; i < 40; i++)
    a[i] = i * threadIdx.x;
  out[threadIdx.x] = a[(threadIdx.x + k) % 40] + a[k % 40];
}

/* an exclusive scan of one block in shared memory (Hillis-Steele) */
extern "C" __global__ void scan(const unsigned *in, unsigned *out)
{
  extern __shared__ unsigned buf[];
  int t = threadIdx.x, n = blockDim.x;
  buf[t] = t > 0 ? in[t - 1] : 0;
  __syncthreads();
  for (int off = 1; off < n; off *= 2) {
    unsigned v = t >= off ? buf[t - off] : 0;
    __syncthreads();
    buf[t] += v;
    __syncthreads();
  }
  out[t] = buf[t];
}
