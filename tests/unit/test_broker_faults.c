/*
 * test_broker_faults.c: the broker's failure paths, as its clients see
 * them.  A client that corrupts its own lane is dropped while a second one
 * keeps working; an agent killed (after the broker pushed back on a flood
 * to it) or gone silent loses its machine, whose outstanding requests are
 * answered with MACHINE_LOST before a new agent takes over; a session
 * broken while its lane moves between connections answers the program's
 * own request; a client that does not take its replies costs the other
 * clients nothing.  The broker is test_broker.c's, shared by all tests.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "client.h"
#include "ring.h"
#include "test_broker.h"
#include "tremote/proto.h"

/* -- a client that corrupts its lane while another keeps working -- */

struct worker {
  struct tb_client k;
  _Atomic int stop;
  int ok, failed;
  long last_err;
};

static void *good_worker(void *arg)
{
  struct worker *w = arg;
  const uint32_t len = 64u << 10; /* via the upload area */
  uint8_t *src = malloc(len), *dst = malloc(len);
  unsigned round = 0;

  while (!w->stop && src && dst) {
    uint64_t ptr = 0;
    long st;

    for (uint32_t i = 0; i < len; i++)
      src[i] = (uint8_t)(i ^ round);
    st = tb_dev_malloc(&w->k, 0, len, &ptr);
    if (st == 0)
      st = tb_h2d_sync(&w->k, 0, ptr, src, len);
    if (st == 0)
      st = tb_d2h(&w->k, 0, ptr, dst, len);
    if (st == 0 && memcmp(src, dst, len) != 0)
      st = -EBADMSG;
    if (st == 0)
      st = tb_dev_free(&w->k, 0, ptr);
    if (st == 0) {
      w->ok++;
    } else {
      w->failed++;
      w->last_err = st;
    }
    round++;
  }
  free(src);
  free(dst);
  return NULL;
}

struct bad {
  struct tr_client c;
  struct tr_lane l;
  uint8_t *alias; /* a second mapping of the same segment */
  _Atomic int stop;
  int dropped;
};

/* LANE_OPEN by hand, to keep a copy of the memfd for the second mapping. */
static int bad_open(struct bad *b)
{
  uint8_t buf[TR_HDR_SIZE + 64];
  union {
    struct cmsghdr h;
    char space[CMSG_SPACE(sizeof(int) * 3)];
  } u;
  struct iovec iov = {buf, sizeof(buf)};
  struct msghdr msg = {0};
  struct cmsghdr *cm;
  struct tr_hdr h;
  int fds[3], dupfd;
  const char *why;

  if (tr_client_connect(&b->c, tb_sock_path, 60000, &why) < 0)
    return -1;
  tr_hdr_init(&h, TR_OP_LANE_OPEN, TR_F_WANT_REPLY, 77, 0);
  tr_hdr_pack(&h, buf);
  if (send(b->c.fd, buf, TR_HDR_SIZE, 0) != TR_HDR_SIZE)
    return -1;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = u.space;
  msg.msg_controllen = sizeof(u.space);
  if (recvmsg(b->c.fd, &msg, MSG_CMSG_CLOEXEC) < TR_HDR_SIZE)
    return -1;
  cm = CMSG_FIRSTHDR(&msg);
  if (!cm || cm->cmsg_type != SCM_RIGHTS ||
      cm->cmsg_len != CMSG_LEN(sizeof(int) * 3))
    return -1;
  memcpy(fds, CMSG_DATA(cm), sizeof(fds));
  dupfd = dup(fds[0]);
  b->alias = mmap(NULL, TR_LANE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
                  dupfd, 0);
  close(dupfd);
  if (b->alias == MAP_FAILED)
    return -1;
  return tr_lane_map(&b->l, fds[0], fds[1], fds[2]);
}

/* The bad client's own thread: streams records to device 1 as fast as it
   can, with a round trip now and then, until the broker drops it. */
