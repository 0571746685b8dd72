/*
 * agent_routes.c: what the agent does with each request path, on the
 * network thread (agent_h2_int.h).
 *
 *   POST /v1/hello    version and capability negotiation, the device
 *   POST /v1/session  a session: created here, destroyed when the stream
 *                     or the connection ends
 *   POST /v1/lane     a lane: its body is decoded into records (straight
 *                     into the queued struct agt_rec) for the execution
 *                     threads
 *
 * Every request is checked against the secret first (agt_route()).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent_h2_int.h"
#include "agent_nvml.h"
#include "trace.h"

/* ---- sessions ----------------------------------------------------------- */

/*
 * End a session: out of the registry (new lanes get 404), its lanes aborted
 * and their streams reset, the registry's reference dropped.  The memory is
 * freed when the last lane lets go; the note that follows ends the
 * /v1/session response.
 */
static void session_destroy(struct agt_server *srv, struct agt_session *s)
{
  if (s->closing)
    return;
  s->closing = true;
  agt_hmap_del(&srv->sessions, s->id);
  for (struct agt_lane *l = s->lanes; l; l = l->sess_next) {
    agt_lane_abort(l);
    if (l->st)
      agt_st_rst(l->st, NGHTTP2_CANCEL);
  }
  agt_info("session %016llx: closing", (unsigned long long)s->id);
  agt_session_put(s);
}

/* Parse exactly n hex digits (n <= 16) or, with n == 0, 1..16 of them. */
static int parse_hex(const char *s, size_t n, uint64_t *out)
{
  size_t len = strlen(s);
  uint64_t v = 0;

  if (len == 0 || len > 16 || (n && len != n))
    return -EINVAL;
  for (size_t i = 0; i < len; i++) {
    int d;

    if (s[i] >= '0' && s[i] <= '9')
      d = s[i] - '0';
    else if (s[i] >= 'a' && s[i] <= 'f')
      d = s[i] - 'a' + 10;
    else if (s[i] >= 'A' && s[i] <= 'F')
      d = s[i] - 'A' + 10;
    else
      return -EINVAL;
    v = v << 4 | (uint64_t)d;
  }
  *out = v;
  return 0;
}

static int parse_session_id(const char *s, uint64_t *id)
{
  return parse_hex(s, 16, id) < 0 || *id == 0 ? -EINVAL : 0;
}

static void open_session(struct stream *st)
{
  struct agt_server *srv = st->conn->srv;
  struct agt_session *s;
  uint64_t id, base, size;
  char va[sizeof(st->va_hdr)], *plus;
  const char *why = NULL;
  int rc;

  if (parse_session_id(st->sess_hdr, &id) < 0) {
    agt_st_reply_text(st, 400, "tremote-session must be 16 hex digits, not all 0");
    return;
  }
  memcpy(va, st->va_hdr, sizeof(va));
  plus = strchr(va, '+');
  if (plus)
    *plus = 0;
  if (!plus || parse_hex(va, 0, &base) < 0 || parse_hex(plus + 1, 0, &size) < 0) {
    agt_st_reply_text(st, 400, "tremote-va must be <base hex>+<size hex>");
    return;
  }
  if (agt_hmap_get(&srv->sessions, id)) {
    agt_st_reply_text(st, 409, "session %016llx already exists",
               (unsigned long long)id);
    return;
  }
  rc = agt_session_new(id, srv->be, srv->cache, &srv->inbox, &srv->closer,
                       base, size, &s, &why);
  if (rc < 0) {
    agt_warn("%s: session %016llx refused: %s", st->conn->peer,
             (unsigned long long)id, why);
    agt_st_reply_text(st, rc == -EEXIST ? 409 : rc == -EINVAL ? 400 : 503,
               "session refused: %s", why);
    return;
  }
  s->quota = srv->quota;
  /* What its broker said it takes, in the hello on this connection (the
     express one has none: lanes there belong to a session opened here). */
  s->caps = st->conn->caps;
  srv->live_sessions++; /* until its note: posted by the last put, even here */
  if (agt_hmap_put(&srv->sessions, id, s) < 0) {
    agt_session_put(s);
    agt_st_reply_text(st, 503, "out of memory");
    return;
  }
  s->st = st;
  st->sess = s;
  st->kind = ST_SESSION;
  agt_info("session %016llx: opened, window %#llx+%#llx", (unsigned long long)id,
           (unsigned long long)base, (unsigned long long)size);
  if (agt_st_submit(st, "200", "application/octet-stream") < 0)
    agt_st_rst(st, NGHTTP2_INTERNAL_ERROR);
}

