/*
 * va_probe.c: can the cuda backend place device memory at the addresses
 * tremote's address windows give (docs/ARCHITECTURE.md, "Device address
 * space")?  On a machine with a GPU:
 *
 *   va_probe [BASE_HEX [WINDOWS]]
 *
 * For each of WINDOWS windows (default 2) at BASE + i * 512 GiB (default
 * TR_VA_BASE), it reserves address space at exactly that address with
 * cuMemAddressReserve, backs the first 64 MiB with cuMemCreate + cuMemMap,
 * grants access, and checks that the device really uses those addresses:
 * a memset, a kernel (loaded from PTX text) that writes i * 3 + 1 to every
 * 32-bit word, and a copy back, compared on the host.  Prints one line per
 * step and "PASS" or "FAIL: ...".  The driver is loaded with dlopen, so
 * the program builds on machines without one (and exits 77 there).
 */
#include <dlfcn.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda.h>

#include "tremote/proto.h"

#define MAP_BYTES (64ull << 20)

static CUresult (*p_cuInit)(unsigned);
static CUresult (*p_cuDeviceGet)(CUdevice *, int);
static CUresult (*p_cuDeviceGetName)(char *, int, CUdevice);
static CUresult (*p_cuDevicePrimaryCtxRetain)(CUcontext *, CUdevice);
static CUresult (*p_cuCtxSetCurrent)(CUcontext);
static CUresult (*p_cuMemAddressReserve)(CUdeviceptr *, size_t, size_t,
                                         CUdeviceptr, unsigned long long);
static CUresult (*p_cuMemGetAllocationGranularity)(
    size_t *, const CUmemAllocationProp *, CUmemAllocationGranularity_flags);
static CUresult (*p_cuMemCreate)(CUmemGenericAllocationHandle *, size_t,
                                 const CUmemAllocationProp *,
                                 unsigned long long);
static CUresult (*p_cuMemMap)(CUdeviceptr, size_t, size_t,
                              CUmemGenericAllocationHandle,
                              unsigned long long);
static CUresult (*p_cuMemSetAccess)(CUdeviceptr, size_t,
                                    const CUmemAccessDesc *, size_t);
static CUresult (*p_cuMemsetD32)(CUdeviceptr, unsigned, size_t);
static CUresult (*p_cuMemcpyDtoH)(void *, CUdeviceptr, size_t);
static CUresult (*p_cuModuleLoadData)(CUmodule *, const void *);
static CUresult (*p_cuModuleGetFunction)(CUfunction *, CUmodule,
                                         const char *);
static CUresult (*p_cuLaunchKernel)(CUfunction, unsigned, unsigned, unsigned,
                                    unsigned, unsigned, unsigned, unsigned,
                                    CUstream, void **, void **);
static CUresult (*p_cuCtxSynchronize)(void);
static CUresult (*p_cuGetErrorName)(CUresult, const char **);

static const char kernel_ptx[] =
    ".version 7.0\n.target sm_70\n.address_size 64\n"
    ".visible .entry fill(.param .u64 p, .param .u32 n)\n{\n"
    "  .reg .pred %p1;\n  .reg .b32 %r<6>;\n  .reg .b64 %rd<4>;\n"
    "  ld.param.u64 %rd1, [p];\n  ld.param.u32 %r1, [n];\n"
    "  mov.u32 %r2, %ctaid.x;\n  mov.u32 %r3, %ntid.x;\n"
    "  mov.u32 %r4, %tid.x;\n  mad.lo.s32 %r2, %r2, %r3, %r4;\n"
    "  setp.ge.u32 %p1, %r2, %r1;\n  @%p1 bra DONE;\n"
    "  mul.wide.u32 %rd2, %r2, 4;\n  add.s64 %rd3, %rd1, %rd2;\n"
    "  mad.lo.s32 %r5, %r2, 3, 1;\n  st.global.u32 [%rd3], %r5;\n"
    "DONE:\n  ret;\n}\n";

static int failed;

static int check(const char *what, CUresult r)
{
  const char *name = "?";

  if (r == CUDA_SUCCESS) {
    printf("  ok   %s\n", what);
    return 0;
  }
  if (p_cuGetErrorName)
    p_cuGetErrorName(r, &name);
  printf("  FAIL %s: %s (%d)\n", what, name, (int)r);
  failed = 1;
  return -1;
}

/*
 * cuda.h maps some names to versioned entry points (cuMemsetD32 is
 * cuMemsetD32_v2: the plain name is the old 32-bit-pointer ABI), while for
 * others a _v2 exists with another signature (cuCtxSynchronize_v2 takes a
 * context): LOAD takes the name as given, LOAD2 the _v2.
 */
