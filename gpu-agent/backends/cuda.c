/*
 * cuda.c: the real GPU, through the NVIDIA driver API: the sessions
 * (contexts, windows, memory); cuda_exec.c has what they run (modules,
 * launches), cuda_dev.c the driver and the device, cuda_int.h what the
 * three share.
 *
 * The driver is loaded with dlopen("libcuda.so.1") (cuda_drv.h), never
 * linked, so the agent builds and starts where there is none; opening this
 * backend there fails with a reason an operator can act on, and "auto"
 * falls back to the emulated device (backend.c).  One backend is device 0.
 *
 * Address windows.  Pointers are not translated: a session's device
 * allocations must lie inside its window [base, base + size), at the very
 * addresses the program uses.  The first context for a window reserves the
 * whole range with cuMemAddressReserve at exactly `base` (checked: the
 * address is only a hint to the driver); contexts with the same (base,
 * size) share that reservation, as all sessions of one broker machine do,
 * and the last one to close frees it.  An allocation is physical memory
 * (cuMemCreate, rounded up to the allocation granularity, 2 MiB on current
 * GPUs) mapped at an address of the window picked here (cuMemMap) and made
 * read-write for the device (cuMemSetAccess).  Placement is first fit over
 * the window's table, sorted by address, from a moving hint, as in emu.c;
 * every allocation is followed by one unmapped granule of guard, so a
 * kernel running off the end of its buffer faults (an error for its own
 * session) instead of writing into a neighbour's, which may be another
 * session's: mappings are visible to every context of the device.  Small
 * allocations share slabs (see "Slabs" below).
 *
 * Ownership and checks.  Allocations belong to the context that made them,
 * and every pointer and size a session passes is checked against its own
 * table before the driver sees it, as emu.c does: a pointer the context
 * does not own is cudaErrorInvalidValue, never a fault in the agent.  A
 * copy pins the allocations it touches, so a cudaFree racing it on another
 * lane only marks the allocation freed; its memory is unmapped, and the
 * range can be placed again, once the last pin goes.  The same holds
 * against kernels: memory freed while launches of the context run is
 * released once the last of those launches has ended (later ones do not
 * hold it: the program freed it before it made them).  Otherwise
 * a free racing a kernel could let the range be mapped again for another
 * session while the kernel still writes to it.
 *
 * Module variables.  The driver places a module's __device__ and
 * __constant__ variables where it chooses, outside the session's window,
 * where the shim could not tell which device an address is on.  So
 * symbol_get gives the program an alias instead: a range of the window,
 * placed like an allocation but never mapped, whose entry (a "symbol"
 * range of the context, until its module is unloaded) holds the driver's
 * address.  mem_check accepts it, mem_free never; copies and memsets
 * translate it to the driver's address; and a launch translates every
 * aligned 8-byte parameter that falls in one of the context's aliases, so
 * a kernel given cudaGetSymbolAddress's pointer reaches the variable.  (A
 * pointer to a variable stored in device memory is not translated; nor,
 * with astronomically low odds, is an integer parameter that happens to
 * equal an alias spared.)  See docs/ARCHITECTURE.md, "The cuda backend".
 *
 * Contexts and streams.  Each session gets a CUDA context of its own
 * (cuCtxCreate, never the shared primary context), so its resources and
 * errors are its own; but on a real GPU a kernel fault (an illegal
 * address) poisons every context of the process, which is why sessions
 * run in worker processes by default (proc.c).  It is created on the
 * session's first operation, not in ctx_open: ctx_open runs on the agent's
 * network thread, and creating a context takes a tenth of a second or
 * more.  A worker process hosts one session (agt_cuda_one_session): there
 * the primary context, retained when the worker started, is the session's,
 * and the process ends with it.  Operations arrive on any execution thread; each makes the context
 * current on its thread first.  Work goes to the calling thread's
 * per-thread default stream (CU_STREAM_PER_THREAD), so lanes running on
 * different execution threads do not serialise on the device, and every
 * operation waits for its stream before it returns: the backend contract
 * is that a call is finished when it returns (a launch returns with the
 * kernel's error), which is also what orders work between lanes.  A
 * launch with a stream priority (TR_PRIORITY_*) goes to a stream created
 * with that priority instead, one per context, thread and priority, so the
 * device schedules its blocks ahead of less urgent kernels' pending ones.
 *
 * Locks: cb->mu guards the window list; window->mu guards that window's
 * table and, for each context on the window, its module list, launch count
 * and deferred frees.  They are never held together, and no driver call is
 * made under window->mu except cuMemAddressReserve/Free under cb->mu.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <driver_types.h>

#include "agent.h"
#include "backend.h"
#include "cuda_int.h"
#include "fatbin.h"
#include "h2share.h" /* tr_net_tune */

