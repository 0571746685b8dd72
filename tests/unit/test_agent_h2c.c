/*
 * test_agent_h2c.c: the synchronous HTTP/2 test client (test_agent_h2c.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "test_agent_h2c.h"

uint64_t tc_now_ns(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void grow(uint8_t **buf, size_t *cap, size_t need)
{
  if (need <= *cap)
    return;
  while (*cap < need)
    *cap = *cap ? *cap * 2 : 4096;
  *buf = realloc(*buf, *cap);
  if (!*buf)
    abort();
}

/* ---- callbacks ---------------------------------------------------------- */

static ssize_t req_read(nghttp2_session *s, int32_t id, uint8_t *buf,
                        size_t len, uint32_t *flags, nghttp2_data_source *src,
                        void *ud)
{
  struct tc_stream *st = src->ptr;
  size_t n = st->req_len - st->req_off;

  if (n > len)
    n = len;
  if (n)
    memcpy(buf, st->req + st->req_off, n);
  st->req_off += n;
  st->sent += n;
  if (st->req_off == st->req_len) {
    st->req_off = st->req_len = 0;
    if (st->req_eof) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      return (ssize_t)n;
    }
    if (n == 0) {
      st->req_deferred = true;
      return NGHTTP2_ERR_DEFERRED;
    }
  }
  return (ssize_t)n;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *fr,
                     const uint8_t *name, size_t namelen, const uint8_t *value,
                     size_t valuelen, uint8_t flags, void *ud)
{
  struct tc_stream *st = nghttp2_session_get_stream_user_data(s,
                                                              fr->hd.stream_id);

  if (st && namelen == 7 && memcmp(name, ":status", 7) == 0)
    st->status = atoi((const char *)value);
  return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t id,
                   const uint8_t *data, size_t len, void *ud)
{
  struct tc_stream *st = nghttp2_session_get_stream_user_data(s, id);

  if (!st)
    return 0;
  /* Drop what was parsed already so a long stream does not pile up. */
  if (st->parsed > (1u << 20) && st->parsed == st->body_len) {
    st->parsed = st->body_len = 0;
  }
  grow(&st->body, &st->body_cap, st->body_len + len);
  memcpy(st->body + st->body_len, data, len);
  st->body_len += len;
  return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *fr, void *ud)
{
  struct tc_conn *c = ud;
  struct tc_stream *st;

  if (fr->hd.type == NGHTTP2_PING && (fr->hd.flags & NGHTTP2_FLAG_ACK)) {
    c->ping_acks++;
    c->ping_ack_ns = tc_now_ns();
  }
  if (fr->hd.type == NGHTTP2_GOAWAY)
    c->goaway = true;
  if ((fr->hd.type == NGHTTP2_DATA || fr->hd.type == NGHTTP2_HEADERS) &&
      (fr->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
    st = nghttp2_session_get_stream_user_data(s, fr->hd.stream_id);
    if (st)
      st->ended = true;
  }
  return 0;
}

static int on_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
  struct tc_stream *st = nghttp2_session_get_stream_user_data(s, id);

  if (st) {
    st->closed = true;
    st->rst_code = code;
  }
  return 0;
}

/* ---- connection --------------------------------------------------------- */

struct tc_framing tc_framing;
uint32_t tc_recv_frame_max;

static ssize_t read_length(nghttp2_session *s, uint8_t type, int32_t id,
                           int32_t conn_win, int32_t stream_win,
                           uint32_t max_frame, void *ud)
{
  ssize_t n = tc_framing.frame_max < max_frame ? tc_framing.frame_max
                                                : max_frame;

  (void)s, (void)type, (void)id, (void)ud;
  if (conn_win < n)
    n = conn_win;
  if (stream_win < n)
    n = stream_win;
  return n > 0 ? n : 1;
}

static ssize_t select_padding(nghttp2_session *s, const nghttp2_frame *fr,
                              size_t max_payload, void *ud)
{
  size_t want = fr->hd.length + tc_framing.pad;

  (void)s, (void)ud;
  if (fr->hd.type != NGHTTP2_DATA)
    return (ssize_t)fr->hd.length;
  return (ssize_t)(want < max_payload ? want : max_payload);
}

static int connect_with(struct tc_conn *c, uint16_t port, bool tls);

