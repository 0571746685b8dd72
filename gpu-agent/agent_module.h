/*
 * agent_module.h: modules (fatbins) by content.
 *
 * The agent keeps the modules it was sent in a cache keyed by the
 * XXH3-128 hash of their bytes (canonical, big-endian: PROTOCOL.md §1), so
 * a module is uploaded once per agent (once per cache directory with
 * --cache-dir), not once per session or program run (DESIGN.md principle
 * 3).  Sessions refer to cache entries; the cache holds one reference of
 * its own to each entry while it is listed.
 *
 * Uploads arrive as MODULE_PUT chunks in any order.  struct agt_upload
 * assembles one module for one session and verifies the hash once every
 * byte is there; only verified bytes enter the cache.
 *
 * Thread-safety: the cache locks itself; an upload list belongs to one
 * session and is used under that session's lock.
 */
#ifndef AGT_MODULE_H
#define AGT_MODULE_H

#include <stddef.h>
#include <stdint.h>

#define AGT_HASH_LEN 16

/* One cached module image.  Immutable once in the cache. */
struct agt_module {
  uint8_t hash[AGT_HASH_LEN];
  uint8_t *image; /* owned */
  size_t len;
  unsigned refs;  /* under the cache's lock */
  uint64_t used;  /* the cache's clock at the last use (eviction order) */
  struct agt_module *next;
  struct agt_modcache *cache;
};

struct agt_modcache;

/*
 * A cache holding at most max bytes of images (0: no limit; entries a
 * session uses are never dropped), also kept in directory dir (created
 * 0700 if missing) when not NULL, so a restarted agent has them.  Returns
 * 0 and *out, -ENOMEM, or mkdir's -errno.
 */
int agt_modcache_new(const char *dir, uint64_t max, struct agt_modcache **out);

/* Drop the cache's own references and free it (entries still referenced
   elsewhere live on until agt_module_put). */
void agt_modcache_free(struct agt_modcache *c);

/* The entry for hash with a new reference, or NULL if absent. */
struct agt_module *agt_modcache_get(struct agt_modcache *c,
                                    const uint8_t hash[AGT_HASH_LEN]);

/*
 * Add a verified image under hash.  Takes ownership of image (freed here
 * if the hash is already present).  Returns 0 or -ENOMEM (image freed).
 */
int agt_modcache_add(struct agt_modcache *c, const uint8_t hash[AGT_HASH_LEN],
                     uint8_t *image, size_t len);

/* Drop a reference obtained from agt_modcache_get. */
void agt_module_put(struct agt_module *m);

/* Number of cached modules (for logs and tests). */
size_t agt_modcache_count(struct agt_modcache *c);

/* XXH3-128 of bytes, canonical form. */
void agt_module_hash(const void *bytes, size_t len, uint8_t out[AGT_HASH_LEN]);

/* ---- uploads ----------------------------------------------------------- */

struct agt_upload;

/* At most this many modules are half-uploaded per session at a time. */
#define AGT_UPLOADS_MAX 16

/*
 * Add one MODULE_PUT chunk to the upload of `hash` in *list (created at its
 * first chunk).  Chunks may come in any order and may overlap.
 *
 * Returns
 *   0        accepted; more bytes are needed
 *   1        the module is complete and its hash verified: *image (malloc,
 *            now the caller's) holds total bytes; the upload is gone
 *   -EINVAL  total is 0, or differs from the upload's first chunk
 *   -E2BIG   total exceeds AGT_MODULE_MAX
 *   -ERANGE  offset + len > total
 *   -EBADMSG all bytes arrived but their hash is not `hash`; the upload is
 *            dropped, so a retry starts from scratch
 *   -ENOSPC  AGT_UPLOADS_MAX uploads already in progress
 *   -ENOMEM
 */
int agt_upload_chunk(struct agt_upload **list, const uint8_t hash[AGT_HASH_LEN],
                     uint64_t total, uint64_t offset, const uint8_t *bytes,
                     size_t len, uint8_t **image);

/* Free every upload of a list. */
void agt_upload_free_all(struct agt_upload **list);

#endif /* AGT_MODULE_H */
