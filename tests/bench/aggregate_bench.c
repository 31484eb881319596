/* gb_aggregate_bench: FedAvg aggregation speed beside the machine's memory
 * bandwidth, measured in the same run (issue 11: "aggregation of N updates
 * runs at >= 50% of this machine's memory bandwidth, measured beside a
 * y += a*x stream").
 *
 *   gb_aggregate_bench [--params P[,P...]] [--updates N[,N...]] [--rule SPEC]
 *                      [--rounds R] [--pool-mib M] [--kernel auto|avx512|avx2|portable]
 *                      [--threads T] [--checked | --copy] [--quick]
 *
 * For every model size P (default 80202, LeNet's parameter count, and
 * 4,000,000) and update count N (default 10, 100, 1000), it times one round
 * of the real aggregation API the federation uses: gb_aggregator_begin,
 * N x gb_aggregator_add_take_finite (weights 100..1099), gb_aggregator_finish.
 * The federation hands each decoded delta over (federation_round.c), once
 * its finite L2 norm has shown every value finite, so FedAvg keeps a large
 * model's buffered updates without copying them or reading them to check;
 * --checked times gb_aggregator_add_take (FedAvg reads each kept update once
 * to check it), --copy gb_aggregator_add (it copies them). Beside it,
 * over the very same update buffers in the same order, a plain stream
 * y[j] += a_i * x_i[j] into one float vector: the least work any weighted
 * mean can do, and a bandwidth-bound loop (STREAM's daxpy in float32).
 *
 * The N updates cycle through a pool of distinct buffers of at least
 * --pool-mib (512) MiB in all, more than this machine's 260 MiB L3, so an
 * update is never in cache when it is read (for the smaller model the pool
 * holds all N when they fit; 10 LeNet updates are 3 MiB and stay in cache:
 * that row measures the arithmetic, not memory). Updates are finite,
 * normally distributed deltas of scale 1e-3, one in 64 of scale 2^-40..2^-1
 * instead and one in 64 exactly zero, as clients' deltas are (what training
 * moves by a learning rate times gradients). Values of 4 or more, or below
 * 2^-62, take aggregate.c's slower exact path; the unit tests cover them,
 * this bench does not time them.
 *
 * Both sides are reported in update bytes consumed per second (N * P * 4
 * bytes over the time), so the ratio is aggregation's speed as a fraction
 * of the stream's: the target is ratio >= 0.5. The stream's memory traffic
 * (12 bytes an element: x read, y read and written) is printed too: that is
 * the bandwidth figure a STREAM user would quote. Each of --rounds (3)
 * rounds runs the stream and then the aggregation; the fastest of each
 * counts (other processes only ever slow a run down).
 *
 * --threads T (default: the CPUs this process may run on, at most
 * GB_AGG_MAX_THREADS) is how many threads each side gets: the aggregator
 * through gb_aggregator_set_threads (each add, copy and finish split over
 * parameter ranges), the stream as T threads each streaming its share of y
 * through all N updates (one start and one join for the whole stream: the
 * most a memory stream can get out of the cores). With T = 1 both run on this
 * thread and are timed in its CPU time (CLOCK_THREAD_CPUTIME_ID), so time the
 * core spent on another process is not counted; with T > 1 in wall time
 * (CLOCK_MONOTONIC). One JSON line per (P, N) on stdout, a table on stderr.
 * Not a test; built by tests/bench/aggregate.cmake into the top of the build
 * tree. */
/* sched_getaffinity: the build defines _GNU_SOURCE */
#include "aggregate.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/pool.h"

#include <sched.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_MAX_LIST 16

/* One thread: its CPU time, since the machine is shared and time another
 * process holds the core is not this loop's (memory contention still
 * counts). Several: wall time, the only clock that sees them all. */
