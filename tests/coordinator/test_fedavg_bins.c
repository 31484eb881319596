/* Tests for FedAvg's binned double sums (coordinator/fedavg_bins.c): the
 * AVX2 kernel's bins, folded back to the integer limbs, hold exactly the
 * weighted sum gb_exact_sum_t gives; values outside the fast range are
 * reported and add nothing; a NaN or infinity stops the run before its
 * vector; taking updates back restores every bit; the fold adds or stores,
 * in place too. The aggregator's own tests (test_aggregate_fast.c) run the
 * kernel through every round shape; these pin the module's contract. Where
 * the CPU lacks AVX2 and FMA only gb_bins_supported and the fold run. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "exact_sum.h"
#include "fedavg_bins.h"

static uint64_t s_rand(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* A fast-range value: every binade from 2^-62 to 2, both signs, zeros. */
static float s_fast_value(uint64_t *rng)
{
    uint64_t r = s_rand(rng);
    if (r % 29 == 0)
        return (r & 1) ? -0.0f : 0.0f;
    double u = (double)(s_rand(rng) >> 11) / 9007199254740992.0 + 1.0; /* [1, 2) */
    float v = (float)ldexp(u, 1 - (int)(s_rand(rng) % 64));           /* 2^-62 .. < 4 */
    return (r & 2) ? -v : v;
}

/* (l2:l1) in units of 2^-85 as a gb_exact_sum_t (units of 2^-149). */
static void s_limbs_exact(uint64_t l1, uint64_t l2, gb_exact_sum_t *s)
{
    uint64_t sign = -(l2 >> 63);
    s->limb[0] = 0;
    s->limb[1] = l1;
    s->limb[2] = l2;
    s->limb[3] = sign;
    s->limb[4] = sign;
}

typedef struct {
    size_t p;
    uint64_t *words; /* 3 x p */
    gb_bins_t bins;
} s_bins_t;

static void s_bins_new(s_bins_t *b, size_t p)
{
    b->p = p;
    assert_non_null(b->words = calloc(3 * p, sizeof *b->words));
    b->bins = (gb_bins_t){b->words, b->words + p, b->words + 2 * p};
}

/* Runs the kernel over all n parameters from 0 (n a multiple of 8), as
 * aggregate.c's driver does, asserting no lane is rare. */
static void s_add_all(s_bins_t *b, const float *const *src, const uint64_t *wt, size_t ns,
                      unsigned flip)
{
    unsigned rare[GB_BINS_MAX_UPDATES] = {0};
    size_t i = gb_bins_add_run_avx2(b->bins, src, wt, ns, 0, 0, b->p, flip, rare);
    assert_int_equal(i, b->p);
}

static void test_bins_hold_the_exact_sum(void **state)
{
    (void)state;
    if (!gb_bins_supported())
        skip();
    enum { P = 256, N = 8, ROUNDS = 3 };
    uint64_t rng = 77;
    static float ups[ROUNDS * N][P];
    uint64_t w[ROUNDS * N];
    for (size_t k = 0; k < ROUNDS * N; k++) {
        for (size_t j = 0; j < P; j++)
            ups[k][j] = s_fast_value(&rng);
        /* weights up to the kernel's bound, 2^29 */
        w[k] = k % 5 == 0 ? GB_BINS_MAX_WEIGHT : 1 + s_rand(&rng) % 100000;
    }
    s_bins_t b;
    s_bins_new(&b, P);
    /* batches of 1..8 updates, the sum of all of them */
    size_t done = 0;
    for (size_t ns = 1; done + ns <= ROUNDS * N; ns++) {
        const float *src[GB_BINS_MAX_UPDATES];
        for (size_t k = 0; k < ns; k++)
            src[k] = ups[done + k];
        s_add_all(&b, src, w + done, ns, 0);
        done += ns;
        if (ns == GB_BINS_MAX_UPDATES)
            ns = 0;
    }
    uint64_t *l1 = calloc(P, sizeof *l1), *l2 = calloc(P, sizeof *l2);
    assert_non_null(l1);
    assert_non_null(l2);
    gb_bins_fold(b.bins, l1, l2, 0, P, 0);
    for (size_t j = 0; j < P; j++) {
        gb_exact_sum_t want, got;
        gb_exact_sum_clear(&want);
        for (size_t k = 0; k < done; k++)
            gb_exact_sum_add(&want, ups[k][j], w[k]);
        s_limbs_exact(l1[j], l2[j], &got);
        if (memcmp(&want, &got, sizeof want) != 0)
            fail_msg("parameter %zu: the bins' integer differs from the exact sum", j);
    }
    free(l1);
    free(l2);
    free(b.words);
}

