// emu_printf: device printf from many threads, and its order across syncs.
//
//   emu_printf EXPECTED_FILE
//
// Kernel 1 (4 blocks x 64 threads): every thread prints one line with %d,
// %f, %s (two different strings), %c, %x, %lld and %p (of a fixed pointer).
// Then cudaDeviceSynchronize, then the host prints a marker line, then
// kernel 2 (1 block x 4 threads) prints one short line per thread.
// The program cannot read its own stdout, so it writes what that stdout
// must contain to EXPECTED_FILE, one line each, prefixed with "1 " (kernel
// 1: any order, all before the marker), "H " (the marker) or "2 " (kernel
// 2: any order, after the marker, before the PASS line).  The test scripts
// (tests/integration/emu_apps.sh, tests/gpu/native_apps.sh) compare.
#include "emu_check.h"

#define FIXED_PTR ((const void *)0x1234abcdULL)
#define MARKER "host: between the kernels"

__host__ __device__ inline int value_of(int b, int t) { return b * 1000 + t * 7 - 100; }

__global__ void print_many()
{
  int b = blockIdx.x, t = threadIdx.x, v = value_of(b, t);
  const char *s = (t & 1) ? "tremote" : "emu";
  printf("block %d thread %d value %d f=%f s=%s c=%c x=%x ll=%lld p=%p\n", b, t, v,
         (double)((float)v * 0.25f), s, 'A' + t % 26, (unsigned)v,
         (long long)v * 1000000007LL, FIXED_PTR);
}

__global__ void print_second() { printf("second kernel thread %d\n", (int)threadIdx.x); }

int main(int argc, char **argv)
{
  if (argc != 2) {
    fprintf(stderr, "usage: %s EXPECTED_FILE\n", argv[0]);
    return 1;
  }
  FILE *ex = fopen(argv[1], "w");
  if (!ex) {
    perror(argv[1]);
    return 1;
  }
  const int blocks = 4, threads = 64;
  for (int b = 0; b < blocks; b++)
    for (int t = 0; t < threads; t++) {
      int v = value_of(b, t);
      fprintf(ex, "1 block %d thread %d value %d f=%f s=%s c=%c x=%x ll=%lld p=%p\n", b, t, v,
              (double)((float)v * 0.25f), (t & 1) ? "tremote" : "emu", 'A' + t % 26,
              (unsigned)v, (long long)v * 1000000007LL, FIXED_PTR);
    }
  fprintf(ex, "H %s\n", MARKER);
  for (int t = 0; t < 4; t++)
    fprintf(ex, "2 second kernel thread %d\n", t);
  if (fclose(ex) != 0) {
    perror(argv[1]);
    return 1;
  }

  fflush(stdout);
  print_many<<<blocks, threads>>>();
  CK_LAUNCH();
  CK(cudaDeviceSynchronize());
  printf("%s\n", MARKER);
  fflush(stdout);
  print_second<<<1, 4>>>();
  CK_LAUNCH();
  CK(cudaDeviceSynchronize());
  fflush(stdout);
  EmuCheck chk("emu_printf");
  return chk.finish();
}
