// emu_saxpy_double: y = a*x + y in double, compared with tolerance 0.
//
// nvcc contracts a*x[i] + y[i] into one fused multiply-add (fma.rn.f64: one
// rounding) at its default -fmad=true, so the reference for that kernel is
// the host's fma(), which is also correctly rounded: the results must be
// bit-identical.  Two more kernels pin the other cases down: one calls
// fma() explicitly, and one uses __dmul_rn/__dadd_rn (never contracted,
// two roundings), compared with a host product and sum that are kept apart
// by a volatile.  The inputs are chosen so that fused and unfused results
// differ for many elements (the program checks that they do), so an
// emulator that rounds twice in fma.rn.f64 fails.
#include "emu_check.h"

#include <math.h>

__global__ void daxpy_contracted(int n, double a, const double *x, double *y)
{
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n)
    y[i] = a * x[i] + y[i];
}

__global__ void daxpy_fma(int n, double a, const double *x, double *y)
{
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n)
    y[i] = fma(a, x[i], y[i]);
}

__global__ void daxpy_unfused(int n, double a, const double *x, double *y)
{
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n)
    y[i] = __dadd_rn(__dmul_rn(a, x[i]), y[i]);
}

static double unfused(double a, double x, double y)
{
  volatile double p = a * x; // rounded to double, never fused with the add
  return p + y;
}

int main()
{
  const int n = 300007, block = 128;
  const int grid = (n + block - 1) / block;
  const double a = 1.0 / 3.0 + 1e-9;
  double *hx = (double *)malloc(n * sizeof(double));
  double *hy = (double *)malloc(n * sizeof(double));
  double *out = (double *)malloc(n * sizeof(double));
  for (int i = 0; i < n; i++) {
    uint32_t h1 = emu_hash(2 * i), h2 = emu_hash(2 * i + 1);
    hx[i] = ((double)h1 / 4294967296.0 - 0.5) * 1000.0 + 1.0 / 7.0;
    hy[i] = -a * hx[i] + ((double)h2 / 4294967296.0 - 0.5) * 1e-3;
    if (i % 5 == 0)
      hy[i] = (double)(int)(h2 % 2001u) - 1000.0;
  }
  double *dx, *dy;
  CK(cudaMalloc(&dx, n * sizeof(double)));
  CK(cudaMalloc(&dy, n * sizeof(double)));
  CK(cudaMemcpy(dx, hx, n * sizeof(double), cudaMemcpyHostToDevice));

  EmuCheck chk("emu_saxpy_double");
  long differ = 0;
  for (int i = 0; i < n; i++)
    differ += fma(a, hx[i], hy[i]) != unfused(a, hx[i], hy[i]);
  chk.expect(differ > n / 10, "the inputs do not tell fma from mul+add (%ld differ)", differ);

  for (int variant = 0; variant < 3; variant++) {
    CK(cudaMemcpy(dy, hy, n * sizeof(double), cudaMemcpyHostToDevice));
    const char *what;
    if (variant == 0) {
      daxpy_contracted<<<grid, block>>>(n, a, dx, dy);
      what = "contracted";
    } else if (variant == 1) {
      daxpy_fma<<<grid, block>>>(n, a, dx, dy);
      what = "fma";
    } else {
      daxpy_unfused<<<grid, block>>>(n, a, dx, dy);
      what = "unfused";
    }
    CK_LAUNCH();
    CK(cudaDeviceSynchronize());
    CK(cudaMemcpy(out, dy, n * sizeof(double), cudaMemcpyDeviceToHost));
    for (int i = 0; i < n; i++) {
      double want = variant < 2 ? fma(a, hx[i], hy[i]) : unfused(a, hx[i], hy[i]);
      chk.same_bits(what, i, out[i], want);
    }
  }
  CK(cudaFree(dx));
  CK(cudaFree(dy));
  free(hx);
  free(hy);
  free(out);
  return chk.finish();
}
