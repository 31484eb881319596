/* Clocks: a monotonic one for measurements, the wall clock for what other
 * machines read (deadlines in messages, publication times). */
#ifndef GB_UTIL_TIME_H
#define GB_UTIL_TIME_H

#include <stdint.h>

/* Seconds on CLOCK_MONOTONIC: only differences mean anything. */
double gb_time_now(void);

/* Milliseconds since 1970-01-01 UTC on CLOCK_REALTIME (0 if the clock is
 * before 1970). It may jump when the clock is set; use gb_time_now for
 * durations. */
uint64_t gb_time_unix_ms(void);

#endif
