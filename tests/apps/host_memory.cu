// host_memory.cu: page-locked host memory and pointer attributes (issue
// 5), self-checking; runs natively on a GPU as well.
//   - cudaMallocHost / cudaHostAlloc buffers used for copies both ways
//     (also cudaMemcpyAsync on a stream) around a kernel, checked;
//   - cudaHostGetFlags includes the flags cudaHostAlloc was given (a GPU
//     adds cudaHostAllocMapped: 3 for Portable on an H200; tremote's
//     remote device cannot map host memory and does not);
//   - cudaPointerGetAttributes: device memory is cudaMemoryTypeDevice on
//     its device, page-locked memory cudaMemoryTypeHost, plain malloc()
//     memory cudaMemoryTypeUnregistered, registered memory (cudaHostRegister)
//     cudaMemoryTypeHost until cudaHostUnregister;
//   - registering twice is cudaErrorHostMemoryAlreadyRegistered,
//     unregistering twice cudaErrorHostMemoryNotRegistered;
//     cudaFreeHost(NULL) succeeds.
#include <cuda_runtime.h>

#include <stdio.h>
#include <stdlib.h>

#include "app_check.h"

#define N (1 << 20)

__global__ void twice_plus(float *a, float v, int n)
{
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n)
    a[i] = 2.0f * a[i] + v;
}

int main()
{
  float *pin, *pin2, *d;
  cudaStream_t s;

  CK(cudaMallocHost(&pin, N * sizeof(float)));
  CK(cudaHostAlloc(&pin2, N * sizeof(float), cudaHostAllocPortable));
  CK(cudaMalloc(&d, N * sizeof(float)));
  for (int i = 0; i < N; i++)
    pin[i] = (float)(i % 1000);
  CK(cudaMemcpy(d, pin, N * sizeof(float), cudaMemcpyHostToDevice));
  twice_plus<<<(N + 255) / 256, 256>>>(d, 1.0f, N);
  CK(cudaMemcpy(pin2, d, N * sizeof(float), cudaMemcpyDeviceToHost));
  for (int i = 0; i < N; i++)
    EXPECT(pin2[i] == 2.0f * (float)(i % 1000) + 1.0f, "element %d: %g", i, pin2[i]);

  CK(cudaStreamCreate(&s));
  CK(cudaMemcpyAsync(d, pin2, N * sizeof(float), cudaMemcpyHostToDevice, s));
  twice_plus<<<(N + 255) / 256, 256, 0, s>>>(d, -1.0f, N);
  CK(cudaMemcpyAsync(pin, d, N * sizeof(float), cudaMemcpyDeviceToHost, s));
  CK(cudaStreamSynchronize(s));
  for (int i = 0; i < N; i++)
    EXPECT(pin[i] == 4.0f * (float)(i % 1000) + 1.0f, "async element %d: %g", i, pin[i]);
  printf("copies through page-locked memory: ok\n");

  unsigned flags = 99;
  CK(cudaHostGetFlags(&flags, pin2));
  EXPECT((flags & cudaHostAllocPortable) && !(flags & cudaHostAllocWriteCombined),
         "cudaHostGetFlags: %u", flags);

  cudaPointerAttributes a;
  CK(cudaPointerGetAttributes(&a, d + 10));
  EXPECT(a.type == cudaMemoryTypeDevice && a.device == 0 && a.devicePointer == d + 10,
         "device pointer: type %d device %d", (int)a.type, a.device);
  CK(cudaPointerGetAttributes(&a, pin + 5));
  EXPECT(a.type == cudaMemoryTypeHost && a.hostPointer == pin + 5,
         "page-locked pointer: type %d", (int)a.type);
  float *plain = (float *)malloc(1 << 16);
  CK(cudaPointerGetAttributes(&a, plain));
  EXPECT(a.type == cudaMemoryTypeUnregistered, "malloc pointer: type %d", (int)a.type);
  CK(cudaHostRegister(plain, 1 << 16, cudaHostRegisterDefault));
  CK(cudaPointerGetAttributes(&a, plain + 7));
  EXPECT(a.type == cudaMemoryTypeHost, "registered pointer: type %d", (int)a.type);
  EXPECT(cudaHostRegister(plain, 1 << 16, cudaHostRegisterDefault) ==
             cudaErrorHostMemoryAlreadyRegistered,
         "registering twice");
  (void)cudaGetLastError();
  CK(cudaHostUnregister(plain));
  EXPECT(cudaHostUnregister(plain) == cudaErrorHostMemoryNotRegistered,
         "unregistering twice");
  (void)cudaGetLastError();
  CK(cudaPointerGetAttributes(&a, plain));
  EXPECT(a.type == cudaMemoryTypeUnregistered, "after unregister: type %d", (int)a.type);
  free(plain);
  printf("pointer attributes: ok\n");

  CK(cudaFreeHost(NULL));
  CK(cudaFreeHost(pin));
  CK(cudaFreeHost(pin2));
  CK(cudaStreamDestroy(s));
  CK(cudaFree(d));
  printf("PASS host_memory\n");
  return 0;
}
