/*
 * brk_lane.c: lanes, the shared-memory rings of one client thread, and
 * their /v1/lane streams to the machines.
 *
 * Requests.  When the request doorbell rings, the lane is drained: each
 * record is copied out of the ring exactly once (tr_ring_peek copies the
 * header; the payload is copied into the stream's queue), routed by its
 * device ordinal to a machine, rewritten for the wire (device 0, a
 * TR_F_SHMREF reference replaced by the bytes it names, which a bulk chunk
 * contributes by reference, see brk_upl.c) and appended to the body of the
 * lane's stream to that machine.  Streams and the client's
 * session on a machine are opened on first use.  Draining stops while the
 * target stream has BRK_LANE_QUEUE_MAX bytes queued (or too many requests
 * unanswered), so the broker holds a bounded amount per lane whatever the
 * client sends; the client then waits for ring space, which is exactly
 * the back-pressure it should feel.
 *
 * Replies.  Each stream's response body goes through a tr_decoder; each
 * complete reply record is put in the reply ring (payload inline up to
 * TR_LANE_INLINE_MAX/2) or in the download area with a reference record.
 * If the ring or the area is full, the record and what arrives after it
 * are held, unconsumed, so the agent's window for that stream closes
 * (BRK_STREAM_WINDOW, which bounds what is held); only past
 * BRK_LANE_PEND_MAX held bytes, which an agent keeping to the window never
 * sends, is the whole HTTP/2 connection paused (see ls_hold).  The shim's doorbell (it rings req_efd when it frees
 * space we wait for) resumes delivery.
 *
 * Every WANT_REPLY request forwarded is remembered until its final reply
 * arrives, so that a broken session can answer each of them with
 * TR_ST_MACHINE_LOST: no shim ever waits for a reply that cannot come.
 *
 * Express lanes.  A machine has two connections (brk_machine.c, the main
 * one; brk_express.c, the express one, unless TREMOTE_EXPRESS=0): on one
 * TCP connection a lane's small reply would wait behind every byte of
 * another lane's copy already in the socket buffers.  A lane's stream
 * opens on the express connection unless its first record is bulk
 * (rec_is_bulk: it carries or asks for a bulk frame's worth of bytes, or
 * is a graph launch, which may replay copies), and
 * moves to the main connection before its first bulk record: a lane's
 * records must stay in order, so a lane lives on one stream at a time (a
 * module upload counts: a program's first lane moves with its first
 * module, unless the agent has it cached).  A lane that copies once
 * usually copies again, so it stays there while it does; but one whose
 * last bulk record is BRK_LANE_RETURN_MS old, which has made
 * BRK_LANE_RETURN_CALLS small calls since and has no reply outstanding,
 * moves back before its next small record (ls_wants_return): a program
 * that loaded its data at the start and then makes only small calls gets
 * the express connection back, for the price of one fence.  The move:
 * a NOP with WANT_REPLY (the fence, with
 * the id of the lane's last record, so the lane's mark stays) goes on the
 * old stream and the lane waits; its reply proves the agent has received
 * and answered everything before it.  Then the lane's stream opens on the
 * other connection with "tremote-lane-move: 1" (the agent hands the lane
 * over when it reads those headers, PROTOCOL.md §3) and its records
 * follow at once; the old stream is ended once the agent has answered the
 * new one or ended the old.  The fence's reply may carry the lane's
 * deferred error or the OUTPUT flag (the agent's reply rules); both go on
 * to the next final reply of the lane's new stream (carry_*).  If the
 * session breaks meanwhile, the fence is not answered to the program,
 * which never asked for it.
 *
 * Trust: the segment is the client's to scribble on.  Everything read from
 * it is read once into private memory before it is checked, and any
 * violation drops the client (brk_client_drop, which is deferred, so the
 * code below only has to stop touching the lane when c->dead is set).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "brk.h"
#include "brk_log.h"
#include "brk_upl.h"
#include "trace.h"

#define INLINE_LIMIT (TR_LANE_INLINE_MAX / 2)
#define DRAIN_BYTES (8u << 20) /* bytes per drain round before yielding */

static void lane_drain(struct brk_lane *ln);
static void lane_finish_close(struct brk_lane *ln);

/* ---- reply ring production ------------------------------------------------ */

/*
 * Room in a ring or area we produce into (the reply ring, the download
 * area).  When there is none, announce that we wait (space_waiting, see
 * tr_ring_arm_space) and look again while the head keeps moving, so a
 * release that raced with us is never missed: the shim checks the flag
 * after releasing and rings req_efd.
 */
static uint8_t *rep_reserve(struct brk_lane *ln, uint32_t len)
{
  struct tr_ring *r = &ln->l.rep;
  uint8_t *p;

  for (;;) {
    p = tr_ring_reserve(r, len);
    if (p)
      return p;
    if (r->err) {
      brk_client_drop(ln->c, "lane %u: reply ring: %s", ln->id, r->err);
      return NULL;
    }
    if (tr_ring_arm_space(r))
      break;
  }
  ln->reply_waiting = 1;
  return NULL;
}

static uint8_t *down_reserve(struct brk_lane *ln, uint64_t len,
                             struct tr_shmref *ref)
{
  struct tr_ring *a = &ln->l.down;
  uint8_t *p;

  for (;;) {
    ref->area = TR_AREA_DOWN;
    p = tr_area_reserve(a, len, ref);
    if (p)
      return p;
    if (a->err) {
      brk_client_drop(ln->c, "lane %u: download area: %s", ln->id, a->err);
      return NULL;
    }
    if (tr_ring_arm_space(a))
      break;
  }
  ln->reply_waiting = 1;
  return NULL;
}

static void rep_publish(struct brk_lane *ln, uint32_t len)
{
  tr_ring_commit(&ln->l.rep, len);
  (void)tr_ring_kick(&ln->l.rep, ln->l.rep_efd);
}

/* A payload-less reply made here (bad device, machine lost...). */
static int put_local(struct brk_lane *ln, const struct tr_hdr *h)
{
  uint8_t *p = rep_reserve(ln, 0);

  if (!p)
    return 0;
  tr_hdr_pack(h, p);
  rep_publish(ln, 0);
  return 1;
}

static void local_reply(struct brk_lane *ln, uint16_t opcode, uint64_t id,
                        uint16_t device, uint32_t status)
{
  struct tr_hdr h;

  tr_hdr_init(&h, opcode, TR_F_REPLY, id, 0);
  h.device = device;
  h.status = status;
  if (ln->nlocal == 0 && put_local(ln, &h))
    return;
  if (ln->nlocal == ln->local_cap) {
    unsigned cap = ln->local_cap ? ln->local_cap * 2 : 64;
    struct tr_hdr *q = malloc(cap * sizeof(*q));

    if (!q) {
      brk_client_drop(ln->c, "out of memory for replies");
      return;
    }
    for (unsigned i = 0; i < ln->nlocal; i++)
      q[i] = ln->local[(ln->local_head + i) % ln->local_cap];
    free(ln->local);
    ln->local = q;
    ln->local_cap = cap;
    ln->local_head = 0;
  }
  ln->local[(ln->local_head + ln->nlocal) % ln->local_cap] = h;
  ln->nlocal++;
}