int tc_connect(struct tc_conn *c, uint16_t port)
{
  return connect_with(c, port, false);
}

int tc_connect_tls(struct tc_conn *c, uint16_t port)
{
  return connect_with(c, port, true);
}

/* The TLS handshake on c's blocking socket, then the socket non-blocking
   as the h2c one's calls are. */
static int tls_start(struct tc_conn *c)
{
  static const unsigned char alpn[] = "\x02h2";
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  const unsigned char *sel = NULL;
  unsigned sel_len = 0;

  if (!ctx)
    return -ENOMEM;
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1);
  /* As the agent and broker: a retried write may come from a new place. */
  SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  c->ssl = SSL_new(ctx);
  SSL_CTX_free(ctx); /* the SSL holds its own reference */
  if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1 || SSL_connect(c->ssl) != 1)
    return -EPROTO;
  SSL_get0_alpn_selected(c->ssl, &sel, &sel_len);
  if (sel_len != 2 || memcmp(sel, "h2", 2) != 0)
    return -EPROTO;
  return fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK) < 0
             ? -errno
             : 0;
}

static int connect_with(struct tc_conn *c, uint16_t port, bool tls)
{
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
  nghttp2_session_callbacks *cb;
  nghttp2_settings_entry set[] = {
    {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 64 << 20},
    {NGHTTP2_SETTINGS_MAX_FRAME_SIZE,
     tc_recv_frame_max ? tc_recv_frame_max : 1 << 20},
  };
  int one = 1;

  memset(c, 0, sizeof(*c));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c->fd < 0)
    return -errno;
  if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
    close(c->fd);
    return -errno;
  }
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (tls) {
    int rc = tls_start(c);

    if (rc < 0) {
      SSL_free(c->ssl);
      c->ssl = NULL;
      close(c->fd);
      return rc;
    }
  }
  nghttp2_session_callbacks_new(&cb);
  if (tc_framing.frame_max)
    nghttp2_session_callbacks_set_data_source_read_length_callback(
        cb, read_length);
  if (tc_framing.pad)
    nghttp2_session_callbacks_set_select_padding_callback(cb, select_padding);
  nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
  nghttp2_session_client_new(&c->ngh, cb, c);
  nghttp2_session_callbacks_del(cb);
  nghttp2_submit_settings(c->ngh, NGHTTP2_FLAG_NONE, set, 2);
  nghttp2_session_set_local_window_size(c->ngh, NGHTTP2_FLAG_NONE, 0,
                                        256 << 20);
  return tc_pump(c, 0);
}

static int free_stream(nghttp2_session *s, struct tc_stream *st)
{
  free(st->body);
  free(st->req);
  free(st);
  return 0;
}

/* Streams are freed at close of the connection: the tests look at them
   after nghttp2 has forgotten them. */
struct tc_all {
  struct tc_stream **v;
  size_t n, cap;
};
static struct tc_all all_streams;

void tc_close(struct tc_conn *c)
{
  for (size_t i = 0; i < all_streams.n;) {
    if (all_streams.v[i]->conn == c) {
      free_stream(c->ngh, all_streams.v[i]);
      all_streams.v[i] = all_streams.v[--all_streams.n];
    } else {
      i++;
    }
  }
  nghttp2_session_del(c->ngh);
  SSL_free(c->ssl);
  c->ssl = NULL;
  close(c->fd);
  c->fd = -1;
}

/*
 * SSL_write or SSL_read as send and recv answer: bytes, 0 at the peer's
 * close, or -1 with errno (EAGAIN: try again, the same bytes for a write;
 * EPROTO: the TLS stream is broken).
 */
static ssize_t tls_io(struct tc_conn *c, void *buf, size_t len, bool wr)
{
  int n, e;

  ERR_clear_error();
  n = wr ? SSL_write(c->ssl, buf, (int)len) : SSL_read(c->ssl, buf, (int)len);
  if (n > 0)
    return n;
  e = SSL_get_error(c->ssl, n);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
    errno = EAGAIN;
    return -1;
  }
  if (e == SSL_ERROR_ZERO_RETURN)
    return 0;
  errno = EPROTO;
  return -1;
}

