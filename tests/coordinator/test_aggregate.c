/* Tests for coordinator/aggregate and aggregate_robust: each rule by hand
 * (spec strings: test_agg_spec.c; the exact sums: test_exact_sum.c); FedAvg against a double-precision reference; every rule's
 * result bit-identical whatever the order of the adds; every refusal of
 * add, begin and finish changing nothing (the round then gives exactly the
 * result it gives without the bad call); median and trimmed mean against a
 * naive sort; Krum and multi-Krum choosing the honest updates when F clients
 * send outliers; an outlier moving the robust rules little and FedAvg a lot;
 * the robust kernels called directly; and allocation-failure injection. */
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregate.h"
#include "aggregate_robust.h"
#include "util/alloc.h"
#include "util/log.h"

/* ---- helpers ----------------------------------------------------------------- */

static uint64_t s_rng = 0x9e3779b97f4a7c15ull;

static gb_aggregator_t *s_new(const char *spec, size_t max_clients)
{
    gb_error_t err;
    gb_aggregator_t *agg = gb_aggregator_new(spec, max_clients, &err);
    if (!agg)
        fail_msg("%s: %s", spec, err.msg);
    return agg;
}

/* begin, add rows in the order idx (or 0..n-1), finish into out. */
static void s_run(gb_aggregator_t *agg, uint64_t round, const float *rows, const uint64_t *w,
                  size_t n, size_t p, const size_t *idx, float *out)
{
    gb_error_t err;
    assert_int_equal(gb_aggregator_begin(agg, round, p, &err), 0);
    for (size_t k = 0; k < n; k++) {
        size_t i = idx ? idx[k] : k;
        if (gb_aggregator_add(agg, rows + i * p, p, w[i], &err) != 0)
            fail_msg("add %zu: %s", i, err.msg);
    }
    if (gb_aggregator_finish(agg, out, p, &err) != 0)
        fail_msg("finish: %s", err.msg);
}

static const char *const s_all_rules[] = {"fedavg",         "median", "trimmed_mean:0.2",
                                          "trimmed_mean:0", "krum:2", "multi_krum:2:4"};
#define S_N_RULES (sizeof s_all_rules / sizeof *s_all_rules)

static void test_new(void **state)
{
    (void)state;
    gb_error_t err;
    assert_null(gb_aggregator_new("fedavg", 0, &err));
    assert_non_null(strstr(err.msg, "max_clients 0"));
    assert_null(gb_aggregator_new("fedavg", GB_AGG_MAX_CLIENTS + 1, &err));
    assert_int_equal(err.code, GB_EINVAL);
    /* A rule that could never be satisfied is refused up front. */
    assert_null(gb_aggregator_new("krum:2", 6, &err));
    assert_non_null(strstr(err.msg, "needs at least 7 updates"));
    assert_null(gb_aggregator_new("multi_krum:1:9", 9, &err));
    assert_non_null(strstr(err.msg, "needs at least 10"));
    /* A bad spec string is refused as gb_agg_spec_parse refuses it
     * (test_agg_spec.c has every kind). */
    assert_null(gb_aggregator_new("trimmed_mean:0.7", 100, &err));
    assert_int_equal(err.code, GB_EINVAL);
    assert_non_null(strstr(err.msg, "must be in [0, 0.5)"));
    assert_null(gb_aggregator_new("krum", 100, &err));
    assert_int_equal(err.code, GB_EINVAL);
    assert_null(gb_aggregator_new(NULL, 10, &err));
    assert_int_equal(err.code, GB_EINVAL);

    gb_aggregator_t *agg = s_new("multi_krum:2:4", 7);
    assert_string_equal(gb_aggregator_name(agg), "multi_krum:2:4");
    gb_agg_spec_t sp = gb_aggregator_spec(agg);
    assert_int_equal(sp.rule, GB_AGG_MULTI_KRUM);
    assert_int_equal(sp.f, 2);
    assert_int_equal(sp.m, 4);
    assert_int_equal(gb_aggregator_max_clients(agg), 7);
    assert_int_equal(gb_aggregator_min_updates(agg), 7);
    assert_int_equal(gb_aggregator_round(agg), 0);
    assert_int_equal(gb_aggregator_param_count(agg), 0);
    assert_false(gb_aggregator_is_open(agg));
    assert_int_equal(gb_aggregator_updates(agg), 0);
    assert_int_equal(gb_aggregator_weight(agg), 0);
    assert_int_equal(gb_aggregator_selected(agg, NULL, 0), 0);
    gb_aggregator_destroy(&agg);
    assert_null(agg);
    gb_aggregator_destroy(&agg);
    gb_aggregator_destroy(NULL);

    agg = s_new("trimmed_mean:1e-1", GB_AGG_MAX_CLIENTS);
    assert_string_equal(gb_aggregator_name(agg), "trimmed_mean:0.1");
    gb_aggregator_destroy(&agg);
}

