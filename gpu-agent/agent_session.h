/*
 * agent_session.h: sessions, lanes, and the inbox that joins the network
 * thread and the execution threads.
 *
 * A session (POST /v1/session) is one client program's context on the
 * device: its memory, its module and function handles.  A lane (POST
 * /v1/lane) is one ordered stream of records within a session, normally one
 * per application thread.  The network thread decodes a lane's request
 * records into its inbound queue; an execution thread runs them in order
 * and appends reply records to its outbound queue; the network thread
 * hands those to nghttp2.
 *
 *   network thread                    execution thread
 *   ──────────────                    ────────────────
 *   decode  ──► lane.in (records) ──► run, one lane on one thread at a time
 *   send    ◄── lane.out (bytes)  ◄── reply (waits while out is full)
 *           ◄── inbox note        ◄── "replies ready / window credit"
 *
 * Lifetimes are reference counts, because both sides hold on:
 *   session: the registry (until its stream ends), each lane.  When the
 *            last reference goes, whoever dropped it frees the device
 *            objects (that may take a while: it is never done with a lock
 *            held) and posts the session's note; the network thread then
 *            ends the /v1/session response and frees the struct.
 *   lane:    its stream (network thread), the run queue while it is queued
 *            or running, the inbox while it is posted.
 */
#ifndef AGT_SESSION_H
#define AGT_SESSION_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "agent_hmap.h"
#include "agent_module.h"
#include "backends/backend.h"
#include "tremote/proto.h"

/* ---- inbox: execution threads -> network thread --------------------- */

enum agt_note_kind {
  AGT_NOTE_LANE,    /* replies to send, bytes to credit, or the lane ended */
  AGT_NOTE_SESSION, /* the session's device objects are freed */
};

/* Embedded in what it announces.  Posted at most once at a time. */
struct agt_note {
  struct agt_note *next;
  enum agt_note_kind kind;
  bool posted; /* under the inbox lock */
};

/*
 * A list of notes plus an eventfd that is readable while the list is not
 * empty.  Any thread posts; the network thread takes.
 */
struct agt_inbox {
  pthread_mutex_t mu;
  struct agt_note *head, **tail;
  atomic_bool nonempty; /* head != NULL, readable without the lock */
  int efd;
};

/* Returns 0 or -errno (eventfd). */
int agt_inbox_init(struct agt_inbox *ib);
void agt_inbox_release(struct agt_inbox *ib);

/*
 * Append n unless it is already posted.  Returns true if it was appended
 * (the caller's reference passes to the inbox), false if it was already
 * there (the caller keeps its reference).
 */
bool agt_inbox_post(struct agt_inbox *ib, struct agt_note *n);

/*
 * Take every posted note (oldest first) and clear the eventfd.  NULL if
 * there is none.  The notes stay marked as posted until agt_inbox_done:
 * the consumer reads n->next first, then calls agt_inbox_done(n), because
 * from then on n may be posted again (which rewrites n->next).
 */
struct agt_note *agt_inbox_take(struct agt_inbox *ib);
void agt_inbox_done(struct agt_inbox *ib, struct agt_note *n);

/* Whether notes wait (a hint, without the lock: the eventfd is the truth). */
static inline bool agt_inbox_pending(struct agt_inbox *ib)
{
  return atomic_load_explicit(&ib->nonempty, memory_order_relaxed);
}

/* ---- closer: session teardowns, off the network thread ---------------- */

/*
 * A session's teardown can take long: a GPU context's end (90 ms on an
 * H200), a worker process waited for (seconds if it hangs).  The last
 * reference often goes on the network thread, where that stalled every
 * other session, so a few threads started with the server do it instead
 * (started once: a thread made later may take address space that a
 * session's window needs, as TSan builds' small layout showed).
 */
#define AGT_CLOSERS 4

struct agt_session;

struct agt_closer {
  pthread_mutex_t mu;
  pthread_cond_t work; /* a session queued, or stop */
  pthread_cond_t idle; /* pending reached 0 */
  struct agt_session *head, **tail; /* linked by close_next */
  unsigned pending;                 /* queued or being torn down */
  bool stop;
  unsigned nthreads;
  pthread_t threads[AGT_CLOSERS];
};

/* Start the threads.  0 or -errno (then nothing is left to release). */
int agt_closer_init(struct agt_closer *cl);
/* Wait until no teardown is queued or running: each has posted its
   session's note. */
void agt_closer_wait_idle(struct agt_closer *cl);
/* Finish what is queued, stop and join the threads. */
void agt_closer_release(struct agt_closer *cl);

