/*
 * tremote: the command line.
 *
 *   tremote run [--] PROGRAM [ARGS...]     run a CUDA program on tremote
 *   tremote machine add|ls|rm ...          the broker's machines
 *   tremote broker start|stop|status       the broker itself
 *   tremote doctor [PROGRAM]               what will not work, and why
 *
 * Machines go through libtremote (the broker's control socket); `run`
 * starts a broker when none answers, then execs the program with the shim
 * preloaded, so the program's exit status is tremote's.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "shim_preflight.h"
#include "tremote/tremote.h"

#define EXIT_USAGE 2
#define EXIT_NOBROKER 3
#define START_WAIT_MS 120000
#define PROGRESS_MS 5000

static const char usage_main[] =
    "Usage: tremote COMMAND [ARGS...]\n"
    "Run unmodified CUDA programs on GPUs that are not in this machine.\n"
    "\n"
    "Commands:\n"
    "  run [--] PROGRAM [ARGS...]   run PROGRAM with the tremote shim; a\n"
    "                               broker is started first if none runs\n"
    "  machine add PROVIDER GPU [OPTIONS]\n"
    "                               add a machine (local, static, modal)\n"
    "  machine ls                   list the machines\n"
    "  machine rm ID|INDEX          remove a machine\n"
    "  broker start [BROKER-ARGS]   start a broker in the background\n"
    "  broker stop                  stop it (its LOCAL agents too)\n"
    "  broker status                is one running, with which machines\n"
    "  doctor [PROGRAM]             explain what will not work\n"
    "  modal setup [OPTIONS]        prepare a Modal workspace for modal\n"
    "                               machines (the agent's image, the app)\n"
    "  help [COMMAND]               this text, or a command's\n"
    "\n"
    "The broker is the one at $TREMOTE_BROKER_SOCKET, else\n"
    "$XDG_RUNTIME_DIR/tremote/broker.sock, else /run/tremote/broker.sock\n"
    "(root) or /tmp/tremote-$UID/broker.sock.  tremote-smi lists machines\n"
    "the way nvidia-smi lists GPUs.\n"
    "\n"
    "Exit status: run passes the program's through; otherwise 0 done, 1\n"
    "failed (the message says why), 2 bad usage, 3 no broker runs.\n";

static const char usage_run[] =
    "Usage: tremote run [--] PROGRAM [ARGS...]\n"
    "Run PROGRAM (a CUDA program built with nvcc -cudart shared) with\n"
    "libtremote_shim.so preloaded, so its CUDA calls go to the broker's\n"
    "machines.  If no broker answers, one is started in the background\n"
    "first (tremote broker start, with its default: one LOCAL machine),\n"
    "with a progress line while its machines start.  The program replaces\n"
    "tremote: its exit status, signals and output are its own.\n"
    "Environment: TREMOTE_SHIM names the shim, TREMOTE_BROKER the broker\n"
    "binary; TREMOTE_VISIBLE_DEVICES picks machines for the program.\n";

static const char usage_machine[] =
    "Usage: tremote machine add PROVIDER GPU [OPTIONS]\n"
    "       tremote machine ls\n"
    "       tremote machine rm ID|INDEX\n"
    "\n"
    "add: PROVIDER is local (an agent the broker runs here), static (an\n"
    "agent you run: tremote-gpu-agent --listen ...) or modal (a Modal\n"
    "Sandbox with that GPU, made by the tremote Modal app: see tremote\n"
    "modal setup).  GPU is the type asked for: T4, L4, A10G, A100-40GB,\n"
    "A100-80GB, L40S, H100, H200, B200 (any case).  Prints the machine's id\n"
    "and index once it is ready; a modal machine takes minutes, with a\n"
    "progress line on stderr meanwhile.  If it cannot become ready, it is\n"
    "removed again and the reason printed (exit 1).  Options for modal:\n"
    "  --idle-timeout SEC       stop it on Modal after SEC seconds without\n"
    "                           a program (default 600; 0 = never); the\n"
    "                           next program asks for it again\n"
    "  --timeout SEC            the Sandbox's lifetime (default 3600)\n"
    "  --wait SEC               give up waiting after SEC (default 1200)\n"
    "  --no-wait                print the id at once; tremote-smi and\n"
    "                           machine ls show its progress\n"
    "Options for static:\n"
    "  --address IP:PORT        where the agent listens\n"
    "  --secret-file FILE       its secret (mode 0600)\n"
    "  --tls                    TLS, with one of:\n"
    "  --fingerprint SHA256:..  the agent's certificate, as --gen-cert printed\n"
    "  --ca FILE                a CA that signed it\n"
    "ls: one line per machine: index, id, provider, GPU asked, state, device.\n"
    "rm: take a machine out; programs using it get errors.\n"
    "Machines added here are kept by the broker across its restarts.\n";

static const char usage_broker[] =
    "Usage: tremote broker start [BROKER-ARGS...]\n"
    "       tremote broker stop\n"
    "       tremote broker status\n"
    "\n"
    "start: run tremote-broker in the background (its log: broker.log next\n"
    "to its socket) and wait until its machines have started; BROKER-ARGS\n"
    "go to it (tremote-broker --help), e.g. --machines FILE.\n"
    "stop: SIGTERM it and wait until it is gone (it stops its LOCAL agents).\n"
    "status: pid, socket, machines; exit 3 when none runs.\n";

static const char usage_modal[] =
    "Usage: tremote modal setup [--agent PATH] [--out DIR] [--dry-run]\n"
    "                           [--bundle-only]\n"
    "Prepare your Modal workspace for modal machines (docs/MODAL.md): bundle\n"
    "tremote-gpu-agent with the libraries it links, build the Sandboxes'\n"
    "image from Debian 12 plus the bundle and publish it as tremote-agent,\n"
    "then print the remaining steps: modal deploy of the tremote app, a\n"
    "proxy auth token, and ~/.config/tremote/modal.ini.  Needs python3 and,\n"
    "to publish, the modal package (pip install modal) with a Modal token.\n"
    "--dry-run shows what it would do; tremote modal setup --help lists\n"
    "every option.  Runs tools/modal/setup.py (installed under\n"
    "share/tremote/modal; TREMOTE_MODAL_DIR names another directory).\n";

static const char usage_doctor[] =
    "Usage: tremote doctor [PROGRAM]\n"
    "Check what tremote needs and say what will not work: the shim and the\n"
    "broker binaries, a running broker and the state of each machine, and\n"
    "with PROGRAM, whether it can be carried at all (a program that links\n"
    "the CUDA runtime statically, nvcc's default, cannot: rebuild it with\n"
    "nvcc -cudart shared).  Exit 0 when nothing is wrong, else 1.\n";

/* ---- where things are ------------------------------------------------------ */

