/*
 * brk_mfile.c: the machines file (INI, read with inih), its reload, and
 * the state file of machines added at run time (the same format).
 *
 *   [machine NAME]
 *   provider = local | static | modal
 *   gpu = TYPE             the GPU type asked for: T4 ... B200 (modal: the
 *                          type Modal is asked for; others: shown)
 *   idle_timeout = SEC     modal: stop it on Modal after SEC unused
 *                          (default 600; 0 = never)
 *   timeout = SEC          modal: the Sandbox's lifetime (default 3600)
 *   address = HOST:PORT    static: IPv4:PORT, [IPv6]:PORT or
 *                          localhost:PORT (names are not looked up)
 *   secret_file = PATH     static: the agent's secret (first line)
 *   tls = on | off         static: default off
 *   fingerprint = SHA256:HEX   tls=on: pin the agent's certificate, or
 *   ca = PATH              tls=on: verify it by this CA (and the address)
 *
 * Everything is checked when the file is read, before any machine starts,
 * and the first problem is one message naming the file, the line where
 * inih could tell it, what was wrong and what is valid.  The broker then
 * exits 2 (bad usage), the same as for a bad option.
 *
 * h2c (tls=off) carries the secret in clear, so it is allowed only to a
 * loopback address; anything else needs tls=on with the agent's pinned
 * fingerprint or a CA.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <limits.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "brk.h"
#include "brk_log.h"
#include "gpus.h"

struct parse {
  struct brk_mspec *specs;
  unsigned n, cap;
  char err[512];
};

static int fail(struct parse *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int fail(struct parse *p, const char *fmt, ...)
{
  va_list ap;

  if (p->err[0])
    return 0; /* the first problem is the one told */
  va_start(ap, fmt);
  vsnprintf(p->err, sizeof(p->err), fmt, ap);
  va_end(ap);
  return 0; /* inih: an error on this line */
}

int brk_mspec_valid_name(const char *s)
{
  size_t n = strlen(s);

  /* A letter first: TREMOTE_VISIBLE_DEVICES takes an entry of digits as
     an index and -1 as "no devices", so such a name could not be named. */
  if (n == 0 || n >= BRK_MNAME_MAX || !isalpha((unsigned char)s[0]))
    return 0;
  for (size_t i = 0; i < n; i++)
    if (!isalnum((unsigned char)s[i]) && !strchr("-_.", s[i]))
      return 0;
  return 1;
}

void brk_mspec_init(struct brk_mspec *m, const char *name)
{
  memset(m, 0, sizeof(*m));
  snprintf(m->name, BRK_MNAME_MAX, "%s", name);
  m->tls = -1;
}

static struct brk_mspec *spec_of(struct parse *p, const char *name)
{
  for (unsigned i = 0; i < p->n; i++)
    if (strcmp(p->specs[i].name, name) == 0)
      return &p->specs[i];
  if (p->n == p->cap) {
    unsigned cap = p->cap ? 2 * p->cap : 8;
    struct brk_mspec *s = realloc(p->specs, cap * sizeof(*s));

    if (!s)
      return NULL;
    p->specs = s;
    p->cap = cap;
  }
  brk_mspec_init(&p->specs[p->n], name);
  return &p->specs[p->n++];
}

/*
 * A value must come back from the state file as it went in: that file is
 * INI too, written "key = value" a line each and read with inih, which
 * ends a line at a newline, strips blanks around a value, starts a comment
 * at " ;" and reads lines of at most INI_MAX_LINE - 1 bytes, newline
 * included.  Values from the control API (JSON strings) can hold all of
 * that, and a newline in one would write sections of its own; such values
 * are refused here, for the machines file as well (where inih cannot give
 * them anyway).
 */
