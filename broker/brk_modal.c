/*
 * brk_modal.c: the MODAL provider (docs/MODAL.md).
 *
 * A MODAL machine is an agent in a Modal Sandbox that the user's deployed
 * tremote app creates for us.  This file speaks the app's HTTP API with
 * libcurl on the loop (brk_http.h) and hands the machine to brk_machine.c
 * once it is reachable: from there on it is a STATIC machine with TLS
 * pinned to the fingerprint the app returned.
 *
 *   brk_modal_start   POST /v1/machines (idempotent)        state requested
 *                     503: again after Retry-After; no answer: back-off
 *   poll              GET /v1/machines/ID?wait=25, again     state starting
 *                     while "starting", with progress in why
 *   connect           TCP to the tunnel (libcurl resolves), then
 *                     brk_machine_attach: TLS, HELLO        state ready
 *   lost              GET once to learn Modal's reason (preempted, timed
 *                     out), then POST again: a new Sandbox for programs
 *                     that start later
 *   idle              no program has it for idle_timeout: DELETE,
 *                     state stopped; a program connecting asks again
 *   removed           DELETE, retried until the app answers
 *
 * Names.  Each broker has a random key kept beside its state file
 * (modal.key, 0600).  From it come the broker's owner id (which machines
 * on Modal are this broker's, for reaping orphans), each machine's secret
 * (so a restarted broker reconnects to Sandboxes still running without
 * storing secrets per machine) and, for machines whose name is not a
 * Modal id already, the id (modal-GPU-8HEX, as the seed names them).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "brk.h"
#include "brk_http.h"
#include "brk_log.h"
#include "gpus.h"

#define POST_TIMEOUT_MS 60000L
#define POLL_WAIT_S 25
#define POLL_TIMEOUT_MS ((POLL_WAIT_S + 20) * 1000L)
#define CONNECT_TIMEOUT_MS 15000L
#define RETRY_MIN_MS 2000u
#define RETRY_MAX_MS 60000u
#define DELETE_TRIES 8

struct brk_modal {
  struct brk_http *http;
  struct brk_modal_cfg cfg;
  int cfg_state; /* 0 not loaded, 1 loaded, -1 failed (why in cfg_why) */
  char cfg_why[512];
  uint8_t key[32];
  char owner[17];
  struct brk_http_req *list_req;
};

enum mm_phase { MM_IDLE, MM_CHECK, MM_CREATE, MM_POLL, MM_CONNECT, MM_UP };

struct brk_modal_m {
  struct brk_machine *m;
  char id[32];
  char gpu[16];
  enum mm_phase phase;
  struct brk_http_req *req;
  struct brk_http_req *del;
  struct brk_op *timer;
  uint32_t retry_ms;
  uint64_t asked_ms;
  uint64_t idle_since_ms;
  int idle_stopped;
  unsigned del_tries;
  char host[256];
  unsigned port;
  char phase_name[32]; /* Modal's word for where a start is */
};

static void create(struct brk_modal_m *mm);
static void poll_machine(struct brk_modal_m *mm, int wait_s);

/* ---- configuration ---------------------------------------------------------- */

static void cfg_path(char *out, size_t cap)
{
  const char *p = getenv("TREMOTE_MODAL_CONFIG"), *x, *home;

  if (p && *p) {
    snprintf(out, cap, "%s", p);
  } else if ((x = getenv("XDG_CONFIG_HOME")) && *x) {
    snprintf(out, cap, "%s/tremote/modal.ini", x);
  } else if ((home = getenv("HOME")) && *home) {
    snprintf(out, cap, "%s/.config/tremote/modal.ini", home);
  } else {
    out[0] = 0;
  }
}

struct cfg_parse {
  struct brk_modal_cfg *c;
  char err[256];
};

static int cfg_entry(void *user, const char *section, const char *key,
                     const char *value)
{
  struct cfg_parse *p = user;
  char *dst;
  size_t cap;

  if (strcmp(section, "modal") != 0) {
    if (!p->err[0])
      snprintf(p->err, sizeof(p->err), "unknown section [%.64s] (valid: "
                                       "[modal])", section);
    return 0;
  }
  if (strcmp(key, "url") == 0) {
    dst = p->c->url;
    cap = sizeof(p->c->url);
  } else if (strcmp(key, "token_id") == 0) {
    dst = p->c->token_id;
    cap = sizeof(p->c->token_id);
  } else if (strcmp(key, "token_secret") == 0) {
    dst = p->c->token_secret;
    cap = sizeof(p->c->token_secret);
  } else if (strcmp(key, "ca") == 0) {
    dst = p->c->ca;
    cap = sizeof(p->c->ca);
  } else {
    if (!p->err[0])
      snprintf(p->err, sizeof(p->err), "unknown key '%.64s' (valid: url, "
                                       "token_id, token_secret, ca)", key);
    return 0;
  }
  if (strlen(value) >= cap) {
    if (!p->err[0])
      snprintf(p->err, sizeof(p->err), "%s is longer than %zu characters",
               key, cap - 1);
    return 0;
  }
  snprintf(dst, cap, "%s", value);
  return 1;
}

