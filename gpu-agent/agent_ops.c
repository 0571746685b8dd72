/*
 * agent_ops.c: what each opcode does on the agent (PROTOCOL.md §1, the
 * opcode table), and the reply rules around it.
 *
 * Every handler reads its payload with explicit lengths: a payload whose
 * size is not exactly what the opcode defines is TR_ST_BAD_RECORD before
 * any field is looked at.  Handlers return the call's status: a
 * cudaError_t number from the backend, or a TR_ST_* protocol status.  A
 * handler whose final reply carries data leaves it in call->reply; a
 * handler that streams (MEMCPY_D2H) pushes its partial replies itself.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <driver_types.h>

#include "agent.h"
#include "philox.h"
#include "trace.h"
#include "agent_exec.h"

/* Memset and device-to-device copies are done in slices of this size so
   an aborted lane stops within one slice instead of after gigabytes. */
#define OPS_SLICE (64ull << 20)

struct agt_call {
  struct agt_lane *lane;
  struct agt_session *sess;
  const struct tr_hdr *hdr;
  const uint8_t *p; /* payload */
  uint32_t len;
  bool want_reply;
  bool direct; /* MEMCPY_H2D already received into device memory */
  const uint8_t *staged; /* MEMCPY_H2D received into staging memory */
  struct agt_out *reply; /* final reply payload, or NULL for empty */
  void *unpin;           /* a mem_pin the replies refer to: released once
                            they have all been sent */
  char why[AGT_WHY_MAX]; /* a failed call's diagnostic, or "" */
};

static uint32_t dispatch(struct agt_call *c);

static const struct agt_backend_ops *ops_of(struct agt_call *c)
{
  return c->sess->be->ops;
}

/* A final reply payload of n bytes; NULL (and cudaErrorMemoryAllocation
   from the caller) when there is no memory. */
static uint8_t *reply_buf(struct agt_call *c, uint32_t n)
{
  c->reply = agt_out_new(n);
  return c->reply ? agt_out_payload(c->reply) : NULL;
}

/* ---- session control and device ---------------------------------------- */

static uint32_t op_nop(struct agt_call *c)
{
  return c->len == 0 ? cudaSuccess : TR_ST_BAD_RECORD;
}

/* OUTPUT: the reply rules attach the output, as for SYNCHRONIZE. */
static uint32_t op_output(struct agt_call *c)
{
  return c->len == 0 ? cudaSuccess : TR_ST_BAD_RECORD;
}

static uint32_t op_synchronize(struct agt_call *c)
{
  if (c->len != 0)
    return TR_ST_BAD_RECORD;
  /* The deferred error is added by the reply rules (agt_ops_execute). */
  return ops_of(c)->synchronize(c->sess->ctx);
}

/* ---- memory ------------------------------------------------------------- */

static uint32_t op_free_ptr(struct agt_call *c, uint64_t ptr);

/*
 * MALLOC.  The size is reserved against the session's quota (--quota)
 * first and given back if the device refuses; each allocation's size is
 * kept so FREE can give it back.  Over the quota is
 * cudaErrorMemoryAllocation, as a full device would be.
 */
static uint32_t op_malloc(struct agt_call *c)
{
  struct agt_session *s = c->sess;
  uint64_t ptr = 0, size;
  uint32_t st;
  uint8_t *out = NULL;
  bool over;

  if (c->len != 8)
    return TR_ST_BAD_RECORD;
  size = tr_get_u64(c->p);
  pthread_mutex_lock(&s->mu);
  over = s->quota && size > s->quota - s->mem_used;
  if (!over)
    s->mem_used += size;
  pthread_mutex_unlock(&s->mu);
  if (over) {
    agt_debug("session %016llx: %llu bytes more would pass its quota of "
              "%llu", (unsigned long long)s->id, (unsigned long long)size,
              (unsigned long long)s->quota);
    return cudaErrorMemoryAllocation;
  }
  st = ops_of(c)->mem_alloc(s->ctx, size, &ptr);
  if (st == cudaSuccess && ptr) {
    pthread_mutex_lock(&s->mu);
    if (agt_hmap_put(&s->allocs, ptr, (void *)(uintptr_t)size) < 0)
      st = cudaErrorMemoryAllocation;
    pthread_mutex_unlock(&s->mu);
    if (st)
      ops_of(c)->mem_free(s->ctx, ptr);
  }
  if (st == cudaSuccess && !(out = reply_buf(c, 8))) {
    op_free_ptr(c, ptr);
    return cudaErrorMemoryAllocation;
  }
  if (st || !ptr) {
    pthread_mutex_lock(&s->mu);
    s->mem_used -= size;
    pthread_mutex_unlock(&s->mu);
    if (st)
      return st;
  }
  tr_put_u64(out, ptr);
  return cudaSuccess;
}

/* Free ptr and give its size back to the quota. */
static uint32_t op_free_ptr(struct agt_call *c, uint64_t ptr)
{
  struct agt_session *s = c->sess;
  uint32_t st = ops_of(c)->mem_free(s->ctx, ptr);

  if (st == cudaSuccess && ptr) {
    pthread_mutex_lock(&s->mu);
    s->mem_used -= (uint64_t)(uintptr_t)agt_hmap_del(&s->allocs, ptr);
    pthread_mutex_unlock(&s->mu);
  }
  return st;
}

static uint32_t op_free(struct agt_call *c)
{
  if (c->len != 8)
    return TR_ST_BAD_RECORD;
  return op_free_ptr(c, tr_get_u64(c->p));
}

static uint32_t op_memcpy_h2d(struct agt_call *c)
{
  uint64_t len;

  /* Checked as below before it was received directly (agent_session.c),
     and its bytes are already in place. */
  if (c->direct)
    return cudaSuccess;
  if (c->len < 16)
    return TR_ST_BAD_RECORD;
  len = tr_get_u64(c->p + 8);
  if (len > TR_CHUNK_MAX || len != c->len - 16u)
    return TR_ST_BAD_RECORD;
  return ops_of(c)->copy_h2d(c->sess->ctx, tr_get_u64(c->p),
                             c->staged ? c->staged : c->p + 16, len);
}

/*
 * Device to host, streamed: every chunk but the last is a REPLY|MORE
 * record; the last travels in the final reply.  The whole range is checked
 * first, so a bad range is one final error reply with no data before it.
 * Chunks are produced only as fast as the network drains them
 * (agt_lane_push_out waits), so a 1 GiB copy holds AGT_LANE_OUT_MAX bytes.
 */
