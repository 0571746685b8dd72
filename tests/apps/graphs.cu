// graphs.cu: stream capture and graph replay (issue 5), self-checking;
// runs natively on a GPU as well.
//   graphs          capture 100 kernels, a memset and a device-to-device
//                   copy on a stream; instantiate; launch the graph 10
//                   times; check every result; stream capture status,
//                   cudaStreamGetCaptureInfo (status, id, graph) and
//                   cudaThreadExchangeStreamCaptureMode; synchronising
//                   a capturing stream fails and invalidates the capture.
//   graphs count    the same, but prints READY before the 10 launches and
//                   PAUSE after their synchronisation, waiting for a line
//                   on stdin each time (the test reads the broker's
//                   counters: a graph launch is one small record).
//   graphs destroy  a graph launched behind a 200 ms kernel, on a stream
//                   and on another thread's default stream, and its exec
//                   destroyed at once: the launch still runs (CUDA: a
//                   pending launch completes), once.
//   graphs refuse   (tremote only) a capture holding a copy from host
//                   memory ends with cudaErrorStreamCaptureInvalidated.
#include <cuda_runtime.h>

#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app_check.h"

#define N 256

__global__ void add_i(int *p, int i) { p[threadIdx.x] += i; }

// Spin about ns nanoseconds on the device's clock.
__global__ void spin(unsigned long long ns)
{
  unsigned long long t0, t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
  do
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  while (t - t0 < ns);
}

struct pending_launch {
  cudaGraphExec_t x;
  sem_t queued; // posted once the launch is queued: main may destroy x
  // (a semaphore, not a flag: this file is not built for TSan, which must
  // see the order through an intercepted call to see no race in the shim)
};

// Launches x on this thread's default stream behind a 200 ms kernel.
static void *launch_on_default(void *arg)
{
  pending_launch *p = (pending_launch *)arg;
  spin<<<1, 1>>>(200000000ull);
  CK(cudaGraphLaunch(p->x, 0));
  sem_post(&p->queued);
  return NULL;
}

// graphs destroy: an exec destroyed while its launch is still queued.
static int destroy_pending(cudaStream_t s, int *a)
{
  cudaGraph_t g;
  cudaGraphExec_t x;
  int h[N];

  CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
  add_i<<<1, N, 0, s>>>(a, 1);
  CK(cudaStreamEndCapture(s, &g));

  CK(cudaGraphInstantiate(&x, g, 0));
  spin<<<1, 1, 0, s>>>(200000000ull);
  CK(cudaGraphLaunch(x, s));
  CK(cudaGraphExecDestroy(x));
  CK(cudaStreamSynchronize(s));
  CK(cudaMemcpy(h, a, sizeof(h), cudaMemcpyDeviceToHost));
  EXPECT(h[0] == 1, "on a stream: the graph ran %d times, expected 1", h[0]);

  pending_launch p;
  pthread_t th;
  sem_init(&p.queued, 0, 0);
  CK(cudaGraphInstantiate(&p.x, g, 0));
  pthread_create(&th, NULL, launch_on_default, &p);
  while (sem_wait(&p.queued) != 0)
    ;
  CK(cudaGraphExecDestroy(p.x)); // the thread is still alive, its launch queued
  pthread_join(th, NULL);
  sem_destroy(&p.queued);
  CK(cudaDeviceSynchronize());
  CK(cudaMemcpy(h, a, sizeof(h), cudaMemcpyDeviceToHost));
  EXPECT(h[0] == 2, "on another thread's default stream: the graph ran %d "
                    "times, expected 1", h[0] - 1);

  // The stream destroyed before the exec (a program's usual cleanup): the
  // exec's destroy must not wait for the stream's own event, gone with it.
  cudaStream_t sx;
  alarm(30);
  CK(cudaStreamCreate(&sx));
  CK(cudaGraphInstantiate(&x, g, 0));
  CK(cudaGraphLaunch(x, sx));
  CK(cudaStreamSynchronize(sx));
  CK(cudaStreamDestroy(sx));
  CK(cudaGraphExecDestroy(x));
  CK(cudaDeviceSynchronize());
  alarm(0);
  CK(cudaMemcpy(h, a, sizeof(h), cudaMemcpyDeviceToHost));
  EXPECT(h[0] == 3, "on a stream destroyed first: the graph ran %d times, "
                    "expected 1", h[0] - 2);
  CK(cudaGraphDestroy(g));
  printf("PASS graphs destroy\n");
  return 0;
}

static void wait_line(const char *what)
{
  char line[16];
  printf("%s\n", what);
  fflush(stdout);
  if (!fgets(line, sizeof(line), stdin))
    exit(3);
}

