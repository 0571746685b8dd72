/*
 * test_fatbin: the fatbin parser against real nvcc 13 output and against
 * hand-made damage.
 *
 * The real part: tests/fatbin.cmake builds tests/apps/fatbin_params.cu into
 * shared libraries, one per nvcc variant (default zstd, -compress-mode=speed
 * and none, PTX only, SASS only, several archs, compressed ELF), into the
 * directory given as argv[1].  We dlopen() each; its constructor calls
 * __cudaRegisterFatBinary and __cudaRegisterFunction, which this executable
 * defines (and exports), exactly as the shim will receive them.  Each
 * library also exports fbp_kernels[], the parameter layout its host
 * compiler computed, which every layout we derive must match.
 *
 * The hand-made part feeds truncated, bit-flipped and synthetic containers,
 * LZ streams, cubins and PTX, copied into buffers of exactly their length
 * so that ASan sees any read past the end.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dlfcn.h>
#include <xxhash.h>

#include "fatbin.h"
#include "lzfb.h"
#include "../apps/fatbin_params.h"

static const char *apps_dir;

/* ---- capture of what an nvcc-built library registers ---- */

#define MAX_WRAPPERS 4
#define MAX_FUNCS 64

struct fbp_var {
	const char *name;
	int tried, ok;
	void *dl;
	const struct fbp_kernel *kernels;
	uint32_t nkernels;
	uint32_t nwrappers;
	const void *wrappers[MAX_WRAPPERS];
	void *handles[MAX_WRAPPERS];
	uint32_t nfuncs;
	struct {
		uint32_t fatbin;
		const void *host_fn;
		const char *name;
	} funcs[MAX_FUNCS];
};

static struct fbp_var vars[] = {
	{ .name = "zstd" },  { .name = "speed" }, { .name = "none" },
	{ .name = "ptx" },   { .name = "sass" },  { .name = "multi" },
	{ .name = "zall" },  { .name = "lzall" },
};
#define NVARS (sizeof(vars) / sizeof(vars[0]))

/* The library being dlopen()ed, while its constructors run. */
static struct fbp_var *cur_var;
static void *stray_handle;

/* libcudart's registration entry points, as nvcc's host code calls them. */
void **__cudaRegisterFatBinary(void *fatCubin);
void __cudaRegisterFatBinaryEnd(void **handle);
void __cudaUnregisterFatBinary(void **handle);
void __cudaRegisterFunction(void **handle, const char *hostFun,
                            char *deviceFun, const char *deviceName,
                            int thread_limit, void *tid, void *bid,
                            void *bDim, void *gDim, int *wSize);

void **__cudaRegisterFatBinary(void *fatCubin)
{
	struct fbp_var *v = cur_var;

	if (v == NULL || v->nwrappers == MAX_WRAPPERS)
		return &stray_handle;
	v->wrappers[v->nwrappers] = fatCubin;
	return &v->handles[v->nwrappers++];
}

void __cudaRegisterFatBinaryEnd(void **handle)
{
	(void)handle;
}

void __cudaUnregisterFatBinary(void **handle)
{
	(void)handle;
}

void __cudaRegisterFunction(void **handle, const char *hostFun,
                            char *deviceFun, const char *deviceName,
                            int thread_limit, void *tid, void *bid,
                            void *bDim, void *gDim, int *wSize)
{
	struct fbp_var *v = cur_var;

	if (v == NULL || v->nfuncs == MAX_FUNCS || handle < v->handles ||
	    handle >= v->handles + MAX_WRAPPERS)
		return;
	v->funcs[v->nfuncs].fatbin = (uint32_t)(handle - v->handles);
	v->funcs[v->nfuncs].host_fn = hostFun;
	v->funcs[v->nfuncs].name = deviceName;
	v->nfuncs++;
}

/*
 * The variant's library, loaded once.  Never dlclose()d: the names we
 * captured point into it, and unloading libcudart under LSan would turn
 * its allocations into reported leaks.
 */
static struct fbp_var *var_get(const char *name)
{
	struct fbp_var *v = NULL;
	char path[4096];
	const uint32_t *n;

	for (size_t i = 0; i < NVARS; i++)
		if (strcmp(vars[i].name, name) == 0)
			v = &vars[i];
	assert_non_null(v);
	if (v->tried)
		return v->ok ? v : NULL;
	v->tried = 1;
	if (apps_dir == NULL)
		return NULL;
	snprintf(path, sizeof(path), "%s/libfbp_%s.so", apps_dir, name);
	cur_var = v;
	v->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	cur_var = NULL;
	if (v->dl == NULL) {
		print_message("dlopen %s: %s\n", path, dlerror());
		return NULL;
	}
	v->kernels = dlsym(v->dl, "fbp_kernels");
	n = dlsym(v->dl, "fbp_nkernels");
	if (v->kernels == NULL || n == NULL)
		return NULL;
	v->nkernels = *n;
	v->ok = 1;
	return v;
}

/* The variant's (only) module fatbin, parsed; skips if not built. */
static struct fbp_var *var_parse(const char *name, struct tr_fatbin *fb)
{
	struct fbp_var *v = var_get(name);
	const void *data;
	size_t size;

	if (v == NULL) {
		print_message("variant %s not built: skipped\n", name);
		skip();
	}
	/* A non-rdc build registers one (version-1) wrapper. */
	assert_int_equal(v->nwrappers, 1);
	assert_int_equal(tr_fatbin_from_wrapper(v->wrappers[0], &data, &size),
	                 0);
	assert_int_equal(tr_fatbin_parse(data, size, fb), 0);
	assert_int_equal(fb->size, size);
	assert_ptr_equal(fb->data, data);
	return v;
}

static const struct fbp_kernel *var_kernel(const struct fbp_var *v,
                                           const void *host_fn)
{
	for (uint32_t i = 0; i < v->nkernels; i++)
		if (v->kernels[i].host_fn == host_fn)
			return &v->kernels[i];
	return NULL;
}

static const struct tr_fatbin_entry *find_entry(const struct tr_fatbin *fb,
                                                uint16_t kind, uint32_t arch)
{
	for (uint32_t i = 0; i < fb->count; i++)
		if (fb->entries[i].kind == kind && fb->entries[i].arch == arch)
			return &fb->entries[i];
	return NULL;
}

static uint32_t count_kind(const struct tr_fatbin *fb, uint16_t kind)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < fb->count; i++)
		n += fb->entries[i].kind == kind;
	return n;
}

/* PTX text starts (after blank lines and comments) with ".version". */
static int ptx_header_ok(const uint8_t *p, size_t n)
{
	size_t i = 0;

	for (;;) {
		while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' ||
		                 p[i] == '\r'))
			i++;
		if (n - i >= 2 && p[i] == '/' && p[i + 1] == '/') {
			while (i < n && p[i] != '\n')
				i++;
			continue;
		}
		break;
	}
	return n - i >= 9 && memcmp(p + i, ".version ", 9) == 0;
}

