/*
 * shim_stream.c: streams, the legacy stream's order, host functions and
 * the asynchronous copies (events, and the generation protocol the model
 * below rests on: shim_event.c; stream capture and graphs: shim_graph.c).
 *
 * The model.  A lane runs its work in the order it was queued
 * (docs/ARCHITECTURE.md); a thread's default-stream work goes down its own
 * lane, and each created stream's down a lane of its own (see below).
 * What needs care is order *across* lanes: a stream fed by several
 * threads, an event recorded by one thread and waited for by another, a
 * stream synchronised by a thread that did not queue its work, the legacy
 * stream against the others.  Events are the tool for all of them:
 *
 *   - an event's records are numbered (generations); EVENT_RECORD on a
 *     lane tells the agent "generation g is reached once everything this
 *     lane queued before it has run", and EVENT_QUERY asks any lane
 *     whether generation g has been reached;
 *   - every stream has an event of its own, recorded after each piece of
 *     work queued on it, so "the stream's work so far" is a generation;
 *   - waiting is asking again (with a growing pause), never a blocked
 *     agent thread, so no wait can starve the lane it waits for.
 *
 * Every created stream's work goes down a lane of its own in each thread
 * that feeds it (shim_stream_lane): then it never waits behind another
 * stream's work on the agent.  The legacy stream (the default stream, on
 * the thread's own lane) is ordered against blocking streams (those not
 * created cudaStreamNonBlocking) by events, see "the legacy stream" below.
 *
 * Work queued on a stream through a lane other than the one that carried
 * its previous work first waits for that work, which keeps the stream's
 * order across lanes; cudaStreamWaitEvent waits for an event recorded on
 * another lane, and costs nothing when it was recorded on the lane the
 * waiting stream's work goes down (the lane's order already holds).  Those
 * waits are EVENT_WAIT records: the agent parks the lane until the
 * generation has run, no round trip and no thread held (only an event of
 * another machine is waited for on the host).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "shim_stream_int.h"

pthread_mutex_t shim_reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct shim_stream *streams;
static _Atomic uint64_t next_handle = 1;

uint64_t shim_new_handle(void)
{
  return (1ull << 62) + atomic_fetch_add(&next_handle, 1);
}

/* A live stream of ours, checked against the registry, so a destroyed or
   made-up handle is an error, never a crash. */
struct shim_stream *shim_stream_lookup(cudaStream_t h)
{
  struct shim_stream *s;

  pthread_mutex_lock(&shim_reg_lock);
  for (s = streams; s && (void *)s != (void *)h; s = s->next)
    ;
  pthread_mutex_unlock(&shim_reg_lock);
  return s && s->magic == STREAM_MAGIC ? s : NULL;
}

/* ---- the legacy stream -------------------------------------------------- */

/*
 * CUDA's legacy default stream waits for all work queued before it on
 * every blocking stream of its device, and their work queued after it
 * waits for it.  Here the legacy stream is the thread's own lane and each
 * created stream has lanes of its own, so both directions are waits on the
 * device (EVENT_WAIT records: no round trip, and nothing waits when
 * nothing was queued):
 *
 *   - before legacy work (legacy_enter), the own lane waits for each
 *     blocking stream of the device that has work the lane has not waited
 *     for yet (its event's newest generation);
 *   - a blocking stream fed after legacy work (legacy_order) waits for the
 *     own lane's *mark* (PROTOCOL.md, lane marks): reached once the agent
 *     has run the own lane's record with a given request id.  The thread
 *     keeps, per device, the id of its own lane's newest record to that
 *     device (sent, set by shim_call) and of its newest legacy work (work).
 *
 * Between threads.  The legacy stream is one per device for the whole
 * process: legacy work, or a blocking stream's, first waits for the
 * legacy work every other thread queued so far (wait_other_threads), on
 * their lanes' marks, so no thread records anything for the others and
 * work queued before a second thread appeared is waited for too.  A
 * per-device epoch, bumped by legacy work while two or more threads use
 * the device's legacy stream and by each thread that starts to, spares the
 * waits when nothing new was queued.  A thread that exits leaves its
 * newest legacy work behind as a retired entry (lg_gone), waited for like
 * a live thread's until a cudaDeviceSynchronize has waited for it; its
 * lane's mark stays reached on the agent after the lane is gone.
 */
#define LG_MAX_DEV 64    /* devices ordered between threads */
#define LG_GONE_MAX 256  /* retired entries kept; beyond, exit waits */

struct shim_legacy {
  uint64_t sent;        /* id of the own lane's newest record to dev
                           (the thread's only) */
  _Atomic uint64_t work; /* id of its newest legacy work on dev, 0 none */
  int dev;
  int registered;       /* on lg_all */
  uint32_t lane_id;     /* the own lane's, as the agent knows it */
  uint64_t serial;      /* the own lane's serial */
  uint64_t epoch_seen;  /* lg_epoch[dev] when it last waited for others */
  struct shim_legacy *next_all, *prev_all; /* lg_all, under lg_lock */
};

/* The newest legacy work of a thread that has exited. */
struct lg_gone {
  struct lg_gone *next;
  int dev;
  uint32_t lane_id;
  uint64_t serial, work;
  uint64_t seq; /* order of retirement */
};

/* e: the mark of lane lane_id (carried by the lane with that serial) as an
   event whose generations are that lane's request ids on dev. */
static void mark_event(struct shim_event *e, uint32_t lane_id, int dev,
                       uint64_t serial)
{
  *e = (struct shim_event){.magic = EVENT_MAGIC,
                           .handle = tr_lane_mark(lane_id)};
  atomic_init(&e->gen, 0);
  atomic_init(&e->dev, dev);
  atomic_init(&e->by, serial);
}

/* The mark of t's own lane on dev. */
static void own_mark(struct shim_thread *t, int dev, struct shim_event *e)
{
  mark_event(e, t->own.lane.hdr ? t->own.lane.hdr->lane_id : 0, dev,
             t->own.serial);
}

static pthread_mutex_t lg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct shim_legacy *lg_all;           /* every thread's, registered */
static struct lg_gone *lg_gone;              /* newest first, under lg_lock */
static unsigned lg_ngone;
static uint64_t lg_gone_seq;
static _Atomic unsigned lg_users[LG_MAX_DEV]; /* threads registered per dev */
static _Atomic uint64_t lg_epoch[LG_MAX_DEV]; /* new legacy work, any thread */
static _Atomic unsigned lg_ngone_dev[LG_MAX_DEV];
/* Blocking streams alive: without any, legacy work has none to wait for
   and skips the registry (a launch on the default stream stays cheap). */
