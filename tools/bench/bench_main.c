/*
 * bench_main.c: tremote-bench, tremote's benchmark (issue 5).
 *
 * Every figure is a ratio to a yardstick measured in the same run on the
 * same machine (bench_net.c): the machines this runs on are shared and
 * their absolute speed wanders by 2x within a day, the ratios much less.
 * The order is fixed: the yardsticks first, then tremote through a broker
 * of our own, then the delay workload through a second broker whose agent
 * sits behind tr_relay.
 */
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define PROG "tremote-bench"
#define EXIT_USAGE 2
#define MAX_SIZES 32
#define MAX_FIGS (16 + 4 * MAX_SIZES)
#define OUT_MAX (64u << 10)
#define RUN_TIMEOUT_S 600
#define DELAY_BYTES (1u << 20)
#define BIG_COPY (128u << 20)

static const char usage_text[] =
  "Usage: " PROG " [OPTION]...\n"
  "Measure tremote against yardsticks taken in the same run, and print\n"
  "every figure as a ratio to its yardstick with the goal and the floor.\n"
  "\n"
  "It starts its own tremote-broker (one LOCAL machine, on the emulated\n"
  "device unless --backend cuda; sockets in a private directory under\n"
  "$TMPDIR or /tmp) and runs\n"
  "the nvcc-built workload bench_calls under LD_PRELOAD=libtremote_shim.so.\n"
  "Nothing else of tremote needs to run; a broker already running is not\n"
  "used.  Figures (yardstick in brackets):\n"
  "\n"
  "  null call p50, p99    cudaDeviceSynchronize with nothing queued [the\n"
  "                        same 64-byte round trip in tremote's topology\n"
  "                        without tremote: client -Unix socket-> relay\n"
  "                        process -loopback TCP-> echo; taken just\n"
  "                        before and just after, averaged]; goal <= 1.2x,\n"
  "                        floor 1.5x.  Also shown against raw TCP ping-pong.\n"
  "  launch enqueue rate   kernel launches per second until the last\n"
  "                        launch call returned; goal >= 2 M/s, floor 1 M/s\n"
  "  round trips           the broker's count for 1000 launches and one\n"
  "                        cudaStreamSynchronize: exactly 1 (always checked)\n"
  "  H2D, D2H              synchronous cudaMemcpy from pinned\n"
  "                        (cudaMallocHost) and pageable host memory at each\n"
  "                        size [one loopback TCP stream moving as many\n"
  "                        bytes and answering one byte]; goal >= 0.8x at\n"
  "                        16 MiB and more, floor 0.5x; smaller sizes are\n"
  "                        shown, not judged\n"
  "  delay                 ITERS x (cudaMemcpy 1 MiB in, 10 small launches,\n"
  "                        cudaMemcpy 1 MiB out) with tr_relay adding RTT\n"
  "                        and capping the rate between broker and agent,\n"
  "                        against the bound 1.2 x ITERS x RTT + bytes/rate\n"
  "                        (goal and floor <= 1.0x of the bound); also shown:\n"
  "                        the same exchanges over the relay without\n"
  "                        tremote, round trips per iteration, and one\n"
  "                        128 MiB copy each way against RTT + bytes/rate\n"
  "                        (flow-control windows smaller than the\n"
  "                        bandwidth-delay product show there)\n"
  "\n"
  "Options:\n"
  "  --quick             fewer samples and sizes (4K 64K 1M 16M 64M), for\n"
  "                      the test suite: about a third of the time\n"
  "  --sizes LIST        copy sizes, comma-separated bytes with an optional\n"
  "                      K, M or G suffix (powers of 1024); default\n"
  "                      4K,16K,64K,256K,1M,4M,16M,64M,256M\n"
  "  --iters N           null calls timed (default 3000; --quick 1000)\n"
  "  --reps N            copies per size, best taken; 10x as many below\n"
  "                      1 MiB (default 5; --quick 3)\n"
  "  --launches N        launches for the enqueue rate (default 100000;\n"
  "                      --quick 20000)\n"
  "  --delay-iters N     iterations of the delay workload (default 50)\n"
  "  --rtt-ms N          round-trip time tr_relay adds (default 20)\n"
  "  --rate BYTES        tr_relay's rate per direction, with K, M or G\n"
  "                      (powers of 1000; default 1G)\n"
  "  --no-delay          skip the delay workload\n"
  "  --backend emu|cuda  the LOCAL machine's backend (default emu).  cuda:\n"
  "                      this host's GPU through the agent's cuda backend,\n"
  "                      each program's session in a worker process, as a\n"
  "                      GPU program runs through tremote\n"
  "  --emu-mem SIZE      memory of the emulated device (default 2G)\n"
  "  --build-dir DIR     the build tree holding the broker, agent, shim,\n"
  "                      tests/tools/tr_relay and tests/apps/bench_calls\n"
  "                      (default: the tree this program was built in,\n"
  "                      found from its own path)\n"
  "  --csv FILE          also write every figure to FILE as CSV: figure,\n"
  "                      unit, value, yardstick, ratio, goal, floor, result\n"
  "  --plot FILE.png     plot bandwidth and ratios by size with gnuplot\n"
  "  --strict            exit 1 when a floor is missed (the default only\n"
  "                      reports it: shared machines are noisy)\n"
  "  --keep              keep the private directory (broker logs)\n"
  "  -h, --help          show this help and exit\n"
  "\n"
  "Exit status:\n"
  "  0  every figure measured (and, with --strict, every floor met)\n"
  "  1  a measurement failed, the round trips were not exactly 1, or\n"
  "     (--strict) a floor was missed\n"
  "  2  invalid command line, or a program of the build is missing\n";

