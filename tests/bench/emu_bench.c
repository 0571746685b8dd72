/*
 * emu_bench.c: how much slower the PTX executor runs a kernel than the
 * same algorithm in plain C, per core.
 *
 *   emu_bench KERNELS.ptx [--check] [--small]
 *
 * KERNELS.ptx is nvcc's PTX of tests/unit/test_ptx_exec_kernels.cu (the
 * build makes it).  For a shared-memory tiled matrix multiply, a block
 * reduction and a shared-memory histogram it times the executor on one
 * thread (ptx_launch without a pool, so the launching thread runs every
 * block) against a C version of the same algorithm compiled -O2, and
 * prints thread-instructions per second and the slowdown.  Both sides
 * are timed as the best of several runs.  --check fails (exit 1) when a
 * slowdown exceeds 200x, the floor the executor must stay under.
 * --small runs 1/16 of the work once (for profilers such as callgrind).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ptx_exec.h"

static int REPS = 5;

struct buf {
  uint8_t *p;
  size_t n;
};

static struct buf bufs[64];
static unsigned nbufs;

static void *balloc(size_t n)
{
  void *p;

  if (nbufs == 64 || posix_memalign(&p, 256, n))
    abort();
  memset(p, 0, n);
  bufs[nbufs].p = p;
  bufs[nbufs].n = n;
  nbufs++;
  return p;
}

static int range(void *ctx, uint64_t a, uint64_t len, uint64_t *lo,
                 uint64_t *hi)
{
  for (unsigned i = 0; i < nbufs; i++) {
    uint64_t b = (uint64_t)(uintptr_t)bufs[i].p;
    if (a >= b && a - b < bufs[i].n && len <= bufs[i].n - (a - b)) {
      *lo = b;
      *hi = b + bufs[i].n;
      return 0;
    }
  }
  return -EFAULT;
}

static void print(void *ctx, const char *s, size_t n)
{
  fwrite(s, 1, n, stdout);
}

static double now(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static const struct ptx_module *mod;
static uint64_t *sym_addr;

/* Launch kernel `name` on the calling thread; returns seconds, and the
   thread-instructions it ran in *insns. */
static double launch(const char *name, uint32_t gx, uint32_t gy, uint32_t bx,
                     uint32_t by, uint32_t dyn, const void *params,
                     uint32_t psize, uint64_t *insns)
{
  struct ptx_devmodel dev = {80, 1024, 48 * 1024, 1024};
  struct ptx_launch_desc d;
  struct ptx_fault f;
  uint64_t i0;
  double t0, t1;
  int fi = ptx_module_find_func(mod, name);

  if (fi < 0) {
    fprintf(stderr, "no kernel %s\n", name);
    exit(2);
  }
  memset(&d, 0, sizeof(d));
  d.m = mod;
  d.func = (uint32_t)fi;
  d.grid[0] = gx;
  d.grid[1] = gy;
  d.grid[2] = 1;
  d.block[0] = bx;
  d.block[1] = by;
  d.block[2] = 1;
  d.dyn_shared = dyn;
  d.params = params;
  d.params_size = psize;
  d.mem.global_range = range;
  d.mem.print = print;
  d.sym_addr = sym_addr;
  d.dev = &dev;
  i0 = ptx_exec_thread_insns();
  t0 = now();
  if (ptx_launch(NULL, &d, &f)) {
    fprintf(stderr, "%s: %u %s\n", name, f.error, f.msg);
    exit(2);
  }
  t1 = now();
  *insns = ptx_exec_thread_insns() - i0;
  return t1 - t0;
}

/* ---- the C versions ---------------------------------------------------------- */

#define TILE 16

static void __attribute__((noinline))
c_matmul(const float *A, const float *B, float *C, int n)
{
  float As[TILE][TILE], Bs[TILE][TILE];

  for (int by = 0; by < n / TILE; by++)
    for (int bx = 0; bx < n / TILE; bx++) {
      float acc[TILE][TILE] = {{0}};
      for (int t = 0; t < n / TILE; t++) {
        for (int y = 0; y < TILE; y++)
          for (int x = 0; x < TILE; x++) {
            As[y][x] = A[(by * TILE + y) * n + t * TILE + x];
            Bs[y][x] = B[(t * TILE + y) * n + bx * TILE + x];
          }
        for (int y = 0; y < TILE; y++)
          for (int x = 0; x < TILE; x++)
            for (int k = 0; k < TILE; k++)
              acc[y][x] += As[y][k] * Bs[k][x];
      }
      for (int y = 0; y < TILE; y++)
        for (int x = 0; x < TILE; x++)
          C[(by * TILE + y) * n + bx * TILE + x] = acc[y][x];
    }
}

static float __attribute__((noinline)) c_reduce(const float *in, int n)
{
  float s = 0;

  for (int i = 0; i < n; i++)
    s += in[i];
  return s;
}

static void __attribute__((noinline))
c_histogram(const unsigned char *in, unsigned *h, int n)
{
  for (int i = 0; i < n; i++)
    h[in[i]]++;
}

static double best_c(int which, void *a, void *b, void *c, int n)
{
  double best = 1e9;
  volatile float sink;

  for (int r = 0; r < REPS; r++) {
    double t0 = now(), t;
    switch (which) {
    case 0:
      c_matmul(a, b, c, n);
      break;
    case 1:
      sink = c_reduce(a, n);
      (void)sink;
      break;
    default:
      memset(b, 0, 256 * 4);
      c_histogram(a, b, n);
      break;
    }
    t = now() - t0;
    if (t < best)
      best = t;
  }
  return best;
}

