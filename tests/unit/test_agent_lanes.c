/*
 * test_agent_lanes.c: what happens on a lane's stream.  A malformed record
 * resets that stream only; flow control keeps the agent's memory bounded in
 * both directions; host-to-device copies land intact whatever the framing
 * and in the lane's order; EVENT_WAIT and lane marks order one lane after
 * another; a lane moves to another connection and keeps what it had.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_agent.h"

/*
 * How much a stalled 256 MiB device-to-host copy may add to the agent's
 * memory: the lane's outbound bound (8 MiB), a frame, allocator slack.
 * TSan also keeps shadow memory for every byte copied before the stall.
 */
#if defined(__SANITIZE_THREAD__)
#define RSS_SLACK (128 * MiB)
#else
#define RSS_SLACK (64 * MiB)
#endif

/* ---- lane streams ------------------------------------------------------- */

/* Garbage on one lane resets that stream only. */
void test_malformed_record(void **state)
{
  struct tc_conn c;
  struct tc_stream *sess, *bad, *good;
  uint64_t sid;
  uint8_t junk[64];

  ta_connect_agent(&c);
  sess = ta_open_session(&c, 6, &sid);
  bad = ta_open_lane(&c, sid, 1, 200);
  good = ta_open_lane(&c, sid, 2, 200);
  memset(junk, 0x5a, sizeof(junk));
  tc_send(bad, junk, sizeof(junk));
  assert_true(tc_wait_closed(bad));
  assert_int_equal(bad->rst_code, NGHTTP2_PROTOCOL_ERROR);
  assert_int_equal(tc_call(good, TR_OP_NOP, 0, NULL, 0, NULL), 0);
  /* A record that claims more than TR_PAYLOAD_MAX bytes. */
  {
    struct tc_stream *big = ta_open_lane(&c, sid, 3, 200);
    uint8_t hb[TR_HDR_SIZE];
    struct tr_hdr h;

    tr_hdr_init(&h, TR_OP_NOP, TR_F_WANT_REPLY, 1, TR_PAYLOAD_MAX + 1);
    tr_hdr_pack(&h, hb);
    tc_send(big, hb, sizeof(hb));
    assert_true(tc_wait_closed(big));
    assert_int_equal(big->rst_code, NGHTTP2_PROTOCOL_ERROR);
  }
  assert_int_equal(tc_call(good, TR_OP_NOP, 0, NULL, 0, NULL), 0);
  tc_end(sess);
  assert_true(tc_wait_ended(sess));
  tc_close(&c);
}

/* ---- flow control ------------------------------------------------------- */

/* The agent's resident memory, from /proc. */
static uint64_t agent_rss(void)
{
  char path[64], line[256];
  uint64_t kb = 0;
  FILE *f;

  snprintf(path, sizeof(path), "/proc/%d/status", (int)ta_agent_pid);
  f = fopen(path, "r");
  assert_non_null(f);
  while (fgets(line, sizeof(line), f)) {
    if (sscanf(line, "VmRSS: %" SCNu64 " kB", &kb) == 1)
      break;
  }
  fclose(f);
  return kb << 10;
}

/*
 * A large device-to-host copy whose reader stalls: the agent produces
 * replies only as fast as they drain, so its memory grows by a few MiB
 * (AGT_LANE_OUT_MAX plus nghttp2's frame), not by the copy's size.
 */
