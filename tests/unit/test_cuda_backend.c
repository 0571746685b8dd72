/*
 * test_cuda_backend.c: the agent's cuda backend (gpu-agent/backends/cuda.c)
 * and how backend.c chooses it.
 *
 *   test_cuda_backend STUB_LIB FAKE_DIR FATBIN
 *
 * Which libcuda.so.1 the backend finds is decided by the dynamic loader
 * when the process starts (LD_LIBRARY_PATH), so each case runs in a child
 * process, this program started again with "--child MODE", and the case
 * passes when the child's own checks do (77 from a child: skipped):
 *
 *   stub      libcuda.so.1 is the toolkit's stub (STUB_LIB, linked from a
 *             temporary directory): "cuda" fails, naming the stub; "auto"
 *             gives the emulated device
 *   absent    no libcuda.so.1 reachable (skipped where one is installed
 *             system-wide): "cuda" fails with "not found", "auto" is emu
 *   fake-init the fake driver (FAKE_DIR, tests/unit/fake_libcuda.c) with
 *             cuInit failing CUDA_ERROR_NO_DEVICE: the reason says so
 *   fake      the fake driver: every operation of the backend, checked
 *             against host memory at the window's addresses, including
 *             the driver-side state left after everything is closed
 *   real      the driver this machine has: the same checks on the GPU with
 *             FATBIN, built by nvcc from test_cuda_backend_kernels.cu.
 *             Without a usable GPU it prints one SKIP line and is skipped.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <cuda.h> /* CU_CTX_* */
#include <driver_types.h>

#include "backend.h"
#include "tremote/proto.h"

/* The windows the broker hands out (a TSan build's are smaller). */
#define WIN_BASE TR_VA_BUILD_BASE
#define WIN_SIZE TR_VA_BUILD_WINDOW

#define MiB (1ull << 20)
#define GRAN (2 * MiB) /* the fake's granularity, and current GPUs' */

static const char *stub_lib, *fake_dir, *fatbin_path;
static bool fake; /* the fake driver, not a GPU */
static uint8_t *image;
static size_t image_len;

static const struct agt_emu_config emu_cfg = {
  .name = "emu for test_cuda_backend",
  .mem = 64 * MiB,
  .sm_count = 1,
  .workers = 1,
  .cc = 80,
};

/* ---- the fake driver's bookkeeping -------------------------------------- */

struct fakecuda_stats {
  int contexts, reservations, maps, modules;
  uint64_t used;
  int streams, last_priority;
  unsigned primary_flags, ctx_flags;
  int blocked, primary_refs, syncs, host_regs, most_queued;
  int coop_launches, cluster_launches;
  unsigned last_cluster[3];
};

/* What the fake driver holds now (only with the fake). */
static void fake_stats(struct fakecuda_stats *s)
{
  void (*stats)(struct fakecuda_stats *);
  void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);

  assert_non_null(lib);
  *(void **)&stats = dlsym(lib, "fakecuda_stats");
  assert_non_null(stats);
  stats(s);
  dlclose(lib);
}

/* After destroy, the fake driver must hold nothing the backend made. */
static void check_fake_empty(void)
{
  struct fakecuda_stats s;

  if (!fake)
    return;
  fake_stats(&s);
  assert_int_equal(s.contexts, 0);
  assert_int_equal(s.reservations, 0);
  assert_int_equal(s.maps, 0);
  assert_int_equal(s.modules, 0);
  assert_int_equal(s.used, 0);
  assert_int_equal(s.streams, 0);
  assert_int_equal(s.primary_refs, 0);
  assert_int_equal(s.host_regs, 0);
}

/* ---- helpers ------------------------------------------------------------ */

static void no_output(void *arg, int fd, const char *s, size_t n)
{
  /* Device printf goes to the agent's stdout with the driver. */
}

static struct agt_backend *open_cuda(void)
{
  struct agt_backend *b = NULL;
  const char *why = NULL;
  int rc = agt_backend_open("cuda", &emu_cfg, &b, &why);

  if (rc)
    print_error("cuda backend: %s\n", why);
  assert_int_equal(rc, 0);
  assert_string_equal(b->ops->name, "cuda");
  return b;
}

static struct agt_bctx *open_ctx(struct agt_backend *b)
{
  struct agt_bctx *c = NULL;
  const char *why = NULL;
  int rc = b->ops->ctx_open(b, WIN_BASE, WIN_SIZE, &c, &why);

  if (rc)
    print_error("ctx_open: %s\n", why);
  assert_int_equal(rc, 0);
  return c;
}

static bool in_window(uint64_t p, uint64_t len)
{
  return p >= WIN_BASE && p - WIN_BASE <= WIN_SIZE &&
         len <= WIN_SIZE - (p - WIN_BASE);
}

static uint32_t launch_prio(struct agt_backend *b, struct agt_bctx *c,
                            void *fn, uint32_t blocks, const void *params,
                            uint32_t psize, uint32_t shmem, uint32_t stack,
                            int priority)
{
  struct agt_launch l = {
    .grid = {blocks, 1, 1},
    .block = {256, 1, 1},
    .shmem = shmem,
    .stack_size = stack,
    .priority = priority,
    .params = params,
    .params_size = psize,
    .out = no_output,
  };

  return b->ops->launch(c, fn, &l);
}

static uint32_t launch(struct agt_backend *b, struct agt_bctx *c, void *fn,
                       uint32_t blocks, const void *params, uint32_t psize,
                       uint32_t shmem, uint32_t stack)
{
  return launch_prio(b, c, fn, blocks, params, psize, shmem, stack, 0);
}

/* fill(u32 *p, u32 n, u32 v): p[i] = v + i. */
static uint32_t launch_fill(struct agt_backend *b, struct agt_bctx *c,
                            void *fn, uint64_t p, uint32_t n, uint32_t v)
{
  uint8_t prm[16];

  memcpy(prm, &p, 8);
  memcpy(prm + 8, &n, 4);
  memcpy(prm + 12, &v, 4);
  return launch(b, c, fn, (n + 255) / 256, prm, sizeof(prm), 0, 0);
}

static void check_fill(struct agt_backend *b, struct agt_bctx *c, uint64_t p,
                       uint32_t n, uint32_t v)
{
  uint32_t *got = malloc(n * 4u);

  assert_non_null(got);
  assert_int_equal(b->ops->copy_d2h(c, got, p, n * 4u), cudaSuccess);
  for (uint32_t i = 0; i < n; i++)
    if (got[i] != v + i)
      fail_msg("word %u is %#x, expected %#x", i, got[i], v + i);
  free(got);
}

static void load_module(struct agt_backend *b, struct agt_bctx *c, void **mod)
{
  char why[AGT_WHY_MAX] = "";
  uint32_t st = b->ops->module_load(c, image, image_len, mod, why);

  if (st)
    print_error("module_load: %u: %s\n", st, why);
  assert_int_equal(st, cudaSuccess);
}

/* ---- device, windows, memory -------------------------------------------- */

