/*
 * shim.h: what the parts of libtremote_shim.so share.
 *
 * The shim is the CUDA runtime as the program sees it.  Each exported CUDA
 * function is a thin edge: it checks its arguments, turns the call into
 * records on the calling thread's lane (shim_call()), and converts the
 * outcome into a cudaError_t in exactly one place (shim_cuda_error()).
 *
 * State:
 *   - one process-wide connection to the broker (struct shim_proc), made on
 *     the first CUDA call, never torn down before exit;
 *   - one struct shim_thread per application thread that calls CUDA, with
 *     its own lane, current device and last error (CUDA's per-thread state).
 */
#ifndef SHIM_H
#define SHIM_H

#include <stdint.h>

#include <cuda_runtime_api.h>

#include "client.h"
#include "shim_errstate.h"

/* Requests sent without waiting whose replies are still to come. */
#define SHIM_PEND_MAX 64
/* Their reply records, at most (each a small record in the reply ring,
   which must never fill up with them: see shim_call_async). */
#define SHIM_PEND_RECORDS 2048

/* Lanes a thread keeps for non-blocking streams (see shim_stream_lane). */
#define SHIM_STREAM_LANES 16

/* One lane of a thread: the ring pair, and what is outstanding on it. */
struct shim_lane {
  struct tr_lane lane;
  int open;
  uint64_t serial;    /* unique in the process, never reused (0: none) */
  uint64_t stream_id; /* a stream lane's stream; 0 for the thread's own */
  uint64_t lg_seen;   /* a stream lane: the generation of the thread's
                         legacy-stream event it has waited for */
  uint64_t lg_epoch;  /* ... and the epoch of other threads' (shim_stream.c) */
  int busy;           /* work queued since its last SYNCHRONIZE ... */
  int busy_dev;       /* ... for this device */
  uint64_t next_id;   /* request ids on this lane */
  /* Requests whose replies come later (shim_call_async), oldest first,
     and the first error among those that came. */
  struct {
    uint64_t id, want, got, records;
  } pend[SHIM_PEND_MAX];
  unsigned pend_head, npend;
  uint64_t pend_records;
  int pend_err;
};

/* Thread state.  Owned by the thread; freed by its TLS destructor. */
struct shim_thread {
  struct shim_lane own;  /* the thread's lane: default streams and the rest */
  struct shim_lane *cur; /* the lane this API call uses (shim_call); the
                            thread's own unless shim_stream_use chose one */
  struct shim_lane *slane[SHIM_STREAM_LANES]; /* created streams' */
  struct shim_lane *qlane; /* queries only (shim_query_lane), or NULL */
  unsigned slane_next;   /* the slot to reuse next when all are taken */
  int device;            /* current CUDA ordinal */
  cudaError_t last_error; /* cudaGetLastError's value */
  /* __cudaPushCallConfiguration stack (nvcc pushes one, pops one). */
  struct {
    dim3 grid, block;
    size_t shmem;
    void *stream;
  } cfg[8];
  int ncfg;
  /* While one API call queues work on a capturing stream: that stream.
     Its no-reply records go into the capture instead of the lane
     (shim_stream.c).  Cleared at the start of every call (shim_ready). */
  struct shim_stream *capture;
  /* Per device, the order between this thread's legacy-stream work and
     its blocking streams (shim_stream.c); NULL until first needed. */
  struct shim_legacy *legacy;
  unsigned nlegacy;
  /* The last shim_call's own call worked, whatever status it returned:
     a nonzero one was an earlier record's error it reported (TR_F_DEFERRED,
     or a reply taken on the way).  See shim_call_own. */
  int call_ok;
};

/*
 * Wait for the work queued so far on every created stream of device dev
 * whose newest work went down a lane t does not have open (another
 * thread's, or one t closed to make room), and for other threads'
 * default-stream work on it (cudaDeviceSynchronize and cudaFree wait for
 * all of the device's work, not only t's lanes').  The first error.
 */
int shim_sync_other_streams(struct shim_thread *t, int dev);

/* cudaStreamGetCaptureInfo's answer (CUDA 13's prototype; shim_abi12.c
   has CUDA 12's three). */
cudaError_t shim_capture_info(cudaStream_t stream,
                              enum cudaStreamCaptureStatus *status,
                              unsigned long long *id, cudaGraph_t *graph,
                              const cudaGraphNode_t **deps,
                              const cudaGraphEdgeData **edges, size_t *ndeps);

