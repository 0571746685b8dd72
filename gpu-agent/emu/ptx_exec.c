/*
 * ptx_exec.c: the executor's core.  Prepare (choosing each instruction's
 * handler), the canonical keys, the worker pool, launches, the per-block
 * warp scheduler and the control-flow instructions (branches, calls,
 * returns, barriers).
 *
 * How a warp runs.  The lanes of the innermost frame that sit at the
 * lowest pc form the running group G.  The group executes one instruction
 * for all its lanes, then moves on; it keeps running without looking at
 * the other lanes until it reaches `nextpc` (the lowest pc of any other
 * runnable lane, or the function's end), where the two groups merge, or
 * until it branches.  A converged warp therefore never scans its lanes,
 * and a diverged one scans only at branches and merge points.  Lowest-pc
 * first is what makes if/else and loops with per-lane trip counts
 * reconverge at their join point for the code nvcc emits.
 *
 * Calls push a frame per warp (no C recursion driven by the kernel): the
 * lanes at the call enter it; the warp's other lanes wait in the caller's
 * frame until every lane of the callee has returned.
 *
 * A block runs on one worker: warp 0 until it blocks or exits (or uses up
 * a time slice, so that warps spinning on each other make progress), then
 * warp 1, and so on.  bar.sync counts threads; when the last one arrives
 * the barrier releases every warp waiting on it.  When no warp can run
 * and some are not done, the block has deadlocked.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "ptx_exec_int.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

static const px_handler px_handlers[PX_X__COUNT] = {
#define PX_X_TAB(n) px_h_##n,
  PX_HANDLERS(PX_X_TAB)
#undef PX_X_TAB
};

static _Atomic uint64_t px_total_insns;
static _Atomic uint64_t px_gridids;

uint64_t ptx_exec_thread_insns(void)
{
  return atomic_load_explicit(&px_total_insns, memory_order_relaxed);
}

/* ---- canonical keys ------------------------------------------------------ */

static const char *const rnd_names[] = {
  "", "rn", "rz", "rm", "rp", "rni", "rzi", "rmi", "rpi", "rna", "rs"};
static const char *const cmp_names[] = {
  "", "eq", "ne", "lt", "le", "gt", "ge", "lo", "ls", "hi", "hs", "equ",
  "neu", "ltu", "leu", "gtu", "geu", "num", "nan"};
static const char *const bool_names[] = {"", "and", "or", "xor", "popc"};
static const char *const atom_names[] = {
  "", "add", "min", "max", "exch", "cas", "and", "or", "xor", "inc", "dec"};
static const char *const shfl_names[] = {"", "up", "down", "bfly", "idx"};
static const char *const vote_names[] = {"",    "all", "any", "uni",
                                         "ballot", "any", "all"};
static const char *const space_names[] = {
  "", "global", "shared", "shared::cluster", "local", "const", "param",
  "tex"};
static const char *const scope_names[] = {"", "cta", "cluster", "gpu", "sys"};
static const char *const membar_names[] = {"", "cta", "cluster", "gl", "sys"};
static const char *const mul_names[] = {"", "lo", "hi", "wide"};
static const char *const prmt_names[] = {"",    "f4e", "b4e", "rc8",
                                         "ecl", "ecr", "rc16"};
static const char *const testp_names[] = {
  "", "finite", "infinite", "number", "notanumber", "normal", "subnormal"};
static const char *const bar_names[] = {"", "sync", "arrive", "red",
                                        "warp.sync"};

#define NAME(tab, i) ((unsigned)(i) < sizeof(tab) / sizeof(tab[0]) ? tab[i] : "?")

struct kbuf {
  char *s;
  size_t len, n;
};

static void kput(struct kbuf *k, const char *w)
{
  int r;

  if (!w[0] || k->len == 0)
    return;
  r = snprintf(k->s + k->n, k->len - k->n, "%s%s", k->n ? "." : "", w);
  if (r > 0)
    k->n = k->n + (size_t)r < k->len ? k->n + (size_t)r : k->len - 1;
}

static void kflags(struct kbuf *k, const struct ptx_insn *in)
{
  uint32_t f = in->flags;

  kput(k, NAME(rnd_names, in->rnd));
  if (f & PTX_F_APPROX)
    kput(k, "approx");
  if (f & PTX_F_FULL)
    kput(k, "full");
  if (f & PTX_F_FTZ)
    kput(k, "ftz");
  if (f & PTX_F_SAT)
    kput(k, "sat");
  if (f & PTX_F_RELU)
    kput(k, "relu");
  if (f & PTX_F_NAN)
    kput(k, "NaN");
  if (f & PTX_F_XORSIGN)
    kput(k, "xorsign.abs");
  else if (f & PTX_F_ABS)
    kput(k, "abs");
  if (f & PTX_F_CC)
    kput(k, "cc");
  if (f & PTX_F_SHIFTAMT)
    kput(k, "shiftamt");
  if (f & PTX_F_UNI)
    kput(k, "uni");
}

static void ktypes(struct kbuf *k, const struct ptx_insn *in)
{
  kput(k, ptx_type_name(in->type));
  kput(k, ptx_type_name(in->type2));
}

/*
 * The spelling: the opcode, its sub-operation words (comparison, bool op,
 * atomic op, shuffle mode, .lo/.hi/.wide ...), rounding, the other
 * modifiers in a fixed order (approx full ftz sat relu NaN xorsign.abs
 * abs cc shiftamt uni), then the state space, vector width and types,
 * following PTX's own order where it has one: "ld.global.nc.v4.f32",
 * "atom.shared.add.f32", "cvt.rzi.s32.f32", "setp.lt.and.f32",
 * "shfl.sync.down.b32", "match.any.sync.b32", "prmt.b32.f4e".  A memory
 * order qualifier on ld/st/atom/fence is the word "sem" (the IR does not
 * keep which one) followed by the scope if one was written.
 */
void px_key(const struct ptx_insn *in, char *buf, size_t len)
{
  struct kbuf k = {buf, len, 0};
  char vec[4] = "v0";

  if (len)
    buf[0] = 0;
  kput(&k, ptx_op_name(in->op));
  switch (in->op) {
  case PTX_OP_LD:
  case PTX_OP_LDU:
  case PTX_OP_ST:
    if (in->flags & PTX_F_VOLATILE)
      kput(&k, "volatile");
    if (in->flags & PTX_F_MEMORD)
      kput(&k, "sem");
    kput(&k, NAME(scope_names, in->scope));
    kput(&k, NAME(space_names, in->space));
    if (in->flags & PTX_F_NC)
      kput(&k, "nc");
    if (in->vec > 1) {
      vec[1] = (char)('0' + in->vec);
      kput(&k, vec);
    }
    ktypes(&k, in);
    return;
  case PTX_OP_ATOM:
  case PTX_OP_RED:
    if (in->flags & PTX_F_MEMORD)
      kput(&k, "sem");
    kput(&k, NAME(scope_names, in->scope));
    kput(&k, NAME(space_names, in->space));
    kput(&k, NAME(atom_names, in->mode));
    kflags(&k, in);
    if (in->vec > 1) {
      vec[1] = (char)('0' + in->vec);
      kput(&k, vec);
    }
    ktypes(&k, in);
    return;
  case PTX_OP_CVTA:
    if (in->flags & PTX_F_TO)
      kput(&k, "to");
    kput(&k, NAME(space_names, in->space));
    ktypes(&k, in);
    return;
  case PTX_OP_ISSPACEP:
  case PTX_OP_PREFETCH:
  case PTX_OP_PREFETCHU:
    kput(&k, NAME(space_names, in->space));
    ktypes(&k, in);
    return;
  case PTX_OP_MEMBAR:
    kput(&k, NAME(membar_names, in->scope ? in->scope : in->mode));
    return;
  case PTX_OP_FENCE:
    if (in->flags & PTX_F_MEMORD)
      kput(&k, "sem");
    kput(&k, NAME(scope_names, in->scope ? in->scope : in->mode));
    return;
  case PTX_OP_SETP:
  case PTX_OP_SET:
    kput(&k, NAME(cmp_names, in->mode));
    kput(&k, NAME(bool_names, in->mode2));
    kflags(&k, in);
    if (in->op == PTX_OP_SET) {
      kput(&k, ptx_type_name(in->type2));
      kput(&k, ptx_type_name(in->type));
    } else {
      ktypes(&k, in);
    }
    return;
  case PTX_OP_SHFL:
    if (in->flags & PTX_F_SYNC)
      kput(&k, "sync");
    kput(&k, NAME(shfl_names, in->mode));
    kflags(&k, in);
    ktypes(&k, in);
    return;
  case PTX_OP_VOTE:
    if (in->flags & PTX_F_SYNC)
      kput(&k, "sync");
    kput(&k, NAME(vote_names, in->mode));
    ktypes(&k, in);
    return;
  case PTX_OP_MATCH:
    kput(&k, NAME(vote_names, in->mode));
    if (in->flags & PTX_F_SYNC)
      kput(&k, "sync");
    ktypes(&k, in);
    return;
  case PTX_OP_REDUX:
    if (in->flags & PTX_F_SYNC)
      kput(&k, "sync");
    kput(&k, NAME(atom_names, in->mode));
    kflags(&k, in);
    ktypes(&k, in);
    return;
  case PTX_OP_ACTIVEMASK:
    ktypes(&k, in);
    return;
  case PTX_OP_BAR:
  case PTX_OP_BARRIER:
    kput(&k, NAME(bar_names, in->mode));
    kput(&k, NAME(bool_names, in->mode2));
    if (in->flags & PTX_F_ALIGNED)
      kput(&k, "aligned");
    ktypes(&k, in);
    return;
  case PTX_OP_MUL:
  case PTX_OP_MAD:
  case PTX_OP_MUL24:
  case PTX_OP_MAD24:
    kput(&k, NAME(mul_names, in->mode));
    break;
  case PTX_OP_SHF:
    kput(&k, in->mode == PTX_SHF_L ? "l" : in->mode == PTX_SHF_R ? "r" : "?");
    kput(&k, in->mode2 == PTX_SHF_CLAMP ? "clamp" : "wrap");
    break;
  case PTX_OP_TESTP:
    kput(&k, NAME(testp_names, in->mode));
    break;
  case PTX_OP_PRMT:
    ktypes(&k, in);
    kput(&k, NAME(prmt_names, in->mode));
    return;
  default:
    break;
  }
  kflags(&k, in);
  kput(&k, NAME(space_names, in->space));
  ktypes(&k, in);
}

