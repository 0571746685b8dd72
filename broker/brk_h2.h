/*
 * brk_h2.h: the broker's HTTP/2 client, one connection per machine
 * (PROTOCOL.md §3), on nghttp2, driven by the broker's event loop.
 *
 * The connection talks to a byte pipe (struct brk_pipe), not to a socket:
 * a small table of read/writev/close functions over a non-blocking
 * descriptor: the socket itself (brk_pipe_plain) or TLS over it
 * (brk_pipe_tls, brk_tls.c).  The loop waits for readiness with poll operations on
 * pipe->fd; all reads and writes are non-blocking calls through the pipe.
 *
 * Streams.  brk_h2_post() starts a POST whose request body is a byte queue
 * the owner appends to (brk_h2_stream_write); the body is sent as the
 * HTTP/2 flow-control windows allow, DATA frames written with writev()
 * straight from the queue (NGHTTP2_DATA_FLAG_NO_COPY).  An empty queue
 * defers the data provider; writing resumes it.  brk_h2_stream_end()
 * finishes the body once the queue has drained.
 *
 * Flow control of responses is manual (NGHTTP2_OPT_NO_AUTO_WINDOW_UPDATE):
 * the owner calls brk_h2_stream_consume() for the bytes it has delivered,
 * so a consumer that does not keep up closes the agent's window.  An owner
 * that cannot take a chunk of response data right now keeps it and returns
 * BRK_H2_PAUSE from on_data; the connection then stops reading input (all
 * streams) until brk_h2_resume().
 *
 * Liveness: when nothing has been received for ping_idle_ms a PING is
 * sent; no ACK within ping_timeout_ms, a socket error, EOF or GOAWAY make
 * the connection dead: every attached stream gets on_close with
 * BRK_H2_ERR_LOST, then the owner's on_dead runs (from a task, never from
 * inside nghttp2).  The owner frees the connection with brk_h2_free().
 *
 * Callbacks into the owner may call any brk_h2_* function except
 * brk_h2_free().
 */
#ifndef BRK_H2_H
#define BRK_H2_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

struct tr_h2share;

struct brk_loop;
struct brk_h2;
struct brk_h2_stream;

/* ---- byte pipe ---------------------------------------------------------- */

/*
 * A bidirectional non-blocking byte stream.  read and writev return the
 * byte count (read: 0 at EOF) or -errno (-EAGAIN: try after the fd polls
 * ready).  close releases everything, fd included.
 */
struct brk_pipe {
  int fd;
  int in_place; /* read() gives the peer's bytes as they are, so they may
                   be read straight into their destination (not under TLS) */
  int sticky; /* a writev() that returned -EAGAIN may have taken the bytes
                 all the same and must be given them again (TLS: OpenSSL
                 made a record of them), never other bytes */
  ssize_t (*read)(struct brk_pipe *p, void *buf, size_t len);
  ssize_t (*writev)(struct brk_pipe *p, const struct iovec *iov, int n);
  /* Input already taken off fd and not yet read (TLS decrypts a whole
     record): polling fd would not see it.  NULL: never. */
  int (*pending)(struct brk_pipe *p);
  void (*close)(struct brk_pipe *p);
  void *impl;
};

/* A pipe over a connected non-blocking TCP (or Unix) socket; takes fd. */
void brk_pipe_plain(struct brk_pipe *p, int fd);

/* ---- connection ----------------------------------------------------------- */

#define BRK_H2_PAUSE 1
#define BRK_H2_ERR_LOST 0x10000u /* on_close: the connection died */

struct brk_h2_opts {
  const char *authority; /* host:port for :authority */
  const char *secret;    /* hex; sent as "authorization: Bearer <secret>" */
  uint32_t stream_window;  /* initial stream window we grant */
  uint32_t conn_window;    /* connection window we grant (256 MiB) */
  uint32_t ping_idle_ms;   /* send PING after this long without input */
  uint32_t ping_timeout_ms; /* dead if the PING is not ACKed by then */
  int rcvbuf; /* the receive buffer the pipe's socket was given (loopback),
                 smaller while lanes share (h2share.h); 0: left alone */
  /* Whether lanes share, kept with the other connections to the same
     machine (it must outlive this one); NULL: this connection's own. */
  struct tr_h2share *share;
};

/* Called once when the connection dies; why is a static or short-lived
   string.  The owner should brk_h2_free() it (here or later). */
typedef void (*brk_h2_dead_fn)(struct brk_h2 *c, void *owner, const char *why);

/*
 * Start a client connection on an established pipe (taken over: closed by
 * brk_h2_free).  Sends the preface and SETTINGS right away.  Returns 0 or
 * -errno (then the pipe is closed).
 */
int brk_h2_new(struct brk_h2 **out, struct brk_loop *loop, struct brk_pipe *pipe,
               const struct brk_h2_opts *opts, brk_h2_dead_fn on_dead,
               void *owner);