static void test_device_and_memory(void **state)
{
  struct agt_backend *b = open_cuda();
  const struct agt_backend_ops *o = b->ops;
  struct agt_bctx *c1, *c2, *c3 = NULL;
  struct tr_devinfo info;
  const char *why = NULL;
  const uint64_t len = MiB + 3;
  uint64_t p0 = 1, p1, p2, q, big, f0, f1, f2, t;
  uint8_t *buf = malloc(len), *back = malloc(len);
  void *pin = NULL;
  int32_t v;

  assert_non_null(buf);
  assert_non_null(back);
  for (uint64_t i = 0; i < len; i++)
    buf[i] = (uint8_t)(i * 7 + 1);

  /* The description. */
  o->devinfo(b, &info);
  assert_true(info.name[0] != 0);
  assert_true(info.total_mem > 0);
  assert_true(info.caps & TR_CAP_EXEC);
  assert_int_equal(info.va_base, 0);
  assert_true(info.nattr > 60);
  assert_int_equal(tr_devinfo_attr(&info, cudaDevAttrComputeCapabilityMajor,
                                   &v), 0);
  assert_true(v >= 5);
  /* tremote's answers, whatever the GPU says. */
  assert_int_equal(tr_devinfo_attr(&info, cudaDevAttrCanMapHostMemory, &v), 0);
  assert_int_equal(v, 0);
  assert_int_equal(tr_devinfo_attr(&info, cudaDevAttrManagedMemory, &v), 0);
  assert_int_equal(v, 1);
  assert_int_equal(tr_devinfo_attr(&info, cudaDevAttrConcurrentManagedAccess,
                                   &v), 0);
  assert_int_equal(v, 0);
  if (fake) {
    assert_string_equal(info.name, "tremote fake GPU");
    assert_int_equal(info.total_mem, 1ull << 30);
    assert_int_equal((uint8_t)info.uuid[0], 0xa0);
    assert_int_equal((uint8_t)info.uuid[15], 0xaf);
    /* The GPU's answer, and an attribute the driver does not know. */
    assert_int_equal(tr_devinfo_attr(&info, cudaDevAttrL2CacheSize, &v), 0);
    assert_int_equal(v, 1000 + cudaDevAttrL2CacheSize);
    assert_int_equal(tr_devinfo_attr(&info, cudaDevAttrMpsEnabled, &v),
                     -ENOENT);
  } else {
    print_message("GPU: %s, %.1f GiB\n", info.name,
                  (double)info.total_mem / (1ull << 30));
  }

  /* Windows: checked, shared by equal ones, exclusive otherwise. */
  assert_int_equal(o->ctx_open(b, WIN_BASE + 4096, WIN_SIZE, &c3, &why),
                   -EINVAL);
  assert_non_null(why);
  c1 = open_ctx(b);
  c2 = open_ctx(b);
  why = NULL;
  assert_int_equal(o->ctx_open(b, WIN_BASE + GRAN, WIN_SIZE, &c3, &why),
                   -EEXIST);
  assert_non_null(why);

  /* Allocations land in the window, apart. */
  assert_int_equal(o->mem_alloc(c1, 0, &p0), cudaSuccess);
  assert_int_equal(p0, 0);
  assert_int_equal(o->mem_alloc(c1, len, &p1), cudaSuccess);
  assert_int_equal(o->mem_alloc(c1, 100, &p2), cudaSuccess);
  assert_int_equal(o->mem_alloc(c2, 4096, &q), cudaSuccess);
  assert_true(in_window(p1, len));
  assert_true(in_window(p2, 100));
  assert_true(in_window(q, 4096));
  assert_true(p2 >= p1 + len || p1 >= p2 + 100);
  assert_true(q >= p1 + len || p1 >= q + 4096);
  if (fake) {
    /* Whole granules, each followed by an unmapped one. */
    assert_int_equal(p1 % GRAN, 0);
    assert_int_equal(p2 % GRAN, 0);
    assert_true(p2 >= p1 + GRAN + GRAN || p1 >= p2 + GRAN + GRAN);
    assert_true(q >= p1 + GRAN + GRAN || p1 >= q + GRAN + GRAN);
  }
  assert_int_equal(o->mem_alloc(c1, WIN_SIZE + 1, &big),
                   cudaErrorMemoryAllocation);
  assert_int_equal(big, 0);

  /* Copies, memset, device to device. */
  assert_int_equal(o->copy_h2d(c1, p1, buf, len), cudaSuccess);
  memset(back, 0, len);
  assert_int_equal(o->copy_d2h(c1, back, p1, len), cudaSuccess);
  assert_memory_equal(back, buf, len);
  assert_int_equal(o->memset_d8(c1, p1 + 100, 0xab, 1000), cudaSuccess);
  assert_int_equal(o->copy_d2h(c1, back, p1, 2000), cudaSuccess);
  assert_int_equal(back[99], buf[99]);
  for (int i = 100; i < 1100; i++)
    assert_int_equal(back[i], 0xab);
  assert_int_equal(back[1100], buf[1100]);
  assert_int_equal(o->copy_d2d(c1, p2, p1 + 5, 100), cudaSuccess);
  assert_int_equal(o->copy_d2h(c1, back, p2, 100), cudaSuccess);
  assert_memory_equal(back, buf + 5, 95);
  assert_int_equal(o->copy_h2d(c1, p1, buf, 0), cudaSuccess);

  /* Ranges the context does not own: errors, never a fault. */
  assert_int_equal(o->mem_check(c1, p1, len), cudaSuccess);
  assert_int_equal(o->mem_check(c1, p1 + 10, len - 10), cudaSuccess);
  assert_int_equal(o->mem_check(c1, p1, len + 1), cudaErrorInvalidValue);
  assert_int_equal(o->mem_check(c1, p1 + len, 1), cudaErrorInvalidValue);
  assert_int_equal(o->mem_check(c1, q, 1), cudaErrorInvalidValue);
  assert_int_equal(o->mem_check(c2, q, 4096), cudaSuccess);
  assert_int_equal(o->mem_check(c1, WIN_BASE + WIN_SIZE - 64, 8),
                   cudaErrorInvalidValue);
  assert_int_equal(o->mem_check(c1, 0x1000, 4), cudaErrorInvalidValue);
  assert_int_equal(o->mem_check(c1, (uint64_t)(uintptr_t)buf, 4),
                   cudaErrorInvalidValue);
  assert_int_equal(o->mem_check(c1, p1, UINT64_MAX), cudaErrorInvalidValue);
  assert_int_equal(o->copy_h2d(c1, p1 + len - 4, buf, 8),
                   cudaErrorInvalidValue);
  assert_int_equal(o->copy_d2h(c1, back, q, 16), cudaErrorInvalidValue);
  assert_int_equal(o->copy_d2d(c1, p2, q, 16), cudaErrorInvalidValue);
  assert_int_equal(o->copy_d2d(c1, q, p2, 16), cudaErrorInvalidValue);
  assert_int_equal(o->memset_d8(c2, p1, 0, 1), cudaErrorInvalidValue);
  /* GPU memory is never handed to the host to write directly. */
  assert_null(o->mem_pin(c1, p1, len, &pin));
  assert_null(pin);

  /* Frees. */
  assert_int_equal(o->mem_free(c1, 0), cudaSuccess);
  assert_int_equal(o->mem_free(c1, p1 + 1), cudaErrorInvalidValue);
  assert_int_equal(o->mem_free(c2, p1), cudaErrorInvalidValue);
  assert_int_equal(o->mem_free(c1, 0x1000), cudaErrorInvalidValue);
  assert_int_equal(o->mem_info(c1, &f0, &t), cudaSuccess);
  assert_true(t > 0 && f0 <= t);
  assert_int_equal(o->synchronize(c1), cudaSuccess);
  assert_int_equal(o->mem_free(c1, p1), cudaSuccess);
  assert_int_equal(o->mem_free(c1, p1), cudaErrorInvalidValue);
  assert_int_equal(o->mem_check(c1, p1, 1), cudaErrorInvalidValue);

  /* Memory really goes to the device and comes back. */
  o->dev_mem_info(b, &f0, &t);
  assert_int_equal(o->mem_alloc(c1, 256 * MiB, &big), cudaSuccess);
  o->dev_mem_info(b, &f1, &t);
  assert_int_equal(o->mem_free(c1, big), cudaSuccess);
  o->dev_mem_info(b, &f2, &t);
  assert_true(f0 >= f1 + 250 * MiB);
  assert_true(f2 >= f1 + 250 * MiB);

  /* Closing one context leaves the shared window to the other. */
  o->ctx_close(c1);
  assert_int_equal(o->copy_h2d(c2, q, buf, 4096), cudaSuccess);
  assert_int_equal(o->copy_d2h(c2, back, q, 4096), cudaSuccess);
  assert_memory_equal(back, buf, 4096);
  o->ctx_close(c2);
  /* The last one freed it: it can be reserved again. */
  c1 = open_ctx(b);
  assert_int_equal(o->mem_alloc(c1, 4096, &p1), cudaSuccess);
  assert_true(in_window(p1, 4096));
  o->ctx_close(c1);
  o->destroy(b);
  check_fake_empty();
  free(buf);
  free(back);
}

