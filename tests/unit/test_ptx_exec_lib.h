/*
 * test_ptx_exec_lib.h: what the executor's tests share: a device memory
 * stand-in (malloc'd buffers the global_range callback knows), a printf
 * capture, and parse + prepare + launch in one call.
 */
#ifndef TEST_PTX_EXEC_LIB_H
#define TEST_PTX_EXEC_LIB_H

#include <stddef.h>
#include <stdint.h>

#include "ptx_exec.h"

/* Device memory and printf output of a test.  Thread-safe. */
struct tmem;

struct tmem *tm_new(void);
void tm_free(struct tmem *t);
/* A zeroed buffer of n bytes the launch may use (aligned to 256). */
void *tm_alloc(struct tmem *t, size_t n);
/* What the kernels printed so far (NUL-terminated), and forget it. */
const char *tm_out(struct tmem *t);
void tm_out_clear(struct tmem *t);
struct ptx_memops tm_ops(struct tmem *t);
/* Device addresses of m's global and constant variables in t (allocated
   and initialised on first use). */
const uint64_t *tm_syms(struct tmem *t, const struct ptx_module *m);

/* Parse and prepare; on failure prints the error and returns NULL. */
struct ptx_module *tl_load(const char *ptx);
/* Parse and prepare, expecting failure: returns the rc, err filled. */
int tl_load_err(const char *ptx, char *err, size_t errlen);

/* Kernel parameters, packed as the kernel's .param list lays them out. */
struct tparams {
  uint8_t b[4096];
  uint32_t n;
};
void tp_u32(struct tparams *p, uint32_t v);
void tp_u64(struct tparams *p, uint64_t v);
void tp_ptr(struct tparams *p, const void *v);
void tp_f32(struct tparams *p, float v);
void tp_f64(struct tparams *p, double v);

struct tlaunch {
  uint32_t grid[3], block[3];
  uint32_t dyn_shared;
  uint64_t watchdog_ns;
  const volatile int *cancel;
  uint32_t stack_size; /* 0: 1024 */
  const uint64_t *sym_addr;
};

/* Launch kernel `name` of m (1-D grid/block if only x is given). */
uint32_t tl_run(struct ptx_pool *pool, struct tmem *t,
                const struct ptx_module *m, const char *name,
                const struct tlaunch *cfg, const struct tparams *p,
                struct ptx_fault *f);
/* The same with a stream priority (0, or lower for more urgent). */
uint32_t tl_run_prio(struct ptx_pool *pool, struct tmem *t,
                     const struct ptx_module *m, const char *name,
                     const struct tlaunch *cfg, const struct tparams *p,
                     struct ptx_fault *f, int priority);

/* The process-wide pool of the tests (4 workers), created on first use. */
struct ptx_pool *tl_pool(void);
void tl_pool_free(void);

/* The text of a file (NUL-terminated, malloc'd), or NULL. */
char *tl_slurp(const char *path);

/*
 * One instruction (or a few) over n lanes: body runs in a kernel where
 * each thread has loaded its inputs into %a %b %c (b32), %A %B %C (b64),
 * the same bits as %fa.. (f32), %Fa.. (f64), %ha.. (b16, the low half) and
 * %pa %pb (a != 0, b != 0); it leaves results in %d %e (b32) and %D (b64),
 * which start at 0.  Scratch: %t (b32), %T (b64), %fd (f32), %Fd (f64),
 * %hd (b16), %p %q (pred).  Returns the launch's error (0).
 */
struct top {
  uint32_t a, b, c;
  uint64_t A, B, C;
  uint32_t d, e;
  uint64_t D;
};
uint32_t tl_op(const char *body, struct top *v, unsigned n);

#endif
