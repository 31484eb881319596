/* Tests for coordinator/exact_sum: cancellation a float sum gets wrong, the
 * extremes (the largest float at the largest total weight, both signs, and
 * the smallest subnormal beside it), round to nearest with ties to even in
 * the subnormals, means that are not exact in binary, the same bits whatever
 * the order of the adds, and correct rounding against a double reference on
 * random data. FedAvg's fast path is compared with these sums in
 * test_aggregate_fast.c. */
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "exact_sum.h"

/* ---- helpers ----------------------------------------------------------------- */

static uint64_t s_rng = 0x9e3779b97f4a7c15ull;

/* ---- exact sums --------------------------------------------------------------- */

static float s_mean2(float a, uint64_t wa, float b, uint64_t wb)
{
    gb_exact_sum_t s;
    gb_exact_sum_clear(&s);
    gb_exact_sum_add(&s, a, wa);
    gb_exact_sum_add(&s, b, wb);
    return gb_exact_sum_mean(&s, wa + wb);
}

static void test_exact_sum(void **state)
{
    (void)state;
    gb_exact_sum_t s;

    /* Cancellation that a float or double sum gets wrong: exact here. */
    gb_exact_sum_clear(&s);
    gb_exact_sum_add(&s, 1e30f, 1);
    gb_exact_sum_add(&s, 1.0f, 1);
    gb_exact_sum_add(&s, -1e30f, 1);
    assert_true(gb_exact_sum_mean(&s, 1) == 1.0f);
    gb_exact_sum_clear(&s);
    assert_true(gb_exact_sum_mean(&s, 7) == 0.0f);

    /* Extremes: the largest float at the largest weight, both signs. */
    assert_true(s_mean2(FLT_MAX, GB_EXACT_SUM_MAX_WEIGHT / 2, FLT_MAX, GB_EXACT_SUM_MAX_WEIGHT / 2) ==
                FLT_MAX);
    assert_true(s_mean2(-FLT_MAX, GB_EXACT_SUM_MAX_WEIGHT / 2, -FLT_MAX, GB_EXACT_SUM_MAX_WEIGHT / 2) ==
                -FLT_MAX);
    assert_true(s_mean2(FLT_MAX, GB_EXACT_SUM_MAX_WEIGHT / 2, -FLT_MAX, GB_EXACT_SUM_MAX_WEIGHT / 2) == 0.0f);
    gb_exact_sum_clear(&s);
    gb_exact_sum_add(&s, FLT_MAX, GB_EXACT_SUM_MAX_WEIGHT);
    assert_true(gb_exact_sum_mean(&s, GB_EXACT_SUM_MAX_WEIGHT) == FLT_MAX);
    /* Huge terms cancel exactly, and a tiny one next to them survives. */
    gb_exact_sum_clear(&s);
    gb_exact_sum_add(&s, FLT_MAX, GB_EXACT_SUM_MAX_WEIGHT / 4);
    gb_exact_sum_add(&s, ldexpf(1, -149), 1);
    gb_exact_sum_add(&s, -FLT_MAX, GB_EXACT_SUM_MAX_WEIGHT / 4);
    assert_true(gb_exact_sum_mean(&s, 1) == ldexpf(1, -149));
    gb_exact_sum_add(&s, -FLT_MAX, 1);
    assert_true(gb_exact_sum_mean(&s, 1) == -FLT_MAX);

    /* Subnormals: 3 x 2^-149 / 3, and rounding below the smallest one. */
    float tiny = ldexpf(1, -149);
    gb_exact_sum_clear(&s);
    gb_exact_sum_add(&s, tiny, 3);
    assert_true(gb_exact_sum_mean(&s, 3) == tiny);
    assert_true(gb_exact_sum_mean(&s, 5) == tiny);        /* 0.6 units -> 1 */
    assert_true(gb_exact_sum_mean(&s, 7) == 0.0f);        /* 0.43 units -> 0 */
    assert_true(gb_exact_sum_mean(&s, 6) == 0.0f);        /* 0.5 -> even: 0 */
    assert_true(s_mean2(tiny, 1, 2 * tiny, 1) == 2 * tiny); /* 1.5 -> even: 2 */
    assert_true(s_mean2(-tiny, 1, -2 * tiny, 1) == -2 * tiny);

    /* Ties to even among normal numbers: halfway between neighbours. */
    float one = 1.0f, up1 = nextafterf(1.0f, 2.0f), up2 = nextafterf(up1, 2.0f);
    assert_true(s_mean2(one, 1, up1, 1) == one);  /* mantissa of 1.0 is even */
    assert_true(s_mean2(up1, 1, up2, 1) == up2);  /* up1 odd, up2 even */
    assert_true(s_mean2(-up1, 1, -up2, 1) == -up2);
    /* Just off the tie, the sticky bit decides. */
    assert_true(s_mean2(one, 2, up1, 1) == one);
    assert_true(s_mean2(one, 1, up1, 2) == up1);

    /* Weights: (1 * 1 + 3 * 2) / 4 = 1.75 exactly; 1/3 correctly rounded. */
    assert_true(s_mean2(1.0f, 1, 2.0f, 3) == 1.75f);
    gb_exact_sum_clear(&s);
    gb_exact_sum_add(&s, 1.0f, 1);
    assert_true(gb_exact_sum_mean(&s, 3) == (float)(1.0 / 3.0));
    /* A weight above 2^32 takes the 16-bit long division. */
    gb_exact_sum_clear(&s);
    gb_exact_sum_add(&s, 3.0f, (uint64_t)1 << 38);
    gb_exact_sum_add(&s, -1.0f, ((uint64_t)1 << 38) + 12345);
    double want = (3.0 * 274877906944.0 - 274877919289.0) / 549755826233.0;
    gb_test_assert_correctly_rounded(gb_exact_sum_mean(&s, ((uint64_t)1 << 39) + 12345), want, 0);

    /* Random values over the whole exponent range, in any order: identical. */
    enum { N = 200 };
    float v[N];
    uint64_t w[N];
    size_t idx[N];
    for (int i = 0; i < N; i++) {
        v[i] = ldexpf((float)gb_test_xorshift_unif(&s_rng), (int)(gb_test_xorshift(&s_rng) % 250) - 140);
        w[i] = 1 + gb_test_xorshift(&s_rng) % 1000000;
    }
    gb_exact_sum_t a, b;
    gb_exact_sum_clear(&a);
    for (int i = 0; i < N; i++)
        gb_exact_sum_add(&a, v[i], w[i]);
    for (int rep = 0; rep < 5; rep++) {
        gb_test_xorshift_shuffle(&s_rng, idx, N);
        gb_exact_sum_clear(&b);
        for (int i = 0; i < N; i++)
            gb_exact_sum_add(&b, v[idx[i]], w[idx[i]]);
        assert_memory_equal(&a, &b, sizeof a);
    }
}

/* Correct rounding on random data whose exact mean a double holds: values in
 * a narrow exponent band, small weights, so the double reference is exact. */
static void test_exact_sum_rounding(void **state)
{
    (void)state;
    for (int rep = 0; rep < 2000; rep++) {
        gb_exact_sum_t s;
        gb_exact_sum_clear(&s);
        int n = 1 + (int)(gb_test_xorshift(&s_rng) % 6);
        double sum = 0;
        uint64_t total = 0;
        int e = (int)(gb_test_xorshift(&s_rng) % 200) - 120;
        for (int i = 0; i < n; i++) {
            float x = ldexpf((float)gb_test_xorshift_unif(&s_rng), e);
            uint64_t w = 1 + gb_test_xorshift(&s_rng) % 100;
            gb_exact_sum_add(&s, x, w);
            sum += (double)x * (double)w; /* exact: 24 + 7 bits, 6 terms */
            total += w;
        }
        /* sum / total is one correctly rounded double: only a tie at float
         * precision that the double rounding hides could fool this check. */
        gb_test_assert_correctly_rounded(gb_exact_sum_mean(&s, total), sum / (double)total, (size_t)rep);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_sum),
        cmocka_unit_test(test_exact_sum_rounding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
