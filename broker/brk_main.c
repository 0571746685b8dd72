/*
 * brk_main.c: tremote-broker's command line, sockets, signals and
 * shutdown.  See usage() for the user's view and brk.h for the objects.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <curl/curl.h>

#include "brk.h"
#include "brk_log.h"

#ifndef BRK_VERSION
#define BRK_VERSION "0.0.0"
#endif

enum {
  EXIT_OK = 0,
  EXIT_FAIL = 1,
  EXIT_USAGE = 2,
  EXIT_RUNNING = 3,
  EXIT_NOAGENT = 4,
};

static void usage(FILE *f)
{
  fputs(
      "Usage: tremote-broker [OPTION]...\n"
      "\n"
      "The tremote broker: the local service through which CUDA programs run\n"
      "under the tremote shim (LD_PRELOAD=libtremote_shim.so) reach their GPUs.\n"
      "It accepts programs on a Unix socket, gives each calling thread a\n"
      "shared-memory lane, and carries their CUDA calls over one HTTP/2\n"
      "connection per machine to the machines' tremote-gpu-agent.  It starts\n"
      "LOCAL machines itself: agents on this host, on the GPU when there is\n"
      "one, else on the emulated device.  It runs in the foreground and logs\n"
      "to standard error.\n"
      "\n"
      "Options:\n"
      "  --socket PATH        client socket (SOCK_SEQPACKET).  Default:\n"
      "                       $TREMOTE_BROKER_SOCKET, else\n"
      "                       $XDG_RUNTIME_DIR/tremote/broker.sock, else\n"
      "                       /run/tremote/broker.sock (root) or\n"
      "                       /tmp/tremote-$UID/broker.sock.  Its directory is\n"
      "                       created with mode 0700 if missing.\n"
      "  --control PATH       control socket (SOCK_STREAM, one JSON line in,\n"
      "                       one out; used by tremote-smi and tremote).\n"
      "                       Default: control.sock next to the client socket.\n"
      "  --local N            number of unnamed LOCAL machines to start\n"
      "                       (0..64; default 1, or 0 with --machines).\n"
      "                       They come first: machine i is CUDA device i.\n"
      "  --machines FILE      the machines file (INI), one section per\n"
      "                       machine, after the --local ones in file order:\n"
      "                         [machine NAME]\n"
      "                         provider = local | static\n"
      "                         gpu = TYPE            (shown; optional)\n"
      "                         address = HOST:PORT   (static)\n"
      "                         secret_file = PATH    (static; mode 0600)\n"
      "                         tls = on | off        (static; default off)\n"
      "                         fingerprint = SHA256:HEX  (tls: pin it) or\n"
      "                         ca = PATH             (tls: verify by a CA)\n"
      "                       A STATIC machine is an agent you started\n"
      "                       (tremote-gpu-agent --listen ADDR:PORT\n"
      "                       --secret-file F [--tls-cert F --tls-key F]);\n"
      "                       without TLS it must be on loopback.  Any\n"
      "                       error in the file stops the broker (exit 2)\n"
      "                       with its line and what is valid.  See\n"
      "                       docs/OPERATIONS.md.\n"
      "  --state FILE         where machines added at run time (control\n"
      "                       socket) are kept, to come back when the broker\n"
      "                       restarts.  Default: machines.state next to the\n"
      "                       client socket.\n"
      "  --metrics HOST:PORT  serve Prometheus metrics at\n"
      "                       http://HOST:PORT/metrics (a loopback address\n"
      "                       only): sessions, round trips, bytes, module\n"
      "                       cache hits and misses, machine states.\n"
      "  --group NAME         also admit processes whose group (primary or\n"
      "                       supplementary) is NAME: the socket directory\n"
      "                       becomes 0750 and the client socket 0660, both\n"
      "                       of that group.  Default: the broker's user only.\n"
      "                       Each program still sees only its own memory\n"
      "                       and streams; the control socket stays the\n"
      "                       broker's user's (and root's).\n"
      "  --agent PATH         the tremote-gpu-agent binary.  Default: the first\n"
      "                       of $TREMOTE_AGENT, tremote-gpu-agent next to this\n"
      "                       program, ../gpu-agent/tremote-gpu-agent relative\n"
      "                       to it (build tree), and $PATH.\n"
      "  --backend B          agent backend for LOCAL machines: emu, cuda or\n"
      "                       auto (default: auto, the GPU if there is one).\n"
      "  --emu-mem SIZE       memory of the emulated device, e.g. 512M or 8G\n"
      "                       (passed to the agents).\n"
      "  --log-level L        error, warn, info (default) or debug.\n"
      "  --ready-fd N         write \"ready\\n\" to descriptor N and close it once\n"
      "                       the sockets listen and every LOCAL machine has\n"
      "                       finished starting (ready or failed).\n"
      "  --ping-interval S    send an HTTP/2 PING to a machine that has been\n"
      "                       silent for S seconds (default 3).\n"
      "  --ping-timeout S     declare a machine lost when its PING is not\n"
      "                       answered within S seconds (default 5).  Together:\n"
      "                       a machine that falls silent is lost, and its\n"
      "                       programs get errors, within 8 s.\n"
      "  --start-timeout S    give up starting a LOCAL agent after S seconds\n"
      "                       (default 30); it is retried with back-off.\n"
      "  --hello-wait S       how long a program's HELLO may wait for machines\n"
      "                       that are still starting (default 60).\n"
      "  --stall-timeout S    drop a program that leaves its replies untaken\n"
      "                       so long that a machine's connection has been\n"
      "                       paused for S seconds (default 30).\n"
      "  -h, --help           show this help and exit.\n"
      "  -V, --version        show the version and exit.\n"
      "\n"
      "Environment: TREMOTE_NET_TUNE=frame=N,rcvbuf=N,lowat=N sets sizes of\n"
      "the connections to machines, for measurements (docs/OPERATIONS.md);\n"
      "LOCAL agents inherit it, as they do TREMOTE_AGENT_SPIN_US,\n"
      "TREMOTE_AGENT_EXEC_THREADS and TREMOTE_ISOLATION.\n"
      "\n"
      "SIGHUP reads the machines file again: machines gone from it or changed\n"
      "are removed (their programs get errors), new ones are added at new\n"
      "indices; indices of the others never change.\n"
      "\n"
      "A lost machine (agent died, connection broken, PING unanswered) turns\n"
      "into TR_ST_MACHINE_LOST errors in the programs that used it, never a\n"
      "hang; LOCAL agents are restarted after 1, 2, 4 ... 30 seconds.\n"
      "\n"
      "Under systemd (Type=notify; tools/systemd/tremote-broker.service) it\n"
      "says READY=1 once every machine has finished starting, RELOADING=1\n"
      "around a SIGHUP, and STOPPING=1 when it stops.\n"
      "\n"
      "Signals: SIGTERM and SIGINT stop accepting, close all clients, stop the\n"
      "agents (SIGTERM, then SIGKILL after 2 s), remove the socket files and\n"
      "exit 0.\n"
      "\n"
      "Exit status:\n"
      "  0  clean shutdown (or --help, --version)\n"
      "  1  runtime failure (sockets, out of memory), or io_uring refused\n"
      "     or missing here: one line names the cause (a container's seccomp\n"
      "     profile, kernel.io_uring_disabled, an old kernel, the locked-\n"
      "     memory limit) and what to change\n"
      "  2  usage error\n"
      "  3  another broker is already listening on the socket\n"
      "  4  the agent binary was not found (only with LOCAL machines)\n",
      f);
}

/* ---- small parsers ------------------------------------------------------------ */

