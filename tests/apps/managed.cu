// managed.cu: managed memory (issue 5), self-checking; runs natively on a
// GPU as well.  The usage CUDA allows on every device, including those
// without concurrent managed access: the host touches managed memory only
// after a synchronisation.
//   - host writes, a kernel reads and writes, cudaDeviceSynchronize, the
//     host sees the kernel's writes; again after the host changes it;
//   - cudaStreamSynchronize on a created stream and a blocking cudaMemcpy
//     are synchronisation points too;
//   - cudaMemcpy from managed memory to device memory and back;
//   - cudaPointerGetAttributes says cudaMemoryTypeManaged;
//   - cudaMemPrefetchAsync of managed memory is accepted;
//   - cudaMemAdvise of managed memory is accepted, of device memory or
//     with an unknown advice refused (cudaErrorInvalidValue).
#include <cuda_runtime.h>

#include <stdio.h>
#include <stdlib.h>

#include "app_check.h"

__global__ void affine(int *p, int a, int b, int n)
{
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
    p[i] = a * p[i] + b;
}

int main()
{
  const int n = 1 << 20;
  int *m, *d;
  int dev = 0, managed = 0;

  CK(cudaGetDevice(&dev));
  CK(cudaDeviceGetAttribute(&managed, cudaDevAttrManagedMemory, dev));
  EXPECT(managed == 1, "device says no managed memory");
  CK(cudaMallocManaged(&m, n * sizeof(int)));
  for (int i = 0; i < n; i++)
    m[i] = i;
  affine<<<64, 256>>>(m, 2, 1, n);
  CK(cudaGetLastError());
  CK(cudaDeviceSynchronize());
  for (int i = 0; i < n; i++)
    EXPECT(m[i] == 2 * i + 1, "after the first kernel m[%d] = %d", i, m[i]);
  for (int i = 0; i < n; i++)
    m[i] -= 1; // the host changes it: the device must see this
  cudaStream_t s;
  CK(cudaStreamCreate(&s));
  affine<<<64, 256, 0, s>>>(m, 3, 0, n);
  CK(cudaStreamSynchronize(s));
  for (int i = 0; i < n; i++)
    EXPECT(m[i] == 6 * i, "after the second kernel m[%d] = %d", i, m[i]);
  printf("kernels and the host take turns: ok\n");

  // Copies: managed -> device -> kernel -> managed via a blocking copy.
  CK(cudaMalloc(&d, n * sizeof(int)));
  CK(cudaMemcpy(d, m, n * sizeof(int), cudaMemcpyDefault));
  affine<<<64, 256>>>(d, 1, 5, n);
  CK(cudaMemcpy(m, d, n * sizeof(int), cudaMemcpyDefault));
  for (int i = 0; i < n; i++)
    EXPECT(m[i] == 6 * i + 5, "after the copies m[%d] = %d", i, m[i]);
  printf("copies to and from managed memory: ok\n");

  cudaPointerAttributes a;
  CK(cudaPointerGetAttributes(&a, m + 3));
  EXPECT(a.type == cudaMemoryTypeManaged, "pointer type %d", (int)a.type);
  cudaMemLocation loc;
  loc.type = cudaMemLocationTypeDevice;
  loc.id = dev;
  CK(cudaMemPrefetchAsync(m, n * sizeof(int), loc, 0, s));
  CK(cudaStreamSynchronize(s));
  CK(cudaMemAdvise(m, n * sizeof(int), cudaMemAdviseSetReadMostly, loc));
  CK(cudaMemAdvise(m, n * sizeof(int), cudaMemAdviseSetPreferredLocation, loc));
  CK(cudaMemAdvise(m, n * sizeof(int), cudaMemAdviseSetAccessedBy, loc));
  CK(cudaMemAdvise(m, n * sizeof(int), cudaMemAdviseUnsetReadMostly, loc));
  EXPECT(cudaMemAdvise(d, sizeof(int), cudaMemAdviseSetReadMostly, loc) ==
             cudaErrorInvalidValue, "advice about device memory accepted");
  EXPECT(cudaMemAdvise(m, sizeof(int), (enum cudaMemoryAdvise)77, loc) ==
             cudaErrorInvalidValue, "advice 77 accepted");
  (void)cudaGetLastError();

  // An earlier call's error that the synchronisation reports (tremote
  // queues the memset and its error comes back later; CUDA refuses it at
  // once): the kernel's writes still reach the host with that
  // synchronisation, and a cudaFree of managed memory that reports such
  // an error still frees it, so later synchronisations work.
  {
    int *m2;

    CK(cudaMallocManaged(&m2, 64 * sizeof(int)));
    m2[0] = 10;
    (void)cudaMemsetAsync(d + (256 << 20), 0, 64); // 1 GiB past d's end
    affine<<<1, 1>>>(m2, 1, 1, 1);
    (void)cudaDeviceSynchronize();
    (void)cudaGetLastError();
    EXPECT(m2[0] == 11, "after a synchronisation that reported an earlier "
                        "error m2[0] = %d, want 11", m2[0]);
    (void)cudaMemsetAsync(d + (256 << 20), 0, 64, s); // the same on s
    affine<<<1, 1, 0, s>>>(m2, 1, 1, 1);
    (void)cudaStreamSynchronize(s);
    (void)cudaGetLastError();
    EXPECT(m2[0] == 12, "after a stream synchronisation that reported an "
                        "earlier error m2[0] = %d, want 12", m2[0]);
    (void)cudaMemsetAsync(d + (256 << 20), 0, 64);
    (void)cudaFree(m2);
    (void)cudaGetLastError();
    affine<<<64, 256>>>(m, 1, 1, n);
    CK(cudaDeviceSynchronize());
    EXPECT(m[5] == 6 * 5 + 6, "after freeing m2 m[5] = %d", m[5]);
  }
  printf("errors reported by a synchronisation: ok\n");
  CK(cudaFree(m));
  CK(cudaFree(d));
  CK(cudaStreamDestroy(s));
  printf("PASS managed\n");
  return 0;
}
