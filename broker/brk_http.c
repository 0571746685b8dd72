/*
 * brk_http.c: libcurl's multi-socket interface on the broker's loop (see
 * brk_http.h).
 *
 * Sockets.  libcurl calls sock_cb with what it wants of a socket; we keep
 * one struct hsock per socket (assigned to it with curl_multi_assign) and
 * one one-shot poll operation armed for those events.  When the poll
 * fires we arm the next one first and then tell libcurl: libcurl only
 * calls sock_cb when its wishes change, and the socket may be removed (the
 * poll cancelled, the hsock freed) during the call, after which we must
 * not touch it.  An extra wake-up from a poll armed early costs one
 * EAGAIN inside libcurl.
 *
 * Finished transfers are collected after every call into libcurl and
 * their callbacks run then, outside libcurl's own callbacks, so they may
 * start or cancel requests freely.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "brk_http.h"
#include "brk_log.h"
#include "brk_loop.h"

/* The most of an answer we keep: the Modal app's are a few KiB. */
#define BODY_MAX (1u << 20)

struct brk_http {
  struct brk_loop *loop;
  CURLM *multi;
  struct brk_op *timer;
  struct brk_http_req *reqs; /* unfinished, for cancel-all */
  unsigned npending;
  int in_done; /* collecting finished transfers */
};

struct brk_http_req {
  struct brk_http *h;
  struct brk_http_req *next, *prev;
  CURL *easy;
  struct curl_slist *headers;
  char *body;
  size_t len, cap;
  int truncated;
  long retry_after_s;
  brk_http_cb cb;
  brk_http_conn_cb conn_cb; /* brk_http_connect */
  void *arg;
  char err[CURL_ERROR_SIZE];
};

struct hsock {
  struct brk_http *h;
  curl_socket_t fd;
  int what; /* CURL_POLL_IN / OUT / INOUT */
  struct brk_op *op;
};

static void collect(struct brk_http *h);
static void arm(struct hsock *s);

static void on_sock(struct brk_op *op, int res, void *arg)
{
  struct hsock *s = arg;
  struct brk_http *h = s->h;
  curl_socket_t fd = s->fd;
  int flags = 0, running;

  (void)op;
  s->op = NULL;
  if (res < 0)
    flags = CURL_CSELECT_ERR;
  else {
    if (res & POLLIN)
      flags |= CURL_CSELECT_IN;
    if (res & POLLOUT)
      flags |= CURL_CSELECT_OUT;
    if (res & (POLLERR | POLLHUP))
      flags |= CURL_CSELECT_ERR;
  }
  arm(s); /* before: s may be gone after the call */
  curl_multi_socket_action(h->multi, fd, flags, &running);
  collect(h);
}

static void arm(struct hsock *s)
{
  unsigned ev = 0;

  brk_op_cancel(s->op);
  s->op = NULL;
  if (s->what & CURL_POLL_IN)
    ev |= POLLIN;
  if (s->what & CURL_POLL_OUT)
    ev |= POLLOUT;
  if (!ev)
    return;
  s->op = brk_loop_poll(s->h->loop, s->fd, ev, on_sock, s);
  if (!s->op)
    brk_warn("http: cannot poll socket %d", (int)s->fd);
}

static int sock_cb(CURL *easy, curl_socket_t fd, int what, void *userp,
                   void *socketp)
{
  struct brk_http *h = userp;
  struct hsock *s = socketp;

  (void)easy;
  if (what == CURL_POLL_REMOVE) {
    if (s) {
      brk_op_cancel(s->op);
      curl_multi_assign(h->multi, fd, NULL);
      free(s);
    }
    return 0;
  }
  if (!s) {
    s = calloc(1, sizeof(*s));
    if (!s)
      return -1; /* libcurl fails the transfer */
    s->h = h;
    s->fd = fd;
    curl_multi_assign(h->multi, fd, s);
  }
  s->what = what;
  arm(s);
  return 0;
}

static void on_timer(struct brk_op *op, int res, void *arg)
{
  struct brk_http *h = arg;
  int running;

  (void)op;
  (void)res;
  h->timer = NULL;
  curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  collect(h);
}

static int timer_cb(CURLM *multi, long ms, void *userp)
{
  struct brk_http *h = userp;

  (void)multi;
  brk_op_cancel(h->timer);
  h->timer = NULL;
  if (ms < 0)
    return 0;
  h->timer = brk_loop_timeout(h->loop, (uint64_t)ms, on_timer, h);
  return h->timer ? 0 : -1;
}

