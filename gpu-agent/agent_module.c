/*
 * agent_module.c: the module cache and chunked uploads (agent_module.h).
 *
 * Programs register a handful of fatbins, so the cache is a list searched
 * linearly under one mutex; loads happen at program start, not per call.
 * With a directory (--cache-dir) every verified module is also kept on
 * disk, so an agent that restarts still has it; memory and disk are both
 * held under --cache-max, least recently used out first.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "agent.h"
#include "agent_module.h"

struct agt_modcache {
  pthread_mutex_t mu;
  struct agt_module *head;
  size_t count;
  uint64_t bytes;   /* images held in memory */
  uint64_t clock;   /* ticks on every use: least recently used goes first */
  char *dir;        /* on-disk copies, or NULL */
  uint64_t max;     /* bytes, in memory and on disk; 0 = no limit */
};

void agt_module_hash(const void *bytes, size_t len, uint8_t out[AGT_HASH_LEN])
{
  XXH128_canonical_t canon;

  XXH128_canonicalFromHash(&canon, XXH3_128bits(bytes, len));
  memcpy(out, canon.digest, AGT_HASH_LEN);
}

int agt_modcache_new(const char *dir, uint64_t max, struct agt_modcache **out)
{
  struct agt_modcache *c = calloc(1, sizeof(*c));

  if (!c)
    return -ENOMEM;
  if (dir) {
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
      int e = -errno;

      free(c);
      return e;
    }
    c->dir = strdup(dir);
    if (!c->dir) {
      free(c);
      return -ENOMEM;
    }
  }
  c->max = max;
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
  free(c->dir);
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

/* ---- on disk ------------------------------------------------------------- */

/*
 * One file per module, named by its hash in hex, written whole and
 * renamed into place; a file's modification time is its last use (the
 * eviction order, across agent restarts too).  Reading one checks its
 * hash, so a damaged or foreign file is a miss (and removed), never a
 * wrong module.  The files are only a cache: every failure here is a miss
 * or a skipped write, logged, never an error for the program.
 */
static void hex_name(const struct agt_modcache *c, const uint8_t h[AGT_HASH_LEN],
                     char *out, size_t cap)
{
  int n = snprintf(out, cap, "%s/", c->dir);

  for (int i = 0; i < AGT_HASH_LEN && n + 2 < (int)cap; i++, n += 2)
    snprintf(out + n, cap - (size_t)n, "%02x", h[i]);
}

/* The image of hash from disk (malloc'd), or NULL. */
static uint8_t *disk_read(struct agt_modcache *c,
                          const uint8_t hash[AGT_HASH_LEN], size_t *len)
{
  char path[PATH_MAX];
  uint8_t got[AGT_HASH_LEN], *img;
  struct stat st;
  int fd;

  hex_name(c, hash, path, sizeof(path));
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return NULL;
  if (fstat(fd, &st) < 0 || st.st_size <= 0 ||
      (uint64_t)st.st_size > AGT_MODULE_MAX ||
      !(img = malloc((size_t)st.st_size))) {
    close(fd);
    return NULL;
  }
  for (size_t off = 0; off < (size_t)st.st_size;) {
    ssize_t r = read(fd, img + off, (size_t)st.st_size - off);

    if (r <= 0) {
      close(fd);
      free(img);
      return NULL;
    }
    off += (size_t)r;
  }
  close(fd);
  agt_module_hash(img, (size_t)st.st_size, got);
  if (memcmp(got, hash, AGT_HASH_LEN) != 0) {
    agt_warn("module cache: %s does not hold what its name says; removed",
             path);
    unlink(path);
    free(img);
    return NULL;
  }
  (void)utimensat(AT_FDCWD, path, NULL, 0); /* used now */
  *len = (size_t)st.st_size;
  return img;
}

struct disk_entry {
  char name[2 * AGT_HASH_LEN + 1];
  time_t mtime;
  uint64_t size;
};

static int by_age(const void *a, const void *b)
{
  const struct disk_entry *x = a, *y = b;

  return x->mtime < y->mtime ? -1 : x->mtime > y->mtime;
}

/* Remove the least recently used files until the rest fit in c->max,
   never keep (the file just written). */
static void disk_trim(struct agt_modcache *c, const char *keep)
{
  struct disk_entry *e = NULL;
  size_t n = 0, cap = 0;
  uint64_t total = 0;
  struct dirent *d;
  DIR *dir;

  if (!c->max || !(dir = opendir(c->dir)))
    return;
  while ((d = readdir(dir)) != NULL) {
    char path[PATH_MAX];
    struct stat st;

    if (strlen(d->d_name) != 2 * AGT_HASH_LEN ||
        strspn(d->d_name, "0123456789abcdef") != 2 * AGT_HASH_LEN)
      continue; /* not ours (or a temporary file) */
    snprintf(path, sizeof(path), "%s/%s", c->dir, d->d_name);
    if (stat(path, &st) < 0)
      continue;
    if (n == cap) {
      struct disk_entry *ne = realloc(e, (cap ? 2 * cap : 64) * sizeof(*e));

      if (!ne)
        break;
      e = ne;
      cap = cap ? 2 * cap : 64;
    }
    memcpy(e[n].name, d->d_name, sizeof(e[n].name));
    e[n].mtime = st.st_mtime;
    e[n].size = (uint64_t)st.st_size;
    total += e[n++].size;
  }
  closedir(dir);
  if (total > c->max) {
    qsort(e, n, sizeof(*e), by_age);
    for (size_t i = 0; i < n && total > c->max; i++) {
      char path[PATH_MAX];

      if (strcmp(e[i].name, keep) == 0)
        continue;
      snprintf(path, sizeof(path), "%s/%s", c->dir, e[i].name);
      if (unlink(path) == 0) {
        total -= e[i].size;
        agt_debug("module cache: evicted %s from disk", e[i].name);
      }
    }
  }
  free(e);
}

