#include <cstdio>
struct P { double x, y; int id; };
__device__ __noinline__ P mkp(double a, int i) { P p{a, a * 2, i}; return p; }
__device__ __noinline__ float accum(const float *v, int n, P p) { float s = 0; for (int i = 0; i < n; i++) s += v[i] * p.x; return s + p.id; }
__global__ void heapk(float *o, int n) {
  int *buf = (int *)malloc(n * sizeof(int));
  if (!buf) { printf("alloc failed %d %s %c %lld %p\n", n, "x", 'c', (long long)n, o); return; }
  for (int i = 0; i < n; i++) buf[i] = i;
  P p = mkp(1.5, buf[n - 1]);
  o[threadIdx.x] = accum(o, n, p);
  free(buf);
}
extern __shared__ double4 dsm[];
__global__ void dynsh(double *o) { __shared__ int a[7]; __shared__ __align__(64) char c[3]; a[threadIdx.x % 7] = 1; c[0] = 2; dsm[threadIdx.x].x = 1.0; __syncthreads(); o[threadIdx.x] = dsm[threadIdx.x ^ 1].x + a[0] + c[0]; }
__global__ void gtimer(unsigned long long *o) { unsigned long long g; asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(g)); unsigned lm; asm("mov.u32 %0, %%lanemask_lt;" : "=r"(lm)); o[threadIdx.x] = g + lm + clock() ; }
