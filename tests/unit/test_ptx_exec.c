/*
 * test_ptx_exec.c: the PTX executor's control flow, warps, blocks, memory
 * checks, faults and launches, with small hand-written kernels.
 * (Instruction semantics: test_ptx_exec_alu.c; nvcc-built kernels:
 * test_ptx_exec_nvcc.c.)
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_ptx_exec_lib.h"

#define HDR ".version 8.0\n.target sm_80\n.address_size 64\n"
#define N_ELEMS(x) (sizeof(x) / sizeof((x)[0]))

/* Load, or fail the test. */
static struct ptx_module *load(const char *ptx)
{
  struct ptx_module *m = tl_load(ptx);

  assert_non_null(m);
  return m;
}

static uint32_t run1(struct tmem *t, const struct ptx_module *m,
                     const char *k, unsigned grid, unsigned block,
                     const struct tparams *p, struct ptx_fault *f)
{
  struct tlaunch c = {{grid, 1, 1}, {block, 1, 1}, 0, 0, NULL, 0, NULL};
  struct ptx_fault tmp;

  return tl_run(tl_pool(), t, m, k, &c, p, f ? f : &tmp);
}

/* ---- divergence and reconvergence ----------------------------------------- */

static const char div_ifelse[] = HDR
  ".visible .entry k(.param .u64 out)\n{\n"
  "  .reg .b32 %r<8>;\n  .reg .b64 %rd<4>;\n  .reg .pred %p<3>;\n"
  "  ld.param.u64 %rd1, [out];\n"
  "  mov.u32 %r1, %tid.x;\n"
  "  and.b32 %r2, %r1, 1;\n"
  "  setp.eq.u32 %p1, %r2, 0;\n"
  "  @%p1 bra EVEN;\n"
  "  mul.lo.u32 %r3, %r1, 3;\n"
  "  activemask.b32 %r5;\n"
  "  bra.uni JOIN;\n"
  "EVEN:\n"
  "  add.u32 %r3, %r1, 100;\n"
  "  activemask.b32 %r5;\n"
  "JOIN:\n"
  "  activemask.b32 %r4;\n"
  "  mul.wide.u32 %rd2, %r1, 12;\n"
  "  add.s64 %rd3, %rd1, %rd2;\n"
  "  st.global.u32 [%rd3], %r3;\n"
  "  st.global.u32 [%rd3+4], %r4;\n"
  "  st.global.u32 [%rd3+8], %r5;\n"
  "  ret;\n}\n";

static void test_divergence_ifelse(void **state)
{
  struct ptx_module *m = load(div_ifelse);
  struct tmem *t = tm_new();
  uint32_t *o = tm_alloc(t, 40 * 12);
  struct tparams p = {{0}, 0};

  tp_ptr(&p, o);
  assert_int_equal(run1(t, m, "k", 1, 40, &p, NULL), 0);
  for (unsigned i = 0; i < 40; i++) {
    uint32_t warp_lanes = i < 32 ? 0xffffffffu : 0xffu;
    assert_int_equal(o[3 * i], i & 1 ? i * 3 : i + 100);
    /* reconverged after the join: the whole (partial) warp */
    assert_int_equal(o[3 * i + 1], warp_lanes);
    /* inside each branch: only that branch's lanes */
    assert_int_equal(o[3 * i + 2],
                     warp_lanes & (i & 1 ? 0xaaaaaaaau : 0x55555555u));
  }
  ptx_module_free(m);
  tm_free(t);
}

/* Each lane loops tid%32 + 1 times; nested: odd iterations take an inner
   branch.  Afterwards the warp is whole again. */
static const char div_loop[] = HDR
  ".visible .entry k(.param .u64 out)\n{\n"
  "  .reg .b32 %r<12>;\n  .reg .b64 %rd<4>;\n  .reg .pred %p<4>;\n"
  "  ld.param.u64 %rd1, [out];\n"
  "  mov.u32 %r1, %tid.x;\n"
  "  and.b32 %r2, %r1, 31;\n"
  "  add.u32 %r2, %r2, 1;\n"       /* trip count */
  "  mov.u32 %r3, 0;\n"            /* i */
  "  mov.u32 %r4, 0;\n"            /* sum */
  "  mov.u32 %r6, 0;\n"            /* min active count seen */
  "  not.b32 %r6, %r6;\n"
  "LOOP:\n"
  "  and.b32 %r5, %r3, 1;\n"
  "  setp.ne.u32 %p2, %r5, 0;\n"
  "  @%p2 bra ODD;\n"
  "  add.u32 %r4, %r4, %r3;\n"
  "  bra.uni NEXT;\n"
  "ODD:\n"
  "  mad.lo.u32 %r4, %r3, 2, %r4;\n"
  "NEXT:\n"
  "  activemask.b32 %r7;\n"
  "  popc.b32 %r8, %r7;\n"
  "  min.u32 %r6, %r6, %r8;\n"
  "  add.u32 %r3, %r3, 1;\n"
  "  setp.lt.u32 %p1, %r3, %r2;\n"
  "  @%p1 bra LOOP;\n"
  "  activemask.b32 %r9;\n"
  "  mul.wide.u32 %rd2, %r1, 12;\n"
  "  add.s64 %rd3, %rd1, %rd2;\n"
  "  st.global.u32 [%rd3], %r4;\n"
  "  st.global.u32 [%rd3+4], %r9;\n"
  "  st.global.u32 [%rd3+8], %r6;\n"
  "  ret;\n}\n";

static void test_divergence_loop(void **state)
{
  struct ptx_module *m = load(div_loop);
  struct tmem *t = tm_new();
  uint32_t *o = tm_alloc(t, 64 * 12);
  struct tparams p = {{0}, 0};

  tp_ptr(&p, o);
  assert_int_equal(run1(t, m, "k", 1, 64, &p, NULL), 0);
  for (unsigned i = 0; i < 64; i++) {
    unsigned n = (i & 31) + 1, sum = 0;
    for (unsigned k = 0; k < n; k++)
      sum += k & 1 ? 2 * k : k;
    assert_int_equal(o[3 * i], sum);
    assert_int_equal(o[3 * i + 1], 0xffffffffu);
    /* the last iteration of lane L runs with lanes L..31 of its warp:
       lanes still looping stay together (the odd/even split rejoins) */
    assert_int_equal(o[3 * i + 2], 32 - (i & 31));
  }
  ptx_module_free(m);
  tm_free(t);
}

/* Lanes with tid % 3 == 0 leave early; the rest meet at a barrier that
   must not wait for them. */
static const char early_exit[] = HDR
  ".visible .entry k(.param .u64 out)\n{\n"
  "  .reg .b32 %r<8>;\n  .reg .b64 %rd<4>;\n  .reg .pred %p<3>;\n"
  "  .shared .align 4 .b32 s[96];\n"
  "  ld.param.u64 %rd1, [out];\n"
  "  mov.u32 %r1, %tid.x;\n"
  "  rem.u32 %r2, %r1, 3;\n"
  "  setp.eq.u32 %p1, %r2, 0;\n"
  "  @%p1 ret;\n"
  "  shl.b32 %r3, %r1, 2;\n"
  "  mov.u32 %r4, s;\n"
  "  add.u32 %r4, %r4, %r3;\n"
  "  st.shared.u32 [%r4], %r1;\n"
  "  bar.sync 0;\n"
  "  xor.b32 %r5, %r1, 1;\n"       /* neighbour */
  "  shl.b32 %r5, %r5, 2;\n"
  "  mov.u32 %r6, s;\n"
  "  add.u32 %r6, %r6, %r5;\n"
  "  ld.shared.u32 %r7, [%r6];\n"
  "  mul.wide.u32 %rd2, %r1, 4;\n"
  "  add.s64 %rd3, %rd1, %rd2;\n"
  "  st.global.u32 [%rd3], %r7;\n"
  "  exit;\n}\n";

static void test_early_exit_barrier(void **state)
{
  struct ptx_module *m = load(early_exit);
  struct tmem *t = tm_new();
  uint32_t *o = tm_alloc(t, 96 * 4);
  struct tparams p = {{0}, 0};

  tp_ptr(&p, o);
  assert_int_equal(run1(t, m, "k", 1, 96, &p, NULL), 0);
  for (unsigned i = 0; i < 96; i++) {
    unsigned nb = i ^ 1;
    if (i % 3 == 0)
      assert_int_equal(o[i], 0);
    else
      assert_int_equal(o[i], nb % 3 == 0 ? 0 : nb);
  }
  ptx_module_free(m);
  tm_free(t);
}

/* ---- barriers ---------------------------------------------------------------- */

/* 20 rounds of: s[tid] = v; sync; v = s[(tid+1)%256] + 1; sync */
static const char bar_loop[] = HDR
  ".visible .entry k(.param .u64 out)\n{\n"
  "  .reg .b32 %r<12>;\n  .reg .b64 %rd<4>;\n  .reg .pred %p<3>;\n"
  "  .shared .align 4 .b32 s[256];\n"
  "  ld.param.u64 %rd1, [out];\n"
  "  mov.u32 %r1, %tid.x;\n"
  "  mov.u32 %r2, %r1;\n"           /* v */
  "  mov.u32 %r3, 0;\n"
  "  mov.u32 %r10, s;\n"
  "  shl.b32 %r4, %r1, 2;\n"
  "  add.u32 %r4, %r10, %r4;\n"
  "  add.u32 %r5, %r1, 1;\n"
  "  and.b32 %r5, %r5, 255;\n"
  "  shl.b32 %r5, %r5, 2;\n"
  "  add.u32 %r5, %r10, %r5;\n"
  "L:\n"
  "  st.shared.u32 [%r4], %r2;\n"
  "  bar.sync 0;\n"
  "  ld.shared.u32 %r6, [%r5];\n"
  "  add.u32 %r2, %r6, 1;\n"
  "  bar.sync 0;\n"
  "  add.u32 %r3, %r3, 1;\n"
  "  setp.lt.u32 %p1, %r3, 20;\n"
  "  @%p1 bra L;\n"
  "  mul.wide.u32 %rd2, %r1, 4;\n"
  "  add.s64 %rd3, %rd1, %rd2;\n"
  "  st.global.u32 [%rd3], %r2;\n"
  "  ret;\n}\n";