/*
 * Tear the connection down: streams still attached get on_close with
 * BRK_H2_ERR_LOST (unless the connection had already died and told them),
 * the pipe is closed, everything is freed.  Not from inside a brk_h2
 * callback.
 */
void brk_h2_free(struct brk_h2 *c);

/* Nonzero once the connection is dead (no new streams). */
int brk_h2_dead(const struct brk_h2 *c);

/* Resume reading after an on_data returned BRK_H2_PAUSE (deferred). */
void brk_h2_resume(struct brk_h2 *c);

/* Bytes received and sent on the connection (body and framing). */
uint64_t brk_h2_bytes_in(const struct brk_h2 *c);
/* The round trip of the newest acknowledged PING, microseconds; 0 before
   the first (PINGs go out on idle connections only). */
uint64_t brk_h2_rtt_us(const struct brk_h2 *c);

/* ---- streams ---------------------------------------------------------------- */

struct brk_h2_stream_cbs {
  /* Response headers complete; status is :status. */
  void (*on_response)(struct brk_h2_stream *s, void *user, int status);
  /*
   * Response body bytes.  Return 0 when all were taken, or BRK_H2_PAUSE
   * when the owner kept (copied) what it could not deliver and wants the
   * connection to stop reading until brk_h2_resume().
   */
  int (*on_data)(struct brk_h2_stream *s, void *user, const uint8_t *data,
                 size_t len);
  /*
   * Optional: where on_data would copy the next response body bytes, and
   * how many it would copy there (*room); NULL if nowhere in particular.
   * The connection may then read them straight there and pass that very
   * memory to on_data, which must not copy bytes onto themselves.
   */
  uint8_t *(*recv_room)(struct brk_h2_stream *s, void *user, size_t *room);
  /* The peer ended the response (END_STREAM) while the stream lives on. */
  void (*on_end)(struct brk_h2_stream *s, void *user);
  /* The request body queue fell below the owner's low-water mark (see
     brk_h2_stream_set_lowat). */
  void (*on_writable)(struct brk_h2_stream *s, void *user);
  /* The stream is gone: error_code is 0 after a clean close, an HTTP/2
     error code, or BRK_H2_ERR_LOST.  s is invalid afterwards. */
  void (*on_close)(struct brk_h2_stream *s, void *user, uint32_t error_code);
};

struct brk_h2_hdr {
  const char *name, *value;
};

/*
 * Start POST path with the extra headers (authorization and the pseudo
 * headers are added here).  The request body is whatever the owner writes
 * until brk_h2_stream_end().  Returns the stream, or NULL (dead connection,
 * no memory, stream ids exhausted).
 */
struct brk_h2_stream *brk_h2_post(struct brk_h2 *c, const char *path,
                                  const struct brk_h2_hdr *hdrs, size_t nhdrs,
                                  const struct brk_h2_stream_cbs *cbs,
                                  void *user);

/* Queue body bytes (copied).  Returns 0, -ENOMEM, or -EPIPE once ended. */
int brk_h2_stream_write(struct brk_h2_stream *s, const struct iovec *iov,
                        int n);

/*
 * Queue len body bytes at data by reference (brk_bq_append_ref): data
 * must stay mapped until done(arg), called exactly once when the bytes
 * have been written to the pipe (or copied into the connection's pending
 * output after a short write) or when the stream is freed with them still
 * queued, which can be well after the owner detached.  Returns 0, -ENOMEM
 * or -EPIPE once ended; on failure done is not called.
 */
int brk_h2_stream_write_ref(struct brk_h2_stream *s, const void *data,
                            size_t len, void (*done)(void *arg), void *arg);

/* Body bytes queued and not yet written to the pipe. */
size_t brk_h2_stream_queued(const struct brk_h2_stream *s);

/* on_writable fires when the queue drops to lowat bytes or fewer after
   having been above it.  0 (the default) disables it. */
void brk_h2_stream_set_lowat(struct brk_h2_stream *s, size_t lowat);

/* End the request body after what is queued (END_STREAM). */
void brk_h2_stream_end(struct brk_h2_stream *s);

/* Abort the stream (RST_STREAM CANCEL); on_close follows later. */
void brk_h2_stream_reset(struct brk_h2_stream *s);

/*
 * The owner loses interest: no more callbacks; response data is consumed
 * and discarded; the stream is freed when HTTP/2 closes it.  Call after
 * brk_h2_stream_end() or brk_h2_stream_reset().
 */
void brk_h2_stream_detach(struct brk_h2_stream *s);

/* Return n delivered response bytes to the flow-control windows. */
void brk_h2_stream_consume(struct brk_h2_stream *s, size_t n);

/* The HTTP/2 stream id (for logs). */
int32_t brk_h2_stream_id(const struct brk_h2_stream *s);

#endif /* BRK_H2_H */