static int value_fits_ini(const struct brk_mspec *m, const char *key,
                          const char *v, char *why, size_t wcap)
{
  size_t n = strlen(v);

  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)v[i];

    if (c < 0x20 || c == 0x7f) {
      snprintf(why, wcap, "[machine %s]: %s holds a control character "
                          "(byte 0x%02x; a newline, a tab or the like is "
                          "refused)", m->name, key, c);
      return -1;
    }
    if (c == ';' && i > 0 && v[i - 1] == ' ') {
      snprintf(why, wcap, "[machine %s]: %s holds ' ;', which starts a "
                          "comment in the machines and state files",
               m->name, key);
      return -1;
    }
  }
  if (v[0] == ' ' || (n && v[n - 1] == ' ')) {
    snprintf(why, wcap, "[machine %s]: %s starts or ends with a blank",
             m->name, key);
    return -1;
  }
  if (strlen(key) + 3 + n + 1 > INI_MAX_LINE - 1) {
    snprintf(why, wcap, "[machine %s]: '%s = ...' would be %zu bytes; a "
                        "line of the machines and state files holds at "
                        "most %d (a shorter path, or a link to it, fits)",
             m->name, key, strlen(key) + 3 + n, INI_MAX_LINE - 2);
    return -1;
  }
  return 0;
}

static int set_str(const struct brk_mspec *m, const char *key, char *dst,
                   size_t cap, const char *v, char *why, size_t wcap)
{
  if (dst[0]) {
    snprintf(why, wcap, "[machine %s]: %s given twice", m->name, key);
    return -1;
  }
  if (!v[0] || strlen(v) >= cap) {
    snprintf(why, wcap, "[machine %s]: %s must be 1 to %zu characters",
             m->name, key, cap - 1);
    return -1;
  }
  if (value_fits_ini(m, key, v, why, wcap) < 0)
    return -1;
  memcpy(dst, v, strlen(v) + 1);
  return 0;
}

int brk_mspec_set(struct brk_mspec *m, const char *key, const char *value,
                  char *why, size_t cap)
{
  if (strcmp(key, "provider") == 0) {
    if (m->provider) {
      snprintf(why, cap, "[machine %s]: provider given twice", m->name);
      return -1;
    }
    if (strcasecmp(value, "local") == 0) {
      m->provider = BRK_P_LOCAL;
    } else if (strcasecmp(value, "static") == 0) {
      m->provider = BRK_P_STATIC;
    } else if (strcasecmp(value, "modal") == 0) {
      m->provider = BRK_P_MODAL;
    } else {
      snprintf(why, cap, "[machine %s]: unknown provider '%.64s' (valid: "
                         "local, static, modal)", m->name, value);
      return -1;
    }
    return 0;
  }
  if (strcmp(key, "gpu") == 0)
    return set_str(m, key, m->gpu, sizeof(m->gpu), value, why, cap);
  if (strcmp(key, "address") == 0)
    return set_str(m, key, m->address, sizeof(m->address), value, why, cap);
  if (strcmp(key, "secret_file") == 0)
    return set_str(m, key, m->secret_file, sizeof(m->secret_file), value,
                   why, cap);
  if (strcmp(key, "ca") == 0)
    return set_str(m, key, m->ca, sizeof(m->ca), value, why, cap);
  if (strcmp(key, "fingerprint") == 0)
    return set_str(m, key, m->fingerprint, sizeof(m->fingerprint), value,
                   why, cap);
  if (strcmp(key, "tls") == 0) {
    if (m->tls != -1) {
      snprintf(why, cap, "[machine %s]: tls given twice", m->name);
      return -1;
    }
    if (!strcasecmp(value, "on") || !strcasecmp(value, "yes") ||
        !strcasecmp(value, "true") || !strcmp(value, "1")) {
      m->tls = 1;
    } else if (!strcasecmp(value, "off") || !strcasecmp(value, "no") ||
               !strcasecmp(value, "false") || !strcmp(value, "0")) {
      m->tls = 0;
    } else {
      snprintf(why, cap, "[machine %s]: tls=%.32s (valid: on, off)", m->name,
               value);
      return -1;
    }
    return 0;
  }
  if (strcmp(key, "idle_timeout") == 0 || strcmp(key, "timeout") == 0) {
    int idle = key[0] == 'i';
    unsigned long min = idle ? 0 : 60;
    char *end;
    unsigned long v;

    if (idle ? m->idle_set : m->timeout_set) {
      snprintf(why, cap, "[machine %s]: %s given twice", m->name, key);
      return -1;
    }
    errno = 0;
    v = strtoul(value, &end, 10);
    if (errno || end == value || *end || value[0] == '-' || v < min ||
        v > 86400) {
      snprintf(why, cap, "[machine %s]: %s=%.32s (valid: %lu to 86400 "
                         "seconds)", m->name, key, value, min);
      return -1;
    }
    if (idle) {
      m->idle_timeout_s = (uint32_t)v;
      m->idle_set = 1;
    } else {
      m->timeout_s = (uint32_t)v;
      m->timeout_set = 1;
    }
    return 0;
  }
  snprintf(why, cap, "[machine %s]: unknown key '%.64s' (valid: provider, "
                     "gpu, address, secret_file, tls, ca, fingerprint, "
                     "idle_timeout, timeout)", m->name, key);
  return -1;
}

