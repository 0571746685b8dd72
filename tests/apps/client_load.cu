// client_load.cu: one client program's share of a many-clients test
// (issue 6: many programs through one broker and one machine).
//
//   client_load check SECONDS   repeat a checked round until SECONDS pass;
//                               print "ok ROUNDS (first call after MS ms)"
//   client_load work ROUNDS     ROUNDS checked rounds; print "done ROUNDS
//                               in MS ms (first call after MS ms)"
//                               (the seconds and MS count from the first
//                               call's answer: the session's start apart)
//   With TR_LOAD_BARRIER=DIR, check and work start their rounds together:
//   after the first call each makes DIR/ready.PID and waits for DIR/go
//   (made by the script once all are ready), so programs whose sessions
//   start one after another (a GPU's contexts) still compete evenly.
//   client_load latency N       N small calls (a 4-byte device-to-host
//                               cudaMemcpy: one round trip), then N times
//                               20 us of CPU work, then N pipe round trips
//                               to a child process; print "p50 US p99 US
//                               cpu_p99 US ipc_p99 US max US" (max: the
//                               slowest small call)
//   client_load bulk MIB        copy MIB host->device and back in 64 MiB
//                               pieces (page-locked), checking the last
//                               piece; print "bulk MIB MiB in MS ms"
//   client_load sync SECONDS    after one cudaMalloc, nothing but
//                               cudaDeviceSynchronize until SECONDS pass,
//                               each checked; print "ok SYNCS"
//
// A checked round: 1 MiB from the host (a pattern of this process's pid
// and the round), a kernel that turns every word x into 3x + round, and
// the 1 MiB back, compared word for word.  Any mismatch or CUDA error
// exits non-zero with a FAIL line.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "app_check.h"

#define WORDS (256u * 1024u) /* 1 MiB of unsigned */

__global__ void transform(unsigned *p, unsigned n, unsigned k)
{
  for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += gridDim.x * blockDim.x)
    p[i] = p[i] * 3u + k;
}

