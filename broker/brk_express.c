/*
 * brk_express.c: a machine's express connection, the second HTTP/2
 * connection to its agent, for the lanes that move no bulk.
 *
 * brk_machine.c dials it when the machine becomes ready
 * (brk_express_start) and gives up one still on its way whenever it frees
 * the machine's connections (brk_express_abandon).  Once up it is m->h2x,
 * which brk_machine.c frees with the main connection and whose death is
 * the machine's (brk_machine_on_h2_dead).  The connection's options, the
 * socket tuning and the TLS handshake step are the main connection's own,
 * shared through brk_machine_int.h, so that both are made alike.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "brk.h"
#include "brk_http.h"
#include "brk_log.h"
#include "brk_machine_int.h"

/* ---- the express connection --------------------------------------------------- */

/*
 * A second HTTP/2 connection to the same agent, for the lanes that move
 * no bulk (brk_lane.c, "Express lanes").  On one TCP connection a small
 * reply waits behind every byte of another lane's copy already in the
 * socket buffers, which no frame scheduling can overtake.  It is dialled
 * once the machine is ready, where the agent agreed to TR_CAP_LANE_MOVE:
 * to the address we dialled, or through a Modal machine's tunnel once
 * more (libcurl dials it, as it did the main one: brk_modal_dial).  A
 * tls=on machine's express connection (Modal's always are) makes its own
 * handshake, verified as the main one was (the same pinned fingerprint or
 * CA): remote links are where a small reply behind a copy in the socket
 * buffers costs most.  Until it is up, or when it cannot come up, lanes
 * use the main connection; once up, its loss is the machine's.
 * TREMOTE_EXPRESS=0 turns it off (for measurements).
 */
static int express_wanted(const struct brk_machine *m)
{
  const char *e = getenv("TREMOTE_EXPRESS");

  return (m->caps & TR_CAP_LANE_MOVE) && (m->salen || m->modal) &&
         m->state == BRK_M_READY && !(e && strcmp(e, "0") == 0);
}

/* The express connection's greeting, /v1/status: the agent closes a
   connection that makes no authenticated request within seconds.  Its
   answer tells nothing we need. */
static int greet_data(struct brk_h2_stream *s, void *user, const uint8_t *d,
                      size_t len)
{
  (void)user;
  (void)d;
  brk_h2_stream_consume(s, len);
  return 0;
}

static void greet_end(struct brk_h2_stream *s, void *user)
{
  (void)user;
  brk_h2_stream_detach(s);
}

static void greet_close(struct brk_h2_stream *s, void *user, uint32_t code)
{
  (void)s;
  (void)user;
  (void)code; /* a failing connection says so itself */
}

static const struct brk_h2_stream_cbs greet_cbs = {
    .on_data = greet_data,
    .on_end = greet_end,
    .on_close = greet_close,
};

/* Give up an express connection on its way (there is none then: lanes
   keep to the main connection). */
void brk_express_abandon(struct brk_machine *m)
{
  brk_http_cancel(m->xreq);
  m->xreq = NULL;
  brk_op_cancel(m->xconn_op);
  m->xconn_op = NULL;
  brk_op_cancel(m->xtimer);
  m->xtimer = NULL;
  SSL_free(m->xssl);
  m->xssl = NULL;
  if (m->xsock >= 0)
    close(m->xsock);
  m->xsock = -1;
}

