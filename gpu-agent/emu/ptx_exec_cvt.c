/*
 * ptx_exec_cvt.c: mov (including vector pack and unpack) and cvt between
 * every integer and floating-point type PTX has, with its rounding,
 * saturation and flush-to-zero modifiers.
 *
 * Float-to-integer conversions saturate to the destination's range and
 * turn NaN into 0, as PTX defines them (whether or not .sat is written).
 * Conversions to a narrower float format are rounded in software
 * (px_round_fmt), integer-to-float conversions first round the integer to
 * the target's precision (px_round_int) so that no value is rounded twice.
 */
#include <math.h>

#include "ptx_exec_int.h"

#define SRC(k) const uint64_t *s##k = px_src(w, in, k)
#define DST(k) uint64_t *d##k = px_dst(w, in, k)

static int px_is_sint(unsigned t)
{
  return t == PTX_T_S8 || t == PTX_T_S16 || t == PTX_T_S32 || t == PTX_T_S64;
}

static int px_is_int(unsigned t)
{
  return (t >= PTX_T_B8 && t <= PTX_T_B64) ||
         (t >= PTX_T_U8 && t <= PTX_T_S64);
}

static int px_is_flt(unsigned t)
{
  return t == PTX_T_F16 || t == PTX_T_BF16 || t == PTX_T_F32 ||
         t == PTX_T_F64;
}

/* ---- mov ------------------------------------------------------------------- */

int px_h_mov(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  DST(0);

  PX_FOR(mask, d0[l] = s1[l]);
  return PX_NEXT;
}

int px_h_mov_pred(struct px_warp *w, const struct ptx_insn *in,
                  uint32_t mask)
{
  SRC(1);
  DST(0);
  uint64_t n = in->ops[1].flags & PTX_OF_NOT;

  PX_FOR(mask, d0[l] = (s1[l] ^ n) & 1);
  return PX_NEXT;
}

/* mov.b64 d, {a, b}: a is the low part. */
int px_h_mov_pack(struct px_warp *w, const struct ptx_insn *in,
                  uint32_t mask)
{
  const struct ptx_operand *v = &in->ops[1];
  unsigned n = v->n, bits = ptx_type_size(in->type) * 8 / n;
  uint64_t em = bits >= 64 ? ~0ull : (1ull << bits) - 1;
  DST(0);
  uint64_t acc[PX_W] = {0};

  for (unsigned j = 0; j < n; j++) {
    const uint64_t *e;
    if (PX_VIMM(v, j)) {
      uint64_t k = ((uint64_t)v->vec[j] & em) << (bits * j);
      PX_FOR(mask, acc[l] |= k);
      continue;
    }
    if (v->vec[j] == PTX_NOREG)
      continue;
    e = w->R[v->vec[j]];
    PX_FOR(mask, acc[l] |= (e[l] & em) << (bits * j));
  }
  PX_FOR(mask, d0[l] = acc[l]);
  return PX_NEXT;
}

/* mov.b32 {a, b}, d: a gets the low part; "_" discards. */
int px_h_mov_unpack(struct px_warp *w, const struct ptx_insn *in,
                    uint32_t mask)
{
  const struct ptx_operand *v = &in->ops[0];
  unsigned n = v->n, bits = ptx_type_size(in->type) * 8 / n;
  uint64_t em = bits >= 64 ? ~0ull : (1ull << bits) - 1;
  uint64_t src[PX_W];
  const uint64_t *s1 = px_src(w, in, 1);

  /* copy first: a destination may be the source register */
  PX_FOR(mask, src[l] = s1[l]);
  for (unsigned j = 0; j < n; j++) {
    uint64_t *e;
    if (v->vec[j] == PTX_NOREG)
      continue;
    e = w->R[v->vec[j]];
    PX_FOR(mask, e[l] = (src[l] >> (bits * j)) & em);
  }
  return PX_NEXT;
}

/* ---- cvt ------------------------------------------------------------------- */

/* xaux: dst size | src size << 8 | dst signed << 16 | src signed << 17 |
   dst kind << 20 | src kind << 24 (kind: 0 int, 1 f16, 2 bf16, 3 f32,
   4 f64) */
#define XC_DSZ(x) ((x)&0xffu)
#define XC_SSZ(x) (((x) >> 8) & 0xffu)
#define XC_DSG(x) (((x) >> 16) & 1u)
#define XC_SSG(x) (((x) >> 17) & 1u)
#define XC_DK(x) (((x) >> 20) & 0xfu)
#define XC_SK(x) (((x) >> 24) & 0xfu)
enum { K_INT, K_F16, K_BF16, K_F32, K_F64 };

