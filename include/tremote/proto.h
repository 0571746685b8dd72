/*
 * tremote wire format: the records that travel shim -> broker (in shared
 * memory rings) and broker -> agent (in HTTP/2 DATA frames), and back.
 *
 * docs/PROTOCOL.md is the prose reference; this header is the contract the
 * code is held to.  Everything here is pure: no I/O, no allocation except
 * where a function says so.
 *
 * A record is a 32-byte header followed by payload_len bytes of payload.
 * All integers are little-endian and are packed and unpacked by hand
 * (tr_put_u32() etc.), never by casting a struct onto the bytes, so the
 * format does not depend on the host's layout rules.
 *
 *   offset size field
 *   0      4    magic        TR_PROTO_MAGIC ("TRM1" as bytes 54 52 4d 31)
 *   4      2    version      protocol version the record is written in
 *   6      2    opcode       one of TR_OPCODES below; 0 is PAD (rings only)
 *   8      2    flags        TR_F_* below
 *   10     2    device       the client's CUDA ordinal (shim->broker leg);
 *                            0 on the broker->agent leg (a stream is bound
 *                            to one machine)
 *   12     4    status       replies: 0 or a cudaError_t value (< 0x10000),
 *                            or a TR_ST_* protocol status (>= 0x10000);
 *                            requests: 0
 *   16     8    request_id   chosen by the requester, echoed by the reply
 *   24     4    payload_len  bytes that follow the header
 *   28     4    aux          opcode-specific small value; 0 if unused
 *
 * Opcode payloads are described next to each opcode in TR_OPCODES and in
 * docs/PROTOCOL.md.  The broker never decodes them: it routes on the header
 * (device, flags) and expands shared-memory references (TR_F_SHMREF).
 */
#ifndef TREMOTE_PROTO_H
#define TREMOTE_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define TR_PROTO_MAGIC 0x314d5254u /* bytes "TRM1" */
/* 2: LAUNCH's fixed part grew from 56 to 72 bytes (flags, cluster). */
#define TR_PROTO_VERSION_MIN 2
#define TR_PROTO_VERSION_MAX 2
#define TR_HDR_SIZE 32u

/*
 * Largest payload of one record.  Bulk data is cut into chunks of at most
 * TR_CHUNK_MAX bytes, so a record is a chunk plus its small fixed fields.
 * The decoder rejects anything larger: no peer can make another allocate
 * more than this per record.
 */
#define TR_CHUNK_MAX (1u << 20)
#define TR_PAYLOAD_MAX (TR_CHUNK_MAX + 4096u)

/* Header flags. */
#define TR_F_REPLY 0x0001u      /* this record answers request_id */
#define TR_F_WANT_REPLY 0x0002u /* the requester waits: a round trip */
#define TR_F_SHMREF 0x0004u     /* last 24 payload bytes are a tr_shmref
                                   (ring leg only, see below) */
#define TR_F_MORE 0x0008u       /* reply: more reply records follow for the
                                   same request_id */
#define TR_F_OUTPUT 0x0010u     /* reply: the session has device output
                                   (printf, fault reports) waiting; a
                                   SYNCHRONIZE collects it */
#define TR_F_DEST 0x0020u       /* request (ring leg only): the last 24
                                   payload bytes are a tr_shmref naming a
                                   region range the reply's payload bytes
                                   are written to (MEMCPY_D2H) */
#define TR_F_PLACED 0x0040u     /* reply (ring leg only): the payload is a
                                   u64, the count of this record's bytes
                                   the broker wrote at the TR_F_DEST range */
#define TR_F_DEFERRED 0x0080u   /* final reply: the status is an earlier
                                   record's deferred error; this call
                                   itself worked and the payload is its
                                   own (data, never a diagnostic); only
                                   to a peer that agreed TR_CAP_DEFERRED */
#define TR_F_KNOWN 0x00ffu

/*
 * Protocol statuses, kept apart from CUDA errors: a status >= TR_ST_BASE
 * says the transport or the protocol failed, not the CUDA call.
 */