static char self_dir[PATH_MAX];

static void find_self(void)
{
  ssize_t n = readlink("/proc/self/exe", self_dir, sizeof(self_dir) - 1);
  char *slash;

  if (n <= 0) {
    snprintf(self_dir, sizeof(self_dir), ".");
    return;
  }
  self_dir[n] = 0;
  slash = strrchr(self_dir, '/');
  if (slash)
    *slash = 0;
}

/* The first of env, then self_dir/rel... that exists; into out. */
static int find_file(const char *env, const char *const *rel, char *out,
                     size_t cap)
{
  const char *e = getenv(env);

  if (e && e[0]) {
    snprintf(out, cap, "%s", e);
    return access(out, F_OK) == 0 ? 0 : -1;
  }
  for (; *rel; rel++) {
    if (snprintf(out, cap, "%s/%s", self_dir, *rel) >= (int)cap)
      continue; /* too long to be it */
    if (access(out, F_OK) == 0)
      return 0;
  }
  return -1;
}

static int find_shim(char *out, size_t cap)
{
  static const char *const rel[] = {"../lib/libtremote_shim.so",
                                    "../../shim/libtremote_shim.so", NULL};

  return find_file("TREMOTE_SHIM", rel, out, cap);
}

static int find_broker(char *out, size_t cap)
{
  static const char *const rel[] = {"tremote-broker",
                                    "../../broker/tremote-broker", NULL};

  if (find_file("TREMOTE_BROKER", rel, out, cap) == 0)
    return 0;
  snprintf(out, cap, "tremote-broker"); /* from PATH */
  return 1;
}

