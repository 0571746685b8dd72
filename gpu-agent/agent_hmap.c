/*
 * agent_hmap.c: open-addressing u64 -> pointer map (see agent_hmap.h).
 *
 * Keys come from clients (handles), so they are mixed with a 64-bit
 * finaliser before probing: sequential or crafted handles must not pile up
 * in one run of slots.  The load factor stays <= 1/2.
 */
#include <errno.h>
#include <stdlib.h>

#include "agent_hmap.h"

static size_t mix(uint64_t k)
{
  /* splitmix64's finaliser: every input bit affects every output bit. */
  k ^= k >> 30;
  k *= 0xbf58476d1ce4e5b9ull;
  k ^= k >> 27;
  k *= 0x94d049bb133111ebull;
  k ^= k >> 31;
  return (size_t)k;
}

void agt_hmap_init(struct agt_hmap *m)
{
  m->slots = NULL;
  m->cap = 0;
  m->count = 0;
}

void agt_hmap_release(struct agt_hmap *m)
{
  free(m->slots);
  agt_hmap_init(m);
}

static size_t find(const struct agt_hmap *m, uint64_t key)
{
  size_t mask = m->cap - 1, i = mix(key) & mask;

  while (m->slots[i].key && m->slots[i].key != key)
    i = (i + 1) & mask;
  return i;
}

void *agt_hmap_get(const struct agt_hmap *m, uint64_t key)
{
  size_t i;

  if (!key || !m->cap)
    return NULL;
  i = find(m, key);
  return m->slots[i].key ? m->slots[i].val : NULL;
}

static int grow(struct agt_hmap *m)
{
  size_t ncap = m->cap ? m->cap * 2 : 16;
  struct agt_hmap old = *m;

  m->slots = calloc(ncap, sizeof(*m->slots));
  if (!m->slots) {
    *m = old;
    return -ENOMEM;
  }
  m->cap = ncap;
  for (size_t i = 0; i < old.cap; i++) {
    if (old.slots[i].key)
      m->slots[find(m, old.slots[i].key)] = old.slots[i];
  }
  free(old.slots);
  return 0;
}

int agt_hmap_put(struct agt_hmap *m, uint64_t key, void *val)
{
  size_t i;
  int rc;

  if (!key)
    return -EINVAL;
  if ((m->count + 1) * 2 > m->cap) {
    rc = grow(m);
    if (rc < 0)
      return rc;
  }
  i = find(m, key);
  if (m->slots[i].key)
    return -EEXIST;
  m->slots[i].key = key;
  m->slots[i].val = val;
  m->count++;
  return 0;
}

void *agt_hmap_del(struct agt_hmap *m, uint64_t key)
{
  size_t mask, i, j;
  void *val;

  if (!key || !m->cap)
    return NULL;
  mask = m->cap - 1;
  i = find(m, key);
  if (!m->slots[i].key)
    return NULL;
  val = m->slots[i].val;
  /*
   * Backward-shift deletion: pull later members of the probe run into the
   * hole when their home slot does not lie cyclically in (i, j].
   */
  j = i;
  for (;;) {
    size_t home;

    j = (j + 1) & mask;
    if (!m->slots[j].key)
      break;
    home = mix(m->slots[j].key) & mask;
    if ((j > i && (home <= i || home > j)) ||
        (j < i && (home <= i && home > j))) {
      m->slots[i] = m->slots[j];
      i = j;
    }
  }
  m->slots[i].key = 0;
  m->slots[i].val = NULL;
  m->count--;
  return val;
}

void agt_hmap_each(const struct agt_hmap *m,
                   void (*fn)(uint64_t key, void *val, void *arg), void *arg)
{
  for (size_t i = 0; i < m->cap; i++) {
    if (m->slots[i].key)
      fn(m->slots[i].key, m->slots[i].val, arg);
  }
}

uint64_t agt_hmap_any(const struct agt_hmap *m)
{
  for (size_t i = 0; i < m->cap; i++) {
    if (m->slots[i].key)
      return m->slots[i].key;
  }
  return 0;
}
