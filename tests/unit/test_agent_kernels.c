/*
 * test_agent_kernels.c: modules and kernels on the emulated device.  The
 * module cache (MODULE_PUT in chunks, hashes checked, shared by sessions)
 * and FUNCTION_GET; hand-written PTX kernels whose printf output, variables
 * and attributes come back; a kernel fault that is sticky for its session
 * only; PINGs and other sessions served while a long kernel runs; and the
 * watchdog that stops a kernel that runs on (its own agent, --emu-watchdog
 * 2).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fatbin.h"
#include "ptx_spin.h"
#include "test_agent.h"

/* ---- modules ------------------------------------------------------------ */

/*
 * A minimal fatbin: container header and one uncompressed PTX entry that
 * declares `kern(.param .u64)`.  Enough for tr_kparams_find().
 */
static uint8_t *make_fatbin_ptx(const char *ptx, size_t *len);

static uint8_t *make_fatbin(size_t *len)
{
  return make_fatbin_ptx(
      ".version 8.0\n.target sm_75\n.address_size 64\n\n"
      ".visible .entry kern(\n\t.param .u64 kern_param_0\n)\n{\n\tret;\n}\n",
      len);
}

/* A fatbin container holding one uncompressed compute_75 PTX entry. */
static uint8_t *make_fatbin_ptx(const char *ptx, size_t *len)
{
  size_t plen = (strlen(ptx) + 1 + 7) & ~(size_t)7; /* NUL included, padded */
  size_t total = 16 + 64 + plen;
  uint8_t *fb = calloc(1, total), *e = fb + 16;

  tr_put_u32(fb, TR_FATBIN_MAGIC);
  tr_put_u16(fb + 4, 1);
  tr_put_u16(fb + 6, 16);
  tr_put_u64(fb + 8, 64 + plen);
  tr_put_u16(e, TR_FATBIN_KIND_PTX);
  tr_put_u16(e + 2, 0x0101);
  tr_put_u32(e + 4, 64);
  tr_put_u64(e + 8, plen);
  tr_put_u16(e + 24, 0);  /* PTX ISA minor */
  tr_put_u16(e + 26, 8);  /* major */
  tr_put_u32(e + 28, 75); /* compute_75 */
  tr_put_u64(e + 40, TR_FATBIN_FLAG_64BIT | TR_FATBIN_FLAG_LINUX);
  memcpy(e + 64, ptx, strlen(ptx) + 1);
  *len = total;
  return fb;
}

/* MODULE_PUT of chunk[0..len) at offset off of a module of total bytes. */
static uint32_t module_put(struct tc_stream *lane, const uint8_t hash[16],
                           size_t total, size_t off, const uint8_t *chunk,
                           size_t len)
{
  uint8_t *p = malloc(32 + len);
  uint32_t st;

  memcpy(p, hash, 16);
  tr_put_u64(p + 16, total);
  tr_put_u64(p + 24, off);
  memcpy(p + 32, chunk, len);
  st = tc_call(lane, TR_OP_MODULE_PUT, 0, p, 32 + len, NULL);
  free(p);
  return st;
}

static uint32_t module_load(struct tc_stream *lane, uint64_t handle,
                            const uint8_t hash[16])
{
  uint8_t p[24];

  tr_put_u64(p, handle);
  memcpy(p + 8, hash, 16);
  return tc_call(lane, TR_OP_MODULE_LOAD, 0, p, 24, NULL);
}

static uint32_t function_get(struct tc_stream *lane, uint64_t mod,
                             uint64_t fn, const char *name)
{
  size_t n = strlen(name);
  uint8_t p[128];

  tr_put_u64(p, mod);
  tr_put_u64(p + 8, fn);
  tr_put_u32(p + 16, (uint32_t)n);
  memcpy(p + 20, name, n);
  return tc_call(lane, TR_OP_FUNCTION_GET, 0, p, 20 + n, NULL);
}

