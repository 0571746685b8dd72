/*
 * proc.c: every session in a worker process of its own (--isolation
 * process), around another backend (emu or cuda).
 *
 * Why: with the cuda backend the sessions of an agent otherwise share one
 * process, so a driver crash, or memory corrupted by one session's bug in
 * the driver, takes every session down; and the device's printf goes to
 * that one process's stdout.  A worker per session has its own CUDA
 * context, its own address window and its own stdout, and its death is
 * its session's alone.
 *
 * How: this file is a backend (backend.h) whose contexts are workers.
 * Each worker is this same binary run as `tremote-gpu-agent --worker-fd 3`
 * (exec'ed, never a bare fork of the threaded agent); it opens the inner
 * backend and one context on it, and answers the calls forwarded to it:
 *
 *   control socket   INIT (the inner backend's configuration), OPEN (the
 *                    window), CHANNEL (a new data channel, its socket and
 *                    shared memory passed with SCM_RIGHTS), CLOSE
 *   data channels    one call at a time each; the agent keeps a free list
 *                    and adds a channel when every one is busy, so lanes
 *                    of a session still run at the same time (a worker
 *                    thread per channel)
 *
 * Messages are SOCK_SEQPACKET (boundaries kept): a struct pmsg header and
 * up to PMSG_INLINE bytes (names, parameters, a reason).  Bulk bytes go
 * through the channel's shared memory (PROC_SHM), in pieces for longer
 * copies; a module image goes in a memfd of its own, which the worker
 * keeps mapped until the module is unloaded (backends may keep pointers
 * into the image).  While a launch runs the worker may send OUT messages
 * (device printf, fault reports) before the reply; the cuda backend's
 * printf reaches the worker's stdout (at the driver's next synchronising
 * call, not when the kernel ends), which the worker reads back from a pipe
 * before each reply and sends the same way.
 *
 * A spare worker is started ahead (INIT sent, not waited for), so
 * ctx_open, which runs on the agent's network thread, mostly gets the
 * OPEN answer of a worker that has already loaded its backend at once.
 * When many sessions open together there is no spare for most: each gets
 * a worker started then, whose backend takes a quarter of a second on a
 * GPU (cuInit, a context).  ctx_open does not wait for that on the network
 * thread (PROC_OPEN_QUICK_MS at most), which every session's traffic
 * needs: 32 programs starting at once on an H200 kept it 8 s and every
 * other session stalled meanwhile.  A thread of the session's (opener)
 * waits for the answer instead; the agent parks the session's lanes until
 * then (ctx_when_ready), so execution threads keep serving the sessions
 * that are up.  A worker that failed to open makes the session's calls
 * fail (cudaErrorDevicesUnavailable) and the agent logs why.
 *
 * A worker that dies makes every later call of its session fail with
 * cudaErrorDevicesUnavailable; ctx_close reaps it (SIGKILL after
 * PROC_CLOSE_MS).  Workers die with the agent (PR_SET_PDEATHSIG).
 *
 * Host pinning (mem_pin) is not offered: the agent then stages copies, as
 * the contract allows.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <driver_types.h>

#include "agent.h"
#include "backend.h"
#include "proc_int.h"

#define PROC_CLOSE_MS 5000
#define PROC_OPEN_MS 30000
#define PROC_OPEN_QUICK_MS 5 /* on the network thread, see above */

/* ---- messages ------------------------------------------------------------- */

/* Send a header, inline bytes and optionally one descriptor.  0 or -1. */
int proc_send(int fd, const struct pmsg *m, const void *data, int pass_fd)
{
  struct iovec iov[2] = {{(void *)m, sizeof(*m)}, {(void *)data, m->len}};
  union {
    char buf[CMSG_SPACE(sizeof(int) * 2)];
    struct cmsghdr align;
  } u;
  struct msghdr mh = {.msg_iov = iov, .msg_iovlen = m->len ? 2 : 1};

  if (pass_fd >= 0) {
    struct cmsghdr *c;

    memset(&u, 0, sizeof(u));
    mh.msg_control = u.buf;
    mh.msg_controllen = CMSG_SPACE(sizeof(int));
    c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
  }
  for (;;) {
    ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);

    if (n >= 0)
      return 0;
    if (errno != EINTR)
      return -1;
  }
}

/* Receive one message: header into *m, inline bytes into data (cap
   PMSG_INLINE, NUL-terminated after them), up to two descriptors into
   fds (-1 when absent).  0, or -1 at EOF or on error. */
int proc_recv(int fd, struct pmsg *m, uint8_t *data, int fds[2])
{
  struct iovec iov[2] = {{m, sizeof(*m)}, {data, PMSG_INLINE}};
  union {
    char buf[CMSG_SPACE(sizeof(int) * 2)];
    struct cmsghdr align;
  } u;
  struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2,
                      .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
  ssize_t n;

  if (fds)
    fds[0] = fds[1] = -1;
  do
    n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < (ssize_t)sizeof(*m) || (mh.msg_flags & MSG_TRUNC) ||
      m->len > PMSG_INLINE || (size_t)n != sizeof(*m) + m->len)
    return -1;
  data[m->len] = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

      for (size_t i = 0; i < k; i++) {
        int got;

        memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        if (fds && i < 2)
          fds[i] = got;
        else
          close(got);
      }
    }
  }
  return 0;
}

/* =========================================================================
 * The agent's side
 * ========================================================================= */

struct pchan {
  struct pchan *next;
  int fd;
  uint8_t *shm;
  uint8_t *buf; /* PMSG_INLINE + 1: received inline bytes */
};

struct proc;

