/*
 * brk_client.c: clients on the Unix socket (PROTOCOL.md §2) and their
 * sessions on machines.
 *
 * A client is one SOCK_SEQPACKET connection; each packet is one record of
 * at most 64 KiB.  Only three opcodes travel on the socket: HELLO (once,
 * first), LANE_OPEN and LANE_CLOSE; everything else goes through lanes.
 * The socket admits only processes of the broker's own uid, and of its
 * --group if one was given (SO_PEERCRED, SO_PEERGROUPS); anyone else gets
 * a HELLO reply with TR_ST_AUTH and the reason, then the close.
 *
 * HELLO is answered with the devices: the machines that are ready, in
 * registry order, as CUDA ordinals 0..n-1.  If some machine is still
 * starting, the answer waits until none is (at most hello_wait_ms), so a
 * program started right after the broker sees every device.
 *
 * A client's session on a machine (struct brk_msess) is the /v1/session
 * stream; it is opened when a lane first sends a record to that machine
 * and ended when the client goes.  If the machine is lost, the session is
 * broken for good: its lanes answer what is outstanding and everything
 * later with TR_ST_MACHINE_LOST (the device memory is gone with it).
 *
 * Dropping a client (protocol violation, hang-up) is deferred to a task:
 * brk_client_drop() only marks it dead, so it can be called from deep
 * inside a lane or HTTP/2 callback.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "brk.h"
#include "brk_log.h"

#define PACKET_MAX (64u << 10)
#define REFUSE_MS 2000u /* a refused client's time to send HELLO */
#define BROKER_CAPS (TR_CAP_EXEC | TR_CAP_MODULE_CACHE | TR_CAP_DEFERRED)

static void arm_recv(struct brk_client *c);

/* ---- teardown --------------------------------------------------------------- */

static void teardown(struct brk_task *t, void *arg)
{
  struct brk_client *c = arg;
  struct brk *b = c->b;

  brk_op_cancel(c->recv_op);
  brk_op_cancel(c->hello_timer);
  c->recv_op = c->hello_timer = NULL;
  if (c->fd >= 0)
    close(c->fd);
  c->fd = -1;
  while (c->lanes)
    brk_lane_destroy(c->lanes);
  for (unsigned m = 0; m < BRK_MAX_MACHINES; m++) {
    struct brk_msess *ms = &c->ms[m];

    while (ms->lstreams)
      brk_lstream_orphan(ms->lstreams, 1);
    if (ms->st) {
      /* END_STREAM on /v1/session: the agent frees the session. */
      brk_h2_stream_end(ms->st);
      brk_h2_stream_detach(ms->st);
      ms->st = NULL;
    }
  }
  /* Uses still in flight (queued chunks) keep their regions mapped. */
  brk_regions_free(c);
  if (c->prev)
    c->prev->next = c->next;
  else
    b->clients = c->next;
  if (c->next)
    c->next->prev = c->prev;
  b->nclients--;
  if (c->hello_done) {
    b->ended.round_trips += c->n.round_trips;
    b->ended.records_to_agent += c->n.records_to_agent;
    b->ended.bytes_to_agent += c->n.bytes_to_agent;
    b->ended.bytes_from_agent += c->n.bytes_from_agent;
    b->ended.module_loads += c->n.module_loads;
    b->ended.module_misses += c->n.module_misses;
    b->ended.module_bytes += c->n.module_bytes;
    b->ended.express_lanes += c->n.express_lanes;
    b->ended.lane_moves += c->n.lane_moves;
    b->ended.lane_returns += c->n.lane_returns;
  }
  free(c->visible);
  free(c);
}

static void client_kill(struct brk_client *c)
{
  if (c->dead)
    return;
  c->dead = 1;
  /* Stop reading now; the rest happens in the task. */
  brk_op_cancel(c->recv_op);
  c->recv_op = NULL;
  brk_loop_defer(c->b->loop, &c->teardown);
}

void brk_client_drop(struct brk_client *c, const char *fmt, ...)
{
  char why[256];
  va_list ap;

  if (c->dead)
    return;
  va_start(ap, fmt);
  vsnprintf(why, sizeof(why), fmt, ap);
  va_end(ap);
  brk_warn("dropping client pid %d (uid %u, session %s): %s", (int)c->pid,
           (unsigned)c->uid, c->idhex, why);
  client_kill(c);
}