static void test_barrier_loop(void **state)
{
  struct ptx_module *m = load(bar_loop);
  struct tmem *t = tm_new();
  uint32_t *o = tm_alloc(t, 256 * 4 * 8);
  uint32_t v[256], nv[256];
  struct tparams p = {{0}, 0};

  for (unsigned i = 0; i < 256; i++)
    v[i] = i;
  for (int r = 0; r < 20; r++) {
    for (unsigned i = 0; i < 256; i++)
      nv[i] = v[(i + 1) & 255] + 1;
    memcpy(v, nv, sizeof(v));
  }
  tp_ptr(&p, o);
  assert_int_equal(run1(t, m, "k", 1, 256, &p, NULL), 0);
  for (unsigned i = 0; i < 256; i++)
    assert_int_equal(o[i], v[i]);
  ptx_module_free(m);
  tm_free(t);
}

static const char bar_deadlock[] = HDR
  ".visible .entry k()\n{\n"
  "  .reg .b32 %r<4>;\n  .reg .pred %p<3>;\n"
  "  mov.u32 %r1, %tid.x;\n"
  "  setp.lt.u32 %p1, %r1, 32;\n"
  "  @%p1 bra A;\n"
  "  bar.sync 1;\n"
  "  ret;\n"
  "A:\n"
  "  bar.sync 0;\n"
  "  ret;\n}\n";

static void test_barrier_deadlock(void **state)
{
  struct ptx_module *m = load(bar_deadlock);
  struct tmem *t = tm_new();
  struct ptx_fault f;

  assert_int_equal(run1(t, m, "k", 3, 64, NULL, &f), PTX_ERR_LAUNCH_FAILURE);
  assert_non_null(strstr(f.msg, "deadlock"));
  ptx_module_free(m);
  tm_free(t);
}

/* Named barriers with counts: warp 0 produces for warp 1 (bar.arrive /
   bar.sync 1, 64) while warps 2 and 3 pair up on barrier 2. */
static const char bar_named[] = HDR
  ".visible .entry k(.param .u64 out)\n{\n"
  "  .reg .b32 %r<12>;\n  .reg .b64 %rd<4>;\n  .reg .pred %p<4>;\n"
  "  .shared .align 4 .b32 s[128];\n"
  "  ld.param.u64 %rd1, [out];\n"
  "  mov.u32 %r1, %tid.x;\n"
  "  shr.u32 %r2, %r1, 5;\n"       /* warp */
  "  and.b32 %r3, %r1, 31;\n"      /* lane */
  "  mov.u32 %r10, s;\n"
  "  shl.b32 %r4, %r1, 2;\n"
  "  add.u32 %r4, %r10, %r4;\n"
  "  and.b32 %r5, %r2, 1;\n"
  "  setp.eq.u32 %p1, %r5, 0;\n"   /* producer: warps 0 and 2 */
  "  setp.lt.u32 %p2, %r2, 2;\n"
  "  selp.u32 %r6, 1, 2, %p2;\n"   /* barrier id */
  "  @!%p1 bra CONS;\n"
  "  mad.lo.u32 %r7, %r1, 10, 7;\n"
  "  st.shared.u32 [%r4], %r7;\n"
  "  bar.arrive %r6, 64;\n"
  "  bra.uni END;\n"
  "CONS:\n"
  "  bar.sync %r6, 64;\n"
  "  sub.u32 %r8, %r4, 128;\n"
  "  ld.shared.u32 %r9, [%r8];\n"
  "  mul.wide.u32 %rd2, %r1, 4;\n"
  "  add.s64 %rd3, %rd1, %rd2;\n"
  "  st.global.u32 [%rd3], %r9;\n"
  "END:\n"
  "  ret;\n}\n";

static void test_barrier_named(void **state)
{
  struct ptx_module *m = load(bar_named);
  struct tmem *t = tm_new();
  uint32_t *o = tm_alloc(t, 128 * 4);
  struct tparams p = {{0}, 0};

  tp_ptr(&p, o);
  assert_int_equal(run1(t, m, "k", 1, 128, &p, NULL), 0);
  for (unsigned i = 0; i < 128; i++) {
    if ((i / 32) % 2 == 0)
      assert_int_equal(o[i], 0);
    else
      assert_int_equal(o[i], (i - 32) * 10 + 7);
  }
  ptx_module_free(m);
  tm_free(t);
}

static const char bar_red[] = HDR
  ".visible .entry k(.param .u64 out)\n{\n"
  "  .reg .b32 %r<12>;\n  .reg .b64 %rd<4>;\n  .reg .pred %p<8>;\n"
  "  ld.param.u64 %rd1, [out];\n"
  "  mov.u32 %r1, %tid.x;\n"
  "  and.b32 %r2, %r1, 3;\n"
  "  setp.eq.u32 %p1, %r2, 0;\n"
  "  bar.red.popc.u32 %r3, 0, %p1;\n"
  "  bar.red.and.pred %p2, 0, %p1;\n"
  "  bar.red.or.pred %p3, 0, %p1;\n"
  "  setp.lt.u32 %p4, %r1, 1000;\n"
  "  bar.red.and.pred %p5, 0, %p4;\n"
  "  bar.red.popc.u32 %r7, 0, !%p1;\n"
  "  selp.u32 %r4, 1, 0, %p2;\n"
  "  selp.u32 %r5, 1, 0, %p3;\n"
  "  selp.u32 %r6, 1, 0, %p5;\n"
  "  mul.wide.u32 %rd2, %r1, 20;\n"
  "  add.s64 %rd3, %rd1, %rd2;\n"
  "  st.global.u32 [%rd3], %r3;\n"
  "  st.global.u32 [%rd3+4], %r4;\n"
  "  st.global.u32 [%rd3+8], %r5;\n"
  "  st.global.u32 [%rd3+12], %r6;\n"
  "  st.global.u32 [%rd3+16], %r7;\n"
  "  ret;\n}\n";

static void test_barrier_red(void **state)
{
  struct ptx_module *m = load(bar_red);
  struct tmem *t = tm_new();
  uint32_t *o = tm_alloc(t, 200 * 20);
  struct tparams p = {{0}, 0};

  tp_ptr(&p, o);
  assert_int_equal(run1(t, m, "k", 1, 200, &p, NULL), 0);
  for (unsigned i = 0; i < 200; i++) {
    assert_int_equal(o[5 * i], 50);
    assert_int_equal(o[5 * i + 1], 0);
    assert_int_equal(o[5 * i + 2], 1);
    assert_int_equal(o[5 * i + 3], 1);
    assert_int_equal(o[5 * i + 4], 150);
  }
  ptx_module_free(m);
  tm_free(t);
}

/* ---- warp-synchronous instructions ---------------------------------------- */

