/*
 * test_ptx_exec_golden.cu: kernels whose results on a real GPU are the
 * reference for the executor (test_ptx_exec_nvcc.c runs their PTX and
 * compares with test_ptx_exec_golden_ref.h).
 *
 * Each thread takes one pair of operands from the tables in
 * test_ptx_exec_golden.h (a = v[i / n], b = v[i % n], c = v[(7i + 3) % n])
 * and writes the bits of many results: IEEE arithmetic in every rounding
 * mode, conversions, special values, integer and bit instructions, half
 * precision, warp instructions.  Inline asm reaches the instructions CUDA
 * has no intrinsic for.  Built with -fmad=false so that the PTX does not
 * depend on the compiler's contraction choices.
 *
 * With -DGOLDEN_MAIN the file is also a host program that runs the
 * kernels and writes their outputs to stdout as raw little-endian arrays
 * (f32, f64, int, half, warp, ext, in that order):
 *   nvcc -DGOLDEN_MAIN -gencode arch=compute_90,code=compute_90 \
 *        -fmad=false -o golden test_ptx_exec_golden.cu
 *   ./golden | zstd -19 > test_ptx_exec_golden.bin.zst
 * The committed file was made so on an NVIDIA H200 (sm_90), the driver
 * JIT-compiling the same compute_90 PTX the executor runs (the build
 * makes it with nvcc -ptx -arch=sm_90 -fmad=false).
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#include "test_ptx_exec_golden.h"

__device__ __forceinline__ float uf(uint32_t u) { return __uint_as_float(u); }
__device__ __forceinline__ uint32_t fu(float f) { return __float_as_uint(f); }
__device__ __forceinline__ double ud(uint64_t u)
{
  return __longlong_as_double((long long)u);
}
__device__ __forceinline__ uint64_t du(double d)
{
  return (uint64_t)__double_as_longlong(d);
}

extern "C" __global__ void gold_f32_k(uint32_t *out, int n)
{
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n * n)
    return;
  float a = uf(gold_f32[i / n]), b = uf(gold_f32[i % n]);
  float c = uf(gold_f32[(7 * i + 3) % n]);
  uint32_t *o = out + (size_t)i * GOLD_K_F32, r;
  o[0] = fu(__fadd_rn(a, b));
  o[1] = fu(__fsub_rn(a, b));
  o[2] = fu(__fmul_rn(a, b));
  o[3] = fu(__fdiv_rn(a, b));
  o[4] = fu(__fmaf_rn(a, b, c));
  o[5] = fu(__fsqrt_rn(a));
  o[6] = fu(__frcp_rn(a));
  o[7] = fu(__fadd_rz(a, b));
  o[8] = fu(__fadd_ru(a, b));
  o[9] = fu(__fadd_rd(a, b));
  o[10] = fu(__fmul_rz(a, b));
  o[11] = fu(__fmul_ru(a, b));
  o[12] = fu(__fmul_rd(a, b));
  o[13] = fu(__fdiv_rz(a, b));
  o[14] = fu(__fdiv_ru(a, b));
  o[15] = fu(__fdiv_rd(a, b));
  o[16] = fu(__fsqrt_rz(a));
  o[17] = fu(__fsqrt_ru(a));
  o[18] = fu(__fmaf_rz(a, b, c));
  o[19] = fu(__fmaf_rd(a, b, c));
  o[20] = fu(fminf(a, b));
  o[21] = fu(fmaxf(a, b));
  o[22] = fu(fabsf(a));
  o[23] = fu(copysignf(a, b));
  o[24] = fu(-a);
  o[25] = fu(__saturatef(a));
  o[26] = (uint32_t)__float2int_rn(a);
  o[27] = (uint32_t)__float2int_rz(a);
  o[28] = (uint32_t)__float2int_rd(a);
  o[29] = (uint32_t)__float2int_ru(a);
  o[30] = __float2uint_rn(a);
  o[31] = __float2uint_rz(a);
  o[32] = (uint32_t)__float2ll_rn(a);
  o[33] = (uint32_t)((unsigned long long)__float2ll_rz(a) >> 32);
  o[34] = (uint32_t)(__float2ull_rz(a) >> 32);
  o[35] = __half_as_ushort(__float2half_rn(a));
  o[36] = __half_as_ushort(__float2half_rz(a));
  o[37] = __half_as_ushort(__float2half_rd(a));
  o[38] = __half_as_ushort(__float2half_ru(a));
  o[39] = __bfloat16_as_ushort(__float2bfloat16_rn(a));
  o[40] = __bfloat16_as_ushort(__float2bfloat16_rz(a));
  o[41] = (uint32_t)du((double)a);
  o[42] = (uint32_t)(du((double)a) >> 32);
  o[43] = fu(rintf(a));
  o[44] = fu(truncf(a));
  o[45] = fu(floorf(a));
  o[46] = fu(ceilf(a));
  o[47] = (a < b) | (a == b) << 1 | (a != b) << 2 | (a != a) << 3 |
          (a >= b) << 4 | !(a < b) << 5 | !(a >= b) << 6;
  o[48] = fu(__fdividef(a, b));
  o[49] = fu(__expf(a));
  o[50] = fu(__sinf(a));
  o[51] = fu(__log2f(a));
  o[52] = fu(rsqrtf(a));
  o[53] = fu(__half2float(__float2half_rn(a)));
  o[54] = fu(__fsub_rz(a, b));
  asm("mul.rn.ftz.f32 %0, %1, %2;" : "=r"(r) : "r"(fu(a)), "r"(fu(b)));
  o[55] = r;
  asm("add.rz.ftz.sat.f32 %0, %1, %2;" : "=r"(r) : "r"(fu(a)), "r"(fu(b)));
  o[56] = r;
  asm("min.NaN.f32 %0, %1, %2;" : "=r"(r) : "r"(fu(a)), "r"(fu(b)));
  o[57] = r;
  asm("{ .reg .pred p; testp.subnormal.f32 p, %1; selp.u32 %0, 1, 0, p; }"
      : "=r"(r) : "r"(fu(a)));
  o[58] = r;
  o[59] = fu(a);
  atomicAdd((float *)&o[59], b);
  asm("cvt.sat.f32.f32 %0, %1;" : "=r"(r) : "r"(fu(a)));
  o[60] = r;
  asm("cvt.rni.f32.f32 %0, %1;" : "=r"(r) : "r"(fu(a)));
  o[61] = r;
  asm("cvt.rmi.ftz.f32.f32 %0, %1;" : "=r"(r) : "r"(fu(a)));
  o[62] = r;
  asm("div.full.f32 %0, %1, %2;" : "=r"(r) : "r"(fu(a)), "r"(fu(b)));
  o[63] = r;
}

extern "C" __global__ void gold_f64_k(uint64_t *out, int n)
{
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n * n)
    return;
  double a = ud(gold_f64[i / n]), b = ud(gold_f64[i % n]);
  double c = ud(gold_f64[(7 * i + 3) % n]);
  uint64_t *o = out + (size_t)i * GOLD_K_F64;
  long long ab = (long long)gold_f64[i / n];
  o[0] = du(__dadd_rn(a, b));
  o[1] = du(__dsub_rn(a, b));
  o[2] = du(__dmul_rn(a, b));
  o[3] = du(__ddiv_rn(a, b));
  o[4] = du(__fma_rn(a, b, c));
  o[5] = du(__dsqrt_rn(a));
  o[6] = du(__drcp_rn(a));
  o[7] = du(__dadd_rz(a, b));
  o[8] = du(__dadd_ru(a, b));
  o[9] = du(__dmul_rd(a, b));
  o[10] = du(__ddiv_rz(a, b));
  o[11] = du(__dsqrt_ru(a));
  o[12] = du(__fma_rz(a, b, c));
  o[13] = du(fmin(a, b));
  o[14] = du(fmax(a, b));
  o[15] = du(fabs(a));
  o[16] = du(-a);
  o[17] = __float_as_uint(__double2float_rn(a));
  o[18] = __float_as_uint(__double2float_rz(a));
  o[19] = __float_as_uint(__double2float_rd(a));
  o[20] = __float_as_uint(__double2float_ru(a));
  o[21] = (uint64_t)(int64_t)__double2int_rn(a);
  o[22] = (uint64_t)__double2ll_rz(a);
  o[23] = __double2ull_rn(a);
  o[24] = __double2uint_rz(a);
  o[25] = du(rint(a));
  o[26] = du(floor(a));
  o[27] = (a < b) | (a == b) << 1 | (a != b) << 2 | (a != a) << 3 |
          (a >= b) << 4 | !(a < b) << 5 | !(a >= b) << 6;
  o[28] = __half_as_ushort(__double2half(a));
  o[29] = du(__ll2double_rz(ab));
  o[30] = du(__ull2double_ru((unsigned long long)ab));
  o[31] = __float_as_uint(__ll2float_rd(ab));
}

extern "C" __global__ void gold_int_k(uint32_t *out, int n)
{
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n * n)
    return;
  uint32_t a = gold_i32[i / n], b = gold_i32[i % n];
  uint32_t c = gold_i32[(7 * i + 3) % n], r, r2;
  uint64_t A = (uint64_t)a << 32 | b, B = (uint64_t)b << 32 | c, R;
  uint32_t *o = out + (size_t)i * GOLD_K_INT;
  o[0] = (uint32_t)__mulhi((int)a, (int)b);
  o[1] = __umulhi(a, b);
  o[2] = (uint32_t)__mul24((int)a, (int)b);
  o[3] = __umul24(a, b);
  o[4] = a * b;
  o[5] = __sad((int)a, (int)b, c);
  o[6] = __usad(a, b, c);
  asm("div.s32 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
  o[7] = r;
  asm("rem.s32 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
  o[8] = r;
  asm("div.u32 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
  o[9] = r;
  asm("rem.u32 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
  o[10] = r;
  asm("shl.b32 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
  o[11] = r;
  asm("shr.u32 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
  o[12] = r;
  asm("shr.s32 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
  o[13] = r;
  o[14] = __brev(a);
  o[15] = (uint32_t)__clz((int)a);
  o[16] = (uint32_t)__popc(a);
  o[17] = (uint32_t)__ffs((int)a);
  o[18] = __byte_perm(a, b, c);
  asm("prmt.b32.f4e %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
  o[19] = r;
  asm("prmt.b32.b4e %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
  o[20] = r;
  asm("prmt.b32.rc8 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
  o[21] = r;
  asm("prmt.b32.ecl %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
  o[22] = r;
  asm("prmt.b32.ecr %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
  o[23] = r;
  asm("prmt.b32.rc16 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
  o[24] = r;
  o[25] = __funnelshift_l(a, b, c);
  o[26] = __funnelshift_r(a, b, c);
  o[27] = __funnelshift_lc(a, b, c);
  o[28] = __funnelshift_rc(a, b, c);
  asm("bfe.u32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
  o[29] = r;
  asm("bfe.s32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
  o[30] = r;
  asm("bfi.b32 %0, %1, %2, %3, %4;"
      : "=r"(r) : "r"(a), "r"(b), "r"(c & 0xff), "r"((c >> 8) & 0xff));
  o[31] = r;
  asm("bfind.u32 %0, %1;" : "=r"(r) : "r"(a));
  o[32] = r;
  asm("bfind.s32 %0, %1;" : "=r"(r) : "r"(a));
  o[33] = r;
  asm("bfind.shiftamt.u32 %0, %1;" : "=r"(r) : "r"(a));
  o[34] = r;
  o[35] = (uint32_t)__dp4a((int)a, (int)b, (int)c);
  o[36] = __dp4a(a, b, c);
  asm("lop3.b32 %0, %1, %2, %3, 0xE8;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
  o[37] = r;
  asm("lop3.b32 %0, %1, %2, %3, 0x96;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
  o[38] = r;
  asm("{ .reg .u32 t; add.cc.u32 %0, %2, %3; addc.cc.u32 %1, %4, %2;"
      " addc.u32 t, 0, 0; add.u32 %1, %1, t; }"
      : "=r"(r), "=r"(r2) : "r"(a), "r"(b), "r"(c));
  o[39] = r;
  o[40] = r2;
  asm("{ .reg .u32 t; sub.cc.u32 %0, %2, %3; subc.cc.u32 %1, %4, %2;"
      " subc.u32 t, 0, 0; xor.b32 %1, %1, t; }"
      : "=r"(r), "=r"(r2) : "r"(a), "r"(b), "r"(c));
  o[41] = r;
  o[42] = r2;
  asm("{ mad.lo.cc.u32 %0, %2, %3, %4; madc.hi.u32 %1, %2, %3, 0; }"
      : "=r"(r), "=r"(r2) : "r"(a), "r"(b), "r"(c));
  o[43] = r2;
  asm("{ .reg .s8 t; cvt.sat.s8.s32 t, %1; cvt.s32.s8 %0, t; }"
      : "=r"(r) : "r"(a));
  o[44] = r;
  asm("{ .reg .u16 t; cvt.sat.u16.s32 t, %1; cvt.u32.u16 %0, t; }"
      : "=r"(r) : "r"(a));
  o[45] = r;
  asm("cvt.sat.u32.s32 %0, %1;" : "=r"(r) : "r"(a));
  o[46] = r;
  asm("cvt.rz.f32.s32 %0, %1;" : "=r"(r) : "r"(a));
  o[47] = r;
  asm("cvt.rn.f32.u32 %0, %1;" : "=r"(r) : "r"(a));
  o[48] = r;
  asm("cvt.rm.f32.s32 %0, %1;" : "=r"(r) : "r"(a));
  o[49] = r;
  asm("cvt.rp.f32.u32 %0, %1;" : "=r"(r) : "r"(a));
  o[50] = r;
  asm("{ .reg .b16 t; cvt.rn.f16.s32 t, %1; cvt.u32.u16 %0, t; }"
      : "=r"(r) : "r"(a));
  o[51] = r;
  asm("mul.hi.u64 %0, %1, %2;" : "=l"(R) : "l"(A), "l"(B));
  o[52] = (uint32_t)R;
  asm("mul.hi.s64 %0, %1, %2;" : "=l"(R) : "l"(A), "l"(B));
  o[53] = (uint32_t)R;
  o[54] = (uint32_t)(R >> 32);
  asm("div.u64 %0, %1, %2;" : "=l"(R) : "l"(A), "l"(B));
  o[55] = (uint32_t)R;
  asm("rem.s64 %0, %1, %2;" : "=l"(R) : "l"(A), "l"(B));
  o[56] = (uint32_t)R;
  asm("shr.s64 %0, %1, %2;" : "=l"(R) : "l"(A), "r"(c));
  o[57] = (uint32_t)(R >> 32);
  o[58] = (uint32_t)__popcll((long long)A);
  o[59] = (uint32_t)__clzll((long long)A);
  o[60] = (uint32_t)__brevll(A);
  asm("bfind.u64 %0, %1;" : "=r"(r) : "l"(A));
  o[61] = r;
  asm("cvt.rn.f32.s64 %0, %1;" : "=r"(r) : "l"(A));
  o[62] = r;
  asm("cvt.rz.f64.u64 %0, %1;" : "=l"(R) : "l"(B));
  o[63] = (uint32_t)(R >> 32);
}

extern "C" __global__ void gold_half_k(uint32_t *out, int n)
{
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n * n)
    return;
  float af = uf(gold_f32[i / n]), bf = uf(gold_f32[i % n]);
  float cf = uf(gold_f32[(7 * i + 3) % n]);
  __half a = __float2half_rn(af), b = __float2half_rn(bf);
  __half c = __float2half_rn(cf);
  __half2 x = __halves2half2(a, b), y = __halves2half2(b, c);
  uint32_t *o = out + (size_t)i * GOLD_K_HALF;
  o[0] = __half_as_ushort(__hadd(a, b));
  o[1] = __half_as_ushort(__hsub(a, b));
  o[2] = __half_as_ushort(__hmul(a, b));
  o[3] = __half_as_ushort(__hfma(a, b, c));
  o[4] = __half_as_ushort(__hmin(a, b));
  o[5] = __half_as_ushort(__hmax(a, b));
  o[6] = __half_as_ushort(__hmin_nan(a, b));
  o[7] = __half_as_ushort(__hmax_nan(a, b));
  o[8] = __half_as_ushort(__hneg(a));
  o[9] = __half_as_ushort(__habs(a));
  o[10] = __half_as_ushort(__hadd_sat(a, b));
  o[11] = __half_as_ushort(__hfma_relu(a, b, c));
  o[12] = __hlt(a, b) | __heq(a, b) << 1 | __hne(a, b) << 2 |
          __hgeu(a, b) << 3 | __hltu(a, b) << 4 | __hisnan(a) << 5;
  o[13] = fu(__half2float(a));
  o[14] = (uint32_t)__half2int_rn(a);
  o[15] = (uint32_t)__half2int_rz(a);
  o[16] = __half2uint_rd(a);
  o[17] = (uint32_t)(int)__half2short_ru(a);
  o[18] = *(uint32_t *)&(x = __hadd2(x, y), x);
  x = __halves2half2(a, b);
  o[19] = *(uint32_t *)&(x = __hmul2(x, y), x);
  x = __halves2half2(a, b);
  o[20] = *(uint32_t *)&(x = __hfma2(x, y, y), x);
  x = __halves2half2(a, b);
  o[21] = *(uint32_t *)&(x = __hmax2(x, y), x);
  x = __halves2half2(a, b);
  o[22] = *(uint32_t *)&(x = __hlt2(x, y), x);
  x = __halves2half2(a, b);
  o[23] = __hbeq2(x, y);
  {
    __half2 p = __floats2half2_rn(af, bf);
    o[24] = *(uint32_t *)&p;
  }
  o[25] = __half_as_ushort(hexp2(a));
  o[26] = __half_as_ushort(__float2half_rn(af));
  o[27] = __half_as_ushort(__int2half_rn((int)gold_f32[i % n]));
  o[28] = __half_as_ushort(__uint2half_rz(gold_f32[i / n] >> 12));
  o[29] = __half_as_ushort(__short2half_rd((short)gold_f32[i % n]));
  {
    __nv_bfloat16 ba = __float2bfloat16_rn(af), bb = __float2bfloat16_rn(bf);
    __nv_bfloat16 bc = __float2bfloat16_rn(cf);
    __nv_bfloat162 bx = __halves2bfloat162(ba, bb), by = __halves2bfloat162(bb, bc);
    o[30] = __bfloat16_as_ushort(__hadd(ba, bb));
    o[31] = __bfloat16_as_ushort(__hmul(ba, bb));
    o[32] = __bfloat16_as_ushort(__hfma(ba, bb, bc));
    o[33] = __bfloat16_as_ushort(__hmax(ba, bb));
    o[34] = __bfloat16_as_ushort(__hmin_nan(ba, bb));
    o[35] = __hlt(ba, bb) | __heq(ba, bb) << 1 | __hgtu(ba, bb) << 2;
    o[36] = fu(__bfloat162float(ba));
    o[37] = __bfloat16_as_ushort(__float2bfloat16_rn(af));
    {
      __nv_bfloat162 p = __floats2bfloat162_rn(af, bf);
      o[38] = *(uint32_t *)&p;
      p = __hadd2(bx, by);
      o[39] = *(uint32_t *)&p;
      p = __hfma2(bx, by, by);
      o[40] = *(uint32_t *)&p;
    }
  }
  {
    uint32_t r;
    asm("tanh.approx.f32 %0, %1;" : "=r"(r) : "r"(fu(af)));
    o[41] = r;
  }
  o[42] = __half_as_ushort(__hsub_sat(a, b));
  o[43] = __half_as_ushort(__hmul_sat(a, b));
  x = __halves2half2(a, b);
  o[44] = *(uint32_t *)&(x = __hneg2(x), x);
  x = __halves2half2(a, b);
  o[45] = *(uint32_t *)&(x = __habs2(x), x);
  o[46] = 0;
  o[47] = 0;
}

/* Warp instructions in diverged code.  128 threads per block. */
extern "C" __global__ void gold_warp_k(uint32_t *out)
{
  unsigned t = blockIdx.x * blockDim.x + threadIdx.x;
  unsigned lane = threadIdx.x & 31, v = t * 2654435761u, m;
  uint32_t *o = out + (size_t)t * GOLD_K_WARP;
  o[0] = __shfl_sync(0xffffffffu, v, (lane * 5) & 31);
  o[1] = __shfl_up_sync(0xffffffffu, v, 3, 16);
  o[2] = __shfl_down_sync(0xffffffffu, v, 1, 4);
  o[3] = __shfl_xor_sync(0xffffffffu, v, 5, 8);
  o[4] = __ballot_sync(0xffffffffu, v & 1);
  o[5] = __match_any_sync(0xffffffffu, v & 3);
  if (lane & 1) {
    m = __activemask();
    o[6] = m;
    o[7] = __ballot_sync(m, lane > 12);
    o[8] = __shfl_sync(m, v, (lane + 2) & 31);
    o[9] = __reduce_add_sync(m, lane);
    o[10] = __all_sync(m, lane < 30);
  } else {
    m = __activemask();
    o[6] = m;
    o[7] = __ballot_sync(m, lane < 12);
    o[8] = __shfl_xor_sync(m, v, 2);
    o[9] = __reduce_max_sync(m, v);
    o[10] = __any_sync(m, lane == 30);
  }
  o[11] = __activemask();
  {
    unsigned k = 0, acc = 0;
    while (k < lane % 5) {
      acc += __popc(__activemask()) + k;
      k++;
    }
    o[12] = acc;
  }
  o[13] = __reduce_min_sync(0xffffffffu, v);
  o[14] = __reduce_xor_sync(0xffffffffu, v);
  o[15] = __reduce_or_sync(0xffffffffu, lane << 3);
  o[16] = __reduce_and_sync(0xffffffffu, ~lane);
  {
    int pred;
    o[17] = __match_all_sync(0xffffffffu, v & 0, &pred);
    o[18] = pred;
  }
  o[19] = __syncthreads_count(v & 4);
  o[20] = __syncthreads_and(lane < 31);
  o[21] = __syncthreads_or(lane == 31 && blockIdx.x == 1);
  o[22] = __uni_sync(0xffffffffu, lane / 32);
  o[23] = __shfl_sync(0x0000ffffu, v, lane + 1, 16);
}

