/*
 * ptx_exec_warp.c: warp-synchronous instructions: shfl, vote, match,
 * redux and activemask.
 *
 * They exchange values among the lanes that execute them together (the
 * running group narrowed by the guard) and named in the member mask.  A
 * lane named in the member mask that is not executing has no defined
 * value on the GPU; here its register is read as it is.
 */
#include "ptx_exec_int.h"

/* The operand after the data operands: the member mask, or all lanes for
   the pre-Volta forms without one. */
static uint32_t px_members(struct px_warp *w, const struct ptx_insn *in,
                           unsigned k, uint32_t mask)
{
  uint32_t mm;

  if (!(in->flags & PTX_F_SYNC) || k >= in->nops)
    return mask;
  mm = (uint32_t)px_src(w, in, k)[__builtin_ctz(mask)];
  return (mm & mask) ? mm & mask : mask;
}

/*
 * shfl.sync.mode.b32 d[|p], a, b, c, membermask.  c packs the clamp value
 * (bits 4..0) and the segment mask (bits 12..8), which split the warp
 * into independent segments.
 */
int px_h_shfl(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  unsigned base = (in->flags & PTX_F_PAIR) ? 2 : 1;
  const uint64_t *a = px_src(w, in, base), *b = px_src(w, in, base + 1);
  const uint64_t *c = px_src(w, in, base + 2);
  uint64_t *d = px_dst(w, in, 0);
  uint64_t *p = (in->flags & PTX_F_PAIR) && in->ops[1].kind == PTX_O_REG
                  ? px_dst(w, in, 1) : NULL;
  uint64_t src[PX_W], out[PX_W], pv[PX_W];
  unsigned mode = in->mode;

  (void)px_members(w, in, base + 3, mask);
  /* read every source before writing: d may be a */
  for (unsigned l = 0; l < PX_W; l++)
    src[l] = (uint32_t)a[l];
  PX_FOR(mask, {
    uint32_t bval = (uint32_t)b[l] & 31, cval = (uint32_t)c[l] & 31;
    uint32_t seg = ((uint32_t)c[l] >> 8) & 31;
    int32_t lane = (int32_t)l, j;
    int32_t maxl = (int32_t)((l & seg) | (cval & ~seg));
    int32_t minl = (int32_t)(l & seg);
    int ok;
    switch (mode) {
    case PTX_SHFL_UP:
      j = lane - (int32_t)bval;
      ok = j >= maxl;
      break;
    case PTX_SHFL_DOWN:
      j = lane + (int32_t)bval;
      ok = j <= maxl;
      break;
    case PTX_SHFL_BFLY:
      j = lane ^ (int32_t)bval;
      ok = j <= maxl;
      break;
    default:
      j = minl | (int32_t)(bval & ~seg);
      ok = j <= maxl;
      break;
    }
    if (!ok || j < 0 || j > 31)
      j = lane;
    out[l] = src[j];
    pv[l] = (uint64_t)ok;
  });
  PX_FOR(mask, d[l] = out[l]);
  if (p)
    PX_FOR(mask, p[l] = pv[l]);
  return PX_NEXT;
}

/* vote{.sync}.{all,any,uni}.pred d, {!}a[, membermask];
   vote{.sync}.ballot.b32 d, {!}a[, membermask] */
int px_h_vote(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  const uint64_t *a = px_src(w, in, 1);
  uint64_t *d = px_dst(w, in, 0);
  uint64_t neg = in->ops[1].flags & PTX_OF_NOT;
  uint32_t act = px_members(w, in, 2, mask), t = 0;
  uint64_t r;

  PX_FOR(act, t |= (uint32_t)((a[l] ^ neg) & 1) << l);
  switch (in->mode) {
  case PTX_VOTE_ALL: r = t == act; break;
  case PTX_VOTE_ANY: r = t != 0; break;
  case PTX_VOTE_UNI: r = t == 0 || t == act; break;
  default: r = t; break;
  }
  PX_FOR(mask, d[l] = r);
  return PX_NEXT;
}

/* match.any.sync.b32 d, a, membermask: the lanes holding the same value;
   match.all.sync.b32 d[|p], a, membermask: all lanes or none. */
int px_h_match(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  unsigned base = (in->flags & PTX_F_PAIR) ? 2 : 1;
  const uint64_t *a = px_src(w, in, base);
  uint64_t *d = px_dst(w, in, 0);
  uint64_t *p = (in->flags & PTX_F_PAIR) && in->ops[1].kind == PTX_O_REG
                  ? px_dst(w, in, 1) : NULL;
  uint32_t act = px_members(w, in, base + 1, mask);
  uint64_t m = ptx_type_size(in->type) == 8 ? ~0ull : 0xffffffffull;
  uint32_t same[PX_W];

  PX_FOR(mask, {
    uint32_t s = 0;
    for (uint32_t o = act; o; o &= o - 1) {
      unsigned j = (unsigned)__builtin_ctz(o);
      if (((a[j] ^ a[l]) & m) == 0)
        s |= 1u << j;
    }
    same[l] = s;
  });
  if (in->mode == PTX_MATCH_ANY) {
    PX_FOR(mask, d[l] = same[l]);
  } else {
    unsigned first = (unsigned)__builtin_ctz(act);
    int all = same[first] == act;
    PX_FOR(mask, d[l] = all ? act : 0);
    if (p)
      PX_FOR(mask, p[l] = (uint64_t)all);
  }
  return PX_NEXT;
}

