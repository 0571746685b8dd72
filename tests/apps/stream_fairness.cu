// stream_fairness.cu: one CUDA stream never waits behind another (issue 5).
//
//   stream_fairness [MiB [SAMPLES [one-thread]]]
//
// Thread A owns stream A; thread B owns stream B (both non-blocking).
// With "one-thread", one thread does both: before each sample it queues
// another 4 MiB device -> host copy into page-locked memory on stream A
// (cudaMemcpyAsync, which returns at once), 16 of them queued to begin
// with, so stream A always has work ahead of stream B's; MiB is ignored.
// Before that it checks that with 512 MiB of copies queued on A, a small
// launch on B and its synchronisation finish while A is still busy.  B measures two small
// operations, SAMPLES times each: cudaStreamQuery(B) right after a small
// kernel launch on B (so it must ask the device), and another small launch
// on B followed by cudaStreamSynchronize(B); then cudaMemGetInfo (a plain
// round trip to the agent) and 20 us of pure CPU work (how long B waits
// for a core, which bounds what any remoting can do).
// It measures them first with A idle, then while A copies MiB (default
// 1024) device -> host in 64 MiB cudaMemcpyAsync pieces on stream A, over
// and over until B is done.  Prints the p50 and p99 of each phase and
//
//   query_ratio=R launch_ratio=R info_ratio=R cpu_ratio=R
//
// (busy p99 / idle p99), then PASS when the copies and kernels gave the
// right bytes.  It does not judge the ratios: the test script does, since
// what is acceptable depends on the machine.  Runs natively on a GPU too.
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <vector>

#include "app_check.h"

#define PIECE (64ull << 20)

__global__ void bump(int *p) { p[threadIdx.x] += 1; }

__global__ void fill(unsigned *p, size_t n, unsigned seed)
{
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x)
    p[i] = (unsigned)i * 2654435761u + seed;
}

