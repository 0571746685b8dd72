// launch_module.cu: the module path behind a kernel launch.
//
//   launch_module            launch scale<<<>>>: the module is loaded on the
//                            agent (uploaded only if the agent lacks its
//                            hash), the kernel is looked up there and runs;
//                            then it prints PAUSE and waits for a line on
//                            stdin so the test can read the broker's
//                            counters, and finally checks a kernel's result.
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
  if (e != cudaSuccess) {
    fprintf(stderr, "FAIL launch: %s\n", cudaGetErrorName(e));
    return 1;
  }
  // The module load, the kernel lookup and the kernel itself succeeded on
  // the agent: nothing deferred is pending.
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
  static float h[1024];
  for (int i = 0; i < 1024; i++)
    h[i] = (float)i;
  if (cudaMemcpy(d, h, sizeof(h), cudaMemcpyHostToDevice) != cudaSuccess)
    return 1;
  scale<<<4, 256>>>(d, 2.0f, 1000);
  if (cudaMemcpy(h, d, sizeof(h), cudaMemcpyDeviceToHost) != cudaSuccess)
    return 1;
  for (int i = 0; i < 1024; i++)
    if (h[i] != (i < 1000 ? 2.0f * i : (float)i)) {
      fprintf(stderr, "FAIL element %d: %g\n", i, h[i]);
      return 1;
    }
  cudaFree(d);
  printf("PASS\n");
  return 0;
}
