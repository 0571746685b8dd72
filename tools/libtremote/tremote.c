/*
 * tremote.c: libtremote (include/tremote/tremote.h).
 *
 * Machines live in the broker; this library only talks to its control
 * socket (PROTOCOL.md §6: one line of JSON each way per connection, read
 * with jansson) and keeps, per machine object, what identifies it: the
 * device_id (its name in the broker), provider and GPU type.  The broker's
 * index is asked for when wanted, since a machine can be removed behind
 * our back.
 */
#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "client.h"
#include "cuerr.h"
#include "gpus.h"
#include "tremote/shim_entry.h"
#include "tremote/tremote.h"

#define CTL_TIMEOUT_MS 10000
#define CTL_REPLY_MAX (1u << 20)

/* ---- errors ----------------------------------------------------------------- */

static __thread char last_error[512];

const char *tremote_last_error(void)
{
  return last_error;
}

static void set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void set_error(const char *fmt, ...)
{
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(last_error, sizeof(last_error), fmt, ap);
  va_end(ap);
}

/* ---- GPU types ------------------------------------------------------------- */

const struct tremote_gpu_info *tremote_gpu_info(tremote_gpu_type t)
{
  return (unsigned)t < TREMOTE_GPU_COUNT ? &tr_gpus[t] : NULL;
}

const char *tremote_gpu_name(tremote_gpu_type t)
{
  return (unsigned)t < TREMOTE_GPU_COUNT ? tr_gpus[t].name : NULL;
}

int tremote_gpu_parse(const char *s, tremote_gpu_type *out)
{
  int i = tr_gpu_find(s);

  if (i < 0) {
    set_error("unknown GPU type '%.64s' (valid: %s)", s ? s : "(null)",
              tr_gpu_valid_list());
    return -1;
  }
  *out = (tremote_gpu_type)i;
  return 0;
}

/* ---- providers ---------------------------------------------------------------- */

static const char *const providers[] = {"modal", "static", "local"};
static const char *const provider_titles[] = {"Modal", "Static", "Local"};

const char *tremote_provider_name(tremote_provider p)
{
  return (unsigned)p < 3 ? providers[p] : NULL;
}

/* ---- the control socket ------------------------------------------------------ */

/* Where the broker's control socket is (see tremote.h). */
static void control_path(char *buf, size_t cap)
{
  const char *p = getenv("TREMOTE_CONTROL_SOCKET"), *x;
  char sock[PATH_MAX];

  if (p && p[0]) {
    snprintf(buf, cap, "%s", p);
    return;
  }
  /* The broker's client socket, as programs find it; control.sock is
     beside it (tremote-broker's default). */
  tr_client_socket_path(sock, sizeof(sock));
  x = strrchr(sock, '/');
  if (x)
    snprintf(buf, cap, "%.*s/control.sock", (int)(x - sock), sock);
  else
    snprintf(buf, cap, "control.sock");
}

/* One request (a JSON object, taken), its answer, or NULL with the error.
   An answer that is an error document is NULL too, with its text. */
