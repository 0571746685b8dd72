/*
 * brk_loop.h: the broker's event loop, one thread on one io_uring.
 *
 * Everything the broker does happens in callbacks run by this loop: an
 * operation (accept, recvmsg, read, write, poll, timeout) is submitted with
 * a callback and a user pointer, and the callback runs once, when the
 * kernel completes it.  Nothing in a callback may block.
 *
 * Ownership.  The loop allocates every operation (struct brk_op) and frees
 * it after its callback returns.  Buffers the kernel fills or reads (the
 * data of read/recvmsg/write, the msghdr, the timespec) live inside the
 * operation, so they stay valid until the kernel is done with them even if
 * the submitter has gone away.  brk_op_cancel() therefore only detaches
 * the callback and asks the kernel to cancel: once it returns, the caller
 * may free whatever its user pointer named; the loop frees the operation
 * itself when its completion (usually -ECANCELED) arrives.
 *
 * A brk_op pointer is valid until its callback has returned or
 * brk_op_cancel() has been called on it, whichever is first.  Callers keep
 * the pointer only to be able to cancel, and clear it in the callback.
 *
 * Deferred tasks (struct brk_task, caller-owned) run after the current
 * batch of completions and before the loop sleeps again: the way to do
 * work "soon, but not from inside this callback" (flushing an HTTP/2
 * session once per batch, resuming a paused producer, tearing down an
 * object whose callbacks are on the stack).
 */
#ifndef BRK_LOOP_H
#define BRK_LOOP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct brk_loop;
struct brk_op;

/*
 * Completion callback.  res is what the kernel returned: a byte count, a
 * new descriptor, poll revents, or a negative errno.  A timeout reports 0
 * when it expires.
 */
typedef void (*brk_op_fn)(struct brk_op *op, int res, void *arg);

/* Create a loop with an io_uring of `entries` submission slots.  Returns 0
   or -errno (-ENOSYS if io_uring is unavailable). */
int brk_loop_new(struct brk_loop **out, unsigned entries);

/*
 * Free the loop: the ring is closed (which makes the kernel drop all
 * outstanding operations) and every operation still allocated is freed
 * without its callback.  Caller-owned tasks are left alone.
 */
void brk_loop_free(struct brk_loop *l);

/* Run until brk_loop_stop().  Returns 0, or -errno if io_uring failed. */
int brk_loop_run(struct brk_loop *l);

/*
 * One round: run due tasks, submit, wait up to timeout_ms (0: do not wait,
 * < 0: until something completes) for completions and run their callbacks.
 * Returns the number of callbacks and tasks run, or -errno.  For tests and
 * for draining at shutdown.
 */
int brk_loop_run_once(struct brk_loop *l, int timeout_ms);

/*
 * Whether other work waits: completions not yet dispatched (a doorbell, a
 * socket).  A callback moving bulk data asks this to know when to give
 * the rest of the loop a turn.  Deferred tasks do not count: the bulk
 * mover's own (a flush, a window update) are almost always queued.  One
 * system call when operations were armed since the last submit (they are
 * submitted first, so that their completions can show).
 */
int brk_loop_busy(struct brk_loop *l);

/*
 * Whether io_uring works here with every operation the loop uses: 0, or
 * -errno from io_uring_setup (EPERM under a seccomp profile or sysctl
 * that refuses it, ENOSYS without it, ENOMEM under a small locked-memory
 * limit), or -EOPNOTSUPP with *missing naming an operation this kernel's
 * io_uring lacks.
 */
int brk_loop_probe(const char **missing);

/* Make brk_loop_run() return after the current round. */
void brk_loop_stop(struct brk_loop *l);

/* Operations currently allocated (submitted, or cancelled but not yet
   completed).  For tests and leak checks. */
unsigned brk_loop_pending(const struct brk_loop *l);

/* Monotonic clock in milliseconds, and in nanoseconds. */
uint64_t brk_now_ms(void);
uint64_t brk_now_ns(void);

/* ---- operations ----------------------------------------------------- */
/* Each returns the operation, or NULL with errno set (ENOMEM, or the
   submission queue could not be flushed). */

/* accept4() on a listening socket; res = new fd, SOCK_NONBLOCK|CLOEXEC. */
struct brk_op *brk_loop_accept(struct brk_loop *l, int fd, brk_op_fn cb,
                               void *arg);

/*
 * recvmsg() of at most bufsize bytes into a buffer owned by the operation
 * (brk_op_buf()), with msg_control room for ctlsize bytes (0: none, so any
 * descriptors the peer passes are discarded by the kernel).  brk_op_msg()
 * gives the msghdr (msg_flags, control) in the callback.
 */
struct brk_op *brk_loop_recvmsg(struct brk_loop *l, int fd, size_t bufsize,
                                size_t ctlsize, int flags, brk_op_fn cb,
                                void *arg);

/* read() of at most len bytes into brk_op_buf(). */
struct brk_op *brk_loop_read(struct brk_loop *l, int fd, size_t len,
                             brk_op_fn cb, void *arg);

/* write() of a copy of data[0..len); res = bytes written (may be short). */
struct brk_op *brk_loop_write(struct brk_loop *l, int fd, const void *data,
                              size_t len, brk_op_fn cb, void *arg);

/* One-shot poll for events (POLLIN, POLLOUT...) on a descriptor someone
   else owns; res = revents. */
struct brk_op *brk_loop_poll(struct brk_loop *l, int fd, unsigned events,
                             brk_op_fn cb, void *arg);

/* Fire once after ms milliseconds; res = 0. */
struct brk_op *brk_loop_timeout(struct brk_loop *l, uint64_t ms, brk_op_fn cb,
                                void *arg);

/*
 * Detach the callback (it will not run) and ask the kernel to cancel.
 * op may be NULL.  Safe from inside any callback, including op's own
 * (where it does nothing: the operation is already complete).
 */
void brk_op_cancel(struct brk_op *op);

/* The operation's data buffer (read, recvmsg) and message header. */
void *brk_op_buf(struct brk_op *op);
struct msghdr *brk_op_msg(struct brk_op *op);

/* ---- deferred tasks -------------------------------------------------- */

struct brk_task {
  struct brk_task *next, *prev; /* links while queued */
  void (*fn)(struct brk_task *t, void *arg);
  void *arg;
  int queued;
};

/* Initialise a caller-owned task. */
void brk_task_init(struct brk_task *t, void (*fn)(struct brk_task *, void *),
                   void *arg);

/* Queue t to run soon (before the loop sleeps).  A task already queued
   stays queued once.  A task may re-queue itself while running. */
void brk_loop_defer(struct brk_loop *l, struct brk_task *t);

/* Unqueue t if queued.  Must be called before freeing a task's owner. */
void brk_task_cancel(struct brk_loop *l, struct brk_task *t);

#endif /* BRK_LOOP_H */
