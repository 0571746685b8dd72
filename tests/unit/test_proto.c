/*
 * test_proto.c: the record codec (include/tremote/proto.h).
 *
 * The byte expectations here are the ones docs/PROTOCOL.md writes down: a
 * second implementation that passes these tests speaks the same format.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tremote/proto.h"

/* ---- integers ------------------------------------------------------------- */

static void test_le_helpers(void **state)
{
  uint8_t b[8];

  (void)state;
  tr_put_u16(b, 0x1234);
  assert_memory_equal(b, "\x34\x12", 2);
  assert_int_equal(tr_get_u16(b), 0x1234);
  tr_put_u32(b, 0x89abcdefu);
  assert_memory_equal(b, "\xef\xcd\xab\x89", 4);
  assert_int_equal(tr_get_u32(b), 0x89abcdefu);
  tr_put_u64(b, 0x0102030405060708ull);
  assert_memory_equal(b, "\x08\x07\x06\x05\x04\x03\x02\x01", 8);
  assert_true(tr_get_u64(b) == 0x0102030405060708ull);
  tr_put_u64(b, UINT64_MAX);
  assert_true(tr_get_u64(b) == UINT64_MAX);
  tr_put_u16(b, 0xffff);
  assert_int_equal(tr_get_u16(b), 0xffff);
}

/* ---- header --------------------------------------------------------------- */

static const uint8_t hdr_bytes[TR_HDR_SIZE] = {
  0x54, 0x52, 0x4d, 0x31,                         /* magic "TRM1" */
  0x02, 0x00,                                     /* version 2 */
  0x22, 0x00,                                     /* opcode 34 */
  0x0b, 0x00,                                     /* flags */
  0x05, 0x04,                                     /* device */
  0x09, 0x08, 0x07, 0x06,                         /* status */
  0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11, /* request_id */
  0x24, 0x23, 0x02, 0x00,                         /* payload_len */
  0x34, 0x33, 0x32, 0x31,                         /* aux */
};

static void sample_hdr(struct tr_hdr *h)
{
  tr_hdr_init(h, TR_OP_MEMCPY_H2D, TR_F_REPLY | TR_F_WANT_REPLY | TR_F_MORE,
              0x1112131415161718ull, 0x00022324);
  h->device = 0x0405;
  h->status = 0x06070809;
  h->aux = 0x31323334;
}

static void test_hdr_pack(void **state)
{
  struct tr_hdr h, back;
  uint8_t out[TR_HDR_SIZE];

  (void)state;
  sample_hdr(&h);
  assert_int_equal(h.magic, TR_PROTO_MAGIC);
  assert_int_equal(h.version, 2);
  memset(out, 0xee, sizeof(out));
  tr_hdr_pack(&h, out);
  assert_memory_equal(out, hdr_bytes, TR_HDR_SIZE);
  assert_memory_equal(out, "TRM1", 4);

  memset(&back, 0xee, sizeof(back));
  tr_hdr_unpack(hdr_bytes, &back);
  assert_int_equal(back.magic, h.magic);
  assert_int_equal(back.version, h.version);
  assert_int_equal(back.opcode, h.opcode);
  assert_int_equal(back.flags, h.flags);
  assert_int_equal(back.device, h.device);
  assert_int_equal(back.status, h.status);
  assert_true(back.request_id == h.request_id);
  assert_int_equal(back.payload_len, h.payload_len);
  assert_int_equal(back.aux, h.aux);
}

static void test_hdr_init(void **state)
{
  struct tr_hdr h;

  (void)state;
  memset(&h, 0xee, sizeof(h));
  tr_hdr_init(&h, TR_OP_NOP, TR_F_WANT_REPLY, 42, 7);
  assert_int_equal(h.magic, TR_PROTO_MAGIC);
  assert_int_equal(h.version, TR_PROTO_VERSION_MAX);
  assert_int_equal(h.opcode, TR_OP_NOP);
  assert_int_equal(h.flags, TR_F_WANT_REPLY);
  assert_int_equal(h.device, 0);
  assert_int_equal(h.status, 0);
  assert_int_equal(h.request_id, 42);
  assert_int_equal(h.payload_len, 7);
  assert_int_equal(h.aux, 0);
}

static void check_hdr(const struct tr_hdr *h, uint32_t max, int pad, int rc)
{
  const char *why = NULL;

  assert_int_equal(tr_hdr_check(h, max, pad, &why), rc);
  if (rc)
    assert_non_null(why);
}