/* ---- rules by hand ------------------------------------------------------------- */

static void test_fedavg_hand(void **state)
{
    (void)state;
    gb_error_t err;
    gb_aggregator_t *agg = s_new("fedavg", 10);
    const float rows[] = {1, 2, 3, 3, 6, 9};
    const uint64_t w[] = {1, 3};
    float out[3];
    assert_int_equal(gb_aggregator_begin(agg, 5, 3, &err), 0);
    assert_true(gb_aggregator_is_open(agg));
    assert_int_equal(gb_aggregator_round(agg), 5);
    assert_int_equal(gb_aggregator_param_count(agg), 3);
    assert_int_equal(gb_aggregator_add(agg, rows, 3, w[0], &err), 0);
    assert_int_equal(gb_aggregator_add(agg, rows + 3, 3, w[1], &err), 0);
    assert_int_equal(gb_aggregator_updates(agg), 2);
    assert_int_equal(gb_aggregator_weight(agg), 4);
    assert_int_equal(gb_aggregator_finish(agg, out, 3, &err), 0);
    /* (1 + 3*3) / 4, (2 + 3*6) / 4, (3 + 3*9) / 4 */
    assert_true(out[0] == 2.5f && out[1] == 5.0f && out[2] == 7.5f);
    assert_false(gb_aggregator_is_open(agg));
    assert_int_equal(gb_aggregator_selected(agg, NULL, 0), 0);

    /* The next round starts from nothing, with another size. */
    const float one[] = {-4, 0.5f};
    s_run(agg, 6, one, (const uint64_t[]){7}, 1, 2, NULL, out);
    assert_true(out[0] == -4.0f && out[1] == 0.5f);
    assert_int_equal(gb_aggregator_updates(agg), 1);
    /* And a bigger size than ever (the accumulator grows in begin). */
    float big[500], big_out[500];
    for (int i = 0; i < 500; i++)
        big[i] = (float)i;
    s_run(agg, 7, big, (const uint64_t[]){2}, 1, 500, NULL, big_out);
    assert_memory_equal(big, big_out, sizeof big);
    gb_aggregator_destroy(&agg);
}

static void test_median_hand(void **state)
{
    (void)state;
    gb_aggregator_t *agg = s_new("median", 10);
    /* 5 updates of 3 values; weights are ignored. */
    const float rows[] = {1, -5, 0,  //
                          9, -1, 0,  //
                          3, -2, 7,  //
                          2, -3, 7,  //
                          100, -4, 7};
    const uint64_t w[] = {1000, 1, 1, 1, 1};
    float out[3];
    s_run(agg, 1, rows, w, 5, 3, NULL, out);
    assert_true(out[0] == 3.0f && out[1] == -3.0f && out[2] == 7.0f);
    /* Even count: the mean of the two middle values. */
    s_run(agg, 2, rows, w, 4, 3, NULL, out);
    assert_true(out[0] == 2.5f && out[1] == -2.5f && out[2] == 3.5f);
    /* The sign of a zero does not depend on the order: -0 sorts before +0. */
    const float zeros[] = {-0.0f, 0.0f, 0.0f};
    const uint64_t w3[] = {1, 1, 1};
    float z;
    s_run(agg, 3, zeros, w3, 3, 1, NULL, &z);
    assert_false(signbit(z));
    const float zeros2[] = {0.0f, -0.0f, -0.0f};
    s_run(agg, 4, zeros2, w3, 3, 1, NULL, &z);
    assert_true(z == 0.0f && signbit(z));
    gb_aggregator_destroy(&agg);
}

static void test_trimmed_mean_hand(void **state)
{
    (void)state;
    gb_aggregator_t *agg = s_new("trimmed_mean:0.2", 20);
    const float rows[] = {1, 10, 2, 20, 3, 30, 4, 40, 100, -1000};
    const uint64_t w[] = {1, 1, 1, 1, 50};
    float out[2];
    /* n = 5, k = floor(0.2 * 5) = 1: mean of {2, 3, 4} and {10, 20, 30}. */
    s_run(agg, 1, rows, w, 5, 2, NULL, out);
    assert_true(out[0] == 3.0f && out[1] == 20.0f);
    /* n = 4, k = floor(0.8) = 0: the plain unweighted mean. */
    s_run(agg, 2, rows, w, 4, 2, NULL, out);
    assert_true(out[0] == 2.5f && out[1] == 25.0f);
    gb_aggregator_destroy(&agg);

    /* beta 0.1 of 10 cuts exactly one each side (0.1 * 10 is not below 1). */
    agg = s_new("trimmed_mean:0.1", 20);
    float col[10];
    uint64_t w10[10];
    for (int i = 0; i < 10; i++) {
        col[i] = (float)(i * i);
        w10[i] = 1;
    }
    s_run(agg, 3, col, w10, 10, 1, NULL, out);
    assert_true(out[0] == (1 + 4 + 9 + 16 + 25 + 36 + 49 + 64) / 8.0f);
    gb_aggregator_destroy(&agg);

    /* 0.29 * 100 is 28.999999999999996 in double: still 29 cut. */
    agg = s_new("trimmed_mean:0.29", 200);
    float v[100];
    uint64_t w100[100];
    for (int i = 0; i < 100; i++) {
        v[i] = (float)i;
        w100[i] = 1;
    }
    s_run(agg, 4, v, w100, 100, 1, NULL, out);
    assert_true(out[0] == 49.5f); /* mean of 29..70 */
    s_run(agg, 5, v, w100, 99, 1, NULL, out);
    assert_true(out[0] == 49.0f); /* floor(28.71) = 28 cut: mean of 28..70 */
    gb_aggregator_destroy(&agg);
}