/* The broker's socket, its directory, its log. */
static void broker_paths(char *sock, char *dir, char *log, size_t cap)
{
  char *slash;

  tr_client_socket_path(sock, cap);
  snprintf(dir, cap, "%s", sock);
  slash = strrchr(dir, '/');
  if (slash)
    *slash = 0;
  snprintf(log, cap, "%s/broker.log", dir);
}

static int find_agent(char *out, size_t cap)
{
  static const char *const rel[] = {"tremote-gpu-agent",
                                    "../../gpu-agent/tremote-gpu-agent", NULL};

  return find_file("TREMOTE_AGENT", rel, out, cap);
}

/* ---- modal setup --------------------------------------------------------------- */

/*
 * The script does the work (Modal's SDK is Python); this finds it and the
 * agent it bundles: installed (PREFIX/share/tremote/modal beside
 * PREFIX/bin) or in the build tree (the source's tools/modal).
 */
static int cmd_modal(int argc, char **argv)
{
  static const char *const rel[] = {"../share/tremote/modal/setup.py",
                                    TR_SOURCE_DIR "/tools/modal/setup.py",
                                    NULL};
  char script[PATH_MAX] = "", agent[PATH_MAX], dir[PATH_MAX];
  const char *e = getenv("TREMOTE_MODAL_DIR");
  char **av;
  int k = 0, has_agent = 0;

  if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
    fputs(usage_modal, argc < 1 ? stderr : stdout);
    return argc < 1 ? EXIT_USAGE : 0;
  }
  if (strcmp(argv[0], "setup") != 0) {
    fprintf(stderr, "tremote: unknown modal command '%s' (valid: setup)\n",
            argv[0]);
    return EXIT_USAGE;
  }
  if (e && e[0]) {
    if (snprintf(script, sizeof(script), "%s/setup.py", e) >=
        (int)sizeof(script))
      script[0] = 0;
  } else {
    int found = 0;

    for (int i = 0; rel[i] && !found; i++) {
      int n = rel[i][0] == '/'
                  ? snprintf(script, sizeof(script), "%s", rel[i])
                  : snprintf(script, sizeof(script), "%s/%s", self_dir,
                             rel[i]);

      found = n < (int)sizeof(script) && access(script, R_OK) == 0;
    }
  }
  if (!script[0] || access(script, R_OK) != 0) {
    fprintf(stderr, "tremote: cannot find the Modal setup script (looked "
                    "for %s; set TREMOTE_MODAL_DIR to the directory with "
                    "setup.py)\n", script);
    return 1;
  }
  av = calloc((size_t)argc + 6, sizeof(*av));
  if (!av) {
    fprintf(stderr, "tremote: out of memory\n");
    return 1;
  }
  for (int i = 1; i < argc; i++)
    if (!strncmp(argv[i], "--agent", 7))
      has_agent = 1;
  av[k++] = "python3";
  av[k++] = script;
  if (!has_agent && find_agent(agent, sizeof(agent)) == 0) {
    av[k++] = "--agent";
    av[k++] = agent;
  }
  for (int i = 1; i < argc; i++)
    av[k++] = argv[i];
  snprintf(dir, sizeof(dir), "%s", self_dir);
  setenv("TREMOTE_BINDIR", dir, 0);
  execvp("python3", av);
  fprintf(stderr, "tremote: cannot run python3 (needed by modal setup): %s\n",
          strerror(errno));
  free(av);
  return 1;
}

/* ---- the broker ------------------------------------------------------------- */

