/*
 * agent_nvml.h: what NVIDIA's management library says of the agent's GPU
 * (utilization, temperature, power, memory, the driver's version), for
 * /v1/status and so for tremote-smi.
 *
 * libnvidia-ml.so.1 is loaded with dlopen, like the driver, so the agent
 * starts where it is missing; then every figure is unknown.  A thread
 * samples once a second, so a status request never waits for NVML (a
 * utilization query can take a millisecond, and the network thread
 * answers programs' calls too).
 */
#ifndef AGT_NVML_H
#define AGT_NVML_H

#include <stdint.h>

/* One sample.  -1 (or "") is unknown. */
struct agt_telemetry {
  int32_t util_gpu;  /* percent of the last sample period a kernel ran */
  int32_t util_mem;  /* percent of it memory was read or written */
  int32_t temp_c;    /* GPU core temperature */
  int32_t power_mw;  /* board power draw, milliwatts */
  int64_t mem_free, mem_total; /* device memory, bytes: the whole GPU's,
                                  every process's use counted */
  int64_t mem_reserved; /* of mem_total, what the driver and firmware keep
                           (nvidia-smi's "Reserved"; 0 from older NVML) */
  char driver[32];   /* "580.159.04" */
};

struct agt_nvml;

/*
 * Find the GPU whose UUID is uuid (the CUDA device's) and start sampling
 * it.  Returns 0 and *out, or -1 with *why (a static line: no library, no
 * such GPU); the agent then reports the figures as unknown.
 */
int agt_nvml_open(const uint8_t uuid[16], struct agt_nvml **out,
                  const char **why);

/* The newest sample; every field unknown when n is NULL. */
void agt_nvml_get(struct agt_nvml *n, struct agt_telemetry *t);

/* Stop sampling and unload.  NULL is a no-op. */
void agt_nvml_close(struct agt_nvml *n);

#endif /* AGT_NVML_H */
