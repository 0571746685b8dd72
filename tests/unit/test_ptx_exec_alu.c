/*
 * test_ptx_exec_alu.c: instruction semantics with exact expected values:
 * integer arithmetic and carry chains, shifts and bit fields, floats in
 * every rounding mode with their special values, half precision,
 * conversions, comparisons and selection, moves.  Each case runs one
 * snippet over a few lanes (tl_op); the expected values are worked out by
 * hand from the PTX ISA, and agree with what a real GPU computes
 * (test_ptx_exec_nvcc.c checks 250k such results against one).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "test_ptx_exec_lib.h"

/* one lane per row: a, b, c -> expected %d */
struct r32 {
  uint32_t a, b, c, d;
};

/* one lane per row: A, B, C -> expected %D */
struct r64 {
  uint64_t A, B, C, D;
};

static void check32(const char *body, const struct r32 *r, unsigned n)
{
  struct top v[32];
  unsigned bad = 0;

  assert_true(n <= 32);
  memset(v, 0, sizeof(v));
  for (unsigned i = 0; i < n; i++) {
    v[i].a = r[i].a;
    v[i].b = r[i].b;
    v[i].c = r[i].c;
  }
  assert_int_equal(tl_op(body, v, n), 0);
  for (unsigned i = 0; i < n; i++)
    if (v[i].d != r[i].d) {
      fprintf(stderr, "%s\n  lane %u: a=0x%08x b=0x%08x c=0x%08x: got "
              "0x%08x, want 0x%08x\n", body, i, r[i].a, r[i].b, r[i].c,
              v[i].d, r[i].d);
      bad++;
    }
  assert_int_equal(bad, 0);
}

static void check64(const char *body, const struct r64 *r, unsigned n)
{
  struct top v[32];
  unsigned bad = 0;

  assert_true(n <= 32);
  memset(v, 0, sizeof(v));
  for (unsigned i = 0; i < n; i++) {
    v[i].A = r[i].A;
    v[i].B = r[i].B;
    v[i].C = r[i].C;
    v[i].a = (uint32_t)r[i].A;
    v[i].b = (uint32_t)r[i].B;
    v[i].c = (uint32_t)r[i].C;
  }
  assert_int_equal(tl_op(body, v, n), 0);
  for (unsigned i = 0; i < n; i++)
    if (v[i].D != r[i].D) {
      fprintf(stderr, "%s\n  lane %u: A=0x%016llx B=0x%016llx: got "
              "0x%016llx, want 0x%016llx\n", body, i,
              (unsigned long long)r[i].A, (unsigned long long)r[i].B,
              (unsigned long long)v[i].D, (unsigned long long)r[i].D);
      bad++;
    }
  assert_int_equal(bad, 0);
}

#define N(x) (sizeof(x) / sizeof((x)[0]))
#define CHECK32(body, ...)                                                   \
  do {                                                                       \
    static const struct r32 r_[] = {__VA_ARGS__};                            \
    check32(body, r_, N(r_));                                                \
  } while (0)
#define CHECK64(body, ...)                                                   \
  do {                                                                       \
    static const struct r64 r_[] = {__VA_ARGS__};                            \
    check64(body, r_, N(r_));                                                \
  } while (0)

/* ---- integers ---------------------------------------------------------------- */

