/*
 * shim_abi12.c: the CUDA 12 functions the shim implements itself.
 *
 * A program linked against libcudart.so.12 calls NAME@libcudart.so.12.
 * Most of those names mean what CUDA 13's do, and gen_exports.sh makes
 * them jump to CUDA 13's functions.  The ones here are the rest that the
 * shim supports: CUDA 13 changed their ABI (a struct's layout, a
 * parameter, a number the program is told) or dropped the name.  Each is
 * a thin translation into a CUDA 13 call of this library, so that the
 * behaviour, and its errors, are written once.  shim/cudart12.exports says
 * why each name differs; shim/implemented12.list lists the names here.
 *
 * Every function is shim12_NAME, bound to NAME@libcudart.so.12 by
 * SHIM12_OWN or SHIM12_ONLY (shim_abi12.h).  They are global so that the
 * versioned name can be exported; the version script keeps shim12_NAME
 * itself local.
 */
#include <stddef.h>
#include <string.h>

#include "shim.h"
#include "shim_abi12.h"
#include "shim_devprop.h"

/* CUDA 13's struct ends with reserved space CUDA 12's does not have. */
_Static_assert(offsetof(struct cudaPointerAttributes, reserved) ==
                   SHIM12_POINTER_ATTRIBUTES_SIZE,
               "CUDA 12's cudaPointerAttributes is CUDA 13's without reserved");
_Static_assert(SHIM12_DEVICE_PROP_V1_SIZE <= sizeof(struct shim12_device_prop),
               "the CUDA 11 prefix is shorter than CUDA 12's struct");

/* ---- versions and devices ------------------------------------------------- */

cudaError_t shim12_cudaRuntimeGetVersion(int *version);
SHIM12_OWN(cudaRuntimeGetVersion);
cudaError_t shim12_cudaRuntimeGetVersion(int *version)
{
  if (!version)
    return shim_fail(shim_self(), cudaErrorInvalidValue);
  *version = SHIM12_CUDART_VERSION;
  return cudaSuccess;
}

/* CUDA 12's cudaDeviceProp: the members both versions have (one list,
   shim_devprop.h), then the ones CUDA 13 dropped, from the attributes that
   still carry them (cudaDevAttrCooperativeMultiDeviceLaunch is not one of
   them: see shim12_cudaDeviceGetAttribute). */
static const struct shim_prop_field prop12_map[] = {
#define P(field, attr) {offsetof(struct shim12_device_prop, field), 0, attr},
#define PZ(field, attr) {offsetof(struct shim12_device_prop, field), 1, attr},
  SHIM_DEVPROP_COMMON(P, PZ)
  P(clockRate, cudaDevAttrClockRate)
  P(deviceOverlap, cudaDevAttrGpuOverlap)
  P(kernelExecTimeoutEnabled, cudaDevAttrKernelExecTimeout)
  P(computeMode, cudaDevAttrComputeMode)
  P(maxTexture1DLinear, cudaDevAttrMaxTexture1DLinearWidth)
  P(memoryClockRate, cudaDevAttrMemoryClockRate)
  P(singleToDoublePrecisionPerfRatio,
    cudaDevAttrSingleToDoublePrecisionPerfRatio)
#undef P
#undef PZ
};

/* Fill p, CUDA 12's layout, for device; the CUDA 12 error otherwise. */
static cudaError_t props12(struct shim12_device_prop *p, int device)
{
  const struct tr_devinfo *d;
  cudaError_t e = shim_devinfo(device, &d);

  if (e != cudaSuccess)
    return e;
  memset(p, 0, sizeof(*p));
  shim_prop_fill(p, d, offsetof(struct shim12_device_prop, name),
                 sizeof(p->name), offsetof(struct shim12_device_prop, uuid),
                 offsetof(struct shim12_device_prop, totalGlobalMem),
                 prop12_map, sizeof(prop12_map) / sizeof(prop12_map[0]));
  return cudaSuccess;
}