void test_d2h_bounded(void **state)
{
  struct tc_conn c;
  struct tc_stream *sess, *lane;
  const uint64_t big = 256 * MiB;
  uint64_t sid, p, rss0, rss1, rss2, got = 0;
  unsigned nmore = 0;
  uint8_t req[16];
  bool bad = false;

  ta_connect_agent(&c);
  sess = ta_open_session(&c, 9, &sid);
  lane = ta_open_lane(&c, sid, 1, 200);
  p = ta_dmalloc(lane, big);
  assert_int_equal(ta_dmemset(lane, p, big, 0x3c), 0);
  rss0 = agent_rss();

  tr_put_u64(req, p);
  tr_put_u64(req + 8, big);
  tc_send_record(lane, TR_OP_MEMCPY_D2H, TR_F_WANT_REPLY, 4242, req, 16);
  /* Behind it, a memset of its last bytes, those whose replies are the
     last to leave: the replies refer to the device memory (emulated
     device), so the memset must wait until they have all been sent. */
  {
    uint8_t ms[20];

    ta_memset_payload(ms, p + big - 16 * MiB, 16 * MiB, 0x77);
    tc_post(lane, TR_OP_MEMSET, ms, sizeof(ms));
  }
  tc_pump(&c, 0);
  /* Not reading: the agent must stall, not buffer. */
  usleep(500000);
  rss1 = agent_rss();
  usleep(300000);
  rss2 = agent_rss();
  print_message("agent RSS grew by %.1f MiB during a stalled %llu MiB D2H "
                "(%.1f MiB in its last 300 ms)\n",
                ((double)rss2 - (double)rss0) / MiB,
                (unsigned long long)(big / MiB),
                ((double)rss2 - (double)rss1) / MiB);
  assert_true(rss2 < rss1 + 8 * MiB);
  assert_true(rss2 < rss0 + RSS_SLACK);

  for (;;) {
    const uint8_t *pl;
    struct tr_hdr h;

    if (!tc_next_record(lane, &h, &pl)) {
      assert_int_equal(tc_pump(&c, 1000), 0);
      continue;
    }
    assert_int_equal(h.request_id, 4242);
    assert_true(h.payload_len <= TR_CHUNK_MAX);
    for (uint32_t i = 0; i < h.payload_len; i += 4093)
      bad |= pl[i] != 0x3c;
    got += h.payload_len;
    if (!(h.flags & TR_F_MORE)) {
      assert_int_equal(h.status, 0);
      break;
    }
    nmore++;
  }
  assert_false(bad);
  assert_int_equal(got, big);
  assert_int_equal(nmore, big / TR_CHUNK_MAX - 1);
  {
    struct tc_result r;

    assert_int_equal(ta_d2h(lane, p + big - 4096, 4096, &r), 0);
    assert_int_equal(r.len, 4096);
    assert_int_equal(r.data[0], 0x77); /* the memset ran afterwards */
    free(r.data);
  }
  tc_end(sess);
  assert_true(tc_wait_ended(sess));
  tc_close(&c);
}

/*
 * TLS (this group's agent serves it): a lane's DATA frame that the socket
 * could not take, its stream reset meanwhile.  OpenSSL has made a TLS
 * record of the frame already and must be given the same bytes again, so
 * the agent keeps the frame whole and finishes it before anything else:
 * the connection goes on (a PING is answered, a new lane works).  Were
 * the frame dropped with its stream, the agent's next write (the PING's
 * ACK) would be taken for the rest of that record, and the connection
 * would break.
 *
 * Where the socket fills (in a frame's first record, or in the rest the
 * agent keeps anyway) depends on the frame size and the kernel's socket
 * accounting, so this runs with frames of several sizes, each on a
 * connection of its own.
 */
static void reset_midframe(uint32_t frame_max)
{
  struct tc_conn c;
  struct tc_stream *sess, *lane, *lane2;
  const uint64_t big = 8 * MiB;
  struct timespec pause = {0, 150000000};
  uint64_t sid, p;
  unsigned acks;
  uint8_t req[16];

  tc_recv_frame_max = frame_max;
  ta_connect_agent(&c);
  tc_recv_frame_max = 0;
  assert_non_null(c.ssl);
  sess = ta_open_session(&c, 9, &sid);
  lane = ta_open_lane(&c, sid, 1, 200);
  p = ta_dmalloc(lane, big);
  assert_int_equal(ta_dmemset(lane, p, big, 0x5a), 0);
  tr_put_u64(req, p);
  tr_put_u64(req + 8, big);
  tc_send_record(lane, TR_OP_MEMCPY_D2H, TR_F_WANT_REPLY, 77, req, 16);
  tc_pump(&c, 0);
  nanosleep(&pause, NULL); /* not reading: the agent fills the socket */
  acks = c.ping_acks;
  tc_reset(lane);
  tc_ping(&c);
  nanosleep(&pause, NULL); /* the agent reads both, its write still stopped */
  for (uint64_t until = tc_now_ns() + 20000000000ull;
       c.ping_acks == acks && tc_now_ns() < until;)
    assert_int_equal(tc_pump(&c, 100), 0);
  assert_true(c.ping_acks > acks);
  lane2 = ta_open_lane(&c, sid, 2, 200);
  {
    struct tc_result r;

    assert_int_equal(ta_d2h(lane2, p + big - 4096, 4096, &r), 0);
    assert_int_equal(r.len, 4096);
    assert_int_equal(r.data[4095], 0x5a);
    free(r.data);
  }
  assert_int_equal(ta_dfree(lane2, p), 0);
  tc_end(sess);
  assert_true(tc_wait_ended(sess));
  tc_close(&c);
}

