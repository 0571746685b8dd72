/*
 * shim_pure.c - CUDA runtime exports the shim answers on its own, and the
 * exports that do not return cudaError_t and so cannot be generated stubs.
 *
 * Three kinds live here:
 *
 *  - cudaCreateChannelDesc: pure; it only packs its arguments.
 *
 *  - the doors to the real driver: cudaGetExportTable (NVIDIA's private
 *    tables, used by cuBLAS and friends), cudaGetDriverEntryPoint* (cu*
 *    function pointers) and __cudaGetProcAddress.  Handing out anything
 *    real would let a program call the local driver behind tremote's back,
 *    so they answer "not found" and give no pointer, ever.
 *
 *  - registration hooks nvcc-generated code calls from static initialisers
 *    that tremote does not carry yet (managed and host variables, unified
 *    tables) and __cudaLaunchKernel_ptsz.  They have the exact signatures
 *    of libcudart.so.13 (see the prototypes below for where each comes
 *    from) and do nothing but say once that they are not supported.
 *
 * Every name defined here is listed in implemented.list.
 */
#include <stddef.h>
#include <stdatomic.h>

#include <cuda_runtime_api.h>

#include "shim_errstate.h"

/*
 * The _ptsz twins of the entry-point calls are declared by
 * cuda_runtime_api.h only when CUDA_API_PER_THREAD_DEFAULT_STREAM renames
 * the plain ones; these are those declarations.
 */
cudaError_t cudaGetDriverEntryPoint_ptsz(const char *symbol, void **funcPtr,
					 unsigned long long flags,
					 enum cudaDriverEntryPointQueryResult *driverStatus);
cudaError_t cudaGetDriverEntryPointByVersion_ptsz(const char *symbol, void **funcPtr,
						  unsigned int cudaVersion,
						  unsigned long long flags,
						  enum cudaDriverEntryPointQueryResult *driverStatus);

/*
 * The hidden registration interface.  crt/host_runtime.h and
 * crt/device_functions.h declare the first two, for C++ only; the last
 * three appear in no header: their shapes come from the callers in
 * public interposers (Lupine/SCUDA) and agree with libcudart.so.13's own
 * code (argument registers used, nothing returned that callers read).
 * __cudaGetProcAddress in libcudart.so.13 is `xor eax,eax; ret`: it takes
 * nothing and returns 0.
 */
void __cudaRegisterManagedVar(void **fatCubinHandle, void **hostVarPtrAddress,
			      char *deviceAddress, const char *deviceName,
			      int ext, size_t size, int constant, int global);
cudaError_t __cudaLaunchKernel_ptsz(cudaKernel_t kernel, dim3 gridDim, dim3 blockDim,
				    void **args, size_t sharedMem, cudaStream_t stream);
void __cudaRegisterHostVar(void **fatCubinHandle, const char *deviceName,
			   char *hostVar, size_t size);
void __cudaRegisterUnifiedTable(void **fatCubinHandle, void *functionTable,
				size_t functionWindowSize, void *dataTable,
				size_t dataWindowSize);
void *__cudaGetProcAddress(void);

struct cudaChannelFormatDesc cudaCreateChannelDesc(int x, int y, int z, int w,
						   enum cudaChannelFormatKind f)
{
	/*
	 * libcudart checks nothing here either; the struct is 20 bytes, so
	 * it is returned through the caller's hidden pointer, which a
	 * generated `int NAME(void)` stub would never have filled.
	 */
	struct cudaChannelFormatDesc desc = { .x = x, .y = y, .z = z, .w = w, .f = f };

	return desc;
}

/* Clear what the caller will read, then refuse: see the top of the file. */
static cudaError_t no_entry_point(atomic_int *once, const char *name, void **funcPtr,
				  enum cudaDriverEntryPointQueryResult *driverStatus)
{
	if (funcPtr)
		*funcPtr = NULL;
	if (driverStatus)
		*driverStatus = cudaDriverEntryPointSymbolNotFound;
	return (cudaError_t)shim_unsupported(once, name);
}

cudaError_t cudaGetDriverEntryPoint(const char *symbol, void **funcPtr,
				    unsigned long long flags,
				    enum cudaDriverEntryPointQueryResult *driverStatus)
{
	static atomic_int once;

	return no_entry_point(&once, "cudaGetDriverEntryPoint", funcPtr, driverStatus);
}

cudaError_t cudaGetDriverEntryPoint_ptsz(const char *symbol, void **funcPtr,
					 unsigned long long flags,
					 enum cudaDriverEntryPointQueryResult *driverStatus)
{
	static atomic_int once;

	return no_entry_point(&once, "cudaGetDriverEntryPoint_ptsz", funcPtr, driverStatus);
}

cudaError_t cudaGetDriverEntryPointByVersion(const char *symbol, void **funcPtr,
					     unsigned int cudaVersion,
					     unsigned long long flags,
					     enum cudaDriverEntryPointQueryResult *driverStatus)
{
	static atomic_int once;

	return no_entry_point(&once, "cudaGetDriverEntryPointByVersion", funcPtr,
			      driverStatus);
}

cudaError_t cudaGetDriverEntryPointByVersion_ptsz(const char *symbol, void **funcPtr,
						  unsigned int cudaVersion,
						  unsigned long long flags,
						  enum cudaDriverEntryPointQueryResult *driverStatus)
{
	static atomic_int once;

	return no_entry_point(&once, "cudaGetDriverEntryPointByVersion_ptsz", funcPtr,
			      driverStatus);
}

cudaError_t cudaGetExportTable(const void **ppExportTable, const cudaUUID_t *pExportTableId)
{
	static atomic_int once;

	if (ppExportTable)
		*ppExportTable = NULL;
	return (cudaError_t)shim_unsupported(&once, "cudaGetExportTable");
}

void *__cudaGetProcAddress(void)
{
	/*
	 * The real one does nothing and returns 0, so no caller can rely on
	 * it; 0 is also the safe answer whether the caller reads it as a
	 * status (success, nothing written) or as a pointer (NULL).  Silent,
	 * like the original.
	 */
	return NULL;
}

void __cudaRegisterManagedVar(void **fatCubinHandle, void **hostVarPtrAddress,
			      char *deviceAddress, const char *deviceName,
			      int ext, size_t size, int constant, int global)
{
	static atomic_int once;

	/* *hostVarPtrAddress stays as the program set it: nothing to point at. */
	shim_warn_unsupported(&once, "__cudaRegisterManagedVar");
}

void __cudaRegisterHostVar(void **fatCubinHandle, const char *deviceName,
			   char *hostVar, size_t size)
{
	static atomic_int once;

	shim_warn_unsupported(&once, "__cudaRegisterHostVar");
}

void __cudaRegisterUnifiedTable(void **fatCubinHandle, void *functionTable,
				size_t functionWindowSize, void *dataTable,
				size_t dataWindowSize)
{
	static atomic_int once;

	shim_warn_unsupported(&once, "__cudaRegisterUnifiedTable");
}

cudaError_t __cudaLaunchKernel_ptsz(cudaKernel_t kernel, dim3 gridDim, dim3 blockDim,
				    void **args, size_t sharedMem, cudaStream_t stream)
{
	static atomic_int once;

	/*
	 * Returns cudaError_t, so a generated stub would do; it is written out
	 * because it travels with __cudaLaunchKernel (shim_core), and whoever
	 * implements per-thread default streams moves it there.
	 */
	return (cudaError_t)shim_unsupported(&once, "__cudaLaunchKernel_ptsz");
}