static json_t *ctl(json_t *req)
{
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  char path[sizeof(sa.sun_path)], *line = NULL, *buf = NULL;
  size_t len = 0;
  json_t *ans = NULL, *err;
  json_error_t je;
  int fd = -1;

  json_object_set_new(req, "version", json_integer(1));
  line = json_dumps(req, JSON_COMPACT);
  json_decref(req);
  control_path(path, sizeof(path));
  buf = malloc(CTL_REPLY_MAX + 1);
  if (!line || !buf) {
    set_error("out of memory");
    goto out;
  }
  memcpy(sa.sun_path, path, strlen(path) + 1);
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
    set_error("no tremote broker answers at %s (%s): start one with "
              "tremote-broker, or set TREMOTE_BROKER_SOCKET",
              path, strerror(errno));
    goto out;
  }
  if (send(fd, line, strlen(line), MSG_NOSIGNAL) != (ssize_t)strlen(line) ||
      send(fd, "\n", 1, MSG_NOSIGNAL) != 1) {
    set_error("writing to the broker at %s: %s", path, strerror(errno));
    goto out;
  }
  for (;;) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    ssize_t n;

    if (poll(&p, 1, CTL_TIMEOUT_MS) <= 0) {
      set_error("the broker at %s did not answer in %d s", path,
                CTL_TIMEOUT_MS / 1000);
      goto out;
    }
    n = read(fd, buf + len, CTL_REPLY_MAX - len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    len += (size_t)n;
    if (len == CTL_REPLY_MAX)
      break;
  }
  buf[len] = 0;
  ans = json_loads(buf, 0, &je);
  if (!ans || !json_is_object(ans)) {
    set_error("the broker's answer is not JSON: %s", je.text);
    json_decref(ans);
    ans = NULL;
    goto out;
  }
  err = json_object_get(ans, "error");
  if (err) {
    set_error("%s", json_is_string(err) ? json_string_value(err)
                                        : "the broker refused");
    json_decref(ans);
    ans = NULL;
  }
out:
  if (fd >= 0)
    close(fd);
  free(line);
  free(buf);
  return ans;
}

/* The broker's machines array (a new reference), or NULL. */
static json_t *machines(void)
{
  json_t *ans = ctl(json_pack("{s:s}", "op", "machines")), *m;

  if (!ans)
    return NULL;
  m = json_incref(json_object_get(ans, "machines"));
  json_decref(ans);
  if (!json_is_array(m)) {
    json_decref(m);
    set_error("the broker's machine list is malformed");
    return NULL;
  }
  return m;
}

/* ---- machines ------------------------------------------------------------------- */

struct tremote_machine {
  char device_id[32];
  char device_name[48];
  tremote_provider provider;
  tremote_gpu_type gpu;
  int index; /* the broker's, when last seen */
};

/* "a100-40gb" -> "a10040gb" */
static void squash(const char *s, char *out, size_t cap)
{
  size_t n = 0;

  for (; *s && n + 1 < cap; s++)
    if (isalnum((unsigned char)*s))
      out[n++] = (char)tolower((unsigned char)*s);
  out[n] = 0;
}

static tremote_machine *machine_new(tremote_provider p, tremote_gpu_type g,
                                    const char *id, int index)
{
  tremote_machine *m = calloc(1, sizeof(*m));

  if (!m) {
    set_error("out of memory");
    return NULL;
  }
  snprintf(m->device_id, sizeof(m->device_id), "%s", id);
  snprintf(m->device_name, sizeof(m->device_name), "%s %s",
           provider_titles[p], tr_gpus[g].name);
  m->provider = p;
  m->gpu = g;
  m->index = index;
  return m;
}

