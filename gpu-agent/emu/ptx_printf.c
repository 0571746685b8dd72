/*
 * ptx_printf.c: device printf (vprintf) and __assertfail.
 *
 * nvcc turns printf(fmt, ...) into vprintf(fmt, buf): buf is a local
 * buffer holding the arguments one after another, each aligned to its own
 * size: 4 bytes for int-sized conversions (%d %i %u %x %o %c, and h/hh,
 * which C promotes), 8 for l/ll/z/j/t, doubles for every float conversion
 * (C promotes float), 8-byte pointers for %s and %p.  Everything is read
 * through checked generic accesses, so a bad pointer in a kernel's printf
 * prints a marker instead of crashing the agent.  One call's output is
 * delivered whole, as the GPU's printf buffer would.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "ptx_exec_int.h"

#define PX_PRINTF_MAX 65536 /* bytes of one call's output */

struct obuf {
  char *s;
  size_t n, cap;
  int full;
};

static void oput(struct obuf *o, const char *s, size_t n)
{
  if (o->full)
    return;
  if (o->n + n > PX_PRINTF_MAX) {
    n = PX_PRINTF_MAX - o->n;
    o->full = 1;
  }
  if (o->n + n + 1 > o->cap) {
    size_t cap = o->cap ? o->cap : 256;
    char *ns;
    while (cap < o->n + n + 1)
      cap *= 2;
    ns = realloc(o->s, cap);
    if (!ns) {
      o->full = 1;
      return;
    }
    o->s = ns;
    o->cap = cap;
  }
  memcpy(o->s + o->n, s, n);
  o->n += n;
}

static void oprintf(struct obuf *o, const char *fmt, ...)
  __attribute__((format(printf, 2, 3)));

static void oprintf(struct obuf *o, const char *fmt, ...)
{
  char tmp[512];
  va_list ap;
  int r;

  va_start(ap, fmt);
  r = vsnprintf(tmp, sizeof(tmp), fmt, ap);
  va_end(ap);
  if (r < 0)
    return;
  if ((size_t)r < sizeof(tmp)) {
    oput(o, tmp, (size_t)r);
    return;
  }
  {
    char *big = malloc((size_t)r + 1);
    if (!big)
      return;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)r + 1, fmt, ap);
    va_end(ap);
    oput(o, big, (size_t)r);
    free(big);
  }
}

/* A NUL-terminated string at generic address a (at most max bytes):
   pointer and length, or -EFAULT. */
static int px_cstr(struct px_warp *w, unsigned lane, uint64_t a, size_t max,
                   const char **s, size_t *len)
{
  const uint8_t *p;
  uint64_t avail;
  const char *z;

  if (px_generic_span(w, lane, a, &p, &avail))
    return -EFAULT;
  if (avail > max)
    avail = max;
  z = memchr(p, 0, avail);
  *s = (const char *)p;
  *len = z ? (size_t)(z - (const char *)p) : (size_t)avail;
  return 0;
}

struct args {
  struct px_warp *w;
  unsigned lane;
  uint64_t base, off;
  int bad;
};

/* The next argument of n bytes (aligned to n). */
static uint64_t next_arg(struct args *g, unsigned n)
{
  const uint8_t *p;
  uint64_t avail, v = 0;

  g->off = (g->off + n - 1) & ~(uint64_t)(n - 1);
  if (!g->base || px_generic_span(g->w, g->lane, g->base + g->off, &p,
                                  &avail) || avail < n) {
    g->bad = 1;
    g->off += n;
    return 0;
  }
  memcpy(&v, p, n);
  g->off += n;
  return v;
}