static void flush_local(struct brk_lane *ln)
{
  while (ln->nlocal) {
    if (!put_local(ln, &ln->local[ln->local_head]))
      return;
    ln->local_head = (ln->local_head + 1) % ln->local_cap;
    ln->nlocal--;
  }
}

/* ---- outstanding requests ----------------------------------------------------- */

/* Remember a WANT_REPLY request; takes over the reference dest holds (if
   any) even when it fails. */
static int out_push(struct brk_lstream *ls, uint64_t id, uint16_t opcode,
                    struct brk_region *dest, uint8_t *dest_p,
                    uint64_t dest_len)
{
  if (ls->out_n == ls->out_cap) {
    unsigned cap = ls->out_cap ? ls->out_cap * 2 : 16;
    struct brk_outreq *q = malloc(cap * sizeof(*q));

    if (!q) {
      if (dest)
        brk_region_put(dest);
      return -ENOMEM;
    }
    for (unsigned i = 0; i < ls->out_n; i++)
      q[i] = ls->out[(ls->out_head + i) % ls->out_cap];
    free(ls->out);
    ls->out = q;
    ls->out_cap = cap;
    ls->out_head = 0;
  }
  ls->out[(ls->out_head + ls->out_n) % ls->out_cap] =
      (struct brk_outreq){id, opcode, dest, dest_p, dest_len, 0, 0};
  ls->out_n++;
  return 0;
}

/* The outstanding request id, or NULL. */
static struct brk_outreq *out_find(struct brk_lstream *ls, uint64_t id)
{
  for (unsigned i = 0; i < ls->out_n; i++) {
    struct brk_outreq *o = &ls->out[(ls->out_head + i) % ls->out_cap];

    if (o->id == id)
      return o;
  }
  return NULL;
}

/* Forget every outstanding request (their regions are let go). */
static void out_clear(struct brk_lstream *ls)
{
  for (unsigned i = 0; i < ls->out_n; i++) {
    struct brk_outreq *o = &ls->out[(ls->out_head + i) % ls->out_cap];

    if (o->dest)
      brk_region_put(o->dest);
  }
  ls->out_n = 0;
}

/* Forget request id (its final reply arrived).  Replies come in order on
   a lane, so it is almost always the oldest. */
static void out_remove(struct brk_lstream *ls, uint64_t id)
{
  for (unsigned i = 0; i < ls->out_n; i++) {
    unsigned k = (ls->out_head + i) % ls->out_cap;

    if (ls->out[k].id != id)
      continue;
    if (ls->out[k].dest)
      brk_region_put(ls->out[k].dest);
    /* Close the gap by moving the older entries up one. */
    for (unsigned j = i; j > 0; j--) {
      unsigned to = (ls->out_head + j) % ls->out_cap;
      unsigned from = (ls->out_head + j - 1) % ls->out_cap;
      ls->out[to] = ls->out[from];
    }
    ls->out_head = (ls->out_head + 1) % ls->out_cap;
    ls->out_n--;
    return;
  }
}

/* ---- lane streams ---------------------------------------------------------------- */

static void ls_free(struct brk_lstream *ls)
{
  struct brk_msess *ms = ls->ms;
  struct brk_lane *ln = ls->lane;

  if (ms) {
    if (ls->prev)
      ls->prev->next = ls->next;
    else
      ms->lstreams = ls->next;
    if (ls->next)
      ls->next->prev = ls->prev;
  }
  if (ln) {
    ln->ls[ms->m->index] = NULL;
    if (ln->blocked_on == ls) {
      ln->blocked_on = NULL;
      brk_loop_defer(ln->c->b->loop, &ln->drain_task);
    }
  }
  if (ls->moved_to)
    ls->moved_to->moved_from = NULL;
  if (ls->moved_from)
    ls->moved_from->moved_to = NULL;
  tr_decoder_release(&ls->dec);
  out_clear(ls);
  free(ls->spill);
  free(ls->pend);
  free(ls->out);
  free(ls);
}

/* Give back the flow-control credit of bytes we will never deliver, and
   let the connection read again if we were holding it. */
static void ls_unpause(struct brk_lstream *ls)
{
  if (ls->st && ls->pend_len)
    brk_h2_stream_consume(ls->st, ls->pend_len);
  ls->pend_len = 0;
  ls->have_rec = 0;
  ls->blocked = 0;
  if (ls->paused_conn) {
    ls->paused_conn = 0;
    if (ls->conn)
      brk_h2_resume(ls->conn);
  }
}

void brk_lstream_orphan(struct brk_lstream *ls, int reset)
{
  /* Reset, the agent may never see the move: end the old stream too.
     Ended, it will (the headers went first), and ending the old stream
     here could reach it first, over the other connection: the agent
     would refuse the move (409, "it is ending") and drop what the new
     stream carries.  The agent ends the old one when it moves the lane. */
  if (ls->moved_from && reset)
    brk_lstream_orphan(ls->moved_from, reset);
  ls_unpause(ls);
  if (ls->st) {
    if (reset)
      brk_h2_stream_reset(ls->st);
    else
      brk_h2_stream_end(ls->st);
    brk_h2_stream_detach(ls->st);
    ls->st = NULL;
  }
  ls_free(ls);
}

void brk_lstream_fail(struct brk_lstream *ls)
{
  struct brk_lane *ln = ls->lane;

  if (ln && !ln->c->dead) {
    for (unsigned i = 0; i < ls->out_n; i++) {
      struct brk_outreq *o = &ls->out[(ls->out_head + i) % ls->out_cap];

      if (!o->fence)
        local_reply(ln, o->opcode, o->id, ls->ordinal, TR_ST_MACHINE_LOST);
    }
    if (ls->out_n)
      brk_dbg("client pid %d lane %u: answered %u outstanding request(s) "
              "with MACHINE_LOST", (int)ln->c->pid, ln->id, ls->out_n);
  }
  out_clear(ls);
  brk_lstream_orphan(ls, 1);
}

/*
 * Put the decoded record ls->rec_* into the lane.  Returns 1 when placed,
 * 0 when the ring or the area is full (try again after the doorbell), or
 * -EPROTO when the agent sent something no reply may be.
 */
