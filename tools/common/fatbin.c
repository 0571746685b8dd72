/*
 * fatbin.c: CUDA fatbin containers, their three payload encodings, and
 * kernel parameter layouts from the ELF and PTX inside them.  fatbin.h
 * documents the byte layout; this file says why the checks are the way
 * they are.
 *
 * Everything here reads bytes that came from a program we do not control
 * (and, on the agent, from the network), and a fuzzer is pointed at it, so
 * the rule is: every length is checked against what is left before it is
 * used, multi-byte fields are assembled from bytes (no unaligned loads, no
 * host-endian assumption), and sums that could wrap are compared by
 * subtraction instead.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>
#include <zstd.h>

#include "fatbin.h"
#include "lzfb.h"

/* ---- little-endian readers: callers have checked the bounds ---- */

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
	return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

/* ---- containers ---- */

#define FB_HDR_SIZE 16
#define FB_ENTRY_MIN 64

/* Entry header field offsets (fatbin.h has the table). */
#define FE_KIND 0
#define FE_HDR_SIZE 4
#define FE_SIZE 8
#define FE_COMP_SIZE 16
#define FE_MINOR 24
#define FE_MAJOR 26
#define FE_ARCH 28
#define FE_FLAGS 40
#define FE_UNCOMP_SIZE 56

/* No real fatbin comes near this; it keeps size arithmetic far from wrap. */
#define FB_MAX_CONTAINER (1ull << 32)

/*
 * The in-memory form of __fatBinC_Wrapper_t (fatbinary_section.h); copied
 * out with memcpy so that a misaligned wrapper is not undefined behaviour.
 */
struct fb_wrapper {
	int32_t magic;
	int32_t version;
	const void *data;
	void *filename_or_fatbins;
};
_Static_assert(offsetof(struct fb_wrapper, data) == 8,
               "__fatBinC_Wrapper_t: data follows two ints");

/*
 * Check the FB_HDR_SIZE bytes of a container header at p and return the
 * container's total size (header + entries) in *total.  Whether that many
 * bytes are really there is the caller's business.
 */
static int fb_header(const uint8_t *p, uint64_t *total)
{
	uint16_t hsize = rd16(p + 6);
	uint64_t body = rd64(p + 8);

	if (rd32(p) != TR_FATBIN_MAGIC || rd16(p + 4) != 1 ||
	    hsize < FB_HDR_SIZE)
		return -EPROTO;
	if (body > FB_MAX_CONTAINER)
		return -EPROTO;
	*total = hsize + body;
	return 0;
}

int tr_fatbin_from_wrapper(const void *wrapper, const void **fatbin,
                           size_t *size)
{
	struct fb_wrapper w;
	uint64_t total;
	int ret;

	if (wrapper == NULL || fatbin == NULL || size == NULL)
		return -EINVAL;
	*fatbin = NULL;
	*size = 0;
	memcpy(&w, wrapper, sizeof(w));
	if ((uint32_t)w.magic != TR_FATBIN_WRAPPER_MAGIC ||
	    (w.version != 1 && w.version != 2))
		return -EINVAL;
	if (w.data == NULL)
		return -EPROTO;

	ret = fb_header(w.data, &total);
	if (ret < 0)
		return ret;
	*fatbin = w.data;
	*size = (size_t)total;
	return 0;
}

/*
 * Fill one entry from the header at c + pos, where `left` bytes of the
 * container remain; *step is where the next entry starts, relative to pos.
 */
static int fb_entry(const uint8_t *c, uint64_t pos, uint64_t left,
                    struct tr_fatbin_entry *e, uint64_t *step)
{
	const uint8_t *h = c + pos;
	uint32_t hsize;
	uint64_t size, flags;
	bool lz, zs;

	if (left < FB_ENTRY_MIN)
		return -EPROTO;
	hsize = rd32(h + FE_HDR_SIZE);
	size = rd64(h + FE_SIZE);
	if (hsize < FB_ENTRY_MIN || hsize > left || size > left - hsize)
		return -EPROTO;
	*step = hsize + size;

