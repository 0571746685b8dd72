// emu_template: templated kernels.
//   - apply<T, Op>: one kernel template instantiated for int, float and
//     double, each with several functor types (stateless Add, Max and Mul,
//     and Affine, which carries state by value); the host runs the same
//     functors, which only use exactly rounded operations and never a
//     multiply followed by an add (nothing to fuse), so the comparison is
//     bit for bit;
//   - a non-type template parameter: power<N>() unrolled at compile time,
//     and a kernel templated on its block size with a static shared array;
//   - a templated __device__ function called with deduced types.
#include "emu_check.h"

#include <vector>

struct Add {
  template <typename T> __host__ __device__ T operator()(T a, T b) const { return a + b; }
};
struct Max {
  template <typename T> __host__ __device__ T operator()(T a, T b) const { return a > b ? a : b; }
};
struct Mul {
  template <typename T> __host__ __device__ T operator()(T a, T b) const { return a * b; }
};
template <typename T> struct Affine {
  T k, c;
  // The multiply comes last, so nothing can be fused into an fma.
  __host__ __device__ T operator()(T a, T b) const { return (a + b - c) * k; }
};

template <int N, typename T> __host__ __device__ T power(T x)
{
  T r = x;
  for (int i = 1; i < N; i++) // unrolled: N is a constant
    r = r * x;
  return r;
}

template <typename T> __device__ T clamp_to(T v, T lo, T hi)
{
  return v < lo ? lo : (v > hi ? hi : v);
}

template <typename T, typename Op>
__global__ void apply(const T *a, const T *b, T *out, int n, Op op)
{
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n)
    out[i] = op(a[i], b[i]);
}

template <typename T>
__global__ void powers(const T *a, T *p3, T *p5, int n, T lo, T hi)
{
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    p3[i] = power<3>(a[i]);
    p5[i] = clamp_to(power<5>(a[i]), lo, hi);
  }
}

template <int BLOCK, typename T>
__global__ void block_max(const T *a, T *out, int n)
{
  __shared__ T sh[BLOCK];
  int i = blockIdx.x * BLOCK + threadIdx.x;
  sh[threadIdx.x] = i < n ? a[i] : a[0];
  __syncthreads();
  for (int s = BLOCK / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s)
      sh[threadIdx.x] = Max()(sh[threadIdx.x], sh[threadIdx.x + s]);
    __syncthreads();
  }
  if (threadIdx.x == 0)
    out[blockIdx.x] = sh[0];
}

template <typename T>
static T input(int i, int which)
{
  uint32_t h = emu_hash(2 * i + which);
  return (T)((int)(h % 2001u) - 1000) / (T)(which ? 4 : 1) + (T)(i % 3) / (T)3;
}

template <typename T, typename Op>
static void check_apply(EmuCheck &chk, const char *name, const T *da, const T *db, T *dout,
                        const std::vector<T> &a, const std::vector<T> &b, Op op)
{
  int n = (int)a.size();
  CK(cudaMemset(dout, 0, n * sizeof(T)));
  apply<T, Op><<<(n + 127) / 128, 128>>>(da, db, dout, n, op);
  CK_LAUNCH();
  CK(cudaDeviceSynchronize());
  std::vector<T> got(n);
  CK(cudaMemcpy(got.data(), dout, n * sizeof(T), cudaMemcpyDeviceToHost));
  for (int i = 0; i < n; i++)
    chk.same_bits(name, i, got[i], op(a[i], b[i]));
}

template <typename T>
static void run(EmuCheck &chk, const char *tname, T k, T c, T lo, T hi)
{
  const int n = 10007;
  std::vector<T> a(n), b(n), x(n);
  for (int i = 0; i < n; i++) {
    a[i] = input<T>(i, 0);
    b[i] = input<T>(i, 1);
    // Small enough that x^5 fits an int.
    x[i] = (T)((int)(emu_hash(3 * i + 2) % 61u) - 30) + (T)(i % 3) / (T)4;
  }
  T *da, *db, *dout, *dout2;
  CK(cudaMalloc(&da, n * sizeof(T)));
  CK(cudaMalloc(&db, n * sizeof(T)));
  CK(cudaMalloc(&dout, n * sizeof(T)));
  CK(cudaMalloc(&dout2, n * sizeof(T)));
  CK(cudaMemcpy(da, a.data(), n * sizeof(T), cudaMemcpyHostToDevice));
  CK(cudaMemcpy(db, b.data(), n * sizeof(T), cudaMemcpyHostToDevice));
  T *dx;
  CK(cudaMalloc(&dx, n * sizeof(T)));
  CK(cudaMemcpy(dx, x.data(), n * sizeof(T), cudaMemcpyHostToDevice));
  char what[64];
  snprintf(what, sizeof what, "%s.add", tname);
  check_apply(chk, what, da, db, dout, a, b, Add());
  snprintf(what, sizeof what, "%s.max", tname);
  check_apply(chk, what, da, db, dout, a, b, Max());
  snprintf(what, sizeof what, "%s.mul", tname);
  check_apply(chk, what, da, db, dout, a, b, Mul());
  snprintf(what, sizeof what, "%s.affine", tname);
  check_apply(chk, what, da, db, dout, a, b, Affine<T>{k, c});

  powers<T><<<(n + 63) / 64, 64>>>(dx, dout, dout2, n, lo, hi);
  CK_LAUNCH();
  CK(cudaDeviceSynchronize());
  std::vector<T> p3(n), p5(n);
  CK(cudaMemcpy(p3.data(), dout, n * sizeof(T), cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(p5.data(), dout2, n * sizeof(T), cudaMemcpyDeviceToHost));
  for (int i = 0; i < n; i++) {
    snprintf(what, sizeof what, "%s.power3", tname);
    chk.same_bits(what, i, p3[i], power<3>(x[i]));
    T w5 = power<5>(x[i]);
    w5 = w5 < lo ? lo : (w5 > hi ? hi : w5);
    snprintf(what, sizeof what, "%s.power5", tname);
    chk.same_bits(what, i, p5[i], w5);
  }

  const int nb = (n + 255) / 256;
  block_max<256, T><<<nb, 256>>>(db, dout, n);
  CK_LAUNCH();
  CK(cudaDeviceSynchronize());
  std::vector<T> bm(nb);
  CK(cudaMemcpy(bm.data(), dout, nb * sizeof(T), cudaMemcpyDeviceToHost));
  for (int blk = 0; blk < nb; blk++) {
    T m = b[0];
    for (int i = blk * 256; i < blk * 256 + 256 && i < n; i++)
      m = b[i] > m ? b[i] : m;
    snprintf(what, sizeof what, "%s.block_max", tname);
    chk.same_bits(what, blk, bm[blk], m);
  }
  CK(cudaFree(da));
  CK(cudaFree(db));
  CK(cudaFree(dout));
  CK(cudaFree(dout2));
  CK(cudaFree(dx));
}

int main()
{
  EmuCheck chk("emu_template");
  run<int>(chk, "int", 3, 7, -10000000, 10000000);
  run<float>(chk, "float", 0.375f, 1.0f / 3.0f, -1e7f, 1e7f);
  run<double>(chk, "double", 1.0 / 7.0, 0.1, -1e7, 1e7);
  return chk.finish();
}