static int ls_place(struct brk_lstream *ls)
{
  struct brk_lane *ln = ls->lane;
  struct tr_hdr h = ls->rec_h;
  uint32_t len = h.payload_len, carry_st = 0;
  uint16_t carry_fl = 0;
  uint8_t *p;

  if (!(h.flags & TR_F_REPLY) ||
      (h.flags & (TR_F_SHMREF | TR_F_DEST | TR_F_PLACED)))
    return -EPROTO;
  if (ls->fencing && !ls->fence_done && ls->out_n == 1 &&
      h.opcode == TR_OP_NOP && !(h.flags & TR_F_MORE)) {
    /* The fence's reply (the lane sent nothing after it): ours, not the
       program's, but what it tells is the lane's.  Added to a carry an
       earlier move left undelivered (the lane made no call with a reply
       since): the first error stays the one reported, as the agent's
       deferred error does. */
    if (!ls->carry_status)
      ls->carry_status = h.status;
    ls->carry_flags |= h.flags & TR_F_OUTPUT;
    out_remove(ls, h.request_id);
    ls->fence_done = 1;
    brk_loop_defer(ln->c->b->loop, &ln->drain_task);
    return 1;
  }
  if (!(h.flags & TR_F_MORE)) {
    /* The agent puts a deferred error on a reply whose call worked, but
       never on OUTPUT's; so does a carry, with the same flag. */
    if (!h.status && h.opcode != TR_OP_OUTPUT &&
        (h.status = carry_st = ls->carry_status) != 0)
      h.flags |= TR_F_DEFERRED;
    h.flags |= carry_fl = ls->carry_flags;
  }
  if (!(ln->c->hello_caps & TR_CAP_DEFERRED))
    h.flags &= (uint16_t)~TR_F_DEFERRED; /* an older shim's reading */
  if (!(h.flags & TR_F_MORE) && !ls->rec_traced) {
    tr_trace(TR_HOP_BRK_REP, ln->id, h.opcode, h.request_id);
    ls->rec_traced = 1;
  }
  h.device = ls->ordinal;
  if (ls->rec_placed) {
    /* The bytes are in the program's region already: say how many. */
    p = rep_reserve(ln, 8);
    if (!p)
      return 0;
    h.flags |= TR_F_PLACED;
    h.payload_len = 8;
    tr_hdr_pack(&h, p);
    tr_put_u64(p + TR_HDR_SIZE, len);
    rep_publish(ln, 8);
  } else if (len <= INLINE_LIMIT) {
    p = rep_reserve(ln, len);
    if (!p)
      return 0;
    tr_hdr_pack(&h, p);
    memcpy(p + TR_HDR_SIZE, ls->rec_p, len);
    rep_publish(ln, len);
  } else {
    if (!ls->rec_in_area) {
      p = down_reserve(ln, len, &ls->rec_ref);
      if (!p)
        return 0;
      memcpy(p, ls->rec_p, len);
      ls->rec_in_area = 1;
    }
    p = rep_reserve(ln, TR_SHMREF_SIZE);
    if (!p)
      return 0;
    h.flags |= TR_F_SHMREF;
    h.payload_len = TR_SHMREF_SIZE;
    tr_hdr_pack(&h, p);
    tr_shmref_pack(&ls->rec_ref, p + TR_HDR_SIZE);
    rep_publish(ln, TR_SHMREF_SIZE);
    ls->rec_in_area = 0;
  }
  if (!(h.flags & TR_F_MORE)) {
    if (carry_st)
      ls->carry_status = 0;
    if (carry_fl)
      ls->carry_flags = 0;
    tr_trace(TR_HOP_BRK_RING, ln->id, h.opcode, h.request_id);
    if (h.opcode == TR_OP_MODULE_LOAD) { /* the module cache, seen here */
      if (h.status == 0 || (h.flags & TR_F_DEFERRED))
        ls->ms->c->n.module_loads++, ls->ms->m->n.module_loads++;
      else if (h.status == TR_ST_NEED_MODULE)
        ls->ms->c->n.module_misses++, ls->ms->m->n.module_misses++;
    }
    out_remove(ls, h.request_id);
    if (ln->blocked_on == ls)
      brk_loop_defer(ln->c->b->loop, &ln->drain_task);
  }
  return 1;
}

/*
 * Where the decoder puts a reply's payload.  A large one (a device-to-host
 * chunk) goes straight into the download area when there is room, so its
 * bytes are copied once in the broker, from the socket buffer to shared
 * memory; otherwise into the stream's spill buffer, from which ls_place()
 * copies it once there is room.  Space reserved here for a record that
 * never completes is released by the shim along with the next chunk.
 */
static uint8_t *ls_alloc(void *arg, const struct tr_hdr *h)
{
  struct brk_lstream *ls = arg;
  uint32_t len = h->payload_len;
  struct brk_outreq *o;
  uint8_t *p;

  ls->rec_in_area = 0;
  ls->rec_placed = 0;
  ls->rec_traced = 0;
  /* A successful reply to a TR_F_DEST request: into the region, at the
     next bytes of its range (what does not fit there is an agent's error,
     left to the spill buffer and reported by the shim's length check). */
  if (len && (h->status == 0 || (h->flags & TR_F_DEFERRED)) &&
      (h->flags & TR_F_REPLY) &&
      !(h->flags & (TR_F_SHMREF | TR_F_DEST | TR_F_PLACED)) &&
      (o = out_find(ls, h->request_id)) && o->dest &&
      len <= o->dest_len - o->dest_done) {
    p = o->dest_p + o->dest_done;
    o->dest_done += len;
    ls->rec_placed = 1;
    ls->ms->c->region_bytes_from_agent += len;
    return p;
  }
  if (len > INLINE_LIMIT && ls->lane && (h->flags & TR_F_REPLY) &&
      !(h->flags & TR_F_SHMREF)) {
    ls->rec_ref.area = TR_AREA_DOWN;
    p = tr_area_reserve(&ls->lane->l.down, len, &ls->rec_ref);
    if (p) {
      ls->rec_in_area = 1;
      return p;
    }
  }
  if (len > ls->spill_cap || !ls->spill) {
    size_t cap = len > 4096 ? len : 4096;

    p = realloc(ls->spill, cap);
    if (!p)
      return NULL;
    ls->spill = p;
    ls->spill_cap = cap;
  }
  return ls->spill;
}

/*
 * Decode and place as much of data[0..len) as fits.  *taken gets the
 * bytes given to the decoder.  Returns 0 when all was taken and placed,
 * 1 when blocked on reply space, or -EPROTO (ls->dec.why or a reply
 * without REPLY).
 */
