/*
 * brk_ctl.c: the control socket.
 *
 * A SOCK_STREAM Unix socket next to the client socket.  A tool connects,
 * writes one line of JSON, reads one line of JSON back, and the broker
 * closes the connection:
 *
 *   -> {"version":1,"op":"stats"}
 *   <- {"version":1,"sessions":[...],"machines":[...]}
 *
 * Errors come back as {"version":1,"error":"..."}.  The request must
 * arrive within CTL_TIMEOUT_MS and fit in CTL_MAX bytes.  Only the
 * broker's uid (and root) may connect.  The document is written by hand
 * here; every string goes through brk_sb_json_str().
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "brk.h"
#include "brk_log.h"

#define CTL_MAX 4096u
#define CTL_TIMEOUT_MS 5000u
#define CTL_VERSION 1

struct brk_ctl_conn {
  struct brk *b;
  struct brk_ctl_conn *next, *prev;
  int fd;
  int http; /* a metrics request (GET /metrics), not a control line */
  char buf[CTL_MAX + 1];
  size_t len;
  struct brk_sb out;
  size_t out_off;
  struct brk_op *op, *timer;
};

static void ctl_arm_accept(struct brk *b);

static void metrics_arm_accept(struct brk *b);

static void conn_free(struct brk_ctl_conn *k)
{
  struct brk *b = k->b;
  int http = k->http;

  brk_op_cancel(k->op);
  brk_op_cancel(k->timer);
  if (k->fd >= 0)
    close(k->fd);
  brk_sb_release(&k->out);
  if (k->prev)
    k->prev->next = k->next;
  else
    b->ctls = k->next;
  if (k->next)
    k->next->prev = k->prev;
  free(k);
  /* Below the cap again: accept the next one. */
  if (http)
    metrics_arm_accept(b);
  else
    ctl_arm_accept(b);
}

/* Connections of that kind open now (the list is at most 2 caps long). */
static unsigned conns_of(const struct brk *b, int http)
{
  unsigned n = 0;

  for (const struct brk_ctl_conn *k = b->ctls; k; k = k->next)
    n += k->http == http;
  return n;
}

/* "[...]": the live sessions. */
static void sessions_json(struct brk *b, struct brk_sb *sb)
{
  struct brk_client *c;
  int first = 1;

  brk_sb_putc(sb, '[');
  for (c = b->clients; c; c = c->next) {
    uint64_t queued = 0;

    if (c->dead)
      continue;
    for (unsigned m = 0; m < BRK_MAX_MACHINES; m++)
      for (struct brk_lstream *ls = c->ms[m].lstreams; ls; ls = ls->next)
        if (ls->st)
          queued += brk_h2_stream_queued(ls->st);
    if (!first)
      brk_sb_putc(sb, ',');
    first = 0;
    brk_sb_puts(sb, "{\"id\":");
    brk_sb_json_str(sb, c->idhex);
    brk_sb_printf(sb,
                  ",\"pid\":%d,\"uid\":%u,\"devices\":%u,\"lanes\":%u,"
                  "\"round_trips\":%llu,\"records_to_agent\":%llu,"
                  "\"bytes_to_agent\":%llu,\"bytes_from_agent\":%llu,"
                  "\"queued_to_agent\":%llu,\"regions\":%u,"
                  "\"region_bytes_to_agent\":%llu,"
                  "\"region_bytes_from_agent\":%llu,"
                  "\"module_loads\":%llu,\"module_misses\":%llu,"
                  "\"module_bytes\":%llu,\"express_lanes\":%llu,"
                  "\"lane_moves\":%llu,\"lane_returns\":%llu}",
                  (int)c->pid, (unsigned)c->uid, c->ndev, c->nlanes,
                  (unsigned long long)c->n.round_trips,
                  (unsigned long long)c->n.records_to_agent,
                  (unsigned long long)c->n.bytes_to_agent,
                  (unsigned long long)c->n.bytes_from_agent,
                  (unsigned long long)queued, brk_regions_count(c),
                  (unsigned long long)c->region_bytes_to_agent,
                  (unsigned long long)c->region_bytes_from_agent,
                  (unsigned long long)c->n.module_loads,
                  (unsigned long long)c->n.module_misses,
                  (unsigned long long)c->n.module_bytes,
                  (unsigned long long)c->n.express_lanes,
                  (unsigned long long)c->n.lane_moves,
                  (unsigned long long)c->n.lane_returns);
  }
  brk_sb_putc(sb, ']');
}

