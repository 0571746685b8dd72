/*
 * test_agent.c: the real tremote-gpu-agent, driven over loopback HTTP/2.
 *
 * The agent binary (argv[1], from CMake) is started once for each group
 * with its secret on --secret-fd and its port read from --ready-fd,
 * exactly as the broker's LOCAL provider does, and stopped with SIGTERM at
 * the end (which must exit 0: under ASan that includes the leak check).
 * Each test talks to it with the synchronous client of test_agent_h2c.c.
 *
 * This file holds the agent process, the helpers of test_agent.h and the
 * test tables; the tests are in test_agent_sessions.c, test_agent_lanes.c
 * and test_agent_kernels.c.
 */
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

#include "test_agent.h"

static const char *agent_path;
static const char *agent_watchdog = "600"; /* --emu-watchdog SEC */
static const char *agent_quota;             /* --quota SIZE, or none */
static const char *agent_idle;              /* --idle-timeout SEC, or none */
static const char *agent_exit_idle;         /* --exit-idle SEC, or none */
static char agent_tls[64]; /* a directory of --gen-cert's files: TLS, or "" */
int ta_agent_reaped; /* a test saw the agent exit and reaped it */
pid_t ta_agent_pid;
static uint16_t agent_port;
const char ta_secret[] = "5ec1e7c0ffee5ec1e7c0ffee5ec1e7c0ffee5ec1e7c0ffee5ec1e7c0ffee0001";
static unsigned next_session = 1;

/* ---- the agent process ------------------------------------------------- */

/* agent --gen-cert DIR, quietly: 0 or -1. */
static int gen_cert(const char *dir)
{
  int status;
  pid_t pid = fork();

  if (pid == 0) {
    int null = open("/dev/null", O_WRONLY);

    dup2(null, 1);
    execl(agent_path, agent_path, "--gen-cert", dir, (char *)NULL);
    _exit(127);
  }
  if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
      WEXITSTATUS(status) != 0)
    return -1;
  return 0;
}

