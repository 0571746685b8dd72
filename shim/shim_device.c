/*
 * shim_device.c: device enumeration, selection and properties.
 *
 * Everything here is answered locally from the device descriptions the
 * broker sent in HELLO: no round trip.  Attributes travel as CUDA's own
 * cudaDeviceAttr numbers, so cudaDeviceProp is filled field by field for
 * the layout this library is compiled against, never copied as a blob.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "shim.h"

static cudaError_t fail(struct shim_thread *t, cudaError_t e)
{
  if (t && e != cudaSuccess)
    t->last_error = e;
  return e;
}

/* No broker or no machine: the error every device query gives. */
static cudaError_t no_device(void)
{
  if (shim_proc.connected && shim_proc.cli.ndev > 0)
    return cudaSuccess;
  return shim_proc.init_err ? shim_proc.init_err : cudaErrorNoDevice;
}

/* The description of device, or the error a query about it gives. */
static cudaError_t devinfo(int device, const struct tr_devinfo **d)
{
  cudaError_t e = no_device();

  if (e != cudaSuccess)
    return e;
  if (!shim_valid_device(device))
    return cudaErrorInvalidDevice;
  *d = &shim_proc.cli.dev[device];
  return cudaSuccess;
}

cudaError_t cudaGetDeviceCount(int *count)
{
  struct shim_thread *t = shim_self();

  if (!count)
    return fail(t, cudaErrorInvalidValue);
  if (no_device() != cudaSuccess) {
    *count = 0;
    return fail(t, no_device());
  }
  *count = (int)shim_proc.cli.ndev;
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int *device)
{
  struct shim_thread *t = shim_self();

  if (!device)
    return fail(t, cudaErrorInvalidValue);
  if (!t)
    return cudaErrorMemoryAllocation;
  if (no_device() != cudaSuccess)
    return fail(t, no_device());
  *device = t->device;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device)
{
  struct shim_thread *t = shim_self();

  if (!t)
    return cudaErrorMemoryAllocation;
  if (no_device() != cudaSuccess)
    return fail(t, no_device());
  if (!shim_valid_device(device))
    return fail(t, cudaErrorInvalidDevice);
  t->device = device;
  return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int *version)
{
  if (!version)
    return fail(shim_self(), cudaErrorInvalidValue);
  *version = CUDART_VERSION;
  return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int *version)
{
  if (!version)
    return fail(shim_self(), cudaErrorInvalidValue);
  /* The "driver" the program talks to is tremote, which speaks this
     runtime's version; the remote driver's own version is reported by
     tremote-smi.  0 would mean "no driver" to the program. */
  *version = CUDART_VERSION;
  return cudaSuccess;
}


cudaError_t cudaDeviceGetAttribute(int *value, enum cudaDeviceAttr attr,
                                   int device)
{
  struct shim_thread *t = shim_self();
  const struct tr_devinfo *d;
  int32_t v;

  cudaError_t e;

  if (!value)
    return fail(t, cudaErrorInvalidValue);
  e = devinfo(device, &d);
  if (e != cudaSuccess)
    return fail(t, e);
  if (tr_devinfo_attr(d, (uint32_t)attr, &v) < 0)
    return fail(t, cudaErrorInvalidValue);
  *value = v;
  return cudaSuccess;
}