/* ---- sessions ------------------------------------------------------- */

/* A module handle of a session. */
struct agt_smod {
  struct agt_module *m; /* cache entry, referenced */
  void *bmod;           /* backend module */
  unsigned refs;        /* modules map + each function + running calls;
                           under the session lock */
};

/* A function handle of a session. */
struct agt_sfunc {
  struct agt_smod *mod; /* referenced */
  void *bfn;            /* backend function, lives as long as mod */
};

struct agt_lane;

struct agt_session {
  uint64_t id;
  struct agt_backend *be; /* borrowed */
  struct agt_bctx *ctx;   /* owned: the session's device context */
  struct agt_modcache *cache;
  struct agt_inbox *inbox;
  struct agt_closer *closer;
  struct agt_session *close_next; /* in the closer's queue */
  atomic_uint refs;
  struct agt_note note;

  pthread_mutex_t mu; /* guards the handle maps and uploads */
  struct agt_hmap modules; /* client handle -> struct agt_smod */
  struct agt_hmap funcs;   /* client handle -> struct agt_sfunc */
  struct agt_hmap events;  /* client handle -> struct agt_event */
  struct agt_hmap graphs;  /* client handle -> struct agt_graph */
  struct agt_upload *uploads;
  /* Device memory the session allocated (MALLOC), against its quota. */
  struct agt_hmap allocs;  /* device pointer -> size (as a pointer) */
  uint64_t mem_used;
  uint64_t quota;          /* bytes; 0 = none (set once, at creation) */
  uint64_t caps;           /* TR_CAP_* its broker agreed (set once) */

  /*
   * A kernel fault (cudaErrorIllegalAddress and its kind) corrupts the
   * context on a GPU: every later call of the session fails with it.  Set
   * once, never cleared; 0 while the session is healthy.
   */
  atomic_uint sticky;

  /* Whether the backend context takes calls yet (ctx_when_ready): until
     then the session's lanes park on ready_waiters (under mu) instead of
     holding an execution thread. */
  atomic_bool be_ready;
  struct agt_waiter *ready_waiters;

  /* Device output (printf, fault reports) waiting for the next
     SYNCHRONIZE, as PROTOCOL.md's output records. */
  pthread_mutex_t out_mu;
  uint8_t *out;
  size_t out_len, out_cap;
  uint64_t out_dropped; /* bytes lost to AGT_OUTPUT_MAX since last told */

  /* Network thread only. */
  struct agt_lane *lanes; /* open lanes, linked by sess_next */
  bool closing;           /* out of the registry; lanes were aborted */
  void *st;               /* the /v1/session stream, or NULL */
};

/*
 * Create session `id` with its device context in [va_base, va_base +
 * va_size).  One reference, the caller's.  Returns 0; or the error of the
 * backend's ctx_open (-EINVAL, -EEXIST) with *why set; -ENOMEM.
 */
int agt_session_new(uint64_t id, struct agt_backend *be,
                     struct agt_modcache *cache, struct agt_inbox *inbox,
                     struct agt_closer *closer, uint64_t va_base,
                     uint64_t va_size,
                     struct agt_session **out, const char **why);

void agt_session_get(struct agt_session *s);

/*
 * Drop a reference.  The last one frees every device object of the
 * session (memory, modules, functions, uploads), then posts the session's
 * note; the struct lives until agt_session_free.  That teardown runs on
 * the closer's threads (see there).
 */
void agt_session_put(struct agt_session *s);

/*
 * Device output of the session: CUDA's printf FIFO holds 1 MiB by default
 * (cudaLimitPrintfFifoSize); what does not fit is dropped and counted, and
 * the program is told how much at the next synchronisation.
 */
#define AGT_OUTPUT_MAX (1u << 20)

/*
 * An event as the device sees it: the newest generation of it whose
 * EVENT_RECORD has run, and when (the agent's monotonic clock: elapsed
 * times are the remote device's).  The client numbers the records of one
 * event 1, 2, 3 ...; a wait or query names the generation it means.
 */
struct agt_event {
  uint64_t done_gen;
  uint64_t ts_ns;
  struct agt_waiter *waiters; /* lanes parked on an EVENT_WAIT for it */
  /* A lane mark (handle with TR_LANE_MARK_BIT): done_gen is unused; the
     lane's execution thread stores the request id of each record it ran
     in mark_done without a lock, and takes s->mu only while mark_waiters
     (the waiters on the list) is non-zero.  Both are sequentially
     consistent: a waiter counts itself before it reads mark_done, the
     lane stores mark_done before it reads mark_waiters, so one of them
     sees the other. */
  bool mark;
  bool mark_ended; /* its lane is gone: every wait on it is over */
  _Atomic uint64_t mark_done;
  atomic_uint mark_waiters;
};

