/*
 * shim_memory.c: cudaMalloc, cudaFree, cudaMemcpy, cudaMemset.
 *
 * A device pointer names its device: it lies in that device's address
 * window (docs/ARCHITECTURE.md), so cudaMemcpyDefault needs no lookup
 * table and a pointer of the wrong device is caught here.
 *
 * Bulk copies are cut into chunks of at most TR_CHUNK_MAX bytes.  Host to
 * device: every chunk but the last goes without a reply and the last waits
 * for one, so a copy of any size is one round trip and the broker only
 * ever holds a few chunks.  Device to host: one request; the agent streams
 * the bytes back in chunk-sized replies that land in the download area.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "shim.h"

/* ---- the program's allocations ------------------------------------------ */

/*
 * Every cudaMalloc'd range, sorted by address, so that a blocking copy or
 * memset whose whole range lies in live allocations can skip waiting for
 * its reply: CUDA lets cudaMemcpy from pageable memory, cudaMemcpy between
 * device buffers and cudaMemset return before the device is done, and the
 * one error they could give at once (a range outside every allocation) is
 * known here.  Anything not found here (symbols, freed memory, a bad
 * pointer, managed memory, which cudaMallocManaged takes out of the table)
 * still waits for the agent's verdict.  A range freed with
 * cudaFreeAsync leaves the table at once, which errs on the side of
 * waiting.
 */
struct alloc {
  uint64_t base, size;
  int pooled; /* from cudaMallocAsync: counted in its device's pool */
};

static pthread_mutex_t alloc_lock = PTHREAD_MUTEX_INITIALIZER;
static struct alloc *allocs;
static size_t nallocs, alloc_cap;

/* Index of the first allocation whose base is > a (alloc_lock held). */
static size_t alloc_upper(uint64_t a)
{
  size_t lo = 0, hi = nallocs;

  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;

    if (allocs[mid].base <= a)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static void alloc_add(uint64_t base, uint64_t size)
{
  size_t i;

  pthread_mutex_lock(&alloc_lock);
  if (nallocs == alloc_cap) {
    size_t cap = alloc_cap ? alloc_cap * 2 : 64;
    struct alloc *a = realloc(allocs, cap * sizeof(*a));

    if (!a) { /* not fatal: copies to it just wait for their reply */
      pthread_mutex_unlock(&alloc_lock);
      return;
    }
    allocs = a;
    alloc_cap = cap;
  }
  i = alloc_upper(base);
  memmove(allocs + i + 1, allocs + i, (nallocs - i) * sizeof(*allocs));
  allocs[i] = (struct alloc){base, size, 0};
  nallocs++;
  pthread_mutex_unlock(&alloc_lock);
}

uint64_t shim_alloc_forget_range(const void *p, int *pooled)
{
  uint64_t a = (uint64_t)(uintptr_t)p, size = 0;
  size_t i;

  if (pooled)
    *pooled = 0;
  pthread_mutex_lock(&alloc_lock);
  i = alloc_upper(a);
  if (i > 0 && allocs[i - 1].base == a) {
    size = allocs[i - 1].size;
    if (pooled)
      *pooled = allocs[i - 1].pooled;
    memmove(allocs + i - 1, allocs + i, (nallocs - i) * sizeof(*allocs));
    nallocs--;
  }
  pthread_mutex_unlock(&alloc_lock);
  return size;
}

void shim_alloc_set_pooled(const void *p)
{
  uint64_t a = (uint64_t)(uintptr_t)p;
  size_t i;

  pthread_mutex_lock(&alloc_lock);
  i = alloc_upper(a);
  if (i > 0 && allocs[i - 1].base == a)
    allocs[i - 1].pooled = 1;
  pthread_mutex_unlock(&alloc_lock);
}

int shim_alloc_covers(const void *p, size_t n)
{
  uint64_t a = (uint64_t)(uintptr_t)p;
  size_t i;
  int in = 0;

  pthread_mutex_lock(&alloc_lock);
  i = alloc_upper(a);
  if (i > 0 && a - allocs[i - 1].base < allocs[i - 1].size &&
      n <= allocs[i - 1].size - (a - allocs[i - 1].base))
    in = 1;
  pthread_mutex_unlock(&alloc_lock);
  return in;
}

void shim_alloc_forget_all(void)
{
  pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;

  alloc_lock = fresh; /* fork child: one thread, the lock may be stale */
  free(allocs);
  allocs = NULL;
  nallocs = alloc_cap = 0;
}

/* ---- allocation ------------------------------------------------------------ */

cudaError_t cudaMalloc(void **ptr, size_t size)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);
  uint8_t args[8], out[8];
  uint64_t got = 0;
  int rc;

  if (e != cudaSuccess)
    return shim_fail(t, e);
  if (!ptr)
    return shim_fail(t, cudaErrorInvalidValue);
  tr_put_u64(args, size);
  rc = shim_call(t, t->device, TR_OP_MALLOC, args, 8, NULL, 0, 1, out,
                 sizeof(out), &got);
  if (rc == 0 && got != 8)
    rc = TR_ST_BAD_RECORD;
  if (got == 8) {
    /* Allocated, also when the status tells an earlier call's deferred
       error (the payload is this call's pointer then, TR_F_DEFERRED):
       the program may use or free it. */
    *ptr = (void *)(uintptr_t)tr_get_u64(out);
    if (size)
      alloc_add((uint64_t)(uintptr_t)*ptr, size);
  }
  if (rc)
    return shim_cuda_error(t, rc);
  return cudaSuccess;
}