/* "0" or "-1" ... "-5" (TR_PRIORITY_*): 0 and *prio, or -1. */
static int parse_priority(const char *s, int *prio)
{
  if (s[0] == '0' && !s[1]) {
    *prio = 0;
    return 0;
  }
  if (s[0] != '-' || s[1] < '1' || s[1] > '0' - TR_PRIORITY_GREATEST || s[2])
    return -1;
  *prio = '0' - s[1];
  return 0;
}

/* st carries lane l from now on (its records in, its replies out);
   answered 200. */
static void lane_attach(struct stream *st, struct agt_lane *l)
{
  l->st = st;
  st->lane = l;
  st->kind = ST_LANE;
  /* See AGT_LANE_IN_MAX: the steady-state bound on unexecuted bytes. */
  nghttp2_session_set_local_window_size(st->conn->ngh, NGHTTP2_FLAG_NONE,
                                        st->id, (int32_t)AGT_LANE_IN_MAX);
  if (agt_st_submit(st, "200", "application/octet-stream") < 0)
    agt_st_rst(st, NGHTTP2_INTERNAL_ERROR);
}

/* Give c back the credit of what l's stream received and nobody consumed
   (its stream goes away, or the lane moves to another). */
static void lane_credit_back(struct conn *c, struct agt_lane *l)
{
  if (l->recv_bytes > l->credited)
    c->credit += l->recv_bytes - l->credited;
  l->credited = l->recv_bytes;
}

/*
 * A lane's stream moves to st (tremote-lane-move: 1, PROTOCOL.md §3): the
 * broker moves a lane from its express connection to its bulk one before
 * a bulk record, and back once the lane has made only small calls for a
 * while, each time once the lane's last reply (a NOP it sent as a fence)
 * came back, so everything sent on the old stream has been
 * received and answered.  The lane itself stays (its records, request
 * ids, mark, deferred error and priority: exec threads read it, so a
 * tremote-priority here is ignored); only where its records come
 * from and its replies go changes.  The old stream's response ends; its
 * unconsumed bytes go back to its connection, as when a stream closes.
 */
static void move_lane(struct stream *st, struct agt_lane *l)
{
  struct stream *old = l->st;
  const char *busy = NULL;
  bool out_pending, in_eof, aborted;

  if (!old || old == st)
    busy = "it has no stream";
  else if (old->rst_sent)
    busy = "its stream was reset";
  else if (l->dec.have || l->skip || l->cur)
    busy = "a record is half received";
  if (!busy) {
    pthread_mutex_lock(&l->mu);
    out_pending = l->out_head != NULL;
    in_eof = l->in_eof;
    aborted = l->aborted;
    if (!out_pending && !in_eof && !aborted) {
      /* Everything received so far is credited to the old connection
         below, executed or not; records of the old stream that run
         later credit nothing (run_records). */
      l->done_bytes = 0;
      l->gen++;
    }
    pthread_mutex_unlock(&l->mu);
    if (out_pending)
      busy = "replies are still being sent";
    else if (in_eof || aborted)
      busy = "it is ending";
  }
  if (busy) {
    agt_st_reply_text(st, 409, "lane %llu cannot move now: %s",
                      (unsigned long long)l->id, busy);
    return;
  }
  lane_credit_back(old->conn, l);
  l->recv_bytes = l->credited = 0;
  old->lane = NULL;
  old->kind = ST_FIXED; /* no response bytes: it ends now */
  agt_st_resume(old);
  agt_debug("session %016llx: lane %llu moved to %s",
            (unsigned long long)l->sess->id, (unsigned long long)l->id,
            st->conn->peer);
  lane_attach(st, l); /* the old stream's lane reference is st's now */
}