static int parse_seconds(const char *s, uint32_t *ms)
{
  char *end;
  double v;

  errno = 0;
  v = strtod(s, &end);
  if (errno || end == s || *end || !(v > 0) || v > 86400)
    return -1;
  *ms = (uint32_t)(v * 1000 + 0.5);
  if (*ms == 0)
    *ms = 1;
  return 0;
}

/* SIZE: digits with an optional K, M, G or T (powers of 1024), the form
   the agent's --emu-mem accepts. */
static int valid_size(const char *s)
{
  const char *p = s;

  if (!(*p >= '0' && *p <= '9'))
    return 0;
  while (*p >= '0' && *p <= '9')
    p++;
  if (*p && strchr("kKmMgGtT", *p))
    p++;
  return *p == 0;
}

/* ---- paths ------------------------------------------------------------------------- */

static char *default_socket_path(void)
{
  const char *env = getenv("TREMOTE_BROKER_SOCKET");
  const char *xdg = getenv("XDG_RUNTIME_DIR");
  char *p = NULL;
  int rc;

  if (env && *env)
    rc = asprintf(&p, "%s", env);
  else if (xdg && *xdg)
    rc = asprintf(&p, "%s/tremote/broker.sock", xdg);
  else if (getuid() == 0)
    rc = asprintf(&p, "/run/tremote/broker.sock");
  else
    rc = asprintf(&p, "/tmp/tremote-%u/broker.sock", (unsigned)getuid());
  return rc < 0 ? NULL : p;
}

static char *dir_of(const char *path)
{
  char *d = strdup(path), *slash;

  if (!d)
    return NULL;
  slash = strrchr(d, '/');
  if (!slash)
    strcpy(d, ".");
  else if (slash == d)
    d[1] = 0;
  else
    *slash = 0;
  return d;
}