static void *bad_streamer(void *arg)
{
  struct bad *b = arg;
  uint8_t args[16] = {0};
  uint64_t n = 0;
  int rc;

  while (!b->stop) {
    int sync = (n++ % 64) == 0;

    rc = tr_client_send(&b->c, &b->l, 1, TR_OP_NOP,
                        sync ? TR_F_WANT_REPLY : 0, n, args, 0, NULL, 0);
    if (rc == -ENOTCONN) {
      b->dropped = 1;
      break;
    }
    if (sync) {
      struct tr_reply r;

      rc = tr_client_recv(&b->c, &b->l, &r, 200);
      if (rc == -ENOTCONN || rc == -EPROTO) {
        b->dropped = rc == -ENOTCONN;
        break;
      }
      if (rc == 0)
        tr_client_recv_done(&b->c, &b->l, &r);
    }
  }
  return NULL;
}

/* The vandal: flips random bytes of the request ring through the alias
   while the streamer writes it, then overwrites it wholesale, then breaks
   the tail. */
static void *vandal(void *arg)
{
  struct bad *b = arg;
  uint8_t *ring = b->alias + b->l.hdr->req_off;
  struct tr_ring_ctl *ctl = (struct tr_ring_ctl *)(b->alias + TR_LANE_CTL_OFF);
  unsigned seed = 12345;
  long t0 = tb_now_ms();
  uint64_t one = 1;

  while (tb_now_ms() - t0 < 1000 && !b->stop) {
    for (int i = 0; i < 64; i++)
      ring[rand_r(&seed) % TR_LANE_RING_SIZE] ^= (uint8_t)(1 + rand_r(&seed) % 255);
    tb_sleep_ms(1);
  }
  t0 = tb_now_ms();
  while (tb_now_ms() - t0 < 300 && !b->stop)
    memset(ring, 0xa5, TR_LANE_RING_SIZE);
  atomic_store(&ctl->tail, (uint64_t)1 << 62);
  (void)!write(b->l.req_efd, &one, sizeof(one));
  return NULL;
}

void test_corrupt_client(void **state)
{
  struct worker w = {0};
  struct bad b = {0};
  pthread_t tw, tb, tv;
  long long rt;
  int n0, n1 = -1; /* -1: never counted (the wait below timed out first) */
  long t0;

  n0 = tb_my_sessions(&rt);
  assert_int_equal(tb_client_open(&w.k), 0);
  assert_int_equal(bad_open(&b), 0);
  assert_int_equal(tb_my_sessions(&rt), n0 + 2);
  assert_int_equal(pthread_create(&tw, NULL, good_worker, &w), 0);
  tb_sleep_ms(200);
  assert_int_equal(pthread_create(&tb, NULL, bad_streamer, &b), 0);
  assert_int_equal(pthread_create(&tv, NULL, vandal, &b), 0);
  pthread_join(tv, NULL);
  /* The broker must notice the broken tail at the next doorbell. */
  t0 = tb_now_ms();
  while (tb_now_ms() - t0 < 10000 && (n1 = tb_my_sessions(&rt)) != n0 + 1)
    tb_sleep_ms(50);
  b.stop = 1;
  pthread_join(tb, NULL);
  tb_sleep_ms(300); /* B keeps working after A is gone */
  w.stop = 1;
  pthread_join(tw, NULL);
  if (n1 != n0 + 1)
    tb_dump_log();
  assert_int_equal(n1, n0 + 1);
  {
    char needle[64];

    snprintf(needle, sizeof(needle), "dropping client pid %d", (int)getpid());
    assert_true(tb_log_contains(needle));
  }
  if (w.failed)
    fprintf(stderr, "good client: %d ok, %d failed (last %ld)\n", w.ok,
            w.failed, w.last_err);
  assert_int_equal(w.failed, 0);
  assert_true(w.ok > 0);
  assert_true(tb_broker_alive());
  munmap(b.alias, TR_LANE_SIZE);
  tr_lane_unmap(&b.l);
  tr_client_close(&b.c);
  tb_client_close(&w.k);
}