/* Whether a broker answers; its pid into *pid when it does. */
static int broker_running(pid_t *pid)
{
  int p = tremote_broker_pid();

  if (pid)
    *pid = p > 0 ? (pid_t)p : 0;
  return p > 0;
}

static void print_log_tail(const char *log)
{
  char cmd[PATH_MAX + 32];

  fprintf(stderr, "tremote: the end of %s:\n", log);
  snprintf(cmd, sizeof(cmd), "tail -n 15 '%s' >&2", log);
  if (system(cmd) != 0)
    fprintf(stderr, "  (cannot read it)\n");
}

/* Start a broker in the background with args; wait until it is ready. */
static int broker_start(char **args, int nargs, int quiet)
{
  char broker[PATH_MAX], sock[108], dir[108], log[128];
  char **argv = calloc((size_t)nargs + 4, sizeof(*argv));
  int pfd[2], logfd, waited = 0;
  char line[16] = {0};
  pid_t pid;

  if (!argv)
    return 1;
  find_broker(broker, sizeof(broker));
  broker_paths(sock, dir, log, sizeof(sock));
  {
    /* mkdir -p: the log goes next to the socket. */
    char p[108];

    snprintf(p, sizeof(p), "%s", dir);
    for (char *s = p + 1; *s; s++)
      if (*s == '/') {
        *s = 0;
        mkdir(p, 0700);
        *s = '/';
      }
    mkdir(p, 0700);
  }
  logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (logfd < 0 || pipe2(pfd, O_CLOEXEC) < 0) {
    fprintf(stderr, "tremote: cannot open %s: %s\n", log, strerror(errno));
    return 1;
  }
  argv[0] = broker;
  argv[1] = "--ready-fd";
  argv[2] = "3";
  for (int i = 0; i < nargs; i++)
    argv[3 + i] = args[i];
  pid = fork();
  if (pid == 0) {
    int w = fcntl(pfd[1], F_DUPFD, 10);

    setsid();
    dup2(logfd, 1);
    dup2(logfd, 2);
    dup2(w, 3);
    execvp(broker, argv);
    fprintf(stderr, "tremote: cannot run %s: %s\n", broker, strerror(errno));
    _exit(127);
  }
  close(pfd[1]);
  close(logfd);
  free(argv);
  if (pid < 0) {
    fprintf(stderr, "tremote: fork: %s\n", strerror(errno));
    return 1;
  }
  for (;;) {
    struct pollfd p = {.fd = pfd[0], .events = POLLIN};
    int r = poll(&p, 1, PROGRESS_MS);

    if (r > 0) {
      ssize_t n = read(pfd[0], line, sizeof(line) - 1);

      if (n > 0 && strncmp(line, "ready", 5) == 0)
        break;
      /* EOF without "ready": it exited. */
      {
        int st = 0;

        waitpid(pid, &st, 0);
        fprintf(stderr, "tremote: the broker (%s) exited during start-up "
                        "(status %d)\n", broker,
                WIFEXITED(st) ? WEXITSTATUS(st) : -1);
      }
      print_log_tail(log);
      close(pfd[0]);
      return 1;
    }
    waited += PROGRESS_MS;
    if (waited >= START_WAIT_MS) {
      fprintf(stderr, "tremote: the broker did not become ready in %d s; "
                      "it keeps trying (pid %d)\n", waited / 1000, (int)pid);
      print_log_tail(log);
      close(pfd[0]);
      return 1;
    }
    fprintf(stderr, "tremote: waiting for the broker's machines to "
                    "start... %d s\n", waited / 1000);
  }
  close(pfd[0]);
  if (!quiet)
    printf("tremote: broker started (pid %d), socket %s, log %s\n", (int)pid,
           sock, log);
  return 0;
}

/* What to say of a machine that is not ready: its error, else what it
   waits for. */
static const char *why_of(const struct tremote_machine_info *m)
{
  return m->error[0] ? m->error : m->progress;
}

