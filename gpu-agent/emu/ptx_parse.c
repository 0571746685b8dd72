/*
 * ptx_parse.c: PTX text -> struct ptx_module (see ptx_ir.h for the IR).
 *
 * One pass over the text with a hand-written lexer and a recursive-descent
 * parser that never recurses on input structure: nested { } scopes and
 * nested initializer braces are tracked with explicit, capped stacks, so
 * no input can exhaust the C stack.  Everything the parse builds goes
 * straight into the module's arrays; the only things resolved later are
 * forward branch targets (at the end of each function), calls to functions
 * declared after the caller, and the offsets of extern shared arrays (at
 * the end of the module, once the static shared layout is known).
 *
 * Names.  Registers, variables and .params share one namespace, scoped by
 * { }: a name maps to the innermost of a chain of bindings, and closing a
 * scope pops the bindings it pushed.  "%r<9>" is bound once, as a range
 * under the prefix "%r"; "%r5" is found through it (an exact declaration
 * wins where it is the more deeply scoped).  Labels are scoped by { } too
 * (CUTLASS-style inline asm repeats label names in sibling scopes), keyed
 * by (scope id, name).  Functions have a namespace of their own.
 *
 * Choices the IR leaves to the parser:
 *   - a constant inside a vector operand ("mov.b32 %f1, {0, %rs1};", which
 *     nvcc emits for bf16) becomes a register of its own, set by a mov
 *     emitted just before the instruction, so a VEC holds only slots;
 *   - an integer literal where a float type is read is converted by value
 *     (add.f32 %f1, %f2, 2 reads 2.0f); a float literal where an integer
 *     type is read is an error; the bit types take 0f/0d bits as written
 *     when the sizes agree, else the value in the float of their size;
 *   - WARP_SZ is the constant 32;
 *   - every .func/.entry without a body is is_extern, .extern or not;
 *   - .common is recorded as PTX_SYMF_WEAK; .attribute(.managed) as
 *     PTX_SYMF_MANAGED;
 *   - a module without .address_size is taken as 64-bit (see ptx_parse).
 *
 * The parser holds no global mutable state; a parse only touches its own
 * struct parser, so parses may run concurrently.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <locale.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ptx_ir.h"

/* ---- limits ------------------------------------------------------------ */

#define MAX_INPUT     (1u << 31)  /* lines and offsets fit in 32 bits */
#define MAX_INSNS     (1u << 24)
#define MAX_SYMS      (1u << 24)
#define MAX_REGS      (1u << 24)  /* register slots in the whole module */
#define MAX_FUNCS     (1u << 20)
#define MAX_LISTS     (1u << 24)
#define MAX_INIT      (64u << 20) /* initializer bytes in the whole module */
#define MAX_DEPTH     64          /* nested { } inside a function */
#define MAX_DIMS      8           /* array dimensions of a variable */
#define MAX_VAR_SIZE  (1ull << 32)
#define MAX_AREA      (1ull << 34)/* shared layout, frames, param areas */
#define MAX_ALIGN     (1u << 16)
#define MAX_LIST      255         /* call arguments (ptx_operand.n) */
#define NONE32        0xFFFFFFFFu

/* ---- lexer ------------------------------------------------------------- */

enum tk { TK_EOF, TK_ID, TK_DIR, TK_NUM, TK_STR, TK_PUNCT, TK_BAD };

struct tok {
  int kind;
  uint32_t line;
  const char *s; /* into the text; not NUL-terminated */
  uint32_t len;
  size_t end;    /* offset just past the token */
};

struct lexer {
  const char *p;
  size_t n;
  size_t pos;
  uint32_t line;
  struct tok cur, nxt;
  int have_nxt;
};

static int is_alpha(int c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_digit(int c)
{
  return c >= '0' && c <= '9';
}

static int is_idc(int c)
{
  return is_alpha(c) || is_digit(c) || c == '_' || c == '$';
}

static int is_ids(int c)
{
  return is_alpha(c) || c == '_' || c == '$' || c == '%';
}

static int lex_at(const struct lexer *L, size_t i)
{
  return i < L->n ? (unsigned char)L->p[i] : -1;
}

/* Consume identifier characters and "::"-joined parts ("L1::evict_last"). */
static void lex_idpart(struct lexer *L)
{
  for (;;) {
    while (is_idc(lex_at(L, L->pos)))
      L->pos++;
    if (lex_at(L, L->pos) == ':' && lex_at(L, L->pos + 1) == ':' &&
        is_idc(lex_at(L, L->pos + 2)))
      L->pos += 2;
    else
      return;
  }
}

/*
 * One token from L->pos.  Identifiers keep their dotted modifiers
 * ("ld.global.v4.f32", "%tid.x") so an instruction's opcode and modifiers
 * arrive as one token; directives are "." followed by a name.  A character
 * the grammar has no use for, an unterminated string or comment is TK_BAD.
 */
static void lex_raw(struct lexer *L, struct tok *t)
{
  int c;

  for (;;) {
    c = lex_at(L, L->pos);
    if (c == '\n') {
      L->line++;
      L->pos++;
    } else if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') {
      L->pos++;
    } else if (c == '/' && lex_at(L, L->pos + 1) == '/') {
      while (L->pos < L->n && L->p[L->pos] != '\n')
        L->pos++;
    } else if (c == '/' && lex_at(L, L->pos + 1) == '*') {
      size_t start = L->pos;
      uint32_t sline = L->line;

      L->pos += 2;
      for (;;) {
        if (L->pos + 1 >= L->n) {
          L->pos = L->n;
          t->kind = TK_BAD;
          t->line = sline;
          t->s = L->p + start;
          t->len = 2;
          t->end = L->n;
          return;
        }
        if (L->p[L->pos] == '*' && L->p[L->pos + 1] == '/') {
          L->pos += 2;
          break;
        }
        if (L->p[L->pos] == '\n')
          L->line++;
        L->pos++;
      }
    } else {
      break;
    }
  }

  t->line = L->line;
  t->s = L->p + L->pos;
  if (c < 0) {
    t->kind = TK_EOF;
    t->len = 0;
    t->end = L->pos;
    return;
  }
  size_t start = L->pos;

  if (c == '.' && is_idc(lex_at(L, L->pos + 1))) {
    L->pos++;
    lex_idpart(L);
    t->kind = TK_DIR;
  } else if (is_ids(c)) {
    L->pos++;
    lex_idpart(L);
    while (lex_at(L, L->pos) == '.' && is_idc(lex_at(L, L->pos + 1))) {
      L->pos++;
      lex_idpart(L);
    }
    t->kind = TK_ID;
  } else if (is_digit(c)) {
    int c1 = lex_at(L, L->pos + 1);
    /* Only a decimal literal may have a signed exponent ("1.5e-3"); in
       "0f3FE00000" the E is a hex digit. */
    int dec = !(c == '0' && c1 >= 0 && strchr("xXbBfFdD", c1));

    L->pos++;
    for (;;) {
      int d = lex_at(L, L->pos);

      if (dec && (d == 'e' || d == 'E')) {
        int s = lex_at(L, L->pos + 1);

        L->pos += (s == '+' || s == '-') ? 2 : 1;
      } else if (is_idc(d) || d == '.') {
        L->pos++;
      } else {
        break;
      }
    }
    t->kind = TK_NUM;
  } else if (c == '"') {
    L->pos++;
    for (;;) {
      int d = lex_at(L, L->pos);

      if (d < 0 || d == '\n') {
        t->kind = TK_BAD;
        break;
      }
      L->pos++;
      if (d == '\\' && lex_at(L, L->pos) >= 0 && lex_at(L, L->pos) != '\n')
        L->pos++;
      else if (d == '"') {
        t->kind = TK_STR;
        break;
      }
    }
  } else if (strchr(",;:{}[]()<>+-|!@=", c)) {
    L->pos++;
    t->kind = TK_PUNCT;
  } else {
    L->pos++;
    t->kind = TK_BAD;
  }
  t->len = (uint32_t)(L->pos - start);
  t->end = L->pos;
}

static void lex_init(struct lexer *L, const char *p, size_t n)
{
  memset(L, 0, sizeof(*L));
  L->p = p;
  L->n = n;
  L->line = 1;
  lex_raw(L, &L->cur);
}

static void lex_next(struct lexer *L)
{
  if (L->have_nxt) {
    L->cur = L->nxt;
    L->have_nxt = 0;
  } else {
    lex_raw(L, &L->cur);
  }
}

static const struct tok *lex_peek(struct lexer *L)
{
  if (!L->have_nxt) {
    lex_raw(L, &L->nxt);
    L->have_nxt = 1;
  }
  return &L->nxt;
}

/* Drop the rest of the current token's line (.loc, .file have no ';'). */
static void lex_skip_line(struct lexer *L)
{
  L->have_nxt = 0;
  L->pos = L->cur.end;
  L->line = L->cur.line;
  while (L->pos < L->n && L->p[L->pos] != '\n')
    L->pos++;
  lex_raw(L, &L->cur);
}

static int tok_is(const struct tok *t, int kind, const char *s)
{
  size_t n = strlen(s);

  return t->kind == kind && t->len == n && memcmp(t->s, s, n) == 0;
}

static int tok_punct(const struct tok *t, char c)
{
  return t->kind == TK_PUNCT && t->s[0] == c;
}

/* Length of s[0..n) up to the first c. */
static size_t strcspn_n(const char *s, size_t n, char c)
{
  const char *p = memchr(s, c, n);

  return p ? (size_t)(p - s) : n;
}

static int str_eq(const char *s, size_t n, const char *lit)
{
  size_t m = strlen(lit);

  return n == m && memcmp(s, lit, n) == 0;
}

/* ---- hash map ------------------------------------------------------------ */

/* Namespaces of the one map the parser uses. */
enum { NS_ID = 1, NS_RANGE, NS_FUNC, NS_LABEL };

struct mapent {
  const char *s; /* into the text (or a module-owned name) */
  uint32_t len;
  uint32_t scope;
  uint32_t val;
  uint32_t hash;
  uint8_t ns;    /* 0: empty slot */
};

struct map {
  struct mapent *e;
  uint32_t cap; /* power of two, or 0 */
  uint32_t used;
};

static uint32_t map_hash(unsigned ns, uint32_t scope, const char *s,
                         uint32_t len)
{
  uint32_t h = 2166136261u ^ ns ^ (scope * 0x9E3779B1u);

  for (uint32_t i = 0; i < len; i++) {
    h ^= (unsigned char)s[i];
    h *= 16777619u;
  }
  return h ^ (h >> 15);
}

static struct mapent *map_find(const struct map *m, unsigned ns,
                               uint32_t scope, const char *s, uint32_t len)
{
  if (!m->cap)
    return NULL;
  uint32_t h = map_hash(ns, scope, s, len);

  for (uint32_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
    struct mapent *e = &m->e[i];

    if (!e->ns)
      return NULL;
    if (e->hash == h && e->ns == ns && e->scope == scope && e->len == len &&
        memcmp(e->s, s, len) == 0)
      return e;
  }
}

static int map_grow(struct map *m)
{
  uint32_t ncap = m->cap ? m->cap * 2 : 256;
  struct mapent *ne;

  if (ncap > (1u << 28))
    return -E2BIG;
  ne = calloc(ncap, sizeof(*ne));
  if (!ne)
    return -ENOMEM;
  for (uint32_t i = 0; i < m->cap; i++) {
    struct mapent *e = &m->e[i];

    if (!e->ns)
      continue;
    uint32_t j = e->hash & (ncap - 1);

    while (ne[j].ns)
      j = (j + 1) & (ncap - 1);
    ne[j] = *e;
  }
  free(m->e);
  m->e = ne;
  m->cap = ncap;
  return 0;
}

/* Set (ns, scope, s) to val, inserting it if new. */
static int map_put(struct map *m, unsigned ns, uint32_t scope, const char *s,
                   uint32_t len, uint32_t val)
{
  struct mapent *e = map_find(m, ns, scope, s, len);
  int rc;

  if (e) {
    e->val = val;
    return 0;
  }
  if ((m->used + 1) * 2 > m->cap) {
    rc = map_grow(m);
    if (rc)
      return rc;
  }
  uint32_t h = map_hash(ns, scope, s, len);
  uint32_t i = h & (m->cap - 1);

  while (m->e[i].ns)
    i = (i + 1) & (m->cap - 1);
  m->e[i] = (struct mapent){ .s = s, .len = len, .scope = scope, .val = val,
                             .hash = h, .ns = (uint8_t)ns };
  m->used++;
  return 0;
}

/* ---- parser state -------------------------------------------------------- */

enum bkind { B_REG = 1, B_SYM, B_RANGE };

/* One declaration of a name in the scoped namespace (see the top). */
struct binding {
  const char *s;
  uint32_t len;
  uint8_t ns;     /* NS_ID or NS_RANGE */
  uint8_t kind;   /* enum bkind */
  uint16_t depth; /* scope depth it was declared at (0: module) */
  uint32_t idx;   /* register slot (base for a range) or symbol index */
  uint32_t count; /* B_RANGE: number of registers */
  uint32_t prev;  /* binding it shadows, or NONE32 */
};

struct labelref {
  const char *s;
  uint32_t len;
  uint32_t scope;
  uint32_t insn;
  uint32_t line;
  uint8_t opi;
};

struct callfix {
  const char *s;
  uint32_t len;
  uint32_t insn;
  uint32_t line;
};

struct parser {
  struct lexer L;
  struct ptx_module *m;
  char *err;
  size_t errlen;
  int have_err;

  uint32_t cap_funcs, cap_syms, cap_insns, cap_lists;
  uint32_t cap_init;
  uint32_t *scratch; /* symbol indices of the parameters being parsed */
  uint32_t nscratch, capscratch;

  struct map map;
  struct binding *b;
  uint32_t nb, capb;

  /* scopes: depth 0 is the module; ids are module-wide for labels */
  int depth;
  uint32_t mark[MAX_DEPTH + 2];  /* binding count when a scope opened */
  uint32_t sid[MAX_DEPTH + 2];   /* scope id at each depth */
  uint32_t *sparent;             /* parent scope id of each scope id */
  uint32_t nscopes, capscopes;

  struct labelref *lr;
  uint32_t nlr, caplr;
  struct callfix *cf;
  uint32_t ncf, capcf;

  /* the function being parsed */
  uint32_t fidx;
  uint8_t *rtypes;
  uint32_t nregs, caprt;
  uint64_t fparam_end; /* next free byte of its FPARAM area */
  uint64_t local_end;
  uint32_t local_align;

  uint32_t total_regs;
  uint64_t shared_end;
  uint32_t shared_align;

  locale_t cloc; /* "C" numbers for decimal float literals, made lazily */
};

/* ---- errors ------------------------------------------------------------- */

