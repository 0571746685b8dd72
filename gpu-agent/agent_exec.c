/*
 * agent_exec.c: the execution pool (agent_exec.h).
 *
 * The run queue holds lanes, not records: a lane is on it (or being run)
 * exactly when its `queued` flag is set, which is what keeps one lane on
 * one thread at a time and its records in order.
 *
 * Priorities: the queue is one FIFO per stream priority (a lane's
 * tremote-priority, 0 down to TR_PRIORITY_GREATEST), taken most urgent
 * first, and a running lane goes back on the queue after its current
 * record when a more urgent lane waits, not only after a batch.  So with
 * every thread busy (long kernels on a GPU hold theirs), a high-priority
 * stream's work waits for one record, not for the lanes queued before it.
 * The queue is shared by every session, though, and a GPU does not let one
 * process's stream priorities hold back another's: so a lane that has
 * waited EXEC_AGE_NS on the queue is taken before more urgent ones.  Less
 * urgent work then still moves, one record or batch at a time, however
 * much more urgent work keeps coming.
 *
 * Polling (spin_ns, agent.h AGT_SPIN_US): a thread that finds the queue
 * empty polls it for spin_ns before it sleeps, but only one at a time
 * (x->spinning).  enqueue does not signal while one polls, since the
 * poller will take the lane; whoever takes a lane and leaves more behind
 * signals the next thread, so no lane waits for a wake-up that was saved.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "agent.h"
#include "agent_exec.h"

/* Records a lane runs before it goes to the back of the queue. */
#define EXEC_BATCH 64
/* Executed bytes after which the network thread is told to hand window
   credit back to the peer, even in the middle of a busy lane. */
#define EXEC_CREDIT_BATCH (1u << 20)

/* Priority levels: level -p for priority p, so a higher level is more
   urgent. */
#define EXEC_LEVELS (1 - TR_PRIORITY_GREATEST)
/* How long a lane waits on the queue before it goes ahead of more urgent
   ones: a few small calls' time, far less than a long kernel's. */
#define EXEC_AGE_NS 2000000u

struct agt_exec {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  /* The run queue, a FIFO per level; each entry holds a lane reference. */
  struct agt_lane *head[EXEC_LEVELS], *tail[EXEC_LEVELS];
  atomic_uint levels;           /* bit k: level k's FIFO is not empty */
  atomic_uint queued;           /* lanes on it, for the poller to read */
  bool stop;
  bool spinning;                /* a thread polls for work (not waiting on cv) */
  uint64_t spin_ns;
  unsigned n;
  pthread_t *th;
};

static unsigned level_of(const struct agt_lane *l)
{
  return (unsigned)-tr_priority_clamp(l->priority);
}

static void enqueue(struct agt_exec *x, struct agt_lane *l)
{
  unsigned k = level_of(l);

  pthread_mutex_lock(&x->mu);
  l->run_next = NULL;
  l->queued_ns = agt_now_ns();
  if (x->tail[k])
    x->tail[k]->run_next = l;
  else
    x->head[k] = l;
  x->tail[k] = l;
  atomic_fetch_or_explicit(&x->levels, 1u << k, memory_order_relaxed);
  atomic_fetch_add_explicit(&x->queued, 1, memory_order_release);
  if (!x->spinning)
    pthread_cond_signal(&x->cv);
  pthread_mutex_unlock(&x->mu);
}

void agt_exec_submit(struct agt_exec *x, struct agt_lane *l)
{
  bool go;

  pthread_mutex_lock(&l->mu);
  go = !l->queued && !l->parked && !l->aborted &&
       (l->in_head || (l->in_eof && !l->out_eof));
  if (go)
    l->queued = true;
  pthread_mutex_unlock(&l->mu);
  if (go) {
    agt_lane_get(l);
    enqueue(x, l);
  }
}

/*
 * Execute r, a record taken off l (or never queued), then count its bytes
 * for credit and free it.  release ends the run (l->queued cleared) in the
 * same step.  The network thread hears of it (credit, replies) in batches,
 * or when l has nothing more queued.
 */
static void run_records(struct agt_lane *l, struct agt_rec *const *rs,
                        unsigned n, bool release)
{
  bool notify;

  if (n == 1)
    agt_ops_execute(l, rs[0]);
  else
    agt_ops_execute_launches(l, rs, n);
  for (unsigned i = 0; i < n; i++)
    agt_lane_mark_done(l, rs[i]->hdr.request_id);
  pthread_mutex_lock(&l->mu);
  for (unsigned i = 0; i < n; i++)
    if (rs[i]->gen == l->gen) /* else credited at the move */
      l->done_bytes += rs[i]->wire_len;
  /* Credit in batches, or when the lane drains, so a stream of small
     records does not cost one wake-up each. */
  notify = l->done_bytes >= EXEC_CREDIT_BATCH || !l->in_head;
  if (release)
    l->queued = false;
  pthread_mutex_unlock(&l->mu);
  for (unsigned i = 0; i < n; i++)
    agt_rec_free(l, rs[i]);
  if (notify)
    agt_lane_notify(l);
}