/* mkdir -p with mode 0700 for the components that are missing. */
static int make_dirs(const char *dir)
{
  char buf[PATH_MAX];
  struct stat st;

  if (strlen(dir) >= sizeof(buf))
    return -ENAMETOOLONG;
  strcpy(buf, dir);
  for (char *p = buf + 1;; p++) {
    if (*p == '/' || *p == 0) {
      char saved = *p;

      *p = 0;
      if (mkdir(buf, 0700) < 0 && errno != EEXIST)
        return -errno;
      *p = saved;
      if (!saved)
        break;
    }
  }
  if (stat(dir, &st) < 0)
    return -errno;
  if (!S_ISDIR(st.st_mode))
    return -ENOTDIR;
  return 0;
}

/*
 * May the broker put its sockets and files in dir?  Only if nobody else
 * can change what is in it: a directory of its own user (not a symbolic
 * link to one) that no group or other user may write.  The default
 * /tmp/tremote-$UID lies in a directory everyone writes, so another user
 * can make it first; taking it as it is would let that user replace
 * broker.sock with a socket of their own, or plant machines.state.tmp and
 * modal.key as links to any file of ours for the broker to overwrite.
 * Read and search bits are harmless (a home directory is 0755; the broker
 * checks who connects anyway).  0 or -1 with one line that says what is
 * wrong and what to do.
 */
static int check_dir(const char *dir)
{
  struct stat st;

  if (lstat(dir, &st) < 0) {
    brk_err("the socket directory %s: %s", dir, strerror(errno));
    return -1;
  }
  if (S_ISLNK(st.st_mode)) {
    brk_err("the socket directory %s is a symbolic link; the broker uses "
            "only a real directory of its own user: remove the link, or "
            "name the real directory with --socket", dir);
    return -1;
  }
  if (!S_ISDIR(st.st_mode)) {
    brk_err("the socket directory %s is not a directory", dir);
    return -1;
  }
  if (st.st_uid != getuid()) {
    brk_err("the socket directory %s belongs to uid %u, not to this user "
            "(uid %u): another user may have made it to take over the "
            "broker's socket; remove it (as root, or as uid %u) or use "
            "another with --socket or XDG_RUNTIME_DIR", dir,
            (unsigned)st.st_uid, (unsigned)getuid(), (unsigned)st.st_uid);
    return -1;
  }
  if (st.st_mode & 022) {
    brk_err("the socket directory %s has mode %04o: other users could "
            "replace the broker's files in it; chmod 0700 %s (0750 with "
            "--group) and start again", dir, (unsigned)(st.st_mode & 07777),
            dir);
    return -1;
  }
  return 0;
}

/* Is pid a live process (not gone, not a zombie)? */
static int process_alive(pid_t pid)
{
  char path[64], buf[256], *p;
  FILE *f;
  int alive = 1;

  if (kill(pid, 0) < 0 && errno == ESRCH)
    return 0;
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  f = fopen(path, "r");
  if (!f)
    return errno != ENOENT;
  if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) && p[1] == ' ' &&
      (p[2] == 'Z' || p[2] == 'X'))
    alive = 0;
  fclose(f);
  return alive;
}

/*
 * Is a broker listening at path?  1 yes, 0 no (nothing there or a stale
 * socket file, which is removed), -errno on a problem worth reporting.
 *
 * A connect that succeeds is not proof: the listening socket of a broker
 * that was just killed lives on for a moment (its io_uring is torn down
 * asynchronously) and accepts into its backlog.  The peer credentials of
 * the connection name the process that listens; if it is gone, the socket
 * is stale.
 */
static int probe_socket(const char *path, int type)
{
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  struct ucred cred = {0};
  socklen_t clen = sizeof(cred);
  struct stat st;
  int fd, rc, live = 0;

  if (lstat(path, &st) < 0)
    return errno == ENOENT ? 0 : -errno;
  if (!S_ISSOCK(st.st_mode))
    return -EEXIST;
  fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  strcpy(sa.sun_path, path);
  rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
  if (rc == 0) {
    live = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0 ||
           cred.pid <= 0 || process_alive(cred.pid);
    if (!live)
      brk_info("%s: its broker (pid %d) is gone", path, (int)cred.pid);
  }
  close(fd);
  if (rc < 0 && errno == EPROTOTYPE)
    return 1; /* someone listens, with another socket type */
  if (live)
    return 1;
  if (rc == 0 || errno == ECONNREFUSED || errno == ENOENT) {
    if (unlink(path) < 0 && errno != ENOENT)
      return -errno;
    brk_info("removed stale socket %s", path);
    return 0;
  }
  return -errno;
}