static const char *origin_name(enum brk_origin o)
{
  return o == BRK_FROM_ARGS ? "args" : o == BRK_FROM_FILE ? "file" : "control";
}

/* What tremote-smi shows of a machine beyond the registry's own fields:
   programs using it now, its traffic, the PING round trip, and from its
   device description the uuid and compute capability. */
static void machine_extra_json(struct brk *b, const struct brk_machine *m,
                               struct brk_sb *sb)
{
  unsigned sessions = 0;
  int major = -1, minor = -1;
  /* The status request's round trip (every BRK_STATUS_MS), else the
     newest PING's. */
  uint64_t rtt = m->status_rtt_us ? m->status_rtt_us
                                  : m->h2 ? brk_h2_rtt_us(m->h2) : 0;

  for (struct brk_client *c = b->clients; c; c = c->next)
    sessions += !c->dead && c->ms[m->index].state == BRK_MS_OPEN;
  brk_sb_printf(sb,
                ",\"sessions\":%u,\"round_trips\":%llu,"
                "\"bytes_to_agent\":%llu,\"bytes_from_agent\":%llu,"
                "\"module_cache_hits\":%llu,\"module_cache_misses\":%llu,"
                "\"express\":%s,\"express_lanes\":%llu,\"lane_moves\":%llu,"
                "\"lane_returns\":%llu",
                sessions, (unsigned long long)m->n.round_trips,
                (unsigned long long)m->n.bytes_to_agent,
                (unsigned long long)m->n.bytes_from_agent,
                (unsigned long long)brk_counts_hits(&m->n),
                (unsigned long long)m->n.module_misses,
                m->h2x ? "true" : "false",
                (unsigned long long)m->n.express_lanes,
                (unsigned long long)m->n.lane_moves,
                (unsigned long long)m->n.lane_returns);
  if (rtt)
    brk_sb_printf(sb, ",\"rtt_us\":%llu", (unsigned long long)rtt);
  /* The agent's own figures, if fresh (asked every BRK_STATUS_MS). */
  if (m->state == BRK_M_READY && m->status_ms &&
      brk_now_ms() - m->status_ms < 3 * BRK_STATUS_MS &&
      m->mem_total >= m->mem_free &&
      m->mem_total - m->mem_free >= m->mem_reserved) {
    /* As nvidia-smi counts them: the total with the driver's reserved
       memory (NVML's, where "memory" is CUDA's total without it), used
       without. */
    brk_sb_printf(sb, ",\"memory_total\":%llu,\"memory_used\":%llu,"
                  "\"memory_free\":%llu,\"agent_sessions\":%u",
                  (unsigned long long)m->mem_total,
                  (unsigned long long)(m->mem_total - m->mem_free -
                                       m->mem_reserved),
                  (unsigned long long)m->mem_free,
                  m->agent_sessions);
    if (m->util_gpu >= 0)
      brk_sb_printf(sb, ",\"utilization_gpu\":%d,\"utilization_memory\":%d",
                    (int)m->util_gpu, (int)m->util_mem);
    if (m->temp_c >= 0)
      brk_sb_printf(sb, ",\"temperature_gpu\":%d", (int)m->temp_c);
    if (m->power_mw >= 0)
      brk_sb_printf(sb, ",\"power_mw\":%d", (int)m->power_mw);
    if (m->driver[0]) {
      brk_sb_puts(sb, ",\"driver_version\":");
      brk_sb_json_str(sb, m->driver);
    }
  }
  if (m->state != BRK_M_READY)
    return;
  for (uint32_t i = 0; i < m->dev.nattr; i++) {
    if (m->dev.attr[i].attr == 75) /* cudaDevAttrComputeCapabilityMajor */
      major = m->dev.attr[i].value;
    else if (m->dev.attr[i].attr == 76) /* ...Minor */
      minor = m->dev.attr[i].value;
  }
  if (major >= 0 && minor >= 0)
    brk_sb_printf(sb, ",\"compute_cap\":\"%d.%d\"", major, minor);
  /* The PCI address, nvidia-smi's way, from a real driver's attributes
     (an NVIDIA driver answered NVML: the emulated device has none). */
  if (m->driver[0]) {
    int32_t dom, bus, dev;

    if (tr_devinfo_attr(&m->dev, 50, &dom) == 0 &&  /* PciDomainId */
        tr_devinfo_attr(&m->dev, 33, &bus) == 0 &&  /* PciBusId */
        tr_devinfo_attr(&m->dev, 34, &dev) == 0 &&  /* PciDeviceId */
        dom >= 0 && bus >= 0 && bus < 256 && dev >= 0 && dev < 32)
      brk_sb_printf(sb, ",\"pci_bus_id\":\"%08X:%02X:%02X.0\"",
                    (unsigned)dom, (unsigned)bus, (unsigned)dev);
  }
  brk_sb_puts(sb, ",\"uuid\":\"GPU-");
  for (int i = 0; i < 16; i++)
    brk_sb_printf(sb, "%02x%s", m->dev.uuid[i],
                  i == 3 || i == 5 || i == 7 || i == 9 ? "-" : "");
  brk_sb_putc(sb, '"');
}

