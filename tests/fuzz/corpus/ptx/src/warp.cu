#include <cooperative_groups.h>
namespace cg = cooperative_groups;
__global__ void warp(int *o, float *f) {
  int v = o[threadIdx.x];
  v += __shfl_sync(0xffffffff, v, 3); v += __shfl_up_sync(0xffffffff, v, 1);
  v += __shfl_down_sync(0xffffffff, v, 2); v += __shfl_xor_sync(0xffffffff, v, 4);
  float x = __shfl_down_sync(0xffffffff, f[threadIdx.x], 1);
  unsigned b = __ballot_sync(0xffffffff, v > 0);
  int a = __all_sync(0xffffffff, v > 1) + __any_sync(0xffffffff, v > 2);
  unsigned m = __activemask();
  __syncwarp();
  auto tile = cg::tiled_partition<16>(cg::this_thread_block());
  int s = tile.shfl_down(v, 1) + tile.thread_rank();
  tile.sync();
  o[threadIdx.x] = v + b + a + m + s + (int)x;
}
#if __CUDA_ARCH__ >= 800
__global__ void warp80(unsigned *o) {
  unsigned v = o[threadIdx.x];
  o[threadIdx.x] = __match_any_sync(0xffffffff, v) + __reduce_add_sync(0xffffffff, v) + __reduce_min_sync(0xffffffff, v);
  int pred; o[threadIdx.x+1] = __match_all_sync(0xffffffff, v, &pred) + pred;
}
#endif