static int listen_on(const char *path, int type, int *out)
{
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  int fd;
  mode_t old;

  if (strlen(path) >= sizeof(sa.sun_path))
    return -ENAMETOOLONG;
  strcpy(sa.sun_path, path);
  fd = socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return -errno;
  old = umask(0077); /* the socket file: owner only */
  if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 256) < 0) {
    int e = errno;

    umask(old);
    close(fd);
    return -e;
  }
  umask(old);
  *out = fd;
  return 0;
}

/* --metrics HOST:PORT: a TCP listener on a loopback address (metrics are
   for this host's collector; anything wider is refused with *why). */
static int listen_tcp_loopback(const char *spec, int *out, const char **why)
{
  struct sockaddr_storage ss;
  struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
  char host[64];
  const char *colon = strrchr(spec, ':');
  socklen_t len = 0;
  long port;
  char *end;
  int fd, one = 1;

  *why = NULL;
  memset(&ss, 0, sizeof(ss));
  if (!colon || colon == spec || (size_t)(colon - spec) >= sizeof(host)) {
    *why = "expected HOST:PORT on loopback, e.g. 127.0.0.1:9464";
    return -EINVAL;
  }
  memcpy(host, spec, (size_t)(colon - spec));
  host[colon - spec] = 0;
  port = strtol(colon + 1, &end, 10);
  if (*end || end == colon + 1 || port < 1 || port > 65535) {
    *why = "the port must be 1..65535";
    return -EINVAL;
  }
  if (strcmp(host, "localhost") == 0)
    snprintf(host, sizeof(host), "127.0.0.1");
  if (host[0] == '[' && host[strlen(host) - 1] == ']') {
    memmove(host, host + 1, strlen(host));
    host[strlen(host) - 1] = 0;
  }
  if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    len = sizeof(*s4);
    if ((ntohl(s4->sin_addr.s_addr) >> 24) != 127)
      *why = "metrics are served on a loopback address only";
  } else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons((uint16_t)port);
    len = sizeof(*s6);
    if (!IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr))
      *why = "metrics are served on a loopback address only";
  } else {
    *why = "expected an IP address (127.0.0.1, [::1]) or localhost";
  }
  if (*why)
    return -EINVAL;
  fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 64) < 0) {
    int e = errno;

    close(fd);
    return -e;
  }
  *out = fd;
  return 0;
}

/* ---- agent search ------------------------------------------------------------------ */

static int executable(const char *p)
{
  struct stat st;

  return stat(p, &st) == 0 && S_ISREG(st.st_mode) && access(p, X_OK) == 0;
}

static char *find_agent(const char *opt, struct brk_sb *tried)
{
  const char *env = getenv("TREMOTE_AGENT");
  char self[PATH_MAX], cand[PATH_MAX + 64];
  ssize_t n;

  if (opt) {
    brk_sb_printf(tried, "  --agent %s\n", opt);
    return executable(opt) ? realpath(opt, NULL) : NULL;
  }
  if (env && *env) {
    brk_sb_printf(tried, "  $TREMOTE_AGENT=%s\n", env);
    if (executable(env))
      return realpath(env, NULL);
  }
  n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n > 0) {
    char *slash;

    self[n] = 0;
    slash = strrchr(self, '/');
    if (slash)
      *slash = 0;
    snprintf(cand, sizeof(cand), "%s/tremote-gpu-agent", self);
    brk_sb_printf(tried, "  %s\n", cand);
    if (executable(cand))
      return realpath(cand, NULL);
    snprintf(cand, sizeof(cand), "%s/../gpu-agent/tremote-gpu-agent", self);
    brk_sb_printf(tried, "  %s\n", cand);
    if (executable(cand))
      return realpath(cand, NULL);
  }
  {
    const char *path = getenv("PATH");
    char *copy, *save = NULL;

    brk_sb_printf(tried, "  tremote-gpu-agent in $PATH (%s)\n",
                  path ? path : "unset");
    if (!path || !(copy = strdup(path)))
      return NULL;
    for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
      snprintf(cand, sizeof(cand), "%s/tremote-gpu-agent", *d ? d : ".");
      if (executable(cand)) {
        free(copy);
        return realpath(cand, NULL);
      }
    }
    free(copy);
  }
  return NULL;
}

/* ---- signals, shutdown (readiness: brk_service.c) ---------------------------------- */

static struct brk_op *sig_op, *tick_op, *stop_timer;
static int sig_fd = -1;
static int curl_ready;

