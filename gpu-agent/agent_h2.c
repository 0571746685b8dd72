/*
 * agent_h2.c: the network thread (agent_h2.h).
 *
 * Everything here runs on one thread: sockets, nghttp2 sessions, the
 * session registry and the network-side fields of lanes.  The execution
 * threads reach it only through the inbox (agent_session.h).
 *
 * Flow control is manual (NGHTTP2_OPT_NO_AUTO_WINDOW_UPDATE): bytes of a
 * lane's request body are consumed, and so given back to the peer as
 * window, only after the record they carried has executed.  That is what
 * bounds a lane's queue of unexecuted records (AGT_LANE_IN_MAX).  Bytes of
 * every other stream are consumed on arrival.
 *
 * nghttp2 callbacks never close a connection: they mark it, and the loop
 * closes it once the library call that invoked them has returned.
 *
 * Lane response bodies are not copied into nghttp2's frame buffer: read_cb
 * only sizes each DATA frame (NGHTTP2_DATA_FLAG_NO_COPY) and send_data_cb
 * writes header and payload to the socket from the lane's reply queue with
 * one sendmsg.  Other responses are small and copied as usual.
 */
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "agent_h2_int.h"
#include "agent_tls.h"

static void conn_mark(struct conn *c)
{
  c->dirty = true;
}

static void conn_pollout(struct conn *c, bool on);

/* ---- the byte stream: the socket, or TLS over it --------------------------- */

/* The peer's next bytes into buf: their count, 0 at the end, -EAGAIN, or
   another -errno (said in the log). */
static ssize_t conn_recv(struct conn *c, void *buf, size_t len)
{
  size_t n = 0;
  ssize_t r;
  int e;

  if (!c->ssl) {
    do
      r = recv(c->ev.fd, buf, len, 0);
    while (r < 0 && errno == EINTR);
    if (r >= 0)
      return r;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      return -EAGAIN;
    agt_debug("%s: recv: %s", c->peer, strerror(errno));
    return -errno;
  }
  ERR_clear_error();
  if (SSL_read_ex(c->ssl, buf, len, &n) == 1)
    return (ssize_t)n;
  e = SSL_get_error(c->ssl, 0);
  if (e == SSL_ERROR_WANT_READ)
    return -EAGAIN;
  if (e == SSL_ERROR_WANT_WRITE) { /* a TLS message of its own to send */
    conn_pollout(c, true);
    return -EAGAIN;
  }
  if (e == SSL_ERROR_ZERO_RETURN)
    return 0;
  {
    char m[256];

    agt_debug("%s: TLS read: %s", c->peer, agt_tls_error(m, sizeof(m)));
  }
  return -EIO;
}

/* Write iov: the bytes taken (maybe fewer than all), -EAGAIN when none
   were, or another -errno.  Under TLS the pieces are gathered first, so a
   frame is one record, not one per header and payload. */
static ssize_t conn_sendv(struct conn *c, struct iovec *iov, int n)
{
  const void *p;
  size_t total = 0, w = 0;
  ssize_t r;
  int e;

  if (!c->ssl) {
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};

    do
      r = sendmsg(c->ev.fd, &mh, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    if (r > 0)
      return r;
    if (r == 0 || errno == EAGAIN || errno == EWOULDBLOCK)
      return -EAGAIN;
    return -errno;
  }
  for (int i = 0; i < n; i++)
    total += iov[i].iov_len;
  if (n == 1) {
    p = iov[0].iov_base;
  } else {
    if (total > c->tlsbuf_cap) {
      uint8_t *b = realloc(c->tlsbuf, total);

      if (!b)
        return -ENOMEM;
      c->tlsbuf = b;
      c->tlsbuf_cap = total;
    }
    for (int i = 0; i < n; i++) {
      memcpy(c->tlsbuf + w, iov[i].iov_base, iov[i].iov_len);
      w += iov[i].iov_len;
    }
    p = c->tlsbuf;
  }
  if (total == 0)
    return 0;
  ERR_clear_error();
  if (SSL_write_ex(c->ssl, p, total, &w) == 1)
    return (ssize_t)w;
  e = SSL_get_error(c->ssl, 0);
  if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
    return -EAGAIN;
  {
    char m[256];

    agt_debug("%s: TLS write: %s", c->peer, agt_tls_error(m, sizeof(m)));
  }
  return -EIO;
}

/* Whether decrypted input waits inside TLS (epoll cannot see it).  Not
   SSL_has_pending, which counts half a record too: epoll will see the
   rest arrive, and counting it spun the loop until then. */
static bool conn_pending(struct conn *c)
{
  return c->ssl && !c->handshaking && SSL_pending(c->ssl) > 0;
}

/*
 * One step of the TLS handshake.  Done: ALPN must have chosen h2 (the
 * select callback refuses anything else, but a client offering no ALPN
 * never reaches it), then HTTP/2 starts (its SETTINGS are flushed).
 * Failed: the connection is closed before any HTTP/2, so before any secret
 * or CUDA call is looked at.
 */
static void conn_handshake(struct conn *c)
{
  const unsigned char *alpn = NULL;
  unsigned alen = 0;
  char m[256];
  int e;

  ERR_clear_error();
  if (SSL_do_handshake(c->ssl) == 1) {
    SSL_get0_alpn_selected(c->ssl, &alpn, &alen);
    if (alen != 2 || memcmp(alpn, "h2", 2) != 0) {
      agt_warn("%s: TLS client did not ask for HTTP/2 (ALPN h2); closing",
               c->peer);
      c->dead = true;
      return;
    }
    c->handshaking = false;
    conn_pollout(c, false);
    agt_debug("%s: %s, %s", c->peer, SSL_get_version(c->ssl),
              SSL_get_cipher_name(c->ssl));
    conn_mark(c);
    return;
  }
  e = SSL_get_error(c->ssl, 0);
  if (e == SSL_ERROR_WANT_READ) {
    conn_pollout(c, false);
    return;
  }
  if (e == SSL_ERROR_WANT_WRITE) {
    conn_pollout(c, true);
    return;
  }
  agt_warn("%s: TLS handshake failed: %s", c->peer,
           e == SSL_ERROR_SYSCALL && !ERR_peek_error()
               ? "the peer closed the connection"
               : agt_tls_error(m, sizeof(m)));
  c->dead = true;
}