	flags = rd64(h + FE_FLAGS);
	lz = flags & TR_FATBIN_FLAG_LZ;
	zs = flags & TR_FATBIN_FLAG_ZSTD;

	e->kind = rd16(h + FE_KIND);
	e->arch = rd32(h + FE_ARCH);
	e->major = rd16(h + FE_MAJOR);
	e->minor = rd16(h + FE_MINOR);
	e->flags = flags;
	e->header_size = hsize;
	e->offset = pos;
	e->payload = h + hsize;

	if (lz && zs)
		return -EPROTO;
	if (!lz && !zs) {
		e->flags_compression = TR_FATBIN_COMP_NONE;
		e->payload_size = size;
		e->uncompressed_size = size;
		return 0;
	}

	/*
	 * Compressed: the stream is compressed_size bytes, the rest of
	 * `size` is padding.  The uncompressed size is what the decoders are
	 * bounded by, so it must be there and sane before anyone mallocs it.
	 */
	e->flags_compression = lz ? TR_FATBIN_COMP_LZ : TR_FATBIN_COMP_ZSTD;
	e->payload_size = rd32(h + FE_COMP_SIZE);
	e->uncompressed_size = rd64(h + FE_UNCOMP_SIZE);
	if (e->payload_size > size || e->uncompressed_size == 0 ||
	    e->uncompressed_size > TR_FATBIN_MAX_UNCOMPRESSED)
		return -EPROTO;
	return 0;
}

int tr_fatbin_parse(const void *data, size_t size, struct tr_fatbin *fb)
{
	const uint8_t *c = data;
	uint64_t total, pos;
	int ret;

	if (fb == NULL)
		return -EINVAL;
	memset(fb, 0, sizeof(*fb));
	if (data == NULL)
		return -EINVAL;
	if (size < FB_HDR_SIZE)
		return -EPROTO;
	ret = fb_header(c, &total);
	if (ret < 0)
		return ret;
	if (total > size)
		return -EPROTO;

	fb->data = c;
	fb->size = (size_t)total;
	fb->version = rd16(c + 4);
	for (pos = rd16(c + 6); pos < total;) {
		uint64_t step;

		if (fb->count == TR_FATBIN_MAX_ENTRIES) {
			ret = -E2BIG;
			goto out_fail;
		}
		ret = fb_entry(c, pos, total - pos, &fb->entries[fb->count],
		               &step);
		if (ret < 0)
			goto out_fail;
		fb->count++;
		/* fb_entry() checked step <= total - pos. */
		pos += step;
	}
	return 0;

out_fail:
	memset(fb, 0, sizeof(*fb));
	return ret;
}

int tr_fatbin_entry_data(const struct tr_fatbin_entry *e, uint8_t **out,
                         size_t *out_len)
{
	uint8_t *buf;
	size_t n;
	int ret = 0;

	if (out == NULL || out_len == NULL)
		return -EINVAL;
	*out = NULL;
	*out_len = 0;
	if (e == NULL || (e->payload == NULL && e->payload_size))
		return -EINVAL;
	if (e->uncompressed_size > TR_FATBIN_MAX_UNCOMPRESSED)
		return -EPROTO;

	n = (size_t)e->uncompressed_size;
	/* One more byte for the NUL that lets PTX be used as a string. */
	buf = malloc(n + 1);
	if (buf == NULL)
		return -ENOMEM;

	switch (e->flags_compression) {
	case TR_FATBIN_COMP_NONE:
		if (e->payload_size != e->uncompressed_size) {
			ret = -EPROTO;
			goto out_free;
		}
		if (n)
			memcpy(buf, e->payload, n);
		break;
	case TR_FATBIN_COMP_LZ:
		ret = tr_lzfb_decompress(e->payload, (size_t)e->payload_size,
		                         buf, n);
		if (ret < 0)
			goto out_free;
		break;
	case TR_FATBIN_COMP_ZSTD: {
		/*
		 * Single-shot decompression writes straight into buf and
		 * fails rather than write past n, so a frame lying about
		 * its content size cannot overrun; a short result is
		 * caught by the size check.
		 */
		size_t r = ZSTD_decompress(buf, n, e->payload,
		                           (size_t)e->payload_size);

		if (ZSTD_isError(r) || r != n) {
			ret = -EPROTO;
			goto out_free;
		}
		break;
	}
	default:
		ret = -ENOTSUP;
		goto out_free;
	}

	buf[n] = 0;
	*out = buf;
	*out_len = n;
	return 0;

out_free:
	free(buf);
	return ret;
}

