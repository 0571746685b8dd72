/*
 * brk_buf.c: see brk_buf.h.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brk_buf.h"

/* ---- byte queue --------------------------------------------------------- */

/*
 * A segment either owns its bytes (base == data, cap bytes of room) or
 * refers to someone else's (base points outside, cap == end, done set):
 * an external segment never has room, so appends always copy into an
 * owned segment after it and never write into the referenced memory.
 */
struct brk_bq_seg {
  struct brk_bq_seg *next;
  unsigned char *base;    /* live bytes are base[start..end) */
  size_t start, end, cap;
  void (*done)(void *arg); /* external only: called once when freed */
  void *done_arg;
  unsigned char data[];
};

/* Unlinked already: free it, telling the owner of external bytes. */
static void seg_free(struct brk_bq_seg *s)
{
  void (*done)(void *) = s->done;
  void *arg = s->done_arg;

  free(s);
  if (done)
    done(arg);
}

void brk_bq_init(struct brk_bq *q)
{
  memset(q, 0, sizeof(*q));
}

void brk_bq_release(struct brk_bq *q)
{
  struct brk_bq_seg *s, *next;

  s = q->head;
  /* Empty the queue first: a done callback sees a consistent (empty)
     queue. */
  brk_bq_init(q);
  for (; s; s = next) {
    next = s->next;
    seg_free(s);
  }
}

int brk_bq_appendv(struct brk_bq *q, const struct iovec *iov, int n)
{
  struct brk_bq_seg *t = q->tail, *fresh = NULL;
  size_t total = 0, room, need;

  for (int i = 0; i < n; i++)
    total += iov[i].iov_len;
  if (!total)
    return 0;
  room = t ? t->cap - t->end : 0;
  if (total > room) {
    need = total - room;
    if (need < BRK_BQ_SEG_MIN)
      need = BRK_BQ_SEG_MIN;
    fresh = malloc(sizeof(*fresh) + need);
    if (!fresh)
      return -ENOMEM;
    fresh->next = NULL;
    fresh->base = fresh->data;
    fresh->start = fresh->end = 0;
    fresh->cap = need;
    fresh->done = NULL;
    fresh->done_arg = NULL;
  }
  for (int i = 0; i < n; i++) {
    const unsigned char *p = iov[i].iov_base;
    size_t left = iov[i].iov_len;

    while (left) {
      size_t take;

      if (!t || t->end == t->cap) {
        /* Only one fresh segment is ever needed: it was sized for the
           rest. */
        if (t)
          t->next = fresh;
        else
          q->head = fresh;
        q->tail = t = fresh;
        fresh = NULL;
      }
      take = t->cap - t->end;
      if (take > left)
        take = left;
      memcpy(t->base + t->end, p, take);
      t->end += take;
      p += take;
      left -= take;
    }
  }
  free(fresh); /* unused if the tail had room after all */
  q->len += total;
  return 0;
}

int brk_bq_append(struct brk_bq *q, const void *data, size_t len)
{
  struct iovec iov = {(void *)data, len};

  return brk_bq_appendv(q, &iov, 1);
}

int brk_bq_append_ref(struct brk_bq *q, const void *data, size_t len,
                      void (*done)(void *arg), void *arg)
{
  struct brk_bq_seg *s;

  if (!len) {
    if (done)
      done(arg);
    return 0;
  }
  s = malloc(sizeof(*s));
  if (!s)
    return -ENOMEM;
  s->next = NULL;
  s->base = (unsigned char *)data;
  s->start = 0;
  s->end = s->cap = len; /* no room: later appends go to a new segment */
  s->done = done;
  s->done_arg = arg;
  if (q->tail)
    q->tail->next = s;
  else
    q->head = s;
  q->tail = s;
  q->len += len;
  return 0;
}