static void test_int_arith(void **state)
{
  CHECK32("add.s32 %d, %a, %b;",
          {1, 2, 0, 3}, {0xffffffffu, 1, 0, 0}, {0x7fffffffu, 1, 0, 0x80000000u});
  CHECK32("add.sat.s32 %d, %a, %b;",
          {0x7fffffffu, 1, 0, 0x7fffffffu}, {0x80000000u, 0xffffffffu, 0,
                                             0x80000000u}, {5, 0xfffffffdu, 0, 2});
  CHECK32("sub.sat.s32 %d, %a, %b;", {0x80000000u, 1, 0, 0x80000000u},
          {0x7fffffffu, 0xffffffffu, 0, 0x7fffffffu});
  CHECK32("mul.lo.s32 %d, %a, %b;", {0x10000u, 0x10000u, 0, 0},
          {0xfffffffeu, 3, 0, 0xfffffffau});
  CHECK32("mul.hi.s32 %d, %a, %b;", {0x80000000u, 2, 0, 0xffffffffu},
          {0x40000000u, 8, 0, 2});
  CHECK32("mul.hi.u32 %d, %a, %b;", {0xffffffffu, 0xffffffffu, 0, 0xfffffffeu});
  CHECK64("mul.wide.s32 %D, %a, %b;", {0xfffffffeu, 3, 0, 0xfffffffffffffffaull},
          {0x80000000u, 0x80000000u, 0, 0x4000000000000000ull});
  CHECK64("mul.wide.u32 %D, %a, %b;",
          {0xffffffffu, 0xffffffffu, 0, 0xfffffffe00000001ull});
  CHECK64("mul.hi.u64 %D, %A, %B;",
          {0xffffffffffffffffull, 0xffffffffffffffffull, 0,
           0xfffffffffffffffeull});
  CHECK64("mul.hi.s64 %D, %A, %B;",
          {0x8000000000000000ull, 2, 0, 0xffffffffffffffffull});
  CHECK32("mad.lo.s32 %d, %a, %b, %c;", {3, 4, 5, 17},
          {0xffffffffu, 2, 1, 0xffffffffu});
  CHECK32("mad.hi.sat.s32 %d, %a, %b, %c;",
          {0x7fffffffu, 0x7fffffffu, 0x7fffffffu, 0x7fffffffu},
          {0x80000000u, 0x7fffffffu, 0x80000000u, 0x80000000u});
  CHECK64("mad.wide.u32 %D, %a, %b, %C;",
          {0xffffffffu, 2, 5, 0x1fffffffeull + 5});
  CHECK32("mul24.lo.s32 %d, %a, %b;", {0x00800000u, 2, 0, 0xff000000u},
          {0xff000003u, 5, 0, 15});
  CHECK32("mul24.hi.u32 %d, %a, %b;", {0xffffffu, 0xffffffu, 0, 0xfffffe00u});
  CHECK32("mad24.lo.u32 %d, %a, %b, %c;", {0x01000002u, 3, 4, 10});
  CHECK32("sad.s32 %d, %a, %b, %c;", {0xfffffffbu, 3, 10, 18});
  CHECK32("sad.u32 %d, %a, %b, %c;", {5, 3, 0, 2}, {3, 5, 1, 3});
  /* division by zero and overflow: all ones, as the GPU */
  CHECK32("div.s32 %d, %a, %b;", {7, 0, 0, 0xffffffffu},
          {0x80000000u, 0xffffffffu, 0, 0x80000000u},
          {0xfffffff9u, 2, 0, 0xfffffffdu});
  CHECK32("rem.s32 %d, %a, %b;", {7, 0, 0, 0xffffffffu},
          {0x80000000u, 0xffffffffu, 0, 0}, {0xfffffff9u, 2, 0, 0xffffffffu});
  CHECK32("div.u32 %d, %a, %b;", {7, 0, 0, 0xffffffffu}, {7, 2, 0, 3});
  CHECK32("rem.u32 %d, %a, %b;", {7, 0, 0, 0xffffffffu}, {7, 2, 0, 1});
  CHECK64("div.s64 %D, %A, %B;", {5, 0, 0, ~0ull},
          {0x8000000000000000ull, ~0ull, 0, 0x8000000000000000ull});
  CHECK32("abs.s32 %d, %a;", {0x80000000u, 0, 0, 0x80000000u},
          {0xfffffffbu, 0, 0, 5});
  CHECK32("neg.s32 %d, %a;", {0x80000000u, 0, 0, 0x80000000u},
          {5, 0, 0, 0xfffffffbu});
  CHECK32("min.s32 %d, %a, %b;", {0xffffffffu, 1, 0, 0xffffffffu});
  CHECK32("min.u32 %d, %a, %b;", {0xffffffffu, 1, 0, 1});
  CHECK32("max.s32 %d, %a, %b;", {0xffffffffu, 1, 0, 1});
  CHECK64("max.u64 %D, %A, %B;", {~0ull, 1, 0, ~0ull});
  CHECK32("{ .reg .s16 x; cvt.u16.u32 x, %a; add.s16 x, x, 1; "
          "cvt.s32.s16 %d, x; }", {0x7fff, 0, 0, 0xffff8000u});
}

static void test_carry_chains(void **state)
{
  /* carry out of a 32-bit add, into the next word */
  CHECK32("add.cc.u32 %t, %a, %b; addc.u32 %d, 0, 0;",
          {0xffffffffu, 1, 0, 1}, {0xfffffffeu, 1, 0, 0});
  CHECK32("add.cc.u32 %t, %a, %b; addc.cc.u32 %t, %c, 0; addc.u32 %d, 0, 0;",
          {0xffffffffu, 1, 0xffffffffu, 1}, {0xffffffffu, 1, 0xfffffffeu, 0});
  /* borrow out of a subtraction */
  CHECK32("sub.cc.u32 %t, %a, %b; subc.u32 %d, 0, 0;",
          {0, 1, 0, 0xffffffffu}, {1, 0, 0, 0});
  CHECK32("sub.cc.u32 %t, %a, %b; subc.cc.u32 %t, %c, 0; subc.u32 %d, 0, 0;",
          {0, 1, 0, 0xffffffffu}, {0, 1, 1, 0});
  /* 64-bit product of 32-bit words with carry into the high word */
  CHECK32("mad.lo.cc.u32 %t, %a, %b, %c; madc.hi.u32 %d, %a, %b, 0;",
          {0xffffffffu, 0xffffffffu, 2, 0xfffffffeu},
          {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu});
  CHECK64("add.cc.u64 %T, %A, %B; addc.u64 %D, 0, 0;", {~0ull, 1, 0, 1});
}