static int ls_feed(struct brk_lstream *ls, const uint8_t *data, size_t len,
                   size_t *taken)
{
  struct tr_hdr h;
  const uint8_t *p;
  int complete, rc;
  long n;

  *taken = 0;
  for (;;) {
    if (ls->have_rec) {
      rc = ls_place(ls);
      if (rc < 0)
        return rc;
      if (rc == 0)
        return 1;
      ls->have_rec = 0;
    }
    if (*taken == len)
      return 0;
    n = tr_decoder_feed(&ls->dec, data + *taken, len - *taken, &complete, &h,
                        &p);
    if (n < 0)
      return -EPROTO;
    *taken += (size_t)n;
    if (complete) {
      /* rec_in_area was set by ls_alloc(). */
      ls->have_rec = 1;
      ls->rec_h = h;
      ls->rec_p = p;
    }
  }
}

/* Hold response bytes the lane cannot take yet (not yet consumed for
   flow control). */
static int ls_keep(struct brk_lstream *ls, const uint8_t *data, size_t len)
{
  if (!len)
    return 0;
  /* No room behind the held bytes: first slide them to the front, then
     grow if that is still not enough. */
  if (ls->pend_off && ls->pend_off + ls->pend_len + len > ls->pend_cap) {
    memmove(ls->pend, ls->pend + ls->pend_off, ls->pend_len);
    ls->pend_off = 0;
  }
  if (ls->pend_len + len > ls->pend_cap) {
    size_t cap = ls->pend_cap ? ls->pend_cap : 16384;
    uint8_t *p;

    while (cap < ls->pend_len + len)
      cap *= 2;
    p = realloc(ls->pend, cap);
    if (!p)
      return -ENOMEM;
    ls->pend = p;
    ls->pend_cap = cap;
  }
  memcpy(ls->pend + ls->pend_off + ls->pend_len, data, len);
  ls->pend_len += len;
  return 0;
}

static void ls_bad_reply(struct brk_lstream *ls)
{
  struct brk_msess *ms = ls->ms;
  char why[160];

  snprintf(why, sizeof(why), "malformed reply stream from the agent: %s",
           ls->dec.why ? ls->dec.why : "reply record without REPLY flag");
  brk_warn("%s: %s", ms->m->name, why);
  brk_msess_broken(ms, why);
}

/*
 * A stream whose lane is full holds what arrives (unconsumed, so the
 * agent's window for this stream closes) up to BRK_LANE_PEND_MAX; only
 * beyond that does it pause the whole connection.  So a client that reads
 * its replies a little late costs the other clients of the machine
 * nothing, and one that does not read them at all costs them at most a
 * pause until it is dropped (BRK_STALL_MS).
 */
static int ls_hold(struct brk_lstream *ls, const uint8_t *data, size_t len)
{
  if (ls_keep(ls, data, len) < 0) {
    brk_client_drop(ls->ms->c, "out of memory holding replies");
    brk_h2_stream_consume(ls->st, len);
    return 0;
  }
  if (!ls->blocked) {
    ls->blocked = 1;
    ls->blocked_since_ms = brk_now_ms();
  }
  if (ls->pend_len <= BRK_LANE_PEND_MAX)
    return 0;
  if (!ls->paused_conn) {
    ls->paused_conn = 1;
    ls->paused_since_ms = brk_now_ms();
    brk_dbg("client pid %d lane %u: %zu reply bytes waiting; pausing %s",
            (int)ls->ms->c->pid, ls->lane ? ls->lane->id : 0, ls->pend_len,
            ls->ms->m->name);
  }
  return BRK_H2_PAUSE;
}

static int ls_on_data(struct brk_h2_stream *st, void *user, const uint8_t *data,
                      size_t len)
{
  struct brk_lstream *ls = user;
  size_t taken;
  int rc;

  ls->ms->c->n.bytes_from_agent += len;
  ls->ms->m->n.bytes_from_agent += len;
  if (!ls->lane) { /* moved away: nothing more is due on it */
    brk_h2_stream_consume(st, len);
    return 0;
  }
  if (ls->blocked)
    return ls_hold(ls, data, len);
  rc = ls_feed(ls, data, len, &taken);
  if (taken)
    brk_h2_stream_consume(st, taken);
  if (rc < 0) {
    ls_bad_reply(ls);
    return 0;
  }
  if (rc == 0)
    return 0;
  return ls_hold(ls, data + taken, len - taken);
}

/* Retry a blocked stream after the shim released space. */
static void ls_retry(struct brk_lstream *ls)
{
  size_t taken = 0;
  int rc;

  rc = ls_feed(ls, ls->pend ? ls->pend + ls->pend_off : NULL, ls->pend_len,
               &taken);
  if (taken) {
    brk_h2_stream_consume(ls->st, taken);
    ls->pend_off += taken;
    ls->pend_len -= taken;
    if (!ls->pend_len)
      ls->pend_off = 0;
  }
  if (rc < 0) {
    ls_bad_reply(ls);
    return;
  }
  if (rc == 0)
    ls->blocked = 0;
  /* Let the connection run again once the backlog is well under the cap. */
  if (ls->paused_conn && ls->pend_len <= BRK_LANE_PEND_MAX / 2) {
    ls->paused_conn = 0;
    brk_h2_resume(ls->conn);
  }
}

static void ls_on_response(struct brk_h2_stream *st, void *user, int status)
{
  struct brk_lstream *ls = user;
  char why[96];

  if (status == 200) {
    if (ls->moved_from) /* the agent has the lane here now */
      brk_lstream_orphan(ls->moved_from, 0);
    return;
  }
  snprintf(why, sizeof(why), "the agent refused a lane stream (HTTP %d)",
           status);
  brk_warn("%s: client pid %d: %s", ls->ms->m->name, (int)ls->ms->c->pid, why);
  brk_msess_broken(ls->ms, why);
}

static void ls_on_end(struct brk_h2_stream *st, void *user)
{
  struct brk_lstream *ls = user;

  /* The agent took the lane over.  Only ls_move clears ls->lane, and
     moved_to is gone when the new stream went first (the lane closed
     right after the record that moved it: a thread that copies and
     exits), which does not make this end the agent's giving up. */
  if (ls->moved_to || !ls->lane) {
    brk_lstream_orphan(ls, 0);
    return;
  }
  /* We had not ended it: the agent gave up on this lane. */
  brk_msess_broken(ls->ms, "the agent ended a lane stream");
}

static void ls_on_writable(struct brk_h2_stream *st, void *user)
{
  struct brk_lstream *ls = user;

  if (ls->lane && ls->lane->blocked_on == ls)
    brk_loop_defer(ls->lane->c->b->loop, &ls->lane->drain_task);
}

static void ls_on_close(struct brk_h2_stream *st, void *user, uint32_t code)
{
  struct brk_lstream *ls = user;
  char why[96];

  ls->st = NULL;
  if (code == BRK_H2_ERR_LOST)
    snprintf(why, sizeof(why), "connection to the machine lost");
  else
    snprintf(why, sizeof(why), "lane stream closed (HTTP/2 error %u)", code);
  brk_msess_broken(ls->ms, why);
}

