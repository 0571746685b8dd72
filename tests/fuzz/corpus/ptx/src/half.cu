#include <cuda_fp16.h>
#include <cuda_bf16.h>
__global__ void halfk(__half *h, __nv_bfloat16 *b, float *f, __half2 *h2) {
  int k = threadIdx.x;
  __half a = h[k], c = h[k+1];
  h[k] = __hadd(a, c) * c - a / c; 
  __nv_bfloat16 x = b[k], y = b[k+1];
  b[k] = x * y + x - y;
  f[k] = __half2float(a) + __bfloat162float(x) + (float)(a > c) + (float)__hisnan(a);
  h2[k] = __hmul2(h2[k], h2[k+1]) + __floats2half2_rn(1.0f, 2.0f);
  h[k+2] = __float2half(f[k+3]); b[k+2] = __float2bfloat16(f[k+4]); h[k+3] = hsqrt(a) + hexp(c);
  atomicAdd(h + 8, a); atomicAdd(h2 + 8, h2[0]); atomicAdd(b + 8, x);
}