struct agt_bctx {
  struct proc *p;
  pid_t pid;
  int ctl;
  pthread_mutex_t mu; /* free, nchan, dead, opening, out, out_arg */
  struct pchan *free;
  struct pchan *all[64];
  unsigned nchan;
  /* All 64 channels busy: a call waits here for one (chan_put), as the
     session's lanes may outnumber them on a host with many cores. */
  pthread_cond_t chan_cv;
  int dead;
  /* OPEN sent, its answer not in yet: the opener thread waits for it,
     then clears this, broadcasts open_cv and calls ready(ready_arg). */
  bool opening;
  bool closing; /* ctx_close stopped the opener: not an error to log */
  bool has_opener;
  pthread_t opener;
  pthread_cond_t open_cv;
  void (*ready)(void *arg);
  void *ready_arg;
  /* Where the worker's output goes (the session's program): taken from
     the first launch, since a launch carries it, and used for output that
     arrives with any later call (the driver writes a kernel's printf at
     its next synchronising call, often not the launch). */
  void (*out)(void *arg, int fd, const char *s, size_t n);
  void *out_arg;
  /* The staging arena ("Staging"): NULL until the first large copy has
     made it (set once; read without mu, by the network thread too);
     arena_tried (under mu) once that copy tried. */
  _Atomic(struct parena *) arena;
  bool arena_tried;
};

/* A staging slot handed out: its token (stage_get). */
struct pslot {
  struct parena *a;
};

struct parena {
  atomic_uint refs; /* the context's, and one for each slot handed out */
  pthread_mutex_t mu; /* used */
  uint32_t used;      /* bit i: slot i is handed out */
  uint8_t *base;      /* PROC_ARENA bytes, shared with the worker */
  struct pslot slot[PROC_SLOTS];
};

static void arena_put(struct parena *a);

struct proc {
  struct agt_backend b;
  struct agt_backend_ops ops;
  struct agt_backend *inner; /* this process's: devinfo, memory info */
  struct pinit init;
  pthread_mutex_t mu; /* the spare */
  pid_t spare_pid;
  int spare_ctl;
  _Atomic uint64_t staged; /* bytes copied from or to an arena */
};

/* Start a worker and send it INIT (not waited for).  0 or -1. */
static int spawn_worker(struct proc *p, pid_t *pid, int *ctl)
{
  struct pmsg m = {.op = P_INIT, .len = sizeof(p->init)};
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  int sv[2];

  if (n <= 0)
    return -1;
  self[n] = 0;
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
    return -1;
  *pid = fork();
  if (*pid < 0) {
    close(sv[0]);
    close(sv[1]);
    return -1;
  }
  if (*pid == 0) {
    /* Only async-signal-safe calls until exec: the agent has threads. */
    char *const argv[] = {self, "--worker-fd", "3", NULL};

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (sv[1] == 3) {
      fcntl(3, F_SETFD, 0);
    } else {
      dup2(sv[1], 3);
    }
    execv(self, argv);
    _exit(127);
  }
  close(sv[1]);
  *ctl = sv[0];
  if (proc_send(*ctl, &m, &p->init, -1) < 0) {
    close(*ctl);
    kill(*pid, SIGKILL);
    waitpid(*pid, NULL, 0);
    return -1;
  }
  return 0;
}

/* The reply on fd within ms (-1: no limit): 0, 1 if none came in time,
   -1 if the worker is gone or said something else. */
static int wait_reply(int fd, int ms, struct pmsg *m, uint8_t *buf)
{
  struct pollfd pf = {.fd = fd, .events = POLLIN};
  int r;

  do
    r = poll(&pf, 1, ms);
  while (r < 0 && errno == EINTR);
  if (r < 0)
    return -1;
  if (r == 0)
    return 1;
  return proc_recv(fd, m, buf, NULL) < 0 || m->op != P_REPLY ? -1 : 0;
}

