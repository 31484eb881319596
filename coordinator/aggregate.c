/* The aggregator object (spec strings, the round's life cycle, the checks
 * every update passes) and streaming FedAvg. The exact sums it rests on are
 * exact_sum.c's (why sums are exact is told there); the robust rules'
 * arithmetic lives in aggregate_robust.c; this file only keeps their updates
 * for them.
 *
 * Why FedAvg does not keep a gb_exact_sum_t per parameter. Adding an update
 * into 40-byte sums reads and writes 80 bytes per 4-byte value, with a
 * branch on the sign and carry loops, about 20 times slower than a float
 * y += a*x over the same update (issue 11; tests/bench/aggregate_bench.c).
 * The same exact integer is kept in a split that makes the common case
 * cheap. In units of 2^-149, w * v is m * w (below 2^64) shifted left by
 * the value's exponent s (0..253); it lands in 64-bit limbs s/64 and
 * s/64 + 1. Values below 4 (s < 128) go into M, a 192-bit two's complement
 * integer (limbs m0, m1, m2); values of 4 or more into H, the same in units
 * of 2^128 (3 limbs per parameter), and S = M + H * 2^128 is the 320-bit
 * sum exactly (|M| < 2^24 * 2^127 * 2^40 = 2^191, |H| < 2^189: neither
 * overflows). Deltas lie almost all in 2^-62 <= |v| < 4 (64 <= s < 128),
 * where limb m0 receives nothing, so the hot loop adds a 128-bit integer
 * into (m2:m1), 16 bytes per parameter, branch-free, 8 parameters at a time
 * with AVX-512 where the CPU has it. On CPUs with AVX2 but not AVX-512 that
 * integer arithmetic is too slow (no mask registers, unsigned compares or
 * 64-bit arithmetic shifts), so there a round keeps the same integer of its
 * fast-range values as three doubles a parameter (fedavg_bins.h: "binned"
 * rounds, agg->bins), added with floating-point operations that never round
 * and folded into (m2:m1) at finish; m1 and m2 themselves then only take
 * what the rare values and the portable path add, and are cold like m0 and
 * H (written, and read at finish, only in blocks flagged in agg->cold). The
 * rare values (tiny, huge) take a
 * scalar path into m0 or H, which are allocated zeroed, untouched (so not
 * resident) until a rare value lands, and cleared by begin only in the
 * blocks where one did (agg->cold). finish turns (m2:m1) into the mean
 * through a double division whose error (under 10 units in the last place)
 * is far smaller than the distance to the nearest float32 rounding boundary
 * almost always; when it is not, or m0 or H hold anything, the full S goes
 * through gb_exact_sum_mean. So every result is still the correctly rounded
 * exact mean, bit for bit what a gb_exact_sum_t per parameter gives
 * (tests/coordinator/test_aggregate_fast.c compares the two on values of
 * every kind, ties included).
 *
 * Two more things keep memory traffic near a plain stream's. The finite
 * check runs inside the adding pass, not before it (one read of the update,
 * not two): when it meets a NaN, the values already added are subtracted
 * again, which restores the integers exactly, so a refusal still changes
 * nothing. And for models whose sums outgrow L2 (S_FEDAVG_BUFFER_MIN) three
 * updates are kept (the caller's own buffers, handed over through
 * gb_aggregator_add_take, or copies made by gb_aggregator_add) and added
 * with the fourth in one pass over the sums, which then cost 32 bytes of
 * traffic per four values, not per one. */
#include "aggregate.h"
#include "aggregate_robust.h"
#include "exact_sum.h"
#include "fedavg_bins.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/pool.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parameters per flag of agg->cold: a flag says a rare value landed in its
 * block, so finish and begin read or clear m0 and h only there. */
#define S_COLD_BLOCK ((size_t)4096)
/* Updates added in one pass over the sums of the integer kernels (the
 * binned one adds S_FEDAVG_BATCH_BINS): one fewer are kept (handed over by
 * gb_aggregator_add_take, or copied by gb_aggregator_add) until the next
 * one arrives. Only for models whose sums (16 bytes a
 * parameter) outgrow L2, from S_FEDAVG_BUFFER_MIN parameters (1 MiB of
 * sums; LeNet's 80,202 take 1.3 MiB): there a pass over the sums costs more
 * than keeping an update, and the buffers (12 bytes a parameter) are still
 * less memory than the 40 bytes a gb_exact_sum_t a parameter would take.
 * Measured with gb_aggregate_bench on LeNet's size (AMD EPYC Zen 5,
 * AVX-512): 8.0-8.6 GB/s of updates added at once, 9.4-10.1 buffered. */
#define S_FEDAVG_BATCH 4
/* The binned kernel's batch: its sums take 24 bytes a parameter, so a pass
 * over them weighs more, and its loop holds few registers per update.
 * Measured with gb_aggregate_bench (AMD EPYC Zen 3, AVX2): see
 * tests/bench/README.md. */
#define S_FEDAVG_BATCH_BINS GB_BINS_MAX_UPDATES
/* The binned batch of a model whose bins (24 bytes a parameter) are far
 * beyond any cache: from S_BINS_LARGE_MIN parameters (24 MiB of bins) a pass
 * adds S_FEDAVG_BATCH_BINS_LARGE updates, tile by tile (s_fedavg_add_binned),
 * so that the bins cross memory once for all of them; the kept updates cost
 * 4 bytes a parameter each (240 MiB for 4M parameters). Measured with
 * gb_aggregate_bench --kernel avx2 (AMD EPYC Zen 4): tests/bench/README.md. */
#define S_FEDAVG_BATCH_BINS_LARGE 16
#define S_BINS_LARGE_MIN ((size_t)1 << 20)
/* Parameters of a tile of a large pass: their three bins (12 KiB) stay in L1
 * while every group of the pass's updates adds into them. */
#define S_BINS_TILE ((size_t)512)
#define S_FEDAVG_BATCH_MAX S_FEDAVG_BATCH_BINS_LARGE
#define S_FEDAVG_BUFFER_MIN ((size_t)1 << 16)
/* Parameters below which one thread adds alone: waking a worker costs a few
 * microseconds, about what adding 8K values takes. */
#define S_SPLIT_MIN ((size_t)1 << 15)

struct gb_aggregator {
    gb_agg_spec_t spec;     /* the rule and its parameters */
    char name[96];          /* canonical spec string */
    size_t max_clients;     /* updates accepted per round */
    size_t min_updates;     /* updates finish needs */
    uint64_t round;         /* current or last round */
    size_t p;               /* floats per update this round */
    bool open;              /* begun and not finished */
    size_t n;               /* updates accepted this round */
    uint64_t weight;        /* their total num_samples */
    uint64_t *m1, *m2;      /* fedavg: limbs 1, 2 of each parameter's main sum M (hot) */
    uint64_t *m0;           /* fedavg: limb 0 of M: values below 2^-62 only (cold) */
    uint64_t *h;            /* fedavg: 3 limbs a parameter of H, values >= 4 (cold) */
    uint8_t *cold;          /* fedavg: per S_COLD_BLOCK parameters, 1 when m0 / h may be
                               nonzero there (a rare value landed since the last clear) */
    size_t acc_cap;         /* fedavg: parameters allocated in m0, m1, m2, h */
    int kernel;             /* fedavg: the S_KERNEL_* this round adds with */
    bool binned;            /* fedavg: this round's fast-range values go into bins
                               (the AVX2 kernel), so m1 and m2 are cold too */
    bool limbs_dirty;       /* fedavg: m1, m2 may be nonzero outside cold blocks (a
                               round not binned, or bins folded into them) */
    gb_bins_t bins;         /* fedavg, binned: three doubles a parameter (fedavg_bins.h) */
    size_t bins_cap;        /* fedavg, binned: parameters allocated in bins */
    uint64_t bin_adds;      /* fedavg, binned: adds since the bins were last emptied */
    size_t batch;           /* fedavg: updates a pass adds (this round's kernel's) */
    float *buf[S_FEDAVG_BATCH_MAX - 1]; /* fedavg: batch - 1 updates not yet added (NULL:
                                           the model is small, updates are added at once) */
    uint64_t buf_w[S_FEDAVG_BATCH_MAX - 1]; /* fedavg: their num_samples */
    size_t n_buf;           /* fedavg: updates waiting in buf */
    size_t buf_cap;         /* fedavg: floats allocated in each buf[k] */
    float *rows;            /* robust: n x p kept updates, row-major */
    size_t rows_cap;        /* robust: floats allocated in rows */
    uint64_t *weights;      /* robust: n num_samples */
    size_t weights_cap;     /* robust: entries allocated in weights */
    void *work;             /* robust: gb_robust_aggregate's workspace */
    size_t work_cap;        /* robust: bytes allocated in work */
    size_t *selected;       /* krum rules: spec.m chosen indices of the last finish */
    size_t n_selected;      /* krum rules: how many of them are valid */
    gb_pool_t *pool;        /* fedavg: threads that split each pass over the parameters
                               (NULL: the caller's thread alone) */
};

static bool s_is_krum(gb_agg_rule_t rule)
{
    return rule == GB_AGG_KRUM || rule == GB_AGG_MULTI_KRUM;
}

