/*
 * shim_module.c: the registration entry points nvcc's generated code calls
 * (__cudaRegisterFatBinary and friends) and kernel launches.
 *
 * Registration happens in static constructors, before main() and before
 * any broker is contacted, so it only records: the fatbin's address, size
 * and XXH3-128 hash, and which host stub names which kernel.  Modules are
 * loaded on a device the first time one of their kernels is launched there
 * (MODULE_LOAD; the bytes are uploaded only if the agent lacks the hash),
 * and a kernel's parameter layout is derived here from the fatbin, so a
 * launch is packed without asking the agent.
 *
 * Handles are client-assigned 64-bit numbers (PROTOCOL.md §1); the
 * cudaKernel_t nvcc caches in a static is our struct shim_func, which lives
 * until the process exits.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "fatbin.h"
#include "shim.h"

struct shim_module;

struct shim_func {
  struct shim_module *mod;
  const void *host_fun; /* the host stub nvcc registered */
  char *name;           /* mangled device name */
  uint64_t handle;
  int have_params;      /* params derived */
  int params_err;       /* -errno if derivation failed */
  struct tr_kparams params;
  _Atomic uint64_t sent_to; /* bitmask of ordinals that know this function */
  /* cudaFuncAttributeMaxDynamicSharedMemorySize: 0 = the device default */
  _Atomic uint32_t max_dyn_shared;
  struct shim_func *next;
};

/* A __device__ or __constant__ variable nvcc registered. */
struct shim_var {
  struct shim_module *mod;
  const void *host_var; /* the host shadow the program names it by */
  char *name;           /* device name */
  size_t size;
  int constant;
  struct shim_var *next;
};

struct shim_module {
  const void *fatbin;
  size_t size;
  uint8_t hash[16];
  uint64_t handle;
  _Atomic uint64_t loaded_on; /* bitmask of ordinals where MODULE_LOAD succeeded */
  int unregistered;
  struct shim_func *funcs;
  struct shim_var *vars;
  struct shim_module *next;
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct shim_module *modules;
static _Atomic uint64_t next_handle = 1;

static uint64_t new_handle(void)
{
  return atomic_fetch_add(&next_handle, 1);
}

void **__cudaRegisterFatBinary(void *wrapper)
{
  struct shim_module *m = calloc(1, sizeof(*m));
  const void *fb;
  size_t size;

  if (!m)
    return NULL;
  if (tr_fatbin_from_wrapper(wrapper, &fb, &size) < 0) {
    shim_warn_once("badfatbin", "a module registered by the program is not "
                                "a fatbin this version understands; its "
                                "kernels will fail to launch");
  } else {
    m->fatbin = fb;
    m->size = size;
    tr_fatbin_hash(fb, size, m->hash);
  }
  m->handle = new_handle();
  pthread_mutex_lock(&reg_lock);
  m->next = modules;
  modules = m;
  pthread_mutex_unlock(&reg_lock);
  /* nvcc only stores and passes back this pointer. */
  return (void **)m;
}

void __cudaRegisterFatBinaryEnd(void **handle)
{
  (void)handle;
}

void __cudaUnregisterFatBinary(void **handle)
{
  struct shim_module *m = (struct shim_module *)handle;

  /* Runs from atexit handlers, possibly after the broker is gone: only
     mark it.  The agent frees the session's modules when the session ends,
     and freeing the structs here would leave nvcc's cached kernel handles
     dangling for other atexit handlers. */
  if (m)
    m->unregistered = 1;
}

char __cudaInitModule(void **handle)
{
  (void)handle;
  return 1;
}

void __cudaRegisterFunction(void **handle, const char *host_fun,
                            char *device_fun, const char *device_name,
                            int thread_limit, uint3 *tid, uint3 *bid,
                            dim3 *bdim, dim3 *gdim, int *wsize)
{
  struct shim_module *m = (struct shim_module *)handle;
  struct shim_func *f;

  (void)device_fun;
  (void)thread_limit;
  (void)tid;
  (void)bid;
  (void)bdim;
  (void)gdim;
  (void)wsize;
  if (!m || !device_name)
    return;
  f = calloc(1, sizeof(*f));
  if (!f)
    return;
  f->name = strdup(device_name);
  if (!f->name) {
    free(f);
    return;
  }
  f->mod = m;
  f->host_fun = host_fun;
  f->handle = new_handle();
  pthread_mutex_lock(&reg_lock);
  f->next = m->funcs;
  m->funcs = f;
  pthread_mutex_unlock(&reg_lock);
}

void __cudaRegisterVar(void **handle, char *host_var, char *device_address,
                       const char *device_name, int ext, size_t size,
                       int constant, int global)
{
  struct shim_module *m = (struct shim_module *)handle;
  struct shim_var *v;

  (void)device_address;
  (void)ext;
  (void)global;
  if (!m || !device_name || !host_var)
    return;
  v = calloc(1, sizeof(*v));
  if (!v)
    return;
  v->name = strdup(device_name);
  if (!v->name) {
    free(v);
    return;
  }
  v->mod = m;
  v->host_var = host_var;
  v->size = size;
  v->constant = constant;
  pthread_mutex_lock(&reg_lock);
  v->next = m->vars;
  m->vars = v;
  pthread_mutex_unlock(&reg_lock);
}

static struct shim_func *find_func(const void *host_fun)
{
  struct shim_func *found = NULL;