/* ---- sending ------------------------------------------------------------------ */

/*
 * One packet: header + up to two payload pieces, optionally with fds.
 * The socket is non-blocking; a client that lets its receive queue fill up
 * is not reading our answers and is dropped.
 */
static int send_packet(struct brk_client *c, const struct tr_hdr *h,
                       const void *p1, size_t l1, const void *p2, size_t l2,
                       const int *fds, int nfds)
{
  uint8_t hdr[TR_HDR_SIZE];
  struct iovec iov[3] = {{hdr, TR_HDR_SIZE}, {(void *)p1, l1}, {(void *)p2, l2}};
  union {
    struct cmsghdr hdr;
    char space[CMSG_SPACE(sizeof(int) * 3)];
  } u;
  struct msghdr msg = {0};
  ssize_t n;

  tr_hdr_pack(h, hdr);
  msg.msg_iov = iov;
  msg.msg_iovlen = 3;
  if (nfds) {
    struct cmsghdr *cm;

    memset(&u, 0, sizeof(u));
    msg.msg_control = u.space;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
    cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
    memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)nfds);
  }
  do {
    n = sendmsg(c->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN)
      brk_client_drop(c, "it does not read the broker's answers");
    else if (errno != EPIPE && errno != ECONNRESET)
      brk_client_drop(c, "send failed: %s", strerror(errno));
    else
      client_kill(c);
    return -1;
  }
  return 0;
}

static void reply_status(struct brk_client *c, const struct tr_hdr *req,
                         uint32_t status, const void *p, size_t len)
{
  struct tr_hdr h;

  tr_hdr_init(&h, req->opcode, TR_F_REPLY, req->request_id, (uint32_t)len);
  h.status = status;
  (void)send_packet(c, &h, p, len, NULL, 0, NULL, 0);
}

/* ---- HELLO --------------------------------------------------------------------- */

/*
 * The machines a client sees, in CUDA ordinal order, into list (returns
 * how many): every ready machine in registry order, or, when the program
 * set TREMOTE_VISIBLE_DEVICES, what it names with CUDA_VISIBLE_DEVICES'
 * rules: comma-separated machine indices (as tremote-smi shows them) or
 * machine names, in the order given; the first entry that names no
 * machine, a machine that is not ready, or one already listed ends the
 * list.  Set but empty: no devices.
 */
/*
 * The machine entry p[0, len) of a TREMOTE_VISIBLE_DEVICES list names (an
 * index or a name, blanks around it ignored), or NULL.
 */
static struct brk_machine *listed_machine(const struct brk *b, const char *p,
                                          size_t len)
{
  char tok[BRK_MNAME_MAX];
  const char *q;

  while (len && *p == ' ')
    p++, len--;
  while (len && p[len - 1] == ' ')
    len--;
  if (len == 0 || len >= sizeof(tok))
    return NULL;
  memcpy(tok, p, len);
  tok[len] = 0;
  if (strcmp(tok, "-1") == 0)
    return NULL; /* CUDA's "no devices": ends the list, never a name */
  for (q = tok; *q >= '0' && *q <= '9'; q++)
    ;
  for (unsigned i = 0; i < b->nmachines; i++)
    if (*q ? !b->machines[i]->removed &&
                 strcmp(b->machines[i]->name, tok) == 0
           : len <= 9 && strtoul(tok, NULL, 10) == b->machines[i]->index)
      return b->machines[i];
  return NULL;
}

int brk_client_wants(const struct brk_client *c, const struct brk_machine *m)
{
  const char *p = c->visible;

  if (!p)
    return 1;
  while (*p) {
    const char *e = strchr(p, ',');

    if (listed_machine(c->b, p, e ? (size_t)(e - p) : strlen(p)) == m)
      return 1;
    if (!e)
      break;
    p = e + 1;
  }
  return 0;
}

static unsigned visible_machines(const struct brk_client *c,
                                 struct brk_machine **list)
{
  const struct brk *b = c->b;
  const char *p = c->visible;
  unsigned n = 0;

  if (!p) {
    for (unsigned i = 0; i < b->nmachines; i++)
      if (b->machines[i]->state == BRK_M_READY)
        list[n++] = b->machines[i];
    return n;
  }
  while (*p && n < b->nmachines) {
    const char *e = strchr(p, ',');
    struct brk_machine *m =
        listed_machine(b, p, e ? (size_t)(e - p) : strlen(p));

    if (!m || m->state != BRK_M_READY)
      break;
    for (unsigned i = 0; i < n; i++)
      if (list[i] == m)
        m = NULL;
    if (!m)
      break;
    list[n++] = m;
    if (!e)
      break;
    p = e + 1;
  }
  return n;
}

