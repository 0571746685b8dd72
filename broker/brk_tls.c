/*
 * brk_tls.c: TLS to agents (OpenSSL), as a byte pipe (brk_h2.h) under the
 * HTTP/2 connection, inside the io_uring loop.
 *
 * The handshake runs on the loop (poll operations on the socket) before
 * the connection exists; the pipe then wraps the SSL object.  An agent is
 * verified one of two ways (machines file): its certificate's SHA-256
 * fingerprint equals the pinned one (a self-signed certificate, as
 * tremote-gpu-agent --gen-cert makes, and how Modal machines are reached),
 * or its chain leads to the configured CA and names the address dialled.
 * ALPN must choose h2.  Nothing of HTTP/2, and so no secret, is sent
 * before all of that holds.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "brk.h"
#include "brk_log.h"

/* The newest OpenSSL error as text. */
static const char *ossl_error(char *buf, size_t cap)
{
  unsigned long e = ERR_get_error();

  ERR_clear_error();
  if (!e)
    return "unknown error";
  ERR_error_string_n(e, buf, cap);
  return buf;
}

SSL_CTX *brk_tls_ctx(const struct brk_mspec *sp, char *why, size_t cap)
{
  static const unsigned char alpn[] = {2, 'h', '2'};
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  char e[256];

  if (!ctx) {
    snprintf(why, cap, "TLS: %s", ossl_error(e, sizeof(e)));
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  if (SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn)) != 0)
    goto ossl;
  if (sp->fingerprint[0]) {
    /* Pinned: the chain means nothing, the fingerprint everything. */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  } else {
    /* OpenSSL opens the path as it is, on the event loop: a FIFO there
       would block every program.  Only a regular file (or a link to one). */
    struct stat st;
    int fd = open(sp->ca, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    int reg = fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode);

    if (fd >= 0)
      close(fd);
    if (!reg) {
      snprintf(why, cap, "ca %.200s: %s", sp->ca,
               fd < 0 ? strerror(errno) : "not a regular file (a FIFO, a "
                                          "device or a directory is refused)");
      SSL_CTX_free(ctx);
      return NULL;
    }
    if (SSL_CTX_load_verify_locations(ctx, sp->ca, NULL) != 1) {
      snprintf(why, cap, "ca %.200s: %s", sp->ca, ossl_error(e, sizeof(e)));
      SSL_CTX_free(ctx);
      return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  }
  return ctx;
ossl:
  snprintf(why, cap, "TLS: %s", ossl_error(e, sizeof(e)));
  SSL_CTX_free(ctx);
  return NULL;
}

SSL *brk_tls_new(SSL_CTX *ctx, const struct brk_mspec *sp, int fd)
{
  SSL *ssl = SSL_new(ctx);
  char host[128];

  if (!ssl)
    return NULL;
  if (SSL_set_fd(ssl, fd) != 1)
    goto err;
  SSL_set_connect_state(ssl);
  if (!sp->fingerprint[0]) {
    /* The certificate must name what was dialled: an IP address (names
       are not looked up, localhost aside). */
    X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);

    brk_mspec_host(sp, host, sizeof(host));
    if (strcmp(host, "localhost") == 0) {
      if (X509_VERIFY_PARAM_set1_host(vp, host, 0) != 1)
        goto err;
      SSL_set_tlsext_host_name(ssl, host);
    } else if (X509_VERIFY_PARAM_set1_ip_asc(vp, host) != 1) {
      goto err;
    }
  }
  return ssl;
err:
  SSL_free(ssl);
  return NULL;
}

