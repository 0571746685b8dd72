// lane_move: a stream's lane moving from the broker's express connection
// to its bulk one (docs/PROTOCOL.md §3).  A new stream's lane opens on
// the express connection with a launch and moves before its first large
// copy; the checks hold on a GPU too, where nothing moves:
//  - work queued before the move runs before the copy after it (three
//    streams, each a fill kernel then a 1 MiB device-to-host copy);
//  - the error of a call queued before the move (a memset of memory that
//    is not allocated) is reported, by that call or by the next
//    synchronisation, and is not sticky: the stream works afterwards; a
//    call that reports it keeps its own result (the copy's bytes arrive,
//    cudaMalloc's pointer is given: TR_F_DEFERRED);
//  - a kernel's first launch, which loads its module, reporting an
//    earlier call's error does not leave the module unloaded: the
//    launches after it work;
//  - a lane whose last copy is over a second old returns to the express
//    connection once it keeps making small calls (the broker waits for
//    eight), and moves again for the next copy, with order and a queued
//    error kept both ways;
//  - a thread that uploads with cudaMemcpy and exits at once (its lane
//    closes right after the copy that moved it): the bytes land and the
//    program's session goes on.
// Prints PASS.
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "app_check.h"

__global__ void fill(int *p, int base, int n)
{
  int i = blockIdx.x * blockDim.x + threadIdx.x;

  if (i < n)
    p[i] = base + i;
}

static void expect_fill(const int *h, int base, int n)
{
  for (int i = 0; i < n; i++)
    EXPECT(h[i] == base + i, "h[%d] = %d, want %d", i, h[i], base + i);
}

/* A thread that uploads and exits: its lane opens on the express
   connection with a small call, moves for the copy (a pageable copy into
   a live allocation waits for no reply) and closes at once. */
struct upload {
  int *d;
  const int *h;
  int n;
  cudaError_t e1, e2;
};

static void *uploader(void *arg)
{
  struct upload *u = (struct upload *)arg;

  u->e1 = cudaMemset(u->d, 0, 64);
  u->e2 = cudaMemcpy(u->d, u->h, u->n * sizeof(int), cudaMemcpyHostToDevice);
  return NULL;
}

