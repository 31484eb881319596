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
 * |a - n| <= 1e-5 * sum |terms| + 1e-30. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
static void test_gemm_nt_against_loops(void **state)
{
    (void)state;
#if GB_SIMD_KERNELS
    if (gb_kernels_best() < GB_KERNELS_AVX2) {
        print_message("no AVX2 here: nothing to check\n");
        return;
    }
    gb_rng_t rng;
    gb_rng_seed(&rng, 9, 1);
    static const int ks[] = {1, 7, 8, 9, 25, 128, 130};
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
                gb_simd_gemm_nt_avx2(M, N, K, a, lda, b, ldb, c, ldc);
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
                            fail_msg("nt M %d N %d K %d: C(%d, %d) = %.9g, want %.9g", M, N, K,
                                     r, n, (double)c[at], s);
                        worst = fmax(worst, e);
                    }
                free(a);
                free(b);
                free(c);
                free(c0);
            }
    print_message("avx2 nt: worst |diff| / sum|terms|: %.3g (tol 1e-5)\n", worst);
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
        cmocka_unit_test(test_kernel_names),
        cmocka_unit_test(test_force_clamps_to_the_cpu),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
