/*
 * agent_session.c: sessions, lanes and the inbox (agent_session.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "agent.h"
#include "agent_exec.h"
#include "agent_session.h"
#include "trace.h"

/* ---- inbox ------------------------------------------------------------ */

int agt_inbox_init(struct agt_inbox *ib)
{
  ib->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (ib->efd < 0)
    return -errno;
  pthread_mutex_init(&ib->mu, NULL);
  ib->head = NULL;
  ib->tail = &ib->head;
  return 0;
}

void agt_inbox_release(struct agt_inbox *ib)
{
  close(ib->efd);
  pthread_mutex_destroy(&ib->mu);
}

bool agt_inbox_post(struct agt_inbox *ib, struct agt_note *n)
{
  bool wake;

  pthread_mutex_lock(&ib->mu);
  if (n->posted) {
    pthread_mutex_unlock(&ib->mu);
    return false;
  }
  n->posted = true;
  n->next = NULL;
  wake = ib->head == NULL; /* only the first note needs a syscall */
  atomic_store_explicit(&ib->nonempty, true, memory_order_relaxed);
  *ib->tail = n;
  ib->tail = &n->next;
  pthread_mutex_unlock(&ib->mu);
  if (wake) {
    uint64_t one = 1;

    /* EAGAIN means the counter is already huge: it is readable anyway. */
    if (write(ib->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
      agt_err("inbox eventfd write: %s", strerror(errno));
  }
  return true;
}

struct agt_note *agt_inbox_take(struct agt_inbox *ib)
{
  struct agt_note *list;
  uint64_t v;

  pthread_mutex_lock(&ib->mu);
  /* Drained under the lock, so a post after it writes the eventfd again. */
  if (read(ib->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
    agt_err("inbox eventfd read: %s", strerror(errno));
  list = ib->head;
  atomic_store_explicit(&ib->nonempty, false, memory_order_relaxed);
  ib->head = NULL;
  ib->tail = &ib->head;
  pthread_mutex_unlock(&ib->mu);
  return list;
}

void agt_inbox_done(struct agt_inbox *ib, struct agt_note *n)
{
  pthread_mutex_lock(&ib->mu);
  n->posted = false;
  pthread_mutex_unlock(&ib->mu);
}

/* ---- sessions --------------------------------------------------------- */

static void wake(struct agt_waiter *w, bool released);

/*
 * Under s->mu: park l (off the run queue, referenced) with waiter w at
 * the head of *list, unless l was aborted: then false, and nothing done.
 * Parked under s->mu, so what wakes it (which takes s->mu first) cannot
 * come between; an abort sets `aborted` before it looks for the lane's
 * waiter (unwait), so either it is seen here or the waiter is found there.
 */
static bool park_locked(struct agt_lane *l, struct agt_waiter *w,
                        struct agt_waiter **list)
{
  pthread_mutex_lock(&l->mu);
  if (l->aborted) {
    pthread_mutex_unlock(&l->mu);
    return false;
  }
  l->parked = true;
  l->queued = false;
  pthread_mutex_unlock(&l->mu);
  agt_lane_get(l);
  w->lane = l;
  w->next = *list;
  *list = w;
  return true;
}

/* Under s->mu: l's waiter, taken off *list; NULL if none is there. */
static struct agt_waiter *unpark_locked(struct agt_lane *l,
                                        struct agt_waiter **list)
{
  for (struct agt_waiter **pp = list; *pp; pp = &(*pp)->next)
    if ((*pp)->lane == l) {
      struct agt_waiter *w = *pp;

      *pp = w->next;
      return w;
    }
  return NULL;
}

/* The backend context of s takes calls now: its parked lanes go on. */
static void session_ready(void *arg)
{
  struct agt_session *s = arg;
  struct agt_waiter *w;

  pthread_mutex_lock(&s->mu);
  atomic_store_explicit(&s->be_ready, true, memory_order_release);
  w = s->ready_waiters;
  s->ready_waiters = NULL;
  for (struct agt_waiter *i = w; i; i = i->next)
    i->lane->wait_ready = false;
  pthread_mutex_unlock(&s->mu);
  wake(w, false); /* their records have not run: nothing is released */
}

bool agt_session_ready_or_park(struct agt_lane *l)
{
  struct agt_session *s = l->sess;
  struct agt_waiter *w;

  if (atomic_load_explicit(&s->be_ready, memory_order_acquire))
    return true;
  w = calloc(1, sizeof(*w));
  pthread_mutex_lock(&s->mu);
  if (!w || atomic_load_explicit(&s->be_ready, memory_order_acquire)) {
    pthread_mutex_unlock(&s->mu);
    free(w); /* no memory: the calls wait for the context instead */
    return true;
  }
  if (!park_locked(l, w, &s->ready_waiters)) {
    pthread_mutex_unlock(&s->mu);
    free(w);
    return true; /* the caller finds it aborted */
  }
  l->wait_ready = true;
  pthread_mutex_unlock(&s->mu);
  return false;
}

int agt_session_new(uint64_t id, struct agt_backend *be,
                    struct agt_modcache *cache, struct agt_inbox *inbox,
                    struct agt_closer *closer, uint64_t va_base,
                    uint64_t va_size, struct agt_session **out,
                    const char **why)
{
  struct agt_session *s = calloc(1, sizeof(*s));
  int rc;

  if (!s) {
    *why = "out of memory";
    return -ENOMEM;
  }
  rc = be->ops->ctx_open(be, va_base, va_size, &s->ctx, why);
  if (rc < 0) {
    free(s);
    return rc;
  }
  s->id = id;
  s->be = be;
  s->cache = cache;
  s->inbox = inbox;
  s->closer = closer;
  atomic_init(&s->refs, 1);
  s->note.kind = AGT_NOTE_SESSION;
  pthread_mutex_init(&s->mu, NULL);
  pthread_mutex_init(&s->out_mu, NULL);
  atomic_init(&s->sticky, 0);
  agt_hmap_init(&s->modules);
  agt_hmap_init(&s->funcs);
  agt_hmap_init(&s->events);
  agt_hmap_init(&s->graphs);
  agt_hmap_init(&s->allocs);
  /* A context still being set up (a worker starting its driver) is
     waited for by parking the lanes that would use it. */
  atomic_init(&s->be_ready, true);
  if (be->ops->ctx_when_ready) {
    atomic_store(&s->be_ready, false);
    if (be->ops->ctx_when_ready(s->ctx, session_ready, s))
      atomic_store(&s->be_ready, true);
  }
  *out = s;
  return 0;
}

void agt_session_get(struct agt_session *s)
{
  atomic_fetch_add(&s->refs, 1);
}

bool agt_smod_put_locked(struct agt_smod *sm)
{
  return --sm->refs == 0;
}

void agt_smod_free(struct agt_session *s, struct agt_smod *sm)
{
  s->be->ops->module_unload(s->ctx, sm->bmod);
  agt_module_put(sm->m);
  free(sm);
}

/*
 * Free everything the session made on the device.  Nobody else holds a
 * reference, so no lock is contended; it is taken anyway to keep the rule
 * "maps are touched under mu" simple to check.
 */
static void session_teardown(struct agt_session *s)
{
  uint64_t key;

  pthread_mutex_lock(&s->mu);
  while ((key = agt_hmap_any(&s->funcs)) != 0) {
    struct agt_sfunc *f = agt_hmap_del(&s->funcs, key);

    /* Module handles are still in their map, so none reaches zero. */
    agt_smod_put_locked(f->mod);
    free(f);
  }
  while ((key = agt_hmap_any(&s->modules)) != 0) {
    struct agt_smod *sm = agt_hmap_del(&s->modules, key);

    if (agt_smod_put_locked(sm))
      agt_smod_free(s, sm);
  }
  agt_upload_free_all(&s->uploads);
  while ((key = agt_hmap_any(&s->events)) != 0) {
    struct agt_event *e = agt_hmap_del(&s->events, key);

    /* Lanes still parked: the session is ending, they are aborted. */
    for (struct agt_waiter *w = e->waiters, *n; w; w = n) {
      n = w->next;
      agt_lane_put(w->lane);
      free(w);
    }
    free(e);
  }
  while ((key = agt_hmap_any(&s->graphs)) != 0) {
    struct agt_graph *g = agt_hmap_del(&s->graphs, key);

    free(g->buf);
    free(g);
  }
  pthread_mutex_unlock(&s->mu);
  agt_hmap_release(&s->graphs);
  agt_hmap_release(&s->allocs); /* the context frees the memory */
  agt_hmap_release(&s->events);
  agt_hmap_release(&s->funcs);
  agt_hmap_release(&s->modules);
  s->be->ops->ctx_close(s->ctx);
  s->ctx = NULL;
}

/* Free the session's device objects, then post its note (after which s
   may be freed by the network thread). */
static void teardown_and_post(struct agt_session *s)
{
  session_teardown(s);
  agt_debug("session %016llx: device objects freed", (unsigned long long)s->id);
  agt_inbox_post(s->inbox, &s->note);
}

void agt_session_put(struct agt_session *s)
{
  struct agt_closer *cl = s->closer;

  if (atomic_fetch_sub(&s->refs, 1) != 1)
    return;
  /* On the closer's threads (8 programs ending together on an H200 each
     waited for all the ends before its own, on the network thread). */
  pthread_mutex_lock(&cl->mu);
  s->close_next = NULL;
  *cl->tail = s;
  cl->tail = &s->close_next;
  cl->pending++;
  pthread_cond_signal(&cl->work);
  pthread_mutex_unlock(&cl->mu);
}

/* ---- closer ------------------------------------------------------------- */

static void *closer_main(void *arg)
{
  struct agt_closer *cl = arg;

  pthread_mutex_lock(&cl->mu);
  for (;;) {
    struct agt_session *s = cl->head;

    if (!s) {
      if (cl->stop)
        break;
      pthread_cond_wait(&cl->work, &cl->mu);
      continue;
    }
    cl->head = s->close_next;
    if (!cl->head)
      cl->tail = &cl->head;
    pthread_mutex_unlock(&cl->mu);
    teardown_and_post(s);
    pthread_mutex_lock(&cl->mu);
    /* After the note: whoever waits for idle then finds every note. */
    if (--cl->pending == 0)
      pthread_cond_broadcast(&cl->idle);
  }
  pthread_mutex_unlock(&cl->mu);
  return NULL;
}

int agt_closer_init(struct agt_closer *cl)
{
  int rc = 0;

  pthread_mutex_init(&cl->mu, NULL);
  pthread_cond_init(&cl->work, NULL);
  pthread_cond_init(&cl->idle, NULL);
  cl->head = NULL;
  cl->tail = &cl->head;
  cl->pending = 0;
  cl->stop = false;
  cl->nthreads = 0;
  while (cl->nthreads < AGT_CLOSERS) {
    rc = pthread_create(&cl->threads[cl->nthreads], NULL, closer_main, cl);
    if (rc != 0)
      break;
    cl->nthreads++;
  }
  if (cl->nthreads == 0) { /* one would do; none will not */
    agt_closer_release(cl);
    return -rc;
  }
  return 0;
}

void agt_closer_wait_idle(struct agt_closer *cl)
{
  pthread_mutex_lock(&cl->mu);
  while (cl->pending)
    pthread_cond_wait(&cl->idle, &cl->mu);
  pthread_mutex_unlock(&cl->mu);
}

void agt_closer_release(struct agt_closer *cl)
{
  pthread_mutex_lock(&cl->mu);
  cl->stop = true;
  pthread_cond_broadcast(&cl->work);
  pthread_mutex_unlock(&cl->mu);
  for (unsigned i = 0; i < cl->nthreads; i++)
    pthread_join(cl->threads[i], NULL);
  pthread_cond_destroy(&cl->idle);
  pthread_cond_destroy(&cl->work);
  pthread_mutex_destroy(&cl->mu);
}

void agt_session_free(struct agt_session *s)
{
  pthread_mutex_destroy(&s->out_mu);
  pthread_mutex_destroy(&s->mu);
  free(s->out);
  free(s);
}

/* ---- device output ---------------------------------------------------- */

#define OUT_REC_HDR 8u /* u8 fd, pad[3], u32 len */

/* Append one record (out_mu held).  False when it does not fit. */
static bool out_append(struct agt_session *s, int fd, const char *text,
                       size_t n)
{
  size_t need = s->out_len + OUT_REC_HDR + n;
  uint8_t *p;

  if (need > AGT_OUTPUT_MAX + 1024u) /* room kept for the drop note */
    return false;
  if (need > s->out_cap) {
    size_t ncap = s->out_cap ? s->out_cap : 4096;

    while (ncap < need)
      ncap *= 2;
    p = realloc(s->out, ncap);
    if (!p)
      return false;
    s->out = p;
    s->out_cap = ncap;
  }
  p = s->out + s->out_len;
  p[0] = (uint8_t)fd;
  p[1] = p[2] = p[3] = 0;
  tr_put_u32(p + 4, (uint32_t)n);
  memcpy(p + OUT_REC_HDR, text, n);
  s->out_len = need;
  return true;
}

void agt_session_output(struct agt_session *s, int fd, const char *text,
                        size_t n)
{
  pthread_mutex_lock(&s->out_mu);
  /* Printf output beyond the FIFO is lost, as on a GPU; fault reports
     (fd 2) are short and always kept. */
  if ((fd == 1 && s->out_len + n > AGT_OUTPUT_MAX) ||
      !out_append(s, fd, text, n))
    s->out_dropped += n;
  pthread_mutex_unlock(&s->out_mu);
}

bool agt_session_has_output(struct agt_session *s)
{
  bool has;

  pthread_mutex_lock(&s->out_mu);
  has = s->out_len > 0 || s->out_dropped > 0;
  pthread_mutex_unlock(&s->out_mu);
  return has;
}

int agt_session_take_output(struct agt_session *s, uint32_t max,
                            struct agt_out **out)
{
  size_t take = 0;
  struct agt_out *o;

  *out = NULL;
  pthread_mutex_lock(&s->out_mu);
  if (s->out_dropped) {
    char note[128];
    int n = snprintf(note, sizeof(note),
                     "tremote: %llu bytes of device printf output were "
                     "dropped (the 1 MiB printf buffer was full)\n",
                     (unsigned long long)s->out_dropped);

    if (n > 0 && out_append(s, 2, note, (size_t)n))
      s->out_dropped = 0;
  }
  /* Whole records while they fit; a first record bigger than max is cut
     in two, the rest staying queued as a record of its own. */
  while (take < s->out_len) {
    uint32_t n = tr_get_u32(s->out + take + 4);

    if (take + OUT_REC_HDR + n > max)
      break;
    take += OUT_REC_HDR + n;
  }
  if (take == 0 && s->out_len > 0 && max > OUT_REC_HDR) {
    uint8_t *p = s->out;
    uint32_t n = tr_get_u32(p + 4), first = max - OUT_REC_HDR;

    o = agt_out_new(max);
    if (!o) {
      pthread_mutex_unlock(&s->out_mu);
      return -ENOMEM;
    }
    memcpy(agt_out_payload(o), p, max);
    tr_put_u32(agt_out_payload(o) + 4, first);
    /* What is left becomes a record: shift it down behind a new header. */
    memmove(p + OUT_REC_HDR, p + OUT_REC_HDR + first,
            s->out_len - OUT_REC_HDR - first);
    tr_put_u32(p + 4, n - first);
    s->out_len -= first;
    pthread_mutex_unlock(&s->out_mu);
    *out = o;
    return 0;
  }
  if (take == 0) {
    pthread_mutex_unlock(&s->out_mu);
    return 0;
  }
  o = agt_out_new((uint32_t)take);
  if (!o) {
    pthread_mutex_unlock(&s->out_mu);
    return -ENOMEM;
  }
  memcpy(agt_out_payload(o), s->out, take);
  memmove(s->out, s->out + take, s->out_len - take);
  s->out_len -= take;
  pthread_mutex_unlock(&s->out_mu);
  *out = o;
  return 0;
}

/* ---- lanes ------------------------------------------------------------ */

void agt_rec_unpin(struct agt_lane *l, struct agt_rec *r)
{
  struct agt_session *s = l->sess;

  if (!r->pin)
    return;
  s->be->ops->mem_unpin(s->ctx, r->pin);
  r->pin = NULL;
}

/* The record is no longer pending on its lane (see direct_target). */
static void rec_uncount(struct agt_lane *l, struct agt_rec *r)
{
  pthread_mutex_lock(&l->mu);
  if (r->cls == AGT_REC_H2D && --l->pend_h2d == 0)
    l->pend_lo = l->pend_hi = 0;
  else if (r->cls == AGT_REC_OTHER)
    l->pend_other--;
  pthread_mutex_unlock(&l->mu);
  r->cls = 0;
}

void agt_rec_free(struct agt_lane *l, struct agt_rec *r)
{
  if (!r)
    return;
  agt_rec_unpin(l, r);
  if (r->stage)
    l->sess->be->ops->stage_put(r->stage);
  if (r->cls)
    rec_uncount(l, r);
  free(r);
}

/* Argument bytes of a MEMCPY_H2D: u64 dst, u64 len. */
#define REC_PREFIX 16u

/*
 * Whether the record h (first bytes `pre`) is a MEMCPY_H2D to receive
 * straight into device memory; if so, returns where its data goes, with
 * the destination pinned in *pin.  Either way the record is counted as
 * pending on the lane (r->cls) until agt_rec_free.
 *
 * Why this keeps the lane's order: the copy happens now, on the network
 * thread, instead of when an execution thread reaches the record.  That is
 * the same thing as long as nothing of this lane that runs before it could
 * see the difference: every record still pending on the lane (queued,
 * executing, or being received) is itself a host-to-device copy, and none
 * of them writes a byte of this one's range.  Then the only effect of the
 * earlier records is on other bytes, and moving this write earlier cannot
 * be observed.  Records after it cannot start before it is complete: a
 * lane is one HTTP/2 stream whose bytes are decoded in order, on this
 * thread, and its completion record is queued behind everything before
 * it.  A large copy arrives as ascending 1 MiB chunks, so after the first
 * chunk every chunk qualifies while the execution thread is still busy
 * with earlier ones.  Other lanes of the session may run meanwhile, as they
 * may during any copy; a cudaFree from one of them is made safe by the pin.
 * If the stream dies halfway, part of the range was written: the copy
 * failed anyway, and the client sees a transport error, as with a real
 * device mid-transfer.
 */
static uint8_t *direct_target(struct agt_lane *l, struct agt_rec *r,
                              const struct tr_hdr *h, const uint8_t *pre,
                              uint32_t n, void **pin)
{
  const struct agt_backend_ops *ops = l->sess->be->ops;
  uint64_t dst = 0, len = 0;
  bool h2d, direct;

  h2d = h->opcode == TR_OP_MEMCPY_H2D && n == REC_PREFIX &&
        !(h->flags & (TR_F_REPLY | TR_F_MORE | TR_F_SHMREF));
  if (h2d) {
    dst = tr_get_u64(pre);
    len = tr_get_u64(pre + 8);
    /* Exactly what op_memcpy_h2d accepts, and no wrap. */
    h2d = len <= TR_CHUNK_MAX && len == (uint64_t)h->payload_len - REC_PREFIX &&
          dst + len >= dst;
  }
  r->cls = h2d ? AGT_REC_H2D : AGT_REC_OTHER;
  r->lo = dst;
  r->hi = dst + len;

  pthread_mutex_lock(&l->mu);
  direct = h2d && len >= AGT_DIRECT_MIN && ops->mem_pin && !l->aborted &&
           l->pend_other == 0 &&
           (l->pend_h2d == 0 || r->hi <= l->pend_lo || r->lo >= l->pend_hi);
  if (h2d) {
    if (l->pend_h2d++ == 0) {
      l->pend_lo = r->lo;
      l->pend_hi = r->hi;
    } else {
      l->pend_lo = r->lo < l->pend_lo ? r->lo : l->pend_lo;
      l->pend_hi = r->hi > l->pend_hi ? r->hi : l->pend_hi;
    }
  } else {
    l->pend_other++;
  }
  pthread_mutex_unlock(&l->mu);
  if (!direct)
    return NULL;
  return ops->mem_pin(l->sess->ctx, dst, len, pin);
}

/*
 * The decoder's split callback: where the rest of a record goes.  Normally
 * a new record with room for the whole payload (the prefix copied in
 * front); for a direct MEMCPY_H2D, device memory.
 */
static uint8_t *rec_split(void *arg, const struct tr_hdr *h,
                          const uint8_t *pre, uint32_t n)
{
  struct agt_lane *l = arg;
  struct agt_rec head, *r;
  const struct agt_backend_ops *ops = l->sess->be->ops;
  void *pin = NULL, *stage = NULL;
  uint8_t *dev, *staged = NULL;

  agt_rec_free(l, l->cur); /* only set if a previous record never completed */
  l->cur = NULL;
  dev = direct_target(l, &head, h, pre, n, &pin);
  /* Not into device memory: into staging memory, if the backend has it
     (one copy less on the way to a worker's device; in order, since the
     copy itself runs when the record's turn comes). */
  if (!dev && head.cls == AGT_REC_H2D && head.hi - head.lo >= AGT_DIRECT_MIN &&
      ops->stage_get)
    staged = ops->stage_get(l->sess->ctx, head.hi - head.lo, &stage);
  r = malloc(sizeof(*r) + (dev || staged ? n : h->payload_len));
  if (!r) {
    if (dev)
      ops->mem_unpin(l->sess->ctx, pin);
    if (staged)
      ops->stage_put(stage);
    head.pin = NULL;
    head.direct = false;
    rec_uncount(l, &head);
    return NULL;
  }
  r->next = NULL;
  r->hdr = *h;
  r->wire_len = TR_HDR_SIZE + h->payload_len;
  r->gen = l->gen; /* written by this thread only */
  r->direct = dev != NULL;
  r->pin = dev ? pin : NULL;
  r->stage = staged ? stage : NULL;
  r->staged = staged;
  r->cls = head.cls;
  r->lo = head.lo;
  r->hi = head.hi;
  memcpy(r->payload, pre, n);
  l->cur = r;
  return dev ? dev : staged ? staged : r->payload + n;
}

static int lane_decoder_init(struct agt_lane *l)
{
  return tr_decoder_init_split(&l->dec, TR_PAYLOAD_MAX, REC_PREFIX, rec_split,
                               l);
}

int agt_lane_decoder_reset(struct agt_lane *l)
{
  tr_decoder_release(&l->dec);
  agt_rec_free(l, l->cur);
  l->cur = NULL;
  return lane_decoder_init(l);
}

struct agt_rec *agt_lane_take_rec(struct agt_lane *l)
{
  struct agt_rec *r = l->cur;

  l->cur = NULL;
  return r;
}

static struct agt_event *event_new(struct agt_session *s, uint64_t h);
static void mark_end(struct agt_lane *l);

int agt_lane_new(struct agt_session *s, uint64_t id, struct agt_lane **out)
{
  struct agt_lane *l = calloc(1, sizeof(*l));

  if (!l)
    return -ENOMEM;
  if (lane_decoder_init(l) < 0) {
    free(l);
    return -ENOMEM;
  }
  agt_session_get(s);
  l->sess = s;
  l->id = id;
  /* Its mark: a waiter may have made it already (the lane opened late). */
  pthread_mutex_lock(&s->mu);
  l->mark = agt_hmap_get(&s->events, tr_lane_mark(id));
  if (!l->mark)
    l->mark = event_new(s, tr_lane_mark(id));
  pthread_mutex_unlock(&s->mu);
  if (!l->mark)
    agt_warn("lane %llu: out of memory for its mark; lanes waiting for it "
             "go on when it ends", (unsigned long long)id);
  atomic_init(&l->refs, 1);
  l->note.kind = AGT_NOTE_LANE;
  pthread_mutex_init(&l->mu, NULL);
  pthread_cond_init(&l->space, NULL);
  l->in_tail = &l->in_head;
  l->out_tail = &l->out_head;
  *out = l;
  return 0;
}

void agt_lane_get(struct agt_lane *l)
{
  atomic_fetch_add(&l->refs, 1);
}

static void free_recs(struct agt_lane *l, struct agt_rec *r)
{
  struct agt_rec *next;

  for (; r; r = next) {
    next = r->next;
    agt_rec_free(l, r);
  }
}

static void free_outs(struct agt_out *o)
{
  struct agt_out *next;

  for (; o; o = next) {
    next = o->next;
    agt_out_free(o);
  }
}

void agt_lane_put(struct agt_lane *l)
{
  if (atomic_fetch_sub(&l->refs, 1) != 1)
    return;
  /* Records first: their pins must go before the session's context. */
  free_recs(l, l->in_head);
  free_outs(l->out_head);
  tr_decoder_release(&l->dec);
  agt_rec_free(l, l->cur);
  if (l->mark)
    mark_end(l);
  pthread_cond_destroy(&l->space);
  pthread_mutex_destroy(&l->mu);
  agt_session_put(l->sess);
  free(l);
}

void agt_lane_push_in(struct agt_lane *l, struct agt_rec *r)
{
  r->next = NULL;
  pthread_mutex_lock(&l->mu);
  if (l->aborted) {
    pthread_mutex_unlock(&l->mu);
    agt_rec_free(l, r);
    return;
  }
  *l->in_tail = r;
  l->in_tail = &r->next;
  l->in_bytes += r->wire_len;
  pthread_mutex_unlock(&l->mu);
}

void agt_lane_end_in(struct agt_lane *l)
{
  pthread_mutex_lock(&l->mu);
  l->in_eof = true;
  pthread_mutex_unlock(&l->mu);
}

/* An aborted lane stops waiting: its waiter (and the reference it holds)
   goes, so the lane and its session can be freed. */
static void unwait(struct agt_lane *l)
{
  struct agt_session *s = l->sess;
  struct agt_waiter *gone = NULL;
  struct agt_event *e;

  pthread_mutex_lock(&s->mu);
  if (l->wait_ready) {
    gone = unpark_locked(l, &s->ready_waiters);
    l->wait_ready = false;
  } else if (l->wait_event && (e = agt_hmap_get(&s->events, l->wait_event))) {
    gone = unpark_locked(l, &e->waiters);
    if (gone && e->mark)
      atomic_fetch_sub(&e->mark_waiters, 1);
  }
  l->wait_event = 0;
  pthread_mutex_unlock(&s->mu);
  if (gone) {
    agt_lane_put(l); /* not the last: the caller holds one */
    free(gone);
  }
}

void agt_lane_abort(struct agt_lane *l)
{
  struct agt_rec *in;
  struct agt_out *out;

  pthread_mutex_lock(&l->mu);
  l->aborted = true;
  in = l->in_head;
  out = l->out_head;
  l->in_head = NULL;
  l->in_tail = &l->in_head;
  l->in_bytes = 0;
  l->out_head = NULL;
  l->out_tail = &l->out_head;
  l->out_bytes = 0;
  pthread_cond_broadcast(&l->space);
  pthread_mutex_unlock(&l->mu);
  free_recs(l, in);
  free_outs(out);
  unwait(l); /* after `aborted`: see agt_event_wait_ready */
}

bool agt_lane_aborted(struct agt_lane *l)
{
  bool a;

  pthread_mutex_lock(&l->mu);
  a = l->aborted;
  pthread_mutex_unlock(&l->mu);
  return a;
}

struct agt_out *agt_out_new(uint32_t payload_len)
{
  struct agt_out *o = malloc(sizeof(*o) + TR_HDR_SIZE + payload_len);

  if (!o)
    return NULL;
  o->next = NULL;
  o->len = TR_HDR_SIZE + payload_len;
  o->off = 0;
  o->ext = NULL;
  o->release = NULL;
  o->release_arg = NULL;
  return o;
}

void agt_out_free(struct agt_out *o)
{
  if (!o)
    return;
  if (o->release)
    o->release(o->release_arg);
  free(o);
}

struct agt_out *agt_out_new_ref(const void *payload, uint32_t payload_len)
{
  struct agt_out *o = agt_out_new(0);

  if (!o)
    return NULL;
  o->len = TR_HDR_SIZE + payload_len;
  o->ext = payload;
  return o;
}

/* The contiguous bytes of o from offset off on: *n of them at the result. */
static const uint8_t *out_seg(const struct agt_out *o, uint32_t off,
                              size_t *n)
{
  if (!o->ext || off >= TR_HDR_SIZE) {
    *n = o->len - off;
    return o->ext ? o->ext + (off - TR_HDR_SIZE) : o->data + off;
  }
  *n = TR_HDR_SIZE - off;
  return o->data + off;
}

void agt_lane_notify(struct agt_lane *l)
{
  /* The reference travels with the note; take it before posting so the
     network thread cannot drop it first. */
  agt_lane_get(l);
  if (!agt_inbox_post(l->sess->inbox, &l->note))
    agt_lane_put(l);
}

int agt_lane_push_out(struct agt_lane *l, struct agt_out *o,
                      const struct tr_hdr *h)
{
  bool first;

  tr_hdr_pack(h, o->data);
  pthread_mutex_lock(&l->mu);
  while (!l->aborted && l->out_bytes >= AGT_LANE_OUT_MAX) {
    l->space_waiters++;
    pthread_cond_wait(&l->space, &l->mu);
    l->space_waiters--;
  }
  if (l->aborted) {
    pthread_mutex_unlock(&l->mu);
    agt_out_free(o);
    return -ECANCELED;
  }
  first = l->out_head == NULL;
  *l->out_tail = o;
  l->out_tail = &o->next;
  l->out_bytes += o->len;
  pthread_mutex_unlock(&l->mu);
  /* A non-empty queue was announced already and is still being drained. */
  if (first)
    agt_lane_notify(l);
  return 0;
}

void agt_lane_wait_sent(struct agt_lane *l)
{
  pthread_mutex_lock(&l->mu);
  while (!l->aborted && l->out_bytes) {
    l->drain_waiters++;
    pthread_cond_wait(&l->space, &l->mu);
    l->drain_waiters--;
  }
  pthread_mutex_unlock(&l->mu);
}

size_t agt_lane_peek_out(struct agt_lane *l, size_t len, unsigned max_runs,
                         bool *eof)
{
  size_t n = 0;
  unsigned runs = 0;

  pthread_mutex_lock(&l->mu);
  for (struct agt_out *o = l->out_head; o && n < len && runs < max_runs;
       o = o->next) {
    uint32_t off = o->off;

    while (off < o->len && n < len && runs < max_runs) {
      size_t seg;

      (void)out_seg(o, off, &seg);
      if (seg > len - n)
        seg = len - n;
      n += seg;
      off += (uint32_t)seg;
      runs++;
    }
  }
  *eof = l->out_eof && n == l->out_bytes;
  pthread_mutex_unlock(&l->mu);
  return n;
}

/*
 * Take n sent bytes off the front of the queue (lock held).  Returns the
 * runs that were sent completely, for the caller to free unlocked.
 */
static struct agt_out *out_drop_locked(struct agt_lane *l, size_t n)
{
  struct agt_out *done = NULL, **done_tail = &done;
  bool was_full = l->out_bytes >= AGT_LANE_OUT_MAX;

  l->out_bytes -= n;
  while (n) {
    struct agt_out *o = l->out_head;
    size_t take = o->len - o->off;

    if (take > n)
      take = n;
    o->off += (uint32_t)take;
    n -= take;
    if (o->off == o->len) {
      if (tr_trace_on) {
        struct tr_hdr h;

        tr_hdr_unpack(o->data, &h);
        if (!(h.flags & TR_F_MORE))
          tr_trace(TR_HOP_AGT_SENT, (uint32_t)l->id, h.opcode,
                   h.request_id);
      }
      l->out_head = o->next;
      if (!l->out_head)
        l->out_tail = &l->out_head;
      o->next = NULL;
      *done_tail = o;
      done_tail = &o->next;
    }
  }
  if ((was_full && l->out_bytes < AGT_LANE_OUT_MAX && l->space_waiters) ||
      (!l->out_bytes && l->drain_waiters))
    pthread_cond_broadcast(&l->space);
  return done;
}

int agt_lane_send_out(struct agt_lane *l, size_t len, struct iovec *iov,
                      int first, int cap, agt_out_emit_fn *emit, void *arg)
{
  struct agt_out *done = NULL;
  size_t n = 0;
  int k = first, rc;

  /*
   * The lock is held across emit's write: an execution thread may abort
   * the lane (agent_ops.c) and free the runs iov points into.  The write is
   * non-blocking and costs about what the copy it replaces did.
   */
  pthread_mutex_lock(&l->mu);
  for (struct agt_out *o = l->out_head; o && n < len; o = o->next) {
    uint32_t off = o->off;

    while (off < o->len && n < len) {
      size_t take;
      const uint8_t *p = out_seg(o, off, &take);

      if (k == cap) {
        rc = -EOVERFLOW;
        goto out_unlock;
      }
      if (take > len - n)
        take = len - n;
      iov[k].iov_base = (void *)p;
      iov[k].iov_len = take;
      k++;
      n += take;
      off += (uint32_t)take;
    }
  }
  if (n < len) {
    rc = -ECANCELED;
    goto out_unlock;
  }
  rc = emit(arg, iov, k);
  if (rc == 0)
    done = out_drop_locked(l, len);
out_unlock:
  pthread_mutex_unlock(&l->mu);
  free_outs(done);
  return rc;
}

/* ---- event waits ---------------------------------------------------------- */

/* A new entry of s->events (s->mu held): an event, or a lane mark when h
   has TR_LANE_MARK_BIT.  NULL without memory. */
static struct agt_event *event_new(struct agt_session *s, uint64_t h)
{
  struct agt_event *e = calloc(1, sizeof(*e));

  if (!e)
    return NULL;
  e->mark = (h & TR_LANE_MARK_BIT) != 0;
  atomic_init(&e->mark_done, 0);
  atomic_init(&e->mark_waiters, 0);
  if (agt_hmap_put(&s->events, h, e) < 0) {
    free(e);
    return NULL;
  }
  return e;
}

bool agt_event_reached(const struct agt_event *e, uint64_t gen)
{
  if (e->mark)
    return e->mark_ended || atomic_load(&e->mark_done) >= gen;
  return e->done_gen >= gen;
}

void agt_lane_mark_done(struct agt_lane *l, uint64_t rid)
{
  struct agt_event *m = l->mark;
  struct agt_session *s = l->sess;
  struct agt_waiter *woken;

  if (!m)
    return;
  atomic_store(&m->mark_done, rid);
  if (!atomic_load(&m->mark_waiters))
    return; /* the common case: nobody waits, no lock */
  pthread_mutex_lock(&s->mu);
  woken = agt_event_take_waiters(m, rid);
  pthread_mutex_unlock(&s->mu);
  agt_waiters_wake(woken);
}

/* l is being freed: its mark is reached for good (s->mu not held). */
static void mark_end(struct agt_lane *l)
{
  struct agt_session *s = l->sess;
  struct agt_waiter *woken;

  pthread_mutex_lock(&s->mu);
  l->mark->mark_ended = true;
  woken = agt_event_take_waiters(l->mark, UINT64_MAX);
  pthread_mutex_unlock(&s->mu);
  agt_waiters_wake(woken);
}

bool agt_event_wait_ready(struct agt_lane *l, uint64_t h, uint64_t gen)
{
  struct agt_session *s = l->sess;
  struct agt_event *e;
  struct agt_waiter *w;

  pthread_mutex_lock(&l->mu);
  if (l->released) { /* woken: by the record, or the event is gone */
    l->released = false;
    pthread_mutex_unlock(&l->mu);
    return true;
  }
  pthread_mutex_unlock(&l->mu);
  /* A lane never waits for its own mark: that would wait for itself. */
  if (gen == 0 || h == 0 || h == tr_lane_mark(l->id))
    return true;
  pthread_mutex_lock(&s->mu);
  e = agt_hmap_get(&s->events, h);
  if (e && agt_event_reached(e, gen)) {
    pthread_mutex_unlock(&s->mu);
    return true;
  }
  w = calloc(1, sizeof(*w));
  /* Not recorded yet, or the mark of a lane not opened yet. */
  if (!e && w && !(e = event_new(s, h))) {
    free(w);
    w = NULL;
  }
  if (!w) {
    /* Without memory to wait, do not wait: the order is the program's
       risk then, never a hang. */
    pthread_mutex_unlock(&s->mu);
    agt_warn("lane %llu: out of memory for an event wait; not waiting",
             (unsigned long long)l->id);
    return true;
  }
  if (e->mark) {
    /* Counted before mark_done is read again (see struct agt_event). */
    atomic_fetch_add(&e->mark_waiters, 1);
    if (agt_event_reached(e, gen)) {
      atomic_fetch_sub(&e->mark_waiters, 1);
      pthread_mutex_unlock(&s->mu);
      free(w);
      return true;
    }
  }
  w->gen = gen;
  if (!park_locked(l, w, &e->waiters)) {
    if (e->mark)
      atomic_fetch_sub(&e->mark_waiters, 1);
    pthread_mutex_unlock(&s->mu);
    free(w);
    return true; /* the caller finds it aborted */
  }
  l->wait_event = h;
  pthread_mutex_unlock(&s->mu);
  return false;
}

struct agt_waiter *agt_event_take_waiters(struct agt_event *e, uint64_t gen)
{
  struct agt_waiter *out = NULL, **pp = &e->waiters;

  while (*pp) {
    struct agt_waiter *w = *pp;

    if (gen == UINT64_MAX || w->gen <= gen) {
      *pp = w->next;
      w->next = out;
      out = w;
      w->lane->wait_event = 0; /* under s->mu, as it was set */
      if (e->mark)
        atomic_fetch_sub(&e->mark_waiters, 1);
    } else {
      pp = &w->next;
    }
  }
  return out;
}

/* Unpark the lanes of w and free it; released: they waited at an
   EVENT_WAIT, which is now done. */
static void wake(struct agt_waiter *w, bool released)
{
  while (w) {
    struct agt_waiter *next = w->next;
    struct agt_lane *l = w->lane;

    pthread_mutex_lock(&l->mu);
    l->parked = false;
    if (released)
      l->released = true;
    pthread_mutex_unlock(&l->mu);
    if (l->exec)
      agt_exec_submit(l->exec, l);
    agt_lane_put(l);
    free(w);
    w = next;
  }
}

void agt_waiters_wake(struct agt_waiter *w)
{
  wake(w, true);
}
