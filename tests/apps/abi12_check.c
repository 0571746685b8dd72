/*
 * abi12_check.c: a CUDA 12 program under the shim.
 *
 * Plain C, built by tests/integration/abi12.sh with the host compiler
 * against the headers of PyPI's nvidia-cuda-runtime-cu12 wheel and linked
 * against its libcudart.so.12, so every call below is NAME@libcudart.so.12
 * (cudaGetDeviceProperties is cudaGetDeviceProperties_v2 there).  Run with
 * the shim preloaded against a broker and an emulated device, it checks
 * what a CUDA 12 program sees: CUDA 12's version, CUDA 12's cudaDeviceProp
 * filled field by field (the members CUDA 13 dropped included), memory,
 * streams and events, errors, and a call the shim does not implement.
 * Without the shim the wheel's libcudart finds no driver and the first
 * check fails.
 *
 *   abi12_check DEVICE_NAME    the name the emulated device reports
 *
 * Exit 0 with a PASS line, or 1 with what failed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

/* The plain name, which the CUDA 12 headers hide behind the _v2 macro:
   libcudart.so.12 fills only CUDA 11's struct (its first 728 bytes). */
cudaError_t plain_get_device_properties(struct cudaDeviceProp *prop,
                                        int device)
    __asm__("cudaGetDeviceProperties");

static int failed;

#define CK(call)                                                              \
  do {                                                                        \
    cudaError_t e_ = (call);                                                  \
    if (e_ != cudaSuccess) {                                                  \
      printf("FAIL line %d: %s: %s (%d)\n", __LINE__, #call,                  \
             cudaGetErrorName(e_), (int)e_);                                  \
      exit(1);                                                                \
    }                                                                         \
  } while (0)
#define EXPECT(cond, ...)                                                     \
  do {                                                                        \
    if (!(cond)) {                                                            \
      printf("FAIL line %d: ", __LINE__);                                     \
      printf(__VA_ARGS__);                                                    \
      printf("\n");                                                           \
      failed = 1;                                                             \
    }                                                                         \
  } while (0)

/* cudaDeviceProp members and the attribute each must equal. */
#define PROP_ATTRS(X)                                                         \
  X(major, cudaDevAttrComputeCapabilityMajor)                                 \
  X(minor, cudaDevAttrComputeCapabilityMinor)                                 \
  X(multiProcessorCount, cudaDevAttrMultiProcessorCount)                      \
  X(warpSize, cudaDevAttrWarpSize)                                            \
  X(maxThreadsPerBlock, cudaDevAttrMaxThreadsPerBlock)                        \
  X(maxThreadsDim[0], cudaDevAttrMaxBlockDimX)                                \
  X(maxThreadsDim[2], cudaDevAttrMaxBlockDimZ)                                \
  X(maxGridSize[0], cudaDevAttrMaxGridDimX)                                   \
  X(maxGridSize[1], cudaDevAttrMaxGridDimY)                                   \
  X(regsPerBlock, cudaDevAttrMaxRegistersPerBlock)                            \
  X(sharedMemPerBlock, cudaDevAttrMaxSharedMemoryPerBlock)                    \
  X(totalConstMem, cudaDevAttrTotalConstantMemory)                            \
  X(l2CacheSize, cudaDevAttrL2CacheSize)                                      \
  X(memoryBusWidth, cudaDevAttrGlobalMemoryBusWidth)                          \
  X(maxThreadsPerMultiProcessor, cudaDevAttrMaxThreadsPerMultiProcessor)      \
  X(concurrentKernels, cudaDevAttrConcurrentKernels)                          \
  X(asyncEngineCount, cudaDevAttrAsyncEngineCount)                            \
  X(unifiedAddressing, cudaDevAttrUnifiedAddressing)                          \
  X(managedMemory, cudaDevAttrManagedMemory)                                  \
  X(cooperativeLaunch, cudaDevAttrCooperativeLaunch)                          \
  X(maxBlocksPerMultiProcessor, cudaDevAttrMaxBlocksPerMultiprocessor)        \
  X(clusterLaunch, cudaDevAttrClusterLaunch)                                  \
  /* the members CUDA 13 dropped, which sit only in CUDA 12's layout */       \
  X(clockRate, cudaDevAttrClockRate)                                          \
  X(memoryClockRate, cudaDevAttrMemoryClockRate)                              \
  X(computeMode, cudaDevAttrComputeMode)                                      \
  X(kernelExecTimeoutEnabled, cudaDevAttrKernelExecTimeout)                   \
  X(deviceOverlap, cudaDevAttrGpuOverlap)                                     \
  X(singleToDoublePrecisionPerfRatio,                                         \
    cudaDevAttrSingleToDoublePrecisionPerfRatio)                              \
  X(cooperativeMultiDeviceLaunch, cudaDevAttrCooperativeMultiDeviceLaunch)

