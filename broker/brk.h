/*
 * brk.h: the broker's objects and how they refer to each other.
 *
 *   struct brk            the broker: loop, config, machines, clients
 *   struct brk_machine    one registry entry (brk_machine.c): a LOCAL agent
 *                         process and its HTTP/2 connection
 *   struct brk_client     one Unix-socket connection = one client session
 *                         (brk_client.c)
 *   struct brk_msess      a client's session on one machine: the
 *                         /v1/session stream, opened on first use
 *   struct brk_lane       one shared-memory lane of a client (brk_lane.c)
 *   struct brk_lstream    a lane's /v1/lane stream to one machine
 *   struct brk_upl        a lane's upload chunks queued by reference
 *                         (brk_upl.c)
 *
 * Ownership: the broker owns machines and clients; a client owns its
 * lanes and its msess array; an msess owns its lstreams (a lane only points
 * at them, so a closed lane's streams can finish on their own).  HTTP/2
 * streams belong to brk_h2; ours hold pointers to them and detach on
 * teardown.
 *
 * Everything runs on the one loop thread; nothing here is locked.
 */
#ifndef BRK_H
#define BRK_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "brk_buf.h"
#include "brk_h2.h"
#include "brk_loop.h"
#include "h2share.h"
#include "ring.h"
#include "tremote/proto.h"

#define BRK_MAX_MACHINES TR_VA_MAX_WINDOWS

/*
 * Device address windows: machine i owns [BRK_VA_BASE + i * BRK_VA_WINDOW,
 * + BRK_VA_WINDOW) in every client and on its agent (PROTOCOL.md §4,
 * proto.h TR_VA_*; smaller ones in a TSan build, which has room for 32).
 */
#define BRK_VA_BASE TR_VA_BUILD_BASE
#define BRK_VA_WINDOW TR_VA_BUILD_WINDOW
#if defined(__SANITIZE_THREAD__)
#define BRK_MAX_LOCAL 32u
#else
#define BRK_MAX_LOCAL BRK_MAX_MACHINES
#endif
#define BRK_MAX_LANES_PER_CLIENT 1024
#define BRK_MAX_CLIENTS 4096

/* Request side: stop draining a lane when its stream has this much queued
   for the agent, resume below the low-water mark. */
#define BRK_LANE_QUEUE_MAX (4u << 20)
#define BRK_LANE_QUEUE_LOW (1u << 20)
/* WANT_REPLY requests in flight on one lane stream before draining stops. */
#define BRK_LANE_OUTSTANDING_MAX 4096u
/* A lane on a machine's main connection whose last bulk record is this
   old, and which has routed BRK_LANE_RETURN_CALLS small records since,
   goes back to the express connection before its next small record
   (brk_lane.c, "Express lanes"): long enough that a lane copying in a
   loop stays put (each move costs a fence, one round trip), and a lane
   that only closes or synchronises once more is not moved for that;
   short enough that a program done with its copies gets the express
   connection back for its calls. */
#define BRK_LANE_RETURN_MS 1000u
#define BRK_LANE_RETURN_CALLS 8u
/* Locally generated replies waiting for room in a reply ring. */
#define BRK_LANE_LOCAL_MAX 4096u
/* The HTTP/2 window the broker grants each stream for its response.  A
   lane stream whose lane is full holds what arrives, unconsumed (see
   brk_lane.c), so the window is also the most one stream can hold: with
   BRK_LANE_PEND_MAX no smaller, one client's slow reading never pauses the
   connection the machine's other clients share.  32 MiB keeps a 1 GB/s
   link full at 32 ms of round trip (a 50 ms one at 640 MB/s), and is what
   the broker may hold for a client that stops reading its replies. */
