/*
 * client.c: the client side of the lane leg.  See client.h and
 * docs/PROTOCOL.md §2.
 *
 * Waiting is the delicate part.  A thread waits for one of three things:
 * a reply (it consumes the reply ring), room in the request ring, or room
 * in the upload area (it produces those).  In every case it announces
 * itself with a flag in the shared control block, re-checks, and only then
 * sleeps on its doorbell (rep_efd), together with the broker socket so a
 * dead broker ends the wait instead of hanging the program.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "trace.h"


const char *tr_client_socket_path(char *buf, size_t len)
{
  const char *env = getenv("TREMOTE_BROKER_SOCKET");
  const char *xdg = getenv("XDG_RUNTIME_DIR");

  if (env && *env)
    snprintf(buf, len, "%s", env);
  else if (xdg && *xdg)
    snprintf(buf, len, "%s/tremote/broker.sock", xdg);
  else if (getuid() == 0)
    snprintf(buf, len, "/run/tremote/broker.sock");
  else
    snprintf(buf, len, "/tmp/tremote-%u/broker.sock", (unsigned)getuid());
  return buf;
}

static long now_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Send one control record (header + payload) as one packet. */
/* Send one control packet, with descriptor fd when fd >= 0. */
static int ctl_send_fd(struct tr_client *c, uint16_t op, uint16_t flags,
                       uint64_t id, const void *payload, uint32_t len, int fd)
{
  uint8_t buf[TR_HDR_SIZE];
  union {
    struct cmsghdr hdr;
    char space[CMSG_SPACE(sizeof(int))];
  } u;
  struct iovec iov[2];
  struct msghdr msg = {0};
  struct tr_hdr h;
  ssize_t n;

  if (len > TR_CTL_PAYLOAD_MAX)
    return -EMSGSIZE;
  tr_hdr_init(&h, op, flags, id, len);
  tr_hdr_pack(&h, buf);
  iov[0] = (struct iovec){buf, TR_HDR_SIZE};
  iov[1] = (struct iovec){(void *)payload, len};
  msg.msg_iov = iov;
  msg.msg_iovlen = len ? 2 : 1;
  if (fd >= 0) {
    struct cmsghdr *cm;

    memset(&u, 0, sizeof(u));
    msg.msg_control = u.space;
    msg.msg_controllen = sizeof(u.space);
    cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof(int));
  }
  do {
    n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0)
    return -errno;
  return 0;
}

static int ctl_send(struct tr_client *c, uint16_t op, uint16_t flags,
                    uint64_t id, const void *payload, uint32_t len)
{
  return ctl_send_fd(c, op, flags, id, payload, len, -1);
}

/*
 * Receive one control reply into buf (cap bytes), with up to nfds passed
 * descriptors.  Waits at most timeout_ms (< 0: forever).  Returns the
 * packet length or -errno; descriptors received beyond nfds are closed.
 */
static long ctl_recv(struct tr_client *c, uint8_t *buf, size_t cap, int *fds,
                     int nfds, int *got_fds, int timeout_ms)
{
  union {
    struct cmsghdr hdr;
    char space[CMSG_SPACE(sizeof(int) * 8)];
  } u;
  struct iovec iov = {buf, cap};
  struct msghdr msg = {0};
  struct cmsghdr *cm;
  struct pollfd pfd = {c->fd, POLLIN, 0};
  ssize_t n;
  int rc;

  *got_fds = 0;
  do {
    rc = poll(&pfd, 1, timeout_ms);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0)
    return -errno;
  if (rc == 0)
    return -ETIMEDOUT;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = u.space;
  msg.msg_controllen = sizeof(u.space);
  do {
    n = recvmsg(c->fd, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0)
    return -errno;
  if (n == 0)
    return -ENOTCONN;
  for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
      continue;
    int cnt = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    int tmp[8];
    memcpy(tmp, CMSG_DATA(cm), sizeof(int) * (size_t)(cnt > 8 ? 8 : cnt));
    for (int i = 0; i < cnt && i < 8; i++) {
      if (*got_fds < nfds)
        fds[(*got_fds)++] = tmp[i];
      else
        close(tmp[i]);
    }
  }
  if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
    return -EMSGSIZE;
  return (long)n;
}

