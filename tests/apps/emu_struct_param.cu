// emu_struct_param: kernel parameters passed by value.
//   - Mixed: int, double, char[13], float4 (16-byte aligned), short,
//     unsigned long long, float and bool, with the padding that implies;
//   - WithArray: an int[16] and a double;
//   - Table: a 256-float array wrapped in a struct (1 KiB of parameters),
//     indexed by threadIdx.x, i.e. at an offset only known at run time;
//   - scalar parameters of mixed sizes between them (char, short, double,
//     char, long long), which must land at their aligned offsets.
// Thread 0 copies every field out field by field; every thread copies its
// Table element; the host compares each field with what it passed (fields,
// not whole structs, so padding bytes do not matter).
#include "emu_check.h"

struct Mixed {
  int i;
  double d;
  char name[13];
  float4 v;
  short s;
  unsigned long long u;
  float f;
  bool flag;
};

struct WithArray {
  int arr[16];
  double scale;
};

struct Table {
  float vals[256];
};

struct Echo {
  Mixed m;
  WithArray w;
  char c1;
  short s1;
  double d1;
  char c2;
  long long ll;
  float scaled[16];
};

__global__ void echo(char c1, Mixed m, short s1, WithArray w, double d1, Table t, char c2,
                     long long ll, Echo *out, float *tout)
{
  int tid = threadIdx.x;
  tout[tid] = t.vals[tid] * 2.0f;
  if (tid == 0) {
    out->m.i = m.i;
    out->m.d = m.d;
    for (int k = 0; k < 13; k++)
      out->m.name[k] = m.name[k];
    out->m.v = m.v;
    out->m.s = m.s;
    out->m.u = m.u;
    out->m.f = m.f;
    out->m.flag = m.flag;
    for (int k = 0; k < 16; k++) {
      out->w.arr[k] = w.arr[k];
      out->scaled[k] = (float)(w.arr[k] * w.scale);
    }
    out->w.scale = w.scale;
    out->c1 = c1;
    out->s1 = s1;
    out->d1 = d1;
    out->c2 = c2;
    out->ll = ll;
  }
}

// A second kernel reads a struct field at a run-time index.
__global__ void pick(WithArray w, int *out)
{
  out[threadIdx.x] = w.arr[(threadIdx.x * 7) & 15] + (int)w.scale;
}

int main()
{
  EmuCheck chk("emu_struct_param");
  Mixed m;
  memset(&m, 0x5c, sizeof m);
  m.i = -123456789;
  m.d = 3.141592653589793;
  memcpy(m.name, "tremote-emu!", 13);
  m.v = make_float4(1.5f, -2.25f, 1e-20f, 6.02e23f);
  m.s = -31000;
  m.u = 0xfedcba9876543210ull;
  m.f = -0.1f;
  m.flag = true;
  WithArray w;
  memset(&w, 0x3a, sizeof w);
  for (int k = 0; k < 16; k++)
    w.arr[k] = (k * 1000003) ^ (k << 20);
  w.scale = 0.5;
  Table t;
  for (int k = 0; k < 256; k++)
    t.vals[k] = (float)k * 0.125f - 7.0f;
  char c1 = 'Q', c2 = -7;
  short s1 = 12345;
  double d1 = -2.5e-300;
  long long ll = -0x123456789abcdefll;

  Echo *dout;
  float *dt;
  int *dpick;
  CK(cudaMalloc(&dout, sizeof(Echo)));
  CK(cudaMalloc(&dt, 256 * sizeof(float)));
  CK(cudaMalloc(&dpick, 64 * sizeof(int)));
  CK(cudaMemset(dout, 0, sizeof(Echo)));
  echo<<<1, 256>>>(c1, m, s1, w, d1, t, c2, ll, dout, dt);
  CK_LAUNCH();
  pick<<<1, 64>>>(w, dpick);
  CK_LAUNCH();
  CK(cudaDeviceSynchronize());
  Echo e;
  float tv[256];
  int pk[64];
  CK(cudaMemcpy(&e, dout, sizeof e, cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(tv, dt, sizeof tv, cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(pk, dpick, sizeof pk, cudaMemcpyDeviceToHost));

  chk.eq("m.i", 0, e.m.i, m.i);
  chk.same_bits("m.d", 0, e.m.d, m.d);
  for (int k = 0; k < 13; k++)
    chk.eq("m.name", k, (int)e.m.name[k], (int)m.name[k]);
  chk.same_bits("m.v.x", 0, e.m.v.x, m.v.x);
  chk.same_bits("m.v.y", 0, e.m.v.y, m.v.y);
  chk.same_bits("m.v.z", 0, e.m.v.z, m.v.z);
  chk.same_bits("m.v.w", 0, e.m.v.w, m.v.w);
  chk.eq("m.s", 0, (int)e.m.s, (int)m.s);
  chk.eq("m.u", 0, e.m.u, m.u);
  chk.same_bits("m.f", 0, e.m.f, m.f);
  chk.eq("m.flag", 0, (int)e.m.flag, (int)m.flag);
  for (int k = 0; k < 16; k++) {
    chk.eq("w.arr", k, e.w.arr[k], w.arr[k]);
    chk.same_bits("scaled", k, e.scaled[k], (float)(w.arr[k] * w.scale));
  }
  chk.same_bits("w.scale", 0, e.w.scale, w.scale);
  chk.eq("c1", 0, (int)e.c1, (int)c1);
  chk.eq("s1", 0, (int)e.s1, (int)s1);
  chk.same_bits("d1", 0, e.d1, d1);
  chk.eq("c2", 0, (int)e.c2, (int)c2);
  chk.eq("ll", 0, e.ll, ll);
  for (int k = 0; k < 256; k++)
    chk.same_bits("table*2", k, tv[k], t.vals[k] * 2.0f);
  for (int k = 0; k < 64; k++)
    chk.eq("pick", k, pk[k], w.arr[(k * 7) & 15] + (int)w.scale);

  CK(cudaFree(dout));
  CK(cudaFree(dt));
  CK(cudaFree(dpick));
  return chk.finish();
}
