/*
 * agent_log.c: level-prefixed lines on stderr.
 *
 * Each line is formatted into a local buffer and written with a single
 * write(2): stdio would also be thread-safe, but one syscall per line keeps
 * lines whole even when stderr is a pipe shared with other processes.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

enum agt_log_level agt_log_max = AGT_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int agt_log_parse(const char *s, enum agt_log_level *out)
{
  for (unsigned i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
    if (strcmp(s, level_names[i]) == 0) {
      *out = (enum agt_log_level)i;
      return 0;
    }
  }
  return -EINVAL;
}

void agt_log(enum agt_log_level lvl, const char *fmt, ...)
{
  char line[1024];
  va_list ap;
  int n, m;

  if (lvl > agt_log_max)
    return;
  n = snprintf(line, sizeof(line), AGT_PROG ": %s: ", level_names[lvl]);
  va_start(ap, fmt);
  m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
  va_end(ap);
  if (m < 0)
    m = 0;
  n += m;
  if (n > (int)sizeof(line) - 2)
    n = (int)sizeof(line) - 2;
  line[n++] = '\n';
  /* Nothing sensible to do if stderr is gone. */
  if (write(STDERR_FILENO, line, (size_t)n) < 0)
    return;
}

uint64_t agt_now_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
