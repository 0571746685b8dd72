/*
 * ptx_exec_mem.c: loads, stores, atomics and address conversions.
 *
 * Every access is checked before it is made.  Global and constant
 * addresses are host addresses of device memory: the backend's
 * global_range says whether they are, and its answer (the whole
 * allocation) is cached per worker so that the next access to the same
 * allocation costs two compares.  Shared, local and param addresses are
 * offsets into the executor's own buffers, checked against their sizes.
 * A generic address is recognised as shared or local when it points into
 * the block's buffers (what cvta.shared / cvta.local produce), else it is
 * global.
 *
 * Atomics on global memory use the host's atomic instructions, as other
 * blocks run on other threads; on the block's own memory they are plain
 * read-modify-writes, done lane by lane in lane order so that lanes of one
 * warp hitting the same address all count.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>

#include "ptx_exec_int.h"

static inline int px_gcheck(const struct px_block *b, uint64_t x,
                            uint64_t n)
{
  for (unsigned i = 0; i < PX_NRNG; i++) {
    uint64_t lo = b->rng[i].lo, span = b->rng[i].hi - lo;
    if (x - lo < span && span - (x - lo) >= n)
      return 1;
  }
  return 0;
}

/* Ask the backend; remember the answer.  0 or -EFAULT. */
static int px_gquery(struct px_block *b, uint64_t x, uint64_t n)
{
  const struct ptx_memops *mo = &b->L->d->mem;
  uint64_t lo = 0, hi = 0;

  if (x + n < x || mo->global_range(mo->ctx, x, n, &lo, &hi) ||
      x < lo || hi < x + n)
    return -EFAULT;
  memmove(&b->rng[1], &b->rng[0], sizeof(b->rng[0]) * (PX_NRNG - 1));
  b->rng[0].lo = lo;
  b->rng[0].hi = hi;
  return 0;
}

static int px_bad_global(struct px_warp *w, const struct ptx_insn *in,
                         unsigned lane, uint64_t x, unsigned size)
{
  char key[96];

  px_key(in, key, sizeof(key));
  return px_fault(w, in, PTX_ERR_ILLEGAL_ADDRESS, lane, x,
                  "%s: address 0x%" PRIx64 " (%u bytes) is outside every "
                  "allocation", key, x, size);
}

static int px_bad_align(struct px_warp *w, const struct ptx_insn *in,
                        unsigned lane, uint64_t x, unsigned align)
{
  char key[96];

  px_key(in, key, sizeof(key));
  return px_fault(w, in, PTX_ERR_MISALIGNED_ADDRESS, lane, x,
                  "%s: address 0x%" PRIx64 " is not aligned to %u bytes",
                  key, x, align);
}

static int px_bad_space(struct px_warp *w, const struct ptx_insn *in,
                        unsigned lane, uint64_t x, const char *what,
                        uint64_t limit)
{
  char key[96];

  px_key(in, key, sizeof(key));
  return px_fault(w, in, PTX_ERR_ILLEGAL_ADDRESS, lane, x,
                  "%s: %s address 0x%" PRIx64 " is outside its %" PRIu64
                  " bytes", key, what, x, limit);
}

/* fits: [x, x+n) inside [0, lim) */
static inline int px_fits(uint64_t x, uint64_t n, uint64_t lim)
{
  return x <= lim && lim - x >= n;
}

