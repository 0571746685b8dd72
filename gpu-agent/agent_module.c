/*
 * agent_module.c: the module cache and chunked uploads (agent_module.h).
 *
 * Programs register a handful of fatbins, so the cache is a list searched
 * linearly under one mutex; loads happen at program start, not per call.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "agent.h"
#include "agent_module.h"

struct agt_modcache {
  pthread_mutex_t mu;
  struct agt_module *head;
  size_t count;
};

void agt_module_hash(const void *bytes, size_t len, uint8_t out[AGT_HASH_LEN])
{
  XXH128_canonical_t canon;

  XXH128_canonicalFromHash(&canon, XXH3_128bits(bytes, len));
  memcpy(out, canon.digest, AGT_HASH_LEN);
}

int agt_modcache_new(struct agt_modcache **out)
{
  struct agt_modcache *c = calloc(1, sizeof(*c));

  if (!c)
    return -ENOMEM;
  pthread_mutex_init(&c->mu, NULL);
  *out = c;
  return 0;
}

static void module_free(struct agt_module *m)
{
  free(m->image);
  free(m);
}

void agt_modcache_free(struct agt_modcache *c)
{
  struct agt_module *m, *next;

  if (!c)
    return;
  /* Sessions are gone by now, so the cache holds the only references. */
  for (m = c->head; m; m = next) {
    next = m->next;
    module_free(m);
  }
  pthread_mutex_destroy(&c->mu);
  free(c);
}

static struct agt_module *find(struct agt_modcache *c,
                               const uint8_t hash[AGT_HASH_LEN])
{
  for (struct agt_module *m = c->head; m; m = m->next) {
    if (memcmp(m->hash, hash, AGT_HASH_LEN) == 0)
      return m;
  }
  return NULL;
}

struct agt_module *agt_modcache_get(struct agt_modcache *c,
                                    const uint8_t hash[AGT_HASH_LEN])
{
  struct agt_module *m;

  pthread_mutex_lock(&c->mu);
  m = find(c, hash);
  if (m)
    m->refs++;
  pthread_mutex_unlock(&c->mu);
  return m;
}

int agt_modcache_add(struct agt_modcache *c, const uint8_t hash[AGT_HASH_LEN],
                     uint8_t *image, size_t len)
{
  struct agt_module *m;
  size_t n;

  pthread_mutex_lock(&c->mu);
  if (find(c, hash)) {
    /* Two sessions uploaded the same module at once: keep the first. */
    pthread_mutex_unlock(&c->mu);
    free(image);
    return 0;
  }
  m = calloc(1, sizeof(*m));
  if (!m) {
    pthread_mutex_unlock(&c->mu);
    free(image);
    return -ENOMEM;
  }
  memcpy(m->hash, hash, AGT_HASH_LEN);
  m->image = image;
  m->len = len;
  m->refs = 1; /* the cache's own */
  m->cache = c;
  m->next = c->head;
  c->head = m;
  n = ++c->count;
  pthread_mutex_unlock(&c->mu);
  agt_debug("module cache: added %zu bytes, %zu modules", len, n);
  return 0;
}

void agt_module_put(struct agt_module *m)
{
  struct agt_modcache *c = m->cache;

  /* The cache's own reference keeps the count above zero while the
     agent runs; this only balances agt_modcache_get. */
  pthread_mutex_lock(&c->mu);
  m->refs--;
  pthread_mutex_unlock(&c->mu);
}

size_t agt_modcache_count(struct agt_modcache *c)
{
  size_t n;

  pthread_mutex_lock(&c->mu);
  n = c->count;
  pthread_mutex_unlock(&c->mu);
  return n;
}

/* ---- uploads ----------------------------------------------------------- */

/* Received byte ranges, sorted, disjoint and never adjacent. */
struct range {
  uint64_t lo, hi;
};

struct agt_upload {
  struct agt_upload *next;
  uint8_t hash[AGT_HASH_LEN];
  uint64_t total;
  uint8_t *buf;
  struct range *r;
  size_t nr, cr;
};

static void upload_free(struct agt_upload *u)
{
  free(u->buf);
  free(u->r);
  free(u);
}

/* Record [lo, hi) as received, merging with what touches it. */
static int ranges_add(struct agt_upload *u, uint64_t lo, uint64_t hi)
{
  size_t i = 0, j;

  while (i < u->nr && u->r[i].hi < lo)
    i++;
  /* r[i..j) touch or overlap [lo, hi): they collapse into one. */
  j = i;
  while (j < u->nr && u->r[j].lo <= hi) {
    if (u->r[j].lo < lo)
      lo = u->r[j].lo;
    if (u->r[j].hi > hi)
      hi = u->r[j].hi;
    j++;
  }
  if (j == i) {
    if (u->nr == u->cr) {
      size_t ncr = u->cr ? u->cr * 2 : 8;
      struct range *nr = realloc(u->r, ncr * sizeof(*nr));

      if (!nr)
        return -ENOMEM;
      u->r = nr;
      u->cr = ncr;
    }
    memmove(&u->r[i + 1], &u->r[i], (u->nr - i) * sizeof(*u->r));
    u->nr++;
  } else if (j > i + 1) {
    memmove(&u->r[i + 1], &u->r[j], (u->nr - j) * sizeof(*u->r));
    u->nr -= j - i - 1;
  }
  u->r[i].lo = lo;
  u->r[i].hi = hi;
  return 0;
}

int agt_upload_chunk(struct agt_upload **list, const uint8_t hash[AGT_HASH_LEN],
                     uint64_t total, uint64_t offset, const uint8_t *bytes,
                     size_t len, uint8_t **image)
{
  struct agt_upload *u, **pp;
  uint8_t got[AGT_HASH_LEN];
  size_t n = 0;
  int rc;

  *image = NULL;
  if (total == 0)
    return -EINVAL;
  if (total > AGT_MODULE_MAX)
    return -E2BIG;
  if (offset > total || len > total - offset)
    return -ERANGE;
  for (pp = list; *pp; pp = &(*pp)->next, n++) {
    if (memcmp((*pp)->hash, hash, AGT_HASH_LEN) == 0)
      break;
  }
  u = *pp;
  if (!u) {
    if (n >= AGT_UPLOADS_MAX)
      return -ENOSPC;
    u = calloc(1, sizeof(*u));
    if (!u)
      return -ENOMEM;
    /* Pages are only touched as chunks land: a bogus total costs little. */
    u->buf = malloc(total);
    if (!u->buf) {
      free(u);
      return -ENOMEM;
    }
    memcpy(u->hash, hash, AGT_HASH_LEN);
    u->total = total;
    *pp = u;
  } else if (u->total != total) {
    return -EINVAL;
  }
  if (len == 0)
    return 0;
  memcpy(u->buf + offset, bytes, len);
  rc = ranges_add(u, offset, offset + len);
  if (rc < 0)
    return rc;
  if (u->nr != 1 || u->r[0].lo != 0 || u->r[0].hi != total)
    return 0;

  /* Complete: unlink it, then verify. */
  *pp = u->next;
  agt_module_hash(u->buf, total, got);
  if (memcmp(got, hash, AGT_HASH_LEN) != 0) {
    upload_free(u);
    return -EBADMSG;
  }
  *image = u->buf;
  u->buf = NULL;
  upload_free(u);
  return 1;
}

void agt_upload_free_all(struct agt_upload **list)
{
  struct agt_upload *u, *next;

  for (u = *list; u; u = next) {
    next = u->next;
    upload_free(u);
  }
  *list = NULL;
}
