/* Tests for explain/summary and explain/divergence: the usage example of both.
 *
 * What they prove: the L2 clip bounds what one sample can move a class's
 * sum, however large it is; the derived mean, variance and importance agree
 * with a direct double-precision computation on the clipped maps; raw sums
 * set by hand equal those gb_summary_add builds and impossible sums are
 * refused; summary.json (read back with jansson) holds the keys in order
 * with their values and types, names classes, repairs bad UTF-8 and refuses
 * NaN; the divergence measures stay in
 * their ranges, are exactly 0 (overlap 1) for identical summaries and reach
 * their extremes where they should; and on a synthetic federation of clean
 * clients and one client whose inputs carry a backdoor trigger patch (a
 * linear model, gradient x input maps computed directly), the trigger client
 * lies by far the furthest from the aggregate on all three measures. */
#include "testutil.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "explain/divergence.h"
#include "explain/summary.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/rng.h"

static gb_shape_t s_shape(int rank, int a, int b, int c)
{
    gb_shape_t s = {rank, {a, b, c}};
    return s;
}

static gb_summary_t *s_new(const gb_shape_t *shape, int classes, double clip)
{
    gb_error_t err = {0};
    gb_summary_t *s = gb_summary_new(shape, classes, clip, &err);
    assert_non_null(s);
    return s;
}

/* n random maps of d cells: normal values times a per-map scale in
 * [0.01, 10], so that a clip of 1 clips some and not others. */
static float *s_random_maps(gb_rng_t *rng, int n, size_t d)
{
    float *m = malloc((size_t)n * d * sizeof *m);
    assert_non_null(m);
    for (int i = 0; i < n; i++) {
        double scale = 0.01 * pow(1000.0, gb_rng_uniform(rng)) / sqrt((double)d);
        for (size_t j = 0; j < d; j++)
            m[(size_t)i * d + j] = (float)(scale * gb_rng_normal(rng));
    }
    return m;
}

/* ---- construction ------------------------------------------------------- */

static void test_new_refuses(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_shape_t ok = s_shape(1, 4, 1, 1), zero = s_shape(2, 3, 0, 1), rank0 = s_shape(0, 1, 1, 1),
               huge = s_shape(3, 1024, 1024, 8);
    assert_null(gb_summary_new(&zero, 2, 1.0, &err));
    assert_int_equal(err.code, GB_EINVAL);
    assert_null(gb_summary_new(&rank0, 2, 1.0, &err));
    assert_null(gb_summary_new(NULL, 2, 1.0, &err));
    assert_null(gb_summary_new(&ok, 0, 1.0, &err));
    assert_int_equal(err.code, GB_EINVAL);
    assert_null(gb_summary_new(&ok, GB_SUMMARY_MAX_CLASSES + 1, 1.0, &err));
    assert_null(gb_summary_new(&ok, 2, 0.0, &err));
    assert_non_null(strstr(err.msg, "clip"));
    assert_null(gb_summary_new(&ok, 2, -1.0, &err));
    assert_null(gb_summary_new(&ok, 2, NAN, &err));
    assert_null(gb_summary_new(&ok, 2, INFINITY, &err));
    assert_null(gb_summary_new(&huge, 2, 1.0, &err));
    assert_int_equal(err.code, GB_ERANGE);
    gb_shape_t img = s_shape(3, 1, 28, 28);
    assert_null(gb_summary_new(&img, GB_SUMMARY_MAX_CLASSES, 1.0, &err)); /* 7.8M cells */
    assert_int_equal(err.code, GB_ERANGE);

    gb_summary_t *s = gb_summary_new(&img, 10, 2.5, &err);
    assert_non_null(s);
    assert_int_equal(gb_summary_cells(s), 784);
    assert_int_equal(gb_summary_classes(s), 10);
    gb_shape_t got = gb_summary_shape(s);
    assert_int_equal(got.rank, 3);
    assert_int_equal(got.dim[1], 28);
    assert_int_equal(gb_summary_count(s, GB_SUMMARY_ALL), 0);
    assert_int_equal(gb_summary_count(s, 99), 0);
    gb_summary_destroy(&s);
    assert_null(s);
    gb_summary_destroy(&s);
    gb_summary_destroy(NULL);
}

static void test_alloc_failures(void **state)
{
    (void)state;
    gb_shape_t shape = s_shape(2, 3, 4, 1);
    gb_error_t err = {0};
    gb_summary_t *s = NULL;
    for (long k = 1;; k++) {
        gb_alloc_fail_after(k);
        s = gb_summary_new(&shape, 3, 1.0, &err);
        gb_alloc_fail_after(0);
        if (s)
            break;
        assert_int_equal(err.code, GB_ENOMEM);
    }
    float map[12] = {1, -2, 3, 0, 0, 0, 0.5f, 0, 0, 0, 0, 1};
    assert_int_equal(gb_summary_add(s, map, 1, &err), 0);
    gb_summary_t *c = s_new(&shape, 3, 1.0);
    assert_int_equal(gb_summary_add(c, map, 1, &err), 0);
    gb_summary_info_t info = {.method = "ig", .sequence = true};
    for (long k = 1;; k++) {
        char *json = NULL;
        size_t len = 0;
        gb_alloc_fail_after(k);
        int rc = gb_summary_json(s, &info, &json, &len, &err);
        gb_alloc_fail_after(0);
        if (rc == 0) {
            assert_non_null(json);
            gb_free(json);
            break;
        }
        assert_int_equal(rc, GB_ENOMEM);
        assert_null(json);
    }
    gb_divergence_t d;
    for (long k = 1;; k++) {
        gb_alloc_fail_after(k);
        int rc = gb_summary_divergence(s, c, GB_SUMMARY_ALL, 3, &d, &err);
        gb_alloc_fail_after(0);
        if (rc == 0)
            break;
        assert_int_equal(rc, GB_ENOMEM);
    }
    double rows[3];
    for (long k = 1;; k++) {
        gb_alloc_fail_after(k);
        int rc = gb_summary_importance_axes(s, 1, rows, NULL, &err);
        gb_alloc_fail_after(0);
        if (rc == 0)
            break;
        assert_int_equal(rc, GB_ENOMEM);
    }
    gb_summary_destroy(&s);
    gb_summary_destroy(&c);
}

