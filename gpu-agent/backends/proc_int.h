/*
 * proc_int.h: the messages between the agent and a session's worker
 * process (proc.c, the agent's side; proc_worker.c, the worker's).  The
 * design is at the top of proc.c.
 */
#ifndef AGT_PROC_INT_H
#define AGT_PROC_INT_H

#include <stdint.h>

#define PROC_SHM (4u << 20)
#define PMSG_INLINE (64u << 10)

enum pop {
  P_INIT = 1, P_OPEN, P_CHANNEL, P_CLOSE, /* control socket */
  P_MALLOC, P_FREE, P_CHECK, P_H2D, P_D2H, P_D2D, P_MEMSET, P_MEMINFO,
  P_MODLOAD, P_MODUNLOAD, P_FUNC, P_SYM, P_FATTRS,
  P_ARENA, /* the session's staging memory (a memfd of PROC_ARENA bytes);
              P_H2D and P_D2H with a[3] = 1 then take offsets in it */
  P_LAUNCHN, /* a[0] launches, each a struct plaunch and its parameters
                inline; the reply has a uint32_t status for each inline */
  P_OUT,   /* worker -> agent during a launch: a[0] = fd, inline text */
  P_REPLY, /* status, a[], inline */
};

struct pmsg {
  uint32_t op;
  uint32_t status;
  uint64_t a[6];
  uint32_t len; /* inline bytes that follow */
};

/* One launch of P_LAUNCHN: this, then params_size bytes of parameters,
   then padding to a multiple of 8 bytes. */
struct plaunch {
  uint64_t fn, stream;
  uint32_t grid[3], block[3], shmem, stack_size, params_size;
  int32_t priority;
  uint32_t cooperative, cluster[3];
};

/* INIT's inline part: the inner backend's configuration. */
struct pinit {
  char kind[8];
  char emu_name[64];
  uint64_t emu_mem, emu_watchdog_ms;
  uint32_t emu_sm_count, emu_workers, emu_cc;
  int32_t log_level; /* the agent's --log-level */
};

/* Copies move in halves of a channel's area, two pieces in flight. */
#define PROC_HALF (PROC_SHM / 2)

/* The staging arena (proc.c, "Staging"): slots of one chunk each. */
#define PROC_ARENA (16u << 20)
#define PROC_SLOT TR_CHUNK_MAX
#define PROC_SLOTS (PROC_ARENA / PROC_SLOT)

/* Send a header, its inline bytes and optionally one descriptor (-1:
   none).  0 or -1. */
int proc_send(int fd, const struct pmsg *m, const void *data, int pass_fd);

/* Receive one message: header into *m, inline bytes into data (room for
   PMSG_INLINE + 1; NUL-terminated after them), up to two descriptors into
   fds (-1 when absent; fds may be NULL).  0, or -1 at EOF or on error. */
int proc_recv(int fd, struct pmsg *m, uint8_t *data, int fds[2]);

#endif /* AGT_PROC_INT_H */