void ptx_exec_key(const struct ptx_insn *in, char *buf, size_t len)
{
  px_key(in, buf, len);
}

/* ---- selection ----------------------------------------------------------- */

/* Control, barrier and the instructions that need no lane loop. */
static int px_sel_ctl(const struct ptx_insn *in, uint32_t *xop,
                      uint32_t *xaux)
{
  *xaux = 0;
  switch (in->op) {
  case PTX_OP_BRA:
    if (in->nops != 1 || in->ops[0].kind != PTX_O_LABEL)
      return -ENOTSUP;
    *xop = PX_X_bra;
    return 0;
  case PTX_OP_CALL:
    /* the callee is checked by prepare, which knows the module */
    if (in->nops < 3 || in->ops[0].kind != PTX_O_LIST ||
        in->ops[1].kind != PTX_O_FUNC || in->ops[2].kind != PTX_O_LIST)
      return -ENOTSUP;
    *xop = PX_X_call;
    return 0;
  case PTX_OP_RET:
    *xop = PX_X_ret;
    return 0;
  case PTX_OP_EXIT:
    *xop = PX_X_exit;
    return 0;
  case PTX_OP_TRAP:
  case PTX_OP_BRKPT: /* no debugger here: a breakpoint ends the launch */
    *xop = PX_X_trap;
    return 0;
  case PTX_OP_PMEVENT:
    *xop = PX_X_nop;
    return 0;
  case PTX_OP_NANOSLEEP:
    if (in->nops != 1)
      return -ENOTSUP;
    *xop = PX_X_nanosleep;
    return 0;
  case PTX_OP_MEMBAR:
  case PTX_OP_FENCE:
    *xop = PX_X_fence;
    return 0;
  case PTX_OP_BAR:
  case PTX_OP_BARRIER:
    switch (in->mode) {
    case PTX_BAR_SYNC:
      if (in->nops < 1 || in->nops > 2)
        return -ENOTSUP;
      *xop = PX_X_bar;
      return 0;
    case PTX_BAR_ARRIVE:
      if (in->nops != 2)
        return -ENOTSUP;
      *xop = PX_X_bar_arrive;
      return 0;
    case PTX_BAR_RED:
      if (in->nops < 3 || in->nops > 4 || in->ops[0].kind != PTX_O_REG)
        return -ENOTSUP;
      if (in->mode2 == PTX_BOOL_POPC ? in->type != PTX_T_U32
          : (in->mode2 != PTX_BOOL_AND && in->mode2 != PTX_BOOL_OR) ||
            in->type != PTX_T_PRED)
        return -ENOTSUP;
      *xop = PX_X_bar_red;
      return 0;
    case PTX_BAR_WARP_SYNC:
      if (in->nops != 1)
        return -ENOTSUP;
      *xop = PX_X_warpsync;
      return 0;
    default:
      return -ENOTSUP;
    }
  default:
    return -ENOTSUP;
  }
}

static int px_select(const struct ptx_insn *in, uint32_t *xop,
                     uint32_t *xaux)
{
  if (in->nops > PTX_MAX_OPS)
    return -ENOTSUP;
  if (px_sel_ctl(in, xop, xaux) == 0)
    return 0;
  if (px_sel_alu(in, xop, xaux) == 0)
    return 0;
  if (px_sel_cvt(in, xop, xaux) == 0)
    return 0;
  if (px_sel_mem(in, xop, xaux) == 0)
    return 0;
  if (px_sel_warp(in, xop, xaux) == 0)
    return 0;
  return -ENOTSUP;
}

int ptx_exec_supports(const struct ptx_insn *in)
{
  uint32_t xop, xaux;

  return px_select(in, &xop, &xaux) == 0;
}

/* ---- prepare ---------------------------------------------------------- */

/* The per-thread param area a function's frame needs: its own .params and
   the call-site .params of the calls it makes. */
static uint64_t px_fparam_area(const struct ptx_module *m, uint32_t f)
{
  uint64_t need = 0;

  for (uint32_t i = 0; i < m->nsyms; i++) {
    const struct ptx_symbol *s = &m->syms[i];
    if (s->kind == PTX_SYM_FPARAM && s->func == f &&
        s->offset + s->size > need)
      need = s->offset + s->size;
  }
  return (need + 7) & ~(uint64_t)7;
}

static int px_check_sym(const struct ptx_module *m, uint32_t sym,
                        uint32_t func)
{
  const struct ptx_symbol *s;

  if (sym >= m->nsyms)
    return -EINVAL;
  s = &m->syms[sym];
  switch (s->kind) {
  case PTX_SYM_LOCAL:
  case PTX_SYM_FPARAM:
    /* frame-relative symbols only make sense in their own function */
    if (s->func != func)
      return -EINVAL;
    return 0;
  case PTX_SYM_KPARAM:
    if (s->func != func && s->func != UINT32_MAX)
      return -EINVAL;
    return 0;
  case PTX_SYM_GLOBAL:
  case PTX_SYM_CONST:
  case PTX_SYM_SHARED:
  case PTX_SYM_SHARED_EXTERN:
    return 0;
  default:
    return -EINVAL;
  }
}

/* Every register, symbol, label and function an instruction names lies
   inside the module and its function, so no handler can index outside. */
static int px_check_operands(const struct ptx_module *m, uint32_t fi,
                             const struct ptx_insn *in)
{
  const struct ptx_func *f = &m->funcs[fi];
  uint32_t end = f->insn_start + f->insn_count;

  if (in->guard != PTX_NOREG && in->guard >= f->nregs)
    return -EINVAL;
  for (unsigned k = 0; k < in->nops && k < PTX_MAX_OPS; k++) {
    const struct ptx_operand *o = &in->ops[k];
    switch (o->kind) {
    case PTX_O_NONE:
    case PTX_O_IMM:
      break;
    case PTX_O_REG:
      if (o->reg >= f->nregs)
        return -EINVAL;
      break;
    case PTX_O_SREG:
      if (o->reg >= PTX_SR__COUNT)
        return -EINVAL;
      break;
    case PTX_O_ADDR:
      if (o->reg != PTX_NOREG && o->reg >= f->nregs)
        return -EINVAL;
      if (o->sym != PTX_NOSYM && px_check_sym(m, o->sym, fi))
        return -EINVAL;
      break;
    case PTX_O_SYM:
      if (px_check_sym(m, o->sym, fi))
        return -EINVAL;
      break;
    case PTX_O_VEC:
      if (o->n < 1 || o->n > 4)
        return -EINVAL;
      for (unsigned j = 0; j < o->n; j++)
        if (!PX_VIMM(o, j) &&
            o->vec[j] != PTX_NOREG && o->vec[j] >= f->nregs)
          return -EINVAL;
      break;
    case PTX_O_LABEL:
      if (o->target < f->insn_start || o->target >= end)
        return -EINVAL;
      break;
    case PTX_O_FUNC:
      if (o->target >= m->nfuncs)
        return -EINVAL;
      break;
    case PTX_O_LIST:
      for (unsigned j = 0; j < o->n; j++) {
        uint32_t s = o->n > 4 ? (o->list_off + j < m->nlists
                                 ? m->lists[o->list_off + j] : UINT32_MAX)
                              : o->vec[j];
        if (s >= m->nsyms || m->syms[s].kind != PTX_SYM_FPARAM ||
            m->syms[s].func != fi)
          return -EINVAL;
      }
      break;
    default:
      return -EINVAL;
    }
  }
  return 0;
}

static uint32_t px_list(const struct ptx_module *m,
                        const struct ptx_operand *o, unsigned j)
{
  return o->n > 4 ? m->lists[o->list_off + j] : o->vec[j];
}

/* A call: the callee exists, has a body or is an extern we provide, and
   the argument and return lists match its parameters. */
