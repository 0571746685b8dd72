/*
 * shim_memory_ext.c: the rest of CUDA's linear-memory calls, built on the
 * copies and memsets of shim_memory.c: pitched allocations and 2D/3D
 * copies and memsets (row by row: a row is a copy, and only the last one
 * of a synchronous call waits for a reply), copies between devices
 * (through this host: no device can address another machine's memory),
 * stream-ordered allocation, prefetch, and the asynchronous symbol copies.
 *
 * CUDA arrays (cudaArray_t) are not carried: every call here works on
 * linear memory, and those taking arrays stay "not supported".
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "shim.h"

/* What cudaMallocPitch pads rows to: cudaDevAttrTexturePitchAlignment. */
#define PITCH_ALIGN 512u

/* ---- pitched allocations ------------------------------------------------ */

cudaError_t cudaMallocPitch(void **ptr, size_t *pitch, size_t width,
                            size_t height)
{
  struct shim_thread *t = shim_self();
  size_t p;
  cudaError_t e;

  if (!ptr || !pitch)
    return shim_fail(t, cudaErrorInvalidValue);
  p = (width + PITCH_ALIGN - 1) / PITCH_ALIGN * PITCH_ALIGN;
  if (height && p > SIZE_MAX / height)
    return shim_fail(t, cudaErrorMemoryAllocation);
  *ptr = NULL;
  e = cudaMalloc(ptr, p * height);
  if (e == cudaSuccess || *ptr) /* also with an earlier call's error
                                   (see cudaMalloc) */
    *pitch = p;
  return e;
}

cudaError_t cudaMalloc3D(struct cudaPitchedPtr *pp, struct cudaExtent ext)
{
  struct shim_thread *t = shim_self();
  size_t pitch = 0;
  void *p = NULL;
  cudaError_t e;

  if (!pp)
    return shim_fail(t, cudaErrorInvalidValue);
  if (ext.depth && ext.height > SIZE_MAX / ext.depth)
    return shim_fail(t, cudaErrorMemoryAllocation);
  e = cudaMallocPitch(&p, &pitch, ext.width, ext.height * ext.depth);
  if (e != cudaSuccess && !p)
    return e;
  pp->ptr = p;
  pp->pitch = pitch;
  pp->xsize = ext.width;
  pp->ysize = ext.height;
  return e;
}

/* ---- 2D and 3D copies and memsets ----------------------------------------- */

/*
 * Copy `rows` rows of `width` bytes.  Device to host reads the whole span
 * the rows cover in one request and scatters it here (one round trip,
 * not one per row); everything else is a record per row, all without a
 * reply except, for a synchronous call, the last.
 */
static cudaError_t copy_rows(struct shim_thread *t, uint8_t *dst, size_t dpitch,
                             const uint8_t *src, size_t spitch, size_t width,
                             size_t rows, enum cudaMemcpyKind kind, int async)
{
  cudaError_t e = cudaSuccess;

  if (width == 0 || rows == 0)
    return cudaSuccess;
  if (width > dpitch || width > spitch)
    return cudaErrorInvalidPitchValue;
  if (dpitch == width && spitch == width)
    return shim_memcpy(t, dst, src, width * rows, kind, async);
  if (shim_device_of(src) >= 0 && shim_device_of(dst) < 0 &&
      kind != cudaMemcpyHostToDevice) {
    size_t span = spitch * (rows - 1) + width;
    uint8_t *tmp = malloc(span);

    if (!tmp)
      return cudaErrorMemoryAllocation;
    e = shim_memcpy(t, tmp, src, span, cudaMemcpyDeviceToHost, 0);
    if (e == cudaSuccess)
      for (size_t r = 0; r < rows; r++)
        memcpy(dst + r * dpitch, tmp + r * spitch, width);
    free(tmp);
    return e;
  }
  for (size_t r = 0; r < rows && e == cudaSuccess; r++)
    e = shim_memcpy(t, dst + r * dpitch, src + r * spitch, width, kind,
                    async || r + 1 < rows);
  return e;
}

