/*
 * agent_main.c: tremote-gpu-agent's command line, start and stop.
 *
 * Everything that can be wrong with the invocation is found before the
 * listening socket exists, so a broker starting a LOCAL agent sees either
 * the port on --ready-fd or a non-zero exit with a message, never both.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "agent.h"
#include "agent_h2.h"
#include "agent_nvml.h"
#include "agent_tls.h"
#include "backends/backend.h"

#define EXIT_USAGE 2
#define SECRET_MAX 4096

static const char usage_text[] =
  "Usage: " AGT_PROG " [OPTION]...\n"
  "Serve one GPU (or the emulated device) to tremote brokers over HTTP/2.\n"
  "\n"
  "The agent runs on the GPU machine.  A broker connects to it (one\n"
  "HTTP/2 connection per machine: h2c on loopback, else TLS with ALPN h2),\n"
  "says HELLO, then opens a session per client\n"
  "program and lanes within it; the agent executes the CUDA calls those\n"
  "lanes carry.  Every request must present the machine's shared secret as\n"
  "'authorization: Bearer <secret>'.  See docs/PROTOCOL.md.\n"
  "\n"
  "Network:\n"
  "  --listen HOST:PORT   address to listen on (default 127.0.0.1:0, i.e. a\n"
  "                       free port on loopback); [IPv6]:PORT is accepted\n"
  "  --ready-fd N         once listening, write \"<port>\\n\" to file\n"
  "                       descriptor N and close it (how a broker starting a\n"
  "                       local agent learns the port)\n"
  "\n"
  "TLS (required to listen on anything but loopback):\n"
  "  --tls-cert FILE      the certificate (PEM, chain first) and ...\n"
  "  --tls-key FILE       ... its private key (PEM); TLS 1.2 or newer, ALPN\n"
  "                       h2 only.  The fingerprint brokers pin is logged at\n"
  "                       start (SHA256:...).\n"
  "  --gen-cert DIR       make DIR/key.pem (mode 0600) and DIR/cert.pem: a\n"
  "                       self-signed EC P-256 certificate for localhost,\n"
  "                       127.0.0.1, ::1 and this host's name, valid ten\n"
  "                       years; print its fingerprint and exit (never\n"
  "                       overwrites)\n"
  "  --san NAMES          with --gen-cert: more DNS names or IP addresses,\n"
  "                       comma-separated\n"
  "\n"
  "Authentication (one is required):\n"
  "  --secret-file FILE   read the shared secret from FILE\n"
  "  --secret-fd N        read the shared secret from descriptor N (until\n"
  "                       EOF), then close it\n"
  "  TREMOTE_AGENT_SECRET environment variable used when neither option is\n"
  "                       given\n"
  "  --insecure           allow running without a secret, accepting every\n"
  "                       request (only for tests on a trusted host); a\n"
  "                       secret that is given is still enforced\n"
  "  Leading and trailing whitespace of the secret is ignored.\n"
  "\n"
  "Device:\n"
  "  --backend KIND       emu, cuda or auto (default auto: cuda when usable,\n"
  "                       else emu, logging why not cuda).  cuda is GPU 0\n"
  "                       through the NVIDIA driver (libcuda.so.1, loaded at\n"
  "                       start); without one it is an error that says why.\n"
  "  --isolation MODE     process: each session (client program) runs in a\n"
  "                       worker process of its own, with its own CUDA\n"
  "                       context and stdout, so a crash or a driver fault\n"
  "                       ends that session only; thread: sessions share\n"
  "                       this process (on a GPU, one session's kernel fault\n"
  "                       then ends them all: the driver poisons every\n"
  "                       context of a process).  Default auto (or\n"
  "                       $TREMOTE_ISOLATION): process on the cuda backend,\n"
  "                       thread on the emulator, whose checks already keep\n"
  "                       sessions apart, and on a GPU in EXCLUSIVE_PROCESS\n"
  "                       compute mode, which admits one process (there\n"
  "                       process is refused)\n"
  "  --emu-name NAME      device name the emulator reports\n"
  "                       (default \"tremote emulated device\")\n"
  "  --emu-mem SIZE       device memory of the emulator (default 16G);\n"
  "                       SIZE is bytes with an optional K, M, G or T suffix\n"
  "                       (powers of 1024)\n"
  "  --emu-cc X.Y         compute capability the emulator reports (default\n"
  "                       8.0; 5.0 to 12.0).  Programs read it before any\n"
  "                       module loads; PTX for a newer target is refused.\n"
  "  --emu-workers N      threads that run kernel blocks (default: number of\n"
  "                       CPUs, which is also the multiprocessor count)\n"
  "  --emu-watchdog SEC   a kernel running longer fails with\n"
  "                       cudaErrorLaunchTimeout, as under a display\n"
  "                       watchdog (default 600; 0 = no limit)\n"
  "\n"
  "Module cache:\n"
  "  --cache-dir DIR      also keep every module (fatbin) programs upload in\n"
  "                       DIR (created 0700), one file per XXH3-128 hash, so\n"
  "                       programs need not upload it again after the agent\n"
  "                       restarts; shared by all sessions\n"
  "  --cache-max SIZE     bytes of modules kept, in memory and in DIR each;\n"
  "                       the least recently used go first (default 1G;\n"
  "                       modules in use are never dropped)\n"
  "\n"
  "Liveness:\n"
  "  --idle-timeout SEC   a broker connection that sends nothing for SEC\n"
  "                       seconds (a PING goes to it after a third of\n"
  "                       that) is closed and its sessions freed, device\n"
  "                       memory included (default 15; 0 = never)\n"
  "  --exit-idle SEC      stop (exit 0) once no broker has been connected\n"
  "                       and no session has been left for SEC seconds: a\n"
  "                       rented machine (a Modal Sandbox) then ends even\n"
  "                       if its broker died without tearing it down\n"
  "                       (default 0 = never)\n"
  "\n"
  "Sessions:\n"
  "  --quota SIZE         device memory one session (one client program)\n"
  "                       may hold; cudaMalloc beyond it fails with\n"
  "                       cudaErrorMemoryAllocation.  SIZE as for --emu-mem\n"
  "                       (default: no quota)\n"
  "\n"
  "Execution and logs:\n"
  "  --exec-threads N     threads executing calls (default: number of CPUs,\n"
  "                       or $TREMOTE_AGENT_EXEC_THREADS); when every one is\n"
  "                       busy, lanes of higher-priority streams run first\n"
  "  --spin-us N          after work, the network thread and one idle\n"
  "                       execution thread poll for this many microseconds\n"
  "                       before they sleep, so the next small call does not\n"
  "                       pay two thread wake-ups (default 50 with 8 CPUs or\n"
  "                       more, else 0: on fewer the polling would take the\n"
  "                       CPU from the threads doing the work; 0 to 10000)\n"
  "  TREMOTE_AGENT_SPIN_US environment variable used when --spin-us is not\n"
  "                       given (so a broker's local agents can be tuned)\n"
  "  TREMOTE_NET_TUNE     sizes of the broker connection, for measurements:\n"
  "                       frame=N,rcvbuf=N,lowat=N (docs/OPERATIONS.md)\n"
  "  --log-level LEVEL    error, warn, info (default) or debug; logs go to\n"
  "                       stderr, one line each, prefixed with the level\n"
  "  -h, --help           show this help and exit\n"
  "  --version            show the version and exit\n"
  "\n"
  "Signals: SIGTERM or SIGINT stop accepting connections, close every\n"
  "connection (ending its sessions and freeing their device memory) and\n"
  "exit 0.\n"
  "\n"
  "Exit status:\n"
  "  0  stopped by SIGTERM or SIGINT, or --help/--version\n"
  "  1  could not start (listen failed, backend unavailable) or the event\n"
  "     loop failed\n"
  "  2  invalid command line, or no secret and no --insecure\n"
  "\n"
  "Example, a STATIC machine reached from another host:\n"
  "  " AGT_PROG " --gen-cert /etc/tremote     # prints SHA256:...\n"
  "  " AGT_PROG " --listen 0.0.0.0:7000 --secret-file /etc/tremote/secret \\\n"
  "      --tls-cert /etc/tremote/cert.pem --tls-key /etc/tremote/key.pem\n"
  "and in the broker's machines file: tls = on, fingerprint = SHA256:...\n";

struct options {
  const char *listen;
  const char *tls_cert, *tls_key, *gen_cert, *san;
  uint64_t quota;
  unsigned idle_timeout_s;
  unsigned exit_idle_s;
  const char *cache_dir;
  uint64_t cache_max;
  const char *secret_file;
  int secret_fd;
  bool insecure;
  int ready_fd;
  const char *backend;
  const char *isolation; /* process, thread, auto */
  const char *emu_name;
  uint64_t emu_mem;
  unsigned emu_cc;
  unsigned emu_workers;
  uint64_t emu_watchdog_s;
  unsigned exec_threads;
  int spin_us; /* -1: by the number of CPUs */
};