static void close_listeners(struct brk *b)
{
  brk_clients_stop(b);
  brk_ctl_stop(b);
  if (b->listen_fd >= 0) {
    close(b->listen_fd);
    unlink(b->cfg.socket_path);
  }
  if (b->ctl_fd >= 0) {
    close(b->ctl_fd);
    unlink(b->cfg.control_path);
  }
  if (b->metrics_fd >= 0)
    close(b->metrics_fd);
  b->listen_fd = b->ctl_fd = b->metrics_fd = -1;
}

static void on_stop_timer(struct brk_op *op, int res, void *arg)
{
  struct brk *b = arg;

  stop_timer = NULL;
  brk_loop_stop(b->loop);
}

static void shutdown_begin(struct brk *b, const char *why)
{
  if (b->stopping) {
    brk_warn("%s again: stopping now", why);
    brk_loop_stop(b->loop);
    return;
  }
  b->stopping = 1;
  brk_info("%s: shutting down", why);
  brk_sd_notify("STOPPING=1");
  close_listeners(b);
  brk_op_cancel(tick_op);
  tick_op = NULL;
  if (brk_machines_stop(b) == 0) {
    brk_loop_stop(b->loop);
    return;
  }
  /* Agents get 2 s to exit on SIGTERM; brk_machines_free kills the rest. */
  stop_timer = brk_loop_timeout(b->loop, 2000, on_stop_timer, b);
  if (!stop_timer)
    brk_loop_stop(b->loop);
}

static void arm_signals(struct brk *b);

