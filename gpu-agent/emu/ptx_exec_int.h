/*
 * ptx_exec_int.h: the executor's private structures, shared by its files
 * (ptx_exec.c: prepare, keys, pool, launch, scheduler, control flow;
 * ptx_exec_alu.c: integer, bit, float and half arithmetic, compares;
 * ptx_exec_cvt.c: mov and cvt; ptx_exec_fp.c: rounding modes and the
 * narrow float formats; ptx_exec_mem.c: memory and atomics;
 * ptx_exec_warp.c: warp-synchronous instructions; ptx_printf.c: vprintf
 * and __assertfail).
 *
 * Register file.  A frame's registers are rows of 32 uint64_t, one per lane
 * (px_row), so a handler's lane loop walks contiguous memory.  Writers put
 * the result in the low bits of the slot; readers only ever look at the
 * low bits of their operand's width (a u32 operand reads (uint32_t)slot),
 * so what a narrow write leaves in the upper bits never matters.  The one
 * exception is an address held in a register declared 32-bit: it is
 * truncated to 32 bits before use.
 *
 * Handlers.  ptx_exec_prepare resolves every instruction to a handler
 * (ptx_insn.xop, an index into px_handlers[]) plus handler-specific data
 * (ptx_insn.xaux).  A handler runs one instruction for the lanes in `mask`
 * (the running group narrowed by the guard) and returns PX_NEXT (continue
 * with the next instruction), PX_CTL (it changed the warp's control state
 * itself: branch, call, return, barrier), PX_YIELD (continue, but let
 * the block's other warps run first) or PX_STOP (a fault was recorded).
 */
#ifndef PTX_EXEC_INT_H
#define PTX_EXEC_INT_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "ptx_exec.h"

/* Vector operands with immediate elements ({0, %rs1}), where the IR has
   them: element j of o is the immediate o->vec[j]. */
#ifdef PTX_OF_VIMM
#define PX_VIMM(o, j) (((o)->flags & PTX_OF_VIMM) && ((o)->sub >> (j)) & 1)
#define PX_HAS_VIMM(o) (((o)->flags & PTX_OF_VIMM) != 0)
#else
#define PX_VIMM(o, j) 0
#define PX_HAS_VIMM(o) 0
#endif

#define PX_W 32u
#define PX_FULL 0xffffffffu
#define PX_NBAR 16u          /* named barriers per block */
#define PX_NRNG 4u           /* cached global ranges per worker */
#define PX_NOPC UINT32_MAX
#define PX_SLICE 8192u       /* warp-instructions between stop checks */
#define PX_MAX_DEPTH 4096u   /* call frames per warp */
#define PX_CALL_COST 16u     /* stack bytes a call costs besides locals */
#define PX_RESERVED_SMEM 1024u /* shared bytes the runtime keeps per block */

typedef uint64_t px_row[PX_W];

/* handler results; PX_YIELD: go on with the next instruction, but give
   the block's other warps the CPU first (nanosleep) */
enum { PX_NEXT = 0, PX_CTL = 1, PX_STOP = 2, PX_YIELD = 3 };
enum { PX_WS_RUN = 0, PX_WS_BLOCKED, PX_WS_DONE };

struct px_launch;
struct px_block;

/*
 * One call frame of a warp.  The lanes that entered it (callmask) share
 * one register file and one local frame offset; each has its own param
 * area and, when not in the running group, its own pc.
 */
struct px_frame {
  px_row *R;             /* nregs rows */
  uint8_t *par;          /* param area: lane l at par + l * psize */
  uint64_t psize;
  uint32_t func;
  uint32_t live;         /* lanes in this frame or deeper, not exited */
  uint32_t callmask;     /* lanes that entered and have not exited */
  uint32_t call_pc;      /* the caller's call instruction */
  uint32_t local_base;   /* this frame's depot, offset in a thread's stack */
  uint32_t local_end;    /* where a callee's depot may start */
  uint32_t fend;         /* first instruction past the function */
  size_t rcap, pcap;     /* bytes allocated at R and par (reused) */
  uint32_t pc[PX_W];     /* pc of each live lane not in the running group */
};