/* ---- responses ---------------------------------------------------------- */

/* Whether input waits on c: decrypted, or in its socket. */
static bool input_on(struct conn *c)
{
  int queued = 0;

  return conn_pending(c) ||
         (ioctl(c->ev.fd, FIONREAD, &queued) == 0 && queued > 0);
}

/* Whether input waits on a connection of the server other than c (a call
   on a broker's express connection must not wait for the end of a bulk
   turn on its other one). */
static bool input_elsewhere(struct conn *c)
{
  for (struct conn *x = c->srv->conns; x; x = x->next)
    if (x != c && input_on(x))
      return true;
  return false;
}

/* Whether the network thread has other work: notes, or input anywhere. */
static bool others_waiting(struct conn *c)
{
  return agt_inbox_pending(&c->srv->inbox) || input_on(c) ||
         input_elsewhere(c);
}

static agt_ngssize read_cb(nghttp2_session *ngh, int32_t id, uint8_t *buf,
                           size_t len, uint32_t *flags,
                           nghttp2_data_source *src, void *ud)
{
  struct stream *st = src->ptr;
  struct conn *c = st->conn;
  size_t n;
  bool eof;

  switch (st->kind) {
  case ST_LANE:
    /* Only the length: send_data_cb writes the bytes from the queue. */
    n = agt_lane_peek_out(st->lane, len, DATA_RUNS, &eof);
    if (n >= TR_H2_SMALL_FRAME && c->turn_out &&
        (c->turn_out >= TURN_MAX || others_waiting(c))) {
      st->deferred = st->yielded = true; /* other work first ("Turns") */
      c->yields = c->blocked = true;
      return NGHTTP2_ERR_DEFERRED;
    }
    if (eof)
      *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (!n && !eof) {
      st->deferred = true;
      return NGHTTP2_ERR_DEFERRED;
    }
    if (n)
      *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    return (agt_ngssize)n;
  case ST_SESSION:
    if (st->sess_done) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      return 0;
    }
    st->deferred = true;
    return NGHTTP2_ERR_DEFERRED;
  default:
    n = st->resp_len - st->resp_off;
    if (n > len)
      n = len;
    if (n)
      memcpy(buf, st->resp + st->resp_off, n);
    st->resp_off += n;
    if (st->resp_off == st->resp_len)
      *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (agt_ngssize)n;
  }
}

/* A lane DATA frame on its way out (send_data_cb to emit_frame). */
struct frame_out {
  struct conn *c;
  size_t padlen;  /* frame->data.padlen: pad length byte + padding */
  bool partial;   /* part of it was left in c->pend */
};

static int pend_reserve(struct conn *c, size_t len)
{
  uint8_t *p;

  if (len <= c->pend_cap)
    return 0;
  p = realloc(c->pend, len);
  if (!p)
    return -ENOMEM;
  c->pend = p;
  c->pend_cap = len;
  return 0;
}

/*
 * Write the frame with one sendmsg, or one TLS record (agt_out_emit_fn;
 * the lane lock is held).  A frame cannot be taken back once a byte of it is out, so what
 * the socket did not take is copied to c->pend and written before anything
 * else; only that remainder is ever copied.
 */
static int emit_frame(void *arg, struct iovec *iov, int iovcnt)
{
  static const uint8_t zeros[256];
  struct frame_out *fo = arg;
  struct conn *c = fo->c;
  size_t total = 0, skip, rem;
  ssize_t w;

  if (fo->padlen > 1) {
    iov[iovcnt].iov_base = (void *)zeros;
    iov[iovcnt].iov_len = fo->padlen - 1;
    iovcnt++;
  }
  for (int i = 0; i < iovcnt; i++)
    total += iov[i].iov_len;
  w = conn_sendv(c, iov, iovcnt);
  /* TLS wants more room: OpenSSL has made a record of the frame already
     and must be given the same bytes again, so the whole frame waits in
     c->pend like any remainder.  Told "nothing went" instead, nghttp2
     could drop the frame (its stream reset meanwhile) and the next write
     would carry other bytes, which OpenSSL takes as the rest of that
     record: the connection's framing would be broken. */
  if (w == -EAGAIN && c->ssl)
    w = 0;
  if (w < 0)
    return (int)w;
  if ((size_t)w == total)
    return 0;
  rem = total - (size_t)w;
  if (pend_reserve(c, rem) < 0)
    return -ENOMEM;
  skip = (size_t)w;
  c->out_len = 0;
  for (int i = 0; i < iovcnt; i++) {
    size_t l = iov[i].iov_len;

    if (skip >= l) {
      skip -= l;
      continue;
    }
    memcpy(c->pend + c->out_len, (const uint8_t *)iov[i].iov_base + skip,
           l - skip);
    c->out_len += l - skip;
    skip = 0;
  }
  c->out = c->pend;
  fo->partial = true;
  return 0;
}

/*
 * nghttp2_send_data_callback for lane responses (read_cb set
 * NGHTTP2_DATA_FLAG_NO_COPY): write the frame header, the pad length, the
 * payload straight from the lane's queue and the padding.  Called from
 * nghttp2_session_mem_send, which conn_flush calls only once everything
 * before has been written, so the frame goes out in order.  Returns 0 when
 * all of it went; NGHTTP2_ERR_PAUSE when a remainder waits in c->pend, so
 * that nghttp2 serialises nothing more until conn_flush has written it;
 * NGHTTP2_ERR_WOULDBLOCK when nothing could be written (nghttp2 calls again
 * with the same frame).
 */
