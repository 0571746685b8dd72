/*
 * ring.h: the shared-memory lane between one application thread (the shim)
 * and the broker.
 *
 * A lane is one memfd segment the broker creates, seals against shrinking
 * and growing, and hands to the shim over the Unix socket (SCM_RIGHTS),
 * together with two eventfd doorbells.  It holds:
 *
 *   - the request ring  (records shim -> broker; the shim produces),
 *   - the reply ring    (records broker -> shim; the broker produces),
 *   - the upload area   (bulk bytes shim -> broker, named by tr_shmref),
 *   - the download area (bulk bytes broker -> shim, named by tr_shmref).
 *
 * Segment layout (offsets from the start of the memfd; all pinned with
 * _Static_assert in ring.c):
 *
 *   0x0000  struct tr_lane_hdr       magic, version, sizes (written once
 *                                    by the broker before handing it out)
 *   0x0100  struct tr_ring_ctl req   request ring control
 *   0x0200  struct tr_ring_ctl rep   reply ring control
 *   0x0300  struct tr_ring_ctl up    upload area control
 *   0x0400  struct tr_ring_ctl down  download area control
 *   0x1000  request ring bytes       TR_LANE_RING_SIZE
 *   ...     reply ring bytes         TR_LANE_RING_SIZE
 *   ...     upload area              TR_LANE_AREA_SIZE
 *   ...     download area            TR_LANE_AREA_SIZE
 *
 * Each ring or area is a byte ring with two monotonic 64-bit positions:
 * tail (advanced by the producer, release) and head (advanced by the
 * consumer, release), each on its own cache line so the two parties never
 * write the same line.  Offset in the buffer = position % size.
 *
 * Records in a ring are a 32-byte tr_hdr plus payload, padded to a multiple
 * of TR_RING_ALIGN (32).  A record is never split across the end of the
 * buffer: when it does not fit, the producer writes a PAD record covering
 * the rest of the buffer (always >= 32 bytes, since everything is 32-byte
 * aligned) and starts again at offset 0.  Bulk chunks in the areas follow
 * the same rule, except that the skipped tail needs no marker: the tr_shmref
 * says where the chunk is.
 *
 * Trust: the broker treats the whole segment as hostile.  It copies each
 * record header out exactly once before checking it, reads positions the
 * client writes (req.tail, up.tail, rep.head, down.head) once per use and
 * validates them (never behind what was consumed, never more than one
 * buffer ahead), and bounds-checks every tr_shmref.  A violation makes
 * the broker drop that client; it never faults.
 *
 * Wake-up: the consumer spins a bounded number of times, then sets
 * ctl->waiting = 1, re-checks, and sleeps on the eventfd; the producer,
 * after publishing, issues a full fence and writes the eventfd only if
 * waiting is set.  No core is busy while idle, and the fast path costs no
 * system call.
 */
#ifndef TR_RING_H
#define TR_RING_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "tremote/proto.h"

#define TR_LANE_MAGIC 0x454e414cu /* "LANE" */
#define TR_LANE_VERSION 1u
#define TR_RING_ALIGN 32u
#define TR_LANE_RING_SIZE (256u << 10)  /* per direction */
#define TR_LANE_AREA_SIZE (8u << 20)    /* per direction */
#define TR_LANE_INLINE_MAX (64u << 10)  /* larger payloads go via an area */
#define TR_LANE_CTL_OFF 0x100u
#define TR_LANE_DATA_OFF 0x1000u
#define TR_LANE_SPIN 2000               /* polls before sleeping */
#define TR_LANE_SPIN_BULK 0             /* ... when waiting for bulk room */

/* Control block of one ring or area: 256 bytes, 4 cache lines. */
struct tr_ring_ctl {
  _Alignas(64) _Atomic uint64_t tail; /* producer's line */
  uint8_t pad0[56];
  _Alignas(64) _Atomic uint64_t head; /* consumer's line */
  uint8_t pad1[56];
  _Alignas(64) _Atomic uint32_t waiting; /* consumer asleep on its doorbell */
  uint8_t pad2[60];
  _Alignas(64) _Atomic uint32_t space_waiting; /* producer waits for space */
  uint8_t pad3[60];
};

/* Written by the broker before the segment is handed out. */
struct tr_lane_hdr {
  uint32_t magic;
  uint32_t version;
  uint32_t lane_id;
  uint32_t ring_size;
  uint32_t area_size;
  uint32_t inline_max;
  uint64_t total_size;
  uint64_t req_off, rep_off, up_off, down_off; /* buffer offsets */
  uint8_t pad[256 - 64];
};

/* Total bytes of a lane segment. */
#define TR_LANE_SIZE                                                           \
  ((size_t)TR_LANE_DATA_OFF + 2 * (size_t)TR_LANE_RING_SIZE +                  \
   2 * (size_t)TR_LANE_AREA_SIZE)

/*
 * A mapped view of one ring or area, private to one process.  Which side
 * (producer or consumer) a process plays is fixed per ring; the cached
 * positions make the fast path touch the other side's line only when the
 * cache says there is no room or nothing to read.
 */
