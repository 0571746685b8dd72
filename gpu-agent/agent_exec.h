/*
 * agent_exec.h: the execution pool.
 *
 * A fixed set of threads runs lanes that have work.  One lane's records
 * run strictly in order, on one thread at a time; different lanes run
 * concurrently.  A lane that keeps receiving work yields its thread after a
 * batch so that it cannot starve the others.  None of this ever blocks the
 * network thread: the only place an execution thread waits is for room in
 * its lane's outbound queue (agt_lane_push_out).
 */
#ifndef AGT_EXEC_H
#define AGT_EXEC_H

#include "agent_session.h"

struct agt_exec;

/*
 * Start nthreads (>= 1) threads; an idle one polls for work spin_us before
 * it sleeps (0: never).  Returns 0 and *out, or -errno.
 */
int agt_exec_new(unsigned nthreads, unsigned spin_us, struct agt_exec **out);

/*
 * Make sure lane l runs if it has queued records or an ended request body
 * to conclude: puts it on the run queue unless it is queued, running, or
 * aborted.  Called by the network thread after agt_lane_push_in or
 * agt_lane_end_in.
 */
void agt_exec_submit(struct agt_exec *x, struct agt_lane *l);

/*
 * Run record r of lane l here, on the network thread, instead of queueing
 * it, when that changes nothing but the time it takes: r is an
 * EVENT_QUERY (a read of the session's events: every stream and event
 * synchronisation polls with it) and l is idle (nothing queued, running
 * or parked, room for the reply).  Saves the two thread wake-ups of a
 * round trip through an execution thread.  Returns true if it ran r (and
 * freed it); false leaves r to the caller to queue.
 */
bool agt_exec_inline(struct agt_lane *l, struct agt_rec *r);

/*
 * Stop: let the threads finish the run queue (callers abort every lane
 * first, so this is quick), join them and free the pool.
 */
void agt_exec_free(struct agt_exec *x);

/*
 * Execute one request record of lane l and queue its reply (agent_ops.c).
 * Applies the reply rules of PROTOCOL.md §1: a WANT_REPLY record gets
 * exactly one final reply; a failing record without WANT_REPLY becomes the
 * lane's deferred error unless one is pending, and the deferred error is
 * reported in the next successful final reply, then cleared.  A direct
 * record (agent_session.h) is unpinned here; r is still the caller's.
 */
void agt_ops_execute(struct agt_lane *l, struct agt_rec *r);

/*
 * Consecutive kernel launches of a lane that nobody waits for go to the
 * backend together (backend.h, launch_many), at most this many at once,
 * with the marks between them (agt_ops_batch_mark): a stream's launches
 * come each followed by the stream's mark.
 */
#define AGT_LAUNCH_BATCH 64
#define AGT_BATCH_MAX (2 * AGT_LAUNCH_BATCH) /* records, marks included */

/*
 * Whether r may go with the launches next to it: -1 if not (not a launch,
 * a reply is wanted, or the backend launches one at a time), else a key;
 * launches with the same key go together.  r is complete (queued).
 */
int agt_ops_batch_key(const struct agt_session *s, const struct agt_rec *r);

/*
 * Whether r, an EVENT_RECORD of a mark (TR_EVENT_F_MARK: waited for, never
 * timed), may go in a batch of launches: it is then recorded once every
 * launch of the batch has run.
 */
bool agt_ops_batch_mark(const struct agt_rec *r);

/*
 * Execute rs[0..n), n <= AGT_BATCH_MAX records: at most AGT_LAUNCH_BATCH
 * launches with one batch key and marks among them, as agt_ops_execute
 * would one after another, except that the backend waits for the device
 * once and the marks are recorded after the last launch.  The records are
 * still the caller's.
 */
void agt_ops_execute_launches(struct agt_lane *l, struct agt_rec *const *rs,
                              unsigned n);

#endif /* AGT_EXEC_H */
