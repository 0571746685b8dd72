/*
 * fake_libcuda.c: a stand-in for the NVIDIA driver, built as libcuda.so.1
 * in a directory of its own, so that test_cuda_backend can run the cuda
 * backend (gpu-agent/backends/cuda.c) on machines without a GPU.
 *
 * It implements exactly the entry points the backend resolves
 * (cuda_drv.h), with host memory standing in for device memory and the
 * driver's rules the backend depends on enforced strictly:
 *   - address reservations are real mmap()s at the requested address
 *     (PROT_NONE), refused when the range is taken, as the driver would
 *     place them elsewhere;
 *   - physical allocations are memfds, mapped at granularity-aligned
 *     addresses inside a reservation (MAP_FIXED over it), accessible only
 *     after cuMemSetAccess, and given back to the reservation by
 *     cuMemUnmap; memory is freed when its handle is released and its last
 *     mapping is gone;
 *   - copies and kernels touch only mapped, accessible ranges or module
 *     variables; anything else is CUDA_ERROR_INVALID_VALUE for a copy, and
 *     for a kernel CUDA_ERROR_ILLEGAL_ADDRESS, sticky for its context and
 *     reported at the next synchronisation, as on a GPU;
 *   - every call that needs a context fails without a current one.
 * Modules are PTX text starting with "// tremote fake module"; their
 * kernels are C functions here with the same parameter layouts as
 * tests/unit/test_cuda_backend_kernels.cu: fill(u32 *p, u32 n, u32 v)
 * writes p[i] = v + i, read_counter(u64 *out) stores the module variable
 * tr_counter (8 bytes, in this library's heap: outside every window, as
 * the driver's module variables are), spin(u32 *p, u64 ns) runs
 * asynchronously, as a GPU's kernels do, and sets p[0] = 1 when it ends
 * ns later (see pending).
 *
 * FAKECUDA_INIT_ERROR=N makes cuInit return N; FAKECUDA_INIT_DELAY_MS=N
 * makes it take N ms, as a real driver's start does (a quarter of a second
 * on an H200, cuInit and a context); FAKECUDA_DESTROY_DELAY_MS=N makes
 * a context's end (cuCtxDestroy, the primary context's last release) take
 * N ms (a session's end took 90 ms on an H200); FAKECUDA_COMPUTE_MODE=N
 * is the GPU's compute mode (CU_COMPUTEMODE_*, default 0);
 * FAKECUDA_COPY_PRINTS makes host copies print a line (see copy_prints).  fakecuda_stats() tells
 * the test what is still allocated.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cuda.h>

#define FAKE_TOTAL (1ull << 30)
#define FAKE_GRAN (2ull << 20)

/* What cuda.h no longer declares, and the test's window into us. */
CUresult cuCtxCreate_v2(CUcontext *pctx, unsigned int flags, CUdevice dev);
struct fakecuda_stats {
  int contexts;       /* created and not destroyed (primary excluded) */
  int reservations;   /* address ranges reserved */
  int maps;           /* mappings */
  int modules;        /* loaded */
  uint64_t used;      /* bytes of physical memory allocated */
  int streams;        /* created (cuStreamCreateWithPriority), not gone */
  int last_priority;  /* of the stream the newest launch went to */
  unsigned primary_flags, ctx_flags; /* the newest context's */
  int blocked;        /* synchronisations that had to wait */
  int primary_refs;   /* retains of the primary context not released */
  int syncs;          /* cuStreamSynchronize calls (where a real driver
                         writes device printf out) */
  int host_regs;      /* host ranges page-locked (cuMemHostRegister) */
  int most_queued;    /* spin kernels queued on one thread at once */
  int coop_launches;  /* cuLaunchKernelEx with the cooperative attribute */
  int cluster_launches; /* ... with a cluster of more than one block */
  unsigned last_cluster[3]; /* the newest such cluster's shape */
};
void fakecuda_stats(struct fakecuda_stats *s);

struct CUctx_st {
  CUresult sticky;
  bool primary;
  unsigned flags;
};

/* A created stream; destroyed with its context. */
struct CUstream_st {
  struct CUstream_st *next;
  CUcontext ctx;
  int priority;
};

struct fmem {
  int fd;
  uint64_t size;
  int refs; /* the handle + its mappings */
};

struct fmap {
  struct fmap *next;
  uint64_t addr, size;
  struct fmem *mem;
  bool rw;
};

struct fresv {
  struct fresv *next;
  uint64_t addr, size;
};

enum { K_FILL, K_READ_COUNTER, K_SPIN, K_COUNT };

struct CUfunc_st {
  int kind;
  struct CUmod_st *mod;
};

struct CUmod_st {
  uint64_t *counter;
  struct CUfunc_st fn[K_COUNT];
};

