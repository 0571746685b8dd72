/*
 * shim_stream_int.h: what shim_stream.c (streams, the legacy stream, host
 * functions), shim_event.c (events, the generation protocol) and
 * shim_graph.c (stream capture and graphs) share, and with no other file.
 */
#ifndef SHIM_STREAM_INT_H
#define SHIM_STREAM_INT_H

#include <pthread.h>
#include <stdbool.h>

#include "shim.h"

#define EVENT_MAGIC 0x45564e54u  /* "EVNT" */
#define STREAM_MAGIC 0x5354524du /* "STRM" */

struct shim_stream;

/*
 * A stream's point: the end of the work t has queued so far on a stream
 * (a created one, or its legacy stream), kept to be waited for later by
 * any thread (cudaGraphExecDestroy lets the launches still queued run
 * first, cudaEventDestroy the waits).  It is the mark of the lane that
 * carried that work at its newest request id, not the stream's event,
 * which cudaStreamDestroy deletes on the agent: a mark stays reached
 * after its lane is gone.
 */
struct shim_stream_point {
  uint32_t lane_id;      /* the lane's id on the agent ... */
  uint64_t serial;       /* ... and its serial (ids are reused) */
  uint64_t gen;          /* its request id then; 0: nothing to wait for */
  unsigned forks;        /* shim_proc.forks then: a parent's lane is not
                            this session's, and is never waited for */
  int dev;
};

/*
 * The newest point of each stream something was queued on: a graph exec's
 * launches, the waits queued for an event.  Destroying the object makes
 * its destroy record wait for them all first, since it goes down another
 * lane than they did and would overtake them (CUDA lets that work run).
 * Under the owner's lock, which no code holds across a wait.
 */
struct shim_stream_points {
  struct shim_stream_point *v;
  unsigned n, cap;
};

/*
 * Host functions queued and returned so far on one stream or set of
 * streams, under the callback lock (shim_stream.c).  One thread runs them
 * in the order queued, so `done` counts up to `queued`: a wait for those
 * queued before it waits until `done` reaches `queued` as it was, not for
 * the count to fall to 0, which functions queued later could put off.
 */
struct shim_cb_count {
  uint64_t queued, done;
};

struct shim_event {
  uint32_t magic;
  unsigned flags;
  uint64_t handle;                /* names it to the agent */
  _Atomic uint64_t gen;           /* generations recorded so far */
  _Atomic int dev;                /* device of the newest record, -1 none */
  _Atomic uint64_t by;            /* serial of the lane that carried it */
  struct shim_stream_points waits; /* streams made to wait for it, under
                                      shim_reg_lock: cudaEventDestroy */
  struct shim_event *next;        /* registry */
};

struct shim_stream {
  uint32_t magic;
  unsigned flags;
  int priority;
  int dev;
  uint64_t id;
  struct shim_event ev; /* recorded after every piece of work */
  /* The newest generation of ev a legacy-stream lane was made to wait
     for, and that lane's serial (legacy_enter; under shim_reg_lock). */
  uint64_t lg_gen, lg_by;
  struct shim_cb_count cb_pending; /* its host functions (shim_stream.c) */
  struct shim_graph *capture; /* being captured into, or NULL */
  int capture_bad;            /* something uncapturable was queued */
  unsigned long long capture_id; /* of the capture in progress */
  struct shim_stream *next;
};

/*
 * The registry lock (defined in shim_stream.c): the list of streams there,
 * each stream's lg_gen and lg_by, and the list of events in shim_event.c.
 * One lock for both registries, as when they shared a file; no code holds
 * it across a wait or a call to the agent.
 */
extern pthread_mutex_t shim_reg_lock;

static inline int shim_stream_default(cudaStream_t s)
{
  return s == NULL || s == cudaStreamLegacy || s == cudaStreamPerThread;
}

/* A live stream of ours, checked against the registry, so a destroyed or
   made-up handle is an error (NULL), never a crash. */
