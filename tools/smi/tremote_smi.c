/*
 * tremote-smi: the broker's machines, the way nvidia-smi lists GPUs.
 *
 * Everything comes from the broker's control socket through libtremote
 * (tremote_list_machines); what a machine cannot tell yet is [N/A].
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tremote/tremote.h"

#define EXIT_USAGE 2
#define EXIT_BROKER 3

static const char usage_text[] =
    "Usage: tremote-smi [OPTION]...\n"
    "List the machines (GPUs) of the tremote broker, as nvidia-smi lists a\n"
    "host's GPUs: index (the broker's machine index, what\n"
    "TREMOTE_VISIBLE_DEVICES names), the GPU type asked for and the device\n"
    "the machine reports, provider, state, memory and the programs using it.\n"
    "\n"
    "  -L, --list-gpus        one line per machine\n"
    "  --query-gpu=FIELDS     the values of FIELDS (comma-separated), one\n"
    "                         line per machine; see FIELDS below\n"
    "  --format=FORMAT        with --query-gpu: csv, plus noheader and/or\n"
    "                         nounits (csv,noheader,nounits)\n"
    "  --json                 everything as a JSON array\n"
    "  -i, --id=INDEX         only the machine with this index\n"
    "  -l, --loop=SEC         print again every SEC seconds until stopped\n"
    "  -h, --help             this help\n"
    "  --version              the version\n"
    "\n"
    "FIELDS (nvidia-smi's names, then tremote's):\n"
    "  index, name, uuid, memory.total, memory.used, memory.free,\n"
    "  utilization.gpu, utilization.memory, temperature.gpu, power.draw,\n"
    "  driver_version, compute_cap, pci.bus_id, machine.id,\n"
    "  machine.provider, machine.state, machine.gpu (the type asked for),\n"
    "  machine.address, machine.rtt_ms, machine.round_trips,\n"
    "  machine.sessions, machine.error, machine.progress, cache.hits,\n"
    "  cache.misses\n"
    "A value the machine cannot tell (yet) is [N/A]: utilization,\n"
    "temperature, power, driver and PCI address come from NVML on a GPU\n"
    "machine (the emulated device has none).\n"
    "\n"
    "The broker is found as programs find it ($TREMOTE_BROKER_SOCKET, else\n"
    "$XDG_RUNTIME_DIR/tremote/, ...); $TREMOTE_CONTROL_SOCKET names its\n"
    "control socket directly.\n"
    "\n"
    "Exit status: 0 listed; 2 bad usage (the message names what is valid);\n"
    "3 no broker answered, or it refused (the message says why); 6 --id\n"
    "names no machine.\n";

enum fmt { F_TABLE, F_LIST, F_CSV, F_JSON };

struct opts {
  enum fmt fmt;
  char fields[1024];
  int header, units;
  int id; /* -1: all */
  double loop;
};

/* ---- fields -------------------------------------------------------------- */

struct field {
  const char *name;
  const char *unit; /* shown in the header and after values, or NULL */
};

static const struct field fields[] = {
    {"index", NULL},          {"name", NULL},
    {"uuid", NULL},           {"memory.total", "MiB"},
    {"memory.used", "MiB"},   {"memory.free", "MiB"},
    {"utilization.gpu", "%"}, {"utilization.memory", "%"},
    {"temperature.gpu", NULL}, {"power.draw", "W"},
    {"driver_version", NULL}, {"compute_cap", NULL},
    {"pci.bus_id", NULL},     {"machine.id", NULL},
    {"machine.provider", NULL}, {"machine.state", NULL},
    {"machine.gpu", NULL},    {"machine.address", NULL},
    {"machine.rtt_ms", "ms"}, {"machine.round_trips", NULL},
    {"machine.sessions", NULL}, {"machine.error", NULL},
    {"machine.progress", NULL},
    {"cache.hits", NULL},     {"cache.misses", NULL},
};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

static const struct field *field_of(const char *name)
{
  for (size_t i = 0; i < NFIELDS; i++)
    if (strcmp(fields[i].name, name) == 0)
      return &fields[i];
  return NULL;
}