static void test_shifts_and_bits(void **state)
{
  CHECK32("shl.b32 %d, %a, %b;", {1, 31, 0, 0x80000000u}, {1, 32, 0, 0},
          {1, 40, 0, 0});
  CHECK32("shr.s32 %d, %a, %b;", {0x80000000u, 40, 0, 0xffffffffu},
          {0x80000000u, 4, 0, 0xf8000000u}, {0x40000000u, 33, 0, 0});
  CHECK32("shr.u32 %d, %a, %b;", {0x80000000u, 31, 0, 1},
          {0x80000000u, 32, 0, 0});
  CHECK64("shl.b64 %D, %A, %b;", {1, 63, 0, 0x8000000000000000ull},
          {1, 64, 0, 0});
  CHECK32("shf.l.wrap.b32 %d, %a, %b, %c;", {0x80000000u, 1, 1, 3},
          {0x80000000u, 1, 33, 3});
  CHECK32("shf.l.clamp.b32 %d, %a, %b, %c;", {0x80000000u, 1, 40, 0x80000000u});
  CHECK32("shf.r.wrap.b32 %d, %a, %b, %c;", {0xf0, 1, 4, 0x1000000fu});
  CHECK32("shf.r.clamp.b32 %d, %a, %b, %c;", {0xf0, 1, 40, 1});
  CHECK32("popc.b32 %d, %a;", {0xffffffffu, 0, 0, 32}, {0, 0, 0, 0},
          {0x80000001u, 0, 0, 2});
  CHECK64("popc.b64 %d, %A; cvt.u64.u32 %D, %d;",
          {0xffff0000ffffffffull, 0, 0, 48});
  CHECK32("clz.b32 %d, %a;", {0, 0, 0, 32}, {1, 0, 0, 31},
          {0x80000000u, 0, 0, 0});
  CHECK32("brev.b32 %d, %a;", {1, 0, 0, 0x80000000u},
          {0x12345678u, 0, 0, 0x1e6a2c48u});
  CHECK32("bfind.u32 %d, %a;", {0, 0, 0, 0xffffffffu}, {0x10, 0, 0, 4});
  CHECK32("bfind.shiftamt.u32 %d, %a;", {0x10, 0, 0, 27});
  CHECK32("bfind.s32 %d, %a;", {0xffffffffu, 0, 0, 0xffffffffu},
          {0xfffffff0u, 0, 0, 3}, {0x40, 0, 0, 6});
  CHECK32("bfe.u32 %d, %a, %b, %c;", {0xdeadbeefu, 8, 8, 0xbe},
          {0xdeadbeefu, 40, 8, 0}, {0xdeadbeefu, 28, 8, 0xd});
  CHECK32("bfe.s32 %d, %a, %b, %c;", {0xdeadbeefu, 8, 8, 0xffffffbeu},
          {0x80000000u, 31, 8, 0xffffffffu}, {0x12345678u, 4, 0, 0});
  CHECK32("bfi.b32 %d, %a, %b, %c, 4;", {0xff, 0, 4, 0xf0},
          {0xff, 0, 28, 0xf0000000u}, {0x5, 0xffffffffu, 0, 0xfffffff5u});
  CHECK32("prmt.b32 %d, %a, %b, %c;",
          {0x03020100u, 0x07060504u, 0x3210, 0x03020100u},
          {0x03020100u, 0x07060504u, 0x7654, 0x07060504u},
          {0x03020100u, 0x07060504u, 0x0145, 0x00010405u},
          {0x80000000u, 0, 0x000b, 0x000000ffu});
  CHECK32("prmt.b32.f4e %d, %a, %b, %c;",
          {0x03020100u, 0x07060504u, 1, 0x04030201u},
          {0x03020100u, 0x07060504u, 0xfd, 0x04030201u});
  CHECK32("prmt.b32.b4e %d, %a, %b, %c;",
          {0x03020100u, 0x07060504u, 0, 0x05060700u});
  CHECK32("prmt.b32.rc8 %d, %a, %b, %c;",
          {0x03020100u, 0x07060504u, 2, 0x02020202u});
  CHECK32("prmt.b32.ecl %d, %a, %b, %c;",
          {0x03020100u, 0x07060504u, 1, 0x03020101u});
  CHECK32("prmt.b32.ecr %d, %a, %b, %c;",
          {0x03020100u, 0x07060504u, 2, 0x02020100u});
  CHECK32("prmt.b32.rc16 %d, %a, %b, %c;",
          {0x03020100u, 0x07060504u, 1, 0x03020302u});
  CHECK32("lop3.b32 %d, %a, %b, %c, 0x96;",
          {0xff00ff00u, 0xf0f0f0f0u, 0xccccccccu, 0xff00ff00u ^ 0xf0f0f0f0u ^
                                                   0xccccccccu});
  CHECK32("lop3.b32 %d, %a, %b, %c, 0xe8;", {0xc, 0xa, 0x6, 0xe});
  CHECK32("fns.b32 %d, %a, %b, %c;", {0xf0, 0, 1, 4}, {0xf0, 0, 3, 6},
          {0xf0, 31, 0xffffffffu, 7}, {0xf0, 0, 5, 0xffffffffu});
  CHECK32("dp4a.s32.s32 %d, %a, %b, %c;", {0xff01ff01u, 0x01010101u, 10, 10});
  CHECK32("dp4a.u32.u32 %d, %a, %b, %c;", {0xff01ff01u, 0x01010101u, 10, 522});
  CHECK32("cnot.b32 %d, %a;", {0, 0, 0, 1}, {5, 0, 0, 0});
  CHECK32("not.b32 %d, %a;", {0, 0, 0, 0xffffffffu});
  CHECK32("and.pred %p, %pa, !%pb; selp.u32 %d, 1, 0, %p;", {1, 0, 0, 1},
          {1, 1, 0, 0});
  CHECK32("xor.pred %p, %pa, %pb; not.pred %q, %p; selp.u32 %d, 1, 0, %q;",
          {1, 1, 0, 1}, {1, 0, 0, 0});
}

