/*
 * proc_worker.c: a session's worker process (tremote-gpu-agent
 * --worker-fd 3): it opens the inner backend and one context on it, and
 * serves the calls the agent forwards (proc.c has the design, proc_int.h
 * the messages).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <driver_types.h>

#include "agent.h"
#include "backend.h"
#include "proc_int.h"

struct wmod {
  void *mod;
  void *map;
  size_t len;
};

struct worker {
  struct agt_backend *be;
  struct agt_bctx *ctx;
  int out_r; /* the read end of our stdout (the driver's printf) */
  /* Channel memory page-locked for the device (host_register): the
     control thread's alone, undone before the context closes. */
  void *locked[64];
  unsigned nlocked;
  /* The staging arena, once the agent sent it (P_ARENA, on a channel:
     any channel's thread may read these after that call's answer). */
  pthread_mutex_t arena_mu;
  _Atomic(uint8_t *) arena;
  bool arena_locked;
  pthread_mutex_t out_mu; /* one reader of out_r at a time: lines in order */
};

struct wchan {
  struct worker *w;
  int fd;
  uint8_t *shm;
  uint8_t *buf;
  pthread_mutex_t send_mu; /* OUT messages come from any thread */
  bool control; /* the control socket: its replies (OPEN, CLOSE) are
                   waited for one message each, with no OUT before */
};

static void drain_stdout(struct wchan *ch);

/* The answer to a call, after whatever the driver printed meanwhile: the
   driver writes a kernel's printf at its next synchronising call (a
   stream or context synchronise, a copy), not when the kernel ends, so
   any call may bring some, and it must reach the program before the
   answer that lets the program go on. */
static void reply(struct wchan *ch, uint32_t st, const uint64_t *a,
                  unsigned na, const void *data, size_t len)
{
  struct pmsg m = {.op = P_REPLY, .status = st, .len = (uint32_t)len};

  if (!ch->control)
    drain_stdout(ch);
  for (unsigned i = 0; i < na; i++)
    m.a[i] = a[i];
  pthread_mutex_lock(&ch->send_mu);
  (void)proc_send(ch->fd, &m, data, -1);
  pthread_mutex_unlock(&ch->send_mu);
}

static void send_out(void *arg, int fd, const char *s, size_t n)
{
  struct wchan *ch = arg;

  while (n) {
    size_t k = n < PMSG_INLINE ? n : PMSG_INLINE;
    struct pmsg m = {.op = P_OUT, .a = {(uint64_t)fd}, .len = (uint32_t)k};

    pthread_mutex_lock(&ch->send_mu);
    (void)proc_send(ch->fd, &m, s, -1);
    pthread_mutex_unlock(&ch->send_mu);
    s += k;
    n -= k;
  }
}

/* What the driver printed since the last look (cuda printf), as OUT. */
static void drain_stdout(struct wchan *ch)
{
  char b[4096];
  ssize_t n;

  if (ch->w->out_r < 0)
    return;
  pthread_mutex_lock(&ch->w->out_mu);
  /* Every stream, not only stdout, in case the driver writes through a
     FILE of its own on fd 1: on an H200 (driver 580) a kernel's last
     lines came out only at exit, when the pipe was no longer read.  (The
     main cause was that the driver writes printf at a synchronise, not
     at a stream query: see cu_synchronize.) */
  fflush(NULL);
  while ((n = read(ch->w->out_r, b, sizeof(b))) > 0)
    send_out(ch, 1, b, (size_t)n);
  pthread_mutex_unlock(&ch->w->out_mu);
}

/*
 * P_LAUNCHN: the launches in ch->buf (m->len bytes, m->a[0] of them), run
 * through the backend's launch_many, or one by one where it has none (the
 * emulated device runs each to its end anyway), stopping at a sticky
 * error as launch_many does.  One status each in the reply.
 */
