/*
 * agent_nvml.c: NVML through dlopen, sampled by a thread (agent_nvml.h).
 *
 * The toolkit here ships no nvml.h, so the few entry points used are
 * declared below from NVML's documented C API; they have kept these
 * names and layouts across drivers (the _v2 names since driver 325).
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent.h"
#include "agent_nvml.h"

typedef int nvml_ret;     /* nvmlReturn_t: 0 = NVML_SUCCESS */
typedef void *nvml_dev;   /* nvmlDevice_t */
struct nvml_util {        /* nvmlUtilization_t */
  unsigned gpu, memory;
};
struct nvml_mem {         /* nvmlMemory_t */
  unsigned long long total, free, used;
};
struct nvml_mem2 {        /* nvmlMemory_v2_t: its total, as nvidia-smi's,
                             counts the driver's reserved memory; v1's
                             leaves it out */
  unsigned version;       /* nvmlMemory_v2: the size | 2 << 24 */
  unsigned long long total, reserved, free, used;
};
#define NVML_MEMORY_V2 ((unsigned)sizeof(struct nvml_mem2) | 2u << 24)
#define NVML_TEMPERATURE_GPU 0
#define NVML_UUID_LEN 96  /* NVML_DEVICE_UUID_V2_BUFFER_SIZE */

struct agt_nvml {
  void *lib;
  nvml_ret (*shutdown)(void);
  nvml_ret (*util)(nvml_dev, struct nvml_util *);
  nvml_ret (*temp)(nvml_dev, int, unsigned *);
  nvml_ret (*power)(nvml_dev, unsigned *);
  nvml_ret (*mem)(nvml_dev, struct nvml_mem *);
  nvml_ret (*mem2)(nvml_dev, struct nvml_mem2 *); /* NULL before 510 */
  nvml_dev dev;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stop;
  struct agt_telemetry last;
};

#define SAMPLE_MS 1000

static void sample(struct agt_nvml *n)
{
  struct nvml_util u;
  struct nvml_mem m;
  struct nvml_mem2 m2 = {.version = NVML_MEMORY_V2};
  unsigned v;
  struct agt_telemetry t;

  pthread_mutex_lock(&n->mu);
  t = n->last;
  pthread_mutex_unlock(&n->mu);
  t.util_gpu = t.util_mem = t.temp_c = t.power_mw = -1;
  t.mem_free = t.mem_total = -1;
  t.mem_reserved = 0;
  if (n->mem2 && n->mem2(n->dev, &m2) == 0 && m2.total) {
    t.mem_free = (int64_t)m2.free;
    t.mem_total = (int64_t)m2.total;
    t.mem_reserved = (int64_t)m2.reserved;
  } else if (n->mem && n->mem(n->dev, &m) == 0 && m.total) {
    t.mem_free = (int64_t)m.free;
    t.mem_total = (int64_t)m.total;
  }
  if (n->util && n->util(n->dev, &u) == 0) {
    t.util_gpu = (int32_t)u.gpu;
    t.util_mem = (int32_t)u.memory;
  }
  if (n->temp && n->temp(n->dev, NVML_TEMPERATURE_GPU, &v) == 0)
    t.temp_c = (int32_t)v;
  if (n->power && n->power(n->dev, &v) == 0)
    t.power_mw = (int32_t)v;
  pthread_mutex_lock(&n->mu);
  n->last = t;
  pthread_mutex_unlock(&n->mu);
}

static void *sampler(void *arg)
{
  struct agt_nvml *n = arg;
  struct timespec until;

  pthread_mutex_lock(&n->mu);
  while (!n->stop) {
    pthread_mutex_unlock(&n->mu);
    sample(n);
    pthread_mutex_lock(&n->mu);
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += SAMPLE_MS / 1000;
    while (!n->stop &&
           pthread_cond_timedwait(&n->cv, &n->mu, &until) != ETIMEDOUT)
      ;
  }
  pthread_mutex_unlock(&n->mu);
  return NULL;
}

/* "GPU-a0a1a2a3-a4a5-a6a7-a8a9-aaabacadaeaf", as NVML writes a UUID. */
static void uuid_text(const uint8_t u[16], char *out, size_t cap)
{
  snprintf(out, cap,
           "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
           "%02x%02x%02x%02x%02x%02x",
           u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10],
           u[11], u[12], u[13], u[14], u[15]);
}