/* ---- floats ------------------------------------------------------------------ */

static void test_f32_rounding(void **state)
{
  /* 1 + 2^-24: exactly half an ulp of 1 */
  CHECK32("add.rn.f32 %fd, %fa, %fb; mov.b32 %d, %fd;",
          {0x3f800000u, 0x33800000u, 0, 0x3f800000u});
  CHECK32("add.rp.f32 %fd, %fa, %fb; mov.b32 %d, %fd;",
          {0x3f800000u, 0x33800000u, 0, 0x3f800001u},
          {0xbf800000u, 0xb3800000u, 0, 0xbf800000u});
  CHECK32("add.rm.f32 %fd, %fa, %fb; mov.b32 %d, %fd;",
          {0xbf800000u, 0xb3800000u, 0, 0xbf800001u});
  CHECK32("add.rz.f32 %fd, %fa, %fb; mov.b32 %d, %fd;",
          {0x3f800000u, 0x33800000u, 0, 0x3f800000u});
  CHECK32("div.rn.f32 %fd, %fa, %fb; mov.b32 %d, %fd;",
          {0x3f800000u, 0x40400000u, 0, 0x3eaaaaabu});
  CHECK32("div.rz.f32 %fd, %fa, %fb; mov.b32 %d, %fd;",
          {0x3f800000u, 0x40400000u, 0, 0x3eaaaaaau});
  CHECK32("div.rm.f32 %fd, %fa, %fb; mov.b32 %d, %fd;",
          {0x3f800000u, 0x40400000u, 0, 0x3eaaaaaau});
  CHECK32("sqrt.rn.f32 %fd, %fa; mov.b32 %d, %fd;",
          {0x40000000u, 0, 0, 0x3fb504f3u}, {0xbf800000u, 0, 0, 0x7fffffffu});
  CHECK32("sqrt.rp.f32 %fd, %fa; mov.b32 %d, %fd;",
          {0x40000000u, 0, 0, 0x3fb504f4u});
  /* (1 + 2^-12)^2 - 1 rounded once: 2^-11 + 2^-24 */
  CHECK32("fma.rn.f32 %fd, %fa, %fb, %fc; mov.b32 %d, %fd;",
          {0x3f800800u, 0x3f800800u, 0xbf800000u, 0x3a000400u});
  CHECK32("mul.rn.f32 %fd, %fa, %fb; add.rn.f32 %fd, %fd, %fc; "
          "mov.b32 %d, %fd;",
          {0x3f800800u, 0x3f800800u, 0xbf800000u, 0x3a000000u});
  CHECK32("rcp.rn.f32 %fd, %fa; mov.b32 %d, %fd;",
          {0x40000000u, 0, 0, 0x3f000000u}, {0, 0, 0, 0x7f800000u});
}

