/*
 * test_relay.c: tr_relay does what its options say.
 *
 *   test_relay TR_RELAY
 *
 * Each case starts a server thread (echo or sink) on a free loopback port,
 * a tr_relay in front of it, and talks through the relay:
 *   rtt        --rtt-ms 20 adds 20 ms to a ping-pong, never less (the upper
 *              bound is loose: the machines we run on are shared)
 *   rate       --rate 50M: a 25 MB stream takes at least 0.5 s
 *   bdp        --rtt-ms 20 --rate 200M: the delay costs no throughput
 *   intact     64 MiB of pseudo-random bytes echoed through, both ways
 *              at once, come back intact
 *   drop/reset/stall  the far side gets exactly BYTES, then EOF, a reset,
 *              or silence (and the rest after --stall-ms)
 *   fault-conn faults hit only the connection named
 *   exec-agent the wrapper mode, with this program as the fake agent:
 *              the port goes through, SIGTERM is forwarded, the agent's
 *              exit status comes back
 * Exits 0 when all pass, 1 otherwise.  Times are printed.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *relay_path;
static int failures;

#define CHECK(cond, ...)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      printf("  FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                 \
      printf(__VA_ARGS__);                                                     \
      printf("\n");                                                            \
      failures++;                                                              \
    }                                                                          \
  } while (0)

static double now_s(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int tcp_listen(int *port)
{
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof(sa);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

  if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
      listen(fd, 8) < 0 || getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
    perror("listen");
    exit(1);
  }
  *port = ntohs(sa.sin_port);
  return fd;
}

static int tcp_connect(int port)
{
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
    perror("connect");
    exit(1);
  }
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

static int full_write(int fd, const void *p, size_t n)
{
  size_t done = 0;

  while (done < n) {
    ssize_t k = write(fd, (const char *)p + done, n - done);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return -1;
    done += (size_t)k;
  }
  return 0;
}

static int full_read(int fd, void *p, size_t n)
{
  size_t done = 0;

  while (done < n) {
    ssize_t k = read(fd, (char *)p + done, n - done);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return -1;
    done += (size_t)k;
  }
  return 0;
}

/* ---- servers ----------------------------------------------------------- */

enum srv_mode { SRV_ECHO, SRV_SINK };

/* A server thread: accepts nconn connections one after another.  A sink
 * reads until EOF or an error (recording the bytes, the first byte's time,
 * the largest pause between reads, and how it ended) and, when ack_at is
 * reached, writes one byte back. */
struct srv {
  enum srv_mode mode;
  int lfd, nconn;
  size_t ack_at;
  size_t got[4];
  int end_errno[4]; /* 0 = EOF */
  double gap[4];    /* longest pause between reads, seconds */
  pthread_t th;
};

static void *srv_main(void *arg)
{
  struct srv *s = arg;
  static char buf[1 << 20];

  for (int i = 0; i < s->nconn; i++) {
    int c = accept(s->lfd, NULL, NULL);
    double last = 0;
    if (c < 0)
      break;
    for (;;) {
      ssize_t k = read(c, buf, sizeof(buf));
      double t = now_s();
      if (k <= 0) {
        s->end_errno[i] = k < 0 ? errno : 0;
        break;
      }
      if (last && t - last > s->gap[i])
        s->gap[i] = t - last;
      last = t;
      if (s->mode == SRV_ECHO) {
        if (full_write(c, buf, (size_t)k) < 0)
          break;
      } else {
        size_t before = s->got[i];
        /* Atomic: the stall case reads it while this thread still runs. */
        __atomic_store_n(&s->got[i], before + (size_t)k, __ATOMIC_RELAXED);
        if (s->ack_at && before < s->ack_at && s->got[i] >= s->ack_at)
          (void)!write(c, "k", 1);
      }
    }
    close(c);
  }
  return NULL;
}

static int srv_start(struct srv *s, enum srv_mode mode, int nconn)
{
  int port;

  memset(s, 0, sizeof(*s));
  s->mode = mode;
  s->nconn = nconn;
  s->lfd = tcp_listen(&port);
  pthread_create(&s->th, NULL, srv_main, s);
  return port;
}

static void srv_join(struct srv *s)
{
  pthread_join(s->th, NULL);
  close(s->lfd);
}

/* ---- the relay --------------------------------------------------------- */

struct relay {
  pid_t pid;
  int port;
};