  pthread_mutex_lock(&reg_lock);
  for (struct shim_module *m = modules; m && !found; m = m->next)
    for (struct shim_func *f = m->funcs; f; f = f->next)
      if (f->host_fun == host_fun) {
        found = f;
        break;
      }
  pthread_mutex_unlock(&reg_lock);
  return found;
}

cudaError_t __cudaGetKernel(cudaKernel_t *kernel, const void *host_fun)
{
  struct shim_func *f;

  if (!kernel)
    return cudaErrorInvalidValue;
  f = find_func(host_fun);
  if (!f) {
    *kernel = NULL;
    return cudaErrorInvalidDeviceFunction;
  }
  *kernel = (cudaKernel_t)f;
  return cudaSuccess;
}

unsigned __cudaPushCallConfiguration(dim3 grid, dim3 block, size_t shmem,
                                     struct CUstream_st *stream)
{
  struct shim_thread *t = shim_self();

  if (!t || t->ncfg == (int)(sizeof(t->cfg) / sizeof(t->cfg[0])))
    return 1;
  t->cfg[t->ncfg].grid = grid;
  t->cfg[t->ncfg].block = block;
  t->cfg[t->ncfg].shmem = shmem;
  t->cfg[t->ncfg].stream = stream;
  t->ncfg++;
  return 0;
}

cudaError_t __cudaPopCallConfiguration(dim3 *grid, dim3 *block, size_t *shmem,
                                       void *stream)
{
  struct shim_thread *t = shim_self();

  if (!t || t->ncfg == 0)
    return cudaErrorMissingConfiguration;
  t->ncfg--;
  *grid = t->cfg[t->ncfg].grid;
  *block = t->cfg[t->ncfg].block;
  *shmem = t->cfg[t->ncfg].shmem;
  memcpy(stream, &t->cfg[t->ncfg].stream, sizeof(void *));
  return cudaSuccess;
}

/*
 * Make sure the module of f is loaded on dev and the agent knows f's
 * handle.  Loading is a round trip, once per module and device.
 */
static int ensure_module(struct shim_thread *t, struct shim_module *m, int dev)
{
  uint64_t bit = 1ull << dev;
  uint8_t args[24];
  int rc;

  if (!m->fatbin)
    return cudaErrorInvalidKernelImage;
  if (!(atomic_load(&m->loaded_on) & bit)) {
    tr_put_u64(args, m->handle);
    memcpy(args + 8, m->hash, 16);
    /* An earlier call's error that a reply here reports is the program's
       to hear at its next synchronisation (shim_call_own): the agent did
       what was asked, so the module is loaded all the same. */
    rc = shim_call_own(t, shim_call(t, dev, TR_OP_MODULE_LOAD, args, 24, NULL,
                                    0, 1, NULL, 0, NULL));
    if (rc == (int)TR_ST_NEED_MODULE) {
      /* The agent has never seen these bytes: upload, then load again. */
      uint8_t pargs[32];
      size_t off = 0;

      do {
        size_t len = m->size - off < TR_CHUNK_MAX ? m->size - off : TR_CHUNK_MAX;
        memcpy(pargs, m->hash, 16);
        tr_put_u64(pargs + 16, m->size);
        tr_put_u64(pargs + 24, off);
        rc = shim_call_own(t, shim_call(t, dev, TR_OP_MODULE_PUT, pargs, 32,
                                        (const uint8_t *)m->fatbin + off,
                                        (uint32_t)len, off + len == m->size,
                                        NULL, 0, NULL));
        if (rc)
          return rc;
        off += len;
      } while (off < m->size);
      rc = shim_call_own(t, shim_call(t, dev, TR_OP_MODULE_LOAD, args, 24,
                                      NULL, 0, 1, NULL, 0, NULL));
    }
    if (rc)
      return rc;
    atomic_fetch_or(&m->loaded_on, bit);
  }
  return 0;
}

static int ensure_loaded(struct shim_thread *t, struct shim_func *f, int dev)
{
  struct shim_module *m = f->mod;
  uint64_t bit = 1ull << dev;
  int rc;

  rc = ensure_module(t, m, dev);
  if (rc)
    return rc;
  if (!(atomic_load(&f->sent_to) & bit)) {
    size_t nlen = strlen(f->name);
    uint8_t *a = malloc(20 + nlen);

    if (!a)
      return -ENOMEM;
    tr_put_u64(a, m->handle);
    tr_put_u64(a + 8, f->handle);
    tr_put_u32(a + 16, (uint32_t)nlen);
    memcpy(a + 20, f->name, nlen);
    /* Waited for (once per function and device): the launches that use
       the handle may go down other lanes (other threads, non-blocking
       streams), which nothing orders after this one. */
    rc = shim_call_own(t, shim_call(t, dev, TR_OP_FUNCTION_GET, a,
                                    (uint32_t)(20 + nlen), NULL, 0, 1, NULL,
                                    0, NULL));
    free(a);
    if (rc)
      return rc;
    atomic_fetch_or(&f->sent_to, bit);
  }
  return 0;
}

static int derive_params(struct shim_func *f)
{
  struct tr_fatbin fb;
  int rc;

  pthread_mutex_lock(&reg_lock);
  if (!f->have_params) {
    rc = f->mod->fatbin ? tr_fatbin_parse(f->mod->fatbin, f->mod->size, &fb)
                        : -EINVAL;
    if (rc == 0)
      rc = tr_kparams_find(&fb, f->name, &f->params);
    f->params_err = rc;
    f->have_params = 1;
  }
  rc = f->params_err;
  pthread_mutex_unlock(&reg_lock);
  return rc;
}

static int dev_attr(const struct tr_devinfo *d, uint32_t attr, int32_t dflt)
{
  int32_t v;

  return tr_devinfo_attr(d, attr, &v) == 0 ? v : dflt;
}

/*
 * The launch errors a GPU reports at once, from cudaLaunchKernel itself,
 * checked here so they need no round trip and surface where CUDA puts
 * them (not at the next synchronisation).  The CUDA 13 runtime answers a
 * bad grid or block shape with cudaErrorInvalidValue, not the older
 * cudaErrorInvalidConfiguration (measured on an H200, driver 580), and so
 * do we.
 */
static cudaError_t check_config(const struct tr_devinfo *d,
                                const struct shim_func *f, dim3 grid,
                                dim3 block, size_t shmem)
{
  uint64_t threads = (uint64_t)block.x * block.y * block.z;
  uint32_t maxdyn = atomic_load(&f->max_dyn_shared);

  if (!grid.x || !grid.y || !grid.z || !threads ||
      block.x > (uint32_t)dev_attr(d, cudaDevAttrMaxBlockDimX, 1024) ||
      block.y > (uint32_t)dev_attr(d, cudaDevAttrMaxBlockDimY, 1024) ||
      block.z > (uint32_t)dev_attr(d, cudaDevAttrMaxBlockDimZ, 64) ||
      threads > (uint64_t)dev_attr(d, cudaDevAttrMaxThreadsPerBlock, 1024) ||
      grid.x > (uint32_t)dev_attr(d, cudaDevAttrMaxGridDimX, 2147483647) ||
      grid.y > (uint32_t)dev_attr(d, cudaDevAttrMaxGridDimY, 65535) ||
      grid.z > (uint32_t)dev_attr(d, cudaDevAttrMaxGridDimZ, 65535))
    return cudaErrorInvalidValue;
  if (!maxdyn)
    maxdyn = (uint32_t)dev_attr(d, cudaDevAttrMaxSharedMemoryPerBlock, 49152);
  if (shmem > maxdyn)
    return cudaErrorInvalidValue;
  return cudaSuccess;
}

/* Kernels may printf: what they printed but nobody synchronised for is
   printed when the program exits, as CUDA does when it tears down. */
static _Atomic int exit_flush_armed;
static _Atomic uint64_t launched_on; /* ordinals that ran a kernel */

static void exit_flush(void)
{
  uint64_t mask = atomic_load(&launched_on);
  struct shim_thread *t;

  if (!mask || shim_ready(&t) != cudaSuccess)
    return;
  for (int dev = 0; dev < 64; dev++)
    if (mask & (1ull << dev))
      (void)shim_device_output(t, dev, TR_OP_OUTPUT);
}

/* launch()'s priority when the launch has none of its own. */
#define PRIO_OF_STREAM INT_MIN

/* What cudaLaunchCooperativeKernel and cudaLaunchKernelExC's attributes
   add to a launch (LAUNCH's flags and cluster); NULL: nothing. */
struct launch_ex {
  uint32_t flags; /* TR_LAUNCH_F_* */
  uint32_t cluster[3];
};

static cudaError_t launch(struct shim_func *f, dim3 grid, dim3 block,
                          void **args, size_t shmem, cudaStream_t stream,
                          int prio, const struct launch_ex *ex)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);
  const struct tr_devinfo *d;
  struct shim_stream *strm;
  uint8_t *rec;
  int rc;

  if (e != cudaSuccess)
    return e;
  if (!f) {
    t->last_error = cudaErrorInvalidDeviceFunction;
    return cudaErrorInvalidDeviceFunction;
  }
  rc = derive_params(f);
  if (rc < 0) {
    shim_warn_once("params", "cannot find the parameters of kernel '%s' in "
                             "its fatbin (%s)", f->name, strerror(-rc));
    t->last_error = cudaErrorInvalidDeviceFunction;
    return cudaErrorInvalidDeviceFunction;
  }
  d = &shim_proc.cli.dev[t->device];
  e = check_config(d, f, grid, block, shmem);
  if (e != cudaSuccess) {
    t->last_error = e;
    return e;
  }
  /* Load first, even on a device that cannot run the kernel: the module
     travels (once per agent, by hash) and the agent checks that the kernel
     exists, so everything up to execution is exercised. */
  rc = ensure_loaded(t, f, t->device);
  if (rc)
    return shim_cuda_error(t, rc);
  if (!atomic_exchange(&exit_flush_armed, 1))
    atexit(exit_flush);
  if (!(d->caps & TR_CAP_EXEC)) {
    shim_warn_once("noexec", "device %d (%s) cannot execute kernels yet; "
                             "kernel '%s' was not run", t->device, d->name,
                   f->name);
    t->last_error = cudaErrorNotSupported;
    return cudaErrorNotSupported;
  }
  /* Managed memory the host wrote goes up first (shim_memory.c). */
  rc = shim_managed_before_device(t);
  if (rc)
    return shim_cuda_error(t, rc);
  /* After the module is loaded (round trips), so only the launch itself
     goes into a stream capture. */
  e = shim_stream_use_device(t, stream, &strm);
  if (e != cudaSuccess) {
    t->last_error = e;
    return e;
  }
  if (TR_LAUNCH_FIXED + f->params.total_size > TR_LANE_INLINE_MAX / 2) {
    t->last_error = cudaErrorInvalidValue;
    return cudaErrorInvalidValue;
  }
  rec = calloc(1, TR_LAUNCH_FIXED + f->params.total_size);
  if (!rec)
    return shim_cuda_error(t, -ENOMEM);
  tr_put_u64(rec, f->handle);
  tr_put_u32(rec + 8, grid.x);
  tr_put_u32(rec + 12, grid.y);
  tr_put_u32(rec + 16, grid.z);
  tr_put_u32(rec + 20, block.x);
  tr_put_u32(rec + 24, block.y);
  tr_put_u32(rec + 28, block.z);
  tr_put_u32(rec + 32, (uint32_t)shmem);
  tr_put_u32(rec + 36, f->params.total_size);
  tr_put_u64(rec + 40, 0);
  tr_put_u32(rec + 48, shim_stack_size(t->device));
  if (prio == PRIO_OF_STREAM)
    prio = shim_stream_priority(strm);
  tr_put_u32(rec + 52, (uint32_t)tr_priority_clamp(prio));
  if (ex) {
    tr_put_u32(rec + 56, ex->flags);
    for (int i = 0; i < 3; i++)
      tr_put_u32(rec + 60 + 4 * i, ex->cluster[i]);
  }
  for (uint32_t i = 0; i < f->params.count; i++)
    memcpy(rec + TR_LAUNCH_FIXED + f->params.p[i].offset, args[i],
           f->params.p[i].size);
  /* A pointer of another machine among the arguments (also inside
     structs passed by value) would fault there at best: refuse it now.
     Any aligned 8-byte word inside another device's window counts; no
     other value lies in those 512 GiB ranges at 32 TiB and up. */
  for (uint32_t off = 0; off + 8 <= f->params.total_size; off += 8) {
    uint64_t v = tr_get_u64(rec + TR_LAUNCH_FIXED + off);
    int pd = shim_device_of((const void *)(uintptr_t)v);

    if (pd >= 0 && pd != t->device) {
      free(rec);
      return shim_wrong_device(t, f->name, (const void *)(uintptr_t)v, pd,
                               t->device);
    }
  }
  /* Asynchronous: errors surface at the next synchronisation. */
  rc = shim_call(t, t->device, TR_OP_LAUNCH, rec,
                 TR_LAUNCH_FIXED + f->params.total_size, NULL, 0, 0, NULL, 0,
                 NULL);
  free(rec);
  if (rc == 0) {
    atomic_fetch_or(&launched_on, 1ull << t->device);
    shim_stream_mark(t, strm);
  }
  return shim_cuda_error(t, rc);
}