static void test_f32_special(void **state)
{
  /* NaN results are canonical whatever the inputs */
  CHECK32("add.f32 %fd, %fa, %fb; mov.b32 %d, %fd;",
          {0x7fa00001u, 0x3f800000u, 0, 0x7fffffffu},
          {0x7f800000u, 0xff800000u, 0, 0x7fffffffu});
  CHECK32("neg.f32 %fd, %fa; mov.b32 %d, %fd;",
          {0x7fc00000u, 0, 0, 0x7fffffffu}, {0, 0, 0, 0x80000000u});
  CHECK32("abs.f32 %fd, %fa; mov.b32 %d, %fd;",
          {0x80000000u, 0, 0, 0}, {0xffc12345u, 0, 0, 0x7fffffffu});
  /* min/max: a NaN operand is ignored; -0 < +0 */
  CHECK32("min.f32 %fd, %fa, %fb; mov.b32 %d, %fd;",
          {0x80000000u, 0, 0, 0x80000000u}, {0, 0x80000000u, 0, 0x80000000u},
          {0x7fc00000u, 0x3f800000u, 0, 0x3f800000u},
          {0x7fc00000u, 0x7fc00000u, 0, 0x7fffffffu});
  CHECK32("max.f32 %fd, %fa, %fb; mov.b32 %d, %fd;",
          {0x80000000u, 0, 0, 0}, {0x3f800000u, 0x7fc00000u, 0, 0x3f800000u});
  CHECK32("min.NaN.f32 %fd, %fa, %fb; mov.b32 %d, %fd;",
          {0x7fc00000u, 0x3f800000u, 0, 0x7fffffffu});
  /* flush to zero, saturation */
  CHECK32("add.ftz.f32 %fd, %fa, %fb; mov.b32 %d, %fd;",
          {1, 0, 0, 0}, {0x80000001u, 0x80000000u, 0, 0x80000000u});
  CHECK32("mul.f32 %fd, %fa, %fb; mov.b32 %d, %fd;",
          {0x00800000u, 0x3f000000u, 0, 0x00400000u});
  CHECK32("mul.ftz.f32 %fd, %fa, %fb; mov.b32 %d, %fd;",
          {0x00800000u, 0x3f000000u, 0, 0});
  CHECK32("add.sat.f32 %fd, %fa, %fb; mov.b32 %d, %fd;",
          {0x3f400000u, 0x3f000000u, 0, 0x3f800000u},
          {0xbf800000u, 0x3f000000u, 0, 0}, {0x7fc00000u, 0, 0, 0});
  CHECK32("testp.finite.f32 %p, %fa; selp.u32 %d, 1, 0, %p;",
          {0x7f800000u, 0, 0, 0}, {0x3f800000u, 0, 0, 1});
  CHECK32("testp.normal.f32 %p, %fa; selp.u32 %d, 1, 0, %p;",
          {0x00800000u, 0, 0, 1}, {1, 0, 0, 0}, {0, 0, 0, 0});
  CHECK32("testp.subnormal.f32 %p, %fa; selp.u32 %d, 1, 0, %p;",
          {1, 0, 0, 1}, {0x3f800000u, 0, 0, 0});
  CHECK32("testp.notanumber.f32 %p, %fa; selp.u32 %d, 1, 0, %p;",
          {0x7fc00000u, 0, 0, 1}, {0x7f800000u, 0, 0, 0});
  CHECK32("testp.infinite.f32 %p, %fa; selp.u32 %d, 1, 0, %p;",
          {0xff800000u, 0, 0, 1});
  CHECK32("copysign.f32 %fd, %fa, %fb; mov.b32 %d, %fd;",
          {0xbf800000u, 0x40000000u, 0, 0xc0000000u},
          {0x3f800000u, 0xc0000000u, 0, 0x40000000u});
  CHECK32("div.approx.f32 %fd, %fa, %fb; mov.b32 %d, %fd;",
          {0x3f800000u, 0x7f7fffffu, 0, 0}, {0x40000000u, 0x40000000u, 0,
                                             0x3f800000u});
}

static void test_f64(void **state)
{
  CHECK64("add.rp.f64 %Fd, %Fa, %Fb; mov.b64 %D, %Fd;",
          {0x3ff0000000000000ull, 0x3c30000000000000ull, 0,
           0x3ff0000000000001ull});
  CHECK64("add.rm.f64 %Fd, %Fa, %Fb; mov.b64 %D, %Fd;",
          {0x3ff0000000000000ull, 0x3c30000000000000ull, 0,
           0x3ff0000000000000ull});
  CHECK64("div.rn.f64 %Fd, %Fa, %Fb; mov.b64 %D, %Fd;",
          {0x3ff0000000000000ull, 0x4008000000000000ull, 0,
           0x3fd5555555555555ull});
  /* f64 NaNs propagate, quieted; invalid operations give the default */
  CHECK64("add.f64 %Fd, %Fa, %Fb; mov.b64 %D, %Fd;",
          {0x3ff0000000000000ull, 0x7ff0000000000001ull, 0,
           0x7ff8000000000001ull},
          {0x7ff0000000000000ull, 0xfff0000000000000ull, 0,
           0xfff8000000000000ull},
          {0x7ff8000000000000ull, 0x7ff0000000000001ull, 0,
           0x7ff8000000000001ull});
  CHECK64("fma.rn.f64 %Fd, %Fa, %Fb, %Fc; mov.b64 %D, %Fd;",
          {0x4000000000000000ull, 0x4008000000000000ull, 0x3ff0000000000000ull,
           0x401c000000000000ull});
  CHECK64("neg.f64 %Fd, %Fa; mov.b64 %D, %Fd;",
          {0x7ff0000000000001ull, 0, 0, 0x7ff8000000000001ull},
          {0x3ff0000000000000ull, 0, 0, 0xbff0000000000000ull});
  CHECK64("sqrt.rn.f64 %Fd, %Fa; mov.b64 %D, %Fd;",
          {0x4010000000000000ull, 0, 0, 0x4000000000000000ull});
}

