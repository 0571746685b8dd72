/*
 * tr_relay.c: a TCP relay that behaves like a slower, farther network.
 *
 * The kernels our tests run on have no netem qdisc, so distance is made
 * here: every byte read from one side is released to the other side no
 * earlier than RTT/2 later, and no faster than the link rate allows.  The
 * link is modelled the way a real one behaves: a byte first waits for the
 * bytes ahead of it to be serialised at --rate (the link is busy until
 * link_free), then travels for RTT/2.  Bytes in flight sit in a queue of
 * timestamped chunks, so the delay costs no throughput: a 20 ms relay at
 * 1 GB/s holds up to 10 MB per direction in flight, as a real 20 ms link
 * would.
 *
 * One thread, one epoll loop, one timerfd armed at the earliest due chunk.
 * Each accepted connection gets its own upstream connection (connected
 * blocking: this is a test tool and the upstream is local).
 *
 * Fault options (for the fault tests) count the bytes delivered on a
 * connection in both directions together and act exactly at the count:
 * the write that would cross it is cut short, so the far side has
 * received exactly BYTES bytes in total when the fault happens.
 *
 * Agent-wrapper mode (--exec-agent) puts the relay between tremote-broker
 * and a LOCAL agent without changing the broker: the broker runs
 * "--agent WRAPPER", WRAPPER execs "tr_relay ... --exec-agent AGENT --",
 * passing on the agent arguments the broker gave.  The relay starts the
 * agent with a ready pipe of its own, reads the agent's port, listens on a
 * port of its own, and writes that to the broker's ready fd.  SIGTERM is
 * forwarded to the agent; the relay exits when the agent does, with its
 * status.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROG "tr_relay"
#define EXIT_USAGE 2
#define CHUNK_MIN (4u << 10)
#define CHUNK_MAX (1u << 20)
/* Bytes read within this long of the queue's tail join its chunk: fewer,
 * larger writes, at the price of releasing the earlier bytes this late. */
#define JOIN_NS 50000u
#define READY_TIMEOUT_MS 60000

static const char usage_text[] =
  "Usage: " PROG " [OPTION]... --listen HOST:PORT --to HOST:PORT\n"
  "  or:  " PROG " [OPTION]... --exec-agent AGENT -- AGENT-ARGUMENTS...\n"
  "Relay TCP connections with added delay, a bandwidth cap and faults.\n"
  "\n"
  "Each connection accepted on --listen is relayed to a new connection to\n"
  "--to.  Bytes read from either side at time t are written to the other\n"
  "side at t + RTT/2 at the earliest, and the two directions are each\n"
  "capped at RATE bytes per second, as on a link with that round-trip time\n"
  "and bandwidth.  Delayed bytes wait in a queue, so the delay does not\n"
  "limit throughput.  A test tool: the upstream is connected blocking.\n"
  "\n"
  "Addresses:\n"
  "  --listen HOST:PORT  where to accept connections (default\n"
  "                      127.0.0.1:0); port 0 takes a free port\n"
  "  --to HOST:PORT      where to relay them (required without\n"
  "                      --exec-agent)\n"
  "  --ready-fd N        once listening, write \"PORT\\n\" to descriptor N\n"
  "                      and close it (default: print it on stdout)\n"
  "\n"
  "Link model:\n"
  "  --rtt-ms N          round-trip time to add, in milliseconds (may be\n"
  "                      fractional); each direction is delayed by N/2\n"
  "                      (default 0)\n"
  "  --rate BYTES        bytes per second per direction, with an optional\n"
  "                      K, M or G suffix (powers of 1000); 0 = no cap\n"
  "                      (default 1G)\n"
  "  --buffer BYTES      most bytes held per direction before the relay\n"
  "                      stops reading that side (default: the rate times\n"
  "                      the one-way delay, plus 8M; 64M without a cap)\n"
  "\n"
  "Faults (BYTES counts the bytes delivered on one connection, both\n"
  "directions together; the write crossing it is cut at exactly BYTES):\n"
  "  --drop-after BYTES  then close both sides normally (FIN)\n"
  "  --reset-after BYTES then reset both sides (SO_LINGER 0: RST)\n"
  "  --stall-after BYTES then deliver nothing more, keeping both sides\n"
  "                      open (bytes still read until --buffer is full)\n"
  "  --stall-ms N        end a stall after N ms and go on relaying\n"
  "                      (default 0: stall until the connection ends)\n"
  "  --fault-conn N      apply the faults only to the Nth connection\n"
  "                      accepted (1 = the first; default 0: every one)\n"
  "\n"
  "Agent wrapper:\n"
  "  --exec-agent AGENT  run AGENT with the arguments after \"--\", which\n"
  "                      must contain --ready-fd N (as tremote-broker passes\n"
  "                      them); AGENT gets a ready pipe of its own, the\n"
  "                      relay connects to the port it reports, listens on\n"
  "                      --listen and writes its own port to descriptor N.\n"
  "                      Other descriptors (the secret) pass through.\n"
  "                      SIGTERM/SIGINT are forwarded to AGENT; the relay\n"
  "                      exits when AGENT exits, with its status.  Put\n"
  "                      between a broker and its agent with a script:\n"
  "                        #!/bin/sh\n"
  "                        exec tr_relay --rtt-ms 20 --exec-agent \\\n"
  "                            /path/tremote-gpu-agent -- \"$@\"\n"
  "                      and tremote-broker --agent SCRIPT.\n"
  "\n"
  "Other:\n"
  "  -v, --verbose       log connections and faults on stderr\n"
  "  -h, --help          show this help and exit\n"
  "\n"
  "Exit status:\n"
  "  0  stopped by SIGTERM or SIGINT (without --exec-agent)\n"
  "  1  could not listen, connect or start AGENT; or the loop failed\n"
  "  2  invalid command line\n"
  "  with --exec-agent: AGENT's exit status (128+N if killed by signal N)\n";