__attribute__((format(printf, 4, 5)))
static int perr(struct parser *P, int rc, uint32_t line, const char *fmt, ...)
{
  va_list ap;
  size_t n;

  if (P->have_err || !P->errlen)
    return rc;
  P->have_err = 1;
  n = (size_t)snprintf(P->err, P->errlen, "line %u: ", line);
  if (n < P->errlen) {
    va_start(ap, fmt);
    vsnprintf(P->err + n, P->errlen - n, fmt, ap);
    va_end(ap);
  }
  /* The message quotes the input, which may be anything: keep it one
     printable line. */
  for (char *c = P->err; *c; c++)
    if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
      *c = '?';
  return rc;
}

/* A token's text for a message, at most 64 characters. */
#define TOKF "'%.*s%s'"
#define TOKA(t) (int)((t)->len > 64 ? 64 : (t)->len), (t)->s, \
                ((t)->len > 64 ? "..." : "")

static int perr_tok(struct parser *P, const struct tok *t, const char *what)
{
  if (t->kind == TK_EOF)
    return perr(P, -EINVAL, t->line, "expected %s, found end of input",
                what);
  return perr(P, -EINVAL, t->line, "expected %s, found " TOKF, what,
              TOKA(t));
}

static int expect_punct(struct parser *P, char c)
{
  char what[8];

  if (tok_punct(&P->L.cur, c)) {
    lex_next(&P->L);
    return 0;
  }
  snprintf(what, sizeof(what), "'%c'", c);
  return perr_tok(P, &P->L.cur, what);
}

/* ---- growable arrays ---------------------------------------------------- */

/* Make room for need elements of esz bytes in *arr (capacity *cap). */
static int grow(struct parser *P, void **arr, uint32_t *cap, uint64_t need,
                size_t esz, uint32_t max, const char *what)
{
  uint64_t ncap;
  void *na;

  if (need <= *cap)
    return 0;
  if (need > max)
    return perr(P, -E2BIG, P->L.cur.line, "more than %u %s", max, what);
  ncap = *cap ? (uint64_t)*cap * 2 : 16;
  while (ncap < need)
    ncap *= 2;
  if (ncap > max)
    ncap = max;
  na = realloc(*arr, (size_t)ncap * esz);
  if (!na)
    return perr(P, -ENOMEM, P->L.cur.line, "out of memory");
  *arr = na;
  *cap = (uint32_t)ncap;
  return 0;
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
  return a > 1 ? (v + a - 1) / a * a : v;
}

/* ---- scopes and names ----------------------------------------------------- */

static int scope_open(struct parser *P)
{
  uint32_t id;
  int rc;

  if (P->depth >= MAX_DEPTH)
    return perr(P, -E2BIG, P->L.cur.line, "more than %d nested { } scopes",
                MAX_DEPTH);
  rc = grow(P, (void **)&P->sparent, &P->capscopes, (uint64_t)P->nscopes + 1,
            sizeof(*P->sparent), NONE32 - 1, "scopes");
  if (rc)
    return rc;
  id = P->nscopes++;
  P->sparent[id] = P->sid[P->depth];
  P->depth++;
  P->sid[P->depth] = id;
  P->mark[P->depth] = P->nb;
  return 0;
}

static void scope_close(struct parser *P)
{
  uint32_t mark = P->mark[P->depth];

  while (P->nb > mark) {
    struct binding *x = &P->b[--P->nb];
    struct mapent *e = map_find(&P->map, x->ns, 0, x->s, x->len);

    if (e)
      e->val = x->prev;
  }
  P->depth--;
}

static int bind(struct parser *P, unsigned ns, const char *s, uint32_t len,
                int kind, uint32_t idx, uint32_t count, uint32_t line)
{
  struct mapent *e = map_find(&P->map, ns, 0, s, len);
  uint32_t prev = e ? e->val : NONE32;
  int rc;

  if (prev != NONE32 && P->b[prev].depth == P->depth)
    return perr(P, -EINVAL, line, "'%.*s' declared twice in one scope",
                (int)(len > 64 ? 64 : len), s);
  rc = grow(P, (void **)&P->b, &P->capb, (uint64_t)P->nb + 1, sizeof(*P->b),
            NONE32 - 1, "declarations");
  if (rc)
    return rc;
  rc = map_put(&P->map, ns, 0, s, len, P->nb);
  if (rc)
    return perr(P, rc, line, "out of memory");
  P->b[P->nb] = (struct binding){ .s = s, .len = len, .ns = (uint8_t)ns,
                                  .kind = (uint8_t)kind,
                                  .depth = (uint16_t)P->depth, .idx = idx,
                                  .count = count, .prev = prev };
  P->nb++;
  return 0;
}

/*
 * What a name denotes here: B_REG (*idx = slot), B_SYM (*idx = symbol) or
 * 0 when it is not declared.  "%r5" is found through a "%r<N>" range
 * unless a more deeply scoped (or equally scoped) exact declaration exists.
 */
static int resolve(const struct parser *P, const char *s, uint32_t len,
                   uint32_t *idx)
{
  const struct mapent *e = map_find(&P->map, NS_ID, 0, s, len);
  const struct binding *x = e && e->val != NONE32 ? &P->b[e->val] : NULL;
  const struct binding *r = NULL;
  uint32_t k = len, num = 0;

  while (k > 0 && is_digit(s[k - 1]))
    k--;
  if (k > 0 && k < len && len - k <= 9 && (len - k == 1 || s[k] != '0')) {
    for (uint32_t i = k; i < len; i++)
      num = num * 10 + (uint32_t)(s[i] - '0');
    e = map_find(&P->map, NS_RANGE, 0, s, k);
    /* an inner %r<2> hides %r0 and %r1 of an outer %r<9>, not %r5; the
       chain is at most MAX_DEPTH + 1 long (one range per scope) */
    for (uint32_t bi = e ? e->val : NONE32; bi != NONE32;
         bi = P->b[bi].prev)
      if (num < P->b[bi].count) {
        r = &P->b[bi];
        break;
      }
  }
  if (r && (!x || r->depth > x->depth)) {
    *idx = r->idx + num;
    return B_REG;
  }
  if (!x)
    return 0;
  *idx = x->idx;
  return x->kind;
}

/* ---- module objects ------------------------------------------------------- */

static char *name_dup(const char *s, uint32_t len)
{
  char *d = malloc((size_t)len + 1);

  if (d) {
    memcpy(d, s, len);
    d[len] = 0;
  }
  return d;
}

static int sym_new(struct parser *P, const char *s, uint32_t len, int kind,
                   unsigned type, uint32_t line, uint32_t *out)
{
  struct ptx_module *m = P->m;
  struct ptx_symbol *y;
  int rc;

  rc = grow(P, (void **)&m->syms, &P->cap_syms, (uint64_t)m->nsyms + 1,
            sizeof(*m->syms), MAX_SYMS, "symbols");
  if (rc)
    return rc;
  y = &m->syms[m->nsyms];
  memset(y, 0, sizeof(*y));
  y->name = name_dup(s, len);
  if (!y->name)
    return perr(P, -ENOMEM, line, "out of memory");
  y->kind = (uint8_t)kind;
  y->type = (uint8_t)type;
  y->func = NONE32;
  *out = m->nsyms++;
  return 0;
}

static int reg_new(struct parser *P, unsigned type, uint32_t count,
                   uint32_t line, uint32_t *base)
{
  int rc;

  if (count > MAX_REGS - P->total_regs)
    return perr(P, -E2BIG, line, "more than %u registers", MAX_REGS);
  rc = grow(P, (void **)&P->rtypes, &P->caprt, (uint64_t)P->nregs + count,
            1, MAX_REGS, "registers");
  if (rc)
    return rc;
  if (count)
    memset(P->rtypes + P->nregs, (int)type, count);
  *base = P->nregs;
  P->nregs += count;
  P->total_regs += count;
  return 0;
}

/* Append n entries to ptx_module.lists; *off = where they start. */
static int list_add(struct parser *P, const uint32_t *v, uint32_t n,
                    uint32_t *off)
{
  struct ptx_module *m = P->m;
  int rc;

  rc = grow(P, (void **)&m->lists, &P->cap_lists, (uint64_t)m->nlists + n,
            sizeof(*m->lists), MAX_LISTS, "list entries");
  if (rc)
    return rc;
  if (n)
    memcpy(m->lists + m->nlists, v, n * sizeof(*v));
  *off = m->nlists;
  m->nlists += n;
  return 0;
}

/* ---- literals ------------------------------------------------------------- */

enum { LIT_INT, LIT_F32, LIT_F64, LIT_DEC };

struct lit {
  int kind;
  int neg;     /* a '-' was written before it */
  uint64_t u;  /* INT: magnitude; F32/F64: the bits as written */
  double d;    /* DEC: the value (without the sign) */
};

static int hexval(int c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

static int lit_parse(struct parser *P, const struct tok *t, int neg,
                     struct lit *l)
{
  const char *s = t->s;
  uint32_t n = t->len, i = 0;
  unsigned base = 10;

  memset(l, 0, sizeof(*l));
  l->neg = neg;
  if (t->kind != TK_NUM)
    return perr_tok(P, t, "a number");
  if (n >= 2 && s[0] == '0' && (s[1] == 'f' || s[1] == 'F' || s[1] == 'd' ||
                                s[1] == 'D')) {
    uint32_t digits = (s[1] == 'f' || s[1] == 'F') ? 8 : 16;

    if (n != digits + 2)
      goto bad;
    for (i = 2; i < n; i++) {
      int h = hexval((unsigned char)s[i]);

      if (h < 0)
        goto bad;
      l->u = l->u << 4 | (unsigned)h;
    }
    l->kind = digits == 8 ? LIT_F32 : LIT_F64;
    return 0;
  }
  if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    base = 16;
    i = 2;
  } else if (n >= 2 && s[0] == '0' && (s[1] == 'b' || s[1] == 'B')) {
    base = 2;
    i = 2;
  } else {
    for (uint32_t k = 0; k < n; k++) {
      if (s[k] == '.' || s[k] == 'e' || s[k] == 'E') {
        char buf[80];
        char *end;

        if (n >= sizeof(buf))
          goto bad;
        if (!P->cloc) {
          P->cloc = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
          if (!P->cloc)
            return perr(P, -ENOMEM, t->line, "out of memory");
        }
        memcpy(buf, s, n);
        buf[n] = 0;
        l->d = strtod_l(buf, &end, P->cloc);
        if (end != buf + n)
          goto bad;
        l->kind = LIT_DEC;
        return 0;
      }
    }
    if (n >= 2 && s[0] == '0')
      base = 8;
  }
  if (i >= n || s[i] == 'U' || s[i] == 'u')
    goto bad;
  for (; i < n; i++) {
    int h = hexval((unsigned char)s[i]);

    if ((s[i] == 'U' || s[i] == 'u') && i == n - 1)
      break;
    if (h < 0 || (unsigned)h >= base)
      goto bad;
    if (l->u > (UINT64_MAX - (unsigned)h) / base)
      return perr(P, -EINVAL, t->line, "integer literal " TOKF
                  " out of range", TOKA(t));
    l->u = l->u * base + (unsigned)h;
  }
  l->kind = LIT_INT;
  return 0;
bad:
  return perr(P, -EINVAL, t->line, "bad number " TOKF, TOKA(t));
}

static uint64_t f64_bits(double d)
{
  uint64_t b;

  memcpy(&b, &d, sizeof(b));
  return b;
}

static double bits_f64(uint64_t b)
{
  double d;

  memcpy(&d, &b, sizeof(d));
  return d;
}

static float bits_f32(uint32_t b)
{
  float f;

  memcpy(&f, &b, sizeof(f));
  return f;
}

static uint32_t f32_bits(float f)
{
  uint32_t b;

  memcpy(&b, &f, sizeof(b));
  return b;
}

/*
 * A double rounded to nearest-even into a binary format with ebits of
 * exponent and mbits of mantissa (f16: 5/10, bf16: 8/7), in one rounding
 * (going through float first would round twice).  NaN becomes the quiet
 * NaN, overflow infinity, tiny values subnormals or zero.
 */
static uint32_t f64_to_small(double d, unsigned ebits, unsigned mbits)
{
  uint64_t b = f64_bits(d);
  uint32_t sign = (uint32_t)(b >> 63) << (ebits + mbits);
  int e = (int)((b >> 52) & 0x7ff);
  uint64_t mant = b & ((1ull << 52) - 1);
  int emax = (1 << ebits) - 1, bias = emax >> 1;
  uint64_t sig, q, rem, half;
  int te;
  unsigned shift;

  if (e == 0x7ff)
    return sign | (uint32_t)emax << mbits | (mant ? 1u << (mbits - 1) : 0);
  if (e == 0) /* zero, or a double subnormal: far below any target's */
    return sign;
  sig = (1ull << 52) | mant;
  te = e - 1023 + bias;
  if (te >= emax)
    return sign | (uint32_t)emax << mbits;
  if (te <= 0) {
    if (52 - (int)mbits + 1 - te > 60)
      return sign;
    shift = (unsigned)(52 - (int)mbits + 1 - te);
    te = 0;
  } else {
    shift = 52 - mbits;
  }
  q = sig >> shift;
  rem = sig & ((1ull << shift) - 1);
  half = 1ull << (shift - 1);
  if (rem > half || (rem == half && (q & 1)))
    q++;
  /* q carries the implicit bit for normals; a carry out of the mantissa
     moves into the exponent (up to infinity) on its own. */
  if (te == 0)
    return sign | (uint32_t)q;
  return sign | (((uint32_t)te << mbits) + (uint32_t)(q - (1ull << mbits)));
}

/* The value of a literal as a double (f32 bits widen exactly). */
static double lit_value(const struct lit *l)
{
  double v;

  switch (l->kind) {
  case LIT_F32: v = bits_f32((uint32_t)l->u); break;
  case LIT_F64: v = bits_f64(l->u); break;
  case LIT_DEC: v = l->d; break;
  default: v = (double)l->u; break;
  }
  return l->neg ? -v : v;
}

static uint32_t lit_f32(const struct lit *l)
{
  if (l->kind == LIT_F32)
    return (uint32_t)l->u ^ (l->neg ? 0x80000000u : 0);
  if (l->kind == LIT_INT) /* one rounding from the integer */
    return f32_bits(l->neg ? -(float)l->u : (float)l->u);
  return f32_bits((float)lit_value(l));
}

static uint64_t lit_f64(const struct lit *l)
{
  if (l->kind == LIT_F64)
    return l->u ^ (l->neg ? 1ull << 63 : 0);
  return f64_bits(lit_value(l));
}

/*
 * The bits of a literal read as `type` (see ptx_ir.h, Immediates).  Float
 * types take the literal's value, an integer literal included (1 -> 1.0);
 * the bit types take 0f/0d bits as written where the sizes agree and
 * otherwise the value in the float format of their size; integer types
 * take integers only, as 64-bit two's complement.
 */