/* ---- modules, symbols, launches, faults --------------------------------- */

static void test_modules_and_launches(void **state)
{
  struct agt_backend *b = open_cuda();
  const struct agt_backend_ops *o = b->ops;
  struct agt_bctx *c = open_ctx(b);
  char why[AGT_WHY_MAX];
  void *mod, *fill, *readc, *fn;
  struct agt_fattrs a;
  uint64_t p, out, sym, symsize, val = 0x1234567890abcdefull, got = 0;
  /* A fatbin header whose size runs past the bytes there are. */
  static const uint8_t damaged[32] = {0x50, 0xed, 0x55, 0xba, 1, 0, 16, 0,
                                      0,    0,    0,    0x10};

  /* Images the driver must never see, and one it refuses. */
  why[0] = 0;
  assert_int_equal(o->module_load(c, (const uint8_t *)"hello world!", 12,
                                  &mod, why),
                   cudaErrorInvalidKernelImage);
  assert_non_null(strstr(why, "neither"));
  why[0] = 0;
  assert_int_equal(o->module_load(c, damaged, sizeof(damaged), &mod, why),
                   cudaErrorInvalidKernelImage);
  assert_non_null(strstr(why, "damaged"));
  if (fake) {
    static const char notfake[] = "// not a module of ours";

    why[0] = 0;
    /* Not NUL-terminated within its length: the backend adds one. */
    assert_int_equal(o->module_load(c, (const uint8_t *)notfake,
                                    sizeof(notfake) - 1, &mod, why),
                     cudaErrorInvalidPtx);
    print_message("refused: %s\n", why);
    assert_non_null(strstr(why, "CUDA_ERROR_INVALID_PTX"));
    assert_non_null(strstr(why, "line 1: not a fake module"));
    assert_null(strstr(why, "more")); /* the log's first line only */
  }

  load_module(b, c, &mod);
  assert_int_equal(o->function_get(c, mod, "no_such_kernel", &fn),
                   cudaErrorInvalidDeviceFunction);
  assert_int_equal(o->function_get(c, mod, "fill", &fill), cudaSuccess);
  assert_int_equal(o->function_get(c, mod, "read_counter", &readc),
                   cudaSuccess);
  assert_int_equal(o->function_attrs(c, fill, &a), cudaSuccess);
  assert_true(a.max_threads >= 256);
  assert_true(a.binary_version >= 50);
  if (fake)
    assert_int_equal(a.ptx_version, 80);
  else
    print_message("fill: %u registers, binary %u, PTX %u, %u bytes of "
                  "parameters\n", a.num_regs, a.binary_version,
                  a.ptx_version, a.params_size);
  /* Drivers before CUDA 12.4 cannot say; the fake and newer ones can. */
  assert_true(a.params_size == 16 || (!fake && a.params_size == 0));

  /* A kernel writes through a window pointer; done at the first poll, it
     is not waited for by sleeping. */
  assert_int_equal(o->mem_alloc(c, 100000 * 4, &p), cudaSuccess);
  if (fake) {
    struct fakecuda_stats fs0, fs;

    fake_stats(&fs0);
    assert_int_equal(launch_fill(b, c, fill, p, 100000, 7), cudaSuccess);
    fake_stats(&fs);
    assert_int_equal(fs.blocked, fs0.blocked);
    /* Nor with a driver synchronise: this module cannot print. */
    assert_int_equal(fs.syncs, fs0.syncs);
    /* The program's synchronise is a driver synchronise, where a real
       driver writes device printf out, even with the stream done. */
    assert_int_equal(o->synchronize(c), cudaSuccess);
    fake_stats(&fs0);
    assert_int_equal(fs0.syncs, fs.syncs + 1);
    /* A module that may print: its launch ends in one, so that what its
       kernels printed comes with the launch's answer. */
    {
      static const char printing[] =
          "// tremote fake module\n"
          ".extern .func (.param .b32 func_retval0) vprintf\n"
          "(.param .b64 a, .param .b64 b);\n";
      void *pmod, *pfill;

      assert_int_equal(o->module_load(c, (const uint8_t *)printing,
                                      sizeof(printing), &pmod, why),
                       cudaSuccess);
      assert_int_equal(o->function_get(c, pmod, "fill", &pfill),
                       cudaSuccess);
      /* The same words as the fill above: it is checked below. */
      assert_int_equal(launch_fill(b, c, pfill, p, 1000, 7), cudaSuccess);
      fake_stats(&fs);
      assert_int_equal(fs.syncs, fs0.syncs + 1);
      o->module_unload(c, pmod);
    }
  } else {
    assert_int_equal(launch_fill(b, c, fill, p, 100000, 7), cudaSuccess);
  }
  check_fill(b, c, p, 100000, 7);
  /* With a stack size and more dynamic shared memory than the default. */
  {
    uint8_t prm[16];
    uint32_t n = 1000, v2 = 99;

    memcpy(prm, &p, 8);
    memcpy(prm + 8, &n, 4);
    memcpy(prm + 12, &v2, 4);
    assert_int_equal(launch(b, c, fill, 4, prm, 16, 64 << 10, 4096),
                     cudaSuccess);
    check_fill(b, c, p, 1000, 99);
  }
  /* A stream priority: the kernel goes to a stream of that priority, one
     per thread and priority, kept for the context's life; priority 0 is
     the per-thread default stream again. */
  for (int i = 0; i < 2; i++) {
    uint8_t prm[16];
    uint32_t n = 1000, v2 = 40 + (uint32_t)i;
    struct fakecuda_stats fs;

    memcpy(prm, &p, 8);
    memcpy(prm + 8, &n, 4);
    memcpy(prm + 12, &v2, 4);
    assert_int_equal(launch_prio(b, c, fill, 4, prm, 16, 0, 0, -3),
                     cudaSuccess);
    check_fill(b, c, p, 1000, v2);
    if (fake) {
      fake_stats(&fs);
      assert_int_equal(fs.last_priority, -3);
      assert_int_equal(fs.streams, 1);
    }
  }
  if (fake) {
    struct fakecuda_stats fs;

    assert_int_equal(launch_fill(b, c, fill, p, 100, 5), cudaSuccess);
    fake_stats(&fs);
    assert_int_equal(fs.last_priority, 0);
  }

  /* A module variable: the driver places it outside the window; the
     program gets an alias in the window, a range of the context. */
  assert_int_equal(o->symbol_get(c, mod, "no_such_var", &sym, &symsize),
                   cudaErrorInvalidSymbol);
  assert_int_equal(o->symbol_get(c, mod, "tr_counter", &sym, &symsize),
                   cudaSuccess);
  assert_int_equal(symsize, 8);
  assert_true(in_window(sym, 1));
  assert_int_equal(o->mem_check(c, sym, 8), cudaSuccess);
  assert_int_equal(o->mem_check(c, sym + 4, 4), cudaSuccess);
  assert_int_equal(o->mem_check(c, sym, 9), cudaErrorInvalidValue);
  assert_int_equal(o->mem_free(c, sym), cudaErrorInvalidValue);
  assert_int_equal(o->copy_h2d(c, sym, &val, 8), cudaSuccess);
  assert_int_equal(o->copy_d2h(c, &got, sym, 8), cudaSuccess);
  assert_int_equal(got, val);
  out = p + 64;
  assert_int_equal(launch(b, c, readc, 1, &out, 8, 0, 0), cudaSuccess);
  got = 0;
  assert_int_equal(o->copy_d2h(c, &got, out, 8), cudaSuccess);
  assert_int_equal(got, val);
  /* Asked for again: the same range, recorded once. */
  assert_int_equal(o->symbol_get(c, mod, "tr_counter", &out, &symsize),
                   cudaSuccess);
  assert_int_equal(out, sym);
  /* The alias as a kernel's pointer parameter reaches the variable (the
     fake's fill writes n words at its pointer). */
  assert_int_equal(launch_fill(b, c, fill, sym, 2, 77), cudaSuccess);
  got = 0;
  assert_int_equal(o->copy_d2h(c, &got, sym, 8), cudaSuccess);
  assert_int_equal(got, 77ull | 78ull << 32); /* fill writes v + i */
  /* and a device-to-device copy from it translates the source too */
  assert_int_equal(o->copy_d2d(c, p, sym, 8), cudaSuccess);
  got = 0;
  assert_int_equal(o->copy_d2h(c, &got, p, 8), cudaSuccess);
  assert_int_equal(got, 77ull | 78ull << 32); /* fill writes v + i */

  /* Unloading the module ends its variable's range. */
  o->module_unload(c, mod);
  assert_int_equal(o->mem_check(c, sym, 8), cudaErrorInvalidValue);
  /* ctx_close unloads what was left loaded. */
  load_module(b, c, &mod);
  o->ctx_close(c);
  o->destroy(b);
  check_fake_empty();
}