/* What the CUDA 12 headers call cudaGetDeviceProperties. */
cudaError_t shim12_cudaGetDeviceProperties_v2(struct shim12_device_prop *prop,
                                              int device);
SHIM12_ONLY(cudaGetDeviceProperties_v2);
cudaError_t shim12_cudaGetDeviceProperties_v2(struct shim12_device_prop *prop,
                                              int device)
{
  struct shim_thread *t = shim_self();

  if (!prop)
    return shim_fail(t, cudaErrorInvalidValue);
  return shim_fail(t, props12(prop, device));
}

/* The plain name, for callers that look it up: as libcudart.so.12, it
   writes only the first SHIM12_DEVICE_PROP_V1_SIZE bytes (shim_abi12.h). */
cudaError_t shim12_cudaGetDeviceProperties(void *prop, int device);
SHIM12_OWN(cudaGetDeviceProperties);
cudaError_t shim12_cudaGetDeviceProperties(void *prop, int device)
{
  struct shim_thread *t = shim_self();
  struct shim12_device_prop p;
  cudaError_t e;

  if (!prop)
    return shim_fail(t, cudaErrorInvalidValue);
  e = props12(&p, device);
  if (e != cudaSuccess)
    return shim_fail(t, e);
  memcpy(prop, &p, SHIM12_DEVICE_PROP_V1_SIZE);
  return cudaSuccess;
}

/* cudaChooseDevice reads only the compute capability of what it is given. */
cudaError_t shim12_cudaChooseDevice(int *device,
                                    const struct shim12_device_prop *prop);
SHIM12_OWN(cudaChooseDevice);
cudaError_t shim12_cudaChooseDevice(int *device,
                                    const struct shim12_device_prop *prop)
{
  struct cudaDeviceProp p13;

  if (!prop)
    return cudaChooseDevice(device, NULL); /* its error, recorded there */
  memset(&p13, 0, sizeof(p13));
  p13.major = prop->major;
  p13.minor = prop->minor;
  return cudaChooseDevice(device, &p13);
}

/*
 * cudaDeviceAttr: CUDA 13 kept every number of CUDA 12's but one,
 * cudaDevAttrCooperativeMultiDeviceLaunch, which it reserved.  Its answer
 * is 0: the shim cannot launch on several devices at once
 * (cudaLaunchCooperativeKernelMultiDevice returns cudaErrorNotSupported).
 */
cudaError_t shim12_cudaDeviceGetAttribute(int *value, int attr, int device);
SHIM12_OWN(cudaDeviceGetAttribute);
cudaError_t shim12_cudaDeviceGetAttribute(int *value, int attr, int device)
{
  struct shim_thread *t = shim_self();
  const struct tr_devinfo *d;
  cudaError_t e;

  if (attr != SHIM12_DEV_ATTR_COOPERATIVE_MULTI_DEVICE_LAUNCH)
    return cudaDeviceGetAttribute(value, (enum cudaDeviceAttr)attr, device);
  if (!value)
    return shim_fail(t, cudaErrorInvalidValue);
  e = shim_devinfo(device, &d);
  if (e != cudaSuccess)
    return shim_fail(t, e);
  *value = 0;
  return cudaSuccess;
}

/* ---- memory ---------------------------------------------------------------- */

/* CUDA 12's struct is CUDA 13's without the reserved tail, which CUDA
   13's function clears: answer into a whole one, hand back the rest. */
cudaError_t shim12_cudaPointerGetAttributes(void *attributes, const void *ptr);
SHIM12_OWN(cudaPointerGetAttributes);
cudaError_t shim12_cudaPointerGetAttributes(void *attributes, const void *ptr)
{
  struct cudaPointerAttributes a;
  cudaError_t e;

  if (!attributes)
    return cudaPointerGetAttributes(NULL, ptr); /* its error */
  e = cudaPointerGetAttributes(&a, ptr);
  if (e == cudaSuccess)
    memcpy(attributes, &a, SHIM12_POINTER_ATTRIBUTES_SIZE);
  return e;
}

