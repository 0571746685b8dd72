/*
 * shim_abi12.h: what the CUDA 12 ABI of libtremote_shim.so needs to know
 * about CUDA 12 that the CUDA 13 headers it is built with do not say.
 *
 * The shim serves programs linked against libcudart.so.12 as well as
 * libcudart.so.13 (docs/ARCHITECTURE.md, "Two runtime ABIs").  Each
 * function libcudart.so.12 exports is listed in shim/cudart12.exports;
 * gen_exports.sh binds the ones whose ABI CUDA 13 kept to CUDA 13's
 * function and stubs the others, except those shim_abi12.c implements for
 * CUDA 12 (shim/implemented12.list).  This header is shared by
 * shim_abi12.c (compiled against CUDA 13's headers) and by the abi12
 * layout test (compiled against the CUDA 12 wheel's headers), which checks
 * every number and offset here against CUDA 12's own definitions.
 *
 * It includes no CUDA header itself: the includer's cuda_runtime_api.h,
 * of either version, provides size_t and cudaUUID_t.
 */
#ifndef SHIM_ABI12_H
#define SHIM_ABI12_H

#include <stddef.h>

/* CUDART_VERSION of the CUDA 12 headers cudart12.exports was made from:
   what cudaRuntimeGetVersion tells a CUDA 12 program. */
#define SHIM12_CUDART_VERSION 12090

/* cudaDevAttrCooperativeMultiDeviceLaunch: CUDA 13 removed it (its number
   is cudaDevAttrReserved96 there). */
#define SHIM12_DEV_ATTR_COOPERATIVE_MULTI_DEVICE_LAUNCH 96

/* sizeof(struct cudaPointerAttributes) in CUDA 12: CUDA 13's is the same
   fields followed by `long reserved[8]`. */
#define SHIM12_POINTER_ATTRIBUTES_SIZE 24

/*
 * How many bytes libcudart.so.12's plain cudaGetDeviceProperties writes.
 * The CUDA 12 headers send programs to cudaGetDeviceProperties_v2 (a
 * #define); the plain symbol stays for callers that look it up by name and
 * fills only the struct of CUDA 11, the first 728 bytes of CUDA 12's (its
 * code in libcudart.so.12 12.9 copies 0x2d8 bytes; _v2 copies 0x30c, every
 * member before reserved).
 */
#define SHIM12_DEVICE_PROP_V1_SIZE 728

/*
 * struct cudaDeviceProp as CUDA 12 lays it out (1032 bytes), one
 * X(type, name, dims) per member, in order.  CUDA 13 dropped clockRate,
 * deviceOverlap, kernelExecTimeoutEnabled, computeMode, maxTexture1DLinear,
 * memoryClockRate, singleToDoublePrecisionPerfRatio and
 * cooperativeMultiDeviceLaunch, added others and moved everything after
 * them, so no field of one can be written through the other.
 */