static int px_check_call(struct ptx_module *m, struct ptx_insn *in,
                         char *err, size_t errlen)
{
  const struct ptx_func *g = &m->funcs[in->ops[1].target];
  const struct ptx_operand *rets = &in->ops[0], *args = &in->ops[2];

  if (g->is_entry) {
    snprintf(err, errlen, "line %u: call to kernel '%s'", in->line, g->name);
    return -ENOTSUP;
  }
  if (g->is_extern || g->insn_count == 0) {
    int vp = !strcmp(g->name, "vprintf");
    int af = !strcmp(g->name, "__assertfail");
    if (!g->is_extern && !vp && !af)
      goto plain;
    if (!vp && !af) {
      snprintf(err, errlen, "line %u: call to unsupported extern function "
               "'%s'", in->line, g->name);
      return -ENOTSUP;
    }
    if (vp ? args->n != 2 || rets->n > 1 : args->n != 5) {
      snprintf(err, errlen, "line %u: call to '%s' with %u arguments",
               in->line, g->name, args->n);
      return -ENOTSUP;
    }
    for (unsigned j = 0; j < args->n; j++)
      if (m->syms[px_list(m, args, j)].size < (af && j == 2 ? 4u : 8u))
        goto bad;
    if (rets->n && m->syms[px_list(m, rets, 0)].size < 4)
      goto bad;
    in->xop = vp ? PX_X_vprintf : PX_X_assertfail;
    return 0;
  }
plain:
  if (args->n != g->nparams || rets->n > g->nrets)
    goto bad;
  return 0;
bad:
  snprintf(err, errlen, "line %u: call to '%s': arguments do not match its "
           "parameters", in->line, g->name);
  return -ENOTSUP;
}

int ptx_exec_prepare(struct ptx_module *m, char *err, size_t errlen)
{
  char key[96];

  if (errlen)
    err[0] = 0;
  if (!m)
    return -EINVAL;
  if (m->address_size != 64) {
    snprintf(err, errlen, "address size %u: only 64 is supported",
             m->address_size);
    return -ENOTSUP;
  }
  for (uint32_t fi = 0; fi < m->nfuncs; fi++) {
    struct ptx_func *f = &m->funcs[fi];
    uint64_t area;

    if (f->is_extern)
      continue;
    if ((uint64_t)f->insn_start + f->insn_count > m->ninsns) {
      snprintf(err, errlen, "function '%s': instructions out of range",
               f->name);
      return -EINVAL;
    }
    /* a .func frame's param area holds its own and its call sites'
       .params; make sure param_size says so (the entry's call sites are
       sized at launch: its param_size is the kernel's parameter bytes) */
    area = px_fparam_area(m, fi);
    if (!f->is_entry && f->param_size < area)
      f->param_size = area;
    if (f->local_size > (1u << 24) || area > (1u << 20)) {
      snprintf(err, errlen, "function '%s': frame too large", f->name);
      return -ENOTSUP;
    }
    for (uint32_t i = 0; i < f->insn_count; i++) {
      struct ptx_insn *in = &m->insns[f->insn_start + i];
      uint32_t xop, xaux;

      if (px_check_operands(m, fi, in)) {
        px_key(in, key, sizeof(key));
        snprintf(err, errlen, "line %u: malformed operands in %s", in->line,
                 key);
        return -EINVAL;
      }
      if (px_select(in, &xop, &xaux)) {
        px_key(in, key, sizeof(key));
        snprintf(err, errlen, "line %u: not implemented: %s", in->line, key);
        return -ENOTSUP;
      }
      /* an address held in a 32-bit register: only its low bits count */
      for (unsigned k = 0; k < in->nops; k++)
        if (in->ops[k].kind == PTX_O_ADDR && in->ops[k].reg != PTX_NOREG &&
            f->reg_types && ptx_type_size(f->reg_types[in->ops[k].reg]) < 8)
          xaux |= PX_XA_R32;
      in->xop = xop;
      in->xaux = xaux;
      if (in->op == PTX_OP_CALL) {
        int rc = px_check_call(m, in, err, errlen);
        if (rc)
          return rc;
      }
    }
  }
  return 0;
}

/* ---- faults --------------------------------------------------------------- */

int px_fault(struct px_warp *w, const struct ptx_insn *in, uint32_t err,
             unsigned lane, uint64_t addr, const char *fmt, ...)
{
  struct px_block *b = w->b;
  struct px_launch *L = b->L;
  struct ptx_fault *f = &L->fault;
  int expected = 0;
  va_list ap;
  size_t n;
  int r;

  atomic_store_explicit(&L->stop, 1, memory_order_relaxed);
  if (!atomic_compare_exchange_strong(&L->faulted, &expected, 1))
    return PX_STOP;
  f->error = err;
  f->line = in ? in->line : 0;
  f->addr = addr;
  memcpy(f->block, b->ctaid, sizeof(f->block));
  lane &= PX_W - 1;
  f->thread[0] = (uint32_t)w->tid[0][lane];
  f->thread[1] = (uint32_t)w->tid[1][lane];
  f->thread[2] = (uint32_t)w->tid[2][lane];
  va_start(ap, fmt);
  r = vsnprintf(f->msg, sizeof(f->msg), fmt, ap);
  va_end(ap);
  n = r < 0 ? 0 : (size_t)r < sizeof(f->msg) ? (size_t)r : sizeof(f->msg) - 1;
  if (f->line)
    snprintf(f->msg + n, sizeof(f->msg) - n,
             " (block (%u,%u,%u) thread (%u,%u,%u), line %u)", f->block[0],
             f->block[1], f->block[2], f->thread[0], f->thread[1],
             f->thread[2], f->line);
  else
    snprintf(f->msg + n, sizeof(f->msg) - n,
             " (block (%u,%u,%u) thread (%u,%u,%u))", f->block[0],
             f->block[1], f->block[2], f->thread[0], f->thread[1],
             f->thread[2]);
  return PX_STOP;
}

/* ---- operands ------------------------------------------------------------ */

uint64_t px_sym_value(struct px_warp *w, uint32_t sym)
{
  const struct px_launch *L = w->b->L;
  const struct ptx_symbol *s = &L->m->syms[sym];

  switch (s->kind) {
  case PTX_SYM_GLOBAL:
  case PTX_SYM_CONST:
    return L->d->sym_addr ? L->d->sym_addr[sym] : 0;
  case PTX_SYM_LOCAL:
    return w->top->local_base + s->offset;
  default:
    return s->offset;
  }
}