gb_aggregator_t *gb_aggregator_new(const char *spec, size_t max_clients, gb_error_t *err)
{
    gb_agg_spec_t parsed;
    if (gb_agg_spec_parse(spec, &parsed, err) != 0)
        return NULL;
    if (max_clients < 1 || max_clients > GB_AGG_MAX_CLIENTS) {
        gb_error_set(err, GB_EINVAL, "aggregator: max_clients %zu outside 1..%zu", max_clients,
                     GB_AGG_MAX_CLIENTS);
        return NULL;
    }
    size_t need = gb_agg_spec_min_updates(&parsed);
    if (max_clients < need) {
        gb_error_set(err, GB_EINVAL,
                     "aggregator '%s': needs at least %zu updates a round, but max_clients is %zu",
                     spec, need, max_clients);
        return NULL;
    }
    gb_aggregator_t *agg = gb_calloc(1, sizeof *agg);
    if (!agg) {
        gb_error_set(err, GB_ENOMEM, "aggregator: out of memory");
        return NULL;
    }
    agg->spec = parsed;
    gb_agg_spec_format(&parsed, agg->name, sizeof agg->name);
    agg->max_clients = max_clients;
    agg->min_updates = need;
    if (s_is_krum(parsed.rule)) {
        agg->selected = gb_calloc(parsed.m, sizeof *agg->selected);
        if (!agg->selected) {
            gb_error_set(err, GB_ENOMEM, "aggregator: out of memory");
            gb_free(agg);
            return NULL;
        }
    }
    return agg;
}

void gb_aggregator_destroy(gb_aggregator_t **agg)
{
    if (!agg || !*agg)
        return;
    gb_aggregator_t *a = *agg;
    gb_free_aligned(a->m1);
    gb_free_aligned(a->m2);
    gb_free(a->m0);
    gb_free(a->h);
    gb_free(a->cold);
    gb_free_aligned(a->bins.lo);
    gb_free_aligned(a->bins.mid);
    gb_free_aligned(a->bins.hi);
    for (int k = 0; k < S_FEDAVG_BATCH_MAX - 1; k++)
        gb_free(a->buf[k]);
    gb_free(a->rows);
    gb_free(a->weights);
    gb_free(a->work);
    gb_free(a->selected);
    gb_pool_destroy(&a->pool);
    gb_free(a);
    *agg = NULL;
}

int gb_aggregator_set_threads(gb_aggregator_t *agg, int threads, gb_error_t *err)
{
    if (threads < 1 || threads > GB_AGG_MAX_THREADS)
        return gb_error_set(err, GB_EINVAL, "aggregator: %d threads outside 1..%d", threads,
                            GB_AGG_MAX_THREADS);
    if (agg->open && agg->n)
        return gb_error_set(err, GB_EINVAL,
                            "aggregator: threads changed while round %llu holds updates",
                            (unsigned long long)agg->round);
    gb_pool_t *pool = NULL; /* the robust rules' passes are not split: no threads */
    if (threads > 1 && agg->spec.rule == GB_AGG_FEDAVG && !(pool = gb_pool_new(threads, err)))
        return err->code;
    gb_pool_destroy(&agg->pool);
    agg->pool = pool;
    return 0;
}

int gb_aggregator_threads(const gb_aggregator_t *agg)
{
    return agg->pool ? gb_pool_size(agg->pool) : 1;
}

/* ---- FedAvg's split exact sums (see the file comment) ----------------------- */


/* True when any of x[0..n) is NaN or infinite: one branch-free pass. */
static bool s_nonfinite(const float *x, size_t n)
{
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &x[i], sizeof bits);
        bad |= (uint32_t)((bits & 0x7f800000u) == 0x7f800000u);
    }
    return bad != 0;
}

/* The index of the first NaN or infinity in x[0..n), or n. */
static size_t s_first_nonfinite(const float *x, size_t n)
{
    if (!s_nonfinite(x, n))
        return n;
    size_t i = 0;
    while (isfinite(x[i]))
        i++;
    return i;
}

/* The refusal naming the first non-finite value at or after from. */
static int s_refuse_nonfinite(gb_error_t *err, unsigned long long round, const float *delta,
                              size_t from)
{
    size_t i = from;
    while (isfinite(delta[i]))
        i++;
    return gb_error_warn(err, GB_ERANGE, "round %llu: update value %zu is %s", round, i,
                         isnan(delta[i]) ? "NaN" : "infinite");
}

/* l[0..2] (a 192-bit two's complement integer, l[0] lowest) += (-1)^neg *
 * prod * 2^s, for s in 0..127: the scalar path of the rare values. */
static void s_add192(uint64_t *l0, uint64_t *l1, uint64_t *l2, unsigned s, uint64_t prod,
                     unsigned neg)
{
    uint64_t t[3] = {0, 0, 0};
    unsigned k = s >> 6, b = s & 63u;
    t[k] = prod << b;
    t[k + 1] = b ? prod >> (64 - b) : 0;
    uint64_t mask = neg ? ~UINT64_C(0) : 0, carry = neg; /* -t = ~t + 1 */
    uint64_t *l[3] = {l0, l1, l2};
    for (int i = 0; i < 3; i++) {
        uint64_t x = t[i] ^ mask;
        uint64_t sum = *l[i] + x;
        uint64_t c = sum < x;
        sum += carry;
        c |= sum < carry;
        *l[i] = sum;
        carry = c;
    }
}

/* A value outside 2^-62 <= |v| < 4 (and not zero): into m0 (with m1, m2)
 * or into H, exactly. flip negates (taking an update back). */
static void s_fedavg_rare(gb_aggregator_t *agg, size_t j, uint32_t bits, uint64_t w,
                          unsigned flip)
{
    uint32_t e = (bits >> 23) & 0xffu;
    uint64_t m = (bits & 0x7fffffu) | (e ? 0x800000u : 0);
    unsigned shift = e ? e - 1 : 0;
    unsigned neg = (bits >> 31) ^ flip;
    agg->cold[j / S_COLD_BLOCK] = 1;
    if (shift < 64) {
        s_add192(&agg->m0[j], &agg->m1[j], &agg->m2[j], shift, m * w, neg);
    } else {
        uint64_t *h = agg->h + 3 * j;
        s_add192(&h[0], &h[1], &h[2], shift - 128, m * w, neg);
    }
}

/* Adds w * x[0..n) into parameters j0.. (flip 1: subtracts), one at a time:
 * the kernel for CPUs without AVX-512, and the tail of the vector one.
 * Stops before the first NaN or infinity: returns how many values it added
 * (n when all were finite). */
static size_t s_fedavg_add_portable(gb_aggregator_t *agg, const float *x, size_t j0, size_t n,
                                    uint64_t w, unsigned flip)
{
    uint64_t *m1 = agg->m1 + j0, *m2 = agg->m2 + j0;
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &x[i], sizeof bits);
        uint32_t e = (bits >> 23) & 0xffu;
        if (e == 0xffu)
            return i;
        uint64_t m = (bits & 0x7fffffu) | ((uint64_t)(e != 0) << 23);
        uint32_t shift = e - (e != 0);
        if (shift - 64u >= 64u && m) { /* tiny or huge: rare */
            s_fedavg_rare(agg, j0 + i, bits, w, flip);
            continue;
        }
        /* (hi:lo) = m * w * 2^(shift - 64), added or subtracted as a
         * 128-bit two's complement number; zero adds nothing */
        uint64_t prod = m * w;
        unsigned b = shift & 63u;
        uint64_t lo = prod << b, hi = (prod >> 1) >> (63 - b);
        uint64_t nm = -(uint64_t)((bits >> 31) ^ flip);
        unsigned __int128 acc = ((unsigned __int128)m2[i] << 64) | m1[i];
        acc += (((unsigned __int128)(hi ^ nm) << 64) | (lo ^ nm)) + (nm & 1);
        m1[i] = (uint64_t)acc;
        m2[i] = (uint64_t)(acc >> 64);
    }
    return n;
}

/* Adds updates src[0..ns) over parameters [j0, j0 + n) one after the
 * other with the portable kernel, up to the first NaN or infinity in any
 * of them: returns how many parameters every update was added over. The
 * portable path, and the vector kernels' tails. */
static size_t s_fedavg_add_scalar(gb_aggregator_t *agg, const float *const *src,
                                  const uint64_t *wt, size_t ns, size_t j0, size_t n,
                                  unsigned flip)
{
    size_t d = n;
    for (size_t k = 0; k < ns; k++) {
        size_t dk = s_first_nonfinite(src[k] + j0, n);
        if (dk < d)
            d = dk;
    }
    for (size_t k = 0; k < ns; k++)
        s_fedavg_add_portable(agg, src[k] + j0, j0, d, wt[k], flip);
    if (agg->binned && d) /* m1 and m2 are cold in a binned round: say where they hold */
        memset(agg->cold + j0 / S_COLD_BLOCK, 1, (j0 + d - 1) / S_COLD_BLOCK - j0 / S_COLD_BLOCK + 1);
    return d;
}

/* The rare values of one update x (weight w) among the vector of
 * parameters from j: lanes, a bit per parameter. */
