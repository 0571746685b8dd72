/*
 * h2track.h: where a received HTTP/2 byte stream stands in its framing,
 * followed byte for byte alongside nghttp2.
 *
 * nghttp2 parses input from a buffer we give it and hands a DATA payload
 * to on_data_chunk as a pointer into that buffer.  So a receiver that
 * knows the next bytes are DATA payload for a stream whose consumer will
 * copy them to a known place can receive them there in the first place
 * and feed nghttp2 from there: one copy fewer (the agent for uploads, the
 * broker for downloads).  This module only tracks frame boundaries (frame
 * headers, PADDED DATA frames, a client preface); it never decides
 * anything nghttp2 decides.
 */
#ifndef TR_H2TRACK_H
#define TR_H2TRACK_H

#include <stddef.h>
#include <stdint.h>

struct tr_h2track {
  uint32_t preface;  /* connection preface bytes still to come */
  uint8_t hdr[9];    /* frame header bytes gathered (hlen of them) */
  uint32_t hlen;
  uint32_t left;     /* payload bytes of the current frame left (0: the
                        next byte starts a frame header) */
  uint32_t pad;      /* of which trailing padding (DATA) */
  int padlen_next;   /* DATA with PADDED: its pad length byte is next */
  uint8_t type;
  int32_t stream;
};

/* preface: 24 on a server's input (the client magic), 0 on a client's. */
void tr_h2track_init(struct tr_h2track *t, uint32_t preface);

/* Account for n bytes the HTTP/2 session has just consumed. */
void tr_h2track_feed(struct tr_h2track *t, const uint8_t *p, size_t n);

/* How many of the next input bytes are DATA payload (padding excluded),
   and of which stream (*stream); 0 when the next byte is anything else. */
size_t tr_h2track_data(const struct tr_h2track *t, int32_t *stream);

/*
 * How much to read into one's own buffer when the next bytes cannot go in
 * place: the rest of the current frame plus head bytes, at most cap.  So a
 * read stops soon after the next frame's header (and, with head of a few
 * KiB, after the header of the record its payload begins with), and the
 * bulk of a large DATA frame can then be read in place.
 */
size_t tr_h2track_next_read(const struct tr_h2track *t, size_t head,
                            size_t cap);

#endif /* TR_H2TRACK_H */