void test_tls_reset_midframe(void **state)
{
  (void)state;
  /* Frame sizes from one TLS record to eight, in uneven steps. */
  for (uint32_t f = 16384; f < 8 * 16384; f += 16384 * 3 / 7 + 1)
    reset_midframe(f);
}

/*
 * Records queued behind a long operation: the agent gives flow-control
 * window back only as records execute, so the sender stalls with at most
 * the stream window (64 MiB) accepted, instead of the agent buffering
 * everything that is sent.
 */
void test_lane_inbound_bounded(void **state)
{
  struct tc_conn c;
  struct tc_stream *sess, *lane;
  const uint64_t big = 512 * MiB;
  const unsigned nchunks = 96;
  uint64_t sid, p, q, t0, sent_at_stall = 0;
  uint8_t ms[20], *chunk = malloc(MiB);
  bool stalled = false;
  const uint8_t *pl;
  struct tr_hdr h;
  struct tc_result r;

  ta_connect_agent(&c);
  sess = ta_open_session(&c, 10, &sid);
  lane = ta_open_lane(&c, sid, 1, 200);
  p = ta_dmalloc(lane, big);
  q = ta_dmalloc(lane, MiB);
  for (int i = 0; i < LONG_ROUNDS; i++) {
    ta_memset_payload(ms, p, big, (uint32_t)i);
    tc_post(lane, TR_OP_MEMSET, ms, sizeof(ms));
  }
  for (unsigned i = 0; i < nchunks; i++) {
    memset(chunk, (int)i, MiB);
    ta_h2d(lane, q, chunk, MiB, false);
  }
  tc_send_record(lane, TR_OP_SYNCHRONIZE, TR_F_WANT_REPLY, 777, NULL, 0);

  t0 = tc_now_ns();
  while (!tc_next_record(lane, &h, &pl)) {
    assert_true(tc_now_ns() - t0 < 60000000000ull);
    tc_pump(&c, 5);
    if (!stalled && lane->req_len > lane->req_off &&
        nghttp2_session_get_stream_remote_window_size(c.ngh, lane->id) <
            (int32_t)(TR_HDR_SIZE + 16 + MiB)) {
      stalled = true;
      sent_at_stall = lane->sent;
    }
  }
  print_message("sender stalled after %.1f MiB queued behind the busy lane\n",
                (double)sent_at_stall / MiB);
  assert_true(stalled);
  /* The lane's own window, plus the small records before it. */
  assert_true(sent_at_stall <= (64 * MiB) + 64 * 1024);
  assert_int_equal(h.request_id, 777);
  assert_int_equal(h.status, 0);
  /* Every chunk ran, in order. */
  assert_int_equal(ta_d2h(lane, q, 16, &r), 0);
  assert_int_equal(r.data[0], (nchunks - 1) & 0xff);
  free(r.data);
  tc_end(sess);
  assert_true(tc_wait_ended(sess));
  tc_close(&c);
  free(chunk);
}

/* ---- host-to-device framing and order ----------------------------------- */

/*
 * The agent receives large DATA payloads straight into their destination
 * (agent_h2.c, recv_target), following the framing alongside nghttp2.
 * Host-to-device copies sent in frames of many sizes, with and without
 * padding, split at odd places, land intact, and the device bytes around
 * them stay untouched.
 */