int agt_nvml_open(const uint8_t uuid[16], struct agt_nvml **out,
                  const char **why)
{
  nvml_ret (*init)(void), (*count)(unsigned *);
  nvml_ret (*by_index)(unsigned, nvml_dev *);
  nvml_ret (*get_uuid)(nvml_dev, char *, unsigned);
  nvml_ret (*driver)(char *, unsigned);
  struct agt_nvml *n;
  char want[64];
  unsigned ndev = 0;

  *out = NULL;
  n = calloc(1, sizeof(*n));
  if (!n) {
    *why = "out of memory";
    return -1;
  }
  n->lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!n->lib) {
    free(n);
    *why = "libnvidia-ml.so.1 not found";
    return -1;
  }
  init = (nvml_ret(*)(void))dlsym(n->lib, "nvmlInit_v2");
  n->shutdown = (nvml_ret(*)(void))dlsym(n->lib, "nvmlShutdown");
  count = (nvml_ret(*)(unsigned *))dlsym(n->lib, "nvmlDeviceGetCount_v2");
  by_index = (nvml_ret(*)(unsigned, nvml_dev *))dlsym(
      n->lib, "nvmlDeviceGetHandleByIndex_v2");
  get_uuid = (nvml_ret(*)(nvml_dev, char *, unsigned))dlsym(
      n->lib, "nvmlDeviceGetUUID");
  driver = (nvml_ret(*)(char *, unsigned))dlsym(n->lib,
                                                "nvmlSystemGetDriverVersion");
  n->util = (nvml_ret(*)(nvml_dev, struct nvml_util *))dlsym(
      n->lib, "nvmlDeviceGetUtilizationRates");
  n->temp = (nvml_ret(*)(nvml_dev, int, unsigned *))dlsym(
      n->lib, "nvmlDeviceGetTemperature");
  n->power = (nvml_ret(*)(nvml_dev, unsigned *))dlsym(
      n->lib, "nvmlDeviceGetPowerUsage");
  n->mem = (nvml_ret(*)(nvml_dev, struct nvml_mem *))dlsym(
      n->lib, "nvmlDeviceGetMemoryInfo");
  n->mem2 = (nvml_ret(*)(nvml_dev, struct nvml_mem2 *))dlsym(
      n->lib, "nvmlDeviceGetMemoryInfo_v2");
  if (!init || !n->shutdown || !count || !by_index || !get_uuid) {
    dlclose(n->lib);
    free(n);
    *why = "libnvidia-ml.so.1 lacks nvmlInit_v2 and the device calls";
    return -1;
  }
  if (init() != 0) {
    dlclose(n->lib);
    free(n);
    *why = "nvmlInit_v2 failed";
    return -1;
  }
  /* The CUDA device, not NVML's index 0: CUDA_VISIBLE_DEVICES and NVML
     order GPUs differently. */
  uuid_text(uuid, want, sizeof(want));
  if (count(&ndev) == 0)
    for (unsigned i = 0; i < ndev && !n->dev; i++) {
      nvml_dev d;
      char u[NVML_UUID_LEN];

      if (by_index(i, &d) == 0 && get_uuid(d, u, sizeof(u)) == 0 &&
          strcmp(u, want) == 0)
        n->dev = d;
    }
  if (!n->dev) {
    n->shutdown();
    dlclose(n->lib);
    free(n);
    *why = "NVML lists no GPU with the CUDA device's UUID";
    return -1;
  }
  n->last.util_gpu = n->last.util_mem = n->last.temp_c = n->last.power_mw =
      -1;
  n->last.mem_free = n->last.mem_total = -1;
  n->last.mem_reserved = 0;
  if (!driver || driver(n->last.driver, sizeof(n->last.driver)) != 0)
    n->last.driver[0] = 0;
  pthread_mutex_init(&n->mu, NULL);
  pthread_cond_init(&n->cv, NULL);
  sample(n); /* the first request already has figures */
  if (pthread_create(&n->thread, NULL, sampler, n) != 0) {
    pthread_mutex_destroy(&n->mu);
    pthread_cond_destroy(&n->cv);
    n->shutdown();
    dlclose(n->lib);
    free(n);
    *why = "cannot start the sampling thread";
    return -1;
  }
  *out = n;
  return 0;
}

void agt_nvml_get(struct agt_nvml *n, struct agt_telemetry *t)
{
  if (!n) {
    memset(t, 0, sizeof(*t));
    t->util_gpu = t->util_mem = t->temp_c = t->power_mw = -1;
    t->mem_free = t->mem_total = -1;
    t->mem_reserved = 0;
    return;
  }
  pthread_mutex_lock(&n->mu);
  *t = n->last;
  pthread_mutex_unlock(&n->mu);
}

void agt_nvml_close(struct agt_nvml *n)
{
  if (!n)
    return;
  pthread_mutex_lock(&n->mu);
  n->stop = 1;
  pthread_cond_signal(&n->cv);
  pthread_mutex_unlock(&n->mu);
  pthread_join(n->thread, NULL);
  pthread_mutex_destroy(&n->mu);
  pthread_cond_destroy(&n->cv);
  n->shutdown();
  dlclose(n->lib);
  free(n);
}