tremote_machine *tremote_create_machine(tremote_provider p, const char *gpu,
                                        const struct tremote_machine_opts *o)
{
  static const struct tremote_machine_opts none;
  tremote_gpu_type g;
  uint32_t rnd;
  char id[32], sq[16];
  json_t *req, *ans;
  int index;

  if (!o)
    o = &none;
  if ((unsigned)p > TREMOTE_PROVIDER_LOCAL) {
    set_error("unknown provider %d (valid: modal, static, local)", (int)p);
    return NULL;
  }
  if (tremote_gpu_parse(gpu, &g) < 0)
    return NULL;
  if (p != TREMOTE_PROVIDER_MODAL && (o->idle_timeout_s || o->timeout_s)) {
    set_error("idle_timeout_s and timeout_s are for MODAL machines");
    return NULL;
  }
  if (o->idle_timeout_s < -1 || o->idle_timeout_s > 86400 ||
      (o->timeout_s && (o->timeout_s < 60 || o->timeout_s > 86400))) {
    set_error("idle_timeout_s: -1 (never) or 0 to 86400; timeout_s: 60 to "
              "86400 (0: the default)");
    return NULL;
  }
  if (p == TREMOTE_PROVIDER_STATIC && (!o->address || !o->secret_file)) {
    set_error("a static machine needs opts.address (IP:PORT) and "
              "opts.secret_file");
    return NULL;
  }
  if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
    rnd = (uint32_t)time(NULL) ^ (uint32_t)getpid();
  squash(tr_gpus[g].name, sq, sizeof(sq));
  snprintf(id, sizeof(id), "%s-%s-%08x", providers[p], sq, rnd);
  req = json_pack("{s:s,s:s,s:s,s:s}", "op", "add", "name", id, "provider",
                  providers[p], "gpu", tr_gpus[g].name);
  if (!req) {
    set_error("out of memory");
    return NULL;
  }
  if (o->address)
    json_object_set_new(req, "address", json_string(o->address));
  if (o->secret_file)
    json_object_set_new(req, "secret_file", json_string(o->secret_file));
  if (o->tls)
    json_object_set_new(req, "tls", json_string("on"));
  if (o->fingerprint)
    json_object_set_new(req, "fingerprint", json_string(o->fingerprint));
  if (o->ca)
    json_object_set_new(req, "ca", json_string(o->ca));
  if (o->idle_timeout_s) {
    char v[24];

    snprintf(v, sizeof(v), "%ld", o->idle_timeout_s < 0 ? 0 : o->idle_timeout_s);
    json_object_set_new(req, "idle_timeout", json_string(v));
  }
  if (o->timeout_s) {
    char v[24];

    snprintf(v, sizeof(v), "%u", o->timeout_s);
    json_object_set_new(req, "timeout", json_string(v));
  }
  ans = ctl(req);
  if (!ans)
    return NULL;
  index = (int)json_integer_value(
      json_object_get(json_object_get(ans, "added"), "index"));
  json_decref(ans);
  return machine_new(p, g, id, index);
}

tremote_machine *tremote_create_modal_machine(const char *gpu,
                                              const struct tremote_machine_opts *o)
{
  return tremote_create_machine(TREMOTE_PROVIDER_MODAL, gpu, o);
}

const char *tremote_machine_device_id(const tremote_machine *m)
{
  return m->device_id;
}

const char *tremote_machine_device_name(const tremote_machine *m)
{
  return m->device_name;
}

tremote_provider tremote_machine_provider(const tremote_machine *m)
{
  return m->provider;
}

tremote_gpu_type tremote_machine_gpu(const tremote_machine *m)
{
  return m->gpu;
}

const char *tremote_machine_modal_gpu_spec(const tremote_machine *m)
{
  if (m->provider != TREMOTE_PROVIDER_MODAL) {
    set_error("%s is a %s machine: modal_gpu_spec is only for Modal "
              "machines", m->device_id, providers[m->provider]);
    return NULL;
  }
  return tr_gpus[m->gpu].modal_spec;
}

int tremote_machine_remote_index(const tremote_machine *m)
{
  return m->index;
}

char *tremote_machine_to_string(const tremote_machine *m, char *buf,
                                size_t cap)
{
  if (cap)
    snprintf(buf, cap,
             "tremote_machine(device_id=%s, name=%s, provider=%s, index=%d)",
             m->device_id, m->device_name, providers[m->provider], m->index);
  return buf;
}

int tremote_machine_equal(const tremote_machine *a, const tremote_machine *b)
{
  return a && b && strcmp(a->device_id, b->device_id) == 0;
}

uint64_t tremote_machine_hash(const tremote_machine *m)
{
  uint64_t h = 1469598103934665603ull; /* FNV-1a of the device_id */

  for (const char *p = m->device_id; *p; p++)
    h = (h ^ (uint8_t)*p) * 1099511628211ull;
  return h;
}

int tremote_remove_machine(const tremote_machine *m)
{
  json_t *ans = ctl(json_pack("{s:s,s:s}", "op", "remove", "name",
                              m->device_id));

  if (!ans)
    return -1;
  json_decref(ans);
  return 0;
}

void tremote_machine_free(tremote_machine *m)
{
  free(m);
}

/* ---- the registry ------------------------------------------------------------------ */

