/*
 * shim_host.c: page-locked host memory (cudaMallocHost, cudaHostAlloc,
 * cudaHostRegister) and cudaPointerGetAttributes.
 *
 * The device is on another machine, so "page-locked" buys no DMA here.
 * What it buys instead: cudaMallocHost/cudaHostAlloc memory is a sealed
 * memfd shared with the broker (a region, PROTOCOL.md §2), so a copy from
 * it is sent by the broker straight from these pages and a copy into it
 * is written here by the broker, each one copy fewer than through the
 * lane's areas (shim_host_region; shim_memory.c decides per copy).  When
 * the broker refuses a region, or memfds are unavailable, the block is
 * private memory and copies take the areas, as for pageable memory.
 * The shim keeps a table of blocks, so that cudaFreeHost,
 * cudaHostGetFlags, cudaHostUnregister and cudaPointerGetAttributes answer
 * as CUDA does.  The device cannot reach host memory
 * (cudaDevAttrCanMapHostMemory is 0), so mapped memory has no device
 * pointer: cudaHostGetDevicePointer says so.
 *
 * After fork the child keeps the mappings (shared with the parent, as the
 * memfd is) but not the regions, which belong to the parent's session: its
 * copies take the areas of its own session.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "shim.h"

struct host_block {
  uintptr_t addr;
  size_t size;
  unsigned flags;
  int dev;        /* current device when it was made */
  int registered; /* cudaHostRegister (the program's memory), not ours */
  int64_t region; /* the broker's region id, or -1 */
  size_t map_size; /* bytes mapped (size rounded up to pages) */
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
  b->region = -1;
  b->map_size = size;
  b->next = blocks;
  blocks = b;
  return cudaSuccess;
}

/*
 * size bytes (rounded up to pages, *map_size) of a sealed memfd, mapped and
 * shared with the broker as region *region; NULL when that cannot be had
 * (the caller falls back to private memory).  The memfd itself is closed:
 * the two mappings keep it.
 */
static void *map_shared(size_t size, size_t *map_size, int64_t *region)
{
  size_t pg = (size_t)sysconf(_SC_PAGESIZE);
  size_t len = (size + pg - 1) & ~(pg - 1);
  uint32_t id;
  void *p;
  int fd;

  *region = -1;
  if (len < size)
    return NULL;
  fd = memfd_create("tremote-pinned", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0)
    return NULL;
  if (ftruncate(fd, (off_t)len) < 0 ||
      fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
    close(fd);
    return NULL;
  }
  p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    close(fd);
    return NULL;
  }
  if (tr_client_region_add(&shim_proc.cli, fd, len, &id) < 0) {
    close(fd);
    munmap(p, len);
    return NULL;
  }
  close(fd);
  *map_size = len;
  *region = id;
  return p;
}

int shim_host_region(const void *p, size_t n, uint32_t *area, uint64_t *off)
{
  struct host_block *b;
  int found = 0;

  pthread_mutex_lock(&host_lock);
  b = block_of(p);
  if (b && b->region >= 0 && n <= b->size - ((uintptr_t)p - b->addr)) {
    *area = TR_AREA_REGION + (uint32_t)b->region;
    *off = (uintptr_t)p - b->addr;
    found = 1;
  }
  pthread_mutex_unlock(&host_lock);
  return found;
}

void shim_host_fork_lock(int lock)
{
  if (lock)
    pthread_mutex_lock(&host_lock);
  else
    pthread_mutex_unlock(&host_lock);
}

void shim_host_forget_regions(void)
{
  for (struct host_block *b = blocks; b; b = b->next)
    b->region = -1;
}

cudaError_t cudaHostAlloc(void **ptr, size_t size, unsigned int flags)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);
  size_t map_size;
  int64_t region = -1;
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
  p = map_shared(size, &map_size, &region);
  if (!p) {
    map_size = size;
    p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
             -1, 0);
    if (p == MAP_FAILED)
      return shim_fail(t, cudaErrorMemoryAllocation);
  }
  pthread_mutex_lock(&host_lock);
  e = add_block((uintptr_t)p, size, flags, t->device, 0);
  if (e == cudaSuccess) {
    blocks->region = region;
    blocks->map_size = map_size;
  }
  pthread_mutex_unlock(&host_lock);
  if (e != cudaSuccess) {
    if (region >= 0)
      tr_client_region_del(&shim_proc.cli, (uint32_t)region);
    munmap(p, map_size);
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
  /* The broker unmaps its view once nothing it queued still refers to it;
     our pages may go now. */
  if (b->region >= 0)
    tr_client_region_del(&shim_proc.cli, (uint32_t)b->region);
  munmap((void *)b->addr, b->map_size);
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
