/*
 * cuda_drv.h: the NVIDIA driver API as the cuda backend uses it, loaded at
 * run time with dlopen("libcuda.so.1") so that tremote-gpu-agent builds,
 * links and starts on machines without a driver (CI, the emulated device).
 *
 * Each entry point is resolved by its exact exported name, versioned where
 * the driver has several ABIs for one API name (cuMemGetInfo_v2 is the
 * 64-bit-size one; cuCtxCreate_v2 takes (flags, device), the ABI every
 * driver since CUDA 3.2 exports; CUDA 13's header maps cuCtxCreate to _v4,
 * which older drivers lack).  Naming the version ourselves means the
 * prototype below is the one the symbol has, whatever cuda.h's macros say,
 * and that a driver without it fails at load with the symbol's name
 * instead of misbehaving later.  Streams are passed explicitly
 * (CU_STREAM_PER_THREAD, or a stream created for a priority), so no
 * _ptds/_ptsz variant is needed.
 *
 * The table is an X-macro, CU_DRV_FUNCS(X), X(field, "symbol", (params));
 * fields drop the "cu" prefix so that cuda.h's macros (cuMemGetInfo ->
 * cuMemGetInfo_v2 ...) never rename them.  Every function returns CUresult.
 */
#ifndef AGT_CUDA_DRV_H
#define AGT_CUDA_DRV_H

#include <cuda.h>

