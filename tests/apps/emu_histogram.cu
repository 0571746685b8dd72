// emu_histogram: atomics, checked exactly.
//   1. A 256-bin histogram of 1 MiB of bytes (half of them one hot value, so
//      the shared-memory atomics collide a lot): per-block bins in shared
//      memory with atomicAdd, then one global atomicAdd per non-empty bin.
//   2. One kernel of 64 x 128 threads hitting global memory with
//      atomicAdd (its return values must be a permutation of 0..N-1),
//      atomicSub, atomicMax/atomicMin (int, unsigned, long long, unsigned
//      long long), atomicCAS loops (32- and 64-bit), atomicExch (the old
//      values plus the final one are a permutation of the initial value and
//      all thread ids), atomicAnd/Or/Xor (32- and 64-bit), atomicInc and
//      atomicDec (final values and the multiset of old values follow from
//      the wrap-around sequence), float atomicAdd of small integers and
//      double atomicAdd of quarters (both sums exact in any order); plus
//      shared-memory atomicMax/atomicMin per block.
#include "emu_check.h"

#include <algorithm>
#include <limits.h>
#include <vector>

__global__ void histogram(const unsigned char *data, int n, unsigned *bins)
{
  __shared__ unsigned sh[256];
  for (int b = threadIdx.x; b < 256; b += blockDim.x)
    sh[b] = 0;
  __syncthreads();
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
    atomicAdd(&sh[data[i]], 1u);
  __syncthreads();
  for (int b = threadIdx.x; b < 256; b += blockDim.x)
    if (sh[b] != 0)
      atomicAdd(&bins[b], sh[b]);
}

struct G {
  int add_ctr, sub;
  int imax, imin;
  unsigned umax, umin;
  long long llmax, llmin;
  unsigned long long ullmax, ullmin;
  int cas32;
  unsigned long long cas64;
  int exch;
  unsigned and32, or32, xor32;
  unsigned long long and64, or64, xor64;
  unsigned inc, dec;
  float fsum;
  double dsum;
};

struct PerThread {
  int *add_old, *exch_old;
  unsigned *inc_old, *dec_old;
  int *blk_max;
  unsigned *blk_min;
};

#define INC_LIMIT 1000u
#define DEC_LIMIT 700u
#define DEC_START 5u
#define SUB_START 1000000

__device__ __host__ inline uint64_t v64_of(int gid)
{
  return ((uint64_t)emu_hash(gid) << 32) | emu_hash(gid + 0x10000);
}

__global__ void atomics(G *g, PerThread pt)
{
  __shared__ int smax;
  __shared__ unsigned smin;
  int gid = blockIdx.x * blockDim.x + threadIdx.x;
  uint32_t v = emu_hash(gid);
  uint64_t v64 = v64_of(gid);
  if (threadIdx.x == 0) {
    smax = INT_MIN;
    smin = UINT_MAX;
  }
  __syncthreads();
  atomicMax(&smax, (int)v);
  atomicMin(&smin, v);

  pt.add_old[gid] = atomicAdd(&g->add_ctr, 1);
  atomicSub(&g->sub, (int)(v & 0xff));
  atomicMax(&g->imax, (int)v);
  atomicMin(&g->imin, (int)v);
  atomicMax(&g->umax, v);
  atomicMin(&g->umin, v);
  atomicMax(&g->llmax, (long long)v64);
  atomicMin(&g->llmin, (long long)v64);
  atomicMax(&g->ullmax, (unsigned long long)v64);
  atomicMin(&g->ullmin, (unsigned long long)v64);

  int o32 = g->cas32, a32;
  do {
    a32 = o32;
    o32 = atomicCAS(&g->cas32, a32, a32 + (int)(v & 0xfff));
  } while (o32 != a32);
  unsigned long long o64 = g->cas64, a64;
  do {
    a64 = o64;
    o64 = atomicCAS(&g->cas64, a64, a64 + (v64 & 0xffffffffull));
  } while (o64 != a64);

  pt.exch_old[gid] = atomicExch(&g->exch, gid);
  if (gid < 20) {
    atomicAnd(&g->and32, ~(1u << (v & 31)));
    atomicOr(&g->or32, 1u << (v >> 27));
    atomicAnd(&g->and64, ~(1ull << (v64 & 63)));
    atomicOr(&g->or64, 1ull << (v64 >> 58));
  }
  atomicXor(&g->xor32, v);
  atomicXor(&g->xor64, (unsigned long long)v64);
  pt.inc_old[gid] = atomicInc(&g->inc, INC_LIMIT);
  pt.dec_old[gid] = atomicDec(&g->dec, DEC_LIMIT);
  atomicAdd(&g->fsum, (float)(gid % 17));
  atomicAdd(&g->dsum, (double)(gid % 1000) * 0.25);

  __syncthreads();
  if (threadIdx.x == 0) {
    pt.blk_max[blockIdx.x] = smax;
    pt.blk_min[blockIdx.x] = smin;
  }
}

