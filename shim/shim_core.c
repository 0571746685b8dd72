/*
 * shim_core.c: connection, per-thread lanes, the call path and the error
 * edge of libtremote_shim.so.
 *
 * The first CUDA call of the process connects to the broker (HELLO) and
 * reserves every device's address window PROT_NONE, so that no host
 * allocation can ever land on an address a device pointer may take
 * (docs/ARCHITECTURE.md, "Device address space").  Each thread opens its
 * own lane on its first call that needs one: threads never share a ring.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cuerr.h"
#include "shim.h"

struct shim_proc shim_proc;

/*
 * proc_init runs once per process image: under proc_lock until proc_ready.
 * Not a pthread_once, because a child of fork must be able to run it again
 * (see the fork section below); the thread key survives fork and is made
 * once.
 */
static pthread_mutex_t proc_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int proc_ready;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static pthread_key_t thread_key;
static __thread struct shim_thread *self;

/* The windows reserve_windows() mapped, so a forked child can drop them. */
static struct {
  uint64_t base, size;
} reserved[TR_VA_MAX_WINDOWS];
static unsigned nreserved;

/* ---- warnings ------------------------------------------------------ */

static pthread_mutex_t warn_lock = PTHREAD_MUTEX_INITIALIZER;
static const char *warned[64];
static int nwarned;