static cudaError_t memcpy2d(void *dst, size_t dpitch, const void *src,
                            size_t spitch, size_t width, size_t height,
                            enum cudaMemcpyKind kind, cudaStream_t stream,
                            int async)
{
  struct shim_thread *t;
  struct shim_stream *s;
  cudaError_t e = shim_stream_begin(&t, stream, &s);

  if (e != cudaSuccess)
    return e;
  e = copy_rows(t, dst, dpitch, src, spitch, width, height, kind, async);
  if (e != cudaSuccess)
    return shim_fail(t, e);
  shim_stream_mark(t, s);
  return cudaSuccess;
}

cudaError_t cudaMemcpy2D(void *dst, size_t dpitch, const void *src,
                         size_t spitch, size_t width, size_t height,
                         enum cudaMemcpyKind kind)
{
  return memcpy2d(dst, dpitch, src, spitch, width, height, kind, NULL, 0);
}

cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src,
                              size_t spitch, size_t width, size_t height,
                              enum cudaMemcpyKind kind, cudaStream_t stream)
{
  return memcpy2d(dst, dpitch, src, spitch, width, height, kind, stream, 1);
}

/* Linear memory only: arrays are refused, as the rest of the shim does. */
static cudaError_t memcpy3d(const struct cudaMemcpy3DParms *p,
                            cudaStream_t stream, int async)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);
  struct shim_stream *s;
  size_t w, h, d;

  if (e != cudaSuccess)
    return shim_fail(t, e);
  if (!p)
    return shim_fail(t, cudaErrorInvalidValue);
  if (p->srcArray || p->dstArray) {
    shim_warn_once("arrays", "CUDA arrays are not carried yet (cudaMemcpy3D "
                             "with an array)");
    return shim_fail(t, cudaErrorNotSupported);
  }
  e = shim_stream_use(t, stream, &s);
  if (e != cudaSuccess)
    return shim_fail(t, e);
  w = p->extent.width;
  h = p->extent.height;
  d = p->extent.depth;
  for (size_t z = 0; z < d && e == cudaSuccess; z++) {
    const uint8_t *src = (const uint8_t *)p->srcPtr.ptr +
                         ((p->srcPos.z + z) * p->srcPtr.ysize + p->srcPos.y) *
                             p->srcPtr.pitch + p->srcPos.x;
    uint8_t *dst = (uint8_t *)p->dstPtr.ptr +
                   ((p->dstPos.z + z) * p->dstPtr.ysize + p->dstPos.y) *
                       p->dstPtr.pitch + p->dstPos.x;

    e = copy_rows(t, dst, p->dstPtr.pitch, src, p->srcPtr.pitch, w, h,
                  p->kind, async || z + 1 < d);
  }
  if (e != cudaSuccess)
    return shim_fail(t, e);
  shim_stream_mark(t, s);
  return cudaSuccess;
}

cudaError_t cudaMemcpy3D(const struct cudaMemcpy3DParms *p)
{
  return memcpy3d(p, NULL, 0);
}

cudaError_t cudaMemcpy3DAsync(const struct cudaMemcpy3DParms *p,
                              cudaStream_t stream)
{
  return memcpy3d(p, stream, 1);
}

static cudaError_t memset2d(void *ptr, size_t pitch, int value, size_t width,
                            size_t height, cudaStream_t stream, int async)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);
  struct shim_stream *s;

  if (e != cudaSuccess)
    return shim_fail(t, e);
  if (width > pitch && height > 1)
    return shim_fail(t, cudaErrorInvalidPitchValue);
  e = shim_stream_use(t, stream, &s);
  if (e != cudaSuccess)
    return shim_fail(t, e);
  if (pitch == width)
    e = shim_memset(t, ptr, value, width * height, async);
  for (size_t r = 0; pitch != width && r < height && e == cudaSuccess; r++)
    e = shim_memset(t, (uint8_t *)ptr + r * pitch, value, width,
                    async || r + 1 < height);
  if (e != cudaSuccess)
    return e;
  shim_stream_mark(t, s);
  return cudaSuccess;
}

cudaError_t cudaMemset2D(void *ptr, size_t pitch, int value, size_t width,
                         size_t height)
{
  return memset2d(ptr, pitch, value, width, height, NULL, 0);
}

