/* Which hand-written kernels the engine runs on this CPU.
 *
 * The engine has three paths for its hot loops: the plain C loops with
 * OpenBLAS for every GEMM (any CPU), its own AVX2/FMA kernels where they beat
 * OpenBLAS on the engine's small shapes, and its own AVX-512 kernels. The
 * best path the CPU supports is chosen once per process; GLASSBOX_KERNELS
 * (portable, avx2, avx512 or auto) in the environment picks a lower one, so
 * that an AVX-512 machine can measure what a CPU without it runs. Every
 * path computes the same function; results differ only in float rounding.
 *
 * gb_kernels_force is for tests and start-up code only: it must not be
 * called while a model runs (layers read the path per call). */
#ifndef GB_ENGINE_KERNELS_H
#define GB_ENGINE_KERNELS_H

#include "util/error.h"

typedef enum {
    GB_KERNELS_PORTABLE = 0, /* plain loops and OpenBLAS */
    GB_KERNELS_AVX2 = 1,     /* AVX2 and FMA */
    GB_KERNELS_AVX512 = 2,   /* AVX-512 F, DQ, BW and VL */
} gb_kernels_t;

/* The path in use: the one forced, else GLASSBOX_KERNELS's (read on the
 * first call; an unknown or unsupported value is logged once and ignored),
 * else the best this CPU supports. */
gb_kernels_t gb_kernels(void);

/* The best path this CPU supports (what "auto" means). */
gb_kernels_t gb_kernels_best(void);

/* "portable", "avx2" or "avx512". */
const char *gb_kernels_name(gb_kernels_t k);

/* Parses "portable", "avx2", "avx512" or "auto" (the best path) into *out.
 * GB_EINVAL for another name or a path this CPU lacks; err
 * says which. */
int gb_kernels_parse(const char *name, gb_kernels_t *out, gb_error_t *err) GB_MUST_CHECK;

/* Makes gb_kernels() return k from now on (k must not be above
 * gb_kernels_best(); it is clamped to it). Tests and start-up only. */
void gb_kernels_force(gb_kernels_t k);

#endif