int px_resolve(struct px_warp *w, const struct ptx_insn *in,
               const struct ptx_operand *ao, unsigned space, uint32_t mask,
               unsigned size, unsigned align, int write, uint8_t **p,
               uint32_t *priv)
{
  struct px_block *b = w->b;
  const struct px_launch *L = b->L;
  const uint64_t *base = ao->reg != PTX_NOREG ? w->R[ao->reg] : NULL;
  uint64_t off = (uint64_t)ao->imm, a[PX_W];
  unsigned symk = 0;
  uint64_t am = align - 1;

  *priv = 0;
  if (ao->sym != PTX_NOSYM) {
    symk = L->m->syms[ao->sym].kind;
    off += px_sym_value(w, ao->sym);
    if (space == PTX_SP_NONE) {
      /* a symbol in generic space: its generic address */
      if (symk == PTX_SYM_SHARED || symk == PTX_SYM_SHARED_EXTERN)
        off += (uint64_t)(uintptr_t)b->shared;
      else if (symk == PTX_SYM_KPARAM)
        off += (uint64_t)(uintptr_t)L->d->params;
      else if (symk == PTX_SYM_LOCAL)
        off += (uint64_t)(uintptr_t)b->local;
    }
  }
  if (!base)
    PX_FOR(mask, a[l] = off);
  else if (in->xaux & PX_XA_R32)
    PX_FOR(mask, a[l] = (uint32_t)base[l] + off);
  else
    PX_FOR(mask, a[l] = base[l] + off);
  if (space == PTX_SP_NONE && symk == PTX_SYM_LOCAL)
    PX_FOR(mask, a[l] += (uint64_t)(w->tid0 + l) * b->stack);

  switch (space) {
  case PTX_SP_GLOBAL:
  case PTX_SP_CONST:
    PX_FOR(mask, {
      uint64_t x = a[l];
      if (x & am)
        return px_bad_align(w, in, l, x, align);
      if (!px_gcheck(b, x, size) && px_gquery(b, x, size))
        return px_bad_global(w, in, l, x, size);
      p[l] = (uint8_t *)(uintptr_t)x;
    });
    return 0;
  case PTX_SP_SHARED:
    PX_FOR(mask, {
      uint64_t x = a[l];
      if (x & am)
        return px_bad_align(w, in, l, x, align);
      if (!px_fits(x, size, b->shared_size))
        return px_bad_space(w, in, l, x, "shared", b->shared_size);
      p[l] = b->shared + x;
    });
    *priv = mask;
    return 0;
  case PTX_SP_LOCAL:
    PX_FOR(mask, {
      uint64_t x = a[l];
      if (x & am)
        return px_bad_align(w, in, l, x, align);
      if (!px_fits(x, size, b->stack))
        return px_bad_space(w, in, l, x, "local", b->stack);
      p[l] = b->local + (size_t)(w->tid0 + l) * b->stack + x;
    });
    *priv = mask;
    return 0;
  case PTX_SP_PARAM:
    if (symk == PTX_SYM_FPARAM || (symk != PTX_SYM_KPARAM && w->depth > 1)) {
      struct px_frame *f = w->top;
      PX_FOR(mask, {
        uint64_t x = a[l];
        if (x & am)
          return px_bad_align(w, in, l, x, align);
        if (!px_fits(x, size, f->psize))
          return px_bad_space(w, in, l, x, "param", f->psize);
        p[l] = f->par + (size_t)l * f->psize + x;
      });
    } else {
      const struct ptx_launch_desc *d = L->d;
      if (write)
        return px_bad_space(w, in, (unsigned)__builtin_ctz(mask), a[0],
                            "kernel param (read-only)", d->params_size);
      PX_FOR(mask, {
        uint64_t x = a[l];
        if (x & am)
          return px_bad_align(w, in, l, x, align);
        if (!px_fits(x, size, d->params_size))
          return px_bad_space(w, in, l, x, "kernel param", d->params_size);
        p[l] = (uint8_t *)(uintptr_t)(d->params + x);
      });
    }
    *priv = mask;
    return 0;
  default: {
    /* generic: the block's shared memory, this thread's local memory or
       the kernel's parameters (read-only), else global */
    uint64_t sh = (uint64_t)(uintptr_t)b->shared;
    uint64_t lo = (uint64_t)(uintptr_t)b->local;
    uint64_t lsz = (uint64_t)b->nthreads * b->stack;
    uint64_t pa = (uint64_t)(uintptr_t)L->d->params;
    uint32_t pv = 0;
    PX_FOR(mask, {
      uint64_t x = a[l];
      if (x & am)
        return px_bad_align(w, in, l, x, align);
      if (px_gcheck(b, x, size)) {
        p[l] = (uint8_t *)(uintptr_t)x;
        continue;
      }
      if (x - sh < b->shared_size) {
        if (!px_fits(x - sh, size, b->shared_size))
          return px_bad_space(w, in, l, x - sh, "shared", b->shared_size);
        pv |= 1u << l;
      } else if (x - lo < lsz) {
        uint64_t own = lo + (uint64_t)(w->tid0 + l) * b->stack;
        if (x < own || !px_fits(x - own, size, b->stack))
          return px_bad_space(w, in, l, x - lo, "local (another thread's)",
                              b->stack);
        pv |= 1u << l;
      } else if (pa && x - pa < L->d->params_size) {
        if (write || !px_fits(x - pa, size, L->d->params_size))
          return px_bad_space(w, in, l, x - pa, "kernel param (read-only)",
                              L->d->params_size);
        pv |= 1u << l;
      } else if (px_gquery(b, x, size)) {
        return px_bad_global(w, in, l, x, size);
      }
      p[l] = (uint8_t *)(uintptr_t)x;
    });
    *priv = pv;
    return 0;
  }
  }
}

int px_generic_span(struct px_warp *w, unsigned lane, uint64_t a,
                    const uint8_t **ptr, uint64_t *avail)
{
  struct px_block *b = w->b;
  const struct ptx_launch_desc *d = b->L->d;
  uint64_t sh = (uint64_t)(uintptr_t)b->shared;
  uint64_t own = (uint64_t)(uintptr_t)b->local +
                 (uint64_t)(w->tid0 + lane) * b->stack;
  uint64_t pa = (uint64_t)(uintptr_t)d->params;

  if (a - sh < b->shared_size) {
    *avail = b->shared_size - (a - sh);
  } else if (a - own < b->stack) {
    *avail = b->stack - (a - own);
  } else if (pa && a - pa < d->params_size) {
    *avail = d->params_size - (a - pa);
  } else {
    uint64_t lo, hi;
    if (!a || d->mem.global_range(d->mem.ctx, a, 1, &lo, &hi) || a < lo ||
        a >= hi)
      return -EFAULT;
    *avail = hi - a;
  }
  *ptr = (const uint8_t *)(uintptr_t)a;
  return 0;
}

/* ---- loads and stores ----------------------------------------------------- */

/* xaux: element bytes | vector width << 8 | signed << 12 */
#define XM_SZ(x) ((x)&0xffu)
#define XM_VEC(x) (((x) >> 8) & 0xfu)
#define XM_SGN(x) (((x) >> 12) & 1u)

static inline uint64_t px_load(const uint8_t *p, unsigned sz, unsigned sgn)
{
  switch (sz) {
  case 1: {
    uint8_t v = *p;
    return sgn ? (uint64_t)(int64_t)(int8_t)v : v;
  }
  case 2: {
    uint16_t v;
    memcpy(&v, p, 2);
    return sgn ? (uint64_t)(int64_t)(int16_t)v : v;
  }
  case 4: {
    uint32_t v;
    memcpy(&v, p, 4);
    return sgn ? (uint64_t)(int64_t)(int32_t)v : v;
  }
  default: {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
  }
  }
}

/*
 * Global memory is read and written with atomic instructions of the
 * access's own size: relaxed ones, which on x86 are the plain moves, and
 * acquire/release for ld.volatile/.acquire, st.volatile/.release (and
 * what other memory orders a kernel writes).  Other blocks run on other
 * host threads, and kernels do race on purpose (flags, "last block"
 * counters, benign duplicate writes); this keeps such races defined for
 * the host compiler and quiet under ThreadSanitizer.
 */