static void hello_answer(struct brk_client *c)
{
  struct tr_hello h = {c->hello_ver, c->hello_ver, TR_ROLE_BROKER,
                       c->hello_caps, (uint32_t)getpid(), 0};
  uint8_t *extra;
  size_t room = PACKET_MAX - TR_HDR_SIZE - TR_HELLO_SIZE, len = 8;
  uint8_t hb[TR_HELLO_SIZE];
  struct tr_hdr rh;
  unsigned ndev = 0, nvis;
  struct brk_machine *vis[BRK_MAX_MACHINES];

  brk_op_cancel(c->hello_timer);
  c->hello_timer = NULL;
  c->hello_waiting = 0;
  extra = malloc(room);
  if (!extra) {
    brk_client_drop(c, "out of memory answering HELLO");
    return;
  }
  for (unsigned m = 0; m < BRK_MAX_MACHINES; m++)
    c->m2ord[m] = -1;
  nvis = visible_machines(c, vis);
  for (unsigned i = 0; i < nvis; i++) {
    struct brk_machine *m = vis[i];
    struct tr_devinfo d;

    d = m->dev;
    d.va_base = BRK_VA_BASE + (uint64_t)m->index * BRK_VA_WINDOW;
    d.va_size = BRK_VA_WINDOW;
    d.machine_index = m->index;
    if (len + tr_devinfo_size(&d) > room) {
      brk_warn("client pid %d: HELLO reply full after %u devices", (int)c->pid,
               ndev);
      break;
    }
    tr_devinfo_pack(&d, extra + len);
    len += tr_devinfo_size(&d);
    c->ord2m[ndev] = (uint8_t)m->index;
    c->m2ord[m->index] = (int16_t)ndev;
    c->ms[m->index].m = m; /* it may have been added since the accept */
    ndev++;
  }
  /* Then each device's machine name (a u8 length and its bytes), so a
     program's messages can name the machine (flag TR_HELLO_NAMES). */
  {
    size_t at = len;
    int fit = 1;

    for (unsigned i = 0; i < ndev && fit; i++) {
      const char *nm = c->b->machines[c->ord2m[i]]->name;
      size_t n = strlen(nm);

      fit = at + 1 + n <= room;
      if (fit) {
        extra[at] = (uint8_t)n;
        memcpy(extra + at + 1, nm, n);
        at += 1 + n;
      }
    }
    if (fit)
      len = at;
    tr_put_u32(extra + 4, fit ? TR_HELLO_NAMES : 0);
  }
  tr_put_u32(extra, ndev);
  c->ndev = ndev;
  h.extra_len = (uint32_t)len;
  tr_hello_pack(&h, hb);
  tr_hdr_init(&rh, TR_OP_HELLO, TR_F_REPLY, c->hello_req.request_id,
              (uint32_t)(TR_HELLO_SIZE + len));
  if (send_packet(c, &rh, hb, TR_HELLO_SIZE, extra, len, NULL, 0) == 0) {
    c->hello_done = 1;
    c->b->sessions_total++;
    brk_info("client pid %d (uid %u) connected: session %s, %u device(s)",
             (int)c->pid, (unsigned)c->uid, c->idhex, ndev);
  }
  free(extra);
}

static void on_hello_timeout(struct brk_op *op, int res, void *arg)
{
  struct brk_client *c = arg;

  c->hello_timer = NULL;
  if (c->hello_waiting && !c->dead) {
    brk_warn("client pid %d: machines still starting after %u ms; answering "
             "HELLO with the ready ones", (int)c->pid, c->b->cfg.hello_wait_ms);
    hello_answer(c);
  }
}

/* The options of a client's HELLO (PROTOCOL.md §5); unknown tags are
   skipped.  -1 when the client was dropped. */
