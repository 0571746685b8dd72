/*
 * brk_log.h: the broker logs through the shared tools/common/log.h; these
 * are its short names.
 */
#ifndef BRK_LOG_H
#define BRK_LOG_H

#include "log.h"

#define brk_err(...) tr_log(TR_LOG_ERROR, __VA_ARGS__)
#define brk_warn(...) tr_log(TR_LOG_WARN, __VA_ARGS__)
#define brk_info(...) tr_log(TR_LOG_INFO, __VA_ARGS__)
#define brk_dbg(...)                                                           \
  do {                                                                         \
    if (tr_log_level >= TR_LOG_DEBUG)                                          \
      tr_log(TR_LOG_DEBUG, __VA_ARGS__);                                       \
  } while (0)

#endif /* BRK_LOG_H */
