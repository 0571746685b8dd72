#include <cuda_fp16.h>
#include <cuda_bf16.h>
__global__ void h2k(__half2 *a, __nv_bfloat162 *b, __half *h, float *f, int n) {
  int i = threadIdx.x;
  __half2 x = a[i], y = a[i + 1];
  a[i] = __hfma2(x, y, __hmax2(x, y)) + h2exp(x) + h2sqrt(y) + __hmul2_sat(x, y);
  __nv_bfloat162 u = b[i], v = b[i + 1];
  b[i] = __hfma2(u, v, u) + __hmin2(u, v);
  h[i] = __hmax(h[i], h[i+1]) + __hfma(h[i], h[i+2], __float2half(2.5f)) + __hneg(h[i]) + hrcp(h[i]) + __ushort_as_half(0x3c00) + hsin(h[i]);
  f[i] = __low2float(x) + __high2float(y) + (float)__hgt(h[i], h[i+1]) + __half2float(__shfl_xor_sync(0xffffffff, h[i], 1)) + __bfloat162float(__float2bfloat16_rn(f[i]) * __float2bfloat16(3.0f));
  h[i+5] = __double2half(f[i] * 1.0); h[i+6] = __int2half_rn(n); h[i+7] = __float2half_rz(f[i+1]);
}