static int hello_options(struct brk_client *c, const uint8_t *p, size_t len)
{
  while (len) {
    uint16_t tag;
    uint32_t n;

    if (len < 8 || (n = tr_get_u32(p + 4)) > len - 8) {
      brk_client_drop(c, "malformed HELLO options");
      return -1;
    }
    tag = tr_get_u16(p);
    if (tag == TR_HELLO_VISIBLE) {
      if (n > TR_HELLO_VISIBLE_MAX || memchr(p + 8, 0, n) || c->visible) {
        brk_client_drop(c, "malformed TREMOTE_VISIBLE_DEVICES in HELLO");
        return -1;
      }
      c->visible = strndup((const char *)p + 8, n);
      if (!c->visible) {
        brk_client_drop(c, "out of memory");
        return -1;
      }
    }
    p += 8 + n;
    len -= 8 + n;
  }
  return 0;
}

static void on_hello(struct brk_client *c, const struct tr_hdr *h,
                     const uint8_t *p)
{
  struct tr_hello mine = {TR_PROTO_VERSION_MIN, TR_PROTO_VERSION_MAX,
                          TR_ROLE_BROKER, BROKER_CAPS, 0, 0};
  struct tr_hello theirs;
  int ver;

  if (c->hello_done || c->hello_waiting) {
    brk_client_drop(c, "second HELLO");
    return;
  }
  if (c->refused) {
    const struct brk *b = c->b;
    char msg[200];
    int n = snprintf(msg, sizeof(msg),
                     "this broker admits only uid %u%s; uid %u is not "
                     "admitted (start your own broker, or ask for "
                     "tremote-broker --group)",
                     (unsigned)b->uid, b->cfg.group_set ? " and its group"
                                                        : "",
                     (unsigned)c->uid);

    reply_status(c, h, TR_ST_AUTH, msg, (size_t)n);
    client_kill(c);
    return;
  }
  if (tr_hello_unpack(p, h->payload_len, &theirs) < 0) {
    brk_client_drop(c, "malformed HELLO");
    return;
  }
  if (theirs.pid && theirs.pid != (uint32_t)c->pid)
    brk_dbg("client pid %d says it is pid %u", (int)c->pid, theirs.pid);
  if (hello_options(c, p + TR_HELLO_SIZE, theirs.extra_len) < 0)
    return; /* dropped */
  ver = tr_hello_choose(&mine, &theirs);
  if (ver < 0) {
    char msg[128];
    int n = snprintf(msg, sizeof(msg),
                     "no common protocol version: broker speaks %u..%u, "
                     "client %u..%u", TR_PROTO_VERSION_MIN, TR_PROTO_VERSION_MAX,
                     theirs.min_version, theirs.max_version);

    brk_warn("client pid %d: %s", (int)c->pid, msg);
    reply_status(c, h, TR_ST_VERSION, msg, (size_t)n);
    client_kill(c);
    return;
  }
  c->hello_req = *h;
  c->hello_ver = (uint16_t)ver;
  c->hello_caps = theirs.caps & BROKER_CAPS;
  brk_modal_wake(c); /* machines it may use, stopped while idle, come back */
  if (brk_machines_starting(c->b, c)) {
    c->hello_waiting = 1;
    c->hello_timer = brk_loop_timeout(c->b->loop, c->b->cfg.hello_wait_ms,
                                      on_hello_timeout, c);
    brk_dbg("client pid %d: HELLO waits for machines to start", (int)c->pid);
    if (c->hello_timer)
      return;
  }
  hello_answer(c);
}

void brk_clients_machines_changed(struct brk *b)
{
  struct brk_client *c, *next;

  if (!brk_machines_starting(b, NULL)) {
    for (c = b->clients; c; c = c->next)
      if (c->hello_waiting && !c->dead)
        hello_answer(c);
    return;
  }
  for (c = b->clients; c; c = next) {
    next = c->next;
    if (c->hello_waiting && !c->dead && !brk_machines_starting(b, c))
      hello_answer(c);
  }
}

/* ---- lanes ------------------------------------------------------------------------ */