static int lit_convert(struct parser *P, const struct lit *l, unsigned type,
                       uint32_t line, uint64_t *out)
{
  int isfloat = l->kind != LIT_INT;

  switch (type) {
  case PTX_T_F32:
  case PTX_T_TF32:
    *out = lit_f32(l);
    return 0;
  case PTX_T_F64:
    *out = lit_f64(l);
    return 0;
  case PTX_T_F16:
    *out = f64_to_small(lit_value(l), 5, 10);
    return 0;
  case PTX_T_BF16:
    *out = f64_to_small(lit_value(l), 8, 7);
    return 0;
  case PTX_T_B16:
    if (isfloat) {
      *out = f64_to_small(lit_value(l), 5, 10);
      return 0;
    }
    break;
  case PTX_T_B32:
    if (isfloat) {
      *out = lit_f32(l);
      return 0;
    }
    break;
  case PTX_T_B64:
    if (isfloat) {
      *out = lit_f64(l);
      return 0;
    }
    break;
  default:
    break;
  }
  if (isfloat)
    return perr(P, -EINVAL, line,
                "floating-point literal where a .%s integer is expected",
                type ? ptx_type_name(type) : "untyped");
  *out = l->neg ? (uint64_t)0 - l->u : l->u;
  return 0;
}

/* ---- opcodes, types and modifiers ------------------------------------------ */

static const char *const op_tab[PTX_OP__COUNT] = {
#define PTX_X_NAME(e, s) [PTX_OP_##e] = s,
  PTX_OPCODES(PTX_X_NAME)
#undef PTX_X_NAME
};

static const char *const type_tab[PTX_T__COUNT] = {
#define PTX_X_NAME(e, s, n) [PTX_T_##e] = s,
  PTX_TYPES(PTX_X_NAME)
#undef PTX_X_NAME
};

static const char *const sreg_tab[PTX_SR__COUNT] = {
#define PTX_X_NAME(e, s) [PTX_SR_##e] = s,
  PTX_SREGS(PTX_X_NAME)
#undef PTX_X_NAME
};

/* Index of s in tab[0..n), or -1. */
static int tab_find(const char *const *tab, int n, const char *s, size_t len)
{
  for (int i = 0; i < n; i++)
    if (tab[i] && str_eq(s, len, tab[i]))
      return i;
  return -1;
}

#define TAB_FIND(tab, s, n) tab_find(tab, (int)(sizeof(tab) / sizeof(tab[0])), \
                                     s, n)

static int type_find(const char *s, size_t n)
{
  int t = tab_find(type_tab, PTX_T__COUNT, s, n);

  return t > 0 ? t : -1; /* "" is NONE, never a written type */
}

/*
 * Legal PTX the executor will never run: these fail with -ENOTSUP instead
 * of "unknown instruction", so that the message says what is missing.
 */
static const char *const unsupported_ops[] = {
  "tex", "tld4", "txq", "suld", "sust", "sured", "suq", "istypep",
  "wmma", "mma", "wgmma", "ldmatrix", "stmatrix", "movmatrix", "cp",
  "mbarrier", "tensormap", "elect", "setmaxnreg", "getctarank",
  "multimem", "griddepcontrol", "applypriority", "discard", "createpolicy",
  "vadd", "vsub", "vabsdiff", "vmin", "vmax", "vshl", "vshr", "vmad",
  "vset", "vadd2", "vadd4", "vsub2", "vsub4", "vavrg2", "vavrg4",
  "vabsdiff2", "vabsdiff4", "vmin2", "vmin4", "vmax2", "vmax4", "vset2",
  "vset4", "clusterlaunchcontrol", "tcgen05", "szext", "bmsk", "mapa",
};

/*
 * Legal modifiers of features the emulated device does not have (fp8 and
 * other narrow formats, cache policies, proxies, clusters): -ENOTSUP.
 */
static const char *const unsupported_mods[] = {
  "satfinite", "e4m3x2", "e5m2x2", "e2m3x2", "e3m2x2", "e2m1x2", "ue8m0x2",
  "L2::cache_hint", "v8", "v16", "b4x16", "b6x16", "mmio", "unified",
  "multicast::cluster", "async", "bulk", "proxy", "tensor", "im2col",
  "release_pattern", "mbarrier::complete_tx::bytes",
};

/* Special registers of features the emulated device does not have. */
static const char *const unsupported_sregs[] = {
  "%clusterid", "%nclusterid", "%cluster_ctaid", "%cluster_nctaid",
  "%cluster_ctarank", "%cluster_nctarank", "%is_explicit_cluster",
  "%aggr_smem_size", "%current_graph_exec", "%pm0", "%pm1", "%pm2", "%pm3",
  "%pm4", "%pm5", "%pm6", "%pm7", "%pm0_64", "%pm1_64", "%pm2_64",
  "%pm3_64", "%pm4_64", "%pm5_64", "%pm6_64", "%pm7_64",
};

static const char *const space_tab[] = {
  [PTX_SP_GLOBAL] = "global", [PTX_SP_SHARED] = "shared",
  [PTX_SP_SHARED_CLUSTER] = "shared::cluster", [PTX_SP_LOCAL] = "local",
  [PTX_SP_CONST] = "const", [PTX_SP_PARAM] = "param",
};

static const char *const rnd_tab[] = {
  [PTX_RND_RN] = "rn", [PTX_RND_RZ] = "rz", [PTX_RND_RM] = "rm",
  [PTX_RND_RP] = "rp", [PTX_RND_RNI] = "rni", [PTX_RND_RZI] = "rzi",
  [PTX_RND_RMI] = "rmi", [PTX_RND_RPI] = "rpi", [PTX_RND_RNA] = "rna",
  [PTX_RND_RS] = "rs",
};

static const char *const cmp_tab[] = {
  [PTX_CMP_EQ] = "eq", [PTX_CMP_NE] = "ne", [PTX_CMP_LT] = "lt",
  [PTX_CMP_LE] = "le", [PTX_CMP_GT] = "gt", [PTX_CMP_GE] = "ge",
  [PTX_CMP_LO] = "lo", [PTX_CMP_LS] = "ls", [PTX_CMP_HI] = "hi",
  [PTX_CMP_HS] = "hs", [PTX_CMP_EQU] = "equ", [PTX_CMP_NEU] = "neu",
  [PTX_CMP_LTU] = "ltu", [PTX_CMP_LEU] = "leu", [PTX_CMP_GTU] = "gtu",
  [PTX_CMP_GEU] = "geu", [PTX_CMP_NUM] = "num", [PTX_CMP_NAN] = "nan",
};

static const char *const bool_tab[] = {
  [PTX_BOOL_AND] = "and", [PTX_BOOL_OR] = "or", [PTX_BOOL_XOR] = "xor",
  [PTX_BOOL_POPC] = "popc",
};

static const char *const atom_tab[] = {
  [PTX_ATOM_ADD] = "add", [PTX_ATOM_MIN] = "min", [PTX_ATOM_MAX] = "max",
  [PTX_ATOM_EXCH] = "exch", [PTX_ATOM_CAS] = "cas", [PTX_ATOM_AND] = "and",
  [PTX_ATOM_OR] = "or", [PTX_ATOM_XOR] = "xor", [PTX_ATOM_INC] = "inc",
  [PTX_ATOM_DEC] = "dec",
};

static const char *const shfl_tab[] = {
  [PTX_SHFL_UP] = "up", [PTX_SHFL_DOWN] = "down", [PTX_SHFL_BFLY] = "bfly",
  [PTX_SHFL_IDX] = "idx",
};

static const char *const vote_tab[] = {
  [PTX_VOTE_ALL] = "all", [PTX_VOTE_ANY] = "any", [PTX_VOTE_UNI] = "uni",
  [PTX_VOTE_BALLOT] = "ballot",
};

static const char *const prmt_tab[] = {
  [PTX_PRMT_F4E] = "f4e", [PTX_PRMT_B4E] = "b4e", [PTX_PRMT_RC8] = "rc8",
  [PTX_PRMT_ECL] = "ecl", [PTX_PRMT_ECR] = "ecr", [PTX_PRMT_RC16] = "rc16",
};

static const char *const testp_tab[] = {
  [PTX_TESTP_FINITE] = "finite", [PTX_TESTP_INFINITE] = "infinite",
  [PTX_TESTP_NUMBER] = "number", [PTX_TESTP_NOTANUMBER] = "notanumber",
  [PTX_TESTP_NORMAL] = "normal", [PTX_TESTP_SUBNORMAL] = "subnormal",
};

static const char *const scope_tab[] = {
  [PTX_SCOPE_CTA] = "cta", [PTX_SCOPE_CLUSTER] = "cluster",
  [PTX_SCOPE_GPU] = "gpu", [PTX_SCOPE_SYS] = "sys",
};

static const char *const mulpart_tab[] = {
  [PTX_MUL_LO] = "lo", [PTX_MUL_HI] = "hi", [PTX_MUL_WIDE] = "wide",
};

static const struct { const char *name; uint32_t flag; } flag_tab[] = {
  { "ftz", PTX_F_FTZ }, { "sat", PTX_F_SAT }, { "approx", PTX_F_APPROX },
  { "full", PTX_F_FULL }, { "uni", PTX_F_UNI }, { "cc", PTX_F_CC },
  { "relu", PTX_F_RELU }, { "NaN", PTX_F_NAN },
  { "xorsign", PTX_F_XORSIGN }, { "aligned", PTX_F_ALIGNED },
  { "volatile", PTX_F_VOLATILE }, { "shiftamt", PTX_F_SHIFTAMT },
  { "sync", PTX_F_SYNC }, { "abs", PTX_F_ABS }, { "nc", PTX_F_NC },
  { "relaxed", PTX_F_MEMORD }, { "acquire", PTX_F_MEMORD },
  { "release", PTX_F_MEMORD }, { "acq_rel", PTX_F_MEMORD },
  { "sc", PTX_F_MEMORD },
};

/* Cache and eviction hints that change nothing on the emulated device. */
static const char *const ignored_tab[] = {
  "ca", "cg", "cs", "lu", "cv", "wb", "wt", "noftz", "weak",
  "L1::evict_normal", "L1::evict_unchanged", "L1::evict_first",
  "L1::evict_last", "L1::no_allocate", "L2::evict_first", "L2::evict_last",
  "L2::evict_normal", "L2::64B", "L2::128B", "L2::256B",
};

struct modstate {
  int types[2];
  int ntypes;
  int warp; /* bar.warp seen */
};

/*
 * Apply one dot-modifier s[0..n) to *in.  Returns 0, 1 if s means nothing
 * for this opcode, 2 for a third type.
 */
static int mod_apply(struct ptx_insn *in, struct modstate *ms, const char *s,
                     size_t n)
{
  unsigned op = in->op;
  int v;

  v = type_find(s, n);
  if (v > 0) {
    if (ms->ntypes >= 2)
      return 2;
    ms->types[ms->ntypes++] = v;
    return 0;
  }

  /* Opcode-specific names first: ".and" is a boolean op for setp, an
     atomic op for atom; ".lo" a comparison for setp, a part for mul. */
  switch (op) {
  case PTX_OP_SETP:
  case PTX_OP_SET:
    if ((v = TAB_FIND(cmp_tab, s, n)) > 0 && !in->mode) {
      in->mode = (uint8_t)v;
      return 0;
    }
    if ((v = TAB_FIND(bool_tab, s, n)) > 0 && v != PTX_BOOL_POPC) {
      in->mode2 = (uint8_t)v;
      return 0;
    }
    break;
  case PTX_OP_MUL: case PTX_OP_MAD: case PTX_OP_MUL24: case PTX_OP_MAD24:
  case PTX_OP_MADC:
    if ((v = TAB_FIND(mulpart_tab, s, n)) > 0) {
      in->mode = (uint8_t)v;
      return 0;
    }
    break;
  case PTX_OP_ATOM:
  case PTX_OP_RED:
    if ((v = TAB_FIND(atom_tab, s, n)) > 0) {
      in->mode = (uint8_t)v;
      return 0;
    }
    break;
  case PTX_OP_REDUX:
    if ((v = TAB_FIND(atom_tab, s, n)) > 0 && v != PTX_ATOM_EXCH &&
        v != PTX_ATOM_CAS && v != PTX_ATOM_INC && v != PTX_ATOM_DEC) {
      in->mode = (uint8_t)v;
      return 0;
    }
    break;
  case PTX_OP_SHFL:
    if ((v = TAB_FIND(shfl_tab, s, n)) > 0) {
      in->mode = (uint8_t)v;
      return 0;
    }
    break;
  case PTX_OP_VOTE:
    if ((v = TAB_FIND(vote_tab, s, n)) > 0) {
      in->mode = (uint8_t)v;
      return 0;
    }
    break;
  case PTX_OP_MATCH:
    if (str_eq(s, n, "any") || str_eq(s, n, "all")) {
      in->mode = s[1] == 'n' ? PTX_MATCH_ANY : PTX_MATCH_ALL;
      return 0;
    }
    break;
  case PTX_OP_BAR:
  case PTX_OP_BARRIER:
    if (str_eq(s, n, "warp") && op == PTX_OP_BAR) {
      ms->warp = 1;
      return 0;
    }
    if (str_eq(s, n, "sync")) {
      in->mode = ms->warp ? PTX_BAR_WARP_SYNC : PTX_BAR_SYNC;
      return 0;
    }
    if (str_eq(s, n, "arrive")) {
      in->mode = PTX_BAR_ARRIVE;
      return 0;
    }
    if (str_eq(s, n, "red")) {
      in->mode = PTX_BAR_RED;
      return 0;
    }
    if ((v = TAB_FIND(bool_tab, s, n)) > 0 && v != PTX_BOOL_XOR) {
      in->mode2 = (uint8_t)v;
      return 0;
    }
    if (str_eq(s, n, "cta")) /* bar.cta.sync is bar.sync */
      return 0;
    break;
  case PTX_OP_PRMT:
    if ((v = TAB_FIND(prmt_tab, s, n)) > 0) {
      in->mode = (uint8_t)v;
      return 0;
    }
    break;
  case PTX_OP_SHF:
    if (str_eq(s, n, "l") || str_eq(s, n, "r")) {
      in->mode = s[0] == 'l' ? PTX_SHF_L : PTX_SHF_R;
      return 0;
    }
    if (str_eq(s, n, "wrap") || str_eq(s, n, "clamp")) {
      in->mode2 = s[0] == 'w' ? PTX_SHF_WRAP : PTX_SHF_CLAMP;
      return 0;
    }
    break;
  case PTX_OP_TESTP:
    if ((v = TAB_FIND(testp_tab, s, n)) > 0) {
      in->mode = (uint8_t)v;
      return 0;
    }
    break;
  case PTX_OP_MEMBAR:
    if (str_eq(s, n, "gl")) {
      in->scope = PTX_SCOPE_GPU;
      return 0;
    }
    break;
  case PTX_OP_CVTA:
    if (str_eq(s, n, "to")) {
      in->flags |= PTX_F_TO;
      return 0;
    }
    break;
  case PTX_OP_PREFETCH:
  case PTX_OP_PREFETCHU:
    if (str_eq(s, n, "L1") || str_eq(s, n, "L2"))
      return 0;
    break;
  default:
    break;
  }

  if (str_eq(s, n, "shared::cta")) {
    in->space = PTX_SP_SHARED;
    return 0;
  }
  if (str_eq(s, n, "param::entry") || str_eq(s, n, "param::func")) {
    in->space = PTX_SP_PARAM;
    return 0;
  }
  if ((v = TAB_FIND(space_tab, s, n)) > 0) {
    in->space = (uint8_t)v;
    return 0;
  }
  if ((v = TAB_FIND(rnd_tab, s, n)) > 0) {
    in->rnd = (uint8_t)v;
    return 0;
  }
  if ((v = TAB_FIND(scope_tab, s, n)) > 0) {
    in->scope = (uint8_t)v;
    return 0;
  }
  if (str_eq(s, n, "v2") || str_eq(s, n, "v4")) {
    in->vec = (uint8_t)(s[1] - '0');
    return 0;
  }
  for (size_t i = 0; i < sizeof(flag_tab) / sizeof(flag_tab[0]); i++) {
    if (str_eq(s, n, flag_tab[i].name)) {
      in->flags |= flag_tab[i].flag;
      return 0;
    }
  }
  if (TAB_FIND(ignored_tab, s, n) >= 0)
    return 0;
  return 1;
}

