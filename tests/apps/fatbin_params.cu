/*
 * fatbin_params.cu: kernels whose parameter layouts tests/unit/test_fatbin.c
 * reads back from the fatbin, built by nvcc in several variants (default
 * zstd, -compress-mode=speed and none, PTX only, SASS only, several archs)
 * into shared libraries that the test dlopen()s.  Nothing here runs on a
 * GPU: loading the library only registers the fatbin and the kernels.
 *
 * For each kernel a host struct mirrors its parameter list, and
 * fbp_kernels[] records offsetof/sizeof of every member: what the host
 * compiler, and therefore cudaLaunchKernel's caller, believes the layout
 * is.  The test checks that the ELF-derived and the PTX-derived layouts
 * both agree with it.
 */
#include <cstddef>
#include <cstdint>

#include "fatbin_params.h"

#define FBP_P(S, m) { (uint32_t)offsetof(S, m), (uint32_t)sizeof(((S *)0)->m) }
#define FBP_END(S, m) (uint32_t)(offsetof(S, m) + sizeof(((S *)0)->m))

/* Odd sizes and alignments passed by value. */
struct Odd3 { char c[3]; };                 /* size 3, align 1 */
struct OddA { short a; char b; };           /* size 4, align 2 */
struct __align__(16) A16 { char x; };       /* size 16, align 16 */
struct Pad { char c; double d; char e; };   /* size 24, align 8 */
struct Arr { float v[5]; int n; };          /* array inside: 24, align 4 */
struct ArrD { double d[3]; char tag; };     /* array inside: 32, align 8 */
struct Big { char b[20000]; };              /* > 16 KiB: KPARAM_INFO_V2 */

__global__ void k_none() { }

__global__ void k_ptr(float *p) { p[threadIdx.x] = 1.0f; }

struct mix_args { int a; double b; char c; int *out; };
__global__ void k_mix(int a, double b, char c, int *out)
{
	out[0] = a + (int)b + c;
}

struct odd_args { char a; Odd3 b; short c; A16 d; OddA e; char f; };
__global__ void k_odd(char a, Odd3 b, short c, A16 d, OddA e, char f)
{
	volatile __shared__ int s;
	s = a + b.c[2] + c + d.x + e.a + e.b + f;
}

struct pad_args { Pad s; char after; };
__global__ void k_pad(Pad s, char after)
{
	volatile __shared__ double x;
	x = s.c + s.d + s.e + after;
}

struct arr_args { int n; Arr a; ArrD d; double *out; };
__global__ void k_arr(int n, Arr a, ArrD d, double *out)
{
	out[0] = n + a.v[n % 5] + a.n + d.d[n % 3] + d.tag;
}

struct vec_args { float4 f; char c; double2 d; int3 i; };
__global__ void k_vec(float4 f, char c, double2 d, int3 i)
{
	volatile __shared__ double x;
	x = f.x + f.w + c + d.y + i.z;
}

struct restrict_args { const float *a; float *b; int n; };
__global__ void k_restrict(const float *__restrict__ a, float *__restrict__ b,
                           int n)
{
	if ((int)threadIdx.x < n)
		b[threadIdx.x] = a[threadIdx.x];
}

struct big_args { char c; Big b; double *o; };
__global__ void k_big(char c, Big b, double *o)
{
	o[0] = c + b.b[threadIdx.x];
}

/* 43 parameters of mixed types (the >= 40 case). */
#define MANY_LIST(X)                                                        \
	X(char, 0) X(int, 1) X(double, 2) X(short, 3) X(float *, 4)         \
	X(char, 5) X(float, 6) X(long long, 7) X(char, 8) X(Odd3, 9)        \
	X(short, 10) X(double, 11) X(OddA, 12) X(char, 13) X(int, 14)       \
	X(Pad, 15) X(char, 16) X(A16, 17) X(short, 18) X(char, 19)          \
	X(unsigned, 20) X(double, 21) X(char, 22) X(char, 23) X(int, 24)    \
	X(short, 25) X(float2, 26) X(char, 27) X(double, 28) X(int *, 29)   \
	X(char, 30) X(int, 31) X(short, 32) X(char, 33) X(double, 34)       \
	X(Arr, 35) X(char, 36) X(float, 37) X(char, 38) X(long long, 39)    \
	X(char, 40) X(short, 41)