/* Where the decoder puts the next reply bytes (the download area, a
   region, the spill buffer), when they would go straight there. */
static uint8_t *ls_recv_room(struct brk_h2_stream *st, void *user,
                             size_t *room)
{
  struct brk_lstream *ls = user;

  (void)st;
  if (ls->blocked || ls->have_rec || !ls->lane || ls->lane->c->dead)
    return NULL;
  return tr_decoder_room(&ls->dec, room);
}

static const struct brk_h2_stream_cbs ls_cbs = {
    .on_response = ls_on_response,
    .on_data = ls_on_data,
    .recv_room = ls_recv_room,
    .on_end = ls_on_end,
    .on_writable = ls_on_writable,
    .on_close = ls_on_close,
};

/* Open the lane's stream to ms's machine on conn (move: taking the lane
   over from its stream on the other connection).  NULL without memory. */
static struct brk_lstream *ls_open(struct brk_lane *ln, struct brk_msess *ms,
                                   uint16_t ordinal, struct brk_h2 *conn,
                                   int move)
{
  struct brk_lstream *ls;
  struct brk_h2_hdr hdrs[4];
  char lane[16], prio[8];
  size_t nh = 2;

  ls = calloc(1, sizeof(*ls));
  if (!ls)
    return NULL;
  if (tr_decoder_init_alloc(&ls->dec, TR_PAYLOAD_MAX, ls_alloc, ls) < 0) {
    free(ls);
    return NULL;
  }
  ls->lane = ln;
  ls->ms = ms;
  ls->ordinal = ordinal;
  ls->conn = conn;
  ls->express = conn == ms->m->h2x;
  snprintf(lane, sizeof(lane), "%u", ln->id);
  hdrs[0] = (struct brk_h2_hdr){"tremote-session", ln->c->idhex};
  hdrs[1] = (struct brk_h2_hdr){"tremote-lane", lane};
  if (ln->priority) { /* the agent runs more urgent lanes first */
    snprintf(prio, sizeof(prio), "%d", ln->priority);
    hdrs[nh++] = (struct brk_h2_hdr){"tremote-priority", prio};
  }
  if (move)
    hdrs[nh++] = (struct brk_h2_hdr){"tremote-lane-move", "1"};
  ls->st = brk_h2_post(conn, "/v1/lane", hdrs, nh, &ls_cbs, ls);
  if (!ls->st) {
    tr_decoder_release(&ls->dec);
    free(ls);
    return NULL;
  }
  brk_h2_stream_set_lowat(ls->st, BRK_LANE_QUEUE_LOW);
  ls->next = ms->lstreams;
  if (ms->lstreams)
    ms->lstreams->prev = ls;
  ms->lstreams = ls;
  ln->ls[ms->m->index] = ls;
  if (ls->express)
    ln->c->n.express_lanes++, ms->m->n.express_lanes++;
  return ls;
}

/*
 * The lane's stream to machine m in *out, opened on first use, on the
 * express connection unless the record that opens it is bulk.  Returns 0;
 * 1 while the agent has not answered the session yet (the lane's headers
 * could overtake the session's on the other connection: the lane waits,
 * brk_lanes_kick drains it again); -1 when the session cannot be used
 * (answer TR_ST_MACHINE_LOST).
 */
static int ls_get(struct brk_lane *ln, unsigned m, uint16_t ordinal, int bulk,
                  struct brk_lstream **out)
{
  struct brk_msess *ms;
  struct brk_h2 *x;

  if ((*out = ln->ls[m]) != NULL)
    return 0;
  ms = brk_msess_get(ln->c, m);
  if (!ms)
    return -1;
  x = ms->m->h2x;
  if (bulk || !x || brk_h2_dead(x))
    x = ms->m->h2;
  else if (!ms->confirmed)
    return 1;
  *out = ls_open(ln, ms, ordinal, x, 0);
  return *out ? 0 : -1;
}

void brk_lanes_kick(struct brk_client *c)
{
  for (struct brk_lane *ln = c->lanes; ln; ln = ln->next)
    if (!ln->blocked_on)
      brk_loop_defer(c->b->loop, &ln->drain_task);
}

/* Whether record h moves bulk: a lane sends it on the main connection
   ("Express lanes").  The length a download asks for is read from the
   ring once, for this choice only. */
static int rec_is_bulk(const struct tr_hdr *h, const uint8_t *payload)
{
  if (h->opcode == TR_OP_GRAPH_LAUNCH || (h->flags & TR_F_SHMREF) ||
      h->payload_len >= TR_H2_SMALL_FRAME)
    return 1;
  return h->opcode == TR_OP_MEMCPY_D2H && h->payload_len >= 16 &&
         tr_get_u64(payload + 8) >= TR_H2_SMALL_FRAME;
}

/* Whether ls's lane should go back to the express connection before its
   next record, a small one: it has been on the main connection with no
   bulk record for BRK_LANE_RETURN_MS (or since it opened there without an
   express connection up) and has made BRK_LANE_RETURN_CALLS small calls
   since, so it is making calls, not just ending; and nothing of it is
   outstanding, so the fence waits behind nothing of its own. */
static int ls_wants_return(const struct brk_lstream *ls)
{
  struct brk_h2 *x = ls->ms->m->h2x;

  return !ls->express && !ls->fencing && ls->out_n == 0 &&
         ls->smalls >= BRK_LANE_RETURN_CALLS && x && !brk_h2_dead(x) &&
         ls->ms->confirmed &&
         brk_now_ms() - ls->bulk_ms >= BRK_LANE_RETURN_MS;
}

/* Start moving ls's lane to the machine's other connection: the fence.
   0, or -1 when it could not be queued (the session is broken then). */
static int ls_fence(struct brk_lstream *ls)
{
  uint8_t hdr[TR_HDR_SIZE];
  struct iovec iov = {hdr, TR_HDR_SIZE};
  struct tr_hdr w;

  tr_hdr_init(&w, TR_OP_NOP, TR_F_WANT_REPLY, ls->last_rid, 0);
  tr_hdr_pack(&w, hdr);
  if (brk_h2_stream_write(ls->st, &iov, 1) < 0 ||
      out_push(ls, ls->last_rid, TR_OP_NOP, NULL, NULL, 0) < 0) {
    brk_msess_broken(ls->ms, "cannot move a lane between connections");
    return -1;
  }
  ls->out[(ls->out_head + ls->out_n - 1) % ls->out_cap].fence = 1;
  ls->fencing = 1;
  return 0;
}