static int on_entry(void *user, const char *section, const char *key,
                    const char *value)
{
  struct parse *p = user;
  struct brk_mspec *m;
  const char *name;
  char why[400];

  if (strncmp(section, "machine ", 8) != 0)
    return fail(p, "[%s]: unknown section (valid: [machine NAME])",
                section);
  name = section + 8;
  while (*name == ' ')
    name++;
  if (!brk_mspec_valid_name(name))
    return fail(p, "[%s]: a machine name is a letter, then up to %d "
                   "letters, digits, '-', '_' or '.'", section,
                BRK_MNAME_MAX - 2);
  m = spec_of(p, name);
  if (!m)
    return fail(p, "out of memory");
  if (brk_mspec_set(m, key, value, why, sizeof(why)) < 0)
    return fail(p, "%s", why);
  return 1;
}

/* "HOST:PORT" -> m->sa.  Hosts: IPv4 literals, [IPv6] literals,
   localhost (no name lookups: the loop never blocks on DNS). */
static int parse_address(struct brk_mspec *m, char *why, size_t cap)
{
  char host[256];
  const char *colon, *h = m->address;
  size_t hl;
  char *end;
  long port;

  if (m->address[0] == '[') {
    const char *rb = strchr(m->address, ']');

    if (!rb || rb[1] != ':')
      goto bad;
    h = m->address + 1;
    hl = (size_t)(rb - h);
    colon = rb + 1;
  } else {
    colon = strrchr(m->address, ':');
    if (!colon)
      goto bad;
    hl = (size_t)(colon - h);
  }
  if (hl == 0 || hl >= sizeof(host))
    goto bad;
  memcpy(host, h, hl);
  host[hl] = 0;
  errno = 0;
  port = strtol(colon + 1, &end, 10);
  if (end == colon + 1 || *end || errno || port < 1 || port > 65535)
    goto bad;
  memset(&m->sa, 0, sizeof(m->sa));
  if (strcmp(host, "localhost") == 0)
    snprintf(host, sizeof(host), "127.0.0.1");
  {
    struct sockaddr_in *s4 = (struct sockaddr_in *)&m->sa;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&m->sa;

    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
      s4->sin_family = AF_INET;
      s4->sin_port = htons((uint16_t)port);
      m->salen = sizeof(*s4);
      m->loopback = (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
    } else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
      s6->sin6_family = AF_INET6;
      s6->sin6_port = htons((uint16_t)port);
      m->salen = sizeof(*s6);
      m->loopback = IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr);
    } else {
      snprintf(why, cap, "address %.120s: '%.120s' is not an IP address (names "
                         "are not looked up; localhost is the one name "
                         "allowed)", m->address, host);
      return -1;
    }
  }
  return 0;
