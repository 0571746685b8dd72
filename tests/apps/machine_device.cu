// machine_device.cu: libtremote from inside a CUDA program: for each of the
// broker's machines, the CUDA ordinal it has in this program
// (tremote_machine_device, through the shim's entry table), and that
// setting that device makes it the current one (tremote_current_device).
// Prints "machine I (ID): device D" per machine ("device -1: why" when it
// is not one of this program's), then "PASS".
#include <cuda_runtime.h>

#include <stdio.h>

#include "app_check.h"
#include "tremote/tremote.h"

int main()
{
  int seen = 0;

  for (int i = 0; i < 8; i++) {
    tremote_machine *m = tremote_get_device_by_index(i);
    int d;

    if (!m)
      continue;
    seen++;
    d = tremote_machine_device(m);
    if (d < 0) {
      printf("machine %d (%s): device -1: %s\n", i,
             tremote_machine_device_id(m), tremote_last_error());
    } else {
      printf("machine %d (%s): device %d\n", i, tremote_machine_device_id(m),
             d);
      CK(cudaSetDevice(d));
      EXPECT(tremote_current_device() == d, "current device %d, want %d",
             tremote_current_device(), d);
    }
    tremote_machine_free(m);
  }
  EXPECT(seen > 0, "no machine: %s", tremote_last_error());
  printf("PASS\n");
  return 0;
}