/* "[...]": the machines, removed ones left out. */
static void machines_json(struct brk *b, struct brk_sb *sb)
{
  int first = 1;

  brk_sb_putc(sb, '[');
  for (unsigned i = 0; i < b->nmachines; i++) {
    struct brk_machine *m = b->machines[i];

    if (m->removed)
      continue;
    if (!first)
      brk_sb_putc(sb, ',');
    first = 0;
    brk_sb_printf(sb, "{\"index\":%u,\"name\":", m->index);
    brk_sb_json_str(sb, m->name);
    brk_sb_puts(sb, ",\"provider\":");
    brk_sb_json_str(sb, m->provider);
    brk_sb_puts(sb, ",\"state\":");
    brk_sb_json_str(sb, brk_mstate_name(m->state));
    brk_sb_puts(sb, ",\"address\":");
    brk_sb_json_str(sb, m->address);
    brk_sb_puts(sb, ",\"device\":");
    brk_sb_json_str(sb, m->dev.name);
    brk_sb_printf(sb, ",\"memory\":%llu,\"pid\":%d,\"restarts\":%u",
                  (unsigned long long)m->dev.total_mem, (int)m->pid,
                  m->restarts ? m->restarts - 1 : 0);
    brk_sb_puts(sb, ",\"origin\":");
    brk_sb_json_str(sb, origin_name(m->origin));
    if (m->spec && m->spec->gpu[0]) {
      brk_sb_puts(sb, ",\"gpu\":");
      brk_sb_json_str(sb, m->spec->gpu);
    }
    if (m->spec && m->spec->provider == BRK_P_STATIC)
      brk_sb_printf(sb, ",\"tls\":%s", m->spec->tls == 1 ? "true" : "false");
    machine_extra_json(b, m, sb);
    if (m->modal) {
      brk_sb_puts(sb, ",\"modal_id\":");
      brk_sb_json_str(sb, brk_modal_id(m));
    }
    /* Progress while a provider works on it, else what went wrong. */
    if (m->why[0] && (m->state == BRK_M_REQUESTED ||
                      m->state == BRK_M_STARTING)) {
      char p[sizeof(m->why)];

      brk_modal_progress(m, p, sizeof(p));
      brk_sb_puts(sb, ",\"progress\":");
      brk_sb_json_str(sb, p);
    } else if (m->why[0] && m->state != BRK_M_READY) {
      brk_sb_puts(sb, ",\"error\":");
      brk_sb_json_str(sb, m->why);
    }
    brk_sb_putc(sb, '}');
  }
  brk_sb_putc(sb, ']');
}

void brk_ctl_stats_json(struct brk *b, struct brk_sb *sb)
{
  brk_sb_printf(sb, "{\"version\":%d,\"sessions\":", CTL_VERSION);
  sessions_json(b, sb);
  brk_sb_puts(sb, ",\"machines\":");
  machines_json(b, sb);
  brk_sb_putc(sb, '}');
}