/* ---- allocation table (w->mu held) ------------------------------------- */

static uint64_t round_up(uint64_t n, uint64_t to)
{
  return (n + to - 1) / to * to;
}

/* The allocation a range of the window's table belongs to (its first
   member), or NULL. */
struct cu_alloc *cu_alloc_of(struct agt_range *r)
{
  return (struct cu_alloc *)r;
}

/* The allocation of w that holds a (in a slab: the slab's allocation that
   does), or NULL. */
static struct cu_alloc *find(const struct cu_window *w, uint64_t a)
{
  struct cu_alloc *al;

  if (a < w->win.base || a - w->win.base >= w->win.size)
    return NULL;
  al = cu_alloc_of(agt_rt_containing(&w->t, a));
  if (al && al->subs)
    al = cu_alloc_of(agt_rt_containing(al->subs, a));
  return al;
}

/* ---- contexts on the calling thread ------------------------------------ */

/*
 * Make c's context current on this thread, creating it on first use.
 * cuCtxCreate leaves the new context pushed on the creating thread's stack;
 * it is popped again so that repeated creations on one thread do not grow
 * that stack, and made current with cuCtxSetCurrent like every later call.
 */
CUresult cu_enter(struct agt_bctx *c)
{
  const struct cu_drv *d = &c->cb->drv;
  CUcontext ctx = atomic_load_explicit(&c->ctx, memory_order_acquire);
  CUresult r = CUDA_SUCCESS;

  if (!ctx) {
    pthread_mutex_lock(&c->ctx_mu);
    ctx = atomic_load_explicit(&c->ctx, memory_order_relaxed);
    if (!ctx && c->cb->one_session) {
      ctx = c->cb->primary;
      atomic_store_explicit(&c->ctx, ctx, memory_order_release);
    } else if (!ctx) {
      r = d->CtxCreate(&ctx, CU_CTX_FLAGS, c->cb->dev);
      if (r == CUDA_SUCCESS) {
        CUcontext popped;

        (void)d->CtxPopCurrent(&popped);
        atomic_store_explicit(&c->ctx, ctx, memory_order_release);
      } else {
        char buf[AGT_WHY_MAX];

        agt_warn("cuda: cannot create a CUDA context for a session: %s",
                 cu_describe(d, r, buf, sizeof(buf)));
      }
    }
    pthread_mutex_unlock(&c->ctx_mu);
    if (r != CUDA_SUCCESS)
      return r;
  }
  return d->CtxSetCurrent(ctx);
}

/*
 * Wait for stream s: poll it for `poll` nanoseconds (CU_POLL_NS unless
 * tuned, below), so short work is answered at once, then sleep in the
 * driver until it is done (see CU_CTX_FLAGS).
 *
 * With flush it ends in a cuStreamSynchronize even when polling saw the
 * stream done, because the driver writes device printf out at a
 * synchronise (or the next launch), never at cuStreamQuery.  Launches of
 * modules that may print wait so: a launch returns with its output
 * written, a worker process reads it back before it answers the launch,
 * and a synchronise afterwards has nothing left to bring (proc.c answers
 * it without asking the worker).  That costs a driver call on an idle
 * stream, which launches of every other module (no "vprintf" in any of
 * its cubins or PTX: cu_module_load) do not pay: their kernels have no
 * output for it to bring.
 */
static CUresult wait_polling(const struct cu_drv *d, CUstream s, bool flush,
                             uint64_t poll)
{
  uint64_t end = agt_now_ns() + poll;
  CUresult r;

  do {
    r = d->StreamQuery(s);
    if (r != CUDA_ERROR_NOT_READY)
      return r == CUDA_SUCCESS && flush ? d->StreamSynchronize(s) : r;
  } while (agt_now_ns() < end);
  return d->StreamSynchronize(s);
}

/*
 * How long to poll: CU_POLL_NS, unless TREMOTE_NET_TUNE says "cupoll=US"
 * (launches and synchronises) or "cucopypoll=US" (copies and memsets),
 * in microseconds, for measurements: whether a copy's thread polling the
 * driver beside a small launch's costs that launch, on a GPU.  Looked up
 * once (a race only computes the same value twice).
 */
static uint64_t poll_ns(_Atomic uint64_t *v, const char *key)
{
  uint64_t x = atomic_load_explicit(v, memory_order_relaxed);

  if (!x) {
    x = (uint64_t)tr_net_tune(key, CU_POLL_NS / 1000) * 1000;
    atomic_store_explicit(v, x, memory_order_relaxed);
  }
  return x;
}

CUresult cu_stream_wait(const struct cu_drv *d, CUstream s, bool flush)
{
  static _Atomic uint64_t ns;

  return wait_polling(d, s, flush, poll_ns(&ns, "cupoll"));
}