bad:
  snprintf(why, cap, "address '%s' (valid: IPv4:PORT, [IPv6]:PORT or "
                     "localhost:PORT, port 1..65535)", m->address);
  return -1;
}

/*
 * The first line of the secret file, trimmed: 1 to 256 visible ASCII
 * characters.  A file others can read is refused (it is a password), and
 * so is anything but a regular file (links to one are followed: Kubernetes
 * mounts its secrets so): this runs on the event loop, where a FIFO or a
 * device would block every program until someone writes to it, hence the
 * O_NONBLOCK open.
 */
static int read_secret(struct brk_mspec *m, char *why, size_t cap)
{
  char buf[512];
  struct stat st;
  ssize_t n;
  size_t a = 0, b;
  int fd = open(m->secret_file, O_RDONLY | O_NONBLOCK | O_CLOEXEC);

  if (fd < 0) {
    snprintf(why, cap, "secret_file %.200s: %s", m->secret_file, strerror(errno));
    return -1;
  }
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    snprintf(why, cap, "secret_file %.200s: not a regular file (a FIFO, a "
                       "device or a directory is refused)", m->secret_file);
    return -1;
  }
  if (st.st_mode & 0077) {
    close(fd);
    snprintf(why, cap, "secret_file %.200s: open to group or others (mode %03o); "
                       "chmod 600 it", m->secret_file,
             (unsigned)(st.st_mode & 0777));
    return -1;
  }
  n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n < 0) {
    snprintf(why, cap, "secret_file %.200s: %s", m->secret_file, strerror(errno));
    return -1;
  }
  buf[n] = 0;
  buf[strcspn(buf, "\n")] = 0;
  while (buf[a] == ' ' || buf[a] == '\t' || buf[a] == '\r')
    a++;
  b = strlen(buf);
  while (b > a && (buf[b - 1] == ' ' || buf[b - 1] == '\t' ||
                   buf[b - 1] == '\r'))
    b--;
  if (b == a || b - a >= sizeof(m->secret)) {
    snprintf(why, cap, "secret_file %.200s: the first line must hold the "
                       "secret, 1 to %zu characters", m->secret_file,
             sizeof(m->secret) - 1);
    return -1;
  }
  for (size_t i = a; i < b; i++)
    if (buf[i] <= 0x20 || buf[i] >= 0x7f) {
      snprintf(why, cap, "secret_file %.200s: the secret may hold only visible "
                         "ASCII characters", m->secret_file);
      return -1;
    }
  memcpy(m->secret, buf + a, b - a);
  m->secret[b - a] = 0;
  return 0;
}

/* "SHA256:HEX" with any case and colons -> "SHA256:" + 64 lower-case hex
   digits, in place.  0 or -1. */
static int norm_fingerprint(char *fp)
{
  char out[7 + 64 + 1];
  size_t n = 0;
  const char *p = fp;

  if (strncasecmp(p, "SHA256:", 7) == 0)
    p += 7;
  for (; *p; p++) {
    if (*p == ':')
      continue;
    if (!isxdigit((unsigned char)*p) || n == 64)
      return -1;
    out[7 + n++] = (char)tolower((unsigned char)*p);
  }
  if (n != 64)
    return -1;
  memcpy(out, "SHA256:", 7);
  out[7 + 64] = 0;
  memcpy(fp, out, sizeof(out));
  return 0;
}

/* A MODAL machine: a GPU type from the table and Modal configured; its
   address, secret and fingerprint come from Modal at run time. */