/* -- machines that die or go silent -- */

struct streamer {
  struct tb_client *k;
  uint16_t dev;
  uint64_t ptr;
  long status;
  _Atomic long done_ms; /* written by the streamer, polled by the test */
};

/* 48 MiB of asynchronous H2D to a stopped agent, then a round trip: the
   broker must push back instead of buffering it all. */
static void *stream_big(void *arg)
{
  struct streamer *s = arg;
  uint8_t *buf = calloc(1, TR_CHUNK_MAX);
  int rc = 0;

  for (int i = 0; i < 48 && rc == 0 && buf; i++)
    rc = tb_h2d_async(s->k, s->dev, s->ptr, buf, TR_CHUNK_MAX);
  s->status = rc < 0 ? rc : tb_nop(s->k, s->dev, 30000);
  atomic_store(&s->done_ms, tb_now_ms());
  free(buf);
  return NULL;
}

/* Bytes the broker holds for the agents on behalf of our sessions. */
static long long my_queued(void)
{
  char *doc = tb_stats();
  const char *p, *end;
  long long sum = 0;

  if (!doc)
    return -1;
  p = strstr(doc, "\"sessions\":[");
  end = p ? strstr(p, "],\"machines\"") : NULL;
  while (p && end && (p = strchr(p + 1, '{')) && p < end) {
    const char *q = strchr(p, '}');

    if (tb_json_int(p, q, "pid") == (long long)getpid())
      sum += tb_json_int(p, q, "queued_to_agent");
    p = q;
  }
  free(doc);
  return sum;
}

static long rss_anon_kb(pid_t pid)
{
  char path[64], line[256];
  long kb = -1;
  FILE *f;

  snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
  f = fopen(path, "r");
  if (!f)
    return -1;
  while (fgets(line, sizeof(line), f))
    if (sscanf(line, "RssAnon: %ld kB", &kb) == 1)
      break;
  fclose(f);
  return kb;
}