/* Compare a derived layout with what the host compiler computed. */
static void check_layout(const char *var, const char *how,
                         const struct fbp_kernel *k, int ret,
                         const struct tr_kparams *kp)
{
	int bad = 0;

	if (k->e2big) {
		if (ret != -E2BIG) {
			print_message("%s %s %s: ret %d, want -E2BIG\n", var,
			              how, k->label, ret);
			fail();
		}
		return;
	}
	if (ret != 0 || kp->count != k->count || kp->total_size != k->total)
		bad = 1;
	for (uint32_t i = 0; !bad && i < k->count; i++)
		if (kp->p[i].offset != k->p[i].offset ||
		    kp->p[i].size != k->p[i].size)
			bad = 1;
	if (!bad)
		return;
	print_message("%s %s %s: ret %d count %u/%u total %u/%u\n", var, how,
	              k->label, ret, kp->count, k->count, kp->total_size,
	              k->total);
	for (uint32_t i = 0; i < kp->count || i < k->count; i++)
		print_message("  p%u: got %u+%u want %u+%u\n", i,
		              i < kp->count ? kp->p[i].offset : 0,
		              i < kp->count ? kp->p[i].size : 0,
		              i < k->count ? k->p[i].offset : 0,
		              i < k->count ? k->p[i].size : 0);
	fail();
}

/* ---- the wrapper ---- */

static void test_wrapper_bad(void **state)
{
	static const uint8_t hdr[16] = { 0x50, 0xed, 0x55, 0xba, 1, 0, 16, 0,
	                                 0x40, 0, 0, 0, 0, 0, 0, 0 };
	uint8_t bad_hdr[16];
	struct {
		int32_t magic, version;
		const void *data;
		void *f;
	} w = { (int32_t)TR_FATBIN_WRAPPER_MAGIC, 1, hdr, NULL };
	const void *p = &w;
	size_t n = 1;
	(void)state;

	assert_int_equal(tr_fatbin_from_wrapper(&w, &p, &n), 0);
	assert_ptr_equal(p, hdr);
	assert_int_equal(n, 16 + 0x40);
	w.version = 2;
	assert_int_equal(tr_fatbin_from_wrapper(&w, &p, &n), 0);

	w.version = 3;
	assert_int_equal(tr_fatbin_from_wrapper(&w, &p, &n), -EINVAL);
	assert_null(p);
	assert_int_equal(n, 0);
	w.version = 1;
	w.magic = 0x12345678;
	assert_int_equal(tr_fatbin_from_wrapper(&w, &p, &n), -EINVAL);
	w.magic = (int32_t)TR_FATBIN_WRAPPER_MAGIC;
	assert_int_equal(tr_fatbin_from_wrapper(NULL, &p, &n), -EINVAL);
	assert_int_equal(tr_fatbin_from_wrapper(&w, NULL, &n), -EINVAL);
	assert_int_equal(tr_fatbin_from_wrapper(&w, &p, NULL), -EINVAL);

	w.data = NULL;
	assert_int_equal(tr_fatbin_from_wrapper(&w, &p, &n), -EPROTO);
	memcpy(bad_hdr, hdr, 16);
	bad_hdr[0] ^= 1;
	w.data = bad_hdr;
	assert_int_equal(tr_fatbin_from_wrapper(&w, &p, &n), -EPROTO);
	memcpy(bad_hdr, hdr, 16);
	bad_hdr[4] = 2; /* container version */
	assert_int_equal(tr_fatbin_from_wrapper(&w, &p, &n), -EPROTO);
	memcpy(bad_hdr, hdr, 16);
	bad_hdr[6] = 8; /* header size < 16 */
	assert_int_equal(tr_fatbin_from_wrapper(&w, &p, &n), -EPROTO);
	memcpy(bad_hdr, hdr, 16);
	bad_hdr[12] = 1; /* 4 GiB + 0x40 of entries */
	assert_int_equal(tr_fatbin_from_wrapper(&w, &p, &n), -EPROTO);
}

/* ---- real nvcc output ---- */

/*
 * Default build: one sm_75 ELF and one compute_75 PTX; CUDA 13 compresses
 * the PTX only, with zstd by default, LZ with speed, not at all with none.
 */
static void check_default(const char *name, uint16_t ptx_comp)
{
	struct tr_fatbin fb;
	const struct tr_fatbin_entry *elf, *ptx;
	uint8_t *buf;
	size_t n;

	var_parse(name, &fb);
	assert_int_equal(fb.count, 2);
	elf = find_entry(&fb, TR_FATBIN_KIND_ELF, 75);
	ptx = find_entry(&fb, TR_FATBIN_KIND_PTX, 75);
	assert_non_null(elf);
	assert_non_null(ptx);
	assert_int_equal(elf->flags_compression, TR_FATBIN_COMP_NONE);
	assert_int_equal(elf->header_size, 64);
	assert_int_equal(ptx->header_size, 80);
	assert_int_equal(ptx->flags_compression, ptx_comp);
	assert_true(ptx->major >= 8);
	assert_true(elf->flags & TR_FATBIN_FLAG_64BIT);

	assert_int_equal(tr_fatbin_entry_data(elf, &buf, &n), 0);
	assert_int_equal(n, elf->uncompressed_size);
	assert_memory_equal(buf, "\x7f" "ELF", 4);
	free(buf);

	assert_int_equal(tr_fatbin_entry_data(ptx, &buf, &n), 0);
	assert_int_equal(n, ptx->uncompressed_size);
	assert_true(ptx_header_ok(buf, n));
	assert_int_equal(buf[n], 0);
	if (ptx_comp == TR_FATBIN_COMP_ZSTD)
		assert_memory_equal(ptx->payload, "\x28\xb5\x2f\xfd", 4);
	free(buf);
}

static void test_default_zstd(void **state)
{
	(void)state;
	check_default("zstd", TR_FATBIN_COMP_ZSTD);
}

static void test_default_speed(void **state)
{
	(void)state;
	check_default("speed", TR_FATBIN_COMP_LZ);
}

static void test_default_none(void **state)
{
	(void)state;
	check_default("none", TR_FATBIN_COMP_NONE);
}

/* The same source in three encodings: the same PTX and ELF bytes. */
static void test_modes_identical(void **state)
{
	static const char *const names[] = { "zstd", "speed", "none", "zall",
	                                     "lzall" };
	uint8_t *ptx[5], *elf[5];
	size_t ptx_len[5], elf_len[5];
	(void)state;

	for (int i = 0; i < 5; i++) {
		struct tr_fatbin fb;
		const struct tr_fatbin_entry *e;

		var_parse(names[i], &fb);
		assert_int_equal(tr_fatbin_best_ptx(&fb, UINT32_MAX, &ptx[i],
		                                    &ptx_len[i]),
		                 0);
		assert_int_equal(strlen((char *)ptx[i]), ptx_len[i]);
		assert_true(ptx_header_ok(ptx[i], ptx_len[i]));
		e = find_entry(&fb, TR_FATBIN_KIND_ELF, 75);
		assert_non_null(e);
		assert_int_equal(tr_fatbin_entry_data(e, &elf[i], &elf_len[i]),
		                 0);
	}
	for (int i = 1; i < 5; i++) {
		assert_int_equal(ptx_len[i], ptx_len[0]);
		assert_memory_equal(ptx[i], ptx[0], ptx_len[0]);
		assert_int_equal(elf_len[i], elf_len[0]);
		assert_memory_equal(elf[i], elf[0], elf_len[0]);
	}
	for (int i = 0; i < 5; i++) {
		free(ptx[i]);
		free(elf[i]);
	}
}

