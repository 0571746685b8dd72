/*
 * shim_preflight.h - what the shim checks about a program before it runs.
 *
 * tremote can carry only the calls that reach libcudart.so through the
 * dynamic linker.  A program that carries its own copy of the runtime
 * (nvcc's default, -cudart static) or calls libcuda.so.1 itself goes around
 * the shim, and its GPU work fails in ways that are hard to connect to the
 * cause.  So when libtremote_shim.so is loaded, a constructor looks at the
 * executable and at every object loaded with it and says so, one line per
 * finding, on stderr:
 *
 *   tremote: ./prog links the CUDA runtime statically, so tremote cannot
 *     carry its calls; rebuild with 'nvcc -cudart shared' (CMake: set
 *     CMAKE_CUDA_RUNTIME_LIBRARY Shared)
 *   tremote: <object> links the CUDA runtime statically, so tremote cannot
 *     carry its calls; its GPU work will fail          (a library: NVIDIA's
 *     cuBLAS, cuFFT, NCCL... ship that way)
 *   tremote: <object> calls the CUDA driver directly (libcuda.so.1); tremote
 *     does not carry driver calls yet, so its GPU work will fail
 *
 * (each on one line).  TREMOTE_QUIET=1 silences it.  Objects dlopen()ed
 * later are not examined.  The checks read the files from disk (mapped
 * read-only) and never trust an offset or a count in them.
 */
#ifndef SHIM_PREFLIGHT_H
#define SHIM_PREFLIGHT_H

#include <stddef.h>

/* What shim_elf_scan found in one ELF file. */
struct shim_elf_facts {
	unsigned has_fatbin : 1;	/* a .nv_fatbin or .nvFatBinSegment section */
	unsigned needs_cudart : 1;	/* DT_NEEDED libcudart.so* */
	unsigned needs_driver : 1;	/* DT_NEEDED libcuda.so* */
	unsigned imports_register : 1;	/* __cudaRegisterFatBinary undefined in .dynsym */
	unsigned defines_register : 1;	/* __cudaRegisterFatBinary defined (.dynsym or
					 * .symtab): a runtime linked in */
};

/*
 * shim_elf_scan - read the facts above out of the ELF image buf[0..len).
 * Only 64-bit little-endian ELF is understood.  The symbol tables are read
 * only when want_defines is non-zero (they can be large; the shim asks only
 * for the executable).  Returns 0 with *facts filled (parts of the file that
 * are malformed are skipped: what they would have said stays 0), or
 * -EINVAL when buf is not a 64-bit little-endian ELF file.  Never reads
 * outside buf.
 */
int shim_elf_scan(const void *buf, size_t len, int want_defines,
		  struct shim_elf_facts *facts);

#endif /* SHIM_PREFLIGHT_H */
