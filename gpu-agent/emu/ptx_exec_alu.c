/*
 * ptx_exec_alu.c: integer, bit, floating-point, half-precision, compare
 * and select instructions.
 *
 * Each handler dispatches once per warp-instruction on the operand width
 * or sub-operation (a switch outside the lane loop) and then runs a tight
 * loop over the lanes.  Integer arithmetic is done in unsigned types so
 * that wrap-around is defined; signed views are taken only to compare,
 * divide, shift right and widen.
 *
 * Floating point follows the GPU, not the host: NaN results are the
 * canonical NaN (0x7fffffff, 0x7fffffffffffffff, 0x7fff) whatever the
 * inputs' payloads, .ftz flushes subnormal inputs and results to zero of
 * the same sign, .sat clamps to [0, 1] with NaN going to +0.  Directed
 * rounding (.rz .rm .rp) runs in ptx_exec_cvt.c, which is compiled with
 * -frounding-math.
 */
#include <math.h>

#include "ptx_exec_int.h"

#define CANON32 0x7fffffffu
#define CANON64 0x7fffffffffffffffull

static int px_is_sint(unsigned t)
{
  return t == PTX_T_S8 || t == PTX_T_S16 || t == PTX_T_S32 || t == PTX_T_S64;
}

static int px_is_int(unsigned t)
{
  return (t >= PTX_T_B8 && t <= PTX_T_B64) ||
         (t >= PTX_T_U8 && t <= PTX_T_S64);
}

/* integer types of 16, 32 or 64 bits */
static int px_is_int3(unsigned t)
{
  return px_is_int(t) && ptx_type_size(t) >= 2 && ptx_type_size(t) <= 8;
}

static int px_is_half(unsigned t)
{
  return t == PTX_T_F16 || t == PTX_T_F16X2 || t == PTX_T_BF16 ||
         t == PTX_T_BF16X2;
}

#define SRC(k) const uint64_t *s##k = px_src(w, in, k)
#define DST(k) uint64_t *d##k = px_dst(w, in, k)

/* The second source is an immediate: the common "add %r, %r, 4" form
   loops with the constant in a register instead of a splatted row. */
#define IMM2(in) ((in)->ops[2].kind == PTX_O_IMM)
#define IV2(in) ((uint64_t)(in)->ops[2].imm)

/* xaux for the integer handlers: operand bytes | signed << 8 */
#define XA_SZ(x) ((x)&0xffu)
#define XA_SGN(x) (((x) >> 8) & 1u)

/* ---- integer arithmetic ----------------------------------------------- */

int px_h_iadd(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  unsigned sz = XA_SZ(in->xaux);

  if (IMM2(in) && !(in->flags & (PTX_F_SAT | PTX_F_CC))) {
    SRC(1);
    DST(0);
    uint64_t iv = IV2(in);
    PX_SWITCH_W(sz, PX_FOR(mask, d0[l] = (UT)(s1[l] + iv)));
    return PX_NEXT;
  }
  SRC(1);
  SRC(2);
  DST(0);
  if (__builtin_expect(!(in->flags & (PTX_F_SAT | PTX_F_CC)), 1)) {
    PX_SWITCH_W(sz, PX_FOR(mask, d0[l] = (UT)(s1[l] + s2[l])));
    return PX_NEXT;
  }
  if (in->flags & PTX_F_SAT) { /* add.sat.s32 */
    PX_FOR(mask, {
      int64_t r = (int64_t)(int32_t)s1[l] + (int32_t)s2[l];
      r = r > INT32_MAX ? INT32_MAX : r < INT32_MIN ? INT32_MIN : r;
      d0[l] = (uint32_t)r;
    });
    return PX_NEXT;
  }
  {
    uint32_t cf = w->cc & ~mask;
    PX_SWITCH_W(sz, PX_FOR(mask, {
      UT r = (UT)(s1[l] + s2[l]);
      cf |= (uint32_t)(r < (UT)s1[l]) << l;
      d0[l] = r;
    }));
    w->cc = cf;
  }
  return PX_NEXT;
}

int px_h_isub(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  unsigned sz = XA_SZ(in->xaux);

  if (IMM2(in) && !(in->flags & (PTX_F_SAT | PTX_F_CC))) {
    SRC(1);
    DST(0);
    uint64_t iv = IV2(in);
    PX_SWITCH_W(sz, PX_FOR(mask, d0[l] = (UT)(s1[l] - iv)));
    return PX_NEXT;
  }
  SRC(1);
  SRC(2);
  DST(0);

  if (__builtin_expect(!(in->flags & (PTX_F_SAT | PTX_F_CC)), 1)) {
    PX_SWITCH_W(sz, PX_FOR(mask, d0[l] = (UT)(s1[l] - s2[l])));
    return PX_NEXT;
  }
  if (in->flags & PTX_F_SAT) {
    PX_FOR(mask, {
      int64_t r = (int64_t)(int32_t)s1[l] - (int32_t)s2[l];
      r = r > INT32_MAX ? INT32_MAX : r < INT32_MIN ? INT32_MIN : r;
      d0[l] = (uint32_t)r;
    });
    return PX_NEXT;
  }
  {
    /* sub.cc: the flag is the borrow, as subc consumes it */
    uint32_t cf = w->cc & ~mask;
    PX_SWITCH_W(sz, PX_FOR(mask, {
      cf |= (uint32_t)((UT)s1[l] < (UT)s2[l]) << l;
      d0[l] = (UT)(s1[l] - s2[l]);
    }));
    w->cc = cf;
  }
  return PX_NEXT;
}

int px_h_iaddc(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  SRC(2);
  DST(0);
  uint32_t cin = w->cc, cf = w->cc & ~mask;

  PX_SWITCH_W(XA_SZ(in->xaux), PX_FOR(mask, {
    UT a = (UT)s1[l], b = (UT)s2[l], c = (UT)((cin >> l) & 1);
    UT r = (UT)(a + b + c);
    cf |= (uint32_t)(c ? r <= a : r < a) << l;
    d0[l] = r;
  }));
  if (in->flags & PTX_F_CC)
    w->cc = cf;
  return PX_NEXT;
}

int px_h_isubc(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  SRC(2);
  DST(0);
  uint32_t cin = w->cc, cf = w->cc & ~mask;

  PX_SWITCH_W(XA_SZ(in->xaux), PX_FOR(mask, {
    UT a = (UT)s1[l], b = (UT)s2[l], c = (UT)((cin >> l) & 1);
    cf |= (uint32_t)(a < b || (a == b && c) || (c && (UT)(a - b) < c)) << l;
    d0[l] = (UT)(a - b - c);
  }));
  if (in->flags & PTX_F_CC)
    w->cc = cf;
  return PX_NEXT;
}

/* The .lo, .hi or .wide part of a product of two sz-byte integers. */
static inline uint64_t px_mulpart(uint64_t a, uint64_t b, unsigned sz,
                                  unsigned sgn, unsigned part)
{
  switch (sz) {
  case 2:
    if (sgn) {
      int32_t p = (int32_t)(int16_t)a * (int16_t)b;
      return part == PTX_MUL_LO ? (uint16_t)p
             : part == PTX_MUL_HI ? (uint16_t)((uint32_t)p >> 16)
                                  : (uint32_t)p;
    } else {
      uint32_t p = (uint32_t)(uint16_t)a * (uint16_t)b;
      return part == PTX_MUL_LO ? (uint16_t)p
             : part == PTX_MUL_HI ? (uint16_t)(p >> 16) : p;
    }
  case 4:
    if (sgn) {
      int64_t p = (int64_t)(int32_t)a * (int32_t)b;
      return part == PTX_MUL_LO ? (uint32_t)p
             : part == PTX_MUL_HI ? (uint32_t)((uint64_t)p >> 32)
                                  : (uint64_t)p;
    } else {
      uint64_t p = (uint64_t)(uint32_t)a * (uint32_t)b;
      return part == PTX_MUL_LO ? (uint32_t)p
             : part == PTX_MUL_HI ? (uint32_t)(p >> 32) : p;
    }
  default:
    if (part == PTX_MUL_LO)
      return a * b;
    if (sgn)
      return (uint64_t)((unsigned __int128)((__int128)(int64_t)a *
                                            (int64_t)b) >> 64);
    return (uint64_t)(((unsigned __int128)a * b) >> 64);
  }
}

int px_h_imul(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  unsigned sz = XA_SZ(in->xaux), sgn = XA_SGN(in->xaux);

  if (IMM2(in) && (in->mode == PTX_MUL_LO ||
                   (in->mode == PTX_MUL_WIDE && sz == 4))) {
    SRC(1);
    DST(0);
    uint64_t iv = IV2(in);
    if (in->mode == PTX_MUL_LO)
      PX_SWITCH_W(sz, PX_FOR(mask, d0[l] = (UT)(s1[l] * iv)));
    else if (sgn)
      PX_FOR(mask, d0[l] = (uint64_t)((int64_t)(int32_t)s1[l] *
                                      (int32_t)iv));
    else
      PX_FOR(mask, d0[l] = (uint64_t)(uint32_t)s1[l] * (uint32_t)iv);
    return PX_NEXT;
  }
  SRC(1);
  SRC(2);
  DST(0);

  if (in->mode == PTX_MUL_LO) {
    PX_SWITCH_W(sz, PX_FOR(mask, d0[l] = (UT)((uint64_t)s1[l] * s2[l])));
    return PX_NEXT;
  }
  if (in->mode == PTX_MUL_WIDE && sz == 4) {
    if (sgn)
      PX_FOR(mask, d0[l] = (uint64_t)((int64_t)(int32_t)s1[l] *
                                      (int32_t)s2[l]));
    else
      PX_FOR(mask, d0[l] = (uint64_t)(uint32_t)s1[l] * (uint32_t)s2[l]);
    return PX_NEXT;
  }
  PX_FOR(mask, d0[l] = px_mulpart(s1[l], s2[l], sz, sgn, in->mode));
  return PX_NEXT;
}

int px_h_imad(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  SRC(2);
  SRC(3);
  DST(0);
  unsigned sz = XA_SZ(in->xaux), sgn = XA_SGN(in->xaux);

  if (in->mode == PTX_MUL_LO && !(in->flags & PTX_F_CC)) {
    PX_SWITCH_W(sz, PX_FOR(mask, d0[l] = (UT)((uint64_t)s1[l] * s2[l] +
                                              s3[l])));
    return PX_NEXT;
  }
  if (in->mode == PTX_MUL_WIDE) {
    if (sz == 4 && sgn)
      PX_FOR(mask, d0[l] = (uint64_t)((int64_t)(int32_t)s1[l] *
                                      (int32_t)s2[l]) + s3[l]);
    else if (sz == 4)
      PX_FOR(mask, d0[l] = (uint64_t)(uint32_t)s1[l] * (uint32_t)s2[l] +
                           s3[l]);
    else
      PX_FOR(mask, d0[l] = (uint32_t)(px_mulpart(s1[l], s2[l], 2, sgn,
                                                 PTX_MUL_WIDE) + s3[l]));
    return PX_NEXT;
  }
  if (in->flags & PTX_F_SAT) { /* mad.hi.sat.s32 */
    PX_FOR(mask, {
      int64_t r = (int64_t)(int32_t)px_mulpart(s1[l], s2[l], 4, 1,
                                               PTX_MUL_HI) + (int32_t)s3[l];
      r = r > INT32_MAX ? INT32_MAX : r < INT32_MIN ? INT32_MIN : r;
      d0[l] = (uint32_t)r;
    });
    return PX_NEXT;
  }
  {
    uint32_t cf = w->cc & ~mask;
    PX_SWITCH_W(sz, PX_FOR(mask, {
      UT p = (UT)px_mulpart(s1[l], s2[l], sz, sgn, in->mode);
      UT r = (UT)(p + s3[l]);
      cf |= (uint32_t)(r < p) << l;
      d0[l] = r;
    }));
    if (in->flags & PTX_F_CC)
      w->cc = cf;
  }
  return PX_NEXT;
}