static void test_hdr_check(void **state)
{
  struct tr_hdr good, h;

  (void)state;
  tr_hdr_init(&good, TR_OP_MALLOC, TR_F_WANT_REPLY, 1, 8);
  check_hdr(&good, 8, 0, 0);
  assert_int_equal(tr_hdr_check(&good, 8, 0, NULL), 0);

  h = good;
  h.magic = 0x314d5255;
  check_hdr(&h, 8, 0, -EPROTO);
  h.magic = 0x544d5231; /* the bytes in the wrong order */
  check_hdr(&h, 8, 0, -EPROTO);
  assert_int_equal(tr_hdr_check(&h, 8, 0, NULL), -EPROTO);

  h = good;
  h.version = 0;
  check_hdr(&h, 8, 0, -EPROTO);
  h.version = TR_PROTO_VERSION_MAX + 1;
  check_hdr(&h, 8, 0, -EPROTO);

  for (uint32_t bit = 0x100; bit <= 0x8000; bit <<= 1) {
    h = good;
    h.flags = (uint16_t)(TR_F_KNOWN | bit);
    check_hdr(&h, 8, 0, -EPROTO);
  }
  h = good;
  h.flags = TR_F_KNOWN;
  check_hdr(&h, 8, 0, 0);

  h = good;
  h.opcode = 8; /* a gap in the table */
  check_hdr(&h, 8, 0, -EBADMSG);
  h.opcode = 65;
  check_hdr(&h, 8, 0, -EBADMSG);
  h.opcode = 0xffff;
  check_hdr(&h, 8, 0, -EBADMSG);
  h.opcode = TR_OP_PAD;
  check_hdr(&h, 8, 0, -EBADMSG);
  check_hdr(&h, 8, 1, 0);

  h = good;
  h.payload_len = 9;
  check_hdr(&h, 8, 0, -EMSGSIZE);
  h.payload_len = UINT32_MAX;
  check_hdr(&h, TR_PAYLOAD_MAX, 0, -EMSGSIZE);
  h.payload_len = TR_PAYLOAD_MAX;
  check_hdr(&h, TR_PAYLOAD_MAX, 0, 0);
}

