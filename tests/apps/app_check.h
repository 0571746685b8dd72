// app_check.h: CK() and EXPECT() for the runtime test programs of
// tests/apps (the emu_* programs have their own, emu_check.h): a failing
// CUDA call prints "FAIL <call> at line <n>: <error name>" and the program
// exits 2; a failed expectation prints "FAIL line <n>: <message>" and the
// program exits 1.
#ifndef APP_CHECK_H
#define APP_CHECK_H

#include <cuda_runtime.h>

#include <stdio.h>
#include <stdlib.h>

#define CK(call)                                                               \
  do {                                                                         \
    cudaError_t e_ = (call);                                                   \
    if (e_ != cudaSuccess) {                                                   \
      fprintf(stderr, "FAIL %s at line %d: %s\n", #call, __LINE__,             \
              cudaGetErrorName(e_));                                           \
      exit(2);                                                                 \
    }                                                                          \
  } while (0)

#define EXPECT(cond, ...)                                                      \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "FAIL line %d: ", __LINE__);                             \
      fprintf(stderr, __VA_ARGS__);                                            \
      fprintf(stderr, "\n");                                                   \
      exit(1);                                                                 \
    }                                                                          \
  } while (0)

#endif