/* -Xfatbin -compress-all compresses the ELF too, in either codec. */
static void test_compressed_elf(void **state)
{
	struct tr_fatbin fb;
	const struct tr_fatbin_entry *e;
	(void)state;

	var_parse("zall", &fb);
	e = find_entry(&fb, TR_FATBIN_KIND_ELF, 75);
	assert_non_null(e);
	assert_int_equal(e->flags_compression, TR_FATBIN_COMP_ZSTD);
	assert_true(e->payload_size < e->uncompressed_size);

	var_parse("lzall", &fb);
	e = find_entry(&fb, TR_FATBIN_KIND_ELF, 75);
	assert_non_null(e);
	assert_int_equal(e->flags_compression, TR_FATBIN_COMP_LZ);
	assert_true(e->payload_size < e->uncompressed_size);
}

/*
 * Every kernel the library registered, through tr_kparams_find(), and
 * through the ELF and PTX of each entry separately: each layout must be
 * what the host compiler computed.  Returns how many of each kind of
 * entry were checked.
 */
static void check_kparams(const char *name, uint32_t *n_elf,
                          uint32_t *n_ptx)
{
	struct tr_fatbin fb;
	struct fbp_var *v = var_parse(name, &fb);
	struct tr_kparams *kp = malloc(sizeof(*kp));
	uint32_t matched = 0;

	assert_non_null(kp);
	*n_elf = *n_ptx = 0;
	for (uint32_t f = 0; f < v->nfuncs; f++) {
		const struct fbp_kernel *k = var_kernel(v, v->funcs[f].host_fn);
		int ret;

		if (k == NULL) {
			print_message("%s: %s not in fbp_kernels\n", name,
			              v->funcs[f].name);
			fail();
		}
		matched++;
		ret = tr_kparams_find(&fb, v->funcs[f].name, kp);
		check_layout(name, "find", k, ret, kp);
	}
	/* Every kernel of the table was registered (and so checked). */
	assert_int_equal(matched, v->nkernels);

	for (uint32_t i = 0; i < fb.count; i++) {
		const struct tr_fatbin_entry *e = &fb.entries[i];
		char how[32];
		uint8_t *buf;
		size_t n;

		assert_int_equal(tr_fatbin_entry_data(e, &buf, &n), 0);
		snprintf(how, sizeof(how), "%s sm_%u",
		         e->kind == TR_FATBIN_KIND_ELF ? "elf" : "ptx", e->arch);
		for (uint32_t f = 0; f < v->nfuncs; f++) {
			const struct fbp_kernel *k =
				var_kernel(v, v->funcs[f].host_fn);
			int ret;

			if (e->kind == TR_FATBIN_KIND_ELF)
				ret = tr_kparams_from_elf(buf, n,
				                          v->funcs[f].name, kp);
			else
				ret = tr_kparams_from_ptx((char *)buf, n,
				                          v->funcs[f].name, kp);
			check_layout(name, how, k, ret, kp);
		}
		*n_elf += e->kind == TR_FATBIN_KIND_ELF;
		*n_ptx += e->kind == TR_FATBIN_KIND_PTX;
		free(buf);
	}

	/* Names that are not kernels of this fatbin. */
	assert_int_equal(tr_kparams_find(&fb, "_Z7nothingv", kp), -ENOENT);
	assert_int_equal(kp->count, 0);
	assert_int_equal(tr_kparams_find(&fb, "_Z5k_mix", kp), -ENOENT);
	assert_int_equal(tr_kparams_find(&fb, "k_", kp), -ENOENT);
	assert_int_equal(tr_kparams_find(&fb, "", kp), -ENOENT);
	free(kp);
}

static void test_kparams_default(void **state)
{
	uint32_t ne, np;
	(void)state;

	check_kparams("zstd", &ne, &np);
	assert_int_equal(ne, 1);
	assert_int_equal(np, 1);
	check_kparams("speed", &ne, &np);
	check_kparams("none", &ne, &np);
	check_kparams("zall", &ne, &np);
	check_kparams("lzall", &ne, &np);
}

/* compute_75 only: the layouts come from the PTX alone. */
static void test_kparams_ptx_only(void **state)
{
	struct tr_fatbin fb;
	uint32_t ne, np;
	(void)state;

	var_parse("ptx", &fb);
	assert_int_equal(count_kind(&fb, TR_FATBIN_KIND_ELF), 0);
	check_kparams("ptx", &ne, &np);
	assert_int_equal(ne, 0);
	assert_int_equal(np, 1);
}

/* sm_75 only: no PTX, so nothing to JIT, but the ELF has the layouts. */
static void test_sass_only(void **state)
{
	struct tr_fatbin fb;
	uint8_t *ptx = (uint8_t *)"x";
	size_t len = 1;
	uint32_t ne, np;
	(void)state;

	var_parse("sass", &fb);
	assert_int_equal(count_kind(&fb, TR_FATBIN_KIND_PTX), 0);
	assert_int_equal(tr_fatbin_best_ptx(&fb, UINT32_MAX, &ptx, &len),
	                 -ENOENT);
	assert_null(ptx);
	assert_int_equal(len, 0);
	assert_non_null(strstr(tr_fatbin_ptx_hint(),
	                       "-gencode arch=compute_XX,code=compute_XX"));
	check_kparams("sass", &ne, &np);
	assert_int_equal(ne, 1);
	assert_int_equal(np, 0);
}

/*
 * compute_75 PTX, sm_90 + compute_90, sm_100 (whose ELF header is 112
 * bytes): the best PTX depends on the GPU, and every ELF agrees.
 */
static void test_multi_arch(void **state)
{
	struct tr_fatbin fb;
	const struct tr_fatbin_entry *e;
	uint8_t *ptx;
	size_t len;
	uint32_t ne, np;
	(void)state;

	var_parse("multi", &fb);
	assert_non_null(find_entry(&fb, TR_FATBIN_KIND_PTX, 75));
	assert_non_null(find_entry(&fb, TR_FATBIN_KIND_PTX, 90));
	assert_non_null(find_entry(&fb, TR_FATBIN_KIND_ELF, 90));
	e = find_entry(&fb, TR_FATBIN_KIND_ELF, 100);
	assert_non_null(e);
	assert_int_equal(e->header_size, 112);

	assert_int_equal(tr_fatbin_best_ptx(&fb, UINT32_MAX, &ptx, &len), 0);
	assert_non_null(strstr((char *)ptx, ".target sm_90"));
	free(ptx);
	assert_int_equal(tr_fatbin_best_ptx(&fb, 120, &ptx, &len), 0);
	assert_non_null(strstr((char *)ptx, ".target sm_90"));
	free(ptx);
	assert_int_equal(tr_fatbin_best_ptx(&fb, 89, &ptx, &len), 0);
	assert_non_null(strstr((char *)ptx, ".target sm_75"));
	free(ptx);
	assert_int_equal(tr_fatbin_best_ptx(&fb, 75, &ptx, &len), 0);
	free(ptx);
	assert_int_equal(tr_fatbin_best_ptx(&fb, 70, &ptx, &len), -ENOENT);

	check_kparams("multi", &ne, &np);
	assert_int_equal(ne, 2);
	assert_int_equal(np, 2);
}