/* Start tr_relay --to 127.0.0.1:PORT EXTRA... (NULL-terminated). */
static struct relay relay_start(int to_port, const char *extra, ...)
{
  const char *argv[32];
  char to[32], fdarg[16], line[32] = {0};
  int p[2], n = 0;
  struct relay r;
  va_list ap;

  if (pipe(p) < 0)
    exit(1);
  snprintf(to, sizeof(to), "127.0.0.1:%d", to_port);
  snprintf(fdarg, sizeof(fdarg), "%d", p[1]);
  argv[n++] = relay_path;
  argv[n++] = "--to";
  argv[n++] = to;
  argv[n++] = "--ready-fd";
  argv[n++] = fdarg;
  va_start(ap, extra);
  for (const char *a = extra; a && n < 30; a = va_arg(ap, const char *))
    argv[n++] = a;
  va_end(ap);
  argv[n] = NULL;
  r.pid = fork();
  if (r.pid == 0) {
    close(p[0]);
    execv(relay_path, (char **)argv);
    _exit(127);
  }
  close(p[1]);
  if (read(p[0], line, sizeof(line) - 1) <= 0) {
    printf("  FAIL: the relay reported no port\n");
    exit(1);
  }
  close(p[0]);
  r.port = atoi(line);
  return r;
}

