/* The monotonic clock (see time.h). */
#include "util/time.h"

#include <time.h>

double gb_time_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}