static void test_conversions(void **state)
{
  CHECK32("cvt.rni.s32.f32 %d, %fa;", {0x40200000u, 0, 0, 2},
          {0x40600000u, 0, 0, 4}, {0xc0200000u, 0, 0, 0xfffffffeu});
  CHECK32("cvt.rzi.s32.f32 %d, %fa;", {0xc02ccccdu, 0, 0, 0xfffffffeu},
          {0x501502f9u, 0, 0, 0x7fffffffu}, {0xd01502f9u, 0, 0, 0x80000000u},
          {0x7fc00000u, 0, 0, 0});
  CHECK32("cvt.rmi.s32.f32 %d, %fa;", {0xc0066666u, 0, 0, 0xfffffffdu});
  CHECK32("cvt.rpi.s32.f32 %d, %fa;", {0x40066666u, 0, 0, 3});
  CHECK32("cvt.rzi.u32.f32 %d, %fa;", {0xc0a00000u, 0, 0, 0});
  CHECK64("cvt.rzi.s64.f64 %D, %Fa;", {0x7ff8000000000000ull, 0, 0,
                                       0x8000000000000000ull});
  CHECK64("cvt.rzi.s64.f32 %D, %fa;", {0x7fc00000u, 0, 0,
                                       0x8000000000000000ull});
  /* to half: ties to even, overflow by mode, subnormals */
  CHECK32("cvt.rn.f16.f32 %hd, %fa; cvt.u32.u16 %d, %hd;",
          {0x3f801000u, 0, 0, 0x3c00}, {0x3f803000u, 0, 0, 0x3c02},
          {0x477ff000u, 0, 0, 0x7c00}, {0x33d6bf95u, 0, 0, 0x0002},
          {0x7fc00000u, 0, 0, 0x7fff});
  CHECK32("cvt.rz.f16.f32 %hd, %fa; cvt.u32.u16 %d, %hd;",
          {0x477ff000u, 0, 0, 0x7bff});
  CHECK32("cvt.f32.f16 %fd, %ha; mov.b32 %d, %fd;", {1, 0, 0, 0x33800000u},
          {0x7bff, 0, 0, 0x477fe000u}, {0xfc00, 0, 0, 0xff800000u});
  CHECK32("cvt.rn.bf16.f32 %hd, %fa; cvt.u32.u16 %d, %hd;",
          {0x3f808000u, 0, 0, 0x3f80}, {0x3f818000u, 0, 0, 0x3f82});
  CHECK32("cvt.f32.bf16 %fd, %ha; mov.b32 %d, %fd;", {0x3f82, 0, 0,
                                                      0x3f820000u});
  CHECK32("cvt.rn.f32.f64 %fd, %Fa; mov.b32 %d, %fd;",
          {0, 0, 0, 0});
  CHECK64("cvt.rn.f32.f64 %fd, %Fa; mov.b32 %d, %fd; cvt.u64.u32 %D, %d;",
          {0x3ff0000010000000ull, 0, 0, 0x3f800000u},
          {0x3ff0000010000001ull, 0, 0, 0x3f800001u},
          {0x7ff0000000000001ull, 0, 0, 0x7fc00000u});
  CHECK64("cvt.rz.f32.f64 %fd, %Fa; mov.b32 %d, %fd; cvt.u64.u32 %D, %d;",
          {0x47efffffefffffffull, 0, 0, 0x7f7fffffu});
  CHECK32("cvt.sat.u16.s32 %hd, %a; cvt.u32.u16 %d, %hd;",
          {70000, 0, 0, 65535}, {0xfffffffbu, 0, 0, 0}, {5, 0, 0, 5});
  CHECK32("cvt.s8.s32 %hd, %a; cvt.s32.s8 %d, %hd;",
          {0x1ff, 0, 0, 0xffffffffu}, {0x17f, 0, 0, 0x7f});
  CHECK64("cvt.s64.s32 %D, %a;", {0xfffffffeu, 0, 0, 0xfffffffffffffffeull});
  CHECK64("cvt.u64.u32 %D, %a;", {0xfffffffeu, 0, 0, 0xfffffffeull});
  CHECK64("cvt.rn.f32.u64 %fd, %A; mov.b32 %d, %fd; cvt.u64.u32 %D, %d;",
          {~0ull, 0, 0, 0x5f800000u});
  CHECK64("cvt.rz.f32.u64 %fd, %A; mov.b32 %d, %fd; cvt.u64.u32 %D, %d;",
          {~0ull, 0, 0, 0x5f7fffffu});
  CHECK64("cvt.rn.f64.s64 %Fd, %A; mov.b64 %D, %Fd;",
          {~0ull, 0, 0, 0xbff0000000000000ull});
  CHECK32("cvt.rn.f32.s32 %fd, %a; mov.b32 %d, %fd;",
          {0x01000001u, 0, 0, 0x4b800000u}, {0x01000003u, 0, 0, 0x4b800002u});
  CHECK32("cvt.rni.f32.f32 %fd, %fa; mov.b32 %d, %fd;",
          {0x40200000u, 0, 0, 0x40000000u}, {0xbf000000u, 0, 0, 0x80000000u});
  CHECK32("cvt.rn.f16x2.f32 %d, %fa, %fb;",
          {0x3f800000u, 0x40000000u, 0, 0x3c004000u});
  CHECK64("cvt.f64.f32 %Fd, %fa; mov.b64 %D, %Fd;",
          {0x7fa00001u, 0, 0, 0x7ffc000020000000ull});
}