cudaError_t cudaMemset2DAsync(void *ptr, size_t pitch, int value, size_t width,
                              size_t height, cudaStream_t stream)
{
  return memset2d(ptr, pitch, value, width, height, stream, 1);
}

static cudaError_t memset3d(struct cudaPitchedPtr pp, int value,
                            struct cudaExtent ext, cudaStream_t stream,
                            int async)
{
  cudaError_t e = cudaSuccess;

  for (size_t z = 0; z < ext.depth && e == cudaSuccess; z++)
    e = memset2d((uint8_t *)pp.ptr + z * pp.ysize * pp.pitch, pp.pitch, value,
                 ext.width, ext.height, stream, async || z + 1 < ext.depth);
  return e;
}

cudaError_t cudaMemset3D(struct cudaPitchedPtr pp, int value,
                         struct cudaExtent ext)
{
  return memset3d(pp, value, ext, NULL, 0);
}

cudaError_t cudaMemset3DAsync(struct cudaPitchedPtr pp, int value,
                              struct cudaExtent ext, cudaStream_t stream)
{
  return memset3d(pp, value, ext, stream, 1);
}

/* ---- between devices ---------------------------------------------------- */

/*
 * Devices are separate machines, so a copy between two of them passes
 * through this host in 64 MiB pieces: down from one, up to the other.
 * The pieces of a large copy are staged in page-locked memory shared with
 * the broker, so they are relayed by the broker (read from one machine
 * into the staging block, sent to the other from it) without a copy in
 * the program.  On one device it is an ordinary device-to-device copy.
 */
#define PEER_PIECE (64u << 20)

static cudaError_t memcpy_peer(void *dst, int ddev, const void *src, int sdev,
                               size_t count, cudaStream_t stream)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);
  struct shim_stream *s;
  uint8_t *tmp = NULL;
  int staged;

  if (e != cudaSuccess)
    return shim_fail(t, e);
  if (!shim_valid_device(ddev) || !shim_valid_device(sdev))
    return shim_fail(t, cudaErrorInvalidDevice);
  if (count && (shim_device_of(dst) != ddev || shim_device_of(src) != sdev))
    return shim_fail(t, cudaErrorInvalidValue);
  e = shim_stream_use(t, stream, &s);
  if (e != cudaSuccess)
    return shim_fail(t, e);
  if (ddev == sdev || count == 0) {
    e = shim_memcpy(t, dst, src, count, cudaMemcpyDeviceToDevice, 0);
    if (e == cudaSuccess)
      shim_stream_mark(t, s);
    return e;
  }
  staged = count >= (64u << 10) &&
           cudaHostAlloc((void **)&tmp, count < PEER_PIECE ? count : PEER_PIECE,
                         cudaHostAllocDefault) == cudaSuccess;
  if (!staged)
    tmp = malloc(count < PEER_PIECE ? count : PEER_PIECE);
  if (!tmp)
    return shim_fail(t, cudaErrorMemoryAllocation);
  for (size_t off = 0; off < count && e == cudaSuccess; off += PEER_PIECE) {
    size_t n = count - off < PEER_PIECE ? count - off : PEER_PIECE;

    e = shim_memcpy(t, tmp, (const uint8_t *)src + off, n,
                    cudaMemcpyDeviceToHost, 0);
    if (e == cudaSuccess)
      e = shim_memcpy(t, (uint8_t *)dst + off, tmp, n, cudaMemcpyHostToDevice,
                      0);
  }
  if (staged)
    (void)cudaFreeHost(tmp);
  else
    free(tmp);
  if (e == cudaSuccess)
    shim_stream_mark(t, s);
  return e;
}

cudaError_t cudaMemcpyPeer(void *dst, int ddev, const void *src, int sdev,
                           size_t count)
{
  return memcpy_peer(dst, ddev, src, sdev, count, NULL);
}

cudaError_t cudaMemcpyPeerAsync(void *dst, int ddev, const void *src, int sdev,
                                size_t count, cudaStream_t stream)
{
  return memcpy_peer(dst, ddev, src, sdev, count, stream);
}

/* ---- stream-ordered allocation, prefetch ---------------------------------- */