#define BRK_STREAM_WINDOW (32u << 20)
#define BRK_CONN_WINDOW (256u << 20)
/*
 * The receive buffer of a connection to an agent on this host.  Bytes in
 * it are a queue every lane's replies wait in, FIFO: left to autotuning it
 * grows to megabytes whenever the agent sends faster than we read, and a
 * small reply then waits a millisecond behind another lane's bulk copy.
 * Over loopback the round trip is microseconds, so 256 KiB (tens of
 * microseconds of data) still keeps the link full (128 KiB cost a sixth
 * of the device-to-host bandwidth).  While lanes share the connection it
 * is 128 KiB all the same (TR_H2_SHARED_RCVBUF, h2share.h): their small
 * replies then wait behind half as much.  Remote links keep autotuning:
 * there the bandwidth-delay product needs the buffer.
 */
#define BRK_LOOPBACK_RCVBUF (256 << 10)
/* Bytes the kernel may hold unsent beyond what is in flight: a small
   request of one client then queues behind at most this much of another's
   bulk upload (the rest waits in nghttp2, which interleaves streams). */
#define BRK_NOTSENT_LOWAT (64 << 10)
/* Response bytes one lane stream may hold while its lane is full before
   the whole connection is paused: only an agent that ignored the window
   could get there. */
#define BRK_LANE_PEND_MAX BRK_STREAM_WINDOW
/* Upload chunks at least this long are queued by reference to the upload
   area instead of copied (see brk_upl.c). */
#define BRK_LANE_ZC_MIN (64u << 10)
/* Outstanding by-reference chunks per lane: enough for a full area of the
   smallest such chunks; past it chunks are copied. */
#define BRK_LANE_ZC_MAX (TR_LANE_AREA_SIZE / BRK_LANE_ZC_MIN)
/* Records handled per lane before yielding to the rest of the loop. */
#define BRK_DRAIN_BUDGET 256

/* ---- the machines file (brk_mfile.c) --------------------------------------- */

#define BRK_MNAME_MAX 32
#define BRK_SECRET_MAX 257 /* a secret's characters + NUL */

enum brk_provider { BRK_P_NONE, BRK_P_LOCAL, BRK_P_STATIC, BRK_P_MODAL };

/* One [machine NAME] section, checked; a STATIC one's secret read. */
struct brk_mspec {
  char name[BRK_MNAME_MAX];
  enum brk_provider provider;
  char gpu[32];
  char address[128];
  char secret_file[512];
  int tls; /* -1 not given, 0, 1 */
  char ca[512];
  char fingerprint[128];
  uint32_t idle_timeout_s; /* modal: stop it after this long unused */
  uint32_t timeout_s;      /* modal: the Sandbox's lifetime */
  int idle_set, timeout_set;
  /* derived */
  struct sockaddr_storage sa;
  socklen_t salen;
  int loopback;
  char secret[BRK_SECRET_MAX];
};

/* A spec named name with nothing set. */
void brk_mspec_init(struct brk_mspec *m, const char *name);
/* Whether name may name a machine: 1 to 31 of [A-Za-z0-9._-]. */
int brk_mspec_valid_name(const char *name);
/* Set one key (provider, gpu, address, secret_file, tls, ca,
   fingerprint) from its text.  0, or -1 with why naming key and valid
   values. */
int brk_mspec_set(struct brk_mspec *m, const char *key, const char *value,
                  char *why, size_t cap);
/* Check a whole spec and derive its address and secret (read from
   secret_file now).  0, or -1 with why. */
int brk_mspec_check(struct brk_mspec *m, char *why, size_t cap);

/*
 * Read and check the machines file at path (at most max machines).
 * 0 and *out (free() it) with *n entries in file order, or -1 with why set
 * to one line: file, line where known, what was wrong, what is valid.
 */
int brk_mfile_load(const char *path, unsigned max, struct brk_mspec **out,
                   unsigned *n, char *why, size_t cap);

/* Whether a and b configure the same machine (a MODAL machine's address
   and fingerprint are learnt at run time and do not count). */
int brk_mspec_same(const struct brk_mspec *a, const struct brk_mspec *b);

/* Pin sp to fingerprint fp (tls on): 0, or -1 with why. */
int brk_mspec_pin(struct brk_mspec *sp, const char *fp, char *why,
                  size_t cap);