static int cmd_broker(int argc, char **argv)
{
  pid_t pid = 0;

  if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
    fputs(usage_broker, argc < 1 ? stderr : stdout);
    return argc < 1 ? EXIT_USAGE : 0;
  }
  if (!strcmp(argv[0], "start")) {
    if (broker_running(&pid)) {
      fprintf(stderr, "tremote: a broker already runs (pid %d); 'tremote "
                      "broker stop' first to start another\n", (int)pid);
      return 1;
    }
    return broker_start(argv + 1, argc - 1, 0);
  }
  if (argc > 1) {
    fprintf(stderr, "tremote: broker %s takes no arguments\n", argv[0]);
    return EXIT_USAGE;
  }
  if (!strcmp(argv[0], "status")) {
    struct tremote_machine_info *v;
    size_t n, ready = 0;
    char sock[108], dir[108], log[128];

    if (!broker_running(&pid) || tremote_list_machines(&v, &n) < 0) {
      printf("tremote: no broker runs (%s)\n", tremote_last_error());
      return EXIT_NOBROKER;
    }
    for (size_t i = 0; i < n; i++)
      ready += !strcmp(v[i].state, "ready");
    broker_paths(sock, dir, log, sizeof(sock));
    printf("tremote: broker pid %d, socket %s, %zu machine(s), %zu ready\n",
           (int)pid, sock, n, ready);
    for (size_t i = 0; i < n; i++)
      printf("  %d  %-24s %-9s %s%s%s\n", v[i].index, v[i].device_id,
             v[i].state, v[i].device_name, why_of(&v[i])[0] ? "  " : "",
             why_of(&v[i]));
    free(v);
    return 0;
  }
  if (!strcmp(argv[0], "stop")) {
    if (!broker_running(&pid) || pid <= 0) {
      fprintf(stderr, "tremote: no broker runs\n");
      return EXIT_NOBROKER;
    }
    if (kill(pid, SIGTERM) < 0) {
      fprintf(stderr, "tremote: cannot stop pid %d: %s\n", (int)pid,
              strerror(errno));
      return 1;
    }
    for (int i = 0; i < 150; i++) {
      struct timespec ts = {0, 100000000};

      if (kill(pid, 0) < 0) {
        printf("tremote: broker pid %d stopped\n", (int)pid);
        return 0;
      }
      nanosleep(&ts, NULL);
    }
    fprintf(stderr, "tremote: broker pid %d still runs after 15 s\n",
            (int)pid);
    return 1;
  }
  fprintf(stderr, "tremote: unknown broker command '%s' (valid: start, stop, "
                  "status)\n", argv[0]);
  return EXIT_USAGE;
}

/* ---- machines ---------------------------------------------------------------- */

/* A line on stderr for each new step of a machine's start. */
static void show_progress(const char *line, void *arg)
{
  (void)arg;
  fprintf(stderr, "tremote: %s\n", line);
}

