/*
 * shim_entry.h: the shim's private entry table, its one export beyond
 * libcudart's (symbol tremote_shim_v1, version node TREMOTE_SHIM_1).
 *
 * libtremote finds it with dlsym(RTLD_DEFAULT, "tremote_shim_v1") when the
 * program runs under the shim, and asks it what only the program's own
 * CUDA state knows: which CUDA ordinal a machine is in this program (after
 * TREMOTE_VISIBLE_DEVICES), and the current device.  A new field goes at
 * the end with the size telling the reader it is there; an incompatible
 * change is a new symbol (tremote_shim_v2).
 */
#ifndef TREMOTE_SHIM_ENTRY_H
#define TREMOTE_SHIM_ENTRY_H

#include <stdint.h>

struct tremote_shim_entry_v1 {
  uint32_t version; /* 1 */
  uint32_t size;    /* sizeof(struct tremote_shim_entry_v1) of the shim */
  /* The CUDA ordinal of the broker's machine remote_index in this
     program, or -1 (hidden, or no broker).  Connects if not yet. */
  int (*machine_device)(int remote_index);
  /* The broker's index of CUDA ordinal dev, or -1. */
  int (*device_machine)(int dev);
  /* The calling thread's current CUDA ordinal (cudaGetDevice), or -1. */
  int (*current_device)(void);
  /* CUDA devices this program sees (cudaGetDeviceCount), or -1. */
  int (*device_count)(void);
  /*
   * Random numbers (tools/common/philox.h): one generator per device of
   * the program, state (seed, offset), (0, 0) until seeded.  dev -1 in
   * manual_seed means every device.  cudaError_t numbers (0 success).
   */
  int (*manual_seed)(int dev, uint64_t seed);
  int (*get_rng_state)(int dev, uint64_t *seed, uint64_t *offset);
  int (*set_rng_state)(int dev, uint64_t seed, uint64_t offset);
  /* Fill n floats at device pointer dptr on its own machine with its
     device's generator (dist: 0 uniform, 1 normal), on the default
     stream, without moving them; advances the offset by ceil(n / 4). */
  int (*rand_fill)(void *dptr, uint64_t n, int dist);
};

#define TREMOTE_SHIM_ENTRY_SYMBOL "tremote_shim_v1"

#endif /* TREMOTE_SHIM_ENTRY_H */