/* "HOST" of a spec's address (brackets of an IPv6 literal removed). */
void brk_mspec_host(const struct brk_mspec *sp, char *out, size_t cap);

/* ---- TLS to agents (brk_tls.c) ---------------------------------------------- */

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

/* The client context for a tls=on machine (its ca or pinned
   fingerprint).  NULL with why set. */
SSL_CTX *brk_tls_ctx(const struct brk_mspec *sp, char *why, size_t cap);

/* A connection's TLS object over connected socket fd (not taken). */
SSL *brk_tls_new(SSL_CTX *ctx, const struct brk_mspec *sp, int fd);

/*
 * One handshake step: 0 done and verified (ALPN h2, the pinned
 * fingerprint or the CA and address), POLLIN or POLLOUT to wait for, or -1
 * with why set.
 */
int brk_tls_handshake(SSL *ssl, const struct brk_mspec *sp, char *why,
                      size_t cap);

/* The pipe over fd and the finished ssl (both taken).  0 or -ENOMEM. */
int brk_pipe_tls(struct brk_pipe *p, int fd, SSL *ssl);

struct brk_config {
  const char *socket_path;
  const char *control_path;
  const char *agent_path; /* resolved; NULL if no LOCAL machine */
  const char *backend;    /* emu, cuda or auto */
  const char *emu_mem;    /* passed through, or NULL */
  int nlocal;  /* unnamed LOCAL machines (--local), indices first */
  const struct brk_mspec *specs; /* the machines file's, after them */
  unsigned nspecs;
  const char *machines_file; /* for SIGHUP and the reload op, or NULL */
  const char *state_path;    /* machines added at run time live here */
  int ready_fd; /* -1: none */
  int group_set;  /* --group: its members may use the client socket too */
  gid_t group;
  uint32_t ping_idle_ms, ping_timeout_ms;
  uint32_t hello_wait_ms;  /* how long HELLO waits for starting machines */
  uint32_t start_timeout_ms; /* agent start + connect + hello */
  uint32_t stall_ms; /* drop a client that holds a connection paused */
};

/* Where a machine came from: what a reload or the state file covers. */
enum brk_origin { BRK_FROM_ARGS, BRK_FROM_FILE, BRK_FROM_CTL };

enum brk_mstate {
  BRK_M_REQUESTED, /* asked of a provider (Modal), not started yet */
  BRK_M_STARTING,
  BRK_M_READY,
  BRK_M_LOST,
  BRK_M_FAILED,
  BRK_M_STOPPED,
};

struct brk;

/* A session's traffic; the broker adds each ended session's to its own. */
struct brk_counts {
  uint64_t round_trips, records_to_agent, bytes_to_agent, bytes_from_agent;
  uint64_t module_loads;   /* MODULE_LOAD answered success */
  uint64_t module_misses;  /* ... answered NEED_MODULE (the agent lacked it) */
  uint64_t module_bytes;   /* MODULE_PUT payload bytes sent */
  uint64_t express_lanes;  /* lane streams opened on the express connection */
  uint64_t lane_moves;     /* ... and moved to the bulk one (brk_lane.c) */
  uint64_t lane_returns;   /* lanes moved back to the express connection */
};

/* Loads the agent's cache served: a miss is followed by the upload and a
   load that succeeds, so the successful loads no miss went before. */
static inline uint64_t brk_counts_hits(const struct brk_counts *n)
{
  return n->module_loads > n->module_misses
             ? n->module_loads - n->module_misses
             : 0;
}

struct brk_modal_m;
struct brk_modal;