static void open_lane(struct stream *st)
{
  struct agt_server *srv = st->conn->srv;
  struct agt_session *s;
  struct agt_lane *l;
  uint64_t id, lane = 0;
  size_t n = strlen(st->lane_hdr);
  int prio = 0;

  if (parse_session_id(st->sess_hdr, &id) < 0) {
    agt_st_reply_text(st, 400, "tremote-session must be 16 hex digits, not all 0");
    return;
  }
  if (n == 0 || n > 19 || strspn(st->lane_hdr, "0123456789") != n) {
    agt_st_reply_text(st, 400, "tremote-lane must be a decimal number");
    return;
  }
  for (size_t i = 0; i < n; i++)
    lane = lane * 10 + (uint64_t)(st->lane_hdr[i] - '0');
  if (st->prio_hdr[0] && (parse_priority(st->prio_hdr, &prio) < 0)) {
    agt_st_reply_text(st, 400, "tremote-priority must be a whole number "
                               "from %d to %d", TR_PRIORITY_GREATEST,
                      TR_PRIORITY_LEAST);
    return;
  }
  s = agt_hmap_get(&srv->sessions, id);
  if (!s) {
    agt_st_reply_text(st, 404, "no session %016llx", (unsigned long long)id);
    return;
  }
  for (l = s->lanes; l; l = l->sess_next) {
    if (l->id != lane)
      continue;
    if (strcmp(st->move_hdr, "1") == 0) {
      move_lane(st, l);
      return;
    }
    agt_st_reply_text(st, 409, "lane %llu of session %016llx is already open",
                      (unsigned long long)lane, (unsigned long long)id);
    return;
  }
  if (st->move_hdr[0]) {
    agt_st_reply_text(st, 404, "no lane %llu in session %016llx to move",
                      (unsigned long long)lane, (unsigned long long)id);
    return;
  }
  if (agt_lane_new(s, lane, &l) < 0) {
    agt_st_reply_text(st, 503, "out of memory");
    return;
  }
  l->exec = srv->exec;
  l->priority = prio;
  l->sess_next = s->lanes;
  s->lanes = l;
  agt_debug("session %016llx: lane %llu opened", (unsigned long long)id,
            (unsigned long long)lane);
  lane_attach(st, l);
}

/* ---- hello -------------------------------------------------------------- */

static void reply_record(struct stream *st, const struct tr_hdr *req,
                         uint32_t status, const uint8_t *payload, size_t len)
{
  struct tr_hdr h;

  tr_hdr_init(&h, req->opcode, TR_F_REPLY, req->request_id, (uint32_t)len);
  h.status = status;
  st->resp = malloc(TR_HDR_SIZE + len);
  if (!st->resp) {
    agt_st_rst(st, NGHTTP2_INTERNAL_ERROR);
    return;
  }
  tr_hdr_pack(&h, st->resp);
  memcpy(st->resp + TR_HDR_SIZE, payload, len);
  st->resp_len = TR_HDR_SIZE + len;
  st->resp_off = 0;
  if (agt_st_submit(st, "200", "application/octet-stream") < 0)
    agt_st_rst(st, NGHTTP2_INTERNAL_ERROR);
}

/*
 * /v1/status: what tremote-smi shows and only the device knows, as one
 * MEM_GET_INFO reply record (PROTOCOL.md): u64 free, u64 total
 * (device-wide), u32 sessions, u32 reserved MiB (of total, the driver's
 * own; 0 unknown), then NVML's figures: i32
 * utilization %, i32 memory utilization %, i32 temperature C, i32 power
 * mW (-1 each when unknown), and the driver's version, 32 bytes,
 * NUL-padded.  The broker asks every few seconds.
 */