static inline uint64_t px_load_at(const uint8_t *p, unsigned sz,
                                  unsigned sgn, int strong)
{
  switch (sz) {
  case 1: {
    uint8_t v = strong ? __atomic_load_n(p, __ATOMIC_ACQUIRE)
                       : __atomic_load_n(p, __ATOMIC_RELAXED);
    return sgn ? (uint64_t)(int64_t)(int8_t)v : v;
  }
  case 2: {
    const uint16_t *q = (const uint16_t *)p;
    uint16_t v = strong ? __atomic_load_n(q, __ATOMIC_ACQUIRE)
                        : __atomic_load_n(q, __ATOMIC_RELAXED);
    return sgn ? (uint64_t)(int64_t)(int16_t)v : v;
  }
  case 4: {
    const uint32_t *q = (const uint32_t *)p;
    uint32_t v = strong ? __atomic_load_n(q, __ATOMIC_ACQUIRE)
                        : __atomic_load_n(q, __ATOMIC_RELAXED);
    return sgn ? (uint64_t)(int64_t)(int32_t)v : v;
  }
  default: {
    const uint64_t *q = (const uint64_t *)p;
    return strong ? __atomic_load_n(q, __ATOMIC_ACQUIRE)
                  : __atomic_load_n(q, __ATOMIC_RELAXED);
  }
  }
}

static inline void px_store(uint8_t *p, unsigned sz, uint64_t v)
{
  switch (sz) {
  case 1:
    *p = (uint8_t)v;
    break;
  case 2: {
    uint16_t x = (uint16_t)v;
    memcpy(p, &x, 2);
    break;
  }
  case 4: {
    uint32_t x = (uint32_t)v;
    memcpy(p, &x, 4);
    break;
  }
  default:
    memcpy(p, &v, 8);
    break;
  }
}

static inline void px_store_at(uint8_t *p, unsigned sz, uint64_t v,
                               int strong)
{
  switch (sz) {
  case 1:
    if (strong)
      __atomic_store_n(p, (uint8_t)v, __ATOMIC_RELEASE);
    else
      __atomic_store_n(p, (uint8_t)v, __ATOMIC_RELAXED);
    break;
  case 2:
    if (strong)
      __atomic_store_n((uint16_t *)p, (uint16_t)v, __ATOMIC_RELEASE);
    else
      __atomic_store_n((uint16_t *)p, (uint16_t)v, __ATOMIC_RELAXED);
    break;
  case 4:
    if (strong)
      __atomic_store_n((uint32_t *)p, (uint32_t)v, __ATOMIC_RELEASE);
    else
      __atomic_store_n((uint32_t *)p, (uint32_t)v, __ATOMIC_RELAXED);
    break;
  default:
    if (strong)
      __atomic_store_n((uint64_t *)p, v, __ATOMIC_RELEASE);
    else
      __atomic_store_n((uint64_t *)p, v, __ATOMIC_RELAXED);
    break;
  }
}

int px_h_ld(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  uint32_t x = in->xaux, priv;
  unsigned sz = XM_SZ(x), vec = XM_VEC(x), sgn = XM_SGN(x);
  int strong = !!(in->flags & (PTX_F_VOLATILE | PTX_F_MEMORD));
  uint8_t *p[PX_W];

  if (px_resolve(w, in, &in->ops[1], in->space, mask, sz * vec, sz * vec, 0,
                 p, &priv))
    return PX_STOP;
  if (vec == 1) {
    uint64_t *d = px_dst(w, in, 0);
    if (priv == mask)
      PX_FOR(mask, d[l] = px_load(p[l], sz, sgn));
    else if (strong)
      PX_FOR(mask, d[l] = (priv >> l) & 1 ? px_load(p[l], sz, sgn)
                                          : px_load_at(p[l], sz, sgn, 1));
    else
      PX_FOR(mask, d[l] = (priv >> l) & 1 ? px_load(p[l], sz, sgn)
                                          : px_load_at(p[l], sz, sgn, 0));
    return PX_NEXT;
  }
  {
    const struct ptx_operand *v = &in->ops[0];
    /* every element is read before any register is written: an element
       register may also be the address register */
    uint64_t tmp[4][PX_W];
    for (unsigned j = 0; j < vec; j++)
      PX_FOR(mask, tmp[j][l] = (priv >> l) & 1
                                 ? px_load(p[l] + j * sz, sz, sgn)
                                 : px_load_at(p[l] + j * sz, sz, sgn, strong));
    for (unsigned j = 0; j < vec; j++) {
      uint64_t *d;
      if (v->vec[j] == PTX_NOREG)
        continue;
      d = w->R[v->vec[j]];
      PX_FOR(mask, d[l] = tmp[j][l]);
    }
  }
  return PX_NEXT;
}

/* ld.param of a kernel parameter: one read for the whole warp. */
int px_h_ld_param(struct px_warp *w, const struct ptx_insn *in,
                  uint32_t mask)
{
  const struct ptx_operand *ao = &in->ops[1];
  const struct ptx_launch_desc *d = w->b->L->d;
  uint32_t x = in->xaux;
  unsigned sz = XM_SZ(x), vec = XM_VEC(x), sgn = XM_SGN(x);
  const struct ptx_symbol *sym = &w->b->L->m->syms[ao->sym];
  uint64_t off = sym->offset + (uint64_t)ao->imm;

  if (sym->kind != PTX_SYM_KPARAM || !px_fits(off, (uint64_t)sz * vec, d->params_size) ||
      (off & (sz * vec - 1)))
    return px_h_ld(w, in, mask); /* reports the fault */
  if (vec == 1) {
    uint64_t v = px_load(d->params + off, sz, sgn), *dd = px_dst(w, in, 0);
    PX_FOR(mask, dd[l] = v);
    return PX_NEXT;
  }
  for (unsigned j = 0; j < vec; j++) {
    uint64_t v = px_load(d->params + off + j * sz, sz, sgn), *dd;
    if (in->ops[0].vec[j] == PTX_NOREG)
      continue;
    dd = w->R[in->ops[0].vec[j]];
    PX_FOR(mask, dd[l] = v);
  }
  return PX_NEXT;
}

