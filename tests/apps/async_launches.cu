// async_launches.cu: launches are asynchronous and batched (issue 5).
//
//   async_launches count   after a warm-up launch, prints READY and waits
//                          for a line on stdin; then 1000 launches and one
//                          cudaStreamSynchronize, prints PAUSE and waits
//                          again (the test reads the broker's round-trip
//                          count at both pauses: exactly 1 in between);
//                          then checks what the 1000 kernels wrote.
//   async_launches fault   1000 launches of which the 500th stores to an
//                          unmapped address: the launches themselves
//                          succeed, cudaStreamSynchronize returns
//                          cudaErrorIllegalAddress, cudaGetLastError too.
//   async_launches rate N [PRIORITY]
//                          N launches back to back: prints the enqueue
//                          rate (launches per second until the last launch
//                          call returned), then synchronises; with
//                          PRIORITY, on a stream of that priority.
// Prints PASS on success.  Runs natively on a GPU as well.
#include <cuda_runtime.h>

#include <chrono>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 1000

#include "app_check.h"

__global__ void mark(int *p, int i, int fault_at)
{
  if (i == fault_at)
    *(volatile int *)(uintptr_t)16 = 1; // unmapped on every GPU
  p[i] += i + 1;
}

static void wait_line(const char *what)
{
  char line[16];

  printf("%s\n", what);
  fflush(stdout);
  if (!fgets(line, sizeof(line), stdin))
    exit(3);
}

static double now_s()
{
  return std::chrono::duration<double>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int main(int argc, char **argv)
{
  const char *mode = argc > 1 ? argv[1] : "count";
  int *d;

  CK(cudaMalloc(&d, (N + 1) * sizeof(int)));
  CK(cudaMemset(d, 0, (N + 1) * sizeof(int)));
  mark<<<1, 1>>>(d, N, -1); // loads the module: the round trips of that
  CK(cudaGetLastError());   // happen before the count starts
  CK(cudaStreamSynchronize(0));

  if (strcmp(mode, "count") == 0) {
    int h[N + 1];

    wait_line("READY");
    for (int i = 0; i < N; i++)
      mark<<<1, 1>>>(d, i, -1);
    CK(cudaGetLastError());
    CK(cudaStreamSynchronize(0));
    wait_line("PAUSE");
    CK(cudaMemcpy(h, d, sizeof(h), cudaMemcpyDeviceToHost));
    for (int i = 0; i <= N; i++)
      if (h[i] != i + 1) {
        fprintf(stderr, "FAIL element %d: %d, expected %d\n", i, h[i], i + 1);
        return 1;
      }
  } else if (strcmp(mode, "fault") == 0) {
    for (int i = 0; i < N; i++) {
      mark<<<1, 1>>>(d, i, 500);
      cudaError_t e = cudaGetLastError();
      if (e != cudaSuccess && i < 500) {
        fprintf(stderr, "FAIL launch %d returned %s before the fault ran\n", i,
                cudaGetErrorName(e));
        return 1;
      }
    }
    cudaError_t e = cudaStreamSynchronize(0);
    if (e != cudaErrorIllegalAddress) {
      fprintf(stderr, "FAIL cudaStreamSynchronize: %s, expected "
                      "cudaErrorIllegalAddress\n", cudaGetErrorName(e));
      return 1;
    }
    e = cudaGetLastError();
    if (e != cudaErrorIllegalAddress) {
      fprintf(stderr, "FAIL cudaGetLastError: %s\n", cudaGetErrorName(e));
      return 1;
    }
  } else if (strcmp(mode, "rate") == 0) {
    long n = argc > 2 ? atol(argv[2]) : 100000;
    cudaStream_t s = 0;

    if (argc > 3)
      CK(cudaStreamCreateWithPriority(&s, cudaStreamNonBlocking,
                                      atoi(argv[3])));
    double t0 = now_s();

    for (long i = 0; i < n; i++)
      mark<<<1, 1, 0, s>>>(d, (int)(i % N), -1);
    double t1 = now_s();
    CK(cudaGetLastError());
    CK(cudaStreamSynchronize(s));
    double t2 = now_s();
    printf("launches=%ld enqueue_per_s=%.0f total_per_s=%.0f\n", n,
           n / (t1 - t0), n / (t2 - t0));
  } else {
    fprintf(stderr, "usage: async_launches count|fault|rate [N [PRIORITY]]\n");
    return 2;
  }
  printf("PASS async_launches %s\n", mode);
  return 0;
}
