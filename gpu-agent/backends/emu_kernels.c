/*
 * emu_kernels.c: modules, variables and launches on the emulated device.
 *
 * A module arrives as the fatbin the program registered.  Its PTX (the
 * entry for the highest virtual architecture the device supports) is
 * parsed and checked against what the executor implements once per agent:
 * the result is cached by the fatbin's XXH3-128 hash and shared, read-only,
 * by every session that loads the same bytes.  A session's instance of a
 * module (struct emu_module) adds what is per context: the device memory of
 * its __device__ and __constant__ variables, placed in the session's window
 * like any cudaMalloc, so cudaGetSymbolAddress gives a pointer the program
 * can use anywhere.
 *
 * A launch runs on the calling exec thread, which waits while the
 * executor's pool runs the blocks on every core.  The memory a kernel may
 * touch is exactly the live allocations of its session: the executor asks
 * (through run_range) before its first access to an allocation, and we pin
 * that allocation until the launch ends, so a cudaFree racing the kernel on
 * another lane cannot pull its pages away under it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <driver_types.h>

#include "agent.h"
#include "emu_int.h"
#include "fatbin.h"
#include "ptx_exec.h"

/* A parsed module, shared by every context that loads the same fatbin. */
struct emu_ptx {
  struct emu_ptx *next; /* e->parsed, under e->mu */
  uint8_t hash[16];
  struct ptx_module *m; /* prepared, immutable */
  uint64_t const_size;  /* bytes of .const variables */
  unsigned refs;        /* under e->mu; the cache holds one */
};

struct emu_function {
  struct emu_function *next;
  struct emu_module *mod;
  uint32_t index; /* in mod->px->m->funcs */
};

/* A module loaded in one context. */
struct emu_module {
  struct emu_ptx *px;
  uint64_t *sym_addr;   /* m->nsyms: device address of each variable */
  pthread_mutex_t mu;   /* guards fns: lanes may look up concurrently */
  struct emu_function *fns;
};

/* ---- the executor's pool ------------------------------------------------ */

int emu_kernels_init(struct emu *e, unsigned workers)
{
  return ptx_pool_new(workers, &e->pool);
}

void emu_kernels_release(struct emu *e)
{
  struct emu_ptx *px, *next;

  for (px = e->parsed; px; px = next) {
    next = px->next;
    ptx_module_free(px->m);
    free(px);
  }
  e->parsed = NULL;
  if (e->pool)
    ptx_pool_free(e->pool);
  e->pool = NULL;
}

/* ---- parsing, once per module ------------------------------------------- */

static void px_put(struct emu *e, struct emu_ptx *px)
{
  pthread_mutex_lock(&e->mu);
  px->refs--; /* never reaches 0: the cache keeps its reference */
  pthread_mutex_unlock(&e->mu);
}

/*
 * The PTX of image: from a fatbin the best entry for the device, or the
 * image itself when it is PTX text (cuModuleLoadData accepts both).
 * Returns cudaSuccess and a malloc()ed NUL-terminated copy, or the CUDA
 * error with why filled.
 */