/*
 * A kernel fault in a second session of the process: its context is
 * unusable from then on (sticky).  On a real GPU the fault poisons every
 * context of the process (an H200 with driver 580 answered the other
 * session's next launch with CUDA_ERROR_ILLEGAL_ADDRESS too), which is why
 * sessions run in worker processes by default; the fake driver keeps it to
 * the context, so there the other session goes on.  Either way both close
 * cleanly, without a hang.  Last of the group: after it a real GPU's
 * process can do no more CUDA work.
 */
static void test_fault(void **state)
{
  struct agt_backend *b = open_cuda();
  const struct agt_backend_ops *o = b->ops;
  struct agt_bctx *c = open_ctx(b), *c2 = open_ctx(b);
  void *mod, *mod2, *fill, *fill2;
  uint64_t p;
  const uint64_t bad = WIN_BASE + WIN_SIZE - 2 * GRAN;
  uint32_t st;

  load_module(b, c, &mod);
  load_module(b, c2, &mod2);
  assert_int_equal(o->function_get(c, mod, "fill", &fill), cudaSuccess);
  assert_int_equal(o->function_get(c2, mod2, "fill", &fill2), cudaSuccess);
  assert_int_equal(o->mem_alloc(c, 5000 * 4, &p), cudaSuccess);
  assert_int_equal(launch_fill(b, c, fill, p, 5000, 2), cudaSuccess);
  check_fill(b, c, p, 5000, 2);

  assert_int_equal(launch_fill(b, c2, fill2, bad, 1, 0),
                   cudaErrorIllegalAddress);
  assert_int_equal(o->synchronize(c2), cudaErrorIllegalAddress);
  st = launch_fill(b, c, fill, p, 5000, 3);
  print_message("the other session's launch after the fault: %u\n", st);
  if (fake) {
    assert_int_equal(st, cudaSuccess);
    check_fill(b, c, p, 5000, 3);
    assert_int_equal(o->synchronize(c), cudaSuccess);
  } else {
    assert_int_equal(st, cudaErrorIllegalAddress);
  }
  /* Dead sessions still close cleanly, their modules and all. */
  o->module_unload(c2, mod2);
  o->ctx_close(c2);
  o->module_unload(c, mod);
  o->ctx_close(c);
  o->destroy(b);
  if (fake)
    check_fake_empty();
}

/* ---- small allocations ------------------------------------------------------ */

static int cmp_u64(const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

  return x < y ? -1 : x > y;
}

/* Used device memory as the fake driver counts it (0 without the fake). */
static uint64_t fake_used(void)
{
  struct fakecuda_stats fs;

  if (!fake)
    return 0;
  fake_stats(&fs);
  return fs.used;
}

/*
 * Allocations of at most half a granule share slabs of one granule: a
 * thousand of 1000 bytes take one granule of device memory, not a
 * thousand; each is its own range for every check; freeing keeps one
 * empty slab per context, and closing the context frees it.
 */