static const char *const kname[K_COUNT] = {"fill", "read_counter", "spin"};
static const size_t kparams[K_COUNT] = {16, 8, 16};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct CUctx_st primary = {.primary = true};
static __thread CUcontext cur;
static struct fmap *maps;
static struct fresv *resvs;
static struct CUstream_st *streams;
static int ncontexts, nmodules, last_priority, blocked, primary_refs, syncs;
/* Host ranges page-locked, by start (a few at most). */
static void *host_reg[64];
static int nhost_reg;
static unsigned ctx_flags;

/*
 * A spin kernel runs asynchronously, as kernels do on a GPU: it ends at
 * its done time, when its store to p is made (faulting if p is no longer
 * mapped then).  Spins queued on one thread run one after another (the
 * backend queues each thread's work on one stream): done_ns is the last
 * one's end.  Until then cuStreamQuery says CUDA_ERROR_NOT_READY and
 * cuStreamSynchronize sleeps; then every store is made, in order.  Other
 * kernels run when launched.
 */
#define PENDING_MAX 256
static __thread struct {
  uint64_t done_ns, p[PENDING_MAX];
  unsigned n;
  CUcontext ctx;
} pending;
static int most_queued;
/* Launches through cuLaunchKernelEx, by kind (see cuLaunchKernelEx). */
static int coop_launches, cluster_launches;
static unsigned last_cluster[3];
static uint64_t used;
static bool inited;

void fakecuda_stats(struct fakecuda_stats *s)
{
  pthread_mutex_lock(&mu);
  memset(s, 0, sizeof(*s));
  s->contexts = ncontexts;
  for (struct fresv *r = resvs; r; r = r->next)
    s->reservations++;
  for (struct fmap *m = maps; m; m = m->next)
    s->maps++;
  s->modules = nmodules;
  s->used = used;
  for (struct CUstream_st *st = streams; st; st = st->next)
    s->streams++;
  s->last_priority = last_priority;
  s->primary_flags = primary.flags;
  s->ctx_flags = ctx_flags;
  s->blocked = blocked;
  s->syncs = syncs;
  s->host_regs = nhost_reg;
  s->most_queued = most_queued;
  s->coop_launches = coop_launches;
  s->cluster_launches = cluster_launches;
  memcpy(s->last_cluster, last_cluster, sizeof(last_cluster));
  s->primary_refs = primary_refs;
  pthread_mutex_unlock(&mu);
}

/* The error the calling thread's context gives every call, or 0. */
static CUresult need_ctx(void)
{
  if (!inited)
    return CUDA_ERROR_NOT_INITIALIZED;
  if (!cur)
    return CUDA_ERROR_INVALID_CONTEXT;
  return cur->sticky;
}

/* ---- errors and the device --------------------------------------------- */

/* Sleep as many ms as the environment variable name says (none if unset):
   a real driver's start and a context's end take a while. */
static void env_delay(const char *name)
{
  const char *d = getenv(name);

  if (d && atoi(d) > 0)
    usleep((useconds_t)atoi(d) * 1000);
}

CUresult cuInit(unsigned int flags)
{
  const char *e = getenv("FAKECUDA_INIT_ERROR");

  env_delay("FAKECUDA_INIT_DELAY_MS");
  if (e && atoi(e))
    return (CUresult)atoi(e);
  inited = true;
  return CUDA_SUCCESS;
}

CUresult cuDriverGetVersion(int *v)
{
  *v = 13000;
  return CUDA_SUCCESS;
}

CUresult cuGetErrorName(CUresult e, const char **s)
{
  switch (e) {
  case CUDA_SUCCESS: *s = "CUDA_SUCCESS"; return CUDA_SUCCESS;
  case CUDA_ERROR_INVALID_VALUE: *s = "CUDA_ERROR_INVALID_VALUE"; break;
  case CUDA_ERROR_NO_DEVICE: *s = "CUDA_ERROR_NO_DEVICE"; break;
  case CUDA_ERROR_INVALID_PTX: *s = "CUDA_ERROR_INVALID_PTX"; break;
  case CUDA_ERROR_ILLEGAL_ADDRESS: *s = "CUDA_ERROR_ILLEGAL_ADDRESS"; break;
  default: *s = NULL; return CUDA_ERROR_INVALID_VALUE;
  }
  return CUDA_SUCCESS;
}

CUresult cuGetErrorString(CUresult e, const char **s)
{
  switch (e) {
  case CUDA_ERROR_NO_DEVICE: *s = "no CUDA-capable device is detected"; break;
  case CUDA_ERROR_INVALID_PTX: *s = "a PTX JIT compilation failed"; break;
  default: *s = "fake error"; break;
  }
  return CUDA_SUCCESS;
}

CUresult cuDeviceGetCount(int *n)
{
  *n = inited ? 1 : 0;
  return inited ? CUDA_SUCCESS : CUDA_ERROR_NOT_INITIALIZED;
}

CUresult cuDeviceGet(CUdevice *d, int ordinal)
{
  if (!inited)
    return CUDA_ERROR_NOT_INITIALIZED;
  if (ordinal != 0)
    return CUDA_ERROR_INVALID_DEVICE;
  *d = 0;
  return CUDA_SUCCESS;
}