static void s_fedavg_rare_lanes(gb_aggregator_t *agg, const float *x, uint64_t w, size_t j,
                                unsigned lanes, unsigned flip)
{
    for (; lanes; lanes &= lanes - 1) {
        unsigned lane = (unsigned)__builtin_ctz(lanes);
        uint32_t vb;
        memcpy(&vb, &x[j + lane], sizeof vb);
        s_fedavg_rare(agg, j + lane, vb, w, flip);
    }
}

/* The rare values of updates src[0..ns) among the vector of parameters from
 * j: rare[k], a bit per parameter, for update k. Out of line and cold: the
 * vector kernels call it only when a vector holds one, so that their loops
 * make no call and keep their constants in registers. */
__attribute__((noinline, cold)) static void
s_fedavg_rare_vector(gb_aggregator_t *agg, const float *const *src, const uint64_t *wt,
                     size_t ns, size_t j, const unsigned *rare, unsigned flip)
{
    for (size_t k = 0; k < ns; k++)
        s_fedavg_rare_lanes(agg, src[k], wt[k], j, rare[k], flip);
}

#if defined(__x86_64__)
#define S_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl")))

/* Keeps a vector constant in a register across the kernels' loops: GCC
 * otherwise rebuilds broadcast constants from immediates inside the loop,
 * two instructions each, every vector (seen in perf annotate; about 10% of
 * an add). The empty asm makes the value opaque, so it cannot be rebuilt. */
#define S_IN_REGISTER(x) __asm__("" : "+v"(x))

/* The portable kernel's adds, 8 parameters at a time, for up to
 * S_FEDAVG_BATCH updates src[0..ns) with weights below 2^31 (one signed
 * 32 x 32-bit product a lane): the 8 parameters' sums are loaded once,
 * every update's values are added to them in registers, and they are
 * stored once, so that buffered updates (gb_aggregator_add) share one pass
 * over the sums. Each value's 32 bits are widened to a 64-bit lane as they
 * are loaded, so every operation is one 512-bit instruction. A fast-range
 * value's signed significand times the signed weight, shifted into
 * position, is a 128-bit two's complement number added to (m2:m1) with the
 * carry out of m1: the same integers as the portable kernel's, with no
 * branch on the sign. Lanes holding a rare value add nothing here: the run
 * stops after the store of a vector that holds one, its lanes in
 * rare_out[k] (a bit a parameter, for update k), and s_fedavg_add_vector
 * passes them to s_fedavg_rare (it may write m1 and m2 too) before the
 * next run. Starts at parameter j0 + i; returns where it stopped: after
 * such a vector, at a vector holding a NaN or infinity in some update
 * (none of it added), or at the last whole vector's end (i + 8 > n). */
S_AVX512 static inline __attribute__((always_inline)) size_t
s_fedavg_run_avx512_n(gb_aggregator_t *agg, const float *const *src, const uint64_t *wt,
                      const size_t ns, size_t j0, size_t i, size_t n, unsigned flip,
                      unsigned *rare_out)
{
    /* every value's 32 bits in a 64-bit lane; fast range 2^-62 <= |v| < 4:
     * biased exponents 65..128 */
    __m512i abs_mask = _mm512_set1_epi64(0x7fffffff), inf = _mm512_set1_epi64(0x7f800000);
    __m512i low = _mm512_set1_epi64(65 << 23), span = _mm512_set1_epi64(64 << 23);
    __m512i mant = _mm512_set1_epi64(0x7fffff), hidden = _mm512_set1_epi64(0x800000);
    __m512i sign = _mm512_set1_epi64(0x80000000), one = _mm512_set1_epi64(1);
    __m512i e65 = _mm512_set1_epi64(65), e129 = _mm512_set1_epi64(129);
    S_IN_REGISTER(abs_mask);
    S_IN_REGISTER(inf);
    S_IN_REGISTER(low);
    S_IN_REGISTER(span);
    S_IN_REGISTER(mant);
    S_IN_REGISTER(hidden);
    S_IN_REGISTER(sign);
    S_IN_REGISTER(one);
    S_IN_REGISTER(e65);
    S_IN_REGISTER(e129);
    /* flip (taking updates back) is a negative weight: the product's sign
     * is the value's times the weight's */
    __m512i vw[S_FEDAVG_BATCH];
    for (size_t k = 0; k < ns; k++)
        vw[k] = _mm512_set1_epi64(flip ? -(long long)wt[k] : (long long)wt[k]);
    const __m512i zero = _mm512_setzero_si512();
    uint64_t *m1 = agg->m1 + j0, *m2 = agg->m2 + j0;
    for (; i + 8 <= n; i += 8) {
        __m512i v[S_FEDAVG_BATCH], a[S_FEDAVG_BATCH];
        __mmask8 fast[S_FEDAVG_BATCH];
        unsigned rare[S_FEDAVG_BATCH], any_rare = 0;
        for (size_t k = 0; k < ns; k++) {
            v[k] = _mm512_cvtepu32_epi64(_mm256_loadu_si256((const __m256i *)(src[k] + j0 + i)));
            a[k] = _mm512_and_si512(v[k], abs_mask);
            fast[k] = _mm512_cmplt_epu64_mask(_mm512_sub_epi64(a[k], low), span);
            rare[k] = _mm512_mask_test_epi64_mask((__mmask8)~fast[k], a[k], a[k]);
            any_rare |= rare[k];
        }
        /* a NaN or infinity is outside the fast range: only then look */
        if (any_rare) {
            __mmask8 bad = 0;
            for (size_t k = 0; k < ns; k++)
                bad |= _mm512_cmpge_epu64_mask(a[k], inf);
            if (bad)
                return i; /* none of this vector was added */
        }
        __m512i a1 = _mm512_loadu_si512(m1 + i), a2 = _mm512_loadu_si512(m2 + i);
        for (size_t k = 0; k < ns; k++) {
            /* the significand (v & mant) | hidden, 0 outside the fast
             * range, negated for a negative value: a signed 25-bit m */
            __m512i m = _mm512_maskz_ternarylogic_epi64(fast[k], v[k], mant, hidden, 0xea);
            m = _mm512_mask_sub_epi64(m, _mm512_test_epi64_mask(v[k], sign), zero, m);
            __m512i prod = _mm512_mul_epi32(m, vw[k]); /* |prod| < 2^55 */
            /* (hi:lo) = prod * 2^(e - 65) as a 128-bit two's complement
             * number: an arithmetic shift makes hi the sign's extension
             * (count 64: all sign); a zero product moves nothing */
            __m512i e = _mm512_srli_epi64(a[k], 23);
            __m512i lo = _mm512_sllv_epi64(prod, _mm512_sub_epi64(e, e65));
            __m512i hi = _mm512_srav_epi64(prod, _mm512_sub_epi64(e129, e));
            a1 = _mm512_add_epi64(a1, lo);
            __mmask8 carry = _mm512_cmplt_epu64_mask(a1, lo);
            a2 = _mm512_add_epi64(a2, hi);
            a2 = _mm512_mask_add_epi64(a2, carry, a2, one);
        }
        _mm512_storeu_si512(m1 + i, a1);
        _mm512_storeu_si512(m2 + i, a2);
        if (__builtin_expect(any_rare != 0, 0)) {
            for (size_t k = 0; k < ns; k++)
                rare_out[k] = rare[k];
            return i + 8;
        }
    }
    return i;
}

/* The run above with the number of updates a constant, so that the
 * compiler unrolls the loops over them and keeps everything in registers. */
S_AVX512 __attribute__((noinline)) static size_t
s_fedavg_run_avx512(gb_aggregator_t *agg, const float *const *src, const uint64_t *wt, size_t ns,
                    size_t j0, size_t i, size_t n, unsigned flip, unsigned *rare)
{
    _Static_assert(S_FEDAVG_BATCH == 4, "one case per batch size");
    switch (ns) {
    case 1:
        return s_fedavg_run_avx512_n(agg, src, wt, 1, j0, i, n, flip, rare);
    case 2:
        return s_fedavg_run_avx512_n(agg, src, wt, 2, j0, i, n, flip, rare);
    case 3:
        return s_fedavg_run_avx512_n(agg, src, wt, 3, j0, i, n, flip, rare);
    default:
        return s_fedavg_run_avx512_n(agg, src, wt, 4, j0, i, n, flip, rare);
    }
}
#endif

#if defined(__x86_64__)
/* One run of a vector kernel: adds vectors of `width` parameters from i
 * while none holds a rare value (see s_fedavg_run_avx512_n); returns where
 * it stopped, with rare[] set when it stopped after a vector that held one. */
typedef size_t (*s_fedavg_run_fn)(gb_aggregator_t *agg, const float *const *src,
                                  const uint64_t *wt, size_t ns, size_t j0, size_t i, size_t n,
                                  unsigned flip, unsigned *rare);

/* Adds with a vector kernel over [j0, j0 + n): its runs, the rare values of
 * the vector each run stopped after, and the tail through the portable
 * kernel. The runs make no call, so their constants stay in registers; the
 * rare values' scalar path is called from here, between runs. Returns as
 * s_fedavg_add_scalar does. */
