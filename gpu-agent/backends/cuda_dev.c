/*
 * cuda_dev.c: the cuda backend's driver and device (cuda_int.h): loading
 * libcuda.so.1 and resolving its entry points, driver errors as the
 * runtime numbers them, and the GPU as programs see it (its description
 * and attribute list); agt_cuda_new opens it.  The sessions are cuda.c's.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <driver_types.h>

#include "agent.h"
#include "cuda_int.h"
#include "cuerr.h"

/* ---- errors ------------------------------------------------------------ */

/*
 * CUresult to cudaError_t, the number that goes back to the program.  The
 * runtime passes a driver error on under the same number wherever it has
 * one (CUDA_ERROR_INVALID_IMAGE is cudaErrorInvalidKernelImage, 200; the
 * asserts pin the ones programs meet); a number the runtime does not
 * define (CUDA_ERROR_CONTEXT_ALREADY_CURRENT, a newer driver's) becomes
 * cudaErrorUnknown, so a program never gets a code cudaGetErrorName cannot
 * name.  Callers map the lookup failures themselves where the runtime
 * reports another error than the driver (a missing kernel is
 * cudaErrorInvalidDeviceFunction, a missing variable
 * cudaErrorInvalidSymbol).
 */
#define CU_SAME(cu, rt)                                                        \
  _Static_assert((int)(cu) == (int)(rt), #cu " is not " #rt);
CU_SAME(CUDA_ERROR_INVALID_VALUE, cudaErrorInvalidValue)
CU_SAME(CUDA_ERROR_OUT_OF_MEMORY, cudaErrorMemoryAllocation)
CU_SAME(CUDA_ERROR_NOT_INITIALIZED, cudaErrorInitializationError)
CU_SAME(CUDA_ERROR_STUB_LIBRARY, cudaErrorStubLibrary)
CU_SAME(CUDA_ERROR_DEVICE_UNAVAILABLE, cudaErrorDevicesUnavailable)
CU_SAME(CUDA_ERROR_NO_DEVICE, cudaErrorNoDevice)
CU_SAME(CUDA_ERROR_INVALID_IMAGE, cudaErrorInvalidKernelImage)
CU_SAME(CUDA_ERROR_INVALID_CONTEXT, cudaErrorDeviceUninitialized)
CU_SAME(CUDA_ERROR_NO_BINARY_FOR_GPU, cudaErrorNoKernelImageForDevice)
CU_SAME(CUDA_ERROR_INVALID_PTX, cudaErrorInvalidPtx)
CU_SAME(CUDA_ERROR_UNSUPPORTED_PTX_VERSION, cudaErrorUnsupportedPtxVersion)
CU_SAME(CUDA_ERROR_JIT_COMPILER_NOT_FOUND, cudaErrorJitCompilerNotFound)
CU_SAME(CUDA_ERROR_INVALID_HANDLE, cudaErrorInvalidResourceHandle)
CU_SAME(CUDA_ERROR_NOT_FOUND, cudaErrorSymbolNotFound)
CU_SAME(CUDA_ERROR_ILLEGAL_ADDRESS, cudaErrorIllegalAddress)
CU_SAME(CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES, cudaErrorLaunchOutOfResources)
CU_SAME(CUDA_ERROR_LAUNCH_TIMEOUT, cudaErrorLaunchTimeout)
CU_SAME(CUDA_ERROR_ASSERT, cudaErrorAssert)
CU_SAME(CUDA_ERROR_HARDWARE_STACK_ERROR, cudaErrorHardwareStackError)
CU_SAME(CUDA_ERROR_ILLEGAL_INSTRUCTION, cudaErrorIllegalInstruction)
CU_SAME(CUDA_ERROR_MISALIGNED_ADDRESS, cudaErrorMisalignedAddress)
CU_SAME(CUDA_ERROR_INVALID_ADDRESS_SPACE, cudaErrorInvalidAddressSpace)
CU_SAME(CUDA_ERROR_INVALID_PC, cudaErrorInvalidPc)
CU_SAME(CUDA_ERROR_LAUNCH_FAILED, cudaErrorLaunchFailure)
CU_SAME(CUDA_ERROR_CONTEXT_IS_DESTROYED, cudaErrorContextIsDestroyed)
CU_SAME(CUDA_ERROR_NOT_SUPPORTED, cudaErrorNotSupported)
CU_SAME(CUDA_ERROR_UNKNOWN, cudaErrorUnknown)
#undef CU_SAME

uint32_t cu_status(CUresult r)
{
  if (r == CUDA_SUCCESS)
    return cudaSuccess;
  return tr_cuerr_known((int)r) ? (uint32_t)r : (uint32_t)cudaErrorUnknown;
}

/*
 * "NAME (number): description" of a driver error, into buf.  The toolkit's
 * stub library answers cuGetErrorName with an error of its own, so the
 * names that matter before a driver works are known here too.
 */
const char *cu_describe(const struct cu_drv *d, CUresult r, char *buf,
                        size_t n)
{
  const char *name = NULL, *str = NULL;

  if (d->GetErrorName && d->GetErrorName(r, &name) != CUDA_SUCCESS)
    name = NULL;
  if (d->GetErrorString && d->GetErrorString(r, &str) != CUDA_SUCCESS)
    str = NULL;
  if (!name) {
    switch (r) {
    case CUDA_ERROR_NOT_INITIALIZED: name = "CUDA_ERROR_NOT_INITIALIZED"; break;
    case CUDA_ERROR_STUB_LIBRARY: name = "CUDA_ERROR_STUB_LIBRARY"; break;
    case CUDA_ERROR_DEVICE_UNAVAILABLE:
      name = "CUDA_ERROR_DEVICE_UNAVAILABLE";
      break;
    case CUDA_ERROR_NO_DEVICE: name = "CUDA_ERROR_NO_DEVICE"; break;
    case CUDA_ERROR_INVALID_DEVICE: name = "CUDA_ERROR_INVALID_DEVICE"; break;
    case CUDA_ERROR_SYSTEM_DRIVER_MISMATCH:
      name = "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH";
      break;
    case CUDA_ERROR_OUT_OF_MEMORY: name = "CUDA_ERROR_OUT_OF_MEMORY"; break;
    default: name = "CUresult"; break;
    }
  }
  snprintf(buf, n, "%s (%d)%s%s", name, (int)r, str ? ": " : "",
           str ? str : "");
  return buf;
}

/* ---- loading the driver ------------------------------------------------ */

/*
 * Why agt_cuda_new failed.  One buffer: the backend is opened once, at
 * start-up, before any other thread exists (backend.h says how long the
 * text stays valid).
 */
static char open_why[AGT_WHY_MAX];

static int open_fail(int rc, const char *fmt, ...)
  __attribute__((format(printf, 2, 3)));

static int open_fail(int rc, const char *fmt, ...)
{
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(open_why, sizeof(open_why), fmt, ap);
  va_end(ap);
  return rc;
}

/*
 * dlopen the driver and resolve every entry point.  The handle is never
 * dlclose()d, not even on failure: a driver library is not written to be
 * unloaded (it may have started threads in cuInit), and a second open in
 * the same process gets the same handle back.
 */
static int drv_load(struct cu_drv *d)
{
  const char *err;

  memset(d, 0, sizeof(*d));
  d->lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!d->lib) {
    err = dlerror();
    if (!err || strstr(err, "No such file"))
      return open_fail(-ENOSYS, "libcuda.so.1 not found: no NVIDIA driver "
                                "on this machine");
    return open_fail(-ENOSYS, "cannot load libcuda.so.1: %s", err);
  }
#define CU_DRV_RESOLVE(field, sym, params)                                     \
  *(void **)&d->field = dlsym(d->lib, sym);                                    \
  if (!d->field)                                                               \
    return open_fail(-ENOSYS, "libcuda.so.1 has no %s: the NVIDIA driver is "  \
                              "too old for the cuda backend (CUDA 11.4 or "    \
                              "newer is needed)", sym);
  CU_DRV_FUNCS(CU_DRV_RESOLVE)
#undef CU_DRV_RESOLVE
#define CU_DRV_OPTIONAL_RESOLVE(field, sym, params)                            \
  *(void **)&d->field = dlsym(d->lib, sym);
  CU_DRV_OPTIONAL(CU_DRV_OPTIONAL_RESOLVE)
#undef CU_DRV_OPTIONAL_RESOLVE
  return 0;
}

