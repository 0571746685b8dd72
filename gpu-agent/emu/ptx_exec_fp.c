/*
 * ptx_exec_fp.c: floating-point rounding for the executor.
 *
 * Built with -frounding-math (exec.cmake): the f32/f64 operations with a
 * directed rounding modifier (.rz .rm .rp) set the host's rounding mode
 * around one warp's lane loop and restore round-to-nearest afterwards, and
 * the compiler must neither fold nor move floating-point operations across
 * those calls.
 *
 * Conversions to narrower formats (f64 -> f32, anything -> f16/bf16, and
 * integers -> floats) are done in software instead, by px_round_fmt: the
 * value is scaled so that the target's last mantissa bit is the unit,
 * split into integer and fraction (both exact in double) and rounded by
 * the mode.  That is exact for every mode and needs no host state.
 */
#include <fenv.h>
#include <float.h>
#include <math.h>

#include "ptx_exec_int.h"

/* f32 results as the GPU writes them (see ptx_exec_alu.c). */
static inline float ftz32(float x)
{
  uint32_t u;

  memcpy(&u, &x, 4);
  if (!(u & 0x7f800000u))
    u &= 0x80000000u;
  memcpy(&x, &u, 4);
  return x;
}

static inline uint64_t out32(float r, uint32_t fl)
{
  if (r != r)
    return (fl & PTX_F_SAT) ? 0 : PX_CANON32;
  if (fl & PTX_F_FTZ)
    r = ftz32(r);
  if (fl & PTX_F_SAT)
    r = r > 1.0f ? 1.0f : r > 0.0f ? r : 0.0f;
  return px_b32(r);
}

static int px_fe(unsigned rnd)
{
  switch (rnd) {
  case PTX_RND_RZ:
  case PTX_RND_RZI:
    return FE_TOWARDZERO;
  case PTX_RND_RM:
  case PTX_RND_RMI:
    return FE_DOWNWARD;
  case PTX_RND_RP:
  case PTX_RND_RPI:
    return FE_UPWARD;
  default:
    return FE_TONEAREST;
  }
}

float px_fmaf(float a, float b, float c)
{
  /* glibc's fmaf is correctly rounded in software when the CPU has no
     FMA instruction, and uses the instruction when it has */
  return fmaf(a, b, c);
}


void px_fop32(unsigned op, unsigned rnd, uint32_t fl, uint32_t mask,
              uint64_t *d, const uint64_t *a, const uint64_t *b,
              const uint64_t *c)
{
  int mode = px_fe(rnd);
  int ftz = !!(fl & PTX_F_FTZ);

  if (mode != FE_TONEAREST)
    fesetround(mode);
  PX_FOR(mask, {
    float x = px_f32(a[l]), y = b ? px_f32(b[l]) : 0.0f;
    float z = c ? px_f32(c[l]) : 0.0f, r;
    if (ftz) {
      x = ftz32(x);
      y = ftz32(y);
      z = ftz32(z);
    }
    switch (op) {
    case PX_RO_ADD: r = x + y; break;
    case PX_RO_SUB: r = x - y; break;
    case PX_RO_MUL: r = x * y; break;
    case PX_RO_FMA: r = fmaf(x, y, z); break;
    case PX_RO_DIV:
      if ((fl & PTX_F_APPROX) && fabsf(y) > 0x1p126f && fabsf(y) <= FLT_MAX)
        /* the approximate reciprocal underflows: 0, as documented */
        r = isinf(x) || x != x ? NAN
            : (signbit(x) != 0) != (signbit(y) != 0) ? -0.0f : 0.0f;
      else
        r = x / y;
      break;
    case PX_RO_SQRT: r = sqrtf(x); break;
    default: r = 1.0f / x; break;
    }
    d[l] = out32(r, fl);
  });
  if (mode != FE_TONEAREST)
    fesetround(FE_TONEAREST);
}

void px_fop64(unsigned op, unsigned rnd, uint32_t fl, uint32_t mask,
              uint64_t *d, const uint64_t *a, const uint64_t *b,
              const uint64_t *c)
{
  int mode = px_fe(rnd);

  if (mode != FE_TONEAREST)
    fesetround(mode);
  PX_FOR(mask, {
    double x = px_f64(a[l]), y = b ? px_f64(b[l]) : 0.0;
    double z = c ? px_f64(c[l]) : 0.0, r;
    switch (op) {
    case PX_RO_ADD: r = x + y; break;
    case PX_RO_SUB: r = x - y; break;
    case PX_RO_MUL: r = x * y; break;
    case PX_RO_FMA: r = fma(x, y, z); break;
    case PX_RO_DIV: r = x / y; break;
    case PX_RO_SQRT: r = sqrt(x); break;
    default: r = 1.0 / x; break;
    }
    if (r != r) {
      /* the GPU's NaN: an input's, quieted (division prefers a), else
         the default NaN (ptx_exec_int.h) */
      if (fl & PTX_F_SAT)
        d[l] = 0;
      else if (op == PX_RO_DIV)
        d[l] = px_nan64(b[l], a[l], 0);
      else
        d[l] = px_nan64(a[l], b ? b[l] : 0, c ? c[l] : 0);
    } else {
      if (fl & PTX_F_SAT)
        r = r > 1.0 ? 1.0 : r > 0.0 ? r : 0.0;
      d[l] = px_b64(r);
    }
  });
  if (mode != FE_TONEAREST)
    fesetround(FE_TONEAREST);
}