int brk_bq_peekv(const struct brk_bq *q, struct iovec *iov, int maxiov,
                 size_t max, size_t *bytes)
{
  const struct brk_bq_seg *s;
  size_t got = 0;
  int n = 0;

  for (s = q->head; s && n < maxiov && got < max; s = s->next) {
    size_t take = s->end - s->start;

    if (!take)
      continue;
    if (take > max - got)
      take = max - got;
    iov[n].iov_base = (void *)(s->base + s->start);
    iov[n].iov_len = take;
    n++;
    got += take;
  }
  *bytes = got;
  return n;
}

void brk_bq_copyout(const struct brk_bq *q, void *out, size_t len)
{
  const struct brk_bq_seg *s;
  unsigned char *o = out;

  for (s = q->head; s && len; s = s->next) {
    size_t take = s->end - s->start;

    if (take > len)
      take = len;
    memcpy(o, s->base + s->start, take);
    o += take;
    len -= take;
  }
}

void brk_bq_drop(struct brk_bq *q, size_t n)
{
  if (n > q->len)
    n = q->len;
  q->len -= n;
  while (n) {
    struct brk_bq_seg *s = q->head;
    size_t have = s->end - s->start;

    if (n < have) {
      s->start += n;
      return;
    }
    n -= have;
    q->head = s->next;
    if (!q->head)
      q->tail = NULL;
    seg_free(s);
  }
  /* Keep one emptied segment's worth of churn away: an empty queue frees
     its last segment too, so an idle stream holds no memory.  (Only an
     owned segment can be empty here: an external one is freed as soon as
     its last byte is dropped, above.) */
  if (q->head && q->head->start == q->head->end && !q->head->next) {
    struct brk_bq_seg *s = q->head;

    q->head = q->tail = NULL;
    seg_free(s);
  }
}

/* ---- string builder ------------------------------------------------------ */

static char sb_empty[1];

void brk_sb_init(struct brk_sb *b)
{
  memset(b, 0, sizeof(*b));
  b->s = sb_empty;
}

void brk_sb_release(struct brk_sb *b)
{
  if (b->s != sb_empty)
    free(b->s);
  brk_sb_init(b);
}

static int sb_grow(struct brk_sb *b, size_t more)
{
  size_t cap;
  char *s;

  if (b->oom)
    return -1;
  if (b->len + more + 1 <= b->cap)
    return 0;
  cap = b->cap ? b->cap : 256;
  while (cap < b->len + more + 1)
    cap *= 2;
  s = realloc(b->s == sb_empty ? NULL : b->s, cap);
  if (!s) {
    b->oom = 1;
    return -1;
  }
  if (b->s == sb_empty)
    s[0] = 0;
  b->s = s;
  b->cap = cap;
  return 0;
}

void brk_sb_putc(struct brk_sb *b, char c)
{
  if (sb_grow(b, 1) < 0)
    return;
  b->s[b->len++] = c;
  b->s[b->len] = 0;
}

void brk_sb_puts(struct brk_sb *b, const char *s)
{
  size_t n = strlen(s);

  if (sb_grow(b, n) < 0)
    return;
  memcpy(b->s + b->len, s, n + 1);
  b->len += n;
}

void brk_sb_printf(struct brk_sb *b, const char *fmt, ...)
{
  va_list ap;
  int n;

  va_start(ap, fmt);
  n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || sb_grow(b, (size_t)n) < 0)
    return;
  va_start(ap, fmt);
  vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if invalid. */