static size_t s_fedavg_add_vector(gb_aggregator_t *agg, s_fedavg_run_fn run, size_t width,
                                  const float *const *src, const uint64_t *wt, size_t ns,
                                  size_t j0, size_t n, unsigned flip)
{
    size_t i = 0;
    for (;;) {
        unsigned rare[S_FEDAVG_BATCH_MAX] = {0}, any_rare = 0;
        i = run(agg, src, wt, ns, j0, i, n, flip, rare);
        for (size_t k = 0; k < ns; k++)
            any_rare |= rare[k];
        if (!any_rare)
            break;
        s_fedavg_rare_vector(agg, src, wt, ns, j0 + i - width, rare, flip);
    }
    if (i + width <= n)
        return i; /* the vector at i holds a NaN or infinity: not added */
    if (i == n)
        return n;
    /* the tail, under one vector */
    return i + s_fedavg_add_scalar(agg, src, wt, ns, j0 + i, n - i, flip);
}
#endif

#if defined(__x86_64__)
/* A run of gb_bins_add_run_avx2 over the round's bins. */
static size_t s_fedavg_run_bins(gb_aggregator_t *agg, const float *const *src, const uint64_t *wt,
                                size_t ns, size_t j0, size_t i, size_t n, unsigned flip,
                                unsigned *rare)
{
    return gb_bins_add_run_avx2(agg->bins, src, wt, ns, j0, i, n, flip, rare);
}

/* The binned kernel's adds of updates src[0..ns) over [j0, j0 + n), as
 * s_fedavg_add promises. More updates than one run holds
 * (GB_BINS_MAX_UPDATES) are added tile by tile, a group of them at a time
 * while the tile's bins stay in L1. A NaN or infinity that stops a group
 * inside a tile: the groups before it take back what they added from there,
 * so every update was added over the same [j0, j0 + d). */
static size_t s_fedavg_add_binned(gb_aggregator_t *agg, const float *const *src,
                                  const uint64_t *wt, size_t ns, size_t j0, size_t n,
                                  unsigned flip)
{
    if (ns <= GB_BINS_MAX_UPDATES)
        return s_fedavg_add_vector(agg, s_fedavg_run_bins, 8, src, wt, ns, j0, n, flip);
    for (size_t t0 = 0; t0 < n; t0 += S_BINS_TILE) {
        const size_t len = n - t0 < S_BINS_TILE ? n - t0 : S_BINS_TILE;
        for (size_t g = 0; g < ns; g += GB_BINS_MAX_UPDATES) {
            const size_t gn = ns - g < GB_BINS_MAX_UPDATES ? ns - g : GB_BINS_MAX_UPDATES;
            const size_t d = s_fedavg_add_vector(agg, s_fedavg_run_bins, 8, src + g, wt + g, gn,
                                                 j0 + t0, len, flip);
            if (d == len)
                continue;
            for (size_t h = 0; h < g; h += GB_BINS_MAX_UPDATES)
                s_fedavg_add_vector(agg, s_fedavg_run_bins, 8, src + h, wt + h,
                                    GB_BINS_MAX_UPDATES, j0 + t0 + d, len - d, !flip);
            return t0 + d;
        }
    }
    return n;
}
#endif

/* The kernels FedAvg's add can use, in the order of preference. */
enum { S_KERNEL_PORTABLE, S_KERNEL_AVX2, S_KERNEL_AVX512 };
static const char *const s_kernel_names[] = {"portable", "avx2", "avx512"};

/* The best kernel this CPU runs. */
static int s_kernel_best(void)
{
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl"))
        return S_KERNEL_AVX512;
    if (__builtin_cpu_supports("avx2"))
        return S_KERNEL_AVX2;
#endif
    return S_KERNEL_PORTABLE;
}

/* Which kernel adds: -1 not chosen yet, else an S_KERNEL_*. */
static int s_kernel = -1;

static int s_kernel_choice(void)
{
    if (s_kernel < 0)
        s_kernel = s_kernel_best();
    return s_kernel;
}

const char *gb_agg_kernel(void)
{
    return s_kernel_names[s_kernel_choice()];
}

int gb_agg_kernel_force(const char *name, gb_error_t *err)
{
    if (!name) {
        s_kernel = -1;
        return 0;
    }
    const int best = s_kernel_best();
    for (int k = S_KERNEL_PORTABLE; k <= S_KERNEL_AVX512; k++) {
        if (strcmp(name, s_kernel_names[k]) != 0)
            continue;
        if (k > best)
            return gb_error_set(err, GB_EINVAL, "aggregation kernel %s: this CPU runs at most %s",
                                name, s_kernel_names[best]);
        s_kernel = k;
        return 0;
    }
    return gb_error_set(err, GB_EINVAL,
                        "aggregation kernel '%s': expected portable, avx2 or avx512", name);
}

/* Adds updates src[0..ns) (ns <= agg->batch, weights wt) over
 * parameters [j0, j0 + n) (flip 1: subtracts them) with this CPU's kernel.
 * Returns d: every update was added over [j0, j0 + d), and d < n only when
 * one of them holds a NaN or infinity at or soon after j0 + d. */
static size_t s_fedavg_add(gb_aggregator_t *agg, const float *const *src, const uint64_t *wt,
                           size_t ns, size_t j0, size_t n, unsigned flip)
{
#if defined(__x86_64__)
    uint64_t heaviest = 0;
    for (size_t k = 0; k < ns; k++)
        heaviest = wt[k] > heaviest ? wt[k] : heaviest;
    if (agg->binned && heaviest <= GB_BINS_MAX_WEIGHT)
        return s_fedavg_add_binned(agg, src, wt, ns, j0, n, flip);
    if (agg->kernel == S_KERNEL_AVX512 && heaviest <= INT32_MAX)
        return s_fedavg_add_vector(agg, s_fedavg_run_avx512, 8, src, wt, ns, j0, n, flip);
#endif
    return s_fedavg_add_scalar(agg, src, wt, ns, j0, n, flip);
}

/* The limbs finish reads: (l2[j]:l1[j]) is parameter j's (m2:m1), which
 * are agg->m1 and agg->m2 themselves, or in a binned round's blocks where
 * m1 and m2 hold nothing, the bins folded in place (s_fedavg_finish). */
typedef struct {
    const uint64_t *l1, *l2;
} s_limbs_t;

/* Parameter j's whole sum S = M + H * 2^128 as a gb_exact_sum_t. */
static void s_fedavg_exact(const gb_aggregator_t *agg, s_limbs_t m, size_t j, gb_exact_sum_t *s)
{
    uint64_t sign = -(m.l2[j] >> 63);
    s->limb[0] = agg->m0[j];
    s->limb[1] = m.l1[j];
    s->limb[2] = m.l2[j];
    s->limb[3] = sign;
    s->limb[4] = sign;
    const uint64_t *h = agg->h + 3 * j;
    uint64_t carry = 0;
    for (int i = 0; i < 3; i++) {
        uint64_t sum = s->limb[2 + i] + h[i];
        uint64_t c = sum < h[i];
        sum += carry;
        c |= sum < carry;
        s->limb[2 + i] = sum;
        carry = c;
    }
}

/* The correctly rounded mean of (m2:m1) * 2^-85 / w, when a double
 * division decides it: true with *out, false when the exact path must. */
static bool s_fast_mean(uint64_t m1, uint64_t m2, uint64_t w, float *out)
{
    if (!m1 && !m2) {
        *out = 0.0f; /* an exact zero sum: +0, as gb_exact_sum_mean gives */
        return true;
    }
    bool neg = m2 >> 63;
    uint64_t lo = m1, hi = m2;
    if (neg) { /* magnitude, |N| < 2^127 */
        lo = ~lo + 1;
        hi = ~hi + (lo == 0);
    }
    /* d = |N| within 3 * 2^-53 relative, q within 4 * 2^-53 relative: less
     * than 8 units in the last place of q (2^-52 of its binade) */
    double d = (double)(int64_t)hi * 0x1p64 + (double)lo; /* hi < 2^63 */
    double q = d / (double)w * 0x1p-85;
    if (!(q >= 0x1p-125))
        return false; /* near or in float32's subnormals: the exact path */
    /* float32 keeps 24 of the double's 53 significant bits; the 29 dropped
     * ones say how far q lies from a rounding boundary (half of 2^29). */
    uint64_t qb;
    memcpy(&qb, &q, sizeof qb);
    uint64_t r = qb & ((UINT64_C(1) << 29) - 1);
    if (r > (UINT64_C(1) << 28) - 64 && r < (UINT64_C(1) << 28) + 64)
        return false;
    float f = (float)q;
    *out = neg ? -f : f;
    return true;
}

/* Parameter j's mean: through s_fast_mean when it decides it, else exact. */
static float s_fedavg_mean_one(const gb_aggregator_t *agg, s_limbs_t m, size_t j)
{
    bool cold = agg->cold[j / S_COLD_BLOCK] &&
                (agg->m0[j] || (agg->h[3 * j] | agg->h[3 * j + 1] | agg->h[3 * j + 2]));
    float f;
    if (!cold && s_fast_mean(m.l1[j], m.l2[j], agg->weight, &f))
        return f;
    gb_exact_sum_t s;
    s_fedavg_exact(agg, m, j, &s);
    return gb_exact_sum_mean(&s, agg->weight);
}