static void test_half(void **state)
{
  CHECK32("add.f16 %hd, %ha, %hb; cvt.u32.u16 %d, %hd;",
          {0x3c00, 0x1400, 0, 0x3c01}, {0x3c00, 0x1000, 0, 0x3c00},
          {0x7bff, 0x7bff, 0, 0x7c00}, {0x7e00, 0x3c00, 0, 0x7fff});
  CHECK32("add.sat.f16 %hd, %ha, %hb; cvt.u32.u16 %d, %hd;",
          {0x3c00, 0x3c00, 0, 0x3c00}, {0x7e00, 0, 0, 0});
  CHECK32("mul.f16 %hd, %ha, %hb; cvt.u32.u16 %d, %hd;",
          {0x4000, 0x4200, 0, 0x4600});
  CHECK32("fma.rn.f16 %hd, %ha, %hb, %hc; cvt.u32.u16 %d, %hd;",
          {0x3c00, 0x4000, 0x3c00, 0x4200});
  CHECK32("fma.rn.relu.f16 %hd, %ha, %hb, %hc; cvt.u32.u16 %d, %hd;",
          {0x3c00, 0xc000, 0x3c00, 0});
  CHECK32("add.f16x2 %d, %a, %b;", {0x3c004000u, 0x3c003c00u, 0, 0x40004200u});
  CHECK32("min.f16 %hd, %ha, %hb; cvt.u32.u16 %d, %hd;",
          {0x7e00, 0x3c00, 0, 0x3c00});
  CHECK32("min.NaN.f16 %hd, %ha, %hb; cvt.u32.u16 %d, %hd;",
          {0x7e00, 0x3c00, 0, 0x7fff});
  CHECK32("neg.f16 %hd, %ha; cvt.u32.u16 %d, %hd;", {0x3c00, 0, 0, 0xbc00},
          {0x7e00, 0, 0, 0x7fff});
  CHECK32("abs.bf16 %hd, %ha; cvt.u32.u16 %d, %hd;", {0xbf80, 0, 0, 0x3f80});
  CHECK32("add.rn.bf16 %hd, %ha, %hb; cvt.u32.u16 %d, %hd;",
          {0x3f80, 0x3f80, 0, 0x4000}, {0x3f80, 0x3b80, 0, 0x3f80});
  CHECK32("fma.rn.bf16 %hd, %ha, %hb, %hc; cvt.u32.u16 %d, %hd;",
          {0x4000, 0x4040, 0x3f80, 0x40e0});
  CHECK32("setp.lt.f16 %p, %ha, %hb; selp.u32 %d, 1, 0, %p;",
          {0x3c00, 0x4000, 0, 1}, {0x7e00, 0x4000, 0, 0});
  CHECK32("setp.ltu.f16x2 %p|%q, %a, %b; selp.u32 %d, 1, 0, %p; "
          "selp.u32 %t, 2, 0, %q; or.b32 %d, %d, %t;",
          {0x3c004000u, 0x40003c00u, 0, 2}, {0x7e003c00u, 0x3c004000u, 0, 3});
}

/* ---- comparisons, selection, moves ------------------------------------------ */

