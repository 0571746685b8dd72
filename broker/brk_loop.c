/*
 * brk_loop.c: see brk_loop.h.
 *
 * Why operations own their buffers: with a completion API the kernel writes
 * into a buffer some time after the request was made, so the buffer must
 * outlive every object that could be torn down in between (a client that
 * hung up, a lane that was closed).  Putting it inside the operation, which
 * only the loop frees and only after the completion, makes that true by
 * construction, and makes cancellation a one-sided affair for the caller.
 *
 * Every operation is single-shot: a reader re-submits in its callback.
 * This costs one allocation per completion, which is noise next to the
 * system calls it stands for, and keeps the lifetime rules trivial.
 */
#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "brk_loop.h"

struct brk_op {
  struct brk_loop *loop;
  struct brk_op *next, *prev; /* the loop's list of live operations */
  brk_op_fn cb;               /* NULL once cancelled */
  void *arg;
  int running;   /* its completion is being dispatched */
  int cancelled; /* a cancel request was submitted */
  int is_timeout;
  struct msghdr msg;
  struct iovec iov;
  struct __kernel_timespec ts;
  struct sockaddr_storage addr; /* accept: peer address (unused) */
  socklen_t addrlen;
  size_t bufsize;
  _Alignas(16) unsigned char data[]; /* control area, then the buffer */
};

struct brk_loop {
  struct io_uring ring;
  struct brk_op *ops; /* live operations */
  unsigned nops;
  struct brk_task *thead, *ttail; /* deferred tasks, FIFO */
  unsigned ntasks;
  int stop;
};