static int send_data_cb(nghttp2_session *ngh, nghttp2_frame *fr,
                        const uint8_t *framehd, size_t length,
                        nghttp2_data_source *src, void *ud)
{
  struct conn *c = ud;
  struct stream *st = src->ptr;
  struct iovec *iov = c->srv->iov;
  struct frame_out fo = {.c = c, .padlen = fr->data.padlen};
  uint8_t padbyte;
  int first = 0, rc;

  if (c->out_len) { /* not reached: see conn_flush */
    c->blocked = true;
    return NGHTTP2_ERR_WOULDBLOCK;
  }
  if (st->kind != ST_LANE)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  iov[first].iov_base = (void *)framehd;
  iov[first++].iov_len = 9; /* the frame header, always 9 bytes */
  if (fo.padlen) {
    padbyte = (uint8_t)(fo.padlen - 1);
    iov[first].iov_base = &padbyte;
    iov[first++].iov_len = 1;
  }
  /* One entry is left for emit_frame's padding. */
  rc = agt_lane_send_out(st->lane, length, iov, first, DATA_IOV - 1,
                         emit_frame, &fo);
  switch (rc) {
  case 0:
    c->turn_out += length;
    tr_h2share_frame(&c->srv->share, tr_h2share_key(c->tag, fr->hd.stream_id),
                     length);
    return fo.partial ? NGHTTP2_ERR_PAUSE : 0;
  case -EAGAIN:
    c->blocked = true;
    return NGHTTP2_ERR_WOULDBLOCK;
  case -ECANCELED: /* aborted since read_cb: nothing of the frame went out */
  case -EOVERFLOW:
    st->rst_sent = true;
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  default:
    agt_debug("%s: send: %s", c->peer, strerror(-rc));
    c->dead = true;
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
}

void agt_st_resume(struct stream *st)
{
  if (st->deferred) {
    st->deferred = false;
    nghttp2_session_resume_data(st->conn->ngh, st->id);
  }
  conn_mark(st->conn);
}

int agt_st_submit(struct stream *st, const char *status,
                  const char *content_type)
{
  nghttp2_nv nv[2] = {
    /* Values are copied: status may live on the caller's stack. */
    {(uint8_t *)":status", (uint8_t *)status, 7, strlen(status),
     NGHTTP2_NV_FLAG_NO_COPY_NAME},
    {(uint8_t *)"content-type", (uint8_t *)content_type, 12,
     strlen(content_type), NGHTTP2_NV_FLAG_NO_COPY_NAME},
  };
  agt_ngprd prd = {.source.ptr = st, .read_callback = read_cb};
  int rc;

  rc = agt_ng_submit_response(st->conn->ngh, st->id, nv, 2, &prd);
  conn_mark(st->conn);
  if (rc < 0)
    agt_err("%s: stream %d: submit response: %s", st->conn->peer, st->id,
            nghttp2_strerror(rc));
  return rc;
}

void agt_st_rst(struct stream *st, uint32_t code)
{
  if (st->rst_sent || st->conn->dead)
    return;
  st->rst_sent = true;
  nghttp2_submit_rst_stream(st->conn->ngh, NGHTTP2_FLAG_NONE, st->id, code);
  conn_mark(st->conn);
}

/* Answer with a short text body; the request body, if any, is ignored. */
void agt_st_reply_text(struct stream *st, int status, const char *fmt, ...)
{
  char code[8], text[512];
  va_list ap;
  int n;

  va_start(ap, fmt);
  n = vsnprintf(text, sizeof(text) - 1, fmt, ap);
  va_end(ap);
  if (n < 0)
    n = 0;
  if (n > (int)sizeof(text) - 2)
    n = (int)sizeof(text) - 2;
  text[n++] = '\n';
  st->kind = ST_FIXED;
  free(st->resp);
  st->resp = malloc((size_t)n);
  st->resp_len = st->resp ? (size_t)n : 0;
  st->resp_off = 0;
  if (st->resp)
    memcpy(st->resp, text, (size_t)n);
  snprintf(code, sizeof(code), "%d", status);
  if (agt_st_submit(st, code, "text/plain; charset=utf-8") < 0)
    agt_st_rst(st, NGHTTP2_INTERNAL_ERROR);
}

/* ---- nghttp2 callbacks -------------------------------------------------- */

static int on_begin_headers(nghttp2_session *ngh, const nghttp2_frame *fr,
                            void *ud)
{
  struct conn *c = ud;
  struct stream *st;

  if (fr->hd.type != NGHTTP2_HEADERS ||
      fr->headers.cat != NGHTTP2_HCAT_REQUEST)
    return 0;
  st = calloc(1, sizeof(*st));
  if (!st)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
  st->conn = c;
  st->id = fr->hd.stream_id;
  st->next = c->streams;
  if (c->streams)
    c->streams->prev = st;
  c->streams = st;
  nghttp2_session_set_stream_user_data(ngh, st->id, st);
  return 0;
}

static void keep(char *dst, size_t cap, const uint8_t *v, size_t len,
                 bool *overflow)
{
  if (len >= cap) {
    *overflow = true;
    len = cap - 1;
  }
  memcpy(dst, v, len);
  dst[len] = 0;
}

static int on_header(nghttp2_session *ngh, const nghttp2_frame *fr,
                     const uint8_t *name, size_t namelen, const uint8_t *value,
                     size_t valuelen, uint8_t flags, void *ud)
{
  struct stream *st;

  if (fr->hd.type != NGHTTP2_HEADERS ||
      fr->headers.cat != NGHTTP2_HCAT_REQUEST)
    return 0;
  st = nghttp2_session_get_stream_user_data(ngh, fr->hd.stream_id);
  if (!st)
    return 0;
#define IS(s) (namelen == sizeof(s) - 1 && memcmp(name, s, namelen) == 0)
  if (IS(":method")) {
    keep(st->method, sizeof(st->method), value, valuelen, &st->hdr_overflow);
  } else if (IS(":path")) {
    keep(st->path, sizeof(st->path), value, valuelen, &st->hdr_overflow);
  } else if (IS("authorization")) {
    keep(st->auth, sizeof(st->auth), value, valuelen, &st->hdr_overflow);
    st->auth_len = valuelen < sizeof(st->auth) ? valuelen : 0;
  } else if (IS("tremote-session")) {
    keep(st->sess_hdr, sizeof(st->sess_hdr), value, valuelen,
         &st->hdr_overflow);
  } else if (IS("tremote-va")) {
    keep(st->va_hdr, sizeof(st->va_hdr), value, valuelen, &st->hdr_overflow);
  } else if (IS("tremote-lane")) {
    keep(st->lane_hdr, sizeof(st->lane_hdr), value, valuelen,
         &st->hdr_overflow);
  } else if (IS("tremote-lane-move")) {
    keep(st->move_hdr, sizeof(st->move_hdr), value, valuelen,
         &st->hdr_overflow);
  } else if (IS("tremote-priority")) {
    keep(st->prio_hdr, sizeof(st->prio_hdr), value, valuelen,
         &st->hdr_overflow);
  }
#undef IS
  return 0;
}

static int on_frame_recv(nghttp2_session *ngh, const nghttp2_frame *fr,
                         void *ud)
{
  struct conn *c = ud;
  struct stream *st;

  if (fr->hd.type == NGHTTP2_DATA)
    tr_h2share_frame(&c->srv->share, tr_h2share_key(c->tag, fr->hd.stream_id),
                     fr->hd.length);
  if (fr->hd.type != NGHTTP2_HEADERS && fr->hd.type != NGHTTP2_DATA)
    return 0;
  st = nghttp2_session_get_stream_user_data(ngh, fr->hd.stream_id);
  if (!st)
    return 0;
  if (fr->hd.type == NGHTTP2_HEADERS &&
      fr->headers.cat == NGHTTP2_HCAT_REQUEST)
    agt_route(st);
  if (fr->hd.flags & NGHTTP2_FLAG_END_STREAM)
    agt_request_end(st);
  return 0;
}

static int on_data_chunk(nghttp2_session *ngh, uint8_t flags, int32_t id,
                         const uint8_t *data, size_t len, void *ud)
{
  struct stream *st = nghttp2_session_get_stream_user_data(ngh, id);

  if (st && st->kind == ST_LANE) {
    agt_lane_feed(st, data, len); /* consumed once executed */
    return 0;
  }
  nghttp2_session_consume(ngh, id, len);
  if (!st || st->kind != ST_HELLO)
    return 0;
  if (st->body_len + len > AGT_HELLO_MAX) {
    agt_st_reply_text(st, 413, "HELLO larger than %u bytes", AGT_HELLO_MAX);
    return 0;
  }
  if (!st->body) {
    st->body = malloc(AGT_HELLO_MAX);
    if (!st->body) {
      st->kind = ST_FIXED;
      agt_st_rst(st, NGHTTP2_INTERNAL_ERROR);
      return 0;
    }
  }
  memcpy(st->body + st->body_len, data, len);
  st->body_len += len;
  return 0;
}

static int on_frame_send(nghttp2_session *ngh, const nghttp2_frame *fr,
                         void *ud)
{
  struct conn *c = ud;
  struct stream *st;

  /* The last frame of a response after which the connection must go. */
  if (!(fr->hd.flags & NGHTTP2_FLAG_END_STREAM))
    return 0;
  st = nghttp2_session_get_stream_user_data(ngh, fr->hd.stream_id);
  if (st && st->close_conn)
    c->terminate = true;
  return 0;
}

static int on_stream_close(nghttp2_session *ngh, int32_t id, uint32_t code,
                           void *ud)
{
  struct stream *st = nghttp2_session_get_stream_user_data(ngh, id);

  if (!st)
    return 0;
  if (st->close_conn)
    ((struct conn *)ud)->terminate = true;
  nghttp2_session_set_stream_user_data(ngh, id, NULL);
  agt_stream_free(st);
  return 0;
}

/* Send DATA frames as large as the peer and the windows allow. */
static agt_ngssize read_length_cb(nghttp2_session *ngh, uint8_t type,
                                  int32_t id, int32_t conn_win,
                                  int32_t stream_win, uint32_t max_frame,
                                  void *ud)
{
  struct conn *c = ud;

  return (agt_ngssize)tr_h2share_length(&c->srv->share, max_frame, conn_win,
                                        stream_win);
}

/* ---- connections -------------------------------------------------------- */

static void conn_close(struct conn *c)
{
  struct agt_server *srv = c->srv;

  agt_debug("%s: connection closed", c->peer);
  c->dead = true; /* agt_st_rst() on its streams is now a no-op */
  /* nghttp2_session_del() does not report streams closing: do it here,
     so every session and lane on this connection ends. */
  while (c->streams)
    agt_stream_free(c->streams);
  nghttp2_session_del(c->ngh);
  epoll_ctl(srv->epfd, EPOLL_CTL_DEL, c->ev.fd, NULL);
  SSL_free(c->ssl);
  close(c->ev.fd);
  free(c->pend);
  free(c->tlsbuf);
  if (c->prev)
    c->prev->next = c->next;
  else
    srv->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  free(c);
}

static void conn_pollout(struct conn *c, bool on)
{
  struct epoll_event e = {.events = EPOLLIN | (on ? EPOLLOUT : 0u),
                          .data.ptr = &c->ev};

  if (c->pollout == on)
    return;
  c->pollout = on;
  epoll_ctl(c->srv->epfd, EPOLL_CTL_MOD, c->ev.fd, &e);
}

/*
 * Hand what nghttp2 wants to send to the socket, until it has nothing, the
 * socket is full or the turn ends (see "Turns"; then wait for EPOLLOUT,
 * which in the last case comes at once, after the other events).
 * Marks the connection dead when it is finished or broken.
 */
static void conn_flush(struct conn *c)
{
  c->turn_out = 0;
  if (c->yields) { /* a new turn: the streams read_cb put off go again */
    c->yields = false;
    for (struct stream *st = c->streams; st; st = st->next)
      if (st->yielded) {
        st->yielded = false;
        agt_st_resume(st);
      }
  }
  c->dirty = false;
  if (c->dead || c->lingering)
    return;
  if (c->handshaking) {
    conn_handshake(c);
    if (c->handshaking || c->dead)
      return;
  }
  for (;;) {
    ssize_t w;
    struct iovec one;

    if (c->out_len == 0) {
      const uint8_t *p;
      agt_ngssize n;

      if (c->credit) {
        nghttp2_session_consume_connection(c->ngh, (size_t)c->credit);
        c->credit = 0;
      }
      if (c->terminate) {
        c->terminate = false;
        nghttp2_session_terminate_session(c->ngh, NGHTTP2_NO_ERROR);
        if (!c->close_by)
          c->close_by = agt_now_ms() + CLOSE_GRACE_MS;
      }
      /* send_data_cb may write the socket in here, or leave c->out set. */
      c->blocked = false;
      n = agt_ng_mem_send(c->ngh, &p);
      if (n < 0) {
        if (!c->dead)
          agt_warn("%s: nghttp2: %s", c->peer, nghttp2_strerror((int)n));
        c->dead = true;
        return;
      }
      if (n == 0) {
        if (c->out_len)
          continue; /* the rest of a lane DATA frame, in c->pend */
        /* c->yields too: read_cb may have put a stream off in an earlier
           round of this loop, which wrote other frames since (blocked is
           cleared before each round); without the wake-up at the socket's
           next writability, that stream would wait for something else to
           mark this connection (a status poll, a PING: seconds). */
        if (c->blocked || c->yields) {
          conn_pollout(c, true);
          return;
        }
        break;
      }
      c->out = p;
      c->out_len = (size_t)n;
    }
    one = (struct iovec){(void *)c->out, c->out_len};
    w = conn_sendv(c, &one, 1);
    if (w == -EAGAIN) {
      conn_pollout(c, true);
      return;
    }
    if (w < 0) {
      agt_debug("%s: send: %s", c->peer, strerror((int)-w));
      c->dead = true;
      return;
    }
    c->out += w;
    c->out_len -= (size_t)w;
  }
  conn_pollout(c, false);
  if (!c->lingering && !nghttp2_session_want_read(c->ngh) &&
      !nghttp2_session_want_write(c->ngh)) {
    /*
     * Finished (GOAWAY sent).  Closing now would make the kernel answer the
     * peer's next bytes with RST, which can destroy our last response
     * before the peer reads it; so shut the write side and read until the
     * peer closes too, or the grace period ends.
     */
    if (c->ssl)
      (void)SSL_shutdown(c->ssl); /* close_notify, if the socket takes it */
    shutdown(c->ev.fd, SHUT_WR);
    c->lingering = true;
    if (!c->close_by)
      c->close_by = agt_now_ms() + CLOSE_GRACE_MS;
  }
}

/*
 * If the next input bytes are at least RECV_DIRECT_MIN bytes of a lane's
 * DATA payload that its decoder will write to one place (a record's
 * memory, or device memory for a direct host-to-device copy), that place
 * and how many bytes may be received there.  Receiving them in place and
 * then giving nghttp2 those same bytes saves the copy out of the receive
 * buffer: nghttp2 hands DATA payloads to on_data_chunk as pointers into
 * its input, and the decoder does not copy bytes onto themselves.  nghttp2
 * parses the bytes wherever they were received, so its view never depends
 * on this; and were the tracking ever wrong, the decoder would move the
 * payload to its place (memmove, always backwards within what was just
 * received), so the result would still be right, only slower.
 */
static uint8_t *recv_target(struct conn *c, size_t *len)
{
  struct stream *st;
  uint8_t *dst;
  size_t data, room;
  int32_t id;

  data = tr_h2track_data(&c->fr, &id);
  if (data < RECV_DIRECT_MIN)
    return NULL;
  st = nghttp2_session_get_stream_user_data(c->ngh, id);
  if (!st || st->kind != ST_LANE || st->rst_sent || st->lane->skip)
    return NULL;
  dst = tr_decoder_room(&st->lane->dec, &room);
  if (!dst || room < RECV_DIRECT_MIN)
    return NULL;
  *len = data < room ? data : room;
  return dst;
}

static void conn_read(struct conn *c)
{
  struct agt_server *srv = c->srv;
  size_t got = 0;
  int rcvbuf;

  if (c->handshaking) {
    conn_handshake(c);
    if (c->handshaking || c->dead)
      return;
  }
  for (int i = 0; i < RECV_ROUNDS && got < TURN_MAX && !c->dead; i++) {
    size_t cap = sizeof(srv->rbuf);
    uint8_t *buf;
    ssize_t n;
    agt_ngssize rv;

    if (got >= TR_H2_SMALL_FRAME &&
        (agt_inbox_pending(&srv->inbox) || input_elsewhere(c)))
      break; /* replies to send, calls to take first (see "Turns") */
    buf = recv_target(c, &cap);
    if (!buf) {
      /* Only a little past this frame: the next large payload then
         goes in place. */
      buf = srv->rbuf;
      cap = tr_h2track_next_read(&c->fr, RECV_HEAD, sizeof(srv->rbuf));
    }
    n = conn_recv(c, buf, cap);
    if (n == 0) {
      c->dead = true; /* peer closed */
      return;
    }
    if (n < 0) {
      if (n != -EAGAIN)
        c->dead = true;
      break;
    }
    got += (size_t)n;
    c->last_rx_ms = agt_now_ms();
    c->ping_out = false;
    if (c->lingering)
      continue; /* discard: the session is over */
    rv = agt_ng_mem_recv(c->ngh, buf, (size_t)n);
    if (rv < 0) {
      agt_warn("%s: HTTP/2 error: %s", c->peer, nghttp2_strerror((int)rv));
      c->dead = true;
      return;
    }
    tr_h2track_feed(&c->fr, buf, (size_t)rv); /* all: we never pause */
  }
  if ((rcvbuf = tr_h2share_rcvbuf(&c->srv->share, &c->rcv)) != 0)
    setsockopt(c->ev.fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  conn_mark(c);
}

/* Whether a peer is on this host (127.0.0.0/8, ::1, or v4-mapped). */
static bool is_loopback(const struct sockaddr_storage *sa)
{
  static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

  if (sa->ss_family == AF_INET)
    return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
  if (sa->ss_family == AF_INET6) {
    const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;

    return IN6_IS_ADDR_LOOPBACK(a) ||
           (!memcmp(a->s6_addr, v4mapped, 12) && a->s6_addr[12] == 127);
  }
  return false;
}

/*
 * TCP_NODELAY: records are small and latency-bound.  TCP_NOTSENT_LOWAT:
 * the kernel takes no more than AGT_NOTSENT_LOWAT bytes beyond what is on
 * the wire, so bulk replies wait in nghttp2, which interleaves the lanes'
 * streams, not in a socket buffer of megabytes where a small reply of
 * another lane would queue behind them (what is in flight is still
 * bounded only by the congestion window, so a long path stays full).
 * A broker on this host gets a receive buffer of AGT_LOOPBACK_RCVBUF, for
 * the same reason in the other direction (smaller while lanes share,
 * h2share.h); returned, 0 for a remote broker.  Keepalive and a user timeout: a
 * broker whose host vanishes sends no FIN, and without them its sessions
 * (and their device memory) would live forever.
 */
static int tune_socket(int fd, const struct sockaddr_storage *peer)
{
  int one = 1, idle = 30, intvl = 10, cnt = 3;
  int lowat = (int)tr_net_tune("lowat", AGT_NOTSENT_LOWAT);
  int rcvbuf = (int)tr_net_tune("rcvbuf", AGT_LOOPBACK_RCVBUF);
  unsigned timeout_ms = 60000;

  if (!is_loopback(peer) ||
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) < 0)
    rcvbuf = 0;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof(lowat));
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
  setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &timeout_ms,
             sizeof(timeout_ms));
  return rcvbuf;
}