static void check_device(const char *want_name)
{
  struct {
    struct cudaDeviceProp p;
    unsigned char canary[64];
  } buf;
  unsigned char v1[sizeof(struct cudaDeviceProp) + 64];
  int v, n = 0, dev = -1;
  size_t i;

  CK(cudaGetDeviceCount(&n));
  EXPECT(n >= 1, "cudaGetDeviceCount: %d devices", n);
  memset(&buf, 0xa5, sizeof(buf));
  CK(cudaGetDeviceProperties(&buf.p, 0)); /* _v2, through the macro */
  for (i = 0; i < sizeof(buf.canary); i++)
    if (buf.canary[i] != 0xa5)
      break;
  EXPECT(i == sizeof(buf.canary), "cudaGetDeviceProperties wrote past "
         "CUDA 12's %zu-byte struct", sizeof(buf.p));
  EXPECT(strcmp(buf.p.name, want_name) == 0,
         "device name '%s', the emulated device is '%s'", buf.p.name,
         want_name);
  EXPECT(buf.p.totalGlobalMem > 0, "totalGlobalMem is 0");
  EXPECT(buf.p.major >= 1 && buf.p.multiProcessorCount >= 1,
         "major %d, multiProcessorCount %d", buf.p.major,
         buf.p.multiProcessorCount);
  /* The emulated device reports these; 0 would mean the CUDA 12 members
     were not filled. */
  EXPECT(buf.p.clockRate > 0 && buf.p.memoryClockRate > 0,
         "clockRate %d, memoryClockRate %d", buf.p.clockRate,
         buf.p.memoryClockRate);
#define CMP(field, attr)                                                      \
  CK(cudaDeviceGetAttribute(&v, attr, 0));                                    \
  EXPECT((long long)buf.p.field == (long long)v,                              \
         "cudaDeviceProp." #field " = %lld, " #attr " = %d",                  \
         (long long)buf.p.field, v);
  PROP_ATTRS(CMP)
#undef CMP
  EXPECT(buf.p.cooperativeMultiDeviceLaunch == 0,
         "cooperativeMultiDeviceLaunch %d: the shim cannot launch on several "
         "devices", buf.p.cooperativeMultiDeviceLaunch);
  EXPECT(cudaGetDeviceProperties_v2(&buf.p, n) == cudaErrorInvalidDevice,
         "cudaGetDeviceProperties of device %d (of %d) did not fail", n, n);
  EXPECT(cudaGetLastError() == cudaErrorInvalidDevice,
         "cudaGetLastError after an invalid device");
  EXPECT(cudaGetDeviceProperties_v2(NULL, 0) == cudaErrorInvalidValue,
         "cudaGetDeviceProperties(NULL) did not fail");
  (void)cudaGetLastError();

  /* The plain symbol: CUDA 11's prefix only. */
  memset(v1, 0x5a, sizeof(v1));
  CK(plain_get_device_properties((struct cudaDeviceProp *)v1, 0));
  EXPECT(strcmp(((struct cudaDeviceProp *)v1)->name, want_name) == 0,
         "plain cudaGetDeviceProperties: name '%s'",
         ((struct cudaDeviceProp *)v1)->name);
  EXPECT(((struct cudaDeviceProp *)v1)->clockRate == buf.p.clockRate,
         "plain cudaGetDeviceProperties: clockRate %d",
         ((struct cudaDeviceProp *)v1)->clockRate);
  for (i = 728; i < sizeof(v1); i++)
    if (v1[i] != 0x5a)
      break;
  EXPECT(i == sizeof(v1), "plain cudaGetDeviceProperties wrote byte %zu "
         "(libcudart.so.12 writes 728)", i);

  /* cudaChooseDevice reads a CUDA 12 struct. */
  CK(cudaChooseDevice(&dev, &buf.p));
  EXPECT(dev >= 0 && dev < n, "cudaChooseDevice gave %d", dev);
}

