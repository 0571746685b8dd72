/*
 * brk_upl.c: zero-copy uploads (the contract is in brk_upl.h).
 *
 * A bulk upload chunk (at least BRK_LANE_ZC_MIN bytes) is not copied into
 * the stream's queue: the queue refers to the bytes in the upload area
 * (brk_h2_stream_write_ref), so writev() sends them from shared memory
 * straight to the socket, and the area space is released only once the
 * queue has let go of them (brk_upl_done).
 *
 * Order.  tr_area_release() moves the area's head to the end of the chunk
 * it is given, handing everything before it back to the shim, so chunks
 * must be released in the order they arrived, although a lane's records go
 * to several machines' streams and are written out in any order.  struct
 * brk_upl keeps a FIFO of the chunks still referenced, each with a done
 * flag, and the head advances only over the done prefix.  A chunk finished
 * with at once (copied, or answered here) while older ones are still
 * queued is folded into the newest entry's end (released with it), so it
 * costs no slot.  When the FIFO is full, chunks are copied.  References
 * are checked by tr_area_resolve() but may overlap or repeat; that only
 * holds back the client's own space.
 *
 * Lifetime.  A stream can outlive its lane (LANE_CLOSE ends it after what
 * is queued; a dropped client's is reset, but its queue stays until the
 * stream is freed), so referenced bytes may still be queued when the lane
 * is freed.  Rather than copy them out then, lane_free() hands the lane's
 * mapping to the brk_upl (brk_upl_release), which unmaps it when the last
 * referenced chunk is done (or when brk_h2 frees the stream).  Nothing can
 * fail on that path, and no writev() ever reads unmapped memory.
 *
 * Trust.  The shim can scribble on a chunk while it is queued.  That only
 * changes the payload bytes of its own request: the record header and
 * length were built in our memory and copied into the queue, the reference
 * was copied out and checked once, and nothing the broker decides on is
 * read from the chunk, so the framing the agent sees cannot change.
 */
#include <stdlib.h>
#include <unistd.h>

#include "brk.h"
#include "brk_upl.h"

struct brk_upl_ent {
  struct brk_upl *u;
  uint64_t end; /* release the area up to here once this and all before
                   it are done */
  int done;
};

struct brk_upl {
  struct tr_ring *up; /* the lane's upload area; NULL once the lane is
                         freed */
  void (*space)(void *arg); /* the area's head moved (brk_upl_new) */
  void *arg;
  struct tr_lane l;  /* the lane's mapping, once the lane is freed */
  unsigned head, n;  /* the FIFO is e[head .. head + n) */
  unsigned live;     /* entries still referenced by some queue */
  struct brk_upl_ent e[BRK_LANE_ZC_MAX];
};

struct brk_upl *brk_upl_new(struct tr_ring *up, void (*space)(void *arg),
                            void *arg)
{
  struct brk_upl *u = calloc(1, sizeof(*u));

  if (!u)
    return NULL;
  u->up = up;
  u->space = space;
  u->arg = arg;
  return u;
}

void brk_upl_free(struct brk_upl *u)
{
  free(u);
}

void brk_upl_finish(struct brk_upl *u, const struct tr_shmref *ref)
{
  struct brk_upl_ent *t;
  uint64_t end = ref->pos + ref->len;

  if (!u->n) {
    tr_area_release(u->up, ref);
    return;
  }
  t = &u->e[(u->head + u->n - 1) % BRK_LANE_ZC_MAX];
  if (end > t->end)
    t->end = end;
}

struct brk_upl_ent *brk_upl_push(struct brk_upl *u,
                                 const struct tr_shmref *ref)
{
  struct brk_upl_ent *e;

  if (u->n == BRK_LANE_ZC_MAX)
    return NULL;
  e = &u->e[(u->head + u->n) % BRK_LANE_ZC_MAX];
  e->u = u;
  e->end = ref->pos + ref->len;
  e->done = 0;
  u->n++;
  u->live++;
  return e;
}

void brk_upl_done(void *arg)
{
  struct brk_upl_ent *e = arg;
  struct brk_upl *u = e->u;
  int moved = 0;

  e->done = 1;
  u->live--;
  if (!u->up) {
    if (!u->live) {
      tr_lane_unmap(&u->l);
      free(u);
    }
    return;
  }
  while (u->n && u->e[u->head].done) {
    struct tr_shmref ref = {TR_AREA_UP, u->e[u->head].end, 0};

    tr_area_release(u->up, &ref);
    u->head = (u->head + 1) % BRK_LANE_ZC_MAX;
    u->n--;
    moved = 1;
  }
  if (moved)
    u->space(u->arg);
}

void brk_upl_release(struct brk_upl *u, struct tr_lane *l)
{
  if (!u->live) {
    tr_lane_unmap(l);
    free(u);
    return;
  }
  /* Streams still queue chunks of the upload area by reference: the
     mapping stays until the last is done (brk_upl_done unmaps it).  The
     doorbells are of no more use. */
  close(l->req_efd);
  close(l->rep_efd);
  l->req_efd = l->rep_efd = -1;
  u->l = *l;
  u->up = NULL;
}
