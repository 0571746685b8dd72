/*
 * fuzz_fatbin: libFuzzer target for tools/common/fatbin.c and lzfb.c.
 *
 * Every input is tried as everything the shim and the agent will ever
 * hand these decoders: a fatbin container (parse, decompress each entry,
 * look kernels up in the ELF and PTX inside, pick the best PTX), a bare
 * cubin, bare PTX text and a bare LZ stream.  Built by tests/fatbin.cmake
 * with clang -fsanitize=fuzzer,address,undefined and run for 20 s by the
 * ctest "fuzz_fatbin" (label fuzz).
 *
 * The seed corpus, tests/fuzz/corpus/fatbin/, is real nvcc 13.0 output for
 * tests/apps/fatbin_seed.cu (kernels seed_a, seed_b, seed_none), made in
 * that directory with S=../../../apps/fatbin_seed.cu and:
 *   nvcc -fatbin -o seed_zstd.fatbin $S
 *   nvcc -fatbin -compress-mode=speed -o seed_speed.fatbin $S
 *   nvcc -fatbin -compress-mode=speed -Xfatbin -compress-all \
 *        -o seed_lzall.fatbin $S
 *   nvcc -fatbin -Xfatbin -compress-all -o seed_zall.fatbin $S
 *   nvcc -fatbin -gencode arch=compute_75,code=compute_75 \
 *        -o seed_ptx.fatbin $S
 *   nvcc -fatbin -gencode arch=compute_100,code=sm_100 -Xfatbin \
 *        -compress-all -o seed_sm100.fatbin $S
 *   nvcc -cubin -arch=sm_75 -o seed_sm75.cubin $S
 *   nvcc -ptx -arch=sm_75 -o seed.ptx $S
 */
#include <stdint.h>
#include <stdlib.h>

#include "fatbin.h"
#include "lzfb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * Decompressing is bounded by the declared size, which the parser caps at
 * 1 GiB; that is correct but slow to fuzz, so bigger entries are skipped.
 */
#define FUZZ_MAX_ENTRY (16u << 20)

static const char *const names[] = { "seed_a", "seed_b", "seed_none" };
#define NNAMES (sizeof(names) / sizeof(names[0]))

static struct tr_fatbin fb;
static struct tr_kparams kp;

static void fuzz_container(const uint8_t *data, size_t size)
{
	int all_small = 1;
	uint8_t *buf;
	size_t n;

	if (tr_fatbin_parse(data, size, &fb) < 0)
		return;
	for (uint32_t i = 0; i < fb.count; i++) {
		const struct tr_fatbin_entry *e = &fb.entries[i];

		if (e->uncompressed_size > FUZZ_MAX_ENTRY) {
			all_small = 0;
			continue;
		}
		if (tr_fatbin_entry_data(e, &buf, &n) < 0)
			continue;
		if (e->kind == TR_FATBIN_KIND_ELF)
			(void)tr_elf_calls_printf(buf, n);
		else
			(void)tr_ptx_calls_printf((const char *)buf, n);
		for (size_t k = 0; k < NNAMES; k++) {
			if (e->kind == TR_FATBIN_KIND_ELF)
				(void)tr_kparams_from_elf(buf, n, names[k], &kp);
			else
				(void)tr_kparams_from_ptx((const char *)buf, n,
				                          names[k], &kp);
		}
		free(buf);
	}
	if (!all_small)
		return;
	if (tr_fatbin_best_ptx(&fb, 80, &buf, &n) == 0)
		free(buf);
	(void)tr_kparams_find(&fb, names[0], &kp);
	(void)tr_fatbin_may_print(&fb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[255 * 97];
	uint8_t hash[16];

	fuzz_container(data, size);
	for (size_t k = 0; k < NNAMES; k++) {
		(void)tr_kparams_from_elf(data, size, names[k], &kp);
		(void)tr_kparams_from_ptx((const char *)data, size, names[k],
		                          &kp);
	}
	/* Let the input pick the output size the LZ stream must fill. */
	if (size)
		(void)tr_lzfb_decompress(data + 1, size - 1, out,
		                         (size_t)data[0] * 97);
	tr_fatbin_hash(data, size, hash);
	return 0;
}
