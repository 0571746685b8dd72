/*
 * test_ptx_exec_golden.h: inputs of the golden kernels
 * (test_ptx_exec_golden.cu), shared by the program that ran them on a
 * real GPU and by the test that runs the same PTX on the executor
 * (test_ptx_exec_nvcc.c).  C and CUDA C++ alike.
 */
#ifndef TEST_PTX_EXEC_GOLDEN_H
#define TEST_PTX_EXEC_GOLDEN_H

#include <stdint.h>

/* In the CUDA build the tables live in constant memory, where the
   kernels read them (ld.const). */
#ifdef __CUDACC__
#define GOLD_TABLE static __constant__ const
#else
#define GOLD_TABLE static const
#endif

/* f32 operands: zeros, ones, ties, subnormals, extremes, NaNs with and
   without payloads, values at the half-precision edges. */
GOLD_TABLE uint32_t gold_f32[] = {
  0x00000000u, 0x80000000u, 0x3f800000u, 0xbf800000u, 0x3fc00000u,
  0xc0200000u, 0x3dcccccdu, 0x40400000u, 0x7f7fffffu, 0xff7fffffu,
  0x00800000u, 0x000116c2u, 0x80001234u, 0x7f800000u, 0xff800000u,
  0x7fc00000u, 0x7fa00001u, 0xffc12345u, 0x4b800001u, 0x501502f9u,
  0xc479c000u, 0x477fe000u, 0x477ff000u, 0x477fefffu, 0x33d6bf95u,
  0x4640e6b7u, 0x3effffffu, 0x00400000u, 0x387fc000u, 0x4f000000u,
  0xcf000001u, 0x5f800000u};
#define GOLD_NF32 (sizeof(gold_f32) / sizeof(gold_f32[0]))

GOLD_TABLE uint64_t gold_f64[] = {
  0x0000000000000000ull, 0x8000000000000000ull, 0x3ff0000000000000ull,
  0xbff8000000000000ull, 0x3fb999999999999aull, 0x7fefffffffffffffull,
  0x0010000000000000ull, 0x0000000000012345ull, 0x7ff0000000000000ull,
  0xfff0000000000000ull, 0x7ff8000000000000ull, 0x7ff0000000000001ull,
  0x36a0000000000001ull, 0x47efffffe0000000ull, 0x47efffffefffffffull,
  0x3ff0000010000000ull, 0x3ff0000010000001ull, 0xc1e0000000200000ull,
  0x43e0000000000000ull, 0x4330000000000001ull, 0x38100000000001a0ull,
  0x40f869f000000000ull, 0xc3f0000000000000ull, 0x3fe0000000000000ull};
#define GOLD_NF64 (sizeof(gold_f64) / sizeof(gold_f64[0]))

/* Integer operands (32 bits; 64-bit ones are built from pairs). */
GOLD_TABLE uint32_t gold_i32[] = {
  0u, 1u, 2u, 3u, 7u, 31u, 32u, 33u, 64u, 0x7fffffffu, 0x80000000u,
  0x80000001u, 0xffffffffu, 0xfffffffeu, 0x12345678u, 0x9abcdef0u,
  0x00ff00ffu, 0xdeadbeefu, 0x0000ffffu, 0xffff0000u, 100u, 0xffffff9cu,
  0x55555555u, 0x01020304u};
#define GOLD_NI32 (sizeof(gold_i32) / sizeof(gold_i32[0]))

/* Outputs per operand pair of each kernel. */
#define GOLD_K_F32 64
#define GOLD_K_F64 32
#define GOLD_K_INT 64
#define GOLD_K_HALF 48
#define GOLD_K_WARP 24
#define GOLD_K_EXT 40

#endif
