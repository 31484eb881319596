/* Process-level setup (see process.h). */
#include "util/process.h"
#include "util/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_GUARD "GLASSBOX_BLAS_PINNED"

void gb_process_pin_blas(char **argv)
{
    const char *now = getenv("OPENBLAS_NUM_THREADS");
    if ((now && strcmp(now, "1") == 0) || getenv(S_GUARD))
        return;
    /* The guard stops a loop should the variable not survive the exec. */
    if (setenv("OPENBLAS_NUM_THREADS", "1", 1) != 0 || setenv(S_GUARD, "1", 1) != 0)
        return;
    execv("/proc/self/exe", argv);
    gb_log_debug("cannot re-execute to pin OpenBLAS to one thread: %s", strerror(errno));
}
