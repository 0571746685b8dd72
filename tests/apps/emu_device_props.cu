// emu_device_props: device properties and launch configurations.
//   - cudaGetDeviceCount >= 1; cudaGetDeviceProperties(0): warpSize 32,
//     maxThreadsPerBlock 1024, sharedMemPerBlock >= 48 KiB, major >= 7,
//     multiProcessorCount > 0, maxThreadsDim and maxGridSize sane, a name;
//   - cudaDeviceGetAttribute agrees with the properties for the same items;
//   - a kernel with 40 KiB of dynamic shared memory (extern __shared__):
//     every thread fills its part, then reads another thread's part after
//     __syncthreads;
//   - a launch with 2048 threads per block: cudaGetLastError right after it
//     returns an error, the next cudaGetLastError returns cudaSuccess (not
//     sticky), and a good launch still works.  The error is
//     cudaErrorInvalidConfiguration in the CUDA documentation and in older
//     runtimes, but the CUDA 13.0 runtime on an H200 (driver 580) returns
//     cudaErrorInvalidValue for every impossible configuration (too many
//     threads, a block dimension too large, a zero grid, too much dynamic
//     shared memory), so both are accepted; the line "invalid launch: NAME"
//     says which one came back, to compare the emulated device with a GPU;
//   - cudaFuncGetAttributes and the occupancy calculator agree with the
//     device: blocks per multiprocessor within its limits, shared memory
//     included; cudaOccupancyMaxPotentialBlockSize gives a usable shape;
//   - 64 KiB of dynamic shared memory needs the opt-in
//     (cudaFuncSetAttribute MaxDynamicSharedMemorySize), then runs.
#include "emu_check.h"

#define SMEM_BYTES (40 * 1024)
#define SMEM_THREADS 256

__global__ void dyn_shared(unsigned *out)
{
  extern __shared__ unsigned sh[];
  const int words = SMEM_BYTES / 4, per = words / SMEM_THREADS; // 40 each
  int t = threadIdx.x;
  for (int k = 0; k < per; k++)
    sh[t * per + k] = (unsigned)(blockIdx.x * 100000 + t * per + k) * 2654435761u;
  __syncthreads();
  int other = (t * 37 + 11) % SMEM_THREADS;
  unsigned s = 0;
  for (int k = 0; k < per; k++)
    s = s * 31u + sh[other * per + k];
  out[blockIdx.x * SMEM_THREADS + t] = s;
}

__global__ void trivial(int *p) { p[threadIdx.x] = threadIdx.x + 1; }