static void test_compare_select(void **state)
{
  CHECK32("setp.lt.f32 %p, %fa, %fb; selp.u32 %d, 1, 0, %p;",
          {0x3f800000u, 0x40000000u, 0, 1}, {0x7fc00000u, 0x40000000u, 0, 0});
  CHECK32("setp.ltu.f32 %p, %fa, %fb; selp.u32 %d, 1, 0, %p;",
          {0x7fc00000u, 0x40000000u, 0, 1}, {0x40000000u, 0x3f800000u, 0, 0});
  CHECK32("setp.ne.f32 %p, %fa, %fb; selp.u32 %d, 1, 0, %p;",
          {0x7fc00000u, 0x40000000u, 0, 0});
  CHECK32("setp.neu.f32 %p, %fa, %fb; selp.u32 %d, 1, 0, %p;",
          {0x7fc00000u, 0x40000000u, 0, 1});
  CHECK32("setp.num.f32 %p, %fa, %fb; selp.u32 %d, 1, 0, %p;",
          {0x7fc00000u, 0, 0, 0}, {0, 0, 0, 1});
  CHECK32("setp.nan.f32 %p, %fa, %fb; selp.u32 %d, 1, 0, %p;",
          {0, 0x7fc00000u, 0, 1});
  CHECK32("setp.eq.f32 %p, %fa, %fb; selp.u32 %d, 1, 0, %p;",
          {0x80000000u, 0, 0, 1});
  CHECK32("setp.lt.s32 %p, %a, %b; selp.u32 %d, 1, 0, %p;",
          {0xffffffffu, 1, 0, 1}, {1, 0xffffffffu, 0, 0});
  CHECK32("setp.lo.s32 %p, %a, %b; selp.u32 %d, 1, 0, %p;",
          {0xffffffffu, 1, 0, 0});
  CHECK32("setp.lt.u32 %p, %a, %b; selp.u32 %d, 1, 0, %p;",
          {0xffffffffu, 1, 0, 0});
  CHECK32("setp.eq.s32 %p|%q, %a, %b; selp.u32 %d, 1, 0, %q;",
          {1, 1, 0, 0}, {1, 2, 0, 1});
  CHECK32("setp.gt.and.s32 %p, %a, %b, !%pa; selp.u32 %d, 1, 0, %p;",
          {0, 0xffffffffu, 0, 1}, {2, 1, 0, 0});
  CHECK32("setp.gt.or.s32 %p|%q, %a, %b, %pb; selp.u32 %d, 1, 0, %p; "
          "selp.u32 %t, 2, 0, %q; or.b32 %d, %d, %t;",
          {2, 1, 0, 3}, {0, 1, 0, 3}, {0, 0, 0, 2});
  CHECK64("setp.lt.s64 %p, %A, %B; selp.u64 %D, 7, 9, %p;",
          {~0ull, 0, 0, 7}, {1, 0, 0, 9});
  CHECK32("set.lt.u32.f32 %d, %fa, %fb;", {0x3f800000u, 0x40000000u, 0,
                                           0xffffffffu},
          {0x40000000u, 0x3f800000u, 0, 0});
  CHECK32("set.lt.f32.s32 %fd, %a, %b; mov.b32 %d, %fd;",
          {0xffffffffu, 0, 0, 0x3f800000u});
  CHECK32("selp.b32 %d, %a, %b, %pa;", {7, 9, 0, 7}, {0, 9, 0, 9});
  CHECK32("slct.u32.s32 %d, %a, %b, %c;", {7, 9, 0, 7},
          {7, 9, 0xffffffffu, 9});
  CHECK32("slct.u32.f32 %d, %a, %b, %fc;", {7, 9, 0x80000000u, 7},
          {7, 9, 0xbf800000u, 9});
}

static void test_moves(void **state)
{
  CHECK64("mov.b64 %D, {%a, %b};", {0x11111111u, 0x22222222u, 0,
                                    0x2222222211111111ull});
  CHECK32("mov.b64 {%t, %d}, %A;", {0x89abcdefu, 0, 0, 0});
  CHECK64("mov.b64 {%t, %d}, %A; cvt.u64.u32 %D, %d;",
          {0x0123456789abcdefull, 0, 0, 0x01234567u});
  CHECK32("mov.b32 {%hd, %ha}, %a; cvt.u32.u16 %d, %hd;",
          {0x12345678u, 0, 0, 0x5678});
  CHECK32("mov.b32 %d, {%ha, %hb};", {0x1111, 0x2222, 0, 0x22221111u});
  CHECK32("mov.u32 %d, %laneid; mov.u32 %t, %lanemask_lt; add.u32 %d, %d, %t;",
          {0, 0, 0, 0}, {0, 0, 0, 2}, {0, 0, 0, 5}, {0, 0, 0, 10});
  CHECK32("mov.f32 %fd, 0f3F800000; mov.b32 %d, %fd;", {0, 0, 0, 0x3f800000u});
}

int main(int argc, char **argv)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_int_arith),
    cmocka_unit_test(test_carry_chains),
    cmocka_unit_test(test_shifts_and_bits),
    cmocka_unit_test(test_f32_rounding),
    cmocka_unit_test(test_f32_special),
    cmocka_unit_test(test_f64),
    cmocka_unit_test(test_conversions),
    cmocka_unit_test(test_half),
    cmocka_unit_test(test_compare_select),
    cmocka_unit_test(test_moves),
  };
  int rc;

  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  rc = cmocka_run_group_tests(tests, NULL, NULL);
  tl_pool_free();
  return rc;
}
