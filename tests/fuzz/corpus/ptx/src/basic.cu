#include <cstdio>
#include <cassert>
__constant__ float cvals[16];
__device__ int gcount = 5;
__device__ int garr[8] = {1,2,3};
__device__ float gf[4] = {1.5f, 2.0f};
__device__ double gd = 3.25;
struct S { int a; double b; char c[8]; };
__global__ void saxpy(int n, float a, const float *x, float *y) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x)
    y[i] = a * x[i] + y[i] + cvals[i & 15];
}
__global__ void structk(S s, int *out) { out[threadIdx.x] = s.a + (int)s.b + s.c[threadIdx.x & 7]; }
__global__ void pr(int x) { printf("hello %d %f\n", x, 1.5); assert(x != 3); }
__noinline__ __device__ int fib(int n) { return n < 2 ? n : fib(n-1) + fib(n-2); }
__global__ void rec(int *o) { o[threadIdx.x] = fib(threadIdx.x); }
extern __shared__ float dyn[];
__global__ void sh(float *o) { __shared__ float s[64]; __shared__ double d2[3];
  s[threadIdx.x] = threadIdx.x; d2[threadIdx.x%3]=1; dyn[threadIdx.x] = 2; __syncthreads(); o[threadIdx.x] = s[63-threadIdx.x] + dyn[0] + d2[1]; }
__global__ void local(int *o, int k) { int arr[32]; for (int i=0;i<32;i++) arr[i]=i*k; o[threadIdx.x] = arr[o[0]&31]; }
