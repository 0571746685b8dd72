/*
 * h2share.c: DATA frame sizes on a shared HTTP/2 connection (h2share.h).
 */
#include <time.h>

#include "h2share.h"

static uint64_t now_ns(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void tr_h2share_frame(struct tr_h2share *s, int32_t stream, size_t len)
{
  if (len >= TR_H2_SMALL_FRAME)
    s->bulk_id = stream;
  else if (stream != s->bulk_id)
    s->until = now_ns() + TR_H2_SHARED_NS;
}

ssize_t tr_h2share_length(const struct tr_h2share *s, size_t max_frame,
                          int32_t conn_win, int32_t stream_win)
{
  ssize_t n = (ssize_t)max_frame;

  if (n > (ssize_t)TR_H2_SHARED_FRAME && s->until && now_ns() < s->until)
    n = TR_H2_SHARED_FRAME; /* other lanes are active */
  if (conn_win < n)
    n = conn_win;
  if (stream_win < n)
    n = stream_win;
  return n > 0 ? n : 1;
}