int px_h_st(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  uint32_t x = in->xaux, priv;
  unsigned sz = XM_SZ(x), vec = XM_VEC(x);
  int strong = !!(in->flags & (PTX_F_VOLATILE | PTX_F_MEMORD));
  uint8_t *p[PX_W];

  if (px_resolve(w, in, &in->ops[0], in->space, mask, sz * vec, sz * vec, 1,
                 p, &priv))
    return PX_STOP;
  if (vec == 1) {
    const uint64_t *s = px_src(w, in, 1);
    PX_FOR(mask, {
      if ((priv >> l) & 1)
        px_store(p[l], sz, s[l]);
      else
        px_store_at(p[l], sz, s[l], strong);
    });
    return PX_NEXT;
  }
  for (unsigned j = 0; j < vec; j++) {
    const struct ptx_operand *v = &in->ops[1];
    const uint64_t *s;
    uint64_t k = 0;
    if (PX_VIMM(v, j)) {
      k = v->vec[j];
      s = NULL;
    } else if (v->vec[j] == PTX_NOREG) {
      continue;
    } else {
      s = w->R[v->vec[j]];
    }
    PX_FOR(mask, {
      uint64_t val = s ? s[l] : k;
      if ((priv >> l) & 1)
        px_store(p[l] + j * sz, sz, val);
      else
        px_store_at(p[l] + j * sz, sz, val, strong);
    });
  }
  return PX_NEXT;
}

/*
 * The common case of ld/st, fused: one scalar in global memory within the
 * most recently used allocation, or in shared memory.  A first pass
 * computes every lane's offset and only their maximum and their OR (so
 * the range and alignment checks cost one compare for the warp), the
 * second moves the data.  If the check fails the general handler takes
 * over, which asks the backend about other allocations or reports the
 * fault.
 */
/* lane l's byte is at base + x[l]: integers, so that a base of 0 (global
   addresses are host addresses) is no null-pointer arithmetic */
#define PX_AT(base, x) ((uint8_t *)(uintptr_t)((base) + (x)))

static inline void px_ld_lanes(uint64_t *d, uintptr_t base,
                               const uint64_t *x, uint32_t mask, unsigned sz,
                               unsigned sgn, int global)
{
  if (global) {
    PX_FOR(mask, d[l] = px_load_at(PX_AT(base, x[l]), sz, sgn, 0));
    return;
  }
  switch (sz) {
  case 8:
    PX_FOR(mask, memcpy(&d[l], PX_AT(base, x[l]), 8));
    break;
  case 4:
    if (sgn)
      PX_FOR(mask, {
        int32_t v;
        memcpy(&v, PX_AT(base, x[l]), 4);
        d[l] = (uint64_t)(int64_t)v;
      });
    else
      PX_FOR(mask, {
        uint32_t v;
        memcpy(&v, PX_AT(base, x[l]), 4);
        d[l] = v;
      });
    break;
  default:
    PX_FOR(mask, d[l] = px_load(PX_AT(base, x[l]), sz, sgn));
    break;
  }
}

static inline void px_st_lanes(uintptr_t base, const uint64_t *x,
                               const uint64_t *s, uint32_t mask, unsigned sz,
                               int global)
{
  if (global) {
    PX_FOR(mask, px_store_at(PX_AT(base, x[l]), sz, s[l], 0));
    return;
  }
  switch (sz) {
  case 8:
    PX_FOR(mask, memcpy(PX_AT(base, x[l]), &s[l], 8));
    break;
  case 4:
    PX_FOR(mask, {
      uint32_t v = (uint32_t)s[l];
      memcpy(PX_AT(base, x[l]), &v, 4);
    });
    break;
  default:
    PX_FOR(mask, px_store(PX_AT(base, x[l]), sz, s[l]));
    break;
  }
}

#define PX_FUSED(name, isld, isglobal)                                       \
  int px_h_##name(struct px_warp *w, const struct ptx_insn *in,              \
                  uint32_t mask)                                             \
  {                                                                          \
    const struct ptx_operand *ao = &in->ops[isld ? 1 : 0];                   \
    struct px_block *b = w->b;                                               \
    unsigned sz = XM_SZ(in->xaux);                                           \
    uint64_t off = (uint64_t)ao->imm, mn = ~0ull, mx = 0, any = 0;           \
    const uint64_t *base = w->R[ao->reg];                                    \
    uintptr_t mem;                                                           \
    uint64_t x[PX_W];                                                        \
    if (ao->sym != PTX_NOSYM)                                                \
      off += px_sym_value(w, ao->sym);                                       \
    if (in->xaux & PX_XA_R32)                                                \
      PX_FOR(mask, {                                                         \
        uint64_t v = (uint32_t)base[l] + off;                                \
        x[l] = v;                                                            \
        mn = v < mn ? v : mn;                                                \
        mx = v > mx ? v : mx;                                                \
        any |= v;                                                            \
      });                                                                    \
    else                                                                     \
      PX_FOR(mask, {                                                         \
        uint64_t v = base[l] + off;                                          \
        x[l] = v;                                                            \
        mn = v < mn ? v : mn;                                                \
        mx = v > mx ? v : mx;                                                \
        any |= v;                                                            \
      });                                                                    \
    if (any & (sz - 1))                                                      \
      goto slow;                                                             \
    if (isglobal) {                                                          \
      /* the lanes' addresses are offsets from 0: any cached allocation     \
         that holds [mn, mx + sz) will do */                                 \
      int found = 0;                                                         \
      for (unsigned i = 0; i < PX_NRNG && !found; i++)                       \
        found = mn >= b->rng[i].lo && mx < b->rng[i].hi &&                   \
                b->rng[i].hi - mx >= sz;                                     \
      if (!found)                                                            \
        goto slow;                                                           \
      mem = 0;                                                               \
    } else {                                                                 \
      if (b->shared_size < sz || mx > b->shared_size - sz)                   \
        goto slow;                                                           \
      mem = (uintptr_t)b->shared;                                            \
    }                                                                        \
    if (isld)                                                                \
      px_ld_lanes(px_dst(w, in, 0), mem, x, mask, sz, XM_SGN(in->xaux),      \
                  isglobal);                                                 \
    else                                                                     \
      px_st_lanes(mem, x, px_src(w, in, 1), mask, sz, isglobal);             \
    return PX_NEXT;                                                          \
  slow:                                                                      \
    return isld ? px_h_ld(w, in, mask) : px_h_st(w, in, mask);               \
  }