/*
 * CUDA 12's cudaMemPrefetchAsync names the destination by device ordinal
 * (cudaCpuDeviceId for the host); CUDA 13's by a cudaMemLocation and has
 * flags, as CUDA 12's _v2 had.
 */
static cudaError_t prefetch_location(int device, struct cudaMemLocation *loc)
{
  if (device == cudaCpuDeviceId) {
    loc->type = cudaMemLocationTypeHost;
    loc->id = 0;
    return cudaSuccess;
  }
  if (!shim_valid_device(device))
    return cudaErrorInvalidDevice;
  loc->type = cudaMemLocationTypeDevice;
  loc->id = device;
  return cudaSuccess;
}

cudaError_t cudaMemPrefetchAsync_ptsz(const void *ptr, size_t count,
                                      struct cudaMemLocation location,
                                      unsigned int flags, cudaStream_t stream);

cudaError_t shim12_cudaMemPrefetchAsync(const void *ptr, size_t count,
                                        int device, cudaStream_t stream);
SHIM12_OWN(cudaMemPrefetchAsync);
cudaError_t shim12_cudaMemPrefetchAsync(const void *ptr, size_t count,
                                        int device, cudaStream_t stream)
{
  struct cudaMemLocation loc;
  cudaError_t e = prefetch_location(device, &loc);

  if (e != cudaSuccess)
    return shim_fail(shim_self(), e);
  return cudaMemPrefetchAsync(ptr, count, loc, 0, stream);
}

cudaError_t shim12_cudaMemPrefetchAsync_ptsz(const void *ptr, size_t count,
                                             int device, cudaStream_t stream);
SHIM12_OWN(cudaMemPrefetchAsync_ptsz);
cudaError_t shim12_cudaMemPrefetchAsync_ptsz(const void *ptr, size_t count,
                                             int device, cudaStream_t stream)
{
  struct cudaMemLocation loc;
  cudaError_t e = prefetch_location(device, &loc);

  if (e != cudaSuccess)
    return shim_fail(shim_self(), e);
  return cudaMemPrefetchAsync_ptsz(ptr, count, loc, 0, stream);
}

cudaError_t shim12_cudaMemPrefetchAsync_v2(const void *ptr, size_t count,
                                           struct cudaMemLocation location,
                                           unsigned int flags,
                                           cudaStream_t stream);
SHIM12_ONLY(cudaMemPrefetchAsync_v2);
cudaError_t shim12_cudaMemPrefetchAsync_v2(const void *ptr, size_t count,
                                           struct cudaMemLocation location,
                                           unsigned int flags,
                                           cudaStream_t stream)
{
  return cudaMemPrefetchAsync(ptr, count, location, flags, stream);
}

cudaError_t shim12_cudaMemPrefetchAsync_v2_ptsz(const void *ptr, size_t count,
                                                struct cudaMemLocation location,
                                                unsigned int flags,
                                                cudaStream_t stream);
SHIM12_ONLY(cudaMemPrefetchAsync_v2_ptsz);
cudaError_t shim12_cudaMemPrefetchAsync_v2_ptsz(const void *ptr, size_t count,
                                                struct cudaMemLocation location,
                                                unsigned int flags,
                                                cudaStream_t stream)
{
  return cudaMemPrefetchAsync_ptsz(ptr, count, location, flags, stream);
}

/* ---- managed memory advice: CUDA 12's device number, and its _v2 ---------- */

cudaError_t shim12_cudaMemAdvise(const void *ptr, size_t count,
                                 enum cudaMemoryAdvise advice, int device);
