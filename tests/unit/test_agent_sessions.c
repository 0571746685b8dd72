/*
 * test_agent_sessions.c: the agent's front door and its sessions.  The
 * secret and the hello; the routes and their refusals; a session's memory
 * (copies, their errors, isolation from other sessions, freed when the
 * session ends however it ends) and its --quota; a connection that stays
 * responsive while a lane is busy, a silent peer dropped after
 * --idle-timeout, and --exit-idle.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_agent.h"

/* ---- authentication and hello ------------------------------------------- */

/* POST /v1/hello with min..max; returns the reply record's stream. */
static struct tc_stream *hello(struct tc_conn *c, uint16_t min, uint16_t max,
                               uint64_t caps, struct tr_hdr *h,
                               const uint8_t **payload)
{
  struct tr_hello hl = {min, max, TR_ROLE_BROKER, caps, 42, 0};
  uint8_t p[TR_HELLO_SIZE];
  struct tc_stream *st = tc_request(c, "/v1/hello", ta_secret, NULL);

  assert_non_null(st);
  tr_hello_pack(&hl, p);
  tc_send_record(st, TR_OP_HELLO, TR_F_WANT_REPLY, 7, p, sizeof(p));
  tc_end(st);
  assert_true(tc_wait_ended(st));
  assert_int_equal(st->status, 200);
  assert_true(tc_next_record(st, h, payload));
  assert_int_equal(h->opcode, TR_OP_HELLO);
  assert_int_equal(h->request_id, 7);
  assert_true(h->flags & TR_F_REPLY);
  return st;
}

static void check_rejected(const char *sec)
{
  struct tc_conn c;
  struct tc_stream *st;

  ta_connect_agent(&c);
  st = tc_request(&c, "/v1/hello", sec, NULL);
  assert_non_null(st);
  tc_end(st);
  assert_true(tc_wait_status(st));
  assert_int_equal(st->status, 401);
  /* The 401 is followed by GOAWAY and the socket closing. */
  assert_true(tc_wait_eof(&c));
  assert_true(c.goaway);
  assert_true(st->ended);
  assert_true(st->body_len > 0);
  tc_close(&c);
}

void test_auth_rejected(void **state)
{
  check_rejected("not-the-secret");
  check_rejected(NULL);
  /* A prefix of the right secret is still wrong. */
  check_rejected("5ec1e7c0ffee");
}

void test_hello(void **state)
{
  struct tc_conn c;
  const uint8_t *p;
  struct tr_hello hl;
  struct tr_devinfo d;
  struct tr_hdr h;
  size_t used;
  int32_t v;

  ta_connect_agent(&c);
  hello(&c, 1, 7, ~0ull, &h, &p);
  assert_int_equal(h.status, 0);
  assert_int_equal(tr_hello_unpack(p, h.payload_len, &hl), 0);
  assert_int_equal(hl.min_version, TR_PROTO_VERSION_MAX);
  assert_int_equal(hl.max_version, TR_PROTO_VERSION_MAX);
  assert_int_equal(hl.role, TR_ROLE_AGENT);
  /* The emulator runs kernels: TR_CAP_EXEC; lanes can move; replies may
     carry TR_F_DEFERRED. */
  assert_int_equal(hl.caps, TR_CAP_MODULE_CACHE | TR_CAP_EXEC |
                                TR_CAP_LANE_MOVE | TR_CAP_DEFERRED);
  assert_int_equal(tr_devinfo_unpack(p + TR_HELLO_SIZE, hl.extra_len, &d,
                                     &used), 0);
  assert_int_equal(used, hl.extra_len);
  assert_string_equal(d.name, "tremote emulated device");
  assert_int_equal(d.total_mem, AGENT_MEM);
  assert_int_equal(d.va_base, 0);
  assert_int_equal(d.va_size, 0);
  assert_int_equal(d.caps, TR_CAP_EXEC);
  assert_true(d.nattr >= 30);
  assert_int_equal(tr_devinfo_attr(&d, 75, &v), 0); /* major */
  assert_int_equal(v, 8);
  assert_int_equal(tr_devinfo_attr(&d, 76, &v), 0); /* minor */
  assert_int_equal(v, 0);
  assert_int_equal(tr_devinfo_attr(&d, 10, &v), 0); /* warp size */
  assert_int_equal(v, 32);
  assert_int_equal(tr_devinfo_attr(&d, 1, &v), 0); /* threads per block */
  assert_int_equal(v, 1024);

  /* Caps are the intersection: offering none agrees on none. */
  hello(&c, TR_PROTO_VERSION_MIN, TR_PROTO_VERSION_MAX, 0, &h, &p);
  assert_int_equal(tr_hello_unpack(p, h.payload_len, &hl), 0);
  assert_int_equal(hl.caps, 0);
  tc_close(&c);
}

