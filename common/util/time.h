/* Clocks: a monotonic one for measurements, the wall clock for what other
 * machines read (deadlines in messages, publication times), and the wall
 * clock's times written for people. */
#ifndef GB_UTIL_TIME_H
#define GB_UTIL_TIME_H

#include <stdint.h>

/* Seconds on CLOCK_MONOTONIC: only differences mean anything. */
double gb_time_now(void);

/* Milliseconds since 1970-01-01 UTC on CLOCK_REALTIME (0 if the clock is
 * before 1970). It may jump when the clock is set; use gb_time_now for
 * durations. */
uint64_t gb_time_unix_ms(void);

/* Room for gb_time_format_utc's text with its NUL. */
#define GB_TIME_UTC_MAX 32

/* unix_s (seconds since 1970-01-01 UTC) as "2026-01-31T12:00:00Z" (RFC
 * 3339, UTC) in out, for listings and messages. A time the C library cannot
 * break down (a year past its range) is written as its decimal seconds
 * instead, so the text still says what the value was. */
void gb_time_format_utc(int64_t unix_s, char out[GB_TIME_UTC_MAX]);

#endif