/* The fence came back: the lane goes on on the other connection (the
   main one, or the express one for a return).  0, or -1 when the session
   broke. */
static int ls_move(struct brk_lane *ln, struct brk_lstream *old)
{
  struct brk_msess *ms = old->ms;
  struct brk_h2 *to = old->express ? ms->m->h2 : ms->m->h2x;
  struct brk_lstream *nw;

  old->lane = NULL; /* it only waits to be ended now */
  ln->ls[ms->m->index] = NULL;
  nw = to && !brk_h2_dead(to) ? ls_open(ln, ms, old->ordinal, to, 1) : NULL;
  if (!nw) {
    brk_msess_broken(ms, "cannot move a lane between connections");
    return -1;
  }
  nw->last_rid = old->last_rid;
  nw->carry_status = old->carry_status;
  nw->carry_flags = old->carry_flags;
  nw->moved_from = old;
  old->moved_to = nw;
  if (nw->express)
    ln->c->n.lane_returns++, ms->m->n.lane_returns++;
  else
    ln->c->n.lane_moves++, ms->m->n.lane_moves++;
  brk_dbg("client pid %d lane %u: moved to %s's %s connection",
          (int)ln->c->pid, ln->id, ms->m->name,
          nw->express ? "express" : "bulk");
  return 0;
}

/* ---- zero-copy uploads ------------------------------------------------------------- */

/* The shim may sleep waiting for request or upload space we just freed;
   its doorbell is rep_efd. */
static void kick_space(struct brk_lane *ln)
{
  (void)tr_ring_kick_space(&ln->l.req, ln->l.rep_efd);
  (void)tr_ring_kick_space(&ln->l.up, ln->l.rep_efd);
}

/* Bulk upload chunks go to the streams by reference (brk_upl.c); the
   brk_upl calls this when done chunks gave upload space back. */
static void upl_space(void *arg)
{
  struct brk_lane *ln = arg;

  if (!ln->c->dead)
    kick_space(ln);
}

/* ---- request routing ---------------------------------------------------------------- */

/*
 * Forward one request record.  Returns 0 (consumed: release it), 1 (the
 * target stream is full: keep it and stop draining) or -1 (the client was
 * dropped).
 */
/*
 * The bulk bytes a TR_F_SHMREF record names: a chunk of the upload area,
 * or a range of one of the client's regions (then *rg holds a reference on
 * it, released by the caller).  The reference is read once into our
 * memory, then checked.  Returns 0 (*bulk, *ref set and *prefix reduced;
 * *bulk NULL without SHMREF) or -1 (the client was dropped).
 */
static int resolve_ref(struct brk_lane *ln, const struct tr_hdr *h,
                       const uint8_t *payload, uint32_t *prefix,
                       const uint8_t **bulk, struct tr_shmref *ref,
                       struct brk_region **rg)
{
  struct brk_client *c = ln->c;
  uint8_t refbytes[TR_SHMREF_SIZE];
  const char *why = NULL;

  *bulk = NULL;
  *rg = NULL;
  if (!(h->flags & TR_F_SHMREF))
    return 0;
  if (*prefix < TR_SHMREF_SIZE) {
    brk_client_drop(c, "lane %u: SHMREF record too short", ln->id);
    return -1;
  }
  *prefix -= TR_SHMREF_SIZE;
  memcpy(refbytes, payload + *prefix, TR_SHMREF_SIZE);
  tr_shmref_unpack(refbytes, ref);
  if ((uint64_t)*prefix + ref->len > TR_PAYLOAD_MAX) {
    brk_client_drop(c, "lane %u: expanded payload of %llu bytes exceeds the "
                       "record limit", ln->id,
                    (unsigned long long)(*prefix + ref->len));
    return -1;
  }
  if (ref->area >= TR_AREA_REGION) {
    *bulk = brk_region_resolve(c, ref, rg);
    why = "no such region, or outside it";
  } else if (ref->area == TR_AREA_UP) {
    *bulk = tr_area_resolve(&ln->l.up, ref, &why);
  } else {
    why = "a request may not name the download area";
  }
  if (!*bulk) {
    brk_client_drop(c, "lane %u: bad upload reference (area %u): %s", ln->id,
                    ref->area, why ? why : "out of bounds");
    return -1;
  }
  return 0;
}

/*
 * Where a TR_F_DEST record's reply goes: its last TR_SHMREF_SIZE bytes
 * name a range of one of the client's regions exactly as long as the copy.
 * Returns 0 (*dest NULL without DEST, else holding a reference) or -1 (the
 * client was dropped).
 */
static int resolve_dest(struct brk_lane *ln, const struct tr_hdr *h,
                        const uint8_t *payload, uint32_t *prefix,
                        struct brk_region **dest, uint8_t **dest_p,
                        uint64_t *dest_len)
{
  uint8_t refbytes[TR_SHMREF_SIZE];
  struct tr_shmref ref;

  *dest = NULL;
  if (!(h->flags & TR_F_DEST))
    return 0;
  if (h->opcode != TR_OP_MEMCPY_D2H || !(h->flags & TR_F_WANT_REPLY) ||
      (h->flags & TR_F_SHMREF) || *prefix != 16 + TR_SHMREF_SIZE) {
    brk_client_drop(ln->c, "lane %u: TR_F_DEST on a record other than a "
                           "MEMCPY_D2H that waits", ln->id);
    return -1;
  }
  *prefix -= TR_SHMREF_SIZE;
  memcpy(refbytes, payload + *prefix, TR_SHMREF_SIZE);
  tr_shmref_unpack(refbytes, &ref);
  if (ref.len != tr_get_u64(payload + 8) ||
      !(*dest_p = brk_region_resolve(ln->c, &ref, dest))) {
    brk_client_drop(ln->c, "lane %u: bad destination (area %u): not a range "
                           "of a region as long as the copy", ln->id,
                    ref.area);
    return -1;
  }
  *dest_len = ref.len;
  return 0;
}

/* A region's chunk queued by reference was sent (or dropped). */
static void region_done(void *arg)
{
  brk_region_put(arg);
}

/* Done with a request's bulk chunk without queueing it by reference (it
   was copied, or answered here): let its region or upload space go. */
static void bulk_finish(struct brk_lane *ln, const uint8_t *bulk,
                        const struct tr_shmref *ref, struct brk_region *rg)
{
  if (rg)
    brk_region_put(rg);
  else if (bulk)
    brk_upl_finish(ln->upl, ref);
}

/*
 * Forward one request record.  Returns 0 (consumed: release it), 1 (the
 * target stream is full: keep it and stop draining) or -1 (the client was
 * dropped).  A record answered here still releases its upload chunk.
 */
