// emu_half: __half and __half2 arithmetic and conversions (cuda_fp16.h).
//   - __hadd, __hsub, __hmul, __hfma on 65536 triples of finite halves
//     (random bit patterns, subnormals included, plus zeros, the largest
//     finite value and other edge cases);
//   - __hadd2, __hmul2, __hfma2 on the same values paired as half2;
//   - __float2half (round to nearest even) of floats across and beyond the
//     half range, and __half2float of every input;
//   - __floats2half2_rn, __low2float and __high2float.
// Each operation reads its operands straight from memory and stores its
// result, so nothing can be fused.  The host reference converts the
// operands to double with the host-side __half2float, computes in double
// (exact for +, -, * and for a*b+c whenever the result is finite: the
// operands' significands are at most 11 bits and their exponents span
// less than 53 bits), and rounds once with the host-side __double2half,
// so every operation is compared bit for bit with the correctly rounded
// result.  Float->half uses the host-side __float2half as reference.
#include "emu_check.h"

#include <cuda_fp16.h>

#include <vector>

__global__ void half_ops(const __half *a, const __half *b, const __half *c, __half *add,
                         __half *sub, __half *mul, __half *fma, int n)
{
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    add[i] = __hadd(a[i], b[i]);
    sub[i] = __hsub(a[i], b[i]);
    mul[i] = __hmul(a[i], b[i]);
    fma[i] = __hfma(a[i], b[i], c[i]);
  }
}

__global__ void half2_ops(const __half2 *a, const __half2 *b, const __half2 *c, __half2 *add,
                          __half2 *mul, __half2 *fma, int n2)
{
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n2) {
    add[i] = __hadd2(a[i], b[i]);
    mul[i] = __hmul2(a[i], b[i]);
    fma[i] = __hfma2(a[i], b[i], c[i]);
  }
}

__global__ void conversions(const float *f, const __half *a, __half *f2h, float *h2f,
                            __half2 *pair, float *lo, float *hi, int n)
{
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    f2h[i] = __float2half(f[i]);
    h2f[i] = __half2float(a[i]);
    __half2 p = __floats2half2_rn(f[i], f[n - 1 - i]);
    pair[i] = p;
    lo[i] = __low2float(p);
    hi[i] = __high2float(p);
  }
}

static unsigned short bits(__half h)
{
  __half_raw r = h;
  return r.x;
}

static __half from_bits(unsigned short u)
{
  __half_raw r;
  r.x = u;
  return __half(r);
}

static __half ref(double exact) { return __double2half(exact); }

static double d(__half h) { return (double)__half2float(h); }