int main()
{
  EmuCheck chk("emu_histogram");

  // 1. Histogram.
  const int n = 1 << 20;
  std::vector<unsigned char> data(n);
  unsigned want_bins[256] = {0};
  for (int i = 0; i < n; i++) {
    uint32_t h = emu_hash(i);
    data[i] = (h & 1) ? 7 : (unsigned char)(h >> 8);
    want_bins[data[i]]++;
  }
  unsigned char *ddata;
  unsigned *dbins;
  CK(cudaMalloc(&ddata, n));
  CK(cudaMalloc(&dbins, 256 * sizeof(unsigned)));
  CK(cudaMemcpy(ddata, data.data(), n, cudaMemcpyHostToDevice));
  CK(cudaMemset(dbins, 0, 256 * sizeof(unsigned)));
  histogram<<<48, 256>>>(ddata, n, dbins);
  CK_LAUNCH();
  CK(cudaDeviceSynchronize());
  unsigned bins[256];
  CK(cudaMemcpy(bins, dbins, sizeof bins, cudaMemcpyDeviceToHost));
  for (int b = 0; b < 256; b++)
    chk.eq("bin", b, bins[b], want_bins[b]);

  // 2. The other atomics.
  const int blocks = 64, threads = 128, N = blocks * threads;
  G init;
  memset(&init, 0, sizeof init);
  init.sub = SUB_START;
  init.imax = INT_MIN;
  init.imin = INT_MAX;
  init.umax = 0;
  init.umin = UINT_MAX;
  init.llmax = LLONG_MIN;
  init.llmin = LLONG_MAX;
  init.ullmax = 0;
  init.ullmin = ULLONG_MAX;
  init.cas32 = 17;
  init.cas64 = 1ull << 40;
  init.exch = -1;
  init.and32 = 0xffffffffu;
  init.or32 = 0;
  init.xor32 = 0x12345678u;
  init.and64 = ~0ull;
  init.or64 = 0;
  init.xor64 = 0x0123456789abcdefull;
  init.inc = 0;
  init.dec = DEC_START;
  init.fsum = 0.5f;
  init.dsum = -0.75;
  G *dg;
  CK(cudaMalloc(&dg, sizeof(G)));
  CK(cudaMemcpy(dg, &init, sizeof(G), cudaMemcpyHostToDevice));
  PerThread pt;
  CK(cudaMalloc(&pt.add_old, N * sizeof(int)));
  CK(cudaMalloc(&pt.exch_old, N * sizeof(int)));
  CK(cudaMalloc(&pt.inc_old, N * sizeof(unsigned)));
  CK(cudaMalloc(&pt.dec_old, N * sizeof(unsigned)));
  CK(cudaMalloc(&pt.blk_max, blocks * sizeof(int)));
  CK(cudaMalloc(&pt.blk_min, blocks * sizeof(unsigned)));
  atomics<<<blocks, threads>>>(dg, pt);
  CK_LAUNCH();
  CK(cudaDeviceSynchronize());

  G got;
  CK(cudaMemcpy(&got, dg, sizeof(G), cudaMemcpyDeviceToHost));
  std::vector<int> add_old(N), exch_old(N), blk_max(blocks);
  std::vector<unsigned> inc_old(N), dec_old(N), blk_min(blocks);
  CK(cudaMemcpy(add_old.data(), pt.add_old, N * sizeof(int), cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(exch_old.data(), pt.exch_old, N * sizeof(int), cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(inc_old.data(), pt.inc_old, N * sizeof(unsigned), cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(dec_old.data(), pt.dec_old, N * sizeof(unsigned), cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(blk_max.data(), pt.blk_max, blocks * sizeof(int), cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(blk_min.data(), pt.blk_min, blocks * sizeof(unsigned), cudaMemcpyDeviceToHost));

  // The host's view of the same operations.
  G w = init;
  std::vector<int> want_exch;
  std::vector<unsigned> want_inc, want_dec;
  want_exch.push_back(-1);
  for (int gid = 0; gid < N; gid++) {
    uint32_t v = emu_hash(gid);
    uint64_t v64 = v64_of(gid);
    w.add_ctr++;
    w.sub -= (int)(v & 0xff);
    w.imax = std::max(w.imax, (int)v);
    w.imin = std::min(w.imin, (int)v);
    w.umax = std::max(w.umax, v);
    w.umin = std::min(w.umin, v);
    w.llmax = std::max(w.llmax, (long long)v64);
    w.llmin = std::min(w.llmin, (long long)v64);
    w.ullmax = std::max(w.ullmax, (unsigned long long)v64);
    w.ullmin = std::min(w.ullmin, (unsigned long long)v64);
    w.cas32 += (int)(v & 0xfff);
    w.cas64 += v64 & 0xffffffffull;
    want_exch.push_back(gid);
    if (gid < 20) {
      w.and32 &= ~(1u << (v & 31));
      w.or32 |= 1u << (v >> 27);
      w.and64 &= ~(1ull << (v64 & 63));
      w.or64 |= 1ull << (v64 >> 58);
    }
    w.xor32 ^= v;
    w.xor64 ^= v64;
    want_inc.push_back(w.inc);
    w.inc = w.inc >= INC_LIMIT ? 0 : w.inc + 1;
    want_dec.push_back(w.dec);
    w.dec = (w.dec == 0 || w.dec > DEC_LIMIT) ? DEC_LIMIT : w.dec - 1;
    w.fsum += (float)(gid % 17);
    w.dsum += (double)(gid % 1000) * 0.25;
  }
  chk.eq("add_ctr", 0, got.add_ctr, w.add_ctr);
  chk.eq("sub", 0, got.sub, w.sub);
  chk.eq("imax", 0, got.imax, w.imax);
  chk.eq("imin", 0, got.imin, w.imin);
  chk.eq("umax", 0, got.umax, w.umax);
  chk.eq("umin", 0, got.umin, w.umin);
  chk.eq("llmax", 0, got.llmax, w.llmax);
  chk.eq("llmin", 0, got.llmin, w.llmin);
  chk.eq("ullmax", 0, got.ullmax, w.ullmax);
  chk.eq("ullmin", 0, got.ullmin, w.ullmin);
  chk.eq("cas32", 0, got.cas32, w.cas32);
  chk.eq("cas64", 0, got.cas64, w.cas64);
  chk.eq("and32", 0, got.and32, w.and32);
  chk.eq("or32", 0, got.or32, w.or32);
  chk.eq("xor32", 0, got.xor32, w.xor32);
  chk.eq("and64", 0, got.and64, w.and64);
  chk.eq("or64", 0, got.or64, w.or64);
  chk.eq("xor64", 0, got.xor64, w.xor64);
  chk.eq("inc", 0, got.inc, w.inc);
  chk.eq("dec", 0, got.dec, w.dec);
  chk.same_bits("fsum", 0, got.fsum, w.fsum);
  chk.same_bits("dsum", 0, got.dsum, w.dsum);

  std::sort(add_old.begin(), add_old.end());
  for (int i = 0; i < N; i++)
    chk.eq("add_old(sorted)", i, add_old[i], i);
  exch_old.push_back(got.exch);
  std::sort(exch_old.begin(), exch_old.end());
  for (int i = 0; i <= N; i++)
    chk.eq("exch_old+final(sorted)", i, exch_old[i], want_exch[i]);
  std::sort(inc_old.begin(), inc_old.end());
  std::sort(want_inc.begin(), want_inc.end());
  for (int i = 0; i < N; i++)
    chk.eq("inc_old(sorted)", i, inc_old[i], want_inc[i]);
  std::sort(dec_old.begin(), dec_old.end());
  std::sort(want_dec.begin(), want_dec.end());
  for (int i = 0; i < N; i++)
    chk.eq("dec_old(sorted)", i, dec_old[i], want_dec[i]);
  for (int b = 0; b < blocks; b++) {
    int m = INT_MIN;
    unsigned mn = UINT_MAX;
    for (int t = 0; t < threads; t++) {
      uint32_t v = emu_hash(b * threads + t);
      m = std::max(m, (int)v);
      mn = std::min(mn, v);
    }
    chk.eq("shared_max", b, blk_max[b], m);
    chk.eq("shared_min", b, blk_min[b], mn);
  }

  CK(cudaFree(ddata));
  CK(cudaFree(dbins));
  CK(cudaFree(dg));
  CK(cudaFree(pt.add_old));
  CK(cudaFree(pt.exch_old));
  CK(cudaFree(pt.inc_old));
  CK(cudaFree(pt.dec_old));
  CK(cudaFree(pt.blk_max));
  CK(cudaFree(pt.blk_min));
  return chk.finish();
}