/* A lane parked until generation gen of an event has run (referenced). */
struct agt_waiter {
  struct agt_waiter *next;
  struct agt_lane *lane;
  uint64_t gen;
};

/*
 * An EVENT_WAIT for generation gen of event h at the head of l: true when
 * that generation has run (the record then executes as a no-op); else l is
 * parked, off the run queue, and false: the EVENT_RECORD that reaches the
 * generation (or the event's destruction, or the lane's abort) puts it
 * back (agt_waiters_wake).  Called by the lane's execution thread, with no
 * lock held.
 */
bool agt_event_wait_ready(struct agt_lane *l, uint64_t h, uint64_t gen);

/*
 * Before l runs a record: true when its session's backend context takes
 * calls; else l is parked, off the run queue, and false, until the
 * backend says the context is ready (ctx_when_ready), which puts it back.
 * Called by the lane's execution thread, with no lock held.
 */
bool agt_session_ready_or_park(struct agt_lane *l);

/* Take the waiters of e that gen satisfies (all when gen is UINT64_MAX);
   s->mu held.  Returns them, for agt_waiters_wake() once it is released. */
struct agt_waiter *agt_event_take_waiters(struct agt_event *e, uint64_t gen);
void agt_waiters_wake(struct agt_waiter *w);

/* Whether generation gen of e has run (s->mu held). */
bool agt_event_reached(const struct agt_event *e, uint64_t gen);

/*
 * Lane l has run its record with request id rid (its execution thread,
 * no lock held): lanes waiting on l's mark up to rid go on.
 */
void agt_lane_mark_done(struct agt_lane *l, uint64_t rid);

/* A graph: the records of a captured stream, replayed by GRAPH_LAUNCH.
   Immutable once complete. */
struct agt_graph {
  uint8_t *buf;
  uint64_t len, total;
  bool complete;
  unsigned refs; /* under the session lock: a launch holds one */
};

struct agt_out;

/* Queue n bytes for the program's fd (1 stdout, 2 stderr).  Thread-safe. */
void agt_session_output(struct agt_session *s, int fd, const char *text,
                        size_t n);

/* True if output is waiting. */
bool agt_session_has_output(struct agt_session *s);

/*
 * Move up to max bytes of whole output records (a record longer than max
 * is split) into a new reply payload; *out NULL and 0 when none is
 * waiting.  Returns 0 or -ENOMEM.
 */
int agt_session_take_output(struct agt_session *s, uint32_t max,
                            struct agt_out **out);

/* Free the struct after its note was taken (network thread). */
void agt_session_free(struct agt_session *s);

/* Drop a reference on a module handle (session lock held).  Returns true
   when it was the last: the caller then calls agt_smod_free unlocked. */
bool agt_smod_put_locked(struct agt_smod *sm);
void agt_smod_free(struct agt_session *s, struct agt_smod *sm);

/* ---- lanes ---------------------------------------------------------- */

/*
 * One decoded request record, queued on a lane.  Owned by the queue, then
 * by the thread that popped it; freed only with agt_rec_free.
 *
 * A direct record is a large MEMCPY_H2D whose data the network thread
 * received straight into device memory (agent_session.c, rec_split):
 * payload holds only its 16 argument bytes (dst, len), and until the copy
 * is accounted for, `pin` keeps the destination allocation alive.
 *
 * A staged record is a large MEMCPY_H2D whose data went into the backend's
 * staging memory (stage_get) instead: payload holds its 16 argument bytes,
 * the data is at `staged`, and `stage` is given back with the record.
 */
struct agt_rec {
  struct agt_rec *next;
  struct tr_hdr hdr;
  uint32_t wire_len; /* bytes it took on the stream: flow-control credit */
  uint32_t gen;      /* its lane's stream generation when it came in */
  bool direct;       /* the copy is done; payload is the 16 argument bytes */
  uint8_t cls;       /* AGT_REC_*: how it counts as pending on its lane */
  void *pin;         /* direct and not yet unpinned: the backend's pin */
  uint64_t lo, hi;   /* AGT_REC_H2D: the destination range */
  void *stage;       /* staged: the backend's token (stage_put) */
  uint8_t *staged;   /* staged: the copy's data */
  uint8_t payload[]; /* hdr.payload_len bytes (16 if direct or staged) */
};

/* agt_rec.cls: records count as pending from their first bytes until
   agt_rec_free (agent_session.c, direct_target). */