PX_FUSED(ld_g, 1, 1)
PX_FUSED(ld_s, 1, 0)
PX_FUSED(st_g, 0, 1)
PX_FUSED(st_s, 0, 0)

int px_h_prefetch(struct px_warp *w, const struct ptx_insn *in,
                  uint32_t mask)
{
  return PX_NEXT;
}

/* ---- atomics --------------------------------------------------------------- */

/* xaux for atom/red: element bytes | kind << 8 */
enum { AK_U, AK_S, AK_B, AK_F32, AK_F64, AK_F16, AK_BF16, AK_F16X2,
       AK_BF16X2 };
#define XA_KIND(x) (((x) >> 8) & 0xfu)

static inline float ftz32(float f)
{
  uint32_t u;

  memcpy(&u, &f, 4);
  if (!(u & 0x7f800000u))
    u &= 0x80000000u;
  memcpy(&f, &u, 4);
  return f;
}

/* old -> new for the float adds (atom.add.f32 flushes subnormals) */
static inline uint64_t px_fadd_bits(uint64_t old, uint64_t b, unsigned kind)
{
  switch (kind) {
  case AK_F32: {
    float r = ftz32(ftz32(px_f32(old)) + ftz32(px_f32(b)));
    return r == r ? px_b32(r) : 0x7fffffffu;
  }
  case AK_F64: {
    double r = px_f64(old) + px_f64(b);
    return r == r ? px_b64(r) : 0x7fffffffffffffffull;
  }
  case AK_F16:
    return px_d2h((double)px_h2f((uint16_t)old) + px_h2f((uint16_t)b),
                  PTX_RND_RN);
  case AK_BF16:
    return px_d2bf((double)px_bf2f((uint16_t)old) + px_bf2f((uint16_t)b),
                   PTX_RND_RN);
  case AK_F16X2:
    return px_d2h((double)px_h2f((uint16_t)old) + px_h2f((uint16_t)b),
                  PTX_RND_RN) |
           (uint64_t)px_d2h((double)px_h2f((uint16_t)(old >> 16)) +
                            px_h2f((uint16_t)(b >> 16)), PTX_RND_RN) << 16;
  default:
    return px_d2bf((double)px_bf2f((uint16_t)old) + px_bf2f((uint16_t)b),
                   PTX_RND_RN) |
           (uint64_t)px_d2bf((double)px_bf2f((uint16_t)(old >> 16)) +
                             px_bf2f((uint16_t)(b >> 16)), PTX_RND_RN) << 16;
  }
}

/* The new value of a read-modify-write that is not a plain add/and/or/
   xor/exch (those map to one host instruction). */
static inline uint64_t px_rmw_new(unsigned op, unsigned kind, unsigned sz,
                                  uint64_t old, uint64_t b)
{
  switch (op) {
  case PTX_ATOM_ADD:
    if (kind >= AK_F32)
      return px_fadd_bits(old, b, kind);
    return old + b;
  case PTX_ATOM_MIN:
  case PTX_ATOM_MAX: {
    int lt;
    if (kind == AK_S)
      lt = sz == 8 ? (int64_t)old < (int64_t)b : (int32_t)old < (int32_t)b;
    else
      lt = sz == 8 ? old < b : (uint32_t)old < (uint32_t)b;
    return (op == PTX_ATOM_MIN) == lt ? old : b;
  }
  case PTX_ATOM_INC:
    return (uint32_t)old >= (uint32_t)b ? 0 : (uint32_t)old + 1;
  case PTX_ATOM_DEC:
    return ((uint32_t)old == 0 || (uint32_t)old > (uint32_t)b)
             ? (uint32_t)b : (uint32_t)old - 1;
  case PTX_ATOM_AND:
    return old & b;
  case PTX_ATOM_OR:
    return old | b;
  case PTX_ATOM_XOR:
    return old ^ b;
  default: /* exch */
    return b;
  }
}

static inline uint64_t px_rmw_plain(uint8_t *p, unsigned op, unsigned kind,
                                    unsigned sz, uint64_t b, uint64_t c)
{
  uint64_t old = px_load(p, sz, 0);

  if (op == PTX_ATOM_CAS) {
    uint64_t m = sz == 8 ? ~0ull : (1ull << (8 * sz)) - 1;
    if ((old & m) == (b & m))
      px_store(p, sz, c);
    return old;
  }
  px_store(p, sz, px_rmw_new(op, kind, sz, old, b));
  return old;
}