struct px_warp {
  struct px_block *b;
  px_row *R;             /* registers of the innermost frame */
  struct px_frame *top;
  /*
   * The running group: lanes G of the innermost frame, all at pc P, the
   * lowest pc of its runnable lanes.  nextpc is the lowest pc of its other
   * runnable lanes (PX_NOPC when the group is all of them, the converged
   * case), so the group runs on until it reaches nextpc and merges, or
   * branches elsewhere; only then are the lanes' pcs scanned again.
   */
  uint32_t G, P, nextpc, gcount;
  uint32_t blocked;      /* lanes waiting at a barrier or bar.warp.sync */
  uint32_t exited;       /* lanes done (and lanes a partial warp lacks) */
  uint32_t cc;           /* carry flag per lane (add.cc / addc) */
  uint32_t depth;        /* frames in use */
  uint32_t nframes;      /* frames allocated */
  struct px_frame *frames;
  uint32_t id;           /* warp index in the block */
  uint32_t tid0;         /* linear thread index of lane 0 */
  uint8_t state;         /* PX_WS_* */
  uint8_t resched;       /* lanes were released: rescan before running */
  /* barrier waits: per named barrier, the lanes of this warp waiting */
  uint32_t barwait[PX_NBAR];
  const struct ptx_insn *barred[PX_NBAR]; /* bar.red waiting on it */
  px_row *barred_R[PX_NBAR];
  uint32_t wsync_wait;   /* lanes blocked in bar.warp.sync */
  uint32_t wsync_need;   /* the lanes they wait for */
  uint32_t budget;       /* instructions left in this slice */
  uint64_t ninsn;        /* thread-instructions run (flushed per block) */
  uint64_t tid[3][PX_W]; /* %tid per lane: rows, so an operand can use
                            them directly */
  uint64_t tid_grid;     /* the launch they were computed for */
  uint64_t tmp[PTX_MAX_OPS][PX_W]; /* non-register operands as rows */
  uint64_t tmpval[PTX_MAX_OPS];    /* the value tmp[k] is a splat of ... */
  uint8_t tmpok[PTX_MAX_OPS];      /* ... when set */
};

struct px_bar {
  uint32_t arrived;      /* threads arrived in this phase */
  uint32_t count;        /* expected threads; 0: every live thread */
  uint32_t red_and, red_or, popc;
};

/* One block on one worker; its buffers belong to the worker's px_ctx. */
struct px_block {
  struct px_launch *L;
  uint32_t ctaid[3];
  uint32_t nthreads, nwarps, live_threads;
  uint32_t smid;
  uint8_t *shared;
  uint64_t shared_size;
  uint8_t *local;        /* nthreads * stack bytes */
  uint32_t stack;
  struct px_warp *warps;
  struct px_bar bar[PX_NBAR];
  uint64_t ninsn;
  /*
   * Global ranges this worker has been told about during this launch
   * (rng_grid), most recent first; a hit costs two compares and no lock.
   */
  uint64_t rng_grid;
  struct { uint64_t lo, hi; } rng[PX_NRNG];
};

/* A worker's reusable buffers (blocks of any launch). */
struct px_ctx {
  struct px_block blk;
  struct px_warp *warps;
  uint32_t nwarps_cap;
  uint8_t *shared;
  uint64_t shared_cap;
  uint8_t *local;
  uint64_t local_cap;
  uint32_t worker;       /* %smid */
};

struct px_launch {
  const struct ptx_launch_desc *d;
  const struct ptx_module *m;
  const struct ptx_func *entry;
  uint64_t nblocks;
  _Atomic uint64_t next;       /* next block to claim */
  _Atomic int faulted;         /* the first fault wins */
  _Atomic int stop;            /* faulted, cancelled or timed out */
  struct ptx_fault fault;      /* written by the winner only */
  uint64_t deadline;           /* CLOCK_MONOTONIC ns, 0: none */
  uint64_t gridid;
  uint32_t nthreads, nwarps;
  uint64_t user_shared;        /* the kernel's: static + dynamic */
  uint64_t shared_size;        /* that, aligned, + PX_RESERVED_SMEM */
  uint64_t entry_psize;        /* call-site param area of the entry */
  uint32_t entry_local;        /* the entry's depot, aligned */
  uint32_t stack;              /* local bytes per thread: depot + stack */
  /* pool bookkeeping, under the pool's mutex */
  struct px_launch *lnext;
  unsigned refs;               /* threads running blocks of it */
  pthread_cond_t done;
};

typedef int (*px_handler)(struct px_warp *w, const struct ptx_insn *in,
                          uint32_t mask);

/* ---- handlers -------------------------------------------------------- */

/*
 * Every handler, by file.  The order is the xop numbering; it is private
 * to one build, so it may change freely.
 */
#define PX_HANDLERS_CTL(X)                                                   \
  X(nop) X(bra) X(call) X(ret) X(exit) X(trap) X(bar) X(bar_arrive)          \
  X(bar_red) X(warpsync) X(nanosleep) X(fence) X(vprintf) X(assertfail)
