/* The engine's kernel path (see kernels.h). Read once, then a load per call:
 * layers ask for every GEMM, so the answer is cached in a static. The
 * environment is read on the first call rather than at start-up so that
 * every binary (the CLI, the benchmarks, the tests) honours it without a
 * set-up step of its own. */
#include "engine/kernels.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

#define S_ENV "GLASSBOX_KERNELS"

/* -1: not chosen yet. Atomic because worker threads ask while the first
 * caller may still be choosing; they would all choose the same. */
static _Atomic int s_path = -1;

static const char *const s_names[] = {"portable", "avx2", "avx512"};

gb_kernels_t gb_kernels_best(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
        return GB_KERNELS_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return GB_KERNELS_AVX2;
#endif
    return GB_KERNELS_PORTABLE;
}

const char *gb_kernels_name(gb_kernels_t k)
{
    return (unsigned)k < sizeof s_names / sizeof s_names[0] ? s_names[k] : "unknown";
}

int gb_kernels_parse(const char *name, gb_kernels_t *out, gb_error_t *err)
{
    gb_kernels_t best = gb_kernels_best();
    if (name && strcmp(name, "auto") == 0) {
        *out = best;
        return 0;
    }
    for (int k = 0; k < (int)(sizeof s_names / sizeof s_names[0]); k++) {
        if (!name || strcmp(name, s_names[k]) != 0)
            continue;
        if (k > (int)best)
            return gb_error_set(err, GB_EINVAL, "kernels '%s': this CPU supports at most '%s'",
                                name, s_names[best]);
        *out = (gb_kernels_t)k;
        return 0;
    }
    return gb_error_set(err, GB_EINVAL,
                        "kernels '%s': expected portable, avx2, avx512 or auto",
                        name ? name : "(null)");
}

gb_kernels_t gb_kernels(void)
{
    int now = atomic_load_explicit(&s_path, memory_order_relaxed);
    if (now >= 0)
        return (gb_kernels_t)now;
    gb_kernels_t k = gb_kernels_best();
    gb_error_t err = {0};
    const char *env = getenv(S_ENV);
    int bad = env && *env && gb_kernels_parse(env, &k, &err) != 0;
    if (bad)
        k = gb_kernels_best();
    /* Only the thread that sets the path says why the setting was ignored. */
    int expected = -1;
    if (!atomic_compare_exchange_strong(&s_path, &expected, (int)k))
        return (gb_kernels_t)expected;
    if (bad)
        gb_log_warn("%s: %s; using '%s'", S_ENV, err.msg, gb_kernels_name(k));
    return k;
}

void gb_kernels_force(gb_kernels_t k)
{
    gb_kernels_t best = gb_kernels_best();
    atomic_store_explicit(&s_path, (int)(k > best ? best : k), memory_order_relaxed);
}