int tr_fatbin_best_ptx(const struct tr_fatbin *fb, uint32_t max_arch,
                       uint8_t **ptx, size_t *len)
{
	const struct tr_fatbin_entry *best = NULL;
	uint8_t *buf;
	size_t n;
	int ret;

	if (ptx == NULL || len == NULL)
		return -EINVAL;
	*ptx = NULL;
	*len = 0;
	if (fb == NULL || fb->count > TR_FATBIN_MAX_ENTRIES)
		return -EINVAL;

	for (uint32_t i = 0; i < fb->count; i++) {
		const struct tr_fatbin_entry *e = &fb->entries[i];

		if (e->kind != TR_FATBIN_KIND_PTX || e->arch > max_arch)
			continue;
		if (best == NULL || e->arch > best->arch)
			best = e;
	}
	if (best == NULL)
		return -ENOENT;

	ret = tr_fatbin_entry_data(best, &buf, &n);
	if (ret < 0)
		return ret;
	/* The text ends at its NUL; padding NULs follow in raw entries. */
	*ptx = buf;
	*len = strnlen((const char *)buf, n);
	return 0;
}

const char *tr_fatbin_ptx_hint(void)
{
	return "this program's fatbin holds GPU machine code (SASS) only and "
	       "no PTX that a newer GPU could compile; rebuild it with PTX "
	       "embedded, e.g. nvcc -gencode arch=compute_XX,code=compute_XX "
	       "(XX = the oldest compute capability you target, such as 75)";
}

void tr_fatbin_hash(const void *data, size_t size, uint8_t out[16])
{
	XXH128_hash_t h = XXH3_128bits(data, size);
	XXH128_canonical_t c;

	XXH128_canonicalFromHash(&c, h);
	memcpy(out, c.digest, 16);
}

/* ---- kernel parameters from the ELF ---- */

/* .nv.info attribute formats and the attributes we read. */
#define EIFMT_NVAL 1
#define EIFMT_BVAL 2
#define EIFMT_HVAL 3
#define EIFMT_SVAL 4
#define EIATTR_PARAM_CBANK 0x0a
#define EIATTR_KPARAM_INFO 0x17
#define EIATTR_CBANK_PARAM_SIZE 0x19
#define EIATTR_KPARAM_INFO_V2 0x45

#define NVINFO_PREFIX ".nv.info."

struct elf_sec {
	uint64_t off, size, entsize;
	uint32_t name, type, link;
};

#define SHT_NOBITS_ 8

/* Section `i`'s header, checked to lie inside the file, as is its data. */
static int elf_section(const uint8_t *elf, size_t len, uint64_t shoff,
                       uint16_t shentsize, uint16_t i, struct elf_sec *s)
{
	const uint8_t *h = elf + shoff + (uint64_t)i * shentsize;

	s->name = rd32(h);
	s->type = rd32(h + 4);
	s->off = rd64(h + 24);
	s->size = rd64(h + 32);
	s->link = rd32(h + 40);
	s->entsize = rd64(h + 56);
	if (s->type == SHT_NOBITS_)
		s->size = 0;
	if (s->off > len || s->size > len - s->off)
		return -EPROTO;
	return 0;
}

