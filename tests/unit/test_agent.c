/*
 * test_agent.c: the real tremote-gpu-agent, driven over loopback HTTP/2.
 *
 * The agent binary (argv[1], from CMake) is started once for the group with
 * its secret on --secret-fd and its port read from --ready-fd, exactly as
 * the broker's LOCAL provider does, and stopped with SIGTERM at the end
 * (which must exit 0: under ASan that includes the leak check).  Each test
 * talks to it with the synchronous client of test_agent_h2c.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "fatbin.h"
#include "test_agent_h2c.h"
#include "tremote/proto.h"

/* cudaError_t values the tests expect (driver_types.h numbers). */
#define CU_INVALID_VALUE 1
#define CU_MEMORY_ALLOCATION 2
#define CU_INVALID_CONFIGURATION 9
#define CU_INVALID_DEVICE_FUNCTION 98
#define CU_INVALID_SYMBOL 13
#define CU_INVALID_SOURCE 300
#define CU_ILLEGAL_ADDRESS 700
#define CU_LAUNCH_TIMEOUT 702
#define CU_NOT_SUPPORTED 801

#define MiB (1ull << 20)
#define AGENT_MEM (3ull << 30) /* --emu-mem 3G */

/* Address windows for the sessions, as a broker of this build hands them
   out (a TSan agent can only map memory in TSan's application range). */
#define WIN_BASE TR_VA_BUILD_BASE
#define WIN_SIZE TR_VA_BUILD_WINDOW

/*
 * 512 MiB memsets that keep a lane busy for a while: ~40 ms each natively,
 * ~1 s each under TSan, which intercepts memset.
 */
#if defined(__SANITIZE_THREAD__)
#define LONG_ROUNDS 3
#else
#define LONG_ROUNDS 12
#endif

/*
 * How much a stalled 256 MiB device-to-host copy may add to the agent's
 * memory: the lane's outbound bound (8 MiB), a frame, allocator slack.
 * TSan also keeps shadow memory for every byte copied before the stall.
 */
#if defined(__SANITIZE_THREAD__)
#define RSS_SLACK (128 * MiB)
#else
#define RSS_SLACK (64 * MiB)
#endif

static const char *agent_path;
static const char *agent_watchdog = "600"; /* --emu-watchdog SEC */
static const char *agent_quota;             /* --quota SIZE, or none */
static const char *agent_idle;              /* --idle-timeout SEC, or none */
static const char *agent_exit_idle;         /* --exit-idle SEC, or none */
static int agent_reaped; /* a test saw the agent exit and reaped it */
static pid_t agent_pid;
static uint16_t agent_port;
static const char secret[] = "5ec1e7c0ffee5ec1e7c0ffee5ec1e7c0ffee5ec1e7c0ffee5ec1e7c0ffee0001";
static unsigned next_session = 1;

/* ---- the agent process ------------------------------------------------- */

