/*
 * brk_h2.c: see brk_h2.h.
 *
 * Output.  nghttp2_session_send() hands us frames through two callbacks.
 * Control frames and frame headers are small and go through send_cb,
 * which appends them to the connection's pending output (c->out).  DATA
 * payloads go through send_data_cb, which writes the 9-byte frame header
 * and the payload with one writev() straight from the stream's body queue;
 * only if the socket takes part of it does the rest get copied into c->out.
 * Because frames must leave in order, send_data_cb first flushes c->out and
 * answers WOULDBLOCK if it cannot.
 *
 * Input.  Up to 64 KiB are read at a time and given to
 * nghttp2_session_mem_recv().  If a stream's owner pauses (its client's
 * reply ring is full), nghttp2 stops right after that DATA chunk and the
 * unprocessed rest of the buffer is kept until brk_h2_resume(); the socket
 * is not read meanwhile, so TCP and HTTP/2 flow control push back on the
 * agent.  The stream's owner keeps the rest of the chunk it could not take.
 *
 * Nothing here runs nghttp2_session_send() or _mem_recv() from inside an
 * nghttp2 callback: writes are batched by a task (flush_task) that runs
 * once per loop round.
 */
#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include "brk_buf.h"
#include "brk_h2.h"
#include "brk_log.h"
#include "brk_loop.h"
#include "h2share.h"
#include "h2track.h"

#define RBUF_SIZE (256u << 10)
/* DATA payload bytes worth a read straight into their destination, and
   how far a read into rbuf goes past the current frame (read_target). */
#define IN_PLACE_MIN (16u << 10)
#define IN_PLACE_HEAD (4u << 10)
#define OUT_HIGH (1u << 20) /* pending output that makes send_cb push back */
#define MAX_IOV 64
#define BRK_H2_FRAME (256u << 10) /* DATA frames both ways: see brk_h2_new */
/*
 * Turns.  A fast socket takes or gives a bulk copy as fast as we go, so
 * reading or writing until EAGAIN would hold the loop for a whole 64 MiB
 * copy, and every other lane's doorbell and reply would wait behind it.
 * So after each large frame read or written, the loop's other work goes
 * first if there is any (brk_loop_busy), and a turn ends after
 * TURN_MAX bytes regardless.  A small request or reply therefore waits
 * behind at most one large frame.  Frames under TR_H2_SMALL_FRAME never
 * wait, and large ones shrink while lanes share the connection
 * (h2share.h; the agent does the same with its frames).
 * A turn of writing ends in body_read_cb, by deferring the stream, not by
 * refusing the frame in send_data_cb: nghttp2 sends a refused frame first
 * when it resumes, so a small request queued meanwhile would wait behind
 * it; a deferred stream is resumed at the next flush and scheduled like
 * any other.
 */
#define TURN_MAX (1u << 20)

struct brk_h2_stream {
  struct brk_h2 *c;
  struct brk_h2_stream *next, *prev; /* c->streams */
  int32_t id;
  const struct brk_h2_stream_cbs *cbs;
  void *user; /* NULL once detached */
  struct brk_bq q;
  size_t lowat;
  int above_lowat;
  int end_req;  /* END_STREAM once q drains */
  int deferred; /* the data provider returned DEFERRED */
  int yielded;  /* ... because the turn ended ("Turns") */
  int status;
  int remote_ended;
};

struct brk_h2 {
  struct brk_loop *loop;
  struct brk_pipe pipe;
  nghttp2_session *ng;
  char *authority, *auth;
  struct brk_h2_opts opts;
  struct brk_h2_stream *streams;
  struct brk_bq out; /* pending output, in order */
  uint8_t *rbuf;
  uint8_t *in;           /* the input being fed: rbuf, or read in place */
  size_t in_off, in_len; /* unprocessed input kept while paused */
  struct tr_h2track fr;  /* framing of the input, for reads in place */
  int paused;
  int wblocked; /* the pipe answered EAGAIN during send */
  int yielded;  /* body_read_cb ended the turn ("Turns") */
  size_t turn_out; /* DATA bytes written in this flush */
  /* Frame sizes while lanes share (h2share.h): the machine's state,
     which its other connection also feeds, or own_share. */
  struct tr_h2share own_share, *share;
  struct tr_h2rcvbuf rcv;
  uint32_t tag; /* names our streams in *share */
  int dead, told;
  char why[160];
  struct brk_op *rd_op, *wr_op, *tick_op;
  struct brk_task flush_task, dead_task, resume_task, read_task;
  uint64_t last_rx_ms, ping_sent_ms;
  uint64_t ping_sent_us, rtt_us;
  int ping_out;
  uint64_t bytes_in, bytes_out;
  brk_h2_dead_fn on_dead;
  void *owner;
};

