/*
 * agent_h2_int.h: what the network thread's two files share.
 *
 *   agent_h2.c      connections, nghttp2 callbacks, responses, the loop;
 *   agent_routes.c  what each request path does (/v1/hello, /v1/session,
 *                   /v1/lane) and how a lane's body becomes records.
 *
 * Network thread only; nothing outside gpu-agent/agent_h2.c and
 * gpu-agent/agent_routes.c includes it.
 */
#ifndef AGT_H2_INT_H
#define AGT_H2_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>

/*
 * nghttp2 1.60 renamed the ssize_t entry points (*2, nghttp2_ssize) and
 * deprecated the old ones; Debian 12 ships 1.52.  Use whichever exists.
 */
#if NGHTTP2_VERSION_NUM >= 0x013c00
typedef nghttp2_ssize agt_ngssize;
typedef nghttp2_data_provider2 agt_ngprd;
#define agt_ng_mem_send nghttp2_session_mem_send2
#define agt_ng_mem_recv nghttp2_session_mem_recv2
#define agt_ng_submit_response nghttp2_submit_response2
#define agt_ng_set_read_length                                                 \
  nghttp2_session_callbacks_set_data_source_read_length_callback2
#else
typedef ssize_t agt_ngssize;
typedef nghttp2_data_provider agt_ngprd;
#define agt_ng_mem_send nghttp2_session_mem_send
#define agt_ng_mem_recv nghttp2_session_mem_recv
#define agt_ng_submit_response nghttp2_submit_response
#define agt_ng_set_read_length                                                 \
  nghttp2_session_callbacks_set_data_source_read_length_callback
#endif

#include "agent.h"
#include "h2share.h"
#include "h2track.h"
#include "agent_exec.h"
#include "agent_h2.h"
#include "agent_hmap.h"
#include "agent_module.h"
#include "agent_session.h"

#define container_of(p, type, member)                                          \
  ((type *)(void *)((char *)(p) - offsetof(type, member)))

/* A connection that is being closed (bad secret, no common version) gets
   this long to take its last response before the socket is shut. */
#define CLOSE_GRACE_MS 5000
/* A connection must present the secret within this long of connecting:
   unauthenticated peers do not get to hold sockets open. */
#define AUTH_GRACE_MS 10000
/* How long shutdown waits for execution threads to release sessions. */
#define SHUTDOWN_WAIT_MS 30000
#define RECV_BUF (64u << 10)
#define RECV_ROUNDS 16 /* reads per wake-up before others get a turn */
/*
 * Turns.  Over loopback or any fast path the socket takes a bulk reply as
 * fast as we write it, so writing until EAGAIN would hold the network
 * thread in conn_flush for a whole 64 MiB device-to-host copy: no request
 * of another lane read, no finished record's reply sent, for milliseconds.
 * So after each large frame written or read, other work goes first if
 * there is any (others_waiting: input on the socket, notes in the inbox),
 * and a turn ends after TURN_MAX bytes regardless (other connections);
 * level-triggered epoll brings the connection straight back.  A small
 * request or reply therefore waits behind at most one large frame.
 * Frames under TR_H2_SMALL_FRAME never wait, and large ones shrink while
 * lanes share the connection (h2share.h).  The turn is ended in read_cb, by
 * deferring the stream, not by refusing the frame in send_data_cb: nghttp2
 * sends a refused frame first when it resumes, so a small reply that
 * became ready meanwhile would wait behind it; a deferred stream is
 * resumed at the start of the next turn and scheduled like any other.
 */
#define TURN_MAX (1u << 20)
/* DATA payload bytes worth a receive straight into their record, and how
   far a receive into rbuf goes past the current frame. */
#define RECV_DIRECT_MIN (16u << 10)
#define RECV_HEAD (4u << 10)
/*
 * iovec entries of one lane DATA frame written by send_data_cb: the frame
 * header, the pad length, the payload runs, the padding.  A frame of many
 * small replies is cut after DATA_IOV - 3 runs to fit one sendmsg.
 */
#if defined(IOV_MAX) && IOV_MAX < 1024
#define DATA_IOV IOV_MAX
#else
#define DATA_IOV 1024
#endif
#define DATA_RUNS (DATA_IOV - 3)

enum ev_kind { EV_LISTEN, EV_SIGNAL, EV_INBOX, EV_CONN };

/* What an epoll event points at. */
struct ev {
  enum ev_kind kind;
  int fd;
};

enum st_kind {
  ST_NEW,     /* headers arriving */
  ST_FIXED,   /* answered with a fixed response; body ignored */
  ST_HELLO,   /* collecting the HELLO record */
  ST_STATUS,  /* /v1/status: answered when the (empty) body ends */
  ST_SESSION, /* /v1/session */
  ST_LANE,    /* /v1/lane */
};

struct conn;

/* One request stream.  Owned by its connection's list. */
struct stream {
  struct conn *conn;
  int32_t id;
  enum st_kind kind;
  struct stream *prev, *next;

  /* Request headers we look at; over-long values set hdr_overflow. */
  char method[16], path[64], auth[512], sess_hdr[40], va_hdr[64],
      lane_hdr[32], prio_hdr[8], move_hdr[4];
  size_t auth_len;
  bool hdr_overflow;

  bool deferred;  /* the data provider returned NGHTTP2_ERR_DEFERRED */
  bool yielded;   /* ... because the turn ended ("Turns"): resume next turn */
  bool rst_sent;  /* we reset it; waiting for the close */
  bool close_conn; /* close the connection once this response is sent */

