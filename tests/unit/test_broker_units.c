/*
 * test_broker_units.c: the broker's event loop abstraction (brk_loop), its
 * pure helpers (brk_buf: byte queue, string builder, JSON reader) and a
 * lane's zero-copy upload FIFO (brk_upl) over a real lane segment.
 * No broker process, no agents: these run anywhere io_uring does (exit 77
 * where it does not).
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <fcntl.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>

#include "brk.h"
#include "brk_buf.h"
#include "brk_loop.h"
#include "brk_upl.h"

static struct brk_loop *loop;

/* Run rounds until *flag or the deadline. */
static void run_until(volatile int *flag, int ms)
{
  uint64_t end = brk_now_ms() + (uint64_t)ms;

  while (!*flag && brk_now_ms() < end)
    assert_true(brk_loop_run_once(loop, 50) >= 0);
}

/* ---- loop --------------------------------------------------------------- */

struct rec {
  int calls, res;
  char data[64];
  int len;
  uint64_t at;
};

static void record_cb(struct brk_op *op, int res, void *arg)
{
  struct rec *r = arg;

  r->calls++;
  r->res = res;
  r->at = brk_now_ms();
  if (res > 0 && res <= (int)sizeof(r->data) && brk_op_buf(op)) {
    memcpy(r->data, brk_op_buf(op), (size_t)res);
    r->len = res;
  }
}

static void test_timeout(void **state)
{
  struct rec a = {0}, b = {0};
  uint64_t t0 = brk_now_ms();

  assert_non_null(brk_loop_timeout(loop, 30, record_cb, &a));
  assert_non_null(brk_loop_timeout(loop, 5, record_cb, &b));
  run_until(&a.calls, 2000);
  assert_int_equal(a.calls, 1);
  assert_int_equal(b.calls, 1);
  assert_int_equal(a.res, 0); /* expiry is success, not -ETIME */
  assert_true(b.at <= a.at);
  assert_true(a.at - t0 >= 25);
  assert_int_equal(brk_loop_pending(loop), 0);
}

static void test_cancel(void **state)
{
  struct rec a = {0}, b = {0};
  struct brk_op *op;
  int fds[2];

  /* A cancelled timer never calls back, and its memory is reclaimed. */
  op = brk_loop_timeout(loop, 20, record_cb, &a);
  assert_non_null(op);
  brk_op_cancel(op);
  /* A cancelled read on a pipe nobody writes to, likewise. */
  assert_int_equal(pipe(fds), 0);
  op = brk_loop_read(loop, fds[0], 16, record_cb, &b);
  assert_non_null(op);
  assert_int_equal(brk_loop_run_once(loop, 0) >= 0, 1);
  brk_op_cancel(op);
  for (int i = 0; i < 20 && brk_loop_pending(loop); i++)
    brk_loop_run_once(loop, 50);
  assert_int_equal(brk_loop_pending(loop), 0);
  assert_int_equal(a.calls, 0);
  assert_int_equal(b.calls, 0);
  close(fds[0]);
  close(fds[1]);
}

static void test_read_write_poll(void **state)
{
  struct rec r = {0}, w = {0}, p = {0};
  int fds[2];
  char msg[] = "hello loop";

  assert_int_equal(pipe(fds), 0);
  assert_non_null(brk_loop_poll(loop, fds[0], POLLIN, record_cb, &p));
  assert_non_null(brk_loop_write(loop, fds[1], msg, sizeof(msg), record_cb, &w));
  memset(msg, 'x', sizeof(msg)); /* the loop copied it */
  run_until(&p.calls, 2000);
  assert_int_equal(w.res, (int)sizeof("hello loop"));
  assert_true(p.res & POLLIN);
  assert_non_null(brk_loop_read(loop, fds[0], 64, record_cb, &r));
  run_until(&r.calls, 2000);
  assert_int_equal(r.res, (int)sizeof("hello loop"));
  assert_string_equal(r.data, "hello loop");
  /* EOF reads as 0. */
  close(fds[1]);
  memset(&r, 0, sizeof(r));
  assert_non_null(brk_loop_read(loop, fds[0], 64, record_cb, &r));
  run_until(&r.calls, 2000);
  assert_int_equal(r.res, 0);
  close(fds[0]);
}

