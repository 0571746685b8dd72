/*
 * test_proc_backend.c: sessions in worker processes (gpu-agent/backends/
 * proc.c) around the emulated device, driven through the backend
 * interface as the agent drives it.  The workers are this program run
 * again with --worker-fd (proc.c execs /proc/self/exe), so they are the
 * code under test too.
 *
 * What is checked: copies through the staging arena ("Staging" in
 * proc.c): none before the session's first large copy; a host-to-device
 * copy from a slot and a device-to-host copy into one move the right
 * bytes, as do copies from the agent's own memory beside them; slots run
 * out and come back; a slot given back after its context closed (a reply
 * still queued when the session went) is still valid memory until then;
 * more calls at once than the session has worker channels wait for one.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <driver_types.h>

#include "backend.h"
#include "tremote/proto.h"
#include "proc_int.h"
#include "ptx_spin.h"

/* A window the agent of this build can map (smaller under TSan). */
#define VA_BASE TR_VA_BUILD_BASE
#define VA_SIZE TR_VA_BUILD_WINDOW
#define MIB (1u << 20)

struct fixture {
  struct agt_backend *b;
  struct agt_bctx *c;
};

static int setup(void **state)
{
  static struct fixture f;
  struct agt_emu_config ec = {.name = "test device", .mem = 256u * MIB,
                              .sm_count = 4, .workers = 1, .cc = 80};
  struct agt_backend *inner;
  const char *why = "";

  assert_int_equal(agt_emu_new(&ec, &inner), 0);
  assert_int_equal(agt_proc_new(inner, &ec, &f.b), 0);
  assert_int_equal(f.b->ops->ctx_open(f.b, VA_BASE, VA_SIZE, &f.c, &why), 0);
  *state = &f;
  return 0;
}

static int teardown(void **state)
{
  struct fixture *f = *state;

  if (f->c)
    f->b->ops->ctx_close(f->c);
  f->b->ops->destroy(f->b);
  return 0;
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t)(i * 7 + seed + (i >> 12));
}

static void check(const uint8_t *p, size_t n, unsigned seed)
{
  for (size_t i = 0; i < n; i++)
    if (p[i] != (uint8_t)(i * 7 + seed + (i >> 12)))
      fail_msg("byte %zu is %u, expected %u", i, p[i],
               (uint8_t)(i * 7 + seed + (i >> 12)));
}

static void test_staged_copies(void **state)
{
  struct fixture *f = *state;
  const struct agt_backend_ops *o = f->b->ops;
  uint8_t *own = malloc(MIB), *in, *out;
  void *tin, *tout, *tok[PROC_SLOTS];
  uint64_t d;
  unsigned n;

  assert_non_null(own);
  assert_non_null(o->stage_get);
  /* No arena before the first large copy. */
  assert_null(o->stage_get(f->c, MIB, &tin));
  assert_null(tin);
  assert_int_equal(o->mem_alloc(f->c, 4u * MIB, &d), cudaSuccess);
  fill(own, MIB, 1);
  assert_int_equal(o->copy_h2d(f->c, d, own, MIB), cudaSuccess);

  assert_int_equal(agt_proc_staged_bytes(f->b), 0); /* not through a slot */

  /* Into the device from a slot, out of it into another: by the arena
     (counted), not through a channel's memory. */
  in = o->stage_get(f->c, MIB, &tin);
  out = o->stage_get(f->c, MIB, &tout);
  assert_non_null(in);
  assert_non_null(out);
  assert_ptr_not_equal(in, out);
  assert_null(o->stage_get(f->c, MIB + 1, &tok[0])); /* more than a slot */
  fill(in, MIB, 2);
  assert_int_equal(o->copy_h2d(f->c, d + MIB, in, MIB), cudaSuccess);
  assert_int_equal(o->copy_d2h(f->c, out, d + MIB, MIB), cudaSuccess);
  check(out, MIB, 2);
  assert_int_equal(o->copy_d2h(f->c, out, d, MIB), cudaSuccess);
  check(out, MIB, 1);
  assert_int_equal(agt_proc_staged_bytes(f->b), 3u * MIB);
  /* Part of a slot, at an offset; and the agent's own memory beside. */
  assert_int_equal(o->copy_d2h(f->c, out + 4096, d + MIB + 8192, 65536),
                   cudaSuccess);
  check(out + 4096, 65536, 2 + 8192 * 7 + 2); /* i shifted by 8192 */
  assert_int_equal(agt_proc_staged_bytes(f->b), 3u * MIB + 65536);
  memset(own, 0, MIB);
  assert_int_equal(o->copy_d2h(f->c, own, d + MIB, MIB), cudaSuccess);
  check(own, MIB, 2);
  assert_int_equal(agt_proc_staged_bytes(f->b), 3u * MIB + 65536);
  /* A device range outside every allocation fails as before. */
  assert_int_equal(o->copy_d2h(f->c, out, d + 4u * MIB, MIB),
                   cudaErrorInvalidValue);
  assert_int_equal(o->copy_h2d(f->c, d + 3u * MIB + 1, in, MIB),
                   cudaErrorInvalidValue);

  /* Every slot out: none more until one comes back. */
  for (n = 0; n < PROC_SLOTS - 2; n++)
    assert_non_null(o->stage_get(f->c, MIB, &tok[n]));
  assert_null(o->stage_get(f->c, 4096, &tok[n]));
  o->stage_put(tok[0]);
  assert_non_null(o->stage_get(f->c, 4096, &tok[0]));
  for (n = 0; n < PROC_SLOTS - 2; n++)
    o->stage_put(tok[n]);
  o->stage_put(tin);

  /* A slot outlives its context until it is given back. */
  assert_int_equal(o->mem_free(f->c, d), cudaSuccess);
  o->ctx_close(f->c);
  f->c = NULL;
  memset(out, 0xab, MIB);
  assert_int_equal(out[MIB - 1], 0xab);
  o->stage_put(tout);
  free(own);
}