static size_t write_cb(char *p, size_t size, size_t n, void *arg)
{
  struct brk_http_req *r = arg;
  size_t len = size * n;

  if (r->len + len > BODY_MAX) {
    r->truncated = 1;
    return 0; /* libcurl ends the transfer with CURLE_WRITE_ERROR */
  }
  if (r->len + len + 1 > r->cap) {
    size_t cap = r->cap ? r->cap : 1024;
    char *nb;

    while (cap < r->len + len + 1)
      cap *= 2;
    nb = realloc(r->body, cap);
    if (!nb)
      return 0;
    r->body = nb;
    r->cap = cap;
  }
  memcpy(r->body + r->len, p, len);
  r->len += len;
  r->body[r->len] = 0;
  return len;
}

/* Retry-After: SECONDS (the HTTP-date form is not used by our peers). */
static size_t header_cb(char *p, size_t size, size_t n, void *arg)
{
  struct brk_http_req *r = arg;
  size_t len = size * n;
  static const char name[] = "retry-after:";

  if (len > sizeof(name) && strncasecmp(p, name, sizeof(name) - 1) == 0) {
    char buf[32];
    size_t k = len - (sizeof(name) - 1);

    if (k >= sizeof(buf))
      k = sizeof(buf) - 1;
    memcpy(buf, p + sizeof(name) - 1, k);
    buf[k] = 0;
    r->retry_after_s = strtol(buf, NULL, 10);
  }
  return len;
}

static void req_free(struct brk_http_req *r)
{
  struct brk_http *h = r->h;

  if (r->prev)
    r->prev->next = r->next;
  else
    h->reqs = r->next;
  if (r->next)
    r->next->prev = r->prev;
  h->npending--;
  curl_multi_remove_handle(h->multi, r->easy);
  curl_easy_cleanup(r->easy);
  curl_slist_free_all(r->headers);
  free(r->body);
  free(r);
}

/* A brk_http_connect finished: hand over a copy of libcurl's socket
   (libcurl closes its own in curl_easy_cleanup). */
static void finish_connect(struct brk_http_req *r, CURLcode rc)
{
  curl_socket_t s = CURL_SOCKET_BAD;
  int fd = -1;

  if (rc == CURLE_OK &&
      curl_easy_getinfo(r->easy, CURLINFO_ACTIVESOCKET, &s) == CURLE_OK &&
      s != CURL_SOCKET_BAD)
    fd = fcntl(s, F_DUPFD_CLOEXEC, 0);
  if (fd >= 0) {
    r->conn_cb(fd, NULL, r->arg);
    return;
  }
  if (rc != CURLE_OK && !r->err[0])
    snprintf(r->err, sizeof(r->err), "%s", curl_easy_strerror(rc));
  else if (!r->err[0])
    snprintf(r->err, sizeof(r->err), "no socket after connecting: %s",
             strerror(errno));
  r->conn_cb(-1, r->err, r->arg);
}

static void collect(struct brk_http *h)
{
  CURLMsg *msg;
  int left;

  if (h->in_done)
    return; /* a callback started a request: the outer loop goes on */
  h->in_done = 1;
  while ((msg = curl_multi_info_read(h->multi, &left))) {
    struct brk_http_req *r = NULL;
    struct brk_http_res res = {0};

    if (msg->msg != CURLMSG_DONE)
      continue;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
    if (!r)
      continue;
    if (r->conn_cb) {
      finish_connect(r, msg->data.result);
      req_free(r);
      continue;
    }
    if (msg->data.result == CURLE_OK) {
      curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &res.status);
    } else {
      res.status = 0;
      if (r->truncated)
        snprintf(r->err, sizeof(r->err), "answer longer than %u bytes",
                 BODY_MAX);
      else if (!r->err[0])
        snprintf(r->err, sizeof(r->err), "%s",
                 curl_easy_strerror(msg->data.result));
      res.err = r->err;
    }
    res.body = r->body ? r->body : "";
    res.len = r->len;
    res.retry_after_s = r->retry_after_s;
    r->cb(&res, r->arg);
    req_free(r);
  }
  h->in_done = 0;
}

int brk_http_new(struct brk_loop *loop, struct brk_http **out)
{
  struct brk_http *h = calloc(1, sizeof(*h));

  if (!h)
    return -ENOMEM;
  h->loop = loop;
  h->multi = curl_multi_init();
  if (!h->multi) {
    free(h);
    return -ENOMEM;
  }
  curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
  curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
  curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
  curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
  *out = h;
  return 0;
}