static void test_hash(void **state)
{
	struct tr_fatbin a, b;
	uint8_t ha[16], hb[16], hc[16];
	XXH128_hash_t h;
	(void)state;

	var_parse("zstd", &a);
	var_parse("speed", &b);
	tr_fatbin_hash(a.data, a.size, ha);
	tr_fatbin_hash(a.data, a.size, hc);
	assert_memory_equal(ha, hc, 16);
	tr_fatbin_hash(b.data, b.size, hb);
	assert_memory_not_equal(ha, hb, 16);

	/* Canonical form: the high 64 bits first, big-endian. */
	h = XXH3_128bits(a.data, a.size);
	for (int i = 0; i < 8; i++) {
		assert_int_equal(ha[i], (uint8_t)(h.high64 >> (56 - 8 * i)));
		assert_int_equal(ha[8 + i], (uint8_t)(h.low64 >> (56 - 8 * i)));
	}
	tr_fatbin_hash("", 0, hc);
	assert_memory_not_equal(ha, hc, 16);
}

/* ---- damage to real containers ---- */

static uint8_t *dup_exact(const void *p, size_t n)
{
	uint8_t *c = malloc(n ? n : 1);

	assert_non_null(c);
	if (n)
		memcpy(c, p, n);
	return c;
}

/* Every prefix of a container is refused, each in an exact-size buffer. */
static void test_truncated_containers(void **state)
{
	static const char *const names[] = { "zstd", "speed", "multi" };
	(void)state;

	for (int v = 0; v < 3; v++) {
		struct tr_fatbin fb, t;
		uint8_t *c;

		var_parse(names[v], &fb);
		for (size_t n = 0; n < fb.size; n += n < 300 ? 1 : 37) {
			c = dup_exact(fb.data, n);
			assert_int_equal(tr_fatbin_parse(c, n, &t), -EPROTO);
			assert_int_equal(t.count, 0);
			free(c);
		}
		/* Just short of each entry's end, and the exact size. */
		for (uint32_t i = 0; i < fb.count; i++) {
			size_t end = (size_t)(fb.entries[i].payload - fb.data) +
			             (size_t)fb.entries[i].payload_size;

			c = dup_exact(fb.data, end - 1);
			assert_int_equal(tr_fatbin_parse(c, end - 1, &t),
			                 -EPROTO);
			free(c);
		}
		c = dup_exact(fb.data, fb.size);
		assert_int_equal(tr_fatbin_parse(c, fb.size, &t), 0);
		assert_int_equal(t.count, fb.count);
		free(c);
	}
}

/*
 * Compressed payloads cut short, or with the wrong declared size, are
 * refused by both decoders.
 */
static void test_truncated_payloads(void **state)
{
	static const char *const names[] = { "zstd", "speed", "lzall" };
	(void)state;

	for (int v = 0; v < 3; v++) {
		struct tr_fatbin fb;

		var_parse(names[v], &fb);
		for (uint32_t i = 0; i < fb.count; i++) {
			struct tr_fatbin_entry e = fb.entries[i];
			size_t full = (size_t)e.payload_size;
			uint8_t *out;
			size_t n;

			if (e.flags_compression == TR_FATBIN_COMP_NONE)
				continue;
			for (size_t len = 0; len < full;
			     len += len < 600 ? 1 : 13) {
				uint8_t *c = dup_exact(e.payload, len);
				struct tr_fatbin_entry t = e;

				t.payload = c;
				t.payload_size = len;
				assert_int_equal(
					tr_fatbin_entry_data(&t, &out, &n),
					-EPROTO);
				assert_null(out);
				free(c);
			}
			e.uncompressed_size--;
			assert_int_equal(tr_fatbin_entry_data(&e, &out, &n),
			                 -EPROTO);
			e.uncompressed_size += 2;
			assert_int_equal(tr_fatbin_entry_data(&e, &out, &n),
			                 -EPROTO);
		}
	}
}

/* Bit flips anywhere: whatever the result, no crash and no overread. */
static void test_mutations(void **state)
{
	static const char *const names[] = { "zstd", "speed", "lzall" };
	uint64_t rng = 0x9e3779b97f4a7c15ull;
	(void)state;

	for (int v = 0; v < 3; v++) {
		struct tr_fatbin fb;
		struct tr_kparams *kp = malloc(sizeof(*kp));

		assert_non_null(kp);
		var_parse(names[v], &fb);
		for (int iter = 0; iter < 300; iter++) {
			uint8_t *c = dup_exact(fb.data, fb.size);
			struct tr_fatbin t;
			int flips = 1 + iter % 4;

			for (int k = 0; k < flips; k++) {
				size_t pos;

				rng ^= rng << 13;
				rng ^= rng >> 7;
				rng ^= rng << 17;
				/* Mostly headers: that is where the sizes are. */
				pos = iter & 1 ? rng % fb.size
				               : rng % (fb.size < 256 ? fb.size
				                                      : 256);
				c[pos] ^= (uint8_t)(1u << (rng >> 61));
			}
			if (tr_fatbin_parse(c, fb.size, &t) == 0) {
				for (uint32_t i = 0; i < t.count; i++) {
					uint8_t *out;
					size_t n;

					if (t.entries[i].uncompressed_size >
					    (64u << 20))
						continue;
					if (tr_fatbin_entry_data(&t.entries[i],
					                         &out, &n) == 0)
						free(out);
				}
				(void)tr_kparams_find(&t, "_Z5k_mixidcPi", kp);
			}
			free(c);
		}
		free(kp);
	}
}

/* ---- synthetic containers ---- */

static void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void wr32(uint8_t *p, uint32_t v)
{
	wr16(p, (uint16_t)v);
	wr16(p + 2, (uint16_t)(v >> 16));
}

static void wr64(uint8_t *p, uint64_t v)
{
	wr32(p, (uint32_t)v);
	wr32(p + 4, (uint32_t)(v >> 32));
}

struct syn {
	uint8_t buf[8192];
	size_t len;
};

static void syn_init(struct syn *s)
{
	memset(s, 0, sizeof(*s));
	wr32(s->buf, TR_FATBIN_MAGIC);
	wr16(s->buf + 4, 1);
	wr16(s->buf + 6, 16);
	s->len = 16;
}

/* Append an entry; returns its header so a test can spoil it. */
static uint8_t *syn_add(struct syn *s, uint16_t kind, uint32_t arch,
                        uint64_t flags, const void *payload, uint32_t plen,
                        uint64_t usize)
{
	uint8_t *h = s->buf + s->len;
	uint32_t padded = (plen + 7) & ~7u;
	int comp = (flags & (TR_FATBIN_FLAG_LZ | TR_FATBIN_FLAG_ZSTD)) != 0;

	assert_true(s->len + 64 + padded <= sizeof(s->buf));
	wr16(h, kind);
	wr16(h + 2, 0x101);
	wr32(h + 4, 64);
	wr64(h + 8, padded);
	wr32(h + 16, comp ? plen : 0);
	wr32(h + 28, arch);
	wr64(h + 40, flags | TR_FATBIN_FLAG_64BIT | TR_FATBIN_FLAG_LINUX);
	wr64(h + 56, comp ? usize : 0);
	memcpy(h + 64, payload, plen);
	s->len += 64 + padded;
	wr64(s->buf + 8, s->len - 16);
	return h;
}

static int syn_parse(const struct syn *s, struct tr_fatbin *fb)
{
	uint8_t *c = dup_exact(s->buf, s->len);
	int ret = tr_fatbin_parse(c, s->len, fb);

	free(c);
	return ret;
}