static uint64_t px_realtime_ns(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t px_sreg(struct px_warp *w, unsigned sreg, unsigned sub,
                 unsigned lane)
{
  const struct px_block *b = w->b;
  const struct ptx_launch_desc *d = b->L->d;

  if (sub > 2)
    sub = 3;
  switch (sreg) {
  case PTX_SR_TID:
    return sub < 3 ? w->tid[sub][lane] : 0;
  case PTX_SR_NTID:
    return sub < 3 ? d->block[sub] : 0;
  case PTX_SR_CTAID:
    return sub < 3 ? b->ctaid[sub] : 0;
  case PTX_SR_NCTAID:
    return sub < 3 ? d->grid[sub] : 0;
  case PTX_SR_LANEID:
    return lane;
  case PTX_SR_WARPID:
    return w->id;
  case PTX_SR_NWARPID:
    return 64;
  case PTX_SR_SMID:
    return b->smid;
  case PTX_SR_NSMID:
    return d->dev->sm_count;
  case PTX_SR_GRIDID:
    return b->L->gridid;
  case PTX_SR_CLOCK:
    return (uint32_t)px_now_ns();
  case PTX_SR_CLOCK_HI:
    return (uint32_t)(px_now_ns() >> 32);
  case PTX_SR_CLOCK64:
    return px_now_ns();
  case PTX_SR_GLOBALTIMER:
    return px_realtime_ns();
  case PTX_SR_GLOBALTIMER_LO:
    return (uint32_t)px_realtime_ns();
  case PTX_SR_GLOBALTIMER_HI:
    return (uint32_t)(px_realtime_ns() >> 32);
  case PTX_SR_LANEMASK_EQ:
    return 1u << lane;
  case PTX_SR_LANEMASK_LE:
    return (uint32_t)((2ull << lane) - 1);
  case PTX_SR_LANEMASK_LT:
    return (1u << lane) - 1;
  case PTX_SR_LANEMASK_GE:
    return ~((1u << lane) - 1);
  case PTX_SR_LANEMASK_GT:
    return (uint32_t) ~((2ull << lane) - 1);
  case PTX_SR_DYNAMIC_SMEM_SIZE:
    return d->dyn_shared;
  case PTX_SR_TOTAL_SMEM_SIZE:
    return b->L->user_shared;
  case PTX_SR_RESERVED_SMEM_BEGIN:
  case PTX_SR_RESERVED_SMEM_0:
    return b->L->shared_size - PX_RESERVED_SMEM;
  case PTX_SR_RESERVED_SMEM_1:
    return b->L->shared_size - PX_RESERVED_SMEM / 2;
  case PTX_SR_RESERVED_SMEM_END:
    return b->L->shared_size;
  case PTX_SR_RESERVED_SMEM_CAP:
    return PX_RESERVED_SMEM;
  default:
    return 0;
  }
}

const uint64_t *px_src_slow(struct px_warp *w, const struct ptx_operand *o,
                            uint64_t *tmp)
{
  uint64_t v = 0;

  switch (o->kind) {
  case PTX_O_IMM:
    v = (uint64_t)o->imm;
    break;
  case PTX_O_SYM:
    v = px_sym_value(w, o->sym) + (uint64_t)o->imm;
    break;
  case PTX_O_SREG:
    switch (o->reg) {
    case PTX_SR_CLOCK:
    case PTX_SR_CLOCK_HI:
    case PTX_SR_CLOCK64:
    case PTX_SR_GLOBALTIMER:
    case PTX_SR_GLOBALTIMER_LO:
    case PTX_SR_GLOBALTIMER_HI:
      /* one reading for the whole warp, as the hardware does */
      v = px_sreg(w, o->reg, o->sub, 0);
      break;
    case PTX_SR_TID:
      if (o->sub < 3)
        return w->tid[o->sub];
      break;
    case PTX_SR_NTID:
    case PTX_SR_CTAID:
    case PTX_SR_NCTAID:
    case PTX_SR_WARPID:
    case PTX_SR_NWARPID:
    case PTX_SR_SMID:
    case PTX_SR_NSMID:
    case PTX_SR_GRIDID:
    case PTX_SR_DYNAMIC_SMEM_SIZE:
    case PTX_SR_TOTAL_SMEM_SIZE:
    case PTX_SR_RESERVED_SMEM_BEGIN:
    case PTX_SR_RESERVED_SMEM_END:
    case PTX_SR_RESERVED_SMEM_CAP:
    case PTX_SR_RESERVED_SMEM_0:
    case PTX_SR_RESERVED_SMEM_1:
      v = px_sreg(w, o->reg, o->sub, 0); /* the same in every lane */
      break;
    default:
      for (unsigned l = 0; l < PX_W; l++)
        tmp[l] = px_sreg(w, o->reg, o->sub, l);
      w->tmpok[(tmp - w->tmp[0]) / PX_W] = 0;
      return tmp;
    }
    break;
  default:
    break;
  }
  {
    /* the same immediate as last time at this operand position (loops
       run the same instructions over and over): the row is still there */
    unsigned k = (unsigned)((tmp - w->tmp[0]) / PX_W);
    if (w->tmpok[k] && w->tmpval[k] == v)
      return tmp;
    for (unsigned l = 0; l < PX_W; l++)
      tmp[l] = v;
    w->tmpval[k] = v;
    w->tmpok[k] = 1;
  }
  return tmp;
}

/* ---- scheduling ------------------------------------------------------- */

/* Store the running group's pc into its lanes' pc slots. */
static inline void px_park(struct px_warp *w, uint32_t lanes, uint32_t pc)
{
  struct px_frame *f = w->top;

  for (; lanes; lanes &= lanes - 1)
    f->pc[__builtin_ctz(lanes)] = pc;
}

static void px_exit_lanes(struct px_warp *w, uint32_t lanes);

/*
 * Pick the running group of the innermost frame: the runnable lanes at
 * the lowest pc.  Lanes whose pc is the function's end fell off it: that
 * is a return.  Leaves G = 0 when no lane is runnable (or lanes retired).
 */
static void px_resched(struct px_warp *w)
{
  struct px_frame *f = w->top;
  uint32_t run = f->live & ~w->blocked;
  uint32_t minpc = PX_NOPC, next = PX_NOPC, G = 0;

  for (uint32_t m = run; m; m &= m - 1) {
    unsigned l = (unsigned)__builtin_ctz(m);
    uint32_t pc = f->pc[l];
    if (pc < minpc) {
      next = minpc;
      minpc = pc;
      G = 1u << l;
    } else if (pc == minpc) {
      G |= 1u << l;
    } else if (pc < next) {
      next = pc;
    }
  }
  if (G && minpc >= f->fend) {
    if (w->depth == 1)
      px_exit_lanes(w, G);
    else
      f->live &= ~G;
    G = 0;
  }
  w->G = G;
  w->P = minpc;
  w->nextpc = next < f->fend ? next : f->fend;
  w->gcount = (uint32_t)px_popc(G);
}

static void px_pop(struct px_warp *w);

/*
 * Find something to run after the running group dissolved (G = 0): a new
 * group in this frame, else return from frames whose lanes all returned.
 * Returns 1 with G set, or 0 with the warp BLOCKED or DONE.
 */
static int px_settle(struct px_warp *w)
{
  for (;;) {
    struct px_frame *f = w->top;
    if (f->live & ~w->blocked) {
      px_resched(w);
      if (w->G)
        return 1;
      continue;
    }
    if (f->live) {
      w->state = PX_WS_BLOCKED;
      return 0;
    }
    if (w->depth == 1) {
      w->state = PX_WS_DONE;
      return 0;
    }
    px_pop(w);
  }
}

/* ---- barriers -------------------------------------------------------------- */

static void px_bar_release(struct px_block *b, unsigned id)
{
  struct px_bar *br = &b->bar[id];
  uint32_t res = br->popc;

  for (uint32_t i = 0; i < b->nwarps; i++) {
    struct px_warp *w = &b->warps[i];
    uint32_t lanes = w->barwait[id];
    if (!lanes)
      continue;
    if (w->barred[id]) {
      const struct ptx_insn *in = w->barred[id];
      uint64_t *d = w->barred_R[id][in->ops[0].reg];
      if (in->mode2 == PTX_BOOL_AND)
        res = br->red_and;
      else if (in->mode2 == PTX_BOOL_OR)
        res = br->red_or;
      PX_FOR(lanes, d[l] = res);
      w->barred[id] = NULL;
    }
    w->blocked &= ~lanes;
    w->barwait[id] = 0;
    w->resched = 1;
    if (w->state == PX_WS_BLOCKED)
      w->state = PX_WS_RUN;
  }
  memset(br, 0, sizeof(*br));
  br->red_and = 1;
}

static void px_bar_check(struct px_block *b, unsigned id)
{
  struct px_bar *br = &b->bar[id];
  uint32_t need = br->count ? br->count : b->live_threads;

  if (br->arrived && br->arrived >= need)
    px_bar_release(b, id);
}

/* bar.warp.sync: release its waiters once every lane it waits for came. */
static void px_wsync_check(struct px_warp *w)
{
  uint32_t need = w->wsync_need & ~w->exited;

  if (w->wsync_wait && (need & ~w->wsync_wait) == 0) {
    w->blocked &= ~w->wsync_wait;
    w->wsync_wait = 0;
    w->wsync_need = 0;
    w->resched = 1;
    if (w->state == PX_WS_BLOCKED)
      w->state = PX_WS_RUN;
  }
}

/* Lanes end (exit, or return from the kernel): out of every frame, out of
   the block's thread count, which may complete a barrier. */
static void px_exit_lanes(struct px_warp *w, uint32_t lanes)
{
  struct px_block *b = w->b;

  lanes &= ~w->exited;
  if (!lanes)
    return;
  w->exited |= lanes;
  for (uint32_t i = 0; i < w->depth; i++) {
    w->frames[i].live &= ~lanes;
    w->frames[i].callmask &= ~lanes;
  }
  b->live_threads -= (uint32_t)px_popc(lanes);
  for (unsigned id = 0; id < PX_NBAR; id++)
    if (b->bar[id].arrived && !b->bar[id].count)
      px_bar_check(b, id);
  px_wsync_check(w);
}

/* ---- frames ---------------------------------------------------------------- */

static int px_frame_fit(struct px_frame *f, uint32_t nregs, uint64_t psize)
{
  size_t rb = (size_t)(nregs ? nregs : 1) * sizeof(px_row);
  size_t pb = (size_t)(psize ? psize : 8) * PX_W;

  if (rb > f->rcap) {
    void *p = calloc(1, rb);
    if (!p)
      return -ENOMEM;
    free(f->R);
    f->R = p;
    f->rcap = rb;
  }
  if (pb > f->pcap) {
    void *p = calloc(1, pb);
    if (!p)
      return -ENOMEM;
    free(f->par);
    f->par = p;
    f->pcap = pb;
  }
  f->psize = psize;
  return 0;
}

static int px_frames_grow(struct px_warp *w, uint32_t want)
{
  struct px_frame *nf;
  uint32_t n = w->nframes ? w->nframes : 4;

  if (want <= w->nframes)
    return 0;
  while (n < want)
    n *= 2;
  nf = realloc(w->frames, (size_t)n * sizeof(*nf));
  if (!nf)
    return -ENOMEM;
  memset(nf + w->nframes, 0, (size_t)(n - w->nframes) * sizeof(*nf));
  w->frames = nf;
  w->nframes = n;
  w->top = &nf[w->depth ? w->depth - 1 : 0];
  return 0;
}

static void px_frames_free(struct px_warp *w)
{
  for (uint32_t i = 0; i < w->nframes; i++) {
    free(w->frames[i].R);
    free(w->frames[i].par);
  }
  free(w->frames);
  w->frames = NULL;
  w->nframes = 0;
}

static void px_pop(struct px_warp *w)
{
  const struct ptx_module *m = w->b->L->m;
  struct px_frame *f = w->top, *c = f - 1;
  const struct ptx_insn *call = &m->insns[f->call_pc];
  const struct ptx_func *g = &m->funcs[f->func];
  uint32_t back = f->callmask;

  if (call->ops[0].n && g->nrets) {
    const struct ptx_symbol *dst = &m->syms[px_list(m, &call->ops[0], 0)];
    const struct ptx_symbol *src = &m->syms[m->lists[g->rets]];
    uint64_t n = dst->size < src->size ? dst->size : src->size;
    PX_FOR(back, memcpy(c->par + l * c->psize + dst->offset,
                        f->par + l * f->psize + src->offset, n));
  }
  for (uint32_t m2 = back; m2; m2 &= m2 - 1)
    c->pc[__builtin_ctz(m2)] = f->call_pc + 1;
  w->depth--;
  w->top = c;
  w->R = c->R;
}

int px_h_call(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  struct px_block *b = w->b;
  const struct ptx_module *m = b->L->m;
  const struct ptx_func *g = &m->funcs[in->ops[1].target];
  const struct ptx_operand *args = &in->ops[2];
  struct px_frame *c, *f;
  uint32_t base, align, end;

  if (w->depth >= PX_MAX_DEPTH)
    return px_fault(w, in, PTX_ERR_ILLEGAL_ADDRESS, __builtin_ctz(mask), 0,
                    "call to '%s': call stack too deep (%u frames)",
                    g->name, w->depth);
  align = g->local_align ? g->local_align : 8;
  if (align & (align - 1) || align > 4096)
    align = 16;
  base = (w->top->local_end + align - 1) & ~(align - 1);
  end = base + (uint32_t)g->local_size + PX_CALL_COST;
  if ((uint64_t)base + g->local_size + PX_CALL_COST > b->stack)
    return px_fault(w, in, PTX_ERR_ILLEGAL_ADDRESS, __builtin_ctz(mask), 0,
                    "call to '%s': stack overflow (per-thread stack of %u "
                    "bytes exhausted at depth %u)", g->name, b->stack,
                    w->depth);
  if (px_frames_grow(w, w->depth + 1))
    goto nomem;
  c = w->top;
  f = &w->frames[w->depth];
  if (px_frame_fit(f, g->nregs, g->param_size))
    goto nomem;
  /* the caller's lanes: those at the call resume after it on return,
     the others (guard false) go on with the next instruction */
  px_park(w, w->G & ~mask, w->P + 1);
  px_park(w, mask, w->P);
  memset(f->par, 0, (size_t)f->psize * PX_W);
  for (unsigned j = 0; j < args->n && j < g->nparams; j++) {
    const struct ptx_symbol *src = &m->syms[px_list(m, args, j)];
    const struct ptx_symbol *dst = &m->syms[m->lists[g->params + j]];
    uint64_t n = dst->size < src->size ? dst->size : src->size;
    PX_FOR(mask, memcpy(f->par + l * f->psize + dst->offset,
                        c->par + l * c->psize + src->offset, n));
  }
  f->func = in->ops[1].target;
  f->live = f->callmask = mask;
  f->call_pc = w->P;
  f->local_base = base;
  f->local_end = end;
  f->fend = g->insn_start + g->insn_count;
  for (uint32_t m2 = mask; m2; m2 &= m2 - 1)
    f->pc[__builtin_ctz(m2)] = g->insn_start;
  w->depth++;
  w->top = f;
  w->R = f->R;
  w->G = 0;
  return PX_CTL;
nomem:
  return px_fault(w, in, PTX_ERR_MEMORY_ALLOCATION, __builtin_ctz(mask), 0,
                  "call to '%s': out of host memory for its frame", g->name);
}

int px_h_ret(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  px_park(w, w->G & ~mask, w->P + 1);
  if (w->depth == 1)
    px_exit_lanes(w, mask);
  else
    w->top->live &= ~mask;
  w->G = 0;
  return PX_CTL;
}

int px_h_exit(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  px_park(w, w->G & ~mask, w->P + 1);
  px_exit_lanes(w, mask);
  w->G = 0;
  return PX_CTL;
}

int px_h_trap(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  return px_fault(w, in, PTX_ERR_LAUNCH_FAILURE, __builtin_ctz(mask), 0,
                  in->op == PTX_OP_BRKPT ? "breakpoint (brkpt) with no "
                  "debugger attached" : "trap instruction executed");
}

int px_h_nop(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  return PX_NEXT;
}

int px_h_nanosleep(struct px_warp *w, const struct ptx_insn *in,
                   uint32_t mask)
{
  /* no need to sleep: let the block's other warps run first, which is
     what a kernel that backs off is waiting for */
  return PX_YIELD;
}

int px_h_fence(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  atomic_thread_fence(memory_order_seq_cst);
  return PX_NEXT;
}

int px_h_bra(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  uint32_t t = in->ops[0].target;

  if (mask == w->G) {
    if (t < w->nextpc) {
      w->P = t;
      return PX_CTL;
    }
    px_park(w, mask, t);
  } else {
    px_park(w, mask, t);
    px_park(w, w->G & ~mask, w->P + 1);
  }
  w->G = 0;
  return PX_CTL;
}

/* The value of a lane-uniform operand (barrier id, count, member mask):
   the first executing lane's. */
static uint32_t px_uniform(struct px_warp *w, const struct ptx_insn *in,
                           unsigned k, uint32_t mask)
{
  return (uint32_t)px_src(w, in, k)[__builtin_ctz(mask)];
}

static int px_bar_args(struct px_warp *w, const struct ptx_insn *in,
                       uint32_t mask, unsigned ncount, unsigned *id,
                       uint32_t *count)
{
  struct px_block *b = w->b;

  *id = px_uniform(w, in, 0, mask);
  *count = ncount ? px_uniform(w, in, 1, mask) : 0;
  if (*id >= PX_NBAR)
    return px_fault(w, in, PTX_ERR_ILLEGAL_INSTRUCTION, __builtin_ctz(mask),
                    0, "barrier %u out of range (0..15)", *id);
  if (ncount && (*count == 0 || *count % PX_W || *count > b->nthreads + 31))
    return px_fault(w, in, PTX_ERR_ILLEGAL_INSTRUCTION, __builtin_ctz(mask),
                    0, "barrier %u: bad thread count %u", *id, *count);
  return 0;
}

static void px_bar_arrive(struct px_warp *w, unsigned id, uint32_t count,
                          uint32_t lanes)
{
  struct px_bar *br = &w->b->bar[id];

  if (!br->arrived) {
    br->red_and = 1;
    br->red_or = 0;
    br->popc = 0;
  }
  if (count)
    br->count = count;
  br->arrived += (uint32_t)px_popc(lanes);
}

/* The lanes wait at barrier id; everyone in the group moves past it. */
static int px_bar_wait(struct px_warp *w, unsigned id, uint32_t mask)
{
  w->barwait[id] |= mask;
  w->blocked |= mask;
  px_park(w, w->G, w->P + 1);
  w->G = 0;
  px_bar_check(w->b, id);
  return PX_CTL;
}

int px_h_bar(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  unsigned id;
  uint32_t count;

  if (px_bar_args(w, in, mask, in->nops > 1, &id, &count))
    return PX_STOP;
  px_bar_arrive(w, id, count, mask);
  return px_bar_wait(w, id, mask);
}

int px_h_bar_arrive(struct px_warp *w, const struct ptx_insn *in,
                    uint32_t mask)
{
  unsigned id;
  uint32_t count;

  if (px_bar_args(w, in, mask, 1, &id, &count))
    return PX_STOP;
  px_bar_arrive(w, id, count, mask);
  px_bar_check(w->b, id);
  return PX_NEXT;
}

int px_h_bar_red(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  /* operands: d, a, [b,] {!}c */
  const struct ptx_operand *co = &in->ops[in->nops - 1];
  unsigned first = (unsigned)__builtin_ctz(mask), nc = in->nops == 4;
  unsigned id = (unsigned)px_src(w, in, 1)[first];
  uint32_t count = nc ? (uint32_t)px_src(w, in, 2)[first] : 0, t = 0;
  const uint64_t *c;
  struct px_bar *br;

  if (id >= PX_NBAR || (nc && (count == 0 || count % PX_W)))
    return px_fault(w, in, PTX_ERR_ILLEGAL_INSTRUCTION, first, 0,
                    "bar.red: bad barrier %u or thread count %u", id, count);
  c = px_src(w, in, in->nops - 1);
  px_bar_arrive(w, id, count, mask);
  br = &w->b->bar[id];
  PX_FOR_SEQ(mask, t |= (uint32_t)((c[l] ^ (co->flags & PTX_OF_NOT)) & 1)
                        << l);
  br->popc += (uint32_t)px_popc(t);
  br->red_or |= t != 0;
  br->red_and &= t == mask;
  w->barred[id] = in;
  w->barred_R[id] = w->R;
  return px_bar_wait(w, id, mask);
}

int px_h_warpsync(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  uint32_t need = px_uniform(w, in, 0, mask) & ~w->exited;

  if ((need & ~mask & ~w->wsync_wait) == 0) {
    if (!w->wsync_wait)
      return PX_NEXT;
    /* the last of them: release the earlier arrivals */
    w->blocked &= ~w->wsync_wait;
    w->wsync_wait = 0;
    w->wsync_need = 0;
    px_park(w, w->G, w->P + 1);
    w->G = 0;
    return PX_CTL;
  }
  w->wsync_wait |= mask;
  w->wsync_need |= need;
  w->blocked |= mask;
  px_park(w, w->G, w->P + 1);
  w->G = 0;
  return PX_CTL;
}

/* ---- extern functions ------------------------------------------------------ */

static uint64_t px_par_u64(const struct px_frame *f, const struct ptx_symbol *s,
                           unsigned lane)
{
  uint64_t v = 0;

  memcpy(&v, f->par + lane * f->psize + s->offset, s->size < 8 ? s->size : 8);
  return v;
}

int px_h_vprintf(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  const struct ptx_module *m = w->b->L->m;
  struct px_frame *f = w->top;
  const struct ptx_symbol *sf = &m->syms[px_list(m, &in->ops[2], 0)];
  const struct ptx_symbol *sa = &m->syms[px_list(m, &in->ops[2], 1)];
  const struct ptx_symbol *sr =
    in->ops[0].n ? &m->syms[px_list(m, &in->ops[0], 0)] : NULL;

  /* lane order: the order the output of one warp's printf appears in */
  PX_FOR_SEQ(mask, {
    int32_t r = px_vprintf(w, l, px_par_u64(f, sf, l), px_par_u64(f, sa, l));
    if (sr)
      memcpy(f->par + l * f->psize + sr->offset, &r, 4);
  });
  return PX_NEXT;
}

int px_h_assertfail(struct px_warp *w, const struct ptx_insn *in,
                    uint32_t mask)
{
  const struct ptx_module *m = w->b->L->m;
  struct px_frame *f = w->top;
  const struct ptx_symbol *s[4];
  unsigned first = (unsigned)__builtin_ctz(mask);

  for (unsigned j = 0; j < 4; j++)
    s[j] = &m->syms[px_list(m, &in->ops[2], j)];
  PX_FOR_SEQ(mask, px_assert_msg(w, l, px_par_u64(f, s[0], l),
                                 px_par_u64(f, s[1], l),
                                 (uint32_t)px_par_u64(f, s[2], l),
                                 px_par_u64(f, s[3], l)));
  return px_fault(w, in, PTX_ERR_ASSERT, first, 0,
                  "device-side assertion failed");
}

/* ---- the warp loop --------------------------------------------------------- */

/* The guard predicate over the group: one bit per lane. */
static inline uint32_t px_guard(const struct px_warp *w,
                                const struct ptx_insn *in, uint32_t G)
{
  const uint64_t *p = w->R[in->guard];
  uint32_t m = 0;

#ifdef __SSE2__
  /* two lanes per step: the predicate bit moved to the sign, movmskpd */
  for (unsigned l = 0; l < PX_W; l += 2) {
    __m128i v = _mm_loadu_si128((const __m128i *)&p[l]);
    m |= (uint32_t)_mm_movemask_pd(_mm_castsi128_pd(_mm_slli_epi64(v, 63)))
         << l;
  }
#else
  for (unsigned l = 0; l < PX_W; l++)
    m |= (uint32_t)(p[l] & 1) << l;
#endif
  return (in->neg_guard ? ~m : m) & G;
}

/* Every slice: stop if another block faulted, the launch was cancelled or
   ran past its deadline. */
static int px_check_stop(struct px_warp *w)
{
  struct px_launch *L = w->b->L;
  const struct ptx_launch_desc *d = L->d;
  unsigned lane = w->G ? (unsigned)__builtin_ctz(w->G) : 0;

  if (atomic_load_explicit(&L->stop, memory_order_relaxed))
    return 1;
  if (d->cancel && __atomic_load_n((const int *)d->cancel, __ATOMIC_RELAXED)) {
    px_fault(w, NULL, PTX_ERR_LAUNCH_FAILURE, lane, 0, "launch cancelled");
    return 1;
  }
  if (L->deadline && px_now_ns() > L->deadline) {
    px_fault(w, NULL, PTX_ERR_LAUNCH_TIMEOUT, lane, 0,
             "watchdog: the launch ran longer than %" PRIu64 " ms",
             d->watchdog_ns / 1000000);
    return 1;
  }
  return 0;
}

/*
 * Run a warp until it blocks, exits, faults or uses up its slice.  The
 * hot loop: one guard test, one indirect call, one compare per
 * warp-instruction.
 */
static void px_warp_run(struct px_warp *w)
{
  const struct ptx_insn *insns = w->b->L->m->insns;

  if (w->resched) {
    w->resched = 0;
    px_park(w, w->G, w->P);
    w->G = 0;
  }
  w->state = PX_WS_RUN;
  for (;;) {
    const struct ptx_insn *in;
    uint32_t mask;
    int rc;

    if (!w->G && !px_settle(w))
      return;
    if (__builtin_expect(--w->budget == 0, 0)) {
      w->budget = PX_SLICE;
      if (px_check_stop(w))
        return;
      if (w->b->nwarps > 1)
        return; /* let the block's other warps have the CPU */
    }
    in = &insns[w->P];
    mask = w->G;
    if (in->guard != PTX_NOREG) {
      mask = px_guard(w, in, mask);
      w->ninsn += (uint32_t)px_popc(mask);
      rc = mask ? px_handlers[in->xop](w, in, mask) : PX_NEXT;
    } else {
      w->ninsn += w->gcount;
      rc = px_handlers[in->xop](w, in, mask);
    }
    if (__builtin_expect(rc == PX_NEXT, 1)) {
      if (++w->P == w->nextpc) {
        px_park(w, w->G, w->P);
        w->G = 0;
      }
      continue;
    }
    if (rc == PX_CTL)
      continue;
    if (rc == PX_YIELD) {
      if (++w->P == w->nextpc) {
        px_park(w, w->G, w->P);
        w->G = 0;
      }
      if (w->b->nwarps > 1)
        return;
      continue;
    }
    return;
  }
}

/* ---- blocks ---------------------------------------------------------------- */

static int px_grow(uint8_t **p, uint64_t *cap, uint64_t want)
{
  uint8_t *n;

  if (want <= *cap)
    return 0;
  n = calloc(1, want);
  if (!n)
    return -ENOMEM;
  free(*p);
  *p = n;
  *cap = want;
  return 0;
}

static int px_block_setup(struct px_ctx *c, struct px_launch *L,
                          uint64_t bid)
{
  const struct ptx_launch_desc *d = L->d;
  const struct ptx_func *e = L->entry;
  struct px_block *b = &c->blk;
  uint64_t gxy = (uint64_t)d->grid[0] * d->grid[1];

  b->L = L;
  b->ctaid[0] = (uint32_t)(bid % d->grid[0]);
  b->ctaid[1] = (uint32_t)(bid / d->grid[0] % d->grid[1]);
  b->ctaid[2] = (uint32_t)(bid / gxy);
  b->nthreads = L->nthreads;
  b->nwarps = L->nwarps;
  b->live_threads = L->nthreads;
  /* %smid: the worker, folded into the device's SM count */
  b->smid = d->dev->sm_count ? c->worker % d->dev->sm_count : c->worker;
  b->ninsn = 0;
  if (px_grow(&c->shared, &c->shared_cap, L->shared_size + 16) ||
      px_grow(&c->local, &c->local_cap, (uint64_t)L->nthreads * L->stack))
    return -ENOMEM;
  /* shared memory starts zeroed, so a kernel that reads it before writing
     sees the same thing on every run */
  memset(c->shared, 0, L->shared_size);
  b->shared = c->shared;
  b->shared_size = L->shared_size;
  b->local = c->local;
  b->stack = L->stack;
  memset(b->bar, 0, sizeof(b->bar));
  if (b->rng_grid != L->gridid) {
    memset(b->rng, 0, sizeof(b->rng));
    b->rng_grid = L->gridid;
  }
  if (L->nwarps > c->nwarps_cap) {
    struct px_warp *nw = realloc(c->warps, L->nwarps * sizeof(*nw));
    if (!nw)
      return -ENOMEM;
    memset(nw + c->nwarps_cap, 0,
           (L->nwarps - c->nwarps_cap) * sizeof(*nw));
    c->warps = nw;
    c->nwarps_cap = L->nwarps;
  }
  b->warps = c->warps;
  for (uint32_t i = 0; i < L->nwarps; i++) {
    struct px_warp *w = &c->warps[i];
    uint32_t n = L->nthreads - i * PX_W;
    uint32_t alive = n >= PX_W ? PX_FULL : (1u << n) - 1;
    struct px_frame *f;

    w->b = b;
    w->id = i;
    w->tid0 = i * PX_W;
    w->exited = ~alive;
    w->blocked = 0;
    w->cc = 0;
    w->resched = 0;
    w->state = PX_WS_RUN;
    memset(w->barwait, 0, sizeof(w->barwait));
    memset(w->barred, 0, sizeof(w->barred));
    w->wsync_wait = w->wsync_need = 0;
    w->budget = PX_SLICE;
    w->ninsn = 0;
    memset(w->tmpok, 0, sizeof(w->tmpok));
    w->depth = 0;
    if (px_frames_grow(w, 1))
      return -ENOMEM;
    w->depth = 1;
    f = &w->frames[0];
    if (px_frame_fit(f, e->nregs, L->entry_psize))
      return -ENOMEM;
    f->func = d->func;
    f->live = f->callmask = alive;
    f->call_pc = 0;
    f->local_base = 0;
    f->local_end = L->entry_local;
    f->fend = e->insn_start + e->insn_count;
    for (unsigned l = 0; l < PX_W; l++)
      f->pc[l] = e->insn_start;
    /* the same for every block of a launch: computed once per worker */
    if (w->tid_grid != L->gridid) {
      for (unsigned l = 0; l < PX_W; l++) {
        uint32_t lin = w->tid0 + l;
        w->tid[0][l] = lin % d->block[0];
        w->tid[1][l] = lin / d->block[0] % d->block[1];
        w->tid[2][l] = lin / (d->block[0] * d->block[1]);
      }
      w->tid_grid = L->gridid;
    }
    w->top = f;
    w->R = f->R;
    w->G = 0;
  }
  return 0;
}

static void px_deadlock(struct px_block *b)
{
  for (uint32_t i = 0; i < b->nwarps; i++) {
    struct px_warp *w = &b->warps[i];
    if (w->state != PX_WS_BLOCKED || !w->blocked)
      continue;
    for (unsigned id = 0; id < PX_NBAR; id++)
      if (w->barwait[id]) {
        struct px_bar *br = &b->bar[id];
        px_fault(w, NULL, PTX_ERR_LAUNCH_FAILURE,
                 (unsigned)__builtin_ctz(w->barwait[id]), 0,
                 "deadlock: threads wait at barrier %u (%u of %u threads "
                 "arrived) and no other thread can arrive", id, br->arrived,
                 br->count ? br->count : b->live_threads);
        return;
      }
    px_fault(w, NULL, PTX_ERR_LAUNCH_FAILURE,
             (unsigned)__builtin_ctz(w->blocked), 0,
             "deadlock: lanes wait in bar.warp.sync for lanes 0x%08x that "
             "never arrive", w->wsync_need & ~w->wsync_wait);
    return;
  }
  px_fault(&b->warps[0], NULL, PTX_ERR_LAUNCH_FAILURE, 0, 0,
           "deadlock: no warp can run");
}

static void px_block_exec(struct px_ctx *c, struct px_launch *L, uint64_t bid)
{
  struct px_block *b = &c->blk;

  if (px_block_setup(c, L, bid)) {
    struct px_warp w0 = {.b = b};
    px_fault(&w0, NULL, PTX_ERR_MEMORY_ALLOCATION, 0, 0,
             "out of host memory for a block of %u threads", L->nthreads);
    return;
  }
  for (;;) {
    int ran = 0, live = 0;
    for (uint32_t i = 0; i < b->nwarps; i++) {
      struct px_warp *w = &b->warps[i];
      if (w->state == PX_WS_DONE)
        continue;
      live = 1;
      if (w->state == PX_WS_BLOCKED && !w->resched)
        continue;
      px_warp_run(w);
      ran = 1;
      if (atomic_load_explicit(&L->stop, memory_order_relaxed))
        goto out;
    }
    if (!live)
      break;
    if (!ran) {
      px_deadlock(b);
      break;
    }
  }
out:
  for (uint32_t i = 0; i < b->nwarps; i++)
    b->ninsn += b->warps[i].ninsn;
  atomic_fetch_add_explicit(&px_total_insns, b->ninsn, memory_order_relaxed);
}

struct ptx_pool;
static bool px_outranked(struct ptx_pool *p, const struct px_launch *L);

/*
 * Run blocks of L until none is left to claim.  A pool worker (pool set)
 * also stops when a launch more urgent than L has blocks to claim, to go
 * and help it: blocks of a higher-priority launch start before the pending
 * blocks of a lower one, as on a GPU.  The launching thread stays with its
 * own.
 */
static void px_run_blocks(struct px_launch *L, struct px_ctx *c,
                          struct ptx_pool *pool)
{
  while (!atomic_load_explicit(&L->stop, memory_order_relaxed)) {
    uint64_t i;

    if (pool && px_outranked(pool, L))
      break;
    i = atomic_fetch_add_explicit(&L->next, 1, memory_order_relaxed);
    if (i >= L->nblocks)
      break;
    /* The slice's checks (cancel, watchdog) between blocks too: a grid of
       many short blocks may never reach the end of a warp's slice. */
    {
      struct px_warp w0 = {.b = &c->blk};

      c->blk.L = L;
      if (px_check_stop(&w0))
        break;
    }
    px_block_exec(c, L, i);
  }
}

static void px_ctx_release(struct px_ctx *c)
{
  for (uint32_t i = 0; i < c->nwarps_cap; i++)
    px_frames_free(&c->warps[i]);
  free(c->warps);
  free(c->shared);
  free(c->local);
  memset(c, 0, sizeof(*c));
}

/* ---- the pool -------------------------------------------------------------- */

struct px_worker {
  struct ptx_pool *p;
  pthread_t t;
  struct px_ctx ctx;
};

struct ptx_pool {
  pthread_mutex_t mu;
  pthread_cond_t work;        /* a launch has blocks to claim, or stop */
  struct px_launch *head;     /* launches in progress */
  _Atomic int urgent;         /* the lowest priority among them (0: none),
                                 whether or not blocks are left to claim */
  int stopping;
  unsigned n;
  struct px_worker *wk;
};

/* The most urgent launch with blocks left to claim (the newest of equals),
   or NULL; under p->mu. */
static struct px_launch *px_claimable(struct ptx_pool *p)
{
  struct px_launch *best = NULL;

  for (struct px_launch *L = p->head; L; L = L->lnext)
    if (atomic_load_explicit(&L->next, memory_order_relaxed) < L->nblocks &&
        !atomic_load_explicit(&L->stop, memory_order_relaxed) &&
        (!best || L->d->priority < best->d->priority))
      best = L;
  return best;
}

/*
 * Whether a launch more urgent than L has blocks left to claim.  p->urgent
 * (any more urgent launch in the list) answers the common case without
 * the lock; a listed launch may have handed out all its blocks already,
 * and leaving L for it then would leave its workers spinning.
 */
static bool px_outranked(struct ptx_pool *p, const struct px_launch *L)
{
  struct px_launch *best;

  if (atomic_load_explicit(&p->urgent, memory_order_relaxed) >=
      L->d->priority)
    return false;
  pthread_mutex_lock(&p->mu);
  best = px_claimable(p);
  pthread_mutex_unlock(&p->mu);
  return best && best->d->priority < L->d->priority;
}

/* Recompute p->urgent after the launch list changed; under p->mu. */
static void px_urgent_update(struct ptx_pool *p)
{
  int u = 0;

  for (struct px_launch *L = p->head; L; L = L->lnext)
    if (L->d->priority < u)
      u = L->d->priority;
  atomic_store_explicit(&p->urgent, u, memory_order_relaxed);
}

static void *px_worker_main(void *arg)
{
  struct px_worker *wk = arg;
  struct ptx_pool *p = wk->p;

  pthread_mutex_lock(&p->mu);
  for (;;) {
    struct px_launch *L = NULL;
    while (!p->stopping && !(L = px_claimable(p)))
      pthread_cond_wait(&p->work, &p->mu);
    if (p->stopping || !L)
      break;
    L->refs++;
    pthread_mutex_unlock(&p->mu);
    px_run_blocks(L, &wk->ctx, p);
    pthread_mutex_lock(&p->mu);
    if (--L->refs == 0)
      pthread_cond_broadcast(&L->done);
  }
  pthread_mutex_unlock(&p->mu);
  px_ctx_release(&wk->ctx);
  return NULL;
}

int ptx_pool_new(unsigned workers, struct ptx_pool **out)
{
  struct ptx_pool *p;
  int rc;

  *out = NULL;
  if (!workers) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    workers = n > 0 ? (unsigned)n : 1;
  }
  if (workers > 1024)
    workers = 1024;
  p = calloc(1, sizeof(*p));
  if (!p)
    return -ENOMEM;
  p->wk = calloc(workers, sizeof(*p->wk));
  if (!p->wk) {
    free(p);
    return -ENOMEM;
  }
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->work, NULL);
  for (unsigned i = 0; i < workers; i++) {
    p->wk[i].p = p;
    /* %smid: worker 0.. ; the launching thread reports the last id */
    p->wk[i].ctx.worker = i;
    rc = pthread_create(&p->wk[i].t, NULL, px_worker_main, &p->wk[i]);
    if (rc) {
      p->n = i;
      ptx_pool_free(p);
      return -rc;
    }
    p->n = i + 1;
  }
  *out = p;
  return 0;
}

