/*
 * h2share.c: DATA frame sizes on a shared HTTP/2 connection (h2share.h).
 */
#include <stdatomic.h>
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

/* TR_H2_SHARED_FRAME, or its override; looked up once (a race here only
   computes the same value twice). */
static size_t shared_frame(void)
{
  static _Atomic size_t v;
  size_t f = atomic_load_explicit(&v, memory_order_relaxed);

  if (!f) {
    f = tr_net_tune("frame", TR_H2_SHARED_FRAME);
    atomic_store_explicit(&v, f, memory_order_relaxed);
  }
  return f;
}

static uint64_t now_ns(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void tr_h2share_frame(struct tr_h2share *s, int32_t stream, size_t len)
{
  uint64_t now = now_ns();

  if (len >= TR_H2_SMALL_FRAME) {
    s->bulk_id = stream;
    s->bulk_ns = now;
  } else if (s->bulk_id && stream != s->bulk_id &&
             now - s->bulk_ns < TR_H2_SHARED_NS) {
    /* Only beside a bulk stream: a program's calls alone, or before its
       copy starts, share nothing. */
    s->until = now + TR_H2_SHARED_NS;
  }
}

void tr_h2share_rcvbuf_init(struct tr_h2share *s, int alone)
{
  s->rcvbuf_alone = s->rcvbuf_now = alone;
}

int tr_h2share_rcvbuf(struct tr_h2share *s)
{
  static _Atomic int shared_v;
  int want, shared = atomic_load_explicit(&shared_v, memory_order_relaxed);

  if (!s->rcvbuf_alone)
    return 0;
  if (!shared) {
    shared = (int)tr_net_tune("srcvbuf", TR_H2_SHARED_RCVBUF);
    atomic_store_explicit(&shared_v, shared, memory_order_relaxed);
  }
  want = s->until && now_ns() < s->until && shared < s->rcvbuf_alone
             ? shared
             : s->rcvbuf_alone;
  if (want == s->rcvbuf_now)
    return 0;
  s->rcvbuf_now = want;
  return want;
}

ssize_t tr_h2share_length(const struct tr_h2share *s, size_t max_frame,
                          int32_t conn_win, int32_t stream_win)
{
  ssize_t n = (ssize_t)max_frame;

  if (n > (ssize_t)shared_frame() && s->until && now_ns() < s->until)
    n = (ssize_t)shared_frame(); /* other lanes are active */
  if (conn_win < n)
    n = conn_win;
  if (stream_win < n)
    n = stream_win;
  return n > 0 ? n : 1;
}
