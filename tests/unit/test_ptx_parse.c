/*
 * test_ptx_parse: the PTX parser (gpu-agent/emu/ptx_parse.c) against
 * hand-written snippets, whose IR is checked field by field, and against
 * the real nvcc 13 output of the fuzz seed corpus (argv[1]), which must
 * all parse into consistent modules.  Malformed inputs (truncated,
 * mutated, huge numbers) must fail with a "line N:" message, never crash.
 * Texts are copied into buffers of exactly their length so that ASan sees
 * any read past the end.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ptx_ir.h"

#define FUZZ_PTX_CHECK_ONLY
#include "../fuzz/fuzz_ptx.c"

static const char *corpus_dir;

#define HDR ".version 9.0\n.target sm_75\n.address_size 64\n"

/* Parse text (copied to an exact-size buffer); rc and the message. */
static int parse(const char *text, struct ptx_module **m, char *err,
                 size_t errlen)
{
  size_t n = strlen(text);
  char *copy = malloc(n ? n : 1);
  int rc;

  assert_non_null(copy);
  memcpy(copy, text, n);
  rc = ptx_parse(copy, n, m, err, errlen);
  free(copy);
  return rc;
}

static struct ptx_module *parse_ok(const char *text)
{
  struct ptx_module *m = NULL;
  char err[256], why[128];
  int rc = parse(text, &m, err, sizeof(err));

  if (rc)
    fail_msg("parse failed (%d): %s", rc, err);
  assert_non_null(m);
  if (ptx_check_module(m, why, sizeof(why)))
    fail_msg("inconsistent module: %s", why);
  return m;
}

static void parse_fail(const char *text, int want_rc, const char *substr)
{
  struct ptx_module *m = (struct ptx_module *)1;
  char err[256];
  int rc = parse(text, &m, err, sizeof(err));

  if (rc != want_rc || !strstr(err, substr) || strncmp(err, "line ", 5))
    fail_msg("want %d '%s', got %d '%s'", want_rc, substr, rc, err);
  assert_null(m);
}

static const struct ptx_func *func(const struct ptx_module *m,
                                   const char *name)
{
  int i = ptx_module_find_func(m, name);

  if (i < 0)
    fail_msg("no function %s", name);
  return &m->funcs[i];
}

static const struct ptx_insn *insn(const struct ptx_module *m,
                                   const char *fname, uint32_t i)
{
  const struct ptx_func *f = func(m, fname);

  assert_true(i < f->insn_count);
  return &m->insns[f->insn_start + i];
}

static const struct ptx_symbol *sym(const struct ptx_module *m,
                                    const char *name)
{
  int i = ptx_module_find_sym(m, name);

  if (i < 0)
    fail_msg("no module symbol %s", name);
  return &m->syms[i];
}

/* The symbol index of a function's parameter i. */
static uint32_t param_sym(const struct ptx_module *m, const struct ptx_func *f,
                          uint32_t i)
{
  assert_true(i < f->nparams);
  return m->lists[f->params + i];
}

/* A function body around some instructions. */
static char *body(const char *decls, const char *code)
{
  static const char fmt[] = HDR ".visible .entry k(\n"
                            "  .param .u64 k_p0\n)\n{\n%s\n%s\n}\n";
  size_t n = sizeof(fmt) + strlen(decls) + strlen(code);
  char *s = malloc(n);

  assert_non_null(s);
  snprintf(s, n, fmt, decls, code);
  return s;
}

static const char std_regs[] =
  ".reg .pred %p<4>;\n.reg .b16 %rs<4>;\n.reg .b32 %r<8>;\n"
  ".reg .f32 %f<4>;\n.reg .b64 %rd<4>;\n.reg .f64 %fd<4>;\n";
/* slots of the registers above */
#define P_(i)  (i)
#define RS(i)  (4 + (i))
#define R(i)   (8 + (i))
#define F(i)   (16 + (i))
#define RD(i)  (20 + (i))
#define FD(i)  (24 + (i))

/* One instruction in the standard function; returns its module. */
static struct ptx_module *one(const char *code)
{
  char *s = body(std_regs, code);
  struct ptx_module *m = parse_ok(s);

  free(s);
  return m;
}

static void one_fail(const char *code, int rc, const char *substr)
{
  char *s = body(std_regs, code);

  parse_fail(s, rc, substr);
  free(s);
}

static uint32_t any_sym_f(const struct ptx_module *m, const char *name)
{
  for (uint32_t i = 0; i < m->nsyms; i++)
    if (strcmp(m->syms[i].name, name) == 0)
      return i;
  fail_msg("no symbol %s", name);
  return 0;
}

/* ---- tests -------------------------------------------------------------- */

static void test_names(void **state)
{
  (void)state;
  assert_string_equal(ptx_op_name(PTX_OP_ADD), "add");
  assert_string_equal(ptx_op_name(PTX_OP_STACKRESTORE), "stackrestore");
  assert_string_equal(ptx_op_name(PTX_OP__COUNT), "?");
  assert_string_equal(ptx_type_name(PTX_T_F16X2), "f16x2");
  assert_string_equal(ptx_type_name(PTX_T_NONE), "");
  assert_int_equal(ptx_type_size(PTX_T_F64), 8);
  assert_int_equal(ptx_type_size(PTX_T_PRED), 1);
  assert_int_equal(ptx_type_size(PTX_T_B128), 16);
  assert_int_equal(ptx_type_size(999), 0);
}

static void test_header(void **state)
{
  struct ptx_module *m;

  (void)state;
  m = parse_ok(".version 8.7\n.target sm_90a, texmode_independent\n"
               ".address_size 64\n");
  assert_int_equal(m->version_major, 8);
  assert_int_equal(m->version_minor, 7);
  assert_int_equal(m->target_sm, 90);
  assert_int_equal(m->address_size, 64);
  assert_int_equal(m->nfuncs, 0);
  assert_int_equal(m->shared_align, 16);
  ptx_module_free(m);
  m = parse_ok("// comment\n/* block\n comment */ .version 9.0 .target "
               "sm_100\n");
  assert_int_equal(m->target_sm, 100);
  assert_int_equal(m->address_size, 64); /* taken as 64 when absent */
  ptx_module_free(m);

  parse_fail(".version 10.0\n.target sm_75\n", -ENOTSUP, "line 1: PTX ISA "
             "version 10.0 is newer");
  parse_fail(HDR ".address_size 32\n", -ENOTSUP, "line 4: .address_size 32");
  parse_fail(".target sm_75\n", -EINVAL, "must start with .version");
  parse_fail("", -EINVAL, "no .version");
  parse_fail(".version 9\n", -EINVAL, "bad .version");
  parse_fail(".version 9.0\n.target compute_75\n", -EINVAL, "bad .target");
  parse_fail(HDR ".foo 1;\n", -EINVAL, "unknown directive '.foo'");
  parse_fail(HDR "add.s32 %r1, %r2, 1;\n", -EINVAL, "expected a directive");
  ptx_module_free(NULL);
}

static void test_registers(void **state)
{
  struct ptx_module *m;
  const struct ptx_func *f;
  const struct ptx_insn *in;
  char *s;

  (void)state;
  s = body(".reg .b32 %r<5>;\n.reg .pred %p;\n.reg .f32 %f1, %f2;\n"
           ".reg .b64 %SP;\n.reg .b64 %SPL;\n.reg .u16 %h<2>, %x;\n",
           "add.s32 %r4, %r0, %r3;\n"
           "@%p mov.f32 %f2, %f1;\n"
           "@!%p mov.b64 %SP, %SPL;\n"
           "mov.u16 %h1, %x;\n");
  m = parse_ok(s);
  free(s);
  f = func(m, "k");
  assert_true(f->is_entry);
  assert_false(f->is_extern);
  assert_int_equal(f->nregs, 13);
  assert_int_equal(f->reg_types[0], PTX_T_B32);
  assert_int_equal(f->reg_types[4], PTX_T_B32);
  assert_int_equal(f->reg_types[5], PTX_T_PRED);
  assert_int_equal(f->reg_types[6], PTX_T_F32);
  assert_int_equal(f->reg_types[8], PTX_T_B64);
  assert_int_equal(f->reg_types[12], PTX_T_U16);
  in = insn(m, "k", 0);
  assert_int_equal(in->op, PTX_OP_ADD);
  assert_int_equal(in->type, PTX_T_S32);
  assert_int_equal(in->nops, 3);
  assert_int_equal(in->ops[0].kind, PTX_O_REG);
  assert_int_equal(in->ops[0].reg, 4);
  assert_int_equal(in->ops[1].reg, 0);
  assert_int_equal(in->ops[2].reg, 3);
  assert_int_equal(in->guard, PTX_NOREG);
  assert_int_equal(in->line, 15);
  in = insn(m, "k", 1);
  assert_int_equal(in->guard, 5);
  assert_int_equal(in->neg_guard, 0);
  assert_int_equal(in->ops[0].reg, 7);
  assert_int_equal(in->ops[1].reg, 6);
  in = insn(m, "k", 2);
  assert_int_equal(in->guard, 5);
  assert_int_equal(in->neg_guard, 1);
  assert_int_equal(in->ops[0].reg, 8);
  assert_int_equal(in->ops[1].reg, 9);
  in = insn(m, "k", 3);
  assert_int_equal(in->ops[0].reg, 11);
  assert_int_equal(in->ops[1].reg, 12);
  ptx_module_free(m);

  one_fail("add.s32 %r8, %r1, %r2;", -EINVAL,
           "line 15: undefined identifier '%r8'");
  one_fail("add.s32 %r01, %r1, %r2;", -EINVAL, "undefined identifier '%r01'");
  s = body(".reg .b32 %a;\n.reg .b32 %a;\n", "");
  parse_fail(s, -EINVAL, "'%a' declared twice");
  free(s);
  s = body(".reg .b32 %r<99999999999>;\n", "");
  parse_fail(s, -E2BIG, "register count");
  free(s);
  s = body(".reg .b32 %r<16777216>;\n.reg .b32 %x;\n", "");
  parse_fail(s, -E2BIG, "more than 16777216 registers");
  free(s);
  s = body(".reg .v4 .f32 %v;\n", "");
  parse_fail(s, -ENOTSUP, ".reg declaration");
  free(s);
}

