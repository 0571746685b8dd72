// streams_events.cu: streams, events and asynchronous copies (issue 5),
// self-checking; runs natively on a GPU as well.
//   - cudaMemcpyAsync / cudaMemsetAsync / kernels on created streams, in
//     stream order, checked;
//   - an event recorded on one stream and waited for by another
//     (cudaStreamWaitEvent) orders a producer kernel before a consumer,
//     also when the event is destroyed while the wait is still queued;
//   - a stream fed by a second thread is synchronised by the main thread
//     and then extended by it: its order holds across threads;
//   - event timing: cudaEventElapsedTime of a kernel that spins ~20 ms is
//     in a plausible range; DisableTiming events and unrecorded events
//     give cudaErrorInvalidResourceHandle; an unrecorded event queries as
//     complete; cudaStreamQuery/cudaEventQuery after synchronisation say
//     cudaSuccess;
//   - stream flags, priorities and the priority range;
//   - cudaFree waits for work queued on a non-blocking stream;
//   - twenty non-blocking streams, more than tremote keeps lanes for in one
//     thread, each keep their order;
//   - host functions (cudaLaunchHostFunc, cudaStreamAddCallback) run after
//     the work before them (they see a copy's result) and before the work
//     after them (a copy of a value they set), on created streams and on
//     the default stream; a thread that queues one on its default stream
//     and exits at once leaves the next thread's default stream working;
//     cudaStreamQuery says cudaErrorNotReady while one has not returned;
//     work queued behind one returns at once (the function may wait for
//     the program) and runs after it; the legacy stream's blocking copy
//     after a blocking stream's host function reads what it wrote.
#include <cuda_runtime.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "app_check.h"

#define N 4096

__global__ void scale(int *a, int k, int n)
{
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n)
    a[i] *= k;
}

__global__ void copy_plus(int *dst, const int *src, int v, int n)
{
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n)
    dst[i] = src[i] + v;
}

__global__ void add1(int *c, int v) { *c += v; }

__global__ void add_all(int *a, int v, int n)
{
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n)
    a[i] += v;
}

// Spin about ns nanoseconds on the device's clock.
__global__ void spin(unsigned long long ns)
{
  unsigned long long t0;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
  for (;;) {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    if (t - t0 >= ns)
      break;
  }
}

static int pinned_seen = -1, cb_status = -1, default_ran = 0;
static int *pinned, *cb_value;

static void CUDART_CB after_copy(void *arg)
{
  pinned_seen = *(int *)arg; // the copy queued before us has landed
  *cb_value = 4242;          // the copy queued after us must see this
}

static void CUDART_CB with_status(cudaStream_t, cudaError_t status, void *)
{
  cb_status = (int)status;
}

static void CUDART_CB on_default(void *) { default_ran = 1; }

// Sets *(int *)arg after 300 ms: long enough to be queued behind.
static void CUDART_CB slow_flag(void *arg)
{
  usleep(300000);
  __atomic_store_n((int *)arg, 1, __ATOMIC_SEQ_CST);
}

// Holds its stream until the program opens the gate (at most 3 s).
static void CUDART_CB gate(void *arg)
{
  for (int i = 0; i < 300 && !__atomic_load_n((int *)arg, __ATOMIC_SEQ_CST);
       i++)
    usleep(10000);
}

static void CUDART_CB slow_write(void *arg)
{
  usleep(200000);
  __atomic_store_n((int *)arg, 42, __ATOMIC_SEQ_CST);
}

static double now_ms()
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int exited_ran;

static void *queue_and_exit(void *)
{
  CK(cudaLaunchHostFunc(0, slow_flag, &exited_ran));
  return NULL;
}

// Default-stream work from a thread born after queue_and_exit's thread
// ended (it likely gets the same thread-local storage).
static void *default_after(void *arg)
{
  int *d = (int *)arg, v = 0;
  for (int i = 0; i < 500 && !__atomic_load_n(&exited_ran, __ATOMIC_SEQ_CST); i++)
    usleep(10000);
  add1<<<1, 1>>>(d, 5);
  CK(cudaMemcpy(&v, d, sizeof(int), cudaMemcpyDeviceToHost));
  return (void *)(long)v;
}

