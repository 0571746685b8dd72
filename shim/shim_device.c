/*
 * shim_device.c: device enumeration, selection and properties.
 *
 * Everything here is answered locally from the device descriptions the
 * broker sent in HELLO: no round trip.  Attributes travel as CUDA's own
 * cudaDeviceAttr numbers, so cudaDeviceProp is filled field by field for
 * the layout this library is compiled against, never copied as a blob.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "shim.h"
#include "shim_devprop.h"

/* No broker or no machine: the error every device query gives. */
static cudaError_t no_device(void)
{
  if (shim_proc.connected && shim_proc.cli.ndev > 0)
    return cudaSuccess;
  return shim_proc.init_err ? shim_proc.init_err : cudaErrorNoDevice;
}

cudaError_t shim_devinfo(int device, const struct tr_devinfo **d)
{
  cudaError_t e = no_device();

  if (e != cudaSuccess)
    return e;
  if (!shim_valid_device(device))
    return cudaErrorInvalidDevice;
  *d = &shim_proc.cli.dev[device];
  return cudaSuccess;
}

cudaError_t cudaGetDeviceCount(int *count)
{
  struct shim_thread *t = shim_self();

  if (!count)
    return shim_fail(t, cudaErrorInvalidValue);
  if (no_device() != cudaSuccess) {
    *count = 0;
    return shim_fail(t, no_device());
  }
  *count = (int)shim_proc.cli.ndev;
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int *device)
{
  struct shim_thread *t = shim_self();

  if (!device)
    return shim_fail(t, cudaErrorInvalidValue);
  if (!t)
    return cudaErrorMemoryAllocation;
  if (no_device() != cudaSuccess)
    return shim_fail(t, no_device());
  *device = t->device;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device)
{
  struct shim_thread *t = shim_self();

  if (!t)
    return cudaErrorMemoryAllocation;
  if (no_device() != cudaSuccess)
    return shim_fail(t, no_device());
  if (!shim_valid_device(device))
    return shim_fail(t, cudaErrorInvalidDevice);
  t->device = device;
  return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int *version)
{
  if (!version)
    return shim_fail(shim_self(), cudaErrorInvalidValue);
  *version = CUDART_VERSION;
  return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int *version)
{
  if (!version)
    return shim_fail(shim_self(), cudaErrorInvalidValue);
  /* The "driver" the program talks to is tremote, which speaks this
     runtime's version; the remote driver's own version is reported by
     tremote-smi.  0 would mean "no driver" to the program. */
  *version = CUDART_VERSION;
  return cudaSuccess;
}


cudaError_t cudaDeviceGetAttribute(int *value, enum cudaDeviceAttr attr,
                                   int device)
{
  struct shim_thread *t = shim_self();
  const struct tr_devinfo *d;
  int32_t v;

  cudaError_t e;

  if (!value)
    return shim_fail(t, cudaErrorInvalidValue);
  e = shim_devinfo(device, &d);
  if (e != cudaSuccess)
    return shim_fail(t, e);
  if (tr_devinfo_attr(d, (uint32_t)attr, &v) < 0)
    return shim_fail(t, cudaErrorInvalidValue);
  *value = v;
  return cudaSuccess;
}

/* Integer fields of CUDA 13's cudaDeviceProp and the attribute that fills
   each (CUDA 12's layout has its own table, in shim_abi12.c). */
static const struct shim_prop_field prop_map[] = {
#define P(field, attr) {offsetof(struct cudaDeviceProp, field), 0, attr},
#define PZ(field, attr) {offsetof(struct cudaDeviceProp, field), 1, attr},
  SHIM_DEVPROP_COMMON(P, PZ)
#undef P
#undef PZ
};