static void env_over(char *dst, size_t cap, const char *name)
{
  const char *v = getenv(name);

  if (v && *v)
    snprintf(dst, cap, "%s", v);
}

/* http:// only to this host: the token would cross a network in clear. */
static int url_ok(const char *url)
{
  static const char *const local[] = {"http://127.0.0.1", "http://localhost",
                                      "http://[::1]"};

  if (strncasecmp(url, "https://", 8) == 0)
    return 1;
  for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++) {
    size_t n = strlen(local[i]);

    if (strncasecmp(url, local[i], n) == 0 &&
        (url[n] == ':' || url[n] == '/' || url[n] == 0))
      return 1;
  }
  return 0;
}

int brk_modal_cfg_load(struct brk_modal_cfg *c, char *why, size_t cap)
{
  char path[PATH_MAX];
  struct stat st;
  FILE *f;

  memset(c, 0, sizeof(*c));
  cfg_path(path, sizeof(path));
  if (path[0] && (f = fopen(path, "re"))) {
    struct cfg_parse p = {.c = c};
    int line;

    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077)) {
      fclose(f);
      snprintf(why, cap, "%s is readable by other users (mode %04o) and "
                         "holds the Modal token secret: chmod 600 %s",
               path, (unsigned)(st.st_mode & 07777), path);
      return -1;
    }
    line = ini_parse_file(f, cfg_entry, &p);
    fclose(f);
    if (p.err[0] || line) {
      snprintf(why, cap, "%s:%d: %s", path, line,
               p.err[0] ? p.err : "not an INI file");
      return -1;
    }
  }
  env_over(c->url, sizeof(c->url), "TREMOTE_MODAL_URL");
  env_over(c->token_id, sizeof(c->token_id), "TREMOTE_MODAL_TOKEN_ID");
  env_over(c->token_secret, sizeof(c->token_secret),
           "TREMOTE_MODAL_TOKEN_SECRET");
  env_over(c->ca, sizeof(c->ca), "TREMOTE_MODAL_CA");
  if (!c->url[0] || !c->token_id[0] || !c->token_secret[0]) {
    snprintf(why, cap, "Modal is not configured: url, token_id and "
                       "token_secret are needed, in %s ([modal] section, "
                       "mode 0600) or TREMOTE_MODAL_URL, "
                       "TREMOTE_MODAL_TOKEN_ID and TREMOTE_MODAL_TOKEN_SECRET "
                       "('tremote modal setup' shows how to get them)",
             path[0] ? path : "~/.config/tremote/modal.ini");
    return -1;
  }
  if (!url_ok(c->url)) {
    snprintf(why, cap, "Modal url %.200s: must be https:// (http:// only "
                       "to this host: the token would cross the network in "
                       "clear)", c->url);
    return -1;
  }
  {
    size_t n = strlen(c->url);

    while (n && c->url[n - 1] == '/')
      c->url[--n] = 0;
  }
  return 0;
}

/* ---- the broker's key, owner id, secrets, machine ids ----------------------- */

static void hexify(const uint8_t *p, size_t n, char *out)
{
  static const char hx[] = "0123456789abcdef";

  for (size_t i = 0; i < n; i++) {
    out[2 * i] = hx[p[i] >> 4];
    out[2 * i + 1] = hx[p[i] & 15];
  }
  out[2 * n] = 0;
}

/* HMAC-SHA256(key, label), as hex, cut to hexlen digits. */
static void derive(const struct brk_modal *md, const char *label, char *out,
                   size_t hexlen)
{
  uint8_t mac[32];
  unsigned len = sizeof(mac);
  char hex[65];

  HMAC(EVP_sha256(), md->key, sizeof(md->key), (const uint8_t *)label,
       strlen(label), mac, &len);
  hexify(mac, sizeof(mac), hex);
  snprintf(out, hexlen + 1, "%s", hex);
}

/* Read the key beside the state file, or make it.  Without a state file
   the key lives in memory only (machines are not found again). */
