/*
 * bench_net.c: the yardsticks tremote's figures are divided by (bench.h).
 *
 * Absolute times on a shared two-core machine are noise; the same
 * operation done without tremote, a moment earlier on the same machine,
 * is a yardstick that moves with the noise.  Each peer runs in a forked
 * process, as tremote's broker and agent do, so the baselines pay the same
 * scheduling costs.  (Absorbed from tests/bench/baseline.c of issue 3.)
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define MSG 64

static double now_s(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int bench_reps_for(size_t size, int reps)
{
  return size < (1u << 20) ? reps * 10 : reps;
}

static int full_io(int fd, void *buf, size_t n, int rd)
{
  size_t done = 0;

  while (done < n) {
    ssize_t k = rd ? read(fd, (char *)buf + done, n - done)
                   : write(fd, (char *)buf + done, n - done);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return -EIO;
    done += (size_t)k;
  }
  return 0;
}

static void nodelay(int fd)
{
  int one = 1;

  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Listen on a free loopback port; returns the fd, *port set. */
static int tcp_listen(int *port)
{
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof(sa);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

  if (fd < 0)
    return -errno;
  if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0 ||
      getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
    int e = -errno;
    close(fd);
    return e;
  }
  *port = ntohs(sa.sin_port);
  return fd;
}

static int tcp_connect(int port)
{
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

  if (fd < 0)
    return -errno;
  if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
    int e = -errno;
    close(fd);
    return e;
  }
  nodelay(fd);
  return fd;
}

/* Reap a helper child; its failure is ours. */
static int reap(pid_t pid)
{
  int st;

  if (pid <= 0)
    return 0;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR)
      return -errno;
  return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
}

/* Child: accept one connection, echo MSG-byte messages until EOF. */
static pid_t spawn_echo(int lfd)
{
  pid_t pid = fork();

  if (pid == 0) {
    char buf[MSG];
    int c = accept(lfd, NULL, NULL);
    if (c < 0)
      _exit(1);
    nodelay(c);
    while (full_io(c, buf, MSG, 1) == 0 && full_io(c, buf, MSG, 0) == 0)
      ;
    _exit(0);
  }
  close(lfd);
  return pid;
}

static int cmp_d(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int pingpong(int fd, int n, double *p50, double *p99)
{
  double *t = malloc(sizeof(*t) * (size_t)n);
  char buf[MSG] = {0};
  int rc = 0;

  if (!t)
    return -ENOMEM;
  for (int i = 0; i < n / 10 + 10 && !rc; i++) /* warm up */
    rc = full_io(fd, buf, MSG, 0) ?: full_io(fd, buf, MSG, 1);
  for (int i = 0; i < n && !rc; i++) {
    double t0 = now_s();
    rc = full_io(fd, buf, MSG, 0) ?: full_io(fd, buf, MSG, 1);
    t[i] = now_s() - t0;
  }
  if (!rc) {
    qsort(t, (size_t)n, sizeof(*t), cmp_d);
    *p50 = t[n / 2];
    *p99 = t[(size_t)n * 99 / 100];
  }
  free(t);
  return rc;
}

int bench_net_tcp_rtt(int n, double *p50, double *p99)
{
  int port, lfd = tcp_listen(&port), fd, rc;
  pid_t echo;

  if (lfd < 0)
    return lfd;
  echo = spawn_echo(lfd);
  if (echo < 0)
    return -errno;
  fd = tcp_connect(port);
  rc = fd < 0 ? fd : pingpong(fd, n, p50, p99);
  if (fd >= 0)
    close(fd);
  return reap(echo) ?: rc;
}

int bench_net_relay_rtt(int n, double *p50, double *p99)
{
  int port, lfd = tcp_listen(&port), sv[2], rc;
  pid_t echo, relay;

  if (lfd < 0)
    return lfd;
  echo = spawn_echo(lfd);
  if (echo < 0)
    return -errno;
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
    rc = -errno;
    kill(echo, SIGKILL);
    reap(echo);
    return rc;
  }
  relay = fork();
  if (relay == 0) {
    /* The broker's place: Unix socket in, TCP out, one message at a time. */
    char buf[MSG];
    int up = tcp_connect(port);
    close(sv[0]);
    if (up < 0)
      _exit(1);
    while (full_io(sv[1], buf, MSG, 1) == 0 && full_io(up, buf, MSG, 0) == 0 &&
           full_io(up, buf, MSG, 1) == 0 && full_io(sv[1], buf, MSG, 0) == 0)
      ;
    _exit(0);
  }
  close(sv[1]);
  rc = relay < 0 ? -errno : pingpong(sv[0], n, p50, p99);
  close(sv[0]);
  rc = reap(relay) ?: rc;
  return reap(echo) ?: rc;
}

