/*
 * cuerr.c - lookups over the CUDA error table in cuerr.h.
 *
 * The lookups are switches generated from the X-macro: the compiler turns
 * them into jump tables or binary searches, and a duplicated number in the
 * table is a compile error (duplicate case value), which keeps the table
 * honest without a runtime check.
 */
#include <errno.h>
#include <limits.h>

#include "cuerr.h"

const char *tr_cuerr_name(int code)
{
	switch (code) {
#define TR_CUERR_NAME_(num, name, str) case (num): return #name;
	TR_CUDA_ERRORS(TR_CUERR_NAME_)
#undef TR_CUERR_NAME_
	default:
		return TR_CUERR_UNRECOGNIZED;
	}
}

const char *tr_cuerr_string(int code)
{
	switch (code) {
#define TR_CUERR_STRING_(num, name, str) case (num): return str;
	TR_CUDA_ERRORS(TR_CUERR_STRING_)
#undef TR_CUERR_STRING_
	default:
		return TR_CUERR_UNRECOGNIZED;
	}
}

int tr_cuerr_known(int code)
{
	switch (code) {
#define TR_CUERR_KNOWN_(num, name, str) case (num):
	TR_CUDA_ERRORS(TR_CUERR_KNOWN_)
#undef TR_CUERR_KNOWN_
		return 1;
	default:
		return 0;
	}
}

int tr_cuerr_from_errno(int neg_errno)
{
	int e;

	if (neg_errno == 0)
		return TR_cudaSuccess;
	/* INT_MIN has no positive counterpart (and is no errno anyway). */
	if (neg_errno == INT_MIN)
		return TR_cudaErrorUnknown;
	e = neg_errno < 0 ? -neg_errno : neg_errno;

	/*
	 * An if-chain rather than a switch: some errno names share a value
	 * (EOPNOTSUPP == ENOTSUP and EWOULDBLOCK == EAGAIN on Linux), which a
	 * switch would reject as duplicate cases.
	 */
#define TR_CUERR_ERRNO_(err, name) if (e == (err)) return TR_##name;
	TR_ERRNO_TO_CUDA(TR_CUERR_ERRNO_)
#undef TR_CUERR_ERRNO_
	return TR_cudaErrorUnknown;
}
