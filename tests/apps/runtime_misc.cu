// runtime_misc.cu: the runtime calls around memory and devices (issue 5),
// self-checking; runs natively on a GPU as well.
//   - cudaDeviceSetLimit(cudaLimitStackSize) lets a deep recursion with
//     local arrays run; limits, device flags and cache config read back;
//   - PCI bus ids round-trip; cudaChooseDevice picks a device;
//   - pitched memory: cudaMallocPitch + cudaMemcpy2D both ways around a
//     kernel, cudaMemset2D; cudaMalloc3D + cudaMemcpy3D + cudaMemset3D;
//   - cudaMallocAsync / cudaFreeAsync on a stream; cudaMemcpyPeer on one
//     device; cudaMemcpyToSymbolAsync / FromSymbolAsync;
//   - the default memory pool: the device's pool is its current one,
//     settable to itself; attributes a program may set read back, the
//     others refuse; the used figures follow cudaMallocAsync and
//     cudaFreeAsync (and cudaMallocFromPoolAsync), the high-water mark
//     resets to the current figure; trimming succeeds;
//   - cudaLaunchCooperativeKernel and cudaLaunchKernelExC (with the
//     cooperative attribute; with none; with a cluster dimension): each
//     runs where the device has the feature and is refused at the launch
//     where it has not.
#include <cuda_runtime.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app_check.h"

__device__ int dev_var[8];

__device__ __noinline__ int deep(int n, int seed)
{
  volatile int local[24];
  for (int i = 0; i < 24; i++)
    local[i] = seed + i + n;
  if (n == 0)
    return local[5];
  return deep(n - 1, seed) + (local[n % 24] & 1);
}

__global__ void recurse(int *out, int depth)
{
  out[threadIdx.x] = deep(depth, threadIdx.x);
}

__global__ void twice2d(float *p, size_t pitch, int w, int h)
{
  int x = blockIdx.x * blockDim.x + threadIdx.x, y = blockIdx.y;
  if (x < w && y < h) {
    float *row = (float *)((char *)p + y * pitch);
    row[x] *= 2.0f;
  }
}

__global__ void iota(int *p, int n)
{
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
    p[i] = i;
}

// After launches of iota over 4096 ints at dc on stream s: every int is
// its index.
static void expect_iota(cudaStream_t s, const int *dc, const char *what)
{
  static int hc[4096];

  CK(cudaStreamSynchronize(s));
  CK(cudaMemcpy(hc, dc, sizeof(hc), cudaMemcpyDeviceToHost));
  for (int i = 0; i < 4096; i++)
    EXPECT(hc[i] == i, "%s %d: %d", what, i, hc[i]);
}

static int deep_host(int n, int seed)
{
  int local[24];
  for (int i = 0; i < 24; i++)
    local[i] = seed + i + n;
  if (n == 0)
    return local[5];
  return deep_host(n - 1, seed) + (local[n % 24] & 1);
}

