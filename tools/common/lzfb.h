/*
 * lzfb: the LZ-like block decompressor of CUDA fatbins.
 *
 * Fatbin entries whose header flags carry 0x2000 are compressed with this
 * scheme: what nvcc 11 and 12 wrote by default, and what nvcc 13 still
 * writes with `-compress-mode=speed`.  It is the LZ4 block format without
 * any frame around it.  The compressed stream is a run of sequences:
 *
 *   token           1 byte: high nibble = literal length L,
 *                           low nibble  = match length M - 4
 *   [L extension]   if L == 15: add bytes to L until one is not 255
 *   literals        L bytes copied to the output as they are
 *   offset          2 bytes little-endian: distance D back into the output
 *                   (1 <= D <= bytes produced so far)
 *   [M extension]   if the low nibble == 15: add bytes until one is not 255
 *   match           M bytes copied from output[pos - D], byte by byte, so a
 *                   match may overlap what it produces (D < M repeats)
 *
 * The last sequence stops after its literals: the input ends there.  The
 * entry header gives the compressed size and the decompressed size, and
 * nothing inside the stream does, so this decoder is told both and holds
 * the stream to them.
 *
 * No I/O, no allocation, no global state: safe from any thread.
 */
#ifndef TR_LZFB_H
#define TR_LZFB_H

#include <stddef.h>
#include <stdint.h>

/*
 * tr_lzfb_decompress - decode `in_len` bytes at `in` into exactly
 * `out_len` bytes at `out`.
 *
 * Reads only [in, in + in_len) and writes only [out, out + out_len).
 * The output must come out at exactly out_len bytes: a stream that would
 * write more, ends early (truncated token, literals, offset or length
 * extension), refers back before the start of the output, or stops short
 * of out_len is rejected.  Zero bytes after the last sequence once the
 * output is complete are tolerated (fatbin payloads are padded to 8).
 *
 * Returns 0, -EINVAL (NULL pointer with a non-zero length) or -EPROTO
 * (malformed stream; `out` then holds garbage the caller must not use).
 */
int tr_lzfb_decompress(const uint8_t *in, size_t in_len, uint8_t *out,
                       size_t out_len);

#endif /* TR_LZFB_H */
