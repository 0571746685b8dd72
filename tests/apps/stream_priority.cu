// stream_priority.cu: stream priorities (issue 5).
//
//   stream_priority api        the priority range is [-5, 0]; priorities
//                              outside it are clamped; a priority stream
//                              and a launch with cudaLaunchAttributePriority
//                              compute what they should.
//   stream_priority order P    16 long kernels queued on a stream of
//                              priority 0, then one on a stream of
//                              priority P; prints "rank=R": how many of the
//                              16 had finished before P's kernel (by a
//                              ticket each kernel takes when it ends).
//   ... order P max R          the same, and fails if the rank exceeds R.
//   ... order P min R          the same, and fails if the rank is below R.
//   ... order P max|min R N    the same with kernels of N loop iterations
//                              (default 3000000: ~40 ms each on the
//                              emulated device, a few ms on a GPU).
//   stream_priority starve N   100 short kernels on each of two streams of
//                              priority -5, then one on a stream of
//                              priority 0; prints "rank=R" (how many of the
//                              200 ended before it) and fails if it is over
//                              N: a less urgent stream must still move.
// Prints PASS on success.  Runs natively on a GPU as well (where the long
// kernels leave room for the other stream's, whatever its priority).
#include <cuda_runtime.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app_check.h"

#define NLOW 16

// One thread spins `iters` times, then takes a ticket.  The sum goes to
// memory, or the compiler (and the emulator) would drop the loop.
__global__ void spin(unsigned *ticket, unsigned *slot, unsigned *sum,
                     unsigned iters)
{
  unsigned x = 0;

  for (unsigned i = 0; i < iters; i++)
    x = x * 3u + i;
  *sum = x;
  *slot = atomicAdd(ticket, 1u);
}

__global__ void fill(int *p, int n, int v)
{
  int i = blockIdx.x * blockDim.x + threadIdx.x;

  if (i < n)
    p[i] = v + i;
}

static void check_fill(const int *d, int n, int v)
{
  int *h = (int *)malloc(n * sizeof(int));

  CK(cudaMemcpy(h, d, n * sizeof(int), cudaMemcpyDeviceToHost));
  for (int i = 0; i < n; i++)
    EXPECT(h[i] == v + i, "element %d is %d, expected %d", i, h[i], v + i);
  free(h);
}

static void api(void)
{
  int least = 99, greatest = 99, p = 99;
  cudaStream_t s;
  int *d;
  const int n = 1000;

  CK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
  EXPECT(least == 0 && greatest == -5, "range [%d, %d], expected [-5, 0]",
         greatest, least);
  CK(cudaStreamCreateWithPriority(&s, cudaStreamNonBlocking, -9));
  CK(cudaStreamGetPriority(s, &p));
  EXPECT(p == -5, "priority -9 became %d, expected -5 (clamped)", p);
  CK(cudaStreamDestroy(s));
  CK(cudaStreamCreateWithPriority(&s, cudaStreamDefault, 4));
  CK(cudaStreamGetPriority(s, &p));
  EXPECT(p == 0, "priority 4 became %d, expected 0 (clamped)", p);
  CK(cudaStreamDestroy(s));

  CK(cudaMalloc(&d, n * sizeof(int)));
  CK(cudaStreamCreateWithPriority(&s, cudaStreamNonBlocking, -3));
  CK(cudaStreamGetPriority(s, &p));
  EXPECT(p == -3, "priority -3 became %d", p);
  fill<<<(n + 255) / 256, 256, 0, s>>>(d, n, 7);
  CK(cudaGetLastError());
  CK(cudaStreamSynchronize(s));
  check_fill(d, n, 7);

  // A launch's own priority (CUDA 12's launch attribute).
  {
    cudaLaunchConfig_t cfg;
    cudaLaunchAttribute attr;

    memset(&cfg, 0, sizeof(cfg));
    memset(&attr, 0, sizeof(attr));
    attr.id = cudaLaunchAttributePriority;
    attr.val.priority = -2;
    cfg.gridDim = dim3((n + 255) / 256);
    cfg.blockDim = dim3(256);
    cfg.stream = s;
    cfg.attrs = &attr;
    cfg.numAttrs = 1;
    CK(cudaLaunchKernelEx(&cfg, fill, d, n, 11));
    CK(cudaStreamSynchronize(s));
    check_fill(d, n, 11);
  }
  CK(cudaStreamDestroy(s));
  CK(cudaFree(d));
}