/* ---- the device -------------------------------------------------------- */

void cu_cc_of(const struct cu_backend *cb, int *major, int *minor)
{
  *major = 0;
  *minor = 0;
  (void)tr_devinfo_attr(&cb->info, cudaDevAttrComputeCapabilityMajor, major);
  (void)tr_devinfo_attr(&cb->info, cudaDevAttrComputeCapabilityMinor, minor);
}

void cu_dev_mem_info(struct agt_backend *b, uint64_t *free_b,
                     uint64_t *total)
{
  struct cu_backend *cb = (struct cu_backend *)b;
  size_t f = 0, t = 0;

  if (!cb->primary || cb->drv.CtxSetCurrent(cb->primary) != CUDA_SUCCESS ||
      cb->drv.MemGetInfo(&f, &t) != CUDA_SUCCESS) {
    f = 0;
    t = cb->info.total_mem;
  }
  *free_b = f;
  *total = t;
}

void cu_devinfo(struct agt_backend *b, struct tr_devinfo *d)
{
  *d = ((struct cu_backend *)b)->info;
}

void cu_destroy(struct agt_backend *b)
{
  struct cu_backend *cb = (struct cu_backend *)b;

  /* Every context is closed, so every window is gone. */
  if (cb->primary)
    (void)cb->drv.DevicePrimaryCtxRelease(cb->dev);
  pthread_mutex_destroy(&cb->mu);
  free(cb); /* the driver stays loaded: see drv_load */
}