void test_h2d_framing(void **state)
{
  static const struct tc_framing framings[] = {
      {0, 0}, {1u << 20, 0}, {1u << 20, 255}, {256u << 10, 7},
      {(64u << 10) + 3, 1}, {(16u << 10) + 1, 0}};
  const size_t total = 4 * MiB + 12345;
  struct tc_result r;
  uint8_t *buf = malloc(total);

  (void)state;
  for (size_t f = 0; f < sizeof(framings) / sizeof(framings[0]); f++) {
    struct tc_conn c;
    struct tc_stream *sess, *lane;
    uint64_t sid, p;
    size_t off = 0, piece = 777;

    tc_framing = framings[f];
    ta_connect_agent(&c);
    sess = ta_open_session(&c, 16, &sid);
    lane = ta_open_lane(&c, sid, 1, 200);
    p = ta_dmalloc(lane, total + 2 * 4096);
    for (size_t i = 0; i < total; i++)
      buf[i] = (uint8_t)(i * 7 + f);
    /* Pieces of growing, odd sizes up to 1 MiB: chunks of one record each. */
    while (off < total) {
      size_t n = total - off < piece ? total - off : piece;

      ta_h2d(lane, p + 4096 + off, buf + off, n, false);
      off += n;
      piece = piece * 3 < MiB ? piece * 3 + 1 : MiB;
    }
    assert_int_equal(tc_call(lane, TR_OP_SYNCHRONIZE, 0, NULL, 0, NULL), 0);
    assert_int_equal(ta_d2h(lane, p, total + 2 * 4096, &r), 0);
    assert_int_equal(r.len, total + 2 * 4096);
    for (size_t i = 0; i < 4096; i++)
      assert_int_equal(r.data[i] | r.data[4096 + total + i], 0);
    if (memcmp(r.data + 4096, buf, total))
      fail_msg("framing %zu: frame_max %u pad %u: bytes differ", f,
               framings[f].frame_max, framings[f].pad);
    free(r.data);
    tc_end(sess);
    assert_true(tc_wait_ended(sess));
    tc_close(&c);
  }
  tc_framing = (struct tc_framing){0, 0};
  free(buf);
}

/*
 * Large host-to-device copies are received straight into device memory
 * while earlier copies of the lane still run (agent_session.c,
 * direct_target); the order of the lane must not show.  Two rounds of
 * chunked copies over the same range (the second overlaps the first, so
 * it must wait its turn), copies queued behind a memset and a copy queued
 * behind a kernel: the memory ends as a lane executed in order would leave
 * it.
 */
void test_h2d_direct_order(void **state)
{
  const size_t chunk = MiB, total = 16 * MiB;
  struct tc_conn c;
  struct tc_stream *sess, *lane;
  struct tc_result r;
  uint64_t sid, p;
  uint8_t *buf = malloc(chunk), ms[20];

  ta_connect_agent(&c);
  sess = ta_open_session(&c, 16, &sid);
  lane = ta_open_lane(&c, sid, 1, 200);
  p = ta_dmalloc(lane, total);

  for (int round = 1; round <= 3; round++) {
    if (round == 3) {
      /* A memset first: the copies behind it must not overtake it. */
      ta_memset_payload(ms, p, total, 0x33);
      tc_post(lane, TR_OP_MEMSET, ms, sizeof(ms));
    }
    for (size_t off = 0; off < total; off += chunk) {
      memset(buf, round * 16 + (int)(off / chunk), chunk);
      ta_h2d(lane, p + off, buf, chunk, false);
    }
  }
  assert_int_equal(tc_call(lane, TR_OP_SYNCHRONIZE, 0, NULL, 0, NULL), 0);
  assert_int_equal(ta_d2h(lane, p, total, &r), 0);
  assert_int_equal(r.len, total);
  for (size_t off = 0; off < total; off += chunk) {
    uint8_t want = (uint8_t)(3 * 16 + off / chunk);

    for (size_t i = 0; i < chunk; i += 4093)
      assert_int_equal(r.data[off + i], want);
    assert_int_equal(r.data[off + chunk - 1], want);
  }
  free(r.data);
  tc_end(sess);
  assert_true(tc_wait_ended(sess));
  tc_close(&c);
  free(buf);
}

/* ---- events and lane marks ---------------------------------------------- */

/* An event record or wait record for lane. */
static void event_rec(struct tc_stream *lane, uint16_t op, uint64_t ev,
                      uint64_t gen)
{
  uint8_t p[16];

  tr_put_u64(p, ev);
  tr_put_u64(p + 8, gen);
  tc_post(lane, op, p, 16);
}

/*
 * EVENT_WAIT: a lane parks, without holding an execution thread, until
 * another lane's EVENT_RECORD reaches the generation; a generation already
 * reached does not wait; destroying the event lets its waiters go; a lane
 * parked when its session ends is freed with it, and the agent serves on.
 */