static void test_small_allocations(void **state)
{
  enum { N = 1000 };
  struct agt_backend *b = open_cuda();
  const struct agt_backend_ops *o = b->ops;
  struct agt_bctx *c = open_ctx(b), *c2 = open_ctx(b);
  uint64_t *p = calloc(N, sizeof(*p)), *sorted = calloc(N, sizeof(*p));
  uint64_t before = fake_used(), big, half[3], q;
  uint8_t buf[1000], back[1000];
  void *mod, *fill;

  assert_non_null(p);
  assert_non_null(sorted);
  for (int i = 0; i < N; i++) {
    assert_int_equal(o->mem_alloc(c, 1000, &p[i]), cudaSuccess);
    assert_true(in_window(p[i], 1000));
    assert_int_equal(p[i] % 512, 0);
  }
  memcpy(sorted, p, N * sizeof(*p));
  qsort(sorted, N, sizeof(*sorted), cmp_u64);
  for (int i = 1; i < N; i++)
    assert_true(sorted[i] - sorted[i - 1] >= 1000); /* none overlaps */
  if (fake)
    assert_int_equal(fake_used() - before, GRAN);

  /* Each is exactly its own range. */
  assert_int_equal(o->mem_check(c, p[5], 1000), cudaSuccess);
  assert_int_equal(o->mem_check(c, p[5], 1001), cudaErrorInvalidValue);
  assert_int_equal(o->mem_check(c, p[5] + 1000, 1), cudaErrorInvalidValue);
  assert_int_equal(o->mem_check(c2, p[5], 1), cudaErrorInvalidValue);
  assert_int_equal(o->mem_free(c, p[5] + 8), cudaErrorInvalidValue);
  assert_int_equal(o->mem_free(c2, p[5]), cudaErrorInvalidValue);
  for (int i = 0; i < 1000; i++)
    buf[i] = (uint8_t)(i * 7 + 1);
  assert_int_equal(o->copy_h2d(c, p[5], buf, 1000), cudaSuccess);
  assert_int_equal(o->copy_h2d(c, p[5], buf, 1001), cudaErrorInvalidValue);
  assert_int_equal(o->copy_d2d(c, p[6], p[5], 1000), cudaSuccess);
  assert_int_equal(o->copy_d2h(c, back, p[6], 1000), cudaSuccess);
  assert_memory_equal(back, buf, 1000);
  /* A kernel writes one (250 words of 4 bytes). */
  load_module(b, c, &mod);
  assert_int_equal(o->function_get(c, mod, "fill", &fill), cudaSuccess);
  assert_int_equal(launch_fill(b, c, fill, p[7], 250, 3), cudaSuccess);
  check_fill(b, c, p[7], 250, 3);
  o->module_unload(c, mod);

  /* Freed once, then never again; its place is taken again. */
  assert_int_equal(o->mem_free(c, p[5]), cudaSuccess);
  assert_int_equal(o->mem_free(c, p[5]), cudaErrorInvalidValue);
  assert_int_equal(o->mem_check(c, p[5], 1), cudaErrorInvalidValue);
  assert_int_equal(o->mem_alloc(c, 1000, &q), cudaSuccess);
  assert_int_equal(q, p[5]);

  /* Half a granule still goes to a slab; more has a mapping of its own. */
  for (int i = 0; i < 3; i++)
    assert_int_equal(o->mem_alloc(c2, GRAN / 2, &half[i]), cudaSuccess);
  if (fake)
    assert_int_equal(fake_used() - before, 3 * GRAN); /* c's, c2's two */
  assert_int_equal(o->mem_alloc(c2, GRAN / 2 + 1, &big), cudaSuccess);
  if (fake)
    assert_int_equal(fake_used() - before, 4 * GRAN);
  assert_int_equal(o->mem_free(c2, big), cudaSuccess);
  /* Emptied slabs: one stays for the next small allocation. */
  for (int i = 0; i < 3; i++)
    assert_int_equal(o->mem_free(c2, half[i]), cudaSuccess);
  if (fake)
    assert_int_equal(fake_used() - before, 2 * GRAN);

  for (int i = 0; i < N; i++)
    if (i != 5)
      assert_int_equal(o->mem_free(c, p[i]), cudaSuccess);
  /* Closing frees what is left: q, and the slabs. */
  o->ctx_close(c);
  o->ctx_close(c2);
  if (fake)
    assert_int_equal(fake_used(), before);
  free(p);
  free(sorted);
  o->destroy(b);
  check_fake_empty();
}

/* ---- one session per process ---------------------------------------------- */

/* Host memory page-locked for copies (a worker's shared memory with the
   agent): copies to and from it are the same bytes; it is registered
   once, and unregistered before the context closes. */
static void test_host_register(void **state)
{
  struct agt_backend *b = open_cuda();
  const struct agt_backend_ops *o = b->ops;
  struct agt_bctx *c = open_ctx(b);
  const size_t len = 4 * MiB;
  uint8_t *h = aligned_alloc(4096, len), *back = malloc(len);
  struct fakecuda_stats fs;
  uint64_t p;

  assert_non_null(h);
  assert_non_null(back);
  assert_non_null(o->host_register);
  assert_int_equal(o->host_register(c, h, len), 0);
  if (fake) {
    fake_stats(&fs);
    assert_int_equal(fs.host_regs, 1);
    /* Twice is the driver's error, and nothing more is done. */
    assert_int_equal(o->host_register(c, h, len), -1);
    fake_stats(&fs);
    assert_int_equal(fs.host_regs, 1);
  }
  assert_int_equal(o->mem_alloc(c, len, &p), cudaSuccess);
  for (size_t i = 0; i < len; i++)
    h[i] = (uint8_t)(i * 13 + 5);
  assert_int_equal(o->copy_h2d(c, p, h, len), cudaSuccess);
  memset(h, 0, len);
  assert_int_equal(o->copy_d2h(c, h, p, len), cudaSuccess);
  for (size_t i = 0; i < len; i++)
    if (h[i] != (uint8_t)(i * 13 + 5))
      fail_msg("byte %zu: %u", i, h[i]);
  o->host_unregister(c, h);
  if (fake) {
    fake_stats(&fs);
    assert_int_equal(fs.host_regs, 0);
  }
  assert_int_equal(o->mem_free(c, p), cudaSuccess);
  o->ctx_close(c);
  o->destroy(b);
  free(h);
  free(back);
  check_fake_empty();
}

/* A worker's backend: the session works in the primary context, and no
   other context is ever made. */
static void test_one_session(void **state)
{
  struct agt_backend *b = open_cuda();
  const struct agt_backend_ops *o = b->ops;
  struct agt_bctx *c;
  struct fakecuda_stats fs;
  void *mod, *fill;
  uint64_t p;

  agt_cuda_one_session(b);
  c = open_ctx(b);
  load_module(b, c, &mod);
  assert_int_equal(o->function_get(c, mod, "fill", &fill), cudaSuccess);
  assert_int_equal(o->mem_alloc(c, 4096 * 4, &p), cudaSuccess);
  assert_int_equal(launch_fill(b, c, fill, p, 4096, 9), cudaSuccess);
  check_fill(b, c, p, 4096, 9);
  if (fake) {
    fake_stats(&fs);
    assert_int_equal(fs.contexts, 0); /* the primary is not counted */
    assert_int_equal(fs.modules, 1);
  }
  o->ctx_close(c); /* frees the module and the memory, keeps the primary */
  if (fake) {
    fake_stats(&fs);
    assert_int_equal(fs.modules, 0);
    assert_int_equal(fs.used, 0);
  }
  o->destroy(b);
  check_fake_empty();
}

/* ---- an agent whose sessions run in workers -------------------------------- */

/* It describes the device but holds no context. */
static void test_drop_context(void **state)
{
  struct agt_backend *b = open_cuda();
  struct tr_devinfo d;
  struct fakecuda_stats fs;
  uint64_t free_b = 1, total = 0;

  agt_cuda_drop_context(b);
  if (fake) {
    fake_stats(&fs);
    assert_int_equal(fs.primary_refs, 0);
  }
  memset(&d, 0, sizeof(d));
  b->ops->devinfo(b, &d);
  assert_true(d.total_mem > 0);
  b->ops->dev_mem_info(b, &free_b, &total);
  assert_int_equal(total, d.total_mem);
  assert_int_equal(free_b, 0); /* unknown without a context: NVML's job */
  b->ops->destroy(b);
  check_fake_empty();
}

/* ---- concurrency --------------------------------------------------------- */

struct spin_arg {
  struct agt_backend *b;
  struct agt_bctx *c;
  void *fn;
  uint64_t p, ns;
  uint32_t st;
};

static void *spin_thread(void *arg)
{
  struct spin_arg *s = arg;
  uint8_t prm[16];

  memcpy(prm, &s->p, 8);
  memcpy(prm + 8, &s->ns, 8);
  s->st = launch(s->b, s->c, s->fn, 1, prm, 16, 0, 0);
  return NULL;
}

struct churn_arg {
  struct agt_backend *b;
  struct agt_bctx *c;
  unsigned seed;
  int errors;
};