/*
 * The device attributes programs see: the same list, in the same order, as
 * the emulated device reports (emu.c, fill_attrs).  Most are the GPU's own
 * (the runtime's cudaDevAttr numbers are the driver's
 * CU_DEVICE_ATTRIBUTE_* numbers, as the asserts check for a sample); the
 * ones marked TR are what the program gets through tremote, which is not
 * what the GPU offers a local process: the device is on another machine,
 * so it cannot reach the program's host memory, and managed memory is the
 * shim's.  Cooperative and cluster launches go through cuLaunchKernelEx,
 * and are reported absent where the driver lacks it.
 */
#define CU_ATTR_SAME(rt, cu)                                                   \
  _Static_assert((int)(rt) == (int)(cu), #rt " is not " #cu);
CU_ATTR_SAME(cudaDevAttrMaxThreadsPerBlock,
             CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK)
CU_ATTR_SAME(cudaDevAttrMultiProcessorCount,
             CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
CU_ATTR_SAME(cudaDevAttrComputeCapabilityMajor,
             CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)
CU_ATTR_SAME(cudaDevAttrComputeCapabilityMinor,
             CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)
CU_ATTR_SAME(cudaDevAttrClockRate, CU_DEVICE_ATTRIBUTE_CLOCK_RATE)
CU_ATTR_SAME(cudaDevAttrMemoryClockRate, CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE)
CU_ATTR_SAME(cudaDevAttrL2CacheSize, CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE)
CU_ATTR_SAME(cudaDevAttrManagedMemory, CU_DEVICE_ATTRIBUTE_MANAGED_MEMORY)
CU_ATTR_SAME(cudaDevAttrMaxSharedMemoryPerBlockOptin,
             CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)
CU_ATTR_SAME(cudaDevAttrMaxBlocksPerMultiprocessor,
             CU_DEVICE_ATTRIBUTE_MAX_BLOCKS_PER_MULTIPROCESSOR)
CU_ATTR_SAME(cudaDevAttrReservedSharedMemoryPerBlock,
             CU_DEVICE_ATTRIBUTE_RESERVED_SHARED_MEMORY_PER_BLOCK)
CU_ATTR_SAME(cudaDevAttrMemoryPoolsSupported,
             CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED)
CU_ATTR_SAME(cudaDevAttrClusterLaunch, CU_DEVICE_ATTRIBUTE_CLUSTER_LAUNCH)
CU_ATTR_SAME(cudaDevAttrIpcEventSupport, CU_DEVICE_ATTRIBUTE_IPC_EVENT_SUPPORTED)
CU_ATTR_SAME(cudaDevAttrMpsEnabled, CU_DEVICE_ATTRIBUTE_MPS_ENABLED)
#undef CU_ATTR_SAME

#define GPU (-1) /* ask the device */
#define GPU_EX (-2) /* ask the device if the driver has cuLaunchKernelEx, else 0 */

static void fill_attrs(struct cu_backend *cb)
{
  static const struct {
    uint32_t attr;
    int32_t value; /* GPU, or tremote's fixed answer */
  } list[] = {
    {cudaDevAttrMultiProcessorCount, GPU},
    {cudaDevAttrComputeCapabilityMajor, GPU},
    {cudaDevAttrComputeCapabilityMinor, GPU},
    {cudaDevAttrMaxThreadsPerBlock, GPU},
    {cudaDevAttrMaxBlockDimX, GPU},
    {cudaDevAttrMaxBlockDimY, GPU},
    {cudaDevAttrMaxBlockDimZ, GPU},
    {cudaDevAttrMaxGridDimX, GPU},
    {cudaDevAttrMaxGridDimY, GPU},
    {cudaDevAttrMaxGridDimZ, GPU},
    {cudaDevAttrMaxSharedMemoryPerBlock, GPU},
    {cudaDevAttrTotalConstantMemory, GPU},
    {cudaDevAttrWarpSize, GPU},
    {cudaDevAttrMaxPitch, GPU},
    {cudaDevAttrMaxRegistersPerBlock, GPU},
    {cudaDevAttrClockRate, GPU},
    {cudaDevAttrTextureAlignment, GPU},
    {cudaDevAttrGpuOverlap, GPU},
    {cudaDevAttrKernelExecTimeout, GPU},
    {cudaDevAttrIntegrated, GPU},
    {cudaDevAttrCanMapHostMemory, 0}, /* TR: host memory is remote */
    {cudaDevAttrComputeMode, GPU},
    {cudaDevAttrMaxTexture1DWidth, GPU},
    {cudaDevAttrMaxTexture2DWidth, GPU},
    {cudaDevAttrMaxTexture2DHeight, GPU},
    {cudaDevAttrMaxTexture3DWidth, GPU},
    {cudaDevAttrMaxTexture3DHeight, GPU},
    {cudaDevAttrMaxTexture3DDepth, GPU},
    {cudaDevAttrSurfaceAlignment, GPU},
    {cudaDevAttrConcurrentKernels, GPU},
    {cudaDevAttrEccEnabled, GPU},
    {cudaDevAttrPciBusId, GPU},
    {cudaDevAttrPciDeviceId, GPU},
    {cudaDevAttrPciDomainId, GPU},
    {cudaDevAttrTccDriver, GPU},
    {cudaDevAttrMemoryClockRate, GPU},
    {cudaDevAttrGlobalMemoryBusWidth, GPU},
    {cudaDevAttrL2CacheSize, GPU},
    {cudaDevAttrMaxThreadsPerMultiProcessor, GPU},
    {cudaDevAttrAsyncEngineCount, GPU},
    {cudaDevAttrUnifiedAddressing, GPU},
    {cudaDevAttrTexturePitchAlignment, GPU},
    {cudaDevAttrStreamPrioritiesSupported, GPU},
    {cudaDevAttrGlobalL1CacheSupported, GPU},
    {cudaDevAttrLocalL1CacheSupported, GPU},
    {cudaDevAttrMaxSharedMemoryPerMultiprocessor, GPU},
    {cudaDevAttrMaxRegistersPerMultiprocessor, GPU},
    {cudaDevAttrManagedMemory, 1}, /* TR: the shim's managed memory */
    {cudaDevAttrIsMultiGpuBoard, GPU},
    {cudaDevAttrMultiGpuBoardGroupID, GPU},
    {cudaDevAttrHostNativeAtomicSupported, 0},    /* TR */
    {cudaDevAttrSingleToDoublePrecisionPerfRatio, GPU},
    {cudaDevAttrPageableMemoryAccess, 0},         /* TR */
    {cudaDevAttrConcurrentManagedAccess, 0},      /* TR */
    {cudaDevAttrComputePreemptionSupported, GPU},
    {cudaDevAttrCanUseHostPointerForRegisteredMem, 0}, /* TR */
    {cudaDevAttrCooperativeLaunch, GPU_EX},
    {cudaDevAttrMaxSharedMemoryPerBlockOptin, GPU},
    {cudaDevAttrCanFlushRemoteWrites, 0},         /* TR */
    {cudaDevAttrHostRegisterSupported, 1},        /* TR: the shim's */
    {cudaDevAttrPageableMemoryAccessUsesHostPageTables, 0}, /* TR */
    {cudaDevAttrDirectManagedMemAccessFromHost, 0}, /* TR */
    {cudaDevAttrMaxBlocksPerMultiprocessor, GPU},
    {cudaDevAttrMaxPersistingL2CacheSize, GPU},
    {cudaDevAttrMaxAccessPolicyWindowSize, GPU},
    {cudaDevAttrReservedSharedMemoryPerBlock, GPU},
    {cudaDevAttrSparseCudaArraySupported, 0},     /* TR: no arrays */
    {cudaDevAttrHostRegisterReadOnlySupported, 0}, /* TR */
    {cudaDevAttrMemoryPoolsSupported, 0},         /* TR, as emu */
    {cudaDevAttrGPUDirectRDMASupported, 0},       /* TR: across machines */
    {cudaDevAttrClusterLaunch, GPU_EX},
    {cudaDevAttrIpcEventSupport, 0},              /* TR */
    {cudaDevAttrMpsEnabled, GPU},
  };
  struct tr_devinfo *info = &cb->info;
  unsigned n = 0;

  _Static_assert(sizeof(list) / sizeof(list[0]) <= TR_DEVINFO_MAX_ATTR,
                 "attribute list longer than a device description holds");
  for (size_t i = 0; i < sizeof(list) / sizeof(list[0]); i++) {
    int v = list[i].value;
    bool ask = v == GPU || (v == GPU_EX && cb->drv.LaunchKernelEx);

    if (v == GPU_EX && !ask)
      v = 0;
    /* An attribute this driver does not know is left out: the shim then
       answers from its defaults, as for any attribute not listed. */
    if (ask &&
        cb->drv.DeviceGetAttribute(&v, (CUdevice_attribute)list[i].attr,
                                   cb->dev) != CUDA_SUCCESS)
      continue;
    info->attr[n].attr = list[i].attr;
    info->attr[n++].value = v;
  }
  info->nattr = n;
}

#undef GPU

/*
 * Open device `ordinal`: load the driver, initialise it, check that the
 * GPU can map memory at fixed addresses, describe it.
 */
void agt_cuda_one_session(struct agt_backend *b)
{
  ((struct cu_backend *)b)->one_session = true;
}

void agt_cuda_drop_context(struct agt_backend *b)
{
  struct cu_backend *cb = (struct cu_backend *)b;

  if (cb->primary && cb->drv.DevicePrimaryCtxRelease(cb->dev) == CUDA_SUCCESS)
    cb->primary = NULL;
}

bool agt_cuda_one_process(const struct agt_backend *b)
{
  return ((const struct cu_backend *)b)->compute_mode ==
         CU_COMPUTEMODE_EXCLUSIVE_PROCESS;
}

int agt_cuda_new(int ordinal, struct agt_backend **out, const char **why)
{
  struct cu_backend *cb = calloc(1, sizeof(*cb));
  struct cu_drv *d;
  char desc[AGT_WHY_MAX];
  CUuuid uuid;
  size_t total = 0, gran = 0;
  int count = 0, vmm = 0, uva = 0, rc, major, minor;
  CUresult r;

  *why = open_why;
  if (!cb)
    return open_fail(-ENOMEM, "out of memory");
  d = &cb->drv;
  rc = drv_load(d);
  if (rc < 0)
    goto out_free;
  r = d->Init(0);
  if (r == CUDA_ERROR_STUB_LIBRARY) {
    rc = open_fail(-ENOSYS, "libcuda.so.1 is the CUDA toolkit's stub library, "
                   "not a driver (cuInit: CUDA_ERROR_STUB_LIBRARY): install "
                   "the NVIDIA driver, or take the toolkit's stubs directory "
                   "out of LD_LIBRARY_PATH");
    goto out_free;
  }
  if (r != CUDA_SUCCESS) {
    rc = open_fail(-ENOSYS, "cuInit failed: %s",
                   cu_describe(d, r, desc, sizeof(desc)));
    goto out_free;
  }
  (void)d->DriverGetVersion(&cb->driver_version);
  r = d->DeviceGetCount(&count);
  if (r == CUDA_SUCCESS && count <= ordinal) {
    rc = open_fail(-ENOSYS, "the NVIDIA driver sees %d GPU%s; there is no "
                   "device %d (CUDA_VISIBLE_DEVICES?)", count,
                   count == 1 ? "" : "s", ordinal);
    goto out_free;
  }
  if (r == CUDA_SUCCESS)
    r = d->DeviceGet(&cb->dev, ordinal);
  if (r != CUDA_SUCCESS) {
    rc = open_fail(-ENOSYS, "cannot open GPU %d: %s", ordinal,
                   cu_describe(d, r, desc, sizeof(desc)));
    goto out_free;
  }
  if (d->DeviceGetAttribute(&vmm,
                            CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED,
                            cb->dev) != CUDA_SUCCESS || !vmm ||
      d->DeviceGetAttribute(&uva, CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING,
                            cb->dev) != CUDA_SUCCESS || !uva) {
    rc = open_fail(-ENOSYS, "GPU %d cannot map memory at chosen addresses "
                   "(no virtual memory management or unified addressing), "
                   "which the cuda backend needs for address windows",
                   ordinal);
    goto out_free;
  }
  cb->prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  cb->prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  cb->prop.location.id = cb->dev;
  cb->access.location = cb->prop.location;
  cb->access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
  r = d->MemGetAllocationGranularity(&gran, &cb->prop,
                                     CU_MEM_ALLOC_GRANULARITY_MINIMUM);
  if (r == CUDA_SUCCESS && (gran == 0 || (gran & (gran - 1)) ||
                            TR_VA_WINDOW % gran))
    r = CUDA_ERROR_NOT_SUPPORTED; /* windows could not be aligned to it */
  if (r != CUDA_SUCCESS) {
    rc = open_fail(-ENOSYS, "GPU %d: no usable allocation granularity: %s",
                   ordinal, cu_describe(d, r, desc, sizeof(desc)));
    goto out_free;
  }
  cb->gran = gran;
  if (d->DeviceGetAttribute(&cb->compute_mode, CU_DEVICE_ATTRIBUTE_COMPUTE_MODE,
                            cb->dev) != CUDA_SUCCESS)
    cb->compute_mode = CU_COMPUTEMODE_DEFAULT;
  /* Before it is made: workers' sessions run in it (agt_cuda_one_session).
     Refused only when another part of this process made it already. */
  r = d->DevicePrimaryCtxSetFlags(cb->dev, CU_CTX_FLAGS);
  if (r != CUDA_SUCCESS)
    agt_debug("cuda: the primary context keeps its flags: %s",
              cu_describe(d, r, desc, sizeof(desc)));
  r = d->DevicePrimaryCtxRetain(&cb->primary, cb->dev);
  if (r != CUDA_SUCCESS) {
    rc = open_fail(-ENOSYS, "GPU %d: cannot create a CUDA context: %s",
                   ordinal, cu_describe(d, r, desc, sizeof(desc)));
    goto out_free;
  }

  cb->b.ops = &cu_ops;
  pthread_mutex_init(&cb->mu, NULL);
  if (d->DeviceGetName(cb->info.name, sizeof(cb->info.name) - 1, cb->dev) !=
      CUDA_SUCCESS)
    snprintf(cb->info.name, sizeof(cb->info.name), "NVIDIA GPU %d", ordinal);
  cb->info.name[sizeof(cb->info.name) - 1] = 0;
  if (d->DeviceTotalMem(&total, cb->dev) == CUDA_SUCCESS)
    cb->info.total_mem = total;
  /* The GPU's own uuid: a restarted agent on the same GPU is the same
     device, but its memory is gone all the same; the broker learns of the
     restart from the broken connection. */
  if (d->DeviceGetUuid(&uuid, cb->dev) == CUDA_SUCCESS)
    memcpy(cb->info.uuid, uuid.bytes, sizeof(cb->info.uuid));
  cb->info.caps = TR_CAP_EXEC;
  fill_attrs(cb);
  cu_cc_of(cb, &major, &minor);
  agt_info("cuda: GPU %d is %s (compute capability %d.%d, %.1f GiB), driver "
           "CUDA %d.%d, allocation granularity %zu KiB", ordinal,
           cb->info.name, major, minor, (double)total / (1ull << 30),
           cb->driver_version / 1000, cb->driver_version % 1000 / 10,
           gran >> 10);
  *out = &cb->b;
  return 0;

out_free:
  free(cb);
  return rc;
}