static void test_scopes(void **state)
{
  struct ptx_module *m;
  char *s;

  (void)state;
  /* nvcc's inline-asm scopes: a later scope redeclares the same name */
  s = body(".reg .b32 %r<3>;\n.reg .b16 %rs<3>;\n",
           "{ .reg .b16 %temp; mov.b32 {%temp, %rs1}, %r1; }\n"
           "{ .reg .b16 %temp; mov.b32 {%rs2, %temp}, %r2; }\n"
           "{ .reg .b32 %r<2>; mov.b32 %r1, %r2; }\n"
           "{ .reg .pred __$temp3;\n"
           "  setp.lt.f16  __$temp3, %rs1, %rs2;\n"
           "  selp.u16 %rs0, 1, 0, __$temp3; }\n");
  m = parse_ok(s);
  free(s);
  const struct ptx_func *f = func(m, "k");
  const struct ptx_insn *a = insn(m, "k", 0), *b = insn(m, "k", 1);

  assert_int_equal(f->nregs, 6 + 1 + 1 + 2 + 1);
  assert_int_equal(a->ops[0].kind, PTX_O_VEC);
  assert_int_equal(a->ops[0].n, 2);
  assert_int_equal(a->ops[0].vec[0], 6);
  assert_int_equal(a->ops[0].vec[1], 4);
  assert_int_equal(b->ops[0].vec[1], 7);
  assert_int_equal(b->ops[0].vec[0], 5);
  assert_int_equal(f->reg_types[6], PTX_T_B16);
  /* the inner %r<2> shadows %r1 (slot 9) but not %r2 (outer slot 2) */
  assert_int_equal(insn(m, "k", 2)->ops[0].reg, 9);
  assert_int_equal(insn(m, "k", 2)->ops[1].reg, 2);
  assert_int_equal(insn(m, "k", 3)->ops[0].reg, 10);
  assert_int_equal(insn(m, "k", 4)->ops[3].reg, 10);
  assert_int_equal(f->reg_types[10], PTX_T_PRED);
  ptx_module_free(m);

  /* a scope's names are gone after it */
  s = body("", "{ .reg .b32 %t; mov.b32 %t, 1; }\nmov.b32 %t, 2;\n");
  parse_fail(s, -EINVAL, "line 10: undefined identifier '%t'");
  free(s);
  s = body("", "{ .reg .b32 %t;\n.reg .b32 %t; }\n");
  parse_fail(s, -EINVAL, "declared twice");
  free(s);
  /* nesting is capped, not recursive */
  {
    char code[200 + 3 * 70] = "";

    for (int i = 0; i < 70; i++)
      strcat(code, "{ ");
    for (int i = 0; i < 70; i++)
      strcat(code, "} ");
    s = body("", code);
    parse_fail(s, -E2BIG, "nested { } scopes");
    free(s);
  }
}

static void test_operands(void **state)
{
  struct ptx_module *m;
  const struct ptx_insn *in;
  char *s;

  (void)state;
  s = body(".reg .pred %p<3>;\n.reg .b32 %r<8>;\n.reg .b64 %rd<4>;\n"
           ".reg .f32 %f<5>;\n.shared .align 4 .b8 sh[64];\n",
           "selp.b32 %r1, %r2, %r3, !%p1;\n"
           "add.s32 %r1, %r2, 0x7fffffff;\n"
           "add.s32 %r1, %r2, 017;\n"
           "add.s32 %r1, %r2, 0b101;\n"
           "add.u32 %r1, %r2, 42U;\n"
           "add.s64 %rd1, %rd2, -9223372036854775808;\n"
           "mov.u32 %r1, %tid.y;\n"
           "mov.u32 %r1, %laneid;\n"
           "mov.u64 %rd1, %clock64;\n"
           "ld.global.u32 %r1, [%rd1];\n"
           "ld.global.u32 %r1, [%rd1+8];\n"
           "ld.global.u32 %r1, [%rd1+-8];\n"
           "ld.global.u32 %r1, [%rd1-16];\n"
           "ld.shared.u32 %r1, [sh];\n"
           "ld.shared.u32 %r1, [sh+4];\n"
           "ld.shared.u32 %r1, [%r3];\n"
           "ld.shared.u32 %r1, [1024];\n"
           "ld.param.u64 %rd1, [k_p0];\n"
           "mov.u32 %r1, sh;\n"
           "mov.u64 %rd1, sh+12;\n"
           "ld.global.v4.f32 {%f1, _, %f3, %f4}, [%rd2];\n"
           "mov.u32 %r1, %envreg3;\n"
           "mov.u32 %r1, WARP_SZ;\n");
  m = parse_ok(s);
  free(s);
  in = insn(m, "k", 0);
  assert_int_equal(in->ops[3].kind, PTX_O_REG);
  assert_int_equal(in->ops[3].flags, PTX_OF_NOT);
  assert_int_equal(in->ops[3].reg, 1);
  assert_int_equal(insn(m, "k", 1)->ops[2].kind, PTX_O_IMM);
  assert_int_equal(insn(m, "k", 1)->ops[2].imm, 0x7fffffff);
  assert_int_equal(insn(m, "k", 2)->ops[2].imm, 15);
  assert_int_equal(insn(m, "k", 3)->ops[2].imm, 5);
  assert_int_equal(insn(m, "k", 4)->ops[2].imm, 42);
  assert_true(insn(m, "k", 5)->ops[2].imm == INT64_MIN);
  in = insn(m, "k", 6);
  assert_int_equal(in->ops[1].kind, PTX_O_SREG);
  assert_int_equal(in->ops[1].reg, PTX_SR_TID);
  assert_int_equal(in->ops[1].sub, 1);
  in = insn(m, "k", 7);
  assert_int_equal(in->ops[1].reg, PTX_SR_LANEID);
  assert_int_equal(in->ops[1].sub, 0);
  assert_int_equal(insn(m, "k", 8)->ops[1].reg, PTX_SR_CLOCK64);

  in = insn(m, "k", 9);
  assert_int_equal(in->space, PTX_SP_GLOBAL);
  assert_int_equal(in->ops[1].kind, PTX_O_ADDR);
  assert_int_equal(in->ops[1].reg, 3 + 8 + 1);
  assert_int_equal(in->ops[1].sym, PTX_NOSYM);
  assert_int_equal(in->ops[1].imm, 0);
  assert_int_equal(insn(m, "k", 10)->ops[1].imm, 8);
  assert_int_equal(insn(m, "k", 11)->ops[1].imm, -8);
  assert_int_equal(insn(m, "k", 12)->ops[1].imm, -16);
  uint32_t shi = any_sym_f(m, "sh");

  assert_int_equal(ptx_module_find_sym(m, "sh"), -1); /* function scope */
  assert_int_equal(m->syms[shi].kind, PTX_SYM_SHARED);
  assert_int_equal(m->syms[shi].func, 0);
  in = insn(m, "k", 13);
  assert_int_equal(in->ops[1].reg, PTX_NOREG);
  assert_int_equal(in->ops[1].sym, shi);
  assert_int_equal(in->ops[1].imm, 0);
  assert_int_equal(insn(m, "k", 14)->ops[1].imm, 4);
  assert_int_equal(insn(m, "k", 14)->ops[1].sym, shi);
  assert_int_equal(insn(m, "k", 15)->ops[1].reg, 3 + 3);
  in = insn(m, "k", 16);
  assert_int_equal(in->ops[1].reg, PTX_NOREG);
  assert_int_equal(in->ops[1].sym, PTX_NOSYM);
  assert_int_equal(in->ops[1].imm, 1024);
  in = insn(m, "k", 17);
  assert_int_equal(in->space, PTX_SP_PARAM);
  assert_int_equal(in->ops[1].sym, param_sym(m, func(m, "k"), 0));
  in = insn(m, "k", 18);
  assert_int_equal(in->ops[1].kind, PTX_O_SYM);
  assert_int_equal(in->ops[1].sym, shi);
  assert_int_equal(in->ops[1].imm, 0);
  in = insn(m, "k", 19);
  assert_int_equal(in->ops[1].kind, PTX_O_SYM);
  assert_int_equal(in->ops[1].imm, 12);
  in = insn(m, "k", 20);
  assert_int_equal(in->vec, 4);
  assert_int_equal(in->ops[0].kind, PTX_O_VEC);
  assert_int_equal(in->ops[0].n, 4);
  assert_int_equal(in->ops[0].vec[0], 3 + 8 + 4 + 1);
  assert_int_equal(in->ops[0].vec[1], PTX_NOREG);
  assert_int_equal(in->ops[0].vec[3], 3 + 8 + 4 + 4);
  assert_int_equal(in->ops[0].flags, 0);
  in = insn(m, "k", 21);
  assert_int_equal(in->ops[1].reg, PTX_SR_ENVREG);
  assert_int_equal(in->ops[1].sub, 3);
  assert_int_equal(insn(m, "k", 22)->ops[1].imm, 32);
  ptx_module_free(m);

  one_fail("mov.u32 %r1, %tid.q;", -EINVAL, "bad special register '%tid.q'");
  one_fail("mov.u32 %r1, %clusterid.x;", -ENOTSUP, "special register");
  one_fail("mov.u32 %r1, nosuch;", -EINVAL, "undefined identifier 'nosuch'");
  one_fail("ld.global.u32 %r1, [nosuch];", -EINVAL, "undefined identifier");
  one_fail("ld.global.u32 %r1, [%rd1+%rd2];", -EINVAL, "a number");
  one_fail("ld.global.u32 %r1, %rd1;", -EINVAL, "must be an address");
  one_fail("add.s32 %r1, [%rd1], 1;", -EINVAL, "cannot be an address");
  one_fail("add.s32 %r1, %r2;", -EINVAL, "wrong number of operands (2)");
  one_fail("add.s32 1, %r2, %r3;", -EINVAL, "must be a register");
  one_fail("add.s32 %r1, %r2, %r3", -EINVAL,
           "expected ',' or ';' after an operand, found '}'");
  one_fail("add.s32 %r1 %r2, %r3;", -EINVAL, "expected ',' or ';'");
  one_fail("ld.global.v4.f32 {%f1, %f2}, [%rd1];", -EINVAL, "vector of 2");
  one_fail("mov.b64 {%r1, %r2, %r3, %r4, %r5}, %rd1;", -EINVAL,
           "more than 4");
  one_fail("mov.b64 {%r1}, %rd1;", -EINVAL, "fewer than 2");
  one_fail("add.s32 %r1, %r2, 18446744073709551616;", -EINVAL,
           "out of range");
  one_fail("add.s32 %r1, %r2, 0f3F80;", -EINVAL, "bad number '0f3F80'");
  one_fail("add.s32 %r1, %r2, 12abc;", -EINVAL, "bad number");
  one_fail("add.s32 %r1, %r2, 09;", -EINVAL, "bad number '09'");
  one_fail("add.s32 %r1, %r2, 1.5;", -EINVAL, "floating-point literal");
  one_fail("setp.eq.s32 %r1|%p1, %r2|%p2, 1;", -EINVAL, "joins two");
}