static void *churn_thread(void *arg)
{
  struct churn_arg *a = arg;
  const struct agt_backend_ops *o = a->b->ops;
  uint8_t *buf = malloc(3 * MiB), *back = malloc(3 * MiB);

  for (int i = 0; i < 60 && buf && back; i++) {
    uint64_t len = 1 + rand_r(&a->seed) % (3 * MiB), p;

    memset(buf, (int)(a->seed + (unsigned)i), len);
    if (o->mem_alloc(a->c, len, &p) != cudaSuccess || !in_window(p, len) ||
        o->copy_h2d(a->c, p, buf, len) != cudaSuccess ||
        o->copy_d2h(a->c, back, p, len) != cudaSuccess ||
        memcmp(buf, back, len) != 0 || o->mem_free(a->c, p) != cudaSuccess)
      a->errors++;
  }
  if (!buf || !back)
    a->errors++;
  free(buf);
  free(back);
  return NULL;
}

static void test_concurrency(void **state)
{
  struct agt_backend *b = open_cuda();
  const struct agt_backend_ops *o = b->ops;
  struct agt_bctx *c = open_ctx(b), *c2 = open_ctx(b);
  struct spin_arg s = {.b = b, .c = c, .ns = 300000000ull};
  struct churn_arg ch[4];
  pthread_t t, ct[4];
  struct timespec pause = {0, 50000000};
  struct fakecuda_stats fs0, fs;
  void *mod;

  /*
   * cudaFree while a kernel of the same session runs: the free returns at
   * once, the pointer is dead for the program, but the memory stays
   * mapped until the kernel has finished, so the kernel's late store lands
   * (no fault) and nothing new can be placed there meanwhile.
   */
  load_module(b, c, &mod);
  assert_int_equal(o->function_get(c, mod, "spin", &s.fn), cudaSuccess);
  assert_int_equal(o->mem_alloc(c, 4096, &s.p), cudaSuccess);
  if (fake)
    fake_stats(&fs0);
  assert_int_equal(pthread_create(&t, NULL, spin_thread, &s), 0);
  nanosleep(&pause, NULL);
  assert_int_equal(o->mem_free(c, s.p), cudaSuccess);
  assert_int_equal(o->mem_check(c, s.p, 4), cudaErrorInvalidValue);
  assert_int_equal(pthread_join(t, NULL), 0);
  assert_int_equal(s.st, cudaSuccess);
  assert_int_equal(o->synchronize(c), cudaSuccess);
  if (fake) {
    /* Contexts sleep while the GPU works (after a short poll): the 300 ms
       kernel was waited for in the driver, not by spinning. */
    fake_stats(&fs);
    assert_int_equal(fs.ctx_flags, CU_CTX_SCHED_BLOCKING_SYNC);
    assert_int_equal(fs.primary_flags, CU_CTX_SCHED_BLOCKING_SYNC);
    assert_int_equal(fs.blocked, fs0.blocked + 1);
  }

  /* Two sessions on one window, two threads each, all at once. */
  for (int i = 0; i < 4; i++) {
    ch[i] = (struct churn_arg){.b = b, .c = i % 2 ? c2 : c,
                               .seed = 17u * (unsigned)i + 1};
    assert_int_equal(pthread_create(&ct[i], NULL, churn_thread, &ch[i]), 0);
  }
  for (int i = 0; i < 4; i++) {
    assert_int_equal(pthread_join(ct[i], NULL), 0);
    assert_int_equal(ch[i].errors, 0);
  }
  o->module_unload(c, mod);
  o->ctx_close(c2);
  o->ctx_close(c);
  o->destroy(b);
  check_fake_empty();
}

/*
 * Memory freed while launches run is held for those launches only, not
 * for launches that start later: lanes that launch by turns (B starting
 * before A ends) would otherwise keep every free of the session mapped
 * for as long as they go on.  A spins on X, X is freed, B starts on Y
 * before A ends: once A has ended X is unmapped although B still runs.
 */
static void test_free_between_launches(void **state)
{
  struct agt_backend *b = open_cuda();
  const struct agt_backend_ops *o = b->ops;
  struct agt_bctx *c = open_ctx(b);
  struct spin_arg sa = {.b = b, .c = c, .ns = 300000000ull};
  struct spin_arg sb = {.b = b, .c = c, .ns = 900000000ull};
  struct timespec t100 = {0, 100000000}, t500 = {0, 500000000};
  struct fakecuda_stats fs0, fs;
  pthread_t ta, tb;
  void *mod;

  load_module(b, c, &mod);
  assert_int_equal(o->function_get(c, mod, "spin", &sa.fn), cudaSuccess);
  sb.fn = sa.fn;
  /* Big enough for mappings of their own, not slab places. */
  assert_int_equal(o->mem_alloc(c, 4 * MiB, &sa.p), cudaSuccess);
  assert_int_equal(o->mem_alloc(c, 4 * MiB, &sb.p), cudaSuccess);
  if (fake)
    fake_stats(&fs0);
  assert_int_equal(pthread_create(&ta, NULL, spin_thread, &sa), 0);
  nanosleep(&t100, NULL); /* A runs: 0.1 s of 0.3 */
  assert_int_equal(o->mem_free(c, sa.p), cudaSuccess);
  assert_int_equal(pthread_create(&tb, NULL, spin_thread, &sb), 0);
  nanosleep(&t100, NULL); /* B runs too: it started before A ends */
  if (fake) {
    fake_stats(&fs);
    assert_int_equal(fs.maps, fs0.maps); /* A may still store to X */
  }
  assert_int_equal(pthread_join(ta, NULL), 0);
  assert_int_equal(sa.st, cudaSuccess); /* its late store landed */
  nanosleep(&t500, NULL); /* B has 0.2 s or more left */
  if (fake) {
    fake_stats(&fs);
    assert_int_equal(fs.maps, fs0.maps - 1); /* X is gone, B runs on */
  }
  assert_int_equal(pthread_join(tb, NULL), 0);
  assert_int_equal(sb.st, cudaSuccess);
  assert_int_equal(o->mem_free(c, sb.p), cudaSuccess);
  if (fake) {
    fake_stats(&fs);
    assert_int_equal(fs.maps, fs0.maps - 2); /* no launch: at once */
  }
  o->module_unload(c, mod);
  o->ctx_close(c);
  o->destroy(b);
  check_fake_empty();
}

/* ---- launches in batches ------------------------------------------------- */

/* ls[i]: a one-block launch of 16 parameter bytes at prm[i] (u64 a, u64 b). */
static void batch_entry(struct agt_launch *ls, uint8_t (*prm)[16], unsigned i,
                        uint64_t a, uint64_t b, uint32_t blocks)
{
  memcpy(prm[i], &a, 8);
  memcpy(prm[i] + 8, &b, 8);
  ls[i] = (struct agt_launch){
    .grid = {blocks, 1, 1},
    .block = {256, 1, 1},
    .params = prm[i],
    .params_size = 16,
    .out = no_output,
  };
}

/*
 * launch_many queues a lane's launches back to back and waits once: two
 * 30 ms spins and a fill between them all run, one wait sleeps for them
 * (the fake driver saw both spins queued at once), and an invalid launch
 * in the middle fails alone.  Each launch or batch ends in a synchronise,
 * so its device printf is written when it returns (proc.c relies on it).  A kernel's fault in a batch goes to the last
 * launch queued, and launches on the dead context all get it (fake driver
 * only: on a GPU a fault ends every context of the process, test_fault).
 */