enum fig_kind { FIG_INFO, FIG_LE, FIG_GE, FIG_EQ };

/* One line of the report.  JUDGED is what goal and floor apply to: the
 * ratio where there is a yardstick, the value itself where not. */
struct fig {
  char name[64], unit[12];
  double value, base, ratio;
  enum fig_kind kind;
  double goal, floor;
  bool have;
};

struct opts {
  bool quick, strict, keep, no_delay;
  size_t sizes[MAX_SIZES];
  int nsizes, iters, reps, launches, delay_iters;
  double rtt_ms;
  uint64_t rate;
  const char *backend, *emu_mem, *build, *csv, *plot;
};

struct paths {
  char shim[PATH_MAX], broker[PATH_MAX], agent[PATH_MAX], relay[PATH_MAX],
      work[PATH_MAX];
};

static struct fig figs[MAX_FIGS];
static int nfigs;
static int failed; /* measurements that did not happen, or wrong counts */

static void usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
static void usage_error(const char *fmt, ...)
{
  va_list ap;

  fprintf(stderr, PROG ": ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nTry '" PROG " --help' for more information.\n");
  exit(EXIT_USAGE);
}

static struct fig *fig_add(const char *name, const char *unit, enum fig_kind k,
                           double goal, double floor)
{
  struct fig *f = &figs[nfigs++];

  snprintf(f->name, sizeof(f->name), "%s", name);
  snprintf(f->unit, sizeof(f->unit), "%s", unit);
  f->kind = k;
  f->goal = goal;
  f->floor = floor;
  f->base = -1;
  return f;
}

static void fig_set(struct fig *f, double value, double base)
{
  f->value = value;
  f->base = base;
  f->ratio = base > 0 ? value / base : value;
  f->have = true;
}

static bool meets(const struct fig *f, double bound)
{
  switch (f->kind) {
  case FIG_LE: return f->ratio <= bound;
  case FIG_GE: return f->ratio >= bound;
  case FIG_EQ: return f->ratio == bound;
  default: return true;
  }
}

/* "goal", "floor" (met the floor only), "MISSED", "-" (not judged). */
static const char *verdict(const struct fig *f)
{
  if (!f->have)
    return "NOT MEASURED";
  if (f->kind == FIG_INFO)
    return "-";
  if (meets(f, f->goal))
    return "goal met";
  return meets(f, f->floor) ? "floor met" : "MISSED";
}

static int parse_size(const char *s, size_t *out, unsigned base)
{
  char *end;
  double v;

  errno = 0;
  v = strtod(s, &end);
  if (errno || end == s || v <= 0)
    return -EINVAL;
  switch (*end) {
  case 'k': case 'K': v *= base; end++; break;
  case 'm': case 'M': v *= (double)base * base; end++; break;
  case 'g': case 'G': v *= (double)base * base * base; end++; break;
  default: break;
  }
  if (*end || v > 1e15)
    return -EINVAL;
  *out = (size_t)v;
  return 0;
}

static int parse_sizes(const char *list, struct opts *o)
{
  char buf[512], *save = NULL;

  snprintf(buf, sizeof(buf), "%s", list);
  o->nsizes = 0;
  for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    if (o->nsizes == MAX_SIZES || parse_size(t, &o->sizes[o->nsizes], 1024) < 0)
      return -EINVAL;
    o->nsizes++;
  }
  return o->nsizes ? 0 : -EINVAL;
}

static int parse_int(const char *s, const char *opt)
{
  char *end;
  long v = strtol(s, &end, 10);

  if (end == s || *end || v < 1 || v > 100000000)
    usage_error("%s: '%s' is not a whole number from 1", opt, s);
  return (int)v;
}