static void load_key(struct brk *b, struct brk_modal *md)
{
  char path[PATH_MAX], hex[65] = {0};
  const char *sp = b->cfg.state_path, *slash = sp ? strrchr(sp, '/') : NULL;
  int fd;

  if (getrandom(md->key, sizeof(md->key), 0) != (ssize_t)sizeof(md->key))
    brk_warn("modal: getrandom failed; machine secrets are weak");
  if (!slash)
    return;
  snprintf(path, sizeof(path), "%.*s/modal.key", (int)(slash - sp), sp);
  /* Never through a link: one planted there would name a key another
     user knows (reading) or a file of ours to overwrite (writing). */
  fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t n = read(fd, hex, 64);

    close(fd);
    if (n == 64) {
      for (int i = 0; i < 32; i++) {
        unsigned v;

        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
          break;
        md->key[i] = (uint8_t)v;
      }
      return;
    }
    brk_warn("modal: %s is damaged; making a new key (Modal machines of "
             "this broker made before are orphans now)", path);
  }
  hexify(md->key, sizeof(md->key), hex);
  (void)unlink(path);
  fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0 || write(fd, hex, 64) != 64)
    brk_warn("modal: cannot keep the key in %s: %s", path, strerror(errno));
  if (fd >= 0)
    close(fd);
}

static struct brk_modal *modal_of(struct brk *b)
{
  struct brk_modal *md = b->modal;

  if (md)
    return md;
  md = calloc(1, sizeof(*md));
  if (!md)
    return NULL;
  if (brk_http_new(b->loop, &md->http) < 0) {
    free(md);
    return NULL;
  }
  load_key(b, md);
  derive(md, "owner", md->owner, 16);
  b->modal = md;
  return md;
}

/* The configuration, loaded at first need; NULL with md->cfg_why. */
static const struct brk_modal_cfg *cfg_of(struct brk_modal *md)
{
  if (md->cfg_state == 0)
    md->cfg_state = brk_modal_cfg_load(&md->cfg, md->cfg_why,
                                       sizeof(md->cfg_why)) == 0 ? 1 : -1;
  return md->cfg_state == 1 ? &md->cfg : NULL;
}

/* A Modal id already: "modal-" then [a-z0-9-], at most 31 in all. */
static int is_modal_id(const char *s)
{
  size_t n = strlen(s);

  if (n > 31 || strncmp(s, "modal-", 6) != 0)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) &&
        s[i] != '-')
      return 0;
  return 1;
}

int brk_modal_machine_init(struct brk_machine *m, char *why, size_t cap)
{
  struct brk_modal *md = modal_of(m->b);
  struct brk_modal_m *mm;
  int g = tr_gpu_find(m->spec->gpu);

  if (!md || !(mm = calloc(1, sizeof(*mm)))) {
    snprintf(why, cap, "out of memory");
    return -1;
  }
  if (g < 0) { /* brk_mspec_check saw to it; be safe */
    free(mm);
    snprintf(why, cap, "unknown GPU type '%s' (valid: %s)", m->spec->gpu,
             tr_gpu_valid_list());
    return -1;
  }
  mm->m = m;
  mm->retry_ms = RETRY_MIN_MS;
  snprintf(mm->gpu, sizeof(mm->gpu), "%s", tr_gpus[g].name);
  if (is_modal_id(m->name)) {
    snprintf(mm->id, sizeof(mm->id), "%s", m->name);
  } else {
    char sq[16], label[64], h8[9];
    size_t k = 0;

    for (const char *p = mm->gpu; *p && k < sizeof(sq) - 1; p++)
      if (isalnum((unsigned char)*p))
        sq[k++] = (char)tolower((unsigned char)*p);
    sq[k] = 0;
    snprintf(label, sizeof(label), "id:%s", m->name);
    derive(md, label, h8, 8);
    snprintf(mm->id, sizeof(mm->id), "modal-%s-%s", sq, h8);
  }
  {
    char label[64];

    snprintf(label, sizeof(label), "secret:%s", mm->id);
    derive(md, label, m->own_spec.secret, 64);
  }
  m->modal = mm;
  return 0;
}

int brk_modal_busy(const struct brk_machine *m)
{
  return m->modal && (m->modal->req != NULL || m->modal->phase == MM_UP);
}

const char *brk_modal_id(const struct brk_machine *m)
{
  return m->modal ? m->modal->id : NULL;
}

static const char *article(const char *gpu);