/* A machine object for a broker list entry. */
static tremote_machine *from_entry(json_t *e)
{
  const char *name = json_string_value(json_object_get(e, "name"));
  const char *prov = json_string_value(json_object_get(e, "provider"));
  const char *gpu = json_string_value(json_object_get(e, "gpu"));
  tremote_provider p = TREMOTE_PROVIDER_LOCAL;
  tremote_gpu_type g = TREMOTE_GPU_T4;
  tremote_machine *m;
  char saved[sizeof(last_error)];

  if (!name || !prov) {
    set_error("the broker's machine list is malformed");
    return NULL;
  }
  for (int i = 0; i < 3; i++)
    if (strcmp(prov, providers[i]) == 0)
      p = (tremote_provider)i;
  /* A machine named with no known GPU type (a machines file may say
     anything, or nothing) is shown as what its name says. */
  memcpy(saved, last_error, sizeof(saved));
  if (!gpu || tremote_gpu_parse(gpu, &g) < 0)
    g = TREMOTE_GPU_COUNT;
  memcpy(last_error, saved, sizeof(saved));
  m = machine_new(p, g == TREMOTE_GPU_COUNT ? TREMOTE_GPU_T4 : g, name,
                  (int)json_integer_value(json_object_get(e, "index")));
  if (m && g == TREMOTE_GPU_COUNT)
    snprintf(m->device_name, sizeof(m->device_name), "%s %s",
             provider_titles[p],
             json_string_value(json_object_get(e, "device"))
                 ? json_string_value(json_object_get(e, "device"))
                 : "machine");
  return m;
}

tremote_machine *tremote_get_device_by_index(int index)
{
  json_t *list = machines(), *e, *hit = NULL;
  tremote_machine *m = NULL;
  size_t i;

  if (!list)
    return NULL;
  json_array_foreach(list, i, e)
    if (json_integer_value(json_object_get(e, "index")) == index)
      hit = e;
  if (hit)
    m = from_entry(hit); /* sets the error when it fails */
  else
    set_error("the broker has no machine with index %d", index);
  json_decref(list);
  return m;
}

int tremote_get_device_index(const tremote_machine *m)
{
  json_t *list = machines(), *e;
  int index = -1;
  size_t i;

  if (!list)
    return -1;
  json_array_foreach(list, i, e) {
    const char *name = json_string_value(json_object_get(e, "name"));

    if (name && strcmp(name, m->device_id) == 0)
      index = (int)json_integer_value(json_object_get(e, "index"));
  }
  json_decref(list);
  if (index < 0)
    set_error("the broker has no machine %s (removed?)", m->device_id);
  return index;
}

int tremote_devices_compatible(const tremote_machine *a,
                               const tremote_machine *b)
{
  return tremote_machine_equal(a, b);
}

int tremote_device_count(void)
{
  json_t *list = machines(), *e;
  int n = 0;
  size_t i;

  if (!list)
    return -1;
  json_array_foreach(list, i, e) {
    const char *st = json_string_value(json_object_get(e, "state"));

    n += st && strcmp(st, "ready") == 0;
  }
  json_decref(list);
  return n;
}

int tremote_is_available(void)
{
  return tremote_device_count() > 0;
}

/* ---- the machine list ------------------------------------------------------------ */

static void copy_str(char *dst, size_t cap, json_t *o, const char *key)
{
  const char *v = json_string_value(json_object_get(o, key));

  snprintf(dst, cap, "%s", v ? v : "");
}