static char *slurp(const char *path)
{
  FILE *f = fopen(path, "rb");
  char *b;
  long n;

  if (!f)
    return NULL;
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  rewind(f);
  b = malloc((size_t)n + 1);
  if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
    free(b);
    b = NULL;
  }
  if (b)
    b[n] = 0;
  fclose(f);
  return b;
}

struct pk {
  uint8_t b[64];
  uint32_t n;
};

static void pk_ptr(struct pk *p, const void *v)
{
  uint64_t u = (uint64_t)(uintptr_t)v;
  p->n = (p->n + 7) & ~7u;
  memcpy(p->b + p->n, &u, 8);
  p->n += 8;
}

static void pk_u32(struct pk *p, uint32_t v)
{
  p->n = (p->n + 3) & ~3u;
  memcpy(p->b + p->n, &v, 4);
  p->n += 4;
}

static int report(const char *name, double emu, double c, uint64_t insns,
                  double limit)
{
  double slow = emu / c;

  printf("%-10s emu %8.2f ms  C %8.3f ms  %6.0f M thread-insn/s/core  "
         "slowdown %6.1fx\n", name, emu * 1e3, c * 1e3, insns / emu / 1e6,
         slow);
  return slow > limit;
}

int main(int argc, char **argv)
{
  char err[256];
  char *txt;
  struct ptx_module *m;
  int check = 0, small = 0, bad = 0;
  int n = 256, nr = 1 << 22, nh = 1 << 22;
  float *A, *B, *C, *in, *out;
  unsigned char *hin;
  unsigned *h;
  struct pk p;
  uint64_t insns, best_insns = 0;
  double e, best;

  if (argc < 2) {
    fprintf(stderr, "usage: %s KERNELS.ptx [--check] [--small]\n",
            argv[0]);
    return 2;
  }
  for (int i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "--check"))
      check = 1;
    else if (!strcmp(argv[i], "--small"))
      small = 1;
  }
  if (small) {
    n = 64;
    nr >>= 4;
    nh >>= 4;
    REPS = 1;
  }
  txt = slurp(argv[1]);
  if (!txt || ptx_parse(txt, strlen(txt), &m, err, sizeof(err)) ||
      ptx_exec_prepare(m, err, sizeof(err))) {
    fprintf(stderr, "%s: %s\n", argv[1], txt ? err : "cannot read");
    return 2;
  }
  mod = m;
  /* the module's variables (printf's format strings) */
  sym_addr = calloc(m->nsyms + 1, sizeof(*sym_addr));
  if (!sym_addr)
    return 2;
  for (uint32_t i = 0; i < m->nsyms; i++)
    if (m->syms[i].kind == PTX_SYM_GLOBAL || m->syms[i].kind == PTX_SYM_CONST) {
      uint8_t *v = balloc(m->syms[i].size ? m->syms[i].size : 1);
      if (m->syms[i].flags & PTX_SYMF_INIT)
        memcpy(v, m->init + m->syms[i].init_off, m->syms[i].size);
      sym_addr[i] = (uint64_t)(uintptr_t)v;
    }
  A = balloc(n * n * 4);
  B = balloc(n * n * 4);
  C = balloc(n * n * 4);
  for (int i = 0; i < n * n; i++) {
    A[i] = (float)(i % 7);
    B[i] = (float)(i % 5);
  }
  in = balloc(nr * 4);
  out = balloc(4);
  for (int i = 0; i < nr; i++)
    in[i] = (float)(i & 3);
  hin = balloc(nh);
  h = balloc(256 * 4);
  for (int i = 0; i < nh; i++)
    hin[i] = (unsigned char)((i * 2654435761u) >> 24);

  printf("emu_bench: one core; best of %d runs\n", REPS);
  memset(&p, 0, sizeof(p));
  pk_ptr(&p, A);
  pk_ptr(&p, B);
  pk_ptr(&p, C);
  pk_u32(&p, n);
  best = 1e9;
  for (int r = 0; r < REPS; r++) {
    e = launch("matmul", n / 16, n / 16, 16, 16, 0, p.b, p.n, &insns);
    if (e < best) {
      best = e;
      best_insns = insns;
    }
  }
  bad |= report("matmul", best, best_c(0, A, B, C, n), best_insns, 200);

  memset(&p, 0, sizeof(p));
  pk_ptr(&p, in);
  pk_ptr(&p, out);
  pk_u32(&p, nr);
  best = 1e9;
  for (int r = 0; r < REPS; r++) {
    e = launch("reduce", nr / 512, 1, 256, 1, 256 * 4, p.b, p.n, &insns);
    if (e < best) {
      best = e;
      best_insns = insns;
    }
  }
  bad |= report("reduce", best, best_c(1, in, NULL, NULL, nr), best_insns,
                200);

  memset(&p, 0, sizeof(p));
  pk_ptr(&p, hin);
  pk_ptr(&p, h);
  pk_u32(&p, nh);
  best = 1e9;
  for (int r = 0; r < REPS; r++) {
    e = launch("histogram", 64, 1, 256, 1, 0, p.b, p.n, &insns);
    if (e < best) {
      best = e;
      best_insns = insns;
    }
  }
  bad |= report("histogram", best, best_c(2, hin, h, NULL, nh), best_insns,
                200);

  ptx_module_free(m);
  free(txt);
  for (unsigned i = 0; i < nbufs; i++)
    free(bufs[i].p);
  free(sym_addr);
  return check && bad ? 1 : 0;
}