#define AGT_REC_H2D 1
#define AGT_REC_OTHER 2

/* Records of at least this many data bytes are received directly. */
#define AGT_DIRECT_MIN (64u << 10)

/*
 * Undo a direct record's pin (no-op if it has none or was unpinned): after
 * this the device allocation may go.  Any thread that owns r.
 */
void agt_rec_unpin(struct agt_lane *l, struct agt_rec *r);

/* Free a record of l (NULL is a no-op), unpinning it first. */
void agt_rec_free(struct agt_lane *l, struct agt_rec *r);

/*
 * A run of reply bytes (one packed record).  Owned by the queue.  Its
 * header is in data; its payload too, or, for a run made by
 * agt_out_new_ref, at ext: memory the run only refers to, which its maker
 * keeps valid and unchanged until the run has left the queue
 * (agt_lane_wait_sent), or hands to the run with a release function
 * that agt_out_free calls (staging memory: release, release_arg).
 */
struct agt_out {
  struct agt_out *next;
  uint32_t len; /* TR_HDR_SIZE + payload */
  uint32_t off; /* bytes already handed to nghttp2 */
  const uint8_t *ext; /* the payload, when not in data */
  void (*release)(void *arg); /* called when the run is freed, or NULL */
  void *release_arg;
  uint8_t data[];
};

struct agt_lane {
  struct agt_session *sess; /* referenced */
  uint64_t id;              /* tremote-lane header, for logs */
  atomic_uint refs;
  struct agt_note note;

  /*
   * Shared state, under mu.  `space` is signalled when out_bytes drops
   * below AGT_LANE_OUT_MAX or the lane is aborted.
   */
  pthread_mutex_t mu;
  pthread_cond_t space;
  struct agt_rec *in_head, **in_tail;
  uint64_t in_bytes;
  struct agt_out *out_head, **out_tail;
  uint64_t out_bytes;
  uint64_t done_bytes; /* wire bytes executed, not yet credited */
  unsigned space_waiters;
  unsigned drain_waiters; /* agt_lane_wait_sent callers */
  bool in_eof;   /* the request body ended: no more records */
  bool out_eof;  /* every record ran: end the response after out */
  bool aborted;  /* stream or session gone: drop everything */
  bool queued;   /* on the run queue or running (agent_exec.c) */
  bool parked;   /* waiting at an EVENT_WAIT: not to be queued */
  bool released; /* woken from it: the EVENT_WAIT at the head is done */
  uint64_t wait_event; /* the event it waits for (under sess->mu), or 0 */
  bool wait_ready; /* parked until the session's context is ready (under
                      sess->mu) */
  struct agt_event *mark; /* its lane mark, in sess->events (set when
                             created; NULL without memory) */
  struct agt_exec *exec; /* the pool it runs on (set when opened) */
  int priority;          /* tremote-priority: 0 .. TR_PRIORITY_GREATEST,
                            lower runs first (agent_exec.c) */
  /* Records being received, queued or executing, by class, and the
     bounds of the pending host-to-device destinations (direct_target). */
  unsigned pend_h2d, pend_other;
  uint64_t pend_lo, pend_hi;
  uint32_t gen; /* bumped when the lane's stream moves (under mu): the
                   credit of records that came in before is the old
                   connection's, given back at the move */
  struct agt_lane *run_next; /* run queue link, under the pool's lock */
  uint64_t queued_ns;        /* when it was put on it, the same */

  /* The execution thread running the lane. */
  uint32_t deferred; /* first error of a no-reply record, not yet told */

  /* Network thread only. */
  void *st;                     /* its stream, NULL once closed */
  struct agt_lane *sess_next;   /* session's lane list */
  uint64_t recv_bytes;          /* DATA bytes received */
  uint64_t credited;            /* of which consumed to nghttp2 */
  struct tr_decoder dec;         /* decodes straight into `cur` */
  struct agt_rec *cur;          /* the record being received, or NULL */
  uint32_t skip;                /* payload bytes of an unknown opcode left
                                   to skip */
  struct tr_hdr skip_hdr;
};

/*
 * Create a lane of s (takes a session reference).  One reference, the
 * caller's.  Returns 0 or -ENOMEM.
 */
int agt_lane_new(struct agt_session *s, uint64_t id, struct agt_lane **out);

void agt_lane_get(struct agt_lane *l);
void agt_lane_put(struct agt_lane *l);

/* Queue a record (network thread).  Ownership passes to the lane; a record
   for an aborted lane is freed at once. */
void agt_lane_push_in(struct agt_lane *l, struct agt_rec *r);