#define PX_HANDLERS_ALU(X)                                                   \
  X(iadd) X(isub) X(iaddc) X(isubc) X(imul) X(imad) X(imadc) X(imul24)       \
  X(imad24) X(isad) X(idiv) X(irem) X(iabs) X(ineg) X(imin) X(imax)          \
  X(and) X(or) X(xor) X(not) X(cnot) X(pand) X(por) X(pxor) X(pnot)          \
  X(shl) X(shr) X(shf) X(popc) X(clz) X(brev) X(bfe) X(bfi) X(bfind)         \
  X(fns) X(prmt) X(lop3) X(dp4a) X(dp2a)                                     \
  X(fadd32) X(fsub32) X(fmul32) X(ffma32) X(ffma32_hw) X(fdiv32)             \
  X(fadd64) X(fsub64) X(fmul64) X(ffma64) X(fdiv64)                          \
  X(fabs) X(fneg) X(fmin) X(fmax) X(fcopysign) X(ftestp)                     \
  X(frcp) X(fsqrt) X(frsqrt) X(fsin) X(fcos) X(flg2) X(fex2) X(ftanh)        \
  X(hadd) X(hsub) X(hmul) X(hfma) X(hmin) X(hmax) X(habs) X(hneg) X(hex2)    \
  X(htanh)                                                                   \
  X(setp_i) X(setp_f) X(setp_h) X(set) X(selp) X(slct)
#define PX_HANDLERS_CVT(X)                                                   \
  X(mov) X(mov_pred) X(mov_pack) X(mov_unpack) X(cvt_ii) X(cvt_if) X(cvt_fi) \
  X(cvt_ff) X(cvt_pack)
#define PX_HANDLERS_MEM(X)                                                   \
  X(ld) X(ld_param) X(st) X(atom) X(red) X(cvta) X(isspacep) X(prefetch)   \
  X(ld_g) X(ld_s) X(st_g) X(st_s)
#define PX_HANDLERS_WARP(X)                                                  \
  X(shfl) X(vote) X(match) X(activemask) X(redux)
#define PX_HANDLERS(X)                                                       \
  PX_HANDLERS_CTL(X) PX_HANDLERS_ALU(X) PX_HANDLERS_CVT(X)                   \
  PX_HANDLERS_MEM(X) PX_HANDLERS_WARP(X)

enum px_xop {
#define PX_X_ENUM(n) PX_X_##n,
  PX_HANDLERS(PX_X_ENUM)
#undef PX_X_ENUM
  PX_X__COUNT
};

#define PX_X_DECL(n)                                                         \
  int px_h_##n(struct px_warp *w, const struct ptx_insn *in, uint32_t mask);
PX_HANDLERS(PX_X_DECL)
#undef PX_X_DECL

/*
 * Selection: the handler (and xaux) for an instruction of one family, or
 * -ENOTSUP.  Pure functions of the instruction, so ptx_exec_supports and
 * ptx_exec_prepare agree by construction.
 */
int px_sel_alu(const struct ptx_insn *in, uint32_t *xop, uint32_t *xaux);
int px_sel_cvt(const struct ptx_insn *in, uint32_t *xop, uint32_t *xaux);
int px_sel_mem(const struct ptx_insn *in, uint32_t *xop, uint32_t *xaux);
int px_sel_warp(const struct ptx_insn *in, uint32_t *xop, uint32_t *xaux);

/* ---- shared helpers (ptx_exec.c) ------------------------------------- */

/* Rows for a source operand that is not a register: immediates splat,
   special registers per lane, symbol addresses.  tmp is w->tmp[k]. */
const uint64_t *px_src_slow(struct px_warp *w, const struct ptx_operand *o,
                            uint64_t *tmp);

static inline const uint64_t *px_src(struct px_warp *w,
                                     const struct ptx_insn *in, unsigned k)
{
  const struct ptx_operand *o = &in->ops[k];

  if (__builtin_expect(o->kind == PTX_O_REG, 1))
    return w->R[o->reg];
  return px_src_slow(w, o, w->tmp[k]);
}

static inline uint64_t *px_dst(struct px_warp *w, const struct ptx_insn *in,
                               unsigned k)
{
  return w->R[in->ops[k].reg];
}

/* Record a fault (the first of the launch wins) and return PX_STOP.  lane
   selects the thread reported; addr the faulting address. */