uint64_t brk_now_ns(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t brk_now_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int brk_loop_new(struct brk_loop **out, unsigned entries)
{
  struct brk_loop *l = calloc(1, sizeof(*l));
  int rc;

  if (!l)
    return -ENOMEM;
  rc = io_uring_queue_init(entries, &l->ring, 0);
  if (rc < 0) {
    free(l);
    return rc;
  }
  *out = l;
  return 0;
}

int brk_loop_probe(const char **missing)
{
  static const struct {
    int op;
    const char *name;
  } need[] = {
      {IORING_OP_POLL_ADD, "POLL_ADD"}, {IORING_OP_READ, "READ"},
      {IORING_OP_WRITE, "WRITE"},       {IORING_OP_RECVMSG, "RECVMSG"},
      {IORING_OP_ACCEPT, "ACCEPT"},     {IORING_OP_TIMEOUT, "TIMEOUT"},
      {IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL"},
  };
  struct io_uring ring;
  struct io_uring_probe *p;
  int rc = io_uring_queue_init(4, &ring, 0);

  if (rc < 0)
    return rc;
  p = io_uring_get_probe_ring(&ring);
  if (!p) { /* no IORING_REGISTER_PROBE: before Linux 5.6, too old */
    *missing = "READ";
    rc = -EOPNOTSUPP;
  }
  for (size_t i = 0; p && i < sizeof(need) / sizeof(need[0]); i++)
    if (!io_uring_opcode_supported(p, need[i].op)) {
      *missing = need[i].name;
      rc = -EOPNOTSUPP;
      break;
    }
  if (p)
    io_uring_free_probe(p);
  io_uring_queue_exit(&ring);
  return rc;
}

void brk_loop_free(struct brk_loop *l)
{
  struct brk_op *op, *next;

  if (!l)
    return;
  io_uring_queue_exit(&l->ring);
  for (op = l->ops; op; op = next) {
    next = op->next;
    free(op);
  }
  free(l);
}

void brk_loop_stop(struct brk_loop *l)
{
  l->stop = 1;
}

unsigned brk_loop_pending(const struct brk_loop *l)
{
  return l->nops;
}

/* ---- operations ------------------------------------------------------ */

static struct brk_op *op_new(struct brk_loop *l, size_t extra, brk_op_fn cb,
                             void *arg)
{
  struct brk_op *op = malloc(sizeof(*op) + extra);

  if (!op) {
    errno = ENOMEM;
    return NULL;
  }
  memset(op, 0, sizeof(*op));
  op->loop = l;
  op->cb = cb;
  op->arg = arg;
  op->next = l->ops;
  if (l->ops)
    l->ops->prev = op;
  l->ops = op;
  l->nops++;
  return op;
}

static void op_free(struct brk_op *op)
{
  struct brk_loop *l = op->loop;

  if (op->prev)
    op->prev->next = op->next;
  else
    l->ops = op->next;
  if (op->next)
    op->next->prev = op->prev;
  l->nops--;
  free(op);
}

/* A submission slot; flushes the queue to the kernel once if it is full. */
static struct io_uring_sqe *get_sqe(struct brk_loop *l)
{
  struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);

  if (!sqe) {
    io_uring_submit(&l->ring);
    sqe = io_uring_get_sqe(&l->ring);
  }
  if (!sqe)
    errno = EBUSY;
  return sqe;
}

/* Common tail of every submit function: attach op or undo it. */
static struct brk_op *op_submit(struct brk_op *op, struct io_uring_sqe *sqe)
{
  if (!sqe) {
    op_free(op);
    errno = EBUSY;
    return NULL;
  }
  io_uring_sqe_set_data(sqe, op);
  return op;
}

struct brk_op *brk_loop_accept(struct brk_loop *l, int fd, brk_op_fn cb,
                               void *arg)
{
  struct brk_op *op = op_new(l, 0, cb, arg);
  struct io_uring_sqe *sqe;

  if (!op)
    return NULL;
  sqe = get_sqe(l);
  if (sqe) {
    op->addrlen = sizeof(op->addr);
    io_uring_prep_accept(sqe, fd, (struct sockaddr *)&op->addr, &op->addrlen,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
  }
  return op_submit(op, sqe);
}

/* Control area rounded so the data buffer stays aligned. */
static size_t ctl_room(size_t ctlsize)
{
  return (ctlsize + 15) & ~(size_t)15;
}

struct brk_op *brk_loop_recvmsg(struct brk_loop *l, int fd, size_t bufsize,
                                size_t ctlsize, int flags, brk_op_fn cb,
                                void *arg)
{
  size_t cr = ctl_room(ctlsize);
  struct brk_op *op = op_new(l, cr + bufsize, cb, arg);
  struct io_uring_sqe *sqe;

  if (!op)
    return NULL;
  op->bufsize = bufsize;
  op->iov.iov_base = op->data + cr;
  op->iov.iov_len = bufsize;
  op->msg.msg_iov = &op->iov;
  op->msg.msg_iovlen = 1;
  op->msg.msg_control = ctlsize ? op->data : NULL;
  op->msg.msg_controllen = ctlsize;
  sqe = get_sqe(l);
  if (sqe)
    io_uring_prep_recvmsg(sqe, fd, &op->msg, (unsigned)flags);
  return op_submit(op, sqe);
}

struct brk_op *brk_loop_read(struct brk_loop *l, int fd, size_t len,
                             brk_op_fn cb, void *arg)
{
  struct brk_op *op = op_new(l, len, cb, arg);
  struct io_uring_sqe *sqe;

  if (!op)
    return NULL;
  op->bufsize = len;
  op->iov.iov_base = op->data;
  op->iov.iov_len = len;
  sqe = get_sqe(l);
  if (sqe)
    io_uring_prep_read(sqe, fd, op->data, (unsigned)len, (uint64_t)-1);
  return op_submit(op, sqe);
}

struct brk_op *brk_loop_write(struct brk_loop *l, int fd, const void *data,
                              size_t len, brk_op_fn cb, void *arg)
{
  struct brk_op *op = op_new(l, len, cb, arg);
  struct io_uring_sqe *sqe;

  if (!op)
    return NULL;
  memcpy(op->data, data, len);
  op->bufsize = len;
  op->iov.iov_base = op->data;
  op->iov.iov_len = len;
  sqe = get_sqe(l);
  if (sqe)
    io_uring_prep_write(sqe, fd, op->data, (unsigned)len, (uint64_t)-1);
  return op_submit(op, sqe);
}

struct brk_op *brk_loop_poll(struct brk_loop *l, int fd, unsigned events,
                             brk_op_fn cb, void *arg)
{
  struct brk_op *op = op_new(l, 0, cb, arg);
  struct io_uring_sqe *sqe;

  if (!op)
    return NULL;
  sqe = get_sqe(l);
  if (sqe)
    io_uring_prep_poll_add(sqe, fd, events);
  return op_submit(op, sqe);
}

struct brk_op *brk_loop_timeout(struct brk_loop *l, uint64_t ms, brk_op_fn cb,
                                void *arg)
{
  struct brk_op *op = op_new(l, 0, cb, arg);
  struct io_uring_sqe *sqe;

  if (!op)
    return NULL;
  op->is_timeout = 1;
  op->ts.tv_sec = (long long)(ms / 1000);
  op->ts.tv_nsec = (long long)(ms % 1000) * 1000000;
  sqe = get_sqe(l);
  if (sqe)
    io_uring_prep_timeout(sqe, &op->ts, 0, 0);
  return op_submit(op, sqe);
}

void brk_op_cancel(struct brk_op *op)
{
  struct io_uring_sqe *sqe;

  if (!op || op->running || op->cancelled)
    return;
  op->cb = NULL;
  op->cancelled = 1;
  sqe = get_sqe(op->loop);
  if (!sqe)
    return; /* it still completes some day; its callback is gone */
  /* Cancels both plain requests and timeouts on the kernels we run on. */
  io_uring_prep_cancel(sqe, op, 0);
  io_uring_sqe_set_data(sqe, NULL);
}

void *brk_op_buf(struct brk_op *op)
{
  return op->iov.iov_base;
}

struct msghdr *brk_op_msg(struct brk_op *op)
{
  return &op->msg;
}

/* ---- tasks ------------------------------------------------------------ */

void brk_task_init(struct brk_task *t, void (*fn)(struct brk_task *, void *),
                   void *arg)
{
  memset(t, 0, sizeof(*t));
  t->fn = fn;
  t->arg = arg;
}

void brk_loop_defer(struct brk_loop *l, struct brk_task *t)
{
  if (t->queued)
    return;
  t->queued = 1;
  t->next = NULL;
  t->prev = l->ttail;
  if (l->ttail)
    l->ttail->next = t;
  else
    l->thead = t;
  l->ttail = t;
  l->ntasks++;
}

void brk_task_cancel(struct brk_loop *l, struct brk_task *t)
{
  if (!t->queued)
    return;
  if (t->prev)
    t->prev->next = t->next;
  else
    l->thead = t->next;
  if (t->next)
    t->next->prev = t->prev;
  else
    l->ttail = t->prev;
  t->next = t->prev = NULL;
  t->queued = 0;
  l->ntasks--;
}

/* Run the tasks queued now; tasks they queue wait for the next round. */
static int run_tasks(struct brk_loop *l)
{
  unsigned n = l->ntasks;
  int ran = 0;

  while (n-- && l->thead) {
    struct brk_task *t = l->thead;

    brk_task_cancel(l, t);
    t->fn(t, t->arg);
    ran++;
  }
  return ran;
}

/* ---- the loop ----------------------------------------------------------- */

int brk_loop_busy(struct brk_loop *l)
{
  /* What was armed this round (a socket's next poll, a doorbell's next
     read) is not in the kernel before the round's submit: hand it over
     now, or a long turn could never hear of the work it would find (a
     small reply on another connection waited out whole 1 MiB turns). */
  if (io_uring_sq_ready(&l->ring))
    io_uring_submit(&l->ring);
  return io_uring_cq_ready(&l->ring) > 0;
}

static int dispatch(struct brk_loop *l)
{
  struct io_uring_cqe *cqe;
  int ran = 0;

  while (io_uring_peek_cqe(&l->ring, &cqe) == 0) {
    struct brk_op *op = io_uring_cqe_get_data(cqe);
    int res = cqe->res;

    io_uring_cqe_seen(&l->ring, cqe);
    if (!op)
      continue; /* a cancel request's own completion */
    if (op->cb) {
      /* A timeout that expired reports -ETIME; to its user that is the
         normal outcome. */
      if (res == -ETIME && op->is_timeout)
        res = 0;
      op->running = 1;
      op->cb(op, res, op->arg);
    }
    op_free(op);
    ran++;
  }
  return ran;
}

int brk_loop_run_once(struct brk_loop *l, int timeout_ms)
{
  struct io_uring_cqe *cqe;
  int ran, rc;

  ran = run_tasks(l);
  if (l->ntasks || l->stop)
    timeout_ms = 0;
  if (timeout_ms == 0) {
    rc = io_uring_submit(&l->ring);
  } else if (timeout_ms < 0) {
    rc = io_uring_submit_and_wait(&l->ring, 1);
  } else {
    struct __kernel_timespec ts = {.tv_sec = timeout_ms / 1000,
                                   .tv_nsec = (timeout_ms % 1000) * 1000000L};
    rc = io_uring_submit_and_wait_timeout(&l->ring, &cqe, 1, &ts, NULL);
    if (rc == -ETIME)
      rc = 0;
  }
  if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
    return rc;
  return ran + dispatch(l);
}

int brk_loop_run(struct brk_loop *l)
{
  int rc;

  l->stop = 0;
  while (!l->stop) {
    rc = brk_loop_run_once(l, -1);
    if (rc < 0)
      return rc;
  }
  return 0;
}