/* Fork child: forget every thread's legacy-stream state (the parent's
   session's); the calling thread's is then freed by the caller. */
void shim_legacy_forget_all(void);
/* t's own lane sent its record with request id id to dev (shim_call). */
void shim_legacy_sent(struct shim_thread *t, int dev, uint64_t id);

/* Thread exit: drop what shim_stream.c keeps per thread (before the
   thread's own lane closes: it queues on it). */
void shim_stream_thread_exit(struct shim_thread *t);

/*
 * The lane for work on the created stream stream_id, opened on first
 * use (one per thread and stream, so a stream's work never waits behind
 * another stream's on the agent) with the stream's priority, so the agent
 * runs it ahead of less urgent lanes; NULL when no lane can be had (the
 * caller then uses the thread's own).  A thread keeps SHIM_STREAM_LANES of
 * them and closes the least recently opened to make room (its queued work
 * still runs).
 */
struct shim_lane *shim_stream_lane(struct shim_thread *t, uint64_t stream_id,
                                   int priority, int open);

/*
 * t's query lane, opened on first use: it carries questions (EVENT_QUERY)
 * and never work, so a query never waits behind work the way it would on
 * a lane the thread feeds.  NULL when no lane can be had (the caller then
 * asks on its current lane).
 */
struct shim_lane *shim_query_lane(struct shim_thread *t);

/* Synchronise every stream lane of t with work since its last
   synchronisation (cudaDeviceSynchronize); the first error. */
int shim_sync_stream_lanes(struct shim_thread *t);

/* The process's view of the broker. */
struct shim_proc {
  int connected;        /* 1 if HELLO succeeded */
  unsigned forks;       /* fork children this process is down from: what
                           was kept before names the parent's session */
  cudaError_t init_err; /* why not, as the error every call returns */
  struct tr_client cli;
};

extern struct shim_proc shim_proc;

/*
 * Connect on first use (once per process) and return the calling thread's
 * state, or NULL if the thread state cannot be allocated.  Never blocks
 * for longer than the broker's HELLO deadline.
 */
struct shim_thread *shim_self(void);

/* Record e (if an error) as t's last error and return it. */
static inline cudaError_t shim_fail(struct shim_thread *t, cudaError_t e)
{
  if (t && e != cudaSuccess)
    t->last_error = e;
  return e;
}

/*
 * Ensure the process is connected and the thread has a lane.  Returns
 * cudaSuccess or the error to hand the program (cudaErrorNoDevice without a
 * broker).
 */
cudaError_t shim_ready(struct shim_thread **t);

/* Is dev a valid ordinal?  */
int shim_valid_device(int dev);

/*
 * Ordinal of the device whose address window holds p, or -1 if p is not
 * a device address.
 */
int shim_device_of(const void *p);

/*
 * One request on the calling thread's lane.
 *   data/dlen: bulk payload after args (dlen <= TR_CHUNK_MAX).
 *   want_reply: wait for the final reply; out/out_cap receive the
 *     concatenated reply payloads (extra bytes are an error), *out_len
 *     their length.
 * Returns 0, a positive status from the reply (cudaError_t or TR_ST_*), or
 * a negative errno if the transport failed.
 *
 * Replies to earlier shim_call_async requests that arrive first are taken
 * on the way, and the first error among them becomes this call's status
 * when its own is 0 (as the agent does with errors of records sent without
 * a reply).
 *
 * shim_call_flags adds request flags: TR_F_SHMREF or TR_F_DEST when args
 * end with a tr_shmref naming a region (shim_host_region); replies the
 * broker placed at a TR_F_DEST range count in *out_len but are not copied.
 */
int shim_call_flags(struct shim_thread *t, int dev, uint16_t op,
                    uint16_t flags, const void *args, uint32_t alen,
                    const void *data, uint32_t dlen, int want_reply,
                    void *out, uint64_t out_cap, uint64_t *out_len);
/*
 * Send a request that wants a reply but do not wait for it: a device-to-
 * host copy of want bytes into page-locked memory (TR_F_DEST), whose bytes
 * the broker writes where they belong as they come.  Its replies are taken
 * by a later call on this lane (every synchronisation is one), or here
 * first when too many are outstanding.  Returns 0 or a status as
 * shim_call does.
 */
int shim_call_async(struct shim_thread *t, int dev, uint16_t op,
                    uint16_t flags, const void *args, uint32_t alen,
                    uint64_t want);
