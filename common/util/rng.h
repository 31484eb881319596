/* Seeded pseudo-random numbers: xoshiro256** seeded through splitmix64.
 *
 * Every random stream in Glassbox (initialisation, shuffling, dropout,
 * partitioning) is a gb_rng_t seeded from the run seed and a stream id, so the
 * same seed gives the same numbers on every machine (no libc rand, no floats
 * in the integer path). */
#ifndef GB_UTIL_RNG_H
#define GB_UTIL_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4]; /* xoshiro256** state, never all zero */
} gb_rng_t;

/* Seeds rng from (seed, stream): different streams give independent sequences. */
void gb_rng_seed(gb_rng_t *rng, uint64_t seed, uint64_t stream);

/* Next 64 random bits. */
uint64_t gb_rng_next(gb_rng_t *rng);

/* Uniform integer in [0, n), unbiased (Lemire's method); n > 0. */
uint64_t gb_rng_below(gb_rng_t *rng, uint64_t n);

/* Uniform double in [0, 1) with 53 random bits. */
double gb_rng_uniform(gb_rng_t *rng);

/* Standard normal (Box-Muller, no cached second value: stream stays simple). */
double gb_rng_normal(gb_rng_t *rng);

/* Gamma(shape, 1) for shape > 0 (Marsaglia-Tsang; boosted for shape < 1). */
double gb_rng_gamma(gb_rng_t *rng, double shape);

/* Fisher-Yates shuffle of n int32 indices in place. */
void gb_rng_shuffle(gb_rng_t *rng, int32_t *idx, int64_t n);

/* A 64-bit hash of (a, b): splitmix64 mixing, for per-sample seeds. */
uint64_t gb_hash2(uint64_t a, uint64_t b);

#endif
