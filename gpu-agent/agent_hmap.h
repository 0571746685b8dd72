/*
 * agent_hmap.h: a map from nonzero 64-bit keys to pointers.
 *
 * Used for the session registry (session id -> session) and for the
 * client-assigned handles of a session (module and function handles).
 * Open addressing with linear probing and backward-shift deletion, so there
 * are no tombstones and lookups stay O(1) expected however many inserts and
 * removes happen.  Key 0 is reserved (it marks an empty slot): tremote
 * handles and session ids are never 0.
 *
 * Not thread-safe: the owner locks.  The map does not own the values.
 */
#ifndef AGT_HMAP_H
#define AGT_HMAP_H

#include <stddef.h>
#include <stdint.h>

struct agt_hmap {
  struct agt_hmap_slot {
    uint64_t key; /* 0 = empty */
    void *val;
  } *slots;
  size_t cap;   /* power of two, or 0 before the first insert */
  size_t count;
};

/* An empty map; no allocation until the first insert. */
void agt_hmap_init(struct agt_hmap *m);

/* Free the slot array (not the values). */
void agt_hmap_release(struct agt_hmap *m);

/* The value for key, or NULL. */
void *agt_hmap_get(const struct agt_hmap *m, uint64_t key);

/*
 * Insert key -> val.  Returns 0; -EEXIST if key is present (the map is
 * unchanged); -EINVAL for key 0; -ENOMEM.
 */
int agt_hmap_put(struct agt_hmap *m, uint64_t key, void *val);

/* Remove key and return its value, or NULL if absent. */
void *agt_hmap_del(struct agt_hmap *m, uint64_t key);

/*
 * Visit every entry.  fn must not change the map; to empty it, collect
 * first or call agt_hmap_del on a key returned by agt_hmap_any().
 */
void agt_hmap_each(const struct agt_hmap *m,
                   void (*fn)(uint64_t key, void *val, void *arg), void *arg);

/* Some key in the map, or 0 if it is empty (for draining it). */
uint64_t agt_hmap_any(const struct agt_hmap *m);

#endif /* AGT_HMAP_H */