cudaError_t __cudaLaunchKernel(cudaKernel_t kernel, dim3 grid, dim3 block,
                               void **args, size_t shmem, cudaStream_t stream)
{
  return launch((struct shim_func *)kernel, grid, block, args, shmem, stream,
                PRIO_OF_STREAM, NULL);
}

cudaError_t cudaLaunchKernel(const void *func, dim3 grid, dim3 block,
                             void **args, size_t shmem, cudaStream_t stream)
{
  return launch(find_func(func), grid, block, args, shmem, stream,
                PRIO_OF_STREAM, NULL);
}

/* ---- function attributes --------------------------------------------- */

/* The mangled name, as cuFuncGetName gives it; it lives as long as the
   module's registration.  What is not a kernel is an invalid resource
   handle here, not an invalid device function as elsewhere: CUDA 13's
   runtime answers so (an H200, driver 580; tests/apps/runtime_misc). */
cudaError_t cudaFuncGetName(const char **name, const void *func)
{
  struct shim_func *f;

  if (!name)
    return shim_fail(shim_self(), cudaErrorInvalidValue);
  f = find_func(func);
  if (!f)
    return shim_fail(shim_self(), cudaErrorInvalidResourceHandle);
  *name = f->name;
  return cudaSuccess;
}

/* Deprecated bank-size hint: checked and accepted. */
cudaError_t cudaFuncSetSharedMemConfig(const void *func,
                                       enum cudaSharedMemConfig config)
{
  if (!find_func(func))
    return shim_fail(shim_self(), cudaErrorInvalidDeviceFunction);
  if ((unsigned)config > cudaSharedMemBankSizeEightByte)
    return shim_fail(shim_self(), cudaErrorInvalidValue);
  return cudaSuccess;
}

