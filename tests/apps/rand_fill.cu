// rand_fill.cu: random numbers per device (libtremote over the shim's
// entry table), compared bit for bit with a host reference written here
// from the documented layout (tools/common/philox.h) -- its own Philox,
// not the agent's code:
//   - manual_seed_all, a uniform fill of 1000003 floats, then a normal fill
//     that continues from the advanced offset;
//   - get_rng_state / set_rng_state replay the same numbers;
//   - manual_seed on device 1 only: its numbers follow that seed, device 0's
//     do not change;
//   - a bad distribution is refused; a fill past an allocation fails at the
//     next synchronisation with cudaErrorInvalidValue.
// Needs two devices.  Prints PASS.
#include <cuda_runtime.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app_check.h"
#include "tremote/tremote.h"

static void philox(const unsigned c_in[4], const unsigned k_in[2],
                   unsigned out[4])
{
  unsigned c[4] = {c_in[0], c_in[1], c_in[2], c_in[3]};
  unsigned k[2] = {k_in[0], k_in[1]};

  for (int r = 0; r < 10; r++) {
    unsigned long long a = 0xD2511F53ull * c[0], b = 0xCD9E8D57ull * c[2];
    unsigned n[4] = {(unsigned)(b >> 32) ^ c[1] ^ k[0], (unsigned)b,
                     (unsigned)(a >> 32) ^ c[3] ^ k[1], (unsigned)a};

    memcpy(c, n, sizeof(c));
    k[0] += 0x9E3779B9u;
    k[1] += 0xBB67AE85u;
  }
  memcpy(out, c, sizeof(c));
}

// Value i of a fill with (seed, offset).
static float ref(unsigned long long seed, unsigned long long offset,
                 int normal, unsigned long long i)
{
  unsigned long long blk = offset + i / 4;
  unsigned c[4] = {(unsigned)blk, (unsigned)(blk >> 32), 0, 0};
  unsigned k[2] = {(unsigned)seed, (unsigned)(seed >> 32)}, w[4];
  unsigned j = (unsigned)(i % 4);

  philox(c, k, w);
  if (!normal)
    return (float)(w[j] >> 8) * (1.0f / 16777216.0f);
  {
    unsigned p = j & ~1u;
    double u1 = ((double)(w[p] >> 8) + 1.0) / 16777216.0;
    double u2 = (double)(w[p + 1] >> 8) / 16777216.0;
    double r = sqrt(-2.0 * log(u1));
    double th = 6.283185307179586476925286766559 * u2;

    return (float)(j & 1 ? r * sin(th) : r * cos(th));
  }
}

static void check(const float *got, size_t n, unsigned long long seed,
                  unsigned long long offset, int normal, const char *what)
{
  for (size_t i = 0; i < n; i++) {
    float want = ref(seed, offset, normal, i);

    EXPECT(memcmp(&got[i], &want, 4) == 0, "%s: value %zu is %.9g, want %.9g",
           what, i, got[i], want);
  }
}

int main()
{
  const size_t n = 1000003;
  float *d, *d1, *h = (float *)malloc(n * 4), *h2 = (float *)malloc(n * 4);
  unsigned char st[TREMOTE_RNG_STATE_SIZE];
  unsigned long long off;
  double sum = 0, sq = 0;
  int count = 0;

  CK(cudaGetDeviceCount(&count));
  EXPECT(count >= 2, "need two devices, have %d", count);
  EXPECT(h && h2, "out of memory");
  CK(cudaSetDevice(0));
  CK(cudaMalloc(&d, n * 4));

  EXPECT(tremote_manual_seed_all(1234) == 0, "seed: %s", tremote_last_error());
  EXPECT(tremote_rand_fill(d, n, TREMOTE_RAND_UNIFORM) == 0, "fill: %s",
         tremote_last_error());
  CK(cudaMemcpy(h, d, n * 4, cudaMemcpyDeviceToHost));
  check(h, n, 1234, 0, 0, "uniform");
  for (size_t i = 0; i < n; i++)
    EXPECT(h[i] >= 0.0f && h[i] < 1.0f, "uniform value %zu: %g", i, h[i]);
  printf("uniform: %zu values as the host computes them\n", n);

  off = (n + 3) / 4;
  EXPECT(tremote_rand_fill(d, n, TREMOTE_RAND_NORMAL) == 0, "fill: %s",
         tremote_last_error());
  CK(cudaMemcpy(h, d, n * 4, cudaMemcpyDeviceToHost));
  check(h, n, 1234, off, 1, "normal");
  for (size_t i = 0; i < n; i++)
    sum += h[i], sq += (double)h[i] * h[i];
  EXPECT(fabs(sum / n) < 0.01 && fabs(sq / n - 1.0) < 0.01,
         "normal: mean %g, variance %g", sum / n, sq / n);
  printf("normal: the same, mean %.4f, variance %.4f\n", sum / n, sq / n);

  // A saved state replays.
  EXPECT(tremote_get_rng_state(st) == 0, "get: %s", tremote_last_error());
  EXPECT(tremote_rand_fill(d, n, TREMOTE_RAND_UNIFORM) == 0, "fill");
  CK(cudaMemcpy(h, d, n * 4, cudaMemcpyDeviceToHost));
  EXPECT(tremote_set_rng_state(st) == 0, "set: %s", tremote_last_error());
  EXPECT(tremote_rand_fill(d, n, TREMOTE_RAND_UNIFORM) == 0, "fill");
  CK(cudaMemcpy(h2, d, n * 4, cudaMemcpyDeviceToHost));
  EXPECT(memcmp(h, h2, n * 4) == 0, "a restored state gave other numbers");
  check(h, n, 1234, 2 * off, 0, "after the state");
  printf("get/set_rng_state: the same numbers again\n");

  // Device 1 alone.
  CK(cudaSetDevice(1));
  CK(cudaMalloc(&d1, n * 4));
  EXPECT(tremote_manual_seed(99) == 0, "seed: %s", tremote_last_error());
  EXPECT(tremote_rand_fill(d1, 1000, TREMOTE_RAND_UNIFORM) == 0, "fill");
  CK(cudaMemcpy(h, d1, 1000 * 4, cudaMemcpyDeviceToHost));
  check(h, 1000, 99, 0, 0, "device 1");
  CK(cudaSetDevice(0));
  EXPECT(tremote_rand_fill(d, 1000, TREMOTE_RAND_UNIFORM) == 0, "fill");
  CK(cudaMemcpy(h, d, 1000 * 4, cudaMemcpyDeviceToHost));
  check(h, 1000, 1234, 3 * off, 0, "device 0 after device 1's seed");
  printf("manual_seed on one device leaves the other's alone\n");

  EXPECT(tremote_rand_fill(d, 10, (tremote_rand_dist)7) == -1 &&
             strstr(tremote_last_error(), "unknown distribution 7"),
         "a bad distribution: %s", tremote_last_error());
  EXPECT(tremote_rand_fill(d, n + 1, TREMOTE_RAND_UNIFORM) == 0,
         "queued: %s", tremote_last_error());
  EXPECT(cudaDeviceSynchronize() == cudaErrorInvalidValue,
         "a fill past the allocation did not fail at the synchronisation");
  printf("bad distribution and range refused\n");
  CK(cudaFree(d));
  CK(cudaSetDevice(1));
  CK(cudaFree(d1));
  free(h);
  free(h2);
  printf("PASS\n");
  return 0;
}