/*
 * Round d to a binary format with mbits stored mantissa bits, exponent
 * bias ebias and ebits exponent bits, by rnd (PTX_RND_*; anything else is
 * round to nearest even).  Returns its bits; NaN gives the canonical NaN
 * (all ones but the sign).
 */
uint32_t px_round_fmt(double d, unsigned mbits, int ebias, unsigned ebits,
                      unsigned rnd)
{
  uint32_t sign = signbit(d) ? 1u << (ebits + mbits) : 0;
  uint32_t inf = ((1u << ebits) - 1) << mbits;
  int e, E, emin = 1 - ebias, qexp, ex, up;
  double a, n, fl, fr;
  uint64_t m;

  if (d != d)
    return inf | ((1u << mbits) - 1);
  a = fabs(d);
  if (isinf(a))
    return sign | inf;
  if (a == 0)
    return sign;
  frexp(a, &e);
  E = e - 1;
  qexp = (E < emin ? emin : E) - (int)mbits;
  n = ldexp(a, -qexp);
  fl = floor(n);
  fr = n - fl;
  switch (rnd) {
  case PTX_RND_RZ:
  case PTX_RND_RZI:
    up = 0;
    break;
  case PTX_RND_RM:
  case PTX_RND_RMI:
    up = sign && fr > 0;
    break;
  case PTX_RND_RP:
  case PTX_RND_RPI:
    up = !sign && fr > 0;
    break;
  default:
    up = fr > 0.5 || (fr == 0.5 && ((uint64_t)fl & 1));
    break;
  }
  m = (uint64_t)fl + (uint64_t)up;
  ex = qexp + (int)mbits;
  if (m >= (2ull << mbits)) {
    m >>= 1;
    ex++;
  }
  if (m < (1ull << mbits))
    return sign | (uint32_t)m; /* subnormal (or zero) */
  if (ex > ebias) {
    int tomax = rnd == PTX_RND_RZ || rnd == PTX_RND_RZI ||
                ((rnd == PTX_RND_RM || rnd == PTX_RND_RMI) && !sign) ||
                ((rnd == PTX_RND_RP || rnd == PTX_RND_RPI) && sign);
    return sign | (tomax ? inf - 1 : inf);
  }
  return sign | ((uint32_t)(ex + ebias) << mbits) |
         ((uint32_t)m & ((1u << mbits) - 1));
}

/*
 * An integer magnitude rounded to prec significant bits by rnd (neg: the
 * integer is negative, for the directed modes), as an exact double.
 */
double px_round_int(uint64_t mag, int neg, unsigned prec, unsigned rnd)
{
  unsigned bits = mag ? 64u - (unsigned)__builtin_clzll(mag) : 0, sh;
  uint64_t q, rem, half;
  int up;

  if (bits <= prec)
    return neg ? -(double)mag : (double)mag;
  sh = bits - prec;
  q = mag >> sh;
  rem = mag & ((1ull << sh) - 1);
  half = 1ull << (sh - 1);
  switch (rnd) {
  case PTX_RND_RZ:
    up = 0;
    break;
  case PTX_RND_RM:
    up = neg && rem;
    break;
  case PTX_RND_RP:
    up = !neg && rem;
    break;
  default:
    up = rem > half || (rem == half && (q & 1));
    break;
  }
  q += (uint64_t)up;
  return neg ? -ldexp((double)q, (int)sh) : ldexp((double)q, (int)sh);
}

uint16_t px_d2h(double d, unsigned rnd)
{
  return (uint16_t)px_round_fmt(d, 10, 15, 5, rnd);
}

uint16_t px_d2bf(double d, unsigned rnd)
{
  return (uint16_t)px_round_fmt(d, 7, 127, 8, rnd);
}

float px_h2f(uint16_t h)
{
  unsigned e = (h >> 10) & 0x1f, m = h & 0x3ff;
  float r;

  if (e == 0x1f)
    r = m ? NAN : INFINITY;
  else if (e == 0)
    r = ldexpf((float)m, -24);
  else
    r = ldexpf((float)(m | 0x400), (int)e - 25);
  return (h & 0x8000) ? -r : r;
}

float px_bf2f(uint16_t h)
{
  uint32_t u = (uint32_t)h << 16;
  float f;

  memcpy(&f, &u, 4);
  return f;
}