static int route(struct brk_lane *ln, const struct tr_hdr *h,
                 const uint8_t *payload)
{
  struct brk_client *c = ln->c;
  struct brk_lstream *ls = NULL;
  struct tr_shmref ref = {0};
  struct brk_region *rg, *dest;
  const uint8_t *bulk;
  uint8_t hdr[TR_HDR_SIZE], *dest_p = NULL;
  struct tr_hdr w = *h;
  struct iovec iov[3];
  struct brk_upl_ent *zc = NULL;
  uint32_t prefix = h->payload_len, status = 0;
  uint64_t dest_len = 0;
  int want = (h->flags & TR_F_WANT_REPLY) != 0, byref, rc, big;

  if ((h->flags & (TR_F_REPLY | TR_F_MORE | TR_F_PLACED | TR_F_DEFERRED)) ||
      h->status != 0) {
    brk_client_drop(c, "lane %u: a request record carries reply flags or a "
                       "status", ln->id);
    return -1;
  }
  switch (h->opcode) {
  case TR_OP_HELLO:
  case TR_OP_LANE_OPEN:
  case TR_OP_LANE_CLOSE:
  case TR_OP_STATS:
  case TR_OP_REGION_ADD:
  case TR_OP_REGION_DEL:
    /* Session control belongs on the socket, not in a lane. */
    status = TR_ST_BAD_OPCODE;
    break;
  default:
    if (h->device >= c->ndev) {
      status = 101; /* cudaErrorInvalidDevice */
      break;
    }
    big = rec_is_bulk(h, payload);
    rc = ls_get(ln, c->ord2m[h->device], h->device, big, &ls);
    if (rc > 0)
      return 1; /* taken again once the session is answered */
    if (rc < 0) {
      status = TR_ST_MACHINE_LOST;
      break;
    }
    if (ls->fencing || (big && ls->express) ||
        (!big && ls_wants_return(ls))) {
      /* Taken again once the lane has moved ("Express lanes"); nothing
         goes on the old stream after its fence. */
      if (!ls->fencing && ls_fence(ls) < 0)
        return route(ln, h, payload); /* broken: answered here now */
      ln->blocked_on = ls;
      return 1;
    }
    if (brk_h2_stream_queued(ls->st) >= BRK_LANE_QUEUE_MAX ||
        ls->out_n >= BRK_LANE_OUTSTANDING_MAX) {
      if (ln->blocked_on != ls)
        brk_dbg("client pid %d lane %u: pausing (%zu bytes queued, %u "
                "waiting for replies)", (int)c->pid, ln->id,
                brk_h2_stream_queued(ls->st), ls->out_n);
      ln->blocked_on = ls;
      return 1;
    }
    if (!ls->express) { /* what ls_wants_return goes by */
      if (big)
        ls->bulk_ms = brk_now_ms(), ls->smalls = 0;
      else
        ls->smalls++;
    }
    break;
  }
  if (resolve_ref(ln, h, payload, &prefix, &bulk, &ref, &rg) < 0)
    return -1;
  if (resolve_dest(ln, h, payload, &prefix, &dest, &dest_p, &dest_len) < 0) {
    if (rg)
      brk_region_put(rg);
    return -1;
  }
  if (status) {
    bulk_finish(ln, bulk, &ref, rg);
    if (dest)
      brk_region_put(dest);
    if (want)
      local_reply(ln, h->opcode, h->request_id, h->device, status);
    return 0;
  }
  w.flags &= (uint16_t)~(TR_F_SHMREF | TR_F_DEST);
  w.payload_len = prefix + (uint32_t)(bulk ? ref.len : 0);
  w.device = 0;
  tr_hdr_pack(&w, hdr);
  iov[0] = (struct iovec){hdr, TR_HDR_SIZE};
  iov[1] = (struct iovec){(void *)payload, prefix};
  /* Bulk chunks go by reference: a region's always (it stays mapped while
     referenced), the upload area's while the FIFO has room. */
  byref = bulk && ref.len >= BRK_LANE_ZC_MIN &&
          (rg || (zc = brk_upl_push(ln->upl, &ref)) != NULL);
  iov[2] = (struct iovec){(void *)bulk, bulk && !byref ? (size_t)ref.len : 0};
  rc = brk_h2_stream_write(ls->st, iov, 3);
  if (byref) {
    if (rc >= 0)
      rc = brk_h2_stream_write_ref(ls->st, bulk, ref.len,
                                   rg ? region_done : brk_upl_done,
                                   rg ? (void *)rg : (void *)zc);
    if (rc < 0) { /* never queued */
      if (rg)
        region_done(rg);
      else
        brk_upl_done(zc);
    }
  } else {
    bulk_finish(ln, bulk, &ref, rg);
  }
  if (rc == -EPIPE) {
    /* The machine's connection died and its loss is not reported to us
       yet (a preempted Modal machine, a killed agent): the session on it
       breaks now, as it would a moment later, and the program gets
       cudaErrorDevicesUnavailable, not the loss of its broker. */
    if (dest)
      brk_region_put(dest);
    brk_msess_broken(ls->ms, "the connection to the machine closed");
    if (want)
      local_reply(ln, h->opcode, h->request_id, h->device,
                  TR_ST_MACHINE_LOST);
    return 0;
  }
  if (rc < 0) {
    if (dest)
      brk_region_put(dest);
    brk_client_drop(c, "out of memory queueing a request");
    return -1;
  }
  ls->last_rid = h->request_id;
  if (want && out_push(ls, h->request_id, h->opcode, dest, dest_p,
                       dest_len) < 0) {
    brk_client_drop(c, "out of memory queueing a request");
    return -1;
  }
  if (want)
    c->n.round_trips++, ls->ms->m->n.round_trips++;
  if (rg)
    c->region_bytes_to_agent += ref.len;
  c->n.records_to_agent++;
  ls->ms->m->n.records_to_agent++;
  ls->ms->m->n.bytes_to_agent += TR_HDR_SIZE + w.payload_len;
  if (h->opcode == TR_OP_MODULE_PUT)
    c->n.module_bytes += w.payload_len, ls->ms->m->n.module_bytes += w.payload_len;
  c->n.bytes_to_agent += TR_HDR_SIZE + w.payload_len;
  return 0;
}

