/*
 * test_cuerr.c - the CUDA error table (tools/common/cuerr.h).
 *
 * Checked three ways:
 *   - at compile time, against the toolkit's driver_types.h: every row's
 *     number is the enumerator's (static asserts), and every enumerator has
 *     a row (a switch without default under -Werror=switch-enum);
 *   - at run time, by sample: a dozen codes whose names and strings are
 *     well known, unknown codes, and the errno mapping;
 *   - at run time, in full, against the real libcudart.so.13 when it can be
 *     loaded: its cudaGetErrorName/cudaGetErrorString need no driver.
 */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <driver_types.h>

#include "cuerr.h"

#define CHECK_ROW(num, name, str) \
	_Static_assert((int)(name) == (num), #name ": table number differs from driver_types.h");
TR_CUDA_ERRORS(CHECK_ROW)
#undef CHECK_ROW

#pragma GCC diagnostic push
#pragma GCC diagnostic error "-Wswitch"
#pragma GCC diagnostic error "-Wswitch-enum"
/* Fails to compile if driver_types.h has an enumerator the table lacks. */
static int in_enum(enum cudaError e)
{
	switch (e) {
#define CASE_ROW(num, name, str) case name:
	TR_CUDA_ERRORS(CASE_ROW)
#undef CASE_ROW
		return 1;
	}
	return 0;
}
#pragma GCC diagnostic pop

struct row {
	int num;
	const char *name;
	const char *str;
};

static const struct row rows[] = {
#define ROW(num, name, str) { num, #name, str },
	TR_CUDA_ERRORS(ROW)
#undef ROW
};

static void test_every_row_is_an_enumerator(void **state)
{
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		assert_true(in_enum((enum cudaError)rows[i].num));
		assert_true(tr_cuerr_known(rows[i].num));
		assert_string_equal(tr_cuerr_name(rows[i].num), rows[i].name);
		assert_string_equal(tr_cuerr_string(rows[i].num), rows[i].str);
	}
	/* CUDA 13.0's enum cudaError has 134 values, cudaErrorApiFailureBase
	 * included. */
	assert_int_equal(sizeof(rows) / sizeof(rows[0]), 134);
}

static void test_known_codes(void **state)
{
	static const struct row samples[] = {
		{ 0, "cudaSuccess", "no error" },
		{ 1, "cudaErrorInvalidValue", "invalid argument" },
		{ 2, "cudaErrorMemoryAllocation", "out of memory" },
		{ 3, "cudaErrorInitializationError", "initialization error" },
		{ 35, "cudaErrorInsufficientDriver",
		  "CUDA driver version is insufficient for CUDA runtime version" },
		{ 46, "cudaErrorDevicesUnavailable",
		  "CUDA-capable device(s) is/are busy or unavailable" },
		{ 98, "cudaErrorInvalidDeviceFunction", "invalid device function" },
		{ 100, "cudaErrorNoDevice", "no CUDA-capable device is detected" },
		{ 101, "cudaErrorInvalidDevice", "invalid device ordinal" },
		{ 209, "cudaErrorNoKernelImageForDevice",
		  "no kernel image is available for execution on the device" },
		{ 400, "cudaErrorInvalidResourceHandle", "invalid resource handle" },
		{ 600, "cudaErrorNotReady", "device not ready" },
		{ 700, "cudaErrorIllegalAddress", "an illegal memory access was encountered" },
		{ 719, "cudaErrorLaunchFailure", "unspecified launch failure" },
		{ 801, "cudaErrorNotSupported", "operation not supported" },
		{ 909, "cudaErrorTimeout", "wait operation timed out" },
		{ 999, "cudaErrorUnknown", "unknown error" },
		{ 10000, "cudaErrorApiFailureBase", "api failure base" },
	};

	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		assert_string_equal(tr_cuerr_name(samples[i].num), samples[i].name);
		assert_string_equal(tr_cuerr_string(samples[i].num), samples[i].str);
	}
	assert_int_equal(TR_cudaErrorNotSupported, 801);
	assert_int_equal(TR_cudaErrorInvalidValue, cudaErrorInvalidValue);
}

static void test_unknown_codes(void **state)
{
	/* Gaps in CUDA's numbering, past the end, negative, extremes. */
	static const int unknown[] = { 10, 11, 14, 99, 998, 1000, 9999, 10001,
				       -1, INT_MAX, INT_MIN };

	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		assert_false(tr_cuerr_known(unknown[i]));
		assert_string_equal(tr_cuerr_name(unknown[i]), "unrecognized error code");
		assert_string_equal(tr_cuerr_string(unknown[i]), "unrecognized error code");
	}
}

