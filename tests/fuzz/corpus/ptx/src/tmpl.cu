template <typename T, int N> __global__ void reduce(const T *in, T *out, int n) {
  __shared__ T s[N];
  T acc = 0;
  for (int i = blockIdx.x * N + threadIdx.x; i < n; i += gridDim.x * N) acc += in[i];
  s[threadIdx.x] = acc; __syncthreads();
  #pragma unroll 1
  for (int st = N/2; st > 0; st >>= 1) { if (threadIdx.x < st) s[threadIdx.x] += s[threadIdx.x + st]; __syncthreads(); }
  if (threadIdx.x == 0) out[blockIdx.x] = s[0];
}
template __global__ void reduce<float, 256>(const float*, float*, int);
template __global__ void reduce<double, 128>(const double*, double*, int);
template __global__ void reduce<int, 64>(const int*, int*, int);
template __global__ void reduce<unsigned long long, 32>(const unsigned long long*, unsigned long long*, int);
__global__ void __launch_bounds__(256, 2) lb(int *o) { o[threadIdx.x] = 1; }
struct Big { float v[6]; int k; };
__global__ void bigp(Big b, float4 f4, double2 d2, char c, short s, float *o) { 
  float4 q = reinterpret_cast<float4*>(o)[threadIdx.x];
  o[threadIdx.x] = b.v[threadIdx.x % 6] + b.k + f4.x + f4.w + d2.y + c + s + q.y; reinterpret_cast<float4*>(o)[threadIdx.x+1] = make_float4(q.x, 0, q.z, 1);}