static void test_pairs_vectors(void **state)
{
  struct ptx_module *m;
  const struct ptx_insn *in;

  (void)state;
  m = one("shfl.sync.down.b32 %r1|%p1, %r2, 1, 31, -1;\n"
          "shfl.sync.idx.b32 %r1, %r2, %r3, 31, %r4;\n"
          "match.all.sync.b32 %r1|%p2, %r2, -1;\n"
          "setp.eq.s32 %p1|%p2, %r1, 3;\n"
          "mov.b64 {%r1, %r2}, %rd1;\n"
          "mov.b64 %rd1, {%r1, %r2};\n"
          "st.global.v2.f32 [%rd1+8], {%f1, %f2};\n");
  in = insn(m, "k", 0);
  assert_int_equal(in->op, PTX_OP_SHFL);
  assert_int_equal(in->mode, PTX_SHFL_DOWN);
  assert_true(in->flags & PTX_F_SYNC);
  assert_true(in->flags & PTX_F_PAIR);
  assert_int_equal(in->nops, 6);
  assert_int_equal(in->ops[0].reg, R(1));
  assert_int_equal(in->ops[1].reg, P_(1));
  assert_int_equal(in->ops[2].reg, R(2));
  assert_int_equal(in->ops[3].imm, 1);
  assert_int_equal(in->ops[4].imm, 31);
  assert_int_equal(in->ops[5].imm, -1);
  in = insn(m, "k", 1);
  assert_false(in->flags & PTX_F_PAIR);
  assert_int_equal(in->nops, 5);
  assert_int_equal(in->mode, PTX_SHFL_IDX);
  in = insn(m, "k", 2);
  assert_int_equal(in->mode, PTX_MATCH_ALL);
  assert_true(in->flags & PTX_F_PAIR);
  assert_int_equal(in->nops, 4);
  in = insn(m, "k", 3);
  assert_true(in->flags & PTX_F_PAIR);
  assert_int_equal(in->ops[0].reg, P_(1));
  assert_int_equal(in->ops[1].reg, P_(2));
  in = insn(m, "k", 4);
  assert_int_equal(in->ops[0].kind, PTX_O_VEC);
  assert_int_equal(in->ops[0].vec[0], R(1));
  assert_int_equal(in->ops[0].vec[1], R(2));
  assert_int_equal(insn(m, "k", 5)->ops[1].kind, PTX_O_VEC);
  in = insn(m, "k", 6);
  assert_int_equal(in->vec, 2);
  assert_int_equal(in->ops[0].kind, PTX_O_ADDR);
  assert_int_equal(in->ops[1].n, 2);
  ptx_module_free(m);

  /* immediates inside vectors (nvcc's bf16 -> f32: {0, %rs}): each gets
     a register, set by a mov just before the instruction */
  m = one("mov.b32 %f1, {0, %rs1};\n"
          "mov.b32 %r1, {%rs1, 0f3F800000};\n"
          "st.global.v4.f32 [%rd1], {%f1, 1.0, %f2, 0f40000000};\n"
          "mov.b64 %rd1, {%rs1, 0, %rs2, -1};\n");
  const struct ptx_func *f = func(m, "k");
  uint32_t base = 4 + 4 + 8 + 4 + 4 + 4;

  assert_int_equal(f->insn_count, 2 + 2 + 3 + 3);
  assert_int_equal(f->nregs, base + 6);
  in = insn(m, "k", 0);
  assert_int_equal(in->op, PTX_OP_MOV);
  assert_int_equal(in->type, PTX_T_B16);
  assert_int_equal(in->ops[0].reg, base);
  assert_int_equal(in->ops[1].kind, PTX_O_IMM);
  assert_int_equal(in->ops[1].imm, 0);
  assert_int_equal(in->line, 15);
  assert_int_equal(f->reg_types[base], PTX_T_B16);
  in = insn(m, "k", 1);
  assert_int_equal(in->ops[1].kind, PTX_O_VEC);
  assert_int_equal(in->ops[1].vec[0], base);
  assert_int_equal(in->ops[1].vec[1], RS(1));
  /* a float literal in a 16-bit element of a b32 is an f16 */
  assert_int_equal(insn(m, "k", 2)->ops[1].imm, 0x3C00);
  assert_int_equal(insn(m, "k", 3)->ops[1].vec[1], base + 1);
  in = insn(m, "k", 4);
  assert_int_equal(in->type, PTX_T_F32);
  assert_int_equal(in->ops[1].imm, 0x3F800000);
  assert_int_equal(insn(m, "k", 5)->ops[1].imm, 0x40000000);
  in = insn(m, "k", 6);
  assert_int_equal(in->op, PTX_OP_ST);
  assert_int_equal(in->ops[1].vec[0], F(1));
  assert_int_equal(in->ops[1].vec[1], base + 2);
  assert_int_equal(in->ops[1].vec[3], base + 3);
  assert_int_equal(insn(m, "k", 8)->ops[1].imm, -1);
  assert_int_equal(insn(m, "k", 8)->type, PTX_T_B16);
  assert_int_equal(insn(m, "k", 9)->ops[1].vec[3], base + 5);
  ptx_module_free(m);
  /* a branch to such an instruction runs its movs too */
  m = one("bra.uni L;\nL: mov.b32 %f1, {0, %rs1};\nbra.uni L;\n");
  assert_int_equal(insn(m, "k", 0)->ops[0].target, func(m, "k")->insn_start
                   + 1);
  assert_int_equal(insn(m, "k", 1)->ops[1].kind, PTX_O_IMM);
  assert_int_equal(insn(m, "k", 3)->ops[0].target, func(m, "k")->insn_start
                   + 1);
  ptx_module_free(m);
  one_fail("mov.b32 {0, %rs1}, %r1;", -EINVAL, "destination vector");
  one_fail("st.global.v2.pred [%rd1], {1, %p1};", -EINVAL, "of no type");
}

static uint64_t imm_of(const char *code, unsigned opi)
{
  struct ptx_module *m = one(code);
  uint64_t v;

  v = (uint64_t)insn(m, "k", 0)->ops[opi].imm;
  ptx_module_free(m);
  return v;
}

static void test_immediates(void **state)
{
  (void)state;
  /* f32 */
  assert_int_equal(imm_of("add.f32 %f1, %f2, 0f3F800000;", 2), 0x3F800000);
  assert_int_equal(imm_of("add.f32 %f1, %f2, 1.5;", 2), 0x3FC00000);
  assert_int_equal(imm_of("add.f32 %f1, %f2, -2.5e1;", 2), 0xC1C80000);
  assert_int_equal(imm_of("add.f32 %f1, %f2, 0d3FF0000000000000;", 2),
                   0x3F800000);
  assert_int_equal(imm_of("add.f32 %f1, %f2, 2;", 2), 0x40000000);
  assert_int_equal(imm_of("add.f32 %f1, %f2, -0f3F800000;", 2), 0xBF800000);
  assert_int_equal(imm_of("add.f32 %f1, %f2, 0F7FC00000;", 2), 0x7FC00000);
  /* f64 */
  assert_true(imm_of("add.f64 %fd1, %fd2, 0d400A000000000000;", 2) ==
              0x400A000000000000ull);
  assert_true(imm_of("add.f64 %fd1, %fd2, 0f3F800000;", 2) ==
              0x3FF0000000000000ull);
  assert_true(imm_of("add.f64 %fd1, %fd2, 0.1;", 2) == 0x3FB999999999999Aull);
  assert_true(imm_of("add.f64 %fd1, %fd2, -3;", 2) == 0xC008000000000000ull);
  /* f16 and bf16: round to nearest even, one rounding */
  assert_int_equal(imm_of("add.f16 %rs1, %rs2, 0f3F800000;", 2), 0x3C00);
  assert_int_equal(imm_of("add.f16 %rs1, %rs2, 1.0;", 2), 0x3C00);
  assert_int_equal(imm_of("add.f16 %rs1, %rs2, 0.1;", 2), 0x2E66);
  assert_int_equal(imm_of("add.f16 %rs1, %rs2, -2;", 2), 0xC000);
  assert_int_equal(imm_of("add.f16 %rs1, %rs2, 65519;", 2), 0x7BFF);
  assert_int_equal(imm_of("add.f16 %rs1, %rs2, 65520;", 2), 0x7C00);
  assert_int_equal(imm_of("add.f16 %rs1, %rs2, 0d3E70000000000000;", 2),
                   0x0001); /* 2^-24, the smallest subnormal */
  assert_int_equal(imm_of("add.f16 %rs1, %rs2, 0d3E60000000000000;", 2),
                   0x0000); /* 2^-25: a tie, to even */
  assert_int_equal(imm_of("add.f16 %rs1, %rs2, 0d3E68000000000000;", 2),
                   0x0001); /* 1.5 * 2^-25 */
  assert_int_equal(imm_of("add.f16 %rs1, %rs2, 0d3F0FF80000000000;", 2),
                   0x03FF); /* largest subnormal */
  assert_int_equal(imm_of("add.f16 %rs1, %rs2, 0d3F0FFC0000000000;", 2),
                   0x0400); /* halfway above it: to even, the normals */
  assert_int_equal(imm_of("add.f16 %rs1, %rs2, 0f7FC00000;", 2), 0x7E00);
  assert_int_equal(imm_of("add.f16 %rs1, %rs2, 0fFF800000;", 2), 0xFC00);
  assert_int_equal(imm_of("add.f16 %rs1, %rs2, 0d3FF0020000000000;", 2),
                   0x3C00); /* 1 + 2^-11: tie, to even */
  assert_int_equal(imm_of("add.f16 %rs1, %rs2, 0d3FF0060000000000;", 2),
                   0x3C02); /* 1 + 3 * 2^-11: tie, to even (up) */
  assert_int_equal(imm_of("add.bf16 %rs1, %rs2, 0f3F800000;", 2), 0x3F80);
  assert_int_equal(imm_of("add.bf16 %rs1, %rs2, 0f3F808000;", 2), 0x3F80);
  assert_int_equal(imm_of("add.bf16 %rs1, %rs2, 0f3F818000;", 2), 0x3F82);
  assert_int_equal(imm_of("add.bf16 %rs1, %rs2, 0f3F808001;", 2), 0x3F81);
  assert_int_equal(imm_of("add.bf16 %rs1, %rs2, 0f7F7FFFFF;", 2), 0x7F80);
  /* cvt reads its source as type2 */
  assert_int_equal(imm_of("cvt.f32.f16 %f1, 0f3F800000;", 1), 0x3C00);
  assert_int_equal(imm_of("cvt.rn.f16.f32 %rs1, 1.0;", 1), 0x3F800000);
  assert_true(imm_of("cvt.rn.f32.s32 %f1, -5;", 1) == (uint64_t)-5);
  /* integers: 64-bit two's complement of the written value */
  assert_true(imm_of("add.s32 %r1, %r2, -1;", 2) == UINT64_MAX);
  assert_true(imm_of("mul.wide.u32 %rd1, %r1, -1431655765;", 2) ==
              (uint64_t)-1431655765LL);
  assert_true(imm_of("add.u64 %rd1, %rd2, 0xFFFFFFFFFFFFFFFF;", 2) ==
              UINT64_MAX);
  /* bit types: 0f/0d bits as written */
  assert_int_equal(imm_of("mov.b32 %r1, 0f3F800000;", 1), 0x3F800000);
  assert_true(imm_of("mov.b64 %rd1, 0d3FF0000000000000;", 1) ==
              0x3FF0000000000000ull);
  assert_int_equal(imm_of("mov.b16 %rs1, 0f3F800000;", 1), 0x3C00);
  /* slct: c is type2; selp: c is a predicate; setp.and: c too */
  assert_int_equal(imm_of("slct.f32.f32 %f1, %f2, 1.0, 0f3F800000;", 3),
                   0x3F800000);
  assert_int_equal(imm_of("slct.f32.s32 %f1, %f2, 2, 7;", 2), 0x40000000);
  assert_int_equal(imm_of("slct.f32.s32 %f1, %f2, 2, 7;", 3), 7);
  assert_int_equal(imm_of("setp.eq.and.f32 %p1, %f1, 1, 1;", 2), 0x3F800000);
  assert_int_equal(imm_of("setp.eq.and.f32 %p1, %f1, 1, 1;", 3), 1);
  assert_int_equal(imm_of("set.lt.u32.f32 %r1, %f1, 1;", 2), 0x3F800000);
  assert_int_equal(imm_of("bar.sync 0;", 0), 0);
}

