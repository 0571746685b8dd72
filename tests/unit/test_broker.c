/*
 * test_broker.c: tremote-broker end to end, as a client sees it.
 *
 *   test_broker BROKER AGENT
 *
 * Starts the real broker with two LOCAL machines (and thus two real
 * agents on the emulated device), waits on --ready-fd, and talks to it
 * like a shim would, through tools/common/client.h: HELLO, lanes, memory
 * calls with inline and shared-memory payloads, errors made by the broker
 * itself, the control socket, a client that corrupts its own lane while a
 * second one keeps working, an agent that is killed or stops answering.
 * At the end the broker must still be alive and shut down cleanly.
 *
 * This file holds the broker process, the helpers of test_broker.h and
 * the test table; the failure-path tests (the corrupting client, agents
 * killed or silent, a broken lane move, a stalled client) are in
 * test_broker_faults.c.
 *
 * Exits 77 (skipped) when the agent binary does not exist yet.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "client.h"
#include "ring.h"
#include "test_broker.h"
#include "tremote/proto.h"

/* The windows the broker hands out (see broker/brk.h, BRK_VA_BASE). */
#define VA_BASE TR_VA_BUILD_BASE
#define VA_WINDOW TR_VA_BUILD_WINDOW

#define ST_INVALID_VALUE 1u
#define ST_INVALID_DEVICE 101u

static const char *broker_bin, *agent_bin;
static char tmpdir[64], ctl_path[128], log_path[128];
char tb_sock_path[128];
pid_t tb_broker_pid;
static uint64_t next_id = 1000;
static pthread_mutex_t id_lock = PTHREAD_MUTEX_INITIALIZER;

uint64_t tb_new_id(void)
{
  uint64_t id;

  pthread_mutex_lock(&id_lock);
  id = ++next_id;
  pthread_mutex_unlock(&id_lock);
  return id;
}

long tb_now_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

void tb_sleep_ms(long ms)
{
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

  while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
    ;
}

/* ---- the broker process ---------------------------------------------------- */

/*
 * Start a broker on sockets in dir with the given extra arguments (NULL
 * terminated), stderr into dir/broker.log.  With wait_ready, returns once
 * it wrote "ready" on --ready-fd.  Returns its pid or -1.
 */
static pid_t spawn_broker(const char *dir, int wait_ready, ...)
{
  char sock[128], ctl[128], log[128], fdarg[16], buf[16];
  const char *argv[40];
  int rp[2], n = 0;
  struct pollfd p;
  va_list ap;
  pid_t pid;
  ssize_t got = -1;

  snprintf(sock, sizeof(sock), "%s/broker.sock", dir);
  snprintf(ctl, sizeof(ctl), "%s/control.sock", dir);
  snprintf(log, sizeof(log), "%s/broker.log", dir);
  if (pipe(rp) < 0)
    return -1;
  snprintf(fdarg, sizeof(fdarg), "%d", rp[1]);
  argv[n++] = broker_bin;
  argv[n++] = "--socket";
  argv[n++] = sock;
  argv[n++] = "--control";
  argv[n++] = ctl;
  argv[n++] = "--ready-fd";
  argv[n++] = fdarg;
  argv[n++] = "--log-level";
  argv[n++] = "debug";
  va_start(ap, wait_ready);
  while (n < 38 && (argv[n] = va_arg(ap, const char *)) != NULL)
    n++;
  va_end(ap);
  argv[n] = NULL;
  pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    if (fd >= 0)
      dup2(fd, 2);
    close(rp[0]);
    execv(broker_bin, (char *const *)argv);
    _exit(127);
  }
  close(rp[1]);
  if (!wait_ready) {
    close(rp[0]);
    return pid;
  }
  /* Sanitizer builds start slowly; the agents too. */
  p.fd = rp[0];
  p.events = POLLIN;
  if (poll(&p, 1, 60000) == 1)
    got = read(rp[0], buf, sizeof(buf) - 1);
  close(rp[0]);
  if (got != 6 || memcmp(buf, "ready\n", 6) != 0) {
    fprintf(stderr, "broker did not become ready (read %zd bytes)\n", got);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
  }
  return pid;
}

static int start_broker(void)
{
  snprintf(tmpdir, sizeof(tmpdir), "/tmp/tr-brk-XXXXXX");
  if (!mkdtemp(tmpdir))
    return -1;
  snprintf(tb_sock_path, sizeof(tb_sock_path), "%s/broker.sock", tmpdir);
  snprintf(ctl_path, sizeof(ctl_path), "%s/control.sock", tmpdir);
  snprintf(log_path, sizeof(log_path), "%s/broker.log", tmpdir);
  tb_broker_pid = spawn_broker(tmpdir, 1, "--local", "2", "--agent", agent_bin,
                               "--backend", "emu", "--emu-mem", "1G",
                               "--ping-interval", "2", "--ping-timeout", "5",
                               "--stall-timeout", "3", (char *)NULL);
  return tb_broker_pid > 0 ? 0 : -1;
}