#define CTL_MAX_ARGS 12

/* One request: op, version, and the other members as given. */
struct req {
  char op[256];
  char version[256];
  int have_op, have_version, op_is_string;
  struct {
    char key[64], value[256];
    int is_string;
  } arg[CTL_MAX_ARGS];
  unsigned nargs, too_many;
  char dup[64]; /* a member given twice, or "" */
};

static void req_member(const char *key, const char *value, int is_string,
                       void *ctx)
{
  struct req *r = ctx;
  int twice = (strcmp(key, "op") == 0 && r->have_op) ||
              (strcmp(key, "version") == 0 && r->have_version);

  /* JSON leaves a duplicate member to the reader; taking the first (or
     the last) silently would act on what the caller did not mean. */
  for (unsigned i = 0; i < r->nargs && !twice; i++)
    twice = strcmp(r->arg[i].key, key) == 0;
  if (twice) {
    if (!r->dup[0])
      snprintf(r->dup, sizeof(r->dup), "%.63s", key);
    return;
  }
  if (strcmp(key, "op") == 0) {
    snprintf(r->op, sizeof(r->op), "%s", value);
    r->have_op = 1;
    r->op_is_string = is_string;
  } else if (strcmp(key, "version") == 0) {
    snprintf(r->version, sizeof(r->version), "%s", value);
    r->have_version = 1;
  } else if (r->nargs == CTL_MAX_ARGS || strlen(key) >= 64) {
    r->too_many = 1;
  } else {
    snprintf(r->arg[r->nargs].key, 64, "%s", key);
    snprintf(r->arg[r->nargs].value, 256, "%s", value);
    r->arg[r->nargs++].is_string = is_string;
  }
}

static const char *req_arg(const struct req *r, const char *key)
{
  for (unsigned i = 0; i < r->nargs; i++)
    if (strcmp(r->arg[i].key, key) == 0 && r->arg[i].is_string)
      return r->arg[i].value;
  return NULL;
}

static void error_doc(struct brk_sb *sb, const char *msg)
{
  brk_sb_printf(sb, "{\"version\":%d,\"error\":", CTL_VERSION);
  brk_sb_json_str(sb, msg);
  brk_sb_putc(sb, '}');
}

#define CTL_OPS "stats, machines, sessions, broker, add, remove, reload"

/*
 * add: {"name":N,"provider":"local"|"static", and the machines file's
 * other keys as strings}.  Checked as a machines file section is; kept in
 * the state file.
 */
static void op_add(struct brk *b, const struct req *r, struct brk_sb *sb)
{
  const char *name = req_arg(r, "name");
  struct brk_mspec sp;
  char why[600];
  int idx;

  if (b->stopping) {
    error_doc(sb, "the broker is stopping");
    return;
  }
  if (!name || !brk_mspec_valid_name(name)) {
    error_doc(sb, "add needs \"name\": a letter, then up to 30 letters, "
                  "digits, '-', '_' or '.'");
    return;
  }
  brk_mspec_init(&sp, name);
  for (unsigned i = 0; i < r->nargs; i++) {
    if (strcmp(r->arg[i].key, "name") == 0)
      continue;
    if (!r->arg[i].is_string) {
      snprintf(why, sizeof(why), "%.63s must be a string", r->arg[i].key);
      error_doc(sb, why);
      return;
    }
    /* A relative path would be the broker's, not the caller's, and
       mean something else again after a restart elsewhere. */
    if ((strcmp(r->arg[i].key, "secret_file") == 0 ||
         strcmp(r->arg[i].key, "ca") == 0) &&
        r->arg[i].value[0] != '/') {
      snprintf(why, sizeof(why), "%s must be an absolute path (the "
               "broker's working directory is not the caller's)",
               r->arg[i].key);
      error_doc(sb, why);
      return;
    }
    if (brk_mspec_set(&sp, r->arg[i].key, r->arg[i].value, why,
                      sizeof(why)) < 0) {
      error_doc(sb, why);
      return;
    }
  }
  if (brk_mspec_check(&sp, why, sizeof(why)) < 0) {
    error_doc(sb, why);
    return;
  }
  idx = brk_machine_add(b, &sp, BRK_FROM_CTL, why, sizeof(why));
  if (idx < 0) {
    error_doc(sb, why);
    return;
  }
  brk_info("control: added %s (index %d, %s)", name, idx,
           b->machines[idx]->provider);
  brk_sb_printf(sb, "{\"version\":%d,\"added\":{\"index\":%d,\"name\":",
                CTL_VERSION, idx);
  brk_sb_json_str(sb, name);
  brk_sb_putc(sb, '}');
  if (brk_machines_save(b, why, sizeof(why)) < 0) {
    char w[700];

    brk_warn("state file: %s (the machine is added, but will not come back "
             "after a restart)", why);
    snprintf(w, sizeof(w), "state file not written: %s; the machine is "
             "added, but will not come back after a restart", why);
    brk_sb_puts(sb, ",\"warning\":");
    brk_sb_json_str(sb, w);
  }
  brk_sb_putc(sb, '}');
}

