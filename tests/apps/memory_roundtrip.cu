// memory_roundtrip.cu: the first end-to-end program (issue 3).
//
// Built with `nvcc -cudart shared` and run unmodified under
// LD_PRELOAD=libtremote_shim.so.  Checks, byte for byte:
//   - the device count and the device's name (argv[1], argv[2]);
//   - 64 MiB host->device of random data, a memset of a sub-range, a
//     device->device copy and device->host copies;
//   - cudaFree of a bad pointer returns cudaErrorInvalidValue and later
//     calls still work;
//   - the same copies from 8 threads at once.
// Prints "PASS" and exits 0 on success; otherwise names the first check
// that failed and exits 1.
#include <cuda_runtime.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(call)                                                            \
  do {                                                                         \
    cudaError_t e_ = (call);                                                   \
    if (e_ != cudaSuccess) {                                                   \
      fprintf(stderr, "FAIL %s:%d: %s -> %s (%s)\n", __FILE__, __LINE__,       \
              #call, cudaGetErrorName(e_), cudaGetErrorString(e_));            \
      return 1;                                                                \
    }                                                                          \
  } while (0)

#define EXPECT(cond, ...)                                                      \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                     \
      fprintf(stderr, __VA_ARGS__);                                            \
      fputc('\n', stderr);                                                     \
      return 1;                                                                \
    }                                                                          \
  } while (0)

__global__ void touch(int *p) { *p = 1; }

static void fill_random(uint8_t *p, size_t n, uint64_t seed)
{
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    p[i] = (uint8_t)(x >> 24);
  }
}

// One full round: H2D, memset [off, off+len), D2D to a second buffer, D2H
// of both, compared with what the host computes.
static int roundtrip(size_t size, uint64_t seed)
{
  uint8_t *h = (uint8_t *)malloc(size), *back = (uint8_t *)malloc(size);
  uint8_t *want = (uint8_t *)malloc(size);
  void *d1 = NULL, *d2 = NULL;
  size_t off = size / 5, len = size / 3;

  EXPECT(h && back && want, "host malloc");
  fill_random(h, size, seed);
  CHECK(cudaMalloc(&d1, size));
  CHECK(cudaMalloc(&d2, size));
  EXPECT(d1 != d2, "two allocations share an address");
  CHECK(cudaMemcpy(d1, h, size, cudaMemcpyHostToDevice));
  CHECK(cudaMemset((uint8_t *)d1 + off, 0xA5, len));
  CHECK(cudaMemcpy(d2, d1, size, cudaMemcpyDeviceToDevice));

  memcpy(want, h, size);
  memset(want + off, 0xA5, len);
  memset(back, 0, size);
  CHECK(cudaMemcpy(back, d2, size, cudaMemcpyDeviceToHost));
  EXPECT(memcmp(back, want, size) == 0, "device->device->host data differs");
  memset(back, 0, size);
  CHECK(cudaMemcpy(back, d1, size, cudaMemcpyDefault));
  EXPECT(memcmp(back, want, size) == 0, "device->host (Default) data differs");
  CHECK(cudaFree(d1));
  CHECK(cudaFree(d2));
  free(h);
  free(back);
  free(want);
  return 0;
}

struct job {
  int id;
  int rc;
};

static void *worker(void *arg)
{
  struct job *j = (struct job *)arg;
  // Per-thread sizes differ so chunks of different lengths interleave.
  j->rc = roundtrip((4u << 20) + (size_t)j->id * 65537u, 100 + j->id);
  return NULL;
}

