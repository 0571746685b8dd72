/*
 * shim_entry.c: tremote_shim_v1, the entry table libtremote reaches the
 * program's own CUDA state through (include/tremote/shim_entry.h).
 */
#include <pthread.h>

#include "philox.h"
#include "shim.h"
#include "tremote/shim_entry.h"

/* The same start as any CUDA call: connect to the broker on first use. */
static int connected(void)
{
  struct shim_thread *t;

  return shim_ready(&t) == cudaSuccess ? 1 : 0;
}

static int machine_device(int remote_index)
{
  if (!connected())
    return -1;
  for (uint32_t i = 0; i < shim_proc.cli.ndev; i++)
    if ((int)shim_proc.cli.dev[i].machine_index == remote_index)
      return (int)i;
  return -1;
}

static int device_machine(int dev)
{
  if (!connected() || dev < 0 || (uint32_t)dev >= shim_proc.cli.ndev)
    return -1;
  return (int)shim_proc.cli.dev[dev].machine_index;
}

static int current_device(void)
{
  int dev = -1;

  return cudaGetDevice(&dev) == cudaSuccess ? dev : -1;
}

static int device_count(void)
{
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);

  return e == cudaSuccess || e == cudaErrorNoDevice ? n : -1;
}

/* ---- random numbers ---------------------------------------------------- */

static pthread_mutex_t rng_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
  uint64_t seed, offset;
} rng[TR_CLIENT_MAX_DEV];

static int rng_dev_ok(int dev)
{
  return connected() && dev >= 0 && (uint32_t)dev < shim_proc.cli.ndev &&
         dev < TR_CLIENT_MAX_DEV;
}

static int manual_seed(int dev, uint64_t seed)
{
  if (dev != -1 && !rng_dev_ok(dev))
    return cudaErrorInvalidDevice;
  if (dev == -1 && !connected())
    return cudaErrorNoDevice;
  pthread_mutex_lock(&rng_lock);
  for (int i = 0; i < TR_CLIENT_MAX_DEV; i++)
    if (dev == -1 || i == dev) {
      rng[i].seed = seed;
      rng[i].offset = 0;
    }
  pthread_mutex_unlock(&rng_lock);
  return cudaSuccess;
}

static int get_rng_state(int dev, uint64_t *seed, uint64_t *offset)
{
  if (!rng_dev_ok(dev))
    return cudaErrorInvalidDevice;
  pthread_mutex_lock(&rng_lock);
  *seed = rng[dev].seed;
  *offset = rng[dev].offset;
  pthread_mutex_unlock(&rng_lock);
  return cudaSuccess;
}

static int set_rng_state(int dev, uint64_t seed, uint64_t offset)
{
  if (!rng_dev_ok(dev))
    return cudaErrorInvalidDevice;
  pthread_mutex_lock(&rng_lock);
  rng[dev].seed = seed;
  rng[dev].offset = offset;
  pthread_mutex_unlock(&rng_lock);
  return cudaSuccess;
}

/* Like cudaMemsetAsync on the default stream: queued, no round trip; a
   bad range surfaces at the next synchronisation, as CUDA's would. */
static int rand_fill(void *dptr, uint64_t n, int dist)
{
  struct shim_thread *t;
  struct shim_stream *s;
  uint8_t a[40];
  uint64_t seed, offset;
  cudaError_t e = shim_stream_begin(&t, NULL, &s);
  int dev;

  if (e != cudaSuccess)
    return e;
  if (dist != TR_RAND_UNIFORM && dist != TR_RAND_NORMAL)
    return shim_fail(t, cudaErrorInvalidValue);
  if (n == 0)
    return cudaSuccess;
  dev = shim_device_of(dptr);
  if (dev < 0 || dev >= TR_CLIENT_MAX_DEV || n > UINT64_MAX / 4)
    return shim_fail(t, cudaErrorInvalidValue);
  pthread_mutex_lock(&rng_lock);
  seed = rng[dev].seed;
  offset = rng[dev].offset;
  rng[dev].offset += tr_rand_blocks(n);
  pthread_mutex_unlock(&rng_lock);
  tr_put_u64(a, (uint64_t)(uintptr_t)dptr);
  tr_put_u64(a + 8, n);
  tr_put_u32(a + 16, (uint32_t)dist);
  tr_put_u32(a + 20, 0);
  tr_put_u64(a + 24, seed);
  tr_put_u64(a + 32, offset);
  e = shim_cuda_error(t, shim_call(t, dev, TR_OP_RAND_FILL, a, sizeof(a),
                                   NULL, 0, 0, NULL, 0, NULL));
  if (e == cudaSuccess)
    shim_stream_mark(t, s);
  return e;
}

__attribute__((visibility("default")))
const struct tremote_shim_entry_v1 tremote_shim_v1 = {
    .version = 1,
    .size = sizeof(struct tremote_shim_entry_v1),
    .machine_device = machine_device,
    .device_machine = device_machine,
    .current_device = current_device,
    .device_count = device_count,
    .manual_seed = manual_seed,
    .get_rng_state = get_rng_state,
    .set_rng_state = set_rng_state,
    .rand_fill = rand_fill,
};