static _Atomic unsigned blocking_live;

/* Whether legacy work of dev must be ordered between threads: two or more
   use its legacy stream, or one that exited left work behind. */
static int lg_shared(int dev)
{
  return dev >= 0 && dev < LG_MAX_DEV &&
         (atomic_load(&lg_users[dev]) >= 2 || atomic_load(&lg_ngone_dev[dev]));
}

static void lg_register(struct shim_thread *t, struct shim_legacy *lg)
{
  if (lg->registered || lg->dev >= LG_MAX_DEV)
    return;
  lg->lane_id = t->own.lane.hdr ? t->own.lane.hdr->lane_id : 0;
  lg->serial = t->own.serial;
  pthread_mutex_lock(&lg_lock);
  lg->next_all = lg_all;
  lg->prev_all = NULL;
  if (lg_all)
    lg_all->prev_all = lg;
  lg_all = lg;
  pthread_mutex_unlock(&lg_lock);
  lg->registered = 1;
  atomic_fetch_add(&lg_users[lg->dev], 1);
  /* The others look again: this thread may have queued legacy work while
     it was the only one (their epoch_seen is older than this). */
  atomic_fetch_add(&lg_epoch[lg->dev], 1);
}

/* t exits: out of the registry, its newest legacy work retired. */
static void lg_unregister(struct shim_thread *t, struct shim_legacy *lg)
{
  struct lg_gone *g = NULL;
  uint64_t work = atomic_load(&lg->work);

  if (!lg->registered)
    return;
  if (work) {
    g = malloc(sizeof(*g));
    pthread_mutex_lock(&lg_lock);
    if (lg_ngone >= LG_GONE_MAX) {
      free(g); /* too many: wait for it here instead (below) */
      g = NULL;
    }
    pthread_mutex_unlock(&lg_lock);
    if (!g) {
      /* Asked on the own lane, after its work: one round trip. */
      struct shim_event e;

      mark_event(&e, lg->lane_id, lg->dev, lg->serial);
      t->cur = &t->own;
      (void)shim_event_wait(t, &e, work);
    }
  }
  pthread_mutex_lock(&lg_lock);
  if (lg->prev_all)
    lg->prev_all->next_all = lg->next_all;
  else
    lg_all = lg->next_all;
  if (lg->next_all)
    lg->next_all->prev_all = lg->prev_all;
  if (g) {
    *g = (struct lg_gone){.next = lg_gone, .dev = lg->dev,
                          .lane_id = lg->lane_id, .serial = lg->serial,
                          .work = work, .seq = ++lg_gone_seq};
    lg_gone = g;
    lg_ngone++;
    atomic_fetch_add(&lg_ngone_dev[lg->dev], 1);
  }
  pthread_mutex_unlock(&lg_lock);
  lg->registered = 0;
  atomic_fetch_sub(&lg_users[lg->dev], 1);
}

/* Drop the retired entries of dev up to seq: a device synchronisation
   waited for them. */
static void lg_gone_drop(int dev, uint64_t seq)
{
  pthread_mutex_lock(&lg_lock);
  for (struct lg_gone **pp = &lg_gone; *pp;) {
    struct lg_gone *g = *pp;

    if (g->dev == dev && g->seq <= seq) {
      *pp = g->next;
      lg_ngone--;
      atomic_fetch_sub(&lg_ngone_dev[dev], 1);
      free(g);
    } else {
      pp = &g->next;
    }
  }
  pthread_mutex_unlock(&lg_lock);
}

void shim_legacy_forget_all(void)
{
  pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;

  lg_lock = fresh; /* fork child: one thread, the lock may be stale */
  lg_all = NULL;   /* the parent's threads' states: not ours to free */
  while (lg_gone) {
    struct lg_gone *g = lg_gone;

    lg_gone = g->next;
    free(g);
  }
  lg_ngone = 0;
  for (unsigned i = 0; i < LG_MAX_DEV; i++) {
    atomic_store(&lg_users[i], 0);
    atomic_store(&lg_epoch[i], 0);
    atomic_store(&lg_ngone_dev[i], 0);
  }
}

/*
 * Make what t queues next on its current lane wait for the newest legacy
 * work of every other thread on dev, live or exited (or, on_host, wait for
 * it here), unless nothing was queued since *epoch_seen (when not NULL).
 * What to wait for is copied under the lock; the waits are queued outside
 * it.  After a wait on the host, the retired entries it covered go.
 */
static int wait_other_threads(struct shim_thread *t, struct shim_legacy *mine,
                              int dev, uint64_t *epoch_seen, int on_host)
{
  struct {
    uint64_t work, serial;
    uint32_t lane_id;
  } *w = NULL;
  uint64_t epoch = atomic_load(&lg_epoch[dev]), gone_seq = 0;
  unsigned n = 0, cap = 0;
  int rc = 0;

  if (epoch_seen && epoch == *epoch_seen)
    return 0;
  pthread_mutex_lock(&lg_lock);
  for (struct shim_legacy *o = lg_all; o; o = o->next_all)
    cap++;
  cap += lg_ngone;
  w = cap ? calloc(cap, sizeof(*w)) : NULL;
  for (struct shim_legacy *o = lg_all; w && o; o = o->next_all) {
    uint64_t work = atomic_load(&o->work);

    if (o == mine || o->dev != dev || work == 0)
      continue;
    w[n].work = work;
    w[n].serial = o->serial;
    w[n++].lane_id = o->lane_id;
  }
  for (struct lg_gone *g = lg_gone; w && g; g = g->next) {
    if (g->dev != dev)
      continue;
    w[n].work = g->work;
    w[n].serial = g->serial;
    w[n++].lane_id = g->lane_id;
    if (g->seq > gone_seq)
      gone_seq = g->seq;
  }
  pthread_mutex_unlock(&lg_lock);
  if (cap && !w)
    return (int)cudaErrorMemoryAllocation;
  for (unsigned i = 0; i < n && !rc; i++) {
    struct shim_event e;

    mark_event(&e, w[i].lane_id, dev, w[i].serial);
    rc = on_host ? shim_event_wait(t, &e, w[i].work)
                 : shim_event_wait_queued(t, &e, w[i].work, dev);
  }
  free(w);
  if (rc == 0 && epoch_seen)
    *epoch_seen = epoch;
  if (rc == 0 && on_host && gone_seq)
    lg_gone_drop(dev, gone_seq);
  return rc;
}