static double now_us()
{
  return std::chrono::duration<double, std::micro>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

static std::atomic<int> copying(0), stop_copy(0);
static size_t total_bytes;
static long copies_done;

static void *copier(void *)
{
  cudaStream_t s;
  unsigned *dev, *host;
  size_t words = PIECE / 4;

  CK(cudaSetDevice(0));
  CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  CK(cudaMalloc(&dev, PIECE));
  CK(cudaMallocHost(&host, PIECE));
  fill<<<64, 256, 0, s>>>(dev, words, 7);
  CK(cudaStreamSynchronize(s));
  copying = 1;
  while (!stop_copy) {
    for (size_t done = 0; done < total_bytes && !stop_copy; done += PIECE) {
      memset(host, 0, 4096);
      CK(cudaMemcpyAsync(host, dev, PIECE, cudaMemcpyDeviceToHost, s));
      CK(cudaStreamSynchronize(s));
      for (size_t i = 0; i < words; i += 4099)
        if (host[i] != (unsigned)i * 2654435761u + 7) {
          fprintf(stderr, "FAIL copy: word %zu is %u\n", i, host[i]);
          exit(2);
        }
      copies_done++;
    }
  }
  CK(cudaFreeHost(host));
  CK(cudaFree(dev));
  CK(cudaStreamDestroy(s));
  return NULL;
}

// One-thread mode: stream A, and copies queued on it into rotating slots.
#define ONE_PIECE (4u << 20)
#define ONE_SLOTS 16
static cudaStream_t one_a;
static unsigned *one_dev, *one_host;

static void one_queue(void)
{
  CK(cudaMemcpyAsync((char *)one_host + (copies_done % ONE_SLOTS) * ONE_PIECE,
                     one_dev, ONE_PIECE, cudaMemcpyDeviceToHost, one_a));
  copies_done++;
}

static double pct(std::vector<double> v, double p)
{
  std::sort(v.begin(), v.end());
  size_t i = (size_t)(p * (v.size() - 1) + 0.5);
  return v[i];
}

struct phase {
  std::vector<double> query, launch, info, cpu;
};

// About 20 us of work that needs nothing but a CPU: its p99 under load
// says how long this thread waits for a core, which no remoting can beat.
static volatile unsigned sink;
static double spin_work()
{
  double t0 = now_us();
  unsigned x = 1;

  for (int i = 0; i < 20000; i++)
    x = x * 1664525u + 1013904223u;
  sink = x;
  return now_us() - t0;
}

// Called before each sample (one-thread mode: queue more on stream A).
static void (*before_sample)(void);

static void measure(cudaStream_t s, int *d, int n, phase *out)
{
  for (int i = 0; i < n; i++) {
    if (before_sample)
      before_sample();
    bump<<<1, 32, 0, s>>>(d);
    double t0 = now_us();
    cudaError_t e = cudaStreamQuery(s); // asks the device: work is queued
    double t1 = now_us();

    if (e != cudaSuccess && e != cudaErrorNotReady) {
      fprintf(stderr, "FAIL cudaStreamQuery: %s\n", cudaGetErrorName(e));
      exit(2);
    }
    (void)cudaGetLastError(); // NotReady is not an error to keep
    bump<<<1, 32, 0, s>>>(d);
    CK(cudaStreamSynchronize(s));
    double t2 = now_us();
    out->query.push_back(t1 - t0);
    out->launch.push_back(t2 - t1);
    size_t fr, to;
    CK(cudaMemGetInfo(&fr, &to)); // a plain round trip to the agent
    out->info.push_back(now_us() - t2);
    out->cpu.push_back(spin_work());
  }
}

int main(int argc, char **argv)
{
  size_t mib = argc > 1 ? strtoull(argv[1], NULL, 10) : 1024;
  int n = argc > 2 ? atoi(argv[2]) : 300;
  cudaStream_t s;
  int *d, h[32];
  pthread_t th;
  phase idle, busy;

  int one = argc > 3 && !strcmp(argv[3], "one-thread");

  if (mib < 64 || n < 10 || (argc > 3 && !one)) {
    fprintf(stderr, "usage: stream_fairness [MiB >= 64 [SAMPLES >= 10 "
                    "[one-thread]]]\n");
    return 2;
  }
  total_bytes = mib << 20;
  CK(cudaSetDevice(0));
  CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  CK(cudaMalloc(&d, sizeof(h)));
  CK(cudaMemset(d, 0, sizeof(h)));
  measure(s, d, n / 5, &idle); // warm-up, discarded
  idle = phase();
  measure(s, d, n, &idle);

  if (one) {
    size_t words = ONE_PIECE / 4;

    CK(cudaStreamCreateWithFlags(&one_a, cudaStreamNonBlocking));
    CK(cudaMalloc(&one_dev, ONE_PIECE));
    CK(cudaMallocHost(&one_host, ONE_SLOTS * ONE_PIECE));
    fill<<<64, 256, 0, one_a>>>(one_dev, words, 9);
    // First the plain fact: with 512 MiB of copies queued on stream A, a
    // small launch on stream B and its synchronisation finish while A is
    // still busy.  (Were B's work behind A's, A would be done by then.)
    for (int i = 0; i < 128; i++)
      one_queue();
    bump<<<1, 32, 0, s>>>(d);
    CK(cudaStreamSynchronize(s));
    cudaError_t qa = cudaStreamQuery(one_a);
    (void)cudaGetLastError();
    if (qa != cudaErrorNotReady) {
      fprintf(stderr, "FAIL stream B's work waited behind stream A's "
                      "(cudaStreamQuery(A) after B's sync: %s)\n",
              cudaGetErrorName(qa));
      return 2;
    }
    printf("stream B synchronised while stream A was still copying\n");
    CK(cudaStreamSynchronize(one_a));
    for (int i = 0; i < ONE_SLOTS; i++)
      one_queue();
    before_sample = one_queue;
    measure(s, d, n, &busy);
    before_sample = NULL;
    CK(cudaStreamSynchronize(one_a));
    for (size_t w = 0; w < ONE_SLOTS * words; w += 4099) {
      unsigned got = one_host[w], i = (unsigned)(w % words);

      if (got != i * 2654435761u + 9) {
        fprintf(stderr, "FAIL copy: word %zu is %u\n", w, got);
        return 2;
      }
    }
    CK(cudaFreeHost(one_host));
    CK(cudaFree(one_dev));
    CK(cudaStreamDestroy(one_a));
  } else {
    if (pthread_create(&th, NULL, copier, NULL)) {
      fprintf(stderr, "FAIL pthread_create\n");
      return 2;
    }
    while (!copying)
      usleep(1000);
    usleep(50000); // let the copy get going
    measure(s, d, n, &busy);
    stop_copy = 1;
    pthread_join(th, NULL);
  }

  CK(cudaMemcpy(h, d, sizeof(h), cudaMemcpyDeviceToHost));
  for (int i = 0; i < 32; i++)
    if (h[i] != 2 * (n / 5 + 2 * n) + one) {
      fprintf(stderr, "FAIL counter %d is %d, expected %d\n", i, h[i],
              2 * (n / 5 + 2 * n) + one);
      return 2;
    }
  printf("idle: query p50=%.0fus p99=%.0fus  launch+sync p50=%.0fus "
         "p99=%.0fus\n",
         pct(idle.query, .5), pct(idle.query, .99), pct(idle.launch, .5),
         pct(idle.launch, .99));
  printf("busy: query p50=%.0fus p99=%.0fus  launch+sync p50=%.0fus "
         "p99=%.0fus  (%ld copies of %llu MiB meanwhile)\n",
         pct(busy.query, .5), pct(busy.query, .99), pct(busy.launch, .5),
         pct(busy.launch, .99), copies_done,
         (one ? ONE_PIECE : PIECE) >> 20);
  printf("cudaMemGetInfo: idle p50=%.0fus p99=%.0fus  busy p50=%.0fus "
         "p99=%.0fus\n",
         pct(idle.info, .5), pct(idle.info, .99), pct(busy.info, .5),
         pct(busy.info, .99));
  printf("cpu work: idle p50=%.0fus p99=%.0fus  busy p50=%.0fus p99=%.0fus\n",
         pct(idle.cpu, .5), pct(idle.cpu, .99), pct(busy.cpu, .5),
         pct(busy.cpu, .99));
  printf("query_ratio=%.2f launch_ratio=%.2f info_ratio=%.2f "
         "cpu_ratio=%.2f\n",
         pct(busy.query, .99) / pct(idle.query, .99),
         pct(busy.launch, .99) / pct(idle.launch, .99),
         pct(busy.info, .99) / pct(idle.info, .99),
         pct(busy.cpu, .99) / pct(idle.cpu, .99));
  if (copies_done < 1) {
    fprintf(stderr, "FAIL no copy finished while measuring\n");
    return 2;
  }
  printf("PASS\n");
  return 0;
}