/* Where the types go: see ptx_insn.type and type2. */
static void types_assign(struct ptx_insn *in, const struct modstate *ms)
{
  if (ms->ntypes == 0)
    return;
  if (ms->ntypes == 1) {
    in->type = (uint8_t)ms->types[0];
    return;
  }
  if (in->op == PTX_OP_SET) { /* set.CMP.dtype.stype */
    in->type = (uint8_t)ms->types[1];
    in->type2 = (uint8_t)ms->types[0];
  } else {
    in->type = (uint8_t)ms->types[0];
    in->type2 = (uint8_t)ms->types[1];
  }
}

/* Opcodes that take two types; the others take at most one. */
static int op_two_types(unsigned op)
{
  return op == PTX_OP_CVT || op == PTX_OP_SET || op == PTX_OP_SLCT ||
         op == PTX_OP_DP4A || op == PTX_OP_DP2A;
}

/* ---- operands ------------------------------------------------------------- */

/* The type an immediate in written operand position wi is read as. */
static unsigned imm_type(const struct ptx_insn *in, unsigned wi)
{
  switch (in->op) {
  case PTX_OP_CVT:
    return in->type2;
  case PTX_OP_SLCT:
    return wi == 3 ? in->type2 : in->type;
  case PTX_OP_SETP:
  case PTX_OP_SET:
    return wi == 3 && in->mode2 ? PTX_T_PRED : in->type;
  case PTX_OP_SELP:
    return wi == 3 ? PTX_T_PRED : in->type;
  case PTX_OP_DP4A:
  case PTX_OP_DP2A:
    return wi == 2 ? in->type2 : in->type;
  default:
    return in->type;
  }
}

static struct ptx_operand *op_add(struct parser *P, struct ptx_insn *in)
{
  struct ptx_operand *o;

  if (in->nops >= PTX_MAX_OPS) {
    perr(P, -EINVAL, P->L.cur.line, "more than %d operands", PTX_MAX_OPS);
    return NULL;
  }
  o = &in->ops[in->nops++];
  memset(o, 0, sizeof(*o));
  o->reg = PTX_NOREG;
  o->sym = PTX_NOSYM;
  return o;
}

/* A numeric literal at the current token, with an optional leading '-'. */
static int parse_lit(struct parser *P, struct lit *l)
{
  int neg = 0, rc;

  if (tok_punct(&P->L.cur, '-')) {
    neg = 1;
    lex_next(&P->L);
  }
  rc = lit_parse(P, &P->L.cur, neg, l);
  if (rc)
    return rc;
  lex_next(&P->L);
  return 0;
}

/* An integer literal (address offsets, sizes): as int64, wrapping. */
static int parse_int(struct parser *P, int64_t *v)
{
  struct lit l;
  uint32_t line = P->L.cur.line;
  int rc = parse_lit(P, &l);

  if (rc)
    return rc;
  if (l.kind != LIT_INT)
    return perr(P, -EINVAL, line, "expected an integer");
  *v = (int64_t)(l.neg ? (uint64_t)0 - l.u : l.u);
  return 0;
}

/* A non-negative integer no larger than max (counts, sizes, alignments). */
static int parse_count(struct parser *P, uint64_t max, uint64_t *v,
                       const char *what)
{
  struct lit l;
  uint32_t line = P->L.cur.line;
  int rc = parse_lit(P, &l);

  if (rc)
    return rc;
  if (l.kind != LIT_INT || (l.neg && l.u))
    return perr(P, -EINVAL, line, "bad %s", what);
  if (l.u > max)
    return perr(P, -E2BIG, line, "%s %llu larger than %llu", what,
                (unsigned long long)l.u, (unsigned long long)max);
  *v = l.u;
  return 0;
}

static int undefined(struct parser *P, const struct tok *t)
{
  return perr(P, -EINVAL, t->line, "undefined identifier " TOKF, TOKA(t));
}

/* "[reg]", "[reg+off]", "[reg+-off]", "[reg-off]", "[sym+off]", "[imm]" */
static int parse_addr(struct parser *P, struct ptx_operand *o)
{
  struct lexer *L = &P->L;
  int rc;

  lex_next(L); /* '[' */
  o->kind = PTX_O_ADDR;
  if (L->cur.kind == TK_ID) {
    uint32_t idx;
    int k = resolve(P, L->cur.s, L->cur.len, &idx);

    if (k == B_REG)
      o->reg = idx;
    else if (k == B_SYM)
      o->sym = idx;
    else
      return undefined(P, &L->cur);
    lex_next(L);
    if (tok_punct(&L->cur, '+') || tok_punct(&L->cur, '-')) {
      int minus = tok_punct(&L->cur, '-');

      lex_next(L);
      rc = parse_int(P, &o->imm);
      if (rc)
        return rc;
      if (minus)
        o->imm = (int64_t)((uint64_t)0 - (uint64_t)o->imm);
    }
  } else {
    rc = parse_int(P, &o->imm);
    if (rc)
      return rc;
  }
  return expect_punct(P, ']');
}

static int insn_append(struct parser *P, const struct ptx_insn *in)
{
  struct ptx_module *m = P->m;
  int rc = grow(P, (void **)&m->insns, &P->cap_insns, (uint64_t)m->ninsns + 1,
                sizeof(*m->insns), MAX_INSNS, "instructions");

  if (rc)
    return rc;
  m->insns[m->ninsns++] = *in;
  return 0;
}

/*
 * "{a, b, _, 0}": registers, "_" sinks and immediates.  nvcc's bf16 code
 * packs a constant ("mov.b32 %f1, {0, %rs1};"); such an element gets a
 * register of its own, set by a mov emitted just before the instruction,
 * so that a vector operand holds nothing but register slots.
 */
static int parse_vec(struct parser *P, struct ptx_insn *in, unsigned wi,
                     struct ptx_operand *o)
{
  struct lexer *L = &P->L;
  struct lit lits[4];
  unsigned imms = 0;
  uint32_t line = L->cur.line;
  int rc;

  lex_next(L); /* '{' */
  o->kind = PTX_O_VEC;
  for (;;) {
    if (o->n >= 4)
      return perr(P, -EINVAL, L->cur.line, "vector of more than 4");
    if (L->cur.kind == TK_ID) {
      uint32_t idx;

      if (str_eq(L->cur.s, L->cur.len, "_")) {
        o->vec[o->n] = PTX_NOREG;
      } else if (resolve(P, L->cur.s, L->cur.len, &idx) == B_REG) {
        o->vec[o->n] = idx;
      } else {
        return perr(P, -EINVAL, L->cur.line, "vector element " TOKF
                    " is not a register", TOKA(&L->cur));
      }
      lex_next(L);
    } else {
      rc = parse_lit(P, &lits[o->n]);
      if (rc)
        return rc;
      imms |= 1u << o->n;
    }
    o->n++;
    if (tok_punct(&L->cur, '}'))
      break;
    rc = expect_punct(P, ',');
    if (rc)
      return rc;
  }
  lex_next(L);
  if (o->n < 2)
    return perr(P, -EINVAL, line, "vector of fewer than 2");
  if (!imms)
    return 0;
  if (wi == 0 || in->op == PTX_OP_BRA)
    return perr(P, -EINVAL, line, "immediate in a destination vector");

  /* mov packs its elements into the (wider) instruction type: mov.b32
     {a, b} has 16-bit elements; elsewhere elements have the type. */
  unsigned t = imm_type(in, wi);

  if (in->op == PTX_OP_MOV) {
    unsigned esz = ptx_type_size(in->type) / o->n;

    t = esz == 1 ? PTX_T_B8 : esz == 2 ? PTX_T_B16 : esz == 4 ?
        PTX_T_B32 : esz == 8 ? PTX_T_B64 : PTX_T_NONE;
  }
  if (!ptx_type_size(t) || t == PTX_T_PRED)
    return perr(P, -EINVAL, line, "immediate vector element of no type");
  for (unsigned i = 0; i < o->n; i++) {
    struct ptx_insn mv;
    uint64_t bits;

    if (!(imms & (1u << i)))
      continue;
    rc = lit_convert(P, &lits[i], t, line, &bits);
    if (!rc)
      rc = reg_new(P, t, 1, line, &o->vec[i]);
    if (rc)
      return rc;
    memset(&mv, 0, sizeof(mv));
    mv.op = PTX_OP_MOV;
    mv.type = (uint8_t)t;
    mv.vec = 1;
    mv.guard = PTX_NOREG;
    mv.line = line;
    mv.nops = 2;
    mv.ops[0].kind = PTX_O_REG;
    mv.ops[0].reg = o->vec[i];
    mv.ops[0].sym = PTX_NOSYM;
    mv.ops[1].kind = PTX_O_IMM;
    mv.ops[1].reg = PTX_NOREG;
    mv.ops[1].sym = PTX_NOSYM;
    mv.ops[1].imm = (int64_t)bits;
    rc = insn_append(P, &mv);
    if (rc)
      return rc;
  }
  return 0;
}

static int add_labelref(struct parser *P, const struct tok *t, uint8_t opi)
{
  int rc = grow(P, (void **)&P->lr, &P->caplr, (uint64_t)P->nlr + 1,
                sizeof(*P->lr), NONE32 - 1, "label references");

  if (rc)
    return rc;
  P->lr[P->nlr++] = (struct labelref){ .s = t->s, .len = t->len,
                                       .scope = P->sid[P->depth],
                                       .insn = P->m->ninsns,
                                       .line = t->line, .opi = opi };
  return 0;
}

/* One written operand (two for "d|p"). */
static int parse_operand(struct parser *P, struct ptx_insn *in, unsigned wi)
{
  struct lexer *L = &P->L;
  struct ptx_operand *o = op_add(P, in);
  struct tok t = L->cur;
  uint32_t idx;
  int rc, k;

  if (!o)
    return -EINVAL;
  if (tok_punct(&t, '['))
    return parse_addr(P, o);
  if (tok_punct(&t, '{'))
    return parse_vec(P, in, wi, o);
  if (tok_punct(&t, '!')) {
    lex_next(L);
    if (L->cur.kind != TK_ID ||
        resolve(P, L->cur.s, L->cur.len, &idx) != B_REG)
      return perr_tok(P, &L->cur, "a predicate register after '!'");
    o->kind = PTX_O_REG;
    o->reg = idx;
    o->flags = PTX_OF_NOT;
    lex_next(L);
    return 0;
  }
  if (t.kind == TK_NUM || tok_punct(&t, '-')) {
    struct lit l;
    uint64_t bits;

    rc = parse_lit(P, &l);
    if (rc)
      return rc;
    rc = lit_convert(P, &l, imm_type(in, wi), t.line, &bits);
    if (rc)
      return rc;
    o->kind = PTX_O_IMM;
    o->imm = (int64_t)bits;
    return 0;
  }
  if (t.kind != TK_ID)
    return perr_tok(P, &t, "an operand");
  lex_next(L);

  if (in->op == PTX_OP_BRA) {
    o->kind = PTX_O_LABEL;
    o->target = NONE32;
    return add_labelref(P, &t, (uint8_t)(in->nops - 1));
  }
  k = resolve(P, t.s, t.len, &idx);
  if (k == B_REG) {
    o->kind = PTX_O_REG;
    o->reg = idx;
    if (!tok_punct(&L->cur, '|'))
      return 0;
    /* "d|p": flatten into two operands */
    if (wi != 0 || (in->flags & PTX_F_PAIR))
      return perr(P, -EINVAL, t.line, "'|' only joins two destinations");
    lex_next(L);
    if (L->cur.kind != TK_ID ||
        resolve(P, L->cur.s, L->cur.len, &idx) != B_REG)
      return perr_tok(P, &L->cur, "a predicate register after '|'");
    lex_next(L);
    o = op_add(P, in);
    if (!o)
      return -EINVAL;
    o->kind = PTX_O_REG;
    o->reg = idx;
    in->flags |= PTX_F_PAIR;
    return 0;
  }
  if (k == B_SYM) {
    o->kind = PTX_O_SYM;
    o->sym = idx;
    if (tok_punct(&L->cur, '+') || tok_punct(&L->cur, '-')) {
      int minus = tok_punct(&L->cur, '-');

      lex_next(L);
      rc = parse_int(P, &o->imm);
      if (rc)
        return rc;
      if (minus)
        o->imm = (int64_t)((uint64_t)0 - (uint64_t)o->imm);
    }
    return 0;
  }
  if (t.s[0] == '%') {
    /* special registers: "%tid.x", "%laneid", "%envreg3" */
    uint32_t base = t.len, sub = 0;
    int sr;

    for (uint32_t i = 0; i < t.len; i++)
      if (t.s[i] == '.') {
        base = i;
        break;
      }
    sr = tab_find(sreg_tab, PTX_SR__COUNT, t.s, base);
    if (sr == PTX_SR_ENVREG) /* only as %envreg0 .. %envreg31 */
      sr = -1;
    if (sr < 0 && base > 7 && memcmp(t.s, "%envreg", 7) == 0) {
      uint32_t num = 0, i;

      for (i = 7; i < base && i < 10 && is_digit(t.s[i]); i++)
        num = num * 10 + (uint32_t)(t.s[i] - '0');
      if (i == base && num < 32 && (base == 8 || t.s[7] != '0')) {
        sr = PTX_SR_ENVREG;
        sub = num;
      }
    }
    if (sr >= 0) {
      if (base < t.len) {
        const char *c = t.s + base + 1;
        uint32_t cn = t.len - base - 1;

        if (cn != 1 || !strchr("xyzw", c[0]) || sr == PTX_SR_ENVREG)
          return perr(P, -EINVAL, t.line, "bad special register " TOKF,
                      TOKA(&t));
        sub = c[0] == 'w' ? 3 : (uint32_t)(c[0] - 'x');
      }
      o->kind = PTX_O_SREG;
      o->reg = (uint32_t)sr;
      o->sub = (uint8_t)sub;
      return 0;
    }
  }
  if (str_eq(t.s, t.len, "WARP_SZ")) { /* PTX's predefined constant */
    struct lit l = { .kind = LIT_INT, .u = 32 };
    uint64_t bits;

    rc = lit_convert(P, &l, imm_type(in, wi), t.line, &bits);
    if (rc)
      return rc;
    o->kind = PTX_O_IMM;
    o->imm = (int64_t)bits;
    return 0;
  }
  if (t.s[0] == '%' &&
      TAB_FIND(unsupported_sregs, t.s, strcspn_n(t.s, t.len, '.')) >= 0)
    return perr(P, -ENOTSUP, t.line, "special register " TOKF " is not "
                "supported", TOKA(&t));
  if (map_find(&P->map, NS_FUNC, 0, t.s, t.len))
    return perr(P, -ENOTSUP, t.line, "the address of function " TOKF
                " (function pointers) is not supported", TOKA(&t));
  return undefined(P, &t);
}

