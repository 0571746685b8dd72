// bench_calls.cu: the workloads tremote-bench measures through the real
// CUDA runtime API (run under LD_PRELOAD=libtremote_shim.so; they run
// natively on a GPU as well).  One mode per run; results are key=value
// lines on stdout.
//
//   bench_calls rtt N        N null calls (cudaDeviceSynchronize with
//                            nothing queued: app -> broker -> agent and
//                            back) after a warm-up: rtt_p50_ns, rtt_p99_ns
//   bench_calls rate N       N launches back to back on the default
//                            stream: launches_per_s (until the last launch
//                            call returned), then synchronises
//   bench_calls count        after a warm-up, prints READY and waits for a
//                            line on stdin; 1000 launches and one
//                            cudaStreamSynchronize; prints PAUSE and waits
//                            again (the driver reads the broker's
//                            round-trip count at both pauses)
//   bench_calls copy REPS SIZE...
//                            for each SIZE (bytes) and each of pinned
//                            (cudaMallocHost) and pageable (malloc) host
//                            memory, the best of REPS (10 x REPS below
//                            1 MiB) synchronous
//                            cudaMemcpy host->device and device->host:
//                            one line "copy size=S mem=pinned|pageable
//                            h2d_s=T d2h_s=T" each
//   bench_calls delay ITERS  ITERS iterations of: cudaMemcpy 1 MiB host->
//                            device (pageable), 10 small launches (one
//                            block of 256 threads),
//                            cudaMemcpy 1 MiB device->host, between READY
//                            and PAUSE as in count; checks the data and
//                            prints delay_s
// Exits 0 on success, 1 on a CUDA error or wrong data, 2 on bad usage.
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
      fprintf(stderr, "%s at line %d: %s\n", #call, __LINE__,                  \
              cudaGetErrorString(e_));                                         \
      exit(1);                                                                 \
    }                                                                          \
  } while (0)

__global__ void bump(int *p, int n)
{
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n)
    p[i] += 1;
}

// The driver reads the broker's counters while we wait here.
static void wait_line(const char *what)
{
  char line[16];

  printf("%s\n", what);
  fflush(stdout);
  if (!fgets(line, sizeof(line), stdin))
    exit(2);
}

static int mode_rtt(int n)
{
  std::vector<double> t(n);

  for (int i = 0; i < n / 10 + 10; i++)
    CHECK(cudaDeviceSynchronize());
  for (int i = 0; i < n; i++) {
    double t0 = now_s();
    CHECK(cudaDeviceSynchronize());
    t[i] = now_s() - t0;
  }
  std::sort(t.begin(), t.end());
  printf("rtt_p50_ns=%.0f\nrtt_p99_ns=%.0f\n", t[n / 2] * 1e9,
         t[(size_t)n * 99 / 100] * 1e9);
  return 0;
}

static int *warm_device(int n)
{
  int *d;

  CHECK(cudaMalloc(&d, n * sizeof(int)));
  CHECK(cudaMemset(d, 0, n * sizeof(int)));
  bump<<<1, 32>>>(d, 1); // loads the module: its round trips come first
  CHECK(cudaGetLastError());
  CHECK(cudaDeviceSynchronize());
  return d;
}

static int mode_rate(int n)
{
  int *d = warm_device(32);
  double t0 = now_s();

  for (int i = 0; i < n; i++)
    bump<<<1, 32>>>(d, 1);
  double t = now_s() - t0;
  CHECK(cudaGetLastError());
  CHECK(cudaDeviceSynchronize());
  printf("launches_per_s=%.0f\n", n / t);
  CHECK(cudaFree(d));
  return 0;
}

static int mode_count(void)
{
  int *d = warm_device(32), h = 0;

  wait_line("READY");
  for (int i = 0; i < 1000; i++)
    bump<<<1, 32>>>(d, 1);
  CHECK(cudaGetLastError());
  CHECK(cudaStreamSynchronize(0));
  wait_line("PAUSE");
  CHECK(cudaMemcpy(&h, d, sizeof(h), cudaMemcpyDeviceToHost));
  if (h != 1001) {
    fprintf(stderr, "count: the kernels wrote %d, not 1001\n", h);
    return 1;
  }
  CHECK(cudaFree(d));
  return 0;
}