static int cmd_machine(int argc, char **argv)
{
  if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
    fputs(usage_machine, argc < 1 ? stderr : stdout);
    return argc < 1 ? EXIT_USAGE : 0;
  }
  if (!strcmp(argv[0], "ls")) {
    struct tremote_machine_info *v;
    size_t n;

    if (tremote_list_machines(&v, &n) < 0) {
      fprintf(stderr, "tremote: %s\n", tremote_last_error());
      return EXIT_NOBROKER;
    }
    printf("%-5s %-24s %-8s %-10s %-9s %s\n", "INDEX", "ID", "PROVIDER",
           "GPU", "STATE", "DEVICE");
    for (size_t i = 0; i < n; i++)
      printf("%-5d %-24s %-8s %-10s %-9s %s%s%s\n", v[i].index,
             v[i].device_id, v[i].provider,
             v[i].gpu_requested[0] ? v[i].gpu_requested : "-", v[i].state,
             v[i].device_name[0] ? v[i].device_name : "-",
             why_of(&v[i])[0] ? "  " : "", why_of(&v[i]));
    free(v);
    return 0;
  }
  if (!strcmp(argv[0], "rm")) {
    struct tremote_machine_info *v;
    size_t n;
    char *end;
    long idx;
    int rc = 1;

    if (argc != 2) {
      fprintf(stderr, "tremote: machine rm takes one ID or INDEX\n");
      return EXIT_USAGE;
    }
    if (tremote_list_machines(&v, &n) < 0) {
      fprintf(stderr, "tremote: %s\n", tremote_last_error());
      return EXIT_NOBROKER;
    }
    idx = strtol(argv[1], &end, 10);
    for (size_t i = 0; i < n; i++)
      if ((*end == 0 && end != argv[1] && v[i].index == idx) ||
          !strcmp(v[i].device_id, argv[1])) {
        tremote_machine *m = tremote_get_device_by_index(v[i].index);

        if (m && tremote_remove_machine(m) == 0) {
          printf("tremote: removed %s (index %d)\n", v[i].device_id,
                 v[i].index);
          rc = 0;
        } else {
          fprintf(stderr, "tremote: %s\n", tremote_last_error());
        }
        tremote_machine_free(m);
        free(v);
        return rc;
      }
    fprintf(stderr, "tremote: no machine '%s' (tremote machine ls lists "
                    "them)\n", argv[1]);
    free(v);
    return 1;
  }
  if (!strcmp(argv[0], "add")) {
    struct tremote_machine_opts o = {0};
    int wait_s = 1200;
    tremote_provider p;
    tremote_machine *m;

    if (argc < 3) {
      fprintf(stderr, "tremote: machine add needs PROVIDER and GPU (see "
                      "tremote machine --help)\n");
      return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "local"))
      p = TREMOTE_PROVIDER_LOCAL;
    else if (!strcmp(argv[1], "static"))
      p = TREMOTE_PROVIDER_STATIC;
    else if (!strcmp(argv[1], "modal"))
      p = TREMOTE_PROVIDER_MODAL;
    else {
      fprintf(stderr, "tremote: unknown provider '%s' (valid: local, "
                      "static, modal)\n", argv[1]);
      return EXIT_USAGE;
    }
    for (int i = 3; i < argc; i++) {
      const char *a = argv[i];
      const char **dst = NULL;

      if (!strcmp(a, "--tls")) {
        o.tls = 1;
        continue;
      }
      if (!strcmp(a, "--no-wait")) {
        wait_s = -1;
        continue;
      }
      if (!strcmp(a, "--idle-timeout") || !strcmp(a, "--timeout") ||
          !strcmp(a, "--wait")) {
        char *end;
        long v = i + 1 < argc ? strtol(argv[i + 1], &end, 10) : -1;

        if (i + 1 >= argc || *end || v < 0 || v > 86400) {
          fprintf(stderr, "tremote: machine add: %s needs a number of "
                          "seconds, 0 to 86400\n", a);
          return EXIT_USAGE;
        }
        i++;
        if (a[2] == 'i')
          o.idle_timeout_s = v ? v : -1;
        else if (a[2] == 't')
          o.timeout_s = (unsigned)v;
        else
          wait_s = (int)v;
        continue;
      }
      if (!strcmp(a, "--address"))
        dst = &o.address;
      else if (!strcmp(a, "--secret-file"))
        dst = &o.secret_file;
      else if (!strcmp(a, "--fingerprint"))
        dst = &o.fingerprint;
      else if (!strcmp(a, "--ca"))
        dst = &o.ca;
      if (!dst || i + 1 >= argc) {
        fprintf(stderr, "tremote: machine add: %s '%s' (valid: --address "
                        "IP:PORT, --secret-file FILE, --tls, --fingerprint "
                        "SHA256:..., --ca FILE; modal: --idle-timeout SEC, "
                        "--timeout SEC, --wait SEC, --no-wait)\n",
                dst ? "missing a value after" : "unknown option", a);
        return EXIT_USAGE;
      }
      *dst = argv[++i];
    }
    m = tremote_create_machine(p, argv[2], &o);
    if (!m) {
      fprintf(stderr, "tremote: %s\n", tremote_last_error());
      return strstr(tremote_last_error(), "no tremote broker") ? EXIT_NOBROKER
                                                               : 1;
    }
    if (wait_s >= 0 &&
        tremote_machine_wait(m, wait_s, show_progress, NULL) < 0) {
      char why[512];

      snprintf(why, sizeof(why), "%s", tremote_last_error());
      fprintf(stderr, "tremote: %s; removing it\n", why);
      if (tremote_remove_machine(m) < 0)
        fprintf(stderr, "tremote: %s\n", tremote_last_error());
      tremote_machine_free(m);
      return 1;
    }
    printf("%s %d\n", tremote_machine_device_id(m),
           tremote_machine_remote_index(m));
    tremote_machine_free(m);
    return 0;
  }
  fprintf(stderr, "tremote: unknown machine command '%s' (valid: add, ls, "
                  "rm)\n", argv[0]);
  return EXIT_USAGE;
}