/* remove: {"name":N}. */
static void op_remove(struct brk *b, const struct req *r, struct brk_sb *sb)
{
  const char *name = req_arg(r, "name");
  struct brk_machine *m = name ? brk_machine_by_name(b, name) : NULL;
  enum brk_origin origin = m ? m->origin : BRK_FROM_CTL;
  char why[400];

  if (!name) {
    error_doc(sb, "remove needs \"name\"");
    return;
  }
  if (brk_machine_remove(b, name, why, sizeof(why)) < 0) {
    error_doc(sb, why);
    return;
  }
  brk_sb_printf(sb, "{\"version\":%d,\"removed\":", CTL_VERSION);
  brk_sb_json_str(sb, name);
  if (origin == BRK_FROM_CTL && brk_machines_save(b, why, sizeof(why)) < 0) {
    char w[600];

    brk_warn("state file: %s", why);
    snprintf(w, sizeof(w), "state file not written: %s; the machine would "
             "come back after a restart", why);
    brk_sb_puts(sb, ",\"warning\":");
    brk_sb_json_str(sb, w);
  }
  brk_sb_putc(sb, '}');
}

/* Build the answer to one request line into sb (without the newline). */
static void answer(struct brk *b, const char *line, size_t len,
                   struct brk_sb *sb)
{
  struct req r = {0};
  const char *why = NULL;
  char msg[400];

  if (brk_json_flat(line, len, req_member, &r, &why) < 0) {
    snprintf(msg, sizeof(msg), "bad request: %s", why);
    error_doc(sb, msg);
    return;
  }
  if (!r.have_version) {
    error_doc(sb, "missing version (every request carries \"version\":1)");
    return;
  }
  if (r.dup[0]) {
    snprintf(msg, sizeof(msg), "%s given twice", r.dup);
    error_doc(sb, msg);
    return;
  }
  if (strcmp(r.version, "1") != 0) {
    snprintf(msg, sizeof(msg), "unsupported version %.32s (supported: 1)",
             r.version);
    error_doc(sb, msg);
    return;
  }
  if (!r.have_op || !r.op_is_string) {
    error_doc(sb, "missing op (valid: " CTL_OPS ")");
    return;
  }
  if (r.too_many) {
    error_doc(sb, "too many members (at most 12, keys under 64 bytes)");
    return;
  }
  if (strcmp(r.op, "stats") == 0) {
    brk_ctl_stats_json(b, sb);
  } else if (strcmp(r.op, "machines") == 0) {
    brk_sb_printf(sb, "{\"version\":%d,\"machines\":", CTL_VERSION);
    machines_json(b, sb);
    brk_sb_putc(sb, '}');
  } else if (strcmp(r.op, "sessions") == 0) {
    brk_sb_printf(sb, "{\"version\":%d,\"sessions\":", CTL_VERSION);
    sessions_json(b, sb);
    brk_sb_putc(sb, '}');
  } else if (strcmp(r.op, "broker") == 0) {
    brk_sb_printf(sb, "{\"version\":%d,\"broker\":{\"pid\":%d,"
                      "\"version\":", CTL_VERSION, (int)getpid());
    brk_sb_json_str(sb, BRK_VERSION_STR);
    brk_sb_puts(sb, ",\"socket\":");
    brk_sb_json_str(sb, b->cfg.socket_path);
    brk_sb_printf(sb, ",\"sessions\":%u}}", b->nclients);
  } else if (strcmp(r.op, "add") == 0) {
    op_add(b, &r, sb);
  } else if (strcmp(r.op, "remove") == 0) {
    op_remove(b, &r, sb);
  } else if (strcmp(r.op, "reload") == 0) {
    unsigned added, removed;

    if (brk_machines_reload(b, &added, &removed, msg, sizeof(msg)) < 0) {
      error_doc(sb, msg);
      return;
    }
    brk_info("control: %s reloaded: %u machine(s) added, %u removed",
             b->cfg.machines_file, added, removed);
    brk_sb_printf(sb, "{\"version\":%d,\"added\":%u,\"removed\":%u}",
                  CTL_VERSION, added, removed);
  } else {
    snprintf(msg, sizeof(msg), "unknown op '%.64s' (valid: " CTL_OPS ")",
             r.op);
    error_doc(sb, msg);
  }
}

