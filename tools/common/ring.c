/*
 * ring.c: the shared-memory lane between a shim thread and the broker.
 * The contract is tools/common/ring.h; the prose is docs/PROTOCOL.md §2.
 *
 * Two rules shape everything below.
 *
 * 1. The other party may be hostile (the broker trusts no client) or simply
 *    buggy, and it can write any byte of the segment at any moment.  So a
 *    value that decides something is read from shared memory exactly once,
 *    into a local, and checked there: positions with one atomic load, record
 *    headers with one memcpy.  A check that fails sets r->err, which is
 *    sticky: the ring is then dead and the caller drops the peer.  Nothing
 *    the peer writes can make us read or write outside the segment.
 *
 * 2. Data moves by release/acquire on the positions, like liburing's
 *    io_uring_smp_store_release()/load_acquire(): the producer writes the
 *    bytes, then stores tail with release; the consumer loads tail with
 *    acquire, then reads the bytes; symmetrically for head, so the producer
 *    never overwrites bytes the consumer is still reading.  The doorbells
 *    are a Dekker pair (store my flag or position, full fence, load the
 *    other's), so a sleeper and a waker never miss each other.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memfd_create, F_ADD_SEALS */
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ring.h"

/* ---- layout, pinned ---------------------------------------------------- */

#define LANE_REQ_OFF ((size_t)TR_LANE_DATA_OFF)
#define LANE_REP_OFF (LANE_REQ_OFF + TR_LANE_RING_SIZE)
#define LANE_UP_OFF (LANE_REP_OFF + TR_LANE_RING_SIZE)
#define LANE_DOWN_OFF (LANE_UP_OFF + TR_LANE_AREA_SIZE)
#define LANE_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)
#define REC_SIZE_MAX ((TR_HDR_SIZE + TR_LANE_INLINE_MAX + TR_RING_ALIGN - 1) & \
                      ~(TR_RING_ALIGN - 1))

_Static_assert(sizeof(struct tr_ring_ctl) == 256, "tr_ring_ctl is 256 bytes");
_Static_assert(offsetof(struct tr_ring_ctl, tail) == 0, "tail at 0");
_Static_assert(offsetof(struct tr_ring_ctl, head) == 64, "head at 64");
_Static_assert(offsetof(struct tr_ring_ctl, waiting) == 128, "waiting at 128");
_Static_assert(offsetof(struct tr_ring_ctl, space_waiting) == 192,
               "space_waiting at 192");
_Static_assert(sizeof(struct tr_lane_hdr) == 256, "tr_lane_hdr is 256 bytes");
_Static_assert(offsetof(struct tr_lane_hdr, magic) == 0, "hdr.magic");
_Static_assert(offsetof(struct tr_lane_hdr, version) == 4, "hdr.version");
_Static_assert(offsetof(struct tr_lane_hdr, lane_id) == 8, "hdr.lane_id");
_Static_assert(offsetof(struct tr_lane_hdr, ring_size) == 12, "hdr.ring_size");
_Static_assert(offsetof(struct tr_lane_hdr, area_size) == 16, "hdr.area_size");
_Static_assert(offsetof(struct tr_lane_hdr, inline_max) == 20, "hdr.inline");
_Static_assert(offsetof(struct tr_lane_hdr, total_size) == 24, "hdr.total");
_Static_assert(offsetof(struct tr_lane_hdr, req_off) == 32, "hdr.req_off");
_Static_assert(offsetof(struct tr_lane_hdr, rep_off) == 40, "hdr.rep_off");
_Static_assert(offsetof(struct tr_lane_hdr, up_off) == 48, "hdr.up_off");
_Static_assert(offsetof(struct tr_lane_hdr, down_off) == 56, "hdr.down_off");
_Static_assert(TR_LANE_CTL_OFF >= sizeof(struct tr_lane_hdr),
               "controls follow the header");
_Static_assert(TR_LANE_CTL_OFF + 4 * sizeof(struct tr_ring_ctl) <=
                   TR_LANE_DATA_OFF,
               "four controls fit before the data");
