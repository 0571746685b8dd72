// launch_module.cu: a kernel launch on a device that cannot execute kernels
// yet (the emulated device before its interpreter), and the module path
// behind it.
//
//   launch_module            launch scale<<<>>>: the module is loaded on the
//                            agent (uploaded only if the agent lacks its
//                            hash), the kernel is looked up there, and the
//                            launch returns cudaErrorNotSupported; then it
//                            prints PAUSE and waits for a line on stdin so
//                            the test can read the broker's counters.
//   launch_module nobroker   no broker: 0 devices and cudaErrorNoDevice.
#include <cuda_runtime.h>

#include <stdio.h>
#include <string.h>

__global__ void scale(float *x, float a, int n)
{
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n)
    x[i] *= a;
}

int main(int argc, char **argv)
{
  if (argc > 1 && strcmp(argv[1], "nobroker") == 0) {
    int count = -1;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaErrorNoDevice || count != 0) {
      fprintf(stderr, "FAIL without a broker: %s, count %d\n",
              cudaGetErrorName(e), count);
      return 1;
    }
    e = cudaMalloc((void **)&argv, 16);
    if (e != cudaErrorNoDevice) {
      fprintf(stderr, "FAIL cudaMalloc without a broker: %s\n",
              cudaGetErrorName(e));
      return 1;
    }
    printf("PASS\n");
    return 0;
  }
  float *d = NULL;
  cudaError_t e = cudaMalloc((void **)&d, 1024 * sizeof(float));
  if (e != cudaSuccess) {
    fprintf(stderr, "FAIL cudaMalloc: %s\n", cudaGetErrorName(e));
    return 1;
  }
  scale<<<4, 256>>>(d, 2.0f, 1024);
  e = cudaGetLastError();
  if (e != cudaErrorNotSupported) {
    fprintf(stderr, "FAIL launch: %s, expected cudaErrorNotSupported\n",
            cudaGetErrorName(e));
    return 1;
  }
  // The module load and the kernel lookup succeeded on the agent: nothing
  // deferred is pending.
  e = cudaDeviceSynchronize();
  if (e != cudaSuccess) {
    fprintf(stderr, "FAIL sync after the launch: %s\n", cudaGetErrorName(e));
    return 1;
  }
  printf("PAUSE\n");
  fflush(stdout);
  char line[16];
  if (!fgets(line, sizeof(line), stdin))
    return 1;
  cudaFree(d);
  printf("PASS\n");
  return 0;
}