static void test_accept_recvmsg(void **state)
{
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  struct rec a = {0}, m = {0};
  char path[64];
  int lfd, cfd;

  snprintf(path, sizeof(path), "/tmp/brk-unit-%d.sock", (int)getpid());
  unlink(path);
  strcpy(sa.sun_path, path);
  lfd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
  assert_true(lfd >= 0);
  assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  assert_int_equal(listen(lfd, 4), 0);
  assert_non_null(brk_loop_accept(loop, lfd, record_cb, &a));
  cfd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
  assert_int_equal(connect(cfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  run_until(&a.calls, 2000);
  assert_true(a.res >= 0);
  assert_non_null(brk_loop_recvmsg(loop, a.res, 32, 0, 0, record_cb, &m));
  assert_int_equal(send(cfd, "packet", 6, 0), 6);
  run_until(&m.calls, 2000);
  assert_int_equal(m.res, 6);
  assert_memory_equal(m.data, "packet", 6);
  close(cfd);
  close(a.res);
  close(lfd);
  unlink(path);
}

struct tcount {
  struct brk_task t;
  int runs, requeue;
};

static void task_fn(struct brk_task *t, void *arg)
{
  struct tcount *c = arg;

  c->runs++;
  if (c->requeue-- > 0)
    brk_loop_defer(loop, t);
}

static void test_tasks(void **state)
{
  struct tcount a = {0}, b = {0};

  brk_task_init(&a.t, task_fn, &a);
  brk_task_init(&b.t, task_fn, &b);
  brk_loop_defer(loop, &a.t);
  brk_loop_defer(loop, &a.t); /* queued once */
  brk_loop_defer(loop, &b.t);
  brk_task_cancel(loop, &b.t);
  brk_loop_run_once(loop, 0);
  assert_int_equal(a.runs, 1);
  assert_int_equal(b.runs, 0);
  /* A task that queues itself runs once per round, not forever. */
  a.requeue = 3;
  brk_loop_defer(loop, &a.t);
  brk_loop_run_once(loop, 0);
  assert_int_equal(a.runs, 2);
  for (int i = 0; i < 5; i++)
    brk_loop_run_once(loop, 0);
  assert_int_equal(a.runs, 5);
}

/* ---- byte queue ------------------------------------------------------------ */

static void test_bq(void **state)
{
  struct brk_bq q;
  struct iovec iov[8];
  size_t bytes;
  uint8_t *big = malloc(300000), *out = malloc(300000);
  int n;

  for (size_t i = 0; i < 300000; i++)
    big[i] = (uint8_t)(i * 7);
  brk_bq_init(&q);
  assert_int_equal(brk_bq_append(&q, "abc", 3), 0);
  assert_int_equal(brk_bq_append(&q, big, 300000), 0);
  assert_int_equal(q.len, 300003);
  n = brk_bq_peekv(&q, iov, 8, 5, &bytes);
  assert_int_equal(bytes, 5);
  assert_true(n >= 1);
  brk_bq_copyout(&q, out, 5);
  assert_memory_equal(out, "abc\x00\x07", 5);
  brk_bq_drop(&q, 3);
  brk_bq_copyout(&q, out, 300000);
  assert_memory_equal(out, big, 300000);
  /* A gather view limited by iovec count covers less. */
  n = brk_bq_peekv(&q, iov, 1, q.len, &bytes);
  assert_int_equal(n, 1);
  assert_true(bytes > 0 && bytes <= q.len);
  brk_bq_drop(&q, 299999);
  assert_int_equal(q.len, 1);
  brk_bq_drop(&q, 1);
  assert_int_equal(q.len, 0);
  assert_null(q.head);
  brk_bq_release(&q);
  free(big);
  free(out);
}

/* ---- byte queue: by-reference segments ----------------------------------- */

struct refdone {
  int calls;
  int order[8];
  int norder;
};

struct refarg {
  struct refdone *d;
  int id;
};

static void ref_done(void *arg)
{
  struct refarg *a = arg;

  a->d->calls++;
  if (a->d->norder < 8)
    a->d->order[a->d->norder++] = a->id;
}

/* Gather everything peekv describes into out; returns the bytes. */
static size_t peek_all(const struct brk_bq *q, uint8_t *out)
{
  struct iovec iov[16];
  size_t bytes, off = 0;
  int n = brk_bq_peekv(q, iov, 16, q->len, &bytes);

  for (int i = 0; i < n; i++) {
    memcpy(out + off, iov[i].iov_base, iov[i].iov_len);
    off += iov[i].iov_len;
  }
  assert_int_equal(off, bytes);
  return off;
}

static void test_bq_ref_mixed(void **state)
{
  struct brk_bq q;
  struct refdone d = {0};
  struct refarg a1 = {&d, 1}, a2 = {&d, 2};
  uint8_t ext1[100000], ext2[5000], want[200000], out[200000];
  struct iovec iov[16];
  size_t bytes, wl = 0;
  int n;

  for (size_t i = 0; i < sizeof(ext1); i++)
    ext1[i] = (uint8_t)(i * 3 + 1);
  for (size_t i = 0; i < sizeof(ext2); i++)
    ext2[i] = (uint8_t)(i * 5 + 2);
  brk_bq_init(&q);
  /* owned "hdr", external ext1, owned "mid", external ext2, owned "tail" */
  assert_int_equal(brk_bq_append(&q, "hdr", 3), 0);
  assert_int_equal(brk_bq_append_ref(&q, ext1, sizeof(ext1), ref_done, &a1),
                   0);
  assert_int_equal(brk_bq_append(&q, "mid", 3), 0);
  assert_int_equal(brk_bq_append_ref(&q, ext2, sizeof(ext2), ref_done, &a2),
                   0);
  assert_int_equal(brk_bq_append(&q, "tail", 4), 0);
  memcpy(want + wl, "hdr", 3), wl += 3;
  memcpy(want + wl, ext1, sizeof(ext1)), wl += sizeof(ext1);
  memcpy(want + wl, "mid", 3), wl += 3;
  memcpy(want + wl, ext2, sizeof(ext2)), wl += sizeof(ext2);
  memcpy(want + wl, "tail", 4), wl += 4;
  assert_int_equal(q.len, wl);

  /* The external bytes are not copied: peekv points into them. */
  n = brk_bq_peekv(&q, iov, 16, q.len, &bytes);
  assert_int_equal(n, 5);
  assert_int_equal(bytes, wl);
  assert_ptr_equal(iov[1].iov_base, ext1);
  assert_ptr_equal(iov[3].iov_base, ext2);
  assert_int_equal(peek_all(&q, out), wl);
  assert_memory_equal(out, want, wl);
  memset(out, 0, sizeof(out));
  brk_bq_copyout(&q, out, wl);
  assert_memory_equal(out, want, wl);

  /* Copied appends never land in an external segment's memory. */
  assert_int_equal(memcmp(ext2, want + 3 + sizeof(ext1) + 3, sizeof(ext2)),
                   0);

  /* Partial drops inside an external segment: no callback yet. */
  brk_bq_drop(&q, 3 + 1000);
  assert_int_equal(d.calls, 0);
  n = brk_bq_peekv(&q, iov, 16, 10, &bytes);
  assert_int_equal(bytes, 10);
  assert_ptr_equal(iov[0].iov_base, ext1 + 1000);
  brk_bq_copyout(&q, out, q.len);
  assert_memory_equal(out, want + 1003, wl - 1003);
  /* Dropping the rest of ext1 (and into "mid") calls its callback once. */
  brk_bq_drop(&q, sizeof(ext1) - 1000 + 1);
  assert_int_equal(d.calls, 1);
  assert_int_equal(d.order[0], 1);
  brk_bq_copyout(&q, out, q.len);
  assert_memory_equal(out, want + 3 + sizeof(ext1) + 1, q.len);
  /* Drop exactly to the end of ext2. */
  brk_bq_drop(&q, 2 + sizeof(ext2));
  assert_int_equal(d.calls, 2);
  assert_int_equal(d.order[1], 2);
  assert_int_equal(q.len, 4);
  brk_bq_copyout(&q, out, 4);
  assert_memory_equal(out, "tail", 4);
  brk_bq_drop(&q, 4);
  assert_int_equal(q.len, 0);
  assert_null(q.head);
  brk_bq_release(&q);
  assert_int_equal(d.calls, 2);
}

static void test_bq_ref_release(void **state)
{
  struct brk_bq q;
  struct refdone d = {0};
  struct refarg a1 = {&d, 1}, a2 = {&d, 2}, a3 = {&d, 3};
  uint8_t ext[64];

  memset(ext, 0x5a, sizeof(ext));
  brk_bq_init(&q);
  /* Zero bytes: done at once, nothing queued. */
  assert_int_equal(brk_bq_append_ref(&q, ext, 0, ref_done, &a3), 0);
  assert_int_equal(d.calls, 1);
  assert_int_equal(q.len, 0);
  assert_null(q.head);
  /* External segments at the head and the tail, partly dropped. */
  assert_int_equal(brk_bq_append_ref(&q, ext, 32, ref_done, &a1), 0);
  assert_int_equal(brk_bq_append(&q, "x", 1), 0);
  assert_int_equal(brk_bq_append_ref(&q, ext + 32, 32, ref_done, &a2), 0);
  brk_bq_drop(&q, 5);
  assert_int_equal(d.calls, 1);
  brk_bq_release(&q);
  /* Each callback once, in queue order; the queue is empty and reusable. */
  assert_int_equal(d.calls, 3);
  assert_int_equal(d.order[1], 1);
  assert_int_equal(d.order[2], 2);
  assert_int_equal(q.len, 0);
  assert_null(q.head);
  assert_int_equal(brk_bq_append(&q, "ok", 2), 0);
  brk_bq_release(&q);
  assert_int_equal(d.calls, 3);
  /* A queue of only an external segment, dropped in small steps. */
  brk_bq_init(&q);
  assert_int_equal(brk_bq_append_ref(&q, ext, 64, ref_done, &a1), 0);
  for (int i = 0; i < 63; i++)
    brk_bq_drop(&q, 1);
  assert_int_equal(d.calls, 3);
  brk_bq_drop(&q, 1);
  assert_int_equal(d.calls, 4);
  assert_null(q.head);
  assert_null(q.tail);
  /* Appending after an external tail starts an owned segment. */
  assert_int_equal(brk_bq_append_ref(&q, ext, 8, ref_done, &a2), 0);
  assert_int_equal(brk_bq_append(&q, "abcdefgh", 8), 0);
  {
    uint8_t out[16];

    brk_bq_copyout(&q, out, 16);
    assert_memory_equal(out, ext, 8);
    assert_memory_equal(out + 8, "abcdefgh", 8);
  }
  for (int i = 0; i < 8; i++)
    assert_int_equal(ext[i], 0x5a);
  brk_bq_drop(&q, 16);
  assert_int_equal(d.calls, 5);
  brk_bq_release(&q);
  assert_int_equal(d.calls, 5);
}

/* ---- strings and JSON ------------------------------------------------------- */

static void test_sb_json(void **state)
{
  struct brk_sb b;

  brk_sb_init(&b);
  assert_string_equal(b.s, "");
  brk_sb_json_str(&b, "a\"b\\c\n\x01 \xc3\xa9 \xff end");
  assert_string_equal(b.s, "\"a\\\"b\\\\c\\n\\u0001 \xc3\xa9 \\ufffd end\"");
  brk_sb_release(&b);
  for (int i = 0; i < 1000; i++)
    brk_sb_printf(&b, "%d,", i);
  assert_int_equal(b.len, strlen(b.s));
  assert_non_null(strstr(b.s, "999,"));
  brk_sb_release(&b);
}

struct kv {
  char op[64], ver[64];
  int members;
};

static void kv_fn(const char *k, const char *v, int is_string, void *ctx)
{
  struct kv *x = ctx;

  x->members++;
  if (!strcmp(k, "op"))
    snprintf(x->op, sizeof(x->op), "%s%s", is_string ? "s:" : "", v);
  if (!strcmp(k, "version"))
    snprintf(x->ver, sizeof(x->ver), "%s", v);
}

static int parse(const char *s, struct kv *x)
{
  const char *why = NULL;

  memset(x, 0, sizeof(*x));
  return brk_json_flat(s, strlen(s), kv_fn, x, &why);
}

static void test_json_flat(void **state)
{
  struct kv x;

  assert_int_equal(parse("{\"version\":1,\"op\":\"stats\"}", &x), 0);
  assert_string_equal(x.op, "s:stats");
  assert_string_equal(x.ver, "1");
  assert_int_equal(parse(" { \"op\" : \"st\\u0061ts\" , \"x\":null,\"y\":-1.5e3 } \n",
                         &x), 0);
  assert_string_equal(x.op, "s:stats");
  assert_int_equal(x.members, 3);
  assert_int_equal(parse("{}", &x), 0);
  assert_int_equal(parse("{\"op\":\"\\ud83d\\ude00\"}", &x), 0);
  assert_string_equal(x.op, "s:\xf0\x9f\x98\x80");
  assert_int_equal(parse("{\"op\":{\"a\":1}}", &x), -EINVAL);
  assert_int_equal(parse("{\"op\":\"stats\"", &x), -EINVAL);
  assert_int_equal(parse("{\"op\":\"stats\"} x", &x), -EINVAL);
  assert_int_equal(parse("[1]", &x), -EINVAL);
  assert_int_equal(parse("{\"op\":01}", &x), -EINVAL); /* no leading 0s */
}

/* ---- zero-copy uploads (brk_upl) ------------------------------------------ */

static void count_space(void *arg)
{
  (*(int *)arg)++;
}

/* The shim's view of the upload area (the broker's is the lane's l.up,
   a consumer's: a ring's position is its own side's). */
static struct tr_ring shim_up;

/* Bytes of the upload area the broker has not given back. */
static uint64_t up_used(void)
{
  return shim_up.pos - atomic_load(&shim_up.ctl->head);
}

/* Is [p, p + 4096) mapped in this process? */
static int mapped(void *p)
{
  return msync(p, 4096, MS_ASYNC) == 0;
}

/*
 * Chunks are given back to the shim in the order they arrived, whatever
 * order their queues let go of them; a chunk copied meanwhile goes with
 * the newest queued one; a full FIFO refuses; and a lane freed with a
 * chunk still queued keeps its mapping until that chunk is done.
 */
static void test_upl(void **state)
{
  struct brk_upl_ent *e[2], *last;
  struct tr_shmref r[3];
  struct tr_lane l;
  struct brk_upl *u;
  int memfd, spaces = 0;
  void *base;

  (void)state;
  assert_int_equal(tr_lane_create(&l, 7, &memfd), 0);
  close(memfd);
  shim_up = l.up;
  u = brk_upl_new(&l.up, count_space, &spaces);
  assert_non_null(u);
  for (int i = 0; i < 3; i++) {
    r[i].area = TR_AREA_UP;
    assert_non_null(tr_area_reserve(&shim_up, BRK_LANE_ZC_MIN, &r[i]));
    assert_non_null(tr_area_resolve(&l.up, &r[i], NULL)); /* as lanes do */
  }
  assert_int_equal(up_used(), 3 * BRK_LANE_ZC_MIN);
  e[0] = brk_upl_push(u, &r[0]);
  e[1] = brk_upl_push(u, &r[1]);
  assert_non_null(e[0]);
  assert_non_null(e[1]);
  brk_upl_finish(u, &r[2]); /* copied: released with e[1] */
  brk_upl_done(e[1]);       /* out of order: nothing moves yet */
  assert_int_equal(spaces, 0);
  assert_int_equal(up_used(), 3 * BRK_LANE_ZC_MIN);
  brk_upl_done(e[0]); /* now all three, and the shim is told once */
  assert_int_equal(spaces, 1);
  assert_int_equal(up_used(), 0);

  /* Nothing queued: a finished chunk goes back at once. */
  assert_non_null(tr_area_reserve(&shim_up, BRK_LANE_ZC_MIN, &r[0]));
  assert_non_null(tr_area_resolve(&l.up, &r[0], NULL));
  assert_int_equal(up_used(), BRK_LANE_ZC_MIN);
  brk_upl_finish(u, &r[0]);
  assert_int_equal(up_used(), 0);
  assert_int_equal(spaces, 1);

  /* BRK_LANE_ZC_MAX entries, then NULL (the caller copies instead). */
  assert_non_null(tr_area_reserve(&shim_up, BRK_LANE_ZC_MIN, &r[0]));
  for (unsigned i = 0; i < BRK_LANE_ZC_MAX; i++)
    assert_non_null(brk_upl_push(u, &r[0]) ? (void *)u : NULL);
  assert_null(brk_upl_push(u, &r[0]));
  brk_upl_free(u); /* entries not done: the test owns the area here */

  /* The lane freed with a chunk still queued: its mapping stays until
     the queue lets go of the chunk, and goes then. */
  u = brk_upl_new(&l.up, count_space, &spaces);
  assert_non_null(u);
  r[0].area = TR_AREA_UP;
  assert_non_null(tr_area_reserve(&shim_up, BRK_LANE_ZC_MIN, &r[0]));
  last = brk_upl_push(u, &r[0]);
  assert_non_null(last);
  base = l.base;
  brk_upl_release(u, &l);
  assert_true(mapped(base));
  brk_upl_done(last);
  assert_false(mapped(base));
  assert_int_equal(spaces, 1); /* not after the release */

  /* Nothing queued: released at once. */
  assert_int_equal(tr_lane_create(&l, 8, &memfd), 0);
  close(memfd);
  u = brk_upl_new(&l.up, count_space, &spaces);
  assert_non_null(u);
  base = l.base;
  brk_upl_release(u, &l);
  assert_false(mapped(base));
}

/* ---- the TLS pipe (brk_tls.c) --------------------------------------------- */

/* A throwaway self-signed certificate and key for the server side. */
static SSL_CTX *tls_server_ctx(void)
{
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  EVP_PKEY *key = EVP_EC_gen("P-256");
  X509 *x = X509_new();
  X509_NAME *name;

  assert_non_null(ctx);
  assert_non_null(key);
  assert_non_null(x);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, key);
  name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             (const unsigned char *)"test", -1, -1, 0);
  X509_set_issuer_name(x, name);
  assert_true(X509_sign(x, key, EVP_sha256()) > 0);
  assert_int_equal(SSL_CTX_use_certificate(ctx, x), 1);
  assert_int_equal(SSL_CTX_use_PrivateKey(ctx, key), 1);
  X509_free(x);
  EVP_PKEY_free(key);
  return ctx;
}