void brk_modal_progress(const struct brk_machine *m, char *out, size_t cap)
{
  const struct brk_modal_m *mm = m->modal;

  /* While Modal works on it, the seconds count now, not at the last
     answer of a long poll. */
  if (mm && mm->phase == MM_POLL && m->state == BRK_M_STARTING) {
    snprintf(out, cap, "waiting for %s %s on Modal... %llu s%s%s%s",
             article(mm->gpu), mm->gpu,
             (unsigned long long)((brk_now_ms() - mm->asked_ms) / 1000),
             mm->phase_name[0] ? " (" : "", mm->phase_name,
             mm->phase_name[0] ? ")" : "");
    return;
  }
  snprintf(out, cap, "%s", m->why);
}

/* ---- requests ------------------------------------------------------------------ */

/* Start METHOD base+path with the proxy-auth headers. */
static struct brk_http_req *call(struct brk *b, const char *method,
                                 const char *path, const char *body,
                                 long timeout_ms, brk_http_cb cb, void *arg)
{
  struct brk_modal *md = b->modal;
  const struct brk_modal_cfg *c = cfg_of(md);
  char url[1024], key[200], sec[300];
  const char *hdrs[5];
  struct brk_http_opts o = {.headers = hdrs, .body = body,
                            .timeout_ms = timeout_ms};

  if (!c)
    return NULL;
  snprintf(url, sizeof(url), "%s%s", c->url, path);
  snprintf(key, sizeof(key), "Modal-Key: %s", c->token_id);
  snprintf(sec, sizeof(sec), "Modal-Secret: %s", c->token_secret);
  hdrs[0] = key;
  hdrs[1] = sec;
  hdrs[2] = "Content-Type: application/json";
  hdrs[3] = "Accept: application/json";
  hdrs[4] = NULL;
  o.ca_file = c->ca[0] ? c->ca : NULL;
  return brk_http_start(md->http, method, url, &o, cb, arg);
}

/* The "error" of an answer's JSON, or a short piece of its text. */
static void answer_error(const struct brk_http_res *r, char *out, size_t cap)
{
  json_t *j = json_loadb(r->body, r->len, 0, NULL);
  const char *e = j ? json_string_value(json_object_get(j, "error")) : NULL;

  if (e)
    snprintf(out, cap, "%s", e);
  else
    snprintf(out, cap, "%.120s", r->len ? r->body : "(empty answer)");
  json_decref(j);
}

/* "an H100", "a T4": the article as the type's name is spoken. */
static const char *article(const char *gpu)
{
  return strchr("AEFHILMNORSX", gpu[0]) ? "an" : "a";
}