/*
 * Device memory the host can read (the emulated device's) is sent from
 * where it is: the replies only refer to it (agt_out_new_ref), the range
 * stays pinned, and the lane runs nothing more until every reply has left
 * the queue (agt_ops_execute, c->unpin), so that nothing it runs next can
 * change the bytes before they are sent.  Elsewhere (or for small copies)
 * the bytes are copied into the replies.
 */
#define D2H_REF_MIN (256u << 10)

/* Queue o, a full chunk of a device-to-host copy, as a MORE reply; false
   when the lane is gone (o is freed: nobody is left to tell). */
static bool push_chunk(struct agt_call *c, struct agt_out *o)
{
  struct tr_hdr h;

  tr_hdr_init(&h, c->hdr->opcode, TR_F_REPLY | TR_F_MORE, c->hdr->request_id,
              TR_CHUNK_MAX);
  return agt_lane_push_out(c->lane, o, &h) == 0;
}

static uint32_t d2h_by_ref(struct agt_call *c, const uint8_t *view,
                           uint64_t len)
{
  uint64_t off = 0;

  while (len - off > TR_CHUNK_MAX) {
    struct agt_out *o = agt_out_new_ref(view + off, TR_CHUNK_MAX);

    if (!o)
      return cudaErrorMemoryAllocation;
    if (!push_chunk(c, o))
      return cudaSuccess;
    off += TR_CHUNK_MAX;
  }
  c->reply = agt_out_new_ref(view + off, (uint32_t)(len - off));
  return c->reply ? cudaSuccess : cudaErrorMemoryAllocation;
}

/*
 * One chunk of a device-to-host copy, n bytes from src, as a run to
 * queue; NULL with *st set when it failed (freed by another lane
 * meanwhile, no memory).  Into the backend's staging memory when it has a
 * slot free (the run sends from there and gives it back when freed), else
 * into the run itself.
 */
static struct agt_out *d2h_chunk(struct agt_call *c, uint64_t src,
                                 uint32_t n, uint32_t *st)
{
  const struct agt_backend_ops *ops = ops_of(c);
  struct agt_out *o;
  void *tok = NULL;
  uint8_t *buf = NULL;

  if (ops->stage_get && n >= AGT_DIRECT_MIN)
    buf = ops->stage_get(c->sess->ctx, n, &tok);
  o = buf ? agt_out_new_ref(buf, n) : agt_out_new(n);
  if (!o) {
    if (buf)
      ops->stage_put(tok);
    *st = cudaErrorMemoryAllocation;
    return NULL;
  }
  if (buf) {
    o->release = ops->stage_put;
    o->release_arg = tok;
  }
  *st = ops->copy_d2h(c->sess->ctx, buf ? buf : agt_out_payload(o), src, n);
  if (*st) {
    agt_out_free(o);
    return NULL;
  }
  return o;
}

static uint32_t op_memcpy_d2h(struct agt_call *c)
{
  const struct agt_backend_ops *ops = ops_of(c);
  uint64_t src, len, off = 0;
  void *pin = NULL;
  const uint8_t *view;
  uint32_t st;

  if (c->len != 16)
    return TR_ST_BAD_RECORD;
  src = tr_get_u64(c->p);
  len = tr_get_u64(c->p + 8);
  if (len == 0)
    return cudaSuccess;
  st = ops->mem_check(c->sess->ctx, src, len);
  if (st || !c->want_reply)
    return st; /* nobody waits for the bytes: nothing to copy */
  view = len >= D2H_REF_MIN ? ops->mem_pin(c->sess->ctx, src, len, &pin)
                            : NULL;
  if (view) {
    c->unpin = pin;
    return d2h_by_ref(c, view, len);
  }
  while (len - off > TR_CHUNK_MAX) {
    struct agt_out *o = d2h_chunk(c, src + off, TR_CHUNK_MAX, &st);

    if (!o)
      return st;
    if (!push_chunk(c, o))
      return cudaSuccess;
    off += TR_CHUNK_MAX;
  }
  c->reply = d2h_chunk(c, src + off, (uint32_t)(len - off), &st);
  return st;
}

static uint32_t op_memcpy_d2d(struct agt_call *c)
{
  const struct agt_backend_ops *ops = ops_of(c);
  uint64_t dst, src, len;
  uint32_t st;

  if (c->len != 24)
    return TR_ST_BAD_RECORD;
  dst = tr_get_u64(c->p);
  src = tr_get_u64(c->p + 8);
  len = tr_get_u64(c->p + 16);
  if (len == 0)
    return cudaSuccess;
  st = ops->mem_check(c->sess->ctx, dst, len);
  if (!st)
    st = ops->mem_check(c->sess->ctx, src, len);
  /* Overlapping ranges are copied whole (memmove), not sliced: slicing
     forwards would read bytes already overwritten. */
  if (st || (dst < src + len && src < dst + len))
    return st ? st : ops->copy_d2d(c->sess->ctx, dst, src, len);
  for (uint64_t off = 0; off < len; off += OPS_SLICE) {
    uint64_t n = len - off < OPS_SLICE ? len - off : OPS_SLICE;

    if (agt_lane_aborted(c->lane))
      return cudaSuccess;
    st = ops->copy_d2d(c->sess->ctx, dst + off, src + off, n);
    if (st)
      return st;
  }
  return cudaSuccess;
}

static uint32_t op_memset(struct agt_call *c)
{
  const struct agt_backend_ops *ops = ops_of(c);
  uint64_t dst, len;
  uint8_t v;
  uint32_t st;

  if (c->len != 20)
    return TR_ST_BAD_RECORD;
  dst = tr_get_u64(c->p);
  len = tr_get_u64(c->p + 8);
  v = (uint8_t)tr_get_u32(c->p + 16); /* cudaMemset uses the low byte */
  if (len == 0)
    return cudaSuccess;
  st = ops->mem_check(c->sess->ctx, dst, len);
  if (st)
    return st;
  for (uint64_t off = 0; off < len; off += OPS_SLICE) {
    uint64_t n = len - off < OPS_SLICE ? len - off : OPS_SLICE;

    if (agt_lane_aborted(c->lane))
      return cudaSuccess;
    st = ops->memset_d8(c->sess->ctx, dst + off, v, n);
    if (st)
      return st;
  }
  return cudaSuccess;
}