cudaError_t cudaFuncGetAttributes(struct cudaFuncAttributes *attr,
                                  const void *func)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);
  struct shim_func *f;
  uint8_t a[TR_FATTRS_SIZE], arg[8];
  uint64_t got = 0;
  int rc;

  if (e != cudaSuccess)
    return e;
  if (!attr) {
    t->last_error = cudaErrorInvalidValue;
    return cudaErrorInvalidValue;
  }
  f = find_func(func);
  if (!f) {
    t->last_error = cudaErrorInvalidDeviceFunction;
    return cudaErrorInvalidDeviceFunction;
  }
  rc = ensure_loaded(t, f, t->device);
  if (rc == 0) {
    tr_put_u64(arg, f->handle);
    rc = shim_call(t, t->device, TR_OP_FUNC_ATTRS, arg, 8, NULL, 0, 1, a,
                   sizeof(a), &got);
  }
  if (rc == 0 && got != sizeof(a))
    rc = -EPROTO;
  if (rc)
    return shim_cuda_error(t, rc);
  memset(attr, 0, sizeof(*attr));
  attr->sharedSizeBytes = tr_get_u32(a);
  attr->constSizeBytes = tr_get_u32(a + 4);
  attr->localSizeBytes = tr_get_u32(a + 8);
  attr->maxThreadsPerBlock = (int)tr_get_u32(a + 12);
  attr->numRegs = (int)tr_get_u32(a + 16);
  attr->ptxVersion = (int)tr_get_u32(a + 20);
  attr->binaryVersion = (int)tr_get_u32(a + 24);
  attr->maxDynamicSharedSizeBytes =
      (int)(atomic_load(&f->max_dyn_shared)
                ? atomic_load(&f->max_dyn_shared)
                : 49152 - attr->sharedSizeBytes);
  attr->preferredShmemCarveout = -1;
  return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void *func, enum cudaFuncAttribute a,
                                 int value)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);
  struct shim_func *f;

  if (e != cudaSuccess)
    return e;
  f = find_func(func);
  if (!f) {
    t->last_error = cudaErrorInvalidDeviceFunction;
    return cudaErrorInvalidDeviceFunction;
  }
  switch (a) {
  case cudaFuncAttributeMaxDynamicSharedMemorySize:
    if (value < 0 ||
        value > dev_attr(&shim_proc.cli.dev[t->device],
                         cudaDevAttrMaxSharedMemoryPerBlockOptin, 166912)) {
      t->last_error = cudaErrorInvalidValue;
      return cudaErrorInvalidValue;
    }
    atomic_store(&f->max_dyn_shared, (uint32_t)value);
    return cudaSuccess;
  case cudaFuncAttributePreferredSharedMemoryCarveout:
    if (value < -1 || value > 100) {
      t->last_error = cudaErrorInvalidValue;
      return cudaErrorInvalidValue;
    }
    return cudaSuccess; /* a hint; the emulator has no carveout */
  default:
    /* Cluster and scheduling attributes need hardware we do not model. */
    t->last_error = cudaErrorInvalidValue;
    return cudaErrorInvalidValue;
  }
}