int tr_client_connect(struct tr_client *c, const char *path, int timeout_ms,
                      const char **why)
{
  return tr_client_connect_caps(c, path, timeout_ms, TR_CLIENT_CAPS, why);
}

int tr_client_connect_caps(struct tr_client *c, const char *path,
                           int timeout_ms, uint64_t caps, const char **why)
{
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  char pbuf[sizeof(sa.sun_path)];
  uint8_t *rbuf = NULL;
  struct tr_hello mine = {TR_PROTO_VERSION_MIN, TR_PROTO_VERSION_MAX,
                          TR_ROLE_SHIM, caps, (uint32_t)getpid(), 0};
  struct tr_hello theirs;
  struct tr_hdr h;
  const size_t cap = 1u << 16;
  long n, deadline = now_ms() + timeout_ms;
  int rc, nf;
  const char *dummy;

  if (!why)
    why = &dummy;
  *why = NULL;
  memset(c, 0, sizeof(*c));
  c->fd = -1;
  pthread_mutex_init(&c->lock, NULL);
  if (!path)
    path = tr_client_socket_path(pbuf, sizeof(pbuf));
  if (strlen(path) >= sizeof(sa.sun_path)) {
    *why = "broker socket path too long";
    rc = -ENAMETOOLONG;
    goto out_fail;
  }
  strcpy(sa.sun_path, path);
  c->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (c->fd < 0) {
    rc = -errno;
    goto out_fail;
  }
  if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
    rc = -errno;
    *why = rc == -EACCES ? "the broker's socket is not open to this user "
                           "(a broker admits its own user and its --group)"
                         : "no broker is listening";
    goto out_fail;
  }
  {
    /* The default socket lies in a directory another user may have made
       first (/tmp/tremote-$UID): whoever listens there must be this user
       or root, or the program would hand its work and data to a stranger.
       A socket named in TREMOTE_BROKER_SOCKET is the user's choice (the
       --group broker of another user). */
    const char *named = getenv("TREMOTE_BROKER_SOCKET");
    struct ucred cred = {0};
    socklen_t clen = sizeof(cred);

    if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0) {
      rc = -errno;
      *why = "cannot learn who listens on the broker's socket";
      goto out_fail;
    }
    if (cred.uid != getuid() && cred.uid != 0 &&
        !(named && *named && strcmp(named, path) == 0)) {
      snprintf(c->refusal, sizeof(c->refusal),
               "it is served by uid %u, not by this user (uid %u) or root; "
               "set TREMOTE_BROKER_SOCKET to that path to use it anyway",
               (unsigned)cred.uid, (unsigned)getuid());
      *why = c->refusal;
      rc = -EPERM;
      goto out_fail;
    }
  }
  {
    /* The program's TREMOTE_VISIBLE_DEVICES goes to the broker, which
       picks the devices with it (CUDA_VISIBLE_DEVICES semantics). */
    const char *vis = getenv("TREMOTE_VISIBLE_DEVICES");
    uint8_t msg[TR_HELLO_SIZE + 8 + TR_HELLO_VISIBLE_MAX];
    size_t vlen = vis ? strlen(vis) : 0, mlen = TR_HELLO_SIZE;

    if (vlen > TR_HELLO_VISIBLE_MAX) {
      *why = "TREMOTE_VISIBLE_DEVICES is longer than 4096 characters";
      rc = -EINVAL;
      goto out_fail;
    }
    if (vis) {
      mine.extra_len = (uint32_t)(8 + vlen);
      tr_put_u16(msg + TR_HELLO_SIZE, TR_HELLO_VISIBLE);
      tr_put_u16(msg + TR_HELLO_SIZE + 2, 0);
      tr_put_u32(msg + TR_HELLO_SIZE + 4, (uint32_t)vlen);
      memcpy(msg + TR_HELLO_SIZE + 8, vis, vlen);
      mlen = TR_HELLO_SIZE + 8 + vlen;
    }
    tr_hello_pack(&mine, msg);
    rc = ctl_send(c, TR_OP_HELLO, TR_F_WANT_REPLY, ++c->next_ctl_id, msg,
                  mlen);
  }
  /* A broker that refuses this user says why and closes, maybe before
     the HELLO went: the reason is still there to read. */
  if (rc < 0 && rc != -EPIPE && rc != -ECONNRESET)
    goto out_fail;
  rbuf = malloc(cap);
  if (!rbuf) {
    rc = -ENOMEM;
    goto out_fail;
  }
  n = ctl_recv(c, rbuf, cap, NULL, 0, &nf,
               timeout_ms < 0 ? -1 : (int)(deadline - now_ms()));
  if (n < 0) {
    rc = (int)n;
    *why = rc == -ETIMEDOUT ? "the broker did not answer HELLO in time"
                            : "the broker closed the connection";
    goto out_fail;
  }
  rc = -EPROTO;
  if ((size_t)n < TR_HDR_SIZE) {
    *why = "short HELLO reply";
    goto out_fail;
  }
  tr_hdr_unpack(rbuf, &h);
  if (tr_hdr_check(&h, (uint32_t)n - TR_HDR_SIZE, 0, why) < 0)
    goto out_fail;
  if (h.status == TR_ST_AUTH && h.opcode == TR_OP_HELLO) {
    size_t k = h.payload_len < sizeof(c->refusal) - 1 ? h.payload_len
                                                       : sizeof(c->refusal) - 1;

    for (size_t i = 0; i < k; i++) {
      uint8_t ch = rbuf[TR_HDR_SIZE + i];

      c->refusal[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    c->refusal[k] = 0;
    *why = c->refusal;
    rc = -EACCES;
    goto out_fail;
  }
  if (h.status == TR_ST_VERSION) {
    *why = "the broker speaks no protocol version this shim speaks";
    goto out_fail;
  }
  if (h.opcode != TR_OP_HELLO || h.status != 0 || h.payload_len != n - TR_HDR_SIZE ||
      tr_hello_unpack(rbuf + TR_HDR_SIZE, h.payload_len, &theirs) < 0 ||
      theirs.extra_len < 8) {
    *why = "malformed HELLO reply";
    goto out_fail;
  }
  c->version = theirs.max_version;
  c->caps = theirs.caps;
  {
    const uint8_t *p = rbuf + TR_HDR_SIZE + TR_HELLO_SIZE;
    size_t left = theirs.extra_len - 8;
    uint32_t ndev = tr_get_u32(p), flags = tr_get_u32(p + 4);
    size_t used;

    if (ndev > TR_CLIENT_MAX_DEV) {
      *why = "too many devices in HELLO reply";
      goto out_fail;
    }
    p += 8;
    c->dev = calloc(ndev ? ndev : 1, sizeof(*c->dev));
    if (!c->dev) {
      rc = -ENOMEM;
      goto out_fail;
    }
    c->mname = calloc(ndev ? ndev : 1, sizeof(*c->mname));
    if (!c->mname) {
      rc = -ENOMEM;
      goto out_fail;
    }
    for (uint32_t i = 0; i < ndev; i++) {
      if (tr_devinfo_unpack(p, left, &c->dev[i], &used) < 0) {
        *why = "malformed device description in HELLO reply";
        goto out_fail;
      }
      p += used;
      left -= used;
    }
    /* The machines' names, when the broker sends them. */
    for (uint32_t i = 0; (flags & TR_HELLO_NAMES) && i < ndev && left; i++) {
      size_t k = p[0];

      if (k + 1 > left || k >= TR_MACHINE_NAME_MAX)
        break;
      memcpy(c->mname[i], p + 1, k);
      p += 1 + k;
      left -= 1 + k;
    }
    c->ndev = ndev;
  }
  free(rbuf);
  return 0;

out_fail:
  free(rbuf);
  free(c->dev);
  c->dev = NULL;
  free(c->mname);
  c->mname = NULL;
  if (c->fd >= 0)
    close(c->fd);
  c->fd = -1;
  pthread_mutex_destroy(&c->lock);
  return rc;
}

void tr_client_close(struct tr_client *c)
{
  if (c->fd >= 0)
    close(c->fd);
  c->fd = -1;
  free(c->dev);
  c->dev = NULL;
  free(c->mname);
  c->mname = NULL;
  c->ndev = 0;
  pthread_mutex_destroy(&c->lock);
}

/*
 * One control request and its reply (c->lock held): op with args (and the
 * descriptor fd when fd >= 0), WANT_REPLY; the reply's header in *h and
 * its payload in buf (cap bytes, after the header), up to nfds descriptors
 * in fds (*nf of them, the caller's to close whatever the result).
 * Returns 0, or -errno, -EPROTO for a reply that is not this request's.
 */
static int ctl_exchange(struct tr_client *c, uint16_t op, const void *args,
                        uint32_t alen, int fd, uint8_t *buf, size_t cap,
                        int *fds, int nfds, int *nf, struct tr_hdr *h)
{
  uint64_t id = ++c->next_ctl_id;
  long n;
  int rc;

  *nf = 0;
  rc = ctl_send_fd(c, op, TR_F_WANT_REPLY, id, args, alen, fd);
  if (rc < 0)
    return rc;
  n = ctl_recv(c, buf, cap, fds, nfds, nf, 30000);
  if (n < 0)
    return (int)n;
  if ((size_t)n < TR_HDR_SIZE)
    return -EPROTO;
  tr_hdr_unpack(buf, h);
  if (tr_hdr_check(h, (uint32_t)n - TR_HDR_SIZE, 0, NULL) < 0 ||
      h->opcode != op || h->request_id != id)
    return -EPROTO;
  return 0;
}

int tr_client_lane_open(struct tr_client *c, struct tr_lane *l, int priority)
{
  uint8_t buf[TR_HDR_SIZE + 64], prio[4];
  struct tr_hdr h;
  int fds[3], nf = 0, rc;

  /* The default priority, 0, is an empty payload. */
  tr_put_u32(prio, (uint32_t)priority);
  pthread_mutex_lock(&c->lock);
  rc = ctl_exchange(c, TR_OP_LANE_OPEN, prio, priority ? 4 : 0, -1, buf,
                    sizeof(buf), fds, 3, &nf, &h);
  if (rc < 0)
    goto out_fds;
  rc = -EPROTO;
  if (h.status != 0) {
    /* The broker says cudaErrorMemoryAllocation when it is out of
       lanes or memory. */
    rc = h.status == 2 ? -ENOMEM : -EIO;
    goto out_fds;
  }
  if (nf != 3)
    goto out_fds;
  pthread_mutex_unlock(&c->lock);
  /* tr_lane_map takes the three descriptors, success or not. */
  return tr_lane_map(l, fds[0], fds[1], fds[2]);

out_fds:
  for (int i = 0; i < nf; i++)
    close(fds[i]);
  pthread_mutex_unlock(&c->lock);
  return rc;
}

void tr_client_lane_close(struct tr_client *c, struct tr_lane *l)
{
  uint8_t id[4];

  tr_put_u32(id, l->hdr ? l->hdr->lane_id : 0);
  pthread_mutex_lock(&c->lock);
  /* No reply is awaited: the broker frees the lane either way, and the
     thread calling this is usually exiting. */
  if (c->fd >= 0)
    (void)ctl_send(c, TR_OP_LANE_CLOSE, 0, ++c->next_ctl_id, id, 4);
  pthread_mutex_unlock(&c->lock);
  tr_lane_unmap(l);
}

int tr_client_region_add(struct tr_client *c, int fd, uint64_t size,
                         uint32_t *id)
{
  uint8_t buf[TR_HDR_SIZE + 64], arg[8];
  struct tr_hdr h;
  int fds[1], nf = 0, rc;

  tr_put_u64(arg, size);
  pthread_mutex_lock(&c->lock);
  rc = ctl_exchange(c, TR_OP_REGION_ADD, arg, 8, fd, buf, sizeof(buf), fds,
                    1, &nf, &h);
  for (int i = 0; i < nf; i++)
    close(fds[i]);
  if (rc < 0)
    goto out;
  rc = -EPROTO;
  if (h.status != 0) {
    rc = -EINVAL; /* refused: the broker's log says why */
    goto out;
  }
  if (h.payload_len < 4)
    goto out;
  *id = tr_get_u32(buf + TR_HDR_SIZE);
  rc = 0;
out:
  pthread_mutex_unlock(&c->lock);
  return rc;
}

void tr_client_region_del(struct tr_client *c, uint32_t id)
{
  uint8_t arg[4];

  tr_put_u32(arg, id);
  pthread_mutex_lock(&c->lock);
  if (c->fd >= 0)
    (void)ctl_send(c, TR_OP_REGION_DEL, 0, ++c->next_ctl_id, arg, 4);
  pthread_mutex_unlock(&c->lock);
}

/*
 * Sleep until ready(arg) or the broker hangs up.  flag is the shared word
 * that tells the broker we sleep on rep_efd (the reply ring's `waiting`, or
 * a `space_waiting`).
 */
static int wait_for(struct tr_client *c, struct tr_lane *l,
                    _Atomic uint32_t *flag, int (*ready)(void *), void *arg,
                    int timeout_ms, int spin)
{
  long deadline = timeout_ms < 0 ? 0 : now_ms() + timeout_ms;
  struct pollfd pfd[2];
  uint64_t cnt;
  int rc;

  for (int i = 0; i < spin; i++) {
    if (ready(arg))
      return 0;
    tr_cpu_relax();
  }
  for (;;) {
    atomic_store_explicit(flag, 1, memory_order_relaxed);
    tr_smp_mb();
    if (ready(arg)) {
      atomic_store_explicit(flag, 0, memory_order_relaxed);
      return 0;
    }
    pfd[0] = (struct pollfd){l->rep_efd, POLLIN, 0};
    pfd[1] = (struct pollfd){c->fd, POLLRDHUP, 0};
    int wait = -1;
    if (timeout_ms >= 0) {
      long left = deadline - now_ms();
      if (left <= 0) {
        atomic_store_explicit(flag, 0, memory_order_relaxed);
        return -ETIMEDOUT;
      }
      wait = (int)left;
    }
    rc = poll(pfd, 2, wait);
    atomic_store_explicit(flag, 0, memory_order_relaxed);
    if (rc < 0 && errno != EINTR)
      return -errno;
    if (rc > 0 && (pfd[1].revents & (POLLRDHUP | POLLHUP | POLLERR))) {
      /* The broker is gone; whatever is in the ring may still be read. */
      return ready(arg) ? 0 : -ENOTCONN;
    }
    if (rc > 0 && (pfd[0].revents & POLLIN))
      (void)!read(l->rep_efd, &cnt, sizeof(cnt));
    if (ready(arg))
      return 0;
  }
}

struct room {
  struct tr_ring *r;
  uint64_t need;
  int area;
};

/* Room in the request ring for a record, or in an area for a chunk. */
static int has_room(void *arg)
{
  struct room *rm = arg;

  if (rm->area)
    return tr_area_free(rm->r) >= rm->need;
  return tr_ring_reserve(rm->r, (uint32_t)rm->need) != NULL;
}

/* Tell the broker the request ring has a record, if it sleeps. */
static void kick_broker(struct tr_lane *l)
{
  (void)tr_ring_kick(&l->req, l->req_efd);
}

int tr_client_send(struct tr_client *c, struct tr_lane *l, uint16_t device,
                   uint16_t opcode, uint16_t flags, uint64_t request_id,
                   const void *args, uint32_t alen, const void *data,
                   uint32_t dlen)
{
  struct tr_shmref ref = {.area = TR_AREA_UP};
  struct tr_hdr h;
  uint8_t *rec, *chunk;
  uint32_t plen;
  int via_area, rc;

  if (dlen > TR_CHUNK_MAX || alen > TR_LANE_INLINE_MAX / 2)
    return -EMSGSIZE;
  via_area = (uint64_t)alen + dlen > TR_LANE_INLINE_MAX / 2;
  if (via_area) {
    /* Bulk bytes first, so the record that names them is published
       after them. */
    chunk = tr_area_reserve(&l->up, dlen, &ref);
    if (!chunk) {
      struct room rm = {&l->up, dlen, 1};
      /* Room for a chunk comes back only after the broker has sent a
         whole earlier chunk (hundreds of microseconds): sleep at once
         rather than spin on a core the broker and agent need. */
      rc = wait_for(c, l, &l->up.ctl->space_waiting, has_room, &rm, -1,
                    TR_LANE_SPIN_BULK);
      if (rc < 0)
        return rc;
      ref.area = TR_AREA_UP;
      chunk = tr_area_reserve(&l->up, dlen, &ref);
      if (!chunk)
        return -EIO;
    }
    memcpy(chunk, data, dlen);
    plen = alen + TR_SHMREF_SIZE;
    flags |= TR_F_SHMREF;
  } else {
    plen = alen + dlen;
  }
  rec = tr_ring_reserve(&l->req, plen);
  if (!rec) {
    struct room rm = {&l->req, plen, 0};
    kick_broker(l); /* make sure the broker is draining */
    rc = wait_for(c, l, &l->req.ctl->space_waiting, has_room, &rm, -1,
                  TR_LANE_SPIN);
    if (rc < 0)
      return rc;
    rec = tr_ring_reserve(&l->req, plen);
    if (!rec)
      return -EIO;
  }
  tr_hdr_init(&h, opcode, flags, request_id, plen);
  h.device = device;
  tr_hdr_pack(&h, rec);
  if (alen)
    memcpy(rec + TR_HDR_SIZE, args, alen);
  if (via_area)
    tr_shmref_pack(&ref, rec + TR_HDR_SIZE + alen);
  else if (dlen)
    memcpy(rec + TR_HDR_SIZE + alen, data, dlen);
  tr_ring_commit(&l->req, plen);
  tr_trace(TR_HOP_SHIM_SEND, l->hdr->lane_id, opcode, request_id);
  kick_broker(l);
  return 0;
}

struct peek {
  struct tr_ring *r;
  int rc;
  struct tr_hdr h;
  const uint8_t *payload;
  const char *why;
};

static int has_reply(void *arg)
{
  struct peek *pk = arg;

  pk->rc = tr_ring_peek(pk->r, &pk->h, &pk->payload, &pk->why);
  return pk->rc != 0; /* a record, or an error to report */
}

int tr_client_recv(struct tr_client *c, struct tr_lane *l, struct tr_reply *r,
                   int timeout_ms)
{
  struct peek pk = {.r = &l->rep};
  int rc;

  rc = wait_for(c, l, &l->rep.ctl->waiting, has_reply, &pk, timeout_ms,
                TR_LANE_SPIN);
  if (rc < 0)
    return rc;
  if (pk.rc < 0)
    return -EPROTO;
  if (!(pk.h.flags & TR_F_MORE))
    tr_trace(TR_HOP_SHIM_RECV, l->hdr->lane_id, pk.h.opcode,
             pk.h.request_id);
  memset(r, 0, sizeof(*r));
  r->h = pk.h;
  r->payload = pk.payload;
  r->len = pk.h.payload_len;
  if (pk.h.flags & TR_F_SHMREF) {
    if (pk.h.payload_len != TR_SHMREF_SIZE)
      return -EPROTO;
    tr_shmref_unpack(pk.payload, &r->ref);
    r->payload = tr_area_resolve(&l->down, &r->ref, &pk.why);
    if (!r->payload)
      return -EPROTO;
    r->len = r->ref.len;
    r->has_ref = 1;
  }
  return 0;
}

void tr_client_recv_done(struct tr_client *c, struct tr_lane *l,
                         struct tr_reply *r)
{
  (void)c;
  if (r->has_ref)
    tr_area_release(&l->down, &r->ref);
  tr_ring_release(&l->rep, &r->h);
  /* The broker may be waiting for room in the reply ring or the download
     area; it sleeps on req_efd (ring.h, "Wake-up"). */
  tr_smp_mb();
  if (atomic_load_explicit(&l->down.ctl->space_waiting, memory_order_relaxed) ||
      atomic_load_explicit(&l->rep.ctl->space_waiting, memory_order_relaxed)) {
    uint64_t one = 1;
    (void)!write(l->req_efd, &one, sizeof(one));
  }
}
