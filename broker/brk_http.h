/*
 * brk_http.h: HTTP requests (libcurl) driven by the broker's io_uring loop.
 *
 * libcurl's multi-socket interface tells us which sockets it wants to read
 * or write and when its next timeout is due; we turn those into one-shot
 * poll and timeout operations on the loop and hand the events back.  So a
 * request to a slow endpoint (a long poll of the Modal app lasts 25 s)
 * never blocks the loop that carries every program's CUDA calls.  Name
 * resolution uses libcurl's threaded resolver, also off the loop thread.
 *
 * Ownership: brk_http owns every request until its callback has returned
 * (then the request and its body are freed) or until brk_http_cancel().
 */
#ifndef BRK_HTTP_H
#define BRK_HTTP_H

#include <stddef.h>

struct brk_loop;
struct brk_http;
struct brk_http_req;

/* A finished request.  status is the HTTP status, or 0 when there was no
   answer (then err says why: "Could not resolve host: ...").  body is
   NUL-terminated; both live until the callback returns. */
struct brk_http_res {
  long status;
  const char *body;
  size_t len;
  const char *err;
  long retry_after_s; /* Retry-After, or -1 */
};

typedef void (*brk_http_cb)(const struct brk_http_res *res, void *arg);

/* Options of one request. */
struct brk_http_opts {
  const char *const *headers; /* "Name: value", NULL-terminated; or NULL */
  const char *body;           /* sent as is (JSON), or NULL */
  long timeout_ms;            /* whole request; 0: 30 s */
  const char *ca_file;        /* trust this CA instead of the system's */
};

/* One per broker.  curl_global_init must have run.  0 or -ENOMEM. */
int brk_http_new(struct brk_loop *loop, struct brk_http **out);
/* Cancel every request (no callbacks) and free.  NULL is a no-op. */
void brk_http_free(struct brk_http *h);

/*
 * Start METHOD url.  The callback runs once, from the loop, never from
 * inside this call.  Returns the request, or NULL (out of memory, libcurl
 * refused the options).
 */
struct brk_http_req *brk_http_start(struct brk_http *h, const char *method,
                                    const char *url,
                                    const struct brk_http_opts *o,
                                    brk_http_cb cb, void *arg);

/*
 * Resolve host (libcurl's threaded resolver) and connect a TCP socket to
 * host:port, off the loop thread.  cb gets a connected, non-blocking,
 * close-on-exec descriptor it then owns, or -1 and err.
 */
typedef void (*brk_http_conn_cb)(int fd, const char *err, void *arg);
struct brk_http_req *brk_http_connect(struct brk_http *h, const char *host,
                                      unsigned port, long timeout_ms,
                                      brk_http_conn_cb cb, void *arg);

/* Abandon r: its callback will not run.  NULL is a no-op.  Not from
   inside r's own callback (r is finished there already). */
void brk_http_cancel(struct brk_http_req *r);

/* Requests not yet finished (tests, shutdown). */
unsigned brk_http_pending(const struct brk_http *h);

#endif /* BRK_HTTP_H */
