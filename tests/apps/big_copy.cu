// big_copy.cu: a copy far larger than any buffer on the way.
//
// Phase 1 (round trips): cudaMalloc of 64 MiB, one 64 MiB host->device copy,
// then prints "PAUSE" and waits for a line on stdin, so the test can read
// the broker's round-trip count: it must be exactly 2 (one per call; the
// 64 chunks of the copy travel without replies but the last).
// Phase 2: SIZE_MIB (argv[1], default 1024) host->device and back,
// compared byte for byte.  The test checks that neither the broker nor the
// agent buffered it whole (their peak RSS).
#include <cuda_runtime.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(call)                                                            \
  do {                                                                         \
    cudaError_t e_ = (call);                                                   \
    if (e_ != cudaSuccess) {                                                   \
      fprintf(stderr, "FAIL %s:%d: %s -> %s\n", __FILE__, __LINE__, #call,     \
              cudaGetErrorName(e_));                                           \
      return 1;                                                                \
    }                                                                          \
  } while (0)

int main(int argc, char **argv)
{
  size_t size = (size_t)(argc > 1 ? atoi(argv[1]) : 1024) << 20;
  size_t small = 64u << 20;
  uint8_t *h = (uint8_t *)malloc(size), *back = (uint8_t *)malloc(size);
  void *d = NULL, *ds = NULL;
  char line[16];

  if (!h || !back) {
    fprintf(stderr, "FAIL host malloc\n");
    return 1;
  }
  for (size_t i = 0; i < size; i += 8) {
    uint64_t v = i * 0x9e3779b97f4a7c15ull;
    memcpy(h + i, &v, 8);
  }
  CHECK(cudaMalloc(&ds, small));
  CHECK(cudaMemcpy(ds, h, small, cudaMemcpyHostToDevice));
  printf("PAUSE\n");
  fflush(stdout);
  if (!fgets(line, sizeof(line), stdin)) {
    fprintf(stderr, "FAIL no go-ahead on stdin\n");
    return 1;
  }
  CHECK(cudaFree(ds));

  CHECK(cudaMalloc(&d, size));
  CHECK(cudaMemcpy(d, h, size, cudaMemcpyHostToDevice));
  memset(back, 0, size);
  CHECK(cudaMemcpy(back, d, size, cudaMemcpyDeviceToHost));
  if (memcmp(h, back, size) != 0) {
    fprintf(stderr, "FAIL data differs after the round trip\n");
    return 1;
  }
  CHECK(cudaFree(d));
  printf("PASS %zu MiB\n", size >> 20);
  return 0;
}