/* ---- more calls at once than a session has channels ---------------------- */

static const char spin_ptx[] =
    ".version 8.0\n.target sm_75\n.address_size 64\n" PTX_SPIN_ENTRY;

#define MANY_CALLS 72 /* more than a session's 64 worker channels */

struct spinner {
  struct fixture *f;
  void *fn;
  uint32_t st;
};

static void no_output(void *arg, int fd, const char *s, size_t n)
{
  (void)arg, (void)fd, (void)s, (void)n;
}

static void *spin_call(void *arg)
{
  struct spinner *sp = arg;
  uint64_t ns = 50000000; /* 50 ms: the calls overlap */
  struct agt_launch l = {.grid = {1, 1, 1}, .block = {1, 1, 1},
                         .params = (const uint8_t *)&ns,
                         .params_size = sizeof(ns), .out = no_output};

  sp->st = sp->f->b->ops->launch(sp->f->c, sp->fn, &l);
  return NULL;
}

/*
 * A session's lanes may outnumber its worker channels (64) on a host
 * with many cores: the calls beyond wait for a channel, none fails.
 */
static void test_more_calls_than_channels(void **state)
{
  struct fixture *f = *state;
  const struct agt_backend_ops *o = f->b->ops;
  struct spinner sp[MANY_CALLS];
  pthread_t th[MANY_CALLS];
  char why[AGT_WHY_MAX];
  void *mod, *fn;

  assert_int_equal(o->module_load(f->c, (const uint8_t *)spin_ptx,
                                  sizeof(spin_ptx) - 1, &mod, why),
                   cudaSuccess);
  assert_int_equal(o->function_get(f->c, mod, "spin", &fn), cudaSuccess);
  for (int i = 0; i < MANY_CALLS; i++) {
    sp[i] = (struct spinner){.f = f, .fn = fn, .st = 999};
    assert_int_equal(pthread_create(&th[i], NULL, spin_call, &sp[i]), 0);
  }
  for (int i = 0; i < MANY_CALLS; i++) {
    pthread_join(th[i], NULL);
    if (sp[i].st != cudaSuccess)
      fail_msg("call %d of %d at once: status %u", i, MANY_CALLS, sp[i].st);
  }
  o->module_unload(f->c, mod);
}

int main(int argc, char **argv)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_staged_copies, setup, teardown),
    cmocka_unit_test_setup_teardown(test_more_calls_than_channels, setup,
                                    teardown),
  };

  /* proc.c starts its workers as this program. */
  if (argc == 3 && strcmp(argv[1], "--worker-fd") == 0)
    return agt_proc_worker_main(atoi(argv[2]));
  return cmocka_run_group_tests(tests, NULL, NULL);
}
