/*
 * shim_graph.c: stream capture and graphs.
 */
#include <stdlib.h>
#include <string.h>

#include "shim_stream_int.h"

#define GRAPH_MAGIC 0x47525048u /* "GRPH" */
#define EXEC_MAGIC 0x47455845u  /* "GEXE" */

/* A captured graph: the records the stream's work would have sent. */
struct shim_graph {
  uint32_t magic;
  int dev;
  uint8_t *buf;
  size_t len, cap;
  unsigned records;
};

/* An instantiated graph: uploaded to its device under handle. */
struct shim_graph_exec {
  uint32_t magic;
  int dev;
  uint64_t handle;
  size_t len;
  /* Where its newest launch on each stream it was launched on ends, under
     graph_lock: destroying it queues waits for them before GRAPH_DESTROY,
     which would otherwise overtake a launch queued on another lane. */
  struct shim_stream_points launched;
};

/* ---- stream capture and graphs ------------------------------------------ */

/*
 * Capturing a stream collects the records its work would send (launches,
 * memsets, device-to-device copies) into a graph instead of sending them;
 * instantiating uploads the graph to the device once (GRAPH_PUT, by
 * chunks, one round trip); each cudaGraphLaunch is then one record
 * (GRAPH_LAUNCH) that the agent expands.  Work a graph cannot hold here —
 * copies from or to host memory (a GPU reads them when the graph runs,
 * which a record captured now could not), waits for replies, events,
 * frees — invalidates the capture, as CUDA invalidates a capture on an
 * unsupported call, with one stderr line saying what it was.
 */
int shim_capture_record(struct shim_thread *t, uint16_t op, const void *args,
                        uint32_t alen, const void *data, uint32_t dlen,
                        int want_reply)
{
  struct shim_stream *s = t->capture;
  struct shim_graph *g = s->capture;
  struct tr_hdr h;
  size_t need = TR_HDR_SIZE + (size_t)alen + dlen;

  if (want_reply || (op != TR_OP_LAUNCH && op != TR_OP_MEMSET &&
                     op != TR_OP_MEMCPY_D2D)) {
    shim_warn_once("capture", "a stream capture met %s, which a graph "
                              "cannot hold here (only kernels, memsets and "
                              "device-to-device copies are captured); the "
                              "capture is invalidated",
                   tr_op_name(op) ? tr_op_name(op) : "an unknown call");
    s->capture_bad = 1;
    return cudaErrorStreamCaptureUnsupported;
  }
  if (g->len + need > TR_GRAPH_MAX) {
    s->capture_bad = 1;
    return cudaErrorMemoryAllocation;
  }
  if (g->len + need > g->cap) {
    size_t ncap = g->cap ? g->cap : 4096;
    uint8_t *nb;

    while (ncap < g->len + need)
      ncap *= 2;
    nb = realloc(g->buf, ncap);
    if (!nb) {
      s->capture_bad = 1;
      return cudaErrorMemoryAllocation;
    }
    g->buf = nb;
    g->cap = ncap;
  }
  tr_hdr_init(&h, op, 0, 0, alen + dlen);
  tr_hdr_pack(&h, g->buf + g->len);
  if (alen)
    memcpy(g->buf + g->len + TR_HDR_SIZE, args, alen);
  if (dlen)
    memcpy(g->buf + g->len + TR_HDR_SIZE + alen, data, dlen);
  g->len += need;
  g->records++;
  return 0;
}

cudaError_t shim_capture_refuse(struct shim_thread *t, const char *what)
{
  struct shim_stream *s = t->capture;

  if (!s)
    return cudaSuccess;
  t->capture = NULL;
  s->capture_bad = 1;
  shim_warn_once("capture2", "a stream capture met %s, which a graph "
                             "cannot hold here; the capture is invalidated",
                 what);
  return cudaErrorStreamCaptureUnsupported;
}

static pthread_mutex_t graph_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long long capture_ids; /* the newest capture's, graph_lock */

cudaError_t shim_capture_sync(struct shim_stream *s)
{
  cudaError_t e = cudaSuccess;

  pthread_mutex_lock(&graph_lock);
  if (s->capture) {
    s->capture_bad = 1; /* EndCapture: cudaErrorStreamCaptureInvalidated */
    e = cudaErrorStreamCaptureUnsupported;
  }
  pthread_mutex_unlock(&graph_lock);
  return e;
}

void shim_graph_forget(void)
{
  pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;

  graph_lock = fresh; /* fork child: one thread, the lock may be stale */
}

