/* Logging to standard error: one line per event, with a UTC timestamp and a
 * level. The threshold comes from gb_log_set_level or GLASSBOX_LOG
 * (debug|info|warn|error). Thread-safe: each line is written with one call. */
#ifndef GB_UTIL_LOG_H
#define GB_UTIL_LOG_H

#include "util/error.h"

enum gb_log_level { GB_LOG_DEBUG = 0, GB_LOG_INFO, GB_LOG_WARN, GB_LOG_ERROR, GB_LOG_OFF };

void gb_log_set_level(enum gb_log_level level);
enum gb_log_level gb_log_get_level(void);

/* Parses "debug", "info", "warn", "error", "off"; returns 0 or GB_EINVAL. */
int gb_log_parse_level(const char *name, enum gb_log_level *out);

void gb_log(enum gb_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* For bad outside input: fills err (if not NULL) with code and the message,
 * logs the message as a warning (except GB_ENOMEM, which is no fault of the
 * input), and returns code. */
int gb_error_warn(gb_error_t *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Blames the lines this thread logs from now on (debug, info and warn;
 * errors are the process's own) on `peer`, until gb_log_blame(NULL): they
 * are then rate-limited per peer (util/log_limit.h: 2 a second after a
 * burst of 20), and what was held back is counted in one line every 5 s.
 * For the code that handles one peer's message, so a peer that sends
 * nothing but refusable input cannot fill the log. `peer` is borrowed
 * until the next call. */
void gb_log_blame(const char *peer);

/* Writes the count of peers' lines held back since the last report now, if
 * any, instead of at the next line after the 5 s: for a process that ends,
 * so that its log never hides that it held lines back. */
void gb_log_report_held(void);

#define gb_log_debug(...) gb_log(GB_LOG_DEBUG, __VA_ARGS__)
#define gb_log_info(...) gb_log(GB_LOG_INFO, __VA_ARGS__)
#define gb_log_warn(...) gb_log(GB_LOG_WARN, __VA_ARGS__)
#define gb_log_error(...) gb_log(GB_LOG_ERROR, __VA_ARGS__)

#endif