/* SIGTERM; returns the exit status (or 128+signal). */
static int relay_stop(struct relay *r)
{
  int st;

  kill(r->pid, SIGTERM);
  waitpid(r->pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int cmp_d(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median_rtt(int port, int n)
{
  double t[64];
  char buf[64] = {0};
  int fd = tcp_connect(port);

  for (int i = 0; i < n; i++) {
    double t0 = now_s();
    if (full_write(fd, buf, sizeof(buf)) || full_read(fd, buf, sizeof(buf)))
      return -1;
    t[i] = now_s() - t0;
  }
  close(fd);
  qsort(t, (size_t)n, sizeof(double), cmp_d);
  return t[n / 2];
}

static void test_rtt(void)
{
  struct srv s;
  int port = srv_start(&s, SRV_ECHO, 2);
  struct relay r = relay_start(port, "--rtt-ms", "20", "--rate", "0", NULL);
  double m = median_rtt(r.port, 15);

  printf("rtt: --rtt-ms 20: median %.2f ms\n", m * 1e3);
  CHECK(m >= 0.0199, "released early: %.2f ms", m * 1e3);
  CHECK(m < 0.040, "far too slow: %.2f ms", m * 1e3);
  relay_stop(&r);
  r = relay_start(port, "--rtt-ms", "0", NULL);
  m = median_rtt(r.port, 15);
  printf("rtt: --rtt-ms 0: median %.3f ms\n", m * 1e3);
  CHECK(m < 0.005, "no delay asked, %.2f ms", m * 1e3);
  relay_stop(&r);
  srv_join(&s);
}

/* Stream TOTAL bytes one way; the sink acks the last; returns seconds. */
static double stream(int port, struct srv *s, size_t total)
{
  static char buf[1 << 20];
  int fd = tcp_connect(port);
  double t0 = now_s();
  char ack;

  s->ack_at = total;
  for (size_t off = 0; off < total; off += sizeof(buf))
    if (full_write(fd, buf, total - off < sizeof(buf) ? total - off : sizeof(buf)))
      return -1;
  if (full_read(fd, &ack, 1))
    return -1;
  t0 = now_s() - t0;
  close(fd);
  return t0;
}

static void test_rate(void)
{
  struct srv s;
  int port = srv_start(&s, SRV_SINK, 2);
  struct relay r = relay_start(port, "--rate", "50M", NULL);
  double t = stream(r.port, &s, 25000000);

  printf("rate: --rate 50M: 25 MB in %.3f s = %.1f MB/s\n", t, 25 / t);
  CHECK(t >= 0.5 * 0.97, "cap exceeded: %.1f MB/s", 25 / t);
  CHECK(t < 1.5, "far below the cap: %.1f MB/s", 25 / t);
  relay_stop(&r);
  /* A 20 ms link at 200 MB/s carries 40 MB in 0.2 s + 10 ms, not in
   * (40 MB / window) round trips. */
  r = relay_start(port, "--rtt-ms", "20", "--rate", "200M", NULL);
  t = stream(r.port, &s, 40000000);
  printf("bdp: --rtt-ms 20 --rate 200M: 40 MB in %.3f s = %.1f MB/s\n", t, 40 / t);
  CHECK(t >= 0.2 * 0.97 + 0.010, "cap or delay not applied: %.3f s", t);
  CHECK(t < 0.6, "the delay throttles throughput: %.3f s", t);
  relay_stop(&r);
  srv_join(&s);
}

static uint64_t rnd_state;
static uint64_t rnd(void)
{
  rnd_state ^= rnd_state << 13;
  rnd_state ^= rnd_state >> 7;
  rnd_state ^= rnd_state << 17;
  return rnd_state;
}

struct writer {
  int fd;
  size_t total;
};

static void *writer_main(void *arg)
{
  struct writer *w = arg;
  uint64_t st = 12345, buf[8192];

  for (size_t off = 0; off < w->total; off += sizeof(buf)) {
    for (size_t i = 0; i < 8192; i++) {
      st ^= st << 13;
      st ^= st >> 7;
      st ^= st << 17;
      buf[i] = st;
    }
    if (full_write(w->fd, buf, sizeof(buf)))
      break;
  }
  shutdown(w->fd, SHUT_WR);
  return NULL;
}

static void test_intact(void)
{
  struct srv s;
  int port = srv_start(&s, SRV_ECHO, 1);
  struct relay r = relay_start(port, "--rtt-ms", "2", "--rate", "0", NULL);
  struct writer w = {.fd = tcp_connect(r.port), .total = 64u << 20};
  uint64_t buf[8192];
  size_t bad = 0, got = 0;
  pthread_t th;
  double t0 = now_s();

  rnd_state = 12345;
  pthread_create(&th, NULL, writer_main, &w);
  for (; got < w.total; got += sizeof(buf)) {
    if (full_read(w.fd, buf, sizeof(buf)))
      break;
    for (size_t i = 0; i < 8192; i++)
      bad += buf[i] != rnd();
  }
  {
    char c;
    ssize_t k = read(w.fd, &c, 1);
    CHECK(k == 0, "no EOF after the data (%zd)", k);
  }
  pthread_join(th, NULL);
  printf("intact: 64 MiB echoed in %.2f s, %zu words wrong\n", now_s() - t0, bad);
  CHECK(got == w.total, "%zu of %zu bytes came back", got, w.total);
  CHECK(bad == 0, "%zu words corrupted", bad);
  close(w.fd);
  relay_stop(&r);
  srv_join(&s);
}

/* Send 10000 bytes through a relay with a fault at 1000. */
static void fault_case(const char *opt, int expect_errno, const char *stall_ms)
{
  static char buf[10000];
  struct srv s;
  int port = srv_start(&s, SRV_SINK, 1);
  struct relay r = stall_ms ? relay_start(port, opt, "1000", "--stall-ms", stall_ms, NULL)
                            : relay_start(port, opt, "1000", NULL);
  int fd = tcp_connect(r.port);
  double t0 = now_s();

  signal(SIGPIPE, SIG_IGN);
  (void)full_write(fd, buf, sizeof(buf));
  if (strcmp(opt, "--stall-after") == 0 && !stall_ms) {
    /* Silence, but no end: the sink still waits after 300 ms. */
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    CHECK(poll(&pf, 1, 300) == 0, "the stalled connection ended");
    size_t got = __atomic_load_n(&s.got[0], __ATOMIC_RELAXED);
    CHECK(got == 1000, "got %zu bytes before the stall", got);
    shutdown(fd, SHUT_WR);
    relay_stop(&r);
    close(fd);
    srv_join(&s);
    printf("%s 1000: 1000 bytes, then silence\n", opt);
    return;
  }
  if (stall_ms) {
    shutdown(fd, SHUT_WR); /* the sink ends once the rest has come */
  } else {
    char c;
    ssize_t k = read(fd, &c, 1); /* the client's own end */
    if (expect_errno)
      CHECK(k < 0 && errno == expect_errno, "client: read %zd (%s)", k,
            k < 0 ? strerror(errno) : "no error");
    else
      CHECK(k == 0, "client: read %zd, not EOF", k);
  }
  srv_join(&s);
  printf("%s 1000%s%s: far side got %zu bytes, ended by %s, longest pause "
         "%.0f ms, %.0f ms in all\n", opt, stall_ms ? " --stall-ms " : "",
         stall_ms ? stall_ms : "", s.got[0],
         s.end_errno[0] ? strerror(s.end_errno[0]) : "EOF", s.gap[0] * 1e3,
         (now_s() - t0) * 1e3);
  if (stall_ms) {
    CHECK(s.got[0] == sizeof(buf), "got %zu after the stall", s.got[0]);
    CHECK(s.gap[0] >= atoi(stall_ms) / 1e3 * 0.95, "pause %.3f s", s.gap[0]);
  } else {
    CHECK(s.got[0] == 1000, "got %zu, not exactly 1000", s.got[0]);
    CHECK(s.end_errno[0] == expect_errno, "ended by %s",
          s.end_errno[0] ? strerror(s.end_errno[0]) : "EOF");
  }
  close(fd);
  relay_stop(&r);
}

static void test_fault_conn(void)
{
  static char buf[1000];
  struct srv s;
  int port = srv_start(&s, SRV_SINK, 2);
  struct relay r = relay_start(port, "--drop-after", "100", "--fault-conn", "2", NULL);

  for (int i = 0; i < 2; i++) {
    int fd = tcp_connect(r.port);
    (void)full_write(fd, buf, sizeof(buf));
    shutdown(fd, SHUT_WR);
    while (read(fd, buf, sizeof(buf)) > 0)
      ;
    close(fd);
  }
  srv_join(&s);
  printf("fault-conn 2: first connection %zu bytes, second %zu\n", s.got[0], s.got[1]);
  CHECK(s.got[0] == 1000 && s.got[1] == 100, "%zu, %zu", s.got[0], s.got[1]);
  relay_stop(&r);
}

/* The fake agent: --ready-fd N is the only argument it reads. */
static int fake_agent(int argc, char **argv)
{
  struct srv s;
  int fd = -1, port;
  char line[16];
  sigset_t set;
  int sig;

  for (int i = 1; i + 1 < argc; i++)
    if (strcmp(argv[i], "--ready-fd") == 0)
      fd = atoi(argv[i + 1]);
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  port = srv_start(&s, SRV_ECHO, 1);
  pthread_detach(s.th); /* it ends with the process */
  snprintf(line, sizeof(line), "%d\n", port);
  if (fd < 0 || full_write(fd, line, strlen(line)))
    return 3;
  close(fd);
  sigwait(&set, &sig);
  return 7;
}

static void test_exec_agent(const char *self)
{
  int p[2], st, port;
  char fdarg[16], line[32] = {0};
  pid_t pid;

  if (pipe(p) < 0)
    exit(1);
  snprintf(fdarg, sizeof(fdarg), "%d", p[1]);
  pid = fork();
  if (pid == 0) {
    close(p[0]);
    execl(relay_path, relay_path, "--rtt-ms", "10", "--exec-agent", self, "--",
          "--fake-agent", "--ready-fd", fdarg, (char *)NULL);
    _exit(127);
  }
  close(p[1]);
  CHECK(read(p[0], line, sizeof(line) - 1) > 0, "no port from the wrapper");
  close(p[0]);
  port = atoi(line);
  {
    double m = median_rtt(port, 5);
    printf("exec-agent: port %d, median rtt %.2f ms through the wrapper\n",
           port, m * 1e3);
    CHECK(m >= 0.0099 && m < 0.030, "rtt %.2f ms", m * 1e3);
  }
  kill(pid, SIGTERM);
  waitpid(pid, &st, 0);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 7,
        "wrapper exit %d, not the agent's 7", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

int main(int argc, char **argv)
{
  if (argc > 1 && strcmp(argv[1], "--fake-agent") == 0)
    return fake_agent(argc, argv);
  if (argc != 2) {
    fprintf(stderr, "usage: test_relay TR_RELAY\n");
    return 2;
  }
  relay_path = argv[1];
  signal(SIGPIPE, SIG_IGN);
  test_rtt();
  test_rate();
  test_intact();
  fault_case("--drop-after", 0, NULL);
  fault_case("--reset-after", ECONNRESET, NULL);
  fault_case("--stall-after", 0, NULL);
  fault_case("--stall-after", 0, "300");
  test_fault_conn();
  {
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
      self[n] = 0;
      test_exec_agent(self);
    }
  }
  printf("%s\n", failures ? "FAIL" : "PASS");
  return failures ? 1 : 0;
}