static void usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
static void usage_error(const char *fmt, ...)
{
  va_list ap;

  fprintf(stderr, AGT_PROG ": ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nTry '" AGT_PROG " --help' for more information.\n");
  exit(EXIT_USAGE);
}

static int parse_uint(const char *s, unsigned long long max,
                      unsigned long long *out)
{
  char *end;
  unsigned long long v;

  if (!*s || *s == '-')
    return -EINVAL;
  errno = 0;
  v = strtoull(s, &end, 10);
  if (errno || *end || v > max)
    return -EINVAL;
  *out = v;
  return 0;
}

/* "16G", "512M", "1048576": bytes, suffixes are powers of 1024. */
static int parse_size(const char *s, uint64_t *out)
{
  char *end;
  unsigned long long v;
  unsigned shift = 0;

  if (!*s || *s == '-')
    return -EINVAL;
  errno = 0;
  v = strtoull(s, &end, 10);
  if (errno || end == s)
    return -EINVAL;
  if (*end) {
    switch (*end++) {
    case 'k': case 'K': shift = 10; break;
    case 'm': case 'M': shift = 20; break;
    case 'g': case 'G': shift = 30; break;
    case 't': case 'T': shift = 40; break;
    default:
      return -EINVAL;
    }
    /* "16G", "16GB" and "16GiB" all mean 16 << 30. */
    if (*end && strcmp(end, "B") != 0 && strcmp(end, "iB") != 0)
      return -EINVAL;
  }
  if (v == 0 || v > (UINT64_MAX >> shift))
    return -EINVAL;
  *out = (uint64_t)v << shift;
  return 0;
}

