/*
 * agent_tls.h: the agent's TLS (OpenSSL): the server context, the
 * certificate helper (--gen-cert), and fingerprints.
 *
 * An agent reachable beyond loopback speaks HTTP/2 only inside TLS (1.2
 * or newer, ALPN "h2" and nothing else), with a key and certificate from
 * files.  Brokers verify it by a CA or, for a self-signed certificate
 * such as --gen-cert makes, by pinning its SHA-256 fingerprint (how Modal
 * machines are reached: TLS end to end through a raw TCP tunnel).  The
 * secret is still checked on every request, after the handshake.
 */
#ifndef AGT_TLS_H
#define AGT_TLS_H

#include <stddef.h>

typedef struct ssl_ctx_st SSL_CTX;
typedef struct x509_st X509;

/* "SHA256:" + 64 hex digits + NUL */
#define AGT_TLS_FP_LEN (7 + 64 + 1)

/*
 * The server context from a PEM certificate (chain) and key.  Returns it,
 * or NULL with why (static or into errbuf) saying what failed.
 */
SSL_CTX *agt_tls_server_ctx(const char *cert_file, const char *key_file,
                            char *errbuf, size_t cap);

/* The SHA-256 fingerprint of cert, "SHA256:hex". */
void agt_tls_fingerprint(X509 *cert, char out[AGT_TLS_FP_LEN]);

/* The fingerprint of the first certificate in a PEM file; 0 or -1. */
int agt_tls_file_fingerprint(const char *cert_file, char out[AGT_TLS_FP_LEN]);

/*
 * --gen-cert DIR: write DIR/key.pem (mode 0600) and DIR/cert.pem, a
 * self-signed certificate for an EC P-256 key, valid ten years, for
 * localhost, 127.0.0.1, ::1, this host's name and the names in extra
 * (comma-separated DNS names or IP addresses, may be NULL).  Refuses to
 * overwrite.  Returns 0 with the fingerprint in fp, or -1 with errbuf set.
 */
int agt_tls_gen_cert(const char *dir, const char *extra,
                     char fp[AGT_TLS_FP_LEN], char *errbuf, size_t cap);

/* The newest OpenSSL error as text (for logs), or "unknown error". */
const char *agt_tls_error(char *buf, size_t cap);

#endif /* AGT_TLS_H */