static struct shim_legacy *legacy_of(struct shim_thread *t, int dev)
{
  if (dev < 0 || (uint32_t)dev >= shim_proc.cli.ndev)
    return NULL;
  if (!t->legacy) {
    t->legacy = calloc(shim_proc.cli.ndev, sizeof(*t->legacy));
    if (!t->legacy)
      return NULL; /* then no order beyond the lanes' (said once) */
    t->nlegacy = shim_proc.cli.ndev;
    for (unsigned i = 0; i < t->nlegacy; i++) {
      atomic_init(&t->legacy[i].work, 0);
      t->legacy[i].dev = (int)i;
    }
  }
  if ((unsigned)dev >= t->nlegacy)
    return NULL;
  return &t->legacy[dev];
}

void shim_legacy_sent(struct shim_thread *t, int dev, uint64_t id)
{
  if (t->legacy && (unsigned)dev < t->nlegacy)
    t->legacy[dev].sent = id;
}

void shim_stream_point_get(struct shim_thread *t, int dev,
                           struct shim_stream_point *p)
{
  struct shim_lane *l = t->cur;

  *p = (struct shim_stream_point){
      .lane_id = l->lane.hdr ? l->lane.hdr->lane_id : 0,
      .serial = l->serial,
      .gen = l->next_id,
      .forks = shim_proc.forks,
      .dev = dev,
  };
}

int shim_stream_point_same(const struct shim_stream_point *a,
                           const struct shim_stream_point *b)
{
  return a->dev == b->dev && a->serial == b->serial;
}

int shim_stream_point_wait(struct shim_thread *t,
                           const struct shim_stream_point *p)
{
  struct shim_event m;

  if (!p->gen || p->forks != shim_proc.forks)
    return 0;
  if (t->cur->serial == p->serial)
    return 0; /* the same lane keeps the order */
  mark_event(&m, p->lane_id, p->dev, p->serial);
  return shim_event_wait_queued(t, &m, p->gen, p->dev);
}

int shim_points_grow(struct shim_stream_points *ps)
{
  struct shim_stream_point *v;
  unsigned cap = ps->cap ? 2 * ps->cap : 4;

  if (ps->n < ps->cap)
    return 0;
  v = realloc(ps->v, cap * sizeof(*v));
  if (!v)
    return -ENOMEM;
  ps->v = v;
  ps->cap = cap;
  return 0;
}

void shim_points_note(struct shim_stream_points *ps,
                      const struct shim_stream_point *p)
{
  unsigned i;

  for (i = 0; i < ps->n; i++)
    if (shim_stream_point_same(&ps->v[i], p))
      break;
  if (i < ps->n || shim_points_grow(ps) == 0) {
    ps->v[i] = *p;
    if (i == ps->n)
      ps->n++;
  }
}

void shim_points_wait(struct shim_thread *t, struct shim_stream_points *ps)
{
  for (unsigned i = 0; i < ps->n; i++)
    (void)shim_stream_point_wait(t, &ps->v[i]);
  free(ps->v);
  *ps = (struct shim_stream_points){0};
}

/* Legacy work for t's current device comes next on t's own lane. */
static int legacy_enter(struct shim_thread *t)
{
  enum { BATCH = 32 };
  struct {
    struct shim_stream *s;
    uint64_t gen;
  } wait[BATCH];
  int dev = t->device, rc = 0;
  uint64_t own = t->own.serial;
  struct shim_legacy *lg = legacy_of(t, dev);
  unsigned n;

  if (!lg) {
    shim_warn_once("legacy", "out of memory: the default stream is not "
                             "ordered against created streams");
    return 0;
  }
  lg_register(t, lg);
  /* The waits are queued outside the lock; streams are never freed. */
  do {
    struct shim_stream *s;

    if (!atomic_load(&blocking_live))
      break;
    n = 0;
    pthread_mutex_lock(&shim_reg_lock);
    for (s = streams; s && n < BATCH; s = s->next) {
      uint64_t gen = atomic_load(&s->ev.gen);

      if (s->magic != STREAM_MAGIC || (s->flags & cudaStreamNonBlocking) ||
          s->dev != dev || gen == 0 || atomic_load(&s->ev.by) == own ||
          (s->lg_by == own && s->lg_gen >= gen))
        continue;
      s->lg_by = own;
      s->lg_gen = gen;
      wait[n].s = s;
      wait[n++].gen = gen;
    }
    pthread_mutex_unlock(&shim_reg_lock);
    for (unsigned i = 0; i < n && !rc; i++)
      rc = shim_event_wait_queued(t, &wait[i].s->ev, wait[i].gen, dev);
  } while (n == BATCH && !rc);
  if (rc == 0 && lg_shared(dev))
    rc = wait_other_threads(t, lg, dev, &lg->epoch_seen, 0);
  return rc;
}

/* Legacy work was just queued on t's own lane: note its request id, and
   where other threads use the legacy stream too, tell them to look. */
static void legacy_leave(struct shim_thread *t)
{
  int dev = t->device;
  struct shim_legacy *lg;

  if (!t->legacy || (unsigned)dev >= t->nlegacy)
    return;
  lg = &t->legacy[dev];
  if (!lg->sent || lg->sent == atomic_load_explicit(&lg->work,
                                                    memory_order_relaxed))
    return; /* nothing new went to the device */
  atomic_store(&lg->work, lg->sent);
  if (lg_shared(dev))
    atomic_fetch_add(&lg_epoch[dev], 1);
}

/* Blocking stream s is fed next on t->cur (its lane in t): wait for the
   legacy work queued before it, by t (on its own lane's mark) and by the
   other threads. */
static int legacy_order(struct shim_thread *t, struct shim_stream *s)
{
  struct shim_lane *l = t->cur;
  struct shim_legacy *lg;
  uint64_t work;
  int rc;

  if ((s->flags & cudaStreamNonBlocking) || l == &t->own)
    return 0;
  lg = t->legacy && (unsigned)s->dev < t->nlegacy ? &t->legacy[s->dev] : NULL;
  if (lg_shared(s->dev)) {
    rc = wait_other_threads(t, lg, s->dev, &l->lg_epoch, 0);
    if (rc)
      return rc;
  }
  if (!lg)
    return 0;
  work = atomic_load_explicit(&lg->work, memory_order_relaxed);
  if (work <= l->lg_seen)
    return 0;
  {
    struct shim_event e;

    own_mark(t, s->dev, &e);
    rc = shim_event_wait_queued(t, &e, work, s->dev);
  }
  if (rc == 0)
    l->lg_seen = work;
  return rc;
}