static int check_modal(struct brk_mspec *m, char *why, size_t cap)
{
  struct brk_modal_cfg c;
  char w[512];
  int g;

  if (m->address[0] || m->secret_file[0] || m->tls != -1 || m->ca[0] ||
      m->fingerprint[0]) {
    snprintf(why, cap, "[machine %s]: a modal machine takes gpu=, "
                       "idle_timeout= and timeout= (address, secret_file, "
                       "tls, ca and fingerprint come from Modal)", m->name);
    return -1;
  }
  if (!m->gpu[0]) {
    snprintf(why, cap, "[machine %s]: a modal machine needs gpu= (valid: "
                       "%s)", m->name, tr_gpu_valid_list());
    return -1;
  }
  g = tr_gpu_find(m->gpu);
  if (g < 0) {
    snprintf(why, cap, "[machine %s]: unknown GPU type '%.32s' (valid: %s)",
             m->name, m->gpu, tr_gpu_valid_list());
    return -1;
  }
  snprintf(m->gpu, sizeof(m->gpu), "%s", tr_gpus[g].name);
  if (!m->idle_set)
    m->idle_timeout_s = 600;
  if (!m->timeout_set)
    m->timeout_s = 3600;
  if (brk_modal_cfg_load(&c, w, sizeof(w)) < 0) {
    snprintf(why, cap, "[machine %s]: %s", m->name, w);
    return -1;
  }
  return 0;
}

int brk_mspec_same(const struct brk_mspec *a, const struct brk_mspec *b)
{
  if (a->provider != BRK_P_MODAL || b->provider != BRK_P_MODAL)
    return memcmp(a, b, sizeof(*a)) == 0;
  return strcmp(a->name, b->name) == 0 && strcmp(a->gpu, b->gpu) == 0 &&
         a->idle_timeout_s == b->idle_timeout_s &&
         a->timeout_s == b->timeout_s;
}

int brk_mspec_pin(struct brk_mspec *sp, const char *fp, char *why,
                  size_t cap)
{
  char f[sizeof(sp->fingerprint)];

  if (strlen(fp) >= sizeof(f) ||
      (snprintf(f, sizeof(f), "%s", fp), norm_fingerprint(f) < 0)) {
    snprintf(why, cap, "[machine %s]: the agent's fingerprint '%.100s' is "
                       "not SHA256: and 64 hex digits", sp->name, fp);
    return -1;
  }
  memcpy(sp->fingerprint, f, sizeof(f));
  sp->tls = 1;
  return 0;
}

int brk_mspec_check(struct brk_mspec *m, char *why, size_t cap)
{
  if (!m->provider) {
    snprintf(why, cap, "[machine %s]: provider missing (valid: local, "
                       "static, modal)", m->name);
    return -1;
  }
  if (m->provider != BRK_P_MODAL && (m->idle_set || m->timeout_set)) {
    snprintf(why, cap, "[machine %s]: idle_timeout= and timeout= are for "
                       "provider=modal", m->name);
    return -1;
  }
  if (m->provider == BRK_P_MODAL)
    return check_modal(m, why, cap);
  if (m->provider == BRK_P_LOCAL) {
    if (m->address[0] || m->secret_file[0] || m->tls != -1 || m->ca[0] ||
        m->fingerprint[0]) {
      snprintf(why, cap, "[machine %s]: a local machine takes only gpu= "
                         "(address, secret_file, tls, ca and fingerprint "
                         "are for provider=static)", m->name);
      return -1;
    }
    return 0;
  }
  if (!m->address[0] || !m->secret_file[0]) {
    snprintf(why, cap, "[machine %s]: a static machine needs address= and "
                       "secret_file=", m->name);
    return -1;
  }
  if (m->tls != 1 && (m->ca[0] || m->fingerprint[0])) {
    snprintf(why, cap, "[machine %s]: ca= and fingerprint= need tls=on",
             m->name);
    return -1;
  }
  if (m->tls == 1) {
    if (!m->ca[0] == !m->fingerprint[0]) {
      snprintf(why, cap, "[machine %s]: tls=on needs one of fingerprint= "
                         "(the agent's SHA256:..., as tremote-gpu-agent "
                         "--gen-cert prints it) or ca= (a CA file)", m->name);
      return -1;
    }
    if (m->fingerprint[0] && norm_fingerprint(m->fingerprint) < 0) {
      snprintf(why, cap, "[machine %s]: fingerprint=%.100s (valid: SHA256: "
                         "and 64 hex digits, colons allowed)", m->name,
               m->fingerprint);
      return -1;
    }
  }
  {
    char w[400];

    if (parse_address(m, w, sizeof(w)) < 0 || read_secret(m, w, sizeof(w)) < 0) {
      snprintf(why, cap, "[machine %s]: %s", m->name, w);
      return -1;
    }
  }
  if (!m->loopback && m->tls != 1) {
    snprintf(why, cap, "[machine %s]: address %s is not on loopback: an "
                       "agent elsewhere must be reached over TLS (tls=on, "
                       "with fingerprint= or ca=)", m->name, m->address);
    return -1;
  }
  if (m->tls == 1) {
    char w[400];
    SSL_CTX *ctx = brk_tls_ctx(m, w, sizeof(w)); /* the CA file is read */

    if (!ctx) {
      snprintf(why, cap, "[machine %s]: %s", m->name, w);
      return -1;
    }
    SSL_CTX_free(ctx);
  }
  return 0;
}