void test_hello_version_mismatch(void **state)
{
  struct tc_conn c;
  const uint8_t *p;
  struct tr_hdr h;
  char text[256];

  ta_connect_agent(&c);
  hello(&c, TR_PROTO_VERSION_MAX + 1, TR_PROTO_VERSION_MAX + 2, 0, &h, &p);
  assert_int_equal(h.status, TR_ST_VERSION);
  assert_true(h.payload_len > 0 && h.payload_len < sizeof(text));
  memcpy(text, p, h.payload_len);
  text[h.payload_len] = 0;
  assert_non_null(strstr(text, "2..2"));
  assert_non_null(strstr(text, "3..4"));
  assert_true(tc_wait_eof(&c)); /* and the connection is closed */
  tc_close(&c);
}

void test_routes(void **state)
{
  struct tc_conn c;
  struct tc_stream *st;
  uint64_t sid;

  ta_connect_agent(&c);
  st = tc_request(&c, "/v1/nothing", ta_secret, NULL);
  tc_end(st);
  assert_true(tc_wait_status(st));
  assert_int_equal(st->status, 404);
  /* A lane of a session that does not exist. */
  ta_open_lane(&c, 0x1234567812345678ull, 1, 404);
  /* A malformed session header. */
  st = tc_request(&c, "/v1/session", ta_secret,
                  (const char *const[]){"tremote-session", "xyz", "tremote-va",
                                        "1000+1000", NULL});
  assert_true(tc_wait_status(st));
  assert_int_equal(st->status, 400);

  /* A window that overlaps another session's different window: 409. */
  st = ta_open_session(&c, 20, &sid);
  {
    char s[17], va[64];
    struct tc_stream *st2;

    snprintf(s, sizeof(s), "%016llx", (unsigned long long)sid + 1000);
    snprintf(va, sizeof(va), "%llx+%llx",
             (unsigned long long)(ta_window(20) + WIN_SIZE / 2),
             (unsigned long long)WIN_SIZE);
    st2 = tc_request(&c, "/v1/session", ta_secret,
                     (const char *const[]){"tremote-session", s, "tremote-va",
                                           va, NULL});
    assert_true(tc_wait_status(st2));
    assert_int_equal(st2->status, 409);
    /* The same id twice: 409 as well. */
    snprintf(s, sizeof(s), "%016llx", (unsigned long long)sid);
    st2 = tc_request(&c, "/v1/session", ta_secret,
                     (const char *const[]){"tremote-session", s, "tremote-va",
                                           "1000+1000", NULL});
    assert_true(tc_wait_status(st2));
    assert_int_equal(st2->status, 409);
  }
  tc_end(st);
  assert_true(tc_wait_ended(st));
  tc_close(&c);
}

/* ---- memory ------------------------------------------------------------- */