static void run_record(struct agt_lane *l, struct agt_rec *r, bool release)
{
  run_records(l, &r, 1, release);
}

/*
 * Take r, the head of l (under l->mu), off the queue into rs[0], with the
 * launches right behind it that may go with it (agt_ops_batch_key) and
 * the marks among them (agt_ops_batch_mark): at most max launches and
 * AGT_BATCH_MAX records, and none more once a lane of the levels in
 * `above` (more urgent than l) waits: a batch holds this thread until its
 * last kernel ends, as the records one by one would, but without a look at
 * the queue between them.  Returns how many records were taken; *nl, how
 * many of them are launches (or 1).
 */
static unsigned take_records(struct agt_lane *l, struct agt_rec *r,
                             struct agt_rec **rs, unsigned max,
                             unsigned above, unsigned *nl)
{
  int key = agt_ops_batch_key(l->sess, r);
  unsigned n = 0;

  *nl = 0;
  for (;;) {
    bool launch;

    rs[n++] = r;
    *nl += r->hdr.opcode == TR_OP_LAUNCH;
    l->in_bytes -= r->wire_len;
    r = r->next;
    if (key < 0 || !r || n == AGT_BATCH_MAX ||
        (atomic_load_explicit(&l->exec->levels, memory_order_relaxed) &
         above))
      break;
    launch = agt_ops_batch_key(l->sess, r) == key;
    if (launch ? *nl == max : !agt_ops_batch_mark(r))
      break;
  }
  if (*nl == 0)
    *nl = 1;
  l->in_head = r;
  if (!l->in_head)
    l->in_tail = &l->in_head;
  return n;
}

bool agt_exec_inline(struct agt_lane *l, struct agt_rec *r)
{
  bool go;

  if (r->hdr.opcode != TR_OP_EVENT_QUERY)
    return false;
  /* Claimed as if queued, so nothing else runs l meanwhile. */
  pthread_mutex_lock(&l->mu);
  go = !l->queued && !l->parked && !l->aborted && !l->in_head &&
       l->out_bytes < AGT_LANE_OUT_MAX;
  if (go)
    l->queued = true;
  pthread_mutex_unlock(&l->mu);
  if (!go)
    return false;
  /* Its reply fits (push_out does not wait), and nothing is queued after
     it (only this thread queues), so the reply goes out at once. */
  run_record(l, r, true);
  return true;
}

/*
 * Run up to EXEC_BATCH records of l.  Returns true if l must go back on the
 * queue (it still has work), false if it is done for now (queued cleared).
 */