/* "(a, b, c)" of call-site .param names. */
static int parse_call_list(struct parser *P, struct ptx_operand *o)
{
  struct lexer *L = &P->L;
  uint32_t v[MAX_LIST];
  uint32_t n = 0, idx;
  int rc;

  o->kind = PTX_O_LIST;
  lex_next(L); /* '(' */
  if (!tok_punct(&L->cur, ')')) {
    for (;;) {
      if (L->cur.kind != TK_ID)
        return perr_tok(P, &L->cur, "a .param name");
      int k = resolve(P, L->cur.s, L->cur.len, &idx);

      if (k == B_REG)
        return perr(P, -ENOTSUP, L->cur.line, "register " TOKF
                    " as a call argument (only .param)", TOKA(&L->cur));
      if (k != B_SYM)
        return undefined(P, &L->cur);
      if (n >= MAX_LIST)
        return perr(P, -E2BIG, L->cur.line, "more than %d call arguments",
                    MAX_LIST);
      v[n++] = idx;
      lex_next(L);
      if (tok_punct(&L->cur, ')'))
        break;
      rc = expect_punct(P, ',');
      if (rc)
        return rc;
    }
  }
  lex_next(L);
  o->n = (uint8_t)n;
  if (n <= 4) {
    memcpy(o->vec, v, n * sizeof(v[0]));
    return 0;
  }
  return list_add(P, v, n, &o->list_off);
}

/* call[.uni] [(rets),] func [, (args)] ; */
static int parse_call(struct parser *P, struct ptx_insn *in)
{
  struct lexer *L = &P->L;
  struct ptx_operand *rets = op_add(P, in), *fn, *args;
  uint32_t idx;
  int rc;

  if (!rets)
    return -EINVAL;
  rets->kind = PTX_O_LIST;
  if (tok_punct(&L->cur, '(')) {
    rc = parse_call_list(P, rets);
    if (rc)
      return rc;
    rc = expect_punct(P, ',');
    if (rc)
      return rc;
  }
  fn = op_add(P, in);
  args = op_add(P, in);
  if (!fn || !args)
    return -EINVAL;
  args->kind = PTX_O_LIST;
  if (L->cur.kind != TK_ID)
    return perr_tok(P, &L->cur, "a function name");
  fn->kind = PTX_O_FUNC;
  struct mapent *e = map_find(&P->map, NS_FUNC, 0, L->cur.s, L->cur.len);

  if (e) {
    fn->target = e->val;
  } else if (resolve(P, L->cur.s, L->cur.len, &idx)) {
    return perr(P, -ENOTSUP, L->cur.line, "indirect call through " TOKF
                " is not supported", TOKA(&L->cur));
  } else {
    /* declared later in the module: resolved at the end */
    rc = grow(P, (void **)&P->cf, &P->capcf, (uint64_t)P->ncf + 1,
              sizeof(*P->cf), NONE32 - 1, "calls");
    if (rc)
      return rc;
    P->cf[P->ncf++] = (struct callfix){ .s = L->cur.s, .len = L->cur.len,
                                        .insn = P->m->ninsns,
                                        .line = L->cur.line };
    fn->target = NONE32;
  }
  lex_next(L);
  if (tok_punct(&L->cur, ',')) {
    lex_next(L);
    if (!tok_punct(&L->cur, '('))
      return perr(P, -ENOTSUP, L->cur.line,
                  "call with a prototype (indirect call) is not supported");
    rc = parse_call_list(P, args);
    if (rc)
      return rc;
    if (tok_punct(&L->cur, ','))
      return perr(P, -ENOTSUP, L->cur.line,
                  "call with a prototype (indirect call) is not supported");
  }
  return 0;
}

/* ---- instructions ------------------------------------------------------- */

/*
 * Written operand counts (d|p counts two) each opcode accepts, so that the
 * executor can rely on ops[0 .. nops) having the shape of the opcode.
 */
static const struct { uint8_t op, min, max; } arity_tab[] = {
  { PTX_OP_ADD, 3, 3 }, { PTX_OP_SUB, 3, 3 }, { PTX_OP_MUL, 3, 3 },
  { PTX_OP_MAD, 4, 4 }, { PTX_OP_MUL24, 3, 3 }, { PTX_OP_MAD24, 4, 4 },
  { PTX_OP_SAD, 4, 4 }, { PTX_OP_DIV, 3, 3 }, { PTX_OP_REM, 3, 3 },
  { PTX_OP_ABS, 2, 2 }, { PTX_OP_NEG, 2, 2 }, { PTX_OP_MIN, 3, 4 },
  { PTX_OP_MAX, 3, 4 }, { PTX_OP_FMA, 4, 4 }, { PTX_OP_RCP, 2, 2 },
  { PTX_OP_SQRT, 2, 2 }, { PTX_OP_RSQRT, 2, 2 }, { PTX_OP_SIN, 2, 2 },
  { PTX_OP_COS, 2, 2 }, { PTX_OP_LG2, 2, 2 }, { PTX_OP_EX2, 2, 2 },
  { PTX_OP_TANH, 2, 2 }, { PTX_OP_COPYSIGN, 3, 3 }, { PTX_OP_TESTP, 2, 2 },
  { PTX_OP_ADDC, 3, 3 }, { PTX_OP_SUBC, 3, 3 }, { PTX_OP_MADC, 4, 4 },
  { PTX_OP_AND, 3, 3 }, { PTX_OP_OR, 3, 3 }, { PTX_OP_XOR, 3, 3 },
  { PTX_OP_NOT, 2, 2 }, { PTX_OP_CNOT, 2, 2 }, { PTX_OP_SHL, 3, 3 },
  { PTX_OP_SHR, 3, 3 }, { PTX_OP_SHF, 4, 4 }, { PTX_OP_POPC, 2, 2 },
  { PTX_OP_CLZ, 2, 2 }, { PTX_OP_BREV, 2, 2 }, { PTX_OP_BFE, 4, 4 },
  { PTX_OP_BFI, 5, 5 }, { PTX_OP_BFIND, 2, 2 }, { PTX_OP_FNS, 4, 4 },
  { PTX_OP_PRMT, 4, 4 }, { PTX_OP_LOP3, 5, 5 }, { PTX_OP_DP4A, 4, 4 },
  { PTX_OP_DP2A, 4, 4 }, { PTX_OP_SETP, 3, 5 }, { PTX_OP_SET, 3, 4 },
  { PTX_OP_SELP, 4, 4 }, { PTX_OP_SLCT, 4, 4 }, { PTX_OP_MOV, 2, 2 },
  { PTX_OP_CVT, 2, 3 }, { PTX_OP_CVTA, 2, 2 }, { PTX_OP_ISSPACEP, 2, 2 },
  { PTX_OP_LD, 2, 2 }, { PTX_OP_LDU, 2, 2 }, { PTX_OP_ST, 2, 2 },
  { PTX_OP_PREFETCH, 1, 1 }, { PTX_OP_PREFETCHU, 1, 1 },
  { PTX_OP_ATOM, 3, 4 }, { PTX_OP_RED, 2, 2 }, { PTX_OP_MEMBAR, 0, 0 },
  { PTX_OP_FENCE, 0, 0 }, { PTX_OP_BRA, 1, 1 }, { PTX_OP_BRX, 2, 2 },
  { PTX_OP_CALL, 3, 3 }, { PTX_OP_RET, 0, 0 }, { PTX_OP_EXIT, 0, 0 },
  { PTX_OP_TRAP, 0, 0 }, { PTX_OP_BRKPT, 0, 0 },
  { PTX_OP_NANOSLEEP, 1, 1 }, { PTX_OP_PMEVENT, 1, 1 },
  { PTX_OP_BAR, 0, 4 }, { PTX_OP_BARRIER, 0, 4 }, { PTX_OP_SHFL, 4, 6 },
  { PTX_OP_VOTE, 2, 3 }, { PTX_OP_MATCH, 3, 4 },
  { PTX_OP_ACTIVEMASK, 1, 1 }, { PTX_OP_REDUX, 3, 3 },
  { PTX_OP_ALLOCA, 2, 3 }, { PTX_OP_STACKSAVE, 1, 1 },
  { PTX_OP_STACKRESTORE, 1, 1 },
};

/* Opcodes whose first operand is not written to. */
static int op_no_dest(const struct ptx_insn *in)
{
  switch (in->op) {
  case PTX_OP_ST: case PTX_OP_RED: case PTX_OP_PREFETCH:
  case PTX_OP_PREFETCHU: case PTX_OP_MEMBAR: case PTX_OP_FENCE:
  case PTX_OP_BRA: case PTX_OP_BRX: case PTX_OP_CALL: case PTX_OP_RET:
  case PTX_OP_EXIT: case PTX_OP_TRAP: case PTX_OP_BRKPT:
  case PTX_OP_NANOSLEEP: case PTX_OP_PMEVENT: case PTX_OP_STACKRESTORE:
    return 1;
  case PTX_OP_BAR: case PTX_OP_BARRIER:
    return in->mode != PTX_BAR_RED;
  default:
    return 0;
  }
}

static int insn_check(struct parser *P, const struct ptx_insn *in,
                      const struct tok *opc)
{
  int addr_at = -1;

  for (size_t i = 0; i < sizeof(arity_tab) / sizeof(arity_tab[0]); i++) {
    if (arity_tab[i].op != in->op)
      continue;
    if (in->nops < arity_tab[i].min || in->nops > arity_tab[i].max)
      return perr(P, -EINVAL, in->line, "wrong number of operands (%u) for "
                  TOKF, in->nops, TOKA(opc));
    break;
  }
  switch (in->op) {
  case PTX_OP_LD: case PTX_OP_LDU: case PTX_OP_ATOM: addr_at = 1; break;
  case PTX_OP_ST: case PTX_OP_RED: case PTX_OP_PREFETCH:
  case PTX_OP_PREFETCHU: addr_at = 0; break;
  default: break;
  }
  for (unsigned i = 0; i < in->nops; i++) {
    const struct ptx_operand *o = &in->ops[i];

    if ((o->kind == PTX_O_ADDR) != ((int)i == addr_at))
      return perr(P, -EINVAL, in->line, (int)i == addr_at ?
                  "operand %u of " TOKF " must be an address [...]" :
                  "operand %u of " TOKF " cannot be an address [...]",
                  i + 1, TOKA(opc));
    if (o->kind == PTX_O_VEC && in->vec > 1 && o->n != in->vec &&
        in->op != PTX_OP_MOV)
      return perr(P, -EINVAL, in->line, "vector of %u for .v%u in " TOKF,
                  o->n, in->vec, TOKA(opc));
  }
  if (in->nops && !op_no_dest(in)) {
    const struct ptx_operand *d = &in->ops[0];

    if (d->kind != PTX_O_REG && d->kind != PTX_O_VEC)
      return perr(P, -EINVAL, in->line, "the destination of " TOKF
                  " must be a register", TOKA(opc));
  }
  return 0;
}

/* Is the first dot-part of an opcode token a known unsupported opcode? */
static int op_unsupported(const char *s, size_t n)
{
  return TAB_FIND(unsupported_ops, s, n) >= 0;
}

static int parse_insn(struct parser *P)
{
  struct lexer *L = &P->L;
  struct ptx_insn in;
  struct modstate ms;
  struct tok opc;
  uint32_t idx;
  unsigned wi = 0;
  size_t p, q;
  int rc, op;

  memset(&in, 0, sizeof(in));
  memset(&ms, 0, sizeof(ms));
  in.guard = PTX_NOREG;
  in.vec = 1;
  in.line = L->cur.line;
  if (tok_punct(&L->cur, '@')) {
    lex_next(L);
    if (tok_punct(&L->cur, '!')) {
      in.neg_guard = 1;
      lex_next(L);
    }
    if (L->cur.kind != TK_ID ||
        resolve(P, L->cur.s, L->cur.len, &idx) != B_REG)
      return perr_tok(P, &L->cur, "a guard predicate register");
    in.guard = idx;
    lex_next(L);
  }
  if (L->cur.kind != TK_ID)
    return perr_tok(P, &L->cur, "an instruction");
  opc = L->cur;
  for (p = 0; p < opc.len && opc.s[p] != '.'; p++)
    ;
  op = tab_find(op_tab, PTX_OP__COUNT, opc.s, p);
  if (op < 0) {
    if (op_unsupported(opc.s, p))
      return perr(P, -ENOTSUP, opc.line, "unsupported instruction " TOKF,
                  TOKA(&opc));
    return perr(P, -EINVAL, opc.line, "unknown instruction " TOKF,
                TOKA(&opc));
  }
  in.op = (uint16_t)op;
  if (op == PTX_OP_BRX)
    return perr(P, -ENOTSUP, opc.line, "brx.idx (indirect branch) is not "
                "supported");
  for (; p < opc.len; p = q) {
    p++; /* the '.' */
    for (q = p; q < opc.len && opc.s[q] != '.'; q++)
      ;
    rc = mod_apply(&in, &ms, opc.s + p, q - p);
    if (rc == 2 || (rc == 0 && ms.ntypes == 2 && !op_two_types(in.op)))
      return perr(P, -EINVAL, opc.line, "too many types in " TOKF,
                  TOKA(&opc));
    if (rc && TAB_FIND(unsupported_mods, opc.s + p, q - p) >= 0)
      return perr(P, -ENOTSUP, opc.line, "unsupported modifier '.%.*s' in "
                  TOKF, (int)(q - p), opc.s + p, TOKA(&opc));
    if (rc)
      return perr(P, -EINVAL, opc.line, "unknown modifier '.%.*s' in " TOKF,
                  (int)(q - p > 64 ? 64 : q - p), opc.s + p, TOKA(&opc));
  }
  types_assign(&in, &ms);
  if (in.op == PTX_OP_MEMBAR || in.op == PTX_OP_FENCE)
    in.mode = in.scope;
  lex_next(L);

  if (in.op == PTX_OP_CALL) {
    rc = parse_call(P, &in);
    if (rc)
      return rc;
  } else if (!tok_punct(&L->cur, ';')) {
    for (;;) {
      rc = parse_operand(P, &in, wi++);
      if (rc)
        return rc;
      if (tok_punct(&L->cur, ';'))
        break;
      if (!tok_punct(&L->cur, ','))
        return perr_tok(P, &L->cur, "',' or ';' after an operand");
      lex_next(L);
    }
  }
  rc = expect_punct(P, ';');
  if (rc)
    return rc;
  rc = insn_check(P, &in, &opc);
  if (rc)
    return rc;
  return insn_append(P, &in);
}

