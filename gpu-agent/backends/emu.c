/*
 * emu.c: the emulated device.  Device memory is host RAM placed inside the
 * session's device address window, so the pointers the program sees are
 * the pointers this process uses, and a pointer names its device
 * (DESIGN.md principle 6).
 *
 * Address windows.  A window is mapped PROT_NONE with MAP_NORESERVE when the
 * first context for it opens: it costs address space, not memory.  Contexts
 * with the same (base, size) share it (all sessions of one broker machine
 * use the same window); it is unmapped when the last one closes.  An
 * allocation makes its pages read-write; freeing gives the pages back
 * (MADV_DONTNEED) and makes them PROT_NONE again, so a stale pointer faults
 * in the agent instead of reading someone else's data.
 *
 * Allocations.  Each window keeps its allocations in an array sorted by
 * address: lookups are binary searches (O(log n)); placement is first-fit
 * from a moving hint, which in a 512 GiB window almost always succeeds at
 * the hint.  Every allocation is page-aligned (more than CUDA's 256 bytes)
 * and owns whole pages, so freeing one never touches a neighbour's.
 * Allocations belong to the context that made them: another context's
 * pointer is as invalid as a random one.
 *
 * Pinning.  A copy runs without the window lock (it may take a second), so
 * the allocations it touches are pinned first.  cudaFree of a pinned
 * allocation marks it freed at once (later lookups and frees fail) but the
 * pages are released only when the last pin goes; until then the range
 * stays reserved in the table so nothing new is placed on it.  Two lanes
 * racing a copy against a free therefore get CUDA errors, never a fault.
 *
 * Locks: emu->mu guards the window list and the memory accounting;
 * window->mu guards that window's table.  They are never held together.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

#include <driver_types.h>

#include "agent.h"
#include "backend.h"
#include "emu_int.h"

static uint64_t page_up(uint64_t n)
{
  return (n + EMU_PAGE - 1) & ~(EMU_PAGE - 1);
}

/* ---- allocation table (w->mu held) ------------------------------------ */

/* The allocation a range of the window's table belongs to (its first
   member), or NULL. */
static struct emu_alloc *alloc_of(struct agt_range *r)
{
  return (struct emu_alloc *)r;
}

/* ---- accounting (takes emu->mu) ---------------------------------------- */

static bool account(struct emu *e, uint64_t span)
{
  bool ok;

  pthread_mutex_lock(&e->mu);
  ok = span <= e->total - e->used;
  if (ok)
    e->used += span;
  pthread_mutex_unlock(&e->mu);
  return ok;
}

static void unaccount(struct emu *e, uint64_t span)
{
  pthread_mutex_lock(&e->mu);
  e->used -= span;
  pthread_mutex_unlock(&e->mu);
}

/*
 * Give an allocation's pages back and drop it from the table.  Called
 * without w->mu, once the allocation is freed and unpinned: nobody else can
 * reach it, but its entry still reserves the range until removed here.
 */
static void release(struct emu *e, struct emu_window *w, struct emu_alloc *al)
{
  void *p = (void *)(uintptr_t)al->r.addr;

  /* Both only fail for ranges we did not map, which cannot be. */
  (void)madvise(p, al->r.len, MADV_DONTNEED);
  (void)mprotect(p, al->r.len, PROT_NONE);
  pthread_mutex_lock(&w->mu);
  agt_rt_remove(&w->t, &al->r);
  pthread_mutex_unlock(&w->mu);
  unaccount(e, al->r.len);
  free(al);
}

/*
 * Pin the live allocation of c that holds [a, a + len) whole.  NULL if
 * there is none (not c's, freed, or the range crosses its end).
 */
struct emu_alloc *emu_pin(struct agt_bctx *c, uint64_t a, uint64_t len)
{
  struct emu_window *w = c->w;
  struct emu_alloc *al;

  pthread_mutex_lock(&w->mu);
  al = alloc_of(agt_rt_containing(&w->t, a));
  if (al && (al->freed || al->owner != c || a - al->r.addr > al->size ||
             len > al->size - (a - al->r.addr)))
    al = NULL;
  if (al)
    al->pins++;
  pthread_mutex_unlock(&w->mu);
  return al;
}