static void accept_all(struct agt_server *srv)
{
  for (;;) {
    struct sockaddr_storage sa;
    socklen_t salen = sizeof(sa);
    nghttp2_settings_entry set[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, AGT_MAX_STREAMS},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, AGT_STREAM_WINDOW},
      {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, AGT_MAX_FRAME},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, AGT_MAX_HEADER_LIST},
    };
    struct epoll_event e;
    char host[48], serv[8];
    struct conn *c;
    int fd, rcvbuf;

    fd = accept4(srv->listen_ev.fd, (struct sockaddr *)&sa, &salen,
                 SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        agt_warn("accept: %s", strerror(errno));
      return;
    }
    rcvbuf = tune_socket(fd, &sa);
    c = calloc(1, sizeof(*c));
    if (!c)
      goto out_close;
    tr_h2share_rcvbuf_init(&c->rcv, rcvbuf);
    c->tag = tr_h2share_tag();
    c->ev.kind = EV_CONN;
    c->ev.fd = fd;
    c->srv = srv;
    c->auth_by = agt_now_ms() + AUTH_GRACE_MS;
    c->last_rx_ms = agt_now_ms();
    tr_h2track_init(&c->fr, NGHTTP2_CLIENT_MAGIC_LEN); /* a server's input */
    if (srv->tls) {
      c->ssl = SSL_new(srv->tls);
      if (!c->ssl || SSL_set_fd(c->ssl, fd) != 1)
        goto out_free;
      SSL_set_accept_state(c->ssl);
      c->handshaking = true;
    }
    if (getnameinfo((struct sockaddr *)&sa, salen, host, sizeof(host), serv,
                    sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV) == 0)
      snprintf(c->peer, sizeof(c->peer), "%s:%s", host, serv);
    else
      snprintf(c->peer, sizeof(c->peer), "peer");
    if (nghttp2_session_server_new2(&c->ngh, srv->cbs, c, srv->opt) != 0)
      goto out_free;
    if (nghttp2_submit_settings(c->ngh, NGHTTP2_FLAG_NONE, set,
                                sizeof(set) / sizeof(set[0])) != 0 ||
        nghttp2_session_set_local_window_size(c->ngh, NGHTTP2_FLAG_NONE, 0,
                                              AGT_CONN_WINDOW) != 0)
      goto out_del;
    e.events = EPOLLIN;
    e.data.ptr = &c->ev;
    if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, fd, &e) < 0)
      goto out_del;
    c->next = srv->conns;
    if (srv->conns)
      srv->conns->prev = c;
    srv->conns = c;
    agt_debug("%s: connection accepted", c->peer);
    conn_flush(c);
    continue;

  out_del:
    nghttp2_session_del(c->ngh);
  out_free:
    SSL_free(c->ssl);
    free(c);
  out_close:
    agt_warn("dropping a new connection: out of memory");
    close(fd);
  }
}

