/*
 * h2share.c: DATA frame sizes on a shared HTTP/2 connection (h2share.h).
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "h2share.h"

unsigned tr_net_tune(const char *key, unsigned dflt)
{
  const char *p = getenv("TREMOTE_NET_TUNE");
  size_t klen = strlen(key);

  while (p && *p) {
    while (*p == ' ')
      p++;
    if (!strncmp(p, key, klen) && p[klen] == '=') {
      const char *num = p + klen + 1;
      char *end;
      unsigned long long v;

      if (*num < '0' || *num > '9')
        return dflt; /* strtoull would take a sign or spaces */
      v = strtoull(num, &end, 10);
      if (v >= (1ull << 30))
        return dflt;
      if (*end == 'K' || *end == 'k')
        v <<= 10, end++;
      else if (*end == 'M' || *end == 'm')
        v <<= 20, end++;
      if (*end && *end != ',' && *end != ' ')
        return dflt; /* something after the number */
      return v > 0 && v < (1ull << 30) ? (unsigned)v : dflt;
    }
    p = strchr(p, ',');
    p = p ? p + 1 : NULL;
  }
  return dflt;
}

/* tr_net_tune(key, dflt), looked up once into *v (a race here only
   computes the same value twice). */
static unsigned tuned(_Atomic unsigned *v, const char *key, unsigned dflt)
{
  unsigned x = atomic_load_explicit(v, memory_order_relaxed);

  if (!x) {
    x = tr_net_tune(key, dflt);
    atomic_store_explicit(v, x, memory_order_relaxed);
  }
  return x;
}

static uint64_t now_ns(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Whether other lanes are active beside a bulk stream now. */
static bool sharing(const struct tr_h2share *s)
{
  return s->until && now_ns() < s->until;
}

uint32_t tr_h2share_tag(void)
{
  static _Atomic uint32_t next;
  uint32_t t;

  while ((t = atomic_fetch_add_explicit(&next, 1, memory_order_relaxed) + 1) ==
         0)
    ;
  return t;
}

void tr_h2share_frame(struct tr_h2share *s, uint64_t key, size_t len)
{
  uint64_t now = now_ns();

  if (len >= TR_H2_SMALL_FRAME) {
    s->bulk_key = key;
    s->bulk_ns = now;
  } else if (s->bulk_key && key != s->bulk_key &&
             now - s->bulk_ns < TR_H2_SHARED_NS) {
    /* Only beside a bulk stream: a program's calls alone, or before its
       copy starts, share nothing. */
    s->until = now + TR_H2_SHARED_NS;
  }
}

void tr_h2share_rcvbuf_init(struct tr_h2rcvbuf *r, int alone)
{
  r->alone = r->now = alone;
}

int tr_h2share_rcvbuf(const struct tr_h2share *s, struct tr_h2rcvbuf *r)
{
  static _Atomic unsigned v;
  int want, shared;

  if (!r->alone)
    return 0;
  shared = (int)tuned(&v, "srcvbuf", TR_H2_SHARED_RCVBUF);
  want = shared < r->alone && sharing(s) ? shared : r->alone;
  if (want == r->now)
    return 0;
  r->now = want;
  return want;
}

ssize_t tr_h2share_length(const struct tr_h2share *s, size_t max_frame,
                          int32_t conn_win, int32_t stream_win)
{
  static _Atomic unsigned v;
  ssize_t n = (ssize_t)max_frame;
  ssize_t shared = (ssize_t)tuned(&v, "frame", TR_H2_SHARED_FRAME);

  if (n > shared && sharing(s))
    n = shared; /* other lanes are active */
  if (conn_win < n)
    n = conn_win;
  if (stream_win < n)
    n = stream_win;
  return n > 0 ? n : 1;
}