static uint32_t launch(struct tc_stream *lane, uint64_t fn, uint32_t gx,
                       uint32_t bx)
{
  uint8_t p[TR_LAUNCH_FIXED + 8] = {0};

  tr_put_u64(p, fn);
  tr_put_u32(p + 8, gx);
  tr_put_u32(p + 12, 1);
  tr_put_u32(p + 16, 1);
  tr_put_u32(p + 20, bx);
  tr_put_u32(p + 24, 1);
  tr_put_u32(p + 28, 1);
  tr_put_u32(p + 36, 8);
  tr_put_u64(p + TR_LAUNCH_FIXED, 0x1234);
  return tc_call(lane, TR_OP_LAUNCH, 0, p, sizeof(p), NULL);
}

void test_modules(void **state)
{
  struct tc_conn c;
  struct tc_stream *sess, *lane, *s2, *l2;
  uint8_t hash[16], bad_hash[16];
  uint64_t sid, sid2;
  size_t len;
  uint8_t *fb = make_fatbin(&len);

  tr_fatbin_hash(fb, len, hash);
  memcpy(bad_hash, hash, 16);
  bad_hash[15] ^= 1;
  ta_connect_agent(&c);
  sess = ta_open_session(&c, 7, &sid);
  lane = ta_open_lane(&c, sid, 1, 200);

  assert_int_equal(module_load(lane, 1, hash), TR_ST_NEED_MODULE);
  assert_int_equal(module_load(lane, 0, hash), TR_ST_BAD_HANDLE);
  /* Chunks in any order; the load works once the last one is in. */
  assert_int_equal(module_put(lane, hash, len, 40, fb + 40, len - 40), 0);
  assert_int_equal(module_load(lane, 1, hash), TR_ST_NEED_MODULE);
  assert_int_equal(module_put(lane, hash, len, 0, fb, 50), 0);
  assert_int_equal(module_load(lane, 1, hash), 0);
  assert_int_equal(module_load(lane, 1, hash), TR_ST_BAD_HANDLE); /* twice */
  /* Bytes that do not match their hash are refused. */
  assert_int_equal(module_put(lane, bad_hash, len, 0, fb, len),
                   CU_INVALID_SOURCE);
  assert_int_equal(module_load(lane, 2, bad_hash), TR_ST_NEED_MODULE);
  assert_int_equal(module_put(lane, bad_hash, len, len - 4, fb, 8),
                   TR_ST_BAD_RECORD); /* beyond total */

  assert_int_equal(function_get(lane, 1, 10, "kern"), 0);
  assert_int_equal(function_get(lane, 1, 11, "nokern"),
                   CU_INVALID_DEVICE_FUNCTION);
  assert_int_equal(function_get(lane, 99, 12, "kern"), TR_ST_BAD_HANDLE);
  assert_int_equal(function_get(lane, 1, 10, "kern"), TR_ST_BAD_HANDLE);

  /* The kernel (a bare ret) runs. */
  assert_int_equal(launch(lane, 10, 4, 128), 0);
  assert_int_equal(launch(lane, 10, 4, 2048), CU_INVALID_VALUE);
  assert_int_equal(launch(lane, 77, 4, 128), TR_ST_BAD_HANDLE);

  /* The cache is per agent: another session loads without uploading. */
  s2 = ta_open_session(&c, 8, &sid2);
  l2 = ta_open_lane(&c, sid2, 1, 200);
  assert_int_equal(module_load(l2, 1, hash), 0);
  assert_int_equal(function_get(l2, 1, 10, "kern"), 0);

  /* Unloading takes the module's functions with it. */
  {
    uint8_t p[8];

    tr_put_u64(p, 1);
    assert_int_equal(tc_call(lane, TR_OP_MODULE_UNLOAD, 0, p, 8, NULL), 0);
    assert_int_equal(tc_call(lane, TR_OP_MODULE_UNLOAD, 0, p, 8, NULL),
                     TR_ST_BAD_HANDLE);
  }
  assert_int_equal(launch(lane, 10, 1, 1), TR_ST_BAD_HANDLE);
  /* ... in this session only. */
  assert_int_equal(launch(l2, 10, 1, 1), 0);

  tc_end(sess);
  tc_end(s2);
  assert_true(tc_wait_ended(sess));
  assert_true(tc_wait_ended(s2));
  tc_close(&c);
  free(fb);
}