int main()
{
  const int n = 65536, n2 = n / 2;
  const unsigned short special[] = {0x0000, 0x8000, 0x0001, 0x8001, 0x03ff, 0x0400, 0x7bff,
                                    0xfbff, 0x3c00, 0xbc00, 0x3800, 0x3555, 0x7800, 0x0200};
  const int nspecial = sizeof special / sizeof special[0];
  std::vector<__half> a(n), b(n), c(n);
  std::vector<float> f(n);
  for (int i = 0; i < n; i++) {
    unsigned short u[3];
    for (int k = 0; k < 3; k++) {
      u[k] = (unsigned short)(emu_hash(3 * i + k) & 0xffff);
      if ((u[k] & 0x7c00) == 0x7c00) // inf or NaN: make it finite
        u[k] ^= 0x4000;
    }
    if (i < nspecial * nspecial) { // every pair of special values
      u[0] = special[i / nspecial];
      u[1] = special[i % nspecial];
    }
    a[i] = from_bits(u[0]);
    b[i] = from_bits(u[1]);
    c[i] = from_bits(u[2]);
    // Floats with exponents around the half range (2^-30 .. 2^18).
    uint32_t h = emu_hash(i + 0x55555);
    uint32_t fb = (h & 0x807fffffu) | ((uint32_t)(97 + (h >> 8) % 48) << 23);
    if (i % 7 == 0) // exactly halfway between two halves: ties to even
      fb = (fb & 0xffffe000u) | 0x1000u;
    memcpy(&f[i], &fb, 4);
  }
  f[0] = 65504.0f;
  f[1] = 65519.996f; // rounds down to 65504
  f[2] = 65520.0f;   // rounds to infinity
  f[3] = -1e9f;
  f[4] = 5.9604645e-08f; // 2^-24, the smallest subnormal
  f[5] = 2.9802322e-08f; // 2^-25: a tie, to zero
  f[6] = 0.0f;
  f[7] = -0.0f;

  __half *da, *db, *dc, *dadd, *dsub, *dmul, *dfma, *df2h;
  float *df, *dh2f, *dlo, *dhi;
  __half2 *dadd2, *dmul2, *dfma2, *dpair;
  CK(cudaMalloc(&da, n * sizeof(__half)));
  CK(cudaMalloc(&db, n * sizeof(__half)));
  CK(cudaMalloc(&dc, n * sizeof(__half)));
  CK(cudaMalloc(&dadd, n * sizeof(__half)));
  CK(cudaMalloc(&dsub, n * sizeof(__half)));
  CK(cudaMalloc(&dmul, n * sizeof(__half)));
  CK(cudaMalloc(&dfma, n * sizeof(__half)));
  CK(cudaMalloc(&df2h, n * sizeof(__half)));
  CK(cudaMalloc(&df, n * sizeof(float)));
  CK(cudaMalloc(&dh2f, n * sizeof(float)));
  CK(cudaMalloc(&dlo, n * sizeof(float)));
  CK(cudaMalloc(&dhi, n * sizeof(float)));
  CK(cudaMalloc(&dadd2, n2 * sizeof(__half2)));
  CK(cudaMalloc(&dmul2, n2 * sizeof(__half2)));
  CK(cudaMalloc(&dfma2, n2 * sizeof(__half2)));
  CK(cudaMalloc(&dpair, n * sizeof(__half2)));
  CK(cudaMemcpy(da, a.data(), n * sizeof(__half), cudaMemcpyHostToDevice));
  CK(cudaMemcpy(db, b.data(), n * sizeof(__half), cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dc, c.data(), n * sizeof(__half), cudaMemcpyHostToDevice));
  CK(cudaMemcpy(df, f.data(), n * sizeof(float), cudaMemcpyHostToDevice));

  half_ops<<<n / 256, 256>>>(da, db, dc, dadd, dsub, dmul, dfma, n);
  CK_LAUNCH();
  half2_ops<<<n2 / 256, 256>>>((const __half2 *)da, (const __half2 *)db, (const __half2 *)dc,
                               dadd2, dmul2, dfma2, n2);
  CK_LAUNCH();
  conversions<<<n / 256, 256>>>(df, da, df2h, dh2f, dpair, dlo, dhi, n);
  CK_LAUNCH();
  CK(cudaDeviceSynchronize());

  std::vector<__half> add(n), sub(n), mul(n), fma(n), add2(n), mul2(n), fma2(n), f2h(n), pair(2 * n);
  std::vector<float> h2f(n), lo(n), hi(n);
  CK(cudaMemcpy(add.data(), dadd, n * sizeof(__half), cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(sub.data(), dsub, n * sizeof(__half), cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(mul.data(), dmul, n * sizeof(__half), cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(fma.data(), dfma, n * sizeof(__half), cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(add2.data(), dadd2, n * sizeof(__half), cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(mul2.data(), dmul2, n * sizeof(__half), cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(fma2.data(), dfma2, n * sizeof(__half), cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(f2h.data(), df2h, n * sizeof(__half), cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(pair.data(), dpair, 2 * n * sizeof(__half), cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(h2f.data(), dh2f, n * sizeof(float), cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(lo.data(), dlo, n * sizeof(float), cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(hi.data(), dhi, n * sizeof(float), cudaMemcpyDeviceToHost));

  EmuCheck chk("emu_half");
  for (int i = 0; i < n; i++) {
    unsigned short wadd = bits(ref(d(a[i]) + d(b[i])));
    unsigned short wsub = bits(ref(d(a[i]) - d(b[i])));
    unsigned short wmul = bits(ref(d(a[i]) * d(b[i])));
    unsigned short wfma = bits(ref(d(a[i]) * d(b[i]) + d(c[i])));
    chk.eq("hadd", i, (unsigned)bits(add[i]), (unsigned)wadd);
    chk.eq("hsub", i, (unsigned)bits(sub[i]), (unsigned)wsub);
    chk.eq("hmul", i, (unsigned)bits(mul[i]), (unsigned)wmul);
    chk.eq("hfma", i, (unsigned)bits(fma[i]), (unsigned)wfma);
    chk.eq("hadd2", i, (unsigned)bits(add2[i]), (unsigned)wadd);
    chk.eq("hmul2", i, (unsigned)bits(mul2[i]), (unsigned)wmul);
    chk.eq("hfma2", i, (unsigned)bits(fma2[i]), (unsigned)wfma);
    __half wf = __float2half(f[i]);
    chk.eq("float2half", i, (unsigned)bits(f2h[i]), (unsigned)bits(wf));
    chk.same_bits("half2float", i, h2f[i], __half2float(a[i]));
    __half wlo = wf, whi = __float2half(f[n - 1 - i]);
    chk.eq("floats2half2_rn.x", i, (unsigned)bits(pair[2 * i]), (unsigned)bits(wlo));
    chk.eq("floats2half2_rn.y", i, (unsigned)bits(pair[2 * i + 1]), (unsigned)bits(whi));
    chk.same_bits("low2float", i, lo[i], __half2float(wlo));
    chk.same_bits("high2float", i, hi[i], __half2float(whi));
  }
  // The reference itself, on values whose results are known.
  chk.eq("ref(1+2^-11)", 0, (unsigned)bits(ref(1.0 + 1.0 / 2048)), 0x3c00u);
  chk.eq("ref(1+3*2^-11)", 0, (unsigned)bits(ref(1.0 + 3.0 / 2048)), 0x3c02u);
  chk.eq("ref(65520)", 0, (unsigned)bits(ref(65520.0)), 0x7c00u);
  chk.eq("ref(2^-25+2^-40)", 0, (unsigned)bits(ref(1.0 / 33554432 + 1.0 / 1099511627776.0)), 0x0001u);
  chk.eq("float2half(2^-25)", 0, (unsigned)bits(__float2half(f[5])), 0x0000u);
  chk.eq("float2half(65519.996)", 0, (unsigned)bits(__float2half(f[1])), 0x7bffu);

  void *bufs[] = {da, db, dc, dadd, dsub, dmul, dfma, df2h, df, dh2f, dlo, dhi, dadd2, dmul2, dfma2, dpair};
  for (void *p : bufs)
    CK(cudaFree(p));
  return chk.finish();
}