static uint32_t op_mem_get_info(struct agt_call *c)
{
  uint64_t fr, total;
  uint32_t st;
  uint8_t *out;

  if (c->len != 0)
    return TR_ST_BAD_RECORD;
  st = ops_of(c)->mem_info(c->sess->ctx, &fr, &total);
  if (st)
    return st;
  out = reply_buf(c, 16);
  if (!out)
    return cudaErrorMemoryAllocation;
  tr_put_u64(out, fr);
  tr_put_u64(out + 8, total);
  return cudaSuccess;
}

/*
 * RAND_FILL: u64 dst, u64 n, u32 dist, u32 0, u64 seed, u64 offset.  Fill
 * n floats at dst with Philox4x32-10 (tools/common/philox.h), made here in
 * pieces and copied in like MEMCPY_H2D, so any backend takes them and no
 * byte crosses the network.  The range is checked whole first.
 */
static uint32_t op_rand_fill(struct agt_call *c)
{
  const struct agt_backend_ops *ops = ops_of(c);
  enum { PIECE = 1u << 18 }; /* floats: 1 MiB */
  uint64_t dst, n, seed, offset;
  uint32_t dist, st;
  float *buf;

  if (c->len != 40)
    return TR_ST_BAD_RECORD;
  dst = tr_get_u64(c->p);
  n = tr_get_u64(c->p + 8);
  dist = tr_get_u32(c->p + 16);
  seed = tr_get_u64(c->p + 24);
  offset = tr_get_u64(c->p + 32);
  if (dist > TR_RAND_NORMAL || tr_get_u32(c->p + 20) != 0 ||
      n > UINT64_MAX / 4)
    return cudaErrorInvalidValue;
  if (n == 0)
    return cudaSuccess;
  st = ops->mem_check(c->sess->ctx, dst, n * 4);
  if (st)
    return st;
  buf = malloc((size_t)(n < PIECE ? n : PIECE) * sizeof(float));
  if (!buf)
    return cudaErrorMemoryAllocation;
  for (uint64_t done = 0; done < n && !st;) {
    size_t k = n - done < PIECE ? (size_t)(n - done) : PIECE;

    tr_rand_floats(seed, offset, (int)dist, done, buf, k);
    st = ops->copy_h2d(c->sess->ctx, dst + done * 4, buf, k * 4);
    done += k;
  }
  free(buf);
  return st;
}

/* ---- modules and functions ---------------------------------------------- */

/*
 * References that keep a module (and its functions) alive while a call uses
 * it outside the session lock: an unload on another lane must wait for us.
 */
static struct agt_smod *smod_get(struct agt_session *s, uint64_t handle)
{
  struct agt_smod *sm;

  pthread_mutex_lock(&s->mu);
  sm = agt_hmap_get(&s->modules, handle);
  if (sm)
    sm->refs++;
  pthread_mutex_unlock(&s->mu);
  return sm;
}

/* The backend function of function handle `handle` and a reference to its
   module in *sm; NULL if the handle is unknown. */
static void *sfunc_get(struct agt_session *s, uint64_t handle,
                       struct agt_smod **sm)
{
  struct agt_sfunc *f;
  void *bfn = NULL;

  pthread_mutex_lock(&s->mu);
  f = agt_hmap_get(&s->funcs, handle);
  if (f) {
    *sm = f->mod;
    f->mod->refs++;
    bfn = f->bfn;
  }
  pthread_mutex_unlock(&s->mu);
  return bfn;
}

static void smod_put(struct agt_session *s, struct agt_smod *sm)
{
  bool last;

  pthread_mutex_lock(&s->mu);
  last = agt_smod_put_locked(sm);
  pthread_mutex_unlock(&s->mu);
  if (last)
    agt_smod_free(s, sm);
}

/*
 * MODULE_PUT: hash[16], u64 total, u64 offset, bytes.  A module already in
 * the cache is acknowledged without storing anything.  When the last byte
 * lands the hash is checked; a mismatch is cudaErrorInvalidSource ("the
 * device kernel source is invalid": the bytes are not the module they
 * claim to be) and the upload starts over.
 */
static uint32_t op_module_put(struct agt_call *c)
{
  struct agt_session *s = c->sess;
  struct agt_module *m;
  uint8_t *image = NULL;
  uint64_t total, offset;
  int rc;

  if (c->len < AGT_HASH_LEN + 16)
    return TR_ST_BAD_RECORD;
  total = tr_get_u64(c->p + AGT_HASH_LEN);
  offset = tr_get_u64(c->p + AGT_HASH_LEN + 8);
  m = agt_modcache_get(s->cache, c->p);
  if (m) {
    agt_module_put(m);
    return cudaSuccess;
  }
  pthread_mutex_lock(&s->mu);
  rc = agt_upload_chunk(&s->uploads, c->p, total, offset,
                        c->p + AGT_HASH_LEN + 16, c->len - AGT_HASH_LEN - 16,
                        &image);
  pthread_mutex_unlock(&s->mu);
  switch (rc) {
  case 0:
    return cudaSuccess;
  case 1:
    return agt_modcache_add(s->cache, c->p, image, total) < 0
               ? cudaErrorMemoryAllocation
               : cudaSuccess;
  case -ERANGE:
    return TR_ST_BAD_RECORD;
  case -EBADMSG:
    agt_warn("session %016llx: MODULE_PUT bytes do not match their hash",
             (unsigned long long)s->id);
    return cudaErrorInvalidSource;
  case -EINVAL:
  case -E2BIG:
    return cudaErrorInvalidValue;
  default: /* -ENOSPC, -ENOMEM */
    return cudaErrorMemoryAllocation;
  }
}

