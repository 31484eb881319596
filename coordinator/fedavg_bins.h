/* FedAvg's fast-range sums as three doubles a parameter: the representation
 * FedAvg's adds use on CPUs with AVX2 but not AVX-512 (AMD Zen 2 and 3,
 * Intel before Skylake-SP), where the 128-bit integer sums of aggregate.c
 * cost about 25 vector operations per 4 values (no mask registers, no
 * unsigned compare, no 64-bit arithmetic shift) and aggregation was bound
 * by that arithmetic at a third of a memory stream (issue 11).
 *
 * The sums are still exact integers, in floating point. w * v is exact in a
 * double (w <= GB_BINS_MAX_WEIGHT: 24 + 29 bits), and for a fast-range value
 * (2^-62 <= |v| < 4) a multiple of 2^-85 below 2^31. Adding 1.5 * 2^(b + 52)
 * to a double rounds it to a multiple of 2^b, and taking the constant back
 * is exact, so two such steps split w * v exactly into three pieces:
 * hi, a multiple of 2^-8; mid, a multiple of 2^-47 with |mid| <= 2^-9; lo, a
 * multiple of 2^-85 with |lo| <= 2^-48. Each piece adds into its own double
 * bin. A bin stays exact while its sum is a multiple of its unit below 2^51
 * units: hi below 2^42 + 4 (the round's weight is at most 2^40 and |v| < 4),
 * mid and lo for GB_BINS_MAX_ADDS adds (2^12 * 2^-9 = 2^3 = 2^50 units of
 * 2^-47; 2^12 * 2^-48 = 2^-36 = 2^49 units of 2^-85). About 11 double
 * operations per 4 values, 7 for values of 2^-24 or more (whose product is
 * a multiple of 2^-47 already, so lo's piece is zero). No rounding ever
 * happens, so the order of the adds (threads, buffering, taking back an
 * update) changes no bit; gb_bins_fold turns the three bins back into the
 * integer of aggregate.c's (m2:m1) limbs, where finish takes over.
 *
 * Ownership: the caller allocates the three arrays of a gb_bins_t (64-bit
 * words, all zero bits for an empty sum) and frees them; nothing here
 * allocates or keeps a pointer. */
#ifndef GB_COORDINATOR_FEDAVG_BINS_H
#define GB_COORDINATOR_FEDAVG_BINS_H

#include <stddef.h>
#include <stdint.h>

/* Largest weight an update added into bins may have (its product with a
 * 24-bit significand must fit a double's 53 bits); heavier updates take
 * the integer path. */
#define GB_BINS_MAX_WEIGHT ((uint64_t)1 << 29)

/* Adds (each update's values, and each value taken back, counts one) the
 * bins take before gb_bins_fold must empty them. */
#define GB_BINS_MAX_ADDS ((uint64_t)1 << 12)

/* Updates one call of gb_bins_add_run_avx2 adds at most. */
#define GB_BINS_MAX_UPDATES 8

/* Each parameter j's sum is the doubles lo[j] + mid[j] + hi[j], stored as
 * their 64-bit words. */
typedef struct {
    uint64_t *lo, *mid, *hi;
} gb_bins_t;

/* True when this CPU runs gb_bins_add_run_avx2 (AVX2 and FMA). */
int gb_bins_supported(void);

/* Adds weight wt[k] (1..GB_BINS_MAX_WEIGHT; negated when flip is 1) times
 * src[k][j0 + i ..] for updates k < ns (1..GB_BINS_MAX_UPDATES) into bins j0 + i .., 8
 * parameters a vector, while the vectors hold only fast-range values and
 * zeros. A value outside the fast range adds nothing here: the run stops
 * after the vector that holds one, with rare_out[k] its lanes for update k
 * (a bit a parameter), for the caller to add exactly elsewhere. Returns
 * where it stopped: after such a vector; at a vector that holds a NaN or an
 * infinity in some update, of which nothing was added; or at the last whole
 * vector's end (i + 8 > n). Only on a CPU where gb_bins_supported. */
size_t gb_bins_add_run_avx2(gb_bins_t bins, const float *const *src, const uint64_t *wt,
                            size_t ns, size_t j0, size_t i, size_t n, unsigned flip,
                            unsigned *rare_out);

/* For each parameter j in [j0, j1): the integer bins j hold, in units of
 * 2^-85, as a 128-bit two's complement number (l2[j]:l1[j]): added to what
 * (l2:l1) hold when accumulate is 1, stored over it when 0. l1 and l2 may
 * be bins.lo and bins.mid themselves (with accumulate 0): each parameter's
 * bins are read before its words are written. */
void gb_bins_fold(gb_bins_t bins, uint64_t *l1, uint64_t *l2, size_t j0, size_t j1,
                  int accumulate);

#endif
