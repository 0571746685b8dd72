/*
 * test_preflight.c - shim_elf_scan (shim/shim_preflight.c), the ELF reading
 * behind the shim's start-up warnings.
 *
 * Positive cases use a small ELF image built here, so that every fact can
 * be switched on and off; real files (this test's executable and the
 * toolkit's libcudart.so.13) check that ordinary binaries read right.  The
 * rest feeds it truncated and corrupted images, each copied into a buffer
 * of exactly its length so that ASan sees any read past the end.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "shim_preflight.h"

/* ---- a synthetic ELF image ---------------------------------------------- */

struct fake_opts {
	const char *needed[2];	/* DT_NEEDED names, NULL for none */
	int fatbin;		/* name a section .nv_fatbin */
	int sym;		/* 0: no symbol, 1: __cudaRegisterFatBinary undefined,
				 * 2: defined */
};

enum {
	OFF_PH = sizeof(Elf64_Ehdr),
	OFF_DYN = OFF_PH + 2 * sizeof(Elf64_Phdr),
	OFF_DYNSTR = OFF_DYN + 5 * sizeof(Elf64_Dyn),
	DYNSTR_SIZE = 96,
	OFF_DYNSYM = OFF_DYNSTR + DYNSTR_SIZE,
	OFF_SHSTR = OFF_DYNSYM + 2 * sizeof(Elf64_Sym),
	SHSTR_SIZE = 64,
	OFF_SH = OFF_SHSTR + SHSTR_SIZE,
	NSECT = 6,
	FAKE_SIZE = OFF_SH + NSECT * sizeof(Elf64_Shdr),
};

static void put(unsigned char *img, size_t off, const void *p, size_t n)
{
	memcpy(img + off, p, n);
}

/* Append s to the string table at img[base..]; returns its index. */
static uint32_t add_str(unsigned char *img, size_t base, size_t *used, const char *s)
{
	uint32_t idx = (uint32_t)*used;

	memcpy(img + base + *used, s, strlen(s) + 1);
	*used += strlen(s) + 1;
	return idx;
}

static void build_fake(unsigned char *img, const struct fake_opts *o)
{
	Elf64_Ehdr eh = { 0 };
	Elf64_Phdr ph[2] = { { 0 } };
	Elf64_Dyn dyn[5] = { { 0 } };
	Elf64_Sym sym[2] = { { 0 } };
	Elf64_Shdr sh[NSECT] = { { 0 } };
	size_t dynstr_used = 1, shstr_used = 1;
	int nd = 0;

	memset(img, 0, FAKE_SIZE);
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_type = ET_DYN;
	eh.e_machine = EM_X86_64;
	eh.e_version = EV_CURRENT;
	eh.e_phoff = OFF_PH;
	eh.e_shoff = OFF_SH;
	eh.e_ehsize = sizeof(eh);
	eh.e_phentsize = sizeof(Elf64_Phdr);
	eh.e_phnum = 2;
	eh.e_shentsize = sizeof(Elf64_Shdr);
	eh.e_shnum = NSECT;
	eh.e_shstrndx = 1;
	put(img, 0, &eh, sizeof(eh));

	/* Virtual addresses 0x1000 above file offsets, to exercise the
	 * translation through PT_LOAD. */
	ph[0].p_type = PT_LOAD;
	ph[0].p_offset = 0;
	ph[0].p_vaddr = 0x1000;
	ph[0].p_filesz = ph[0].p_memsz = FAKE_SIZE;
	ph[1].p_type = PT_DYNAMIC;
	ph[1].p_offset = OFF_DYN;
	ph[1].p_vaddr = 0x1000 + OFF_DYN;
	ph[1].p_filesz = ph[1].p_memsz = sizeof(dyn);
	put(img, OFF_PH, ph, sizeof(ph));

	for (int i = 0; i < 2; i++) {
		if (!o->needed[i])
			continue;
		dyn[nd].d_tag = DT_NEEDED;
		dyn[nd++].d_un.d_val = add_str(img, OFF_DYNSTR, &dynstr_used, o->needed[i]);
	}
	dyn[nd].d_tag = DT_STRTAB;
	dyn[nd++].d_un.d_ptr = 0x1000 + OFF_DYNSTR;
	dyn[nd].d_tag = DT_STRSZ;
	dyn[nd++].d_un.d_val = DYNSTR_SIZE;
	dyn[nd].d_tag = DT_NULL;
	put(img, OFF_DYN, dyn, sizeof(dyn));

	if (o->sym) {
		sym[1].st_name = add_str(img, OFF_DYNSTR, &dynstr_used,
					 "__cudaRegisterFatBinary");
		sym[1].st_info = ELF64_ST_INFO(STB_GLOBAL, STT_FUNC);
		sym[1].st_shndx = o->sym == 2 ? 2 : SHN_UNDEF;
	}
	put(img, OFF_DYNSYM, sym, sizeof(sym));

	sh[1].sh_name = add_str(img, OFF_SHSTR, &shstr_used, ".shstrtab");
	sh[1].sh_type = SHT_STRTAB;
	sh[1].sh_offset = OFF_SHSTR;
	sh[1].sh_size = SHSTR_SIZE;
	sh[2].sh_name = add_str(img, OFF_SHSTR, &shstr_used,
				o->fatbin ? ".nv_fatbin" : ".rodata");
	sh[2].sh_type = SHT_PROGBITS;
	sh[3].sh_name = add_str(img, OFF_SHSTR, &shstr_used, ".dynsym");
	sh[3].sh_type = SHT_DYNSYM;
	sh[3].sh_offset = OFF_DYNSYM;
	sh[3].sh_size = sizeof(sym);
	sh[3].sh_entsize = sizeof(Elf64_Sym);
	sh[3].sh_link = 4;
	sh[4].sh_name = add_str(img, OFF_SHSTR, &shstr_used, ".dynstr");
	sh[4].sh_type = SHT_STRTAB;
	sh[4].sh_offset = OFF_DYNSTR;
	sh[4].sh_size = DYNSTR_SIZE;
	sh[5].sh_name = add_str(img, OFF_SHSTR, &shstr_used, ".dynamic");
	sh[5].sh_type = SHT_DYNAMIC;
	sh[5].sh_offset = OFF_DYN;
	sh[5].sh_size = sizeof(dyn);
	sh[5].sh_link = 4;
	put(img, OFF_SH, sh, sizeof(sh));
}