/* ---- doctor ------------------------------------------------------------------- */

/* What the ELF file at path says about carrying it; 0 fine, 1 a problem. */
static int check_program(const char *path)
{
  struct shim_elf_facts f = {0};
  struct stat st;
  void *img;
  int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;

  if (fd < 0 || fstat(fd, &st) < 0 || st.st_size == 0) {
    printf("  FAIL  %s: %s\n", path, strerror(errno ? errno : EINVAL));
    if (fd >= 0)
      close(fd);
    return 1;
  }
  img = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (img == MAP_FAILED || shim_elf_scan(img, (size_t)st.st_size, 1, &f) < 0) {
    printf("  FAIL  %s is not a 64-bit ELF program\n", path);
    if (img != MAP_FAILED)
      munmap(img, (size_t)st.st_size);
    return 1;
  }
  munmap(img, (size_t)st.st_size);
  if (f.defines_register && !f.needs_cudart && !f.imports_register) {
    printf("  FAIL  %s links the CUDA runtime statically (nvcc's default), "
           "so tremote cannot carry its calls: rebuild it with 'nvcc "
           "-cudart shared' (CMake: set(CMAKE_CUDA_RUNTIME_LIBRARY Shared))\n",
           path);
    rc = 1;
  } else if (f.needs_cudart) {
    printf("  ok    %s uses the shared CUDA runtime (libcudart.so)\n", path);
  } else {
    printf("  note  %s does not link the CUDA runtime itself (its libraries "
           "may; the shim checks those when it runs)\n", path);
  }
  if (f.needs_driver) {
    printf("  FAIL  %s calls the CUDA driver (libcuda.so.1) directly, which "
           "tremote does not carry yet\n", path);
    rc = 1;
  }
  return rc;
}

static int cmd_doctor(int argc, char **argv)
{
  struct tremote_machine_info *v;
  char path[PATH_MAX];
  size_t n;
  int bad = 0;

  if (argc > 0 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))) {
    fputs(usage_doctor, stdout);
    return 0;
  }
  printf("tremote doctor\n");
  if (find_shim(path, sizeof(path)) == 0) {
    printf("  ok    shim: %s\n", path);
  } else {
    printf("  FAIL  no libtremote_shim.so next to tremote (set "
           "TREMOTE_SHIM)\n");
    bad = 1;
  }
  if (find_broker(path, sizeof(path)) == 0)
    printf("  ok    broker: %s\n", path);
  else
    printf("  note  tremote-broker is taken from PATH\n");
  if (tremote_list_machines(&v, &n) < 0) {
    printf("  FAIL  %s\n", tremote_last_error());
    bad = 1;
  } else {
    size_t ready = 0;

    for (size_t i = 0; i < n; i++) {
      if (!strcmp(v[i].state, "ready")) {
        ready++;
        continue;
      }
      if (!strcmp(v[i].state, "requested") || !strcmp(v[i].state, "starting")) {
        printf("  note  machine %d (%s) is %s: %s\n", v[i].index,
               v[i].device_id, v[i].state, why_of(&v[i]));
        continue;
      }
      printf("  FAIL  machine %d (%s) is %s%s%s\n", v[i].index,
             v[i].device_id, v[i].state, v[i].error[0] ? ": " : "",
             v[i].error);
      bad = 1;
    }
    printf("  %s  broker runs: %zu machine(s), %zu ready\n",
           ready ? "ok  " : "FAIL", n, ready);
    if (!ready)
      bad = 1;
    free(v);
  }
  if (argc > 0)
    bad |= check_program(argv[0]);
  printf(bad ? "tremote doctor: problems above\n"
             : "tremote doctor: nothing wrong\n");
  return bad;
}