/* MODULE_LOAD: u64 module handle, hash[16]. */
static uint32_t op_module_load(struct agt_call *c)
{
  struct agt_session *s = c->sess;
  struct agt_smod *sm;
  struct agt_module *m;
  uint64_t handle;
  uint32_t st;
  int rc;

  if (c->len != 8 + AGT_HASH_LEN)
    return TR_ST_BAD_RECORD;
  handle = tr_get_u64(c->p);
  if (handle == 0)
    return TR_ST_BAD_HANDLE;
  m = agt_modcache_get(s->cache, c->p + 8);
  if (!m)
    return TR_ST_NEED_MODULE;
  sm = calloc(1, sizeof(*sm));
  if (!sm) {
    agt_module_put(m);
    return cudaErrorMemoryAllocation;
  }
  st = s->be->ops->module_load(s->ctx, m->image, m->len, &sm->bmod, c->why);
  if (st) {
    if (c->why[0])
      agt_info("session %016llx: module load failed: %s",
               (unsigned long long)s->id, c->why);
    agt_module_put(m);
    free(sm);
    return st;
  }
  sm->m = m;
  sm->refs = 1; /* the modules map's */
  pthread_mutex_lock(&s->mu);
  rc = agt_hmap_put(&s->modules, handle, sm);
  pthread_mutex_unlock(&s->mu);
  if (rc < 0) {
    agt_smod_free(s, sm);
    /* A handle bound twice is a client bug, like an unknown one. */
    return rc == -EEXIST ? TR_ST_BAD_HANDLE : cudaErrorMemoryAllocation;
  }
  return cudaSuccess;
}

/* Collects the function handles that belong to one module handle. */
struct fn_of_mod {
  struct agt_smod *mod;
  uint64_t *keys;
  size_t n;
};

static void collect_fn(uint64_t key, void *val, void *arg)
{
  struct fn_of_mod *a = arg;
  struct agt_sfunc *f = val;

  if (f->mod == a->mod)
    a->keys[a->n++] = key;
}

/*
 * MODULE_UNLOAD: u64 module handle.  The module's function handles go with
 * it, as in CUDA.  A launch running on another lane keeps its own
 * reference, so the backend module outlives it.
 */
static uint32_t op_module_unload(struct agt_call *c)
{
  struct agt_session *s = c->sess;
  struct fn_of_mod a = {0};
  struct agt_smod *sm;
  bool last;

  if (c->len != 8)
    return TR_ST_BAD_RECORD;
  pthread_mutex_lock(&s->mu);
  sm = agt_hmap_get(&s->modules, tr_get_u64(c->p));
  if (!sm) {
    pthread_mutex_unlock(&s->mu);
    return TR_ST_BAD_HANDLE;
  }
  a.mod = sm;
  a.keys = malloc((s->funcs.count ? s->funcs.count : 1) * sizeof(*a.keys));
  if (!a.keys) {
    pthread_mutex_unlock(&s->mu);
    return cudaErrorMemoryAllocation;
  }
  agt_hmap_each(&s->funcs, collect_fn, &a);
  for (size_t i = 0; i < a.n; i++) {
    struct agt_sfunc *f = agt_hmap_del(&s->funcs, a.keys[i]);

    agt_smod_put_locked(f->mod); /* the map's own reference keeps it */
    free(f);
  }
  agt_hmap_del(&s->modules, tr_get_u64(c->p));
  last = agt_smod_put_locked(sm);
  pthread_mutex_unlock(&s->mu);
  free(a.keys);
  if (last)
    agt_smod_free(s, sm);
  return cudaSuccess;
}

/* FUNCTION_GET: u64 module handle, u64 function handle, u32 name_len, name. */
static uint32_t op_function_get(struct agt_call *c)
{
  struct agt_session *s = c->sess;
  struct agt_sfunc *f;
  struct agt_smod *sm;
  uint64_t fh;
  uint32_t nlen, st;
  char *name;
  int rc;

  if (c->len < 20)
    return TR_ST_BAD_RECORD;
  fh = tr_get_u64(c->p + 8);
  nlen = tr_get_u32(c->p + 16);
  if (nlen == 0 || nlen != c->len - 20u || memchr(c->p + 20, 0, nlen))
    return TR_ST_BAD_RECORD;
  if (fh == 0)
    return TR_ST_BAD_HANDLE;
  name = malloc(nlen + 1u);
  f = calloc(1, sizeof(*f));
  if (!name || !f) {
    free(name);
    free(f);
    return cudaErrorMemoryAllocation;
  }
  memcpy(name, c->p + 20, nlen);
  name[nlen] = 0;

  sm = smod_get(s, tr_get_u64(c->p));
  if (!sm) {
    st = TR_ST_BAD_HANDLE;
    goto out_free;
  }
  st = s->be->ops->function_get(s->ctx, sm->bmod, name, &f->bfn);
  if (st)
    goto out_put;
  f->mod = sm; /* takes over the reference */
  pthread_mutex_lock(&s->mu);
  rc = agt_hmap_put(&s->funcs, fh, f);
  pthread_mutex_unlock(&s->mu);
  if (rc == 0) {
    free(name);
    return cudaSuccess;
  }
  st = rc == -EEXIST ? TR_ST_BAD_HANDLE : cudaErrorMemoryAllocation;
out_put:
  smod_put(s, sm);
out_free:
  free(name);
  free(f);
  return st;
}

/* SYMBOL_GET: u64 module handle, u32 name_len, name -> u64 address, u64 size. */
static uint32_t op_symbol_get(struct agt_call *c)
{
  struct agt_session *s = c->sess;
  struct agt_smod *sm;
  uint64_t addr, size;
  uint32_t nlen, st;
  uint8_t *out;
  char *name;

  if (c->len < 12)
    return TR_ST_BAD_RECORD;
  nlen = tr_get_u32(c->p + 8);
  if (nlen == 0 || nlen != c->len - 12u || memchr(c->p + 12, 0, nlen))
    return TR_ST_BAD_RECORD;
  name = malloc(nlen + 1u);
  if (!name)
    return cudaErrorMemoryAllocation;
  memcpy(name, c->p + 12, nlen);
  name[nlen] = 0;
  sm = smod_get(s, tr_get_u64(c->p));
  if (!sm) {
    free(name);
    return TR_ST_BAD_HANDLE;
  }
  st = s->be->ops->symbol_get(s->ctx, sm->bmod, name, &addr, &size);
  free(name);
  smod_put(s, sm);
  if (st)
    return st;
  out = reply_buf(c, 16);
  if (!out)
    return cudaErrorMemoryAllocation;
  tr_put_u64(out, addr);
  tr_put_u64(out + 8, size);
  return cudaSuccess;
}