  uint8_t *body; /* ST_HELLO: request bytes */
  size_t body_len;
  uint8_t *resp; /* ST_FIXED and hello: response bytes */
  size_t resp_len, resp_off;

  struct agt_session *sess; /* ST_SESSION, until the session is freed */
  bool sess_done;           /* ST_SESSION: end the response */
  struct agt_lane *lane;    /* ST_LANE: referenced */
};

struct conn {
  struct ev ev;
  struct agt_server *srv;
  nghttp2_session *ngh;
  SSL *ssl;           /* TLS over ev.fd, or NULL (h2c) */
  bool handshaking;   /* TLS handshake not finished: no HTTP/2 yet */
  uint8_t *tlsbuf;    /* a frame gathered for SSL_write (owned) */
  size_t tlsbuf_cap;
  struct conn *prev, *next;
  struct stream *streams;
  /*
   * Bytes to write before anything else: either nghttp2's (from
   * nghttp2_session_mem_send, valid until it is called again) or the rest
   * of a lane DATA frame that send_data_cb could not write whole, copied
   * to pend.
   */
  const uint8_t *out;
  size_t out_len;
  uint8_t *pend;      /* owned; pend_cap bytes */
  size_t pend_cap;
  bool blocked;       /* send_data_cb found the socket full, or read_cb
                         ended the turn (see "Turns") */
  bool yields;        /* some stream has `yielded` set */
  size_t turn_out;    /* DATA bytes written in this turn */
  struct tr_h2rcvbuf rcv; /* its socket's receive buffer (h2share.h) */
  uint32_t tag;           /* names its streams in srv->share */
  uint64_t credit;    /* connection-level bytes to consume */
  bool pollout;       /* EPOLLOUT is registered */
  bool dirty;         /* has something to send: flush at the end of the turn */
  bool terminate;     /* send GOAWAY and close after it */
  bool lingering;     /* all sent, write side shut: draining the peer */
  bool dead;          /* close at the end of the turn */
  uint64_t close_by;  /* ms deadline once closing, else 0 */
  uint64_t last_rx_ms; /* when the peer's newest bytes came */
  uint64_t caps;       /* TR_CAP_* agreed in this connection's hello */
  bool ping_out;       /* a PING of ours waits for its ACK */
  uint64_t auth_by;   /* ms deadline for a first authenticated request,
                         0 once one came */
  char peer[64];
  /* Where the input stands in HTTP/2's framing (conn_read). */
  struct tr_h2track fr;
};

struct agt_server {
  struct ev listen_ev, signal_ev, inbox_ev;
  int epfd;
  SSL_CTX *tls;      /* owned; NULL: h2c */
  uint64_t exit_idle_ms; /* --exit-idle; 0: never */
  uint64_t idle_since_ms; /* no connection and no session since; 0: busy */
  uint64_t silent_ms; /* a peer silent this long is gone (--idle-timeout);
                         a PING goes out at a third of it */
  uint64_t quota;    /* per session, bytes; 0: none */
  bool tls_backlog;  /* a connection has decrypted input left over */
  uint16_t port;
  char *secret; /* "Bearer <secret>", or NULL */
  size_t secret_len;
  struct agt_backend *be;
  struct agt_nvml *nvml; /* the config's */
  struct agt_exec *exec;
  uint64_t spin_ns;          /* polling before epoll sleeps (--spin-us) */
  struct agt_modcache *cache;
  struct agt_inbox inbox;
  bool inbox_ok;
  struct agt_closer closer; /* session teardowns */
  bool closer_ok;
  nghttp2_session_callbacks *cbs;
  nghttp2_option *opt;
  struct conn *conns;
  /* Whether lanes share (h2share.h), over every connection: one network
     thread writes all their frames, so a bulk frame on one delays a call
     on any other (a broker's express connection, PROTOCOL.md §3). */
  struct tr_h2share share;
  struct agt_hmap sessions; /* id -> session (the registry's reference) */
  unsigned live_sessions;   /* created and not yet freed */
  struct tr_devinfo devinfo;
  uint8_t rbuf[RECV_BUF];
  struct iovec iov[DATA_IOV]; /* send_data_cb's, network thread only */
};

/* ---- agent_h2.c ----------------------------------------------------- */

/* Submit the response headers of st with a data provider for its body
   (st->resp, or the lane's reply queue).  Returns 0 or an nghttp2 error. */
int agt_st_submit(struct stream *st, const char *status,
                  const char *content_type);

/* Let st's data provider run again (it had nothing to send). */
void agt_st_resume(struct stream *st);

/* Reset st with code (once). */
void agt_st_rst(struct stream *st, uint32_t code);

/* Answer st with a short text body; the request body, if any, is ignored. */
void agt_st_reply_text(struct stream *st, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- agent_routes.c ------------------------------------------------- */

/* Headers are in: check the secret, then act on the path. */
void agt_route(struct stream *st);

/* The request body ended (END_STREAM). */
void agt_request_end(struct stream *st);

/* Forget a stream: on close, or when its connection goes. */
void agt_stream_free(struct stream *st);

/* Bytes of a lane's request body: decode them into records and queue
   them for execution. */
void agt_lane_feed(struct stream *st, const uint8_t *p, size_t len);

#endif /* AGT_H2_INT_H */