void test_event_wait(void **state)
{
  struct tc_conn c;
  struct tc_stream *sess, *a, *b;
  struct tc_result r;
  uint64_t sid, x, y;
  uint8_t d2d[24];
  const uint64_t ev = 0x4000000000000123ull, ev2 = ev + 1;

  (void)state;
  ta_connect_agent(&c);
  sess = ta_open_session(&c, 17, &sid);
  a = ta_open_lane(&c, sid, 1, 200);
  b = ta_open_lane(&c, sid, 2, 200);
  x = ta_dmalloc(a, 4096);
  y = ta_dmalloc(a, 4096);
  assert_int_equal(ta_dmemset(a, x, 4096, 0), 0);
  assert_int_equal(ta_dmemset(a, y, 4096, 0), 0);

  /* Lane a: wait for ev generation 1, then copy y into x.  Lane b, later:
     set y, then record ev 1.  x must be b's bytes. */
  event_rec(a, TR_OP_EVENT_WAIT, ev, 1);
  tr_put_u64(d2d, x);
  tr_put_u64(d2d + 8, y);
  tr_put_u64(d2d + 16, 4096);
  tc_post(a, TR_OP_MEMCPY_D2D, d2d, sizeof(d2d));
  for (int i = 0; i < 10; i++)
    tc_pump(&c, 10);
  usleep(200000);
  /* Meanwhile every execution thread is free: b runs at once. */
  assert_int_equal(ta_dmemset(b, y, 4096, 0x42), 0);
  event_rec(b, TR_OP_EVENT_RECORD, ev, 1);
  assert_int_equal(tc_call(b, TR_OP_SYNCHRONIZE, 0, NULL, 0, NULL), 0);
  assert_int_equal(tc_call(a, TR_OP_SYNCHRONIZE, 0, NULL, 0, NULL), 0);
  assert_int_equal(ta_d2h(a, x, 4096, &r), 0);
  assert_int_equal(r.data[0], 0x42);
  assert_int_equal(r.data[4095], 0x42);
  free(r.data);

  /* Reached already: no wait. */
  event_rec(a, TR_OP_EVENT_WAIT, ev, 1);
  assert_int_equal(tc_call(a, TR_OP_SYNCHRONIZE, 0, NULL, 0, NULL), 0);

  /* Waiting for a generation never recorded; the event's destruction (on
     another lane) lets the lane go on. */
  event_rec(a, TR_OP_EVENT_WAIT, ev2, 5);
  for (int i = 0; i < 10; i++) /* sent, and parked, before the destroy */
    tc_pump(&c, 10);
  usleep(100000);
  {
    uint8_t h[8];

    tr_put_u64(h, ev2);
    assert_int_equal(tc_call(b, TR_OP_EVENT_DESTROY, 0, h, 8, NULL), 0);
  }
  assert_int_equal(tc_call(a, TR_OP_SYNCHRONIZE, 0, NULL, 0, NULL), 0);

  /* Parked when the session ends: freed with it. */
  event_rec(a, TR_OP_EVENT_WAIT, ev2 + 1, 1);
  for (int i = 0; i < 10; i++)
    tc_pump(&c, 10);
  usleep(100000);
  tc_end(sess);
  assert_true(tc_wait_ended(sess));
  tc_close(&c);

  /* And the agent serves on. */
  ta_connect_agent(&c);
  sess = ta_open_session(&c, 18, &sid);
  a = ta_open_lane(&c, sid, 1, 200);
  assert_int_equal(tc_call(a, TR_OP_SYNCHRONIZE, 0, NULL, 0, NULL), 0);
  tc_end(sess);
  assert_true(tc_wait_ended(sess));
  tc_close(&c);
}

/*
 * Lane marks: a lane waits for another lane's record by request id, even
 * before that lane is open; a lane never waits for its own mark; a mark
 * is reached for good when its lane ends; marks answer EVENT_QUERY but
 * refuse EVENT_RECORD and EVENT_DESTROY.
 */
