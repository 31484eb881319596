/* The engine's kernel path (engine/kernels.h) and its hand-written GEMMs
 * (engine/simd_kernels.h) against plain loops in double.
 *
 * The GEMMs are checked on every path this CPU has, on shapes that reach
 * every edge of their tiles: rows 1 to 9 past a multiple of the tile's
 * rows, columns 1 past and 1 short of a whole vector and of a whole tile,
 * K of 1 (one term) and K not a multiple of 8 (the masked tail of the dot
 * products), A read as a matrix and as a transpose, overwriting and
 * accumulating, leading dimensions wider than the rows. C's cells beyond
 * the product's columns must be left alone. Tolerance as in test_conv2d.c:
 * |a - n| <= 1e-5 * sum |terms| + 1e-30. The 2 x 2 max pooling kernels
 * are checked bit for bit, ties and NaNs included. engine/gemm.h's
 * dispatch is checked the same way on every path, OpenBLAS's included. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/gemm.h"
#include "engine/kernels.h"
#include "engine/simd_kernels.h"
#include "util/rng.h"

static const int s_ms[] = {1, 3, 4, 5, 6, 7, 8, 9, 13, 16, 33};
static const int s_ns[] = {1, 7, 8, 9, 15, 16, 17, 23, 24, 25, 47, 48, 49, 100};
static const int s_ks[] = {1, 2, 7, 9, 25, 64};

static void s_uniform(float *p, size_t n, gb_rng_t *rng)
{
    for (size_t i = 0; i < n; i++)
        p[i] = 2.0f * gb_rng_uniform(rng) - 1.0f;
}

/* The sum and the sum of |terms| of C(r, j) = c0 + sum_k A(r, k) B(k, j). */
static void s_ref(int K, const float *a, ptrdiff_t ars, ptrdiff_t acs, const float *b, size_t ldb,
                  int r, int j, double c0, double *sum, double *abs_sum)
{
    double s = c0, t = fabs(c0);
    for (int k = 0; k < K; k++) {
        double p = (double)a[r * ars + k * acs] * b[(size_t)k * ldb + j];
        s += p;
        t += fabs(p);
    }
    *sum = s;
    *abs_sum = t;
}

typedef void (*s_gemm_fn)(int M, int N, int K, const float *a, ptrdiff_t ars, ptrdiff_t acs,
                          const float *b, size_t ldb, float *c, size_t ldc, int accumulate);

/* One shape through fn; returns the worst |diff| / sum|terms|. */
static double s_check_gemm(s_gemm_fn fn, const char *name, int M, int N, int K, int transposed,
                           int accumulate, gb_rng_t *rng)
{
    const size_t ldb = (size_t)N + 3, ldc = (size_t)N + 5;
    const ptrdiff_t ars = transposed ? 1 : K, acs = transposed ? M : 1;
    float *a = malloc((size_t)M * K * sizeof *a), *b = malloc((size_t)K * ldb * sizeof *b);
    float *c = malloc((size_t)M * ldc * sizeof *c), *c0 = malloc((size_t)M * ldc * sizeof *c0);
    assert_true(a && b && c && c0);
    s_uniform(a, (size_t)M * K, rng);
    s_uniform(b, (size_t)K * ldb, rng);
    s_uniform(c0, (size_t)M * ldc, rng);
    memcpy(c, c0, (size_t)M * ldc * sizeof *c);
    fn(M, N, K, a, ars, acs, b, ldb, c, ldc, accumulate);
    double worst = 0.0;
    for (int r = 0; r < M; r++) {
        for (int j = 0; j < (int)ldc; j++) {
            const size_t at = (size_t)r * ldc + j;
            if (j >= N) {
                if (memcmp(&c[at], &c0[at], sizeof *c) != 0)
                    fail_msg("%s M %d N %d K %d: C(%d, %d) past the columns was written", name, M,
                             N, K, r, j);
                continue;
            }
            double sum, abs_sum;
            s_ref(K, a, ars, acs, b, ldb, r, j, accumulate ? c0[at] : 0.0, &sum, &abs_sum);
            double e = fabs(c[at] - sum) / (abs_sum + 1e-30);
            if (!(e <= 1e-5))
                fail_msg("%s M %d N %d K %d%s%s: C(%d, %d) = %.9g, want %.9g", name, M, N, K,
                         transposed ? " A^T" : "", accumulate ? " accumulate" : "", r, j,
                         (double)c[at], sum);
            worst = fmax(worst, e);
        }
    }
    free(a);
    free(b);
    free(c);
    free(c0);
    return worst;
}