/* ---- declarations ------------------------------------------------------- */

struct decl {
  unsigned type;
  unsigned vec;
  uint32_t align; /* 0: not written */
  int managed;
  const char *name;
  uint32_t namelen;
  uint32_t line;
  uint64_t dims[MAX_DIMS];
  unsigned ndims;
  int unsized;    /* first dimension written as [] */
  uint64_t esz;   /* bytes of one element (type x vec) */
  uint64_t size;  /* bytes, 0 when unsized */
};

static int is_plain_name(const struct tok *t)
{
  if (t->kind != TK_ID)
    return 0;
  for (uint32_t i = 0; i < t->len; i++)
    if (t->s[i] == '.' || t->s[i] == ':')
      return 0;
  return 1;
}

/*
 * The attributes between a state space and the name: ".align N", ".v2",
 * the type, and for parameters ".ptr" with its space and alignment.
 */
static int parse_attrs(struct parser *P, struct decl *d, int is_param)
{
  struct lexer *L = &P->L;
  int after_ptr = 0, rc;

  memset(d, 0, sizeof(*d));
  d->vec = 1;
  while (L->cur.kind == TK_DIR) {
    const char *s = L->cur.s + 1;
    uint32_t n = L->cur.len - 1, line = L->cur.line;
    int t = type_find(s, n);

    if (str_eq(s, n, "align")) {
      uint64_t a;

      lex_next(L);
      rc = parse_count(P, MAX_ALIGN, &a, "alignment");
      if (rc)
        return rc;
      if (!a || (a & (a - 1)))
        return perr(P, -EINVAL, line, "alignment %llu is not a power of 2",
                    (unsigned long long)a);
      if (!after_ptr)
        d->align = (uint32_t)a;
      continue;
    }
    if (t > 0) {
      if (d->type)
        return perr(P, -EINVAL, line, "two types in one declaration");
      d->type = (unsigned)t;
    } else if (str_eq(s, n, "v2") || str_eq(s, n, "v4")) {
      d->vec = (unsigned)(s[1] - '0');
    } else if (str_eq(s, n, "v8")) {
      return perr(P, -ENOTSUP, line, ".v8 variables are not supported");
    } else if (is_param && str_eq(s, n, "ptr")) {
      after_ptr = 1;
    } else if (is_param && after_ptr &&
               (str_eq(s, n, "global") || str_eq(s, n, "const") ||
                str_eq(s, n, "shared") || str_eq(s, n, "local"))) {
      /* .ptr .global: a hint about what the pointer points to */
    } else if (str_eq(s, n, "texref") || str_eq(s, n, "samplerref") ||
               str_eq(s, n, "surfref")) {
      return perr(P, -ENOTSUP, line, "texture, sampler and surface "
                  "references (." "%.*s) are not supported", (int)n, s);
    } else if (!is_param && str_eq(s, n, "attribute")) {
      lex_next(L);
      rc = expect_punct(P, '(');
      if (rc)
        return rc;
      if (!tok_is(&L->cur, TK_DIR, ".managed"))
        return perr(P, -ENOTSUP, line, "unsupported .attribute " TOKF,
                    TOKA(&L->cur));
      d->managed = 1;
      lex_next(L);
      rc = expect_punct(P, ')');
      if (rc)
        return rc;
      continue;
    } else {
      return perr(P, -EINVAL, line, "unexpected " TOKF " in a declaration",
                  TOKA(&L->cur));
    }
    lex_next(L);
  }
  if (!d->type)
    return perr_tok(P, &L->cur, "a type in the declaration");
  d->esz = (uint64_t)ptx_type_size(d->type) * d->vec;
  if (!d->align)
    d->align = (uint32_t)d->esz;
  return 0;
}

/* The name and the "[N][M]" / "[]" dimensions after the attributes. */
static int parse_declarator(struct parser *P, struct decl *d, int allow_unsized)
{
  struct lexer *L = &P->L;
  uint64_t n = 1;
  int rc;

  if (!is_plain_name(&L->cur))
    return perr_tok(P, &L->cur, "a name");
  d->name = L->cur.s;
  d->namelen = L->cur.len;
  d->line = L->cur.line;
  d->ndims = 0;
  d->unsized = 0;
  lex_next(L);
  while (tok_punct(&L->cur, '[')) {
    uint64_t v;

    if (d->ndims >= MAX_DIMS)
      return perr(P, -E2BIG, L->cur.line, "more than %d dimensions",
                  MAX_DIMS);
    lex_next(L);
    if (tok_punct(&L->cur, ']') && d->ndims == 0 && allow_unsized) {
      d->unsized = 1;
      v = 0;
    } else {
      rc = parse_count(P, MAX_VAR_SIZE, &v, "array size");
      if (rc)
        return rc;
    }
    rc = expect_punct(P, ']');
    if (rc)
      return rc;
    d->dims[d->ndims++] = v;
    if (d->ndims > 1 || !d->unsized) {
      if (v && n > MAX_VAR_SIZE / v)
        return perr(P, -E2BIG, d->line, "'%.*s' is larger than %llu bytes",
                    (int)(d->namelen > 64 ? 64 : d->namelen), d->name,
                    (unsigned long long)MAX_VAR_SIZE);
      n *= v;
    }
  }
  if (d->esz && n > MAX_VAR_SIZE / d->esz)
    return perr(P, -E2BIG, d->line, "'%.*s' is larger than %llu bytes",
                (int)(d->namelen > 64 ? 64 : d->namelen), d->name,
                (unsigned long long)MAX_VAR_SIZE);
  d->size = d->unsized ? 0 : n * d->esz;
  return 0;
}

/* Write element number pos of an initializer into buf (grown, zeroed). */
static int init_put(struct parser *P, uint8_t **buf, uint64_t *cap,
                    uint64_t pos, unsigned esz, uint64_t bits, uint32_t line)
{
  uint64_t need = (pos + 1) * esz;

  if (need > MAX_INIT - P->m->ninit)
    return perr(P, -E2BIG, line, "more than %u bytes of initializers",
                MAX_INIT);
  if (need > *cap) {
    uint64_t ncap = *cap ? *cap : 64;
    uint8_t *nb;

    while (ncap < need)
      ncap *= 2;
    nb = realloc(*buf, ncap);
    if (!nb)
      return perr(P, -ENOMEM, line, "out of memory");
    memset(nb + *cap, 0, ncap - *cap);
    *buf = nb;
    *cap = ncap;
  }
  /* little-endian; a .b128 element is the value sign-extended */
  for (unsigned i = 0; i < esz; i++)
    (*buf)[pos * esz + i] = i < 8 ? (uint8_t)(bits >> (8 * i)) :
                            (int64_t)bits < 0 ? 0xff : 0;
  return 0;
}

/* One initializer value: a number (an address is not supported). */
static int init_value(struct parser *P, unsigned type, uint64_t *bits)
{
  struct lexer *L = &P->L;
  struct lit l;
  uint32_t line = L->cur.line;
  int rc;

  if (L->cur.kind == TK_ID)
    return perr(P, -ENOTSUP, line, "initializer holding the address of "
                TOKF " is not supported", TOKA(&L->cur));
  rc = parse_lit(P, &l);
  if (rc)
    return rc;
  return lit_convert(P, &l, type, line, bits);
}

/*
 * "= 5", "= {1, 2, 3}", "= {{1, 2}, {3}}" for d: the bytes go to
 * ptx_module.init (zero-filled to the full size), *off says where.  An
 * unsized first dimension takes its length from the initializer.  Nested
 * braces are tracked with a stack bounded by the declared dimensions.
 */
static int parse_init(struct parser *P, struct decl *d, uint32_t *off)
{
  struct lexer *L = &P->L;
  struct ptx_module *m = P->m;
  unsigned esz = ptx_type_size(d->type), nd = d->ndims, depth = 0;
  uint64_t span[MAX_DIMS + 2], start[MAX_DIMS + 2];
  uint64_t pos = 0, maxpos = 0, cap = 0, bits;
  uint8_t *buf = NULL;
  uint32_t line = L->cur.line;
  int rc = 0;

  if (d->vec > 1)
    d->dims[nd++] = d->vec; /* a vector is one more, innermost, dimension */
  span[nd] = 1;
  for (unsigned i = nd; i-- > 0;)
    span[i] = span[i + 1] * d->dims[i];
  if (d->unsized)
    span[0] = UINT64_MAX;
  if (!d->unsized && d->size > MAX_INIT - m->ninit)
    return perr(P, -E2BIG, line, "more than %u bytes of initializers",
                MAX_INIT);

  if (!tok_punct(&L->cur, '{')) {
    if (nd)
      return perr_tok(P, &L->cur, "'{' to initialize an array");
    rc = init_value(P, d->type, &bits);
    if (!rc)
      rc = init_put(P, &buf, &cap, 0, esz, bits, line);
    maxpos = 1;
    if (rc)
      goto out_free;
  } else {
    for (;;) {
      const struct tok *t = &L->cur;

      if (tok_punct(t, '{')) {
        if (depth >= nd) {
          rc = perr(P, -EINVAL, t->line, "too many braces in the "
                    "initializer of '%.*s'",
                    (int)(d->namelen > 64 ? 64 : d->namelen), d->name);
          goto out_free;
        }
        start[depth++] = pos;
        lex_next(L);
        continue;
      }
      if (tok_punct(t, '}')) {
        if (!depth) {
          rc = perr_tok(P, t, "an initializer");
          goto out_free;
        }
        depth--;
        if (span[depth] != UINT64_MAX)
          pos = start[depth] + span[depth];
        lex_next(L);
        if (!depth)
          break;
      } else {
        if (!depth || (span[depth - 1] != UINT64_MAX &&
                       pos >= start[depth - 1] + span[depth - 1])) {
          rc = perr(P, -EINVAL, t->line, "too many initializers for "
                    "'%.*s'", (int)(d->namelen > 64 ? 64 : d->namelen),
                    d->name);
          goto out_free;
        }
        line = t->line;
        rc = init_value(P, d->type, &bits);
        if (!rc)
          rc = init_put(P, &buf, &cap, pos, esz, bits, line);
        if (rc)
          goto out_free;
        pos++;
        if (pos > maxpos)
          maxpos = pos;
      }
      if (tok_punct(&L->cur, ','))
        lex_next(L);
      else if (!tok_punct(&L->cur, '}')) {
        rc = perr_tok(P, &L->cur, "',' or '}'");
        goto out_free;
      }
    }
  }
  if (d->unsized) {
    uint64_t row = span[1];
    uint64_t rows = row ? (maxpos + row - 1) / row : 0;

    d->dims[0] = rows;
    if (rows && row * esz > MAX_VAR_SIZE / rows) {
      rc = perr(P, -E2BIG, line, "initializer too large");
      goto out_free;
    }
    d->size = rows * row * esz;
    d->unsized = 0;
    if (d->size > MAX_INIT - m->ninit) {
      rc = perr(P, -E2BIG, line, "more than %u bytes of initializers",
                MAX_INIT);
      goto out_free;
    }
  }
  rc = grow(P, (void **)&m->init, &P->cap_init, m->ninit + d->size, 1,
            MAX_INIT, "bytes of initializers");
  if (rc)
    goto out_free;
  if (d->size) {
    memset(m->init + m->ninit, 0, d->size);
    if (cap)
      memcpy(m->init + m->ninit, buf, cap < d->size ? cap : d->size);
  }
  *off = (uint32_t)m->ninit;
  m->ninit += d->size;
out_free:
  free(buf);
  return rc;
}

/* Give a shared symbol its place in the module's static layout. */
static int shared_place(struct parser *P, struct ptx_symbol *y)
{
  uint64_t off = align_up(P->shared_end, y->align);

  if (off > MAX_AREA || y->size > MAX_AREA - off)
    return perr(P, -E2BIG, P->L.cur.line, "more than %llu bytes of shared "
                "memory", (unsigned long long)MAX_AREA);
  y->offset = off;
  P->shared_end = off + y->size;
  if (y->align > P->shared_align)
    P->shared_align = y->align;
  return 0;
}

/*
 * .global/.const/.shared (module scope or in a function) and .local (in a
 * function) variables, possibly several names per declaration.
 */
