/*
 * Stand-in for <vdpau/vdpau.h>, used only by the build-time stub type check
 * (shim_stubcheck*.c, see gen_exports.sh) on machines without libvdpau-dev.
 * Searched after the system directories, so the real header wins.  The
 * types are those of vdpau.h; cuda_vdpau_interop.h needs only these.
 */
#ifndef TR_COMPAT_VDPAU_VDPAU_H
#define TR_COMPAT_VDPAU_VDPAU_H
#include <stdint.h>
typedef uint32_t VdpDevice;
typedef uint32_t VdpFuncId;
typedef uint32_t VdpVideoSurface;
typedef uint32_t VdpOutputSurface;
typedef int VdpStatus;
typedef VdpStatus VdpGetProcAddress(VdpDevice device, VdpFuncId function_id,
				    void **function_pointer);
#endif
