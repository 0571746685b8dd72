/*
 * backend.c: choosing the backend named on the command line.
 *
 * The cuda backend (the real driver through dlopen, so the binary starts on
 * machines without one) is a later issue.  Until it exists, "cuda" is an
 * error the operator can act on, and "auto" settles for the emulator.
 */
#include <errno.h>
#include <string.h>

#include "agent.h"
#include "backend.h"

int agt_backend_open(const char *kind, const struct agt_emu_config *emu,
                     struct agt_backend **out, const char **why)
{
  int rc;

  if (strcmp(kind, "cuda") == 0) {
    *why = "the cuda backend is not built yet; use --backend emu (or auto)";
    return -ENOSYS;
  }
  if (strcmp(kind, "auto") == 0) {
    agt_info("backend auto: cuda backend not built yet, using the emulated "
             "device");
  } else if (strcmp(kind, "emu") != 0) {
    *why = "unknown backend (valid: emu, cuda, auto)";
    return -EINVAL;
  }
  rc = agt_emu_new(emu, out);
  if (rc < 0)
    *why = "out of memory";
  return rc;
}