struct shim_stream *shim_stream_lookup(cudaStream_t h);

/* A new handle for an event or an instantiated graph.  They share the
   client handle space of the session and start high, so they never meet
   module and function handles. */
uint64_t shim_new_handle(void);

/* ---- events and the generation protocol (shim_event.c) ---------------- */

/* The serial of the lane t's current API call uses: what e->by holds for
   a record made on that lane. */
static inline uint64_t shim_event_cur_serial(const struct shim_thread *t)
{
  return t->cur->serial;
}

/* A live event of ours (cudaEventCreate), checked against the registry,
   so a destroyed or made-up handle is an error (NULL), never a crash. */
struct shim_event *shim_event_of(cudaEvent_t h);

/*
 * A generation of a stream's event that no lane records when it is taken:
 * a host function's end, recorded by the callback thread once the function
 * has returned (host_func).  e->by then names no lane, so work queued on
 * the stream meanwhile, on any lane, waits for it on the device.
 */
#define SHIM_BY_HOST UINT64_MAX

/* Queue generation gen of e, taken earlier (SHIM_BY_HOST), on t's current
   lane for dev (no reply).  0 or an error. */
int shim_event_record_at(struct shim_thread *t, struct shim_event *e,
                         uint64_t gen, int dev);

/* Queue the next generation of e on t's current lane for dev (no reply);
   mark: a stream's or host function's, never timed.  0 or an error. */
int shim_event_record(struct shim_thread *t, struct shim_event *e, int dev,
                      bool mark);

/* Has generation gen of e run?  Asked on t's query lane: 0 yes,
   cudaErrorNotReady, or an error. */
int shim_event_ask(struct shim_thread *t, struct shim_event *e, uint64_t gen);

/* Wait on the host until generation gen of e has run: 0 or an error. */
int shim_event_wait(struct shim_thread *t, struct shim_event *e, uint64_t gen);

/* Make what t queues next on its lane for dev wait, on the agent, for
   generation gen of e (on the host for another device or a capture). */
int shim_event_wait_queued(struct shim_thread *t, struct shim_event *e,
                           uint64_t gen, int dev);

/* A synchronisation of s (shim_graph.c), which CUDA refuses while s is
   being captured: if it is, invalidate the capture and return
   cudaErrorStreamCaptureUnsupported; else cudaSuccess. */
cudaError_t shim_capture_sync(struct shim_stream *s);

/* p gets the end of the work t has just queued on dev (above), through
   its current lane. */
void shim_stream_point_get(struct shim_thread *t, int dev,
                           struct shim_stream_point *p);

/* Whether a and b name the same stream (their generations aside). */
int shim_stream_point_same(const struct shim_stream_point *a,
                           const struct shim_stream_point *b);

/* Make what t queues next on its current lane wait, on the agent, until p
   is reached: 0 or an error. */
int shim_stream_point_wait(struct shim_thread *t,
                           const struct shim_stream_point *p);

/* Room for one more point (lock held): 0 or -ENOMEM.  Made before the
   work is queued, so that work whose point could not be kept is never
   queued; shim_points_note grows again if a racing thread took it. */
int shim_points_grow(struct shim_stream_points *ps);

/* p, replacing an older point of the same stream (lock held).  Out of
   memory (a racing note took the reserved room), p goes unkept: a destroy
   could then overtake that work, as if no set were kept. */
void shim_points_note(struct shim_stream_points *ps,
                      const struct shim_stream_point *p);

/* What t queues next on its current lane waits for each point of *ps,
   which was taken out of its owner (lock released) and is emptied. */
void shim_points_wait(struct shim_thread *t, struct shim_stream_points *ps);

/* Fork child: every event's records start over (shim_stream_forget, after
   it made shim_reg_lock afresh). */
void shim_event_forget(void);

#endif /* SHIM_STREAM_INT_H */
