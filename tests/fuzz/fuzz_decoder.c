/*
 * fuzz_decoder.c: libFuzzer target for everything that reads bytes a peer
 * controls: the wire decoder, HELLO and devinfo parsing, and the consumer
 * side of a shared-memory ring (records and area references).  The wire
 * decoder runs twice, plainly and in split mode, and both runs must see
 * the same records with the same bytes.
 *
 * Input layout (so that a mutation of the prefix changes how the rest is
 * read, and the seed corpus can aim at each path):
 *
 *   0       flags: bit 0 = decoder limit TR_PAYLOAD_MAX (else 300 bytes)
 *   1..8    piece sizes for the decoder: piece k is 1 + byte[1 + k % 8],
 *           or all that is left when that byte is 0xff
 *   9..10   ring size selector: 32 + (u16 % 8192), rounded down to a
 *           multiple of 32 unless bit 15 is set (sizes our lane never
 *           uses, which the consumer must survive anyway)
 *   11..14  starting position of the ring (both sides), so that the
 *           buffer's end is reached early
 *   15..18  how far past the start the producer's tail is published
 *           (sometimes beyond a buffer, which must be refused)
 *   19      split-mode prefix for the decoder's second run (% 48)
 *   20..    body: the byte stream for the decoder, HELLO and devinfo, and
 *           the contents of the ring buffer (repeated to fill it)
 *
 * Build: see tests/proto.cmake (clang -fsanitize=fuzzer,address,undefined).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ring.h"
#include "tremote/proto.h"

#define PREFIX 20u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Read every byte of a span so ASan checks that it lies in bounds. */
static volatile uint8_t sink;
static void touch(const uint8_t *p, size_t n)
{
  uint8_t x = 0;

  for (size_t i = 0; i < n; i++)
    x ^= p[i];
  sink ^= x;
}

/* What one run of the decoder saw: a hash of every complete record. */
struct fuzz_seen {
  uint64_t hash;
  uint32_t records;
  int err;
};

static void seen_add(struct fuzz_seen *s, const void *p, size_t n)
{
  const uint8_t *b = p;

  for (size_t i = 0; i < n; i++)
    s->hash = (s->hash ^ b[i]) * 0x100000001b3ull;
}

/* Split mode: a whole-payload buffer per record, the prefix copied to its
   front, the rest written after it by the decoder. */
struct fuzz_split {
  uint8_t *buf;
  uint32_t len, pre;
};

static uint8_t *fuzz_split_cb(void *arg, const struct tr_hdr *h,
                              const uint8_t *prefix, uint32_t prefix_len)
{
  struct fuzz_split *f = arg;

  if (prefix_len > h->payload_len)
    abort();
  free(f->buf);
  /* +1: a zero-length rest still needs a non-NULL pointer. */
  f->buf = malloc((size_t)h->payload_len + 1);
  if (!f->buf)
    return NULL;
  memcpy(f->buf, prefix, prefix_len);
  f->len = h->payload_len;
  f->pre = prefix_len;
  return f->buf + prefix_len;
}

static void fuzz_decoder(const uint8_t *sel, uint32_t max,
                         const uint8_t *in, size_t len, int split,
                         uint32_t prefix, struct fuzz_seen *seen)
{
  struct fuzz_split fs = {0};
  struct tr_decoder d;
  const uint8_t *payload;
  struct tr_hello hello;
  struct tr_devinfo dev;
  struct tr_hdr h;
  size_t used;
  int complete;
  long n;

  if (split ? tr_decoder_init_split(&d, max, prefix, fuzz_split_cb, &fs) < 0
            : tr_decoder_init(&d, max) < 0)
    return;
  for (size_t k = 0; len; k++) {
    size_t piece = sel[k % 8] == 0xff ? len : 1u + sel[k % 8];

    if (piece > len)
      piece = len;
    while (piece) {
      n = tr_decoder_feed(&d, in, piece, &complete, &h, &payload);
      if (n < 0) {
        if (!d.why)
          abort();
        seen->err = (int)n;
        goto out;
      }
      if ((size_t)n > piece || (n == 0 && !complete))
        abort(); /* no progress, or consumed more than given */
      in += n;
      len -= (size_t)n;
      piece -= (size_t)n;
      if (!complete)
        continue;
      if (h.payload_len > max || tr_hdr_check(&h, max, 0, NULL) != 0)
        abort();
      if (split) {
        /* *payload is the rest; the whole payload is in fs.buf. */
        if (payload != fs.buf + fs.pre || fs.len != h.payload_len ||
            fs.pre != (h.payload_len < prefix ? h.payload_len : prefix))
          abort();
        touch(payload, h.payload_len - fs.pre);
        payload = fs.buf;
      }
      touch(payload, h.payload_len);
      seen->records++;
      seen_add(seen, &h.request_id, sizeof(h.request_id));
      seen_add(seen, &h.payload_len, sizeof(h.payload_len));
      seen_add(seen, payload, h.payload_len);
      /* What a receiver does next with a HELLO's payload. */
      if (h.opcode == TR_OP_HELLO &&
          tr_hello_unpack(payload, h.payload_len, &hello) == 0 &&
          tr_devinfo_unpack(payload + TR_HELLO_SIZE, hello.extra_len, &dev,
                            &used) == 0 &&
          used > hello.extra_len)
        abort();
    }
  }
out:
  tr_decoder_release(&d);
  free(fs.buf);
}