/* cu_stream_wait for a copy or memset, which polls for its own time. */
static CUresult cu_copy_wait(const struct cu_drv *d, CUstream s)
{
  static _Atomic uint64_t ns;

  return wait_polling(d, s, false, poll_ns(&ns, "cucopypoll"));
}

/*
 * The calling thread's stream of the given priority in c (current on this
 * thread), created on first use; CU_STREAM for the default priority, or
 * when the driver cannot create one (a priority is a hint: the launch
 * still runs).
 */
CUstream cu_prio_stream(struct agt_bctx *c, int priority)
{
  pthread_t self = pthread_self();
  struct cu_pstream *ps;
  CUstream s = CU_STREAM;

  if (!priority)
    return CU_STREAM;
  pthread_mutex_lock(&c->ps_mu);
  for (ps = c->pstreams; ps; ps = ps->next)
    if (ps->priority == priority && pthread_equal(ps->thread, self))
      break;
  if (ps) {
    s = ps->s;
  } else if ((ps = calloc(1, sizeof(*ps))) != NULL) {
    CUresult r = c->cb->drv.StreamCreateWithPriority(
        &ps->s, CU_STREAM_NON_BLOCKING, priority);

    if (r == CUDA_SUCCESS) {
      ps->thread = self;
      ps->priority = priority;
      ps->next = c->pstreams;
      c->pstreams = ps;
      s = ps->s;
    } else {
      char buf[AGT_WHY_MAX];

      agt_warn("cuda: cannot create a stream of priority %d (%s); its "
               "kernels run at the default priority", priority,
               cu_describe(&c->cb->drv, r, buf, sizeof(buf)));
      free(ps);
    }
  }
  pthread_mutex_unlock(&c->ps_mu);
  return s;
}

/* ---- pinning, releasing ------------------------------------------------ */

static void release(struct agt_bctx *c, struct cu_alloc *al);

/*
 * Slabs.  A mapping costs at least one granule (2 MiB) of device memory,
 * and a driver call or three, so allocations of at most half a granule
 * share one, as cudaMalloc's small allocations share pages on a GPU: a
 * slab is a mapping of one granule owned by one context, placed in the
 * window like any allocation, and its allocations are ranges of its own
 * table (first fit, CU_SLAB_ALIGN apart), found through it (find).  The
 * slab's guard granule protects its neighbours in the window; inside it,
 * as on a GPU, a kernel that runs off one small buffer reaches the next
 * one of the same session.  A context keeps one empty slab for the next
 * small allocation and unmaps any other that empties.
 */

/* Take al, an allocation in a slab, out of it (freed, unpinned); its slab
   goes too when it is empty and the context has another empty one. */
static void release_in_slab(struct agt_bctx *c, struct cu_alloc *al)
{
  struct cu_window *w = c->w;
  struct cu_alloc *slab = al->in, *s, **pp, *drop = NULL;

  pthread_mutex_lock(&w->mu);
  agt_rt_remove(slab->subs, &al->r);
  if (slab->subs->n == 0 && slab->owner == c && !slab->freed) {
    for (s = c->slabs; s; s = s->slab_next)
      if (s != slab && s->subs->n == 0)
        break;
    if (s) {
      for (pp = &c->slabs; *pp != slab; pp = &(*pp)->slab_next)
        ;
      *pp = slab->slab_next;
      slab->freed = true;
      drop = slab;
    }
  }
  pthread_mutex_unlock(&w->mu);
  free(al);
  if (drop)
    release(c, drop);
}

/* A slab about to be unmapped: out of the context's list, and whatever is
   left in it (a closing context's allocations) freed with it. */
static void slab_drop(struct agt_bctx *c, struct cu_alloc *slab)
{
  struct cu_window *w = c->w;
  struct cu_alloc **pp;

  pthread_mutex_lock(&w->mu);
  for (pp = &c->slabs; *pp && *pp != slab; pp = &(*pp)->slab_next)
    ;
  if (*pp)
    *pp = slab->slab_next;
  for (size_t i = 0; i < slab->subs->n; i++)
    free(cu_alloc_of(slab->subs->tab[i]));
  agt_rt_release(slab->subs);
  free(slab->subs);
  slab->subs = NULL;
  pthread_mutex_unlock(&w->mu);
}

/*
 * Unmap an allocation that is freed and unpinned and drop it from the
 * table.  Its entry reserved the range until now, so nothing new was
 * placed on it while the driver still had it mapped.  If the driver
 * refuses to unmap, the entry stays as a tombstone (owner NULL) that keeps
 * the range from being placed again.
 */
