/*
 * shim_errors.c - cudaGetErrorName and cudaGetErrorString, and the
 * "not supported yet" reply shared by the stubs.
 *
 * Both CUDA calls are pure: they answer from the table in
 * tools/common/cuerr.h, which holds libcudart.so.13's own names and strings,
 * so a program printing an error sees exactly what it would see natively.
 * Like libcudart, they return "unrecognized error code" for a code the
 * table does not have and leave the last error alone.
 */
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>

#include <cuda_runtime_api.h>

#include "cuerr.h"
#include "shim_errstate.h"

/* Every row of the table must carry the toolkit's number for its name. */
#define SHIM_CHECK_ROW_(num, name, str) \
	_Static_assert((int)(name) == (num), #name " has another number in driver_types.h");
TR_CUDA_ERRORS(SHIM_CHECK_ROW_)
#undef SHIM_CHECK_ROW_
_Static_assert(SHIM_ERR_NOT_SUPPORTED == cudaErrorNotSupported,
	       "SHIM_ERR_NOT_SUPPORTED must be cudaErrorNotSupported");

const char *cudaGetErrorName(cudaError_t error)
{
	return tr_cuerr_name((int)error);
}

const char *cudaGetErrorString(cudaError_t error)
{
	return tr_cuerr_string((int)error);
}

/* Replaced by shim_core.c's definition; see shim_errstate.h. */
__attribute__((weak)) void shim_set_last_error(int err)
{
	(void)err;
}

static void write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return;	/* stderr closed or full: nothing to do */
		}
		buf += n;
		len -= (size_t)n;
	}
}

void shim_warn_unsupported(atomic_int *once, const char *name)
{
	static const char pre[] = "tremote: ";
	static const char post[] = " is not supported yet (cudaErrorNotSupported)\n";
	char line[256];
	size_t n = strlen(name);
	int saved_errno = errno;

	if (atomic_exchange_explicit(once, 1, memory_order_relaxed))
		return;
	/* CUDA names are short; cut a pathological one rather than overflow. */
	if (n > sizeof(line) - sizeof(pre) - sizeof(post))
		n = sizeof(line) - sizeof(pre) - sizeof(post);
	memcpy(line, pre, sizeof(pre) - 1);
	memcpy(line + sizeof(pre) - 1, name, n);
	memcpy(line + sizeof(pre) - 1 + n, post, sizeof(post) - 1);
	/* One write(2), so lines from racing threads do not interleave. */
	write_all(STDERR_FILENO, line, sizeof(pre) - 1 + n + sizeof(post) - 1);
	errno = saved_errno;	/* the program's errno is none of our business */
}

int shim_unsupported(atomic_int *once, const char *name)
{
	shim_warn_unsupported(once, name);
	shim_set_last_error(SHIM_ERR_NOT_SUPPORTED);
	return SHIM_ERR_NOT_SUPPORTED;
}