static void test_krum_hand(void **state)
{
    (void)state;
    /* One coordinate: 0, 1, 2, 4, 100; F = 1 scores the n - F - 2 = 2 nearest.
     * Scores: 0 -> 1 + 4 = 5; 1 -> 1 + 1 = 2; 2 -> 1 + 4 = 5; 4 -> 4 + 9 = 13;
     * 100 -> 96^2 + 98^2. */
    const float rows[] = {100, 0, 4, 1, 2};
    const uint64_t w[] = {1, 1, 1, 2, 1};
    float out;
    size_t sel[4];
    gb_aggregator_t *agg = s_new("krum:1", 10);
    s_run(agg, 1, rows, w, 5, 1, NULL, &out);
    assert_true(out == 1.0f);
    assert_int_equal(gb_aggregator_selected(agg, sel, 4), 1);
    assert_int_equal(sel[0], 3);
    gb_aggregator_destroy(&agg);

    /* Multi-Krum, M = 3: 1 (score 2), then 0 and 2 tied at 5, broken by
     * content (0 < 2), never by arrival. Weighted: (2*1 + 0 + 2) / 4 = 1. */
    agg = s_new("multi_krum:1:3", 10);
    s_run(agg, 1, rows, w, 5, 1, NULL, &out);
    assert_true(out == 1.0f);
    assert_int_equal(gb_aggregator_selected(agg, sel, 4), 3);
    assert_int_equal(sel[0], 3);
    assert_int_equal(sel[1], 1);
    assert_int_equal(sel[2], 4);
    /* A smaller cap copies fewer indices but reports the count. */
    size_t one = 99;
    assert_int_equal(gb_aggregator_selected(agg, &one, 1), 3);
    assert_int_equal(one, 3);
    /* The same rows in reverse: the same choice by content. */
    const float rev[] = {2, 1, 4, 0, 100};
    const uint64_t wrev[] = {1, 2, 1, 1, 1};
    s_run(agg, 2, rev, wrev, 5, 1, NULL, &out);
    assert_true(out == 1.0f);
    assert_int_equal(gb_aggregator_selected(agg, sel, 4), 3);
    assert_int_equal(sel[0], 1);
    assert_int_equal(sel[1], 3);
    assert_int_equal(sel[2], 0);
    /* A new round forgets the last choice until it finishes. */
    gb_error_t err;
    assert_int_equal(gb_aggregator_begin(agg, 3, 1, &err), 0);
    assert_int_equal(gb_aggregator_selected(agg, sel, 4), 0);
    gb_aggregator_destroy(&agg);
}

/* ---- FedAvg against double precision -------------------------------------------- */

static void test_fedavg_vs_double(void **state)
{
    (void)state;
    enum { N = 37, P = 1000 };
    float *rows = malloc(sizeof(float) * N * P), out[P];
    uint64_t w[N];
    for (int i = 0; i < N; i++) {
        w[i] = 1 + gb_test_xorshift(&s_rng) % 5000;
        for (int j = 0; j < P; j++)
            rows[i * P + j] = (float)(gb_test_xorshift_unif(&s_rng) * pow(10, (j % 7) - 4));
    }
    gb_aggregator_t *agg = s_new("fedavg", N);
    s_run(agg, 1, rows, w, N, P, NULL, out);
    long double total = 0;
    for (int i = 0; i < N; i++)
        total += (long double)w[i];
    for (int j = 0; j < P; j++) {
        long double s = 0;
        for (int i = 0; i < N; i++)
            s += (long double)rows[i * P + j] * (long double)w[i];
        gb_test_assert_correctly_rounded(out[j], (double)(s / total), (size_t)j);
    }
    gb_aggregator_destroy(&agg);
    free(rows);
}

/* ---- order independence ----------------------------------------------------------- */

