/*
 * shim_preflight.c - warn, before main(), about code the shim cannot carry.
 *
 * See shim_preflight.h for what is reported and why.  The constructor runs
 * before the executable's own constructors (the dynamic linker initialises
 * a preloaded library before the program that needs nothing from it), so
 * the warning comes before the first line a confused program prints.
 *
 * The ELF reading is deliberately paranoid: the files are whatever the
 * program loaded, and a preload library that crashes a program because of
 * an odd binary is worse than no warning.  Every header is copied out with
 * memcpy (no alignment assumptions), every offset and count is checked
 * against the mapping before use, and anything malformed is skipped.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE	/* the build defines it; this is for other builds */
#endif
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shim_preflight.h"

static const char register_sym[] = "__cudaRegisterFatBinary";

/* [off, off + size) lies within a buffer of len bytes. */
static int in_bounds(size_t len, uint64_t off, uint64_t size)
{
	return off <= len && size <= len - off;
}

/* A string table: the bytes [off, off + size) of the image. */
struct strtab {
	const char *p;
	size_t size;
};

static int strtab_init(struct strtab *t, const unsigned char *img, size_t len,
		       uint64_t off, uint64_t size)
{
	if (!in_bounds(len, off, size) || size == 0) {
		t->p = NULL;
		t->size = 0;
		return -EINVAL;
	}
	t->p = (const char *)img + off;
	t->size = size;
	return 0;
}

/* 1 if the NUL-terminated string at index idx of t is exactly s. */
static int strtab_eq(const struct strtab *t, uint64_t idx, const char *s)
{
	size_t n = strlen(s);

	return t->p && idx < t->size && n < t->size - idx &&
	       memcmp(t->p + idx, s, n) == 0 && t->p[idx + n] == '\0';
}

/* 1 if the string at idx of t starts with prefix and then ends or has '.'. */
static int strtab_is_soname(const struct strtab *t, uint64_t idx, const char *prefix)
{
	size_t n = strlen(prefix);

	return t->p && idx < t->size && n < t->size - idx &&
	       memcmp(t->p + idx, prefix, n) == 0 &&
	       (t->p[idx + n] == '\0' || t->p[idx + n] == '.');
}

/* File offset of virtual address addr, through the PT_LOAD headers. */
static int vaddr_to_off(const unsigned char *img, size_t len, const Elf64_Ehdr *eh,
			uint64_t addr, uint64_t *off)
{
	for (uint64_t i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr ph;

		memcpy(&ph, img + eh->e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD || addr < ph.p_vaddr ||
		    addr - ph.p_vaddr >= ph.p_filesz)
			continue;
		*off = ph.p_offset + (addr - ph.p_vaddr);
		return 0;
	}
	return -ENOENT;
}

/*
 * DT_NEEDED, read as the dynamic linker does: through PT_DYNAMIC and
 * DT_STRTAB, so that files whose section headers were stripped still count.
 */
static void scan_needed(const unsigned char *img, size_t len, const Elf64_Ehdr *eh,
			struct shim_elf_facts *f)
{
	uint64_t dyn_off = 0, dyn_size = 0, str_addr = 0, str_size = 0, str_off;
	int have_dyn = 0, have_str = 0, have_strsz = 0;
	struct strtab strs;

	if (eh->e_phentsize != sizeof(Elf64_Phdr) ||
	    !in_bounds(len, eh->e_phoff, (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr)))
		return;
	for (uint64_t i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr ph;

		memcpy(&ph, img + eh->e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type == PT_DYNAMIC) {
			dyn_off = ph.p_offset;
			dyn_size = ph.p_filesz;
			have_dyn = 1;
			break;
		}
	}
	if (!have_dyn || !in_bounds(len, dyn_off, dyn_size))
		return;

	/* First pass: where the string table is. */
	for (uint64_t o = 0; o + sizeof(Elf64_Dyn) <= dyn_size; o += sizeof(Elf64_Dyn)) {
		Elf64_Dyn d;

		memcpy(&d, img + dyn_off + o, sizeof(d));
		if (d.d_tag == DT_NULL)
			break;
		if (d.d_tag == DT_STRTAB) {
			str_addr = d.d_un.d_ptr;
			have_str = 1;
		} else if (d.d_tag == DT_STRSZ) {
			str_size = d.d_un.d_val;
			have_strsz = 1;
		}
	}
	if (!have_str || !have_strsz || vaddr_to_off(img, len, eh, str_addr, &str_off) ||
	    strtab_init(&strs, img, len, str_off, str_size))
		return;