CUresult cuDeviceGetName(char *name, int len, CUdevice dev)
{
  strncpy(name, "tremote fake GPU", (size_t)len);
  return CUDA_SUCCESS;
}

CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev)
{
  *bytes = FAKE_TOTAL;
  return CUDA_SUCCESS;
}

CUresult cuDeviceGetUuid_v2(CUuuid *u, CUdevice dev)
{
  for (int i = 0; i < 16; i++)
    u->bytes[i] = (char)(0xa0 + i);
  return CUDA_SUCCESS;
}

/* Device attributes: the ones the backend decides on have real values,
   MPS_ENABLED is unknown to this "driver", every other is 1000 + its
   number so the test can tell the device's answers from tremote's. */
CUresult cuDeviceGetAttribute(int *v, CUdevice_attribute a, CUdevice dev)
{
  switch (a) {
  case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: *v = 9; break;
  case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: *v = 0; break;
  case CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED: *v = 1; break;
  case CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING: *v = 1; break;
  case CU_DEVICE_ATTRIBUTE_MPS_ENABLED: return CUDA_ERROR_INVALID_VALUE;
  /* What programs check before they start (tests/apps): a GPU's. */
  case CU_DEVICE_ATTRIBUTE_WARP_SIZE: *v = 32; break;
  case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK: *v = 1024; break;
  case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT: *v = 4; break;
  case CU_DEVICE_ATTRIBUTE_COOPERATIVE_LAUNCH: *v = 1; break;
  case CU_DEVICE_ATTRIBUTE_CLUSTER_LAUNCH: *v = 1; break; /* 9.0 */
  /* Where it sits: 0000:3b:00.0 (tremote-smi's pci.bus_id). */
  case CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID: *v = 0; break;
  case CU_DEVICE_ATTRIBUTE_PCI_BUS_ID: *v = 0x3b; break;
  case CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID: *v = 0; break;
  case CU_DEVICE_ATTRIBUTE_COMPUTE_MODE: /* FAKECUDA_COMPUTE_MODE, else 0 */
    *v = getenv("FAKECUDA_COMPUTE_MODE") ? atoi(getenv("FAKECUDA_COMPUTE_MODE"))
                                         : CU_COMPUTEMODE_DEFAULT;
    break;
  default: *v = 1000 + (int)a; break;
  }
  return CUDA_SUCCESS;
}

/* ---- contexts ---------------------------------------------------------- */

CUresult cuDevicePrimaryCtxSetFlags_v2(CUdevice dev, unsigned int flags)
{
  if (flags & ~(unsigned)(CU_CTX_SCHED_MASK | CU_CTX_LMEM_RESIZE_TO_MAX))
    return CUDA_ERROR_INVALID_VALUE;
  primary.flags = flags;
  return CUDA_SUCCESS;
}

CUresult cuDevicePrimaryCtxRetain(CUcontext *c, CUdevice dev)
{
  pthread_mutex_lock(&mu);
  primary_refs++;
  pthread_mutex_unlock(&mu);
  *c = &primary;
  return CUDA_SUCCESS;
}

CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev)
{
  CUresult r = CUDA_SUCCESS;
  bool last = false;

  pthread_mutex_lock(&mu);
  if (primary_refs > 0)
    last = --primary_refs == 0;
  else
    r = CUDA_ERROR_INVALID_CONTEXT; /* released more than retained */
  pthread_mutex_unlock(&mu);
  if (last)
    env_delay("FAKECUDA_DESTROY_DELAY_MS");
  return r;
}

CUresult cuCtxCreate_v2(CUcontext *pctx, unsigned int flags, CUdevice dev)
{
  struct CUctx_st *c = calloc(1, sizeof(*c));

  if (!c)
    return CUDA_ERROR_OUT_OF_MEMORY;
  c->flags = flags;
  pthread_mutex_lock(&mu);
  ncontexts++;
  ctx_flags = flags;
  pthread_mutex_unlock(&mu);
  cur = c;
  *pctx = c;
  return CUDA_SUCCESS;
}

CUresult cuCtxDestroy_v2(CUcontext c)
{
  if (!c || c->primary)
    return CUDA_ERROR_INVALID_CONTEXT;
  env_delay("FAKECUDA_DESTROY_DELAY_MS");
  if (cur == c)
    cur = NULL;
  pthread_mutex_lock(&mu);
  ncontexts--;
  for (struct CUstream_st **pp = &streams; *pp;) {
    struct CUstream_st *st = *pp;

    if (st->ctx == c) {
      *pp = st->next;
      free(st);
    } else {
      pp = &st->next;
    }
  }
  pthread_mutex_unlock(&mu);
  free(c);
  return CUDA_SUCCESS;
}

