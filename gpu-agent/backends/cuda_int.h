/*
 * cuda_int.h: what the three parts of the cuda backend share: cuda_dev.c
 * (the driver and the device: loading libcuda.so.1, errors, the device's
 * description and attributes, opening and destroying the backend), cuda.c
 * (the sessions: contexts, windows, memory) and cuda_exec.c (what they
 * run: modules, launches).  The design is at the top of cuda.c.
 */
#ifndef AGT_CUDA_INT_H
#define AGT_CUDA_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "cuda_drv.h"
#include "rangetab.h"

/* The stream every operation of a thread uses, unless its launch has a
   priority (cuda.c, cu_prio_stream). */
#define CU_STREAM CU_STREAM_PER_THREAD

/*
 * How every context waits for the device: a thread that synchronises
 * sleeps until the GPU interrupts (CU_CTX_SCHED_BLOCKING_SYNC), after
 * polling for CU_POLL_NS (cuda.c, cu_stream_wait; TREMOTE_NET_TUNE's
 * "cupoll" and "cucopypoll" change it for measurements).  The driver's default
 * would spin for as long as the work takes whenever a process has fewer
 * contexts than CPUs, which is always true of workers: thirty-two
 * sessions running long kernels would keep thirty-two cores busy doing
 * nothing, starving the broker and the agent's network thread of the
 * cores their small calls need.
 */
#define CU_CTX_FLAGS CU_CTX_SCHED_BLOCKING_SYNC
#define CU_POLL_NS 100000u

/* ---- objects ----------------------------------------------------------- */

struct cu_module;

/*
 * A range the context may use: an allocation in the window (mod == NULL)
 * or a module variable outside it (mod set).  Small allocations (at most
 * half a granule) are carved out of a slab, a mapping of one granule of
 * the context's own: the slab is the window table's entry (subs set), its
 * allocations are entries of the slab's table (in set), so a lookup looks
 * in the slab when it lands on one (cuda.c, "Slabs").
 */
struct cu_alloc {
  struct agt_range r; /* first: placed at r.addr; r.len is the mapped span
                         plus the guard granule (in a slab: the size
                         rounded up to CU_SLAB_ALIGN) */
  uint64_t size; /* what was asked for: the valid range */
  uint64_t span; /* mapped: size rounded up to the granularity */
  struct agt_bctx *owner; /* NULL: a range that could not be unmapped */
  struct cu_module *mod;  /* a module variable's alias: its module */
  uint64_t real;          /* ... and the driver's address for it */
  struct cu_alloc *next;  /* mod->syms, or the context's deferred list */
  uint64_t after; /* deferred: released once no launch of the owner that
                     started at or before ticket `after` still runs */
  struct agt_rtab *subs;  /* a slab: its allocations */
  struct cu_alloc *in;    /* an allocation in a slab: the slab */
  struct cu_alloc *slab_next; /* a slab: the context's slabs */
  unsigned pins;
  bool ready; /* mapped and accessible: may be used */
  bool freed;
};

/* Allocations in a slab start at multiples of this, as cudaMalloc's do. */
#define CU_SLAB_ALIGN 512u

/*
 * A launch batch running on a context (cuda_exec.c): numbered in the order
 * they start, so a free knows which of the running ones may still use the
 * memory (all that started before it) and which cannot (those that start
 * after it: the program freed the memory first).  On the launching
 * thread's stack, in the context's running list while it runs.
 */
struct cu_ticket {
  struct cu_ticket *next;
  uint64_t n;
};

struct cu_window {
  struct agt_window win; /* first: in cb->windows, under cb->mu */

  pthread_mutex_t mu; /* guards the fields below and the contexts' lists */
  struct agt_rtab t; /* the window's cu_allocs, sorted by address */
  uint64_t hint; /* where the next placement search starts */
};

struct cu_func {
  struct cu_func *next;
  CUfunction fn;
  _Atomic uint32_t dyn_max; /* dynamic shared memory allowed so far */
  bool prints; /* its module's: a launch ends in a flush (cu_stream_wait) */
};

struct cu_module {
  struct cu_module *next; /* c->mods while loaded, under w->mu */
  CUmodule m;
  unsigned refs; /* under w->mu: 1 while loaded, + pins of its variables */
  struct cu_alloc *syms; /* variables asked for, under w->mu */
  pthread_mutex_t mu;    /* guards fns: lanes may look up concurrently */
  struct cu_func *fns;
  bool prints; /* its kernels may call printf (tr_fatbin_may_print) */
};