int px_fault(struct px_warp *w, const struct ptx_insn *in, uint32_t err,
             unsigned lane, uint64_t addr, const char *fmt, ...)
  __attribute__((format(printf, 6, 7)));

/* The canonical key of an instruction (ptx_exec_key), for messages. */
void px_key(const struct ptx_insn *in, char *buf, size_t len);

/* Value of a symbol as an operand: its address in its own state space
   (global/const: the device address; shared: the offset; local: the
   offset in the thread's stack; param: the offset in the param area). */
uint64_t px_sym_value(struct px_warp *w, uint32_t sym);

/* %tid-style special register value of a lane. */
uint64_t px_sreg(struct px_warp *w, unsigned sreg, unsigned sub,
                 unsigned lane);


/* ---- memory helpers (ptx_exec_mem.c) --------------------------------- */

/* xaux bit set by prepare: the address operand's register is declared
   32 bits wide, so only its low 32 bits are the address. */
#define PX_XA_R32 0x80000000u

/*
 * Resolve a memory operand for the lanes in mask to host pointers p[l],
 * checking range and alignment for an access of `size` bytes aligned to
 * `align` in space `space` (PTX_SP_*, NONE = generic).  write: the access
 * stores (the kernel's param buffer is read-only).  *priv gets the lanes
 * whose memory is the block's own (shared, local, param), which no other
 * thread of the host touches.  Returns 0, or PX_STOP after recording the
 * fault.
 */
int px_resolve(struct px_warp *w, const struct ptx_insn *in,
               const struct ptx_operand *ao, unsigned space, uint32_t mask,
               unsigned size, unsigned align, int write, uint8_t **p,
               uint32_t *priv);

/*
 * Where generic address a of a lane may be read: a host pointer and the
 * number of bytes readable from it (at least 1), for printf and assert
 * arguments.  Returns 0 or -EFAULT (nothing recorded).
 */
int px_generic_span(struct px_warp *w, unsigned lane, uint64_t a,
                    const uint8_t **ptr, uint64_t *avail);

/* ---- printf (ptx_printf.c) ------------------------------------------- */

/* Format one CUDA printf call for a lane.  Returns the value vprintf
   returns (arguments consumed, -1 bad format pointer); output goes through
   the launch's print callback. */
int32_t px_vprintf(struct px_warp *w, unsigned lane, uint64_t fmt,
                   uint64_t args);

/* Print an __assertfail message for a lane. */
void px_assert_msg(struct px_warp *w, unsigned lane, uint64_t msg,
                   uint64_t file, uint32_t line, uint64_t func);

/* ---- lane loops ------------------------------------------------------- */

/*
 * PX_FOR(mask, body): run body with `l` bound to each lane in mask.  The
 * full-warp case is a plain counted loop the compiler can unroll and
 * vectorise; the partial case walks the set bits.
 */
#define PX_FOR(mask, ...)                                                    \
  do {                                                                       \
    uint32_t px_m_ = (mask);                                                 \
    if (px_m_ == PX_FULL) {                                                  \
      for (unsigned l = 0; l < PX_W; l++) {                                  \
        __VA_ARGS__;                                                         \
      }                                                                      \
    } else {                                                                 \
      for (; px_m_; px_m_ &= px_m_ - 1) {                                    \
        unsigned l = (unsigned)__builtin_ctz(px_m_);                         \
        __VA_ARGS__;                                                         \
      }                                                                      \
    }                                                                        \
  } while (0)

/* Lanes in order, for side effects that must happen lane by lane. */
#define PX_FOR_SEQ(mask, ...)                                                \
  do {                                                                       \
    for (uint32_t px_m_ = (mask); px_m_; px_m_ &= px_m_ - 1) {               \
      unsigned l = (unsigned)__builtin_ctz(px_m_);                           \
      __VA_ARGS__;                                                           \
    }                                                                        \
  } while (0)

/* PX_SWITCH_W(size, body): body with UT/ST the unsigned/signed C types of
   a 2, 4 or 8 byte integer and BITS its width. */
#define PX_SWITCH_W(sz, ...)                                                 \
  do {                                                                       \
  switch (sz) {                                                              \
  case 2: {                                                                  \
    typedef uint16_t UT __attribute__((unused));                             \
    typedef int16_t ST __attribute__((unused));                              \
    enum { BITS = 16 };                                                      \
    __VA_ARGS__;                                                             \
    break;                                                                   \
  }                                                                          \
  case 4: {                                                                  \
    typedef uint32_t UT __attribute__((unused));                             \
    typedef int32_t ST __attribute__((unused));                              \
    enum { BITS = 32 };                                                      \
    __VA_ARGS__;                                                             \
    break;                                                                   \
  }                                                                          \
  default: {                                                                 \
    typedef uint64_t UT __attribute__((unused));                             \
    typedef int64_t ST __attribute__((unused));                              \
    enum { BITS = 64 };                                                      \
    __VA_ARGS__;                                                             \
    break;                                                                   \
  }                                                                          \
  }                                                                          \
  } while (0)