static int start_agent(void **state)
{
  int sp[2], rp[2];
  char line[32] = {0}, cert[96], key[96];
  size_t n = 0;

  snprintf(cert, sizeof(cert), "%s/cert.pem", agent_tls);
  snprintf(key, sizeof(key), "%s/key.pem", agent_tls);
  if (agent_tls[0] && access(cert, R_OK) != 0 && gen_cert(agent_tls) < 0)
    return -1;
  if (pipe2(sp, O_CLOEXEC) < 0 || pipe2(rp, O_CLOEXEC) < 0)
    return -1;
  if (write(sp[1], ta_secret, strlen(ta_secret)) < 0 ||
      write(sp[1], "\n", 1) < 0)
    return -1;
  close(sp[1]);
  ta_agent_pid = fork();
  if (ta_agent_pid < 0)
    return -1;
  if (ta_agent_pid == 0) {
    /* Move out of the way first: dup2 onto itself would keep CLOEXEC. */
    int s = fcntl(sp[0], F_DUPFD, 10), r = fcntl(rp[1], F_DUPFD, 10);

    /* If this test dies, the agent must not outlive it. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);

    dup2(s, 3);
    dup2(r, 4);
    {
      const char *argv[32] = {agent_path, "--listen", "127.0.0.1:0",
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
      if (agent_tls[0]) {
        argv[k++] = "--tls-cert";
        argv[k++] = cert;
        argv[k++] = "--tls-key";
        argv[k++] = key;
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
    kill(ta_agent_pid, SIGKILL);
    waitpid(ta_agent_pid, NULL, 0);
    return -1;
  }
  return 0;
}

static int stop_agent(void **state)
{
  int status = 0;

  if (ta_agent_reaped)
    return 0;
  kill(ta_agent_pid, SIGTERM);
  for (int i = 0; i < 600; i++) {
    pid_t r = waitpid(ta_agent_pid, &status, WNOHANG);

    if (r == ta_agent_pid) {
      if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
      fprintf(stderr, "agent exited with status %#x\n", status);
      return -1;
    }
    usleep(50000);
  }
  fprintf(stderr, "agent did not exit after SIGTERM\n");
  kill(ta_agent_pid, SIGKILL);
  waitpid(ta_agent_pid, NULL, 0);
  return -1;
}

/* ---- helpers ------------------------------------------------------------ */

void ta_connect_agent(struct tc_conn *c)
{
  assert_int_equal(agent_tls[0] ? tc_connect_tls(c, agent_port)
                                 : tc_connect(c, agent_port),
                   0);
}

uint64_t ta_window(unsigned i)
{
  return WIN_BASE + i * WIN_SIZE;
}

struct tc_stream *ta_open_session(struct tc_conn *c, unsigned win,
                                  uint64_t *id)
{
  char sid[17], va[64];
  struct tc_stream *st;

  *id = 0x5e55000000000000ull + next_session++;
  snprintf(sid, sizeof(sid), "%016llx", (unsigned long long)*id);
  snprintf(va, sizeof(va), "%llx+%llx", (unsigned long long)ta_window(win),
           (unsigned long long)WIN_SIZE);
  st = tc_request(c, "/v1/session", ta_secret,
                  (const char *const[]){"tremote-session", sid, "tremote-va",
                                        va, NULL});
  assert_non_null(st);
  assert_true(tc_wait_status(st));
  assert_int_equal(st->status, 200);
  return st;
}

struct tc_stream *ta_open_lane_with(struct tc_conn *c, uint64_t sid,
                                    unsigned lane, const char *name,
                                    const char *value, int want_status)
{
  char s[17], l[16];
  struct tc_stream *st;

  snprintf(s, sizeof(s), "%016llx", (unsigned long long)sid);
  snprintf(l, sizeof(l), "%u", lane);
  st = tc_request(c, "/v1/lane", ta_secret,
                  (const char *const[]){"tremote-session", s, "tremote-lane",
                                        l, name, value, NULL});
  assert_non_null(st);
  assert_true(tc_wait_status(st));
  assert_int_equal(st->status, want_status);
  return st;
}

struct tc_stream *ta_open_lane_prio(struct tc_conn *c, uint64_t sid,
                                    unsigned lane, const char *prio,
                                    int want_status)
{
  return ta_open_lane_with(c, sid, lane, prio ? "tremote-priority" : NULL,
                           prio, want_status);
}

struct tc_stream *ta_open_lane(struct tc_conn *c, uint64_t sid,
                               unsigned lane, int want_status)
{
  return ta_open_lane_prio(c, sid, lane, NULL, want_status);
}

uint64_t ta_dmalloc(struct tc_stream *lane, uint64_t size)
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

uint32_t ta_dfree(struct tc_stream *lane, uint64_t ptr)
{
  uint8_t p[8];

  tr_put_u64(p, ptr);
  return tc_call(lane, TR_OP_FREE, 0, p, 8, NULL);
}

uint8_t *ta_h2d_payload(uint64_t dst, const void *src, size_t len,
                        size_t *plen)
{
  uint8_t *p = malloc(16 + len);

  tr_put_u64(p, dst);
  tr_put_u64(p + 8, len);
  memcpy(p + 16, src, len);
  *plen = 16 + len;
  return p;
}

uint32_t ta_h2d(struct tc_stream *lane, uint64_t dst, const void *src,
                size_t len, bool reply)
{
  size_t plen;
  uint8_t *p = ta_h2d_payload(dst, src, len, &plen);
  uint32_t st = 0;

  if (reply)
    st = tc_call(lane, TR_OP_MEMCPY_H2D, 0, p, plen, NULL);
  else
    tc_post(lane, TR_OP_MEMCPY_H2D, p, plen);
  free(p);
  return st;
}

uint32_t ta_d2h(struct tc_stream *lane, uint64_t src, uint64_t len,
                struct tc_result *r)
{
  uint8_t p[16];

  tr_put_u64(p, src);
  tr_put_u64(p + 8, len);
  return tc_call(lane, TR_OP_MEMCPY_D2H, 0, p, 16, r);
}

uint32_t ta_d2d(struct tc_stream *lane, uint64_t dst, uint64_t src,
                uint64_t len)
{
  uint8_t p[24];

  tr_put_u64(p, dst);
  tr_put_u64(p + 8, src);
  tr_put_u64(p + 16, len);
  return tc_call(lane, TR_OP_MEMCPY_D2D, 0, p, 24, NULL);
}

void ta_memset_payload(uint8_t p[20], uint64_t dst, uint64_t len,
                       uint32_t v)
{
  tr_put_u64(p, dst);
  tr_put_u64(p + 8, len);
  tr_put_u32(p + 16, v);
}

uint32_t ta_dmemset(struct tc_stream *lane, uint64_t dst, uint64_t len,
                    uint32_t v)
{
  uint8_t p[20];

  ta_memset_payload(p, dst, len, v);
  return tc_call(lane, TR_OP_MEMSET, 0, p, 20, NULL);
}

void ta_mem_info(struct tc_stream *lane, uint64_t *fr, uint64_t *total)
{
  struct tc_result r;

  assert_int_equal(tc_call(lane, TR_OP_MEM_GET_INFO, 0, NULL, 0, &r), 0);
  assert_int_equal(r.len, 16);
  *fr = tr_get_u64(r.data);
  *total = tr_get_u64(r.data + 8);
  free(r.data);
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
    cmocka_unit_test(test_deferred_flag),
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
  /* A fifth, serving TLS. */
  const struct CMUnitTest tls_tests[] = {
    cmocka_unit_test(test_tls_reset_midframe),
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
  agent_exit_idle = NULL;
  {
    char dir[] = "/tmp/test_agent_tls.XXXXXX";

    if (!mkdtemp(dir)) {
      perror("mkdtemp");
      return failed + 1;
    }
    snprintf(agent_tls, sizeof(agent_tls), "%s", dir);
    failed += cmocka_run_group_tests(tls_tests, start_agent, stop_agent);
    for (const char *const *f = (const char *const[]){"cert.pem", "key.pem",
                                                      NULL};
         *f; f++) {
      char path[128];

      snprintf(path, sizeof(path), "%s/%s", agent_tls, *f);
      unlink(path);
    }
    rmdir(dir);
  }
  return failed;
}