static void parse_args(struct opts *o, int argc, char **argv)
{
  enum { O_QUICK = 256, O_SIZES, O_ITERS, O_REPS, O_LAUNCHES, O_DITERS,
         O_RTT, O_RATE, O_NODELAY, O_BACKEND, O_EMU, O_BUILD, O_CSV, O_PLOT, O_STRICT,
         O_KEEP };
  static const struct option longopts[] = {
      {"quick", no_argument, NULL, O_QUICK},
      {"sizes", required_argument, NULL, O_SIZES},
      {"iters", required_argument, NULL, O_ITERS},
      {"reps", required_argument, NULL, O_REPS},
      {"launches", required_argument, NULL, O_LAUNCHES},
      {"delay-iters", required_argument, NULL, O_DITERS},
      {"rtt-ms", required_argument, NULL, O_RTT},
      {"rate", required_argument, NULL, O_RATE},
      {"no-delay", no_argument, NULL, O_NODELAY},
      {"backend", required_argument, NULL, O_BACKEND},
      {"emu-mem", required_argument, NULL, O_EMU},
      {"build-dir", required_argument, NULL, O_BUILD},
      {"csv", required_argument, NULL, O_CSV},
      {"plot", required_argument, NULL, O_PLOT},
      {"strict", no_argument, NULL, O_STRICT},
      {"keep", no_argument, NULL, O_KEEP},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  const char *sizes = NULL;
  int iters = 0, reps = 0, launches = 0, c;
  size_t v;
  char *end;

  *o = (struct opts){.delay_iters = 50, .rtt_ms = 20, .rate = 1000000000ull,
                     .backend = "emu", .emu_mem = "2G"};
  while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    switch (c) {
    case O_QUICK: o->quick = true; break;
    case O_SIZES: sizes = optarg; break;
    case O_ITERS: iters = parse_int(optarg, "--iters"); break;
    case O_REPS: reps = parse_int(optarg, "--reps"); break;
    case O_LAUNCHES: launches = parse_int(optarg, "--launches"); break;
    case O_DITERS: o->delay_iters = parse_int(optarg, "--delay-iters"); break;
    case O_RTT:
      o->rtt_ms = strtod(optarg, &end);
      if (end == optarg || *end || o->rtt_ms <= 0 || o->rtt_ms > 10000)
        usage_error("--rtt-ms: '%s' is not a number of milliseconds > 0", optarg);
      break;
    case O_RATE:
      if (parse_size(optarg, &v, 1000) < 0)
        usage_error("--rate: '%s' is not a rate such as 1G or 500M", optarg);
      o->rate = v;
      break;
    case O_NODELAY: o->no_delay = true; break;
    case O_BACKEND:
      if (strcmp(optarg, "emu") && strcmp(optarg, "cuda"))
        usage_error("--backend: '%s' is not a backend (valid: emu, cuda)",
                    optarg);
      o->backend = optarg;
      break;
    case O_EMU: o->emu_mem = optarg; break;
    case O_BUILD: o->build = optarg; break;
    case O_CSV: o->csv = optarg; break;
    case O_PLOT: o->plot = optarg; break;
    case O_STRICT: o->strict = true; break;
    case O_KEEP: o->keep = true; break;
    case 'h': fputs(usage_text, stdout); exit(0);
    default: usage_error("invalid option");
    }
  }
  if (optind < argc)
    usage_error("unexpected argument '%s'", argv[optind]);
  if (parse_sizes(sizes ? sizes
                  : o->quick ? "4K,64K,1M,16M,64M"
                             : "4K,16K,64K,256K,1M,4M,16M,64M,256M",
                  o) < 0)
    usage_error("--sizes: '%s' is not a list such as 4K,1M,64M (at most %d)",
                sizes, MAX_SIZES);
  o->iters = iters ? iters : o->quick ? 1000 : 3000;
  o->reps = reps ? reps : o->quick ? 3 : 5;
  o->launches = launches ? launches : o->quick ? 20000 : 100000;
}

/* The build tree: --build-dir, else two levels above this program
 * (<build>/tools/bench/tremote-bench). */
