/*
 * brk_machine.c: the machine registry and the LOCAL provider.
 *
 * A LOCAL machine is an agent process this broker starts on this host:
 *
 *   spawn   tremote-gpu-agent --listen 127.0.0.1:0 --secret-fd 3
 *           --ready-fd 4 --backend B [--emu-mem S]
 *           fd 3: a pipe holding the machine's secret (64 hex digits, \n)
 *           fd 4: a pipe on which the agent writes the line naming the
 *                 port it listens on ("127.0.0.1:PORT\n" or "PORT\n")
 *   connect TCP to 127.0.0.1:PORT, TCP_NODELAY, HTTP/2
 *   hello   POST /v1/hello; the reply names the device
 *   ready
 *
 * The whole sequence has one deadline (start_timeout_ms, 30 s), with a
 * progress line in the log every 5 s.  The agent is watched through a
 * pidfd: when it dies, or its connection dies (socket error, PING
 * unanswered), the machine is lost: every session on it is broken (their
 * outstanding requests answered with TR_ST_MACHINE_LOST), the agent is
 * killed if it still runs, and a new one is started after a back-off of
 * 1 s, 2 s, 4 s ... up to 30 s (reset once a machine stayed up a minute).
 * A start that fails is retried the same way, except when the failure
 * cannot be cured by retrying (version mismatch, authentication).
 *
 * A STATIC machine is an agent someone else runs (tremote-gpu-agent
 * --listen ADDR:PORT --secret-file F), named in the machines file
 * (brk_mfile.c) with its address and secret: the same sequence from
 * connect on, under the same deadline; when it is lost or cannot be
 * reached the broker connects again after the same back-off, and nothing
 * is killed.
 *
 * Indices: the --local machines first (local-0, local-1 ...), then the
 * machines file's in file order.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <openssl/ssl.h>

#include "brk.h"
#include "brk_log.h"
#include "brk_machine_int.h"
#include "h2share.h"

#define PROGRESS_MS 5000u
#define BACKOFF_MIN_MS 1000u
#define BACKOFF_MAX_MS 30000u
#define STABLE_MS 60000u
#define HELLO_BODY_MAX (64u << 10)

static void spawn(struct brk_machine *m);
static void machine_start(struct brk_machine *m);

/* An agent someone else runs (STATIC, MODAL): we connect, never spawn. */
static int is_static(const struct brk_machine *m)
{
  return m->spec && (m->spec->provider == BRK_P_STATIC ||
                     m->spec->provider == BRK_P_MODAL);
}
static void hello_task(struct brk_task *t, void *arg);
static void machine_lost(struct brk_machine *m, const char *why);
static void start_failed(struct brk_machine *m, int permanent, const char *fmt,
                         ...) __attribute__((format(printf, 3, 4)));

const char *brk_mstate_name(enum brk_mstate s)
{
  switch (s) {
  case BRK_M_REQUESTED: return "requested";
  case BRK_M_STARTING: return "starting";
  case BRK_M_READY: return "ready";
  case BRK_M_LOST: return "lost";
  case BRK_M_FAILED: return "failed";
  case BRK_M_STOPPED: return "stopped";
  }
  return "unknown";
}

static struct brk_machine *machine_new(struct brk *b)
{
  struct brk_machine *m = calloc(1, sizeof(*m));

  if (!m)
    return NULL;
  m->b = b;
  m->index = b->nmachines;
  m->state = BRK_M_STOPPED;
  m->pidfd = m->rdy_fd = m->sock = m->xsock = -1;
  m->backoff_ms = BACKOFF_MIN_MS;
  m->util_gpu = m->util_mem = m->temp_c = m->power_mw = -1;
  brk_bq_init(&m->hello_body);
  brk_task_init(&m->hello_task, hello_task, m);
  b->machines[b->nmachines++] = m;
  return m;
}

struct brk_machine *brk_machine_by_name(struct brk *b, const char *name)
{
  for (unsigned i = 0; i < b->nmachines; i++)
    if (!b->machines[i]->removed && strcmp(b->machines[i]->name, name) == 0)
      return b->machines[i];
  return NULL;
}

int brk_machine_add(struct brk *b, const struct brk_mspec *sp,
                    enum brk_origin origin, char *why, size_t cap)
{
  struct brk_machine *m;

  if (brk_machine_by_name(b, sp->name)) {
    snprintf(why, cap, "a machine named %s exists already", sp->name);
    return -1;
  }
  if (b->nmachines >= BRK_MAX_MACHINES) {
    snprintf(why, cap, "all %u machine indices of this broker's life are "
                       "taken (removed machines keep theirs until it "
                       "restarts)", BRK_MAX_MACHINES);
    return -1;
  }
  if (sp->provider == BRK_P_LOCAL && !b->cfg.agent_path) {
    snprintf(why, cap, "a LOCAL machine needs the agent binary, which was "
                       "not found when the broker started (--agent PATH)");
    return -1;
  }
  m = machine_new(b);
  if (!m) {
    snprintf(why, cap, "out of memory");
    return -1;
  }
  m->own_spec = *sp;
  m->spec = &m->own_spec;
  m->origin = origin;
  snprintf(m->name, sizeof(m->name), "%s", sp->name);
  m->provider = sp->provider == BRK_P_STATIC  ? "static"
                : sp->provider == BRK_P_MODAL ? "modal"
                                              : "local";
  if (sp->provider == BRK_P_MODAL &&
      brk_modal_machine_init(m, why, cap) < 0) {
    m->removed = 1;
    return -1;
  }
  if (sp->tls == 1) {
    m->tls_ctx = brk_tls_ctx(m->spec, why, cap);
    if (!m->tls_ctx) {
      m->removed = 1; /* the slot stays; nothing else was made */
      return -1;
    }
  }
  if (b->machines_started)
    machine_start(m);
  return (int)m->index;
}

