/*
 * tremote.h: libtremote, the seed's API (torch-remote's) in C.
 *
 * A *machine* is a GPU somewhere (a Modal cloud GPU, a box of your own, or
 * this host) that the tremote broker serves to CUDA programs as a device.
 * This library names GPU types, creates and removes machines through the
 * broker's control socket, and looks them up by the broker's stable index.
 *
 *   seed (Python)                     here
 *   GPUType                           tremote_gpu_type, tremote_gpu_parse()
 *   BackendProvider                   tremote_provider
 *   create_modal_machine(gpu)         tremote_create_modal_machine()
 *   RemoteMachine                     tremote_machine (opaque)
 *   .device_id / .device_name         tremote_machine_device_id() / _name()
 *   .modal_gpu_spec                   tremote_machine_modal_gpu_spec()
 *   .remote_index                     tremote_machine_remote_index()
 *   ==, hash()                        tremote_machine_equal(), _hash()
 *   DeviceRegistry.get_device_by_index  tremote_get_device_by_index()
 *   DeviceRegistry.get_device_index   tremote_get_device_index()
 *   DeviceRegistry.devices_compatible tremote_devices_compatible()
 *   device_count(), is_available()    tremote_device_count(), _is_available()
 *
 * Errors: functions that can fail return NULL or -1 and leave one line in
 * tremote_last_error() (per thread) that says what was wrong and what is
 * valid, e.g. "unknown GPU type 'A100' (valid: T4, L4, A10G, A100-40GB,
 * A100-80GB, L40S, H100, H200, B200)".
 *
 * The broker: its control socket is found as the shim finds the broker
 * ($TREMOTE_BROKER_SOCKET's directory, else $XDG_RUNTIME_DIR/tremote/,
 * else /run/tremote/ for root, else /tmp/tremote-$UID/), control.sock in
 * it; $TREMOTE_CONTROL_SOCKET overrides.
 */
#ifndef TREMOTE_TREMOTE_H
#define TREMOTE_TREMOTE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- GPU types --------------------------------------------------------- */

typedef enum {
  TREMOTE_GPU_T4,
  TREMOTE_GPU_L4,
  TREMOTE_GPU_A10G,
  TREMOTE_GPU_A100_40GB,
  TREMOTE_GPU_A100_80GB,
  TREMOTE_GPU_L40S,
  TREMOTE_GPU_H100,
  TREMOTE_GPU_H200,
  TREMOTE_GPU_B200,
  TREMOTE_GPU_COUNT
} tremote_gpu_type;

struct tremote_gpu_info {
  const char *name;         /* "A100-40GB": the seed's exact string */
  const char *modal_spec;   /* Modal's gpu= string ("A100-40GB") */
  uint64_t memory;          /* bytes */
  const char *architecture; /* "Ampere" */
  int cc_major, cc_minor;   /* compute capability */
};

/* The table entry of t, or NULL when t is out of range. */
const struct tremote_gpu_info *tremote_gpu_info(tremote_gpu_type t);

/* "A100-40GB", or NULL when t is out of range. */
const char *tremote_gpu_name(tremote_gpu_type t);

/*
 * Parse a GPU type name, ignoring case as Modal does ("a100-40gb" is
 * A100-40GB).  0 and *out, or -1 (error: the valid names).
 */
int tremote_gpu_parse(const char *s, tremote_gpu_type *out);

/* ---- providers ---------------------------------------------------------- */

typedef enum {
  TREMOTE_PROVIDER_MODAL,  /* a Modal GPU, created on demand */
  TREMOTE_PROVIDER_STATIC, /* an agent someone runs (address + secret) */
  TREMOTE_PROVIDER_LOCAL   /* an agent the broker runs on this host */
} tremote_provider;

/* "modal", "static", "local"; NULL when out of range. */
const char *tremote_provider_name(tremote_provider p);

/* ---- machines ------------------------------------------------------------ */

typedef struct tremote_machine tremote_machine;