/*
 * cudaMallocAsync: the pointer comes back at once, as in CUDA (one round
 * trip for the address); the memory is usable by work queued after it on
 * any stream, which the lane order and the stream rules already give.
 * cudaFreeAsync is queued after the stream's work.
 */
/*
 * The default memory pool of each device.  Its memory is what
 * cudaMallocAsync allocates (cudaMalloc on the agent) and gives back at
 * once when freed: the agent's allocator does the reuse, so the pool keeps
 * nothing in reserve, and its reserved bytes are its used bytes.  The
 * attributes a program may set are kept and read back; trimming has
 * nothing to trim.  Pools of one's own (cudaMemPoolCreate) are not
 * implemented, so the only pool a device can be set to is its default.
 */
#define POOL_MAGIC 0x504f4f4cu /* "POOL" */

struct shim_pool {
  uint32_t magic;
  int dev;
  _Atomic uint64_t used, high, reserved_high;
  uint64_t release_threshold;
  int follow_events, opportunistic, internal_deps;
};

static pthread_once_t pools_once = PTHREAD_ONCE_INIT;
static struct shim_pool *pools;
static uint32_t npools;

static void pools_init(void)
{
  pools = calloc(shim_proc.cli.ndev ? shim_proc.cli.ndev : 1, sizeof(*pools));
  if (!pools)
    return;
  npools = shim_proc.cli.ndev;
  for (uint32_t i = 0; i < npools; i++)
    pools[i] = (struct shim_pool){.magic = POOL_MAGIC, .dev = (int)i,
                                  .follow_events = 1, .opportunistic = 1,
                                  .internal_deps = 1};
}

/* e as the calling thread's last error. */
static cudaError_t pool_err(cudaError_t e)
{
  return shim_fail(shim_self(), e);
}

/* dev's default pool, or NULL (no such device, or out of memory). */
static struct shim_pool *pool_of_dev(int dev)
{
  if (!shim_valid_device(dev))
    return NULL;
  pthread_once(&pools_once, pools_init);
  return pools && (uint32_t)dev < npools ? &pools[dev] : NULL;
}

/* A pool handle the program gave us: one of ours, or NULL. */
static struct shim_pool *pool_of(cudaMemPool_t h)
{
  struct shim_pool *p = (struct shim_pool *)h;

  pthread_once(&pools_once, pools_init);
  if (!pools || p < pools || p >= pools + npools)
    return NULL;
  return p->magic == POOL_MAGIC ? p : NULL;
}

static void pool_add(struct shim_pool *p, uint64_t size)
{
  uint64_t now = atomic_fetch_add(&p->used, size) + size;
  uint64_t high = atomic_load(&p->high);

  while (now > high && !atomic_compare_exchange_weak(&p->high, &high, now))
    ;
  high = atomic_load(&p->reserved_high);
  while (now > high &&
         !atomic_compare_exchange_weak(&p->reserved_high, &high, now))
    ;
}

void shim_pool_forget_all(void)
{
  pthread_once_t fresh = PTHREAD_ONCE_INIT;

  free(pools); /* one thread in the child: nobody holds a pointer in use */
  pools = NULL;
  npools = 0;
  pools_once = fresh;
}

void shim_pool_freed(int dev, uint64_t size)
{
  struct shim_pool *p = pool_of_dev(dev);

  if (p)
    atomic_fetch_sub(&p->used, size);
}

static cudaError_t malloc_from_pool(void **ptr, size_t size,
                                    struct shim_pool *p, cudaStream_t stream)
{
  struct shim_thread *t;
  struct shim_stream *s;
  cudaError_t e = shim_stream_begin(&t, stream, &s);

  if (e != cudaSuccess)
    return e;
  e = shim_capture_refuse(t, "cudaMallocAsync");
  if (e != cudaSuccess)
    return shim_fail(t, e);
  if (p && p->dev != t->device)
    return shim_fail(t, cudaErrorInvalidValue); /* a pool of another device */
  e = cudaMalloc(ptr, size);
  if (e == cudaSuccess && size) {
    if (!p)
      p = pool_of_dev(t->device);
    shim_alloc_set_pooled(*ptr);
    if (p)
      pool_add(p, size);
  }
  return e;
}