static const char warp_ops[] = HDR
  ".visible .entry k(.param .u64 out)\n{\n"
  "  .reg .b32 %r<40>;\n  .reg .b64 %rd<4>;\n  .reg .pred %p<8>;\n"
  "  ld.param.u64 %rd1, [out];\n"
  "  mov.u32 %r1, %tid.x;\n"
  "  mul.lo.u32 %r2, %r1, 7;\n"
  "  shfl.sync.up.b32 %r3|%p1, %r2, 3, 0, -1;\n"
  "  shfl.sync.down.b32 %r4|%p2, %r2, 5, 31, -1;\n"
  "  shfl.sync.bfly.b32 %r5, %r2, 6, 31, -1;\n"
  "  shfl.sync.idx.b32 %r6, %r2, 9, 31, -1;\n"
  /* width 8 segments: c = (32-8)<<8 | 31 for down/idx/bfly, (32-8)<<8
     for up */
  "  shfl.sync.down.b32 %r7|%p3, %r2, 3, 6175, -1;\n"
  "  shfl.sync.up.b32 %r8|%p4, %r2, 2, 6144, -1;\n"
  "  shfl.sync.idx.b32 %r9, %r2, 5, 6175, -1;\n"
  "  selp.u32 %r10, 1, 0, %p1;\n"
  "  selp.u32 %r11, 1, 0, %p2;\n"
  "  selp.u32 %r12, 1, 0, %p3;\n"
  "  selp.u32 %r13, 1, 0, %p4;\n"
  "  and.b32 %r14, %r1, 1;\n"
  "  setp.ne.u32 %p5, %r14, 0;\n"
  "  vote.sync.ballot.b32 %r15, %p5, -1;\n"
  "  vote.sync.all.pred %p6, %p5, -1;\n"
  "  selp.u32 %r16, 1, 0, %p6;\n"
  "  vote.sync.any.pred %p6, %p5, -1;\n"
  "  selp.u32 %r17, 1, 0, %p6;\n"
  "  vote.sync.uni.pred %p6, %p5, -1;\n"
  "  selp.u32 %r18, 1, 0, %p6;\n"
  "  shr.u32 %r19, %r1, 3;\n"
  "  match.any.sync.b32 %r20, %r19, -1;\n"
  "  match.all.sync.b32 %r21|%p7, %r19, -1;\n"
  "  selp.u32 %r22, 1, 0, %p7;\n"
  "  redux.sync.add.u32 %r23, %r1, -1;\n"
  "  redux.sync.min.s32 %r24, %r2, -1;\n"
  "  redux.sync.max.u32 %r25, %r2, -1;\n"
  "  redux.sync.or.b32 %r26, %r1, -1;\n"
  "  redux.sync.xor.b32 %r27, %r1, -1;\n"
  "  redux.sync.and.b32 %r28, %r2, -1;\n"
  /* ballot among the odd lanes only */
  "  mov.u32 %r29, 0;\n"
  "  @!%p5 bra SKIP;\n"
  "  setp.gt.u32 %p6, %r1, 10;\n"
  "  vote.sync.ballot.b32 %r29, %p6, -1431655766;\n"
  "SKIP:\n"
  "  mul.wide.u32 %rd2, %r1, 128;\n"
  "  add.s64 %rd3, %rd1, %rd2;\n"
  "  st.global.v4.u32 [%rd3], {%r3, %r4, %r5, %r6};\n"
  "  st.global.v4.u32 [%rd3+16], {%r7, %r8, %r9, %r10};\n"
  "  st.global.v4.u32 [%rd3+32], {%r11, %r12, %r13, %r15};\n"
  "  st.global.v4.u32 [%rd3+48], {%r16, %r17, %r18, %r20};\n"
  "  st.global.v4.u32 [%rd3+64], {%r21, %r22, %r23, %r24};\n"
  "  st.global.v4.u32 [%rd3+80], {%r25, %r26, %r27, %r28};\n"
  "  st.global.u32 [%rd3+96], %r29;\n"
  "  ret;\n}\n";

static void test_warp_ops(void **state)
{
  struct ptx_module *m = load(warp_ops);
  struct tmem *t = tm_new();
  uint32_t *o = tm_alloc(t, 32 * 128);
  struct tparams p = {{0}, 0};

  tp_ptr(&p, o);
  assert_int_equal(run1(t, m, "k", 1, 32, &p, NULL), 0);
  for (unsigned i = 0; i < 32; i++) {
    uint32_t *r = &o[32 * i];
    unsigned seg = i & ~7u, x;
    /* CUDA semantics: __shfl_up/down/xor/sync with a width */
    assert_int_equal(r[0], i >= 3 ? (i - 3) * 7 : i * 7);
    assert_int_equal(r[1], i + 5 < 32 ? (i + 5) * 7 : i * 7);
    assert_int_equal(r[2], (i ^ 6) * 7);
    assert_int_equal(r[3], 9 * 7);
    assert_int_equal(r[4], i + 3 < seg + 8 ? (i + 3) * 7 : i * 7);
    assert_int_equal(r[5], i >= seg + 2 ? (i - 2) * 7 : i * 7);
    assert_int_equal(r[6], (seg + 5) * 7);
    assert_int_equal(r[7], i >= 3);
    assert_int_equal(r[8], i + 5 < 32);
    assert_int_equal(r[9], i + 3 < seg + 8);
    assert_int_equal(r[10], i >= seg + 2);
    assert_int_equal(r[11], 0xaaaaaaaau);
    assert_int_equal(r[12], 0);
    assert_int_equal(r[13], 1);
    assert_int_equal(r[14], 0);
    assert_int_equal(r[15], 0xffu << (i & ~7u));
    assert_int_equal(r[16], 0);
    assert_int_equal(r[17], 0);
    assert_int_equal(r[18], 31 * 32 / 2);
    assert_int_equal(r[19], 0);
    assert_int_equal(r[20], 31 * 7);
    assert_int_equal(r[21], 31);
    x = 0;
    for (unsigned k = 0; k < 32; k++)
      x ^= k;
    assert_int_equal(r[22], x);
    assert_int_equal(r[23], 0);
    assert_int_equal(r[24], i & 1 ? 0xaaaaa800u : 0);
  }
  ptx_module_free(m);
  tm_free(t);
}

/* bar.warp.sync between two diverged halves: each writes, syncs, then
   reads the other half's value. */
static const char warp_sync[] = HDR
  ".visible .entry k(.param .u64 out)\n{\n"
  "  .reg .b32 %r<12>;\n  .reg .b64 %rd<4>;\n  .reg .pred %p<3>;\n"
  "  .shared .align 4 .b32 s[32];\n"
  "  ld.param.u64 %rd1, [out];\n"
  "  mov.u32 %r1, %tid.x;\n"
  "  mov.u32 %r10, s;\n"
  "  shl.b32 %r2, %r1, 2;\n"
  "  add.u32 %r2, %r10, %r2;\n"
  "  xor.b32 %r3, %r1, 16;\n"
  "  shl.b32 %r3, %r3, 2;\n"
  "  add.u32 %r3, %r10, %r3;\n"
  "  setp.lt.u32 %p1, %r1, 16;\n"
  "  @%p1 bra LO;\n"
  "  add.u32 %r4, %r1, 1000;\n"
  "  st.shared.u32 [%r2], %r4;\n"
  "  bar.warp.sync -1;\n"
  "  ld.shared.u32 %r5, [%r3];\n"
  "  bra.uni J;\n"
  "LO:\n"
  "  add.u32 %r4, %r1, 2000;\n"
  "  st.shared.u32 [%r2], %r4;\n"
  "  bar.warp.sync -1;\n"
  "  ld.shared.u32 %r5, [%r3];\n"
  "J:\n"
  "  mul.wide.u32 %rd2, %r1, 4;\n"
  "  add.s64 %rd3, %rd1, %rd2;\n"
  "  st.global.u32 [%rd3], %r5;\n"
  "  ret;\n}\n";

static void test_warp_sync_diverged(void **state)
{
  struct ptx_module *m = load(warp_sync);
  struct tmem *t = tm_new();
  uint32_t *o = tm_alloc(t, 32 * 4);
  struct tparams p = {{0}, 0};

  tp_ptr(&p, o);
  assert_int_equal(run1(t, m, "k", 1, 32, &p, NULL), 0);
  for (unsigned i = 0; i < 32; i++) {
    unsigned j = i ^ 16;
    assert_int_equal(o[i], j < 16 ? j + 2000 : j + 1000);
  }
  ptx_module_free(m);
  tm_free(t);
}

/* ---- atomics --------------------------------------------------------------- */