void test_lane_mark(void **state)
{
  struct tc_conn c;
  struct tc_stream *sess, *a, *b, *l3;
  struct tc_result r;
  uint64_t sid, x, y, rid1, rid2;
  uint8_t d2d[24], ms[20], q[24];

  (void)state;
  ta_connect_agent(&c);
  sess = ta_open_session(&c, 19, &sid);
  a = ta_open_lane(&c, sid, 1, 200);
  b = ta_open_lane(&c, sid, 2, 200);
  x = ta_dmalloc(a, 4096);
  y = ta_dmalloc(a, 4096);
  assert_int_equal(ta_dmemset(a, x, 4096, 0), 0);
  assert_int_equal(ta_dmemset(a, y, 4096, 0), 0);

  /* Lane a waits for lane 3's second record (ids count from 1), then
     copies y into x; lane 3 does not exist yet. */
  event_rec(a, TR_OP_EVENT_WAIT, tr_lane_mark(3), 2);
  tr_put_u64(d2d, x);
  tr_put_u64(d2d + 8, y);
  tr_put_u64(d2d + 16, 4096);
  tc_post(a, TR_OP_MEMCPY_D2D, d2d, sizeof(d2d));
  for (int i = 0; i < 10; i++)
    tc_pump(&c, 10);
  usleep(200000);
  l3 = ta_open_lane(&c, sid, 3, 200);
  ta_memset_payload(ms, y, 4096, 0x11);
  rid1 = tc_post(l3, TR_OP_MEMSET, ms, sizeof(ms));
  ta_memset_payload(ms, y, 4096, 0x42);
  rid2 = tc_post(l3, TR_OP_MEMSET, ms, sizeof(ms));
  assert_int_equal(rid1, 1);
  assert_int_equal(rid2, 2);
  assert_int_equal(tc_call(a, TR_OP_SYNCHRONIZE, 0, NULL, 0, NULL), 0);
  assert_int_equal(ta_d2h(a, x, 4096, &r), 0);
  assert_int_equal(r.data[0], 0x42);
  assert_int_equal(r.data[4095], 0x42);
  free(r.data);

  /* Queries: reached up to 2, not beyond. */
  tr_put_u64(q, tr_lane_mark(3));
  tr_put_u64(q + 8, 2);
  assert_int_equal(tc_call(b, TR_OP_EVENT_QUERY, 0, q, 16, NULL), 0);
  tr_put_u64(q + 8, 99);
  assert_int_equal(tc_call(b, TR_OP_EVENT_QUERY, 0, q, 16, NULL),
                   600 /* cudaErrorNotReady */);
  /* A mark moves only with its lane. */
  tr_put_u64(q + 8, 100);
  assert_int_equal(tc_call(b, TR_OP_EVENT_RECORD, 0, q, 16, NULL),
                   TR_ST_BAD_HANDLE);
  assert_int_equal(tc_call(b, TR_OP_EVENT_DESTROY, 0, q, 8, NULL),
                   TR_ST_BAD_HANDLE);

  /* EVENT_RECORD's optional flags: MARK is one, others are malformed. */
  tr_put_u64(q, 0x77);
  tr_put_u64(q + 8, 1);
  tr_put_u64(q + 16, TR_EVENT_F_MARK);
  assert_int_equal(tc_call(b, TR_OP_EVENT_RECORD, 0, q, 24, NULL), 0);
  tr_put_u64(q + 8, 1);
  assert_int_equal(tc_call(b, TR_OP_EVENT_QUERY, 0, q, 16, NULL), 0);
  tr_put_u64(q + 8, 2);
  tr_put_u64(q + 16, 2);
  assert_int_equal(tc_call(b, TR_OP_EVENT_RECORD, 0, q, 24, NULL),
                   TR_ST_BAD_RECORD);
  tr_put_u64(q, tr_lane_mark(3));

  /* Its own mark never holds a lane back. */
  event_rec(a, TR_OP_EVENT_WAIT, tr_lane_mark(1), 1000);
  assert_int_equal(tc_call(a, TR_OP_SYNCHRONIZE, 0, NULL, 0, NULL), 0);

  /* Waiting beyond what lane 3 will ever run: its end lets a go on. */
  event_rec(a, TR_OP_EVENT_WAIT, tr_lane_mark(3), 1000);
  for (int i = 0; i < 10; i++)
    tc_pump(&c, 10);
  usleep(100000);
  tc_end(l3);
  assert_int_equal(tc_call(a, TR_OP_SYNCHRONIZE, 0, NULL, 0, NULL), 0);
  tr_put_u64(q + 8, 1000);
  assert_int_equal(tc_call(b, TR_OP_EVENT_QUERY, 0, q, 16, NULL), 0);

  tc_end(sess);
  assert_true(tc_wait_ended(sess));
  tc_close(&c);
}