/* ---- adding ---------------------------------------------------------------- */

/* a and b hold the same counts and the same derived maps in every class and
 * over all: what a caller can see of a summary (the sums themselves are not
 * public). */
static bool s_same(const gb_summary_t *a, const gb_summary_t *b)
{
    size_t n = gb_summary_cells(a);
    if (n != gb_summary_cells(b) || gb_summary_classes(a) != gb_summary_classes(b))
        return false;
    double *x = malloc(2 * n * sizeof *x), *y = x + n;
    assert_non_null(x);
    gb_error_t err = {0};
    bool same = true;
    for (int c = -1; same && c < gb_summary_classes(a); c++) {
        same = gb_summary_count(a, c) == gb_summary_count(b, c) &&
               gb_summary_clipped(a, c) == gb_summary_clipped(b, c);
        int (*const derive[3])(const gb_summary_t *, int, double *, gb_error_t *) = {
            gb_summary_mean, gb_summary_variance, gb_summary_importance};
        for (int d = 0; same && d < 3; d++) {
            assert_int_equal(derive[d](a, c, x, &err), 0);
            assert_int_equal(derive[d](b, c, y, &err), 0);
            same = memcmp(x, y, n * sizeof *x) == 0;
        }
    }
    free(x);
    return same;
}


static void test_add_one(void **state)
{
    (void)state;
    gb_shape_t shape = s_shape(1, 4, 1, 1);
    gb_summary_t *s = s_new(&shape, 2, 10.0);
    gb_error_t err = {0};
    float map[4] = {1.5f, -2.25f, 0.0f, 1e-3f}; /* norm < 10: not clipped */
    assert_int_equal(gb_summary_add(s, map, 1, &err), 0);
    assert_int_equal(gb_summary_count(s, 1), 1);
    assert_int_equal(gb_summary_count(s, 0), 0);
    assert_int_equal(gb_summary_count(s, GB_SUMMARY_ALL), 1);
    assert_int_equal(gb_summary_clipped(s, GB_SUMMARY_ALL), 0);
    double mean[4], var[4], imp[4];
    assert_int_equal(gb_summary_mean(s, 1, mean, &err), 0);
    assert_int_equal(gb_summary_variance(s, 1, var, &err), 0);
    assert_int_equal(gb_summary_importance(s, 1, imp, &err), 0);
    double res = 10.0 / 4294967296.0; /* clip * 2^-32: the rounding bound */
    for (int i = 0; i < 4; i++) {
        assert_true(fabs(mean[i] - map[i]) <= res);
        assert_true(fabs(imp[i] - fabs(map[i])) <= res);
        assert_true(var[i] == 0.0);
    }
    /* An empty class gives zeros; a class out of range is refused. */
    assert_int_equal(gb_summary_mean(s, 0, mean, &err), 0);
    assert_true(mean[0] == 0 && mean[3] == 0);
    assert_int_equal(gb_summary_mean(s, 2, mean, &err), GB_EINVAL);
    assert_int_equal(gb_summary_importance(s, -2, mean, &err), GB_EINVAL);
    gb_summary_destroy(&s);
}

static void test_add_refuses(void **state)
{
    (void)state;
    gb_shape_t shape = s_shape(1, 3, 1, 1);
    gb_summary_t *s = s_new(&shape, 2, 1.0);
    gb_error_t err = {0};
    float good[3] = {0.1f, 0.2f, 0.3f};
    assert_int_equal(gb_summary_add(s, good, 0, &err), 0);
    gb_summary_t *before = s_new(&shape, 2, 1.0);
    assert_int_equal(gb_summary_add(before, good, 0, &err), 0);
    float nan_map[3] = {0.1f, NAN, 0.3f}, inf_map[3] = {INFINITY, 0, 0};
    assert_int_equal(gb_summary_add(s, nan_map, 0, &err), GB_ERANGE);
    assert_non_null(strstr(err.msg, "cell 1"));
    assert_int_equal(gb_summary_add(s, inf_map, 1, &err), GB_ERANGE);
    assert_int_equal(gb_summary_add(s, good, 2, &err), GB_EINVAL);
    assert_int_equal(gb_summary_add(s, good, -1, &err), GB_EINVAL);
    assert_true(s_same(s, before));
    /* At the count cap, one more sample is refused. */
    int64_t zeros[3] = {0};
    uint64_t uz[3] = {0};
    gb_summary_class_t full = {GB_SUMMARY_MAX_COUNT - 1, 0, zeros, zeros, uz, uz};
    assert_int_equal(gb_summary_class_set(s, 1, &full, &err), 0);
    assert_true(gb_summary_count(s, GB_SUMMARY_ALL) == GB_SUMMARY_MAX_COUNT);
    assert_int_equal(gb_summary_add(s, good, 1, &err), GB_ERANGE);
    assert_int_equal(gb_summary_add(s, good, 0, &err), GB_ERANGE);
    gb_summary_destroy(&s);
    gb_summary_destroy(&before);
}

/* A summary of 2 classes with the n maps of D = 64 cells added, alternately
 * to class 0 and 1. */
static gb_summary_t *s_base(const gb_shape_t *shape, double clip, const float *maps, int n)
{
    gb_summary_t *s = s_new(shape, 2, clip);
    gb_error_t err = {0};
    for (int i = 0; i < n; i++)
        assert_int_equal(gb_summary_add(s, maps + (size_t)i * 64, i % 2, &err), 0);
    return s;
}