static void find_paths(const struct opts *o, struct paths *p)
{
  char self[PATH_MAX], build[PATH_MAX];
  const char *need[5][2] = {
      {"shim/libtremote_shim.so", p->shim},
      {"broker/tremote-broker", p->broker},
      {"gpu-agent/tremote-gpu-agent", p->agent},
      {"tests/tools/tr_relay", p->relay},
      {"tests/apps/bench_calls", p->work}};

  if (o->build) {
    if (!realpath(o->build, build))
      usage_error("--build-dir: %s: %s", o->build, strerror(errno));
  } else {
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
      usage_error("cannot find my own path; give --build-dir");
    self[n] = 0;
    for (int up = 0; up < 3; up++)
      *strrchr(self, '/') = 0;
    snprintf(build, sizeof(build), "%s", self);
  }
  for (int i = 0; i < 5; i++) {
    if ((size_t)snprintf((char *)need[i][1], PATH_MAX, "%.3800s/%s", build,
                         need[i][0]) >= PATH_MAX)
      usage_error("the build directory's path is too long");
    if (access(need[i][1], X_OK | R_OK) != 0)
      usage_error("%s: %s (build it, or give --build-dir)", need[i][1],
                  strerror(errno));
  }
}

static void fmt_size(size_t s, char *buf, size_t len)
{
  if (s >= (1u << 20) && s % (1u << 20) == 0)
    snprintf(buf, len, "%zu MiB", s >> 20);
  else if (s >= 1024 && s % 1024 == 0)
    snprintf(buf, len, "%zu KiB", s >> 10);
  else
    snprintf(buf, len, "%zu B", s);
}

static void note_fail(const char *what, int rc)
{
  fprintf(stderr, PROG ": %s failed: %s\n", what,
          rc < 0 ? strerror(-rc) : "the workload exited with an error");
  failed++;
}

/* ---- the measurements ------------------------------------------------------ */

struct results {
  double tcp_p50, tcp_p99, rly_p50, rly_p99;
  double tcp_bw[MAX_SIZES];                 /* seconds per transfer */
  double cp[MAX_SIZES][2][2];               /* [size][pinned,pageable][h2d,d2h] */
  bool cp_have[MAX_SIZES][2];
  double echo_s;
};

static void measure_baselines(const struct opts *o, const struct paths *p,
                              struct results *r)
{
  int rc;

  fprintf(stderr, PROG ": yardsticks: TCP bandwidth, relay echo\n");
  if ((rc = bench_net_tcp_bw(o->sizes, o->nsizes, o->reps, r->tcp_bw)) < 0)
    note_fail("TCP bandwidth", rc);
  if (!o->no_delay &&
      (rc = bench_net_delay_echo(p->relay, o->rtt_ms, o->rate, o->delay_iters,
                                 DELAY_BYTES, &r->echo_s)) < 0)
    note_fail("delayed echo", rc);
}

static int run_work(const struct bench_broker *b, const struct paths *p,
                    char **argv, char *out, uint64_t rt[2], const char *what)
{
  int rc;

  rt[0] = rt[1] = UINT64_MAX;
  argv[0] = (char *)p->work;
  rc = bench_run(b, p->shim, argv, out, OUT_MAX, rt, RUN_TIMEOUT_S);
  if (rc)
    note_fail(what, rc);
  return rc;
}