static unsigned px_kind(unsigned t)
{
  switch (t) {
  case PTX_T_F16: return K_F16;
  case PTX_T_BF16: return K_BF16;
  case PTX_T_F32: return K_F32;
  case PTX_T_F64: return K_F64;
  default: return K_INT;
  }
}

/* A float source as an exact double (.ftz flushes f32/f16 subnormals). */
static inline double px_fin(uint64_t v, unsigned k, int ftz)
{
  switch (k) {
  case K_F16: {
    uint16_t h = (uint16_t)v;
    if (ftz && !(h & 0x7c00))
      h &= 0x8000;
    return px_h2f(h);
  }
  case K_BF16:
    return px_bf2f((uint16_t)v);
  case K_F32: {
    float f = px_f32(v);
    if (ftz && !((uint32_t)v & 0x7f800000u))
      f = (v & 0x80000000u) ? -0.0f : 0.0f;
    return f;
  }
  default:
    return px_f64(v);
  }
}

/* Write a double (already rounded as wanted, or exact) in format k with
   rounding rnd; .ftz flushes f32 results, .relu clamps negatives. */
static inline uint64_t px_fout(double x, unsigned k, unsigned rnd,
                               uint32_t fl)
{
  if (x != x) {
    switch (k) {
    case K_F16:
    case K_BF16: return 0x7fff;
    case K_F32: return 0x7fffffffu;
    default: return 0x7fffffffffffffffull;
    }
  }
  if (fl & PTX_F_SAT)
    x = x > 1.0 ? 1.0 : x > 0.0 ? x : 0.0;
  if ((fl & PTX_F_RELU) && (x < 0 || (x == 0 && signbit(x))))
    x = 0.0; /* -0 too */
  switch (k) {
  case K_F16:
    return px_round_fmt(x, 10, 15, 5, rnd);
  case K_BF16:
    return px_round_fmt(x, 7, 127, 8, rnd);
  case K_F32: {
    uint32_t b = px_round_fmt(x, 23, 127, 8, rnd);
    if ((fl & PTX_F_FTZ) && !(b & 0x7f800000u))
      b &= 0x80000000u;
    return b;
  }
  default:
    return px_b64(x);
  }
}

static inline double px_rint(double x, unsigned rnd)
{
  switch (rnd) {
  case PTX_RND_RZI:
  case PTX_RND_RZ:
    return trunc(x);
  case PTX_RND_RMI:
  case PTX_RND_RM:
    return floor(x);
  case PTX_RND_RPI:
  case PTX_RND_RP:
    return ceil(x);
  default:
    return nearbyint(x); /* the host runs round-to-nearest-even */
  }
}

int px_h_cvt_ii(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  DST(0);
  uint32_t x = in->xaux;
  unsigned sb = XC_SSZ(x) * 8, db = XC_DSZ(x) * 8;
  int ss = XC_SSG(x), ds = XC_DSG(x), sat = !!(in->flags & PTX_F_SAT);
  int64_t dmin = ds ? (db == 64 ? INT64_MIN : -(1ll << (db - 1))) : 0;
  uint64_t dmax = ds ? (db == 64 ? (uint64_t)INT64_MAX : (1ull << (db - 1)) - 1)
                     : (db == 64 ? ~0ull : (1ull << db) - 1);

  PX_FOR(mask, {
    uint64_t v = s1[l], r;
    if (sb < 64)
      v = ss ? (uint64_t)((int64_t)(v << (64 - sb)) >> (64 - sb))
             : v & ((1ull << sb) - 1);
    if (sat) {
      if (ss && (int64_t)v < 0)
        r = (int64_t)v < dmin ? (uint64_t)dmin : v;
      else
        r = v > dmax ? dmax : v;
    } else {
      r = v;
    }
    if (db < 64)
      r = ds ? (uint64_t)((int64_t)(r << (64 - db)) >> (64 - db))
             : r & ((1ull << db) - 1);
    d0[l] = r;
  });
  return PX_NEXT;
}

/* integer -> float */
int px_h_cvt_if(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  DST(0);
  uint32_t x = in->xaux;
  unsigned sb = XC_SSZ(x) * 8, k = XC_DK(x), rnd = in->rnd;
  unsigned prec = k == K_F16 ? 11 : k == K_BF16 ? 8 : k == K_F32 ? 24 : 53;
  int ss = XC_SSG(x);
  uint32_t fl = in->flags;

  PX_FOR(mask, {
    uint64_t v = s1[l];
    int neg = 0;
    if (sb < 64)
      v = ss ? (uint64_t)((int64_t)(v << (64 - sb)) >> (64 - sb))
             : v & ((1ull << sb) - 1);
    if (ss && (int64_t)v < 0) {
      neg = 1;
      v = 0 - v;
    }
    d0[l] = px_fout(px_round_int(v, neg, prec, rnd), k, rnd, fl);
  });
  return PX_NEXT;
}