	/* Second pass: the names. */
	for (uint64_t o = 0; o + sizeof(Elf64_Dyn) <= dyn_size; o += sizeof(Elf64_Dyn)) {
		Elf64_Dyn d;

		memcpy(&d, img + dyn_off + o, sizeof(d));
		if (d.d_tag == DT_NULL)
			break;
		if (d.d_tag != DT_NEEDED)
			continue;
		if (strtab_is_soname(&strs, d.d_un.d_val, "libcudart.so"))
			f->needs_cudart = 1;
		else if (strtab_is_soname(&strs, d.d_un.d_val, "libcuda.so"))
			f->needs_driver = 1;
	}
}

static int get_shdr(const unsigned char *img, size_t len, const Elf64_Ehdr *eh,
		    uint64_t shnum, uint64_t i, Elf64_Shdr *sh)
{
	if (i >= shnum)
		return -EINVAL;
	memcpy(sh, img + eh->e_shoff + i * sizeof(*sh), sizeof(*sh));
	return 0;
}

/* Look for __cudaRegisterFatBinary in one symbol table section. */
static void scan_symbols(const unsigned char *img, size_t len, const Elf64_Ehdr *eh,
			 uint64_t shnum, const Elf64_Shdr *symsh, struct shim_elf_facts *f)
{
	Elf64_Shdr strsh;
	struct strtab strs;
	uint64_t count;

	if (symsh->sh_entsize != sizeof(Elf64_Sym) ||
	    !in_bounds(len, symsh->sh_offset, symsh->sh_size) ||
	    get_shdr(img, len, eh, shnum, symsh->sh_link, &strsh) ||
	    strsh.sh_type != SHT_STRTAB ||
	    strtab_init(&strs, img, len, strsh.sh_offset, strsh.sh_size))
		return;
	count = symsh->sh_size / sizeof(Elf64_Sym);
	for (uint64_t i = 1; i < count; i++) {	/* entry 0 is the null symbol */
		Elf64_Sym s;

		memcpy(&s, img + symsh->sh_offset + i * sizeof(s), sizeof(s));
		if (!strtab_eq(&strs, s.st_name, register_sym))
			continue;
		if (s.st_shndx != SHN_UNDEF)
			f->defines_register = 1;
		else if (symsh->sh_type == SHT_DYNSYM)
			f->imports_register = 1;
	}
}

int shim_elf_scan(const void *buf, size_t len, int want_defines,
		  struct shim_elf_facts *facts)
{
	const unsigned char *img = buf;
	Elf64_Ehdr eh;
	Elf64_Shdr sh0, shstr;
	struct strtab names = { NULL, 0 };
	uint64_t shnum, shstrndx;

	memset(facts, 0, sizeof(*facts));
	if (!img || len < sizeof(eh))
		return -EINVAL;
	memcpy(&eh, img, sizeof(eh));
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB)
		return -EINVAL;

	scan_needed(img, len, &eh, facts);

	/* Section headers; e_shnum 0 and e_shstrndx SHN_XINDEX defer to entry 0. */
	if (eh.e_shoff == 0 || eh.e_shentsize != sizeof(Elf64_Shdr) ||
	    !in_bounds(len, eh.e_shoff, sizeof(Elf64_Shdr)))
		return 0;
	memcpy(&sh0, img + eh.e_shoff, sizeof(sh0));
	shnum = eh.e_shnum ? eh.e_shnum : sh0.sh_size;
	shstrndx = eh.e_shstrndx == SHN_XINDEX ? sh0.sh_link : eh.e_shstrndx;
	if (shnum > (len - eh.e_shoff) / sizeof(Elf64_Shdr))
		return 0;	/* table runs past the end of the file */
	if (!get_shdr(img, len, &eh, shnum, shstrndx, &shstr) &&
	    shstr.sh_type == SHT_STRTAB)
		strtab_init(&names, img, len, shstr.sh_offset, shstr.sh_size);

	for (uint64_t i = 1; i < shnum; i++) {
		Elf64_Shdr sh;

		get_shdr(img, len, &eh, shnum, i, &sh);
		if (strtab_eq(&names, sh.sh_name, ".nv_fatbin") ||
		    strtab_eq(&names, sh.sh_name, ".nvFatBinSegment"))
			facts->has_fatbin = 1;
	}

	/*
	 * Symbols matter only where a fatbin asks who registers it, or where
	 * the caller wants a static runtime found by its symbols; skipping
	 * them elsewhere keeps the cost per loaded library to a few headers.
	 */
	if (!facts->has_fatbin && !want_defines)
		return 0;
	for (uint64_t i = 1; i < shnum; i++) {
		Elf64_Shdr sh;

		get_shdr(img, len, &eh, shnum, i, &sh);
		if (sh.sh_type == SHT_DYNSYM || (want_defines && sh.sh_type == SHT_SYMTAB))
			scan_symbols(img, len, &eh, shnum, &sh, facts);
	}
	return 0;
}

