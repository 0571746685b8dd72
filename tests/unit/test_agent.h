/*
 * test_agent.h: what the files of test_agent share: the agent process the
 * groups start (test_agent.c), the constants its command line implies, and
 * the helpers that open sessions and lanes on it and send the common
 * records.  Every helper asserts (cmocka) rather than returning an error
 * unless it says otherwise, so a test reads as the exchange it checks.
 *
 * The tests themselves live by area in test_agent_sessions.c,
 * test_agent_lanes.c and test_agent_kernels.c; main() in test_agent.c runs
 * them in its own order, in groups each with an agent started for it.
 */
#ifndef TEST_AGENT_H
#define TEST_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "test_agent_h2c.h"
#include "tremote/proto.h"

/* cudaError_t values the tests expect (driver_types.h numbers). */
#define CU_INVALID_VALUE 1
#define CU_MEMORY_ALLOCATION 2
#define CU_INVALID_CONFIGURATION 9
#define CU_INVALID_DEVICE_FUNCTION 98
#define CU_INVALID_SYMBOL 13
#define CU_INVALID_SOURCE 300
#define CU_ILLEGAL_ADDRESS 700
#define CU_LAUNCH_TIMEOUT 702
#define CU_NOT_SUPPORTED 801

#define MiB (1ull << 20)
#define AGENT_MEM (3ull << 30) /* --emu-mem 3G */

/* Address windows for the sessions, as a broker of this build hands them
   out (a TSan agent can only map memory in TSan's application range). */
#define WIN_BASE TR_VA_BUILD_BASE
#define WIN_SIZE TR_VA_BUILD_WINDOW

/*
 * 512 MiB memsets that keep a lane busy for a while: ~40 ms each natively,
 * ~1 s each under TSan, which intercepts memset.
 */
#if defined(__SANITIZE_THREAD__)
#define LONG_ROUNDS 3
#else
#define LONG_ROUNDS 12
#endif

/* ---- the agent process ------------------------------------------------- */

/* The secret the agent was given on --secret-fd. */
extern const char ta_secret[];
/* The running agent's pid, for /proc and waitpid. */
extern pid_t ta_agent_pid;
/* Set by a test that saw the agent exit and reaped it, so that the group's
   teardown does not wait for it again. */
extern int ta_agent_reaped;

/* ---- helpers ------------------------------------------------------------ */

/* Connect c to the agent (loopback h2c); the caller tc_close()s it. */
void ta_connect_agent(struct tc_conn *c);

/* Start of session address window i (WIN_SIZE bytes from WIN_BASE on). */
uint64_t ta_window(unsigned i);

/* Open /v1/session with a fresh id and address window win; *id gets the
   id.  Asserts 200.  The stream belongs to c. */
struct tc_stream *ta_open_session(struct tc_conn *c, unsigned win,
                                  uint64_t *id);

/* POST /v1/lane for lane `lane` of session sid, with one more header
   `name: value` unless name is NULL (tremote-priority, tremote-lane-move).
   Asserts that the response status is want_status. */
struct tc_stream *ta_open_lane_with(struct tc_conn *c, uint64_t sid,
                                    unsigned lane, const char *name,
                                    const char *value, int want_status);
/* The same with tremote-priority: prio, unless prio is NULL. */
struct tc_stream *ta_open_lane_prio(struct tc_conn *c, uint64_t sid,
                                    unsigned lane, const char *prio,
                                    int want_status);
/* The same with no extra header. */
struct tc_stream *ta_open_lane(struct tc_conn *c, uint64_t sid,
                               unsigned lane, int want_status);

/* MALLOC of size bytes on lane; asserts success, returns the pointer. */
uint64_t ta_dmalloc(struct tc_stream *lane, uint64_t size);
/* FREE of ptr; returns the reply's status. */
uint32_t ta_dfree(struct tc_stream *lane, uint64_t ptr);

/* MEMCPY_H2D payload: dst, len, bytes; malloc'd, *plen gets its size, the
   caller frees it. */
uint8_t *ta_h2d_payload(uint64_t dst, const void *src, size_t len,
                        size_t *plen);
/* MEMCPY_H2D of src[0..len) to dst: with reply, waits and returns the
   status; without, only posts the record and returns 0. */
uint32_t ta_h2d(struct tc_stream *lane, uint64_t dst, const void *src,
                size_t len, bool reply);
/* MEMCPY_D2H of len bytes at src; the status, r (if not NULL) gets the
   reply's bytes (the caller frees r->data). */
uint32_t ta_d2h(struct tc_stream *lane, uint64_t src, uint64_t len,
                struct tc_result *r);
/* MEMCPY_D2D; returns the status. */
uint32_t ta_d2d(struct tc_stream *lane, uint64_t dst, uint64_t src,
                uint64_t len);
/* MEMSET payload: dst, len, value. */
void ta_memset_payload(uint8_t p[20], uint64_t dst, uint64_t len,
                       uint32_t v);
/* MEMSET with reply; returns the status. */
uint32_t ta_dmemset(struct tc_stream *lane, uint64_t dst, uint64_t len,
                    uint32_t v);
/* MEM_GET_INFO: free and total device memory; asserts success. */
void ta_mem_info(struct tc_stream *lane, uint64_t *fr, uint64_t *total);

/* ---- the tests, by file ------------------------------------------------- */

/* test_agent_sessions.c */
void test_auth_rejected(void **state);
void test_hello(void **state);
void test_hello_version_mismatch(void **state);
void test_routes(void **state);
void test_memory_roundtrip(void **state);
void test_memory_errors(void **state);
void test_deferred_flag(void **state);
void test_sessions_isolated(void **state);
void test_session_close_frees(void **state);
void test_ping_during_long_op(void **state);
void test_quota(void **state);
void test_silent_peer(void **state);
void test_exit_idle(void **state);

/* test_agent_lanes.c */
void test_malformed_record(void **state);
void test_d2h_bounded(void **state);
void test_tls_reset_midframe(void **state);
void test_lane_inbound_bounded(void **state);
void test_h2d_framing(void **state);
void test_event_wait(void **state);
void test_lane_mark(void **state);
void test_lane_move(void **state);
void test_h2d_direct_order(void **state);

/* test_agent_kernels.c */
void test_modules(void **state);
void test_kernel_output(void **state);
void test_kernel_fault_sticky(void **state);
void test_kernel_long_ping(void **state);
void test_kernel_watchdog(void **state);

#endif