void test_agent_killed(void **state)
{
  struct tb_client x, y, z;
  struct streamer s = {0};
  pthread_t t;
  uint64_t ptr = 0, p2;
  uint8_t args[8];
  pid_t victim;
  long rss0, rss1, t_kill, st;
  long long queued;
  struct tr_reply r;
  uint64_t id = tb_new_id(), y_id = 0;
  uint32_t y_status = 0;
  uint16_t y_flags = 0;
  int rc, still_pushed_back;

  assert_int_equal(tb_client_open(&x), 0);
  assert_int_equal(tb_client_open(&y), 0);
  assert_int_equal(tb_dev_malloc(&x, 1, 1u << 20, &ptr), 0);
  assert_int_equal(tb_nop(&y, 1, 10000), 0);
  assert_int_equal(tb_nop(&x, 0, 10000), 0);
  victim = tb_agent_pid(1);
  assert_true(victim > 0);
  rss0 = rss_anon_kb(tb_broker_pid);

  assert_int_equal(kill(victim, SIGSTOP), 0);
  /* y: a request that is forwarded and stays outstanding. */
  assert_int_equal(tr_client_send(&y.c, &y.l, 1, TR_OP_NOP, TR_F_WANT_REPLY,
                                  id, NULL, 0, NULL, 0), 0);
  /* x: a flood that must stall in the client, not in the broker. */
  s.k = &x;
  s.dev = 1;
  s.ptr = ptr;
  assert_int_equal(pthread_create(&t, NULL, stream_big, &s), 0);
  tb_sleep_ms(1500);
  rss1 = rss_anon_kb(tb_broker_pid);
  queued = my_queued();
  still_pushed_back = atomic_load(&s.done_ms) == 0;
  fprintf(stderr, "broker RssAnon %ld kB -> %ld kB, %lld bytes queued, with "
                  "48 MiB pending\n", rss0, rss1, queued);

  t_kill = tb_now_ms();
  assert_int_equal(kill(victim, SIGKILL), 0);
  /* Nothing below may return before the streamer is joined. */
  rc = tr_client_recv(&y.c, &y.l, &r, 10000);
  if (rc == 0) {
    y_id = r.h.request_id;
    y_status = r.h.status;
    y_flags = r.h.flags;
    tr_client_recv_done(&y.c, &y.l, &r);
  }
  pthread_join(t, NULL);
  fprintf(stderr, "MACHINE_LOST after %ld ms\n", s.done_ms - t_kill);
  assert_true(still_pushed_back);
  assert_true(queued >= 0 && queued <= 6 * 1024 * 1024);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  /* Sanitizers' shadow memory makes RSS meaningless; the count above is
     the broker's own, this is the kernel's. */
  assert_true(rss1 - rss0 < 24 * 1024);
#endif
  assert_int_equal(rc, 0);
  assert_int_equal(y_id, id);
  assert_int_equal(y_status, TR_ST_MACHINE_LOST);
  assert_int_equal(y_flags & TR_F_REPLY, TR_F_REPLY);
  assert_int_equal(s.status, TR_ST_MACHINE_LOST);
  assert_true(s.done_ms - t_kill < 10000);

  /* The broken session stays broken; the other device is fine. */
  assert_int_equal(tb_nop(&x, 1, 10000), TR_ST_MACHINE_LOST);
  assert_int_equal(tb_nop(&x, 0, 10000), 0);

  /* The machine comes back with a new agent, and new sessions work. */
  assert_int_equal(tb_wait_machine_ready(1, victim, 30000), 0);
  assert_int_equal(tb_client_open(&z), 0);
  assert_int_equal(z.c.ndev, 2);
  assert_int_equal(tb_dev_malloc(&z, 1, 4096, &p2), 0);
  tr_put_u64(args, p2);
  st = tb_rpc(&z, 1, TR_OP_FREE, args, 8, NULL, 0, NULL, 0, NULL, 10000);
  assert_int_equal(st, 0);
  tb_client_close(&x);
  tb_client_close(&y);
  tb_client_close(&z);
  assert_true(tb_broker_alive());
}

void test_agent_silent(void **state)
{
  struct tb_client k;
  pid_t victim;
  long t0, st, took;

  assert_int_equal(tb_wait_machine_ready(0, -1, 30000), 0);
  assert_int_equal(tb_client_open(&k), 0);
  assert_int_equal(tb_nop(&k, 0, 10000), 0);
  victim = tb_agent_pid(0);
  assert_true(victim > 0);
  assert_int_equal(kill(victim, SIGSTOP), 0);
  t0 = tb_now_ms();
  /* PING every 2 s of silence, 5 s to answer: lost within ~7 s. */
  st = tb_nop(&k, 0, 20000);
  took = tb_now_ms() - t0;
  kill(victim, SIGCONT);
  fprintf(stderr, "silent agent: status 0x%lx after %ld ms\n", st, took);
  assert_int_equal(st, TR_ST_MACHINE_LOST);
  assert_true(took < 12000);
  assert_int_equal(tb_wait_machine_ready(0, victim, 30000), 0);
  tb_client_close(&k);
  assert_true(tb_broker_alive());
}

/* Machine idx's counter key in the control API, or -1. */
static long long machine_count(int idx, const char *key)
{
  char *doc = tb_stats();
  const char *a, *b;
  long long v = -1;

  if (doc && tb_machine_obj(doc, idx, &a, &b) == 0)
    v = tb_json_int(a, b, key);
  free(doc);
  return v;
}