static void on_lane_open(struct brk_client *c, const struct tr_hdr *h,
                         const uint8_t *p)
{
  struct brk_lane *ln;
  uint8_t info[16];
  struct tr_hdr rh;
  int memfd = -1, rc, fds[3], prio = 0;

  if (h->payload_len == 4)
    prio = (int32_t)tr_get_u32(p);
  if ((h->payload_len != 0 && h->payload_len != 4) ||
      prio != tr_priority_clamp(prio)) {
    brk_warn("client pid %d: refusing a lane: LANE_OPEN takes no payload or "
             "a priority from %d to %d", (int)c->pid, TR_PRIORITY_GREATEST,
             TR_PRIORITY_LEAST);
    reply_status(c, h, 1 /* cudaErrorInvalidValue */, NULL, 0);
    return;
  }

  if (c->nlanes >= BRK_MAX_LANES_PER_CLIENT) {
    brk_warn("client pid %d: refusing lane %u: at most %u lanes per client",
             (int)c->pid, c->nlanes + 1, BRK_MAX_LANES_PER_CLIENT);
    reply_status(c, h, 2 /* cudaErrorMemoryAllocation */, NULL, 0);
    return;
  }
  rc = brk_lane_new(c, &ln, &memfd);
  if (rc == 0)
    ln->priority = prio;
  if (rc < 0) {
    brk_err("client pid %d: cannot create a lane: %s", (int)c->pid,
            strerror(-rc));
    reply_status(c, h, 2 /* cudaErrorMemoryAllocation */, NULL, 0);
    return;
  }
  tr_put_u32(info, ln->id);
  tr_put_u32(info + 4, 0);
  tr_put_u64(info + 8, ln->l.size);
  tr_hdr_init(&rh, TR_OP_LANE_OPEN, TR_F_REPLY, h->request_id, sizeof(info));
  fds[0] = memfd;
  fds[1] = ln->l.req_efd;
  fds[2] = ln->l.rep_efd;
  rc = send_packet(c, &rh, info, sizeof(info), NULL, 0, fds, 3);
  /* The shim has its own copy now; we keep the mapping and the eventfds. */
  close(memfd);
  if (rc == 0)
    brk_dbg("client pid %d: lane %u open", (int)c->pid, ln->id);
}

static void on_lane_close(struct brk_client *c, const struct tr_hdr *h,
                          const uint8_t *p)
{
  struct brk_lane *ln;
  uint32_t id;

  if (h->payload_len < 4) {
    brk_client_drop(c, "LANE_CLOSE without a lane id");
    return;
  }
  id = tr_get_u32(p);
  for (ln = c->lanes; ln; ln = ln->next)
    if (ln->id == id && !ln->closing)
      break;
  if (!ln) {
    brk_client_drop(c, "LANE_CLOSE of lane %u, which it does not have", id);
    return;
  }
  /* No reply: the closing thread does not wait for one (see
     tools/common/client.c). */
  brk_lane_close(ln);
}

/* ---- regions ------------------------------------------------------------------------- */

/* REGION_ADD: u64 size, the memfd passed with it (fd, ours to close). */
static void on_region_add(struct brk_client *c, const struct tr_hdr *h,
                          const uint8_t *p, int fd)
{
  const char *why = NULL;
  uint8_t out[4];
  uint32_t id = 0;
  int rc;

  if (h->payload_len < 8 || fd < 0) {
    if (fd >= 0)
      close(fd);
    brk_client_drop(c, "REGION_ADD without a size or a descriptor");
    return;
  }
  rc = brk_region_add(c, fd, tr_get_u64(p), &id, &why);
  close(fd);
  if (rc < 0) {
    /* The shim falls back to unshared memory; say why once here. */
    brk_warn("client pid %d: region refused: %s", (int)c->pid, why);
    reply_status(c, h, 2 /* cudaErrorMemoryAllocation */, NULL, 0);
    return;
  }
  tr_put_u32(out, id);
  reply_status(c, h, 0, out, sizeof(out));
}

static void on_region_del(struct brk_client *c, const struct tr_hdr *h,
                          const uint8_t *p)
{
  if (h->payload_len < 4 || brk_region_del(c, tr_get_u32(p)) < 0) {
    brk_client_drop(c, "REGION_DEL of a region it does not have");
    return;
  }
  /* No reply: cudaFreeHost does not wait for the broker. */
}

/* ---- receiving ------------------------------------------------------------------------ */

/* The descriptor passed with a packet, or -1; any others are closed. */
static int take_fd(struct msghdr *msg)
{
  int fd = -1;

  for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm;
       cm = CMSG_NXTHDR(msg, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
      continue;
    size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < n; i++) {
      int f;

      memcpy(&f, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
      if (fd < 0)
        fd = f;
      else
        close(f);
    }
  }
  return fd;
}

/* One packet; *fd is the descriptor that came with it (-1: none), set to
   -1 when it was handed on (the caller closes it otherwise). */
