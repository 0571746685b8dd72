/*
 * philox.h: Philox4x32-10 (Salmon et al., "Parallel random numbers: as
 * easy as 1, 2, 3", SC'11; the generator of Random123 and cuRAND), and the
 * layout tremote gives its output.  The agent fills device memory with it
 * (RAND_FILL); the tests compute the same bytes on the host.
 *
 * A device's generator state is (seed, offset): key = the seed's low and
 * high 32 bits; block i of a fill is the Philox output for counter
 * (offset + i) as (low 32, high 32, 0, 0); a fill of n values uses
 * ceil(n / 4) blocks and advances offset by that many.
 *
 *   uniform float: each 32-bit word w gives (w >> 8) * 2^-24, in [0, 1)
 *   normal float:  words (w0, w1) and (w2, w3) of a block each give two by
 *                  Box-Muller in double precision, rounded to float:
 *                  u1 = ((w0 >> 8) + 1) * 2^-24 (never 0),
 *                  u2 = (w1 >> 8) * 2^-24,
 *                  r = sqrt(-2 ln u1): r cos(2 pi u2), r sin(2 pi u2)
 *
 * Values past n in the last block are computed and dropped.
 */
#ifndef TR_PHILOX_H
#define TR_PHILOX_H

#include <stddef.h>
#include <stdint.h>

/* One Philox4x32-10 block: out = f(counter, key). */
void tr_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2],
                      uint32_t out[4]);

enum tr_rand_dist { TR_RAND_UNIFORM = 0, TR_RAND_NORMAL = 1 };

/* Blocks a fill of n values uses. */
static inline uint64_t tr_rand_blocks(uint64_t n)
{
  return (n + 3) / 4;
}

/*
 * Values first .. first+n-1 (float) of a fill with (seed, offset) into
 * out: value v comes from block offset + v / 4.  first must be a multiple
 * of 4 (fills are cut on block boundaries).
 */
void tr_rand_floats(uint64_t seed, uint64_t offset, int dist, uint64_t first,
                    float *out, size_t n);

#endif /* TR_PHILOX_H */