cudaError_t cudaStreamBeginCapture(cudaStream_t stream,
                                   enum cudaStreamCaptureMode mode)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);
  struct shim_stream *s;
  struct shim_graph *g;

  if (e != cudaSuccess)
    return shim_fail(t, e);
  if (shim_stream_default(stream))
    return shim_fail(t, cudaErrorStreamCaptureUnsupported);
  s = shim_stream_lookup(stream);
  if (!s)
    return shim_fail(t, cudaErrorInvalidResourceHandle);
  if ((unsigned)mode > cudaStreamCaptureModeRelaxed)
    return shim_fail(t, cudaErrorInvalidValue);
  g = calloc(1, sizeof(*g));
  if (!g)
    return shim_fail(t, cudaErrorMemoryAllocation);
  g->magic = GRAPH_MAGIC;
  g->dev = s->dev;
  pthread_mutex_lock(&graph_lock);
  if (s->capture) {
    pthread_mutex_unlock(&graph_lock);
    free(g);
    return shim_fail(t, cudaErrorIllegalState);
  }
  s->capture = g;
  s->capture_bad = 0;
  s->capture_id = ++capture_ids;
  pthread_mutex_unlock(&graph_lock);
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);
  struct shim_stream *s;
  struct shim_graph *g;
  int bad;

  if (e != cudaSuccess)
    return shim_fail(t, e);
  s = shim_stream_default(stream) ? NULL : shim_stream_lookup(stream);
  if (!s || !graph)
    return shim_fail(t, s ? cudaErrorInvalidValue : cudaErrorIllegalState);
  pthread_mutex_lock(&graph_lock);
  g = s->capture;
  bad = s->capture_bad;
  s->capture = NULL;
  pthread_mutex_unlock(&graph_lock);
  if (!g)
    return shim_fail(t, cudaErrorIllegalState);
  if (bad) {
    free(g->buf);
    free(g);
    *graph = NULL;
    return shim_fail(t, cudaErrorStreamCaptureInvalidated);
  }
  *graph = (cudaGraph_t)g;
  return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t stream,
                                  enum cudaStreamCaptureStatus *status)
{
  struct shim_stream *s = shim_stream_default(stream) ? NULL : shim_stream_lookup(stream);

  if (!status)
    return cudaErrorInvalidValue;
  if (!shim_stream_default(stream) && !s)
    return cudaErrorInvalidResourceHandle;
  *status = s && s->capture ? (s->capture_bad ? cudaStreamCaptureStatusInvalidated
                                              : cudaStreamCaptureStatusActive)
                            : cudaStreamCaptureStatusNone;
  return cudaSuccess;
}

/*
 * What a library asks before it queues work (cuBLAS, PyTorch): is the
 * stream capturing, which capture, into which graph.  The graph's nodes
 * are not exposed (captured work is kept as the records it would send),
 * so the set of nodes the next work would depend on is empty.
 */
cudaError_t shim_capture_info(cudaStream_t stream,
                              enum cudaStreamCaptureStatus *status,
                              unsigned long long *id, cudaGraph_t *graph,
                              const cudaGraphNode_t **deps,
                              const cudaGraphEdgeData **edges, size_t *ndeps)
{
  struct shim_stream *s = shim_stream_default(stream) ? NULL : shim_stream_lookup(stream);

  if (!status)
    return shim_fail(shim_self(), cudaErrorInvalidValue);
  if (!shim_stream_default(stream) && !s)
    return shim_fail(shim_self(), cudaErrorInvalidResourceHandle);
  pthread_mutex_lock(&graph_lock);
  if (!s || !s->capture) {
    *status = cudaStreamCaptureStatusNone;
  } else {
    *status = s->capture_bad ? cudaStreamCaptureStatusInvalidated
                             : cudaStreamCaptureStatusActive;
    if (id)
      *id = s->capture_id;
    if (graph)
      *graph = (cudaGraph_t)s->capture;
    if (deps)
      *deps = NULL;
    if (edges)
      *edges = NULL;
    if (ndeps)
      *ndeps = 0;
  }
  pthread_mutex_unlock(&graph_lock);
  return cudaSuccess;
}

cudaError_t cudaStreamGetCaptureInfo(cudaStream_t stream,
                                     enum cudaStreamCaptureStatus *status,
                                     unsigned long long *id,
                                     cudaGraph_t *graph,
                                     const cudaGraphNode_t **deps,
                                     const cudaGraphEdgeData **edges,
                                     size_t *ndeps)
{
  return shim_capture_info(stream, status, id, graph, deps, edges, ndeps);
}

/* The thread's capture interaction mode: kept and exchanged, as CUDA does;
   what it would forbid during a global capture is not enforced (a capture
   here refuses what it cannot hold, whatever the mode). */
static __thread enum cudaStreamCaptureMode thread_capture_mode =
    cudaStreamCaptureModeGlobal;