static void release(struct agt_bctx *c, struct cu_alloc *al)
{
  const struct cu_drv *d = &c->cb->drv;
  struct cu_window *w = c->w;
  CUresult r;

  if (al->in) {
    release_in_slab(c, al);
    return;
  }
  if (al->subs)
    slab_drop(c, al);
  r = d->MemUnmap(al->r.addr, al->span);

  /* Mappings belong to the device, not to a context: should the session's
     context be the reason (a sticky error), the primary one can do it.
     The next operation on this thread makes its own context current.
     (A worker's session is in the primary one already: nothing to retry.) */
  if (r != CUDA_SUCCESS && atomic_load(&c->ctx) != c->cb->primary &&
      d->CtxSetCurrent(c->cb->primary) == CUDA_SUCCESS)
    r = d->MemUnmap(al->r.addr, al->span);

  pthread_mutex_lock(&w->mu);
  if (r == CUDA_SUCCESS)
    agt_rt_remove(&w->t, &al->r);
  else
    al->owner = NULL;
  pthread_mutex_unlock(&w->mu);
  if (r == CUDA_SUCCESS) {
    free(al);
  } else {
    char buf[AGT_WHY_MAX];

    agt_warn("cuda: cannot unmap %#" PRIx64 "+%#" PRIx64 " (%s); the range "
             "stays reserved", al->r.addr, al->span,
             cu_describe(d, r, buf, sizeof(buf)));
  }
}

/*
 * Pin the live range of c that holds [a, a + len) whole: an allocation of
 * the window or a module variable's alias.  NULL if there is none (not c's, freed,
 * not yet mapped, or the range crosses its end).
 */
static struct cu_alloc *cu_pin(struct agt_bctx *c, uint64_t a, uint64_t len)
{
  struct cu_window *w = c->w;
  struct cu_alloc *al = NULL;

  pthread_mutex_lock(&w->mu);
  al = find(w, a);
  if (al && (!al->ready || al->freed || al->owner != c))
    al = NULL;
  if (al && (a - al->r.addr > al->size || len > al->size - (a - al->r.addr)))
    al = NULL;
  if (al) {
    al->pins++;
    if (al->mod)
      al->mod->refs++;
  }
  pthread_mutex_unlock(&w->mu);
  return al;
}

void cu_unpin(struct agt_bctx *c, struct cu_alloc *al)
{
  struct cu_module *mod = al->mod;
  bool gone = false, mod_gone = false;

  pthread_mutex_lock(&c->w->mu);
  al->pins--;
  if (mod)
    mod_gone = --mod->refs == 0;
  else
    gone = al->pins == 0 && al->freed;
  pthread_mutex_unlock(&c->w->mu);
  if (gone)
    release(c, al);
  if (mod_gone)
    cu_module_free(c, mod); /* unloaded while this copy ran */
}

/* ---- memory operations ------------------------------------------------- */

/*
 * Map size bytes of new device memory at a free place of c's window (c's
 * context current), as *out; subs, if not NULL, makes it a slab.
 */
static uint32_t map_new(struct agt_bctx *c, uint64_t size,
                        struct agt_rtab *subs, struct cu_alloc **out)
{
  struct cu_backend *cb = c->cb;
  const struct cu_drv *d = &cb->drv;
  struct cu_window *w = c->w;
  CUmemGenericAllocationHandle h;
  struct cu_alloc *al;
  uint64_t a;
  CUresult r;

  al = calloc(1, sizeof(*al));
  if (!al)
    return cudaErrorMemoryAllocation;
  al->size = size;
  al->span = round_up(size, cb->gran);
  al->r.len = al->span + cb->gran;
  al->owner = c;

  /*
   * Place the entry first (not ready: invisible to lookups), then map
   * without the lock: the driver's calls may take a while and the window
   * is shared by every session of the machine.  Every placed range
   * starts at a multiple of the granularity, as cuMemMap needs: the
   * window's base is one, and so is every r.len.
   */
  pthread_mutex_lock(&w->mu);
  a = agt_rt_gap(&w->t, w->hint, w->win.base + w->win.size, al->r.len);
  if (!a)
    a = agt_rt_gap(&w->t, w->win.base, w->win.base + w->win.size, al->r.len);
  if (a) {
    al->r.addr = a;
    if (agt_rt_insert(&w->t, &al->r) < 0)
      a = 0;
    else
      w->hint = a + al->r.len;
  }
  pthread_mutex_unlock(&w->mu);
  if (!a) {
    free(al); /* window full or fragmented, or no memory for the table */
    return cudaErrorMemoryAllocation;
  }

  r = d->MemCreate(&h, al->span, &cb->prop, 0);
  if (r != CUDA_SUCCESS)
    goto out_remove;
  r = d->MemMap(a, al->span, 0, h, 0);
  /* The mapping holds the memory from here on; unmapping frees it. */
  (void)d->MemRelease(h);
  if (r != CUDA_SUCCESS)
    goto out_remove;
  r = d->MemSetAccess(a, al->span, &cb->access, 1);
  if (r != CUDA_SUCCESS)
    goto out_unmap;