/* ---- kernels on the emulated device ------------------------------------- */

/*
 * Hand-written PTX: hello prints "hi <tid>" through vprintf, bad stores to
 * the address it is given, spin runs until %globaltimer has advanced by its
 * parameter (ns), counter is a __device__ variable with an initialiser.
 */
static const char kernels_ptx[] =
    ".version 8.0\n.target sm_75\n.address_size 64\n"
    ".extern .func (.param .b32 func_retval0) vprintf(.param .b64 a, "
    ".param .b64 b);\n"
    ".global .align 1 .b8 fmt[7] = {104, 105, 32, 37, 100, 10, 0};\n"
    ".global .align 4 .u32 counter = 5;\n"
    ".visible .entry hello()\n{\n"
    "  .local .align 8 .b8 depot[8];\n"
    "  .reg .b32 %r<3>;\n  .reg .b64 %rd<5>;\n"
    "  mov.u64 %rd1, depot;\n  cvta.local.u64 %rd2, %rd1;\n"
    "  mov.u32 %r1, %tid.x;\n  st.local.u32 [%rd1], %r1;\n"
    "  mov.u64 %rd3, fmt;\n  cvta.global.u64 %rd4, %rd3;\n"
    "  {\n  .param .b64 param0;\n  st.param.b64 [param0+0], %rd4;\n"
    "  .param .b64 param1;\n  st.param.b64 [param1+0], %rd2;\n"
    "  .param .b32 retval0;\n"
    "  call.uni (retval0), vprintf, (param0, param1);\n"
    "  ld.param.b32 %r2, [retval0+0];\n  }\n  ret;\n}\n"
    ".visible .entry bad(.param .u64 p)\n{\n"
    "  .reg .b64 %rd<2>;\n  .reg .b32 %r<2>;\n"
    "  ld.param.u64 %rd1, [p];\n  mov.u32 %r1, 7;\n"
    "  st.global.u32 [%rd1], %r1;\n  ret;\n}\n" PTX_SPIN_ENTRY;

/* Load kernels_ptx as module 1 with hello = 10, bad = 11, spin = 12. */
static void load_kernels(struct tc_stream *lane)
{
  size_t len;
  uint8_t *fb = make_fatbin_ptx(kernels_ptx, &len), hash[16];

  tr_fatbin_hash(fb, len, hash);
  if (module_load(lane, 1, hash) == TR_ST_NEED_MODULE) {
    assert_int_equal(module_put(lane, hash, len, 0, fb, len), 0);
    assert_int_equal(module_load(lane, 1, hash), 0);
  }
  assert_int_equal(function_get(lane, 1, 10, "hello"), 0);
  assert_int_equal(function_get(lane, 1, 11, "bad"), 0);
  assert_int_equal(function_get(lane, 1, 12, "spin"), 0);
  free(fb);
}

/* Post a LAUNCH of fn with grid gx, block bx and params (no reply). */
static void post_launch(struct tc_stream *lane, uint64_t fn, uint32_t gx,
                        uint32_t bx, const void *params, uint32_t plen)
{
  uint8_t p[TR_LAUNCH_FIXED + 64] = {0};

  tr_put_u64(p, fn);
  tr_put_u32(p + 8, gx);
  tr_put_u32(p + 12, 1);
  tr_put_u32(p + 16, 1);
  tr_put_u32(p + 20, bx);
  tr_put_u32(p + 24, 1);
  tr_put_u32(p + 28, 1);
  tr_put_u32(p + 36, plen);
  if (plen)
    memcpy(p + TR_LAUNCH_FIXED, params, plen);
  tc_post(lane, TR_OP_LAUNCH, p, TR_LAUNCH_FIXED + plen);
}