int main()
{
  EmuCheck chk("emu_device_props");
  int count = 0;
  CK(cudaGetDeviceCount(&count));
  chk.expect(count >= 1, "cudaGetDeviceCount gave %d", count);
  CK(cudaSetDevice(0));
  cudaDeviceProp p;
  CK(cudaGetDeviceProperties(&p, 0));
  printf("device 0: %s, compute %d.%d, %d SMs, %zu bytes shared per block, %zu MiB\n", p.name,
         p.major, p.minor, p.multiProcessorCount, p.sharedMemPerBlock, p.totalGlobalMem >> 20);
  chk.expect(p.name[0] != '\0', "empty device name");
  chk.expect(p.warpSize == 32, "warpSize %d", p.warpSize);
  chk.expect(p.maxThreadsPerBlock == 1024, "maxThreadsPerBlock %d", p.maxThreadsPerBlock);
  chk.expect(p.sharedMemPerBlock >= 48 * 1024, "sharedMemPerBlock %zu", p.sharedMemPerBlock);
  chk.expect(p.major >= 7, "major %d", p.major);
  chk.expect(p.multiProcessorCount > 0, "multiProcessorCount %d", p.multiProcessorCount);
  chk.expect(p.maxThreadsDim[0] == 1024 && p.maxThreadsDim[1] == 1024 && p.maxThreadsDim[2] == 64,
             "maxThreadsDim %d %d %d", p.maxThreadsDim[0], p.maxThreadsDim[1], p.maxThreadsDim[2]);
  chk.expect(p.maxGridSize[0] == 2147483647 && p.maxGridSize[1] >= 65535 && p.maxGridSize[2] >= 65535,
             "maxGridSize %d %d %d", p.maxGridSize[0], p.maxGridSize[1], p.maxGridSize[2]);
  chk.expect(p.totalGlobalMem > 0, "totalGlobalMem 0");

  struct {
    cudaDeviceAttr attr;
    const char *name;
    long long want;
  } attrs[] = {
      {cudaDevAttrWarpSize, "WarpSize", p.warpSize},
      {cudaDevAttrMaxThreadsPerBlock, "MaxThreadsPerBlock", p.maxThreadsPerBlock},
      {cudaDevAttrMaxSharedMemoryPerBlock, "MaxSharedMemoryPerBlock", (long long)p.sharedMemPerBlock},
      {cudaDevAttrComputeCapabilityMajor, "ComputeCapabilityMajor", p.major},
      {cudaDevAttrComputeCapabilityMinor, "ComputeCapabilityMinor", p.minor},
      {cudaDevAttrMultiProcessorCount, "MultiProcessorCount", p.multiProcessorCount},
      {cudaDevAttrMaxBlockDimX, "MaxBlockDimX", p.maxThreadsDim[0]},
      {cudaDevAttrMaxGridDimX, "MaxGridDimX", p.maxGridSize[0]},
  };
  for (auto &a : attrs) {
    int v = -1;
    CK(cudaDeviceGetAttribute(&v, a.attr, 0));
    chk.expect(v == a.want, "cudaDeviceGetAttribute(%s) = %d, properties say %lld", a.name, v,
               a.want);
  }

  // 40 KiB of dynamic shared memory.
  const int blocks = 6;
  unsigned *dout;
  CK(cudaMalloc(&dout, blocks * SMEM_THREADS * sizeof(unsigned)));
  dyn_shared<<<blocks, SMEM_THREADS, SMEM_BYTES>>>(dout);
  CK_LAUNCH();
  CK(cudaDeviceSynchronize());
  unsigned out[blocks * SMEM_THREADS];
  CK(cudaMemcpy(out, dout, sizeof out, cudaMemcpyDeviceToHost));
  const int per = SMEM_BYTES / 4 / SMEM_THREADS;
  for (int b = 0; b < blocks; b++)
    for (int t = 0; t < SMEM_THREADS; t++) {
      int other = (t * 37 + 11) % SMEM_THREADS;
      unsigned s = 0;
      for (int k = 0; k < per; k++)
        s = s * 31u + (unsigned)(b * 100000 + other * per + k) * 2654435761u;
      chk.eq("dyn_shared", b * SMEM_THREADS + t, out[b * SMEM_THREADS + t], s);
    }

  // An invalid configuration.
  int *dp;
  CK(cudaMalloc(&dp, 1024 * sizeof(int)));
  CK(cudaMemset(dp, 0, 1024 * sizeof(int)));
  trivial<<<1, 2048>>>(dp);
  cudaError_t e = cudaGetLastError();
  printf("invalid launch: %s\n", cudaGetErrorName(e));
  chk.expect(e == cudaErrorInvalidConfiguration || e == cudaErrorInvalidValue,
             "launch with 2048 threads: cudaGetLastError gave %s, expected "
             "cudaErrorInvalidConfiguration (or cudaErrorInvalidValue, as CUDA 13 does)",
             cudaGetErrorName(e));
  e = cudaGetLastError();
  chk.expect(e == cudaSuccess, "second cudaGetLastError gave %s (the error must not be sticky)",
             cudaGetErrorName(e));
  trivial<<<1, 1024>>>(dp);
  CK_LAUNCH();
  CK(cudaDeviceSynchronize());
  int host[1024];
  CK(cudaMemcpy(host, dp, sizeof host, cudaMemcpyDeviceToHost));
  for (int t = 0; t < 1024; t++)
    chk.eq("after the bad launch", t, host[t], t + 1);

  // Function attributes and occupancy.
  cudaFuncAttributes fa;
  CK(cudaFuncGetAttributes(&fa, dyn_shared));
  chk.expect(fa.maxThreadsPerBlock >= 256 && fa.maxThreadsPerBlock <= 1024,
             "dyn_shared: maxThreadsPerBlock %d", fa.maxThreadsPerBlock);
  chk.expect(fa.sharedSizeBytes == 0, "dyn_shared: %zu bytes of static shared memory",
             fa.sharedSizeBytes);
  chk.expect(fa.ptxVersion >= 70 || fa.binaryVersion >= 70, "ptxVersion %d binaryVersion %d",
             fa.ptxVersion, fa.binaryVersion);
  int nb = -1;
  CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&nb, trivial, 256, 0));
  printf("occupancy: %d blocks of 256 threads per multiprocessor\n", nb);
  chk.expect(nb >= 1 && nb <= p.maxBlocksPerMultiProcessor &&
                 nb * 256 <= p.maxThreadsPerMultiProcessor,
             "trivial, 256 threads: %d blocks per multiprocessor", nb);
  CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&nb, dyn_shared, SMEM_THREADS, SMEM_BYTES));
  printf("occupancy: %d blocks with 40 KiB of shared memory per multiprocessor\n", nb);
  chk.expect(nb >= 1 && (size_t)nb * SMEM_BYTES <= p.sharedMemPerMultiprocessor,
             "dyn_shared with 40 KiB: %d blocks per multiprocessor (%zu bytes per SM)", nb,
             p.sharedMemPerMultiprocessor);
  int min_grid = 0, best = 0;
  CK(cudaOccupancyMaxPotentialBlockSize(&min_grid, &best, trivial));
  chk.expect(best >= 32 && best <= 1024 && min_grid >= p.multiProcessorCount,
             "cudaOccupancyMaxPotentialBlockSize: block %d, grid %d", best, min_grid);

  // More than 48 KiB of dynamic shared memory needs the opt-in.
  dyn_shared<<<1, SMEM_THREADS, 64 * 1024>>>(dout);
  e = cudaGetLastError();
  chk.expect(e != cudaSuccess, "64 KiB of dynamic shared memory without the opt-in launched");
  CK(cudaFuncSetAttribute(dyn_shared, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024));
  dyn_shared<<<blocks, SMEM_THREADS, 64 * 1024>>>(dout);
  CK_LAUNCH();
  CK(cudaDeviceSynchronize());
  CK(cudaMemcpy(out, dout, sizeof out, cudaMemcpyDeviceToHost));
  for (int b = 0; b < blocks; b++)
    for (int t = 0; t < SMEM_THREADS; t++) {
      int other = (t * 37 + 11) % SMEM_THREADS;
      unsigned s = 0;
      for (int k = 0; k < per; k++)
        s = s * 31u + (unsigned)(b * 100000 + other * per + k) * 2654435761u;
      chk.eq("dyn_shared with the opt-in", b * SMEM_THREADS + t, out[b * SMEM_THREADS + t], s);
    }
  CK(cudaFree(dout));
  CK(cudaFree(dp));
  return chk.finish();
}