static int parse_fd(const char *s)
{
  unsigned long long v;

  if (parse_uint(s, INT_MAX, &v) < 0)
    return -1;
  return (int)v;
}

static void parse_args(int argc, char **argv, struct options *o)
{
  enum {
    OPT_LISTEN = 256, OPT_SECRET_FILE, OPT_SECRET_FD, OPT_INSECURE,
    OPT_READY_FD, OPT_BACKEND, OPT_EMU_NAME, OPT_EMU_MEM, OPT_EMU_CC,
    OPT_EMU_WORKERS, OPT_EMU_WATCHDOG, OPT_EXEC_THREADS, OPT_SPIN_US,
    OPT_LOG_LEVEL, OPT_VERSION, OPT_TLS_CERT, OPT_TLS_KEY, OPT_GEN_CERT,
    OPT_SAN, OPT_QUOTA, OPT_CACHE_DIR, OPT_CACHE_MAX, OPT_IDLE_TIMEOUT,
    OPT_EXIT_IDLE, OPT_ISOLATION,
  };
  static const struct option longs[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"gen-cert", required_argument, NULL, OPT_GEN_CERT},
    {"san", required_argument, NULL, OPT_SAN},
    {"quota", required_argument, NULL, OPT_QUOTA},
    {"cache-dir", required_argument, NULL, OPT_CACHE_DIR},
    {"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
    {"exit-idle", required_argument, NULL, OPT_EXIT_IDLE},
    {"cache-max", required_argument, NULL, OPT_CACHE_MAX},
    {"secret-file", required_argument, NULL, OPT_SECRET_FILE},
    {"secret-fd", required_argument, NULL, OPT_SECRET_FD},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    {"ready-fd", required_argument, NULL, OPT_READY_FD},
    {"backend", required_argument, NULL, OPT_BACKEND},
    {"isolation", required_argument, NULL, OPT_ISOLATION},
    {"emu-name", required_argument, NULL, OPT_EMU_NAME},
    {"emu-mem", required_argument, NULL, OPT_EMU_MEM},
    {"emu-cc", required_argument, NULL, OPT_EMU_CC},
    {"emu-workers", required_argument, NULL, OPT_EMU_WORKERS},
    {"emu-watchdog", required_argument, NULL, OPT_EMU_WATCHDOG},
    {"exec-threads", required_argument, NULL, OPT_EXEC_THREADS},
    {"spin-us", required_argument, NULL, OPT_SPIN_US},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
  };
  unsigned long long v;
  int c;

  while ((c = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
    switch (c) {
    case OPT_LISTEN:
      o->listen = optarg;
      break;
    case OPT_TLS_CERT:
      o->tls_cert = optarg;
      break;
    case OPT_TLS_KEY:
      o->tls_key = optarg;
      break;
    case OPT_GEN_CERT:
      o->gen_cert = optarg;
      break;
    case OPT_SAN:
      o->san = optarg;
      break;
    case OPT_SECRET_FILE:
      o->secret_file = optarg;
      break;
    case OPT_SECRET_FD:
      o->secret_fd = parse_fd(optarg);
      if (o->secret_fd < 0)
        usage_error("--secret-fd: not a file descriptor: '%s'", optarg);
      break;
    case OPT_INSECURE:
      o->insecure = true;
      break;
    case OPT_READY_FD:
      o->ready_fd = parse_fd(optarg);
      if (o->ready_fd < 0)
        usage_error("--ready-fd: not a file descriptor: '%s'", optarg);
      break;
    case OPT_BACKEND:
      if (strcmp(optarg, "emu") && strcmp(optarg, "cuda") &&
          strcmp(optarg, "auto"))
        usage_error("--backend: '%s' is not one of emu, cuda, auto", optarg);
      o->backend = optarg;
      break;
    case OPT_ISOLATION:
      if (strcmp(optarg, "process") && strcmp(optarg, "thread") &&
          strcmp(optarg, "auto"))
        usage_error("--isolation: '%s' is not one of process, thread, auto",
                    optarg);
      o->isolation = optarg;
      break;
    case OPT_EMU_NAME:
      if (!*optarg || strlen(optarg) >= TR_DEVINFO_NAME)
        usage_error("--emu-name: must be 1 to %u bytes", TR_DEVINFO_NAME - 1);
      o->emu_name = optarg;
      break;
    case OPT_EMU_MEM:
      if (parse_size(optarg, &o->emu_mem) < 0)
        usage_error("--emu-mem: '%s' is not a size such as 16G or 512M",
                    optarg);
      break;
    case OPT_IDLE_TIMEOUT:
      if (parse_uint(optarg, 86400, &v) < 0)
        usage_error("--idle-timeout: '%s' is not a number of seconds "
                    "(0 to 86400)", optarg);
      o->idle_timeout_s = (unsigned)v;
      break;
    case OPT_EXIT_IDLE:
      if (parse_uint(optarg, 86400, &v) < 0)
        usage_error("--exit-idle: '%s' is not a number of seconds "
                    "(0 to 86400)", optarg);
      o->exit_idle_s = (unsigned)v;
      break;
    case OPT_CACHE_DIR:
      o->cache_dir = optarg;
      break;
    case OPT_CACHE_MAX:
      if (parse_size(optarg, &o->cache_max) < 0 || o->cache_max == 0)
        usage_error("--cache-max: '%s' is not a size such as 1G or 256M",
                    optarg);
      break;
    case OPT_QUOTA:
      if (parse_size(optarg, &o->quota) < 0 || o->quota == 0)
        usage_error("--quota: '%s' is not a size such as 8G or 512M",
                    optarg);
      break;
    case OPT_EMU_CC: {
      unsigned maj, min;
      char extra;

      if (sscanf(optarg, "%u.%u%c", &maj, &min, &extra) != 2 || maj < 5 ||
          maj > 12 || min > 9 || (maj == 12 && min > 0))
        usage_error("--emu-cc: '%s' is not a compute capability from 5.0 to "
                    "12.0 such as 8.0 or 8.6", optarg);
      o->emu_cc = maj * 10 + min;
      break;
    }
    case OPT_EMU_WORKERS:
      if (parse_uint(optarg, 1024, &v) < 0 || v == 0)
        usage_error("--emu-workers: '%s' is not a number from 1 to 1024",
                    optarg);
      o->emu_workers = (unsigned)v;
      break;
    case OPT_EMU_WATCHDOG:
      if (parse_uint(optarg, 86400ull * 365, &v) < 0)
        usage_error("--emu-watchdog: '%s' is not a number of seconds "
                    "(0 = no limit)", optarg);
      o->emu_watchdog_s = v;
      break;
    case OPT_EXEC_THREADS:
      if (parse_uint(optarg, 1024, &v) < 0 || v == 0)
        usage_error("--exec-threads: '%s' is not a number from 1 to 1024",
                    optarg);
      o->exec_threads = (unsigned)v;
      break;
    case OPT_SPIN_US:
      if (parse_uint(optarg, 10000, &v) < 0)
        usage_error("--spin-us: '%s' is not a number from 0 to 10000",
                    optarg);
      o->spin_us = (int)v;
      break;
    case OPT_LOG_LEVEL:
      if ((tr_log_level = tr_log_parse_level(optarg)) < 0)
        usage_error("--log-level: '%s' is not one of error, warn, info, "
                    "debug", optarg);
      break;
    case 'h':
      fputs(usage_text, stdout);
      exit(0);
    case OPT_VERSION:
      printf(AGT_PROG " %s (protocol %u..%u)\n", TR_VERSION,
             TR_PROTO_VERSION_MIN, TR_PROTO_VERSION_MAX);
      exit(0);
    default:
      usage_error("invalid option");
    }
  }
  if (optind < argc)
    usage_error("unexpected argument '%s'", argv[optind]);
  if (o->spin_us < 0 && getenv("TREMOTE_AGENT_SPIN_US")) {
    const char *e = getenv("TREMOTE_AGENT_SPIN_US");

    if (parse_uint(e, 10000, &v) < 0)
      usage_error("TREMOTE_AGENT_SPIN_US: '%s' is not a number from 0 to "
                  "10000", e);
    o->spin_us = (int)v;
  }
  if (!o->exec_threads && getenv("TREMOTE_AGENT_EXEC_THREADS")) {
    const char *e = getenv("TREMOTE_AGENT_EXEC_THREADS");

    if (parse_uint(e, 1024, &v) < 0 || v == 0)
      usage_error("TREMOTE_AGENT_EXEC_THREADS: '%s' is not a number from 1 "
                  "to 1024", e);
    o->exec_threads = (unsigned)v;
  }
  if (o->secret_file && o->secret_fd >= 0)
    usage_error("--secret-file and --secret-fd are mutually exclusive");
  if (!o->tls_cert != !o->tls_key)
    usage_error("--tls-cert and --tls-key go together");
  if (o->san && !o->gen_cert)
    usage_error("--san goes with --gen-cert");
}

/* --gen-cert DIR: make the pair, print the fingerprint, exit. */
static int gen_cert(const struct options *o)
{
  char fp[AGT_TLS_FP_LEN], err[512];

  if (agt_tls_gen_cert(o->gen_cert, o->san, fp, err, sizeof(err)) < 0) {
    fprintf(stderr, AGT_PROG ": %s\n", err);
    return 1;
  }
  printf("%s/cert.pem %s\n", o->gen_cert, fp);
  printf("Start the agent with --tls-cert %s/cert.pem --tls-key "
         "%s/key.pem,\nand pin it in the broker's machines file: tls = on, "
         "fingerprint = %s\n", o->gen_cert, o->gen_cert, fp);
  return 0;
}

/* Read at most SECRET_MAX bytes from fd until EOF.  Returns a malloc()ed
   string or NULL with errno set. */
static char *read_all(int fd)
{
  char *buf = malloc(SECRET_MAX + 1);
  size_t n = 0;

  if (!buf)
    return NULL;
  for (;;) {
    ssize_t r = read(fd, buf + n, SECRET_MAX + 1 - n);

    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      free(buf);
      return NULL;
    }
    if (r == 0)
      break;
    n += (size_t)r;
    if (n > SECRET_MAX) {
      free(buf);
      errno = EFBIG;
      return NULL;
    }
  }
  buf[n] = 0;
  return buf;
}

