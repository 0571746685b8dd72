/*
 * agent_tls.c: the agent's TLS context, certificates and fingerprints
 * (agent_tls.h).  The per-connection part (handshake, reads, writes) is in
 * agent_h2.c, next to the plain socket calls it replaces.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "agent_tls.h"

const char *agt_tls_error(char *buf, size_t cap)
{
  unsigned long e = ERR_get_error();

  ERR_clear_error();
  if (!e)
    return "unknown error";
  ERR_error_string_n(e, buf, cap);
  return buf;
}

/* ALPN: h2 or nothing.  A client that offers no ALPN at all is refused
   too: whatever it is, it is not a broker. */
static int select_alpn(SSL *ssl, const unsigned char **out,
                       unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg)
{
  static const unsigned char h2[] = {2, 'h', '2'};

  (void)ssl;
  (void)arg;
  if (SSL_select_next_proto((unsigned char **)out, outlen, h2, sizeof(h2), in,
                            inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  return SSL_TLSEXT_ERR_OK;
}

SSL_CTX *agt_tls_server_ctx(const char *cert_file, const char *key_file,
                            char *errbuf, size_t cap)
{
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  char e[256];

  if (!ctx) {
    snprintf(errbuf, cap, "TLS: %s", agt_tls_error(e, sizeof(e)));
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  /* Partial writes: SSL_write then behaves like send(), which the
     connection code already handles; the rest of a frame is retried from
     another buffer. */
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
    snprintf(errbuf, cap, "--tls-cert %s: %s", cert_file,
             agt_tls_error(e, sizeof(e)));
    goto err;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
    snprintf(errbuf, cap, "--tls-key %s: %s", key_file,
             agt_tls_error(e, sizeof(e)));
    goto err;
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    snprintf(errbuf, cap, "--tls-key %s does not belong to --tls-cert %s",
             key_file, cert_file);
    goto err;
  }
  return ctx;
err:
  SSL_CTX_free(ctx);
  return NULL;
}

void agt_tls_fingerprint(X509 *cert, char out[AGT_TLS_FP_LEN])
{
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;

  memcpy(out, "SHA256:", 8);
  if (X509_digest(cert, EVP_sha256(), md, &n) != 1 || n != 32)
    return;
  for (unsigned i = 0; i < 32; i++)
    snprintf(out + 7 + 2 * i, 3, "%02x", md[i]);
}

int agt_tls_file_fingerprint(const char *cert_file, char out[AGT_TLS_FP_LEN])
{
  FILE *f = fopen(cert_file, "r");
  X509 *x;

  if (!f)
    return -1;
  x = PEM_read_X509(f, NULL, NULL, NULL);
  fclose(f);
  if (!x)
    return -1;
  agt_tls_fingerprint(x, out);
  X509_free(x);
  return 0;
}

/* One subjectAltName entry for name: IP:... when it is an address. */
static int san_append(char *san, size_t cap, const char *name)
{
  unsigned char buf[16];
  size_t n = strlen(san);
  int ip = inet_pton(AF_INET, name, buf) == 1 ||
           inet_pton(AF_INET6, name, buf) == 1;

  if (!name[0])
    return 0;
  if (snprintf(san + n, cap - n, "%s%s:%s", n ? "," : "", ip ? "IP" : "DNS",
               name) >= (int)(cap - n))
    return -1;
  return 0;
}

/* Write data to path, created with mode (never over an existing file). */
static int write_new(const char *path, int mode, EVP_PKEY *key, X509 *cert)
{
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  FILE *f;
  int ok;

  if (fd < 0)
    return -errno;
  f = fdopen(fd, "w");
  if (!f) {
    close(fd);
    return -ENOMEM;
  }
  ok = key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL)
           : PEM_write_X509(f, cert);
  if (fclose(f) != 0)
    ok = 0;
  return ok ? 0 : -EIO;
}

int agt_tls_gen_cert(const char *dir, const char *extra,
                     char fp[AGT_TLS_FP_LEN], char *errbuf, size_t cap)
{
  char keyp[4096], certp[4096], san[2048] = "", host[256], e[256];
  EVP_PKEY *key = NULL;
  X509 *x = NULL;
  X509V3_CTX v3;
  X509_EXTENSION *ext;
  X509_NAME *nm;
  unsigned char serial[16];
  BIGNUM *bn = NULL;
  struct stat st;
  int rc = -1, w;

  if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
    snprintf(errbuf, cap, "--gen-cert %s: not a directory", dir);
    return -1;
  }
  snprintf(keyp, sizeof(keyp), "%s/key.pem", dir);
  snprintf(certp, sizeof(certp), "%s/cert.pem", dir);
  if (access(keyp, F_OK) == 0 || access(certp, F_OK) == 0) {
    snprintf(errbuf, cap, "--gen-cert %s: key.pem or cert.pem exists already "
                          "(remove them to make new ones)", dir);
    return -1;
  }
  san_append(san, sizeof(san), "localhost");
  san_append(san, sizeof(san), "127.0.0.1");
  san_append(san, sizeof(san), "::1");
  if (gethostname(host, sizeof(host)) == 0 && strcmp(host, "localhost"))
    san_append(san, sizeof(san), host);
  if (extra) {
    char buf[1024], *save = NULL;

    snprintf(buf, sizeof(buf), "%s", extra);
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
      if (san_append(san, sizeof(san), t) < 0) {
        snprintf(errbuf, cap, "--san: too many names");
        return -1;
      }
  }
  key = EVP_EC_gen("P-256");
  x = X509_new();
  bn = BN_new();
  if (!key || !x || !bn || RAND_bytes(serial, sizeof(serial)) != 1)
    goto ossl;
  serial[0] &= 0x7f; /* positive */
  if (!BN_bin2bn(serial, sizeof(serial), bn) ||
      !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) ||
      X509_set_version(x, 2) != 1 ||
      !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
      !X509_gmtime_adj(X509_getm_notAfter(x), 10L * 365 * 24 * 3600) ||
      X509_set_pubkey(x, key) != 1)
    goto ossl;
  nm = X509_get_subject_name(x);
  if (X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC,
                                 (const unsigned char *)"tremote-gpu-agent",
                                 -1, -1, 0) != 1 ||
      X509_set_issuer_name(x, nm) != 1)
    goto ossl;
  X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
  ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
  if (!ext || X509_add_ext(x, ext, -1) != 1) {
    X509_EXTENSION_free(ext);
    goto ossl;
  }
  X509_EXTENSION_free(ext);
  if (X509_sign(x, key, EVP_sha256()) == 0)
    goto ossl;
  w = write_new(keyp, 0600, key, NULL);
  if (w == 0)
    w = write_new(certp, 0644, NULL, x);
  if (w < 0) {
    snprintf(errbuf, cap, "--gen-cert %s: %s", dir, strerror(-w));
    unlink(keyp);
    goto out;
  }
  agt_tls_fingerprint(x, fp);
  rc = 0;
  goto out;
ossl:
  snprintf(errbuf, cap, "--gen-cert: %s", agt_tls_error(e, sizeof(e)));
out:
  BN_free(bn);
  X509_free(x);
  EVP_PKEY_free(key);
  return rc;
}