/* ---- the inbox ---------------------------------------------------------- */

static void lane_note(struct agt_lane *l)
{
  struct stream *st = l->st;
  uint64_t done;
  bool ready, aborted;

  pthread_mutex_lock(&l->mu);
  done = l->done_bytes;
  l->done_bytes = 0;
  ready = l->out_head || l->out_eof;
  aborted = l->aborted;
  pthread_mutex_unlock(&l->mu);
  if (!st)
    return; /* stream gone; its bytes were credited at close */
  if (done) {
    nghttp2_session_consume(st->conn->ngh, st->id, (size_t)done);
    l->credited += done;
  }
  if (aborted)
    agt_st_rst(st, NGHTTP2_INTERNAL_ERROR); /* the lane died on its own */
  else if (ready)
    agt_st_resume(st);
  conn_mark(st->conn);
}

static void session_note(struct agt_server *srv, struct agt_session *s)
{
  struct stream *st = s->st;

  if (st) {
    st->sess_done = true;
    st->sess = NULL;
    agt_st_resume(st);
  }
  agt_info("session %016llx: closed, memory freed", (unsigned long long)s->id);
  agt_session_free(s);
  srv->live_sessions--;
}

static void drain_inbox(struct agt_server *srv)
{
  struct agt_note *n = agt_inbox_take(&srv->inbox), *next;

  for (; n; n = next) {
    next = n->next;
    agt_inbox_done(&srv->inbox, n);
    if (n->kind == AGT_NOTE_LANE) {
      struct agt_lane *l = container_of(n, struct agt_lane, note);

      lane_note(l);
      agt_lane_put(l); /* the inbox's reference */
    } else {
      session_note(srv, container_of(n, struct agt_session, note));
    }
  }
}