#if defined(__x86_64__)
/* s_fast_mean 8 parameters at a time. The quotient is d * (2^-85 / w)
 * with 1 / w rounded once: within 5 * 2^-53 relative of the true one, under
 * 10 units in its last place, still far inside the 64 units the boundary
 * test keeps clear. Lanes it cannot decide, and lanes whose m0 or H hold
 * anything, go through s_fedavg_mean_one. */
S_AVX512 static void s_fedavg_finish_avx512(const gb_aggregator_t *agg, s_limbs_t m, float *out,
                                             size_t j0, size_t p)
{
    const __m512d two64 = _mm512_set1_pd(0x1p64), tiny = _mm512_set1_pd(0x1p-125);
    const __m512d rs = _mm512_set1_pd(ldexp(1.0 / (double)agg->weight, -85));
    const __m512i one = _mm512_set1_epi64(1), rmask = _mm512_set1_epi64((1 << 29) - 1);
    const __m512i rlow = _mm512_set1_epi64((1 << 28) - 63), rspan = _mm512_set1_epi64(127);
    const __m256i sign = _mm256_set1_epi32((int)0x80000000u);
    size_t j = j0;
    for (; j + 8 <= p; j += 8) {
        __m512i a1 = _mm512_loadu_si512(m.l1 + j), a2 = _mm512_loadu_si512(m.l2 + j);
        __mmask8 neg = _mm512_movepi64_mask(a2);
        __mmask8 zero = _mm512_testn_epi64_mask(_mm512_or_si512(a1, a2),
                                                _mm512_or_si512(a1, a2));
        /* magnitude: -(a2:a1) = (-a2 - (a1 != 0) : -a1) */
        __m512i lo = _mm512_mask_sub_epi64(a1, neg, _mm512_setzero_si512(), a1);
        __m512i hi = _mm512_mask_sub_epi64(a2, neg, _mm512_setzero_si512(), a2);
        hi = _mm512_mask_sub_epi64(hi, neg & _mm512_test_epi64_mask(a1, a1), hi, one);
        __m512d d = _mm512_fmadd_pd(_mm512_cvtepu64_pd(hi), two64, _mm512_cvtepu64_pd(lo));
        __m512d q = _mm512_mul_pd(d, rs);
        __m512i r = _mm512_and_si512(_mm512_castpd_si512(q), rmask);
        __mmask8 slow = _mm512_cmplt_epu64_mask(_mm512_sub_epi64(r, rlow), rspan) |
                        _mm512_cmp_pd_mask(q, tiny, _CMP_LT_OQ);
        slow &= (__mmask8)~zero;
        if (agg->cold[j / S_COLD_BLOCK]) /* lanes whose m0 or H hold something */
            for (unsigned k = 0; k < 8; k++) {
                const uint64_t *h = agg->h + 3 * (j + k);
                if (agg->m0[j + k] | h[0] | h[1] | h[2])
                    slow |= (__mmask8)(1u << k);
            }
        __m256i f = _mm256_castps_si256(_mm512_cvtpd_ps(q));
        f = _mm256_mask_or_epi32(f, neg, f, sign);
        f = _mm256_maskz_mov_epi32((__mmask8)~zero, f); /* an exact zero sum: +0 */
        _mm256_storeu_si256((__m256i *)(out + j), f);
        for (; slow; slow &= (__mmask8)(slow - 1)) {
            unsigned lane = (unsigned)__builtin_ctz(slow);
            out[j + lane] = s_fedavg_mean_one(agg, m, j + lane);
        }
    }
    for (; j < p; j++)
        out[j] = s_fedavg_mean_one(agg, m, j);
}
#endif

#if defined(__x86_64__)
/* x (each lane < 2^64) as doubles, correctly rounded: AVX2 has no such
 * conversion, so each 32-bit half becomes a double exactly (under the
 * exponent of 2^52, then 2^52 taken away) and one fused step rounds once. */
__attribute__((target("avx2,fma"))) static __m256d s_u64_to_pd(__m256i x)
{
    const __m256i magic = _mm256_set1_epi64x(0x4330000000000000ll); /* 2^52 */
    const __m256d magic_pd = _mm256_set1_pd(0x1p52), two32 = _mm256_set1_pd(0x1p32);
    const __m256i low32 = _mm256_set1_epi64x(0xffffffffll);
    __m256d hi = _mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(_mm256_srli_epi64(x, 32),
                                                                   magic)),
                               magic_pd);
    __m256d lo = _mm256_sub_pd(
        _mm256_castsi256_pd(_mm256_or_si256(_mm256_and_si256(x, low32), magic)), magic_pd);
    return _mm256_fmadd_pd(hi, two32, lo);
}

/* s_fedavg_finish_avx512's quotient 4 parameters at a time with AVX2
 * (target avx2,fma): the magnitude's halves converted correctly rounded
 * each, as the scalar path's casts are, so d keeps its 3 * 2^-53 bound and
 * the quotient the same 10 units of slack inside the boundary test's 64.
 * Lanes it cannot decide, and lanes whose m0 or H hold anything, go through
 * s_fedavg_mean_one. */
__attribute__((target("avx2,fma"))) static void
s_fedavg_finish_avx2(const gb_aggregator_t *agg, s_limbs_t m, float *out, size_t j0, size_t p)
{
    const __m256d two64 = _mm256_set1_pd(0x1p64), tiny = _mm256_set1_pd(0x1p-125);
    const __m256d rs = _mm256_set1_pd(ldexp(1.0 / (double)agg->weight, -85));
    const __m256i zero = _mm256_setzero_si256(), ones = _mm256_set1_epi64x(-1);
    const __m256i rmask = _mm256_set1_epi64x((1 << 29) - 1);
    const __m256i rlow = _mm256_set1_epi64x((1 << 28) - 63), rspan = _mm256_set1_epi64x(127);
    const __m256i low_halves = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    const __m128i sign = _mm_set1_epi32((int)0x80000000u);
    size_t j = j0;
    for (; j + 4 <= p; j += 4) {
        __m256i a1 = _mm256_loadu_si256((const __m256i *)(m.l1 + j));
        __m256i a2 = _mm256_loadu_si256((const __m256i *)(m.l2 + j));
        __m256i neg = _mm256_cmpgt_epi64(zero, a2);
        __m256i is_zero = _mm256_cmpeq_epi64(_mm256_or_si256(a1, a2), zero);
        /* magnitude: -(a2:a1) = (-a2 - (a1 != 0) : -a1) */
        __m256i lo = _mm256_blendv_epi8(a1, _mm256_sub_epi64(zero, a1), neg);
        __m256i hi = _mm256_blendv_epi8(a2, _mm256_sub_epi64(zero, a2), neg);
        __m256i borrow = _mm256_andnot_si256(_mm256_cmpeq_epi64(a1, zero), neg);
        hi = _mm256_add_epi64(hi, borrow); /* borrow lanes are -1 */
        __m256d d = _mm256_fmadd_pd(s_u64_to_pd(hi), two64, s_u64_to_pd(lo));
        __m256d q = _mm256_mul_pd(d, rs);
        /* r - rlow lies in (-2^29, 2^29): a signed test of [0, 127) */
        __m256i off = _mm256_sub_epi64(_mm256_and_si256(_mm256_castpd_si256(q), rmask), rlow);
        __m256i slow = _mm256_and_si256(_mm256_cmpgt_epi64(off, ones),
                                        _mm256_cmpgt_epi64(rspan, off));
        slow = _mm256_or_si256(slow, _mm256_castpd_si256(_mm256_cmp_pd(q, tiny, _CMP_LT_OQ)));
        unsigned slow_bits = (unsigned)_mm256_movemask_pd(
            _mm256_castsi256_pd(_mm256_andnot_si256(is_zero, slow)));
        if (agg->cold[j / S_COLD_BLOCK]) /* lanes whose m0 or H hold something */
            for (unsigned k = 0; k < 4; k++) {
                const uint64_t *h = agg->h + 3 * (j + k);
                if (agg->m0[j + k] | h[0] | h[1] | h[2])
                    slow_bits |= 1u << k;
            }
        __m128i f = _mm_castps_si128(_mm256_cvtpd_ps(q));
        __m128i neg32 = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(neg, low_halves));
        __m128i zero32 =
            _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(is_zero, low_halves));
        f = _mm_or_si128(f, _mm_and_si128(neg32, sign));
        f = _mm_andnot_si128(zero32, f); /* an exact zero sum: +0 */
        _mm_storeu_si128((__m128i *)(out + j), f);
        for (; slow_bits; slow_bits &= slow_bits - 1) {
            unsigned lane = (unsigned)__builtin_ctz(slow_bits);
            out[j + lane] = s_fedavg_mean_one(agg, m, j + lane);
        }
    }
    for (; j < p; j++)
        out[j] = s_fedavg_mean_one(agg, m, j);
}
#endif

/* The means of parameters [j0, p) from the limbs m into out[j0, p). */
static void s_fedavg_finish_limbs(const gb_aggregator_t *agg, s_limbs_t m, float *out, size_t j0,
                                  size_t p)
{
#if defined(__x86_64__)
    if (agg->kernel == S_KERNEL_AVX512) {
        s_fedavg_finish_avx512(agg, m, out, j0, p);
        return;
    }
    if (agg->kernel == S_KERNEL_AVX2 && __builtin_cpu_supports("fma")) {
        s_fedavg_finish_avx2(agg, m, out, j0, p);
        return;
    }
#endif
    for (size_t j = j0; j < p; j++)
        out[j] = s_fedavg_mean_one(agg, m, j);
}