static const char atomics[] = HDR
  ".visible .entry k(.param .u64 g)\n{\n"
  "  .reg .b32 %r<20>;\n  .reg .b64 %rd<20>;\n  .reg .f32 %f<4>;\n"
  "  .reg .f64 %fd<4>;\n  .reg .pred %p<4>;\n"
  "  .shared .align 8 .b8 sh[64];\n"
  "  ld.param.u64 %rd1, [g];\n"
  "  mov.u32 %r1, %tid.x;\n"
  "  mov.u32 %r2, %ctaid.x;\n"
  "  mov.u32 %r3, %ntid.x;\n"
  "  mad.lo.u32 %r4, %r2, %r3, %r1;\n"   /* global id */
  "  setp.eq.u32 %p1, %r1, 0;\n"
  "  @!%p1 bra S1;\n"
  "  st.shared.u32 [sh], 0;\n"
  "  st.shared.u32 [sh+4], -1;\n"
  "  st.shared.u32 [sh+8], 0;\n"
  "  st.shared.f32 [sh+12], 0f00000000;\n"
  "  st.shared.u64 [sh+16], 0;\n"
  "  st.shared.f64 [sh+24], 0d0000000000000000;\n"
  "  st.shared.u32 [sh+32], 0;\n"
  "S1:\n"
  "  bar.sync 0;\n"
  /* global */
  "  atom.global.add.u32 %r5, [%rd1], 1;\n"
  "  cvt.u64.u32 %rd2, %r4;\n"
  "  atom.global.add.u64 %rd3, [%rd1+8], %rd2;\n"
  "  atom.global.add.f32 %f1, [%rd1+16], 0f3F800000;\n"
  "  atom.global.add.f64 %fd1, [%rd1+24], 0d3FF0000000000000;\n"
  "  atom.global.min.s32 %r6, [%rd1+32], %r4;\n"
  "  atom.global.max.u32 %r7, [%rd1+36], %r4;\n"
  "  neg.s32 %r8, %r4;\n"
  "  atom.global.min.s32 %r9, [%rd1+40], %r8;\n"
  "  atom.global.max.s64 %rd4, [%rd1+48], %rd2;\n"
  "  atom.global.min.u64 %rd5, [%rd1+56], %rd2;\n"
  "  and.b32 %r10, %r4, 31;\n"
  "  mov.u32 %r11, 1;\n"
  "  shl.b32 %r11, %r11, %r10;\n"
  "  atom.global.or.b32 %r12, [%rd1+64], %r11;\n"
  "  atom.global.xor.b32 %r12, [%rd1+68], %r11;\n"
  "  not.b32 %r13, %r11;\n"
  "  atom.global.and.b32 %r12, [%rd1+72], %r13;\n"
  "  atom.global.inc.u32 %r12, [%rd1+76], 9;\n"
  "  atom.global.dec.u32 %r12, [%rd1+80], 9;\n"
  "  atom.global.exch.b32 %r14, [%rd1+84], %r4;\n"
  "  mul.wide.u32 %rd6, %r4, 4;\n"
  "  add.s64 %rd7, %rd1, 4096;\n"
  "  add.s64 %rd7, %rd7, %rd6;\n"
  "  st.global.u32 [%rd7], %r14;\n"     /* old values of exch */
  /* a CAS loop increment */
  "CAS:\n"
  "  ld.volatile.global.u32 %r15, [%rd1+88];\n"
  "  add.u32 %r16, %r15, 3;\n"
  "  atom.global.cas.b32 %r17, [%rd1+88], %r15, %r16;\n"
  "  setp.ne.u32 %p2, %r17, %r15;\n"
  "  @%p2 bra CAS;\n"
  "  red.global.add.u32 [%rd1+92], 2;\n"
  "  atom.add.u32 %r12, [%rd1+96], 1;\n"   /* generic */
  /* shared */
  "  atom.shared.add.u32 %r12, [sh], 1;\n"
  "  atom.shared.min.u32 %r12, [sh+4], %r4;\n"
  "  atom.shared.max.u32 %r12, [sh+8], %r4;\n"
  "  atom.shared.add.f32 %f2, [sh+12], 0f40000000;\n"
  "  atom.shared.add.u64 %rd8, [sh+16], %rd2;\n"
  "  atom.shared.add.f64 %fd2, [sh+24], 0d4000000000000000;\n"
  "  atom.shared.inc.u32 %r12, [sh+32], 4;\n"
  "  mov.u32 %r18, sh;\n"
  "  cvt.u64.u32 %rd10, %r18;\n"
  "  cvta.shared.u64 %rd9, %rd10;\n"
  "  atom.add.u32 %r12, [%rd9+40], 5;\n"   /* generic -> shared */
  "  bar.sync 0;\n"
  "  @!%p1 bra END;\n"
  "  ld.shared.v4.u32 {%r5, %r6, %r7, %r8}, [sh];\n"
  "  mul.wide.u32 %rd11, %r2, 64;\n"
  "  add.s64 %rd12, %rd1, 1024;\n"
  "  add.s64 %rd12, %rd12, %rd11;\n"
  "  st.global.v4.u32 [%rd12], {%r5, %r6, %r7, %r8};\n"
  "  ld.shared.u64 %rd13, [sh+16];\n"
  "  st.global.u64 [%rd12+16], %rd13;\n"
  "  ld.shared.u64 %rd13, [sh+24];\n"
  "  st.global.u64 [%rd12+24], %rd13;\n"
  "  ld.shared.u32 %r9, [sh+32];\n"
  "  st.global.u32 [%rd12+32], %r9;\n"
  "  ld.shared.u32 %r9, [sh+40];\n"
  "  st.global.u32 [%rd12+36], %r9;\n"
  "END:\n"
  "  ret;\n}\n";

static void test_atomics(void **state)
{
  struct ptx_module *m = load(atomics);
  struct tmem *t = tm_new();
  const unsigned nb = 40, nt = 96, n = nb * nt;
  uint8_t *g = tm_alloc(t, 4096 + 4 * n);
  struct tparams p = {{0}, 0};
  uint32_t u;
  uint64_t u64;
  float fv;
  double dv;
  uint8_t *seen;

  u = 0x7fffffff;
  memcpy(g + 32, &u, 4); /* min.s32 */
  u64 = ~0ull;
  memcpy(g + 56, &u64, 8); /* min.u64 */
  u = 0xffffffffu;
  memcpy(g + 72, &u, 4); /* and */
  u = 0xdead;
  memcpy(g + 84, &u, 4); /* exch */
  tp_ptr(&p, g);
  assert_int_equal(run1(t, m, "k", nb, nt, &p, NULL), 0);
  memcpy(&u, g, 4);
  assert_int_equal(u, n);
  memcpy(&u64, g + 8, 8);
  assert_int_equal(u64, (uint64_t)n * (n - 1) / 2);
  memcpy(&fv, g + 16, 4);
  assert_true(fv == (float)n);
  memcpy(&dv, g + 24, 8);
  assert_true(dv == (double)n);
  memcpy(&u, g + 32, 4);
  assert_int_equal(u, 0);
  memcpy(&u, g + 36, 4);
  assert_int_equal(u, n - 1);
  memcpy(&u, g + 40, 4);
  assert_int_equal((int32_t)u, -(int32_t)(n - 1));
  memcpy(&u64, g + 48, 8);
  assert_int_equal(u64, n - 1);
  memcpy(&u64, g + 56, 8);
  assert_int_equal(u64, 0);
  memcpy(&u, g + 64, 4);
  assert_int_equal(u, 0xffffffffu);
  memcpy(&u, g + 68, 4);
  assert_int_equal(u, 0); /* every bit toggled n/32 (even) times */
  memcpy(&u, g + 72, 4);
  assert_int_equal(u, 0);
  memcpy(&u, g + 76, 4);
  assert_int_equal(u, n % 10);
  memcpy(&u, g + 80, 4);
  assert_int_equal(u, (10 - n % 10) % 10);
  memcpy(&u, g + 88, 4);
  assert_int_equal(u, 3 * n);
  memcpy(&u, g + 92, 4);
  assert_int_equal(u, 2 * n);
  memcpy(&u, g + 96, 4);
  assert_int_equal(u, n);
  /* exch: the old values are the initial one plus all ids but the last */
  seen = calloc(n + 1, 1);
  assert_non_null(seen);
  memcpy(&u, g + 84, 4);
  assert_true(u < n);
  seen[u] = 1;
  for (unsigned i = 0; i < n; i++) {
    uint32_t old;
    memcpy(&old, g + 4096 + 4 * i, 4);
    if (old == 0xdead)
      old = n;
    assert_true(old <= n);
    assert_false(seen[old]);
    seen[old] = 1;
  }
  free(seen);
  for (unsigned b = 0; b < nb; b++) {
    uint8_t *r = g + 1024 + 64 * b;
    uint32_t v[4];
    memcpy(v, r, 16);
    assert_int_equal(v[0], nt);
    assert_int_equal(v[1], b * nt);
    assert_int_equal(v[2], b * nt + nt - 1);
    memcpy(&fv, &v[3], 4);
    assert_true(fv == 2.0f * nt);
    memcpy(&u64, r + 16, 8);
    assert_int_equal(u64, (uint64_t)nt * b * nt + (uint64_t)nt * (nt - 1) / 2);
    memcpy(&dv, r + 24, 8);
    assert_true(dv == 2.0 * nt);
    memcpy(&u, r + 32, 4);
    assert_int_equal(u, nt % 5);
    memcpy(&u, r + 36, 4);
    assert_int_equal(u, 5 * nt);
  }
  ptx_module_free(m);
  tm_free(t);
}

/* ---- calls and local memory ------------------------------------------------- */

static const char calls[] = HDR
  ".func (.param .b32 r) sq_plus(.param .b32 a, .param .b64 b)\n{\n"
  "  .reg .b32 %r<4>;\n  .reg .b64 %rd<3>;\n"
  "  ld.param.b32 %r1, [a];\n"
  "  ld.param.b64 %rd1, [b];\n"
  "  cvt.u32.u64 %r2, %rd1;\n"
  "  mad.lo.s32 %r3, %r1, %r1, %r2;\n"
  "  st.param.b32 [r], %r3;\n"
  "  ret;\n}\n"
  ".func (.param .b32 r) depth(.param .b32 n)\n{\n"
  "  .local .align 8 .b8 __local_depot1[64];\n"
  "  .reg .b32 %r<6>;\n  .reg .pred %p<2>;\n  .reg .b64 %SPL;\n"
  "  mov.u64 %SPL, __local_depot1;\n"
  "  ld.param.b32 %r1, [n];\n"
  "  st.local.u32 [%SPL], %r1;\n"
  "  setp.eq.s32 %p1, %r1, 0;\n"
  "  mov.u32 %r3, 0;\n"
  "  @%p1 bra DONE;\n"
  "  sub.s32 %r2, %r1, 1;\n"
  "  {\n"
  "  .param .b32 param0;\n"
  "  st.param.b32 [param0], %r2;\n"
  "  .param .b32 retval0;\n"
  "  call.uni (retval0), depth, (param0);\n"
  "  ld.param.b32 %r3, [retval0];\n"
  "  }\n"
  "  ld.local.u32 %r4, [%SPL];\n"   /* our depot survived the callee's */
  "  add.s32 %r3, %r3, %r4;\n"
  "DONE:\n"
  "  st.param.b32 [r], %r3;\n"
  "  ret;\n}\n"
  ".visible .entry k(.param .u64 out, .param .u32 n)\n{\n"
  "  .reg .b32 %r<8>;\n  .reg .b64 %rd<6>;\n  .reg .pred %p<3>;\n"
  "  ld.param.u64 %rd1, [out];\n"
  "  ld.param.u32 %r7, [n];\n"
  "  mov.u32 %r1, %tid.x;\n"
  "  cvt.u64.u32 %rd2, %r1;\n"
  "  setp.lt.u32 %p1, %r1, 5;\n"
  "  mov.u32 %r2, 0;\n"
  "  @%p1 bra SKIP;\n"              /* lanes 0..4 skip the first call */
  "  {\n"
  "  .param .b32 param0;\n"
  "  st.param.b32 [param0], %r1;\n"
  "  .param .b64 param1;\n"
  "  st.param.b64 [param1], %rd2;\n"
  "  .param .b32 retval0;\n"
  "  call.uni (retval0), sq_plus, (param0, param1);\n"
  "  ld.param.b32 %r2, [retval0];\n"
  "  }\n"
  "SKIP:\n"
  "  rem.u32 %r3, %r1, %r7;\n"
  "  {\n"
  "  .param .b32 param0;\n"
  "  st.param.b32 [param0], %r3;\n"
  "  .param .b32 retval0;\n"
  "  call.uni (retval0), depth, (param0);\n"
  "  ld.param.b32 %r4, [retval0];\n"
  "  }\n"
  "  mul.wide.u32 %rd3, %r1, 8;\n"
  "  add.s64 %rd4, %rd1, %rd3;\n"
  "  st.global.v2.u32 [%rd4], {%r2, %r4};\n"
  "  ret;\n}\n";

