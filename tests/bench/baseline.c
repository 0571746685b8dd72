/*
 * baseline.c: the yardsticks tremote's benchmark is measured against, taken
 * in the same run on the same machine (absolute times are noise on shared
 * machines; ratios are not).
 *
 *   baseline tcp-rtt N      64-byte ping-pong over loopback TCP
 *   baseline relay-rtt N    the same topology as tremote without tremote:
 *                           client -Unix socket-> relay process -TCP-> echo
 *   baseline tcp-bw MIB     one TCP stream, MIB MiB, client -> sink
 *
 * Prints key=value lines: p50_ns, p99_ns for the RTT modes, gbps for tcp-bw.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MSG 64

static uint64_t now_ns(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
  perror(what);
  exit(2);
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
      return -1;
    done += (size_t)k;
  }
  return 0;
}

static void nodelay(int fd)
{
  int one = 1;

  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Listen on an ephemeral loopback port; returns the fd, *port set. */
static int tcp_listen(int *port)
{
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof(sa);
  int fd = socket(AF_INET, SOCK_STREAM, 0);

  if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
      listen(fd, 4) < 0 || getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
    die("tcp listen");
  *port = ntohs(sa.sin_port);
  return fd;
}

static int tcp_connect(int port)
{
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  int fd = socket(AF_INET, SOCK_STREAM, 0);

  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
    die("tcp connect");
  nodelay(fd);
  return fd;
}

/* Child: accept one connection and echo fixed-size messages until EOF. */
static pid_t spawn_echo(int lfd)
{
  pid_t pid = fork();

  if (pid == 0) {
    char buf[MSG];
    int c = accept(lfd, NULL, NULL);
    nodelay(c);
    while (full_io(c, buf, MSG, 1) == 0 && full_io(c, buf, MSG, 0) == 0)
      ;
    _exit(0);
  }
  close(lfd);
  return pid;
}

static int cmp_u64(const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static void pingpong(int fd, int n)
{
  uint64_t *t = malloc(sizeof(*t) * (size_t)n);
  char buf[MSG] = {0};

  if (!t)
    die("malloc");
  for (int i = 0; i < n / 10 + 10; i++) /* warm up */
    if (full_io(fd, buf, MSG, 0) || full_io(fd, buf, MSG, 1))
      die("ping");
  for (int i = 0; i < n; i++) {
    uint64_t t0 = now_ns();
    if (full_io(fd, buf, MSG, 0) || full_io(fd, buf, MSG, 1))
      die("ping");
    t[i] = now_ns() - t0;
  }
  qsort(t, (size_t)n, sizeof(*t), cmp_u64);
  printf("p50_ns=%llu\np99_ns=%llu\n", (unsigned long long)t[n / 2],
         (unsigned long long)t[(size_t)n * 99 / 100]);
  free(t);
}

static int tcp_rtt(int n)
{
  int port, lfd = tcp_listen(&port);
  pid_t echo = spawn_echo(lfd);
  int fd = tcp_connect(port);

  pingpong(fd, n);
  close(fd);
  waitpid(echo, NULL, 0);
  return 0;
}

/* client -unix-> relay -tcp-> echo: tremote's topology without tremote. */
static int relay_rtt(int n)
{
  int port, lfd = tcp_listen(&port), sv[2];
  pid_t echo = spawn_echo(lfd), relay;

  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
    die("socketpair");
  relay = fork();
  if (relay == 0) {
    char buf[MSG];
    int up = tcp_connect(port);
    close(sv[0]);
    while (full_io(sv[1], buf, MSG, 1) == 0 && full_io(up, buf, MSG, 0) == 0 &&
           full_io(up, buf, MSG, 1) == 0 && full_io(sv[1], buf, MSG, 0) == 0)
      ;
    _exit(0);
  }
  close(sv[1]);
  pingpong(sv[0], n);
  close(sv[0]);
  waitpid(relay, NULL, 0);
  waitpid(echo, NULL, 0);
  return 0;
}

static int tcp_bw(int mib)
{
  int port, lfd = tcp_listen(&port);
  size_t total = (size_t)mib << 20, chunk = 1 << 20;
  char *buf = calloc(1, chunk);
  pid_t sink = fork();

  if (!buf)
    die("malloc");
  if (sink == 0) {
    int c = accept(lfd, NULL, NULL);
    size_t got = 0;
    while (got < total) {
      ssize_t k = read(c, buf, chunk);
      if (k <= 0)
        break;
      got += (size_t)k;
    }
    (void)!write(c, "k", 1);
    _exit(0);
  }
  close(lfd);
  int fd = tcp_connect(port);
  uint64_t t0 = now_ns();
  for (size_t off = 0; off < total; off += chunk)
    if (full_io(fd, buf, chunk, 0))
      die("send");
  if (full_io(fd, buf, 1, 1))
    die("ack");
  double s = (double)(now_ns() - t0) / 1e9;
  printf("gbps=%.3f\n", (double)total / s / 1e9);
  close(fd);
  waitpid(sink, NULL, 0);
  free(buf);
  return 0;
}

int main(int argc, char **argv)
{
  signal(SIGPIPE, SIG_IGN);
  if (argc == 3 && strcmp(argv[1], "tcp-rtt") == 0)
    return tcp_rtt(atoi(argv[2]));
  if (argc == 3 && strcmp(argv[1], "relay-rtt") == 0)
    return relay_rtt(atoi(argv[2]));
  if (argc == 3 && strcmp(argv[1], "tcp-bw") == 0)
    return tcp_bw(atoi(argv[2]));
  fprintf(stderr, "usage: baseline tcp-rtt N | relay-rtt N | tcp-bw MIB\n");
  return 2;
}