static void launch_many(struct wchan *ch, const struct pmsg *m)
{
  const struct agt_backend_ops *o = ch->w->be->ops;
  uint32_t n = (uint32_t)m->a[0], off = 0, fatal = 0;
  uint32_t bad = cudaErrorInvalidValue;
  struct agt_launch *ls = NULL;
  void **fns = NULL;
  uint32_t *st = NULL;

  if (n == 0 || n > PMSG_INLINE / sizeof(struct plaunch))
    goto refuse;
  ls = calloc(n, sizeof(*ls));
  fns = calloc(n, sizeof(*fns));
  st = calloc(n, sizeof(*st));
  if (!ls || !fns || !st) {
    bad = cudaErrorMemoryAllocation;
    goto refuse;
  }
  for (uint32_t i = 0; i < n; i++) {
    struct plaunch pl;

    if (m->len - off < sizeof(pl))
      goto refuse;
    memcpy(&pl, ch->buf + off, sizeof(pl));
    off += sizeof(pl);
    if (pl.params_size > m->len - off ||
        ((pl.params_size + 7u) & ~7u) > m->len - off)
      goto refuse;
    fns[i] = (void *)(uintptr_t)pl.fn;
    ls[i] = (struct agt_launch){
      .grid = {pl.grid[0], pl.grid[1], pl.grid[2]},
      .block = {pl.block[0], pl.block[1], pl.block[2]},
      .shmem = pl.shmem,
      .stream = pl.stream,
      .stack_size = pl.stack_size,
      .priority = tr_priority_clamp(pl.priority),
      .cooperative = pl.cooperative != 0,
      .cluster = {pl.cluster[0], pl.cluster[1], pl.cluster[2]},
      .params = ch->buf + off,
      .params_size = pl.params_size,
      .out = send_out,
      .out_arg = ch,
    };
    off += (pl.params_size + 7u) & ~7u;
  }
  if (off != m->len)
    goto refuse;
  if (o->launch_many) {
    o->launch_many(ch->w->ctx, fns, ls, n, st);
  } else {
    for (uint32_t i = 0; i < n; i++) {
      st[i] = fatal ? fatal : o->launch(ch->w->ctx, fns[i], &ls[i]);
      if (!fatal && agt_status_sticky(st[i]))
        fatal = st[i];
    }
  }
  reply(ch, cudaSuccess, NULL, 0, st, n * sizeof(*st));
  goto out;
refuse:
  reply(ch, bad, NULL, 0, NULL, 0);
out:
  free(ls);
  free(fns);
  free(st);
}

static uint32_t arena_map(struct worker *w, int fd);

static void serve_call(struct wchan *ch, struct pmsg *m, int fd)
{
  const struct agt_backend_ops *o = ch->w->be->ops;
  struct agt_bctx *c = ch->w->ctx;
  uint64_t a[2] = {0, 0};
  uint32_t st;

  switch (m->op) {
  case P_MALLOC:
    st = o->mem_alloc(c, m->a[0], &a[0]);
    reply(ch, st, a, 1, NULL, 0);
    break;
  case P_FREE:
    reply(ch, o->mem_free(c, m->a[0]), NULL, 0, NULL, 0);
    break;
  case P_CHECK:
    reply(ch, o->mem_check(c, m->a[0], m->a[1]), NULL, 0, NULL, 0);
    break;
  case P_H2D: /* a[] = device address, length, offset, 1 if in the arena */
  case P_D2H: {
    uint8_t *base = ch->shm;
    uint64_t size = PROC_SHM;

    if (m->a[3]) {
      base = atomic_load_explicit(&ch->w->arena, memory_order_acquire);
      size = PROC_ARENA;
    }
    if (!base || m->a[2] > size || m->a[1] > size - m->a[2])
      st = cudaErrorInvalidValue;
    else if (m->op == P_H2D)
      st = o->copy_h2d(c, m->a[0], base + m->a[2], m->a[1]);
    else
      st = o->copy_d2h(c, base + m->a[2], m->a[0], m->a[1]);
    reply(ch, st, NULL, 0, NULL, 0);
    break;
  }
  case P_ARENA:
    reply(ch, arena_map(ch->w, fd), NULL, 0, NULL, 0);
    break;
  case P_D2D:
    reply(ch, o->copy_d2d(c, m->a[0], m->a[1], m->a[2]), NULL, 0, NULL, 0);
    break;
  case P_MEMSET:
    reply(ch, o->memset_d8(c, m->a[0], (uint8_t)m->a[1], m->a[2]), NULL, 0,
          NULL, 0);
    break;
  case P_MEMINFO:
    st = o->mem_info(c, &a[0], &a[1]);
    reply(ch, st, a, 2, NULL, 0);
    break;
  case P_MODLOAD: {
    struct wmod *wm = calloc(1, sizeof(*wm));
    char why[AGT_WHY_MAX] = "";

    st = cudaErrorMemoryAllocation;
    if (wm && fd >= 0 && m->a[0]) {
      wm->len = m->a[0];
      wm->map = mmap(NULL, wm->len, PROT_READ, MAP_PRIVATE, fd, 0);
      if (wm->map == MAP_FAILED)
        wm->map = NULL;
      else
        st = o->module_load(c, wm->map, wm->len, &wm->mod, why);
    }
    if (st) {
      if (wm && wm->map)
        munmap(wm->map, wm->len);
      free(wm);
      reply(ch, st, NULL, 0, why, strlen(why));
    } else {
      a[0] = (uint64_t)(uintptr_t)wm;
      reply(ch, 0, a, 1, NULL, 0);
    }
    break;
  }
  case P_MODUNLOAD: {
    struct wmod *wm = (struct wmod *)(uintptr_t)m->a[0];

    o->module_unload(c, wm->mod);
    munmap(wm->map, wm->len);
    free(wm);
    reply(ch, 0, NULL, 0, NULL, 0);
    break;
  }
  case P_FUNC: {
    struct wmod *wm = (struct wmod *)(uintptr_t)m->a[0];
    void *fn = NULL;

    st = o->function_get(c, wm->mod, (const char *)ch->buf, &fn);
    a[0] = (uint64_t)(uintptr_t)fn;
    reply(ch, st, a, 1, NULL, 0);
    break;
  }
  case P_SYM: {
    struct wmod *wm = (struct wmod *)(uintptr_t)m->a[0];

    st = o->symbol_get(c, wm->mod, (const char *)ch->buf, &a[0], &a[1]);
    reply(ch, st, a, 2, NULL, 0);
    break;
  }
  case P_FATTRS: {
    struct agt_fattrs fa;

    memset(&fa, 0, sizeof(fa));
    st = o->function_attrs(c, (void *)(uintptr_t)m->a[0], &fa);
    reply(ch, st, NULL, 0, &fa, st ? 0 : sizeof(fa));
    break;
  }
  case P_LAUNCHN:
    launch_many(ch, m);
    break;
  default:
    reply(ch, cudaErrorNotSupported, NULL, 0, NULL, 0);
  }
}