static bool run_lane(struct agt_lane *l)
{
  /* Levels more urgent than l's. */
  unsigned above = ~0u << (level_of(l) + 1);
  /* Whether the session's context was asked for this run: once, since
     when there is no memory to park the calls wait for it instead. */
  bool ready_asked = false;

  for (unsigned i = 0;;) {
    struct agt_rec *r, *rs[AGT_BATCH_MAX];
    bool notify = false;
    unsigned n, nl;

    pthread_mutex_lock(&l->mu);
    if (l->aborted) {
      l->queued = false;
      pthread_mutex_unlock(&l->mu);
      return false;
    }
    r = l->in_head;
    if (!r) {
      if (l->in_eof && !l->out_eof) {
        l->out_eof = true; /* the response can end after what is queued */
        notify = true;
      }
      l->queued = false;
      pthread_mutex_unlock(&l->mu);
      if (notify)
        agt_lane_notify(l);
      return false;
    }
    if (i == EXEC_BATCH ||
        (i && (atomic_load_explicit(&l->exec->levels, memory_order_relaxed) &
               above))) {
      pthread_mutex_unlock(&l->mu);
      return true;
    }
    if (!ready_asked &&
        !atomic_load_explicit(&l->sess->be_ready, memory_order_acquire)) {
      /* The session's context is still being set up (a worker starting
         its driver): park rather than hold this thread for it. */
      pthread_mutex_unlock(&l->mu);
      if (!agt_session_ready_or_park(l))
        return false; /* parked: off the queue, queued cleared */
      ready_asked = true;
      continue; /* looked at again from the top (an abort, say) */
    }
    if (r->hdr.opcode == TR_OP_EVENT_WAIT && r->hdr.payload_len == 16) {
      /* Park here, the record still at the head, until the event's
         generation has run; then it runs as a no-op.  Its fields are read
         under the lock: an abort may free r once it is released. */
      uint64_t h = tr_get_u64(r->payload), gen = tr_get_u64(r->payload + 8);

      pthread_mutex_unlock(&l->mu);
      if (!agt_event_wait_ready(l, h, gen))
        return false; /* parked: off the queue, queued cleared */
      pthread_mutex_lock(&l->mu);
      if (l->aborted || l->in_head != r) {
        pthread_mutex_unlock(&l->mu);
        continue; /* looked at again from the top */
      }
    }
    n = take_records(l, r, rs,
                     EXEC_BATCH - i < AGT_LAUNCH_BATCH ? EXEC_BATCH - i
                                                       : AGT_LAUNCH_BATCH,
                     above, &nl);
    pthread_mutex_unlock(&l->mu);

    run_records(l, rs, n, false);
    i += nl; /* marks cost nothing to speak of */
  }
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* Poll for a queued lane for up to x->spin_ns (called unlocked). */
static void spin_for_work(struct agt_exec *x)
{
  uint64_t end = agt_now_ns() + x->spin_ns;

  while (!atomic_load_explicit(&x->queued, memory_order_acquire)) {
    for (int i = 0; i < 64; i++)
      cpu_relax();
    if (agt_now_ns() >= end)
      break;
  }
}

/* The most urgent queued lane, or the one waiting longest if it has
   waited EXEC_AGE_NS; NULL if none.  Under x->mu. */
static struct agt_lane *dequeue(struct agt_exec *x)
{
  unsigned m = atomic_load_explicit(&x->levels, memory_order_relaxed), k;
  uint64_t oldest, now;
  struct agt_lane *l;

  if (!m)
    return NULL;
  k = 31u - (unsigned)__builtin_clz(m);
  if (m & (m - 1)) { /* less urgent levels wait too */
    now = agt_now_ns();
    oldest = now - x->head[k]->queued_ns;
    for (unsigned j = 0; j < k; j++)
      if ((m & (1u << j)) && now - x->head[j]->queued_ns > EXEC_AGE_NS &&
          now - x->head[j]->queued_ns > oldest) {
        oldest = now - x->head[j]->queued_ns;
        k = j;
      }
  }
  l = x->head[k];
  x->head[k] = l->run_next;
  if (!x->head[k]) {
    x->tail[k] = NULL;
    atomic_fetch_and_explicit(&x->levels, ~(1u << k), memory_order_relaxed);
  }
  atomic_fetch_sub_explicit(&x->queued, 1, memory_order_relaxed);
  return l;
}

static void *worker(void *arg)
{
  struct agt_exec *x = arg;

  for (;;) {
    struct agt_lane *l;

    pthread_mutex_lock(&x->mu);
    while (!atomic_load_explicit(&x->levels, memory_order_relaxed) &&
           !x->stop) {
      if (x->spin_ns && !x->spinning) {
        x->spinning = true;
        pthread_mutex_unlock(&x->mu);
        spin_for_work(x);
        pthread_mutex_lock(&x->mu);
        x->spinning = false;
        continue; /* looked at again under the lock: nothing is lost */
      }
      pthread_cond_wait(&x->cv, &x->mu);
    }
    l = dequeue(x);
    if (!l) {
      pthread_mutex_unlock(&x->mu); /* stop, and nothing left */
      return NULL;
    }
    if (atomic_load_explicit(&x->levels, memory_order_relaxed))
      pthread_cond_signal(&x->cv); /* enqueue may have left this wake-up
                                      to a poller */
    pthread_mutex_unlock(&x->mu);

    if (run_lane(l))
      enqueue(x, l); /* keeps its queue reference */
    else
      agt_lane_put(l);
  }
}

int agt_exec_new(unsigned nthreads, unsigned spin_us, struct agt_exec **out)
{
  struct agt_exec *x = calloc(1, sizeof(*x));
  int rc;

  if (!x)
    return -ENOMEM;
  x->th = calloc(nthreads, sizeof(*x->th));
  if (!x->th) {
    free(x);
    return -ENOMEM;
  }
  x->spin_ns = (uint64_t)spin_us * 1000u;
  pthread_mutex_init(&x->mu, NULL);
  pthread_cond_init(&x->cv, NULL);
  for (x->n = 0; x->n < nthreads; x->n++) {
    rc = pthread_create(&x->th[x->n], NULL, worker, x);
    if (rc != 0) {
      agt_exec_free(x);
      return -rc;
    }
  }
  *out = x;
  return 0;
}

void agt_exec_free(struct agt_exec *x)
{
  if (!x)
    return;
  pthread_mutex_lock(&x->mu);
  x->stop = true;
  pthread_cond_broadcast(&x->cv);
  pthread_mutex_unlock(&x->mu);
  for (unsigned i = 0; i < x->n; i++)
    pthread_join(x->th[i], NULL);
  pthread_cond_destroy(&x->cv);
  pthread_mutex_destroy(&x->mu);
  free(x->th);
  free(x);
}