cudaError_t cudaThreadExchangeStreamCaptureMode(enum cudaStreamCaptureMode *mode)
{
  enum cudaStreamCaptureMode was = thread_capture_mode;

  if (!mode || (unsigned)*mode > cudaStreamCaptureModeRelaxed)
    return shim_fail(shim_self(), cudaErrorInvalidValue);
  thread_capture_mode = *mode;
  *mode = was;
  return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph)
{
  struct shim_graph *g = (struct shim_graph *)graph;

  if (!g || g->magic != GRAPH_MAGIC)
    return cudaErrorInvalidValue;
  g->magic = 0;
  free(g->buf);
  g->buf = NULL;
  /* The struct stays: a stale cudaGraph_t must read as invalid. */
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph,
                                 unsigned long long flags)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);
  struct shim_graph *g = (struct shim_graph *)graph;
  struct shim_graph_exec *x;
  uint8_t a[24];
  size_t off = 0;
  int rc = 0;

  if (e != cudaSuccess)
    return shim_fail(t, e);
  if (!exec || !g || g->magic != GRAPH_MAGIC)
    return shim_fail(t, cudaErrorInvalidValue);
  (void)flags; /* auto-free, upload, device launch: nothing to do here */
  x = calloc(1, sizeof(*x));
  if (!x)
    return shim_fail(t, cudaErrorMemoryAllocation);
  x->magic = EXEC_MAGIC;
  x->dev = g->dev;
  x->handle = shim_new_handle();
  x->len = g->len;
  /* Up once, in chunks; only the last waits, so this is one round trip. */
  while (off < g->len && !rc) {
    size_t n = g->len - off < TR_CHUNK_MAX ? g->len - off : TR_CHUNK_MAX;

    tr_put_u64(a, x->handle);
    tr_put_u64(a + 8, g->len);
    tr_put_u64(a + 16, off);
    rc = shim_call(t, x->dev, TR_OP_GRAPH_PUT, a, 24, g->buf + off,
                   (uint32_t)n, off + n == g->len, NULL, 0, NULL);
    rc = shim_call_own(t, rc); /* an earlier call's error: later */
    off += n;
  }
  if (rc) {
    free(x);
    return shim_cuda_error(t, rc);
  }
  *exec = (cudaGraphExec_t)x;
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiateWithFlags(cudaGraphExec_t *exec,
                                          cudaGraph_t graph,
                                          unsigned long long flags)
{
  return cudaGraphInstantiate(exec, graph, flags);
}

/* Before the launch is queued (shim_points_grow). */
static int exec_reserve(struct shim_graph_exec *x)
{
  int rc;

  pthread_mutex_lock(&graph_lock);
  rc = shim_points_grow(&x->launched);
  pthread_mutex_unlock(&graph_lock);
  return rc;
}

/* x was just launched through t's current lane: its newest end there. */
static void exec_note_launch(struct shim_thread *t,
                             struct shim_graph_exec *x)
{
  struct shim_stream_point p;

  shim_stream_point_get(t, x->dev, &p);
  pthread_mutex_lock(&graph_lock);
  shim_points_note(&x->launched, &p);
  pthread_mutex_unlock(&graph_lock);
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);
  struct shim_graph_exec *x = (struct shim_graph_exec *)exec;
  struct shim_stream *s;
  uint8_t a[8];
  int rc = 0;

  if (e != cudaSuccess)
    return shim_fail(t, e);
  if (!x || x->magic != EXEC_MAGIC)
    return shim_fail(t, cudaErrorInvalidValue);
  rc = shim_managed_before_device(t);
  if (rc)
    return shim_cuda_error(t, rc);
  e = shim_stream_use_device(t, stream, &s);
  if (e != cudaSuccess)
    return shim_fail(t, e);
  if (t->capture) {
    t->capture = NULL;
    s->capture_bad = 1;
    return shim_fail(t, cudaErrorStreamCaptureUnsupported);
  }
  if (exec_reserve(x) < 0)
    return shim_fail(t, cudaErrorMemoryAllocation);
  if (x->len) {
    tr_put_u64(a, x->handle);
    rc = shim_call(t, x->dev, TR_OP_GRAPH_LAUNCH, a, 8, NULL, 0, 0, NULL, 0,
                   NULL);
  }
  if (rc)
    return shim_cuda_error(t, rc);
  shim_stream_mark(t, s);
  if (x->len)
    exec_note_launch(t, x);
  return cudaSuccess;
}

cudaError_t cudaGraphUpload(cudaGraphExec_t exec, cudaStream_t stream)
{
  struct shim_graph_exec *x = (struct shim_graph_exec *)exec;

  (void)stream;
  if (!x || x->magic != EXEC_MAGIC)
    return cudaErrorInvalidValue;
  return cudaSuccess; /* instantiation uploaded it already */
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);
  struct shim_graph_exec *x = (struct shim_graph_exec *)exec;
  struct shim_stream_points launched;
  uint8_t a[8];

  if (e != cudaSuccess)
    return shim_fail(t, e);
  if (!x || x->magic != EXEC_MAGIC)
    return shim_fail(t, cudaErrorInvalidValue);
  x->magic = 0;
  /* CUDA lets launches still pending complete: GRAPH_DESTROY waits for
     each stream's newest one, as cudaStreamDestroy waits for its work. */
  pthread_mutex_lock(&graph_lock);
  launched = x->launched;
  x->launched = (struct shim_stream_points){0};
  pthread_mutex_unlock(&graph_lock);
  t->cur = &t->own; /* not stream work: no stream lane waits for them */
  shim_points_wait(t, &launched);
  if (x->len) {
    tr_put_u64(a, x->handle);
    (void)shim_call(t, x->dev, TR_OP_GRAPH_DESTROY, a, 8, NULL, 0, 0, NULL, 0,
                    NULL);
  }
  return cudaSuccess;
}