static int64_t get_int(json_t *o, const char *key, int64_t dflt)
{
  json_t *v = json_object_get(o, key);

  return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

int tremote_machine_wait(const tremote_machine *m, int timeout_s,
                         tremote_progress_fn progress, void *arg)
{
  struct timespec t0, now;
  char last[256] = "";

  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    struct tremote_machine_info *v, *me = NULL;
    size_t n;

    if (tremote_list_machines(&v, &n) < 0)
      return -1;
    for (size_t i = 0; i < n; i++)
      if (strcmp(v[i].device_id, m->device_id) == 0)
        me = &v[i];
    if (!me) {
      free(v);
      set_error("%s is not a machine of the broker any more (removed)",
                m->device_id);
      return -1;
    }
    if (strcmp(me->state, "ready") == 0) {
      free(v);
      return 0;
    }
    if (strcmp(me->state, "failed") == 0 || strcmp(me->state, "stopped") == 0) {
      set_error("%s %s: %s", m->device_id, me->state,
                me->error[0] ? me->error : "no reason given");
      free(v);
      return -1;
    }
    if (progress && me->progress[0] && strcmp(me->progress, last) != 0) {
      snprintf(last, sizeof(last), "%s", me->progress);
      progress(last, arg);
    }
    free(v);
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (timeout_s > 0 && now.tv_sec - t0.tv_sec >= timeout_s) {
      set_error("%s is not ready after %d s (%s)", m->device_id, timeout_s,
                last[0] ? last : "no progress reported");
      return -1;
    }
    usleep(500000);
  }
}

int tremote_list_machines(struct tremote_machine_info **out, size_t *n)
{
  json_t *list = machines(), *e;
  struct tremote_machine_info *v;
  size_t i;

  *out = NULL;
  *n = 0;
  if (!list)
    return -1;
  v = calloc(json_array_size(list) ? json_array_size(list) : 1, sizeof(*v));
  if (!v) {
    json_decref(list);
    set_error("out of memory");
    return -1;
  }
  json_array_foreach(list, i, e) {
    struct tremote_machine_info *m = &v[i];

    m->index = (int)get_int(e, "index", -1);
    copy_str(m->device_id, sizeof(m->device_id), e, "name");
    copy_str(m->provider, sizeof(m->provider), e, "provider");
    copy_str(m->state, sizeof(m->state), e, "state");
    copy_str(m->gpu_requested, sizeof(m->gpu_requested), e, "gpu");
    copy_str(m->device_name, sizeof(m->device_name), e, "device");
    copy_str(m->uuid, sizeof(m->uuid), e, "uuid");
    copy_str(m->compute_cap, sizeof(m->compute_cap), e, "compute_cap");
    copy_str(m->address, sizeof(m->address), e, "address");
    copy_str(m->origin, sizeof(m->origin), e, "origin");
    copy_str(m->error, sizeof(m->error), e, "error");
    copy_str(m->progress, sizeof(m->progress), e, "progress");
    /* The agent's figure (NVML's, as nvidia-smi's) when fresh, else the
       device description's (CUDA's total, less the driver's reserve). */
    m->memory_total = (uint64_t)get_int(e, "memory_total",
                                        get_int(e, "memory", 0));
    m->memory_used = get_int(e, "memory_used", -1);
    /* Brokers before "memory_free" knew no reserve. */
    m->memory_free = get_int(e, "memory_free",
                             m->memory_used >= 0 && m->memory_total
                                 ? (int64_t)m->memory_total - m->memory_used
                                 : -1);
    m->sessions = (int)get_int(e, "sessions", 0);
    m->restarts = (int)get_int(e, "restarts", 0);
    m->round_trips = (uint64_t)get_int(e, "round_trips", 0);
    m->cache_hits = (uint64_t)get_int(e, "module_cache_hits", 0);
    m->cache_misses = (uint64_t)get_int(e, "module_cache_misses", 0);
    m->rtt_us = get_int(e, "rtt_us", -1);
    m->util_gpu = (int)get_int(e, "utilization_gpu", -1);
    m->util_mem = (int)get_int(e, "utilization_memory", -1);
    m->temp_c = (int)get_int(e, "temperature_gpu", -1);
    m->power_mw = (int)get_int(e, "power_mw", -1);
    copy_str(m->driver_version, sizeof(m->driver_version), e,
             "driver_version");
    copy_str(m->pci_bus_id, sizeof(m->pci_bus_id), e, "pci_bus_id");
  }
  *n = json_array_size(list);
  *out = v;
  json_decref(list);
  return 0;
}

