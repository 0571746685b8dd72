/*
 * cuda_exec.c: what a session of the cuda backend runs (cuda.c has the
 * design): modules loaded from fatbins, their functions, parameter layouts
 * and variables (aliases in the session's window), and launches, one at a
 * time or queued back to back.  cuda.c keeps the contexts, windows and
 * memory; cuda_int.h has what the two share.
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

/* ---- modules ----------------------------------------------------------- */

/*
 * Unload a module no longer listed in c->mods and not referenced: the
 * driver's module, then what we kept about its functions and variables.
 */
void cu_module_free(struct agt_bctx *c, struct cu_module *mod)
{
  struct cu_func *f, *fnext;
  struct cu_alloc *s, *snext;

  if (cu_enter(c) == CUDA_SUCCESS)
    (void)c->cb->drv.ModuleUnload(mod->m); /* fails only in a dead context,
                                              whose destruction frees it */
  for (f = mod->fns; f; f = fnext) {
    fnext = f->next;
    free(f);
  }
  /* The variables' aliases: never mapped, so only their entries go. */
  pthread_mutex_lock(&c->w->mu);
  for (s = mod->syms; s; s = s->next) {
    agt_rt_remove(&c->w->t, &s->r);
    atomic_fetch_sub(&c->aliases, 1);
  }
  pthread_mutex_unlock(&c->w->mu);
  for (s = mod->syms; s; s = snext) {
    snext = s->next;
    free(s);
  }
  pthread_mutex_destroy(&mod->mu);
  free(mod);
}

/* One line for the program about a module the driver refused. */
static void load_why(const struct cu_backend *cb, CUresult r, const char *log,
                     char *why)
{
  char desc[128];
  int major, minor;
  /* The JIT log's first line, as much as fits beside the error. */
  int loglen = (int)strcspn(log, "\n");

  if (loglen > 80)
    loglen = 80;

  cu_cc_of(cb, &major, &minor);
  cu_describe(&cb->drv, r, desc, sizeof(desc));
  switch (r) {
  case CUDA_ERROR_NO_BINARY_FOR_GPU:
    snprintf(why, AGT_WHY_MAX, "the module has no machine code for this GPU "
             "(sm_%d%d) and no PTX it can compile; rebuild with -gencode "
             "arch=compute_%d%d,code=sm_%d%d", major, minor, major, minor,
             major, minor);
    break;
  case CUDA_ERROR_UNSUPPORTED_PTX_VERSION:
    snprintf(why, AGT_WHY_MAX, "the module's PTX is newer than the GPU's "
             "driver (CUDA %d.%d) compiles; update the driver or rebuild "
             "with an older toolkit", cb->driver_version / 1000,
             cb->driver_version % 1000 / 10);
    break;
  default:
    snprintf(why, AGT_WHY_MAX, "the GPU cannot load this module: %s%s%.*s",
             desc, loglen ? "; " : "", loglen, log);
    break;
  }
}

/*
 * The driver reads a fatbin up to the sizes its own headers give, and PTX
 * up to a NUL.  The image comes from the program, so those limits are
 * checked against the bytes we really have before the driver sees them.
 * Returns the image to load (image itself, or *copy: a NUL-terminated copy
 * of PTX text, freed by the caller), or NULL with why set.  *prints says
 * whether its kernels may call printf (fatbin.h): only their launches end
 * in the synchronise where the driver writes that output.
 */
static const void *image_check(const uint8_t *image, size_t len, void **copy,
                               char *why, uint32_t *st, bool *prints)
{
  *copy = NULL;
  *prints = true;
  if (len >= 4 && image[0] == 0x50 && image[1] == 0xed && image[2] == 0x55 &&
      image[3] == 0xba) {
    struct tr_fatbin *fb = malloc(sizeof(*fb));
    int rc;

    if (!fb) {
      *st = cudaErrorMemoryAllocation;
      return NULL;
    }
    rc = tr_fatbin_parse(image, len, fb);
    if (rc == 0)
      *prints = tr_fatbin_may_print(fb) != 0;
    free(fb);
    if (rc < 0) {
      snprintf(why, AGT_WHY_MAX, "the module is a damaged CUDA fatbin (%s)",
               strerror(-rc));
      *st = cudaErrorInvalidKernelImage;
      return NULL;
    }
    return image;
  }
  if ((len >= 2 && memcmp(image, "//", 2) == 0) ||
      (len >= 8 && memcmp(image, ".version", 8) == 0)) {
    *prints = tr_ptx_calls_printf((const char *)image, len) != 0;
    if (memchr(image, 0, len))
      return image;
    *copy = malloc(len + 1);
    if (!*copy) {
      *st = cudaErrorMemoryAllocation;
      return NULL;
    }
    memcpy(*copy, image, len);
    ((char *)*copy)[len] = 0;
    return *copy;
  }
  snprintf(why, AGT_WHY_MAX, "the module is neither a CUDA fatbin nor PTX "
           "text");
  *st = cudaErrorInvalidKernelImage;
  return NULL;
}