void test_memory_roundtrip(void **state)
{
  struct tc_conn c;
  struct tc_stream *sess, *lane;
  struct tc_result r;
  uint64_t sid, a, b, zero;
  uint8_t *pat = malloc(4 * MiB);
  size_t i;

  for (i = 0; i < 4 * MiB; i++)
    pat[i] = (uint8_t)(i * 7 + (i >> 12));
  ta_connect_agent(&c);
  sess = ta_open_session(&c, 0, &sid);
  lane = ta_open_lane(&c, sid, 1, 200);

  assert_int_equal(tc_call(lane, TR_OP_NOP, 0, NULL, 0, NULL), 0);
  a = ta_dmalloc(lane, 4 * MiB);
  b = ta_dmalloc(lane, 4 * MiB);
  assert_true(a >= ta_window(0) && a + 4 * MiB <= ta_window(0) + WIN_SIZE);
  assert_int_equal(a % 256, 0);
  assert_int_equal(b % 256, 0);
  /* cudaMalloc(&p, 0) succeeds with p == NULL. */
  zero = ta_dmalloc(lane, 0);
  assert_int_equal(zero, 0);

  /* Four 1 MiB chunks, only the last waits for a reply. */
  for (i = 0; i < 4; i++)
    assert_int_equal(ta_h2d(lane, a + i * MiB, pat + i * MiB, MiB, i == 3), 0);
  /* MEMSET a hole, then copy a -> b, then read b back in one request. */
  assert_int_equal(ta_dmemset(lane, a + 100, 1000, 0x1ab), 0);
  memset(pat + 100, 0xab, 1000);
  assert_int_equal(ta_d2d(lane, b, a, 4 * MiB), 0);
  assert_int_equal(ta_d2h(lane, b, 4 * MiB, &r), 0);
  /* 4 MiB in records of <= 1 MiB: MORE on all but the last. */
  assert_int_equal(r.nrec, 4);
  assert_int_equal(r.nmore, 3);
  assert_int_equal(r.len, 4 * MiB);
  assert_memory_equal(r.data, pat, 4 * MiB);
  free(r.data);
  /* An odd length and offset. */
  assert_int_equal(ta_d2h(lane, b + 12345, MiB + 3, &r), 0);
  assert_int_equal(r.nmore, 1);
  assert_int_equal(r.len, MiB + 3);
  assert_memory_equal(r.data, pat + 12345, MiB + 3);
  free(r.data);

  assert_int_equal(ta_dfree(lane, a), 0);
  assert_int_equal(ta_dfree(lane, b), 0);
  assert_int_equal(ta_dfree(lane, 0), 0); /* cudaFree(NULL) */
  tc_end(lane);
  assert_true(tc_wait_ended(lane));
  tc_end(sess);
  assert_true(tc_wait_ended(sess));
  tc_close(&c);
  free(pat);
}

void test_memory_errors(void **state)
{
  struct tc_conn c;
  struct tc_stream *sess, *lane;
  struct tc_result r;
  uint64_t sid, a, fr, total;
  uint8_t buf[64] = {0}, p[24];

  ta_connect_agent(&c);
  sess = ta_open_session(&c, 1, &sid);
  lane = ta_open_lane(&c, sid, 1, 200);
  a = ta_dmalloc(lane, 1000);

  /* Frees: a random pointer, an interior pointer, twice. */
  assert_int_equal(ta_dfree(lane, ta_window(1) + 0x1230000), CU_INVALID_VALUE);
  assert_int_equal(ta_dfree(lane, a + 8), CU_INVALID_VALUE);
  assert_int_equal(ta_dfree(lane, 0x1000), CU_INVALID_VALUE);
  /* Copies that leave the allocation (it is 1000 bytes, not a page). */
  assert_int_equal(ta_h2d(lane, a + 990, buf, 11, true), CU_INVALID_VALUE);
  assert_int_equal(ta_h2d(lane, a + 990, buf, 10, true), 0);
  assert_int_equal(ta_d2h(lane, a, 1001, &r), CU_INVALID_VALUE);
  assert_int_equal(r.nrec, 1); /* no data before the error */
  assert_int_equal(r.len, 0);
  free(r.data);
  assert_int_equal(ta_d2h(lane, a - 1, 10, NULL), CU_INVALID_VALUE);
  assert_int_equal(ta_dmemset(lane, a, 1001, 0), CU_INVALID_VALUE);
  assert_int_equal(ta_d2d(lane, a, a + 500, 501), CU_INVALID_VALUE);
  assert_int_equal(ta_d2d(lane, a, a + 500, 500), 0);
  assert_int_equal(ta_d2h(lane, UINT64_MAX - 5, 10, NULL), CU_INVALID_VALUE);

  /* A failing record without WANT_REPLY: its error waits for the next
     successful final reply, then is cleared. */
  ta_h2d(lane, ta_window(1) + 0x7770000, buf, sizeof(buf), false);
  ta_h2d(lane, a + 5000, buf, sizeof(buf), false); /* a second one is not kept */
  assert_int_equal(tc_call(lane, TR_OP_SYNCHRONIZE, 0, NULL, 0, NULL),
                   CU_INVALID_VALUE);
  assert_int_equal(tc_call(lane, TR_OP_SYNCHRONIZE, 0, NULL, 0, NULL), 0);
  /* A failing call keeps the deferred error for the next success. */
  ta_h2d(lane, 0x42, buf, 8, false);
  assert_int_equal(ta_dfree(lane, 0x42), CU_INVALID_VALUE);
  assert_int_equal(tc_call(lane, TR_OP_NOP, 0, NULL, 0, NULL),
                   CU_INVALID_VALUE);
  assert_int_equal(tc_call(lane, TR_OP_NOP, 0, NULL, 0, NULL), 0);

  /* Out of memory. */
  ta_mem_info(lane, &fr, &total);
  assert_int_equal(total, AGENT_MEM);
  tr_put_u64(p, 4ull << 30);
  assert_int_equal(tc_call(lane, TR_OP_MALLOC, 0, p, 8, NULL),
                   CU_MEMORY_ALLOCATION);
  tr_put_u64(p, UINT64_MAX);
  assert_int_equal(tc_call(lane, TR_OP_MALLOC, 0, p, 8, NULL),
                   CU_MEMORY_ALLOCATION);

  /* Malformed payloads and opcodes. */
  assert_int_equal(tc_call(lane, TR_OP_MALLOC, 0, p, 7, NULL),
                   TR_ST_BAD_RECORD);
  assert_int_equal(tc_call(lane, TR_OP_MEMSET, 0, p, 24, NULL),
                   TR_ST_BAD_RECORD);
  {
    /* H2D whose len field disagrees with the bytes sent. */
    size_t plen;
    uint8_t *hp = ta_h2d_payload(a, buf, 16, &plen);

    tr_put_u64(hp + 8, 17);
    assert_int_equal(tc_call(lane, TR_OP_MEMCPY_H2D, 0, hp, plen, NULL),
                     TR_ST_BAD_RECORD);
    free(hp);
  }
  assert_int_equal(tc_call(lane, TR_OP_STATS, 0, NULL, 0, NULL),
                   TR_ST_BAD_OPCODE);
  assert_int_equal(tc_call(lane, TR_OP_HELLO, 0, NULL, 0, NULL),
                   TR_ST_BAD_OPCODE);
  assert_int_equal(tc_call(lane, 999, 0, buf, 40, NULL), TR_ST_BAD_OPCODE);
  assert_int_equal(tc_call(lane, 7, 0, NULL, 0, NULL), TR_ST_BAD_OPCODE);
  /* ... and the lane is still in step after them. */
  assert_int_equal(tc_call(lane, TR_OP_NOP, 0, NULL, 0, NULL), 0);

  assert_int_equal(ta_dfree(lane, a), 0);
  assert_int_equal(ta_dfree(lane, a), CU_INVALID_VALUE); /* double free */
  tc_end(sess);
  assert_true(tc_wait_ended(sess));
  tc_close(&c);
}