/* ---- variables (__device__, __constant__) ---------------------------- */

static struct shim_var *find_var(const void *host_var)
{
  struct shim_var *found = NULL;

  pthread_mutex_lock(&reg_lock);
  for (struct shim_module *m = modules; m && !found; m = m->next)
    for (struct shim_var *v = m->vars; v; v = v->next)
      if (v->host_var == host_var) {
        found = v;
        break;
      }
  pthread_mutex_unlock(&reg_lock);
  return found;
}

/*
 * The device address of the variable `symbol` names on the current device:
 * its module is loaded there first, then the agent says where the
 * variable lives (one round trip per call; programs touch symbols rarely).
 */
static cudaError_t symbol_addr(struct shim_thread *t, const void *symbol,
                               uint64_t *addr, uint64_t *size)
{
  struct shim_var *v = find_var(symbol);
  size_t nlen;
  uint8_t *a, out[16];
  uint64_t got = 0;
  int rc;

  if (!v)
    return cudaErrorInvalidSymbol;
  rc = ensure_module(t, v->mod, t->device);
  if (rc)
    return shim_cuda_error(t, rc);
  nlen = strlen(v->name);
  a = malloc(12 + nlen);
  if (!a)
    return shim_cuda_error(t, -ENOMEM);
  tr_put_u64(a, v->mod->handle);
  tr_put_u32(a + 8, (uint32_t)nlen);
  memcpy(a + 12, v->name, nlen);
  rc = shim_call_own(t, shim_call(t, t->device, TR_OP_SYMBOL_GET, a,
                                  (uint32_t)(12 + nlen), NULL, 0, 1, out,
                                  sizeof(out), &got));
  free(a);
  if (rc == 0 && got != sizeof(out))
    rc = -EPROTO;
  if (rc)
    return shim_cuda_error(t, rc);
  *addr = tr_get_u64(out);
  *size = tr_get_u64(out + 8);
  return cudaSuccess;
}