static void test_launch_many(void **state)
{
  struct agt_backend *b = open_cuda();
  const struct agt_backend_ops *o = b->ops;
  struct agt_bctx *c = open_ctx(b);
  struct fakecuda_stats fs0, fs;
  struct agt_launch ls[4];
  uint8_t prm[4][16];
  void *mod, *spin, *fill, *fns[4];
  uint64_t p, q;
  uint32_t st[4], got[2];

  assert_non_null(o->launch_many);
  load_module(b, c, &mod);
  assert_int_equal(o->function_get(c, mod, "spin", &spin), cudaSuccess);
  assert_int_equal(o->function_get(c, mod, "fill", &fill), cudaSuccess);
  assert_int_equal(o->mem_alloc(c, 8, &p), cudaSuccess);
  assert_int_equal(o->mem_alloc(c, 1000 * 4, &q), cudaSuccess);
  assert_int_equal(o->memset_d8(c, p, 0, 8), cudaSuccess);
  if (fake)
    fake_stats(&fs0);
  batch_entry(ls, prm, 0, p, 30000000ull, 1);
  batch_entry(ls, prm, 1, q, 1000 | (uint64_t)7 << 32, 4);
  batch_entry(ls, prm, 2, q, 1000 | (uint64_t)9 << 32, 0); /* no blocks */
  batch_entry(ls, prm, 3, p + 4, 30000000ull, 1);
  fns[0] = fns[3] = spin;
  fns[1] = fns[2] = fill;
  o->launch_many(c, fns, ls, 4, st);
  assert_int_equal(st[0], cudaSuccess);
  assert_int_equal(st[1], cudaSuccess);
  assert_int_equal(st[2], cudaErrorInvalidValue);
  assert_int_equal(st[3], cudaSuccess);
  /* Done when it returned: both spins' stores, the fill's words. */
  assert_int_equal(o->copy_d2h(c, got, p, 8), cudaSuccess);
  assert_int_equal(got[0], 1);
  assert_int_equal(got[1], 1);
  check_fill(b, c, q, 1000, 7);
  if (fake) {
    /* One wait for the batch: past the polling, a cuStreamSynchronize.
       A launch alone that polling sees done needs none (this module
       cannot print: test_modules_and_launches). */
    fake_stats(&fs);
    assert_int_equal(fs.blocked, fs0.blocked + 1);
    assert_true(fs.most_queued >= 2);
    assert_int_equal(fs.syncs, fs0.syncs + 1);
    assert_int_equal(launch_fill(b, c, fill, q, 1000, 5), cudaSuccess);
    fake_stats(&fs);
    assert_int_equal(fs.syncs, fs0.syncs + 1);
  }

  if (fake) {
    struct agt_bctx *c2 = open_ctx(b);
    void *mod2, *spin2;
    uint64_t p2;

    load_module(b, c2, &mod2);
    assert_int_equal(o->function_get(c2, mod2, "spin", &spin2), cudaSuccess);
    assert_int_equal(o->mem_alloc(c2, 8, &p2), cudaSuccess);
    assert_int_equal(o->memset_d8(c2, p2, 0, 8), cudaSuccess);
    batch_entry(ls, prm, 0, p2, 1000000, 1);
    batch_entry(ls, prm, 1, WIN_BASE + WIN_SIZE - 2 * GRAN, 1000000, 1);
    batch_entry(ls, prm, 2, p2 + 4, 1000000, 1);
    fns[0] = fns[1] = fns[2] = spin2;
    o->launch_many(c2, fns, ls, 3, st);
    assert_int_equal(st[0], cudaSuccess);
    assert_int_equal(st[1], cudaSuccess);
    assert_int_equal(st[2], cudaErrorIllegalAddress);
    o->launch_many(c2, fns, ls, 2, st);
    assert_int_equal(st[0], cudaErrorIllegalAddress);
    assert_int_equal(st[1], cudaErrorIllegalAddress);
    o->module_unload(c2, mod2);
    o->ctx_close(c2);
  }
  o->module_unload(c, mod);
  o->ctx_close(c);
  o->destroy(b);
  check_fake_empty();
}

/*
 * Cooperative launches and thread block clusters go to the driver with
 * their attributes (cuLaunchKernelEx), and the device says it has both
 * where the GPU does.  A cluster that does not divide the grid is the
 * driver's cudaErrorInvalidClusterSize.
 */
static void test_cooperative_and_clusters(void **state)
{
  struct agt_backend *b = open_cuda();
  const struct agt_backend_ops *o = b->ops;
  struct agt_bctx *c = open_ctx(b);
  struct fakecuda_stats fs0, fs;
  struct tr_devinfo info;
  struct agt_launch l;
  uint8_t prm[4][16];
  int coop = 0, clusters = 0;
  void *mod, *fill;
  uint64_t q;

  o->devinfo(b, &info);
  assert_int_equal(tr_devinfo_attr(&info, cudaDevAttrCooperativeLaunch, &coop),
                   0);
  assert_int_equal(tr_devinfo_attr(&info, cudaDevAttrClusterLaunch, &clusters),
                   0);
  print_message("cooperative launches: %d, clusters: %d\n", coop, clusters);
  if (fake) {
    assert_int_equal(coop, 1);
    assert_int_equal(clusters, 1);
    fake_stats(&fs0);
  }
  load_module(b, c, &mod);
  assert_int_equal(o->function_get(c, mod, "fill", &fill), cudaSuccess);
  assert_int_equal(o->mem_alloc(c, 1024 * 4, &q), cudaSuccess);
  if (coop) {
    batch_entry(&l, prm, 0, q, 1024 | (uint64_t)21 << 32, 4);
    l.cooperative = true;
    assert_int_equal(o->launch(c, fill, &l), cudaSuccess);
    check_fill(b, c, q, 1024, 21);
  }
  if (clusters) {
    batch_entry(&l, prm, 0, q, 1024 | (uint64_t)22 << 32, 4);
    l.cluster[0] = 2;
    l.cluster[1] = l.cluster[2] = 1;
    assert_int_equal(o->launch(c, fill, &l), cudaSuccess);
    check_fill(b, c, q, 1024, 22);
    l.cluster[0] = 3; /* 4 blocks */
    assert_int_equal(o->launch(c, fill, &l), cudaErrorInvalidClusterSize);
  }
  if (fake) {
    fake_stats(&fs);
    assert_int_equal(fs.coop_launches, fs0.coop_launches + 1);
    assert_int_equal(fs.cluster_launches, fs0.cluster_launches + 1);
    assert_int_equal(fs.last_cluster[0], 2);
    assert_int_equal(fs.last_cluster[1], 1);
  }
  o->module_unload(c, mod);
  o->ctx_close(c);
  o->destroy(b);
  check_fake_empty();
}

static void test_auto_is_cuda(void **state)
{
  struct agt_backend *b = NULL;
  const char *why = NULL;

  assert_int_equal(agt_backend_open("auto", &emu_cfg, &b, &why), 0);
  assert_string_equal(b->ops->name, "cuda");
  b->ops->destroy(b);
  check_fake_empty();
}

/* ---- no usable driver ---------------------------------------------------- */

static void expect_no_cuda(const char *needle)
{
  struct agt_backend *b = NULL;
  const char *why = NULL;

  assert_int_equal(agt_backend_open("cuda", &emu_cfg, &b, &why), -ENOSYS);
  assert_non_null(why);
  print_message("cuda: %s\n", why);
  if (!strstr(why, needle))
    fail_msg("'%s' does not say '%s'", why, needle);
  /* auto settles for the emulated device. */
  b = NULL;
  assert_int_equal(agt_backend_open("auto", &emu_cfg, &b, &why), 0);
  assert_string_equal(b->ops->name, "emu");
  b->ops->destroy(b);
}

