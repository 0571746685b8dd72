/*
 * shim_event.c: events (cudaEvent*), and the generation protocol under
 * them that also orders streams, the legacy stream and host functions
 * (shim_stream.c, through shim_stream_int.h).
 *
 * The model is written at the top of shim_stream.c.  In short: an event's
 * records are numbered (generations); shim_event_record queues the next
 * one on the current lane, shim_event_ask asks on the query lane whether
 * a generation has run, shim_event_wait asks until it has, and
 * shim_event_wait_queued makes the lane itself wait on the agent
 * (EVENT_WAIT).  A cudaEvent_t is a struct shim_event in the registry
 * below; a stream's own event, a host function's and a lane's mark are
 * struct shim_events outside it.
 *
 * The timestamps cudaEventElapsedTime subtracts are taken by the agent
 * when the record runs: the remote device's clock.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "shim_stream_int.h"

/* cudaEventCreateWithFlags flags we accept. */
#define EVENT_FLAGS (cudaEventBlockingSync | cudaEventDisableTiming)

/* Every live cudaEvent_t, under shim_reg_lock (shim_stream.c's, shared
   with the streams' registry). */
static struct shim_event *events;

struct shim_event *shim_event_of(cudaEvent_t h)
{
  struct shim_event *e;

  pthread_mutex_lock(&shim_reg_lock);
  for (e = events; e && (void *)e != (void *)h; e = e->next)
    ;
  pthread_mutex_unlock(&shim_reg_lock);
  return e && e->magic == EVENT_MAGIC ? e : NULL;
}

/* ---- the generation protocol ------------------------------------------ */

static int event_args(uint8_t a[16], uint64_t handle, uint64_t gen)
{
  tr_put_u64(a, handle);
  tr_put_u64(a + 8, gen);
  return 16;
}

/*
 * Queue the next record of e on t's lane for dev (no reply).  A mark
 * (a stream's own event, a host function's) is waited for but never
 * timed: the agent may complete it together with the launches around it
 * (TR_EVENT_F_MARK), so a stream's launches still go to the GPU in
 * batches although each is followed by its stream's mark.
 */
int shim_event_record(struct shim_thread *t, struct shim_event *e, int dev,
                      bool mark)
{
  uint8_t a[24];
  uint64_t gen = atomic_fetch_add(&e->gen, 1) + 1;
  uint32_t n = (uint32_t)event_args(a, e->handle, gen);
  int rc;

  if (mark) {
    tr_put_u64(a + n, TR_EVENT_F_MARK);
    n += 8;
  }
  rc = shim_call(t, dev, TR_OP_EVENT_RECORD, a, n, NULL, 0, 0, NULL, 0, NULL);
  if (rc == 0) {
    atomic_store(&e->dev, dev);
    atomic_store(&e->by, shim_event_cur_serial(t));
  }
  return rc;
}

int shim_event_record_at(struct shim_thread *t, struct shim_event *e,
                         uint64_t gen, int dev)
{
  uint8_t a[24];

  return shim_call(t, dev, TR_OP_EVENT_RECORD, a,
                   (uint32_t)event_args(a, e->handle, gen), NULL, 0, 0, NULL,
                   0, NULL);
}

/* Has generation gen of e run?  0 yes, cudaErrorNotReady, or an error
   (the lane's deferred error comes back here, as CUDA's queries do). */
static int event_query(struct shim_thread *t, struct shim_event *e,
                       uint64_t gen)
{
  uint8_t a[16];
  int dev = atomic_load(&e->dev);

  if (gen == 0 || dev < 0)
    return 0;
  return shim_call(t, dev, TR_OP_EVENT_QUERY, a,
                   (uint32_t)event_args(a, e->handle, gen), NULL, 0, 1, NULL,
                   0, NULL);
}

/* The same question on t's query lane (shim_query_lane), where it never
   waits behind work the thread queued. */
int shim_event_ask(struct shim_thread *t, struct shim_event *e, uint64_t gen)
{
  struct shim_lane *was = t->cur, *q = shim_query_lane(t);
  int rc;

  if (q)
    t->cur = q;
  rc = event_query(t, e, gen);
  t->cur = was;
  return rc;
}

/*
 * Wait until generation gen of e has run.  Recorded on the lane this call
 * uses: asked there once (it is then done, and that lane's errors come
 * back).  Else asked on the query lane, again after pauses growing from
 * 20 us to 1 ms: the agent never blocks a thread for us.
 */