  pthread_mutex_lock(&w->mu);
  al->subs = subs; /* before it is ready: never found as a slab without */
  al->ready = true;
  pthread_mutex_unlock(&w->mu);
  *out = al;
  return cudaSuccess;

out_unmap:
  (void)d->MemUnmap(a, al->span);
out_remove:
  pthread_mutex_lock(&w->mu);
  agt_rt_remove(&w->t, &al->r);
  pthread_mutex_unlock(&w->mu);
  free(al);
  return cu_status(r);
}

/* Place al (al->r.len bytes) in the first of c's slabs with room and
   return its address; 0 if none has room.  Under w->mu. */
static uint64_t slab_place(struct agt_bctx *c, struct cu_alloc *al)
{
  for (struct cu_alloc *s = c->slabs; s; s = s->slab_next) {
    uint64_t a = agt_rt_gap(s->subs, s->r.addr, s->r.addr + s->span,
                            al->r.len);

    if (a) {
      al->r.addr = a;
      if (agt_rt_insert(s->subs, &al->r) < 0)
        return 0;
      al->in = s;
      return a;
    }
  }
  return 0;
}

/* A small allocation: in a slab of c's with room, or in a new one. */
static uint32_t slab_alloc(struct agt_bctx *c, uint64_t size, uint64_t *dptr)
{
  struct cu_window *w = c->w;
  struct cu_alloc *al = calloc(1, sizeof(*al)), *slab;
  struct agt_rtab *subs;
  uint64_t a;
  uint32_t st;

  if (!al)
    return cudaErrorMemoryAllocation;
  al->size = size;
  al->r.len = round_up(size, CU_SLAB_ALIGN);
  al->owner = c;
  al->ready = true;
  pthread_mutex_lock(&w->mu);
  a = slab_place(c, al);
  pthread_mutex_unlock(&w->mu);
  if (!a) {
    subs = calloc(1, sizeof(*subs));
    st = subs ? map_new(c, c->cb->gran, subs, &slab)
              : cudaErrorMemoryAllocation;
    if (st != cudaSuccess) {
      free(subs);
      free(al);
      return st;
    }
    pthread_mutex_lock(&w->mu);
    slab->slab_next = c->slabs;
    c->slabs = slab;
    a = slab_place(c, al); /* this one has room, if another had not */
    pthread_mutex_unlock(&w->mu);
  }
  if (!a) {
    free(al); /* no memory for the slab's table */
    return cudaErrorMemoryAllocation;
  }
  *dptr = a;
  return cudaSuccess;
}

static uint32_t cu_mem_alloc(struct agt_bctx *c, uint64_t size, uint64_t *dptr)
{
  struct cu_alloc *al;
  CUresult r;
  uint32_t st;

  *dptr = 0;
  if (size == 0)
    return cudaSuccess; /* cudaMalloc(&p, 0): success, p = NULL */
  if (size > c->w->win.size || size > AGT_USER_TOP)
    return cudaErrorMemoryAllocation;
  r = cu_enter(c);
  if (r != CUDA_SUCCESS)
    return cu_status(r);
  if (size <= c->cb->gran / 2)
    return slab_alloc(c, size, dptr);
  st = map_new(c, size, NULL, &al);
  if (st == cudaSuccess)
    *dptr = al->r.addr;
  return st;
}

static uint32_t cu_mem_free(struct agt_bctx *c, uint64_t dptr)
{
  struct cu_window *w = c->w;
  struct cu_alloc *al;
  bool now = false;

  if (dptr == 0)
    return cudaSuccess;
  pthread_mutex_lock(&w->mu);
  al = find(w, dptr);
  if (!al || al->r.addr != dptr || !al->ready || al->freed || al->owner != c ||
      al->mod) {
    pthread_mutex_unlock(&w->mu);
    return cudaErrorInvalidValue;
  }
  al->freed = true;
  if (c->running) {
    /* A kernel of c may still use it: the launches' pin, dropped when the
       last of those running now ends (launch_end, cuda_exec.c).  Not
       when c's launches stop, which need never happen while its lanes
       launch by turns. */
    al->pins++;
    al->after = c->tickets;
    al->next = c->deferred;
    c->deferred = al;
  } else {
    now = al->pins == 0;
  }
  pthread_mutex_unlock(&w->mu);
  if (now)
    release(c, al);
  return cudaSuccess;
}

static uint32_t cu_mem_check(struct agt_bctx *c, uint64_t dptr, uint64_t len)
{
  struct cu_alloc *al = cu_pin(c, dptr, len);

  if (!al)
    return cudaErrorInvalidValue;
  cu_unpin(c, al);
  return cudaSuccess;
}