static void test_calls(void **state)
{
  struct ptx_module *m = load(calls);
  struct tmem *t = tm_new();
  uint32_t *o = tm_alloc(t, 256 * 8);
  struct tparams p = {{0}, 0};
  struct ptx_fault f;
  struct tlaunch c = {{1, 1, 1}, {64, 1, 1}, 0, 0, NULL, 0, NULL};

  tp_ptr(&p, o);
  tp_u32(&p, 13);
  assert_int_equal(tl_run(tl_pool(), t, m, "k", &c, &p, &f), 0);
  for (unsigned i = 0; i < 64; i++) {
    unsigned d = i % 13;
    assert_int_equal(o[2 * i], i < 5 ? 0 : i * i + i);
    assert_int_equal(o[2 * i + 1], d * (d + 1) / 2);
  }
  /* 200 frames of 64 + 16 bytes do not fit in 1 KiB of stack */
  p.n = 0;
  tp_ptr(&p, o);
  tp_u32(&p, 200);
  c.block[0] = 201;
  assert_int_equal(tl_run(tl_pool(), t, m, "k", &c, &p, &f),
                   PTX_ERR_ILLEGAL_ADDRESS);
  assert_non_null(strstr(f.msg, "stack overflow"));
  /* with a bigger stack they do */
  c.stack_size = 64 * 1024;
  assert_int_equal(tl_run(tl_pool(), t, m, "k", &c, &p, &f), 0);
  assert_int_equal(o[2 * 199 + 1], 199 * 200 / 2);
  ptx_module_free(m);
  tm_free(t);
}

static const char local_mem[] = HDR
  ".visible .entry k(.param .u64 out)\n{\n"
  "  .local .align 8 .b8 __local_depot0[128];\n"
  "  .reg .b32 %r<10>;\n  .reg .b64 %rd<10>;\n  .reg .pred %p<3>;\n"
  "  .reg .b64 %SP, %SPL;\n"
  "  mov.u64 %SPL, __local_depot0;\n"
  "  cvta.local.u64 %SP, %SPL;\n"
  "  ld.param.u64 %rd1, [out];\n"
  "  mov.u32 %r1, %tid.x;\n"
  "  mov.u32 %r2, 0;\n"
  "W:\n"
  "  mul.lo.u32 %r3, %r2, %r1;\n"
  "  mul.wide.u32 %rd2, %r2, 4;\n"
  "  add.s64 %rd3, %SPL, %rd2;\n"
  "  st.local.u32 [%rd3], %r3;\n"
  "  add.u32 %r2, %r2, 1;\n"
  "  setp.lt.u32 %p1, %r2, 32;\n"
  "  @%p1 bra W;\n"
  /* read back through generic addresses */
  "  mov.u32 %r2, 0;\n"
  "  mov.u32 %r4, 0;\n"
  "R:\n"
  "  mul.wide.u32 %rd2, %r2, 4;\n"
  "  add.s64 %rd3, %SP, %rd2;\n"
  "  ld.u32 %r5, [%rd3];\n"
  "  add.u32 %r4, %r4, %r5;\n"
  "  add.u32 %r2, %r2, 1;\n"
  "  setp.lt.u32 %p1, %r2, 32;\n"
  "  @%p1 bra R;\n"
  "  isspacep.local %p2, %SP;\n"
  "  selp.u32 %r6, 1, 0, %p2;\n"
  "  isspacep.global %p2, %SP;\n"
  "  selp.u32 %r7, 1, 0, %p2;\n"
  "  cvta.to.local.u64 %rd5, %SP;\n"
  "  cvt.u32.u64 %r8, %rd5;\n"
  "  mov.u32 %r9, %ctaid.x;\n"
  "  mad.lo.u32 %r9, %r9, 100, %r1;\n"
  "  mul.wide.u32 %rd4, %r9, 16;\n"
  "  add.s64 %rd4, %rd1, %rd4;\n"
  "  st.global.v4.u32 [%rd4], {%r4, %r6, %r7, %r8};\n"
  "  ret;\n}\n";

static void test_local_memory(void **state)
{
  struct ptx_module *m = load(local_mem);
  struct tmem *t = tm_new();
  uint32_t *o = tm_alloc(t, 300 * 16);
  struct tparams p = {{0}, 0};

  tp_ptr(&p, o);
  assert_int_equal(run1(t, m, "k", 3, 100, &p, NULL), 0);
  for (unsigned i = 0; i < 300; i++) {
    assert_int_equal(o[4 * i], (i % 100) * 31 * 32 / 2);
    assert_int_equal(o[4 * i + 1], 1);
    assert_int_equal(o[4 * i + 2], 0);
    assert_int_equal(o[4 * i + 3], 0);
  }
  ptx_module_free(m);
  tm_free(t);
}

/* ---- printf, assert, trap -------------------------------------------------- */

static const char printf_k[] = HDR
  ".extern .func (.param .b32 func_retval0) vprintf\n"
  "(\n  .param .b64 vprintf_param_0,\n  .param .b64 vprintf_param_1\n);\n"
  ".global .align 1 .b8 fmt1[] = {"
  /* "%d|%5i|%-4u|%x|%X|%o|%c|%s|%%|%ld|%llx|%hd|%hhu\n" */
  "37,100,124,37,53,105,124,37,45,52,117,124,37,120,124,37,88,124,37,111,"
  "124,37,99,124,37,115,124,37,37,124,37,108,100,124,37,108,108,120,124,"
  "37,104,100,124,37,104,104,117,10,0};\n"
  ".global .align 1 .b8 fmt2[] = {"
  /* "%f %.2f %e %g %8.3f %a|%s\n" */
  "37,102,32,37,46,50,102,32,37,101,32,37,103,32,37,56,46,51,102,32,37,"
  "97,124,37,115,10,0};\n"
  ".global .align 1 .b8 str[] = {104,105,0};\n"
  ".visible .entry k(.param .u64 out)\n{\n"
  "  .local .align 8 .b8 __local_depot0[96];\n"
  "  .reg .b32 %r<10>;\n  .reg .b64 %rd<20>;\n  .reg .f64 %fd<4>;\n"
  "  .reg .b64 %SP, %SPL;\n"
  "  mov.u64 %SPL, __local_depot0;\n"
  "  cvta.local.u64 %SP, %SPL;\n"
  "  ld.param.u64 %rd15, [out];\n"
  "  mov.u32 %r1, %tid.x;\n"
  "  neg.s32 %r2, %r1;\n"
  "  st.local.u32 [%SPL], %r2;\n"         /* %d */
  "  st.local.u32 [%SPL+4], %r1;\n"       /* %5i */
  "  st.local.u32 [%SPL+8], 42;\n"        /* %-4u */
  "  st.local.u32 [%SPL+12], 48879;\n"    /* %x */
  "  st.local.u32 [%SPL+16], 48879;\n"    /* %X */
  "  st.local.u32 [%SPL+20], 8;\n"        /* %o */
  "  add.u32 %r3, %r1, 65;\n"
  "  st.local.u32 [%SPL+24], %r3;\n"      /* %c */
  "  mov.u64 %rd1, str;\n"
  "  cvta.global.u64 %rd2, %rd1;\n"
  "  st.local.u64 [%SPL+32], %rd2;\n"     /* %s */
  "  mov.u64 %rd3, -5000000000;\n"
  "  st.local.u64 [%SPL+40], %rd3;\n"     /* %ld */
  "  mov.u64 %rd4, 1311768467463790320;\n"
  "  st.local.u64 [%SPL+48], %rd4;\n"     /* %llx */
  "  st.local.u32 [%SPL+56], 98304;\n"    /* %hd -> -32768 */
  "  st.local.u32 [%SPL+60], 511;\n"      /* %hhu -> 255 */
  "  mov.u64 %rd5, fmt1;\n"
  "  cvta.global.u64 %rd6, %rd5;\n"
  "  {\n"
  "  .param .b64 param0;\n  st.param.b64 [param0], %rd6;\n"
  "  .param .b64 param1;\n  st.param.b64 [param1], %SP;\n"
  "  .param .b32 retval0;\n"
  "  call.uni (retval0), vprintf, (param0, param1);\n"
  "  ld.param.b32 %r5, [retval0];\n"
  "  }\n"
  "  mov.f64 %fd1, 0d3FF8000000000000;\n"  /* 1.5 */
  "  st.local.f64 [%SPL], %fd1;\n"
  "  mov.f64 %fd2, 0d400921FB54442D18;\n"  /* pi */
  "  st.local.f64 [%SPL+8], %fd2;\n"
  "  st.local.f64 [%SPL+16], %fd2;\n"
  "  st.local.f64 [%SPL+24], %fd1;\n"
  "  st.local.f64 [%SPL+32], %fd2;\n"
  "  st.local.f64 [%SPL+40], %fd1;\n"
  "  st.local.u64 [%SPL+48], 0;\n"         /* %s of NULL */
  "  mov.u64 %rd7, fmt2;\n"
  "  cvta.global.u64 %rd8, %rd7;\n"
  "  {\n"
  "  .param .b64 param0;\n  st.param.b64 [param0], %rd8;\n"
  "  .param .b64 param1;\n  st.param.b64 [param1], %SP;\n"
  "  .param .b32 retval0;\n"
  "  call.uni (retval0), vprintf, (param0, param1);\n"
  "  ld.param.b32 %r6, [retval0];\n"
  "  }\n"
  "  mul.wide.u32 %rd9, %r1, 8;\n"
  "  add.s64 %rd10, %rd15, %rd9;\n"
  "  st.global.v2.u32 [%rd10], {%r5, %r6};\n"
  "  ret;\n}\n";