int px_h_imadc(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  SRC(2);
  SRC(3);
  DST(0);
  unsigned sz = XA_SZ(in->xaux), sgn = XA_SGN(in->xaux);
  uint32_t cin = w->cc, cf = w->cc & ~mask;

  PX_SWITCH_W(sz, PX_FOR(mask, {
    UT p = (UT)px_mulpart(s1[l], s2[l], sz, sgn, in->mode);
    UT c = (UT)((cin >> l) & 1);
    UT r = (UT)(p + s3[l] + c);
    cf |= (uint32_t)(c ? r <= p : r < p) << l;
    d0[l] = r;
  }));
  if (in->flags & PTX_F_CC)
    w->cc = cf;
  return PX_NEXT;
}

/* mul24: the product of the low 24 bits (sign-extended for .s32). */
static inline uint64_t px_mul24(uint64_t a, uint64_t b, unsigned sgn,
                                unsigned part)
{
  int64_t p;

  if (sgn)
    p = (int64_t)(((int32_t)((uint32_t)a << 8)) >> 8) *
        (((int32_t)((uint32_t)b << 8)) >> 8);
  else
    p = (int64_t)((a & 0xffffff) * (b & 0xffffff));
  /* .hi: bits 47..16 of the 48-bit product */
  return part == PTX_MUL_HI ? (uint32_t)((uint64_t)p >> 16) : (uint32_t)p;
}

int px_h_imul24(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  SRC(2);
  DST(0);
  unsigned sgn = XA_SGN(in->xaux);

  PX_FOR(mask, d0[l] = px_mul24(s1[l], s2[l], sgn, in->mode));
  return PX_NEXT;
}

int px_h_imad24(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  SRC(2);
  SRC(3);
  DST(0);
  unsigned sgn = XA_SGN(in->xaux);

  if (in->flags & PTX_F_SAT)
    PX_FOR(mask, {
      int64_t r = (int64_t)(int32_t)px_mul24(s1[l], s2[l], sgn, in->mode) +
                  (int32_t)s3[l];
      r = r > INT32_MAX ? INT32_MAX : r < INT32_MIN ? INT32_MIN : r;
      d0[l] = (uint32_t)r;
    });
  else
    PX_FOR(mask, d0[l] = (uint32_t)(px_mul24(s1[l], s2[l], sgn, in->mode) +
                                    s3[l]));
  return PX_NEXT;
}

int px_h_isad(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  SRC(2);
  SRC(3);
  DST(0);

  if (XA_SGN(in->xaux))
    PX_SWITCH_W(XA_SZ(in->xaux), PX_FOR(mask, {
      ST a = (ST)s1[l], b = (ST)s2[l];
      d0[l] = (UT)(s3[l] + (a < b ? (UT)b - (UT)a : (UT)a - (UT)b));
    }));
  else
    PX_SWITCH_W(XA_SZ(in->xaux), PX_FOR(mask, {
      UT a = (UT)s1[l], b = (UT)s2[l];
      d0[l] = (UT)(s3[l] + (a < b ? b - a : a - b));
    }));
  return PX_NEXT;
}

/* Division by zero has no defined result in PTX; it must not trap the
   host.  The GPU gives all ones for quotient and remainder alike. */
int px_h_idiv(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  SRC(2);
  DST(0);

  if (XA_SGN(in->xaux))
    PX_SWITCH_W(XA_SZ(in->xaux), PX_FOR(mask, {
      ST a = (ST)s1[l], b = (ST)s2[l];
      d0[l] = b == 0 ? (UT)~(UT)0
              : (b == -1) ? (UT)(0 - (UT)a) : (UT)(a / b);
    }));
  else
    PX_SWITCH_W(XA_SZ(in->xaux), PX_FOR(mask, {
      UT a = (UT)s1[l], b = (UT)s2[l];
      d0[l] = b == 0 ? (UT)~(UT)0 : (UT)(a / b);
    }));
  return PX_NEXT;
}

int px_h_irem(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  SRC(2);
  DST(0);

  if (XA_SGN(in->xaux))
    PX_SWITCH_W(XA_SZ(in->xaux), PX_FOR(mask, {
      ST a = (ST)s1[l], b = (ST)s2[l];
      d0[l] = b == 0 ? (UT)~(UT)0 : b == -1 ? 0 : (UT)(a % b);
    }));
  else
    PX_SWITCH_W(XA_SZ(in->xaux), PX_FOR(mask, {
      UT a = (UT)s1[l], b = (UT)s2[l];
      d0[l] = b == 0 ? (UT)~(UT)0 : (UT)(a % b);
    }));
  return PX_NEXT;
}

int px_h_iabs(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  DST(0);

  PX_SWITCH_W(XA_SZ(in->xaux), PX_FOR(mask, {
    ST a = (ST)s1[l];
    d0[l] = a < 0 ? (UT)(0 - (UT)a) : (UT)a;
  }));
  return PX_NEXT;
}

int px_h_ineg(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  DST(0);

  PX_SWITCH_W(XA_SZ(in->xaux), PX_FOR(mask, d0[l] = (UT)(0 - (UT)s1[l])));
  return PX_NEXT;
}

int px_h_imin(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  SRC(2);
  DST(0);

  if (XA_SGN(in->xaux))
    PX_SWITCH_W(XA_SZ(in->xaux), PX_FOR(mask, {
      ST a = (ST)s1[l], b = (ST)s2[l];
      ST r = a < b ? a : b;
      if ((in->flags & PTX_F_RELU) && r < 0)
        r = 0;
      d0[l] = (UT)r;
    }));
  else
    PX_SWITCH_W(XA_SZ(in->xaux), PX_FOR(mask, {
      UT a = (UT)s1[l], b = (UT)s2[l];
      d0[l] = a < b ? a : b;
    }));
  return PX_NEXT;
}

int px_h_imax(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  SRC(2);
  DST(0);

  if (XA_SGN(in->xaux))
    PX_SWITCH_W(XA_SZ(in->xaux), PX_FOR(mask, {
      ST a = (ST)s1[l], b = (ST)s2[l];
      ST r = a > b ? a : b;
      if ((in->flags & PTX_F_RELU) && r < 0)
        r = 0;
      d0[l] = (UT)r;
    }));
  else
    PX_SWITCH_W(XA_SZ(in->xaux), PX_FOR(mask, {
      UT a = (UT)s1[l], b = (UT)s2[l];
      d0[l] = a > b ? a : b;
    }));
  return PX_NEXT;
}

/* ---- bits ------------------------------------------------------------------ */

int px_h_and(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  DST(0);

  if (IMM2(in)) {
    uint64_t iv = IV2(in);
    PX_FOR(mask, d0[l] = s1[l] & iv);
    return PX_NEXT;
  }
  SRC(2);
  PX_FOR(mask, d0[l] = s1[l] & s2[l]);
  return PX_NEXT;
}

int px_h_or(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  DST(0);

  if (IMM2(in)) {
    uint64_t iv = IV2(in);
    PX_FOR(mask, d0[l] = s1[l] | iv);
    return PX_NEXT;
  }
  SRC(2);
  PX_FOR(mask, d0[l] = s1[l] | s2[l]);
  return PX_NEXT;
}

int px_h_xor(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  DST(0);

  if (IMM2(in)) {
    uint64_t iv = IV2(in);
    PX_FOR(mask, d0[l] = s1[l] ^ iv);
    return PX_NEXT;
  }
  SRC(2);
  PX_FOR(mask, d0[l] = s1[l] ^ s2[l]);
  return PX_NEXT;
}

int px_h_not(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  DST(0);

  PX_FOR(mask, d0[l] = ~s1[l]);
  return PX_NEXT;
}

int px_h_cnot(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  DST(0);

  PX_SWITCH_W(XA_SZ(in->xaux), PX_FOR(mask, d0[l] = (UT)s1[l] == 0));
  return PX_NEXT;
}

/* Predicates: operands may be negated ("!%p"); results are 0 or 1. */
#define PNEG(k) ((uint64_t)(in->ops[k].flags & PTX_OF_NOT))

int px_h_pand(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  SRC(2);
  DST(0);
  uint64_t n1 = PNEG(1), n2 = PNEG(2);

  PX_FOR(mask, d0[l] = ((s1[l] ^ n1) & (s2[l] ^ n2)) & 1);
  return PX_NEXT;
}

int px_h_por(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  SRC(2);
  DST(0);
  uint64_t n1 = PNEG(1), n2 = PNEG(2);

  PX_FOR(mask, d0[l] = ((s1[l] ^ n1) | (s2[l] ^ n2)) & 1);
  return PX_NEXT;
}

int px_h_pxor(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  SRC(2);
  DST(0);
  uint64_t n1 = PNEG(1), n2 = PNEG(2);

  PX_FOR(mask, d0[l] = ((s1[l] ^ n1) ^ (s2[l] ^ n2)) & 1);
  return PX_NEXT;
}

int px_h_pnot(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  DST(0);
  uint64_t n1 = PNEG(1);

  PX_FOR(mask, d0[l] = ~(s1[l] ^ n1) & 1);
  return PX_NEXT;
}

/* Shift amounts are u32 and clamp: shifting by the width or more gives
   0 (or the sign for shr.s). */
int px_h_shl(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  DST(0);

  if (IMM2(in)) {
    uint32_t n = (uint32_t)IV2(in);
    PX_SWITCH_W(XA_SZ(in->xaux),
                PX_FOR(mask, d0[l] = n >= BITS ? 0 : (UT)((UT)s1[l] << n)));
    return PX_NEXT;
  }
  SRC(2);

  PX_SWITCH_W(XA_SZ(in->xaux), PX_FOR(mask, {
    uint32_t n = (uint32_t)s2[l];
    d0[l] = n >= BITS ? 0 : (UT)((UT)s1[l] << n);
  }));
  return PX_NEXT;
}

int px_h_shr(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  DST(0);

  if (IMM2(in)) {
    uint32_t n = (uint32_t)IV2(in);
    if (XA_SGN(in->xaux))
      PX_SWITCH_W(XA_SZ(in->xaux), PX_FOR(mask, {
        ST a = (ST)s1[l];
        d0[l] = (UT)(n >= BITS ? (a < 0 ? -1 : 0) : a >> n);
      }));
    else
      PX_SWITCH_W(XA_SZ(in->xaux),
                  PX_FOR(mask, d0[l] = n >= BITS ? 0 : (UT)((UT)s1[l] >> n)));
    return PX_NEXT;
  }
  SRC(2);

  if (XA_SGN(in->xaux))
    PX_SWITCH_W(XA_SZ(in->xaux), PX_FOR(mask, {
      uint32_t n = (uint32_t)s2[l];
      ST a = (ST)s1[l];
      d0[l] = (UT)(n >= BITS ? (a < 0 ? -1 : 0) : a >> n);
    }));
  else
    PX_SWITCH_W(XA_SZ(in->xaux), PX_FOR(mask, {
      uint32_t n = (uint32_t)s2[l];
      d0[l] = n >= BITS ? 0 : (UT)((UT)s1[l] >> n);
    }));
  return PX_NEXT;
}

