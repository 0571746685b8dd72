/*
 * fake_nvml.c: a stand-in for libnvidia-ml.so.1, built under that name
 * next to the fake driver (fake_libcuda.c), so the agent's NVML sampling
 * (gpu-agent/agent_nvml.c) runs without a GPU.  It lists two GPUs: the
 * first is some other GPU (its figures are all 99, so a test sees when
 * the agent samples the wrong one), the second has the fake driver's
 * UUID and fixed figures a test can compare: 37 % busy, 12 % memory,
 * 61 C, 123.45 W, 300 MiB of its 1024 MiB used, driver "999.99.fake".
 * Like a real GPU's, 24 MiB of the 1024 are the driver's reserve, which
 * the _v2 memory call counts in the total and the old one leaves out
 * (1000 MiB): an agent that used the old one would show the wrong total.
 */
#include <stdio.h>
#include <string.h>

typedef int nvmlReturn_t;
typedef void *nvmlDevice_t;
typedef struct {
  unsigned gpu, memory;
} nvmlUtilization_t;
typedef struct {
  unsigned long long total, free, used;
} nvmlMemory_t;
typedef struct {
  unsigned version;
  unsigned long long total, reserved, free, used;
} nvmlMemory_v2_t;
#define NVML_MEMORY_V2 ((unsigned)sizeof(nvmlMemory_v2_t) | 2u << 24)
#define ARGUMENT_VERSION_MISMATCH 25

/* NVML's declarations (the toolkit here has no nvml.h). */
nvmlReturn_t nvmlInit_v2(void);
nvmlReturn_t nvmlShutdown(void);
nvmlReturn_t nvmlDeviceGetCount_v2(unsigned *n);
nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned i, nvmlDevice_t *d);
nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *out, unsigned len);
nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t d,
                                           nvmlUtilization_t *u);
nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t d, int sensor,
                                      unsigned *t);
nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t d, unsigned *mw);
nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *m);
nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t d, nvmlMemory_v2_t *m);
nvmlReturn_t nvmlSystemGetDriverVersion(char *out, unsigned len);

#define OK 0
#define INVALID_ARGUMENT 2
#define INSUFFICIENT_SIZE 7

static int inited;

/* The fake driver's cuDeviceGetUuid: bytes 0xa0..0xaf. */
static const char *const uuids[2] = {
    "GPU-11111111-2222-3333-4444-555555555555",
    "GPU-a0a1a2a3-a4a5-a6a7-a8a9-aaabacadaeaf",
};

static int index_of(nvmlDevice_t d)
{
  long i = (long)d - 1;

  return i == 0 || i == 1 ? (int)i : -1;
}

nvmlReturn_t nvmlInit_v2(void)
{
  inited = 1;
  return OK;
}

nvmlReturn_t nvmlShutdown(void)
{
  inited = 0;
  return OK;
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned *n)
{
  *n = 2;
  return inited ? OK : 1;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned i, nvmlDevice_t *d)
{
  if (i > 1)
    return INVALID_ARGUMENT;
  *d = (nvmlDevice_t)(long)(i + 1);
  return OK;
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *out, unsigned len)
{
  int i = index_of(d);

  if (i < 0)
    return INVALID_ARGUMENT;
  if (strlen(uuids[i]) + 1 > len)
    return INSUFFICIENT_SIZE;
  memcpy(out, uuids[i], strlen(uuids[i]) + 1);
  return OK;
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t d,
                                           nvmlUtilization_t *u)
{
  int i = index_of(d);

  if (i < 0)
    return INVALID_ARGUMENT;
  u->gpu = i ? 37 : 99;
  u->memory = i ? 12 : 99;
  return OK;
}

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t d, int sensor,
                                      unsigned *t)
{
  int i = index_of(d);

  if (i < 0 || sensor != 0)
    return INVALID_ARGUMENT;
  *t = i ? 61 : 99;
  return OK;
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t d, unsigned *mw)
{
  int i = index_of(d);

  if (i < 0)
    return INVALID_ARGUMENT;
  *mw = i ? 123450 : 99000;
  return OK;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *m)
{
  int i = index_of(d);

  if (i < 0)
    return INVALID_ARGUMENT;
  m->total = i ? 1000ull << 20 : 99ull << 30;
  m->used = i ? 300ull << 20 : 99ull << 20;
  m->free = m->total - m->used;
  return OK;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t d, nvmlMemory_v2_t *m)
{
  int i = index_of(d);

  if (i < 0)
    return INVALID_ARGUMENT;
  if (m->version != NVML_MEMORY_V2)
    return ARGUMENT_VERSION_MISMATCH;
  m->reserved = i ? 24ull << 20 : 0;
  m->total = i ? 1024ull << 20 : 99ull << 30;
  m->used = m->reserved + (i ? 300ull << 20 : 99ull << 20); /* with it */
  m->free = m->total - m->used;
  return OK;
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *out, unsigned len)
{
  return snprintf(out, len, "999.99.fake") < (int)len ? OK
                                                      : INSUFFICIENT_SIZE;
}
