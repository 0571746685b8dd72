// emu_check.h: what every tests/apps/emu_*.cu program shares.
//
// The emu_* programs are plain CUDA (nvcc -cudart shared, default flags) that
// check their own results against a CPU reference.  They run natively on an
// NVIDIA GPU (tests/gpu/native_apps.sh) and under libtremote_shim.so on the
// emulated device (tests/integration/emu_apps.sh).  Conventions:
//   - every CUDA call goes through CK(); a failing call prints the call,
//     file:line and the error's name and text, and the program exits 2;
//   - a kernel launch is followed by CK_LAUNCH() (cudaGetLastError);
//   - result checks count mismatches with an EmuCheck, which prints the first
//     few (index, got, expected);
//   - the last line on stdout is "PASS <name>" (exit 0), or the program
//     prints "FAIL <name>: ..." and exits 1.
#ifndef EMU_CHECK_H
#define EMU_CHECK_H

#include <cuda_runtime.h>

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CK(call)                                                               \
  do {                                                                         \
    cudaError_t ck_e_ = (call);                                                \
    if (ck_e_ != cudaSuccess) {                                                \
      fflush(stdout);                                                          \
      fprintf(stderr, "CUDA call failed: %s\n  at %s:%d: %s: %s\n", #call,     \
              __FILE__, __LINE__, cudaGetErrorName(ck_e_),                     \
              cudaGetErrorString(ck_e_));                                      \
      exit(2);                                                                 \
    }                                                                          \
  } while (0)

// After a <<<...>>> launch: the launch itself must have been accepted.
#define CK_LAUNCH() CK(cudaGetLastError())

// Deterministic pseudo-random numbers, the same on the host and the device.
static inline __host__ __device__ uint32_t emu_hash(uint32_t x)
{
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

static inline void emu_fmt(char *b, size_t n, int v) { snprintf(b, n, "%d", v); }
static inline void emu_fmt(char *b, size_t n, unsigned v) { snprintf(b, n, "%u (0x%x)", v, v); }
static inline void emu_fmt(char *b, size_t n, long long v) { snprintf(b, n, "%lld", v); }
static inline void emu_fmt(char *b, size_t n, unsigned long long v)
{
  snprintf(b, n, "%llu (0x%llx)", v, v);
}
static inline void emu_fmt(char *b, size_t n, float v)
{
  uint32_t u;
  memcpy(&u, &v, 4);
  snprintf(b, n, "%.9g (0x%08x)", v, u);
}
static inline void emu_fmt(char *b, size_t n, double v)
{
  uint64_t u;
  memcpy(&u, &v, 8);
  snprintf(b, n, "%.17g (0x%016" PRIx64 ")", v, u);
}

// Counts mismatches; prints the first `show` of them.
struct EmuCheck {
  const char *name;
  long long bad;
  int show;
  explicit EmuCheck(const char *n, int s = 8) : name(n), bad(0), show(s) {}

  template <typename T>
  bool eq(const char *what, long long idx, T got, T want)
  {
    if (got == want)
      return true;
    if (bad++ < show) {
      char g[96], w[96];
      emu_fmt(g, sizeof g, got);
      emu_fmt(w, sizeof w, want);
      printf("mismatch %s[%lld]: got %s, expected %s\n", what, idx, g, w);
    }
    return false;
  }

  // Bitwise equality of floating-point values (so -0 != +0, NaN == same NaN).
  template <typename T>
  bool same_bits(const char *what, long long idx, T got, T want)
  {
    if (memcmp(&got, &want, sizeof(T)) == 0)
      return true;
    if (bad++ < show) {
      char g[96], w[96];
      emu_fmt(g, sizeof g, got);
      emu_fmt(w, sizeof w, want);
      printf("mismatch %s[%lld]: got %s, expected %s\n", what, idx, g, w);
    }
    return false;
  }

  bool near(const char *what, long long idx, double got, double want, double tol)
  {
    double d = got - want;
    if (d < 0)
      d = -d;
    if (d <= tol)
      return true;
    if (bad++ < show)
      printf("mismatch %s[%lld]: got %.9g, expected %.9g (|diff| %.3g > tol %.3g)\n",
             what, idx, got, want, d, tol);
    return false;
  }

  // A failed condition that is not an element comparison.
  bool expect(bool cond, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

  // Prints the verdict; returns the exit status.
  int finish()
  {
    fflush(stdout);
    if (bad == 0) {
      printf("PASS %s\n", name);
      fflush(stdout);
      return 0;
    }
    printf("FAIL %s: %lld mismatches\n", name, bad);
    fflush(stdout);
    return 1;
  }
};

#include <stdarg.h>
inline bool EmuCheck::expect(bool cond, const char *fmt, ...)
{
  if (cond)
    return true;
  bad++;
  va_list ap;
  va_start(ap, fmt);
  printf("check failed: ");
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
  return false;
}

#endif