static double now_ms()
{
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/* TR_LOAD_BARRIER (see the top): 0, or exit 1 after 120 s without go. */
static void barrier()
{
  const char *dir = getenv("TR_LOAD_BARRIER");
  char path[4096];
  struct stat sb;
  FILE *f;

  if (!dir)
    return;
  snprintf(path, sizeof(path), "%s/ready.%d", dir, (int)getpid());
  f = fopen(path, "w");
  if (!f) {
    fprintf(stderr, "FAIL: cannot make %s\n", path);
    exit(1);
  }
  fclose(f);
  snprintf(path, sizeof(path), "%s/go", dir);
  for (int i = 0; i < 120000 && stat(path, &sb) != 0; i++)
    usleep(1000);
  if (stat(path, &sb) != 0) {
    fprintf(stderr, "FAIL: no %s after 120 s\n", path);
    exit(1);
  }
}

static void round_trip(unsigned *d, unsigned *h, unsigned *back,
                       unsigned round)
{
  unsigned seed = (unsigned)getpid() * 2654435761u + round;

  for (unsigned i = 0; i < WORDS; i++)
    h[i] = seed ^ (i * 40503u);
  CK(cudaMemcpy(d, h, WORDS * 4, cudaMemcpyHostToDevice));
  transform<<<64, 256>>>(d, WORDS, round);
  CK(cudaGetLastError());
  CK(cudaMemcpy(back, d, WORDS * 4, cudaMemcpyDeviceToHost));
  for (unsigned i = 0; i < WORDS; i++)
    if (back[i] != h[i] * 3u + round) {
      fprintf(stderr, "FAIL round %u word %u: %u, want %u\n", round, i,
              back[i], h[i] * 3u + round);
      exit(1);
    }
}

int main(int argc, char **argv)
{
  const char *mode = argc > 1 ? argv[1] : "";
  long arg = argc > 2 ? atol(argv[2]) : 0;

  if (arg <= 0) {
    fprintf(stderr, "usage: client_load check SECONDS | work ROUNDS | "
                    "latency N | bulk MIB | sync SECONDS\n");
    return 2;
  }
  if (!strcmp(mode, "check") || !strcmp(mode, "work")) {
    std::vector<unsigned> h(WORDS), back(WORDS);
    unsigned *d;
    double t_start = now_ms(), t0;
    unsigned rounds = 0;

    /* The time is counted from the first call's answer: the session's
       start (on a GPU, a worker and its CUDA context; many at once queue
       in the driver) is printed apart, not counted as work. */
    CK(cudaMalloc(&d, WORDS * 4));
    t0 = now_ms();
    barrier();
    double t_go = now_ms();
    if (!strcmp(mode, "check")) {
      while (now_ms() - t_go < arg * 1000.0)
        round_trip(d, h.data(), back.data(), rounds++);
      printf("ok %u (first call after %.0f ms)\n", rounds, t0 - t_start);
    } else {
      for (; rounds < (unsigned)arg; rounds++)
        round_trip(d, h.data(), back.data(), rounds);
      printf("done %u in %.0f ms (first call after %.0f ms)\n", rounds,
             now_ms() - t_go, t0 - t_start);
    }
    CK(cudaFree(d));
    return 0;
  }
  if (!strcmp(mode, "sync")) {
    unsigned *d;
    long n = 0;
    double t0;

    CK(cudaMalloc(&d, 4));
    t0 = now_ms();
    for (; now_ms() - t0 < arg * 1000.0; n++)
      CK(cudaDeviceSynchronize());
    printf("ok %ld\n", n);
    return 0;
  }
  if (!strcmp(mode, "latency")) {
    std::vector<double> t((size_t)arg);
    unsigned *d, v = 0;

    CK(cudaMalloc(&d, 4));
    CK(cudaMemset(d, 0, 4));
    for (int i = 0; i < 50; i++) /* warm */
      CK(cudaMemcpy(&v, d, 4, cudaMemcpyDeviceToHost));
    for (long i = 0; i < arg; i++) {
      double a = now_ms();

      CK(cudaMemcpy(&v, d, 4, cudaMemcpyDeviceToHost));
      t[(size_t)i] = (now_ms() - a) * 1000.0;
    }
    std::sort(t.begin(), t.end());
    printf("p50 %.1f p99 %.1f", t[t.size() / 2], t[t.size() * 99 / 100]);
    double worst = t.back();
    /* And 20 us of CPU work, timed the same way: how long this program
       waits for a core, which bounds what any remoting can do. */
    for (long i = 0; i < arg; i++) {
      double a = now_ms();

      while ((now_ms() - a) * 1000.0 < 20.0)
        ;
      t[(size_t)i] = (now_ms() - a) * 1000.0;
    }
    std::sort(t.begin(), t.end());
    printf(" cpu_p99 %.1f", t[t.size() * 99 / 100]);
    /* And a pipe round trip to a process of our own: the wake-ups any
       call through another process pays (here, where cores may be few). */
    {
      int ping[2], pong[2];
      char b = 0;
      pid_t kid;

      if (pipe(ping) < 0 || pipe(pong) < 0)
        return 3;
      fflush(stdout); /* or a child that flushes at its exit (a sanitizer's
                         runtime does) prints the line's start again */
      kid = fork();
      if (kid == 0) {
        close(ping[1]); /* so the parent's close ends the loop */
        close(pong[0]);
        while (read(ping[0], &b, 1) == 1 && write(pong[1], &b, 1) == 1)
          ;
        _exit(0);
      }
      close(ping[0]);
      close(pong[1]);
      for (long i = 0; i < arg; i++) {
        double a = now_ms();

        if (write(ping[1], &b, 1) != 1 || read(pong[0], &b, 1) != 1)
          return 3;
        t[(size_t)i] = (now_ms() - a) * 1000.0;
      }
      close(ping[1]);
      waitpid(kid, NULL, 0);
      std::sort(t.begin(), t.end());
      printf(" ipc_p99 %.1f max %.1f\n", t[t.size() * 99 / 100], worst);
    }
    CK(cudaFree(d));
    return 0;
  }
  if (!strcmp(mode, "bulk")) {
    const size_t piece = 64ull << 20;
    unsigned char *d, *h;
    double t0 = now_ms();
    long moved = 0;

    CK(cudaMalloc(&d, piece));
    CK(cudaMallocHost(&h, piece));
    for (long mib = 0; mib < arg; mib += 64, moved += 64) {
      memset(h, (int)(mib / 64) & 0xff, piece);
      CK(cudaMemcpy(d, h, piece, cudaMemcpyHostToDevice));
      memset(h, 0xa5, piece);
      CK(cudaMemcpy(h, d, piece, cudaMemcpyDeviceToHost));
      EXPECT(h[0] == ((mib / 64) & 0xff) && h[piece - 1] == ((mib / 64) & 0xff),
             "bulk piece %ld came back wrong", mib / 64);
    }
    printf("bulk %ld MiB in %.0f ms\n", moved, now_ms() - t0);
    CK(cudaFreeHost(h));
    CK(cudaFree(d));
    return 0;
  }
  fprintf(stderr, "unknown mode '%s'\n", mode);
  return 2;
}