cudaError_t cudaMallocAsync(void **ptr, size_t size, cudaStream_t stream)
{
  return malloc_from_pool(ptr, size, NULL, stream);
}

cudaError_t cudaMallocFromPoolAsync(void **ptr, size_t size,
                                    cudaMemPool_t pool, cudaStream_t stream)
{
  struct shim_pool *p = pool_of(pool);

  if (!p)
    return pool_err(cudaErrorInvalidValue);
  return malloc_from_pool(ptr, size, p, stream);
}

cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t *pool, int device)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);
  struct shim_pool *p;

  if (e != cudaSuccess)
    return shim_fail(t, e);
  if (!pool)
    return shim_fail(t, cudaErrorInvalidValue);
  p = pool_of_dev(device);
  if (!p)
    return shim_fail(t, shim_valid_device(device) ? cudaErrorMemoryAllocation
                                                  : cudaErrorInvalidDevice);
  *pool = (cudaMemPool_t)p;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetMemPool(cudaMemPool_t *pool, int device)
{
  return cudaDeviceGetDefaultMemPool(pool, device);
}

cudaError_t cudaDeviceSetMemPool(int device, cudaMemPool_t pool)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);
  struct shim_pool *p;

  if (e != cudaSuccess)
    return shim_fail(t, e);
  if (!shim_valid_device(device))
    return shim_fail(t, cudaErrorInvalidDevice);
  p = pool_of(pool);
  if (!p || p->dev != device)
    return shim_fail(t, cudaErrorInvalidValue);
  return cudaSuccess; /* its default pool: what it uses already */
}

cudaError_t cudaMemPoolTrimTo(cudaMemPool_t pool, size_t keep)
{
  (void)keep;
  return pool_of(pool) ? cudaSuccess : pool_err(cudaErrorInvalidValue);
}

cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t pool,
                                    enum cudaMemPoolAttr attr, void *value)
{
  struct shim_pool *p = pool_of(pool);

  if (!p || !value)
    return pool_err(cudaErrorInvalidValue);
  switch (attr) {
  case cudaMemPoolAttrReleaseThreshold:
    p->release_threshold = *(uint64_t *)value;
    return cudaSuccess;
  case cudaMemPoolReuseFollowEventDependencies:
    p->follow_events = *(int *)value != 0;
    return cudaSuccess;
  case cudaMemPoolReuseAllowOpportunistic:
    p->opportunistic = *(int *)value != 0;
    return cudaSuccess;
  case cudaMemPoolReuseAllowInternalDependencies:
    p->internal_deps = *(int *)value != 0;
    return cudaSuccess;
  case cudaMemPoolAttrReservedMemHigh: /* may only be reset, to 0 */
    if (*(uint64_t *)value != 0)
      return pool_err(cudaErrorInvalidValue);
    atomic_store(&p->reserved_high, atomic_load(&p->used));
    return cudaSuccess;
  case cudaMemPoolAttrUsedMemHigh:
    if (*(uint64_t *)value != 0)
      return pool_err(cudaErrorInvalidValue);
    atomic_store(&p->high, atomic_load(&p->used));
    return cudaSuccess;
  default: /* the current figures are read-only */
    return pool_err(cudaErrorInvalidValue);
  }
}

cudaError_t cudaMemPoolGetAttribute(cudaMemPool_t pool,
                                    enum cudaMemPoolAttr attr, void *value)
{
  struct shim_pool *p = pool_of(pool);

  if (!p || !value)
    return pool_err(cudaErrorInvalidValue);
  switch (attr) {
  case cudaMemPoolAttrReleaseThreshold:
    *(uint64_t *)value = p->release_threshold;
    return cudaSuccess;
  case cudaMemPoolReuseFollowEventDependencies:
    *(int *)value = p->follow_events;
    return cudaSuccess;
  case cudaMemPoolReuseAllowOpportunistic:
    *(int *)value = p->opportunistic;
    return cudaSuccess;
  case cudaMemPoolReuseAllowInternalDependencies:
    *(int *)value = p->internal_deps;
    return cudaSuccess;
  case cudaMemPoolAttrReservedMemCurrent: /* nothing kept beyond the used */
  case cudaMemPoolAttrUsedMemCurrent:
    *(uint64_t *)value = atomic_load(&p->used);
    return cudaSuccess;
  case cudaMemPoolAttrReservedMemHigh:
    *(uint64_t *)value = atomic_load(&p->reserved_high);
    return cudaSuccess;
  case cudaMemPoolAttrUsedMemHigh:
    *(uint64_t *)value = atomic_load(&p->high);
    return cudaSuccess;
  default:
    return pool_err(cudaErrorInvalidValue);
  }
}

