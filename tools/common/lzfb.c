/*
 * lzfb.c: the LZ4-block-like decompressor of CUDA fatbins (see lzfb.h for
 * the format).  Every read is preceded by a check of the bytes left, and
 * every length is checked against the room left in the output before it
 * is used, so that neither a truncated nor a hostile stream can take us
 * outside either buffer; the fuzzer in tests/fuzz/ holds us to that.
 */
#include <errno.h>
#include <string.h>

#include "lzfb.h"

/*
 * Read an LZ4-style length extension: bytes are added to *len until one is
 * not 255.  The sum is capped at `limit` as it grows: a length past the
 * room left in the output is an error anyway, and capping keeps the sum
 * far from overflowing size_t on a long run of 255s.
 */
static int lzfb_read_ext(const uint8_t *in, size_t in_len, size_t *ip,
                         size_t *len, size_t limit)
{
	uint8_t b;

	do {
		if (*ip >= in_len)
			return -EPROTO;
		b = in[(*ip)++];
		*len += b;
		if (*len > limit)
			return -EPROTO;
	} while (b == 255);
	return 0;
}

int tr_lzfb_decompress(const uint8_t *in, size_t in_len, uint8_t *out,
                       size_t out_len)
{
	size_t ip = 0, op = 0;

	if ((in == NULL && in_len) || (out == NULL && out_len))
		return -EINVAL;

	while (ip < in_len) {
		uint8_t token = in[ip++];
		size_t lit = token >> 4;
		size_t match = (size_t)(token & 15);
		size_t off;

		if (lit == 15 &&
		    lzfb_read_ext(in, in_len, &ip, &lit, out_len - op) < 0)
			return -EPROTO;
		if (lit > in_len - ip || lit > out_len - op)
			return -EPROTO;
		if (lit) {
			memcpy(out + op, in + ip, lit);
			ip += lit;
			op += lit;
		}

		/* The last sequence is literals only: the input ends here. */
		if (ip == in_len)
			break;

		/*
		 * Output complete and only zero padding left: the payload was
		 * padded after the stream.  A real sequence here could only
		 * write past out_len, so nothing is lost by stopping.
		 */
		if (op == out_len) {
			while (ip < in_len && in[ip] == 0)
				ip++;
			if (ip == in_len)
				break;
			return -EPROTO;
		}

		if (in_len - ip < 2)
			return -EPROTO;
		off = (size_t)in[ip] | (size_t)in[ip + 1] << 8;
		ip += 2;
		if (off == 0 || off > op)
			return -EPROTO;

		if (match == 15 &&
		    lzfb_read_ext(in, in_len, &ip, &match, out_len - op) < 0)
			return -EPROTO;
		match += 4;
		if (match > out_len - op)
			return -EPROTO;

		/*
		 * Byte by byte on purpose: when off < match the copy reads
		 * bytes it has just written (a run), which memcpy/memmove
		 * would not reproduce.
		 */
		for (size_t i = 0; i < match; i++, op++)
			out[op] = out[op - off];
	}

	return op == out_len ? 0 : -EPROTO;
}
