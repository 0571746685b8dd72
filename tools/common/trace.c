/*
 * trace.c: hop notes (trace.h).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "trace.h"

#define TRACE_MAX (1u << 20) /* notes kept; later ones are dropped */

struct note {
  uint64_t ns;
  uint64_t id;
  uint32_t lane;
  uint16_t op;
  uint8_t hop;
};

int tr_trace_on;
static struct note *notes;
static atomic_uint nnotes;
static const char *dir;

void tr_trace_note(enum tr_hop hop, uint32_t lane, uint16_t opcode,
                   uint64_t request_id)
{
  struct timespec ts;
  unsigned i;

  /* Looked at first, so the count stops near the cap and never wraps. */
  if (atomic_load_explicit(&nnotes, memory_order_relaxed) >= TRACE_MAX)
    return;
  i = atomic_fetch_add_explicit(&nnotes, 1, memory_order_relaxed);
  if (i >= TRACE_MAX)
    return;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  notes[i] = (struct note){(uint64_t)ts.tv_sec * 1000000000u +
                               (uint64_t)ts.tv_nsec,
                           request_id, lane, opcode, (uint8_t)hop};
}

static void dump(void)
{
  unsigned n = atomic_load(&nnotes);
  char path[4096];
  FILE *f;

  if (n > TRACE_MAX)
    n = TRACE_MAX;
  if (n == 0)
    return; /* a process that passed no hop (a worker) leaves no file */
  snprintf(path, sizeof(path), "%s/trace.%d", dir, (int)getpid());
  f = fopen(path, "w");
  if (!f)
    return;
  for (unsigned i = 0; i < n; i++)
    if (notes[i].hop) /* a note being written as we exit is skipped */
      fprintf(f, "%u %u %u %llu %llu\n", notes[i].hop, notes[i].lane,
              notes[i].op,
              (unsigned long long)notes[i].id,
              (unsigned long long)notes[i].ns);
  fclose(f);
}

/* A forked child writes only what it notes itself. */
static void forked(void)
{
  atomic_store(&nnotes, 0);
}

/* Before main: every process that links trcommon checks the variable. */
__attribute__((constructor)) static void trace_init(void)
{
  dir = getenv("TREMOTE_TRACE_DIR");
  if (!dir || !*dir)
    return;
  notes = calloc(TRACE_MAX, sizeof(*notes));
  if (!notes)
    return;
  atexit(dump);
  pthread_atfork(NULL, NULL, forked);
  tr_trace_on = 1;
}
