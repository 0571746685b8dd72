// coop_grid.cu: a cooperative launch whose kernel synchronises its whole
// grid (cooperative_groups::this_grid().sync()): every block writes its
// part, the grid synchronises, and every thread then reads a word another
// block wrote.  Only a launch that keeps every block resident at once
// (cudaLaunchCooperativeKernel) gets the right answer.  Run natively and
// through tremote on a GPU (tests/gpu/run.sh); the emulated device does
// not emulate grid-wide synchronisation, and says so at the launch.
// Prints PASS on success.
#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include <stdio.h>
#include <stdlib.h>

#include "app_check.h"

namespace cg = cooperative_groups;

__global__ void shift(int *a, int *b, int n)
{
  cg::grid_group g = cg::this_grid();

  for (int i = g.thread_rank(); i < n; i += g.size())
    a[i] = i * 3;
  g.sync();
  for (int i = g.thread_rank(); i < n; i += g.size())
    b[i] = a[(i + 4099) % n] + 1;
}

int main()
{
  const int n = 1 << 20, threads = 256;
  int coop = 0, sms = 0, per_sm = 0;
  int *a, *b;

  CK(cudaDeviceGetAttribute(&coop, cudaDevAttrCooperativeLaunch, 0));
  if (!coop) {
    printf("SKIP: the device has no cooperative launches\n");
    return 77;
  }
  CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, shift, threads, 0));
  if (per_sm < 1) {
    fprintf(stderr, "FAIL occupancy of %d-thread blocks: %d per SM\n", threads,
            per_sm);
    return 1;
  }
  // One block per multiprocessor: resident at once whatever the exact
  // occupancy, which the grid-wide barrier needs.
  int blocks = sms;
  CK(cudaMalloc(&a, n * sizeof(int)));
  CK(cudaMalloc(&b, n * sizeof(int)));
  int nn = n;
  void *args[] = {&a, &b, &nn};
  CK(cudaLaunchCooperativeKernel((const void *)shift, dim3(blocks),
                                 dim3(threads), args, 0, 0));
  CK(cudaDeviceSynchronize());
  int *h = (int *)malloc(n * sizeof(int));
  CK(cudaMemcpy(h, b, n * sizeof(int), cudaMemcpyDeviceToHost));
  for (int i = 0; i < n; i++)
    if (h[i] != ((i + 4099) % n) * 3 + 1) {
      fprintf(stderr, "FAIL word %d: %d, expected %d (%d blocks)\n", i, h[i],
              ((i + 4099) % n) * 3 + 1, blocks);
      return 1;
    }
  printf("PASS coop_grid (%d blocks of %d threads, one grid sync)\n", blocks,
         threads);
  free(h);
  CK(cudaFree(a));
  CK(cudaFree(b));
  return 0;
}