/* The value of f for m into buf (without unit), or "" when unknown. */
static void value(const struct tremote_machine_info *m, const char *f,
                  char *buf, size_t cap)
{
  buf[0] = 0;
  if (!strcmp(f, "index"))
    snprintf(buf, cap, "%d", m->index);
  else if (!strcmp(f, "name"))
    snprintf(buf, cap, "%s", m->device_name);
  else if (!strcmp(f, "uuid"))
    snprintf(buf, cap, "%s", m->uuid);
  else if (!strcmp(f, "memory.total") && m->memory_total)
    snprintf(buf, cap, "%" PRIu64, m->memory_total >> 20);
  else if (!strcmp(f, "memory.used") && m->memory_used >= 0)
    snprintf(buf, cap, "%" PRId64, m->memory_used >> 20);
  else if (!strcmp(f, "memory.free") && m->memory_free >= 0)
    snprintf(buf, cap, "%" PRId64, m->memory_free >> 20);
  else if (!strcmp(f, "compute_cap"))
    snprintf(buf, cap, "%s", m->compute_cap);
  else if (!strcmp(f, "machine.id"))
    snprintf(buf, cap, "%s", m->device_id);
  else if (!strcmp(f, "machine.provider"))
    snprintf(buf, cap, "%s", m->provider);
  else if (!strcmp(f, "machine.state"))
    snprintf(buf, cap, "%s", m->state);
  else if (!strcmp(f, "machine.gpu"))
    snprintf(buf, cap, "%s", m->gpu_requested);
  else if (!strcmp(f, "machine.address"))
    snprintf(buf, cap, "%s", m->address);
  else if (!strcmp(f, "machine.rtt_ms") && m->rtt_us >= 0)
    snprintf(buf, cap, "%.3f", (double)m->rtt_us / 1000.0);
  else if (!strcmp(f, "machine.round_trips"))
    snprintf(buf, cap, "%" PRIu64, m->round_trips);
  else if (!strcmp(f, "machine.sessions"))
    snprintf(buf, cap, "%d", m->sessions);
  else if (!strcmp(f, "machine.error"))
    snprintf(buf, cap, "%s", m->error);
  else if (!strcmp(f, "machine.progress"))
    snprintf(buf, cap, "%s", m->progress);
  else if (!strcmp(f, "cache.hits"))
    snprintf(buf, cap, "%" PRIu64, m->cache_hits);
  else if (!strcmp(f, "cache.misses"))
    snprintf(buf, cap, "%" PRIu64, m->cache_misses);
  else if (!strcmp(f, "utilization.gpu") && m->util_gpu >= 0)
    snprintf(buf, cap, "%d", m->util_gpu);
  else if (!strcmp(f, "utilization.memory") && m->util_mem >= 0)
    snprintf(buf, cap, "%d", m->util_mem);
  else if (!strcmp(f, "temperature.gpu") && m->temp_c >= 0)
    snprintf(buf, cap, "%d", m->temp_c);
  else if (!strcmp(f, "power.draw") && m->power_mw >= 0)
    snprintf(buf, cap, "%.2f", m->power_mw / 1000.0);
  else if (!strcmp(f, "driver_version"))
    snprintf(buf, cap, "%s", m->driver_version);
  else if (!strcmp(f, "pci.bus_id"))
    snprintf(buf, cap, "%s", m->pci_bus_id);
}

/* Check --query-gpu's list; 0, or -1 after saying what is valid. */
static int check_fields(const char *list)
{
  char buf[1024], *save = NULL;

  snprintf(buf, sizeof(buf), "%s", list);
  if (!buf[0]) {
    fprintf(stderr, "tremote-smi: --query-gpu needs fields (see --help)\n");
    return -1;
  }
  for (char *f = strtok_r(buf, ",", &save); f; f = strtok_r(NULL, ",", &save)) {
    while (*f == ' ')
      f++;
    if (!field_of(f)) {
      fprintf(stderr, "tremote-smi: unknown field '%s' (valid:", f);
      for (size_t i = 0; i < NFIELDS; i++)
        fprintf(stderr, "%s %s", i ? "," : "", fields[i].name);
      fprintf(stderr, ")\n");
      return -1;
    }
  }
  return 0;
}

/* ---- output ---------------------------------------------------------------- */

static void print_csv(const struct tremote_machine_info *v, size_t n,
                      const struct opts *o)
{
  char buf[1024], *save = NULL, val[300];
  const char *names[64];
  size_t k = 0;

  snprintf(buf, sizeof(buf), "%s", o->fields);
  for (char *f = strtok_r(buf, ",", &save); f && k < 64;
       f = strtok_r(NULL, ",", &save)) {
    while (*f == ' ')
      f++;
    names[k++] = f;
  }
  if (o->header) {
    for (size_t i = 0; i < k; i++) {
      const struct field *f = field_of(names[i]);

      printf("%s%s", i ? ", " : "", names[i]);
      if (f->unit && o->units)
        printf(" [%s]", f->unit);
    }
    printf("\n");
  }
  for (size_t m = 0; m < n; m++) {
    for (size_t i = 0; i < k; i++) {
      const struct field *f = field_of(names[i]);

      value(&v[m], names[i], val, sizeof(val));
      if (!val[0])
        printf("%s[N/A]", i ? ", " : "");
      else
        printf("%s%s%s%s", i ? ", " : "", val,
               f->unit && o->units ? " " : "",
               f->unit && o->units ? f->unit : "");
    }
    printf("\n");
  }
}