/* Two sessions cannot touch each other's memory. */
/*
 * A reply that reports an earlier record's error carries TR_F_DEFERRED
 * and its own call's payload (a download's bytes), but only on a
 * connection whose hello agreed TR_CAP_DEFERRED: an older broker would
 * refuse the unknown flag.
 */
void test_deferred_flag(void **state)
{
  static const uint8_t bytes[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  struct tc_conn c;
  struct tc_stream *sess, *lane;
  struct tc_result r;
  const uint8_t *p;
  struct tr_hdr h;
  uint64_t sid, a;

  (void)state;
  for (int agreed = 0; agreed < 2; agreed++) {
    ta_connect_agent(&c);
    hello(&c, 1, TR_PROTO_VERSION_MAX,
          agreed ? TR_CAP_DEFERRED : TR_CAP_MODULE_CACHE, &h, &p);
    assert_int_equal(h.status, 0);
    sess = ta_open_session(&c, 24 + agreed, &sid);
    lane = ta_open_lane(&c, sid, 1, 200);
    a = ta_dmalloc(lane, 4096);
    assert_int_equal(ta_h2d(lane, a, bytes, sizeof(bytes), true), 0);
    ta_h2d(lane, 0x42, bytes, 8, false); /* fails, nobody waits */
    assert_int_equal(ta_d2h(lane, a, sizeof(bytes), &r), CU_INVALID_VALUE);
    assert_int_equal(r.flags & TR_F_DEFERRED, agreed ? TR_F_DEFERRED : 0);
    if (agreed) {
      /* The copy ran: its bytes are the reply's payload. */
      assert_int_equal(r.len, sizeof(bytes));
      assert_memory_equal(r.data, bytes, sizeof(bytes));
    }
    free(r.data);
    /* Reported once: the next reply is clean. */
    assert_int_equal(tc_call(lane, TR_OP_NOP, 0, NULL, 0, &r), 0);
    assert_int_equal(r.flags & TR_F_DEFERRED, 0);
    free(r.data);
    (void)sess;
    tc_close(&c);
  }
}

void test_sessions_isolated(void **state)
{
  struct tc_conn c;
  struct tc_stream *sa, *sb, *la, *lb;
  struct tc_result r;
  uint64_t ida, idb, pa;
  uint8_t buf[16] = {1, 2, 3};

  ta_connect_agent(&c);
  /* The same window, as all sessions of one broker machine share it. */
  sa = ta_open_session(&c, 2, &ida);
  sb = ta_open_session(&c, 2, &idb);
  la = ta_open_lane(&c, ida, 1, 200);
  lb = ta_open_lane(&c, idb, 1, 200);
  pa = ta_dmalloc(la, 4096);
  assert_int_equal(ta_h2d(la, pa, buf, sizeof(buf), true), 0);

  assert_int_equal(ta_dfree(lb, pa), CU_INVALID_VALUE);
  assert_int_equal(ta_d2h(lb, pa, 16, NULL), CU_INVALID_VALUE);
  assert_int_equal(ta_h2d(lb, pa, buf, 16, true), CU_INVALID_VALUE);
  assert_int_equal(ta_dmemset(lb, pa, 16, 0), CU_INVALID_VALUE);
  {
    uint64_t pb = ta_dmalloc(lb, 4096);

    assert_int_equal(ta_d2d(lb, pb, pa, 16), CU_INVALID_VALUE);
    assert_int_equal(ta_d2d(lb, pa, pb, 16), CU_INVALID_VALUE);
    assert_int_equal(ta_dfree(lb, pb), 0);
  }
  /* A's memory is intact and still A's. */
  assert_int_equal(ta_d2h(la, pa, 16, &r), 0);
  assert_memory_equal(r.data, buf, 16);
  free(r.data);
  assert_int_equal(ta_dfree(la, pa), 0);

  /* Two lanes of one session share its memory. */
  {
    struct tc_stream *la2 = ta_open_lane(&c, ida, 2, 200);
    uint64_t p = ta_dmalloc(la, 64);

    assert_int_equal(ta_h2d(la2, p, buf, 16, true), 0);
    assert_int_equal(ta_d2h(la, p, 16, &r), 0);
    assert_memory_equal(r.data, buf, 16);
    free(r.data);
    /* A second lane with an id already open is refused. */
    ta_open_lane(&c, ida, 2, 409);
    /* Stream priorities: 0 to -5; anything else is refused. */
    ta_open_lane_prio(&c, ida, 3, "1", 400);
    ta_open_lane_prio(&c, ida, 3, "-6", 400);
    ta_open_lane_prio(&c, ida, 3, "-1x", 400);
    {
      struct tc_stream *la3 = ta_open_lane_prio(&c, ida, 3, "-5", 200);

      assert_int_equal(ta_d2h(la3, p, 16, &r), 0);
      assert_memory_equal(r.data, buf, 16);
      free(r.data);
    }
  }
  tc_end(sa);
  tc_end(sb);
  assert_true(tc_wait_ended(sa));
  assert_true(tc_wait_ended(sb));
  tc_close(&c);
}

/* Ending the session stream frees its memory before the response ends. */
void test_session_close_frees(void **state)
{
  struct tc_conn c;
  struct tc_stream *sx, *sy, *lx, *ly;
  uint64_t idx, idy, fr0, fr1, fr2, total;

  ta_connect_agent(&c);
  sx = ta_open_session(&c, 3, &idx);
  lx = ta_open_lane(&c, idx, 1, 200);
  ta_mem_info(lx, &fr0, &total);

  sy = ta_open_session(&c, 4, &idy);
  ly = ta_open_lane(&c, idy, 1, 200);
  ta_dmalloc(ly, 256 * MiB);
  ta_dmalloc(ly, 1000);
  ta_mem_info(lx, &fr1, &total);
  assert_true(fr1 <= fr0 - 256 * MiB);

  /* End the session: its response ends once the memory is gone, and its
     lane is reset. */
  tc_end(sy);
  assert_true(tc_wait_ended(sy));
  ta_mem_info(lx, &fr2, &total);
  assert_int_equal(fr2, fr0);
  assert_true(tc_wait_closed(ly));
  assert_int_not_equal(ly->rst_code, 0);
  /* The session is gone: no new lanes. */
  ta_open_lane(&c, idy, 2, 404);

  /* A reset session stream frees as well. */
  sy = ta_open_session(&c, 4, &idy);
  ly = ta_open_lane(&c, idy, 1, 200);
  ta_dmalloc(ly, 64 * MiB);
  tc_reset(sy);
  for (int i = 0; i < 200; i++) {
    ta_mem_info(lx, &fr2, &total);
    if (fr2 == fr0)
      break;
    usleep(10000);
  }
  assert_int_equal(fr2, fr0);

  /* And so does a dropped connection. */
  {
    struct tc_conn c2;
    struct tc_stream *lz;
    uint64_t idz;

    ta_connect_agent(&c2);
    ta_open_session(&c2, 4, &idz);
    lz = ta_open_lane(&c2, idz, 1, 200);
    ta_dmalloc(lz, 32 * MiB);
    tc_close(&c2);
    for (int i = 0; i < 200; i++) {
      ta_mem_info(lx, &fr2, &total);
      if (fr2 == fr0)
        break;
      usleep(10000);
    }
    assert_int_equal(fr2, fr0);
  }
  tc_end(sx);
  assert_true(tc_wait_ended(sx));
  tc_close(&c);
}

/* A lane busy with a long operation does not delay PING or other lanes. */
void test_ping_during_long_op(void **state)
{
  struct tc_conn c;
  struct tc_stream *sess, *lane, *other;
  const size_t big = 512 * MiB;
  const int rounds = LONG_ROUNDS;
  uint64_t sid, p, t0, t_ack, t_other, t_done;
  uint8_t ms[20];
  const uint8_t *pl;
  struct tr_hdr h;
  unsigned acks;

  ta_connect_agent(&c);
  sess = ta_open_session(&c, 5, &sid);
  lane = ta_open_lane(&c, sid, 1, 200);
  other = ta_open_lane(&c, sid, 2, 200);
  p = ta_dmalloc(lane, big);

  /* Several 512 MiB memsets, then a SYNCHRONIZE that waits for them. */
  for (int i = 0; i < rounds; i++) {
    ta_memset_payload(ms, p, big, (uint32_t)i);
    tc_post(lane, TR_OP_MEMSET, ms, sizeof(ms));
  }
  tc_send_record(lane, TR_OP_SYNCHRONIZE, TR_F_WANT_REPLY, 999, NULL, 0);
  tc_pump(&c, 0);
  usleep(20000); /* let an execution thread start on them */

  acks = c.ping_acks;
  t0 = tc_now_ns();
  tc_ping(&c);
  while (c.ping_acks == acks && tc_now_ns() - t0 < 5000000000ull)
    tc_pump(&c, 10);
  assert_true(c.ping_acks > acks);
  t_ack = c.ping_ack_ns - t0;
  /* Another lane of the same session is served meanwhile. */
  assert_int_equal(tc_call(other, TR_OP_NOP, 0, NULL, 0, NULL), 0);
  t_other = tc_now_ns() - t0;
  /* The long operation was still running at the ack. */
  assert_false(tc_next_record(lane, &h, &pl));
  while (!tc_next_record(lane, &h, &pl) && tc_now_ns() - t0 < 30000000000ull)
    tc_pump(&c, 100);
  t_done = tc_now_ns() - t0;
  print_message("PING ack %.1f ms, NOP on another lane %.1f ms, "
                "%d x 512 MiB memset done after %.1f ms\n",
                t_ack / 1e6, t_other / 1e6, rounds, t_done / 1e6);
  assert_int_equal(h.request_id, 999);
  assert_int_equal(h.status, 0);
  assert_true(t_ack < 100000000ull);
  assert_true(t_other < 100000000ull);
  assert_true(t_done > t_other);
  /* The memory holds the last value. */
  {
    struct tc_result r;

    assert_int_equal(ta_d2h(lane, p + big - 16, 16, &r), 0);
    for (int i = 0; i < 16; i++)
      assert_int_equal(r.data[i], rounds - 1);
    free(r.data);
  }
  tc_end(sess);
  assert_true(tc_wait_ended(sess));
  tc_close(&c);
}

/* ---- quota, idle peers, exiting when idle ------------------------------- */

/* MALLOC beyond the session's --quota (64M here) fails with
   cudaErrorMemoryAllocation; FREE gives the room back; another session
   has a quota of its own. */
void test_quota(void **state)
{
  struct tc_conn c;
  struct tc_stream *s1, *s2, *a, *b;
  struct tc_result r;
  uint64_t sid1, sid2, p1, p2, p3;
  uint8_t arg[8];

  (void)state;
  ta_connect_agent(&c);
  s1 = ta_open_session(&c, 20, &sid1);
  s2 = ta_open_session(&c, 21, &sid2);
  a = ta_open_lane(&c, sid1, 1, 200);
  b = ta_open_lane(&c, sid2, 1, 200);
  p1 = ta_dmalloc(a, 40ull << 20);
  tr_put_u64(arg, 40ull << 20);
  assert_int_equal(tc_call(a, TR_OP_MALLOC, 0, arg, 8, NULL),
                   2 /* cudaErrorMemoryAllocation */);
  p2 = ta_dmalloc(a, 20ull << 20); /* 60M in all: still inside */
  tr_put_u64(arg, 8ull << 20);
  assert_int_equal(tc_call(a, TR_OP_MALLOC, 0, arg, 8, NULL), 2);
  p3 = ta_dmalloc(b, 60ull << 20); /* the other session's own 64M */
  tr_put_u64(arg, p1);
  assert_int_equal(tc_call(a, TR_OP_FREE, 0, arg, 8, NULL), 0);
  p1 = ta_dmalloc(a, 40ull << 20); /* room again */
  assert_true(p1 && p2 && p3);
  tr_put_u64(arg, 1ull << 40); /* far beyond: refused, not attempted */
  assert_int_equal(tc_call(a, TR_OP_MALLOC, 0, arg, 8, &r), 2);
  free(r.data);
  tc_end(s1);
  tc_end(s2);
  assert_true(tc_wait_ended(s1));
  assert_true(tc_wait_ended(s2));
  tc_close(&c);
}

/*
 * A peer that stops answering (its host gone: no FIN) is asked with a PING
 * and, silent past --idle-timeout (3 s here), dropped with its sessions:
 * the device memory it held is free again.  A peer that answers PINGs
 * stays, however long it says nothing else.
 */
void test_silent_peer(void **state)
{
  struct tc_conn c, d;
  struct tc_stream *sess, *lane, *s2, *l2;
  uint64_t sid, sid2, fr0, fr1, fr2, total;

  (void)state;
  ta_connect_agent(&d);
  s2 = ta_open_session(&d, 31, &sid2);
  l2 = ta_open_lane(&d, sid2, 1, 200);
  ta_mem_info(l2, &fr0, &total);

  ta_connect_agent(&c);
  sess = ta_open_session(&c, 30, &sid);
  lane = ta_open_lane(&c, sid, 1, 200);
  (void)ta_dmalloc(lane, 40ull << 20);
  ta_mem_info(l2, &fr1, &total);
  assert_true(fr1 + (40ull << 20) <= fr0);
  /* d answers PINGs while c says nothing at all (nobody pumps it). */
  for (int i = 0; i < 45; i++)
    tc_pump(&d, 100);
  for (int i = 0; i < 40; i++) { /* freeing runs on the agent's threads */
    ta_mem_info(l2, &fr2, &total);
    if (fr2 == fr0)
      break;
    usleep(50000);
  }
  assert_int_equal(fr2, fr0); /* c's session is gone, memory and all */
  (void)sess;
  tc_close(&c);
  tc_end(s2);
  assert_true(tc_wait_ended(s2));
  tc_close(&d);
}

/*
 * --exit-idle 2: the agent stays while a broker is connected (well past
 * 2 s), and exits 0 on its own about 2 s after the last one left.
 */
void test_exit_idle(void **state)
{
  struct tc_conn c;
  struct tc_stream *sess;
  uint64_t sid, t0;
  int status = 0;
  pid_t r = 0;

  (void)state;
  ta_connect_agent(&c);
  sess = ta_open_session(&c, 5, &sid);
  for (int i = 0; i < 35; i++)
    tc_pump(&c, 100);
  assert_int_equal(waitpid(ta_agent_pid, &status, WNOHANG), 0);
  tc_end(sess);
  assert_true(tc_wait_ended(sess));
  tc_close(&c);
  t0 = tc_now_ns() / 1000000;
  for (int i = 0; i < 100 && r == 0; i++) {
    usleep(100000);
    r = waitpid(ta_agent_pid, &status, WNOHANG);
  }
  assert_int_equal(r, ta_agent_pid);
  ta_agent_reaped = 1;
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  assert_true(tc_now_ns() / 1000000 - t0 >= 1500); /* not before the 2 s */
}