struct brk_machine {
  struct brk *b;
  struct brk_modal_m *modal; /* MODAL provider's state (brk_modal.c) */
  unsigned index;
  char name[32];
  const char *provider; /* "local", "static" or "modal" */
  const struct brk_mspec *spec; /* &own_spec when named, NULL for --local */
  struct brk_mspec own_spec;
  enum brk_origin origin;
  int removed; /* taken out (control API, reload): never used again */
  struct brk_counts n; /* traffic of every session on it, ever */
  /* The agent's /v1/status, asked every BRK_STATUS_MS while ready. */
  struct brk_h2_stream *status_st;
  uint8_t status_buf[TR_HDR_SIZE + TR_STATUS_SIZE];
  size_t status_len;
  uint64_t status_ms;  /* when the newest answer came; 0 none */
  uint64_t status_sent_us, status_rtt_us; /* its round trip */
  uint64_t mem_free, mem_total, mem_reserved; /* reserved: of total, the
                                                 driver's own */
  uint32_t agent_sessions;
  /* NVML's figures on a real GPU (-1, "": unknown) */
  int32_t util_gpu, util_mem, temp_c, power_mw;
  char driver[32];
  enum brk_mstate state;
  char address[128]; /* host:port once known */
  char secret[BRK_SECRET_MAX];  /* LOCAL: 64 hex digits, made per start */
  struct tr_devinfo dev; /* as the agent described it (window fields 0) */
  struct brk_h2 *h2; /* the connection: hello, sessions, bulk lanes */
  /* The express connection, for lanes that move no bulk (brk_lane.c,
     "Express lanes"); NULL until it is up, or where there is none. */
  struct brk_h2 *h2x;
  int xsock;               /* connecting it */
  struct brk_op *xconn_op;
  SSL *xssl;               /* its handshake in progress (tls=on) */
  struct brk_http_req *xreq; /* dialling a Modal tunnel for it */
  struct brk_op *xtimer;     /* its deadline (BRK_EXPRESS_DIAL_MS) */
  struct tr_h2share share; /* whether lanes share, over both (h2share.h) */
  uint64_t caps;           /* TR_CAP_* agreed in the hello */
  struct sockaddr_storage sa; /* where the agent was dialled (salen 0: */
  socklen_t salen;            /* handed to us, as Modal's tunnels are) */
  uint64_t gen; /* bumped on every new connection */
  /* LOCAL provider */
  pid_t pid;
  int pidfd;
  struct brk_op *pid_op;
  int rdy_fd;
  struct brk_op *rdy_op;
  char rdy_buf[256];
  size_t rdy_len;
  int sock; /* connecting */
  struct brk_op *conn_op;
  SSL_CTX *tls_ctx; /* tls=on: made once, at init */
  SSL *ssl;         /* the handshake in progress on sock */
  struct brk_op *timer; /* start deadline and progress, or restart backoff */
  uint64_t start_ms, ready_since_ms;
  uint32_t backoff_ms;
  int restart_due;
  int first_done; /* the first start finished (ready or failed) */
  int permanent;  /* failed in a way a restart cannot fix */
  unsigned restarts;
  struct brk_h2_stream *hello;
  struct brk_bq hello_body;
  int hello_status;
  int hello_end;          /* 1: response complete, -1: stream failed */
  uint32_t hello_code;    /* HTTP/2 error when it failed */
  struct brk_task hello_task; /* judges the hello outside nghttp2 */
  char why[256];
};

struct brk {
  struct brk_loop *loop;
  struct brk_config cfg;
  uid_t uid;
  struct brk_machine *machines[BRK_MAX_MACHINES];
  unsigned nmachines; /* slots used; removed machines keep theirs */
  int machines_started;
  struct brk_client *clients;
  unsigned nclients;
  int listen_fd, ctl_fd;
  struct brk_op *accept_op, *ctl_accept_op;
  struct brk_ctl_conn *ctls;
  uint32_t next_lane_id;
  int listening;
  int ready_sent;
  int stopping;
  unsigned nagents_running;
  struct brk_counts ended; /* sessions that are gone */
  uint64_t sessions_total;
  struct brk_modal *modal;  /* the MODAL provider, once needed */
  int metrics_fd;           /* --metrics, or -1 */
  struct brk_op *metrics_accept_op;
  unsigned accept_starved;  /* BRK_ACCEPT_*: listeners out of descriptors */
};

/* ---- accepting without descriptors (brk_service.c) ------------------------ */

