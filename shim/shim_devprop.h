/*
 * shim_devprop.h: filling a cudaDeviceProp, of CUDA 13's layout or CUDA
 * 12's, from the device description the broker sent in HELLO.
 *
 * The two layouts share most members but at other offsets (CUDA 13
 * dropped some and moved the rest), so neither can be copied into the
 * other.  Both are filled from the same source instead: the description's
 * attributes, CUDA's own cudaDeviceAttr numbers, one member at a time,
 * through a table of (offset, attribute) built for each layout from the
 * list below.
 */
#ifndef SHIM_DEVPROP_H
#define SHIM_DEVPROP_H

#include <stddef.h>

#include <cuda_runtime_api.h>

#include "client.h"

/*
 * The integer members of cudaDeviceProp that CUDA 12 and CUDA 13 both
 * have, each with the attribute that fills it: P for an int, PZ for a
 * size_t.  A layout's own members are added by its table (shim_abi12.c).
 */
#define SHIM_DEVPROP_COMMON(P, PZ)                                             \
  PZ(sharedMemPerBlock, cudaDevAttrMaxSharedMemoryPerBlock)                    \
  P(regsPerBlock, cudaDevAttrMaxRegistersPerBlock)                             \
  P(warpSize, cudaDevAttrWarpSize)                                             \
  PZ(memPitch, cudaDevAttrMaxPitch)                                            \
  P(maxThreadsPerBlock, cudaDevAttrMaxThreadsPerBlock)                         \
  P(maxThreadsDim[0], cudaDevAttrMaxBlockDimX)                                 \
  P(maxThreadsDim[1], cudaDevAttrMaxBlockDimY)                                 \
  P(maxThreadsDim[2], cudaDevAttrMaxBlockDimZ)                                 \
  P(maxGridSize[0], cudaDevAttrMaxGridDimX)                                    \
  P(maxGridSize[1], cudaDevAttrMaxGridDimY)                                    \
  P(maxGridSize[2], cudaDevAttrMaxGridDimZ)                                    \
  PZ(totalConstMem, cudaDevAttrTotalConstantMemory)                            \
  P(major, cudaDevAttrComputeCapabilityMajor)                                  \
  P(minor, cudaDevAttrComputeCapabilityMinor)                                  \
  PZ(textureAlignment, cudaDevAttrTextureAlignment)                            \
  PZ(texturePitchAlignment, cudaDevAttrTexturePitchAlignment)                  \
  P(multiProcessorCount, cudaDevAttrMultiProcessorCount)                       \
  P(integrated, cudaDevAttrIntegrated)                                         \
  P(canMapHostMemory, cudaDevAttrCanMapHostMemory)                             \
  PZ(surfaceAlignment, cudaDevAttrSurfaceAlignment)                            \
  P(concurrentKernels, cudaDevAttrConcurrentKernels)                           \
  P(ECCEnabled, cudaDevAttrEccEnabled)                                         \
  P(pciBusID, cudaDevAttrPciBusId)                                             \
  P(pciDeviceID, cudaDevAttrPciDeviceId)                                       \
  P(pciDomainID, cudaDevAttrPciDomainId)                                       \
  P(tccDriver, cudaDevAttrTccDriver)                                           \
  P(asyncEngineCount, cudaDevAttrAsyncEngineCount)                             \
  P(unifiedAddressing, cudaDevAttrUnifiedAddressing)                           \
  P(memoryBusWidth, cudaDevAttrGlobalMemoryBusWidth)                           \
  P(l2CacheSize, cudaDevAttrL2CacheSize)                                       \
  P(persistingL2CacheMaxSize, cudaDevAttrMaxPersistingL2CacheSize)             \
  P(maxThreadsPerMultiProcessor, cudaDevAttrMaxThreadsPerMultiProcessor)       \
  P(streamPrioritiesSupported, cudaDevAttrStreamPrioritiesSupported)           \
  P(globalL1CacheSupported, cudaDevAttrGlobalL1CacheSupported)                 \
  P(localL1CacheSupported, cudaDevAttrLocalL1CacheSupported)                   \
  PZ(sharedMemPerMultiprocessor, cudaDevAttrMaxSharedMemoryPerMultiprocessor)  \
  P(regsPerMultiprocessor, cudaDevAttrMaxRegistersPerMultiprocessor)           \
  P(managedMemory, cudaDevAttrManagedMemory)                                   \
  P(isMultiGpuBoard, cudaDevAttrIsMultiGpuBoard)                               \
  P(multiGpuBoardGroupID, cudaDevAttrMultiGpuBoardGroupID)                     \
  P(hostNativeAtomicSupported, cudaDevAttrHostNativeAtomicSupported)           \
  P(pageableMemoryAccess, cudaDevAttrPageableMemoryAccess)                     \
  P(concurrentManagedAccess, cudaDevAttrConcurrentManagedAccess)               \
  P(computePreemptionSupported, cudaDevAttrComputePreemptionSupported)         \
  P(canUseHostPointerForRegisteredMem,                                         \
    cudaDevAttrCanUseHostPointerForRegisteredMem)                              \
  P(cooperativeLaunch, cudaDevAttrCooperativeLaunch)                           \
  PZ(sharedMemPerBlockOptin, cudaDevAttrMaxSharedMemoryPerBlockOptin)          \
  P(pageableMemoryAccessUsesHostPageTables,                                    \
    cudaDevAttrPageableMemoryAccessUsesHostPageTables)                         \
  P(directManagedMemAccessFromHost, cudaDevAttrDirectManagedMemAccessFromHost) \
  P(maxBlocksPerMultiProcessor, cudaDevAttrMaxBlocksPerMultiprocessor)         \
  P(accessPolicyMaxWindowSize, cudaDevAttrMaxAccessPolicyWindowSize)           \
  PZ(reservedSharedMemPerBlock, cudaDevAttrReservedSharedMemoryPerBlock)       \
  P(hostRegisterSupported, cudaDevAttrHostRegisterSupported)                   \
  P(sparseCudaArraySupported, cudaDevAttrSparseCudaArraySupported)             \
  P(hostRegisterReadOnlySupported, cudaDevAttrHostRegisterReadOnlySupported)   \
  P(timelineSemaphoreInteropSupported,                                         \
    cudaDevAttrTimelineSemaphoreInteropSupported)                              \
  P(memoryPoolsSupported, cudaDevAttrMemoryPoolsSupported)                     \
  P(gpuDirectRDMASupported, cudaDevAttrGPUDirectRDMASupported)                 \
  P(clusterLaunch, cudaDevAttrClusterLaunch)

/* One integer member of some layout: where it is, how wide, and the
   attribute (a cudaDeviceAttr number) that fills it. */
struct shim_prop_field {
  size_t off;
  unsigned char is_size_t;
  int attr;
};

/*
 * The description of device, or the error a query about it gives
 * (cudaErrorNoDevice or the connection's error, cudaErrorInvalidDevice).
 * *d stays owned by shim_proc.
 */
cudaError_t shim_devinfo(int device, const struct tr_devinfo **d);

/*
 * Fill prop, a cudaDeviceProp of some layout that the caller has zeroed:
 * name, uuid and totalGlobalMem at the offsets given, then every member
 * of map[0..n) whose attribute d has (the others stay 0, as for an
 * attribute the device does not report).
 */
void shim_prop_fill(void *prop, const struct tr_devinfo *d,
                    size_t name_off, size_t name_len, size_t uuid_off,
                    size_t mem_off, const struct shim_prop_field *map,
                    size_t n);

#endif /* SHIM_DEVPROP_H */