/* Strip surrounding whitespace in place; the secret must then be printable
   ASCII without spaces, so it fits an HTTP header value unchanged. */
static int clean_secret(char *s)
{
  size_t a = strspn(s, " \t\r\n"), n = strlen(s + a);

  memmove(s, s + a, n + 1);
  while (n && strchr(" \t\r\n", s[n - 1]))
    s[--n] = 0;
  if (n == 0)
    return -ENODATA;
  for (size_t i = 0; i < n; i++) {
    if (s[i] <= ' ' || s[i] > '~')
      return -EINVAL;
  }
  return 0;
}

static char *load_secret(const struct options *o)
{
  const char *from, *env = getenv("TREMOTE_AGENT_SECRET");
  char *s = NULL;
  int fd, rc;

  if (o->secret_file) {
    from = o->secret_file;
    fd = open(o->secret_file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      fprintf(stderr, AGT_PROG ": cannot open secret file %s: %s\n",
              o->secret_file, strerror(errno));
      exit(EXIT_USAGE);
    }
    s = read_all(fd);
    close(fd);
  } else if (o->secret_fd >= 0) {
    from = "--secret-fd";
    s = read_all(o->secret_fd);
    close(o->secret_fd);
  } else if (env) {
    from = "TREMOTE_AGENT_SECRET";
    s = strdup(env);
  } else {
    if (o->insecure)
      return NULL;
    fprintf(stderr,
            AGT_PROG ": no secret: give --secret-file FILE, --secret-fd N or "
                     "TREMOTE_AGENT_SECRET (or --insecure to accept every "
                     "request, for trusted tests only)\n");
    exit(EXIT_USAGE);
  }
  if (!s) {
    fprintf(stderr, AGT_PROG ": cannot read the secret from %s: %s\n", from,
            strerror(errno));
    exit(EXIT_USAGE);
  }
  rc = clean_secret(s);
  if (rc < 0) {
    fprintf(stderr, AGT_PROG ": the secret from %s is %s\n", from,
            rc == -ENODATA ? "empty"
                           : "not printable ASCII without spaces");
    free(s);
    exit(EXIT_USAGE);
  }
  return s;
}

