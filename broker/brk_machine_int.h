/*
 * brk_machine_int.h: what brk_machine.c and brk_express.c share, and no
 * other file should use (the broker-wide interface is brk.h).
 *
 * A machine has a main connection to its agent (brk_machine.c: dial,
 * TLS, hello) and, once ready, an express connection (brk_express.c), made
 * the same way: the same HTTP/2 options, socket options and TLS handshake
 * step, and the same handler for a connection that dies.  Everything runs
 * on the broker's loop thread.
 */
#ifndef BRK_MACHINE_INT_H
#define BRK_MACHINE_INT_H

#include <stddef.h>

#include "brk.h"

/* ---- brk_machine.c ------------------------------------------------------ */

/* The HTTP/2 options of both of m's connections (authority, secret,
   windows, PING timing, receive buffer, the lanes' sharing state). */
struct brk_h2_opts brk_machine_h2_opts(struct brk_machine *m);

/*
 * brk_h2_new's on_dead for both of m's connections (owner is m): the
 * express connection's death loses the machine; the main one's fails a
 * start in progress or loses a ready machine.
 */
void brk_machine_on_h2_dead(struct brk_h2 *c, void *owner, const char *why);

/*
 * One step of a TLS handshake (tls=on machines) on *sock with *ssl, the
 * main connection's or the express one's: 1 while it waits (*op armed to
 * call cb(arg m) at the next readiness), 0 when it is done and verified
 * (*pipe has the socket and the TLS object, and *sock and *ssl are
 * cleared), or -1 with why (cap bytes).
 */
int brk_machine_tls_advance(struct brk_machine *m, int *sock, SSL **ssl,
                            struct brk_op **op, brk_op_fn cb,
                            struct brk_pipe *pipe, char *why, size_t cap);

/* Set the options of a connected socket fd to m's agent, either
   connection: TCP_NODELAY, TCP_USER_TIMEOUT, TCP_NOTSENT_LOWAT. */
void brk_machine_tune_socket(struct brk_machine *m, int fd);

/* How a non-blocking connect on fd ended, given its POLLOUT poll's
   result res: 0 or an errno. */
int brk_machine_connect_error(int fd, int res);

/* ---- brk_express.c ------------------------------------------------------ */

/* Dial m's express connection if it wants one (m has just become ready;
   see brk_express.c for when).  Failing leaves lanes on the main
   connection and says why in the log; nothing is returned. */
void brk_express_start(struct brk_machine *m);

/* Give up an express connection on its way (its dial, TLS handshake and
   deadline), if there is one; one that is up (m->h2x) is not touched. */
void brk_express_abandon(struct brk_machine *m);

#endif