/*
 * GPU memory cannot be written or read by the host at its device address,
 * so nothing is ever pinned for direct access: the agent then receives
 * host-to-device copies into a buffer and calls copy_h2d (the contract
 * allows NULL here).
 */
static void *cu_mem_pin(struct agt_bctx *c, uint64_t dptr, uint64_t len,
                        void **pin)
{
  return NULL;
}

static void cu_mem_unpin(struct agt_bctx *c, void *pin)
{
  /* Never called: cu_mem_pin pins nothing. */
}

enum cu_xfer { X_H2D, X_D2H, X_D2D, X_SET };

/*
 * One copy or memset on the calling thread's stream, waited for: the
 * device range dev (and src for a device-to-device copy) is checked and
 * pinned for its length first, so a free racing it waits.
 */
static uint32_t xfer(struct agt_bctx *c, enum cu_xfer k, uint64_t dev,
                     uint64_t src, void *hdst, const void *hsrc,
                     uint8_t value, uint64_t len)
{
  const struct cu_drv *d = &c->cb->drv;
  struct cu_alloc *a, *b = NULL;
  CUresult r;

  if (len == 0)
    return cudaSuccess;
  a = cu_pin(c, dev, len);
  if (!a)
    return cudaErrorInvalidValue;
  if (k == X_D2D && !(b = cu_pin(c, src, len))) {
    cu_unpin(c, a);
    return cudaErrorInvalidValue;
  }
  /* A module variable's alias stands for the driver's address. */
  if (a->mod)
    dev = a->real + (dev - a->r.addr);
  if (b && b->mod)
    src = b->real + (src - b->r.addr);
  r = cu_enter(c);
  if (r == CUDA_SUCCESS) {
    switch (k) {
    case X_H2D: r = d->MemcpyHtoDAsync(dev, hsrc, len, CU_STREAM); break;
    case X_D2H: r = d->MemcpyDtoHAsync(hdst, dev, len, CU_STREAM); break;
    case X_D2D: r = d->MemcpyDtoDAsync(dev, src, len, CU_STREAM); break;
    case X_SET: r = d->MemsetD8Async(dev, value, len, CU_STREAM); break;
    }
  }
  if (r == CUDA_SUCCESS)
    r = cu_copy_wait(d, CU_STREAM);
  if (b)
    cu_unpin(c, b);
  cu_unpin(c, a);
  return cu_status(r);
}

static uint32_t cu_copy_h2d(struct agt_bctx *c, uint64_t dst, const void *src,
                            uint64_t len)
{
  return xfer(c, X_H2D, dst, 0, NULL, src, 0, len);
}

static uint32_t cu_copy_d2h(struct agt_bctx *c, void *dst, uint64_t src,
                            uint64_t len)
{
  return xfer(c, X_D2H, src, 0, dst, NULL, 0, len);
}

static uint32_t cu_copy_d2d(struct agt_bctx *c, uint64_t dst, uint64_t src,
                            uint64_t len)
{
  return xfer(c, X_D2D, dst, src, NULL, NULL, 0, len);
}

static uint32_t cu_memset_d8(struct agt_bctx *c, uint64_t dst, uint8_t value,
                             uint64_t len)
{
  return xfer(c, X_SET, dst, 0, NULL, NULL, value, len);
}

static uint32_t cu_mem_info(struct agt_bctx *c, uint64_t *free_b,
                            uint64_t *total)
{
  size_t f = 0, t = 0;
  CUresult r = cu_enter(c);

  if (r == CUDA_SUCCESS)
    r = c->cb->drv.MemGetInfo(&f, &t);
  *free_b = f;
  *total = t;
  return cu_status(r);
}

/*
 * Every operation waited for its own work before it returned, so nothing
 * of c is left queued that an earlier record of this lane made: waiting on
 * this thread's stream only collects the context's error (sticky errors
 * come back from any call).  Not cuCtxSynchronize: that would also wait
 * for kernels other lanes of the session are running at this moment,
 * making every EVENT_RECORD and SYNCHRONIZE of one stream wait for the
 * others' work, which CUDA's streams do not.
 *
 * It ends in a cuStreamSynchronize even when polling saw the stream done
 * (cu_stream_wait's flush): the program's synchronise is where it expects
 * its kernels' printf lines (an H200 kept them until the next launch, the
 * last kernel's until the context ended).  Launches flush too, so in a
 * worker process this is not even asked for (proc.c).
 */
static uint32_t cu_synchronize(struct agt_bctx *c)
{
  CUresult r = cu_enter(c);

  if (r == CUDA_SUCCESS)
    r = cu_stream_wait(&c->cb->drv, CU_STREAM, true);
  return cu_status(r);
}

