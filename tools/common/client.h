/*
 * client.h: the client side of the lane leg (PROTOCOL.md §2): connect to the
 * broker's Unix socket, say HELLO, open lanes, and send and receive records
 * on a lane.  The shim is built on it; tests and tremote-bench use it to
 * talk to a real broker without the CUDA API on top.
 *
 * Threading: struct tr_client may be shared by threads (the socket is used
 * under a mutex, only for LANE_OPEN/LANE_CLOSE); a struct tr_lane belongs to
 * exactly one thread at a time.
 */
#ifndef TR_CLIENT_H
#define TR_CLIENT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "ring.h"
#include "tremote/proto.h"

#define TR_CLIENT_MAX_DEV 64

struct tr_client {
  int fd;                 /* SOCK_SEQPACKET to the broker */
  pthread_mutex_t lock;   /* serialises control exchanges on fd */
  uint16_t version;       /* negotiated */
  uint64_t caps;          /* agreed */
  uint32_t ndev;
  struct tr_devinfo *dev; /* ndev entries, owned */
  char (*mname)[TR_MACHINE_NAME_MAX]; /* each device's machine name ("" if
                                         the broker did not say), owned */
  uint64_t next_ctl_id;
  char refusal[200];      /* why the broker refused us (tr_client_connect) */
};

/* The largest payload of a record on the socket (a HELLO with options). */
#define TR_CTL_PAYLOAD_MAX (TR_HELLO_SIZE + 8 + TR_HELLO_VISIBLE_MAX)

/*
 * Where the broker listens: $TREMOTE_BROKER_SOCKET, else
 * $XDG_RUNTIME_DIR/tremote/broker.sock, else /run/tremote/broker.sock for
 * root, else /tmp/tremote-$UID/broker.sock.  Writes into buf; returns buf.
 */
const char *tr_client_socket_path(char *buf, size_t len);

/*
 * Connect to the broker at path (NULL: tr_client_socket_path()) and
 * exchange HELLO.  The broker may take a while to answer while machines
 * start; timeout_ms bounds the whole exchange.  Returns 0; -ENOENT or
 * -ECONNREFUSED if no broker listens; -EPROTO if versions do not overlap
 * (*why explains); -ETIMEDOUT; or -errno.  On success c owns its socket
 * and the device list; release with tr_client_close().
 */
int tr_client_connect(struct tr_client *c, const char *path, int timeout_ms,
                      const char **why);

/* What tr_client_connect offers in its HELLO: all this client takes. */
#define TR_CLIENT_CAPS (TR_CAP_EXEC | TR_CAP_MODULE_CACHE | TR_CAP_DEFERRED)

/* tr_client_connect offering caps instead (an older shim's set, for
   tests of what the broker does for one). */
int tr_client_connect_caps(struct tr_client *c, const char *path,
                           int timeout_ms, uint64_t caps, const char **why);
void tr_client_close(struct tr_client *c);

/* Open a lane for work of the given stream priority (0, or down to
   TR_PRIORITY_GREATEST for more urgent): the broker sends the segment and
   doorbells.  On success the lane is mapped and owned by the caller
   (tr_client_lane_close()). */
int tr_client_lane_open(struct tr_client *c, struct tr_lane *l, int priority);
void tr_client_lane_close(struct tr_client *c, struct tr_lane *l);

/*
 * Share a region of page-locked host memory with the broker: fd is a memfd
 * of at least size bytes, sealed with F_SEAL_SHRINK|F_SEAL_GROW (the
 * caller keeps it).  Returns 0 with *id (name it in a tr_shmref as area
 * TR_AREA_REGION + id), -EINVAL if the broker refused it, or -errno.
 * tr_client_region_del() lets it go (no reply awaited); the broker keeps
 * its mapping until no queued use is left.
 */
int tr_client_region_add(struct tr_client *c, int fd, uint64_t size,
                         uint32_t *id);
void tr_client_region_del(struct tr_client *c, uint32_t id);

/*
 * Send one request on a lane.  The payload is args (alen bytes, inline)
 * followed by data (dlen bytes).  If the record fits inline it goes into
 * the request ring; otherwise data is put in the upload area and named by
 * a tr_shmref (TR_F_SHMREF).  dlen <= TR_CHUNK_MAX.  Blocks while the ring
 * or the area is full, waking when the broker frees space; gives up with
 * -ENOTCONN if the broker goes away.  Returns 0 or -errno.
 */
int tr_client_send(struct tr_client *c, struct tr_lane *l, uint16_t device,
                   uint16_t opcode, uint16_t flags, uint64_t request_id,
                   const void *args, uint32_t alen, const void *data,
                   uint32_t dlen);

/* A received reply: header and logical payload. */
struct tr_reply {
  struct tr_hdr h;
  const uint8_t *payload; /* inline in the ring or in the download area */
  uint64_t len;           /* logical payload length */
  int has_ref;            /* payload lives in the download area */
  struct tr_shmref ref;
};

/*
 * Wait for the next reply record on a lane and fill *r.  The payload is
 * valid until tr_client_recv_done(r).  Returns 0, -ENOTCONN if the broker
 * went away (its socket hung up), -EPROTO if the broker wrote something
 * malformed, -ETIMEDOUT after timeout_ms (< 0: no limit — the broker
 * guarantees an answer or a TR_ST_MACHINE_LOST status, and a dead broker is
 * noticed through the socket's hang-up).
 */
int tr_client_recv(struct tr_client *c, struct tr_lane *l, struct tr_reply *r,
                   int timeout_ms);
void tr_client_recv_done(struct tr_client *c, struct tr_lane *l,
                         struct tr_reply *r);

#endif /* TR_CLIENT_H */
