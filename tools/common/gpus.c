/*
 * gpus.c: the GPU type table (gpus.h), with what Modal and NVIDIA say of
 * each type: Modal's gpu= string, memory, architecture and compute
 * capability.  Modal's strings are those of its GPU guide: it names the
 * A10G "A10", and "H100!" keeps it from upgrading an H100 to an H200 (the
 * app, tools/modal/tremote_modal.py, uses the same).
 */
#include <strings.h>

#include "gpus.h"

#define GB (1000ull * 1000 * 1000)

const struct tremote_gpu_info tr_gpus[TREMOTE_GPU_COUNT] = {
    [TREMOTE_GPU_T4] = {"T4", "T4", 16 * GB, "Turing", 7, 5},
    [TREMOTE_GPU_L4] = {"L4", "L4", 24 * GB, "Ada Lovelace", 8, 9},
    [TREMOTE_GPU_A10G] = {"A10G", "A10", 24 * GB, "Ampere", 8, 6},
    [TREMOTE_GPU_A100_40GB] = {"A100-40GB", "A100-40GB", 40 * GB, "Ampere",
                               8, 0},
    [TREMOTE_GPU_A100_80GB] = {"A100-80GB", "A100-80GB", 80 * GB, "Ampere",
                               8, 0},
    [TREMOTE_GPU_L40S] = {"L40S", "L40S", 48 * GB, "Ada Lovelace", 8, 9},
    [TREMOTE_GPU_H100] = {"H100", "H100!", 80 * GB, "Hopper", 9, 0},
    [TREMOTE_GPU_H200] = {"H200", "H200", 141 * GB, "Hopper", 9, 0},
    [TREMOTE_GPU_B200] = {"B200", "B200", 180 * GB, "Blackwell", 10, 0},
};

int tr_gpu_find(const char *name)
{
  for (int i = 0; name && i < TREMOTE_GPU_COUNT; i++)
    if (strcasecmp(name, tr_gpus[i].name) == 0)
      return i;
  return -1;
}

const char *tr_gpu_valid_list(void)
{
  return "T4, L4, A10G, A100-40GB, A100-80GB, L40S, H100, H200, B200";
}
