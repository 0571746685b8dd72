/*
 * brk_region.c: a client's regions, its page-locked host memory shared
 * with the broker (PROTOCOL.md §2, REGION_ADD).
 *
 * The shim makes each cudaMallocHost/cudaHostAlloc block a sealed memfd
 * and passes it here; the broker maps it once.  A host-to-device chunk in
 * a region is then sent from it by reference (no copy into the upload
 * area), and a device-to-host reply aimed at a region (TR_F_DEST) is
 * decoded straight into it (no copy out of the download area).
 *
 * Lifetime.  Each region is referenced by its client's table and by every
 * use in flight: a chunk queued by reference on an HTTP/2 stream, a
 * device-to-host request whose reply will be written there.  REGION_DEL
 * and the client's end only drop the table's reference, and the mapping
 * goes when the last one does, so neither writev() nor the decoder ever
 * touches unmapped memory, whatever the client does meanwhile.
 *
 * Trust.  The memfd must carry F_SEAL_SHRINK and F_SEAL_GROW (the client
 * could otherwise truncate it under us, and our own stores into it would
 * fault) and not F_SEAL_WRITE (we write replies into it), and be at least
 * as large as announced.  What the client writes into a region only
 * changes its own payload bytes; every reference into one is bounds-checked
 * against the size checked here.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "brk.h"
#include "brk_log.h"

struct brk_region {
  uint8_t *base;
  size_t size;
  unsigned refs; /* the table's own, plus one per use in flight */
};

int brk_region_add(struct brk_client *c, int fd, uint64_t size, uint32_t *id,
                   const char **why)
{
  struct brk_region *r;
  struct stat st;
  int seals;
  uint32_t i;

  seals = fcntl(fd, F_GET_SEALS);
  if (seals < 0) {
    *why = "not a memfd (no seals)";
    return -EINVAL;
  }
  if ((seals & (F_SEAL_SHRINK | F_SEAL_GROW)) !=
          (F_SEAL_SHRINK | F_SEAL_GROW) ||
      (seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE))) {
    *why = "memfd must be sealed against shrinking and growing, not writing";
    return -EINVAL;
  }
  if (fstat(fd, &st) < 0 || size == 0 || (uint64_t)st.st_size < size ||
      size > BRK_REGION_MAX_SIZE) {
    *why = "size is 0, larger than the memfd, or too large";
    return -EINVAL;
  }
  for (i = 0; i < c->nregions && c->regions[i]; i++)
    ;
  if (i == TR_REGION_MAX) {
    *why = "too many regions";
    return -ENOSPC;
  }
  if (i == c->nregions) {
    uint32_t n = i + 16 < TR_REGION_MAX ? i + 16 : TR_REGION_MAX;
    struct brk_region **t = realloc(c->regions, n * sizeof(*t));

    if (!t) {
      *why = "out of memory";
      return -ENOMEM;
    }
    for (uint32_t k = i; k < n; k++)
      t[k] = NULL;
    c->regions = t;
    c->nregions = n;
  }
  r = calloc(1, sizeof(*r));
  if (!r) {
    *why = "out of memory";
    return -ENOMEM;
  }
  r->base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (r->base == MAP_FAILED) {
    free(r);
    *why = "cannot map it";
    return -ENOMEM;
  }
  r->size = size;
  r->refs = 1;
  c->regions[i] = r;
  *id = i;
  return 0;
}

void brk_region_put(struct brk_region *r)
{
  if (--r->refs)
    return;
  munmap(r->base, r->size);
  free(r);
}

int brk_region_del(struct brk_client *c, uint32_t id)
{
  if (id >= c->nregions || !c->regions[id])
    return -ENOENT;
  brk_region_put(c->regions[id]);
  c->regions[id] = NULL;
  return 0;
}

void brk_regions_free(struct brk_client *c)
{
  for (uint32_t i = 0; i < c->nregions; i++)
    if (c->regions[i])
      brk_region_put(c->regions[i]);
  free(c->regions);
  c->regions = NULL;
  c->nregions = 0;
}

uint8_t *brk_region_resolve(struct brk_client *c, const struct tr_shmref *ref,
                            struct brk_region **out)
{
  struct brk_region *r;
  uint32_t id;

  if (ref->area < TR_AREA_REGION)
    return NULL;
  id = ref->area - TR_AREA_REGION;
  if (id >= c->nregions || !(r = c->regions[id]))
    return NULL;
  if (ref->len == 0 || ref->pos > r->size || ref->len > r->size - ref->pos)
    return NULL;
  r->refs++;
  *out = r;
  return r->base + ref->pos;
}

unsigned brk_regions_count(const struct brk_client *c)
{
  unsigned n = 0;

  for (uint32_t i = 0; i < c->nregions; i++)
    n += c->regions[i] != NULL;
  return n;
}
