/* Private to the engine and explain/: loops over a layer's floats built for
 * AVX-512, AVX2 and plain x86-64 and chosen per call by engine/kernels.h,
 * so that GLASSBOX_KERNELS=avx2 on an AVX-512 machine runs what a CPU
 * without AVX-512 runs (GCC's target_clones would pick AVX-512 at load time
 * whatever the setting). The loops are written to vectorise without
 * -ffast-math and, with -std=c11, nothing is contracted into FMAs: every
 * build gives the same bits.
 *
 * GB_VEC_FN(linkage, name, (params), (args)) opens the definition of
 * `linkage void name params`; the body follows:
 *     GB_VEC_FN(, gb_vec_relu, (const float *x, float *y, size_t n), (x, y, n))
 *     {
 *         ...
 *     }
 * linkage is empty for an external function, `static` for a file's own. */
#ifndef GB_ENGINE_VEC_DISPATCH_H
#define GB_ENGINE_VEC_DISPATCH_H

#include "engine/kernels.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define GB_VEC_FN(linkage, name, params, args)                                               \
    static inline __attribute__((always_inline)) void name##_body params;                    \
    __attribute__((target("avx512f"))) static void name##_avx512 params { name##_body args; } \
    __attribute__((target("avx2"))) static void name##_avx2 params { name##_body args; }     \
    static void name##_base params { name##_body args; }                                     \
    linkage void name params                                                                 \
    {                                                                                        \
        switch (gb_kernels()) {                                                              \
        case GB_KERNELS_AVX512: name##_avx512 args; return;                                  \
        case GB_KERNELS_AVX2: name##_avx2 args; return;                                      \
        default: name##_base args; return;                                                   \
        }                                                                                    \
    }                                                                                        \
    static inline __attribute__((always_inline)) void name##_body params
#else
#define GB_VEC_FN(linkage, name, params, args) linkage void name params
#endif

#endif