void shim_prop_fill(void *prop, const struct tr_devinfo *d,
                    size_t name_off, size_t name_len, size_t uuid_off,
                    size_t mem_off, const struct shim_prop_field *map,
                    size_t n)
{
  size_t mem = d->total_mem;
  int32_t v;

  snprintf((char *)prop + name_off, name_len, "%s", d->name);
  memcpy((char *)prop + uuid_off, d->uuid, sizeof(cudaUUID_t));
  memcpy((char *)prop + mem_off, &mem, sizeof(mem));
  for (size_t i = 0; i < n; i++) {
    if (tr_devinfo_attr(d, (uint32_t)map[i].attr, &v) < 0)
      continue;
    if (map[i].is_size_t) {
      size_t z = (size_t)(uint32_t)v;
      memcpy((char *)prop + map[i].off, &z, sizeof(z));
    } else {
      memcpy((char *)prop + map[i].off, &v, sizeof(v));
    }
  }
}

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device)
{
  struct shim_thread *t = shim_self();
  const struct tr_devinfo *d;
  cudaError_t e;

  if (!prop)
    return shim_fail(t, cudaErrorInvalidValue);
  e = shim_devinfo(device, &d);
  if (e != cudaSuccess)
    return shim_fail(t, e);
  memset(prop, 0, sizeof(*prop));
  shim_prop_fill(prop, d, offsetof(struct cudaDeviceProp, name),
                 sizeof(prop->name), offsetof(struct cudaDeviceProp, uuid),
                 offsetof(struct cudaDeviceProp, totalGlobalMem), prop_map,
                 sizeof(prop_map) / sizeof(prop_map[0]));
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);
  int rc, synced;

  if (e != cudaSuccess)
    return shim_fail(t, e);
  /* This thread's streams have lanes of their own; other threads' streams
     are waited for by their events. */
  rc = shim_sync_stream_lanes(t);
  e = shim_cuda_error(t, shim_device_output(t, t->device, TR_OP_SYNCHRONIZE));
  /* It synchronised also when it reported an earlier call's error. */
  synced = e == cudaSuccess || t->call_ok;
  if (!rc)
    rc = shim_sync_other_streams(t, t->device);
  if (e == cudaSuccess && rc)
    e = shim_cuda_error(t, rc);
  shim_stream_wait_callbacks(); /* host functions are the device's work */
  rc = shim_managed_after(t, (int)e, synced);
  if (e == cudaSuccess)
    e = shim_cuda_error(t, rc);
  return e;
}

/* ---- device state the program sets --------------------------------------- */

/*
 * Flags, limits and cache preferences are per device and process in CUDA.
 * The shim keeps them; the one the emulated device acts on is the stack
 * size, which travels with every launch (TR_LAUNCH_FIXED).  The others are
 * hints a GPU may ignore too, or describe resources the remote device
 * manages itself (printf FIFO, malloc heap).
 */
#define SHIM_MAX_DEV 64

static struct {
  unsigned flags;
  enum cudaFuncCache cache;
  enum cudaSharedMemConfig smem; /* deprecated; kept and read back */
  size_t limit[cudaLimitPersistingL2CacheSize + 1];
  int set[cudaLimitPersistingL2CacheSize + 1];
} devstate[SHIM_MAX_DEV];
static pthread_mutex_t devstate_lock = PTHREAD_MUTEX_INITIALIZER;

/*
 * The start of a call that reads or sets the current device's state:
 * ready, the argument valid (ok), and the device one we keep state for.
 * On cudaSuccess devstate_lock is held: the caller reads or writes
 * devstate[(*t)->device] and unlocks.
 */
static cudaError_t devstate_begin(struct shim_thread **t, int ok)
{
  cudaError_t e = shim_ready(t);

  if (e != cudaSuccess)
    return shim_fail(*t, e);
  if (!ok || (*t)->device >= SHIM_MAX_DEV)
    return shim_fail(*t, cudaErrorInvalidValue);
  pthread_mutex_lock(&devstate_lock);
  return cudaSuccess;
}

/* CUDA's defaults (an A100/H100 answers these). */
static size_t limit_default(enum cudaLimit l)
{
  switch (l) {
  case cudaLimitStackSize:
    return 1024;
  case cudaLimitPrintfFifoSize:
    return 1 << 20;
  case cudaLimitMallocHeapSize:
    return 8 << 20;
  case cudaLimitDevRuntimeSyncDepth:
    return 2;
  case cudaLimitDevRuntimePendingLaunchCount:
    return 2048;
  case cudaLimitMaxL2FetchGranularity:
    return 64;
  case cudaLimitPersistingL2CacheSize:
    return 0;
  default:
    return 0;
  }
}

uint32_t shim_stack_size(int dev)
{
  size_t v;

  if (dev < 0 || dev >= SHIM_MAX_DEV)
    return 0;
  pthread_mutex_lock(&devstate_lock);
  v = devstate[dev].set[cudaLimitStackSize] ? devstate[dev].limit[cudaLimitStackSize]
                                            : 0;
  pthread_mutex_unlock(&devstate_lock);
  return (uint32_t)v;
}

cudaError_t cudaDeviceSetLimit(enum cudaLimit limit, size_t value)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);

  if (e != cudaSuccess)
    return shim_fail(t, e);
  if ((unsigned)limit > cudaLimitPersistingL2CacheSize || t->device >= SHIM_MAX_DEV)
    return shim_fail(t, cudaErrorUnsupportedLimit);
  /* The emulator gives each thread at most 64 KiB of stack: a GPU's limit
     is of that order per thread too (512 KiB on recent parts). */
  if (limit == cudaLimitStackSize && value > (64u << 10))
    return shim_fail(t, cudaErrorInvalidValue);
  pthread_mutex_lock(&devstate_lock);
  devstate[t->device].limit[limit] = value;
  devstate[t->device].set[limit] = 1;
  pthread_mutex_unlock(&devstate_lock);
  return cudaSuccess;
}