CUresult cuCtxSetCurrent(CUcontext c)
{
  cur = c;
  return CUDA_SUCCESS;
}

CUresult cuCtxPopCurrent_v2(CUcontext *c)
{
  *c = cur;
  cur = NULL;
  return CUDA_SUCCESS;
}

CUresult cuCtxSetLimit(CUlimit limit, size_t value)
{
  return need_ctx();
}

/* The stream handles the backend may pass: the per-thread default one,
   or one of the current context's created streams.  Under mu. */
static bool stream_ok(CUstream s)
{
  if (s == CU_STREAM_PER_THREAD)
    return true;
  for (struct CUstream_st *st = streams; st; st = st->next)
    if (st == s)
      return st->ctx == cur;
  return false;
}

CUresult cuStreamCreateWithPriority(CUstream *ps, unsigned int flags,
                                    int priority)
{
  struct CUstream_st *st;
  CUresult r = need_ctx();

  if (r)
    return r;
  if (flags & ~(unsigned)CU_STREAM_NON_BLOCKING)
    return CUDA_ERROR_INVALID_VALUE;
  st = calloc(1, sizeof(*st));
  if (!st)
    return CUDA_ERROR_OUT_OF_MEMORY;
  /* Clamped into [-5, 0], as the driver does. */
  st->priority = priority > 0 ? 0 : priority < -5 ? -5 : priority;
  st->ctx = cur;
  pthread_mutex_lock(&mu);
  st->next = streams;
  streams = st;
  pthread_mutex_unlock(&mu);
  *ps = st;
  return CUDA_SUCCESS;
}