static void flush(struct tc_conn *c)
{
  for (;;) {
    ssize_t w;

    if (!c->out_len) {
      ssize_t n = nghttp2_session_mem_send(c->ngh, &c->out);

      if (n <= 0)
        return;
      c->out_len = (size_t)n;
    }
    w = c->ssl ? tls_io(c, (void *)c->out, c->out_len, true)
               : send(c->fd, c->out, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      if (errno != EAGAIN)
        c->eof = true;
      return;
    }
    c->out += w;
    c->out_len -= (size_t)w;
  }
}

int tc_pump(struct tc_conn *c, int timeout_ms)
{
  struct pollfd p = {.fd = c->fd, .events = POLLIN};
  uint8_t buf[65536];

  if (c->eof)
    return -1;
  flush(c);
  if (c->out_len)
    p.events |= POLLOUT;
  if (poll(&p, 1, timeout_ms) < 0)
    return errno == EINTR ? 0 : -1;
  if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
    for (;;) {
      ssize_t n = c->ssl ? tls_io(c, buf, sizeof(buf), false)
                         : recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);

      if (n == 0) {
        c->eof = true;
        break;
      }
      if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
          c->eof = true;
        break;
      }
      if (nghttp2_session_mem_recv(c->ngh, buf, (size_t)n) < 0) {
        c->eof = true;
        break;
      }
    }
  }
  flush(c);
  return c->eof ? -1 : 0;
}

bool tc_wait(struct tc_conn *c, bool (*pred)(void *), void *arg,
             int timeout_ms)
{
  uint64_t until = tc_now_ns() + (uint64_t)timeout_ms * 1000000u;

  while (!pred(arg)) {
    uint64_t now = tc_now_ns();

    if (now >= until)
      return false;
    if (tc_pump(c, (int)((until - now) / 1000000u) + 1) < 0)
      return pred(arg);
  }
  return true;
}

static bool has_status(void *a) { return ((struct tc_stream *)a)->status != 0; }
static bool has_ended(void *a) { return ((struct tc_stream *)a)->ended; }
static bool has_closed(void *a) { return ((struct tc_stream *)a)->closed; }
static bool has_eof(void *a) { return ((struct tc_conn *)a)->eof; }

bool tc_wait_status(struct tc_stream *st)
{
  return tc_wait(st->conn, has_status, st, TC_TIMEOUT_MS);
}

bool tc_wait_ended(struct tc_stream *st)
{
  return tc_wait(st->conn, has_ended, st, TC_TIMEOUT_MS);
}

bool tc_wait_closed(struct tc_stream *st)
{
  return tc_wait(st->conn, has_closed, st, TC_TIMEOUT_MS);
}

bool tc_wait_eof(struct tc_conn *c)
{
  uint64_t until = tc_now_ns() + (uint64_t)TC_TIMEOUT_MS * 1000000u;

  while (!c->eof && tc_now_ns() < until)
    tc_pump(c, 100);
  return has_eof(c);
}

void tc_ping(struct tc_conn *c)
{
  nghttp2_submit_ping(c->ngh, NGHTTP2_FLAG_NONE, NULL);
  flush(c);
}

/* ---- streams ------------------------------------------------------------ */

struct tc_stream *tc_request(struct tc_conn *c, const char *path,
                             const char *secret, const char *const *hdrs)
{
  nghttp2_nv nv[16];
  char auth[600];
  size_t n = 0;
  nghttp2_data_provider prd;
  struct tc_stream *st = calloc(1, sizeof(*st));

#define NV(k, v)                                                               \
  nv[n++] = (nghttp2_nv){(uint8_t *)(k), (uint8_t *)(v), strlen(k),           \
                         strlen(v), NGHTTP2_NV_FLAG_NONE}
  NV(":method", "POST");
  NV(":scheme", "http");
  NV(":authority", "agent");
  NV(":path", path);
  if (secret) {
    snprintf(auth, sizeof(auth), "Bearer %s", secret);
    NV("authorization", auth);
  }
  for (size_t i = 0; hdrs && hdrs[i]; i += 2)
    NV(hdrs[i], hdrs[i + 1]);
#undef NV
  st->conn = c;
  st->next_id = 1;
  prd.source.ptr = st;
  prd.read_callback = req_read;
  st->id = nghttp2_submit_request(c->ngh, NULL, nv, n, &prd, st);
  if (st->id < 0) {
    free(st);
    return NULL;
  }
  if (all_streams.n == all_streams.cap) {
    all_streams.cap = all_streams.cap ? all_streams.cap * 2 : 16;
    all_streams.v = realloc(all_streams.v,
                            all_streams.cap * sizeof(*all_streams.v));
  }
  all_streams.v[all_streams.n++] = st;
  flush(c);
  return st;
}