static const char syn_ptx[] =
	"//\n// comment: .entry fake(.param .u8 x)\n//\n"
	".version 9.0\n.target sm_80\n.address_size 64\n"
	"/* .entry _Z1kic( .param .u8 a ) */\n"
	".visible .entry _Z1kic(\n\t.param .u32 _Z1kic_param_0,\n"
	"\t.param .u8 _Z1kic_param_1\n)\n{\n\tret;\n}\n";

static void test_synthetic(void **state)
{
	/* "abcd" then a match of 8 at distance 4, then literal "!". */
	static const uint8_t lz[] = { 0x44, 'a', 'b', 'c', 'd', 4, 0,
	                              0x10, '!' };
	struct syn s;
	struct tr_fatbin fb;
	uint8_t *h, *out;
	size_t n;
	struct tr_kparams kp;
	(void)state;

	syn_init(&s);
	syn_add(&s, TR_FATBIN_KIND_PTX, 80, 0, syn_ptx, sizeof(syn_ptx), 0);
	syn_add(&s, TR_FATBIN_KIND_PTX, 70, TR_FATBIN_FLAG_LZ, lz, sizeof(lz),
	        13);
	syn_add(&s, 7, 75, 0, "???", 3, 0); /* unknown kinds are kept */
	assert_int_equal(syn_parse(&s, &fb), 0);
	assert_int_equal(fb.count, 3);
	assert_int_equal(fb.entries[0].flags_compression, TR_FATBIN_COMP_NONE);
	assert_int_equal(fb.entries[0].uncompressed_size,
	                 (sizeof(syn_ptx) + 7) & ~(size_t)7);
	assert_int_equal(fb.entries[1].flags_compression, TR_FATBIN_COMP_LZ);
	assert_int_equal(fb.entries[1].payload_size, sizeof(lz));
	assert_int_equal(fb.entries[2].kind, 7);

	/* Parse again from the original buffer: entries borrow from it. */
	assert_int_equal(tr_fatbin_parse(s.buf, s.len, &fb), 0);
	assert_int_equal(tr_fatbin_entry_data(&fb.entries[1], &out, &n), 0);
	assert_int_equal(n, 13);
	assert_string_equal((char *)out, "abcdabcdabcd!");
	free(out);

	assert_int_equal(tr_fatbin_best_ptx(&fb, 75, &out, &n), 0);
	assert_string_equal((char *)out, "abcdabcdabcd!");
	free(out);
	assert_int_equal(tr_fatbin_best_ptx(&fb, 80, &out, &n), 0);
	assert_int_equal(n, strlen(syn_ptx));
	assert_string_equal((char *)out, syn_ptx);
	free(out);

	/* The fake .entry inside comments is not seen. */
	assert_int_equal(tr_kparams_find(&fb, "fake", &kp), -ENOENT);
	/* Found in the arch-80 text, tried before the arch-70 one. */
	assert_int_equal(tr_kparams_find(&fb, "_Z1kic", &kp), 0);
	assert_int_equal(kp.count, 2);
	assert_int_equal(kp.p[1].offset, 4);
	assert_int_equal(kp.total_size, 5);

	/* Trailing bytes after the container are ignored. */
	assert_int_equal(tr_fatbin_parse(s.buf, s.len + 100, &fb), 0);
	assert_int_equal(fb.size, s.len);

	/* Header damage. */
	syn_init(&s);
	h = syn_add(&s, 1, 80, 0, syn_ptx, sizeof(syn_ptx), 0);
	wr32(h + 4, 63);
	assert_int_equal(syn_parse(&s, &fb), -EPROTO);
	wr32(h + 4, 0xfffffff0);
	assert_int_equal(syn_parse(&s, &fb), -EPROTO);
	wr32(h + 4, 64);
	wr64(h + 8, ~0ull);
	assert_int_equal(syn_parse(&s, &fb), -EPROTO);
	wr64(h + 8, 0xfffffffffffffff0ull);
	assert_int_equal(syn_parse(&s, &fb), -EPROTO);
	wr64(h + 8, (sizeof(syn_ptx) + 7) & ~7u);
	assert_int_equal(syn_parse(&s, &fb), 0);
	/* Both codecs at once, no size, huge size, stream > payload. */
	wr64(h + 40, TR_FATBIN_FLAG_LZ | TR_FATBIN_FLAG_ZSTD);
	assert_int_equal(syn_parse(&s, &fb), -EPROTO);
	wr64(h + 40, TR_FATBIN_FLAG_ZSTD);
	wr32(h + 16, 8);
	wr64(h + 56, 0);
	assert_int_equal(syn_parse(&s, &fb), -EPROTO);
	wr64(h + 56, TR_FATBIN_MAX_UNCOMPRESSED + 1);
	assert_int_equal(syn_parse(&s, &fb), -EPROTO);
	wr64(h + 56, 100);
	wr32(h + 16, 0x10000);
	assert_int_equal(syn_parse(&s, &fb), -EPROTO);
	wr32(h + 16, 8);
	assert_int_equal(syn_parse(&s, &fb), 0);
	/* ...and then the "zstd" stream is PTX text: refused when read. */
	assert_int_equal(tr_fatbin_entry_data(&fb.entries[0], &out, &n),
	                 -EPROTO);
	assert_null(out);

	/* Container header damage. */
	syn_init(&s);
	syn_add(&s, 1, 80, 0, syn_ptx, sizeof(syn_ptx), 0);
	s.buf[0] ^= 0x80;
	assert_int_equal(syn_parse(&s, &fb), -EPROTO);
	s.buf[0] ^= 0x80;
	wr64(s.buf + 8, s.len - 16 + 1);
	assert_int_equal(syn_parse(&s, &fb), -EPROTO);
	wr64(s.buf + 8, s.len - 16 - 1);
	assert_int_equal(syn_parse(&s, &fb), -EPROTO);
	wr64(s.buf + 8, 0);
	assert_int_equal(syn_parse(&s, &fb), 0);
	assert_int_equal(fb.count, 0);
	assert_int_equal(tr_fatbin_best_ptx(&fb, UINT32_MAX, &out, &n),
	                 -ENOENT);
	assert_int_equal(tr_fatbin_parse(NULL, 16, &fb), -EINVAL);
	assert_int_equal(tr_fatbin_parse(s.buf, 16, NULL), -EINVAL);

	/* TR_FATBIN_MAX_ENTRIES, then one more. */
	syn_init(&s);
	for (int i = 0; i < TR_FATBIN_MAX_ENTRIES; i++)
		syn_add(&s, 2, 75, 0, "x", 1, 0);
	assert_int_equal(syn_parse(&s, &fb), 0);
	assert_int_equal(fb.count, TR_FATBIN_MAX_ENTRIES);
	syn_add(&s, 2, 75, 0, "x", 1, 0);
	assert_int_equal(syn_parse(&s, &fb), -E2BIG);
	assert_int_equal(fb.count, 0);
}

/* ---- the LZ decoder alone ---- */

static int lz_exact(const uint8_t *in, size_t in_len, size_t out_len,
                    uint8_t *check)
{
	uint8_t *i = dup_exact(in, in_len);
	uint8_t *o = malloc(out_len ? out_len : 1);
	int ret;

	assert_non_null(o);
	ret = tr_lzfb_decompress(i, in_len, o, out_len);
	if (ret == 0 && check)
		memcpy(check, o, out_len);
	free(i);
	free(o);
	return ret;
}

