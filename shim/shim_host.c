/*
 * shim_host.c: page-locked host memory (cudaMallocHost, cudaHostAlloc,
 * cudaHostRegister) and cudaPointerGetAttributes.
 *
 * The device is on another machine, so "page-locked" buys no DMA here:
 * the memory is ordinary host memory the shim keeps a table of, so that
 * cudaFreeHost, cudaHostGetFlags, cudaHostUnregister and
 * cudaPointerGetAttributes answer as CUDA does.  (Placing it in shared
 * segments the broker can read, so copies from it skip a copy, is the
 * planned next step; nothing in the API changes then.)  The device cannot
 * reach host memory (cudaDevAttrCanMapHostMemory is 0), so mapped memory
 * has no device pointer: cudaHostGetDevicePointer says so.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "shim.h"

struct host_block {
  uintptr_t addr;
  size_t size;
  unsigned flags;
  int dev;        /* current device when it was made */
  int registered; /* cudaHostRegister (the program's memory), not ours */
  struct host_block *next;
};

static pthread_mutex_t host_lock = PTHREAD_MUTEX_INITIALIZER;
static struct host_block *blocks;

/* The block holding p (host_lock held), or NULL. */
static struct host_block *block_of(const void *p)
{
  uintptr_t a = (uintptr_t)p;

  for (struct host_block *b = blocks; b; b = b->next)
    if (a >= b->addr && a - b->addr < b->size)
      return b;
  return NULL;
}

static cudaError_t add_block(uintptr_t addr, size_t size, unsigned flags,
                             int dev, int registered)
{
  struct host_block *b = calloc(1, sizeof(*b));

  if (!b)
    return cudaErrorMemoryAllocation;
  b->addr = addr;
  b->size = size;
  b->flags = flags;
  b->dev = dev;
  b->registered = registered;
  b->next = blocks;
  blocks = b;
  return cudaSuccess;
}

cudaError_t cudaHostAlloc(void **ptr, size_t size, unsigned int flags)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);
  void *p;

  if (e != cudaSuccess)
    return shim_fail(t, e);
  if (!ptr || (flags & ~(unsigned)(cudaHostAllocPortable |
                                  cudaHostAllocMapped |
                                  cudaHostAllocWriteCombined)))
    return shim_fail(t, cudaErrorInvalidValue);
  if (size == 0) {
    *ptr = NULL;
    return cudaSuccess;
  }
  p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
           -1, 0);
  if (p == MAP_FAILED)
    return shim_fail(t, cudaErrorMemoryAllocation);
  pthread_mutex_lock(&host_lock);
  e = add_block((uintptr_t)p, size, flags, t->device, 0);
  pthread_mutex_unlock(&host_lock);
  if (e != cudaSuccess) {
    munmap(p, size);
    return shim_fail(t, e);
  }
  *ptr = p;
  return cudaSuccess;
}

cudaError_t cudaMallocHost(void **ptr, size_t size)
{
  return cudaHostAlloc(ptr, size, cudaHostAllocDefault);
}

cudaError_t cudaFreeHost(void *ptr)
{
  struct shim_thread *t = shim_self();
  struct host_block *b = NULL, **pp;

  if (!ptr)
    return cudaSuccess;
  pthread_mutex_lock(&host_lock);
  for (pp = &blocks; *pp; pp = &(*pp)->next)
    if ((*pp)->addr == (uintptr_t)ptr && !(*pp)->registered) {
      b = *pp;
      *pp = b->next;
      break;
    }
  pthread_mutex_unlock(&host_lock);
  if (!b)
    return shim_fail(t, cudaErrorInvalidValue);
  munmap((void *)b->addr, b->size);
  free(b);
  return cudaSuccess;
}