/* One line on stderr, with one write(2); errors writing it are ignored. */
__attribute__((format(printf, 1, 2)))
static void say(const char *fmt, ...)
{
	char line[PATH_MAX + 256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	while (write(STDERR_FILENO, line, (size_t)n) < 0 && errno == EINTR)
		;
}

/* Map path read-only, scan it, report.  Silent on any failure. */
static void check_object(const char *path, const char *shown, int is_exe)
{
	struct shim_elf_facts f;
	struct stat st;
	void *map;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size < (off_t)sizeof(Elf64_Ehdr)) {
		close(fd);
		return;
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
		return;
	if (shim_elf_scan(map, (size_t)st.st_size, is_exe, &f) == 0) {
		/*
		 * A fatbin (or, in the executable, a runtime's own symbols)
		 * with neither libcudart.so among the needed libraries nor
		 * __cudaRegisterFatBinary among the imports: the runtime
		 * that registers it is inside the file.
		 */
		int own_runtime = (f.has_fatbin || (is_exe && f.defines_register)) &&
				  !f.needs_cudart && !f.imports_register;

		if (own_runtime && is_exe)
			say("tremote: %s links the CUDA runtime statically, so tremote "
			    "cannot carry its calls; rebuild with 'nvcc -cudart shared' "
			    "(CMake: set CMAKE_CUDA_RUNTIME_LIBRARY Shared)", shown);
		else if (own_runtime)
			say("tremote: %s links the CUDA runtime statically, so tremote "
			    "cannot carry its calls; its GPU work will fail", shown);
		if (f.needs_driver)
			say("tremote: %s calls the CUDA driver directly (libcuda.so.1); "
			    "tremote does not carry driver calls yet, so its GPU work "
			    "will fail", shown);
	}
	munmap(map, (size_t)st.st_size);
}

struct preflight_ctx {
	const char *self;	/* this library's path, as the loader knows it */
	int index;
};

static int check_loaded(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct preflight_ctx *ctx = arg;
	const char *name = info->dlpi_name;
	const char *base;

	/* The executable comes first, unnamed; it was checked already. */
	if (ctx->index++ == 0 || !name || name[0] != '/')
		return 0;	/* also skips the vDSO, which has no file */
	if (ctx->self && strcmp(name, ctx->self) == 0)
		return 0;
	base = strrchr(name, '/') + 1;
	if (strncmp(base, "libcudart.so", 12) == 0)
		return 0;	/* the runtime the shim stands in for */
	check_object(name, name, 0);
	return 0;
}

__attribute__((constructor(101)))
static void shim_preflight(void)
{
	const char *quiet = getenv("TREMOTE_QUIET");
	struct preflight_ctx ctx = { NULL, 0 };
	Dl_info self;
	int saved_errno = errno;

	if (quiet && strcmp(quiet, "1") == 0)
		return;
	check_object("/proc/self/exe",
		     program_invocation_name ? program_invocation_name : "/proc/self/exe", 1);
	if (dladdr((void *)shim_preflight, &self) && self.dli_fname)
		ctx.self = self.dli_fname;
	dl_iterate_phdr(check_loaded, &ctx);
	errno = saved_errno;
}