static void fuzz_hello_devinfo(const uint8_t *in, size_t len)
{
  struct tr_hello h;
  struct tr_devinfo d;
  size_t off = 0, used;
  int32_t v;

  if (tr_hello_unpack(in, len, &h) == 0) {
    if (h.min_version > h.max_version || h.extra_len > len - TR_HELLO_SIZE)
      abort();
    touch(in + TR_HELLO_SIZE, h.extra_len);
    (void)tr_hello_choose(&h, &h);
  }
  /* A devinfo list, as the broker's HELLO reply carries it. */
  while (off < len) {
    if (tr_devinfo_unpack(in + off, len - off, &d, &used) < 0)
      break;
    if (used < TR_DEVINFO_FIXED + 8u * d.nattr || used > len - off ||
        d.nattr > TR_DEVINFO_MAX_ATTR || memchr(d.name, 0, sizeof(d.name)) == NULL)
      abort();
    (void)tr_devinfo_attr(&d, 1, &v);
    off += used;
  }
}

/*
 * A consumer's view of a ring whose producer wrote body and published
 * start + delta.  The ring and the area share the buffer (both are only
 * read here), each with its own control block.
 */
static void fuzz_ring(const uint8_t *prefix, const uint8_t *body, size_t len)
{
  uint16_t sel = tr_get_u16(prefix + 9);
  uint32_t size = 32u + sel % 8192u;
  uint64_t start = tr_get_u32(prefix + 11);
  uint32_t delta = tr_get_u32(prefix + 15);
  struct tr_ring_ctl *ctl, *actl;
  struct tr_ring r, a;
  const uint8_t *payload, *p;
  struct tr_shmref ref;
  const char *why;
  struct tr_hdr h;
  uint8_t *buf;
  int rc;

  if (!(sel & 0x8000))
    size &= ~(TR_RING_ALIGN - 1);
  if (!len)
    return;
  ctl = aligned_alloc(64, 2 * sizeof(*ctl));
  buf = malloc(size);
  if (!ctl || !buf)
    goto out;
  actl = ctl + 1;
  memset(ctl, 0, 2 * sizeof(*ctl));
  for (uint32_t i = 0; i < size; i++)
    buf[i] = body[i % len];

  /* Consumer state as if it had consumed up to start (32-aligned, as
     everything it advances by is). */
  start &= ~(uint64_t)(TR_RING_ALIGN - 1);
  memset(&r, 0, sizeof(r));
  r.ctl = ctl;
  r.buf = buf;
  r.size = size;
  r.area = UINT32_MAX;
  r.pos = r.other = r.committed = start;
  atomic_store(&ctl->head, start);
  /* Mostly within a buffer, sometimes beyond (must be refused). */
  atomic_store(&ctl->tail, start + delta % (size + size / 4 + 1));

  for (int i = 0; i < 64; i++) {
    why = NULL;
    rc = tr_ring_peek(&r, &h, &payload, &why);
    if (rc == 0)
      break;
    if (rc < 0) {
      if (rc != -EPROTO || !why || !r.err)
        abort();
      break;
    }
    if (payload < buf + TR_HDR_SIZE ||
        payload + h.payload_len > buf + size ||
        h.payload_len > TR_LANE_INLINE_MAX || h.opcode == TR_OP_PAD)
      abort();
    touch(payload, h.payload_len);
    /* A SHMREF record names bytes in the area: resolve them. */
    if ((h.flags & TR_F_SHMREF) && h.payload_len >= TR_SHMREF_SIZE) {
      tr_shmref_unpack(payload + h.payload_len - TR_SHMREF_SIZE, &ref);
      memset(&a, 0, sizeof(a));
      a.ctl = actl;
      a.buf = buf;
      a.size = size;
      a.area = TR_AREA_UP;
      a.pos = a.other = start;
      atomic_store(&actl->head, start);
      atomic_store(&actl->tail, start + delta % (2 * size + 1));
      p = tr_area_resolve(&a, &ref, &why);
      if (p) {
        if (p < buf || ref.len > size || p + ref.len > buf + size ||
            ref.pos < start)
          abort();
        touch(p, ref.len);
        tr_area_release(&a, &ref);
        if (atomic_load(&actl->head) != ref.pos + ref.len && ref.len)
          abort();
      } else if (!why) {
        abort();
      }
    }
    tr_ring_release(&r, &h);
    if (atomic_load(&ctl->head) != r.pos)
      abort();
  }
out:
  free(buf);
  free(ctl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static const uint8_t zero[PREFIX];
  const uint8_t *prefix = size >= PREFIX ? data : zero;
  const uint8_t *body = size >= PREFIX ? data + PREFIX : data;
  size_t len = size >= PREFIX ? size - PREFIX : size;
  uint32_t max = (prefix[0] & 1) ? TR_PAYLOAD_MAX : 300;
  struct fuzz_seen plain = {0}, split = {0};

  fuzz_decoder(prefix + 1, max, body, len, 0, 0, &plain);
  fuzz_decoder(prefix + 1, max, body, len, 1, prefix[19] % 48u, &split);
  /* The same records and the same failure, unless split ran out of memory
     for a record (its callback's malloc) and stopped early. */
  if ((split.err != -ENOMEM || plain.err == -ENOMEM) &&
      (plain.records != split.records || plain.hash != split.hash ||
       plain.err != split.err))
    abort();
  fuzz_hello_devinfo(body, len);
  fuzz_ring(prefix, body, len);
  return 0;
}