/*
 * Where the section headers are: ELF64 (class 2), little-endian (data 1),
 * as all cubins nvcc makes are, with the whole table inside the file.
 */
static int elf_headers(const uint8_t *elf, size_t len, uint64_t *shoff,
                       uint16_t *shentsize, uint16_t *shnum,
                       uint16_t *shstrndx)
{
	if (len < 64 || memcmp(elf, "\x7f" "ELF", 4) != 0 || elf[4] != 2 ||
	    elf[5] != 1)
		return -EPROTO;
	*shoff = rd64(elf + 0x28);
	*shentsize = rd16(elf + 0x3a);
	*shnum = rd16(elf + 0x3c);
	*shstrndx = rd16(elf + 0x3e);
	if (*shentsize < 64 || *shstrndx >= *shnum || *shoff > len ||
	    (uint64_t)*shnum * *shentsize > len - *shoff)
		return -EPROTO;
	return 0;
}

/* Does section name at strtab[name] read ".nv.info.<kernel>"? */
static bool elf_name_is(const uint8_t *strtab, uint64_t strsize,
                        uint32_t name, const char *kernel, size_t klen)
{
	const size_t plen = sizeof(NVINFO_PREFIX) - 1;
	const uint8_t *s;
	uint64_t left;

	if (name >= strsize)
		return false;
	s = strtab + name;
	left = strsize - name;
	/* The name plus its NUL must be inside the string table. */
	if (left < plen + klen + 1)
		return false;
	return memcmp(s, NVINFO_PREFIX, plen) == 0 &&
	       memcmp(s + plen, kernel, klen) == 0 && s[plen + klen] == 0;
}

/* Decode the attribute records of one .nv.info.<kernel> section. */
static int nvinfo_params(const uint8_t *p, uint64_t size,
                         struct tr_kparams *out)
{
	/* Which ordinals we have seen: each must appear exactly once. */
	uint8_t seen[TR_KPARAMS_MAX] = { 0 };
	uint32_t nparams = 0, total = 0, end = 0;
	bool have_total = false;
	uint64_t pos = 0;

	/*
	 * Records are {u8 format, u8 attribute, u16 value-or-length}: the
	 * fixed formats are 4 bytes with the value in the last two, SVAL is
	 * followed by `length` bytes.  Fewer than 4 bytes at the end can
	 * only be padding.
	 */
	while (size - pos >= 4) {
		const uint8_t *r = p + pos;
		uint8_t fmt = r[0], attr = r[1];
		uint16_t v = rd16(r + 2);
		const uint8_t *val = r + 4;
		uint32_t ord, off, psize;

		switch (fmt) {
		case EIFMT_NVAL:
		case EIFMT_BVAL:
			pos += 4;
			continue;
		case EIFMT_HVAL:
			pos += 4;
			if (attr == EIATTR_CBANK_PARAM_SIZE && !have_total) {
				total = v;
				have_total = true;
			}
			continue;
		case EIFMT_SVAL:
			if (v > size - pos - 4)
				return -EPROTO;
			pos += 4 + (uint64_t)v;
			break;
		default:
			return -EPROTO;
		}

		if (attr == EIATTR_PARAM_CBANK && v >= 8) {
			/* u32 symbol, u16 offset in bank 0, u16 size. */
			total = rd16(val + 6);
			have_total = true;
			continue;
		}
		if ((attr != EIATTR_KPARAM_INFO &&
		     attr != EIATTR_KPARAM_INFO_V2) || v < 12)
			continue;

		/*
		 * u32 index, u16 ordinal, u16 offset, then the size: in V1 the
		 * top 14 bits of a u32 (below: log-alignment, space, cbank
		 * bits); in V2, which nvcc uses for params of 16 KiB or more,
		 * a u16 of its own.
		 */
		ord = rd16(val + 4);
		off = rd16(val + 6);
		psize = attr == EIATTR_KPARAM_INFO ? rd32(val + 8) >> 18
		                                   : rd16(val + 8);
		if (ord >= TR_KPARAMS_MAX)
			return -E2BIG;
		if (seen[ord])
			return -EPROTO;
		seen[ord] = 1;
		out->p[ord].offset = off;
		out->p[ord].size = psize;
		if (ord + 1 > nparams)
			nparams = ord + 1;
		if (off + psize > end)
			end = off + psize;
	}