static void test_printf(void **state)
{
  struct ptx_module *m = load(printf_k);
  struct tmem *t = tm_new();
  uint32_t *o = tm_alloc(t, 2 * 8);
  struct tparams p = {{0}, 0};
  char want[1024];
  int n = 0;

  tp_ptr(&p, o);
  assert_int_equal(run1(t, m, "k", 1, 2, &p, NULL), 0);
  for (int i = 0; i < 2; i++) {
    n += snprintf(want + n, sizeof(want) - (size_t)n,
                  "%d|%5i|%-4u|%x|%X|%o|%c|%s|%%|%ld|%llx|%hd|%hhu\n", -i, i,
                  42u, 48879u, 48879u, 8u, 'A' + i, "hi", -5000000000l,
                  1311768467463790320ull, (short)-32768,
                  (unsigned char)255);
  }
  for (int i = 0; i < 2; i++)
    n += snprintf(want + n, sizeof(want) - (size_t)n,
                  "%f %.2f %e %g %8.3f %a|%s\n", 1.5, 3.141592653589793,
                  3.141592653589793, 1.5, 3.141592653589793, 1.5, "(null)");
  assert_string_equal(tm_out(t), want);
  assert_int_equal(o[0], 12); /* arguments, not characters */
  assert_int_equal(o[1], 7);
  ptx_module_free(m);
  tm_free(t);
}

static const char assert_k[] = HDR
  ".extern .func __assertfail\n(\n"
  "  .param .b64 p0,\n  .param .b64 p1,\n  .param .b32 p2,\n"
  "  .param .b64 p3,\n  .param .b64 p4\n);\n"
  ".global .align 1 .b8 msg[] = {120,32,60,32,51,0};\n"
  ".global .align 1 .b8 file[] = {97,46,99,117,0};\n"
  ".global .align 1 .b8 fn[] = {118,111,105,100,32,107,40,41,0};\n"
  ".visible .entry k()\n{\n"
  "  .reg .b32 %r<4>;\n  .reg .b64 %rd<8>;\n  .reg .pred %p<2>;\n"
  "  mov.u32 %r1, %tid.x;\n"
  "  setp.lt.u32 %p1, %r1, 3;\n"
  "  @%p1 bra OK;\n"
  "  mov.u64 %rd1, msg;\n  cvta.global.u64 %rd2, %rd1;\n"
  "  mov.u64 %rd3, file;\n  cvta.global.u64 %rd4, %rd3;\n"
  "  mov.u64 %rd5, fn;\n  cvta.global.u64 %rd6, %rd5;\n"
  "  {\n"
  "  .param .b64 param0;\n  st.param.b64 [param0], %rd2;\n"
  "  .param .b64 param1;\n  st.param.b64 [param1], %rd4;\n"
  "  .param .b32 param2;\n  st.param.b32 [param2], 17;\n"
  "  .param .b64 param3;\n  st.param.b64 [param3], %rd6;\n"
  "  .param .b64 param4;\n  st.param.b64 [param4], 1;\n"
  "  call.uni __assertfail, (param0, param1, param2, param3, param4);\n"
  "  }\n"
  "OK:\n"
  "  ret;\n}\n";

static void test_assert(void **state)
{
  struct ptx_module *m = load(assert_k);
  struct tmem *t = tm_new();
  struct ptx_fault f;
  struct tlaunch c = {{2, 1, 1}, {4, 1, 1}, 0, 0, NULL, 0, NULL};

  assert_int_equal(tl_run(tl_pool(), t, m, "k", &c, NULL, &f),
                   PTX_ERR_ASSERT);
  assert_non_null(strstr(tm_out(t), "a.cu:17: void k(): block: [")); 
  assert_non_null(strstr(tm_out(t), "], thread: [3,0,0] Assertion `x < 3` "
                         "failed.\n"));
  assert_int_equal(f.error, PTX_ERR_ASSERT);
  assert_int_equal(f.thread[0], 3);
  ptx_module_free(m);
  tm_free(t);
}

static const char trap_k[] = HDR
  ".visible .entry k()\n{\n"
  "  .reg .b32 %r<2>;\n  .reg .pred %p<2>;\n"
  "  mov.u32 %r1, %tid.x;\n"
  "  setp.eq.u32 %p1, %r1, 5;\n"
  "  @%p1 trap;\n"
  "  ret;\n}\n";

static void test_trap(void **state)
{
  struct ptx_module *m = load(trap_k);
  struct tmem *t = tm_new();
  struct ptx_fault f;

  assert_int_equal(run1(t, m, "k", 4, 32, NULL, &f), PTX_ERR_LAUNCH_FAILURE);
  assert_int_equal(f.thread[0], 5);
  assert_int_equal(f.line, 10);
  assert_non_null(strstr(f.msg, "trap"));
  ptx_module_free(m);
  tm_free(t);
}

/* ---- memory faults ------------------------------------------------------------ */

static const char faults[] = HDR
  ".visible .entry oob(.param .u64 p, .param .u32 n)\n{\n"
  "  .reg .b32 %r<4>;\n  .reg .b64 %rd<4>;\n"
  "  ld.param.u64 %rd1, [p];\n"
  "  mov.u32 %r1, %tid.x;\n"
  "  mul.wide.u32 %rd2, %r1, 4;\n"
  "  add.s64 %rd3, %rd1, %rd2;\n"
  "  st.global.u32 [%rd3], %r1;\n"
  "  ret;\n}\n"
  ".visible .entry misal(.param .u64 p)\n{\n"
  "  .reg .b32 %r<4>;\n  .reg .b64 %rd<4>;\n"
  "  ld.param.u64 %rd1, [p];\n"
  "  ld.global.u32 %r1, [%rd1+2];\n"
  "  ret;\n}\n"
  ".visible .entry badsh(.param .u32 off)\n{\n"
  "  .reg .b32 %r<4>;\n"
  "  .shared .align 4 .b32 s[16];\n"
  "  ld.param.u32 %r1, [off];\n"
  "  ld.shared.u32 %r2, [%r1];\n"
  "  ret;\n}\n"
  ".visible .entry nullp()\n{\n"
  "  .reg .b32 %r<4>;\n  .reg .b64 %rd<4>;\n"
  "  mov.u64 %rd1, 0;\n"
  "  ld.u32 %r1, [%rd1];\n"
  "  ret;\n}\n";

static void test_memory_faults(void **state)
{
  struct ptx_module *m = load(faults);
  struct tmem *t = tm_new();
  uint32_t *buf = tm_alloc(t, 100 * 4);
  struct tparams p = {{0}, 0};
  struct ptx_fault f;

  tp_ptr(&p, buf);
  assert_int_equal(run1(t, m, "oob", 1, 100, &p, &f), 0);
  assert_int_equal(run1(t, m, "oob", 1, 101, &p, &f),
                   PTX_ERR_ILLEGAL_ADDRESS);
  assert_int_equal(f.thread[0], 100);
  assert_true(f.addr == (uint64_t)(uintptr_t)buf + 400);
  assert_int_equal(f.line, 12);
  assert_non_null(strstr(f.msg, "st.global.u32"));
  assert_int_equal(run1(t, m, "misal", 1, 1, &p, &f),
                   PTX_ERR_MISALIGNED_ADDRESS);
  p.n = 0;
  tp_u32(&p, 60);
  assert_int_equal(run1(t, m, "badsh", 1, 1, &p, &f), 0);
  /* past the kernel's 64 bytes and the 1 KiB the runtime reserves */
  p.n = 0;
  tp_u32(&p, 64 + 1024);
  assert_int_equal(run1(t, m, "badsh", 1, 1, &p, &f),
                   PTX_ERR_ILLEGAL_ADDRESS);
  assert_non_null(strstr(f.msg, "shared"));
  assert_int_equal(run1(t, m, "nullp", 1, 1, NULL, &f),
                   PTX_ERR_ILLEGAL_ADDRESS);
  assert_int_equal(f.addr, 0);
  ptx_module_free(m);
  tm_free(t);
}

/* ---- watchdog, cancel, configuration -------------------------------------- */

static const char spin[] = HDR
  ".visible .entry k()\n{\n"
  "  .reg .b32 %r<4>;\n"
  "L:\n"
  "  add.u32 %r1, %r1, 1;\n"
  "  bra.uni L;\n}\n";