static int mode_copy(int reps, int nsizes, char **sizes)
{
  size_t max = 0;

  for (int i = 0; i < nsizes; i++)
    max = std::max(max, (size_t)strtoull(sizes[i], NULL, 0));
  void *d, *pinned;
  char *pageable = (char *)malloc(max);
  if (!pageable)
    return 1;
  memset(pageable, 7, max); // touched: no page faults inside the timing
  CHECK(cudaMalloc(&d, max));
  CHECK(cudaMallocHost(&pinned, max));
  memset(pinned, 7, max);
  // Untimed, one pageable copy each way of the largest size: pageable bytes
  // pass through this thread's shared areas (8 MiB each way), whose pages
  // are faulted in on their first use, a one-time cost that made the first
  // few 1 MiB copies of a --quick run a third as fast.  The figures are the
  // steady state, as the yardstick's (its buffers are touched before).
  CHECK(cudaMemcpy(d, pageable, max, cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(pageable, d, max, cudaMemcpyDeviceToHost));
  CHECK(cudaDeviceSynchronize());
  for (int i = 0; i < nsizes; i++) {
    size_t size = (size_t)strtoull(sizes[i], NULL, 0);
    for (int m = 0; m < 2; m++) {
      void *h = m ? (void *)pageable : pinned;
      double best_h2d = 1e9, best_d2h = 1e9;
      // As tremote-bench's yardstick does (bench_reps_for): small copies
      // are cheap and noisy, so ten times the tries.
      int n = size < (1u << 20) ? reps * 10 : reps;
      for (int r = 0; r < n; r++) {
        double t0 = now_s();
        CHECK(cudaMemcpy(d, h, size, cudaMemcpyHostToDevice));
        // A copy from pageable memory returns once its bytes are queued:
        // the synchronisation makes it the time until they are on the
        // device, as the yardstick's answer byte does.
        CHECK(cudaDeviceSynchronize());
        double t1 = now_s();
        CHECK(cudaMemcpy(h, d, size, cudaMemcpyDeviceToHost));
        double t2 = now_s();
        best_h2d = std::min(best_h2d, t1 - t0);
        best_d2h = std::min(best_d2h, t2 - t1);
      }
      printf("copy size=%zu mem=%s h2d_s=%.9f d2h_s=%.9f\n", size,
             m ? "pageable" : "pinned", best_h2d, best_d2h);
      fflush(stdout);
    }
  }
  CHECK(cudaFreeHost(pinned));
  CHECK(cudaFree(d));
  free(pageable);
  return 0;
}

#define SMALL 256 // threads of each small launch, and elements it bumps

static int mode_delay(int iters)
{
  const int n = (1 << 20) / sizeof(int);
  std::vector<int> in(n), out(n);
  int *d = warm_device(n);

  // A warm-up iteration: first-use costs stay out of the figure.
  CHECK(cudaMemcpy(d, in.data(), n * sizeof(int), cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(out.data(), d, n * sizeof(int), cudaMemcpyDeviceToHost));
  wait_line("READY");
  double t0 = now_s();
  for (int it = 0; it < iters; it++) {
    for (int i = 0; i < n; i += i < SMALL ? 1 : 4096)
      in[i] = it + i;
    CHECK(cudaMemcpy(d, in.data(), n * sizeof(int), cudaMemcpyHostToDevice));
    // Small launches: one block each.  The emulated device takes ~2 ms per
    // launch over the whole MiB, which would measure the emulator instead.
    for (int k = 0; k < 10; k++)
      bump<<<1, SMALL>>>(d, SMALL);
    CHECK(cudaMemcpy(out.data(), d, n * sizeof(int), cudaMemcpyDeviceToHost));
    for (int i = 0; i < n; i += i < SMALL ? 1 : 4096)
      if (out[i] != in[i] + (i < SMALL ? 10 : 0)) {
        fprintf(stderr, "delay: iteration %d: element %d is %d, not %d\n", it,
                i, out[i], in[i] + (i < SMALL ? 10 : 0));
        return 1;
      }
  }
  double t = now_s() - t0;
  wait_line("PAUSE");
  printf("delay_s=%.6f\n", t);
  CHECK(cudaFree(d));
  return 0;
}

int main(int argc, char **argv)
{
  const char *mode = argc > 1 ? argv[1] : "";

  if (strcmp(mode, "rtt") == 0 && argc == 3)
    return mode_rtt(atoi(argv[2]));
  if (strcmp(mode, "rate") == 0 && argc == 3)
    return mode_rate(atoi(argv[2]));
  if (strcmp(mode, "count") == 0 && argc == 2)
    return mode_count();
  if (strcmp(mode, "copy") == 0 && argc >= 4)
    return mode_copy(atoi(argv[2]), argc - 3, argv + 3);
  if (strcmp(mode, "delay") == 0 && argc == 3)
    return mode_delay(atoi(argv[2]));
  fprintf(stderr, "usage: bench_calls rtt N | rate N | count | "
                  "copy REPS SIZE... | delay ITERS\n");
  return 2;
}