static void test_lz(void **state)
{
	static const uint8_t run[] = { 0x1f, 'z', 1, 0, 10 }; /* 1 + 29 */
	static const uint8_t off0[] = { 0x10, 'a', 0, 0 };
	static const uint8_t far[] = { 0x10, 'a', 2, 0 };
	static const uint8_t pad[] = { 0x30, 'a', 'b', 'c', 0, 0, 0 };
	uint8_t lit[300], big[600], out[600];
	(void)state;

	assert_int_equal(lz_exact(run, sizeof(run), 30, out), 0);
	for (int i = 0; i < 30; i++)
		assert_int_equal(out[i], 'z');
	assert_int_equal(lz_exact(run, sizeof(run), 29, NULL), -EPROTO);
	assert_int_equal(lz_exact(run, sizeof(run), 31, NULL), -EPROTO);
	for (size_t n = 0; n < sizeof(run); n++)
		assert_int_equal(lz_exact(run, n, 30, NULL), -EPROTO);
	assert_int_equal(lz_exact(off0, sizeof(off0), 5, NULL), -EPROTO);
	assert_int_equal(lz_exact(far, sizeof(far), 5, NULL), -EPROTO);
	assert_int_equal(lz_exact(pad, sizeof(pad), 3, out), 0);
	assert_memory_equal(out, "abc", 3);
	assert_int_equal(lz_exact(pad, 0, 0, NULL), 0);

	/* Literal run of 280: 15 + 255 + 10 in the extension. */
	lit[0] = 0xf0;
	lit[1] = 255;
	lit[2] = 10;
	for (int i = 0; i < 280; i++)
		lit[3 + i % 280] = (uint8_t)i;
	assert_int_equal(lz_exact(lit, 283, 280, big), 0);
	assert_int_equal(big[279], (uint8_t)279);
	assert_int_equal(lz_exact(lit, 282, 280, NULL), -EPROTO);
	assert_int_equal(lz_exact(lit, 283, 279, NULL), -EPROTO);

	/* A long run of 255s is capped by the room left, not summed on. */
	memset(big, 255, sizeof(big));
	big[0] = 0xff;
	assert_int_equal(lz_exact(big, sizeof(big), 100, NULL), -EPROTO);
	assert_int_equal(tr_lzfb_decompress(NULL, 1, out, 1), -EINVAL);
	assert_int_equal(tr_lzfb_decompress(run, 1, NULL, 1), -EINVAL);
}

/* ---- cubins: a minimal ELF around one .nv.info.<kernel> section ---- */

struct mini_elf {
	uint8_t buf[2048];
	size_t len;
	uint8_t info[1024];
	size_t info_len;
};

static void rec_fixed(struct mini_elf *m, uint8_t fmt, uint8_t attr,
                      uint16_t v)
{
	uint8_t *r = m->info + m->info_len;

	r[0] = fmt;
	r[1] = attr;
	wr16(r + 2, v);
	m->info_len += 4;
}

static void rec_sval(struct mini_elf *m, uint8_t attr, const uint8_t *v,
                     uint16_t n)
{
	rec_fixed(m, 4, attr, n);
	memcpy(m->info + m->info_len, v, n);
	m->info_len += n;
}

/* EIATTR_KPARAM_INFO (v1: size in the top 14 bits) or _V2 (a u16). */
static void rec_kparam(struct mini_elf *m, int v2, uint16_t ord,
                       uint16_t off, uint32_t size)
{
	uint8_t v[12] = { 0 };

	wr16(v + 4, ord);
	wr16(v + 6, off);
	wr32(v + 8, v2 ? size : size << 18 | 0x1f000);
	rec_sval(m, v2 ? 0x45 : 0x17, v, 12);
}

static void rec_cbank(struct mini_elf *m, uint16_t size)
{
	uint8_t v[8] = { 4, 0, 0, 0, 0x60, 0x01 };

	wr16(v + 6, size);
	rec_sval(m, 0x0a, v, 8);
}

/* Lay out: header, .shstrtab, the info section, 3 section headers. */
static void mini_build(struct mini_elf *m, const char *kernel)
{
	char names[256];
	size_t nlen, info_off, sh;
	uint8_t *b = m->buf;

	memset(b, 0, sizeof(m->buf));
	nlen = 1 + (size_t)snprintf(names + 1, sizeof(names) - 1,
	                            ".shstrtab%c.nv.info.%s", 0, kernel) + 1;
	names[0] = 0;
	memcpy(b, "\x7f" "ELF\x02\x01\x01", 7);
	memcpy(b + 64, names, nlen);
	info_off = 64 + nlen;
	memcpy(b + info_off, m->info, m->info_len);
	sh = (info_off + m->info_len + 7) & ~(size_t)7;
	assert_true(sh + 3 * 64 <= sizeof(m->buf));
	wr64(b + 0x28, sh);
	wr16(b + 0x3a, 64);
	wr16(b + 0x3c, 3);
	wr16(b + 0x3e, 1);
	/* [1] .shstrtab */
	wr32(b + sh + 64, 1);
	wr32(b + sh + 64 + 4, 3);
	wr64(b + sh + 64 + 24, 64);
	wr64(b + sh + 64 + 32, nlen);
	/* [2] .nv.info.<kernel> */
	wr32(b + sh + 128, 11);
	wr32(b + sh + 128 + 4, 0x70000000);
	wr64(b + sh + 128 + 24, info_off);
	wr64(b + sh + 128 + 32, m->info_len);
	m->len = sh + 3 * 64;
}

static int mini_find(const struct mini_elf *m, size_t len, const char *k,
                     struct tr_kparams *kp)
{
	uint8_t *c = dup_exact(m->buf, len);
	int ret = tr_kparams_from_elf(c, len, k, kp);

	free(c);
	return ret;
}

