/*
 * backend.h: the device behind the agent.
 *
 * The agent's protocol code (agent_ops.c) never touches device memory or a
 * driver itself: it calls these operations.  Two backends exist by design:
 *
 *   emu   device memory in host RAM, inside the session's address window;
 *         kernels run in a PTX interpreter (emu/ptx_exec.h)
 *   cuda  the real GPU through the NVIDIA driver API, loaded with dlopen
 *         so the agent starts where there is none (cuda.c); device memory
 *         is mapped at the window's addresses with cuMemMap
 *
 * A backend is one device (struct agt_backend); each client session gets
 * its own context on it (struct agt_bctx: a CUDA context for cuda, an
 * allocation owner for emu).  Every context owns what was created in it and
 * frees all of it in ctx_close.
 *
 * Threads: operations on one context may be called from several threads at
 * once (different lanes of a session run concurrently), and on different
 * contexts at once.  The backend does its own locking.  ctx_close is called
 * once, when no other call on that context is running or will run.
 *
 * Return values: the memory, module and launch operations return the CUDA
 * call's result as a cudaError_t number (0 = cudaSuccess), because that is
 * exactly what goes back to the program in the reply's status: it is not an
 * internal error.  Internal failures (no memory for bookkeeping) are mapped
 * to the CUDA error a driver would give (cudaErrorMemoryAllocation).
 * Device pointers are checked here: a pointer or range the context does not
 * own is cudaErrorInvalidValue, never a crash.
 */
#ifndef AGT_BACKEND_H
#define AGT_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tremote/proto.h"

struct agt_backend;
struct agt_bctx;

/* A kernel launch, already decoded from the LAUNCH record. */
struct agt_launch {
  uint32_t grid[3];
  uint32_t block[3];
  uint32_t shmem;
  uint64_t stream;      /* client stream handle; 0 = legacy default */
  uint32_t stack_size;  /* per-thread stack bytes; 0 = the default */
  int priority;         /* 0 .. TR_PRIORITY_GREATEST (more urgent) */
  bool cooperative;     /* every block resident at once (grid sync) */
  uint32_t cluster[3];  /* thread block cluster; 1 (or 0) each for none */
  const uint8_t *params;
  uint32_t params_size;
  /*
   * Where the kernel's output goes: printf text (fd 1) and a report of a
   * fault (fd 2), delivered to the program at its next synchronisation.
   * Called from any thread while the launch runs; never NULL.
   */
  void (*out)(void *arg, int fd, const char *s, size_t n);
  void *out_arg;
};

/* cudaFuncAttributes of a kernel, as FUNC_ATTRS returns them. */
struct agt_fattrs {
  uint32_t shared_size, const_size, local_size, max_threads;
  uint32_t num_regs, ptx_version, binary_version, params_size;
};

/* A diagnostic for the program: one line, NUL-terminated. */
#define AGT_WHY_MAX 256

struct agt_backend_ops {
  const char *name; /* "emu", "cuda" */

  /* Free the device and everything on it.  All contexts are closed. */
  void (*destroy)(struct agt_backend *b);

  /*
   * Describe the device (PROTOCOL.md §4): name, total memory, uuid, caps,
   * attributes.  Window fields and machine index are left 0.
   */
  void (*devinfo)(struct agt_backend *b, struct tr_devinfo *d);

  /*
   * Open a context whose device allocations lie in the address window
   * [va_base, va_base + va_size).  Returns 0 and *out; -EINVAL if the
   * window is malformed (unaligned, empty, outside user space); -EEXIST if
   * the range is taken by something else in this process; -ENOMEM.  On
   * failure *why is a static message for the client.
   */
  int (*ctx_open)(struct agt_backend *b, uint64_t va_base, uint64_t va_size,
                  struct agt_bctx **out, const char **why);

  /* Free every allocation, module and function of c, then c itself. */
  void (*ctx_close)(struct agt_bctx *c);

  /*
   * Optional (NULL: always ready).  1 if c takes calls now; 0 while it is
   * still being set up (a worker process starting its driver, which takes
   * a quarter of a second on a GPU), in which case ready(arg) is called
   * once, from another thread, when it does (or when it never will: its
   * calls then fail).  Calls made before then wait for it; the agent
   * parks the session's lanes instead, so no execution thread waits.
   * ready must be done before ctx_close returns.
   */
  int (*ctx_when_ready)(struct agt_bctx *c, void (*ready)(void *arg),
                        void *arg);

  /*
   * Optional (NULL: not offered).  Page-lock [p, p + len) of this process
   * for c's device, so copies to and from it go by DMA rather than
   * through the driver's staging buffers (and the CPU copy that costs):
   * 0, or -1 with nothing done (copies still work, staged).  Undone by
   * host_unregister(c, p) before ctx_close.  A worker process registers
   * the memory it shares with the agent for copies.
   */
  int (*host_register)(struct agt_bctx *c, void *p, size_t len);
  void (*host_unregister)(struct agt_bctx *c, void *p);