static void test_modifiers(void **state)
{
  static const struct {
    const char *code;
    unsigned op, type, type2, mode, mode2, space, rnd, scope, vec;
    uint32_t flags;
  } cases[] = {
#define C(code, op, t, t2, mo, m2, sp, rn, sc, v, fl) \
  { code, PTX_OP_##op, PTX_T_##t, PTX_T_##t2, mo, m2, sp, rn, sc, v, fl }
    C("setp.lt.and.f32 %p1, %f1, %f2, %p2;", SETP, F32, NONE, PTX_CMP_LT,
      PTX_BOOL_AND, 0, 0, 0, 1, 0),
    C("setp.lo.u32 %p1, %r1, %r2;", SETP, U32, NONE, PTX_CMP_LO, 0, 0, 0, 0,
      1, 0),
    C("setp.gtu.ftz.f32 %p1, %f1, %f2;", SETP, F32, NONE, PTX_CMP_GTU, 0, 0,
      0, 0, 1, PTX_F_FTZ),
    C("set.gt.u32.f32 %r1, %f1, %f2;", SET, F32, U32, PTX_CMP_GT, 0, 0, 0, 0,
      1, 0),
    C("slct.f32.s32 %f1, %f2, %f3, %r1;", SLCT, F32, S32, 0, 0, 0, 0, 0, 1,
      0),
    C("cvt.rn.f16.f32 %rs1, %f1;", CVT, F16, F32, 0, 0, 0, PTX_RND_RN, 0, 1,
      0),
    C("cvt.rzi.s32.f64 %r1, %fd1;", CVT, S32, F64, 0, 0, 0, PTX_RND_RZI, 0,
      1, 0),
    C("cvt.rn.relu.f16x2.f32 %r1, %f1, %f2;", CVT, F16X2, F32, 0, 0, 0,
      PTX_RND_RN, 0, 1, PTX_F_RELU),
    C("cvt.sat.f32.f32 %f1, %f2;", CVT, F32, F32, 0, 0, 0, 0, 0, 1,
      PTX_F_SAT),
    C("mul.wide.s32 %rd1, %r1, 4;", MUL, S32, NONE, PTX_MUL_WIDE, 0, 0, 0, 0,
      1, 0),
    C("mul.hi.u32 %r1, %r2, %r3;", MUL, U32, NONE, PTX_MUL_HI, 0, 0, 0, 0, 1,
      0),
    C("mad.lo.cc.u32 %r1, %r2, %r3, %r4;", MAD, U32, NONE, PTX_MUL_LO, 0, 0,
      0, 0, 1, PTX_F_CC),
    C("madc.hi.cc.u32 %r1, %r2, %r3, %r4;", MADC, U32, NONE, PTX_MUL_HI, 0,
      0, 0, 0, 1, PTX_F_CC),
    C("mul24.lo.s32 %r1, %r2, %r3;", MUL24, S32, NONE, PTX_MUL_LO, 0, 0, 0,
      0, 1, 0),
    C("mul.rn.f64 %fd1, %fd2, %fd3;", MUL, F64, NONE, 0, 0, 0, PTX_RND_RN, 0,
      1, 0),
    C("div.full.f32 %f1, %f2, %f3;", DIV, F32, NONE, 0, 0, 0, 0, 0, 1,
      PTX_F_FULL),
    C("rcp.approx.ftz.f64 %fd1, %fd2;", RCP, F64, NONE, 0, 0, 0, 0, 0, 1,
      PTX_F_APPROX | PTX_F_FTZ),
    C("ex2.approx.f16 %rs1, %rs2;", EX2, F16, NONE, 0, 0, 0, 0, 0, 1,
      PTX_F_APPROX),
    C("atom.global.cas.b32 %r1, [%rd1], %r2, %r3;", ATOM, B32, NONE,
      PTX_ATOM_CAS, 0, PTX_SP_GLOBAL, 0, 0, 1, 0),
    C("atom.acq_rel.gpu.global.add.u32 %r1, [%rd1], 1;", ATOM, U32, NONE,
      PTX_ATOM_ADD, 0, PTX_SP_GLOBAL, 0, PTX_SCOPE_GPU, 1, PTX_F_MEMORD),
    C("atom.or.relaxed.sys.b32 %r1, [%rd1], 2;", ATOM, B32, NONE,
      PTX_ATOM_OR, 0, 0, 0, PTX_SCOPE_SYS, 1, PTX_F_MEMORD),
    C("atom.global.cta.add.u32 %r1, [%rd1], 1;", ATOM, U32, NONE,
      PTX_ATOM_ADD, 0, PTX_SP_GLOBAL, 0, PTX_SCOPE_CTA, 1, 0),
    C("atom.shared.inc.u32 %r1, [%r2], 10;", ATOM, U32, NONE, PTX_ATOM_INC,
      0, PTX_SP_SHARED, 0, 0, 1, 0),
    C("atom.add.noftz.f16 %rs1, [%rd1], %rs2;", ATOM, F16, NONE,
      PTX_ATOM_ADD, 0, 0, 0, 0, 1, 0),
    C("atom.shared::cta.exch.b64 %rd1, [%r1], %rd2;", ATOM, B64, NONE,
      PTX_ATOM_EXCH, 0, PTX_SP_SHARED, 0, 0, 1, 0),
    C("red.global.add.f32 [%rd1], %f1;", RED, F32, NONE, PTX_ATOM_ADD, 0,
      PTX_SP_GLOBAL, 0, 0, 1, 0),
    C("redux.sync.min.u32 %r1, %r2, -1;", REDUX, U32, NONE, PTX_ATOM_MIN, 0,
      0, 0, 0, 1, PTX_F_SYNC),
    C("vote.sync.ballot.b32 %r1, %p1, -1;", VOTE, B32, NONE,
      PTX_VOTE_BALLOT, 0, 0, 0, 0, 1, PTX_F_SYNC),
    C("vote.all.pred %p1, %p2;", VOTE, PRED, NONE, PTX_VOTE_ALL, 0, 0, 0, 0,
      1, 0),
    C("vote.uni.pred %p1, %p2;", VOTE, PRED, NONE, PTX_VOTE_UNI, 0, 0, 0, 0,
      1, 0),
    C("match.any.sync.b64 %r1, %rd1, -1;", MATCH, B64, NONE, PTX_MATCH_ANY,
      0, 0, 0, 0, 1, PTX_F_SYNC),
    C("activemask.b32 %r1;", ACTIVEMASK, B32, NONE, 0, 0, 0, 0, 0, 1, 0),
    C("bar.sync 0;", BAR, NONE, NONE, PTX_BAR_SYNC, 0, 0, 0, 0, 1, 0),
    C("bar.cta.sync 1, 64;", BAR, NONE, NONE, PTX_BAR_SYNC, 0, 0, 0, 0, 1,
      0),
    C("barrier.sync.aligned 0;", BARRIER, NONE, NONE, PTX_BAR_SYNC, 0, 0, 0,
      0, 1, PTX_F_ALIGNED),
    C("barrier.sync %r1;", BARRIER, NONE, NONE, PTX_BAR_SYNC, 0, 0, 0, 0, 1,
      0),
    C("bar.warp.sync -1;", BAR, NONE, NONE, PTX_BAR_WARP_SYNC, 0, 0, 0, 0, 1,
      0),
    C("bar.arrive 1, 64;", BAR, NONE, NONE, PTX_BAR_ARRIVE, 0, 0, 0, 0, 1,
      0),
    C("bar.red.popc.u32 %r1, 0, %p1;", BAR, U32, NONE, PTX_BAR_RED,
      PTX_BOOL_POPC, 0, 0, 0, 1, 0),
    C("bar.red.or.pred %p1, 0, %p2;", BAR, PRED, NONE, PTX_BAR_RED,
      PTX_BOOL_OR, 0, 0, 0, 1, 0),
    C("membar.gl;", MEMBAR, NONE, NONE, PTX_SCOPE_GPU, 0, 0, 0,
      PTX_SCOPE_GPU, 1, 0),
    C("membar.cta;", MEMBAR, NONE, NONE, PTX_SCOPE_CTA, 0, 0, 0,
      PTX_SCOPE_CTA, 1, 0),
    C("membar.sys;", MEMBAR, NONE, NONE, PTX_SCOPE_SYS, 0, 0, 0,
      PTX_SCOPE_SYS, 1, 0),
    C("fence.sc.cta;", FENCE, NONE, NONE, PTX_SCOPE_CTA, 0, 0, 0,
      PTX_SCOPE_CTA, 1, PTX_F_MEMORD),
    C("fence.acq_rel.gpu;", FENCE, NONE, NONE, PTX_SCOPE_GPU, 0, 0, 0,
      PTX_SCOPE_GPU, 1, PTX_F_MEMORD),
    C("cvta.to.global.u64 %rd1, %rd2;", CVTA, U64, NONE, 0, 0,
      PTX_SP_GLOBAL, 0, 0, 1, PTX_F_TO),
    C("cvta.shared.u64 %rd1, %rd2;", CVTA, U64, NONE, 0, 0, PTX_SP_SHARED, 0,
      0, 1, 0),
    C("isspacep.global %p1, %rd1;", ISSPACEP, NONE, NONE, 0, 0,
      PTX_SP_GLOBAL, 0, 0, 1, 0),
    C("ld.global.nc.v2.f64 {%fd1, %fd2}, [%rd1];", LD, F64, NONE, 0, 0,
      PTX_SP_GLOBAL, 0, 0, 2, PTX_F_NC),
    C("ld.global.L1::evict_last.L2::256B.f32 %f1, [%rd1];", LD, F32, NONE, 0,
      0, PTX_SP_GLOBAL, 0, 0, 1, 0),
    C("ld.global.cs.f32 %f1, [%rd1];", LD, F32, NONE, 0, 0, PTX_SP_GLOBAL, 0,
      0, 1, 0),
    C("ld.acquire.gpu.b32 %r1, [%rd1];", LD, B32, NONE, 0, 0, 0, 0,
      PTX_SCOPE_GPU, 1, PTX_F_MEMORD),
    C("ld.volatile.shared.u32 %r1, [%r2];", LD, U32, NONE, 0, 0,
      PTX_SP_SHARED, 0, 0, 1, PTX_F_VOLATILE),
    C("ld.u64 %rd1, [%rd2];", LD, U64, NONE, 0, 0, PTX_SP_NONE, 0, 0, 1, 0),
    C("st.release.gpu.b32 [%rd1], %r1;", ST, B32, NONE, 0, 0, 0, 0,
      PTX_SCOPE_GPU, 1, PTX_F_MEMORD),
    C("st.global.wb.v4.u32 [%rd1], {%r1, %r2, %r3, %r4};", ST, U32, NONE, 0,
      0, PTX_SP_GLOBAL, 0, 0, 4, 0),
    C("prmt.b32.f4e %r1, %r2, %r3, %r4;", PRMT, B32, NONE, PTX_PRMT_F4E, 0,
      0, 0, 0, 1, 0),
    C("prmt.b32 %r1, %r2, %r3, 21520;", PRMT, B32, NONE, 0, 0, 0, 0, 0, 1,
      0),
    C("shf.r.clamp.b32 %r1, %r2, %r3, %r4;", SHF, B32, NONE, PTX_SHF_R,
      PTX_SHF_CLAMP, 0, 0, 0, 1, 0),
    C("shf.l.wrap.b32 %r1, %r2, %r3, 5;", SHF, B32, NONE, PTX_SHF_L,
      PTX_SHF_WRAP, 0, 0, 0, 1, 0),
    C("testp.notanumber.f64 %p1, %fd1;", TESTP, F64, NONE,
      PTX_TESTP_NOTANUMBER, 0, 0, 0, 0, 1, 0),
    C("bfind.shiftamt.u32 %r1, %r2;", BFIND, U32, NONE, 0, 0, 0, 0, 0, 1,
      PTX_F_SHIFTAMT),
    C("min.NaN.f32 %f1, %f2, %f3;", MIN, F32, NONE, 0, 0, 0, 0, 0, 1,
      PTX_F_NAN),
    C("max.xorsign.abs.f16 %rs1, %rs2, %rs3;", MAX, F16, NONE, 0, 0, 0, 0,
      0, 1, PTX_F_XORSIGN | PTX_F_ABS),
    C("dp4a.u32.s32 %r1, %r2, %r3, %r4;", DP4A, U32, S32, 0, 0, 0, 0, 0, 1,
      0),
    C("tanh.approx.f32 %f1, %f2;", TANH, F32, NONE, 0, 0, 0, 0, 0, 1,
      PTX_F_APPROX),
    C("lop3.b32 %r1, %r2, %r3, %r4, 0x96;", LOP3, B32, NONE, 0, 0, 0, 0, 0,
      1, 0),
    C("addc.cc.u32 %r1, %r2, %r3;", ADDC, U32, NONE, 0, 0, 0, 0, 0, 1,
      PTX_F_CC),
    C("not.pred %p1, %p2;", NOT, PRED, NONE, 0, 0, 0, 0, 0, 1, 0),
    C("nanosleep.u32 100;", NANOSLEEP, U32, NONE, 0, 0, 0, 0, 0, 1, 0),
    C("prefetch.global.L2 [%rd1];", PREFETCH, NONE, NONE, 0, 0,
      PTX_SP_GLOBAL, 0, 0, 1, 0),
    C("trap;", TRAP, NONE, NONE, 0, 0, 0, 0, 0, 1, 0),
    C("exit;", EXIT, NONE, NONE, 0, 0, 0, 0, 0, 1, 0),
    C("ret.uni;", RET, NONE, NONE, 0, 0, 0, 0, 0, 1, PTX_F_UNI),
    C("pmevent 1;", PMEVENT, NONE, NONE, 0, 0, 0, 0, 0, 1, 0),
    C("stacksave.u64 %rd1;", STACKSAVE, U64, NONE, 0, 0, 0, 0, 0, 1, 0),
    C("alloca.u64 %rd1, %rd2, 16;", ALLOCA, U64, NONE, 0, 0, 0, 0, 0, 1, 0),
#undef C
  };

  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct ptx_module *m = one(cases[i].code);
    const struct ptx_insn *in = insn(m, "k", 0);

    if (in->op != cases[i].op || in->type != cases[i].type ||
        in->type2 != cases[i].type2 || in->mode != cases[i].mode ||
        in->mode2 != cases[i].mode2 || in->space != cases[i].space ||
        in->rnd != cases[i].rnd || in->scope != cases[i].scope ||
        in->vec != cases[i].vec || in->flags != cases[i].flags)
      fail_msg("%s: op %u type %u/%u mode %u/%u space %u rnd %u scope %u "
               "vec %u flags %#x", cases[i].code, in->op, in->type,
               in->type2, in->mode, in->mode2, in->space, in->rnd,
               in->scope, in->vec, in->flags);
    ptx_module_free(m);
  }

  one_fail("add.foo.s32 %r1, %r2, %r3;", -EINVAL,
           "line 15: unknown modifier '.foo' in 'add.foo.s32'");
  one_fail("setp.wide.s32 %p1, %r2, %r3;", -EINVAL, "unknown modifier "
           "'.wide'");
  one_fail("add.s32.u32 %r1, %r2, %r3;", -EINVAL, "too many types in "
           "'add.s32.u32'");
  one_fail("cvt.f32.f16.f64 %f1, %rs1;", -EINVAL, "too many types");
  one_fail("frob.s32 %r1;", -EINVAL, "line 15: unknown instruction "
           "'frob.s32'");
  one_fail("tex.2d.v4.f32.f32 {%f1, %f2, %f3, %f4}, [%rd1, {%f1, %f2}];",
           -ENOTSUP, "unsupported instruction 'tex.2d.v4.f32.f32'");
  one_fail("wgmma.mma_async.sync.aligned.m64n8k16.f32.f16.f16;", -ENOTSUP,
           "unsupported instruction");
  one_fail("brx.idx %r1, tbl;", -ENOTSUP, "brx.idx");
  one_fail("ld.global.L2::cache_hint.f32 %f1, [%rd1], %rd2;", -ENOTSUP,
           "unsupported modifier '.L2::cache_hint'");
  one_fail("cvt.rn.satfinite.e4m3x2.f32 %rs1, %f1, %f2;", -ENOTSUP,
           "unsupported modifier '.satfinite' in "
           "'cvt.rn.satfinite.e4m3x2.f32'");
  one_fail("fence.proxy.async;", -ENOTSUP, "unsupported modifier '.proxy'");
}