_Static_assert(LANE_DOWN_OFF + TR_LANE_AREA_SIZE == TR_LANE_SIZE,
               "buffers fill the segment");
_Static_assert(TR_LANE_RING_SIZE % TR_RING_ALIGN == 0 &&
                   TR_LANE_DATA_OFF % 4096 == 0 &&
                   TR_LANE_AREA_SIZE % 4096 == 0,
               "buffers are aligned");
/* An empty ring must always take the largest record plus the PAD before it
   (which is shorter than the record), or a producer could wait forever. */
_Static_assert(2 * REC_SIZE_MAX <= TR_LANE_RING_SIZE, "ring holds any record");
_Static_assert(TR_CHUNK_MAX <= TR_LANE_AREA_SIZE / 2, "area holds any chunk");
/* Positions and flags are shared between processes: only lock-free atomics
   work there (a lock would live in one process's memory). */
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2 && ATOMIC_INT_LOCK_FREE == 2,
               "lock-free 64- and 32-bit atomics");
_Static_assert(sizeof(_Atomic uint64_t) == 8 && sizeof(_Atomic uint32_t) == 4,
               "atomics have the plain size");

/* ---- barriers ------------------------------------------------------------ */

static inline uint64_t load_acquire(_Atomic uint64_t *p)
{
  return atomic_load_explicit(p, memory_order_acquire);
}

static inline void store_release(_Atomic uint64_t *p, uint64_t v)
{
  atomic_store_explicit(p, v, memory_order_release);
}


/* ---- segment ------------------------------------------------------------- */

static void ring_init(struct tr_ring *r, void *ctl, uint8_t *buf,
                      uint32_t size, uint32_t area)
{
  memset(r, 0, sizeof(*r));
  r->ctl = ctl;
  r->buf = buf;
  r->size = size;
  r->area = area;
}

/*
 * Views of a fresh segment: every position starts at 0 on both sides.  The
 * geometry comes from our constants, never from the header in shared
 * memory (tr_lane_map() has checked that the two agree).
 */
static void lane_setup(struct tr_lane *l, void *base)
{
  uint8_t *b = base;

  l->base = base;
  l->size = TR_LANE_SIZE;
  l->hdr = base;
  ring_init(&l->req, b + TR_LANE_CTL_OFF, b + LANE_REQ_OFF, TR_LANE_RING_SIZE,
            UINT32_MAX);
  ring_init(&l->rep, b + TR_LANE_CTL_OFF + 0x100, b + LANE_REP_OFF,
            TR_LANE_RING_SIZE, UINT32_MAX);
  ring_init(&l->up, b + TR_LANE_CTL_OFF + 0x200, b + LANE_UP_OFF,
            TR_LANE_AREA_SIZE, TR_AREA_UP);
  ring_init(&l->down, b + TR_LANE_CTL_OFF + 0x300, b + LANE_DOWN_OFF,
            TR_LANE_AREA_SIZE, TR_AREA_DOWN);
}

static void lane_hdr_fill(struct tr_lane_hdr *h, uint32_t lane_id)
{
  memset(h, 0, sizeof(*h));
  h->magic = TR_LANE_MAGIC;
  h->version = TR_LANE_VERSION;
  h->lane_id = lane_id;
  h->ring_size = TR_LANE_RING_SIZE;
  h->area_size = TR_LANE_AREA_SIZE;
  h->inline_max = TR_LANE_INLINE_MAX;
  h->total_size = TR_LANE_SIZE;
  h->req_off = LANE_REQ_OFF;
  h->rep_off = LANE_REP_OFF;
  h->up_off = LANE_UP_OFF;
  h->down_off = LANE_DOWN_OFF;
}