/* The means of parameters [j0, p) into out[j0, p) (j0 starts a cold
 * block). A binned round's bins are folded first, block by block: into m1
 * and m2 where those hold something, else in place into the bins' own
 * words, which then serve as the limbs (the next begin clears them). */
static void s_fedavg_finish(gb_aggregator_t *agg, float *out, size_t j0, size_t p)
{
    s_limbs_t limbs = {agg->m1, agg->m2};
    if (!agg->binned) {
        s_fedavg_finish_limbs(agg, limbs, out, j0, p);
        return;
    }
    for (size_t b0 = j0; b0 < p; b0 += S_COLD_BLOCK) {
        size_t b1 = p - b0 < S_COLD_BLOCK ? p : b0 + S_COLD_BLOCK;
        if (agg->limbs_dirty || agg->cold[b0 / S_COLD_BLOCK]) {
            gb_bins_fold(agg->bins, agg->m1, agg->m2, b0, b1, 1);
            s_fedavg_finish_limbs(agg, limbs, out, b0, b1);
        } else {
            gb_bins_fold(agg->bins, agg->bins.lo, agg->bins.mid, b0, b1, 0);
            s_fedavg_finish_limbs(agg, (s_limbs_t){agg->bins.lo, agg->bins.mid}, out, b0, b1);
        }
    }
}

/* Zeroes the cold parts where a rare value landed, and the flags. */
static void s_fedavg_clear_cold(gb_aggregator_t *agg)
{
    size_t blocks = (agg->acc_cap + S_COLD_BLOCK - 1) / S_COLD_BLOCK;
    for (size_t b = 0; b < blocks; b++) {
        if (!agg->cold[b])
            continue;
        size_t j0 = b * S_COLD_BLOCK;
        size_t len = agg->acc_cap - j0 < S_COLD_BLOCK ? agg->acc_cap - j0 : S_COLD_BLOCK;
        memset(agg->m0 + j0, 0, len * sizeof *agg->m0);
        memset(agg->h + 3 * j0, 0, 3 * len * sizeof *agg->h);
        memset(agg->m1 + j0, 0, len * sizeof *agg->m1); /* a binned round's */
        memset(agg->m2 + j0, 0, len * sizeof *agg->m2);
        agg->cold[b] = 0;
    }
}

/* Makes the update buffers of a model of p parameters, or drops them for a
 * small one. They only make adding faster: without memory for them, updates
 * are added at once, with the same result. */
static void s_fedavg_buffers(gb_aggregator_t *agg, size_t p)
{
    bool want = p >= S_FEDAVG_BUFFER_MIN && agg->max_clients > 1;
    size_t kept = agg->batch - 1;
    /* kept: as many as this round's batch keeps (they are allocated from 0) */
    if (want && agg->buf_cap >= p && agg->buf[kept - 1] &&
        (kept == S_FEDAVG_BATCH_MAX - 1 || !agg->buf[kept]))
        return;
    for (int k = 0; k < S_FEDAVG_BATCH_MAX - 1; k++) {
        gb_free(agg->buf[k]);
        agg->buf[k] = NULL;
    }
    agg->buf_cap = 0;
    if (!want)
        return;
    for (size_t k = 0; k < kept; k++) {
        if (!(agg->buf[k] = gb_malloc(p * sizeof(float)))) {
            for (size_t j = 0; j <= k; j++) {
                gb_free(agg->buf[j]);
                agg->buf[j] = NULL;
            }
            return;
        }
        /* zeros: what gb_aggregator_add_take may hand out before any update
         * took a buffer's place */
        memset(agg->buf[k], 0, p * sizeof(float));
    }
    agg->buf_cap = p;
}

/* Copies x[0..n) into dst, in the same pass telling whether any is NaN or
 * infinite. */
static bool s_copy_finite(float *restrict dst, const float *restrict x, size_t n)
{
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &x[i], sizeof bits);
        bad |= (uint32_t)((bits & 0x7f800000u) == 0x7f800000u);
        dst[i] = x[i];
    }
    return bad == 0;
}

/* ---- FedAvg's passes, split over the aggregator's threads ------------------ */

/* Thread i of count's share [lo, hi) of [0, p): whole S_COLD_BLOCK blocks, so
 * that no two threads write one cold flag (or one cache line of the sums). */
static void s_share(size_t p, int i, int count, size_t *lo, size_t *hi)
{
    size_t blocks = (p + S_COLD_BLOCK - 1) / S_COLD_BLOCK;
    size_t a = blocks * (size_t)i / (size_t)count * S_COLD_BLOCK;
    size_t b = blocks * (size_t)(i + 1) / (size_t)count * S_COLD_BLOCK;
    *lo = a < p ? a : p;
    *hi = b < p ? b : p;
}

/* One pass's arguments, and what each share found. */
typedef struct {
    gb_aggregator_t *agg;
    const float *const *src; /* add: the updates */
    const uint64_t *wt;      /* add: their weights */
    size_t ns;               /* add: how many */
    size_t p;                /* parameters */
    float *dst;              /* copy: where to; finish: the means */
    const float *from;       /* copy: the update */
    size_t done[GB_AGG_MAX_THREADS]; /* add: share i added [lo, done[i]) */
    bool finite[GB_AGG_MAX_THREADS]; /* copy: share i held no NaN or infinity */
} s_pass_t;

static void s_add_share(void *arg, int i, int count)
{
    s_pass_t *ps = arg;
    size_t lo, hi;
    s_share(ps->p, i, count, &lo, &hi);
    ps->done[i] = hi > lo ? lo + s_fedavg_add(ps->agg, ps->src, ps->wt, ps->ns, lo, hi - lo, 0)
                          : lo;
}

static void s_undo_share(void *arg, int i, int count)
{
    s_pass_t *ps = arg;
    size_t lo, hi;
    s_share(ps->p, i, count, &lo, &hi);
    if (ps->done[i] > lo)
        s_fedavg_add(ps->agg, ps->src, ps->wt, ps->ns, lo, ps->done[i] - lo, 1);
}

/* Folds a binned round's bins into m1 and m2 and empties them, so that they
 * take GB_BINS_MAX_ADDS more adds (a round of more updates than that). */
static void s_fedavg_empty_bins(gb_aggregator_t *agg, size_t p)
{
    gb_bins_fold(agg->bins, agg->m1, agg->m2, 0, p, 1);
    memset(agg->bins.lo, 0, p * sizeof *agg->bins.lo);
    memset(agg->bins.mid, 0, p * sizeof *agg->bins.mid);
    memset(agg->bins.hi, 0, p * sizeof *agg->bins.hi);
    agg->limbs_dirty = true;
    agg->bin_adds = 0;
}

/* Adds src[0..ns) over all p parameters. Returns p, or the first index of a
 * vector holding a NaN or infinity in some update: then nothing was added
 * (what any share added is subtracted again, which restores every bit). */
static size_t s_fedavg_add_all(gb_aggregator_t *agg, const float *const *src,
                               const uint64_t *wt, size_t ns, size_t p)
{
    if (agg->binned) {
        /* room in the bins for this pass and for taking it back */
        if (agg->bin_adds + 2 * ns > GB_BINS_MAX_ADDS)
            s_fedavg_empty_bins(agg, p);
        agg->bin_adds += 2 * ns;
    }
    if (!agg->pool || p < S_SPLIT_MIN) {
        size_t done = s_fedavg_add(agg, src, wt, ns, 0, p, 0);
        if (done < p)
            s_fedavg_add(agg, src, wt, ns, 0, done, 1);
        return done;
    }
    s_pass_t ps = {.agg = agg, .src = src, .wt = wt, .ns = ns, .p = p};
    gb_pool_run(agg->pool, s_add_share, &ps);
    const int count = gb_pool_size(agg->pool);
    size_t bad = p;
    for (int i = 0; i < count; i++) {
        size_t lo, hi;
        s_share(p, i, count, &lo, &hi);
        if (ps.done[i] < hi && ps.done[i] < bad)
            bad = ps.done[i]; /* the shares before it are whole */
    }
    if (bad < p)
        gb_pool_run(agg->pool, s_undo_share, &ps);
    return bad;
}

static void s_copy_share(void *arg, int i, int count)
{
    s_pass_t *ps = arg;
    size_t lo, hi;
    s_share(ps->p, i, count, &lo, &hi);
    ps->finite[i] = s_copy_finite(ps->dst + lo, ps->from + lo, hi - lo);
}

/* s_copy_finite over all p values, each thread its share. */
static bool s_copy_finite_all(gb_aggregator_t *agg, float *dst, const float *x, size_t p)
{
    if (!agg->pool || p < S_SPLIT_MIN)
        return s_copy_finite(dst, x, p);
    s_pass_t ps = {.agg = agg, .p = p, .dst = dst, .from = x};
    gb_pool_run(agg->pool, s_copy_share, &ps);
    bool finite = true;
    for (int i = 0; i < gb_pool_size(agg->pool); i++)
        finite = finite && ps.finite[i];
    return finite;
}

