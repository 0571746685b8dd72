/*
 * ptx_exec.h: run kernels of a pre-decoded PTX module (ptx_ir.h) on the CPU.
 *
 * Model.  A launch runs its blocks on the worker threads of a struct
 * ptx_pool (all cores by default), each block on one worker from start to
 * finish, so shared memory and barriers stay inside one thread.  A block's
 * threads are grouped into warps of 32, and the executor interprets one
 * instruction for a whole warp at a time (SIMT): every lane has its own
 * program counter, the lanes at the lowest program counter of the warp's
 * innermost call frame run together, so divergent branches reconverge
 * where the code joins again, as on a GPU since Volta for the code nvcc
 * emits.  A warp that reaches bar.sync waits while the worker runs the
 * block's other warps; warp-synchronous instructions (shfl, vote, match,
 * activemask, redux) see the lanes executing them together.
 *
 * Memory.  Device (global and constant) addresses are host addresses in the
 * agent process: the emu backend places device memory at the address the
 * program sees.  Every access is checked through ptx_memops.global_range
 * before it is made (the result is cached per warp), so a bad address is
 * cudaErrorIllegalAddress, never a crash of the agent.  Shared memory is
 * per block, local memory (frames, the stack) per thread, both host
 * buffers owned by the executor; a generic address that points into either
 * (cvta.shared, cvta.local) is a host address inside those buffers and is
 * recognised as such by every generic access.
 *
 * Faults end the launch: the first fault (in launch order of detection) is
 * reported, the remaining blocks are not started, blocks in flight stop at
 * their next instruction.
 *
 * Thread-safety: a module is immutable after ptx_exec_prepare and shared by
 * any number of concurrent launches; a pool serves concurrent launches from
 * any number of threads.
 */
#ifndef PTX_EXEC_H
#define PTX_EXEC_H

#include <stddef.h>
#include <stdint.h>

#include "ptx_ir.h"

/* CUDA error numbers the executor reports (cudaError_t values). */
#define PTX_ERR_SUCCESS              0
#define PTX_ERR_INVALID_VALUE        1
#define PTX_ERR_MEMORY_ALLOCATION    2
#define PTX_ERR_INVALID_CONFIG       9   /* cudaErrorInvalidConfiguration */
#define PTX_ERR_ILLEGAL_ADDRESS      700
#define PTX_ERR_LAUNCH_OUT_OF_RES    701
#define PTX_ERR_LAUNCH_TIMEOUT       702
#define PTX_ERR_ASSERT               710
#define PTX_ERR_ILLEGAL_INSTRUCTION  715
#define PTX_ERR_MISALIGNED_ADDRESS   716
#define PTX_ERR_LAUNCH_FAILURE       719 /* trap, deadlocked barrier */

/*
 * ptx_exec_prepare - check that the executor implements every instruction
 * of m, and pre-resolve each one (fills ptx_insn.xop/xaux).  Also checks
 * that every extern function called is one the executor provides (vprintf,
 * __assertfail; others are rejected).  Call once after ptx_parse, before
 * the module is shared.
 *
 * Returns 0, or -ENOTSUP with one line in err naming the first
 * unimplemented combination and its line, for example
 *   "line 88: not implemented: tex.2d.v4.f32.f32"
 *   "line 12: not implemented: cvt.rna.tf32.f32"
 *   "line 40: call to unsupported extern function 'malloc'"
 */
int ptx_exec_prepare(struct ptx_module *m, char *err, size_t errlen);

/*
 * What the executor implements, one "opcode[.modifier...].type" key per
 * combination in the canonical spelling the coverage test uses (see
 * ptx_exec_key).  Returns 1 if implemented, 0 if not.
 */
int ptx_exec_supports(const struct ptx_insn *in);

/*
 * ptx_exec_key - the canonical spelling of an instruction's opcode, type
 * and modifiers, e.g. "add.s32", "ld.global.v4.f32", "setp.lt.and.f32",
 * "cvt.rn.f32.f64", "atom.shared.add.f32"; written to buf (NUL-terminated).
 * Operand-free and line-free: the coverage test compares sets of keys.
 */
void ptx_exec_key(const struct ptx_insn *in, char *buf, size_t len);

/* ---- worker pool --------------------------------------------------------- */