/* Half-precision pairs and 64-bit bit fields, straight from the integer
   table's bit patterns (so NaNs, infinities and subnormals of f16 and
   bf16 come in), through inline asm. */
#define ASM3(ins, k)                                                         \
  do {                                                                       \
    uint32_t r_;                                                             \
    asm(ins " %0, %1, %2;" : "=r"(r_) : "r"(a), "r"(b));                     \
    o[k] = r_;                                                               \
  } while (0)
#define ASM4(ins, k)                                                         \
  do {                                                                       \
    uint32_t r_;                                                             \
    asm(ins " %0, %1, %2, %3;" : "=r"(r_) : "r"(a), "r"(b), "r"(c));         \
    o[k] = r_;                                                               \
  } while (0)
#define ASM2(ins, k)                                                         \
  do {                                                                       \
    uint32_t r_;                                                             \
    asm(ins " %0, %1;" : "=r"(r_) : "r"(a));                                 \
    o[k] = r_;                                                               \
  } while (0)

extern "C" __global__ void gold_ext_k(uint32_t *out, int n)
{
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n * n)
    return;
  uint32_t a = gold_i32[i / n], b = gold_i32[i % n];
  uint32_t c = gold_i32[(7 * i + 3) % n], r;
  uint64_t A = (uint64_t)a << 32 | b, R;
  uint32_t *o = out + (size_t)i * GOLD_K_EXT;
  ASM3("add.f16x2", 0);
  ASM3("sub.f16x2", 1);
  ASM3("mul.f16x2", 2);
  ASM4("fma.rn.f16x2", 3);
  ASM3("min.f16x2", 4);
  ASM3("max.NaN.f16x2", 5);
  ASM3("add.rn.bf16x2", 6);
  ASM4("fma.rn.bf16x2", 7);
  ASM3("min.bf16x2", 8);
  ASM3("max.NaN.bf16x2", 9);
  ASM2("neg.bf16x2", 10);
  ASM2("abs.f16x2", 11);
  ASM2("ex2.approx.f16x2", 12);
  ASM2("tanh.approx.f16x2", 13);
  asm("{ .reg .pred p, q; setp.lt.f16x2 p|q, %1, %2; selp.u32 %0, 1, 0, p;"
      " @q or.b32 %0, %0, 2; }" : "=r"(r) : "r"(a), "r"(b));
  o[14] = r;
  ASM3("set.gtu.u32.f16x2", 15);
  ASM3("set.lt.f16x2.f16x2", 16);
  ASM3("cvt.rn.relu.f16x2.f32", 17);
  ASM3("cvt.rn.bf16x2.f32", 18);
  asm("{ .reg .b16 h; cvt.u16.u32 h, %1; cvt.f32.f16 %0, h; }"
      : "=r"(r) : "r"(a));
  o[19] = r;
  asm("{ .reg .b16 h; .reg .b64 d; cvt.u16.u32 h, %1; cvt.f64.f16 d, h;"
      " mov.b64 {_, %0}, d; }" : "=r"(r) : "r"(a));
  o[20] = r;
  asm("{ .reg .b16 h; cvt.u16.u32 h, %1; cvt.rni.f16.f16 h, h;"
      " cvt.u32.u16 %0, h; }" : "=r"(r) : "r"(a));
  o[21] = r;
  asm("{ .reg .b16 h; .reg .s16 s; cvt.u16.u32 h, %1; cvt.rzi.s16.f16 s, h;"
      " cvt.s32.s16 %0, s; }" : "=r"(r) : "r"(a));
  o[22] = r;
  ASM3("min.xorsign.abs.f16x2", 23);
  ASM4("fma.rn.sat.f16x2", 24);
  asm("{ .reg .b16 x, y; cvt.u16.u32 x, %1; cvt.u16.u32 y, %2;"
      " mul.ftz.f16 x, x, y; cvt.u32.u16 %0, x; }"
      : "=r"(r) : "r"(a), "r"(b));
  o[25] = r;
  asm("bfe.u64 %0, %1, %2, %3;" : "=l"(R) : "l"(A), "r"(b), "r"(c));
  o[26] = (uint32_t)R;
  asm("bfe.s64 %0, %1, %2, %3;" : "=l"(R) : "l"(A), "r"(b), "r"(c));
  o[27] = (uint32_t)(R >> 32);
  asm("bfi.b64 %0, %1, %2, %3, %4;"
      : "=l"(R) : "l"(A), "l"((uint64_t)c * 0x10001ull), "r"(b & 0xff),
        "r"(c & 0xff));
  o[28] = (uint32_t)(R >> 16);
  asm("bfind.s64 %0, %1;" : "=r"(r) : "l"(A));
  o[29] = r;
  ASM3("mul24.hi.s32", 30);
  ASM4("mad24.hi.sat.s32", 31);
  o[32] = a;
  asm volatile("red.global.add.noftz.f16x2 [%0], %1;" ::"l"(&o[32]), "r"(b));
  o[33] = a;
  asm volatile("red.global.add.noftz.bf16x2 [%0], %1;" ::"l"(&o[33]), "r"(b));
  o[34] = a;
  asm volatile("{ .reg .b16 h, old; cvt.u16.u32 h, %1;"
               " atom.global.add.noftz.f16 old, [%0], h; }"
               ::"l"(&o[34]), "r"(b));
  asm("{ .reg .b16 h; cvt.u16.u32 h, %1; ex2.approx.f16 h, h;"
      " cvt.u32.u16 %0, h; }" : "=r"(r) : "r"(a));
  o[35] = r;
  ASM3("add.sat.f16x2", 36);
  ASM3("mul.rn.bf16x2", 37);
  ASM3("max.xorsign.abs.bf16x2", 38);
  asm("{ .reg .b16 x, y; cvt.u16.u32 x, %1; cvt.u16.u32 y, %2;"
      " max.NaN.bf16 x, x, y; cvt.u32.u16 %0, x; }"
      : "=r"(r) : "r"(a), "r"(b));
  o[39] = r;
}