int px_h_activemask(struct px_warp *w, const struct ptx_insn *in,
                    uint32_t mask)
{
  uint64_t *d = px_dst(w, in, 0);

  PX_FOR(mask, d[l] = mask);
  return PX_NEXT;
}

/* redux.sync.op.type d, a, membermask */
int px_h_redux(struct px_warp *w, const struct ptx_insn *in, uint32_t mask)
{
  const uint64_t *a = px_src(w, in, 1);
  uint64_t *d = px_dst(w, in, 0);
  uint32_t act = px_members(w, in, 2, mask);
  int sgn = in->type == PTX_T_S32;
  uint32_t r;
  int first = 1;

  r = 0;
  PX_FOR_SEQ(act, {
    uint32_t v = (uint32_t)a[l];
    if (first) {
      r = v;
      first = 0;
      continue;
    }
    switch (in->mode) {
    case PTX_ATOM_ADD: r += v; break;
    case PTX_ATOM_MIN:
      r = sgn ? ((int32_t)v < (int32_t)r ? v : r) : (v < r ? v : r);
      break;
    case PTX_ATOM_MAX:
      r = sgn ? ((int32_t)v > (int32_t)r ? v : r) : (v > r ? v : r);
      break;
    case PTX_ATOM_AND: r &= v; break;
    case PTX_ATOM_OR: r |= v; break;
    default: r ^= v; break;
    }
  });
  PX_FOR(mask, d[l] = r);
  return PX_NEXT;
}

/* ---- selection ------------------------------------------------------------- */

static int px_opnd_src(const struct ptx_operand *o)
{
  return o->kind == PTX_O_REG || o->kind == PTX_O_IMM;
}

int px_sel_warp(const struct ptx_insn *in, uint32_t *xop, uint32_t *xaux)
{
  unsigned t = in->type, sync = !!(in->flags & PTX_F_SYNC);
  unsigned base = (in->flags & PTX_F_PAIR) ? 2 : 1;

  *xaux = 0;
  if (in->ops[0].kind != PTX_O_REG)
    return -ENOTSUP;
  switch (in->op) {
  case PTX_OP_SHFL:
    if ((t != PTX_T_B32 && t != PTX_T_U32 && t != PTX_T_S32 &&
         t != PTX_T_F32) ||
        in->mode < PTX_SHFL_UP || in->mode > PTX_SHFL_IDX ||
        in->nops != base + 3 + sync ||
        (in->flags & ~(PTX_F_SYNC | PTX_F_PAIR)))
      return -ENOTSUP;
    for (unsigned k = base; k < in->nops; k++)
      if (!px_opnd_src(&in->ops[k]))
        return -ENOTSUP;
    *xop = PX_X_shfl;
    return 0;
  case PTX_OP_VOTE:
    if (in->nops != 2 + sync || (in->flags & ~PTX_F_SYNC) ||
        !px_opnd_src(&in->ops[1]) || (sync && !px_opnd_src(&in->ops[2])))
      return -ENOTSUP;
    if (in->mode == PTX_VOTE_BALLOT ? t != PTX_T_B32
        : (in->mode < PTX_VOTE_ALL || in->mode > PTX_VOTE_UNI ||
           t != PTX_T_PRED))
      return -ENOTSUP;
    *xop = PX_X_vote;
    return 0;
  case PTX_OP_MATCH:
    if (!sync || (t != PTX_T_B32 && t != PTX_T_B64) ||
        (in->mode != PTX_MATCH_ANY && in->mode != PTX_MATCH_ALL) ||
        (in->mode == PTX_MATCH_ANY && (in->flags & PTX_F_PAIR)) ||
        in->nops != base + 2 || (in->flags & ~(PTX_F_SYNC | PTX_F_PAIR)) ||
        !px_opnd_src(&in->ops[base]) || !px_opnd_src(&in->ops[base + 1]))
      return -ENOTSUP;
    *xop = PX_X_match;
    return 0;
  case PTX_OP_ACTIVEMASK:
    if (in->nops != 1 || (t != PTX_T_B32 && t != PTX_T_U32))
      return -ENOTSUP;
    *xop = PX_X_activemask;
    return 0;
  case PTX_OP_REDUX:
    if (!sync || in->nops != 3 || (in->flags & ~PTX_F_SYNC) ||
        !px_opnd_src(&in->ops[1]) || !px_opnd_src(&in->ops[2]))
      return -ENOTSUP;
    switch (in->mode) {
    case PTX_ATOM_ADD:
    case PTX_ATOM_MIN:
    case PTX_ATOM_MAX:
      if (t != PTX_T_U32 && t != PTX_T_S32)
        return -ENOTSUP;
      break;
    case PTX_ATOM_AND:
    case PTX_ATOM_OR:
    case PTX_ATOM_XOR:
      if (t != PTX_T_B32)
        return -ENOTSUP;
      break;
    default:
      return -ENOTSUP;
    }
    *xop = PX_X_redux;
    return 0;
  default:
    return -ENOTSUP;
  }
}