int tremote_broker_pid(void)
{
  json_t *ans = ctl(json_pack("{s:s}", "op", "broker"));
  int pid;

  if (!ans)
    return -1;
  pid = (int)json_integer_value(
      json_object_get(json_object_get(ans, "broker"), "pid"));
  json_decref(ans);
  if (pid <= 0) {
    set_error("the broker did not say its pid");
    return -1;
  }
  return pid;
}

/* ---- the program's own CUDA state, through the shim ---------------------------- */

/* The shim's entry table when this program runs under it, else NULL. */
static const struct tremote_shim_entry_v1 *shim(void)
{
  const struct tremote_shim_entry_v1 *e =
      dlsym(RTLD_DEFAULT, TREMOTE_SHIM_ENTRY_SYMBOL);

  if (!e || e->version != 1 ||
      e->size < sizeof(struct tremote_shim_entry_v1)) {
    set_error("this program does not run under tremote (libtremote_shim.so "
              "is not preloaded: use tremote run, or LD_PRELOAD)");
    return NULL;
  }
  return e;
}

int tremote_machine_device(const tremote_machine *m)
{
  const struct tremote_shim_entry_v1 *e = shim();
  int dev;

  if (!e)
    return -1;
  dev = e->machine_device(m->index);
  if (dev < 0)
    set_error("%s (machine %d) is not a device of this program (hidden by "
              "TREMOTE_VISIBLE_DEVICES, or added after it started)",
              m->device_id, m->index);
  return dev;
}

int tremote_current_device(void)
{
  const struct tremote_shim_entry_v1 *e = shim();

  return e ? e->current_device() : -1;
}

/* ---- random numbers ---------------------------------------------------------------- */

/* A CUDA result as 0 or -1 with its name in the error. */
static int cuda_result(int rc, const char *what)
{
  if (rc == 0)
    return 0;
  set_error("%s: %s (%s)", what, tr_cuerr_name(rc), tr_cuerr_string(rc));
  return -1;
}

int tremote_manual_seed(uint64_t seed)
{
  const struct tremote_shim_entry_v1 *e = shim();

  return e ? cuda_result(e->manual_seed(e->current_device(), seed),
                         "manual_seed")
           : -1;
}

int tremote_manual_seed_all(uint64_t seed)
{
  const struct tremote_shim_entry_v1 *e = shim();

  return e ? cuda_result(e->manual_seed(-1, seed), "manual_seed_all") : -1;
}

int tremote_get_rng_state(uint8_t state[TREMOTE_RNG_STATE_SIZE])
{
  const struct tremote_shim_entry_v1 *e = shim();
  uint64_t seed, offset;

  if (!e || cuda_result(e->get_rng_state(e->current_device(), &seed, &offset),
                        "get_rng_state") < 0)
    return -1;
  for (int i = 0; i < 8; i++) {
    state[i] = (uint8_t)(seed >> (8 * i));
    state[8 + i] = (uint8_t)(offset >> (8 * i));
  }
  return 0;
}

int tremote_set_rng_state(const uint8_t state[TREMOTE_RNG_STATE_SIZE])
{
  const struct tremote_shim_entry_v1 *e = shim();
  uint64_t seed = 0, offset = 0;

  if (!e)
    return -1;
  for (int i = 7; i >= 0; i--) {
    seed = seed << 8 | state[i];
    offset = offset << 8 | state[8 + i];
  }
  return cuda_result(e->set_rng_state(e->current_device(), seed, offset),
                     "set_rng_state");
}

int tremote_rand_fill(void *dptr, size_t n, tremote_rand_dist dist)
{
  const struct tremote_shim_entry_v1 *e = shim();

  if (!e)
    return -1;
  if (dist != TREMOTE_RAND_UNIFORM && dist != TREMOTE_RAND_NORMAL) {
    set_error("rand_fill: unknown distribution %d (valid: "
              "TREMOTE_RAND_UNIFORM, TREMOTE_RAND_NORMAL)", (int)dist);
    return -1;
  }
  return cuda_result(e->rand_fill(dptr, n, (int)dist), "rand_fill");
}