#define MANY_FIELD(T, n) T a##n;
#define MANY_PARAM(T, n) T a##n,
#define MANY_EXP(T, n) FBP_P(many_args, a##n),
struct many_args { MANY_LIST(MANY_FIELD) int last; };
__global__ void k_many(MANY_LIST(MANY_PARAM) int last)
{
	*a29 = a0 + a1 + (int)a2 + a13 + last;
}

/* 260 parameters: more than TR_KPARAMS_MAX, so -E2BIG. */
#define H10(p) char p##0, char p##1, char p##2, char p##3, char p##4,       \
	char p##5, char p##6, char p##7, char p##8, char p##9
__global__ void k_huge(H10(a), H10(b), H10(c), H10(d), H10(e), H10(f),
                       H10(g), H10(h), H10(i), H10(j), H10(k), H10(l),
                       H10(m), H10(n), H10(o), H10(p), H10(q), H10(r),
                       H10(s), H10(t), H10(u), H10(v), H10(w), H10(x),
                       H10(y), H10(z))
{
}

template <typename T> struct tmpl_args { T v; T *out; };
template <typename T> __global__ void k_tmpl(T v, T *out) { out[0] = v; }
template __global__ void k_tmpl<int>(int, int *);
template __global__ void k_tmpl<double>(double, double *);

struct c_args { int a; short b; };
extern "C" __global__ void k_c(int a, short b)
{
	volatile __shared__ int s;
	s = a + b;
}

typedef tmpl_args<int> tmpl_int_args;
typedef tmpl_args<double> tmpl_dbl_args;

extern "C" __attribute__((visibility("default")))
const struct fbp_kernel fbp_kernels[] = {
	{ (const void *)k_none, "k_none", 0, 0, 0, { } },
	{ (const void *)k_ptr, "k_ptr", 1, 8, 0, { { 0, 8 } } },
	{ (const void *)k_mix, "k_mix", 4, FBP_END(mix_args, out), 0,
	  { FBP_P(mix_args, a), FBP_P(mix_args, b), FBP_P(mix_args, c),
	    FBP_P(mix_args, out) } },
	{ (const void *)k_odd, "k_odd", 6, FBP_END(odd_args, f), 0,
	  { FBP_P(odd_args, a), FBP_P(odd_args, b), FBP_P(odd_args, c),
	    FBP_P(odd_args, d), FBP_P(odd_args, e), FBP_P(odd_args, f) } },
	{ (const void *)k_pad, "k_pad", 2, FBP_END(pad_args, after), 0,
	  { FBP_P(pad_args, s), FBP_P(pad_args, after) } },
	{ (const void *)k_arr, "k_arr", 4, FBP_END(arr_args, out), 0,
	  { FBP_P(arr_args, n), FBP_P(arr_args, a), FBP_P(arr_args, d),
	    FBP_P(arr_args, out) } },
	{ (const void *)k_vec, "k_vec", 4, FBP_END(vec_args, i), 0,
	  { FBP_P(vec_args, f), FBP_P(vec_args, c), FBP_P(vec_args, d),
	    FBP_P(vec_args, i) } },
	{ (const void *)k_restrict, "k_restrict", 3,
	  FBP_END(restrict_args, n), 0,
	  { FBP_P(restrict_args, a), FBP_P(restrict_args, b),
	    FBP_P(restrict_args, n) } },
	{ (const void *)k_big, "k_big", 3, FBP_END(big_args, o), 0,
	  { FBP_P(big_args, c), FBP_P(big_args, b), FBP_P(big_args, o) } },
	{ (const void *)k_many, "k_many", 43, FBP_END(many_args, last), 0,
	  { MANY_LIST(MANY_EXP) FBP_P(many_args, last) } },
	{ (const void *)k_huge, "k_huge", 260, 260, 1, { } },
	{ (const void *)k_tmpl<int>, "k_tmpl<int>", 2,
	  FBP_END(tmpl_int_args, out), 0,
	  { FBP_P(tmpl_int_args, v), FBP_P(tmpl_int_args, out) } },
	{ (const void *)k_tmpl<double>, "k_tmpl<double>", 2,
	  FBP_END(tmpl_dbl_args, out), 0,
	  { FBP_P(tmpl_dbl_args, v), FBP_P(tmpl_dbl_args, out) } },
	{ (const void *)k_c, "k_c", 2, FBP_END(c_args, b), 0,
	  { FBP_P(c_args, a), FBP_P(c_args, b) } },
};

extern "C" __attribute__((visibility("default")))
const uint32_t fbp_nkernels = sizeof(fbp_kernels) / sizeof(fbp_kernels[0]);