	for (uint32_t i = 0; i < nparams; i++)
		if (!seen[i])
			return -EPROTO;
	if (!have_total)
		total = end;
	if (end > total)
		return -EPROTO;
	out->count = nparams;
	out->total_size = total;
	return 0;
}

int tr_kparams_from_elf(const uint8_t *elf, size_t len,
                        const char *mangled_name, struct tr_kparams *out)
{
	uint64_t shoff;
	uint16_t shentsize, shnum, shstrndx;
	struct elf_sec str;
	size_t klen;
	int ret;

	if (out == NULL)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (elf == NULL || mangled_name == NULL)
		return -EINVAL;

	ret = elf_headers(elf, len, &shoff, &shentsize, &shnum, &shstrndx);
	if (ret < 0)
		return ret;
	ret = elf_section(elf, len, shoff, shentsize, shstrndx, &str);
	if (ret < 0)
		return ret;

	klen = strlen(mangled_name);
	for (uint16_t i = 0; i < shnum; i++) {
		struct elf_sec s;

		ret = elf_section(elf, len, shoff, shentsize, i, &s);
		if (ret < 0)
			return ret;
		if (!elf_name_is(elf + str.off, str.size, s.name,
		                 mangled_name, klen))
			continue;
		ret = nvinfo_params(elf + s.off, s.size, out);
		if (ret < 0)
			memset(out, 0, sizeof(*out));
		return ret;
	}
	return -ENOENT;
}

/* ---- kernel parameters from the PTX ---- */

/*
 * A token of PTX text: a directive or identifier (a run up to white space
 * or punctuation), or one punctuation character.  Comments are skipped.
 * This is just enough lexing to read .entry declarations and not be fooled
 * by ".entry" inside a comment.
 */
struct ptx_lex {
	const char *p, *end;
};

struct ptx_tok {
	const char *s;
	size_t n;
};

static bool ptx_punct(char c)
{
	return c == '(' || c == ')' || c == ',' || c == '[' || c == ']' ||
	       c == '{' || c == '}' || c == ';';
}

static bool ptx_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
	       c == '\v';
}

/* The next token; n == 0 at the end of the text. */
static struct ptx_tok ptx_next(struct ptx_lex *lx)
{
	struct ptx_tok t = { NULL, 0 };
	const char *p = lx->p, *end = lx->end;

	for (;;) {
		while (p < end && ptx_space(*p))
			p++;
		if (end - p >= 2 && p[0] == '/' && p[1] == '/') {
			while (p < end && *p != '\n')
				p++;
			continue;
		}
		if (end - p >= 2 && p[0] == '/' && p[1] == '*') {
			p += 2;
			while (end - p >= 2 && !(p[0] == '*' && p[1] == '/'))
				p++;
			p = end - p >= 2 ? p + 2 : end;
			continue;
		}
		break;
	}
	if (p == end) {
		lx->p = p;
		return t;
	}
	t.s = p;
	if (ptx_punct(*p)) {
		p++;
	} else {
		while (p < end && !ptx_space(*p) && !ptx_punct(*p) &&
		       !(end - p >= 2 && p[0] == '/' &&
		         (p[1] == '/' || p[1] == '*')))
			p++;
	}
	t.n = (size_t)(p - t.s);
	lx->p = p;
	return t;
}

static bool tok_is(struct ptx_tok t, const char *s)
{
	size_t n = strlen(s);

	return t.n == n && memcmp(t.s, s, n) == 0;
}