static int start_agent(void **state)
{
  int sp[2], rp[2];
  char line[32] = {0};
  size_t n = 0;

  if (pipe2(sp, O_CLOEXEC) < 0 || pipe2(rp, O_CLOEXEC) < 0)
    return -1;
  if (write(sp[1], secret, strlen(secret)) < 0 || write(sp[1], "\n", 1) < 0)
    return -1;
  close(sp[1]);
  agent_pid = fork();
  if (agent_pid < 0)
    return -1;
  if (agent_pid == 0) {
    /* Move out of the way first: dup2 onto itself would keep CLOEXEC. */
    int s = fcntl(sp[0], F_DUPFD, 10), r = fcntl(rp[1], F_DUPFD, 10);

    /* If this test dies, the agent must not outlive it. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);

    dup2(s, 3);
    dup2(r, 4);
    {
      const char *argv[24] = {agent_path, "--listen", "127.0.0.1:0",
                              "--secret-fd", "3", "--ready-fd", "4",
                              "--emu-mem", "3G", "--exec-threads", "4",
                              "--emu-watchdog", agent_watchdog,
                              "--log-level", "warn"};
      int k = 15;

      if (agent_quota) {
        argv[k++] = "--quota";
        argv[k++] = agent_quota;
      }
      if (agent_idle) {
        argv[k++] = "--idle-timeout";
        argv[k++] = agent_idle;
      }
      if (agent_exit_idle) {
        argv[k++] = "--exit-idle";
        argv[k++] = agent_exit_idle;
      }
      execv(agent_path, (char *const *)argv);
    }
    _exit(127);
  }
  close(sp[0]);
  close(rp[1]);
  while (n < sizeof(line) - 1 && !strchr(line, '\n')) {
    struct pollfd p = {.fd = rp[0], .events = POLLIN};
    ssize_t r;

    if (poll(&p, 1, 30000) <= 0)
      break;
    r = read(rp[0], line + n, sizeof(line) - 1 - n);
    if (r <= 0)
      break;
    n += (size_t)r;
  }
  close(rp[0]);
  agent_port = (uint16_t)atoi(line);
  if (!agent_port) {
    fprintf(stderr, "agent did not report a port\n");
    kill(agent_pid, SIGKILL);
    waitpid(agent_pid, NULL, 0);
    return -1;
  }
  return 0;
}

static int stop_agent(void **state)
{
  int status = 0;

  if (agent_reaped)
    return 0;
  kill(agent_pid, SIGTERM);
  for (int i = 0; i < 600; i++) {
    pid_t r = waitpid(agent_pid, &status, WNOHANG);

    if (r == agent_pid) {
      if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
      fprintf(stderr, "agent exited with status %#x\n", status);
      return -1;
    }
    usleep(50000);
  }
  fprintf(stderr, "agent did not exit after SIGTERM\n");
  kill(agent_pid, SIGKILL);
  waitpid(agent_pid, NULL, 0);
  return -1;
}

/* ---- helpers ------------------------------------------------------------ */

static void connect_agent(struct tc_conn *c)
{
  assert_int_equal(tc_connect(c, agent_port), 0);
}

static uint64_t window(unsigned i)
{
  return WIN_BASE + i * WIN_SIZE;
}

/* Open /v1/session with a fresh id; *id gets it.  Asserts 200. */
static struct tc_stream *open_session(struct tc_conn *c, unsigned win,
                                      uint64_t *id)
{
  char sid[17], va[64];
  struct tc_stream *st;

  *id = 0x5e55000000000000ull + next_session++;
  snprintf(sid, sizeof(sid), "%016llx", (unsigned long long)*id);
  snprintf(va, sizeof(va), "%llx+%llx", (unsigned long long)window(win),
           (unsigned long long)WIN_SIZE);
  st = tc_request(c, "/v1/session", secret,
                  (const char *const[]){"tremote-session", sid, "tremote-va",
                                        va, NULL});
  assert_non_null(st);
  assert_true(tc_wait_status(st));
  assert_int_equal(st->status, 200);
  return st;
}

/* A lane, with one more header `name: value` unless name is NULL
   (tremote-priority, tremote-lane-move). */
static struct tc_stream *open_lane_with(struct tc_conn *c, uint64_t sid,
                                        unsigned lane, const char *name,
                                        const char *value, int want_status)
{
  char s[17], l[16];
  struct tc_stream *st;

  snprintf(s, sizeof(s), "%016llx", (unsigned long long)sid);
  snprintf(l, sizeof(l), "%u", lane);
  st = tc_request(c, "/v1/lane", secret,
                  (const char *const[]){"tremote-session", s, "tremote-lane",
                                        l, name, value, NULL});
  assert_non_null(st);
  assert_true(tc_wait_status(st));
  assert_int_equal(st->status, want_status);
  return st;
}

static struct tc_stream *open_lane_prio(struct tc_conn *c, uint64_t sid,
                                        unsigned lane, const char *prio,
                                        int want_status)
{
  return open_lane_with(c, sid, lane, prio ? "tremote-priority" : NULL, prio,
                        want_status);
}

static struct tc_stream *open_lane(struct tc_conn *c, uint64_t sid,
                                   unsigned lane, int want_status)
{
  return open_lane_prio(c, sid, lane, NULL, want_status);
}

static uint64_t dmalloc(struct tc_stream *lane, uint64_t size)
{
  uint8_t p[8];
  struct tc_result r;
  uint64_t ptr;

  tr_put_u64(p, size);
  assert_int_equal(tc_call(lane, TR_OP_MALLOC, 0, p, 8, &r), 0);
  assert_int_equal(r.len, 8);
  ptr = tr_get_u64(r.data);
  free(r.data);
  return ptr;
}

static uint32_t dfree(struct tc_stream *lane, uint64_t ptr)
{
  uint8_t p[8];

  tr_put_u64(p, ptr);
  return tc_call(lane, TR_OP_FREE, 0, p, 8, NULL);
}

/* H2D payload: dst, len, bytes. */
static uint8_t *h2d_payload(uint64_t dst, const void *src, size_t len,
                            size_t *plen)
{
  uint8_t *p = malloc(16 + len);

  tr_put_u64(p, dst);
  tr_put_u64(p + 8, len);
  memcpy(p + 16, src, len);
  *plen = 16 + len;
  return p;
}

static uint32_t h2d(struct tc_stream *lane, uint64_t dst, const void *src,
                    size_t len, bool reply)
{
  size_t plen;
  uint8_t *p = h2d_payload(dst, src, len, &plen);
  uint32_t st = 0;

  if (reply)
    st = tc_call(lane, TR_OP_MEMCPY_H2D, 0, p, plen, NULL);
  else
    tc_post(lane, TR_OP_MEMCPY_H2D, p, plen);
  free(p);
  return st;
}

static uint32_t d2h(struct tc_stream *lane, uint64_t src, uint64_t len,
                    struct tc_result *r)
{
  uint8_t p[16];

  tr_put_u64(p, src);
  tr_put_u64(p + 8, len);
  return tc_call(lane, TR_OP_MEMCPY_D2H, 0, p, 16, r);
}

static uint32_t d2d(struct tc_stream *lane, uint64_t dst, uint64_t src,
                    uint64_t len)
{
  uint8_t p[24];

  tr_put_u64(p, dst);
  tr_put_u64(p + 8, src);
  tr_put_u64(p + 16, len);
  return tc_call(lane, TR_OP_MEMCPY_D2D, 0, p, 24, NULL);
}

static void memset_payload(uint8_t p[20], uint64_t dst, uint64_t len,
                           uint32_t v)
{
  tr_put_u64(p, dst);
  tr_put_u64(p + 8, len);
  tr_put_u32(p + 16, v);
}

static uint32_t dmemset(struct tc_stream *lane, uint64_t dst, uint64_t len,
                        uint32_t v)
{
  uint8_t p[20];

  memset_payload(p, dst, len, v);
  return tc_call(lane, TR_OP_MEMSET, 0, p, 20, NULL);
}

static void mem_info(struct tc_stream *lane, uint64_t *fr, uint64_t *total)
{
  struct tc_result r;

  assert_int_equal(tc_call(lane, TR_OP_MEM_GET_INFO, 0, NULL, 0, &r), 0);
  assert_int_equal(r.len, 16);
  *fr = tr_get_u64(r.data);
  *total = tr_get_u64(r.data + 8);
  free(r.data);
}

/* POST /v1/hello with min..max; returns the reply record's stream. */
static struct tc_stream *hello(struct tc_conn *c, uint16_t min, uint16_t max,
                               uint64_t caps, struct tr_hdr *h,
                               const uint8_t **payload)
{
  struct tr_hello hl = {min, max, TR_ROLE_BROKER, caps, 42, 0};
  uint8_t p[TR_HELLO_SIZE];
  struct tc_stream *st = tc_request(c, "/v1/hello", secret, NULL);

  assert_non_null(st);
  tr_hello_pack(&hl, p);
  tc_send_record(st, TR_OP_HELLO, TR_F_WANT_REPLY, 7, p, sizeof(p));
  tc_end(st);
  assert_true(tc_wait_ended(st));
  assert_int_equal(st->status, 200);
  assert_true(tc_next_record(st, h, payload));
  assert_int_equal(h->opcode, TR_OP_HELLO);
  assert_int_equal(h->request_id, 7);
  assert_true(h->flags & TR_F_REPLY);
  return st;
}

/* ---- authentication and hello ------------------------------------------- */

static void check_rejected(const char *sec)
{
  struct tc_conn c;
  struct tc_stream *st;

  connect_agent(&c);
  st = tc_request(&c, "/v1/hello", sec, NULL);
  assert_non_null(st);
  tc_end(st);
  assert_true(tc_wait_status(st));
  assert_int_equal(st->status, 401);
  /* The 401 is followed by GOAWAY and the socket closing. */
  assert_true(tc_wait_eof(&c));
  assert_true(c.goaway);
  assert_true(st->ended);
  assert_true(st->body_len > 0);
  tc_close(&c);
}

static void test_auth_rejected(void **state)
{
  check_rejected("not-the-secret");
  check_rejected(NULL);
  /* A prefix of the right secret is still wrong. */
  check_rejected("5ec1e7c0ffee");
}

static void test_hello(void **state)
{
  struct tc_conn c;
  const uint8_t *p;
  struct tr_hello hl;
  struct tr_devinfo d;
  struct tr_hdr h;
  size_t used;
  int32_t v;

  connect_agent(&c);
  hello(&c, 1, 7, ~0ull, &h, &p);
  assert_int_equal(h.status, 0);
  assert_int_equal(tr_hello_unpack(p, h.payload_len, &hl), 0);
  assert_int_equal(hl.min_version, TR_PROTO_VERSION_MAX);
  assert_int_equal(hl.max_version, TR_PROTO_VERSION_MAX);
  assert_int_equal(hl.role, TR_ROLE_AGENT);
  /* The emulator runs kernels: TR_CAP_EXEC; lanes can move. */
  assert_int_equal(hl.caps,
                   TR_CAP_MODULE_CACHE | TR_CAP_EXEC | TR_CAP_LANE_MOVE);
  assert_int_equal(tr_devinfo_unpack(p + TR_HELLO_SIZE, hl.extra_len, &d,
                                     &used), 0);
  assert_int_equal(used, hl.extra_len);
  assert_string_equal(d.name, "tremote emulated device");
  assert_int_equal(d.total_mem, AGENT_MEM);
  assert_int_equal(d.va_base, 0);
  assert_int_equal(d.va_size, 0);
  assert_int_equal(d.caps, TR_CAP_EXEC);
  assert_true(d.nattr >= 30);
  assert_int_equal(tr_devinfo_attr(&d, 75, &v), 0); /* major */
  assert_int_equal(v, 8);
  assert_int_equal(tr_devinfo_attr(&d, 76, &v), 0); /* minor */
  assert_int_equal(v, 0);
  assert_int_equal(tr_devinfo_attr(&d, 10, &v), 0); /* warp size */
  assert_int_equal(v, 32);
  assert_int_equal(tr_devinfo_attr(&d, 1, &v), 0); /* threads per block */
  assert_int_equal(v, 1024);

  /* Caps are the intersection: offering none agrees on none. */
  hello(&c, TR_PROTO_VERSION_MIN, TR_PROTO_VERSION_MAX, 0, &h, &p);
  assert_int_equal(tr_hello_unpack(p, h.payload_len, &hl), 0);
  assert_int_equal(hl.caps, 0);
  tc_close(&c);
}

static void test_hello_version_mismatch(void **state)
{
  struct tc_conn c;
  const uint8_t *p;
  struct tr_hdr h;
  char text[256];

  connect_agent(&c);
  hello(&c, TR_PROTO_VERSION_MAX + 1, TR_PROTO_VERSION_MAX + 2, 0, &h, &p);
  assert_int_equal(h.status, TR_ST_VERSION);
  assert_true(h.payload_len > 0 && h.payload_len < sizeof(text));
  memcpy(text, p, h.payload_len);
  text[h.payload_len] = 0;
  assert_non_null(strstr(text, "2..2"));
  assert_non_null(strstr(text, "3..4"));
  assert_true(tc_wait_eof(&c)); /* and the connection is closed */
  tc_close(&c);
}

static void test_routes(void **state)
{
  struct tc_conn c;
  struct tc_stream *st;
  uint64_t sid;

  connect_agent(&c);
  st = tc_request(&c, "/v1/nothing", secret, NULL);
  tc_end(st);
  assert_true(tc_wait_status(st));
  assert_int_equal(st->status, 404);
  /* A lane of a session that does not exist. */
  open_lane(&c, 0x1234567812345678ull, 1, 404);
  /* A malformed session header. */
  st = tc_request(&c, "/v1/session", secret,
                  (const char *const[]){"tremote-session", "xyz", "tremote-va",
                                        "1000+1000", NULL});
  assert_true(tc_wait_status(st));
  assert_int_equal(st->status, 400);

  /* A window that overlaps another session's different window: 409. */
  st = open_session(&c, 20, &sid);
  {
    char s[17], va[64];
    struct tc_stream *st2;

    snprintf(s, sizeof(s), "%016llx", (unsigned long long)sid + 1000);
    snprintf(va, sizeof(va), "%llx+%llx",
             (unsigned long long)(window(20) + WIN_SIZE / 2),
             (unsigned long long)WIN_SIZE);
    st2 = tc_request(&c, "/v1/session", secret,
                     (const char *const[]){"tremote-session", s, "tremote-va",
                                           va, NULL});
    assert_true(tc_wait_status(st2));
    assert_int_equal(st2->status, 409);
    /* The same id twice: 409 as well. */
    snprintf(s, sizeof(s), "%016llx", (unsigned long long)sid);
    st2 = tc_request(&c, "/v1/session", secret,
                     (const char *const[]){"tremote-session", s, "tremote-va",
                                           "1000+1000", NULL});
    assert_true(tc_wait_status(st2));
    assert_int_equal(st2->status, 409);
  }
  tc_end(st);
  assert_true(tc_wait_ended(st));
  tc_close(&c);
}

/* ---- memory ------------------------------------------------------------- */

static void test_memory_roundtrip(void **state)
{
  struct tc_conn c;
  struct tc_stream *sess, *lane;
  struct tc_result r;
  uint64_t sid, a, b, zero;
  uint8_t *pat = malloc(4 * MiB);
  size_t i;

  for (i = 0; i < 4 * MiB; i++)
    pat[i] = (uint8_t)(i * 7 + (i >> 12));
  connect_agent(&c);
  sess = open_session(&c, 0, &sid);
  lane = open_lane(&c, sid, 1, 200);

  assert_int_equal(tc_call(lane, TR_OP_NOP, 0, NULL, 0, NULL), 0);
  a = dmalloc(lane, 4 * MiB);
  b = dmalloc(lane, 4 * MiB);
  assert_true(a >= window(0) && a + 4 * MiB <= window(0) + WIN_SIZE);
  assert_int_equal(a % 256, 0);
  assert_int_equal(b % 256, 0);
  /* cudaMalloc(&p, 0) succeeds with p == NULL. */
  zero = dmalloc(lane, 0);
  assert_int_equal(zero, 0);

  /* Four 1 MiB chunks, only the last waits for a reply. */
  for (i = 0; i < 4; i++)
    assert_int_equal(h2d(lane, a + i * MiB, pat + i * MiB, MiB, i == 3), 0);
  /* MEMSET a hole, then copy a -> b, then read b back in one request. */
  assert_int_equal(dmemset(lane, a + 100, 1000, 0x1ab), 0);
  memset(pat + 100, 0xab, 1000);
  assert_int_equal(d2d(lane, b, a, 4 * MiB), 0);
  assert_int_equal(d2h(lane, b, 4 * MiB, &r), 0);
  /* 4 MiB in records of <= 1 MiB: MORE on all but the last. */
  assert_int_equal(r.nrec, 4);
  assert_int_equal(r.nmore, 3);
  assert_int_equal(r.len, 4 * MiB);
  assert_memory_equal(r.data, pat, 4 * MiB);
  free(r.data);
  /* An odd length and offset. */
  assert_int_equal(d2h(lane, b + 12345, MiB + 3, &r), 0);
  assert_int_equal(r.nmore, 1);
  assert_int_equal(r.len, MiB + 3);
  assert_memory_equal(r.data, pat + 12345, MiB + 3);
  free(r.data);

  assert_int_equal(dfree(lane, a), 0);
  assert_int_equal(dfree(lane, b), 0);
  assert_int_equal(dfree(lane, 0), 0); /* cudaFree(NULL) */
  tc_end(lane);
  assert_true(tc_wait_ended(lane));
  tc_end(sess);
  assert_true(tc_wait_ended(sess));
  tc_close(&c);
  free(pat);
}

static void test_memory_errors(void **state)
{
  struct tc_conn c;
  struct tc_stream *sess, *lane;
  struct tc_result r;
  uint64_t sid, a, fr, total;
  uint8_t buf[64] = {0}, p[24];

  connect_agent(&c);
  sess = open_session(&c, 1, &sid);
  lane = open_lane(&c, sid, 1, 200);
  a = dmalloc(lane, 1000);

  /* Frees: a random pointer, an interior pointer, twice. */
  assert_int_equal(dfree(lane, window(1) + 0x1230000), CU_INVALID_VALUE);
  assert_int_equal(dfree(lane, a + 8), CU_INVALID_VALUE);
  assert_int_equal(dfree(lane, 0x1000), CU_INVALID_VALUE);
  /* Copies that leave the allocation (it is 1000 bytes, not a page). */
  assert_int_equal(h2d(lane, a + 990, buf, 11, true), CU_INVALID_VALUE);
  assert_int_equal(h2d(lane, a + 990, buf, 10, true), 0);
  assert_int_equal(d2h(lane, a, 1001, &r), CU_INVALID_VALUE);
  assert_int_equal(r.nrec, 1); /* no data before the error */
  assert_int_equal(r.len, 0);
  free(r.data);
  assert_int_equal(d2h(lane, a - 1, 10, NULL), CU_INVALID_VALUE);
  assert_int_equal(dmemset(lane, a, 1001, 0), CU_INVALID_VALUE);
  assert_int_equal(d2d(lane, a, a + 500, 501), CU_INVALID_VALUE);
  assert_int_equal(d2d(lane, a, a + 500, 500), 0);
  assert_int_equal(d2h(lane, UINT64_MAX - 5, 10, NULL), CU_INVALID_VALUE);

  /* A failing record without WANT_REPLY: its error waits for the next
     successful final reply, then is cleared. */
  h2d(lane, window(1) + 0x7770000, buf, sizeof(buf), false);
  h2d(lane, a + 5000, buf, sizeof(buf), false); /* a second one is not kept */
  assert_int_equal(tc_call(lane, TR_OP_SYNCHRONIZE, 0, NULL, 0, NULL),
                   CU_INVALID_VALUE);
  assert_int_equal(tc_call(lane, TR_OP_SYNCHRONIZE, 0, NULL, 0, NULL), 0);
  /* A failing call keeps the deferred error for the next success. */
  h2d(lane, 0x42, buf, 8, false);
  assert_int_equal(dfree(lane, 0x42), CU_INVALID_VALUE);
  assert_int_equal(tc_call(lane, TR_OP_NOP, 0, NULL, 0, NULL),
                   CU_INVALID_VALUE);
  assert_int_equal(tc_call(lane, TR_OP_NOP, 0, NULL, 0, NULL), 0);

  /* Out of memory. */
  mem_info(lane, &fr, &total);
  assert_int_equal(total, AGENT_MEM);
  tr_put_u64(p, 4ull << 30);
  assert_int_equal(tc_call(lane, TR_OP_MALLOC, 0, p, 8, NULL),
                   CU_MEMORY_ALLOCATION);
  tr_put_u64(p, UINT64_MAX);
  assert_int_equal(tc_call(lane, TR_OP_MALLOC, 0, p, 8, NULL),
                   CU_MEMORY_ALLOCATION);

  /* Malformed payloads and opcodes. */
  assert_int_equal(tc_call(lane, TR_OP_MALLOC, 0, p, 7, NULL),
                   TR_ST_BAD_RECORD);
  assert_int_equal(tc_call(lane, TR_OP_MEMSET, 0, p, 24, NULL),
                   TR_ST_BAD_RECORD);
  {
    /* H2D whose len field disagrees with the bytes sent. */
    size_t plen;
    uint8_t *hp = h2d_payload(a, buf, 16, &plen);

    tr_put_u64(hp + 8, 17);
    assert_int_equal(tc_call(lane, TR_OP_MEMCPY_H2D, 0, hp, plen, NULL),
                     TR_ST_BAD_RECORD);
    free(hp);
  }
  assert_int_equal(tc_call(lane, TR_OP_STATS, 0, NULL, 0, NULL),
                   TR_ST_BAD_OPCODE);
  assert_int_equal(tc_call(lane, TR_OP_HELLO, 0, NULL, 0, NULL),
                   TR_ST_BAD_OPCODE);
  assert_int_equal(tc_call(lane, 999, 0, buf, 40, NULL), TR_ST_BAD_OPCODE);
  assert_int_equal(tc_call(lane, 7, 0, NULL, 0, NULL), TR_ST_BAD_OPCODE);
  /* ... and the lane is still in step after them. */
  assert_int_equal(tc_call(lane, TR_OP_NOP, 0, NULL, 0, NULL), 0);

  assert_int_equal(dfree(lane, a), 0);
  assert_int_equal(dfree(lane, a), CU_INVALID_VALUE); /* double free */
  tc_end(sess);
  assert_true(tc_wait_ended(sess));
  tc_close(&c);
}

/* Two sessions cannot touch each other's memory. */
static void test_sessions_isolated(void **state)
{
  struct tc_conn c;
  struct tc_stream *sa, *sb, *la, *lb;
  struct tc_result r;
  uint64_t ida, idb, pa;
  uint8_t buf[16] = {1, 2, 3};

  connect_agent(&c);
  /* The same window, as all sessions of one broker machine share it. */
  sa = open_session(&c, 2, &ida);
  sb = open_session(&c, 2, &idb);
  la = open_lane(&c, ida, 1, 200);
  lb = open_lane(&c, idb, 1, 200);
  pa = dmalloc(la, 4096);
  assert_int_equal(h2d(la, pa, buf, sizeof(buf), true), 0);

  assert_int_equal(dfree(lb, pa), CU_INVALID_VALUE);
  assert_int_equal(d2h(lb, pa, 16, NULL), CU_INVALID_VALUE);
  assert_int_equal(h2d(lb, pa, buf, 16, true), CU_INVALID_VALUE);
  assert_int_equal(dmemset(lb, pa, 16, 0), CU_INVALID_VALUE);
  {
    uint64_t pb = dmalloc(lb, 4096);

    assert_int_equal(d2d(lb, pb, pa, 16), CU_INVALID_VALUE);
    assert_int_equal(d2d(lb, pa, pb, 16), CU_INVALID_VALUE);
    assert_int_equal(dfree(lb, pb), 0);
  }
  /* A's memory is intact and still A's. */
  assert_int_equal(d2h(la, pa, 16, &r), 0);
  assert_memory_equal(r.data, buf, 16);
  free(r.data);
  assert_int_equal(dfree(la, pa), 0);

  /* Two lanes of one session share its memory. */
  {
    struct tc_stream *la2 = open_lane(&c, ida, 2, 200);
    uint64_t p = dmalloc(la, 64);

    assert_int_equal(h2d(la2, p, buf, 16, true), 0);
    assert_int_equal(d2h(la, p, 16, &r), 0);
    assert_memory_equal(r.data, buf, 16);
    free(r.data);
    /* A second lane with an id already open is refused. */
    open_lane(&c, ida, 2, 409);
    /* Stream priorities: 0 to -5; anything else is refused. */
    open_lane_prio(&c, ida, 3, "1", 400);
    open_lane_prio(&c, ida, 3, "-6", 400);
    open_lane_prio(&c, ida, 3, "-1x", 400);
    {
      struct tc_stream *la3 = open_lane_prio(&c, ida, 3, "-5", 200);

      assert_int_equal(d2h(la3, p, 16, &r), 0);
      assert_memory_equal(r.data, buf, 16);
      free(r.data);
    }
  }
  tc_end(sa);
  tc_end(sb);
  assert_true(tc_wait_ended(sa));
  assert_true(tc_wait_ended(sb));
  tc_close(&c);
}

/* Ending the session stream frees its memory before the response ends. */
static void test_session_close_frees(void **state)
{
  struct tc_conn c;
  struct tc_stream *sx, *sy, *lx, *ly;
  uint64_t idx, idy, fr0, fr1, fr2, total;

  connect_agent(&c);
  sx = open_session(&c, 3, &idx);
  lx = open_lane(&c, idx, 1, 200);
  mem_info(lx, &fr0, &total);

  sy = open_session(&c, 4, &idy);
  ly = open_lane(&c, idy, 1, 200);
  dmalloc(ly, 256 * MiB);
  dmalloc(ly, 1000);
  mem_info(lx, &fr1, &total);
  assert_true(fr1 <= fr0 - 256 * MiB);

  /* End the session: its response ends once the memory is gone, and its
     lane is reset. */
  tc_end(sy);
  assert_true(tc_wait_ended(sy));
  mem_info(lx, &fr2, &total);
  assert_int_equal(fr2, fr0);
  assert_true(tc_wait_closed(ly));
  assert_int_not_equal(ly->rst_code, 0);
  /* The session is gone: no new lanes. */
  open_lane(&c, idy, 2, 404);

  /* A reset session stream frees as well. */
  sy = open_session(&c, 4, &idy);
  ly = open_lane(&c, idy, 1, 200);
  dmalloc(ly, 64 * MiB);
  tc_reset(sy);
  for (int i = 0; i < 200; i++) {
    mem_info(lx, &fr2, &total);
    if (fr2 == fr0)
      break;
    usleep(10000);
  }
  assert_int_equal(fr2, fr0);

  /* And so does a dropped connection. */
  {
    struct tc_conn c2;
    struct tc_stream *lz;
    uint64_t idz;

    connect_agent(&c2);
    open_session(&c2, 4, &idz);
    lz = open_lane(&c2, idz, 1, 200);
    dmalloc(lz, 32 * MiB);
    tc_close(&c2);
    for (int i = 0; i < 200; i++) {
      mem_info(lx, &fr2, &total);
      if (fr2 == fr0)
        break;
      usleep(10000);
    }
    assert_int_equal(fr2, fr0);
  }
  tc_end(sx);
  assert_true(tc_wait_ended(sx));
  tc_close(&c);
}

/* A lane busy with a long operation does not delay PING or other lanes. */
static void test_ping_during_long_op(void **state)
{
  struct tc_conn c;
  struct tc_stream *sess, *lane, *other;
  const size_t big = 512 * MiB;
  const int rounds = LONG_ROUNDS;
  uint64_t sid, p, t0, t_ack, t_other, t_done;
  uint8_t ms[20];
  const uint8_t *pl;
  struct tr_hdr h;
  unsigned acks;

  connect_agent(&c);
  sess = open_session(&c, 5, &sid);
  lane = open_lane(&c, sid, 1, 200);
  other = open_lane(&c, sid, 2, 200);
  p = dmalloc(lane, big);

  /* Several 512 MiB memsets, then a SYNCHRONIZE that waits for them. */
  for (int i = 0; i < rounds; i++) {
    memset_payload(ms, p, big, (uint32_t)i);
    tc_post(lane, TR_OP_MEMSET, ms, sizeof(ms));
  }
  tc_send_record(lane, TR_OP_SYNCHRONIZE, TR_F_WANT_REPLY, 999, NULL, 0);
  tc_pump(&c, 0);
  usleep(20000); /* let an execution thread start on them */

  acks = c.ping_acks;
  t0 = tc_now_ns();
  tc_ping(&c);
  while (c.ping_acks == acks && tc_now_ns() - t0 < 5000000000ull)
    tc_pump(&c, 10);
  assert_true(c.ping_acks > acks);
  t_ack = c.ping_ack_ns - t0;
  /* Another lane of the same session is served meanwhile. */
  assert_int_equal(tc_call(other, TR_OP_NOP, 0, NULL, 0, NULL), 0);
  t_other = tc_now_ns() - t0;
  /* The long operation was still running at the ack. */
  assert_false(tc_next_record(lane, &h, &pl));
  while (!tc_next_record(lane, &h, &pl) && tc_now_ns() - t0 < 30000000000ull)
    tc_pump(&c, 100);
  t_done = tc_now_ns() - t0;
  print_message("PING ack %.1f ms, NOP on another lane %.1f ms, "
                "%d x 512 MiB memset done after %.1f ms\n",
                t_ack / 1e6, t_other / 1e6, rounds, t_done / 1e6);
  assert_int_equal(h.request_id, 999);
  assert_int_equal(h.status, 0);
  assert_true(t_ack < 100000000ull);
  assert_true(t_other < 100000000ull);
  assert_true(t_done > t_other);
  /* The memory holds the last value. */
  {
    struct tc_result r;

    assert_int_equal(d2h(lane, p + big - 16, 16, &r), 0);
    for (int i = 0; i < 16; i++)
      assert_int_equal(r.data[i], rounds - 1);
    free(r.data);
  }
  tc_end(sess);
  assert_true(tc_wait_ended(sess));
  tc_close(&c);
}

/* Garbage on one lane resets that stream only. */
static void test_malformed_record(void **state)
{
  struct tc_conn c;
  struct tc_stream *sess, *bad, *good;
  uint64_t sid;
  uint8_t junk[64];

  connect_agent(&c);
  sess = open_session(&c, 6, &sid);
  bad = open_lane(&c, sid, 1, 200);
  good = open_lane(&c, sid, 2, 200);
  memset(junk, 0x5a, sizeof(junk));
  tc_send(bad, junk, sizeof(junk));
  assert_true(tc_wait_closed(bad));
  assert_int_equal(bad->rst_code, NGHTTP2_PROTOCOL_ERROR);
  assert_int_equal(tc_call(good, TR_OP_NOP, 0, NULL, 0, NULL), 0);
  /* A record that claims more than TR_PAYLOAD_MAX bytes. */
  {
    struct tc_stream *big = open_lane(&c, sid, 3, 200);
    uint8_t hb[TR_HDR_SIZE];
    struct tr_hdr h;

    tr_hdr_init(&h, TR_OP_NOP, TR_F_WANT_REPLY, 1, TR_PAYLOAD_MAX + 1);
    tr_hdr_pack(&h, hb);
    tc_send(big, hb, sizeof(hb));
    assert_true(tc_wait_closed(big));
    assert_int_equal(big->rst_code, NGHTTP2_PROTOCOL_ERROR);
  }
  assert_int_equal(tc_call(good, TR_OP_NOP, 0, NULL, 0, NULL), 0);
  tc_end(sess);
  assert_true(tc_wait_ended(sess));
  tc_close(&c);
}


/* The agent's resident memory, from /proc. */
static uint64_t agent_rss(void)
{
  char path[64], line[256];
  uint64_t kb = 0;
  FILE *f;

  snprintf(path, sizeof(path), "/proc/%d/status", (int)agent_pid);
  f = fopen(path, "r");
  assert_non_null(f);
  while (fgets(line, sizeof(line), f)) {
    if (sscanf(line, "VmRSS: %" SCNu64 " kB", &kb) == 1)
      break;
  }
  fclose(f);
  return kb << 10;
}

/*
 * A large device-to-host copy whose reader stalls: the agent produces
 * replies only as fast as they drain, so its memory grows by a few MiB
 * (AGT_LANE_OUT_MAX plus nghttp2's frame), not by the copy's size.
 */
static void test_d2h_bounded(void **state)
{
  struct tc_conn c;
  struct tc_stream *sess, *lane;
  const uint64_t big = 256 * MiB;
  uint64_t sid, p, rss0, rss1, rss2, got = 0;
  unsigned nmore = 0;
  uint8_t req[16];
  bool bad = false;

  connect_agent(&c);
  sess = open_session(&c, 9, &sid);
  lane = open_lane(&c, sid, 1, 200);
  p = dmalloc(lane, big);
  assert_int_equal(dmemset(lane, p, big, 0x3c), 0);
  rss0 = agent_rss();

  tr_put_u64(req, p);
  tr_put_u64(req + 8, big);
  tc_send_record(lane, TR_OP_MEMCPY_D2H, TR_F_WANT_REPLY, 4242, req, 16);
  /* Behind it, a memset of its last bytes, those whose replies are the
     last to leave: the replies refer to the device memory (emulated
     device), so the memset must wait until they have all been sent. */
  {
    uint8_t ms[20];

    memset_payload(ms, p + big - 16 * MiB, 16 * MiB, 0x77);
    tc_post(lane, TR_OP_MEMSET, ms, sizeof(ms));
  }
  tc_pump(&c, 0);
  /* Not reading: the agent must stall, not buffer. */
  usleep(500000);
  rss1 = agent_rss();
  usleep(300000);
  rss2 = agent_rss();
  print_message("agent RSS grew by %.1f MiB during a stalled %llu MiB D2H "
                "(%.1f MiB in its last 300 ms)\n",
                ((double)rss2 - (double)rss0) / MiB,
                (unsigned long long)(big / MiB),
                ((double)rss2 - (double)rss1) / MiB);
  assert_true(rss2 < rss1 + 8 * MiB);
  assert_true(rss2 < rss0 + RSS_SLACK);

  for (;;) {
    const uint8_t *pl;
    struct tr_hdr h;

    if (!tc_next_record(lane, &h, &pl)) {
      assert_int_equal(tc_pump(&c, 1000), 0);
      continue;
    }
    assert_int_equal(h.request_id, 4242);
    assert_true(h.payload_len <= TR_CHUNK_MAX);
    for (uint32_t i = 0; i < h.payload_len; i += 4093)
      bad |= pl[i] != 0x3c;
    got += h.payload_len;
    if (!(h.flags & TR_F_MORE)) {
      assert_int_equal(h.status, 0);
      break;
    }
    nmore++;
  }
  assert_false(bad);
  assert_int_equal(got, big);
  assert_int_equal(nmore, big / TR_CHUNK_MAX - 1);
  {
    struct tc_result r;

    assert_int_equal(d2h(lane, p + big - 4096, 4096, &r), 0);
    assert_int_equal(r.len, 4096);
    assert_int_equal(r.data[0], 0x77); /* the memset ran afterwards */
    free(r.data);
  }
  tc_end(sess);
  assert_true(tc_wait_ended(sess));
  tc_close(&c);
}

/*
 * Records queued behind a long operation: the agent gives flow-control
 * window back only as records execute, so the sender stalls with at most
 * the stream window (64 MiB) accepted, instead of the agent buffering
 * everything that is sent.
 */
static void test_lane_inbound_bounded(void **state)
{
  struct tc_conn c;
  struct tc_stream *sess, *lane;
  const uint64_t big = 512 * MiB;
  const unsigned nchunks = 96;
  uint64_t sid, p, q, t0, sent_at_stall = 0;
  uint8_t ms[20], *chunk = malloc(MiB);
  bool stalled = false;
  const uint8_t *pl;
  struct tr_hdr h;
  struct tc_result r;

  connect_agent(&c);
  sess = open_session(&c, 10, &sid);
  lane = open_lane(&c, sid, 1, 200);
  p = dmalloc(lane, big);
  q = dmalloc(lane, MiB);
  for (int i = 0; i < LONG_ROUNDS; i++) {
    memset_payload(ms, p, big, (uint32_t)i);
    tc_post(lane, TR_OP_MEMSET, ms, sizeof(ms));
  }
  for (unsigned i = 0; i < nchunks; i++) {
    memset(chunk, (int)i, MiB);
    h2d(lane, q, chunk, MiB, false);
  }
  tc_send_record(lane, TR_OP_SYNCHRONIZE, TR_F_WANT_REPLY, 777, NULL, 0);

  t0 = tc_now_ns();
  while (!tc_next_record(lane, &h, &pl)) {
    assert_true(tc_now_ns() - t0 < 60000000000ull);
    tc_pump(&c, 5);
    if (!stalled && lane->req_len > lane->req_off &&
        nghttp2_session_get_stream_remote_window_size(c.ngh, lane->id) <
            (int32_t)(TR_HDR_SIZE + 16 + MiB)) {
      stalled = true;
      sent_at_stall = lane->sent;
    }
  }
  print_message("sender stalled after %.1f MiB queued behind the busy lane\n",
                (double)sent_at_stall / MiB);
  assert_true(stalled);
  /* The lane's own window, plus the small records before it. */
  assert_true(sent_at_stall <= (64 * MiB) + 64 * 1024);
  assert_int_equal(h.request_id, 777);
  assert_int_equal(h.status, 0);
  /* Every chunk ran, in order. */
  assert_int_equal(d2h(lane, q, 16, &r), 0);
  assert_int_equal(r.data[0], (nchunks - 1) & 0xff);
  free(r.data);
  tc_end(sess);
  assert_true(tc_wait_ended(sess));
  tc_close(&c);
  free(chunk);
}

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

static void test_modules(void **state)
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
  connect_agent(&c);
  sess = open_session(&c, 7, &sid);
  lane = open_lane(&c, sid, 1, 200);

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
  s2 = open_session(&c, 8, &sid2);
  l2 = open_lane(&c, sid2, 1, 200);
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

/*
 * Large host-to-device copies are received straight into device memory
 * while earlier copies of the lane still run (agent_session.c,
 * direct_target); the order of the lane must not show.  Two rounds of
 * chunked copies over the same range (the second overlaps the first, so
 * it must wait its turn), copies queued behind a memset and a copy queued
 * behind a kernel: the memory ends as a lane executed in order would leave
 * it.
 */
/*
 * The agent receives large DATA payloads straight into their destination
 * (agent_h2.c, recv_target), following the framing alongside nghttp2.
 * Host-to-device copies sent in frames of many sizes, with and without
 * padding, split at odd places, land intact, and the device bytes around
 * them stay untouched.
 */
static void test_h2d_framing(void **state)
{
  static const struct tc_framing framings[] = {
      {0, 0}, {1u << 20, 0}, {1u << 20, 255}, {256u << 10, 7},
      {(64u << 10) + 3, 1}, {(16u << 10) + 1, 0}};
  const size_t total = 4 * MiB + 12345;
  struct tc_result r;
  uint8_t *buf = malloc(total);

  (void)state;
  for (size_t f = 0; f < sizeof(framings) / sizeof(framings[0]); f++) {
    struct tc_conn c;
    struct tc_stream *sess, *lane;
    uint64_t sid, p;
    size_t off = 0, piece = 777;

    tc_framing = framings[f];
    connect_agent(&c);
    sess = open_session(&c, 16, &sid);
    lane = open_lane(&c, sid, 1, 200);
    p = dmalloc(lane, total + 2 * 4096);
    for (size_t i = 0; i < total; i++)
      buf[i] = (uint8_t)(i * 7 + f);
    /* Pieces of growing, odd sizes up to 1 MiB: chunks of one record each. */
    while (off < total) {
      size_t n = total - off < piece ? total - off : piece;

      h2d(lane, p + 4096 + off, buf + off, n, false);
      off += n;
      piece = piece * 3 < MiB ? piece * 3 + 1 : MiB;
    }
    assert_int_equal(tc_call(lane, TR_OP_SYNCHRONIZE, 0, NULL, 0, NULL), 0);
    assert_int_equal(d2h(lane, p, total + 2 * 4096, &r), 0);
    assert_int_equal(r.len, total + 2 * 4096);
    for (size_t i = 0; i < 4096; i++)
      assert_int_equal(r.data[i] | r.data[4096 + total + i], 0);
    if (memcmp(r.data + 4096, buf, total))
      fail_msg("framing %zu: frame_max %u pad %u: bytes differ", f,
               framings[f].frame_max, framings[f].pad);
    free(r.data);
    tc_end(sess);
    assert_true(tc_wait_ended(sess));
    tc_close(&c);
  }
  tc_framing = (struct tc_framing){0, 0};
  free(buf);
}

/* An event record or wait record for lane. */
static void event_rec(struct tc_stream *lane, uint16_t op, uint64_t ev,
                      uint64_t gen)
{
  uint8_t p[16];

  tr_put_u64(p, ev);
  tr_put_u64(p + 8, gen);
  tc_post(lane, op, p, 16);
}

/*
 * EVENT_WAIT: a lane parks, without holding an execution thread, until
 * another lane's EVENT_RECORD reaches the generation; a generation already
 * reached does not wait; destroying the event lets its waiters go; a lane
 * parked when its session ends is freed with it, and the agent serves on.
 */
static void test_event_wait(void **state)
{
  struct tc_conn c;
  struct tc_stream *sess, *a, *b;
  struct tc_result r;
  uint64_t sid, x, y;
  uint8_t d2d[24];
  const uint64_t ev = 0x4000000000000123ull, ev2 = ev + 1;

  (void)state;
  connect_agent(&c);
  sess = open_session(&c, 17, &sid);
  a = open_lane(&c, sid, 1, 200);
  b = open_lane(&c, sid, 2, 200);
  x = dmalloc(a, 4096);
  y = dmalloc(a, 4096);
  assert_int_equal(dmemset(a, x, 4096, 0), 0);
  assert_int_equal(dmemset(a, y, 4096, 0), 0);

  /* Lane a: wait for ev generation 1, then copy y into x.  Lane b, later:
     set y, then record ev 1.  x must be b's bytes. */
  event_rec(a, TR_OP_EVENT_WAIT, ev, 1);
  tr_put_u64(d2d, x);
  tr_put_u64(d2d + 8, y);
  tr_put_u64(d2d + 16, 4096);
  tc_post(a, TR_OP_MEMCPY_D2D, d2d, sizeof(d2d));
  for (int i = 0; i < 10; i++)
    tc_pump(&c, 10);
  usleep(200000);
  /* Meanwhile every execution thread is free: b runs at once. */
  assert_int_equal(dmemset(b, y, 4096, 0x42), 0);
  event_rec(b, TR_OP_EVENT_RECORD, ev, 1);
  assert_int_equal(tc_call(b, TR_OP_SYNCHRONIZE, 0, NULL, 0, NULL), 0);
  assert_int_equal(tc_call(a, TR_OP_SYNCHRONIZE, 0, NULL, 0, NULL), 0);
  assert_int_equal(d2h(a, x, 4096, &r), 0);
  assert_int_equal(r.data[0], 0x42);
  assert_int_equal(r.data[4095], 0x42);
  free(r.data);

  /* Reached already: no wait. */
  event_rec(a, TR_OP_EVENT_WAIT, ev, 1);
  assert_int_equal(tc_call(a, TR_OP_SYNCHRONIZE, 0, NULL, 0, NULL), 0);

  /* Waiting for a generation never recorded; the event's destruction (on
     another lane) lets the lane go on. */
  event_rec(a, TR_OP_EVENT_WAIT, ev2, 5);
  for (int i = 0; i < 10; i++) /* sent, and parked, before the destroy */
    tc_pump(&c, 10);
  usleep(100000);
  {
    uint8_t h[8];

    tr_put_u64(h, ev2);
    assert_int_equal(tc_call(b, TR_OP_EVENT_DESTROY, 0, h, 8, NULL), 0);
  }
  assert_int_equal(tc_call(a, TR_OP_SYNCHRONIZE, 0, NULL, 0, NULL), 0);

  /* Parked when the session ends: freed with it. */
  event_rec(a, TR_OP_EVENT_WAIT, ev2 + 1, 1);
  for (int i = 0; i < 10; i++)
    tc_pump(&c, 10);
  usleep(100000);
  tc_end(sess);
  assert_true(tc_wait_ended(sess));
  tc_close(&c);

  /* And the agent serves on. */
  connect_agent(&c);
  sess = open_session(&c, 18, &sid);
  a = open_lane(&c, sid, 1, 200);
  assert_int_equal(tc_call(a, TR_OP_SYNCHRONIZE, 0, NULL, 0, NULL), 0);
  tc_end(sess);
  assert_true(tc_wait_ended(sess));
  tc_close(&c);
}

/*
 * Lane marks: a lane waits for another lane's record by request id, even
 * before that lane is open; a lane never waits for its own mark; a mark
 * is reached for good when its lane ends; marks answer EVENT_QUERY but
 * refuse EVENT_RECORD and EVENT_DESTROY.
 */
static void test_lane_mark(void **state)
{
  struct tc_conn c;
  struct tc_stream *sess, *a, *b, *l3;
  struct tc_result r;
  uint64_t sid, x, y, rid1, rid2;
  uint8_t d2d[24], ms[20], q[24];

  (void)state;
  connect_agent(&c);
  sess = open_session(&c, 19, &sid);
  a = open_lane(&c, sid, 1, 200);
  b = open_lane(&c, sid, 2, 200);
  x = dmalloc(a, 4096);
  y = dmalloc(a, 4096);
  assert_int_equal(dmemset(a, x, 4096, 0), 0);
  assert_int_equal(dmemset(a, y, 4096, 0), 0);

  /* Lane a waits for lane 3's second record (ids count from 1), then
     copies y into x; lane 3 does not exist yet. */
  event_rec(a, TR_OP_EVENT_WAIT, tr_lane_mark(3), 2);
  tr_put_u64(d2d, x);
  tr_put_u64(d2d + 8, y);
  tr_put_u64(d2d + 16, 4096);
  tc_post(a, TR_OP_MEMCPY_D2D, d2d, sizeof(d2d));
  for (int i = 0; i < 10; i++)
    tc_pump(&c, 10);
  usleep(200000);
  l3 = open_lane(&c, sid, 3, 200);
  memset_payload(ms, y, 4096, 0x11);
  rid1 = tc_post(l3, TR_OP_MEMSET, ms, sizeof(ms));
  memset_payload(ms, y, 4096, 0x42);
  rid2 = tc_post(l3, TR_OP_MEMSET, ms, sizeof(ms));
  assert_int_equal(rid1, 1);
  assert_int_equal(rid2, 2);
  assert_int_equal(tc_call(a, TR_OP_SYNCHRONIZE, 0, NULL, 0, NULL), 0);
  assert_int_equal(d2h(a, x, 4096, &r), 0);
  assert_int_equal(r.data[0], 0x42);
  assert_int_equal(r.data[4095], 0x42);
  free(r.data);

  /* Queries: reached up to 2, not beyond. */
  tr_put_u64(q, tr_lane_mark(3));
  tr_put_u64(q + 8, 2);
  assert_int_equal(tc_call(b, TR_OP_EVENT_QUERY, 0, q, 16, NULL), 0);
  tr_put_u64(q + 8, 99);
  assert_int_equal(tc_call(b, TR_OP_EVENT_QUERY, 0, q, 16, NULL),
                   600 /* cudaErrorNotReady */);
  /* A mark moves only with its lane. */
  tr_put_u64(q + 8, 100);
  assert_int_equal(tc_call(b, TR_OP_EVENT_RECORD, 0, q, 16, NULL),
                   TR_ST_BAD_HANDLE);
  assert_int_equal(tc_call(b, TR_OP_EVENT_DESTROY, 0, q, 8, NULL),
                   TR_ST_BAD_HANDLE);

  /* EVENT_RECORD's optional flags: MARK is one, others are malformed. */
  tr_put_u64(q, 0x77);
  tr_put_u64(q + 8, 1);
  tr_put_u64(q + 16, TR_EVENT_F_MARK);
  assert_int_equal(tc_call(b, TR_OP_EVENT_RECORD, 0, q, 24, NULL), 0);
  tr_put_u64(q + 8, 1);
  assert_int_equal(tc_call(b, TR_OP_EVENT_QUERY, 0, q, 16, NULL), 0);
  tr_put_u64(q + 8, 2);
  tr_put_u64(q + 16, 2);
  assert_int_equal(tc_call(b, TR_OP_EVENT_RECORD, 0, q, 24, NULL),
                   TR_ST_BAD_RECORD);
  tr_put_u64(q, tr_lane_mark(3));

  /* Its own mark never holds a lane back. */
  event_rec(a, TR_OP_EVENT_WAIT, tr_lane_mark(1), 1000);
  assert_int_equal(tc_call(a, TR_OP_SYNCHRONIZE, 0, NULL, 0, NULL), 0);

  /* Waiting beyond what lane 3 will ever run: its end lets a go on. */
  event_rec(a, TR_OP_EVENT_WAIT, tr_lane_mark(3), 1000);
  for (int i = 0; i < 10; i++)
    tc_pump(&c, 10);
  usleep(100000);
  tc_end(l3);
  assert_int_equal(tc_call(a, TR_OP_SYNCHRONIZE, 0, NULL, 0, NULL), 0);
  tr_put_u64(q + 8, 1000);
  assert_int_equal(tc_call(b, TR_OP_EVENT_QUERY, 0, q, 16, NULL), 0);

  tc_end(sess);
  assert_true(tc_wait_ended(sess));
  tc_close(&c);
}

/* POST /v1/lane taking lane `lane` over (tremote-lane-move: 1). */
static struct tc_stream *move_lane(struct tc_conn *c, uint64_t sid,
                                   unsigned lane, int want_status)
{
  return open_lane_with(c, sid, lane, "tremote-lane-move", "1", want_status);
}

/*
 * A lane's stream moves to another connection, as the broker moves it
 * before a lane's first bulk record (PROTOCOL.md §3): records, then a NOP
 * fence whose reply carries the lane's deferred error, then the move.  The
 * lane keeps what it had (what ran, its request ids and mark), the old
 * stream's response ends, and both connections go on serving, the old
 * one past what the moved lane had sent on it.  A move needs an open lane
 * and no record half received on it; without the header a second stream
 * for the lane is refused.
 */
static void test_lane_move(void **state)
{
  struct tc_conn c1, c2;
  struct tc_stream *sess, *old, *nw, *other, *half;
  struct tc_result r;
  uint64_t sid, x;
  uint8_t ms[20], q[16], buf[64] = {0}, part[10] = {0};
  static uint8_t big[1 << 20];

  (void)state;
  connect_agent(&c1);
  connect_agent(&c2);
  sess = open_session(&c1, 23, &sid);
  old = open_lane(&c2, sid, 1, 200); /* the broker's express connection */
  other = open_lane(&c2, sid, 2, 200);
  x = dmalloc(old, 8 << 20);                          /* id 1 */
  for (int i = 0; i < 8; i++) { /* 8 MiB through the old connection */
    memset(big, i, sizeof(big));
    h2d(old, x + ((uint64_t)i << 20), big, sizeof(big), false); /* 2-9 */
  }
  memset_payload(ms, x, 1 << 20, 0x5a);
  tc_post(old, TR_OP_MEMSET, ms, sizeof(ms));         /* id 10 */
  h2d(old, window(1) + 0x7770000, buf, sizeof(buf), false); /* 11: fails */
  /* The fence (id 11 again): everything before it ran and was answered. */
  old->next_id = 11;
  assert_int_equal(tc_call(old, TR_OP_NOP, 0, NULL, 0, NULL),
                   CU_INVALID_VALUE);

  open_lane(&c1, sid, 1, 409);     /* already open, and no move asked */
  move_lane(&c1, sid, 9, 404);     /* no such lane to move */
  nw = move_lane(&c1, sid, 1, 200);
  assert_true(tc_wait_ended(old)); /* its response ends: nothing more */
  nw->next_id = 12;                /* the lane's ids go on */
  assert_int_equal(d2h(nw, x + (7u << 20), 1 << 20, &r), 0);  /* id 12 */
  assert_int_equal(r.data[0], 7);
  free(r.data);
  assert_int_equal(d2h(nw, x, 1 << 20, &r), 0);                 /* id 13 */
  assert_int_equal(r.len, 1u << 20);
  assert_int_equal(r.data[0], 0x5a);
  assert_int_equal(r.data[(1 << 20) - 1], 0x5a);
  free(r.data);
  /* Its mark counts on: another lane sees record 13 done. */
  tr_put_u64(q, tr_lane_mark(1));
  tr_put_u64(q + 8, 13);
  assert_int_equal(tc_call(other, TR_OP_EVENT_QUERY, 0, q, 16, NULL), 0);
  /* The old connection serves on, 8 MiB more through it. */
  for (int i = 0; i < 8; i++)
    assert_int_equal(h2d(other, x + ((uint64_t)i << 20), big, sizeof(big),
                         true), 0);

  /* Half a record header on a lane: it cannot move now.  (The NOP on
     another lane of the same connection comes after those bytes.) */
  half = open_lane(&c2, sid, 3, 200);
  tc_send(half, part, sizeof(part));
  assert_int_equal(tc_call(other, TR_OP_NOP, 0, NULL, 0, NULL), 0);
  move_lane(&c1, sid, 3, 409);

  tc_end(nw);
  assert_true(tc_wait_ended(nw));
  tc_end(sess);
  assert_true(tc_wait_ended(sess));
  tc_close(&c2);
  tc_close(&c1);
}

/* MALLOC beyond the session's --quota (64M here) fails with
   cudaErrorMemoryAllocation; FREE gives the room back; another session
   has a quota of its own. */
static void test_quota(void **state)
{
  struct tc_conn c;
  struct tc_stream *s1, *s2, *a, *b;
  struct tc_result r;
  uint64_t sid1, sid2, p1, p2, p3;
  uint8_t arg[8];

  (void)state;
  connect_agent(&c);
  s1 = open_session(&c, 20, &sid1);
  s2 = open_session(&c, 21, &sid2);
  a = open_lane(&c, sid1, 1, 200);
  b = open_lane(&c, sid2, 1, 200);
  p1 = dmalloc(a, 40ull << 20);
  tr_put_u64(arg, 40ull << 20);
  assert_int_equal(tc_call(a, TR_OP_MALLOC, 0, arg, 8, NULL),
                   2 /* cudaErrorMemoryAllocation */);
  p2 = dmalloc(a, 20ull << 20); /* 60M in all: still inside */
  tr_put_u64(arg, 8ull << 20);
  assert_int_equal(tc_call(a, TR_OP_MALLOC, 0, arg, 8, NULL), 2);
  p3 = dmalloc(b, 60ull << 20); /* the other session's own 64M */
  tr_put_u64(arg, p1);
  assert_int_equal(tc_call(a, TR_OP_FREE, 0, arg, 8, NULL), 0);
  p1 = dmalloc(a, 40ull << 20); /* room again */
  assert_true(p1 && p2 && p3);
  tr_put_u64(arg, 1ull << 40); /* far beyond: refused, not attempted */
  assert_int_equal(tc_call(a, TR_OP_MALLOC, 0, arg, 8, &r), 2);
  free(r.data);
  tc_end(s1);
  tc_end(s2);
  assert_true(tc_wait_ended(s1));
  assert_true(tc_wait_ended(s2));
  tc_close(&c);
}

/*
 * A peer that stops answering (its host gone: no FIN) is asked with a PING
 * and, silent past --idle-timeout (3 s here), dropped with its sessions:
 * the device memory it held is free again.  A peer that answers PINGs
 * stays, however long it says nothing else.
 */
static void test_silent_peer(void **state)
{
  struct tc_conn c, d;
  struct tc_stream *sess, *lane, *s2, *l2;
  uint64_t sid, sid2, fr0, fr1, fr2, total;

  (void)state;
  connect_agent(&d);
  s2 = open_session(&d, 31, &sid2);
  l2 = open_lane(&d, sid2, 1, 200);
  mem_info(l2, &fr0, &total);

  connect_agent(&c);
  sess = open_session(&c, 30, &sid);
  lane = open_lane(&c, sid, 1, 200);
  (void)dmalloc(lane, 40ull << 20);
  mem_info(l2, &fr1, &total);
  assert_true(fr1 + (40ull << 20) <= fr0);
  /* d answers PINGs while c says nothing at all (nobody pumps it). */
  for (int i = 0; i < 45; i++)
    tc_pump(&d, 100);
  for (int i = 0; i < 40; i++) { /* freeing runs on the agent's threads */
    mem_info(l2, &fr2, &total);
    if (fr2 == fr0)
      break;
    usleep(50000);
  }
  assert_int_equal(fr2, fr0); /* c's session is gone, memory and all */
  (void)sess;
  tc_close(&c);
  tc_end(s2);
  assert_true(tc_wait_ended(s2));
  tc_close(&d);
}

/*
 * --exit-idle 2: the agent stays while a broker is connected (well past
 * 2 s), and exits 0 on its own about 2 s after the last one left.
 */
static void test_exit_idle(void **state)
{
  struct tc_conn c;
  struct tc_stream *sess;
  uint64_t sid, t0;
  int status = 0;
  pid_t r = 0;

  (void)state;
  connect_agent(&c);
  sess = open_session(&c, 5, &sid);
  for (int i = 0; i < 35; i++)
    tc_pump(&c, 100);
  assert_int_equal(waitpid(agent_pid, &status, WNOHANG), 0);
  tc_end(sess);
  assert_true(tc_wait_ended(sess));
  tc_close(&c);
  t0 = tc_now_ns() / 1000000;
  for (int i = 0; i < 100 && r == 0; i++) {
    usleep(100000);
    r = waitpid(agent_pid, &status, WNOHANG);
  }
  assert_int_equal(r, agent_pid);
  agent_reaped = 1;
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  assert_true(tc_now_ns() / 1000000 - t0 >= 1500); /* not before the 2 s */
}

static void test_h2d_direct_order(void **state)
{
  const size_t chunk = MiB, total = 16 * MiB;
  struct tc_conn c;
  struct tc_stream *sess, *lane;
  struct tc_result r;
  uint64_t sid, p;
  uint8_t *buf = malloc(chunk), ms[20];

  connect_agent(&c);
  sess = open_session(&c, 16, &sid);
  lane = open_lane(&c, sid, 1, 200);
  p = dmalloc(lane, total);

  for (int round = 1; round <= 3; round++) {
    if (round == 3) {
      /* A memset first: the copies behind it must not overtake it. */
      memset_payload(ms, p, total, 0x33);
      tc_post(lane, TR_OP_MEMSET, ms, sizeof(ms));
    }
    for (size_t off = 0; off < total; off += chunk) {
      memset(buf, round * 16 + (int)(off / chunk), chunk);
      h2d(lane, p + off, buf, chunk, false);
    }
  }
  assert_int_equal(tc_call(lane, TR_OP_SYNCHRONIZE, 0, NULL, 0, NULL), 0);
  assert_int_equal(d2h(lane, p, total, &r), 0);
  assert_int_equal(r.len, total);
  for (size_t off = 0; off < total; off += chunk) {
    uint8_t want = (uint8_t)(3 * 16 + off / chunk);

    for (size_t i = 0; i < chunk; i += 4093)
      assert_int_equal(r.data[off + i], want);
    assert_int_equal(r.data[off + chunk - 1], want);
  }
  free(r.data);
  tc_end(sess);
  assert_true(tc_wait_ended(sess));
  tc_close(&c);
  free(buf);
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
    "  st.global.u32 [%rd1], %r1;\n  ret;\n}\n"
    ".visible .entry spin(.param .u64 ns)\n{\n"
    "  .reg .b64 %rd<5>;\n  .reg .pred %p<2>;\n"
    "  ld.param.u64 %rd1, [ns];\n  mov.u64 %rd2, %globaltimer;\n"
    "  add.u64 %rd3, %rd2, %rd1;\nLOOP:\n"
    "  mov.u64 %rd4, %globaltimer;\n  setp.lt.u64 %p1, %rd4, %rd3;\n"
    "  @%p1 bra LOOP;\n  ret;\n}\n";

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
static void test_kernel_output(void **state)
{
  struct tc_conn c;
  struct tc_stream *sess, *lane;
  struct tc_result r;
  uint64_t sid, addr;
  uint8_t p[TR_LAUNCH_FIXED];
  char *text;

  connect_agent(&c);
  sess = open_session(&c, 9, &sid);
  lane = open_lane(&c, sid, 1, 200);
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
  assert_true(addr >= window(9) && addr < window(9) + WIN_SIZE);
  free(r.data);
  assert_int_equal(d2h(lane, addr, 4, &r), 0);
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
static void test_kernel_fault_sticky(void **state)
{
  struct tc_conn c;
  struct tc_stream *sess, *lane, *lane2, *s2, *l2;
  struct tc_result r;
  uint64_t sid, sid2, target = 0x10;
  uint8_t p[8];
  char *text;

  connect_agent(&c);
  sess = open_session(&c, 10, &sid);
  lane = open_lane(&c, sid, 1, 200);
  lane2 = open_lane(&c, sid, 2, 200);
  s2 = open_session(&c, 11, &sid2);
  l2 = open_lane(&c, sid2, 1, 200);
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
  (void)dmalloc(l2, 4096);
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
static void test_kernel_long_ping(void **state)
{
  struct tc_conn c;
  struct tc_stream *sess, *lane, *s2, *l2;
  uint64_t sid, sid2, ns = SPIN_NS, t0, t_ack, t_other, t_done;
  const uint8_t *pl;
  struct tr_hdr h;
  unsigned acks;

  connect_agent(&c);
  sess = open_session(&c, 12, &sid);
  lane = open_lane(&c, sid, 1, 200);
  s2 = open_session(&c, 13, &sid2);
  l2 = open_lane(&c, sid2, 1, 200);
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
static void test_kernel_watchdog(void **state)
{
  struct tc_conn c;
  struct tc_stream *sess, *lane, *s2, *l2;
  uint64_t sid, sid2, ns = 3600ull * 1000000000ull, t0;
  double secs;

  connect_agent(&c);
  sess = open_session(&c, 14, &sid);
  lane = open_lane(&c, sid, 1, 200);
  s2 = open_session(&c, 15, &sid2);
  l2 = open_lane(&c, sid2, 1, 200);
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

int main(int argc, char **argv)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_auth_rejected),
    cmocka_unit_test(test_hello),
    cmocka_unit_test(test_hello_version_mismatch),
    cmocka_unit_test(test_routes),
    cmocka_unit_test(test_memory_roundtrip),
    cmocka_unit_test(test_memory_errors),
    cmocka_unit_test(test_sessions_isolated),
    cmocka_unit_test(test_session_close_frees),
    cmocka_unit_test(test_ping_during_long_op),
    cmocka_unit_test(test_malformed_record),
    cmocka_unit_test(test_d2h_bounded),
    cmocka_unit_test(test_lane_inbound_bounded),
    cmocka_unit_test(test_modules),
    cmocka_unit_test(test_h2d_framing),
    cmocka_unit_test(test_event_wait),
    cmocka_unit_test(test_lane_mark),
    cmocka_unit_test(test_lane_move),
    cmocka_unit_test(test_h2d_direct_order),
    cmocka_unit_test(test_kernel_output),
    cmocka_unit_test(test_kernel_fault_sticky),
    cmocka_unit_test(test_kernel_long_ping),
  };
  /* A third, with a quota per session and a short --idle-timeout. */
  const struct CMUnitTest quota_tests[] = {
    cmocka_unit_test(test_quota),
    cmocka_unit_test(test_silent_peer),
  };
  /* A fourth, that exits when nobody is connected. */
  const struct CMUnitTest exit_idle_tests[] = {
    cmocka_unit_test(test_exit_idle),
  };
  /* A second agent, with a short watchdog. */
  const struct CMUnitTest watchdog_tests[] = {
    cmocka_unit_test(test_kernel_watchdog),
  };
  int failed;

  if (argc < 2) {
    fprintf(stderr, "usage: %s PATH-TO-tremote-gpu-agent\n", argv[0]);
    return 2;
  }
  agent_path = argv[1];
  signal(SIGPIPE, SIG_IGN);
  failed = cmocka_run_group_tests(tests, start_agent, stop_agent);
  agent_watchdog = "2";
  failed += cmocka_run_group_tests(watchdog_tests, start_agent, stop_agent);
  agent_watchdog = "600";
  agent_quota = "64M";
  agent_idle = "3";
  failed += cmocka_run_group_tests(quota_tests, start_agent, stop_agent);
  agent_quota = NULL;
  agent_idle = NULL;
  agent_exit_idle = "2";
  failed += cmocka_run_group_tests(exit_idle_tests, start_agent, stop_agent);
  return failed;
}