int brk_machines_init(struct brk *b)
{
  char why[512];

  if ((unsigned)b->cfg.nlocal + b->cfg.nspecs > BRK_MAX_MACHINES)
    return -E2BIG;
  for (int i = 0; i < b->cfg.nlocal; i++) {
    struct brk_machine *m = machine_new(b);

    if (!m)
      return -ENOMEM;
    snprintf(m->name, sizeof(m->name), "local-%d", i);
    m->provider = "local";
    m->origin = BRK_FROM_ARGS;
  }
  for (unsigned i = 0; i < b->cfg.nspecs; i++)
    if (brk_machine_add(b, &b->cfg.specs[i], BRK_FROM_FILE, why,
                        sizeof(why)) < 0) {
      brk_err("%s: %s", b->cfg.specs[i].name, why);
      return -EINVAL;
    }
  return 0;
}

int brk_machines_starting(const struct brk *b, const struct brk_client *c)
{
  /* A Modal machine waiting out a Retry-After (no capacity) or a back-off
     is not about to be ready: programs do not wait for it.  One woken
     from idle is (docs/OPERATIONS.md), though not in its first start. */
  for (unsigned i = 0; i < b->nmachines; i++) {
    const struct brk_machine *m = b->machines[i];

    if (m->removed ||
        (m->state != BRK_M_STARTING && m->state != BRK_M_REQUESTED))
      continue;
    if (m->modal ? !brk_modal_busy(m) : m->first_done)
      continue;
    if (!c || brk_client_wants(c, m))
      return 1;
  }
  return 0;
}

/* ---- the start sequence's loose ends -------------------------------------- */

static void cancel_timer(struct brk_machine *m)
{
  brk_op_cancel(m->timer);
  m->timer = NULL;
}

/* Free the machine's connections, and an express connection still on its
   way.  Their streams are told BRK_H2_ERR_LOST (sessions were broken
   before, where there were any). */
static void conns_free(struct brk_machine *m)
{
  struct brk_h2 *x = m->h2x, *h2 = m->h2;

  brk_express_abandon(m); /* an express connection on its way */
  m->h2x = NULL;
  m->h2 = NULL;
  if (x)
    brk_h2_free(x);
  if (h2)
    brk_h2_free(h2);
}

/* Undo whatever part of a start sequence is in flight (not the process). */
static void start_cleanup(struct brk_machine *m)
{
  cancel_timer(m);
  brk_task_cancel(m->b->loop, &m->hello_task);
  brk_op_cancel(m->rdy_op);
  m->rdy_op = NULL;
  if (m->rdy_fd >= 0)
    close(m->rdy_fd);
  m->rdy_fd = -1;
  brk_op_cancel(m->conn_op);
  m->conn_op = NULL;
  SSL_free(m->ssl);
  m->ssl = NULL;
  if (m->sock >= 0)
    close(m->sock);
  m->sock = -1;
  if (m->hello) {
    brk_h2_stream_detach(m->hello);
    m->hello = NULL;
  }
  brk_bq_release(&m->hello_body);
}

static void kill_agent(struct brk_machine *m, int sig)
{
  if (m->pid > 0)
    kill(m->pid, sig);
}

static void on_restart_timer(struct brk_op *op, int res, void *arg)
{
  struct brk_machine *m = arg;

  m->timer = NULL;
  m->restart_due = 1;
  if (m->pid == 0 && !m->b->stopping && !m->removed)
    machine_start(m);
}

/* Plan the next start after the back-off (once the old agent is reaped). */
static void schedule_restart(struct brk_machine *m)
{
  if (m->b->stopping || m->permanent || m->removed)
    return;
  cancel_timer(m);
  m->restart_due = 0;
  brk_info("%s: %s in %u ms", m->name,
           is_static(m) ? "connecting again" : "restarting the agent",
           m->backoff_ms);
  m->timer = brk_loop_timeout(m->b->loop, m->backoff_ms, on_restart_timer, m);
  m->backoff_ms = m->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
                                                     : m->backoff_ms * 2;
}

static void first_done(struct brk_machine *m)
{
  if (!m->first_done) {
    m->first_done = 1;
    brk_check_ready(m->b);
  }
}

static void start_failed(struct brk_machine *m, int permanent, const char *fmt,
                         ...)
{
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(m->why, sizeof(m->why), fmt, ap);
  va_end(ap);
  brk_err("%s: start failed: %s", m->name, m->why);
  start_cleanup(m);
  conns_free(m);
  kill_agent(m, SIGKILL);
  m->state = BRK_M_FAILED;
  m->permanent = permanent;
  first_done(m);
  brk_clients_machines_changed(m->b);
  schedule_restart(m);
}