/* FUNC_ATTRS: u64 function handle -> TR_FATTRS_SIZE bytes. */
static uint32_t op_func_attrs(struct agt_call *c)
{
  struct agt_session *s = c->sess;
  struct agt_fattrs a;
  struct agt_smod *sm = NULL;
  void *bfn;
  uint32_t st;
  uint8_t *out;

  if (c->len != 8)
    return TR_ST_BAD_RECORD;
  bfn = sfunc_get(s, tr_get_u64(c->p), &sm);
  if (!bfn)
    return TR_ST_BAD_HANDLE;
  st = s->be->ops->function_attrs(s->ctx, bfn, &a);
  smod_put(s, sm);
  if (st)
    return st;
  out = reply_buf(c, TR_FATTRS_SIZE);
  if (!out)
    return cudaErrorMemoryAllocation;
  tr_put_u32(out, a.shared_size);
  tr_put_u32(out + 4, a.const_size);
  tr_put_u32(out + 8, a.local_size);
  tr_put_u32(out + 12, a.max_threads);
  tr_put_u32(out + 16, a.num_regs);
  tr_put_u32(out + 20, a.ptx_version);
  tr_put_u32(out + 24, a.binary_version);
  tr_put_u32(out + 28, a.params_size);
  return cudaSuccess;
}

/* ---- execution ---------------------------------------------------------- */

static void launch_out(void *arg, int fd, const char *text, size_t n)
{
  agt_session_output(arg, fd, text, n);
}

/*
 * The launch record of c (TR_LAUNCH_FIXED in proto.h has the layout) read
 * into *l and checked against the device's limits, its function in *bfn
 * with a reference on its module in *sm.  0, or the status to answer
 * (nothing held then).
 */
static uint32_t launch_parse(struct agt_call *c, struct agt_launch *l,
                             void **bfn, struct agt_smod **sm)
{
  struct agt_session *s = c->sess;
  uint64_t threads;
  uint32_t flags;

  if (c->len < TR_LAUNCH_FIXED)
    return TR_ST_BAD_RECORD;
  for (int i = 0; i < 3; i++) {
    l->grid[i] = tr_get_u32(c->p + 8 + 4 * i);
    l->block[i] = tr_get_u32(c->p + 20 + 4 * i);
  }
  l->shmem = tr_get_u32(c->p + 32);
  l->params_size = tr_get_u32(c->p + 36);
  l->stream = tr_get_u64(c->p + 40);
  l->stack_size = tr_get_u32(c->p + 48);
  l->priority = tr_priority_clamp((int32_t)tr_get_u32(c->p + 52));
  flags = tr_get_u32(c->p + 56);
  l->cooperative = (flags & TR_LAUNCH_F_COOPERATIVE) != 0;
  for (int i = 0; i < 3; i++) {
    l->cluster[i] = tr_get_u32(c->p + 60 + 4 * i);
    if (l->cluster[i] == 0)
      l->cluster[i] = 1;
  }
  l->params = c->p + TR_LAUNCH_FIXED;
  l->out = launch_out;
  l->out_arg = s;
  if (l->params_size != c->len - TR_LAUNCH_FIXED ||
      (flags & ~TR_LAUNCH_F_COOPERATIVE))
    return TR_ST_BAD_RECORD;

  *sm = NULL;
  *bfn = sfunc_get(s, tr_get_u64(c->p), sm);
  if (!*bfn)
    return TR_ST_BAD_HANDLE;

  /* The limits the device reports (emu.c's attributes). */
  threads = (uint64_t)l->block[0] * l->block[1] * l->block[2];
  if (!l->grid[0] || !l->grid[1] || !l->grid[2] || l->grid[0] > 2147483647u ||
      l->grid[1] > 65535 || l->grid[2] > 65535 || !threads || threads > 1024 ||
      l->block[0] > 1024 || l->block[1] > 1024 || l->block[2] > 64 ||
      l->shmem > 166912) {
    smod_put(s, *sm);
    return cudaErrorInvalidValue; /* what CUDA 13 returns for these */
  }
  return cudaSuccess;
}

/* A launch's status st: a fault makes the session's context unusable. */
static void launch_status(struct agt_session *s, uint32_t st)
{
  unsigned zero = 0;

  if (agt_status_sticky(st) &&
      atomic_compare_exchange_strong(&s->sticky, &zero, st))
    agt_info("session %016llx: kernel fault %u; the session's context is "
             "now unusable, as on a GPU", (unsigned long long)s->id, st);
}

static uint32_t op_launch(struct agt_call *c)
{
  struct agt_launch l;
  struct agt_smod *sm;
  void *bfn;
  uint32_t st = launch_parse(c, &l, &bfn, &sm);

  if (st)
    return st;
  st = ops_of(c)->launch(c->sess->ctx, bfn, &l);
  launch_status(c->sess, st);
  smod_put(c->sess, sm);
  return st;
}

int agt_ops_batch_key(const struct agt_session *s, const struct agt_rec *r)
{
  if (!s->be->ops->launch_many || r->hdr.opcode != TR_OP_LAUNCH ||
      r->hdr.flags || r->hdr.payload_len < TR_LAUNCH_FIXED)
    return -1;
  /* Priorities run from 0 down to TR_PRIORITY_GREATEST: negated, a key. */
  return -tr_priority_clamp((int32_t)tr_get_u32(r->payload + 52));
}

bool agt_ops_batch_mark(const struct agt_rec *r)
{
  return r->hdr.opcode == TR_OP_EVENT_RECORD && r->hdr.flags == 0 &&
         r->hdr.payload_len == 24 &&
         tr_get_u64(r->payload + 16) == TR_EVENT_F_MARK;
}