/* ---- the loop ----------------------------------------------------------- */

/* Flush what callbacks queued; close what finished. */
static void end_of_turn(struct agt_server *srv)
{
  uint64_t now = 0;
  struct conn *c, *next;

  for (c = srv->conns; c; c = next) {
    next = c->next;
    if (c->dirty)
      conn_flush(c);
    if (!c->dead && !c->lingering && srv->silent_ms) {
      /* A broker whose host vanished sends no FIN: ask, then give up, so
         its sessions and their device memory are freed in bounded time. */
      if (!now)
        now = agt_now_ms();
      if (now - c->last_rx_ms >= srv->silent_ms) {
        agt_warn("%s: nothing from the peer for %llu ms; closing (its "
                 "sessions are freed)", c->peer,
                 (unsigned long long)(now - c->last_rx_ms));
        c->dead = true;
      } else if (!c->ping_out && !c->handshaking &&
                 now - c->last_rx_ms >= srv->silent_ms / 3 &&
                 nghttp2_submit_ping(c->ngh, NGHTTP2_FLAG_NONE, NULL) == 0) {
        c->ping_out = true;
        conn_flush(c);
      }
    }
    if ((c->close_by || c->auth_by) && !c->dead) {
      if (!now)
        now = agt_now_ms();
      if (c->close_by && now >= c->close_by)
        c->dead = true;
      if (c->auth_by && now >= c->auth_by) {
        agt_warn("%s: no authenticated request within %u s; closing",
                 c->peer, AUTH_GRACE_MS / 1000);
        c->dead = true;
      }
    }
    if (c->dead)
      conn_close(c);
    else if (conn_pending(c))
      srv->tls_backlog = true;
  }
}

