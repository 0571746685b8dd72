/*
 * rangetab.h: the allocations of one address window, sorted by address,
 * for the backends that place device memory themselves (emu, cuda).
 *
 * The windows themselves are listed too: sessions of one machine share its
 * window, so a backend keeps one record per window (its first member a
 * struct agt_window) with a count of the contexts on it.
 *
 * A backend's allocation record starts with a struct agt_range: where it
 * is placed and how many bytes no other allocation may overlap (emu: the
 * mapped pages; cuda: the mapping and its guard).  The table holds
 * pointers to those records; lookups are binary searches, so a pointer is
 * checked in O(log n).  The caller locks.
 */
#ifndef AGT_RANGETAB_H
#define AGT_RANGETAB_H

#include <stddef.h>
#include <stdint.h>

struct agt_range {
  uint64_t addr;
  uint64_t len;
};

struct agt_rtab {
  struct agt_range **tab;
  size_t n, cap;
};

/* The range that contains a, or NULL. */
struct agt_range *agt_rt_containing(const struct agt_rtab *t, uint64_t a);

/* Add r (not overlapping any other).  0, or -ENOMEM. */
int agt_rt_insert(struct agt_rtab *t, struct agt_range *r);

/* Take r, which is in t, out. */
void agt_rt_remove(struct agt_rtab *t, struct agt_range *r);

/* The first address at or after from where len bytes fit before end
   between the ranges, or 0 (0 is never inside a window). */
uint64_t agt_rt_gap(const struct agt_rtab *t, uint64_t from, uint64_t end,
                    uint64_t len);

/* Free the table's array (not the ranges). */
void agt_rt_release(struct agt_rtab *t);

/* ---- windows ------------------------------------------------------------ */

/* The first member of a backend's window record. */
struct agt_window {
  struct agt_window *next;
  uint64_t base, size;
  unsigned refs; /* contexts on it */
};

/* The highest user-space address on x86-64 and arm64, plus one. */
#define AGT_USER_TOP (1ull << 47)

/*
 * The checks of a window every backend makes beyond its own alignment:
 * inside user space, and in a ThreadSanitizer build inside TSan's
 * application range (it kills the process on a mapping elsewhere; a
 * refusal is better).  0, or -EINVAL with *why.
 */
int agt_win_check(uint64_t base, uint64_t size, const char **why);

/*
 * The listed window that is exactly [base, base + size), with a reference
 * taken, into *w; *w is NULL when none is.  -EEXIST with *why when a
 * listed window overlaps it without being it.
 */
int agt_win_find(struct agt_window *head, uint64_t base, uint64_t size,
                 struct agt_window **w, const char **why);

/* List w as [base, base + size) with one reference. */
void agt_win_add(struct agt_window **head, struct agt_window *w,
                 uint64_t base, uint64_t size);

/* Drop a reference to w; on the last, unlist it and return 1. */
int agt_win_put(struct agt_window **head, struct agt_window *w);

#endif /* AGT_RANGETAB_H */
