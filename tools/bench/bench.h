/*
 * bench.h: tremote-bench's modules (prefix bench_).
 *
 *   bench_net   the yardsticks: raw loopback TCP and the same topology as
 *               tremote without tremote, measured in the same run
 *   bench_proc  the processes: a broker in a private directory, a workload
 *               program under the shim, the broker's counters
 *   bench_main  options, the order of the measurements, the report
 *
 * Every function returns 0 or -errno (a workload that fails returns its
 * exit status as a positive number where that is said); times are seconds.
 */
#ifndef TREMOTE_BENCH_H
#define TREMOTE_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- bench_net ------------------------------------------------------------- */

/* Repetitions for a transfer of SIZE bytes: REPS, ten times that below
 * 1 MiB where one transfer is cheap and noisy.  The workload uses the same
 * rule (tests/bench/bench_calls.cu), so both sides get as many tries. */
int bench_reps_for(size_t size, int reps);

/* 64-byte ping-pong over loopback TCP, N timed after a warm-up: the p50 and
 * p99 round trip. */
int bench_net_tcp_rtt(int n, double *p50, double *p99);

/* The same ping-pong in tremote's topology without tremote: the client
 * over a Unix socket to a relay process, which forwards over loopback TCP
 * to an echo process. */
int bench_net_relay_rtt(int n, double *p50, double *p99);

/* One loopback TCP connection: for each of the NSIZES sizes, the best of
 * bench_reps_for(size, REPS) transfers of that many bytes to a sink that
 * answers one byte once it has them all (a synchronous copy's shape).
 * secs[i] receives the best time for sizes[i]. */
int bench_net_tcp_bw(const size_t *sizes, int nsizes, int reps, double *secs);

/* ITERS exchanges of BYTES each way (send BYTES, the echo answers BYTES once
 * it has them all) through tr_relay RELAY with --rtt-ms RTT_MS --rate RATE:
 * the network-only time of the delay workload.  *secs: the total. */
int bench_net_delay_echo(const char *relay, double rtt_ms, uint64_t rate,
                         int iters, size_t bytes, double *secs);

/* ---- bench_proc ------------------------------------------------------------ */

/* In a child about to exec: make FD available as descriptor TO, without
 * close-on-exec (also when FD already is TO). */
int bench_fd_to(int fd, int to);

/* ---- the rest of bench_proc --------------------------------------------- */

/* A broker started by bench_broker_start, in DIR (which the caller owns). */
struct bench_broker {
  pid_t pid;
  char sock[256], ctl[256], log[256];
};

/* Start BROKER with one LOCAL machine on BACKEND ("emu", with EMU_MEM
 * memory, or "cuda"), whose agent is AGENT (the real agent, or a wrapper
 * that runs it), sockets and log named NAME.* in DIR; wait (60 s at most)
 * until it is ready.  On failure nothing is left running and the log is
 * kept. */
int bench_broker_start(struct bench_broker *b, const char *broker,
                       const char *agent, const char *backend,
                       const char *emu_mem, const char *dir, const char *name);

/* SIGTERM, then SIGKILL after 10 s; reaps it.  Safe on a stopped broker. */
void bench_broker_stop(struct bench_broker *b);

/* The round trips the broker counted for its one client session (the
 * "round_trips" of the control socket's stats).  -ENOENT when there is
 * not exactly one session. */
int bench_broker_round_trips(const struct bench_broker *b, uint64_t *rt);

/*
 * Run ARGV under LD_PRELOAD=SHIM against broker B (TREMOTE_BROKER_SOCKET),
 * stderr appended to B's log.  When the program prints a line "READY" or
 * "PAUSE", the broker's round-trip count is read into rt[0] or rt[1] and a
 * line is written to the program's stdin.  Every other line of its stdout
 * goes into OUT (NUL-terminated, truncated to OUTLEN).  Returns 0, the
 * program's exit status (or 128 + signal) when not 0, or -errno.  A program
 * still running after TIMEOUT_S seconds is killed.
 */
int bench_run(const struct bench_broker *b, const char *shim, char *const argv[],
              char *out, size_t outlen, uint64_t rt[2], int timeout_s);

/* The number after "KEY=" at the start of a line of OUT; -ENOENT if none. */
int bench_kv(const char *out, const char *key, double *v);

#endif