static void answer_status(struct stream *st)
{
  struct agt_server *srv = st->conn->srv;
  struct tr_hdr req;
  struct agt_telemetry t;
  uint64_t free_b = 0, total = 0, reserved = 0;
  uint8_t p[TR_STATUS_SIZE];

  tr_hdr_init(&req, TR_OP_MEM_GET_INFO, 0, 0, 0);
  agt_nvml_get(srv->nvml, &t);
  if (t.mem_total > 0) { /* NVML's, as nvidia-smi shows them */
    free_b = (uint64_t)t.mem_free;
    total = (uint64_t)t.mem_total;
    reserved = (uint64_t)t.mem_reserved;
  } else if (srv->be->ops->dev_mem_info) {
    srv->be->ops->dev_mem_info(srv->be, &free_b, &total);
  }
  memset(p, 0, sizeof(p));
  tr_put_u64(p, free_b);
  tr_put_u64(p + 8, total);
  tr_put_u32(p + 16, srv->live_sessions);
  tr_put_u32(p + 20, (uint32_t)(reserved >> 20));
  tr_put_u32(p + 24, (uint32_t)t.util_gpu);
  tr_put_u32(p + 28, (uint32_t)t.util_mem);
  tr_put_u32(p + 32, (uint32_t)t.temp_c);
  tr_put_u32(p + 36, (uint32_t)t.power_mw);
  memcpy(p + 40, t.driver, strnlen(t.driver, 31));
  st->kind = ST_FIXED;
  reply_record(st, &req, 0, p, sizeof(p));
}

/*
 * The request body is complete: one HELLO record with role 2.  Reply with
 * the chosen version, the agreed capabilities and the device description
 * (PROTOCOL.md §5).  With no common version the reply carries
 * TR_ST_VERSION and a message, and the connection is closed after it.
 */
static void answer_hello(struct stream *st)
{
  struct agt_server *srv = st->conn->srv;
  struct tr_hello mine = {TR_PROTO_VERSION_MIN, TR_PROTO_VERSION_MAX,
                          TR_ROLE_AGENT, 0, 0, 0};
  struct tr_hello theirs, out;
  struct tr_hdr h;
  const char *why = NULL;
  char text[160];
  uint8_t *buf;
  size_t dsize;
  int v, n;

  mine.caps = TR_CAP_MODULE_CACHE | TR_CAP_LANE_MOVE | TR_CAP_DEFERRED |
              (srv->devinfo.caps & TR_CAP_EXEC);
  if (st->body_len < TR_HDR_SIZE) {
    why = "body shorter than a record header";
    goto out_bad;
  }
  tr_hdr_unpack(st->body, &h);
  if (tr_hdr_check(&h, AGT_HELLO_MAX, 0, &why) < 0)
    goto out_bad;
  if (h.opcode != TR_OP_HELLO || h.flags & (TR_F_REPLY | TR_F_MORE) ||
      TR_HDR_SIZE + (size_t)h.payload_len != st->body_len) {
    why = "not exactly one HELLO request record";
    goto out_bad;
  }
  if (tr_hello_unpack(st->body + TR_HDR_SIZE, h.payload_len, &theirs) < 0) {
    why = "malformed tr_hello payload";
    goto out_bad;
  }
  st->kind = ST_FIXED;
  if (theirs.role != TR_ROLE_BROKER) {
    n = snprintf(text, sizeof(text), "agent expects role %u (broker), got %u",
                 TR_ROLE_BROKER, theirs.role);
    reply_record(st, &h, TR_ST_BAD_RECORD, (uint8_t *)text, (size_t)n);
    return;
  }
  v = tr_hello_choose(&mine, &theirs);
  if (v < 0) {
    n = snprintf(text, sizeof(text),
                 "no common protocol version: agent speaks %u..%u, broker "
                 "offered %u..%u",
                 mine.min_version, mine.max_version, theirs.min_version,
                 theirs.max_version);
    agt_warn("%s: %s", st->conn->peer, text);
    st->close_conn = true;
    reply_record(st, &h, TR_ST_VERSION, (uint8_t *)text, (size_t)n);
    return;
  }
  dsize = tr_devinfo_size(&srv->devinfo);
  out = (struct tr_hello){(uint16_t)v, (uint16_t)v, TR_ROLE_AGENT,
                          theirs.caps & mine.caps, (uint32_t)getpid(),
                          (uint32_t)dsize};
  buf = malloc(TR_HELLO_SIZE + dsize);
  if (!buf) {
    agt_st_rst(st, NGHTTP2_INTERNAL_ERROR);
    return;
  }
  st->conn->caps = out.caps; /* for the sessions opened on it */
  tr_hello_pack(&out, buf);
  tr_devinfo_pack(&srv->devinfo, buf + TR_HELLO_SIZE);
  agt_info("%s: hello: version %d, caps %#llx", st->conn->peer, v,
           (unsigned long long)out.caps);
  reply_record(st, &h, 0, buf, TR_HELLO_SIZE + dsize);
  free(buf);
  return;

out_bad:
  agt_warn("%s: stream %d: bad HELLO (%s); resetting the stream",
           st->conn->peer, st->id, why);
  st->kind = ST_FIXED;
  agt_st_rst(st, NGHTTP2_PROTOCOL_ERROR);
}