static uint32_t pick_ptx(struct emu *e, const uint8_t *image, size_t len,
                         const uint8_t *hash8, char **ptx, size_t *plen,
                         char *why)
{
  struct tr_fatbin *fb;
  uint8_t *text = NULL;
  int rc;

  *ptx = NULL;
  if (len > 8 && (memcmp(image, "//", 2) == 0 ||
                  memcmp(image, ".version", 8) == 0)) {
    text = malloc(len + 1);
    if (!text)
      return cudaErrorMemoryAllocation;
    memcpy(text, image, len);
    text[len] = 0;
    *ptx = (char *)text;
    *plen = strnlen((char *)text, len);
    return cudaSuccess;
  }
  fb = malloc(sizeof(*fb));
  if (!fb)
    return cudaErrorMemoryAllocation;
  rc = tr_fatbin_parse(image, len, fb);
  if (rc < 0) {
    free(fb);
    snprintf(why, AGT_WHY_MAX, "the module is neither a CUDA fatbin nor PTX "
                               "text (%s)", strerror(-rc));
    return cudaErrorInvalidKernelImage;
  }
  rc = tr_fatbin_best_ptx(fb, e->cc, &text, plen);
  if (rc == 0) {
    uint32_t chosen = 0;

    /* Which entry tr_fatbin_best_ptx took: the highest arch <= cc. */
    for (uint32_t i = 0; i < fb->count; i++)
      if (fb->entries[i].kind == TR_FATBIN_KIND_PTX &&
          fb->entries[i].arch <= e->cc && fb->entries[i].arch > chosen)
        chosen = fb->entries[i].arch;
    agt_info("module %02x%02x%02x%02x: running its compute_%u PTX on the "
             "emulated device (compute capability %u.%u)", hash8[0], hash8[1],
             hash8[2], hash8[3], chosen, e->cc / 10, e->cc % 10);
  }
  if (rc == -ENOENT) {
    uint32_t newest = 0, sass = 0;

    for (uint32_t i = 0; i < fb->count; i++) {
      if (fb->entries[i].kind == TR_FATBIN_KIND_PTX &&
          fb->entries[i].arch > newest)
        newest = fb->entries[i].arch;
      if (fb->entries[i].kind == TR_FATBIN_KIND_ELF &&
          fb->entries[i].arch > sass)
        sass = fb->entries[i].arch;
    }
    if (newest)
      snprintf(why, AGT_WHY_MAX,
               "the module's PTX is for compute_%u, newer than the emulated "
               "device (compute capability %u.%u, set by the agent's "
               "--emu-cc); rebuild with -gencode arch=compute_%u,"
               "code=compute_%u", newest, e->cc / 10, e->cc % 10, e->cc,
               e->cc);
    else if (sass)
      snprintf(why, AGT_WHY_MAX,
               "the module holds machine code for sm_%u only and no PTX, "
               "which the emulated device runs; rebuild with PTX embedded, "
               "e.g. nvcc -gencode arch=compute_%u,code=compute_%u", sass,
               sass < e->cc ? sass : e->cc, sass < e->cc ? sass : e->cc);
    else
      snprintf(why, AGT_WHY_MAX, "the module has no code at all (no PTX, no "
               "machine code)");
    free(fb);
    return cudaErrorNoKernelImageForDevice;
  }
  free(fb);
  if (rc < 0) {
    snprintf(why, AGT_WHY_MAX, "cannot read the module's PTX (%s)",
             strerror(-rc));
    return rc == -ENOMEM ? cudaErrorMemoryAllocation
                         : cudaErrorInvalidKernelImage;
  }
  *ptx = (char *)text;
  return cudaSuccess;
}

/* The parsed module of image, from the cache or parsed now. */
static uint32_t px_get(struct emu *e, const uint8_t *image, size_t len,
                       struct emu_ptx **out, char *why)
{
  struct emu_ptx *px, *found;
  struct ptx_module *m = NULL;
  char err[AGT_WHY_MAX - 48];
  uint8_t hash[16];
  size_t plen;
  char *ptx;
  uint32_t st;
  int rc;

  tr_fatbin_hash(image, len, hash);
  pthread_mutex_lock(&e->mu);
  for (px = e->parsed; px; px = px->next)
    if (memcmp(px->hash, hash, 16) == 0) {
      px->refs++;
      break;
    }
  pthread_mutex_unlock(&e->mu);
  if (px) {
    *out = px;
    return cudaSuccess;
  }

  /* Parse outside the lock: it may take a while for a big module. */
  st = pick_ptx(e, image, len, hash, &ptx, &plen, why);
  if (st)
    return st;
  err[0] = 0;
  rc = ptx_parse(ptx, plen, &m, err, sizeof(err));
  free(ptx);
  if (rc == 0 && m->target_sm > e->cc) {
    snprintf(why, AGT_WHY_MAX, "the module's PTX targets sm_%u, newer than "
             "the emulated device (compute capability %u.%u)", m->target_sm,
             e->cc / 10, e->cc % 10);
    ptx_module_free(m);
    return cudaErrorNoKernelImageForDevice;
  }
  if (rc == 0)
    rc = ptx_exec_prepare(m, err, sizeof(err));
  if (rc < 0) {
    ptx_module_free(m);
    if (rc == -ENOMEM)
      return cudaErrorMemoryAllocation;
    snprintf(why, AGT_WHY_MAX, "the emulated device cannot load this "
             "module: %s", err);
    return cudaErrorInvalidPtx;
  }
  px = calloc(1, sizeof(*px));
  if (!px) {
    ptx_module_free(m);
    return cudaErrorMemoryAllocation;
  }
  memcpy(px->hash, hash, 16);
  px->m = m;
  for (uint32_t i = 0; i < m->nsyms; i++)
    if (m->syms[i].kind == PTX_SYM_CONST)
      px->const_size += m->syms[i].size;
  px->refs = 2; /* the cache's and the caller's */

  pthread_mutex_lock(&e->mu);
  for (found = e->parsed; found; found = found->next)
    if (memcmp(found->hash, hash, 16) == 0)
      break;
  if (found) {
    found->refs++; /* another lane parsed it meanwhile: use theirs */
  } else {
    px->next = e->parsed;
    e->parsed = px;
  }
  pthread_mutex_unlock(&e->mu);
  if (found) {
    ptx_module_free(px->m);
    free(px);
    px = found;
  }
  *out = px;
  return cudaSuccess;
}