/* A decimal count (array length, alignment), at most 2^24. */
static int tok_num(struct ptx_tok t, uint32_t *v)
{
	uint32_t x = 0;

	if (t.n == 0 || t.n > 8)
		return -EPROTO;
	for (size_t i = 0; i < t.n; i++) {
		if (t.s[i] < '0' || t.s[i] > '9')
			return -EPROTO;
		x = x * 10 + (uint32_t)(t.s[i] - '0');
	}
	if (x > (1u << 24))
		return -EPROTO;
	*v = x;
	return 0;
}

/* Bytes of a PTX scalar type directive, 0 if it is not one. */
static uint32_t ptx_type_size(struct ptx_tok t)
{
	static const struct {
		const char *name;
		uint32_t size;
	} types[] = {
		{ ".b8", 1 },     { ".u8", 1 },      { ".s8", 1 },
		{ ".b16", 2 },    { ".u16", 2 },     { ".s16", 2 },
		{ ".f16", 2 },    { ".bf16", 2 },    { ".b32", 4 },
		{ ".u32", 4 },    { ".s32", 4 },     { ".f32", 4 },
		{ ".f16x2", 4 },  { ".bf16x2", 4 },  { ".b64", 8 },
		{ ".u64", 8 },    { ".s64", 8 },     { ".f64", 8 },
		{ ".b128", 16 },
	};

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (tok_is(t, types[i].name))
			return types[i].size;
	return 0;
}

/* Parameter space limit we accept (CUDA's is 32764): keeps sums small. */
#define PTX_MAX_PARAM_BYTES (1u << 24)

/*
 * One `.param ...` declaration, the ".param" already consumed.  Places the
 * parameter at *cur rounded up to its alignment; sets *last when the list
 * ends with it.
 *
 * The grammar: `.param [.align N] .type [.ptr [.space] [.align M]] name
 * [\[count\]]`.  An .align before the type is the parameter's; one after
 * .ptr is the pointee's and does not change the layout.
 */
static int ptx_param(struct ptx_lex *lx, uint32_t *cur, uint32_t *offset,
                     uint32_t *size, bool *last)
{
	uint32_t align = 0, tsize = 0, vec = 1, count = 1;
	bool have_name = false;
	uint64_t sz, off;

	for (;;) {
		struct ptx_tok t = ptx_next(lx);
		uint32_t n;

		if (t.n == 0)
			return -EPROTO;
		if (tok_is(t, ",") || tok_is(t, ")")) {
			*last = tok_is(t, ")");
			break;
		}
		if (tok_is(t, ".align")) {
			if (tok_num(ptx_next(lx), &n) < 0)
				return -EPROTO;
			if (tsize == 0)
				align = n;
		} else if (tok_is(t, ".v2") || tok_is(t, ".v4") ||
		           tok_is(t, ".v8")) {
			vec = (uint32_t)(t.s[2] - '0');
		} else if (tok_is(t, ".ptr") || tok_is(t, ".global") ||
		           tok_is(t, ".const") || tok_is(t, ".local") ||
		           tok_is(t, ".shared")) {
			/* Pointer annotations: no effect on the layout. */
		} else if (tok_is(t, "[")) {
			if (!have_name || tok_num(ptx_next(lx), &count) < 0 ||
			    !tok_is(ptx_next(lx), "]"))
				return -EPROTO;
		} else if ((n = ptx_type_size(t)) != 0) {
			if (tsize)
				return -EPROTO;
			tsize = n;
		} else if (t.s[0] == '.' || ptx_punct(t.s[0]) || have_name) {
			/* A directive we do not know may change the layout. */
			return -EPROTO;
		} else {
			have_name = true;
		}
	}

	if (tsize == 0 || !have_name || count == 0)
		return -EPROTO;
	if (align == 0)
		align = tsize * vec;
	if (align & (align - 1))
		return -EPROTO;
	sz = (uint64_t)tsize * vec * count;
	off = ((uint64_t)*cur + align - 1) & ~((uint64_t)align - 1);
	if (off + sz > PTX_MAX_PARAM_BYTES)
		return -EPROTO;
	*offset = (uint32_t)off;
	*size = (uint32_t)sz;
	*cur = (uint32_t)(off + sz);
	return 0;
}

