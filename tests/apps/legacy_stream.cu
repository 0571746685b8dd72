// legacy_stream.cu: blocking streams, the legacy default stream and the
// order CUDA keeps between them (issue 5), self-checking; runs natively
// on a GPU as well.
//   - two blocking streams (cudaStreamCreate) fed by one thread run side
//     by side: a small kernel on B and its synchronisation finish while a
//     long kernel on A still runs;
//   - legacy work waits for the blocking streams' earlier work: a kernel
//     on the default stream reads what a kernel on A wrote after a spin;
//   - blocking streams' later work waits for legacy work: a kernel on B
//     reads what a default-stream kernel wrote after a spin;
//   - a blocking stream destroyed with work queued: a cudaMemcpy after it
//     (legacy) sees that work's result;
//   - a non-blocking stream owes the legacy stream nothing: its kernel and
//     synchronisation finish while a long default-stream kernel runs;
//   - the same in a second thread, which then exits (the shim drops what
//     it kept for the thread);
//   - the legacy stream is one for all threads: a default-stream kernel of
//     the main thread, and a kernel on a blocking stream of it, run after a
//     default-stream spin and store that another thread queued (and did
//     not synchronise) before them, and cudaDeviceSynchronize waits for
//     that work;
//   - also for work queued before the second thread came: a thread started
//     after the main thread queued a default-stream spin and store (while
//     it was the only thread using the device) launches a default-stream
//     kernel that reads the store;
//   - and for work left by a thread that exited: a thread queues a
//     default-stream spin and store and exits without synchronising; then
//     the main thread's default-stream kernel, its blocking stream's
//     kernel, and cudaDeviceSynchronize each see the store;
//   - a default-stream cudaStreamWaitEvent holds back other threads too:
//     the main thread makes the default stream wait for an event recorded
//     after a spin and store on a non-blocking stream; a thread started
//     then launches a default-stream kernel that reads the store;
//   - cudaDeviceSynchronize waits for another thread's stream: a thread
//     queues 512 MiB of device-to-host copies and then a store on a
//     non-blocking stream and, without synchronising, waits until the main
//     thread is done; after cudaDeviceSynchronize the main thread reads
//     the store through a non-blocking stream of its own.
// Each spin is long (150 ms) against what a small kernel and a sync take,
// so a missing order shows as a wrong value, not as a flaky timing.
#include <cuda_runtime.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "app_check.h"


#define SPIN_NS 150000000ull

// Spin ns nanoseconds on the device's clock, then *p = v (if p).
__global__ void spin_set(unsigned long long ns, int *p, int v)
{
  unsigned long long t0, t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
  do
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  while (t - t0 < ns);
  if (p)
    *p = v;
}

__global__ void set(int *p, int v) { *p = v; }

// *dst = *src * k + a
__global__ void derive(int *dst, const int *src, int k, int a)
{
  *dst = *src * k + a;
}

static int get(const int *d)
{
  int v;
  CK(cudaMemcpy(&v, d, sizeof(v), cudaMemcpyDeviceToHost));
  return v;
}