SHIM12_OWN(cudaMemAdvise);
cudaError_t shim12_cudaMemAdvise(const void *ptr, size_t count,
                                 enum cudaMemoryAdvise advice, int device)
{
  struct cudaMemLocation loc = {.type = cudaMemLocationTypeDevice,
                                .id = device};

  if (device == cudaCpuDeviceId)
    loc = (struct cudaMemLocation){.type = cudaMemLocationTypeHost};
  return cudaMemAdvise(ptr, count, advice, loc);
}

cudaError_t shim12_cudaMemAdvise_v2(const void *ptr, size_t count,
                                    enum cudaMemoryAdvise advice,
                                    struct cudaMemLocation location);
SHIM12_ONLY(cudaMemAdvise_v2);
cudaError_t shim12_cudaMemAdvise_v2(const void *ptr, size_t count,
                                    enum cudaMemoryAdvise advice,
                                    struct cudaMemLocation location)
{
  return cudaMemAdvise(ptr, count, advice, location);
}

/* ---- stream capture: CUDA 12's three cudaStreamGetCaptureInfo ------------ */

/* The first: status and id only (CUDA 13 added the graph and the edges). */
cudaError_t shim12_cudaStreamGetCaptureInfo(cudaStream_t stream,
                                            enum cudaStreamCaptureStatus *st,
                                            unsigned long long *id);
SHIM12_OWN(cudaStreamGetCaptureInfo);
cudaError_t shim12_cudaStreamGetCaptureInfo(cudaStream_t stream,
                                            enum cudaStreamCaptureStatus *st,
                                            unsigned long long *id)
{
  return shim_capture_info(stream, st, id, NULL, NULL, NULL, NULL);
}

cudaError_t shim12_cudaStreamGetCaptureInfo_ptsz(
    cudaStream_t stream, enum cudaStreamCaptureStatus *st,
    unsigned long long *id);
SHIM12_OWN(cudaStreamGetCaptureInfo_ptsz);
cudaError_t shim12_cudaStreamGetCaptureInfo_ptsz(
    cudaStream_t stream, enum cudaStreamCaptureStatus *st,
    unsigned long long *id)
{
  return shim_capture_info(stream, st, id, NULL, NULL, NULL, NULL);
}

/* _v2: and the graph and its dependencies, without edge data. */
cudaError_t shim12_cudaStreamGetCaptureInfo_v2(
    cudaStream_t stream, enum cudaStreamCaptureStatus *st,
    unsigned long long *id, cudaGraph_t *graph, const cudaGraphNode_t **deps,
    size_t *ndeps);
SHIM12_ONLY(cudaStreamGetCaptureInfo_v2);
cudaError_t shim12_cudaStreamGetCaptureInfo_v2(
    cudaStream_t stream, enum cudaStreamCaptureStatus *st,
    unsigned long long *id, cudaGraph_t *graph, const cudaGraphNode_t **deps,
    size_t *ndeps)
{
  return shim_capture_info(stream, st, id, graph, deps, NULL, ndeps);
}

cudaError_t shim12_cudaStreamGetCaptureInfo_v2_ptsz(
    cudaStream_t stream, enum cudaStreamCaptureStatus *st,
    unsigned long long *id, cudaGraph_t *graph, const cudaGraphNode_t **deps,
    size_t *ndeps);
SHIM12_ONLY(cudaStreamGetCaptureInfo_v2_ptsz);
cudaError_t shim12_cudaStreamGetCaptureInfo_v2_ptsz(
    cudaStream_t stream, enum cudaStreamCaptureStatus *st,
    unsigned long long *id, cudaGraph_t *graph, const cudaGraphNode_t **deps,
    size_t *ndeps)
{
  return shim_capture_info(stream, st, id, graph, deps, NULL, ndeps);
}

/* _v3: CUDA 13's prototype under another name. */
cudaError_t shim12_cudaStreamGetCaptureInfo_v3(
    cudaStream_t stream, enum cudaStreamCaptureStatus *st,
    unsigned long long *id, cudaGraph_t *graph, const cudaGraphNode_t **deps,
    const cudaGraphEdgeData **edges, size_t *ndeps);
