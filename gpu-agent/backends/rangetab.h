/*
 * rangetab.h: the allocations of one address window, sorted by address,
 * for the backends that place device memory themselves (emu, cuda).
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

#endif /* AGT_RANGETAB_H */