/* ---- modules in a context ----------------------------------------------- */

static void module_free(struct agt_bctx *c, struct emu_module *mod)
{
  const struct ptx_module *m = mod->px->m;
  struct emu_function *f, *next;

  if (mod->sym_addr)
    for (uint32_t i = 0; i < m->nsyms; i++)
      if (mod->sym_addr[i])
        (void)emu_mem_free(c, mod->sym_addr[i]);
  for (f = mod->fns; f; f = next) {
    next = f->next;
    free(f);
  }
  free(mod->sym_addr);
  pthread_mutex_destroy(&mod->mu);
  px_put(c->emu, mod->px);
  free(mod);
}

uint32_t emu_module_load(struct agt_bctx *c, const uint8_t *image, size_t len,
                         void **out, char *why)
{
  struct emu_module *mod;
  const struct ptx_module *m;
  struct emu_ptx *px;
  uint32_t st;

  why[0] = 0;
  st = px_get(c->emu, image, len, &px, why);
  if (st)
    return st;
  m = px->m;
  mod = calloc(1, sizeof(*mod));
  if (!mod) {
    px_put(c->emu, px);
    return cudaErrorMemoryAllocation;
  }
  mod->px = px;
  pthread_mutex_init(&mod->mu, NULL);
  mod->sym_addr = calloc(m->nsyms ? m->nsyms : 1, sizeof(*mod->sym_addr));
  if (!mod->sym_addr) {
    module_free(c, mod);
    return cudaErrorMemoryAllocation;
  }
  /* The module's variables, initialised as the loader of a GPU does. */
  for (uint32_t i = 0; i < m->nsyms; i++) {
    const struct ptx_symbol *sy = &m->syms[i];

    if (sy->kind != PTX_SYM_GLOBAL && sy->kind != PTX_SYM_CONST)
      continue;
    if (sy->flags & PTX_SYMF_EXTERN) {
      snprintf(why, AGT_WHY_MAX, "variable '%s' is declared extern (separate "
               "compilation with -rdc needs a device link, which the "
               "emulated device does not do yet)", sy->name);
      module_free(c, mod);
      return cudaErrorInvalidPtx;
    }
    st = emu_mem_alloc(c, sy->size ? sy->size : 1, &mod->sym_addr[i]);
    if (st) {
      module_free(c, mod);
      return st;
    }
    /* Fresh pages are zero; only initialisers need copying. */
    if (sy->flags & PTX_SYMF_INIT)
      memcpy((void *)(uintptr_t)mod->sym_addr[i], m->init + sy->init_off,
             sy->size);
  }
  *out = mod;
  return cudaSuccess;
}

void emu_module_unload(struct agt_bctx *c, void *mod)
{
  module_free(c, mod);
}

uint32_t emu_function_get(struct agt_bctx *c, void *modp, const char *name,
                          void **fn)
{
  struct emu_module *mod = modp;
  struct emu_function *f;
  int i = ptx_module_find_func(mod->px->m, name);

  if (i < 0 || !mod->px->m->funcs[i].is_entry)
    return cudaErrorInvalidDeviceFunction;
  f = calloc(1, sizeof(*f));
  if (!f)
    return cudaErrorMemoryAllocation;
  f->mod = mod;
  f->index = (uint32_t)i;
  pthread_mutex_lock(&mod->mu);
  f->next = mod->fns;
  mod->fns = f;
  pthread_mutex_unlock(&mod->mu);
  *fn = f;
  return cudaSuccess;
}

uint32_t emu_symbol_get(struct agt_bctx *c, void *modp, const char *name,
                        uint64_t *addr, uint64_t *size)
{
  struct emu_module *mod = modp;
  int i = ptx_module_find_sym(mod->px->m, name);

  if (i < 0 || !mod->sym_addr[i])
    return cudaErrorInvalidSymbol;
  *addr = mod->sym_addr[i];
  *size = mod->px->m->syms[i].size;
  return cudaSuccess;
}

uint32_t emu_function_attrs(struct agt_bctx *c, void *fn,
                            struct agt_fattrs *a)
{
  struct emu_function *f = fn;
  const struct emu_ptx *px = f->mod->px;
  const struct ptx_func *pf = &px->m->funcs[f->index];
  uint32_t maxt = 1024;