/* Scan a private copy of exactly len bytes. */
static int scan_copy(const void *img, size_t len, int want_defines,
		     struct shim_elf_facts *f)
{
	void *copy = malloc(len ? len : 1);
	int rc;

	assert_non_null(copy);
	memcpy(copy, img, len);
	rc = shim_elf_scan(copy, len, want_defines, f);
	free(copy);
	return rc;
}

static void test_static_runtime_exe(void **state)
{
	unsigned char img[FAKE_SIZE];
	struct fake_opts o = { { "libc.so.6", NULL }, 1, 0 };
	struct shim_elf_facts f;

	build_fake(img, &o);
	assert_int_equal(scan_copy(img, sizeof(img), 1, &f), 0);
	assert_true(f.has_fatbin);
	assert_false(f.needs_cudart);
	assert_false(f.needs_driver);
	assert_false(f.imports_register);
	assert_false(f.defines_register);
}

static void test_shared_runtime_exe(void **state)
{
	unsigned char img[FAKE_SIZE];
	struct fake_opts o = { { "libcudart.so.13", "libc.so.6" }, 1, 1 };
	struct shim_elf_facts f;

	build_fake(img, &o);
	assert_int_equal(scan_copy(img, sizeof(img), 1, &f), 0);
	assert_true(f.has_fatbin);
	assert_true(f.needs_cudart);
	assert_false(f.needs_driver);
	assert_true(f.imports_register);
	assert_false(f.defines_register);
}

static void test_driver_user(void **state)
{
	unsigned char img[FAKE_SIZE];
	struct fake_opts o = { { "libcuda.so.1", NULL }, 0, 2 };
	struct shim_elf_facts f;

	build_fake(img, &o);
	assert_int_equal(scan_copy(img, sizeof(img), 1, &f), 0);
	assert_false(f.has_fatbin);
	assert_false(f.needs_cudart);
	assert_true(f.needs_driver);
	assert_true(f.defines_register);
	/* Without a fatbin, symbols are read only on request. */
	assert_int_equal(scan_copy(img, sizeof(img), 0, &f), 0);
	assert_true(f.needs_driver);
	assert_false(f.defines_register);
}