int brk_tls_handshake(SSL *ssl, const struct brk_mspec *sp, char *why,
                      size_t cap)
{
  const unsigned char *alpn = NULL;
  unsigned alen = 0;
  char e[256];
  int r, err;

  ERR_clear_error();
  r = SSL_do_handshake(ssl);
  if (r != 1) {
    err = SSL_get_error(ssl, r);
    if (err == SSL_ERROR_WANT_READ)
      return POLLIN;
    if (err == SSL_ERROR_WANT_WRITE)
      return POLLOUT;
    /* Pinned, the chain is not verified, but OpenSSL still keeps its
       result (a self-signed certificate's, say): that tells nothing of
       why a pinned handshake failed. */
    if (err == SSL_ERROR_SSL && !sp->fingerprint[0] &&
        SSL_get_verify_result(ssl) != X509_V_OK)
      snprintf(why, cap, "the agent's certificate did not verify against "
                         "ca %.200s: %s", sp->ca,
               X509_verify_cert_error_string(SSL_get_verify_result(ssl)));
    else if (err == SSL_ERROR_SYSCALL && !ERR_peek_error())
      snprintf(why, cap, "the agent closed the connection during the TLS "
                         "handshake (is it serving TLS?)");
    else
      snprintf(why, cap, "TLS handshake failed: %s",
               ossl_error(e, sizeof(e)));
    return -1;
  }
  SSL_get0_alpn_selected(ssl, &alpn, &alen);
  if (alen != 2 || memcmp(alpn, "h2", 2) != 0) {
    snprintf(why, cap, "the agent did not agree to HTTP/2 (ALPN h2)");
    return -1;
  }
  if (sp->fingerprint[0]) {
    X509 *peer = SSL_get1_peer_certificate(ssl);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    char got[7 + 64 + 1];

    if (!peer) {
      snprintf(why, cap, "the agent sent no certificate");
      return -1;
    }
    r = X509_digest(peer, EVP_sha256(), md, &n);
    X509_free(peer);
    if (r != 1 || n != 32) {
      snprintf(why, cap, "cannot hash the agent's certificate");
      return -1;
    }
    memcpy(got, "SHA256:", 7);
    for (unsigned i = 0; i < 32; i++)
      snprintf(got + 7 + 2 * i, 3, "%02x", md[i]);
    if (strcmp(got, sp->fingerprint) != 0) {
      snprintf(why, cap, "the agent's certificate is %s, not the pinned %s "
                         "(a different agent, or its certificate was "
                         "remade: check, then update fingerprint=)",
               got, sp->fingerprint);
      return -1;
    }
  }
  return 0;
}

/* ---- the pipe ------------------------------------------------------------ */

struct tls_pipe {
  SSL *ssl;
  uint8_t *buf; /* writev gathers here: one record per frame */
  size_t cap;
};

static ssize_t tls_read(struct brk_pipe *p, void *buf, size_t len)
{
  struct tls_pipe *t = p->impl;
  size_t n = 0;
  int err;

  ERR_clear_error();
  if (SSL_read_ex(t->ssl, buf, len, &n) == 1)
    return (ssize_t)n;
  err = SSL_get_error(t->ssl, 0);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
    return -EAGAIN;
  if (err == SSL_ERROR_ZERO_RETURN ||
      (err == SSL_ERROR_SYSCALL && !ERR_peek_error()))
    return 0;
  {
    char e[256];

    brk_dbg("TLS read: %s", ossl_error(e, sizeof(e)));
  }
  return -EIO;
}

static ssize_t tls_writev(struct brk_pipe *p, const struct iovec *iov, int n)
{
  struct tls_pipe *t = p->impl;
  size_t total = 0, w = 0;
  const void *src;
  int err;

  for (int i = 0; i < n; i++)
    total += iov[i].iov_len;
  if (total == 0)
    return 0;
  if (n == 1) {
    src = iov[0].iov_base;
  } else {
    if (total > t->cap) {
      uint8_t *b = realloc(t->buf, total);

      if (!b)
        return -ENOMEM;
      t->buf = b;
      t->cap = total;
    }
    for (int i = 0; i < n; i++) {
      memcpy(t->buf + w, iov[i].iov_base, iov[i].iov_len);
      w += iov[i].iov_len;
    }
    src = t->buf;
  }
  ERR_clear_error();
  if (SSL_write_ex(t->ssl, src, total, &w) == 1)
    return (ssize_t)w;
  err = SSL_get_error(t->ssl, 0);
  if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ)
    return -EAGAIN;
  {
    char e[256];

    brk_dbg("TLS write: %s", ossl_error(e, sizeof(e)));
  }
  return -EIO;
}

/* Decrypted bytes waiting in TLS, which poll cannot see.  Not
   SSL_has_pending: it also counts half a record, whose rest poll will
   see arrive, and the loop would spin on it until then. */
static int tls_pending(struct brk_pipe *p)
{
  struct tls_pipe *t = p->impl;

  return SSL_pending(t->ssl) > 0;
}

static void tls_close(struct brk_pipe *p)
{
  struct tls_pipe *t = p->impl;

  if (t) {
    (void)SSL_shutdown(t->ssl); /* close_notify, if the socket takes it */
    SSL_free(t->ssl);
    free(t->buf);
    free(t);
  }
  if (p->fd >= 0)
    close(p->fd);
  p->fd = -1;
  p->impl = NULL;
}

int brk_pipe_tls(struct brk_pipe *p, int fd, SSL *ssl)
{
  struct tls_pipe *t = calloc(1, sizeof(*t));

  if (!t)
    return -ENOMEM;
  t->ssl = ssl;
  memset(p, 0, sizeof(*p));
  p->fd = fd;
  p->in_place = 0;
  p->sticky = 1;
  p->read = tls_read;
  p->writev = tls_writev;
  p->pending = tls_pending;
  p->close = tls_close;
  p->impl = t;
  return 0;
}