static int utf8_len(const unsigned char *p)
{
  unsigned c = p[0];
  int n, i;
  unsigned cp;

  if (c < 0x80)
    return 1;
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
    cp = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    cp = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  for (i = 1; i < n; i++) {
    if ((p[i] & 0xc0) != 0x80)
      return 0;
    cp = (cp << 6) | (p[i] & 0x3f);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
      (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return n;
}

void brk_sb_json_str(struct brk_sb *b, const char *s)
{
  const unsigned char *p = (const unsigned char *)s;

  brk_sb_putc(b, '"');
  while (*p) {
    unsigned c = *p;
    int n;

    switch (c) {
    case '"':
      brk_sb_puts(b, "\\\"");
      p++;
      continue;
    case '\\':
      brk_sb_puts(b, "\\\\");
      p++;
      continue;
    case '\n':
      brk_sb_puts(b, "\\n");
      p++;
      continue;
    case '\r':
      brk_sb_puts(b, "\\r");
      p++;
      continue;
    case '\t':
      brk_sb_puts(b, "\\t");
      p++;
      continue;
    default:
      break;
    }
    if (c < 0x20 || c == 0x7f) {
      brk_sb_printf(b, "\\u%04x", c);
      p++;
      continue;
    }
    n = utf8_len(p);
    if (n == 0) {
      brk_sb_puts(b, "\\ufffd");
      p++;
      continue;
    }
    for (int i = 0; i < n; i++)
      brk_sb_putc(b, (char)p[i]);
    p += n;
  }
  brk_sb_putc(b, '"');
}

/* ---- JSON reader ---------------------------------------------------------- */

struct jr {
  const char *p, *end;
  const char *why;
};

static void skip_ws(struct jr *j)
{
  while (j->p < j->end &&
         (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
    j->p++;
}

static int hexval(char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Append code point cp as UTF-8 to out[*n], cap bytes. */
static int put_utf8(char *out, size_t *n, size_t cap, unsigned cp)
{
  unsigned char tmp[4];
  size_t k;

  if (cp < 0x80) {
    tmp[0] = (unsigned char)cp;
    k = 1;
  } else if (cp < 0x800) {
    tmp[0] = (unsigned char)(0xc0 | (cp >> 6));
    tmp[1] = (unsigned char)(0x80 | (cp & 0x3f));
    k = 2;
  } else if (cp < 0x10000) {
    tmp[0] = (unsigned char)(0xe0 | (cp >> 12));
    tmp[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    tmp[2] = (unsigned char)(0x80 | (cp & 0x3f));
    k = 3;
  } else {
    tmp[0] = (unsigned char)(0xf0 | (cp >> 18));
    tmp[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
    tmp[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    tmp[3] = (unsigned char)(0x80 | (cp & 0x3f));
    k = 4;
  }
  if (*n + k >= cap)
    return -1;
  memcpy(out + *n, tmp, k);
  *n += k;
  return 0;
}

static int read_hex4(struct jr *j, unsigned *cp)
{
  *cp = 0;
  if (j->end - j->p < 4)
    return -1;
  for (int i = 0; i < 4; i++) {
    int v = hexval(j->p[i]);

    if (v < 0)
      return -1;
    *cp = (*cp << 4) | (unsigned)v;
  }
  j->p += 4;
  return 0;
}

/* A string literal at j->p into out (cap bytes, NUL-terminated). */
static int read_string(struct jr *j, char *out, size_t cap)
{
  size_t n = 0;

  if (j->p >= j->end || *j->p != '"') {
    j->why = "expected a string";
    return -1;
  }
  j->p++;
  while (j->p < j->end && *j->p != '"') {
    unsigned char c = (unsigned char)*j->p++;
    unsigned cp;

    if (c < 0x20) {
      j->why = "control character in string";
      return -1;
    }
    if (c != '\\') {
      if (n + 1 >= cap)
        goto too_long;
      out[n++] = (char)c;
      continue;
    }
    if (j->p >= j->end)
      break;
    c = (unsigned char)*j->p++;
    switch (c) {
    case '"': case '\\': case '/':
      cp = c;
      break;
    case 'b': cp = '\b'; break;
    case 'f': cp = '\f'; break;
    case 'n': cp = '\n'; break;
    case 'r': cp = '\r'; break;
    case 't': cp = '\t'; break;
    case 'u':
      if (read_hex4(j, &cp) < 0) {
        j->why = "bad \\u escape";
        return -1;
      }
      if (cp >= 0xd800 && cp <= 0xdbff) {
        unsigned lo;

        if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u') {
          j->why = "unpaired surrogate";
          return -1;
        }
        j->p += 2;
        if (read_hex4(j, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff) {
          j->why = "unpaired surrogate";
          return -1;
        }
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
      } else if (cp >= 0xdc00 && cp <= 0xdfff) {
        j->why = "unpaired surrogate";
        return -1;
      }
      break;
    default:
      j->why = "bad escape in string";
      return -1;
    }
    if (cp == 0) {
      j->why = "NUL in string";
      return -1;
    }
    if (put_utf8(out, &n, cap, cp) < 0)
      goto too_long;
  }
  if (j->p >= j->end) {
    j->why = "unterminated string";
    return -1;
  }
  j->p++;
  out[n] = 0;
  return 0;
too_long:
  j->why = "string too long";
  return -1;
}

/* A number or literal: copied as written after a syntax check. */
static int read_scalar(struct jr *j, char *out, size_t cap)
{
  const char *s = j->p;
  size_t n;

  if (j->p < j->end && (*j->p == '-' || (*j->p >= '0' && *j->p <= '9'))) {
    if (*j->p == '-')
      j->p++;
    if (j->p >= j->end || !(*j->p >= '0' && *j->p <= '9'))
      goto bad;
    if (*j->p == '0')
      j->p++;
    else
      while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
        j->p++;
    if (j->p < j->end && *j->p == '.') {
      j->p++;
      if (j->p >= j->end || !(*j->p >= '0' && *j->p <= '9'))
        goto bad;
      while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
        j->p++;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
      j->p++;
      if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
        j->p++;
      if (j->p >= j->end || !(*j->p >= '0' && *j->p <= '9'))
        goto bad;
      while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
        j->p++;
    }
  } else {
    static const char *const lits[] = {"true", "false", "null"};
    int ok = 0;

    for (int i = 0; i < 3 && !ok; i++) {
      size_t l = strlen(lits[i]);

      if ((size_t)(j->end - j->p) >= l && memcmp(j->p, lits[i], l) == 0) {
        j->p += l;
        ok = 1;
      }
    }
    if (!ok) {
      if (j->p < j->end && (*j->p == '{' || *j->p == '['))
        j->why = "nested values are not accepted";
      else
        j->why = "expected a value";
      return -1;
    }
  }
  n = (size_t)(j->p - s);
  if (n >= cap) {
    j->why = "value too long";
    return -1;
  }
  memcpy(out, s, n);
  out[n] = 0;
  return 0;
bad:
  j->why = "malformed number";
  return -1;
}

int brk_json_flat(const char *text, size_t len,
                  void (*fn)(const char *key, const char *value, int is_string,
                             void *ctx),
                  void *ctx, const char **why)
{
  struct jr j = {text, text + len, NULL};
  char key[256], val[256];
  int is_str;

  skip_ws(&j);
  if (j.p >= j.end || *j.p != '{') {
    *why = "expected a JSON object";
    return -EINVAL;
  }
  j.p++;
  skip_ws(&j);
  if (j.p < j.end && *j.p == '}') {
    j.p++;
    goto tail;
  }
  for (;;) {
    skip_ws(&j);
    if (read_string(&j, key, sizeof(key)) < 0)
      goto fail;
    skip_ws(&j);
    if (j.p >= j.end || *j.p != ':') {
      j.why = "expected ':'";
      goto fail;
    }
    j.p++;
    skip_ws(&j);
    is_str = j.p < j.end && *j.p == '"';
    if (is_str ? read_string(&j, val, sizeof(val)) < 0
               : read_scalar(&j, val, sizeof(val)) < 0)
      goto fail;
    if (fn)
      fn(key, val, is_str, ctx);
    skip_ws(&j);
    if (j.p < j.end && *j.p == ',') {
      j.p++;
      continue;
    }
    if (j.p < j.end && *j.p == '}') {
      j.p++;
      break;
    }
    j.why = "expected ',' or '}'";
    goto fail;
  }
tail:
  skip_ws(&j);
  if (j.p != j.end) {
    *why = "trailing characters after the object";
    return -EINVAL;
  }
  return 0;
fail:
  *why = j.why ? j.why : "malformed JSON";
  return -EINVAL;
}