int bench_net_tcp_bw(const size_t *sizes, int nsizes, int reps, double *secs)
{
  int port, lfd = tcp_listen(&port), fd, rc = 0;
  size_t max = 0, chunk = 1u << 20;
  char *buf;
  pid_t sink;

  if (lfd < 0)
    return lfd;
  for (int i = 0; i < nsizes; i++)
    max = sizes[i] > max ? sizes[i] : max;
  buf = calloc(1, chunk);
  if (!buf) {
    close(lfd);
    return -ENOMEM;
  }
  sink = fork();
  if (sink == 0) {
    /* Same schedule as the sender: reads each transfer whole, acks it. */
    int c = accept(lfd, NULL, NULL);
    if (c < 0)
      _exit(1);
    nodelay(c);
    for (int i = 0; i < nsizes; i++)
      for (int r = 0; r < bench_reps_for(sizes[i], reps); r++) {
        size_t got = 0;
        while (got < sizes[i]) {
          size_t want = sizes[i] - got < chunk ? sizes[i] - got : chunk;
          ssize_t k = read(c, buf, want);
          if (k <= 0)
            _exit(1);
          got += (size_t)k;
        }
        if (write(c, "k", 1) != 1)
          _exit(1);
      }
    _exit(0);
  }
  close(lfd);
  if (sink < 0) {
    free(buf);
    return -errno;
  }
  fd = tcp_connect(port);
  if (fd < 0)
    rc = fd;
  for (int i = 0; i < nsizes && !rc; i++) {
    secs[i] = 1e9;
    for (int r = 0; r < bench_reps_for(sizes[i], reps) && !rc; r++) {
      double t0 = now_s();
      for (size_t off = 0; off < sizes[i] && !rc; off += chunk)
        rc = full_io(fd, buf, sizes[i] - off < chunk ? sizes[i] - off : chunk, 0);
      rc = rc ?: full_io(fd, buf, 1, 1);
      t0 = now_s() - t0;
      secs[i] = t0 < secs[i] ? t0 : secs[i];
    }
  }
  if (fd >= 0)
    close(fd);
  free(buf);
  return reap(sink) ?: rc;
}

/* Start tr_relay in front of PORT; returns its pid, *rport its port. */
static pid_t start_relay(const char *relay, int port, double rtt_ms,
                         uint64_t rate, int *rport)
{
  char to[32], rtt[32], rt[32], fdarg[16], line[32] = {0};
  int p[2];
  pid_t pid;

  if (pipe2(p, O_CLOEXEC) < 0)
    return -1;
  snprintf(to, sizeof(to), "127.0.0.1:%d", port);
  snprintf(rtt, sizeof(rtt), "%g", rtt_ms);
  snprintf(rt, sizeof(rt), "%llu", (unsigned long long)rate);
  snprintf(fdarg, sizeof(fdarg), "%d", 3);
  pid = fork();
  if (pid == 0) {
    if (bench_fd_to(p[1], 3) < 0)
      _exit(126);
    execl(relay, relay, "--to", to, "--rtt-ms", rtt, "--rate", rt,
          "--ready-fd", fdarg, (char *)NULL);
    fprintf(stderr, "tremote-bench: cannot run %s: %s\n", relay, strerror(errno));
    _exit(127);
  }
  close(p[1]);
  if (pid > 0 && read(p[0], line, sizeof(line) - 1) <= 0) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    pid = -1;
  }
  close(p[0]);
  *rport = atoi(line);
  return pid;
}

int bench_net_delay_echo(const char *relay, double rtt_ms, uint64_t rate,
                         int iters, size_t bytes, double *secs)
{
  int port, rport, lfd = tcp_listen(&port), fd, rc = 0;
  char *buf = malloc(bytes);
  pid_t echo, rl;

  if (lfd < 0 || !buf) {
    free(buf);
    if (lfd >= 0)
      close(lfd);
    return lfd < 0 ? lfd : -ENOMEM;
  }
  echo = fork();
  if (echo == 0) {
    /* Answers each message once it has it whole, as a copy in then a copy
     * out would go; one extra round for the warm-up. */
    int c = accept(lfd, NULL, NULL);
    if (c < 0)
      _exit(1);
    nodelay(c);
    for (int i = 0; i <= iters; i++)
      if (full_io(c, buf, bytes, 1) || full_io(c, buf, bytes, 0))
        _exit(1);
    _exit(0);
  }
  close(lfd);
  rl = start_relay(relay, port, rtt_ms, rate, &rport);
  if (echo < 0 || rl < 0) {
    rc = -ECHILD;
    goto out;
  }
  fd = tcp_connect(rport);
  if (fd < 0) {
    rc = fd;
    goto out;
  }
  memset(buf, 1, bytes);
  rc = full_io(fd, buf, bytes, 0) ?: full_io(fd, buf, bytes, 1);
  {
    double t0 = now_s();
    for (int i = 0; i < iters && !rc; i++)
      rc = full_io(fd, buf, bytes, 0) ?: full_io(fd, buf, bytes, 1);
    *secs = now_s() - t0;
  }
  close(fd);
out:
  if (rl > 0) {
    kill(rl, SIGTERM);
    waitpid(rl, NULL, 0);
  }
  if (echo > 0) {
    if (rc)
      kill(echo, SIGKILL);
    rc = reap(echo) ?: rc;
  }
  free(buf);
  return rc;
}