void shim_warn_once(const char *key, const char *fmt, ...)
{
  va_list ap;
  int i;

  pthread_mutex_lock(&warn_lock);
  for (i = 0; i < nwarned; i++)
    if (warned[i] == key)
      break;
  if (i < nwarned) {
    pthread_mutex_unlock(&warn_lock);
    return;
  }
  if (nwarned < (int)(sizeof(warned) / sizeof(warned[0])))
    warned[nwarned++] = key;
  pthread_mutex_unlock(&warn_lock);
  if (getenv("TREMOTE_QUIET") && strcmp(getenv("TREMOTE_QUIET"), "1") == 0)
    return;
  fputs("tremote: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

/* ---- process ------------------------------------------------------- */

static int pend_drain(struct shim_lane *l);

/* Close l once the replies still owed to it are in: until then the broker
   may not have placed an asynchronous copy's bytes, and a closed lane's
   replies are dropped. */
static void lane_close(struct shim_lane *l)
{
  if (l->open && shim_proc.connected) {
    (void)pend_drain(l);
    tr_client_lane_close(&shim_proc.cli, &l->lane);
  }
  l->open = 0;
}

static void thread_exit(void *arg)
{
  struct shim_thread *t = arg;

  shim_stream_thread_exit(t);
  for (unsigned i = 0; i < SHIM_STREAM_LANES; i++)
    if (t->slane[i]) {
      lane_close(t->slane[i]);
      free(t->slane[i]);
    }
  if (t->qlane) {
    lane_close(t->qlane);
    free(t->qlane);
  }
  lane_close(&t->own);
  free(t);
  /* A TLS destructor of the program's, run after this one, may still call
     CUDA: it must get a fresh state (registered again, so freed on the
     next destructor round), never the freed one. */
  self = NULL;
}

/*
 * Reserve the device windows.  A failure here is not fatal (the program
 * may have mapped something there first) but then a host pointer could
 * alias a device pointer, so say so.
 */
static void reserve_windows(void)
{
  for (uint32_t i = 0; i < shim_proc.cli.ndev; i++) {
    const struct tr_devinfo *d = &shim_proc.cli.dev[i];
    void *p;

    if (!d->va_size)
      continue;
    p = mmap((void *)(uintptr_t)d->va_base, d->va_size, PROT_NONE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE,
             -1, 0);
    if (p != MAP_FAILED && p == (void *)(uintptr_t)d->va_base &&
        nreserved < TR_VA_MAX_WINDOWS) {
      reserved[nreserved].base = d->va_base;
      reserved[nreserved++].size = d->va_size;
    }
    if (p == MAP_FAILED || p != (void *)(uintptr_t)d->va_base) {
      if (p != MAP_FAILED)
        munmap(p, d->va_size);
      shim_warn_once("window", "cannot reserve the address window of device "
                               "%u at 0x%llx: host and device pointers may "
                               "alias", i, (unsigned long long)d->va_base);
    }
  }
}

static void proc_init(void)
{
  const char *why = NULL;
  char path[108];
  int timeout = 120000, rc;
  const char *env = getenv("TREMOTE_CONNECT_TIMEOUT_MS");

  if (env && *env)
    timeout = atoi(env);
  tr_client_socket_path(path, sizeof(path));
  rc = tr_client_connect(&shim_proc.cli, path, timeout, &why);
  if (rc < 0) {
    shim_proc.init_err = cudaErrorNoDevice;
    if (rc == -ENOENT || rc == -ECONNREFUSED)
      shim_warn_once("nobroker",
                     "no tremote broker is running (socket %s), so there are "
                     "no CUDA devices; start one with 'tremote-broker &' "
                     "(or set TREMOTE_BROKER_SOCKET)", path);
    else
      shim_warn_once("nobroker", "cannot use the tremote broker at %s: %s (%s)",
                     path, why ? why : "connection failed", strerror(-rc));
    return;
  }
  reserve_windows();
  if (shim_proc.cli.ndev == 0) {
    const char *vis = getenv("TREMOTE_VISIBLE_DEVICES");

    shim_proc.init_err = cudaErrorNoDevice;
    if (vis)
      shim_warn_once("nodev", "TREMOTE_VISIBLE_DEVICES=\"%.64s\" names no "
                              "ready machine first, so there are no CUDA "
                              "devices (entries: machine indices or names, "
                              "comma-separated; tremote-smi lists them)", vis);
    else
      shim_warn_once("nodev", "the tremote broker has no ready machine, so "
                              "there are no CUDA devices");
  }
  shim_proc.connected = 1;
}

static void key_init(void)
{
  pthread_key_create(&thread_key, thread_exit);
}

struct shim_thread *shim_self(void)
{
  pthread_once(&key_once, key_init);
  if (!atomic_load_explicit(&proc_ready, memory_order_acquire)) {
    pthread_mutex_lock(&proc_lock);
    if (!atomic_load_explicit(&proc_ready, memory_order_relaxed)) {
      proc_init();
      atomic_store_explicit(&proc_ready, 1, memory_order_release);
    }
    pthread_mutex_unlock(&proc_lock);
  }
  if (self)
    return self;
  self = calloc(1, sizeof(*self));
  if (!self)
    return NULL;
  self->cur = &self->own;
  pthread_setspecific(thread_key, self);
  return self;
}

static _Atomic uint64_t lane_serial;

static int lane_open(struct shim_lane *l, uint64_t stream_id, int priority)
{
  int rc = tr_client_lane_open(&shim_proc.cli, &l->lane, priority);

  if (rc < 0)
    return rc;
  l->open = 1;
  l->serial = atomic_fetch_add(&lane_serial, 1) + 1;
  l->stream_id = stream_id;
  l->busy = 0;
  l->next_id = 0;
  l->pend_head = l->npend = 0;
  l->pend_records = 0;
  l->pend_err = 0;
  return 0;
}

cudaError_t shim_ready(struct shim_thread **tp)
{
  struct shim_thread *t = shim_self();
  int rc;

  *tp = t;
  if (!t)
    return cudaErrorMemoryAllocation;
  t->capture = NULL; /* a new API call: not capturing until it says so */
  t->cur = &t->own;  /* ... and on the thread's own lane */
  if (!shim_proc.connected || shim_proc.cli.ndev == 0)
    return shim_proc.init_err ? shim_proc.init_err : cudaErrorNoDevice;
  if (!t->own.open) {
    rc = lane_open(&t->own, 0, 0);
    if (rc < 0) {
      shim_warn_once("lane", "cannot open a lane to the broker: %s",
                     strerror(-rc));
      return cudaErrorDevicesUnavailable;
    }
  }
  return cudaSuccess;
}

struct shim_lane *shim_stream_lane(struct shim_thread *t, uint64_t stream_id,
                                   int priority, int open)
{
  struct shim_lane *l;
  unsigned k;
  int rc;

  for (unsigned i = 0; i < SHIM_STREAM_LANES; i++)
    if (t->slane[i] && t->slane[i]->open &&
        t->slane[i]->stream_id == stream_id)
      return t->slane[i];
  if (!open)
    return NULL;
  k = t->slane_next;
  t->slane_next = (k + 1) % SHIM_STREAM_LANES;
  l = t->slane[k];
  if (l) {
    /* Its records still run; the replies it is owed are taken first (its
       asynchronous copies' bytes are then in place); their errors go
       unreported, as for a thread that exits. */
    lane_close(l);
  } else {
    l = calloc(1, sizeof(*l));
    if (!l)
      return NULL;
    t->slane[k] = l;
  }
  memset(l, 0, sizeof(*l));
  rc = lane_open(l, stream_id, priority);
  if (rc < 0) {
    shim_warn_once("slane", "cannot open a lane for a stream (%s): its "
                            "work shares the thread's lane",
                   strerror(-rc));
    return NULL;
  }
  return l;
}

struct shim_lane *shim_query_lane(struct shim_thread *t)
{
  int rc;

  if (t->qlane && t->qlane->open)
    return t->qlane;
  if (!t->qlane) {
    t->qlane = calloc(1, sizeof(*t->qlane));
    if (!t->qlane)
      return NULL;
  }
  rc = lane_open(t->qlane, 0, 0);
  if (rc < 0) {
    shim_warn_once("qlane", "cannot open a lane for queries (%s): they wait "
                            "behind the thread's work", strerror(-rc));
    return NULL;
  }
  return t->qlane;
}

int shim_valid_device(int dev)
{
  return shim_proc.connected && dev >= 0 && (uint32_t)dev < shim_proc.cli.ndev;
}

int shim_device_of(const void *p)
{
  uint64_t a = (uint64_t)(uintptr_t)p;

  for (uint32_t i = 0; i < shim_proc.cli.ndev; i++) {
    const struct tr_devinfo *d = &shim_proc.cli.dev[i];
    if (a >= d->va_base && a - d->va_base < d->va_size)
      return (int)i;
  }
  return -1;
}

/* ---- calls ---------------------------------------------------------- */

/* Devices whose agent said device output is waiting (TR_F_OUTPUT). */
static _Atomic uint64_t output_pending;

/*
 * Print a failed call's diagnostic (PROTOCOL.md: a failed reply's payload
 * is one line of text).  The same line twice in a row is printed once, so
 * a program retrying a module that cannot load does not flood stderr.
 */
static void print_diagnostic(const uint8_t *text, uint32_t len)
{
  static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
  static uint64_t last;
  uint64_t h = 1469598103934665603ull;

  for (uint32_t i = 0; i < len; i++)
    h = (h ^ text[i]) * 1099511628211ull;
  pthread_mutex_lock(&lock);
  if (h != last) {
    last = h;
    fprintf(stderr, "tremote: %.*s\n", (int)len, (const char *)text);
  }
  pthread_mutex_unlock(&lock);
}

int shim_call(struct shim_thread *t, int dev, uint16_t op, const void *args,
              uint32_t alen, const void *data, uint32_t dlen, int want_reply,
              void *out, uint64_t out_cap, uint64_t *out_len)
{
  return shim_call_flags(t, dev, op, 0, args, alen, data, dlen, want_reply,
                         out, out_cap, out_len);
}

/*
 * r is not the reply the caller waits for: if it belongs to the oldest
 * request sent without waiting, take it (1); else 0 (a broken peer).
 */
static int pend_take(struct shim_lane *l, const struct tr_reply *r)
{
  unsigned k = l->pend_head;

  if (!l->npend || !(r->h.flags & TR_F_REPLY) ||
      r->h.request_id != l->pend[k].id)
    return 0;
  if (l->pend[k].records) {
    l->pend[k].records--;
    l->pend_records--;
  }
  if (r->h.flags & TR_F_PLACED) {
    l->pend[k].got += r->len == 8 ? tr_get_u64(r->payload) : 0;
  } else if (r->len && !r->h.status) {
    /* Bytes the broker could not place: the agent sent too many. */
    if (!l->pend_err)
      l->pend_err = (int)TR_ST_BAD_RECORD;
  }
  if (r->h.status && !l->pend_err)
    l->pend_err = (int)r->h.status;
  if (!(r->h.flags & TR_F_MORE)) {
    if (!r->h.status && l->pend[k].got != l->pend[k].want && !l->pend_err)
      l->pend_err = (int)TR_ST_BAD_RECORD;
    l->pend_records -= l->pend[k].records; /* fewer came than counted */
    l->pend_head = (k + 1) % SHIM_PEND_MAX;
    l->npend--;
  }
  return 1;
}

/* Take every outstanding reply (the bound on them was reached). */
static int pend_drain(struct shim_lane *l)
{
  struct tr_reply r;
  int rc;

  while (l->npend) {
    rc = tr_client_recv(&shim_proc.cli, &l->lane, &r, -1);
    if (rc < 0)
      return rc;
    rc = pend_take(l, &r);
    tr_client_recv_done(&shim_proc.cli, &l->lane, &r);
    if (!rc)
      return -EPROTO;
  }
  return 0;
}

int shim_call_async(struct shim_thread *th, int dev, uint16_t op,
                    uint16_t flags, const void *args, uint32_t alen,
                    uint64_t want)
{
  struct shim_lane *l = th->cur;
  uint64_t records = want / TR_CHUNK_MAX + 1;
  unsigned k;
  int rc;

  if (th->capture)
    return shim_capture_record(th, op, args, alen, NULL, 0, 1);
  if (l->npend == SHIM_PEND_MAX ||
      l->pend_records + records > SHIM_PEND_RECORDS) {
    rc = pend_drain(l);
    if (rc)
      return rc;
  }
  k = (l->pend_head + l->npend) % SHIM_PEND_MAX;
  l->pend[k].id = ++l->next_id;
  l->pend[k].want = want;
  l->pend[k].got = 0;
  l->pend[k].records = records;
  rc = tr_client_send(&shim_proc.cli, &l->lane, (uint16_t)dev, op,
                      flags | TR_F_WANT_REPLY, l->pend[k].id, args, alen,
                      NULL, 0);
  if (rc < 0)
    return rc;
  if (l == &th->own)
    shim_legacy_sent(th, dev, l->pend[k].id);
  l->npend++;
  l->pend_records += records;
  if (l->stream_id) {
    l->busy = 1;
    l->busy_dev = dev;
  }
  return 0;
}

int shim_call_flags(struct shim_thread *t, int dev, uint16_t op,
                    uint16_t flags, const void *args, uint32_t alen,
                    const void *data, uint32_t dlen, int want_reply,
                    void *out, uint64_t out_cap, uint64_t *out_len)
{
  struct shim_lane *l = t->cur;
  struct tr_reply r;
  uint64_t id, got = 0;
  int rc, status = 0, output = 0, deferred = 0;

  t->call_ok = 0;
  if (t->capture)
    return shim_capture_record(t, op, args, alen, data, dlen, want_reply);
  id = ++l->next_id;
  if (l->stream_id && op != TR_OP_SYNCHRONIZE) {
    l->busy = 1;
    l->busy_dev = dev;
  }
  rc = tr_client_send(&shim_proc.cli, &l->lane, (uint16_t)dev, op,
                      flags | (want_reply ? TR_F_WANT_REPLY : 0), id, args,
                      alen, data, dlen);
  if (rc == 0 && l == &t->own)
    shim_legacy_sent(t, dev, id);
  if (rc < 0 || !want_reply)
    return rc;
  for (;;) {
    rc = tr_client_recv(&shim_proc.cli, &l->lane, &r, -1);
    if (rc < 0)
      return rc;
    if (!(r.h.flags & TR_F_REPLY) || r.h.request_id != id) {
      /* Replies come in order on a lane: an earlier request's that was
         sent without waiting, or a broken peer. */
      int taken = pend_take(l, &r);

      tr_client_recv_done(&shim_proc.cli, &l->lane, &r);
      if (taken)
        continue;
      return -EPROTO;
    }
    if (r.h.status && !status) {
      status = (int)r.h.status;
      deferred = (r.h.flags & TR_F_DEFERRED) != 0;
    }
    int more = r.h.flags & TR_F_MORE;
    if (!more && (r.h.flags & TR_F_OUTPUT))
      output = 1;
    if (r.h.flags & TR_F_PLACED) {
      /* The broker wrote this many bytes at our TR_F_DEST range. */
      uint64_t n = r.len == 8 ? tr_get_u64(r.payload) : 0;

      if (!(flags & TR_F_DEST) || r.len != 8 || got + n > out_cap) {
        if (!status)
          status = (int)TR_ST_BAD_RECORD;
      } else {
        got += n;
      }
    } else if (r.len && r.h.status && !more &&
               !(r.h.flags & TR_F_DEFERRED) && op != TR_OP_SYNCHRONIZE &&
               op != TR_OP_OUTPUT) {
      print_diagnostic(r.payload, r.len);
    } else if (r.len) {
      if (!out || got + r.len > out_cap) {
        if (!status)
          status = (int)TR_ST_BAD_RECORD;
      } else {
        memcpy((uint8_t *)out + got, r.payload, r.len);
        got += r.len;
      }
    }
    tr_client_recv_done(&shim_proc.cli, &l->lane, &r);
    if (!more)
      break;
  }
  if (!status && l->pend_err) {
    status = l->pend_err;
    l->pend_err = 0;
    deferred = 1;
  }
  t->call_ok = !status || deferred;
  if (out_len)
    *out_len = got;
  if (output)
    atomic_fetch_or(&output_pending, 1ull << dev);
  else if (op == TR_OP_SYNCHRONIZE || op == TR_OP_OUTPUT)
    atomic_fetch_and(&output_pending, ~(1ull << dev));
  /* A blocking copy is a point where CUDA prints what kernels printed. */
  if (output && (op == TR_OP_MEMCPY_D2H || op == TR_OP_MEMCPY_H2D ||
                 op == TR_OP_MEMCPY_D2D || op == TR_OP_MEMSET))
    (void)shim_device_output(t, dev, TR_OP_OUTPUT);
  return status;
}

int shim_call_own(struct shim_thread *t, int rc)
{
  if (rc <= 0 || !t->call_ok)
    return rc;
  if (!t->cur->pend_err)
    t->cur->pend_err = rc;
  return 0;
}

int shim_sync_stream_lanes(struct shim_thread *t)
{
  struct shim_lane *was = t->cur;
  int first = 0;

  for (unsigned i = 0; i < SHIM_STREAM_LANES; i++) {
    struct shim_lane *l = t->slane[i];
    int rc;

    if (!l || !l->open || !l->busy)
      continue;
    t->cur = l;
    rc = shim_call(t, l->busy_dev, TR_OP_SYNCHRONIZE, NULL, 0, NULL, 0, 1,
                   NULL, 0, NULL);
    if (rc == 0)
      l->busy = 0;
    if (rc && !first)
      first = rc;
  }
  t->cur = was;
  return first;
}

/* Write device output records to the program's stdout and stderr. */
static void emit_output(const uint8_t *p, uint64_t n)
{
  int flushed_out = 0;

  while (n >= 8) {
    uint32_t len = tr_get_u32(p + 4);
    FILE *f = p[0] == 2 ? stderr : stdout;

    if (len > n - 8)
      break; /* a broken record: drop the rest rather than guess */
    if (f == stderr && !flushed_out) {
      fflush(stdout); /* keep printf lines before the fault report */
      flushed_out = 1;
    }
    fwrite(p + 8, 1, len, f);
    p += 8 + len;
    n -= 8 + len;
  }
  fflush(stdout);
}

int shim_device_output(struct shim_thread *t, int dev, uint16_t op)
{
  uint8_t *buf = malloc(TR_OUTPUT_REPLY_MAX);
  uint64_t got;
  int rc, first = 0, first_ok = 0;

  if (!buf)
    return -ENOMEM;
  for (int i = 0; i < 4096; i++) {
    got = 0;
    rc = shim_call(t, dev, op, NULL, 0, NULL, 0, 1, buf, TR_OUTPUT_REPLY_MAX,
                   &got);
    if (got)
      emit_output(buf, got);
    if (i == 0) {
      first = rc;
      first_ok = t->call_ok;
    }
    if (rc < 0 || !(atomic_load(&output_pending) & (1ull << dev)))
      break;
    op = TR_OP_OUTPUT; /* more is waiting: collect only that */
  }
  free(buf);
  t->call_ok = first_ok; /* the answer is op's, not the collecting's */
  return first;
}

int shim_output_pending(int dev)
{
  return (atomic_load(&output_pending) >> dev) & 1;
}

/*
 * Once per device: which machine was lost.  The error comes back on the
 * call that met it, which is the current device's in all but copies to
 * another device's memory, so that is the device named.
 */
static void warn_lost(int dev)
{
  static _Atomic uint64_t said;
  uint64_t bit = dev >= 0 && dev < 64 ? 1ull << dev : 0;
  const char *name = dev >= 0 && (uint32_t)dev < shim_proc.cli.ndev &&
                             shim_proc.cli.mname && shim_proc.cli.mname[dev][0]
                         ? shim_proc.cli.mname[dev]
                         : NULL;

  if (!bit || (atomic_fetch_or(&said, bit) & bit))
    return;
  if (getenv("TREMOTE_QUIET") && strcmp(getenv("TREMOTE_QUIET"), "1") == 0)
    return;
  if (name)
    fprintf(stderr, "tremote: machine %s (CUDA device %d) was lost: its "
                    "memory and work are gone ('tremote machine ls' says "
                    "why)\n", name, dev);
  else
    fprintf(stderr, "tremote: the machine of CUDA device %d was lost: its "
                    "memory and work are gone\n", dev);
}

cudaError_t shim_cuda_error(struct shim_thread *t, int rc)
{
  cudaError_t e;

  if (rc == 0)
    return cudaSuccess;
  if (rc > 0 && rc < (int)TR_ST_BASE) {
    e = (cudaError_t)rc;
  } else if (rc > 0) {
    switch ((unsigned)rc) {
    case TR_ST_MACHINE_LOST:
      warn_lost(t->device);
      e = cudaErrorDevicesUnavailable;
      break;
    case TR_ST_BAD_HANDLE:
      e = cudaErrorInvalidResourceHandle;
      break;
    case TR_ST_BAD_OPCODE:
      e = cudaErrorNotSupported;
      break;
    case TR_ST_AUTH:
    case TR_ST_VERSION:
      e = cudaErrorDevicesUnavailable;
      break;
    default:
      e = cudaErrorUnknown;
      break;
    }
  } else {
    if (rc == -ENOTCONN || rc == -EPIPE || rc == -ECONNRESET)
      shim_warn_once("brokergone", "lost the connection to the tremote "
                                   "broker; CUDA calls now fail");
    e = (cudaError_t)tr_cuerr_from_errno(rc);
  }
  if (t && e != cudaSuccess)
    t->last_error = e;
  return e;
}

cudaError_t shim_wrong_device(struct shim_thread *t, const char *what,
                              const void *ptr, int ptr_dev, int used_dev)
{
  const struct tr_devinfo *p = &shim_proc.cli.dev[ptr_dev];
  const struct tr_devinfo *u = &shim_proc.cli.dev[used_dev];

  fprintf(stderr, "tremote: %s: %p is memory of device %d (machine %u, %s) "
                  "but is used with device %d (machine %u, %s); a device "
                  "pointer is valid only on the machine that allocated it\n",
          what, ptr, ptr_dev, p->machine_index, p->name, used_dev,
          u->machine_index, u->name);
  if (t)
    t->last_error = cudaErrorInvalidValue;
  return cudaErrorInvalidValue;
}

/* Called by the generated stubs, which have no thread pointer at hand. */
void shim_set_last_error(int err)
{
  struct shim_thread *t = shim_self();

  if (t && err)
    t->last_error = (cudaError_t)err;
}

/* ---- error state API ----------------------------------------------- */

cudaError_t cudaGetLastError(void)
{
  struct shim_thread *t = shim_self();
  cudaError_t e;

  if (!t)
    return cudaErrorMemoryAllocation;
  e = t->last_error;
  t->last_error = cudaSuccess;
  return e;
}

cudaError_t cudaPeekAtLastError(void)
{
  struct shim_thread *t = shim_self();

  return t ? t->last_error : cudaErrorMemoryAllocation;
}

/* ---- fork ------------------------------------------------------------ */

/*
 * A child of fork must never touch its parent's session: the lanes are
 * shared memory the parent is still using, and the broker socket is the
 * parent's connection.  So the child forgets all of it (closing only its
 * own copies of the descriptors, sending nothing) and, on its first CUDA
 * call, connects as a new client with a session of its own, as a fresh
 * process would.  Device pointers of the parent mean nothing in the child,
 * as with CUDA, and its address windows are reserved again.
 *
 * The locks the shim takes are held across fork by the forking thread
 * (prepare/parent/child), so no other thread can leave one locked in the
 * child.
 */
static void fork_prepare(void)
{
  pthread_mutex_lock(&proc_lock);
  pthread_mutex_lock(&warn_lock);
  shim_module_fork_lock(1);
  shim_host_fork_lock(1);
}

static void fork_parent(void)
{
  shim_host_fork_lock(0);
  shim_module_fork_lock(0);
  pthread_mutex_unlock(&warn_lock);
  pthread_mutex_unlock(&proc_lock);
}

static void fork_child(void)
{
  shim_proc.forks++;
  shim_host_forget_regions();
  shim_host_fork_lock(0);
  shim_module_fork_lock(0);
  pthread_mutex_unlock(&warn_lock);
  if (atomic_load(&proc_ready)) {
    if (self) {
      /* Ours to drop: no LANE_CLOSE (they are the parent's). */
      if (self->own.open)
        tr_lane_unmap(&self->own.lane);
      self->own.open = 0;
      for (unsigned i = 0; i < SHIM_STREAM_LANES; i++)
        if (self->slane[i]) {
          if (self->slane[i]->open)
            tr_lane_unmap(&self->slane[i]->lane);
          free(self->slane[i]);
          self->slane[i] = NULL;
        }
      if (self->qlane) {
        if (self->qlane->open)
          tr_lane_unmap(&self->qlane->lane);
        free(self->qlane);
        self->qlane = NULL;
      }
      self->cur = &self->own;
      self->last_error = cudaSuccess;
      self->ncfg = 0;
      free(self->legacy); /* the parent's session's events */
      self->legacy = NULL;
      self->nlegacy = 0;
    }
    /* Other threads' default-stream work too, even when this thread never
       called CUDA: it names the parent's lanes, which the child's default
       stream would wait for forever. */
    shim_legacy_forget_all();
    shim_graph_forget();
    if (shim_proc.cli.fd >= 0)
      close(shim_proc.cli.fd);
    free(shim_proc.cli.dev);
    memset(&shim_proc, 0, sizeof(shim_proc));
    shim_proc.cli.fd = -1;
    for (unsigned i = 0; i < nreserved; i++)
      munmap((void *)(uintptr_t)reserved[i].base, reserved[i].size);
    nreserved = 0;
    atomic_store(&output_pending, 0);
    shim_module_forget();
    shim_stream_forget();
    shim_alloc_forget_all();
    shim_pool_forget_all();
    atomic_store(&proc_ready, 0);
  }
  pthread_mutex_unlock(&proc_lock);
}

__attribute__((constructor)) static void fork_handlers(void)
{
  pthread_atfork(fork_prepare, fork_parent, fork_child);
}
