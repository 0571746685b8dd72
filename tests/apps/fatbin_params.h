/*
 * fatbin_params.h: the table that tests/apps/fatbin_params.cu exports and
 * tests/unit/test_fatbin.c reads.  The host compiler lays out a mirror
 * struct of each kernel's parameters; CUDA passes kernel parameters with
 * the host ABI's alignment and padding, so offsetof/sizeof on the mirror is
 * the layout the launch packer must reproduce from the fatbin alone.
 * Shared by C and C++, so plain types only.
 */
#ifndef FATBIN_PARAMS_H
#define FATBIN_PARAMS_H

#include <stdint.h>

#define FBP_MAX_PARAMS 48

struct fbp_param {
	uint32_t offset, size;
};

struct fbp_kernel {
	const void *host_fn; /* the stub __cudaRegisterFunction receives */
	const char *label;
	uint32_t count;      /* parameters */
	uint32_t total;      /* end of the last parameter */
	uint32_t e2big;      /* more than TR_KPARAMS_MAX: expect -E2BIG */
	struct fbp_param p[FBP_MAX_PARAMS];
};

#ifdef __cplusplus
extern "C" {
#endif
/* Looked up with dlsym() in each nvcc-built variant of the library. */
extern const struct fbp_kernel fbp_kernels[];
extern const uint32_t fbp_nkernels;
#ifdef __cplusplus
}
#endif

#endif /* FATBIN_PARAMS_H */