static void on_packet(struct brk_client *c, const uint8_t *buf, size_t len,
                      int *fd)
{
  struct tr_hdr h;
  const char *why = NULL;

  if (len < TR_HDR_SIZE) {
    brk_client_drop(c, "short packet (%zu bytes)", len);
    return;
  }
  tr_hdr_unpack(buf, &h);
  if (tr_hdr_check(&h, PACKET_MAX - TR_HDR_SIZE, 0, &why) < 0) {
    brk_client_drop(c, "bad record on the socket: %s", why);
    return;
  }
  if (h.payload_len != len - TR_HDR_SIZE) {
    brk_client_drop(c, "record length %u does not match its packet (%zu)",
                    h.payload_len, len);
    return;
  }
  if (h.flags & (TR_F_REPLY | TR_F_MORE | TR_F_SHMREF | TR_F_DEST |
                 TR_F_PLACED | TR_F_DEFERRED)) {
    brk_client_drop(c, "unexpected flags 0x%x on the socket", h.flags);
    return;
  }
  if (h.opcode != TR_OP_HELLO && !c->hello_done) {
    brk_client_drop(c, "%s before HELLO", tr_op_name(h.opcode));
    return;
  }
  switch (h.opcode) {
  case TR_OP_HELLO:
    on_hello(c, &h, buf + TR_HDR_SIZE);
    break;
  case TR_OP_LANE_OPEN:
    on_lane_open(c, &h, buf + TR_HDR_SIZE);
    break;
  case TR_OP_LANE_CLOSE:
    on_lane_close(c, &h, buf + TR_HDR_SIZE);
    break;
  case TR_OP_REGION_ADD:
    on_region_add(c, &h, buf + TR_HDR_SIZE, *fd);
    *fd = -1;
    break;
  case TR_OP_REGION_DEL:
    on_region_del(c, &h, buf + TR_HDR_SIZE);
    break;
  default:
    /* A real record on the wrong channel: say so, keep the client. */
    reply_status(c, &h, TR_ST_BAD_OPCODE, NULL, 0);
    break;
  }
}

static void on_recv(struct brk_op *op, int res, void *arg)
{
  struct brk_client *c = arg;
  /* Descriptors are ours from here on, whatever becomes of the packet. */
  int fd = res > 0 ? take_fd(brk_op_msg(op)) : -1;

  c->recv_op = NULL;
  if (c->dead)
    goto out;
  if (res == 0) {
    brk_info("client pid %d disconnected (session %s)", (int)c->pid, c->idhex);
    client_kill(c);
    goto out;
  }
  if (res < 0) {
    if (res == -ECONNRESET)
      brk_info("client pid %d disconnected (session %s)", (int)c->pid,
               c->idhex);
    else
      brk_warn("client pid %d: receive failed: %s", (int)c->pid,
               strerror(-res));
    client_kill(c);
    goto out;
  }
  if ((size_t)res > PACKET_MAX) {
    brk_client_drop(c, "packet larger than %u bytes", PACKET_MAX);
    goto out;
  }
  /* Arm the next receive before handling: handling may drop the client,
     which cancels it again. */
  arm_recv(c);
  on_packet(c, brk_op_buf(op), (size_t)res, &fd);
out:
  if (fd >= 0)
    close(fd);
}

static void arm_recv(struct brk_client *c)
{
  if (c->dead || c->recv_op)
    return;
  /* One byte more than a packet may be, so an oversized one shows. */
  c->recv_op = brk_loop_recvmsg(c->b->loop, c->fd, PACKET_MAX + 1,
                                CMSG_SPACE(sizeof(int) * 4), MSG_CMSG_CLOEXEC,
                                on_recv, c);
  if (!c->recv_op)
    brk_client_drop(c, "cannot submit a receive");
}

/* ---- accepting ------------------------------------------------------------------------ */

static void on_accept(struct brk_op *op, int res, void *arg);

static void arm_accept(struct brk *b)
{
  if (b->stopping || b->accept_op)
    return;
  b->accept_op = brk_loop_accept(b->loop, b->listen_fd, on_accept, b);
  if (!b->accept_op)
    brk_err("cannot accept clients: %s", strerror(errno));
}

/* Whether the peer on fd belongs to --group (its primary or one of its
   supplementary groups, as the kernel reports them). */
