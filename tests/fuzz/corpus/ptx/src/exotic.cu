#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <cstdio>
struct Q { double a[3]; int b; };
__global__ void __launch_bounds__(128, 4) ex1(int *o, float *f, __half2 *h2, __nv_bfloat16 *bf, const __grid_constant__ Q q) {
  int t = threadIdx.x;
  int c = __syncthreads_count(o[t] > 0) + __syncthreads_and(o[t] > 1) + __syncthreads_or(o[t] > 2);
  __threadfence_block();
  float v = __ldca(f + t) + __ldcv(f + t + 1);
  __stwt(f + t, v); __stcg(f + t + 2, v);
  atomicAdd(h2, h2[1]); atomicAdd(bf, bf[1]);
  c += __shfl_sync(0xffffffff, c, 3, 16) + __shfl_up_sync(0xffff, c, 2, 8);
  c += __isShared(o) + (int)__cvta_generic_to_shared(o) + __fns(0xf0f0, 3, 1);
  c += __hadd2_sat(h2[0], h2[1]).x > __half(0) ? 1 : 0;
  c += (int)q.a[t % 3] + q.b;
  __prof_trigger(3);
  if (c == 1234567) __brkpt();
  if (c == 7654321) asm("trap;");
  printf("%d %d %d %d %d %d %f %s\n", c, t, 1, 2, 3, 4, v, "z");
  unsigned long long r = (unsigned long long)c * 3ull;
  __int128 big = (__int128)r * r;
  o[t] = c + (int)(big >> 70);
}
__device__ int sum(int n, ...) { return n; }
#if __CUDA_ARCH__ >= 900
__global__ void __cluster_dims__(2, 1, 1) clk(int *o) { o[threadIdx.x] = 1; }
#endif