static int parse_var(struct parser *P, unsigned space, unsigned link,
                     int in_func)
{
  struct lexer *L = &P->L;
  struct ptx_module *m = P->m;
  struct decl d;
  int rc;

  rc = parse_attrs(P, &d, 0);
  if (rc)
    return rc;
  for (;;) {
    struct ptx_symbol *y;
    uint32_t idx, initoff = 0;
    int kind, has_init = 0;

    rc = parse_declarator(P, &d, 1);
    if (rc)
      return rc;
    if (tok_punct(&L->cur, '=')) {
      if (space != PTX_SP_GLOBAL && space != PTX_SP_CONST)
        return perr(P, -EINVAL, L->cur.line, "only .global and .const "
                    "variables take initializers");
      if (link & PTX_SYMF_EXTERN)
        return perr(P, -EINVAL, L->cur.line, "an .extern variable cannot "
                    "be initialized");
      lex_next(L);
      rc = parse_init(P, &d, &initoff);
      if (rc)
        return rc;
      has_init = 1;
    }
    switch (space) {
    case PTX_SP_GLOBAL: kind = PTX_SYM_GLOBAL; break;
    case PTX_SP_CONST: kind = PTX_SYM_CONST; break;
    case PTX_SP_LOCAL: kind = PTX_SYM_LOCAL; break;
    default:
      kind = d.unsized ? PTX_SYM_SHARED_EXTERN : PTX_SYM_SHARED;
      break;
    }
    if (d.unsized && kind == PTX_SYM_LOCAL)
      return perr(P, -EINVAL, d.line, "a .local array needs a size");

    /* An .extern declaration and the definition are one symbol. */
    struct mapent *e = map_find(&P->map, NS_ID, 0, d.name, d.namelen);

    if (!in_func && e && e->val != NONE32 && P->b[e->val].depth == 0 &&
        P->b[e->val].kind == B_SYM) {
      y = &m->syms[P->b[e->val].idx];
      if (y->kind != kind || !((y->flags | link) & PTX_SYMF_EXTERN))
        return perr(P, -EINVAL, d.line, "'%.*s' declared twice",
                    (int)(d.namelen > 64 ? 64 : d.namelen), d.name);
      if ((y->flags & PTX_SYMF_EXTERN) && !(link & PTX_SYMF_EXTERN)) {
        if (kind == PTX_SYM_SHARED)
          return perr(P, -ENOTSUP, d.line, "'%.*s': an .extern .shared "
                      "array defined later is not supported",
                      (int)(d.namelen > 64 ? 64 : d.namelen), d.name);
        y->flags = (uint16_t)((link & ~PTX_SYMF_EXTERN) |
                              (has_init ? PTX_SYMF_INIT : 0) |
                              (d.managed ? PTX_SYMF_MANAGED : 0));
        y->type = (uint8_t)d.type;
        y->align = d.align;
        y->size = d.size;
        y->init_off = initoff;
      }
    } else {
      rc = sym_new(P, d.name, d.namelen, kind, d.type, d.line, &idx);
      if (rc)
        return rc;
      y = &m->syms[idx];
      y->align = d.align;
      y->size = d.size;
      y->flags = (uint16_t)(link | (has_init ? PTX_SYMF_INIT : 0) |
                            (d.managed ? PTX_SYMF_MANAGED : 0));
      y->init_off = initoff;
      if (in_func)
        y->func = P->fidx;
      if (kind == PTX_SYM_SHARED) {
        rc = shared_place(P, y);
        if (rc)
          return rc;
      } else if (kind == PTX_SYM_SHARED_EXTERN) {
        if (y->align > P->shared_align)
          P->shared_align = y->align;
      } else if (kind == PTX_SYM_LOCAL) {
        uint64_t off = align_up(P->local_end, y->align);

        if (off > MAX_AREA || y->size > MAX_AREA - off)
          return perr(P, -E2BIG, d.line, "more than %llu bytes of .local",
                      (unsigned long long)MAX_AREA);
        y->offset = off;
        P->local_end = off + y->size;
        if (y->align > P->local_align)
          P->local_align = y->align;
      }
      rc = bind(P, NS_ID, d.name, d.namelen, B_SYM, idx, 0, d.line);
      if (rc)
        return rc;
    }
    if (tok_punct(&L->cur, ';'))
      break;
    rc = expect_punct(P, ',');
    if (rc)
      return rc;
  }
  lex_next(L);
  return 0;
}

/* .reg .type %a, %b<N>, ... ; */
static int parse_reg(struct parser *P)
{
  struct lexer *L = &P->L;
  uint32_t line = L->cur.line;
  int type = -1, rc;

  lex_next(L);
  while (L->cur.kind == TK_DIR) {
    int t = type_find(L->cur.s + 1, L->cur.len - 1);

    if (t < 0 || type >= 0)
      return perr(P, t < 0 && (tok_is(&L->cur, TK_DIR, ".v2") ||
                               tok_is(&L->cur, TK_DIR, ".v4")) ?
                  -ENOTSUP : -EINVAL, L->cur.line,
                  "unsupported " TOKF " in a .reg declaration",
                  TOKA(&L->cur));
    type = t;
    lex_next(L);
  }
  if (type < 0)
    return perr(P, -EINVAL, line, ".reg without a type");
  for (;;) {
    struct tok name = L->cur;
    uint32_t base;

    if (!is_plain_name(&name))
      return perr_tok(P, &name, "a register name");
    lex_next(L);
    if (tok_punct(&L->cur, '<')) {
      uint64_t count;

      lex_next(L);
      rc = parse_count(P, MAX_REGS, &count, "register count");
      if (rc)
        return rc;
      rc = expect_punct(P, '>');
      if (rc)
        return rc;
      rc = reg_new(P, (unsigned)type, (uint32_t)count, name.line, &base);
      if (!rc)
        rc = bind(P, NS_RANGE, name.s, name.len, B_RANGE, base,
                  (uint32_t)count, name.line);
    } else {
      rc = reg_new(P, (unsigned)type, 1, name.line, &base);
      if (!rc)
        rc = bind(P, NS_ID, name.s, name.len, B_REG, base, 1, name.line);
    }
    if (rc)
      return rc;
    if (tok_punct(&L->cur, ';'))
      break;
    rc = expect_punct(P, ',');
    if (rc)
      return rc;
  }
  lex_next(L);
  return 0;
}

/*
 * One ".param ..." (function header or call site): a symbol of kind,
 * placed at the next aligned offset of the area ending at *end, owned by
 * function fidx.  Bound at the current scope when bind_it.
 */
static int parse_param(struct parser *P, int kind, uint64_t *end,
                       int bind_it, uint32_t *out)
{
  struct lexer *L = &P->L;
  struct ptx_symbol *y;
  struct decl d;
  uint64_t off;
  int rc;

  if (tok_is(&L->cur, TK_DIR, ".reg"))
    return perr(P, -ENOTSUP, L->cur.line, ".reg parameters are not "
                "supported");
  if (!tok_is(&L->cur, TK_DIR, ".param"))
    return perr_tok(P, &L->cur, "'.param'");
  lex_next(L);
  rc = parse_attrs(P, &d, 1);
  if (rc)
    return rc;
  rc = parse_declarator(P, &d, 0);
  if (rc)
    return rc;
  off = align_up(*end, d.align);
  if (off > MAX_AREA || d.size > MAX_AREA - off)
    return perr(P, -E2BIG, d.line, "more than %llu bytes of parameters",
                (unsigned long long)MAX_AREA);
  rc = sym_new(P, d.name, d.namelen, kind, d.type, d.line, out);
  if (rc)
    return rc;
  y = &P->m->syms[*out];
  y->align = d.align;
  y->size = d.size;
  y->offset = off;
  y->func = P->fidx;
  *end = off + d.size;
  if (bind_it)
    return bind(P, NS_ID, d.name, d.namelen, B_SYM, *out, 0, d.line);
  return 0;
}

/* ---- functions ------------------------------------------------------------ */

static int scratch_push(struct parser *P, uint32_t v)
{
  int rc = grow(P, (void **)&P->scratch, &P->capscratch,
                (uint64_t)P->nscratch + 1, sizeof(*P->scratch), MAX_SYMS,
                "parameters");

  if (rc)
    return rc;
  P->scratch[P->nscratch++] = v;
  return 0;
}

/* "( .param ..., .param ... )" into the scratch list. */
static int parse_param_list(struct parser *P, int kind, uint64_t *end)
{
  struct lexer *L = &P->L;
  uint32_t idx;
  int rc;

  lex_next(L); /* '(' */
  if (tok_punct(&L->cur, ')')) {
    lex_next(L);
    return 0;
  }
  for (;;) {
    rc = parse_param(P, kind, end, 1, &idx);
    if (!rc)
      rc = scratch_push(P, idx);
    if (rc)
      return rc;
    if (tok_punct(&L->cur, ')'))
      break;
    rc = expect_punct(P, ',');
    if (rc)
      return rc;
  }
  lex_next(L);
  return 0;
}

/* Up to three numbers "a[, b[, c]]" for .maxntid/.reqntid. */
static int parse_dim3(struct parser *P, uint32_t *v, unsigned maxn)
{
  struct lexer *L = &P->L;
  uint64_t x;
  int rc;

  /* ".maxntid 256" is 256 x 1 x 1 */
  for (unsigned i = 0; v && i < maxn; i++)
    v[i] = 1;
  for (unsigned i = 0; i < maxn; i++) {
    rc = parse_count(P, UINT32_MAX, &x, "directive argument");
    if (rc)
      return rc;
    if (v)
      v[i] = (uint32_t)x;
    if (!tok_punct(&L->cur, ','))
      return 0;
    lex_next(L);
  }
  return perr_tok(P, &L->cur, "at most 3 numbers");
}

static int skip_pragma(struct parser *P)
{
  struct lexer *L = &P->L;

  lex_next(L);
  for (;;) {
    if (L->cur.kind != TK_STR)
      return perr_tok(P, &L->cur, "a string after .pragma");
    lex_next(L);
    if (!tok_punct(&L->cur, ','))
      break;
    lex_next(L);
  }
  return expect_punct(P, ';');
}

/* Directives that name features the parser does not support. */
static int dir_unsupported(const struct tok *t)
{
  return tok_is(t, TK_DIR, ".callprototype") ||
         tok_is(t, TK_DIR, ".branchtargets") ||
         tok_is(t, TK_DIR, ".calltargets") ||
         tok_is(t, TK_DIR, ".alias") || tok_is(t, TK_DIR, ".texref") ||
         tok_is(t, TK_DIR, ".samplerref") || tok_is(t, TK_DIR, ".surfref");
}

/* Resolve the branch targets of the function just parsed. */
static int labels_resolve(struct parser *P)
{
  struct ptx_module *m = P->m;
  uint32_t fscope = P->sid[1];

  for (uint32_t i = 0; i < P->nlr; i++) {
    const struct labelref *r = &P->lr[i];
    uint32_t sc = r->scope;
    struct mapent *e;

    for (;;) {
      e = map_find(&P->map, NS_LABEL, sc, r->s, r->len);
      if (e || sc == fscope)
        break;
      sc = P->sparent[sc];
    }
    if (!e)
      return perr(P, -EINVAL, r->line, "undefined label '%.*s'",
                  (int)(r->len > 64 ? 64 : r->len), r->s);
    m->insns[r->insn].ops[r->opi].target = e->val;
  }
  P->nlr = 0;
  return 0;
}

/* The statements of a function body, after its '{', to the matching '}'. */
static int parse_body(struct parser *P)
{
  struct lexer *L = &P->L;
  int rc;

  lex_next(L); /* '{' */
  for (;;) {
    const struct tok *t = &L->cur;

    if (tok_punct(t, '}')) {
      lex_next(L);
      if (P->depth == 1)
        return 0;
      scope_close(P);
      continue;
    }
    if (tok_punct(t, '{')) {
      rc = scope_open(P);
      if (rc)
        return rc;
      lex_next(L);
      continue;
    }
    if (t->kind == TK_DIR) {
      if (tok_is(t, TK_DIR, ".reg")) {
        rc = parse_reg(P);
      } else if (tok_is(t, TK_DIR, ".local")) {
        lex_next(L);
        rc = parse_var(P, PTX_SP_LOCAL, 0, 1);
      } else if (tok_is(t, TK_DIR, ".shared")) {
        lex_next(L);
        rc = parse_var(P, PTX_SP_SHARED, 0, 1);
      } else if (tok_is(t, TK_DIR, ".param")) {
        uint32_t idx;

        rc = parse_param(P, PTX_SYM_FPARAM, &P->fparam_end, 1, &idx);
        if (!rc)
          rc = expect_punct(P, ';');
      } else if (tok_is(t, TK_DIR, ".pragma")) {
        rc = skip_pragma(P);
      } else if (tok_is(t, TK_DIR, ".loc") || tok_is(t, TK_DIR, ".file")) {
        lex_skip_line(L);
        rc = 0;
      } else if (dir_unsupported(t)) {
        rc = perr(P, -ENOTSUP, t->line, TOKF " is not supported", TOKA(t));
      } else if (tok_is(t, TK_DIR, ".global") ||
                 tok_is(t, TK_DIR, ".const")) {
        rc = perr(P, -ENOTSUP, t->line, TOKF " variables inside a "
                  "function are not supported", TOKA(t));
      } else {
        rc = perr(P, -EINVAL, t->line, "unknown directive " TOKF
                  " in a function body", TOKA(t));
      }
      if (rc)
        return rc;
      continue;
    }
    if (t->kind == TK_ID && tok_punct(lex_peek(L), ':')) {
      uint32_t scope = P->sid[P->depth];

      if (!is_plain_name(t))
        return perr(P, -EINVAL, t->line, "bad label " TOKF, TOKA(t));
      if (map_find(&P->map, NS_LABEL, scope, t->s, t->len))
        return perr(P, -EINVAL, t->line, "label " TOKF " defined twice",
                    TOKA(t));
      rc = map_put(&P->map, NS_LABEL, scope, t->s, t->len, P->m->ninsns);
      if (rc)
        return perr(P, rc, t->line, "out of memory");
      lex_next(L);
      lex_next(L);
      continue;
    }
    if (t->kind == TK_ID || tok_punct(t, '@')) {
      rc = parse_insn(P);
      if (rc)
        return rc;
      continue;
    }
    if (t->kind == TK_EOF)
      return perr(P, -EINVAL, t->line, "end of input inside a function");
    return perr(P, -EINVAL, t->line, "unexpected " TOKF " in a function "
                "body", TOKA(t));
  }
}

/*
 * .entry/.func: header, performance directives, then ';' (a declaration)
 * or a body.  A declaration and the later definition are one function;
 * the definition's parameters are the ones kept.
 */