static void test_order_independence(void **state)
{
    (void)state;
    enum { N = 12, P = 150 };
    float *rows = malloc(sizeof(float) * N * P);
    uint64_t w[N];
    for (int i = 0; i < N; i++) {
        w[i] = 1 + gb_test_xorshift(&s_rng) % 300;
        for (int j = 0; j < P; j++) {
            double u = gb_test_xorshift_unif(&s_rng);
            /* Ties and both zeros in some columns, wide magnitudes in others. */
            rows[i * P + j] = j % 3 == 0   ? (float)(int)(u * 3)
                              : j % 3 == 1 ? (u < 0 ? -0.0f : 0.0f)
                                           : (float)(u * pow(2, (double)(gb_test_xorshift(&s_rng) % 60) - 30));
        }
    }
    /* Two identical updates with equal weights: a tie in Krum's ranking. */
    memcpy(rows + 5 * P, rows + 4 * P, sizeof(float) * P);
    w[5] = w[4];
    size_t idx[N];
    float ref[P], got[P];
    for (size_t r = 0; r < S_N_RULES; r++) {
        gb_aggregator_t *agg = s_new(s_all_rules[r], N);
        s_run(agg, 1, rows, w, N, P, NULL, ref);
        for (int rep = 0; rep < 6; rep++) {
            gb_test_xorshift_shuffle(&s_rng, idx, N);
            s_run(agg, 2 + (uint64_t)rep, rows, w, N, P, idx, got);
            if (memcmp(ref, got, sizeof ref) != 0)
                fail_msg("%s: result depends on the order of the adds", s_all_rules[r]);
        }
        gb_aggregator_destroy(&agg);
    }
    free(rows);
}

/* ---- refusals change nothing ------------------------------------------------------ */

static void test_refusals(void **state)
{
    (void)state;
    enum { N = 8, P = 40 };
    float rows[N * P], bad[P + 1], ref[P], got[P];
    uint64_t w[N];
    for (int i = 0; i < N; i++) {
        w[i] = 1 + gb_test_xorshift(&s_rng) % 50;
        for (int j = 0; j < P; j++)
            rows[i * P + j] = (float)gb_test_xorshift_unif(&s_rng);
    }
    for (size_t r = 0; r < S_N_RULES; r++) {
        gb_error_t err;
        gb_aggregator_t *agg = s_new(s_all_rules[r], N);
        s_run(agg, 1, rows, w, N, P, NULL, ref);

        /* Before any round is open, and after a round is finished. */
        assert_int_equal(gb_aggregator_add(agg, rows, P, 1, &err), GB_EINVAL);
        assert_non_null(strstr(err.msg, "no round open"));
        assert_int_equal(gb_aggregator_finish(agg, got, P, &err), GB_EINVAL);

        assert_int_equal(gb_aggregator_begin(agg, 2, P, &err), 0);
        /* No update yet: finish refuses and the round stays open. */
        assert_int_equal(gb_aggregator_finish(agg, got, P, &err), GB_EINVAL);
        assert_non_null(strstr(err.msg, "no update"));
        assert_true(gb_aggregator_is_open(agg));
        for (int i = 0; i < N; i++) {
            size_t n0 = gb_aggregator_updates(agg);
            uint64_t w0 = gb_aggregator_weight(agg);
            memcpy(bad, rows + i * P, sizeof(float) * P);
            bad[P] = 1;
            switch (i % 6) {
            case 0: /* one value too many, then one too few */
                assert_int_equal(gb_aggregator_add(agg, bad, P + 1, 1, &err), GB_ESHAPE);
                assert_non_null(strstr(err.msg, "41 parameters, expected 40"));
                assert_int_equal(gb_aggregator_add(agg, bad, P - 1, 1, &err), GB_ESHAPE);
                break;
            case 1: /* NaN in the last value: refused after the scan */
                bad[P - 1] = NAN;
                assert_int_equal(gb_aggregator_add(agg, bad, P, 1, &err), GB_ERANGE);
                assert_non_null(strstr(err.msg, "value 39 is NaN"));
                break;
            case 2:
                bad[0] = -INFINITY;
                assert_int_equal(gb_aggregator_add(agg, bad, P, 1, &err), GB_ERANGE);
                assert_non_null(strstr(err.msg, "value 0 is infinite"));
                break;
            case 3:
                assert_int_equal(gb_aggregator_add(agg, bad, P, 0, &err), GB_EINVAL);
                assert_non_null(strstr(err.msg, "num_samples 0"));
                break;
            case 4:
                assert_int_equal(gb_aggregator_add(agg, bad, P, GB_AGG_MAX_WEIGHT, &err),
                                 GB_ERANGE);
                assert_non_null(strstr(err.msg, "past"));
                break;
            default:
                assert_int_equal(gb_aggregator_add(agg, NULL, P, 1, &err), GB_EINVAL);
                break;
            }
            assert_int_equal(gb_aggregator_updates(agg), n0);
            assert_int_equal(gb_aggregator_weight(agg), w0);
            assert_int_equal(gb_aggregator_add(agg, rows + i * P, P, w[i], &err), 0);
        }
        /* One past max_clients. */
        assert_int_equal(gb_aggregator_add(agg, rows, P, 1, &err), GB_ERANGE);
        assert_non_null(strstr(err.msg, "already 8 updates, the maximum"));
        /* finish with a wrong output size refuses and keeps the round. */
        assert_int_equal(gb_aggregator_finish(agg, got, P - 1, &err), GB_EINVAL);
        assert_int_equal(gb_aggregator_finish(agg, NULL, P, &err), GB_EINVAL);
        assert_true(gb_aggregator_is_open(agg));
        assert_int_equal(gb_aggregator_finish(agg, got, P, &err), 0);
        if (memcmp(ref, got, sizeof ref) != 0)
            fail_msg("%s: a refused add changed the result", s_all_rules[r]);
        assert_int_equal(gb_aggregator_finish(agg, got, P, &err), GB_EINVAL);
        assert_int_equal(gb_aggregator_add(agg, rows, P, 1, &err), GB_EINVAL);

        /* begin refuses a bad size and keeps the open round. */
        assert_int_equal(gb_aggregator_begin(agg, 3, P, &err), 0);
        assert_int_equal(gb_aggregator_add(agg, rows, P, w[0], &err), 0);
        assert_int_equal(gb_aggregator_begin(agg, 4, 0, &err), GB_EINVAL);
        assert_int_equal(gb_aggregator_begin(agg, 4, GB_AGG_MAX_PARAMS + 1, &err), GB_EINVAL);
        assert_int_equal(gb_aggregator_round(agg), 3);
        assert_int_equal(gb_aggregator_updates(agg), 1);
        /* begin while open drops the round's updates: the re-begun round
         * gives the clean result. */
        assert_int_equal(gb_aggregator_begin(agg, 3, P, &err), 0);
        assert_int_equal(gb_aggregator_updates(agg), 0);
        for (int i = 0; i < N; i++)
            assert_int_equal(gb_aggregator_add(agg, rows + i * P, P, w[i], &err), 0);
        assert_int_equal(gb_aggregator_finish(agg, got, P, &err), 0);
        assert_memory_equal(ref, got, sizeof ref);
        gb_aggregator_destroy(&agg);
    }
}