/* shf.{l,r}.{wrap,clamp}.b32 d, a, b, c: funnel shift of b:a by c. */
int px_h_shf(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  SRC(2);
  SRC(3);
  DST(0);
  int left = in->mode == PTX_SHF_L, clamp = in->mode2 == PTX_SHF_CLAMP;

  PX_FOR(mask, {
    uint64_t v = (s2[l] << 32) | (uint32_t)s1[l];
    uint32_t n = (uint32_t)s3[l];
    n = clamp ? (n > 32 ? 32 : n) : (n & 31);
    d0[l] = left ? (uint32_t)((v << n) >> 32) : (uint32_t)(v >> n);
  });
  return PX_NEXT;
}

int px_h_popc(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  DST(0);

  if (XA_SZ(in->xaux) == 8)
    PX_FOR(mask, d0[l] = px_popc((uint32_t)s1[l]) +
                       px_popc((uint32_t)(s1[l] >> 32)));
  else
    PX_FOR(mask, d0[l] = (uint32_t)px_popc((uint32_t)s1[l]));
  return PX_NEXT;
}

int px_h_clz(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  DST(0);

  if (XA_SZ(in->xaux) == 8)
    PX_FOR(mask, d0[l] = s1[l] ? (uint32_t)__builtin_clzll(s1[l]) : 64);
  else
    PX_FOR(mask, d0[l] = (uint32_t)s1[l]
                         ? (uint32_t)__builtin_clz((uint32_t)s1[l]) : 32);
  return PX_NEXT;
}

static inline uint32_t px_brev32(uint32_t x)
{
  x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
  x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
  x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
  return __builtin_bswap32(x);
}

int px_h_brev(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  DST(0);

  if (XA_SZ(in->xaux) == 8)
    PX_FOR(mask, d0[l] = ((uint64_t)px_brev32((uint32_t)s1[l]) << 32) |
                         px_brev32((uint32_t)(s1[l] >> 32)));
  else
    PX_FOR(mask, d0[l] = px_brev32((uint32_t)s1[l]));
  return PX_NEXT;
}

/*
 * bfe d, a, pos, len: bits pos..pos+len-1 of a, the rest filled with the
 * sign bit, which for .sN is bit min(pos+len-1, msb) of a (0 when len is
 * 0).  pos and len are the low 8 bits of b and c for 32-bit types, but
 * the whole 32-bit values for 64-bit ones (what the GPU does: there the
 * instruction is a sequence of 64-bit shifts).
 */
int px_h_bfe(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  SRC(2);
  SRC(3);
  DST(0);
  unsigned bits = XA_SZ(in->xaux) * 8, sgn = XA_SGN(in->xaux);
  uint64_t wm = bits == 64 ? ~0ull : 0xffffffffull;

  PX_FOR(mask, {
    uint64_t a = s1[l] & wm, r = 0, fm;
    uint64_t pos = bits == 64 ? (uint32_t)s2[l] : (uint8_t)s2[l];
    uint64_t len = bits == 64 ? (uint32_t)s3[l] : (uint8_t)s3[l];
    unsigned msb = bits - 1;
    unsigned n = pos > msb ? 0 : (unsigned)(len < bits - pos ? len : bits - pos);
    unsigned top = pos + len - 1 < msb ? (unsigned)(pos + len - 1) : msb;
    int sbit = sgn && len ? (int)((a >> top) & 1) : 0;
    fm = n >= 64 ? ~0ull : (1ull << n) - 1;
    if (n)
      r = (a >> pos) & fm;
    if (sbit)
      r |= ~fm;
    d0[l] = r & wm;
  });
  return PX_NEXT;
}

/* bfi d, f, b, pos, len: insert the low len bits of f into b at pos. */
int px_h_bfi(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  SRC(2);
  SRC(3);
  SRC(4);
  DST(0);
  unsigned bits = XA_SZ(in->xaux) * 8;

  PX_FOR(mask, {
    uint64_t f = s1[l], b = s2[l];
    unsigned pos = (uint8_t)s3[l], len = (uint8_t)s4[l];
    uint64_t m;
    if (pos >= bits || len == 0) {
      d0[l] = bits == 64 ? b : (uint32_t)b;
    } else {
      if (pos + len > bits)
        len = bits - pos;
      m = (len >= 64 ? ~0ull : (1ull << len) - 1) << pos;
      b = (b & ~m) | ((f << pos) & m);
      d0[l] = bits == 64 ? b : (uint32_t)b;
    }
  });
  return PX_NEXT;
}

/* bfind: position of the most significant non-sign bit, 0xffffffff if
   none; .shiftamt gives the left shift that normalises instead. */
int px_h_bfind(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  DST(0);
  unsigned bits = XA_SZ(in->xaux) * 8, sgn = XA_SGN(in->xaux);
  int shamt = !!(in->flags & PTX_F_SHIFTAMT);

  PX_FOR(mask, {
    uint64_t a = bits == 64 ? s1[l] : (uint32_t)s1[l];
    uint32_t r;
    if (sgn && (a >> (bits - 1)) & 1)
      a = ~a & (bits == 64 ? ~0ull : 0xffffffffull);
    if (!a)
      r = 0xffffffffu;
    else {
      r = 63u - (uint32_t)__builtin_clzll(a);
      if (shamt)
        r = bits - 1 - r;
    }
    d0[l] = r;
  });
  return PX_NEXT;
}

/* fns.b32 d, mask, base, offset: the n-th set bit of mask from base. */
int px_h_fns(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  SRC(2);
  SRC(3);
  DST(0);

  PX_FOR(mask, {
    uint32_t m = (uint32_t)s1[l], base = (uint32_t)s2[l] & 31;
    int32_t off = (int32_t)s3[l];
    uint32_t r = 0xffffffffu;
    if (off == 0) {
      r = (m >> base) & 1 ? base : 0xffffffffu;
    } else if (off > 0) {
      int n = off;
      for (int p = (int)base; p < 32; p++)
        if ((m >> p) & 1 && --n == 0) {
          r = (uint32_t)p;
          break;
        }
    } else {
      int n = -off;
      for (int p = (int)base; p >= 0; p--)
        if ((m >> p) & 1 && --n == 0) {
          r = (uint32_t)p;
          break;
        }
    }
    d0[l] = r;
  });
  return PX_NEXT;
}

int px_h_prmt(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  SRC(2);
  SRC(3);
  DST(0);
  unsigned mode = in->mode;

  PX_FOR(mask, {
    uint64_t v = (s2[l] << 32) | (uint32_t)s1[l];
    uint8_t by[8];
    uint32_t c = (uint32_t)s3[l], r = 0;
    unsigned sel[4];
    for (unsigned i = 0; i < 8; i++)
      by[i] = (uint8_t)(v >> (8 * i));
    switch (mode) {
    case PTX_PRMT_F4E:
      for (unsigned i = 0; i < 4; i++)
        sel[i] = ((c & 3) + i) & 7;
      break;
    case PTX_PRMT_B4E:
      for (unsigned i = 0; i < 4; i++)
        sel[i] = ((c & 3) - i) & 7;
      break;
    case PTX_PRMT_RC8:
      sel[0] = sel[1] = sel[2] = sel[3] = c & 3;
      break;
    case PTX_PRMT_ECL: {
      unsigned s = c & 3;
      for (unsigned i = 0; i < 4; i++)
        sel[i] = i <= s ? s : i;
      break;
    }
    case PTX_PRMT_ECR: {
      unsigned s = c & 3;
      for (unsigned i = 0; i < 4; i++)
        sel[i] = i >= s ? s : i;
      break;
    }
    case PTX_PRMT_RC16:
      sel[0] = (c & 1) * 2;
      sel[1] = (c & 1) * 2 + 1;
      sel[2] = sel[0];
      sel[3] = sel[1];
      break;
    default:
      for (unsigned i = 0; i < 4; i++) {
        unsigned n = (c >> (4 * i)) & 0xf;
        uint8_t b = by[n & 7];
        if (n & 8) /* replicate the sign bit */
          b = (b & 0x80) ? 0xff : 0;
        r |= (uint32_t)b << (8 * i);
      }
      d0[l] = r;
      continue;
    }
    for (unsigned i = 0; i < 4; i++)
      r |= (uint32_t)by[sel[i]] << (8 * i);
    d0[l] = r;
  });
  return PX_NEXT;
}

/* lop3.b32 d, a, b, c, immLut */
int px_h_lop3(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  SRC(2);
  SRC(3);
  DST(0);
  uint8_t lut = (uint8_t)in->ops[4].imm;

  PX_FOR(mask, {
    uint32_t a = (uint32_t)s1[l], b = (uint32_t)s2[l], c = (uint32_t)s3[l];
    uint32_t r = 0;
    if (lut & 0x01) r |= ~a & ~b & ~c;
    if (lut & 0x02) r |= ~a & ~b & c;
    if (lut & 0x04) r |= ~a & b & ~c;
    if (lut & 0x08) r |= ~a & b & c;
    if (lut & 0x10) r |= a & ~b & ~c;
    if (lut & 0x20) r |= a & ~b & c;
    if (lut & 0x40) r |= a & b & ~c;
    if (lut & 0x80) r |= a & b & c;
    d0[l] = r;
  });
  return PX_NEXT;
}

/* dp4a.atype.btype d, a, b, c: four byte products summed into c. */
int px_h_dp4a(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  SRC(2);
  SRC(3);
  DST(0);
  int sa = px_is_sint(in->type), sb = px_is_sint(in->type2);

  PX_FOR(mask, {
    uint32_t a = (uint32_t)s1[l], b = (uint32_t)s2[l];
    int64_t acc = 0;
    for (unsigned i = 0; i < 4; i++) {
      int32_t x = sa ? (int8_t)(a >> (8 * i)) : (uint8_t)(a >> (8 * i));
      int32_t y = sb ? (int8_t)(b >> (8 * i)) : (uint8_t)(b >> (8 * i));
      acc += (int64_t)x * y;
    }
    d0[l] = (uint32_t)((uint64_t)acc + s3[l]);
  });
  return PX_NEXT;
}

/* dp2a.{lo,hi}: two 16-bit halves of a times two bytes of b. */
int px_h_dp2a(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  SRC(2);
  SRC(3);
  DST(0);
  int sa = px_is_sint(in->type), sb = px_is_sint(in->type2);
  unsigned hi = in->mode == PTX_MUL_HI ? 2 : 0;

  PX_FOR(mask, {
    uint32_t a = (uint32_t)s1[l], b = (uint32_t)s2[l];
    int64_t acc = 0;
    for (unsigned i = 0; i < 2; i++) {
      int32_t x = sa ? (int16_t)(a >> (16 * i)) : (uint16_t)(a >> (16 * i));
      uint8_t bb = (uint8_t)(b >> (8 * (i + hi)));
      int32_t y = sb ? (int8_t)bb : bb;
      acc += (int64_t)x * y;
    }
    d0[l] = (uint32_t)((uint64_t)acc + s3[l]);
  });
  return PX_NEXT;
}