struct tr_ring {
  struct tr_ring_ctl *ctl;
  uint8_t *buf;
  uint32_t size;
  uint64_t pos;        /* my own position (tail if producer, head if consumer) */
  uint64_t other;      /* last value read of the other side's position */
  uint64_t committed;  /* consumer: end of the record tr_ring_peek() handed
                          out and not yet released (== pos when none) */
  uint32_t area;       /* areas: TR_AREA_UP or TR_AREA_DOWN, checked against
                          tr_shmref.area; record rings: UINT32_MAX */
  const char *err;     /* NULL, or why the peer broke this ring's rules (a
                          position out of range, a bad record).  Sticky:
                          every later call fails; the caller drops the peer */
};

/*
 * The lane as one process sees it.  Owns nothing but the mapping: the fds
 * belong to whoever called tr_lane_map() and are closed by tr_lane_unmap().
 */
struct tr_lane {
  void *base;
  size_t size;
  int req_efd; /* shim -> broker doorbell: request ring and released space */
  int rep_efd; /* broker -> shim doorbell: reply ring and download area */
  struct tr_lane_hdr *hdr;
  struct tr_ring req, rep, up, down;
};

/*
 * Broker side: create a lane segment (memfd, sized, headers written, sealed
 * with F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_SEAL) and its two eventfds, mapped.
 * On success the caller owns *memfd (to send with SCM_RIGHTS and then
 * close) and the lane.  Returns 0 or -errno.
 */
int tr_lane_create(struct tr_lane *l, uint32_t lane_id, int *memfd);

/*
 * Shim side: map a segment received from the broker and check its header
 * against the constants above.  Takes ownership of memfd (closed after
 * mapping), req_efd and rep_efd.  Returns 0, -EPROTO on a header mismatch,
 * or -errno.  It also checks the memfd before trusting it: the size is
 * TR_LANE_SIZE and F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_SEAL are set
 * (-EPROTO otherwise).  On failure all three fds are closed too.
 *
 * The eventfds are blocking (EFD_CLOEXEC only, no EFD_NONBLOCK): the file
 * status flags are shared by both processes, and io_uring completes a read
 * on an O_NONBLOCK eventfd at once with -EAGAIN instead of waiting.
 * tr_ring_wait() polls before it reads, so it never blocks in read().
 */
int tr_lane_map(struct tr_lane *l, int memfd, int req_efd, int rep_efd);

/* Unmap and close both eventfds. */
void tr_lane_unmap(struct tr_lane *l);

/* ---- barriers --------------------------------------------------------- */

/*
 * The full fence of the doorbell protocol (mfence/locked op on x86), for
 * every party that sets a flag or a position and then reads the other's.  gcc
 * refuses atomic_thread_fence() under -fsanitize=thread (TSan does not
 * model fences); there we emit the same instruction behind TSan's back.
 * TSan still sees every hand-over of data, which goes through the
 * release/acquire pairs on the positions, not through this fence.
 */
static inline void tr_smp_mb(void)
{
#if defined(__SANITIZE_THREAD__) && defined(__x86_64__)
  __asm__ __volatile__("mfence" ::: "memory");
#elif defined(__SANITIZE_THREAD__) && defined(__aarch64__)
  __asm__ __volatile__("dmb ish" ::: "memory");
#else
  atomic_thread_fence(memory_order_seq_cst);
#endif
}

/* What a spinning waiter does between two polls. */
static inline void tr_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield" ::: "memory");
#else
  atomic_signal_fence(memory_order_seq_cst);
#endif
}

/* ---- records (request and reply rings) ------------------------------- */

/* Bytes a record of payload_len occupies in a ring (header + pad). */
static inline uint32_t tr_ring_rec_size(uint32_t payload_len)
{
  return (TR_HDR_SIZE + payload_len + TR_RING_ALIGN - 1) & ~(TR_RING_ALIGN - 1);
}

/*
 * Producer: reserve room for a record with payload_len payload bytes
 * (payload_len <= TR_LANE_INLINE_MAX).  Returns a pointer where the caller
 * writes the packed header and the payload, or NULL if the ring is full
 * now (the caller waits for space and retries), payload_len is too large,
 * or the consumer's head is out of range (then r->err is set).  Nothing is
 * visible to the consumer until tr_ring_commit().
 */
uint8_t *tr_ring_reserve(struct tr_ring *r, uint32_t payload_len);

/* Producer: publish the record reserved last (release store of tail). */
void tr_ring_commit(struct tr_ring *r, uint32_t payload_len);

/*
 * Consumer: look at the next record.  Skips PAD records itself.  On
 * success copies the header out (once), checks it with tr_hdr_check()
 * (payload <= TR_LANE_INLINE_MAX), and sets *h and *payload (pointing into
 * shared memory: the producer may still scribble on it, so copy what you
 * use).  Returns 1 if a record is there, 0 if the ring is empty, or
 * -EPROTO if the producer wrote garbage (bad header, tail out of range):
 * the caller drops the peer.  *why gets a static message on error.
 */
