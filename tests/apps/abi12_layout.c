/*
 * abi12_layout.c: the CUDA 12 facts in shim/shim_abi12.h against CUDA 12's
 * own headers (those of PyPI's nvidia-cuda-runtime-cu12 wheel).  Built by
 * tests/integration/abi12.sh with the host C compiler and
 * -I WHEEL/include -I shim.
 *
 * At compile time: every member of the shim's struct shim12_device_prop
 * has the offset, size and type of cudaDeviceProp's member of that name,
 * the structs have one size, and the numbers shim_abi12.h hard-codes are
 * CUDA 12's.  At run time: the members, in order, cover the struct with
 * no gap but alignment padding, so CUDA 12 has no member the shim's list
 * lacks.  Exit 0 and a PASS line, or 1 and what is wrong.
 */
#include <stddef.h>
#include <stdio.h>

#include <cuda_runtime_api.h>

#include "shim_abi12.h"

#define MEMBER(s, name) (((struct s *)0)->name)

#define CHECK_MEMBER(type, name, dims)                                        \
  _Static_assert(offsetof(struct shim12_device_prop, name) ==                 \
                     offsetof(struct cudaDeviceProp, name),                   \
                 "offset of " #name);                                         \
  _Static_assert(sizeof(MEMBER(shim12_device_prop, name)) ==                  \
                     sizeof(MEMBER(cudaDeviceProp, name)),                    \
                 "size of " #name);                                           \
  _Static_assert(__builtin_types_compatible_p(                                \
                     __typeof__(MEMBER(shim12_device_prop, name)),            \
                     __typeof__(MEMBER(cudaDeviceProp, name))),               \
                 "type of " #name);
SHIM12_DEVICE_PROP_FIELDS(CHECK_MEMBER)

_Static_assert(sizeof(struct shim12_device_prop) ==
                   sizeof(struct cudaDeviceProp),
               "sizeof(struct cudaDeviceProp)");
_Static_assert(SHIM12_CUDART_VERSION == CUDART_VERSION,
               "SHIM12_CUDART_VERSION is not the wheel's CUDART_VERSION");
_Static_assert(SHIM12_POINTER_ATTRIBUTES_SIZE ==
                   sizeof(struct cudaPointerAttributes),
               "sizeof(struct cudaPointerAttributes)");
_Static_assert(SHIM12_DEV_ATTR_COOPERATIVE_MULTI_DEVICE_LAUNCH ==
                   cudaDevAttrCooperativeMultiDeviceLaunch,
               "cudaDevAttrCooperativeMultiDeviceLaunch");
_Static_assert(SHIM12_DEVICE_PROP_V1_SIZE <= sizeof(struct cudaDeviceProp) &&
                   SHIM12_DEVICE_PROP_V1_SIZE % 8 == 0,
               "the CUDA 11 prefix");

static const struct {
  const char *name;
  size_t off, size, align;
} members[] = {
#define ROW(type, name, dims)                                                  \
  {#name, offsetof(struct cudaDeviceProp, name),                              \
   sizeof(MEMBER(cudaDeviceProp, name)), _Alignof(type)},
  SHIM12_DEVICE_PROP_FIELDS(ROW)
#undef ROW
};

int main(void)
{
  size_t n = sizeof(members) / sizeof(members[0]), end = 0, align = 1;

  for (size_t i = 0; i < n; i++) {
    size_t at = (end + members[i].align - 1) / members[i].align * members[i].align;

    if (members[i].off != at) {
      printf("FAIL: %s is at %zu, but the member before it ends at %zu: "
             "CUDA 12's cudaDeviceProp has a member shim_abi12.h lacks\n",
             members[i].name, members[i].off, end);
      return 1;
    }
    end = members[i].off + members[i].size;
    if (members[i].align > align)
      align = members[i].align;
  }
  if ((end + align - 1) / align * align != sizeof(struct cudaDeviceProp)) {
    printf("FAIL: the members end at %zu, cudaDeviceProp is %zu bytes\n", end,
           sizeof(struct cudaDeviceProp));
    return 1;
  }
  printf("PASS: %zu members of CUDA %d's cudaDeviceProp (%zu bytes) at the "
         "shim's offsets; cudaPointerAttributes %zu bytes\n",
         n, CUDART_VERSION, sizeof(struct cudaDeviceProp),
         sizeof(struct cudaPointerAttributes));
  return 0;
}
