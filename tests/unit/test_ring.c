/*
 * test_ring.c: the shared-memory lane (tools/common/ring.h).
 *
 * Each test gets a fresh lane seen twice, as the two processes see it: the
 * broker's view from tr_lane_create() and the shim's from tr_lane_map() on
 * duplicated descriptors (a second mapping of the same pages).  The shim
 * produces on req/up and consumes rep/down; the tests use whichever pair
 * they need.  Hostile cases scribble on the shared memory the way a bad
 * peer could and expect an error, never a crash (the ASan build checks
 * that no byte outside the segment is touched).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "ring.h"

struct pair {
  struct tr_lane brk; /* tr_lane_create() */
  struct tr_lane shm; /* tr_lane_map() of the same segment */
};

static int pair_setup(void **state)
{
  static struct pair p;
  int memfd;

  assert_int_equal(tr_lane_create(&p.brk, 7, &memfd), 0);
  assert_int_equal(tr_lane_map(&p.shm, memfd, dup(p.brk.req_efd),
                               dup(p.brk.rep_efd)),
                   0);
  *state = &p;
  return 0;
}

static int pair_teardown(void **state)
{
  struct pair *p = *state;

  tr_lane_unmap(&p->shm);
  tr_lane_unmap(&p->brk);
  return 0;
}

/* Producer: one record of payload_len bytes, each byte = fill. */
static void put_rec(struct tr_ring *r, uint16_t opcode, uint64_t id,
                    uint32_t payload_len, uint8_t fill)
{
  struct tr_hdr h;
  uint8_t *p = tr_ring_reserve(r, payload_len);

  assert_non_null(p);
  tr_hdr_init(&h, opcode, 0, id, payload_len);
  tr_hdr_pack(&h, p);
  memset(p + TR_HDR_SIZE, fill, payload_len);
  tr_ring_commit(r, payload_len);
}

/* Consumer: expect exactly that record, then release it. */
static void get_rec(struct tr_ring *r, uint64_t id, uint32_t payload_len,
                    uint8_t fill)
{
  const uint8_t *payload;
  const char *why = NULL;
  struct tr_hdr h;

  assert_int_equal(tr_ring_peek(r, &h, &payload, &why), 1);
  assert_int_equal(h.request_id, id);
  assert_int_equal(h.payload_len, payload_len);
  for (uint32_t i = 0; i < payload_len; i++)
    assert_int_equal(payload[i], fill);
  tr_ring_release(r, &h);
}

/* Write a raw header at a ring offset, as a hostile producer would. */
static void raw_hdr(struct tr_ring *r, uint32_t off, uint32_t magic,
                    uint16_t opcode, uint32_t payload_len)
{
  struct tr_hdr h;

  tr_hdr_init(&h, opcode, 0, 1, payload_len);
  h.magic = magic;
  tr_hdr_pack(&h, r->buf + off);
}

static void set_tail(struct tr_ring *r, uint64_t v)
{
  atomic_store(&r->ctl->tail, v);
}

/* Move both sides of a record ring to `left` bytes before the buffer's end
   (left >= 64, a multiple of 32). */
static void advance_to_end(struct tr_ring *prod, struct tr_ring *cons,
                           uint32_t left)
{
  const uint32_t size = prod->size, big = 60000;
  uint32_t len;

  while (size - prod->pos % size > left + tr_ring_rec_size(big)) {
    put_rec(prod, TR_OP_NOP, 1, big, 1);
    get_rec(cons, 1, big, 1);
  }
  if (size - prod->pos % size == left)
    return;
  len = size - (uint32_t)(prod->pos % size) - left - TR_HDR_SIZE;
  put_rec(prod, TR_OP_NOP, 1, len, 2);
  get_rec(cons, 1, len, 2);
  assert_int_equal(size - prod->pos % size, left);
  assert_int_equal(cons->pos, prod->pos);
}

static void expect_eproto(struct tr_ring *r, const char *needle)
{
  const uint8_t *payload;
  const char *why = NULL;
  struct tr_hdr h;

  assert_int_equal(tr_ring_peek(r, &h, &payload, &why), -EPROTO);
  assert_non_null(why);
  if (needle)
    assert_non_null(strstr(why, needle));
  /* Sticky: the ring stays dead. */
  assert_int_equal(tr_ring_peek(r, &h, &payload, NULL), -EPROTO);
}