static void measure_tremote(const struct opts *o, const struct paths *p,
                            const char *dir, struct results *r)
{
  struct bench_broker b;
  char *out = malloc(OUT_MAX), n1[16], n2[16], reps[16];
  char *args[MAX_SIZES + 4];
  uint64_t rt[2];
  double v = 0, v2 = 0;
  bool have_rtt = false;
  int rc;
  struct fig *f50, *f99, *rate, *count;

  f50 = fig_add("null call p50 / relay", "us", FIG_LE, 1.2, 1.5);
  f99 = fig_add("null call p99 / relay", "us", FIG_LE, 1.2, 1.5);
  rate = fig_add("launch enqueue rate", "M/s", FIG_GE, 2.0, 1.0);
  count = fig_add("round trips: 1000 launches + sync", "", FIG_EQ, 1, 1);
  if (!out) {
    note_fail("memory", -ENOMEM);
    return;
  }
  rc = bench_broker_start(&b, p->broker, p->agent, o->backend, o->emu_mem, dir,
                          "broker");
  if (rc < 0) {
    note_fail("starting the broker", rc);
    free(out);
    return;
  }
  fprintf(stderr, PROG ": tremote: null calls, launches, round trips\n");
  snprintf(n1, sizeof(n1), "%d", o->iters);
  /* The ping-pong yardsticks just before and just after the null calls,
   * averaged: a machine whose load changes within seconds moves both. */
  for (int pass = 0; pass < 2; pass++) {
    double t50, t99, r50, r99;
    if (pass == 1 &&
        !run_work(&b, p, (char *[]){NULL, "rtt", n1, NULL}, out, rt, "null calls") &&
        !bench_kv(out, "rtt_p50_ns", &v) && !bench_kv(out, "rtt_p99_ns", &v2))
      have_rtt = true;
    if ((rc = bench_net_tcp_rtt(o->iters, &t50, &t99)) < 0 ||
        (rc = bench_net_relay_rtt(o->iters, &r50, &r99)) < 0) {
      note_fail("TCP or relay ping-pong", rc);
      break;
    }
    r->tcp_p50 += t50 / 2;
    r->tcp_p99 += t99 / 2;
    r->rly_p50 += r50 / 2;
    r->rly_p99 += r99 / 2;
  }
  if (have_rtt && r->rly_p50 > 0) {
    fig_set(f50, v / 1e3, r->rly_p50 * 1e6);
    fig_set(f99, v2 / 1e3, r->rly_p99 * 1e6);
    fig_set(fig_add("null call p50 / TCP ping-pong", "us", FIG_INFO, 0, 0),
            v / 1e3, r->tcp_p50 * 1e6);
    fig_set(fig_add("null call p99 / TCP ping-pong", "us", FIG_INFO, 0, 0),
            v2 / 1e3, r->tcp_p99 * 1e6);
  }
  snprintf(n2, sizeof(n2), "%d", o->launches);
  if (!run_work(&b, p, (char *[]){NULL, "rate", n2, NULL}, out, rt, "launch rate") &&
      !bench_kv(out, "launches_per_s", &v))
    fig_set(rate, v / 1e6, -1);
  if (!run_work(&b, p, (char *[]){NULL, "count", NULL}, out, rt, "round-trip count")) {
    if (rt[0] == UINT64_MAX || rt[1] == UINT64_MAX)
      note_fail("reading the broker's round-trip count", -EIO);
    else
      fig_set(count, (double)(rt[1] - rt[0]), -1);
  }

  fprintf(stderr, PROG ": tremote: copies\n");
  snprintf(reps, sizeof(reps), "%d", o->reps);
  {
    char sz[MAX_SIZES][24];
    int n = 0;
    args[n++] = NULL;
    args[n++] = "copy";
    args[n++] = reps;
    for (int i = 0; i < o->nsizes; i++) {
      snprintf(sz[i], sizeof(sz[i]), "%zu", o->sizes[i]);
      args[n++] = sz[i];
    }
    args[n] = NULL;
    run_work(&b, p, args, out, rt, "copies");
    /* Lines that came are used even when a later size failed. */
    for (char *l = out; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
      size_t size;
      char mem[16];
      double h2d, d2h;
      if (sscanf(l, "copy size=%zu mem=%15s h2d_s=%lf d2h_s=%lf", &size, mem,
                 &h2d, &d2h) != 4)
        continue;
      for (int i = 0; i < o->nsizes; i++)
        if (o->sizes[i] == size) {
          int m = strcmp(mem, "pinned") != 0;
          r->cp[i][m][0] = h2d;
          r->cp[i][m][1] = d2h;
          r->cp_have[i][m] = true;
        }
    }
  }
  bench_broker_stop(&b);
  free(out);
}

static void copy_figs(const struct opts *o, const struct results *r)
{
  static const char *dir[2] = {"H2D", "D2H"}, *mem[2] = {"pinned", "pageable"};

  for (int d = 0; d < 2; d++)
    for (int m = 0; m < 2; m++)
      for (int i = 0; i < o->nsizes; i++) {
        char name[64], sz[32];
        bool judged = o->sizes[i] >= (16u << 20);
        struct fig *f;

        fmt_size(o->sizes[i], sz, sizeof(sz));
        snprintf(name, sizeof(name), "%s %s %s / TCP", dir[d], mem[m], sz);
        f = fig_add(name, "GB/s", judged ? FIG_GE : FIG_INFO, 0.8, 0.5);
        if (r->cp_have[i][m] && r->tcp_bw[i] > 0)
          fig_set(f, (double)o->sizes[i] / r->cp[i][m][d] / 1e9,
                  (double)o->sizes[i] / r->tcp_bw[i] / 1e9);
      }
}

/* The delay workload behind tr_relay, started by the broker through a
 * wrapper script (the broker's --agent takes one path). */