struct rly_opts {
  const char *listen, *to, *agent;
  char **agent_argv;
  int ready_fd;
  uint64_t delay_ns; /* one way: half the RTT */
  uint64_t rate;     /* bytes/s, 0 = unlimited */
  uint64_t buffer;
  uint64_t drop_after, reset_after, stall_after; /* 0 = off */
  uint64_t stall_ns;
  unsigned fault_conn;
  bool verbose;
};

/* Bytes read at one time, due at the far side at due_ns. */
struct rly_chunk {
  struct rly_chunk *next;
  uint64_t due_ns;
  size_t cap, len, off; /* data[off, len) still to be written */
  char data[];
};

/* One direction of a connection: read from fd[from], written to fd[to]. */
struct rly_dir {
  int from, to;
  struct rly_chunk *head, *tail;
  uint64_t queued;    /* bytes in the queue */
  uint64_t link_free; /* when the modelled link finishes serialising */
  bool eof;           /* read side ended: shut the write side once empty */
  bool shut;          /* write side shut */
  bool blocked;       /* last write hit EAGAIN: wait for EPOLLOUT */
};

struct rly_conn;
struct rly_end {
  struct rly_conn *c;
  int side; /* 0 = accepted, 1 = upstream */
  uint32_t events; /* interest registered with epoll */
};

struct rly_conn {
  struct rly_conn *next;
  unsigned id;
  int fd[2];
  struct rly_end end[2];
  struct rly_dir dir[2]; /* dir[i] reads fd[i], writes fd[1 - i] */
  uint64_t delivered;
  bool faulty;          /* faults apply to this connection */
  uint64_t stall_until; /* 0 = not stalled; UINT64_MAX = for ever */
  bool stall_done;
  bool dead;
};

struct rly {
  struct rly_opts o;
  int ep, lfd, tfd, sfd;
  struct rly_conn *conns;
  unsigned nconns;
  struct sockaddr_storage up;
  socklen_t uplen;
  pid_t agent;
  int agent_status;
  bool stopping;
};

static void usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
static void usage_error(const char *fmt, ...)
{
  va_list ap;

  fprintf(stderr, PROG ": ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nTry '" PROG " --help' for more information.\n");
  exit(EXIT_USAGE);
}