static void reap(pid_t pid, int ms)
{
  for (int waited = 0; waited < ms; waited += 10) {
    if (waitpid(pid, NULL, WNOHANG) == pid)
      return;
    usleep(10000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}

static void *opener_main(void *arg);

static int proc_ctx_open(struct agt_backend *b, uint64_t base, uint64_t size,
                         struct agt_bctx **out, const char **why)
{
  static __thread char reason[AGT_WHY_MAX];
  struct proc *p = (struct proc *)b;
  struct pmsg m = {.op = P_OPEN, .a = {base, size}};
  struct agt_bctx *c;
  uint8_t *buf;
  pid_t pid;
  int ctl, r;

  c = calloc(1, sizeof(*c));
  buf = malloc(PMSG_INLINE + 1);
  if (!c || !buf) {
    free(c);
    free(buf);
    *why = "out of memory";
    return -ENOMEM;
  }
  pthread_mutex_lock(&p->mu);
  pid = p->spare_pid;
  ctl = p->spare_ctl;
  p->spare_pid = 0;
  p->spare_ctl = -1;
  pthread_mutex_unlock(&p->mu);
  if (!pid && spawn_worker(p, &pid, &ctl) < 0) {
    free(c);
    free(buf);
    *why = "cannot start a worker process for the session";
    return -ENOMEM;
  }
  if (proc_send(ctl, &m, NULL, -1) < 0) {
    close(ctl);
    reap(pid, 0);
    free(c);
    free(buf);
    *why = "the session's worker process did not start (see the agent's "
           "log)";
    return -EIO;
  }
  c->p = p;
  c->pid = pid;
  c->ctl = ctl;
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->open_cv, NULL);
  pthread_cond_init(&c->chan_cv, NULL);
  r = wait_reply(ctl, PROC_OPEN_QUICK_MS, &m, buf);
  if (r == 1) { /* still starting: the opener thread takes the answer */
    c->opening = true;
    if (pthread_create(&c->opener, NULL, opener_main, c) == 0) {
      /* Open, as far as the agent goes; c belongs to the opener too
         from here on (only what is under c->mu is shared). */
      c->has_opener = true;
      free(buf);
      goto opened;
    }
    c->opening = false; /* no thread: waited for here after all */
    r = wait_reply(ctl, PROC_OPEN_MS, &m, buf);
  }
  if (r < 0 || r == 1) {
    close(ctl);
    reap(pid, 0);
    r = -EIO;
    *why = "the session's worker process did not start (see the agent's "
           "log)";
    goto fail;
  }
  if (m.status) {
    snprintf(reason, sizeof(reason), "%s", (char *)buf);
    close(ctl);
    reap(pid, PROC_CLOSE_MS);
    *why = reason;
    r = -(int)m.status;
    goto fail;
  }
  free(buf);
opened:
  /* The next session's worker starts now, off this session's path. */
  pthread_mutex_lock(&p->mu);
  if (!p->spare_pid && spawn_worker(p, &p->spare_pid, &p->spare_ctl) < 0) {
    p->spare_pid = 0;
    p->spare_ctl = -1;
  }
  pthread_mutex_unlock(&p->mu);
  *out = c;
  return 0;

fail:
  pthread_cond_destroy(&c->open_cv);
  pthread_cond_destroy(&c->chan_cv);
  pthread_mutex_destroy(&c->mu);
  free(c);
  free(buf);
  return r;
}

static void chan_free(struct pchan *ch)
{
  if (ch->shm)
    munmap(ch->shm, PROC_SHM);
  if (ch->fd >= 0)
    close(ch->fd);
  free(ch->buf);
  free(ch);
}

/* Under c->mu: wait for the OPEN answer the opener thread waits for. */
static void open_wait(struct agt_bctx *c)
{
  while (c->opening)
    pthread_cond_wait(&c->open_cv, &c->mu);
}

/* The session's opener: the OPEN answer ctx_open did not wait for.  A
   worker that did not open (or went) marks the session dead, with the
   reason in the log. */
static void *opener_main(void *arg)
{
  struct agt_bctx *c = arg;
  struct pmsg m;
  uint8_t *buf = malloc(PMSG_INLINE + 1);
  const char *why = "it is gone";
  void (*ready)(void *);
  void *ready_arg;
  int r = -1;

  if (buf)
    r = wait_reply(c->ctl, PROC_OPEN_MS, &m, buf);
  if (r == 0 && m.status) {
    buf[m.len < PMSG_INLINE ? m.len : PMSG_INLINE] = 0;
    why = (const char *)buf;
  } else if (r == 1) {
    why = "no answer in time";
  }
  pthread_mutex_lock(&c->mu);
  if ((r != 0 || m.status) && !c->dead && !c->closing) {
    agt_err("worker process %d could not open its session: %s; the "
            "session's calls fail", (int)c->pid, why);
  }
  if (r != 0 || m.status)
    c->dead = 1;
  c->opening = false;
  ready = c->ready;
  ready_arg = c->ready_arg;
  pthread_cond_broadcast(&c->open_cv);
  pthread_mutex_unlock(&c->mu);
  free(buf);
  if (ready)
    ready(ready_arg);
  return NULL;
}

static int proc_ctx_when_ready(struct agt_bctx *c, void (*ready)(void *),
                               void *arg)
{
  int now;

  pthread_mutex_lock(&c->mu);
  now = !c->opening;
  if (!now) {
    c->ready = ready;
    c->ready_arg = arg;
  }
  pthread_mutex_unlock(&c->mu);
  return now;
}

/* A free channel of c, made if all are busy; NULL if c is dead or out of
   resources. */
static struct pchan *chan_get(struct agt_bctx *c)
{
  struct pchan *ch;
  struct pmsg m = {.op = P_CHANNEL};
  int sv[2] = {-1, -1}, mfd = -1;

  pthread_mutex_lock(&c->mu);
  open_wait(c);
  /* Every channel out: one comes back with its call's reply (no caller
     holds one while it asks for another). */
  while (!c->dead && !c->free &&
         c->nchan == sizeof(c->all) / sizeof(c->all[0]))
    pthread_cond_wait(&c->chan_cv, &c->mu);
  if (c->dead) {
    pthread_mutex_unlock(&c->mu);
    return NULL;
  }
  ch = c->free;
  if (ch) {
    c->free = ch->next;
    pthread_mutex_unlock(&c->mu);
    return ch;
  }
  ch = calloc(1, sizeof(*ch));
  if (!ch)
    goto fail;
  ch->fd = -1;
  ch->buf = malloc(PMSG_INLINE + 1);
  mfd = memfd_create("tremote-worker-shm", MFD_CLOEXEC);
  if (!ch->buf || mfd < 0 || ftruncate(mfd, PROC_SHM) < 0 ||
      socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
    goto fail;
  ch->shm = mmap(NULL, PROC_SHM, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
  if (ch->shm == MAP_FAILED) {
    ch->shm = NULL;
    goto fail;
  }
  /* The socket end and the memory go to the worker in one message (the
     control socket is ours alone under c->mu). */
  {
    struct iovec iov = {&m, sizeof(m)};
    union {
      char b[CMSG_SPACE(sizeof(int) * 2)];
      struct cmsghdr align;
    } u;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1,
                        .msg_control = u.b, .msg_controllen = sizeof(u.b)};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    int two[2] = {sv[1], mfd};

    memset(u.b, 0, sizeof(u.b));
    cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(two));
    memcpy(CMSG_DATA(cm), two, sizeof(two));
    if (sendmsg(c->ctl, &mh, MSG_NOSIGNAL) < 0)
      goto fail;
  }
  close(sv[1]);
  close(mfd);
  ch->fd = sv[0];
  c->all[c->nchan++] = ch;
  pthread_mutex_unlock(&c->mu);
  return ch;

fail:
  pthread_mutex_unlock(&c->mu);
  if (sv[1] >= 0)
    close(sv[1]);
  if (sv[0] >= 0)
    close(sv[0]);
  if (mfd >= 0)
    close(mfd);
  if (ch) {
    ch->fd = -1;
    chan_free(ch);
  }
  return NULL;
}

static void chan_put(struct agt_bctx *c, struct pchan *ch)
{
  pthread_mutex_lock(&c->mu);
  ch->next = c->free;
  c->free = ch;
  pthread_cond_signal(&c->chan_cv);
  pthread_mutex_unlock(&c->mu);
}

static void mark_dead(struct agt_bctx *c)
{
  pthread_mutex_lock(&c->mu);
  if (!c->dead)
    agt_err("worker process %d of a session is gone: the session's calls "
            "fail from now on", (int)c->pid);
  c->dead = 1;
  pthread_cond_broadcast(&c->chan_cv); /* no channel will come back */
  pthread_mutex_unlock(&c->mu);
}

/*
 * Take OUT messages on ch until the reply, which lands in *m with its
 * inline bytes in ch->buf.  OUT goes to out, else to the sink the first
 * launch left in c (before any launch there is no output).  Any reply may
 * come after some: the worker sends what the driver printed before each
 * (proc_worker.c), and the driver writes a kernel's printf at whatever
 * synchronising call comes next, another lane's copy included.  0, or -1
 * when the worker is gone.
 */
static int recv_reply(struct agt_bctx *c, struct pchan *ch, struct pmsg *m,
                      void (*out)(void *, int, const char *, size_t),
                      void *out_arg)
{
  for (;;) {
    if (proc_recv(ch->fd, m, ch->buf, NULL) < 0)
      return -1;
    if (m->op == P_REPLY)
      return 0;
    if (m->op != P_OUT)
      continue;
    if (!out) {
      pthread_mutex_lock(&c->mu);
      out = c->out;
      out_arg = c->out_arg;
      pthread_mutex_unlock(&c->mu);
    }
    if (out)
      out(out_arg, (int)m->a[0], (const char *)ch->buf, m->len);
  }
}

/*
 * One call on channel ch: send m (+ data, + a descriptor), then its reply
 * (recv_reply; OUT to l's sink when a launch).  Returns 0, or -1 when the
 * worker is gone.
 */
static int call(struct agt_bctx *c, struct pchan *ch, struct pmsg *m,
                const void *data, int pass_fd, const struct agt_launch *l)
{
  void (*out)(void *, int, const char *, size_t) = NULL;
  void *out_arg = NULL;

  if (l && l->out) {
    out = l->out;
    out_arg = l->out_arg;
    pthread_mutex_lock(&c->mu);
    c->out = out;
    c->out_arg = out_arg;
    pthread_mutex_unlock(&c->mu);
  }
  if (proc_send(ch->fd, m, data, pass_fd) == 0 &&
      recv_reply(c, ch, m, out, out_arg) == 0)
    return 0;
  mark_dead(c);
  return -1;
}

/* A call without bulk bytes: its status, or cudaErrorDevicesUnavailable. */
static uint32_t simple(struct agt_bctx *c, struct pmsg *m, const void *data)
{
  struct pchan *ch = chan_get(c);
  uint32_t st;

  if (!ch)
    return cudaErrorDevicesUnavailable;
  st = call(c, ch, m, data, -1, NULL) < 0 ? cudaErrorDevicesUnavailable
                                          : m->status;
  chan_put(c, ch);
  return st;
}

static void proc_ctx_close(struct agt_bctx *c)
{
  struct pmsg m = {.op = P_CLOSE};
  uint8_t *buf = malloc(PMSG_INLINE + 1);
  bool starting = false;

  /* The OPEN answer first, so CLOSE's is the next.  A worker still
     starting holds nothing of the session's: the opener stops waiting at
     once (its poll sees the socket shut), and the worker is killed. */
  if (c->has_opener) {
    pthread_mutex_lock(&c->mu);
    starting = c->opening;
    c->closing = true;
    pthread_mutex_unlock(&c->mu);
    if (starting)
      shutdown(c->ctl, SHUT_RDWR);
    /* The opener itself, when the session's last reference went in its
       ready() (a client gone meanwhile): it touches c no more. */
    if (pthread_equal(c->opener, pthread_self()))
      pthread_detach(c->opener);
    else
      pthread_join(c->opener, NULL);
  }
  /* The worker closes its context (freeing the device memory) and exits;
     a hung one is killed. */
  if (buf && !c->dead && !starting && proc_send(c->ctl, &m, NULL, -1) == 0)
    (void)wait_reply(c->ctl, PROC_CLOSE_MS, &m, buf);
  free(buf);
  close(c->ctl);
  reap(c->pid, starting ? 0 : PROC_CLOSE_MS);
  for (unsigned i = 0; i < c->nchan; i++)
    chan_free(c->all[i]);
  if (atomic_load(&c->arena)) /* slots still out keep it until given back */
    arena_put(atomic_load(&c->arena));
  pthread_cond_destroy(&c->open_cv);
  pthread_cond_destroy(&c->chan_cv);
  pthread_mutex_destroy(&c->mu);
  free(c);
}

static uint32_t proc_mem_alloc(struct agt_bctx *c, uint64_t size,
                               uint64_t *dptr)
{
  struct pmsg m = {.op = P_MALLOC, .a = {size}};
  uint32_t st = simple(c, &m, NULL);

  *dptr = st ? 0 : m.a[0];
  return st;
}

static uint32_t proc_mem_free(struct agt_bctx *c, uint64_t dptr)
{
  struct pmsg m = {.op = P_FREE, .a = {dptr}};

  return simple(c, &m, NULL);
}

static uint32_t proc_mem_check(struct agt_bctx *c, uint64_t dptr,
                               uint64_t len)
{
  struct pmsg m = {.op = P_CHECK, .a = {dptr, len}};

  return simple(c, &m, NULL);
}

static void *proc_mem_pin(struct agt_bctx *c, uint64_t dptr, uint64_t len,
                          void **pin)
{
  (void)c;
  (void)dptr;
  (void)len;
  *pin = NULL;
  return NULL; /* the agent stages copies instead */
}

static void proc_mem_unpin(struct agt_bctx *c, void *pin)
{
  (void)c;
  (void)pin; /* never called: nothing is pinned */
}

/*
 * Staging.  A large copy moved each byte through the agent twice: from
 * the network into a record, then into a channel's memory for the worker
 * (and the other way round from the device).  The arena is memory the
 * worker maps too (page-locked there, so the device reads and writes it
 * by DMA): the agent receives a large MEMCPY_H2D's data straight into one
 * of its slots and sends a device-to-host chunk from one (stage_get), and
 * a copy whose host side lies in the arena goes to the worker as an
 * offset in it, with no copy on the agent's side.  The session's first
 * copy of ARENA_MIN bytes or more makes it (sessions that never copy much
 * hold none); its lanes share it, and when every slot is out, copies go
 * through the channels as before.  A slot may come back after ctx_close
 * (a reply still queued when the session went), so the arena is counted:
 * one reference for the context, one for each slot handed out.
 */
#define ARENA_MIN (256u << 10)

_Static_assert(PROC_SLOTS <= 32, "slots are bits of a uint32_t");
#define SLOTS_ALL (PROC_SLOTS == 32 ? ~0u : (1u << PROC_SLOTS) - 1)

static void arena_put(struct parena *a)
{
  if (atomic_fetch_sub(&a->refs, 1) != 1)
    return;
  munmap(a->base, PROC_ARENA);
  pthread_mutex_destroy(&a->mu);
  free(a);
}

/* c's arena, or NULL while it has none. */
static struct parena *arena_of(struct agt_bctx *c)
{
  return atomic_load_explicit(&c->arena, memory_order_acquire);
}

/* Make c's arena and hand it to the worker: once, at the first copy of
   len >= ARENA_MIN bytes.  Without it copies still work. */
static void arena_start(struct agt_bctx *c, uint64_t len)
{
  struct pmsg m = {.op = P_ARENA};
  struct parena *a;
  struct pchan *ch;
  int mfd = -1;

  if (len < ARENA_MIN)
    return;
  pthread_mutex_lock(&c->mu);
  if (c->arena_tried) {
    pthread_mutex_unlock(&c->mu);
    return;
  }
  c->arena_tried = true;
  pthread_mutex_unlock(&c->mu);
  a = calloc(1, sizeof(*a));
  if (!a)
    return;
  mfd = memfd_create("tremote-worker-arena", MFD_CLOEXEC);
  if (mfd < 0 || ftruncate(mfd, PROC_ARENA) < 0)
    goto fail;
  a->base = mmap(NULL, PROC_ARENA, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
  if (a->base == MAP_FAILED) {
    a->base = NULL;
    goto fail;
  }
  ch = chan_get(c);
  if (!ch)
    goto fail;
  if (call(c, ch, &m, NULL, mfd, NULL) < 0 || m.status) {
    chan_put(c, ch);
    goto fail;
  }
  chan_put(c, ch);
  close(mfd);
  atomic_init(&a->refs, 1);
  pthread_mutex_init(&a->mu, NULL);
  for (unsigned i = 0; i < PROC_SLOTS; i++)
    a->slot[i].a = a;
  atomic_store_explicit(&c->arena, a, memory_order_release);
  return;

fail:
  if (mfd >= 0)
    close(mfd);
  if (a->base)
    munmap(a->base, PROC_ARENA);
  free(a);
}

/* The offset in c's arena of [p, p + len), or -1 when it is not all in
   it (memory of the agent's own). */
static int64_t arena_off(struct agt_bctx *c, const void *p, uint64_t len)
{
  struct parena *a = arena_of(c);
  uintptr_t at = (uintptr_t)p, base;

  if (!a)
    return -1;
  base = (uintptr_t)a->base;
  if (at < base || at - base > PROC_ARENA || len > PROC_ARENA - (at - base))
    return -1;
  return (int64_t)(at - base);
}

static void *proc_stage_get(struct agt_bctx *c, uint64_t len, void **tok)
{
  struct parena *a = arena_of(c);
  unsigned i;

  *tok = NULL;
  if (!a || len == 0 || len > PROC_SLOT)
    return NULL;
  pthread_mutex_lock(&a->mu);
  if (a->used == SLOTS_ALL) {
    pthread_mutex_unlock(&a->mu);
    return NULL;
  }
  i = (unsigned)__builtin_ctz(~a->used);
  a->used |= 1u << i;
  atomic_fetch_add(&a->refs, 1); /* before mu goes: the slot's own */
  pthread_mutex_unlock(&a->mu);
  *tok = &a->slot[i];
  return a->base + (size_t)i * PROC_SLOT;
}

static void proc_stage_put(void *tok)
{
  struct pslot *s = tok;
  struct parena *a = s->a;

  pthread_mutex_lock(&a->mu);
  a->used &= ~(1u << (unsigned)(s - a->slot));
  pthread_mutex_unlock(&a->mu);
  arena_put(a);
}

/* A copy whose host side is at offset off of the arena: no bytes move
   on the agent's side. */
static uint32_t arena_copy(struct agt_bctx *c, enum pop op, uint64_t dev,
                           uint64_t off, uint64_t len)
{
  struct pmsg m = {.op = op, .a = {dev, len, off, 1}};
  uint32_t st = simple(c, &m, NULL);

  if (st == cudaSuccess)
    atomic_fetch_add_explicit(&c->p->staged, len, memory_order_relaxed);
  return st;
}

uint64_t agt_proc_staged_bytes(struct agt_backend *b)
{
  struct proc *p = (struct proc *)b;

  return atomic_load_explicit(&p->staged, memory_order_relaxed);
}

/*
 * Copies between the agent's memory and the device go through the
 * channel's shared memory in halves of it, two pieces in flight: while
 * the worker copies one half to or from the device, the agent fills or
 * empties the other (a channel's replies come in order).  The whole range
 * is checked first when it takes more than one piece, so a bad range
 * fails before any byte moves, as the contract wants.
 */

/* Send one piece: op on [dev + off, n) through half (off / PROC_HALF) % 2. */
static int piece_send(struct pchan *ch, enum pop op, uint64_t dev,
                      uint64_t off, uint64_t n)
{
  struct pmsg m = {.op = op,
                   .a = {dev + off, n, (off / PROC_HALF) % 2 * PROC_HALF}};

  return proc_send(ch->fd, &m, NULL, -1);
}

/* The next piece's reply (after any OUT: recv_reply): its status, or -1
   when the worker is gone. */
static int piece_wait(struct agt_bctx *c, struct pchan *ch)
{
  struct pmsg m;

  if (recv_reply(c, ch, &m, NULL, NULL) < 0)
    return -1;
  return (int)m.status;
}

static uint32_t proc_copy_h2d(struct agt_bctx *c, uint64_t dst,
                              const void *src, uint64_t len)
{
  struct pchan *ch;
  uint64_t off, sent = 0, done = 0;
  int64_t aoff;
  int st = 0;

  if (len == 0)
    return cudaSuccess;
  if ((aoff = arena_off(c, src, len)) >= 0)
    return arena_copy(c, P_H2D, dst, (uint64_t)aoff, len);
  arena_start(c, len);
  if (len > PROC_HALF && (st = (int)proc_mem_check(c, dst, len)) != 0)
    return (uint32_t)st;
  ch = chan_get(c);
  if (!ch)
    return cudaErrorDevicesUnavailable;
  for (off = 0; off < len && st == 0; off += PROC_HALF) {
    uint64_t n = len - off < PROC_HALF ? len - off : PROC_HALF;

    if (sent - done == 2) { /* this half is still being read */
      st = piece_wait(c, ch);
      done++;
      if (st)
        break;
    }
    memcpy(ch->shm + (off / PROC_HALF) % 2 * PROC_HALF,
           (const uint8_t *)src + off, n);
    if (piece_send(ch, P_H2D, dst, off, n) < 0) {
      st = -1;
      break;
    }
    sent++;
  }
  while (done < sent && st >= 0) { /* the first error is the one told */
    int r = piece_wait(c, ch);

    done++;
    if (r < 0)
      st = -1;
    else if (r && !st)
      st = r;
  }
  if (st < 0)
    mark_dead(c);
  chan_put(c, ch);
  return st < 0 ? cudaErrorDevicesUnavailable : (uint32_t)st;
}

static uint32_t proc_copy_d2h(struct agt_bctx *c, void *dst, uint64_t src,
                              uint64_t len)
{
  struct pchan *ch;
  uint64_t next = 0, off = 0;
  int64_t aoff;
  int st = 0, inflight = 0;

  if (len == 0)
    return cudaSuccess;
  if ((aoff = arena_off(c, dst, len)) >= 0)
    return arena_copy(c, P_D2H, src, (uint64_t)aoff, len);
  arena_start(c, len);
  if (len > PROC_HALF && (st = (int)proc_mem_check(c, src, len)) != 0)
    return (uint32_t)st;
  ch = chan_get(c);
  if (!ch)
    return cudaErrorDevicesUnavailable;
  /* Two pieces asked for ahead; each reply's half is emptied, then the
     piece after the next goes into it. */
  for (; next < len && inflight < 2; next += PROC_HALF, inflight++)
    if (piece_send(ch, P_D2H, src, next,
                   len - next < PROC_HALF ? len - next : PROC_HALF) < 0) {
      st = -1;
      break;
    }
  while (inflight && st >= 0) {
    uint64_t n = len - off < PROC_HALF ? len - off : PROC_HALF;
    int r = piece_wait(c, ch);

    inflight--;
    if (r < 0) {
      st = -1;
      break;
    }
    if (r || st) { /* drain what is in flight, keep the first error */
      if (!st)
        st = r;
      continue;
    }
    memcpy((uint8_t *)dst + off, ch->shm + (off / PROC_HALF) % 2 * PROC_HALF,
           n);
    off += PROC_HALF;
    if (next < len) {
      if (piece_send(ch, P_D2H, src, next,
                     len - next < PROC_HALF ? len - next : PROC_HALF) < 0) {
        st = -1;
        break;
      }
      next += PROC_HALF;
      inflight++;
    }
  }
  if (st < 0)
    mark_dead(c);
  chan_put(c, ch);
  return st < 0 ? cudaErrorDevicesUnavailable : (uint32_t)st;
}

static uint32_t proc_copy_d2d(struct agt_bctx *c, uint64_t dst, uint64_t src,
                              uint64_t len)
{
  struct pmsg m = {.op = P_D2D, .a = {dst, src, len}};

  return simple(c, &m, NULL);
}

static uint32_t proc_memset_d8(struct agt_bctx *c, uint64_t dst,
                               uint8_t value, uint64_t len)
{
  struct pmsg m = {.op = P_MEMSET, .a = {dst, value, len}};

  return simple(c, &m, NULL);
}

static uint32_t proc_mem_info(struct agt_bctx *c, uint64_t *free_b,
                              uint64_t *total)
{
  struct pmsg m = {.op = P_MEMINFO};
  uint32_t st = simple(c, &m, NULL);

  *free_b = st ? 0 : m.a[0];
  *total = st ? 0 : m.a[1];
  return st;
}

/*
 * Nothing to ask the worker: every call it served had finished when it
 * answered (backend.h), a kernel's fault came back with its launch (and
 * made the session's context sticky in the agent), and a launch's device
 * output came before its answer (the cuda backend's launches end in the
 * cuStreamSynchronize where the driver writes printf; the emulated device
 * sends it while the kernel runs).  Asking anyway cost every synchronise
 * a round trip to the worker: a launch and the synchronise after it took
 * two.  Only the worker's death is looked for (a hang-up on its control
 * socket), as a call would find it.
 */
static uint32_t proc_synchronize(struct agt_bctx *c)
{
  struct pollfd p = {.fd = c->ctl, .events = 0};
  bool dead;

  pthread_mutex_lock(&c->mu);
  open_wait(c);
  dead = c->dead;
  pthread_mutex_unlock(&c->mu);
  if (!dead && poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR))) {
    mark_dead(c);
    dead = true;
  }
  return dead ? cudaErrorDevicesUnavailable : cudaSuccess;
}