/* ---- lanes: decoding ---------------------------------------------------- */

static struct agt_rec *rec_new(const struct tr_hdr *h, const uint8_t *payload,
                               uint32_t stored, uint32_t wire_len)
{
  struct agt_rec *r = malloc(sizeof(*r) + stored);

  if (!r)
    return NULL;
  r->hdr = *h;
  r->hdr.payload_len = stored;
  r->wire_len = wire_len;
  r->direct = false;
  r->cls = 0; /* executes nothing: never holds back a direct copy */
  r->pin = NULL;
  r->stage = NULL;
  r->staged = NULL;
  if (stored)
    memcpy(r->payload, payload, stored);
  return r;
}

/*
 * An opcode the table does not know, in an otherwise sound header: the
 * stream is still in step (its length is known and within bounds), so it
 * is answered TR_ST_BAD_OPCODE like any unsupported opcode rather than
 * killing the lane.  Its payload is skipped, not stored.
 */
static int queue_unknown(struct agt_lane *l)
{
  struct agt_rec *r = rec_new(&l->skip_hdr, NULL, 0,
                              TR_HDR_SIZE + l->skip_hdr.payload_len);

  if (!r)
    return -ENOMEM;
  r->gen = l->gen;
  agt_lane_push_in(l, r);
  return 0;
}

void agt_lane_feed(struct stream *st, const uint8_t *p, size_t len)
{
  struct agt_server *srv = st->conn->srv;
  struct agt_lane *l = st->lane;
  const char *why = NULL;
  bool queued = false;

  l->recv_bytes += len;
  if (st->rst_sent)
    return; /* credited when the stream closes */
  while (len) {
    const uint8_t *payload;
    struct agt_rec *r;
    struct tr_hdr h;
    uint32_t before;
    int complete;
    long n;

    if (l->skip) {
      size_t k = len < l->skip ? len : l->skip;

      l->skip -= (uint32_t)k;
      p += k;
      len -= k;
      if (!l->skip) {
        if (queue_unknown(l) < 0)
          goto out_nomem;
        queued = true;
      }
      continue;
    }
    before = l->dec.have;
    n = tr_decoder_feed(&l->dec, p, len, &complete, &h, &payload);
    if (n == -EBADMSG && l->dec.hdr.payload_len <= TR_PAYLOAD_MAX) {
      /* Only the header was taken, and it failed on its opcode alone. */
      size_t used = TR_HDR_SIZE - before;

      l->skip_hdr = l->dec.hdr;
      l->skip = l->dec.hdr.payload_len;
      if (agt_lane_decoder_reset(l) < 0)
        goto out_nomem;
      p += used;
      len -= used;
      agt_debug("lane %llu: unknown opcode %u", (unsigned long long)l->id,
                l->skip_hdr.opcode);
      if (!l->skip) {
        if (queue_unknown(l) < 0)
          goto out_nomem;
        queued = true;
      }
      continue;
    }
    if (n < 0) {
      why = l->dec.why;
      goto out_bad;
    }
    p += n;
    len -= (size_t)n;
    if (!complete)
      continue;
    /* payload is r's rest, or device memory for a direct record: either
       way the record is complete in place. */
    (void)payload;
    r = agt_lane_take_rec(l);
    if (r)
      tr_trace(TR_HOP_AGT_REQ, (uint32_t)l->id, r->hdr.opcode,
               r->hdr.request_id);
    if (agt_exec_inline(l, r))
      continue;
    agt_lane_push_in(l, r);
    queued = true;
  }
  if (queued)
    agt_exec_submit(srv->exec, l);
  return;

out_nomem:
  why = "out of memory";
out_bad:
  agt_warn("%s: lane %llu: malformed record (%s); resetting the stream",
           st->conn->peer, (unsigned long long)l->id, why);
  agt_lane_abort(l);
  agt_st_rst(st, NGHTTP2_PROTOCOL_ERROR);
}