static void s_every_gemm_shape(s_gemm_fn fn, const char *name)
{
    gb_rng_t rng;
    gb_rng_seed(&rng, 7, 1);
    double worst = 0.0;
    for (size_t i = 0; i < sizeof s_ms / sizeof s_ms[0]; i++)
        for (size_t j = 0; j < sizeof s_ns / sizeof s_ns[0]; j++)
            for (size_t k = 0; k < sizeof s_ks / sizeof s_ks[0]; k++)
                for (int t = 0; t < 2; t++)
                    worst = fmax(worst, s_check_gemm(fn, name, s_ms[i], s_ns[j], s_ks[k], t,
                                                     (int)(i + j + k + t) % 2, &rng));
    print_message("%s: worst |diff| / sum|terms|: %.3g (tol 1e-5)\n", name, worst);
}

static void test_gemm_against_loops(void **state)
{
    (void)state;
#if GB_SIMD_KERNELS
    if (gb_kernels_best() >= GB_KERNELS_AVX2)
        s_every_gemm_shape(gb_simd_gemm_avx2, "avx2");
    if (gb_kernels_best() >= GB_KERNELS_AVX512)
        s_every_gemm_shape(gb_simd_gemm_avx512, "avx512");
    if (gb_kernels_best() < GB_KERNELS_AVX2)
        print_message("no AVX2 here: nothing to check\n");
#else
    print_message("not x86-64: no vector kernels\n");
#endif
}

/* C += A . B^T, A (M x K) and B (N x K) row-major with leading dimensions
 * past K; C's cells past N left alone. */
typedef void (*s_nt_fn)(int, int, int, const float *, size_t, const float *, size_t, float *,
                        size_t);

static void s_check_nt(s_nt_fn fn, const char *name)
{
    gb_rng_t rng;
    gb_rng_seed(&rng, 9, 1);
    static const int ks[] = {1, 7, 8, 9, 15, 16, 17, 25, 33, 128, 130, 1100};
    double worst = 0.0;
    for (size_t i = 0; i < sizeof s_ms / sizeof s_ms[0]; i++)
        for (size_t j = 0; j < sizeof s_ns / sizeof s_ns[0]; j++)
            for (size_t q = 0; q < sizeof ks / sizeof ks[0]; q++) {
                const int M = s_ms[i], N = s_ns[j], K = ks[q];
                const size_t lda = (size_t)K + 2, ldb = (size_t)K + 1, ldc = (size_t)N + 4;
                float *a = malloc((size_t)M * lda * sizeof *a);
                float *b = malloc((size_t)N * ldb * sizeof *b);
                float *c = malloc((size_t)M * ldc * sizeof *c);
                float *c0 = malloc((size_t)M * ldc * sizeof *c0);
                assert_true(a && b && c && c0);
                s_uniform(a, (size_t)M * lda, &rng);
                s_uniform(b, (size_t)N * ldb, &rng);
                s_uniform(c0, (size_t)M * ldc, &rng);
                memcpy(c, c0, (size_t)M * ldc * sizeof *c);
                fn(M, N, K, a, lda, b, ldb, c, ldc);
                for (int r = 0; r < M; r++)
                    for (int n = 0; n < (int)ldc; n++) {
                        const size_t at = (size_t)r * ldc + n;
                        if (n >= N) {
                            assert_memory_equal(&c[at], &c0[at], sizeof *c);
                            continue;
                        }
                        double s = c0[at], t = fabs(c0[at]);
                        for (int k = 0; k < K; k++) {
                            double p = (double)a[r * lda + k] * b[n * ldb + k];
                            s += p;
                            t += fabs(p);
                        }
                        double e = fabs(c[at] - s) / (t + 1e-30);
                        if (!(e <= 1e-5))
                            fail_msg("%s nt M %d N %d K %d: C(%d, %d) = %.9g, want %.9g", name,
                                     M, N, K, r, n, (double)c[at], s);
                        worst = fmax(worst, e);
                    }
                free(a);
                free(b);
                free(c);
                free(c0);
            }
    print_message("%s nt: worst |diff| / sum|terms|: %.3g (tol 1e-5)\n", name, worst);
}