static void test_taking_back_restores_every_bit(void **state)
{
    (void)state;
    if (!gb_bins_supported())
        skip();
    enum { P = 64 };
    uint64_t rng = 5;
    float a[P], c[P];
    for (size_t j = 0; j < P; j++) {
        a[j] = s_fast_value(&rng);
        c[j] = s_fast_value(&rng);
    }
    s_bins_t b;
    s_bins_new(&b, P);
    const float *one[1] = {a}, *other[1] = {c};
    uint64_t wa[1] = {12345}, wc[1] = {GB_BINS_MAX_WEIGHT};
    s_add_all(&b, one, wa, 1, 0);
    uint64_t before[3 * P];
    memcpy(before, b.words, sizeof before);
    s_add_all(&b, other, wc, 1, 0);
    s_add_all(&b, other, wc, 1, 1); /* taken back */
    assert_memory_equal(before, b.words, sizeof before);
    free(b.words);
}

static void test_rare_values_and_nan(void **state)
{
    (void)state;
    if (!gb_bins_supported())
        skip();
    enum { P = 32 };
    float x[P], y[P];
    uint64_t rng = 9;
    for (size_t j = 0; j < P; j++)
        x[j] = y[j] = s_fast_value(&rng);
    x[3] = 4.0f;          /* the first value past the fast range */
    x[5] = 0x1p-63f;      /* tiny */
    x[6] = 1e-45f;        /* subnormal */
    y[12] = 0x1p-62f;     /* the smallest fast one: not rare */
    y[13] = -3.9999998f;  /* the largest */
    s_bins_t b;
    s_bins_new(&b, P);
    const float *src[2] = {x, y};
    uint64_t wt[2] = {3, 4};
    unsigned rare[2] = {0, 0};
    /* the run stops after the vector with rare values, lanes 3, 5, 6 of x */
    size_t i = gb_bins_add_run_avx2(b.bins, src, wt, 2, 0, 0, P, 0, rare);
    assert_int_equal(i, 8);
    assert_int_equal(rare[0], (1u << 3) | (1u << 5) | (1u << 6));
    assert_int_equal(rare[1], 0);
    /* the rare lanes added nothing: y alone there */
    uint64_t l1[P], l2[P];
    gb_bins_fold(b.bins, l1, l2, 0, 8, 0);
    for (unsigned lane = 0; lane < 8; lane++) {
        gb_exact_sum_t want, got;
        gb_exact_sum_clear(&want);
        gb_exact_sum_add(&want, y[lane], 4);
        if (!((rare[0] >> lane) & 1))
            gb_exact_sum_add(&want, x[lane], 3);
        s_limbs_exact(l1[lane], l2[lane], &got);
        assert_memory_equal(&want, &got, sizeof want);
    }
    /* a NaN in the next vector: the run stops before it, adding nothing */
    x[17] = NAN;
    uint64_t before[3 * P];
    memcpy(before, b.words, sizeof before);
    i = gb_bins_add_run_avx2(b.bins, src, wt, 2, 0, 8, P, 0, rare);
    assert_int_equal(i, 16);
    i = gb_bins_add_run_avx2(b.bins, src, wt, 2, 0, 16, P, 0, rare);
    assert_int_equal(i, 16);
    assert_memory_equal(before + 16, b.words + 16, 8 * sizeof *before);
    y[25] = -INFINITY; /* in the other update */
    x[17] = 0.5f;
    i = gb_bins_add_run_avx2(b.bins, src, wt, 2, 0, 24, P, 0, rare);
    assert_int_equal(i, 24);
    /* a run stops at the last whole vector */
    i = gb_bins_add_run_avx2(b.bins, src, wt, 1, 0, 16, 23, 0, rare);
    assert_int_equal(i, 16 + 0);
    free(b.words);
}

/* The fold at the bins' bounds (integers of units up to 2^51 - 1, both
 * signs), 8 parameters so that the vector path runs, against 128-bit
 * arithmetic: stored, then added to what it stored. */