/*
 * (Re)start the lane's record decoder.  Payloads are received straight into
 * a new struct agt_rec (l->cur), so a bulk byte is copied once on its way
 * from nghttp2 to the execution thread; a large MEMCPY_H2D on an idle lane
 * is received straight into device memory instead (a direct record), so
 * its bytes are copied once on their way from nghttp2 to the device.
 * Network thread only.
 */
int agt_lane_decoder_reset(struct agt_lane *l);

/* Take the record the decoder just completed (l->cur). */
struct agt_rec *agt_lane_take_rec(struct agt_lane *l);

/* Mark the request body as ended (network thread). */
void agt_lane_end_in(struct agt_lane *l);

/*
 * Abort: drop queued records and any replies not yet sent, wake a thread
 * waiting for space, and make every later push fail.  Idempotent.
 */
void agt_lane_abort(struct agt_lane *l);

/* Whether the lane was aborted (for long operations to stop early). */
bool agt_lane_aborted(struct agt_lane *l);

/*
 * Allocate a reply record with room for payload_len bytes of payload after
 * the header.  NULL on -ENOMEM.
 */
struct agt_out *agt_out_new(uint32_t payload_len);
/* A reply record whose payload_len bytes of payload stay at payload. */
struct agt_out *agt_out_new_ref(const void *payload, uint32_t payload_len);
/* Free a run (NULL is a no-op), calling its release function first. */
void agt_out_free(struct agt_out *o);

/*
 * Wait until nothing is left in l's outbound queue (every run was written
 * to the socket or copied aside for it), or l is aborted (its runs are
 * freed unsent).  After it, memory that runs referred to may change.
 */
void agt_lane_wait_sent(struct agt_lane *l);
static inline uint8_t *agt_out_payload(struct agt_out *o)
{
  return o->data + TR_HDR_SIZE;
}

/*
 * Pack h (payload_len must match) into o and append o to the outbound
 * queue, first waiting while the queue holds AGT_LANE_OUT_MAX bytes or
 * more.  Then tells the network thread.  Returns 0, or -ECANCELED if the
 * lane is aborted (o is freed).
 */
int agt_lane_push_out(struct agt_lane *l, struct agt_out *o,
                      const struct tr_hdr *h);

/*
 * Reply bytes leave without being copied into nghttp2's frame buffer: the
 * network thread first decides how many bytes the next DATA frame carries
 * (agt_lane_peek_out, from nghttp2's read callback), then writes them
 * straight from the queued runs (agt_lane_send_out, from nghttp2's
 * send-data callback).  Only the network thread takes bytes off the queue,
 * so what was peeked stays queued until it is sent, unless the lane is
 * aborted in between.
 */

/*
 * The length of the lane's next DATA frame (network thread): the queued
 * reply bytes from the front, at most len of them and in at most max_runs
 * pieces of contiguous memory (a run is one, or two when its payload is
 * elsewhere).  Sets *eof when the response is complete
 * after these bytes.  Returns 0 with !*eof when nothing is queued yet.
 * Nothing is taken off the queue.
 */
size_t agt_lane_peek_out(struct agt_lane *l, size_t len, unsigned max_runs,
                         bool *eof);

/*
 * Writes a DATA frame whose payload agt_lane_send_out gathered in
 * iov[0..iovcnt); called with the lane lock held, so it must not block or
 * touch the lane.  The array has room for one more entry after iovcnt.
 * Returns 0 when every byte was taken (written, or copied somewhere to be
 * written later), -EAGAIN when none was, or another -errno.
 */
typedef int agt_out_emit_fn(void *arg, struct iovec *iov, int iovcnt);

/*
 * Send the first len queued reply bytes without copying them (network
 * thread): under the lane lock, point iov[first..] at them (the caller
 * fills iov[0..first), e.g. with a frame header, and passes cap, the
 * number of entries emit may see), call emit, and if it returns 0 drop the
 * bytes from the queue, waking a thread that waits for space.  The runs
 * that were sent completely are freed.
 *
 * Returns emit's result; -ECANCELED, without calling emit, when fewer than
 * len bytes are queued (the lane was aborted); -EOVERFLOW when they span
 * more than cap - first runs (more than agt_lane_peek_out allowed).
 */
int agt_lane_send_out(struct agt_lane *l, size_t len, struct iovec *iov,
                      int first, int cap, agt_out_emit_fn *emit, void *arg);

/*
 * Tell the network thread about this lane (replies, credit, end): posts the
 * lane's note, taking a reference for the inbox.  Any thread.
 */
void agt_lane_notify(struct agt_lane *l);

#endif /* AGT_SESSION_H */