/* float -> integer: round to integral by the mode, saturate, NaN -> 0 */
int px_h_cvt_fi(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  DST(0);
  uint32_t x = in->xaux;
  unsigned db = XC_DSZ(x) * 8, k = XC_SK(x), rnd = in->rnd;
  int ds = XC_DSG(x), ftz = !!(in->flags & PTX_F_FTZ);
  double lo = ds ? -ldexp(1.0, (int)db - 1) : 0.0;
  double hi = ds ? ldexp(1.0, (int)db - 1) : ldexp(1.0, (int)db);
  uint64_t hiv = ds ? (db == 64 ? (uint64_t)INT64_MAX : (1ull << (db - 1)) - 1)
                    : (db == 64 ? ~0ull : (1ull << db) - 1);
  uint64_t lov = ds ? (db == 64 ? (uint64_t)INT64_MIN : ~0ull << (db - 1)) : 0;
  /* NaN: 0 from f32 and halves into 32 bits or less, the sign bit of the
     destination from f64 and into 64 bits (what the GPU does) */
  uint64_t nanv = (k == K_F64 || db == 64) ? 1ull << (db - 1) : 0;

  PX_FOR(mask, {
    double v = px_rint(px_fin(s1[l], k, ftz), rnd);
    uint64_t r;
    if (v != v)
      r = nanv;
    else if (v >= hi)
      r = hiv;
    else if (v < lo)
      r = lov;
    else if (ds)
      r = (uint64_t)(int64_t)v;
    else
      r = v <= 0 ? 0 : (uint64_t)v;
    if (db < 64)
      r &= (1ull << db) - 1;
    d0[l] = r;
  });
  return PX_NEXT;
}

/* float -> float */
/*
 * A NaN converted as the GPU does it (measured): f64 sources give the
 * NaN of zero payload of the target (the input itself, quieted, for
 * f64), f32 -> f64 and f16 -> f64 keep sign and payload, bf16 -> f32 is a
 * plain widening of the bits, everything else the target's canonical
 * NaN.
 */
static uint64_t px_cvt_nan(uint64_t v, unsigned sk, unsigned dk)
{
  if (sk == K_F64) {
    switch (dk) {
    case K_F64: return v | 0x0008000000000000ull;
    case K_F32: return 0x7fc00000u;
    case K_F16: return 0x7e00;
    default: return 0x7fc0;
    }
  }
  if (sk == K_F32 && dk == K_F64)
    return px_b64((double)px_f32(v));
  if (sk == K_F16 && dk == K_F64) /* widened with sign and payload, quiet */
    return ((uint64_t)(v & 0x8000) << 48) | 0x7ff8000000000000ull |
           ((uint64_t)(v & 0x3ff) << 42);
  if (sk == K_BF16 && dk == K_F32)
    return (uint32_t)(uint16_t)v << 16;
  switch (dk) {
  case K_F16:
  case K_BF16: return 0x7fff;
  case K_F32: return 0x7fffffffu;
  default: return 0x7fffffffffffffffull;
  }
}

int px_h_cvt_ff(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  DST(0);
  uint32_t x = in->xaux, fl = in->flags;
  unsigned sk = XC_SK(x), dk = XC_DK(x), rnd = in->rnd;
  int integral = rnd >= PTX_RND_RNI && rnd <= PTX_RND_RPI;
  int ftz = !!(fl & PTX_F_FTZ);

  PX_FOR(mask, {
    double v = px_fin(s1[l], sk, ftz && sk == K_F32);
    if (v != v) {
      d0[l] = (fl & PTX_F_SAT) ? 0 : px_cvt_nan(s1[l], sk, dk);
      continue;
    }
    if (integral)
      v = px_rint(v, rnd);
    d0[l] = px_fout(v, dk, integral ? PTX_RND_RN : rnd, fl);
  });
  return PX_NEXT;
}

/* cvt.rn.f16x2.f32 d, a, b: a goes to the upper half, b to the lower. */
int px_h_cvt_pack(struct px_warp *w, const struct ptx_insn *in,
                  uint32_t mask)
{
  SRC(1);
  SRC(2);
  DST(0);
  unsigned k = in->type == PTX_T_BF16X2 ? K_BF16 : K_F16, rnd = in->rnd;
  uint32_t fl = in->flags;

  PX_FOR(mask, {
    uint64_t hi = px_fout(px_f32(s1[l]), k, rnd, fl);
    uint64_t lo = px_fout(px_f32(s2[l]), k, rnd, fl);
    d0[l] = (hi << 16) | lo;
  });
  return PX_NEXT;
}