/* ---- layout --------------------------------------------------------------- */

static void test_layout(void **state)
{
  struct pair *p = *state;
  struct tr_lane_hdr *h = p->brk.hdr;
  uint8_t *b = p->brk.base;
  int flags;

  assert_int_equal(sizeof(struct tr_ring_ctl), 256);
  assert_int_equal(offsetof(struct tr_ring_ctl, tail), 0);
  assert_int_equal(offsetof(struct tr_ring_ctl, head), 64);
  assert_int_equal(offsetof(struct tr_ring_ctl, waiting), 128);
  assert_int_equal(offsetof(struct tr_ring_ctl, space_waiting), 192);
  assert_int_equal(sizeof(struct tr_lane_hdr), 256);
  assert_int_equal(TR_LANE_SIZE, 0x1000 + 2 * (256 << 10) + 2 * (8 << 20));

  assert_int_equal(h->magic, TR_LANE_MAGIC);
  assert_int_equal(h->version, TR_LANE_VERSION);
  assert_int_equal(h->lane_id, 7);
  assert_int_equal(h->ring_size, TR_LANE_RING_SIZE);
  assert_int_equal(h->area_size, TR_LANE_AREA_SIZE);
  assert_int_equal(h->inline_max, TR_LANE_INLINE_MAX);
  assert_int_equal(h->total_size, TR_LANE_SIZE);
  assert_int_equal(h->req_off, 0x1000);
  assert_int_equal(h->rep_off, 0x1000 + TR_LANE_RING_SIZE);
  assert_int_equal(h->up_off, 0x1000 + 2 * TR_LANE_RING_SIZE);
  assert_int_equal(h->down_off,
                   0x1000 + 2 * TR_LANE_RING_SIZE + TR_LANE_AREA_SIZE);

  /* The views point where the header says. */
  assert_ptr_equal(p->brk.req.ctl, (void *)(b + 0x100));
  assert_ptr_equal(p->brk.rep.ctl, (void *)(b + 0x200));
  assert_ptr_equal(p->brk.up.ctl, (void *)(b + 0x300));
  assert_ptr_equal(p->brk.down.ctl, (void *)(b + 0x400));
  assert_ptr_equal(p->brk.req.buf, b + h->req_off);
  assert_ptr_equal(p->brk.rep.buf, b + h->rep_off);
  assert_ptr_equal(p->brk.up.buf, b + h->up_off);
  assert_ptr_equal(p->brk.down.buf, b + h->down_off);
  assert_int_equal(p->shm.req.buf - (uint8_t *)p->shm.base, h->req_off);
  assert_int_equal(p->shm.down.buf - (uint8_t *)p->shm.base, h->down_off);
  assert_int_equal(p->brk.up.area, TR_AREA_UP);
  assert_int_equal(p->brk.down.area, TR_AREA_DOWN);

  /* Doorbells are blocking (io_uring would fail reads on O_NONBLOCK). */
  flags = fcntl(p->brk.req_efd, F_GETFL);
  assert_true(flags >= 0 && !(flags & O_NONBLOCK));
  assert_true(fcntl(p->brk.rep_efd, F_GETFD) & FD_CLOEXEC);
}