/* Host memory page-locked for the device (backend.h, host_register). */
static int cu_host_register(struct agt_bctx *c, void *p, size_t len)
{
  const struct cu_drv *d = &c->cb->drv;
  CUresult r;

  if (!d->MemHostRegister || !d->MemHostUnregister)
    return -1;
  r = cu_enter(c);
  if (r == CUDA_SUCCESS)
    r = d->MemHostRegister(p, len, CU_MEMHOSTREGISTER_PORTABLE);
  if (r != CUDA_SUCCESS) {
    char buf[AGT_WHY_MAX];

    agt_debug("cuda: cannot page-lock %zu bytes of host memory for copies "
              "(%s): they are staged by the driver",
              len, cu_describe(d, r, buf, sizeof(buf)));
    return -1;
  }
  return 0;
}

static void cu_host_unregister(struct agt_bctx *c, void *p)
{
  if (cu_enter(c) == CUDA_SUCCESS)
    (void)c->cb->drv.MemHostUnregister(p);
}

/* ---- contexts and windows ---------------------------------------------- */

static int window_check(const struct cu_backend *cb, uint64_t base,
                        uint64_t size, const char **why)
{
  if (size == 0 || base % cb->gran || size % cb->gran) {
    *why = "address window must be non-empty and aligned to the GPU's "
           "allocation granularity";
    return -EINVAL;
  }
  return agt_win_check(base, size, why);
}

static int cu_ctx_open(struct agt_backend *b, uint64_t base, uint64_t size,
                       struct agt_bctx **out, const char **why)
{
  struct cu_backend *cb = (struct cu_backend *)b;
  const struct cu_drv *d = &cb->drv;
  struct cu_window *w;
  struct agt_window *found;
  struct agt_bctx *c;
  CUdeviceptr p = 0;
  CUresult r;
  int rc;

  rc = window_check(cb, base, size, why);
  if (rc < 0)
    return rc;
  c = calloc(1, sizeof(*c));
  if (!c) {
    *why = "out of memory";
    return -ENOMEM;
  }
  c->cb = cb;

  pthread_mutex_lock(&cb->mu);
  rc = agt_win_find(cb->windows, base, size, &found, why);
  if (rc < 0)
    goto out_unlock;
  if (found) {
    w = (struct cu_window *)found;
    goto out_done;
  }
  w = calloc(1, sizeof(*w));
  if (!w) {
    *why = "out of memory";
    rc = -ENOMEM;
    goto out_unlock;
  }
  /*
   * The address is a request, not an order: a driver that cannot honour it
   * reserves elsewhere, which is no use to us (pointers are not
   * translated).  Reserved under cb->mu, like emu's mmap, so that a
   * session opening the same window meanwhile finds it listed or absent.
   */
  r = d->CtxSetCurrent(cb->primary);
  if (r == CUDA_SUCCESS)
    r = d->MemAddressReserve(&p, size, 0, base, 0);
  if (r != CUDA_SUCCESS || p != base) {
    char buf[AGT_WHY_MAX];

    if (r == CUDA_SUCCESS)
      (void)d->MemAddressFree(p, size);
    agt_warn("cuda: cannot reserve the window %#" PRIx64 "+%#" PRIx64 ": %s",
             base, size, r != CUDA_SUCCESS ? cu_describe(d, r, buf, sizeof(buf))
                                           : "the driver placed it elsewhere");
    free(w);
    *why = r == CUDA_ERROR_OUT_OF_MEMORY
               ? "the GPU driver has no address space left for the window"
               : "address window is already in use in the agent process (the "
                 "GPU driver cannot reserve it at its address)";
    rc = r == CUDA_ERROR_OUT_OF_MEMORY ? -ENOMEM : -EEXIST;
    goto out_unlock;
  }
  pthread_mutex_init(&w->mu, NULL);
  w->hint = base;
  agt_win_add(&cb->windows, &w->win, base, size);
out_done:
  pthread_mutex_unlock(&cb->mu);
  pthread_mutex_init(&c->ctx_mu, NULL);
  pthread_mutex_init(&c->lim_mu, NULL);
  pthread_mutex_init(&c->ps_mu, NULL);
  atomic_init(&c->ctx, NULL);
  atomic_init(&c->aliases, 0);
  c->w = w;
  *out = c;
  return 0;

out_unlock:
  pthread_mutex_unlock(&cb->mu);
  free(c);
  return rc;
}