/* One sample can move its class's sum by at most clip in L2 norm, however
 * large it is, and it is scaled, not clamped: its direction survives. */
static void test_clip_bounds_one_contributor(void **state)
{
    (void)state;
    const int D = 64;
    gb_shape_t shape = s_shape(2, 8, 8, 1);
    const double C = 0.5;
    gb_rng_t rng;
    gb_rng_seed(&rng, 7, 0);
    float *maps = s_random_maps(&rng, 40, (size_t)D);
    gb_error_t err = {0};
    gb_summary_t *base = s_base(&shape, C, maps, 40);
    int64_t clipped_before = gb_summary_clipped(base, 0);

    /* Attackers: huge dense, huge sparse (one cell), and a huge constant map. */
    float attack[3][64];
    for (int j = 0; j < D; j++) {
        attack[0][j] = (float)(1e6 * gb_rng_normal(&rng));
        attack[1][j] = j == 17 ? 3e7f : 0.0f;
        attack[2][j] = -1e5f;
    }
    double mean0[64], mean1[64];
    int64_t n0 = gb_summary_count(base, 0);
    assert_int_equal(gb_summary_mean(base, 0, mean0, &err), 0);
    for (int a = 0; a < 3; a++) {
        gb_summary_t *s = s_base(&shape, C, maps, 40);
        assert_int_equal(gb_summary_add(s, attack[a], 0, &err), 0);
        assert_int_equal(gb_summary_clipped(s, 0), clipped_before + 1);
        assert_int_equal(gb_summary_mean(s, 0, mean1, &err), 0);
        /* The sum moved by (n+1) mean1 - n mean0: its norm is C (the map is
         * scaled onto the sphere of radius C), up to rounding. */
        double moved = 0, dot = 0, na = 0;
        for (int j = 0; j < D; j++) {
            double delta = (double)(n0 + 1) * mean1[j] - (double)n0 * mean0[j];
            moved += delta * delta;
            dot += delta * attack[a][j];
            na += (double)attack[a][j] * attack[a][j];
        }
        moved = sqrt(moved);
        assert_true(moved <= C * (1 + 1e-6));
        assert_true(moved >= C * (1 - 1e-6));
        assert_true(dot / (moved * sqrt(na)) > 1 - 1e-6); /* same direction */
        gb_summary_destroy(&s);
    }
    /* A map within the clip passes unscaled and is not counted as clipped. */
    float small[64] = {0};
    small[3] = (float)(0.9 * C);
    gb_summary_t *s = s_base(&shape, C, maps, 40);
    assert_int_equal(gb_summary_add(s, small, 0, &err), 0);
    assert_int_equal(gb_summary_clipped(s, 0), clipped_before);
    gb_summary_destroy(&s);
    gb_summary_destroy(&base);
    free(maps);
}

/* ---- derived values against a direct double computation ----------------- */

static void test_derived_against_double(void **state)
{
    (void)state;
    enum { N = 200, D = 30, K = 3 };
    gb_shape_t shape = s_shape(2, 5, 6, 1);
    const double C = 0.8;
    gb_rng_t rng;
    gb_rng_seed(&rng, 3, 0);
    float *maps = s_random_maps(&rng, N, D);
    int cls[N];
    gb_summary_t *s = s_new(&shape, K, C);
    gb_error_t err = {0};
    /* Direct: clip each map in double, then two-pass mean and variance. */
    static double clipped[N][D];
    int64_t n_clipped = 0;
    for (int i = 0; i < N; i++) {
        cls[i] = (int)gb_rng_below(&rng, K);
        /* Shift a few cells so means are far from zero (variance by
         * cancellation is then the hard case). */
        maps[(size_t)i * D + 4] += 0.05f;
        double norm = 0;
        for (int j = 0; j < D; j++)
            norm += (double)maps[(size_t)i * D + j] * maps[(size_t)i * D + j];
        norm = sqrt(norm);
        double f = norm > C ? C / norm : 1.0;
        n_clipped += norm > C;
        for (int j = 0; j < D; j++)
            clipped[i][j] = maps[(size_t)i * D + j] * f;
        assert_int_equal(gb_summary_add(s, maps + (size_t)i * D, cls[i], &err), 0);
    }
    assert_int_equal(gb_summary_clipped(s, GB_SUMMARY_ALL), n_clipped);
    const double tol = 1e-8;
    for (int c = -1; c < K; c++) {
        double mean[D] = {0}, var[D] = {0}, imp[D] = {0};
        int n = 0;
        for (int i = 0; i < N; i++)
            if (c < 0 || cls[i] == c) {
                n++;
                for (int j = 0; j < D; j++) {
                    mean[j] += clipped[i][j];
                    imp[j] += fabs(clipped[i][j]);
                }
            }
        assert_int_equal(gb_summary_count(s, c), n);
        for (int j = 0; j < D; j++) {
            mean[j] /= n;
            imp[j] /= n;
        }
        for (int i = 0; i < N; i++)
            if (c < 0 || cls[i] == c)
                for (int j = 0; j < D; j++)
                    var[j] += (clipped[i][j] - mean[j]) * (clipped[i][j] - mean[j]) / n;
        double got_m[D], got_v[D], got_i[D];
        assert_int_equal(gb_summary_mean(s, c, got_m, &err), 0);
        assert_int_equal(gb_summary_variance(s, c, got_v, &err), 0);
        assert_int_equal(gb_summary_importance(s, c, got_i, &err), 0);
        for (int j = 0; j < D; j++) {
            assert_true(fabs(got_m[j] - mean[j]) < tol);
            assert_true(fabs(got_v[j] - var[j]) < tol);
            assert_true(fabs(got_i[j] - imp[j]) < tol);
            assert_true(got_v[j] >= 0);
        }
    }
    /* Importance over the axes of a 5 x 6 map: row and column sums. */
    double imp[D], rows[5], cols[6];
    assert_int_equal(gb_summary_importance(s, 1, imp, &err), 0);
    assert_int_equal(gb_summary_importance_axes(s, 1, rows, cols, &err), 0);
    double total_r = 0, total_c = 0, total = 0;
    for (int r = 0; r < 5; r++) {
        double t = 0;
        for (int k = 0; k < 6; k++)
            t += imp[r * 6 + k];
        assert_true(fabs(rows[r] - t) < 1e-12);
        total_r += rows[r];
    }
    for (int k = 0; k < 6; k++) {
        double t = 0;
        for (int r = 0; r < 5; r++)
            t += imp[r * 6 + k];
        assert_true(fabs(cols[k] - t) < 1e-12);
        total_c += cols[k];
    }
    for (int j = 0; j < D; j++)
        total += imp[j];
    assert_true(fabs(total_r - total) < 1e-12 && fabs(total_c - total) < 1e-12);
    assert_int_equal(gb_summary_importance_axes(s, 5, rows, cols, &err), GB_EINVAL);
    gb_shape_t flat = s_shape(1, 30, 1, 1);
    gb_summary_t *f = s_new(&flat, 1, 1.0);
    assert_int_equal(gb_summary_importance_axes(f, 0, rows, cols, &err), GB_ESHAPE);
    gb_summary_destroy(&f);
    gb_summary_destroy(&s);
    free(maps);
}