static void on_signal(struct brk_op *op, int res, void *arg)
{
  struct brk *b = arg;
  struct signalfd_siginfo si;

  sig_op = NULL;
  if (res == (int)sizeof(si)) {
    memcpy(&si, brk_op_buf(op), sizeof(si));
    if (si.ssi_signo == SIGHUP && b->stopping) {
      /* A reload now would start agents the shutdown then has to kill. */
      brk_info("SIGHUP while stopping: ignored");
    } else if (si.ssi_signo == SIGHUP) {
      unsigned added, removed;
      char why[1024];

      brk_sd_notify("RELOADING=1");
      if (brk_machines_reload(b, &added, &removed, why, sizeof(why)) < 0)
        brk_warn("SIGHUP: %s; the machines stay as they were", why);
      else
        brk_info("SIGHUP: %s reloaded: %u machine(s) added, %u removed",
                 b->cfg.machines_file, added, removed);
      brk_sd_notify("READY=1");
    } else
      shutdown_begin(b, si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
  }
  arm_signals(b);
}

static void arm_signals(struct brk *b)
{
  sig_op = brk_loop_read(b->loop, sig_fd, sizeof(struct signalfd_siginfo),
                         on_signal, b);
}

static void on_tick(struct brk_op *op, int res, void *arg)
{
  struct brk *b = arg;

  tick_op = NULL;
  if (b->stopping)
    return;
  brk_clients_tick(b);
  brk_machines_poll_status(b);
  brk_modal_tick(b);
  tick_op = brk_loop_timeout(b->loop, 1000, on_tick, b);
}

/* ---- main ---------------------------------------------------------------------------- */

/*
 * Bulk data moves through here in chunks of up to 1 MiB, allocated and
 * freed thousands of times a second.  glibc serves blocks that large with a
 * fresh mmap() each time, so every byte of every chunk would page-fault on
 * first touch (the largest cost in a profile of a 64 MiB copy).  Keep them in
 * the heap instead, and keep the freed heap around.
 */
__attribute__((constructor)) static void brk_tune_malloc(void)
{
  mallopt(M_MMAP_THRESHOLD, 16 << 20);
  mallopt(M_TRIM_THRESHOLD, 128 << 20);
}

/*
 * io_uring where the broker runs, or one line on stderr naming the cause
 * and the fix: containers' default seccomp profiles (Docker's, Podman's)
 * and kernel.io_uring_disabled refuse it, old kernels lack it or some of
 * the operations the loop needs, and before Linux 5.12 its rings count
 * against the locked-memory limit.
 */
static int uring_usable(void)
{
  const char *missing = NULL;
  int rc = brk_loop_probe(&missing);

  switch (rc) {
  case 0:
    return 1;
  case -EPERM:
  case -EACCES:
    brk_err("io_uring is not permitted here (io_uring_setup: %s), and the "
            "broker runs on it: in a container, allow io_uring_setup, "
            "io_uring_enter and io_uring_register in its seccomp profile "
            "(recent Docker and Podman profiles refuse them; e.g. --security-opt "
            "seccomp=PROFILE.json); on the host, set sysctl "
            "kernel.io_uring_disabled=0 (or 1 with this user in "
            "kernel.io_uring_group)", strerror(-rc));
    break;
  case -ENOSYS:
    brk_err("this system has no io_uring (io_uring_setup: %s), and the "
            "broker runs on it: use Linux 5.10 or newer built with "
            "CONFIG_IO_URING, and in a container a seccomp profile that "
            "allows io_uring_setup, io_uring_enter and io_uring_register",
            strerror(-rc));
    break;
  case -ENOMEM:
    brk_err("io_uring could not get its memory (io_uring_setup: %s): before "
            "Linux 5.12 its rings count against the locked-memory limit; "
            "raise it to at least 1 MiB (ulimit -l 1024, or LimitMEMLOCK= "
            "in the systemd unit)", strerror(-rc));
    break;
  case -EOPNOTSUPP:
    brk_err("this kernel's io_uring lacks IORING_OP_%s, which the broker "
            "needs: use Linux 5.10 or newer", missing ? missing : "?");
    break;
  default:
    brk_err("io_uring does not work here (io_uring_setup: %s), and the "
            "broker runs on it", strerror(-rc));
  }
  return 0;
}

int main(int argc, char **argv)
{
  static const struct option opts[] = {
      {"socket", required_argument, NULL, 's'},
      {"control", required_argument, NULL, 'c'},
      {"local", required_argument, NULL, 'n'},
      {"machines", required_argument, NULL, 'M'},
      {"group", required_argument, NULL, 'G'},
      {"state", required_argument, NULL, 'Z'},
      {"metrics", required_argument, NULL, 'm' + 256},
      {"agent", required_argument, NULL, 'a'},
      {"backend", required_argument, NULL, 'b'},
      {"emu-mem", required_argument, NULL, 'm'},
      {"log-level", required_argument, NULL, 'l'},
      {"ready-fd", required_argument, NULL, 'r'},
      {"ping-interval", required_argument, NULL, 'P'},
      {"ping-timeout", required_argument, NULL, 'T'},
      {"start-timeout", required_argument, NULL, 'S'},
      {"hello-wait", required_argument, NULL, 'H'},
      {"stall-timeout", required_argument, NULL, 'X'},
      {"help", no_argument, NULL, 'h'},
      {"version", no_argument, NULL, 'V'},
      {NULL, 0, NULL, 0},
  };
  static struct brk broker;
  struct brk *b = &broker;
  const char *agent_opt = NULL, *mfile = NULL, *metrics = NULL;
  char *state = NULL;
  struct brk_mspec *specs = NULL;
  unsigned nspecs = 0;
  int local_given = 0, any_local;
  char *sock = NULL, *ctl = NULL, *agent = NULL, *dir = NULL, *end;
  struct brk_sb tried;
  sigset_t mask;
  int opt, rc, ret = EXIT_FAIL;
  long v;

  b->cfg.nlocal = 1;
  b->cfg.backend = "auto";
  b->cfg.ready_fd = -1;
  b->cfg.ping_idle_ms = 3000; /* silence to lost within 8 s: issue 6's */
  b->cfg.ping_timeout_ms = 5000; /* bound is 10 s */
  b->cfg.start_timeout_ms = 30000;
  b->cfg.hello_wait_ms = 60000;
  b->cfg.stall_ms = 30000;
  b->listen_fd = b->ctl_fd = b->metrics_fd = -1;
  tr_log_set_prog("tremote-broker");
  brk_sb_init(&tried);

  while ((opt = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
    switch (opt) {
    case 's':
      sock = strdup(optarg);
      break;
    case 'c':
      ctl = strdup(optarg);
      break;
    case 'n':
      v = strtol(optarg, &end, 10);
      if (*end || end == optarg || v < 0 || v > BRK_MAX_LOCAL) {
        fprintf(stderr, "tremote-broker: --local %s: expected 0..%u\n", optarg,
                BRK_MAX_LOCAL);
        return EXIT_USAGE;
      }
      b->cfg.nlocal = (int)v;
      local_given = 1;
      break;
    case 'M':
      mfile = optarg;
      break;
    case 'm' + 256:
      metrics = optarg;
      break;
    case 'Z':
      free(state);
      state = strdup(optarg);
      break;
    case 'G': {
      struct group *g = getgrnam(optarg);

      if (!g) {
        fprintf(stderr, "tremote-broker: --group %s: no such group\n",
                optarg);
        return EXIT_USAGE;
      }
      b->cfg.group = g->gr_gid;
      b->cfg.group_set = 1;
      break;
    }
    case 'a':
      agent_opt = optarg;
      break;
    case 'b':
      if (strcmp(optarg, "emu") && strcmp(optarg, "cuda") &&
          strcmp(optarg, "auto")) {
        fprintf(stderr, "tremote-broker: --backend %s: expected emu, cuda or "
                        "auto\n", optarg);
        return EXIT_USAGE;
      }
      b->cfg.backend = optarg;
      break;
    case 'm':
      if (!valid_size(optarg)) {
        fprintf(stderr, "tremote-broker: --emu-mem %s: expected a size such "
                        "as 512M or 8G\n", optarg);
        return EXIT_USAGE;
      }
      b->cfg.emu_mem = optarg;
      break;
    case 'l':
      rc = tr_log_parse_level(optarg);
      if (rc < 0) {
        fprintf(stderr, "tremote-broker: --log-level %s: expected error, "
                        "warn, info or debug\n", optarg);
        return EXIT_USAGE;
      }
      tr_log_level = rc;
      break;
    case 'r':
      v = strtol(optarg, &end, 10);
      if (*end || end == optarg || v < 0 || v > INT_MAX ||
          fcntl((int)v, F_GETFD) < 0) {
        fprintf(stderr, "tremote-broker: --ready-fd %s: not an open "
                        "descriptor\n", optarg);
        return EXIT_USAGE;
      }
      b->cfg.ready_fd = (int)v;
      break;
    case 'P':
    case 'T':
    case 'S':
    case 'X':
    case 'H': {
      uint32_t ms;

      if (parse_seconds(optarg, &ms) < 0) {
        fprintf(stderr, "tremote-broker: %s: expected a number of seconds\n",
                optarg);
        return EXIT_USAGE;
      }
      if (opt == 'P')
        b->cfg.ping_idle_ms = ms;
      else if (opt == 'T')
        b->cfg.ping_timeout_ms = ms;
      else if (opt == 'S')
        b->cfg.start_timeout_ms = ms;
      else if (opt == 'X')
        b->cfg.stall_ms = ms;
      else
        b->cfg.hello_wait_ms = ms;
      break;
    }
    case 'h':
      usage(stdout);
      return EXIT_OK;
    case 'V':
      printf("tremote-broker %s (protocol versions %u..%u)\n", BRK_VERSION,
             TR_PROTO_VERSION_MIN, TR_PROTO_VERSION_MAX);
      return EXIT_OK;
    default:
      fprintf(stderr, "Try 'tremote-broker --help' for more information.\n");
      return EXIT_USAGE;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "tremote-broker: unexpected argument '%s'\nTry "
                    "'tremote-broker --help' for more information.\n",
            argv[optind]);
    return EXIT_USAGE;
  }
  if (mfile) {
    char why[1024];

    if (!local_given)
      b->cfg.nlocal = 0; /* the file says which machines there are */
    if (brk_mfile_load(mfile, BRK_MAX_MACHINES - (unsigned)b->cfg.nlocal,
                       &specs, &nspecs, why, sizeof(why)) < 0) {
      fprintf(stderr, "tremote-broker: --machines %s\n", why);
      return EXIT_USAGE;
    }
    b->cfg.specs = specs;
    b->cfg.nspecs = nspecs;
  }
  /* Before anything is created: where io_uring is refused the broker
     cannot run at all, and the one line says why and what to change. */
  if (!uring_usable())
    goto out; /* ret is EXIT_FAIL */

  if (!sock)
    sock = default_socket_path();
  dir = sock ? dir_of(sock) : NULL;
  if (!ctl && dir && asprintf(&ctl, "%s/control.sock", dir) < 0)
    ctl = NULL;
  if (!sock || !dir || !ctl) {
    brk_err("out of memory");
    goto out;
  }
  b->cfg.socket_path = sock;
  b->cfg.control_path = ctl;
  b->uid = getuid();

  if (!state && asprintf(&state, "%s/machines.state", dir) < 0)
    state = NULL;
  b->cfg.state_path = state;
  b->cfg.machines_file = mfile;

  /* Looked for even without LOCAL machines now: one may be added at run
     time.  Missing is an error only when one is needed at start. */
  any_local = b->cfg.nlocal > 0;
  for (unsigned i = 0; i < nspecs; i++)
    any_local |= specs[i].provider == BRK_P_LOCAL;
  agent = find_agent(agent_opt, &tried);
  if (!agent && any_local) {
    brk_err("cannot find the agent binary tremote-gpu-agent; looked at:\n%s"
            "Use --agent PATH or set TREMOTE_AGENT.", tried.s);
    ret = EXIT_NOAGENT;
    goto out;
  }
  b->cfg.agent_path = agent;

  rc = make_dirs(dir);
  if (rc < 0) {
    brk_err("cannot create the socket directory %s: %s", dir, strerror(-rc));
    goto out;
  }
  if (check_dir(dir) < 0)
    goto out;
  rc = probe_socket(sock, SOCK_SEQPACKET);
  if (rc == 1) {
    brk_err("another broker is already listening on %s", sock);
    ret = EXIT_RUNNING;
    goto out;
  }
  if (rc < 0) {
    brk_err("%s: %s", sock,
            rc == -EEXIST ? "exists and is not a socket" : strerror(-rc));
    goto out;
  }
  rc = probe_socket(ctl, SOCK_STREAM);
  if (rc == 1) {
    brk_err("another broker is already listening on %s", ctl);
    ret = EXIT_RUNNING;
    goto out;
  }
  if (rc < 0) {
    brk_err("%s: %s", ctl,
            rc == -EEXIST ? "exists and is not a socket" : strerror(-rc));
    goto out;
  }

  {
    /* Every program, agent connection and metrics reader takes
       descriptors; the soft limit (often 1024) is the first to run out,
       the hard one is ours to take. */
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
      rl.rlim_cur = rl.rlim_max;
      if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        brk_warn("cannot raise the open files limit: %s", strerror(errno));
    }
  }
  signal(SIGPIPE, SIG_IGN);
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sig_fd < 0) {
    brk_err("signalfd: %s", strerror(errno));
    goto out;
  }
  /* Before any thread exists (libcurl's resolver makes some). */
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    brk_err("libcurl failed to initialise");
    goto out;
  }
  curl_ready = 1;
  rc = brk_loop_new(&b->loop, 1024);
  if (rc < 0) {
    brk_err("io_uring: %s", strerror(-rc));
    goto out;
  }
  rc = brk_machines_init(b);
  if (rc < 0) {
    if (rc == -ENOMEM)
      brk_err("out of memory");
    goto out; /* else said already */
  }
  brk_machines_load_state(b);
  rc = listen_on(sock, SOCK_SEQPACKET, &b->listen_fd);
  if (rc < 0) {
    brk_err("cannot listen on %s: %s", sock, strerror(-rc));
    goto out;
  }
  if (b->cfg.group_set &&
      (chown(dir, (uid_t)-1, b->cfg.group) < 0 || chmod(dir, 0750) < 0 ||
       chown(sock, (uid_t)-1, b->cfg.group) < 0 || chmod(sock, 0660) < 0)) {
    brk_err("--group: cannot give %s and %s to group %u: %s (the broker's "
            "user must be a member)", dir, sock, (unsigned)b->cfg.group,
            strerror(errno));
    goto out;
  }
  rc = listen_on(ctl, SOCK_STREAM, &b->ctl_fd);
  if (rc < 0) {
    brk_err("cannot listen on %s: %s", ctl, strerror(-rc));
    goto out;
  }
  if (metrics) {
    const char *why = NULL;

    rc = listen_tcp_loopback(metrics, &b->metrics_fd, &why);
    if (rc < 0) {
      brk_err("--metrics %s: %s", metrics, why ? why : strerror(-rc));
      ret = why ? EXIT_USAGE : EXIT_FAIL;
      goto out;
    }
    brk_info("metrics: http://%s/metrics", metrics);
  }
  if (brk_clients_start(b) < 0 || brk_ctl_start(b) < 0) {
    brk_err("cannot start accepting: %s", strerror(errno));
    goto out;
  }
  arm_signals(b);
  tick_op = brk_loop_timeout(b->loop, 1000, on_tick, b);
  if (!sig_op || !tick_op) {
    brk_err("cannot start the event loop");
    goto out;
  }
  b->listening = 1;
  brk_info("tremote-broker %s (pid %d): %u machine(s), %d of them from "
           "--local, backend %s", BRK_VERSION, (int)getpid(), b->nmachines,
           b->cfg.nlocal, b->cfg.backend);
  brk_machines_start(b);
  brk_check_ready(b);

  rc = brk_loop_run(b->loop);
  if (rc < 0) {
    brk_err("event loop failed: %s", strerror(-rc));
    goto out;
  }
  ret = EXIT_OK;
  brk_info("stopped");

out:
  if (!b->stopping && b->loop) {
    b->stopping = 1;
    close_listeners(b);
    brk_machines_stop(b);
  } else if (b->listen_fd >= 0 || b->ctl_fd >= 0) {
    close_listeners(b);
  }
  brk_modal_free(b); /* before the machines: it cancels their requests */
  brk_machines_free(b);
  brk_op_cancel(sig_op);
  brk_op_cancel(tick_op);
  brk_op_cancel(stop_timer);
  brk_loop_free(b->loop);
  if (curl_ready)
    curl_global_cleanup();
  if (sig_fd >= 0)
    close(sig_fd);
  if (b->cfg.ready_fd >= 0)
    close(b->cfg.ready_fd);
  brk_sb_release(&tried);
  free(agent);
  free(specs);
  free(state);
  free(sock);
  free(ctl);
  free(dir);
  return ret;
}
