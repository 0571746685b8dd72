__global__ void mathf(float *f, int n) {
  int k = threadIdx.x; float x = f[k];
  f[k] = sinf(x) + expf(x) + logf(x) + powf(x, 2.5f) + tanhf(x) + sqrtf(x) + __sinf(x) + __cosf(x) + __expf(x) + __logf(x) + __fdividef(x, 3.f) + rsqrtf(x) + fabsf(x) + floorf(x) + ceilf(x) + truncf(x) + roundf(x) + fminf(x,1) + fmaxf(x,2) + fmaf(x,x,x) + __saturatef(x) + copysignf(x, -1.f) + x / f[k+1] + __frcp_rn(x) + __fsqrt_rn(x) + (float)isinf(x) + (float)n;
}