static void arm_read(struct brk_h2 *c);
static void tick_arm(struct brk_h2 *c);
static void on_writable(struct brk_op *op, int res, void *arg);

static uint64_t now_us(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t brk_h2_rtt_us(const struct brk_h2 *c)
{
  return c ? c->rtt_us : 0;
}

/* ---- plain pipe --------------------------------------------------------- */

static ssize_t plain_read(struct brk_pipe *p, void *buf, size_t len)
{
  ssize_t n;

  do {
    n = read(p->fd, buf, len);
  } while (n < 0 && errno == EINTR);
  return n < 0 ? -errno : n;
}

static ssize_t plain_writev(struct brk_pipe *p, const struct iovec *iov, int n)
{
  ssize_t w;

  do {
    w = writev(p->fd, iov, n);
  } while (w < 0 && errno == EINTR);
  return w < 0 ? -errno : w;
}

static void plain_close(struct brk_pipe *p)
{
  if (p->fd >= 0)
    close(p->fd);
  p->fd = -1;
}

void brk_pipe_plain(struct brk_pipe *p, int fd)
{
  memset(p, 0, sizeof(*p));
  p->fd = fd;
  p->in_place = 1;
  p->read = plain_read;
  p->writev = plain_writev;
  p->close = plain_close;
}

/* ---- helpers ---------------------------------------------------------------- */

static void schedule_flush(struct brk_h2 *c)
{
  if (!c->dead)
    brk_loop_defer(c->loop, &c->flush_task);
}

static void die(struct brk_h2 *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void die(struct brk_h2 *c, const char *fmt, ...)
{
  va_list ap;

  if (c->dead)
    return;
  c->dead = 1;
  va_start(ap, fmt);
  vsnprintf(c->why, sizeof(c->why), fmt, ap);
  va_end(ap);
  brk_op_cancel(c->rd_op);
  brk_op_cancel(c->wr_op);
  brk_op_cancel(c->tick_op);
  c->rd_op = c->wr_op = c->tick_op = NULL;
  brk_task_cancel(c->loop, &c->flush_task);
  brk_task_cancel(c->loop, &c->resume_task);
  brk_task_cancel(c->loop, &c->read_task);
  brk_loop_defer(c->loop, &c->dead_task);
}

/* Write as much of c->out as the pipe takes.  0 when empty, -EAGAIN, or
   -errno. */
static int write_out(struct brk_h2 *c)
{
  struct iovec iov[MAX_IOV];
  size_t bytes;
  ssize_t w;
  int n;

  while (c->out.len) {
    n = brk_bq_peekv(&c->out, iov, MAX_IOV, c->out.len, &bytes);
    w = c->pipe.writev(&c->pipe, iov, n);
    if (w < 0)
      return (int)w;
    brk_bq_drop(&c->out, (size_t)w);
    c->bytes_out += (uint64_t)w;
  }
  return 0;
}

static void stream_unlink(struct brk_h2_stream *s)
{
  struct brk_h2 *c = s->c;

  if (s->prev)
    s->prev->next = s->next;
  else if (c->streams == s)
    c->streams = s->next;
  if (s->next)
    s->next->prev = s->prev;
  s->next = s->prev = NULL;
}

static void stream_free(struct brk_h2_stream *s)
{
  stream_unlink(s);
  brk_bq_release(&s->q);
  free(s);
}

static void check_lowat(struct brk_h2_stream *s)
{
  if (s->lowat && s->above_lowat && s->q.len <= s->lowat) {
    s->above_lowat = 0;
    if (s->user && s->cbs->on_writable)
      s->cbs->on_writable(s, s->user);
  }
}

/* ---- nghttp2 callbacks ------------------------------------------------------- */

static ssize_t send_cb(nghttp2_session *ng, const uint8_t *data, size_t len,
                       int flags, void *user)
{
  struct brk_h2 *c = user;

  if (c->out.len >= OUT_HIGH)
    return NGHTTP2_ERR_WOULDBLOCK;
  if (brk_bq_append(&c->out, data, len) < 0)
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  return (ssize_t)len;
}

static int send_data_cb(nghttp2_session *ng, nghttp2_frame *frame,
                        const uint8_t *framehd, size_t length,
                        nghttp2_data_source *source, void *user)
{
  struct brk_h2 *c = user;
  struct brk_h2_stream *s = source->ptr;
  struct iovec iov[MAX_IOV + 1];
  size_t got, total;
  ssize_t w;
  int n, rc;

  if (c->out.len) {
    rc = write_out(c);
    if (rc == -EAGAIN) {
      c->wblocked = 1;
      return NGHTTP2_ERR_WOULDBLOCK;
    }
    if (rc < 0)
      return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  /* We never ask for padding, so the frame is header + payload. */
  if (frame->data.padlen > 0)
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  iov[0].iov_base = (void *)framehd;
  iov[0].iov_len = 9;
  n = brk_bq_peekv(&s->q, iov + 1, MAX_IOV, length, &got);
  if (got != length)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* cannot happen: read_cb
                                                     promised these bytes */
  total = 9 + length;
  w = c->pipe.writev(&c->pipe, iov, n + 1);
  /* A sticky pipe must be given these bytes again: they wait in c->out
     like any remainder.  Told "nothing went", nghttp2 could drop the
     frame (its stream reset meanwhile), and the next write, of other
     bytes, would be taken as the rest of it. */
  if (w == -EAGAIN && c->pipe.sticky)
    w = 0;
  if (w == -EAGAIN) {
    c->wblocked = 1;
    return NGHTTP2_ERR_WOULDBLOCK;
  }
  if (w < 0) {
    die(c, "write to agent failed: %s", strerror((int)-w));
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  c->bytes_out += (uint64_t)w;
  c->turn_out += length;
  tr_h2share_frame(c->share, tr_h2share_key(c->tag, frame->hd.stream_id),
                   length);
  if ((size_t)w < total) {
    /* The socket took part of the frame: keep the rest, in order. */
    size_t skip = (size_t)w;
    int i = 0;

    while (skip >= iov[i].iov_len) {
      skip -= iov[i].iov_len;
      i++;
    }
    iov[i].iov_base = (uint8_t *)iov[i].iov_base + skip;
    iov[i].iov_len -= skip;
    if (brk_bq_appendv(&c->out, iov + i, n + 1 - i) < 0)
      return NGHTTP2_ERR_CALLBACK_FAILURE;
    c->wblocked = 1;
  }
  brk_bq_drop(&s->q, length);
  check_lowat(s);
  return 0;
}

static ssize_t body_read_cb(nghttp2_session *ng, int32_t stream_id,
                            uint8_t *buf, size_t length, uint32_t *flags,
                            nghttp2_data_source *source, void *user)
{
  struct brk_h2 *c = user;
  struct brk_h2_stream *s = source->ptr;
  size_t n = s->q.len;

  if (n == 0) {
    if (s->end_req) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      return 0;
    }
    s->deferred = 1;
    return NGHTTP2_ERR_DEFERRED;
  }
  if (n > length)
    n = length;
  if (n >= TR_H2_SMALL_FRAME && c->turn_out &&
      (c->turn_out >= TURN_MAX || brk_loop_busy(c->loop))) {
    s->deferred = s->yielded = 1; /* the loop's other work first ("Turns") */
    c->yielded = 1;
    return NGHTTP2_ERR_DEFERRED;
  }
  if (n > 16384) {
    /* A frame must be gathered by send_data_cb in MAX_IOV pieces. */
    struct iovec iov[MAX_IOV];

    (void)brk_bq_peekv(&s->q, iov, MAX_IOV, n, &n);
  }
  *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
  if (s->end_req && n == s->q.len)
    *flags |= NGHTTP2_DATA_FLAG_EOF;
  return (ssize_t)n;
}

/*
 * DATA frames to the agent as large as the windows and the agent allow, up
 * to BRK_H2_FRAME: a 1 MiB upload in 4 frames, not 64 (the agent then
 * receives each straight into its destination), while a small request of
 * another lane waits behind at most one of them (see "Turns").
 */
static ssize_t read_length_cb(nghttp2_session *ng, uint8_t type,
                              int32_t stream_id, int32_t conn_win,
                              int32_t stream_win, uint32_t max_frame,
                              void *user)
{
  struct brk_h2 *c = user;

  (void)ng;
  (void)type;
  (void)stream_id;
  return tr_h2share_length(c->share,
                           max_frame < BRK_H2_FRAME ? max_frame : BRK_H2_FRAME,
                           conn_win, stream_win);
}

static int on_header_cb(nghttp2_session *ng, const nghttp2_frame *frame,
                        const uint8_t *name, size_t namelen,
                        const uint8_t *value, size_t valuelen, uint8_t flags,
                        void *user)
{
  struct brk_h2_stream *s;

  if (frame->hd.type != NGHTTP2_HEADERS ||
      frame->headers.cat != NGHTTP2_HCAT_RESPONSE)
    return 0;
  s = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
  if (!s || namelen != 7 || memcmp(name, ":status", 7) != 0)
    return 0;
  s->status = 0;
  for (size_t i = 0; i < valuelen && i < 3; i++)
    s->status = s->status * 10 + (value[i] - '0');
  return 0;
}

static void remote_end(struct brk_h2_stream *s)
{
  if (s->remote_ended)
    return;
  s->remote_ended = 1;
  if (s->user && s->cbs->on_end)
    s->cbs->on_end(s, s->user);
}

static int on_frame_recv_cb(nghttp2_session *ng, const nghttp2_frame *frame,
                            void *user)
{
  struct brk_h2 *c = user;
  struct brk_h2_stream *s = NULL;

  if (frame->hd.stream_id)
    s = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
  if (frame->hd.type == NGHTTP2_DATA)
    tr_h2share_frame(c->share, tr_h2share_key(c->tag, frame->hd.stream_id),
                     frame->hd.length);
  switch (frame->hd.type) {
  case NGHTTP2_HEADERS:
    if (!s)
      break;
    if (frame->headers.cat == NGHTTP2_HCAT_RESPONSE && s->status >= 200 &&
        s->user && s->cbs->on_response)
      s->cbs->on_response(s, s->user, s->status);
    if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
      remote_end(s);
    break;
  case NGHTTP2_DATA:
    if (s && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
      remote_end(s);
    break;
  case NGHTTP2_PING:
    if ((frame->hd.flags & NGHTTP2_FLAG_ACK) && c->ping_out) {
      c->ping_out = 0;
      c->rtt_us = now_us() - c->ping_sent_us;
    }
    break;
  case NGHTTP2_GOAWAY:
    die(c, "the agent sent GOAWAY (error %u)", frame->goaway.error_code);
    break;
  default:
    break;
  }
  return 0;
}

static int on_data_chunk_cb(nghttp2_session *ng, uint8_t flags,
                            int32_t stream_id, const uint8_t *data, size_t len,
                            void *user)
{
  struct brk_h2 *c = user;
  struct brk_h2_stream *s = nghttp2_session_get_stream_user_data(ng, stream_id);

  if (!s) {
    nghttp2_session_consume_connection(ng, len);
    return 0;
  }
  if (!s->user) {
    nghttp2_session_consume(ng, stream_id, len);
    return 0;
  }
  if (s->cbs->on_data(s, s->user, data, len) == BRK_H2_PAUSE) {
    c->paused = 1;
    return NGHTTP2_ERR_PAUSE;
  }
  return 0;
}

static int on_stream_close_cb(nghttp2_session *ng, int32_t stream_id,
                              uint32_t error_code, void *user)
{
  struct brk_h2_stream *s = nghttp2_session_get_stream_user_data(ng, stream_id);
  void *owner;

  if (!s)
    return 0;
  nghttp2_session_set_stream_user_data(ng, stream_id, NULL);
  owner = s->user;
  s->user = NULL;
  if (owner && s->cbs->on_close)
    s->cbs->on_close(s, owner, error_code);
  stream_free(s);
  return 0;
}

/* ---- I/O driven by the loop ---------------------------------------------------- */

static void flush(struct brk_h2 *c)
{
  int rc;

  c->turn_out = 0;
  if (c->yielded) { /* a new turn: what body_read_cb put off goes again */
    c->yielded = 0;
    for (struct brk_h2_stream *s = c->streams; s; s = s->next)
      if (s->yielded) {
        s->yielded = s->deferred = 0;
        (void)nghttp2_session_resume_data(c->ng, s->id);
      }
  }
  for (int round = 0; round < 64 && !c->dead; round++) {
    rc = write_out(c);
    if (rc == -EAGAIN)
      goto wait_out;
    if (rc < 0) {
      die(c, "write to agent failed: %s", strerror(-rc));
      return;
    }
    if (!nghttp2_session_want_write(c->ng))
      break;
    c->wblocked = 0;
    rc = nghttp2_session_send(c->ng);
    if (rc < 0) {
      die(c, "HTTP/2 send failed: %s", nghttp2_strerror(rc));
      return;
    }
    if (c->yielded && !c->wblocked) {
      /* Again after the loop's other work ("Turns"). */
      schedule_flush(c);
      return;
    }
    if (c->wblocked && !c->out.len)
      goto wait_out;
    if (!c->out.len)
      break;
  }
  if (c->dead)
    return;
  if (c->out.len || c->wblocked)
    goto wait_out;
  if (!nghttp2_session_want_read(c->ng) && !nghttp2_session_want_write(c->ng))
    die(c, "the HTTP/2 session ended");
  return;
wait_out:
  if (!c->wr_op && !c->dead) {
    c->wr_op = brk_loop_poll(c->loop, c->pipe.fd, POLLOUT, on_writable, c);
    if (!c->wr_op)
      die(c, "cannot poll the agent socket");
  }
}

static void flush_task(struct brk_task *t, void *arg)
{
  flush(arg);
}

static void on_writable(struct brk_op *op, int res, void *arg)
{
  struct brk_h2 *c = arg;

  c->wr_op = NULL;
  if (res < 0) {
    die(c, "poll on the agent socket failed: %s", strerror(-res));
    return;
  }
  flush(c);
}

/* Give input to nghttp2; stops at a pause.  Returns 0, or -1 if dead. */
static int feed(struct brk_h2 *c)
{
  while (c->in_off < c->in_len && !c->paused && !c->dead) {
    ssize_t n = nghttp2_session_mem_recv(c->ng, c->in + c->in_off,
                                         c->in_len - c->in_off);
    if (n < 0) {
      die(c, "bad HTTP/2 input from the agent: %s", nghttp2_strerror((int)n));
      return -1;
    }
    tr_h2track_feed(&c->fr, c->in + c->in_off, (size_t)n);
    c->in_off += (size_t)n;
  }
  if (c->in_off == c->in_len)
    c->in_off = c->in_len = 0;
  else if (c->in != c->rbuf) {
    /* Paused inside bytes read in place: keep the rest in our own buffer
       (the owner's memory may change before we resume). */
    memmove(c->rbuf, c->in + c->in_off, c->in_len - c->in_off);
    c->in_len -= c->in_off;
    c->in_off = 0;
    c->in = c->rbuf;
  }
  return c->dead ? -1 : 0;
}

/*
 * Where to read next: straight into the memory the stream's owner will
 * copy the next DATA payload bytes to (recv_room), when at least
 * IN_PLACE_MIN of them come next; else our buffer, only up to a little
 * past the current frame, so that the next large payload can go in place.
 * At most RBUF_SIZE, so that a pause can always keep the rest in rbuf.
 */
static uint8_t *read_target(struct brk_h2 *c, size_t *len)
{
  struct brk_h2_stream *s;
  size_t data, room;
  int32_t id;
  uint8_t *p;

  *len = RBUF_SIZE;
  if (!c->pipe.in_place)
    return c->rbuf;
  *len = tr_h2track_next_read(&c->fr, IN_PLACE_HEAD, RBUF_SIZE);
  data = tr_h2track_data(&c->fr, &id);
  if (data < IN_PLACE_MIN)
    return c->rbuf;
  s = nghttp2_session_get_stream_user_data(c->ng, id);
  if (!s || !s->user || !s->cbs->recv_room)
    return c->rbuf;
  p = s->cbs->recv_room(s, s->user, &room);
  if (!p || room < IN_PLACE_MIN)
    return c->rbuf;
  *len = data < room ? data : room;
  if (*len > RBUF_SIZE)
    *len = RBUF_SIZE;
  return p;
}

static void on_readable(struct brk_op *op, int res, void *arg)
{
  struct brk_h2 *c = arg;
  size_t got = 0;
  int rcvbuf;
  ssize_t n;

  c->rd_op = NULL;
  if (res < 0) {
    die(c, "poll on the agent socket failed: %s", strerror(-res));
    return;
  }
  /* A bounded number of reads and bytes per wake-up keeps one busy machine
     from starving everything else on the loop ("Turns"). */
  for (int i = 0; i < 16 && got < TURN_MAX && !c->paused && !c->dead; i++) {
    if (got >= TR_H2_SMALL_FRAME && brk_loop_busy(c->loop))
      break;
    size_t want;
    uint8_t *at = read_target(c, &want);

    n = c->pipe.read(&c->pipe, at, want);
    if (n == -EAGAIN)
      break;
    if (n == 0) {
      die(c, "the agent closed the connection");
      return;
    }
    if (n < 0) {
      die(c, "read from agent failed: %s", strerror((int)-n));
      return;
    }
    got += (size_t)n;
    c->bytes_in += (uint64_t)n;
    c->last_rx_ms = brk_now_ms();
    c->in = at;
    c->in_off = 0;
    c->in_len = (size_t)n;
    if (feed(c) < 0)
      return;
  }
  if ((rcvbuf = tr_h2share_rcvbuf(c->share, &c->rcv)) != 0)
    setsockopt(c->pipe.fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  if (!c->paused)
    arm_read(c);
  schedule_flush(c);
}

/* Input the pipe holds already: read it next turn, not on a poll. */
static void read_task(struct brk_task *t, void *arg)
{
  struct brk_h2 *c = arg;

  (void)t;
  if (!c->dead && !c->paused && !c->rd_op)
    on_readable(NULL, 0, c);
}

static void arm_read(struct brk_h2 *c)
{
  if (c->rd_op || c->dead || c->paused)
    return;
  if (c->pipe.pending && c->pipe.pending(&c->pipe)) {
    brk_loop_defer(c->loop, &c->read_task);
    return;
  }
  c->rd_op = brk_loop_poll(c->loop, c->pipe.fd, POLLIN, on_readable, c);
  if (!c->rd_op)
    die(c, "cannot poll the agent socket");
}

static void resume_task(struct brk_task *t, void *arg)
{
  struct brk_h2 *c = arg;

  if (c->dead || !c->paused)
    return;
  c->paused = 0;
  c->last_rx_ms = brk_now_ms(); /* we, not the agent, were silent */
  if (feed(c) < 0)
    return;
  if (!c->paused)
    arm_read(c);
  schedule_flush(c);
}

void brk_h2_resume(struct brk_h2 *c)
{
  if (!c->dead && c->paused)
    brk_loop_defer(c->loop, &c->resume_task);
}

static void on_tick(struct brk_op *op, int res, void *arg)
{
  struct brk_h2 *c = arg;
  uint64_t now = brk_now_ms();

  c->tick_op = NULL;
  if (c->dead)
    return;
  if (c->paused) {
    /* Input is held back by us; silence proves nothing. */
    c->last_rx_ms = now;
    c->ping_out = 0;
  } else if (c->ping_out) {
    if (now - c->ping_sent_ms >= c->opts.ping_timeout_ms) {
      die(c, "no PING acknowledgement from the agent in %u ms",
          c->opts.ping_timeout_ms);
      return;
    }
  } else if (now - c->last_rx_ms >= c->opts.ping_idle_ms) {
    if (nghttp2_submit_ping(c->ng, NGHTTP2_FLAG_NONE, NULL) == 0) {
      c->ping_out = 1;
      c->ping_sent_ms = now;
      c->ping_sent_us = now_us();
      schedule_flush(c);
    }
  }
  tick_arm(c);
}

static void tick_arm(struct brk_h2 *c)
{
  uint64_t ms = c->opts.ping_idle_ms / 4;

  if (c->opts.ping_timeout_ms / 4 < ms)
    ms = c->opts.ping_timeout_ms / 4;
  if (ms < 50)
    ms = 50;
  if (ms > 1000)
    ms = 1000;
  c->tick_op = brk_loop_timeout(c->loop, ms, on_tick, c);
  if (!c->tick_op)
    die(c, "cannot arm the liveness timer");
}

static void dead_task(struct brk_task *t, void *arg)
{
  struct brk_h2 *c = arg;
  struct brk_h2_stream *s, *next;

  if (c->told)
    return;
  c->told = 1;
  /* Owners hear about their streams first, then about the connection. */
  for (s = c->streams; s; s = next) {
    void *owner = s->user;

    next = s->next;
    s->user = NULL;
    if (owner && s->cbs->on_close)
      s->cbs->on_close(s, owner, BRK_H2_ERR_LOST);
  }
  if (c->on_dead)
    c->on_dead(c, c->owner, c->why);
}

/* ---- public --------------------------------------------------------------------- */

int brk_h2_new(struct brk_h2 **out, struct brk_loop *loop, struct brk_pipe *pipe,
               const struct brk_h2_opts *opts, brk_h2_dead_fn on_dead,
               void *owner)
{
  nghttp2_session_callbacks *cbs = NULL;
  nghttp2_option *opt = NULL;
  struct brk_h2 *c;
  nghttp2_settings_entry iv[3];
  int rc = -ENOMEM;

  c = calloc(1, sizeof(*c));
  if (!c)
    goto out_pipe;
  c->loop = loop;
  c->pipe = *pipe;
  c->opts = *opts;
  c->on_dead = on_dead;
  c->owner = owner;
  brk_bq_init(&c->out);
  brk_task_init(&c->flush_task, flush_task, c);
  brk_task_init(&c->dead_task, dead_task, c);
  brk_task_init(&c->resume_task, resume_task, c);
  brk_task_init(&c->read_task, read_task, c);
  c->rbuf = malloc(RBUF_SIZE);
  c->in = c->rbuf;
  tr_h2track_init(&c->fr, 0); /* a client's input has no preface */
  c->share = opts->share ? opts->share : &c->own_share;
  c->tag = tr_h2share_tag();
  tr_h2share_rcvbuf_init(&c->rcv, opts->rcvbuf);
  c->authority = strdup(opts->authority);
  if (asprintf(&c->auth, "Bearer %s", opts->secret) < 0)
    c->auth = NULL;
  if (!c->rbuf || !c->authority || !c->auth)
    goto out_free;
  c->opts.authority = c->authority;
  c->opts.secret = NULL;

  if (nghttp2_session_callbacks_new(&cbs) != 0)
    goto out_free;
  nghttp2_session_callbacks_set_send_callback(cbs, send_cb);
  nghttp2_session_callbacks_set_send_data_callback(cbs, send_data_cb);
  nghttp2_session_callbacks_set_on_header_callback(cbs, on_header_cb);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv_cb);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs,
                                                            on_data_chunk_cb);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs,
                                                         on_stream_close_cb);
  nghttp2_session_callbacks_set_data_source_read_length_callback(
      cbs, read_length_cb);
  if (nghttp2_option_new(&opt) != 0)
    goto out_cbs;
  nghttp2_option_set_no_auto_window_update(opt, 1);
  /* An agent is trusted less than the broker: the same flood limits as
     the agent's (gpu-agent/agent.h). */
  nghttp2_option_set_max_continuations(opt, 8);
  nghttp2_option_set_max_outbound_ack(opt, 1000);
  nghttp2_option_set_max_settings(opt, 32);
  rc = nghttp2_session_client_new2(&c->ng, cbs, c, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
  if (rc != 0) {
    rc = -ENOMEM;
    goto out_free;
  }
  iv[0].settings_id = NGHTTP2_SETTINGS_ENABLE_PUSH;
  iv[0].value = 0;
  iv[1].settings_id = NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE;
  iv[1].value = opts->stream_window;
  /* DATA frames of up to BRK_H2_FRAME: few frames per 1 MiB reply, yet a
     small reply of another lane waits behind at most one of them. */
  iv[2].settings_id = NGHTTP2_SETTINGS_MAX_FRAME_SIZE;
  iv[2].value = BRK_H2_FRAME;
  rc = nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, iv, 3);
  if (rc == 0)
    rc = nghttp2_session_set_local_window_size(c->ng, NGHTTP2_FLAG_NONE, 0,
                                               (int32_t)opts->conn_window);
  if (rc != 0) {
    rc = -EINVAL;
    goto out_free;
  }
  c->last_rx_ms = brk_now_ms();
  arm_read(c);
  tick_arm(c);
  if (c->dead) {
    rc = -ENOMEM;
    goto out_free;
  }
  schedule_flush(c);
  *out = c;
  return 0;

out_cbs:
  nghttp2_session_callbacks_del(cbs);
out_free:
  brk_op_cancel(c->rd_op);
  brk_op_cancel(c->tick_op);
  brk_task_cancel(loop, &c->flush_task);
  brk_task_cancel(loop, &c->dead_task);
  if (c->ng)
    nghttp2_session_del(c->ng);
  free(c->rbuf);
  free(c->authority);
  free(c->auth);
  free(c);
out_pipe:
  pipe->close(pipe);
  return rc;
}

void brk_h2_free(struct brk_h2 *c)
{
  struct brk_h2_stream *s, *next;

  if (!c)
    return;
  if (!c->dead)
    die(c, "connection closed by the broker");
  brk_task_cancel(c->loop, &c->dead_task);
  for (s = c->streams; s; s = next) {
    void *owner = s->user;

    next = s->next;
    s->user = NULL;
    if (owner && !c->told && s->cbs->on_close)
      s->cbs->on_close(s, owner, BRK_H2_ERR_LOST);
  }
  /* nghttp2_session_del() does not call on_stream_close; free ours. */
  while (c->streams)
    stream_free(c->streams);
  nghttp2_session_del(c->ng);
  c->pipe.close(&c->pipe);
  brk_bq_release(&c->out);
  free(c->rbuf);
  free(c->authority);
  free(c->auth);
  free(c);
}

int brk_h2_dead(const struct brk_h2 *c)
{
  return c->dead;
}

uint64_t brk_h2_bytes_in(const struct brk_h2 *c)
{
  return c->bytes_in;
}

static nghttp2_nv make_nv(const char *name, const char *value)
{
  nghttp2_nv nv = {(uint8_t *)name, (uint8_t *)value, strlen(name),
                   strlen(value), NGHTTP2_NV_FLAG_NONE};
  return nv;
}

struct brk_h2_stream *brk_h2_post(struct brk_h2 *c, const char *path,
                                  const struct brk_h2_hdr *hdrs, size_t nhdrs,
                                  const struct brk_h2_stream_cbs *cbs,
                                  void *user)
{
  nghttp2_nv nva[16];
  nghttp2_data_provider prd;
  struct brk_h2_stream *s;
  size_t n = 0;
  int32_t id;

  if (c->dead || nhdrs > 10)
    return NULL;
  s = calloc(1, sizeof(*s));
  if (!s)
    return NULL;
  s->c = c;
  s->cbs = cbs;
  s->user = user;
  brk_bq_init(&s->q);
  nva[n++] = make_nv(":method", "POST");
  nva[n++] = make_nv(":scheme", "http");
  nva[n++] = make_nv(":authority", c->authority);
  nva[n++] = make_nv(":path", path);
  nva[n++] = make_nv("authorization", c->auth);
  for (size_t i = 0; i < nhdrs; i++)
    nva[n++] = make_nv(hdrs[i].name, hdrs[i].value);
  prd.source.ptr = s;
  prd.read_callback = body_read_cb;
  id = nghttp2_submit_request(c->ng, NULL, nva, n, &prd, s);
  if (id < 0) {
    free(s);
    return NULL;
  }
  s->id = id;
  s->next = c->streams;
  if (c->streams)
    c->streams->prev = s;
  c->streams = s;
  schedule_flush(c);
  return s;
}

static void stream_kick(struct brk_h2_stream *s)
{
  struct brk_h2 *c = s->c;

  if (s->deferred) {
    s->deferred = 0;
    (void)nghttp2_session_resume_data(c->ng, s->id);
  }
  schedule_flush(c);
}

int brk_h2_stream_write(struct brk_h2_stream *s, const struct iovec *iov, int n)
{
  int rc;

  if (s->end_req || s->c->dead)
    return -EPIPE;
  rc = brk_bq_appendv(&s->q, iov, n);
  if (rc < 0)
    return rc;
  if (s->lowat && s->q.len > s->lowat)
    s->above_lowat = 1;
  stream_kick(s);
  return 0;
}

int brk_h2_stream_write_ref(struct brk_h2_stream *s, const void *data,
                            size_t len, void (*done)(void *arg), void *arg)
{
  int rc;

  if (s->end_req || s->c->dead)
    return -EPIPE;
  rc = brk_bq_append_ref(&s->q, data, len, done, arg);
  if (rc < 0)
    return rc;
  if (s->lowat && s->q.len > s->lowat)
    s->above_lowat = 1;
  stream_kick(s);
  return 0;
}

size_t brk_h2_stream_queued(const struct brk_h2_stream *s)
{
  return s->q.len;
}

void brk_h2_stream_set_lowat(struct brk_h2_stream *s, size_t lowat)
{
  s->lowat = lowat;
}

void brk_h2_stream_end(struct brk_h2_stream *s)
{
  if (s->end_req)
    return;
  s->end_req = 1;
  if (!s->c->dead)
    stream_kick(s);
}

void brk_h2_stream_reset(struct brk_h2_stream *s)
{
  struct brk_h2 *c = s->c;

  /* The queue stays: a DATA frame nghttp2 already prepared from it may
     still be written before the RST_STREAM. */
  s->end_req = 1;
  if (c->dead)
    return;
  (void)nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, s->id,
                                  NGHTTP2_CANCEL);
  schedule_flush(c);
}

void brk_h2_stream_detach(struct brk_h2_stream *s)
{
  s->user = NULL;
}

void brk_h2_stream_consume(struct brk_h2_stream *s, size_t n)
{
  struct brk_h2 *c = s->c;

  if (c->dead || !n)
    return;
  (void)nghttp2_session_consume(c->ng, s->id, n);
  schedule_flush(c);
}

int32_t brk_h2_stream_id(const struct brk_h2_stream *s)
{
  return s->id;
}