static void test_op_names(void **state)
{
  int named = 0;

  (void)state;
  assert_string_equal(tr_op_name(TR_OP_PAD), "PAD");
  assert_string_equal(tr_op_name(1), "HELLO");
  assert_string_equal(tr_op_name(4), "NOP");
  assert_string_equal(tr_op_name(16), "SYNCHRONIZE");
  assert_string_equal(tr_op_name(32), "MALLOC");
  assert_string_equal(tr_op_name(35), "MEMCPY_D2H");
  assert_string_equal(tr_op_name(51), "FUNCTION_GET");
  assert_string_equal(tr_op_name(64), "LAUNCH");
  assert_string_equal(tr_op_name(6), "REGION_ADD");
  assert_null(tr_op_name(8));
  assert_null(tr_op_name(15));
  assert_null(tr_op_name(65));
  assert_null(tr_op_name(0xffff));
  /* Every table entry has its name, and the numbers are the documented. */
#define X(num, name, fl, doc)                                                   \
  assert_string_equal(tr_op_name(num), #name);                                 \
  assert_int_equal(TR_OP_##name, num);                                         \
  named++;
  TR_OPCODES(X)
#undef X
  assert_int_equal(named, 33);
  for (unsigned op = 0; op < 0x10000; op++) {
    if (tr_op_name((uint16_t)op))
      named--;
  }
  assert_int_equal(named, 0);
}

/* ---- shmref ------------------------------------------------------------------ */

static void test_shmref(void **state)
{
  struct tr_shmref r = {TR_AREA_DOWN, 0x1122334455667788ull, 0x10000}, back;
  static const uint8_t want[TR_SHMREF_SIZE] = {
    1, 0, 0, 0, 0, 0, 0, 0, 0x88, 0x77, 0x66, 0x55,
    0x44, 0x33, 0x22, 0x11, 0, 0, 1, 0, 0, 0, 0, 0,
  };
  uint8_t out[TR_SHMREF_SIZE];

  (void)state;
  memset(out, 0xee, sizeof(out));
  tr_shmref_pack(&r, out);
  assert_memory_equal(out, want, sizeof(want));
  tr_shmref_unpack(out, &back);
  assert_int_equal(back.area, r.area);
  assert_true(back.pos == r.pos);
  assert_true(back.len == r.len);
}

/* ---- hello ---------------------------------------------------------------- */

static struct tr_hello hello(uint16_t lo, uint16_t hi)
{
  struct tr_hello h = {lo, hi, TR_ROLE_SHIM, TR_CAP_EXEC, 1234, 0};

  return h;
}

static void test_hello(void **state)
{
  struct tr_hello h = {1, 3, TR_ROLE_BROKER, 0x0102030405060708ull,
                       0xa0b0c0d0, 4},
                  back;
  static const uint8_t want[TR_HELLO_SIZE] = {
    1, 0, 3, 0, 2, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1,
    0xd0, 0xc0, 0xb0, 0xa0, 4, 0, 0, 0,
  };
  uint8_t buf[TR_HELLO_SIZE + 8];

  (void)state;
  memset(buf, 0xee, sizeof(buf));
  tr_hello_pack(&h, buf);
  assert_memory_equal(buf, want, sizeof(want));
  assert_int_equal(buf[TR_HELLO_SIZE], 0xee);

  /* extra_len == 4: needs 4 bytes after the fixed part. */
  assert_int_equal(tr_hello_unpack(buf, TR_HELLO_SIZE + 4, &back), 0);
  assert_int_equal(back.min_version, 1);
  assert_int_equal(back.max_version, 3);
  assert_int_equal(back.role, TR_ROLE_BROKER);
  assert_true(back.caps == h.caps);
  assert_int_equal(back.pid, 0xa0b0c0d0);
  assert_int_equal(back.extra_len, 4);
  assert_int_equal(tr_hello_unpack(buf, TR_HELLO_SIZE + 8, &back), 0);
  assert_int_equal(tr_hello_unpack(buf, TR_HELLO_SIZE + 3, &back), -EBADMSG);

  /* Truncated fixed part. */
  for (size_t n = 0; n < TR_HELLO_SIZE; n++)
    assert_int_equal(tr_hello_unpack(buf, n, &back), -EBADMSG);

  /* min > max. */
  h = hello(3, 2);
  tr_hello_pack(&h, buf);
  assert_int_equal(tr_hello_unpack(buf, TR_HELLO_SIZE, &back), -EBADMSG);

  /* extra_len that would wrap. */
  h = hello(1, 1);
  h.extra_len = UINT32_MAX;
  tr_hello_pack(&h, buf);
  assert_int_equal(tr_hello_unpack(buf, sizeof(buf), &back), -EBADMSG);
}

static void test_hello_choose(void **state)
{
  struct tr_hello a, b;

  (void)state;
  a = hello(1, 3);
  b = hello(2, 5);
  assert_int_equal(tr_hello_choose(&a, &b), 3);
  assert_int_equal(tr_hello_choose(&b, &a), 3);
  a = hello(1, 1);
  b = hello(1, 1);
  assert_int_equal(tr_hello_choose(&a, &b), 1);
  a = hello(1, 2);
  b = hello(2, 3); /* touching */
  assert_int_equal(tr_hello_choose(&a, &b), 2);
  a = hello(1, 9);
  b = hello(4, 5); /* nested */
  assert_int_equal(tr_hello_choose(&a, &b), 5);
  assert_int_equal(tr_hello_choose(&b, &a), 5);
  a = hello(1, 2);
  b = hello(3, 4); /* disjoint */
  assert_int_equal(tr_hello_choose(&a, &b), -1);
  assert_int_equal(tr_hello_choose(&b, &a), -1);
  a = hello(TR_PROTO_VERSION_MIN, TR_PROTO_VERSION_MAX);
  b = hello(0xfffe, 0xffff);
  assert_int_equal(tr_hello_choose(&a, &b), -1);
}

/* ---- devinfo -------------------------------------------------------------- */

static void sample_dev(struct tr_devinfo *d, uint32_t nattr)
{
  memset(d, 0, sizeof(*d));
  d->total_mem = 80ull << 30;
  d->va_base = TR_VA_BASE;
  d->va_size = TR_VA_WINDOW;
  d->caps = TR_CAP_EXEC;
  for (int i = 0; i < 16; i++)
    d->uuid[i] = (uint8_t)(0xa0 + i);
  strcpy(d->name, "Modal A100-80GB");
  d->machine_index = 3;
  d->nattr = nattr;
  for (uint32_t i = 0; i < nattr; i++) {
    d->attr[i].attr = 100 + i;
    d->attr[i].value = -(int32_t)i * 1000;
  }
}

static void test_devinfo(void **state)
{
  struct tr_devinfo d, back;
  uint8_t buf[TR_DEVINFO_FIXED + 8 * TR_DEVINFO_MAX_ATTR + 16];
  size_t used = 0;
  int32_t v;

  (void)state;
  sample_dev(&d, 3);
  assert_int_equal(tr_devinfo_size(&d), 128 + 24);
  memset(buf, 0xee, sizeof(buf));
  tr_devinfo_pack(&d, buf);
  assert_int_equal(tr_get_u32(buf), 152);
  assert_int_equal(tr_get_u32(buf + 4), 3);
  assert_true(tr_get_u64(buf + 8) == 80ull << 30);
  assert_true(tr_get_u64(buf + 16) == TR_VA_BASE);
  assert_true(tr_get_u64(buf + 24) == TR_VA_WINDOW);
  assert_true(tr_get_u64(buf + 32) == TR_CAP_EXEC);
  assert_int_equal(buf[40], 0xa0);
  assert_int_equal(buf[55], 0xaf);
  assert_memory_equal(buf + 56, "Modal A100-80GB\0\0", 17);
  assert_int_equal(buf[119], 0);
  assert_int_equal(tr_get_u32(buf + 120), 3);
  assert_int_equal(tr_get_u32(buf + 124), 0);
  assert_int_equal(tr_get_u32(buf + 128), 100);
  assert_int_equal(tr_get_u32(buf + 128 + 16 + 4), (uint32_t)-2000);
  assert_int_equal(buf[152], 0xee);

  memset(&back, 0x55, sizeof(back));
  assert_int_equal(tr_devinfo_unpack(buf, 152, &back, &used), 0);
  assert_int_equal(used, 152);
  assert_true(back.total_mem == d.total_mem);
  assert_true(back.va_base == d.va_base);
  assert_true(back.va_size == d.va_size);
  assert_true(back.caps == d.caps);
  assert_memory_equal(back.uuid, d.uuid, 16);
  assert_string_equal(back.name, d.name);
  assert_int_equal(back.machine_index, 3);
  assert_int_equal(back.nattr, 3);
  assert_int_equal(tr_devinfo_attr(&back, 102, &v), 0);
  assert_int_equal(v, -2000);
  assert_int_equal(tr_devinfo_attr(&back, 103, &v), -ENOENT);

  /* No attributes, and the most. */
  sample_dev(&d, 0);
  tr_devinfo_pack(&d, buf);
  assert_int_equal(tr_devinfo_unpack(buf, 128, &back, NULL), 0);
  assert_int_equal(back.nattr, 0);
  sample_dev(&d, TR_DEVINFO_MAX_ATTR);
  tr_devinfo_pack(&d, buf);
  assert_int_equal(tr_devinfo_unpack(buf, tr_devinfo_size(&d), &back, &used),
                   0);
  assert_int_equal(used, tr_devinfo_size(&d));
  assert_int_equal(back.attr[TR_DEVINFO_MAX_ATTR - 1].attr,
                   100 + TR_DEVINFO_MAX_ATTR - 1);

  /* A name that fills all 64 bytes comes back NUL-terminated. */
  sample_dev(&d, 0);
  memset(d.name, 'x', sizeof(d.name));
  tr_devinfo_pack(&d, buf);
  assert_int_equal(buf[56 + 63], 0);
  memset(buf + 56, 'y', 64); /* as a peer could send it */
  assert_int_equal(tr_devinfo_unpack(buf, 128, &back, NULL), 0);
  assert_int_equal(strlen(back.name), 63);

  /* A newer peer's larger description: skipped by its size. */
  sample_dev(&d, 1);
  tr_devinfo_pack(&d, buf);
  tr_put_u32(buf, 128 + 8 + 16);
  assert_int_equal(tr_devinfo_unpack(buf, 200, &back, &used), 0);
  assert_int_equal(used, 152);
  assert_int_equal(back.nattr, 1);
}

static void test_devinfo_malformed(void **state)
{
  uint8_t buf[TR_DEVINFO_FIXED + 8 * (TR_DEVINFO_MAX_ATTR + 1)];
  struct tr_devinfo d, back;
  size_t used = 777;

  (void)state;
  sample_dev(&d, 2);
  tr_devinfo_pack(&d, buf);

  /* Too short for the fixed part, or for what it says. */
  for (size_t n = 0; n < 144; n++)
    assert_int_equal(tr_devinfo_unpack(buf, n, &back, &used), -EBADMSG);
  assert_int_equal(used, 777);

  /* size smaller than its attributes need. */
  tr_put_u32(buf, 128 + 8);
  assert_int_equal(tr_devinfo_unpack(buf, sizeof(buf), &back, NULL), -EBADMSG);
  tr_put_u32(buf, 0);
  assert_int_equal(tr_devinfo_unpack(buf, sizeof(buf), &back, NULL), -EBADMSG);
  /* size larger than the buffer. */
  tr_put_u32(buf, UINT32_MAX);
  assert_int_equal(tr_devinfo_unpack(buf, sizeof(buf), &back, NULL), -EBADMSG);
  /* Too many attributes. */
  tr_put_u32(buf, sizeof(buf));
  tr_put_u32(buf + 4, TR_DEVINFO_MAX_ATTR + 1);
  assert_int_equal(tr_devinfo_unpack(buf, sizeof(buf), &back, NULL), -EBADMSG);
  /* nattr so large that 8 * nattr wraps a u32. */
  tr_put_u32(buf, 128);
  tr_put_u32(buf + 4, 0x20000000u);
  assert_int_equal(tr_devinfo_unpack(buf, sizeof(buf), &back, NULL), -EBADMSG);
}

/* ---- the incremental decoder ----------------------------------------------- */

struct stream {
  uint8_t *bytes;
  size_t len;
  uint32_t n;
  uint32_t sizes[16];
};

/* Records with payload sizes 0, 1, 31, 32, 33, 1000, 70000, max; payload
   byte j of record i is (i * 31 + j) & 0xff. */
static void make_stream(struct stream *s, uint32_t max_payload)
{
  static const uint32_t sizes[] = {0, 1, 31, 32, 33, 1000, 70000, 0, 5};
  size_t off = 0;

  s->n = 0;
  s->len = 0;
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
    s->len += TR_HDR_SIZE + sizes[i];
  s->len += TR_HDR_SIZE + max_payload;
  s->bytes = malloc(s->len);
  assert_non_null(s->bytes);
  for (size_t i = 0; i <= sizeof(sizes) / sizeof(sizes[0]); i++) {
    uint32_t n = i < sizeof(sizes) / sizeof(sizes[0]) ? sizes[i] : max_payload;
    struct tr_hdr h;

    tr_hdr_init(&h, TR_OP_MEMCPY_H2D, TR_F_WANT_REPLY, 1000 + i, n);
    h.aux = (uint32_t)i;
    tr_hdr_pack(&h, s->bytes + off);
    off += TR_HDR_SIZE;
    for (uint32_t j = 0; j < n; j++)
      s->bytes[off + j] = (uint8_t)(i * 31 + j);
    off += n;
    s->sizes[s->n++] = n;
  }
  assert_int_equal(off, s->len);
}

static uint64_t rng_state = 0x1234567;
static uint64_t rng(void)
{
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

/* Feed the stream in pieces from split(); check every record comes out. */
static void decode_stream(const struct stream *s, uint32_t max_payload,
                          size_t (*split)(size_t left))
{
  struct tr_decoder d;
  const uint8_t *payload;
  struct tr_hdr h;
  size_t pos = 0;
  uint32_t got = 0;
  int complete;
  long n;

  assert_int_equal(tr_decoder_init(&d, max_payload), 0);
  while (pos < s->len) {
    size_t piece = split(s->len - pos);
    const uint8_t *p = s->bytes + pos;

    pos += piece;
    /* One feed consumes up to the end of one record: loop on the piece. */
    while (piece) {
      payload = NULL;
      n = tr_decoder_feed(&d, p, piece, &complete, &h, &payload);
      assert_true(n > 0);
      assert_true((size_t)n <= piece);
      p += n;
      piece -= (size_t)n;
      if (!complete)
        continue;
      assert_true(got < s->n);
      assert_int_equal(h.request_id, 1000 + got);
      assert_int_equal(h.aux, got);
      assert_int_equal(h.payload_len, s->sizes[got]);
      assert_non_null(payload);
      for (uint32_t j = 0; j < h.payload_len; j++)
        if (payload[j] != (uint8_t)(got * 31 + j))
          fail_msg("record %u byte %u differs", got, j);
      got++;
    }
  }
  assert_int_equal(got, s->n);
  assert_int_equal(d.have, 0);
  tr_decoder_release(&d);
}

static size_t split_one(size_t left)
{
  (void)left;
  return 1;
}

static size_t split_all(size_t left)
{
  return left;
}

static size_t split_random(size_t left)
{
  size_t n;

  switch (rng() % 4) {
  case 0:
    n = 1 + rng() % 8;
    break;
  case 1:
    n = 1 + rng() % 64;
    break;
  case 2:
    n = 1 + rng() % 4096;
    break;
  default:
    n = 1 + rng() % 100000;
    break;
  }
  return n < left ? n : left;
}

static void test_decoder_splits(void **state)
{
  const uint32_t max = 80000;
  struct stream s;

  (void)state;
  make_stream(&s, max);
  decode_stream(&s, max, split_one);
  decode_stream(&s, max, split_all);
  for (int i = 0; i < 200; i++)
    decode_stream(&s, max, split_random);
  free(s.bytes);
}

static void test_decoder_boundaries(void **state)
{
  const uint32_t max = 80000;
  struct stream s;
  struct tr_decoder d;
  const uint8_t *payload;
  struct tr_hdr h;
  int complete;

  (void)state;
  make_stream(&s, max);
  /* Every split point of the first 200 bytes, in two pieces. */
  for (size_t cut = 1; cut < 200; cut++) {
    size_t pos = 0;
    uint32_t got = 0;

    assert_int_equal(tr_decoder_init(&d, max), 0);
    while (pos < s.len) {
      size_t end = pos < cut ? cut : s.len;

      while (pos < end) {
        long n = tr_decoder_feed(&d, s.bytes + pos, end - pos, &complete, &h,
                                 &payload);
        assert_true(n > 0);
        pos += (size_t)n;
        got += (uint32_t)complete;
      }
    }
    assert_int_equal(got, s.n);
    tr_decoder_release(&d);
  }
  /* An empty feed consumes nothing and completes nothing. */
  assert_int_equal(tr_decoder_init(&d, max), 0);
  assert_int_equal(tr_decoder_feed(&d, s.bytes, 0, &complete, &h, &payload),
                   0);
  assert_int_equal(complete, 0);
  tr_decoder_release(&d);
  free(s.bytes);
}

static void expect_decoder_error(const uint8_t *rec, uint32_t max, long rc)
{
  struct tr_decoder d;
  const uint8_t *payload;
  struct tr_hdr h;
  int complete = 1;
  long n = 0, total = 0;

  /* Byte by byte: the error comes with the 32nd byte. */
  assert_int_equal(tr_decoder_init(&d, max), 0);
  for (size_t i = 0; i < TR_HDR_SIZE; i++) {
    n = tr_decoder_feed(&d, rec + i, 1, &complete, &h, &payload);
    if (n < 0) {
      assert_int_equal(i, TR_HDR_SIZE - 1);
      break;
    }
    total += n;
    assert_int_equal(complete, 0);
  }
  assert_int_equal(n, rc);
  assert_int_equal(total, TR_HDR_SIZE - 1);
  assert_non_null(d.why);
  tr_decoder_release(&d);

  /* All at once. */
  assert_int_equal(tr_decoder_init(&d, max), 0);
  d.why = NULL;
  assert_int_equal(tr_decoder_feed(&d, rec, TR_HDR_SIZE, &complete, &h,
                                   &payload),
                   rc);
  assert_non_null(d.why);
  tr_decoder_release(&d);
}

static void test_decoder_errors(void **state)
{
  uint8_t rec[TR_HDR_SIZE];
  struct tr_hdr h;

  (void)state;
  tr_hdr_init(&h, TR_OP_NOP, 0, 1, 0);
  h.magic = 0x31545254;
  tr_hdr_pack(&h, rec);
  expect_decoder_error(rec, 1000, -EPROTO);

  tr_hdr_init(&h, TR_OP_NOP, 0, 1, 0);
  h.version = TR_PROTO_VERSION_MAX + 1;
  tr_hdr_pack(&h, rec);
  expect_decoder_error(rec, 1000, -EPROTO);

  tr_hdr_init(&h, TR_OP_NOP, 0x100, 1, 0);
  tr_hdr_pack(&h, rec);
  expect_decoder_error(rec, 1000, -EPROTO);

  /* PAD belongs in rings, never on the wire. */
  tr_hdr_init(&h, TR_OP_PAD, 0, 1, 0);
  tr_hdr_pack(&h, rec);
  expect_decoder_error(rec, 1000, -EBADMSG);

  tr_hdr_init(&h, 200, 0, 1, 0);
  tr_hdr_pack(&h, rec);
  expect_decoder_error(rec, 1000, -EBADMSG);

  tr_hdr_init(&h, TR_OP_NOP, 0, 1, 1001);
  tr_hdr_pack(&h, rec);
  expect_decoder_error(rec, 1000, -EMSGSIZE);
  tr_hdr_init(&h, TR_OP_NOP, 0, 1, 1);
  tr_hdr_pack(&h, rec);
  expect_decoder_error(rec, 0, -EMSGSIZE);

  /* The good record after a good one, then garbage: error on the garbage. */
  {
    uint8_t two[2 * TR_HDR_SIZE + 4];
    struct tr_decoder d;
    const uint8_t *payload;
    int complete;

    tr_hdr_init(&h, TR_OP_FREE, 0, 9, 4);
    tr_hdr_pack(&h, two);
    memcpy(two + TR_HDR_SIZE, "abcd", 4);
    memset(two + TR_HDR_SIZE + 4, 0xff, TR_HDR_SIZE);
    assert_int_equal(tr_decoder_init(&d, 64), 0);
    assert_int_equal(tr_decoder_feed(&d, two, sizeof(two), &complete, &h,
                                     &payload),
                     TR_HDR_SIZE + 4);
    assert_int_equal(complete, 1);
    assert_int_equal(h.opcode, TR_OP_FREE);
    assert_memory_equal(payload, "abcd", 4);
    assert_int_equal(tr_decoder_feed(&d, two + TR_HDR_SIZE + 4, TR_HDR_SIZE,
                                     &complete, &h, &payload),
                     -EPROTO);
    tr_decoder_release(&d);
  }
}

/* ---- split mode ------------------------------------------------------------ */

/* What the split callback saw, and the memory it handed out. */
struct split_ctx {
  uint32_t calls;
  struct tr_hdr h;
  uint8_t prefix[64];
  uint32_t prefix_len;
  uint8_t *rest; /* malloc'd, payload_len - prefix_len bytes (+1) */
  bool fail;
};

static uint8_t *split_cb(void *arg, const struct tr_hdr *h,
                         const uint8_t *prefix, uint32_t prefix_len)
{
  struct split_ctx *c = arg;

  c->calls++;
  if (c->fail)
    return NULL;
  assert_non_null(prefix);
  assert_true(prefix_len <= sizeof(c->prefix));
  c->h = *h;
  memcpy(c->prefix, prefix, prefix_len);
  c->prefix_len = prefix_len;
  free(c->rest);
  /* +1: the rest may be 0 bytes, and the pointer must not be NULL. */
  c->rest = malloc((size_t)(h->payload_len - prefix_len) + 1);
  assert_non_null(c->rest);
  return c->rest;
}

/* Feed the stream through a split decoder in pieces from split(). */
static void decode_stream_split(const struct stream *s, uint32_t max_payload,
                                uint32_t prefix, size_t (*split)(size_t left))
{
  struct split_ctx c = {0};
  struct tr_decoder d;
  const uint8_t *payload;
  struct tr_hdr h;
  size_t pos = 0;
  uint32_t got = 0;
  int complete;
  long n;

  assert_int_equal(
      tr_decoder_init_split(&d, max_payload, prefix, split_cb, &c), 0);
  while (pos < s->len) {
    size_t piece = split(s->len - pos);
    const uint8_t *p = s->bytes + pos;

    pos += piece;
    while (piece) {
      payload = NULL;
      n = tr_decoder_feed(&d, p, piece, &complete, &h, &payload);
      assert_true(n > 0);
      assert_true((size_t)n <= piece);
      p += n;
      piece -= (size_t)n;
      if (!complete)
        continue;
      /* Called exactly once per record, at the latest by its end. */
      assert_int_equal(c.calls, got + 1);
      assert_int_equal(h.request_id, 1000 + got);
      assert_int_equal(h.aux, got);
      assert_int_equal(h.payload_len, s->sizes[got]);
      assert_int_equal(c.h.request_id, 1000 + got);
      assert_int_equal(c.prefix_len,
                       s->sizes[got] < prefix ? s->sizes[got] : prefix);
      assert_ptr_equal(payload, c.rest);
      for (uint32_t j = 0; j < c.prefix_len; j++)
        if (c.prefix[j] != (uint8_t)(got * 31 + j))
          fail_msg("record %u prefix byte %u differs", got, j);
      for (uint32_t j = c.prefix_len; j < h.payload_len; j++)
        if (payload[j - c.prefix_len] != (uint8_t)(got * 31 + j))
          fail_msg("record %u byte %u differs", got, j);
      got++;
    }
  }
  assert_int_equal(got, s->n);
  assert_int_equal(d.have, 0);
  tr_decoder_release(&d);
  free(c.rest);
}

static void test_decoder_split(void **state)
{
  /* 0: split called right after the header; 16: shorter payloads (0, 1, 5)
     than the prefix; 33: one longer than the 32-byte record; 64. */
  static const uint32_t prefixes[] = {0, 1, 16, 32, 33, 64};
  const uint32_t max = 80000;
  struct stream s;

  (void)state;
  make_stream(&s, max);
  for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
    decode_stream_split(&s, max, prefixes[i], split_one);
    decode_stream_split(&s, max, prefixes[i], split_all);
    for (int k = 0; k < 50; k++)
      decode_stream_split(&s, max, prefixes[i], split_random);
  }
  free(s.bytes);
}

/* Split is called only once the prefix is buffered, byte by byte. */
static void test_decoder_split_timing(void **state)
{
  struct split_ctx c = {0};
  uint8_t rec[TR_HDR_SIZE + 40];
  struct tr_decoder d;
  const uint8_t *payload = NULL;
  struct tr_hdr h;
  int complete;

  (void)state;
  tr_hdr_init(&h, TR_OP_MEMCPY_H2D, 0, 7, 40);
  tr_hdr_pack(&h, rec);
  for (int j = 0; j < 40; j++)
    rec[TR_HDR_SIZE + j] = (uint8_t)(0xa0 + j);
  assert_int_equal(tr_decoder_init_split(&d, 100, 16, split_cb, &c), 0);
  for (size_t i = 0; i < sizeof(rec); i++) {
    assert_int_equal(tr_decoder_feed(&d, rec + i, 1, &complete, &h, &payload),
                     1);
    assert_int_equal(c.calls, i + 1 >= TR_HDR_SIZE + 16 ? 1 : 0);
    assert_int_equal(complete, i + 1 == sizeof(rec));
  }
  assert_ptr_equal(payload, c.rest);
  assert_int_equal(c.prefix_len, 16);
  assert_memory_equal(c.prefix, rec + TR_HDR_SIZE, 16);
  assert_memory_equal(payload, rec + TR_HDR_SIZE + 16, 24);

  /* A zero payload: split with prefix_len 0 right after the header, and
     the record completes in the same feed. */
  tr_hdr_init(&h, TR_OP_NOP, 0, 8, 0);
  tr_hdr_pack(&h, rec);
  assert_int_equal(tr_decoder_feed(&d, rec, TR_HDR_SIZE, &complete, &h,
                                   &payload),
                   TR_HDR_SIZE);
  assert_int_equal(complete, 1);
  assert_int_equal(c.calls, 2);
  assert_int_equal(c.prefix_len, 0);
  assert_int_equal(h.request_id, 8);
  assert_ptr_equal(payload, c.rest);

  /* NULL from split: -ENOMEM, and it sticks. */
  c.fail = true;
  tr_hdr_init(&h, TR_OP_NOP, 0, 9, 4);
  tr_hdr_pack(&h, rec);
  assert_int_equal(tr_decoder_feed(&d, rec, TR_HDR_SIZE + 4, &complete, &h,
                                   &payload),
                   -ENOMEM);
  assert_int_equal(complete, 0);
  assert_int_equal(tr_decoder_feed(&d, rec, 1, &complete, &h, &payload),
                   -ENOMEM);
  tr_decoder_release(&d);
  free(c.rest);
}

/* tr_decoder_room: where the next payload bytes go, and how many; bytes
   placed there first and then fed in place arrive intact. */
static void test_decoder_room(void **state)
{
  struct split_ctx c = {0};
  uint8_t rec[TR_HDR_SIZE + 40], *at;
  struct tr_decoder d;
  const uint8_t *payload = NULL;
  struct tr_hdr h;
  size_t room = 0;
  int complete;

  (void)state;
  tr_hdr_init(&h, TR_OP_MEMCPY_H2D, 0, 7, 40);
  tr_hdr_pack(&h, rec);
  for (int j = 0; j < 40; j++)
    rec[TR_HDR_SIZE + j] = (uint8_t)(0xa0 + j);
  assert_int_equal(tr_decoder_init_split(&d, 100, 16, split_cb, &c), 0);
  assert_null(tr_decoder_room(&d, &room)); /* before a header */
  assert_int_equal(tr_decoder_feed(&d, rec, TR_HDR_SIZE + 10, &complete, &h,
                                   &payload),
                   TR_HDR_SIZE + 10);
  assert_null(tr_decoder_room(&d, &room)); /* inside the prefix */
  assert_int_equal(tr_decoder_feed(&d, rec + TR_HDR_SIZE + 10, 9, &complete,
                                   &h, &payload),
                   9);
  at = tr_decoder_room(&d, &room);
  assert_ptr_equal(at, c.rest + 3); /* 16 + 3 of 40 payload bytes in */
  assert_int_equal(room, 21);
  /* Received in place: the decoder takes them without a copy. */
  memcpy(at, rec + TR_HDR_SIZE + 19, 21);
  assert_int_equal(tr_decoder_feed(&d, at, 21, &complete, &h, &payload), 21);
  assert_int_equal(complete, 1);
  assert_memory_equal(payload, rec + TR_HDR_SIZE + 16, 24);
  assert_null(tr_decoder_room(&d, &room)); /* between records */
  tr_decoder_release(&d);
  free(c.rest);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_le_helpers),
    cmocka_unit_test(test_hdr_pack),
    cmocka_unit_test(test_hdr_init),
    cmocka_unit_test(test_hdr_check),
    cmocka_unit_test(test_op_names),
    cmocka_unit_test(test_shmref),
    cmocka_unit_test(test_hello),
    cmocka_unit_test(test_hello_choose),
    cmocka_unit_test(test_devinfo),
    cmocka_unit_test(test_devinfo_malformed),
    cmocka_unit_test(test_decoder_splits),
    cmocka_unit_test(test_decoder_boundaries),
    cmocka_unit_test(test_decoder_errors),
    cmocka_unit_test(test_decoder_room),
    cmocka_unit_test(test_decoder_split),
    cmocka_unit_test(test_decoder_split_timing),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