static clockid_t s_clock = CLOCK_THREAD_CPUTIME_ID;

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(s_clock, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t s_rand(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* A standard normal draw (Box-Muller; speed does not matter here). */
static double s_normal(uint64_t *x)
{
    double u = ((double)(s_rand(x) >> 11) + 0.5) / 9007199254740992.0;
    double v = ((double)(s_rand(x) >> 11) + 0.5) / 9007199254740992.0;
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

static int s_list(const char *flag, const char *arg, size_t lo, size_t hi, size_t *out,
                  size_t *n)
{
    *n = 0;
    const char *p = arg;
    while (p && *p) {
        char *end = NULL;
        unsigned long long v = strtoull(p, &end, 10);
        if (end == p || v < lo || v > hi || (*end && *end != ',') || *n == S_MAX_LIST) {
            fprintf(stderr, "gb_aggregate_bench: %s wants up to %d integers in %zu..%zu, "
                            "comma-separated\n", flag, S_MAX_LIST, lo, hi);
            return -1;
        }
        out[(*n)++] = (size_t)v;
        p = *end ? end + 1 : end;
    }
    return *n ? 0 : -1;
}

/* y += a * x over p floats: the reference stream. Kept out of line so the
 * compiler vectorises it as a plain loop and cannot fuse it with anything. */
__attribute__((noinline)) static void s_axpy(float *restrict y, const float *restrict x, float a,
                                             size_t p)
{
    for (size_t j = 0; j < p; j++)
        y[j] += a * x[j];
}

typedef struct {
    double stream_s, agg_s, finish_s; /* best times of a round */
} s_times_t;

/* The stream's work for the threads: y += a_i x_i for all n updates, each
 * thread over its own slice of y. */
typedef struct {
    float *y;
    float **pool;
    size_t pool_n, p, n;
    const uint64_t *weights;
    uint64_t total;
} s_stream_t;

static void s_stream_share(void *arg, int i, int count)
{
    const s_stream_t *st = arg;
    /* slices of whole 64-byte lines */
    size_t lines = (st->p + 15) / 16;
    size_t lo = lines * (size_t)i / (size_t)count * 16, hi = lines * (size_t)(i + 1) / (size_t)count * 16;
    if (hi > st->p)
        hi = st->p;
    if (lo >= hi)
        return;
    for (size_t k = 0; k < st->n; k++)
        s_axpy(st->y + lo, st->pool[k % st->pool_n] + lo,
               (float)st->weights[k] / (float)st->total, hi - lo);
}

/* Hands the aggregator pool buffers until it keeps no more (up to 7, a
 * kernel's batch less one) and fills those it gives back (zeros) with their
 * values, untimed: afterwards every buffer on either side holds an update's
 * values, and the pool's values are what they were. Only large models'
 * updates are kept (aggregate.h); for the others this adds one update and
 * changes nothing. */
/* How updates go in: gb_aggregator_add_take_finite (the federation's call),
 * gb_aggregator_add_take (--checked) or gb_aggregator_add (--copy). */
typedef enum { S_FINITE, S_CHECKED, S_COPY } s_mode_t;
static const char *const s_mode_keys[] = {"finite", "checked", "copy"};
static const char *const s_mode_names[] = {
    "handed over, found finite by the caller (gb_aggregator_add_take_finite)",
    "handed over, checked (gb_aggregator_add_take)", "copied (gb_aggregator_add)"};

static int s_warm_take(gb_aggregator_t *agg, float **pool, size_t pool_n, size_t p,
                       gb_error_t *err)
{
    if (gb_aggregator_begin(agg, 1000000, p, err) != 0)
        return -1;
    for (size_t k = 0; k < 7 && k < pool_n; k++) {
        float *given = pool[k], *d = given;
        if (gb_aggregator_add_take(agg, &d, p, 1, err) != 0)
            return -1;
        if (d == given) /* added at once: the aggregator keeps no more */
            break;
        memcpy(d, given, p * sizeof *d); /* the given one is readable until the next call */
        pool[k] = d;
    }
    return 0;
}

static int s_run(const char *rule, float **pool, size_t pool_n, size_t p, size_t n,
                 const uint64_t *weights, int rounds, gb_pool_t *threads, s_mode_t mode, float *y,
                 float *out, s_times_t *t)
{
    gb_error_t err = {0};
    gb_aggregator_t *agg = gb_aggregator_new(rule, n > 3 ? n : 3, &err);
    const float **used = calloc(n, sizeof *used);
    if (!agg || !used || gb_aggregator_set_threads(agg, gb_pool_size(threads), &err) != 0 ||
        (mode != S_COPY && s_warm_take(agg, pool, pool_n, p, &err) != 0)) {
        fprintf(stderr, "gb_aggregate_bench: %s\n", used ? err.msg : "out of memory");
        gb_aggregator_destroy(&agg);
        free(used);
        return -1;
    }
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += weights[i];
    s_stream_t st = {y, pool, pool_n, p, n, weights, total};
    t->stream_s = t->agg_s = t->finish_s = INFINITY;
    for (int r = 0; r < rounds; r++) {
        memset(y, 0, p * sizeof *y);
        double t0 = s_now();
        gb_pool_run(threads, s_stream_share, &st);
        double t1 = s_now();
        if (t1 - t0 < t->stream_s)
            t->stream_s = t1 - t0;
        /* begin is outside the timed add loop: it clears the accumulator,
         * which the stream's memset above is not timed for either */
        if (gb_aggregator_begin(agg, (uint64_t)r + 1, p, &err) != 0)
            goto fail;
        t0 = s_now();
        if (mode == S_FINITE) {
            for (size_t i = 0; i < n; i++) {
                float **slot = &pool[i % pool_n];
                used[i] = *slot;
                if (gb_aggregator_add_take_finite(agg, slot, p, weights[i], &err) != 0)
                    goto fail;
            }
        } else if (mode == S_CHECKED) {
            for (size_t i = 0; i < n; i++) {
                float **slot = &pool[i % pool_n];
                used[i] = *slot;
                if (gb_aggregator_add_take(agg, slot, p, weights[i], &err) != 0)
                    goto fail;
            }
        } else {
            for (size_t i = 0; i < n; i++) {
                used[i] = pool[i % pool_n];
                if (gb_aggregator_add(agg, used[i], p, weights[i], &err) != 0)
                    goto fail;
            }
        }
        t1 = s_now();
        if (gb_aggregator_finish(agg, out, p, &err) != 0)
            goto fail;
        double t2 = s_now();
        if (t1 - t0 < t->agg_s)
            t->agg_s = t1 - t0;
        if (t2 - t1 < t->finish_s)
            t->finish_s = t2 - t1;
    }
    /* the aggregate agrees to float rounding with the stream over the
     * buffers the last round added (handed over, a buffer may come back to
     * the pool in another slot, so that they are not always the stream's;
     * none is ever written, and the aggregator frees those it keeps only
     * when it is destroyed, below) */
    memset(y, 0, p * sizeof *y);
    for (size_t i = 0; i < n; i++)
        s_axpy(y, used[i], (float)weights[i] / (float)total, p);
    double worst = 0;
    for (size_t j = 0; j < p; j++) {
        double d = fabs((double)out[j] - (double)y[j]) / (fabs((double)out[j]) + 1e-30);
        if (fabs((double)out[j]) > 1e-6 && d > worst)
            worst = d;
    }
    if (worst > 1e-3) {
        fprintf(stderr, "gb_aggregate_bench: aggregate and stream differ by %.3g\n", worst);
        gb_aggregator_destroy(&agg);
        free(used);
        return -1;
    }
    gb_aggregator_destroy(&agg);
    free(used);
    return 0;
fail:
    fprintf(stderr, "gb_aggregate_bench: %s\n", err.msg);
    gb_aggregator_destroy(&agg);
    free(used);
    return -1;
}

int main(int argc, char **argv)
{
    size_t params[S_MAX_LIST] = {80202, 4000000}, n_params = 2;
    size_t updates[S_MAX_LIST] = {10, 100, 1000}, n_updates = 3;
    const char *rule = "fedavg";
    s_mode_t mode = S_FINITE;
    int rounds = 3;
    size_t pool_mib = 512;
    cpu_set_t cpus;
    size_t n_threads = sched_getaffinity(0, sizeof cpus, &cpus) == 0 ? (size_t)CPU_COUNT(&cpus) : 1;
    if (n_threads > GB_AGG_MAX_THREADS)
        n_threads = GB_AGG_MAX_THREADS;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        size_t tmp[S_MAX_LIST], nt = 0;
        if (strcmp(a, "--params") == 0) {
            if (s_list(a, v, 1, (size_t)1 << 28, params, &n_params))
                return 2;
            i++;
        } else if (strcmp(a, "--updates") == 0) {
            if (s_list(a, v, 1, 100000, updates, &n_updates))
                return 2;
            i++;
        } else if (strcmp(a, "--rule") == 0 && v) {
            rule = v;
            i++;
        } else if (strcmp(a, "--rounds") == 0) {
            if (s_list(a, v, 1, 100, tmp, &nt) || nt != 1)
                return 2;
            rounds = (int)tmp[0];
            i++;
        } else if (strcmp(a, "--pool-mib") == 0) {
            if (s_list(a, v, 1, 1 << 16, tmp, &nt) || nt != 1)
                return 2;
            pool_mib = tmp[0];
            i++;
        } else if (strcmp(a, "--kernel") == 0 && v) {
            /* avx2: what a CPU without AVX-512 runs (aggregate.h) */
            gb_error_t err = {0};
            if (gb_agg_kernel_force(strcmp(v, "auto") == 0 ? NULL : v, &err) != 0) {
                fprintf(stderr, "gb_aggregate_bench: --kernel: %s\n", err.msg);
                return 2;
            }
            i++;
        } else if (strcmp(a, "--threads") == 0) {
            if (s_list(a, v, 1, GB_AGG_MAX_THREADS, tmp, &nt) || nt != 1)
                return 2;
            n_threads = tmp[0];
            i++;
        } else if (strcmp(a, "--copy") == 0) {
            mode = S_COPY;
        } else if (strcmp(a, "--checked") == 0) {
            mode = S_CHECKED;
        } else if (strcmp(a, "--quick") == 0) {
            params[0] = 80202;
            params[1] = 1000000;
            n_params = 2;
            updates[0] = 10;
            updates[1] = 50;
            n_updates = 2;
            pool_mib = 64;
            rounds = 1;
        } else {
            fprintf(stderr, "usage: gb_aggregate_bench [--params P,...] [--updates N,...] "
                            "[--rule SPEC] [--rounds R] [--pool-mib M] [--kernel auto|avx512|avx2|portable] "
                            "[--threads T] [--checked | --copy] [--quick]\n");
            return 2;
        }
    }
    gb_error_t perr = {0};
    gb_pool_t *threads = gb_pool_new((int)n_threads, &perr);
    if (!threads) {
        fprintf(stderr, "gb_aggregate_bench: %s\n", perr.msg);
        return 1;
    }
    if (n_threads > 1)
        s_clock = CLOCK_MONOTONIC;
    fprintf(stderr, "aggregation kernel: %s; %zu thread(s) a side, timed in %s; updates %s\n",
            gb_agg_kernel(), n_threads, n_threads > 1 ? "wall time" : "the thread's CPU time",
            s_mode_names[mode]);
    fprintf(stderr, "%-9s %6s %6s %12s %12s %12s %7s %10s\n", "params", "N", "pool",
            "stream GB/s", "(traffic)", "agg GB/s", "ratio", "finish ms");
    uint64_t rng = 0x243f6a8885a308d3ull;
    for (size_t pi = 0; pi < n_params; pi++) {
        size_t p = params[pi];
        size_t max_n = 0;
        for (size_t k = 0; k < n_updates; k++)
            if (updates[k] > max_n)
                max_n = updates[k];
        size_t bytes = p * sizeof(float);
        size_t pool_n = (pool_mib << 20) / bytes + 1;
        if (pool_n > max_n)
            pool_n = max_n;
        float **pool = calloc(pool_n, sizeof *pool);
        float *y = gb_alloc_aligned(bytes), *out = gb_alloc_aligned(bytes);
        uint64_t *weights = calloc(max_n, sizeof *weights);
        if (!pool || !y || !out || !weights) {
            fprintf(stderr, "gb_aggregate_bench: out of memory\n");
            return 1;
        }
        for (size_t k = 0; k < pool_n; k++) {
            if (!(pool[k] = gb_malloc(bytes))) { /* gb_aggregator_add_take's kind */
                fprintf(stderr, "gb_aggregate_bench: out of memory for the pool\n");
                return 1;
            }
            for (size_t j = 0; j < p; j++) {
                double scale = 1e-3;
                uint64_t r = s_rand(&rng);
                if ((r & 63) == 0) /* a few far from the rest */
                    scale = ldexp(1.0, (int)((r >> 8) % 40) - 40);
                pool[k][j] = (r & 0x3f00) == 0 ? 0.0f : (float)(scale * s_normal(&rng));
            }
        }
        for (size_t i = 0; i < max_n; i++)
            weights[i] = 100 + s_rand(&rng) % 1000;
        for (size_t k = 0; k < n_updates; k++) {
            size_t n = updates[k];
            s_times_t t;
            if (s_run(rule, pool, pool_n, p, n, weights, rounds, threads, mode, y, out, &t) != 0)
                return 1;
            double data = (double)n * (double)bytes;
            double stream = data / t.stream_s / 1e9, aggr = data / t.agg_s / 1e9;
            fprintf(stderr, "%-9zu %6zu %6zu %12.2f %12.2f %12.2f %7.3f %10.2f\n", p, n,
                    n < pool_n ? n : pool_n, stream, 3 * stream, aggr, aggr / stream,
                    1e3 * t.finish_s);
            printf("{\"rule\": \"%s\", \"kernel\": \"%s\", \"mode\": \"%s\", \"threads\": %zu, \"params\": %zu, \"updates\": %zu, \"pool\": %zu, "
                   "\"stream_gbps\": %.3f, \"stream_traffic_gbps\": %.3f, \"agg_gbps\": %.3f, "
                   "\"ratio\": %.4f, \"stream_s\": %.6f, \"agg_s\": %.6f, \"finish_s\": %.6f}\n",
                   rule, gb_agg_kernel(), s_mode_keys[mode], n_threads, p, n, n < pool_n ? n : pool_n, stream, 3 * stream, aggr,
                   aggr / stream, t.stream_s, t.agg_s, t.finish_s);
            fflush(stdout);
        }
        for (size_t k = 0; k < pool_n; k++)
            gb_free(pool[k]);
        free(pool);
        free(weights);
        gb_free_aligned(y);
        gb_free_aligned(out);
    }
    gb_pool_destroy(&threads);
    return 0;
}