#define TR_ST_BASE 0x10000u
#define TR_ST_BAD_RECORD (TR_ST_BASE + 1)   /* malformed payload */
#define TR_ST_BAD_OPCODE (TR_ST_BASE + 2)   /* opcode unknown to the peer */
#define TR_ST_VERSION (TR_ST_BASE + 3)      /* no common protocol version */
#define TR_ST_NEED_MODULE (TR_ST_BASE + 4)  /* agent lacks the module's bytes:
                                               upload with MODULE_PUT */
#define TR_ST_AUTH (TR_ST_BASE + 5)         /* wrong or missing secret */
#define TR_ST_MACHINE_LOST (TR_ST_BASE + 6) /* broker lost the machine */
#define TR_ST_BAD_HANDLE (TR_ST_BASE + 7)   /* unknown client handle */

/*
 * Lane marks.  An event handle with bit 63 set names a lane of the same
 * session instead of an event: "generation" g of the mark of lane L is
 * reached once L has run its record with request id g (request ids of a
 * lane increase), or once L has ended.  EVENT_WAIT and EVENT_QUERY accept
 * marks, so a lane can wait for another's work without that lane recording
 * anything (how the legacy default stream is ordered between threads);
 * client handles never set the bit.
 */
#define TR_LANE_MARK_BIT (1ull << 63)
static inline uint64_t tr_lane_mark(uint64_t lane_id)
{
  return TR_LANE_MARK_BIT | lane_id;
}

/*
 * Capability bits exchanged in HELLO.  The chosen set is the intersection;
 * a peer never sends an opcode whose capability was not agreed.
 */
#define TR_CAP_EXEC 0x0001u        /* device executes kernels */
#define TR_CAP_MODULE_CACHE 0x0002u /* content-addressed module cache */
#define TR_CAP_LANE_MOVE 0x0004u /* a lane's stream may move to another
                                    connection (tremote-lane-move) */
#define TR_CAP_DEFERRED 0x0008u  /* the receiver takes TR_F_DEFERRED on
                                    replies: only then is it sent */

/*
 * The opcode table.  X(number, NAME, flags-hint, "payload summary")
 * Numbers are explicit and never reused: retire an opcode by commenting it
 * out and leaving its number taken.
 *
 *   request payload -> reply payload
 */
#define TR_OPCODES(X)                                                          \
  X(0, PAD, 0, "ring filler: skip payload_len bytes; never on the wire")       \
  /* 1..15: session control */                                                 \
  X(1, HELLO, 0, "tr_hello -> tr_hello + role data (see PROTOCOL.md)")         \
  X(2, LANE_OPEN, 0, "[i32 priority] -> tr_lane_info; fds: memfd, 2 efds")     \
  X(3, LANE_CLOSE, 0, "u32 lane -> empty")                                     \
  X(4, NOP, 0, "empty -> empty: the null call, executed by the agent")         \
  X(5, STATS, 0, "empty -> JSON text (control socket)")                        \
  X(6, REGION_ADD, 0, "u64 size; fd: sealed memfd -> u32 region id")           \
  X(7, REGION_DEL, 0, "u32 region id -> empty")                                \
  /* 16..31: device */                                                         \
  X(16, SYNCHRONIZE, 0, "empty -> device output (status: deferred error)")     \
  X(17, OUTPUT, 0, "empty -> device output (no wait for the device)")         \
  /* 32..47: memory */                                                         \
  X(32, MALLOC, 0, "u64 size -> u64 device pointer")                           \
  X(33, FREE, 0, "u64 device pointer -> empty")                                \
  X(34, MEMCPY_H2D, 0, "u64 dst, u64 len, len bytes -> empty")                 \
  X(35, MEMCPY_D2H, 0, "u64 src, u64 len -> len bytes in replies of <=1 MiB")  \
  X(36, MEMCPY_D2D, 0, "u64 dst, u64 src, u64 len -> empty")                   \
  X(37, MEMSET, 0, "u64 dst, u64 len, u32 byte value -> empty")                \
  X(38, MEM_GET_INFO, 0, "empty -> u64 free, u64 total")                       \
  X(39, RAND_FILL, 0, "u64 dst, u64 n, u32 dist, u32 0, u64 seed, u64 offset") \
  /* 48..63: modules and functions */                                          \
  X(48, MODULE_PUT, 0, "hash[16], u64 total, u64 offset, bytes -> empty")      \
  X(49, MODULE_LOAD, 0, "u64 module handle, hash[16] -> empty or NEED_MODULE") \
  X(50, MODULE_UNLOAD, 0, "u64 module handle -> empty")                        \
  X(51, FUNCTION_GET, 0, "u64 module, u64 function handle, u32 len, name")     \
  X(52, SYMBOL_GET, 0, "u64 module, u32 len, name -> u64 address, u64 size")   \
  X(53, FUNC_ATTRS, 0, "u64 function handle -> tr_fattrs")                      \
  /* 64..79: execution */                                                      \
  X(64, LAUNCH, 0, "tr_launch fixed part, packed parameters -> empty")      \
  /* 80..95: events (streams are ordering on the client side) */              \
  X(80, EVENT_RECORD, 0, "u64 event, u64 generation [, u64 flags] -> empty") \
  X(81, EVENT_QUERY, 0, "u64 event, u64 generation -> empty or NotReady")     \
  X(82, EVENT_ELAPSED, 0, "u64 start, u64 stop -> i64 nanoseconds")           \
  X(83, EVENT_DESTROY, 0, "u64 event -> empty")                             \
  X(84, EVENT_WAIT, 0, "u64 event, u64 generation -> empty (the lane waits)") \
  /* 96..111: graphs */                                                       \
  X(96, GRAPH_PUT, 0, "u64 graph, u64 total, u64 offset, records -> empty")    \
  X(97, GRAPH_LAUNCH, 0, "u64 graph -> empty (runs its records in order)")     \
  X(98, GRAPH_DESTROY, 0, "u64 graph -> empty")