#define LOAD2(sym)                                                             \
  do {                                                                         \
    *(void **)&p_##sym = dlsym(lib, #sym "_v2");                               \
    if (!p_##sym) {                                                            \
      printf("FAIL: libcuda.so.1 lacks %s_v2\n", #sym);                        \
      return 1;                                                                \
    }                                                                          \
  } while (0)
#define LOAD(sym)                                                              \
  do {                                                                         \
    *(void **)&p_##sym = dlsym(lib, #sym);                                     \
    if (!p_##sym) {                                                            \
      printf("FAIL: libcuda.so.1 lacks %s\n", #sym);                           \
      return 1;                                                                \
    }                                                                          \
  } while (0)

int main(int argc, char **argv)
{
  uint64_t base = argc > 1 ? strtoull(argv[1], NULL, 16) : TR_VA_BASE;
  int windows = argc > 2 ? atoi(argv[2]) : 2;
  void *lib = dlopen("libcuda.so.1", RTLD_NOW);
  CUmemAllocationProp prop;
  CUmemAccessDesc acc;
  CUcontext ctx;
  CUdevice dev;
  CUmodule mod;
  CUfunction fn;
  size_t gran = 0;
  char name[128];
  uint32_t *host;

  if (!lib) {
    printf("no libcuda.so.1 (%s): skipped\n", dlerror());
    return 77;
  }
  LOAD(cuInit); LOAD(cuDeviceGet); LOAD(cuDeviceGetName);
  LOAD(cuDevicePrimaryCtxRetain); LOAD(cuCtxSetCurrent);
  LOAD(cuMemAddressReserve); LOAD(cuMemGetAllocationGranularity);
  LOAD(cuMemCreate); LOAD(cuMemMap); LOAD(cuMemSetAccess);
  LOAD2(cuMemsetD32); LOAD2(cuMemcpyDtoH); LOAD(cuModuleLoadData);
  LOAD(cuModuleGetFunction); LOAD(cuLaunchKernel); LOAD(cuCtxSynchronize);
  LOAD(cuGetErrorName);

  if (check("cuInit", p_cuInit(0)) || check("cuDeviceGet", p_cuDeviceGet(&dev, 0)))
    return 1;
  p_cuDeviceGetName(name, sizeof(name), dev);
  printf("device 0: %s\n", name);
  if (check("primary context", p_cuDevicePrimaryCtxRetain(&ctx, dev)) ||
      check("cuCtxSetCurrent", p_cuCtxSetCurrent(ctx)))
    return 1;
  memset(&prop, 0, sizeof(prop));
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  prop.location.id = dev;
  if (check("granularity", p_cuMemGetAllocationGranularity(
                               &gran, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM)))
    return 1;
  printf("allocation granularity %zu bytes\n", gran);
  if (check("load PTX kernel", p_cuModuleLoadData(&mod, kernel_ptx)) ||
      check("get kernel", p_cuModuleGetFunction(&fn, mod, "fill")))
    return 1;
  host = malloc(MAP_BYTES);
  for (int w = 0; w < windows; w++) {
    uint64_t want = base + (uint64_t)w * TR_VA_WINDOW;
    CUdeviceptr got = 0;
    CUmemGenericAllocationHandle h;
    unsigned n = (unsigned)(MAP_BYTES / 4);
    void *args[2];
    uint64_t bad = 0;

    printf("window %d at 0x%" PRIx64 " (512 GiB):\n", w, want);
    if (check("reserve the whole window at its address",
              p_cuMemAddressReserve(&got, TR_VA_WINDOW, 0, want, 0)))
      continue;
    if (got != want) {
      printf("  FAIL reserve: got 0x%llx instead of 0x%" PRIx64 "\n",
             (unsigned long long)got, want);
      failed = 1;
      continue;
    }
    printf("  ok   the driver placed it exactly there\n");
    if (check("cuMemCreate 64 MiB", p_cuMemCreate(&h, MAP_BYTES, &prop, 0)) ||
        check("cuMemMap at the window's start",
              p_cuMemMap(want, MAP_BYTES, 0, h, 0)))
      continue;
    acc.location = prop.location;
    acc.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
    if (check("cuMemSetAccess", p_cuMemSetAccess(want, MAP_BYTES, &acc, 1)) ||
        check("cuMemsetD32", p_cuMemsetD32(want, 0xdeadbeef, n)))
      continue;
    args[0] = &want;
    args[1] = &n;
    if (check("kernel writes through the window's pointers",
              p_cuLaunchKernel(fn, (n + 255) / 256, 1, 1, 256, 1, 1, 0, NULL,
                               args, NULL)) ||
        check("synchronize", p_cuCtxSynchronize()) ||
        check("copy back", p_cuMemcpyDtoH(host, want, MAP_BYTES)))
      continue;
    for (unsigned i = 0; i < n; i++)
      if (host[i] != i * 3 + 1)
        bad++;
    if (bad) {
      printf("  FAIL %" PRIu64 " of %u words differ\n", bad, n);
      failed = 1;
    } else {
      printf("  ok   all %u words are what the kernel wrote\n", n);
    }
  }
  free(host);
  printf(failed ? "FAIL: see above\n" : "PASS\n");
  return failed;
}
