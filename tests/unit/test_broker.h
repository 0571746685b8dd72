/*
 * test_broker.h: what the files of test_broker share: the broker process
 * that test_broker.c starts for the group (two LOCAL machines on the
 * emulated device), its control socket, and the client helpers that talk
 * to it like a shim would.  Unless a helper says otherwise it returns what
 * it saw (a status, or -1 / a negative errno) and leaves the asserting to
 * the test, which may run it on a thread of its own.
 *
 * The failure-path tests live in test_broker_faults.c; main() in
 * test_broker.c runs every test, in its own order, against one broker.
 */
#ifndef TEST_BROKER_H
#define TEST_BROKER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "client.h"

/* ---- the broker process -------------------------------------------------- */

/* The broker's client socket (in the group's temporary directory). */
extern char tb_sock_path[];
/* The broker's pid; 0 once test_shutdown reaped it. */
extern pid_t tb_broker_pid;

/* A fresh request id (thread-safe). */
uint64_t tb_new_id(void);
/* CLOCK_MONOTONIC in milliseconds. */
long tb_now_ms(void);
/* Sleep ms milliseconds, through signals. */
void tb_sleep_ms(long ms);

/* Copy the last lines of the broker's log to stderr (on a failure). */
void tb_dump_log(void);
/* Nonzero when a line of the broker's log contains needle. */
int tb_log_contains(const char *needle);
/* Nonzero while the broker runs (not exited, not reaped). */
int tb_broker_alive(void);

/* ---- the control socket -------------------------------------------------- */

/* The "stats" document (malloc'd, the caller frees it), or NULL. */
char *tb_stats(void);
/* The integer after "key": inside [from, to), or -1. */
long long tb_json_int(const char *from, const char *to, const char *key);
/* The machine object with "index":idx in doc: [*from, *to).  Returns 0,
   or -1 when there is none. */
int tb_machine_obj(const char *doc, int idx, const char **from,
                   const char **to);
/* The pid of machine idx's agent, or -1. */
pid_t tb_agent_pid(int idx);
/* Wait up to ms for machine idx to be ready with an agent other than
   not_pid (-1: any).  Returns 0, or -1 on time-out. */
int tb_wait_machine_ready(int idx, pid_t not_pid, long ms);
/* Number of sessions whose "pid" is ours, and the sum of their
   round_trips in *round_trips; -1 when the control socket fails. */
int tb_my_sessions(long long *round_trips);

/* ---- requests ------------------------------------------------------------ */

/* A client of the broker with one lane open. */
struct tb_client {
  struct tr_client c;
  struct tr_lane l;
};

/* Connect k (offering TR_CLIENT_CAPS, as a current shim does) and open its
   lane.  Returns 0 or a negative errno (nothing to close then); the
   caller tb_client_close()s it. */
int tb_client_open(struct tb_client *k);
/* Close k's lane and its connection. */
void tb_client_close(struct tb_client *k);

/*
 * A round trip: send with WANT_REPLY, gather reply records until the
 * final one.  The logical payloads are concatenated into out (cap bytes;
 * *got their total).  Returns the final status, or a negative errno.
 */
long tb_rpc(struct tb_client *k, uint16_t dev, uint16_t op, const void *args,
            uint32_t alen, const void *data, uint32_t dlen, void *out,
            size_t cap, size_t *got, int timeout_ms);
/* MALLOC of size bytes on device dev: the status, *ptr on success. */
long tb_dev_malloc(struct tb_client *k, uint16_t dev, uint64_t size,
                   uint64_t *ptr);
/* FREE of ptr: the status. */
long tb_dev_free(struct tb_client *k, uint16_t dev, uint64_t ptr);
/* H2D of data[0..len) to dst without waiting (the normal asynchronous
   path): 0 or a negative errno from sending it. */
int tb_h2d_async(struct tb_client *k, uint16_t dev, uint64_t dst,
                 const void *data, uint32_t len);
/* H2D of data[0..len) to dst with a reply: the status. */
long tb_h2d_sync(struct tb_client *k, uint16_t dev, uint64_t dst,
                 const void *data, uint32_t len);
/* D2H of len bytes at src into out: the status (-EPROTO when fewer bytes
   came back). */
long tb_d2h(struct tb_client *k, uint16_t dev, uint64_t src, void *out,
            uint64_t len);
/* tb_d2h until the bytes equal want (lanes are ordered only across a
   round trip): 1, or 0 after 10 s. */
int tb_d2h_until(struct tb_client *k, uint16_t dev, uint64_t src,
                 const void *want, void *out, uint64_t len);
/* NOP with a reply within timeout_ms: the status. */
long tb_nop(struct tb_client *k, uint16_t dev, int timeout_ms);

/* ---- the tests, by file -------------------------------------------------- */

/* test_broker_faults.c: a client that corrupts its lane, agents that die
   or go silent, a lane move broken, a client that takes no replies. */
void test_corrupt_client(void **state);
void test_agent_killed(void **state);
void test_agent_silent(void **state);
void test_move_broken(void **state);
void test_move_close(void **state);
void test_stalled_client(void **state);

#endif
