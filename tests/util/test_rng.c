/* Tests for util/rng: the xoshiro256** and splitmix64 known-answer values,
 * determinism per (seed, stream), and the ranges and moments of every
 * distribution. The statistical checks use fixed seeds, so they cannot
 * flake; their bounds are 5 to 6 standard errors wide, so a broken
 * generator fails them while a correct one passes for any seed.
 * Doubles as the usage example:
 *
 *     gb_rng_t rng;
 *     gb_rng_seed(&rng, run_seed, stream_id);
 *     uint64_t k = gb_rng_below(&rng, n);  double u = gb_rng_uniform(&rng);
 */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/rng.h"

/* Published test vector: xoshiro256** from state {1, 2, 3, 4}. */
static void test_xoshiro_known_answer(void **state)
{
    (void)state;
    gb_rng_t rng = {{1, 2, 3, 4}};
    static const uint64_t want[6] = {11520ULL, 0ULL, 1509978240ULL, 1215971899390074240ULL,
                                     1216172134540287360ULL, 607988272756665600ULL};
    for (int i = 0; i < 6; i++)
        assert_int_equal(gb_rng_next(&rng), want[i]);
}

/* gb_hash2(0, 0) is the second output of splitmix64 seeded with 0
 * (0xe220a8397b1dcdaf, then 0x6e789e6aa1b965f4). */
static void test_hash2(void **state)
{
    (void)state;
    assert_int_equal(gb_hash2(0, 0), 0x6e789e6aa1b965f4ULL);
    /* Deterministic, and sensitive to both arguments and their order. */
    assert_int_equal(gb_hash2(12345, 678), gb_hash2(12345, 678));
    assert_int_not_equal(gb_hash2(1, 2), gb_hash2(2, 1));
    assert_int_not_equal(gb_hash2(1, 2), gb_hash2(1, 3));
    assert_int_not_equal(gb_hash2(1, 2), gb_hash2(0, 2));
    /* Avalanche: flipping one input bit flips about half the output bits. */
    int bits = 0;
    for (int b = 0; b < 64; b++)
        bits += __builtin_popcountll(gb_hash2(99, 7) ^ gb_hash2(99 ^ (1ULL << b), 7));
    assert_in_range(bits, 64 * 32 - 200, 64 * 32 + 200);
}

static void test_seed_determinism(void **state)
{
    (void)state;
    gb_rng_t a, b, c, d;
    gb_rng_seed(&a, 42, 0);
    gb_rng_seed(&b, 42, 0);
    gb_rng_seed(&c, 42, 1);
    gb_rng_seed(&d, 43, 0);
    int same_c = 0, same_d = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = gb_rng_next(&a);
        assert_int_equal(x, gb_rng_next(&b));
        same_c += x == gb_rng_next(&c);
        same_d += x == gb_rng_next(&d);
    }
    assert_int_equal(same_c, 0);
    assert_int_equal(same_d, 0);
    /* Every seed gives a valid (not all-zero) state. */
    for (uint64_t s = 0; s < 100; s++) {
        gb_rng_seed(&a, s, s * 3);
        assert_true((a.s[0] | a.s[1] | a.s[2] | a.s[3]) != 0);
    }
}

static void test_below(void **state)
{
    (void)state;
    gb_rng_t rng;
    gb_rng_seed(&rng, 1, 2);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(gb_rng_below(&rng, 1), 0);
    /* Uniform over 7 values: chi-square with 6 degrees of freedom; 35 is
     * far in the tail (p < 1e-5). */
    enum { K = 7, DRAWS = 70000 };
    long count[K] = {0};
    for (int i = 0; i < DRAWS; i++) {
        uint64_t v = gb_rng_below(&rng, K);
        assert_true(v < K);
        count[v]++;
    }
    double chi2 = 0.0, e = (double)DRAWS / K;
    for (int k = 0; k < K; k++)
        chi2 += (count[k] - e) * (count[k] - e) / e;
    print_message("below(7): chi-square %.2f (6 dof, bound 35)\n", chi2);
    assert_true(chi2 < 35.0);
    /* Huge ranges: values below n, and both halves of [0, n) reached. */
    const uint64_t n = (1ULL << 63) + 12345;
    int upper = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t v = gb_rng_below(&rng, n);
        assert_true(v < n);
        upper += v >= n / 2;
    }
    assert_in_range(upper, 400, 600);
    for (int i = 0; i < 100; i++)
        (void)gb_rng_below(&rng, UINT64_MAX);
}