static const char callseq_ptx[] = HDR
  ".extern .func (.param .b32 func_retval0) vprintf\n"
  "(\n .param .b64 vprintf_param_0,\n .param .b64 vprintf_param_1\n);\n"
  ".func (.param .b32 func_retval0) fib(.param .b32 fib_param_0);\n"
  ".func (.param .align 8 .b8 func_retval0[16]) big(\n"
  "  .param .b32 big_p0, .param .align 16 .b8 big_p1[32], .param .b8 big_p2"
  ")\n{\n ret;\n}\n"
  ".func (.param .b32 func_retval0) fib(\n"
  "  .param .b32 fib_param_0\n)\n"
  "{\n"
  " .reg .pred %p<2>;\n .reg .b32 %r<9>;\n"
  " ld.param.u32 %r8, [fib_param_0];\n"
  " setp.lt.s32 %p1, %r8, 2;\n"
  " @%p1 bra $L__BB0_2;\n"
  " add.s32 %r4, %r8, -1;\n"
  " { // callseq 0, 0\n"
  " .reg .b32 temp_param_reg;\n"
  " .param .b32 param0;\n"
  " st.param.b32 [param0+0], %r4;\n"
  " .param .b32 retval0;\n"
  " call.uni (retval0), \n fib, \n (\n param0\n );\n"
  " ld.param.b32 %r5, [retval0+0];\n"
  " } // callseq 0\n"
  " {\n"
  " .param .b64 param0;\n"
  " .param .b32 param1;\n"
  " .param .b32 retval0;\n"
  " call (retval0), late, (param0, param1);\n"
  " call.uni later;\n"
  " }\n"
  "$L__BB0_2:\n"
  " st.param.b32 [func_retval0+0], %r8;\n"
  " ret;\n"
  "}\n"
  ".visible .entry kern(.param .u64 kern_p)\n"
  "{\n"
  " .reg .b64 %rd<3>;\n"
  " {\n"
  " .param .b64 param0;\n .param .b64 param1;\n .param .b64 param2;\n"
  " .param .b64 param3;\n .param .b64 param4;\n .param .b32 retval0;\n"
  " call.uni (retval0), many, (param0, param1, param2, param3, param4);\n"
  " call.uni vprintf, (param0, param1);\n"
  " }\n"
  " ret;\n"
  "}\n"
  ".func (.param .b32 r) late(.param .b64 a, .param .b32 b) { ret; }\n"
  ".func later() { ret; }\n"
  ".func (.param .b32 r) many(.param .b64 a, .param .b64 b, .param .b64 c,"
  " .param .b64 d, .param .b64 e) { ret; }\n";