/*
 * A lane's stream opens on the machine's express connection and moves to
 * the main one before its first bulk record, through a fence the broker
 * sends (PROTOCOL.md §3).  When the session breaks while the fence is
 * out, the program gets MACHINE_LOST for its own request, the copy, and
 * nothing for the fence, which it never sent.
 */
void test_move_broken(void **state)
{
  struct tb_client w;
  struct tr_reply r;
  uint8_t args[16];
  uint64_t ptr = 0, id = tb_new_id();
  long long lanes, moves;
  pid_t victim;
  int rc;

  assert_int_equal(tb_wait_machine_ready(1, -1, 30000), 0);
  lanes = machine_count(1, "express_lanes");
  moves = machine_count(1, "lane_moves");
  assert_int_equal(tb_client_open(&w), 0);
  assert_int_equal(tb_dev_malloc(&w, 1, 1u << 20, &ptr), 0);
  assert_int_equal(machine_count(1, "express_lanes"), lanes + 1);
  victim = tb_agent_pid(1);
  assert_true(victim > 0);
  assert_int_equal(kill(victim, SIGSTOP), 0);
  tr_put_u64(args, ptr);
  tr_put_u64(args + 8, 1u << 20);
  assert_int_equal(tr_client_send(&w.c, &w.l, 1, TR_OP_MEMCPY_D2H,
                                  TR_F_WANT_REPLY, id, args, 16, NULL, 0), 0);
  tb_sleep_ms(300); /* the fence goes out; the copy waits for its answer */
  assert_int_equal(machine_count(1, "lane_moves"), moves);
  assert_int_equal(kill(victim, SIGKILL), 0);
  rc = tr_client_recv(&w.c, &w.l, &r, 10000);
  assert_int_equal(rc, 0);
  assert_int_equal(r.h.request_id, id);
  assert_int_equal(r.h.status, TR_ST_MACHINE_LOST);
  tr_client_recv_done(&w.c, &w.l, &r);
  assert_int_equal(tb_wait_machine_ready(1, victim, 30000), 0);
  tb_client_close(&w);
  assert_true(tb_broker_alive());
}

/*
 * A lane closed right after the record that moves it (a thread that
 * queues a copy and exits): the copy runs and the client's session on the
 * machine stays usable for its other lanes.  (The agent ends the old
 * stream when it takes the lane over; the broker took that for the agent
 * giving up once the new stream had gone with the lane.)
 */
void test_move_close(void **state)
{
  const uint32_t len = 20000; /* bulk (>= 16 KiB), still inline */
  struct tb_client w;
  struct tr_lane l2;
  struct tr_reply r;
  uint8_t a[16], *src = malloc(len), *dst = malloc(len);
  uint64_t ptr = 0, id = tb_new_id();
  long long moves;

  (void)state;
  assert_non_null(src);
  assert_non_null(dst);
  for (uint32_t i = 0; i < len; i++)
    src[i] = (uint8_t)(i * 7 + 3);
  assert_int_equal(tb_wait_machine_ready(1, -1, 30000), 0);
  moves = machine_count(1, "lane_moves");
  assert_int_equal(tb_client_open(&w), 0);
  assert_int_equal(tb_dev_malloc(&w, 1, len, &ptr), 0);
  assert_int_equal(tr_client_lane_open(&w.c, &l2, 0), 0);
  /* l2's stream opens on the express connection with a small call. */
  assert_int_equal(tr_client_send(&w.c, &l2, 1, TR_OP_NOP, TR_F_WANT_REPLY,
                                  id, NULL, 0, NULL, 0), 0);
  assert_int_equal(tr_client_recv(&w.c, &l2, &r, 10000), 0);
  assert_int_equal(r.h.request_id, id);
  assert_int_equal(r.h.status, 0);
  tr_client_recv_done(&w.c, &l2, &r);
  /* A bulk copy without a reply (it moves the lane), then the close. */
  tr_put_u64(a, ptr);
  tr_put_u64(a + 8, len);
  assert_int_equal(tr_client_send(&w.c, &l2, 1, TR_OP_MEMCPY_H2D, 0,
                                  tb_new_id(), a, 16, src, len), 0);
  tr_client_lane_close(&w.c, &l2);
  tb_sleep_ms(500);
  assert_int_equal(machine_count(1, "lane_moves"), moves + 1);
  assert_int_equal(tb_nop(&w, 1, 10000), 0);
  assert_true(tb_d2h_until(&w, 1, ptr, src, dst, len));
  assert_int_equal(tb_dev_free(&w, 1, ptr), 0);
  tb_client_close(&w);
  free(src);
  free(dst);
}