int32_t px_vprintf(struct px_warp *w, unsigned lane, uint64_t fmta,
                   uint64_t argsa)
{
  struct obuf o = {0};
  struct args g = {w, lane, argsa, 0, 0};
  const struct ptx_memops *mo = &w->b->L->d->mem;
  const char *fmt;
  size_t flen, i = 0;
  int32_t nargs = 0;

  if (!fmta || px_cstr(w, lane, fmta, PX_PRINTF_MAX, &fmt, &flen))
    return -1;
  while (i < flen) {
    char spec[64], len[3] = "";
    size_t start = i, j = i + 1, k = 0;
    int sv[2] = {0, 0}, nstar = 0;
    char conv;

    if (fmt[i] != '%') {
      size_t e = i;
      while (e < flen && fmt[e] != '%')
        e++;
      oput(&o, fmt + i, e - i);
      i = e;
      continue;
    }
    if (j < flen && fmt[j] == '%') {
      oput(&o, "%", 1);
      i = j + 1;
      continue;
    }
    spec[k++] = '%';
    while (j < flen && strchr("-+ #0", fmt[j]) && k < 20)
      spec[k++] = fmt[j++];
    if (j < flen && fmt[j] == '*') {
      nstar++;
      spec[k++] = '*';
      j++;
    } else {
      while (j < flen && fmt[j] >= '0' && fmt[j] <= '9' && k < 30)
        spec[k++] = fmt[j++];
    }
    if (j < flen && fmt[j] == '.') {
      spec[k++] = fmt[j++];
      if (j < flen && fmt[j] == '*') {
        nstar++;
        spec[k++] = '*';
        j++;
      } else {
        while (j < flen && fmt[j] >= '0' && fmt[j] <= '9' && k < 40)
          spec[k++] = fmt[j++];
      }
    }
    while (j < flen && strchr("hlLzjt", fmt[j]) && strlen(len) < 2) {
      len[strlen(len) + 1] = 0;
      len[strlen(len)] = fmt[j++];
    }
    if (j >= flen) { /* a lone % at the end: print it as it is */
      oput(&o, fmt + i, flen - i);
      break;
    }
    conv = fmt[j++];
    i = j;
    for (int s = 0; s < nstar; s++) {
      sv[s] = (int32_t)next_arg(&g, 4);
      nargs++;
    }
    switch (conv) {
    case 'd':
    case 'i':
    case 'u':
    case 'x':
    case 'X':
    case 'o':
    case 'c': {
      int wide = strchr(len, 'l') || strchr(len, 'z') || strchr(len, 'j') ||
                 strchr(len, 't') || strchr(len, 'L');
      uint64_t v = next_arg(&g, wide ? 8 : 4);
      nargs++;
      if (conv != 'c') {
        spec[k++] = 'l';
        spec[k++] = 'l';
      }
      spec[k++] = conv;
      spec[k] = 0;
      if (!wide) {
        /* an int-sized argument, narrowed as h/hh ask */
        int32_t sv32 = (int32_t)v;
        if (!strcmp(len, "h"))
          sv32 = (conv == 'd' || conv == 'i') ? (int16_t)sv32
                                              : (int32_t)(uint16_t)sv32;
        else if (!strcmp(len, "hh"))
          sv32 = (conv == 'd' || conv == 'i') ? (int8_t)sv32
                                              : (int32_t)(uint8_t)sv32;
        v = (conv == 'd' || conv == 'i') ? (uint64_t)(int64_t)sv32
                                         : (uint64_t)(uint32_t)sv32;
      }
      if (conv == 'c') {
        if (nstar == 2)
          oprintf(&o, spec, sv[0], sv[1], (int)(unsigned char)v);
        else if (nstar == 1)
          oprintf(&o, spec, sv[0], (int)(unsigned char)v);
        else
          oprintf(&o, spec, (int)(unsigned char)v);
      } else if (nstar == 2) {
        oprintf(&o, spec, sv[0], sv[1], (long long)v);
      } else if (nstar == 1) {
        oprintf(&o, spec, sv[0], (long long)v);
      } else {
        oprintf(&o, spec, (long long)v);
      }
      break;
    }
    case 'f':
    case 'F':
    case 'e':
    case 'E':
    case 'g':
    case 'G':
    case 'a':
    case 'A': {
      double dv = px_f64(next_arg(&g, 8));
      nargs++;
      spec[k++] = conv;
      spec[k] = 0;
      if (nstar == 2)
        oprintf(&o, spec, sv[0], sv[1], dv);
      else if (nstar == 1)
        oprintf(&o, spec, sv[0], dv);
      else
        oprintf(&o, spec, dv);
      break;
    }
    case 's': {
      uint64_t pv = next_arg(&g, 8);
      const char *s = "(null)";
      size_t sl = 6;
      char *copy;
      nargs++;
      if (pv && px_cstr(w, lane, pv, PX_PRINTF_MAX, &s, &sl)) {
        s = "(bad pointer)";
        sl = 13;
      }
      /* the device string is not NUL-terminated inside its allocation
         necessarily: copy what was found */
      copy = malloc(sl + 1);
      if (!copy)
        break;
      memcpy(copy, s, sl);
      copy[sl] = 0;
      spec[k++] = 's';
      spec[k] = 0;
      if (nstar == 2)
        oprintf(&o, spec, sv[0], sv[1], copy);
      else if (nstar == 1)
        oprintf(&o, spec, sv[0], copy);
      else
        oprintf(&o, spec, copy);
      free(copy);
      break;
    }
    case 'p': {
      uint64_t pv = next_arg(&g, 8);
      nargs++;
      oprintf(&o, "0x%" PRIx64, pv);
      break;
    }
    default:
      /* not a conversion CUDA knows (%n among them): print it literally */
      oput(&o, fmt + start, j - start);
      break;
    }
  }
  if (g.bad)
    oprintf(&o, "<printf: bad argument buffer 0x%" PRIx64 ">", argsa);
  if (mo->print && o.n)
    mo->print(mo->ctx, o.s, o.n);
  free(o.s);
  return nargs;
}

void px_assert_msg(struct px_warp *w, unsigned lane, uint64_t msg,
                   uint64_t file, uint32_t line, uint64_t func)
{
  const struct ptx_memops *mo = &w->b->L->d->mem;
  const struct px_block *b = w->b;
  struct obuf o = {0};
  const char *s[3];
  size_t n[3];
  uint64_t a[3] = {file, func, msg};

  for (unsigned i = 0; i < 3; i++)
    if (!a[i] || px_cstr(w, lane, a[i], 4096, &s[i], &n[i])) {
      s[i] = "?";
      n[i] = 1;
    }
  oprintf(&o, "%.*s:%u: %.*s: block: [%u,%u,%u], thread: [%u,%u,%u] "
          "Assertion `%.*s` failed.\n", (int)n[0], s[0], line, (int)n[1],
          s[1], b->ctaid[0], b->ctaid[1], b->ctaid[2], (uint32_t)w->tid[0][lane],
          (uint32_t)w->tid[1][lane], (uint32_t)w->tid[2][lane], (int)n[2], s[2]);
  if (mo->print && o.n)
    mo->print(mo->ctx, o.s, o.n);
  free(o.s);
}