/*
 * --exit-idle: a machine rented by the hour (a Modal Sandbox) must not
 * outlive a broker that died without tearing it down.  Idle means no
 * connection at all and no session left; an unauthenticated connection
 * counts as busy only until its grace period closes it.
 */
static bool idle_expired(struct agt_server *srv)
{
  uint64_t now;

  if (!srv->exit_idle_ms)
    return false;
  if (srv->conns || srv->live_sessions) {
    srv->idle_since_ms = 0;
    return false;
  }
  now = agt_now_ms();
  if (!srv->idle_since_ms) {
    srv->idle_since_ms = now;
    return false;
  }
  if (now - srv->idle_since_ms < srv->exit_idle_ms)
    return false;
  agt_info("no broker connected for %llu s (--exit-idle): shutting down",
           (unsigned long long)((now - srv->idle_since_ms) / 1000));
  return true;
}

static void shutdown_all(struct agt_server *srv)
{
  uint64_t until;

  epoll_ctl(srv->epfd, EPOLL_CTL_DEL, srv->listen_ev.fd, NULL);
  close(srv->listen_ev.fd);
  srv->listen_ev.fd = -1;
  while (srv->conns)
    conn_close(srv->conns);
  /* Lanes are aborted; wait for the threads to drop their sessions. */
  until = agt_now_ms() + SHUTDOWN_WAIT_MS;
  drain_inbox(srv);
  while (srv->live_sessions && agt_now_ms() < until) {
    struct epoll_event e;

    epoll_wait(srv->epfd, &e, 1, 100);
    drain_inbox(srv);
  }
  if (srv->live_sessions)
    agt_warn("%u sessions still busy at exit", srv->live_sessions);
}

int agt_server_run(struct agt_server *srv)
{
  uint64_t spin_until = 0; /* poll, not sleep, until then (--spin-us) */

  for (;;) {
    struct epoll_event evs[64];
    bool backlog = srv->tls_backlog;
    int n = epoll_wait(srv->epfd, evs, 64,
                       backlog || (spin_until && agt_now_ns() < spin_until)
                           ? 0
                           : 1000);

    if (n > 0 && srv->spin_ns)
      spin_until = agt_now_ns() + srv->spin_ns;

    if (n < 0) {
      if (errno == EINTR)
        continue;
      agt_err("epoll_wait: %s", strerror(errno));
      return -errno;
    }
    for (int i = 0; i < n; i++) {
      struct ev *ev = evs[i].data.ptr;
      struct conn *c;

      switch (ev->kind) {
      case EV_LISTEN:
        accept_all(srv);
        break;
      case EV_SIGNAL: {
        struct signalfd_siginfo si;

        if (read(ev->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
          agt_info("signal %u: shutting down", si.ssi_signo);
          shutdown_all(srv);
          return 0;
        }
        break;
      }
      case EV_INBOX:
        drain_inbox(srv);
        break;
      case EV_CONN:
        c = container_of(ev, struct conn, ev);
        if (c->dead)
          break;
        if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
          conn_read(c);
        if (evs[i].events & EPOLLOUT)
          conn_mark(c);
        break;
      }
    }
    /* Input TLS decrypted and kept (a turn ended before it was read):
       no socket event will announce it. */
    srv->tls_backlog = false;
    for (struct conn *c = srv->conns; backlog && c; c = c->next)
      if (!c->dead && conn_pending(c))
        conn_read(c);
    end_of_turn(srv);
    if (idle_expired(srv)) {
      shutdown_all(srv);
      return 0;
    }
  }
}

/* ---- setup -------------------------------------------------------------- */

static int listen_on(struct agt_server *srv, const char *spec,
                     const char **why)
{
  char host[256], *port;
  struct addrinfo hints = {.ai_family = AF_UNSPEC,
                           .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
  struct addrinfo *res, *ai;
  struct sockaddr_storage sa;
  socklen_t salen = sizeof(sa);
  int fd = -1, one = 1, rc;

  if (snprintf(host, sizeof(host), "%s", spec) >= (int)sizeof(host)) {
    *why = "--listen value too long";
    return -EINVAL;
  }
  port = strrchr(host, ':');
  if (!port || port == host) {
    *why = "--listen must be HOST:PORT";
    return -EINVAL;
  }
  *port++ = 0;
  if (host[0] == '[') { /* [v6]:port */
    size_t n = strlen(host);

    if (n < 3 || host[n - 1] != ']') {
      *why = "--listen: bad [IPv6] address";
      return -EINVAL;
    }
    host[n - 1] = 0;
    memmove(host, host + 1, n - 1);
  }
  rc = getaddrinfo(host, port, &hints, &res);
  if (rc != 0) {
    *why = gai_strerror(rc);
    return -EINVAL;
  }
  rc = -EADDRNOTAVAIL;
  for (ai = res; ai; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                ai->ai_protocol);
    if (fd < 0)
      continue;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 128) == 0)
      break;
    rc = -errno;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) {
    *why = strerror(-rc);
    return rc;
  }
  if (getsockname(fd, (struct sockaddr *)&sa, &salen) == 0)
    srv->port = ntohs(sa.ss_family == AF_INET6
                          ? ((struct sockaddr_in6 *)&sa)->sin6_port
                          : ((struct sockaddr_in *)&sa)->sin_port);
  srv->listen_ev.kind = EV_LISTEN;
  srv->listen_ev.fd = fd;
  return 0;
}

static int add_ev(struct agt_server *srv, struct ev *ev)
{
  struct epoll_event e = {.events = EPOLLIN, .data.ptr = ev};

  return epoll_ctl(srv->epfd, EPOLL_CTL_ADD, ev->fd, &e) < 0 ? -errno : 0;
}