static void test_gemm_nt_against_loops(void **state)
{
    (void)state;
#if GB_SIMD_KERNELS
    if (gb_kernels_best() >= GB_KERNELS_AVX2)
        s_check_nt(gb_simd_gemm_nt_avx2, "avx2");
    if (gb_kernels_best() >= GB_KERNELS_AVX512)
        s_check_nt(gb_simd_gemm_nt_avx512, "avx512");
    if (gb_kernels_best() < GB_KERNELS_AVX2)
        print_message("no AVX2 here: nothing to check\n");
#else
    print_message("not x86-64: no vector kernels\n");
#endif
}

/* engine/gemm.h's dispatch on every path this CPU has: the portable one
 * sends both shapes to OpenBLAS, the others to their own kernels; each must
 * give the product the loops give, on the same edge shapes. */
static void s_nn_via_dispatch(int M, int N, int K, const float *a, ptrdiff_t ars, ptrdiff_t acs,
                              const float *b, size_t ldb, float *c, size_t ldc, int accumulate)
{
    (void)ars; /* a row of one (M = 1) reads the same either way */
    gb_gemm_nn(M, N, K, a, acs != 1, b, ldb, c, ldc, accumulate);
}

static void test_gemm_dispatch_on_every_path(void **state)
{
    (void)state;
    for (int p = GB_KERNELS_PORTABLE; p <= (int)gb_kernels_best(); p++) {
        gb_kernels_force((gb_kernels_t)p);
        assert_int_equal(gb_kernels(), p);
        char name[32];
        snprintf(name, sizeof name, "gb_gemm_nn on %s", gb_kernels_name((gb_kernels_t)p));
        s_every_gemm_shape(s_nn_via_dispatch, name);
        snprintf(name, sizeof name, "gb_gemm_nt on %s", gb_kernels_name((gb_kernels_t)p));
        s_check_nt(gb_gemm_nt, name);
    }
    gb_kernels_force(gb_kernels_best());
}

/* ---- max pooling, 2 x 2 windows, stride 2 ---------------------------------- */

/* pool2d.c's rule as a plain loop: windows read top-left, top-right,
 * bottom-left, bottom-right; a later value taken when greater or NaN. */
static void s_naive_maxpool2x2(size_t planes, int H, int W, const float *x, float *y,
                               int32_t *arg)
{
    const int OH = (H - 2) / 2 + 1, OW = (W - 2) / 2 + 1;
    for (size_t pl = 0; pl < planes; pl++)
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++) {
                const float *in = x + pl * (size_t)H * W;
                const int at[4] = {2 * oh * W + 2 * ow, 2 * oh * W + 2 * ow + 1,
                                   (2 * oh + 1) * W + 2 * ow, (2 * oh + 1) * W + 2 * ow + 1};
                int best = at[0];
                for (int q = 1; q < 4; q++)
                    if (in[at[q]] > in[best] || isnan(in[at[q]]))
                        best = at[q];
                const size_t k = (pl * OH + oh) * (size_t)OW + ow;
                y[k] = in[best];
                arg[k] = best;
            }
}

typedef void (*s_pool_fn)(size_t, int, int, const float *, float *, int32_t *);

/* Every shape of 2..41 rows and columns (odd ones leave a row or column
 * out; 16, 17 and 33 windows cross the vectors), values drawn from a few
 * integers so that windows tie, -0 beside 0, and NaNs (one in 16).
 * Outputs bit for bit, the argmax exactly, and nothing written past the
 * outputs (guard cells). */