static void test_lookalike_names(void **state)
{
	unsigned char img[FAKE_SIZE];
	struct fake_opts o = { { "libcudaxx.so.1", "libcudart_static.so" }, 0, 0 };
	struct shim_elf_facts f;

	build_fake(img, &o);
	assert_int_equal(scan_copy(img, sizeof(img), 1, &f), 0);
	assert_false(f.needs_cudart);
	assert_false(f.needs_driver);
}

static void test_not_elf(void **state)
{
	static const unsigned char junk[128] = "#!/bin/sh\n";
	unsigned char img[FAKE_SIZE];
	struct fake_opts o = { { "libcuda.so.1", NULL }, 1, 1 };
	struct shim_elf_facts f;

	assert_int_equal(shim_elf_scan(NULL, 0, 1, &f), -EINVAL);
	assert_int_equal(scan_copy(junk, 0, 1, &f), -EINVAL);
	assert_int_equal(scan_copy(junk, sizeof(junk), 1, &f), -EINVAL);
	build_fake(img, &o);
	assert_int_equal(scan_copy(img, sizeof(Elf64_Ehdr) - 1, 1, &f), -EINVAL);
	img[EI_CLASS] = ELFCLASS32;
	assert_int_equal(scan_copy(img, sizeof(img), 1, &f), -EINVAL);
	img[EI_CLASS] = ELFCLASS64;
	img[EI_DATA] = ELFDATA2MSB;
	assert_int_equal(scan_copy(img, sizeof(img), 1, &f), -EINVAL);
}

static void test_hostile_headers(void **state)
{
	unsigned char img[FAKE_SIZE];
	struct fake_opts o = { { "libcuda.so.1", "libcudart.so.13" }, 1, 1 };
	struct shim_elf_facts f;
	Elf64_Ehdr eh;
	Elf64_Dyn d;

	/* Section table far past the end, and absurd counts. */
	build_fake(img, &o);
	memcpy(&eh, img, sizeof(eh));
	eh.e_shoff = UINT64_MAX - 8;
	eh.e_phoff = UINT64_MAX - 8;
	put(img, 0, &eh, sizeof(eh));
	assert_int_equal(scan_copy(img, sizeof(img), 1, &f), 0);
	assert_false(f.has_fatbin);
	assert_false(f.needs_driver);

	build_fake(img, &o);
	memcpy(&eh, img, sizeof(eh));
	eh.e_shnum = 0xffff;
	eh.e_phnum = 0xffff;
	put(img, 0, &eh, sizeof(eh));
	assert_int_equal(scan_copy(img, sizeof(img), 1, &f), 0);

	/* e_shnum 0: the count is in section 0's sh_size, here huge. */
	build_fake(img, &o);
	memcpy(&eh, img, sizeof(eh));
	eh.e_shnum = 0;
	eh.e_shstrndx = SHN_XINDEX;
	put(img, 0, &eh, sizeof(eh));
	{
		Elf64_Shdr sh0 = { 0 };

		sh0.sh_size = UINT64_MAX;
		sh0.sh_link = 0xffffffffu;
		put(img, OFF_SH, &sh0, sizeof(sh0));
	}
	assert_int_equal(scan_copy(img, sizeof(img), 1, &f), 0);

	/* String table offsets and sizes out of range. */
	build_fake(img, &o);
	{
		Elf64_Shdr sh;

		memcpy(&sh, img + OFF_SH + 1 * sizeof(sh), sizeof(sh));
		sh.sh_size = UINT64_MAX;
		put(img, OFF_SH + 1 * sizeof(sh), &sh, sizeof(sh));
		memcpy(&sh, img + OFF_SH + 3 * sizeof(sh), sizeof(sh));
		sh.sh_link = 9999;
		put(img, OFF_SH + 3 * sizeof(sh), &sh, sizeof(sh));
	}
	assert_int_equal(scan_copy(img, sizeof(img), 1, &f), 0);
	assert_false(f.has_fatbin);
	assert_true(f.needs_driver);	/* the dynamic section is intact */

	/* DT_STRTAB outside every PT_LOAD; DT_NEEDED index past the table. */
	build_fake(img, &o);
	memcpy(&d, img + OFF_DYN + 2 * sizeof(d), sizeof(d));
	assert_int_equal(d.d_tag, DT_STRTAB);
	d.d_un.d_ptr = 0xdeadbeef000;
	put(img, OFF_DYN + 2 * sizeof(d), &d, sizeof(d));
	assert_int_equal(scan_copy(img, sizeof(img), 1, &f), 0);
	assert_false(f.needs_driver);
	build_fake(img, &o);
	d.d_tag = DT_NEEDED;
	d.d_un.d_val = DYNSTR_SIZE - 3;	/* a string without its NUL in range */
	put(img, OFF_DYN, &d, sizeof(d));
	img[OFF_DYNSTR + DYNSTR_SIZE - 3] = 'l';
	img[OFF_DYNSTR + DYNSTR_SIZE - 2] = 'i';
	img[OFF_DYNSTR + DYNSTR_SIZE - 1] = 'b';
	assert_int_equal(scan_copy(img, sizeof(img), 1, &f), 0);
}

