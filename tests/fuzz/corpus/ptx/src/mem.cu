#include <cuda/atomic>
#include <cooperative_groups.h>
#include <cooperative_groups/reduce.h>
namespace cg = cooperative_groups;
__managed__ int mval;
__device__ float gtab[2][3] = {{1, 2, 3}, {4}};
__device__ double dtab[] = {1.0, 2.5, -3.0};
__device__ long long ltab[3] = {-1, 0x7fffffffffffffffLL};
__constant__ short cs[5] = {1, -2};
__global__ void mem(const float * __restrict__ in, float *out, int *flag, unsigned long long *t, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  float v = __ldg(in + i) + __ldcs(in + i + 1) + __ldcg(in + 2) + __ldlu(in + 3);
  __stcs(out + i, v); __stwb(out + i + 1, v);
  cuda::atomic_ref<int, cuda::thread_scope_device> a(*flag);
  a.fetch_add(1, cuda::memory_order_acq_rel);
  int x = a.load(cuda::memory_order_acquire);
  a.store(x + 1, cuda::memory_order_release);
  cuda::atomic_ref<int, cuda::thread_scope_system> s(flag[1]); s.fetch_or(2, cuda::memory_order_relaxed);
  atomicAdd_block(flag + 2, 1); atomicAdd_system(flag + 3, 1);
  t[0] = clock64(); __nanosleep(100);
  cg::thread_block b = cg::this_thread_block();
  auto w = cg::tiled_partition<32>(b);
  int r = cg::reduce(w, i, cg::plus<int>());
  b.sync();
  out[i + 2] = r + gtab[1][i % 3] + dtab[i % 3] + ltab[i % 3] + cs[i % 5] + mval + __isGlobal(out) + __dp4a(i, x, r);
  if (i == 12345) __trap();
}
