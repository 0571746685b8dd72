/*
 * h2share.h: how long a DATA frame is on an HTTP/2 connection that many
 * lanes share (the broker's to an agent, both ends).
 *
 * Alone on a connection, a bulk copy goes in frames as large as the peer
 * takes (fewer system calls).  For TR_H2_SHARED_NS after a small frame of
 * another stream went either way while one was sending bulk (a large
 * frame within TR_H2_SHARED_NS), that is while other lanes are active,
 * it goes in TR_H2_SHARED_FRAME pieces, so that their calls wait behind
 * tens of microseconds of bulk, not a quarter of a millisecond.  Each end
 * reports every DATA frame it sends or receives (tr_h2share_frame) and
 * sizes the ones it sends with tr_h2share_length.
 *
 * The receive buffer is the other queue a small reply waits in: every
 * byte of bulk the peer sent ahead of it and we have not read yet.  On a
 * loopback connection, whose buffer we size (the broker's and the
 * agent's, for the two directions), it shrinks to TR_H2_SHARED_RCVBUF
 * while lanes share and grows back after (tr_h2share_rcvbuf): alone, a
 * copy needs the larger one (128 KiB cost it a sixth to a third of its
 * bandwidth); beside small calls, the smaller one halves their tail
 * (docs/BENCHMARKS.md, "Small calls beside a copy, hop by hop").
 */
#ifndef TR_H2SHARE_H
#define TR_H2SHARE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* DATA frames shorter than this are a lane's calls, not bulk. */
#define TR_H2_SMALL_FRAME (16u << 10)
#define TR_H2_SHARED_FRAME (32u << 10)
#define TR_H2_SHARED_RCVBUF (128 << 10)
#define TR_H2_SHARED_NS 5000000u

/*
 * Whether lanes share now.  One for every connection whose frames delay
 * each other's calls: the broker keeps one per machine (its bulk and
 * express connections, PROTOCOL.md §3), the agent one for its network
 * thread.  Streams are named by key: a connection's tag in the high 32
 * bits, the stream id in the low (tr_h2share_key).
 */
struct tr_h2share {
  uint64_t until;    /* CLOCK_MONOTONIC ns: frames are SHARED_FRAME until */
  uint64_t bulk_key; /* stream of the last large frame either way */
  uint64_t bulk_ns;  /* when it went */
};

/* The receive buffer of one connection's socket, when we size it. */
struct tr_h2rcvbuf {
  int alone; /* its size alone; 0: not ours to size */
  int now;   /* what it was last set to */
};

/* A new connection's tag (never 0), for tr_h2share_key. */
uint32_t tr_h2share_tag(void);

static inline uint64_t tr_h2share_key(uint32_t tag, int32_t stream)
{
  return (uint64_t)tag << 32 | (uint32_t)stream;
}

/* A DATA frame of len payload bytes on stream key went out or came in. */
void tr_h2share_frame(struct tr_h2share *s, uint64_t key, size_t len);

/* The length of the next DATA frame to send: at most max_frame, at most
   TR_H2_SHARED_FRAME while lanes share, within both flow-control windows,
   and at least 1 (nghttp2's read-length callback contract). */
ssize_t tr_h2share_length(const struct tr_h2share *s, size_t max_frame,
                          int32_t conn_win, int32_t stream_win);

/*
 * For a connection whose receive buffer we sized to alone bytes: from now
 * on tr_h2share_rcvbuf tells when to change it.
 */
void tr_h2share_rcvbuf_init(struct tr_h2rcvbuf *r, int alone);

/*
 * The receive buffer r's connection should have now, when that differs
 * from what it was last told (then it counts as set), else 0: its size
 * alone, or TR_H2_SHARED_RCVBUF while lanes share (s).  Called after each
 * read; always 0 without tr_h2share_rcvbuf_init.
 */
int tr_h2share_rcvbuf(const struct tr_h2share *s, struct tr_h2rcvbuf *r);

/*
 * A size of the broker-agent connection, as TREMOTE_NET_TUNE overrides
 * it for measurements ("frame=32K,rcvbuf=128K,lowat=16K": the DATA frame
 * while lanes share, the loopback receive buffer, TCP_NOTSENT_LOWAT;
 * bytes, K or M for powers of 1024), else dflt.  Keys: "frame",
 * "rcvbuf", "srcvbuf" (the loopback receive buffer while lanes share; only a size
 * smaller than rcvbuf's is used),
 * "lowat".  The defaults are what the measurements chose.
 */
unsigned tr_net_tune(const char *key, unsigned dflt);

#endif /* TR_H2SHARE_H */