int tr_kparams_from_ptx(const char *ptx, size_t len, const char *mangled_name,
                        struct tr_kparams *out)
{
	struct ptx_lex lx;
	struct ptx_tok t;
	uint32_t cur = 0;
	bool last = false;

	if (out == NULL)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (ptx == NULL || mangled_name == NULL)
		return -EINVAL;

	lx.p = ptx;
	lx.end = ptx + strnlen(ptx, len);
	for (;;) {
		t = ptx_next(&lx);
		if (t.n == 0)
			return -ENOENT;
		if (tok_is(t, ".entry") && tok_is(ptx_next(&lx), mangled_name))
			break;
	}

	/*
	 * `.entry name()` and `.entry name {` (no list at all) take nothing;
	 * the text ending right after the name is a truncation.
	 */
	t = ptx_next(&lx);
	if (t.n == 0)
		return -EPROTO;
	if (!tok_is(t, "("))
		return 0;
	t = ptx_next(&lx);
	if (tok_is(t, ")"))
		return 0;

	while (!last) {
		uint32_t i = out->count;
		int ret;

		if (!tok_is(t, ".param"))
			goto out_proto;
		if (i == TR_KPARAMS_MAX) {
			memset(out, 0, sizeof(*out));
			return -E2BIG;
		}
		ret = ptx_param(&lx, &cur, &out->p[i].offset, &out->p[i].size,
		                &last);
		if (ret < 0)
			goto out_proto;
		out->count++;
		if (!last)
			t = ptx_next(&lx);
	}
	out->total_size = cur;
	return 0;

out_proto:
	memset(out, 0, sizeof(*out));
	return -EPROTO;
}

/* ---- kernel parameters from a whole fatbin ---- */

/*
 * Try every entry of `kind`, highest arch first among PTX (the newest PTX
 * is the one a GPU would JIT).  *err collects the most telling failure:
 * -ENOENT unless some entry declared the kernel but could not be read.
 */
static int kparams_try(const struct tr_fatbin *fb, uint16_t kind,
                       const char *name, struct tr_kparams *out, int *err)
{
	bool done[TR_FATBIN_MAX_ENTRIES] = { false };

	for (;;) {
		const struct tr_fatbin_entry *e = NULL;
		uint32_t pick = 0;
		uint8_t *buf;
		size_t n;
		int ret;

		for (uint32_t i = 0; i < fb->count; i++) {
			const struct tr_fatbin_entry *c = &fb->entries[i];

			if (c->kind != kind || done[i])
				continue;
			if (e == NULL || c->arch > e->arch) {
				e = c;
				pick = i;
			}
		}
		if (e == NULL)
			return -ENOENT;
		done[pick] = true;

		ret = tr_fatbin_entry_data(e, &buf, &n);
		if (ret == -ENOMEM)
			return ret;
		if (ret < 0) {
			*err = ret;
			continue;
		}
		if (kind == TR_FATBIN_KIND_ELF)
			ret = tr_kparams_from_elf(buf, n, name, out);
		else
			ret = tr_kparams_from_ptx((const char *)buf, n, name,
			                          out);
		free(buf);
		if (ret == 0 || ret == -E2BIG)
			return ret;
		if (ret != -ENOENT)
			*err = ret;
	}
}

int tr_kparams_find(const struct tr_fatbin *fb, const char *mangled_name,
                    struct tr_kparams *out)
{
	int err = -ENOENT;
	int ret;

	if (out == NULL)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (fb == NULL || mangled_name == NULL ||
	    fb->count > TR_FATBIN_MAX_ENTRIES)
		return -EINVAL;

