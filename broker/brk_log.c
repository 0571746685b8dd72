/*
 * brk_log.c: see brk_log.h.  Each line is formatted into one buffer and
 * written with a single write(2), so lines from the broker and from the
 * agents it spawned (which share stderr) do not interleave mid-line.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "brk_log.h"

int brk_log_level = BRK_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int brk_log_parse_level(const char *s)
{
  for (int i = 0; i < 4; i++)
    if (strcmp(s, level_names[i]) == 0)
      return i;
  return -1;
}

void brk_log(int level, const char *fmt, ...)
{
  char buf[1024];
  struct timespec ts;
  struct tm tm;
  va_list ap;
  int n, m, saved = errno;

  if (level > brk_log_level)
    return;
  if (level < 0)
    level = 0;
  if (level > 3)
    level = 3;
  clock_gettime(CLOCK_REALTIME, &ts);
  localtime_r(&ts.tv_sec, &tm);
  n = snprintf(buf, sizeof(buf), "tremote-broker[%d] %02d:%02d:%02d.%03ld %s: ",
               (int)getpid(), tm.tm_hour, tm.tm_min, tm.tm_sec,
               ts.tv_nsec / 1000000L, level_names[level]);
  va_start(ap, fmt);
  m = vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
  va_end(ap);
  if (m < 0)
    m = 0;
  n += m;
  if (n > (int)sizeof(buf) - 2)
    n = (int)sizeof(buf) - 2;
  buf[n++] = '\n';
  (void)!write(STDERR_FILENO, buf, (size_t)n);
  errno = saved;
}