/* Integer fields of cudaDeviceProp and the attribute that fills each. */
static const struct {
  size_t off;
  unsigned char is_size_t;
  enum cudaDeviceAttr attr;
} prop_map[] = {
#define P(field, attr) {offsetof(struct cudaDeviceProp, field), 0, attr}
#define PZ(field, attr) {offsetof(struct cudaDeviceProp, field), 1, attr}
  PZ(sharedMemPerBlock, cudaDevAttrMaxSharedMemoryPerBlock),
  P(regsPerBlock, cudaDevAttrMaxRegistersPerBlock),
  P(warpSize, cudaDevAttrWarpSize),
  PZ(memPitch, cudaDevAttrMaxPitch),
  P(maxThreadsPerBlock, cudaDevAttrMaxThreadsPerBlock),
  P(maxThreadsDim[0], cudaDevAttrMaxBlockDimX),
  P(maxThreadsDim[1], cudaDevAttrMaxBlockDimY),
  P(maxThreadsDim[2], cudaDevAttrMaxBlockDimZ),
  P(maxGridSize[0], cudaDevAttrMaxGridDimX),
  P(maxGridSize[1], cudaDevAttrMaxGridDimY),
  P(maxGridSize[2], cudaDevAttrMaxGridDimZ),
  PZ(totalConstMem, cudaDevAttrTotalConstantMemory),
  P(major, cudaDevAttrComputeCapabilityMajor),
  P(minor, cudaDevAttrComputeCapabilityMinor),
  PZ(textureAlignment, cudaDevAttrTextureAlignment),
  PZ(texturePitchAlignment, cudaDevAttrTexturePitchAlignment),
  P(multiProcessorCount, cudaDevAttrMultiProcessorCount),
  P(integrated, cudaDevAttrIntegrated),
  P(canMapHostMemory, cudaDevAttrCanMapHostMemory),
  PZ(surfaceAlignment, cudaDevAttrSurfaceAlignment),
  P(concurrentKernels, cudaDevAttrConcurrentKernels),
  P(ECCEnabled, cudaDevAttrEccEnabled),
  P(pciBusID, cudaDevAttrPciBusId),
  P(pciDeviceID, cudaDevAttrPciDeviceId),
  P(pciDomainID, cudaDevAttrPciDomainId),
  P(tccDriver, cudaDevAttrTccDriver),
  P(asyncEngineCount, cudaDevAttrAsyncEngineCount),
  P(unifiedAddressing, cudaDevAttrUnifiedAddressing),
  P(memoryBusWidth, cudaDevAttrGlobalMemoryBusWidth),
  P(l2CacheSize, cudaDevAttrL2CacheSize),
  P(persistingL2CacheMaxSize, cudaDevAttrMaxPersistingL2CacheSize),
  P(maxThreadsPerMultiProcessor, cudaDevAttrMaxThreadsPerMultiProcessor),
  P(streamPrioritiesSupported, cudaDevAttrStreamPrioritiesSupported),
  P(globalL1CacheSupported, cudaDevAttrGlobalL1CacheSupported),
  P(localL1CacheSupported, cudaDevAttrLocalL1CacheSupported),
  PZ(sharedMemPerMultiprocessor, cudaDevAttrMaxSharedMemoryPerMultiprocessor),
  P(regsPerMultiprocessor, cudaDevAttrMaxRegistersPerMultiprocessor),
  P(managedMemory, cudaDevAttrManagedMemory),
  P(isMultiGpuBoard, cudaDevAttrIsMultiGpuBoard),
  P(multiGpuBoardGroupID, cudaDevAttrMultiGpuBoardGroupID),
  P(hostNativeAtomicSupported, cudaDevAttrHostNativeAtomicSupported),
  P(pageableMemoryAccess, cudaDevAttrPageableMemoryAccess),
  P(concurrentManagedAccess, cudaDevAttrConcurrentManagedAccess),
  P(computePreemptionSupported, cudaDevAttrComputePreemptionSupported),
  P(canUseHostPointerForRegisteredMem,
    cudaDevAttrCanUseHostPointerForRegisteredMem),
  P(cooperativeLaunch, cudaDevAttrCooperativeLaunch),
  PZ(sharedMemPerBlockOptin, cudaDevAttrMaxSharedMemoryPerBlockOptin),
  P(pageableMemoryAccessUsesHostPageTables,
    cudaDevAttrPageableMemoryAccessUsesHostPageTables),
  P(directManagedMemAccessFromHost, cudaDevAttrDirectManagedMemAccessFromHost),
  P(maxBlocksPerMultiProcessor, cudaDevAttrMaxBlocksPerMultiprocessor),
  P(accessPolicyMaxWindowSize, cudaDevAttrMaxAccessPolicyWindowSize),
  PZ(reservedSharedMemPerBlock, cudaDevAttrReservedSharedMemoryPerBlock),
  P(hostRegisterSupported, cudaDevAttrHostRegisterSupported),
  P(sparseCudaArraySupported, cudaDevAttrSparseCudaArraySupported),
  P(hostRegisterReadOnlySupported, cudaDevAttrHostRegisterReadOnlySupported),
  P(timelineSemaphoreInteropSupported,
    cudaDevAttrTimelineSemaphoreInteropSupported),
  P(memoryPoolsSupported, cudaDevAttrMemoryPoolsSupported),
  P(gpuDirectRDMASupported, cudaDevAttrGPUDirectRDMASupported),
  P(clusterLaunch, cudaDevAttrClusterLaunch),
#undef P
#undef PZ
};

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device)
{
  struct shim_thread *t = shim_self();
  const struct tr_devinfo *d;
  int32_t v;

  cudaError_t e;

  if (!prop)
    return fail(t, cudaErrorInvalidValue);
  e = devinfo(device, &d);
  if (e != cudaSuccess)
    return fail(t, e);
  memset(prop, 0, sizeof(*prop));
  snprintf(prop->name, sizeof(prop->name), "%s", d->name);
  memcpy(&prop->uuid, d->uuid, sizeof(prop->uuid));
  prop->totalGlobalMem = d->total_mem;
  for (size_t i = 0; i < sizeof(prop_map) / sizeof(prop_map[0]); i++) {
    if (tr_devinfo_attr(d, (uint32_t)prop_map[i].attr, &v) < 0)
      continue;
    if (prop_map[i].is_size_t) {
      size_t z = (size_t)(uint32_t)v;
      memcpy((char *)prop + prop_map[i].off, &z, sizeof(z));
    } else {
      memcpy((char *)prop + prop_map[i].off, &v, sizeof(v));
    }
  }
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);

  if (e != cudaSuccess)
    return fail(t, e);
  e = shim_cuda_error(t, shim_device_output(t, t->device, TR_OP_SYNCHRONIZE));
  shim_stream_wait_callbacks(); /* host functions are the device's work */
  return e;
}