static uint32_t proc_module_load(struct agt_bctx *c, const uint8_t *image,
                                 size_t len, void **mod, char *why)
{
  struct pmsg m = {.op = P_MODLOAD, .a = {len}};
  struct pchan *ch;
  uint32_t st;
  int mfd;

  why[0] = 0;
  mfd = memfd_create("tremote-module", MFD_CLOEXEC);
  if (mfd < 0)
    return cudaErrorMemoryAllocation;
  for (size_t off = 0; off < len;) {
    ssize_t n = write(mfd, image + off, len - off);

    if (n <= 0) {
      close(mfd);
      return cudaErrorMemoryAllocation;
    }
    off += (size_t)n;
  }
  ch = chan_get(c);
  if (!ch) {
    close(mfd);
    return cudaErrorDevicesUnavailable;
  }
  st = call(c, ch, &m, NULL, mfd, NULL) < 0 ? cudaErrorDevicesUnavailable
                                            : m.status;
  close(mfd);
  if (st == 0)
    *mod = (void *)(uintptr_t)m.a[0];
  else
    snprintf(why, AGT_WHY_MAX, "%s", (char *)ch->buf);
  chan_put(c, ch);
  return st;
}

static void proc_module_unload(struct agt_bctx *c, void *mod)
{
  struct pmsg m = {.op = P_MODUNLOAD, .a = {(uint64_t)(uintptr_t)mod}};

  (void)simple(c, &m, NULL);
}

