/*
 * log.h: the log of the tremote daemons (broker and agent).  One line per
 * event on stderr:
 *
 *   tremote-broker[1234] 14:02:07.513 warn: message
 *
 * Each line is formatted into one buffer and written with a single
 * write(2), so lines from different threads, and from a broker and the
 * agents it spawned (which share its stderr), never interleave mid-line.
 * The daemons run in the foreground: stderr is where a supervisor (systemd,
 * a test harness) collects them.
 */
#ifndef TR_LOG_H
#define TR_LOG_H

enum tr_log_level {
  TR_LOG_ERROR = 0,
  TR_LOG_WARN = 1,
  TR_LOG_INFO = 2,
  TR_LOG_DEBUG = 3,
};

/* Lines with a level above this are dropped.  Default TR_LOG_INFO.  Set by
   main before any thread starts; only read afterwards. */
extern int tr_log_level;

/* The program name at the start of each line (a static string). */
void tr_log_set_prog(const char *prog);

/* Parse "error", "warn", "info" or "debug".  Returns the level or -1. */
int tr_log_parse_level(const char *s);

/* Write one line (a newline is added).  Never fails and keeps errno; a
   line that does not fit the internal buffer is truncated. */
void tr_log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif /* TR_LOG_H */