cudaError_t cudaGetSymbolAddress(void **dev_ptr, const void *symbol)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);
  uint64_t addr, size;

  if (e != cudaSuccess)
    return e;
  if (!dev_ptr) {
    t->last_error = cudaErrorInvalidValue;
    return cudaErrorInvalidValue;
  }
  e = symbol_addr(t, symbol, &addr, &size);
  if (e != cudaSuccess) {
    t->last_error = e;
    return e;
  }
  *dev_ptr = (void *)(uintptr_t)addr;
  return cudaSuccess;
}

cudaError_t cudaGetSymbolSize(size_t *size, const void *symbol)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);
  struct shim_var *v;

  if (e != cudaSuccess)
    return e;
  if (!size) {
    t->last_error = cudaErrorInvalidValue;
    return cudaErrorInvalidValue;
  }
  v = find_var(symbol);
  if (!v) {
    t->last_error = cudaErrorInvalidSymbol;
    return cudaErrorInvalidSymbol;
  }
  *size = v->size; /* what nvcc registered: no round trip needed */
  return cudaSuccess;
}

/*
 * The symbol copies are ordinary copies at the variable's address: the
 * range is checked against the registered size first, so a copy past the
 * end of a variable is cudaErrorInvalidValue as in CUDA.
 */
static cudaError_t symbol_copy(void *dst, const void *src, size_t count,
                               size_t offset, enum cudaMemcpyKind kind,
                               const void *symbol, int to_symbol)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);
  uint64_t addr, size;

  if (e != cudaSuccess)
    return e;
  if (to_symbol ? (kind != cudaMemcpyHostToDevice &&
                   kind != cudaMemcpyDeviceToDevice &&
                   kind != cudaMemcpyDefault)
                : (kind != cudaMemcpyDeviceToHost &&
                   kind != cudaMemcpyDeviceToDevice &&
                   kind != cudaMemcpyDefault)) {
    t->last_error = cudaErrorInvalidMemcpyDirection;
    return cudaErrorInvalidMemcpyDirection;
  }
  e = symbol_addr(t, symbol, &addr, &size);
  if (e == cudaSuccess && (offset > size || count > size - offset))
    e = cudaErrorInvalidValue;
  if (e != cudaSuccess) {
    t->last_error = e;
    return e;
  }
  if (count == 0)
    return cudaSuccess;
  if (to_symbol)
    return cudaMemcpy((void *)(uintptr_t)(addr + offset), src, count, kind);
  return cudaMemcpy(dst, (const void *)(uintptr_t)(addr + offset), count,
                    kind);
}

cudaError_t cudaMemcpyToSymbol(const void *symbol, const void *src,
                               size_t count, size_t offset,
                               enum cudaMemcpyKind kind)
{
  return symbol_copy(NULL, src, count, offset, kind, symbol, 1);
}

cudaError_t cudaMemcpyFromSymbol(void *dst, const void *symbol, size_t count,
                                 size_t offset, enum cudaMemcpyKind kind)
{
  return symbol_copy(dst, NULL, count, offset, kind, symbol, 0);
}