static uint32_t proc_function_get(struct agt_bctx *c, void *mod,
                                  const char *name, void **fn)
{
  struct pmsg m = {.op = P_FUNC, .a = {(uint64_t)(uintptr_t)mod}};
  size_t n = strlen(name);
  uint32_t st;

  if (n >= PMSG_INLINE)
    return cudaErrorInvalidDeviceFunction;
  m.len = (uint32_t)n;
  st = simple(c, &m, name);
  if (!st)
    *fn = (void *)(uintptr_t)m.a[0];
  return st;
}

static uint32_t proc_symbol_get(struct agt_bctx *c, void *mod,
                                const char *name, uint64_t *addr,
                                uint64_t *size)
{
  struct pmsg m = {.op = P_SYM, .a = {(uint64_t)(uintptr_t)mod}};
  size_t n = strlen(name);
  uint32_t st;

  if (n >= PMSG_INLINE)
    return cudaErrorInvalidSymbol;
  m.len = (uint32_t)n;
  st = simple(c, &m, name);
  if (!st) {
    *addr = m.a[0];
    *size = m.a[1];
  }
  return st;
}

static uint32_t proc_function_attrs(struct agt_bctx *c, void *fn,
                                    struct agt_fattrs *a)
{
  struct pmsg m = {.op = P_FATTRS, .a = {(uint64_t)(uintptr_t)fn}};
  struct pchan *ch = chan_get(c);
  uint32_t st;