int shim_call(struct shim_thread *t, int dev, uint16_t op, const void *args,
              uint32_t alen, const void *data, uint32_t dlen, int want_reply,
              void *out, uint64_t out_cap, uint64_t *out_len);
/*
 * rc of the last shim_call on t, made on the program's behalf inside an
 * API call (loading a module, naming a function, uploading a graph): an
 * earlier record's error that the call only reported goes back to its
 * lane, for the program's next call that waits (as it would have without
 * this one), and 0 is returned, so the caller keeps what the call did;
 * the call's own failure is returned as it is.
 */
int shim_call_own(struct shim_thread *t, int rc);

/*
 * Collect the device output (printf, fault reports) of dev and write it to
 * the program's stdout/stderr: op is TR_OP_SYNCHRONIZE (also waits for the
 * device; the result is its status) or TR_OP_OUTPUT (only the output).
 * Repeats TR_OP_OUTPUT while the agent says more is waiting.  Returns the
 * first call's result as shim_call does.
 */
int shim_device_output(struct shim_thread *t, int dev, uint16_t op);

/* True if dev's agent said output is waiting at its last reply. */
int shim_output_pending(int dev);

/*
 * A pointer of device ptr_dev used with device used_dev (a copy between two
 * machines, a kernel argument): print one line naming both machines and
 * return cudaErrorInvalidValue, recorded as the thread's last error.
 */
cudaError_t shim_wrong_device(struct shim_thread *t, const char *what,
                              const void *ptr, int ptr_dev, int used_dev);

/*
 * fork support (shim_module.c): hold (1) or release (0) the registration
 * lock around fork; in the child, forget which devices know which modules
 * and functions (the child's new session knows none).
 */
void shim_module_fork_lock(int hold);
void shim_module_forget(void);

/*
 * The copy and memset behind cudaMemcpy[Async] and cudaMemset[Async]
 * (shim_memory.c): checks, then records on t's lane.  async: nothing waits
 * for a reply (errors surface at the next synchronisation), except device
 * to host, which is synchronous as CUDA's copies to pageable memory are.
 */
cudaError_t shim_memcpy(struct shim_thread *t, void *dst, const void *src,
                        size_t count, enum cudaMemcpyKind kind, int async);
cudaError_t shim_memset(struct shim_thread *t, void *ptr, int value,
                        size_t count, int async);

/*
 * Streams (shim_stream.c).  Resolve a cudaStream_t for queueing work:
 * NULL, cudaStreamLegacy and cudaStreamPerThread are the thread's lane
 * itself (*s = NULL); a created stream is returned in *s after the
 * ordering it needs has been established.  cudaErrorInvalidResourceHandle
 * for anything else.  After queueing, shim_stream_mark(t, s) makes the
 * work visible to the stream's synchronisation.
 */
struct shim_stream;
cudaError_t shim_stream_use(struct shim_thread *t, cudaStream_t stream,
                            struct shim_stream **s);
/* The same for work that reads no host memory as it is queued (launches,
   event records and waits, graph launches, host functions): it does not
   wait on the host for the host functions queued before it on a created
   stream, whose ends its lane waits for on the device (host_func). */
cudaError_t shim_stream_use_device(struct shim_thread *t,
                                   cudaStream_t stream,
                                   struct shim_stream **s);
void shim_stream_mark(struct shim_thread *t, struct shim_stream *s);
/* s's priority (cudaStreamCreateWithPriority, clamped); 0 for NULL. */
int shim_stream_priority(const struct shim_stream *s);

/* The start of every call that queues work on a stream: shim_ready, then
   shim_stream_use; a failure is recorded as the thread's last error. */
cudaError_t shim_stream_begin(struct shim_thread **t, cudaStream_t stream,
                              struct shim_stream **s);

/*
 * Stream capture (shim_stream.c): append a record to the capture of
 * t->capture instead of sending it.  Returns 0, or a cudaError_t when the
 * record cannot be part of a graph (then the capture is invalidated, as
 * CUDA does).
 */
int shim_capture_record(struct shim_thread *t, uint16_t op, const void *args,
                        uint32_t alen, const void *data, uint32_t dlen,
                        int want_reply);

/* A call that cannot be captured, made on a capturing stream: invalidate
   the capture and return cudaErrorStreamCaptureUnsupported (cudaSuccess
   when t is not capturing). */
cudaError_t shim_capture_refuse(struct shim_thread *t, const char *what);