void agt_ops_execute_launches(struct agt_lane *l, struct agt_rec *const *rs,
                              unsigned n)
{
  struct agt_session *s = l->sess;
  struct agt_launch ls[AGT_LAUNCH_BATCH];
  struct agt_smod *sms[AGT_LAUNCH_BATCH];
  void *fns[AGT_LAUNCH_BATCH];
  uint32_t st[AGT_BATCH_MAX], got[AGT_LAUNCH_BATCH];
  unsigned at[AGT_LAUNCH_BATCH], k = 0;
  uint32_t sticky = atomic_load(&s->sticky);

  for (unsigned i = 0; i < n; i++) {
    struct agt_call c = {
      .lane = l,
      .sess = s,
      .hdr = &rs[i]->hdr,
      .p = rs[i]->payload,
      .len = rs[i]->hdr.payload_len,
    };

    if (rs[i]->hdr.opcode != TR_OP_LAUNCH) {
      st[i] = cudaSuccess; /* a mark: run below, after the launches */
      continue;
    }
    st[i] = sticky ? sticky : launch_parse(&c, &ls[k], &fns[k], &sms[k]);
    if (st[i] == cudaSuccess)
      at[k++] = i;
  }
  if (k)
    s->be->ops->launch_many(s->ctx, fns, ls, k, got);
  for (unsigned j = 0; j < k; j++) {
    st[at[j]] = got[j];
    launch_status(s, got[j]);
    smod_put(s, sms[j]);
  }
  /* Nobody waits for these: the first error is the lane's deferred one,
     as agt_ops_execute makes it.  A mark is recorded now that every launch
     before it has run (and those after it, which only makes it late). */
  for (unsigned i = 0; i < n; i++) {
    if (rs[i]->hdr.opcode != TR_OP_LAUNCH)
      agt_ops_execute(l, rs[i]);
    if (!st[i])
      continue;
    agt_debug("lane %llu: LAUNCH request %llu: status %#x",
              (unsigned long long)l->id,
              (unsigned long long)rs[i]->hdr.request_id, st[i]);
    if (!l->deferred)
      l->deferred = st[i];
  }
}

/* ---- events ------------------------------------------------------------- */

/*
 * Events are the one cross-lane ordering tool: a record of a lane sets the
 * event's generation when the lane gets to it (everything the lane queued
 * before has run), and any lane can ask whether a generation has run.
 * Waiting is done by the client, by asking again, so no execution thread
 * ever blocks on another lane.
 */