static void test_uniform(void **state)
{
    (void)state;
    gb_rng_t rng;
    gb_rng_seed(&rng, 3, 0);
    enum { N = 100000 };
    double sum = 0.0, sq = 0.0, lo = 1.0, hi = 0.0;
    for (int i = 0; i < N; i++) {
        double u = gb_rng_uniform(&rng);
        assert_true(u >= 0.0 && u < 1.0);
        sum += u;
        sq += u * u;
        lo = fmin(lo, u);
        hi = fmax(hi, u);
    }
    double mean = sum / N, var = sq / N - mean * mean;
    /* Mean 1/2 (se 0.0009), variance 1/12 = 0.0833 (se 0.0002). */
    assert_true(fabs(mean - 0.5) < 0.005);
    assert_true(fabs(var - 1.0 / 12.0) < 0.0015);
    assert_true(lo < 1e-3 && hi > 1.0 - 1e-3);
}

static void test_normal(void **state)
{
    (void)state;
    gb_rng_t rng;
    gb_rng_seed(&rng, 4, 0);
    enum { N = 100000 };
    double sum = 0.0, sq = 0.0, q = 0.0;
    int beyond2 = 0;
    for (int i = 0; i < N; i++) {
        double x = gb_rng_normal(&rng);
        assert_true(isfinite(x));
        sum += x;
        sq += x * x;
        q += x * x * x * x;
        beyond2 += fabs(x) > 2.0;
    }
    double mean = sum / N, var = sq / N - mean * mean;
    print_message("normal: mean %.4f var %.4f kurtosis %.3f P(|x|>2) %.4f\n", mean, var,
                  q / N / (var * var), (double)beyond2 / N);
    /* Mean 0 (se 0.003), variance 1 (se 0.0045), kurtosis 3, P(|x| > 2)
     * = 0.0455 (se 0.0007). */
    assert_true(fabs(mean) < 0.02);
    assert_true(fabs(var - 1.0) < 0.03);
    assert_true(fabs(q / N / (var * var) - 3.0) < 0.15);
    assert_true(fabs((double)beyond2 / N - 0.0455) < 0.004);
}

static void test_gamma(void **state)
{
    (void)state;
    /* Gamma(k, 1): mean k, variance k; shapes below 1 use the boost. */
    static const double shapes[] = {0.1, 0.5, 1.0, 2.5, 10.0};
    gb_rng_t rng;
    gb_rng_seed(&rng, 5, 0);
    enum { N = 40000 };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const double k = shapes[s];
        double sum = 0.0, sq = 0.0;
        for (int i = 0; i < N; i++) {
            double x = gb_rng_gamma(&rng, k);
            assert_true(x >= 0.0 && isfinite(x));
            sum += x;
            sq += x * x;
        }
        double mean = sum / N, var = sq / N - mean * mean;
        print_message("gamma(%.1f): mean %.4f var %.4f\n", k, mean, var);
        /* se(mean) = sqrt(k / N); 6 se. */
        assert_true(fabs(mean - k) < 6.0 * sqrt(k / N));
        assert_true(fabs(var / k - 1.0) < 0.1 + 0.3 * (k < 0.2));
    }
}

static void test_shuffle(void **state)
{
    (void)state;
    gb_rng_t rng;
    gb_rng_seed(&rng, 6, 0);
    /* n = 0 and n = 1 are no-ops. */
    int32_t one = 5;
    gb_rng_shuffle(&rng, NULL, 0);
    gb_rng_shuffle(&rng, &one, 1);
    assert_int_equal(one, 5);
    /* A permutation, deterministic per seed. */
    enum { N = 1000 };
    int32_t a[N], b[N];
    for (int i = 0; i < N; i++)
        a[i] = b[i] = i;
    gb_rng_t r1, r2;
    gb_rng_seed(&r1, 9, 9);
    gb_rng_seed(&r2, 9, 9);
    gb_rng_shuffle(&r1, a, N);
    gb_rng_shuffle(&r2, b, N);
    assert_memory_equal(a, b, sizeof a);
    int seen[N] = {0}, fixed = 0;
    for (int i = 0; i < N; i++) {
        seen[a[i]]++;
        fixed += a[i] == i;
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(seen[i], 1);
    assert_true(fixed < 10); /* about 1 expected */
    /* All 6 orders of 3 items, equally often: chi-square with 5 dof. */
    enum { DRAWS = 60000 };
    long count[6] = {0};
    for (int d = 0; d < DRAWS; d++) {
        int32_t p[3] = {0, 1, 2};
        gb_rng_shuffle(&rng, p, 3);
        count[p[0] * 2 + (p[1] > p[2])]++;
    }
    double chi2 = 0.0, e = DRAWS / 6.0;
    for (int k = 0; k < 6; k++)
        chi2 += (count[k] - e) * (count[k] - e) / e;
    print_message("shuffle(3): chi-square %.2f (5 dof, bound 30)\n", chi2);
    assert_true(chi2 < 30.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xoshiro_known_answer),
        cmocka_unit_test(test_hash2),
        cmocka_unit_test(test_seed_determinism),
        cmocka_unit_test(test_below),
        cmocka_unit_test(test_uniform),
        cmocka_unit_test(test_normal),
        cmocka_unit_test(test_gamma),
        cmocka_unit_test(test_shuffle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
