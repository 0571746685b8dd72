/*
 * test_ptx_exec_lib.c: see test_ptx_exec_lib.h.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_ptx_exec_lib.h"

#define TM_MAX 256

struct tmem {
  pthread_mutex_t mu;
  struct { uint64_t lo, hi; void *p; } r[TM_MAX];
  unsigned n;
  char *out;
  size_t outn, outcap;
  struct { const struct ptx_module *m; uint64_t *addr; } syms[16];
  unsigned nsyms;
};

struct tmem *tm_new(void)
{
  struct tmem *t = calloc(1, sizeof(*t));

  if (!t)
    abort();
  pthread_mutex_init(&t->mu, NULL);
  return t;
}

void tm_free(struct tmem *t)
{
  if (!t)
    return;
  for (unsigned i = 0; i < t->n; i++)
    free(t->r[i].p);
  free(t->out);
  for (unsigned i = 0; i < t->nsyms; i++)
    free(t->syms[i].addr);
  pthread_mutex_destroy(&t->mu);
  free(t);
}

void *tm_alloc(struct tmem *t, size_t n)
{
  void *p;

  if (t->n == TM_MAX || posix_memalign(&p, 256, n ? n : 1))
    abort();
  memset(p, 0, n);
  pthread_mutex_lock(&t->mu);
  t->r[t->n].lo = (uint64_t)(uintptr_t)p;
  t->r[t->n].hi = (uint64_t)(uintptr_t)p + n;
  t->r[t->n].p = p;
  t->n++;
  pthread_mutex_unlock(&t->mu);
  return p;
}

static int tm_range(void *ctx, uint64_t a, uint64_t len, uint64_t *lo,
                    uint64_t *hi)
{
  struct tmem *t = ctx;
  int rc = -EFAULT;

  pthread_mutex_lock(&t->mu);
  for (unsigned i = 0; i < t->n; i++)
    if (a >= t->r[i].lo && a < t->r[i].hi && len <= t->r[i].hi - a) {
      *lo = t->r[i].lo;
      *hi = t->r[i].hi;
      rc = 0;
      break;
    }
  pthread_mutex_unlock(&t->mu);
  return rc;
}

static void tm_print(void *ctx, const char *s, size_t n)
{
  struct tmem *t = ctx;

  pthread_mutex_lock(&t->mu);
  if (t->outn + n + 1 > t->outcap) {
    size_t cap = t->outcap ? t->outcap * 2 : 4096;
    while (cap < t->outn + n + 1)
      cap *= 2;
    t->out = realloc(t->out, cap);
    if (!t->out)
      abort();
    t->outcap = cap;
  }
  memcpy(t->out + t->outn, s, n);
  t->outn += n;
  t->out[t->outn] = 0;
  pthread_mutex_unlock(&t->mu);
}

const char *tm_out(struct tmem *t)
{
  return t->out ? t->out : "";
}

void tm_out_clear(struct tmem *t)
{
  pthread_mutex_lock(&t->mu);
  t->outn = 0;
  if (t->out)
    t->out[0] = 0;
  pthread_mutex_unlock(&t->mu);
}

struct ptx_memops tm_ops(struct tmem *t)
{
  struct ptx_memops m = {t, tm_range, tm_print};
  return m;
}

struct ptx_module *tl_load(const char *ptx)
{
  struct ptx_module *m = NULL;
  char err[256];
  int rc = ptx_parse(ptx, strlen(ptx), &m, err, sizeof(err));

  if (rc) {
    fprintf(stderr, "ptx_parse: %d: %s\n", rc, err);
    return NULL;
  }
  rc = ptx_exec_prepare(m, err, sizeof(err));
  if (rc) {
    fprintf(stderr, "ptx_exec_prepare: %d: %s\n", rc, err);
    ptx_module_free(m);
    return NULL;
  }
  return m;
}

int tl_load_err(const char *ptx, char *err, size_t errlen)
{
  struct ptx_module *m = NULL;
  int rc = ptx_parse(ptx, strlen(ptx), &m, err, errlen);

  if (rc)
    return rc;
  rc = ptx_exec_prepare(m, err, errlen);
  ptx_module_free(m);
  return rc;
}

static void tp_align(struct tparams *p, uint32_t a)
{
  p->n = (p->n + a - 1) & ~(a - 1);
}

void tp_u32(struct tparams *p, uint32_t v)
{
  tp_align(p, 4);
  memcpy(p->b + p->n, &v, 4);
  p->n += 4;
}

void tp_u64(struct tparams *p, uint64_t v)
{
  tp_align(p, 8);
  memcpy(p->b + p->n, &v, 8);
  p->n += 8;
}

void tp_ptr(struct tparams *p, const void *v)
{
  tp_u64(p, (uint64_t)(uintptr_t)v);
}

void tp_f32(struct tparams *p, float v)
{
  tp_align(p, 4);
  memcpy(p->b + p->n, &v, 4);
  p->n += 4;
}

void tp_f64(struct tparams *p, double v)
{
  tp_align(p, 8);
  memcpy(p->b + p->n, &v, 8);
  p->n += 8;
}

uint32_t tl_run(struct ptx_pool *pool, struct tmem *t,
                const struct ptx_module *m, const char *name,
                const struct tlaunch *cfg, const struct tparams *p,
                struct ptx_fault *f)
{
  return tl_run_prio(pool, t, m, name, cfg, p, f, 0);
}

uint32_t tl_run_prio(struct ptx_pool *pool, struct tmem *t,
                     const struct ptx_module *m, const char *name,
                     const struct tlaunch *cfg, const struct tparams *p,
                     struct ptx_fault *f, int priority)
{
  struct ptx_devmodel dev = {80, 1024, 48 * 1024,
                             cfg->stack_size ? cfg->stack_size : 1024};
  struct ptx_launch_desc d;
  static const struct tparams none;
  uint32_t rc;
  int fi = ptx_module_find_func(m, name);

  if (fi < 0) {
    fprintf(stderr, "no kernel %s\n", name);
    return 9999;
  }
  if (!p)
    p = &none;
  memset(&d, 0, sizeof(d));
  d.m = m;
  d.func = (uint32_t)fi;
  for (int i = 0; i < 3; i++) {
    d.grid[i] = cfg->grid[i] ? cfg->grid[i] : 1;
    d.block[i] = cfg->block[i] ? cfg->block[i] : 1;
  }
  d.dyn_shared = cfg->dyn_shared;
  d.params = p->b;
  d.params_size = (uint32_t)m->funcs[fi].param_size;
  d.sym_addr = cfg->sym_addr ? cfg->sym_addr : tm_syms(t, m);
  d.mem = tm_ops(t);
  d.dev = &dev;
  d.watchdog_ns = cfg->watchdog_ns;
  d.cancel = cfg->cancel;
  d.priority = priority;
  rc = ptx_launch(pool, &d, f);
  if (rc && getenv("TL_VERBOSE"))
    fprintf(stderr, "launch of %s: %u: %s\n", name, rc, f->msg);
  return rc;
}

const uint64_t *tm_syms(struct tmem *t, const struct ptx_module *m)
{
  uint64_t *a;

  for (unsigned i = 0; i < t->nsyms; i++)
    if (t->syms[i].m == m)
      return t->syms[i].addr;
  if (t->nsyms == 16)
    abort();
  a = calloc(m->nsyms + 1, sizeof(*a));
  if (!a)
    abort();
  for (uint32_t i = 0; i < m->nsyms; i++) {
    const struct ptx_symbol *s = &m->syms[i];
    uint8_t *p;
    if (s->kind != PTX_SYM_GLOBAL && s->kind != PTX_SYM_CONST)
      continue;
    p = tm_alloc(t, s->size ? s->size : 1);
    if (s->flags & PTX_SYMF_INIT)
      memcpy(p, m->init + s->init_off, s->size);
    a[i] = (uint64_t)(uintptr_t)p;
  }
  t->syms[t->nsyms].m = m;
  t->syms[t->nsyms].addr = a;
  t->nsyms++;
  return a;
}

static struct ptx_pool *the_pool;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static void pool_init(void)
{
  if (ptx_pool_new(4, &the_pool))
    abort();
}

struct ptx_pool *tl_pool(void)
{
  pthread_once(&pool_once, pool_init);
  return the_pool;
}

void tl_pool_free(void)
{
  ptx_pool_free(the_pool);
  the_pool = NULL;
}

char *tl_slurp(const char *path)
{
  FILE *f = fopen(path, "rb");
  char *buf;
  long n;

  if (!f)
    return NULL;
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  rewind(f);
  buf = malloc((size_t)n + 1);
  if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
    free(buf);
    buf = NULL;
  }
  if (buf)
    buf[n] = 0;
  fclose(f);
  return buf;
}

static const char op_head[] =
  ".version 8.0\n.target sm_80\n.address_size 64\n"
  ".visible .entry op_kernel(.param .u64 p_in32, .param .u64 p_in64,\n"
  "  .param .u64 p_out32, .param .u64 p_out64)\n{\n"
  "  .reg .b32 %a, %b, %c, %d, %e, %t, %tix;\n"
  "  .reg .b64 %A, %B, %C, %D, %T, %ip, %i4, %i8, %xa;\n"
  "  .reg .f32 %fa, %fb, %fc, %fd;\n"
  "  .reg .f64 %Fa, %Fb, %Fc, %Fd;\n"
  "  .reg .b16 %ha, %hb, %hc, %hd;\n"
  "  .reg .pred %p, %q, %pa, %pb;\n"
  "  mov.u32 %tix, %tid.x;\n"
  "  ld.param.u64 %ip, [p_in32];\n"
  "  mul.wide.u32 %i4, %tix, 12;\n"
  "  add.s64 %xa, %ip, %i4;\n"
  "  ld.global.u32 %a, [%xa];\n"
  "  ld.global.u32 %b, [%xa+4];\n"
  "  ld.global.u32 %c, [%xa+8];\n"
  "  ld.param.u64 %ip, [p_in64];\n"
  "  mul.wide.u32 %i8, %tix, 24;\n"
  "  add.s64 %xa, %ip, %i8;\n"
  "  ld.global.u64 %A, [%xa];\n"
  "  ld.global.u64 %B, [%xa+8];\n"
  "  ld.global.u64 %C, [%xa+16];\n"
  "  mov.b32 %fa, %a;\n  mov.b32 %fb, %b;\n  mov.b32 %fc, %c;\n"
  "  mov.b64 %Fa, %A;\n  mov.b64 %Fb, %B;\n  mov.b64 %Fc, %C;\n"
  "  cvt.u16.u32 %ha, %a;\n  cvt.u16.u32 %hb, %b;\n"
  "  cvt.u16.u32 %hc, %c;\n"
  "  setp.ne.u32 %pa, %a, 0;\n  setp.ne.u32 %pb, %b, 0;\n"
  "  mov.u32 %d, 0;\n  mov.u32 %e, 0;\n  mov.u64 %D, 0;\n";

static const char op_tail[] =
  "\n  ld.param.u64 %ip, [p_out32];\n"
  "  mul.wide.u32 %i4, %tix, 8;\n"
  "  add.s64 %xa, %ip, %i4;\n"
  "  st.global.u32 [%xa], %d;\n"
  "  st.global.u32 [%xa+4], %e;\n"
  "  ld.param.u64 %ip, [p_out64];\n"
  "  mul.wide.u32 %i8, %tix, 8;\n"
  "  add.s64 %xa, %ip, %i8;\n"
  "  st.global.u64 [%xa], %D;\n"
  "  ret;\n}\n";

uint32_t tl_op(const char *body, struct top *v, unsigned n)
{
  size_t len = strlen(op_head) + strlen(body) + strlen(op_tail) + 1;
  char *ptx = malloc(len);
  struct tmem *t = tm_new();
  struct ptx_module *m;
  struct tparams p = {{0}, 0};
  struct tlaunch c = {{1, 1, 1}, {n, 1, 1}, 0, 0, NULL, 0, NULL};
  struct ptx_fault f;
  uint32_t *i32, *o32;
  uint64_t *i64, *o64;
  uint32_t rc;

  if (!ptx)
    abort();
  snprintf(ptx, len, "%s%s%s", op_head, body, op_tail);
  m = tl_load(ptx);
  free(ptx);
  if (!m) {
    tm_free(t);
    return 9998;
  }
  i32 = tm_alloc(t, 12 * n);
  i64 = tm_alloc(t, 24 * n);
  o32 = tm_alloc(t, 8 * n);
  o64 = tm_alloc(t, 8 * n);
  for (unsigned i = 0; i < n; i++) {
    i32[3 * i] = v[i].a;
    i32[3 * i + 1] = v[i].b;
    i32[3 * i + 2] = v[i].c;
    i64[3 * i] = v[i].A;
    i64[3 * i + 1] = v[i].B;
    i64[3 * i + 2] = v[i].C;
  }
  tp_ptr(&p, i32);
  tp_ptr(&p, i64);
  tp_ptr(&p, o32);
  tp_ptr(&p, o64);
  rc = tl_run(tl_pool(), t, m, "op_kernel", &c, &p, &f);
  if (rc)
    fprintf(stderr, "tl_op: launch: %u %s\n", rc, f.msg);
  for (unsigned i = 0; i < n; i++) {
    v[i].d = o32[2 * i];
    v[i].e = o32[2 * i + 1];
    v[i].D = o64[i];
  }
  ptx_module_free(m);
  tm_free(t);
  return rc;
}