cudaError_t cudaDeviceGetLimit(size_t *value, enum cudaLimit limit)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);

  if (e != cudaSuccess)
    return shim_fail(t, e);
  if (!value)
    return shim_fail(t, cudaErrorInvalidValue);
  if ((unsigned)limit > cudaLimitPersistingL2CacheSize || t->device >= SHIM_MAX_DEV)
    return shim_fail(t, cudaErrorUnsupportedLimit);
  pthread_mutex_lock(&devstate_lock);
  *value = devstate[t->device].set[limit] ? devstate[t->device].limit[limit]
                                          : limit_default(limit);
  pthread_mutex_unlock(&devstate_lock);
  return cudaSuccess;
}

cudaError_t cudaSetDeviceFlags(unsigned int flags)
{
  struct shim_thread *t;
  unsigned known = cudaDeviceScheduleMask | cudaDeviceMapHost |
                   cudaDeviceLmemResizeToMax | cudaDeviceSyncMemops;
  cudaError_t e = devstate_begin(&t, !(flags & ~known));

  if (e != cudaSuccess)
    return e;
  devstate[t->device].flags = flags;
  pthread_mutex_unlock(&devstate_lock);
  return cudaSuccess;
}

cudaError_t cudaGetDeviceFlags(unsigned int *flags)
{
  struct shim_thread *t;
  cudaError_t e = devstate_begin(&t, flags != NULL);

  if (e != cudaSuccess)
    return e;
  *flags = devstate[t->device].flags;
  pthread_mutex_unlock(&devstate_lock);
  return cudaSuccess;
}

cudaError_t cudaDeviceSetCacheConfig(enum cudaFuncCache config)
{
  struct shim_thread *t;
  cudaError_t e =
      devstate_begin(&t, (unsigned)config <= cudaFuncCachePreferEqual);

  if (e != cudaSuccess)
    return e;
  devstate[t->device].cache = config;
  pthread_mutex_unlock(&devstate_lock);
  return cudaSuccess;
}

/* Bank size: a hint since Kepler; the default answers "four bytes". */
cudaError_t cudaDeviceSetSharedMemConfig(enum cudaSharedMemConfig config)
{
  struct shim_thread *t;
  cudaError_t e =
      devstate_begin(&t, (unsigned)config <= cudaSharedMemBankSizeEightByte);

  if (e != cudaSuccess)
    return e;
  devstate[t->device].smem = config;
  pthread_mutex_unlock(&devstate_lock);
  return cudaSuccess;
}

cudaError_t cudaDeviceGetSharedMemConfig(enum cudaSharedMemConfig *config)
{
  struct shim_thread *t;
  cudaError_t e = devstate_begin(&t, config != NULL);

  if (e != cudaSuccess)
    return e;
  *config = devstate[t->device].smem == cudaSharedMemBankSizeDefault
                ? cudaSharedMemBankSizeFourByte
                : devstate[t->device].smem;
  pthread_mutex_unlock(&devstate_lock);
  return cudaSuccess;
}

cudaError_t cudaDeviceGetCacheConfig(enum cudaFuncCache *config)
{
  struct shim_thread *t;
  cudaError_t e = devstate_begin(&t, config != NULL);

  if (e != cudaSuccess)
    return e;
  *config = devstate[t->device].cache;
  pthread_mutex_unlock(&devstate_lock);
  return cudaSuccess;
}

/*
 * cudaDeviceReset: the device is shared by the whole session, and its
 * memory goes when the program's session ends, so a reset here waits for
 * the device and forgets the thread's error and the device's settings.  A
 * kernel fault stays sticky (a GPU's reset would clear it: documented
 * difference).
 */
cudaError_t cudaDeviceReset(void)
{
  struct shim_thread *t;
  cudaError_t e = shim_ready(&t);

  if (e != cudaSuccess)
    return shim_fail(t, e);
  e = cudaDeviceSynchronize();
  if (t->device < SHIM_MAX_DEV) {
    pthread_mutex_lock(&devstate_lock);
    memset(&devstate[t->device], 0, sizeof(devstate[t->device]));
    pthread_mutex_unlock(&devstate_lock);
  }
  t->last_error = cudaSuccess;
  return e;
}

cudaError_t cudaInitDevice(int device, unsigned int device_flags,
                           unsigned int flags)
{
  struct shim_thread *t = shim_self();
  cudaError_t e = no_device();

  if (e != cudaSuccess)
    return shim_fail(t, e);
  if (!shim_valid_device(device))
    return shim_fail(t, cudaErrorInvalidDevice);
  if (flags & ~(unsigned)cudaInitDeviceFlagsAreValid)
    return shim_fail(t, cudaErrorInvalidValue);
  if (flags & cudaInitDeviceFlagsAreValid) {
    int saved = t->device;

    t->device = device;
    e = cudaSetDeviceFlags(device_flags);
    t->device = saved;
  }
  return e;
}