/* The text of the fd records of a SYNCHRONIZE reply, concatenated. */
static char *output_text(const struct tc_result *r, int fd)
{
  char *t = calloc(1, r->len + 1);
  size_t off = 0, n = 0;

  while (off + 8 <= r->len) {
    uint32_t len = tr_get_u32(r->data + off + 4);

    assert_true(off + 8 + len <= r->len);
    if (r->data[off] == fd) {
      memcpy(t + n, r->data + off + 8, len);
      n += len;
    }
    off += 8 + len;
  }
  assert_int_equal(off, r->len);
  return t;
}

/*
 * printf output comes back with the next SYNCHRONIZE; variables are
 * device memory with their initial values; FUNC_ATTRS describes a kernel;
 * LAUNCH's flags and cluster are read and checked.
 */
void test_kernel_output(void **state)
{
  struct tc_conn c;
  struct tc_stream *sess, *lane;
  struct tc_result r;
  uint64_t sid, addr;
  uint8_t p[TR_LAUNCH_FIXED];
  char *text;

  ta_connect_agent(&c);
  sess = ta_open_session(&c, 9, &sid);
  lane = ta_open_lane(&c, sid, 1, 200);
  load_kernels(lane);

  post_launch(lane, 10, 1, 4, NULL, 0);
  assert_int_equal(tc_call(lane, TR_OP_SYNCHRONIZE, 0, NULL, 0, &r), 0);
  text = output_text(&r, 1);
  assert_string_equal(text, "hi 0\nhi 1\nhi 2\nhi 3\n");
  free(text);
  free(r.data);
  /* Collected once: the next synchronisation has nothing. */
  assert_int_equal(tc_call(lane, TR_OP_SYNCHRONIZE, 0, NULL, 0, &r), 0);
  assert_int_equal(r.len, 0);
  free(r.data);
  /* OUTPUT collects without a device wait. */
  post_launch(lane, 10, 1, 1, NULL, 0);
  assert_int_equal(tc_call(lane, TR_OP_OUTPUT, 0, NULL, 0, &r), 0);
  text = output_text(&r, 1);
  assert_string_equal(text, "hi 0\n");
  free(text);
  free(r.data);

  /* SYMBOL_GET: the variable's address and size; its initial value. */
  tr_put_u64(p, 1);
  tr_put_u32(p + 8, 7);
  memcpy(p + 12, "counter", 7);
  assert_int_equal(tc_call(lane, TR_OP_SYMBOL_GET, 0, p, 19, &r), 0);
  assert_int_equal(r.len, 16);
  addr = tr_get_u64(r.data);
  assert_int_equal(tr_get_u64(r.data + 8), 4);
  assert_true(addr >= ta_window(9) && addr < ta_window(9) + WIN_SIZE);
  free(r.data);
  assert_int_equal(ta_d2h(lane, addr, 4, &r), 0);
  assert_int_equal(tr_get_u32(r.data), 5);
  free(r.data);
  memcpy(p + 12, "nothere", 7);
  assert_int_equal(tc_call(lane, TR_OP_SYMBOL_GET, 0, p, 19, NULL),
                   CU_INVALID_SYMBOL);

  /* FUNC_ATTRS of spin: 8 bytes of parameters, PTX 8.0, cc 8.0. */
  tr_put_u64(p, 12);
  assert_int_equal(tc_call(lane, TR_OP_FUNC_ATTRS, 0, p, 8, &r), 0);
  assert_int_equal(r.len, TR_FATTRS_SIZE);
  assert_int_equal(tr_get_u32(r.data + 12), 1024); /* max threads */
  assert_int_equal(tr_get_u32(r.data + 20), 80);   /* ptx version */
  assert_int_equal(tr_get_u32(r.data + 24), 80);   /* binary version */
  assert_int_equal(tr_get_u32(r.data + 28), 8);    /* params */
  free(r.data);

  /* LAUNCH's flags and cluster: a cooperative launch runs as any other
     on the emulated device; it has no clusters; unknown flags are a
     malformed record. */
  memset(p, 0, TR_LAUNCH_FIXED);
  tr_put_u64(p, 10);
  for (int i = 0; i < 3; i++) {
    tr_put_u32(p + 8 + 4 * i, 1);
    tr_put_u32(p + 20 + 4 * i, 1);
  }
  tr_put_u32(p + 56, TR_LAUNCH_F_COOPERATIVE);
  assert_int_equal(tc_call(lane, TR_OP_LAUNCH, 0, p, TR_LAUNCH_FIXED, NULL),
                   0);
  assert_int_equal(tc_call(lane, TR_OP_SYNCHRONIZE, 0, NULL, 0, &r), 0);
  text = output_text(&r, 1);
  assert_string_equal(text, "hi 0\n");
  free(text);
  free(r.data);
  tr_put_u32(p + 56, 0);
  tr_put_u32(p + 60, 2);
  assert_int_equal(tc_call(lane, TR_OP_LAUNCH, 0, p, TR_LAUNCH_FIXED, NULL),
                   CU_NOT_SUPPORTED);
  tr_put_u32(p + 60, 0);
  tr_put_u32(p + 56, 2);
  assert_int_equal(tc_call(lane, TR_OP_LAUNCH, 0, p, TR_LAUNCH_FIXED, NULL),
                   TR_ST_BAD_RECORD);

  tc_end(sess);
  assert_true(tc_wait_ended(sess));
  tc_close(&c);
}