static void lane_drain(struct brk_lane *ln)
{
  struct brk_client *c = ln->c;
  struct tr_hdr h;
  const uint8_t *payload;
  const char *why = NULL;
  uint64_t bytes = 0;
  int n = 0, released = 0, rc;

  if (c->dead || ln->blocked_on)
    return;
  brk_dbg("client pid %d lane %u: drain", (int)c->pid, ln->id);
  /* We are awake: the shim need not ring while we drain. */
  atomic_store_explicit(&ln->l.req.ctl->waiting, 0, memory_order_relaxed);
  for (;;) {
    if (ln->nlocal >= BRK_LANE_LOCAL_MAX)
      break; /* resumed when the shim takes replies */
    rc = tr_ring_peek(&ln->l.req, &h, &payload, &why);
    if (rc < 0) {
      brk_client_drop(c, "lane %u: corrupt request ring: %s", ln->id,
                      why ? why : "bad record");
      return;
    }
    if (rc == 0) {
      if (ln->closing) {
        if (released)
          kick_space(ln);
        lane_finish_close(ln);
        return;
      }
      if (tr_ring_arm(&ln->l.req))
        break; /* empty: sleep on the doorbell */
      continue;
    }
    if (n >= BRK_DRAIN_BUDGET || bytes >= DRAIN_BYTES) {
      /* Let other lanes and the network have a turn. */
      brk_loop_defer(c->b->loop, &ln->drain_task);
      break;
    }
    rc = route(ln, &h, payload);
    if (rc < 0 || c->dead)
      return;
    if (rc > 0)
      break; /* taken again on the next drain */
    tr_trace(TR_HOP_BRK_REQ, ln->id, h.opcode, h.request_id);
    tr_ring_release(&ln->l.req, &h);
    released = 1;
    n++;
    bytes += TR_HDR_SIZE + h.payload_len;
  }
  if (released)
    kick_space(ln);
}

static void drain_task(struct brk_task *t, void *arg)
{
  struct brk_lane *ln = arg;

  if (ln->blocked_on) {
    struct brk_lstream *ls = ln->blocked_on;

    if (ls->fencing) { /* moving ("Express lanes") */
      if (!ls->fence_done)
        return;
      ln->blocked_on = NULL;
      if (ls_move(ln, ls) < 0)
        return;
    } else if ((ls->st && brk_h2_stream_queued(ls->st) > BRK_LANE_QUEUE_LOW) ||
               ls->out_n >= BRK_LANE_OUTSTANDING_MAX) {
      /* Resume below the low-water mark, not at the first byte sent, so a
         full stream does not flip-flop on every DATA frame. */
      return;
    }
    ln->blocked_on = NULL;
  }
  lane_drain(ln);
}

/* The shim released reply space: deliver what waits for it. */
static void lane_retry_replies(struct brk_lane *ln)
{
  int was_full = ln->nlocal >= BRK_LANE_LOCAL_MAX;

  if (!ln->reply_waiting)
    return;
  ln->reply_waiting = 0;
  flush_local(ln);
  for (unsigned m = 0; m < BRK_MAX_MACHINES && !ln->c->dead; m++) {
    struct brk_lstream *ls = ln->ls[m];

    if (ls && ls->blocked && ls->lane == ln)
      ls_retry(ls);
  }
  if (was_full && ln->nlocal < BRK_LANE_LOCAL_MAX)
    brk_loop_defer(ln->c->b->loop, &ln->drain_task);
}

static void on_doorbell(struct brk_op *op, int res, void *arg)
{
  struct brk_lane *ln = arg;

  ln->efd_op = NULL;
  if (ln->c->dead)
    return;
  if (res < 0) {
    brk_client_drop(ln->c, "lane %u: doorbell read failed: %s", ln->id,
                    strerror(-res));
    return;
  }
  /* Re-arm first: a ring after this point is not lost. */
  ln->efd_op = brk_loop_read(ln->c->b->loop, ln->l.req_efd, 8, on_doorbell, ln);
  if (!ln->efd_op) {
    brk_client_drop(ln->c, "lane %u: cannot watch the doorbell", ln->id);
    return;
  }
  lane_retry_replies(ln);
  if (!ln->c->dead && !ln->blocked_on)
    lane_drain(ln);
}

/* ---- lifecycle ---------------------------------------------------------------------- */

int brk_lane_new(struct brk_client *c, struct brk_lane **out, int *memfd)
{
  struct brk *b = c->b;
  struct brk_lane *ln = calloc(1, sizeof(*ln));
  int rc;

  if (!ln)
    return -ENOMEM;
  ln->c = c;
  if (++b->next_lane_id == 0)
    ++b->next_lane_id;
  ln->id = b->next_lane_id;
  ln->upl = brk_upl_new(&ln->l.up, upl_space, ln);
  if (!ln->upl) {
    free(ln);
    return -ENOMEM;
  }
  rc = tr_lane_create(&ln->l, ln->id, memfd);
  if (rc < 0) {
    brk_upl_free(ln->upl);
    free(ln);
    return rc;
  }
  brk_task_init(&ln->drain_task, drain_task, ln);
  (void)tr_ring_arm(&ln->l.req); /* empty: the first record rings */
  ln->efd_op = brk_loop_read(b->loop, ln->l.req_efd, 8, on_doorbell, ln);
  if (!ln->efd_op) {
    close(*memfd);
    *memfd = -1;
    brk_upl_release(ln->upl, &ln->l); /* nothing queued: unmaps it */
    free(ln);
    return -ENOMEM;
  }
  ln->next = c->lanes;
  if (c->lanes)
    c->lanes->prev = ln;
  c->lanes = ln;
  c->nlanes++;
  *out = ln;
  return 0;
}

static void lane_free(struct brk_lane *ln)
{
  struct brk_client *c = ln->c;

  brk_op_cancel(ln->efd_op);
  ln->efd_op = NULL;
  brk_task_cancel(c->b->loop, &ln->drain_task);
  /* Streams may still queue chunks of the upload area by reference: the
     brk_upl then keeps the mapping until the last is done. */
  brk_upl_release(ln->upl, &ln->l);
  if (ln->prev)
    ln->prev->next = ln->next;
  else
    c->lanes = ln->next;
  if (ln->next)
    ln->next->prev = ln->prev;
  c->nlanes--;
  free(ln->local);
  free(ln);
}

static void lane_finish_close(struct brk_lane *ln)
{
  for (unsigned m = 0; m < BRK_MAX_MACHINES; m++)
    if (ln->ls[m])
      brk_lstream_orphan(ln->ls[m], 0);
  brk_dbg("client pid %d: lane %u closed", (int)ln->c->pid, ln->id);
  lane_free(ln);
}

void brk_lane_close(struct brk_lane *ln)
{
  if (ln->closing)
    return;
  ln->closing = 1;
  /* Records the thread queued before it closed the lane still run. */
  if (!ln->blocked_on)
    brk_loop_defer(ln->c->b->loop, &ln->drain_task);
}

void brk_lane_destroy(struct brk_lane *ln)
{
  for (unsigned m = 0; m < BRK_MAX_MACHINES; m++) {
    struct brk_lstream *ls = ln->ls[m];

    if (ls)
      brk_lstream_orphan(ls, ls->st && brk_h2_stream_queued(ls->st) > 0);
  }
  lane_free(ln);
}