/* ---- Prometheus metrics (--metrics) ---------------------------------------- */

static void metric(struct brk_sb *sb, const char *name, const char *type,
                   const char *help, uint64_t v)
{
  brk_sb_printf(sb, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help,
                name, type, name, (unsigned long long)v);
}

void brk_metrics_text(struct brk *b, struct brk_sb *sb)
{
  static const enum brk_mstate states[] = {BRK_M_REQUESTED, BRK_M_STARTING,
                                           BRK_M_READY,
                                           BRK_M_LOST, BRK_M_FAILED,
                                           BRK_M_STOPPED};
  struct brk_counts t = b->ended;
  uint64_t live = 0;

  for (struct brk_client *c = b->clients; c; c = c->next) {
    if (c->dead || !c->hello_done)
      continue;
    live++;
    t.round_trips += c->n.round_trips;
    t.records_to_agent += c->n.records_to_agent;
    t.bytes_to_agent += c->n.bytes_to_agent;
    t.bytes_from_agent += c->n.bytes_from_agent;
    t.module_loads += c->n.module_loads;
    t.module_misses += c->n.module_misses;
    t.module_bytes += c->n.module_bytes;
  }
  metric(sb, "tremote_sessions", "gauge", "Client programs connected now.",
         live);
  metric(sb, "tremote_sessions_total", "counter",
         "Client programs that connected.", b->sessions_total);
  metric(sb, "tremote_round_trips_total", "counter",
         "Requests forwarded to agents that waited for a reply.",
         t.round_trips);
  metric(sb, "tremote_records_to_agent_total", "counter",
         "Records forwarded to agents.", t.records_to_agent);
  metric(sb, "tremote_bytes_to_agent_total", "counter",
         "Record bytes forwarded to agents.", t.bytes_to_agent);
  metric(sb, "tremote_bytes_from_agent_total", "counter",
         "Reply bytes received from agents.", t.bytes_from_agent);
  metric(sb, "tremote_module_cache_hits_total", "counter",
         "Module loads the agent served from its cache.",
         brk_counts_hits(&t));
  metric(sb, "tremote_module_cache_misses_total", "counter",
         "Module loads that needed the module uploaded.", t.module_misses);
  metric(sb, "tremote_module_bytes_uploaded_total", "counter",
         "Module bytes uploaded to agents.", t.module_bytes);
  brk_sb_puts(sb, "# HELP tremote_machine_state The machine's state (1 for "
                  "the state it is in).\n# TYPE tremote_machine_state "
                  "gauge\n");
  for (unsigned i = 0; i < b->nmachines; i++) {
    const struct brk_machine *m = b->machines[i];

    if (m->removed)
      continue;
    for (unsigned k = 0; k < sizeof(states) / sizeof(states[0]); k++)
      brk_sb_printf(sb,
                    "tremote_machine_state{index=\"%u\",name=\"%s\","
                    "provider=\"%s\",state=\"%s\"} %d\n",
                    m->index, m->name, m->provider,
                    brk_mstate_name(states[k]), m->state == states[k]);
  }
  brk_sb_puts(sb, "# HELP tremote_machine_restarts_total Times the "
                  "machine was started or connected again.\n# TYPE "
                  "tremote_machine_restarts_total counter\n");
  for (unsigned i = 0; i < b->nmachines; i++) {
    const struct brk_machine *m = b->machines[i];

    if (!m->removed)
      brk_sb_printf(sb,
                    "tremote_machine_restarts_total{index=\"%u\","
                    "name=\"%s\"} %u\n",
                    m->index, m->name, m->restarts ? m->restarts - 1 : 0);
  }
}