cudaError_t cudaSetValidDevices(int *list, int len)
{
  struct shim_thread *t = shim_self();
  cudaError_t e = no_device();

  if (e != cudaSuccess)
    return shim_fail(t, e);
  if (len < 0 || (len > 0 && !list))
    return shim_fail(t, cudaErrorInvalidValue);
  for (int i = 0; i < len; i++)
    if (!shim_valid_device(list[i]))
      return shim_fail(t, cudaErrorInvalidDevice);
  return cudaSuccess; /* an order of preference; every device is valid */
}

/*
 * PCI bus ids: the remote devices' real ids mean nothing here, and two
 * emulated devices would share one, so each ordinal gets its own:
 * domain 0, bus = ordinal + 1, device 0.
 */
cudaError_t cudaDeviceGetPCIBusId(char *id, int len, int device)
{
  struct shim_thread *t = shim_self();
  const struct tr_devinfo *d;
  cudaError_t e = shim_devinfo(device, &d);

  if (e != cudaSuccess)
    return shim_fail(t, e);
  if (!id || len < 13)
    return shim_fail(t, cudaErrorInvalidValue);
  snprintf(id, (size_t)len, "0000:%02x:00.0", (unsigned)(device + 1) & 0xff);
  return cudaSuccess;
}

cudaError_t cudaDeviceGetByPCIBusId(int *device, const char *id)
{
  struct shim_thread *t = shim_self();
  unsigned dom, bus, dev, fn = 0;
  cudaError_t e = no_device();

  if (e != cudaSuccess)
    return shim_fail(t, e);
  if (!device || !id ||
      (sscanf(id, "%x:%x:%x.%x", &dom, &bus, &dev, &fn) < 3 &&
       sscanf(id, "%x:%x.%x", &bus, &dev, &fn) < 2))
    return shim_fail(t, cudaErrorInvalidValue);
  if (bus < 1 || !shim_valid_device((int)bus - 1))
    return shim_fail(t, cudaErrorInvalidDevice);
  *device = (int)bus - 1;
  return cudaSuccess;
}

/* The device whose compute capability is closest to, and not below, what
   prop asks for (else device 0). */
cudaError_t cudaChooseDevice(int *device, const struct cudaDeviceProp *prop)
{
  struct shim_thread *t = shim_self();
  cudaError_t e = no_device();
  int best = 0, best_cc = 1 << 30;

  if (e != cudaSuccess)
    return shim_fail(t, e);
  if (!device || !prop)
    return shim_fail(t, cudaErrorInvalidValue);
  for (uint32_t i = 0; i < shim_proc.cli.ndev; i++) {
    int32_t maj = 0, min = 0, cc;

    tr_devinfo_attr(&shim_proc.cli.dev[i], cudaDevAttrComputeCapabilityMajor,
                    &maj);
    tr_devinfo_attr(&shim_proc.cli.dev[i], cudaDevAttrComputeCapabilityMinor,
                    &min);
    cc = maj * 10 + min;
    if (cc >= prop->major * 10 + prop->minor && cc < best_cc) {
      best = (int)i;
      best_cc = cc;
    }
  }
  *device = best;
  return cudaSuccess;
}

/*
 * Peer access: every device is a machine of its own; none can address
 * another's memory.  cudaMemcpyPeer still copies between them (through
 * this host).
 */
cudaError_t cudaDeviceCanAccessPeer(int *can, int device, int peer)
{
  struct shim_thread *t = shim_self();
  cudaError_t e = no_device();

  if (e != cudaSuccess)
    return shim_fail(t, e);
  if (!can)
    return shim_fail(t, cudaErrorInvalidValue);
  if (!shim_valid_device(device) || !shim_valid_device(peer) ||
      device == peer)
    return shim_fail(t, cudaErrorInvalidDevice);
  *can = 0;
  return cudaSuccess;
}

cudaError_t cudaDeviceEnablePeerAccess(int peer, unsigned int flags)
{
  struct shim_thread *t = shim_self();

  if (!shim_valid_device(peer))
    return shim_fail(t, cudaErrorInvalidDevice);
  if (flags)
    return shim_fail(t, cudaErrorInvalidValue);
  return shim_fail(t, cudaErrorPeerAccessUnsupported);
}

cudaError_t cudaDeviceDisablePeerAccess(int peer)
{
  struct shim_thread *t = shim_self();

  if (!shim_valid_device(peer))
    return shim_fail(t, cudaErrorInvalidDevice);
  return shim_fail(t, cudaErrorPeerAccessNotEnabled);
}