/* P_ARENA: map the agent's staging memory, page-locked for the device
   where the backend can (as channel memory is).  Once per session. */
static uint32_t arena_map(struct worker *w, int fd)
{
  uint8_t *p;
  uint32_t st = cudaErrorInvalidValue;

  if (fd < 0)
    return st;
  pthread_mutex_lock(&w->arena_mu);
  if (!atomic_load_explicit(&w->arena, memory_order_relaxed)) {
    p = mmap(NULL, PROC_ARENA, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    st = cudaErrorMemoryAllocation;
    if (p != MAP_FAILED) {
      w->arena_locked = w->be->ops->host_register &&
                        w->be->ops->host_register(w->ctx, p, PROC_ARENA) == 0;
      atomic_store_explicit(&w->arena, p, memory_order_release);
      st = cudaSuccess;
    }
  }
  pthread_mutex_unlock(&w->arena_mu);
  return st;
}

static void *serve_channel(void *arg)
{
  struct wchan *ch = arg;
  struct pmsg m;
  int fds[2];

  while (proc_recv(ch->fd, &m, ch->buf, fds) == 0) {
    serve_call(ch, &m, fds[0]);
    if (fds[0] >= 0)
      close(fds[0]);
    if (fds[1] >= 0)
      close(fds[1]);
  }
  return NULL; /* the agent closed it: the session is ending */
}

static int open_inner(const struct pinit *in, struct agt_backend **be,
                      const char **why)
{
  struct agt_emu_config ec = {
    .name = in->emu_name,
    .mem = in->emu_mem,
    .sm_count = in->emu_sm_count,
    .workers = in->emu_workers,
    .cc = in->emu_cc,
    .watchdog_ms = in->emu_watchdog_ms,
  };

  if (strcmp(in->kind, "cuda") == 0) {
    int rc = agt_cuda_new(0, be, why);

    if (rc == 0)
      agt_cuda_one_session(*be);
    return rc;
  }
  if (agt_emu_new(&ec, be) < 0) {
    *why = "out of memory";
    return -ENOMEM;
  }
  return 0;
}

int agt_proc_worker_main(int ctl)
{
  struct worker w = {.out_r = -1, .out_mu = PTHREAD_MUTEX_INITIALIZER,
                     .arena_mu = PTHREAD_MUTEX_INITIALIZER};
  struct pmsg m;
  uint8_t *buf = malloc(PMSG_INLINE + 1);
  struct pinit in;
  const char *why = NULL;
  int fds[2];
  struct wchan cc = {.w = &w, .fd = ctl, .control = true};

  if (!buf)
    return 1;
  /* Nothing this process starts may keep the socket open: its hang-up is
     how the agent learns of this process's end (proc_synchronize). */
  (void)fcntl(ctl, F_SETFD, FD_CLOEXEC);
  cc.buf = buf;
  pthread_mutex_init(&cc.send_mu, NULL);
  /* An agent that died before PR_SET_PDEATHSIG took closed its end: the
     first read sees it.  (Not getppid() == 1: the agent may itself be
     PID 1, as the command of a container.) */
  if (proc_recv(ctl, &m, buf, NULL) < 0 || m.op != P_INIT ||
      m.len != sizeof(in))
    return 1;
  memcpy(&in, buf, sizeof(in));
  tr_log_level = in.log_level; /* as the agent was told */
  in.kind[sizeof(in.kind) - 1] = 0;
  in.emu_name[sizeof(in.emu_name) - 1] = 0;
  if (strcmp(in.kind, "cuda") == 0) {
    /* The driver prints a kernel's printf to our stdout: a pipe we read
       before each reply, so it reaches the session's program. */
    int p[2];

    if (pipe2(p, O_CLOEXEC) == 0) {
      /* Room for the driver's whole printf buffer (1 MiB by default)
         between two looks; never a blocked driver. */
      fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
      fcntl(p[0], F_SETFL, O_NONBLOCK);
      fcntl(p[1], F_SETFL, O_NONBLOCK);
      dup2(p[1], 1);
      close(p[1]);
      w.out_r = p[0];
    }
  }
  if (open_inner(&in, &w.be, &why) < 0) {
    /* Answer the OPEN that comes with the reason. */
    if (!why)
      why = "cannot open the backend";
    if (proc_recv(ctl, &m, buf, NULL) == 0)
      reply(&cc, EIO, NULL, 0, why, strlen(why));
    return 1;
  }
  if (proc_recv(ctl, &m, buf, NULL) < 0 || m.op != P_OPEN)
    return 1;
  {
    int rc = w.be->ops->ctx_open(w.be, m.a[0], m.a[1], &w.ctx, &why);

    if (rc < 0) {
      reply(&cc, (uint32_t)-rc, NULL, 0, why, strlen(why));
      w.be->ops->destroy(w.be);
      return 1;
    }
  }
  reply(&cc, 0, NULL, 0, NULL, 0);

  while (proc_recv(ctl, &m, buf, fds) == 0) {
    if (m.op == P_CHANNEL && fds[0] >= 0 && fds[1] >= 0) {
      struct wchan *ch = calloc(1, sizeof(*ch));
      pthread_t t;

      if (!ch)
        return 1;
      ch->w = &w;
      ch->fd = fds[0];
      ch->buf = malloc(PMSG_INLINE + 1);
      ch->shm = mmap(NULL, PROC_SHM, PROT_READ | PROT_WRITE, MAP_SHARED,
                     fds[1], 0);
      close(fds[1]);
      pthread_mutex_init(&ch->send_mu, NULL);
      if (!ch->buf || ch->shm == MAP_FAILED)
        return 1; /* the agent sees us gone */
      /* Copies through this memory then go by DMA, not through the
         driver's staging buffers (a CPU copy of every byte). */
      if (w.be->ops->host_register &&
          w.nlocked < sizeof(w.locked) / sizeof(w.locked[0]) &&
          w.be->ops->host_register(w.ctx, ch->shm, PROC_SHM) == 0)
        w.locked[w.nlocked++] = ch->shm;
      if (pthread_create(&t, NULL, serve_channel, ch) != 0)
        return 1;
      pthread_detach(t);
      continue;
    }
    if (fds[0] >= 0)
      close(fds[0]);
    if (fds[1] >= 0)
      close(fds[1]);
    if (m.op == P_CLOSE)
      break;
  }
  /* CLOSE, or the agent is gone: no call of the session runs any more
     (the agent closes only idle sessions). */
  for (unsigned i = 0; i < w.nlocked; i++)
    w.be->ops->host_unregister(w.ctx, w.locked[i]);
  pthread_mutex_lock(&w.arena_mu); /* what a channel's thread set */
  if (w.arena_locked)
    w.be->ops->host_unregister(w.ctx, atomic_load(&w.arena));
  pthread_mutex_unlock(&w.arena_mu);
  w.be->ops->ctx_close(w.ctx);
  w.be->ops->destroy(w.be);
  if (m.op == P_CLOSE)
    reply(&cc, 0, NULL, 0, NULL, 0);
  return 0;
}