cudaError_t cudaFree(void *ptr)
{
  struct shim_thread *t;
  cudaError_t e;
  uint8_t args[8];
  uint64_t size;
  int dev, rc, pooled;

  /* cudaFree(NULL) is the classic "initialise the context" call: it must
     succeed without touching anything. */
  e = shim_ready(&t);
  if (e != cudaSuccess)
    return shim_fail(t, e);
  if (!ptr)
    return cudaSuccess;
  dev = shim_device_of(ptr);
  if (dev < 0)
    return shim_fail(t, cudaErrorInvalidValue);
  /* cudaFree waits for the device's work, as in CUDA: work queued on
     streams (lanes of their own, this thread's or another's) may still use
     the memory; the thread's own lane keeps its order anyway. */
  rc = shim_sync_stream_lanes(t);
  if (!rc)
    rc = shim_sync_other_streams(t, dev);
  if (rc)
    return shim_cuda_error(t, rc);
  tr_put_u64(args, (uint64_t)(uintptr_t)ptr);
  size = shim_alloc_forget_range(ptr, &pooled); /* no later copy may skip
                                                   its reply */
  if (pooled)
    shim_pool_freed(dev, size);
  e = shim_cuda_error(t, shim_call(t, dev, TR_OP_FREE, args, 8, NULL, 0, 1,
                                   NULL, 0, NULL));
  /* Freed also when the reply told an earlier call's error (call_ok):
     a managed record kept then would be downloaded at every later
     synchronisation, from memory that is gone. */
  if (e == cudaSuccess || t->call_ok)
    (void)shim_managed_forget(ptr);
  return e;
}

/*
 * Chunks of at least this size to or from page-locked memory the broker
 * shares (a region) go by reference instead of through the lane's areas:
 * one copy fewer.  Smaller ones are cheaper inline.
 */
#define REGION_MIN (64u << 10)

/* async: no chunk waits for a reply (cudaMemcpyAsync); pageable bytes are
   captured at enqueue, as CUDA does.  Chunks from a region are read by the
   broker when it sends them, which CUDA's rule for page-locked sources
   (not to be changed until the copy has run) allows. */
static int copy_h2d(struct shim_thread *t, int dev, uint64_t dst,
                    const uint8_t *src, size_t n, int async)
{
  uint8_t args[16 + TR_SHMREF_SIZE];
  struct tr_shmref ref;
  size_t off = 0;
  int region, rc;

  region = n >= REGION_MIN && shim_host_region(src, n, &ref.area, &ref.pos);
  /* Pageable bytes are captured at enqueue, so a blocking copy into live
     memory has nothing left to wait for; page-locked ones are read later,
     and a blocking copy from them waits until they were. */
  if (!region && shim_alloc_covers((void *)(uintptr_t)dst, n))
    async = 1;
  do {
    size_t len = n - off < TR_CHUNK_MAX ? n - off : TR_CHUNK_MAX;
    int last = off + len == n;

    tr_put_u64(args, dst + off);
    tr_put_u64(args + 8, len);
    if (region) {
      struct tr_shmref r = {ref.area, ref.pos + off, len};

      tr_shmref_pack(&r, args + 16);
      rc = shim_call_flags(t, dev, TR_OP_MEMCPY_H2D, TR_F_SHMREF, args,
                           sizeof(args), NULL, 0, last && !async, NULL, 0,
                           NULL);
    } else {
      rc = shim_call(t, dev, TR_OP_MEMCPY_H2D, args, 16, src + off,
                     (uint32_t)len, last && !async, NULL, 0, NULL);
    }
    if (rc)
      return rc;
    off += len;
  } while (off < n);
  return 0;
}