static void test_sealed(void **state)
{
  struct tr_lane l;
  int memfd, seals;

  (void)state;
  assert_int_equal(tr_lane_create(&l, 1, &memfd), 0);
  seals = fcntl(memfd, F_GET_SEALS);
  assert_int_equal(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
                   F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
  assert_int_equal(ftruncate(memfd, 4096), -1);
  assert_int_equal(fcntl(memfd, F_ADD_SEALS, F_SEAL_WRITE), -1);
  close(memfd);
  tr_lane_unmap(&l);
}

/* ---- tr_lane_map() refuses what it cannot trust --------------------------- */

static int make_memfd(size_t size, int seals)
{
  int fd = memfd_create("test-lane", MFD_CLOEXEC | MFD_ALLOW_SEALING);

  assert_true(fd >= 0);
  assert_int_equal(ftruncate(fd, (off_t)size), 0);
  if (seals)
    assert_int_equal(fcntl(fd, F_ADD_SEALS, seals), 0);
  return fd;
}

/* Map must fail with rc and close all three fds (ownership passes). */
static void expect_map_fails(int memfd, int rc)
{
  int a = eventfd(0, EFD_CLOEXEC), b = eventfd(0, EFD_CLOEXEC);
  struct tr_lane l;

  assert_int_equal(tr_lane_map(&l, memfd, a, b), rc);
  assert_int_equal(fcntl(memfd, F_GETFD), -1);
  assert_int_equal(fcntl(a, F_GETFD), -1);
  assert_int_equal(fcntl(b, F_GETFD), -1);
  assert_null(l.base);
}

static void copy_good_header(int fd)
{
  struct tr_lane src;
  int memfd;

  assert_int_equal(tr_lane_create(&src, 3, &memfd), 0);
  assert_int_equal(pwrite(fd, src.base, sizeof(struct tr_lane_hdr), 0),
                   (ssize_t)sizeof(struct tr_lane_hdr));
  close(memfd);
  tr_lane_unmap(&src);
}

static void test_map_rejects(void **state)
{
  const int all = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
  struct tr_lane_hdr bad;
  int fd, pfd[2];

  (void)state;
  /* Unsealed, even with a good header and size. */
  fd = make_memfd(TR_LANE_SIZE, 0);
  copy_good_header(fd);
  expect_map_fails(fd, -EPROTO);

  /* Sealed against growing and shrinking, but not F_SEAL_SEAL. */
  fd = make_memfd(TR_LANE_SIZE, 0);
  copy_good_header(fd);
  assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
  expect_map_fails(fd, -EPROTO);

  /* Sealed at the wrong size. */
  fd = make_memfd(TR_LANE_SIZE / 2, 0);
  copy_good_header(fd);
  assert_int_equal(fcntl(fd, F_ADD_SEALS, all), 0);
  expect_map_fails(fd, -EPROTO);
  fd = make_memfd(TR_LANE_SIZE + 4096, 0);
  copy_good_header(fd);
  assert_int_equal(fcntl(fd, F_ADD_SEALS, all), 0);
  expect_map_fails(fd, -EPROTO);

  /* Sealed, right size, header of zeros. */
  expect_map_fails(make_memfd(TR_LANE_SIZE, all), -EPROTO);

  /* Sealed, right size, one header field off. */
  fd = make_memfd(TR_LANE_SIZE, 0);
  copy_good_header(fd);
  assert_int_equal(pread(fd, &bad, sizeof(bad), 0), (ssize_t)sizeof(bad));
  bad.rep_off += 32;
  assert_int_equal(pwrite(fd, &bad, sizeof(bad), 0), (ssize_t)sizeof(bad));
  assert_int_equal(fcntl(fd, F_ADD_SEALS, all), 0);
  expect_map_fails(fd, -EPROTO);

  /* Not a memfd at all. */
  assert_int_equal(pipe(pfd), 0);
  close(pfd[1]);
  expect_map_fails(pfd[0], -EPROTO);

  /* And a good one is accepted, whatever its lane id. */
  fd = make_memfd(TR_LANE_SIZE, 0);
  copy_good_header(fd);
  assert_int_equal(fcntl(fd, F_ADD_SEALS, all), 0);
  {
    struct tr_lane l;

    assert_int_equal(tr_lane_map(&l, fd, eventfd(0, 0), eventfd(0, 0)), 0);
    assert_int_equal(l.hdr->lane_id, 3);
    tr_lane_unmap(&l);
  }
}

/* ---- records ---------------------------------------------------------------- */

static void test_basic(void **state)
{
  struct pair *p = *state;
  struct tr_ring *prod = &p->shm.req, *cons = &p->brk.req;
  const uint8_t *payload;
  struct tr_hdr h, h2;

  assert_int_equal(tr_ring_peek(cons, &h, &payload, NULL), 0);
  put_rec(prod, TR_OP_NOP, 1, 0, 0);
  put_rec(prod, TR_OP_MALLOC, 2, 8, 0xab);
  put_rec(prod, TR_OP_MEMCPY_H2D, 3, TR_LANE_INLINE_MAX, 0x5c);
  assert_int_equal(atomic_load(&prod->ctl->tail),
                   32 + 64 + tr_ring_rec_size(TR_LANE_INLINE_MAX));

  /* Peeking twice without a release gives the same record. */
  assert_int_equal(tr_ring_peek(cons, &h, &payload, NULL), 1);
  assert_int_equal(tr_ring_peek(cons, &h2, &payload, NULL), 1);
  assert_int_equal(h.request_id, 1);
  assert_int_equal(h2.request_id, 1);
  assert_int_equal(h.opcode, TR_OP_NOP);
  tr_ring_release(cons, &h);
  assert_int_equal(atomic_load(&cons->ctl->head), 32);
  tr_ring_release(cons, &h); /* nothing out: no-op */
  assert_int_equal(atomic_load(&cons->ctl->head), 32);
  get_rec(cons, 2, 8, 0xab);
  get_rec(cons, 3, TR_LANE_INLINE_MAX, 0x5c);
  assert_int_equal(tr_ring_peek(cons, &h, &payload, NULL), 0);

  /* Too large for a ring. */
  assert_null(tr_ring_reserve(prod, TR_LANE_INLINE_MAX + 1));
  assert_null(prod->err);
}

static void test_wrap_pad(void **state)
{
  struct pair *p = *state;
  struct tr_ring *prod = &p->brk.rep, *cons = &p->shm.rep;
  const uint32_t size = TR_LANE_RING_SIZE, big = 60000;
  const uint8_t *payload;
  struct tr_hdr h;
  uint64_t id = 0, got = 0, pads = 0;
  uint32_t len;

  /* Records of awkward sizes, consumed as we go: many trips round. */
  for (int round = 0; round < 4000; round++) {
    len = (uint32_t)(round * 7919u) % (big + 1);
    id++;
    put_rec(prod, TR_OP_NOP, id, len, (uint8_t)id);
    if (prod->pos % size == tr_ring_rec_size(len))
      pads++; /* this one went to offset 0 */
    got++;
    get_rec(cons, got, len, (uint8_t)got);
  }
  assert_true(prod->pos > 100ull * size);
  assert_true(pads > 50);

  /* Exactly: fill up to 64 bytes before the end, then ask for 100. */
  advance_to_end(prod, cons, 96);
  len = 0;
  put_rec(prod, TR_OP_NOP, ++id, len, 2);
  assert_int_equal(size - prod->pos % size, 64);
  put_rec(prod, TR_OP_NOP, ++id, 100, 3);
  assert_int_equal(prod->pos % size, tr_ring_rec_size(100));
  {
    struct tr_hdr pad;

    tr_hdr_unpack(prod->buf + size - 64, &pad);
    assert_int_equal(pad.opcode, TR_OP_PAD);
    assert_int_equal(pad.payload_len, 32);
  }
  get_rec(cons, ++got, len, 2);
  get_rec(cons, ++got, 100, 3); /* the PAD was skipped */
  assert_int_equal(tr_ring_peek(cons, &h, &payload, NULL), 0);
  assert_int_equal(atomic_load(&cons->ctl->head),
                   atomic_load(&prod->ctl->tail));

  /* A record ending exactly at the buffer's end needs no PAD. */
  advance_to_end(prod, cons, 1024);
  len = 1024 - TR_HDR_SIZE;
  put_rec(prod, TR_OP_NOP, ++id, len, 4);
  assert_int_equal(prod->pos % size, 0);
  put_rec(prod, TR_OP_NOP, ++id, 0, 0);
  get_rec(cons, ++got, len, 4);
  get_rec(cons, ++got, 0, 0);
}

static void test_full(void **state)
{
  struct pair *p = *state;
  struct tr_ring *prod = &p->shm.req, *cons = &p->brk.req;
  const uint32_t len = 1000, rs = tr_ring_rec_size(len);
  uint64_t n = 0;

  while (tr_ring_reserve(prod, len)) {
    put_rec(prod, TR_OP_NOP, ++n, len, 9);
  }
  assert_int_equal(n, TR_LANE_RING_SIZE / rs);
  assert_null(prod->err);
  /* Something smaller still fits in what is left. */
  assert_true(TR_LANE_RING_SIZE - n * rs >= 32);
  put_rec(prod, TR_OP_NOP, ++n, 0, 0);
  assert_null(tr_ring_reserve(prod, len));
  /* Releasing one record makes room for one more, after a wait. */
  assert_int_equal(tr_ring_arm_space(prod), 1);
  assert_int_equal(atomic_load(&prod->ctl->space_waiting), 1);
  get_rec(cons, 1, len, 9);
  assert_int_equal(tr_ring_kick_space(cons, p->brk.rep_efd), 1);
  assert_int_equal(tr_ring_wait_space(prod, p->shm.rep_efd, 1000), 0);
  assert_non_null(tr_ring_reserve(prod, len));
  /* Nobody waits now: no kick. */
  get_rec(cons, 2, len, 9);
  assert_int_equal(tr_ring_kick_space(cons, p->brk.rep_efd), 0);
}

/* ---- areas ------------------------------------------------------------------ */

static void test_area(void **state)
{
  struct pair *p = *state;
  struct tr_ring *prod = &p->shm.up, *cons = &p->brk.up;
  const uint64_t size = TR_LANE_AREA_SIZE, chunk = 3u << 20;
  struct tr_shmref ref, r2;
  const uint8_t *src;
  const char *why;
  uint8_t *dst;

  assert_int_equal(tr_area_free(prod), size);
  dst = tr_area_reserve(prod, chunk, &ref);
  assert_non_null(dst);
  assert_int_equal(ref.area, TR_AREA_UP);
  assert_int_equal(ref.pos, 0);
  assert_int_equal(ref.len, chunk);
  memset(dst, 0x11, chunk);
  assert_non_null(tr_area_reserve(prod, chunk, &r2));
  assert_int_equal(r2.pos, chunk);
  assert_int_equal(tr_area_free(prod), size - 2 * chunk);

  /* A third chunk would cross the end: not until the first is released,
     and then it starts at offset 0, skipping the end. */
  assert_null(tr_area_reserve(prod, chunk, &ref));
  src = tr_area_resolve(cons, &(struct tr_shmref){TR_AREA_UP, 0, chunk}, &why);
  assert_non_null(src);
  assert_int_equal(src[chunk - 1], 0x11);
  tr_area_release(cons, &(struct tr_shmref){TR_AREA_UP, 0, chunk});
  assert_int_equal(atomic_load(&cons->ctl->head), chunk);
  dst = tr_area_reserve(prod, chunk, &ref);
  assert_ptr_equal(dst, prod->buf);
  assert_int_equal(ref.pos, size);
  assert_int_equal(atomic_load(&prod->ctl->tail), size + chunk);

  /* The consumer resolves the skipped-to chunk; releasing it covers the
     skipped bytes too. */
  assert_non_null(tr_area_resolve(cons, &r2, &why));
  assert_ptr_equal(tr_area_resolve(cons, &ref, &why), cons->buf);
  tr_area_release(cons, &r2);
  tr_area_release(cons, &ref);
  assert_int_equal(atomic_load(&cons->ctl->head), size + chunk);
  /* All free, but a chunk is contiguous: 5 MiB before the end, or 3 MiB
     after skipping them. */
  assert_int_equal(tr_area_free(prod), size - chunk);

  /* tr_area_free() is exactly the largest chunk reserve accepts. */
  for (uint64_t k = 1; k < 400; k++) {
    uint64_t len = (k * 2654435761u) % (size / 2), f;

    if (k % 3 == 0) {
      /* The consumer catches up now and then. */
      assert_non_null(tr_area_resolve(cons, &ref, &why));
      tr_area_release(cons, &ref);
    }
    f = tr_area_free(prod);
    assert_true(f <= size);
    if (f < size) {
      struct tr_ring probe = *prod; /* reserve on a copy: no side effects */

      assert_null(tr_area_reserve(&probe, f + 1, &r2));
    }
    if (len > f) {
      assert_null(tr_area_reserve(prod, len, &r2));
      len = f;
    }
    assert_non_null(tr_area_reserve(prod, len, &ref));
  }

  /* Zero-length chunks are fine. */
  assert_non_null(tr_area_reserve(prod, 0, &ref));
  assert_non_null(tr_area_resolve(cons, &ref, &why));
  assert_null(tr_area_reserve(prod, size + 1, &ref));
}

static void test_area_bad_refs(void **state)
{
  struct pair *p = *state;
  struct tr_ring *prod = &p->shm.up, *cons = &p->brk.up;
  const uint64_t size = TR_LANE_AREA_SIZE;
  struct tr_shmref ref, bad;
  const char *why;

  assert_non_null(tr_area_reserve(prod, 4096, &ref));
  assert_non_null(tr_area_reserve(prod, 4096, &ref));
  tr_area_release(cons, &(struct tr_shmref){TR_AREA_UP, 0, 4096});
  assert_int_equal(atomic_load(&cons->ctl->head), 0); /* never resolved */
  assert_non_null(tr_area_resolve(cons, &ref, &why));

  bad = ref;
  bad.area = TR_AREA_DOWN;
  why = NULL;
  assert_null(tr_area_resolve(cons, &bad, &why));
  assert_non_null(why);
  bad = ref;
  bad.len = 4097; /* past the published tail */
  assert_null(tr_area_resolve(cons, &bad, &why));
  bad = ref;
  bad.pos = 8192;
  bad.len = 1;
  assert_null(tr_area_resolve(cons, &bad, &why));
  bad.pos = UINT64_MAX - 10;
  bad.len = 20; /* pos + len overflows */
  assert_null(tr_area_resolve(cons, &bad, &why));
  bad.pos = 4096;
  bad.len = UINT64_MAX;
  assert_null(tr_area_resolve(cons, &bad, &why));
  bad.pos = size - 16;
  bad.len = 32; /* crosses the end */
  assert_null(tr_area_resolve(cons, &bad, &why));

  /* Before the head: already released. */
  tr_area_release(cons, &ref);
  assert_int_equal(atomic_load(&cons->ctl->head), 8192);
  assert_null(tr_area_resolve(cons, &ref, &why));

  /* A tail more than a buffer ahead is fatal and sticky. */
  set_tail(prod, 8192 + size + 1);
  bad = (struct tr_shmref){TR_AREA_UP, 8192, 10};
  assert_null(tr_area_resolve(cons, &bad, &why));
  assert_non_null(strstr(why, "tail"));
  assert_non_null(cons->err);
}

/* ---- hostile producers -------------------------------------------------- */

static void test_bad_magic(void **state)
{
  struct pair *p = *state;
  struct tr_ring *prod = &p->shm.req, *cons = &p->brk.req;

  put_rec(prod, TR_OP_NOP, 1, 0, 0);
  get_rec(cons, 1, 0, 0);
  raw_hdr(prod, 32, 0xdeadbeef, TR_OP_NOP, 0);
  set_tail(prod, 64);
  expect_eproto(cons, "magic");
  assert_int_equal(atomic_load(&cons->ctl->head), 32);
}

static void test_bad_fields(void **state)
{
  struct pair *p = *state;
  struct tr_ring *prod = &p->shm.req, *cons = &p->brk.req;
  struct tr_hdr h;

  /* Unknown flag bit. */
  tr_hdr_init(&h, TR_OP_NOP, 0x100, 1, 0);
  tr_hdr_pack(&h, prod->buf);
  set_tail(prod, 32);
  expect_eproto(cons, "flag");
}

static void test_payload_too_large(void **state)
{
  struct pair *p = *state;
  struct tr_ring *prod = &p->shm.req, *cons = &p->brk.req;

  raw_hdr(prod, 0, TR_PROTO_MAGIC, TR_OP_NOP, TR_LANE_INLINE_MAX + 1);
  set_tail(prod, TR_LANE_RING_SIZE);
  expect_eproto(cons, "larger");
}

static void test_record_past_tail(void **state)
{
  struct pair *p = *state;
  struct tr_ring *prod = &p->shm.req, *cons = &p->brk.req;

  /* The header says 1000 bytes, the tail publishes 64. */
  raw_hdr(prod, 0, TR_PROTO_MAGIC, TR_OP_NOP, 1000);
  set_tail(prod, 64);
  expect_eproto(cons, "tail");
}

static void test_tail_out_of_range(void **state)
{
  struct pair *p = *state;
  struct tr_ring *prod = &p->shm.req, *cons = &p->brk.req;

  set_tail(prod, TR_LANE_RING_SIZE + 32); /* beyond head + size */
  expect_eproto(cons, "tail out of range");
}

static void test_tail_behind_head(void **state)
{
  struct pair *p = *state;
  struct tr_ring *prod = &p->shm.req, *cons = &p->brk.req;

  put_rec(prod, TR_OP_NOP, 1, 100, 1);
  get_rec(cons, 1, 100, 1);
  set_tail(prod, 32); /* moved back */
  expect_eproto(cons, "tail out of range");
}

static void test_tail_partial_header(void **state)
{
  struct pair *p = *state;
  struct tr_ring *prod = &p->shm.req, *cons = &p->brk.req;

  raw_hdr(prod, 0, TR_PROTO_MAGIC, TR_OP_NOP, 0);
  set_tail(prod, 16);
  expect_eproto(cons, "cut short");
}

static void test_pad_short(void **state)
{
  struct pair *p = *state;
  struct tr_ring *prod = &p->shm.req, *cons = &p->brk.req;

  /* A PAD at offset 0 that stops short of the end. */
  raw_hdr(prod, 0, TR_PROTO_MAGIC, TR_OP_PAD, 64);
  set_tail(prod, 96 + 32);
  raw_hdr(prod, 96, TR_PROTO_MAGIC, TR_OP_NOP, 0);
  expect_eproto(cons, "PAD");
}

static void test_pad_long(void **state)
{
  struct pair *p = *state;
  struct tr_ring *prod = &p->shm.req, *cons = &p->brk.req;
  const uint32_t size = TR_LANE_RING_SIZE;

  /* Move both sides to 64 bytes before the end, then a PAD claiming 96. */
  advance_to_end(prod, cons, 64);
  raw_hdr(prod, size - 64, TR_PROTO_MAGIC, TR_OP_PAD, 96 - 32);
  set_tail(prod, prod->pos + 96);
  expect_eproto(cons, "PAD");
}

static void test_pad_past_tail(void **state)
{
  struct pair *p = *state;
  struct tr_ring *prod = &p->shm.req, *cons = &p->brk.req;

  /* A correct PAD to the end, but only its header published. */
  advance_to_end(prod, cons, 64);
  raw_hdr(prod, TR_LANE_RING_SIZE - 64, TR_PROTO_MAGIC, TR_OP_PAD, 32);
  set_tail(prod, prod->pos + 32);
  expect_eproto(cons, "PAD beyond");
}

static void test_record_crosses_end(void **state)
{
  struct pair *p = *state;
  struct tr_ring *prod = &p->shm.req, *cons = &p->brk.req;
  const uint32_t size = TR_LANE_RING_SIZE;

  advance_to_end(prod, cons, 64);
  /* 64 bytes left; a 200-byte record written there would cross the end. */
  raw_hdr(prod, size - 64, TR_PROTO_MAGIC, TR_OP_NOP, 200);
  set_tail(prod, prod->pos + 256);
  expect_eproto(cons, "end");
}

static void test_unknown_opcode(void **state)
{
  struct pair *p = *state;
  struct tr_ring *prod = &p->shm.req, *cons = &p->brk.req;

  raw_hdr(prod, 0, TR_PROTO_MAGIC, 999, 0);
  set_tail(prod, 32);
  expect_eproto(cons, "opcode");
}

static void test_bad_head(void **state)
{
  struct pair *p = *state;
  struct tr_ring *prod = &p->brk.rep;

  /* A consumer head past our tail must not buy the producer space. */
  while (tr_ring_reserve(prod, 1000))
    tr_ring_commit(prod, 1000);
  assert_null(prod->err);
  atomic_store(&prod->ctl->head, prod->pos + 4096);
  assert_null(tr_ring_reserve(prod, 1000));
  assert_non_null(prod->err);
  assert_int_equal(tr_ring_wait_space(prod, p->brk.req_efd, 0), -EPROTO);
  assert_int_equal(tr_area_free(&p->brk.down), TR_LANE_AREA_SIZE);
  atomic_store(&p->brk.down.ctl->head, 1);
  assert_int_equal(tr_area_free(&p->brk.down), 0);
  assert_non_null(p->brk.down.err);
}

/* ---- doorbells ------------------------------------------------------------ */

static int readable(int fd)
{
  struct pollfd pf = {.fd = fd, .events = POLLIN};

  return poll(&pf, 1, 0) == 1;
}

static int flag;
static int flag_ready(void *arg)
{
  return *(int *)arg;
}

static void test_doorbell(void **state)
{
  struct pair *p = *state;
  struct tr_ring *prod = &p->shm.req, *cons = &p->brk.req;
  uint64_t v;

  /* Nobody waiting: no write. */
  put_rec(prod, TR_OP_NOP, 1, 0, 0);
  assert_int_equal(tr_ring_kick(prod, p->shm.req_efd), 0);
  assert_false(readable(p->brk.req_efd));

  /* Something there: arm refuses to sleep and leaves waiting clear. */
  assert_int_equal(tr_ring_arm(cons), 0);
  assert_int_equal(atomic_load(&cons->ctl->waiting), 0);
  get_rec(cons, 1, 0, 0);

  /* Empty: arm sets waiting; the next kick writes once and clears it. */
  assert_int_equal(tr_ring_arm(cons), 1);
  assert_int_equal(atomic_load(&cons->ctl->waiting), 1);
  put_rec(prod, TR_OP_NOP, 2, 0, 0);
  assert_int_equal(tr_ring_kick(prod, p->shm.req_efd), 1);
  assert_true(readable(p->brk.req_efd));
  assert_int_equal(atomic_load(&cons->ctl->waiting), 0);
  put_rec(prod, TR_OP_NOP, 3, 0, 0);
  assert_int_equal(tr_ring_kick(prod, p->shm.req_efd), 0);
  assert_int_equal(read(p->brk.req_efd, &v, 8), 8);
  assert_int_equal(v, 1);

  /* tr_ring_wait returns at once when there is something. */
  assert_int_equal(tr_ring_wait(cons, p->brk.req_efd, NULL, NULL, 0), 0);
  get_rec(cons, 2, 0, 0);
  get_rec(cons, 3, 0, 0);

  /* And times out when there is not, leaving waiting clear. */
  assert_int_equal(tr_ring_wait(cons, p->brk.req_efd, NULL, NULL, 20),
                   -ETIMEDOUT);
  assert_int_equal(atomic_load(&cons->ctl->waiting), 0);

  /* A stale kick only causes a spurious wake-up, drained by the wait. */
  assert_int_equal(eventfd_write(p->shm.rep_efd, 5), 0);
  flag = 0;
  assert_int_equal(tr_ring_wait(&p->shm.rep, p->shm.rep_efd, flag_ready, &flag,
                                30),
                   -ETIMEDOUT);
  assert_false(readable(p->shm.rep_efd));
  flag = 1;
  assert_int_equal(tr_ring_wait(&p->shm.rep, p->shm.rep_efd, flag_ready, &flag,
                                -1),
                   0);

  /* A garbage tail wakes the waiter so that peek can report it. */
  set_tail(prod, 1ull << 40);
  assert_int_equal(tr_ring_wait(cons, p->brk.req_efd, NULL, NULL, -1), 0);
  expect_eproto(cons, "tail");
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, pair_setup, pair_teardown)
  const struct CMUnitTest tests[] = {
    T(test_layout),
    cmocka_unit_test(test_sealed),
    cmocka_unit_test(test_map_rejects),
    T(test_basic),
    T(test_wrap_pad),
    T(test_full),
    T(test_area),
    T(test_area_bad_refs),
    T(test_bad_magic),
    T(test_bad_fields),
    T(test_payload_too_large),
    T(test_record_past_tail),
    T(test_tail_out_of_range),
    T(test_tail_behind_head),
    T(test_tail_partial_header),
    T(test_pad_short),
    T(test_pad_long),
    T(test_pad_past_tail),
    T(test_record_crosses_end),
    T(test_unknown_opcode),
    T(test_bad_head),
    T(test_doorbell),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