/* Give c's share of its window back; the last context frees the window. */
static void window_put(struct cu_backend *cb, struct cu_window *w)
{
  bool last;

  pthread_mutex_lock(&cb->mu);
  last = agt_win_put(&cb->windows, &w->win);
  if (last) {
    /* Freed before the lock goes (see cu_ctx_open).  Every allocation is
       unmapped by now, tombstones aside, which the driver then refuses. */
    if (cb->drv.CtxSetCurrent(cb->primary) != CUDA_SUCCESS ||
        cb->drv.MemAddressFree(w->win.base, w->win.size) != CUDA_SUCCESS)
      agt_warn("cuda: cannot free the window %#" PRIx64 "+%#" PRIx64
               "; its address range stays taken", w->win.base, w->win.size);
  }
  pthread_mutex_unlock(&cb->mu);
  if (!last)
    return;
  for (size_t i = 0; i < w->t.n; i++)
    free(cu_alloc_of(w->t.tab[i])); /* tombstones */
  pthread_mutex_destroy(&w->mu);
  agt_rt_release(&w->t);
  free(w);
}

static void cu_ctx_close(struct agt_bctx *c)
{
  struct cu_backend *cb = c->cb;
  struct cu_window *w = c->w;
  CUcontext ctx = atomic_load(&c->ctx);
  struct cu_alloc **mine;
  size_t n = 0;

  /*
   * No call on c runs any more: nothing is pinned, no launch runs, the
   * deferred list is empty.  With the session's context current (or the
   * primary one, if it never got one), unload its modules, then unmap its
   * allocations, then destroy the context.
   */
  if (!ctx || cb->drv.CtxSetCurrent(ctx) != CUDA_SUCCESS)
    (void)cb->drv.CtxSetCurrent(cb->primary);
  for (;;) {
    struct cu_module *mod;

    pthread_mutex_lock(&w->mu);
    mod = c->mods;
    if (mod)
      c->mods = mod->next;
    pthread_mutex_unlock(&w->mu);
    if (!mod)
      break;
    cu_module_free(c, mod);
  }

  pthread_mutex_lock(&w->mu);
  mine = malloc((w->t.n ? w->t.n : 1) * sizeof(*mine));
  for (size_t i = 0; i < w->t.n; i++) {
    struct cu_alloc *al = cu_alloc_of(w->t.tab[i]);

    if (al->owner == c && !al->freed && !al->mod) {
      al->freed = true;
      if (mine)
        mine[n++] = al;
    }
  }
  pthread_mutex_unlock(&w->mu);
  if (!mine) {
    /*
     * No memory for the list: release one at a time, rescanning.  Slow but
     * never leaves a dead session's memory behind.
     */
    for (;;) {
      struct cu_alloc *al = NULL;

      pthread_mutex_lock(&w->mu);
      for (size_t i = 0; i < w->t.n && !al; i++)
        if (cu_alloc_of(w->t.tab[i])->owner == c)
          al = cu_alloc_of(w->t.tab[i]);
      pthread_mutex_unlock(&w->mu);
      if (!al)
        break;
      release(c, al);
    }
  }
  for (size_t i = 0; i < n; i++)
    release(c, mine[i]);
  free(mine);

  if (ctx && ctx != cb->primary) {
    CUresult r = cb->drv.CtxDestroy(ctx);

    if (r != CUDA_SUCCESS) {
      char buf[AGT_WHY_MAX];

      agt_warn("cuda: cannot destroy a session's CUDA context: %s",
               cu_describe(&cb->drv, r, buf, sizeof(buf)));
    }
  }
  window_put(cb, w);
  while (c->pstreams) { /* the streams went with the context, or go with
                           the primary one when the process ends */
    struct cu_pstream *ps = c->pstreams;

    c->pstreams = ps->next;
    free(ps);
  }
  pthread_mutex_destroy(&c->ps_mu);
  pthread_mutex_destroy(&c->lim_mu);
  pthread_mutex_destroy(&c->ctx_mu);
  free(c);
}

/* ---- the operations ---------------------------------------------------- */

const struct agt_backend_ops cu_ops = {
  .name = "cuda",
  .destroy = cu_destroy,
  .devinfo = cu_devinfo,
  .ctx_open = cu_ctx_open,
  .ctx_close = cu_ctx_close,
  .mem_alloc = cu_mem_alloc,
  .mem_free = cu_mem_free,
  .mem_check = cu_mem_check,
  .mem_pin = cu_mem_pin,
  .host_register = cu_host_register,
  .host_unregister = cu_host_unregister,
  .mem_unpin = cu_mem_unpin,
  .copy_h2d = cu_copy_h2d,
  .copy_d2h = cu_copy_d2h,
  .copy_d2d = cu_copy_d2d,
  .memset_d8 = cu_memset_d8,
  .mem_info = cu_mem_info,
  .dev_mem_info = cu_dev_mem_info,
  .synchronize = cu_synchronize,
  .module_load = cu_module_load,
  .module_unload = cu_module_unload,
  .function_get = cu_function_get,
  .symbol_get = cu_symbol_get,
  .function_attrs = cu_function_attrs,
  .launch = cu_launch,
  .launch_many = cu_launch_many,
};
