/*
 * log.c: see log.h.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

int tr_log_level = TR_LOG_INFO;

static const char *prog = "tremote";
static const char *const level_names[] = {"error", "warn", "info", "debug"};

void tr_log_set_prog(const char *name)
{
  prog = name;
}

int tr_log_parse_level(const char *s)
{
  for (int i = 0; i < 4; i++)
    if (strcmp(s, level_names[i]) == 0)
      return i;
  return -1;
}

void tr_log(int level, const char *fmt, ...)
{
  char buf[1024];
  struct timespec ts;
  struct tm tm;
  va_list ap;
  int n, m, saved = errno;

  if (level > tr_log_level)
    return;
  if (level < 0)
    level = 0;
  if (level > 3)
    level = 3;
  clock_gettime(CLOCK_REALTIME, &ts);
  localtime_r(&ts.tv_sec, &tm);
  n = snprintf(buf, sizeof(buf), "%s[%d] %02d:%02d:%02d.%03ld %s: ", prog,
               (int)getpid(), tm.tm_hour, tm.tm_min, tm.tm_sec,
               ts.tv_nsec / 1000000L, level_names[level]);
  if (n < 0 || n >= (int)sizeof(buf) - 2)
    n = 0;
  va_start(ap, fmt);
  m = vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
  va_end(ap);
  if (m < 0)
    m = 0;
  n += m;
  if (n > (int)sizeof(buf) - 2)
    n = (int)sizeof(buf) - 2;
  buf[n++] = '\n';
  /* Nothing sensible to do if stderr is gone. */
  (void)!write(STDERR_FILENO, buf, (size_t)n);
  errno = saved;
}