/*
 * Into a region the broker writes the bytes where they belong (TR_F_DEST),
 * so an asynchronous copy there returns at once, as in CUDA, and its
 * replies are taken by a later call (shim_call_async).  Elsewhere the
 * bytes come through the download area, and the copy waits for them even
 * when asked to be asynchronous, as CUDA does for pageable memory.
 */
static int copy_d2h(struct shim_thread *t, int dev, uint8_t *dst, uint64_t src,
                    size_t n, int async)
{
  uint8_t args[16 + TR_SHMREF_SIZE];
  struct tr_shmref ref = {0};
  uint64_t got = 0;
  int rc;

  tr_put_u64(args, src);
  tr_put_u64(args + 8, n);
  if (n >= REGION_MIN && shim_host_region(dst, n, &ref.area, &ref.pos)) {
    ref.len = n;
    tr_shmref_pack(&ref, args + 16);
    /* Only from live allocations (a bad source is refused at once), and
       not so large that its replies alone would crowd the reply ring. */
    if (async && n <= (uint64_t)SHIM_PEND_RECORDS / 2 * TR_CHUNK_MAX &&
        shim_alloc_covers((void *)(uintptr_t)src, n))
      return shim_call_async(t, dev, TR_OP_MEMCPY_D2H, TR_F_DEST, args,
                             sizeof(args), n);
    rc = shim_call_flags(t, dev, TR_OP_MEMCPY_D2H, TR_F_DEST, args,
                         sizeof(args), NULL, 0, 1, dst, n, &got);
  } else {
    rc = shim_call(t, dev, TR_OP_MEMCPY_D2H, args, 16, NULL, 0, 1, dst, n,
                   &got);
  }
  if (rc == 0 && got != n)
    rc = TR_ST_BAD_RECORD;
  return rc;
}

cudaError_t shim_memcpy(struct shim_thread *t, void *dst, const void *src,
                        size_t count, enum cudaMemcpyKind kind, int async)
{
  int ddev, sdev, rc;

  rc = shim_managed_before_device(t);
  if (rc)
    return shim_cuda_error(t, rc);
  if (count == 0)
    return cudaSuccess;
  if (!dst || !src)
    return shim_fail(t, cudaErrorInvalidValue);
  ddev = shim_device_of(dst);
  sdev = shim_device_of(src);
  switch (kind) {
  case cudaMemcpyHostToHost:
    if (ddev >= 0 || sdev >= 0)
      return shim_fail(t, cudaErrorInvalidValue);
    memmove(dst, src, count);
    return cudaSuccess;
  case cudaMemcpyHostToDevice:
    if (ddev < 0 || sdev >= 0)
      return shim_fail(t, cudaErrorInvalidValue);
    break;
  case cudaMemcpyDeviceToHost:
    if (sdev < 0 || ddev >= 0)
      return shim_fail(t, cudaErrorInvalidValue);
    break;
  case cudaMemcpyDeviceToDevice:
    if (sdev < 0 || ddev < 0)
      return shim_fail(t, cudaErrorInvalidValue);
    break;
  case cudaMemcpyDefault:
    break;
  default:
    return shim_fail(t, cudaErrorInvalidMemcpyDirection);
  }
  if (ddev >= 0 && sdev >= 0) {
    uint8_t args[24];

    if (ddev != sdev)
      return shim_wrong_device(t, "cudaMemcpy", src, sdev, ddev);
    tr_put_u64(args, (uint64_t)(uintptr_t)dst);
    tr_put_u64(args + 8, (uint64_t)(uintptr_t)src);
    tr_put_u64(args + 16, count);
    rc = shim_call(t, ddev, TR_OP_MEMCPY_D2D, args, 24, NULL, 0,
                   !async && !(shim_alloc_covers(dst, count) &&
                               shim_alloc_covers(src, count)),
                   NULL, 0, NULL);
  } else if (ddev >= 0) {
    rc = copy_h2d(t, ddev, (uint64_t)(uintptr_t)dst, src, count, async);
  } else if (sdev >= 0) {
    rc = copy_d2h(t, sdev, dst, (uint64_t)(uintptr_t)src, count, async);
  } else {
    memmove(dst, src, count);
    rc = 0;
  }
  /* A blocking copy is a synchronisation point: managed memory comes
     back (the copy itself may have written it). */
  if (!async)
    rc = shim_managed_after(t, rc, t->call_ok);
  return shim_cuda_error(t, rc);
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t count,
                       enum cudaMemcpyKind kind)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);

  struct shim_stream *s;

  if (e != cudaSuccess)
    return shim_fail(t, e);
  /* The legacy stream: after its host functions (shim_stream.c). */
  e = shim_stream_use(t, NULL, &s);
  if (e != cudaSuccess)
    return shim_fail(t, e);
  e = shim_memcpy(t, dst, src, count, kind, 0);
  shim_stream_mark(t, NULL); /* for other threads' legacy work */
  return e;
}

