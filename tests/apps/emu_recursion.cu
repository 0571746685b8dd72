// emu_recursion: real calls, a call stack and local memory.
//   - fib(n), a __noinline__ doubly recursive __device__ function, n up to
//     16 (depth 16, 3193 calls for fib(16)), per-thread n;
//   - ackermann(m, n) for m <= 2 (n up to 6: recursion depth about 16),
//     per-thread (m, n);
//   - rec_local(depth, seed): recursion to depth 7 where every frame keeps
//     a local array indexed at run time (so it lives in local memory on the
//     stack) and reads it after the recursive call returns: each frame must
//     keep its own copy;
//   - local_mix(seed, k), a __noinline__ function with a 32-entry local
//     array indexed by run-time values.
// Every thread gets different inputs; results are compared exactly with
// the same functions run on the host.  The deepest call chain stays well
// inside the default per-thread stack (1 KiB), so no cudaDeviceSetLimit is
// needed: ptxas -v (sm_75 and sm_90) gives frames of 128 bytes for the
// kernel, 24 for fib (17 deep), 40 for ackermann (16 deep) and 72 for
// rec_local (8 deep), at most 768 bytes.
#include "emu_check.h"

__host__ __device__ __noinline__ unsigned fib(unsigned n)
{
  return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

__host__ __device__ __noinline__ unsigned ackermann(unsigned m, unsigned n)
{
  if (m == 0)
    return n + 1;
  if (n == 0)
    return ackermann(m - 1, 1);
  return ackermann(m - 1, ackermann(m, n - 1));
}

__host__ __device__ __noinline__ unsigned rec_local(unsigned depth, unsigned seed)
{
  unsigned a[8];
  for (unsigned i = 0; i < 8; i++)
    a[i] = seed * (i + 1) + depth;
  unsigned r = depth > 0 ? rec_local(depth - 1, seed * 3u + 1u) : 0u;
  // Indexed with values from the callee's result: a[] must be in memory.
  return r * 31u + a[(r ^ seed ^ depth) & 7] + a[(r >> 3) & 7];
}

__host__ __device__ __noinline__ unsigned local_mix(unsigned seed, unsigned k)
{
  unsigned arr[32];
  for (unsigned i = 0; i < 32; i++)
    arr[i] = (seed * (i + 1)) ^ (i * 0x9e3779b9u);
  unsigned s = 0;
  for (unsigned i = 0; i < 64; i++) {
    unsigned j = (i * k + seed + s) & 31;
    s += arr[j];
    arr[(j + 1) & 31] ^= s;
  }
  return s;
}

struct Result {
  unsigned fib, ack, rec, mix;
};

__host__ __device__ inline void inputs(int t, unsigned &fn, unsigned &am, unsigned &an,
                                       unsigned &depth, unsigned &seed)
{
  fn = (unsigned)(t % 17);       // 0..16
  am = (unsigned)(t % 3);        // 0..2
  an = (unsigned)((t / 3) % 7);  // 0..6
  depth = (unsigned)(t % 8);     // 0..7
  seed = emu_hash((uint32_t)t);
}

__global__ void run(Result *out, int n)
{
  int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= n)
    return;
  unsigned fn, am, an, depth, seed;
  inputs(t, fn, am, an, depth, seed);
  out[t].fib = fib(fn);
  out[t].ack = ackermann(am, an);
  out[t].rec = rec_local(depth, seed);
  out[t].mix = local_mix(seed, (unsigned)t % 13u + 1u);
}

int main()
{
  const int n = 300; // not a multiple of the block size
  Result *d, h[n];
  CK(cudaMalloc(&d, n * sizeof(Result)));
  CK(cudaMemset(d, 0, n * sizeof(Result)));
  run<<<(n + 127) / 128, 128>>>(d, n);
  CK_LAUNCH();
  CK(cudaDeviceSynchronize());
  CK(cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost));
  EmuCheck chk("emu_recursion");
  for (int t = 0; t < n; t++) {
    unsigned fn, am, an, depth, seed;
    inputs(t, fn, am, an, depth, seed);
    chk.eq("fib", t, h[t].fib, fib(fn));
    chk.eq("ackermann", t, h[t].ack, ackermann(am, an));
    chk.eq("rec_local", t, h[t].rec, rec_local(depth, seed));
    chk.eq("local_mix", t, h[t].mix, local_mix(seed, (unsigned)t % 13u + 1u));
  }
  CK(cudaFree(d));
  return chk.finish();
}