void ptx_pool_free(struct ptx_pool *p)
{
  if (!p)
    return;
  pthread_mutex_lock(&p->mu);
  p->stopping = 1;
  pthread_cond_broadcast(&p->work);
  pthread_mutex_unlock(&p->mu);
  for (unsigned i = 0; i < p->n; i++)
    pthread_join(p->wk[i].t, NULL);
  pthread_cond_destroy(&p->work);
  pthread_mutex_destroy(&p->mu);
  free(p->wk);
  free(p);
}

unsigned ptx_pool_size(const struct ptx_pool *p)
{
  return p ? p->n : 0;
}

/* The launching thread runs blocks too (with buffers of its own, kept for
   its next launch and freed when the thread ends). */
static pthread_key_t px_ctx_key;
static pthread_once_t px_ctx_once = PTHREAD_ONCE_INIT;

static void px_ctx_destroy(void *v)
{
  px_ctx_release(v);
  free(v);
}

static void px_ctx_key_init(void)
{
  pthread_key_create(&px_ctx_key, px_ctx_destroy);
}

static struct px_ctx *px_caller_ctx(const struct ptx_pool *p)
{
  struct px_ctx *c;

  pthread_once(&px_ctx_once, px_ctx_key_init);
  c = pthread_getspecific(px_ctx_key);
  if (!c) {
    c = calloc(1, sizeof(*c));
    if (!c)
      return NULL;
    if (pthread_setspecific(px_ctx_key, c)) {
      free(c);
      return NULL;
    }
  }
  c->worker = p ? p->n : 0;
  return c;
}

