/*
 * trace.h: where a call's time goes, hop by hop (a measuring tool, off
 * unless TREMOTE_TRACE_DIR names a directory).
 *
 * The shim, the broker and the agent each note when a record passes one
 * of their hops (tr_trace), keyed by its lane (the broker's lane id, which
 * the agent's tremote-lane header and the shim's lane segment carry),
 * opcode and request id, with
 * CLOCK_MONOTONIC, which all processes of a host share.  The notes stay
 * in memory (a fixed array: nothing is allocated or written while calls
 * run) and each process writes its own to DIR/trace.<pid> when it exits,
 * a line "hop lane opcode request_id ns" each.  tests/gpu/trace_hops.py
 * joins them.  Off, a hop costs one load and a branch.  Threads still
 * noting while the process exits may leave their last note out.
 */
#ifndef TR_TRACE_H
#define TR_TRACE_H

#include <stdint.h>

/* The hops, in the order a call passes them. */
enum tr_hop {
  TR_HOP_SHIM_SEND = 1, /* the shim queues the request */
  TR_HOP_BRK_REQ,       /* the broker takes it from the lane's ring */
  TR_HOP_AGT_REQ,       /* the agent's network thread has it whole */
  TR_HOP_AGT_EXEC,      /* an execution thread starts it */
  TR_HOP_AGT_DONE,      /* its reply is queued to be sent */
  TR_HOP_AGT_SENT,      /* the reply's last byte went to the socket */
  TR_HOP_BRK_REP,       /* the broker has the reply whole */
  TR_HOP_BRK_RING,      /* the broker put it in the lane's reply ring */
  TR_HOP_SHIM_RECV,     /* the shim's caller has it */
};

extern int tr_trace_on;

void tr_trace_note(enum tr_hop hop, uint32_t lane, uint16_t opcode,
                   uint64_t request_id);

static inline void tr_trace(enum tr_hop hop, uint32_t lane, uint16_t opcode,
                            uint64_t request_id)
{
  if (__builtin_expect(tr_trace_on, 0))
    tr_trace_note(hop, lane, opcode, request_id);
}

#endif /* TR_TRACE_H */
