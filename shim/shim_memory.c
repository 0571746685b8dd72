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
#include <string.h>

#include "shim.h"

static cudaError_t fail(struct shim_thread *t, cudaError_t e)
{
  if (t && e != cudaSuccess)
    t->last_error = e;
  return e;
}

cudaError_t cudaMalloc(void **ptr, size_t size)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);
  uint8_t args[8], out[8];
  uint64_t got = 0;
  int rc;

  if (e != cudaSuccess)
    return fail(t, e);
  if (!ptr)
    return fail(t, cudaErrorInvalidValue);
  tr_put_u64(args, size);
  rc = shim_call(t, t->device, TR_OP_MALLOC, args, 8, NULL, 0, 1, out,
                 sizeof(out), &got);
  if (rc == 0 && got != 8)
    rc = TR_ST_BAD_RECORD;
  if (rc)
    return shim_cuda_error(t, rc);
  *ptr = (void *)(uintptr_t)tr_get_u64(out);
  return cudaSuccess;
}

cudaError_t cudaFree(void *ptr)
{
  struct shim_thread *t;
  cudaError_t e;
  uint8_t args[8];
  int dev;

  /* cudaFree(NULL) is the classic "initialise the context" call: it must
     succeed without touching anything. */
  e = shim_ready(&t);
  if (e != cudaSuccess)
    return fail(t, e);
  if (!ptr)
    return cudaSuccess;
  dev = shim_device_of(ptr);
  if (dev < 0)
    return fail(t, cudaErrorInvalidValue);
  tr_put_u64(args, (uint64_t)(uintptr_t)ptr);
  return shim_cuda_error(t, shim_call(t, dev, TR_OP_FREE, args, 8, NULL, 0, 1,
                                      NULL, 0, NULL));
}

/* async: no chunk waits for a reply (cudaMemcpyAsync); the bytes are
   captured at enqueue, as CUDA does for pageable memory. */
static int copy_h2d(struct shim_thread *t, int dev, uint64_t dst,
                    const uint8_t *src, size_t n, int async)
{
  uint8_t args[16];
  size_t off = 0;
  int rc;

  do {
    size_t len = n - off < TR_CHUNK_MAX ? n - off : TR_CHUNK_MAX;
    int last = off + len == n;

    tr_put_u64(args, dst + off);
    tr_put_u64(args + 8, len);
    rc = shim_call(t, dev, TR_OP_MEMCPY_H2D, args, 16, src + off,
                   (uint32_t)len, last && !async, NULL, 0, NULL);
    if (rc)
      return rc;
    off += len;
  } while (off < n);
  return 0;
}

static int copy_d2h(struct shim_thread *t, int dev, uint8_t *dst, uint64_t src,
                    size_t n)
{
  uint8_t args[16];
  uint64_t got = 0;
  int rc;

  tr_put_u64(args, src);
  tr_put_u64(args + 8, n);
  rc = shim_call(t, dev, TR_OP_MEMCPY_D2H, args, 16, NULL, 0, 1, dst, n, &got);
  if (rc == 0 && got != n)
    rc = TR_ST_BAD_RECORD;
  return rc;
}

cudaError_t shim_memcpy(struct shim_thread *t, void *dst, const void *src,
                        size_t count, enum cudaMemcpyKind kind, int async)
{
  int ddev, sdev, rc;

  if (count == 0)
    return cudaSuccess;
  if (!dst || !src)
    return fail(t, cudaErrorInvalidValue);
  ddev = shim_device_of(dst);
  sdev = shim_device_of(src);
  switch (kind) {
  case cudaMemcpyHostToHost:
    if (ddev >= 0 || sdev >= 0)
      return fail(t, cudaErrorInvalidValue);
    memmove(dst, src, count);
    return cudaSuccess;
  case cudaMemcpyHostToDevice:
    if (ddev < 0 || sdev >= 0)
      return fail(t, cudaErrorInvalidValue);
    break;
  case cudaMemcpyDeviceToHost:
    if (sdev < 0 || ddev >= 0)
      return fail(t, cudaErrorInvalidValue);
    break;
  case cudaMemcpyDeviceToDevice:
    if (sdev < 0 || ddev < 0)
      return fail(t, cudaErrorInvalidValue);
    break;
  case cudaMemcpyDefault:
    break;
  default:
    return fail(t, cudaErrorInvalidMemcpyDirection);
  }
  if (ddev >= 0 && sdev >= 0) {
    uint8_t args[24];

    if (ddev != sdev)
      return shim_wrong_device(t, "cudaMemcpy", src, sdev, ddev);
    tr_put_u64(args, (uint64_t)(uintptr_t)dst);
    tr_put_u64(args + 8, (uint64_t)(uintptr_t)src);
    tr_put_u64(args + 16, count);
    rc = shim_call(t, ddev, TR_OP_MEMCPY_D2D, args, 24, NULL, 0, !async, NULL,
                   0, NULL);
  } else if (ddev >= 0) {
    rc = copy_h2d(t, ddev, (uint64_t)(uintptr_t)dst, src, count, async);
  } else if (sdev >= 0) {
    /* Device to pageable host memory is synchronous even when asked
       asynchronously, as in CUDA: the bytes must be there on return. */
    rc = copy_d2h(t, sdev, dst, (uint64_t)(uintptr_t)src, count);
  } else {
    memmove(dst, src, count);
    rc = 0;
  }
  return shim_cuda_error(t, rc);
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t count,
                       enum cudaMemcpyKind kind)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);

  struct shim_stream *s;

  if (e != cudaSuccess)
    return fail(t, e);
  /* The legacy stream: after its host functions (shim_stream.c). */
  e = shim_stream_use(t, NULL, &s);
  if (e != cudaSuccess)
    return fail(t, e);
  return shim_memcpy(t, dst, src, count, kind, 0);
}

cudaError_t shim_memset(struct shim_thread *t, void *ptr, int value,
                        size_t count, int async)
{
  uint8_t args[20];
  int dev;

  if (count == 0)
    return cudaSuccess;
  dev = shim_device_of(ptr);
  if (dev < 0)
    return fail(t, cudaErrorInvalidValue);
  tr_put_u64(args, (uint64_t)(uintptr_t)ptr);
  tr_put_u64(args + 8, count);
  tr_put_u32(args + 16, (uint32_t)value & 0xff);
  return shim_cuda_error(t, shim_call(t, dev, TR_OP_MEMSET, args, 20, NULL, 0,
                                      !async, NULL, 0, NULL));
}

cudaError_t cudaMemset(void *ptr, int value, size_t count)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);

  struct shim_stream *s;

  if (e != cudaSuccess)
    return fail(t, e);
  e = shim_stream_use(t, NULL, &s);
  if (e != cudaSuccess)
    return fail(t, e);
  return shim_memset(t, ptr, value, count, 0);
}

cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);
  uint8_t out[16];
  uint64_t got = 0;
  int rc;

  if (e != cudaSuccess)
    return fail(t, e);
  if (!free_b || !total)
    return fail(t, cudaErrorInvalidValue);
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
