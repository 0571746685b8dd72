// bench_calls.cu: what tremote-bench measures through the real CUDA API.
//   null call: cudaDeviceSynchronize with nothing queued = one round trip
//              app -> broker -> agent -> broker -> app;
//   bandwidth: cudaMemcpy of SIZE MiB host->device and device->host.
// Usage: bench_calls N_CALLS SIZE_MIB REPS.  Prints key=value lines.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

static double now_s()
{
  return std::chrono::duration<double>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

#define CHECK(call)                                                            \
  do {                                                                         \
    cudaError_t e_ = (call);                                                   \
    if (e_ != cudaSuccess) {                                                   \
      fprintf(stderr, "%s: %s\n", #call, cudaGetErrorString(e_));              \
      return 1;                                                                \
    }                                                                          \
  } while (0)

int main(int argc, char **argv)
{
  int n = argc > 1 ? atoi(argv[1]) : 2000;
  size_t size = (size_t)(argc > 2 ? atoi(argv[2]) : 64) << 20;
  int reps = argc > 3 ? atoi(argv[3]) : 5;
  std::vector<double> t(n);

  CHECK(cudaDeviceSynchronize());
  for (int i = 0; i < n / 10 + 10; i++)
    CHECK(cudaDeviceSynchronize());
  for (int i = 0; i < n; i++) {
    double t0 = now_s();
    CHECK(cudaDeviceSynchronize());
    t[i] = now_s() - t0;
  }
  std::sort(t.begin(), t.end());
  printf("sync_p50_ns=%.0f\nsync_p99_ns=%.0f\n", t[n / 2] * 1e9,
         t[(size_t)n * 99 / 100] * 1e9);

  char *h = (char *)malloc(size);
  void *d;
  memset(h, 7, size);
  CHECK(cudaMalloc(&d, size));
  double best_h2d = 1e9, best_d2h = 1e9;
  for (int r = 0; r < reps; r++) {
    double t0 = now_s();
    CHECK(cudaMemcpy(d, h, size, cudaMemcpyHostToDevice));
    double t1 = now_s();
    CHECK(cudaMemcpy(h, d, size, cudaMemcpyDeviceToHost));
    double t2 = now_s();
    best_h2d = std::min(best_h2d, t1 - t0);
    best_d2h = std::min(best_d2h, t2 - t1);
  }
  printf("h2d_gbps=%.3f\nd2h_gbps=%.3f\n", size / best_h2d / 1e9,
         size / best_d2h / 1e9);
  CHECK(cudaFree(d));
  free(h);
  return 0;
}
