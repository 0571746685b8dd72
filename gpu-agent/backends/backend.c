/*
 * backend.c: choosing the backend named on the command line.
 *
 * "cuda" is the real GPU (cuda.c) and fails with the reason when the
 * driver or the GPU cannot be used; "auto" tries it and settles for the
 * emulated device, saying in one log line why, so an operator who expected
 * the GPU sees what to fix without the agent refusing to start.
 */
#include <errno.h>
#include <string.h>

#include <driver_types.h>

#include "agent.h"
#include "backend.h"

int agt_backend_open(const char *kind, const struct agt_emu_config *emu,
                     struct agt_backend **out, const char **why)
{
  const char *cuda_why = NULL;
  int rc;

  if (strcmp(kind, "cuda") == 0)
    return agt_cuda_new(0, out, why);
  if (strcmp(kind, "auto") == 0) {
    rc = agt_cuda_new(0, out, &cuda_why);
    if (rc == 0 || rc != -ENOSYS) {
      *why = cuda_why;
      return rc;
    }
    agt_info("backend auto: the cuda backend cannot be used (%s); using the "
             "emulated device", cuda_why);
  } else if (strcmp(kind, "emu") != 0) {
    *why = "unknown backend (valid: emu, cuda, auto)";
    return -EINVAL;
  }
  rc = agt_emu_new(emu, out);
  if (rc < 0)
    *why = "out of memory";
  return rc;
}

bool agt_status_sticky(uint32_t st)
{
  switch (st) {
  case cudaErrorIllegalAddress:
  case cudaErrorLaunchTimeout:
  case cudaErrorAssert:
  case cudaErrorHardwareStackError:
  case cudaErrorIllegalInstruction:
  case cudaErrorMisalignedAddress:
  case cudaErrorInvalidAddressSpace:
  case cudaErrorInvalidPc:
  case cudaErrorLaunchFailure:
    return true;
  default:
    return false;
  }
}