static void s_check_share(void *arg, int i, int count)
{
    s_pass_t *ps = arg;
    size_t lo, hi;
    s_share(ps->p, i, count, &lo, &hi);
    ps->finite[i] = !s_nonfinite(ps->from + lo, hi - lo);
}

/* True when all of x[0..p) are finite, each thread checking its share. */
static bool s_finite_all(gb_aggregator_t *agg, const float *x, size_t p)
{
    if (!agg->pool || p < S_SPLIT_MIN)
        return !s_nonfinite(x, p);
    s_pass_t ps = {.agg = agg, .p = p, .from = x};
    gb_pool_run(agg->pool, s_check_share, &ps);
    bool finite = true;
    for (int i = 0; i < gb_pool_size(agg->pool); i++)
        finite = finite && ps.finite[i];
    return finite;
}

static void s_finish_share(void *arg, int i, int count)
{
    s_pass_t *ps = arg;
    size_t lo, hi;
    s_share(ps->p, i, count, &lo, &hi);
    s_fedavg_finish(ps->agg, ps->dst, lo, hi);
}

/* The means of all p parameters into out, each thread its share. */
static void s_fedavg_finish_all(gb_aggregator_t *agg, float *out, size_t p)
{
    if (!agg->pool || p < S_SPLIT_MIN) {
        s_fedavg_finish(agg, out, 0, p);
        return;
    }
    s_pass_t ps = {.agg = agg, .p = p, .dst = out};
    gb_pool_run(agg->pool, s_finish_share, &ps);
}

/* Drops the kept updates that hold a NaN or an infinity, which only one
 * given through gb_aggregator_add_take_finite by a caller that broke its
 * promise can: logged as an error, its weight taken out of the round.
 * Returns how many it dropped. Their buffers stay the aggregator's. */
__attribute__((cold)) static size_t s_fedavg_drop_nonfinite_kept(gb_aggregator_t *agg)
{
    size_t dropped = 0;
    for (size_t k = 0; k < agg->n_buf;) {
        if (!s_nonfinite(agg->buf[k], agg->p)) {
            k++;
            continue;
        }
        gb_log_error("aggregator %s: round %llu: an update given as finite holds a NaN or an "
                     "infinity (value %zu); it is dropped (%llu samples)",
                     agg->name, (unsigned long long)agg->round,
                     s_first_nonfinite(agg->buf[k], agg->p), (unsigned long long)agg->buf_w[k]);
        agg->n--;
        agg->weight -= agg->buf_w[k];
        float *bad = agg->buf[k]; /* a spare now, past the kept ones */
        agg->buf[k] = agg->buf[agg->n_buf - 1];
        agg->buf_w[k] = agg->buf_w[agg->n_buf - 1];
        agg->buf[--agg->n_buf] = bad;
        dropped++;
    }
    return dropped;
}

/* Adds the kept updates and delta (when not NULL, weight w) in one pass.
 * Returns 0, or -1 when delta holds a NaN or an infinity: then nothing was
 * added and the kept updates are still kept. A kept update that holds one
 * (s_fedavg_drop_nonfinite_kept) is dropped and the pass made again. */
static int s_fedavg_pass(gb_aggregator_t *agg, const float *delta, uint64_t w, size_t *bad_at)
{
    for (;;) {
        const float *src[S_FEDAVG_BATCH_MAX];
        uint64_t wt[S_FEDAVG_BATCH_MAX];
        size_t ns = agg->n_buf;
        for (size_t k = 0; k < ns; k++) {
            src[k] = agg->buf[k];
            wt[k] = agg->buf_w[k];
        }
        if (delta) {
            src[ns] = delta;
            wt[ns++] = w;
        }
        if (!ns)
            return 0;
        size_t done = s_fedavg_add_all(agg, src, wt, ns, agg->p);
        if (done == agg->p) {
            agg->n_buf = 0;
            return 0;
        }
        if (!s_fedavg_drop_nonfinite_kept(agg)) {
            assert(delta); /* kept ones are finite, so the bad value is delta's */
            *bad_at = done;
            return -1;
        }
    }
}

/* Adds the buffered updates (the sums then hold every accepted update). */
static void s_fedavg_flush(gb_aggregator_t *agg)
{
    size_t bad_at;
    int rc = s_fedavg_pass(agg, NULL, 0, &bad_at);
    assert(rc == 0); /* without delta, a pass drops what it cannot add */
    (void)rc;
}

/* For a binned FedAvg round of p parameters, makes its bins ready: empty,
 * p of them. Without memory for them the round adds into m1 and m2
 * instead (binned false), with the same result. */
static void s_fedavg_begin_bins(gb_aggregator_t *agg, size_t p)
{
    agg->bin_adds = 0;
    if (agg->binned && agg->bins_cap >= p) {
        memset(agg->bins.lo, 0, p * sizeof *agg->bins.lo);
        memset(agg->bins.mid, 0, p * sizeof *agg->bins.mid);
        memset(agg->bins.hi, 0, p * sizeof *agg->bins.hi);
        return;
    }
    if (!agg->binned)
        return;
    gb_bins_t bins = {gb_alloc_aligned(p * sizeof(uint64_t)), NULL, NULL};
    if (bins.lo)
        bins.mid = gb_alloc_aligned(p * sizeof(uint64_t));
    if (bins.mid)
        bins.hi = gb_alloc_aligned(p * sizeof(uint64_t));
    if (!bins.hi) {
        gb_free_aligned(bins.lo);
        gb_free_aligned(bins.mid);
        agg->binned = false;
        return;
    }
    gb_free_aligned(agg->bins.lo);
    gb_free_aligned(agg->bins.mid);
    gb_free_aligned(agg->bins.hi);
    agg->bins = bins; /* zeroed by gb_alloc_aligned */
    agg->bins_cap = p;
}

int gb_aggregator_begin(gb_aggregator_t *agg, uint64_t round, size_t param_count, gb_error_t *err)
{
    if (param_count < 1 || param_count > GB_AGG_MAX_PARAMS)
        return gb_error_set(err, GB_EINVAL,
                            "aggregator: round %llu: param_count %zu outside 1..%zu",
                            (unsigned long long)round, param_count, GB_AGG_MAX_PARAMS);
    if (agg->spec.rule == GB_AGG_FEDAVG) {
        agg->kernel = s_kernel_choice();
        agg->binned = agg->kernel == S_KERNEL_AVX2 && gb_bins_supported();
        if (agg->acc_cap < param_count) {
            /* New before free: a failure leaves the open round intact. The
             * cold parts come from calloc, whose large blocks are fresh
             * zero pages that cost no memory until a rare value lands. */
            size_t p = param_count;
            uint64_t *m1 = gb_alloc_aligned(p * sizeof *m1);
            uint64_t *m2 = m1 ? gb_alloc_aligned(p * sizeof *m2) : NULL;
            uint64_t *m0 = m2 ? gb_calloc(p, sizeof *m0) : NULL;
            uint64_t *h = m0 ? gb_calloc(p, 3 * sizeof *h) : NULL;
            uint8_t *cold = h ? gb_calloc((p + S_COLD_BLOCK - 1) / S_COLD_BLOCK, 1) : NULL;
            if (!cold) {
                gb_free_aligned(m1);
                gb_free_aligned(m2);
                gb_free(m0);
                gb_free(h);
                return gb_error_set(err, GB_ENOMEM,
                                    "aggregator: round %llu: out of memory for %zu sums",
                                    (unsigned long long)round, param_count);
            }
            gb_free_aligned(agg->m1);
            gb_free_aligned(agg->m2);
            gb_free(agg->m0);
            gb_free(agg->h);
            gb_free(agg->cold);
            agg->m1 = m1;
            agg->m2 = m2;
            agg->m0 = m0;
            agg->h = h;
            agg->cold = cold;
            agg->acc_cap = p;
        } else if (agg->limbs_dirty) {
            /* a binned round reads m1 and m2 only in cold blocks, so they
             * must be clear everywhere else, beyond this round's size too */
            size_t clear = agg->binned ? agg->acc_cap : param_count;
            memset(agg->m1, 0, clear * sizeof *agg->m1);
            memset(agg->m2, 0, clear * sizeof *agg->m2);
            s_fedavg_clear_cold(agg);
        } else {
            s_fedavg_clear_cold(agg);
        }
        s_fedavg_begin_bins(agg, param_count);
        /* a round not binned writes m1 and m2 everywhere */
        agg->limbs_dirty = !agg->binned;
        agg->batch = !agg->binned                         ? S_FEDAVG_BATCH
                     : param_count >= S_BINS_LARGE_MIN ? S_FEDAVG_BATCH_BINS_LARGE
                                                       : S_FEDAVG_BATCH_BINS;
        agg->n_buf = 0;
        s_fedavg_buffers(agg, param_count);
    }
    if (agg->open && agg->n)
        gb_log_info("aggregator %s: round %llu begun again; %zu updates of round %llu dropped",
                    agg->name, (unsigned long long)round, agg->n,
                    (unsigned long long)agg->round);
    agg->round = round;
    agg->p = param_count;
    agg->open = true;
    agg->n = 0;
    agg->weight = 0;
    agg->n_selected = 0;
    return 0;
}

/* Makes room for one more kept update (robust rules). Buffers only grow; one
 * that grew before another failed is merely bigger, so a failure changes
 * nothing the round can see. */
