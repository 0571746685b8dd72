/*
 * bench_proc.c: the broker and the workload programs (bench.h).
 *
 * The broker is the real one, started the way tests/integration/lib.sh
 * starts it: private sockets, --ready-fd, one LOCAL machine on the
 * emulated device.  Workloads are the nvcc-built programs under the shim.
 * The round-trip count comes from the broker's control socket, read while
 * the workload waits between READY and PAUSE, so only the calls in
 * between count.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define READY_TIMEOUT_MS 60000

static int exit_code(int st)
{
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Wait up to MS for PID; 1 if it exited (*st set), 0 if still running. */
static int wait_ms(pid_t pid, int ms, int *st)
{
  for (int i = 0; i <= ms / 10; i++) {
    pid_t r = waitpid(pid, st, WNOHANG);
    if (r == pid || (r < 0 && errno != EINTR))
      return 1;
    struct timespec ts = {0, 10 * 1000000};
    nanosleep(&ts, NULL);
  }
  return 0;
}

int bench_fd_to(int fd, int to)
{
  /* dup2 onto itself would leave O_CLOEXEC set, and the fd would vanish
   * at exec. */
  if (fd == to)
    return fcntl(fd, F_SETFD, 0) < 0 ? -errno : 0;
  return dup2(fd, to) < 0 ? -errno : 0;
}

int bench_broker_start(struct bench_broker *b, const char *broker,
                       const char *agent, const char *backend,
                       const char *emu_mem, const char *dir, const char *name)
{
  char line[16] = {0};
  int p[2], logfd, st, n = 0;
  struct pollfd pf;

  memset(b, 0, sizeof(*b));
  snprintf(b->sock, sizeof(b->sock), "%s/%s.sock", dir, name);
  snprintf(b->ctl, sizeof(b->ctl), "%s/%s.control", dir, name);
  snprintf(b->log, sizeof(b->log), "%s/%s.log", dir, name);
  logfd = open(b->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (logfd < 0)
    return -errno;
  if (pipe2(p, O_CLOEXEC) < 0) {
    close(logfd);
    return -errno;
  }
  b->pid = fork();
  if (b->pid == 0) {
    /* Its own process group: a ^C to us reaches it once, through us. */
    setpgid(0, 0);
    if (dup2(logfd, 1) != 1 || dup2(logfd, 2) != 2 || bench_fd_to(p[1], 3) < 0)
      _exit(126);
    execl(broker, broker, "--socket", b->sock, "--control", b->ctl, "--agent",
          agent, "--local", "1", "--backend", backend, "--emu-mem", emu_mem,
          "--ready-fd", "3", "--log-level", "warn", (char *)NULL);
    fprintf(stderr, "tremote-bench: cannot run %s: %s\n", broker, strerror(errno));
    _exit(127);
  }
  close(p[1]);
  close(logfd);
  if (b->pid < 0) {
    close(p[0]);
    return -errno;
  }
  pf = (struct pollfd){.fd = p[0], .events = POLLIN};
  while (n < (int)sizeof(line) - 1 && poll(&pf, 1, READY_TIMEOUT_MS) > 0) {
    ssize_t k = read(p[0], line + n, sizeof(line) - 1 - (size_t)n);
    if (k <= 0)
      break;
    n += (int)k;
    if (strchr(line, '\n'))
      break;
  }
  close(p[0]);
  if (strcmp(line, "ready\n") != 0) {
    fprintf(stderr, "tremote-bench: the broker did not become ready; see %s\n",
            b->log);
    kill(b->pid, SIGKILL);
    waitpid(b->pid, &st, 0);
    b->pid = 0;
    return -EIO;
  }
  return 0;
}

void bench_broker_stop(struct bench_broker *b)
{
  int st;

  if (b->pid <= 0)
    return;
  kill(b->pid, SIGTERM);
  if (!wait_ms(b->pid, 10000, &st)) {
    kill(b->pid, SIGKILL);
    waitpid(b->pid, &st, 0);
  }
  b->pid = 0;
}

int bench_broker_round_trips(const struct bench_broker *b, uint64_t *rt)
{
  static const char req[] = "{\"version\":1,\"op\":\"sessions\"}\n";
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  char buf[65536];
  size_t n = 0;
  const char *p, *key = "\"round_trips\":";
  int fd, rc = 0, found = 0;

  if (strlen(b->ctl) >= sizeof(sa.sun_path))
    return -ENAMETOOLONG;
  strcpy(sa.sun_path, b->ctl);
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
      write(fd, req, sizeof(req) - 1) != (ssize_t)sizeof(req) - 1) {
    rc = -errno;
    goto out;
  }
  for (;;) {
    ssize_t k = read(fd, buf + n, sizeof(buf) - 1 - n);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      break;
    n += (size_t)k;
  }
  buf[n] = 0;
  /* One session, one "round_trips" (the sessions document, brk_ctl.c;
     the stats one has the machines' too). */
  for (p = strstr(buf, key); p; p = strstr(p + 1, key)) {
    *rt = strtoull(p + strlen(key), NULL, 10);
    found++;
  }
  rc = found == 1 ? 0 : -ENOENT;
out:
  close(fd);
  return rc;
}