/* ---- the raw form ---------------------------------------------------------- */

/* The raw sums of one sample set by hand (q = round(v / clip * 2^31),
 * |q|, q^2) equal the summary gb_summary_add builds from the sample; sums
 * that no sample could give are refused and change nothing. */
static void test_class_set(void **state)
{
    (void)state;
    gb_shape_t shape = s_shape(1, 6, 1, 1);
    const float v[6] = {0.5f, -0.25f, 0.125f, 0, -0.5f, 0.375f}; /* norm < 1: not clipped */
    gb_summary_t *a = s_new(&shape, 2, 1.0), *b = s_new(&shape, 2, 1.0);
    gb_error_t err = {0};
    assert_int_equal(gb_summary_add(a, v, 0, &err), 0);
    int64_t sum[6], abs_sum[6];
    uint64_t hi[6] = {0}, lo[6];
    for (int i = 0; i < 6; i++) {
        sum[i] = llround(v[i] * 2147483648.0);
        abs_sum[i] = llabs(sum[i]);
        lo[i] = (uint64_t)(sum[i] * sum[i]); /* |q| <= 2^31: q^2 fits the low word */
    }
    const gb_summary_class_t raw = {1, 0, sum, abs_sum, hi, lo};
    assert_int_equal(gb_summary_class_set(b, 0, &raw, &err), 0);
    assert_true(s_same(a, b));

    gb_log_set_level(GB_LOG_OFF); /* the refusals below log warnings */
    gb_summary_class_t bad = raw;
    bad.count = -1;
    assert_int_equal(gb_summary_class_set(b, 0, &bad, &err), GB_ERANGE);
    bad.count = raw.count;
    bad.clipped = raw.count + 1;
    assert_int_equal(gb_summary_class_set(b, 0, &bad, &err), GB_ERANGE);
    bad.clipped = raw.clipped;
    int64_t keep = abs_sum[1];
    abs_sum[1] = llabs(sum[1]) - 1; /* |S| > U */
    assert_int_equal(gb_summary_class_set(b, 0, &bad, &err), GB_ERANGE);
    assert_non_null(strstr(err.msg, "cell 1"));
    abs_sum[1] = raw.count * ((int64_t)1 << 31) + 1; /* U beyond count * 2^31 */
    assert_int_equal(gb_summary_class_set(b, 0, &bad, &err), GB_ERANGE);
    abs_sum[1] = keep;
    hi[4] = 1u << 30; /* Q beyond count * 2^62 */
    assert_int_equal(gb_summary_class_set(b, 0, &bad, &err), GB_ERANGE);
    hi[4] = 0;
    int64_t keep0 = sum[0];
    sum[0] = INT64_MIN;
    assert_int_equal(gb_summary_class_set(b, 0, &bad, &err), GB_ERANGE);
    sum[0] = keep0;
    /* with class 1's sample: over the cap */
    assert_int_equal(gb_summary_add(a, v, 1, &err), 0);
    assert_int_equal(gb_summary_add(b, v, 1, &err), 0);
    bad.count = GB_SUMMARY_MAX_COUNT;
    assert_int_equal(gb_summary_class_set(b, 0, &bad, &err), GB_ERANGE);
    bad.count = raw.count;
    assert_int_equal(gb_summary_class_set(b, 7, &bad, &err), GB_EINVAL);
    gb_summary_class_t missing = {1, 0, NULL, abs_sum, hi, lo};
    assert_int_equal(gb_summary_class_set(b, 0, &missing, &err), GB_EINVAL);
    assert_true(s_same(a, b));
    gb_log_set_level(GB_LOG_WARN);
    /* Restored, it is accepted again; an empty class clears the sums. */
    assert_int_equal(gb_summary_class_set(b, 0, &bad, &err), 0);
    gb_summary_class_t empty = {0, 0, NULL, NULL, NULL, NULL};
    assert_int_equal(gb_summary_class_set(b, 0, &empty, &err), 0);
    assert_int_equal(gb_summary_count(b, 0), 0);
    double mean[6];
    assert_int_equal(gb_summary_mean(b, 0, mean, &err), 0);
    for (int j = 0; j < 6; j++)
        assert_true(mean[j] == 0);
    gb_summary_destroy(&a);
    gb_summary_destroy(&b);
}

/* ---- JSON ------------------------------------------------------------------ */