static inline uint64_t px_rmw_atomic(uint8_t *p, unsigned op, unsigned kind,
                                     unsigned sz, uint64_t b, uint64_t c)
{
  if (sz == 4 && kind < AK_F32) {
    uint32_t *q = (uint32_t *)p, v = (uint32_t)b;
    switch (op) {
    case PTX_ATOM_ADD: return __atomic_fetch_add(q, v, __ATOMIC_SEQ_CST);
    case PTX_ATOM_AND: return __atomic_fetch_and(q, v, __ATOMIC_SEQ_CST);
    case PTX_ATOM_OR: return __atomic_fetch_or(q, v, __ATOMIC_SEQ_CST);
    case PTX_ATOM_XOR: return __atomic_fetch_xor(q, v, __ATOMIC_SEQ_CST);
    case PTX_ATOM_EXCH: return __atomic_exchange_n(q, v, __ATOMIC_SEQ_CST);
    case PTX_ATOM_CAS: {
      uint32_t e = v;
      __atomic_compare_exchange_n(q, &e, (uint32_t)c, 0, __ATOMIC_SEQ_CST,
                                  __ATOMIC_SEQ_CST);
      return e;
    }
    default: {
      uint32_t old = __atomic_load_n(q, __ATOMIC_RELAXED), nv;
      do
        nv = (uint32_t)px_rmw_new(op, kind, sz, old, b);
      while (!__atomic_compare_exchange_n(q, &old, nv, 1, __ATOMIC_SEQ_CST,
                                          __ATOMIC_RELAXED));
      return old;
    }
    }
  }
  if (sz == 8) {
    uint64_t *q = (uint64_t *)p;
    switch (kind < AK_F32 ? op : 0xff) {
    case PTX_ATOM_ADD: return __atomic_fetch_add(q, b, __ATOMIC_SEQ_CST);
    case PTX_ATOM_AND: return __atomic_fetch_and(q, b, __ATOMIC_SEQ_CST);
    case PTX_ATOM_OR: return __atomic_fetch_or(q, b, __ATOMIC_SEQ_CST);
    case PTX_ATOM_XOR: return __atomic_fetch_xor(q, b, __ATOMIC_SEQ_CST);
    case PTX_ATOM_EXCH: return __atomic_exchange_n(q, b, __ATOMIC_SEQ_CST);
    case PTX_ATOM_CAS: {
      uint64_t e = b;
      __atomic_compare_exchange_n(q, &e, c, 0, __ATOMIC_SEQ_CST,
                                  __ATOMIC_SEQ_CST);
      return e;
    }
    default: {
      uint64_t old = __atomic_load_n(q, __ATOMIC_RELAXED), nv;
      do
        nv = px_rmw_new(op, kind, sz, old, b);
      while (!__atomic_compare_exchange_n(q, &old, nv, 1, __ATOMIC_SEQ_CST,
                                          __ATOMIC_RELAXED));
      return old;
    }
    }
  }
  if (sz == 4) { /* f32, f16x2, bf16x2 */
    uint32_t *q = (uint32_t *)p, old = __atomic_load_n(q, __ATOMIC_RELAXED);
    uint32_t nv;
    if (op == PTX_ATOM_EXCH)
      return __atomic_exchange_n(q, (uint32_t)b, __ATOMIC_SEQ_CST);
    do
      nv = (uint32_t)px_rmw_new(op, kind, sz, old, b);
    while (!__atomic_compare_exchange_n(q, &old, nv, 1, __ATOMIC_SEQ_CST,
                                        __ATOMIC_RELAXED));
    return old;
  }
  { /* 16 bits: cas.b16, add.f16, add.bf16 */
    uint16_t *q = (uint16_t *)p, old = __atomic_load_n(q, __ATOMIC_RELAXED);
    uint16_t nv;
    if (op == PTX_ATOM_CAS) {
      uint16_t e = (uint16_t)b;
      __atomic_compare_exchange_n(q, &e, (uint16_t)c, 0, __ATOMIC_SEQ_CST,
                                  __ATOMIC_SEQ_CST);
      return e;
    }
    if (op == PTX_ATOM_EXCH)
      return __atomic_exchange_n(q, (uint16_t)b, __ATOMIC_SEQ_CST);
    do
      nv = (uint16_t)px_rmw_new(op, kind, sz, old, b);
    while (!__atomic_compare_exchange_n(q, &old, nv, 1, __ATOMIC_SEQ_CST,
                                        __ATOMIC_RELAXED));
    return old;
  }
}

static int px_atom_common(struct px_warp *w, const struct ptx_insn *in,
                          uint32_t mask, int ret)
{
  unsigned ai = ret ? 1 : 0;
  uint32_t x = in->xaux, priv;
  unsigned sz = XM_SZ(x), kind = XA_KIND(x), op = in->mode;
  const uint64_t *b = px_src(w, in, ai + 1);
  const uint64_t *c = op == PTX_ATOM_CAS ? px_src(w, in, ai + 2) : NULL;
  uint64_t *d = ret ? px_dst(w, in, 0) : NULL;
  uint64_t old[PX_W];
  uint8_t *p[PX_W];

  if (in->space == PTX_SP_SHARED && in->ops[ai].reg != PTX_NOREG) {
    /* shared memory, the histogram case: offsets checked all at once as
       in the fused loads, then plain read-modify-writes in lane order */
    const struct ptx_operand *ao = &in->ops[ai];
    const uint64_t *base = w->R[ao->reg];
    uint64_t off = (uint64_t)ao->imm, mx = 0, any = 0, xo[PX_W];
    uint8_t *sh = w->b->shared;
    if (ao->sym != PTX_NOSYM)
      off += px_sym_value(w, ao->sym);
    if (in->xaux & PX_XA_R32)
      PX_FOR(mask, {
        xo[l] = (uint32_t)base[l] + off;
        mx = xo[l] > mx ? xo[l] : mx;
        any |= xo[l];
      });
    else
      PX_FOR(mask, {
        xo[l] = base[l] + off;
        mx = xo[l] > mx ? xo[l] : mx;
        any |= xo[l];
      });
    if (!(any & (sz - 1)) && w->b->shared_size >= sz &&
        mx <= w->b->shared_size - sz) {
      if (op == PTX_ATOM_ADD && sz == 4 && kind < AK_F32)
        PX_FOR_SEQ(mask, {
          uint32_t v;
          memcpy(&v, sh + xo[l], 4);
          old[l] = v;
          v += (uint32_t)b[l];
          memcpy(sh + xo[l], &v, 4);
        });
      else
        PX_FOR_SEQ(mask, old[l] = px_rmw_plain(sh + xo[l], op, kind, sz, b[l],
                                               c ? c[l] : 0));
      if (d)
        PX_FOR(mask, d[l] = old[l]);
      return PX_NEXT;
    }
  }
  if (px_resolve(w, in, &in->ops[ai], in->space, mask, sz, sz, 1, p, &priv))
    return PX_STOP;
  if (priv == mask && op == PTX_ATOM_ADD && sz == 4 && kind < AK_F32) {
    /* the histogram case: shared-memory integer add */
    PX_FOR_SEQ(mask, {
      uint32_t v;
      memcpy(&v, p[l], 4);
      old[l] = v;
      v += (uint32_t)b[l];
      memcpy(p[l], &v, 4);
    });
  } else {
    PX_FOR_SEQ(mask, old[l] = (priv >> l) & 1
                                ? px_rmw_plain(p[l], op, kind, sz, b[l],
                                               c ? c[l] : 0)
                                : px_rmw_atomic(p[l], op, kind, sz, b[l],
                                                c ? c[l] : 0));
  }
  if (d)
    PX_FOR(mask, d[l] = old[l]);
  return PX_NEXT;
}