static void test_watchdog(void **state)
{
  struct ptx_module *m = load(spin);
  struct tmem *t = tm_new();
  struct ptx_fault f;
  struct tlaunch c = {{100, 1, 1}, {64, 1, 1}, 0, 200 * 1000000ull, NULL,
                      0, NULL};

  assert_int_equal(tl_run(tl_pool(), t, m, "k", &c, NULL, &f),
                   PTX_ERR_LAUNCH_TIMEOUT);
  assert_non_null(strstr(f.msg, "watchdog"));
  ptx_module_free(m);
  tm_free(t);
}

struct canceller {
  volatile int flag;
};

static void *cancel_later(void *arg)
{
  struct canceller *c = arg;

  usleep(100 * 1000);
  __atomic_store_n((int *)&c->flag, 1, __ATOMIC_RELAXED);
  return NULL;
}

static void test_cancel(void **state)
{
  struct ptx_module *m = load(spin);
  struct tmem *t = tm_new();
  struct ptx_fault f;
  struct canceller cc = {0};
  struct tlaunch c = {{10, 1, 1}, {64, 1, 1}, 0, 0, &cc.flag, 0, NULL};
  pthread_t th;

  assert_int_equal(pthread_create(&th, NULL, cancel_later, &cc), 0);
  assert_int_equal(tl_run(tl_pool(), t, m, "k", &c, NULL, &f),
                   PTX_ERR_LAUNCH_FAILURE);
  pthread_join(th, NULL);
  assert_non_null(strstr(f.msg, "cancel"));
  ptx_module_free(m);
  tm_free(t);
}

static const char ids[] = HDR
  ".visible .entry k(.param .u64 out)\n{\n"
  "  .reg .b32 %r<20>;\n  .reg .b64 %rd<6>;\n"
  "  ld.param.u64 %rd1, [out];\n"
  "  mov.u32 %r1, %tid.x;\n  mov.u32 %r2, %tid.y;\n  mov.u32 %r3, %tid.z;\n"
  "  mov.u32 %r4, %ctaid.x;\n  mov.u32 %r5, %ctaid.y;\n"
  "  mov.u32 %r6, %ctaid.z;\n"
  "  mov.u32 %r7, %ntid.x;\n  mov.u32 %r8, %ntid.y;\n"
  "  mov.u32 %r9, %nctaid.x;\n  mov.u32 %r10, %nctaid.y;\n"
  /* linear block and thread ids */
  "  mad.lo.u32 %r11, %r6, %r10, %r5;\n"
  "  mad.lo.u32 %r11, %r11, %r9, %r4;\n"
  "  mad.lo.u32 %r12, %r3, %r8, %r2;\n"
  "  mad.lo.u32 %r12, %r12, %r7, %r1;\n"
  "  mov.u32 %r13, %ntid.z;\n"
  "  mul.lo.u32 %r14, %r7, %r8;\n"
  "  mul.lo.u32 %r14, %r14, %r13;\n"
  "  mad.lo.u32 %r15, %r11, %r14, %r12;\n"
  "  mov.u32 %r16, %laneid;\n"
  "  mov.u32 %r17, %warpid;\n"
  "  mov.u32 %r18, %lanemask_lt;\n"
  "  mul.wide.u32 %rd2, %r15, 16;\n"
  "  add.s64 %rd3, %rd1, %rd2;\n"
  "  st.global.v4.u32 [%rd3], {%r15, %r16, %r17, %r18};\n"
  "  ret;\n}\n";

static void test_many_blocks(void **state)
{
  struct ptx_module *m = load(ids);
  struct tmem *t = tm_new();
  const unsigned nb = 7 * 5 * 3, nt = 4 * 3 * 3;
  uint32_t *o = tm_alloc(t, nb * nt * 16);
  struct tparams p = {{0}, 0};
  struct ptx_fault f;
  struct tlaunch c = {{7, 5, 3}, {4, 3, 3}, 0, 0, NULL, 0, NULL};

  tp_ptr(&p, o);
  for (int rep = 0; rep < 3; rep++) {
    memset(o, 0xff, nb * nt * 16);
    assert_int_equal(tl_run(tl_pool(), t, m, "k", &c, &p, &f), 0);
    for (unsigned i = 0; i < nb * nt; i++) {
      unsigned tl = i % nt;
      assert_int_equal(o[4 * i], i);
      assert_int_equal(o[4 * i + 1], tl % 32);
      assert_int_equal(o[4 * i + 2], tl / 32);
      assert_int_equal(o[4 * i + 3], (1u << (tl % 32)) - 1);
    }
  }
  ptx_module_free(m);
  tm_free(t);
}

static void test_bad_config(void **state)
{
  struct ptx_module *m = load(ids);
  struct tmem *t = tm_new();
  uint32_t *o = tm_alloc(t, 64);
  struct tparams p = {{0}, 0};
  struct ptx_fault f;
  struct tlaunch c = {{1, 1, 1}, {1, 1, 1}, 0, 0, NULL, 0, NULL};
  struct ptx_devmodel dev = {80, 1024, 48 * 1024, 1024};
  struct ptx_launch_desc d;

  tp_ptr(&p, o);
  c.block[0] = 1025;
  assert_int_equal(tl_run(tl_pool(), t, m, "k", &c, &p, &f),
                   PTX_ERR_INVALID_CONFIG);
  c.block[0] = 32;
  c.block[1] = 33;
  assert_int_equal(tl_run(tl_pool(), t, m, "k", &c, &p, &f),
                   PTX_ERR_INVALID_CONFIG);
  c.block[1] = 1;
  c.block[2] = 65;
  assert_int_equal(tl_run(tl_pool(), t, m, "k", &c, &p, &f),
                   PTX_ERR_INVALID_CONFIG);
  c.block[2] = 1;
  c.grid[1] = 65536;
  assert_int_equal(tl_run(tl_pool(), t, m, "k", &c, &p, &f),
                   PTX_ERR_INVALID_CONFIG);
  c.grid[1] = 1;
  c.dyn_shared = 48 * 1024 + 1;
  assert_int_equal(tl_run(tl_pool(), t, m, "k", &c, &p, &f),
                   PTX_ERR_INVALID_VALUE);
  c.dyn_shared = 0;
  memset(&d, 0, sizeof(d));
  d.m = m;
  d.func = 0;
  d.grid[0] = d.grid[1] = d.grid[2] = 0;
  d.block[0] = d.block[1] = d.block[2] = 1;
  d.params = p.b;
  d.params_size = 8;
  d.mem = tm_ops(t);
  d.dev = &dev;
  assert_int_equal(ptx_launch(tl_pool(), &d, &f), PTX_ERR_INVALID_CONFIG);
  d.grid[0] = d.grid[1] = d.grid[2] = 1;
  d.params_size = 4;
  assert_int_equal(ptx_launch(tl_pool(), &d, &f), PTX_ERR_INVALID_VALUE);
  d.params_size = 8;
  d.func = 7;
  assert_int_equal(ptx_launch(tl_pool(), &d, &f), PTX_ERR_INVALID_VALUE);
  d.func = 0;
  assert_int_equal(ptx_launch(tl_pool(), &d, &f), 0);
  /* without a pool the caller runs every block itself */
  assert_int_equal(ptx_launch(NULL, &d, &f), 0);
  ptx_module_free(m);
  tm_free(t);
}

/* ---- concurrency ------------------------------------------------------------- */

struct conc {
  const struct ptx_module *m;
  int ok;
};

static void *conc_main(void *arg)
{
  struct conc *c = arg;
  struct tmem *t = tm_new();
  uint32_t *o = tm_alloc(t, 24 * 64 * 16);
  struct tparams p = {{0}, 0};
  struct ptx_fault f;
  struct tlaunch cfg = {{3, 2, 4}, {64, 1, 1}, 0, 0, NULL, 0, NULL};

  c->ok = 1;
  tp_ptr(&p, o);
  for (int rep = 0; rep < 15; rep++) {
    memset(o, 0, 24 * 64 * 16);
    if (tl_run(tl_pool(), t, c->m, "k", &cfg, &p, &f))
      c->ok = 0;
    for (unsigned i = 0; i < 24 * 64; i++)
      if (o[4 * i] != i)
        c->ok = 0;
  }
  tm_free(t);
  return NULL;
}

static void test_concurrent_launches(void **state)
{
  struct ptx_module *m = load(ids);
  struct conc c[4];
  pthread_t th[4];

  for (int i = 0; i < 4; i++) {
    c[i].m = m;
    assert_int_equal(pthread_create(&th[i], NULL, conc_main, &c[i]), 0);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    assert_true(c[i].ok);
  }
  ptx_module_free(m);
}

/*
 * Priorities: blocks of a more urgent launch start before the pending
 * blocks of a less urgent one.  A long low-priority launch keeps the
 * pool's four workers busy; a short launch made meanwhile records where
 * each of its blocks ran (%smid + 1: the workers are 1..4, its own
 * launching thread 5).  At priority 0 the workers stay with the long
 * launch, so the launching thread runs every block of the short one; at
 * priority -1 the workers come over at their next block boundary.
 */