static int s_reserve(gb_aggregator_t *agg, gb_error_t *err)
{
    size_t want = agg->n + 1, p = agg->p;
    size_t target = agg->n * 2 > 4 ? agg->n * 2 : 4;
    if (target < want)
        target = want;
    if (target > agg->max_clients)
        target = agg->max_clients;
    if (p > SIZE_MAX / sizeof(float) / target)
        goto nomem;
    if (agg->weights_cap < want) {
        uint64_t *w = gb_realloc(agg->weights, target * sizeof *w);
        if (!w)
            goto nomem;
        agg->weights = w;
        agg->weights_cap = target;
    }
    if (agg->rows_cap < want * p) {
        float *rows = gb_realloc(agg->rows, target * p * sizeof *rows);
        if (!rows)
            goto nomem;
        agg->rows = rows;
        agg->rows_cap = target * p;
    }
    size_t need = gb_robust_work_bytes(agg->spec.rule, want);
    if (agg->work_cap < need) {
        size_t bytes = gb_robust_work_bytes(agg->spec.rule, target);
        if (bytes == SIZE_MAX)
            goto nomem;
        void *work = gb_malloc(bytes); /* contents are scratch: no copy */
        if (!work)
            goto nomem;
        gb_free(agg->work);
        agg->work = work;
        agg->work_cap = bytes;
    }
    return 0;
nomem:
    return gb_error_set(err, GB_ENOMEM, "aggregator: round %llu: out of memory keeping update %zu",
                        (unsigned long long)agg->round, want);
}

/* gb_aggregator_add and gb_aggregator_add_take: take is NULL, or where the
 * caller's buffer (delta) is, so that FedAvg may keep it instead of a copy. */
static int s_add(gb_aggregator_t *agg, const float *delta, float **take, bool finite,
                 size_t param_count, uint64_t num_samples, gb_error_t *err)
{
    unsigned long long round = (unsigned long long)agg->round;
    if (!agg->open)
        return gb_error_set(err, GB_EINVAL,
                            "aggregator: no round open (add before begin or after finish)");
    if (!delta)
        return gb_error_set(err, GB_EINVAL, "aggregator: round %llu: no delta given", round);
    if (param_count != agg->p)
        return gb_error_warn(err, GB_ESHAPE, "round %llu: update has %zu parameters, expected %zu",
                             round, param_count, agg->p);
    if (num_samples == 0)
        return gb_error_warn(err, GB_EINVAL, "round %llu: update has num_samples 0 (must be >= 1)",
                             round);
    if (num_samples > GB_AGG_MAX_WEIGHT - agg->weight)
        return gb_error_warn(err, GB_ERANGE,
                             "round %llu: num_samples %llu would take the round's total past %llu "
                             "(now %llu)",
                             round, (unsigned long long)num_samples,
                             (unsigned long long)GB_AGG_MAX_WEIGHT,
                             (unsigned long long)agg->weight);
    if (agg->n >= agg->max_clients)
        return gb_error_warn(err, GB_ERANGE, "round %llu: already %zu updates, the maximum", round,
                             agg->n);
    if (agg->spec.rule == GB_AGG_FEDAVG) {
        /* One pass that checks as it adds (a separate check would read the
         * update from memory once more). It stops before the first NaN or
         * infinity and the values before it are taken back: the sums are
         * exact integers, so subtracting the same values restores every
         * bit, and the refusal changes nothing. */
        if (agg->buf_cap && agg->n_buf < agg->batch - 1 && take) {
            /* kept, in place of a buffer of ours, for one pass with the
             * next ones; nothing is added yet */
            if (!finite && !s_finite_all(agg, delta, param_count))
                return s_refuse_nonfinite(err, round, delta, 0);
            *take = agg->buf[agg->n_buf];
            agg->buf[agg->n_buf] = (float *)delta; /* the caller's: ours now */
            if (agg->buf_cap > param_count) /* what the smallest buffer holds */
                agg->buf_cap = param_count;
            agg->buf_w[agg->n_buf++] = num_samples;
        } else if (agg->buf_cap && agg->n_buf < agg->batch - 1) {
            /* copied, for one pass with the next ones; nothing is added yet */
            if (!s_copy_finite_all(agg, agg->buf[agg->n_buf], delta, param_count))
                return s_refuse_nonfinite(err, round, delta, 0);
            agg->buf_w[agg->n_buf++] = num_samples;
        } else {
            size_t bad_at;
            if (s_fedavg_pass(agg, delta, num_samples, &bad_at) != 0)
                return s_refuse_nonfinite(err, round, delta, bad_at);
        }
    } else {
        if (s_nonfinite(delta, param_count))
            return s_refuse_nonfinite(err, round, delta, 0);
        int rc = s_reserve(agg, err);
        if (rc)
            return rc;
        memcpy(agg->rows + agg->n * param_count, delta, param_count * sizeof *delta);
        agg->weights[agg->n] = num_samples;
    }
    agg->n++;
    agg->weight += num_samples;
    return 0;
}

int gb_aggregator_add(gb_aggregator_t *agg, const float *delta, size_t param_count,
                      uint64_t num_samples, gb_error_t *err)
{
    return s_add(agg, delta, NULL, false, param_count, num_samples, err);
}

/* gb_aggregator_add_take and gb_aggregator_add_take_finite. */
static int s_add_take(gb_aggregator_t *agg, float **delta, bool finite, size_t param_count,
                      uint64_t num_samples, gb_error_t *err)
{
    if (!delta)
        return gb_error_set(err, GB_EINVAL, "aggregator: round %llu: no delta given",
                            (unsigned long long)agg->round);
    return s_add(agg, *delta, delta, finite, param_count, num_samples, err);
}

int gb_aggregator_add_take(gb_aggregator_t *agg, float **delta, size_t param_count,
                           uint64_t num_samples, gb_error_t *err)
{
    return s_add_take(agg, delta, false, param_count, num_samples, err);
}

int gb_aggregator_add_take_finite(gb_aggregator_t *agg, float **delta, size_t param_count,
                                  uint64_t num_samples, gb_error_t *err)
{
    return s_add_take(agg, delta, true, param_count, num_samples, err);
}

int gb_aggregator_finish(gb_aggregator_t *agg, float *out, size_t param_count, gb_error_t *err)
{
    unsigned long long round = (unsigned long long)agg->round;
    if (!agg->open)
        return gb_error_set(err, GB_EINVAL, "aggregator: no round open to finish");
    if (!out || param_count != agg->p)
        return gb_error_set(err, GB_EINVAL,
                            "aggregator: round %llu: output of %zu floats, expected %zu", round,
                            param_count, agg->p);
    if (agg->spec.rule == GB_AGG_FEDAVG)
        s_fedavg_flush(agg); /* first: it may drop a kept update that broke its promise */
    if (agg->n == 0)
        return gb_error_set(err, GB_EINVAL, "round %llu: no update to aggregate", round);
    if (agg->n < agg->min_updates)
        return gb_error_set(err, GB_EINVAL, "round %llu: %s needs at least %zu updates, got %zu",
                            round, agg->name, agg->min_updates, agg->n);
    if (agg->spec.rule == GB_AGG_FEDAVG) {
        s_fedavg_finish_all(agg, out, param_count);
    } else {
        size_t n_sel = 0;
        int rc = gb_robust_aggregate(&agg->spec, agg->rows, agg->weights, agg->n, agg->p, out,
                                     agg->selected, &n_sel, agg->work, err);
        if (rc)
            return rc;
        agg->n_selected = n_sel;
    }
    agg->open = false;
    if (s_is_krum(agg->spec.rule))
        gb_log_info("aggregator %s: round %llu: %zu updates (%llu samples), chose %zu, best is "
                    "update %zu",
                    agg->name, round, agg->n, (unsigned long long)agg->weight, agg->n_selected,
                    agg->selected[0]);
    else
        gb_log_info("aggregator %s: round %llu: %zu updates (%llu samples)", agg->name, round,
                    agg->n, (unsigned long long)agg->weight);
    return 0;
}

const char *gb_aggregator_name(const gb_aggregator_t *agg)
{
    return agg->name;
}

gb_agg_spec_t gb_aggregator_spec(const gb_aggregator_t *agg)
{
    return agg->spec;
}

size_t gb_aggregator_max_clients(const gb_aggregator_t *agg)
{
    return agg->max_clients;
}

size_t gb_aggregator_min_updates(const gb_aggregator_t *agg)
{
    return agg->min_updates;
}

uint64_t gb_aggregator_round(const gb_aggregator_t *agg)
{
    return agg->round;
}

size_t gb_aggregator_param_count(const gb_aggregator_t *agg)
{
    return agg->p;
}

int gb_aggregator_is_open(const gb_aggregator_t *agg)
{
    return agg->open;
}

size_t gb_aggregator_updates(const gb_aggregator_t *agg)
{
    return agg->n;
}

uint64_t gb_aggregator_weight(const gb_aggregator_t *agg)
{
    return agg->weight;
}

size_t gb_aggregator_selected(const gb_aggregator_t *agg, size_t *idx, size_t cap)
{
    if (idx)
        for (size_t i = 0; i < agg->n_selected && i < cap; i++)
            idx[i] = agg->selected[i];
    return agg->n_selected;
}