int main(int argc, char **argv)
{
  int want_count = argc > 1 ? atoi(argv[1]) : 1;
  const char *want_name = argc > 2 ? argv[2] : NULL;
  int count = -1, dev = -1, rt = 0;
  cudaDeviceProp prop;

  CHECK(cudaGetDeviceCount(&count));
  EXPECT(count == want_count, "device count %d, expected %d", count, want_count);
  CHECK(cudaGetDevice(&dev));
  EXPECT(dev == 0, "current device %d", dev);
  CHECK(cudaGetDeviceProperties(&prop, 0));
  if (want_name)
    EXPECT(strcmp(prop.name, want_name) == 0, "device name '%s', expected '%s'",
           prop.name, want_name);
  EXPECT(prop.totalGlobalMem >= (256u << 20), "totalGlobalMem %zu",
         prop.totalGlobalMem);
  int warp = 0;
  CHECK(cudaDeviceGetAttribute(&warp, cudaDevAttrWarpSize, 0));
  EXPECT(warp == 32 && prop.warpSize == 32, "warp size %d/%d", warp,
         prop.warpSize);
  CHECK(cudaRuntimeGetVersion(&rt));
  EXPECT(rt >= 13000, "runtime version %d", rt);
  EXPECT(cudaSetDevice(count) == cudaErrorInvalidDevice,
         "cudaSetDevice(count) must fail with cudaErrorInvalidDevice");
  EXPECT(cudaGetLastError() == cudaErrorInvalidDevice,
         "cudaGetLastError after a failed cudaSetDevice");
  EXPECT(cudaGetLastError() == cudaSuccess, "cudaGetLastError clears");
  printf("device 0: %s, %zu MiB, cc %d.%d\n", prop.name,
         prop.totalGlobalMem >> 20, prop.major, prop.minor);

  // 64 MiB, the issue's figure.
  if (roundtrip(64u << 20, 1))
    return 1;
  printf("64 MiB round trip: ok\n");

  // A bad pointer: an address inside the device window that was never
  // allocated, and a host pointer.
  void *good = NULL;
  CHECK(cudaMalloc(&good, 4096));
  EXPECT(cudaFree((uint8_t *)good + 256) == cudaErrorInvalidValue,
         "cudaFree(inside an allocation) must be cudaErrorInvalidValue");
  EXPECT(cudaGetLastError() == cudaErrorInvalidValue, "last error after bad free");
  EXPECT(cudaFree(&count) == cudaErrorInvalidValue,
         "cudaFree(host pointer) must be cudaErrorInvalidValue");
  (void)cudaGetLastError();
  CHECK(cudaFree(good));
  EXPECT(cudaFree(good) == cudaErrorInvalidValue, "double free must fail");
  (void)cudaGetLastError();
  // Blocking copies and memsets of freed memory fail at once, not later.
  EXPECT(cudaMemcpy(good, &count, sizeof(count), cudaMemcpyHostToDevice) ==
             cudaErrorInvalidValue,
         "copy into freed memory must fail");
  (void)cudaGetLastError();
  EXPECT(cudaMemset(good, 0, 16) == cudaErrorInvalidValue,
         "memset of freed memory must fail");
  (void)cudaGetLastError();
  // Later calls still work.
  if (roundtrip(1u << 20, 2))
    return 1;
  printf("bad free: ok\n");

  // Out-of-range copy into a live allocation.
  void *small = NULL;
  char buf[8192];
  memset(buf, 1, sizeof(buf));
  CHECK(cudaMalloc(&small, 4096));
  EXPECT(cudaMemcpy(small, buf, sizeof(buf), cudaMemcpyHostToDevice) ==
             cudaErrorInvalidValue,
         "copy past the end of an allocation must fail");
  (void)cudaGetLastError();
  CHECK(cudaFree(small));

  // 8 threads, each on its own lane.
  pthread_t th[8];
  struct job jobs[8];
  for (int i = 0; i < 8; i++) {
    jobs[i].id = i;
    jobs[i].rc = -1;
    pthread_create(&th[i], NULL, worker, &jobs[i]);
  }
  for (int i = 0; i < 8; i++) {
    pthread_join(th[i], NULL);
    EXPECT(jobs[i].rc == 0, "thread %d failed", i);
  }
  printf("8 threads: ok\n");
  CHECK(cudaDeviceSynchronize());

  // With two machines: device 1 works on its own, its pointers lie in a
  // different address window, and a copy between the two machines or a
  // kernel argument of the other machine fails with cudaErrorInvalidValue
  // and a line naming both, while cudaMemcpyPeer crosses (relayed).
  if (count >= 2) {
    void *a = NULL, *b = NULL;
    CHECK(cudaSetDevice(1));
    if (roundtrip(8u << 20, 3))
      return 1;
    CHECK(cudaMalloc(&b, 4096));
    CHECK(cudaSetDevice(0));
    CHECK(cudaMalloc(&a, 4096));
    // Windows are at least 8 GiB and aligned to their size (8 GiB in
    // TSan builds, 512 GiB otherwise).
    EXPECT(((uintptr_t)a >> 33) != ((uintptr_t)b >> 33),
           "devices 0 and 1 share an address window (%p, %p)", a, b);
    EXPECT(cudaMemcpy(a, b, 4096, cudaMemcpyDeviceToDevice) ==
               cudaErrorInvalidValue,
           "a copy between two machines must fail with cudaErrorInvalidValue");
    EXPECT(cudaGetLastError() == cudaErrorInvalidValue,
           "cudaGetLastError after the cross-machine copy");
    // The same rule for kernel arguments: device 1's pointer on device 0.
    touch<<<1, 1>>>((int *)b);
    EXPECT(cudaGetLastError() == cudaErrorInvalidValue,
           "a kernel argument of another machine must fail with "
           "cudaErrorInvalidValue");
    touch<<<1, 1>>>((int *)a);
    CHECK(cudaGetLastError());
    CHECK(cudaDeviceSynchronize());
    // cudaMemcpyPeer does cross: device 0's bytes to device 1 (through
    // this host).
    {
      unsigned char h[4096];
      CHECK(cudaMemset(a, 0x5c, 4096));
      CHECK(cudaMemcpyPeer(b, 1, a, 0, 4096));
      CHECK(cudaMemcpy(h, b, 4096, cudaMemcpyDeviceToHost));
      for (int i = 0; i < 4096; i++)
        EXPECT(h[i] == 0x5c, "peer copy byte %d: %#x", i, h[i]);
    }
    // A large one goes through a staging block the broker relays.
    {
      const size_t n = (3u << 20) + 5;
      unsigned char *hs = (unsigned char *)malloc(n),
                    *hb = (unsigned char *)malloc(n);
      void *pa, *pb;
      CHECK(cudaSetDevice(0));
      CHECK(cudaMalloc(&pa, n));
      CHECK(cudaSetDevice(1));
      CHECK(cudaMalloc(&pb, n));
      for (size_t i = 0; i < n; i++)
        hs[i] = (unsigned char)(i * 13 + 7);
      CHECK(cudaMemcpy(pa, hs, n, cudaMemcpyHostToDevice));
      CHECK(cudaMemcpyPeer(pb, 1, pa, 0, n));
      CHECK(cudaMemcpy(hb, pb, n, cudaMemcpyDeviceToHost));
      EXPECT(memcmp(hs, hb, n) == 0, "large peer copy differs");
      CHECK(cudaFree(pa));
      CHECK(cudaFree(pb));
      free(hs);
      free(hb);
      CHECK(cudaSetDevice(0));
    }
    CHECK(cudaFree(a));
    // cudaFree finds the device from the pointer, whatever is current.
    CHECK(cudaFree(b));
    printf("2 devices: ok\n");
  }
  printf("PASS\n");
  return 0;
}