cudaError_t cudaHostRegister(void *ptr, size_t size, unsigned int flags)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);
  uintptr_t a = (uintptr_t)ptr;

  if (e != cudaSuccess)
    return shim_fail(t, e);
  if (!ptr || size == 0 || a + size < a ||
      (flags & ~(unsigned)(cudaHostRegisterPortable | cudaHostRegisterMapped |
                           cudaHostRegisterIoMemory |
                           cudaHostRegisterReadOnly)) ||
      shim_device_of(ptr) >= 0)
    return shim_fail(t, cudaErrorInvalidValue);
  pthread_mutex_lock(&host_lock);
  for (struct host_block *b = blocks; b; b = b->next)
    if (a < b->addr + b->size && b->addr < a + size) {
      pthread_mutex_unlock(&host_lock);
      return shim_fail(t, cudaErrorHostMemoryAlreadyRegistered);
    }
  e = add_block(a, size, flags, t->device, 1);
  pthread_mutex_unlock(&host_lock);
  return shim_fail(t, e);
}

cudaError_t cudaHostUnregister(void *ptr)
{
  struct shim_thread *t = shim_self();
  struct host_block *b = NULL, **pp;

  pthread_mutex_lock(&host_lock);
  for (pp = &blocks; *pp; pp = &(*pp)->next)
    if ((*pp)->addr == (uintptr_t)ptr && (*pp)->registered) {
      b = *pp;
      *pp = b->next;
      break;
    }
  pthread_mutex_unlock(&host_lock);
  if (!b)
    return shim_fail(t, cudaErrorHostMemoryNotRegistered);
  free(b);
  return cudaSuccess;
}

cudaError_t cudaHostGetFlags(unsigned int *flags, void *host)
{
  struct shim_thread *t = shim_self();
  struct host_block *b;

  if (!flags)
    return shim_fail(t, cudaErrorInvalidValue);
  pthread_mutex_lock(&host_lock);
  b = block_of(host);
  if (b)
    *flags = b->flags;
  pthread_mutex_unlock(&host_lock);
  return b ? cudaSuccess : shim_fail(t, cudaErrorInvalidValue);
}

cudaError_t cudaHostGetDevicePointer(void **dev, void *host,
                                     unsigned int flags)
{
  struct shim_thread *t = shim_self();

  (void)host;
  if (!dev || flags)
    return shim_fail(t, cudaErrorInvalidValue);
  shim_warn_once("mapped", "the device is on another machine and cannot "
                           "address host memory: there is no device pointer "
                           "for mapped host memory (check "
                           "cudaDevAttrCanMapHostMemory, which is 0)");
  return shim_fail(t, cudaErrorNotSupported);
}

cudaError_t cudaPointerGetAttributes(struct cudaPointerAttributes *attr,
                                     const void *ptr)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);
  struct host_block *b;
  int dev;

  if (e != cudaSuccess)
    return shim_fail(t, e);
  if (!attr || !ptr)
    return shim_fail(t, cudaErrorInvalidValue);
  memset(attr, 0, sizeof(*attr));
  dev = shim_device_of(ptr);
  if (dev >= 0 && shim_managed_of(ptr)) {
    attr->type = cudaMemoryTypeManaged;
    attr->device = dev;
    attr->devicePointer = (void *)ptr;
    attr->hostPointer = (void *)ptr;
    return cudaSuccess;
  }
  if (dev >= 0) {
    attr->type = cudaMemoryTypeDevice;
    attr->device = dev;
    attr->devicePointer = (void *)ptr;
    return cudaSuccess;
  }
  pthread_mutex_lock(&host_lock);
  b = block_of(ptr);
  if (b) {
    attr->type = cudaMemoryTypeHost;
    attr->device = b->dev;
    attr->hostPointer = (void *)ptr;
  }
  pthread_mutex_unlock(&host_lock);
  if (!b) {
    /* Plain host memory: CUDA 11 and later answer "unregistered". */
    attr->type = cudaMemoryTypeUnregistered;
    attr->device = -2;
    attr->hostPointer = (void *)ptr;
  }
  return cudaSuccess;
}