/* The machine worked and stopped working. */
static void machine_lost(struct brk_machine *m, const char *why)
{
  if (m->state != BRK_M_READY)
    return;
  brk_err("%s: machine lost: %s", m->name, why);
  snprintf(m->why, sizeof(m->why), "%s", why);
  m->state = BRK_M_LOST;
  /* Sessions first, while their streams are still attached: every
     outstanding request is answered now. */
  brk_clients_machine_lost(m->b, m);
  conns_free(m);
  kill_agent(m, SIGKILL);
  if (brk_now_ms() - m->ready_since_ms >= STABLE_MS)
    m->backoff_ms = BACKOFF_MIN_MS;
  brk_clients_machines_changed(m->b);
  schedule_restart(m);
}

/* ---- hello ------------------------------------------------------------------ */

static void hello_done(struct brk_machine *m)
{
  uint8_t *body;
  size_t len = m->hello_body.len;
  struct tr_hello h;
  struct tr_hdr hdr;
  const char *why = NULL;
  size_t used;
  int ver;

  body = malloc(len ? len : 1);
  if (!body) {
    start_failed(m, 0, "out of memory");
    return;
  }
  brk_bq_copyout(&m->hello_body, body, len);
  brk_bq_release(&m->hello_body);
  if (m->hello_status == 401) {
    start_failed(m, 1, "the agent refused the secret (HTTP 401)");
    goto out;
  }
  if (m->hello_status != 200) {
    start_failed(m, 0, "/v1/hello answered HTTP %d", m->hello_status);
    goto out;
  }
  if (len < TR_HDR_SIZE) {
    start_failed(m, 0, "empty /v1/hello reply");
    goto out;
  }
  tr_hdr_unpack(body, &hdr);
  if (tr_hdr_check(&hdr, (uint32_t)(len - TR_HDR_SIZE), 0, &why) < 0 ||
      hdr.payload_len != len - TR_HDR_SIZE || hdr.opcode != TR_OP_HELLO ||
      !(hdr.flags & TR_F_REPLY)) {
    start_failed(m, 0, "malformed /v1/hello reply%s%s", why ? ": " : "",
                 why ? why : "");
    goto out;
  }
  if (hdr.status == TR_ST_VERSION) {
    /* The payload is the agent's explanation; print it safely. */
    char msg[200];
    size_t n = hdr.payload_len < sizeof(msg) - 1 ? hdr.payload_len
                                                 : sizeof(msg) - 1;

    for (size_t i = 0; i < n; i++) {
      uint8_t ch = body[TR_HDR_SIZE + i];
      msg[i] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
    }
    msg[n] = 0;
    start_failed(m, 1, "protocol version mismatch (broker speaks %u..%u): %s",
                 TR_PROTO_VERSION_MIN, TR_PROTO_VERSION_MAX, msg);
    goto out;
  }
  if (hdr.status != 0) {
    start_failed(m, 0, "/v1/hello failed with status 0x%x", hdr.status);
    goto out;
  }
  if (tr_hello_unpack(body + TR_HDR_SIZE, hdr.payload_len, &h) < 0 ||
      h.extra_len < TR_DEVINFO_FIXED) {
    start_failed(m, 0, "malformed HELLO from the agent");
    goto out;
  }
  ver = h.max_version;
  if (h.min_version != h.max_version || ver < TR_PROTO_VERSION_MIN ||
      ver > TR_PROTO_VERSION_MAX) {
    start_failed(m, 1, "the agent chose protocol version %u..%u, broker "
                       "speaks %u..%u", h.min_version, h.max_version,
                 TR_PROTO_VERSION_MIN, TR_PROTO_VERSION_MAX);
    goto out;
  }
  if (tr_devinfo_unpack(body + TR_HDR_SIZE + TR_HELLO_SIZE, h.extra_len,
                        &m->dev, &used) < 0) {
    start_failed(m, 0, "malformed device description from the agent");
    goto out;
  }
  m->hello = NULL;
  m->caps = h.caps;
  cancel_timer(m);
  m->state = BRK_M_READY;
  m->why[0] = 0;
  m->ready_since_ms = brk_now_ms();
  m->restart_due = 0;
  brk_info("%s: ready: \"%s\", %llu MiB, agent pid %d at %s (%llu ms)", m->name,
           m->dev.name, (unsigned long long)(m->dev.total_mem >> 20),
           (int)m->pid, m->address,
           (unsigned long long)(brk_now_ms() - m->start_ms));
  first_done(m);
  brk_clients_machines_changed(m->b);
  brk_express_start(m);
out:
  free(body);
}

static int hello_data(struct brk_h2_stream *s, void *user, const uint8_t *d,
                      size_t len)
{
  struct brk_machine *m = user;

  brk_h2_stream_consume(s, len);
  if (m->hello_body.len + len > HELLO_BODY_MAX)
    return 0; /* hello_done will find it malformed */
  if (brk_bq_append(&m->hello_body, d, len) < 0)
    return 0;
  return 0;
}

static void hello_response(struct brk_h2_stream *s, void *user, int status)
{
  struct brk_machine *m = user;

  m->hello_status = status;
}

/*
 * The hello's outcome is judged from a task: a failure frees the
 * connection, which must not happen inside the nghttp2 callback that
 * reported it.
 */
static void hello_task(struct brk_task *t, void *arg)
{
  struct brk_machine *m = arg;

  if (m->state != BRK_M_STARTING)
    return;
  if (m->hello_end > 0)
    hello_done(m);
  else
    start_failed(m, 0, "/v1/hello stream closed (HTTP/2 error %u)",
                 m->hello_code);
}

static void hello_end(struct brk_h2_stream *s, void *user)
{
  struct brk_machine *m = user;

  brk_h2_stream_detach(s);
  m->hello = NULL;
  m->hello_end = 1;
  brk_loop_defer(m->b->loop, &m->hello_task);
}

