/*
 * emu_int.h: what the two halves of the emulated device share.
 *
 *   emu.c          the device, its memory (windows, the allocation table,
 *                  pinning) and contexts
 *   emu_kernels.c  modules, symbols and launches: the PTX of a fatbin is
 *                  parsed once per module (cached by content hash for the
 *                  whole agent) and run by the executor (emu/ptx_exec.h)
 *
 * Locks: emu->mu guards the window list, the memory accounting and the
 * parsed-module cache; window->mu guards that window's table.  They are
 * never held together.
 */
#ifndef AGT_EMU_INT_H
#define AGT_EMU_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "rangetab.h"

#define EMU_PAGE 4096ull

struct ptx_pool;
struct emu_ptx;

struct emu_alloc {
  struct agt_range r; /* first: placed at r.addr, r.len page-rounded
                         bytes mapped and accounted */
  uint64_t size; /* what was asked for: the valid range */
  struct agt_bctx *owner;
  unsigned pins;
  bool freed;
};

struct emu_window {
  struct agt_window win; /* first: in emu->windows, under emu->mu */

  pthread_mutex_t mu; /* guards the fields below */
  struct agt_rtab t; /* the emu_allocs, sorted by address */
  uint64_t hint; /* where the next placement search starts */
};

struct emu {
  struct agt_backend b;
  struct tr_devinfo info;
  pthread_mutex_t mu;
  struct agt_window *windows; /* the emu_windows */
  uint64_t total, used; /* bytes; used is page-rounded */

  /* Kernels (emu_kernels.c). */
  struct ptx_pool *pool;   /* runs the blocks of every launch */
  struct emu_ptx *parsed;  /* parsed modules by hash, under mu */
  unsigned cc;             /* compute capability, major * 10 + minor */
  unsigned sm_count;
  uint64_t watchdog_ms;
};

struct agt_bctx {
  struct emu *emu;
  struct emu_window *w;
};

/*
 * Pin the live allocation of c that holds [a, a + len) whole, so that a
 * free cannot release its pages until emu_unpin.  NULL if there is none
 * (not c's, freed, or the range crosses its end).
 */
struct emu_alloc *emu_pin(struct agt_bctx *c, uint64_t a, uint64_t len);
void emu_unpin(struct agt_bctx *c, struct emu_alloc *al);

uint32_t emu_mem_alloc(struct agt_bctx *c, uint64_t size, uint64_t *dptr);
uint32_t emu_mem_free(struct agt_bctx *c, uint64_t dptr);

/* ---- emu_kernels.c ------------------------------------------------------ */

/* Start the executor's workers; fill e->pool.  0 or -errno. */
int emu_kernels_init(struct emu *e, unsigned workers);
/* Stop them and free the parsed-module cache (every context is closed). */
void emu_kernels_release(struct emu *e);

uint32_t emu_module_load(struct agt_bctx *c, const uint8_t *image, size_t len,
                         void **mod, char *why);
void emu_module_unload(struct agt_bctx *c, void *mod);
uint32_t emu_function_get(struct agt_bctx *c, void *mod, const char *name,
                          void **fn);
uint32_t emu_symbol_get(struct agt_bctx *c, void *mod, const char *name,
                        uint64_t *addr, uint64_t *size);
uint32_t emu_function_attrs(struct agt_bctx *c, void *fn,
                            struct agt_fattrs *a);
uint32_t emu_launch(struct agt_bctx *c, void *fn, const struct agt_launch *l);

#endif /* AGT_EMU_INT_H */
