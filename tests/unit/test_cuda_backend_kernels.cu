// test_cuda_backend_kernels.cu: the kernels test_cuda_backend runs on a real
// GPU through the agent's cuda backend, built into a fatbin by nvcc at build
// time (tests/cuda_backend.cmake).  extern "C" keeps the names unmangled;
// the parameter layouts are the ones tests/unit/fake_libcuda.c implements
// for the same names.

// A module variable: the driver places it outside every address window.
__device__ unsigned long long tr_counter;

// p[i] = v + i for i < n.  Parameters: u64 p, u32 n, u32 v (16 bytes).
extern "C" __global__ void fill(unsigned *p, unsigned n, unsigned v)
{
  unsigned i = blockIdx.x * blockDim.x + threadIdx.x;

  if (i < n)
    p[i] = v + i;
}

// *out = tr_counter.  Parameters: u64 out (8 bytes).
extern "C" __global__ void read_counter(unsigned long long *out)
{
  if (blockIdx.x == 0 && threadIdx.x == 0)
    *out = tr_counter;
}

static __device__ unsigned long long now_ns()
{
  unsigned long long t;

  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

// Wait ns nanoseconds, then p[0] = 1.  Parameters: u64 p, u64 ns (16 bytes).
extern "C" __global__ void spin(unsigned *p, unsigned long long ns)
{
  unsigned long long t0 = now_ns();

  if (blockIdx.x != 0 || threadIdx.x != 0)
    return;
  while (now_ns() - t0 < ns)
    ;
  p[0] = 1;
}