static void hello_close(struct brk_h2_stream *s, void *user, uint32_t code)
{
  struct brk_machine *m = user;

  m->hello = NULL;
  m->hello_end = -1;
  m->hello_code = code;
  brk_loop_defer(m->b->loop, &m->hello_task);
}

static const struct brk_h2_stream_cbs hello_cbs = {
    .on_response = hello_response,
    .on_data = hello_data,
    .on_end = hello_end,
    .on_close = hello_close,
};

/* ---- status (memory in use, for tremote-smi) ------------------------------ */

static uint64_t mono_us(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int status_data(struct brk_h2_stream *s, void *user, const uint8_t *d,
                       size_t len)
{
  struct brk_machine *m = user;

  brk_h2_stream_consume(s, len);
  if (m->status_len + len <= sizeof(m->status_buf)) {
    memcpy(m->status_buf + m->status_len, d, len);
    m->status_len += len;
  } else {
    m->status_len = sizeof(m->status_buf) + 1; /* too long: ignored */
  }
  return 0;
}

static void status_end(struct brk_h2_stream *s, void *user)
{
  struct brk_machine *m = user;
  const uint8_t *p;
  struct tr_hdr h;

  brk_h2_stream_detach(s);
  m->status_st = NULL;
  if (m->status_len != TR_HDR_SIZE + TR_STATUS_SIZE &&
      m->status_len != TR_HDR_SIZE + TR_STATUS_SIZE_V0)
    return; /* an older agent (404), or garbage: no status */
  tr_hdr_unpack(m->status_buf, &h);
  if (h.opcode != TR_OP_MEM_GET_INFO || h.status ||
      h.payload_len != m->status_len - TR_HDR_SIZE)
    return;
  p = m->status_buf + TR_HDR_SIZE;
  m->mem_free = tr_get_u64(p);
  m->mem_total = tr_get_u64(p + 8);
  m->mem_reserved = (uint64_t)tr_get_u32(p + 20) << 20;
  m->agent_sessions = tr_get_u32(p + 16);
  m->util_gpu = m->util_mem = m->temp_c = m->power_mw = -1;
  m->driver[0] = 0;
  if (h.payload_len >= TR_STATUS_SIZE) {
    m->util_gpu = (int32_t)tr_get_u32(p + 24);
    m->util_mem = (int32_t)tr_get_u32(p + 28);
    m->temp_c = (int32_t)tr_get_u32(p + 32);
    m->power_mw = (int32_t)tr_get_u32(p + 36);
    memcpy(m->driver, p + 40, 31);
    m->driver[31] = 0;
    /* Only printable text goes on to JSON and terminals. */
    for (char *c = m->driver; *c; c++)
      if (*c < 0x20 || *c > 0x7e)
        *c = '?';
  }
  m->status_ms = brk_now_ms();
  m->status_rtt_us = mono_us() - m->status_sent_us;
}

static void status_close(struct brk_h2_stream *s, void *user, uint32_t code)
{
  struct brk_machine *m = user;

  (void)s;
  (void)code;
  m->status_st = NULL;
}

static const struct brk_h2_stream_cbs status_cbs = {
    .on_data = status_data,
    .on_end = status_end,
    .on_close = status_close,
};

void brk_machines_poll_status(struct brk *b)
{
  uint64_t now = brk_now_ms();

  for (unsigned i = 0; i < b->nmachines; i++) {
    struct brk_machine *m = b->machines[i];

    if (m->removed || m->state != BRK_M_READY || !m->h2 || m->status_st ||
        now - m->status_ms < BRK_STATUS_MS)
      continue;
    m->status_len = 0;
    m->status_sent_us = mono_us();
    m->status_st = brk_h2_post(m->h2, "/v1/status", NULL, 0, &status_cbs, m);
    if (m->status_st)
      brk_h2_stream_end(m->status_st);
  }
}

void brk_machine_on_h2_dead(struct brk_h2 *c, void *owner, const char *why)
{
  struct brk_machine *m = owner;

  if (c == m->h2x) {
    /* Lanes live on it: the machine is as lost as if the main one went. */
    machine_lost(m, why);
    return;
  }
  if (m->h2 != c)
    return;
  if (m->state == BRK_M_STARTING)
    start_failed(m, 0, "connection to the agent: %s", why);
  else
    machine_lost(m, why);
}

static void send_hello(struct brk_machine *m)
{
  uint8_t rec[TR_HDR_SIZE + TR_HELLO_SIZE];
  struct tr_hello h = {TR_PROTO_VERSION_MIN, TR_PROTO_VERSION_MAX,
                       TR_ROLE_BROKER,
                       TR_CAP_EXEC | TR_CAP_MODULE_CACHE | TR_CAP_LANE_MOVE |
                           TR_CAP_DEFERRED,
                       (uint32_t)getpid(), 0};
  struct tr_hdr hdr;
  struct iovec iov = {rec, sizeof(rec)};

  tr_hdr_init(&hdr, TR_OP_HELLO, TR_F_WANT_REPLY, 1, TR_HELLO_SIZE);
  tr_hdr_pack(&hdr, rec);
  tr_hello_pack(&h, rec + TR_HDR_SIZE);
  m->hello_status = 0;
  m->hello_end = 0;
  m->hello = brk_h2_post(m->h2, "/v1/hello", NULL, 0, &hello_cbs, m);
  if (!m->hello || brk_h2_stream_write(m->hello, &iov, 1) < 0) {
    start_failed(m, 0, "cannot send /v1/hello");
    return;
  }
  brk_h2_stream_end(m->hello);
}

/* ---- connect ---------------------------------------------------------------- */

/* HTTP/2 over pipe (taken), then HELLO. */
/* The options of both of the machine's connections. */
struct brk_h2_opts brk_machine_h2_opts(struct brk_machine *m)
{
  return (struct brk_h2_opts){
      .authority = m->address,
      .secret = m->secret,
      .stream_window = BRK_STREAM_WINDOW,
      .conn_window = BRK_CONN_WINDOW,
      .ping_idle_ms = m->b->cfg.ping_idle_ms,
      .ping_timeout_ms = m->b->cfg.ping_timeout_ms,
      /* As start_connect set it. */
      .rcvbuf = !m->spec || m->spec->loopback
                    ? (int)tr_net_tune("rcvbuf", BRK_LOOPBACK_RCVBUF)
                    : 0,
      .share = &m->share,
  };
}

static void h2_start(struct brk_machine *m, struct brk_pipe *pipe)
{
  struct brk_h2_opts o = brk_machine_h2_opts(m);
  int rc = brk_h2_new(&m->h2, m->b->loop, pipe, &o, brk_machine_on_h2_dead,
                      m);

  if (rc < 0) {
    m->h2 = NULL;
    start_failed(m, 0, "HTTP/2 session: %s", strerror(-rc));
    return;
  }
  m->gen++;
  send_hello(m);
}

static void tls_step(struct brk_machine *m);

static void on_tls_io(struct brk_op *op, int res, void *arg)
{
  struct brk_machine *m = arg;

  (void)op;
  m->conn_op = NULL;
  if (res < 0) {
    start_failed(m, 0, "poll on %s: %s", m->address, strerror(-res));
    return;
  }
  tls_step(m);
}

/*
 * One step of a TLS handshake (tls=on machines) on *sock with *ssl, the
 * main connection's or the express one's: 1 while it waits (*op armed to
 * call cb at the next readiness), 0 when it is done and verified (*pipe
 * has the socket and the TLS object, and *sock and *ssl are cleared), or
 * -1 with why.
 */
int brk_machine_tls_advance(struct brk_machine *m, int *sock, SSL **ssl,
                            struct brk_op **op, brk_op_fn cb,
                            struct brk_pipe *pipe, char *why, size_t cap)
{
  int rc = brk_tls_handshake(*ssl, m->spec, why, cap);

  if (rc > 0) {
    *op = brk_loop_poll(m->b->loop, *sock, (short)rc, cb, m);
    if (*op)
      return 1;
    snprintf(why, cap, "cannot poll the agent socket");
    return -1;
  }
  if (rc < 0)
    return -1;
  if (brk_pipe_tls(pipe, *sock, *ssl) < 0) {
    snprintf(why, cap, "out of memory");
    return -1;
  }
  *sock = -1; /* the pipe has both now */
  *ssl = NULL;
  return 0;
}

/* The main connection's TLS handshake, one step per readiness. */
static void tls_step(struct brk_machine *m)
{
  struct brk_pipe pipe;
  char why[512];
  int rc = brk_machine_tls_advance(m, &m->sock, &m->ssl, &m->conn_op,
                                   on_tls_io, &pipe, why, sizeof(why));

  if (rc > 0)
    return;
  if (rc < 0) {
    /* A certificate that does not verify will not verify on a retry
       either: that needs the config or the agent changed. */
    start_failed(m, strstr(why, "certificate") != NULL, "%s: %s", m->address,
                 why);
    return;
  }
  brk_dbg("%s: TLS to %s verified", m->name, m->address);
  h2_start(m, &pipe);
}

/* The options of a connected socket to the agent, either connection. */
void brk_machine_tune_socket(struct brk_machine *m, int fd)
{
  int one = 1;
  /* Data the agent has not acknowledged for this long ends the
     connection even while PINGs could not be sent (a full socket). */
  unsigned user_timeout = m->b->cfg.ping_idle_ms + m->b->cfg.ping_timeout_ms;
  int lowat = (int)tr_net_tune("lowat", BRK_NOTSENT_LOWAT);

  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout,
             sizeof(user_timeout));
  setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof(lowat));
}

