/*
 * test_h2track.c: tools/common/h2track.c follows HTTP/2 framing exactly,
 * whatever the pieces the bytes arrive in: a stream of frames of every
 * kind (a client preface, SETTINGS, HEADERS, DATA plain and PADDED, empty
 * frames) is fed whole, byte by byte and in random pieces, and at every
 * byte the tracker's answer (DATA payload bytes next, of which stream; how
 * far a buffered read should go) is compared with the truth kept while the
 * stream was built.  Also tools/common/h2share.c: frames shrink to
 * TR_H2_SHARED_FRAME once another stream's small frame went by, not for
 * the bulk stream's own, and always fit the flow-control windows; and
 * the sizes TREMOTE_NET_TUNE sets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "h2share.h"
#include "h2track.h"

#define CAP (1u << 20)

struct truth {
  uint8_t *bytes;
  size_t len;
  uint32_t *data;   /* per byte: DATA payload bytes from here (0: none) */
  int32_t *stream;  /* per byte: their stream */
  uint32_t *fr_end; /* per byte: bytes to the end of what is known of its
                       frame (of the header only, inside a header) */
};

static void put(struct truth *t, const void *p, size_t n, uint32_t data0,
                int32_t id, int data_run, uint32_t frame_end)
{
  for (size_t i = 0; i < n; i++) {
    t->bytes[t->len] = ((const uint8_t *)p)[i];
    t->data[t->len] = data_run ? data0 - (uint32_t)i : 0;
    t->stream[t->len] = id;
    t->fr_end[t->len] = frame_end - (uint32_t)i;
    t->len++;
  }
}

static void frame(struct truth *t, uint8_t type, uint8_t flags, int32_t id,
                  uint32_t payload, uint8_t pad)
{
  uint8_t h[9], buf[4096];
  uint32_t len = payload + ((flags & 0x8) ? 1u + pad : 0u);
  uint32_t end = 9 + len;

  h[0] = (uint8_t)(len >> 16);
  h[1] = (uint8_t)(len >> 8);
  h[2] = (uint8_t)len;
  h[3] = type;
  h[4] = flags;
  h[5] = (uint8_t)(id >> 24);
  h[6] = (uint8_t)(id >> 16);
  h[7] = (uint8_t)(id >> 8);
  h[8] = (uint8_t)id;
  /* In a header only its own rest is known (nothing at its first byte). */
  for (uint32_t i = 0; i < 9; i++)
    put(t, h + i, 1, 0, id, 0, i ? 9 - i : 0);
  end -= 9;
  if (flags & 0x8) {
    put(t, &pad, 1, 0, id, 0, end);
    end--;
  }
  for (uint32_t done = 0; done < payload;) {
    uint32_t k = payload - done < sizeof(buf) ? payload - done : sizeof(buf);

    memset(buf, (int)(done + id), k);
    put(t, buf, k, payload - done, id, type == 0, end);
    done += k;
    end -= k;
  }
  memset(buf, 0, pad);
  if (flags & 0x8)
    put(t, buf, pad, 0, id, 0, end);
}