/*
 * A kernel that stores outside every allocation: cudaErrorIllegalAddress at
 * the next synchronisation with a report on the program's stderr, sticky
 * for the session (every later call fails with it), while another session
 * keeps working.
 */
void test_kernel_fault_sticky(void **state)
{
  struct tc_conn c;
  struct tc_stream *sess, *lane, *lane2, *s2, *l2;
  struct tc_result r;
  uint64_t sid, sid2, target = 0x10;
  uint8_t p[8];
  char *text;

  ta_connect_agent(&c);
  sess = ta_open_session(&c, 10, &sid);
  lane = ta_open_lane(&c, sid, 1, 200);
  lane2 = ta_open_lane(&c, sid, 2, 200);
  s2 = ta_open_session(&c, 11, &sid2);
  l2 = ta_open_lane(&c, sid2, 1, 200);
  load_kernels(lane);
  load_kernels(l2);

  post_launch(lane, 11, 1, 32, &target, 8);
  assert_int_equal(tc_call(lane, TR_OP_SYNCHRONIZE, 0, NULL, 0, &r),
                   CU_ILLEGAL_ADDRESS);
  text = output_text(&r, 2);
  assert_non_null(strstr(text, "tremote: kernel 'bad' failed"));
  free(text);
  free(r.data);
  /* Sticky, on every lane of the session, for every call. */
  tr_put_u64(p, 4096);
  assert_int_equal(tc_call(lane, TR_OP_MALLOC, 0, p, 8, NULL),
                   CU_ILLEGAL_ADDRESS);
  assert_int_equal(tc_call(lane2, TR_OP_NOP, 0, NULL, 0, NULL),
                   CU_ILLEGAL_ADDRESS);
  assert_int_equal(tc_call(lane, TR_OP_SYNCHRONIZE, 0, NULL, 0, NULL),
                   CU_ILLEGAL_ADDRESS);
  /* The other session is untouched, and its kernels run. */
  (void)ta_dmalloc(l2, 4096);
  post_launch(l2, 10, 1, 2, NULL, 0);
  assert_int_equal(tc_call(l2, TR_OP_SYNCHRONIZE, 0, NULL, 0, &r), 0);
  text = output_text(&r, 1);
  assert_string_equal(text, "hi 0\nhi 1\n");
  free(text);
  free(r.data);

  tc_end(sess);
  tc_end(s2);
  assert_true(tc_wait_ended(sess));
  assert_true(tc_wait_ended(s2));
  tc_close(&c);
}

/*
 * While a long kernel runs (30 s; 5 s in sanitizer builds, whose agent is
 * slow everywhere else), PINGs are answered in milliseconds and another
 * session is served: kernels run off the network loop.
 */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define SPIN_NS 5000000000ull