void brk_mspec_host(const struct brk_mspec *sp, char *out, size_t cap)
{
  const char *a = sp->address, *end;
  size_t n;

  if (a[0] == '[') {
    a++;
    end = strchr(a, ']');
  } else {
    end = strrchr(a, ':');
  }
  n = end ? (size_t)(end - a) : strlen(a);
  if (n >= cap)
    n = cap - 1;
  memcpy(out, a, n);
  out[n] = 0;
}

/*
 * inih calls on_entry for keys only, so a section without any ([machine b]
 * alone, a misspelt [machnie b] with its keys commented out) would pass
 * unseen.  Every section header of the file must be a machine that has
 * keys.  0, or -1 with why naming the line.
 */
static int check_sections(const char *path, const struct parse *p,
                          char *why, size_t cap)
{
  char line[INI_MAX_LINE + 2];
  FILE *f = fopen(path, "re");
  int lineno = 0, rc = 0;

  if (!f) {
    snprintf(why, cap, "%s: %s", path, strerror(errno));
    return -1;
  }
  while (rc == 0 && fgets(line, sizeof(line), f)) {
    char *s = line, *e;
    int found = 0;

    lineno++;
    while (*s == ' ' || *s == '\t')
      s++;
    if (*s != '[' || !(e = strchr(s, ']')))
      continue;
    *e = 0;
    s++;
    if (strncmp(s, "machine ", 8) != 0) {
      snprintf(why, cap, "%s:%d: [%.64s]: unknown section (valid: [machine "
                         "NAME])", path, lineno, s);
      rc = -1;
      break;
    }
    s += 8;
    while (*s == ' ')
      s++;
    for (unsigned i = 0; i < p->n && !found; i++)
      found = strcmp(p->specs[i].name, s) == 0;
    if (!found) {
      snprintf(why, cap, "%s:%d: [machine %.64s]: a machine with no keys "
                         "(valid: provider = local, static or modal, and its "
                         "keys)", path, lineno, s);
      rc = -1;
    }
  }
  fclose(f);
  return rc;
}

/* Read path's sections into p without checking them as machines: 0, or
   -1 with why (p->specs freed) where the file cannot be read or parsed. */