cudaError_t shim_memset(struct shim_thread *t, void *ptr, int value,
                        size_t count, int async)
{
  uint8_t args[20];
  int dev, rc;

  rc = shim_managed_before_device(t);
  if (rc)
    return shim_cuda_error(t, rc);
  if (count == 0)
    return cudaSuccess;
  dev = shim_device_of(ptr);
  if (dev < 0)
    return shim_fail(t, cudaErrorInvalidValue);
  tr_put_u64(args, (uint64_t)(uintptr_t)ptr);
  tr_put_u64(args + 8, count);
  tr_put_u32(args + 16, (uint32_t)value & 0xff);
  return shim_cuda_error(t, shim_call(t, dev, TR_OP_MEMSET, args, 20, NULL, 0,
                                      !async && !shim_alloc_covers(ptr, count),
                                      NULL, 0, NULL));
}

cudaError_t cudaMemset(void *ptr, int value, size_t count)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);

  struct shim_stream *s;

  if (e != cudaSuccess)
    return shim_fail(t, e);
  e = shim_stream_use(t, NULL, &s);
  if (e != cudaSuccess)
    return shim_fail(t, e);
  e = shim_memset(t, ptr, value, count, 0);
  shim_stream_mark(t, NULL); /* for other threads' legacy work */
  return e;
}

cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);
  uint8_t out[16];
  uint64_t got = 0;
  int rc;

  if (e != cudaSuccess)
    return shim_fail(t, e);
  if (!free_b || !total)
    return shim_fail(t, cudaErrorInvalidValue);
  rc = shim_call(t, t->device, TR_OP_MEM_GET_INFO, NULL, 0, NULL, 0, 1, out,
                 sizeof(out), &got);
  if (rc == 0 && got != sizeof(out))
    rc = TR_ST_BAD_RECORD;
  if (rc)
    return shim_cuda_error(t, rc);
  *free_b = (size_t)tr_get_u64(out);
  *total = (size_t)tr_get_u64(out + 8);
  return cudaSuccess;
}

/* ---- managed memory -------------------------------------------------------- */

/*
 * cudaMallocManaged.  The device is another machine, so managed memory is
 * two copies at one address: the device's allocation, and host memory the
 * shim maps at the same address in the program (inside the device's
 * reserved window).  The coherence model is the one CUDA gives devices
 * without concurrent managed access (cudaDevAttrConcurrentManagedAccess is
 * 0, as on pre-Pascal GPUs and Windows):
 *
 *   - the host may touch managed memory only while the device is idle,
 *     i.e. after a synchronisation;
 *   - before the device next works (a launch, a memset, a copy, a graph),
 *     every managed allocation goes up (host -> device);
 *   - at the next synchronisation point after that (cudaDeviceSynchronize,
 *     stream or event synchronisation, a blocking copy) every managed
 *     allocation comes back (device -> host), so device-side writes are
 *     visible on the host after a sync.
 *
 * Whole allocations move each time: simple and always right, and costly
 * for large managed buffers (documented).
 */
struct managed {
  uintptr_t addr;
  size_t size, span;
  int dev;
  struct managed *next;
};

static pthread_mutex_t managed_lock = PTHREAD_MUTEX_INITIALIZER;
static struct managed *managed_list;
static int host_newer;   /* host may have written since the last upload */
static int device_newer; /* device may have written since the last download */