/* xorshift64: deterministic, so a failure reproduces. */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Truncate at every length and flip random bytes: only "no crash" counts. */
static void torture(const unsigned char *img, size_t len, uint64_t seed, int rounds)
{
	struct shim_elf_facts f;
	unsigned char *buf = malloc(len);
	size_t step = len > 65536 ? len / 4096 : 1;

	assert_non_null(buf);
	for (size_t n = 0; n <= len; n += step)
		(void)scan_copy(img, n, 1, &f);
	for (size_t n = len > 4096 ? len - 4096 : 0; n <= len; n++)
		(void)scan_copy(img, n, 1, &f);	/* section headers live at the end */
	for (int r = 0; r < rounds; r++) {
		int flips = 1 + (int)(rnd(&seed) % 8);

		memcpy(buf, img, len);
		for (int i = 0; i < flips; i++) {
			size_t at = (size_t)(rnd(&seed) % len);

			/* Aim at the headers most of the time. */
			if (rnd(&seed) % 4 && len > 4096)
				at = rnd(&seed) % 2 ? at % 4096 : len - 1 - at % 4096;
			buf[at] = (unsigned char)rnd(&seed);
		}
		(void)scan_copy(buf, len, 1, &f);
	}
	free(buf);
}

static void test_torture_fake(void **state)
{
	unsigned char img[FAKE_SIZE];
	struct fake_opts o = { { "libcuda.so.1", "libcudart.so.13" }, 1, 1 };

	build_fake(img, &o);
	torture(img, sizeof(img), 0x9e3779b97f4a7c15ull, 20000);
}

static unsigned char *slurp(const char *path, size_t *len)
{
	struct stat st;
	unsigned char *buf;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) || st.st_size <= 0) {
		close(fd);
		return NULL;
	}
	buf = malloc((size_t)st.st_size);
	if (buf && read(fd, buf, (size_t)st.st_size) != st.st_size) {
		free(buf);
		buf = NULL;
	}
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

static void test_real_files(void **state)
{
	struct shim_elf_facts f;
	unsigned char *img;
	size_t len;

	/* This test: dynamic, no CUDA at all. */
	img = slurp("/proc/self/exe", &len);
	assert_non_null(img);
	assert_int_equal(shim_elf_scan(img, len, 1, &f), 0);
	assert_false(f.has_fatbin);
	assert_false(f.needs_cudart);
	assert_false(f.needs_driver);
	assert_false(f.defines_register);
	torture(img, len, 42, 2000);
	free(img);

#ifdef TR_CUDART_SO
	/* The runtime itself: defines __cudaRegisterFatBinary, needs no
	 * driver (it dlopens it), carries no fatbin. */
	img = slurp(TR_CUDART_SO, &len);
	if (!img) {
		print_message("cannot read %s: skipped\n", TR_CUDART_SO);
		return;
	}
	assert_int_equal(shim_elf_scan(img, len, 1, &f), 0);
	assert_false(f.has_fatbin);
	assert_false(f.needs_driver);
	assert_true(f.defines_register);
	free(img);
#endif
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_static_runtime_exe),
		cmocka_unit_test(test_shared_runtime_exe),
		cmocka_unit_test(test_driver_user),
		cmocka_unit_test(test_lookalike_names),
		cmocka_unit_test(test_not_elf),
		cmocka_unit_test(test_hostile_headers),
		cmocka_unit_test(test_torture_fake),
		cmocka_unit_test(test_real_files),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