static void s_check_pool(s_pool_fn fn, const char *name)
{
    gb_rng_t rng;
    gb_rng_seed(&rng, 41, 1);
    int shapes = 0;
    for (int H = 2; H <= 41; H += 3)
        for (int W = 2; W <= 72; W++) {
            const size_t planes = 1 + (size_t)(H + W) % 3;
            const int OH = (H - 2) / 2 + 1, OW = (W - 2) / 2 + 1;
            const size_t n_in = planes * H * W, n_out = planes * OH * OW;
            float *x = malloc(n_in * sizeof *x), *y = malloc((n_out + 8) * sizeof *y),
                  *y0 = malloc(n_out * sizeof *y0);
            int32_t *a = malloc((n_out + 8) * sizeof *a), *a0 = malloc(n_out * sizeof *a0);
            assert_true(x && y && y0 && a && a0);
            for (size_t i = 0; i < n_in; i++) {
                double u = gb_rng_uniform(&rng);
                x[i] = u < 1.0 / 16 ? NAN : u < 2.0 / 16 ? -0.0f : (float)(int)(u * 5.0) - 2.0f;
            }
            for (int g = 0; g < 8; g++) {
                y[n_out + g] = 12345.0f;
                a[n_out + g] = -7;
            }
            s_naive_maxpool2x2(planes, H, W, x, y0, a0);
            fn(planes, H, W, x, y, a);
            for (size_t k = 0; k < n_out; k++) {
                if (a[k] != a0[k] || memcmp(&y[k], &y0[k], sizeof y[k]) != 0)
                    fail_msg("%s: %dx%d, %zu planes, window %zu: arg %d value %g, expected %d %g",
                             name, H, W, planes, k, a[k], (double)y[k], a0[k], (double)y0[k]);
            }
            for (int g = 0; g < 8; g++) {
                assert_true(y[n_out + g] == 12345.0f);
                assert_int_equal(a[n_out + g], -7);
            }
            free(x);
            free(y);
            free(y0);
            free(a);
            free(a0);
            shapes++;
        }
    print_message("%s max pool 2x2: %d shapes bit for bit\n", name, shapes);
}

static void test_maxpool2x2_against_loops(void **state)
{
    (void)state;
#if GB_SIMD_KERNELS
    if (gb_kernels_best() >= GB_KERNELS_AVX2)
        s_check_pool(gb_maxpool2x2_avx2, "avx2");
    if (gb_kernels_best() >= GB_KERNELS_AVX512)
        s_check_pool(gb_maxpool2x2_avx512, "avx512");
    if (gb_kernels_best() < GB_KERNELS_AVX2)
        print_message("no AVX2 here: nothing to check\n");
#else
    print_message("not x86-64: no vector kernels\n");
#endif
}

static void test_kernel_names(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_kernels_t k;
    assert_int_equal(gb_kernels_parse("portable", &k, &err), 0);
    assert_int_equal(k, GB_KERNELS_PORTABLE);
    assert_int_equal(gb_kernels_parse("auto", &k, &err), 0);
    assert_int_equal(k, gb_kernels_best());
    assert_string_equal(gb_kernels_name(GB_KERNELS_AVX2), "avx2");
    assert_string_equal(gb_kernels_name(GB_KERNELS_AVX512), "avx512");
    assert_string_equal(gb_kernels_name((gb_kernels_t)7), "unknown");
    /* a name it does not know, and none */
    assert_int_equal(gb_kernels_parse("sse9", &k, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "expected portable, avx2, avx512 or auto"));
    assert_int_equal(gb_kernels_parse(NULL, &k, &err), GB_EINVAL);
    /* every path up to the best parses; one above it is refused by name */
    for (int p = GB_KERNELS_PORTABLE; p <= GB_KERNELS_AVX512; p++) {
        gb_kernels_t got = GB_KERNELS_PORTABLE;
        int rc = gb_kernels_parse(gb_kernels_name((gb_kernels_t)p), &got, &err);
        if (p <= (int)gb_kernels_best()) {
            assert_int_equal(rc, 0);
            assert_int_equal(got, p);
        } else {
            assert_int_equal(rc, GB_EINVAL);
            assert_non_null(strstr(err.msg, "this CPU supports at most"));
        }
    }
}

static void test_force_clamps_to_the_cpu(void **state)
{
    (void)state;
    gb_kernels_force(GB_KERNELS_PORTABLE);
    assert_int_equal(gb_kernels(), GB_KERNELS_PORTABLE);
    gb_kernels_force(GB_KERNELS_AVX512);
    assert_int_equal(gb_kernels(), gb_kernels_best());
    gb_kernels_force(gb_kernels_best());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm_against_loops),
        cmocka_unit_test(test_gemm_nt_against_loops),
        cmocka_unit_test(test_gemm_dispatch_on_every_path),
        cmocka_unit_test(test_maxpool2x2_against_loops),
        cmocka_unit_test(test_kernel_names),
        cmocka_unit_test(test_force_clamps_to_the_cpu),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