int main(int argc, char **argv)
{
  const char *mode = argc > 1 ? argv[1] : "run";
  int *a, *b, *c, h[N];
  cudaStream_t s;
  cudaGraph_t g;
  cudaGraphExec_t x;
  cudaStreamCaptureStatus st;

  CK(cudaStreamCreate(&s));
  CK(cudaMalloc(&a, N * sizeof(int)));
  CK(cudaMalloc(&b, N * sizeof(int)));
  CK(cudaMalloc(&c, N * sizeof(int)));
  CK(cudaMemset(a, 0, N * sizeof(int)));
  add_i<<<1, N, 0, s>>>(c, 0); // loads the module before the capture
  CK(cudaStreamSynchronize(s));

  if (strcmp(mode, "destroy") == 0)
    return destroy_pending(s, a);
  if (strcmp(mode, "refuse") == 0) {
    CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
    add_i<<<1, N, 0, s>>>(a, 1);
    (void)cudaMemcpyAsync(a, h, sizeof(h), cudaMemcpyHostToDevice, s);
    cudaError_t e = cudaStreamEndCapture(s, &g);
    EXPECT(e == cudaErrorStreamCaptureInvalidated, "end capture: %s", cudaGetErrorName(e));
    (void)cudaGetLastError();
    printf("PASS graphs refuse\n");
    return 0;
  }

  // Synchronising a capturing stream is illegal: it fails, and the
  // capture is invalidated.
  CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
  add_i<<<1, N, 0, s>>>(a, 1);
  cudaError_t se = cudaStreamSynchronize(s);
  EXPECT(se == cudaErrorStreamCaptureUnsupported,
         "cudaStreamSynchronize while capturing: %s", cudaGetErrorName(se));
  CK(cudaStreamIsCapturing(s, &st));
  EXPECT(st == cudaStreamCaptureStatusInvalidated, "capture status %d after "
         "a synchronisation", (int)st);
  se = cudaStreamEndCapture(s, &g);
  EXPECT(se == cudaErrorStreamCaptureInvalidated,
         "end capture after a synchronisation: %s", cudaGetErrorName(se));
  (void)cudaGetLastError();

  CK(cudaStreamIsCapturing(s, &st));
  EXPECT(st == cudaStreamCaptureStatusNone, "capturing before BeginCapture");
  unsigned long long id = 0, id2 = 0;
  cudaGraph_t cg = NULL;
  CK(cudaStreamGetCaptureInfo(s, &st, &id));
  EXPECT(st == cudaStreamCaptureStatusNone, "capture info before BeginCapture");
  enum cudaStreamCaptureMode cm = cudaStreamCaptureModeRelaxed;
  CK(cudaThreadExchangeStreamCaptureMode(&cm));
  EXPECT(cm == cudaStreamCaptureModeGlobal, "the thread's mode was %d", (int)cm);
  CK(cudaThreadExchangeStreamCaptureMode(&cm));
  EXPECT(cm == cudaStreamCaptureModeRelaxed, "exchanged back %d", (int)cm);
  CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
  CK(cudaStreamIsCapturing(s, &st));
  EXPECT(st == cudaStreamCaptureStatusActive, "not capturing after BeginCapture");
  CK(cudaStreamGetCaptureInfo(s, &st, &id, &cg));
  EXPECT(st == cudaStreamCaptureStatusActive && id != 0 && cg != NULL,
         "capture info: status %d id %llu graph %p", (int)st, id, (void *)cg);
  for (int i = 0; i < 100; i++)
    add_i<<<1, N, 0, s>>>(a, i);
  CK(cudaMemsetAsync(b, 0x01, N * sizeof(int), s));
  CK(cudaMemcpyAsync(c, a, N * sizeof(int), cudaMemcpyDeviceToDevice, s));
  CK(cudaStreamGetCaptureInfo(s, &st, &id2));
  EXPECT(id2 == id, "the capture's id changed: %llu, then %llu", id, id2);
  CK(cudaStreamEndCapture(s, &g));
  EXPECT(g == cg, "EndCapture's graph is not the one capture info named");
  CK(cudaStreamIsCapturing(s, &st));
  EXPECT(st == cudaStreamCaptureStatusNone, "still capturing after EndCapture");
  // Nothing ran while capturing.
  CK(cudaMemcpy(h, a, sizeof(h), cudaMemcpyDeviceToHost));
  for (int i = 0; i < N; i++)
    EXPECT(h[i] == 0, "capture ran work: %d at %d", h[i], i);

  CK(cudaGraphInstantiate(&x, g, 0));
  if (strcmp(mode, "count") == 0)
    wait_line("READY");
  for (int r = 0; r < 10; r++)
    CK(cudaGraphLaunch(x, s));
  CK(cudaStreamSynchronize(s));
  if (strcmp(mode, "count") == 0)
    wait_line("PAUSE");
  CK(cudaMemcpy(h, a, sizeof(h), cudaMemcpyDeviceToHost));
  for (int i = 0; i < N; i++)
    EXPECT(h[i] == 10 * 4950, "a[%d] = %d, expected %d", i, h[i], 10 * 4950);
  CK(cudaMemcpy(h, c, sizeof(h), cudaMemcpyDeviceToHost));
  for (int i = 0; i < N; i++)
    EXPECT(h[i] == 10 * 4950, "c[%d] = %d (the copy node)", i, h[i]);
  CK(cudaMemcpy(h, b, sizeof(h), cudaMemcpyDeviceToHost));
  for (int i = 0; i < N; i++)
    EXPECT(h[i] == 0x01010101, "b[%d] = %#x (the memset node)", i, h[i]);
  CK(cudaGraphExecDestroy(x));
  CK(cudaGraphDestroy(g));
  CK(cudaStreamDestroy(s));
  printf("PASS graphs %s\n", mode);
  return 0;
}