/* The express connection cannot come up: say why, once, and give it up. */
static void express_fail(struct brk_machine *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void express_fail(struct brk_machine *m, const char *fmt, ...)
{
  char why[600];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(why, sizeof(why), fmt, ap);
  va_end(ap);
  brk_warn("%s: no express connection (%s); all lanes share one", m->name,
           why);
  brk_express_abandon(m);
}

/* HTTP/2 over pipe (taken): the express connection is up. */
static void express_up(struct brk_machine *m, struct brk_pipe *pipe)
{
  struct brk_h2_stream *greet;
  struct brk_h2_opts o = brk_machine_h2_opts(m);
  int rc;

  brk_op_cancel(m->xtimer);
  m->xtimer = NULL;
  o.rcvbuf = 0; /* small records only: the kernel's default suits them */
  rc = brk_h2_new(&m->h2x, m->b->loop, pipe, &o, brk_machine_on_h2_dead, m);
  if (rc < 0) {
    m->h2x = NULL;
    express_fail(m, "HTTP/2 session: %s", strerror(-rc));
    return;
  }
  greet = brk_h2_post(m->h2x, "/v1/status", NULL, 0, &greet_cbs, m);
  if (greet)
    brk_h2_stream_end(greet);
  brk_dbg("%s: express connection up%s", m->name, m->tls_ctx ? " (TLS)" : "");
}

/* The main connection's dial and handshake are bounded by the start
   deadline; the express one's by this, so a peer that accepts and then
   says nothing does not hold a socket and a TLS object for good. */
static void on_express_deadline(struct brk_op *op, int res, void *arg)
{
  struct brk_machine *m = arg;

  (void)op;
  (void)res;
  m->xtimer = NULL;
  express_fail(m, "%s: no answer within %u s", m->address,
               BRK_EXPRESS_DIAL_MS / 1000);
}

static void express_tls_step(struct brk_machine *m);

static void on_express_tls_io(struct brk_op *op, int res, void *arg)
{
  struct brk_machine *m = arg;

  (void)op;
  m->xconn_op = NULL;
  if (res < 0) {
    express_fail(m, "poll: %s", strerror(-res));
    return;
  }
  express_tls_step(m);
}

/* The express connection's TLS handshake, one step per readiness. */
static void express_tls_step(struct brk_machine *m)
{
  struct brk_pipe pipe;
  char why[512];
  int rc = brk_machine_tls_advance(m, &m->xsock, &m->xssl, &m->xconn_op,
                                   on_express_tls_io, &pipe, why, sizeof(why));

  if (rc > 0)
    return;
  if (rc < 0) {
    express_fail(m, "%s: %s", m->address, why);
    return;
  }
  express_up(m, &pipe);
}

/* The express connection's socket is connected: TLS or h2c over it. */
static void express_connected(struct brk_machine *m)
{
  struct brk_pipe pipe;

  if (m->tls_ctx) {
    m->xssl = brk_tls_new(m->tls_ctx, m->spec, m->xsock);
    if (!m->xssl) {
      express_fail(m, "cannot start TLS");
      return;
    }
    express_tls_step(m);
    return;
  }
  brk_pipe_plain(&pipe, m->xsock);
  m->xsock = -1; /* the pipe has it now */
  express_up(m, &pipe);
}

static void on_express_connect(struct brk_op *op, int res, void *arg)
{
  struct brk_machine *m = arg;
  int err;

  (void)op;
  m->xconn_op = NULL;
  err = brk_machine_connect_error(m->xsock, res);
  if (err) {
    express_fail(m, "connect to %s: %s", m->address, strerror(err));
    return;
  }
  express_connected(m);
}

/* A Modal machine's tunnel, dialled once more (brk_modal_dial). */
static void on_express_dialled(int fd, const char *err, void *arg)
{
  struct brk_machine *m = arg;

  m->xreq = NULL;
  if (fd < 0) {
    express_fail(m, "connect to %s: %s", m->address, err);
    return;
  }
  m->xsock = fd;
  brk_machine_tune_socket(m, fd);
  express_connected(m);
}

/* Dial the express connection (the machine has just become ready). */
void brk_express_start(struct brk_machine *m)
{
  if (!express_wanted(m) || m->h2x || m->xsock >= 0 || m->xreq)
    return;
  m->xtimer = brk_loop_timeout(m->b->loop, BRK_EXPRESS_DIAL_MS,
                               on_express_deadline, m);
  if (!m->xtimer) {
    express_fail(m, "cannot arm its deadline");
    return;
  }
  if (!m->salen) {
    m->xreq = brk_modal_dial(m, on_express_dialled, m);
    if (!m->xreq)
      express_fail(m, "cannot dial the Modal tunnel again");
    return;
  }
  m->xsock = socket(m->sa.ss_family,
                    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (m->xsock < 0) {
    express_fail(m, "socket: %s", strerror(errno));
    return;
  }
  brk_machine_tune_socket(m, m->xsock);
  if (connect(m->xsock, (struct sockaddr *)&m->sa, m->salen) == 0) {
    express_connected(m);
    return;
  }
  if (errno != EINPROGRESS) {
    express_fail(m, "connect to %s: %s", m->address, strerror(errno));
    return;
  }
  m->xconn_op = brk_loop_poll(m->b->loop, m->xsock, POLLOUT,
                              on_express_connect, m);
  if (!m->xconn_op)
    express_fail(m, "cannot poll its socket");
}
