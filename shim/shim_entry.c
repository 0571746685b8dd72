/*
 * shim_entry.c: tremote_shim_v1, the entry table libtremote reaches the
 * program's own CUDA state through (include/tremote/shim_entry.h).
 */
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

__attribute__((visibility("default")))
const struct tremote_shim_entry_v1 tremote_shim_v1 = {
    .version = 1,
    .size = sizeof(struct tremote_shim_entry_v1),
    .machine_device = machine_device,
    .device_machine = device_machine,
    .current_device = current_device,
    .device_count = device_count,
};
