/*
 * fatbin: parse the CUDA fatbins that nvcc-built programs register, and
 * derive kernel parameter layouts from them.
 *
 * Shared by the shim (which receives the fatbins through
 * __cudaRegisterFatBinary and must pack kernel arguments) and the GPU agent
 * (which loads the PTX or ELF).  No I/O; every function is safe to call
 * from any thread on distinct objects.
 *
 * The layout, as measured on CUDA 13.0 (nvcc 13.0.88) binaries and matching
 * what public reverse-engineering reports for CUDA 10-12; all integers are
 * little-endian and no field is assumed aligned in memory:
 *
 *   Wrapper (__fatBinC_Wrapper_t, section .nvFatBinSegment), 24 bytes:
 *     0  i32  magic     0x466243b1
 *     4  i32  version   1 = module, 2 = device-link image (prelinked list)
 *     8  ptr  data      -> container
 *    16  ptr  filename_or_fatbins
 *
 *   Container (section .nv_fatbin), 16-byte header then entries:
 *     0  u32  magic        0xBA55ED50
 *     4  u16  version      1
 *     6  u16  header_size  16
 *     8  u64  size         bytes of entries that follow the header
 *
 *   Entry header (64 bytes; 80 for PTX, 112 for sm_100+ ELF: the extra
 *   bytes hold option strings that `options_offset` points into):
 *     0  u16  kind            1 = PTX, 2 = ELF (cubin)
 *     2  u16  (0x0101, format version)
 *     4  u32  header_size     payload starts at entry + header_size
 *     8  u64  size            payload bytes, padded to 8; next entry at
 *                             entry + header_size + size
 *    16  u32  compressed_size bytes of compressed stream (0 if raw)
 *    20  u32  options_offset  0, or offset in this header of a {u32 off,
 *                             u32 len} pair locating ptxas options
 *    24  u16  minor           PTX ISA minor (PTX) / ELF format minor
 *    26  u16  major           PTX ISA major (PTX) / ELF format major
 *    28  u32  arch            sm number: 75 for sm_75 / compute_75
 *    32  u32  name_offset     object name offset in this header (or 0)
 *    36  u32  name_len
 *    40  u64  flags           0x1 64-bit, 0x2 debug, 0x10 Linux host,
 *                             0x2000 LZ-compressed, 0x8000 zstd-compressed
 *    48  u64  (0)
 *    56  u64  uncompressed_size  0 if raw
 *
 * Uncompressed PTX is NUL-terminated inside its (padded) payload, and the
 * uncompressed_size of compressed PTX counts that NUL.
 */
#ifndef TR_FATBIN_H
#define TR_FATBIN_H

#include <stddef.h>
#include <stdint.h>

#define TR_FATBIN_WRAPPER_MAGIC 0x466243b1u
#define TR_FATBIN_MAGIC 0xBA55ED50u

/* Entries beyond this many make tr_fatbin_parse() fail with -E2BIG. */
#define TR_FATBIN_MAX_ENTRIES 64

/*
 * Upper bound on an entry's declared uncompressed size: a header claiming
 * more is rejected by tr_fatbin_parse() instead of costing a huge malloc.
 */
#define TR_FATBIN_MAX_UNCOMPRESSED (1ull << 30)

/* tr_fatbin_entry.kind (the raw header value; others are kept as is). */
#define TR_FATBIN_KIND_PTX 1
#define TR_FATBIN_KIND_ELF 2

/* tr_fatbin_entry.flags_compression: which decoder the payload needs. */
#define TR_FATBIN_COMP_NONE 0
#define TR_FATBIN_COMP_LZ 1   /* header flag 0x2000, see lzfb.h */
#define TR_FATBIN_COMP_ZSTD 2 /* header flag 0x8000, a zstd frame */

/* Raw header flag bits. */
#define TR_FATBIN_FLAG_64BIT 0x1ull
#define TR_FATBIN_FLAG_DEBUG 0x2ull
#define TR_FATBIN_FLAG_LINUX 0x10ull
#define TR_FATBIN_FLAG_LZ 0x2000ull
#define TR_FATBIN_FLAG_ZSTD 0x8000ull

/*
 * One entry of a parsed container.  Pointers borrow from the bytes given to
 * tr_fatbin_parse(): they live as long as those bytes do.
 */