int tr_lane_create(struct tr_lane *l, uint32_t lane_id, int *memfd)
{
  void *base;
  int fd, rc;

  memset(l, 0, sizeof(*l));
  l->req_efd = l->rep_efd = -1;
  fd = memfd_create("tremote-lane", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0)
    return -errno;
  if (ftruncate(fd, (off_t)TR_LANE_SIZE) < 0 ||
      fcntl(fd, F_ADD_SEALS, LANE_SEALS) < 0) {
    rc = -errno;
    goto out_close;
  }
  base = mmap(NULL, TR_LANE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    rc = -errno;
    goto out_close;
  }
  /* A new memfd reads as zeros: the controls need no initialisation. */
  lane_hdr_fill(base, lane_id);

  /* Blocking on purpose, see ring.h at tr_lane_map(). */
  l->req_efd = eventfd(0, EFD_CLOEXEC);
  if (l->req_efd < 0) {
    rc = -errno;
    goto out_unmap;
  }
  l->rep_efd = eventfd(0, EFD_CLOEXEC);
  if (l->rep_efd < 0) {
    rc = -errno;
    goto out_req;
  }
  lane_setup(l, base);
  *memfd = fd;
  return 0;

out_req:
  close(l->req_efd);
  l->req_efd = -1;
out_unmap:
  munmap(base, TR_LANE_SIZE);
out_close:
  close(fd);
  return rc;
}

int tr_lane_map(struct tr_lane *l, int memfd, int req_efd, int rep_efd)
{
  struct tr_lane_hdr want, got;
  struct stat st;
  void *base;
  int seals, rc;

  memset(l, 0, sizeof(*l));
  l->req_efd = l->rep_efd = -1;

  /*
   * Check the file before mapping it: a segment that can shrink could
   * SIGBUS us on any access, one that can grow could change under us.
   * The seals are checked first so that the size we check stays true.
   */
  seals = fcntl(memfd, F_GET_SEALS);
  if (seals < 0) {
    /* EINVAL: not a file that supports sealing (not a memfd). */
    rc = errno == EINVAL ? -EPROTO : -errno;
    goto out_fds;
  }
  if ((seals & LANE_SEALS) != LANE_SEALS) {
    rc = -EPROTO;
    goto out_fds;
  }
  if (fstat(memfd, &st) < 0) {
    rc = -errno;
    goto out_fds;
  }
  if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != TR_LANE_SIZE) {
    rc = -EPROTO;
    goto out_fds;
  }
  base = mmap(NULL, TR_LANE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
  if (base == MAP_FAILED) {
    rc = -errno;
    goto out_fds;
  }

  /* One copy of the header, compared whole with what we would write. */
  memcpy(&got, base, sizeof(got));
  lane_hdr_fill(&want, got.lane_id);
  memset(got.pad, 0, sizeof(got.pad)); /* reserved: not ours to judge */
  if (memcmp(&got, &want, sizeof(got)) != 0) {
    rc = -EPROTO;
    goto out_unmap;
  }

  close(memfd);
  lane_setup(l, base);
  l->req_efd = req_efd;
  l->rep_efd = rep_efd;
  return 0;

out_unmap:
  munmap(base, TR_LANE_SIZE);
out_fds:
  close(memfd);
  close(req_efd);
  close(rep_efd);
  return rc;
}

void tr_lane_unmap(struct tr_lane *l)
{
  if (l->base)
    munmap(l->base, l->size);
  if (l->req_efd >= 0)
    close(l->req_efd);
  if (l->rep_efd >= 0)
    close(l->rep_efd);
  memset(l, 0, sizeof(*l));
  l->req_efd = l->rep_efd = -1;
}

/* ---- positions ------------------------------------------------------------ */

/*
 * Producer: read the consumer's head, once, and accept it only if it lies in
 * [what we saw last, what we published]: a head that went back or passed our
 * tail would make the free-space arithmetic lie.
 */
static int prod_sync(struct tr_ring *r)
{
  uint64_t h = load_acquire(&r->ctl->head);

  if (h - r->other > r->pos - r->other) {
    r->err = "consumer head out of range";
    return -EPROTO;
  }
  r->other = h;
  return 0;
}

/*
 * Producer: is there room for `bytes` more bytes at the tail?  Looks at the
 * consumer's head only when the cached value says no, so the fast path
 * does not touch the consumer's cache line.
 */
static bool prod_room(struct tr_ring *r, uint64_t bytes)
{
  if (r->pos + bytes - r->other <= r->size)
    return true;
  return prod_sync(r) == 0 && r->pos + bytes - r->other <= r->size;
}