int shim_event_wait(struct shim_thread *t, struct shim_event *e, uint64_t gen)
{
  long pause_ns = 20000;

  if (gen && atomic_load(&e->by) == shim_event_cur_serial(t)) {
    int rc = event_query(t, e, gen);

    if (rc != (int)cudaErrorNotReady)
      return rc;
  }
  for (;;) {
    int rc = shim_event_ask(t, e, gen);

    if (rc != (int)cudaErrorNotReady)
      return rc;
    nanosleep(&(struct timespec){0, pause_ns}, NULL);
    if (pause_ns < 1000000)
      pause_ns *= 2;
  }
}

/*
 * Make what t queues next on its current lane for dev wait, on the device,
 * until generation gen of e has run: an EVENT_WAIT record, which parks the
 * lane on the agent without a round trip.  An event of another device (or
 * a capture in progress) is waited for here, on the host.
 */
int shim_event_wait_queued(struct shim_thread *t, struct shim_event *e,
                           uint64_t gen, int dev)
{
  uint8_t a[16];

  if (t->capture || atomic_load(&e->dev) != dev)
    return shim_event_wait(t, e, gen);
  return shim_call(t, dev, TR_OP_EVENT_WAIT, a,
                   (uint32_t)event_args(a, e->handle, gen), NULL, 0, 0, NULL,
                   0, NULL);
}

/* ---- events ------------------------------------------------------------- */

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *out, unsigned int flags)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);
  struct shim_event *ev;

  if (e != cudaSuccess)
    return shim_fail(t, e);
  if (!out || (flags & ~(unsigned)(EVENT_FLAGS | cudaEventInterprocess)))
    return shim_fail(t, cudaErrorInvalidValue);
  if (flags & cudaEventInterprocess) {
    shim_warn_once("ipcevent", "interprocess events are not carried: a "
                               "program on another host cannot share them");
    return shim_fail(t, cudaErrorNotSupported);
  }
  ev = calloc(1, sizeof(*ev));
  if (!ev)
    return shim_fail(t, cudaErrorMemoryAllocation);
  ev->magic = EVENT_MAGIC;
  ev->flags = flags;
  ev->handle = shim_new_handle();
  atomic_init(&ev->dev, -1);
  pthread_mutex_lock(&shim_reg_lock);
  ev->next = events;
  events = ev;
  pthread_mutex_unlock(&shim_reg_lock);
  *out = (cudaEvent_t)ev;
  return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t *out)
{
  return cudaEventCreateWithFlags(out, cudaEventDefault);
}

cudaError_t cudaEventDestroy(cudaEvent_t event)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);
  struct shim_event *ev, **pp;
  struct shim_stream_points waits = {0};
  uint8_t a[8];

  if (e != cudaSuccess)
    return shim_fail(t, e);
  pthread_mutex_lock(&shim_reg_lock);
  for (pp = &events; *pp && (void *)*pp != (void *)event; pp = &(*pp)->next)
    ;
  ev = *pp;
  if (ev) {
    *pp = ev->next;
    waits = ev->waits;
    ev->waits = (struct shim_stream_points){0};
  }
  pthread_mutex_unlock(&shim_reg_lock);
  if (!ev)
    return shim_fail(t, cudaErrorInvalidResourceHandle);
  if (atomic_load(&ev->dev) >= 0) {
    /* CUDA lets waits for the event still queued run: the destroy goes
       down this thread's lane and would overtake them on theirs, and the
       agent would then give them a fresh event, never recorded (a hang),
       or let one already waiting go early. */
    t->cur = &t->own; /* not stream work: no stream lane waits for them */
    shim_points_wait(t, &waits);
    tr_put_u64(a, ev->handle);
    (void)shim_call(t, atomic_load(&ev->dev), TR_OP_EVENT_DESTROY, a, 8, NULL,
                    0, 0, NULL, 0, NULL);
  }
  free(waits.v); /* never recorded: nothing waited */
  ev->magic = 0; /* kept, like streams: see cudaStreamDestroy */
  return cudaSuccess;
}

/* The start of the calls on one event: ready, and a live event of ours. */
static cudaError_t event_begin(struct shim_thread **t, cudaEvent_t event,
                               struct shim_event **ev)
{
  cudaError_t e = shim_ready(t);