static void announce_port(int fd, uint16_t port)
{
  char line[16];
  int n = snprintf(line, sizeof(line), "%u\n", port);

  if (write(fd, line, (size_t)n) != n)
    agt_warn("--ready-fd %d: cannot write the port: %s", fd, strerror(errno));
  close(fd);
}

/*
 * Bulk data moves through here in chunks of up to 1 MiB, allocated and
 * freed thousands of times a second.  glibc serves blocks that large with a
 * fresh mmap() each time, so every byte of every chunk would page-fault on
 * first touch (the largest cost in a profile of a 64 MiB copy).  Keep them in
 * the heap instead, and keep the freed heap around.
 */
__attribute__((constructor)) static void agt_tune_malloc(void)
{
  mallopt(M_MMAP_THRESHOLD, 16 << 20);
  mallopt(M_TRIM_THRESHOLD, 128 << 20);
}

int main(int argc, char **argv)
{
  struct options o = {
    .listen = "127.0.0.1:0",
    .secret_fd = -1,
    .ready_fd = -1,
    .backend = "auto",
    .isolation = "auto",
    .emu_name = "tremote emulated device",
    .emu_mem = 16ull << 30,
    .emu_cc = 80,
    .emu_watchdog_s = 600,
    .spin_us = -1,
    .cache_max = 1ull << 30,
    .idle_timeout_s = 15,
  };
  struct agt_server_config scfg;
  struct agt_emu_config ecfg;
  struct agt_backend *be = NULL;
  struct agt_server *srv = NULL;
  struct agt_nvml *nvml = NULL;
  SSL_CTX *tls = NULL;
  const char *why = "";
  char *secret;
  sigset_t sigs;
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  struct agt_backend *gpu = NULL; /* the cuda backend under workers */
  int rc, status = 1;

  tr_log_set_prog(AGT_PROG);
  /* A session's worker process (backends/proc.c), not an agent. */
  if (argc == 3 && strcmp(argv[1], "--worker-fd") == 0)
    return agt_proc_worker_main(atoi(argv[2]));
  {
    const char *iso = getenv("TREMOTE_ISOLATION");

    if (iso && (!strcmp(iso, "process") || !strcmp(iso, "thread")))
      o.isolation = iso;
  }
  parse_args(argc, argv, &o);
  if (o.gen_cert)
    return gen_cert(&o);
  if (o.tls_cert) {
    char err[512], fp[AGT_TLS_FP_LEN];

    tls = agt_tls_server_ctx(o.tls_cert, o.tls_key, err, sizeof(err));
    if (!tls) {
      fprintf(stderr, AGT_PROG ": %s\n", err);
      return EXIT_USAGE;
    }
    if (agt_tls_file_fingerprint(o.tls_cert, fp) == 0)
      agt_info("TLS certificate %s, fingerprint %s", o.tls_cert, fp);
  }
  secret = load_secret(&o);
  if (!secret)
    agt_warn("--insecure: accepting requests without a secret");
  if (ncpu < 1)
    ncpu = 1;
  if (!o.exec_threads)
    o.exec_threads = (unsigned)ncpu;
  if (o.spin_us < 0)
    o.spin_us = ncpu >= AGT_SPIN_MIN_CPUS ? AGT_SPIN_US : 0;

  /* Before any thread exists: they all inherit this mask, and only the
     loop's signalfd sees the signals. */
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);
  signal(SIGPIPE, SIG_IGN);

  if (!o.emu_workers)
    o.emu_workers = (unsigned)ncpu;
  ecfg = (struct agt_emu_config){
    .name = o.emu_name,
    .mem = o.emu_mem,
    .sm_count = o.emu_workers,
    .workers = o.emu_workers,
    .cc = o.emu_cc,
    .watchdog_ms = o.emu_watchdog_s * 1000,
  };
  rc = agt_backend_open(o.backend, &ecfg, &be, &why);
  if (rc < 0) {
    agt_err("backend %s: %s", o.backend, why);
    goto out;
  }
  if (strcmp(be->ops->name, "cuda") == 0 && agt_cuda_one_process(be)) {
    if (strcmp(o.isolation, "process") == 0) {
      agt_err("--isolation process: the GPU is in EXCLUSIVE_PROCESS compute "
              "mode, where one process may use it, so sessions cannot have "
              "worker processes; use --isolation thread (or auto), or make "
              "the GPU shared with 'nvidia-smi -c DEFAULT'");
      goto out_backend;
    }
    if (strcmp(o.isolation, "auto") == 0)
      agt_info("the GPU is in EXCLUSIVE_PROCESS compute mode: one process "
               "may use it, so sessions share the agent process (--isolation "
               "thread; 'nvidia-smi -c DEFAULT' allows worker processes)");
    o.isolation = "thread";
  }
  if (strcmp(o.isolation, "process") == 0 ||
      (strcmp(o.isolation, "auto") == 0 && strcmp(be->ops->name, "cuda") == 0)) {
    struct agt_backend *pb;

    if (strcmp(be->ops->name, "cuda") == 0)
      gpu = be; /* the workers' sessions never run in it */

    if (agt_proc_new(be, &ecfg, &pb) < 0) {
      agt_err("out of memory");
      goto out_backend;
    }
    be = pb;
    agt_info("sessions run in worker processes of their own (--isolation "
             "process)");
  }
  /* A real GPU's utilization, temperature and driver for tremote-smi;
     the emulated device has none. */
  if (strcmp(be->ops->name, "cuda") == 0) {
    struct tr_devinfo d;
    const char *nwhy;

    memset(&d, 0, sizeof(d));
    be->ops->devinfo(be, &d);
    if (agt_nvml_open(d.uuid, &nvml, &nwhy) < 0)
      agt_info("NVML: %s; utilization, temperature and the driver "
               "version are reported unknown", nwhy);
    else if (gpu) {
      /* Sessions run in workers and NVML tells the free memory: this
         process needs no CUDA context, which holds device memory. */
      agt_cuda_drop_context(gpu);
      agt_info("cuda: the agent process holds no CUDA context (sessions "
               "have theirs in workers; NVML reports the memory)");
    }
  }
  scfg = (struct agt_server_config){o.listen, tls, secret, o.exec_threads,
                                    (unsigned)o.spin_us, o.quota,
                                    o.idle_timeout_s, o.cache_dir,
                                    o.cache_max, o.exit_idle_s, nvml};
  tls = NULL; /* the server's now */
  rc = agt_server_new(&scfg, be, &srv, &why);
  if (rc < 0) {
    agt_err("cannot listen on %s: %s", o.listen, why);
    goto out_backend;
  }
  agt_info("listening on %s, port %u (%s); backend %s; %u execution "
           "threads; polling %d us", o.listen, agt_server_port(srv),
           scfg.tls ? "TLS" : "h2c", be->ops->name, o.exec_threads,
           o.spin_us);
  if (o.ready_fd >= 0)
    announce_port(o.ready_fd, agt_server_port(srv));
  if (agt_server_run(srv) == 0)
    status = 0;
  agt_server_free(srv);
  agt_info("stopped");
out_backend:
  agt_nvml_close(nvml);
  be->ops->destroy(be);
out:
  SSL_CTX_free(tls);
  free(secret);
  return status;
}