static void test_weight_bound(void **state)
{
    (void)state;
    gb_error_t err;
    const float a[2] = {1.5f, -2}, b[2] = {3, 4};
    float out[2];
    gb_aggregator_t *agg = s_new("fedavg", 10);
    assert_int_equal(gb_aggregator_begin(agg, 1, 2, &err), 0);
    assert_int_equal(gb_aggregator_add(agg, a, 2, GB_AGG_MAX_WEIGHT - 1, &err), 0);
    assert_int_equal(gb_aggregator_add(agg, b, 2, 2, &err), GB_ERANGE);
    assert_int_equal(gb_aggregator_add(agg, b, 2, UINT64_MAX, &err), GB_ERANGE);
    assert_int_equal(gb_aggregator_add(agg, b, 2, 1, &err), 0);
    assert_int_equal(gb_aggregator_weight(agg), GB_AGG_MAX_WEIGHT);
    assert_int_equal(gb_aggregator_finish(agg, out, 2, &err), 0);
    /* (1.5 (2^40 - 1) + 3) / 2^40 and (-2 (2^40 - 1) + 4) / 2^40, rounded. */
    assert_true(out[0] == 1.5f && out[1] == -2.0f);
    gb_aggregator_destroy(&agg);
}

static void test_finish_too_few(void **state)
{
    (void)state;
    gb_error_t err;
    const float rows[] = {0, 1, 2, 3, 4};
    float out;
    gb_aggregator_t *agg = s_new("krum:1", 5);
    assert_int_equal(gb_aggregator_begin(agg, 9, 1, &err), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(gb_aggregator_add(agg, rows + i, 1, 1, &err), 0);
    out = -7;
    assert_int_equal(gb_aggregator_finish(agg, &out, 1, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "round 9: krum:1 needs at least 5 updates, got 4"));
    assert_true(out == -7.0f);
    assert_true(gb_aggregator_is_open(agg));
    /* The round stays open: a fifth update makes it finishable. */
    assert_int_equal(gb_aggregator_add(agg, rows + 4, 1, 1, &err), 0);
    assert_int_equal(gb_aggregator_finish(agg, &out, 1, &err), 0);
    /* 1, 2 and 3 all score 1 + 1; the tie goes to the smallest content. */
    assert_true(out == 1.0f);
    gb_aggregator_destroy(&agg);

    agg = s_new("multi_krum:1:8", 10);
    assert_int_equal(gb_aggregator_min_updates(agg), 9);
    gb_aggregator_destroy(&agg);
}

/* ---- robust rules against a naive sort --------------------------------------------- */

static int s_cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static void test_robust_vs_naive(void **state)
{
    (void)state;
    enum { P = 150 };
    static const size_t sizes[] = {1, 2, 3, 4, 5, 7, 10, 16, 17, 33, 100};
    static const char *const specs[] = {"median", "trimmed_mean:0", "trimmed_mean:0.1",
                                        "trimmed_mean:0.25", "trimmed_mean:0.4",
                                        "trimmed_mean:0.49"};
    static const double betas[] = {-1, 0, 0.1, 0.25, 0.4, 0.49};
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        size_t n = sizes[si];
        float *rows = malloc(sizeof(float) * n * P), *col = malloc(sizeof(float) * n);
        uint64_t *w = malloc(sizeof(uint64_t) * n);
        for (size_t i = 0; i < n; i++) {
            w[i] = 1 + gb_test_xorshift(&s_rng) % 9;
            for (size_t j = 0; j < P; j++) /* some columns with many ties */
                rows[i * P + j] = j % 4 == 0 ? (float)(int)(gb_test_xorshift_unif(&s_rng) * 2) : (float)gb_test_xorshift_unif(&s_rng);
        }
        for (size_t r = 0; r < sizeof specs / sizeof *specs; r++) {
            float out[P];
            gb_aggregator_t *agg = s_new(specs[r], 100);
            s_run(agg, 1, rows, w, n, P, NULL, out);
            for (size_t j = 0; j < P; j++) {
                for (size_t i = 0; i < n; i++)
                    col[i] = rows[i * P + j];
                qsort(col, n, sizeof *col, s_cmp_float);
                if (betas[r] < 0) {
                    float want = n % 2 ? col[n / 2]
                                       : (float)(((double)col[n / 2 - 1] + col[n / 2]) / 2);
                    if (out[j] != want)
                        fail_msg("median n=%zu col %zu: %g != %g", n, j, (double)out[j],
                                 (double)want);
                } else {
                    size_t k = (size_t)(betas[r] * (double)n + 1e-9);
                    long double s = 0; /* 64-bit mantissa: the sum all but exactly */
                    for (size_t i = k; i < n - k; i++)
                        s += col[i];
                    gb_test_assert_correctly_rounded(out[j], (double)(s / (long double)(n - 2 * k)), j);
                }
            }
            gb_aggregator_destroy(&agg);
        }
        free(rows);
        free(col);
        free(w);
    }
}