cudaError_t cudaFreeAsync(void *ptr, cudaStream_t stream)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);
  struct shim_stream *s;
  uint8_t a[8];
  uint64_t size;
  int dev, rc, pooled;

  if (e != cudaSuccess)
    return shim_fail(t, e);
  if (!ptr)
    return cudaSuccess;
  dev = shim_device_of(ptr);
  if (dev < 0)
    return shim_fail(t, cudaErrorInvalidValue);
  e = shim_stream_use(t, stream, &s);
  if (e != cudaSuccess)
    return shim_fail(t, e);
  tr_put_u64(a, (uint64_t)(uintptr_t)ptr);
  size = shim_alloc_forget_range(ptr, &pooled);
  if (pooled)
    shim_pool_freed(dev, size);
  rc = shim_call(t, dev, TR_OP_FREE, a, 8, NULL, 0, 0, NULL, 0, NULL);
  if (rc)
    return shim_cuda_error(t, rc);
  shim_stream_mark(t, s);
  return cudaSuccess;
}

/*
 * Prefetching applies to managed memory: for any other pointer CUDA
 * answers cudaErrorInvalidValue, and so does this.
 */
cudaError_t cudaMemPrefetchAsync(const void *ptr, size_t count,
                                 struct cudaMemLocation location,
                                 unsigned int flags, cudaStream_t stream)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);

  (void)location;
  (void)stream;
  if (e != cudaSuccess)
    return shim_fail(t, e);
  /* Managed memory moves whole at launches and synchronisations
     (shim_memory.c), so there is nothing to do ahead of time. */
  if (ptr && count && !flags && shim_managed_of(ptr))
    return cudaSuccess;
  return shim_fail(t, cudaErrorInvalidValue);
}

/*
 * Advice about managed memory is a hint for the GPU's page migration; here
 * managed memory moves whole at launches and synchronisations, so a valid
 * piece of advice changes nothing.  What CUDA checks is checked: the
 * advice, its location, and that the range is managed memory.
 */
cudaError_t cudaMemAdvise(const void *ptr, size_t count,
                          enum cudaMemoryAdvise advice,
                          struct cudaMemLocation location)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);

  if (e != cudaSuccess)
    return shim_fail(t, e);
  if ((unsigned)advice < cudaMemAdviseSetReadMostly ||
      (unsigned)advice > cudaMemAdviseUnsetAccessedBy)
    return shim_fail(t, cudaErrorInvalidValue);
  if (advice != cudaMemAdviseSetReadMostly &&
      advice != cudaMemAdviseUnsetReadMostly) {
    if (location.type == cudaMemLocationTypeDevice) {
      if (!shim_valid_device(location.id))
        return shim_fail(t, cudaErrorInvalidDevice);
    } else if (location.type != cudaMemLocationTypeHost &&
               location.type != cudaMemLocationTypeHostNuma) {
      return shim_fail(t, cudaErrorInvalidValue);
    }
  }
  if (!ptr || !count || !shim_managed_of(ptr))
    return shim_fail(t, cudaErrorInvalidValue);
  return cudaSuccess;
}

/* ---- asynchronous symbol copies ------------------------------------------- */

cudaError_t cudaMemcpyToSymbolAsync(const void *symbol, const void *src,
                                    size_t count, size_t offset,
                                    enum cudaMemcpyKind kind,
                                    cudaStream_t stream)
{
  struct shim_thread *t;
  struct shim_stream *s;
  cudaError_t e = shim_stream_begin(&t, stream, &s);

  if (e != cudaSuccess)
    return e;
  e = shim_capture_refuse(t, "cudaMemcpyToSymbolAsync");
  if (e != cudaSuccess)
    return shim_fail(t, e);
  e = cudaMemcpyToSymbol(symbol, src, count, offset, kind);
  if (e == cudaSuccess)
    shim_stream_mark(t, s);
  return e;
}

