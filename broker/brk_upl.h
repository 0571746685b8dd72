/*
 * brk_upl.h: a lane's zero-copy uploads, the FIFO of upload-area chunks
 * that HTTP/2 streams queue by reference.
 *
 * A bulk upload chunk (at least BRK_LANE_ZC_MIN bytes) goes into a
 * stream's byte queue by reference to the lane's upload area instead of
 * copied (brk_h2_stream_write_ref).  The area can only be released in
 * order, from its head, while the streams let go of their chunks in any
 * order; struct brk_upl turns the one into the other, and keeps the lane's
 * mapping alive for chunks still queued when the lane is freed.  See
 * brk_upl.c for why it is built that way.
 *
 * Ownership.  The lane owns its brk_upl (struct brk_lane.upl) until
 * brk_upl_release(); from then on the brk_upl owns itself and the lane's
 * mapping, and frees both when the last queued chunk is done.  Each entry
 * from brk_upl_push() belongs to the brk_upl; the byte queue holding the
 * chunk only passes it back, once, to brk_upl_done().
 *
 * Everything runs on the broker's loop thread; nothing here is locked.
 */
#ifndef BRK_UPL_H
#define BRK_UPL_H

#include "ring.h"
#include "tremote/proto.h"

struct brk_upl;
struct brk_upl_ent;

/*
 * A FIFO for the upload area *up (the lane's l.up, which must stay at that
 * address until brk_upl_release).  space(arg) is called after the area's
 * head moved when a chunk was done, so that a shim waiting for upload
 * space can be woken; it is never called after brk_upl_release.  Returns
 * NULL when out of memory.
 */
struct brk_upl *brk_upl_new(struct tr_ring *up, void (*space)(void *arg),
                            void *arg);

/* Free a FIFO that no chunk was ever pushed on and that was not released
   (the lane's creation failed). */
void brk_upl_free(struct brk_upl *u);

/*
 * An entry for upload chunk *ref, about to be queued by reference: pass it
 * as the argument of brk_upl_done, the queue's done callback, or call
 * brk_upl_done(entry) directly if the chunk could not be queued after all.
 * Returns NULL when the FIFO is full (BRK_LANE_ZC_MAX chunks outstanding):
 * copy the chunk instead, and call brk_upl_finish.
 */
struct brk_upl_ent *brk_upl_push(struct brk_upl *u,
                                 const struct tr_shmref *ref);

/* Upload chunk *ref is finished with now, never queued by reference
   (copied, or answered here): its space goes back to the shim at once, or
   with the newest chunk still queued. */
void brk_upl_finish(struct brk_upl *u, const struct tr_shmref *ref);

/*
 * The byte queue let go of a chunk (brk_bq_append_ref's done callback; arg
 * is the entry from brk_upl_push).  Releases the area over every chunk
 * done in arrival order and calls space; after brk_upl_release, the last
 * chunk done unmaps the lane and frees the brk_upl.
 */
void brk_upl_done(void *arg);

/*
 * The lane is being freed: hand over its mapping *l (whose l->up was given
 * to brk_upl_new).  With no chunk queued, *l is unmapped and u freed now;
 * otherwise the doorbells are closed (of no more use), the brk_upl keeps
 * the mapping and unmaps it, and frees itself, in the brk_upl_done of the
 * last chunk.  Either way neither u nor *l is the caller's afterwards.
 */
void brk_upl_release(struct brk_upl *u, struct tr_lane *l);

#endif