  if (!ch)
    return cudaErrorDevicesUnavailable;
  st = call(c, ch, &m, NULL, -1, NULL) < 0 ? cudaErrorDevicesUnavailable
                                           : m.status;
  if (!st && m.len == sizeof(*a))
    memcpy(a, ch->buf, sizeof(*a));
  else if (!st)
    st = cudaErrorUnknown;
  chan_put(c, ch);
  return st;
}

/*
 * As many launches as fit in one message each time (a message holds more
 * than a thousand small ones), the worker running each message's through
 * its backend's launch_many: one round trip instead of one per launch.
 */
static void proc_launch_many(struct agt_bctx *c, void *const *fns,
                             const struct agt_launch *ls, unsigned n,
                             uint32_t *st)
{
  struct pchan *ch = chan_get(c);
  unsigned i = 0;

  while (ch && i < n) {
    struct pmsg m = {.op = P_LAUNCHN};
    unsigned first = i;
    uint32_t off = 0;

    for (; i < n; i++) {
      uint32_t need = (uint32_t)sizeof(struct plaunch) +
                      ((ls[i].params_size + 7u) & ~7u);
      struct plaunch pl = {
        .fn = (uint64_t)(uintptr_t)fns[i],
        .stream = ls[i].stream,
        .grid = {ls[i].grid[0], ls[i].grid[1], ls[i].grid[2]},
        .block = {ls[i].block[0], ls[i].block[1], ls[i].block[2]},
        .shmem = ls[i].shmem,
        .stack_size = ls[i].stack_size,
        .params_size = ls[i].params_size,
        .priority = ls[i].priority,
        .cooperative = ls[i].cooperative,
        .cluster = {ls[i].cluster[0], ls[i].cluster[1], ls[i].cluster[2]},
      };

      if (ls[i].params_size > PMSG_INLINE - sizeof(pl)) {
        st[i] = cudaErrorInvalidValue; /* never: CUDA allows 32 KiB */
        if (i == first) {
          first++;
          continue;
        }
        break; /* told in order, after the ones before it */
      }
      if (need > PMSG_INLINE - off)
        break;
      /* The channel's buffer is free until the reply comes into it. */
      memcpy(ch->buf + off, &pl, sizeof(pl));
      memcpy(ch->buf + off + sizeof(pl), ls[i].params, ls[i].params_size);
      memset(ch->buf + off + sizeof(pl) + ls[i].params_size, 0,
             need - sizeof(pl) - ls[i].params_size);
      off += need;
    }
    if (i == first)
      continue;
    m.a[0] = i - first;
    m.len = off;
    if (call(c, ch, &m, ch->buf, -1, &ls[first]) < 0) {
      i = first;
      break;
    }
    if (m.len == (i - first) * sizeof(uint32_t))
      memcpy(&st[first], ch->buf, m.len);
    else /* refused whole (it never is) */
      for (unsigned k = first; k < i; k++)
        st[k] = m.status ? m.status : cudaErrorUnknown;
  }
  for (; i < n; i++)
    st[i] = cudaErrorDevicesUnavailable;
  if (ch)
    chan_put(c, ch);
}