/* ---- f32 / f64 ----------------------------------------------------------- */

static inline uint32_t fb(float f)
{
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

static inline float bf(uint32_t u)
{
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static inline float ftz32(float x)
{
  uint32_t u = fb(x);
  return (u & 0x7f800000u) ? x : bf(u & 0x80000000u);
}

static inline double ftz64(double x)
{
  /* .ftz for f64 exists only on rcp/rsqrt approx; flush like f32 */
  return fpclassify(x) == FP_SUBNORMAL ? copysign(0.0, x) : x;
}

/* The result of an f32 operation as the GPU writes it. */
static inline uint64_t out32(float r, uint32_t fl)
{
  if (r != r)
    return (fl & PTX_F_SAT) ? 0 : CANON32; /* .sat takes NaN to +0 */
  if (fl & PTX_F_FTZ)
    r = ftz32(r);
  if (fl & PTX_F_SAT)
    r = r > 1.0f ? 1.0f : r > 0.0f ? r : 0.0f;
  return fb(r);
}

static inline uint64_t out64(double r, uint32_t fl)
{
  if (r != r)
    return (fl & PTX_F_SAT) ? 0 : CANON64;
  if (fl & PTX_F_SAT)
    r = r > 1.0 ? 1.0 : r > 0.0 ? r : 0.0;
  return px_b64(r);
}

/* Operands of an f32 instruction, flushed when .ftz. */
#define IN32(s, l) ((fl & PTX_F_FTZ) ? ftz32(px_f32(s[l])) : px_f32(s[l]))

/* Directed rounding or .rn with flags: the general path. */

static inline int plain(const struct ptx_insn *in)
{
  return (in->rnd == PTX_RND_NONE || in->rnd == PTX_RND_RN) &&
         !(in->flags & (PTX_F_FTZ | PTX_F_SAT));
}

int px_h_fadd32(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  SRC(2);
  DST(0);

  if (__builtin_expect(plain(in), 1)) {
    PX_FOR(mask, {
      float r = px_f32(s1[l]) + px_f32(s2[l]);
      d0[l] = r == r ? fb(r) : CANON32;
    });
    return PX_NEXT;
  }
  px_fop32(PX_RO_ADD, in->rnd, in->flags, mask, d0, s1, s2, NULL);
  return PX_NEXT;
}

int px_h_fsub32(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  SRC(2);
  DST(0);

  if (__builtin_expect(plain(in), 1)) {
    PX_FOR(mask, {
      float r = px_f32(s1[l]) - px_f32(s2[l]);
      d0[l] = r == r ? fb(r) : CANON32;
    });
    return PX_NEXT;
  }
  px_fop32(PX_RO_SUB, in->rnd, in->flags, mask, d0, s1, s2, NULL);
  return PX_NEXT;
}

int px_h_fmul32(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  SRC(2);
  DST(0);

  if (__builtin_expect(plain(in), 1)) {
    PX_FOR(mask, {
      float r = px_f32(s1[l]) * px_f32(s2[l]);
      d0[l] = r == r ? fb(r) : CANON32;
    });
    return PX_NEXT;
  }
  px_fop32(PX_RO_MUL, in->rnd, in->flags, mask, d0, s1, s2, NULL);
  return PX_NEXT;
}

int px_h_ffma32(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  SRC(2);
  SRC(3);
  DST(0);

  if (plain(in)) {
    PX_FOR(mask, {
      float r = px_fmaf(px_f32(s1[l]), px_f32(s2[l]), px_f32(s3[l]));
      d0[l] = r == r ? fb(r) : CANON32;
    });
    return PX_NEXT;
  }
  px_fop32(PX_RO_FMA, in->rnd, in->flags, mask, d0, s1, s2, s3);
  return PX_NEXT;
}

/* The same with the host's FMA instruction, chosen by prepare when the
   CPU has one: fma.rn.f32 is the inner loop of most kernels. */
__attribute__((target("fma"))) int
px_h_ffma32_hw(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  SRC(2);
  SRC(3);
  DST(0);

  if (__builtin_expect(plain(in), 1)) {
    PX_FOR(mask, {
      float r = __builtin_fmaf(px_f32(s1[l]), px_f32(s2[l]), px_f32(s3[l]));
      d0[l] = r == r ? fb(r) : CANON32;
    });
    return PX_NEXT;
  }
  px_fop32(PX_RO_FMA, in->rnd, in->flags, mask, d0, s1, s2, s3);
  return PX_NEXT;
}

int px_h_fdiv32(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  SRC(2);
  DST(0);

  px_fop32(PX_RO_DIV, in->rnd, in->flags, mask, d0, s1, s2, NULL);
  return PX_NEXT;
}

int px_h_fadd64(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  SRC(2);
  DST(0);

  if (__builtin_expect(plain(in), 1)) {
    PX_FOR(mask, {
      double r = px_f64(s1[l]) + px_f64(s2[l]);
      d0[l] = r == r ? px_b64(r) : px_nan64(s1[l], s2[l], 0);
    });
    return PX_NEXT;
  }
  px_fop64(PX_RO_ADD, in->rnd, in->flags, mask, d0, s1, s2, NULL);
  return PX_NEXT;
}

int px_h_fsub64(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  SRC(2);
  DST(0);

  if (__builtin_expect(plain(in), 1)) {
    PX_FOR(mask, {
      double r = px_f64(s1[l]) - px_f64(s2[l]);
      d0[l] = r == r ? px_b64(r) : px_nan64(s1[l], s2[l], 0);
    });
    return PX_NEXT;
  }
  px_fop64(PX_RO_SUB, in->rnd, in->flags, mask, d0, s1, s2, NULL);
  return PX_NEXT;
}

int px_h_fmul64(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  SRC(2);
  DST(0);

  if (__builtin_expect(plain(in), 1)) {
    PX_FOR(mask, {
      double r = px_f64(s1[l]) * px_f64(s2[l]);
      d0[l] = r == r ? px_b64(r) : px_nan64(s1[l], s2[l], 0);
    });
    return PX_NEXT;
  }
  px_fop64(PX_RO_MUL, in->rnd, in->flags, mask, d0, s1, s2, NULL);
  return PX_NEXT;
}

int px_h_ffma64(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  SRC(2);
  SRC(3);
  DST(0);

  if (plain(in)) {
    PX_FOR(mask, {
      double r = fma(px_f64(s1[l]), px_f64(s2[l]), px_f64(s3[l]));
      d0[l] = r == r ? px_b64(r) : px_nan64(s1[l], s2[l], s3[l]);
    });
    return PX_NEXT;
  }
  px_fop64(PX_RO_FMA, in->rnd, in->flags, mask, d0, s1, s2, s3);
  return PX_NEXT;
}

int px_h_fdiv64(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  SRC(2);
  DST(0);

  px_fop64(PX_RO_DIV, in->rnd, in->flags, mask, d0, s1, s2, NULL);
  return PX_NEXT;
}

/* abs/neg: sign-bit operations, except that a NaN comes out as the GPU
   makes it: canonical for f32, the input quieted (sign kept) for f64. */
int px_h_fabs(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  DST(0);
  uint32_t fl = in->flags;

  if (in->type == PTX_T_F64)
    PX_FOR(mask, d0[l] = px_isnan64(s1[l]) ? s1[l] | 0x0008000000000000ull
                                           : s1[l] & ~(1ull << 63));
  else
    PX_FOR(mask, {
      uint32_t v = fb(IN32(s1, l)) & 0x7fffffffu;
      d0[l] = v > 0x7f800000u ? CANON32 : v;
    });
  return PX_NEXT;
}

int px_h_fneg(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  DST(0);
  uint32_t fl = in->flags;

  if (in->type == PTX_T_F64)
    PX_FOR(mask, d0[l] = px_isnan64(s1[l]) ? s1[l] | 0x0008000000000000ull
                                           : s1[l] ^ (1ull << 63));
  else
    PX_FOR(mask, {
      uint32_t v = fb(IN32(s1, l));
      d0[l] = (v & 0x7fffffffu) > 0x7f800000u ? CANON32 : v ^ 0x80000000u;
    });
  return PX_NEXT;
}

/*
 * min/max: a NaN operand is ignored (both NaN: canonical NaN), unless
 * .NaN, which makes any NaN the result; -0 is below +0.  .xorsign.abs:
 * the magnitudes compare and the result's sign is the xor of the signs.
 */
static inline double px_fminmax(double a, double b, int max, uint32_t fl)
{
  if (a != a || b != b) {
    if ((fl & PTX_F_NAN) || (a != a && b != b))
      return NAN;
    return a != a ? b : a;
  }
  if (a == b && a == 0)
    return max ? (signbit(a) ? b : a) : (signbit(a) ? a : b);
  return max ? (a > b ? a : b) : (a < b ? a : b);
}

static int px_fminmax_h(struct px_warp *w, const struct ptx_insn *in,
                        uint32_t mask, int max)
{
  SRC(1);
  SRC(2);
  DST(0);
  uint32_t fl = in->flags;

  if (in->type == PTX_T_F64) {
    PX_FOR(mask, {
      double r = px_fminmax(px_f64(s1[l]), px_f64(s2[l]), max, fl);
      d0[l] = r == r ? px_b64(r) : px_nan64(s1[l], s2[l], 0);
    });
    return PX_NEXT;
  }
  PX_FOR(mask, {
    float a = IN32(s1, l), b = IN32(s2, l);
    uint32_t sx = (fb(a) ^ fb(b)) & 0x80000000u;
    float r;
    if (fl & PTX_F_XORSIGN) {
      a = fabsf(a);
      b = fabsf(b);
    }
    r = (float)px_fminmax(a, b, max, fl);
    if ((fl & PTX_F_XORSIGN) && r == r)
      r = bf(fb(r) | sx);
    d0[l] = out32(r, fl & PTX_F_FTZ);
  });
  return PX_NEXT;
}

int px_h_fmin(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  return px_fminmax_h(w, in, mask, 0);
}

int px_h_fmax(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  return px_fminmax_h(w, in, mask, 1);
}

/* copysign d, a, b: b with the sign of a. */
int px_h_fcopysign(struct px_warp *w, const struct ptx_insn *in,
                   uint32_t mask)
{
  SRC(1);
  SRC(2);
  DST(0);

  if (in->type == PTX_T_F64)
    PX_FOR(mask, d0[l] = (s2[l] & ~(1ull << 63)) | (s1[l] & (1ull << 63)));
  else
    PX_FOR(mask, d0[l] = ((uint32_t)s2[l] & 0x7fffffffu) |
                         ((uint32_t)s1[l] & 0x80000000u));
  return PX_NEXT;
}

int px_h_ftestp(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  DST(0);
  int f64 = in->type == PTX_T_F64;
  unsigned mode = in->mode;

  PX_FOR(mask, {
    double x = f64 ? px_f64(s1[l]) : px_f32(s1[l]);
    int c = f64 ? fpclassify(x) : fpclassify(px_f32(s1[l]));
    int r;
    switch (mode) {
    case PTX_TESTP_FINITE: r = c != FP_INFINITE && c != FP_NAN; break;
    case PTX_TESTP_INFINITE: r = c == FP_INFINITE; break;
    case PTX_TESTP_NUMBER: r = c != FP_NAN; break;
    case PTX_TESTP_NOTANUMBER: r = c == FP_NAN; break;
    case PTX_TESTP_NORMAL: r = c == FP_NORMAL; break;
    default: r = c == FP_SUBNORMAL; break;
    }
    d0[l] = (uint64_t)r;
  });
  return PX_NEXT;
}

int px_h_frcp(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  DST(0);

  if (in->type == PTX_T_F64) {
    if (in->flags & PTX_F_APPROX) {
      uint32_t fl = in->flags;
      PX_FOR(mask, {
        double x = px_f64(s1[l]);
        double r = 1.0 / ((fl & PTX_F_FTZ) ? ftz64(x) : x);
        d0[l] = r == r ? px_b64((fl & PTX_F_FTZ) ? ftz64(r) : r)
                       : px_nan64(s1[l], 0, 0);
      });
    } else {
      px_fop64(PX_RO_RCP, in->rnd, in->flags, mask, d0, s1, NULL, NULL);
    }
    return PX_NEXT;
  }
  px_fop32(PX_RO_RCP, in->rnd, in->flags, mask, d0, s1, NULL, NULL);
  return PX_NEXT;
}

int px_h_fsqrt(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  DST(0);

  if (in->type == PTX_T_F64)
    px_fop64(PX_RO_SQRT, in->rnd, in->flags, mask, d0, s1, NULL, NULL);
  else
    px_fop32(PX_RO_SQRT, in->rnd, in->flags, mask, d0, s1, NULL, NULL);
  return PX_NEXT;
}

int px_h_frsqrt(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  DST(0);
  uint32_t fl = in->flags;

  if (in->type == PTX_T_F64)
    PX_FOR(mask, {
      double x = px_f64(s1[l]);
      double r = 1.0 / sqrt((fl & PTX_F_FTZ) ? ftz64(x) : x);
      d0[l] = r == r ? px_b64(r) : px_nan64(s1[l], 0, 0);
    });
  else
    PX_FOR(mask, d0[l] = out32((float)(1.0 / sqrt((double)IN32(s1, l))),
                               fl));
  return PX_NEXT;
}

/* The .approx transcendental functions: the host's libm, which is at
   least as accurate as the GPU's approximations. */
#define PX_APPROX32(name, expr)                                              \
  int px_h_##name(struct px_warp *w, const struct ptx_insn *in,              \
                  uint32_t mask)                                             \
  {                                                                          \
    SRC(1);                                                                  \
    DST(0);                                                                  \
    uint32_t fl = in->flags;                                                 \
    PX_FOR(mask, {                                                           \
      float x = IN32(s1, l);                                                 \
      d0[l] = out32((expr), fl);                                             \
    });                                                                      \
    return PX_NEXT;                                                          \
  }

PX_APPROX32(fsin, sinf(x))
PX_APPROX32(fcos, cosf(x))
PX_APPROX32(flg2, log2f(x))
PX_APPROX32(fex2, exp2f(x))
PX_APPROX32(ftanh, tanhf(x))

/* ---- f16 / bf16 ------------------------------------------------------------ */

/*
 * Half-precision arithmetic is done in double, where sums and products of
 * two halves are exact, and rounded once to the result format.  A packed
 * .f16x2 / .bf16x2 operand is two independent halves.
 */
static inline int hbf(unsigned t)
{
  return t == PTX_T_BF16 || t == PTX_T_BF16X2;
}

static inline double h2d(uint16_t h, int bf16)
{
  return bf16 ? (double)px_bf2f(h) : (double)px_h2f(h);
}

static inline uint16_t hflush(uint16_t h, int bf16)
{
  if (bf16)
    return (h & 0x7f80) ? h : (uint16_t)(h & 0x8000);
  return (h & 0x7c00) ? h : (uint16_t)(h & 0x8000);
}

static inline uint16_t hout(double r, int bf16, uint32_t fl, unsigned rnd)
{
  uint16_t h;

  if (r != r)
    return (fl & PTX_F_SAT) ? 0 : PX_CANON16;
  if (fl & PTX_F_SAT)
    r = r > 1.0 ? 1.0 : r > 0.0 ? r : 0.0;
  if ((fl & PTX_F_RELU) && (r < 0 || (r == 0 && signbit(r))))
    r = 0; /* -0 too */
  h = bf16 ? px_d2bf(r, rnd) : px_d2h(r, rnd);
  if (fl & PTX_F_FTZ)
    h = hflush(h, bf16);
  return h;
}

static inline double hin(uint64_t v, unsigned half, int bf16, uint32_t fl)
{
  uint16_t h = (uint16_t)(v >> (16 * half));

  if (fl & PTX_F_FTZ)
    h = hflush(h, bf16);
  return h2d(h, bf16);
}

/*
 * a*b + c of halves, in double but rounded to odd (the neighbour of the
 * exact value whose last bit is 1, when inexact), so that rounding it
 * once more to f16/bf16 is correct: a plain double fma would round twice
 * when c's exponent is far from the product's.  The product of two
 * halves is exact in double; the sum's error comes from TwoSum.
 */
static double px_fma_odd(double a, double b, double c)
{
  double p = a * b, s = p + c, bb, e;
  uint64_t u;

  if (!isfinite(s))
    return s;
  bb = s - p;
  e = (p - (s - bb)) + (c - bb);
  if (e == 0)
    return s;
  if (s == 0)
    return copysign(0x1p-1074, e);
  u = px_b64(s);
  if (!(u & 1)) {
    /* s is even: the odd neighbour lies on e's side of s */
    if ((e > 0) == (s > 0))
      u++;
    else
      u--;
  }
  return px_f64(u);
}

enum { HOP_ADD, HOP_SUB, HOP_MUL, HOP_FMA, HOP_MIN, HOP_MAX, HOP_ABS,
       HOP_NEG, HOP_EX2, HOP_TANH };

static int px_hop(struct px_warp *w, const struct ptx_insn *in,
                  uint32_t mask, unsigned op)
{
  const uint64_t *s1 = px_src(w, in, 1);
  const uint64_t *s2 = in->nops > 2 ? px_src(w, in, 2) : s1;
  const uint64_t *s3 = in->nops > 3 ? px_src(w, in, 3) : s1;
  DST(0);
  int bf16 = hbf(in->type);
  unsigned n = (in->type == PTX_T_F16X2 || in->type == PTX_T_BF16X2) ? 2 : 1;
  uint32_t fl = in->flags;
  unsigned rnd = in->rnd;

  PX_FOR(mask, {
    uint64_t r = 0;
    for (unsigned h = 0; h < n; h++) {
      double a = hin(s1[l], h, bf16, fl), b = hin(s2[l], h, bf16, fl), x;
      uint16_t o;
      switch (op) {
      case HOP_ADD: x = a + b; break;
      case HOP_SUB: x = a - b; break;
      case HOP_MUL: x = a * b; break;
      case HOP_FMA: x = px_fma_odd(a, b, hin(s3[l], h, bf16, fl)); break;
      case HOP_MIN:
      case HOP_MAX: {
        uint16_t sx = (uint16_t)(((s1[l] ^ s2[l]) >> (16 * h)) & 0x8000);
        if (fl & PTX_F_XORSIGN) {
          a = fabs(a);
          b = fabs(b);
        }
        x = px_fminmax(a, b, op == HOP_MAX, fl);
        o = hout(x, bf16, fl & ~PTX_F_SAT, rnd);
        if ((fl & PTX_F_XORSIGN) && x == x)
          o |= sx;
        r |= (uint64_t)o << (16 * h);
        continue;
      }
      case HOP_ABS:
      case HOP_NEG: {
        uint16_t hv = (uint16_t)(s1[l] >> (16 * h));
        if (fl & PTX_F_FTZ)
          hv = hflush(hv, bf16);
        if ((hv & 0x7fff) > (bf16 ? 0x7f80 : 0x7c00))
          o = PX_CANON16; /* NaN: the canonical one, as the GPU */
        else
          o = op == HOP_ABS ? (uint16_t)(hv & 0x7fff) : (uint16_t)(hv ^ 0x8000);
        r |= (uint64_t)o << (16 * h);
        continue;
      }
      case HOP_EX2: x = exp2(a); break;
      default: x = tanh(a); break;
      }
      r |= (uint64_t)hout(x, bf16, fl, rnd) << (16 * h);
    }
    d0[l] = r;
  });
  return PX_NEXT;
}

int px_h_hadd(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  return px_hop(w, in, mask, HOP_ADD);
}

int px_h_hsub(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  return px_hop(w, in, mask, HOP_SUB);
}

int px_h_hmul(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  return px_hop(w, in, mask, HOP_MUL);
}

int px_h_hfma(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  return px_hop(w, in, mask, HOP_FMA);
}

int px_h_hmin(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  return px_hop(w, in, mask, HOP_MIN);
}

int px_h_hmax(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  return px_hop(w, in, mask, HOP_MAX);
}

int px_h_habs(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  return px_hop(w, in, mask, HOP_ABS);
}

int px_h_hneg(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  return px_hop(w, in, mask, HOP_NEG);
}

int px_h_hex2(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  return px_hop(w, in, mask, HOP_EX2);
}

int px_h_htanh(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  return px_hop(w, in, mask, HOP_TANH);
}

/* ---- compare and select --------------------------------------------------- */

static inline int px_cmp_f(double a, double b, unsigned cmp)
{
  int un = a != a || b != b;

  switch (cmp) {
  case PTX_CMP_EQ: return !un && a == b;
  case PTX_CMP_NE: return !un && a != b;
  case PTX_CMP_LT: return !un && a < b;
  case PTX_CMP_LE: return !un && a <= b;
  case PTX_CMP_GT: return !un && a > b;
  case PTX_CMP_GE: return !un && a >= b;
  case PTX_CMP_EQU: return un || a == b;
  case PTX_CMP_NEU: return un || a != b;
  case PTX_CMP_LTU: return un || a < b;
  case PTX_CMP_LEU: return un || a <= b;
  case PTX_CMP_GTU: return un || a > b;
  case PTX_CMP_GEU: return un || a >= b;
  case PTX_CMP_NUM: return !un;
  case PTX_CMP_NAN: return un;
  default: return 0;
  }
}

/*
 * Write a comparison's result t (one bit per lane) to p (and its
 * complement to q for "p|q"), each combined with the optional third
 * predicate by the bool op.
 */
static void px_setp_out(struct px_warp *w, const struct ptx_insn *in,
                        uint32_t mask, uint32_t t, unsigned cbase)
{
  uint64_t *p = px_dst(w, in, 0);
  uint64_t *q = (in->flags & PTX_F_PAIR) && in->ops[1].kind == PTX_O_REG
                  ? px_dst(w, in, 1) : NULL;
  const uint64_t *c = in->nops > cbase ? px_src(w, in, cbase) : NULL;
  uint64_t cn = in->nops > cbase ? PNEG(cbase) : 0;
  unsigned bop = in->mode2;

  if (!c || bop == PTX_BOOL_NONE) {
    PX_FOR(mask, p[l] = (t >> l) & 1);
    if (q)
      PX_FOR(mask, q[l] = ((t >> l) & 1) ^ 1);
    return;
  }
  PX_FOR(mask, {
    uint64_t r = (t >> l) & 1, cv = (c[l] ^ cn) & 1;
    uint64_t r2 = r ^ 1;
    switch (bop) {
    case PTX_BOOL_AND: r &= cv; r2 &= cv; break;
    case PTX_BOOL_OR: r |= cv; r2 |= cv; break;
    default: r ^= cv; r2 ^= cv; break;
    }
    p[l] = r;
    if (q)
      q[l] = r2;
  });
}

/* Integer comparisons: the operands widened to 64 bits, signed for .sN
   types (except lo/ls/hi/hs, which are unsigned by definition). */
static uint32_t px_icmp(const struct ptx_insn *in, uint32_t mask,
                        const uint64_t *a, const uint64_t *b, unsigned sz,
                        int sgn)
{
  uint64_t x[PX_W], y[PX_W];
  unsigned cmp = in->mode;
  uint32_t t = 0;

  if (cmp == PTX_CMP_LO || cmp == PTX_CMP_LS || cmp == PTX_CMP_HI ||
      cmp == PTX_CMP_HS)
    sgn = 0;
  /* bias signed values so that one unsigned compare serves both */
  if (sgn)
    PX_SWITCH_W(sz, PX_FOR(mask, {
      x[l] = (uint64_t)(int64_t)(ST)a[l] ^ (1ull << 63);
      y[l] = (uint64_t)(int64_t)(ST)b[l] ^ (1ull << 63);
    }));
  else
    PX_SWITCH_W(sz, PX_FOR(mask, {
      x[l] = (UT)a[l];
      y[l] = (UT)b[l];
    }));
  switch (cmp) {
  case PTX_CMP_EQ: PX_FOR(mask, t |= (uint32_t)(x[l] == y[l]) << l); break;
  case PTX_CMP_NE: PX_FOR(mask, t |= (uint32_t)(x[l] != y[l]) << l); break;
  case PTX_CMP_LT:
  case PTX_CMP_LO: PX_FOR(mask, t |= (uint32_t)(x[l] < y[l]) << l); break;
  case PTX_CMP_LE:
  case PTX_CMP_LS: PX_FOR(mask, t |= (uint32_t)(x[l] <= y[l]) << l); break;
  case PTX_CMP_GT:
  case PTX_CMP_HI: PX_FOR(mask, t |= (uint32_t)(x[l] > y[l]) << l); break;
  default: PX_FOR(mask, t |= (uint32_t)(x[l] >= y[l]) << l); break;
  }
  return t;
}

/* setp p, a, b with no second destination and no bool op, the form nvcc
   emits: the comparison writes the predicate directly. */
#define SETP_CMPX(T, B)                                                      \
  switch (cmp) {                                                             \
  case PTX_CMP_EQ: PX_FOR(mask, p[l] = (T)a[l] == (T)(B)); break;            \
  case PTX_CMP_NE: PX_FOR(mask, p[l] = (T)a[l] != (T)(B)); break;            \
  case PTX_CMP_LT: PX_FOR(mask, p[l] = (T)a[l] < (T)(B)); break;             \
  case PTX_CMP_LE: PX_FOR(mask, p[l] = (T)a[l] <= (T)(B)); break;            \
  case PTX_CMP_GT: PX_FOR(mask, p[l] = (T)a[l] > (T)(B)); break;             \
  default: PX_FOR(mask, p[l] = (T)a[l] >= (T)(B)); break;                    \
  }
#define SETP_CMP(T)                                                          \
  do {                                                                       \
    if (IMM2(in)) {                                                          \
      uint64_t bv = IV2(in);                                                 \
      SETP_CMPX(T, bv)                                                       \
    } else {                                                                 \
      const uint64_t *b = px_src(w, in, 2);                                  \
      SETP_CMPX(T, b[l])                                                     \
    }                                                                        \
  } while (0)

static void px_setp_fast(struct px_warp *w, const struct ptx_insn *in,
                         uint32_t mask)
{
  const uint64_t *a = px_src(w, in, 1);
  uint64_t *p = px_dst(w, in, 0);
  unsigned cmp = in->mode, sz = XA_SZ(in->xaux), sgn = XA_SGN(in->xaux);

  /* lo/ls/hi/hs are lt/le/gt/ge on unsigned values */
  if (cmp >= PTX_CMP_LO) {
    cmp = cmp - PTX_CMP_LO + PTX_CMP_LT;
    sgn = 0;
  }
  if (sz == 4 && sgn)
    SETP_CMP(int32_t);
  else if (sz == 4)
    SETP_CMP(uint32_t);
  else if (sz == 8 && sgn)
    SETP_CMP(int64_t);
  else if (sz == 8)
    SETP_CMP(uint64_t);
  else if (sgn)
    SETP_CMP(int16_t);
  else
    SETP_CMP(uint16_t);
}

int px_h_setp_i(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  unsigned base = (in->flags & PTX_F_PAIR) ? 2 : 1;

  if (base == 1 && in->nops == 3) {
    px_setp_fast(w, in, mask);
    return PX_NEXT;
  }
  const uint64_t *a = px_src(w, in, base), *b = px_src(w, in, base + 1);
  uint32_t t = px_icmp(in, mask, a, b, XA_SZ(in->xaux), XA_SGN(in->xaux));

  px_setp_out(w, in, mask, t, base + 2);
  return PX_NEXT;
}

static uint32_t px_fcmp(const struct ptx_insn *in, uint32_t mask,
                        const uint64_t *a, const uint64_t *b)
{
  uint32_t t = 0, fl = in->flags;
  unsigned cmp = in->mode;

  if (in->type == PTX_T_F64)
    PX_FOR(mask, t |= (uint32_t)px_cmp_f(px_f64(a[l]), px_f64(b[l]), cmp)
                      << l);
  else
    PX_FOR(mask, t |= (uint32_t)px_cmp_f(IN32(a, l), IN32(b, l), cmp) << l);
  return t;
}

int px_h_setp_f(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  unsigned base = (in->flags & PTX_F_PAIR) ? 2 : 1;
  const uint64_t *a = px_src(w, in, base), *b = px_src(w, in, base + 1);

  px_setp_out(w, in, mask, px_fcmp(in, mask, a, b), base + 2);
  return PX_NEXT;
}

/* setp on halves; for .f16x2 "p|q" gets the low and the high half's
   results (not a complement). */
int px_h_setp_h(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  unsigned base = (in->flags & PTX_F_PAIR) ? 2 : 1;
  const uint64_t *a = px_src(w, in, base), *b = px_src(w, in, base + 1);
  int bf16 = hbf(in->type);
  uint32_t fl = in->flags, t0 = 0, t1 = 0;
  unsigned cmp = in->mode;
  int x2 = in->type == PTX_T_F16X2 || in->type == PTX_T_BF16X2;

  PX_FOR(mask, {
    t0 |= (uint32_t)px_cmp_f(hin(a[l], 0, bf16, fl), hin(b[l], 0, bf16, fl),
                             cmp) << l;
    if (x2)
      t1 |= (uint32_t)px_cmp_f(hin(a[l], 1, bf16, fl),
                               hin(b[l], 1, bf16, fl), cmp) << l;
  });
  if (!x2) {
    px_setp_out(w, in, mask, t0, base + 2);
    return PX_NEXT;
  }
  {
    uint64_t *p = px_dst(w, in, 0);
    uint64_t *q = in->ops[1].kind == PTX_O_REG ? px_dst(w, in, 1) : NULL;
    const uint64_t *c = in->nops > base + 2 ? px_src(w, in, base + 2) : NULL;
    uint64_t cn = c ? PNEG(base + 2) : 0;
    unsigned bop = in->mode2;
    PX_FOR(mask, {
      uint64_t r0 = (t0 >> l) & 1, r1 = (t1 >> l) & 1;
      if (c && bop) {
        uint64_t cv = (c[l] ^ cn) & 1;
        r0 = bop == PTX_BOOL_AND ? r0 & cv : bop == PTX_BOOL_OR ? r0 | cv
                                                                : r0 ^ cv;
        r1 = bop == PTX_BOOL_AND ? r1 & cv : bop == PTX_BOOL_OR ? r1 | cv
                                                                : r1 ^ cv;
      }
      p[l] = r0;
      if (q)
        q[l] = r1;
    });
  }
  return PX_NEXT;
}

/*
 * set.cmp.dtype.stype d, a, b[, c]: all ones of the destination's width
 * when true for an integer destination, 1.0 for a float one.  With a
 * packed .f16x2/.bf16x2 source each half of d gets its half's result
 * (0xffff or 1.0 in the destination's half format).
 */
int px_h_set(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  const uint64_t *a = px_src(w, in, 1), *b = px_src(w, in, 2);
  const uint64_t *c = in->nops > 3 ? px_src(w, in, 3) : NULL;
  uint64_t cn = c ? PNEG(3) : 0;
  uint64_t *d = px_dst(w, in, 0);
  unsigned st = in->type, dt = in->type2;
  int x2 = st == PTX_T_F16X2 || st == PTX_T_BF16X2;
  uint32_t t0 = 0, t1 = 0, fl = in->flags;
  uint64_t one;

  if (st == PTX_T_F32 || st == PTX_T_F64) {
    t0 = px_fcmp(in, mask, a, b);
  } else if (px_is_half(st)) {
    int bf16 = hbf(st);
    unsigned cmp = in->mode;
    PX_FOR(mask, {
      t0 |= (uint32_t)px_cmp_f(hin(a[l], 0, bf16, fl), hin(b[l], 0, bf16, fl),
                               cmp) << l;
      if (x2)
        t1 |= (uint32_t)px_cmp_f(hin(a[l], 1, bf16, fl),
                                 hin(b[l], 1, bf16, fl), cmp) << l;
    });
  } else {
    t0 = px_icmp(in, mask, a, b, ptx_type_size(st), px_is_sint(st));
  }
  switch (dt) {
  case PTX_T_F32: one = 0x3f800000u; break;
  case PTX_T_F16:
  case PTX_T_F16X2: one = 0x3c00; break;
  case PTX_T_BF16:
  case PTX_T_BF16X2: one = 0x3f80; break;
  default:
    one = x2 ? 0xffff : ptx_type_size(dt) == 2 ? 0xffff : 0xffffffffu;
    break;
  }
  PX_FOR(mask, {
    uint64_t r0 = (t0 >> l) & 1, r1 = (t1 >> l) & 1;
    if (c) {
      uint64_t cv = (c[l] ^ cn) & 1;
      switch (in->mode2) {
      case PTX_BOOL_AND: r0 &= cv; r1 &= cv; break;
      case PTX_BOOL_OR: r0 |= cv; r1 |= cv; break;
      default: r0 ^= cv; r1 ^= cv; break;
      }
    }
    d[l] = (r0 ? one : 0) | (x2 && r1 ? one << 16 : 0);
  });
  return PX_NEXT;
}

int px_h_selp(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  SRC(2);
  SRC(3);
  DST(0);
  uint64_t cn = PNEG(3);

  PX_FOR(mask, d0[l] = ((s3[l] ^ cn) & 1) ? s1[l] : s2[l]);
  return PX_NEXT;
}

/* slct.dtype.ctype d, a, b, c: a when c >= 0 (c is s32 or f32). */
int px_h_slct(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  SRC(1);
  SRC(2);
  SRC(3);
  DST(0);

  if (in->type2 == PTX_T_F32) {
    uint32_t fl = in->flags;
    PX_FOR(mask, d0[l] = IN32(s3, l) >= 0.0f ? s1[l] : s2[l]);
  } else {
    PX_FOR(mask, d0[l] = (int32_t)s3[l] >= 0 ? s1[l] : s2[l]);
  }
  return PX_NEXT;
}

/* ---- selection ------------------------------------------------------------- */

/* Operand shape: c per operand: 'd' destination register, 's' source
   (register, immediate, special register or symbol), 'p' a predicate
   source (register, maybe negated, or immediate). */
static int px_shape(const struct ptx_insn *in, const char *sh)
{
  unsigned n = (unsigned)strlen(sh);

  if (in->nops != n)
    return 0;
  for (unsigned k = 0; k < n; k++) {
    unsigned kind = in->ops[k].kind;
    switch (sh[k]) {
    case 'd':
      if (kind != PTX_O_REG)
        return 0;
      break;
    case 's':
    case 'p':
      if (kind != PTX_O_REG && kind != PTX_O_IMM && kind != PTX_O_SREG &&
          kind != PTX_O_SYM)
        return 0;
      break;
    default:
      return 0;
    }
  }
  return 1;
}

#define SEL(x)                                                               \
  do {                                                                       \
    *xop = PX_X_##x;                                                         \
    return 0;                                                                \
  } while (0)

static int px_sel_float(const struct ptx_insn *in, uint32_t *xop)
{
  unsigned t = in->type, rnd = in->rnd;
  uint32_t fl = in->flags;
  int f32 = t == PTX_T_F32, f64 = t == PTX_T_F64;
  int frnd = rnd <= PTX_RND_RP;
  int ok3 = px_shape(in, "dss"), ok2 = px_shape(in, "ds"),
      ok4 = px_shape(in, "dsss");
  uint32_t extra32 = fl & ~(PTX_F_FTZ | PTX_F_SAT);
  uint32_t extra64 = fl;

  if (!f32 && !f64)
    return -ENOTSUP;
  switch (in->op) {
  case PTX_OP_ADD:
  case PTX_OP_SUB:
  case PTX_OP_MUL:
    if (!ok3 || !frnd || (f32 ? extra32 : extra64))
      return -ENOTSUP;
    if (in->op == PTX_OP_ADD)
      *xop = f32 ? PX_X_fadd32 : PX_X_fadd64;
    else if (in->op == PTX_OP_SUB)
      *xop = f32 ? PX_X_fsub32 : PX_X_fsub64;
    else
      *xop = f32 ? PX_X_fmul32 : PX_X_fmul64;
    return 0;
  case PTX_OP_FMA:
  case PTX_OP_MAD:
    /* mad.rnd.f32 is fma; mad.f32 without rounding is sm_1x only */
    if (!ok4 || rnd < PTX_RND_RN || rnd > PTX_RND_RP ||
        (f32 ? extra32 : extra64))
      return -ENOTSUP;
    if (f64)
      SEL(ffma64);
    *xop = __builtin_cpu_supports("fma") ? PX_X_ffma32_hw : PX_X_ffma32;
    return 0;
  case PTX_OP_DIV:
    if (!ok3)
      return -ENOTSUP;
    if (f32) {
      if (fl & (PTX_F_APPROX | PTX_F_FULL)) {
        if (rnd || (fl & ~(PTX_F_APPROX | PTX_F_FULL | PTX_F_FTZ)))
          return -ENOTSUP;
      } else if (rnd < PTX_RND_RN || rnd > PTX_RND_RP ||
                 (fl & ~PTX_F_FTZ)) {
        return -ENOTSUP;
      }
      SEL(fdiv32);
    }
    if (rnd < PTX_RND_RN || rnd > PTX_RND_RP || fl)
      return -ENOTSUP;
    SEL(fdiv64);
  case PTX_OP_RCP:
  case PTX_OP_SQRT:
    if (!ok2)
      return -ENOTSUP;
    if (fl & PTX_F_APPROX) {
      if (rnd || (fl & ~(PTX_F_APPROX | PTX_F_FTZ)))
        return -ENOTSUP;
      if (f64 && (in->op == PTX_OP_SQRT || !(fl & PTX_F_FTZ)))
        return -ENOTSUP; /* rcp.approx.ftz.f64 only */
    } else if (rnd < PTX_RND_RN || rnd > PTX_RND_RP ||
               (fl & ~(f32 ? PTX_F_FTZ : 0))) {
      return -ENOTSUP;
    }
    *xop = in->op == PTX_OP_RCP ? PX_X_frcp : PX_X_fsqrt;
    return 0;
  case PTX_OP_RSQRT:
    if (!ok2 || !(fl & PTX_F_APPROX) || rnd ||
        (fl & ~(PTX_F_APPROX | PTX_F_FTZ)))
      return -ENOTSUP;
    SEL(frsqrt);
  case PTX_OP_SIN:
  case PTX_OP_COS:
  case PTX_OP_LG2:
  case PTX_OP_EX2:
  case PTX_OP_TANH:
    if (!f32 || !ok2 || !(fl & PTX_F_APPROX) || rnd ||
        (fl & ~(PTX_F_APPROX | PTX_F_FTZ)))
      return -ENOTSUP;
    switch (in->op) {
    case PTX_OP_SIN: SEL(fsin);
    case PTX_OP_COS: SEL(fcos);
    case PTX_OP_LG2: SEL(flg2);
    case PTX_OP_EX2: SEL(fex2);
    default: SEL(ftanh);
    }
  case PTX_OP_ABS:
  case PTX_OP_NEG:
    if (!ok2 || rnd || (fl & ~(f32 ? PTX_F_FTZ : 0)))
      return -ENOTSUP;
    *xop = in->op == PTX_OP_ABS ? PX_X_fabs : PX_X_fneg;
    return 0;
  case PTX_OP_MIN:
  case PTX_OP_MAX:
    if (!ok3 || rnd ||
        (fl & ~(f32 ? PTX_F_FTZ | PTX_F_NAN | PTX_F_XORSIGN | PTX_F_ABS : 0)))
      return -ENOTSUP;
    *xop = in->op == PTX_OP_MIN ? PX_X_fmin : PX_X_fmax;
    return 0;
  case PTX_OP_COPYSIGN:
    if (!ok3 || rnd || fl)
      return -ENOTSUP;
    SEL(fcopysign);
  case PTX_OP_TESTP:
    if (!ok2 || rnd || fl || in->mode < PTX_TESTP_FINITE ||
        in->mode > PTX_TESTP_SUBNORMAL)
      return -ENOTSUP;
    SEL(ftestp);
  default:
    return -ENOTSUP;
  }
}

static int px_sel_halfop(const struct ptx_insn *in, uint32_t *xop)
{
  unsigned t = in->type, rnd = in->rnd;
  uint32_t fl = in->flags;
  int bf16 = hbf(t);
  /* .ftz and .sat exist for f16 only */
  uint32_t allowed = bf16 ? 0 : PTX_F_FTZ | PTX_F_SAT;

  if (!px_is_half(t))
    return -ENOTSUP;
  switch (in->op) {
  case PTX_OP_ADD:
  case PTX_OP_SUB:
  case PTX_OP_MUL:
    if (!px_shape(in, "dss") || (rnd && rnd != PTX_RND_RN) ||
        (fl & ~allowed))
      return -ENOTSUP;
    *xop = in->op == PTX_OP_ADD ? PX_X_hadd
           : in->op == PTX_OP_SUB ? PX_X_hsub : PX_X_hmul;
    return 0;
  case PTX_OP_FMA:
    if (!px_shape(in, "dsss") || (rnd && rnd != PTX_RND_RN) ||
        (fl & ~(allowed | PTX_F_RELU)))
      return -ENOTSUP;
    SEL(hfma);
  case PTX_OP_MIN:
  case PTX_OP_MAX:
    if (!px_shape(in, "dss") || rnd ||
        (fl & ~((bf16 ? 0 : PTX_F_FTZ) | PTX_F_NAN | PTX_F_XORSIGN |
                PTX_F_ABS)))
      return -ENOTSUP;
    *xop = in->op == PTX_OP_MIN ? PX_X_hmin : PX_X_hmax;
    return 0;
  case PTX_OP_ABS:
  case PTX_OP_NEG:
    if (!px_shape(in, "ds") || rnd || (fl & ~(bf16 ? 0 : PTX_F_FTZ)))
      return -ENOTSUP;
    *xop = in->op == PTX_OP_ABS ? PX_X_habs : PX_X_hneg;
    return 0;
  case PTX_OP_EX2:
  case PTX_OP_TANH:
    if (!px_shape(in, "ds") || rnd || !(fl & PTX_F_APPROX) ||
        (fl & ~(PTX_F_APPROX | PTX_F_FTZ)))
      return -ENOTSUP;
    *xop = in->op == PTX_OP_EX2 ? PX_X_hex2 : PX_X_htanh;
    return 0;
  default:
    return -ENOTSUP;
  }
}

static int px_sel_cmp(const struct ptx_insn *in, uint32_t *xop,
                      uint32_t *xaux)
{
  unsigned t = in->type, base, n;
  int isf = t == PTX_T_F32 || t == PTX_T_F64;

  switch (in->op) {
  case PTX_OP_SETP:
    base = (in->flags & PTX_F_PAIR) ? 2 : 1;
    n = in->nops;
    if (n != base + 2 && n != base + 3)
      return -ENOTSUP;
    if (in->ops[0].kind != PTX_O_REG)
      return -ENOTSUP;
    if ((n == base + 3) != (in->mode2 != PTX_BOOL_NONE) ||
        in->mode2 == PTX_BOOL_POPC)
      return -ENOTSUP;
    if (in->mode < PTX_CMP_EQ || in->mode > PTX_CMP_NAN)
      return -ENOTSUP;
    if (px_is_int3(t)) {
      if (in->mode > PTX_CMP_HS || in->flags & ~PTX_F_PAIR)
        return -ENOTSUP;
      *xaux = ptx_type_size(t) | (uint32_t)px_is_sint(t) << 8;
      SEL(setp_i);
    }
    if (isf) {
      if (in->flags & ~(PTX_F_PAIR | (t == PTX_T_F32 ? PTX_F_FTZ : 0)))
        return -ENOTSUP;
      if (in->mode >= PTX_CMP_LO && in->mode <= PTX_CMP_HS)
        return -ENOTSUP;
      SEL(setp_f);
    }
    if (px_is_half(t)) {
      if (in->flags & ~(PTX_F_PAIR | (hbf(t) ? 0 : PTX_F_FTZ)))
        return -ENOTSUP;
      if (in->mode >= PTX_CMP_LO && in->mode <= PTX_CMP_HS)
        return -ENOTSUP;
      if ((t == PTX_T_F16X2 || t == PTX_T_BF16X2) &&
          !(in->flags & PTX_F_PAIR))
        return -ENOTSUP;
      SEL(setp_h);
    }
    return -ENOTSUP;
  case PTX_OP_SET:
    if (in->nops != 3 && in->nops != 4)
      return -ENOTSUP;
    if (in->ops[0].kind != PTX_O_REG || (in->flags & PTX_F_PAIR))
      return -ENOTSUP;
    if ((in->nops == 4) != (in->mode2 != PTX_BOOL_NONE) ||
        in->mode2 == PTX_BOOL_POPC)
      return -ENOTSUP;
    if (in->mode < PTX_CMP_EQ || in->mode > PTX_CMP_NAN)
      return -ENOTSUP;
    {
      unsigned dt = in->type2;
      int dint = dt == PTX_T_U32 || dt == PTX_T_S32 || dt == PTX_T_U16 ||
                 dt == PTX_T_S16;
      int ucmp = in->mode >= PTX_CMP_LO && in->mode <= PTX_CMP_HS;
      if (px_is_int3(t)) {
        if (in->mode > PTX_CMP_HS || in->flags ||
            (!dint && dt != PTX_T_F32 && dt != PTX_T_F16 &&
             dt != PTX_T_BF16))
          return -ENOTSUP;
        SEL(set);
      }
      if (ucmp)
        return -ENOTSUP;
      if (isf) {
        if ((in->flags & ~(t == PTX_T_F32 ? PTX_F_FTZ : 0)) ||
            (!dint && dt != PTX_T_F32 && dt != PTX_T_F16 &&
             dt != PTX_T_BF16))
          return -ENOTSUP;
        SEL(set);
      }
      if (px_is_half(t)) {
        int x2 = t == PTX_T_F16X2 || t == PTX_T_BF16X2;
        if (in->flags & ~(hbf(t) ? 0 : PTX_F_FTZ))
          return -ENOTSUP;
        if (x2 ? !(dt == t || dt == PTX_T_U32 || dt == PTX_T_S32)
               : !(dint || dt == PTX_T_F16 || dt == PTX_T_BF16 ||
                   dt == PTX_T_F32))
          return -ENOTSUP;
        SEL(set);
      }
    }
    return -ENOTSUP;
  case PTX_OP_SELP:
    if (!px_shape(in, "dssp") || t == PTX_T_PRED || !ptx_type_size(t) ||
        ptx_type_size(t) > 8 || in->flags)
      return -ENOTSUP;
    SEL(selp);
  case PTX_OP_SLCT:
    if (!px_shape(in, "dsss") || ptx_type_size(t) < 2 ||
        ptx_type_size(t) > 8 || t == PTX_T_PRED ||
        (in->type2 != PTX_T_S32 && in->type2 != PTX_T_F32) ||
        (in->flags & ~(in->type2 == PTX_T_F32 ? PTX_F_FTZ : 0)))
      return -ENOTSUP;
    SEL(slct);
  default:
    return -ENOTSUP;
  }
}

int px_sel_alu(const struct ptx_insn *in, uint32_t *xop, uint32_t *xaux)
{
  unsigned t = in->type, sz = ptx_type_size(t), sgn = px_is_sint(t);
  uint32_t fl = in->flags;
  int ar = px_is_int3(t) && !(t >= PTX_T_B8 && t <= PTX_T_B128);

  *xaux = sz | sgn << 8;
  if (px_sel_cmp(in, xop, xaux) == 0)
    return 0;
  if (t == PTX_T_F32 || t == PTX_T_F64)
    return px_sel_float(in, xop);
  if (px_is_half(t) && in->op != PTX_OP_MOV && in->op != PTX_OP_CVT &&
      in->op != PTX_OP_LD && in->op != PTX_OP_ST)
    return px_sel_halfop(in, xop);
  switch (in->op) {
  case PTX_OP_ADD:
  case PTX_OP_SUB:
    if (!ar || !px_shape(in, "dss") || in->rnd)
      return -ENOTSUP;
    if (fl & ~(PTX_F_SAT | PTX_F_CC))
      return -ENOTSUP;
    if ((fl & PTX_F_SAT) && (t != PTX_T_S32 || (fl & PTX_F_CC)))
      return -ENOTSUP;
    if ((fl & PTX_F_CC) && sz < 4)
      return -ENOTSUP;
    *xop = in->op == PTX_OP_ADD ? PX_X_iadd : PX_X_isub;
    return 0;
  case PTX_OP_ADDC:
  case PTX_OP_SUBC:
    if (!ar || sz < 4 || !px_shape(in, "dss") || (fl & ~PTX_F_CC))
      return -ENOTSUP;
    *xop = in->op == PTX_OP_ADDC ? PX_X_iaddc : PX_X_isubc;
    return 0;
  case PTX_OP_MUL:
    if (!ar || !px_shape(in, "dss") || fl || in->mode < PTX_MUL_LO ||
        in->mode > PTX_MUL_WIDE || (in->mode == PTX_MUL_WIDE && sz == 8))
      return -ENOTSUP;
    SEL(imul);
  case PTX_OP_MAD:
    if (!ar || !px_shape(in, "dsss") || in->mode < PTX_MUL_LO ||
        in->mode > PTX_MUL_WIDE || (in->mode == PTX_MUL_WIDE && sz == 8))
      return -ENOTSUP;
    if (fl & ~(PTX_F_SAT | PTX_F_CC))
      return -ENOTSUP;
    if ((fl & PTX_F_SAT) && (t != PTX_T_S32 || in->mode != PTX_MUL_HI ||
                             (fl & PTX_F_CC)))
      return -ENOTSUP;
    if ((fl & PTX_F_CC) && (sz < 4 || in->mode == PTX_MUL_WIDE))
      return -ENOTSUP;
    SEL(imad);
  case PTX_OP_MADC:
    if (!ar || sz < 4 || !px_shape(in, "dsss") || (fl & ~PTX_F_CC) ||
        (in->mode != PTX_MUL_LO && in->mode != PTX_MUL_HI))
      return -ENOTSUP;
    SEL(imadc);
  case PTX_OP_MUL24:
  case PTX_OP_MAD24:
    if ((t != PTX_T_U32 && t != PTX_T_S32) ||
        (in->mode != PTX_MUL_LO && in->mode != PTX_MUL_HI))
      return -ENOTSUP;
    if (in->op == PTX_OP_MUL24) {
      if (!px_shape(in, "dss") || fl)
        return -ENOTSUP;
      SEL(imul24);
    }
    if (!px_shape(in, "dsss") || (fl & ~PTX_F_SAT) ||
        ((fl & PTX_F_SAT) && (t != PTX_T_S32 || in->mode != PTX_MUL_HI)))
      return -ENOTSUP;
    SEL(imad24);
  case PTX_OP_SAD:
    if (!ar || !px_shape(in, "dsss") || fl)
      return -ENOTSUP;
    SEL(isad);
  case PTX_OP_DIV:
  case PTX_OP_REM:
    if (!ar || !px_shape(in, "dss") || fl || in->rnd)
      return -ENOTSUP;
    *xop = in->op == PTX_OP_DIV ? PX_X_idiv : PX_X_irem;
    return 0;
  case PTX_OP_ABS:
  case PTX_OP_NEG:
    if (!sgn || sz < 2 || !px_shape(in, "ds") || fl)
      return -ENOTSUP;
    *xop = in->op == PTX_OP_ABS ? PX_X_iabs : PX_X_ineg;
    return 0;
  case PTX_OP_MIN:
  case PTX_OP_MAX:
    if (!ar || !px_shape(in, "dss") ||
        (fl & ~(t == PTX_T_S32 ? PTX_F_RELU : 0)))
      return -ENOTSUP;
    *xop = in->op == PTX_OP_MIN ? PX_X_imin : PX_X_imax;
    return 0;
  case PTX_OP_AND:
  case PTX_OP_OR:
  case PTX_OP_XOR:
    if (!px_shape(in, "dss") || fl)
      return -ENOTSUP;
    if (t == PTX_T_PRED) {
      *xop = in->op == PTX_OP_AND ? PX_X_pand
             : in->op == PTX_OP_OR ? PX_X_por : PX_X_pxor;
      return 0;
    }
    if (!px_is_int3(t))
      return -ENOTSUP;
    *xop = in->op == PTX_OP_AND ? PX_X_and
           : in->op == PTX_OP_OR ? PX_X_or : PX_X_xor;
    return 0;
  case PTX_OP_NOT:
    if (!px_shape(in, "ds") || fl)
      return -ENOTSUP;
    if (t == PTX_T_PRED)
      SEL(pnot);
    if (!px_is_int3(t))
      return -ENOTSUP;
    SEL(not);
  case PTX_OP_CNOT:
    if (!px_is_int3(t) || !px_shape(in, "ds") || fl)
      return -ENOTSUP;
    SEL(cnot);
  case PTX_OP_SHL:
  case PTX_OP_SHR:
    if (!px_is_int3(t) || !px_shape(in, "dss") || fl)
      return -ENOTSUP;
    *xop = in->op == PTX_OP_SHL ? PX_X_shl : PX_X_shr;
    return 0;
  case PTX_OP_SHF:
    if (t != PTX_T_B32 || !px_shape(in, "dsss") || fl ||
        (in->mode != PTX_SHF_L && in->mode != PTX_SHF_R))
      return -ENOTSUP;
    SEL(shf);
  case PTX_OP_POPC:
  case PTX_OP_CLZ:
  case PTX_OP_BREV:
    if ((sz != 4 && sz != 8) || !px_is_int(t) || !px_shape(in, "ds") || fl)
      return -ENOTSUP;
    *xop = in->op == PTX_OP_POPC ? PX_X_popc
           : in->op == PTX_OP_CLZ ? PX_X_clz : PX_X_brev;
    return 0;
  case PTX_OP_BFE:
    if ((sz != 4 && sz != 8) || !ar || !px_shape(in, "dsss") || fl)
      return -ENOTSUP;
    SEL(bfe);
  case PTX_OP_BFI:
    if ((sz != 4 && sz != 8) || !px_is_int(t) || !px_shape(in, "dssss") || fl)
      return -ENOTSUP;
    SEL(bfi);
  case PTX_OP_BFIND:
    if ((sz != 4 && sz != 8) || !ar || !px_shape(in, "ds") ||
        (fl & ~PTX_F_SHIFTAMT))
      return -ENOTSUP;
    SEL(bfind);
  case PTX_OP_FNS:
    if (sz != 4 || !px_is_int(t) || !px_shape(in, "dsss") || fl)
      return -ENOTSUP;
    SEL(fns);
  case PTX_OP_PRMT:
    if (sz != 4 || !px_is_int(t) || !px_shape(in, "dsss") || fl ||
        in->mode > PTX_PRMT_RC16)
      return -ENOTSUP;
    SEL(prmt);
  case PTX_OP_LOP3:
    if (sz != 4 || !px_is_int(t) || in->nops != 5 ||
        in->ops[4].kind != PTX_O_IMM || fl)
      return -ENOTSUP;
    {
      struct ptx_insn t4 = *in;
      t4.nops = 4;
      if (!px_shape(&t4, "dsss"))
        return -ENOTSUP;
    }
    SEL(lop3);
  case PTX_OP_DP4A:
  case PTX_OP_DP2A:
    if ((t != PTX_T_U32 && t != PTX_T_S32) ||
        (in->type2 != PTX_T_U32 && in->type2 != PTX_T_S32) ||
        !px_shape(in, "dsss") || fl)
      return -ENOTSUP;
    if (in->op == PTX_OP_DP4A)
      SEL(dp4a);
    if (in->mode != PTX_MUL_LO && in->mode != PTX_MUL_HI)
      return -ENOTSUP;
    SEL(dp2a);
  default:
    return -ENOTSUP;
  }
}