/* ---- occupancy ------------------------------------------------------- */

/*
 * Blocks of func that fit on one multiprocessor at once, from the same
 * device model the agent reports (threads, registers and shared memory per
 * multiprocessor, blocks per multiprocessor) and the kernel's attributes,
 * the way CUDA's occupancy calculator reasons (without its allocation
 * granularities, which the emulated device does not have).
 * cudaOccupancyMaxPotentialBlockSize and friends are header templates
 * built on these calls, so they follow.
 */
static cudaError_t occupancy(int *num_blocks, const void *func, int block_size,
                             size_t dyn_smem, unsigned flags)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);
  struct cudaFuncAttributes a;
  const struct tr_devinfo *d;
  int64_t warps, by_threads, by_regs, by_smem, n, smem;

  if (e != cudaSuccess)
    return e;
  if (!num_blocks || flags > cudaOccupancyDisableCachingOverride) {
    t->last_error = cudaErrorInvalidValue;
    return cudaErrorInvalidValue;
  }
  e = cudaFuncGetAttributes(&a, func);
  if (e != cudaSuccess)
    return e;
  d = &shim_proc.cli.dev[t->device];
  if (block_size <= 0 || block_size > a.maxThreadsPerBlock ||
      dyn_smem > (size_t)a.maxDynamicSharedSizeBytes) {
    *num_blocks = 0;
    return cudaSuccess;
  }
  warps = (block_size + 31) / 32;
  by_threads = dev_attr(d, cudaDevAttrMaxThreadsPerMultiProcessor, 2048) /
               32 / warps;
  by_regs = a.numRegs > 0
                ? dev_attr(d, cudaDevAttrMaxRegistersPerMultiprocessor, 65536) /
                      ((int64_t)a.numRegs * warps * 32)
                : INT32_MAX;
  smem = (int64_t)a.sharedSizeBytes + (int64_t)dyn_smem +
         dev_attr(d, cudaDevAttrReservedSharedMemoryPerBlock, 1024);
  by_smem = dev_attr(d, cudaDevAttrMaxSharedMemoryPerMultiprocessor, 167936) /
            smem;
  n = dev_attr(d, cudaDevAttrMaxBlocksPerMultiprocessor, 32);
  if (by_threads < n)
    n = by_threads;
  if (by_regs < n)
    n = by_regs;
  if (by_smem < n)
    n = by_smem;
  *num_blocks = (int)n;
  return cudaSuccess;
}

cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int *num_blocks,
                                                          const void *func,
                                                          int block_size,
                                                          size_t dyn_smem)
{
  return occupancy(num_blocks, func, block_size, dyn_smem, 0);
}

cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(
    int *num_blocks, const void *func, int block_size, size_t dyn_smem,
    unsigned int flags)
{
  return occupancy(num_blocks, func, block_size, dyn_smem, flags);
}

/* ---- fork ------------------------------------------------------------ */

void shim_module_fork_lock(int hold)
{
  if (hold)
    pthread_mutex_lock(&reg_lock);
  else
    pthread_mutex_unlock(&reg_lock);
}

void shim_module_forget(void)
{
  for (struct shim_module *m = modules; m; m = m->next) {
    atomic_store(&m->loaded_on, 0);
    for (struct shim_func *f = m->funcs; f; f = f->next)
      atomic_store(&f->sent_to, 0);
  }
  atomic_store(&launched_on, 0);
}

/* ---- other launch entry points ----------------------------------------- */

cudaError_t cudaFuncSetCacheConfig(const void *func, enum cudaFuncCache config)
{
  struct shim_thread *t = shim_self();

  if (!find_func(func))
    return t ? (t->last_error = cudaErrorInvalidDeviceFunction)
             : cudaErrorInvalidDeviceFunction;
  if ((unsigned)config > cudaFuncCachePreferEqual)
    return t ? (t->last_error = cudaErrorInvalidValue) : cudaErrorInvalidValue;
  return cudaSuccess; /* a preference; the emulator has one cache */
}

/* cudaErrorNotSupported at once (and as the last error) unless the
   current device has the feature attr, as CUDA refuses a launch the
   device cannot make; *tp is the calling thread's state. */
static cudaError_t need_feature(uint32_t attr, struct shim_thread **tp)
{
  cudaError_t e = shim_ready(tp);

  if (e == cudaSuccess &&
      !dev_attr(&shim_proc.cli.dev[(*tp)->device], attr, 0))
    e = (*tp)->last_error = cudaErrorNotSupported;
  return e;
}

/*
 * A cooperative launch promises that every block is resident at once: a
 * grid larger than the occupancy calculator allows on all multiprocessors
 * is refused as CUDA refuses it, and so is any on a device without
 * cooperative launches (the emulated device, which cannot synchronise a
 * grid).  On a GPU the launch goes to the driver as cooperative
 * (cuLaunchKernelEx), so grid-wide synchronisation works.
 */
