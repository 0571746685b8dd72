/*
 * ptx_coverage.c: every instruction form the test programs use is one the
 * emulated device implements.
 *
 *   ptx_coverage FILE.ptx...
 *
 * Parses each file (the PTX nvcc emits for the tests/apps programs, generated at
 * build time), collects the canonical key of every instruction (opcode,
 * types and modifiers: ptx_exec_key), and prints each key with how often
 * it occurs and whether the executor implements it.  Fails, listing them,
 * if any key is not implemented or a module does not pass
 * ptx_exec_prepare (which also checks the extern functions called).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ptx_exec.h"

struct key {
  char name[96];
  unsigned count;
  int supported;
  const char *first_file;
  unsigned first_line;
};

static struct key *keys;
static size_t nkeys, capkeys;

static struct key *key_get(const char *name)
{
  for (size_t i = 0; i < nkeys; i++)
    if (strcmp(keys[i].name, name) == 0)
      return &keys[i];
  if (nkeys == capkeys) {
    capkeys = capkeys ? capkeys * 2 : 256;
    keys = realloc(keys, capkeys * sizeof(*keys));
    if (!keys) {
      perror("realloc");
      exit(2);
    }
  }
  memset(&keys[nkeys], 0, sizeof(keys[nkeys]));
  snprintf(keys[nkeys].name, sizeof(keys[nkeys].name), "%s", name);
  return &keys[nkeys++];
}

static int by_name(const void *a, const void *b)
{
  return strcmp(((const struct key *)a)->name, ((const struct key *)b)->name);
}

static char *slurp(const char *path, size_t *len)
{
  FILE *f = fopen(path, "rb");
  char *buf;
  long n;

  if (!f)
    return NULL;
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  rewind(f);
  buf = malloc((size_t)n + 1);
  if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
    free(buf);
    buf = NULL;
  }
  fclose(f);
  *len = (size_t)n;
  return buf;
}

int main(int argc, char **argv)
{
  unsigned unsupported = 0, failed_modules = 0, insns = 0;

  if (argc < 2) {
    fprintf(stderr, "usage: %s FILE.ptx...\n", argv[0]);
    return 2;
  }
  for (int i = 1; i < argc; i++) {
    struct ptx_module *m = NULL;
    char err[256] = "";
    size_t len;
    char *text = slurp(argv[i], &len);

    if (!text) {
      fprintf(stderr, "%s: cannot read\n", argv[i]);
      return 2;
    }
    if (ptx_parse(text, len, &m, err, sizeof(err)) < 0) {
      printf("PARSE FAIL %s: %s\n", argv[i], err);
      failed_modules++;
      free(text);
      continue;
    }
    for (uint32_t j = 0; j < m->ninsns; j++) {
      char k[96];
      struct key *e;

      ptx_exec_key(&m->insns[j], k, sizeof(k));
      e = key_get(k);
      if (e->count++ == 0) {
        e->supported = ptx_exec_supports(&m->insns[j]);
        e->first_file = argv[i];
        e->first_line = m->insns[j].line;
      }
      insns++;
    }
    if (ptx_exec_prepare(m, err, sizeof(err)) < 0) {
      printf("PREPARE FAIL %s: %s\n", argv[i], err);
      failed_modules++;
    }
    ptx_module_free(m);
    free(text);
  }
  qsort(keys, nkeys, sizeof(*keys), by_name);
  for (size_t i = 0; i < nkeys; i++) {
    printf("%-40s %6u  %s\n", keys[i].name, keys[i].count,
           keys[i].supported ? "ok" : "NOT IMPLEMENTED");
    if (!keys[i].supported)
      unsupported++;
  }
  printf("%d modules, %u instructions, %zu distinct forms, %u not "
         "implemented, %u modules failed to load\n", argc - 1, insns, nkeys,
         unsupported, failed_modules);
  for (size_t i = 0; i < nkeys; i++)
    if (!keys[i].supported)
      printf("missing: %s (first at %s line %u)\n", keys[i].name,
             keys[i].first_file, keys[i].first_line);
  free(keys);
  return unsupported || failed_modules || nkeys == 0 ? 1 : 0;
}