static void measure_delay(const struct opts *o, const struct paths *p,
                          const char *dir, const struct results *r)
{
  double ideal = o->delay_iters * o->rtt_ms / 1e3 +
                 2.0 * DELAY_BYTES * o->delay_iters / (double)o->rate;
  double bound = 1.2 * o->delay_iters * o->rtt_ms / 1e3 +
                 2.0 * DELAY_BYTES * o->delay_iters / (double)o->rate;
  struct fig *ft, *fe, *frt, *fbig[2];
  struct bench_broker b;
  char wrapper[PATH_MAX + 32], iters[16], *out;
  uint64_t rt[2];
  double v;
  FILE *w;
  int rc;

  ft = fig_add("delay: total / bound", "s", FIG_LE, 1.0, 1.0);
  fe = fig_add("delay: total / relay echo", "s", FIG_INFO, 0, 0);
  frt = fig_add("delay: round trips per iteration", "", FIG_INFO, 0, 0);
  fbig[0] = fig_add("relay: H2D 128 MiB / (RTT + bytes/rate)", "s", FIG_INFO, 0, 0);
  fbig[1] = fig_add("relay: D2H 128 MiB / (RTT + bytes/rate)", "s", FIG_INFO, 0, 0);
  snprintf(wrapper, sizeof(wrapper), "%s/agent-behind-relay", dir);
  w = fopen(wrapper, "w");
  if (!w) {
    note_fail("writing the agent wrapper", -errno);
    return;
  }
  /* Paths of a build tree, quoted for sh; a quote in them is refused. */
  if (strchr(p->relay, '\'') || strchr(p->agent, '\'')) {
    fclose(w);
    {
    note_fail("quoting the paths (a ' in them)", -EINVAL);
    return;
  }
  }
  fprintf(w, "#!/bin/sh\nexec '%s' --rtt-ms %g --rate %llu --exec-agent '%s' -- \"$@\"\n",
          p->relay, o->rtt_ms, (unsigned long long)o->rate, p->agent);
  fclose(w);
  chmod(wrapper, 0700);
  out = malloc(OUT_MAX);
  if (!out) {
    note_fail("memory", -ENOMEM);
    return;
  }
  fprintf(stderr, PROG ": tremote behind tr_relay (%g ms, %llu B/s): delay workload\n",
          o->rtt_ms, (unsigned long long)o->rate);
  rc = bench_broker_start(&b, p->broker, wrapper, o->backend, o->emu_mem, dir,
                          "delayed");
  if (rc < 0) {
    note_fail("starting the broker behind the relay", rc);
    free(out);
    return;
  }
  snprintf(iters, sizeof(iters), "%d", o->delay_iters);
  if (!run_work(&b, p, (char *[]){NULL, "delay", iters, NULL}, out, rt,
                "delay workload") &&
      !bench_kv(out, "delay_s", &v)) {
    fig_set(ft, v, bound);
    if (r->echo_s > 0)
      fig_set(fe, v, r->echo_s);
    if (rt[0] != UINT64_MAX && rt[1] != UINT64_MAX)
      fig_set(frt, (double)(rt[1] - rt[0]) / o->delay_iters, -1);
  }
  /* One big copy each way behind the relay: more than the 64 MiB first
   * burst a stream's SETTINGS promise allows, so a window smaller than the
   * bandwidth-delay product shows as a stall per window. */
  {
    char sz[24];
    double h2d, d2h, ideal1 = o->rtt_ms / 1e3 + (double)BIG_COPY / (double)o->rate;

    snprintf(sz, sizeof(sz), "%u", BIG_COPY);
    if (!run_work(&b, p, (char *[]){NULL, "copy", "2", sz, NULL}, out, rt,
                  "big copies behind the relay") &&
        sscanf(out, "copy size=%*u mem=pinned h2d_s=%lf d2h_s=%lf", &h2d, &d2h) == 2) {
      fig_set(fbig[0], h2d, ideal1);
      fig_set(fbig[1], d2h, ideal1);
    }
  }
  fprintf(stderr, PROG ": delay: ideal %.3f s (%d x RTT + bytes/rate), bound %.3f s\n",
          ideal, o->delay_iters, bound);
  bench_broker_stop(&b);
  free(out);
}

/* ---- the report ------------------------------------------------------------ */

static void fmt_bound(const struct fig *f, double b, char *buf, size_t len)
{
  /* Figures with a yardstick are named "X / YARDSTICK": bounds on ratios. */
  const char *unit = strstr(f->name, " / ") ? "x" : "";

  switch (f->kind) {
  case FIG_LE: snprintf(buf, len, "<= %g%s", b, unit); break;
  case FIG_GE: snprintf(buf, len, ">= %g%s", b, unit); break;
  case FIG_EQ: snprintf(buf, len, "= %g", b); break;
  default: snprintf(buf, len, "-"); break;
  }
}