static int mfile_parse(const char *path, unsigned max, struct parse *p,
                       char *why, size_t cap)
{
  int rc;

  memset(p, 0, sizeof(*p));
  rc = ini_parse(path, on_entry, p);
  if (rc == -1) {
    snprintf(why, cap, "%s: %s", path, strerror(errno ? errno : ENOENT));
    goto err;
  }
  if (rc == -2) {
    snprintf(why, cap, "%s: out of memory", path);
    goto err;
  }
  if (rc > 0) {
    if (p->err[0])
      snprintf(why, cap, "%s:%d: %s", path, rc, p->err);
    else
      snprintf(why, cap, "%s:%d: not INI syntax (valid: [machine NAME] "
                         "lines and key = value lines)", path, rc);
    goto err;
  }
  if (p->n > max) {
    snprintf(why, cap, "%s: %u machines; at most %u in all", path, p->n, max);
    goto err;
  }
  if (check_sections(path, p, why, cap) < 0)
    goto err;
  return 0;
err:
  free(p->specs);
  p->specs = NULL;
  return -1;
}

int brk_mfile_load(const char *path, unsigned max, struct brk_mspec **out,
                   unsigned *nout, char *why, size_t cap)
{
  struct parse p;

  *out = NULL;
  *nout = 0;
  if (mfile_parse(path, max, &p, why, cap) < 0)
    return -1;
  for (unsigned i = 0; i < p.n; i++) {
    char w[480];

    if (brk_mspec_check(&p.specs[i], w, sizeof(w)) < 0) {
      snprintf(why, cap, "%s: %s", path, w);
      goto err;
    }
  }
  *out = p.specs;
  *nout = p.n;
  return 0;
err:
  free(p.specs);
  return -1;
}

/* ---- the registry's files: reload and the state file ----------------------- */

int brk_machines_reload(struct brk *b, unsigned *added, unsigned *removed,
                        char *why, size_t cap)
{
  struct brk_mspec *specs = NULL;
  unsigned n = 0;
  char w[512];

  *added = *removed = 0;
  if (b->stopping) {
    snprintf(why, cap, "the broker is stopping");
    return -1;
  }
  if (!b->cfg.machines_file) {
    snprintf(why, cap, "the broker was started without --machines: nothing "
                       "to reload");
    return -1;
  }
  if (brk_mfile_load(b->cfg.machines_file, BRK_MAX_MACHINES, &specs, &n, why,
                     cap) < 0)
    return -1; /* nothing changed */
  /* Gone or changed: out.  (Changed ones come back below, anew.) */
  for (unsigned i = 0; i < b->nmachines; i++) {
    struct brk_machine *m = b->machines[i];
    const struct brk_mspec *now = NULL;

    if (m->removed || m->origin != BRK_FROM_FILE)
      continue;
    for (unsigned k = 0; k < n && !now; k++)
      if (strcmp(specs[k].name, m->name) == 0)
        now = &specs[k];
    if (now && brk_mspec_same(now, &m->own_spec))
      continue;
    if (brk_machine_remove(b, m->name, w, sizeof(w)) == 0)
      (*removed)++;
  }
  for (unsigned k = 0; k < n; k++) {
    struct brk_machine *m = brk_machine_by_name(b, specs[k].name);

    if (m) {
      if (m->origin != BRK_FROM_FILE)
        brk_warn("reload: [machine %s] is skipped: a machine added at run "
                 "time has that name", specs[k].name);
      continue;
    }
    if (brk_machine_add(b, &specs[k], BRK_FROM_FILE, w, sizeof(w)) < 0)
      brk_warn("reload: [machine %s]: %s", specs[k].name, w);
    else
      (*added)++;
  }
  free(specs);
  return 0;
}

static void put_kv(FILE *f, const char *k, const char *v)
{
  if (v[0])
    fprintf(f, "%s = %s\n", k, v);
}