int main(void)
{
  const int n = 1 << 18; /* 1 MiB of ints */
  int *d, *h = (int *)malloc(n * sizeof(int));
  cudaStream_t s;
  cudaError_t e1, e2, e3;

  EXPECT(h, "out of host memory");
  CK(cudaMalloc(&d, n * sizeof(int)));

  /* The module loads with the first launch, whose reply reports the bad
     memset's error (through tremote; natively the memset does). */
  e1 = cudaMemsetAsync((char *)d + (256u << 20), 0, 4096, 0);
  fill<<<n / 256, 256>>>(d, 3, n);
  e2 = cudaGetLastError();
  e3 = cudaDeviceSynchronize();
  EXPECT(e1 == cudaErrorInvalidValue || e2 == cudaErrorInvalidValue ||
             e3 == cudaErrorInvalidValue,
         "the bad memset before the first launch was not reported: %s, %s, %s",
         cudaGetErrorName(e1), cudaGetErrorName(e2), cudaGetErrorName(e3));
  (void)cudaGetLastError();
  fill<<<n / 256, 256>>>(d, 4, n);
  CK(cudaGetLastError());
  CK(cudaMemcpy(h, d, n * sizeof(int), cudaMemcpyDeviceToHost));
  expect_fill(h, 4, n);
  for (int k = 0; k < 3; k++) {
    CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    memset(h, 0, n * sizeof(int));
    fill<<<n / 256, 256, 0, s>>>(d, 1000 * (k + 1), n);
    CK(cudaGetLastError());
    CK(cudaMemcpyAsync(h, d, n * sizeof(int), cudaMemcpyDeviceToHost, s));
    CK(cudaStreamSynchronize(s));
    expect_fill(h, 1000 * (k + 1), n);
    CK(cudaStreamDestroy(s));
  }

  /* An error queued before the move.  Natively cudaMemsetAsync reports it
     at once; through tremote, at the synchronisation. */
  CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  fill<<<n / 256, 256, 0, s>>>(d, 7, n);
  e1 = cudaMemsetAsync((char *)d + (256u << 20), 0, 4096, s);
  e2 = cudaMemcpyAsync(h, d, n * sizeof(int), cudaMemcpyDeviceToHost, s);
  e3 = cudaStreamSynchronize(s);
  EXPECT(e1 == cudaErrorInvalidValue || e2 == cudaErrorInvalidValue ||
             e3 == cudaErrorInvalidValue,
         "the bad memset was not reported: %s, %s, %s", cudaGetErrorName(e1),
         cudaGetErrorName(e2), cudaGetErrorName(e3));
  expect_fill(h, 7, n); /* the copy ran, whoever reported the error */
  (void)cudaGetLastError();

  /* The same on the default stream with a call that returns something:
     cudaMalloc reports the memset's error (through tremote) and still
     gives its memory. */
  int *p2 = NULL;
  e1 = cudaMemsetAsync((char *)d + (256u << 20), 0, 4096, 0);
  e2 = cudaMalloc(&p2, 4096);
  EXPECT(e1 == cudaErrorInvalidValue || e2 == cudaErrorInvalidValue,
         "the bad memset on the default stream was not reported: %s, %s",
         cudaGetErrorName(e1), cudaGetErrorName(e2));
  EXPECT(p2 != NULL, "cudaMalloc gave no memory (%s)", cudaGetErrorName(e2));
  (void)cudaGetLastError();
  CK(cudaMemset(p2, 0, 4096));
  CK(cudaFree(p2));
  memset(h, 0, n * sizeof(int));
  CK(cudaMemcpyAsync(h, d, n * sizeof(int), cudaMemcpyDeviceToHost, s));
  CK(cudaStreamSynchronize(s));
  expect_fill(h, 7, n);

  /* The return: more than a second (the broker's BRK_LANE_RETURN_MS)
     after its last copy, the lane's small calls take it back to the
     express connection; the copy after them takes it to the bulk one. */
  usleep(1300 * 1000);
  int v = 0;
  for (int k = 0; k < 12; k++)
    fill<<<n / 256, 256, 0, s>>>(d, 10 + k, n);
  CK(cudaGetLastError());
  CK(cudaMemcpyAsync(&v, d + 5, sizeof(int), cudaMemcpyDeviceToHost, s));
  e1 = cudaMemsetAsync((char *)d + (256u << 20), 0, 4096, s);
  e3 = cudaStreamSynchronize(s);
  EXPECT(e1 == cudaErrorInvalidValue || e3 == cudaErrorInvalidValue,
         "the bad memset after the return was not reported: %s, %s",
         cudaGetErrorName(e1), cudaGetErrorName(e3));
  (void)cudaGetLastError();
  EXPECT(v == 26, "after the return: d[5] = %d, want 26", v);
  memset(h, 0, n * sizeof(int));
  CK(cudaMemcpyAsync(h, d, n * sizeof(int), cudaMemcpyDeviceToHost, s));
  CK(cudaStreamSynchronize(s));
  expect_fill(h, 21, n);

  /* Two moves and no reply between them: an error queued on the bulk
     connection travels with the return's fence and then with the next
     move's, and the synchronisation reports it. */
  e1 = cudaMemsetAsync((char *)d + (256u << 20), 0, 4096, s);
  usleep(1300 * 1000);
  for (int k = 0; k < 12; k++)
    fill<<<n / 256, 256, 0, s>>>(d, 30 + k, n);
  e2 = cudaMemcpyAsync(d, h, n * sizeof(int), cudaMemcpyHostToDevice, s);
  e3 = cudaStreamSynchronize(s);
  EXPECT(e1 == cudaErrorInvalidValue || e2 == cudaErrorInvalidValue ||
             e3 == cudaErrorInvalidValue,
         "the bad memset before two moves was not reported: %s, %s, %s",
         cudaGetErrorName(e1), cudaGetErrorName(e2), cudaGetErrorName(e3));
  (void)cudaGetLastError();
  memset(h, 0, n * sizeof(int));
  CK(cudaMemcpyAsync(h, d, n * sizeof(int), cudaMemcpyDeviceToHost, s));
  CK(cudaStreamSynchronize(s));
  expect_fill(h, 21, n); /* the upload after the launches */
  CK(cudaStreamDestroy(s));

  /* A thread that exits right after the copy that moved its lane. */
  {
    struct upload u = {d, NULL, n, cudaSuccess, cudaSuccess};
    int *src = (int *)malloc(n * sizeof(int));
    pthread_t th;

    EXPECT(src, "out of host memory");
    for (int i = 0; i < n; i++)
      src[i] = 500 + i;
    u.h = src;
    EXPECT(pthread_create(&th, NULL, uploader, &u) == 0, "pthread_create");
    pthread_join(th, NULL);
    CK(u.e1);
    CK(u.e2);
    CK(cudaDeviceSynchronize());
    memset(h, 0, n * sizeof(int));
    CK(cudaMemcpy(h, d, n * sizeof(int), cudaMemcpyDeviceToHost));
    expect_fill(h, 500, n);
    free(src);
  }
  CK(cudaFree(d));
  free(h);
  printf("PASS\n");
  return 0;
}