/*
 * A client that does not take its replies costs the machine's other
 * clients nothing: the broker's window for each stream (BRK_STREAM_WINDOW)
 * bounds what it holds for that stream, so the shared connection is never
 * paused (the 3 s stall timeout never fires), and the replies are all
 * there, intact, when the client reads them at last.
 */
void test_stalled_client(void **state)
{
  const uint64_t len = 48u << 20;
  struct tb_client a, b;
  uint8_t args[16];
  uint64_t ptr = 0, id = tb_new_id(), have = 0;
  uint32_t *buf = malloc(1u << 20);
  long t0, st, took, worst = 0;
  struct tr_reply r;

  assert_non_null(buf);
  assert_int_equal(tb_wait_machine_ready(0, -1, 30000), 0);
  assert_int_equal(tb_client_open(&a), 0);
  assert_int_equal(tb_client_open(&b), 0);
  assert_int_equal(tb_dev_malloc(&a, 0, len, &ptr), 0);
  for (uint64_t off = 0; off < len; off += 1u << 20) {
    for (uint32_t i = 0; i < (1u << 18); i++)
      buf[i] = (uint32_t)(off / 4 + i) * 2654435761u;
    assert_int_equal(tb_h2d_async(&a, 0, ptr + off, buf, 1u << 20), 0);
  }
  assert_int_equal(tb_nop(&a, 0, 30000), 0);
  assert_int_equal(tb_nop(&b, 0, 10000), 0);
  /* 48 MiB of D2H that a does not read yet: the download area takes 8. */
  tr_put_u64(args, ptr);
  tr_put_u64(args + 8, len);
  assert_int_equal(tr_client_send(&a.c, &a.l, 0, TR_OP_MEMCPY_D2H,
                                  TR_F_WANT_REPLY, id, args, 16, NULL, 0),
                   0);
  /* Past the stall timeout, b's calls go through without waiting. */
  for (int i = 0; i < 40; i++) {
    tb_sleep_ms(100);
    t0 = tb_now_ms();
    st = tb_nop(&b, 0, 20000);
    took = tb_now_ms() - t0;
    assert_int_equal(st, 0);
    if (took > worst)
      worst = took;
  }
  fprintf(stderr, "other client's slowest round trip: %ld ms\n", worst);
  assert_true(worst < 2000);
  assert_false(tb_log_contains("has not taken its replies"));
  /* Now a reads all of it, in order and intact. */
  for (;;) {
    assert_int_equal(tr_client_recv(&a.c, &a.l, &r, 30000), 0);
    assert_true(r.h.request_id == id);
    assert_int_equal(r.h.status, 0);
    assert_true(have + r.len <= len && r.len % 4 == 0);
    for (uint64_t i = 0; i < r.len / 4; i += 997) {
      uint32_t w;

      memcpy(&w, r.payload + 4 * i, 4);
      assert_true(w == (uint32_t)(have / 4 + i) * 2654435761u);
    }
    have += r.len;
    int more = r.h.flags & TR_F_MORE;
    tr_client_recv_done(&a.c, &a.l, &r);
    if (!more)
      break;
  }
  assert_true(have == len);
  free(buf);
  tb_client_close(&a);
  tb_client_close(&b);
  assert_true(tb_broker_alive());
}