static void logf_(struct rly *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void logf_(struct rly *r, const char *fmt, ...)
{
  va_list ap;

  if (!r->o.verbose)
    return;
  fprintf(stderr, PROG "[%d]: ", (int)getpid());
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

static uint64_t now_ns(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* "123", "1.5G", "64K": powers of 1000, as link rates are quoted. */
static int parse_amount(const char *s, uint64_t *out)
{
  char *end;
  double v;

  errno = 0;
  v = strtod(s, &end);
  if (errno || end == s || v < 0)
    return -EINVAL;
  switch (*end) {
  case 'k': case 'K': v *= 1e3; end++; break;
  case 'm': case 'M': v *= 1e6; end++; break;
  case 'g': case 'G': v *= 1e9; end++; break;
  default: break;
  }
  if (*end || v > 1e18)
    return -EINVAL;
  *out = (uint64_t)v;
  return 0;
}

static int parse_fd(const char *s)
{
  char *end;
  long v;

  errno = 0;
  v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < 0 || v > INT_MAX)
    return -1;
  return fcntl((int)v, F_GETFD) < 0 ? -1 : (int)v;
}

/* HOST:PORT (or [V6]:PORT) to an address; numeric ports only. */
static int resolve(const char *hp, bool passive, struct sockaddr_storage *ss,
                   socklen_t *len)
{
  char host[256];
  const char *colon = strrchr(hp, ':');
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
  size_t hl;

  if (!colon || !colon[1])
    return -EINVAL;
  hl = (size_t)(colon - hp);
  if (hl >= sizeof(host))
    return -EINVAL;
  memcpy(host, hp, hl);
  host[hl] = 0;
  if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
    memmove(host, host + 1, hl - 2);
    host[hl - 2] = 0;
  }
  hints.ai_flags = passive ? AI_PASSIVE | AI_NUMERICSERV : AI_NUMERICSERV;
  if (getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &ai) != 0)
    return -EINVAL;
  memcpy(ss, ai->ai_addr, ai->ai_addrlen);
  *len = ai->ai_addrlen;
  freeaddrinfo(ai);
  return 0;
}