static void test_calls(void **state)
{
  struct ptx_module *m;
  const struct ptx_func *f, *vp, *big;
  const struct ptx_insn *in;

  (void)state;
  m = parse_ok(callseq_ptx);
  assert_int_equal(m->nfuncs, 7); /* the declaration of fib is merged */
  vp = func(m, "vprintf");
  assert_true(vp->is_extern);
  assert_false(vp->is_entry);
  assert_int_equal(vp->insn_count, 0);
  assert_int_equal(vp->nrets, 1);
  assert_int_equal(vp->nparams, 2);
  assert_int_equal(m->syms[m->lists[vp->rets]].offset, 0);
  assert_int_equal(m->syms[param_sym(m, vp, 0)].offset, 8);
  assert_int_equal(m->syms[param_sym(m, vp, 1)].offset, 16);
  assert_int_equal(m->syms[param_sym(m, vp, 1)].kind, PTX_SYM_FPARAM);
  assert_int_equal(vp->param_size, 24);

  big = func(m, "big");
  assert_int_equal(m->syms[m->lists[big->rets]].size, 16);
  assert_int_equal(m->syms[m->lists[big->rets]].align, 8);
  assert_int_equal(m->syms[param_sym(m, big, 0)].offset, 16);
  assert_int_equal(m->syms[param_sym(m, big, 1)].offset, 32);
  assert_int_equal(m->syms[param_sym(m, big, 1)].align, 16);
  assert_int_equal(m->syms[param_sym(m, big, 2)].offset, 64);
  assert_int_equal(big->param_size, 65);
  assert_int_equal(big->fparam_size, 65);

  f = func(m, "fib");
  assert_false(f->is_extern);
  assert_int_equal(f->nrets, 1);
  assert_int_equal(f->nparams, 1);
  assert_int_equal(f->nregs, 2 + 9 + 1);
  /* returns first, then params, then each call site's own .params */
  assert_int_equal(m->syms[m->lists[f->rets]].offset, 0);
  assert_int_equal(m->syms[param_sym(m, f, 0)].offset, 4);
  assert_int_equal(m->syms[param_sym(m, f, 0)].func, f - m->funcs);
  in = insn(m, "fib", 4);
  assert_int_equal(in->op, PTX_OP_ST);
  assert_int_equal(in->space, PTX_SP_PARAM);
  uint32_t p0 = in->ops[0].sym;

  assert_string_equal(m->syms[p0].name, "param0");
  assert_int_equal(m->syms[p0].kind, PTX_SYM_FPARAM);
  assert_int_equal(m->syms[p0].offset, 8);
  in = insn(m, "fib", 5);
  assert_int_equal(in->op, PTX_OP_CALL);
  assert_true(in->flags & PTX_F_UNI);
  assert_int_equal(in->nops, 3);
  assert_int_equal(in->ops[0].kind, PTX_O_LIST);
  assert_int_equal(in->ops[0].n, 1);
  assert_int_equal(m->syms[in->ops[0].vec[0]].offset, 12);
  assert_int_equal(in->ops[1].kind, PTX_O_FUNC);
  assert_int_equal(in->ops[1].target, f - m->funcs);
  assert_int_equal(in->ops[2].kind, PTX_O_LIST);
  assert_int_equal(in->ops[2].n, 1);
  assert_int_equal(in->ops[2].vec[0], p0);
  assert_int_equal(insn(m, "fib", 6)->ops[1].sym, in->ops[0].vec[0]);
  /* the second scope's param0 is a new symbol with fresh space */
  in = insn(m, "fib", 7);
  assert_int_equal(in->ops[1].target, func(m, "late") - m->funcs);
  assert_int_equal(in->ops[2].n, 2);
  assert_int_not_equal(in->ops[2].vec[0], p0);
  assert_int_equal(m->syms[in->ops[2].vec[0]].offset, 16);
  assert_int_equal(m->syms[in->ops[2].vec[1]].offset, 24);
  assert_int_equal(m->syms[in->ops[0].vec[0]].offset, 28);
  assert_int_equal(f->param_size, 32);
  assert_int_equal(f->fparam_size, 32);
  in = insn(m, "fib", 8);
  assert_int_equal(in->ops[0].n, 0);
  assert_int_equal(in->ops[1].target, func(m, "later") - m->funcs);
  assert_int_equal(in->ops[2].n, 0);
  /* labels: the forward branch targets the st after the scopes */
  assert_int_equal(insn(m, "fib", 2)->ops[0].kind, PTX_O_LABEL);
  assert_int_equal(insn(m, "fib", 2)->ops[0].target, f->insn_start + 9);

  /* an entry: KPARAMs in param_size, call-site params in fparam_size */
  f = func(m, "kern");
  assert_int_equal(f->param_size, 8);
  assert_int_equal(f->fparam_size, 44);
  in = insn(m, "kern", 0);
  assert_int_equal(in->ops[2].n, 5);
  for (unsigned i = 0; i < 5; i++)
    assert_int_equal(m->syms[m->lists[in->ops[2].list_off + i]].offset,
                     8 * i);
  assert_string_equal(m->syms[m->lists[in->ops[2].list_off + 4]].name,
                      "param4");
  assert_int_equal(insn(m, "kern", 1)->ops[1].target, vp - m->funcs);
  ptx_module_free(m);

  parse_fail(HDR ".func f() { .reg .b64 %rd; .param .b32 p; "
             "call.uni (p), %rd, (p), proto; ret; }", -ENOTSUP,
             "indirect call through '%rd'");
  parse_fail(HDR ".func g() { ret; }\n.func f() { .param .b32 p; "
             "call.uni g, (p), proto; ret; }", -ENOTSUP, "prototype");
  parse_fail(HDR ".func f() { call.uni nowhere; ret; }", -EINVAL,
             "line 4: call to undeclared function 'nowhere'");
  parse_fail(HDR ".func f() { .reg .b32 %r; call.uni f, (%r); ret; }",
             -ENOTSUP, "register '%r' as a call argument");
  parse_fail(HDR ".func f() { .reg .b64 %rd; mov.u64 %rd, f; ret; }",
             -ENOTSUP, "the address of function 'f'");
  parse_fail(HDR ".func f() { ret; }\n.func f() { ret; }\n", -EINVAL,
             "line 5: function 'f' defined twice");
  parse_fail(HDR ".func f();\n.entry f() { ret; }\n", -EINVAL,
             "both .entry and .func");
  parse_fail(HDR ".entry (.param .b32 r) f() { ret; }\n", -EINVAL,
             "returns nothing");
  parse_fail(HDR ".func f(.reg .b32 x) { ret; }\n", -ENOTSUP,
             ".reg parameters");
  parse_fail(HDR "p: .callprototype ()_ (.param .b32 _);\n", -EINVAL,
             "expected a directive");
  parse_fail(HDR ".func f() {\nproto: .callprototype ()_ ();\n ret; }\n",
             -ENOTSUP, "line 5: '.callprototype' is not supported");
}

static void test_labels(void **state)
{
  struct ptx_module *m;
  const struct ptx_func *f;
  char *s;

  (void)state;
  s = body(".reg .pred %p;\n",
           "bra.uni END;\n"          /* 0 */
           "TOP:\n"
           "@%p bra TOP;\n"          /* 1 */
           "{ L: bra L; }\n"         /* 2: inner L */
           "{ L: bra L; }\n"         /* 3: a sibling's own L */
           "L: { bra L; }\n"         /* 4: outer L from inside */
           "{ bra.uni M; M: }\n"     /* 5: forward into the end of a scope */
           "END:\n");
  m = parse_ok(s);
  free(s);
  f = func(m, "k");
  assert_int_equal(f->insn_count, 6);
  assert_int_equal(insn(m, "k", 0)->ops[0].target, f->insn_start + 6);
  assert_true(insn(m, "k", 0)->flags & PTX_F_UNI);
  assert_int_equal(insn(m, "k", 1)->ops[0].target, f->insn_start + 1);
  assert_int_equal(insn(m, "k", 2)->ops[0].target, f->insn_start + 2);
  assert_int_equal(insn(m, "k", 3)->ops[0].target, f->insn_start + 3);
  assert_int_equal(insn(m, "k", 4)->ops[0].target, f->insn_start + 4);
  assert_int_equal(insn(m, "k", 5)->ops[0].target, f->insn_start + 6);
  ptx_module_free(m);

  s = body("", "bra NOWHERE;\n");
  parse_fail(s, -EINVAL, "line 9: undefined label 'NOWHERE'");
  free(s);
  s = body("", "X:\nX:\nret;\n");
  parse_fail(s, -EINVAL, "line 10: label 'X' defined twice");
  free(s);
  s = body("", "{ IN: }\nbra IN;\n");
  parse_fail(s, -EINVAL, "undefined label 'IN'");
  free(s);
}

static void test_kparams(void **state)
{
  struct ptx_module *m;
  const struct ptx_func *f;
  static const uint64_t off[] = { 0, 24, 28, 32, 40, 48, 80, 96 };
  static const uint64_t size[] = { 24, 4, 1, 8, 2, 32, 16, 8 };

  (void)state;
  /* struct by value, then scalars of every size, then float4/double2 */
  m = parse_ok(HDR ".visible .entry k(\n"
               "  .param .align 8 .b8 k_p0[24],\n"
               "  .param .f32 k_p1,\n"
               "  .param .u8 k_p2,\n"
               "  .param .u64 .ptr .global .align 16 k_p3,\n"
               "  .param .s16 k_p4,\n"
               "  .param .align 16 .b8 k_p5[32],\n"
               "  .param .align 16 .b8 k_p6[16],\n"
               "  .param .b64 k_p7\n"
               ")\n.maxntid 256, 1, 1\n.minnctapersm 2\n{\n ret;\n}\n"
               ".entry e2() .reqntid 32, 4 .maxnreg 64 { ret; }\n");
  f = func(m, "k");
  assert_int_equal(f->nparams, 8);
  for (unsigned i = 0; i < 8; i++) {
    const struct ptx_symbol *y = &m->syms[param_sym(m, f, i)];

    assert_int_equal(y->kind, PTX_SYM_KPARAM);
    assert_int_equal(y->offset, off[i]);
    assert_int_equal(y->size, size[i]);
  }
  assert_int_equal(m->syms[param_sym(m, f, 0)].align, 8);
  assert_int_equal(m->syms[param_sym(m, f, 0)].type, PTX_T_B8);
  assert_int_equal(m->syms[param_sym(m, f, 3)].align, 8);
  assert_int_equal(f->param_size, 104);
  assert_int_equal(f->maxntid[0], 256);
  assert_int_equal(f->maxntid[1], 1);
  assert_int_equal(f->maxntid[2], 1);
  assert_int_equal(f->minnctapersm, 2);
  f = func(m, "e2");
  assert_int_equal(f->nparams, 0);
  assert_int_equal(f->param_size, 0);
  assert_int_equal(f->reqntid[0], 32);
  assert_int_equal(f->reqntid[1], 4);
  assert_int_equal(f->reqntid[2], 1);
  assert_int_equal(f->maxntid[0], 0);
  assert_int_equal(f->maxnreg, 64);
  ptx_module_free(m);

  parse_fail(HDR ".entry k(.param .b8 p[]) { ret; }\n", -EINVAL,
             "expected a number, found ']'");
  parse_fail(HDR ".entry k(.param .b8 p[4], .param .b8 p[4]) { ret; }\n",
             -EINVAL, "'p' declared twice");
  parse_fail(HDR ".entry k(.param .align 3 .b8 p[4]) { ret; }\n", -EINVAL,
             "not a power of 2");
  parse_fail(HDR ".entry k(.param p) { ret; }\n", -EINVAL, "a type");
}