/* Whether serial names a lane t has open (its own or a stream lane). */
static int thread_has_lane(const struct shim_thread *t, uint64_t serial)
{
  if (t->own.open && t->own.serial == serial)
    return 1;
  for (unsigned i = 0; i < SHIM_STREAM_LANES; i++)
    if (t->slane[i] && t->slane[i]->open && t->slane[i]->serial == serial)
      return 1;
  return 0;
}

int shim_sync_other_streams(struct shim_thread *t, int dev)
{
  enum { BATCH = 32 };
  struct {
    struct shim_stream *s;
    uint64_t gen;
  } wait[BATCH];
  struct shim_stream *from = NULL;
  unsigned n;
  int rc = 0, first = 0;

  /* In batches, outside the lock (streams are never freed); a stream
     past the batch is found again by starting after the last one. */
  do {
    struct shim_stream *s;

    n = 0;
    pthread_mutex_lock(&shim_reg_lock);
    for (s = from ? from->next : streams; s && n < BATCH; s = s->next) {
      uint64_t gen = atomic_load(&s->ev.gen);

      if (s->magic != STREAM_MAGIC || s->dev != dev || gen == 0 ||
          atomic_load(&s->ev.dev) != dev ||
          thread_has_lane(t, atomic_load(&s->ev.by)))
        continue;
      wait[n].s = s;
      wait[n++].gen = gen;
    }
    from = s ? (n ? wait[n - 1].s : NULL) : NULL;
    pthread_mutex_unlock(&shim_reg_lock);
    for (unsigned i = 0; i < n; i++) {
      rc = shim_event_wait(t, &wait[i].s->ev, wait[i].gen);
      if (rc && !first)
        first = rc;
    }
  } while (from);
  /* And other threads' default-stream work (recorded once it is shared). */
  if (!first && lg_shared(dev))
    first = wait_other_threads(t,
                               t->legacy && (unsigned)dev < t->nlegacy
                                   ? &t->legacy[dev]
                                   : NULL,
                               dev, NULL, 1);
  return first;
}

static void cb_wait(struct shim_cb_count *c);
/* This thread's default stream's host functions. */
static __thread struct shim_cb_count cb_default_pending;

void shim_stream_thread_exit(struct shim_thread *t)
{
  /* The host functions queued on this thread's default stream drop
     cb_default_pending, which goes with the thread: they end first. */
  cb_wait(&cb_default_pending);
  for (unsigned i = 0; i < t->nlegacy; i++)
    lg_unregister(t, &t->legacy[i]);
  t->cur = &t->own;
  free(t->legacy);
  t->legacy = NULL;
  t->nlegacy = 0;
}

/* ---- host functions ------------------------------------------------------ */

/*
 * cudaLaunchHostFunc and cudaStreamAddCallback.  A host function runs on
 * the shim's callback thread once the work queued before it has run (it
 * waits for an event generation like any other waiter).  One thread runs
 * them all, in the order they were queued.
 *
 * On a created stream, the function's end is the next generation of the
 * stream's event (SHIM_BY_HOST), which the callback thread records once
 * the function has returned: work queued on the stream afterwards waits
 * for it on the device, as any work fed through another lane does, so the
 * program is never held up queuing it (CUDA returns at once, and a host
 * function may wait for what the program does next), and the legacy
 * stream, synchronisations and queries wait for it like for any work.
 *
 * On the default stream the "stream" is the queuing thread's lane, whose
 * pending count is its cb_default_pending: work queued there afterwards
 * waits on the host until the function has returned.
 */
struct cb_job {
  struct cb_job *next;
  struct shim_event *ev; /* wait for this generation first */
  uint64_t gen;
  uint64_t end;          /* created stream: ev's generation to record
                            when the function has returned */
  int dev;               /* ... on this device */
  int blocking;          /* on a blocking stream: cb_blocking_pending */
  int transient;         /* ev belongs to the job */
  cudaHostFn_t fn;       /* cudaLaunchHostFunc, or ... */
  cudaStreamCallback_t cb; /* ... cudaStreamAddCallback */
  cudaStream_t stream;
  void *data;
  struct shim_cb_count *pending; /* to count it done in */
};

static pthread_mutex_t cb_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cb_cv = PTHREAD_COND_INITIALIZER;   /* jobs queued */
static pthread_cond_t cb_done = PTHREAD_COND_INITIALIZER; /* a job ended */
static struct cb_job *cb_head, **cb_tail = &cb_head;
static int cb_started;
/* cb_default_pending (above, for shim_stream_thread_exit): this thread's
   default stream */
static struct shim_cb_count cb_all_pending;   /* every job */
/* Those on blocking streams, which legacy-stream work that reads host
   memory as it is queued waits for (stream_use). */
static struct shim_cb_count cb_blocking_pending;

static void *cb_worker(void *arg)
{
  struct shim_thread *t;

  (void)arg;
  for (;;) {
    struct cb_job *j;
    int rc = 0;

    pthread_mutex_lock(&cb_lock);
    while (!cb_head)
      pthread_cond_wait(&cb_cv, &cb_lock);
    j = cb_head;
    cb_head = j->next;
    if (!cb_head)
      cb_tail = &cb_head;
    pthread_mutex_unlock(&cb_lock);

    if (shim_ready(&t) == cudaSuccess)
      rc = shim_event_wait(t, j->ev, j->gen);
    else
      rc = cudaErrorDevicesUnavailable;
    if (j->fn)
      j->fn(j->data);
    else
      j->cb(j->stream, rc > 0 && rc < (int)TR_ST_BASE ? (cudaError_t)rc
                       : rc ? cudaErrorUnknown : cudaSuccess, j->data);
    /* Without a lane (the session is gone), the stream's later work fails
       with the session anyway. */
    if (j->end && t)
      (void)shim_event_record_at(t, j->ev, j->end, j->dev);
    if (j->transient) {
      uint8_t a[8];

      tr_put_u64(a, j->ev->handle);
      if (t && atomic_load(&j->ev->dev) >= 0)
        (void)shim_call(t, atomic_load(&j->ev->dev), TR_OP_EVENT_DESTROY, a,
                        8, NULL, 0, 0, NULL, 0, NULL);
      free(j->ev);
    }
    pthread_mutex_lock(&cb_lock);
    j->pending->done++;
    cb_all_pending.done++;
    if (j->blocking)
      cb_blocking_pending.done++;
    pthread_cond_broadcast(&cb_done);
    pthread_mutex_unlock(&cb_lock);
    free(j);
  }
  return NULL;
}