int px_h_atom(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  return px_atom_common(w, in, mask, 1);
}

int px_h_red(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  return px_atom_common(w, in, mask, 0);
}

/* ---- address spaces ---------------------------------------------------- */

/* The generic base of a lane's window in space sp (0: global-like). */
static inline uint64_t px_window(const struct px_warp *w, unsigned sp,
                                 unsigned l)
{
  const struct px_block *b = w->b;

  switch (sp) {
  case PTX_SP_SHARED:
    return (uint64_t)(uintptr_t)b->shared;
  case PTX_SP_LOCAL:
    return (uint64_t)(uintptr_t)b->local + (uint64_t)(w->tid0 + l) * b->stack;
  case PTX_SP_PARAM:
    if (w->depth > 1)
      return (uint64_t)(uintptr_t)w->top->par + (uint64_t)l * w->top->psize;
    return (uint64_t)(uintptr_t)b->L->d->params;
  default:
    return 0;
  }
}

int px_h_cvta(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  const uint64_t *s = px_src(w, in, 1);
  uint64_t *d = px_dst(w, in, 0);
  unsigned sp = in->space;
  int to = !!(in->flags & PTX_F_TO), narrow = ptx_type_size(in->type) == 4;

  PX_FOR(mask, {
    uint64_t base = px_window(w, sp, l);
    uint64_t v = narrow && !to ? (uint32_t)s[l] : s[l];
    uint64_t r = to ? v - base : v + base;
    d[l] = narrow ? (uint32_t)r : r;
  });
  return PX_NEXT;
}

int px_h_isspacep(struct px_warp *w, const struct ptx_insn *in,
                  uint32_t mask)
{
  const uint64_t *s = px_src(w, in, 1);
  uint64_t *d = px_dst(w, in, 0);
  const struct px_block *b = w->b;
  unsigned sp = in->space;

  PX_FOR(mask, {
    uint64_t a = s[l];
    int sh = a - (uint64_t)(uintptr_t)b->shared < b->shared_size;
    int lo = a - px_window(w, PTX_SP_LOCAL, l) < b->stack;
    int pa = b->L->d->params &&
             a - (uint64_t)(uintptr_t)b->L->d->params < b->L->d->params_size;
    int r;
    switch (sp) {
    case PTX_SP_SHARED: r = sh; break;
    case PTX_SP_LOCAL: r = lo; break;
    case PTX_SP_PARAM: r = pa; break;
    default: r = !sh && !lo && !pa; break;
    }
    d[l] = (uint64_t)r;
  });
  return PX_NEXT;
}

/* ---- selection ------------------------------------------------------------- */

static int px_is_sint(unsigned t)
{
  return t == PTX_T_S8 || t == PTX_T_S16 || t == PTX_T_S32 || t == PTX_T_S64;
}

static int px_space_ok(unsigned sp)
{
  return sp == PTX_SP_NONE || sp == PTX_SP_GLOBAL || sp == PTX_SP_SHARED ||
         sp == PTX_SP_LOCAL || sp == PTX_SP_CONST || sp == PTX_SP_PARAM;
}

static int px_atom_kind(unsigned t, unsigned op, unsigned *kind)
{
  unsigned sz = ptx_type_size(t);

  switch (t) {
  case PTX_T_F32: *kind = AK_F32; break;
  case PTX_T_F64: *kind = AK_F64; break;
  case PTX_T_F16: *kind = AK_F16; break;
  case PTX_T_BF16: *kind = AK_BF16; break;
  case PTX_T_F16X2: *kind = AK_F16X2; break;
  case PTX_T_BF16X2: *kind = AK_BF16X2; break;
  case PTX_T_S32:
  case PTX_T_S64: *kind = AK_S; break;
  case PTX_T_U32:
  case PTX_T_U64: *kind = AK_U; break;
  case PTX_T_B16:
  case PTX_T_B32:
  case PTX_T_B64: *kind = AK_B; break;
  default: return -ENOTSUP;
  }
  switch (op) {
  case PTX_ATOM_ADD:
    return (*kind == AK_B || (sz == 2 && *kind < AK_F32)) ? -ENOTSUP : 0;
  case PTX_ATOM_MIN:
  case PTX_ATOM_MAX:
    return *kind == AK_U || *kind == AK_S ? 0 : -ENOTSUP;
  case PTX_ATOM_INC:
  case PTX_ATOM_DEC:
    return t == PTX_T_U32 ? 0 : -ENOTSUP;
  case PTX_ATOM_AND:
  case PTX_ATOM_OR:
  case PTX_ATOM_XOR:
    return *kind <= AK_B && sz >= 4 ? 0 : -ENOTSUP;
  case PTX_ATOM_EXCH:
    return *kind <= AK_B && sz >= 4 ? 0 : -ENOTSUP;
  case PTX_ATOM_CAS:
    return *kind <= AK_B ? 0 : -ENOTSUP;
  default:
    return -ENOTSUP;
  }
}

