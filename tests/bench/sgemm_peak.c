/* gb_sgemm_peak: what OpenBLAS's square sgemm reaches on this machine, at 1
 * and at 2 threads, as the ceiling the benchmark sets Glassbox's training
 * GFLOP/s beside. For N in 1024, 1536, 2048 it times C = A . B (N x N, row
 * major, float) REPEATS times after one untimed warm-up call. It prints one
 * JSON object:
 *
 *   {"openblas": "<openblas_get_config()>", "repeats": 7,
 *    "sizes": [1024, 1536, 2048],
 *    "threads": {"1": {"median": {"1024": 98.1, ...}, "best": {...},
 *                      "peak": 103.2}, "2": {...}}}
 *
 * GFLOP/s counts 2 N^3 flops per call. "peak" is the best single call over
 * all sizes: on these shared 2-vCPU machines another process running for a
 * second halves every 2-thread call in that second, so the median of one size
 * can be a 1-thread figure while the machine can do twice that; interference
 * only ever slows a call down, so the fastest call is the ceiling.
 * OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are taken from the environment as
 * they are. Not a test: tests/bench/bench.py runs it, twice (at its start and
 * its end); built by tests/bench/bench.cmake. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REPEATS 7

static const int s_sizes[] = {1024, 1536, 2048};
#define N_SIZES ((int)(sizeof s_sizes / sizeof s_sizes[0]))

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* GFLOP/s of REPEATS calls of an n x n x n sgemm: *median and *best. */
static void s_gflops(int n, float *a, float *b, float *c, double *median, double *best)
{
    double t[REPEATS];
    /* C[n x n] = A[n x n] . B[n x n] */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    for (int r = 0; r < REPEATS; r++) {
        double t0 = s_now();
        /* C[n x n] = A[n x n] . B[n x n] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c,
                    n);
        t[r] = s_now() - t0;
    }
    qsort(t, REPEATS, sizeof t[0], s_cmp_double);
    double flops = 2.0 * (double)n * n * n;
    *median = flops / t[REPEATS / 2] / 1e9;
    *best = flops / t[0] / 1e9;
}

int main(void)
{
    const int max_n = s_sizes[N_SIZES - 1];
    const size_t count = (size_t)max_n * (size_t)max_n;
    float *a = aligned_alloc(64, count * sizeof(float));
    float *b = aligned_alloc(64, count * sizeof(float));
    float *c = aligned_alloc(64, count * sizeof(float));
    if (!a || !b || !c) {
        fprintf(stderr, "gb_sgemm_peak: out of memory\n");
        free(a);
        free(b);
        free(c);
        return 1;
    }
    unsigned x = 12345u;
    for (size_t i = 0; i < count; i++) {
        x = x * 1664525u + 1013904223u;
        a[i] = (float)(x >> 8) / 16777216.0f - 0.5f;
        b[i] = (float)(x >> 4 & 0xffffu) / 65536.0f - 0.5f;
    }
    memset(c, 0, count * sizeof(float));

    printf("{\"openblas\": \"%s\", \"repeats\": %d, \"sizes\": [", openblas_get_config(), REPEATS);
    for (int i = 0; i < N_SIZES; i++)
        printf("%s%d", i ? ", " : "", s_sizes[i]);
    printf("], \"threads\": {");
    for (int threads = 1; threads <= 2; threads++) {
        openblas_set_num_threads(threads);
        double median[N_SIZES], best[N_SIZES], peak = 0.0;
        for (int i = 0; i < N_SIZES; i++) {
            s_gflops(s_sizes[i], a, b, c, &median[i], &best[i]);
            if (best[i] > peak)
                peak = best[i];
        }
        printf("%s\"%d\": {\"median\": {", threads > 1 ? ", " : "", threads);
        for (int i = 0; i < N_SIZES; i++)
            printf("%s\"%d\": %.1f", i ? ", " : "", s_sizes[i], median[i]);
        printf("}, \"best\": {");
        for (int i = 0; i < N_SIZES; i++)
            printf("%s\"%d\": %.1f", i ? ", " : "", s_sizes[i], best[i]);
        printf("}, \"peak\": %.1f}", peak);
        fflush(stdout);
    }
    printf("}}\n");
    free(a);
    free(b);
    free(c);
    return 0;
}
