/*
 * test_agent_h2c.h: a small synchronous HTTP/2 client for the agent's
 * tests (test_agent*.c).
 *
 * It speaks to a real tremote-gpu-agent over loopback TCP the way the
 * broker does (h2c with prior knowledge, nghttp2 client session), but
 * without an event loop: every call pumps the socket until what it waits
 * for has happened or a deadline passes.  Good enough for tests, not for
 * anything else.
 */
#ifndef TEST_AGENT_H2C_H
#define TEST_AGENT_H2C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nghttp2/nghttp2.h>

#include "tremote/proto.h"

/* Default deadline of the waiting calls. */
#define TC_TIMEOUT_MS 20000

struct tc_conn;

/* One request stream and everything received on it. */
struct tc_stream {
  struct tc_conn *conn;
  int32_t id;
  int status;        /* :status, 0 until the response headers arrive */
  uint8_t *body;     /* response body received so far */
  size_t body_len, body_cap;
  size_t parsed;     /* of which already returned as records */
  bool ended;        /* the response ended (END_STREAM) */
  bool closed;       /* the stream is closed */
  uint32_t rst_code; /* error code of on_stream_close */

  uint8_t *req;      /* request body not yet sent */
  size_t req_len, req_off, req_cap;
  bool req_eof;      /* end the request body after req */
  bool req_deferred;
  uint64_t sent;     /* request body bytes handed to nghttp2 (so far
                        within the agent's flow-control window) */
  uint64_t next_id;  /* request ids for tc_call */
};

struct tc_conn {
  int fd;
  struct ssl_st *ssl; /* TLS (tc_connect_tls), or NULL: h2c */
  nghttp2_session *ngh;
  const uint8_t *out;
  size_t out_len;
  bool eof;          /* the agent closed the socket */
  bool goaway;       /* GOAWAY received */
  unsigned ping_acks;
  uint64_t ping_ack_ns; /* CLOCK_MONOTONIC of the last PING ACK */
};

/*
 * How connections made from now on frame request bodies: DATA frames of at
 * most frame_max payload bytes (0: nghttp2's 16 KiB), each padded with pad
 * bytes when it has room (0: none).  For tests of the agent's receiving.
 */
struct tc_framing {
  uint32_t frame_max;
  uint8_t pad;
};
extern struct tc_framing tc_framing;

/* The largest DATA frame connections made from now on accept from the
   agent (SETTINGS_MAX_FRAME_SIZE; 0: 1 MiB).  For tests of its sending. */
extern uint32_t tc_recv_frame_max;

/* Connect to 127.0.0.1:port and send the preface and SETTINGS (64 MiB
   stream window, 256 MiB connection window).  Returns 0 or -errno. */
int tc_connect(struct tc_conn *c, uint16_t port);

/* The same over TLS (ALPN h2; the agent's certificate is not verified:
   the tests are about what flows inside). */
int tc_connect_tls(struct tc_conn *c, uint16_t port);

/* Close the socket and free every stream. */
void tc_close(struct tc_conn *c);

/*
 * Send POST `path` with authorization "Bearer <secret>" (no such header if
 * secret is NULL) and the extra headers hdrs[] = {name, value, ..., NULL}.
 * The request body stays open (tc_send, tc_end).  NULL on failure.
 */
struct tc_stream *tc_request(struct tc_conn *c, const char *path,
                             const char *secret, const char *const *hdrs);

/* Append bytes to the request body (sent as the window allows). */
void tc_send(struct tc_stream *st, const void *data, size_t len);

/* Append one record: opcode, flags, request id, payload. */
void tc_send_record(struct tc_stream *st, uint16_t opcode, uint16_t flags,
                    uint64_t request_id, const void *payload, size_t len);

/* End the request body. */
void tc_end(struct tc_stream *st);

/* Reset the stream (RST_STREAM CANCEL). */
void tc_reset(struct tc_stream *st);

/* One round of I/O, waiting at most timeout_ms.  Returns 0, or -1 when the
   connection is gone. */
int tc_pump(struct tc_conn *c, int timeout_ms);

/* Pump until pred(arg) is true; false on timeout or a dead connection. */
bool tc_wait(struct tc_conn *c, bool (*pred)(void *), void *arg,
             int timeout_ms);

/* Wait for the response headers / end / close of st, or for EOF on c. */
bool tc_wait_status(struct tc_stream *st);
bool tc_wait_ended(struct tc_stream *st);
bool tc_wait_closed(struct tc_stream *st);
bool tc_wait_eof(struct tc_conn *c);

/* Submit a PING (its ACK bumps c->ping_acks). */
void tc_ping(struct tc_conn *c);

/*
 * The next whole reply record of st's response body, if one has arrived.
 * payload points into st->body and is valid until the next pump.
 */
bool tc_next_record(struct tc_stream *st, struct tr_hdr *h,
                    const uint8_t **payload);

/* What tc_call collected. */
struct tc_result {
  uint32_t status;  /* of the final reply; UINT32_MAX: none arrived */
  uint8_t *data;    /* MORE payloads and the final payload, concatenated */
  size_t len;
  unsigned nmore;   /* MORE records before the final one */
  unsigned nrec;    /* all reply records */
  uint16_t flags;   /* of the final reply */
};

/*
 * Send one record with WANT_REPLY (plus `flags`) and wait for its final
 * reply; every reply must carry its request id.  Returns the final status
 * (UINT32_MAX if none came).  res may be NULL; else free res->data.
 */
uint32_t tc_call(struct tc_stream *lane, uint16_t opcode, uint16_t flags,
                 const void *payload, size_t len, struct tc_result *res);

/* Send one record without WANT_REPLY; returns its request id. */
uint64_t tc_post(struct tc_stream *lane, uint16_t opcode, const void *payload,
                 size_t len);

/* Monotonic clock, nanoseconds. */
uint64_t tc_now_ns(void);

#endif /* TEST_AGENT_H2C_H */