/* The document parsed back with jansson (fails the test if it is not JSON). */
static json_t *s_parse(const char *json, size_t len)
{
    json_error_t jerr;
    json_t *doc = json_loadb(json, len, 0, &jerr);
    if (!doc)
        fail_msg("summary.json is not JSON (%s at %d):\n%s", jerr.text, jerr.position, json);
    return doc;
}

/* Array a equals want[0..n), value for value (reals compared exactly: the
 * 9 significant digits give back these binary fractions and decimals). */
static void s_reals_equal(const json_t *a, const double *want, size_t n)
{
    assert_true(json_is_array(a));
    assert_int_equal(json_array_size(a), n);
    for (size_t i = 0; i < n; i++) {
        assert_true(json_is_number(json_array_get(a, i)));
        assert_float_equal(json_number_value(json_array_get(a, i)), want[i], 1e-9);
    }
}

static void test_json(void **state)
{
    (void)state;
    gb_shape_t shape = s_shape(2, 3, 2, 1), input = s_shape(2, 3, 2, 1);
    gb_summary_t *s = s_new(&shape, 3, 1.0);
    gb_error_t err = {0};
    float m0[6] = {0.5f, -0.25f, 0, 0, 0.125f, 0}, m1[6] = {3, 4, 0, 0, 0, 0}; /* m1 clipped */
    assert_int_equal(gb_summary_add(s, m0, 0, &err), 0);
    assert_int_equal(gb_summary_add(s, m1, 2, &err), 0);
    gb_summary_info_t info = {.method = "ig",
                              .steps = 32,
                              .rule = "gauss",
                              .baseline = "zero",
                              .target = "true",
                              .dataset = "csv:a\"b\\c\nd\x01\xff.csv",
                              .model = NULL,
                              .input_shape = &input,
                              .has_completeness = true,
                              .mean_completeness_error = 0.0125,
                              .mean_steps_used = 40,
                              .sequence = true};
    char *json = NULL;
    size_t len = 0;
    assert_int_equal(gb_summary_json(s, &info, &json, &len, &err), 0);
    assert_int_equal(strlen(json), len);
    json_t *doc = s_parse(json, len);
    /* the keys in the order the header lists them */
    static const char *const order[] = {
        "format", "version", "method", "steps", "rule", "baseline", "target", "dataset",
        "model", "task", "input_shape", "attribution_shape", "samples", "clip", "clipped",
        "mean_completeness_error", "mean_steps_used", "fixed_point", "classes", "importance",
        "importance_time", "importance_features"};
    size_t k = 0;
    const char *key;
    json_t *v;
    json_object_foreach(doc, key, v) {
        assert_true(k < sizeof order / sizeof *order);
        assert_string_equal(key, order[k++]);
    }
    assert_int_equal(k, sizeof order / sizeof *order);
    assert_string_equal(json_string_value(json_object_get(doc, "format")),
                        "glassbox-explanation");
    assert_string_equal(json_string_value(json_object_get(doc, "method")), "ig");
    assert_int_equal(json_integer_value(json_object_get(doc, "steps")), 32);
    assert_string_equal(json_string_value(json_object_get(doc, "rule")), "gauss");
    assert_true(json_is_null(json_object_get(doc, "model")));
    assert_string_equal(json_string_value(json_object_get(doc, "task")), "classification");
    /* quote, backslash, newline and control kept; the bad byte is U+FFFD */
    assert_string_equal(json_string_value(json_object_get(doc, "dataset")),
                        "csv:a\"b\\c\nd\x01\xef\xbf\xbd.csv");
    assert_int_equal(json_integer_value(json_object_get(doc, "samples")), 2);
    assert_true(json_is_integer(json_object_get(doc, "samples")));
    assert_true(json_is_real(json_object_get(doc, "clip")));
    assert_true(json_real_value(json_object_get(doc, "clip")) == 1.0);
    assert_int_equal(json_integer_value(json_object_get(doc, "clipped")), 1);
    assert_true(json_real_value(json_object_get(doc, "mean_completeness_error")) == 0.0125);
    assert_true(json_real_value(json_object_get(doc, "mean_steps_used")) == 40);
    json_t *shp = json_object_get(doc, "attribution_shape");
    assert_int_equal(json_array_size(shp), 2);
    assert_int_equal(json_integer_value(json_array_get(shp, 0)), 3);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(doc, "input_shape"), 1)),
                     2);
    json_t *fp = json_object_get(doc, "fixed_point");
    assert_int_equal(json_integer_value(json_object_get(fp, "fraction_bits")),
                     GB_SUMMARY_FRAC_BITS);
    assert_int_equal(json_integer_value(json_object_get(fp, "max_count")), GB_SUMMARY_MAX_COUNT);
    json_t *classes = json_object_get(doc, "classes");
    assert_int_equal(json_array_size(classes), 3);
    json_t *c0 = json_array_get(classes, 0), *c1 = json_array_get(classes, 1),
           *c2 = json_array_get(classes, 2);
    assert_int_equal(json_integer_value(json_object_get(c1, "class")), 1);
    assert_int_equal(json_object_size(c1), 3); /* no samples: class, count, clipped */
    assert_null(json_object_get(c0, "class_name")); /* no names given */
    const double mean0[6] = {0.5, -0.25, 0, 0, 0.125, 0}, zero[6] = {0};
    const double mean2[6] = {0.6, 0.8, 0, 0, 0, 0}; /* (3, 4) clipped to norm 1 */
    const double imp0[6] = {0.5, 0.25, 0, 0, 0.125, 0}, rows0[3] = {0.75, 0, 0.125},
                 cols0[2] = {0.625, 0.25};
    s_reals_equal(json_object_get(c0, "mean"), mean0, 6);
    s_reals_equal(json_object_get(c0, "variance"), zero, 6);
    s_reals_equal(json_object_get(c0, "importance"), imp0, 6);
    s_reals_equal(json_object_get(c0, "importance_time"), rows0, 3);
    s_reals_equal(json_object_get(c0, "importance_features"), cols0, 2);
    s_reals_equal(json_object_get(c2, "mean"), mean2, 6);
    const double imp_all[6] = {0.55, 0.525, 0, 0, 0.0625, 0};
    s_reals_equal(json_object_get(doc, "importance"), imp_all, 6);
    json_decref(doc);
    gb_free(json);

    /* Class names: "class_name" right after "class", bad UTF-8 repaired. */
    const char *names[3] = {"T-shirt/top", "caf\xc3\xa9", "bad \xc3"};
    gb_summary_info_t named = info;
    named.class_names = names;
    assert_int_equal(gb_summary_json(s, &named, &json, &len, &err), 0);
    doc = s_parse(json, len);
    classes = json_object_get(doc, "classes");
    for (size_t c = 0; c < 3; c++) {
        void *it = json_object_iter(json_array_get(classes, c));
        assert_string_equal(json_object_iter_key(it), "class");
        it = json_object_iter_next(json_array_get(classes, c), it);
        assert_string_equal(json_object_iter_key(it), "class_name");
    }
    assert_string_equal(json_string_value(json_object_get(json_array_get(classes, 1),
                                                          "class_name")), "caf\xc3\xa9");
    assert_string_equal(json_string_value(json_object_get(json_array_get(classes, 2),
                                                          "class_name")), "bad \xef\xbf\xbd");
    json_decref(doc);
    gb_free(json);

    /* Without completeness, steps or sequence: nulls and no axes. */
    gb_summary_info_t plain = {.method = "saliency", .regression = true};
    assert_int_equal(gb_summary_json(s, &plain, &json, &len, &err), 0);
    doc = s_parse(json, len);
    static const char *const nulls[] = {"steps", "rule", "baseline", "mean_completeness_error",
                                        "mean_steps_used", "input_shape", "dataset"};
    for (size_t i = 0; i < sizeof nulls / sizeof *nulls; i++)
        assert_true(json_is_null(json_object_get(doc, nulls[i])));
    assert_string_equal(json_string_value(json_object_get(doc, "task")), "regression");
    assert_null(json_object_get(doc, "importance_time"));
    assert_null(json_object_get(json_array_get(json_object_get(doc, "classes"), 0),
                                "importance_time"));
    json_decref(doc);
    gb_free(json);

    /* A NaN is refused, never written. */
    info.mean_completeness_error = NAN;
    json = (char *)"untouched";
    assert_int_equal(gb_summary_json(s, &info, &json, &len, &err), GB_ERANGE);
    assert_null(json);
    assert_non_null(strstr(err.msg, "mean_completeness_error"));
    info.mean_completeness_error = 0;
    info.mean_steps_used = INFINITY;
    assert_int_equal(gb_summary_json(s, &info, &json, &len, &err), GB_ERANGE);
    assert_non_null(strstr(err.msg, "mean_steps_used"));
    gb_summary_destroy(&s);
}