static void test_elf_nvinfo(void **state)
{
	struct mini_elf m;
	struct tr_kparams kp;
	(void)state;

	/* Records in reverse order, as nvcc writes them, and NVAL/BVAL. */
	memset(&m, 0, sizeof(m));
	rec_fixed(&m, 1, 0x3e, 0);
	rec_kparam(&m, 0, 2, 16, 1);
	rec_kparam(&m, 1, 1, 8, 4);
	rec_fixed(&m, 2, 0x4c, 1);
	rec_kparam(&m, 0, 0, 0, 8);
	rec_fixed(&m, 3, 0x19, 17);
	rec_cbank(&m, 17);
	mini_build(&m, "_Z1kPfic");
	assert_int_equal(mini_find(&m, m.len, "_Z1kPfic", &kp), 0);
	assert_int_equal(kp.count, 3);
	assert_int_equal(kp.total_size, 17);
	assert_int_equal(kp.p[0].offset, 0);
	assert_int_equal(kp.p[0].size, 8);
	assert_int_equal(kp.p[1].offset, 8);
	assert_int_equal(kp.p[1].size, 4);
	assert_int_equal(kp.p[2].offset, 16);
	assert_int_equal(kp.p[2].size, 1);
	assert_int_equal(mini_find(&m, m.len, "_Z1kPfi", &kp), -ENOENT);
	assert_int_equal(mini_find(&m, m.len, "_Z1kPfic_", &kp), -ENOENT);
	for (size_t n = 0; n < m.len; n++)
		assert_int_not_equal(mini_find(&m, n, "_Z1kPfic", &kp), 0);

	/* No total attribute: the end of the last parameter. */
	memset(&m, 0, sizeof(m));
	rec_kparam(&m, 1, 0, 0, 20000);
	rec_kparam(&m, 0, 1, 20000, 8);
	mini_build(&m, "k");
	assert_int_equal(mini_find(&m, m.len, "k", &kp), 0);
	assert_int_equal(kp.p[0].size, 20000);
	assert_int_equal(kp.total_size, 20008);

	/* No parameters at all (nvcc writes no KPARAM_INFO, no CBANK). */
	memset(&m, 0, sizeof(m));
	rec_fixed(&m, 3, 0x1b, 0xff);
	mini_build(&m, "k");
	assert_int_equal(mini_find(&m, m.len, "k", &kp), 0);
	assert_int_equal(kp.count, 0);
	assert_int_equal(kp.total_size, 0);

	/* A duplicate ordinal, a missing one, one past TR_KPARAMS_MAX. */
	memset(&m, 0, sizeof(m));
	rec_kparam(&m, 0, 0, 0, 8);
	rec_kparam(&m, 0, 0, 8, 8);
	mini_build(&m, "k");
	assert_int_equal(mini_find(&m, m.len, "k", &kp), -EPROTO);
	memset(&m, 0, sizeof(m));
	rec_kparam(&m, 0, 1, 8, 8);
	mini_build(&m, "k");
	assert_int_equal(mini_find(&m, m.len, "k", &kp), -EPROTO);
	memset(&m, 0, sizeof(m));
	rec_kparam(&m, 0, TR_KPARAMS_MAX, 0, 1);
	mini_build(&m, "k");
	assert_int_equal(mini_find(&m, m.len, "k", &kp), -E2BIG);

	/* A total smaller than the parameters, an unknown format, an SVAL
	 * running off the section. */
	memset(&m, 0, sizeof(m));
	rec_kparam(&m, 0, 0, 0, 8);
	rec_cbank(&m, 4);
	mini_build(&m, "k");
	assert_int_equal(mini_find(&m, m.len, "k", &kp), -EPROTO);
	assert_int_equal(kp.count, 0);
	memset(&m, 0, sizeof(m));
	rec_fixed(&m, 9, 0x17, 0);
	mini_build(&m, "k");
	assert_int_equal(mini_find(&m, m.len, "k", &kp), -EPROTO);
	memset(&m, 0, sizeof(m));
	rec_fixed(&m, 4, 0x17, 12);
	mini_build(&m, "k");
	assert_int_equal(mini_find(&m, m.len, "k", &kp), -EPROTO);

	/* Not ELF64 little-endian; section table out of the file. */
	memset(&m, 0, sizeof(m));
	rec_kparam(&m, 0, 0, 0, 8);
	mini_build(&m, "k");
	m.buf[4] = 1;
	assert_int_equal(mini_find(&m, m.len, "k", &kp), -EPROTO);
	m.buf[4] = 2;
	m.buf[5] = 2;
	assert_int_equal(mini_find(&m, m.len, "k", &kp), -EPROTO);
	m.buf[5] = 1;
	wr16(m.buf + 0x3c, 200);
	assert_int_equal(mini_find(&m, m.len, "k", &kp), -EPROTO);
	wr16(m.buf + 0x3c, 3);
	wr16(m.buf + 0x3e, 3);
	assert_int_equal(mini_find(&m, m.len, "k", &kp), -EPROTO);
	assert_int_equal(tr_kparams_from_elf(NULL, 0, "k", &kp), -EINVAL);
	assert_int_equal(tr_kparams_from_elf(m.buf, m.len, NULL, &kp),
	                 -EINVAL);
}

/* ---- PTX declarations ---- */

static int ptx_find(const char *ptx, const char *k, struct tr_kparams *kp)
{
	size_t n = strlen(ptx);
	uint8_t *c = dup_exact(ptx, n); /* no NUL: the length must hold */
	int ret = tr_kparams_from_ptx((char *)c, n, k, kp);

	free(c);
	return ret;
}

static void test_ptx_decl(void **state)
{
	static const char decl[] =
		".version 9.0\n.target sm_75\n"
		".visible .entry k(\n"
		"\t.param .u64 .ptr .global .align 16 k_param_0,\n"
		"\t.param .u8 k_param_1,\n"
		"\t.param .align 8 .b8 k_param_2[24],\n"
		"\t.param .v2 .u32 k_param_3, // a comment\n"
		"\t.param /* inline */ .f16 k_param_4,\n"
		"\t.param .align 16 .b8 k_param_5[16]\n"
		")\n.maxntid 128, 1, 1\n{\n\tret;\n}\n"
		".entry e()\n{\n}\n.entry f\n{\n}\n";
	struct tr_kparams kp;
	char *text;
	size_t cap = 64 + 300 * 32, len;
	(void)state;

	assert_int_equal(ptx_find(decl, "k", &kp), 0);
	assert_int_equal(kp.count, 6);
	assert_int_equal(kp.p[0].offset, 0);  /* pointee .align ignored */
	assert_int_equal(kp.p[0].size, 8);
	assert_int_equal(kp.p[1].offset, 8);
	assert_int_equal(kp.p[1].size, 1);
	assert_int_equal(kp.p[2].offset, 16);
	assert_int_equal(kp.p[2].size, 24);
	assert_int_equal(kp.p[3].offset, 40); /* .v2 .u32: align 8 */
	assert_int_equal(kp.p[3].size, 8);
	assert_int_equal(kp.p[4].offset, 48);
	assert_int_equal(kp.p[4].size, 2);
	assert_int_equal(kp.p[5].offset, 64);
	assert_int_equal(kp.total_size, 80);
	assert_int_equal(ptx_find(decl, "e", &kp), 0);
	assert_int_equal(kp.count, 0);
	assert_int_equal(ptx_find(decl, "f", &kp), 0);
	assert_int_equal(ptx_find(decl, "g", &kp), -ENOENT);
	/* Every prefix: found-and-complete only once the ")" is in. */
	for (size_t n = 0; n < sizeof(decl) - 1; n++) {
		uint8_t *c = dup_exact(decl, n);
		int ret = tr_kparams_from_ptx((char *)c, n, "k", &kp);

		assert_true(ret == -ENOENT || ret == -EPROTO || ret == 0);
		free(c);
	}
	/* A NUL ends the text. */
	assert_int_equal(tr_kparams_from_ptx(".entry a()\0.entry b(.param .u8 x)",
	                                     33, "b", &kp),
	                 -ENOENT);
	assert_int_equal(ptx_find(".entry k", "k", &kp), -EPROTO);

	assert_int_equal(ptx_find(".entry k(.param .u8 x", "k", &kp), -EPROTO);
	assert_int_equal(ptx_find(".entry k(.param .zz x)", "k", &kp),
	                 -EPROTO);
	assert_int_equal(ptx_find(".entry k(.param .u8)", "k", &kp), -EPROTO);
	assert_int_equal(ptx_find(".entry k(.param .u8 x y)", "k", &kp),
	                 -EPROTO);
	assert_int_equal(ptx_find(".entry k(.param .align 3 .b8 x[4])", "k",
	                          &kp),
	                 -EPROTO);
	assert_int_equal(ptx_find(".entry k(.param .b8 x[99999999])", "k",
	                          &kp),
	                 -EPROTO);
	assert_int_equal(ptx_find(".entry k(.u8 x)", "k", &kp), -EPROTO);
	assert_int_equal(kp.count, 0);

	/* 256 parameters fit, 257 do not. */
	text = malloc(cap);
	assert_non_null(text);
	for (int np = 256; np <= 257; np++) {
		len = (size_t)snprintf(text, cap, ".entry k(");
		for (int i = 0; i < np; i++)
			len += (size_t)snprintf(text + len, cap - len,
			                        "%s.param .u8 p%d",
			                        i ? ", " : "", i);
		len += (size_t)snprintf(text + len, cap - len, ")");
		assert_int_equal(ptx_find(text, "k", &kp),
		                 np == 256 ? 0 : -E2BIG);
	}
	free(text);
}