static uint64_t now_ns(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* EVENT_RECORD: u64 event, u64 generation. */
static uint32_t op_event_record(struct agt_call *c)
{
  struct agt_session *s = c->sess;
  uint64_t h, gen, t;
  struct agt_event *e;
  struct agt_waiter *woken;
  uint32_t st = cudaSuccess;

  if ((c->len != 16 && c->len != 24) ||
      (c->len == 24 && (tr_get_u64(c->p + 16) & ~(uint64_t)TR_EVENT_F_MARK)))
    return TR_ST_BAD_RECORD;
  h = tr_get_u64(c->p);
  gen = tr_get_u64(c->p + 8);
  if (h == 0 || gen == 0 || (h & TR_LANE_MARK_BIT))
    return TR_ST_BAD_HANDLE; /* a mark moves only with its lane */
  /* The backend runs everything before this record to completion before
     the record runs (emu: calls return when done), so now is its time. */
  st = ops_of(c)->synchronize(s->ctx);
  t = now_ns();
  pthread_mutex_lock(&s->mu);
  e = agt_hmap_get(&s->events, h);
  if (!e) {
    e = calloc(1, sizeof(*e));
    if (!e || agt_hmap_put(&s->events, h, e) < 0) {
      free(e);
      pthread_mutex_unlock(&s->mu);
      return cudaErrorMemoryAllocation;
    }
  }
  if (gen > e->done_gen) {
    e->done_gen = gen;
    e->ts_ns = t;
  }
  /* Lanes parked on this generation or an older one run again. */
  woken = agt_event_take_waiters(e, e->done_gen);
  pthread_mutex_unlock(&s->mu);
  agt_waiters_wake(woken);
  return st;
}

/* EVENT_WAIT: u64 event, u64 generation.  The lane was parked until that
   record ran (agent_exec.c, agt_event_wait_ready); here it has. */
static uint32_t op_event_wait(struct agt_call *c)
{
  if (c->len != 16)
    return TR_ST_BAD_RECORD;
  return cudaSuccess;
}

/* EVENT_QUERY: u64 event, u64 generation -> cudaErrorNotReady until that
   record has run.  An event never recorded is complete, as in CUDA. */
static uint32_t op_event_query(struct agt_call *c)
{
  struct agt_session *s = c->sess;
  struct agt_event *e;
  uint64_t gen;
  bool done;

  if (c->len != 16)
    return TR_ST_BAD_RECORD;
  gen = tr_get_u64(c->p + 8);
  pthread_mutex_lock(&s->mu);
  e = agt_hmap_get(&s->events, tr_get_u64(c->p));
  done = gen == 0 || (e && agt_event_reached(e, gen));
  pthread_mutex_unlock(&s->mu);
  return done ? cudaSuccess : cudaErrorNotReady;
}

/* EVENT_ELAPSED: u64 start, u64 stop -> i64 ns between their newest
   records.  cudaErrorInvalidResourceHandle if one was never recorded. */
static uint32_t op_event_elapsed(struct agt_call *c)
{
  struct agt_session *s = c->sess;
  struct agt_event *a, *b;
  int64_t d = 0;
  uint8_t *out;
  bool ok;

  if (c->len != 16)
    return TR_ST_BAD_RECORD;
  pthread_mutex_lock(&s->mu);
  a = agt_hmap_get(&s->events, tr_get_u64(c->p));
  b = agt_hmap_get(&s->events, tr_get_u64(c->p + 8));
  ok = a && b && !a->mark && !b->mark;
  if (ok)
    d = (int64_t)(b->ts_ns - a->ts_ns);
  pthread_mutex_unlock(&s->mu);
  if (!ok)
    return cudaErrorInvalidResourceHandle;
  out = reply_buf(c, 8);
  if (!out)
    return cudaErrorMemoryAllocation;
  tr_put_u64(out, (uint64_t)d);
  return cudaSuccess;
}

/* EVENT_DESTROY: u64 event.  Unknown handles are fine (never recorded). */
static uint32_t op_event_destroy(struct agt_call *c)
{
  struct agt_session *s = c->sess;

  struct agt_event *e;
  struct agt_waiter *woken = NULL;

  if (c->len != 8)
    return TR_ST_BAD_RECORD;
  if (tr_get_u64(c->p) & TR_LANE_MARK_BIT)
    return TR_ST_BAD_HANDLE; /* marks go with their session */
  pthread_mutex_lock(&s->mu);
  e = agt_hmap_del(&s->events, tr_get_u64(c->p));
  /* A wait cannot outlive its event: lanes parked on it go on. */
  if (e)
    woken = agt_event_take_waiters(e, UINT64_MAX);
  pthread_mutex_unlock(&s->mu);
  free(e);
  agt_waiters_wake(woken);
  return cudaSuccess;
}

/* ---- graphs ------------------------------------------------------------- */

/*
 * A graph is what a stream capture recorded: the records the client would
 * have sent, concatenated.  GRAPH_PUT assembles it (in order), GRAPH_LAUNCH
 * runs its records in order on the launching lane, exactly as if they had
 * arrived one by one (one message instead of hundreds), and GRAPH_DESTROY
 * drops it.  Every record is checked when the graph completes, so a launch
 * never meets a malformed one.
 */
static void graph_put(struct agt_session *s, struct agt_graph *g)
{
  bool last;

  pthread_mutex_lock(&s->mu);
  last = --g->refs == 0;
  pthread_mutex_unlock(&s->mu);
  if (last) {
    free(g->buf);
    free(g);
  }
}

/* Walk the records of buf; each must be a no-reply record of an opcode a
   graph may hold, with its whole payload inside buf. */
static bool graph_valid(const uint8_t *buf, uint64_t len)
{
  uint64_t off = 0;

  while (off < len) {
    struct tr_hdr h;
    const char *why;

    if (len - off < TR_HDR_SIZE)
      return false;
    tr_hdr_unpack(buf + off, &h);
    if (tr_hdr_check(&h, TR_PAYLOAD_MAX, 0, &why) < 0 || h.flags ||
        h.payload_len > len - off - TR_HDR_SIZE)
      return false;
    if (h.opcode != TR_OP_LAUNCH && h.opcode != TR_OP_MEMSET &&
        h.opcode != TR_OP_MEMCPY_D2D && h.opcode != TR_OP_EVENT_RECORD)
      return false;
    off += TR_HDR_SIZE + h.payload_len;
  }
  return true;
}

/* GRAPH_PUT: u64 graph, u64 total, u64 offset, bytes (in order). */
static uint32_t op_graph_put(struct agt_call *c)
{
  struct agt_session *s = c->sess;
  uint64_t h, total, off, n;
  struct agt_graph *g;
  uint32_t st = cudaSuccess;
  int rc;

  if (c->len < 24)
    return TR_ST_BAD_RECORD;
  h = tr_get_u64(c->p);
  total = tr_get_u64(c->p + 8);
  off = tr_get_u64(c->p + 16);
  n = c->len - 24u;
  if (h == 0)
    return TR_ST_BAD_HANDLE;
  if (total == 0 || total > TR_GRAPH_MAX)
    return cudaErrorInvalidValue;
  pthread_mutex_lock(&s->mu);
  g = agt_hmap_get(&s->graphs, h);
  if (!g && off == 0) {
    g = calloc(1, sizeof(*g));
    if (g)
      g->buf = malloc(total);
    if (!g || !g->buf || (rc = agt_hmap_put(&s->graphs, h, g)) < 0) {
      if (g)
        free(g->buf);
      free(g);
      pthread_mutex_unlock(&s->mu);
      return cudaErrorMemoryAllocation;
    }
    g->total = total;
    g->refs = 1; /* the map's */
  }
  if (!g || g->complete || g->total != total || off != g->len ||
      n > total - off) {
    pthread_mutex_unlock(&s->mu);
    return TR_ST_BAD_RECORD;
  }
  memcpy(g->buf + off, c->p + 24, n);
  g->len += n;
  if (g->len == g->total) {
    if (graph_valid(g->buf, g->len)) {
      g->complete = true;
    } else {
      agt_hmap_del(&s->graphs, h);
      g->refs--;
      free(g->buf);
      free(g);
      st = cudaErrorInvalidValue;
    }
  }
  pthread_mutex_unlock(&s->mu);
  return st;
}

/* GRAPH_LAUNCH: u64 graph.  Its records run here, in order; the first
   failure ends the launch and is its status. */
static uint32_t op_graph_launch(struct agt_call *c)
{
  struct agt_session *s = c->sess;
  struct agt_graph *g;
  uint32_t st = cudaSuccess;
  uint64_t off = 0;

  if (c->len != 8)
    return TR_ST_BAD_RECORD;
  pthread_mutex_lock(&s->mu);
  g = agt_hmap_get(&s->graphs, tr_get_u64(c->p));
  if (g && g->complete)
    g->refs++;
  else
    g = NULL;
  pthread_mutex_unlock(&s->mu);
  if (!g)
    return TR_ST_BAD_HANDLE;
  while (off < g->len && !st) {
    struct agt_call sub = *c;
    struct tr_hdr h;

    tr_hdr_unpack(g->buf + off, &h); /* checked at GRAPH_PUT */
    sub.hdr = &h;
    sub.p = g->buf + off + TR_HDR_SIZE;
    sub.len = h.payload_len;
    sub.want_reply = false;
    sub.reply = NULL;
    sub.why[0] = 0;
    st = dispatch(&sub);
    agt_out_free(sub.reply);
    if (st && sub.why[0])
      agt_info("session %016llx: graph record failed: %s",
               (unsigned long long)s->id, sub.why);
    off += TR_HDR_SIZE + h.payload_len;
  }
  graph_put(s, g);
  return st;
}

/* GRAPH_DESTROY: u64 graph.  A launch running on another lane keeps its
   reference. */
static uint32_t op_graph_destroy(struct agt_call *c)
{
  struct agt_session *s = c->sess;
  struct agt_graph *g;

  if (c->len != 8)
    return TR_ST_BAD_RECORD;
  pthread_mutex_lock(&s->mu);
  g = agt_hmap_del(&s->graphs, tr_get_u64(c->p));
  pthread_mutex_unlock(&s->mu);
  if (!g)
    return TR_ST_BAD_HANDLE;
  graph_put(s, g);
  return cudaSuccess;
}

/* ---- dispatch ----------------------------------------------------------- */

/*
 * The opcodes the agent executes.  Every other opcode of TR_OPCODES (HELLO
 * belongs to /v1/hello, LANE_* and STATS to the lane leg) and every number
 * outside the table is TR_ST_BAD_OPCODE.
 */
#define AGT_OPS(X)                                                             \
  X(NOP, op_nop)                                                               \
  X(SYNCHRONIZE, op_synchronize)                                               \
  X(OUTPUT, op_output)                                                         \
  X(MALLOC, op_malloc)                                                         \
  X(FREE, op_free)                                                             \
  X(MEMCPY_H2D, op_memcpy_h2d)                                                 \
  X(MEMCPY_D2H, op_memcpy_d2h)                                                 \
  X(MEMCPY_D2D, op_memcpy_d2d)                                                 \
  X(MEMSET, op_memset)                                                         \
  X(MEM_GET_INFO, op_mem_get_info)                                             \
  X(RAND_FILL, op_rand_fill)                                                   \
  X(MODULE_PUT, op_module_put)                                                 \
  X(MODULE_LOAD, op_module_load)                                               \
  X(MODULE_UNLOAD, op_module_unload)                                           \
  X(FUNCTION_GET, op_function_get)                                             \
  X(SYMBOL_GET, op_symbol_get)                                                 \
  X(FUNC_ATTRS, op_func_attrs)                                                 \
  X(LAUNCH, op_launch)                                                         \
  X(EVENT_RECORD, op_event_record)                                             \
  X(EVENT_QUERY, op_event_query)                                               \
  X(EVENT_ELAPSED, op_event_elapsed)                                           \
  X(EVENT_DESTROY, op_event_destroy)                                           \
  X(EVENT_WAIT, op_event_wait)                                                 \
  X(GRAPH_PUT, op_graph_put)                                                   \
  X(GRAPH_LAUNCH, op_graph_launch)                                             \
  X(GRAPH_DESTROY, op_graph_destroy)

static uint32_t dispatch(struct agt_call *c)
{
  switch (c->hdr->opcode) {
#define AGT_OP_CASE_(name, fn)                                                 \
  case TR_OP_##name:                                                           \
    return fn(c);
    AGT_OPS(AGT_OP_CASE_)
#undef AGT_OP_CASE_
  default:
    return TR_ST_BAD_OPCODE;
  }
}

void agt_ops_execute(struct agt_lane *l, struct agt_rec *r)
{
  struct agt_call c = {
    .lane = l,
    .sess = l->sess,
    .hdr = &r->hdr,
    .p = r->payload,
    .len = r->hdr.payload_len,
    .want_reply = (r->hdr.flags & TR_F_WANT_REPLY) != 0,
    .direct = r->direct,
    .staged = r->staged,
  };
  struct tr_hdr h;
  uint32_t st, n, sticky;
  uint16_t flags = TR_F_REPLY;

  c.why[0] = 0;
  tr_trace(TR_HOP_AGT_EXEC, (uint32_t)l->id, r->hdr.opcode,
           r->hdr.request_id);
  sticky = atomic_load(&c.sess->sticky);
  /* A direct record's copy finished when it was received: let the memory
     go before the reply can make the client free it. */
  agt_rec_unpin(l, r);

  /* REPLY, MORE, SHMREF, OUTPUT and DEFERRED never belong on a request on
     the wire. */
  if (r->hdr.flags & (TR_F_REPLY | TR_F_MORE | TR_F_SHMREF | TR_F_OUTPUT |
                      TR_F_DEFERRED))
    st = TR_ST_BAD_RECORD;
  else if (sticky)
    st = sticky; /* the context is gone, as on a GPU: nothing runs */
  else
    st = dispatch(&c);
  if (st)
    agt_debug("lane %llu: %s (opcode %u) request %llu: status %#x",
              (unsigned long long)l->id,
              tr_op_name(r->hdr.opcode) ? tr_op_name(r->hdr.opcode) : "?",
              r->hdr.opcode, (unsigned long long)r->hdr.request_id, st);

  if (!c.want_reply) {
    if (st && !l->deferred)
      l->deferred = st;
    agt_out_free(c.reply);
    goto out;
  }
  if ((r->hdr.opcode == TR_OP_SYNCHRONIZE || r->hdr.opcode == TR_OP_OUTPUT) &&
      st < TR_ST_BASE) {
    /* Device output travels with the synchronisation, failed or not:
       a fault's report is part of that output. */
    agt_out_free(c.reply);
    c.reply = NULL;
    if (agt_session_take_output(c.sess, TR_OUTPUT_REPLY_MAX, &c.reply) < 0 &&
        !st)
      st = cudaErrorMemoryAllocation;
    if (!st && l->deferred && r->hdr.opcode == TR_OP_SYNCHRONIZE) {
      st = l->deferred;
      l->deferred = 0;
      if (c.sess->caps & TR_CAP_DEFERRED)
        flags |= TR_F_DEFERRED;
    }
  } else if (st) {
    /* A failed call returns no data, but maybe a diagnostic; MORE replies
       already sent stand. */
    agt_out_free(c.reply);
    c.reply = NULL;
    if (c.why[0]) {
      size_t wl = strnlen(c.why, sizeof(c.why));

      c.reply = agt_out_new((uint32_t)wl);
      if (c.reply)
        memcpy(agt_out_payload(c.reply), c.why, wl);
    }
  } else if (l->deferred) {
    /* The call itself worked, so its payload is kept (a MALLOC's pointer
       is still the client's to free); the status tells the old error,
       and the flag that the payload is data, not a diagnostic. */
    st = l->deferred;
    l->deferred = 0;
    if (c.sess->caps & TR_CAP_DEFERRED) /* else an older broker's reading */
      flags |= TR_F_DEFERRED;
  }
  if (!c.reply)
    c.reply = agt_out_new(0);
  if (!c.reply) {
    /* Without 64 bytes the requester would wait forever: end the lane. */
    agt_err("lane %llu: out of memory for a reply; aborting the lane",
            (unsigned long long)l->id);
    agt_lane_abort(l);
    agt_lane_notify(l);
    goto out;
  }
  n = c.reply->len - TR_HDR_SIZE;
  if (agt_session_has_output(c.sess))
    flags |= TR_F_OUTPUT;
  tr_hdr_init(&h, r->hdr.opcode, flags, r->hdr.request_id, n);
  h.status = st;
  tr_trace(TR_HOP_AGT_DONE, (uint32_t)l->id, r->hdr.opcode,
           r->hdr.request_id);
  /* The lane is past this record before anyone hears so: a program that
     got the reply and asks another lane about this one (EVENT_QUERY of
     its mark) finds it done.  run_records notes it again, harmlessly. */
  agt_lane_mark_done(l, r->hdr.request_id);
  agt_lane_push_out(l, c.reply, &h);
out:
  if (c.unpin) {
    agt_lane_wait_sent(l);
    ops_of(&c)->mem_unpin(c.sess->ctx, c.unpin);
  }
}
