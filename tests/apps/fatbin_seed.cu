/*
 * fatbin_seed.cu: a small source whose fatbins seed the fuzzer's corpus
 * (tests/fuzz/corpus/fatbin/; fuzz_fatbin.c says how they were made).
 * The fuzzer looks its kernels up by name: seed_a, seed_b, seed_none.
 */
struct seed_s { char c; double d; short s[3]; };

extern "C" __global__ void seed_a(int *out, double x, char c)
{
	out[threadIdx.x] = (int)x + c;
}

extern "C" __global__ void seed_b(seed_s s, float4 f, int *out)
{
	out[0] = s.c + (int)s.d + s.s[2] + (int)f.w;
}

extern "C" __global__ void seed_none() { }