struct feeder {
  cudaStream_t s;
  int *counter;
};

static void *feed(void *arg)
{
  feeder *f = (feeder *)arg;
  for (int i = 0; i < 50; i++)
    add1<<<1, 1, 0, f->s>>>(f->counter, 1);
  if (cudaGetLastError() != cudaSuccess)
    return (void *)1;
  return NULL;
}

int main()
{
  static int h[N], g[N];
  int *a, *b, *c;
  cudaStream_t s1, s2, s3;
  cudaEvent_t e, start, stop, notime, never;

  CK(cudaStreamCreate(&s1));
  CK(cudaStreamCreateWithFlags(&s2, cudaStreamNonBlocking));
  CK(cudaStreamCreateWithPriority(&s3, cudaStreamDefault, -100));
  int least = 1, greatest = 1, prio = 1;
  unsigned flags = 7;
  CK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
  CK(cudaStreamGetPriority(s3, &prio));
  EXPECT(prio == greatest && greatest <= least, "priority %d, range [%d, %d]",
         prio, greatest, least);
  CK(cudaStreamGetFlags(s2, &flags));
  EXPECT(flags == cudaStreamNonBlocking, "flags %u", flags);

  CK(cudaMalloc(&a, N * sizeof(int)));
  CK(cudaMalloc(&b, N * sizeof(int)));
  CK(cudaMalloc(&c, sizeof(int)));

  // Stream order: copy in, scale, copy out, all asynchronous on s1.
  for (int i = 0; i < N; i++)
    h[i] = i - 1000;
  CK(cudaMemcpyAsync(a, h, sizeof(h), cudaMemcpyHostToDevice, s1));
  scale<<<(N + 255) / 256, 256, 0, s1>>>(a, 3, N);
  CK(cudaGetLastError());
  CK(cudaMemcpyAsync(g, a, sizeof(g), cudaMemcpyDeviceToHost, s1));
  CK(cudaStreamSynchronize(s1));
  for (int i = 0; i < N; i++)
    EXPECT(g[i] == 3 * (i - 1000), "s1 element %d: %d", i, g[i]);
  CK(cudaStreamQuery(s1));
  printf("stream order: ok\n");

  // Producer on s1, consumer on s2, ordered by an event.
  CK(cudaEventCreate(&e));
  scale<<<(N + 255) / 256, 256, 0, s1>>>(a, 2, N);
  CK(cudaEventRecord(e, s1));
  CK(cudaStreamWaitEvent(s2, e, 0));
  copy_plus<<<(N + 255) / 256, 256, 0, s2>>>(b, a, 7, N);
  CK(cudaMemsetAsync(c, 0, sizeof(int), s2));
  CK(cudaStreamSynchronize(s2));
  CK(cudaMemcpy(g, b, sizeof(g), cudaMemcpyDeviceToHost));
  for (int i = 0; i < N; i++)
    EXPECT(g[i] == 6 * (i - 1000) + 7, "s2 element %d: %d", i, g[i]);
  CK(cudaEventQuery(e));
  printf("event between streams: ok\n");

  // An event destroyed while a wait for it is still queued (legal: the
  // wait still happens).  Once with the wait queued behind a long kernel
  // (the event recorded and reached long before), once with the wait
  // already waiting for a record behind a long kernel on s1.  The alarm
  // turns a hang into a failure.
  {
    cudaEvent_t ev;
    int cv = 0, *cnt;

    alarm(30);
    CK(cudaMalloc(&cnt, sizeof(int)));
    CK(cudaMemset(cnt, 0, sizeof(int)));
    CK(cudaEventCreate(&ev));
    CK(cudaEventRecord(ev, s1));
    CK(cudaStreamSynchronize(s1));
    spin<<<1, 1, 0, s2>>>(100000000ull);
    CK(cudaStreamWaitEvent(s2, ev, 0));
    CK(cudaEventDestroy(ev));
    add1<<<1, 1, 0, s2>>>(cnt, 1);
    CK(cudaStreamSynchronize(s2));
    CK(cudaMemcpy(&cv, cnt, sizeof(int), cudaMemcpyDeviceToHost));
    CK(cudaFree(cnt));
    EXPECT(cv == 1, "after a destroyed event's wait: counter %d, expected 1",
           cv);

    CK(cudaMemcpy(a, h, sizeof(h), cudaMemcpyHostToDevice));
    CK(cudaEventCreate(&ev));
    spin<<<1, 1, 0, s1>>>(200000000ull);
    add_all<<<(N + 255) / 256, 256, 0, s1>>>(a, 5, N);
    CK(cudaEventRecord(ev, s1));
    CK(cudaStreamWaitEvent(s2, ev, 0));
    copy_plus<<<(N + 255) / 256, 256, 0, s2>>>(b, a, 0, N);
    usleep(100000); // s2 waits for the record now
    CK(cudaEventDestroy(ev));
    CK(cudaStreamSynchronize(s2));
    CK(cudaMemcpy(g, b, sizeof(g), cudaMemcpyDeviceToHost));
    for (int i = 0; i < N; i++)
      EXPECT(g[i] == h[i] + 5, "after a destroyed event's wait: s2 element "
             "%d: %d, expected %d", i, g[i], h[i] + 5);
    CK(cudaDeviceSynchronize());

    // The waiting stream destroyed first, the event after it (the usual
    // order of a program's cleanup): the event's destroy must not wait
    // for the destroyed stream's own event.
    cudaStream_t sx;
    CK(cudaStreamCreate(&sx));
    CK(cudaEventCreate(&ev));
    CK(cudaEventRecord(ev, s1));
    CK(cudaStreamWaitEvent(sx, ev, 0));
    CK(cudaStreamSynchronize(sx));
    CK(cudaStreamDestroy(sx));
    CK(cudaEventDestroy(ev));
    CK(cudaDeviceSynchronize());
    alarm(0);
  }
  printf("event destroyed with a wait queued: ok\n");

  // A stream fed by another thread, then synchronised and extended here.
  feeder f = {s3, c};
  pthread_t th;
  void *res;
  pthread_create(&th, NULL, feed, &f);
  pthread_join(th, &res);
  EXPECT(res == NULL, "the feeding thread's launches failed");
  add1<<<1, 1, 0, s3>>>(c, 100);
  CK(cudaStreamSynchronize(s3));
  int cv = 0;
  CK(cudaMemcpy(&cv, c, sizeof(int), cudaMemcpyDeviceToHost));
  EXPECT(cv == 150, "counter %d, expected 150", cv);
  printf("stream across threads: ok\n");

  // Timing.
  CK(cudaEventCreate(&start));
  CK(cudaEventCreate(&stop));
  CK(cudaEventCreateWithFlags(&notime, cudaEventDisableTiming));
  CK(cudaEventCreate(&never));
  CK(cudaEventQuery(never)); // never recorded: complete
  CK(cudaEventRecord(start, s1));
  spin<<<1, 1, 0, s1>>>(20000000ull);
  CK(cudaEventRecord(stop, s1));
  CK(cudaEventRecord(notime, s1));
  CK(cudaEventSynchronize(stop));
  float ms = -1;
  CK(cudaEventElapsedTime(&ms, start, stop));
  printf("a 20 ms kernel took %.2f ms by the device's events\n", ms);
  EXPECT(ms >= 19.0f && ms < 5000.0f, "elapsed %.3f ms", ms);
  EXPECT(cudaEventElapsedTime(&ms, start, notime) == cudaErrorInvalidResourceHandle,
         "elapsed time with a DisableTiming event");
  (void)cudaGetLastError();
  EXPECT(cudaEventElapsedTime(&ms, start, never) == cudaErrorInvalidResourceHandle,
         "elapsed time with an unrecorded event");
  (void)cudaGetLastError();
  printf("event timing: ok\n");

  // Host functions in stream order.
  // Page-locked source for the copy after the host function: a GPU reads
  // it when the copy runs; pageable memory is read when the copy is
  // queued (measured on an H200), before any host function could write it.
  CK(cudaMallocHost(&pinned, sizeof(int)));
  CK(cudaMallocHost(&cb_value, sizeof(int)));
  *pinned = 0;
  *cb_value = 0;
  add1<<<1, 1, 0, s1>>>(c, 1000); // counter: 150 -> 1150
  CK(cudaMemcpyAsync(pinned, c, sizeof(int), cudaMemcpyDeviceToHost, s1));
  CK(cudaLaunchHostFunc(s1, after_copy, pinned));
  CK(cudaMemcpyAsync(c, cb_value, sizeof(int), cudaMemcpyHostToDevice, s1));
  CK(cudaStreamAddCallback(s1, with_status, NULL, 0));
  CK(cudaStreamSynchronize(s1));
  CK(cudaMemcpy(&cv, c, sizeof(int), cudaMemcpyDeviceToHost));
  EXPECT(pinned_seen == 1150, "the host function saw %d, expected 1150", pinned_seen);
  EXPECT(cv == 4242, "the copy after the host function gave %d, expected 4242", cv);
  EXPECT(cb_status == (int)cudaSuccess, "callback status %d", cb_status);
  CK(cudaLaunchHostFunc(0, on_default, NULL));
  CK(cudaDeviceSynchronize());
  EXPECT(default_ran == 1, "the host function on the default stream did not run");
  CK(cudaFreeHost(pinned));
  CK(cudaFreeHost(cb_value));
  printf("host functions: ok\n");

  // A host function queued on its default stream by a thread that exits
  // at once; a later thread's default-stream work must neither hang nor
  // fail (the alarm turns a hang into a failure).
  {
    pthread_t q, l;
    void *v;

    CK(cudaMemset(c, 0, sizeof(int)));
    alarm(30);
    pthread_create(&q, NULL, queue_and_exit, NULL);
    pthread_join(q, NULL);
    pthread_create(&l, NULL, default_after, c);
    pthread_join(l, &v);
    alarm(0);
    EXPECT(exited_ran == 1, "the exited thread's host function did not run");
    EXPECT((long)v == 5, "the later thread's kernel gave %ld, expected 5", (long)v);
    printf("host function of an exited thread: ok\n");
  }

  // A host function not yet returned is work of its stream, for
  // cudaStreamQuery too: cudaErrorNotReady (it sleeps 300 ms; asked
  // 100 ms in, when the device work before it is long done).
  {
    int ran = 0;

    CK(cudaLaunchHostFunc(s1, slow_flag, &ran));
    usleep(100000); // the work before it is done, the function still sleeps
    cudaError_t q = cudaStreamQuery(s1);
    EXPECT(q == cudaErrorNotReady || __atomic_load_n(&ran, __ATOMIC_SEQ_CST),
           "cudaStreamQuery said %s before the host function ran",
           cudaGetErrorName(q));
    CK(cudaStreamSynchronize(s1));
    CK(cudaStreamQuery(s1));
    ran = 0;
    CK(cudaLaunchHostFunc(0, slow_flag, &ran));
    usleep(100000);
    q = cudaStreamQuery(0);
    EXPECT(q == cudaErrorNotReady || __atomic_load_n(&ran, __ATOMIC_SEQ_CST),
           "cudaStreamQuery(0) said %s before the host function ran",
           cudaGetErrorName(q));
    CK(cudaDeviceSynchronize());
    EXPECT(ran == 1, "the default stream's host function did not run");
    CK(cudaStreamQuery(0));
    printf("cudaStreamQuery while a host function is pending: ok\n");
  }

  // Work queued behind a host function that waits for the program (a
  // gate): the launch and the event record return at once, as with CUDA,
  // and run after the function (it opens at 200 ms; the kernel adds to
  // what it wrote).  Then the legacy stream after a blocking stream's
  // host function: a blocking copy from pageable memory the function
  // writes must read what it wrote, as the legacy stream follows all the
  // blocking streams' earlier work.
  {
    static int gate_open, word;
    int cv = -1, *cnt;
    cudaEvent_t after;

    alarm(30);
    CK(cudaMalloc(&cnt, sizeof(int)));
    CK(cudaEventCreate(&after));
    CK(cudaMemsetAsync(cnt, 0, sizeof(int), s1));
    CK(cudaLaunchHostFunc(s1, gate, &gate_open));
    double t0 = now_ms();
    add1<<<1, 1, 0, s1>>>(cnt, 1);
    CK(cudaEventRecord(after, s1));
    double took = now_ms() - t0;
    __atomic_store_n(&gate_open, 1, __ATOMIC_SEQ_CST);
    CK(cudaEventSynchronize(after));
    CK(cudaMemcpy(&cv, cnt, sizeof(int), cudaMemcpyDeviceToHost));
    EXPECT(took < 100, "queuing behind a gated host function took %.0f ms",
           took);
    EXPECT(cv == 1, "the kernel behind the gate: counter %d, expected 1", cv);

    word = 0;
    CK(cudaLaunchHostFunc(s1, slow_write, &word));
    CK(cudaMemcpy(cnt, &word, sizeof(int), cudaMemcpyHostToDevice));
    CK(cudaMemcpy(&cv, cnt, sizeof(int), cudaMemcpyDeviceToHost));
    EXPECT(cv == 42, "the legacy copy after a blocking stream's host "
           "function read %d, expected 42", cv);
    CK(cudaEventDestroy(after));
    CK(cudaFree(cnt));
    alarm(0);
  }
  printf("work queued behind host functions: ok\n");

  // cudaFree waits for the device's work, also on a non-blocking stream
  // (whose work tremote sends down a lane of its own): the kernel queued
  // behind a 20 ms spin still finds its memory.
  {
    cudaStream_t nb;
    int *m;

    CK(cudaStreamCreateWithFlags(&nb, cudaStreamNonBlocking));
    CK(cudaMalloc(&m, sizeof(int)));
    spin<<<1, 1, 0, nb>>>(20000000ull);
    add1<<<1, 1, 0, nb>>>(m, 1);
    CK(cudaFree(m));
    CK(cudaDeviceSynchronize());
    CK(cudaGetLastError());
    CK(cudaStreamDestroy(nb));
    printf("cudaFree after work on a non-blocking stream: ok\n");
  }

  // More non-blocking streams than tremote keeps lanes for in a thread
  // (16): each stream's work, in two rounds, stays in its order, and the
  // asynchronous copies into page-locked memory all arrive.
  {
    const int ns = 20, n = 1 << 18;
    cudaStream_t st[20];
    int *dm, *hm;

    CK(cudaMalloc(&dm, ns * n * sizeof(int)));
    CK(cudaMallocHost(&hm, ns * n * sizeof(int)));
    for (int i = 0; i < ns; i++)
      CK(cudaStreamCreateWithFlags(&st[i], cudaStreamNonBlocking));
    for (int round = 0; round < 2; round++)
      for (int i = 0; i < ns; i++) {
        int *d = dm + i * n;

        if (round == 0)
          CK(cudaMemsetAsync(d, 0, n * sizeof(int), st[i]));
        scale<<<n / 256, 256, 0, st[i]>>>(d, 0, n); // d = 0 * d
        add_all<<<n / 256, 256, 0, st[i]>>>(d, i + 1, n);
        CK(cudaMemcpyAsync(hm + i * n, d, n * sizeof(int),
                           cudaMemcpyDeviceToHost, st[i]));
      }
    for (int i = 0; i < ns; i++)
      CK(cudaStreamSynchronize(st[i]));
    for (int i = 0; i < ns; i++)
      for (int k = 0; k < n; k += 997)
        EXPECT(hm[i * n + k] == i + 1, "stream %d element %d is %d, expected %d",
               i, k, hm[i * n + k], i + 1);
    for (int i = 0; i < ns; i++)
      CK(cudaStreamDestroy(st[i]));
    CK(cudaFreeHost(hm));
    CK(cudaFree(dm));
    printf("20 non-blocking streams: ok\n");
  }

  CK(cudaEventDestroy(e));
  CK(cudaEventDestroy(start));
  CK(cudaEventDestroy(stop));
  CK(cudaEventDestroy(notime));
  CK(cudaEventDestroy(never));
  CK(cudaStreamDestroy(s1));
  CK(cudaStreamDestroy(s2));
  CK(cudaStreamDestroy(s3));
  CK(cudaFree(a));
  CK(cudaFree(b));
  CK(cudaFree(c));
  CK(cudaDeviceSynchronize());
  printf("PASS streams_events\n");
  return 0;
}
