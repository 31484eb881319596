/* The clocks (see time.h). */
#include "util/time.h"

#include <inttypes.h>
#include <stdio.h>
#include <time.h>

double gb_time_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

uint64_t gb_time_unix_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || ts.tv_sec < 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void gb_time_format_utc(int64_t unix_s, char out[GB_TIME_UTC_MAX])
{
    time_t t = (time_t)unix_s;
    struct tm tm;
    if ((int64_t)t != unix_s || !gmtime_r(&t, &tm) ||
        !strftime(out, GB_TIME_UTC_MAX, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(out, GB_TIME_UTC_MAX, "%" PRId64, unix_s);
}