/*
 * Managed memory (shim_memory.c): upload every managed allocation if the
 * host may have written it (before device work), download them if the
 * device may have written them (at synchronisation points).  Return 0 or
 * what shim_call returns.  shim_managed_of: is p managed memory?
 * shim_managed_forget: drop ptr's host copy after cudaFree (1 if managed).
 */
int shim_managed_before_device(struct shim_thread *t);
int shim_managed_after_sync(struct shim_thread *t);
/* After a synchronisation that returned rc: the download above when it
   did synchronise (rc 0, or synced: an earlier call's error it reported,
   which its call's t->call_ok tells).  Returns rc, or the download's
   error for rc 0. */
int shim_managed_after(struct shim_thread *t, int rc, int synced);
int shim_managed_of(const void *p);

/*
 * shim_host.c: if [p, p + n) lies in page-locked memory shared with the
 * broker, 1 with the tr_shmref area and offset that name it; else 0.
 * The fork hooks keep the block table consistent across fork and make the
 * child forget its parent's regions.
 */
int shim_host_region(const void *p, size_t n, uint32_t *area, uint64_t *off);

/*
 * shim_memory.c: the program's live cudaMalloc ranges.  covers: 1 if
 * [p, p + n) lies within one of them.  forget_range: p (an allocation's
 * base) is being freed.  forget_all: a forked child starts with none.
 */
int shim_alloc_covers(const void *p, size_t n);
/* Forget the allocation at p: its size (0 if none), and in *pooled (may be
   NULL) whether shim_alloc_set_pooled marked it. */
uint64_t shim_alloc_forget_range(const void *p, int *pooled);
/* Mark the allocation at p as cudaMallocAsync's (the default pool's). */
void shim_alloc_set_pooled(const void *p);
/* The default pool of dev lost an allocation of size bytes (a free). */
void shim_pool_freed(int dev, uint64_t size);
/* Fork child: the pools were the parent's session's. */
void shim_pool_forget_all(void);
void shim_alloc_forget_all(void);
void shim_host_fork_lock(int lock);
void shim_host_forget_regions(void);
int shim_managed_forget(void *ptr);

/* Wait until every queued host function (cudaLaunchHostFunc) has run:
   cudaDeviceSynchronize's share of the work. */
void shim_stream_wait_callbacks(void);

/* In a forked child: forget every stream's and event's records. */
void shim_stream_forget(void);

/* In a forked child: the capture lock starts over (a parent thread may
   have held it at the fork). */
void shim_graph_forget(void);

/* The stack size the program set for dev (cudaDeviceSetLimit), or 0 for
   the device's default: sent with every launch (shim_device.c). */
uint32_t shim_stack_size(int dev);

/*
 * The one conversion table: 0 / -errno / positive status -> cudaError_t.
 * Also records a non-success result as the thread's last error.
 */
cudaError_t shim_cuda_error(struct shim_thread *t, int rc);

/* Print "tremote: <msg>" to stderr once per key (a static string). */
void shim_warn_once(const char *key, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * The registration and launch entry points nvcc's generated code calls.
 * The toolkit declares them only for C++ (crt/host_runtime.h,
 * crt/device_functions.h); these are the same signatures in C.
 */
void **__cudaRegisterFatBinary(void *wrapper);
void __cudaRegisterFatBinaryEnd(void **handle);
void __cudaUnregisterFatBinary(void **handle);
char __cudaInitModule(void **handle);
void __cudaRegisterFunction(void **handle, const char *host_fun,
                            char *device_fun, const char *device_name,
                            int thread_limit, uint3 *tid, uint3 *bid,
                            dim3 *bdim, dim3 *gdim, int *wsize);
void __cudaRegisterVar(void **handle, char *host_var, char *device_address,
                       const char *device_name, int ext, size_t size,
                       int constant, int global);
cudaError_t __cudaGetKernel(cudaKernel_t *kernel, const void *host_fun);
unsigned __cudaPushCallConfiguration(dim3 grid, dim3 block, size_t shmem,
                                     struct CUstream_st *stream);
cudaError_t __cudaPopCallConfiguration(dim3 *grid, dim3 *block, size_t *shmem,
                                       void *stream);
cudaError_t __cudaLaunchKernel(cudaKernel_t kernel, dim3 grid, dim3 block,
                               void **args, size_t shmem, cudaStream_t stream);

#endif /* SHIM_H */