static void test_fold_at_the_bounds(void **state)
{
    (void)state;
    enum { P = 9 };
    const int64_t big = ((int64_t)1 << 51) - 1;
    const int64_t lo_u[P] = {big, -big, 0, 1, -1, big, -big, 12345, -7};
    const int64_t mid_u[P] = {-big, big, big, -1, 0, big, -big, -54321, 3};
    const int64_t hi_u[P] = {big, -big, -big, 0, 1, big, -big, 999, -big};
    uint64_t words[3 * P];
    gb_bins_t b = {words, words + P, words + 2 * P};
    for (size_t j = 0; j < P; j++) {
        double lo = (double)lo_u[j] * 0x1p-85, mid = (double)mid_u[j] * 0x1p-47;
        double hi = (double)hi_u[j] * 0x1p-8;
        memcpy(&words[j], &lo, 8);
        memcpy(&words[P + j], &mid, 8);
        memcpy(&words[2 * P + j], &hi, 8);
    }
    uint64_t l1[P], l2[P];
    gb_bins_fold(b, l1, l2, 0, P, 0);
    gb_bins_fold(b, l1, l2, 0, P, 1);
    for (size_t j = 0; j < P; j++) {
        unsigned __int128 one = (unsigned __int128)(__int128)lo_u[j] +
                                ((unsigned __int128)(__int128)mid_u[j] << 38) +
                                ((unsigned __int128)(__int128)hi_u[j] << 77);
        unsigned __int128 want = one + one;
        if (l1[j] != (uint64_t)want || l2[j] != (uint64_t)(want >> 64))
            fail_msg("parameter %zu: the fold differs from 128-bit arithmetic", j);
    }
}

static void test_supported_is_the_cpu(void **state)
{
    (void)state;
#if defined(__x86_64__)
    __builtin_cpu_init();
    assert_int_equal(gb_bins_supported(),
                     __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"));
#else
    assert_int_equal(gb_bins_supported(), 0);
#endif
}

/* The fold's sum of the three bins, added to limbs or stored, in place. */
static void test_fold(void **state)
{
    (void)state;
    enum { P = 3 };
    uint64_t words[3 * P];
    gb_bins_t b = {words, words + P, words + 2 * P};
    const double lo[P] = {0x1p-85, -0x3p-85, 0.0}, mid[P] = {0x1p-47, 0.0, -0x5p-47};
    const double hi[P] = {-0x1p-8, 0x7p10, 0.0};
    for (size_t j = 0; j < P; j++) {
        memcpy(&words[j], &lo[j], 8);
        memcpy(&words[P + j], &mid[j], 8);
        memcpy(&words[2 * P + j], &hi[j], 8);
    }
    uint64_t l1[P] = {5, 0, 0}, l2[P] = {0, 0, 0};
    gb_bins_fold(b, l1, l2, 0, P, 1);
    /* units of 2^-85: 1 + 2^38 - 2^77, added to 5 */
    unsigned __int128 want0 = (unsigned __int128)6 + ((unsigned __int128)1 << 38) -
                              ((unsigned __int128)1 << 77);
    assert_true(l1[0] == (uint64_t)want0 && l2[0] == (uint64_t)(want0 >> 64));
    /* -3 + 7 * 2^95 */
    unsigned __int128 want1 = ((unsigned __int128)7 << 95) - 3;
    assert_true(l1[1] == (uint64_t)want1 && l2[1] == (uint64_t)(want1 >> 64));
    unsigned __int128 want2 = -((unsigned __int128)5 << 38);
    assert_true(l1[2] == (uint64_t)want2 && l2[2] == (uint64_t)(want2 >> 64));
    /* stored in place over the bins' own words */
    gb_bins_fold(b, b.lo, b.mid, 0, P, 0);
    assert_true(words[0] == (uint64_t)(want0 - 5) && words[P] == (uint64_t)((want0 - 5) >> 64));
    assert_true(words[1] == l1[1] && words[P + 1] == l2[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bins_hold_the_exact_sum),
        cmocka_unit_test(test_taking_back_restores_every_bit),
        cmocka_unit_test(test_rare_values_and_nan),
        cmocka_unit_test(test_fold),
        cmocka_unit_test(test_fold_at_the_bounds),
        cmocka_unit_test(test_supported_is_the_cpu),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