enum tr_opcode {
#define TR_OP_ENUM_(num, name, fl, doc) TR_OP_##name = num,
  TR_OPCODES(TR_OP_ENUM_)
#undef TR_OP_ENUM_
};

/* Name of an opcode ("MALLOC"), or NULL if the number is not in the table. */
const char *tr_op_name(uint16_t opcode);

/* ---- explicit little-endian packing -------------------------------- */

static inline void tr_put_u16(uint8_t *p, uint16_t v)
{
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}
static inline void tr_put_u32(uint8_t *p, uint32_t v)
{
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}
static inline void tr_put_u64(uint8_t *p, uint64_t v)
{
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t tr_get_u16(const uint8_t *p)
{
  return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t tr_get_u32(const uint8_t *p)
{
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}
static inline uint64_t tr_get_u64(const uint8_t *p)
{
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}

/* ---- header --------------------------------------------------------- */

/* The unpacked header.  Host layout; never sent as is. */
struct tr_hdr {
  uint32_t magic;
  uint16_t version;
  uint16_t opcode;
  uint16_t flags;
  uint16_t device;
  uint32_t status;
  uint64_t request_id;
  uint32_t payload_len;
  uint32_t aux;
};

/* Fill a request header with magic and the current version. */
void tr_hdr_init(struct tr_hdr *h, uint16_t opcode, uint16_t flags,
                 uint64_t request_id, uint32_t payload_len);

/* Pack h into out[TR_HDR_SIZE]. */
void tr_hdr_pack(const struct tr_hdr *h, uint8_t out[TR_HDR_SIZE]);

/* Unpack in[TR_HDR_SIZE] into h without checking anything. */
void tr_hdr_unpack(const uint8_t in[TR_HDR_SIZE], struct tr_hdr *h);

/*
 * Check a header received from a peer: magic, a version in
 * [TR_PROTO_VERSION_MIN, TR_PROTO_VERSION_MAX], a known opcode (PAD is
 * accepted only if allow_pad), only known flags, payload_len <= max_payload.
 * Returns 0, or a negative errno with *why set to a static message:
 * -EPROTO (magic, version, flags), -EBADMSG (unknown opcode),
 * -EMSGSIZE (payload too large).
 */
int tr_hdr_check(const struct tr_hdr *h, uint32_t max_payload, int allow_pad,
                 const char **why);

/* ---- shared-memory references (ring leg only) ----------------------- */

/*
 * When TR_F_SHMREF is set on a record in a ring, the last TR_SHMREF_SIZE
 * bytes of its payload are a tr_shmref and the logical payload is the
 * payload before it followed by the referenced bytes.  The broker expands
 * the reference before the record goes on the wire, so TR_F_SHMREF is never
 * seen by an agent.
 *
 *   0  u32 area     TR_AREA_UP (shim writes, broker reads), TR_AREA_DOWN, or
 *                   TR_AREA_REGION + id: a region (below)
 *   4  u32 reserved 0
 *   8  u64 pos      areas: monotonic byte position in that area (offset =
 *                   pos % size); regions: the offset in the region
 *   16 u64 len      bytes; pos % size + len <= size (never wraps)
 *
 * Regions: page-locked host memory (cudaMallocHost, cudaHostAlloc) lives in
 * sealed memfds the shim shares with the broker (REGION_ADD on the socket),
 * so a copy from it is sent from there (TR_F_SHMREF naming the region) and
 * a copy into it is written there by the broker (TR_F_DEST): one copy
 * fewer each way than through the areas.
 */
#define TR_SHMREF_SIZE 24u
#define TR_AREA_UP 0u
#define TR_AREA_DOWN 1u
#define TR_AREA_REGION 16u
#define TR_REGION_MAX 4096u /* regions per client */

struct tr_shmref {
  uint32_t area;
  uint64_t pos;
  uint64_t len;
};
void tr_shmref_pack(const struct tr_shmref *r, uint8_t out[TR_SHMREF_SIZE]);
void tr_shmref_unpack(const uint8_t in[TR_SHMREF_SIZE], struct tr_shmref *r);

/* ---- handshake ------------------------------------------------------- */

/*
 * HELLO payload (both directions):
 *   0  u16 min_version   lowest version the sender speaks
 *   2  u16 max_version   highest version the sender speaks
 *   4  u32 role          TR_ROLE_*
 *   8  u64 caps          TR_CAP_* the sender offers (reply: agreed set)
 *   16 u32 pid           sender's pid (informational)
 *   20 u32 extra_len     bytes of role-specific data that follow
 *   24 ...               extra: reply from broker: tr_devinfo list;
 *                        reply from agent: tr_devinfo of its device
 * The reply's min_version == max_version == the chosen version.
 */
#define TR_HELLO_SIZE 24u
#define TR_ROLE_SHIM 1u
#define TR_ROLE_BROKER 2u
#define TR_ROLE_AGENT 3u

/*
 * A client's HELLO may carry options after the fixed part (extra_len
 * bytes): entries of u16 tag, u16 0, u32 len, len bytes.  A broker skips
 * tags it does not know.
 *   TR_HELLO_VISIBLE: TREMOTE_VISIBLE_DEVICES as the program found it
 *   (absent when unset), at most TR_HELLO_VISIBLE_MAX bytes.
 */
#define TR_HELLO_VISIBLE 1u
#define TR_HELLO_VISIBLE_MAX 4096u

struct tr_hello {
  uint16_t min_version;
  uint16_t max_version;
  uint32_t role;
  uint64_t caps;
  uint32_t pid;
  uint32_t extra_len;
};
void tr_hello_pack(const struct tr_hello *h, uint8_t out[TR_HELLO_SIZE]);
int tr_hello_unpack(const uint8_t *in, size_t len, struct tr_hello *h);

/*
 * Negotiate: the highest version both speak.  Returns it, or -1 if the
 * ranges do not overlap (then the reply carries status TR_ST_VERSION and a
 * message naming both ranges).
 */
int tr_hello_choose(const struct tr_hello *mine, const struct tr_hello *theirs);

/* ---- device description -------------------------------------------- */

/*
 * What a machine tells about its device, independent of cudaDeviceProp's
 * layout (which differs between CUDA 12 and 13):
 *
 *   0   u32 size of this devinfo in bytes (so it can grow)
 *   4   u32 nattr
 *   8   u64 total_mem
 *   16  u64 va_base      the device's address window (set by the broker)
 *   24  u64 va_size
 *   32  u64 caps         TR_CAP_* of this device
 *   40  u8  uuid[16]
 *   56  u8  name[64]     NUL-padded
 *   120 u32 machine_index (broker registry index)
 *   124 u32 reserved
 *   128 nattr x { u32 attr (cudaDeviceAttr number), i32 value }
 */
#define TR_DEVINFO_FIXED 128u
#define TR_DEVINFO_MAX_ATTR 256u
#define TR_DEVINFO_NAME 64u

/* The agent's /v1/status payload (agent_routes.c, PROTOCOL.md): memory,
   sessions and NVML's figures.  Agents before the figures sent 24. */
/* The broker's HELLO role data: u32 ndev, u32 flags, ndev device
   descriptions, then, with this flag, each device's machine name as a u8
   length and its bytes (at most TR_MACHINE_NAME_MAX - 1). */
#define TR_HELLO_NAMES 1u
#define TR_MACHINE_NAME_MAX 32

#define TR_STATUS_SIZE 72
#define TR_STATUS_SIZE_V0 24

struct tr_devinfo {
  uint64_t total_mem;
  uint64_t va_base;
  uint64_t va_size;
  uint64_t caps;
  uint8_t uuid[16];
  char name[TR_DEVINFO_NAME];
  uint32_t machine_index;
  uint32_t nattr;
  struct {
    uint32_t attr;
    int32_t value;
  } attr[TR_DEVINFO_MAX_ATTR];
};

/* Bytes tr_devinfo_pack() writes for d. */
size_t tr_devinfo_size(const struct tr_devinfo *d);
void tr_devinfo_pack(const struct tr_devinfo *d, uint8_t *out);
/* Unpack one devinfo from in[0..len); *used gets its size.  -EBADMSG if
   malformed. */
int tr_devinfo_unpack(const uint8_t *in, size_t len, struct tr_devinfo *d,
                      size_t *used);
/* Value of attribute attr, or -ENOENT. */
int tr_devinfo_attr(const struct tr_devinfo *d, uint32_t attr, int32_t *value);

/* ---- device address windows ----------------------------------------- */

/*
 * Each machine of a broker owns the window
 *   [TR_VA_BASE + index * TR_VA_WINDOW, + TR_VA_WINDOW)
 * in every program (reserved PROT_NONE by the shim) and on its agent.
 * See docs/ARCHITECTURE.md, "Device address space".
 */
#define TR_VA_BASE 0x200000000000ull /* 32 TiB */
#define TR_VA_WINDOW (1ull << 39)    /* 512 GiB per device */
#define TR_VA_MAX_WINDOWS 64u

/*
 * The windows a broker of this build hands out.  A ThreadSanitizer build
 * of the agent can only map memory inside TSan's application range
 * [0x7e8000000000, 0x7f0000000000), one TR_VA_WINDOW wide, so TSan builds
 * use smaller windows there: 8 GiB each, so that all TR_VA_MAX_WINDOWS
 * fit in the range's lower half.  Its upper half is not safe: the kernel
 * randomises the mmap base over the terabyte below the stack
 * (mmap_rnd_bits 28 on x86-64), so now and then libraries and thread
 * stacks start just below 0x7f0000000000 and a window there is "already
 * in use" (test_agent's window 31 failed so, once in many runs, with
 * 16 GiB windows).  Clients take the windows from the device
 * descriptions, never from these constants.
 */
#if defined(__SANITIZE_THREAD__)
#define TR_VA_BUILD_BASE 0x7e8000000000ull
#define TR_VA_BUILD_WINDOW (8ull << 30)
#else
#define TR_VA_BUILD_BASE TR_VA_BASE
#define TR_VA_BUILD_WINDOW TR_VA_WINDOW
#endif

/* ---- launch ----------------------------------------------------------- */

/*
 * LAUNCH payload:
 *   0  u64 function handle
 *   8  u32 grid x, y, z
 *   20 u32 block x, y, z
 *   32 u32 dynamic shared memory bytes
 *   36 u32 params_size
 *   40 u64 stream handle (0 = legacy default stream)
 *   48 u32 stack bytes per thread (cudaLimitStackSize; 0 = the device's
 *          default)
 *   52 i32 priority: the stream's (cudaStreamCreateWithPriority) or the
 *          launch's (cudaLaunchAttributePriority), from 0 (the default)
 *          down to TR_PRIORITY_GREATEST, lower being more urgent; the
 *          agent clamps other values into that range, as CUDA does
 *   56 u32 flags: TR_LAUNCH_F_* (others are a malformed record)
 *   60 u32 cluster x, y, z (cudaLaunchAttributeClusterDimension; 0 means
 *          1, and 1, 1, 1 is no cluster)
 *   72 params_size bytes of packed parameters
 */
#define TR_LAUNCH_FIXED 72u
/* Every block resident at once, as cudaLaunchCooperativeKernel asks (for
   grid-wide synchronisation). */
#define TR_LAUNCH_F_COOPERATIVE 1u

/* EVENT_RECORD's optional flags (a third u64; others are a malformed
   record).  MARK: an event only waited for, never timed (a stream's own
   mark): the agent may record it together with the launches next to it,
   once they have all run, rather than one launch at a time. */
#define TR_EVENT_F_MARK 1u

/*
 * Stream priorities, as cudaDeviceGetStreamPriorityRange reports them:
 * least 0, greatest -5 (every GPU since compute capability 7.0).  A lane
 * opened for a stream carries its stream's priority (LANE_OPEN's payload,
 * the `tremote-priority` header), and the agent runs more urgent lanes
 * first; a launch carries its own (above), which the device honours.
 */
#define TR_PRIORITY_LEAST 0
#define TR_PRIORITY_GREATEST (-5)

static inline int tr_priority_clamp(int p)
{
  return p > TR_PRIORITY_LEAST ? TR_PRIORITY_LEAST
         : p < TR_PRIORITY_GREATEST ? TR_PRIORITY_GREATEST : p;
}

/* ---- function attributes and device output ---------------------------- */

/*
 * FUNC_ATTRS reply (cudaFuncAttributes as the device sees the kernel),
 * TR_FATTRS_SIZE bytes, all u32:
 *   0  shared_size_bytes     static shared memory
 *   4  const_size_bytes      user constant memory
 *   8  local_size_bytes      per-thread local memory (frame)
 *   12 max_threads_per_block
 *   16 num_regs
 *   20 ptx_version           major * 10 + minor
 *   24 binary_version        compute capability major * 10 + minor
 *   28 params_size           bytes of packed parameters
 */
#define TR_FATTRS_SIZE 32u

/*
 * SYNCHRONIZE reply payload: the session's device output in the order it
 * was produced, as records
 *   0 u8 fd (1 = the program's stdout: printf; 2 = its stderr: fault
 *          reports), u8 pad[3], u32 len, then len bytes of text.
 * At most TR_OUTPUT_REPLY_MAX bytes travel per reply; a reply still
 * carrying TR_F_OUTPUT means more is waiting.
 */
#define TR_OUTPUT_REPLY_MAX (64u << 10)

/*
 * A graph (GRAPH_PUT) is a sequence of whole records, each a packed header
 * and its payload, as they would have travelled one by one; only
 * no-reply records of these opcodes may appear: LAUNCH, MEMSET,
 * MEMCPY_D2D, EVENT_RECORD.  At most TR_GRAPH_MAX bytes.
 */
#define TR_GRAPH_MAX (64u << 20)

/*
 * A failed call's reply may carry a diagnostic as its payload: one line of
 * UTF-8 text without a NUL (say, which PTX instruction the emulated device
 * does not implement).  Requesters print it; they never parse it.
 */


/* ---- incremental stream decoder (the wire leg) ----------------------- */

/*
 * Turns a byte stream (HTTP/2 DATA, in pieces of any size) into records.
 * It owns one buffer of at most TR_HDR_SIZE + max_payload bytes.
 *
 *   tr_decoder_init(&d, max_payload);
 *   while (bytes) {
 *     n = tr_decoder_feed(&d, p, len, &h, &payload);
 *     if (n < 0) -> stream is corrupt: d.why says why; reset the stream
 *     p += n; len -= n;
 *     if (payload != NULL or h.payload_len == 0 after a record) use it
 *   }
 *
 * tr_decoder_feed() consumes bytes until one record is complete or the
 * input is exhausted.  Returns the number of bytes consumed and sets
 * *complete to 1 when h/payload describe a whole record (payload is valid
 * until the next call).  Returns a negative errno on a bad header.
 */
/*
 * Where a record's payload goes, if not into the decoder's own buffer:
 * called once per record, right after its header passed the checks, for
 * h->payload_len bytes (also when that is 0: return any non-NULL pointer).
 * The memory belongs to the caller; NULL fails the feed with -ENOMEM.
 */
typedef uint8_t *(*tr_decoder_alloc_fn)(void *arg, const struct tr_hdr *h);

/*
 * Split mode: where the rest of a record's payload goes, chosen after its
 * first bytes were seen.  Called once per record, when the header passed
 * the checks and prefix_len = min(prefix, h->payload_len) payload bytes
 * are buffered; `prefix` points at them (inside the decoder, valid only
 * during the call; prefix_len may be 0, then it is still a valid
 * pointer).  Returns where the remaining h->payload_len - prefix_len bytes
 * are written (any non-NULL pointer when that is 0).  The memory belongs
 * to the caller; NULL fails the feed with -ENOMEM, sticky as every error.
 */
typedef uint8_t *(*tr_decoder_split_fn)(void *arg, const struct tr_hdr *h,
                                        const uint8_t *prefix,
                                        uint32_t prefix_len);

struct tr_decoder {
  uint32_t max_payload;
  uint32_t have;     /* bytes of the current record buffered */
  uint8_t *buf;      /* TR_HDR_SIZE, + max_payload without alloc or split,
                        + prefix in split mode; owned */
  tr_decoder_alloc_fn alloc; /* NULL: payloads land in buf */
  tr_decoder_split_fn split; /* split mode when not NULL (alloc is NULL) */
  void *alloc_arg;           /* alloc's or split's arg */
  uint32_t prefix;           /* split mode: bytes seen before split */
  uint32_t pre;              /* this record's min(prefix, payload_len) */
  uint8_t *dst;      /* where the current record's payload goes (split
                        mode: its rest; NULL until split was called) */
  struct tr_hdr hdr; /* valid once have >= TR_HDR_SIZE */
  const char *why;   /* after an error: static text */
  int err;           /* sticky: once a header is bad, every later feed
                        fails with the same error (the stream is dead) */
};
int tr_decoder_init(struct tr_decoder *d, uint32_t max_payload);
/*
 * The same, but each payload is written straight into memory from
 * alloc(arg, header), saving a copy of every bulk byte: *payload from
 * tr_decoder_feed() then points into the caller's memory.  If the stream
 * dies halfway through a record, the caller still owns (and frees) the
 * memory alloc handed out last.
 */
int tr_decoder_init_alloc(struct tr_decoder *d, uint32_t max_payload,
                          tr_decoder_alloc_fn alloc, void *arg);
/*
 * Split mode: like tr_decoder_init_alloc, but the caller sees the first
 * `prefix` payload bytes of each record (fewer when the payload is
 * shorter) before it says, through fn(arg, ...), where the rest goes; the
 * prefix bytes are copied nowhere else by the decoder.  On a complete
 * record, *payload from tr_decoder_feed() points at the memory fn
 * returned, which holds payload bytes [prefix_len, h.payload_len): the
 * rest only, not the whole payload.  If the stream dies halfway through a
 * record, the caller still owns (and frees) the memory fn handed out last.
 * Returns 0 or -ENOMEM.
 */
int tr_decoder_init_split(struct tr_decoder *d, uint32_t max_payload,
                          uint32_t prefix, tr_decoder_split_fn fn, void *arg);
void tr_decoder_release(struct tr_decoder *d);
long tr_decoder_feed(struct tr_decoder *d, const uint8_t *in, size_t len,
                     int *complete, struct tr_hdr *h, const uint8_t **payload);
/*
 * Where the next payload bytes of the current record will be written, and
 * how many are still to come (*room); NULL when the decoder is not inside
 * a payload whose destination is chosen.  A receiver may read input
 * straight there and then feed the decoder those same bytes, in place:
 * tr_decoder_feed() does not copy bytes onto themselves.
 */
uint8_t *tr_decoder_room(const struct tr_decoder *d, size_t *room);

#endif /* TREMOTE_PROTO_H */
