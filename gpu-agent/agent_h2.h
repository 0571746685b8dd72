/*
 * agent_h2.h: the agent's HTTP/2 server (PROTOCOL.md §3, "Wire leg").
 *
 * One thread runs an epoll loop over the listening socket, every accepted
 * connection (non-blocking, TCP_NODELAY, one nghttp2 server session each;
 * h2c with prior knowledge on loopback, else TLS with ALPN h2), a signalfd for SIGTERM/SIGINT and the inbox
 * eventfd of the execution threads.  Routes:
 *
 *   POST /v1/hello    one HELLO record in, one HELLO reply record out
 *   POST /v1/session  creates a session; the response stays open until the
 *                     session is gone (request ended or reset, or the
 *                     connection dropped) and its memory is freed
 *   POST /v1/lane     records in, reply records out, both streamed
 *
 * Every request's `authorization: Bearer <secret>` is checked (constant
 * time) before anything else; a failure is answered 401 and the connection
 * is closed with GOAWAY.
 *
 * The server owns the execution pool, the module cache and the session
 * registry; the backend is the caller's.
 */
#ifndef AGT_H2_H
#define AGT_H2_H

#include <stdbool.h>
#include <stdint.h>

#include "backends/backend.h"

typedef struct ssl_ctx_st SSL_CTX;

struct agt_server_config {
  const char *listen;   /* "HOST:PORT", "[V6]:PORT"; port 0 = any */
  SSL_CTX *tls;         /* TLS for every connection (taken), or NULL: h2c,
                           which only a loopback address may use */
  const char *secret;   /* NULL: accept every request (--insecure) */
  unsigned exec_threads; /* >= 1 */
  unsigned spin_us;     /* polling before sleeping (--spin-us); 0: none */
  uint64_t quota;       /* device memory per session (--quota); 0: none */
  unsigned idle_timeout_s; /* a broker silent this long is gone, its
                              sessions freed (a PING at a third of it) */
  const char *cache_dir; /* modules kept on disk (--cache-dir), or NULL */
  uint64_t cache_max;   /* bytes of modules kept, each in memory and on disk */
  unsigned exit_idle_s; /* no connection and no session this long: stop
                           serving (--exit-idle); 0: never */
  struct agt_nvml *nvml; /* the GPU's figures for /v1/status, or NULL
                            (the caller's; outlives the server) */
};

struct agt_server;

/*
 * Bind and listen, start the execution threads.  SIGTERM and SIGINT must
 * already be blocked in the calling thread (the threads started here
 * inherit the mask; the loop reads them from a signalfd).  Returns 0 and
 * *out, or -errno with *why set to a static message.
 */
int agt_server_new(const struct agt_server_config *cfg, struct agt_backend *be,
                   struct agt_server **out, const char **why);

/* The TCP port actually bound (useful when the config said 0). */
uint16_t agt_server_port(const struct agt_server *s);

/*
 * Serve until SIGTERM or SIGINT, or until nothing was connected for
 * cfg.exit_idle_s.  Then stop accepting, close every
 * connection (which ends every session and frees its memory), wait for the
 * execution threads to let go of the sessions, and return 0.  Returns
 * -errno if the loop itself fails.
 */
int agt_server_run(struct agt_server *s);

/* Stop the execution threads and free everything.  NULL is a no-op. */
void agt_server_free(struct agt_server *s);

#endif /* AGT_H2_H */
