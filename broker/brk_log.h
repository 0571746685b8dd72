/*
 * brk_log.h: the broker's log.  One line per event on stderr, with a
 * timestamp and a level; lines below the configured level cost one
 * comparison.  The broker runs in the foreground, so stderr is where a
 * supervisor (systemd, a test harness) collects them.
 */
#ifndef BRK_LOG_H
#define BRK_LOG_H

enum brk_log_level {
  BRK_LOG_ERROR = 0,
  BRK_LOG_WARN = 1,
  BRK_LOG_INFO = 2,
  BRK_LOG_DEBUG = 3,
};

/* Lines with a level above this are dropped.  Default BRK_LOG_INFO. */
extern int brk_log_level;

/* Parse "error", "warn", "info" or "debug".  Returns the level or -1. */
int brk_log_parse_level(const char *s);

/* Write one line (a newline is added).  Never fails, never blocks for
   long: a line that does not fit the internal buffer is truncated. */
void brk_log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define brk_err(...) brk_log(BRK_LOG_ERROR, __VA_ARGS__)
#define brk_warn(...) brk_log(BRK_LOG_WARN, __VA_ARGS__)
#define brk_info(...) brk_log(BRK_LOG_INFO, __VA_ARGS__)
#define brk_dbg(...)                                                           \
  do {                                                                         \
    if (brk_log_level >= BRK_LOG_DEBUG)                                        \
      brk_log(BRK_LOG_DEBUG, __VA_ARGS__);                                     \
  } while (0)

#endif /* BRK_LOG_H */