struct cu_backend {
  struct agt_backend b;
  struct cu_drv drv;
  CUdevice dev;
  /*
   * The device's primary context, retained once: current while the agent
   * reserves and frees windows and asks for free memory outside any
   * session, and while a never-used session closes.
   */
  CUcontext primary;
  bool one_session; /* agt_cuda_one_session: sessions use primary */
  int compute_mode; /* CU_COMPUTEMODE_* (nvidia-smi -c) */
  uint64_t gran; /* allocation granularity */
  int driver_version;
  CUmemAllocationProp prop;
  CUmemAccessDesc access;
  struct tr_devinfo info;

  pthread_mutex_t mu; /* guards windows */
  struct agt_window *windows; /* the cu_windows */
};

struct agt_bctx {
  struct cu_backend *cb;
  struct cu_window *w;

  /* Created on first use (see the top of the file). */
  pthread_mutex_t ctx_mu;
  _Atomic(CUcontext) ctx;

  /* Under w->mu. */
  struct cu_module *mods;
  struct cu_ticket *running; /* launches running, newest first */
  uint64_t tickets;          /* handed out to launches so far */
  struct cu_alloc *deferred; /* freed while launches ran, newest first */
  struct cu_alloc *slabs;    /* for small allocations */

  pthread_mutex_t lim_mu; /* guards stack */
  uint32_t stack;         /* CU_LIMIT_STACK_SIZE set, 0 = default */

  /* Module variable aliases listed now: a launch looks for them in its
     parameters only when there are any. */
  _Atomic unsigned aliases;

  /* Streams with a priority, created on first use; destroyed with the
     context.  Under ps_mu. */
  pthread_mutex_t ps_mu;
  struct cu_pstream *pstreams;
};

struct cu_pstream {
  struct cu_pstream *next;
  pthread_t thread;
  int priority;
  CUstream s;
};

/* The backend's operations (cuda.c). */
extern const struct agt_backend_ops cu_ops;

/* ---- cuda.c: contexts, memory ---------------------------------------------- */

/* The allocation a range of a window's table belongs to, or NULL. */
struct cu_alloc *cu_alloc_of(struct agt_range *r);

/* Make c's context current on this thread, creating it on first use. */
CUresult cu_enter(struct agt_bctx *c);

/* Wait for stream s; flush: end in cuStreamSynchronize even when it is
   idle, so the driver writes device printf out now. */
CUresult cu_stream_wait(const struct cu_drv *d, CUstream s, bool flush);

/* The calling thread's stream of that priority in c (CU_STREAM for 0). */
CUstream cu_prio_stream(struct agt_bctx *c, int priority);

/* Undo a pin of an allocation or alias (the release or unload it held
   back happens now). */
void cu_unpin(struct agt_bctx *c, struct cu_alloc *al);

/* ---- cuda_exec.c: modules, launches -------------------------------------- */

/* Unload a module no longer listed and no longer referenced. */
void cu_module_free(struct agt_bctx *c, struct cu_module *mod);

/* The backend operations of the same names (backend.h). */
uint32_t cu_module_load(struct agt_bctx *c, const uint8_t *image, size_t len,
                        void **out, char *why);
void cu_module_unload(struct agt_bctx *c, void *modp);
uint32_t cu_function_get(struct agt_bctx *c, void *modp, const char *name,
                         void **fn);
uint32_t cu_symbol_get(struct agt_bctx *c, void *modp, const char *name,
                       uint64_t *addr, uint64_t *size);
uint32_t cu_function_attrs(struct agt_bctx *c, void *fn, struct agt_fattrs *a);
void cu_launch_many(struct agt_bctx *c, void *const *fns,
                    const struct agt_launch *ls, unsigned n, uint32_t *st);
uint32_t cu_launch(struct agt_bctx *c, void *fn, const struct agt_launch *l);

/* ---- cuda_dev.c ---------------------------------------------------------- */

/* CUresult to the cudaError_t the program gets (cudaErrorUnknown for a
   number the runtime does not define). */
uint32_t cu_status(CUresult r);

/* "NAME (number): description" of a driver error, into buf (n bytes). */
const char *cu_describe(const struct cu_drv *d, CUresult r, char *buf,
                        size_t n);

/* The device's compute capability, for messages. */
void cu_cc_of(const struct cu_backend *cb, int *major, int *minor);

/* Operations on the device as a whole. */
void cu_devinfo(struct agt_backend *b, struct tr_devinfo *d);
void cu_destroy(struct agt_backend *b);
void cu_dev_mem_info(struct agt_backend *b, uint64_t *free_b, uint64_t *total);

#endif /* AGT_CUDA_INT_H */
