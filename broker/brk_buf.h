/*
 * brk_buf.h: two small pure containers the broker is built on.
 *
 * struct brk_bq, a byte queue: bytes appended at the tail (copied in, or
 * by reference to memory someone else owns), looked at as an iovec array
 * from the head, and dropped from the head.
 * The outgoing body of every HTTP/2 stream and the connection's pending
 * output are byte queues; the iovec view is what lets DATA frames be
 * written with one writev() straight from the queue.
 *
 * struct brk_sb, a growable NUL-terminated string with printf and JSON
 * string escaping, for the control socket's replies.
 *
 * Neither does I/O; both are unit-tested.
 */
#ifndef BRK_BUF_H
#define BRK_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* ---- byte queue --------------------------------------------------------- */

struct brk_bq_seg;

struct brk_bq {
  struct brk_bq_seg *head, *tail;
  size_t len; /* bytes queued */
};

/* Segments hold at least this much, so small records share one. */
#define BRK_BQ_SEG_MIN (64u << 10)

void brk_bq_init(struct brk_bq *q);
/* Free every segment (calling the done callback of each by-reference
   append still queued); the queue is empty and reusable afterwards. */
void brk_bq_release(struct brk_bq *q);

/* Append copies of the n buffers, in order.  Returns 0 or -ENOMEM (then
   nothing was appended). */
int brk_bq_appendv(struct brk_bq *q, const struct iovec *iov, int n);
int brk_bq_append(struct brk_bq *q, const void *data, size_t len);

/*
 * Append len bytes at data BY REFERENCE: nothing is copied; the queue
 * reads data[0..len) whenever it is looked at (peekv, copyout) until
 * those bytes are dropped.  The caller keeps the memory valid and mapped
 * until done(arg) is called, which happens exactly once: when the last of
 * these bytes is dropped, or when the queue is released with some of them
 * still queued.  Copied appends after it go to a new owned segment, never
 * into data.  done runs inside brk_bq_drop/brk_bq_release and must not
 * touch the queue.  len == 0 calls done at once.  Returns 0, or -ENOMEM
 * (nothing appended, done not called: the memory is still the caller's).
 */
int brk_bq_append_ref(struct brk_bq *q, const void *data, size_t len,
                      void (*done)(void *arg), void *arg);

/*
 * Describe the first min(max, q->len) bytes as up to maxiov iovecs
 * pointing into the queue (valid until the queue is next changed at its
 * head).  Returns the number of iovecs; *bytes gets the bytes covered
 * (less than asked if maxiov was too small).
 */
int brk_bq_peekv(const struct brk_bq *q, struct iovec *iov, int maxiov,
                 size_t max, size_t *bytes);

/* Copy the first len bytes out (len <= q->len) without dropping them. */
void brk_bq_copyout(const struct brk_bq *q, void *out, size_t len);

/* Drop the first n bytes (n <= q->len); by-reference appends wholly
   dropped have their done callback called. */
void brk_bq_drop(struct brk_bq *q, size_t n);

/* ---- string builder ------------------------------------------------------ */

struct brk_sb {
  char *s;    /* NUL-terminated, owned; never NULL after init */
  size_t len; /* without the NUL */
  size_t cap;
  int oom;    /* an append failed: the content is truncated */
};

void brk_sb_init(struct brk_sb *b);
void brk_sb_release(struct brk_sb *b);
void brk_sb_putc(struct brk_sb *b, char c);
void brk_sb_puts(struct brk_sb *b, const char *s);
void brk_sb_printf(struct brk_sb *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Append s as a JSON string literal, quotes included: ", \ and control
   characters escaped, bytes >= 0x80 passed through (UTF-8 stays UTF-8;
   invalid UTF-8 is replaced by U+FFFD so the output always parses). */
void brk_sb_json_str(struct brk_sb *b, const char *s);

/* ---- a minimal JSON request reader --------------------------------------- */

/*
 * The control socket's requests are one flat JSON object per line:
 * {"version":1,"op":"stats"}.  brk_json_flat() checks that text[0..len) is
 * exactly one such object whose values are strings, numbers, true, false
 * or null (no nesting), and calls fn(key, value, is_string, ctx) for each
 * member with unescaped key and value (numbers and literals as written).
 * Returns 0, or -EINVAL with *why set to a static message.  Keys and
 * values longer than 255 bytes are rejected.
 */
int brk_json_flat(const char *text, size_t len,
                  void (*fn)(const char *key, const char *value, int is_string,
                             void *ctx),
                  void *ctx, const char **why);

#endif /* BRK_BUF_H */