/* One launch is a batch of one: the same message. */
static uint32_t proc_launch(struct agt_bctx *c, void *fn,
                            const struct agt_launch *l)
{
  uint32_t st;

  proc_launch_many(c, &fn, l, 1, &st);
  return st;
}

static void proc_devinfo(struct agt_backend *b, struct tr_devinfo *d)
{
  struct proc *p = (struct proc *)b;

  p->inner->ops->devinfo(p->inner, d);
}

static void proc_dev_mem_info(struct agt_backend *b, uint64_t *free_b,
                              uint64_t *total)
{
  struct proc *p = (struct proc *)b;

  if (p->inner->ops->dev_mem_info)
    p->inner->ops->dev_mem_info(p->inner, free_b, total);
}

static void proc_destroy(struct agt_backend *b)
{
  struct proc *p = (struct proc *)b;

  if (p->spare_pid) {
    close(p->spare_ctl);
    reap(p->spare_pid, PROC_CLOSE_MS);
  }
  p->inner->ops->destroy(p->inner);
  pthread_mutex_destroy(&p->mu);
  free(p);
}

static const struct agt_backend_ops proc_ops = {
  .destroy = proc_destroy,
  .devinfo = proc_devinfo,
  .ctx_open = proc_ctx_open,
  .ctx_close = proc_ctx_close,
  .ctx_when_ready = proc_ctx_when_ready,
  .mem_alloc = proc_mem_alloc,
  .mem_free = proc_mem_free,
  .mem_check = proc_mem_check,
  .mem_pin = proc_mem_pin,
  .mem_unpin = proc_mem_unpin,
  .stage_get = proc_stage_get,
  .stage_put = proc_stage_put,
  .copy_h2d = proc_copy_h2d,
  .copy_d2h = proc_copy_d2h,
  .copy_d2d = proc_copy_d2d,
  .memset_d8 = proc_memset_d8,
  .mem_info = proc_mem_info,
  .dev_mem_info = proc_dev_mem_info,
  .synchronize = proc_synchronize,
  .module_load = proc_module_load,
  .module_unload = proc_module_unload,
  .function_get = proc_function_get,
  .symbol_get = proc_symbol_get,
  .function_attrs = proc_function_attrs,
  .launch = proc_launch,
  .launch_many = proc_launch_many,
};

int agt_proc_new(struct agt_backend *inner, const struct agt_emu_config *emu,
                 struct agt_backend **out)
{
  struct proc *p = calloc(1, sizeof(*p));

  if (!p)
    return -ENOMEM;
  p->ops = proc_ops;
  p->ops.name = inner->ops->name; /* what the sessions run on */
  p->b.ops = &p->ops;
  p->inner = inner;
  snprintf(p->init.kind, sizeof(p->init.kind), "%s", inner->ops->name);
  p->init.log_level = tr_log_level;
  if (emu) {
    snprintf(p->init.emu_name, sizeof(p->init.emu_name), "%s",
             emu->name ? emu->name : "");
    p->init.emu_mem = emu->mem;
    p->init.emu_watchdog_ms = emu->watchdog_ms;
    p->init.emu_sm_count = emu->sm_count;
    p->init.emu_workers = emu->workers;
    p->init.emu_cc = emu->cc;
  }
  pthread_mutex_init(&p->mu, NULL);
  p->spare_ctl = -1;
  if (spawn_worker(p, &p->spare_pid, &p->spare_ctl) < 0) {
    p->spare_pid = 0;
    p->spare_ctl = -1;
  }
  *out = &p->b;
  return 0;
}