/* Wait until the host functions counted in c so far have returned. */
static void cb_wait(struct shim_cb_count *c)
{
  uint64_t upto;

  pthread_mutex_lock(&cb_lock);
  upto = c->queued;
  while (c->done < upto)
    pthread_cond_wait(&cb_done, &cb_lock);
  pthread_mutex_unlock(&cb_lock);
}

/* Whether host functions counted in c have yet to return: a stream with
   one is not done, whatever its device work says. */
static int cb_busy(const struct shim_cb_count *c)
{
  int busy;

  pthread_mutex_lock(&cb_lock);
  busy = c->done < c->queued;
  pthread_mutex_unlock(&cb_lock);
  return busy;
}

void shim_stream_wait_callbacks(void)
{
  cb_wait(&cb_all_pending);
}

static cudaError_t host_func(cudaStream_t stream, cudaHostFn_t fn,
                             cudaStreamCallback_t cb, void *data)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);
  struct shim_stream *s;
  struct cb_job *j;
  pthread_t th;
  int rc;

  if (e != cudaSuccess)
    return shim_fail(t, e);
  if (!fn && !cb)
    return shim_fail(t, cudaErrorInvalidValue);
  e = shim_stream_use_device(t, stream, &s);
  if (e != cudaSuccess)
    return shim_fail(t, e);
  e = shim_capture_refuse(t, "a host function");
  if (e != cudaSuccess)
    return shim_fail(t, e);
  j = calloc(1, sizeof(*j));
  if (!j)
    return shim_fail(t, cudaErrorMemoryAllocation);
  j->fn = fn;
  j->cb = cb;
  j->stream = stream;
  j->data = data;
  if (s) {
    shim_stream_mark(t, s);
    j->ev = &s->ev;
    j->dev = s->dev;
    j->pending = &s->cb_pending;
    j->blocking = !(s->flags & cudaStreamNonBlocking);
  } else {
    j->ev = calloc(1, sizeof(*j->ev));
    if (!j->ev) {
      free(j);
      return shim_fail(t, cudaErrorMemoryAllocation);
    }
    j->transient = 1;
    j->ev->magic = EVENT_MAGIC;
    j->ev->handle = shim_new_handle();
    atomic_init(&j->ev->dev, -1);
    rc = shim_event_record(t, j->ev, t->device, true);
    if (rc) {
      free(j->ev);
      free(j);
      return shim_cuda_error(t, rc);
    }
    j->gen = 1;
    j->pending = &cb_default_pending;
  }
  pthread_mutex_lock(&cb_lock);
  if (!cb_started) {
    if (pthread_create(&th, NULL, cb_worker, NULL) != 0) {
      pthread_mutex_unlock(&cb_lock);
      if (j->transient)
        free(j->ev);
      free(j);
      return shim_fail(t, cudaErrorMemoryAllocation);
    }
    pthread_detach(th);
    cb_started = 1;
  }
  if (s) {
    /* Its end taken as it is queued, under cb_lock: work that waits for
       that generation (another thread's, seeing `by`) is queued after it,
       so no host function ahead of it can wait for that work (a cycle
       through the one callback thread). */
    j->gen = atomic_load(&s->ev.gen);
    j->end = atomic_fetch_add(&s->ev.gen, 1) + 1;
    atomic_store(&s->ev.dev, s->dev);
    atomic_store(&s->ev.by, SHIM_BY_HOST);
  }
  j->pending->queued++;
  cb_all_pending.queued++;
  if (j->blocking)
    cb_blocking_pending.queued++;
  *cb_tail = j;
  cb_tail = &j->next;
  pthread_cond_signal(&cb_cv);
  pthread_mutex_unlock(&cb_lock);
  return cudaSuccess;
}

cudaError_t cudaLaunchHostFunc(cudaStream_t stream, cudaHostFn_t fn,
                               void *data)
{
  return host_func(stream, fn, NULL, data);
}

cudaError_t cudaStreamAddCallback(cudaStream_t stream,
                                  cudaStreamCallback_t cb, void *data,
                                  unsigned int flags)
{
  if (flags != 0)
    return cudaErrorInvalidValue; /* "reserved for future use, must be 0" */
  return host_func(stream, NULL, cb, data);
}

/* ---- streams ------------------------------------------------------------ */

/*
 * Use the lane this thread feeds stream s through, opening it when open is
 * set; no lane leaves the thread's own.  Work goes there so it never waits
 * behind another stream's on the agent (the legacy stream's order is kept
 * by events: legacy_order); a synchronisation goes there so that lane's
 * errors come back.
 */
static void use_stream_lane(struct shim_thread *t, struct shim_stream *s,
                            int open)
{
  struct shim_lane *l = shim_stream_lane(t, s->id, s->priority, open);

  if (l)
    t->cur = l;
}

/* host: the work reads host memory as it is queued (see shim.h). */
static cudaError_t stream_use(struct shim_thread *t, cudaStream_t stream,
                              struct shim_stream **out, bool host)
{
  struct shim_stream *s;
  int rc;

  *out = NULL;
  if (shim_stream_default(stream)) {
    cb_wait(&cb_default_pending);
    /* The legacy stream follows every blocking stream's earlier work, host
       functions included: their ends are waited for on the device
       (legacy_enter), but host memory read now must wait for them here. */
    if (host)
      cb_wait(&cb_blocking_pending);
    rc = legacy_enter(t);
    return rc ? shim_cuda_error(t, rc) : cudaSuccess;
  }
  s = shim_stream_lookup(stream);
  if (!s)
    return cudaErrorInvalidResourceHandle;
  if (s->capture) {
    /* Into the graph: nothing runs, so nothing to wait for. */
    t->capture = s;
    *out = s;
    return cudaSuccess;
  }
  /* A copy from host memory reads it now (the broker sends it at once,
     from the shared segment when pinned): a host function before it, on
     the callback thread, may still be writing it. */
  if (host)
    cb_wait(&s->cb_pending);
  use_stream_lane(t, s, 1);
  /* Fed on another lane last: that lane must have run that work first. */
  if (atomic_load(&s->ev.by) &&
      atomic_load(&s->ev.by) != shim_event_cur_serial(t)) {
    rc = shim_event_wait_queued(t, &s->ev, atomic_load(&s->ev.gen),
                                s->dev);
    if (rc)
      return shim_cuda_error(t, rc);
  }
  rc = legacy_order(t, s);
  if (rc)
    return shim_cuda_error(t, rc);
  *out = s;
  return cudaSuccess;
}