static int parse_function(struct parser *P, int is_entry, unsigned link)
{
  struct lexer *L = &P->L;
  struct ptx_module *m = P->m;
  struct ptx_func *f;
  uint64_t end = 0;
  uint32_t nrets = 0, fidx, line;
  struct tok name;
  int rc, exists;

  lex_next(L); /* .entry / .func */
  rc = scope_open(P);
  if (rc)
    return rc;
  P->nscratch = 0;
  P->fidx = NONE32;
  P->fparam_end = 0;
  if (tok_punct(&L->cur, '(')) {
    if (is_entry)
      return perr(P, -EINVAL, L->cur.line, "an .entry returns nothing");
    rc = parse_param_list(P, PTX_SYM_FPARAM, &end);
    if (rc)
      return rc;
    nrets = P->nscratch;
  }
  name = L->cur;
  if (!is_plain_name(&name))
    return perr_tok(P, &name, "a function name");
  line = name.line;
  lex_next(L);
  if (tok_punct(&L->cur, '(')) {
    rc = parse_param_list(P, is_entry ? PTX_SYM_KPARAM : PTX_SYM_FPARAM,
                          &end);
    if (rc)
      return rc;
  }

  struct mapent *e = map_find(&P->map, NS_FUNC, 0, name.s, name.len);

  exists = e != NULL;
  if (exists) {
    fidx = e->val;
    if (m->funcs[fidx].is_entry != is_entry)
      return perr(P, -EINVAL, line, "'%.*s' declared as both .entry and "
                  ".func", (int)(name.len > 64 ? 64 : name.len), name.s);
  } else {
    rc = grow(P, (void **)&m->funcs, &P->cap_funcs, (uint64_t)m->nfuncs + 1,
              sizeof(*m->funcs), MAX_FUNCS, "functions");
    if (rc)
      return rc;
    fidx = m->nfuncs;
    f = &m->funcs[fidx];
    memset(f, 0, sizeof(*f));
    f->name = name_dup(name.s, name.len);
    if (!f->name)
      return perr(P, -ENOMEM, line, "out of memory");
    f->is_entry = (uint8_t)is_entry;
    f->is_extern = 1; /* until a body is seen */
    m->nfuncs++;
    rc = map_put(&P->map, NS_FUNC, 0, name.s, name.len, fidx);
    if (rc)
      return perr(P, rc, line, "out of memory");
  }
  P->fidx = fidx;
  for (uint32_t i = 0; i < P->nscratch; i++)
    m->syms[P->scratch[i]].func = fidx;
  f = &m->funcs[fidx];

  /* performance tuning directives */
  for (;;) {
    const struct tok *t = &L->cur;

    if (tok_is(t, TK_DIR, ".maxntid") || tok_is(t, TK_DIR, ".reqntid")) {
      uint32_t *v = t->s[1] == 'm' ? f->maxntid : f->reqntid;

      lex_next(L);
      rc = parse_dim3(P, v, 3);
    } else if (tok_is(t, TK_DIR, ".minnctapersm") ||
               tok_is(t, TK_DIR, ".maxnreg")) {
      uint32_t *v = t->s[2] == 'i' ? &f->minnctapersm : &f->maxnreg;

      lex_next(L);
      rc = parse_dim3(P, v, 1);
    } else if (tok_is(t, TK_DIR, ".maxclusterrank") ||
               tok_is(t, TK_DIR, ".reqnctapercluster")) {
      lex_next(L);
      rc = parse_dim3(P, NULL, 3);
    } else if (tok_is(t, TK_DIR, ".noreturn") ||
               tok_is(t, TK_DIR, ".explicitcluster")) {
      lex_next(L);
      rc = 0;
    } else if (tok_is(t, TK_DIR, ".pragma")) {
      rc = skip_pragma(P);
    } else {
      break;
    }
    if (rc)
      return rc;
  }

  /* The first declaration or the definition sets the parameters. */
  if (!exists || tok_punct(&L->cur, '{')) {
    if (exists && !f->is_extern)
      return perr(P, -EINVAL, line, "function '%.*s' defined twice",
                  (int)(name.len > 64 ? 64 : name.len), name.s);
    f->nrets = nrets;
    f->nparams = P->nscratch - nrets;
    rc = list_add(P, P->scratch, nrets, &f->rets);
    if (!rc)
      rc = list_add(P, P->nscratch ? P->scratch + nrets : NULL, f->nparams,
                    &f->params);
    if (rc)
      return rc;
    f->param_size = end;
    f->fparam_size = is_entry ? 0 : end;
  }
  if (tok_punct(&L->cur, ';')) {
    lex_next(L);
    scope_close(P);
    P->fidx = NONE32;
    return 0;
  }
  if (!tok_punct(&L->cur, '{'))
    return perr_tok(P, &L->cur, "'{' or ';' after the function header");

  /* the body */
  P->fparam_end = is_entry ? 0 : end;
  P->nregs = 0;
  P->local_end = 0;
  P->local_align = 1;
  P->nlr = 0;
  f->insn_start = m->ninsns;
  rc = parse_body(P);
  if (rc)
    return rc;
  rc = labels_resolve(P);
  if (rc)
    return rc;
  f = &m->funcs[fidx];
  f->is_extern = 0;
  f->insn_count = m->ninsns - f->insn_start;
  f->nregs = P->nregs;
  if (P->nregs) {
    f->reg_types = malloc(P->nregs);
    if (!f->reg_types)
      return perr(P, -ENOMEM, line, "out of memory");
    memcpy(f->reg_types, P->rtypes, P->nregs);
  }
  f->local_size = P->local_end;
  f->local_align = P->local_align;
  f->fparam_size = P->fparam_end;
  if (!is_entry)
    f->param_size = P->fparam_end;
  scope_close(P);
  P->fidx = NONE32;
  return 0;
}

/* ---- module ------------------------------------------------------------- */

static int parse_version(struct parser *P)
{
  struct lexer *L = &P->L;
  const struct tok *t;
  uint32_t maj = 0, min = 0, i = 0;

  lex_next(L);
  t = &L->cur;
  if (t->kind != TK_NUM)
    return perr_tok(P, t, "a version number");
  for (; i < t->len && is_digit(t->s[i]) && maj < 1000; i++)
    maj = maj * 10 + (uint32_t)(t->s[i] - '0');
  if (i == 0 || i >= t->len || t->s[i] != '.' || i + 1 >= t->len)
    return perr(P, -EINVAL, t->line, "bad .version " TOKF, TOKA(t));
  for (i++; i < t->len && is_digit(t->s[i]) && min < 1000; i++)
    min = min * 10 + (uint32_t)(t->s[i] - '0');
  if (i != t->len)
    return perr(P, -EINVAL, t->line, "bad .version " TOKF, TOKA(t));
  if (maj > 9)
    return perr(P, -ENOTSUP, t->line, "PTX ISA version %u.%u is newer than "
                "the 9.x this parser supports", maj, min);
  P->m->version_major = maj;
  P->m->version_minor = min;
  lex_next(L);
  return 0;
}

static int parse_target(struct parser *P)
{
  struct lexer *L = &P->L;
  int first = 1;

  lex_next(L);
  for (;;) {
    const struct tok *t = &L->cur;

    if (t->kind != TK_ID)
      return perr_tok(P, t, "a target");
    if (first) {
      uint32_t sm = 0, i = 3;

      if (t->len < 4 || memcmp(t->s, "sm_", 3) != 0 || !is_digit(t->s[3]))
        return perr(P, -EINVAL, t->line, "bad .target " TOKF, TOKA(t));
      for (; i < t->len && is_digit(t->s[i]) && sm < 100000; i++)
        sm = sm * 10 + (uint32_t)(t->s[i] - '0');
      P->m->target_sm = sm;
    } else if (tok_is(t, TK_ID, "map_f64_to_f32")) {
      return perr(P, -ENOTSUP, t->line, ".target map_f64_to_f32 is not "
                  "supported");
    }
    first = 0;
    lex_next(L);
    if (!tok_punct(&L->cur, ','))
      return 0;
    lex_next(L);
  }
}

/* .section name { ... }: debug data, skipped whole. */
static int skip_section(struct parser *P)
{
  struct lexer *L = &P->L;
  uint32_t line = L->cur.line;
  uint64_t depth = 0;

  lex_next(L);
  if (L->cur.kind != TK_DIR && L->cur.kind != TK_ID)
    return perr_tok(P, &L->cur, "a section name");
  lex_next(L);
  if (!tok_punct(&L->cur, '{'))
    return perr_tok(P, &L->cur, "'{' after .section");
  for (;;) {
    if (L->cur.kind == TK_EOF)
      return perr(P, -EINVAL, line, "unterminated .section");
    if (tok_punct(&L->cur, '{'))
      depth++;
    else if (tok_punct(&L->cur, '}') && --depth == 0)
      break;
    lex_next(L);
  }
  lex_next(L);
  return 0;
}

static int parse_module(struct parser *P)
{
  struct lexer *L = &P->L;
  int rc, have_version = 0;

  while (L->cur.kind != TK_EOF) {
    const struct tok *t = &L->cur;
    unsigned link = 0;

    if (t->kind == TK_BAD)
      return perr(P, -EINVAL, t->line, "unexpected " TOKF, TOKA(t));
    if (t->kind != TK_DIR)
      return perr(P, -EINVAL, t->line, "expected a directive, found " TOKF,
                  TOKA(t));
    if (tok_is(t, TK_DIR, ".version")) {
      if (have_version)
        return perr(P, -EINVAL, t->line, "a second .version");
      have_version = 1;
      rc = parse_version(P);
      if (rc)
        return rc;
      continue;
    }
    if (!have_version && !tok_is(t, TK_DIR, ".file") &&
        !tok_is(t, TK_DIR, ".loc"))
      return perr(P, -EINVAL, t->line, "the module must start with "
                  ".version, found " TOKF, TOKA(t));
    if (tok_is(t, TK_DIR, ".target")) {
      rc = parse_target(P);
    } else if (tok_is(t, TK_DIR, ".address_size")) {
      uint64_t v;
      uint32_t line = t->line;

      lex_next(L);
      rc = parse_count(P, 1024, &v, ".address_size");
      if (!rc && v == 32)
        rc = perr(P, -ENOTSUP, line, ".address_size 32 is not supported");
      else if (!rc && v != 64)
        rc = perr(P, -EINVAL, line, "bad .address_size %llu",
                  (unsigned long long)v);
      P->m->address_size = 64;
    } else if (tok_is(t, TK_DIR, ".file") || tok_is(t, TK_DIR, ".loc")) {
      lex_skip_line(L);
      rc = 0;
    } else if (tok_is(t, TK_DIR, ".section")) {
      rc = skip_section(P);
    } else if (tok_is(t, TK_DIR, ".pragma")) {
      rc = skip_pragma(P);
    } else {
      /* linkage, then a function or a variable */
      for (;;) {
        if (tok_is(&L->cur, TK_DIR, ".visible"))
          link |= PTX_SYMF_VISIBLE;
        else if (tok_is(&L->cur, TK_DIR, ".extern"))
          link |= PTX_SYMF_EXTERN;
        else if (tok_is(&L->cur, TK_DIR, ".weak") ||
                 tok_is(&L->cur, TK_DIR, ".common"))
          link |= PTX_SYMF_WEAK;
        else
          break;
        lex_next(L);
      }
      t = &L->cur;
      if (tok_is(t, TK_DIR, ".entry") || tok_is(t, TK_DIR, ".func")) {
        rc = parse_function(P, t->s[1] == 'e', link);
      } else if (tok_is(t, TK_DIR, ".global")) {
        lex_next(L);
        rc = parse_var(P, PTX_SP_GLOBAL, link, 0);
      } else if (tok_is(t, TK_DIR, ".const")) {
        lex_next(L);
        rc = parse_var(P, PTX_SP_CONST, link, 0);
      } else if (tok_is(t, TK_DIR, ".shared")) {
        lex_next(L);
        rc = parse_var(P, PTX_SP_SHARED, link, 0);
      } else if (tok_is(t, TK_DIR, ".local")) {
        rc = perr(P, -ENOTSUP, t->line, "module-scope .local variables are "
                  "not supported");
      } else if (dir_unsupported(t)) {
        rc = perr(P, -ENOTSUP, t->line, TOKF " is not supported", TOKA(t));
      } else if (t->kind == TK_DIR) {
        rc = perr(P, -EINVAL, t->line, "unknown directive " TOKF, TOKA(t));
      } else {
        rc = perr_tok(P, t, "a declaration");
      }
    }
    if (rc)
      return rc;
  }
  if (!have_version)
    return perr(P, -EINVAL, L->cur.line, "no .version directive");
  return 0;
}

/* After the whole module: calls to later functions, extern shared. */
static int parse_finish(struct parser *P)
{
  struct ptx_module *m = P->m;

  for (uint32_t i = 0; i < P->ncf; i++) {
    const struct callfix *c = &P->cf[i];
    struct mapent *e = map_find(&P->map, NS_FUNC, 0, c->s, c->len);

    if (!e)
      return perr(P, -EINVAL, c->line, "call to undeclared function "
                  "'%.*s'", (int)(c->len > 64 ? 64 : c->len), c->s);
    m->insns[c->insn].ops[1].target = e->val;
  }
  m->shared_static_size = P->shared_end;
  m->shared_align = P->shared_align > 16 ? P->shared_align : 16;
  for (uint32_t i = 0; i < m->nsyms; i++)
    if (m->syms[i].kind == PTX_SYM_SHARED_EXTERN)
      m->syms[i].offset = align_up(m->shared_static_size, m->syms[i].align);
  if (!m->address_size)
    m->address_size = 64; /* see the comment at ptx_parse */
  return 0;
}

static void parser_release(struct parser *P)
{
  free(P->map.e);
  free(P->b);
  free(P->sparent);
  free(P->lr);
  free(P->cf);
  free(P->rtypes);
  free(P->scratch);
  if (P->cloc)
    freelocale(P->cloc);
}

/*
 * A module without .address_size is taken as 64-bit (PTX says 32, but no
 * compiler in use emits that, and hand-written test PTX often omits it);
 * an explicit ".address_size 32" is refused.
 */
int ptx_parse(const char *text, size_t len, struct ptx_module **out,
              char *err, size_t errlen)
{
  struct parser *P;
  int rc;

  if (err && errlen)
    err[0] = 0;
  if (!out || (!text && len))
    return -EINVAL;
  *out = NULL;
  if (len >= MAX_INPUT) {
    if (err && errlen)
      snprintf(err, errlen, "line 1: PTX text larger than %u bytes",
               MAX_INPUT);
    return -E2BIG;
  }
  P = calloc(1, sizeof(*P));
  if (!P)
    return -ENOMEM;
  P->err = err;
  P->errlen = err ? errlen : 0;
  P->m = calloc(1, sizeof(*P->m));
  if (!P->m) {
    rc = -ENOMEM;
    goto out_parser;
  }
  P->fidx = NONE32;
  lex_init(&P->L, text ? text : "", len);
  /* scope id 0 is the module */
  rc = grow(P, (void **)&P->sparent, &P->capscopes, 1, sizeof(*P->sparent),
            NONE32 - 1, "scopes");
  if (rc)
    goto out_module;
  P->sparent[0] = 0;
  P->nscopes = 1;
  rc = parse_module(P);
  if (!rc)
    rc = parse_finish(P);
  if (rc)
    goto out_module;
  *out = P->m;
  P->m = NULL;
  goto out_parser;
out_module:
  if (!P->have_err && err && errlen)
    snprintf(err, errlen, "line %u: parse failed (%d)", P->L.cur.line, rc);
  ptx_module_free(P->m);
out_parser:
  parser_release(P);
  free(P);
  return rc;
}

void ptx_module_free(struct ptx_module *m)
{
  if (!m)
    return;
  for (uint32_t i = 0; i < m->nfuncs; i++) {
    free(m->funcs[i].name);
    free(m->funcs[i].reg_types);
  }
  for (uint32_t i = 0; i < m->nsyms; i++)
    free(m->syms[i].name);
  free(m->funcs);
  free(m->syms);
  free(m->insns);
  free(m->lists);
  free(m->init);
  free(m);
}

int ptx_module_find_func(const struct ptx_module *m, const char *name)
{
  if (!m || !name)
    return -1;
  for (uint32_t i = 0; i < m->nfuncs; i++)
    if (strcmp(m->funcs[i].name, name) == 0)
      return (int)i;
  return -1;
}

int ptx_module_find_sym(const struct ptx_module *m, const char *name)
{
  if (!m || !name)
    return -1;
  for (uint32_t i = 0; i < m->nsyms; i++)
    if (m->syms[i].func == NONE32 && strcmp(m->syms[i].name, name) == 0)
      return (int)i;
  return -1;
}