/* ---- moving a lane ------------------------------------------------------ */

/* POST /v1/lane taking lane `lane` over (tremote-lane-move: 1). */
static struct tc_stream *move_lane(struct tc_conn *c, uint64_t sid,
                                   unsigned lane, int want_status)
{
  return ta_open_lane_with(c, sid, lane, "tremote-lane-move", "1", want_status);
}

/*
 * A lane's stream moves to another connection, as the broker moves it
 * before a lane's first bulk record (PROTOCOL.md §3): records, then a NOP
 * fence whose reply carries the lane's deferred error, then the move.  The
 * lane keeps what it had (what ran, its request ids and mark), the old
 * stream's response ends, and both connections go on serving, the old
 * one past what the moved lane had sent on it.  A move needs an open lane
 * and no record half received on it; without the header a second stream
 * for the lane is refused.
 */
void test_lane_move(void **state)
{
  struct tc_conn c1, c2;
  struct tc_stream *sess, *old, *nw, *other, *half;
  struct tc_result r;
  uint64_t sid, x;
  uint8_t ms[20], q[16], buf[64] = {0}, part[10] = {0};
  static uint8_t big[1 << 20];

  (void)state;
  ta_connect_agent(&c1);
  ta_connect_agent(&c2);
  sess = ta_open_session(&c1, 23, &sid);
  old = ta_open_lane(&c2, sid, 1, 200); /* the broker's express connection */
  other = ta_open_lane(&c2, sid, 2, 200);
  x = ta_dmalloc(old, 8 << 20);                       /* id 1 */
  for (int i = 0; i < 8; i++) { /* 8 MiB through the old connection */
    memset(big, i, sizeof(big));
    ta_h2d(old, x + ((uint64_t)i << 20), big, sizeof(big), false); /* 2-9 */
  }
  ta_memset_payload(ms, x, 1 << 20, 0x5a);
  tc_post(old, TR_OP_MEMSET, ms, sizeof(ms));         /* id 10 */
  ta_h2d(old, ta_window(1) + 0x7770000, buf, sizeof(buf), false); /* 11: fails */
  /* The fence (id 11 again): everything before it ran and was answered. */
  old->next_id = 11;
  assert_int_equal(tc_call(old, TR_OP_NOP, 0, NULL, 0, NULL),
                   CU_INVALID_VALUE);

  ta_open_lane(&c1, sid, 1, 409);  /* already open, and no move asked */
  move_lane(&c1, sid, 9, 404);     /* no such lane to move */
  nw = move_lane(&c1, sid, 1, 200);
  assert_true(tc_wait_ended(old)); /* its response ends: nothing more */
  nw->next_id = 12;                /* the lane's ids go on */
  assert_int_equal(ta_d2h(nw, x + (7u << 20), 1 << 20, &r), 0);  /* id 12 */
  assert_int_equal(r.data[0], 7);
  free(r.data);
  assert_int_equal(ta_d2h(nw, x, 1 << 20, &r), 0);                 /* id 13 */
  assert_int_equal(r.len, 1u << 20);
  assert_int_equal(r.data[0], 0x5a);
  assert_int_equal(r.data[(1 << 20) - 1], 0x5a);
  free(r.data);
  /* Its mark counts on: another lane sees record 13 done. */
  tr_put_u64(q, tr_lane_mark(1));
  tr_put_u64(q + 8, 13);
  assert_int_equal(tc_call(other, TR_OP_EVENT_QUERY, 0, q, 16, NULL), 0);
  /* The old connection serves on, 8 MiB more through it. */
  for (int i = 0; i < 8; i++)
    assert_int_equal(ta_h2d(other, x + ((uint64_t)i << 20), big,
                            sizeof(big), true), 0);

  /* Half a record header on a lane: it cannot move now.  (The NOP on
     another lane of the same connection comes after those bytes.) */
  half = ta_open_lane(&c2, sid, 3, 200);
  tc_send(half, part, sizeof(part));
  assert_int_equal(tc_call(other, TR_OP_NOP, 0, NULL, 0, NULL), 0);
  move_lane(&c1, sid, 3, 409);

  tc_end(nw);
  assert_true(tc_wait_ended(nw));
  tc_end(sess);
  assert_true(tc_wait_ended(sess));
  tc_close(&c2);
  tc_close(&c1);
}