cudaError_t shim_stream_use(struct shim_thread *t, cudaStream_t stream,
                            struct shim_stream **out)
{
  return stream_use(t, stream, out, true);
}

cudaError_t shim_stream_use_device(struct shim_thread *t,
                                   cudaStream_t stream,
                                   struct shim_stream **out)
{
  return stream_use(t, stream, out, false);
}

cudaError_t shim_stream_begin(struct shim_thread **t, cudaStream_t stream,
                              struct shim_stream **s)
{
  cudaError_t e = shim_ready(t);

  *s = NULL;
  if (e == cudaSuccess)
    e = shim_stream_use(*t, stream, s);
  return shim_fail(*t, e);
}

void shim_stream_mark(struct shim_thread *t, struct shim_stream *s)
{
  t->capture = NULL;
  /* A failure to queue the mark shows up as the next call's transport
     error; the work itself is queued already.  Work captured into a
     graph has not run and is not marked. */
  if (s && !s->capture)
    (void)shim_event_record(t, &s->ev, s->dev, true);
  else if (!s)
    legacy_leave(t);
}

static cudaError_t stream_create(cudaStream_t *out, unsigned flags,
                                 int priority)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);
  struct shim_stream *s;

  if (e != cudaSuccess)
    return shim_fail(t, e);
  if (!out || (flags & ~(unsigned)cudaStreamNonBlocking))
    return shim_fail(t, cudaErrorInvalidValue);
  s = calloc(1, sizeof(*s));
  if (!s)
    return shim_fail(t, cudaErrorMemoryAllocation);
  s->magic = STREAM_MAGIC;
  s->flags = flags;
  /* Clamped into [greatest, least] = [-5, 0], as CUDA clamps. */
  s->priority = tr_priority_clamp(priority);
  s->dev = t->device;
  s->id = atomic_fetch_add(&next_handle, 1);
  s->ev.magic = EVENT_MAGIC;
  s->ev.handle = shim_new_handle();
  atomic_init(&s->ev.dev, -1);
  pthread_mutex_lock(&shim_reg_lock);
  s->next = streams;
  streams = s;
  pthread_mutex_unlock(&shim_reg_lock);
  if (!(flags & cudaStreamNonBlocking))
    atomic_fetch_add(&blocking_live, 1);
  *out = (cudaStream_t)s;
  return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t *s)
{
  return stream_create(s, cudaStreamDefault, 0);
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned int flags)
{
  return stream_create(s, flags, 0);
}

cudaError_t cudaStreamCreateWithPriority(cudaStream_t *s, unsigned int flags,
                                         int priority)
{
  return stream_create(s, flags, priority);
}

cudaError_t cudaDeviceGetStreamPriorityRange(int *least, int *greatest)
{
  if (least)
    *least = TR_PRIORITY_LEAST;
  if (greatest)
    *greatest = TR_PRIORITY_GREATEST;
  return cudaSuccess;
}

/*
 * CUDA lets a stream be destroyed with work queued: the work still runs.
 * So does this: the records are on lanes already; the stream's own event
 * is dropped on the agent after them (EVENT_DESTROY on the same lane, or,
 * for a blocking stream, on the own lane after it waited for them: the
 * legacy stream's later work must still follow that work).
 */
cudaError_t cudaStreamDestroy(cudaStream_t stream)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);
  struct shim_stream *s, **pp;
  uint8_t a[8];
  int dev;

  if (e != cudaSuccess)
    return shim_fail(t, e);
  if (shim_stream_default(stream))
    return shim_fail(t, cudaErrorInvalidResourceHandle);
  pthread_mutex_lock(&shim_reg_lock);
  for (pp = &streams; *pp && (void *)*pp != (void *)stream; pp = &(*pp)->next)
    ;
  s = *pp;
  if (s)
    *pp = s->next;
  pthread_mutex_unlock(&shim_reg_lock);
  if (!s)
    return shim_fail(t, cudaErrorInvalidResourceHandle);
  if (!(s->flags & cudaStreamNonBlocking))
    atomic_fetch_sub(&blocking_live, 1);
  dev = atomic_load(&s->ev.dev);
  if (dev >= 0) {
    if (!(s->flags & cudaStreamNonBlocking) && dev == t->device)
      /* Its work still runs, and legacy work queued later must follow
         it: the own lane waits for it now, and drops the event after. */
      (void)shim_event_wait_queued(t, &s->ev, atomic_load(&s->ev.gen),
                                   dev);
    else
      use_stream_lane(t, s, 0); /* after the records, on their lane */
    tr_put_u64(a, s->ev.handle);
    (void)shim_call(t, dev, TR_OP_EVENT_DESTROY, a, 8, NULL, 0, 0, NULL, 0,
                    NULL);
  }
  s->magic = 0;
  /* Never freed: nvcc-built code and other threads may still hold the
     pointer, and a later lookup must find "not a stream", not garbage. */
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream)
{
  struct shim_thread *t;
  cudaError_t e;
  struct shim_stream *s;
  int rc;

  if (shim_stream_default(stream)) {
    e = cudaDeviceSynchronize();
    cb_wait(&cb_default_pending);
    return e;
  }
  e = shim_ready(&t);
  if (e != cudaSuccess)
    return shim_fail(t, e);
  s = shim_stream_lookup(stream);
  if (!s)
    return shim_fail(t, cudaErrorInvalidResourceHandle);
  e = shim_capture_sync(s);
  if (e != cudaSuccess)
    return shim_fail(t, e);
  use_stream_lane(t, s, 0);
  rc = shim_event_wait(t, &s->ev, atomic_load(&s->ev.gen));
  cb_wait(&s->cb_pending); /* its host functions are part of its work */
  rc = shim_managed_after(t, rc, t->call_ok);
  return shim_cuda_error(t, rc);
}

