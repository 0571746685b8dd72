// pinned_copies.cu: copies to and from page-locked host memory (issue 5).
//
//   pinned_copies [pause]
//
// Page-locked memory (cudaMallocHost, cudaHostAlloc) is shared with the
// broker, so large copies from and to it skip the lane's areas.  Checks,
// against pageable copies of the same data, copies of many sizes and
// offsets (below and above the size that goes by reference, across the
// 1 MiB chunk size, unaligned), synchronous and asynchronous on a stream,
// from one page-locked block into another through the device, many
// asynchronous copies outstanding at once, and memory freed and allocated
// again.  With "pause", prints READY after the copies
// and waits for a line on stdin, so a test can read the broker's region
// statistics while the program still holds its blocks.  Prints PASS.  Runs
// natively on a GPU as well.
#include <cuda_runtime.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app_check.h"

#define BLOCK (9u << 20)

static void fill(unsigned char *p, size_t n, unsigned seed)
{
  for (size_t i = 0; i < n; i++)
    p[i] = (unsigned char)((i * 131u + seed * 7u) >> 3);
}

static void expect(const unsigned char *got, const unsigned char *want,
                   size_t n, const char *what, size_t size, size_t off)
{
  if (memcmp(got, want, n)) {
    size_t i = 0;

    while (got[i] == want[i])
      i++;
    fprintf(stderr, "FAIL %s of %zu bytes at offset %zu: byte %zu is %u, "
                    "expected %u\n", what, size, off, i, got[i], want[i]);
    exit(2);
  }
}

int main(int argc, char **argv)
{
  static const size_t sizes[] = {1,       4096,        65535,   65536,
                                 65537,   1u << 20,    (1u << 20) + 3,
                                 3u << 20, (5u << 20) + 4097, 8u << 20};
  static const size_t offs[] = {0, 1, 4096, 12345};
  unsigned char *pin, *pin2, *ref;
  unsigned char *dev;
  cudaStream_t s;
  unsigned seed = 1;

  CK(cudaMallocHost((void **)&pin, BLOCK));
  CK(cudaHostAlloc((void **)&pin2, BLOCK, cudaHostAllocDefault));
  ref = (unsigned char *)malloc(BLOCK);
  CK(cudaMalloc((void **)&dev, BLOCK));
  CK(cudaStreamCreate(&s));
  if (!ref)
    return 2;
  for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
    for (size_t oi = 0; oi < sizeof(offs) / sizeof(offs[0]); oi++) {
      size_t n = sizes[si], off = offs[oi];
      int async = (si + oi) & 1;

      if (off + n > BLOCK)
        continue;
      seed++;
      fill(pin + off, n, seed);
      memcpy(ref, pin + off, n);
      memset(pin2, 0xEE, BLOCK);
      if (async) {
        CK(cudaMemcpyAsync(dev + off, pin + off, n, cudaMemcpyHostToDevice,
                           s));
        CK(cudaMemcpyAsync(pin2 + off, dev + off, n, cudaMemcpyDeviceToHost,
                           s));
        CK(cudaStreamSynchronize(s));
      } else {
        CK(cudaMemcpy(dev + off, pin + off, n, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(pin2 + off, dev + off, n, cudaMemcpyDeviceToHost));
      }
      expect(pin2 + off, ref, n, "page-locked round trip", n, off);
      if ((off && pin2[off - 1] != 0xEE) ||
          (off + n < BLOCK && pin2[off + n] != 0xEE)) {
        fprintf(stderr, "FAIL bytes around a copy of %zu at %zu changed\n",
                n, off);
        return 2;
      }
      /* The same device bytes into pageable memory agree. */
      memset(ref, 0, n);
      CK(cudaMemcpy(ref, dev + off, n, cudaMemcpyDeviceToHost));
      expect(ref, pin2 + off, n, "pageable copy-back", n, off);
    }
  }
  /* Many asynchronous copies into page-locked memory, more than the shim
     keeps outstanding (64) before it must take their replies, each checked
     after one synchronisation; and one from freed device memory, which
     fails at once, as in CUDA. */
  {
    const size_t piece = 128u << 10;
    int npieces = (int)(BLOCK / piece);

    for (int i = 0; i < npieces; i++)
      fill(pin + i * piece, piece, 500 + i);
    CK(cudaMemcpy(dev, pin, BLOCK, cudaMemcpyHostToDevice));
    memset(pin2, 0, BLOCK);
    for (int round = 0; round < 2; round++)
      for (int i = npieces - 1; i >= 0; i--)
        CK(cudaMemcpyAsync(pin2 + i * piece, dev + i * piece, piece,
                           cudaMemcpyDeviceToHost, s));
    CK(cudaStreamSynchronize(s));
    expect(pin2, pin, BLOCK, "asynchronous copies into page-locked memory",
           piece, 0);
    unsigned char *gone;
    CK(cudaMalloc((void **)&gone, piece));
    CK(cudaFree(gone));
    if (cudaMemcpyAsync(pin2, gone, piece, cudaMemcpyDeviceToHost, s) !=
        cudaErrorInvalidValue) {
      fprintf(stderr, "FAIL an asynchronous copy from freed memory must "
                      "fail at once\n");
      return 2;
    }
    (void)cudaGetLastError();
    CK(cudaStreamSynchronize(s));
  }
  /* Freed and allocated again: the new block works as well. */
  CK(cudaFreeHost(pin2));
  CK(cudaMallocHost((void **)&pin2, BLOCK));
  fill(pin, BLOCK, 99);
  CK(cudaMemcpy(dev, pin, BLOCK, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(pin2, dev, BLOCK, cudaMemcpyDeviceToHost));
  expect(pin2, pin, BLOCK, "after re-allocation", BLOCK, 0);
  if (argc > 1 && !strcmp(argv[1], "pause")) {
    char line[16];

    printf("READY\n");
    fflush(stdout);
    if (!fgets(line, sizeof(line), stdin))
      return 3;
  }
  CK(cudaStreamDestroy(s));
  CK(cudaFree(dev));
  CK(cudaFreeHost(pin));
  CK(cudaFreeHost(pin2));
  free(ref);
  printf("PASS\n");
  return 0;
}