void tb_dump_log(void)
{
  char cmd[256];

  snprintf(cmd, sizeof(cmd), "tail -n 60 %s >&2", log_path);
  (void)!system(cmd);
}

int tb_log_contains(const char *needle)
{
  FILE *f = fopen(log_path, "r");
  char line[2048];
  int found = 0;

  if (!f)
    return 0;
  while (!found && fgets(line, sizeof(line), f))
    found = strstr(line, needle) != NULL;
  fclose(f);
  return found;
}

/* Did the broker (not an agent: they share its stderr) report a sanitizer
   finding?  ASan and LSan write "==PID==", TSan "(pid=PID)", UBSan names
   the source file. */
static int broker_sanitizer_report(pid_t pid)
{
  FILE *f = fopen(log_path, "r");
  char line[2048], asan[32], tsan[32];
  int found = 0;

  if (!f)
    return 0;
  snprintf(asan, sizeof(asan), "==%d==", (int)pid);
  snprintf(tsan, sizeof(tsan), "(pid=%d)", (int)pid);
  while (!found && fgets(line, sizeof(line), f))
    found = strstr(line, asan) || strstr(line, tsan) ||
            (strstr(line, "runtime error") && strstr(line, "broker/brk_"));
  fclose(f);
  if (found)
    fprintf(stderr, "sanitizer report in the broker log: %s", line);
  return found;
}

int tb_broker_alive(void)
{
  return tb_broker_pid > 0 && waitpid(tb_broker_pid, NULL, WNOHANG) == 0;
}

/* ---- control socket ------------------------------------------------------------ */