/* The HTTP answer to the request head in k->buf. */
static void http_answer(struct brk_ctl_conn *k)
{
  struct brk_sb body;
  const char *status = "200 OK";

  brk_sb_init(&body);
  if (strncmp(k->buf, "GET /metrics ", 13) == 0 ||
      strncmp(k->buf, "GET /metrics?", 13) == 0) {
    brk_metrics_text(k->b, &body);
  } else if (strncmp(k->buf, "GET ", 4) == 0) {
    status = "404 Not Found";
    brk_sb_puts(&body, "tremote-broker serves GET /metrics only\n");
  } else {
    status = "405 Method Not Allowed";
    brk_sb_puts(&body, "tremote-broker serves GET /metrics only\n");
  }
  brk_sb_printf(&k->out,
                "HTTP/1.1 %s\r\nContent-Type: text/plain; version=0.0.4; "
                "charset=utf-8\r\nContent-Length: %zu\r\nConnection: "
                "close\r\n\r\n",
                status, body.len);
  if (body.s)
    brk_sb_puts(&k->out, body.s); /* text: no NUL inside */
  if (body.oom)
    k->out.oom = 1;
  brk_sb_release(&body);
}

static void on_written(struct brk_op *op, int res, void *arg)
{
  struct brk_ctl_conn *k = arg;

  k->op = NULL;
  if (res <= 0) {
    conn_free(k);
    return;
  }
  k->out_off += (size_t)res;
  if (k->out_off >= k->out.len) {
    conn_free(k);
    return;
  }
  k->op = brk_loop_write(k->b->loop, k->fd, k->out.s + k->out_off,
                         k->out.len - k->out_off, on_written, k);
  if (!k->op)
    conn_free(k);
}

static void respond(struct brk_ctl_conn *k, size_t linelen)
{
  if (k->http) {
    http_answer(k);
  } else {
    answer(k->b, k->buf, linelen, &k->out);
    brk_sb_putc(&k->out, '\n');
  }
  if (k->out.oom) {
    conn_free(k);
    return;
  }
  k->op = brk_loop_write(k->b->loop, k->fd, k->out.s, k->out.len, on_written,
                         k);
  if (!k->op)
    conn_free(k);
}

static void on_read(struct brk_op *op, int res, void *arg)
{
  struct brk_ctl_conn *k = arg;
  char *nl;

  k->op = NULL;
  if (res < 0) {
    conn_free(k);
    return;
  }
  if (res == 0) {
    /* EOF: a request without its newline is still a request. */
    if (k->len)
      respond(k, k->len);
    else
      conn_free(k);
    return;
  }
  memcpy(k->buf + k->len, brk_op_buf(op), (size_t)res);
  k->len += (size_t)res;
  k->buf[k->len] = 0;
  nl = k->http ? strstr(k->buf, "\r\n\r\n") : memchr(k->buf, '\n', k->len);
  if (nl) {
    respond(k, (size_t)(nl - k->buf));
    return;
  }
  if (k->len >= CTL_MAX) {
    error_doc(&k->out, "request longer than 4096 bytes");
    brk_sb_putc(&k->out, '\n');
    k->op = brk_loop_write(k->b->loop, k->fd, k->out.s, k->out.len,
                           on_written, k);
    if (!k->op)
      conn_free(k);
    return;
  }
  k->op = brk_loop_read(k->b->loop, k->fd, CTL_MAX - k->len, on_read, k);
  if (!k->op)
    conn_free(k);
}

static void on_timeout(struct brk_op *op, int res, void *arg)
{
  struct brk_ctl_conn *k = arg;

  k->timer = NULL;
  brk_dbg("control connection timed out");
  conn_free(k);
}

