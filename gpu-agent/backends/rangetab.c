/*
 * rangetab.c: a window's allocations, sorted by address (rangetab.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rangetab.h"
#include "tremote/proto.h"

/* Index of the first range starting above a. */
static size_t upper(const struct agt_rtab *t, uint64_t a)
{
  size_t lo = 0, hi = t->n;

  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;

    if (t->tab[mid]->addr <= a)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

struct agt_range *agt_rt_containing(const struct agt_rtab *t, uint64_t a)
{
  size_t i = upper(t, a);
  struct agt_range *r;

  if (i == 0)
    return NULL;
  r = t->tab[i - 1];
  return a - r->addr < r->len ? r : NULL;
}

int agt_rt_insert(struct agt_rtab *t, struct agt_range *r)
{
  size_t i;

  if (t->n == t->cap) {
    size_t ncap = t->cap ? t->cap * 2 : 64;
    struct agt_range **nt = realloc(t->tab, ncap * sizeof(*nt));

    if (!nt)
      return -ENOMEM;
    t->tab = nt;
    t->cap = ncap;
  }
  i = upper(t, r->addr);
  memmove(&t->tab[i + 1], &t->tab[i], (t->n - i) * sizeof(*t->tab));
  t->tab[i] = r;
  t->n++;
  return 0;
}

void agt_rt_remove(struct agt_rtab *t, struct agt_range *r)
{
  /* r is present, so it is the entry just before the upper bound. */
  size_t i = upper(t, r->addr) - 1;

  memmove(&t->tab[i], &t->tab[i + 1], (t->n - i - 1) * sizeof(*t->tab));
  t->n--;
}

uint64_t agt_rt_gap(const struct agt_rtab *t, uint64_t from, uint64_t end,
                    uint64_t len)
{
  uint64_t cand = from;
  size_t i = upper(t, cand);

  if (i > 0) {
    const struct agt_range *prev = t->tab[i - 1];

    if (prev->addr + prev->len > cand)
      cand = prev->addr + prev->len;
  }
  for (; i < t->n && t->tab[i]->addr < cand + len; i++)
    cand = t->tab[i]->addr + t->tab[i]->len;
  if (cand > end || end - cand < len)
    return 0;
  return cand;
}

void agt_rt_release(struct agt_rtab *t)
{
  free(t->tab);
  t->tab = NULL;
  t->n = t->cap = 0;
}

/* ---- windows ------------------------------------------------------------ */

int agt_win_check(uint64_t base, uint64_t size, const char **why)
{
  if (base < (1ull << 20) || base > AGT_USER_TOP ||
      size > AGT_USER_TOP - base) {
    *why = "address window lies outside user address space";
    return -EINVAL;
  }
#if defined(__SANITIZE_THREAD__)
  if (base < TR_VA_BUILD_BASE ||
      base + size > TR_VA_BUILD_BASE + TR_VA_WINDOW) {
    *why = "this agent is a ThreadSanitizer build: address windows must lie "
           "in [0x7e8000000000, 0x7f0000000000)";
    return -EINVAL;
  }
#endif
  return 0;
}

int agt_win_find(struct agt_window *head, uint64_t base, uint64_t size,
                 struct agt_window **w, const char **why)
{
  for (*w = head; *w; *w = (*w)->next) {
    if ((*w)->base == base && (*w)->size == size) {
      (*w)->refs++;
      return 0;
    }
    if (base < (*w)->base + (*w)->size && (*w)->base < base + size) {
      *w = NULL;
      *why = "address window overlaps another session's different window";
      return -EEXIST;
    }
  }
  return 0;
}

void agt_win_add(struct agt_window **head, struct agt_window *w,
                 uint64_t base, uint64_t size)
{
  w->base = base;
  w->size = size;
  w->refs = 1;
  w->next = *head;
  *head = w;
}

int agt_win_put(struct agt_window **head, struct agt_window *w)
{
  struct agt_window **pp;

  if (--w->refs > 0)
    return 0;
  for (pp = head; *pp != w; pp = &(*pp)->next)
    ;
  *pp = w->next;
  return 1;
}