cudaError_t cudaStreamQuery(cudaStream_t stream)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);
  struct shim_stream *s;

  if (e != cudaSuccess)
    return shim_fail(t, e);
  /* Asked on the query lane, never on a lane with work: there the
     question would wait behind the very work it asks about.  The default
     stream's work so far is the thread's own lane's mark at its newest
     record to the device. */
  if (shim_stream_default(stream)) {
    struct shim_legacy *lg = legacy_of(t, t->device);
    struct shim_event m;
    int rc;

    if (cb_busy(&cb_default_pending))
      return cudaErrorNotReady;
    if (!lg)
      return shim_cuda_error(t, shim_call(t, t->device, TR_OP_NOP, NULL, 0,
                                          NULL, 0, 1, NULL, 0, NULL));
    if (!lg->sent)
      return cudaSuccess; /* nothing was queued */
    own_mark(t, t->device, &m);
    rc = shim_event_ask(t, &m, lg->sent);
    if (rc == (int)cudaErrorNotReady)
      return cudaErrorNotReady;
    return shim_cuda_error(t, rc);
  }
  s = shim_stream_lookup(stream);
  if (!s)
    return shim_fail(t, cudaErrorInvalidResourceHandle);
  /* cudaErrorNotReady is an answer, not an error: not the last error. */
  if (cb_busy(&s->cb_pending))
    return cudaErrorNotReady;
  int rc = shim_event_ask(t, &s->ev, atomic_load(&s->ev.gen));
  if (rc == (int)cudaErrorNotReady)
    return cudaErrorNotReady;
  return shim_cuda_error(t, rc);
}

cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event,
                                unsigned int flags)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);
  struct shim_event *ev;
  struct shim_stream *s;
  struct shim_stream_point p;
  uint64_t gen;
  int rc, dev;

  if (e != cudaSuccess)
    return shim_fail(t, e);
  ev = shim_event_of(event);
  if (!ev || flags > cudaEventWaitExternal)
    return shim_fail(t, ev ? cudaErrorInvalidValue
                           : cudaErrorInvalidResourceHandle);
  e = shim_stream_use_device(t, stream, &s);
  if (e != cudaSuccess)
    return shim_fail(t, e);
  gen = atomic_load(&ev->gen);
  /* Recorded on the lane this stream's work goes down: everything queued
     after this call runs after the record anyway.  Elsewhere: the lane
     waits for it on the device. */
  if (gen == 0 || atomic_load(&ev->by) == shim_event_cur_serial(t))
    return cudaSuccess;
  pthread_mutex_lock(&shim_reg_lock);
  rc = shim_points_grow(&ev->waits);
  pthread_mutex_unlock(&shim_reg_lock);
  if (rc < 0)
    return shim_fail(t, cudaErrorMemoryAllocation);
  dev = s ? s->dev : t->device;
  e = shim_cuda_error(t, shim_event_wait_queued(t, ev, gen, dev));
  if (e != cudaSuccess)
    return e;
  /* The wait is the stream's work like any other: what other threads
     queue on the stream later (on their lanes) waits for it too, and so
     does the event's destroy, which goes down another lane. */
  shim_stream_mark(t, s);
  shim_stream_point_get(t, dev, &p);
  pthread_mutex_lock(&shim_reg_lock);
  shim_points_note(&ev->waits, &p);
  pthread_mutex_unlock(&shim_reg_lock);
  return cudaSuccess;
}

cudaError_t cudaStreamGetFlags(cudaStream_t stream, unsigned int *flags)
{
  struct shim_stream *s = shim_stream_default(stream) ? NULL : shim_stream_lookup(stream);

  if (!flags)
    return cudaErrorInvalidValue;
  if (!shim_stream_default(stream) && !s)
    return cudaErrorInvalidResourceHandle;
  *flags = s ? s->flags : cudaStreamDefault;
  return cudaSuccess;
}

int shim_stream_priority(const struct shim_stream *s)
{
  return s ? s->priority : 0;
}

cudaError_t cudaStreamGetPriority(cudaStream_t stream, int *priority)
{
  struct shim_stream *s = shim_stream_default(stream) ? NULL : shim_stream_lookup(stream);

  if (!priority)
    return cudaErrorInvalidValue;
  if (!shim_stream_default(stream) && !s)
    return cudaErrorInvalidResourceHandle;
  *priority = s ? s->priority : 0;
  return cudaSuccess;
}

cudaError_t cudaStreamGetDevice(cudaStream_t stream, int *device)
{
  struct shim_thread *t = shim_self();
  struct shim_stream *s = shim_stream_default(stream) ? NULL : shim_stream_lookup(stream);

  if (!device)
    return cudaErrorInvalidValue;
  if (!shim_stream_default(stream) && !s)
    return cudaErrorInvalidResourceHandle;
  *device = s ? s->dev : (t ? t->device : 0);
  return cudaSuccess;
}

cudaError_t cudaStreamGetId(cudaStream_t stream, unsigned long long *id)
{
  struct shim_stream *s = shim_stream_default(stream) ? NULL : shim_stream_lookup(stream);

  if (!id)
    return cudaErrorInvalidValue;
  if (!shim_stream_default(stream) && !s)
    return cudaErrorInvalidResourceHandle;
  *id = s ? s->id : (stream == cudaStreamPerThread ? 2 : 1);
  return cudaSuccess;
}

/* ---- asynchronous copies ------------------------------------------------ */

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t count,
                            enum cudaMemcpyKind kind, cudaStream_t stream)
{
  struct shim_thread *t;
  struct shim_stream *s;
  cudaError_t e = shim_stream_begin(&t, stream, &s);

  if (e != cudaSuccess)
    return e;
  e = shim_memcpy(t, dst, src, count, kind, 1);
  if (e == cudaSuccess)
    shim_stream_mark(t, s);
  return e;
}

cudaError_t cudaMemsetAsync(void *ptr, int value, size_t count,
                            cudaStream_t stream)
{
  struct shim_thread *t;
  struct shim_stream *s;
  cudaError_t e = shim_stream_begin(&t, stream, &s);

  if (e != cudaSuccess)
    return e;
  e = shim_memset(t, ptr, value, count, 1);
  if (e == cudaSuccess)
    shim_stream_mark(t, s);
  return e;
}

/* ---- the per-thread-default-stream twins (nvcc --default-stream
   per-thread); the headers declare them only under macros. ------------- */

cudaError_t cudaMemcpyAsync_ptsz(void *dst, const void *src, size_t count,
                                 enum cudaMemcpyKind kind, cudaStream_t stream);