  /*
   * cudaMalloc: size 0 gives *dptr = 0 and cudaSuccess, as CUDA does.
   * cudaErrorMemoryAllocation when the device memory is exhausted.
   */
  uint32_t (*mem_alloc)(struct agt_bctx *c, uint64_t size, uint64_t *dptr);

  /*
   * cudaFree: 0 is a no-op; anything but the start of a live allocation of
   * this context is cudaErrorInvalidValue.
   */
  uint32_t (*mem_free)(struct agt_bctx *c, uint64_t dptr);

  /*
   * cudaSuccess if [dptr, dptr + len) lies entirely inside one live
   * allocation of this context, else cudaErrorInvalidValue.  Lets a caller
   * reject a copy before it produces any of its output.
   */
  uint32_t (*mem_check)(struct agt_bctx *c, uint64_t dptr, uint64_t len);

  /*
   * Pin [dptr, dptr + len) of c so the caller can write it directly (the
   * agent receives a large MEMCPY_H2D straight into it).  Returns a host
   * pointer to the range's first byte and sets *pin, or NULL (nothing
   * pinned) when the range is not inside one live allocation of c, len is
   * 0, or the backend's memory cannot be written from the host.  While
   * pinned, a cudaFree of the allocation succeeds but its memory stays
   * mapped and reserved.  Every pin is undone by exactly one mem_unpin(c,
   * pin), before ctx_close.  Either both are NULL or both are set.
   */
  void *(*mem_pin)(struct agt_bctx *c, uint64_t dptr, uint64_t len,
                   void **pin);
  void (*mem_unpin)(struct agt_bctx *c, void *pin);

  /*
   * Staging memory, for backends whose device memory the host cannot
   * write or read (mem_pin gives NULL): a host buffer of len bytes (at
   * most TR_CHUNK_MAX) that copy_h2d takes as src, and copy_d2h as dst,
   * without copying it again on the way (a worker process's device reads
   * and writes it itself).  The agent receives a large MEMCPY_H2D's data
   * straight into one, and sends a device-to-host chunk from one.  NULL
   * when none is free now (the caller uses memory of its own), with
   * nothing taken.  stage_put(tok) gives it back; it may come after
   * ctx_close (a reply still queued when its session went), so the
   * memory outlives the context until then.  Optional: both NULL or both
   * set.
   */
  void *(*stage_get)(struct agt_bctx *c, uint64_t len, void **tok);
  void (*stage_put)(void *tok);

  /* Copies and memset; every device range is checked as mem_check does.
     len 0 succeeds without checking anything, as CUDA does. */
  uint32_t (*copy_h2d)(struct agt_bctx *c, uint64_t dst, const void *src,
                       uint64_t len);
  uint32_t (*copy_d2h)(struct agt_bctx *c, void *dst, uint64_t src,
                       uint64_t len);
  uint32_t (*copy_d2d)(struct agt_bctx *c, uint64_t dst, uint64_t src,
                       uint64_t len);
  uint32_t (*memset_d8)(struct agt_bctx *c, uint64_t dst, uint8_t value,
                        uint64_t len);

  /* cudaMemGetInfo for the whole device. */
  uint32_t (*mem_info)(struct agt_bctx *c, uint64_t *free_b, uint64_t *total);
  /* The same without a context (the agent's /v1/status). */
  void (*dev_mem_info)(struct agt_backend *b, uint64_t *free_b,
                       uint64_t *total);

  /* Wait for everything c queued on the device; its first error. */
  uint32_t (*synchronize)(struct agt_bctx *c);

  /*
   * Load a module image (a fatbin, already verified against its hash) into
   * c; *mod is the backend's handle, freed by module_unload or ctx_close.
   * The image bytes stay valid until module_unload.  On failure `why`
   * (AGT_WHY_MAX bytes) may hold one line for the program, such as the
   * PTX instruction the device cannot run; it is "" otherwise.
   */
  uint32_t (*module_load)(struct agt_bctx *c, const uint8_t *image,
                          size_t len, void **mod, char *why);
  void (*module_unload)(struct agt_bctx *c, void *mod);

  /* Find kernel `name` (mangled) in mod; *fn lives as long as mod. */
  uint32_t (*function_get)(struct agt_bctx *c, void *mod, const char *name,
                           void **fn);

  /*
   * A __device__ or __constant__ variable of mod: its device address in
   * c and its size.  cudaErrorInvalidSymbol if mod has no such variable.
   */
  uint32_t (*symbol_get)(struct agt_bctx *c, void *mod, const char *name,
                         uint64_t *addr, uint64_t *size);

  /* The attributes of kernel fn (cudaFuncGetAttributes). */
  uint32_t (*function_attrs)(struct agt_bctx *c, void *fn,
                             struct agt_fattrs *a);

  /*
   * Launch fn and wait for it: the call returns when the kernel has
   * finished, with its error (a fault is cudaErrorIllegalAddress and the
   * like; the caller makes such errors sticky for the session).
   * Parameters are read during the call only.
   */
  uint32_t (*launch)(struct agt_bctx *c, void *fn, const struct agt_launch *l);