#else
#define SPIN_NS 30000000000ull
#endif
void test_kernel_long_ping(void **state)
{
  struct tc_conn c;
  struct tc_stream *sess, *lane, *s2, *l2;
  uint64_t sid, sid2, ns = SPIN_NS, t0, t_ack, t_other, t_done;
  const uint8_t *pl;
  struct tr_hdr h;
  unsigned acks;

  ta_connect_agent(&c);
  sess = ta_open_session(&c, 12, &sid);
  lane = ta_open_lane(&c, sid, 1, 200);
  s2 = ta_open_session(&c, 13, &sid2);
  l2 = ta_open_lane(&c, sid2, 1, 200);
  load_kernels(lane);

  post_launch(lane, 12, 1, 1, &ns, 8);
  tc_send_record(lane, TR_OP_SYNCHRONIZE, TR_F_WANT_REPLY, 999, NULL, 0);
  tc_pump(&c, 0);
  t0 = tc_now_ns();
  usleep(200000); /* the kernel is running now */
  for (int i = 0; i < 3; i++) {
    uint64_t t1 = tc_now_ns();

    acks = c.ping_acks;
    tc_ping(&c);
    while (c.ping_acks == acks && tc_now_ns() - t1 < 5000000000ull)
      tc_pump(&c, 10);
    assert_true(c.ping_acks > acks);
    t_ack = c.ping_ack_ns - t1;
    assert_true(t_ack < 100000000ull);
    t1 = tc_now_ns();
    assert_int_equal(tc_call(l2, TR_OP_NOP, 0, NULL, 0, NULL), 0);
    t_other = tc_now_ns() - t1;
    assert_true(t_other < 100000000ull);
    print_message("PING ack %.1f ms, other session's NOP %.1f ms while the "
                  "kernel runs\n", t_ack / 1e6, t_other / 1e6);
    usleep(500000);
  }
  assert_false(tc_next_record(lane, &h, &pl));
  while (!tc_next_record(lane, &h, &pl) &&
         tc_now_ns() - t0 < SPIN_NS + 30000000000ull)
    tc_pump(&c, 100);
  t_done = tc_now_ns() - t0;
  print_message("kernel of %.0f s done after %.1f s\n", SPIN_NS / 1e9,
                t_done / 1e9);
  assert_int_equal(h.request_id, 999);
  assert_int_equal(h.status, 0);
  assert_true(t_done + 300000000ull >= SPIN_NS);

  tc_end(sess);
  tc_end(s2);
  assert_true(tc_wait_ended(sess));
  assert_true(tc_wait_ended(s2));
  tc_close(&c);
}

/* With --emu-watchdog 2, a kernel that runs on is stopped: launch timeout,
   sticky, and the agent goes on serving. */
void test_kernel_watchdog(void **state)
{
  struct tc_conn c;
  struct tc_stream *sess, *lane, *s2, *l2;
  uint64_t sid, sid2, ns = 3600ull * 1000000000ull, t0;
  double secs;

  ta_connect_agent(&c);
  sess = ta_open_session(&c, 14, &sid);
  lane = ta_open_lane(&c, sid, 1, 200);
  s2 = ta_open_session(&c, 15, &sid2);
  l2 = ta_open_lane(&c, sid2, 1, 200);
  load_kernels(lane);

  t0 = tc_now_ns();
  post_launch(lane, 12, 2, 64, &ns, 8);
  assert_int_equal(tc_call(lane, TR_OP_SYNCHRONIZE, 0, NULL, 0, NULL),
                   CU_LAUNCH_TIMEOUT);
  secs = (tc_now_ns() - t0) / 1e9;
  print_message("watchdog stopped the kernel after %.2f s\n", secs);
  assert_true(secs >= 1.9 && secs < 20);
  assert_int_equal(tc_call(lane, TR_OP_NOP, 0, NULL, 0, NULL),
                   CU_LAUNCH_TIMEOUT);
  assert_int_equal(tc_call(l2, TR_OP_NOP, 0, NULL, 0, NULL), 0);
  tc_end(sess);
  tc_end(s2);
  assert_true(tc_wait_ended(sess));
  assert_true(tc_wait_ended(s2));
  tc_close(&c);
}