/*
 * Consumer: read the producer's tail, once, and accept it only if it is at
 * most one buffer ahead of what we consumed.  Returns 0 or -EPROTO.
 */
static int cons_sync(struct tr_ring *r)
{
  uint64_t t = load_acquire(&r->ctl->tail);

  if (t - r->pos > r->size) {
    r->err = "producer tail out of range";
    return -EPROTO;
  }
  r->other = t;
  return 0;
}

/* ---- records --------------------------------------------------------------- */

uint8_t *tr_ring_reserve(struct tr_ring *r, uint32_t payload_len)
{
  uint32_t need, off, skip;
  struct tr_hdr pad;

  if (r->err || payload_len > TR_LANE_INLINE_MAX)
    return NULL;
  need = tr_ring_rec_size(payload_len);
  off = (uint32_t)(r->pos % r->size);
  skip = off + need > r->size ? r->size - off : 0;
  if (!prod_room(r, (uint64_t)skip + need))
    return NULL;
  if (skip) {
    /* Not visible until the commit, which publishes PAD and record at once. */
    tr_hdr_init(&pad, TR_OP_PAD, 0, 0, skip - TR_HDR_SIZE);
    tr_hdr_pack(&pad, r->buf + off);
    r->pos += skip;
  }
  return r->buf + r->pos % r->size;
}

void tr_ring_commit(struct tr_ring *r, uint32_t payload_len)
{
  r->pos += tr_ring_rec_size(payload_len);
  store_release(&r->ctl->tail, r->pos);
}

int tr_ring_peek(struct tr_ring *r, struct tr_hdr *h, const uint8_t **payload,
                 const char **why)
{
  uint8_t raw[TR_HDR_SIZE];
  struct tr_hdr hd;
  uint64_t avail;
  uint32_t off, rs;

  while (!r->err) {
    if (r->other == r->pos) {
      if (cons_sync(r) < 0)
        break;
      if (r->other == r->pos)
        return 0;
    }
    avail = r->other - r->pos;
    off = (uint32_t)(r->pos % r->size);
    if (avail < TR_HDR_SIZE || off + TR_HDR_SIZE > r->size) {
      r->err = "record header cut short";
      break;
    }
    /* The one read of this header: everything below uses the copy. */
    memcpy(raw, r->buf + off, TR_HDR_SIZE);
    tr_hdr_unpack(raw, &hd);
    if (tr_hdr_check(&hd, TR_LANE_INLINE_MAX, 1, &r->err) < 0)
      break;
    if (hd.opcode == TR_OP_PAD) {
      /* A PAD only ever fills the rest of the buffer. */
      if (TR_HDR_SIZE + (uint64_t)hd.payload_len != r->size - off) {
        r->err = "PAD does not reach the end of the buffer";
        break;
      }
      if (r->size - off > avail) {
        r->err = "PAD beyond the published tail";
        break;
      }
      r->pos += r->size - off;
      r->committed = r->pos;
      store_release(&r->ctl->head, r->pos);
      continue;
    }
    rs = tr_ring_rec_size(hd.payload_len);
    if (rs > avail) {
      r->err = "record beyond the published tail";
      break;
    }
    if (off + rs > r->size) {
      r->err = "record crosses the end of the buffer";
      break;
    }
    *h = hd;
    *payload = r->buf + off + TR_HDR_SIZE;
    r->committed = r->pos + rs;
    return 1;
  }
  if (why)
    *why = r->err;
  return -EPROTO;
}

void tr_ring_release(struct tr_ring *r, const struct tr_hdr *h)
{
  /* The size comes from our own checked copy, not from h: the caller may
     have re-read the header, and the producer may have changed it. */
  if (r->err || r->committed == r->pos)
    return;
  r->pos = r->committed;
  store_release(&r->ctl->head, r->pos);
}

/* ---- bulk areas ----------------------------------------------------------- */

