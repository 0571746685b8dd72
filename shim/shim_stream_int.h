/*
 * shim_stream_int.h: what shim_stream.c (streams, events, the legacy
 * stream) shares with shim_graph.c (stream capture and graphs), and with
 * no other file.
 */
#ifndef SHIM_STREAM_INT_H
#define SHIM_STREAM_INT_H

#include "shim.h"

#define EVENT_MAGIC 0x45564e54u  /* "EVNT" */
#define STREAM_MAGIC 0x5354524du /* "STRM" */

struct shim_event {
  uint32_t magic;
  unsigned flags;
  uint64_t handle;                /* names it to the agent */
  _Atomic uint64_t gen;           /* generations recorded so far */
  _Atomic int dev;                /* device of the newest record, -1 none */
  _Atomic uint64_t by;            /* serial of the lane that carried it */
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
     for, and that lane's serial (legacy_enter; under reg_lock). */
  uint64_t lg_gen, lg_by;
  unsigned cb_pending;  /* host functions not yet run, under cb_lock */
  struct shim_graph *capture; /* being captured into, or NULL */
  int capture_bad;            /* something uncapturable was queued */
  unsigned long long capture_id; /* of the capture in progress */
  struct shim_stream *next;
};

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

#endif /* SHIM_STREAM_INT_H */