static void *tls_accept(void *arg)
{
  return (void *)(intptr_t)SSL_accept(arg);
}

/*
 * pending() is decrypted input that poll cannot see, and only that: half
 * a record waiting for its rest is not (poll sees the rest arrive), or
 * the broker's loop would spin until it came.
 */
static void test_tls_pending(void **state)
{
  SSL_CTX *sctx = tls_server_ctx(), *cctx = SSL_CTX_new(TLS_client_method());
  SSL *srv = SSL_new(sctx), *cli = SSL_new(cctx);
  uint8_t msg[5000], buf[100], rec[8192];
  struct brk_pipe p;
  pthread_t th;
  void *ret;
  BIO *mem;
  int sv[2], n;
  ssize_t r;

  (void)state;
  assert_non_null(srv);
  assert_non_null(cli);
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  SSL_set_fd(srv, sv[1]);
  SSL_set_fd(cli, sv[0]);
  assert_int_equal(pthread_create(&th, NULL, tls_accept, srv), 0);
  assert_int_equal(SSL_connect(cli), 1);
  assert_int_equal(pthread_join(th, &ret), 0);
  assert_int_equal((intptr_t)ret, 1);
  assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
  assert_int_equal(brk_pipe_tls(&p, sv[0], cli), 0);

  /* One record of the server's, made in memory, reaches us in halves. */
  mem = BIO_new(BIO_s_mem());
  assert_non_null(mem);
  SSL_set0_wbio(srv, mem);
  memset(msg, 'x', sizeof(msg));
  assert_int_equal(SSL_write(srv, msg, sizeof(msg)), (int)sizeof(msg));
  n = BIO_read(mem, rec, sizeof(rec));
  assert_true(n > (int)sizeof(msg));
  assert_int_equal(write(sv[1], rec, (size_t)n / 2), n / 2);
  r = p.read(&p, buf, sizeof(buf));
  assert_int_equal(r, -EAGAIN);
  assert_false(p.pending(&p)); /* half a record: poll will see the rest */
  assert_int_equal(write(sv[1], rec + n / 2, (size_t)(n - n / 2)),
                   n - n / 2);
  r = p.read(&p, buf, sizeof(buf));
  assert_int_equal(r, (ssize_t)sizeof(buf));
  assert_true(p.pending(&p)); /* the rest of it, decrypted: poll cannot */
  p.close(&p);
  SSL_free(srv);
  SSL_CTX_free(sctx);
  SSL_CTX_free(cctx);
  close(sv[1]);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_timeout),
      cmocka_unit_test(test_cancel),
      cmocka_unit_test(test_read_write_poll),
      cmocka_unit_test(test_accept_recvmsg),
      cmocka_unit_test(test_tasks),
      cmocka_unit_test(test_bq),
      cmocka_unit_test(test_bq_ref_mixed),
      cmocka_unit_test(test_bq_ref_release),
      cmocka_unit_test(test_upl),
      cmocka_unit_test(test_tls_pending),
      cmocka_unit_test(test_sb_json),
      cmocka_unit_test(test_json_flat),
  };
  int rc = brk_loop_new(&loop, 64);

  if (rc < 0) {
    fprintf(stderr, "io_uring unavailable (%s): skipped\n", strerror(-rc));
    return 77;
  }
  rc = cmocka_run_group_tests(tests, NULL, NULL);
  brk_loop_free(loop);
  return rc;
}