int brk_machines_save(struct brk *b, char *why, size_t cap)
{
  char tmp[PATH_MAX];
  FILE *f;
  int fd, bad;

  if (!b->cfg.state_path)
    return 0;
  if (snprintf(tmp, sizeof(tmp), "%s.tmp", b->cfg.state_path) >=
      (int)sizeof(tmp)) {
    snprintf(why, cap, "state file path too long");
    return -1;
  }
  /* A new file of our own, never one that is there already: a link
     planted at tmp must not make us write through it. */
  if (unlink(tmp) < 0 && errno != ENOENT) {
    snprintf(why, cap, "%.200s: %s", tmp, strerror(errno));
    return -1;
  }
  fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0 || !(f = fdopen(fd, "w"))) {
    snprintf(why, cap, "%.200s: %s", tmp, strerror(errno));
    if (fd >= 0)
      close(fd);
    return -1;
  }
  fprintf(f, "; machines added to tremote-broker at run time (control "
             "socket);\n; rewritten by the broker on every change.\n");
  for (unsigned i = 0; i < b->nmachines; i++) {
    const struct brk_machine *m = b->machines[i];
    const struct brk_mspec *sp = m->spec;

    if (m->removed || m->origin != BRK_FROM_CTL || !sp)
      continue;
    fprintf(f, "\n[machine %s]\nprovider = %s\n", sp->name, m->provider);
    put_kv(f, "gpu", sp->gpu);
    if (sp->provider == BRK_P_MODAL) {
      /* What Modal gave it is learnt again at the next start. */
      fprintf(f, "idle_timeout = %u\ntimeout = %u\n", sp->idle_timeout_s,
              sp->timeout_s);
      continue;
    }
    put_kv(f, "address", sp->address);
    put_kv(f, "secret_file", sp->secret_file);
    if (sp->tls != -1)
      fprintf(f, "tls = %s\n", sp->tls ? "on" : "off");
    put_kv(f, "ca", sp->ca);
    put_kv(f, "fingerprint", sp->fingerprint);
  }
  bad = fflush(f) != 0 || fsync(fileno(f)) != 0;
  if (fclose(f) != 0 || bad || rename(tmp, b->cfg.state_path) < 0) {
    snprintf(why, cap, "%.200s: %s", b->cfg.state_path, strerror(errno));
    unlink(tmp);
    return -1;
  }
  return 0;
}

/* A name for a state file set aside that names no file yet: PATH.bad-
   and the time, so an earlier one is kept. */
static void bad_name(const char *path, char *out, size_t cap)
{
  char stamp[32];
  time_t t = time(NULL);
  struct tm tm;

  strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", localtime_r(&t, &tm));
  snprintf(out, cap, "%s.bad-%s", path, stamp);
  for (int i = 1; i < 100 && access(out, F_OK) == 0; i++)
    snprintf(out, cap, "%s.bad-%s.%d", path, stamp, i);
}

/*
 * The machines of the state file, one by one: one that no longer passes
 * the checks (its secret_file made 0644, a CA file gone) is left out with
 * a warning, and the others come back.  Only a file that does not parse
 * is set aside, under a name of its own.
 */
void brk_machines_load_state(struct brk *b)
{
  struct parse p;
  struct brk_mspec *specs;
  unsigned n;
  char why[1024], bad[PATH_MAX];

  if (!b->cfg.state_path || access(b->cfg.state_path, F_OK) != 0)
    return;
  if (mfile_parse(b->cfg.state_path, BRK_MAX_MACHINES, &p, why,
                  sizeof(why)) < 0) {
    bad_name(b->cfg.state_path, bad, sizeof(bad));
    brk_warn("state file: %s; set aside as %s, machines added at run time "
             "before are not restored", why, bad);
    (void)rename(b->cfg.state_path, bad);
    return;
  }
  specs = p.specs;
  n = p.n;
  for (unsigned i = 0; i < n; i++) {
    if (brk_mspec_check(&specs[i], why, sizeof(why)) < 0)
      brk_warn("state file %s: %s; not restored (and left out of the file "
               "at its next change: add it again once it is fixed)",
               b->cfg.state_path, why);
    else if (brk_machine_add(b, &specs[i], BRK_FROM_CTL, why, sizeof(why)) < 0)
      brk_warn("state file: [machine %s] not restored: %s", specs[i].name,
               why);
    else
      brk_info("%s: restored from %s", specs[i].name, b->cfg.state_path);
  }
  free(specs);
}