static void report(FILE *out)
{
  fprintf(out, "%-36s %12s %12s %8s %9s %9s  %s\n", "figure", "tremote",
          "yardstick", "ratio", "goal", "floor", "result");
  for (int i = 0; i < nfigs; i++) {
    const struct fig *f = &figs[i];
    char v[48] = "-", b[48] = "-", ra[32] = "-", g[32], fl[32];

    if (f->have) {
      snprintf(v, sizeof(v), "%.4g %s", f->value, f->unit);
      if (f->base > 0) {
        snprintf(b, sizeof(b), "%.4g %s", f->base, f->unit);
        snprintf(ra, sizeof(ra), "%.2fx", f->ratio);
      }
    }
    fmt_bound(f, f->goal, g, sizeof(g));
    fmt_bound(f, f->floor, fl, sizeof(fl));
    fprintf(out, "%-36s %12s %12s %8s %9s %9s  %s\n", f->name, v, b, ra, g, fl,
            verdict(f));
  }
}

static int write_csv(const char *path)
{
  FILE *f = fopen(path, "w");

  if (!f)
    return -errno;
  fprintf(f, "figure,unit,value,yardstick,ratio,goal,floor,result\n");
  for (int i = 0; i < nfigs; i++) {
    const struct fig *g = &figs[i];
    char b[32] = "", ra[32] = "", go[32] = "", fl[32] = "";
    if (g->have && g->base > 0) {
      snprintf(b, sizeof(b), "%.6g", g->base);
      snprintf(ra, sizeof(ra), "%.4f", g->ratio);
    }
    if (g->kind != FIG_INFO) {
      snprintf(go, sizeof(go), "%s%g", g->kind == FIG_LE ? "<=" : g->kind == FIG_GE ? ">=" : "=", g->goal);
      snprintf(fl, sizeof(fl), "%s%g", g->kind == FIG_LE ? "<=" : g->kind == FIG_GE ? ">=" : "=", g->floor);
    }
    fprintf(f, "\"%s\",%s,", g->name, g->unit);
    if (g->have)
      fprintf(f, "%.6g", g->value);
    fprintf(f, ",%s,%s,%s,%s,%s\n", b, ra, go, fl, verdict(g));
  }
  return fclose(f) ? -errno : 0;
}

/* gnuplot, fed a data file and a script: bandwidth by size on the left,
 * the ratios with goal and floor on the right. */
static int plot(const struct opts *o, const struct results *r, const char *dir,
                const char *png)
{
  char data[PATH_MAX + 16], cmd[64], title[256];
  FILE *f, *g;
  int rc;

  snprintf(data, sizeof(data), "%s/bw.dat", dir);
  f = fopen(data, "w");
  if (!f)
    return -errno;
  fprintf(f, "# size tcp h2d_pinned h2d_pageable d2h_pinned d2h_pageable (GB/s)\n");
  for (int i = 0; i < o->nsizes; i++) {
    double s = (double)o->sizes[i];
    fprintf(f, "%zu %g", o->sizes[i], r->tcp_bw[i] > 0 ? s / r->tcp_bw[i] / 1e9 : NAN);
    for (int d = 0; d < 2; d++)
      for (int m = 0; m < 2; m++)
        fprintf(f, " %g", r->cp_have[i][m] ? s / r->cp[i][m][d] / 1e9 : NAN);
    fputc('\n', f);
  }
  fclose(f);
  snprintf(title, sizeof(title), "tremote-bench");
  for (int i = 0; i < nfigs; i++)
    if (figs[i].have && (strstr(figs[i].name, "p50 / relay") ||
                         strstr(figs[i].name, "total / bound")))
      snprintf(title + strlen(title), sizeof(title) - strlen(title), "   %.40s %.2fx",
               figs[i].name, figs[i].ratio);
  snprintf(cmd, sizeof(cmd), "gnuplot");
  g = popen(cmd, "w");
  if (!g)
    return -errno;
  /* Ticks at the sizes measured, named as the table names them. */
  fprintf(g, "set xtics (");
  for (int i = 0; i < o->nsizes; i++) {
    char sz[32];
    fmt_size(o->sizes[i], sz, sizeof(sz));
    fprintf(g, "%s\"%s\" %zu", i ? ", " : "", sz, o->sizes[i]);
  }
  fprintf(g, ")\nset xrange [%g:%g]\n", (double)o->sizes[0] / 1.4,
          (double)o->sizes[o->nsizes - 1] * 1.4);
  fprintf(g,
          "set terminal pngcairo size 1400,560 font ',10'\n"
          "set output '%s'\n"
          "set multiplot layout 1,2 title '%s'\n"
          "set logscale x 2\nset grid\n"
          "set key top left\nset xlabel 'copy size'\n"
          "set style line 1 lc rgb '#444444' lw 2 pt 7\n"
          "set style line 2 lc rgb '#1f77b4' pt 5\nset style line 3 lc rgb '#17becf' pt 4\n"
          "set style line 4 lc rgb '#d62728' pt 9\nset style line 5 lc rgb '#ff9896' pt 8\n"
          "set logscale y\nset ylabel 'GB/s'\nset title 'synchronous cudaMemcpy bandwidth'\n"
          "plot '%s' u 1:2 w lp ls 1 t 'loopback TCP (yardstick)', "
          "'' u 1:3 w lp ls 2 t 'H2D pinned', '' u 1:4 w lp ls 3 t 'H2D pageable', "
          "'' u 1:5 w lp ls 4 t 'D2H pinned', '' u 1:6 w lp ls 5 t 'D2H pageable'\n"
          "unset logscale y\nset yrange [0:1.1<*]\nset ylabel 'tremote / TCP'\n"
          "set title 'ratio to TCP (goal >= 0.8, floor 0.5 at >= 16 MiB)'\n"
          "plot '%s' u 1:($3/$2) w lp ls 2 t 'H2D pinned', '' u 1:($4/$2) w lp ls 3 t 'H2D pageable', "
          "'' u 1:($5/$2) w lp ls 4 t 'D2H pinned', '' u 1:($6/$2) w lp ls 5 t 'D2H pageable', "
          "0.8 w l dt 2 lc rgb 'dark-green' t 'goal', 0.5 w l dt 2 lc rgb 'red' t 'floor'\n"
          "unset multiplot\n",
          png, title, data, data);
  rc = pclose(g);
  return rc == 0 ? 0 : -EIO;
}

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
  return remove(path);
}