struct ptx_pool;

/*
 * Start `workers` threads (0 = one per online CPU).  Returns 0 and *out, or
 * -errno.  The pool is shared by every launch on the device.
 */
int ptx_pool_new(unsigned workers, struct ptx_pool **out);

/* Stop and join the workers; no launch may be running. */
void ptx_pool_free(struct ptx_pool *p);

/* Number of worker threads. */
unsigned ptx_pool_size(const struct ptx_pool *p);

/* ---- launching ------------------------------------------------------------ */

/* Services the backend provides to a launch. */
struct ptx_memops {
  void *ctx;
  /*
   * Is [addr, addr + len) device memory (global or constant) this launch
   * may read and write?  Returns 0 and the bounds [*lo, *hi) of the whole
   * valid range containing it (an allocation), which the executor may
   * cache and use for later accesses without asking again during this
   * launch; -EFAULT if not.  Called from worker threads, concurrently.
   */
  int (*global_range)(void *ctx, uint64_t addr, uint64_t len, uint64_t *lo,
                      uint64_t *hi);
  /*
   * Output of device printf: one formatted call at a time, exactly as the
   * GPU's printf would print it.  Called from worker threads.
   */
  void (*print)(void *ctx, const char *s, size_t n);
};

/* The device the kernels think they run on. */
struct ptx_devmodel {
  uint32_t sm_count;          /* %nsmid; %smid = block's worker index */
  uint32_t max_threads_block; /* 1024 */
  uint32_t max_shared_block;  /* bytes a block may use (static+dynamic) */
  uint32_t stack_size;        /* per-thread local memory for frames and
                                 calls, cudaLimitStackSize (1024 default) */
};

struct ptx_launch_desc {
  const struct ptx_module *m; /* prepared */
  uint32_t func;              /* index of an .entry in m->funcs */
  uint32_t grid[3];
  uint32_t block[3];
  uint32_t dyn_shared;        /* dynamic shared memory bytes */
  const uint8_t *params;      /* the kernel's parameter buffer */
  uint32_t params_size;       /* must equal m->funcs[func].param_size */
  /*
   * Device address of each GLOBAL/CONST symbol of m in this context
   * (m->nsyms entries; 0 for other kinds).  The backend allocates and
   * initialises those variables when it loads the module into a context.
   */
  const uint64_t *sym_addr;
  struct ptx_memops mem;
  const struct ptx_devmodel *dev;
  uint64_t watchdog_ns;       /* 0: no limit; else cudaErrorLaunchTimeout
                                 once the launch has run this long */
  const volatile int *cancel; /* optional: nonzero stops the launch with
                                 cudaErrorLaunchFailure (session closing) */
  int priority;               /* the stream's: 0, or lower for more urgent;
                                 the pool's workers take blocks of the most
                                 urgent launch first */
};

/* What went wrong, for the agent's log and the client's stderr line. */
struct ptx_fault {
  uint32_t error;   /* PTX_ERR_* (0: none) */
  uint32_t line;    /* PTX line of the faulting instruction, 0 if none */
  uint64_t addr;    /* faulting address for memory faults */
  uint32_t block[3], thread[3];
  char msg[192];    /* one line, e.g. "ld.global.f32: address 0x... is
                       outside every allocation (block (3,0,0) thread
                       (17,0,0), line 88)" */
};

/*
 * ptx_launch - run one kernel to completion on pool.  Blocks until every
 * block has finished or the launch has faulted, then returns the CUDA
 * error (PTX_ERR_SUCCESS on success); f (optional) receives the details
 * of a fault.  A bad configuration (zero or too large grid/block, more
 * shared memory than dev allows, params_size mismatch, func not an entry)
 * returns PTX_ERR_INVALID_CONFIG / PTX_ERR_INVALID_VALUE /
 * PTX_ERR_LAUNCH_OUT_OF_RES before anything runs.
 */
uint32_t ptx_launch(struct ptx_pool *pool, const struct ptx_launch_desc *d,
                    struct ptx_fault *f);

/*
 * Statistics of the calling process, for the benchmark: thread-instructions
 * executed (one PTX instruction by one thread counts one) since start.
 */
uint64_t ptx_exec_thread_insns(void);

#endif /* PTX_EXEC_H */