void emu_unpin(struct agt_bctx *c, struct emu_alloc *al)
{
  bool gone;

  pthread_mutex_lock(&c->w->mu);
  gone = --al->pins == 0 && al->freed;
  pthread_mutex_unlock(&c->w->mu);
  if (gone)
    release(c->emu, c->w, al);
}

/* ---- memory operations ------------------------------------------------- */

uint32_t emu_mem_alloc(struct agt_bctx *c, uint64_t size, uint64_t *dptr)
{
  struct emu_window *w = c->w;
  struct emu_alloc *al;
  uint64_t span, a;

  *dptr = 0;
  if (size == 0)
    return cudaSuccess; /* cudaMalloc(&p, 0): success, p = NULL */
  if (size > c->emu->total || size > w->win.size || size > AGT_USER_TOP)
    return cudaErrorMemoryAllocation;
  span = page_up(size);
  if (!account(c->emu, span))
    return cudaErrorMemoryAllocation;
  al = calloc(1, sizeof(*al));
  if (!al)
    goto out_unaccount;
  al->size = size;
  al->r.len = span;
  al->owner = c;

  pthread_mutex_lock(&w->mu);
  a = agt_rt_gap(&w->t, w->hint, w->win.base + w->win.size, span);
  if (!a)
    a = agt_rt_gap(&w->t, w->win.base, w->win.base + w->win.size, span);
  if (!a)
    goto out_unlock; /* window fragmented or full */
  al->r.addr = a;
  /* Under the lock: nobody may find the entry before its pages exist. */
  if (mprotect((void *)(uintptr_t)a, span, PROT_READ | PROT_WRITE) < 0)
    goto out_unlock;
  if (agt_rt_insert(&w->t, &al->r) < 0) {
    (void)mprotect((void *)(uintptr_t)a, span, PROT_NONE);
    goto out_unlock;
  }
  w->hint = a + span;
  pthread_mutex_unlock(&w->mu);
  *dptr = a;
  return cudaSuccess;

out_unlock:
  pthread_mutex_unlock(&w->mu);
  free(al);
out_unaccount:
  unaccount(c->emu, span);
  return cudaErrorMemoryAllocation;
}

uint32_t emu_mem_free(struct agt_bctx *c, uint64_t dptr)
{
  struct emu_window *w = c->w;
  struct emu_alloc *al;
  bool now;

  if (dptr == 0)
    return cudaSuccess;
  pthread_mutex_lock(&w->mu);
  al = alloc_of(agt_rt_containing(&w->t, dptr));
  if (!al || al->r.addr != dptr || al->freed || al->owner != c) {
    pthread_mutex_unlock(&w->mu);
    return cudaErrorInvalidValue;
  }
  al->freed = true;
  now = al->pins == 0;
  pthread_mutex_unlock(&w->mu);
  if (now)
    release(c->emu, w, al);
  return cudaSuccess;
}

static uint32_t emu_mem_check(struct agt_bctx *c, uint64_t dptr, uint64_t len)
{
  struct emu_alloc *al = emu_pin(c, dptr, len);

  if (!al)
    return cudaErrorInvalidValue;
  emu_unpin(c, al);
  return cudaSuccess;
}

static void *emu_mem_pin(struct agt_bctx *c, uint64_t dptr, uint64_t len,
                         void **pinp)
{
  struct emu_alloc *al;

  if (len == 0)
    return NULL;
  al = emu_pin(c, dptr, len);
  if (!al)
    return NULL;
  *pinp = al;
  /* Emulated device memory is host memory at the device address. */
  return (void *)(uintptr_t)dptr;
}

static void emu_mem_unpin(struct agt_bctx *c, void *p)
{
  emu_unpin(c, p);
}