int main()
{
  // Limits: a deep recursion needs more than the default 1 KiB of stack.
  size_t v = 0;
  CK(cudaDeviceGetLimit(&v, cudaLimitStackSize));
  EXPECT(v >= 1024, "default stack %zu", v);
  CK(cudaDeviceSetLimit(cudaLimitStackSize, 16384));
  CK(cudaDeviceGetLimit(&v, cudaLimitStackSize));
  EXPECT(v >= 16384, "stack after set: %zu", v);
  int *dout, out[32];
  CK(cudaMalloc(&dout, sizeof(out)));
  recurse<<<1, 32>>>(dout, 60);
  CK(cudaGetLastError());
  CK(cudaMemcpy(out, dout, sizeof(out), cudaMemcpyDeviceToHost));
  for (int i = 0; i < 32; i++)
    EXPECT(out[i] == deep_host(60, i), "recursion %d: %d vs %d", i, out[i], deep_host(60, i));
  CK(cudaSetDeviceFlags(cudaDeviceScheduleBlockingSync));
  unsigned flags = 0;
  CK(cudaGetDeviceFlags(&flags));
  EXPECT((flags & cudaDeviceScheduleMask) == cudaDeviceScheduleBlockingSync, "flags %#x", flags);
  enum cudaFuncCache cc;
  CK(cudaDeviceSetCacheConfig(cudaFuncCachePreferShared));
  CK(cudaDeviceGetCacheConfig(&cc));
  CK(cudaFuncSetCacheConfig(iota, cudaFuncCachePreferL1));
  const char *fname = NULL;
  CK(cudaFuncGetName(&fname, (const void *)iota));
  EXPECT(fname && strstr(fname, "iota"), "kernel name %s", fname ? fname : "(null)");
  {
    cudaError_t e = cudaFuncGetName(&fname, (const void *)&dev_var);

    printf("cudaFuncGetName(a variable): %s\n", cudaGetErrorName(e));
    /* Not cudaErrorInvalidDeviceFunction, as for cudaFuncGetAttributes:
       CUDA 13's runtime on an H200 answers so. */
    EXPECT(e == cudaErrorInvalidResourceHandle, "a name for a variable: %s",
           cudaGetErrorName(e));
  }
  (void)cudaGetLastError();
  printf("limits and settings: ok\n");

  char bus[32];
  int dev = -1;
  CK(cudaDeviceGetPCIBusId(bus, sizeof(bus), 0));
  CK(cudaDeviceGetByPCIBusId(&dev, bus));
  EXPECT(dev == 0, "bus id %s gave device %d", bus, dev);
  cudaDeviceProp want;
  memset(&want, 0, sizeof(want));
  want.major = 1;
  CK(cudaChooseDevice(&dev, &want));
  int count = 0;
  CK(cudaGetDeviceCount(&count));
  EXPECT(dev >= 0 && dev < count, "cudaChooseDevice gave %d", dev);
  printf("pci ids: %s; choose: ok\n", bus);

  // 2D.
  const int W = 250, H = 37;
  static float h2[H][W], back[H][W];
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      h2[y][x] = (float)(y * 1000 + x);
  float *d2;
  size_t pitch = 0;
  CK(cudaMallocPitch((void **)&d2, &pitch, W * sizeof(float), H));
  EXPECT(pitch >= W * sizeof(float), "pitch %zu", pitch);
  CK(cudaMemcpy2D(d2, pitch, h2, W * sizeof(float), W * sizeof(float), H, cudaMemcpyHostToDevice));
  twice2d<<<dim3((W + 127) / 128, H), 128>>>(d2, pitch, W, H);
  CK(cudaGetLastError());
  CK(cudaMemcpy2D(back, W * sizeof(float), d2, pitch, W * sizeof(float), H, cudaMemcpyDeviceToHost));
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      EXPECT(back[y][x] == 2.0f * h2[y][x], "2D (%d,%d): %g", x, y, back[y][x]);
  CK(cudaMemset2D(d2, pitch, 0, 10 * sizeof(float), H));
  CK(cudaMemcpy2D(back, W * sizeof(float), d2, pitch, W * sizeof(float), H, cudaMemcpyDeviceToHost));
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      EXPECT(back[y][x] == (x < 10 ? 0.0f : 2.0f * h2[y][x]), "memset2D (%d,%d): %g", x, y, back[y][x]);
  printf("2D: ok\n");

  // 3D.
  const int X = 40, Y = 7, Z = 5;
  static unsigned char h3[Z][Y][X], b3[Z][Y][X];
  for (int z = 0; z < Z; z++)
    for (int y = 0; y < Y; y++)
      for (int x = 0; x < X; x++)
        h3[z][y][x] = (unsigned char)(z * 50 + y * 7 + x);
  cudaPitchedPtr dp;
  cudaExtent ext = make_cudaExtent(X, Y, Z);
  CK(cudaMalloc3D(&dp, ext));
  cudaMemcpy3DParms p;
  memset(&p, 0, sizeof(p));
  p.srcPtr = make_cudaPitchedPtr(h3, X, X, Y);
  p.dstPtr = dp;
  p.extent = ext;
  p.kind = cudaMemcpyHostToDevice;
  CK(cudaMemcpy3D(&p));
  CK(cudaMemset3D(dp, 0xab, make_cudaExtent(5, Y, 2)));
  memset(&p, 0, sizeof(p));
  p.srcPtr = dp;
  p.dstPtr = make_cudaPitchedPtr(b3, X, X, Y);
  p.extent = ext;
  p.kind = cudaMemcpyDeviceToHost;
  CK(cudaMemcpy3D(&p));
  for (int z = 0; z < Z; z++)
    for (int y = 0; y < Y; y++)
      for (int x = 0; x < X; x++)
        EXPECT(b3[z][y][x] == (z < 2 && x < 5 ? 0xab : h3[z][y][x]), "3D (%d,%d,%d): %d", x, y,
               z, b3[z][y][x]);
  printf("3D: ok\n");

  // Stream-ordered allocation, peer copy on one device, symbols.
  cudaStream_t s;
  CK(cudaStreamCreate(&s));
  int *da, *db;
  const int n = 100000;
  CK(cudaMallocAsync((void **)&da, n * sizeof(int), s));
  iota<<<64, 128, 0, s>>>(da, n);
  CK(cudaMallocAsync((void **)&db, n * sizeof(int), s));
  CK(cudaStreamSynchronize(s));
  CK(cudaMemcpyPeer(db, 0, da, 0, n * sizeof(int)));
  static int hb[100000];
  CK(cudaMemcpy(hb, db, sizeof(hb), cudaMemcpyDeviceToHost));
  for (int i = 0; i < n; i++)
    EXPECT(hb[i] == i, "peer copy %d: %d", i, hb[i]);
  CK(cudaFreeAsync(da, s));
  CK(cudaFreeAsync(db, s));
  int sym[8] = {1, 2, 3, 4, 5, 6, 7, 8}, symback[8] = {0};
  CK(cudaMemcpyToSymbolAsync(dev_var, sym, sizeof(sym), 0, cudaMemcpyHostToDevice, s));
  CK(cudaMemcpyFromSymbolAsync(symback, dev_var, 4 * sizeof(int), 4 * sizeof(int),
                               cudaMemcpyDeviceToHost, s));
  CK(cudaStreamSynchronize(s));
  for (int i = 0; i < 4; i++)
    EXPECT(symback[i] == i + 5, "symbol %d: %d", i, symback[i]);
  printf("async allocation, peer copy, symbols: ok\n");

  // The default memory pool.
  cudaMemPool_t pool, cur;
  CK(cudaDeviceGetDefaultMemPool(&pool, 0));
  CK(cudaDeviceGetMemPool(&cur, 0));
  EXPECT(cur == pool, "the current pool is not the default one");
  CK(cudaDeviceSetMemPool(0, pool));
  EXPECT(cudaDeviceGetDefaultMemPool(&cur, 99) == cudaErrorInvalidDevice,
         "a pool of device 99");
  (void)cudaGetLastError();
  unsigned long long thr = 64ull << 20, pv = 0, used0 = 0, used = 0, high = 0;
  CK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &thr));
  CK(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &pv));
  EXPECT(pv == thr, "release threshold read back %llu", pv);
  int reuse = 0;
  CK(cudaMemPoolSetAttribute(pool, cudaMemPoolReuseAllowOpportunistic, &reuse));
  reuse = 1;
  CK(cudaMemPoolGetAttribute(pool, cudaMemPoolReuseAllowOpportunistic, &reuse));
  EXPECT(reuse == 0, "opportunistic reuse read back %d", reuse);
  pv = 1;
  EXPECT(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrUsedMemCurrent, &pv) ==
             cudaErrorInvalidValue, "UsedMemCurrent was settable");
  EXPECT(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &pv) ==
             cudaErrorInvalidValue, "UsedMemHigh was set to non-zero");
  (void)cudaGetLastError();
  CK(cudaStreamSynchronize(s));
  CK(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemCurrent, &used0));
  int *pa, *pb;
  const size_t big = 8u << 20;
  CK(cudaMallocAsync((void **)&pa, big, s));
  CK(cudaMallocFromPoolAsync((void **)&pb, big, pool, s));
  CK(cudaMemsetAsync(pa, 0, big, s));
  CK(cudaMemsetAsync(pb, 0, big, s));
  CK(cudaStreamSynchronize(s));
  CK(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemCurrent, &used));
  EXPECT(used >= used0 + 2 * big, "used %llu after two %zu-byte allocations "
         "(was %llu)", used, big, used0);
  CK(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemCurrent, &pv));
  EXPECT(pv >= used, "reserved %llu < used %llu", pv, used);
  CK(cudaFreeAsync(pa, s));
  CK(cudaFreeAsync(pb, s));
  CK(cudaStreamSynchronize(s));
  CK(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemCurrent, &pv));
  EXPECT(pv == used0, "used %llu after the frees, %llu before", pv, used0);
  CK(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &high));
  EXPECT(high >= used, "high-water mark %llu < %llu", high, used);
  pv = 0;
  CK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &pv));
  CK(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &high));
  EXPECT(high < used, "high-water mark %llu not reset", high);
  CK(cudaMemPoolTrimTo(pool, 0));
  printf("default memory pool: ok\n");

  // Cooperative and extended launches, where the device has cooperative
  // launches (a GPU; the emulated device refuses them at once).
  int *dc, coop = 0;
  CK(cudaMalloc(&dc, 4096 * sizeof(int)));
  CK(cudaMemset(dc, 0, 4096 * sizeof(int)));
  CK(cudaDeviceGetAttribute(&coop, cudaDevAttrCooperativeLaunch, 0));
  int nn = 4096;
  void *args[] = {&dc, &nn};
  cudaLaunchConfig_t cfg;
  memset(&cfg, 0, sizeof(cfg));
  cudaLaunchAttribute attr;
  attr.id = cudaLaunchAttributeCooperative;
  attr.val.cooperative = 1;
  cfg.gridDim = dim3(2);
  cfg.blockDim = dim3(64);
  cfg.stream = s;
  cfg.attrs = &attr;
  cfg.numAttrs = 1;
  if (coop) {
    CK(cudaLaunchCooperativeKernel((const void *)iota, dim3(2), dim3(128), args, 0, s));
    CK(cudaLaunchKernelExC(&cfg, (const void *)iota, args));
    expect_iota(s, dc, "launched");
    printf("cooperative and extended launches: ok\n");
  } else {
    cudaError_t e = cudaLaunchCooperativeKernel((const void *)iota, dim3(2),
                                                dim3(128), args, 0, s);
    EXPECT(e == cudaErrorNotSupported, "a cooperative launch without "
           "cooperative launches: %s", cudaGetErrorName(e));
    e = cudaLaunchKernelExC(&cfg, (const void *)iota, args);
    EXPECT(e == cudaErrorNotSupported, "cudaLaunchKernelExC cooperative "
           "without cooperative launches: %s", cudaGetErrorName(e));
    (void)cudaGetLastError();
    printf("cooperative launches: none on this device, refused at once: ok\n");
  }
  cfg.numAttrs = 0; // a plain extended launch runs anywhere
  CK(cudaMemsetAsync(dc, 0, 4096 * sizeof(int), s));
  CK(cudaLaunchKernelExC(&cfg, (const void *)iota, args));
  expect_iota(s, dc, "extended launch");
  printf("cudaLaunchKernelExC without attributes: ok\n");
  cfg.numAttrs = 1;

  // Thread block clusters, where the device has them (compute capability
  // 9.0: an H100 natively or through tremote); elsewhere refused at once.
  int clusters = 0;
  CK(cudaDeviceGetAttribute(&clusters, cudaDevAttrClusterLaunch, 0));
  attr.id = cudaLaunchAttributeClusterDimension;
  attr.val.clusterDim.x = 2;
  attr.val.clusterDim.y = 1;
  attr.val.clusterDim.z = 1;
  cfg.gridDim = dim3(4);
  cfg.blockDim = dim3(128);
  CK(cudaMemsetAsync(dc, 0, 4096 * sizeof(int), s));
  if (clusters) {
    CK(cudaLaunchKernelExC(&cfg, (const void *)iota, args));
    expect_iota(s, dc, "launched in clusters");
    printf("clusters of 2 blocks: ok\n");
  } else {
    cudaError_t e = cudaLaunchKernelExC(&cfg, (const void *)iota, args);
    EXPECT(e != cudaSuccess, "a cluster launch on a device without clusters "
                             "succeeded");
    EXPECT(cudaGetLastError() == e, "cudaGetLastError after it");
    printf("clusters: none on this device (%s at the launch): ok\n",
           cudaGetErrorName(e));
  }

  CK(cudaFree(dc));
  CK(cudaFree(d2));
  CK(cudaFree(dp.ptr));
  CK(cudaFree(dout));
  CK(cudaStreamDestroy(s));
  CK(cudaDeviceReset());
  printf("PASS runtime_misc\n");
  return 0;
}