static uint64_t now_ns(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static bool accessible(uint64_t a, uint64_t n);

/* The calling thread's spin kernel has ended: make its store. */
static void pending_end(void)
{
  bool ok;

  if (!pending.ctx)
    return;
  for (unsigned i = 0; i < pending.n; i++) {
    pthread_mutex_lock(&mu);
    ok = accessible(pending.p[i], 4);
    if (ok)
      *(uint32_t *)(uintptr_t)pending.p[i] = 1;
    pthread_mutex_unlock(&mu);
    if (!ok) {
      pending.ctx->sticky = CUDA_ERROR_ILLEGAL_ADDRESS;
      break; /* the context is gone: the ones after never run */
    }
  }
  pending.n = 0;
  pending.ctx = NULL;
}

/* The error a call on stream s gets before it does anything, or 0. */
static CUresult stream_check(CUstream s)
{
  CUresult r = need_ctx();
  bool ok;

  if (r)
    return r;
  pthread_mutex_lock(&mu);
  ok = stream_ok(s);
  pthread_mutex_unlock(&mu);
  return ok ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

CUresult cuStreamQuery(CUstream s)
{
  CUresult r = stream_check(s);

  if (r)
    return r;
  if (pending.ctx && now_ns() < pending.done_ns)
    return CUDA_ERROR_NOT_READY;
  pending_end();
  return need_ctx();
}

CUresult cuStreamSynchronize(CUstream s)
{
  CUresult r = stream_check(s);

  if (r)
    return r;
  pthread_mutex_lock(&mu);
  syncs++;
  pthread_mutex_unlock(&mu);
  if (pending.ctx) {
    uint64_t now = now_ns();

    if (now < pending.done_ns) {
      struct timespec ts = {0, (long)(pending.done_ns - now)};

      while (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
      }
      nanosleep(&ts, NULL);
      pthread_mutex_lock(&mu);
      blocked++;
      pthread_mutex_unlock(&mu);
    }
    pending_end();
  }
  return need_ctx();
}

/* Page-locking is bookkeeping here: host memory is what copies use. */
CUresult cuMemHostRegister_v2(void *p, size_t bytes, unsigned int flags)
{
  CUresult r = need_ctx();

  (void)flags;
  if (r)
    return r;
  if (!p || !bytes)
    return CUDA_ERROR_INVALID_VALUE;
  pthread_mutex_lock(&mu);
  for (int i = 0; i < nhost_reg; i++)
    if (host_reg[i] == p) {
      pthread_mutex_unlock(&mu);
      return CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED;
    }
  if (nhost_reg == (int)(sizeof(host_reg) / sizeof(host_reg[0]))) {
    pthread_mutex_unlock(&mu);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  host_reg[nhost_reg++] = p;
  pthread_mutex_unlock(&mu);
  return CUDA_SUCCESS;
}

CUresult cuMemHostUnregister(void *p)
{
  CUresult r = need_ctx();

  if (r)
    return r;
  pthread_mutex_lock(&mu);
  for (int i = 0; i < nhost_reg; i++)
    if (host_reg[i] == p) {
      host_reg[i] = host_reg[--nhost_reg];
      pthread_mutex_unlock(&mu);
      return CUDA_SUCCESS;
    }
  pthread_mutex_unlock(&mu);
  return CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED;
}

CUresult cuMemGetInfo_v2(size_t *f, size_t *t)
{
  CUresult r = need_ctx();

  if (r)
    return r;
  pthread_mutex_lock(&mu);
  *f = FAKE_TOTAL - used;
  *t = FAKE_TOTAL;
  pthread_mutex_unlock(&mu);
  return CUDA_SUCCESS;
}

/* ---- virtual memory management ----------------------------------------- */

CUresult cuMemGetAllocationGranularity(size_t *g, const CUmemAllocationProp *p,
                                       CUmemAllocationGranularity_flags o)
{
  if (p->type != CU_MEM_ALLOCATION_TYPE_PINNED ||
      p->location.type != CU_MEM_LOCATION_TYPE_DEVICE || p->location.id != 0)
    return CUDA_ERROR_INVALID_VALUE;
  *g = FAKE_GRAN;
  return CUDA_SUCCESS;
}

CUresult cuMemAddressReserve(CUdeviceptr *ptr, size_t size, size_t align,
                             CUdeviceptr addr, unsigned long long flags)
{
  struct fresv *r;
  void *p;

  if (!inited)
    return CUDA_ERROR_NOT_INITIALIZED;
  if (size == 0 || size % FAKE_GRAN || addr % FAKE_GRAN)
    return CUDA_ERROR_INVALID_VALUE;
  r = calloc(1, sizeof(*r));
  if (!r)
    return CUDA_ERROR_OUT_OF_MEMORY;
  p = mmap((void *)(uintptr_t)addr, size, PROT_NONE,
           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE,
           -1, 0);
  if (p == MAP_FAILED) {
    /* Taken: the driver reserves elsewhere, as a hint allows. */
    p = mmap(NULL, size, PROT_NONE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
      free(r);
      return CUDA_ERROR_OUT_OF_MEMORY;
    }
  }
  r->addr = (uint64_t)(uintptr_t)p;
  r->size = size;
  pthread_mutex_lock(&mu);
  r->next = resvs;
  resvs = r;
  pthread_mutex_unlock(&mu);
  *ptr = r->addr;
  return CUDA_SUCCESS;
}

CUresult cuMemAddressFree(CUdeviceptr ptr, size_t size)
{
  struct fresv **pp, *r;

  pthread_mutex_lock(&mu);
  for (pp = &resvs; *pp && ((*pp)->addr != ptr || (*pp)->size != size);
       pp = &(*pp)->next)
    ;
  r = *pp;
  for (struct fmap *m = maps; r && m; m = m->next)
    if (m->addr >= ptr && m->addr < ptr + size)
      r = NULL; /* still mapped inside: the driver refuses */
  if (r)
    *pp = r->next;
  pthread_mutex_unlock(&mu);
  if (!r)
    return CUDA_ERROR_INVALID_VALUE;
  munmap((void *)(uintptr_t)r->addr, r->size);
  free(r);
  return CUDA_SUCCESS;
}

/* mu held */
static void mem_put(struct fmem *m)
{
  if (--m->refs == 0) {
    close(m->fd);
    used -= m->size;
    free(m);
  }
}

CUresult cuMemCreate(CUmemGenericAllocationHandle *h, size_t size,
                     const CUmemAllocationProp *p, unsigned long long flags)
{
  struct fmem *m;

  if (!inited)
    return CUDA_ERROR_NOT_INITIALIZED;
  if (size == 0 || size % FAKE_GRAN || p->type != CU_MEM_ALLOCATION_TYPE_PINNED)
    return CUDA_ERROR_INVALID_VALUE;
  m = calloc(1, sizeof(*m));
  if (!m)
    return CUDA_ERROR_OUT_OF_MEMORY;
  pthread_mutex_lock(&mu);
  if (size > FAKE_TOTAL - used) {
    pthread_mutex_unlock(&mu);
    free(m);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  used += size;
  pthread_mutex_unlock(&mu);
  m->fd = memfd_create("fakecuda", MFD_CLOEXEC);
  if (m->fd < 0 || ftruncate(m->fd, (off_t)size) < 0) {
    if (m->fd >= 0)
      close(m->fd);
    pthread_mutex_lock(&mu);
    used -= size;
    pthread_mutex_unlock(&mu);
    free(m);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  m->size = size;
  m->refs = 1;
  *h = (CUmemGenericAllocationHandle)(uintptr_t)m;
  return CUDA_SUCCESS;
}

CUresult cuMemRelease(CUmemGenericAllocationHandle h)
{
  pthread_mutex_lock(&mu);
  mem_put((struct fmem *)(uintptr_t)h);
  pthread_mutex_unlock(&mu);
  return CUDA_SUCCESS;
}

CUresult cuMemMap(CUdeviceptr ptr, size_t size, size_t offset,
                  CUmemGenericAllocationHandle h, unsigned long long flags)
{
  struct fmem *m = (struct fmem *)(uintptr_t)h;
  struct fmap *fm;
  bool inside = false, overlap = false;
  void *p;

  if (size == 0 || offset != 0 || size != m->size || ptr % FAKE_GRAN)
    return CUDA_ERROR_INVALID_VALUE;
  fm = calloc(1, sizeof(*fm));
  if (!fm)
    return CUDA_ERROR_OUT_OF_MEMORY;
  pthread_mutex_lock(&mu);
  for (struct fresv *r = resvs; r; r = r->next)
    if (ptr >= r->addr && ptr - r->addr <= r->size &&
        size <= r->size - (ptr - r->addr))
      inside = true;
  for (struct fmap *o = maps; o; o = o->next)
    if (ptr < o->addr + o->size && o->addr < ptr + size)
      overlap = true;
  if (!inside || overlap) {
    pthread_mutex_unlock(&mu);
    free(fm);
    return CUDA_ERROR_INVALID_VALUE;
  }
  p = mmap((void *)(uintptr_t)ptr, size, PROT_NONE, MAP_SHARED | MAP_FIXED,
           m->fd, 0);
  if (p == MAP_FAILED) {
    pthread_mutex_unlock(&mu);
    free(fm);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  fm->addr = ptr;
  fm->size = size;
  fm->mem = m;
  m->refs++;
  fm->next = maps;
  maps = fm;
  pthread_mutex_unlock(&mu);
  return CUDA_SUCCESS;
}

CUresult cuMemUnmap(CUdeviceptr ptr, size_t size)
{
  struct fmap **pp, *fm;

  pthread_mutex_lock(&mu);
  for (pp = &maps; *pp && ((*pp)->addr != ptr || (*pp)->size != size);
       pp = &(*pp)->next)
    ;
  fm = *pp;
  if (!fm) {
    pthread_mutex_unlock(&mu);
    return CUDA_ERROR_INVALID_VALUE;
  }
  *pp = fm->next;
  /* Back to a reservation: inaccessible, still taken. */
  mmap((void *)(uintptr_t)ptr, size, PROT_NONE,
       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
  mem_put(fm->mem);
  pthread_mutex_unlock(&mu);
  free(fm);
  return CUDA_SUCCESS;
}

CUresult cuMemSetAccess(CUdeviceptr ptr, size_t size, const CUmemAccessDesc *d,
                        size_t count)
{
  struct fmap *fm;

  if (count != 1 || d->location.type != CU_MEM_LOCATION_TYPE_DEVICE ||
      d->flags != CU_MEM_ACCESS_FLAGS_PROT_READWRITE)
    return CUDA_ERROR_INVALID_VALUE;
  pthread_mutex_lock(&mu);
  for (fm = maps; fm && (fm->addr != ptr || fm->size != size); fm = fm->next)
    ;
  if (fm) {
    mprotect((void *)(uintptr_t)ptr, size, PROT_READ | PROT_WRITE);
    fm->rw = true;
  }
  pthread_mutex_unlock(&mu);
  return fm ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

/* ---- device memory access (mu held) ------------------------------------ */

static struct CUmod_st *modules[64];

/* Whether [a, a + n) is device memory the device may touch. */
static bool accessible(uint64_t a, uint64_t n)
{
  for (struct fmap *m = maps; m; m = m->next)
    if (m->rw && a >= m->addr && a - m->addr <= m->size &&
        n <= m->size - (a - m->addr))
      return true;
  for (int i = 0; i < 64; i++)
    if (modules[i] && a >= (uint64_t)(uintptr_t)modules[i]->counter &&
        a - (uint64_t)(uintptr_t)modules[i]->counter <= 8 &&
        n <= 8 - (a - (uint64_t)(uintptr_t)modules[i]->counter))
      return true;
  return false;
}

static CUresult copy(void *dst, const void *src, uint64_t dev_a, uint64_t dev_b,
                     size_t n)
{
  CUresult r = need_ctx();

  if (r)
    return r;
  pthread_mutex_lock(&mu);
  if (!accessible(dev_a, n) || (dev_b && !accessible(dev_b, n))) {
    pthread_mutex_unlock(&mu);
    return CUDA_ERROR_INVALID_VALUE;
  }
  memmove(dst, src, n);
  pthread_mutex_unlock(&mu);
  return CUDA_SUCCESS;
}

/* FAKECUDA_COPY_PRINTS: a copy writes a line on stdout, as a driver
   writes what kernels printed at its next synchronising call, which may
   be another thread's copy. */
static void copy_prints(void)
{
  if (getenv("FAKECUDA_COPY_PRINTS"))
    fputs("fake: kernel output at a copy\n", stdout);
}

CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src, size_t n,
                              CUstream s)
{
  copy_prints();
  return copy((void *)(uintptr_t)dst, src, dst, 0, n);
}

CUresult cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src, size_t n, CUstream s)
{
  copy_prints();
  return copy(dst, (const void *)(uintptr_t)src, src, 0, n);
}

CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t n,
                              CUstream s)
{
  return copy((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, dst, src,
              n);
}

CUresult cuMemsetD8Async(CUdeviceptr dst, unsigned char v, size_t n,
                         CUstream s)
{
  CUresult r = need_ctx();

  if (r)
    return r;
  pthread_mutex_lock(&mu);
  if (!accessible(dst, n)) {
    pthread_mutex_unlock(&mu);
    return CUDA_ERROR_INVALID_VALUE;
  }
  memset((void *)(uintptr_t)dst, v, n);
  pthread_mutex_unlock(&mu);
  return CUDA_SUCCESS;
}

/* ---- modules and kernels ----------------------------------------------- */

static const char fake_magic[] = "// tremote fake module";

CUresult cuModuleLoadDataEx(CUmodule *out, const void *image, unsigned int n,
                            CUjit_option *opt, void **val)
{
  struct CUmod_st *m;
  CUresult r = need_ctx();
  int slot = -1;

  if (r)
    return r;
  if (strncmp(image, fake_magic, sizeof(fake_magic) - 1) != 0) {
    /* As the JIT does: the error log names the line. */
    for (unsigned i = 0; i < n; i++)
      if (opt[i] == CU_JIT_ERROR_LOG_BUFFER)
        strcpy(val[i], "ptxas fatal: line 1: not a fake module\nmore");
    return CUDA_ERROR_INVALID_PTX;
  }
  m = calloc(1, sizeof(*m));
  if (!m)
    return CUDA_ERROR_OUT_OF_MEMORY;
  m->counter = calloc(1, sizeof(*m->counter));
  pthread_mutex_lock(&mu);
  for (int i = 0; i < 64 && slot < 0; i++)
    if (!modules[i])
      slot = i;
  if (slot >= 0 && m->counter) {
    modules[slot] = m;
    nmodules++;
  }
  pthread_mutex_unlock(&mu);
  if (slot < 0 || !m->counter) {
    free(m->counter);
    free(m);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  for (int k = 0; k < K_COUNT; k++) {
    m->fn[k].kind = k;
    m->fn[k].mod = m;
  }
  *out = m;
  return CUDA_SUCCESS;
}

CUresult cuModuleUnload(CUmodule m)
{
  int found = 0;

  pthread_mutex_lock(&mu);
  for (int i = 0; i < 64; i++)
    if (modules[i] == m) {
      modules[i] = NULL;
      nmodules--;
      found = 1;
    }
  pthread_mutex_unlock(&mu);
  if (!found)
    return CUDA_ERROR_INVALID_HANDLE;
  free(m->counter);
  free(m);
  return CUDA_SUCCESS;
}

CUresult cuModuleGetFunction(CUfunction *f, CUmodule m, const char *name)
{
  CUresult r = need_ctx();

  if (r)
    return r;
  for (int k = 0; k < K_COUNT; k++)
    if (strcmp(name, kname[k]) == 0) {
      *f = &m->fn[k];
      return CUDA_SUCCESS;
    }
  return CUDA_ERROR_NOT_FOUND;
}

CUresult cuModuleGetGlobal_v2(CUdeviceptr *p, size_t *bytes, CUmodule m,
                              const char *name)
{
  CUresult r = need_ctx();

  if (r)
    return r;
  if (strcmp(name, "tr_counter") != 0)
    return CUDA_ERROR_NOT_FOUND;
  *p = (CUdeviceptr)(uintptr_t)m->counter;
  *bytes = sizeof(*m->counter);
  return CUDA_SUCCESS;
}

CUresult cuFuncGetAttribute(int *v, CUfunction_attribute a, CUfunction f)
{
  switch (a) {
  case CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK: *v = 1024; break;
  case CU_FUNC_ATTRIBUTE_NUM_REGS: *v = 16; break;
  case CU_FUNC_ATTRIBUTE_PTX_VERSION: *v = 80; break;
  case CU_FUNC_ATTRIBUTE_BINARY_VERSION: *v = 90; break;
  case CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES: *v = 48 << 10; break;
  default: *v = 0; break;
  }
  return need_ctx();
}

CUresult cuFuncSetAttribute(CUfunction f, CUfunction_attribute a, int v)
{
  return need_ctx();
}

CUresult cuFuncGetParamInfo(CUfunction f, size_t i, size_t *off, size_t *sz)
{
  static const size_t fill[][2] = {{0, 8}, {8, 4}, {12, 4}};

  switch (f->kind) {
  case K_FILL:
    if (i >= 3)
      return CUDA_ERROR_INVALID_VALUE;
    *off = fill[i][0];
    *sz = fill[i][1];
    return CUDA_SUCCESS;
  default:
    if (i >= kparams[f->kind] / 8)
      return CUDA_ERROR_INVALID_VALUE;
    *off = i * 8;
    *sz = 8;
    return CUDA_SUCCESS;
  }
}

/*
 * Kernels run at once, on the calling thread; a fault is recorded in the
 * context and returned by the next call, as a GPU reports it at the next
 * synchronisation.
 */
CUresult cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz,
                        unsigned bx, unsigned by, unsigned bz, unsigned shmem,
                        CUstream s, void **params, void **extra)
{
  const uint8_t *buf = NULL;
  size_t size = 0;
  uint64_t threads = (uint64_t)gx * gy * gz * bx * by * bz, p, a2;
  CUresult r = need_ctx();
  bool ok;

  if (r)
    return r;
  if (params || !extra)
    return CUDA_ERROR_INVALID_VALUE; /* the backend passes a buffer */
  for (int i = 0; extra[i] != CU_LAUNCH_PARAM_END; i += 2) {
    if (extra[i] == CU_LAUNCH_PARAM_BUFFER_POINTER)
      buf = extra[i + 1];
    else if (extra[i] == CU_LAUNCH_PARAM_BUFFER_SIZE)
      size = *(size_t *)extra[i + 1];
    else
      return CUDA_ERROR_INVALID_VALUE;
  }
  if (!buf || size != kparams[f->kind] || threads == 0)
    return CUDA_ERROR_INVALID_VALUE;
  memcpy(&p, buf, 8);
  a2 = 0;
  if (size > 8)
    memcpy(&a2, buf + 8, 8);
  pthread_mutex_lock(&mu);
  ok = stream_ok(s);
  if (ok)
    last_priority = s == CU_STREAM_PER_THREAD ? 0 : s->priority;
  pthread_mutex_unlock(&mu);
  if (!ok)
    return CUDA_ERROR_INVALID_HANDLE;
  if (f->kind == K_SPIN) { /* asynchronous: see pending */
    uint64_t now = now_ns();

    if (pending.ctx && (pending.ctx != cur || pending.n == PENDING_MAX))
      pending_end(); /* (never in the tests) */
    pending.done_ns = (pending.ctx && pending.done_ns > now ? pending.done_ns
                                                            : now) + a2;
    pending.p[pending.n++] = p;
    pending.ctx = cur;
    pthread_mutex_lock(&mu);
    if ((int)pending.n > most_queued)
      most_queued = (int)pending.n;
    pthread_mutex_unlock(&mu);
    return CUDA_SUCCESS;
  }
  pthread_mutex_lock(&mu);
  switch (f->kind) {
  case K_FILL: {
    uint32_t n = (uint32_t)a2, v = (uint32_t)(a2 >> 32);
    uint64_t k = n < threads ? n : threads;

    ok = k == 0 || accessible(p, k * 4);
    for (uint64_t i = 0; ok && i < k; i++)
      ((uint32_t *)(uintptr_t)p)[i] = v + (uint32_t)i;
    break;
  }
  default: /* K_READ_COUNTER */
    ok = accessible(p, 8);
    if (ok)
      *(uint64_t *)(uintptr_t)p = *f->mod->counter;
    break;
  }
  pthread_mutex_unlock(&mu);
  if (!ok)
    cur->sticky = CUDA_ERROR_ILLEGAL_ADDRESS;
  return CUDA_SUCCESS;
}

/*
 * A launch with attributes: the cooperative one and a cluster's shape are
 * counted (fakecuda_stats), the rest refused as unknown here; the kernel
 * runs as cuLaunchKernel runs it.  A cluster must divide the grid, as the
 * driver wants.
 */
CUresult cuLaunchKernelEx(const CUlaunchConfig *c, CUfunction f,
                          void **params, void **extra)
{
  bool coop = false;
  unsigned cl[3] = {1, 1, 1};

  if (!c || (c->numAttrs && !c->attrs))
    return CUDA_ERROR_INVALID_VALUE;
  for (unsigned i = 0; i < c->numAttrs; i++) {
    const CUlaunchAttribute *a = &c->attrs[i];

    if (a->id == CU_LAUNCH_ATTRIBUTE_COOPERATIVE) {
      coop = a->value.cooperative != 0;
    } else if (a->id == CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION) {
      cl[0] = a->value.clusterDim.x;
      cl[1] = a->value.clusterDim.y;
      cl[2] = a->value.clusterDim.z;
      if (!cl[0] || !cl[1] || !cl[2] || c->gridDimX % cl[0] ||
          c->gridDimY % cl[1] || c->gridDimZ % cl[2])
        return CUDA_ERROR_INVALID_CLUSTER_SIZE;
    } else {
      return CUDA_ERROR_INVALID_VALUE;
    }
  }
  pthread_mutex_lock(&mu);
  coop_launches += coop;
  if (cl[0] * cl[1] * cl[2] > 1) {
    cluster_launches++;
    memcpy(last_cluster, cl, sizeof(cl));
  }
  pthread_mutex_unlock(&mu);
  return cuLaunchKernel(f, c->gridDimX, c->gridDimY, c->gridDimZ, c->blockDimX,
                        c->blockDimY, c->blockDimZ, c->sharedMemBytes,
                        c->hStream, params, extra);
}
