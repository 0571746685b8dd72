/* philox.c: Philox4x32-10 and tremote's float layout (philox.h). */
#include <math.h>

#include "philox.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u /* golden ratio */
#define PHILOX_W1 0xBB67AE85u /* sqrt(3) - 1 */

void tr_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2],
                      uint32_t out[4])
{
  uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
  uint32_t k0 = key[0], k1 = key[1];

  for (int r = 0; r < 10; r++) {
    uint64_t p0 = (uint64_t)PHILOX_M0 * c0, p1 = (uint64_t)PHILOX_M1 * c2;
    uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
    uint32_t n1 = (uint32_t)p1;
    uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
    uint32_t n3 = (uint32_t)p0;

    c0 = n0, c1 = n1, c2 = n2, c3 = n3;
    k0 += PHILOX_W0;
    k1 += PHILOX_W1;
  }
  out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

void tr_rand_floats(uint64_t seed, uint64_t offset, int dist, uint64_t first,
                    float *out, size_t n)
{
  const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
  const double two_pi = 6.283185307179586476925286766559;
  size_t done = 0;

  for (uint64_t b = offset + first / 4; done < n; b++) {
    const uint32_t ctr[4] = {(uint32_t)b, (uint32_t)(b >> 32), 0, 0};
    uint32_t w[4];
    float v[4];

    tr_philox4x32_10(ctr, key, w);
    if (dist == TR_RAND_NORMAL) {
      for (int k = 0; k < 4; k += 2) {
        double u1 = ((double)(w[k] >> 8) + 1.0) * (1.0 / 16777216.0);
        double u2 = (double)(w[k + 1] >> 8) * (1.0 / 16777216.0);
        double r = sqrt(-2.0 * log(u1));

        v[k] = (float)(r * cos(two_pi * u2));
        v[k + 1] = (float)(r * sin(two_pi * u2));
      }
    } else {
      for (int k = 0; k < 4; k++)
        v[k] = (float)(w[k] >> 8) * (1.0f / 16777216.0f);
    }
    for (int k = 0; k < 4 && done < n; k++)
      out[done++] = v[k];
  }
}