/* Population count without relying on a popcnt instruction (the baseline
   x86-64 has none, and the libgcc call is slower than this). */
static inline uint32_t px_popc(uint32_t x)
{
  x = x - ((x >> 1) & 0x55555555u);
  x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u);
  x = (x + (x >> 4)) & 0x0f0f0f0fu;
  return (x * 0x01010101u) >> 24;
}

/* ---- bit casts --------------------------------------------------------- */

static inline float px_f32(uint64_t v)
{
  uint32_t u = (uint32_t)v;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static inline uint64_t px_b32(float f)
{
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

static inline double px_f64(uint64_t v)
{
  double d;
  memcpy(&d, &v, 8);
  return d;
}

static inline uint64_t px_b64(double d)
{
  uint64_t u;
  memcpy(&u, &d, 8);
  return u;
}

/*
 * NaNs as the GPU produces them (measured on an H200, see
 * tests/unit/test_ptx_exec_golden.cu).  f32 and f16/bf16 arithmetic
 * returns one canonical NaN whatever the inputs (0x7fffffff, 0x7fff).
 * f64 arithmetic propagates an input NaN, quieted, keeping its sign and
 * payload: the last NaN operand in the order the fma datapath reads them
 * (c, then b, then a; division, which is a software sequence, prefers a),
 * and an invalid operation (inf - inf, 0 * inf) gives 0xfff8000000000000.
 */
#define PX_CANON32 0x7fffffffu
#define PX_CANON16 0x7fffu
#define PX_DNAN64 0xfff8000000000000ull

static inline int px_isnan64(uint64_t x)
{
  return (x & 0x7fffffffffffffffull) > 0x7ff0000000000000ull;
}

/* The NaN result of an f64 operation on a, b, c (pass a NaN-free value,
   e.g. 0, for operands it does not have), in priority order c, b, a. */
static inline uint64_t px_nan64(uint64_t a, uint64_t b, uint64_t c)
{
  if (px_isnan64(c))
    return c | 0x0008000000000000ull;
  if (px_isnan64(b))
    return b | 0x0008000000000000ull;
  if (px_isnan64(a))
    return a | 0x0008000000000000ull;
  return PX_DNAN64;
}

/* ---- half precision (ptx_exec_fp.c) ------------------------------------- */

/* IEEE binary16 and bfloat16 <-> float and double, correctly rounded
   (rnd: PTX_RND_RN RZ RM RP; NONE = RN). */
float px_h2f(uint16_t h);
uint16_t px_d2h(double d, unsigned rnd);
float px_bf2f(uint16_t h);
uint16_t px_d2bf(double d, unsigned rnd);

/*
 * ptx_exec_fp.c (built with -frounding-math).  px_fop32/64: an f32/f64
 * operation (PX_RO_*) over the lanes in mask under rounding rnd, with
 * .ftz/.sat from fl.  px_round_fmt: d rounded to a binary format of mbits
 * mantissa bits, bias ebias, ebits exponent bits, as its bits (NaN: the
 * canonical NaN).  px_round_int: an integer magnitude rounded to prec
 * significant bits, as an exact double.
 */
enum { PX_RO_ADD, PX_RO_SUB, PX_RO_MUL, PX_RO_FMA, PX_RO_DIV, PX_RO_SQRT,
       PX_RO_RCP };
void px_fop32(unsigned op, unsigned rnd, uint32_t fl, uint32_t mask,
              uint64_t *d, const uint64_t *a, const uint64_t *b,
              const uint64_t *c);
void px_fop64(unsigned op, unsigned rnd, uint32_t fl, uint32_t mask,
              uint64_t *d, const uint64_t *a, const uint64_t *b,
              const uint64_t *c);
uint32_t px_round_fmt(double d, unsigned mbits, int ebias, unsigned ebits,
                      unsigned rnd);
double px_round_int(uint64_t mag, int neg, unsigned prec, unsigned rnd);

/* fmaf correctly rounded without relying on a hardware FMA. */
float px_fmaf(float a, float b, float c);

static inline uint64_t px_now_ns(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#endif /* PTX_EXEC_INT_H */
