/*
 * gpus.h: the GPU types a machine can be asked for (the seed's GPUType),
 * one table for libtremote, the broker and tremote-smi.
 */
#ifndef TR_GPUS_H
#define TR_GPUS_H

#include "tremote/tremote.h"

extern const struct tremote_gpu_info tr_gpus[TREMOTE_GPU_COUNT];

/* The index of name (case-insensitive, as Modal is), or -1. */
int tr_gpu_find(const char *name);

/* "T4, L4, A10G, ..., B200": the valid names, for error messages. */
const char *tr_gpu_valid_list(void);

#endif /* TR_GPUS_H */
