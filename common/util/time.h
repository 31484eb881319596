/* Time for measurements: a monotonic clock in seconds. */
#ifndef GB_UTIL_TIME_H
#define GB_UTIL_TIME_H

/* Seconds on CLOCK_MONOTONIC: only differences mean anything. */
double gb_time_now(void);

#endif