/*
 * A listener whose accept failed for want of descriptors (EMFILE, ENFILE,
 * ENOBUFS, ENOMEM) would fail again at once if re-armed, and the loop
 * would spin: it waits BRK_ACCEPT_RETRY_MS instead, its accept op slot
 * holding the timer.  The metrics and control listeners also stop
 * accepting while BRK_CTL_MAX_CONNS connections of theirs are open (the
 * rest wait in the backlog); programs have BRK_MAX_CLIENTS.
 */
#define BRK_ACCEPT_RETRY_MS 100
#define BRK_CTL_MAX_CONNS 16
enum { BRK_ACCEPT_CLIENTS = 1, BRK_ACCEPT_CTL = 2, BRK_ACCEPT_METRICS = 4 };

/* 1 if res (an accept's result) is a want of descriptors, which is logged
   once until an accept on that listener (which) succeeds again; else 0. */
int brk_accept_starved(struct brk *b, int res, unsigned which,
                       const char *what);

/* ---- clients and sessions (brk_client.c) ---------------------------------- */

enum brk_ms_state { BRK_MS_NONE, BRK_MS_OPEN, BRK_MS_BROKEN };

struct brk_lstream;

struct brk_msess {
  struct brk_client *c;
  struct brk_machine *m;
  enum brk_ms_state state;
  struct brk_h2_stream *st;
  int confirmed; /* the agent answered 200: lanes may open on another
                    connection than the session's */
  uint64_t gen; /* machine connection it lives on */
  struct brk_lstream *lstreams;
};

struct brk_lane;
struct brk_upl;
struct brk_region;

struct brk_client {
  struct brk *b;
  struct brk_client *next, *prev;
  int fd;
  pid_t pid;
  uid_t uid;
  uint64_t id;
  char idhex[17];
  int hello_done;
  int hello_waiting; /* a HELLO reply waits for machines */
  int refused;       /* not admitted (uid, --group): HELLO answers why */
  struct tr_hdr hello_req;
  uint16_t hello_ver;
  uint64_t hello_caps;
  char *visible; /* its TREMOTE_VISIBLE_DEVICES, or NULL when unset */
  struct brk_op *hello_timer;
  unsigned ndev;
  uint8_t ord2m[BRK_MAX_MACHINES];
  int16_t m2ord[BRK_MAX_MACHINES];
  struct brk_msess ms[BRK_MAX_MACHINES];
  struct brk_lane *lanes;
  unsigned nlanes;
  struct brk_op *recv_op;
  struct brk_region **regions; /* page-locked host memory, by id */
  uint32_t nregions;           /* slots in regions */
  int dead;
  struct brk_task teardown;
  /* statistics (control socket) */
  struct brk_counts n; /* what it sent and got (stats, metrics) */
  uint64_t region_bytes_to_agent, region_bytes_from_agent; /* by reference */
};

/* Accept clients on b->listen_fd (already listening). */
int brk_clients_start(struct brk *b);
/* Whether c's TREMOTE_VISIBLE_DEVICES names m (1 when it has none). */
int brk_client_wants(const struct brk_client *c, const struct brk_machine *m);
/* Close every client (shutdown). */
void brk_clients_stop(struct brk *b);
/* Drop a client: one log line naming its pid and why; the teardown runs
   from a task, so this is safe from any callback. */