  if (pf->maxntid[0])
    maxt = pf->maxntid[0] * (pf->maxntid[1] ? pf->maxntid[1] : 1) *
           (pf->maxntid[2] ? pf->maxntid[2] : 1);
  else if (pf->reqntid[0])
    maxt = pf->reqntid[0] * (pf->reqntid[1] ? pf->reqntid[1] : 1) *
           (pf->reqntid[2] ? pf->reqntid[2] : 1);
  memset(a, 0, sizeof(*a));
  a->shared_size = (uint32_t)px->m->shared_static_size;
  a->const_size = (uint32_t)px->const_size;
  a->local_size = (uint32_t)pf->local_size;
  a->max_threads = maxt < 1024 ? maxt : 1024;
  /* The interpreter has no register file to run out of; 32 is what a
     simple kernel uses on a GPU and gives full occupancy in the maths
     programs do with it. */
  a->num_regs = 32;
  a->ptx_version = px->m->version_major * 10 + px->m->version_minor;
  a->binary_version = c->emu->cc;
  a->params_size = (uint32_t)pf->param_size;
  return cudaSuccess;
}

/* ---- launches ----------------------------------------------------------- */

/* One launch's view of memory: the allocations it has touched, pinned. */
struct emu_run {
  struct agt_bctx *c;
  const struct agt_launch *l;
  pthread_mutex_t mu; /* guards pins */
  struct emu_alloc **pins;
  size_t n, cap;
};

static int run_range(void *arg, uint64_t addr, uint64_t len, uint64_t *lo,
                     uint64_t *hi)
{
  struct emu_run *r = arg;
  struct emu_alloc *al = NULL;

  pthread_mutex_lock(&r->mu);
  for (size_t i = 0; i < r->n; i++) {
    struct emu_alloc *p = r->pins[i];

    if (addr >= p->r.addr && addr - p->r.addr <= p->size &&
        len <= p->size - (addr - p->r.addr)) {
      al = p;
      break;
    }
  }
  if (!al) {
    if (r->n == r->cap) {
      size_t ncap = r->cap ? r->cap * 2 : 16;
      struct emu_alloc **np = realloc(r->pins, ncap * sizeof(*np));

      if (!np) {
        pthread_mutex_unlock(&r->mu);
        return -EFAULT; /* fails the launch cleanly, never the agent */
      }
      r->pins = np;
      r->cap = ncap;
    }
    al = emu_pin(r->c, addr, len);
    if (al)
      r->pins[r->n++] = al;
  }
  pthread_mutex_unlock(&r->mu);
  if (!al)
    return -EFAULT;
  *lo = al->r.addr;
  *hi = al->r.addr + al->size;
  return 0;
}

static void run_print(void *arg, const char *s, size_t n)
{
  struct emu_run *r = arg;

  r->l->out(r->l->out_arg, 1, s, n);
}

uint32_t emu_launch(struct agt_bctx *c, void *fn, const struct agt_launch *l)
{
  struct emu_function *f = fn;
  struct emu_module *mod = f->mod;
  struct emu *e = c->emu;
  struct ptx_devmodel dev = {
    .sm_count = e->sm_count,
    .max_threads_block = 1024,
    .max_shared_block = 166912, /* the opt-in maximum (fill_attrs) */
    .stack_size = 1024,         /* cudaLimitStackSize's default */
  };
  struct emu_run run = {.c = c, .l = l};
  struct ptx_launch_desc d = {
    .m = mod->px->m,
    .func = f->index,
    .dyn_shared = l->shmem,
    .params = l->params,
    .params_size = l->params_size,
    .sym_addr = mod->sym_addr,
    .mem = {.ctx = &run, .global_range = run_range, .print = run_print},
    .dev = &dev,
    .watchdog_ns = e->watchdog_ms * 1000000ull,
    .priority = l->priority,
  };
  struct ptx_fault fault;
  uint32_t st;

  /* No thread block clusters: the emulated device is compute capability
     8.x and says so (cudaDevAttrClusterLaunch 0).  It reports no
     cooperative launches either (it cannot synchronise a grid) and the
     shim refuses them; one sent anyway runs as any other. */
  if (agt_launch_clustered(l))
    return cudaErrorNotSupported;
  /* cudaLimitStackSize, within the 64 KiB per thread the shim allows. */
  if (l->stack_size)
    dev.stack_size = l->stack_size < (64u << 10) ? l->stack_size : 64u << 10;
  memcpy(d.grid, l->grid, sizeof(d.grid));
  memcpy(d.block, l->block, sizeof(d.block));
  memset(&fault, 0, sizeof(fault));
  pthread_mutex_init(&run.mu, NULL);
  st = ptx_launch(e->pool, &d, &fault);
  for (size_t i = 0; i < run.n; i++)
    emu_unpin(c, run.pins[i]);
  free(run.pins);
  pthread_mutex_destroy(&run.mu);
  if (st && fault.msg[0]) {
    char line[sizeof(fault.msg) + 256];
    int n = snprintf(line, sizeof(line), "tremote: kernel '%s' failed: %s\n",
                     mod->px->m->funcs[f->index].name, fault.msg);

    if (n > 0)
      l->out(l->out_arg, 2, line,
             (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
  }
  return st;
}