/* What a STATIC machine needs (NULL fields: not given). */
struct tremote_machine_opts {
  const char *address;     /* STATIC: "IP:PORT" */
  const char *secret_file; /* STATIC: the agent's secret (mode 0600) */
  int tls;                 /* STATIC: 1 = TLS (then fingerprint or ca) */
  const char *fingerprint; /* "SHA256:..." the agent's certificate */
  const char *ca;          /* a CA file */
  long idle_timeout_s;     /* MODAL: stop it after this long unused;
                              0: the default (600), -1: never */
  unsigned timeout_s;      /* MODAL: the Sandbox's lifetime; 0: 3600 */
};

/*
 * Create a machine of provider p with GPU type gpu (a name, see
 * tremote_gpu_parse; for LOCAL and STATIC it is what you ask for, shown by
 * tremote-smi) and register it with the broker.  Its device_id is the
 * provider, the GPU type without punctuation, and 8 random hex digits
 * ("local-t4-1a2b3c4d"; a Modal A100-40GB is "modal-a10040gb-...").
 * Returns the machine (free with tremote_machine_free; it stays in the
 * broker until tremote_remove_machine), or NULL with the error.
 */
tremote_machine *tremote_create_machine(tremote_provider p, const char *gpu,
                                        const struct tremote_machine_opts *o);

/*
 * Wait until m is ready (a MODAL machine takes minutes): 0 when it is, -1
 * with the error when it failed, was removed, or timeout_s (0: forever)
 * passed.  progress, when not NULL, gets each new progress line.
 */
typedef void (*tremote_progress_fn)(const char *line, void *arg);
int tremote_machine_wait(const tremote_machine *m, int timeout_s,
                         tremote_progress_fn progress, void *arg);

/* The seed's create_modal_machine(gpu): asks Modal for the machine and
   returns at once; tremote_machine_wait waits for it. */
tremote_machine *tremote_create_modal_machine(const char *gpu,
                                              const struct tremote_machine_opts *o);

/* "modal-a10040gb-1a2b3c4d" */
const char *tremote_machine_device_id(const tremote_machine *m);
/* "Modal A100-40GB", "Static H100", "Local T4" */
const char *tremote_machine_device_name(const tremote_machine *m);
tremote_provider tremote_machine_provider(const tremote_machine *m);
tremote_gpu_type tremote_machine_gpu(const tremote_machine *m);
/* Modal's GPU string; NULL with an error for other providers. */
const char *tremote_machine_modal_gpu_spec(const tremote_machine *m);
/* The broker's index of the machine (stable while the broker runs). */
int tremote_machine_remote_index(const tremote_machine *m);

/*
 * The CUDA ordinal of m in the calling program (what cudaSetDevice takes;
 * TREMOTE_VISIBLE_DEVICES applied), or -1: hidden from this program, or
 * the program does not run under the tremote shim (the error says which).
 */
int tremote_machine_device(const tremote_machine *m);

/* The calling thread's current CUDA ordinal, or -1 (not under the shim). */
int tremote_current_device(void);

/* "tremote_machine(device_id=..., name=..., provider=..., index=N)" into
   buf (cap bytes, truncated, always terminated); returns buf. */
char *tremote_machine_to_string(const tremote_machine *m, char *buf,
                                size_t cap);

/* Equal and hash on device_id, as the seed's __eq__ and __hash__. */
int tremote_machine_equal(const tremote_machine *a, const tremote_machine *b);
uint64_t tremote_machine_hash(const tremote_machine *m);

/* Take the machine out of the broker (its programs get errors).  0 or -1. */
int tremote_remove_machine(const tremote_machine *m);

void tremote_machine_free(tremote_machine *m);

/* ---- the registry (the broker's) ------------------------------------------ */

/* The machine with broker index i (a new object, free it), or NULL. */
tremote_machine *tremote_get_device_by_index(int index);
/* The broker index of m, or -1 when the broker no longer has it. */
int tremote_get_device_index(const tremote_machine *m);
/* 1 when a and b are the same machine (same device_id), else 0. */
int tremote_devices_compatible(const tremote_machine *a,
                               const tremote_machine *b);