static cudaError_t cooperative_check(const void *func, dim3 grid, dim3 block,
                                     size_t shmem)
{
  struct shim_thread *t;
  cudaError_t e = need_feature(cudaDevAttrCooperativeLaunch, &t);
  int per_sm = 0;
  uint64_t blocks = (uint64_t)grid.x * grid.y * grid.z;

  if (e != cudaSuccess)
    return e;
  e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(
      &per_sm, func, (int)(block.x * block.y * block.z), shmem);
  if (e != cudaSuccess)
    return e;
  if (blocks > (uint64_t)per_sm *
                   (uint64_t)dev_attr(&shim_proc.cli.dev[t->device],
                                      cudaDevAttrMultiProcessorCount, 1)) {
    t->last_error = cudaErrorCooperativeLaunchTooLarge;
    return cudaErrorCooperativeLaunchTooLarge;
  }
  return cudaSuccess;
}

cudaError_t cudaLaunchCooperativeKernel(const void *func, dim3 grid, dim3 block,
                                        void **args, size_t shmem,
                                        cudaStream_t stream)
{
  static const struct launch_ex coop = {.flags = TR_LAUNCH_F_COOPERATIVE};
  cudaError_t e = cooperative_check(func, grid, block, shmem);

  if (e != cudaSuccess)
    return e;
  return launch(find_func(func), grid, block, args, shmem, stream,
                PRIO_OF_STREAM, &coop);
}

cudaError_t cudaLaunchKernelExC(const cudaLaunchConfig_t *config,
                                const void *func, void **args)
{
  struct shim_thread *t = shim_self();
  struct launch_ex ex = {0, {1, 1, 1}};
  int coop = 0, prio = PRIO_OF_STREAM;

  if (!config || (config->numAttrs && !config->attrs))
    return t ? (t->last_error = cudaErrorInvalidValue) : cudaErrorInvalidValue;
  for (unsigned i = 0; i < config->numAttrs; i++) {
    const cudaLaunchAttribute *a = &config->attrs[i];

    switch (a->id) {
    case cudaLaunchAttributeCooperative:
      coop = a->val.cooperative != 0;
      break;
    case cudaLaunchAttributeClusterDimension:
      /* Clusters need compute capability 9.0 hardware: the device says
         whether it has them (the emulated device has none). */
      ex.cluster[0] = a->val.clusterDim.x;
      ex.cluster[1] = a->val.clusterDim.y;
      ex.cluster[2] = a->val.clusterDim.z;
      break;
    case cudaLaunchAttributePriority:
      prio = a->val.priority; /* clamped as the stream's is */
      break;
    default:
      break; /* scheduling and cache hints: nothing to do remotely */
    }
  }
  if (coop) {
    cudaError_t e = cooperative_check(func, config->gridDim, config->blockDim,
                                      config->dynamicSmemBytes);
    if (e != cudaSuccess)
      return e;
    ex.flags |= TR_LAUNCH_F_COOPERATIVE;
  }
  if (ex.cluster[0] > 1 || ex.cluster[1] > 1 || ex.cluster[2] > 1) {
    cudaError_t e = need_feature(cudaDevAttrClusterLaunch, &t);

    if (e != cudaSuccess)
      return e;
  }
  return launch(find_func(func), config->gridDim, config->blockDim, args,
                config->dynamicSmemBytes, config->stream, prio, &ex);
}

/* The per-thread-default-stream twins; declared only under macros. */
cudaError_t cudaLaunchKernel_ptsz(const void *func, dim3 grid, dim3 block,
                                  void **args, size_t shmem,
                                  cudaStream_t stream);
cudaError_t cudaLaunchCooperativeKernel_ptsz(const void *func, dim3 grid,
                                             dim3 block, void **args,
                                             size_t shmem,
                                             cudaStream_t stream);
cudaError_t cudaLaunchKernelExC_ptsz(const cudaLaunchConfig_t *config,
                                     const void *func, void **args);

cudaError_t cudaLaunchKernel_ptsz(const void *func, dim3 grid, dim3 block,
                                  void **args, size_t shmem,
                                  cudaStream_t stream)
{
  return cudaLaunchKernel(func, grid, block, args, shmem, stream);
}

cudaError_t cudaLaunchCooperativeKernel_ptsz(const void *func, dim3 grid,
                                             dim3 block, void **args,
                                             size_t shmem,
                                             cudaStream_t stream)
{
  return cudaLaunchCooperativeKernel(func, grid, block, args, shmem, stream);
}

cudaError_t cudaLaunchKernelExC_ptsz(const cudaLaunchConfig_t *config,
                                     const void *func, void **args)
{
  return cudaLaunchKernelExC(config, func, args);
}