static void set_why(struct brk_machine *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_why(struct brk_machine *m, const char *fmt, ...)
{
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(m->why, sizeof(m->why), fmt, ap);
  va_end(ap);
}

/* ---- the life of a machine -------------------------------------------------------- */

/* An answer that came while the broker stops or after the machine was
   removed: nothing more to do with it. */
static int gone(const struct brk_modal_m *mm)
{
  return mm->m->removed || mm->m->b->stopping;
}

static void on_retry(struct brk_op *op, int res, void *arg)
{
  struct brk_modal_m *mm = arg;

  (void)op;
  (void)res;
  mm->timer = NULL;
  if (!gone(mm))
    create(mm);
}

/* Ask again after ms (capacity, an unreachable app). */
static void retry_in(struct brk_modal_m *mm, uint32_t ms)
{
  brk_op_cancel(mm->timer);
  mm->phase = MM_IDLE;
  mm->timer = brk_loop_timeout(mm->m->b->loop, ms, on_retry, mm);
  /* Programs waiting in HELLO do not wait for this one meanwhile. */
  brk_clients_machines_changed(mm->m->b);
}

static uint32_t next_backoff(struct brk_modal_m *mm)
{
  uint32_t ms = mm->retry_ms;

  mm->retry_ms = ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : ms * 2;
  return ms;
}

/* Give up for good: the user must act (a bad token, a bad GPU type). */
static void fail_for_good(struct brk_modal_m *mm, const char *why)
{
  mm->phase = MM_IDLE;
  brk_machine_fail(mm->m, 1, "%s", why);
}

static void on_connected(int fd, const char *err, void *arg)
{
  struct brk_modal_m *mm = arg;
  struct brk_machine *m = mm->m;

  mm->req = NULL;
  if (gone(mm)) {
    if (fd >= 0)
      close(fd);
    return;
  }
  if (fd < 0) {
    uint32_t ms = next_backoff(mm);

    brk_warn("%s: cannot reach the Modal machine at %s:%u: %s; asking "
             "Modal again in %u s", m->name, mm->host, mm->port, err,
             ms / 1000);
    set_why(m, "cannot reach %s:%u: %s", mm->host, mm->port, err);
    m->state = BRK_M_STARTING;
    retry_in(mm, ms);
    return;
  }
  mm->phase = MM_UP;
  brk_machine_attach(m, fd);
}

/* The app's MACHINE object said ready: take host, port and fingerprint. */
static int take_ready(struct brk_modal_m *mm, json_t *j)
{
  struct brk_machine *m = mm->m;
  const char *host = json_string_value(json_object_get(j, "host"));
  const char *fp = json_string_value(json_object_get(j, "fingerprint"));
  json_int_t port = json_integer_value(json_object_get(j, "port"));
  struct brk_mspec *sp = &m->own_spec;
  char why[256];

  if (!host || !*host || strlen(host) >= sizeof(mm->host) || !fp ||
      port <= 0 || port > 65535) {
    fail_for_good(mm, "the Modal app answered 'ready' without host, port "
                      "and fingerprint (is the app the same version as "
                      "this broker?)");
    return -1;
  }
  snprintf(mm->host, sizeof(mm->host), "%s", host);
  mm->port = (unsigned)port;
  snprintf(sp->address, sizeof(sp->address),
           strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, mm->port);
  if (brk_mspec_pin(sp, fp, why, sizeof(why)) < 0) {
    fail_for_good(mm, why);
    return -1;
  }
  return 0;
}

static void connect_to(struct brk_modal_m *mm)
{
  struct brk_machine *m = mm->m;

  mm->phase = MM_CONNECT;
  set_why(m, "connecting to %s:%u", mm->host, mm->port);
  mm->req = brk_http_connect(m->b->modal->http, mm->host, mm->port,
                             CONNECT_TIMEOUT_MS, on_connected, mm);
  if (!mm->req)
    retry_in(mm, next_backoff(mm));
}

struct brk_http_req *brk_modal_dial(struct brk_machine *m,
                                    void (*cb)(int fd, const char *err,
                                               void *arg),
                                    void *arg)
{
  struct brk_modal_m *mm = m->modal;

  if (!mm || mm->phase != MM_UP || !m->b->modal)
    return NULL;
  return brk_http_connect(m->b->modal->http, mm->host, mm->port,
                          CONNECT_TIMEOUT_MS, cb, arg);
}

/* A MACHINE object from POST or GET: what next. */
static void on_machine(struct brk_modal_m *mm, json_t *j)
{
  struct brk_machine *m = mm->m;
  const char *st = json_string_value(json_object_get(j, "state"));
  const char *phase = json_string_value(json_object_get(j, "phase"));
  const char *why = json_string_value(json_object_get(j, "why"));
  uint64_t waited = (brk_now_ms() - mm->asked_ms) / 1000;

  if (!st) {
    fail_for_good(mm, "the Modal app's answer has no state");
    return;
  }
  if (strcmp(st, "ready") == 0) {
    if (take_ready(mm, j) == 0) {
      brk_info("%s: Modal machine %s (%s) is up at %s:%u after %llu s",
               m->name, mm->id, mm->gpu, mm->host, mm->port,
               (unsigned long long)waited);
      connect_to(mm);
    }
    return;
  }
  if (strcmp(st, "starting") == 0) {
    m->state = BRK_M_STARTING;
    snprintf(mm->phase_name, sizeof(mm->phase_name), "%s", phase ? phase : "");
    set_why(m, "waiting for %s %s on Modal... %llu s%s%s%s",
            article(mm->gpu), mm->gpu,
            (unsigned long long)waited, phase ? " (" : "", phase ? phase : "",
            phase ? ")" : "");
    poll_machine(mm, POLL_WAIT_S);
    brk_clients_machines_changed(m->b); /* after: a request is out */
    return;
  }
  if (strcmp(st, "failed") == 0) {
    char w[300];

    snprintf(w, sizeof(w), "Modal could not start %s: %s", mm->id,
             why ? why : "no reason given");
    fail_for_good(mm, w);
    return;
  }
  /* stopped: timed out, preempted, exited while starting.  Ask anew. */
  brk_warn("%s: Modal stopped %s (%s); asking for a new one", m->name,
           mm->id, why ? why : "no reason given");
  set_why(m, "Modal stopped it (%s); asking for a new one",
          why ? why : "no reason given");
  retry_in(mm, next_backoff(mm));
}

static void on_poll(const struct brk_http_res *r, void *arg)
{
  struct brk_modal_m *mm = arg;
  struct brk_machine *m = mm->m;
  json_t *j;
  char e[256];

  mm->req = NULL;
  if (gone(mm))
    return;
  if (r->status == 200 && (j = json_loadb(r->body, r->len, 0, NULL))) {
    on_machine(mm, j);
    json_decref(j);
    return;
  }
  if (r->status == 404) { /* the app forgot it (its Dict was reset) */
    brk_warn("%s: the Modal app does not know %s any more; asking anew",
             m->name, mm->id);
    create(mm);
    return;
  }
  if (r->status == 0)
    snprintf(e, sizeof(e), "%s", r->err);
  else
    answer_error(r, e, sizeof(e));
  brk_warn("%s: asking the Modal app about %s: %s%s; again shortly", m->name,
           mm->id, r->status ? "HTTP error: " : "", e);
  set_why(m, "asking the Modal app: %s", e);
  retry_in(mm, next_backoff(mm));
}

static void poll_machine(struct brk_modal_m *mm, int wait_s)
{
  char path[128];

  mm->phase = MM_POLL;
  snprintf(path, sizeof(path), "/v1/machines/%s?wait=%d", mm->id, wait_s);
  mm->req = call(mm->m->b, "GET", path, NULL, POLL_TIMEOUT_MS, on_poll, mm);
  if (!mm->req)
    retry_in(mm, next_backoff(mm));
}

static void on_create(const struct brk_http_res *r, void *arg)
{
  struct brk_modal_m *mm = arg;
  struct brk_machine *m = mm->m;
  json_t *j;
  char e[300], w[400];

  mm->req = NULL;
  if (gone(mm))
    return;
  if ((r->status == 200 || r->status == 201) &&
      (j = json_loadb(r->body, r->len, 0, NULL))) {
    if (r->status == 201)
      brk_info("%s: Modal is starting %s (%s)", m->name, mm->id, mm->gpu);
    else
      brk_info("%s: Modal has %s (%s) already", m->name, mm->id, mm->gpu);
    on_machine(mm, j);
    json_decref(j);
    return;
  }
  if (r->status == 0) {
    uint32_t ms = next_backoff(mm);

    brk_warn("%s: cannot reach the Modal app at %s: %s; again in %u s",
             m->name, m->b->modal->cfg.url, r->err, ms / 1000);
    set_why(m, "cannot reach the Modal app: %s; again in %u s", r->err,
            ms / 1000);
    retry_in(mm, ms);
    return;
  }
  answer_error(r, e, sizeof(e));
  if (r->status == 503 || r->status == 429) {
    long s = r->retry_after_s > 0 ? r->retry_after_s : 30;

    if (s > 600)
      s = 600;
    brk_warn("%s: %s; asking again in %ld s", m->name, e, s);
    set_why(m, "%s; asking again in %ld s", e, s);
    retry_in(mm, (uint32_t)s * 1000u);
    return;
  }
  if (r->status == 401 || r->status == 403)
    snprintf(w, sizeof(w), "the Modal app refused the proxy auth token "
                           "(HTTP %ld): check token_id and token_secret "
                           "(~/.config/tremote/modal.ini)", r->status);
  else if (r->status >= 500)
    snprintf(w, sizeof(w), "the Modal app failed (HTTP %ld): %s", r->status,
             e);
  else
    snprintf(w, sizeof(w), "the Modal app refused %s (HTTP %ld): %s", mm->id,
             r->status, e);
  if (r->status >= 500) { /* its trouble, maybe passing */
    brk_warn("%s: %s", m->name, w);
    set_why(m, "%s", w);
    retry_in(mm, next_backoff(mm));
    return;
  }
  fail_for_good(mm, w);
}

/* POST /v1/machines: create, or learn that it exists (idempotent). */
static void create(struct brk_modal_m *mm)
{
  struct brk_machine *m = mm->m;
  const struct brk_mspec *sp = m->spec;
  json_t *j;
  char *body;

  if (!cfg_of(m->b->modal)) {
    fail_for_good(mm, m->b->modal->cfg_why);
    return;
  }
  m->state = BRK_M_REQUESTED;
  mm->phase = MM_CREATE;
  mm->idle_stopped = 0;
  if (!mm->asked_ms)
    mm->asked_ms = brk_now_ms();
  j = json_pack("{s:s, s:s, s:s, s:s, s:i, s:i}", "machine_id", mm->id, "gpu",
                mm->gpu, "secret", sp->secret, "owner", m->b->modal->owner,
                "timeout_s", (int)sp->timeout_s, "idle_timeout_s",
                (int)(sp->idle_timeout_s ? sp->idle_timeout_s : 600));
  body = j ? json_dumps(j, JSON_COMPACT) : NULL;
  json_decref(j);
  if (!body) {
    retry_in(mm, next_backoff(mm));
    return;
  }
  if (m->why[0] == 0 || strncmp(m->why, "Modal stopped", 13) != 0)
    set_why(m, "asking Modal for %s %s", article(mm->gpu), mm->gpu);
  mm->req = call(m->b, "POST", "/v1/machines", body, POST_TIMEOUT_MS,
                 on_create, mm);
  free(body);
  if (!mm->req)
    retry_in(mm, next_backoff(mm));
  else
    brk_clients_machines_changed(m->b); /* after: a request is out */
}

/* After a loss: Modal's word on what happened, then a new Sandbox. */
static void on_check(const struct brk_http_res *r, void *arg)
{
  struct brk_modal_m *mm = arg;
  struct brk_machine *m = mm->m;
  json_t *j;

  mm->req = NULL;
  if (gone(mm))
    return;
  if (r->status == 200 && (j = json_loadb(r->body, r->len, 0, NULL))) {
    const char *st = json_string_value(json_object_get(j, "state"));
    const char *why = json_string_value(json_object_get(j, "why"));

    if (st && strcmp(st, "ready") != 0) {
      brk_err("%s: Modal says %s is %s: %s", m->name, mm->id, st,
              why ? why : "no reason given");
      set_why(m, "Modal stopped it (%s: %s); asking for a new one", st,
              why ? why : "no reason given");
    }
    json_decref(j);
  }
  create(mm);
}

void brk_modal_start(struct brk_machine *m)
{
  struct brk_modal_m *mm = m->modal;

  if (!mm || mm->req)
    return;
  brk_op_cancel(mm->timer);
  mm->timer = NULL;
  if (m->state == BRK_M_LOST) {
    char path[128];

    mm->asked_ms = brk_now_ms();
    mm->phase = MM_CHECK;
    m->state = BRK_M_REQUESTED;
    snprintf(path, sizeof(path), "/v1/machines/%s?wait=0", mm->id);
    mm->req = call(m->b, "GET", path, NULL, POST_TIMEOUT_MS, on_check, mm);
    if (mm->req) {
      brk_clients_machines_changed(m->b);
      return;
    }
  }
  create(mm);
}

/* ---- idle machines, removal, reconciliation ------------------------------------ */

static void on_deleted(const struct brk_http_res *r, void *arg);

static void send_delete(struct brk *b, struct brk_modal_m *mm)
{
  char path[128];

  snprintf(path, sizeof(path), "/v1/machines/%s", mm->id);
  mm->del = call(b, "DELETE", path, NULL, POST_TIMEOUT_MS, on_deleted, mm);
}

static void on_deleted(const struct brk_http_res *r, void *arg)
{
  struct brk_modal_m *mm = arg;

  mm->del = NULL;
  if (r->status == 200 || r->status == 404) {
    brk_info("%s: Modal machine %s stopped", mm->m->name, mm->id);
    return;
  }
  if (++mm->del_tries >= DELETE_TRIES) {
    brk_err("%s: could not stop Modal machine %s (%s); it ends on its own "
            "after its idle time without a broker", mm->m->name, mm->id,
            r->status ? "HTTP error" : r->err);
    return;
  }
  send_delete(mm->m->b, mm);
}

static void cancel_all(struct brk_modal_m *mm)
{
  brk_http_cancel(mm->req);
  mm->req = NULL;
  brk_op_cancel(mm->timer);
  mm->timer = NULL;
}

void brk_modal_remove(struct brk_machine *m)
{
  struct brk_modal_m *mm = m->modal;

  if (!mm)
    return;
  cancel_all(mm);
  mm->phase = MM_IDLE;
  if (!mm->del && cfg_of(m->b->modal))
    send_delete(m->b, mm);
}

void brk_modal_machine_free(struct brk_machine *m)
{
  struct brk_modal_m *mm = m->modal;

  if (!mm)
    return;
  cancel_all(mm);
  brk_http_cancel(mm->del);
  free(mm);
  m->modal = NULL;
}

/* Some program connected now has m among its devices. */
static int in_use(struct brk *b, const struct brk_machine *m)
{
  for (struct brk_client *c = b->clients; c; c = c->next)
    if (!c->dead && (c->m2ord[m->index] >= 0 || !c->hello_done))
      return 1;
  return 0;
}

void brk_modal_tick(struct brk *b)
{
  uint64_t now = brk_now_ms();

  for (unsigned i = 0; i < b->nmachines; i++) {
    struct brk_machine *m = b->machines[i];
    struct brk_modal_m *mm = m->modal;
    uint32_t idle;

    if (!mm || m->removed || m->state != BRK_M_READY)
      continue;
    idle = m->spec->idle_timeout_s;
    if (!idle || in_use(b, m)) {
      mm->idle_since_ms = 0;
      continue;
    }
    if (!mm->idle_since_ms)
      mm->idle_since_ms = now;
    if (now - mm->idle_since_ms < (uint64_t)idle * 1000u)
      continue;
    brk_info("%s: no program used it for %u s: stopping Modal machine %s",
             m->name, idle, mm->id);
    brk_machine_disconnect(m);
    m->state = BRK_M_STOPPED;
    set_why(m, "idle for %u s: stopped on Modal; the next program to "
               "connect that may use it asks for it again", idle);
    mm->idle_stopped = 1;
    mm->idle_since_ms = 0;
    mm->phase = MM_IDLE;
    mm->del_tries = 0;
    if (!mm->del)
      send_delete(b, mm);
  }
}

void brk_modal_wake(struct brk_client *c)
{
  struct brk *b = c->b;

  for (unsigned i = 0; i < b->nmachines; i++) {
    struct brk_machine *m = b->machines[i];
    struct brk_modal_m *mm = m->modal;

    if (mm && mm->idle_stopped && !m->removed && !b->stopping &&
        brk_client_wants(c, m)) {
      brk_info("%s: a program connected: asking Modal for it again",
               m->name);
      mm->idle_stopped = 0;
      mm->asked_ms = 0;
      m->why[0] = 0;
      create(mm);
    }
  }
}

/* An orphan's DELETE: nothing more to do either way. */
static void ignore(const struct brk_http_res *r, void *arg)
{
  (void)r;
  (void)arg;
}

/* Modal machines of this broker that no machine of it names: orphans of
   a broker that crashed or a state file that was lost. */
static void on_list(const struct brk_http_res *r, void *arg)
{
  struct brk *b = arg;
  json_t *j, *arr, *e;
  size_t k;

  b->modal->list_req = NULL;
  if (r->status != 200 || !(j = json_loadb(r->body, r->len, 0, NULL))) {
    brk_warn("modal: cannot list this broker's machines on Modal (%s); "
             "orphans, if any, stop on their own when idle",
             r->status ? "HTTP error" : r->err);
    return;
  }
  arr = json_object_get(j, "machines");
  json_array_foreach(arr, k, e) {
    const char *id = json_string_value(json_object_get(e, "machine_id"));
    const char *st = json_string_value(json_object_get(e, "state"));
    const char *owner = json_string_value(json_object_get(e, "owner"));
    int known = 0;

    if (!id || !owner || strcmp(owner, b->modal->owner) != 0 ||
        (st && strcmp(st, "stopped") == 0))
      continue;
    for (unsigned i = 0; i < b->nmachines; i++) {
      const struct brk_machine *m = b->machines[i];

      if (m->modal && !m->removed && strcmp(m->modal->id, id) == 0)
        known = 1;
    }
    if (!known) {
      char path[128];

      brk_warn("modal: %s is this broker's but in none of its machines: "
               "stopping it", id);
      snprintf(path, sizeof(path), "/v1/machines/%s", id);
      (void)call(b, "DELETE", path, NULL, POST_TIMEOUT_MS, ignore, NULL);
    }
  }
  json_decref(j);
}


void brk_modal_reconcile(struct brk *b)
{
  struct brk_modal *md;
  char path[64];

  /* Only where Modal is configured: a broker without Modal machines
     never needs it. */
  if (!b->modal) {
    struct brk_modal_cfg c;
    char why[512];

    if (brk_modal_cfg_load(&c, why, sizeof(why)) < 0)
      return;
  }
  md = modal_of(b);
  if (!md || !cfg_of(md) || md->list_req)
    return;
  snprintf(path, sizeof(path), "/v1/machines?owner=%s", md->owner);
  md->list_req = call(b, "GET", path, NULL, POST_TIMEOUT_MS, on_list, b);
}

void brk_modal_free(struct brk *b)
{
  struct brk_modal *md = b->modal;
  unsigned alive = 0;

  if (!md)
    return;
  for (unsigned i = 0; i < b->nmachines; i++) {
    struct brk_machine *m = b->machines[i];

    if (m->modal && !m->removed && !m->modal->idle_stopped)
      alive++;
    brk_modal_machine_free(m);
    /* An express connection's dial is a request of md->http too, which
       goes below, before the machines (brk_machines_stop has ended these
       already; this keeps it so whatever the order of the calls). */
    brk_http_cancel(m->xreq);
    m->xreq = NULL;
  }
  if (alive)
    brk_info("modal: %u Modal machine(s) keep running for the next broker "
             "start (each stops on its own after its idle time without one)",
             alive);
  brk_http_free(md->http);
  free(md);
  b->modal = NULL;
}