cudaError_t cudaMemcpyFromSymbolAsync(void *dst, const void *symbol,
                                      size_t count, size_t offset,
                                      enum cudaMemcpyKind kind,
                                      cudaStream_t stream)
{
  struct shim_thread *t;
  struct shim_stream *s;
  cudaError_t e = shim_stream_begin(&t, stream, &s);

  if (e != cudaSuccess)
    return e;
  e = shim_capture_refuse(t, "cudaMemcpyFromSymbolAsync");
  if (e != cudaSuccess)
    return shim_fail(t, e);
  e = cudaMemcpyFromSymbol(dst, symbol, count, offset, kind);
  if (e == cudaSuccess)
    shim_stream_mark(t, s);
  return e;
}

/* ---- the per-thread-default-stream twins ---------------------------------- */

/*
 * Declared by the headers only under macros.  Every thread's default
 * stream is its own lane here, so the _ptds/_ptsz entry points are the
 * plain ones.
 */
cudaError_t cudaMemcpy_ptds(void *dst, const void *src, size_t count,
                            enum cudaMemcpyKind kind);
cudaError_t cudaMemset_ptds(void *ptr, int value, size_t count);
cudaError_t cudaMemcpy2D_ptds(void *dst, size_t dpitch, const void *src,
                              size_t spitch, size_t width, size_t height,
                              enum cudaMemcpyKind kind);
cudaError_t cudaMemcpy2DAsync_ptsz(void *dst, size_t dpitch, const void *src,
                                   size_t spitch, size_t width, size_t height,
                                   enum cudaMemcpyKind kind,
                                   cudaStream_t stream);
cudaError_t cudaMemcpy3D_ptds(const struct cudaMemcpy3DParms *p);
cudaError_t cudaMemcpy3DAsync_ptsz(const struct cudaMemcpy3DParms *p,
                                   cudaStream_t stream);
cudaError_t cudaMemset2D_ptds(void *ptr, size_t pitch, int value,
                              size_t width, size_t height);
cudaError_t cudaMemset2DAsync_ptsz(void *ptr, size_t pitch, int value,
                                   size_t width, size_t height,
                                   cudaStream_t stream);
cudaError_t cudaMemset3D_ptds(struct cudaPitchedPtr pp, int value,
                              struct cudaExtent ext);
cudaError_t cudaMemset3DAsync_ptsz(struct cudaPitchedPtr pp, int value,
                                   struct cudaExtent ext, cudaStream_t stream);
cudaError_t cudaMallocAsync_ptsz(void **ptr, size_t size, cudaStream_t stream);
cudaError_t cudaMallocFromPoolAsync_ptsz(void **ptr, size_t size,
                                         cudaMemPool_t pool,
                                         cudaStream_t stream);
cudaError_t cudaFreeAsync_ptsz(void *ptr, cudaStream_t stream);
cudaError_t cudaMemPrefetchAsync_ptsz(const void *ptr, size_t count,
                                      struct cudaMemLocation location,
                                      unsigned int flags, cudaStream_t stream);
cudaError_t cudaMemcpyToSymbol_ptds(const void *symbol, const void *src,
                                    size_t count, size_t offset,
                                    enum cudaMemcpyKind kind);
cudaError_t cudaMemcpyFromSymbol_ptds(void *dst, const void *symbol,
                                      size_t count, size_t offset,
                                      enum cudaMemcpyKind kind);
cudaError_t cudaMemcpyToSymbolAsync_ptsz(const void *symbol, const void *src,
                                         size_t count, size_t offset,
                                         enum cudaMemcpyKind kind,
                                         cudaStream_t stream);
cudaError_t cudaMemcpyFromSymbolAsync_ptsz(void *dst, const void *symbol,
                                           size_t count, size_t offset,
                                           enum cudaMemcpyKind kind,
                                           cudaStream_t stream);

cudaError_t cudaMemcpy_ptds(void *dst, const void *src, size_t count,
                            enum cudaMemcpyKind kind)
{
  return cudaMemcpy(dst, src, count, kind);
}

