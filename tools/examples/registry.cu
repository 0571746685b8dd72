// registry.cu: the seed's "Device Registry Management" in C.  Two machines
// (LOCAL; the seed's are a Modal T4 and L4), looked up by their stable
// index, compared, and checked for compatibility.
//
// Build: nvcc -cudart shared registry.cu $(pkg-config --cflags --libs tremote)
// Run:   tremote run -- ./registry
#include <stdio.h>
#include <stdlib.h>

#include "tremote/tremote.h"

int main(void)
{
  tremote_machine *device1 = tremote_create_machine(TREMOTE_PROVIDER_LOCAL,
                                                    "T4", NULL);
  tremote_machine *device2 = tremote_create_machine(TREMOTE_PROVIDER_LOCAL,
                                                    "L4", NULL);
  tremote_machine *retrieved;
  struct tremote_machine_info *all;
  size_t n;
  int index1, compatible, rc;
  char s[256];

  if (!device1 || !device2 || tremote_list_machines(&all, &n) < 0) {
    fprintf(stderr, "%s\n", tremote_last_error());
    return 1;
  }
  printf("Registered devices: %zu\n", n);
  free(all);

  index1 = tremote_get_device_index(device1);
  retrieved = tremote_get_device_by_index(index1);
  rc = !retrieved || !tremote_machine_equal(retrieved, device1);
  printf("index of %s: %d; retrieved %s: %s\n",
         tremote_machine_device_id(device1), index1,
         retrieved ? tremote_machine_to_string(retrieved, s, sizeof(s)) : "-",
         rc ? "WRONG" : "the same machine");

  compatible = tremote_devices_compatible(device1, device2);
  printf("Devices compatible: %s\n", compatible ? "True" : "False");
  rc |= compatible;

  tremote_remove_machine(device1);
  tremote_remove_machine(device2);
  tremote_machine_free(retrieved);
  tremote_machine_free(device1);
  tremote_machine_free(device2);
  return rc;
}