static void check_memory(void)
{
  enum { N = 1 << 16 };
  struct {
    struct cudaPointerAttributes a;
    unsigned char canary[64];
  } pa;
  unsigned char *d = NULL, *h = NULL, *m = NULL;
  unsigned char host[N];
  size_t i;

  CK(cudaMalloc((void **)&d, N));
  for (i = 0; i < N; i++)
    host[i] = (unsigned char)(i * 7);
  CK(cudaMemcpy(d, host, N, cudaMemcpyHostToDevice));
  CK(cudaMemset(d + 100, 0xee, 50));
  memset(host, 0, N);
  CK(cudaMemcpy(host, d, N, cudaMemcpyDeviceToHost));
  for (i = 0; i < N; i++) {
    unsigned char want = i >= 100 && i < 150 ? 0xee : (unsigned char)(i * 7);
    if (host[i] != want)
      break;
  }
  EXPECT(i == N, "device round trip differs at byte %zu", i);

  memset(&pa, 0xa5, sizeof(pa));
  CK(cudaPointerGetAttributes(&pa.a, d));
  EXPECT(pa.a.type == cudaMemoryTypeDevice && pa.a.devicePointer == d,
         "cudaPointerGetAttributes: type %d", (int)pa.a.type);
  for (i = 0; i < sizeof(pa.canary); i++)
    if (pa.canary[i] != 0xa5)
      break;
  EXPECT(i == sizeof(pa.canary), "cudaPointerGetAttributes wrote past "
         "CUDA 12's %zu-byte struct", sizeof(pa.a));

  CK(cudaMallocHost((void **)&h, N));
  memset(h, 0, N);
  CK(cudaMemcpy(h, d, N, cudaMemcpyDeviceToHost));
  EXPECT(h[120] == 0xee && h[7] == 49, "page-locked copy: %d %d", h[120], h[7]);
  CK(cudaFreeHost(h));

  /* CUDA 12's cudaMemPrefetchAsync takes a device ordinal. */
  CK(cudaMallocManaged((void **)&m, 4096, cudaMemAttachGlobal));
  CK(cudaMemPrefetchAsync(m, 4096, 0, 0));
  CK(cudaMemPrefetchAsync(m, 4096, cudaCpuDeviceId, 0));
  EXPECT(cudaMemPrefetchAsync(m, 4096, 999, 0) == cudaErrorInvalidDevice,
         "prefetch to device 999 did not fail");
  (void)cudaGetLastError();
  /* ... and so does its cudaMemAdvise. */
  CK(cudaMemAdvise(m, 4096, cudaMemAdviseSetPreferredLocation, 0));
  CK(cudaMemAdvise(m, 4096, cudaMemAdviseSetAccessedBy, cudaCpuDeviceId));
  EXPECT(cudaMemAdvise(m, 4096, cudaMemAdviseSetAccessedBy, 999) ==
             cudaErrorInvalidDevice, "advice for device 999 did not fail");
  (void)cudaGetLastError();
  CK(cudaDeviceSynchronize());
  CK(cudaFree(m));
  CK(cudaFree(d));
}