uint32_t cu_module_load(struct agt_bctx *c, const uint8_t *image,
                        size_t len, void **out, char *why)
{
  const struct cu_drv *d = &c->cb->drv;
  char log[AGT_WHY_MAX];
  CUjit_option opt[2] = {CU_JIT_ERROR_LOG_BUFFER,
                         CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
  void *val[2] = {log, (void *)(uintptr_t)sizeof(log)};
  struct cu_module *mod;
  const void *img;
  void *copy;
  uint32_t st = cudaSuccess;
  bool prints;
  CUresult r;

  why[0] = 0;
  log[0] = 0;
  img = image_check(image, len, &copy, why, &st, &prints);
  if (!img)
    return st;
  mod = calloc(1, sizeof(*mod));
  if (!mod) {
    free(copy);
    return cudaErrorMemoryAllocation;
  }
  r = cu_enter(c);
  if (r == CUDA_SUCCESS)
    r = d->ModuleLoadDataEx(&mod->m, img, 2, opt, val);
  free(copy); /* the driver keeps what it needs */
  if (r != CUDA_SUCCESS) {
    log[sizeof(log) - 1] = 0;
    load_why(c->cb, r, log, why);
    free(mod);
    return cu_status(r);
  }
  pthread_mutex_init(&mod->mu, NULL);
  mod->refs = 1;
  mod->prints = prints;
  pthread_mutex_lock(&c->w->mu);
  mod->next = c->mods;
  c->mods = mod;
  pthread_mutex_unlock(&c->w->mu);
  *out = mod;
  return cudaSuccess;
}

void cu_module_unload(struct agt_bctx *c, void *modp)
{
  struct cu_module *mod = modp, **pp;
  bool last;

  /* Unlisted first, so no new copy finds its variables; a copy already
     running holds a reference and the last one unloads it. */
  pthread_mutex_lock(&c->w->mu);
  for (pp = &c->mods; *pp && *pp != mod; pp = &(*pp)->next)
    ;
  if (*pp)
    *pp = mod->next;
  last = --mod->refs == 0;
  pthread_mutex_unlock(&c->w->mu);
  if (last)
    cu_module_free(c, mod);
}

uint32_t cu_function_get(struct agt_bctx *c, void *modp,
                         const char *name, void **fn)
{
  struct cu_module *mod = modp;
  const struct cu_drv *d = &c->cb->drv;
  struct cu_func *f;
  int dyn = 0;
  CUresult r;

  f = calloc(1, sizeof(*f));
  if (!f)
    return cudaErrorMemoryAllocation;
  r = cu_enter(c);
  if (r == CUDA_SUCCESS)
    r = d->ModuleGetFunction(&f->fn, mod->m, name);
  if (r != CUDA_SUCCESS) {
    free(f);
    return r == CUDA_ERROR_NOT_FOUND ? cudaErrorInvalidDeviceFunction
                                     : cu_status(r);
  }
  /* What the kernel may take without cuFuncSetAttribute (48 KiB less its
     static shared memory); launch raises it when a launch asks for more. */
  if (d->FuncGetAttribute(&dyn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                          f->fn) != CUDA_SUCCESS || dyn < 0)
    dyn = 0;
  atomic_init(&f->dyn_max, (uint32_t)dyn);
  f->prints = mod->prints;
  pthread_mutex_lock(&mod->mu);
  f->next = mod->fns;
  mod->fns = f;
  pthread_mutex_unlock(&mod->mu);
  *fn = f;
  return cudaSuccess;
}

/*
 * A module variable: an alias of the driver's address in the session's
 * window (see the top of the file), made once per variable and module.
 */
uint32_t cu_symbol_get(struct agt_bctx *c, void *modp, const char *name,
                       uint64_t *addr, uint64_t *size)
{
  struct cu_module *mod = modp;
  struct cu_window *w = c->w;
  uint64_t gran = c->cb->gran;
  struct cu_alloc *s, *have;
  CUdeviceptr p = 0;
  size_t bytes = 0;
  uint64_t a;
  CUresult r;

  r = cu_enter(c);
  if (r == CUDA_SUCCESS)
    r = c->cb->drv.ModuleGetGlobal(&p, &bytes, mod->m, name);
  if (r != CUDA_SUCCESS)
    return r == CUDA_ERROR_NOT_FOUND ? cudaErrorInvalidSymbol : cu_status(r);
  pthread_mutex_lock(&w->mu);
  for (have = mod->syms; have; have = have->next)
    if (have->real == p && have->size == bytes)
      break;
  if (have) { /* asked for before */
    *addr = have->r.addr;
    *size = bytes;
    pthread_mutex_unlock(&w->mu);
    return cudaSuccess;
  }
  s = calloc(1, sizeof(*s));
  if (!s) {
    pthread_mutex_unlock(&w->mu);
    return cudaErrorMemoryAllocation;
  }
  /* Whole granules, as every range of the window is (placement keeps
     them aligned for cuMemMap); address space only, nothing mapped. */
  s->size = bytes;
  s->span = 0;
  s->r.len = bytes ? (bytes + gran - 1) / gran * gran : gran;
  s->real = p;
  s->owner = c;
  s->mod = mod;
  s->ready = true;
  a = agt_rt_gap(&w->t, w->hint, w->win.base + w->win.size, s->r.len);
  if (!a)
    a = agt_rt_gap(&w->t, w->win.base, w->win.base + w->win.size, s->r.len);
  s->r.addr = a;
  if (!a || agt_rt_insert(&w->t, &s->r) < 0) {
    pthread_mutex_unlock(&w->mu);
    free(s);
    return cudaErrorMemoryAllocation;
  }
  w->hint = a + s->r.len;
  atomic_fetch_add(&c->aliases, 1);
  s->next = mod->syms;
  mod->syms = s;
  pthread_mutex_unlock(&w->mu);
  *addr = a;
  *size = bytes;
  return cudaSuccess;
}

/*
 * The parameter buffer with every aligned 8-byte value that lies in one
 * of c's variable aliases replaced by the driver's address, into out
 * (params_size bytes).  Returns whether anything was replaced.
 */
static bool translate_params(struct agt_bctx *c, const uint8_t *in,
                             size_t len, uint8_t *out)
{
  struct cu_window *w = c->w;
  bool any = false;

  memcpy(out, in, len);
  pthread_mutex_lock(&w->mu);
  for (size_t off = 0; off + 8 <= len; off += 8) {
    struct cu_alloc *al;
    uint64_t v;

    memcpy(&v, in + off, 8);
    if (v < w->win.base || v - w->win.base >= w->win.size)
      continue;
    al = cu_alloc_of(agt_rt_containing(&w->t, v));
    if (al && al->mod && al->owner == c && v - al->r.addr < al->size) {
      v = al->real + (v - al->r.addr);
      memcpy(out + off, &v, 8);
      any = true;
    }
  }
  pthread_mutex_unlock(&w->mu);
  return any;
}

uint32_t cu_function_attrs(struct agt_bctx *c, void *fn,
                           struct agt_fattrs *a)
{
  const struct cu_drv *d = &c->cb->drv;
  struct cu_func *f = fn;
  static const struct {
    CUfunction_attribute attr;
    size_t off;
  } map[] = {
    {CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, offsetof(struct agt_fattrs,
                                                   shared_size)},
    {CU_FUNC_ATTRIBUTE_CONST_SIZE_BYTES, offsetof(struct agt_fattrs,
                                                  const_size)},
    {CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES, offsetof(struct agt_fattrs,
                                                  local_size)},
    {CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK, offsetof(struct agt_fattrs,
                                                       max_threads)},
    {CU_FUNC_ATTRIBUTE_NUM_REGS, offsetof(struct agt_fattrs, num_regs)},
    {CU_FUNC_ATTRIBUTE_PTX_VERSION, offsetof(struct agt_fattrs, ptx_version)},
    {CU_FUNC_ATTRIBUTE_BINARY_VERSION, offsetof(struct agt_fattrs,
                                                binary_version)},
  };
  CUresult r = cu_enter(c);

  memset(a, 0, sizeof(*a));
  for (size_t i = 0; r == CUDA_SUCCESS && i < sizeof(map) / sizeof(map[0]);
       i++) {
    int v = 0;

    r = d->FuncGetAttribute(&v, map[i].attr, f->fn);
    if (r == CUDA_SUCCESS)
      *(uint32_t *)((char *)a + map[i].off) = v > 0 ? (uint32_t)v : 0;
  }
  if (r != CUDA_SUCCESS)
    return cu_status(r);
  /* The parameter block's size: the end of the last parameter.  Drivers
     before CUDA 12.4 cannot tell; 0 then. */
  if (d->FuncGetParamInfo) {
    for (size_t i = 0; i < 4096; i++) {
      size_t off = 0, sz = 0;

      if (d->FuncGetParamInfo(f->fn, i, &off, &sz) != CUDA_SUCCESS)
        break;
      if (off + sz > a->params_size && off + sz <= UINT32_MAX)
        a->params_size = (uint32_t)(off + sz);
    }
  }
  return cudaSuccess;
}

/* The stack per thread (cudaLimitStackSize), set once per value: changing
   it makes the driver reallocate the context's local memory. */
static CUresult set_stack(struct agt_bctx *c, uint32_t bytes)
{
  CUresult r = CUDA_SUCCESS;

  pthread_mutex_lock(&c->lim_mu);
  if (c->stack != bytes) {
    r = c->cb->drv.CtxSetLimit(CU_LIMIT_STACK_SIZE, bytes);
    if (r == CUDA_SUCCESS)
      c->stack = bytes;
  }
  pthread_mutex_unlock(&c->lim_mu);
  return r;
}

/*
 * The launch t of c ended: what was freed while it ran is released once
 * every launch that started before that free has ended, which is when no
 * running launch holds a ticket at or below the free's (c->deferred and
 * c->running are both newest first, so the oldest running ticket is the
 * last in its list and the releasable frees are the deferred list's tail).
 */
static void launch_end(struct agt_bctx *c, struct cu_ticket *t)
{
  struct cu_alloc *list = NULL, **pp, *next;
  struct cu_ticket **tp;
  uint64_t oldest = UINT64_MAX;

  pthread_mutex_lock(&c->w->mu);
  for (tp = &c->running; *tp != t; tp = &(*tp)->next)
    ;
  *tp = t->next;
  for (struct cu_ticket *r = c->running; r; r = r->next)
    oldest = r->n;
  for (pp = &c->deferred; *pp && (*pp)->after >= oldest; pp = &(*pp)->next)
    ;
  list = *pp;
  *pp = NULL;
  pthread_mutex_unlock(&c->w->mu);
  for (; list; list = next) {
    next = list->next;
    cu_unpin(c, list);
  }
}

/*
 * The parameter block arrives packed in the kernel's layout (the shim packs
 * it from the fatbin's parameter table), so it is handed to the driver as
 * one buffer (CU_LAUNCH_PARAM_BUFFER_*) rather than as argument pointers.
 *
 * Device-side printf: the driver prints the kernel's output on the
 * process's own stdout at its next synchronising call, not through l->out,
 * so a program sees it only from a worker process (proc_worker.c reads
 * it back).  l->out is not used.
 */

/*
 * A cooperative or cluster launch: cuLaunchKernelEx with the attributes
 * (cuLaunchCooperativeKernel takes no packed parameter buffer).  Drivers
 * before CUDA 12 lack it; the device then reports neither (cuda_dev.c).
 */
static CUresult launch_ex(const struct cu_drv *d, const struct cu_func *f,
                          const struct agt_launch *l, CUstream s, void **extra)
{
  CUlaunchAttribute at[2];
  CUlaunchConfig cfg = {
    .gridDimX = l->grid[0],
    .gridDimY = l->grid[1],
    .gridDimZ = l->grid[2],
    .blockDimX = l->block[0],
    .blockDimY = l->block[1],
    .blockDimZ = l->block[2],
    .sharedMemBytes = l->shmem,
    .hStream = s,
    .attrs = at,
  };

  if (!d->LaunchKernelEx)
    return CUDA_ERROR_NOT_SUPPORTED;
  memset(at, 0, sizeof(at));
  if (l->cooperative) {
    at[cfg.numAttrs].id = CU_LAUNCH_ATTRIBUTE_COOPERATIVE;
    at[cfg.numAttrs++].value.cooperative = 1;
  }
  if (agt_launch_clustered(l)) {
    at[cfg.numAttrs].id = CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION;
    at[cfg.numAttrs].value.clusterDim.x = l->cluster[0] ? l->cluster[0] : 1;
    at[cfg.numAttrs].value.clusterDim.y = l->cluster[1] ? l->cluster[1] : 1;
    at[cfg.numAttrs++].value.clusterDim.z = l->cluster[2] ? l->cluster[2] : 1;
  }
  return d->LaunchKernelEx(&cfg, f->fn, NULL, extra);
}

/* Queue the launch l of fn on c's stream for its priority (*s) without
   waiting for it.  c is current on this thread and the launch holds a
   ticket (launch_begin), so memory freed meanwhile stays mapped. */
static uint32_t launch_queue(struct agt_bctx *c, struct cu_func *f,
                             const struct agt_launch *l, CUstream *s)
{
  const struct cu_drv *d = &c->cb->drv;
  size_t psize = l->params_size;
  uint8_t *tp = NULL;
  void *extra[] = {CU_LAUNCH_PARAM_BUFFER_POINTER,
                   (void *)(uintptr_t)l->params, CU_LAUNCH_PARAM_BUFFER_SIZE,
                   &psize, CU_LAUNCH_PARAM_END};
  CUresult r = CUDA_SUCCESS;

  *s = cu_prio_stream(c, l->priority);
  if (l->stack_size)
    r = set_stack(c, l->stack_size);
  if (r == CUDA_SUCCESS && l->shmem > atomic_load(&f->dyn_max)) {
    /* The program raised cudaFuncAttributeMaxDynamicSharedMemorySize (the
       shim checked it against the device); the driver must hear of it. */
    r = d->FuncSetAttribute(f->fn,
                            CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                            (int)l->shmem);
    if (r == CUDA_SUCCESS)
      atomic_store(&f->dyn_max, l->shmem);
  }
  if (r != CUDA_SUCCESS)
    return cu_status(r);
  if (psize >= 8 && atomic_load(&c->aliases)) {
    tp = malloc(psize);
    if (!tp)
      return cudaErrorMemoryAllocation;
    if (translate_params(c, l->params, psize, tp))
      extra[1] = tp;
  }
  /* The driver has copied the parameters when it returns. */
  if (l->cooperative || agt_launch_clustered(l))
    r = launch_ex(d, f, l, *s, psize ? extra : NULL);
  else
    r = d->LaunchKernel(f->fn, l->grid[0], l->grid[1], l->grid[2],
                        l->block[0], l->block[1], l->block[2], l->shmem, *s,
                        NULL, psize ? extra : NULL);
  free(tp);
  return cu_status(r);
}

/* The launch t of c starts: it takes the next ticket (launch_end ends it). */
static void launch_begin(struct agt_bctx *c, struct cu_ticket *t)
{
  pthread_mutex_lock(&c->w->mu);
  t->n = ++c->tickets;
  t->next = c->running;
  c->running = t;
  pthread_mutex_unlock(&c->w->mu);
}

/*
 * Launches queued back to back on one stream (one priority), one wait at
 * the end (backend.h): the device is never idle between them for a round
 * trip, as it is not under CUDA.
 */
void cu_launch_many(struct agt_bctx *c, void *const *fns,
                    const struct agt_launch *ls, unsigned n,
                    uint32_t *st)
{
  CUresult r = cu_enter(c);
  CUstream s = CU_STREAM;
  uint32_t fatal = 0;
  unsigned last = n; /* the last launch queued */
  bool flush = false; /* one of them may print */
  struct cu_ticket t;

  if (r != CUDA_SUCCESS) {
    for (unsigned i = 0; i < n; i++)
      st[i] = cu_status(r);
    return;
  }
  launch_begin(c, &t);
  for (unsigned i = 0; i < n; i++) {
    if (fatal) {
      st[i] = fatal;
      continue;
    }
    st[i] = launch_queue(c, fns[i], &ls[i], &s);
    if (st[i] == cudaSuccess) {
      last = i;
      flush |= ((struct cu_func *)fns[i])->prints;
    }
    else if (agt_status_sticky(st[i]))
      fatal = st[i];
  }
  if (last < n &&
      (r = cu_stream_wait(&c->cb->drv, s, flush)) != CUDA_SUCCESS)
    st[last] = cu_status(r);
  launch_end(c, &t);
}

/* One launch is a batch of one. */
uint32_t cu_launch(struct agt_bctx *c, void *fn,
                   const struct agt_launch *l)
{
  uint32_t st;

  cu_launch_many(c, &fn, l, 1, &st);
  return st;
}