static void run(const char *who)
{
  cudaStream_t a, b, nb;
  int *d;

  CK(cudaMalloc(&d, 8 * sizeof(int)));
  CK(cudaMemset(d, 0, 8 * sizeof(int)));
  CK(cudaStreamCreate(&a));
  CK(cudaStreamCreate(&b));
  CK(cudaStreamCreateWithFlags(&nb, cudaStreamNonBlocking));

  // Every kernel launched once first: with CUDA's lazy loading a kernel's
  // first launch loads it, and that can wait for the whole device (on an
  // H200 it made the side-by-side check below fail natively).
  spin_set<<<1, 1>>>(0, NULL, 0);
  set<<<1, 1>>>(d + 7, 0);
  derive<<<1, 1>>>(d + 7, d + 7, 1, 0);
  CK(cudaDeviceSynchronize());

  // Side by side.
  spin_set<<<1, 1, 0, a>>>(SPIN_NS, d + 0, 1);
  set<<<1, 1, 0, b>>>(d + 1, 2);
  CK(cudaStreamSynchronize(b));
  cudaError_t qa = cudaStreamQuery(a);
  EXPECT(qa == cudaErrorNotReady,
         "%s: stream B's work waited behind stream A's (query A after B's "
         "sync: %s)", who, cudaGetErrorName(qa));
  CK(cudaStreamSynchronize(a));

  // Blocking stream -> legacy stream.
  spin_set<<<1, 1, 0, a>>>(SPIN_NS, d + 2, 7);
  derive<<<1, 1>>>(d + 3, d + 2, 10, 1); // legacy: after A's work
  EXPECT(get(d + 3) == 71, "%s: a default-stream kernel did not wait for "
         "stream A's earlier work (got %d, want 71)", who, get(d + 3));

  // Legacy stream -> blocking stream.
  spin_set<<<1, 1>>>(SPIN_NS, d + 4, 5);
  derive<<<1, 1, 0, b>>>(d + 5, d + 4, 2, 0); // after the legacy spin
  CK(cudaStreamSynchronize(b));
  int y;
  CK(cudaMemcpyAsync(&y, d + 5, sizeof(y), cudaMemcpyDeviceToHost, b));
  CK(cudaStreamSynchronize(b));
  EXPECT(y == 10, "%s: stream B's kernel did not wait for earlier "
         "default-stream work (got %d, want 10)", who, y);

  // A blocking stream destroyed with its work queued.
  cudaStream_t c;
  CK(cudaStreamCreate(&c));
  spin_set<<<1, 1, 0, c>>>(SPIN_NS, d + 6, 9);
  CK(cudaStreamDestroy(c));
  EXPECT(get(d + 6) == 9, "%s: cudaMemcpy did not wait for the work of a "
         "destroyed blocking stream (got %d, want 9)", who, get(d + 6));

  // A non-blocking stream does not wait for the legacy stream.
  spin_set<<<1, 1>>>(2 * SPIN_NS, NULL, 0);
  set<<<1, 1, 0, nb>>>(d + 7, 3);
  CK(cudaStreamSynchronize(nb));
  cudaError_t q0 = cudaStreamQuery(0);
  EXPECT(q0 == cudaErrorNotReady,
         "%s: a non-blocking stream waited for the legacy stream (query of "
         "the default stream after its sync: %s)", who, cudaGetErrorName(q0));
  CK(cudaDeviceSynchronize());
  EXPECT(get(d + 7) == 3 && get(d + 1) == 2, "%s: values %d %d", who,
         get(d + 7), get(d + 1));

  CK(cudaStreamDestroy(a));
  CK(cudaStreamDestroy(b));
  CK(cudaStreamDestroy(nb));
  CK(cudaFree(d));
  printf("%s: blocking streams overlap; legacy order holds both ways\n", who);
}

