// emu_divergence: control flow that splits warps, checked exactly.
//   - converged code first (no thread has left yet): __activemask(),
//     __ballot_sync, __all_sync and __any_sync on per-lane predicates, with
//     blocks of 80 threads, so every block's third warp has only 16 lanes
//     (its mask is 0xffff);
//   - then per-thread work: nested if/else on lane bits, a loop whose trip
//     count depends on the thread, with continue and break inside, a
//     while loop with an early exit, and a switch with fall-through and a
//     default;
//   - some threads return early (tid % 5 == 0) before the rest do more
//     divergent work; nothing after that point waits for all threads.
// The host replays the same per-thread code (the function `work` is
// compiled for both) and knows what the warp votes must give.
#include "emu_check.h"

#include <vector>

struct Out {
  unsigned active, ballot, all_small, any_big, all_true, any_false, ballot_odd;
  int work, late;
};

__host__ __device__ inline int work(int gid, int lane)
{
  int acc = 0;
  // Nested branches on lane bits.
  if (lane & 1) {
    if (lane & 2)
      acc = gid * 3;
    else
      acc = gid - 17;
  } else {
    if (lane & 4) {
      acc = -gid;
      if (lane & 8)
        acc ^= 0x5a5a;
    } else {
      acc = gid + 1000;
    }
  }
  // A loop with a per-thread trip count, continue and break.
  int trips = (gid * 7 + lane) % 37;
  for (int i = 0; i < trips; i++) {
    if (i % 3 == 1)
      continue;
    acc += i * (lane + 1);
    if (acc > 40000 && (gid & 1))
      break;
  }
  // A data-dependent while loop (Collatz steps, capped).
  unsigned x = (unsigned)gid + 1;
  int steps = 0;
  while (x != 1) {
    x = (x & 1) ? 3 * x + 1 : x / 2;
    if (++steps >= 100)
      break;
  }
  acc += steps;
  // A switch with fall-through and a default.
  switch ((gid * 13 + lane) % 6) {
  case 0:
    acc += 1;
    [[fallthrough]];
  case 1:
    acc *= 2;
    break;
  case 3:
    acc -= 300;
    break;
  case 4:
    acc ^= 0xff;
    [[fallthrough]];
  case 5:
    acc += 5;
    break;
  default:
    acc = -acc;
  }
  return acc;
}

__host__ __device__ inline int late_work(int gid)
{
  int s = 0;
  for (int i = 0; i < gid % 50; i++)
    s += (i & 1) ? i : -2 * i;
  return s;
}

__host__ __device__ inline int pred_value(int gid) { return (int)(emu_hash((uint32_t)gid) % 100u); }

__global__ void diverge(Out *out, int *late_done)
{
  int gid = blockIdx.x * blockDim.x + threadIdx.x;
  int lane = threadIdx.x & 31;
  int v = pred_value(gid);
  int warp_base = threadIdx.x & ~31;
  int in_warp = blockDim.x - warp_base < 32 ? blockDim.x - warp_base : 32;
  unsigned mask = in_warp == 32 ? 0xffffffffu : (1u << in_warp) - 1;

  // Converged: every lane of the warp is here.
  __syncwarp(mask);
  out[gid].active = __activemask();
  out[gid].ballot = __ballot_sync(mask, v < 50);
  out[gid].all_small = __all_sync(mask, v < 100);
  out[gid].any_big = __any_sync(mask, v >= 99);
  out[gid].all_true = __all_sync(mask, v < 60);
  out[gid].any_false = __any_sync(mask, v > 200);
  out[gid].ballot_odd = __ballot_sync(mask, lane & 1);

  out[gid].work = work(gid, lane);
  if (threadIdx.x % 5 == 0)
    return; // early exit; no barrier follows
  out[gid].late = late_work(gid);
  late_done[gid] = 1;
}

int main()
{
  const int blocks = 24, threads = 80, n = blocks * threads;
  Out *dout;
  int *dlate;
  CK(cudaMalloc(&dout, n * sizeof(Out)));
  CK(cudaMalloc(&dlate, n * sizeof(int)));
  CK(cudaMemset(dout, 0, n * sizeof(Out)));
  CK(cudaMemset(dlate, 0, n * sizeof(int)));
  diverge<<<blocks, threads>>>(dout, dlate);
  CK_LAUNCH();
  CK(cudaDeviceSynchronize());
  std::vector<Out> o(n);
  std::vector<int> late(n);
  CK(cudaMemcpy(o.data(), dout, n * sizeof(Out), cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(late.data(), dlate, n * sizeof(int), cudaMemcpyDeviceToHost));

  EmuCheck chk("emu_divergence");
  for (int gid = 0; gid < n; gid++) {
    int tid = gid % threads, lane = tid & 31, warp_base = tid & ~31;
    int in_warp = threads - warp_base < 32 ? threads - warp_base : 32;
    unsigned mask = in_warp == 32 ? 0xffffffffu : (1u << in_warp) - 1;
    unsigned ballot = 0, ballot_odd = 0;
    bool all_small = true, any_big = false, all_true = true, any_false = false;
    for (int l = 0; l < in_warp; l++) {
      int g = gid - lane + l, v = pred_value(g);
      ballot |= (unsigned)(v < 50) << l;
      ballot_odd |= (unsigned)(l & 1) << l;
      all_small = all_small && v < 100;
      any_big = any_big || v >= 99;
      all_true = all_true && v < 60;
      any_false = any_false || v > 200;
    }
    chk.eq("activemask", gid, o[gid].active, mask);
    chk.eq("ballot", gid, o[gid].ballot, ballot);
    chk.eq("ballot_odd", gid, o[gid].ballot_odd, ballot_odd);
    chk.eq("all_sync(v<100)", gid, o[gid].all_small != 0, all_small);
    chk.eq("any_sync(v>=99)", gid, o[gid].any_big != 0, any_big);
    chk.eq("all_sync(v<60)", gid, o[gid].all_true != 0, all_true);
    chk.eq("any_sync(v>200)", gid, o[gid].any_false != 0, any_false);
    chk.eq("work", gid, o[gid].work, work(gid, lane));
    bool returned = tid % 5 == 0;
    chk.eq("late_done", gid, late[gid], returned ? 0 : 1);
    chk.eq("late", gid, o[gid].late, returned ? 0 : late_work(gid));
  }
  CK(cudaFree(dout));
  CK(cudaFree(dlate));
  return chk.finish();
}