static void json_str(const char *s)
{
  putchar('"');
  for (; *s; s++) {
    if (*s == '"' || *s == '\\')
      printf("\\%c", *s);
    else if ((unsigned char)*s < 0x20)
      printf("\\u%04x", (unsigned char)*s);
    else
      putchar(*s);
  }
  putchar('"');
}

static void print_json(const struct tremote_machine_info *v, size_t n)
{
  char val[300];

  printf("[");
  for (size_t m = 0; m < n; m++) {
    printf("%s\n  {", m ? "," : "");
    for (size_t i = 0; i < NFIELDS; i++) {
      value(&v[m], fields[i].name, val, sizeof(val));
      printf("%s", i ? ", " : "");
      json_str(fields[i].name);
      printf(": ");
      if (!val[0])
        printf("null");
      else if (!strcmp(fields[i].name, "index") ||
               !strncmp(fields[i].name, "memory.", 7) ||
               !strcmp(fields[i].name, "machine.round_trips") ||
               !strcmp(fields[i].name, "machine.sessions") ||
               !strcmp(fields[i].name, "machine.rtt_ms") ||
               !strncmp(fields[i].name, "utilization.", 12) ||
               !strcmp(fields[i].name, "temperature.gpu") ||
               !strcmp(fields[i].name, "power.draw") ||
               !strncmp(fields[i].name, "cache.", 6))
        printf("%s", val);
      else
        json_str(val);
    }
    printf("}");
  }
  printf("%s]\n", n ? "\n" : "");
}

static void print_list(const struct tremote_machine_info *v, size_t n)
{
  for (size_t m = 0; m < n; m++)
    printf("GPU %d: %s (machine: %s, %s, %s%s%s)\n", v[m].index,
           v[m].device_name[0] ? v[m].device_name : "[N/A]", v[m].device_id,
           v[m].provider, v[m].state, v[m].uuid[0] ? ", UUID: " : "",
           v[m].uuid);
}

#define ROW 134 /* the width of a table row, borders included */

/* "| text ... |" padded to ROW. */
static void boxed(const char *text)
{
  printf("| %-*.*s |\n", ROW - 4, ROW - 4, text);
}

static void rule(char c)
{
  putchar('+');
  for (int i = 0; i < ROW - 2; i++)
    putchar(c);
  printf("+\n");
}

static void print_table(const struct tremote_machine_info *v, size_t n)
{
  char mem[48], util[16], line[256], when[64];
  time_t now = time(NULL);

  strftime(when, sizeof(when), "%a %b %e %H:%M:%S %Y", localtime(&now));
  printf("%s\n", when);
  rule('-');
  snprintf(line, sizeof(line), "tremote-smi %s    %zu machine(s)",
           TR_VERSION, n);
  boxed(line);
  rule('-');
  printf("| %3s | %-24s | %-9s | %-24s | %-8s | %-8s | %18s | %4s | %8s |\n",
         "Idx", "Machine", "Asked", "Device", "Provider", "State",
         "Memory used/total", "Util", "Programs");
  rule('=');
  for (size_t m = 0; m < n; m++) {
    if (v[m].memory_used >= 0 && v[m].memory_total)
      snprintf(mem, sizeof(mem), "%" PRId64 " / %" PRIu64 " MiB",
               v[m].memory_used >> 20, v[m].memory_total >> 20);
    else if (v[m].memory_total)
      snprintf(mem, sizeof(mem), "N/A / %" PRIu64 " MiB",
               v[m].memory_total >> 20);
    else
      snprintf(mem, sizeof(mem), "N/A");
    if (v[m].util_gpu >= 0)
      snprintf(util, sizeof(util), "%d%%", v[m].util_gpu);
    else
      snprintf(util, sizeof(util), "N/A");
    printf("| %3d | %-24.24s | %-9.9s | %-24.24s | %-8.8s | %-8.8s | "
           "%18.18s | %4.4s | %8d |\n",
           v[m].index, v[m].device_id,
           v[m].gpu_requested[0] ? v[m].gpu_requested : "-",
           v[m].device_name[0] ? v[m].device_name : "N/A", v[m].provider,
           v[m].state, mem, util, v[m].sessions);
    if ((v[m].error[0] || v[m].progress[0]) && strcmp(v[m].state, "ready")) {
      snprintf(line, sizeof(line), "      %s",
               v[m].error[0] ? v[m].error : v[m].progress);
      boxed(line);
    }
  }
  rule('-');
}

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
  (void)sig;
  stop = 1;
}