int main(int argc, char **argv)
{
  struct opts o;
  struct paths p;
  struct results *r = calloc(1, sizeof(*r));
  char dir[] = "/tmp/tremote-bench.XXXXXX";
  const char *tmp = getenv("TMPDIR");
  char dirbuf[PATH_MAX];
  bool floor_missed = false;
  int rc;

  parse_args(&o, argc, argv);
  find_paths(&o, &p);
  if (!r)
    return 1;
  if (tmp && *tmp && strlen(tmp) < 64) {
    snprintf(dirbuf, sizeof(dirbuf), "%s/tremote-bench.XXXXXX", tmp);
    if (!mkdtemp(dirbuf))
      snprintf(dirbuf, sizeof(dirbuf), "%s", mkdtemp(dir) ? dir : "");
  } else {
    snprintf(dirbuf, sizeof(dirbuf), "%s", mkdtemp(dir) ? dir : "");
  }
  if (!dirbuf[0]) {
    fprintf(stderr, PROG ": cannot make a private directory: %s\n", strerror(errno));
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);

  measure_baselines(&o, &p, r);
  measure_tremote(&o, &p, dirbuf, r);
  copy_figs(&o, r);
  if (!o.no_delay)
    measure_delay(&o, &p, dirbuf, r);

  {
    char host[64] = "?";
    time_t t = time(NULL);
    gethostname(host, sizeof(host) - 1);
    printf("tremote-bench on %s, %ld CPUs, the LOCAL machine on %s, %s", host,
           sysconf(_SC_NPROCESSORS_ONLN),
           strcmp(o.backend, "cuda") ? "the emulated device"
                                     : "this GPU (cuda backend)",
           ctime(&t));
    printf("yardsticks: TCP ping-pong p50 %.1f us, relay ping-pong p50 %.1f us",
           r->tcp_p50 * 1e6, r->rly_p50 * 1e6);
    if (!o.no_delay)
      printf(", relay echo %.3f s (%d x %g ms + %d MiB at %.3g GB/s)",
             r->echo_s, o.delay_iters, o.rtt_ms, 2 * o.delay_iters,
             (double)o.rate / 1e9);
    printf("\n\n");
  }
  report(stdout);
  for (int i = 0; i < nfigs; i++) {
    if (!figs[i].have) {
      failed++;
      continue;
    }
    if (figs[i].kind == FIG_EQ && !meets(&figs[i], figs[i].goal)) {
      fprintf(stderr, PROG ": %s: %g, not %g\n", figs[i].name, figs[i].value,
              figs[i].goal);
      failed++;
    }
    if (figs[i].kind != FIG_INFO && !meets(&figs[i], figs[i].floor))
      floor_missed = true;
  }
  if (o.csv && (rc = write_csv(o.csv)) < 0)
    note_fail("writing the CSV file", rc);
  if (o.plot && (rc = plot(&o, r, dirbuf, o.plot)) < 0)
    note_fail("plotting with gnuplot", rc);
  if (o.keep)
    fprintf(stderr, PROG ": logs kept in %s\n", dirbuf);
  else
    nftw(dirbuf, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
  free(r);
  if (failed)
    return 1;
  if (floor_missed)
    printf("\nA floor was missed%s.\n", o.strict ? "" : " (exit 0: no --strict)");
  return o.strict && floor_missed ? 1 : 0;
}