static int in_group(const struct brk *b, int fd, const struct ucred *cred)
{
  gid_t groups[256];
  socklen_t len = sizeof(groups);

  if (!b->cfg.group_set)
    return 0;
  if (cred->gid == b->cfg.group)
    return 1;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
    return 0;
  for (size_t i = 0; i < len / sizeof(gid_t); i++)
    if (groups[i] == b->cfg.group)
      return 1;
  return 0;
}

/* A refused client that said no HELLO in time. */
static void on_refuse_timeout(struct brk_op *op, int res, void *arg)
{
  struct brk_client *c = arg;

  (void)op;
  (void)res;
  c->hello_timer = NULL;
  client_kill(c);
}

static void on_accept_retry(struct brk_op *op, int res, void *arg)
{
  struct brk *b = arg;

  (void)op;
  (void)res;
  b->accept_op = NULL;
  arm_accept(b);
}

static void on_accept(struct brk_op *op, int res, void *arg)
{
  struct brk *b = arg;
  struct brk_client *c;
  struct ucred cred;
  socklen_t len = sizeof(cred);
  uint64_t id;

  b->accept_op = NULL;
  if (brk_accept_starved(b, res, BRK_ACCEPT_CLIENTS, "client socket")) {
    if (!b->stopping)
      b->accept_op = brk_loop_timeout(b->loop, BRK_ACCEPT_RETRY_MS,
                                      on_accept_retry, b);
    return;
  }
  arm_accept(b);
  if (res < 0) {
    if (res != -EAGAIN && res != -EINTR && res != -ECONNABORTED)
      brk_warn("accept failed: %s", strerror(-res));
    return;
  }
  if (getsockopt(res, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
    brk_warn("rejecting a client: SO_PEERCRED: %s", strerror(errno));
    close(res);
    return;
  }
  if (b->nclients >= BRK_MAX_CLIENTS) {
    brk_warn("rejecting client pid %d: %u clients already", (int)cred.pid,
             b->nclients);
    close(res);
    return;
  }
  c = calloc(1, sizeof(*c));
  if (!c || getrandom(&id, sizeof(id), 0) != (ssize_t)sizeof(id)) {
    brk_err("rejecting client pid %d: out of resources", (int)cred.pid);
    free(c);
    close(res);
    return;
  }
  c->b = b;
  c->fd = res;
  c->pid = cred.pid;
  c->uid = cred.uid;
  c->id = id;
  snprintf(c->idhex, sizeof(c->idhex), "%016llx", (unsigned long long)id);
  for (unsigned m = 0; m < BRK_MAX_MACHINES; m++) {
    c->ms[m].c = c;
    c->ms[m].m = m < b->nmachines ? b->machines[m] : NULL;
    c->m2ord[m] = -1;
  }
  brk_task_init(&c->teardown, teardown, c);
  c->next = b->clients;
  if (b->clients)
    b->clients->prev = c;
  b->clients = c;
  b->nclients++;
  /* Someone not admitted is told so in answer to its HELLO (closing at
     once would reset the connection and lose the reason), and closed
     after REFUSE_MS if no HELLO comes: it holds a client slot till then. */
  c->refused = cred.uid != b->uid && !in_group(b, res, &cred);
  if (c->refused) {
    brk_warn("rejecting client pid %d: uid %u is neither the broker's uid "
             "%u nor in its --group", (int)c->pid, (unsigned)c->uid,
             (unsigned)b->uid);
    c->hello_timer = brk_loop_timeout(b->loop, REFUSE_MS, on_refuse_timeout,
                                      c);
    if (!c->hello_timer) {
      client_kill(c);
      return;
    }
  }
  brk_dbg("client pid %d accepted", (int)c->pid);
  arm_recv(c);
}

int brk_clients_start(struct brk *b)
{
  arm_accept(b);
  return b->accept_op ? 0 : -ENOMEM;
}

void brk_clients_stop(struct brk *b)
{
  struct brk_client *c, *next;

  brk_op_cancel(b->accept_op);
  b->accept_op = NULL;
  for (c = b->clients; c; c = next) {
    next = c->next;
    brk_task_cancel(b->loop, &c->teardown);
    c->dead = 1;
    teardown(&c->teardown, c);
  }
}

/* ---- sessions ------------------------------------------------------------------------- */

static void ms_on_response(struct brk_h2_stream *st, void *user, int status)
{
  struct brk_msess *ms = user;
  char why[64];

  if (status == 200) {
    ms->confirmed = 1;
    brk_lanes_kick(ms->c);
    return;
  }
  snprintf(why, sizeof(why), "the agent refused the session (HTTP %d)", status);
  brk_warn("%s: client pid %d: %s", ms->m->name, (int)ms->c->pid, why);
  brk_msess_broken(ms, why);
}

static int ms_on_data(struct brk_h2_stream *st, void *user, const uint8_t *d,
                      size_t len)
{
  brk_h2_stream_consume(st, len); /* nothing is expected; ignore it */
  return 0;
}

static void ms_on_end(struct brk_h2_stream *st, void *user)
{
  brk_msess_broken(user, "the agent ended the session");
}

static void ms_on_close(struct brk_h2_stream *st, void *user, uint32_t code)
{
  struct brk_msess *ms = user;

  ms->st = NULL;
  brk_msess_broken(ms, code == BRK_H2_ERR_LOST ? "connection to the machine lost"
                                               : "session stream closed");
}

static const struct brk_h2_stream_cbs ms_cbs = {
    .on_response = ms_on_response,
    .on_data = ms_on_data,
    .on_end = ms_on_end,
    .on_close = ms_on_close,
};

struct brk_msess *brk_msess_get(struct brk_client *c, unsigned m)
{
  struct brk_msess *ms = &c->ms[m];
  struct brk_machine *mach = ms->m;
  struct brk_h2_hdr hdrs[2];
  char va[48];

  if (ms->state == BRK_MS_BROKEN || !mach)
    return NULL;
  if (mach->state != BRK_M_READY || !mach->h2 || brk_h2_dead(mach->h2))
    return NULL;
  if (ms->state == BRK_MS_OPEN)
    return ms->gen == mach->gen ? ms : NULL;
  snprintf(va, sizeof(va), "%llx+%llx",
           (unsigned long long)(BRK_VA_BASE + (uint64_t)m * BRK_VA_WINDOW),
           (unsigned long long)BRK_VA_WINDOW);
  hdrs[0] = (struct brk_h2_hdr){"tremote-session", c->idhex};
  hdrs[1] = (struct brk_h2_hdr){"tremote-va", va};
  ms->st = brk_h2_post(mach->h2, "/v1/session", hdrs, 2, &ms_cbs, ms);
  if (!ms->st)
    return NULL;
  ms->state = BRK_MS_OPEN;
  ms->confirmed = 0;
  ms->gen = mach->gen;
  brk_dbg("client pid %d: session %s opened on %s", (int)c->pid, c->idhex,
          mach->name);
  return ms;
}

void brk_msess_broken(struct brk_msess *ms, const char *why)
{
  struct brk_h2_stream *st;

  if (ms->state != BRK_MS_OPEN)
    return;
  ms->state = BRK_MS_BROKEN;
  if (!ms->c->dead)
    brk_warn("client pid %d: session on %s broken: %s", (int)ms->c->pid,
             ms->m->name, why);
  while (ms->lstreams)
    brk_lstream_fail(ms->lstreams);
  if (!ms->c->dead)
    brk_lanes_kick(ms->c); /* a lane waiting for the session: answered */
  st = ms->st;
  ms->st = NULL;
  if (st) {
    brk_h2_stream_reset(st);
    brk_h2_stream_detach(st);
  }
}

void brk_clients_machine_lost(struct brk *b, struct brk_machine *m)
{
  struct brk_client *c;

  for (c = b->clients; c; c = c->next)
    brk_msess_broken(&c->ms[m->index], "machine lost");
}

void brk_clients_tick(struct brk *b)
{
  uint64_t now = brk_now_ms();
  struct brk_client *c;
  struct brk_lane *ln;

  for (c = b->clients; c; c = c->next) {
    if (c->dead)
      continue;
    for (ln = c->lanes; ln && !c->dead; ln = ln->next) {
      for (unsigned m = 0; m < BRK_MAX_MACHINES; m++) {
        struct brk_lstream *ls = ln->ls[m];

        if (ls && ls->paused_conn &&
            now - ls->paused_since_ms >= b->cfg.stall_ms) {
          /* Its full reply ring holds up every client of that machine. */
          brk_client_drop(c, "lane %u has not taken its replies for %u ms, "
                             "holding up %s", ln->id, b->cfg.stall_ms,
                          ls->ms->m->name);
          break;
        }
      }
    }
  }
}
