// program_life.cu: a CUDA program's life under tremote (issue 5, part 3).
//
//   program_life fork      the parent uses its device, forks; the child
//                          uses CUDA on its own (a fresh session: malloc,
//                          copies, a kernel) while the parent goes on with
//                          its own memory; both check every result.  A
//                          static destructor frees device memory after main
//                          returns, and must succeed.
//   program_life meminfo   prints "free=<bytes> total=<bytes>" of device 0.
//   program_life copyloop  copies 256 MiB back and forth until killed,
//                          printing COPYING once the first copy is done.
//   program_life keydtor   threads leave a device buffer in a TLS key made
//                          after the shim's, whose destructor (run after
//                          the shim's own) frees it: every cudaFree must
//                          succeed (the shim's thread state is gone by then).
//   program_life forkidle  only a worker thread uses CUDA (default-stream
//                          work); main, which never called CUDA, forks, and
//                          the child's default-stream copy must not wait
//                          for the parent's threads.
// Prints PASS on success.
#include <cuda_runtime.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CK(call)                                                               \
  do {                                                                         \
    cudaError_t e_ = (call);                                                   \
    if (e_ != cudaSuccess) {                                                   \
      fprintf(stderr, "FAIL [%d] %s at line %d: %s\n", (int)getpid(), #call,  \
              __LINE__, cudaGetErrorName(e_));                                 \
      exit(2);                                                                 \
    }                                                                          \
  } while (0)

#define N (1 << 16)

__global__ void add(int *p, int v, int n)
{
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n)
    p[i] += v;
}

// Round trip: fill with base+i, add v on the device, read back, check.
static int use_device(int *d, int base, int v)
{
  static int h[N];

  for (int i = 0; i < N; i++)
    h[i] = base + i;
  CK(cudaMemcpy(d, h, sizeof(h), cudaMemcpyHostToDevice));
  add<<<(N + 255) / 256, 256>>>(d, v, N);
  CK(cudaGetLastError());
  CK(cudaMemcpy(h, d, sizeof(h), cudaMemcpyDeviceToHost));
  for (int i = 0; i < N; i++)
    if (h[i] != base + i + v) {
      fprintf(stderr, "FAIL [%d] element %d: %d, expected %d\n", (int)getpid(),
              i, h[i], base + i + v);
      return 1;
    }
  return 0;
}

// Freed by a static destructor, after main has returned.
static struct Global {
  int *d = nullptr;
  bool parent = true;
  ~Global()
  {
    if (!d || !parent)
      return;
    cudaError_t e = cudaFree(d);
    printf("static destructor cudaFree: %s\n", e == cudaSuccess ? "ok" : cudaGetErrorName(e));
    fflush(stdout);
  }
} global;

// keydtor: the program's own TLS destructor, run after the shim's.
#define KEY_THREADS 4
static pthread_key_t buf_key;
static int frees_ok; // atomically counted: destructors run on each thread

static void free_buf(void *p)
{
  cudaError_t e = cudaFree(p);
  if (e == cudaSuccess)
    __atomic_add_fetch(&frees_ok, 1, __ATOMIC_SEQ_CST);
  else
    fprintf(stderr, "FAIL key destructor cudaFree: %s\n", cudaGetErrorName(e));
}

static void *keep_buf(void *arg)
{
  void *p;
  (void)arg;
  CK(cudaMalloc(&p, 1 << 20));
  pthread_setspecific(buf_key, p);
  return NULL;
}

static int key_destructor(void)
{
  CK(cudaFree(0)); // the shim's key first: its destructor runs first
  pthread_key_create(&buf_key, free_buf);
  for (int i = 0; i < KEY_THREADS; i++) {
    pthread_t th;
    pthread_create(&th, NULL, keep_buf, NULL);
    pthread_join(th, NULL);
  }
  if (frees_ok != KEY_THREADS) {
    fprintf(stderr, "FAIL %d of %d key destructor frees succeeded\n",
            frees_ok, KEY_THREADS);
    return 1;
  }
  printf("PASS program_life keydtor\n");
  return 0;
}

// forkidle: default-stream work done by a thread other than the forking one.
static void *legacy_work(void *arg)
{
  int *d;
  (void)arg;
  CK(cudaMalloc(&d, 64));
  CK(cudaMemset(d, 1, 64));
  CK(cudaDeviceSynchronize());
  return NULL;
}

static int fork_idle(void)
{
  pthread_t th;
  pthread_create(&th, NULL, legacy_work, NULL);
  pthread_join(th, NULL);
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    return 1;
  }
  if (pid == 0) {
    int *d, h = 0;
    alarm(10); // a hang is the failure this mode looks for
    CK(cudaMalloc(&d, 4));
    CK(cudaMemset(d, 7, 4));
    CK(cudaMemcpy(&h, d, 4, cudaMemcpyDeviceToHost));
    if (h != 0x07070707) {
      fprintf(stderr, "FAIL child read %#x\n", h);
      _exit(1);
    }
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "FAIL the child exited with status %#x%s\n", status,
            WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM ? " (hung)" : "");
    return 1;
  }
  printf("PASS program_life forkidle\n");
  return 0;
}

int main(int argc, char **argv)
{
  const char *mode = argc > 1 ? argv[1] : "fork";

  if (strcmp(mode, "meminfo") == 0) {
    size_t fr = 0, total = 0;
    CK(cudaMemGetInfo(&fr, &total));
    printf("free=%zu total=%zu\n", fr, total);
    printf("PASS program_life meminfo\n");
    return 0;
  }
  if (strcmp(mode, "keydtor") == 0)
    return key_destructor();
  if (strcmp(mode, "forkidle") == 0)
    return fork_idle();
  if (strcmp(mode, "copyloop") == 0) {
    const size_t size = 256u << 20;
    char *h = (char *)malloc(size), *dd;
    global.parent = false;
    memset(h, 0x5a, size);
    CK(cudaMalloc(&dd, size));
    for (int r = 0;; r++) {
      CK(cudaMemcpy(dd, h, size, cudaMemcpyHostToDevice));
      CK(cudaMemcpy(h, dd, size, cudaMemcpyDeviceToHost));
      if (r == 0) {
        printf("COPYING\n");
        fflush(stdout);
      }
    }
  }
  int *d;
  CK(cudaMalloc(&d, N * sizeof(int)));
  CK(cudaMalloc(&global.d, 4096));
  if (use_device(d, 1000, 7))
    return 1;
  printf("parent before fork: ok\n");
  fflush(stdout);

  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    return 1;
  }
  if (pid == 0) {
    // The parent's pointers are not ours: a fresh session, our own memory.
    int count = 0, *dc;
    global.parent = false;
    CK(cudaGetDeviceCount(&count));
    if (count < 1) {
      fprintf(stderr, "FAIL child sees %d devices\n", count);
      _exit(1);
    }
    CK(cudaMalloc(&dc, N * sizeof(int)));
    for (int r = 0; r < 10; r++)
      if (use_device(dc, 50000 + r, 3))
        _exit(1);
    CK(cudaFree(dc));
    printf("child: ok\n");
    fflush(stdout);
    _exit(0);
  }
  // Meanwhile the parent keeps using its own session.
  for (int r = 0; r < 10; r++)
    if (use_device(d, 2000 + r, 11))
      return 1;
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "FAIL the child exited with status %#x\n", status);
    return 1;
  }
  if (use_device(d, 3000, 5))
    return 1;
  CK(cudaFree(d));
  printf("parent after fork: ok\n");
  printf("PASS program_life fork\n");
  return 0;
}