static uint32_t emu_copy_h2d(struct agt_bctx *c, uint64_t dst, const void *src,
                             uint64_t len)
{
  struct emu_alloc *al;

  if (len == 0)
    return cudaSuccess;
  al = emu_pin(c, dst, len);
  if (!al)
    return cudaErrorInvalidValue;
  memcpy((void *)(uintptr_t)dst, src, len);
  emu_unpin(c, al);
  return cudaSuccess;
}

static uint32_t emu_copy_d2h(struct agt_bctx *c, void *dst, uint64_t src,
                             uint64_t len)
{
  struct emu_alloc *al;

  if (len == 0)
    return cudaSuccess;
  al = emu_pin(c, src, len);
  if (!al)
    return cudaErrorInvalidValue;
  memcpy(dst, (const void *)(uintptr_t)src, len);
  emu_unpin(c, al);
  return cudaSuccess;
}

static uint32_t emu_copy_d2d(struct agt_bctx *c, uint64_t dst, uint64_t src,
                             uint64_t len)
{
  struct emu_alloc *ad, *as;

  if (len == 0)
    return cudaSuccess;
  ad = emu_pin(c, dst, len);
  if (!ad)
    return cudaErrorInvalidValue;
  as = emu_pin(c, src, len);
  if (!as) {
    emu_unpin(c, ad);
    return cudaErrorInvalidValue;
  }
  /* Overlap is undefined in CUDA; memmove makes it at least harmless. */
  memmove((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, len);
  emu_unpin(c, as);
  emu_unpin(c, ad);
  return cudaSuccess;
}

static uint32_t emu_memset_d8(struct agt_bctx *c, uint64_t dst, uint8_t value,
                              uint64_t len)
{
  struct emu_alloc *al;

  if (len == 0)
    return cudaSuccess;
  al = emu_pin(c, dst, len);
  if (!al)
    return cudaErrorInvalidValue;
  memset((void *)(uintptr_t)dst, value, len);
  emu_unpin(c, al);
  return cudaSuccess;
}

static void emu_dev_mem_info(struct agt_backend *b, uint64_t *free_b,
                             uint64_t *total)
{
  struct emu *e = (struct emu *)b;

  pthread_mutex_lock(&e->mu);
  *free_b = e->total - e->used;
  *total = e->total;
  pthread_mutex_unlock(&e->mu);
}

static uint32_t emu_mem_info(struct agt_bctx *c, uint64_t *free_b,
                             uint64_t *total)
{
  struct emu *e = c->emu;

  pthread_mutex_lock(&e->mu);
  *free_b = e->total - e->used;
  *total = e->total;
  pthread_mutex_unlock(&e->mu);
  return cudaSuccess;
}

static uint32_t emu_synchronize(struct agt_bctx *c)
{
  /* Everything the emulator does is finished when its call returns. */
  return cudaSuccess;
}

/* ---- contexts and windows ---------------------------------------------- */

static int window_check(uint64_t base, uint64_t size, const char **why)
{
  if (size == 0 || base % EMU_PAGE || size % EMU_PAGE) {
    *why = "address window must be non-empty and page-aligned";
    return -EINVAL;
  }
  return agt_win_check(base, size, why);
}

static int emu_ctx_open(struct agt_backend *b, uint64_t base, uint64_t size,
                        struct agt_bctx **out, const char **why)
{
  struct emu *e = (struct emu *)b;
  struct emu_window *w;
  struct agt_window *found;
  struct agt_bctx *c;
  void *p;
  int rc;

  rc = window_check(base, size, why);
  if (rc < 0)
    return rc;
  c = calloc(1, sizeof(*c));
  if (!c) {
    *why = "out of memory";
    return -ENOMEM;
  }
  c->emu = e;

  pthread_mutex_lock(&e->mu);
  rc = agt_win_find(e->windows, base, size, &found, why);
  if (rc < 0)
    goto out_unlock;
  if (found) {
    w = (struct emu_window *)found;
    goto out_done;
  }
  w = calloc(1, sizeof(*w));
  if (!w) {
    *why = "out of memory";
    rc = -ENOMEM;
    goto out_unlock;
  }
  /*
   * MAP_FIXED_NOREPLACE: never clobber what is there (our heap, a library).
   * Kernels older than 4.17 treat it as a hint, hence the address check.
   */
  p = mmap((void *)(uintptr_t)base, size, PROT_NONE,
           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE,
           -1, 0);
  if (p == MAP_FAILED || p != (void *)(uintptr_t)base) {
    if (p != MAP_FAILED)
      munmap(p, size);
    free(w);
    *why = "address window is already in use in the agent process";
    rc = -EEXIST;
    goto out_unlock;
  }
  pthread_mutex_init(&w->mu, NULL);
  w->hint = base;
  agt_win_add(&e->windows, &w->win, base, size);
out_done:
  pthread_mutex_unlock(&e->mu);
  c->w = w;
  *out = c;
  return 0;

out_unlock:
  pthread_mutex_unlock(&e->mu);
  free(c);
  return rc;
}

static void emu_ctx_close(struct agt_bctx *c)
{
  struct emu *e = c->emu;
  struct emu_window *w = c->w;
  struct emu_alloc **mine = NULL;
  size_t n = 0;
  bool last;

  /* Collect this context's allocations; no call on c runs any more, so
     none of them is pinned. */
  pthread_mutex_lock(&w->mu);
  mine = malloc((w->t.n ? w->t.n : 1) * sizeof(*mine));
  for (size_t i = 0; i < w->t.n; i++) {
    struct emu_alloc *al = alloc_of(w->t.tab[i]);

    if (al->owner == c && !al->freed) {
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
      struct emu_alloc *al = NULL;

      pthread_mutex_lock(&w->mu);
      for (size_t i = 0; i < w->t.n && !al; i++) {
        if (alloc_of(w->t.tab[i])->owner == c)
          al = alloc_of(w->t.tab[i]);
      }
      pthread_mutex_unlock(&w->mu);
      if (!al)
        break;
      release(e, w, al);
    }
  }
  for (size_t i = 0; i < n; i++)
    release(e, w, mine[i]);
  free(mine);

  pthread_mutex_lock(&e->mu);
  last = agt_win_put(&e->windows, &w->win);
  if (last) {
    /* Unmapped before the lock goes: a session opening the same window
       meanwhile must find it either listed or gone, never a mapping that
       is no longer listed (its mmap would fail: "already in use"). */
    munmap((void *)(uintptr_t)w->win.base, w->win.size);
  }
  pthread_mutex_unlock(&e->mu);
  if (last) {
    pthread_mutex_destroy(&w->mu);
    agt_rt_release(&w->t);
    free(w);
  }
  free(c);
}

/* ---- the device -------------------------------------------------------- */

static void emu_devinfo(struct agt_backend *b, struct tr_devinfo *d)
{
  *d = ((struct emu *)b)->info;
}

static void emu_destroy(struct agt_backend *b)
{
  struct emu *e = (struct emu *)b;

  /* Every context is closed, so every window is gone. */
  emu_kernels_release(e);
  pthread_mutex_destroy(&e->mu);
  free(e);
}

static const struct agt_backend_ops emu_ops = {
  .name = "emu",
  .destroy = emu_destroy,
  .devinfo = emu_devinfo,
  .ctx_open = emu_ctx_open,
  .ctx_close = emu_ctx_close,
  .mem_alloc = emu_mem_alloc,
  .mem_free = emu_mem_free,
  .mem_check = emu_mem_check,
  .mem_pin = emu_mem_pin,
  .mem_unpin = emu_mem_unpin,
  .copy_h2d = emu_copy_h2d,
  .copy_d2h = emu_copy_d2h,
  .copy_d2d = emu_copy_d2d,
  .memset_d8 = emu_memset_d8,
  .mem_info = emu_mem_info,
  .dev_mem_info = emu_dev_mem_info,
  .synchronize = emu_synchronize,
  .module_load = emu_module_load,
  .module_unload = emu_module_unload,
  .function_get = emu_function_get,
  .symbol_get = emu_symbol_get,
  .function_attrs = emu_function_attrs,
  .launch = emu_launch,
};

/*
 * What the emulated device reports: an A100-like part of compute
 * capability 8.0 unless configured otherwise (programs read it before any
 * module loads, and PTX for a newer target does not load), with the host's
 * core count as multiprocessors: each worker thread runs one block at a
 * time, as a multiprocessor would.  Features the
 * emulator does not provide (managed memory, memory pools, host-native
 * atomics) are reported as absent so programs take their fallback paths.
 */
static void fill_attrs(struct tr_devinfo *d, unsigned sm_count, unsigned cc)
{
  static const struct {
    uint32_t attr;
    int32_t value;
  } fixed[] = {
    {cudaDevAttrMaxThreadsPerBlock, 1024},
    {cudaDevAttrMaxBlockDimX, 1024},
    {cudaDevAttrMaxBlockDimY, 1024},
    {cudaDevAttrMaxBlockDimZ, 64},
    {cudaDevAttrMaxGridDimX, 2147483647},
    {cudaDevAttrMaxGridDimY, 65535},
    {cudaDevAttrMaxGridDimZ, 65535},
    {cudaDevAttrMaxSharedMemoryPerBlock, 49152},
    {cudaDevAttrTotalConstantMemory, 65536},
    {cudaDevAttrWarpSize, 32},
    {cudaDevAttrMaxPitch, 2147483647},
    {cudaDevAttrMaxRegistersPerBlock, 65536},
    {cudaDevAttrClockRate, 1410000},
    {cudaDevAttrTextureAlignment, 512},
    {cudaDevAttrGpuOverlap, 1},
    {cudaDevAttrKernelExecTimeout, 0},
    {cudaDevAttrIntegrated, 0},
    /* The device is on another machine: it cannot address host memory. */
    {cudaDevAttrCanMapHostMemory, 0},
    {cudaDevAttrComputeMode, 0},
    {cudaDevAttrMaxTexture1DWidth, 131072},
    {cudaDevAttrMaxTexture2DWidth, 131072},
    {cudaDevAttrMaxTexture2DHeight, 65536},
    {cudaDevAttrMaxTexture3DWidth, 16384},
    {cudaDevAttrMaxTexture3DHeight, 16384},
    {cudaDevAttrMaxTexture3DDepth, 16384},
    {cudaDevAttrSurfaceAlignment, 512},
    {cudaDevAttrConcurrentKernels, 1},
    {cudaDevAttrEccEnabled, 0},
    {cudaDevAttrPciBusId, 0},
    {cudaDevAttrPciDeviceId, 0},
    {cudaDevAttrPciDomainId, 0},
    {cudaDevAttrTccDriver, 0},
    {cudaDevAttrMemoryClockRate, 1215000},
    {cudaDevAttrGlobalMemoryBusWidth, 5120},
    {cudaDevAttrL2CacheSize, 40 << 20},
    {cudaDevAttrMaxThreadsPerMultiProcessor, 2048},
    {cudaDevAttrAsyncEngineCount, 2},
    {cudaDevAttrUnifiedAddressing, 1},
    {cudaDevAttrTexturePitchAlignment, 32},
    {cudaDevAttrStreamPrioritiesSupported, 1},
    {cudaDevAttrGlobalL1CacheSupported, 1},
    {cudaDevAttrLocalL1CacheSupported, 1},
    {cudaDevAttrMaxSharedMemoryPerMultiprocessor, 167936},
    {cudaDevAttrMaxRegistersPerMultiprocessor, 65536},
    /* Managed memory, as the shim provides it: no concurrent access
       (the host touches it only after a synchronisation). */
    {cudaDevAttrManagedMemory, 1},
    {cudaDevAttrIsMultiGpuBoard, 0},
    {cudaDevAttrMultiGpuBoardGroupID, 0},
    {cudaDevAttrHostNativeAtomicSupported, 0},
    {cudaDevAttrSingleToDoublePrecisionPerfRatio, 2},
    {cudaDevAttrPageableMemoryAccess, 0},
    {cudaDevAttrConcurrentManagedAccess, 0},
    {cudaDevAttrComputePreemptionSupported, 1},
    {cudaDevAttrCanUseHostPointerForRegisteredMem, 0},
    /* Grid-wide synchronisation is not emulated (blocks run a few at a
       time, and a grid barrier needs them all resident), so a cooperative
       launch, whose point it is, is refused at once rather than trapping
       in the kernel. */
    {cudaDevAttrCooperativeLaunch, 0},
    {cudaDevAttrMaxSharedMemoryPerBlockOptin, 166912},
    {cudaDevAttrCanFlushRemoteWrites, 0},
    {cudaDevAttrHostRegisterSupported, 1},
    {cudaDevAttrPageableMemoryAccessUsesHostPageTables, 0},
    {cudaDevAttrDirectManagedMemAccessFromHost, 0},
    {cudaDevAttrMaxBlocksPerMultiprocessor, 32},
    {cudaDevAttrMaxPersistingL2CacheSize, 30 << 20},
    {cudaDevAttrMaxAccessPolicyWindowSize, 134213632},
    {cudaDevAttrReservedSharedMemoryPerBlock, 1024},
    {cudaDevAttrSparseCudaArraySupported, 0},
    {cudaDevAttrHostRegisterReadOnlySupported, 0},
    {cudaDevAttrMemoryPoolsSupported, 0},
    {cudaDevAttrGPUDirectRDMASupported, 0},
    {cudaDevAttrClusterLaunch, 0},
    {cudaDevAttrIpcEventSupport, 0},
    {cudaDevAttrMpsEnabled, 0},
  };
  unsigned n = 0;

  d->attr[n].attr = cudaDevAttrMultiProcessorCount;
  d->attr[n++].value = (int32_t)(sm_count ? sm_count : 1);
  d->attr[n].attr = cudaDevAttrComputeCapabilityMajor;
  d->attr[n++].value = (int32_t)(cc / 10);
  d->attr[n].attr = cudaDevAttrComputeCapabilityMinor;
  d->attr[n++].value = (int32_t)(cc % 10);
  for (unsigned i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
    d->attr[n].attr = fixed[i].attr;
    d->attr[n++].value = fixed[i].value;
  }
  d->nattr = n;
}

int agt_emu_new(const struct agt_emu_config *cfg, struct agt_backend **out)
{
  struct emu *e = calloc(1, sizeof(*e));
  size_t got = 0;
  int rc;

  if (!e)
    return -ENOMEM;
  e->b.ops = &emu_ops;
  pthread_mutex_init(&e->mu, NULL);
  e->total = cfg->mem;
  e->cc = cfg->cc ? cfg->cc : 80;
  e->sm_count = cfg->sm_count ? cfg->sm_count : 1;
  e->watchdog_ms = cfg->watchdog_ms;
  rc = emu_kernels_init(e, cfg->workers);
  if (rc < 0) {
    pthread_mutex_destroy(&e->mu);
    free(e);
    return rc;
  }
  e->info.total_mem = cfg->mem;
  e->info.caps = TR_CAP_EXEC;
  snprintf(e->info.name, sizeof(e->info.name), "%s", cfg->name);
  /* A fresh uuid per start: the broker must not mistake a restarted agent
     (with all memory gone) for the one it knew. */
  while (got < sizeof(e->info.uuid)) {
    ssize_t r = getrandom(e->info.uuid + got, sizeof(e->info.uuid) - got, 0);

    if (r < 0 && errno != EINTR) {
      /* No entropy source at all: time and pid still tell starts apart. */
      uint64_t t = agt_now_ms() ^ ((uint64_t)getpid() << 32);

      memcpy(e->info.uuid, &t, sizeof(t));
      break;
    }
    if (r > 0)
      got += (size_t)r;
  }
  /* RFC 4122 version 4 layout, as CUDA's uuids look. */
  e->info.uuid[6] = (uint8_t)((e->info.uuid[6] & 0x0f) | 0x40);
  e->info.uuid[8] = (uint8_t)((e->info.uuid[8] & 0x3f) | 0x80);
  fill_attrs(&e->info, e->sm_count, e->cc);
  *out = &e->b;
  return 0;
}