/* Machines that are ready now (what a program starting now would see,
   before TREMOTE_VISIBLE_DEVICES), or -1 without a broker. */
int tremote_device_count(void);
/* 1 when a broker answers and has a ready machine, else 0. */
int tremote_is_available(void);

/* ---- what the broker knows of each machine (tremote-smi) ------------------- */

struct tremote_machine_info {
  int index;              /* the broker's */
  char device_id[32];     /* its name in the broker */
  char provider[8];       /* "modal", "static", "local" */
  char state[12];         /* "starting", "ready", "lost", "failed", ... */
  char gpu_requested[32]; /* the GPU type asked for, "" if none */
  char device_name[64];   /* what the device reports, "" until ready */
  char uuid[48];          /* "GPU-...", "" unknown */
  char compute_cap[8];    /* "8.0", "" unknown */
  char address[128];      /* where the agent is */
  char origin[12];        /* "args", "file", "control" */
  char error[256];        /* why it is not ready, "" */
  char progress[256];     /* requested/starting: what it waits for
                             ("waiting for an A100-40GB on Modal... 34 s") */
  uint64_t memory_total;  /* bytes, 0 unknown */
  int64_t memory_used;    /* bytes, -1 unknown */
  int64_t memory_free;    /* bytes, -1 unknown; on a GPU, total less used
                             less the driver's reserve, as nvidia-smi's */
  int sessions;           /* programs using it now */
  int restarts;
  uint64_t round_trips;   /* of every program, since the broker started */
  uint64_t cache_hits, cache_misses; /* module loads */
  int64_t rtt_us;         /* newest PING round trip, -1 unknown */
  /* NVML's figures on a GPU machine; -1 / "" unknown (the emulated
     device, an agent without NVML) */
  int util_gpu, util_mem; /* percent */
  int temp_c;
  int power_mw;
  char driver_version[32];
  char pci_bus_id[20];    /* "00000000:3B:00.0" */
};

/*
 * Every machine of the broker, by index: *out (free() it) holds *n
 * entries.  0, or -1 with the error (no broker: the line says how to
 * start one).
 */
int tremote_list_machines(struct tremote_machine_info **out, size_t *n);

/* The pid of the broker that answers, or -1 (no broker: the error). */
int tremote_broker_pid(void);

/* ---- random numbers, per device (the seed's manual_seed & co.) ------------- */

/*
 * One Philox4x32-10 generator per device of the calling program, state
 * (seed, offset), (0, 0) until seeded; the layout of its output is in
 * tools/common/philox.h, so a host computes the same bytes.  These act on
 * the current device (cudaSetDevice), except manual_seed_all, and need the
 * program to run under the shim.  0, or -1 with the error (naming the CUDA
 * error where there is one).
 */
typedef enum { TREMOTE_RAND_UNIFORM = 0, TREMOTE_RAND_NORMAL = 1 } tremote_rand_dist;

#define TREMOTE_RNG_STATE_SIZE 16 /* u64 seed, u64 offset, little-endian */

int tremote_manual_seed(uint64_t seed);
int tremote_manual_seed_all(uint64_t seed);
int tremote_get_rng_state(uint8_t state[TREMOTE_RNG_STATE_SIZE]);
int tremote_set_rng_state(const uint8_t state[TREMOTE_RNG_STATE_SIZE]);

/*
 * Fill n floats at device pointer dptr, on its machine, with its device's
 * generator: uniform in [0, 1), or normal (mean 0, deviation 1).  Queued
 * on the default stream like cudaMemsetAsync (no data crosses the
 * network; a bad range shows at the next synchronisation).
 */
int tremote_rand_fill(void *dptr, size_t n, tremote_rand_dist dist);

/* ---- errors ---------------------------------------------------------------- */

/* The calling thread's last error, one line ("" when none). */
const char *tremote_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* TREMOTE_TREMOTE_H */