  if (e != cudaSuccess)
    return shim_fail(*t, e);
  *ev = shim_event_of(event);
  return *ev ? cudaSuccess : shim_fail(*t, cudaErrorInvalidResourceHandle);
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream)
{
  struct shim_thread *t;
  struct shim_event *ev;
  struct shim_stream *s;
  cudaError_t e = event_begin(&t, event, &ev);

  if (e != cudaSuccess)
    return e;
  e = shim_stream_use_device(t, stream, &s);
  if (e != cudaSuccess)
    return shim_fail(t, e);
  /* Before a generation is taken: a refused record must not leave one
     that nothing will ever reach. */
  e = shim_capture_refuse(t, "cudaEventRecord");
  if (e != cudaSuccess)
    return shim_fail(t, e);
  return shim_cuda_error(
      t, shim_event_record(t, ev, s ? s->dev : t->device, false));
}

cudaError_t cudaEventRecordWithFlags(cudaEvent_t event, cudaStream_t stream,
                                     unsigned int flags)
{
  if (flags & ~(unsigned)cudaEventRecordExternal)
    return cudaErrorInvalidValue;
  return cudaEventRecord(event, stream);
}

cudaError_t cudaEventQuery(cudaEvent_t event)
{
  struct shim_thread *t;
  struct shim_event *ev;
  cudaError_t e = event_begin(&t, event, &ev);
  int rc;

  if (e != cudaSuccess)
    return e;
  rc = shim_event_ask(t, ev, atomic_load(&ev->gen));
  if (rc == (int)cudaErrorNotReady)
    return cudaErrorNotReady;
  return shim_cuda_error(t, rc);
}

cudaError_t cudaEventSynchronize(cudaEvent_t event)
{
  struct shim_thread *t;
  struct shim_event *ev;
  cudaError_t e = event_begin(&t, event, &ev);
  int rc;

  if (e != cudaSuccess)
    return e;
  rc = shim_event_wait(t, ev, atomic_load(&ev->gen));
  rc = shim_managed_after(t, rc, t->call_ok);
  return shim_cuda_error(t, rc);
}

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start,
                                 cudaEvent_t stop)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);
  struct shim_event *a, *b;
  uint8_t args[16], out[8];
  uint64_t got = 0;
  int rc;

  if (e != cudaSuccess)
    return shim_fail(t, e);
  a = shim_event_of(start);
  b = shim_event_of(stop);
  if (!ms)
    return shim_fail(t, cudaErrorInvalidValue);
  if (!a || !b || (a->flags | b->flags) & cudaEventDisableTiming ||
      !atomic_load(&a->gen) || !atomic_load(&b->gen) ||
      atomic_load(&a->dev) != atomic_load(&b->dev))
    return shim_fail(t, cudaErrorInvalidResourceHandle);
  /* Both must have run: otherwise cudaErrorNotReady, as CUDA answers. */
  rc = event_query(t, a, atomic_load(&a->gen));
  if (rc == 0)
    rc = event_query(t, b, atomic_load(&b->gen));
  if (rc == (int)cudaErrorNotReady)
    return cudaErrorNotReady;
  if (rc == 0) {
    tr_put_u64(args, a->handle);
    tr_put_u64(args + 8, b->handle);
    rc = shim_call(t, atomic_load(&a->dev), TR_OP_EVENT_ELAPSED, args, 16,
                   NULL, 0, 1, out, sizeof(out), &got);
    if (rc == 0 && got != sizeof(out))
      rc = TR_ST_BAD_RECORD;
  }
  if (rc)
    return shim_cuda_error(t, rc);
  *ms = (float)((double)(int64_t)tr_get_u64(out) / 1e6);
  return cudaSuccess;
}

/* ---- the per-thread-default-stream twins (nvcc --default-stream
   per-thread); the headers declare them only under macros. ------------- */

cudaError_t cudaEventRecord_ptsz(cudaEvent_t event, cudaStream_t stream);
cudaError_t cudaEventRecordWithFlags_ptsz(cudaEvent_t event,
                                          cudaStream_t stream,
                                          unsigned int flags);

cudaError_t cudaEventRecord_ptsz(cudaEvent_t event, cudaStream_t stream)
{
  return cudaEventRecord(event, stream);
}

cudaError_t cudaEventRecordWithFlags_ptsz(cudaEvent_t event,
                                          cudaStream_t stream,
                                          unsigned int flags)
{
  return cudaEventRecordWithFlags(event, stream, flags);
}

/* ---- fork --------------------------------------------------------------- */

/* In a forked child every event starts over: its records were the parent
   session's.  shim_stream_forget calls this once it has made shim_reg_lock
   afresh. */
void shim_event_forget(void)
{
  for (struct shim_event *e = events; e; e = e->next) {
    atomic_store(&e->gen, 0);
    atomic_store(&e->dev, -1);
    atomic_store(&e->by, 0);
    free(e->waits.v); /* the parent's session's streams */
    e->waits = (struct shim_stream_points){0};
  }
}