static void test_shared_local(void **state)
{
  struct ptx_module *m;
  const struct ptx_symbol *a, *b, *c, *dyn, *dyn2;
  const struct ptx_func *f;

  (void)state;
  m = parse_ok(HDR
               ".shared .align 4 .b8 a[10];\n"
               ".extern .shared .align 16 .b8 dyn[];\n"
               ".extern .shared .align 128 .b8 dyn2[];\n"
               ".visible .entry k()\n{\n"
               " .local .align 16 .b8 __local_depot0[40];\n"
               " .local .u32 lx;\n"
               " .local .align 8 .b8 ly[3];\n"
               " .reg .b64 %SPL;\n"
               " .shared .align 8 .b8 b[8];\n"
               " mov.u64 %SPL, __local_depot0;\n"
               " ret;\n}\n"
               ".entry k2() { .shared .align 64 .f32 c[3]; ret; }\n");
  a = sym(m, "a");
  dyn = sym(m, "dyn");
  dyn2 = sym(m, "dyn2");
  b = &m->syms[any_sym_f(m, "b")];
  c = &m->syms[any_sym_f(m, "c")];
  assert_int_equal(a->kind, PTX_SYM_SHARED);
  assert_int_equal(a->offset, 0);
  assert_int_equal(a->size, 10);
  assert_int_equal(b->kind, PTX_SYM_SHARED);
  assert_int_equal(b->offset, 16);
  assert_int_equal(b->func, 0);
  assert_int_equal(c->offset, 64);
  assert_int_equal(c->size, 12);
  assert_int_equal(c->type, PTX_T_F32);
  assert_int_equal(m->shared_static_size, 76);
  assert_int_equal(m->shared_align, 128);
  assert_int_equal(dyn->kind, PTX_SYM_SHARED_EXTERN);
  assert_int_equal(dyn->size, 0);
  assert_true(dyn->flags & PTX_SYMF_EXTERN);
  assert_int_equal(dyn->offset, 80);
  assert_int_equal(dyn2->offset, 128);

  f = func(m, "k");
  assert_int_equal(m->syms[any_sym_f(m, "__local_depot0")].kind,
                   PTX_SYM_LOCAL);
  assert_int_equal(m->syms[any_sym_f(m, "__local_depot0")].offset, 0);
  assert_int_equal(m->syms[any_sym_f(m, "lx")].offset, 40);
  assert_int_equal(m->syms[any_sym_f(m, "ly")].offset, 48);
  assert_int_equal(f->local_size, 51);
  assert_int_equal(f->local_align, 16);
  assert_int_equal(func(m, "k2")->local_size, 0);
  assert_int_equal(insn(m, "k", 0)->ops[1].kind, PTX_O_SYM);
  assert_int_equal(insn(m, "k", 0)->ops[1].sym,
                   any_sym_f(m, "__local_depot0"));
  ptx_module_free(m);

  m = parse_ok(HDR ".shared .b8 x[3];\n");
  assert_int_equal(m->shared_static_size, 3);
  assert_int_equal(m->shared_align, 16);
  ptx_module_free(m);

  parse_fail(HDR ".shared .b8 x[4];\n.shared .b8 x[4];\n", -EINVAL,
             "'x' declared twice");
  parse_fail(HDR ".shared .u32 x = 5;\n", -EINVAL, "take initializers");
  parse_fail(HDR ".local .u32 x;\n", -ENOTSUP, "module-scope .local");
  parse_fail(HDR ".entry k() { .local .b8 x[]; ret; }\n", -EINVAL,
             "needs a size");
  parse_fail(HDR ".entry k() { .global .b8 x[4]; ret; }\n", -ENOTSUP,
             "inside a function");
}

static void test_globals(void **state)
{
  struct ptx_module *m;
  const struct ptx_symbol *y;
  float f;
  double d;

  (void)state;
  m = parse_ok(HDR
               ".global .align 4 .b8 g[8] = {1, 2, 3, 255, 256, -1};\n"
               ".global .f32 fa[3] = {1.5, 0f40000000};\n"
               ".global .u64 q = -1;\n"
               ".const .align 8 .f64 cd[2] = {0d3FF0000000000000};\n"
               ".global .u16 md[2][3] = {{1, 2}, {3}};\n"
               ".global .v2 .f32 vv = {1.0, 2.0};\n"
               ".global .v2 .u32 va[2] = {{1, 2}, {3, 4}};\n"
               ".global .b8 s[] = {104, 105, 0};\n"
               ".global .u32 s2[][2] = {1, 2, 3};\n"
               ".extern .global .align 4 .u32 later;\n"
               ".visible .global .align 4 .u32 later = 7;\n"
               ".extern .global .u32 never;\n"
               ".weak .global .u32 w;\n"
               ".global .attribute(.managed) .align 4 .u32 mv;\n"
               ".global .u32 l1 = 1, l2, l3 = 3;\n"
               ".const .b8 big[100];\n");
  y = sym(m, "g");
  assert_int_equal(y->kind, PTX_SYM_GLOBAL);
  assert_int_equal(y->size, 8);
  assert_int_equal(y->align, 4);
  assert_true(y->flags & PTX_SYMF_INIT);
  assert_int_equal(y->func, UINT32_MAX);
  assert_memory_equal(m->init + y->init_off,
                      "\x01\x02\x03\xff\x00\xff\x00\x00", 8);
  y = sym(m, "fa");
  assert_int_equal(y->size, 12);
  assert_int_equal(y->align, 4);
  memcpy(&f, m->init + y->init_off, 4);
  assert_true(f == 1.5f);
  memcpy(&f, m->init + y->init_off + 4, 4);
  assert_true(f == 2.0f);
  memcpy(&f, m->init + y->init_off + 8, 4);
  assert_true(f == 0.0f);
  y = sym(m, "q");
  assert_memory_equal(m->init + y->init_off, "\xff\xff\xff\xff\xff\xff\xff"
                      "\xff", 8);
  y = sym(m, "cd");
  assert_int_equal(y->kind, PTX_SYM_CONST);
  memcpy(&d, m->init + y->init_off, 8);
  assert_true(d == 1.0);
  assert_memory_equal(m->init + y->init_off + 8, "\0\0\0\0\0\0\0\0", 8);
  y = sym(m, "md");
  assert_int_equal(y->size, 12);
  assert_memory_equal(m->init + y->init_off,
                      "\x01\0\x02\0\0\0\x03\0\0\0\0\0", 12);
  y = sym(m, "vv");
  assert_int_equal(y->size, 8);
  assert_int_equal(y->align, 8);
  memcpy(&f, m->init + y->init_off + 4, 4);
  assert_true(f == 2.0f);
  y = sym(m, "va");
  assert_int_equal(y->size, 16);
  assert_int_equal(m->init[y->init_off + 12], 4);
  y = sym(m, "s");
  assert_int_equal(y->size, 3);
  assert_memory_equal(m->init + y->init_off, "hi", 3);
  y = sym(m, "s2");
  assert_int_equal(y->size, 16);
  y = sym(m, "later");
  assert_int_equal(y->flags, PTX_SYMF_VISIBLE | PTX_SYMF_INIT);
  assert_int_equal(m->init[y->init_off], 7);
  assert_int_equal(sym(m, "never")->flags, PTX_SYMF_EXTERN);
  assert_int_equal(sym(m, "w")->flags, PTX_SYMF_WEAK);
  assert_int_equal(sym(m, "mv")->flags, PTX_SYMF_MANAGED);
  assert_int_equal(m->init[sym(m, "l3")->init_off], 3);
  assert_int_equal(sym(m, "l2")->flags, 0);
  y = sym(m, "big");
  assert_int_equal(y->size, 100);
  assert_int_equal(y->flags, 0);
  ptx_module_free(m);

  parse_fail(HDR ".global .u64 p = generic(x);\n", -ENOTSUP,
             "line 4: initializer holding the address of 'generic'");
  parse_fail(HDR ".global .u32 x;\n.global .u64 p[2] = {0, x};\n", -ENOTSUP,
             "address of 'x'");
  parse_fail(HDR ".global .u32 a[2] = {1, 2, 3};\n", -EINVAL,
             "too many initializers for 'a'");
  parse_fail(HDR ".global .u32 a[2][2] = {{1, 2, 3}};\n", -EINVAL,
             "too many initializers");
  parse_fail(HDR ".global .u32 a[2] = {{1}};\n", -EINVAL, "too many braces");
  parse_fail(HDR ".global .u32 a[2] = 1;\n", -EINVAL, "'{' to initialize");
  parse_fail(HDR ".global .u32 a[2] = {1 2};\n", -EINVAL, "',' or '}'");
  parse_fail(HDR ".extern .global .u32 a = 1;\n", -EINVAL, ".extern");
  parse_fail(HDR ".global .u32 a;\n.global .u32 a;\n", -EINVAL,
             "declared twice");
  parse_fail(HDR ".global .b8 a[100000000] = {1};\n", -E2BIG,
             "bytes of initializers");
  parse_fail(HDR ".global .b8 a[100000000000];\n", -E2BIG, "larger than");
  parse_fail(HDR ".global .b8 a[65536][65536][2];\n", -E2BIG, "larger than");
  parse_fail(HDR ".global .texref t;\n", -ENOTSUP, "texture");
  parse_fail(HDR ".texref t;\n", -ENOTSUP, "'.texref' is not supported");
  parse_fail(HDR ".global .attribute(.unified) .u32 x;\n", -ENOTSUP,
             ".attribute");
  parse_fail(HDR ".global .u32 .f32 x;\n", -EINVAL, "two types");
  parse_fail(HDR ".global .u32 x[1][2][3][4][5][6][7][8][9];\n", -E2BIG,
             "dimensions");
}

static void test_debug_directives(void **state)
{
  struct ptx_module *m;

  (void)state;
  m = parse_ok(HDR
               ".file 1 \"/tmp/a.cu\"\n"
               ".file 2 \"/usr/include/x.h\", 1700000000, 1234\n"
               ".pragma \"nounroll\";\n"
               ".visible .entry k()\n{\n"
               " .reg .b32 %r<2>;\n"
               " .loc 1 15 0\n"
               "$L__func_begin0:\n"
               " .loc 1 16 3, function_name $L__info_string0, inlined_at 1 "
               "2 3\n"
               " mov.u32 %r1, 1; /* inline */ // trailing\n"
               " .pragma \"nounroll\";\n"
               "$L__func_end0:\n"
               "}\n"
               ".section .debug_loc\n{\n"
               ".b64 $L__func_begin0\n.b32 .debug_loc+195\n"
               ".b8 97,114,114\n.b8 0\n{ nested }\n}\n"
               ".section .debug_macinfo { .b8 0 }\n");
  assert_int_equal(m->nfuncs, 1);
  assert_int_equal(m->ninsns, 1);
  assert_int_equal(m->insns[0].line, 13);
  ptx_module_free(m);
  parse_fail(HDR ".section .debug_info {\n.b8 0\n", -EINVAL,
             "line 4: unterminated .section");
  parse_fail(HDR "/* open", -EINVAL, "line 4: unexpected '/*'");
  parse_fail(HDR ".pragma nounroll;\n", -EINVAL, "a string after .pragma");
  parse_fail(HDR ".pragma \"abc\n\";\n", -EINVAL, "a string");
}