/* One request line; returns the reply (malloc'd) or NULL. */
static char *ctl_call(const char *req)
{
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  size_t cap = 1 << 16, len = 0;
  char *out = malloc(cap);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ssize_t n;

  strcpy(sa.sun_path, ctl_path);
  if (fd < 0 || !out || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
    goto fail;
  if (write(fd, req, strlen(req)) != (ssize_t)strlen(req))
    goto fail;
  while ((n = read(fd, out + len, cap - 1 - len)) > 0)
    len += (size_t)n;
  close(fd);
  out[len] = 0;
  return out;
fail:
  if (fd >= 0)
    close(fd);
  free(out);
  return NULL;
}

char *tb_stats(void)
{
  return ctl_call("{\"version\":1,\"op\":\"stats\"}\n");
}

/* The integer after "key": inside [from, to). */
long long tb_json_int(const char *from, const char *to, const char *key)
{
  char pat[64];
  const char *p;

  snprintf(pat, sizeof(pat), "\"%s\":", key);
  p = strstr(from, pat);
  if (!p || p >= to)
    return -1;
  return strtoll(p + strlen(pat), NULL, 10);
}

/* The machine object with "index":i: [*from, *to). */
int tb_machine_obj(const char *doc, int idx, const char **from,
                   const char **to)
{
  char pat[32];
  const char *p = strstr(doc, "\"machines\":[");

  snprintf(pat, sizeof(pat), "{\"index\":%d,", idx);
  if (!p || !(p = strstr(p, pat)))
    return -1;
  *from = p;
  *to = strchr(p, '}');
  return *to ? 0 : -1;
}

pid_t tb_agent_pid(int idx)
{
  char *doc = tb_stats();
  const char *a, *b;
  pid_t pid = -1;

  if (doc && tb_machine_obj(doc, idx, &a, &b) == 0)
    pid = (pid_t)tb_json_int(a, b, "pid");
  free(doc);
  return pid;
}

static int machine_ready(int idx)
{
  char *doc = tb_stats();
  const char *a, *b;
  int ready = 0;

  if (doc && tb_machine_obj(doc, idx, &a, &b) == 0) {
    const char *s = strstr(a, "\"state\":\"ready\"");
    ready = s && s < b;
  }
  free(doc);
  return ready;
}

int tb_wait_machine_ready(int idx, pid_t not_pid, long ms)
{
  long deadline = tb_now_ms() + ms;

  while (tb_now_ms() < deadline) {
    if (machine_ready(idx) && tb_agent_pid(idx) != not_pid)
      return 0;
    tb_sleep_ms(100);
  }
  return -1;
}

/* Number of sessions whose "pid" is ours, and the sum of their
   round_trips. */
int tb_my_sessions(long long *round_trips)
{
  char *doc = tb_stats();
  const char *p, *end;
  int n = 0;

  *round_trips = 0;
  if (!doc)
    return -1;
  p = strstr(doc, "\"sessions\":[");
  end = p ? strstr(p, "],\"machines\"") : NULL;
  while (p && end && (p = strchr(p + 1, '{')) && p < end) {
    const char *q = strchr(p, '}');

    if (tb_json_int(p, q, "pid") == (long long)getpid()) {
      n++;
      *round_trips += tb_json_int(p, q, "round_trips");
    }
    p = q;
  }
  free(doc);
  return n;
}

/* ---- requests -------------------------------------------------------------------- */

/* A client offering caps in its hello (TR_CLIENT_CAPS: a current shim). */
static int client_open_caps(struct tb_client *k, uint64_t caps)
{
  const char *why = NULL;
  int rc = tr_client_connect_caps(&k->c, tb_sock_path, 60000, caps, &why);

  if (rc < 0) {
    fprintf(stderr, "connect: %s (%s)\n", strerror(-rc), why ? why : "");
    return rc;
  }
  rc = tr_client_lane_open(&k->c, &k->l, 0);
  if (rc < 0) {
    fprintf(stderr, "lane open: %s\n", strerror(-rc));
    tr_client_close(&k->c);
  }
  return rc;
}

int tb_client_open(struct tb_client *k)
{
  return client_open_caps(k, TR_CLIENT_CAPS);
}

void tb_client_close(struct tb_client *k)
{
  tr_client_lane_close(&k->c, &k->l);
  tr_client_close(&k->c);
}

/* The flags of the final reply tb_rpc() returned last. */
static uint16_t rpc_flags;

/*
 * A round trip: send with WANT_REPLY, gather reply records until the
 * final one.  The logical payloads are concatenated into out (cap bytes;
 * *got their total).  Returns the final status, or a negative errno.
 */
long tb_rpc(struct tb_client *k, uint16_t dev, uint16_t op, const void *args,
            uint32_t alen, const void *data, uint32_t dlen, void *out,
            size_t cap, size_t *got, int timeout_ms)
{
  uint64_t id = tb_new_id();
  struct tr_reply r;
  size_t have = 0;
  long deadline = tb_now_ms() + timeout_ms;
  int rc;

  rc = tr_client_send(&k->c, &k->l, dev, op, TR_F_WANT_REPLY, id, args, alen,
                      data, dlen);
  if (rc < 0)
    return rc;
  for (;;) {
    long left = deadline - tb_now_ms();

    rc = tr_client_recv(&k->c, &k->l, &r, left > 0 ? (int)left : 0);
    if (rc < 0)
      return rc;
    if (r.h.request_id != id) {
      tr_client_recv_done(&k->c, &k->l, &r);
      continue; /* an answer to something else (corruption tests) */
    }
    if (out && have + r.len <= cap)
      memcpy((uint8_t *)out + have, r.payload, r.len);
    have += r.len;
    if (!(r.h.flags & TR_F_MORE)) {
      uint32_t st = r.h.status;

      rpc_flags = r.h.flags;
      if (r.h.device != dev || !(r.h.flags & TR_F_REPLY)) {
        tr_client_recv_done(&k->c, &k->l, &r);
        return -EPROTO;
      }
      tr_client_recv_done(&k->c, &k->l, &r);
      if (got)
        *got = have;
      return st;
    }
    tr_client_recv_done(&k->c, &k->l, &r);
  }
}

long tb_dev_malloc(struct tb_client *k, uint16_t dev, uint64_t size,
                   uint64_t *ptr)
{
  uint8_t a[8], o[8];
  size_t got = 0;
  long st;

  tr_put_u64(a, size);
  st = tb_rpc(k, dev, TR_OP_MALLOC, a, 8, NULL, 0, o, 8, &got, 30000);
  if (st == 0 && got != 8)
    return -EPROTO;
  if (st == 0)
    *ptr = tr_get_u64(o);
  return st;
}

long tb_dev_free(struct tb_client *k, uint16_t dev, uint64_t ptr)
{
  uint8_t a[8];

  tr_put_u64(a, ptr);
  return tb_rpc(k, dev, TR_OP_FREE, a, 8, NULL, 0, NULL, 0, NULL, 30000);
}

/* H2D without waiting (the normal asynchronous path). */
int tb_h2d_async(struct tb_client *k, uint16_t dev, uint64_t dst,
                 const void *data, uint32_t len)
{
  uint8_t a[16];

  tr_put_u64(a, dst);
  tr_put_u64(a + 8, len);
  return tr_client_send(&k->c, &k->l, dev, TR_OP_MEMCPY_H2D, 0, tb_new_id(), a,
                        16, data, len);
}

long tb_h2d_sync(struct tb_client *k, uint16_t dev, uint64_t dst,
                 const void *data, uint32_t len)
{
  uint8_t a[16];

  tr_put_u64(a, dst);
  tr_put_u64(a + 8, len);
  return tb_rpc(k, dev, TR_OP_MEMCPY_H2D, a, 16, data, len, NULL, 0, NULL,
                30000);
}

long tb_d2h(struct tb_client *k, uint16_t dev, uint64_t src, void *out,
            uint64_t len)
{
  uint8_t a[16];
  size_t got = 0;
  long st;

  tr_put_u64(a, src);
  tr_put_u64(a + 8, len);
  st = tb_rpc(k, dev, TR_OP_MEMCPY_D2H, a, 16, NULL, 0, out, len, &got, 60000);
  if (st == 0 && got != len)
    return -EPROTO;
  return st;
}

int tb_d2h_until(struct tb_client *k, uint16_t dev, uint64_t src,
                 const void *want, void *out, uint64_t len)
{
  long t0 = tb_now_ms();

  for (;;) {
    assert_int_equal(tb_d2h(k, dev, src, out, len), 0);
    if (memcmp(want, out, len) == 0)
      return 1;
    if (tb_now_ms() - t0 >= 10000)
      return 0;
    tb_sleep_ms(20);
  }
}

long tb_nop(struct tb_client *k, uint16_t dev, int timeout_ms)
{
  return tb_rpc(k, dev, TR_OP_NOP, NULL, 0, NULL, 0, NULL, 0, NULL, timeout_ms);
}

/* ---- tests --------------------------------------------------------------------------- */

static void test_hello(void **state)
{
  struct tb_client k;

  assert_int_equal(tb_client_open(&k), 0);
  assert_int_equal(k.c.ndev, 2);
  for (unsigned i = 0; i < 2; i++) {
    assert_int_equal(k.c.dev[i].va_base, VA_BASE + i * VA_WINDOW);
    assert_int_equal(k.c.dev[i].va_size, VA_WINDOW);
    assert_int_equal(k.c.dev[i].machine_index, i);
    assert_true(k.c.dev[i].name[0] != 0);
    assert_true(k.c.dev[i].total_mem > 0);
  }
  assert_int_not_equal(k.c.dev[0].va_base, k.c.dev[1].va_base);
  tb_client_close(&k);
}

/* TREMOTE_VISIBLE_DEVICES picks and orders the machines a client sees;
   HELLO options that overrun the payload get the client dropped. */
static void test_hello_visible(void **state)
{
  struct tb_client k;
  uint8_t pkt[TR_HDR_SIZE + TR_HELLO_SIZE + 8];
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  struct tr_hello h = {TR_PROTO_VERSION_MIN, TR_PROTO_VERSION_MAX,
                       TR_ROLE_SHIM, 0, (uint32_t)getpid(), 8};
  struct tr_hdr hd;
  struct pollfd pfd;
  int fd;

  (void)state;
  setenv("TREMOTE_VISIBLE_DEVICES", "1,0", 1);
  assert_int_equal(tb_client_open(&k), 0);
  assert_int_equal(k.c.ndev, 2);
  assert_int_equal(k.c.dev[0].machine_index, 1);
  assert_int_equal(k.c.dev[1].machine_index, 0);
  assert_int_equal(tb_nop(&k, 0, 10000), 0); /* ordinal 0 is machine 1 */
  tb_client_close(&k);
  setenv("TREMOTE_VISIBLE_DEVICES", "local-1,5,0", 1);
  assert_int_equal(tb_client_open(&k), 0);
  assert_int_equal(k.c.ndev, 1);
  assert_int_equal(k.c.dev[0].machine_index, 1);
  tb_client_close(&k);
  unsetenv("TREMOTE_VISIBLE_DEVICES");

  /* An option whose length runs past the HELLO: dropped, not answered. */
  tr_hdr_init(&hd, TR_OP_HELLO, TR_F_WANT_REPLY, 1, TR_HELLO_SIZE + 8);
  tr_hdr_pack(&hd, pkt);
  tr_hello_pack(&h, pkt + TR_HDR_SIZE);
  tr_put_u16(pkt + TR_HDR_SIZE + TR_HELLO_SIZE, TR_HELLO_VISIBLE);
  tr_put_u16(pkt + TR_HDR_SIZE + TR_HELLO_SIZE + 2, 0);
  tr_put_u32(pkt + TR_HDR_SIZE + TR_HELLO_SIZE + 4, 100);
  fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  assert_true(strlen(tb_sock_path) < sizeof(sa.sun_path));
  memcpy(sa.sun_path, tb_sock_path, strlen(tb_sock_path) + 1);
  assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  assert_int_equal(send(fd, pkt, sizeof(pkt), 0), (ssize_t)sizeof(pkt));
  pfd = (struct pollfd){.fd = fd, .events = POLLIN};
  assert_int_equal(poll(&pfd, 1, 10000), 1);
  assert_int_equal(recv(fd, pkt, sizeof(pkt), 0), 0); /* closed */
  close(fd);
  assert_true(tb_log_contains("malformed HELLO options"));
  assert_true(tb_broker_alive());
}

static void test_memory(void **state)
{
  const size_t big = 4u << 20;
  uint8_t *src = malloc(big), *dst = malloc(big);
  uint64_t ptr = 0, ptr1 = 0;
  struct tb_client k;

  assert_non_null(src);
  assert_non_null(dst);
  for (size_t i = 0; i < big; i++)
    src[i] = (uint8_t)(i * 131 + (i >> 13));
  assert_int_equal(tb_client_open(&k), 0);

  /* Pointers land in their device's window. */
  assert_int_equal(tb_dev_malloc(&k, 0, big, &ptr), 0);
  assert_true(ptr >= VA_BASE && ptr < VA_BASE + VA_WINDOW);
  assert_int_equal(tb_dev_malloc(&k, 1, 4096, &ptr1), 0);
  assert_true(ptr1 >= VA_BASE + VA_WINDOW && ptr1 < VA_BASE + 2 * VA_WINDOW);

  /* Inline H2D (small), then via the upload area (SHMREF), 4 MiB in 1 MiB
     records, without waiting, then one D2H of 4 MiB that comes back
     through the download area in several records. */
  assert_int_equal(tb_h2d_sync(&k, 0, ptr, src, 1000), 0);
  for (size_t off = 0; off < big; off += TR_CHUNK_MAX)
    assert_int_equal(tb_h2d_async(&k, 0, ptr + off, src + off, TR_CHUNK_MAX),
                     0);
  memset(dst, 0, big);
  assert_int_equal(tb_d2h(&k, 0, ptr, dst, big), 0);
  assert_memory_equal(src, dst, big);

  /* A small D2H comes back inline. */
  memset(dst, 0, 100);
  assert_int_equal(tb_d2h(&k, 0, ptr + 12345, dst, 100), 0);
  assert_memory_equal(src + 12345, dst, 100);

  /* Errors of the call itself come back as CUDA errors. */
  assert_int_equal(tb_dev_free(&k, 0, VA_BASE + 0x1234567), ST_INVALID_VALUE);
  /* An asynchronous copy's error comes with the next reply, flagged as
     an earlier record's (TR_F_DEFERRED), with that reply's own bytes; a
     client that did not offer TR_CAP_DEFERRED (an older shim, which
     would refuse the flag) gets the error unflagged. */
  for (int old = 0; old < 2; old++) {
    struct tb_client o;
    struct tb_client *c = old ? &o : &k;
    uint64_t q = ptr;

    if (old) {
      assert_int_equal(client_open_caps(&o, TR_CLIENT_CAPS &
                                                ~(uint64_t)TR_CAP_DEFERRED),
                       0);
      assert_int_equal(tb_dev_malloc(&o, 0, 4096, &q), 0);
      assert_int_equal(tb_h2d_sync(&o, 0, q, src, 8), 0);
    }
    assert_int_equal(tb_h2d_async(c, 0, VA_BASE + VA_WINDOW - 64, src, 8), 0);
    memset(dst, 0, 8);
    assert_int_equal(tb_d2h(c, 0, q, dst, 8), ST_INVALID_VALUE);
    assert_int_equal(rpc_flags & TR_F_DEFERRED, old ? 0 : TR_F_DEFERRED);
    if (!old)
      assert_memory_equal(dst, src, 8);
    assert_int_equal(tb_nop(c, 0, 10000), 0); /* reported once */
    if (old)
      tb_client_close(&o);
  }
  /* A device the client does not have: the broker answers. */
  assert_int_equal(tb_nop(&k, 7, 10000), ST_INVALID_DEVICE);
  assert_int_equal(tb_dev_malloc(&k, 7, 16, &ptr1), ST_INVALID_DEVICE);
  assert_int_equal(tb_dev_free(&k, 0, ptr), 0);
  tb_client_close(&k);
  free(src);
  free(dst);
}

/* Records a thread queued just before it closed its lane still run.  The
   record is committed without ringing the doorbell, so only LANE_CLOSE
   makes the broker look at the ring. */
static void test_lane_close_drains(void **state)
{
  const uint32_t len = 20000; /* inline */
  uint8_t *src = malloc(len), *dst = malloc(len), *rec;
  struct tb_client k;
  struct tr_lane l2;
  struct tr_hdr h;
  uint64_t ptr = 0;

  assert_non_null(src);
  assert_non_null(dst);
  for (uint32_t i = 0; i < len; i++)
    src[i] = (uint8_t)(i * 13 + 5);
  assert_int_equal(tb_client_open(&k), 0);
  assert_int_equal(tb_dev_malloc(&k, 0, len, &ptr), 0);
  assert_int_equal(tr_client_lane_open(&k.c, &l2, 0), 0);
  rec = tr_ring_reserve(&l2.req, 16 + len);
  assert_non_null(rec);
  tr_hdr_init(&h, TR_OP_MEMCPY_H2D, 0, tb_new_id(), 16 + len);
  tr_hdr_pack(&h, rec);
  tr_put_u64(rec + TR_HDR_SIZE, ptr);
  tr_put_u64(rec + TR_HDR_SIZE + 8, len);
  memcpy(rec + TR_HDR_SIZE + 16, src, len);
  tr_ring_commit(&l2.req, 16 + len);
  tb_sleep_ms(100);
  /* Not forwarded yet: nobody rang. */
  assert_int_equal(tb_d2h(&k, 0, ptr, dst, len), 0);
  assert_memory_not_equal(src, dst, len);
  tr_client_lane_close(&k.c, &l2);
  /* Lanes are ordered only across a round trip, so poll. */
  assert_true(tb_d2h_until(&k, 0, ptr, src, dst, len));
  assert_int_equal(tb_dev_free(&k, 0, ptr), 0);
  tb_client_close(&k);
  free(src);
  free(dst);
}

static void test_stats(void **state)
{
  long long rt0, rt1;
  int n0, n1;
  struct tb_client k;
  uint64_t ptr;
  char *doc;

  n0 = tb_my_sessions(&rt0);
  assert_true(n0 >= 0);
  assert_int_equal(tb_client_open(&k), 0);
  assert_int_equal(tb_nop(&k, 0, 10000), 0);
  assert_int_equal(tb_nop(&k, 1, 10000), 0);
  assert_int_equal(tb_dev_malloc(&k, 0, 256, &ptr), 0);
  assert_int_equal(tb_dev_free(&k, 0, ptr), 0);
  assert_int_equal(tb_nop(&k, 9, 10000), ST_INVALID_DEVICE); /* not forwarded */
  n1 = tb_my_sessions(&rt1);
  assert_int_equal(n1, n0 + 1);
  assert_int_equal(rt1 - rt0, 4);

  doc = tb_stats();
  assert_non_null(doc);
  assert_non_null(strstr(doc, "\"version\":1"));
  assert_non_null(strstr(doc, "\"name\":\"local-0\""));
  assert_non_null(strstr(doc, "\"name\":\"local-1\""));
  assert_non_null(strstr(doc, "\"provider\":\"local\""));
  assert_non_null(strstr(doc, "\"address\":\"127.0.0.1:"));
  assert_non_null(strstr(doc, "\"lanes\":1"));
  free(doc);

  doc = ctl_call("{\"version\":1,\"op\":\"frobnicate\"}\n");
  assert_non_null(doc);
  assert_string_equal(doc, "{\"version\":1,\"error\":\"unknown op 'frobnicate' "
                           "(valid: stats, machines, sessions, broker, add, remove, "
                           "reload)\"}\n");
  free(doc);
  doc = ctl_call("not json\n");
  assert_non_null(doc);
  assert_non_null(strstr(doc, "\"error\":\"bad request"));
  free(doc);

  tb_client_close(&k);
  /* The session is gone once the client is (the broker notices the
     hang-up asynchronously). */
  for (int i = 0; i < 100 && tb_my_sessions(&rt1) != n0; i++)
    tb_sleep_ms(50);
  assert_int_equal(tb_my_sessions(&rt1), n0);
}

/* A memfd of len bytes with seals, mapped at *map (the region's pages;
   NULL when sealed against writing). */
static int region_memfd(size_t len, int seals, uint8_t **map)
{
  int fd = memfd_create("test-region", MFD_CLOEXEC | MFD_ALLOW_SEALING);

  assert_true(fd >= 0);
  assert_int_equal(ftruncate(fd, (off_t)len), 0);
  *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  assert_true(*map != MAP_FAILED);
  if (seals & F_SEAL_WRITE) { /* no writable mapping may exist then */
    munmap(*map, len);
    *map = NULL;
  }
  if (seals)
    assert_int_equal(fcntl(fd, F_ADD_SEALS, seals), 0);
  return fd;
}

/* A D2H into region area at off, len bytes (TR_F_DEST), not waited for. */
static uint64_t d2h_dest_send(struct tb_client *k, uint64_t src, uint32_t area,
                              uint64_t off, uint64_t len)
{
  uint8_t a[16 + TR_SHMREF_SIZE];
  struct tr_shmref ref = {area, off, len};
  uint64_t id = tb_new_id();

  tr_put_u64(a, src);
  tr_put_u64(a + 8, len);
  tr_shmref_pack(&ref, a + 16);
  assert_int_equal(tr_client_send(&k->c, &k->l, 0, TR_OP_MEMCPY_D2H,
                                  TR_F_WANT_REPLY | TR_F_DEST, id, a,
                                  sizeof(a), NULL, 0),
                   0);
  return id;
}

/* Collect the replies of a TR_F_DEST request: all PLACED, their counts
   summing to len. */
static void d2h_dest_wait(struct tb_client *k, uint64_t id, uint64_t len)
{
  struct tr_reply r;
  uint64_t placed = 0;

  for (;;) {
    assert_int_equal(tr_client_recv(&k->c, &k->l, &r, 30000), 0);
    assert_true(r.h.request_id == id);
    assert_int_equal(r.h.status, 0);
    assert_true(r.h.flags & TR_F_PLACED);
    assert_int_equal(r.len, 8);
    placed += tr_get_u64(r.payload);
    int more = r.h.flags & TR_F_MORE;
    tr_client_recv_done(&k->c, &k->l, &r);
    if (!more)
      break;
  }
  assert_true(placed == len);
}

/*
 * Regions (page-locked host memory shared with the broker): only a memfd
 * sealed against shrinking and growing is taken; a host-to-device copy
 * from one and a device-to-host copy into one move the right bytes with
 * nothing in the areas; a region let go while a copy into it is under way
 * stays mapped in the broker until the copy is done; a reference outside a
 * region ends the client, not the broker.
 */
static void test_regions(void **state)
{
  const size_t len = 40u << 20, part = 3u << 20;
  struct tb_client a, b;
  uint8_t *map, *other, a16[16 + TR_SHMREF_SIZE];
  uint32_t id = 99, id2;
  uint64_t ptr = 0, rid;
  int fd, fd2;
  char *doc;

  (void)state;
  assert_int_equal(tb_wait_machine_ready(0, -1, 30000), 0);
  assert_int_equal(tb_client_open(&a), 0);

  /* Refused: no seals; sealed against writing; larger than the memfd. */
  fd = region_memfd(1u << 20, 0, &map);
  assert_int_equal(tr_client_region_add(&a.c, fd, 1u << 20, &id), -EINVAL);
  close(fd);
  munmap(map, 1u << 20);
  fd = region_memfd(1u << 20, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE,
                    &map);
  assert_int_equal(tr_client_region_add(&a.c, fd, 1u << 20, &id), -EINVAL);
  close(fd);
  fd = region_memfd(1u << 20, F_SEAL_SHRINK | F_SEAL_GROW, &map);
  assert_int_equal(tr_client_region_add(&a.c, fd, 2u << 20, &id), -EINVAL);
  close(fd);
  munmap(map, 1u << 20);
  assert_true(tb_log_contains("region refused"));

  /* Accepted. */
  fd = region_memfd(len, F_SEAL_SHRINK | F_SEAL_GROW, &map);
  assert_int_equal(tr_client_region_add(&a.c, fd, len, &id), 0);
  close(fd);
  fd2 = region_memfd(len, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL, &other);
  assert_int_equal(tr_client_region_add(&a.c, fd2, len, &id2), 0);
  close(fd2);
  assert_true(id2 != id);
  assert_int_equal(tb_dev_malloc(&a, 0, len, &ptr), 0);

  /* Host to device from the region, 1 MiB chunks by reference, then back
     through the download area: the bytes match. */
  for (size_t i = 0; i < len / 4; i++)
    ((uint32_t *)map)[i] = (uint32_t)i * 2654435761u;
  for (uint64_t off = 0; off < len; off += 1u << 20) {
    struct tr_shmref ref = {TR_AREA_REGION + id, off, 1u << 20};

    tr_put_u64(a16, ptr + off);
    tr_put_u64(a16 + 8, 1u << 20);
    tr_shmref_pack(&ref, a16 + 16);
    assert_int_equal(tr_client_send(&a.c, &a.l, 0, TR_OP_MEMCPY_H2D,
                                    TR_F_SHMREF, tb_new_id(), a16, sizeof(a16),
                                    NULL, 0),
                     0);
  }
  assert_int_equal(tb_nop(&a, 0, 30000), 0);
  {
    uint8_t *back = malloc(part);

    assert_non_null(back);
    assert_int_equal(tb_d2h(&a, 0, ptr + 5, back, part), 0);
    assert_memory_equal(back, map + 5, part);
    free(back);
  }

  /* Device to host into the other region, at an offset. */
  memset(other, 0, len);
  rid = d2h_dest_send(&a, ptr + 4, TR_AREA_REGION + id2, 12, len - 16);
  d2h_dest_wait(&a, rid, len - 16);
  assert_memory_equal(other + 12, map + 4, len - 16);
  assert_int_equal(other[11], 0);
  doc = tb_stats();
  assert_non_null(strstr(doc, "\"regions\":2"));
  assert_non_null(strstr(doc, "\"region_bytes_to_agent\":41943040"));
  free(doc);

  /* Let the destination go (and unmap ours) while 40 MiB are coming: the
     broker keeps its mapping until the copy is done. */
  memset(other, 0, len);
  rid = d2h_dest_send(&a, ptr, TR_AREA_REGION + id2, 0, len);
  tr_client_region_del(&a.c, id2);
  munmap(other, len);
  tb_sleep_ms(200);
  d2h_dest_wait(&a, rid, len);
  assert_int_equal(tb_nop(&a, 0, 10000), 0);

  /* A reference past the end of a region ends this client only. */
  assert_int_equal(tb_client_open(&b), 0);
  {
    struct tr_shmref ref = {TR_AREA_REGION + id, len - 4096, 8192};

    tr_put_u64(a16, ptr);
    tr_put_u64(a16 + 8, 8192);
    tr_shmref_pack(&ref, a16 + 16);
    assert_int_equal(tr_client_send(&a.c, &a.l, 0, TR_OP_MEMCPY_H2D,
                                    TR_F_SHMREF | TR_F_WANT_REPLY, tb_new_id(),
                                    a16, sizeof(a16), NULL, 0),
                     0);
  }
  for (int i = 0; i < 50 && !tb_log_contains("bad upload reference"); i++)
    tb_sleep_ms(100);
  assert_true(tb_log_contains("bad upload reference"));
  assert_int_equal(tb_nop(&b, 0, 10000), 0);
  munmap(map, len);
  tb_client_close(&a);
  tb_client_close(&b);
  assert_true(tb_broker_alive());
}

/* HELLO that arrives while machines start is answered when they are up. */
static void test_hello_waits(void **state)
{
  char dir[96], wrapper[160], sock[160], cmd[512];
  struct tr_client c;
  const char *why = NULL;
  long t0, took = 0;
  int rc = -1, status = -1;
  FILE *f;
  pid_t pid;

  snprintf(dir, sizeof(dir), "%s/slow", tmpdir);
  assert_int_equal(mkdir(dir, 0700), 0);
  snprintf(wrapper, sizeof(wrapper), "%s/slow-agent", dir);
  f = fopen(wrapper, "w");
  assert_non_null(f);
  fprintf(f, "#!/bin/sh\nsleep 1.5\nexec '%s' \"$@\"\n", agent_bin);
  fclose(f);
  assert_int_equal(chmod(wrapper, 0700), 0);
  snprintf(sock, sizeof(sock), "%s/broker.sock", dir);
  pid = spawn_broker(dir, 0, "--local", "1", "--agent", wrapper, "--backend",
                     "emu", "--emu-mem", "256M", (char *)NULL);
  assert_true(pid > 0);
  t0 = tb_now_ms();
  while (tb_now_ms() - t0 < 20000) {
    rc = tr_client_connect(&c, sock, 30000, &why);
    if (rc != -ENOENT && rc != -ECONNREFUSED)
      break;
    tb_sleep_ms(10);
  }
  took = tb_now_ms() - t0;
  if (rc == 0) {
    assert_int_equal(c.ndev, 1);
    tr_client_close(&c);
  }
  kill(pid, SIGTERM);
  waitpid(pid, &status, 0);
  if (rc != 0 || took < 500) {
    snprintf(cmd, sizeof(cmd), "tail -n 30 %s/broker.log >&2", dir);
    (void)!system(cmd);
  }
  fprintf(stderr, "HELLO answered after %ld ms\n", took);
  assert_int_equal(rc, 0);
  assert_true(took >= 500); /* it waited for the agent */
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_shutdown(void **state)
{
  struct stat st;
  int status = -1;
  long t0 = tb_now_ms();
  pid_t pid = tb_broker_pid;

  assert_true(tb_broker_alive());
  assert_int_equal(kill(tb_broker_pid, SIGTERM), 0);
  while (tb_now_ms() - t0 < 15000) {
    if (waitpid(tb_broker_pid, &status, WNOHANG) == tb_broker_pid)
      break;
    tb_sleep_ms(20);
  }
  assert_false(broker_sanitizer_report(pid));
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  tb_broker_pid = 0;
  assert_int_not_equal(stat(tb_sock_path, &st), 0);
  assert_int_not_equal(stat(ctl_path, &st), 0);
}

static int group_setup(void **state)
{
  if (start_broker() < 0) {
    tb_dump_log();
    return -1;
  }
  return 0;
}

static int group_teardown(void **state)
{
  char cmd[160];

  if (tb_broker_pid > 0) {
    kill(tb_broker_pid, SIGKILL);
    waitpid(tb_broker_pid, NULL, 0);
  }
  if (getenv("TR_KEEP_LOG"))
    fprintf(stderr, "broker log kept in %s\n", log_path);
  else if (tmpdir[0]) {
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    (void)!system(cmd);
  }
  return 0;
}

int main(int argc, char **argv)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hello),
      cmocka_unit_test(test_hello_visible),
      cmocka_unit_test(test_memory),
      cmocka_unit_test(test_lane_close_drains),
      cmocka_unit_test(test_stats),
      cmocka_unit_test(test_corrupt_client),
      cmocka_unit_test(test_agent_killed),
      cmocka_unit_test(test_agent_silent),
      cmocka_unit_test(test_stalled_client),
      cmocka_unit_test(test_move_broken),
      cmocka_unit_test(test_move_close),
      cmocka_unit_test(test_regions),
      cmocka_unit_test(test_hello_waits),
      cmocka_unit_test(test_shutdown),
  };

  if (argc < 3) {
    fprintf(stderr, "usage: %s BROKER AGENT\n", argv[0]);
    return 2;
  }
  broker_bin = argv[1];
  agent_bin = argv[2];
  if (access(agent_bin, X_OK) != 0) {
    fprintf(stderr, "%s: no agent binary at %s: skipped\n", argv[0], agent_bin);
    return 77;
  }
  signal(SIGPIPE, SIG_IGN);
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