static void build(struct truth *t)
{
  static const char magic[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

  t->bytes = malloc(8u << 20);
  t->data = malloc((8u << 20) * sizeof(uint32_t));
  t->stream = malloc((8u << 20) * sizeof(int32_t));
  t->fr_end = malloc((8u << 20) * sizeof(uint32_t));
  assert_non_null(t->fr_end);
  t->len = 0;
  put(t, magic, 24, 0, 0, 0, 24);
  frame(t, 0x4, 0, 0, 12, 0);          /* SETTINGS */
  frame(t, 0x1, 0x4, 1, 40, 0);        /* HEADERS */
  frame(t, 0x0, 0, 1, 300000, 0);      /* DATA */
  frame(t, 0x0, 0x8, 3, 70000, 200);   /* DATA, padded */
  frame(t, 0x8, 0, 1, 4, 0);           /* WINDOW_UPDATE */
  frame(t, 0x0, 0, 5, 0, 0);           /* empty DATA */
  frame(t, 0x0, 0x8, 5, 0, 9);         /* padding only */
  frame(t, 0x0, 0x8, 7, 5, 0);         /* PADDED with pad 0 */
  frame(t, 0x6, 0, 0, 8, 0);           /* PING */
  frame(t, 0x0, 0x1, 9, 1u << 20, 0);  /* DATA, END_STREAM */
  frame(t, 0x3, 0, 9, 4, 0);           /* RST_STREAM */
}

static size_t piece_all(size_t left) { return left; }
static size_t piece_one(size_t left) { (void)left; return 1; }
static size_t piece_rand(size_t left)
{
  size_t n = 1 + (size_t)rand() % 70000;

  return n < left ? n : left;
}

static void check_at(const struct truth *t, const struct tr_h2track *k,
                     size_t pos)
{
  int32_t id = -1;
  size_t d = tr_h2track_data(k, &id);

  if (pos == t->len) {
    assert_int_equal(d, 0);
    return;
  }
  if (d != t->data[pos])
    fail_msg("byte %zu: %zu DATA bytes next, expected %u", pos, d,
             t->data[pos]);
  if (d)
    assert_int_equal(id, t->stream[pos]);
  /* A buffered read ends head bytes past what is known of this frame. */
  assert_int_equal(tr_h2track_next_read(k, 100, CAP),
                   t->fr_end[pos] + 100 < CAP ? t->fr_end[pos] + 100 : CAP);
}

static void run(const struct truth *t, size_t (*piece)(size_t),
                int every_byte)
{
  struct tr_h2track k;
  size_t pos = 0;

  tr_h2track_init(&k, 24);
  check_at(t, &k, 0);
  while (pos < t->len) {
    size_t n = piece(t->len - pos);

    tr_h2track_feed(&k, t->bytes + pos, n);
    pos += n;
    if (every_byte || pos == t->len || n < 64)
      check_at(t, &k, pos);
  }
}

static void test_framing(void **state)
{
  struct truth t;

  (void)state;
  build(&t);
  run(&t, piece_all, 1);
  run(&t, piece_one, 0);
  for (int i = 0; i < 20; i++)
    run(&t, piece_rand, 1);
  /* Byte by byte with a check at every byte: the full table. */
  {
    struct tr_h2track k;

    tr_h2track_init(&k, 24);
    for (size_t pos = 0; pos < t.len; pos++) {
      check_at(&t, &k, pos);
      tr_h2track_feed(&k, t.bytes + pos, 1);
    }
    check_at(&t, &k, t.len);
  }
  free(t.bytes);
  free(t.data);
  free(t.stream);
  free(t.fr_end);
}

static void test_share(void **state)
{
  struct tr_h2share s = {0};
  const size_t big = 256u << 10;

  (void)state;
  assert_int_equal(tr_h2share_length(&s, big, 1 << 30, 1 << 30), big);
  tr_h2share_frame(&s, 5, 40);         /* calls, and no bulk */
  tr_h2share_frame(&s, 7, 40);
  assert_int_equal(tr_h2share_length(&s, big, 1 << 30, 1 << 30), big);
  tr_h2share_frame(&s, 1, big);        /* bulk on stream 1 */
  tr_h2share_frame(&s, 1, 100);        /* its own small frame */
  assert_int_equal(tr_h2share_length(&s, big, 1 << 30, 1 << 30), big);
  tr_h2share_frame(&s, 3, 40);         /* another lane's call */
  assert_int_equal(tr_h2share_length(&s, big, 1 << 30, 1 << 30),
                   TR_H2_SHARED_FRAME);
  assert_int_equal(tr_h2share_length(&s, 4096, 1 << 30, 1 << 30), 4096);
  assert_int_equal(tr_h2share_length(&s, big, 1000, 1 << 30), 1000);
  assert_int_equal(tr_h2share_length(&s, big, 1 << 30, 7), 7);
  assert_int_equal(tr_h2share_length(&s, big, 0, 1 << 30), 1);
  s.until = 1; /* long past */
  assert_int_equal(tr_h2share_length(&s, big, 1 << 30, 1 << 30), big);
  s.bulk_ns = 1; /* the bulk ended long ago: calls share nothing */
  tr_h2share_frame(&s, 3, 40);
  assert_int_equal(tr_h2share_length(&s, big, 1 << 30, 1 << 30), big);
}

/* Two connections of one machine share one state: bulk on one and a call
   on the other is sharing; the same stream id on the other is another
   stream. */
static void test_share_two_conns(void **state)
{
  struct tr_h2share s = {0};
  const size_t big = 256u << 10;
  uint32_t bulk = tr_h2share_tag(), express = tr_h2share_tag();

  (void)state;
  assert_true(bulk != 0 && express != 0 && bulk != express);
  tr_h2share_frame(&s, tr_h2share_key(bulk, 1), big);
  tr_h2share_frame(&s, tr_h2share_key(bulk, 1), 100); /* its own */
  assert_int_equal(tr_h2share_length(&s, big, 1 << 30, 1 << 30), big);
  tr_h2share_frame(&s, tr_h2share_key(express, 1), 40);
  assert_int_equal(tr_h2share_length(&s, big, 1 << 30, 1 << 30),
                   TR_H2_SHARED_FRAME);
}

/* The receive buffer: left alone unless sized; smaller while lanes share,
   back once they stop; each change told once. */
static void test_share_rcvbuf(void **state)
{
  struct tr_h2share s = {0};
  struct tr_h2rcvbuf r = {0};

  (void)state;
  unsetenv("TREMOTE_NET_TUNE");
  tr_h2share_frame(&s, 3, 40);
  assert_int_equal(tr_h2share_rcvbuf(&s, &r), 0); /* not ours to size */
  memset(&s, 0, sizeof(s));
  tr_h2share_rcvbuf_init(&r, 256 << 10);
  assert_int_equal(tr_h2share_rcvbuf(&s, &r), 0); /* alone, as it is */
  tr_h2share_frame(&s, 1, 256u << 10);
  assert_int_equal(tr_h2share_rcvbuf(&s, &r), 0); /* bulk alone */
  tr_h2share_frame(&s, 3, 40); /* another lane's call */
  assert_int_equal(tr_h2share_rcvbuf(&s, &r), TR_H2_SHARED_RCVBUF);
  assert_int_equal(tr_h2share_rcvbuf(&s, &r), 0); /* told already */
  s.until = 1; /* long past */
  assert_int_equal(tr_h2share_rcvbuf(&s, &r), 256 << 10);
  assert_int_equal(tr_h2share_rcvbuf(&s, &r), 0);
  /* A buffer already smaller than the shared size never grows. */
  memset(&s, 0, sizeof(s));
  tr_h2share_rcvbuf_init(&r, 64 << 10);
  tr_h2share_frame(&s, 1, 256u << 10);
  tr_h2share_frame(&s, 3, 40);
  assert_int_equal(tr_h2share_rcvbuf(&s, &r), 0);
}

static void test_net_tune(void **state)
{
  (void)state;
  unsetenv("TREMOTE_NET_TUNE");
  assert_int_equal(tr_net_tune("frame", 77), 77);
  setenv("TREMOTE_NET_TUNE", "frame=16K,rcvbuf=2M,lowat=1000", 1);
  assert_int_equal(tr_net_tune("frame", 77), 16u << 10);
  assert_int_equal(tr_net_tune("rcvbuf", 77), 2u << 20);
  assert_int_equal(tr_net_tune("lowat", 77), 1000);
  assert_int_equal(tr_net_tune("other", 77), 77);
  /* A key is a whole name; a bad or missing number keeps the default. */
  setenv("TREMOTE_NET_TUNE", "lowatx=5,frame=0,rcvbuf=12Q", 1);
  assert_int_equal(tr_net_tune("lowat", 77), 77);
  assert_int_equal(tr_net_tune("frame", 77), 77);
  assert_int_equal(tr_net_tune("rcvbuf", 77), 77);
  setenv("TREMOTE_NET_TUNE", "frame=,lowat=4G", 1);
  assert_int_equal(tr_net_tune("frame", 77), 77);
  assert_int_equal(tr_net_tune("lowat", 77), 77);
  setenv("TREMOTE_NET_TUNE", "frame=-5, rcvbuf=128K,lowat=17592186044417M", 1);
  assert_int_equal(tr_net_tune("frame", 77), 77);
  assert_int_equal(tr_net_tune("rcvbuf", 77), 128u << 10);
  assert_int_equal(tr_net_tune("lowat", 77), 77);
  unsetenv("TREMOTE_NET_TUNE");
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_framing),
      cmocka_unit_test(test_share),
      cmocka_unit_test(test_share_two_conns),
      cmocka_unit_test(test_share_rcvbuf),
      cmocka_unit_test(test_net_tune),
  };

  srand(7);
  unsetenv("TREMOTE_NET_TUNE"); /* test_share expects the default frame */
  return cmocka_run_group_tests(tests, NULL, NULL);
}
