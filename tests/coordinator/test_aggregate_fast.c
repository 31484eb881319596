/* Tests for FedAvg's fast path (coordinator/aggregate.c): the split exact
 * sums, the AVX-512, AVX2 and portable kernels, the update buffers of large
 * models and the double-division finish give, bit for bit, what the old
 * FedAvg gave: one gb_exact_sum_t per parameter, gb_exact_sum_add of every
 * update, gb_exact_sum_mean at the end (the reference here). Covered:
 * values of every kind (zeros of both signs, subnormals, tiny, the fast
 * range, 4 and over, up to FLT_MAX), weights up to the round's 2^40 (over
 * 2^32 the portable kernel runs), parameter counts that are not multiples
 * of 8, models under and over the buffering size; exact ties and
 * near-ties of the rounding; a NaN or infinity anywhere in an update (the
 * refusal takes back what was added, also with buffered updates); rounds
 * after a round with rare values, smaller rounds after larger ones; and
 * gb_agg_kernel / gb_agg_kernel_force. Every test runs on every kernel this
 * CPU has (s_kernels), and again with the passes split over 2 and 3
 * threads (gb_aggregator_set_threads): the same bits, refusals included,
 * wherever in which share the bad value lies; and with the updates handed
 * over (gb_aggregator_add_take), with what it hands back. */
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregate.h"
#include "exact_sum.h"
#include "util/alloc.h"