static const char busy[] = HDR
  ".visible .entry busy(.param .u64 out, .param .u32 iters)\n{\n"
  "  .reg .b32 %r<8>;\n  .reg .b64 %rd<4>;\n  .reg .pred %p<3>;\n"
  "  ld.param.u64 %rd1, [out];\n  ld.param.u32 %r1, [iters];\n"
  "  mov.u32 %r2, %tid.x;\n  setp.ne.u32 %p1, %r2, 0;\n"
  "  @%p1 bra START;\n"
  "  mov.u32 %r3, %smid;\n  add.u32 %r3, %r3, 1;\n"
  "  mov.u32 %r4, %ctaid.x;\n  mul.wide.u32 %rd2, %r4, 4;\n"
  "  add.s64 %rd3, %rd1, %rd2;\n  st.global.u32 [%rd3], %r3;\n"
  "START:\n  mov.u32 %r5, 0;\n"
  "LOOP:\n  setp.ge.u32 %p2, %r5, %r1;\n  @%p2 bra DONE;\n"
  "  add.u32 %r5, %r5, 1;\n  bra LOOP;\n"
  "DONE:\n  ret;\n}\n";

struct busy_run {
  const struct ptx_module *m;
  struct tmem *t;
  _Atomic uint32_t *out;
  uint32_t blocks, iters;
  int priority;
  const volatile int *cancel;
  uint32_t rc;
};

static void *busy_main(void *arg)
{
  struct busy_run *b = arg;
  struct tparams p = {{0}, 0};
  struct ptx_fault f;
  struct tlaunch cfg = {{b->blocks, 1, 1}, {32, 1, 1}, 0, 0, b->cancel, 0,
                        NULL};

  tp_ptr(&p, (const void *)b->out);
  tp_u32(&p, b->iters);
  b->rc = tl_run_prio(tl_pool(), b->t, b->m, "busy", &cfg, &p, &f,
                      b->priority);
  return NULL;
}

/* How many of the short launch's blocks ran on pool workers.  The long
   launch has more blocks than it can run meanwhile; it is cancelled once
   the short one is done. */
static unsigned short_beside_long(const struct ptx_module *m, int priority)
{
  enum { LONG = 1 << 20, SHORT = 8 };
  /* A memory each: the launches run on two threads at once. */
  struct tmem *t = tm_new(), *t2 = tm_new();
  volatile int stop = 0;
  struct busy_run lo = {m, t, tm_alloc(t, LONG * 4), LONG, 2000, 0, &stop, 0};
  struct busy_run hi = {m, t2, tm_alloc(t2, SHORT * 4), SHORT, 20000,
                        priority, NULL, 0};
  pthread_t th;
  unsigned on_workers = 0, seen = 0, next = 0;
  time_t give_up = time(NULL) + 60;

  assert_int_equal(pthread_create(&th, NULL, busy_main, &lo), 0);
  /* Until all four workers run blocks of the long launch (blocks are
     claimed in order; a worker that wakes late starts further on). */
  while (seen != 0x1e && time(NULL) < give_up)
    for (; next < LONG && atomic_load(&lo.out[next]); next++) {
      uint32_t w = atomic_load(&lo.out[next]);

      if (w >= 1 && w <= 4)
        seen |= 1u << w;
    }
  if (seen != 0x1e) {
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    pthread_join(th, NULL);
    fail_msg("the pool's workers did not all start on the long launch");
  }
  busy_main(&hi);
  __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
  pthread_join(th, NULL);
  assert_int_equal(lo.rc, PTX_ERR_LAUNCH_FAILURE); /* cancelled */
  assert_int_equal(hi.rc, 0);
  for (unsigned i = 0; i < SHORT; i++) {
    uint32_t w = atomic_load(&hi.out[i]);

    assert_true(w >= 1 && w <= 5);
    on_workers += w != 5;
  }
  tm_free(t);
  tm_free(t2);
  return on_workers;
}

static void test_priority(void **state)
{
  struct ptx_module *m = load(busy);
  unsigned n;

  n = short_beside_long(m, 0);
  print_message("priority 0: %u of 8 blocks on workers\n", n);
  assert_int_equal(n, 0);
  n = short_beside_long(m, -1);
  print_message("priority -1: %u of 8 blocks on workers\n", n);
  assert_true(n > 0);
  ptx_module_free(m);
}

static void test_thread_insns(void **state)
{
  struct ptx_module *m = load(div_ifelse);
  struct tmem *t = tm_new();
  uint32_t *o = tm_alloc(t, 64 * 12);
  struct tparams p = {{0}, 0};
  uint64_t before, after;

  tp_ptr(&p, o);
  before = ptx_exec_thread_insns();
  assert_int_equal(run1(t, m, "k", 1, 64, &p, NULL), 0);
  after = ptx_exec_thread_insns();
  /* 14 each: odd lanes run the 3-instruction branch, even lanes the
     2-instruction one plus the taken bra (a guard that is false does not
     count) */
  assert_int_equal(after - before, 64 * 14);
  ptx_module_free(m);
  tm_free(t);
}

/* ---- prepare ------------------------------------------------------------------ */

static void test_prepare_rejects(void **state)
{
  char err[256];
  static const char bad_extern[] = HDR
    ".extern .func (.param .b64 r) malloc (.param .b64 n);\n"
    ".visible .entry k()\n{\n"
    "  .reg .b64 %rd<3>;\n"
    "  {\n  .param .b64 param0;\n  st.param.b64 [param0], 8;\n"
    "  .param .b64 retval0;\n"
    "  call.uni (retval0), malloc, (param0);\n"
    "  ld.param.b64 %rd1, [retval0];\n  }\n"
    "  ret;\n}\n";
  static const char bad_insn[] = HDR
    ".visible .entry k()\n{\n"
    "  .reg .b32 %r<3>;\n"
    "  mov.u32 %r1, 1;\n"
    "  mul24.hi.sat.u32 %r2, %r1, %r1;\n"
    "  ret;\n}\n";

  assert_int_equal(tl_load_err(bad_extern, err, sizeof(err)), -ENOTSUP);
  assert_non_null(strstr(err, "unsupported extern function 'malloc'"));
  assert_int_equal(tl_load_err(bad_insn, err, sizeof(err)) != 0, 1);
}

static const char keys_k[] = HDR
  ".visible .entry k(.param .u64 p)\n{\n"
  "  .reg .b32 %r<4>;\n  .reg .b64 %rd<4>;\n  .reg .f32 %f<8>;\n"
  "  .reg .f64 %fd<2>;\n  .reg .pred %p<3>;\n"
  "  ld.param.u64 %rd1, [p];\n"
  "  ld.global.v4.f32 {%f1, %f2, %f3, %f4}, [%rd1];\n"
  "  setp.lt.and.f32 %p1, %f1, %f2, %p2;\n"
  "  cvt.rn.f32.f64 %f5, %fd1;\n"
  "  add.s32 %r1, %r2, %r3;\n"
  "  cvt.rzi.s32.f32 %r1, %f1;\n"
  "  shfl.sync.down.b32 %r1|%p1, %r2, 1, 31, -1;\n"
  "  ret;\n}\n";

static void test_keys(void **state)
{
  static const char *const want[] = {
    "ld.param.u64", "ld.global.v4.f32", "setp.lt.and.f32", "cvt.rn.f32.f64",
    "add.s32", "cvt.rzi.s32.f32", "shfl.sync.down.b32", "ret"};
  struct ptx_module *mk = load(keys_k);
  char k[96];

  assert_int_equal(mk->ninsns, N_ELEMS(want));
  for (uint32_t i = 0; i < mk->ninsns; i++) {
    ptx_exec_key(&mk->insns[i], k, sizeof(k));
    assert_string_equal(k, want[i]);
  }
  ptx_module_free(mk);
}

static void test_keys_atomics(void **state)
{
  struct ptx_module *m = load(atomics);
  char key[96];
  int seen_atom = 0, seen_ld = 0;

  for (uint32_t i = 0; i < m->ninsns; i++) {
    ptx_exec_key(&m->insns[i], key, sizeof(key));
    assert_true(ptx_exec_supports(&m->insns[i]));
    if (!strcmp(key, "atom.shared.add.f32"))
      seen_atom = 1;
    if (!strcmp(key, "ld.volatile.global.u32"))
      seen_ld = 1;
  }
  assert_true(seen_atom);
  assert_true(seen_ld);
  ptx_module_free(m);
}

int main(int argc, char **argv)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_divergence_ifelse),
    cmocka_unit_test(test_divergence_loop),
    cmocka_unit_test(test_early_exit_barrier),
    cmocka_unit_test(test_barrier_loop),
    cmocka_unit_test(test_barrier_deadlock),
    cmocka_unit_test(test_barrier_named),
    cmocka_unit_test(test_barrier_red),
    cmocka_unit_test(test_warp_ops),
    cmocka_unit_test(test_warp_sync_diverged),
    cmocka_unit_test(test_atomics),
    cmocka_unit_test(test_calls),
    cmocka_unit_test(test_local_memory),
    cmocka_unit_test(test_printf),
    cmocka_unit_test(test_assert),
    cmocka_unit_test(test_trap),
    cmocka_unit_test(test_memory_faults),
    cmocka_unit_test(test_watchdog),
    cmocka_unit_test(test_cancel),
    cmocka_unit_test(test_many_blocks),
    cmocka_unit_test(test_bad_config),
    cmocka_unit_test(test_concurrent_launches),
    cmocka_unit_test(test_priority),
    cmocka_unit_test(test_thread_insns),
    cmocka_unit_test(test_prepare_rejects),
    cmocka_unit_test(test_keys),
    cmocka_unit_test(test_keys_atomics),
  };
  int rc;

  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  rc = cmocka_run_group_tests(tests, NULL, NULL);

  tl_pool_free();
  return rc;
}
