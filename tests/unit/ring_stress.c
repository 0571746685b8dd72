/*
 * ring_stress.c: push many records through a lane and check every byte.
 *
 *   ring_stress [--threads] [--records N] [--max-log2 K] [--seed S]
 *
 * A producer (the shim's role: request ring + upload area) sends N records
 * to a consumer (the broker's role).  Record i carries i in request_id and
 * a payload of s bytes, where log2(s + 1) is uniform in [0, K] (K = 20: up
 * to 1 MiB - 1).  Payloads up to TR_LANE_INLINE_MAX go inline; larger ones
 * go through the upload area and the record carries a tr_shmref, exactly as
 * the shim will send them.  Either way the record's first 8 payload bytes
 * are the XXH3-64 of the s data bytes, and aux = s.
 *
 * Generating and hashing 750 GB of fresh random bytes would take this
 * 2-core machine several minutes by itself, so the payloads come from a
 * table of NSHAPES shapes made at start-up from the seed: a size drawn as
 * above, an offset into a pool of PRNG bytes, and the XXH3-64 (seeded with
 * the shape's index) of that window.  Record i uses shape k drawn from the
 * seeded PRNG; the producer copies the window into the ring or the area and
 * sends the precomputed checksum.  The consumer runs the same PRNG, so it
 * knows k: it checks the sequence, the size, that the carried checksum is
 * k's, and hashes every byte it received against it.  A stale or torn
 * payload (a lap behind, half-written) would fail that hash.
 *
 * By default producer and consumer are two processes: the parent creates
 * the lane, the child maps it from the memfd and the two eventfds, as the
 * shim does with what it receives over the socket.  With --threads they are
 * two threads sharing one mapping (so that TSan sees every access).
 *
 * Exit 0 if every record arrived intact and in order, 1 otherwise.  Prints
 * records/s and GB/s (payload bytes, 10^9).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>
#if defined(__x86_64__)
#include <xxh_x86dispatch.h> /* AVX2/AVX-512 picked at run time */
#define HASH(p, n, seed) XXH3_64bits_withSeed_dispatch(p, n, seed)
#else
#define HASH(p, n, seed) XXH3_64bits_withSeed(p, n, seed)
#endif

#include "ring.h"

#define WAIT_MS 20000 /* a stall this long is a failure, not a slow run */
#define POOL_WINDOWS (2u << 20) /* offsets a window may start at */
#define NSHAPES 65536u

struct cfg {
  uint64_t records;
  unsigned max_log2;
  uint64_t seed;
  int threads;
};

/* The shape of a record: size, where in the pool its bytes come from, and
   their checksum. */
struct shape {
  uint32_t size;
  uint32_t off;
  uint64_t sum;
};

struct side {
  const struct cfg *cfg;
  struct tr_lane lane;
  const uint8_t *pool;
  const struct shape *shapes;
  uint64_t bytes; /* payload bytes moved */
  uint64_t shm_records;
  uint64_t req_pos, up_pos; /* consumer: final positions, for the summary */
  uint64_t kicks;           /* eventfd writes: wake-ups of the other side */
  const char *fail;
};

/* ---- deterministic generator --------------------------------------------- */

