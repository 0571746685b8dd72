// emu_vector_add: c[i] = a[i] + b[i] in float, n = 1<<20, with a block size
// (251) that does not divide n, so the last block has idle threads.  The
// output buffer is longer than n and filled with a guard pattern first: the
// elements past n must be left alone.  Float addition is exactly rounded, so
// the comparison is bit for bit.
#include "emu_check.h"

__global__ void vector_add(const float *a, const float *b, float *c, int n)
{
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n)
    c[i] = a[i] + b[i];
}

int main()
{
  const int n = 1 << 20, guard = 1000, block = 251;
  const int grid = (n + block - 1) / block;
  float *ha = (float *)malloc(n * sizeof(float));
  float *hb = (float *)malloc(n * sizeof(float));
  float *hc = (float *)malloc((n + guard) * sizeof(float));
  for (int i = 0; i < n; i++) {
    ha[i] = (float)(int)(emu_hash(i) % 20001u - 10000) / 64.0f + 1.0f / 3.0f;
    hb[i] = (float)(emu_hash(i + n) % 1000u) * 0.001f - (float)(i % 7);
  }
  float *da, *db, *dc;
  CK(cudaMalloc(&da, n * sizeof(float)));
  CK(cudaMalloc(&db, n * sizeof(float)));
  CK(cudaMalloc(&dc, (n + guard) * sizeof(float)));
  CK(cudaMemcpy(da, ha, n * sizeof(float), cudaMemcpyHostToDevice));
  CK(cudaMemcpy(db, hb, n * sizeof(float), cudaMemcpyHostToDevice));
  CK(cudaMemset(dc, 0xA5, (n + guard) * sizeof(float)));

  vector_add<<<grid, block>>>(da, db, dc, n);
  CK_LAUNCH();
  CK(cudaDeviceSynchronize());
  CK(cudaMemcpy(hc, dc, (n + guard) * sizeof(float), cudaMemcpyDeviceToHost));

  EmuCheck chk("emu_vector_add");
  for (int i = 0; i < n; i++)
    chk.same_bits("c", i, hc[i], ha[i] + hb[i]);
  uint32_t pattern = 0xA5A5A5A5u;
  for (int i = n; i < n + guard; i++) {
    uint32_t u;
    memcpy(&u, &hc[i], 4);
    chk.eq("guard", i, u, pattern);
  }
  CK(cudaFree(da));
  CK(cudaFree(db));
  CK(cudaFree(dc));
  free(ha);
  free(hb);
  free(hc);
  return chk.finish();
}
