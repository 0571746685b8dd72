/*
 * fuzz_ptx: libFuzzer target for the PTX parser (gpu-agent/emu/ptx_parse.c).
 *
 * Every input is parsed as PTX text.  A parse that fails must say why in a
 * "line N: ..." message; a parse that succeeds must produce a module whose
 * every index points inside its arrays (ptx_check_module below), since the
 * executor indexes with them without checking again.  Built by
 * tests/ptx_parse.cmake with clang -fsanitize=fuzzer,address,undefined
 * and run for 20 s by the ctest "fuzz_ptx" (label fuzz).  The seed corpus,
 * tests/fuzz/corpus/ptx/, is real nvcc 13.0 output (see its src/README).
 *
 * test_ptx_parse includes this file with FUZZ_PTX_CHECK_ONLY defined to
 * run the same consistency check on the modules it parses.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ptx_ir.h"

static int check_list(const struct ptx_module *m, uint32_t off, uint32_t n)
{
  if (off > m->nlists || n > m->nlists - off)
    return -1;
  for (uint32_t i = 0; i < n; i++)
    if (m->lists[off + i] >= m->nsyms)
      return -1;
  return 0;
}

static int check_operand(const struct ptx_module *m, const struct ptx_func *f,
                         const struct ptx_operand *o)
{
  switch (o->kind) {
  case PTX_O_REG:
    return o->reg < f->nregs ? 0 : -1;
  case PTX_O_IMM:
    return 0;
  case PTX_O_SREG:
    return o->reg < PTX_SR__COUNT ? 0 : -1;
  case PTX_O_ADDR:
    if (o->reg != PTX_NOREG && o->reg >= f->nregs)
      return -1;
    return o->sym == PTX_NOSYM || o->sym < m->nsyms ? 0 : -1;
  case PTX_O_SYM:
    return o->sym < m->nsyms ? 0 : -1;
  case PTX_O_VEC:
    if (o->n < 2 || o->n > 4)
      return -1;
    for (unsigned i = 0; i < o->n; i++)
      if (o->vec[i] != PTX_NOREG && o->vec[i] >= f->nregs)
        return -1;
    return 0;
  case PTX_O_LABEL:
    return o->target >= f->insn_start &&
           o->target <= f->insn_start + f->insn_count ? 0 : -1;
  case PTX_O_FUNC:
    return o->target < m->nfuncs ? 0 : -1;
  case PTX_O_LIST:
    if (o->n <= 4) {
      for (unsigned i = 0; i < o->n; i++)
        if (o->vec[i] >= m->nsyms)
          return -1;
      return 0;
    }
    return check_list(m, o->list_off, o->n);
  default:
    return -1;
  }
}

/* 0 if every index in m is in range; else -1 and a reason in why. */
static int ptx_check_module(const struct ptx_module *m, char *why, size_t n)
{
  uint64_t covered = 0;

  for (uint32_t i = 0; i < m->nsyms; i++) {
    const struct ptx_symbol *y = &m->syms[i];

    if (!y->name || y->kind < PTX_SYM_GLOBAL || y->kind > PTX_SYM_FPARAM ||
        (y->func != UINT32_MAX && y->func >= m->nfuncs)) {
      snprintf(why, n, "symbol %u", i);
      return -1;
    }
    if ((y->flags & PTX_SYMF_INIT) &&
        (y->init_off > m->ninit || y->size > m->ninit - y->init_off)) {
      snprintf(why, n, "initializer of symbol %u", i);
      return -1;
    }
  }
  for (uint32_t fi = 0; fi < m->nfuncs; fi++) {
    const struct ptx_func *f = &m->funcs[fi];

    if (!f->name || check_list(m, f->params, f->nparams) ||
        check_list(m, f->rets, f->nrets) ||
        f->insn_start > m->ninsns ||
        f->insn_count > m->ninsns - f->insn_start ||
        (f->nregs && !f->reg_types) || (f->is_extern && f->insn_count)) {
      snprintf(why, n, "function %u", fi);
      return -1;
    }
    for (uint32_t r = 0; r < f->nregs; r++)
      if (f->reg_types[r] == PTX_T_NONE || f->reg_types[r] >= PTX_T__COUNT) {
        snprintf(why, n, "function %u register %u type", fi, r);
        return -1;
      }
    covered += f->insn_count;
    for (uint32_t k = f->insn_start; k < f->insn_start + f->insn_count;
         k++) {
      const struct ptx_insn *in = &m->insns[k];

      if (in->op >= PTX_OP__COUNT || in->nops > PTX_MAX_OPS ||
          in->type >= PTX_T__COUNT || in->type2 >= PTX_T__COUNT ||
          in->space >= PTX_SP__COUNT ||
          (in->vec != 1 && in->vec != 2 && in->vec != 4) ||
          (in->guard != PTX_NOREG && in->guard >= f->nregs)) {
        snprintf(why, n, "instruction %u (line %u)", k, in->line);
        return -1;
      }
      for (unsigned o = 0; o < in->nops; o++)
        if (check_operand(m, f, &in->ops[o])) {
          snprintf(why, n, "operand %u of instruction %u (line %u)", o, k,
                   in->line);
          return -1;
        }
      if (in->op == PTX_OP_CALL &&
          (in->nops != 3 || in->ops[0].kind != PTX_O_LIST ||
           in->ops[1].kind != PTX_O_FUNC || in->ops[2].kind != PTX_O_LIST)) {
        snprintf(why, n, "call at line %u", in->line);
        return -1;
      }
    }
  }
  if (covered != m->ninsns) {
    snprintf(why, n, "functions cover %llu of %u instructions",
             (unsigned long long)covered, m->ninsns);
    return -1;
  }
  return 0;
}

#ifndef FUZZ_PTX_CHECK_ONLY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct ptx_module *m = NULL;
  char err[256], why[128];
  /* An exact-size copy, so that ASan catches any read past the end. */
  char *text = malloc(size ? size : 1);
  int rc;

  if (!text)
    return 0;
  if (size)
    memcpy(text, data, size);
  rc = ptx_parse(text, size, &m, err, sizeof(err));
  if (rc) {
    if (m || strncmp(err, "line ", 5) != 0 || rc >= 0) {
      fprintf(stderr, "failed parse: rc %d, message '%s'\n", rc, err);
      abort();
    }
  } else {
    if (!m || ptx_check_module(m, why, sizeof(why))) {
      fprintf(stderr, "inconsistent module: %s\n", m ? why : "NULL");
      abort();
    }
    /* find_func is a linear search: a few lookups, not all (quadratic) */
    for (uint32_t i = 0; i < m->nfuncs && i < 16; i++)
      if (ptx_module_find_func(m, m->funcs[i].name) < 0)
        abort();
  }
  ptx_module_free(m);
  free(text);
  return 0;
}
#endif