cudaError_t cudaMemset_ptds(void *ptr, int value, size_t count)
{
  return cudaMemset(ptr, value, count);
}

cudaError_t cudaMemcpy2D_ptds(void *dst, size_t dpitch, const void *src,
                              size_t spitch, size_t width, size_t height,
                              enum cudaMemcpyKind kind)
{
  return cudaMemcpy2D(dst, dpitch, src, spitch, width, height, kind);
}

cudaError_t cudaMemcpy2DAsync_ptsz(void *dst, size_t dpitch, const void *src,
                                   size_t spitch, size_t width, size_t height,
                                   enum cudaMemcpyKind kind,
                                   cudaStream_t stream)
{
  return cudaMemcpy2DAsync(dst, dpitch, src, spitch, width, height, kind,
                           stream);
}

cudaError_t cudaMemcpy3D_ptds(const struct cudaMemcpy3DParms *p)
{
  return cudaMemcpy3D(p);
}

cudaError_t cudaMemcpy3DAsync_ptsz(const struct cudaMemcpy3DParms *p,
                                   cudaStream_t stream)
{
  return cudaMemcpy3DAsync(p, stream);
}

cudaError_t cudaMemset2D_ptds(void *ptr, size_t pitch, int value,
                              size_t width, size_t height)
{
  return cudaMemset2D(ptr, pitch, value, width, height);
}

cudaError_t cudaMemset2DAsync_ptsz(void *ptr, size_t pitch, int value,
                                   size_t width, size_t height,
                                   cudaStream_t stream)
{
  return cudaMemset2DAsync(ptr, pitch, value, width, height, stream);
}

cudaError_t cudaMemset3D_ptds(struct cudaPitchedPtr pp, int value,
                              struct cudaExtent ext)
{
  return cudaMemset3D(pp, value, ext);
}

cudaError_t cudaMemset3DAsync_ptsz(struct cudaPitchedPtr pp, int value,
                                   struct cudaExtent ext, cudaStream_t stream)
{
  return cudaMemset3DAsync(pp, value, ext, stream);
}

cudaError_t cudaMallocAsync_ptsz(void **ptr, size_t size, cudaStream_t stream)
{
  return cudaMallocAsync(ptr, size, stream);
}

cudaError_t cudaMallocFromPoolAsync_ptsz(void **ptr, size_t size,
                                         cudaMemPool_t pool,
                                         cudaStream_t stream)
{
  return cudaMallocFromPoolAsync(ptr, size, pool, stream);
}

cudaError_t cudaFreeAsync_ptsz(void *ptr, cudaStream_t stream)
{
  return cudaFreeAsync(ptr, stream);
}

cudaError_t cudaMemPrefetchAsync_ptsz(const void *ptr, size_t count,
                                      struct cudaMemLocation location,
                                      unsigned int flags, cudaStream_t stream)
{
  return cudaMemPrefetchAsync(ptr, count, location, flags, stream);
}

cudaError_t cudaMemcpyToSymbol_ptds(const void *symbol, const void *src,
                                    size_t count, size_t offset,
                                    enum cudaMemcpyKind kind)
{
  return cudaMemcpyToSymbol(symbol, src, count, offset, kind);
}

cudaError_t cudaMemcpyFromSymbol_ptds(void *dst, const void *symbol,
                                      size_t count, size_t offset,
                                      enum cudaMemcpyKind kind)
{
  return cudaMemcpyFromSymbol(dst, symbol, count, offset, kind);
}

cudaError_t cudaMemcpyToSymbolAsync_ptsz(const void *symbol, const void *src,
                                         size_t count, size_t offset,
                                         enum cudaMemcpyKind kind,
                                         cudaStream_t stream)
{
  return cudaMemcpyToSymbolAsync(symbol, src, count, offset, kind, stream);
}

cudaError_t cudaMemcpyFromSymbolAsync_ptsz(void *dst, const void *symbol,
                                           size_t count, size_t offset,
                                           enum cudaMemcpyKind kind,
                                           cudaStream_t stream)
{
  return cudaMemcpyFromSymbolAsync(dst, symbol, count, offset, kind, stream);
}