	ret = kparams_try(fb, TR_FATBIN_KIND_ELF, mangled_name, out, &err);
	if (ret != -ENOENT)
		return ret;
	ret = kparams_try(fb, TR_FATBIN_KIND_PTX, mangled_name, out, &err);
	if (ret != -ENOENT)
		return ret;
	memset(out, 0, sizeof(*out));
	return err;
}

/* ---- device printf ---- */

#define SHT_SYMTAB_ 2
#define ELF_SYM_SIZE 24 /* Elf64_Sym */

int tr_elf_calls_printf(const uint8_t *elf, size_t len)
{
	static const char name[] = "vprintf";
	uint64_t shoff;
	uint16_t shentsize, shnum, shstrndx;
	int ret;

	if (elf == NULL)
		return -EINVAL;
	ret = elf_headers(elf, len, &shoff, &shentsize, &shnum, &shstrndx);
	if (ret < 0)
		return ret;
	for (uint16_t i = 0; i < shnum; i++) {
		struct elf_sec sym, str;

		ret = elf_section(elf, len, shoff, shentsize, i, &sym);
		if (ret < 0)
			return ret;
		if (sym.type != SHT_SYMTAB_)
			continue;
		/* A bounded stride, so that the walk below cannot wrap. */
		if (sym.entsize < ELF_SYM_SIZE || sym.entsize > 4096 ||
		    sym.link >= shnum)
			return -EPROTO;
		ret = elf_section(elf, len, shoff, shentsize,
		                  (uint16_t)sym.link, &str);
		if (ret < 0)
			return ret;
		for (uint64_t o = 0; o < sym.size &&
		                     sym.size - o >= ELF_SYM_SIZE;
		     o += sym.entsize) {
			const uint8_t *y = elf + sym.off + o;
			uint32_t nm = rd32(y);

			/* st_shndx 0: defined elsewhere, the driver's. */
			if (rd16(y + 6) != 0 || nm >= str.size ||
			    str.size - nm < sizeof(name))
				continue;
			if (memcmp(elf + str.off + nm, name, sizeof(name)) == 0)
				return 1;
		}
	}
	return 0;
}

int tr_ptx_calls_printf(const char *ptx, size_t len)
{
	struct ptx_lex lx;
	const char *nul;

	if (ptx == NULL)
		return -EINVAL;
	nul = memchr(ptx, 0, len);
	lx.p = ptx;
	lx.end = nul ? nul : ptx + len;
	for (;;) {
		struct ptx_tok t = ptx_next(&lx);

		if (t.n == 0)
			return 0;
		if (tok_is(t, "vprintf"))
			return 1;
	}
}

int tr_fatbin_may_print(const struct tr_fatbin *fb)
{
	uint64_t total = 0;

	if (fb == NULL || fb->count > TR_FATBIN_MAX_ENTRIES)
		return -EINVAL;
	for (uint32_t i = 0; i < fb->count; i++) {
		total += fb->entries[i].uncompressed_size;
		if (total > TR_FATBIN_PRINT_SCAN_MAX)
			return 1;
	}
	for (uint32_t i = 0; i < fb->count; i++) {
		const struct tr_fatbin_entry *e = &fb->entries[i];
		uint8_t *buf;
		size_t n;
		int ret;

		if (e->kind != TR_FATBIN_KIND_ELF &&
		    e->kind != TR_FATBIN_KIND_PTX)
			return 1; /* nothing we can read: it might */
		ret = tr_fatbin_entry_data(e, &buf, &n);
		if (ret < 0)
			return ret == -ENOMEM ? ret : 1;
		if (e->kind == TR_FATBIN_KIND_ELF)
			ret = tr_elf_calls_printf(buf, n);
		else
			ret = tr_ptx_calls_printf((const char *)buf, n);
		free(buf);
		if (ret != 0)
			return 1; /* calls it, or cannot be read */
	}
	return 0;
}