/* ---- launching ------------------------------------------------------------ */

static uint32_t px_bad(struct ptx_fault *f, uint32_t err, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));

static uint32_t px_bad(struct ptx_fault *f, uint32_t err, const char *fmt, ...)
{
  va_list ap;

  if (f) {
    f->error = err;
    va_start(ap, fmt);
    vsnprintf(f->msg, sizeof(f->msg), fmt, ap);
    va_end(ap);
  }
  return err;
}

uint32_t ptx_launch(struct ptx_pool *pool, const struct ptx_launch_desc *d,
                    struct ptx_fault *f)
{
  struct px_launch L;
  const struct ptx_module *m;
  const struct ptx_func *e;
  const struct ptx_devmodel *dev;
  uint64_t nthreads, dyn_off, area, stack;
  struct px_ctx *c;

  if (f)
    memset(f, 0, sizeof(*f));
  if (!d || !d->m || !d->dev || !d->mem.global_range)
    return px_bad(f, PTX_ERR_INVALID_VALUE, "launch: missing module, device "
                  "model or memory services");
  m = d->m;
  dev = d->dev;
  if (d->func >= m->nfuncs || !m->funcs[d->func].is_entry)
    return px_bad(f, PTX_ERR_INVALID_VALUE, "launch: function %u is not a "
                  "kernel", d->func);
  e = &m->funcs[d->func];
  if (!d->grid[0] || !d->grid[1] || !d->grid[2] || d->grid[0] > 0x7fffffffu ||
      d->grid[1] > 65535 || d->grid[2] > 65535)
    return px_bad(f, PTX_ERR_INVALID_CONFIG, "launch of %s: bad grid "
                  "(%u,%u,%u)", e->name, d->grid[0], d->grid[1], d->grid[2]);
  nthreads = (uint64_t)d->block[0] * d->block[1] * d->block[2];
  if (!nthreads || d->block[0] > 1024 || d->block[1] > 1024 ||
      d->block[2] > 64 || nthreads > (dev->max_threads_block ?
                                      dev->max_threads_block : 1024))
    return px_bad(f, PTX_ERR_INVALID_CONFIG, "launch of %s: bad block "
                  "(%u,%u,%u)", e->name, d->block[0], d->block[1],
                  d->block[2]);
  if ((e->maxntid[0] && nthreads > (uint64_t)e->maxntid[0] *
       (e->maxntid[1] ? e->maxntid[1] : 1) * (e->maxntid[2] ? e->maxntid[2] : 1)))
    return px_bad(f, PTX_ERR_LAUNCH_OUT_OF_RES, "launch of %s: %" PRIu64
                  " threads exceed its .maxntid", e->name, nthreads);
  if (e->reqntid[0] && (d->block[0] != e->reqntid[0] ||
                        d->block[1] != (e->reqntid[1] ? e->reqntid[1] : 1) ||
                        d->block[2] != (e->reqntid[2] ? e->reqntid[2] : 1)))
    return px_bad(f, PTX_ERR_INVALID_VALUE, "launch of %s: block does not "
                  "match its .reqntid", e->name);
  if (d->params_size != e->param_size || (e->param_size && !d->params))
    return px_bad(f, PTX_ERR_INVALID_VALUE, "launch of %s: %u parameter "
                  "bytes given, the kernel takes %" PRIu64, e->name,
                  d->params_size, e->param_size);
  /* dynamic shared memory starts where the .extern .shared arrays do */
  dyn_off = (m->shared_static_size + 15) & ~(uint64_t)15;
  area = 0;
  for (uint32_t i = 0; i < m->nsyms; i++) {
    const struct ptx_symbol *s = &m->syms[i];
    if (s->kind == PTX_SYM_SHARED_EXTERN && s->offset > dyn_off)
      dyn_off = s->offset;
    if (s->kind == PTX_SYM_FPARAM && s->func == d->func &&
        s->offset + s->size > area)
      area = s->offset + s->size;
    if ((s->kind == PTX_SYM_GLOBAL || s->kind == PTX_SYM_CONST) &&
        !d->sym_addr)
      return px_bad(f, PTX_ERR_INVALID_VALUE, "launch of %s: no addresses "
                    "for the module's variables", e->name);
  }
  if (dyn_off + d->dyn_shared > (dev->max_shared_block ?
                                 dev->max_shared_block : 49152))
    return px_bad(f, PTX_ERR_INVALID_VALUE, "launch of %s: %" PRIu64
                  " bytes of shared memory exceed the %u a block may use",
                  e->name, dyn_off + d->dyn_shared, dev->max_shared_block);
  stack = ((e->local_size + 15) & ~(uint64_t)15) + PX_CALL_COST +
          (dev->stack_size ? dev->stack_size : 1024);
  if (stack > (1u << 24) || stack * nthreads > (1ull << 31))
    return px_bad(f, PTX_ERR_LAUNCH_OUT_OF_RES, "launch of %s: local memory "
                  "of %" PRIu64 " bytes per thread is too much", e->name,
                  stack);