static int make_callbacks(struct agt_server *srv)
{
  nghttp2_session_callbacks *cb;

  if (nghttp2_session_callbacks_new(&cb) != 0)
    return -ENOMEM;
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
  nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
  agt_ng_set_read_length(cb, read_length_cb);
  nghttp2_session_callbacks_set_send_data_callback(cb, send_data_cb);
  srv->cbs = cb;
  if (nghttp2_option_new(&srv->opt) != 0)
    return -ENOMEM;
  nghttp2_option_set_no_auto_window_update(srv->opt, 1);
  /* Floods a peer could aim at the library's own bookkeeping: headers
     split into endless CONTINUATION frames, streams opened and reset
     (the 2023 "rapid reset"), SETTINGS or PINGs whose ACKs pile up. */
  nghttp2_option_set_max_continuations(srv->opt, AGT_MAX_CONTINUATIONS);
  nghttp2_option_set_stream_reset_rate_limit(srv->opt, AGT_RST_BURST,
                                             AGT_RST_RATE);
  nghttp2_option_set_max_outbound_ack(srv->opt, AGT_MAX_OUTBOUND_ACK);
  nghttp2_option_set_max_settings(srv->opt, AGT_MAX_SETTINGS);
  return 0;
}

int agt_server_new(const struct agt_server_config *cfg, struct agt_backend *be,
                   struct agt_server **out, const char **why)
{
  struct agt_server *srv = calloc(1, sizeof(*srv));
  sigset_t sigs;
  int rc;

  if (!srv) {
    SSL_CTX_free(cfg->tls);
    *why = "out of memory";
    return -ENOMEM;
  }
  srv->be = be;
  srv->nvml = cfg->nvml;
  srv->tls = cfg->tls;
  srv->quota = cfg->quota;
  srv->silent_ms = (uint64_t)cfg->idle_timeout_s * 1000u;
  srv->exit_idle_ms = (uint64_t)cfg->exit_idle_s * 1000u;
  srv->spin_ns = (uint64_t)cfg->spin_us * 1000u;
  srv->epfd = -1;
  srv->listen_ev.fd = srv->signal_ev.fd = -1;
  agt_hmap_init(&srv->sessions);
  be->ops->devinfo(be, &srv->devinfo);
  if (cfg->secret) {
    srv->secret_len = strlen("Bearer ") + strlen(cfg->secret);
    srv->secret = malloc(srv->secret_len + 1);
    if (!srv->secret) {
      rc = -ENOMEM;
      goto out_fail;
    }
    snprintf(srv->secret, srv->secret_len + 1, "Bearer %s", cfg->secret);
  }
  *why = "cannot set up the event loop";
  srv->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (srv->epfd < 0) {
    rc = -errno;
    goto out_fail;
  }
  rc = agt_inbox_init(&srv->inbox);
  if (rc < 0)
    goto out_fail;
  srv->inbox_ok = true;
  *why = "cannot start the session closers";
  rc = agt_closer_init(&srv->closer);
  if (rc < 0)
    goto out_fail;
  srv->closer_ok = true;
  *why = "cannot set up the event loop";
  srv->inbox_ev.kind = EV_INBOX;
  srv->inbox_ev.fd = srv->inbox.efd;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  srv->signal_ev.kind = EV_SIGNAL;
  srv->signal_ev.fd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
  if (srv->signal_ev.fd < 0) {
    rc = -errno;
    goto out_fail;
  }
  rc = make_callbacks(srv);
  if (rc < 0)
    goto out_fail;
  rc = agt_modcache_new(cfg->cache_dir, cfg->cache_max, &srv->cache);
  if (rc < 0) {
    *why = "cannot create the --cache-dir directory";
    goto out_fail;
  }
  rc = listen_on(srv, cfg->listen, why);
  if (rc < 0)
    goto out_fail;
  if (!srv->tls) {
    struct sockaddr_storage sa;
    socklen_t salen = sizeof(sa);

    if (getsockname(srv->listen_ev.fd, (struct sockaddr *)&sa, &salen) < 0 ||
        !is_loopback(&sa)) {
      *why = "only a loopback address may be served without TLS (h2c "
             "carries the secret in clear): give --tls-cert and --tls-key "
             "(--gen-cert DIR makes a pair)";
      rc = -EPERM;
      goto out_fail;
    }
  }
  *why = "cannot set up the event loop";
  if ((rc = add_ev(srv, &srv->listen_ev)) < 0 ||
      (rc = add_ev(srv, &srv->signal_ev)) < 0 ||
      (rc = add_ev(srv, &srv->inbox_ev)) < 0)
    goto out_fail;
  rc = agt_exec_new(cfg->exec_threads, cfg->spin_us, &srv->exec);
  if (rc < 0) {
    *why = "cannot start the execution threads";
    goto out_fail;
  }
  *out = srv;
  return 0;

out_fail:
  agt_server_free(srv);
  return rc;
}

uint16_t agt_server_port(const struct agt_server *srv)
{
  return srv->port;
}

void agt_server_free(struct agt_server *srv)
{
  if (!srv)
    return;
  while (srv->conns)
    conn_close(srv->conns);
  agt_exec_free(srv->exec);
  /* Sessions freed by the last threads; a lane's note taken here may end
     its session, whose teardown is then waited for in turn. */
  if (srv->closer_ok) {
    agt_closer_wait_idle(&srv->closer);
    while (srv->inbox_ok && agt_inbox_pending(&srv->inbox)) {
      drain_inbox(srv);
      agt_closer_wait_idle(&srv->closer);
    }
    agt_closer_release(&srv->closer);
  } else if (srv->inbox_ok) {
    drain_inbox(srv);
  }
  agt_hmap_release(&srv->sessions);
  agt_modcache_free(srv->cache);
  nghttp2_session_callbacks_del(srv->cbs);
  nghttp2_option_del(srv->opt);
  if (srv->listen_ev.fd >= 0)
    close(srv->listen_ev.fd);
  if (srv->signal_ev.fd >= 0)
    close(srv->signal_ev.fd);
  if (srv->inbox_ok)
    agt_inbox_release(&srv->inbox);
  if (srv->epfd >= 0)
    close(srv->epfd);
  free(srv->secret);
  SSL_CTX_free(srv->tls);
  free(srv);
}