struct tr_fatbin_entry {
	uint16_t kind;              /* TR_FATBIN_KIND_* or another raw kind */
	uint16_t flags_compression; /* TR_FATBIN_COMP_* */
	uint32_t arch;              /* 75 for sm_75 (ELF) / compute_75 (PTX) */
	const uint8_t *payload;     /* stream as stored (maybe compressed) */
	uint64_t payload_size;      /* bytes of that stream: compressed_size
	                             * when compressed, else the padded size */
	uint64_t uncompressed_size; /* bytes tr_fatbin_entry_data() returns */
	uint64_t flags;             /* raw header flags */
	uint32_t header_size;       /* 64, 80, 112... */
	uint16_t major, minor;      /* PTX ISA version for PTX entries */
	uint64_t offset;            /* of the entry header in the container */
};

/* A parsed container.  Caller-owned (stack is fine: about 3.6 KiB). */
struct tr_fatbin {
	const uint8_t *data; /* container start, borrowed */
	size_t size;         /* header + entries: the container's bytes */
	uint16_t version;
	uint32_t count;
	struct tr_fatbin_entry entries[TR_FATBIN_MAX_ENTRIES];
};

/*
 * tr_fatbin_from_wrapper - find the container a wrapper points at.
 *
 * `wrapper` is the pointer __cudaRegisterFatBinary() received.  Checks the
 * wrapper's magic and version (1 or 2) and the container header's magic,
 * version and header size, then sets *fatbin to the container and *size to
 * header + entries.  It cannot know how much memory is really there: it
 * trusts the wrapper, as libcudart does, and refuses only sizes no real
 * fatbin has (over 4 GiB).  Nothing is copied or allocated.
 *
 * Returns 0; -EINVAL if an argument is NULL or the wrapper's magic or
 * version is not one of a fatbin wrapper; -EPROTO if the container header
 * is not one.
 */
int tr_fatbin_from_wrapper(const void *wrapper, const void **fatbin,
                           size_t *size);

/*
 * tr_fatbin_parse - walk the entries of the container at `data`.
 *
 * Reads only [data, data + size).  `size` may exceed the container (for
 * instance a whole .nv_fatbin section holding several containers back to
 * back): the container's own size is then used and stored in fb->size, so
 * the next container starts at data + fb->size.  Each entry's header and
 * payload must lie inside the container; compressed entries must say which
 * of the two codecs they use and a plausible uncompressed size.  Payloads
 * are not decompressed here.
 *
 * On success fb->entries[0..count) describe the entries in stored order
 * and borrow from `data`.  On failure *fb is zeroed.
 *
 * Returns 0; -EINVAL (NULL argument); -EPROTO (not a container, or an
 * entry that does not fit or is inconsistent); -E2BIG (more than
 * TR_FATBIN_MAX_ENTRIES entries).
 */
int tr_fatbin_parse(const void *data, size_t size, struct tr_fatbin *fb);

/*
 * tr_fatbin_entry_data - the entry's payload, decompressed.
 *
 * Works for all three encodings nvcc 13 writes (raw, LZ, zstd).  The
 * decoders are bounded by e->uncompressed_size and must produce exactly
 * that many bytes.  On success *out is a new malloc()ed buffer of *out_len
 * bytes that the caller frees with free(); it has one extra NUL byte
 * after *out_len so that PTX can be used as a C string.  On failure *out
 * is NULL and *out_len 0.
 *
 * Returns 0; -EINVAL (NULL argument); -ENOMEM; -EPROTO (corrupt stream or
 * size mismatch); -ENOTSUP (unknown compression).
 */
int tr_fatbin_entry_data(const struct tr_fatbin_entry *e, uint8_t **out,
                         size_t *out_len);

/*
 * tr_fatbin_best_ptx - the PTX to JIT for a GPU of compute capability
 * `max_arch` (e.g. 90 for 9.0): the PTX entry with the highest arch that
 * is <= max_arch (UINT32_MAX: the highest of all).
 *
 * On success *ptx is a new malloc()ed, NUL-terminated string of *len bytes
 * (the PTX text up to its terminating NUL; the caller frees it).  On
 * failure *ptx is NULL and *len 0.
 *
 * Returns 0; -ENOENT if no PTX entry qualifies (SASS-only fatbin, or PTX
 * for newer GPUs only: print tr_fatbin_ptx_hint()); or an error of
 * tr_fatbin_entry_data().
 */
int tr_fatbin_best_ptx(const struct tr_fatbin *fb, uint32_t max_arch,
                       uint8_t **ptx, size_t *len);

/*
 * tr_fatbin_ptx_hint - one line of advice for the -ENOENT above: how to
 * rebuild the program with PTX embedded.  Static string, not to be freed.
 */
const char *tr_fatbin_ptx_hint(void);

/*
 * tr_fatbin_hash - XXH3-128 of the container bytes [data, data + size),
 * written to out[] in XXH3's canonical (big-endian) form.  The key under
 * which agents cache loaded modules.
 */
void tr_fatbin_hash(const void *data, size_t size, uint8_t out[16]);