static void connected(struct brk_machine *m)
{
  struct brk_pipe pipe;

  brk_machine_tune_socket(m, m->sock);
  if (m->tls_ctx) {
    m->ssl = brk_tls_new(m->tls_ctx, m->spec, m->sock);
    if (!m->ssl) {
      start_failed(m, 0, "cannot start TLS");
      return;
    }
    tls_step(m);
    return;
  }
  brk_pipe_plain(&pipe, m->sock);
  m->sock = -1; /* the pipe has it now */
  h2_start(m, &pipe);
}

/* How a non-blocking connect on fd ended, given its POLLOUT poll's
   result: 0 or an errno. */
int brk_machine_connect_error(int fd, int res)
{
  int err = 0;
  socklen_t len = sizeof(err);

  if (res < 0)
    return -res;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
    return errno;
  return err;
}

static void on_connect(struct brk_op *op, int res, void *arg)
{
  struct brk_machine *m = arg;
  int err;

  m->conn_op = NULL;
  err = brk_machine_connect_error(m->sock, res);
  if (err) {
    start_failed(m, 0, "connect to %s: %s", m->address, strerror(err));
    return;
  }
  connected(m);
}

/* Connect to sa (a LOCAL agent's loopback port, a STATIC one's address). */
static void start_connect(struct brk_machine *m, const struct sockaddr *sa,
                          socklen_t salen)
{
  int rcvbuf = (int)tr_net_tune("rcvbuf", BRK_LOOPBACK_RCVBUF);

  memcpy(&m->sa, sa, salen);
  m->salen = salen; /* for the express connection */
  m->sock = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                   0);
  if (m->sock < 0) {
    start_failed(m, 0, "socket: %s", strerror(errno));
    return;
  }
  /* Before connect, so the window offered from the start fits it.  Only
     on loopback: a remote link's bandwidth-delay product needs
     autotuning. */
  if (!m->spec || m->spec->loopback)
    setsockopt(m->sock, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  if (connect(m->sock, sa, salen) == 0) {
    connected(m);
    return;
  }
  if (errno != EINPROGRESS) {
    start_failed(m, 0, "connect to %s: %s", m->address, strerror(errno));
    return;
  }
  m->conn_op = brk_loop_poll(m->b->loop, m->sock, POLLOUT, on_connect, m);
  if (!m->conn_op)
    start_failed(m, 0, "cannot poll the agent socket");
}

