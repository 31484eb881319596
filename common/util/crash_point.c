/* Crash points (crash_point.h). */
#include "crash_point.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void gb_crash_point(const char *name)
{
    /* read each time: a crash point is on a path that writes files, where a
     * getenv is nothing, and the tests set the variable per process */
    const char *at = getenv("GLASSBOX_TEST_CRASH_AT");
    if (!at || strcmp(at, name) != 0)
        return;
    fprintf(stderr, "crash point '%s': killing this process (GLASSBOX_TEST_CRASH_AT)\n", name);
    fflush(stderr);
    kill(getpid(), SIGKILL);
}