/* A connection (fd taken) that reads one request within CTL_TIMEOUT_MS:
   a control line, or with http a metrics request. */
static void conn_new(struct brk *b, int fd, int http)
{
  struct brk_ctl_conn *k = calloc(1, sizeof(*k));

  if (!k) {
    close(fd);
    return;
  }
  k->b = b;
  k->fd = fd;
  k->http = http;
  brk_sb_init(&k->out);
  k->next = b->ctls;
  if (b->ctls)
    b->ctls->prev = k;
  b->ctls = k;
  k->op = brk_loop_read(b->loop, k->fd, CTL_MAX, on_read, k);
  k->timer = brk_loop_timeout(b->loop, CTL_TIMEOUT_MS, on_timeout, k);
  if (!k->op || !k->timer)
    conn_free(k);
}

static void on_ctl_retry(struct brk_op *op, int res, void *arg)
{
  struct brk *b = arg;

  (void)op;
  (void)res;
  b->ctl_accept_op = NULL;
  ctl_arm_accept(b);
}

static void on_accept(struct brk_op *op, int res, void *arg)
{
  struct brk *b = arg;
  struct ucred cred;
  socklen_t len = sizeof(cred);

  b->ctl_accept_op = NULL;
  if (brk_accept_starved(b, res, BRK_ACCEPT_CTL, "control socket")) {
    if (!b->stopping)
      b->ctl_accept_op = brk_loop_timeout(b->loop, BRK_ACCEPT_RETRY_MS,
                                          on_ctl_retry, b);
    return;
  }
  if (res < 0) {
    ctl_arm_accept(b);
    return;
  }
  if (getsockopt(res, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
      (cred.uid != b->uid && cred.uid != 0)) {
    brk_warn("control socket: rejecting pid %d (uid %u)", (int)cred.pid,
             (unsigned)cred.uid);
    close(res);
    ctl_arm_accept(b);
    return;
  }
  conn_new(b, res, 0);
  ctl_arm_accept(b);
}

static void ctl_arm_accept(struct brk *b)
{
  if (b->stopping || b->ctl_accept_op ||
      conns_of(b, 0) >= BRK_CTL_MAX_CONNS)
    return;
  b->ctl_accept_op = brk_loop_accept(b->loop, b->ctl_fd, on_accept, b);
}

static void on_metrics_retry(struct brk_op *op, int res, void *arg)
{
  struct brk *b = arg;

  (void)op;
  (void)res;
  b->metrics_accept_op = NULL;
  metrics_arm_accept(b);
}

/* A metrics client: loopback TCP, anyone on this host may read them. */
static void on_metrics_accept(struct brk_op *op, int res, void *arg)
{
  struct brk *b = arg;

  (void)op;
  b->metrics_accept_op = NULL;
  if (brk_accept_starved(b, res, BRK_ACCEPT_METRICS, "--metrics")) {
    if (!b->stopping)
      b->metrics_accept_op = brk_loop_timeout(b->loop, BRK_ACCEPT_RETRY_MS,
                                              on_metrics_retry, b);
    return;
  }
  if (res >= 0)
    conn_new(b, res, 1);
  metrics_arm_accept(b);
}

static void metrics_arm_accept(struct brk *b)
{
  if (b->stopping || b->metrics_accept_op || b->metrics_fd < 0 ||
      conns_of(b, 1) >= BRK_CTL_MAX_CONNS)
    return;
  b->metrics_accept_op = brk_loop_accept(b->loop, b->metrics_fd,
                                         on_metrics_accept, b);
}

int brk_ctl_start(struct brk *b)
{
  ctl_arm_accept(b);
  metrics_arm_accept(b);
  return b->ctl_accept_op && (b->metrics_fd < 0 || b->metrics_accept_op)
             ? 0
             : -ENOMEM;
}

void brk_ctl_stop(struct brk *b)
{
  brk_op_cancel(b->ctl_accept_op);
  b->ctl_accept_op = NULL;
  brk_op_cancel(b->metrics_accept_op);
  b->metrics_accept_op = NULL;
  while (b->ctls)
    conn_free(b->ctls);
}