static void test_errno_map(void **state)
{
	assert_int_equal(tr_cuerr_from_errno(0), cudaSuccess);
	assert_int_equal(tr_cuerr_from_errno(-EINVAL), cudaErrorInvalidValue);
	assert_int_equal(tr_cuerr_from_errno(EINVAL), cudaErrorInvalidValue);
	assert_int_equal(tr_cuerr_from_errno(-EFAULT), cudaErrorInvalidValue);
	assert_int_equal(tr_cuerr_from_errno(-ENOMEM), cudaErrorMemoryAllocation);
	assert_int_equal(tr_cuerr_from_errno(-ENODEV), cudaErrorNoDevice);
	assert_int_equal(tr_cuerr_from_errno(-ENXIO), cudaErrorInvalidDevice);
	assert_int_equal(tr_cuerr_from_errno(-ENOTSUP), cudaErrorNotSupported);
	assert_int_equal(tr_cuerr_from_errno(-EOPNOTSUPP), cudaErrorNotSupported);
	assert_int_equal(tr_cuerr_from_errno(-ENOSYS), cudaErrorNotSupported);
	assert_int_equal(tr_cuerr_from_errno(-EPERM), cudaErrorNotPermitted);
	assert_int_equal(tr_cuerr_from_errno(-EACCES), cudaErrorNotPermitted);
	assert_int_equal(tr_cuerr_from_errno(-EBADF), cudaErrorInvalidResourceHandle);
	assert_int_equal(tr_cuerr_from_errno(-EAGAIN), cudaErrorNotReady);
	assert_int_equal(tr_cuerr_from_errno(-ENOEXEC), cudaErrorInvalidKernelImage);
	/* A lost machine: the error CUDA programs already handle. */
	assert_int_equal(tr_cuerr_from_errno(-ECONNRESET), cudaErrorDevicesUnavailable);
	assert_int_equal(tr_cuerr_from_errno(-EPIPE), cudaErrorDevicesUnavailable);
	assert_int_equal(tr_cuerr_from_errno(-ENOTCONN), cudaErrorDevicesUnavailable);
	assert_int_equal(tr_cuerr_from_errno(-ETIMEDOUT), cudaErrorDevicesUnavailable);
	assert_int_equal(tr_cuerr_from_errno(-ECONNREFUSED), cudaErrorDevicesUnavailable);
	assert_int_equal(tr_cuerr_from_errno(-EIO), cudaErrorDevicesUnavailable);
	/* Anything else. */
	assert_int_equal(tr_cuerr_from_errno(-ENOENT), cudaErrorUnknown);
	assert_int_equal(tr_cuerr_from_errno(-EPROTO), cudaErrorUnknown);
	assert_int_equal(tr_cuerr_from_errno(-4095), cudaErrorUnknown);
	assert_int_equal(tr_cuerr_from_errno(INT_MIN), cudaErrorUnknown);
	assert_int_equal(tr_cuerr_from_errno(INT_MAX), cudaErrorUnknown);
	/* Every result is a code of the table. */
	for (int e = -200; e <= 200; e++)
		assert_true(tr_cuerr_known(tr_cuerr_from_errno(e)));
}

typedef const char *(*err_fn)(int);

/* Every name and string, and a few unknown codes, against libcudart.so.13. */
static void test_matches_real_libcudart(void **state)
{
#ifdef TR_CUDART_SO
	static const int unknown[] = { 10, 1000, 10001, -1, INT_MAX };
	void *h = dlopen(TR_CUDART_SO, RTLD_NOW | RTLD_LOCAL);
	err_fn name, string;

	if (!h) {
		print_message("cannot load %s (%s): comparison skipped\n", TR_CUDART_SO,
			      dlerror());
		skip();
	}
	*(void **)&name = dlsym(h, "cudaGetErrorName");
	*(void **)&string = dlsym(h, "cudaGetErrorString");
	assert_non_null(name);
	assert_non_null(string);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		assert_string_equal(tr_cuerr_name(rows[i].num), name(rows[i].num));
		assert_string_equal(tr_cuerr_string(rows[i].num), string(rows[i].num));
	}
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		assert_string_equal(tr_cuerr_name(unknown[i]), name(unknown[i]));
		assert_string_equal(tr_cuerr_string(unknown[i]), string(unknown[i]));
	}
	/* Not dlclose()d: libcudart does not expect to be unloaded. */
#else
	skip();
#endif
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_row_is_an_enumerator),
		cmocka_unit_test(test_known_codes),
		cmocka_unit_test(test_unknown_codes),
		cmocka_unit_test(test_errno_map),
		cmocka_unit_test(test_matches_real_libcudart),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