static int order(int prio, unsigned iters)
{
  cudaStream_t lo, hi;
  unsigned *d, h[NLOW + 2];
  int rank = 0;

  CK(cudaMalloc(&d, 2 * sizeof(h)));
  CK(cudaMemset(d, 0, 2 * sizeof(h)));
  CK(cudaStreamCreateWithPriority(&lo, cudaStreamNonBlocking, 0));
  CK(cudaStreamCreateWithPriority(&hi, cudaStreamNonBlocking, prio));
  // d[0] is the ticket counter; d[1 + i] the low kernels' tickets;
  // d[1 + NLOW] the other stream's; their sums after those.
  for (int i = 0; i <= NLOW; i++)
    spin<<<1, 1, 0, i < NLOW ? lo : hi>>>(d, d + 1 + i, d + NLOW + 2 + i,
                                          iters);
  CK(cudaGetLastError());
  CK(cudaStreamSynchronize(hi));
  CK(cudaStreamSynchronize(lo));
  CK(cudaMemcpy(h, d, sizeof(h), cudaMemcpyDeviceToHost));
  EXPECT(h[0] == NLOW + 1, "%u tickets taken, expected %d", h[0], NLOW + 1);
  // Every ticket once: the kernels all ran, each exactly once.
  {
    unsigned seen = 0;

    for (int i = 1; i <= NLOW + 1; i++) {
      EXPECT(h[i] <= NLOW && !(seen & (1u << h[i])),
             "ticket %u twice or out of range", h[i]);
      seen |= 1u << h[i];
    }
  }
  rank = (int)h[1 + NLOW];
  CK(cudaStreamDestroy(lo));
  CK(cudaStreamDestroy(hi));
  CK(cudaFree(d));
  return rank;
}

static int starve(void)
{
  enum { NA = 100, NK = 2 * NA + 1 };
  cudaStream_t a[2], b;
  unsigned *d, *h = (unsigned *)calloc(2 * NK + 1, sizeof(unsigned));
  char seen[NK] = {0};
  int rank;

  EXPECT(h, "out of memory");
  CK(cudaMalloc(&d, (2 * NK + 1) * sizeof(unsigned)));
  CK(cudaMemset(d, 0, (2 * NK + 1) * sizeof(unsigned)));
  CK(cudaStreamCreateWithPriority(&a[0], cudaStreamNonBlocking, -5));
  CK(cudaStreamCreateWithPriority(&a[1], cudaStreamNonBlocking, -5));
  CK(cudaStreamCreateWithPriority(&b, cudaStreamNonBlocking, 0));
  // d[0]: the ticket counter; d[1 + i]: kernel i's ticket (the priority-0
  // one last); their sums after those.
  for (int i = 0; i < 2 * NA; i++)
    spin<<<1, 1, 0, a[i % 2]>>>(d, d + 1 + i, d + 1 + NK + i, 100000);
  spin<<<1, 1, 0, b>>>(d, d + NK, d + 2 * NK, 100000);
  CK(cudaGetLastError());
  CK(cudaDeviceSynchronize());
  CK(cudaMemcpy(h, d, (2 * NK + 1) * sizeof(unsigned),
                cudaMemcpyDeviceToHost));
  EXPECT(h[0] == NK, "%u tickets taken, expected %d", h[0], NK);
  for (int i = 1; i <= NK; i++) {
    EXPECT(h[i] < NK && !seen[h[i]], "ticket %u twice or out of range", h[i]);
    seen[h[i]] = 1;
  }
  rank = (int)h[NK];
  for (int i = 0; i < 2; i++)
    CK(cudaStreamDestroy(a[i]));
  CK(cudaStreamDestroy(b));
  CK(cudaFree(d));
  free(h);
  return rank;
}

int main(int argc, char **argv)
{
  if (argc >= 2 && strcmp(argv[1], "api") == 0) {
    api();
  } else if (argc >= 3 && strcmp(argv[1], "order") == 0) {
    int prio = atoi(argv[2]);
    unsigned iters = argc >= 6 ? (unsigned)strtoul(argv[5], NULL, 10) : 3000000;
    int rank = order(prio, iters);

    printf("priority=%d rank=%d (low-priority kernels done before it, of "
           "%d)\n", prio, rank, NLOW);
    if (argc >= 5 && strcmp(argv[3], "max") == 0)
      EXPECT(rank <= atoi(argv[4]), "rank %d, expected at most %s", rank,
             argv[4]);
    if (argc >= 5 && strcmp(argv[3], "min") == 0)
      EXPECT(rank >= atoi(argv[4]), "rank %d, expected at least %s", rank,
             argv[4]);
  } else if (argc >= 3 && strcmp(argv[1], "starve") == 0) {
    int rank = starve();

    printf("rank=%d (priority -5 kernels done before the priority 0 one, "
           "of 200)\n", rank);
    EXPECT(rank <= atoi(argv[2]), "rank %d, expected at most %s", rank,
           argv[2]);
  } else {
    fprintf(stderr, "usage: stream_priority api | order P [max|min R [N]] | "
                    "starve N\n");
    return 2;
  }
  printf("PASS\n");
  return 0;
}