int tr_ring_peek(struct tr_ring *r, struct tr_hdr *h, const uint8_t **payload,
                 const char **why);

/*
 * Consumer: release the record last returned by tr_ring_peek() (h is not
 * trusted: the size checked by the peek is used).  A no-op if none is out.
 * Then call tr_ring_kick_space() in case the producer waits for room.
 */
void tr_ring_release(struct tr_ring *r, const struct tr_hdr *h);

/* ---- bulk areas ------------------------------------------------------- */

/*
 * Producer: reserve len contiguous bytes (len <= size), skipping the rest
 * of the buffer if they do not fit before its end.  A chunk longer than
 * size / 2 fits only where the buffer's end leaves room for it, so keep
 * chunks at most half the area (TR_CHUNK_MAX is an eighth of it).  Returns a pointer and
 * fills *ref (area id set by the caller beforehand in ref->area), or NULL
 * if there is no room now.  The bytes belong to the consumer once the
 * record naming them is published; the producer must not reuse them until
 * the consumer has released them.
 */
uint8_t *tr_area_reserve(struct tr_ring *a, uint64_t len, struct tr_shmref *ref);
/* The area's tail is published by tr_area_reserve() itself: it only bounds
   what tr_area_resolve() accepts; the bytes are handed over by the release
   store of the record ring's tail that names them. */

/*
 * Consumer: resolve a reference read from a peer.  Checks that the area
 * matches, len <= size, the chunk does not cross the end of the buffer,
 * and ref->pos lies within [head, tail] of what the producer published.
 * Returns a pointer to the bytes, or NULL (*why set) if the reference is
 * out of bounds: the caller drops the peer.
 */
const uint8_t *tr_area_resolve(struct tr_ring *a, const struct tr_shmref *ref,
                               const char **why);

/* Consumer: everything up to ref->pos + ref->len may be reused. */
void tr_area_release(struct tr_ring *a, const struct tr_shmref *ref);

/* Producer side of an area: bytes free right now (for flow control), as
   the largest len tr_area_reserve() would accept now: free bytes, less the
   ones before the buffer's end that a longer chunk has to skip.  0 if the
   consumer's head is out of range (a->err set). */
uint64_t tr_area_free(struct tr_ring *a);

/* ---- doorbells -------------------------------------------------------- */

/*
 * Producer, after commit: fence, then ring efd if the consumer sleeps.
 * Returns 1 if it wrote the eventfd (and cleared waiting, so that a burst
 * of commits costs one write), 0 if nobody sleeps, or -errno.
 */
int tr_ring_kick(struct tr_ring *r, int efd);

/*
 * Consumer (a blocking thread, i.e. the shim): wait until the ring has
 * something (ready(arg) returns nonzero), spinning TR_LANE_SPIN times then
 * sleeping on efd.  ready == NULL means "r has a published record or
 * garbage to report" (tr_ring_peek() then tells which).  timeout_ms < 0
 * waits forever; returns 0, -ETIMEDOUT, or -errno.  The broker does not use this: its io_uring loop reads the
 * eventfd itself after setting waiting (see tr_ring_arm()).
 */
int tr_ring_wait(struct tr_ring *r, int efd, int (*ready)(void *), void *arg,
                 int timeout_ms);

/*
 * Consumer driven by an event loop: set waiting = 1 and return 1 if the
 * ring is still empty (go to sleep on the eventfd), or clear waiting and
 * return 0 if something arrived meanwhile (process it now).
 */
int tr_ring_arm(struct tr_ring *r);

/*
 * Flow control, the same protocol in the other direction, on space_waiting.
 * A producer whose tr_ring_reserve() or tr_area_reserve() returned NULL
 * waits until the consumer's head moves past the value that reserve saw
 * (r->other), then retries; the consumer, after releasing, calls
 * tr_ring_kick_space() with the producer's doorbell.
 *
 *   while (!(p = tr_ring_reserve(r, len)))
 *     if (r->err || (rc = tr_ring_wait_space(r, efd, deadline)) < 0) fail;
 */

/* Consumer, after a release: fence, then ring efd if the producer waits for
   space.  Returns 1 if it wrote the eventfd, 0 if nobody waits, or -errno. */
int tr_ring_kick_space(struct tr_ring *r, int efd);

/* Producer (blocking thread): wait until the consumer's head moved past
   r->other; spin, then set space_waiting, re-check, sleep on efd.  Returns
   0 (retry the reserve), -ETIMEDOUT, -EPROTO (head out of range), -errno. */
int tr_ring_wait_space(struct tr_ring *r, int efd, int timeout_ms);

/* Producer driven by an event loop: set space_waiting = 1 and return 1 if
   the head has not moved (sleep on the eventfd), or clear it and return 0
   (retry the reserve now). */
int tr_ring_arm_space(struct tr_ring *r);

#endif /* TR_RING_H */