static uint64_t splitmix64(uint64_t *s)
{
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static struct shape *make_shapes(uint64_t seed, unsigned max_log2,
                                 const uint8_t *pool)
{
  struct shape *t = malloc(NSHAPES * sizeof(*t));
  uint64_t s = seed ^ 0x7368617065ull;

  if (!t)
    return NULL;
  for (uint32_t k = 0; k < NSHAPES; k++) {
    double u = (double)(splitmix64(&s) >> 11) * 0x1.0p-53 * max_log2;

    t[k].size = (uint32_t)exp2(u) - 1;
    if (t[k].size >= 1u << max_log2)
      t[k].size = (1u << max_log2) - 1;
    t[k].off = (uint32_t)(splitmix64(&s) % POOL_WINDOWS);
    t[k].sum = HASH(pool + t[k].off, t[k].size, k);
  }
  return t;
}

static uint8_t *make_pool(uint64_t seed, unsigned max_log2)
{
  size_t n = POOL_WINDOWS + ((size_t)1 << max_log2);
  uint8_t *p = malloc(n);
  uint64_t s = seed ^ 0x706f6f6cull;

  if (!p)
    return NULL;
  for (size_t i = 0; i + 8 <= n; i += 8) {
    uint64_t v = splitmix64(&s);

    memcpy(p + i, &v, 8);
  }
  return p;
}

static double now_s(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- producer (the shim's side) ------------------------------------------ */

static uint8_t *reserve_rec(struct side *sd, uint32_t len)
{
  struct tr_lane *l = &sd->lane;
  uint8_t *p;

  while (!(p = tr_ring_reserve(&l->req, len))) {
    if (l->req.err || tr_ring_wait_space(&l->req, l->rep_efd, WAIT_MS) < 0)
      return NULL;
  }
  return p;
}

static int produce(struct side *sd)
{
  const struct cfg *c = sd->cfg;
  struct tr_lane *l = &sd->lane;
  uint64_t s = c->seed;
  struct tr_shmref ref;
  struct tr_hdr h;
  uint8_t *p, *d;
  int rc;

  for (uint64_t i = 0; i < c->records; i++) {
    uint32_t k = (uint32_t)(splitmix64(&s) % NSHAPES);
    struct shape sh = sd->shapes[k];
    const uint8_t *src = sd->pool + sh.off;
    uint64_t sum = sh.sum;

    if (8u + sh.size <= TR_LANE_INLINE_MAX) {
      p = reserve_rec(sd, 8 + sh.size);
      if (!p)
        goto out_stall;
      tr_hdr_init(&h, TR_OP_MEMCPY_H2D, 0, i, 8 + sh.size);
      memcpy(p + TR_HDR_SIZE + 8, src, sh.size);
    } else {
      ref.area = TR_AREA_UP;
      while (!(d = tr_area_reserve(&l->up, sh.size, &ref))) {
        if (l->up.err || tr_ring_wait_space(&l->up, l->rep_efd, WAIT_MS) < 0)
          goto out_stall;
      }
      memcpy(d, src, sh.size);
      p = reserve_rec(sd, 8 + TR_SHMREF_SIZE);
      if (!p)
        goto out_stall;
      tr_hdr_init(&h, TR_OP_MEMCPY_H2D, TR_F_SHMREF, i, 8 + TR_SHMREF_SIZE);
      tr_shmref_pack(&ref, p + TR_HDR_SIZE + 8);
      sd->shm_records++;
    }
    h.aux = sh.size;
    tr_hdr_pack(&h, p);
    tr_put_u64(p + TR_HDR_SIZE, sum);
    tr_ring_commit(&l->req, h.payload_len);
    rc = tr_ring_kick(&l->req, l->req_efd);
    if (rc < 0) {
      sd->fail = "producer: eventfd write failed";
      return -1;
    }
    sd->kicks += (uint64_t)rc;
    sd->bytes += sh.size;
  }
  return 0;

out_stall:
  sd->fail = "producer: no space for too long (or the consumer broke the lane)";
  return -1;
}

/* ---- consumer (the broker's side) ----------------------------------------- */

static int fail(struct side *sd, uint64_t i, const char *what)
{
  static char msg[256];

  snprintf(msg, sizeof(msg), "consumer: record %" PRIu64 ": %s", i, what);
  sd->fail = msg;
  return -1;
}

static int consume(struct side *sd)
{
  const struct cfg *c = sd->cfg;
  struct tr_lane *l = &sd->lane;
  uint64_t s = c->seed;
  const uint8_t *payload, *data;
  struct tr_shmref ref;
  const char *why;
  struct tr_hdr h;
  int rc;

  for (uint64_t i = 0; i < c->records;) {
    rc = tr_ring_peek(&l->req, &h, &payload, &why);
    if (rc == 0) {
      rc = tr_ring_wait(&l->req, l->req_efd, NULL, NULL, WAIT_MS);
      if (rc < 0)
        return fail(sd, i, rc == -ETIMEDOUT ? "nothing came" : "wait failed");
      continue;
    }
    if (rc < 0)
      return fail(sd, i, why);

    uint32_t k = (uint32_t)(splitmix64(&s) % NSHAPES);
    struct shape sh = sd->shapes[k];
    uint64_t sum;

    if (h.request_id != i)
      return fail(sd, i, "out of sequence");
    if (h.aux != sh.size)
      return fail(sd, i, "wrong size");
    sum = tr_get_u64(payload);
    if (sum != sh.sum)
      return fail(sd, i, "carries the wrong checksum");
    if (h.flags & TR_F_SHMREF) {
      if (h.payload_len != 8 + TR_SHMREF_SIZE)
        return fail(sd, i, "bad SHMREF record");
      tr_shmref_unpack(payload + 8, &ref); /* our copy of it */
      if (ref.len != sh.size)
        return fail(sd, i, "shmref of the wrong length");
      data = tr_area_resolve(&l->up, &ref, &why);
      if (!data)
        return fail(sd, i, why);
    } else {
      if (h.payload_len != 8 + sh.size)
        return fail(sd, i, "wrong payload length");
      data = payload + 8;
    }
    if (HASH(data, sh.size, k) != sum)
      return fail(sd, i, "checksum mismatch");
    /* In the threaded run, also read the ends with instrumented code, so
       TSan checks that the bytes were handed over properly. */
    if (c->threads && sh.size &&
        (data[0] != sd->pool[sh.off] ||
         data[sh.size - 1] != sd->pool[sh.off + sh.size - 1]))
      return fail(sd, i, "payload differs from the pool");
    if (h.flags & TR_F_SHMREF) {
      tr_area_release(&l->up, &ref);
      sd->kicks += tr_ring_kick_space(&l->up, l->rep_efd) == 1;
    }
    tr_ring_release(&l->req, &h);
    sd->kicks += tr_ring_kick_space(&l->req, l->rep_efd) == 1;
    sd->bytes += sh.size;
    i++;
  }
  sd->req_pos = l->req.pos;
  sd->up_pos = l->up.pos;
  /* Nothing may follow the last record. */
  if (tr_ring_peek(&l->req, &h, &payload, &why) != 0)
    return fail(sd, c->records, "extra record or garbage after the end");
  return 0;
}

/* ---- drivers ------------------------------------------------------------- */

static void *producer_thread(void *arg)
{
  struct side *sd = arg;

  produce(sd);
  return NULL;
}

static int run_threads(const struct cfg *c, const uint8_t *pool,
                       struct side *cons)
{
  struct side prod = {.cfg = c, .pool = pool, .shapes = cons->shapes};
  pthread_t t;
  int memfd;

  if (tr_lane_create(&cons->lane, 1, &memfd) < 0) {
    perror("tr_lane_create");
    return -1;
  }
  close(memfd);
  /* One mapping, two private views of it. */
  prod.lane = cons->lane;
  if (pthread_create(&t, NULL, producer_thread, &prod) != 0) {
    tr_lane_unmap(&cons->lane);
    return -1;
  }
  consume(cons);
  if (cons->fail) {
    /* Let the producer run into its stall timeout rather than hang. */
    fprintf(stderr, "%s\n", cons->fail);
  }
  pthread_join(t, NULL);
  tr_lane_unmap(&cons->lane);
  if (prod.fail)
    fprintf(stderr, "%s\n", prod.fail);
  if (prod.fail || cons->fail)
    return -1;
  printf("producer: %" PRIu64 " records, %" PRIu64
         " through the area, %" PRIu64 " wake-ups of the consumer\n",
         c->records, prod.shm_records, prod.kicks);
  cons->shm_records = prod.shm_records;
  return 0;
}

static int run_processes(const struct cfg *c, const uint8_t *pool,
                         struct side *cons)
{
  int memfd, req_efd, rep_efd, status, mfd;
  pid_t pid;

  if (tr_lane_create(&cons->lane, 1, &memfd) < 0) {
    perror("tr_lane_create");
    return -1;
  }
  pid = fork();
  if (pid < 0) {
    perror("fork");
    return -1;
  }
  if (pid == 0) {
    struct side prod = {.cfg = c, .pool = pool, .shapes = cons->shapes};

    /* The child keeps only what a shim would receive: three fds. */
    mfd = dup(memfd);
    req_efd = dup(cons->lane.req_efd);
    rep_efd = dup(cons->lane.rep_efd);
    close(memfd);
    tr_lane_unmap(&cons->lane);
    if (tr_lane_map(&prod.lane, mfd, req_efd, rep_efd) < 0) {
      fprintf(stderr, "child: tr_lane_map failed\n");
      _exit(1);
    }
    produce(&prod);
    if (prod.fail)
      fprintf(stderr, "%s\n", prod.fail);
    else
      printf("producer: %" PRIu64 " records, %" PRIu64
             " through the area, %" PRIu64 " wake-ups of the consumer\n",
             c->records, prod.shm_records, prod.kicks);
    fflush(stdout);
    tr_lane_unmap(&prod.lane);
    _exit(prod.fail ? 1 : 0);
  }
  close(memfd);
  consume(cons);
  if (cons->fail) {
    fprintf(stderr, "%s\n", cons->fail);
    kill(pid, SIGKILL);
  }
  if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
      WEXITSTATUS(status) != 0) {
    if (!cons->fail)
      fprintf(stderr, "producer process failed\n");
    tr_lane_unmap(&cons->lane);
    return -1;
  }
  tr_lane_unmap(&cons->lane);
  return cons->fail ? -1 : 0;
}

static void usage(void)
{
  fprintf(stderr, "usage: ring_stress [--threads] [--records N] "
                  "[--max-log2 K (1..20)] [--seed S]\n");
  exit(2);
}

int main(int argc, char **argv)
{
  struct cfg c = {.records = 10000000, .max_log2 = 20, .seed = 1};
  struct side cons = {.cfg = &c};
  uint8_t *pool;
  double t0, dt;
  int rc;

  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--threads"))
      c.threads = 1;
    else if (!strcmp(argv[i], "--records") && i + 1 < argc)
      c.records = strtoull(argv[++i], NULL, 0);
    else if (!strcmp(argv[i], "--max-log2") && i + 1 < argc)
      c.max_log2 = (unsigned)strtoul(argv[++i], NULL, 0);
    else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
      c.seed = strtoull(argv[++i], NULL, 0);
    else
      usage();
  }
  if (c.max_log2 < 1 || c.max_log2 > 20 || !c.records)
    usage();
  pool = make_pool(c.seed, c.max_log2);
  if (!pool)
    return 1;
  cons.pool = pool;
  cons.shapes = make_shapes(c.seed, c.max_log2, pool);
  if (!cons.shapes)
    return 1;

  printf("ring_stress: %" PRIu64 " records, sizes 0..%u B (log2(s+1) uniform), "
         "%s, seed %" PRIu64 "\n",
         c.records, (1u << c.max_log2) - 1,
         c.threads ? "two threads" : "two processes", c.seed);
  fflush(stdout);
  t0 = now_s();
  rc = c.threads ? run_threads(&c, pool, &cons) : run_processes(&c, pool, &cons);
  dt = now_s() - t0;
  free(pool);
  free((void *)cons.shapes);
  if (rc < 0) {
    printf("FAILED\n");
    return 1;
  }
  printf("ring_stress: %" PRIu64 " records, %" PRIu64 " payload bytes "
         "(%.1f GB), %.2f s: %.0f records/s, %.2f GB/s; "
         "request ring went round %" PRIu64 " times, upload area %" PRIu64
         " times; consumer woke the producer %" PRIu64 " times\n",
         c.records, cons.bytes, cons.bytes / 1e9, dt, c.records / dt,
         cons.bytes / dt / 1e9, cons.req_pos / TR_LANE_RING_SIZE, cons.up_pos / TR_LANE_AREA_SIZE,
         cons.kicks);
  printf("1 passed, 0 failed\n");
  return 0;
}