/* ---- the ready line ----------------------------------------------------------- */

/*
 * The agent's ready line names where it listens: "127.0.0.1:PORT",
 * "PORT", or any text whose last ':'-separated field is the port.
 * Returns the port or -1.
 */
static int parse_port(const char *line)
{
  const char *p = strrchr(line, ':');
  char *end;
  long v;

  p = p ? p + 1 : line;
  while (*p == ' ')
    p++;
  v = strtol(p, &end, 10);
  while (*end == ' ' || *end == '\r')
    end++;
  if (end == p || *end || v <= 0 || v > 65535)
    return -1;
  return (int)v;
}

static void on_ready_read(struct brk_op *op, int res, void *arg)
{
  struct brk_machine *m = arg;
  char *nl;
  int port;

  m->rdy_op = NULL;
  if (res <= 0) {
    start_failed(m, 0, res == 0 ? "the agent exited or closed its ready pipe "
                                  "before reporting a port"
                                : "reading the agent's ready pipe failed");
    return;
  }
  if (m->rdy_len + (size_t)res >= sizeof(m->rdy_buf)) {
    start_failed(m, 0, "the agent's ready line is too long");
    return;
  }
  memcpy(m->rdy_buf + m->rdy_len, brk_op_buf(op), (size_t)res);
  m->rdy_len += (size_t)res;
  m->rdy_buf[m->rdy_len] = 0;
  nl = strchr(m->rdy_buf, '\n');
  if (!nl) {
    m->rdy_op = brk_loop_read(m->b->loop, m->rdy_fd,
                              sizeof(m->rdy_buf) - 1 - m->rdy_len,
                              on_ready_read, m);
    if (!m->rdy_op)
      start_failed(m, 0, "cannot read the agent's ready pipe");
    return;
  }
  *nl = 0;
  port = parse_port(m->rdy_buf);
  if (port < 0) {
    start_failed(m, 0, "cannot find a port in the agent's ready line \"%.64s\"",
                 m->rdy_buf);
    return;
  }
  close(m->rdy_fd);
  m->rdy_fd = -1;
  brk_dbg("%s: agent listens on port %d", m->name, port);
  {
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port)};

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    snprintf(m->address, sizeof(m->address), "127.0.0.1:%d", port);
    start_connect(m, (struct sockaddr *)&sa, sizeof(sa));
  }
}

/* Start deadline with a progress line every PROGRESS_MS. */
static void on_start_timer(struct brk_op *op, int res, void *arg)
{
  struct brk_machine *m = arg;
  uint64_t waited = brk_now_ms() - m->start_ms;
  uint64_t left;

  m->timer = NULL;
  if (m->state != BRK_M_STARTING)
    return;
  if (waited >= m->b->cfg.start_timeout_ms) {
    start_failed(m, 0, "the agent%s%s did not become ready in %u ms",
                 is_static(m) ? " at " : "", is_static(m) ? m->address : "",
                 m->b->cfg.start_timeout_ms);
    return;
  }
  if (is_static(m))
    brk_info("%s: still connecting to the agent at %s after %llu ms",
             m->name, m->address, (unsigned long long)waited);
  else
    brk_info("%s: still waiting for the agent (pid %d, %s) after %llu ms",
             m->name, (int)m->pid,
             m->rdy_fd >= 0 ? "no port reported yet" : "connecting/hello",
             (unsigned long long)waited);
  left = m->b->cfg.start_timeout_ms - waited;
  m->timer = brk_loop_timeout(m->b->loop, left < PROGRESS_MS ? left : PROGRESS_MS,
                              on_start_timer, m);
}

/* ---- the agent process --------------------------------------------------------- */