static void *second(void *)
{
  run("second thread");
  return NULL;
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int queued, checked;

// Tell the main thread the work is queued; wait until it has checked.
static void queued_then_wait(void)
{
  pthread_mutex_lock(&mu);
  queued = 1;
  pthread_cond_broadcast(&cv);
  while (!checked)
    pthread_cond_wait(&cv, &mu);
  pthread_mutex_unlock(&mu);
}

static void wait_queued(void)
{
  pthread_mutex_lock(&mu);
  while (!queued)
    pthread_cond_wait(&cv, &mu);
  pthread_mutex_unlock(&mu);
}

static void release(void)
{
  pthread_mutex_lock(&mu);
  checked = 1;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
}

// The default stream, from another thread: a spin, then *p = 5.
static void *legacy_spin_store(void *arg)
{
  spin_set<<<1, 1>>>(SPIN_NS, (int *)arg, 5);
  CK(cudaGetLastError());
  queued_then_wait();
  return NULL;
}

// The default stream, from another thread that then exits at once.
static void *legacy_spin_store_exit(void *arg)
{
  spin_set<<<1, 1>>>(SPIN_NS, (int *)arg, 5);
  CK(cudaGetLastError());
  return NULL;
}

// A fresh thread reads what the main thread queued before it existed.
struct late {
  int *v;
  int got;
};

static void *late_reader(void *arg)
{
  struct late *l = (struct late *)arg;
  cudaStream_t nb;

  derive<<<1, 1>>>(l->v + 1, l->v, 2, 0);
  CK(cudaGetLastError());
  CK(cudaStreamSynchronize(0));
  CK(cudaStreamCreateWithFlags(&nb, cudaStreamNonBlocking));
  CK(cudaMemcpyAsync(&l->got, l->v + 1, sizeof(l->got),
                     cudaMemcpyDeviceToHost, nb));
  CK(cudaStreamSynchronize(nb));
  CK(cudaStreamDestroy(nb));
  return NULL;
}

static void *queue_and_wait(void *arg)
{
  cudaStream_t s;

  size_t big = 256u << 20;
  void *dbuf, *hbuf;

  CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  CK(cudaMalloc(&dbuf, big));
  CK(cudaMallocHost(&hbuf, big));
  CK(cudaMemsetAsync(dbuf, 1, big, s));
  for (int i = 0; i < 2; i++)
    CK(cudaMemcpyAsync(hbuf, dbuf, big, cudaMemcpyDeviceToHost, s));
  set<<<1, 1, 0, s>>>((int *)arg, 11); // behind the copies
  CK(cudaGetLastError());
  // No synchronisation here: the main thread's cudaDeviceSynchronize is
  // what must wait (this thread stays, so its lanes stay open).
  queued_then_wait();
  CK(cudaStreamSynchronize(s));
  CK(cudaFreeHost(hbuf));
  CK(cudaFree(dbuf));
  CK(cudaStreamDestroy(s));
  return NULL;
}

int main()
{
  pthread_t th;

  run("main thread");
  if (pthread_create(&th, NULL, second, NULL) != 0) {
    fprintf(stderr, "FAIL pthread_create\n");
    return 1;
  }
  pthread_join(th, NULL);
  // After the thread exited: this thread's legacy order still holds.
  run("main thread again");

  // The legacy stream across threads.
  for (int round = 0; round < 3; round++) {
    int *v, got = -1;
    cudaStream_t b, nb2;

    CK(cudaMalloc(&v, 2 * sizeof(int)));
    CK(cudaMemset(v, 0, 2 * sizeof(int)));
    CK(cudaStreamCreate(&b));
    CK(cudaStreamCreateWithFlags(&nb2, cudaStreamNonBlocking));
    queued = checked = 0;
    if (pthread_create(&th, NULL, legacy_spin_store, v) != 0) {
      fprintf(stderr, "FAIL pthread_create\n");
      return 1;
    }
    wait_queued();
    if (round == 0) // a default-stream kernel of this thread
      derive<<<1, 1>>>(v + 1, v, 2, 0);
    else if (round == 1) // a kernel on a blocking stream of this thread
      derive<<<1, 1, 0, b>>>(v + 1, v, 2, 0);
    if (round < 2) {
      CK(cudaStreamSynchronize(round == 0 ? 0 : b));
      CK(cudaMemcpyAsync(&got, v + 1, sizeof(got), cudaMemcpyDeviceToHost,
                         nb2));
    } else { // the store itself, after cudaDeviceSynchronize
      CK(cudaDeviceSynchronize());
      CK(cudaMemcpyAsync(&got, v, sizeof(got), cudaMemcpyDeviceToHost, nb2));
    }
    CK(cudaStreamSynchronize(nb2));
    release();
    pthread_join(th, NULL);
    EXPECT(got == (round < 2 ? 10 : 5),
           "%s did not wait for another thread's default-stream work (got "
           "%d, want %d)",
           round == 0   ? "a default-stream kernel"
           : round == 1 ? "a blocking stream's kernel"
                        : "cudaDeviceSynchronize",
           got, round < 2 ? 10 : 5);
    CK(cudaStreamDestroy(b));
    CK(cudaStreamDestroy(nb2));
    CK(cudaFree(v));
  }
  printf("the default stream orders work across threads\n");

  // Work queued before a second thread used the device's legacy stream.
  {
    struct late l = {NULL, -1};

    CK(cudaMalloc(&l.v, 2 * sizeof(int)));
    CK(cudaMemset(l.v, 0, 2 * sizeof(int)));
    CK(cudaDeviceSynchronize());
    spin_set<<<1, 1>>>(SPIN_NS, l.v, 5); // no other thread uses CUDA now
    CK(cudaGetLastError());
    if (pthread_create(&th, NULL, late_reader, &l) != 0) {
      fprintf(stderr, "FAIL pthread_create\n");
      return 1;
    }
    pthread_join(th, NULL);
    EXPECT(l.got == 10, "a new thread's default-stream kernel did not wait "
           "for default-stream work queued before the thread existed (got "
           "%d, want 10)", l.got);
    CK(cudaDeviceSynchronize());
    CK(cudaFree(l.v));
  }
  printf("the default stream orders work queued before a thread came\n");

  // A default-stream wait for an event holds back every thread's work.
  {
    struct late l = {NULL, -1};
    cudaStream_t nb;
    cudaEvent_t ev;

    CK(cudaMalloc(&l.v, 2 * sizeof(int)));
    CK(cudaMemset(l.v, 0, 2 * sizeof(int)));
    CK(cudaStreamCreateWithFlags(&nb, cudaStreamNonBlocking));
    CK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
    CK(cudaDeviceSynchronize());
    spin_set<<<1, 1, 0, nb>>>(SPIN_NS, l.v, 5);
    CK(cudaGetLastError());
    CK(cudaEventRecord(ev, nb));
    CK(cudaStreamWaitEvent(0, ev, 0));
    if (pthread_create(&th, NULL, late_reader, &l) != 0) {
      fprintf(stderr, "FAIL pthread_create\n");
      return 1;
    }
    pthread_join(th, NULL);
    EXPECT(l.got == 10, "another thread's default-stream kernel did not wait "
           "for a default-stream cudaStreamWaitEvent (got %d, want 10)",
           l.got);
    CK(cudaDeviceSynchronize());
    CK(cudaEventDestroy(ev));
    CK(cudaStreamDestroy(nb));
    CK(cudaFree(l.v));
  }
  printf("a default-stream event wait holds back other threads\n");

  // Work left on the legacy stream by a thread that exited.
  for (int round = 0; round < 3; round++) {
    int *v, got = -1;
    cudaStream_t b, nb2;

    CK(cudaMalloc(&v, 2 * sizeof(int)));
    CK(cudaMemset(v, 0, 2 * sizeof(int)));
    CK(cudaStreamCreate(&b));
    CK(cudaStreamCreateWithFlags(&nb2, cudaStreamNonBlocking));
    CK(cudaDeviceSynchronize());
    if (pthread_create(&th, NULL, legacy_spin_store_exit, v) != 0) {
      fprintf(stderr, "FAIL pthread_create\n");
      return 1;
    }
    pthread_join(th, NULL); // exited; its spin still runs
    if (round == 0)
      derive<<<1, 1>>>(v + 1, v, 2, 0);
    else if (round == 1)
      derive<<<1, 1, 0, b>>>(v + 1, v, 2, 0);
    if (round < 2) {
      CK(cudaStreamSynchronize(round == 0 ? 0 : b));
      CK(cudaMemcpyAsync(&got, v + 1, sizeof(got), cudaMemcpyDeviceToHost,
                         nb2));
    } else {
      CK(cudaDeviceSynchronize());
      CK(cudaMemcpyAsync(&got, v, sizeof(got), cudaMemcpyDeviceToHost, nb2));
    }
    CK(cudaStreamSynchronize(nb2));
    EXPECT(got == (round < 2 ? 10 : 5),
           "%s did not wait for default-stream work of a thread that exited "
           "(got %d, want %d)",
           round == 0   ? "a default-stream kernel"
           : round == 1 ? "a blocking stream's kernel"
                        : "cudaDeviceSynchronize",
           got, round < 2 ? 10 : 5);
    CK(cudaStreamDestroy(b));
    CK(cudaStreamDestroy(nb2));
    CK(cudaFree(v));
  }
  printf("the default stream orders work of threads that exited\n");

  // cudaDeviceSynchronize covers another thread's stream.
  int *x, h = -1;
  queued = checked = 0;
  cudaStream_t mine;
  CK(cudaMalloc(&x, sizeof(int)));
  CK(cudaMemset(x, 0, sizeof(int)));
  CK(cudaDeviceSynchronize());
  CK(cudaStreamCreateWithFlags(&mine, cudaStreamNonBlocking));
  if (pthread_create(&th, NULL, queue_and_wait, x) != 0) {
    fprintf(stderr, "FAIL pthread_create\n");
    return 1;
  }
  wait_queued();
  CK(cudaDeviceSynchronize());
  CK(cudaMemcpyAsync(&h, x, sizeof(h), cudaMemcpyDeviceToHost, mine));
  CK(cudaStreamSynchronize(mine));
  release();
  pthread_join(th, NULL);
  EXPECT(h == 11, "cudaDeviceSynchronize did not wait for another thread's "
         "stream (read %d, want 11)", h);
  CK(cudaStreamDestroy(mine));
  CK(cudaFree(x));
  printf("cudaDeviceSynchronize waits for another thread's stream\n");
  printf("PASS legacy_stream\n");
  return 0;
}