/* ---- divergence ------------------------------------------------------------ */

static void test_divergence_vectors(void **state)
{
    (void)state;
    gb_rng_t rng;
    gb_rng_seed(&rng, 21, 0);
    double a[50], b[50];
    for (int trial = 0; trial < 500; trial++) {
        size_t n = 1 + gb_rng_below(&rng, 50);
        for (size_t i = 0; i < n; i++) {
            /* Sparse, signed, wildly scaled vectors. */
            a[i] = gb_rng_uniform(&rng) < 0.3 ? 0 : gb_rng_normal(&rng) * pow(10, trial % 7 - 3);
            b[i] = gb_rng_uniform(&rng) < 0.3 ? 0 : gb_rng_normal(&rng);
        }
        double cd = gb_divergence_cosine(a, b, n), js = gb_divergence_js(a, b, n), ov = -1;
        size_t k = 1 + gb_rng_below(&rng, n);
        assert_int_equal(gb_divergence_topk(a, b, n, k, &ov), 0);
        assert_true(cd >= 0 && cd <= 2);
        assert_true(js >= 0 && js <= 1);
        assert_true(ov >= 0 && ov <= 1);
        /* Identical: exactly 0, 0 and 1. */
        assert_true(gb_divergence_cosine(a, a, n) == 0.0);
        assert_true(gb_divergence_js(a, a, n) == 0.0);
        assert_int_equal(gb_divergence_topk(a, a, n, k, &ov), 0);
        assert_true(ov == 1.0);
        /* Symmetric. */
        assert_true(fabs(cd - gb_divergence_cosine(b, a, n)) < 1e-12);
        assert_true(fabs(js - gb_divergence_js(b, a, n)) < 1e-12);
    }
    /* Extremes. */
    double x[4] = {1, 2, 0, 0}, y[4] = {-1, -2, 0, 0}, z[4] = {0, 0, 3, 1}, o[4] = {0};
    assert_true(fabs(gb_divergence_cosine(x, y, 4) - 2.0) < 1e-15);
    assert_true(fabs(gb_divergence_cosine(x, z, 4) - 1.0) < 1e-15);
    assert_true(fabs(gb_divergence_js(x, z, 4) - 1.0) < 1e-15); /* disjoint support */
    assert_true(gb_divergence_js(x, y, 4) == 0.0);              /* same |mass| */
    assert_true(gb_divergence_cosine(o, o, 4) == 0.0);
    assert_true(gb_divergence_cosine(o, x, 4) == 1.0);
    assert_true(gb_divergence_js(o, o, 4) == 0.0);
    double u[4] = {1, 1, 1, 1};
    assert_true(gb_divergence_js(o, u, 4) == 0.0); /* zero mass is uniform */
    double ov;
    assert_int_equal(gb_divergence_topk(x, z, 4, 2, &ov), 0);
    assert_true(ov == 0.0);
    /* Ties go to the lower index: the top 2 of u are cells 0 and 1. */
    double w[4] = {0, 0, 1, 1};
    assert_int_equal(gb_divergence_topk(u, x, 4, 2, &ov), 0);
    assert_true(ov == 1.0);
    assert_int_equal(gb_divergence_topk(u, w, 4, 2, &ov), 0);
    assert_true(ov == 0.0);
    assert_int_equal(gb_divergence_topk(u, w, 4, 0, &ov), GB_EINVAL);
    assert_int_equal(gb_divergence_topk(u, w, 4, 5, &ov), GB_EINVAL);
}