#ifdef GOLDEN_MAIN
#include <stdio.h>
#include <stdlib.h>

#define CK(x)                                                                \
  do {                                                                       \
    cudaError_t e_ = (x);                                                    \
    if (e_) {                                                                \
      fprintf(stderr, "%s: %s\n", #x, cudaGetErrorString(e_));              \
      exit(1);                                                               \
    }                                                                        \
  } while (0)

int main(void)
{
  int n32 = GOLD_NF32, n64 = GOLD_NF64, ni = GOLD_NI32;
  size_t s1 = (size_t)n32 * n32 * GOLD_K_F32, s2 = (size_t)n64 * n64 * GOLD_K_F64;
  size_t s3 = (size_t)ni * ni * GOLD_K_INT, s4 = (size_t)n32 * n32 * GOLD_K_HALF;
  size_t s5 = 256 * GOLD_K_WARP, s6 = (size_t)ni * ni * GOLD_K_EXT;
  uint32_t *d1, *d3, *d4, *d5, *d6, *h1, *h3, *h4, *h5, *h6;
  uint64_t *d2, *h2;
  cudaDeviceProp prop;

  CK(cudaGetDeviceProperties(&prop, 0));
  CK(cudaMalloc(&d1, s1 * 4));
  CK(cudaMalloc(&d2, s2 * 8));
  CK(cudaMalloc(&d3, s3 * 4));
  CK(cudaMalloc(&d4, s4 * 4));
  CK(cudaMalloc(&d5, s5 * 4));
  CK(cudaMalloc(&d6, s6 * 4));
  gold_f32_k<<<(n32 * n32 + 127) / 128, 128>>>(d1, n32);
  gold_f64_k<<<(n64 * n64 + 127) / 128, 128>>>(d2, n64);
  gold_int_k<<<(ni * ni + 127) / 128, 128>>>(d3, ni);
  gold_half_k<<<(n32 * n32 + 127) / 128, 128>>>(d4, n32);
  gold_warp_k<<<2, 128>>>(d5);
  gold_ext_k<<<(ni * ni + 127) / 128, 128>>>(d6, ni);
  CK(cudaDeviceSynchronize());
  h1 = (uint32_t *)malloc(s1 * 4);
  h2 = (uint64_t *)malloc(s2 * 8);
  h3 = (uint32_t *)malloc(s3 * 4);
  h4 = (uint32_t *)malloc(s4 * 4);
  h5 = (uint32_t *)malloc(s5 * 4);
  h6 = (uint32_t *)malloc(s6 * 4);
  CK(cudaMemcpy(h1, d1, s1 * 4, cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(h2, d2, s2 * 8, cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(h3, d3, s3 * 4, cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(h4, d4, s4 * 4, cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(h5, d5, s5 * 4, cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(h6, d6, s6 * 4, cudaMemcpyDeviceToHost));
  fprintf(stderr, "golden: %s, sm_%d%d\n", prop.name, prop.major,
          prop.minor);
  fwrite(h1, 4, s1, stdout);
  fwrite(h2, 8, s2, stdout);
  fwrite(h3, 4, s3, stdout);
  fwrite(h4, 4, s4, stdout);
  fwrite(h5, 4, s5, stdout);
  fwrite(h6, 4, s6, stdout);
  return 0;
}
#endif