/* ---- device printf ---- */

/* apps_dir/printf_<v>.fatbin (nvcc -fatbin of emu_printf.cu), read whole
   into a buffer of exactly its size; skips if not built. */
static uint8_t *printf_fatbin(const char *v, size_t *len)
{
	char path[4096];
	uint8_t *buf;
	FILE *f;
	long n;

	snprintf(path, sizeof(path), "%s/printf_%s.fatbin",
	         apps_dir ? apps_dir : ".", v);
	f = fopen(path, "rb");
	if (f == NULL) {
		print_message("%s not built: skipped\n", path);
		skip();
	}
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n > 16);
	rewind(f);
	buf = malloc((size_t)n);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* Each entry on its own: the kind's own check says `want`. */
static void entries_print(const struct tr_fatbin *fb, int want)
{
	for (uint32_t i = 0; i < fb->count; i++) {
		const struct tr_fatbin_entry *e = &fb->entries[i];
		uint8_t *buf;
		size_t n;

		assert_int_equal(tr_fatbin_entry_data(e, &buf, &n), 0);
		if (e->kind == TR_FATBIN_KIND_ELF)
			assert_int_equal(tr_elf_calls_printf(buf, n), want);
		else
			assert_int_equal(tr_ptx_calls_printf((char *)buf, n),
			                 want);
		free(buf);
	}
}

/*
 * Real nvcc output both ways: emu_printf.cu's kernels print in every
 * encoding, fatbin_params.cu's never do; then damaged and hand-made
 * cubins and PTX.
 */
static void test_may_print(void **state)
{
	static const char *const pv[] = { "zstd", "ptx", "sass", "lzall" };
	static const char *const qv[] = { "zstd", "ptx", "sass", "lzall",
		                          "multi" };
	struct tr_fatbin fb;
	uint8_t *elf = NULL;
	size_t elf_len = 0;
	(void)state;

	for (size_t i = 0; i < sizeof(pv) / sizeof(pv[0]); i++) {
		size_t len;
		uint8_t *img = printf_fatbin(pv[i], &len);

		assert_int_equal(tr_fatbin_parse(img, len, &fb), 0);
		assert_int_equal(tr_fatbin_may_print(&fb), 1);
		entries_print(&fb, 1);
		if (strcmp(pv[i], "sass") == 0) {
			const struct tr_fatbin_entry *e =
				find_entry(&fb, TR_FATBIN_KIND_ELF, 75);

			assert_non_null(e);
			assert_int_equal(tr_fatbin_entry_data(e, &elf,
			                                      &elf_len), 0);
		}
		free(img);
	}
	for (size_t i = 0; i < sizeof(qv) / sizeof(qv[0]); i++) {
		var_parse(qv[i], &fb);
		assert_int_equal(tr_fatbin_may_print(&fb), 0);
		entries_print(&fb, 0);
	}

	/* The cubin that prints, cut short anywhere: never a read past the
	   end (ASan), and never "no" unless the symbol table was complete
	   without the import, which a cut cannot make. */
	assert_non_null(elf);
	for (size_t n = 0; n < elf_len; n += n < 256 ? 1 : 61) {
		uint8_t *c = dup_exact(elf, n);
		int ret = tr_elf_calls_printf(c, n);

		assert_true(ret == 1 || ret == -EPROTO);
		free(c);
	}
	/* The import renamed ("vprintf" -> "vprintg" in the string table):
	   no longer a call to printf. */
	{
		uint8_t *c = dup_exact(elf, elf_len);
		size_t hits = 0;

		for (size_t o = 0; o + 8 <= elf_len; o++)
			if (memcmp(c + o, "vprintf", 8) == 0) {
				c[o + 6] = 'g';
				hits++;
			}
		assert_true(hits >= 1);
		assert_int_equal(tr_elf_calls_printf(c, elf_len), 0);
		free(c);
	}
	assert_int_equal(tr_elf_calls_printf(NULL, 0), -EINVAL);
	assert_int_equal(tr_elf_calls_printf((const uint8_t *)"\x7f" "ELF",
	                                     4), -EPROTO);
	free(elf);

	/* PTX: the name as a token outside comments, up to a NUL. */
	assert_int_equal(tr_ptx_calls_printf(
		".extern .func (.param .b32 func_retval0) vprintf\n(", 50), 1);
	assert_int_equal(tr_ptx_calls_printf(
		"call.uni (retval0), vprintf, (param0, param1);", 46), 1);
	assert_int_equal(tr_ptx_calls_printf("// vprintf\n/* vprintf */ ret;",
	                                     29), 0);
	assert_int_equal(tr_ptx_calls_printf(".func my_vprintf()", 18), 0);
	assert_int_equal(tr_ptx_calls_printf("ret;\0vprintf", 12), 0);
	assert_int_equal(tr_ptx_calls_printf("vprintf", 6), 0);
	assert_int_equal(tr_ptx_calls_printf(NULL, 0), -EINVAL);
	assert_int_equal(tr_fatbin_may_print(NULL), -EINVAL);

	/* What cannot be read counts as printing: an unknown kind, a
	   damaged stream, a whole too big to look into. */
	{
		struct tr_fatbin g;
		int damaged = 0;

		var_parse("zstd", &fb);
		g = fb;
		g.entries[0].kind = 7;
		assert_int_equal(tr_fatbin_may_print(&g), 1);
		g = fb;
		for (uint32_t i = 0; i < g.count; i++)
			if (g.entries[i].flags_compression ==
			    TR_FATBIN_COMP_ZSTD) {
				g.entries[i].uncompressed_size += 8;
				damaged++;
			}
		assert_true(damaged >= 1);
		assert_int_equal(tr_fatbin_may_print(&g), 1);
		g = fb;
		g.entries[0].uncompressed_size = TR_FATBIN_PRINT_SCAN_MAX + 1;
		assert_int_equal(tr_fatbin_may_print(&g), 1);
	}
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wrapper_bad),
		cmocka_unit_test(test_synthetic),
		cmocka_unit_test(test_lz),
		cmocka_unit_test(test_elf_nvinfo),
		cmocka_unit_test(test_ptx_decl),
		cmocka_unit_test(test_may_print),
		cmocka_unit_test(test_default_zstd),
		cmocka_unit_test(test_default_speed),
		cmocka_unit_test(test_default_none),
		cmocka_unit_test(test_modes_identical),
		cmocka_unit_test(test_compressed_elf),
		cmocka_unit_test(test_kparams_default),
		cmocka_unit_test(test_kparams_ptx_only),
		cmocka_unit_test(test_sass_only),
		cmocka_unit_test(test_multi_arch),
		cmocka_unit_test(test_hash),
		cmocka_unit_test(test_truncated_containers),
		cmocka_unit_test(test_truncated_payloads),
		cmocka_unit_test(test_mutations),
	};

	apps_dir = argc > 1 ? argv[1] : getenv("TR_FATBIN_APPS");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