static void test_stub(void **state)
{
  expect_no_cuda("stub");
}

static void test_absent(void **state)
{
  expect_no_cuda("libcuda.so.1 not found");
}

static void test_init_error(void **state)
{
  expect_no_cuda("cuInit failed: CUDA_ERROR_NO_DEVICE");
}

static void test_unknown_name(void **state)
{
  struct agt_backend *b = NULL;
  const char *why = NULL;

  assert_int_equal(agt_backend_open("gpu", &emu_cfg, &b, &why), -EINVAL);
  assert_non_null(why);
}

/* ---- the children -------------------------------------------------------- */

static int read_image(const char *path)
{
  FILE *f = fopen(path, "rb");
  long n;

  if (!f)
    return -1;
  if (fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) <= 0 ||
      fseek(f, 0, SEEK_SET) < 0) {
    fclose(f);
    return -1;
  }
  image = malloc((size_t)n);
  if (!image || fread(image, 1, (size_t)n, f) != (size_t)n) {
    fclose(f);
    return -1;
  }
  image_len = (size_t)n;
  fclose(f);
  return 0;
}

static int child(const char *mode)
{
  static const struct CMUnitTest nodrv[] = {
    cmocka_unit_test(test_unknown_name),
  };
  static const struct CMUnitTest stub[] = {cmocka_unit_test(test_stub)};
  static const struct CMUnitTest absent[] = {cmocka_unit_test(test_absent)};
  static const struct CMUnitTest init[] = {cmocka_unit_test(test_init_error)};
  static const struct CMUnitTest gpu[] = {
    cmocka_unit_test(test_device_and_memory),
    cmocka_unit_test(test_modules_and_launches),
    cmocka_unit_test(test_one_session),
    cmocka_unit_test(test_host_register),
    cmocka_unit_test(test_small_allocations),
    cmocka_unit_test(test_drop_context),
    cmocka_unit_test(test_concurrency),
    cmocka_unit_test(test_free_between_launches),
    cmocka_unit_test(test_launch_many),
    cmocka_unit_test(test_cooperative_and_clusters),
    cmocka_unit_test(test_auto_is_cuda),
    cmocka_unit_test(test_fault), /* last: see there */
  };
  static const char fake_image[] = "// tremote fake module\n";

  if (strcmp(mode, "stub") == 0)
    return cmocka_run_group_tests_name("stub driver", stub, NULL, NULL);
  if (strcmp(mode, "absent") == 0) {
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);

    if (h) {
      printf("SKIP: a libcuda.so.1 is installed system-wide; 'not found' "
             "cannot be tested here\n");
      return 77;
    }
    if (cmocka_run_group_tests_name("no driver", nodrv, NULL, NULL))
      return 1;
    return cmocka_run_group_tests_name("absent driver", absent, NULL, NULL);
  }
  if (strcmp(mode, "fake-init") == 0)
    return cmocka_run_group_tests_name("fake driver, cuInit fails", init,
                                       NULL, NULL);
  if (strcmp(mode, "fake") == 0) {
    fake = true;
    image = (uint8_t *)fake_image;
    image_len = sizeof(fake_image); /* with its NUL, as PTX may come */
    return cmocka_run_group_tests_name("fake driver", gpu, NULL, NULL);
  }
  if (strcmp(mode, "real") == 0) {
    struct agt_backend *b = NULL;
    const char *why = NULL;

    if (agt_backend_open("cuda", &emu_cfg, &b, &why) != 0) {
      /* tests/gpu/run.sh sets TR_REQUIRE_GPU: there a GPU that cannot be
         used is the finding, not a reason to skip. */
      if (getenv("TR_REQUIRE_GPU")) {
        printf("FAIL: the GPU cannot be used: %s\n", why);
        return 1;
      }
      printf("SKIP: no usable GPU for the real-GPU checks: %s\n", why);
      return 77;
    }
    b->ops->destroy(b);
    if (read_image(fatbin_path) < 0) {
      printf("FAIL: cannot read %s\n", fatbin_path);
      return 1;
    }
    return cmocka_run_group_tests_name("real GPU", gpu, NULL, NULL);
  }
  fprintf(stderr, "unknown mode %s\n", mode);
  return 2;
}

/* ---- the parent: one child per case -------------------------------------- */

static char tmpdir[64];

/* Run this program as "--child mode" with libpath first in
   LD_LIBRARY_PATH (NULL: unchanged; what was there stays after it, since
   the libraries this program links may be found only through it, as in
   the GPU bundle) and one more variable (NULL: none).  Its exit status. */
static int run_child(const char *mode, const char *libpath, const char *var,
                     const char *val)
{
  pid_t pid;
  int status;

  fflush(stdout);
  fflush(stderr);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    if (libpath) {
      const char *old = getenv("LD_LIBRARY_PATH");
      char path[4096];

      snprintf(path, sizeof(path), "%s%s%s", libpath, old && *old ? ":" : "",
               old ? old : "");
      setenv("LD_LIBRARY_PATH", path, 1);
    }
    if (var)
      setenv(var, val, 1);
    execl("/proc/self/exe", "test_cuda_backend", "--child", mode, stub_lib,
          fake_dir, fatbin_path, (char *)NULL);
    _exit(127);
  }
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  return WEXITSTATUS(status);
}

static void expect_child(const char *mode, const char *libpath,
                         const char *var, const char *val)
{
  int rc = run_child(mode, libpath, var, val);

  if (rc == 77)
    skip();
  assert_int_equal(rc, 0);
}

static void case_stub(void **state)
{
  char link[128], *target = realpath(stub_lib, NULL);

  if (!target) {
    print_message("SKIP: no toolkit stub library at %s\n", stub_lib);
    skip();
  }
  snprintf(link, sizeof(link), "%s/libcuda.so.1", tmpdir);
  assert_int_equal(symlink(target, link), 0);
  free(target);
  expect_child("stub", tmpdir, NULL, NULL);
  unlink(link);
}

static void case_absent(void **state)
{
  /* An empty directory: nothing there, so only the system's paths. */
  expect_child("absent", tmpdir, NULL, NULL);
}

static void case_fake_init(void **state)
{
  expect_child("fake-init", fake_dir, "FAKECUDA_INIT_ERROR", "100");
}

static void case_fake(void **state)
{
  expect_child("fake", fake_dir, NULL, NULL);
}

static void case_real(void **state)
{
  expect_child("real", NULL, NULL, NULL);
}

int main(int argc, char **argv)
{
  static const struct CMUnitTest cases[] = {
    cmocka_unit_test(case_stub),
    cmocka_unit_test(case_absent),
    cmocka_unit_test(case_fake_init),
    cmocka_unit_test(case_fake),
    cmocka_unit_test(case_real),
  };
  int rc;

  if (argc == 6 && strcmp(argv[1], "--child") == 0) {
    stub_lib = argv[3];
    fake_dir = argv[4];
    fatbin_path = argv[5];
    return child(argv[2]);
  }
  if (argc != 4) {
    fprintf(stderr, "usage: %s STUB_LIB FAKE_DIR FATBIN\n", argv[0]);
    return 2;
  }
  stub_lib = argv[1];
  fake_dir = argv[2];
  fatbin_path = argv[3];
  snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_cuda_backend.XXXXXX");
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 1;
  }
  rc = cmocka_run_group_tests_name("cuda backend", cases, NULL, NULL);
  rmdir(tmpdir);
  return rc;
}