  memset(&L, 0, sizeof(L));
  L.d = d;
  L.m = m;
  L.entry = e;
  L.nblocks = (uint64_t)d->grid[0] * d->grid[1] * d->grid[2];
  L.nthreads = (uint32_t)nthreads;
  L.nwarps = (uint32_t)((nthreads + PX_W - 1) / PX_W);
  /* the block's shared memory: the kernel's, then the 1 KiB the runtime
     reserves for itself on sm_80 and later (%reserved_smem_offset_*:
     cooperative groups keep a tile's scratch there) */
  L.user_shared = dyn_off + d->dyn_shared;
  L.shared_size = ((L.user_shared + 15) & ~(uint64_t)15) + PX_RESERVED_SMEM;
  L.entry_psize = (area + 7) & ~(uint64_t)7;
  L.entry_local = (uint32_t)((e->local_size + 15) & ~(uint64_t)15);
  L.stack = (uint32_t)stack;
  L.gridid = atomic_fetch_add(&px_gridids, 1) + 1;
  L.deadline = d->watchdog_ns ? px_now_ns() + d->watchdog_ns : 0;
  pthread_cond_init(&L.done, NULL);

  c = px_caller_ctx(pool);
  if (pool && pool->n) {
    pthread_mutex_lock(&pool->mu);
    L.lnext = pool->head;
    pool->head = &L;
    px_urgent_update(pool);
    L.refs = 1;
    /* the launching thread takes blocks too (when it has buffers): wake
       only as many workers as there are other blocks */
    if (!c || L.nblocks - 1 >= pool->n)
      pthread_cond_broadcast(&pool->work);
    else
      for (uint64_t i = 1; i < L.nblocks; i++)
        pthread_cond_signal(&pool->work);
    pthread_mutex_unlock(&pool->mu);
  } else if (!c) {
    pthread_cond_destroy(&L.done);
    return px_bad(f, PTX_ERR_MEMORY_ALLOCATION, "launch of %s: out of host "
                  "memory", e->name);
  }
  if (c)
    px_run_blocks(&L, c, NULL);
  if (pool && pool->n) {
    struct px_launch **pp;
    pthread_mutex_lock(&pool->mu);
    for (pp = &pool->head; *pp != &L; pp = &(*pp)->lnext)
      ;
    *pp = L.lnext;
    px_urgent_update(pool);
    L.refs--;
    while (L.refs)
      pthread_cond_wait(&L.done, &pool->mu);
    pthread_mutex_unlock(&pool->mu);
  }
  pthread_cond_destroy(&L.done);
  if (atomic_load(&L.faulted)) {
    if (f)
      *f = L.fault;
    return L.fault.error;
  }
  return PTX_ERR_SUCCESS;
}
