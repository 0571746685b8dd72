// emu_reduce_shuffle: warp shuffles, all checked exactly on integers.
//   - block sum: __shfl_down_sync tree in each warp, warp sums through
//     shared memory, then the first warp reduces them the same way;
//   - __shfl_xor_sync butterfly: every lane gets the warp's sum and max;
//   - __shfl_up_sync: inclusive warp scan (Hillis-Steele in registers);
//   - __shfl_sync: broadcast of one lane (a different lane per warp), an
//     arbitrary per-lane permutation, and a broadcast of a double (two
//     32-bit shuffles);
//   - the width argument: __shfl_down_sync(.., 3, 8) and
//     __shfl_up_sync(.., 5, 16) within segments, __shfl_sync(.., 2, 16) and
//     __shfl_xor_sync(.., 1, 4).
// All launches use whole warps, so the full mask is always right.
#include "emu_check.h"

#define FULL 0xffffffffu

struct Outs {
  int *block_sum, *xsum, *xmax, *scan, *bcast, *perm, *down8, *up16, *seg16, *xor4;
  double *dbl;
};

__global__ void shuffles(const int *in, Outs o)
{
  __shared__ int warp_sums[32];
  int gid = blockIdx.x * blockDim.x + threadIdx.x;
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int gwarp = gid >> 5;
  int v = in[gid];

  // Tree sum with shfl_down: lane 0 ends with the warp's sum.
  int s = v;
  for (int off = 16; off > 0; off >>= 1)
    s += __shfl_down_sync(FULL, s, off);
  if (lane == 0)
    warp_sums[warp] = s;
  __syncthreads();
  if (warp == 0) {
    int w = lane < (int)(blockDim.x >> 5) ? warp_sums[lane] : 0;
    for (int off = 16; off > 0; off >>= 1)
      w += __shfl_down_sync(FULL, w, off);
    if (lane == 0)
      o.block_sum[blockIdx.x] = w;
  }

  // Butterflies: every lane gets the sum and the max.
  int xs = v, xm = v;
  for (int m = 16; m > 0; m >>= 1) {
    xs += __shfl_xor_sync(FULL, xs, m);
    xm = max(xm, __shfl_xor_sync(FULL, xm, m));
  }
  o.xsum[gid] = xs;
  o.xmax[gid] = xm;

  // Inclusive scan.
  int sc = v;
  for (int off = 1; off < 32; off <<= 1) {
    int t = __shfl_up_sync(FULL, sc, off);
    if (lane >= off)
      sc += t;
  }
  o.scan[gid] = sc;

  // Broadcasts and a permutation.
  o.bcast[gid] = __shfl_sync(FULL, v, (gwarp * 7 + 3) & 31);
  o.perm[gid] = __shfl_sync(FULL, v, (lane * 5 + 3) & 31);
  double d = (double)v * 0.5 + (double)gid * 0.25; // exact, fused or not
  o.dbl[gid] = __shfl_sync(FULL, d, (gwarp * 11 + 5) & 31);

  // Sub-warp widths.
  o.down8[gid] = __shfl_down_sync(FULL, v, 3, 8);
  o.up16[gid] = __shfl_up_sync(FULL, v, 5, 16);
  o.seg16[gid] = __shfl_sync(FULL, v, 2, 16);
  o.xor4[gid] = __shfl_xor_sync(FULL, v, 1, 4);
}

int main()
{
  const int block = 256, grid = 64, n = block * grid;
  int *h = (int *)malloc(n * sizeof(int));
  for (int i = 0; i < n; i++)
    h[i] = (int)(emu_hash(i) % 200001u) - 100000;
  int *din;
  CK(cudaMalloc(&din, n * sizeof(int)));
  CK(cudaMemcpy(din, h, n * sizeof(int), cudaMemcpyHostToDevice));
  Outs o;
  int **iouts[] = {&o.xsum, &o.xmax, &o.scan, &o.bcast, &o.perm, &o.down8, &o.up16, &o.seg16, &o.xor4};
  const char *names[] = {"xsum", "xmax", "scan", "bcast", "perm", "down8", "up16", "seg16", "xor4"};
  const int nout = sizeof iouts / sizeof iouts[0];
  for (int k = 0; k < nout; k++) {
    CK(cudaMalloc(iouts[k], n * sizeof(int)));
    CK(cudaMemset(*iouts[k], 0, n * sizeof(int)));
  }
  CK(cudaMalloc(&o.block_sum, grid * sizeof(int)));
  CK(cudaMalloc(&o.dbl, n * sizeof(double)));

  shuffles<<<grid, block>>>(din, o);
  CK_LAUNCH();
  CK(cudaDeviceSynchronize());

  EmuCheck chk("emu_reduce_shuffle");
  int *got = (int *)malloc(n * sizeof(int)), *want = (int *)malloc(n * sizeof(int));
  for (int k = 0; k < nout; k++) {
    CK(cudaMemcpy(got, *iouts[k], n * sizeof(int), cudaMemcpyDeviceToHost));
    for (int i = 0; i < n; i++) {
      int lane = i & 31, base = i - lane, gwarp = i >> 5;
      int w;
      switch (k) {
      case 0: // xsum
        w = 0;
        for (int l = 0; l < 32; l++)
          w += h[base + l];
        break;
      case 1: // xmax
        w = h[base];
        for (int l = 1; l < 32; l++)
          w = h[base + l] > w ? h[base + l] : w;
        break;
      case 2: // scan
        w = 0;
        for (int l = 0; l <= lane; l++)
          w += h[base + l];
        break;
      case 3:
        w = h[base + ((gwarp * 7 + 3) & 31)];
        break;
      case 4:
        w = h[base + ((lane * 5 + 3) & 31)];
        break;
      case 5: // down 3 within segments of 8: out of range keeps its own value
        w = (lane % 8) + 3 < 8 ? h[i + 3] : h[i];
        break;
      case 6: // up 5 within segments of 16
        w = (lane % 16) >= 5 ? h[i - 5] : h[i];
        break;
      case 7: // lane 2 of each 16-lane segment
        w = h[base + (lane / 16) * 16 + 2];
        break;
      default: // xor 1 within segments of 4
        w = h[i ^ 1];
        break;
      }
      want[i] = w;
    }
    for (int i = 0; i < n; i++)
      chk.eq(names[k], i, got[i], want[i]);
  }
  int bsum[grid];
  CK(cudaMemcpy(bsum, o.block_sum, sizeof bsum, cudaMemcpyDeviceToHost));
  for (int b = 0; b < grid; b++) {
    int w = 0;
    for (int t = 0; t < block; t++)
      w += h[b * block + t];
    chk.eq("block_sum", b, bsum[b], w);
  }
  double *gd = (double *)malloc(n * sizeof(double));
  CK(cudaMemcpy(gd, o.dbl, n * sizeof(double), cudaMemcpyDeviceToHost));
  for (int i = 0; i < n; i++) {
    int j = (i & ~31) + (((i >> 5) * 11 + 5) & 31);
    chk.same_bits("dbl", i, gd[i], (double)h[j] * 0.5 + (double)j * 0.25);
  }

  for (int k = 0; k < nout; k++)
    CK(cudaFree(*iouts[k]));
  CK(cudaFree(o.block_sum));
  CK(cudaFree(o.dbl));
  CK(cudaFree(din));
  free(h);
  free(got);
  free(want);
  free(gd);
  return chk.finish();
}