uint8_t *tr_area_reserve(struct tr_ring *a, uint64_t len, struct tr_shmref *ref)
{
  uint64_t off, skip;

  if (a->err || len > a->size)
    return NULL;
  off = a->pos % a->size;
  skip = off + len > a->size ? a->size - off : 0;
  if (!prod_room(a, skip + len))
    return NULL;
  ref->area = a->area;
  ref->pos = a->pos + skip;
  ref->len = len;
  a->pos = ref->pos + len;
  /*
   * Publishing now, before the caller writes the bytes, is safe: the tail
   * only bounds what the consumer accepts.  The bytes themselves are
   * handed over by the release store of the record that names them.
   */
  store_release(&a->ctl->tail, a->pos);
  return a->buf + ref->pos % a->size;
}

const uint8_t *tr_area_resolve(struct tr_ring *a, const struct tr_shmref *ref,
                               const char **why)
{
  const char *dummy;
  uint64_t off;

  if (!why)
    why = &dummy;
  if (a->err) {
    *why = a->err;
    return NULL;
  }
  if (ref->area != a->area) {
    *why = "shmref names another area";
    return NULL;
  }
  if (ref->len > a->size) {
    *why = "shmref longer than the area";
    return NULL;
  }
  off = ref->pos % a->size;
  if (off + ref->len > a->size) {
    *why = "shmref crosses the end of the area";
    return NULL;
  }
  if (ref->pos < a->pos) {
    *why = "shmref names bytes already released";
    return NULL;
  }
  /* Reload the tail only when the cached one does not cover the chunk. */
  if (ref->pos > a->other || ref->len > a->other - ref->pos) {
    if (cons_sync(a) < 0) {
      *why = a->err;
      return NULL;
    }
    if (ref->pos > a->other || ref->len > a->other - ref->pos) {
      *why = "shmref beyond the published tail";
      return NULL;
    }
  }
  return a->buf + off;
}

void tr_area_release(struct tr_ring *a, const struct tr_shmref *ref)
{
  uint64_t end = ref->pos + ref->len;

  /* Only forward, and never past what the producer published: a reference
     that was never resolved must not hand the producer live bytes. */
  if (a->err || end == a->pos || end - a->pos > a->other - a->pos)
    return;
  a->pos = end;
  store_release(&a->ctl->head, end);
}

uint64_t tr_area_free(struct tr_ring *a)
{
  uint64_t free, end;

  if (a->err || prod_sync(a) < 0)
    return 0;
  free = a->size - (a->pos - a->other);
  end = a->size - a->pos % a->size; /* free bytes before the buffer's end */
  if (free <= end)
    return free;
  /* A chunk either fits before the end or skips it and starts at 0. */
  return end > free - end ? end : free - end;
}

/* ---- doorbells ------------------------------------------------------------ */

static int efd_ring(int efd)
{
  uint64_t one = 1;
  ssize_t n;

  do
    n = write(efd, &one, sizeof(one));
  while (n < 0 && errno == EINTR);
  return n == (ssize_t)sizeof(one) ? 1 : -errno;
}

/*
 * Wake the sleeper whose flag is *flag.  Called after a release store of a
 * position; the fence orders that store before the load of the flag, and
 * pairs with the fence in wait_on()/arm between the flag store and the
 * position load.  We clear the flag ourselves, so a burst of commits to a
 * sleeping consumer costs one write(); it sets the flag again before it
 * next sleeps.
 */
static int kick(_Atomic uint32_t *flag, int efd)
{
  tr_smp_mb();
  if (!atomic_load_explicit(flag, memory_order_relaxed))
    return 0;
  if (!atomic_exchange_explicit(flag, 0, memory_order_relaxed))
    return 0;
  return efd_ring(efd);
}

int tr_ring_kick(struct tr_ring *r, int efd)
{
  return kick(&r->ctl->waiting, efd);
}

int tr_ring_kick_space(struct tr_ring *r, int efd)
{
  return kick(&r->ctl->space_waiting, efd);
}

/* Consumer: anything to look at?  A bad tail counts: peek reports it. */
static int ring_has_data(void *arg)
{
  struct tr_ring *r = arg;

  if (r->err || r->other != r->pos)
    return 1;
  return load_acquire(&r->ctl->tail) != r->pos;
}