static void kick(struct tc_stream *st)
{
  if (st->req_deferred && !st->closed) {
    st->req_deferred = false;
    nghttp2_session_resume_data(st->conn->ngh, st->id);
  }
  flush(st->conn);
}

void tc_send(struct tc_stream *st, const void *data, size_t len)
{
  grow(&st->req, &st->req_cap, st->req_len + len);
  memcpy(st->req + st->req_len, data, len);
  st->req_len += len;
  kick(st);
}

void tc_send_record(struct tc_stream *st, uint16_t opcode, uint16_t flags,
                    uint64_t request_id, const void *payload, size_t len)
{
  uint8_t hdr[TR_HDR_SIZE];
  struct tr_hdr h;

  tr_hdr_init(&h, opcode, flags, request_id, (uint32_t)len);
  tr_hdr_pack(&h, hdr);
  grow(&st->req, &st->req_cap, st->req_len + TR_HDR_SIZE + len);
  memcpy(st->req + st->req_len, hdr, TR_HDR_SIZE);
  if (len)
    memcpy(st->req + st->req_len + TR_HDR_SIZE, payload, len);
  st->req_len += TR_HDR_SIZE + len;
  kick(st);
}

void tc_end(struct tc_stream *st)
{
  st->req_eof = true;
  st->req_deferred = true; /* resume even if the provider was not deferred */
  kick(st);
}

void tc_reset(struct tc_stream *st)
{
  nghttp2_submit_rst_stream(st->conn->ngh, NGHTTP2_FLAG_NONE, st->id,
                            NGHTTP2_CANCEL);
  flush(st->conn);
}

bool tc_next_record(struct tc_stream *st, struct tr_hdr *h,
                    const uint8_t **payload)
{
  size_t left = st->body_len - st->parsed;

  if (left < TR_HDR_SIZE)
    return false;
  tr_hdr_unpack(st->body + st->parsed, h);
  if (left < TR_HDR_SIZE + (size_t)h->payload_len)
    return false;
  *payload = st->body + st->parsed + TR_HDR_SIZE;
  st->parsed += TR_HDR_SIZE + h->payload_len;
  return true;
}

uint64_t tc_post(struct tc_stream *lane, uint16_t opcode, const void *payload,
                 size_t len)
{
  uint64_t id = lane->next_id++;

  tc_send_record(lane, opcode, 0, id, payload, len);
  return id;
}

uint32_t tc_call(struct tc_stream *lane, uint16_t opcode, uint16_t flags,
                 const void *payload, size_t len, struct tc_result *res)
{
  struct tc_result local = {0};
  uint64_t id = lane->next_id++;
  uint64_t until = tc_now_ns() + (uint64_t)TC_TIMEOUT_MS * 1000000u;

  if (!res)
    res = &local;
  memset(res, 0, sizeof(*res));
  res->status = UINT32_MAX;
  tc_send_record(lane, opcode, flags | TR_F_WANT_REPLY, id, payload, len);
  for (;;) {
    const uint8_t *p;
    struct tr_hdr h;

    while (tc_next_record(lane, &h, &p)) {
      res->nrec++;
      if (h.request_id != id || !(h.flags & TR_F_REPLY) ||
          h.opcode != opcode) {
        res->status = UINT32_MAX - 1; /* a reply that is not ours */
        goto out;
      }
      res->data = realloc(res->data, res->len + h.payload_len + 1);
      if (!res->data)
        abort();
      memcpy(res->data + res->len, p, h.payload_len);
      res->len += h.payload_len;
      if (h.flags & TR_F_MORE) {
        res->nmore++;
        continue;
      }
      res->status = h.status;
      res->flags = h.flags;
      goto out;
    }
    if (lane->closed || tc_now_ns() >= until)
      goto out;
    if (tc_pump(lane->conn, 100) < 0)
      goto out;
  }
out:
  if (res == &local)
    free(local.data);
  return res->status;
}
