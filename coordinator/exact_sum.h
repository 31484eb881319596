/* Exact sums of weighted float32 values: a 320-bit fixed-point integer that
 * every weighted value adds into without rounding, so the sum does not
 * depend on the order of the adds and its mean is correctly rounded. The
 * coordinator's determinism rests on it: FedAvg's slow path and its
 * reference, the trimmed mean and multi-Krum (aggregate.c,
 * aggregate_robust.c) and the merge of client explanations
 * (explain_merge.c). Why the sums are exact, and how the mean is rounded,
 * is told in exact_sum.c.
 *
 * Ownership: a gb_exact_sum_t is a plain value (40 bytes), owned by whoever
 * holds it; copying it copies the sum. No function here allocates, fails or
 * keeps a pointer. */
#ifndef GB_COORDINATOR_EXACT_SUM_H
#define GB_COORDINATOR_EXACT_SUM_H

#include <stdint.h>

/* Largest total weight of one sum (2^40): the bound that keeps every exact
 * sum within gb_exact_sum_t. */
#define GB_EXACT_SUM_MAX_WEIGHT ((uint64_t)1 << 40)

/* A signed 320-bit two's complement integer in units of 2^-149 (float32's
 * smallest subnormal), little-endian 64-bit limbs. Every finite float32 is an
 * integer number of such units below 2^277; times a weight up to 2^40 and
 * summed with total weight up to GB_EXACT_SUM_MAX_WEIGHT, magnitudes stay below
 * 2^317, so no sum here ever rounds or overflows and any order of adding
 * gives the same bits. */
#define GB_EXACT_LIMBS 5
typedef struct {
    uint64_t limb[GB_EXACT_LIMBS]; /* little-endian two's complement */
} gb_exact_sum_t;

/* *s = 0. */
void gb_exact_sum_clear(gb_exact_sum_t *s);

/* *s += w * v, exactly. v must be finite, 1 <= w <= GB_EXACT_SUM_MAX_WEIGHT, and
 * the weights added to one sum must total at most GB_EXACT_SUM_MAX_WEIGHT (the
 * caller's bound; unchecked here, on the hot path). */
void gb_exact_sum_add(gb_exact_sum_t *s, float v, uint64_t w);

/* The sum divided by total_w (1..GB_EXACT_SUM_MAX_WEIGHT), correctly rounded to
 * float32 (round to nearest, ties to even). */
float gb_exact_sum_mean(const gb_exact_sum_t *s, uint64_t total_w);

#endif
