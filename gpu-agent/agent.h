/*
 * agent.h: what every part of tremote-gpu-agent shares: the bounds that
 * keep its memory finite, and logging.
 *
 * The agent is four modules around one network thread:
 *
 *   agent_main.c     command line, secret, signals, start and stop
 *   agent_h2.c       the network loop: epoll, sockets, nghttp2 server
 *                    sessions, routing of /v1/hello, /v1/session, /v1/lane
 *   agent_session.c  sessions and lanes: the queues between the network
 *                    thread and the execution threads
 *   agent_exec.c     the execution pool; agent_ops.c runs one record
 *   agent_module.c   the content-addressed module cache and uploads
 *   backends/        the device: emu.c, cuda.c + cuda_exec.c + cuda_dev.c
 *                    (the driver by dlopen), backend.h
 *
 * Threads: the network thread owns every socket, every nghttp2 session and
 * the session registry; execution threads own nothing but the lane they
 * run.  They meet in struct agt_lane (agent_session.h) under its mutex, and
 * execution threads wake the network thread through struct agt_inbox.
 */
#ifndef AGT_AGENT_H
#define AGT_AGENT_H

#include <stdint.h>
#include <time.h>

#include "log.h"

#define AGT_PROG "tremote-gpu-agent"

/*
 * HTTP/2 flow control (PROTOCOL.md §3): the windows both sides advertise.
 * 64 MiB per stream and 256 MiB per connection exceed the bandwidth-delay
 * product of a 50 ms, 1 GB/s link.
 */
#define AGT_STREAM_WINDOW (64 << 20)
#define AGT_CONN_WINDOW (256 << 20)
#define AGT_MAX_STREAMS 4096u
#define AGT_MAX_FRAME (1u << 20) /* largest DATA frame we accept */
/* nghttp2's limits against floods (agent_h2.c, make_callbacks). */
#define AGT_MAX_HEADER_LIST (16u << 10) /* advertised; ours are < 1 KiB */
#define AGT_MAX_CONTINUATIONS 8u
#define AGT_RST_BURST 1000u /* stream resets at once, then ... */
#define AGT_RST_RATE 33u    /* ... per second */
#define AGT_MAX_OUTBOUND_ACK 1000u
#define AGT_MAX_SETTINGS 32u

/*
 * A lane never holds more than about this many bytes of records that were
 * received but not yet executed.  Enforced with flow control: request bytes
 * are handed back to nghttp2 (nghttp2_session_consume) only once the
 * record they carried has executed, and each lane stream's local window is
 * cut to this size when it opens.  The peer was already promised
 * AGT_STREAM_WINDOW by SETTINGS, and HTTP/2 cannot take a promise back, so
 * the first burst on a stream may still reach that; from then on
 * WINDOW_UPDATEs are withheld until it is below this bound.  It must
 * exceed the bandwidth-delay product of the path, or a large host-to-device
 * copy waits for window: 16 MiB held a 20 ms, 1 GB/s path to 1.7x its
 * ideal time (tremote-bench, through tr_relay), 64 MiB to the ideal.
 * Host-to-device chunks mostly land straight in device memory, so this is
 * a bound, not what a lane usually holds.
 */
#define AGT_LANE_IN_MAX (64u << 20)

/*
 * A lane never holds more than this many bytes of replies produced but not
 * yet handed to nghttp2: the execution thread waits for the network thread
 * to drain them, so a 1 GiB device-to-host copy costs this much memory.
 */
#define AGT_LANE_OUT_MAX (8u << 20)
/* Unsent bytes the kernel may hold on a broker connection (tune_socket in
   agent_h2.c): a FIFO every lane's replies wait in, so short; 64 KiB is
   one frame while lanes share the connection (TR_H2_SHARED_FRAME). */
#define AGT_NOTSENT_LOWAT (64 << 10)
/* The receive buffer of a connection from a broker on this host: bytes in
   it are a FIFO queue every lane's requests wait in, behind uploads (see
   the broker's BRK_LOOPBACK_RCVBUF).  256 KiB, not 128: smaller cost a
   fifth of the host-to-device bandwidth.  Remote brokers keep autotuning. */
#define AGT_LOOPBACK_RCVBUF (256 << 10)
/*
 * Polling before sleeping (--spin-us).  A small call crosses two thread
 * hand-offs inside the agent, network thread to execution thread and back,
 * and each wake-up of a sleeping thread costs 10-30 us on a large idle
 * machine: more than the rest of the agent's part together.  So after work
 * the network thread and one idle execution thread poll for this long.
 * Not on small machines, where the poller would take the CPU away from the
 * thread doing the work.
 */
#define AGT_SPIN_US 50
#define AGT_SPIN_MIN_CPUS 8

/* Largest module (fatbin) MODULE_PUT assembles. */
#define AGT_MODULE_MAX (256u << 20)

/* Request bodies of /v1/hello larger than this are refused. */
#define AGT_HELLO_MAX (64u << 10)

/* ---- logging ------------------------------------------------------- */

/* The agent logs through the shared tools/common/log.h; these are its short
   names. */
#define agt_err(...) tr_log(TR_LOG_ERROR, __VA_ARGS__)
#define agt_warn(...) tr_log(TR_LOG_WARN, __VA_ARGS__)
#define agt_info(...) tr_log(TR_LOG_INFO, __VA_ARGS__)
#define agt_debug(...)                                                         \
  do {                                                                         \
    if (tr_log_level >= TR_LOG_DEBUG)                                          \
      tr_log(TR_LOG_DEBUG, __VA_ARGS__);                                       \
  } while (0)

/* Nanoseconds of CLOCK_MONOTONIC. */
static inline uint64_t agt_now_ns(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Milliseconds of CLOCK_MONOTONIC. */
static inline uint64_t agt_now_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#endif /* AGT_AGENT_H */