  /*
   * Optional (NULL: the agent calls launch for each).  Launch fns[i] with
   * ls[i] for i < n, in order, as n calls of launch would, but wait for
   * the device once, after the last: the agent hands over consecutive
   * launches of one lane that nobody waits for, so the device runs them
   * back to back and a worker process is asked once, not n times.  st[i]
   * gets launch i's status; an error the final wait finds (a kernel's
   * fault) goes to the last launch queued, and after a sticky error (see
   * agt_status_sticky) the launches left are not made and get it too.
   * All of ls have the same priority.
   */
  void (*launch_many)(struct agt_bctx *c, void *const *fns,
                      const struct agt_launch *ls, unsigned n, uint32_t *st);
};

/* Whether l asks for thread block clusters (some dimension above 1). */
static inline bool agt_launch_clustered(const struct agt_launch *l)
{
  return l->cluster[0] > 1 || l->cluster[1] > 1 || l->cluster[2] > 1;
}

/*
 * Whether st leaves a GPU context unusable: every later call of the
 * session returns it (CUDA's "sticky" errors).
 */
bool agt_status_sticky(uint32_t st);

/* Every backend starts with this header; ops is never NULL. */
struct agt_backend {
  const struct agt_backend_ops *ops;
};

/* Configuration of the emulated device. */
struct agt_emu_config {
  const char *name;       /* device name, <= 63 bytes are kept */
  uint64_t mem;           /* device memory, bytes */
  unsigned sm_count;      /* multiprocessors to report */
  unsigned workers;       /* threads that run blocks (0: one per CPU) */
  unsigned cc;            /* compute capability, major * 10 + minor */
  uint64_t watchdog_ms;   /* a launch running longer fails with
                             cudaErrorLaunchTimeout; 0: no limit */
};

/*
 * Create the emulated device.  Returns 0 and *out (freed with
 * ops->destroy), -ENOMEM, or -errno when its worker threads cannot start.
 */
int agt_emu_new(const struct agt_emu_config *cfg, struct agt_backend **out);

/*
 * Open GPU `ordinal` (0 for now) through the NVIDIA driver: dlopen
 * libcuda.so.1, cuInit, check that the GPU can map memory at chosen
 * addresses (virtual memory management), describe it.  Returns 0 and *out
 * (freed with ops->destroy); -ENOSYS when there is no usable driver or GPU
 * (libcuda.so.1 missing, the toolkit's stub library, cuInit failing, a
 * driver too old); -ENOMEM.  *why is then one line an operator can act
 * on, in static storage that the next agt_cuda_new overwrites (the agent
 * opens its backend once, at start).
 */
int agt_cuda_new(int ordinal, struct agt_backend **out, const char **why);

/*
 * b (from agt_cuda_new) will host one session in this process, a worker's:
 * its context is then the device's primary context, retained already,
 * instead of one more created for it.  A CUDA context costs device memory
 * (hundreds of MiB on a large GPU) and a tenth of a second to create, so a
 * worker holds one, made before its session arrives (the spare).
 */
void agt_cuda_one_session(struct agt_backend *b);

/*
 * b (from agt_cuda_new) will open no session in this process (they run in
 * worker processes) and its device-wide free memory is asked of NVML:
 * release the primary context agt_cuda_new made, which holds device
 * memory for nothing.  devinfo and destroy still work; dev_mem_info then
 * knows only the total.
 */
void agt_cuda_drop_context(struct agt_backend *b);

/*
 * Whether only one process may use b's GPU (from agt_cuda_new): its
 * compute mode is EXCLUSIVE_PROCESS (nvidia-smi -c 3), and the agent,
 * which holds a context, is that process; worker processes could not get
 * one, so sessions must stay in the agent (--isolation thread).
 */
bool agt_cuda_one_process(const struct agt_backend *b);

/*
 * Pick and create a backend by name: "emu", "cuda" or "auto" (cuda when it
 * is usable, else emu, with one info line in the log saying why not cuda).
 * Returns 0 and *out; -ENOSYS when "cuda" was asked for and cannot be
 * used, -EINVAL for an unknown name, -ENOMEM.  On failure *why is a
 * message for the operator, valid until the next agt_backend_open.
 */
int agt_backend_open(const char *kind, const struct agt_emu_config *emu,
                     struct agt_backend **out, const char **why);

/*
 * Sessions in worker processes (proc.c): a backend whose every context is
 * a process of its own running `inner`'s kind (emu with the configuration
 * emu, or cuda).  inner stays in this process for the device's
 * description and memory figures and is destroyed with the result.
 * Returns 0 and *out, or -ENOMEM.
 */
int agt_proc_new(struct agt_backend *inner, const struct agt_emu_config *emu,
                 struct agt_backend **out);

/* Bytes b (an agt_proc_new backend) copied through its sessions' staging
   arenas, for tests and measurements. */
uint64_t agt_proc_staged_bytes(struct agt_backend *b);

/* A worker's life, for `tremote-gpu-agent --worker-fd FD`: serve one
   session over the control socket FD.  Returns the exit status. */
int agt_proc_worker_main(int ctl);

#endif /* AGT_BACKEND_H */