cudaError_t cudaMemsetAsync_ptsz(void *ptr, int value, size_t count,
                                 cudaStream_t stream);
cudaError_t cudaStreamWaitEvent_ptsz(cudaStream_t stream, cudaEvent_t event,
                                     unsigned int flags);
cudaError_t cudaStreamGetFlags_ptsz(cudaStream_t stream, unsigned int *flags);
cudaError_t cudaStreamGetPriority_ptsz(cudaStream_t stream, int *priority);
cudaError_t cudaStreamGetDevice_ptsz(cudaStream_t stream, int *device);
cudaError_t cudaStreamGetId_ptsz(cudaStream_t stream, unsigned long long *id);
cudaError_t cudaStreamSynchronize_ptsz(cudaStream_t stream);
cudaError_t cudaStreamQuery_ptsz(cudaStream_t stream);
cudaError_t cudaLaunchHostFunc_ptsz(cudaStream_t stream, cudaHostFn_t fn,
                                    void *data);
cudaError_t cudaStreamBeginCapture_ptsz(cudaStream_t stream,
                                        enum cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture_ptsz(cudaStream_t stream, cudaGraph_t *graph);
cudaError_t cudaStreamIsCapturing_ptsz(cudaStream_t stream,
                                       enum cudaStreamCaptureStatus *status);
cudaError_t cudaStreamGetCaptureInfo_ptsz(
    cudaStream_t stream, enum cudaStreamCaptureStatus *status,
    unsigned long long *id, cudaGraph_t *graph, const cudaGraphNode_t **deps,
    const cudaGraphEdgeData **edges, size_t *ndeps);
cudaError_t cudaGraphLaunch_ptsz(cudaGraphExec_t exec, cudaStream_t stream);
cudaError_t cudaGraphUpload_ptsz(cudaGraphExec_t exec, cudaStream_t stream);

cudaError_t cudaStreamBeginCapture_ptsz(cudaStream_t stream,
                                        enum cudaStreamCaptureMode mode)
{
  return cudaStreamBeginCapture(stream, mode);
}

cudaError_t cudaStreamEndCapture_ptsz(cudaStream_t stream, cudaGraph_t *graph)
{
  return cudaStreamEndCapture(stream, graph);
}

cudaError_t cudaStreamIsCapturing_ptsz(cudaStream_t stream,
                                       enum cudaStreamCaptureStatus *status)
{
  return cudaStreamIsCapturing(stream, status);
}

cudaError_t cudaStreamGetCaptureInfo_ptsz(
    cudaStream_t stream, enum cudaStreamCaptureStatus *status,
    unsigned long long *id, cudaGraph_t *graph, const cudaGraphNode_t **deps,
    const cudaGraphEdgeData **edges, size_t *ndeps)
{
  return shim_capture_info(stream, status, id, graph, deps, edges, ndeps);
}

cudaError_t cudaGraphLaunch_ptsz(cudaGraphExec_t exec, cudaStream_t stream)
{
  return cudaGraphLaunch(exec, stream);
}

cudaError_t cudaGraphUpload_ptsz(cudaGraphExec_t exec, cudaStream_t stream)
{
  return cudaGraphUpload(exec, stream);
}
cudaError_t cudaStreamAddCallback_ptsz(cudaStream_t stream,
                                       cudaStreamCallback_t cb, void *data,
                                       unsigned int flags);

cudaError_t cudaLaunchHostFunc_ptsz(cudaStream_t stream, cudaHostFn_t fn,
                                    void *data)
{
  return cudaLaunchHostFunc(stream, fn, data);
}

cudaError_t cudaStreamAddCallback_ptsz(cudaStream_t stream,
                                       cudaStreamCallback_t cb, void *data,
                                       unsigned int flags)
{
  return cudaStreamAddCallback(stream, cb, data, flags);
}

cudaError_t cudaStreamSynchronize_ptsz(cudaStream_t stream)
{
  return cudaStreamSynchronize(stream);
}

cudaError_t cudaStreamQuery_ptsz(cudaStream_t stream)
{
  return cudaStreamQuery(stream);
}

cudaError_t cudaMemcpyAsync_ptsz(void *dst, const void *src, size_t count,
                                 enum cudaMemcpyKind kind, cudaStream_t stream)
{
  return cudaMemcpyAsync(dst, src, count, kind, stream);
}

cudaError_t cudaMemsetAsync_ptsz(void *ptr, int value, size_t count,
                                 cudaStream_t stream)
{
  return cudaMemsetAsync(ptr, value, count, stream);
}

cudaError_t cudaStreamWaitEvent_ptsz(cudaStream_t stream, cudaEvent_t event,
                                     unsigned int flags)
{
  return cudaStreamWaitEvent(stream, event, flags);
}

cudaError_t cudaStreamGetFlags_ptsz(cudaStream_t stream, unsigned int *flags)
{
  return cudaStreamGetFlags(stream, flags);
}

cudaError_t cudaStreamGetPriority_ptsz(cudaStream_t stream, int *priority)
{
  return cudaStreamGetPriority(stream, priority);
}

cudaError_t cudaStreamGetDevice_ptsz(cudaStream_t stream, int *device)
{
  return cudaStreamGetDevice(stream, device);
}

cudaError_t cudaStreamGetId_ptsz(cudaStream_t stream, unsigned long long *id)
{
  return cudaStreamGetId(stream, id);
}

/* ---- fork ------------------------------------------------------------------- */

/*
 * In a forked child every event and stream starts over: their records
 * were the parent session's, and the callback thread does not exist.
 * Queued host functions of the parent are the parent's to run.
 */
void shim_stream_forget(void)
{
  pthread_mutex_init(&shim_reg_lock, NULL);
  pthread_mutex_init(&cb_lock, NULL);
  pthread_cond_init(&cb_cv, NULL);
  pthread_cond_init(&cb_done, NULL);
  shim_event_forget();
  for (struct shim_stream *s = streams; s; s = s->next) {
    atomic_store(&s->ev.gen, 0);
    atomic_store(&s->ev.dev, -1);
    atomic_store(&s->ev.by, 0);
    s->cb_pending = (struct shim_cb_count){0};
  }
  cb_head = NULL;
  cb_tail = &cb_head;
  cb_started = 0;
  cb_default_pending = (struct shim_cb_count){0};
  cb_all_pending = (struct shim_cb_count){0};
  cb_blocking_pending = (struct shim_cb_count){0};
}
