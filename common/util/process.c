/* Process-level setup (see process.h). */
#include "util/process.h"
#include "util/log.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define S_GUARD "GLASSBOX_BLAS_PINNED"

/* OpenBLAS's own, from its shared library (cblas.h declares it too; util/
 * does not include the BLAS headers). */
extern char *openblas_get_corename(void);
extern void openblas_set_num_threads(int num_threads);

bool gb_process_blas_core_too_weak(const char *core_name)
{
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (!core_name || !__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
        return false;
    static const char *const avx2_cores[] = {"Haswell", "Zen", "SkylakeX", "Cooperlake",
                                             "SapphireRapids"};
    for (size_t i = 0; i < sizeof avx2_cores / sizeof avx2_cores[0]; i++)
        if (strcasecmp(core_name, avx2_cores[i]) == 0)
            return false;
    return true;
#else
    (void)core_name;
    return false;
#endif
}

void gb_process_pin_blas(char **argv)
{
    /* Our workers own the cores; OpenBLAS stays in the calling thread (this
     * also holds when the environment cannot be changed or was already set). */
    openblas_set_num_threads(1);
    if (getenv(S_GUARD))
        return;
    const char *now = getenv("OPENBLAS_NUM_THREADS");
    bool pin = !(now && strcmp(now, "1") == 0);
    bool core = !getenv("OPENBLAS_CORETYPE") &&
                gb_process_blas_core_too_weak(openblas_get_corename());
    if (!pin && !core)
        return;
    /* The guard stops a loop should the variables not survive the exec. */
    if (setenv(S_GUARD, "1", 1) != 0 || (pin && setenv("OPENBLAS_NUM_THREADS", "1", 1) != 0) ||
        (core && setenv("OPENBLAS_CORETYPE", "Haswell", 1) != 0))
        return;
    execv("/proc/self/exe", argv);
    gb_log_debug("cannot re-execute to set up OpenBLAS: %s", strerror(errno));
}