/* ---- request routing ---------------------------------------------------- */

/* Constant-time: the time taken does not depend on where they differ. */
static bool auth_ok(const struct agt_server *srv, const struct stream *st)
{
  unsigned diff;

  if (!srv->secret)
    return true;
  diff = st->auth_len != srv->secret_len || st->hdr_overflow;
  for (size_t i = 0; i < srv->secret_len; i++)
    diff |= (unsigned)(uint8_t)srv->secret[i] ^
            (unsigned)(uint8_t)(i < st->auth_len ? st->auth[i] : 0);
  return diff == 0;
}

void agt_route(struct stream *st)
{
  struct conn *c = st->conn;

  if (!auth_ok(c->srv, st)) {
    agt_warn("%s: request with a %s secret; closing the connection", c->peer,
             st->auth_len ? "wrong" : "missing");
    st->close_conn = true;
    agt_st_reply_text(st, 401, "authentication failed: missing or wrong "
                        "'authorization: Bearer <secret>'");
    return;
  }
  c->auth_by = 0;
  if (st->hdr_overflow) {
    agt_st_reply_text(st, 431, "request header value too long");
    return;
  }
  if (strcmp(st->method, "POST") != 0) {
    agt_st_reply_text(st, 405, "only POST is served");
    return;
  }
  if (strcmp(st->path, "/v1/hello") == 0)
    st->kind = ST_HELLO;
  else if (strcmp(st->path, "/v1/status") == 0)
    st->kind = ST_STATUS;
  else if (strcmp(st->path, "/v1/session") == 0)
    open_session(st);
  else if (strcmp(st->path, "/v1/lane") == 0)
    open_lane(st);
  else
    agt_st_reply_text(st, 404, "no such path: %s", st->path);
}

/* The request body ended (END_STREAM). */
void agt_request_end(struct stream *st)
{
  struct agt_lane *l;

  switch (st->kind) {
  case ST_HELLO:
    answer_hello(st);
    break;
  case ST_STATUS:
    answer_status(st);
    break;
  case ST_SESSION:
    if (st->sess)
      session_destroy(st->conn->srv, st->sess);
    break;
  case ST_LANE:
    l = st->lane;
    if (st->rst_sent)
      break;
    if (l->dec.have || l->skip) {
      agt_warn("%s: lane %llu: body ends inside a record; resetting",
               st->conn->peer, (unsigned long long)l->id);
      agt_lane_abort(l);
      agt_st_rst(st, NGHTTP2_PROTOCOL_ERROR);
      break;
    }
    agt_lane_end_in(l);
    agt_exec_submit(st->conn->srv->exec, l);
    break;
  default:
    break;
  }
}

/* Forget a stream: on close, or when its connection goes. */
void agt_stream_free(struct stream *st)
{
  struct conn *c = st->conn;
  struct agt_lane *l, **pp;
  struct agt_session *s;

  switch (st->kind) {
  case ST_SESSION:
    s = st->sess;
    if (s) {
      s->st = NULL;
      st->sess = NULL;
      session_destroy(c->srv, s);
    }
    break;
  case ST_LANE:
    l = st->lane;
    agt_lane_abort(l); /* a no-op for a lane that finished */
    /* Whatever was received and not yet credited is given back to the
       connection: the stream's own window no longer exists. */
    lane_credit_back(c, l);
    l->st = NULL;
    for (pp = &l->sess->lanes; *pp; pp = &(*pp)->sess_next) {
      if (*pp == l) {
        *pp = l->sess_next;
        break;
      }
    }
    agt_lane_put(l);
    break;
  default:
    break;
  }
  if (st->prev)
    st->prev->next = st->next;
  else
    c->streams = st->next;
  if (st->next)
    st->next->prev = st->prev;
  free(st->body);
  free(st->resp);
  free(st);
}