/* ---- Byzantine clients ----------------------------------------------------------- */

static void test_krum_byzantine(void **state)
{
    (void)state;
    enum { N = 10, F = 3, P = 50 };
    float rows[N * P], out[P], honest_mean[P] = {0};
    uint64_t w[N];
    /* Byzantine updates at 0, 4 and 7 (two of them colluding, identical). */
    const int byz[N] = {1, 0, 0, 0, 1, 0, 0, 1, 0, 0};
    for (int i = 0; i < N; i++) {
        w[i] = byz[i] ? 1000 : 10 + (uint64_t)i;
        for (int j = 0; j < P; j++)
            rows[i * P + j] = byz[i] ? (i == 7 ? -50.0f : 100.0f) : 0.5f + 0.01f * (float)gb_test_xorshift_unif(&s_rng);
    }
    memcpy(rows + 4 * P, rows, sizeof(float) * P);
    for (int j = 0; j < P; j++) {
        double s = 0, t = 0;
        for (int i = 0; i < N; i++)
            if (!byz[i]) {
                s += rows[i * P + j] * (double)w[i];
                t += (double)w[i];
            }
        honest_mean[j] = (float)(s / t);
    }
    size_t sel[8];
    gb_aggregator_t *agg = s_new("krum:3", N);
    s_run(agg, 1, rows, w, N, P, NULL, out);
    assert_int_equal(gb_aggregator_selected(agg, sel, 8), 1);
    assert_false(byz[sel[0]]);
    assert_memory_equal(out, rows + sel[0] * P, sizeof out);
    gb_aggregator_destroy(&agg);

    agg = s_new("multi_krum:3:7", N);
    s_run(agg, 1, rows, w, N, P, NULL, out);
    assert_int_equal(gb_aggregator_selected(agg, sel, 8), 7);
    for (int t = 0; t < 7; t++)
        assert_false(byz[sel[t]]);
    /* All seven honest updates, weighted: the honest FedAvg. */
    for (int j = 0; j < P; j++)
        assert_true(fabsf(out[j] - honest_mean[j]) <= 1e-6f);
    gb_aggregator_destroy(&agg);
}

