/* Client selection for a round (rounds.h): how many, and which.
 *
 * Which: a partial Fisher-Yates shuffle driven by a gb_rng_t whose stream is
 * a hash of (round, attempt), so the choice is a function of the seed, the
 * round, the attempt and the candidate list alone: a coordinator restarted
 * from a checkpoint chooses the same clients for the same round, and a
 * round tried again after an abandoned attempt draws afresh instead of
 * choosing the clients that just failed it. The chosen entries are sorted
 * so that tasks go out, and are logged, in client-id order.
 *
 * How many: the ceiling of a floating-point product is fragile (0.1 * 30 is
 * 3.0000000000000004), so the product is taken as an integer when it lies
 * within a relative 1e-9 of one. */
#include "rounds.h"

#include <math.h>
#include <stdlib.h>

#include "util/rng.h"

size_t gb_rounds_select_count(size_t available, double fraction, size_t min_per_round)
{
    double x = fraction * (double)available;
    double whole = floor(x);
    size_t k;
    if (!(x > 0))
        k = 0;
    else if (x - whole <= 1e-9 * (whole > 1 ? whole : 1))
        k = (size_t)whole;
    else
        k = (size_t)whole + 1;
    if (k < min_per_round)
        k = min_per_round;
    return k < available ? k : available;
}

static int s_cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

void gb_rounds_sample(uint64_t seed, uint64_t round, uint32_t attempt, size_t *idx, size_t n,
                      size_t k)
{
    if (k > n)
        k = n;
    gb_rng_t rng;
    gb_rng_seed(&rng, seed, gb_hash2(round, attempt));
    for (size_t i = 0; i < k; i++) {
        size_t j = i + (size_t)gb_rng_below(&rng, (uint64_t)(n - i));
        size_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
    qsort(idx, k, sizeof *idx, s_cmp_size);
}