/* ---- selection ------------------------------------------------------------- */

static int px_src_kind(unsigned kind)
{
  return kind == PTX_O_REG || kind == PTX_O_IMM || kind == PTX_O_SREG ||
         kind == PTX_O_SYM;
}

int px_sel_cvt(const struct ptx_insn *in, uint32_t *xop, uint32_t *xaux)
{
  unsigned d = in->type, s = in->type2, rnd = in->rnd;
  uint32_t fl = in->flags;

  *xaux = 0;
  if (in->op == PTX_OP_MOV) {
    unsigned sz = ptx_type_size(d);
    if (in->nops != 2 || rnd || (fl & ~PTX_F_SYNC) || !sz || sz > 8)
      return -ENOTSUP;
    if (in->ops[0].kind == PTX_O_REG && px_src_kind(in->ops[1].kind)) {
      *xop = d == PTX_T_PRED ? PX_X_mov_pred : PX_X_mov;
      return 0;
    }
    if (in->ops[0].kind == PTX_O_REG && in->ops[1].kind == PTX_O_VEC &&
        (in->ops[1].n == 2 || in->ops[1].n == 4) && sz >= 2 &&
        sz % in->ops[1].n == 0) {
      *xop = PX_X_mov_pack;
      return 0;
    }
    if (in->ops[0].kind == PTX_O_VEC && in->ops[1].kind == PTX_O_REG &&
        !PX_HAS_VIMM(&in->ops[0]) &&
        (in->ops[0].n == 2 || in->ops[0].n == 4) && sz >= 2 &&
        sz % in->ops[0].n == 0) {
      *xop = PX_X_mov_unpack;
      return 0;
    }
    return -ENOTSUP;
  }
  if (in->op != PTX_OP_CVT)
    return -ENOTSUP;
  if (d == PTX_T_F16X2 || d == PTX_T_BF16X2) {
    if (s != PTX_T_F32 || in->nops != 3 || in->ops[0].kind != PTX_O_REG ||
        !px_src_kind(in->ops[1].kind) || !px_src_kind(in->ops[2].kind) ||
        (rnd != PTX_RND_RN && rnd != PTX_RND_RZ && rnd != PTX_RND_RM &&
         rnd != PTX_RND_RP) ||
        (fl & ~(PTX_F_RELU | PTX_F_SAT)))
      return -ENOTSUP;
    *xop = PX_X_cvt_pack;
    return 0;
  }
  if (in->nops != 2 || in->ops[0].kind != PTX_O_REG ||
      !px_src_kind(in->ops[1].kind))
    return -ENOTSUP;
  if (fl & ~(PTX_F_FTZ | PTX_F_SAT | PTX_F_RELU))
    return -ENOTSUP;
  *xaux = ptx_type_size(d) | ptx_type_size(s) << 8 |
          (uint32_t)px_is_sint(d) << 16 | (uint32_t)px_is_sint(s) << 17 |
          px_kind(d) << 20 | px_kind(s) << 24;
  if (px_is_int(d) && px_is_int(s)) {
    if (rnd || (fl & ~PTX_F_SAT) || ptx_type_size(d) > 8 ||
        ptx_type_size(s) > 8)
      return -ENOTSUP;
    *xop = PX_X_cvt_ii;
    return 0;
  }
  if (px_is_flt(d) && px_is_int(s)) {
    if (rnd > PTX_RND_RP || (fl & ~PTX_F_SAT) || ptx_type_size(s) > 8)
      return -ENOTSUP;
    *xop = PX_X_cvt_if;
    return 0;
  }
  if (px_is_int(d) && px_is_flt(s)) {
    /* the integer rounding modes; .rn/.rz/.rm/.rp read the same way */
    if (rnd == PTX_RND_RNA || rnd == PTX_RND_RS || rnd == PTX_RND_NONE ||
        (fl & ~(PTX_F_SAT | PTX_F_FTZ)) || ptx_type_size(d) > 8 ||
        ((fl & PTX_F_FTZ) && s != PTX_T_F32))
      return -ENOTSUP;
    *xop = PX_X_cvt_fi;
    return 0;
  }
  if (px_is_flt(d) && px_is_flt(s)) {
    if (rnd == PTX_RND_RNA || rnd == PTX_RND_RS)
      return -ENOTSUP;
    if (rnd >= PTX_RND_RNI && rnd <= PTX_RND_RPI && d != s)
      return -ENOTSUP;
    if ((fl & PTX_F_RELU) && d != PTX_T_F16 && d != PTX_T_BF16)
      return -ENOTSUP;
    *xop = PX_X_cvt_ff;
    return 0;
  }
  return -ENOTSUP;
}