int main(int argc, char **argv)
{
  enum { O_QUERY = 256, O_FORMAT, O_JSON, O_VERSION };
  static const struct option longs[] = {
      {"list-gpus", no_argument, NULL, 'L'},
      {"query-gpu", required_argument, NULL, O_QUERY},
      {"format", required_argument, NULL, O_FORMAT},
      {"json", no_argument, NULL, O_JSON},
      {"id", required_argument, NULL, 'i'},
      {"loop", required_argument, NULL, 'l'},
      {"help", no_argument, NULL, 'h'},
      {"version", no_argument, NULL, O_VERSION},
      {NULL, 0, NULL, 0},
  };
  struct opts o = {.fmt = F_TABLE, .header = 1, .units = 1, .id = -1};
  int c, have_format = 0;
  char *end;

  while ((c = getopt_long(argc, argv, "Li:l:h", longs, NULL)) != -1) {
    switch (c) {
    case 'L':
      o.fmt = F_LIST;
      break;
    case O_QUERY:
      o.fmt = F_CSV;
      snprintf(o.fields, sizeof(o.fields), "%s", optarg);
      break;
    case O_FORMAT: {
      char buf[128], *save = NULL;

      have_format = 1;
      snprintf(buf, sizeof(buf), "%s", optarg);
      for (char *t = strtok_r(buf, ",", &save); t;
           t = strtok_r(NULL, ",", &save)) {
        if (!strcmp(t, "csv"))
          continue;
        else if (!strcmp(t, "noheader"))
          o.header = 0;
        else if (!strcmp(t, "nounits"))
          o.units = 0;
        else {
          fprintf(stderr, "tremote-smi: --format: unknown '%s' (valid: csv, "
                          "noheader, nounits)\n", t);
          return EXIT_USAGE;
        }
      }
      break;
    }
    case O_JSON:
      o.fmt = F_JSON;
      break;
    case 'i':
      o.id = (int)strtol(optarg, &end, 10);
      if (*end || end == optarg || o.id < 0) {
        fprintf(stderr, "tremote-smi: --id %s: expected a machine index "
                        "(0, 1, ...)\n", optarg);
        return EXIT_USAGE;
      }
      break;
    case 'l':
      o.loop = strtod(optarg, &end);
      if (*end || end == optarg || o.loop <= 0) {
        fprintf(stderr, "tremote-smi: --loop %s: expected a number of "
                        "seconds\n", optarg);
        return EXIT_USAGE;
      }
      break;
    case 'h':
      fputs(usage_text, stdout);
      return 0;
    case O_VERSION:
      printf("tremote-smi %s\n", TR_VERSION);
      return 0;
    default:
      fprintf(stderr, "Try 'tremote-smi --help' for more information.\n");
      return EXIT_USAGE;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "tremote-smi: unexpected argument '%s'\nTry "
                    "'tremote-smi --help' for more information.\n",
            argv[optind]);
    return EXIT_USAGE;
  }
  if (have_format && o.fmt != F_CSV) {
    fprintf(stderr, "tremote-smi: --format goes with --query-gpu\n");
    return EXIT_USAGE;
  }
  if (o.fmt == F_CSV && check_fields(o.fields) < 0)
    return EXIT_USAGE;
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  for (;;) {
    struct tremote_machine_info *v;
    size_t n, k = 0;

    if (tremote_list_machines(&v, &n) < 0) {
      fprintf(stderr, "tremote-smi: %s\n", tremote_last_error());
      return EXIT_BROKER;
    }
    if (o.id >= 0) {
      for (size_t i = 0; i < n; i++)
        if (v[i].index == o.id)
          v[k++] = v[i];
      if (!k) {
        fprintf(stderr, "tremote-smi: no machine with index %d (there are "
                        "%zu; tremote-smi -L lists them)\n", o.id, n);
        free(v);
        return 6;
      }
      n = k;
    }
    switch (o.fmt) {
    case F_TABLE: print_table(v, n); break;
    case F_LIST: print_list(v, n); break;
    case F_CSV: print_csv(v, n, &o); break;
    case F_JSON: print_json(v, n); break;
    }
    free(v);
    fflush(stdout);
    if (o.loop <= 0)
      return 0;
    {
      struct timespec ts = {(time_t)o.loop,
                            (long)((o.loop - (double)(time_t)o.loop) * 1e9)};

      while (nanosleep(&ts, &ts) < 0 && !stop)
        ;
    }
    if (stop)
      return 0;
    printf("\n");
  }
}
