__global__ void atoms(float *f, double *d, unsigned long long *u, int *i, unsigned *w) {
  __shared__ int si; __shared__ float sf; __shared__ unsigned long long sl;
  atomicAdd(f, 1.0f); atomicAdd(d, 2.0); atomicAdd(u, 3ull); atomicAdd(i, 1);
  atomicCAS(i, 1, 2); atomicCAS(u, 1ull, 2ull); atomicExch(i, 4); atomicExch(f, 1.0f);
  atomicInc(w, 10); atomicDec(w, 10); atomicMin(i, 3); atomicMax(i, 4); atomicMin(u, 3ull);
  atomicAnd(i, 1); atomicOr(i, 2); atomicXor(i, 3);
  atomicAdd(&si, 1); atomicAdd(&sf, 1.0f); atomicCAS(&sl, 1ull, 3ull); atomicMax(&si, 5);
  __syncthreads(); __threadfence(); __threadfence_block(); __threadfence_system();
  i[threadIdx.x] = si + (int)sf + (int)sl + atomicAdd(i+1, 0);
}