/*
 * Kernel parameter layouts.
 *
 * The launch packer copies args[i] (p[i].size bytes) to offset p[i].offset
 * of the parameter buffer, whose size is total_size: the end of the last
 * parameter, not rounded up (what EIATTR_PARAM_CBANK and
 * EIATTR_CBANK_PARAM_SIZE give).  A kernel may take up to 32764 bytes of
 * parameters since CUDA 12.1, in up to that many parameters; we keep
 * TR_KPARAMS_MAX and fail with -E2BIG beyond.
 */
#define TR_KPARAMS_MAX 256

struct tr_kparams {
	uint32_t count;      /* parameters, in declaration order */
	uint32_t total_size; /* bytes of the parameter buffer */
	struct {
		uint32_t offset, size;
	} p[TR_KPARAMS_MAX];
};

/*
 * tr_kparams_find - the parameter layout of kernel `mangled_name` (the
 * deviceName __cudaRegisterFunction receives).
 *
 * Looks first in the ELF entries (.nv.info.<name> section, EIATTR_KPARAM_INFO
 * records), then in the PTX entries (the .entry declaration).  Each entry
 * is decompressed for the look-up: for many kernels of one fatbin,
 * decompress once with tr_fatbin_entry_data() and call the two functions
 * below instead.
 *
 * *out is zeroed first and filled on success.  Returns 0; -EINVAL (NULL
 * argument); -ENOENT (no entry declares the kernel); -E2BIG (over
 * TR_KPARAMS_MAX parameters); -EPROTO (the kernel is declared but its
 * description is corrupt and no other entry has a good one); -ENOMEM.
 */
int tr_kparams_find(const struct tr_fatbin *fb, const char *mangled_name,
                    struct tr_kparams *out);

/*
 * tr_kparams_from_elf - the layout from a decompressed cubin: its
 * .nv.info.<name> section's EIATTR_KPARAM_INFO (or _V2) records give
 * ordinal, offset and size; EIATTR_PARAM_CBANK / EIATTR_CBANK_PARAM_SIZE
 * give the total.  Only 64-bit little-endian ELF is accepted.  Reads only
 * [elf, elf + len).  Same returns as tr_kparams_find().
 */
int tr_kparams_from_elf(const uint8_t *elf, size_t len,
                        const char *mangled_name, struct tr_kparams *out);

/*
 * tr_kparams_from_ptx - the layout from PTX text: the parameters of
 * `.entry <name>(...)`, each placed at the next multiple of its alignment
 * (`.align N` before the type, else the natural alignment of the scalar
 * or vector type).  Reads only [ptx, ptx + len); a NUL ends the text
 * early.  Same returns as tr_kparams_find().
 */
int tr_kparams_from_ptx(const char *ptx, size_t len, const char *mangled_name,
                        struct tr_kparams *out);

/*
 * Device printf.  A kernel's printf calls vprintf, which the driver
 * provides: a cubin that may print has an undefined symbol "vprintf", and
 * PTX that may print declares ".extern .func ... vprintf".  The driver
 * writes what kernels printed only at a synchronising call, so a GPU
 * agent must synchronise after a launch of such a module before it
 * answers; for any other module a stream query that says "done" is
 * enough.  Getting "no" wrong would lose output, so each function answers
 * "may print" whenever it cannot tell.
 */

/* Fatbins whose entries add up to more than this many bytes are not
   looked into (decompressing them would cost more than it saves). */
#define TR_FATBIN_PRINT_SCAN_MAX (64ull << 20)

/*
 * tr_fatbin_may_print - 0 when no entry of fb refers to vprintf; 1 when
 * one does, or when one cannot be read (an unknown kind or compression, a
 * corrupt stream or ELF) or the whole is over TR_FATBIN_PRINT_SCAN_MAX.
 * Decompresses each entry in turn.  Returns -EINVAL (NULL fb) or -ENOMEM.
 */
int tr_fatbin_may_print(const struct tr_fatbin *fb);

/*
 * tr_elf_calls_printf - 1 if the decompressed cubin [elf, elf + len)
 * imports vprintf (an undefined symbol of that name in a symbol table),
 * 0 if not; -EPROTO if it is not a readable ELF64 little-endian file,
 * -EINVAL if elf is NULL.
 */
int tr_elf_calls_printf(const uint8_t *elf, size_t len);

/*
 * tr_ptx_calls_printf - 1 if PTX text [ptx, ptx + len) (a NUL ends it
 * early) names vprintf outside comments, 0 if not, -EINVAL if ptx is NULL.
 */
int tr_ptx_calls_printf(const char *ptx, size_t len);

#endif /* TR_FATBIN_H */