static void set_nodelay(int fd)
{
  int one = 1;

  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static int epoll_set(struct rly *r, int fd, int op, uint32_t ev, void *ptr)
{
  struct epoll_event e = {.events = ev, .data.ptr = ptr};

  return epoll_ctl(r->ep, op, fd, &e);
}

/* ---- connections ------------------------------------------------------------ */

static void conn_kill(struct rly *r, struct rly_conn *c, bool reset)
{
  if (c->dead)
    return;
  c->dead = true;
  for (int i = 0; i < 2; i++) {
    /* Unread input makes close() send a reset: a drop is a clean end. */
    if (!reset) {
      char junk[4096];
      while (read(c->fd[i], junk, sizeof(junk)) > 0)
        ;
    }
    if (reset) {
      struct linger l = {.l_onoff = 1, .l_linger = 0};
      setsockopt(c->fd[i], SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    }
    epoll_ctl(r->ep, EPOLL_CTL_DEL, c->fd[i], NULL);
    close(c->fd[i]);
    c->fd[i] = -1;
    while (c->dir[i].head) {
      struct rly_chunk *k = c->dir[i].head;
      c->dir[i].head = k->next;
      free(k);
    }
    c->dir[i].tail = NULL;
    c->dir[i].queued = 0;
  }
  logf_(r, "connection %u: closed%s after %" PRIu64 " bytes", c->id,
        reset ? " by reset" : "", c->delivered);
}

static void on_accept(struct rly *r)
{
  struct rly_conn *c;
  int a, u;

  a = accept4(r->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (a < 0)
    return;
  u = socket(r->up.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (u < 0 || connect(u, (struct sockaddr *)&r->up, r->uplen) < 0) {
    logf_(r, "cannot connect upstream: %s", strerror(errno));
    if (u >= 0)
      close(u);
    close(a); /* the client sees its connection end at once */
    return;
  }
  fcntl(u, F_SETFL, O_NONBLOCK);
  set_nodelay(a);
  set_nodelay(u);
  c = calloc(1, sizeof(*c));
  if (!c) {
    close(a);
    close(u);
    return;
  }
  c->id = ++r->nconns;
  c->fd[0] = a;
  c->fd[1] = u;
  c->faulty = r->o.fault_conn == 0 || r->o.fault_conn == c->id;
  for (int i = 0; i < 2; i++) {
    c->end[i] = (struct rly_end){.c = c, .side = i, .events = EPOLLIN};
    c->dir[i].from = i;
    c->dir[i].to = 1 - i;
  }
  if (epoll_set(r, a, EPOLL_CTL_ADD, EPOLLIN, &c->end[0]) < 0 ||
      epoll_set(r, u, EPOLL_CTL_ADD, EPOLLIN, &c->end[1]) < 0) {
    close(a);
    close(u);
    free(c);
    return;
  }
  c->next = r->conns;
  r->conns = c;
  logf_(r, "connection %u: accepted", c->id);
}

/* Read what side d->from has, timestamp it with the modelled link. */
static void dir_read(struct rly *r, struct rly_conn *c, struct rly_dir *d)
{
  int fd = c->fd[d->from], avail = 0;
  uint64_t now = now_ns(), room;
  struct rly_chunk *k = d->tail;
  ssize_t n;
  size_t want;

  if (d->eof || d->queued >= r->o.buffer)
    return;
  room = r->o.buffer - d->queued;
  if (ioctl(fd, FIONREAD, &avail) < 0 || avail <= 0)
    avail = 1; /* EOF or an error: read() says which */
  want = (size_t)avail < room ? (size_t)avail : (size_t)room;
  if (want > CHUNK_MAX)
    want = CHUNK_MAX;
  /* Join the tail chunk when it was due about now + delay anyway. */
  bool fresh = !k || k->cap - k->len < want ||
               k->due_ns + JOIN_NS < now + r->o.delay_ns;
  if (fresh) {
    size_t cap = want < CHUNK_MIN ? CHUNK_MIN : want;
    k = malloc(sizeof(*k) + cap);
    if (!k) {
      conn_kill(r, c, true);
      return;
    }
    k->next = NULL;
    k->cap = cap;
    k->len = k->off = 0;
  }
  n = read(fd, k->data + k->len, want);
  if (n <= 0) {
    int err = n < 0 ? errno : 0;
    if (fresh)
      free(k);
    if (err == EAGAIN || err == EINTR)
      return;
    if (err) {
      /* Reset by the peer: pass the reset on. */
      logf_(r, "connection %u: side %d: %s", c->id, d->from, strerror(err));
      conn_kill(r, c, true);
      return;
    }
    d->eof = true;
    return;
  }
  if (fresh) {
    if (d->tail)
      d->tail->next = k;
    else
      d->head = k;
    d->tail = k;
  }
  /* The link model: serialise at the rate behind earlier bytes, then fly. */
  {
    uint64_t start = d->link_free > now ? d->link_free : now;
    uint64_t ser = r->o.rate ? (uint64_t)n * 1000000000ull / r->o.rate : 0;
    d->link_free = start + ser;
    k->due_ns = d->link_free + r->o.delay_ns;
  }
  k->len += (size_t)n;
  d->queued += (uint64_t)n;
}

/* How many bytes may be delivered before a fault point. */
static uint64_t fault_limit(struct rly *r, struct rly_conn *c)
{
  uint64_t lim = UINT64_MAX;
  const uint64_t pts[3] = {r->o.drop_after, r->o.reset_after,
                           c->stall_done ? 0 : r->o.stall_after};

  if (!c->faulty)
    return lim;
  for (int i = 0; i < 3; i++) {
    uint64_t left;
    if (!pts[i])
      continue;
    left = pts[i] > c->delivered ? pts[i] - c->delivered : 0;
    if (left < lim)
      lim = left;
  }
  return lim;
}

/* Act on a fault point just reached; returns true when c is gone. */
static bool fault_check(struct rly *r, struct rly_conn *c, uint64_t now)
{
  if (!c->faulty)
    return false;
  if (r->o.reset_after && c->delivered >= r->o.reset_after) {
    logf_(r, "connection %u: reset after %" PRIu64 " bytes", c->id, c->delivered);
    conn_kill(r, c, true);
    return true;
  }
  if (r->o.drop_after && c->delivered >= r->o.drop_after) {
    logf_(r, "connection %u: dropped after %" PRIu64 " bytes", c->id, c->delivered);
    conn_kill(r, c, false);
    return true;
  }
  if (r->o.stall_after && !c->stall_done && !c->stall_until &&
      c->delivered >= r->o.stall_after) {
    c->stall_until = r->o.stall_ns ? now + r->o.stall_ns : UINT64_MAX;
    logf_(r, "connection %u: stalled after %" PRIu64 " bytes", c->id, c->delivered);
  }
  return false;
}

/* Write every due chunk of d; returns false when c died. */
static bool dir_write(struct rly *r, struct rly_conn *c, struct rly_dir *d,
                      uint64_t now)
{
  while (d->head && d->head->due_ns <= now && !c->stall_until) {
    struct rly_chunk *k = d->head;
    uint64_t lim = fault_limit(r, c);
    size_t len = k->len - k->off;
    ssize_t n;

    if (len > lim)
      len = (size_t)lim;
    if (len) {
      n = write(c->fd[d->to], k->data + k->off, len);
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) {
          d->blocked = errno == EAGAIN;
          return true;
        }
        logf_(r, "connection %u: side %d: %s", c->id, d->to, strerror(errno));
        conn_kill(r, c, true);
        return false;
      }
      k->off += (size_t)n;
      d->queued -= (uint64_t)n;
      c->delivered += (uint64_t)n;
    }
    if (fault_check(r, c, now))
      return false;
    if (k->off == k->len && k->len == k->cap) {
      d->head = k->next;
      if (!d->head)
        d->tail = NULL;
      free(k);
    } else if (k->off == k->len) {
      /* Keep a partly filled tail for joining; drop an emptied head. */
      if (k != d->tail) {
        d->head = k->next;
        free(k);
      } else {
        break;
      }
    }
  }
  d->blocked = false;
  if (d->eof && !d->queued && !d->shut) {
    shutdown(c->fd[d->to], SHUT_WR);
    d->shut = true;
  }
  return true;
}

/* Stall over, both directions shut, interest updated; false when gone. */
static bool conn_step(struct rly *r, struct rly_conn *c, uint64_t now)
{
  if (c->stall_until && c->stall_until <= now) {
    c->stall_until = 0;
    c->stall_done = true;
    logf_(r, "connection %u: stall over", c->id);
  }
  for (int i = 0; i < 2; i++)
    if (!dir_write(r, c, &c->dir[i], now))
      return false;
  if (c->dir[0].shut && c->dir[1].shut) {
    conn_kill(r, c, false);
    return false;
  }
  for (int s = 0; s < 2; s++) {
    struct rly_dir *in = &c->dir[s], *out = &c->dir[1 - s];
    uint32_t ev = 0;

    if (!in->eof && in->queued < r->o.buffer)
      ev |= EPOLLIN;
    if (out->blocked)
      ev |= EPOLLOUT;
    if (ev != c->end[s].events) {
      epoll_set(r, c->fd[s], EPOLL_CTL_MOD, ev, &c->end[s]);
      c->end[s].events = ev;
    }
  }
  return true;
}

static uint64_t next_due(struct rly *r)
{
  uint64_t t = UINT64_MAX;

  for (struct rly_conn *c = r->conns; c; c = c->next) {
    if (c->dead)
      continue;
    if (c->stall_until) {
      if (c->stall_until < t)
        t = c->stall_until;
      continue;
    }
    for (int i = 0; i < 2; i++) {
      struct rly_chunk *k = c->dir[i].head;
      if (k && !c->dir[i].blocked && k->off < k->len && k->due_ns < t)
        t = k->due_ns;
    }
  }
  return t;
}

static void arm_timer(struct rly *r, uint64_t t)
{
  struct itimerspec its = {0};

  if (t != UINT64_MAX) {
    if (t == 0)
      t = 1;
    its.it_value.tv_sec = (time_t)(t / 1000000000ull);
    its.it_value.tv_nsec = (long)(t % 1000000000ull);
  }
  timerfd_settime(r->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* ---- signals and the agent ------------------------------------------------ */

static void on_signal(struct rly *r)
{
  struct signalfd_siginfo si;

  while (read(r->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
    if (si.ssi_signo == SIGCHLD && r->agent > 0) {
      int st;
      if (waitpid(r->agent, &st, WNOHANG) == r->agent) {
        r->agent = 0;
        r->agent_status = WIFEXITED(st) ? WEXITSTATUS(st)
                                         : 128 + WTERMSIG(st);
        r->stopping = true;
      }
    } else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
      if (r->agent > 0)
        kill(r->agent, (int)si.ssi_signo);
      else
        r->stopping = true;
    }
  }
}

/* Start the agent with a ready pipe of ours; learn its port. */
static int start_agent(struct rly *r)
{
  char **av = r->o.agent_argv, line[128];
  int bfd = -1, p[2], n = 0, ready = -1;
  pid_t pid;

  for (int i = 0; av[i]; i++) {
    if (strcmp(av[i], "--ready-fd") == 0 && av[i + 1]) {
      ready = parse_fd(av[i + 1]);
      break;
    }
    if (strncmp(av[i], "--ready-fd=", 11) == 0) {
      ready = parse_fd(av[i] + 11);
      break;
    }
  }
  if (ready < 0)
    usage_error("--exec-agent: the agent arguments name no open --ready-fd");
  /* The broker's ready fd stays ours; the agent gets a pipe in its place. */
  bfd = fcntl(ready, F_DUPFD_CLOEXEC, 10);
  if (bfd < 0 || pipe2(p, O_CLOEXEC) < 0) {
    fprintf(stderr, PROG ": pipe: %s\n", strerror(errno));
    return -1;
  }
  pid = fork();
  if (pid < 0) {
    fprintf(stderr, PROG ": fork: %s\n", strerror(errno));
    return -1;
  }
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* A relay that dies takes its agent along, as the broker's would. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (dup2(p[1], ready) != ready)
      _exit(126);
    av[0] = (char *)r->o.agent;
    execv(r->o.agent, av);
    fprintf(stderr, PROG ": cannot run %s: %s\n", r->o.agent, strerror(errno));
    _exit(127);
  }
  r->agent = pid;
  close(p[1]);
  close(ready);
  r->o.ready_fd = bfd;
  /* One line; the agent writes it at once when it listens. */
  for (;;) {
    struct pollfd pf = {.fd = p[0], .events = POLLIN};
    ssize_t k;

    if (poll(&pf, 1, READY_TIMEOUT_MS) <= 0)
      break;
    k = read(p[0], line + n, sizeof(line) - 1 - (size_t)n);
    if (k <= 0)
      break;
    n += (int)k;
    if (memchr(line, '\n', (size_t)n) || n == (int)sizeof(line) - 1)
      break;
  }
  close(p[0]);
  line[n] = 0;
  {
    char *nl = strchr(line, '\n'), *colon, to[160];
    if (nl)
      *nl = 0;
    if (!nl || !line[0]) {
      fprintf(stderr, PROG ": the agent reported no port\n");
      return -1;
    }
    colon = strrchr(line, ':');
    snprintf(to, sizeof(to), "127.0.0.1:%s", colon ? colon + 1 : line);
    if (resolve(to, false, &r->up, &r->uplen) < 0) {
      fprintf(stderr, PROG ": the agent reported '%s'\n", line);
      return -1;
    }
  }
  return 0;
}

static int listen_on(struct rly *r)
{
  struct sockaddr_storage ss;
  socklen_t len;
  int one = 1, port;
  char buf[32];

  if (resolve(r->o.listen, true, &ss, &len) < 0) {
    fprintf(stderr, PROG ": --listen: cannot resolve '%s'\n", r->o.listen);
    return -1;
  }
  r->lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (r->lfd < 0)
    goto fail;
  setsockopt(r->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(r->lfd, (struct sockaddr *)&ss, len) < 0 || listen(r->lfd, 64) < 0)
    goto fail;
  len = sizeof(ss);
  if (getsockname(r->lfd, (struct sockaddr *)&ss, &len) < 0)
    goto fail;
  port = ntohs(ss.ss_family == AF_INET6
                   ? ((struct sockaddr_in6 *)&ss)->sin6_port
                   : ((struct sockaddr_in *)&ss)->sin_port);
  snprintf(buf, sizeof(buf), "%d\n", port);
  if (r->o.ready_fd >= 0) {
    if (write(r->o.ready_fd, buf, strlen(buf)) != (ssize_t)strlen(buf))
      goto fail;
    close(r->o.ready_fd);
    r->o.ready_fd = -1;
  } else {
    fputs(buf, stdout);
    fflush(stdout);
  }
  return 0;
fail:
  fprintf(stderr, PROG ": listen on %s: %s\n", r->o.listen, strerror(errno));
  return -1;
}

static void parse_args(struct rly_opts *o, int argc, char **argv)
{
  enum { O_LISTEN = 256, O_TO, O_READY, O_RTT, O_RATE, O_BUFFER, O_DROP,
         O_RESET, O_STALL, O_STALL_MS, O_FAULT_CONN, O_EXEC };
  static const struct option longopts[] = {
      {"listen", required_argument, NULL, O_LISTEN},
      {"to", required_argument, NULL, O_TO},
      {"ready-fd", required_argument, NULL, O_READY},
      {"rtt-ms", required_argument, NULL, O_RTT},
      {"rate", required_argument, NULL, O_RATE},
      {"buffer", required_argument, NULL, O_BUFFER},
      {"drop-after", required_argument, NULL, O_DROP},
      {"reset-after", required_argument, NULL, O_RESET},
      {"stall-after", required_argument, NULL, O_STALL},
      {"stall-ms", required_argument, NULL, O_STALL_MS},
      {"fault-conn", required_argument, NULL, O_FAULT_CONN},
      {"exec-agent", required_argument, NULL, O_EXEC},
      {"verbose", no_argument, NULL, 'v'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  uint64_t v;
  double ms;
  char *end;
  int c;

  *o = (struct rly_opts){.listen = "127.0.0.1:0", .ready_fd = -1,
                         .rate = 1000000000ull};
  o->buffer = 0;
  /* "+": stop at the first non-option, so the agent's arguments after
   * "--" are never taken for ours. */
  while ((c = getopt_long(argc, argv, "+vh", longopts, NULL)) != -1) {
    switch (c) {
    case O_LISTEN: o->listen = optarg; break;
    case O_TO: o->to = optarg; break;
    case O_READY:
      if ((o->ready_fd = parse_fd(optarg)) < 0)
        usage_error("--ready-fd: not an open descriptor: '%s'", optarg);
      break;
    case O_RTT:
      errno = 0;
      ms = strtod(optarg, &end);
      if (errno || end == optarg || *end || ms < 0 || ms > 3600e3)
        usage_error("--rtt-ms: '%s' is not a number of milliseconds", optarg);
      o->delay_ns = (uint64_t)(ms * 1e6 / 2);
      break;
    case O_RATE:
    case O_BUFFER:
    case O_DROP:
    case O_RESET:
    case O_STALL:
      if (parse_amount(optarg, &v) < 0)
        usage_error("'%s' is not an amount such as 1G or 65536", optarg);
      if (c == O_RATE) o->rate = v;
      else if (c == O_BUFFER) o->buffer = v;
      else if (c == O_DROP) o->drop_after = v;
      else if (c == O_RESET) o->reset_after = v;
      else o->stall_after = v;
      if (c != O_RATE && v == 0)
        usage_error("an amount of bytes must be at least 1");
      break;
    case O_STALL_MS:
    case O_FAULT_CONN:
      if (parse_amount(optarg, &v) < 0 || v > UINT_MAX)
        usage_error("'%s' is not a whole number", optarg);
      if (c == O_STALL_MS)
        o->stall_ns = v * 1000000ull;
      else
        o->fault_conn = (unsigned)v;
      break;
    case O_EXEC: o->agent = optarg; break;
    case 'v': o->verbose = true; break;
    case 'h': fputs(usage_text, stdout); exit(0);
    default: usage_error("invalid option");
    }
  }
  if (o->agent) {
    if (o->to)
      usage_error("--to and --exec-agent exclude each other");
    if (optind < 1 || strcmp(argv[optind - 1], "--") != 0)
      usage_error("--exec-agent: put the agent's arguments after '--'");
    /* argv[optind - 1] ("--") becomes the agent's argv[0]. */
    o->agent_argv = argv + optind - 1;
  } else {
    if (!o->to)
      usage_error("--to is required (or --exec-agent)");
    if (optind < argc)
      usage_error("unexpected argument '%s'", argv[optind]);
  }
  if (!o->buffer)
    o->buffer = o->rate ? o->rate * (o->delay_ns / 1000) / 1000000 + (8u << 20)
                        : (64u << 20);
}

int main(int argc, char **argv)
{
  struct rly r = {.ep = -1, .lfd = -1, .tfd = -1, .sfd = -1};
  struct epoll_event evs[64];
  sigset_t set;
  int rc = 1;

  parse_args(&r.o, argc, argv);
  signal(SIGPIPE, SIG_IGN);
  /* Chunks up to 1 MiB come and go all the time: keep them in the heap. */
  mallopt(M_MMAP_THRESHOLD, 4 << 20);
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGCHLD);
  sigprocmask(SIG_BLOCK, &set, NULL);
  r.sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (r.o.agent) {
    if (start_agent(&r) < 0)
      goto out;
  } else if (resolve(r.o.to, false, &r.up, &r.uplen) < 0) {
    fprintf(stderr, PROG ": --to: cannot resolve '%s'\n", r.o.to);
    goto out;
  }
  r.ep = epoll_create1(EPOLL_CLOEXEC);
  r.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (r.ep < 0 || r.tfd < 0 || r.sfd < 0) {
    fprintf(stderr, PROG ": %s\n", strerror(errno));
    goto out;
  }
  if (listen_on(&r) < 0)
    goto out;
  if (epoll_set(&r, r.lfd, EPOLL_CTL_ADD, EPOLLIN, &r.lfd) < 0 ||
      epoll_set(&r, r.tfd, EPOLL_CTL_ADD, EPOLLIN, &r.tfd) < 0 ||
      epoll_set(&r, r.sfd, EPOLL_CTL_ADD, EPOLLIN, &r.sfd) < 0)
    goto out;
  logf_(&r, "relaying %s -> %s, rtt %.3f ms, rate %" PRIu64 " B/s, buffer %" PRIu64,
        r.o.listen, r.o.to ? r.o.to : r.o.agent, (double)r.o.delay_ns * 2 / 1e6,
        r.o.rate, r.o.buffer);

  while (!r.stopping) {
    uint64_t now = now_ns();
    int n;

    for (struct rly_conn **pc = &r.conns; *pc;) {
      struct rly_conn *c = *pc;
      if (!c->dead)
        conn_step(&r, c, now);
      if (c->dead) {
        *pc = c->next;
        free(c);
      } else {
        pc = &c->next;
      }
    }
    arm_timer(&r, next_due(&r));
    n = epoll_wait(r.ep, evs, 64, -1);
    if (n < 0 && errno != EINTR) {
      fprintf(stderr, PROG ": epoll_wait: %s\n", strerror(errno));
      goto out;
    }
    for (int i = 0; i < n; i++) {
      void *p = evs[i].data.ptr;
      if (p == &r.lfd) {
        on_accept(&r);
      } else if (p == &r.tfd) {
        uint64_t ticks;
        (void)!read(r.tfd, &ticks, sizeof(ticks));
      } else if (p == &r.sfd) {
        on_signal(&r);
      } else {
        struct rly_end *e = p;
        struct rly_conn *c = e->c;
        if (c->dead)
          continue;
        /* A socket error is a broken connection (a reset, mostly): pass
         * it on at once, or a full queue would leave it reported for
         * ever. */
        if (evs[i].events & EPOLLERR) {
          int err = 0;
          socklen_t len = sizeof(err);
          getsockopt(c->fd[e->side], SOL_SOCKET, SO_ERROR, &err, &len);
          logf_(&r, "connection %u: side %d: %s", c->id, e->side, strerror(err));
          conn_kill(&r, c, true);
          continue;
        }
        if (evs[i].events & EPOLLOUT)
          c->dir[1 - e->side].blocked = false;
        if (evs[i].events & (EPOLLIN | EPOLLHUP))
          dir_read(&r, c, &c->dir[e->side]);
      }
    }
  }
  rc = r.o.agent ? r.agent_status : 0;
out:
  for (struct rly_conn *c = r.conns, *nx; c; c = nx) {
    nx = c->next;
    conn_kill(&r, c, false);
    free(c);
  }
  if (r.agent > 0) {
    /* Leaving before the agent did (a start-up failure): take it along. */
    kill(r.agent, SIGTERM);
    waitpid(r.agent, NULL, 0);
  }
  if (r.lfd >= 0)
    close(r.lfd);
  if (r.tfd >= 0)
    close(r.tfd);
  if (r.ep >= 0)
    close(r.ep);
  if (r.sfd >= 0)
    close(r.sfd);
  return rc;
}