SHIM12_ONLY(cudaStreamGetCaptureInfo_v3);
cudaError_t shim12_cudaStreamGetCaptureInfo_v3(
    cudaStream_t stream, enum cudaStreamCaptureStatus *st,
    unsigned long long *id, cudaGraph_t *graph, const cudaGraphNode_t **deps,
    const cudaGraphEdgeData **edges, size_t *ndeps)
{
  return shim_capture_info(stream, st, id, graph, deps, edges, ndeps);
}

cudaError_t shim12_cudaStreamGetCaptureInfo_v3_ptsz(
    cudaStream_t stream, enum cudaStreamCaptureStatus *st,
    unsigned long long *id, cudaGraph_t *graph, const cudaGraphNode_t **deps,
    const cudaGraphEdgeData **edges, size_t *ndeps);
SHIM12_ONLY(cudaStreamGetCaptureInfo_v3_ptsz);
cudaError_t shim12_cudaStreamGetCaptureInfo_v3_ptsz(
    cudaStream_t stream, enum cudaStreamCaptureStatus *st,
    unsigned long long *id, cudaGraph_t *graph, const cudaGraphNode_t **deps,
    const cudaGraphEdgeData **edges, size_t *ndeps)
{
  return shim_capture_info(stream, st, id, graph, deps, edges, ndeps);
}

/* ---- names CUDA 13 dropped for others of the same prototype --------------- */

/* CUDA 12.8's _v2 is what CUDA 13 calls cudaEventElapsedTime. */
cudaError_t shim12_cudaEventElapsedTime_v2(float *ms, cudaEvent_t start,
                                           cudaEvent_t end);
SHIM12_ONLY(cudaEventElapsedTime_v2);
cudaError_t shim12_cudaEventElapsedTime_v2(float *ms, cudaEvent_t start,
                                           cudaEvent_t end)
{
  return cudaEventElapsedTime(ms, start, end);
}

/* The cudaThread* calls are CUDA 3's names of the cudaDevice* ones. */
cudaError_t shim12_cudaThreadExit(void);
SHIM12_ONLY(cudaThreadExit);
cudaError_t shim12_cudaThreadExit(void)
{
  return cudaDeviceReset();
}

cudaError_t shim12_cudaThreadSynchronize(void);
SHIM12_ONLY(cudaThreadSynchronize);
cudaError_t shim12_cudaThreadSynchronize(void)
{
  return cudaDeviceSynchronize();
}

cudaError_t shim12_cudaThreadSetLimit(enum cudaLimit limit, size_t value);
SHIM12_ONLY(cudaThreadSetLimit);
cudaError_t shim12_cudaThreadSetLimit(enum cudaLimit limit, size_t value)
{
  return cudaDeviceSetLimit(limit, value);
}

cudaError_t shim12_cudaThreadGetLimit(size_t *value, enum cudaLimit limit);
SHIM12_ONLY(cudaThreadGetLimit);
cudaError_t shim12_cudaThreadGetLimit(size_t *value, enum cudaLimit limit)
{
  return cudaDeviceGetLimit(value, limit);
}

cudaError_t shim12_cudaThreadSetCacheConfig(enum cudaFuncCache config);
SHIM12_ONLY(cudaThreadSetCacheConfig);
cudaError_t shim12_cudaThreadSetCacheConfig(enum cudaFuncCache config)
{
  return cudaDeviceSetCacheConfig(config);
}

cudaError_t shim12_cudaThreadGetCacheConfig(enum cudaFuncCache *config);
SHIM12_ONLY(cudaThreadGetCacheConfig);
cudaError_t shim12_cudaThreadGetCacheConfig(enum cudaFuncCache *config)
{
  return cudaDeviceGetCacheConfig(config);
}