static void disk_write(struct agt_modcache *c, const uint8_t hash[AGT_HASH_LEN],
                       const uint8_t *img, size_t len)
{
  char path[PATH_MAX], tmp[PATH_MAX + 8];
  size_t off = 0;
  int fd;

  hex_name(c, hash, path, sizeof(path));
  snprintf(tmp, sizeof(tmp), "%s.tmp", path);
  fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    agt_warn("module cache: %s: %s", tmp, strerror(errno));
    return;
  }
  while (off < len) {
    ssize_t w = write(fd, img + off, len - off);

    if (w <= 0)
      break;
    off += (size_t)w;
  }
  if (close(fd) != 0 || off != len || rename(tmp, path) < 0) {
    agt_warn("module cache: cannot keep %s on disk: %s", path,
             strerror(errno ? errno : EIO));
    unlink(tmp);
    return;
  }
  disk_trim(c, path + strlen(c->dir) + 1);
}

/* ---- in memory ------------------------------------------------------------ */

/* Drop unreferenced entries, least recently used first, until the images
   fit in c->max (c->mu held).  Entries a session uses stay. */
static void mem_trim(struct agt_modcache *c)
{
  while (c->max && c->bytes > c->max) {
    struct agt_module **pp, **victim = NULL;

    for (pp = &c->head; *pp; pp = &(*pp)->next)
      if ((*pp)->refs == 1 && (!victim || (*pp)->used < (*victim)->used))
        victim = pp;
    if (!victim)
      return;
    {
      struct agt_module *m = *victim;

      *victim = m->next;
      c->bytes -= m->len;
      c->count--;
      module_free(m);
    }
  }
}

/* Put image in the list (c->mu held; takes image).  NULL without memory. */
static struct agt_module *insert(struct agt_modcache *c,
                                 const uint8_t hash[AGT_HASH_LEN],
                                 uint8_t *image, size_t len)
{
  struct agt_module *m = calloc(1, sizeof(*m));

  if (!m) {
    free(image);
    return NULL;
  }
  memcpy(m->hash, hash, AGT_HASH_LEN);
  m->image = image;
  m->len = len;
  m->refs = 1; /* the cache's own */
  m->cache = c;
  m->used = ++c->clock;
  m->next = c->head;
  c->head = m;
  c->count++;
  c->bytes += len;
  return m;
}

struct agt_module *agt_modcache_get(struct agt_modcache *c,
                                    const uint8_t hash[AGT_HASH_LEN])
{
  struct agt_module *m;
  uint8_t *img;
  size_t len = 0;

  pthread_mutex_lock(&c->mu);
  m = find(c, hash);
  if (m) {
    m->refs++;
    m->used = ++c->clock;
  }
  pthread_mutex_unlock(&c->mu);
  if (m || !c->dir)
    return m;
  /* Read outside the lock: another thread may add it meanwhile. */
  img = disk_read(c, hash, &len);
  if (!img)
    return NULL;
  pthread_mutex_lock(&c->mu);
  m = find(c, hash);
  if (m)
    free(img);
  else
    m = insert(c, hash, img, len);
  if (m) {
    m->refs++;
    m->used = ++c->clock;
    mem_trim(c);
  }
  pthread_mutex_unlock(&c->mu);
  if (m)
    agt_debug("module cache: %zu bytes read from disk", m->len);
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
  m = insert(c, hash, image, len);
  if (!m) {
    pthread_mutex_unlock(&c->mu);
    return -ENOMEM;
  }
  m->refs++; /* held while written out, below */
  n = c->count;
  pthread_mutex_unlock(&c->mu);
  agt_debug("module cache: added %zu bytes, %zu modules", len, n);
  if (c->dir)
    disk_write(c, hash, m->image, m->len);
  pthread_mutex_lock(&c->mu);
  m->refs--;
  mem_trim(c);
  pthread_mutex_unlock(&c->mu);
  return 0;
}

void agt_module_put(struct agt_module *m)
{
  struct agt_modcache *c = m->cache;

  /* The cache's own reference keeps the count above zero while the
     entry is listed; this only balances agt_modcache_get.  A cache over
     its size may drop the entry now that nobody uses it. */
  pthread_mutex_lock(&c->mu);
  m->refs--;
  mem_trim(c);
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