#define SHIM12_DEVICE_PROP_FIELDS(X)                \
  X(char, name, [256])                              \
  X(cudaUUID_t, uuid, )                             \
  X(char, luid, [8])                                \
  X(unsigned int, luidDeviceNodeMask, )             \
  X(size_t, totalGlobalMem, )                       \
  X(size_t, sharedMemPerBlock, )                    \
  X(int, regsPerBlock, )                            \
  X(int, warpSize, )                                \
  X(size_t, memPitch, )                             \
  X(int, maxThreadsPerBlock, )                      \
  X(int, maxThreadsDim, [3])                        \
  X(int, maxGridSize, [3])                          \
  X(int, clockRate, )                               \
  X(size_t, totalConstMem, )                        \
  X(int, major, )                                   \
  X(int, minor, )                                   \
  X(size_t, textureAlignment, )                     \
  X(size_t, texturePitchAlignment, )                \
  X(int, deviceOverlap, )                           \
  X(int, multiProcessorCount, )                     \
  X(int, kernelExecTimeoutEnabled, )                \
  X(int, integrated, )                              \
  X(int, canMapHostMemory, )                        \
  X(int, computeMode, )                             \
  X(int, maxTexture1D, )                            \
  X(int, maxTexture1DMipmap, )                      \
  X(int, maxTexture1DLinear, )                      \
  X(int, maxTexture2D, [2])                         \
  X(int, maxTexture2DMipmap, [2])                   \
  X(int, maxTexture2DLinear, [3])                   \
  X(int, maxTexture2DGather, [2])                   \
  X(int, maxTexture3D, [3])                         \
  X(int, maxTexture3DAlt, [3])                      \
  X(int, maxTextureCubemap, )                       \
  X(int, maxTexture1DLayered, [2])                  \
  X(int, maxTexture2DLayered, [3])                  \
  X(int, maxTextureCubemapLayered, [2])             \
  X(int, maxSurface1D, )                            \
  X(int, maxSurface2D, [2])                         \
  X(int, maxSurface3D, [3])                         \
  X(int, maxSurface1DLayered, [2])                  \
  X(int, maxSurface2DLayered, [3])                  \
  X(int, maxSurfaceCubemap, )                       \
  X(int, maxSurfaceCubemapLayered, [2])             \
  X(size_t, surfaceAlignment, )                     \
  X(int, concurrentKernels, )                       \
  X(int, ECCEnabled, )                              \
  X(int, pciBusID, )                                \
  X(int, pciDeviceID, )                             \
  X(int, pciDomainID, )                             \
  X(int, tccDriver, )                               \
  X(int, asyncEngineCount, )                        \
  X(int, unifiedAddressing, )                       \
  X(int, memoryClockRate, )                         \
  X(int, memoryBusWidth, )                          \
  X(int, l2CacheSize, )                             \
  X(int, persistingL2CacheMaxSize, )                \
  X(int, maxThreadsPerMultiProcessor, )             \
  X(int, streamPrioritiesSupported, )               \
  X(int, globalL1CacheSupported, )                  \
  X(int, localL1CacheSupported, )                   \
  X(size_t, sharedMemPerMultiprocessor, )           \
  X(int, regsPerMultiprocessor, )                   \
  X(int, managedMemory, )                           \
  X(int, isMultiGpuBoard, )                         \
  X(int, multiGpuBoardGroupID, )                    \
  X(int, hostNativeAtomicSupported, )               \
  X(int, singleToDoublePrecisionPerfRatio, )        \
  X(int, pageableMemoryAccess, )                    \
  X(int, concurrentManagedAccess, )                 \
  X(int, computePreemptionSupported, )              \
  X(int, canUseHostPointerForRegisteredMem, )       \
  X(int, cooperativeLaunch, )                       \
  X(int, cooperativeMultiDeviceLaunch, )            \
  X(size_t, sharedMemPerBlockOptin, )               \
  X(int, pageableMemoryAccessUsesHostPageTables, )  \
  X(int, directManagedMemAccessFromHost, )          \
  X(int, maxBlocksPerMultiProcessor, )              \
  X(int, accessPolicyMaxWindowSize, )               \
  X(size_t, reservedSharedMemPerBlock, )            \
  X(int, hostRegisterSupported, )                   \
  X(int, sparseCudaArraySupported, )                \
  X(int, hostRegisterReadOnlySupported, )           \
  X(int, timelineSemaphoreInteropSupported, )       \
  X(int, memoryPoolsSupported, )                    \
  X(int, gpuDirectRDMASupported, )                  \
  X(unsigned int, gpuDirectRDMAFlushWritesOptions, ) \
  X(int, gpuDirectRDMAWritesOrdering, )             \
  X(unsigned int, memoryPoolSupportedHandleTypes, ) \
  X(int, deferredMappingCudaArraySupported, )       \
  X(int, ipcEventSupported, )                       \
  X(int, clusterLaunch, )                           \
  X(int, unifiedFunctionPointers, )                 \
  X(int, reserved, [63])

struct shim12_device_prop {
#define SHIM12_MEMBER(type, name, dims) type name dims;
  SHIM12_DEVICE_PROP_FIELDS(SHIM12_MEMBER)
#undef SHIM12_MEMBER
};

_Static_assert(sizeof(struct shim12_device_prop) == 1032,
               "CUDA 12's cudaDeviceProp is 1032 bytes");

/*
 * Bind a function of shim_abi12.c to a CUDA 12 symbol.  A function
 * shim12_NAME becomes NAME@libcudart.so.12: SHIM12_OWN for a name CUDA 13
 * exports too (its NAME@@libcudart.so.13 is the default version, so the
 * CUDA 12 one is the other), SHIM12_ONLY for a name only CUDA 12 has
 * (NAME@@libcudart.so.12, as libcudart.so.12 exports it).  A .symver must
 * sit in the object that defines the function.  The name must be listed in
 * shim/implemented12.list, so that gen_exports.sh does not stub it too.
 */
#define SHIM12_OWN(name) \
  __asm__(".symver shim12_" #name ", " #name "@libcudart.so.12")
#define SHIM12_ONLY(name) \
  __asm__(".symver shim12_" #name ", " #name "@@libcudart.so.12")

#endif /* SHIM_ABI12_H */