static void check_streams(void)
{
  enum { N = 1 << 20 };
  cudaStream_t s;
  cudaEvent_t a, b;
  unsigned char *d, *h;
  float ms = -1, ms2 = -1;
  cudaError_t q;
  size_t lim = 0;

  CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  CK(cudaMalloc((void **)&d, N));
  CK(cudaMallocHost((void **)&h, N));
  memset(h, 0x3c, N);
  CK(cudaEventRecord(a, s));
  CK(cudaMemcpyAsync(d, h, N, cudaMemcpyHostToDevice, s));
  CK(cudaMemsetAsync(d, 0x11, 16, s));
  CK(cudaMemcpyAsync(h, d, N, cudaMemcpyDeviceToHost, s));
  CK(cudaEventRecord(b, s));
  q = cudaStreamQuery(s);
  EXPECT(q == cudaSuccess || q == cudaErrorNotReady, "cudaStreamQuery: %s",
         cudaGetErrorName(q));
  CK(cudaStreamSynchronize(s));
  CK(cudaEventSynchronize(b));
  CK(cudaStreamQuery(s));
  CK(cudaEventQuery(b));
  EXPECT(h[0] == 0x11 && h[15] == 0x11 && h[16] == 0x3c && h[N - 1] == 0x3c,
         "async copies: %x %x %x", h[0], h[16], h[N - 1]);
  CK(cudaEventElapsedTime(&ms, a, b));
  CK(cudaEventElapsedTime_v2(&ms2, a, b));
  EXPECT(ms >= 0 && ms2 >= 0, "elapsed %f / %f ms", ms, ms2);
  CK(cudaEventDestroy(a));
  CK(cudaEventDestroy(b));

  /* CUDA 12's headers make cudaStreamGetCaptureInfo the _v2 (graph and
     dependencies, no edge data). */
  {
    enum cudaStreamCaptureStatus st = cudaStreamCaptureStatusInvalidated;
    unsigned long long id = 0;
    cudaGraph_t g = NULL, g2 = NULL;
    const cudaGraphNode_t *deps = NULL;
    size_t ndeps = 99;

    CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
    CK(cudaStreamGetCaptureInfo(s, &st, &id, &g, &deps, &ndeps));
    EXPECT(st == cudaStreamCaptureStatusActive && id && g && ndeps == 0,
           "capture info: status %d id %llu graph %p deps %zu", (int)st, id,
           (void *)g, ndeps);
    CK(cudaStreamEndCapture(s, &g2));
    EXPECT(g2 == g, "EndCapture's graph %p, capture info's %p", (void *)g2,
           (void *)g);
    CK(cudaStreamGetCaptureInfo(s, &st, &id, NULL, NULL, NULL));
    EXPECT(st == cudaStreamCaptureStatusNone, "capturing after EndCapture");
    CK(cudaGraphDestroy(g2));
  }
  CK(cudaStreamDestroy(s));
  CK(cudaFreeHost(h));
  CK(cudaFree(d));

  /* CUDA 12 still has CUDA 3's cudaThread* names. */
  CK(cudaThreadSetLimit(cudaLimitStackSize, 4096));
  CK(cudaThreadGetLimit(&lim, cudaLimitStackSize));
  EXPECT(lim == 4096, "cudaThreadGetLimit: %zu", lim);
  CK(cudaThreadSynchronize());
}

static void check_errors(void)
{
  void *p = NULL;
  cudaError_t e;

  EXPECT(strcmp(cudaGetErrorString(cudaErrorInvalidValue),
                "invalid argument") == 0,
         "cudaGetErrorString(cudaErrorInvalidValue) = '%s'",
         cudaGetErrorString(cudaErrorInvalidValue));
  EXPECT(strcmp(cudaGetErrorName(cudaErrorNotSupported),
                "cudaErrorNotSupported") == 0,
         "cudaGetErrorName(801) = '%s'", cudaGetErrorName(cudaErrorNotSupported));
  EXPECT(cudaMalloc(NULL, 16) == cudaErrorInvalidValue,
         "cudaMalloc(NULL) did not fail");
  EXPECT(cudaPeekAtLastError() == cudaErrorInvalidValue, "cudaPeekAtLastError");
  EXPECT(cudaGetLastError() == cudaErrorInvalidValue, "cudaGetLastError");
  EXPECT(cudaGetLastError() == cudaSuccess, "cudaGetLastError did not reset");

  /* Only in CUDA 12, not implemented: a stub. */
  e = cudaLaunchCooperativeKernelMultiDevice(NULL, 0, 0);
  EXPECT(e == cudaErrorNotSupported,
         "cudaLaunchCooperativeKernelMultiDevice returned %d", (int)e);
  EXPECT(cudaGetLastError() == cudaErrorNotSupported,
         "cudaGetLastError after a stub");
  /* In both, with CUDA 12's own prototype (no edge data), not
     implemented: a stub too. */
  {
    size_t nedges = 0;

    (void)p;
    e = cudaGraphGetEdges(NULL, NULL, NULL, &nedges);
    EXPECT(e == cudaErrorNotSupported, "cudaGraphGetEdges returned %d",
           (int)e);
    (void)cudaGetLastError();
  }
}

int main(int argc, char **argv)
{
  int rt = 0, drv = 0;

  if (argc != 2) {
    fprintf(stderr, "usage: abi12_check DEVICE_NAME\n");
    return 2;
  }
  CK(cudaRuntimeGetVersion(&rt));
  EXPECT(rt == CUDART_VERSION,
         "cudaRuntimeGetVersion: %d, the CUDA 12 headers say %d", rt,
         CUDART_VERSION);
  CK(cudaDriverGetVersion(&drv));
  EXPECT(drv >= rt, "cudaDriverGetVersion %d is older than the runtime %d",
         drv, rt);
  check_device(argv[1]);
  check_memory();
  check_streams();
  check_errors();
  if (failed)
    return 1;
  printf("PASS: abi12_check: CUDA %d program, device '%s', driver %d\n", rt,
         argv[1], drv);
  return 0;
}