/* ---- run ------------------------------------------------------------------------ */

static int cmd_run(int argc, char **argv)
{
  char shim[PATH_MAX], preload[2 * PATH_MAX];
  const char *old = getenv("LD_PRELOAD");

  if (argc > 0 && !strcmp(argv[0], "--")) {
    argc--;
    argv++;
  } else if (argc > 0 &&
             (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))) {
    fputs(usage_run, stdout);
    return 0;
  }
  if (argc < 1) {
    fputs(usage_run, stderr);
    return EXIT_USAGE;
  }
  if (find_shim(shim, sizeof(shim)) < 0) {
    fprintf(stderr, "tremote: cannot find libtremote_shim.so next to "
                    "tremote (looked in %s/../lib and the build tree); set "
                    "TREMOTE_SHIM\n", self_dir);
    return 1;
  }
  if (!broker_running(NULL)) {
    fprintf(stderr, "tremote: no broker runs; starting one\n");
    if (broker_start(NULL, 0, 1) != 0)
      return 1;
  }
  /* After what is preloaded already: a sanitizer's runtime, say, must
     come first. */
  snprintf(preload, sizeof(preload), "%s%s%s", old && old[0] ? old : "",
           old && old[0] ? ":" : "", shim);
  setenv("LD_PRELOAD", preload, 1);
  execvp(argv[0], argv);
  fprintf(stderr, "tremote: cannot run %s: %s\n", argv[0], strerror(errno));
  return errno == ENOENT ? 127 : 126;
}

int main(int argc, char **argv)
{
  const char *cmd = argc > 1 ? argv[1] : NULL;

  find_self();
  if (!cmd) {
    fputs(usage_main, stderr);
    return EXIT_USAGE;
  }
  if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
    const char *what = argc > 2 ? argv[2] : "";

    if (!strcmp(cmd, "help") && !strcmp(what, "run"))
      fputs(usage_run, stdout);
    else if (!strcmp(cmd, "help") && !strcmp(what, "machine"))
      fputs(usage_machine, stdout);
    else if (!strcmp(cmd, "help") && !strcmp(what, "broker"))
      fputs(usage_broker, stdout);
    else if (!strcmp(cmd, "help") && !strcmp(what, "modal"))
      fputs(usage_modal, stdout);
    else if (!strcmp(cmd, "help") && !strcmp(what, "doctor"))
      fputs(usage_doctor, stdout);
    else
      fputs(usage_main, stdout);
    return 0;
  }
  if (!strcmp(cmd, "--version")) {
    printf("tremote %s\n", TR_VERSION);
    return 0;
  }
  if (!strcmp(cmd, "run"))
    return cmd_run(argc - 2, argv + 2);
  if (!strcmp(cmd, "machine"))
    return cmd_machine(argc - 2, argv + 2);
  if (!strcmp(cmd, "broker"))
    return cmd_broker(argc - 2, argv + 2);
  if (!strcmp(cmd, "modal"))
    return cmd_modal(argc - 2, argv + 2);
  if (!strcmp(cmd, "doctor"))
    return cmd_doctor(argc - 2, argv + 2);
  fprintf(stderr, "tremote: unknown command '%s' (valid: run, machine, "
                  "broker, modal, doctor, help)\n", cmd);
  return EXIT_USAGE;
}
