/*
 * h2track.c: HTTP/2 frame boundaries of a received byte stream (see
 * h2track.h).  RFC 9113 §4.1: a frame is a 9-byte header (24-bit length,
 * type, flags, 31-bit stream id) and length payload bytes; a DATA frame
 * (type 0) with PADDED (0x8) starts with a pad length byte and ends with
 * that many bytes of padding.
 */
#include <string.h>

#include "h2track.h"

#define H2_DATA 0x0
#define H2_FLAG_PADDED 0x8

void tr_h2track_init(struct tr_h2track *t, uint32_t preface)
{
  memset(t, 0, sizeof(*t));
  t->preface = preface;
}

void tr_h2track_feed(struct tr_h2track *t, const uint8_t *p, size_t n)
{
  while (n) {
    size_t k;

    if (t->preface) {
      k = n < t->preface ? n : t->preface;
      t->preface -= (uint32_t)k;
    } else if (!t->left) {
      k = n < 9 - t->hlen ? n : 9 - t->hlen;
      memcpy(t->hdr + t->hlen, p, k);
      t->hlen += (uint32_t)k;
      if (t->hlen == 9) {
        const uint8_t *h = t->hdr;

        t->hlen = 0;
        t->left = (uint32_t)h[0] << 16 | (uint32_t)h[1] << 8 | h[2];
        t->type = h[3];
        t->stream = (int32_t)(((uint32_t)h[5] << 24 | (uint32_t)h[6] << 16 |
                               (uint32_t)h[7] << 8 | h[8]) &
                              0x7fffffffu);
        t->pad = 0;
        t->padlen_next =
            t->type == H2_DATA && (h[4] & H2_FLAG_PADDED) && t->left;
      }
    } else if (t->padlen_next) {
      k = 1;
      t->pad = p[0];
      t->padlen_next = 0;
      t->left--;
      if (t->pad > t->left) /* malformed: nghttp2 will say so */
        t->pad = t->left;
    } else {
      k = n < t->left ? n : t->left;
      t->left -= (uint32_t)k;
      if (t->pad > t->left)
        t->pad = t->left;
    }
    p += k;
    n -= k;
  }
}

size_t tr_h2track_data(const struct tr_h2track *t, int32_t *stream)
{
  if (t->preface || t->hlen || !t->left || t->type != H2_DATA ||
      t->padlen_next || t->left <= t->pad)
    return 0;
  *stream = t->stream;
  return t->left - t->pad;
}

size_t tr_h2track_next_read(const struct tr_h2track *t, size_t head,
                            size_t cap)
{
  size_t n = (size_t)t->preface + (t->hlen ? 9 - t->hlen : 0) + t->left +
             head;

  return n < cap ? n : cap;
}