int px_sel_mem(const struct ptx_insn *in, uint32_t *xop, uint32_t *xaux)
{
  unsigned t = in->type, sz = ptx_type_size(t), vec = in->vec ? in->vec : 1;
  uint32_t fl = in->flags;

  *xaux = 0;
  switch (in->op) {
  case PTX_OP_LD:
  case PTX_OP_LDU:
  case PTX_OP_ST: {
    int st = in->op == PTX_OP_ST;
    const struct ptx_operand *val = &in->ops[st ? 1 : 0];
    const struct ptx_operand *ad = &in->ops[st ? 0 : 1];
    if (in->nops != 2 || ad->kind != PTX_O_ADDR || !px_space_ok(in->space))
      return -ENOTSUP;
    if (!sz || sz > 8 || t == PTX_T_PRED || (vec != 1 && vec != 2 && vec != 4))
      return -ENOTSUP;
    if (fl & ~(PTX_F_VOLATILE | PTX_F_MEMORD | PTX_F_NC))
      return -ENOTSUP;
    if (vec == 1 ? (val->kind != PTX_O_REG &&
                    !(st && val->kind == PTX_O_IMM))
                 : (val->kind != PTX_O_VEC || val->n != vec ||
                    (!st && PX_HAS_VIMM(val))))
      return -ENOTSUP;
    if (st && in->space == PTX_SP_CONST)
      return -ENOTSUP;
    *xaux = sz | vec << 8 | (uint32_t)px_is_sint(t) << 12;
    if (vec == 1 && ad->reg != PTX_NOREG &&
        !(fl & (PTX_F_VOLATILE | PTX_F_MEMORD)) &&
        (in->space == PTX_SP_GLOBAL || in->space == PTX_SP_CONST ||
         in->space == PTX_SP_SHARED) &&
        (!st || val->kind == PTX_O_REG)) {
      int g = in->space != PTX_SP_SHARED;
      *xop = st ? (g ? PX_X_st_g : PX_X_st_s) : (g ? PX_X_ld_g : PX_X_ld_s);
      return 0;
    }
    if (st) {
      *xop = PX_X_st;
      return 0;
    }
    *xop = PX_X_ld;
    if (in->space == PTX_SP_PARAM && ad->reg == PTX_NOREG &&
        ad->sym != PTX_NOSYM)
      *xop = PX_X_ld_param; /* falls back to ld unless it is a KPARAM */
    return 0;
  }
  case PTX_OP_ATOM:
  case PTX_OP_RED: {
    int atom = in->op == PTX_OP_ATOM;
    unsigned ai = atom ? 1 : 0, kind, n;
    if (in->space != PTX_SP_NONE && in->space != PTX_SP_GLOBAL &&
        in->space != PTX_SP_SHARED)
      return -ENOTSUP;
    if (vec != 1 || px_atom_kind(t, in->mode, &kind))
      return -ENOTSUP;
    if (!atom && in->mode == PTX_ATOM_CAS)
      return -ENOTSUP;
    n = ai + 2 + (in->mode == PTX_ATOM_CAS);
    if (in->nops != n || in->ops[ai].kind != PTX_O_ADDR ||
        (atom && in->ops[0].kind != PTX_O_REG))
      return -ENOTSUP;
    for (unsigned k = ai + 1; k < n; k++)
      if (in->ops[k].kind != PTX_O_REG && in->ops[k].kind != PTX_O_IMM)
        return -ENOTSUP;
    if (fl & ~(PTX_F_MEMORD | PTX_F_FTZ))
      return -ENOTSUP;
    *xaux = sz | kind << 8;
    *xop = atom ? PX_X_atom : PX_X_red;
    return 0;
  }
  case PTX_OP_CVTA:
    if (in->nops != 2 || in->ops[0].kind != PTX_O_REG ||
        (t != PTX_T_U64 && t != PTX_T_U32 && t != PTX_T_B64 &&
         t != PTX_T_B32 && t != PTX_T_S64) ||
        (in->space != PTX_SP_GLOBAL && in->space != PTX_SP_SHARED &&
         in->space != PTX_SP_LOCAL && in->space != PTX_SP_CONST &&
         in->space != PTX_SP_PARAM) ||
        (fl & ~PTX_F_TO))
      return -ENOTSUP;
    if (in->ops[1].kind != PTX_O_REG && in->ops[1].kind != PTX_O_SYM &&
        in->ops[1].kind != PTX_O_IMM)
      return -ENOTSUP;
    *xop = PX_X_cvta;
    return 0;
  case PTX_OP_ISSPACEP:
    if (in->nops != 2 || in->ops[0].kind != PTX_O_REG ||
        (in->space != PTX_SP_GLOBAL && in->space != PTX_SP_SHARED &&
         in->space != PTX_SP_LOCAL && in->space != PTX_SP_CONST &&
         in->space != PTX_SP_PARAM))
      return -ENOTSUP;
    *xop = PX_X_isspacep;
    return 0;
  case PTX_OP_PREFETCH:
  case PTX_OP_PREFETCHU:
    *xop = PX_X_prefetch;
    return 0;
  default:
    return -ENOTSUP;
  }
}