/* Producer: has the head moved since the last look?  <0 if out of range. */
static int head_moved(void *arg)
{
  struct tr_ring *r = arg;
  uint64_t before = r->other;

  if (r->err || prod_sync(r) < 0)
    return -EPROTO;
  return r->other != before;
}

struct user_ready {
  int (*ready)(void *);
  void *arg;
};

static int user_ready(void *arg)
{
  struct user_ready *u = arg;

  return u->ready(u->arg) != 0;
}

static int64_t now_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Sleep on efd for at most timeout_ms (-1: forever), then drain it.  One
 * read takes the whole counter (no EFD_SEMAPHORE).  We are the only reader
 * of this eventfd, so after POLLIN the read cannot block; EAGAIN is
 * tolerated anyway in case a peer handed us a non-blocking one.
 */
static int efd_sleep(int efd, int timeout_ms)
{
  struct pollfd p = {.fd = efd, .events = POLLIN};
  uint64_t v;
  int n;

  n = poll(&p, 1, timeout_ms);
  if (n < 0)
    return errno == EINTR ? 0 : -errno;
  if (n == 0)
    return -ETIMEDOUT;
  if (p.revents & POLLNVAL)
    return -EBADF;
  if (read(efd, &v, sizeof(v)) < 0 && errno != EAGAIN && errno != EINTR)
    return -errno;
  return 0;
}

/*
 * The sleeping half of the doorbell protocol: spin on cond, then raise
 * *flag, fence, look again (the producer may have published just before it
 * could see the flag), and only then sleep.  cond returns >0 when done, 0
 * to keep waiting, <0 on error.  Spurious wake-ups (a kick meant for an
 * earlier sleep) just go round the loop.
 */
static int wait_on(_Atomic uint32_t *flag, int efd, int (*cond)(void *),
                   void *arg, int timeout_ms)
{
  int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
  int64_t left;
  int rc;

  for (;;) {
    for (int i = 0; i < TR_LANE_SPIN; i++) {
      rc = cond(arg);
      if (rc)
        return rc < 0 ? rc : 0;
      tr_cpu_relax();
    }
    atomic_store_explicit(flag, 1, memory_order_relaxed);
    tr_smp_mb();
    rc = cond(arg);
    if (rc) {
      atomic_store_explicit(flag, 0, memory_order_relaxed);
      return rc < 0 ? rc : 0;
    }
    left = -1;
    if (deadline >= 0) {
      left = deadline - now_ms();
      left = left < 0 ? 0 : left > INT_MAX ? INT_MAX : left;
    }
    rc = efd_sleep(efd, (int)left);
    atomic_store_explicit(flag, 0, memory_order_relaxed);
    if (rc == -ETIMEDOUT) {
      rc = cond(arg);
      return rc < 0 ? rc : rc ? 0 : -ETIMEDOUT;
    }
    if (rc < 0)
      return rc;
  }
}

int tr_ring_wait(struct tr_ring *r, int efd, int (*ready)(void *), void *arg,
                 int timeout_ms)
{
  struct user_ready u = {ready, arg};

  if (!ready)
    return wait_on(&r->ctl->waiting, efd, ring_has_data, r, timeout_ms);
  return wait_on(&r->ctl->waiting, efd, user_ready, &u, timeout_ms);
}

int tr_ring_arm(struct tr_ring *r)
{
  atomic_store_explicit(&r->ctl->waiting, 1, memory_order_relaxed);
  tr_smp_mb();
  if (ring_has_data(r)) {
    atomic_store_explicit(&r->ctl->waiting, 0, memory_order_relaxed);
    return 0;
  }
  return 1;
}

int tr_ring_wait_space(struct tr_ring *r, int efd, int timeout_ms)
{
  return wait_on(&r->ctl->space_waiting, efd, head_moved, r, timeout_ms);
}

int tr_ring_arm_space(struct tr_ring *r)
{
  atomic_store_explicit(&r->ctl->space_waiting, 1, memory_order_relaxed);
  tr_smp_mb();
  /* On a bad head return 0 too: the retried reserve fails with r->err. */
  if (head_moved(r)) {
    atomic_store_explicit(&r->ctl->space_waiting, 0, memory_order_relaxed);
    return 0;
  }
  return 1;
}