int bench_run(const struct bench_broker *b, const char *shim, char *const argv[],
              char *out, size_t outlen, uint64_t rt[2], int timeout_s)
{
  int in[2] = {-1, -1}, op[2] = {-1, -1}, logfd = -1, st, rc = 0;
  size_t olen = 0, llen = 0;
  char line[512];
  time_t deadline = time(NULL) + timeout_s;
  pid_t pid;

  out[0] = 0;
  if (pipe2(in, O_CLOEXEC) < 0 || pipe2(op, O_CLOEXEC) < 0) {
    rc = -errno;
    goto out_pipes;
  }
  logfd = open(b->log, O_WRONLY | O_APPEND | O_CLOEXEC);
  if (logfd < 0) {
    rc = -errno;
    goto out_pipes;
  }
  pid = fork();
  if (pid == 0) {
    if (bench_fd_to(in[0], 0) < 0 || bench_fd_to(op[1], 1) < 0 ||
        bench_fd_to(logfd, 2) < 0)
      _exit(126);
    setenv("TREMOTE_BROKER_SOCKET", b->sock, 1);
    setenv("LD_PRELOAD", shim, 1);
    execv(argv[0], argv);
    fprintf(stderr, "tremote-bench: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  if (pid < 0) {
    rc = -errno;
    goto out_pipes;
  }
  close(in[0]);
  close(op[1]);
  in[0] = op[1] = -1;
  /* Lines from the program; READY and PAUSE are for us. */
  for (;;) {
    struct pollfd pf = {.fd = op[0], .events = POLLIN};
    int left = (int)(deadline - time(NULL));
    ssize_t k;

    if (left <= 0 || poll(&pf, 1, left * 1000) == 0) {
      fprintf(stderr, "tremote-bench: %s: still running after %d s; killed\n",
              argv[0], timeout_s);
      kill(pid, SIGKILL);
      break;
    }
    k = read(op[0], line + llen, sizeof(line) - 1 - llen);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      break;
    llen += (size_t)k;
    line[llen] = 0;
    for (char *nl; (nl = strchr(line, '\n')) || llen == sizeof(line) - 1;) {
      size_t len = nl ? (size_t)(nl - line) + 1 : llen;
      int which = !strncmp(line, "READY\n", 6) ? 0 : !strncmp(line, "PAUSE\n", 6) ? 1 : -1;

      if (which >= 0) {
        if (bench_broker_round_trips(b, &rt[which]) < 0)
          rt[which] = UINT64_MAX;
        (void)!write(in[1], "go\n", 3);
      } else if (olen + len < outlen) {
        memcpy(out + olen, line, len);
        olen += len;
        out[olen] = 0;
      }
      memmove(line, line + len, llen - len);
      llen -= len;
      line[llen] = 0;
    }
  }
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
    ;
  rc = exit_code(st);
out_pipes:
  for (int i = 0; i < 2; i++) {
    if (in[i] >= 0)
      close(in[i]);
    if (op[i] >= 0)
      close(op[i]);
  }
  if (logfd >= 0)
    close(logfd);
  return rc;
}

int bench_kv(const char *out, const char *key, double *v)
{
  size_t kl = strlen(key);

  for (const char *p = out; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
    if (!strncmp(p, key, kl) && p[kl] == '=') {
      *v = strtod(p + kl + 1, NULL);
      return 0;
    }
  return -ENOENT;
}