void brk_client_drop(struct brk_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Once a second: drop clients that have kept a connection paused for
   cfg.stall_ms (they do not take their replies). */
void brk_clients_tick(struct brk *b);
/* A machine changed state (ready, failed, lost): answer waiting HELLOs. */
void brk_clients_machines_changed(struct brk *b);
/* A machine was lost: every session on it is broken. */
void brk_clients_machine_lost(struct brk *b, struct brk_machine *m);
/* The client's session on machine m, opened if needed; NULL if it cannot
   be used (broken, machine not ready): answer TR_ST_MACHINE_LOST. */
struct brk_msess *brk_msess_get(struct brk_client *c, unsigned m);
/* Mark a session broken: its lane streams answer every outstanding
   request with TR_ST_MACHINE_LOST and close. */
void brk_msess_broken(struct brk_msess *ms, const char *why);

/* ---- regions (brk_region.c) ----------------------------------------------------- */

/* Largest region: address space only, the memory is the client's. */
#define BRK_REGION_MAX_SIZE (1ull << 40)

/* REGION_ADD: check and map the client's memfd (which the caller still
   owns and closes).  Returns 0 with *id, or -errno with *why. */
int brk_region_add(struct brk_client *c, int fd, uint64_t size, uint32_t *id,
                   const char **why);
/* REGION_DEL: drop the table's reference.  -ENOENT for an unknown id. */
int brk_region_del(struct brk_client *c, uint32_t id);
/* The client is gone: drop every table reference. */
void brk_regions_free(struct brk_client *c);
/* The bytes a region reference names, with a reference taken on the
   region (*r; release with brk_region_put), or NULL if it names no live
   region or falls outside it. */
uint8_t *brk_region_resolve(struct brk_client *c, const struct tr_shmref *ref,
                            struct brk_region **r);
void brk_region_put(struct brk_region *r);
/* Regions the client has (statistics). */
unsigned brk_regions_count(const struct brk_client *c);

/* ---- lanes (brk_lane.c) --------------------------------------------------------- */

struct brk_outreq {
  uint64_t id;
  uint16_t opcode;
  /* TR_F_DEST: the reply's payload goes to dest_p[0, dest_len), of which
     dest_done bytes are written; dest holds a reference on the region. */
  struct brk_region *dest;
  uint8_t *dest_p;
  uint64_t dest_len, dest_done;
  int fence; /* a move's fence: ours, never answered to the program */
};

struct brk_lane {
  struct brk_client *c;
  struct brk_lane *next, *prev; /* c->lanes */
  uint32_t id;
  int priority; /* its stream's (LANE_OPEN), told to the agent */
  struct tr_lane l;
  struct brk_op *efd_op;
  struct brk_lstream *ls[BRK_MAX_MACHINES];
  struct brk_lstream *blocked_on; /* request draining waits for it */
  struct brk_task drain_task;
  struct tr_hdr *local; /* locally generated replies not yet in the ring */
  unsigned nlocal, local_head, local_cap;
  int closing; /* LANE_CLOSE: drain what is left, then close */
  int reply_waiting; /* waiting for the shim to release reply space */
  struct brk_upl *upl; /* upload chunks queued by reference (brk_upl.h);
                          outlives the lane (and keeps its mapping) while
                          any is queued */
};

struct brk_lstream {
  struct brk_lane *lane; /* NULL once the lane is gone (orphan) */
  struct brk_msess *ms;
  struct brk_lstream *next, *prev; /* ms->lstreams */
  struct brk_h2_stream *st;
  struct brk_h2 *conn; /* the connection st is on */
  uint16_t ordinal;
  int express;    /* on the machine's express connection */
  int fencing;    /* a move's fence (a NOP) is out; the lane waits */
  int fence_done; /* ... and answered: move on the next drain */
  uint64_t last_rid; /* request id of the last record written */
  uint64_t bulk_ms;  /* when its last bulk record was routed (0: none) */
  unsigned smalls;   /* small records routed since (ls_wants_return) */
  /* What a move's fence reply told (a deferred error, device output
     waiting), for this stream's next final reply (brk_lane.c). */
  uint32_t carry_status;
  uint16_t carry_flags;
  /* A move in progress: the new stream, and the old one, which ends once
     the agent has taken the lane over (its 200 or the old one's end). */
  struct brk_lstream *moved_to, *moved_from;
  struct brk_outreq *out; /* ring buffer of outstanding WANT_REPLY */
  unsigned out_head, out_n, out_cap;
  struct tr_decoder dec;
  int have_rec; /* a decoded reply waits for ring space */
  struct tr_hdr rec_h;
  const uint8_t *rec_p;
  int rec_in_area; /* its payload is already in the download area */
  int rec_placed;  /* its payload is already at its TR_F_DEST range */
  int rec_traced;  /* its arrival was noted (trace.h), once however often
                      it waits for room */
  struct tr_shmref rec_ref;
  uint8_t *spill;  /* payloads that could not be decoded into the
                      download area (small ones, or no room yet) */
  size_t spill_cap;
  uint8_t *pend; /* response bytes not yet given to the decoder: */
  size_t pend_off, pend_len, pend_cap; /* pend[pend_off, +pend_len) */
  int blocked;     /* the lane is full; arriving bytes go to pend */
  uint64_t blocked_since_ms;
  int paused_conn; /* pend is over BRK_LANE_PEND_MAX: connection paused */
  uint64_t paused_since_ms;
  int ended; /* we ended the request body */
};

/* Create a lane (LANE_OPEN).  On success *memfd is the caller's to send
   and close. */
int brk_lane_new(struct brk_client *c, struct brk_lane **out, int *memfd);
/* LANE_CLOSE: finish the records already in the ring, end the streams,
   unmap. */
void brk_lane_close(struct brk_lane *ln);
/* The client is gone: end or reset the lane's streams, unmap, free. */
void brk_lane_destroy(struct brk_lane *ln);
/* The lane stream's session broke: answer outstanding requests with
   TR_ST_MACHINE_LOST, close the stream, free it. */
void brk_lstream_fail(struct brk_lstream *ls);
/* The client's session on a machine was answered or broke: lanes waiting
   to open a stream there go on. */
void brk_lanes_kick(struct brk_client *c);
/* End an lstream that lost its lane or client (discarding replies). */
void brk_lstream_orphan(struct brk_lstream *ls, int reset);

/* ---- machines (brk_machine.c) ---------------------------------------------------- */

int brk_machines_init(struct brk *b);
/* Start every LOCAL machine. */
void brk_machines_start(struct brk *b);
/* Nonzero while a machine that c may use (TREMOTE_VISIBLE_DEVICES; any
   with c NULL) is worth a HELLO's wait: in its first start, or a Modal
   machine being brought up.  Not a machine that was ready once and now
   retries (a lost STATIC agent): that may take long, and it may never. */
int brk_machines_starting(const struct brk *b, const struct brk_client *c);
/* Stop everything: SIGTERM the agents; returns the number still running. */
unsigned brk_machines_stop(struct brk *b);
/* SIGKILL and reap agents still running; free the machines. */
void brk_machines_free(struct brk *b);
const char *brk_mstate_name(enum brk_mstate s);

/* Ask each ready machine's agent for its status if the last answer is
   older than BRK_STATUS_MS (the broker's tick). */
#define BRK_STATUS_MS 2000u
void brk_machines_poll_status(struct brk *b);
/* How long a machine's express connection may take to come up (dial,
   TLS handshake) before lanes give it up and share the main one: a few
   round trips on any link, and shorter than the 10 s an agent gives a
   connection to authenticate, so a stall is ours to report. */
#define BRK_EXPRESS_DIAL_MS 5000u

/* The machine named name that is not removed, or NULL. */
struct brk_machine *brk_machine_by_name(struct brk *b, const char *name);

/*
 * Add a machine for sp (copied, checked already) at the next index, and
 * start it if the broker runs.  Returns its index, or -1 with why (the
 * name is taken, no index is left, TLS context).
 */
int brk_machine_add(struct brk *b, const struct brk_mspec *sp,
                    enum brk_origin origin, char *why, size_t cap);

/*
 * Take machine name out: the sessions that used it get errors as if it
 * were lost, a LOCAL agent is stopped, and its index is never reused while
 * the broker runs.  0, or -1 with why.
 */
int brk_machine_remove(struct brk *b, const char *name, char *why,
                       size_t cap);

/*
 * Read the machines file again: machines no longer in it, or changed,
 * are removed; new ones (and the changed ones, anew) are added.  Machines
 * added at run time are left alone.  0 with the counts, or -1 with why
 * (then nothing changed).
 */
int brk_machines_reload(struct brk *b, unsigned *added, unsigned *removed,
                        char *why, size_t cap);

/*
 * The machines added at run time, to and from cfg.state_path (the
 * machines file format, written whole and renamed into place).  Load adds
 * them after the others; a broken file is set aside (.bad) with a warning.
 */
int brk_machines_save(struct brk *b, char *why, size_t cap);
void brk_machines_load_state(struct brk *b);

/*
 * For brk_modal.c: hand over a TCP connection to the machine's agent
 * (TLS and HELLO follow as for a STATIC machine); fail a start (permanent:
 * no retry); drop the connection of an idle machine.
 */
void brk_machine_attach(struct brk_machine *m, int fd);
void brk_machine_fail(struct brk_machine *m, int permanent, const char *fmt,
                      ...) __attribute__((format(printf, 3, 4)));
void brk_machine_disconnect(struct brk_machine *m);

/* ---- the MODAL provider (brk_modal.c) --------------------------------------------- */

struct brk_modal_cfg {
  char url[512];
  char token_id[128];
  char token_secret[256];
  char ca[512];
};

/* The Modal app's URL and proxy-auth token: ~/.config/tremote/modal.ini
   (mode 0600) or TREMOTE_MODAL_*.  0, or -1 with why (one line). */
int brk_modal_cfg_load(struct brk_modal_cfg *c, char *why, size_t cap);
/* At brk_machine_add of a MODAL machine: its Modal id and secret. */
int brk_modal_machine_init(struct brk_machine *m, char *why, size_t cap);
/* The Modal id of m, or NULL for other providers. */
const char *brk_modal_id(const struct brk_machine *m);
/* What m waits for now, for the machine list (the seconds live). */
void brk_modal_progress(const struct brk_machine *m, char *out, size_t cap);
/* Whether a request about m is out (not waiting out a back-off). */
int brk_modal_busy(const struct brk_machine *m);
/* Create (or find) the Sandbox and connect: machine_start for MODAL. */
void brk_modal_start(struct brk_machine *m);
/* Dial m's tunnel once more, for its express connection: cb gets the
   connected socket or -1 and why, as from brk_http_connect.  The request
   (brk_http_cancel ends it), or NULL when it cannot be asked. */
struct brk_http_req *brk_modal_dial(struct brk_machine *m,
                                    void (*cb)(int fd, const char *err,
                                               void *arg),
                                    void *arg);
/* m was removed: DELETE it on Modal. */
void brk_modal_remove(struct brk_machine *m);
void brk_modal_machine_free(struct brk_machine *m);
/* Once a second: stop machines no program used for their idle_timeout. */
void brk_modal_tick(struct brk *b);
/* Program c is connecting: ask again for the machines it may use (all,
   or those its TREMOTE_VISIBLE_DEVICES names) that were stopped when
   idle. */
void brk_modal_wake(struct brk_client *c);
/* At start: stop this broker's machines on Modal that none of its
   machines names (when Modal is configured). */
void brk_modal_reconcile(struct brk *b);
/* Shutdown: cancel requests (machines keep running on Modal). */
void brk_modal_free(struct brk *b);

/* ---- control socket (brk_ctl.c) --------------------------------------------------- */

int brk_ctl_start(struct brk *b);
/* The Prometheus text (--metrics), appended to sb.  Exposed for tests. */
void brk_metrics_text(struct brk *b, struct brk_sb *sb);
void brk_ctl_stop(struct brk *b);
/* The stats document, one line of JSON without the newline (appended to
   sb).  Exposed for tests. */
void brk_ctl_stats_json(struct brk *b, struct brk_sb *sb);

/* ---- the service manager (brk_service.c) ---------------------------------------------- */

/* Write "ready" to --ready-fd (and READY=1 to systemd) once sockets listen
   and every LOCAL machine finished its first start. */
void brk_check_ready(struct brk *b);
/* One systemd notification ("READY=1", "STOPPING=1"...) to
   $NOTIFY_SOCKET, if set; failures are only logged. */
void brk_sd_notify(const char *state);

#endif /* BRK_H */