static void test_outlier_influence(void **state)
{
    (void)state;
    enum { N = 10, P = 20 };
    float rows[N * P], out[P];
    uint64_t w[N];
    for (int i = 0; i < N; i++) {
        w[i] = 100;
        for (int j = 0; j < P; j++)
            rows[i * P + j] = 1.0f + 0.05f * (float)gb_test_xorshift_unif(&s_rng);
    }
    /* Client 6 sends a huge update and claims many samples. */
    for (int j = 0; j < P; j++)
        rows[6 * P + j] = 1e6f;
    w[6] = 10000;
    static const struct {
        const char *spec;
        double max_move;
    } cases[] = {{"median", 0.1}, {"trimmed_mean:0.1", 0.1}, {"krum:1", 0.1},
                 {"multi_krum:1:5", 0.1}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        gb_aggregator_t *agg = s_new(cases[c].spec, N);
        s_run(agg, 1, rows, w, N, P, NULL, out);
        for (int j = 0; j < P; j++)
            if (!(fabs(out[j] - 1.0) <= cases[c].max_move))
                fail_msg("%s moved to %g", cases[c].spec, (double)out[j]);
        gb_aggregator_destroy(&agg);
    }
    gb_aggregator_t *agg = s_new("fedavg", N);
    s_run(agg, 1, rows, w, N, P, NULL, out);
    for (int j = 0; j < P; j++)
        assert_true(out[j] > 5e5f); /* 1e6 * 10000 / 10900 */
    gb_aggregator_destroy(&agg);
}

/* ---- the robust kernels directly ----------------------------------------------------- */

static void test_robust_direct(void **state)
{
    (void)state;
    gb_error_t err;
    assert_int_equal(gb_robust_work_bytes(GB_AGG_FEDAVG, 100), 0);
    assert_true(gb_robust_work_bytes(GB_AGG_MEDIAN, 10) >= 10 * sizeof(uint32_t));
    assert_true(gb_robust_work_bytes(GB_AGG_KRUM, 10) >= 100 * sizeof(double));
    assert_int_equal(gb_robust_work_bytes(GB_AGG_KRUM, SIZE_MAX / 2), SIZE_MAX);
    assert_int_equal(gb_robust_work_bytes(GB_AGG_MEDIAN, SIZE_MAX / 2), SIZE_MAX);

    const float rows[] = {3, 30, 1, 10, 2.5f, 25, 5, 50, 4, 40};
    const uint64_t w[] = {1, 1, 1, 1, 1};
    float out[2] = {-1, -1};
    gb_agg_spec_t spec;
    assert_int_equal(gb_agg_spec_parse("median", &spec, &err), 0);
    size_t wk = gb_robust_work_bytes(GB_AGG_KRUM, 5), wm = gb_robust_work_bytes(GB_AGG_MEDIAN, 5);
    void *work = malloc(wk > wm ? wk : wm);
    assert_int_equal(gb_robust_aggregate(&spec, rows, w, 5, 2, out, NULL, NULL, work, &err), 0);
    assert_true(out[0] == 3.0f && out[1] == 30.0f);

    assert_int_equal(gb_agg_spec_parse("krum:1", &spec, &err), 0);
    size_t sel = 99, nsel = 99;
    assert_int_equal(gb_robust_aggregate(&spec, rows, w, 5, 2, out, &sel, &nsel, work, &err), 0);
    assert_int_equal(nsel, 1);
    assert_int_equal(sel, 0); /* 3: nearest 2.5 and 4, the least spread */
    assert_true(out[0] == 3.0f && out[1] == 30.0f);

    out[0] = out[1] = -1;
    assert_int_equal(gb_robust_aggregate(&spec, rows, w, 4, 2, out, &sel, &nsel, work, &err),
                     GB_EINVAL);
    assert_non_null(strstr(err.msg, "needs at least 5 updates, got 4"));
    assert_int_equal(gb_robust_aggregate(&spec, rows, w, 5, 0, out, &sel, &nsel, work, &err),
                     GB_EINVAL);
    assert_int_equal(gb_agg_spec_parse("median", &spec, &err), 0);
    assert_int_equal(gb_robust_aggregate(&spec, rows, w, 0, 2, out, NULL, NULL, work, &err),
                     GB_EINVAL);
    assert_int_equal(gb_agg_spec_parse("fedavg", &spec, &err), 0);
    assert_int_equal(gb_robust_aggregate(&spec, rows, w, 5, 2, out, NULL, NULL, work, &err),
                     GB_EINVAL);
    assert_true(out[0] == -1.0f && out[1] == -1.0f);
    free(work);
}

/* A column arranged to defeat a median-of-three pivot still selects right
 * (the introselect falls back to sorting). */
static void test_select_adversarial(void **state)
{
    (void)state;
    enum { N = 1001 };
    float *rows = malloc(sizeof(float) * N);
    uint64_t *w = malloc(sizeof(uint64_t) * N);
    /* Organ pipe with many duplicates. */
    for (int i = 0; i < N; i++) {
        rows[i] = (float)(i < N / 2 ? i : N - i) / 4;
        rows[i] = floorf(rows[i]);
        w[i] = 1;
    }
    float *sorted = malloc(sizeof(float) * N);
    memcpy(sorted, rows, sizeof(float) * N);
    qsort(sorted, N, sizeof *sorted, s_cmp_float);
    float out;
    gb_aggregator_t *agg = s_new("median", N);
    s_run(agg, 1, rows, w, N, 1, NULL, &out);
    assert_true(out == sorted[N / 2]);
    gb_aggregator_destroy(&agg);
    free(rows);
    free(w);
    free(sorted);
}