static uint64_t s_rand(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* True: s_value gives deltas only, no rare value (so no block is cold). */
static bool s_deltas_only = false;

/* A value of a kind chosen by r: mostly deltas, some of every rare kind. */
static float s_value(uint64_t *rng)
{
    uint64_t r = s_rand(rng);
    if (s_deltas_only)
        r |= 0xe; /* kind 7: a delta */
    float sign = (r & 1) ? -1.0f : 1.0f;
    double u = (double)(s_rand(rng) >> 11) / 9007199254740992.0 + 0.5;
    switch ((r >> 1) % 16) {
    case 0:
        return sign * 0.0f;
    case 1: /* subnormal */
        return sign * ldexpf((float)(s_rand(rng) % (1u << 23)) + 1, -149);
    case 2: /* tiny normal, below 2^-62 */
        return sign * (float)ldexp(u, -(int)(63 + s_rand(rng) % 60));
    case 3: /* at the fast range's edges */
        return sign * (float)ldexp(u, (s_rand(rng) & 1) ? -62 : 1);
    case 4: /* 4 and over */
        return sign * (float)ldexp(u, 3 + (int)(s_rand(rng) % 120));
    case 5:
        return sign * FLT_MAX;
    default: /* a delta */
        return sign * (float)ldexp(u, -(int)(s_rand(rng) % 40));
    }
}

/* Threads every aggregator made here splits its passes over. */
static int s_threads = 1;

/* How updates go in: gb_aggregator_add, or each in a gb_malloc copy that
 * the aggregator may keep, through gb_aggregator_add_take or (for finite
 * updates) gb_aggregator_add_take_finite. */
enum { S_ADD, S_TAKE, S_TAKE_FINITE };
static int s_take = S_ADD;

/* Adds ups (p floats, left as they are) with weight w: gb_aggregator_add, or
 * with s_take a copy through gb_aggregator_add_take, whose buffer the
 * aggregator keeps only for a model past the buffering size, handing back
 * one of zeros or an earlier update's (finite) values. Returns the add's
 * code. */
static int s_add(gb_aggregator_t *agg, const float *ups, size_t p, uint64_t w, gb_error_t *err)
{
    if (s_take == S_ADD)
        return gb_aggregator_add(agg, ups, p, w, err);
    float *copy = gb_malloc(p * sizeof *copy);
    assert_non_null(copy);
    memcpy(copy, ups, p * sizeof *copy);
    float *given = copy;
    int rc = s_take == S_TAKE ? gb_aggregator_add_take(agg, &copy, p, w, err)
                              : gb_aggregator_add_take_finite(agg, &copy, p, w, err);
    if (rc != 0 || p < ((size_t)1 << 16)) /* aggregate.c's S_FEDAVG_BUFFER_MIN */
        assert_ptr_equal(copy, given); /* refused, or added at once: still ours */
    /* finite, unless a broken promise's buffer came back (it is a spare) */
    for (size_t j = 0; copy != given && s_take == S_TAKE && j < p; j++)
        assert_true(isfinite(copy[j]));
    gb_free(copy);
    return rc;
}

static gb_aggregator_t *s_new_fedavg(size_t max_clients)
{
    gb_error_t err = {0};
    gb_aggregator_t *agg = gb_aggregator_new("fedavg", max_clients, &err);
    assert_non_null(agg);
    assert_int_equal(gb_aggregator_set_threads(agg, s_threads, &err), 0);
    assert_int_equal(gb_aggregator_threads(agg), s_threads);
    return agg;
}

/* The old FedAvg: an exact sum per parameter. */
static void s_reference(const float *const *ups, const uint64_t *w, size_t n, size_t p,
                        float *out)
{
    gb_exact_sum_t s;
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += w[i];
    for (size_t j = 0; j < p; j++) {
        gb_exact_sum_clear(&s);
        for (size_t i = 0; i < n; i++)
            gb_exact_sum_add(&s, ups[i][j], w[i]);
        out[j] = gb_exact_sum_mean(&s, total);
    }
}

static void s_expect_same_bits(const float *got, const float *want, size_t p)
{
    for (size_t j = 0; j < p; j++)
        if (memcmp(&got[j], &want[j], sizeof got[j]) != 0)
            fail_msg("parameter %zu: %a, the exact sums give %a", j, (double)got[j],
                     (double)want[j]);
}

/* One round of n updates of p values through the aggregator, against the
 * reference. */
static void s_round(gb_aggregator_t *agg, uint64_t round, size_t n, size_t p, uint64_t seed,
                    int weights_kind)
{
    gb_error_t err = {0};
    uint64_t rng = seed;
    float **ups = calloc(n, sizeof *ups);
    uint64_t *w = calloc(n, sizeof *w);
    float *got = malloc(p * sizeof *got), *want = malloc(p * sizeof *want);
    assert_non_null(ups);
    assert_non_null(w);
    assert_non_null(got);
    assert_non_null(want);
    for (size_t i = 0; i < n; i++) {
        assert_non_null(ups[i] = malloc(p * sizeof(float)));
        for (size_t j = 0; j < p; j++)
            ups[i][j] = s_value(&rng);
        w[i] = weights_kind == 0   ? 1 + s_rand(&rng) % 5000
               : weights_kind == 1 ? (GB_AGG_MAX_WEIGHT / n) - s_rand(&rng) % 1000 /* > 2^32 */
               : weights_kind == 3 ? ((uint64_t)1 << 29) + i % 2 /* the binned kernel's edge */
                                   : (i % 3 == 0   ? 1
                                      : i % 3 == 1 ? INT32_MAX       /* the vector kernels' edge */
                                                   : UINT32_MAX);    /* the portable kernel's */
    }
    assert_int_equal(gb_aggregator_begin(agg, round, p, &err), 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(s_add(agg, ups[i], p, w[i], &err), 0);
    assert_int_equal(gb_aggregator_finish(agg, got, p, &err), 0);
    s_reference((const float *const *)ups, w, n, p, want);
    s_expect_same_bits(got, want, p);
    for (size_t i = 0; i < n; i++)
        free(ups[i]);
    free(ups);
    free(w);
    free(got);
    free(want);
}

static void s_all_rounds(void)
{
    gb_aggregator_t *agg = s_new_fedavg(100);
    s_round(agg, 1, 5, 1003, 11, 0);
    s_round(agg, 2, 9, 77, 12, 1);      /* smaller, weights over 2^32 */
    s_round(agg, 3, 6, 1003, 13, 2);    /* after rare values: the cold parts were cleared */
    s_round(agg, 4, 1, 9, 14, 0);       /* under one vector */
    /* past the buffering size: 4 at once, the rest flushed at finish */
    s_round(agg, 5, 7, ((size_t)1 << 16) + 5, 15, 0);
    s_round(agg, 6, 4, ((size_t)1 << 16) + 5, 16, 2);
    s_round(agg, 7, 3, 4099, 17, 0);    /* small again: the buffers are dropped */
    s_round(agg, 8, 5, 40003, 18, 0);   /* split over threads, not buffered */
    s_round(agg, 9, 3, 32768, 19, 2);   /* the smallest model that is split */
    /* buffered, smaller, then larger again: a buffer taken from a smaller
     * round is never filled past its size (ASan's build would see it) */
    s_round(agg, 10, 5, ((size_t)1 << 16) + 9, 20, 0);
    s_round(agg, 11, 5, ((size_t)1 << 16) + 2, 21, 0);
    s_round(agg, 12, 6, ((size_t)1 << 16) + 7, 22, 0);
    s_round(agg, 13, 9, 1003, 23, 3);   /* weights at and past 2^29 */
    s_round(agg, 14, 9, ((size_t)1 << 16) + 1, 24, 3);
    s_round(agg, 15, 17, ((size_t)1 << 16) + 1, 25, 0); /* two passes of 8 */
    gb_aggregator_destroy(&agg);
    /* more adds than the AVX2 kernel's bins hold (GB_BINS_MAX_ADDS): they
     * are folded into the integer sums and emptied, twice */
    agg = s_new_fedavg(5000);
    s_round(agg, 1, 4500, 67, 26, 0);
    s_round(agg, 2, 3, 67, 27, 0); /* and a round after the fold */
    gb_aggregator_destroy(&agg);
}

/* The kernels, best first; forcing the i-th of n_kernels (NULL: the CPU's
 * own choice again). */
static const char *const s_kernels[] = {"avx512", "avx2", "portable"};
#define S_N_KERNELS (sizeof s_kernels / sizeof s_kernels[0])

/* Forces kernel i; false when this CPU cannot run it. */
static bool s_force(size_t i)
{
    gb_error_t err = {0};
    if (gb_agg_kernel_force(s_kernels[i], &err) != 0) {
        assert_non_null(strstr(err.msg, "this CPU runs at most"));
        return false;
    }
    assert_string_equal(gb_agg_kernel(), s_kernels[i]);
    return true;
}

static void s_unforce(void)
{
    assert_int_equal(gb_agg_kernel_force(NULL, NULL), 0);
}

static void test_every_kernel_equals_exact(void **state)
{
    (void)state;
    s_unforce();
    const char *best = gb_agg_kernel();
    int ran = 0;
    for (size_t i = 0; i < S_N_KERNELS; i++) {
        if (!s_force(i))
            continue;
        print_message("kernel %s\n", s_kernels[i]);
        s_all_rounds();
        ran++;
    }
    assert_true(ran >= 1);
    s_unforce();
    assert_string_equal(gb_agg_kernel(), best);
}

/* One aggregator whose rounds change kernel: the binned kernel reads its
 * integer sums only where it wrote them, so those a round of another
 * kernel left anywhere, of any size, must be cleared first. */
static void test_kernels_change_between_rounds(void **state)
{
    (void)state;
    size_t big = ((size_t)1 << 16) + 4100, small = 9000;
    for (int t = 1; t <= 2; t++) {
        s_threads = t;
        gb_aggregator_t *agg = s_new_fedavg(20);
        uint64_t r = 1;
        for (size_t a = 0; a < S_N_KERNELS; a++)
            for (size_t b = 0; b < S_N_KERNELS; b++) {
                if (!s_force(a) || !s_force(b))
                    continue;
                for (int rare = 0; rare <= 1; rare++) {
                    /* without rare values no block is cold, so nothing
                     * but the kernel's change clears the sums */
                    s_deltas_only = !rare;
                    s_force(a);
                    s_round(agg, r, 5, big, 30 + r, 2); /* heavy weights */
                    r++;
                    s_force(b);
                    s_round(agg, r, 3, small, 30 + r, 0);
                    r++;
                    s_round(agg, r, 6, big, 30 + r, 0); /* larger again */
                    r++;
                    s_force(a);
                    s_round(agg, r, 4, small, 30 + r, 2);
                    r++;
                }
                s_deltas_only = false;
            }
        gb_aggregator_destroy(&agg);
    }
    s_threads = 1;
    s_unforce();
}

static void test_kernel_force_refusals(void **state)
{
    (void)state;
    gb_error_t err = {0};
    assert_int_equal(gb_agg_kernel_force("sse9", &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "expected portable, avx2 or avx512"));
    assert_int_equal(gb_agg_kernel_force("portable", &err), 0);
    assert_string_equal(gb_agg_kernel(), "portable");
    s_unforce();
    assert_string_not_equal(gb_agg_kernel(), "unknown");
}

/* Means that fall exactly on, or next to, a rounding boundary: the finish
 * must see that the double quotient does not decide them. */
static void test_ties_and_near_ties(void **state)
{
    (void)state;
    gb_error_t err = {0};
    enum { P = 64 };
    float a[P], b[P], c[P], got[P], want[P];
    uint64_t rng = 99;
    for (size_t kernel = 0; kernel < S_N_KERNELS; kernel++) {
        if (!s_force(kernel))
            continue;
        for (int kind = 0; kind < 4; kind++) {
            for (size_t j = 0; j < P; j++) {
                float x = (float)ldexp(1.0 + (double)(s_rand(&rng) % 1000) / 1000.0,
                                       -(int)(s_rand(&rng) % 50));
                if (j % 2)
                    x = -x;
                a[j] = x;
                b[j] = nextafterf(x, kind % 2 ? 0.0f : 2 * x); /* the neighbour */
                c[j] = nextafterf(b[j], 2 * b[j]);
            }
            /* weights 1,1: exact midpoints (ties to even); 1,3 and 3,1:
             * quarter points; with c, thirds: next to boundaries */
            uint64_t wa = kind < 2 ? 1 : 3, wb = kind < 2 ? 1 : 1;
            const float *ups[3] = {a, b, c};
            uint64_t w[3] = {wa, wb, kind == 3 ? 1 : 0};
            size_t n = kind == 3 ? 3 : 2;
            gb_aggregator_t *agg = gb_aggregator_new("fedavg", 3, &err);
            assert_non_null(agg);
            assert_int_equal(gb_aggregator_begin(agg, 1, P, &err), 0);
            for (size_t i = 0; i < n; i++)
                assert_int_equal(gb_aggregator_add(agg, ups[i], P, w[i], &err), 0);
            assert_int_equal(gb_aggregator_finish(agg, got, P, &err), 0);
            s_reference(ups, w, n, P, want);
            s_expect_same_bits(got, want, P);
            gb_aggregator_destroy(&agg);
        }
    }
    s_unforce();
    /* one exact tie by hand: (1 + (1 + 2^-23)) / 2 = 1 + 2^-24, to even: 1 */
    gb_aggregator_t *agg = gb_aggregator_new("fedavg", 2, &err);
    float one = 1.0f, next = nextafterf(1.0f, 2.0f), out = 0;
    assert_int_equal(gb_aggregator_begin(agg, 1, 1, &err), 0);
    assert_int_equal(gb_aggregator_add(agg, &one, 1, 1, &err), 0);
    assert_int_equal(gb_aggregator_add(agg, &next, 1, 1, &err), 0);
    assert_int_equal(gb_aggregator_finish(agg, &out, 1, &err), 0);
    assert_true(out == 1.0f);
    gb_aggregator_destroy(&agg);
}

/* A NaN or infinity at any place of an update: refused, and the round's
 * result is as if it had never come, buffered updates or not. */
static void s_refusal_case_n(size_t p, size_t N, size_t bad_at, size_t bad_update, float bad)
{
    gb_error_t err = {0};
    uint64_t rng = 1234 + p + bad_at;
    float *ups[24];
    assert_true(N <= sizeof ups / sizeof ups[0]);
    uint64_t w[24];
    for (size_t i = 0; i < N; i++) {
        assert_non_null(ups[i] = malloc(p * sizeof(float)));
        for (size_t j = 0; j < p; j++)
            ups[i][j] = s_value(&rng);
        w[i] = 1 + s_rand(&rng) % 100;
    }
    float *broken = malloc(p * sizeof *broken);
    assert_non_null(broken);
    memcpy(broken, ups[0], p * sizeof *broken);
    broken[bad_at] = bad;
    gb_aggregator_t *agg = s_new_fedavg(N + 1);
    assert_int_equal(gb_aggregator_begin(agg, 1, p, &err), 0);
    for (size_t i = 0; i < N; i++) {
        if (i == bad_update) {
            assert_int_equal(s_add(agg, broken, p, 77, &err), GB_ERANGE);
            char where[64];
            snprintf(where, sizeof where, "value %zu is", bad_at);
            assert_non_null(strstr(err.msg, where));
        }
        assert_int_equal(s_add(agg, ups[i], p, w[i], &err), 0);
    }
    assert_int_equal(gb_aggregator_updates(agg), N);
    float *got = malloc(p * sizeof *got), *want = malloc(p * sizeof *want);
    assert_non_null(got);
    assert_non_null(want);
    assert_int_equal(gb_aggregator_finish(agg, got, p, &err), 0);
    s_reference((const float *const *)ups, w, N, p, want);
    s_expect_same_bits(got, want, p);
    gb_aggregator_destroy(&agg);
    for (size_t i = 0; i < N; i++)
        free(ups[i]);
    free(broken);
    free(got);
    free(want);
}

static void s_refusal_case(size_t p, size_t bad_at, size_t bad_update, float bad)
{
    s_refusal_case_n(p, 10, bad_at, bad_update, bad);
}

/* A model past aggregate.c's S_BINS_LARGE_MIN (2^20 parameters), whose
 * binned passes add 16 updates tile by tile in groups of 8: the same bits,
 * and a NaN that stops the second group inside a tile (or in the tail) has
 * the first group take back what it added there. The broken update comes
 * 16th, so that it meets 15 kept ones in one pass. */
static void test_large_pass_takes_back(void **state)
{
    (void)state;
    const size_t p = ((size_t)1 << 20) + 13;
    for (size_t kernel = 0; kernel < S_N_KERNELS; kernel++) {
        if (!s_force(kernel))
            continue;
        s_threads = 2;
        s_refusal_case_n(p, 17, 300077, 15, NAN); /* mid-tile, second share */
        s_threads = 1;
        s_refusal_case_n(p, 17, p - 3, 15, INFINITY); /* the last tile's tail */
    }
    s_unforce();
}

static void test_refusal_takes_back(void **state)
{
    (void)state;
    for (size_t kernel = 0; kernel < S_N_KERNELS; kernel++) {
        if (!s_force(kernel))
            continue;
        s_refusal_case(1001, 0, 0, NAN);
        s_refusal_case(1001, 517, 2, INFINITY);
        s_refusal_case(1001, 1000, 5, -INFINITY); /* in the tail of the last vector */
        size_t big = ((size_t)1 << 16) + 3;
        s_refusal_case(big, 50000, 1, NAN);    /* refused while being kept */
        s_refusal_case(big, 50001, 3, NAN);    /* the 4th: taken back with 3 buffered */
        s_refusal_case(big, big - 1, 3, NAN);  /* ... in the tail */
        s_refusal_case(big, 9, 4, -NAN);       /* the 5th: buffered again (batch 4) */
        s_refusal_case(big, 60001, 7, NAN);    /* the 8th: taken back with 7 (batch 8) */
        s_refusal_case(big, 17, 9, INFINITY);  /* the 10th */
        s_refusal_case(40003, 5, 1, NAN);      /* split: in the first share */
        s_refusal_case(40003, 30000, 2, NAN);  /* ... in the last */
        s_refusal_case(40003, 40002, 0, INFINITY); /* ... in the last share's tail */
    }
    s_unforce();
}

/* Every test above again with the passes split over 2, then 3 threads
 * (3: shares of unequal numbers of blocks). */
static void test_threads_give_the_same_bits(void **state)
{
    for (int t = 2; t <= 3; t++) {
        s_threads = t;
        print_message("%d threads\n", t);
        test_every_kernel_equals_exact(state);
        test_refusal_takes_back(state);
    }
    s_threads = 1;
}

/* Every test above again with the updates handed over
 * (gb_aggregator_add_take): the same bits and refusals, on 2 threads (so
 * that the check of a kept update is split too). */
static void test_take_gives_the_same_bits(void **state)
{
    s_take = S_TAKE;
    s_threads = 2;
    test_every_kernel_equals_exact(state);
    test_refusal_takes_back(state);
    /* finite updates handed over unread: the same bits */
    s_take = S_TAKE_FINITE;
    test_every_kernel_equals_exact(state);
    s_threads = 1;
    s_take = S_ADD;
}

/* A caller of gb_aggregator_add_take_finite that hands over a NaN after
 * all: the pass that meets it drops that update (its weight too) and adds
 * the others, exactly; one that drops the round's only update leaves
 * nothing to aggregate. */
static void test_take_finite_drops_a_broken_promise(void **state)
{
    (void)state;
    gb_error_t err = {0};
    const size_t p = ((size_t)1 << 16) + 3;
    enum { N = 9, BAD = 2 };
    uint64_t rng = 4242, w[N];
    float *ups[N];
    for (size_t i = 0; i < N; i++) {
        assert_non_null(ups[i] = malloc(p * sizeof(float)));
        for (size_t j = 0; j < p; j++)
            ups[i][j] = s_value(&rng);
        w[i] = 1 + s_rand(&rng) % 100;
    }
    ups[BAD][p / 2] = NAN;
    float *got = malloc(p * sizeof *got), *want = malloc(p * sizeof *want);
    assert_non_null(got);
    assert_non_null(want);
    const float *good[N];
    uint64_t good_w[N], total = 0;
    size_t n_good = 0;
    for (size_t i = 0; i < N; i++)
        if (i != BAD) {
            good[n_good] = ups[i];
            good_w[n_good++] = w[i];
            total += w[i];
        }
    s_reference(good, good_w, n_good, p, want);
    s_take = S_TAKE_FINITE;
    for (size_t kernel = 0; kernel < S_N_KERNELS; kernel++) {
        if (!s_force(kernel))
            continue;
        gb_aggregator_t *agg = s_new_fedavg(N);
        assert_int_equal(gb_aggregator_begin(agg, 1, p, &err), 0);
        for (size_t i = 0; i < N; i++)
            assert_int_equal(s_add(agg, ups[i], p, w[i], &err), 0); /* promised finite */
        assert_int_equal(gb_aggregator_finish(agg, got, p, &err), 0);
        assert_int_equal(gb_aggregator_updates(agg), N - 1);
        assert_int_equal(gb_aggregator_weight(agg), total);
        s_expect_same_bits(got, want, p);
        /* the only update, broken: nothing left to aggregate, round open */
        assert_int_equal(gb_aggregator_begin(agg, 2, p, &err), 0);
        assert_int_equal(s_add(agg, ups[BAD], p, 5, &err), 0);
        assert_int_equal(gb_aggregator_finish(agg, got, p, &err), GB_EINVAL);
        assert_non_null(strstr(err.msg, "no update"));
        assert_true(gb_aggregator_is_open(agg));
        assert_int_equal(s_add(agg, ups[0], p, w[0], &err), 0);
        assert_int_equal(gb_aggregator_finish(agg, got, p, &err), 0);
        s_reference((const float *const *)ups, w, 1, p, want);
        s_expect_same_bits(got, want, p);
        gb_aggregator_destroy(&agg);
        s_reference(good, good_w, n_good, p, want); /* for the next kernel */
    }
    s_take = S_ADD;
    s_unforce();
    for (size_t i = 0; i < N; i++)
        free(ups[i]);
    free(got);
    free(want);
}

/* What gb_aggregator_add_take hands back, and what it refuses. */
static void test_take_hands_back_a_buffer(void **state)
{
    (void)state;
    gb_error_t err = {0};
    const size_t p = ((size_t)1 << 16) + 1;
    gb_aggregator_t *agg = s_new_fedavg(8);
    assert_int_equal(gb_aggregator_add_take(agg, NULL, p, 1, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "no delta"));
    assert_int_equal(gb_aggregator_add_take_finite(agg, NULL, p, 1, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "no delta"));
    assert_int_equal(gb_aggregator_begin(agg, 1, p, &err), 0);
    /* the kernel's batch (4 or 8 updates a pass) decides how many are kept */
    enum { S_MINE = 8 };
    float *mine[S_MINE];
    for (int k = 0; k < S_MINE; k++) {
        assert_non_null(mine[k] = gb_malloc(p * sizeof(float)));
        for (size_t j = 0; j < p; j++)
            mine[k][j] = (float)(k + 1);
    }
    float *d = mine[0];
    assert_int_equal(gb_aggregator_add_take(agg, &d, p + 1, 1, &err), GB_ESHAPE);
    assert_ptr_equal(d, mine[0]); /* refused: still ours */
    /* the first are kept, and buffers of zeros come back, until one is
     * added with them at once: that one stays ours */
    int given = 0;
    for (;;) {
        assert_true(given < S_MINE);
        d = mine[given];
        assert_int_equal(gb_aggregator_add_take(agg, &d, p, 1, &err), 0);
        given++;
        if (d == mine[given - 1])
            break;
        for (int k = 0; k < given; k++)
            assert_ptr_not_equal(d, mine[k]);
        assert_true(d[0] == 0.0f && d[p - 1] == 0.0f);
        mine[given - 1] = d;
    }
    assert_true(given == 4 || given == 8);
    float *out = gb_malloc(p * sizeof *out);
    assert_non_null(out);
    assert_int_equal(gb_aggregator_finish(agg, out, p, &err), 0);
    float mean = (float)(given + 1) / 2.0f; /* (1 + ... + given) / given */
    assert_true(out[0] == mean && out[p - 1] == mean);
    /* the next round hands back the buffers of the first: their values */
    assert_int_equal(gb_aggregator_begin(agg, 2, p, &err), 0);
    d = mine[given - 1];
    assert_int_equal(gb_aggregator_add_take(agg, &d, p, 1, &err), 0);
    assert_true(d[0] >= 1.0f && d[0] < (float)given && d[0] == floorf(d[0]));
    mine[given - 1] = d;
    gb_aggregator_destroy(&agg); /* frees the buffers it holds, not ours */
    for (int k = 0; k < S_MINE; k++)
        gb_free(mine[k]);
    gb_free(out);
}

static void test_set_threads_refusals(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_aggregator_t *agg = gb_aggregator_new("fedavg", 4, &err);
    assert_non_null(agg);
    assert_int_equal(gb_aggregator_threads(agg), 1);
    assert_int_equal(gb_aggregator_set_threads(agg, 0, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "outside 1..8"));
    assert_int_equal(gb_aggregator_set_threads(agg, GB_AGG_MAX_THREADS + 1, &err), GB_EINVAL);
    assert_int_equal(gb_aggregator_threads(agg), 1);
    /* not while a round holds updates: they were added over the old shares */
    float d[40000] = {0.5f};
    assert_int_equal(gb_aggregator_begin(agg, 1, 40000, &err), 0);
    assert_int_equal(gb_aggregator_set_threads(agg, 2, &err), 0); /* open, but empty */
    assert_int_equal(gb_aggregator_add(agg, d, 40000, 3, &err), 0);
    assert_int_equal(gb_aggregator_set_threads(agg, 1, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "while round 1 holds updates"));
    assert_int_equal(gb_aggregator_threads(agg), 2);
    float out[40000];
    assert_int_equal(gb_aggregator_finish(agg, out, 40000, &err), 0);
    assert_true(out[0] == 0.5f && out[1] == 0.0f);
    assert_int_equal(gb_aggregator_set_threads(agg, 1, &err), 0); /* closed again */
    assert_int_equal(gb_aggregator_threads(agg), 1);
    gb_aggregator_destroy(&agg);
    /* a robust rule takes the count and starts no thread */
    assert_non_null(agg = gb_aggregator_new("median", 4, &err));
    assert_int_equal(gb_aggregator_set_threads(agg, 2, &err), 0);
    assert_int_equal(gb_aggregator_threads(agg), 1);
    assert_int_equal(gb_aggregator_set_threads(agg, 9, &err), GB_EINVAL);
    gb_aggregator_destroy(&agg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_kernel_equals_exact),
        cmocka_unit_test(test_kernel_force_refusals),
        cmocka_unit_test(test_large_pass_takes_back),
        cmocka_unit_test(test_ties_and_near_ties),
        cmocka_unit_test(test_refusal_takes_back),
        cmocka_unit_test(test_kernels_change_between_rounds),
        cmocka_unit_test(test_take_finite_drops_a_broken_promise),
        cmocka_unit_test(test_threads_give_the_same_bits),
        cmocka_unit_test(test_take_gives_the_same_bits),
        cmocka_unit_test(test_take_hands_back_a_buffer),
        cmocka_unit_test(test_set_threads_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