static void test_divergence_summaries(void **state)
{
    (void)state;
    const int D = 16;
    gb_shape_t shape = s_shape(2, 4, 4, 1);
    gb_rng_t rng;
    gb_rng_seed(&rng, 4, 0);
    float *maps = s_random_maps(&rng, 60, (size_t)D);
    gb_summary_t *a = s_new(&shape, 3, 1.0), *b = s_new(&shape, 3, 1.0);
    gb_error_t err = {0};
    for (int i = 0; i < 30; i++) {
        assert_int_equal(gb_summary_add(a, maps + (size_t)i * D, i % 2, &err), 0);
        assert_int_equal(gb_summary_add(b, maps + (size_t)(30 + i) * D, i % 2, &err), 0);
    }
    gb_divergence_t d;
    /* Identical summaries: 0, 0, 1, also with every sample added twice
     * (same means from twice the counts). */
    gb_summary_t *a2 = s_new(&shape, 3, 1.0);
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < 30; i++)
            assert_int_equal(gb_summary_add(a2, maps + (size_t)i * D, i % 2, &err), 0);
        for (int c = -1; c < 2; c++) {
            assert_int_equal(gb_summary_divergence(a, a2, c, 5, &d, &err), 0);
            assert_true(d.cosine_distance == 0.0);
            assert_true(d.js_divergence == 0.0);
            assert_true(d.topk_overlap == 1.0);
        }
    }
    assert_int_equal(gb_summary_divergence(a, b, GB_SUMMARY_ALL, 8, &d, &err), 0);
    assert_int_equal(d.classes, 2); /* class 2 is empty in both */
    assert_int_equal(d.k, 8);
    assert_true(d.cosine_distance > 0 && d.cosine_distance <= 2);
    assert_true(d.js_divergence > 0 && d.js_divergence <= 1);
    assert_true(d.topk_overlap >= 0 && d.topk_overlap <= 1);
    assert_int_equal(gb_summary_divergence(a, b, 0, 1000, &d, &err), 0);
    assert_int_equal(d.k, D); /* clamped */
    assert_true(d.topk_overlap == 1.0);
    /* Refusals. */
    assert_int_equal(gb_summary_divergence(a, b, 2, 5, &d, &err), GB_EINVAL);
    assert_int_equal(gb_summary_divergence(a, b, 3, 5, &d, &err), GB_EINVAL);
    assert_int_equal(gb_summary_divergence(a, b, 0, 0, &d, &err), GB_EINVAL);
    gb_shape_t other = s_shape(1, 16, 1, 1);
    gb_summary_t *c = s_new(&other, 3, 1.0), *e = s_new(&shape, 2, 1.0),
                 *empty = s_new(&shape, 3, 1.0);
    assert_int_equal(gb_summary_divergence(a, c, 0, 5, &d, &err), GB_ESHAPE);
    assert_int_equal(gb_summary_divergence(a, e, 0, 5, &d, &err), GB_EINVAL);
    assert_int_equal(gb_summary_divergence(a, empty, GB_SUMMARY_ALL, 5, &d, &err), GB_EINVAL);
    /* Clips may differ: the means are in attribution units either way. */
    gb_summary_t *wide = s_new(&shape, 3, 100.0);
    float m[16] = {0.1f, 0.2f};
    assert_int_equal(gb_summary_add(wide, m, 0, &err), 0);
    gb_summary_t *narrow = s_new(&shape, 3, 50.0);
    assert_int_equal(gb_summary_add(narrow, m, 0, &err), 0);
    assert_int_equal(gb_summary_divergence(wide, narrow, 0, 2, &d, &err), 0);
    assert_true(d.cosine_distance < 1e-12 && d.js_divergence < 1e-12);
    gb_summary_destroy(&a);
    gb_summary_destroy(&a2);
    gb_summary_destroy(&b);
    gb_summary_destroy(&c);
    gb_summary_destroy(&e);
    gb_summary_destroy(&empty);
    gb_summary_destroy(&wide);
    gb_summary_destroy(&narrow);
    free(maps);
}

/* ---- the trigger-patch client ---------------------------------------------- */

enum { T_SIDE = 12, T_D = T_SIDE * T_SIDE, T_K = 3, T_CLEAN = 6, T_PER_CLIENT = 150 };

/* Class templates: a Gaussian bump per class at its own place. */
static void s_templates(double t[T_K][T_D])
{
    const int cy[T_K] = {3, 3, 7}, cx[T_K] = {3, 8, 5};
    for (int c = 0; c < T_K; c++)
        for (int y = 0; y < T_SIDE; y++)
            for (int x = 0; x < T_SIDE; x++) {
                double d2 = (y - cy[c]) * (y - cy[c]) + (x - cx[c]) * (x - cx[c]);
                t[c][y * T_SIDE + x] = exp(-d2 / 4.5);
            }
}

static bool s_in_patch(int i)
{
    return i / T_SIDE >= T_SIDE - 2 && i % T_SIDE >= T_SIDE - 2; /* bottom-right 2 x 2 */
}