#define CU_DRV_FUNCS(X)                                                        \
  X(Init, "cuInit", (unsigned int flags))                                      \
  X(DriverGetVersion, "cuDriverGetVersion", (int *version))                    \
  X(GetErrorName, "cuGetErrorName", (CUresult e, const char **s))              \
  X(GetErrorString, "cuGetErrorString", (CUresult e, const char **s))          \
  X(DeviceGetCount, "cuDeviceGetCount", (int *count))                          \
  X(DeviceGet, "cuDeviceGet", (CUdevice * dev, int ordinal))                   \
  X(DeviceGetName, "cuDeviceGetName", (char *name, int len, CUdevice dev))     \
  X(DeviceTotalMem, "cuDeviceTotalMem_v2", (size_t * bytes, CUdevice dev))     \
  X(DeviceGetUuid, "cuDeviceGetUuid_v2", (CUuuid * uuid, CUdevice dev))        \
  X(DeviceGetAttribute, "cuDeviceGetAttribute",                                \
    (int *v, CUdevice_attribute a, CUdevice dev))                              \
  X(DevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain",                        \
    (CUcontext * ctx, CUdevice dev))                                           \
  X(DevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2", (CUdevice dev))   \
  X(DevicePrimaryCtxSetFlags, "cuDevicePrimaryCtxSetFlags_v2",                 \
    (CUdevice dev, unsigned int flags))                                        \
  X(CtxCreate, "cuCtxCreate_v2",                                               \
    (CUcontext * ctx, unsigned int flags, CUdevice dev))                       \
  X(CtxDestroy, "cuCtxDestroy_v2", (CUcontext ctx))                            \
  X(CtxSetCurrent, "cuCtxSetCurrent", (CUcontext ctx))                         \
  X(CtxPopCurrent, "cuCtxPopCurrent_v2", (CUcontext * ctx))                    \
  X(CtxSetLimit, "cuCtxSetLimit", (CUlimit limit, size_t value))               \
  X(MemGetInfo, "cuMemGetInfo_v2", (size_t * free_b, size_t *total))          \
  X(MemAddressReserve, "cuMemAddressReserve",                                  \
    (CUdeviceptr * ptr, size_t size, size_t align, CUdeviceptr addr,           \
     unsigned long long flags))                                                \
  X(MemAddressFree, "cuMemAddressFree", (CUdeviceptr ptr, size_t size))        \
  X(MemGetAllocationGranularity, "cuMemGetAllocationGranularity",              \
    (size_t * gran, const CUmemAllocationProp *prop,                           \
     CUmemAllocationGranularity_flags option))                                 \
  X(MemCreate, "cuMemCreate",                                                  \
    (CUmemGenericAllocationHandle * h, size_t size,                            \
     const CUmemAllocationProp *prop, unsigned long long flags))               \
  X(MemRelease, "cuMemRelease", (CUmemGenericAllocationHandle h))              \
  X(MemMap, "cuMemMap",                                                        \
    (CUdeviceptr ptr, size_t size, size_t offset,                              \
     CUmemGenericAllocationHandle h, unsigned long long flags))                \
  X(MemUnmap, "cuMemUnmap", (CUdeviceptr ptr, size_t size))                    \
  X(MemSetAccess, "cuMemSetAccess",                                            \
    (CUdeviceptr ptr, size_t size, const CUmemAccessDesc *desc,                \
     size_t count))                                                            \
  X(MemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2",                                   \
    (CUdeviceptr dst, const void *src, size_t n, CUstream s))                  \
  X(MemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2",                                   \
    (void *dst, CUdeviceptr src, size_t n, CUstream s))                        \
  X(MemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2",                                   \
    (CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s))                  \
  X(MemsetD8Async, "cuMemsetD8Async",                                          \
    (CUdeviceptr dst, unsigned char v, size_t n, CUstream s))                  \
  X(StreamSynchronize, "cuStreamSynchronize", (CUstream s))                    \
  X(StreamQuery, "cuStreamQuery", (CUstream s))                                \
  X(StreamCreateWithPriority, "cuStreamCreateWithPriority",                    \
    (CUstream * s, unsigned int flags, int priority))                          \
  X(ModuleLoadDataEx, "cuModuleLoadDataEx",                                    \
    (CUmodule * mod, const void *image, unsigned int nopt, CUjit_option *opt,  \
     void **optval))                                                           \
  X(ModuleUnload, "cuModuleUnload", (CUmodule mod))                            \
  X(ModuleGetFunction, "cuModuleGetFunction",                                  \
    (CUfunction * fn, CUmodule mod, const char *name))                         \
  X(ModuleGetGlobal, "cuModuleGetGlobal_v2",                                   \
    (CUdeviceptr * dptr, size_t *bytes, CUmodule mod, const char *name))       \
  X(FuncGetAttribute, "cuFuncGetAttribute",                                    \
    (int *v, CUfunction_attribute a, CUfunction fn))                           \
  X(FuncSetAttribute, "cuFuncSetAttribute",                                    \
    (CUfunction fn, CUfunction_attribute a, int v))                            \
  X(LaunchKernel, "cuLaunchKernel",                                            \
    (CUfunction fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx,        \
     unsigned by, unsigned bz, unsigned shmem, CUstream s, void **params,      \
     void **extra))

/* Entry points a driver may lack; NULL then, and the backend copes. */
#define CU_DRV_OPTIONAL(X)                                                     \
  X(FuncGetParamInfo, "cuFuncGetParamInfo",                                    \
    (CUfunction fn, size_t index, size_t *offset, size_t *size))               \
  X(MemHostRegister, "cuMemHostRegister_v2",                                   \
    (void *p, size_t bytes, unsigned int flags))                               \
  X(MemHostUnregister, "cuMemHostUnregister", (void *p))                        \
  X(LaunchKernelEx, "cuLaunchKernelEx",                                        \
    (const CUlaunchConfig *config, CUfunction fn, void **params,              \
     void **extra))

struct cu_drv {
  void *lib; /* the dlopen handle; never dlclose()d (see cuda.c) */
#define CU_DRV_FIELD(field, sym, params) CUresult (*field) params;
  CU_DRV_FUNCS(CU_DRV_FIELD)
  CU_DRV_OPTIONAL(CU_DRV_FIELD)
#undef CU_DRV_FIELD
};

#endif /* AGT_CUDA_DRV_H */