/* ---- allocation ----------------------------------------------------------------------- */

static void test_alloc_failures(void **state)
{
    (void)state;
    static const char *const specs[] = {"fedavg", "median", "krum:1", "multi_krum:1:3"};
    for (size_t s = 0; s < sizeof specs / sizeof *specs; s++) {
        int points = 0;
        for (long k = 1;; k++) {
            gb_error_t err;
            gb_alloc_fail_after(k);
            gb_aggregator_t *agg = gb_aggregator_new(specs[s], 10, &err);
            gb_alloc_fail_after(0);
            if (agg) {
                gb_aggregator_destroy(&agg);
                break;
            }
            assert_int_equal(err.code, GB_ENOMEM);
            points++;
        }
        assert_true(points >= 1);
    }
}

/* FedAvg's add never allocates; a robust rule's add may, and a failure
 * there refuses the update and changes nothing. */
static void test_alloc_in_round(void **state)
{
    (void)state;
    enum { N = 9, P = 30 };
    float rows[N * P], ref[P], got[P];
    uint64_t w[N];
    for (int i = 0; i < N; i++) {
        w[i] = 1 + (uint64_t)i;
        for (int j = 0; j < P; j++)
            rows[i * P + j] = (float)gb_test_xorshift_unif(&s_rng);
    }
    gb_error_t err;
    gb_aggregator_t *agg = s_new("fedavg", N);
    s_run(agg, 1, rows, w, N, P, NULL, ref);
    assert_int_equal(gb_aggregator_begin(agg, 2, P, &err), 0);
    gb_alloc_fail_after(1);
    for (int i = 0; i < N; i++)
        assert_int_equal(gb_aggregator_add(agg, rows + i * P, P, w[i], &err), 0);
    assert_int_equal(gb_aggregator_finish(agg, got, P, &err), 0);
    assert_int_equal(gb_alloc_fail_after(0), 0); /* not one allocation */
    assert_memory_equal(ref, got, sizeof ref);

    /* begin that must grow fails cleanly: the open round is intact. */
    assert_int_equal(gb_aggregator_begin(agg, 3, P, &err), 0);
    assert_int_equal(gb_aggregator_add(agg, rows, P, w[0], &err), 0);
    gb_alloc_fail_after(1);
    assert_int_equal(gb_aggregator_begin(agg, 4, 100000, &err), GB_ENOMEM);
    gb_alloc_fail_after(0);
    assert_int_equal(gb_aggregator_round(agg), 3);
    assert_int_equal(gb_aggregator_param_count(agg), P);
    for (int i = 1; i < N; i++)
        assert_int_equal(gb_aggregator_add(agg, rows + i * P, P, w[i], &err), 0);
    assert_int_equal(gb_aggregator_finish(agg, got, P, &err), 0);
    assert_memory_equal(ref, got, sizeof ref);
    gb_aggregator_destroy(&agg);

    static const char *const specs[] = {"median", "trimmed_mean:0.2", "multi_krum:2:3"};
    for (size_t s = 0; s < sizeof specs / sizeof *specs; s++) {
        agg = s_new(specs[s], N);
        s_run(agg, 1, rows, w, N, P, NULL, ref);
        gb_aggregator_destroy(&agg);
        /* A fresh aggregator, every allocation point of every add failed once. */
        agg = s_new(specs[s], N);
        assert_int_equal(gb_aggregator_begin(agg, 1, P, &err), 0);
        int failures = 0;
        for (int i = 0; i < N; i++) {
            for (long k = 1;; k++) {
                gb_alloc_fail_after(k);
                int rc = gb_aggregator_add(agg, rows + i * P, P, w[i], &err);
                gb_alloc_fail_after(0);
                if (rc == 0)
                    break;
                assert_int_equal(rc, GB_ENOMEM);
                assert_int_equal(gb_aggregator_updates(agg), (size_t)i);
                failures++;
            }
        }
        assert_true(failures >= 3);
        assert_int_equal(gb_aggregator_finish(agg, got, P, &err), 0);
        assert_memory_equal(ref, got, sizeof ref);
        gb_aggregator_destroy(&agg);
    }
}

int main(void)
{
    gb_log_set_level(GB_LOG_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new),
        cmocka_unit_test(test_fedavg_hand),
        cmocka_unit_test(test_median_hand),
        cmocka_unit_test(test_trimmed_mean_hand),
        cmocka_unit_test(test_krum_hand),
        cmocka_unit_test(test_fedavg_vs_double),
        cmocka_unit_test(test_order_independence),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_weight_bound),
        cmocka_unit_test(test_finish_too_few),
        cmocka_unit_test(test_robust_vs_naive),
        cmocka_unit_test(test_krum_byzantine),
        cmocka_unit_test(test_outlier_influence),
        cmocka_unit_test(test_robust_direct),
        cmocka_unit_test(test_select_adversarial),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_alloc_in_round),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