static void test_errors(void **state)
{
  struct ptx_module *m = NULL;
  char err[8];
  char *s;
  int rc;

  (void)state;
  parse_fail(HDR ".visible .entry k() {\n ret;\n", -EINVAL,
             "end of input inside a function");
  parse_fail(HDR ".visible .entry k(\n", -EINVAL, "'.param'");
  parse_fail(HDR ".visible .entry", -EINVAL, "a function name");
  parse_fail(HDR ".entry k() { ret; } }", -EINVAL, "expected a directive");
  parse_fail(HDR "\x01\x02", -EINVAL, "line 4: unexpected '?'");
  parse_fail(HDR ".entry k() { ret; \x7f }", -EINVAL, "unexpected '?'");
  parse_fail(HDR ".entry k() .maxntid 1, 2, 3, 4 { ret; }", -EINVAL,
             "at most 3");
  parse_fail(HDR ".entry k() .maxntid 99999999999 { ret; }", -E2BIG,
             "directive argument");
  parse_fail(HDR ".entry k() { .reg .b32 %r; mov.b32 %r, "
             "99999999999999999999999; ret; }", -EINVAL, "out of range");
  parse_fail(HDR ".entry k() { .foo; }", -EINVAL,
             "unknown directive '.foo' in a function body");
  parse_fail(HDR ".entry k() { [ }", -EINVAL, "unexpected '['");
  parse_fail(HDR ".alias a, b;\n", -ENOTSUP, ".alias");
  parse_fail(HDR ".target sm_75, map_f64_to_f32\n", -ENOTSUP,
             "map_f64_to_f32");

  /* the message is cut, never overrun, and still NUL-terminated */
  s = body("", "frob;");
  rc = parse(s, &m, err, sizeof(err));
  free(s);
  assert_int_equal(rc, -EINVAL);
  assert_null(m);
  assert_int_equal(strlen(err), sizeof(err) - 1);
  assert_memory_equal(err, "line 9:", 7);
  /* no message buffer at all */
  rc = ptx_parse("x", 1, &m, NULL, 0);
  assert_int_equal(rc, -EINVAL);
  assert_null(m);
  /* exactly len bytes are read: the same text cut before its ';' */
  rc = ptx_parse(HDR ".global .u32 x;", strlen(HDR ".global .u32 x"), &m,
                 NULL, 0);
  assert_int_equal(rc, -EINVAL);
  rc = ptx_parse(NULL, 0, &m, NULL, 0);
  assert_int_equal(rc, -EINVAL);
  assert_int_equal(ptx_parse(NULL, 5, &m, NULL, 0), -EINVAL);
}

/* ---- the real nvcc output ----------------------------------------------- */

static char *slurp(const char *path, size_t *len)
{
  FILE *f = fopen(path, "rb");
  char *buf;
  long n;

  if (!f)
    fail_msg("cannot open %s", path);
  assert_int_equal(fseek(f, 0, SEEK_END), 0);
  n = ftell(f);
  assert_true(n > 0);
  rewind(f);
  buf = malloc((size_t)n);
  assert_non_null(buf);
  assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  *len = (size_t)n;
  return buf;
}

static int cmp_name(const void *a, const void *b)
{
  return strcmp(a, b);
}

/* The corpus's .ptx files, sorted; returns how many. */
static int corpus_files(char names[][256], int max)
{
  DIR *d;
  struct dirent *e;
  int n = 0;

  if (!corpus_dir)
    fail_msg("usage: test_ptx_parse CORPUS_DIR");
  d = opendir(corpus_dir);
  assert_non_null(d);
  while ((e = readdir(d)) && n < max) {
    size_t l = strlen(e->d_name);

    if (l > 4 && strcmp(e->d_name + l - 4, ".ptx") == 0)
      snprintf(names[n++], 256, "%s/%s", corpus_dir, e->d_name);
  }
  closedir(d);
  qsort(names, (size_t)n, 256, cmp_name);
  return n;
}

static void test_corpus(void **state)
{
  static char names[64][256];
  int n = corpus_files(names, 64);
  unsigned long insns = 0;

  (void)state;
  assert_true(n >= 12);
  for (int i = 0; i < n; i++) {
    struct ptx_module *m = NULL;
    char err[256], why[128];
    size_t len;
    char *text = slurp(names[i], &len);
    int rc = ptx_parse(text, len, &m, err, sizeof(err));

    if (rc)
      fail_msg("%s: %d %s", names[i], rc, err);
    if (ptx_check_module(m, why, sizeof(why)))
      fail_msg("%s: %s", names[i], why);
    assert_int_equal(m->version_major, 9);
    assert_int_equal(m->address_size, 64);
    assert_true(m->target_sm >= 75);
    assert_true(m->nfuncs > 0);
    insns += m->ninsns;
    for (uint32_t k = 0; k < m->nfuncs; k++)
      if (!m->funcs[k].is_extern)
        assert_true(m->funcs[k].insn_count > 0);
    ptx_module_free(m);
    free(text);
  }
  print_message("%d nvcc outputs, %lu instructions\n", n, insns);
}

/* Details of real nvcc output that the snippets above do not show. */
static void test_corpus_details(void **state)
{
  char path[512];
  struct ptx_module *m = NULL;
  char err[256];
  size_t len;
  char *text;
  const struct ptx_func *f;
  const struct ptx_symbol *y;

  (void)state;
  snprintf(path, sizeof(path), "%s/basic.ptx", corpus_dir);
  text = slurp(path, &len);
  assert_int_equal(ptx_parse(text, len, &m, err, sizeof(err)), 0);
  free(text);
  f = func(m, "_Z7structk1SPi");
  assert_int_equal(f->param_size, 32);
  assert_int_equal(m->syms[param_sym(m, f, 0)].size, 24);
  assert_int_equal(m->syms[param_sym(m, f, 1)].offset, 24);
  assert_int_equal(f->local_size, 24);
  y = sym(m, "dyn");
  assert_int_equal(y->kind, PTX_SYM_SHARED_EXTERN);
  assert_int_equal(m->shared_static_size, 280);
  assert_int_equal(y->offset, 288);
  assert_true(func(m, "__assertfail")->is_extern);
  assert_int_equal(func(m, "__assertfail")->nparams, 5);
  y = sym(m, "$str");
  assert_memory_equal(m->init + y->init_off, "hello %d %f\n", 13);
  y = sym(m, "gd");
  assert_int_equal(y->type, PTX_T_F64);
  ptx_module_free(m);

  snprintf(path, sizeof(path), "%s/tmpl.ptx", corpus_dir);
  text = slurp(path, &len);
  assert_int_equal(ptx_parse(text, len, &m, err, sizeof(err)), 0);
  free(text);
  assert_int_equal(func(m, "_Z2lbPi")->maxntid[0], 256);
  assert_int_equal(func(m, "_Z2lbPi")->minnctapersm, 2);
  ptx_module_free(m);
}

/* Every prefix at a stride, and deterministic byte mutations. */
static void test_damage(void **state)
{
  static char names[64][256];
  static const char junk[] = "{}[]();,.%@!|<>0123456789_-+ \nxfd";
  int n = corpus_files(names, 64);
  uint64_t seed = 0x9E3779B97F4A7C15ull;

  (void)state;
  for (int i = 0; i < n; i++) {
    size_t len;
    char *text = slurp(names[i], &len);
    size_t step = len / 61 + 1;

    for (size_t cut = 0; cut < len; cut += step) {
      struct ptx_module *m = NULL;
      char err[128], why[128];
      char *copy = malloc(cut ? cut : 1);

      memcpy(copy, text, cut);
      if (ptx_parse(copy, cut, &m, err, sizeof(err)) == 0) {
        assert_int_equal(ptx_check_module(m, why, sizeof(why)), 0);
        ptx_module_free(m);
      } else {
        assert_null(m);
        assert_memory_equal(err, "line ", 5);
      }
      free(copy);
    }
    for (int k = 0; k < 40; k++) {
      struct ptx_module *m = NULL;
      char err[128], why[128];
      char *copy = malloc(len);

      memcpy(copy, text, len);
      for (int j = 0; j < 4; j++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        copy[(seed >> 33) % len] = junk[(seed >> 13) % (sizeof(junk) - 1)];
      }
      if (ptx_parse(copy, len, &m, err, sizeof(err)) == 0) {
        assert_int_equal(ptx_check_module(m, why, sizeof(why)), 0);
        ptx_module_free(m);
      } else {
        assert_memory_equal(err, "line ", 5);
      }
      free(copy);
    }
    free(text);
  }
}

struct par_arg {
  const char *text;
  size_t len;
  uint32_t ninsns;
  int rc;
};

static void *par_parse(void *p)
{
  struct par_arg *a = p;

  for (int i = 0; i < 20 && !a->rc; i++) {
    struct ptx_module *m = NULL;
    char err[128];

    a->rc = ptx_parse(a->text, a->len, &m, err, sizeof(err));
    if (!a->rc) {
      a->ninsns = m->ninsns;
      ptx_module_free(m);
    }
  }
  return NULL;
}

/* Parses share nothing: run several at once (TSan watches this). */
static void test_concurrent(void **state)
{
  char path[512];
  struct par_arg a[4];
  pthread_t t[4];
  size_t len;
  char *text;

  (void)state;
  snprintf(path, sizeof(path), "%s/mathf.ptx", corpus_dir);
  text = slurp(path, &len);
  for (int i = 0; i < 4; i++) {
    a[i] = (struct par_arg){ .text = text, .len = len };
    assert_int_equal(pthread_create(&t[i], NULL, par_parse, &a[i]), 0);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(t[i], NULL);
    assert_int_equal(a[i].rc, 0);
    assert_int_equal(a[i].ninsns, a[0].ninsns);
  }
  free(text);
}

int main(int argc, char **argv)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_names),
    cmocka_unit_test(test_header),
    cmocka_unit_test(test_registers),
    cmocka_unit_test(test_scopes),
    cmocka_unit_test(test_operands),
    cmocka_unit_test(test_pairs_vectors),
    cmocka_unit_test(test_immediates),
    cmocka_unit_test(test_modifiers),
    cmocka_unit_test(test_calls),
    cmocka_unit_test(test_labels),
    cmocka_unit_test(test_kparams),
    cmocka_unit_test(test_shared_local),
    cmocka_unit_test(test_globals),
    cmocka_unit_test(test_debug_directives),
    cmocka_unit_test(test_errors),
    cmocka_unit_test(test_corpus),
    cmocka_unit_test(test_corpus_details),
    cmocka_unit_test(test_damage),
    cmocka_unit_test(test_concurrent),
  };

  corpus_dir = argc > 1 ? argv[1] : getenv("TR_PTX_CORPUS");
  return cmocka_run_group_tests(tests, NULL, NULL);
}