int shim_managed_before_device(struct shim_thread *t)
{
  int rc = 0;

  if (!__atomic_load_n(&managed_list, __ATOMIC_ACQUIRE))
    return 0;
  pthread_mutex_lock(&managed_lock);
  if (host_newer)
    for (struct managed *m = managed_list; m && !rc; m = m->next)
      rc = copy_h2d(t, m->dev, m->addr, (const uint8_t *)m->addr, m->size, 0);
  if (!rc) {
    host_newer = 0;
    device_newer = 1;
  }
  pthread_mutex_unlock(&managed_lock);
  return rc;
}

int shim_managed_after(struct shim_thread *t, int rc, int synced)
{
  if (rc == 0)
    return shim_managed_after_sync(t);
  if (rc > 0 && synced)
    (void)shim_managed_after_sync(t); /* the error to tell is rc */
  return rc;
}

int shim_managed_after_sync(struct shim_thread *t)
{
  int rc = 0;

  if (!__atomic_load_n(&managed_list, __ATOMIC_ACQUIRE))
    return 0;
  pthread_mutex_lock(&managed_lock);
  if (device_newer)
    for (struct managed *m = managed_list; m && !rc; m = m->next)
      rc = copy_d2h(t, m->dev, (uint8_t *)m->addr, m->addr, m->size, 0);
  if (!rc) {
    device_newer = 0;
    host_newer = 1;
  }
  pthread_mutex_unlock(&managed_lock);
  return rc;
}

int shim_managed_of(const void *p)
{
  uintptr_t a = (uintptr_t)p;
  int found = 0;

  if (!__atomic_load_n(&managed_list, __ATOMIC_ACQUIRE))
    return 0;
  pthread_mutex_lock(&managed_lock);
  for (struct managed *m = managed_list; m && !found; m = m->next)
    found = a >= m->addr && a - m->addr < m->size;
  pthread_mutex_unlock(&managed_lock);
  return found;
}

cudaError_t cudaMallocManaged(void **ptr, size_t size, unsigned int flags)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);
  struct managed *m;
  void *d = NULL, *h;
  size_t span;

  if (e != cudaSuccess)
    return shim_fail(t, e);
  if (!ptr || size == 0 ||
      (flags != cudaMemAttachGlobal && flags != cudaMemAttachHost))
    return shim_fail(t, cudaErrorInvalidValue);
  /* cudaMalloc may give the pointer with an earlier call's error: the
     allocation is made all the same, and that error is returned. */
  e = cudaMalloc(&d, size);
  if (e != cudaSuccess && !d)
    return e;
  /* Blocking work on managed memory always waits for its reply (the
     table of allocations is for plain device memory). */
  (void)shim_alloc_forget_range(d, NULL);
  /* The device allocation is page-aligned and owns whole pages of the
     window, so mapping host pages over them here clobbers nothing else. */
  span = (size + 4095) & ~(size_t)4095;
  h = mmap(d, span, PROT_READ | PROT_WRITE,
           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  m = calloc(1, sizeof(*m));
  if (h == MAP_FAILED || !m) {
    if (h != MAP_FAILED)
      mmap(d, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED |
                                   MAP_NORESERVE, -1, 0);
    free(m);
    (void)cudaFree(d);
    return shim_fail(t, cudaErrorMemoryAllocation);
  }
  m->addr = (uintptr_t)d;
  m->size = size;
  m->span = span;
  m->dev = shim_device_of(d);
  pthread_mutex_lock(&managed_lock);
  m->next = managed_list;
  __atomic_store_n(&managed_list, m, __ATOMIC_RELEASE);
  host_newer = 1; /* zeros on both sides, but the host may write first */
  pthread_mutex_unlock(&managed_lock);
  *ptr = d;
  return e;
}

/* Called by cudaFree for a managed pointer: gives the host pages back to
   the window's reservation.  1 if ptr was managed. */
int shim_managed_forget(void *ptr)
{
  struct managed *m = NULL, **pp;

  if (!__atomic_load_n(&managed_list, __ATOMIC_ACQUIRE))
    return 0;
  pthread_mutex_lock(&managed_lock);
  for (pp = &managed_list; *pp; pp = &(*pp)->next)
    if ((*pp)->addr == (uintptr_t)ptr) {
      m = *pp;
      *pp = m->next;
      break;
    }
  pthread_mutex_unlock(&managed_lock);
  if (!m)
    return 0;
  mmap((void *)m->addr, m->span, PROT_NONE,
       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
  free(m);
  return 1;
}