static void on_agent_exit(struct brk_op *op, int res, void *arg)
{
  struct brk_machine *m = arg;
  int status = 0;
  pid_t pid = m->pid, r;

  m->pid_op = NULL;
  do {
    r = waitpid(pid, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0) {
    /* Spurious: keep watching. */
    m->pid_op = brk_loop_poll(m->b->loop, m->pidfd, POLLIN, on_agent_exit, m);
    if (m->pid_op)
      return;
    /* Without a watch we would never notice; reap by force. */
    kill(pid, SIGKILL);
    r = waitpid(pid, &status, 0);
  }
  close(m->pidfd);
  m->pidfd = -1;
  m->pid = 0;
  m->b->nagents_running--;
  if (m->b->stopping) {
    brk_dbg("%s: agent pid %d exited", m->name, (int)pid);
    if (m->b->nagents_running == 0)
      brk_loop_stop(m->b->loop);
    return;
  }
  if (m->removed) {
    brk_dbg("%s: agent pid %d exited (machine removed)", m->name, (int)pid);
    return;
  }
  if (WIFSIGNALED(status))
    brk_warn("%s: agent pid %d killed by signal %d", m->name, (int)pid,
             WTERMSIG(status));
  else
    brk_warn("%s: agent pid %d exited with status %d", m->name, (int)pid,
             WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  if (m->state == BRK_M_READY)
    machine_lost(m, "the agent process died");
  else if (m->state == BRK_M_STARTING)
    start_failed(m, 0, "the agent process died during start-up");
  if (m->restart_due && !m->permanent)
    spawn(m);
}

static int pidfd_open_(pid_t pid)
{
  return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* Child side: never returns. */
static void exec_agent(struct brk_machine *m, int secret_r, int ready_w,
                       char *const argv[])
{
  sigset_t all;
  int a, r;

  sigemptyset(&all);
  sigprocmask(SIG_SETMASK, &all, NULL);
  signal(SIGPIPE, SIG_DFL);
  /* A broker that dies without cleaning up takes its agents along. */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  a = fcntl(secret_r, F_DUPFD, 10);
  r = fcntl(ready_w, F_DUPFD, 10);
  if (a < 0 || r < 0 || dup2(a, 3) != 3 || dup2(r, 4) != 4)
    _exit(126);
  if (syscall(SYS_close_range, 5u, ~0u, 0u) < 0)
    for (int fd = 5; fd < 1024; fd++)
      close(fd);
  execv(argv[0], argv);
  {
    char msg[512];
    int n = snprintf(msg, sizeof(msg),
                     "tremote-broker: %s: cannot run agent %s: %s\n", m->name,
                     argv[0], strerror(errno));
    (void)!write(2, msg, (size_t)n);
  }
  _exit(127);
}

static void spawn(struct brk_machine *m)
{
  struct brk *b = m->b;
  uint8_t raw[32];
  char line[BRK_SECRET_MAX + 2];
  char *argv[16];
  int sp[2] = {-1, -1}, rp[2] = {-1, -1}, n = 0;
  pid_t pid;

  cancel_timer(m);
  m->restart_due = 0;
  m->permanent = 0;
  m->state = BRK_M_STARTING;
  m->start_ms = brk_now_ms();
  m->rdy_len = 0;
  m->address[0] = 0;
  memset(&m->dev, 0, sizeof(m->dev));
  brk_clients_machines_changed(b);

  if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
    start_failed(m, 0, "getrandom: %s", strerror(errno));
    return;
  }
  for (int i = 0; i < 32; i++)
    snprintf(m->secret + 2 * i, 3, "%02x", raw[i]);
  if (pipe2(sp, O_CLOEXEC) < 0 || pipe2(rp, O_CLOEXEC) < 0) {
    start_failed(m, 0, "pipe: %s", strerror(errno));
    goto out_pipes;
  }
  snprintf(line, sizeof(line), "%s\n", m->secret);
  if (write(sp[1], line, strlen(line)) != (ssize_t)strlen(line)) {
    start_failed(m, 0, "writing the secret: %s", strerror(errno));
    goto out_pipes;
  }
  close(sp[1]);
  sp[1] = -1;

  argv[n++] = (char *)b->cfg.agent_path;
  argv[n++] = "--listen";
  argv[n++] = "127.0.0.1:0";
  argv[n++] = "--secret-fd";
  argv[n++] = "3";
  argv[n++] = "--ready-fd";
  argv[n++] = "4";
  argv[n++] = "--backend";
  argv[n++] = (char *)b->cfg.backend;
  if (b->cfg.emu_mem) {
    argv[n++] = "--emu-mem";
    argv[n++] = (char *)b->cfg.emu_mem;
  }
  argv[n] = NULL;

  pid = fork();
  if (pid < 0) {
    start_failed(m, 0, "fork: %s", strerror(errno));
    goto out_pipes;
  }
  if (pid == 0)
    exec_agent(m, sp[0], rp[1], argv);
  close(sp[0]);
  close(rp[1]);
  m->pid = pid;
  b->nagents_running++;
  m->rdy_fd = rp[0];
  m->pidfd = pidfd_open_(pid);
  if (m->pidfd < 0) {
    start_failed(m, 0, "pidfd_open: %s", strerror(errno));
    /* Without a pidfd the exit is never seen; reap it here. */
    waitpid(pid, NULL, 0);
    m->pid = 0;
    b->nagents_running--;
    return;
  }
  m->pid_op = brk_loop_poll(b->loop, m->pidfd, POLLIN, on_agent_exit, m);
  m->rdy_op = brk_loop_read(b->loop, m->rdy_fd, sizeof(m->rdy_buf) - 1,
                            on_ready_read, m);
  m->timer = brk_loop_timeout(b->loop,
                              b->cfg.start_timeout_ms < PROGRESS_MS
                                  ? b->cfg.start_timeout_ms
                                  : PROGRESS_MS,
                              on_start_timer, m);
  if (!m->pid_op || !m->rdy_op || !m->timer) {
    start_failed(m, 0, "out of memory");
    return;
  }
  if (m->restarts++)
    brk_info("%s: agent restarted (pid %d)", m->name, (int)pid);
  else
    brk_info("%s: starting agent %s (pid %d, backend %s)", m->name,
             b->cfg.agent_path, (int)pid, b->cfg.backend);
  return;

out_pipes:
  for (int i = 0; i < 2; i++) {
    if (sp[i] >= 0)
      close(sp[i]);
    if (rp[i] >= 0)
      close(rp[i]);
  }
}

/* The start sequence of an agent someone else runs, up to the connect. */
static int begin_remote(struct brk_machine *m)
{
  struct brk *b = m->b;

  cancel_timer(m);
  m->restart_due = 0;
  m->permanent = 0;
  m->state = BRK_M_STARTING;
  m->start_ms = brk_now_ms();
  m->salen = 0;
  memset(&m->dev, 0, sizeof(m->dev));
  snprintf(m->address, sizeof(m->address), "%s", m->spec->address);
  snprintf(m->secret, sizeof(m->secret), "%s", m->spec->secret);
  brk_clients_machines_changed(b);
  m->timer = brk_loop_timeout(b->loop,
                              b->cfg.start_timeout_ms < PROGRESS_MS
                                  ? b->cfg.start_timeout_ms
                                  : PROGRESS_MS,
                              on_start_timer, m);
  if (!m->timer) {
    start_failed(m, 0, "out of memory");
    return -1;
  }
  if (m->restarts++ == 0)
    brk_info("%s: connecting to the agent at %s", m->name, m->address);
  return 0;
}

/* STATIC: connect to the agent someone else runs. */
static void connect_static(struct brk_machine *m)
{
  if (begin_remote(m) == 0)
    start_connect(m, (const struct sockaddr *)&m->spec->sa, m->spec->salen);
}

void brk_machine_attach(struct brk_machine *m, int fd)
{
  char why[256];

  if (!m->tls_ctx && m->spec->tls == 1) {
    m->tls_ctx = brk_tls_ctx(m->spec, why, sizeof(why));
    if (!m->tls_ctx) {
      close(fd);
      start_failed(m, 0, "%s", why);
      return;
    }
  }
  if (begin_remote(m) < 0) {
    close(fd);
    return;
  }
  m->sock = fd;
  connected(m);
}

void brk_machine_fail(struct brk_machine *m, int permanent, const char *fmt,
                      ...)
{
  char why[sizeof(m->why)];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(why, sizeof(why), fmt, ap);
  va_end(ap);
  start_failed(m, permanent, "%s", why);
}

void brk_machine_disconnect(struct brk_machine *m)
{
  start_cleanup(m);
  if (m->state == BRK_M_READY)
    brk_clients_machine_lost(m->b, m);
  conns_free(m);
}

static void machine_start(struct brk_machine *m)
{
  if (m->modal)
    brk_modal_start(m);
  else if (is_static(m))
    connect_static(m);
  else
    spawn(m);
}

int brk_machine_remove(struct brk *b, const char *name, char *why,
                       size_t cap)
{
  struct brk_machine *m = brk_machine_by_name(b, name);

  if (!m) {
    snprintf(why, cap, "no machine named %.64s", name);
    return -1;
  }
  brk_info("%s: removed (index %u)", m->name, m->index);
  m->removed = 1;
  cancel_timer(m);
  start_cleanup(m);
  if (m->state == BRK_M_READY)
    brk_clients_machine_lost(b, m); /* its sessions answer "lost" now */
  conns_free(m);
  kill_agent(m, SIGTERM); /* reaped by on_agent_exit */
  brk_modal_remove(m);     /* DELETE on Modal */
  m->state = BRK_M_STOPPED;
  snprintf(m->why, sizeof(m->why), "removed");
  brk_clients_machines_changed(b);
  brk_check_ready(b); /* it may have been the last one starting */
  return 0;
}

void brk_machines_start(struct brk *b)
{
  b->machines_started = 1;
  for (unsigned i = 0; i < b->nmachines; i++)
    if (!b->machines[i]->removed)
      machine_start(b->machines[i]);
  brk_modal_reconcile(b);
}

unsigned brk_machines_stop(struct brk *b)
{
  for (unsigned i = 0; i < b->nmachines; i++) {
    struct brk_machine *m = b->machines[i];

    start_cleanup(m);
    m->state = BRK_M_STOPPED;
    conns_free(m);
    kill_agent(m, SIGTERM);
  }
  return b->nagents_running;
}

void brk_machines_free(struct brk *b)
{
  for (unsigned i = 0; i < b->nmachines; i++) {
    struct brk_machine *m = b->machines[i];

    if (m->pid > 0) {
      brk_warn("%s: agent pid %d did not stop on SIGTERM; killing it", m->name,
               (int)m->pid);
      kill(m->pid, SIGKILL);
      while (waitpid(m->pid, NULL, 0) < 0 && errno == EINTR)
        ;
      m->pid = 0;
    }
    brk_op_cancel(m->pid_op);
    if (m->pidfd >= 0)
      close(m->pidfd);
    start_cleanup(m);
    brk_modal_machine_free(m);
    conns_free(m);
    SSL_CTX_free(m->tls_ctx);
    free(m);
    b->machines[i] = NULL;
  }
  b->nmachines = 0;
}