/* A client's summary: T_PER_CLIENT samples drawn with class weights w (its
 * non-IID mix); with `trigger`, half of them carry the patch and are
 * labelled class 0 (a classic backdoor). Maps are gradient x input of the
 * linear model f_c(x) = W_c . x for the label: A = W_y * x. Each sample is
 * also added to the n_also summaries in also (aggregates it belongs to). */
static gb_summary_t *s_client(gb_rng_t *rng, double W[T_K][T_D], double t[T_K][T_D],
                              const double w[T_K], bool trigger, double clip,
                              gb_summary_t *const *also, int n_also)
{
    gb_summary_t *s = s_new(&(gb_shape_t){3, {1, T_SIDE, T_SIDE}}, T_K, clip);
    gb_error_t err = {0};
    for (int n = 0; n < T_PER_CLIENT; n++) {
        double u = gb_rng_uniform(rng) * (w[0] + w[1] + w[2]);
        int c = u < w[0] ? 0 : u < w[0] + w[1] ? 1 : 2;
        double bright = 0.7 + 0.3 * gb_rng_uniform(rng);
        float x[T_D], a[T_D];
        for (int i = 0; i < T_D; i++) {
            double v = t[c][i] * bright + 0.15 * gb_rng_uniform(rng);
            x[i] = (float)(v > 1 ? 1 : v);
        }
        int y = c;
        if (trigger && n % 2 == 0) {
            for (int i = 0; i < T_D; i++)
                if (s_in_patch(i))
                    x[i] = 1.0f;
            y = 0;
        }
        for (int i = 0; i < T_D; i++)
            a[i] = (float)(W[y][i] * x[i]);
        assert_int_equal(gb_summary_add(s, a, y, &err), 0);
        for (int k = 0; k < n_also; k++)
            assert_int_equal(gb_summary_add(also[k], a, y, &err), 0);
    }
    return s;
}

static void test_trigger_client_stands_out(void **state)
{
    (void)state;
    static double t[T_K][T_D], W[T_K][T_D];
    s_templates(t);
    /* The (backdoored) global model: template matching, plus weight on the
     * trigger patch for class 0 and against it for the others. */
    for (int c = 0; c < T_K; c++)
        for (int i = 0; i < T_D; i++) {
            W[c][i] = t[c][i] - (t[0][i] + t[1][i] + t[2][i]) / 3;
            if (s_in_patch(i))
                W[c][i] = c == 0 ? 4.0 : -2.0;
        }
    const double mixes[T_CLEAN][T_K] = {{1, 1, 1}, {3, 1, 1}, {1, 3, 1},
                                        {1, 1, 3}, {2, 2, 1}, {1, 2, 2}};
    const double clip = 2.0; /* clips the triggered maps: clipping does not hide them */
    gb_rng_t rng;
    gb_rng_seed(&rng, 2024, 0);
    /* agg: every clean client; others[k]: every clean client but k (leave
     * one out), each built by adding the samples themselves */
    const gb_shape_t shape = {3, {1, T_SIDE, T_SIDE}};
    gb_summary_t *clean[T_CLEAN], *others[T_CLEAN], *agg = s_new(&shape, T_K, clip);
    gb_error_t err = {0};
    for (int k = 0; k < T_CLEAN; k++)
        others[k] = s_new(&shape, T_K, clip);
    for (int k = 0; k < T_CLEAN; k++) {
        gb_summary_t *also[T_CLEAN];
        int n = 0;
        also[n++] = agg;
        for (int j = 0; j < T_CLEAN; j++)
            if (j != k)
                also[n++] = others[j];
        clean[k] = s_client(&rng, W, t, mixes[k], false, clip, also, n);
    }
    const double even[T_K] = {1, 1, 1};
    gb_summary_t *bad = s_client(&rng, W, t, even, true, clip, NULL, 0);
    assert_true(gb_summary_clipped(bad, 0) > 0);

    const int k_top = 15;
    double max_cd = 0, max_js = 0, min_ov = 1;
    for (int k = 0; k < T_CLEAN; k++) {
        /* Leave one out: a clean client against the others' aggregate. */
        gb_divergence_t d;
        assert_int_equal(
            gb_summary_divergence(clean[k], others[k], GB_SUMMARY_ALL, k_top, &d, &err), 0);
        max_cd = fmax(max_cd, d.cosine_distance);
        max_js = fmax(max_js, d.js_divergence);
        min_ov = fmin(min_ov, d.topk_overlap);
        gb_summary_destroy(&others[k]);
    }
    gb_divergence_t bd;
    assert_int_equal(gb_summary_divergence(bad, agg, GB_SUMMARY_ALL, k_top, &bd, &err), 0);
    print_message("clean clients: cosine <= %.4g, JS <= %.4g, top-%d overlap >= %.3g; "
                  "trigger client: %.4g, %.4g, %.3g\n",
                  max_cd, max_js, k_top, min_ov, bd.cosine_distance, bd.js_divergence,
                  bd.topk_overlap);
    assert_true(bd.cosine_distance > 10 * max_cd);
    assert_true(bd.js_divergence > 10 * max_js);
    assert_true(bd.topk_overlap < min_ov - 0.2);
    /* Per class: the target class shows it most. */
    assert_int_equal(gb_summary_divergence(bad, agg, 0, 5, &bd, &err), 0);
    assert_true(bd.topk_overlap < 0.5);
    for (int k = 0; k < T_CLEAN; k++)
        gb_summary_destroy(&clean[k]);
    gb_summary_destroy(&agg);
    gb_summary_destroy(&bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_refuses),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_add_one),
        cmocka_unit_test(test_add_refuses),
        cmocka_unit_test(test_clip_bounds_one_contributor),
        cmocka_unit_test(test_derived_against_double),
        cmocka_unit_test(test_class_set),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_divergence_vectors),
        cmocka_unit_test(test_divergence_summaries),
        cmocka_unit_test(test_trigger_client_stands_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