void brk_http_free(struct brk_http *h)
{
  if (!h)
    return;
  while (h->reqs)
    req_free(h->reqs);
  brk_op_cancel(h->timer);
  /* Removing the handles told libcurl to drop its sockets (sock_cb
     REMOVE freed each hsock). */
  curl_multi_cleanup(h->multi);
  free(h);
}

/* A request with its options set, not yet given to libcurl's multi. */
static struct brk_http_req *req_new(struct brk_http *h, const char *method,
                                    const char *url,
                                    const struct brk_http_opts *o,
                                    brk_http_cb cb, void *arg)
{
  struct brk_http_req *r = calloc(1, sizeof(*r));
  int ok = 1;

  if (!r)
    return NULL;
  r->h = h;
  r->cb = cb;
  r->arg = arg;
  r->retry_after_s = -1;
  r->easy = curl_easy_init();
  if (!r->easy) {
    free(r);
    return NULL;
  }
  for (const char *const *hd = o->headers; hd && *hd; hd++) {
    struct curl_slist *l = curl_slist_append(r->headers, *hd);

    if (!l) {
      ok = 0;
      break;
    }
    r->headers = l;
  }
  ok = ok && curl_easy_setopt(r->easy, CURLOPT_URL, url) == CURLE_OK;
  curl_easy_setopt(r->easy, CURLOPT_CUSTOMREQUEST, method);
  if (o->body) {
    curl_easy_setopt(r->easy, CURLOPT_COPYPOSTFIELDS, o->body); /* ours may go */
  } else if (strcmp(method, "GET") == 0) {
    curl_easy_setopt(r->easy, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(r->easy, CURLOPT_CUSTOMREQUEST, NULL);
  }
  curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers);
  curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r);
  curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(r->easy, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt(r->easy, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(r->easy, CURLOPT_ERRORBUFFER, r->err);
  curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075700
  /* A request cancelled while its name is being looked up must not wait
     for the resolver thread: that would hold the broker's loop for the
     whole lookup (a machine lost mid-dial, a broker stopping). */
  curl_easy_setopt(r->easy, CURLOPT_QUICK_EXIT, 1L);
#endif
  curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS,
                   o->timeout_ms > 0 ? o->timeout_ms : 30000L);
  curl_easy_setopt(r->easy, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  /* Only our endpoints: no redirects to elsewhere with the token. */
  curl_easy_setopt(r->easy, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(r->easy, CURLOPT_PROTOCOLS_STR, "http,https");
  if (o->ca_file)
    curl_easy_setopt(r->easy, CURLOPT_CAINFO, o->ca_file);
  curl_easy_setopt(r->easy, CURLOPT_USERAGENT, "tremote-broker");
  if (!ok) {
    curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->headers);
    free(r);
    return NULL;
  }
  return r;
}

/* Hand r to libcurl (r is freed if it refuses). */
static struct brk_http_req *req_add(struct brk_http_req *r)
{
  struct brk_http *h = r->h;

  if (curl_multi_add_handle(h->multi, r->easy) != CURLM_OK) {
    curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->headers);
    free(r);
    return NULL;
  }
  r->next = h->reqs;
  if (h->reqs)
    h->reqs->prev = r;
  h->reqs = r;
  h->npending++;
  return r;
}

struct brk_http_req *brk_http_start(struct brk_http *h, const char *method,
                                    const char *url,
                                    const struct brk_http_opts *o,
                                    brk_http_cb cb, void *arg)
{
  struct brk_http_req *r = req_new(h, method, url, o, cb, arg);

  return r ? req_add(r) : NULL;
}

struct brk_http_req *brk_http_connect(struct brk_http *h, const char *host,
                                      unsigned port, long timeout_ms,
                                      brk_http_conn_cb cb, void *arg)
{
  static const struct brk_http_opts none = {0};
  struct brk_http_req *r;
  char url[300];

  if (snprintf(url, sizeof(url), strchr(host, ':') ? "http://[%s]:%u/"
                                                   : "http://%s:%u/",
               host, port) >= (int)sizeof(url))
    return NULL;
  r = req_new(h, "GET", url, &none, NULL, arg);
  if (!r)
    return NULL;
  r->conn_cb = cb;
  curl_easy_setopt(r->easy, CURLOPT_CONNECT_ONLY, 1L);
  curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(r->easy, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
  return req_add(r);
}

void brk_http_cancel(struct brk_http_req *r)
{
  if (r)
    req_free(r);
}

unsigned brk_http_pending(const struct brk_http *h)
{
  return h ? h->npending : 0;
}
