/* FedAvg's binned double sums (fedavg_bins.h says why they are exact). */
#include "fedavg_bins.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* The bins' units: hi counts 2^-8, mid 2^-47, lo 2^-85 (aggregate.c's
 * (m2:m1) unit); the kernel's constants and gb_bins_fold's scales are
 * these. */
#define S_HI_UNIT_LOG2 (-8)
#define S_MID_UNIT_LOG2 (-47)
#define S_LO_UNIT_LOG2 (-85)

int gb_bins_supported(void)
{
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

#if defined(__x86_64__)
#define S_AVX2 __attribute__((target("avx2,fma")))

/* Keeps a vector constant in a register across the loop (GCC would rebuild
 * broadcast constants from immediates every vector). */
#define S_IN_REGISTER(x) __asm__("" : "+x"(x))

/* w * x split into the three bins' pieces: x * w is exact, the first add
 * rounds it to a multiple of 2^-8, the second r to one of 2^-47, and the
 * subtractions are exact. */
S_AVX2 static inline __attribute__((always_inline)) void
s_split(__m256d x, __m256d w, __m256d c_hi, __m256d c_mid, __m256d *lo, __m256d *mid,
        __m256d *hi)
{
    __m256d p = _mm256_mul_pd(x, w); /* non-destructive, unlike the FMAs: no copies */
    __m256d h = _mm256_sub_pd(_mm256_add_pd(p, c_hi), c_hi);
    __m256d r = _mm256_sub_pd(p, h); /* |r| <= 2^-9 */
    __m256d m = _mm256_sub_pd(_mm256_add_pd(r, c_mid), c_mid);
    *hi = h;
    *mid = m;
    *lo = _mm256_sub_pd(r, m);
}

/* The 8 values from at of updates x[k] (k < ns), those outside the fast range
 * made zero, into masked[k], and those lanes into rare[k] (a bit a lane).
 * Returns 1, and nothing else, when one of the values is a NaN or an
 * infinity. Out of line: a vector holding a rare value is rare. */
__attribute__((noinline, cold)) static int s_rare_lanes(const float *const *x, size_t at,
                                                        size_t ns, float masked[][8],
                                                        unsigned *rare)
{
    for (size_t k = 0; k < ns; k++)
        for (unsigned lane = 0; lane < 8; lane++)
            if (!isfinite(x[k][at + lane]))
                return 1;
    for (size_t k = 0; k < ns; k++) {
        rare[k] = 0;
        for (unsigned lane = 0; lane < 8; lane++) {
            float v = x[k][at + lane], a = fabsf(v);
            int fast = (a >= 0x1p-62f && a < 4.0f) || v == 0.0f;
            masked[k][lane] = fast ? v : 0.0f;
            rare[k] |= (unsigned)!fast << lane;
        }
    }
    return 0;
}

/* The bins of 4 parameters from lo, mid, hi += the values x[k][at..at+4) of
 * updates k < ns times w[k]. The updates' pieces are summed before they
 * meet the bins (every partial sum is exact, so the order is free). */
S_AVX2 static inline __attribute__((always_inline)) void
s_add_four(double *lo, double *mid, double *hi, const float *const *x, size_t at,
           const __m256d *w, const size_t ns, __m256d c_hi, __m256d c_mid)
{
    __m256d l[GB_BINS_MAX_UPDATES], m[GB_BINS_MAX_UPDATES], h[GB_BINS_MAX_UPDATES];
    _Pragma("GCC unroll 8")
    for (size_t k = 0; k < ns; k++)
        s_split(_mm256_cvtps_pd(_mm_loadu_ps(x[k] + at)), w[k], c_hi, c_mid, &l[k], &m[k], &h[k]);
    _Pragma("GCC unroll 8")
    for (size_t k = 1; k < ns; k++) {
        l[0] = _mm256_add_pd(l[0], l[k]);
        m[0] = _mm256_add_pd(m[0], m[k]);
        h[0] = _mm256_add_pd(h[0], h[k]);
    }
    _mm256_storeu_pd(lo, _mm256_add_pd(_mm256_loadu_pd(lo), l[0]));
    _mm256_storeu_pd(mid, _mm256_add_pd(_mm256_loadu_pd(mid), m[0]));
    _mm256_storeu_pd(hi, _mm256_add_pd(_mm256_loadu_pd(hi), h[0]));
}

/* s_add_four for values of 2^-24 or more (or zero), the common case: w * x
 * is then a multiple of 2^-47 already, so its rest after hi is mid's piece
 * whole and lo's would be zero (what s_split gives too). */
S_AVX2 static inline __attribute__((always_inline)) void
s_add_four_coarse(double *mid, double *hi, const float *const *x, size_t at, const __m256d *w,
                  const size_t ns, __m256d c_hi)
{
    __m256d m = _mm256_loadu_pd(mid), h = _mm256_loadu_pd(hi);
    _Pragma("GCC unroll 8")
    for (size_t k = 0; k < ns; k++) {
        __m256d p = _mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps(x[k] + at)), w[k]);
        __m256d ph = _mm256_sub_pd(_mm256_add_pd(p, c_hi), c_hi);
        h = _mm256_add_pd(h, ph);
        m = _mm256_add_pd(m, _mm256_sub_pd(p, ph));
    }
    _mm256_storeu_pd(mid, m);
    _mm256_storeu_pd(hi, h);
}

S_AVX2 static inline __attribute__((always_inline)) size_t
s_run_n(gb_bins_t bins, const float *const *src, const uint64_t *wt, const size_t ns, size_t j0,
        size_t i, size_t n, unsigned flip, unsigned *rare_out)
{
    /* fast range 2^-62 <= |v| < 4: biased exponents 65..128, that is
     * (65 << 24) <= (bits << 1) <= hi_max as unsigned 32-bit numbers (the
     * shift drops the sign); zero passes as (bits << 1) - 1 = 2^32 - 1 */
    __m256i hi_max = _mm256_set1_epi32((int)((129u << 24) - 1)), lo_min = _mm256_set1_epi32((65 << 24) - 1);
    __m256d c_hi = _mm256_set1_pd(0x1.8p52 * 0x1p-8), c_mid = _mm256_set1_pd(0x1.8p52 * 0x1p-47);
    S_IN_REGISTER(hi_max);
    S_IN_REGISTER(lo_min);
    __m256i coarse_min = _mm256_set1_epi32((103 << 24) - 1);
    S_IN_REGISTER(coarse_min);
    S_IN_REGISTER(c_hi);
    S_IN_REGISTER(c_mid);
    __m256d w[GB_BINS_MAX_UPDATES];
    _Pragma("GCC unroll 8")
    for (size_t k = 0; k < ns; k++) {
        w[k] = _mm256_set1_pd(flip ? -(double)wt[k] : (double)wt[k]);
        S_IN_REGISTER(w[k]);
    }
    double *lo = (double *)(void *)(bins.lo + j0), *mid = (double *)(void *)(bins.mid + j0);
    double *hi = (double *)(void *)(bins.hi + j0);
    const float *x[GB_BINS_MAX_UPDATES];
    _Pragma("GCC unroll 8")
    for (size_t k = 0; k < ns; k++)
        x[k] = src[k] + j0;
    for (; i + 8 <= n; i += 8) {
        /* per lane, the largest (bits << 1) and the smallest (bits << 1) - 1
         * over the updates: 4 operations an update, 5 a vector */
        __m256i top = _mm256_setzero_si256(), bottom = _mm256_set1_epi32(-1);
        _Pragma("GCC unroll 8")
        for (size_t k = 0; k < ns; k++) {
            __m256i a =
                _mm256_slli_epi32(_mm256_loadu_si256((const __m256i *)(const void *)(x[k] + i)), 1);
            top = _mm256_max_epu32(top, a);
            bottom = _mm256_min_epu32(bottom, _mm256_add_epi32(a, _mm256_set1_epi32(-1)));
        }
        __m256i quiet = _mm256_and_si256(_mm256_cmpeq_epi32(_mm256_min_epu32(top, hi_max), top),
                                         _mm256_cmpeq_epi32(_mm256_max_epu32(bottom, lo_min), bottom));
        if (__builtin_expect(_mm256_movemask_ps(_mm256_castsi256_ps(quiet)) != 0xff, 0)) {
            /* the rare values made zero here; the caller adds them */
            float masked[GB_BINS_MAX_UPDATES][8] __attribute__((aligned(32)));
            const float *mx[GB_BINS_MAX_UPDATES];
            if (s_rare_lanes(x, i, ns, masked, rare_out))
                return i; /* a NaN or infinity: none of this vector was added */
            _Pragma("GCC unroll 8")
            for (size_t k = 0; k < ns; k++)
                mx[k] = masked[k];
            s_add_four(lo + i, mid + i, hi + i, mx, 0, w, ns, c_hi, c_mid);
            s_add_four(lo + i + 4, mid + i + 4, hi + i + 4, mx, 4, w, ns, c_hi, c_mid);
            return i + 8;
        }
        /* lanes whose values are all 2^-24 or more (biased exponent 103) or zero */
        unsigned coarse = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(
            _mm256_cmpeq_epi32(_mm256_max_epu32(bottom, coarse_min), bottom)));
        if ((coarse & 0xfu) == 0xfu)
            s_add_four_coarse(mid + i, hi + i, x, i, w, ns, c_hi);
        else
            s_add_four(lo + i, mid + i, hi + i, x, i, w, ns, c_hi, c_mid);
        if ((coarse >> 4) == 0xfu)
            s_add_four_coarse(mid + i + 4, hi + i + 4, x, i + 4, w, ns, c_hi);
        else
            s_add_four(lo + i + 4, mid + i + 4, hi + i + 4, x, i + 4, w, ns, c_hi, c_mid);
    }
    return i;
}

/* One case per number of updates, so that the loops over them unroll and
 * everything stays in registers. */
S_AVX2 size_t gb_bins_add_run_avx2(gb_bins_t bins, const float *const *src, const uint64_t *wt,
                                   size_t ns, size_t j0, size_t i, size_t n, unsigned flip,
                                   unsigned *rare_out)
{
    _Static_assert(GB_BINS_MAX_UPDATES == 8, "one case per number of updates");
    switch (ns) {
    case 1:
        return s_run_n(bins, src, wt, 1, j0, i, n, flip, rare_out);
    case 2:
        return s_run_n(bins, src, wt, 2, j0, i, n, flip, rare_out);
    case 3:
        return s_run_n(bins, src, wt, 3, j0, i, n, flip, rare_out);
    case 4:
        return s_run_n(bins, src, wt, 4, j0, i, n, flip, rare_out);
    case 5:
        return s_run_n(bins, src, wt, 5, j0, i, n, flip, rare_out);
    case 6:
        return s_run_n(bins, src, wt, 6, j0, i, n, flip, rare_out);
    case 7:
        return s_run_n(bins, src, wt, 7, j0, i, n, flip, rare_out);
    default:
        return s_run_n(bins, src, wt, 8, j0, i, n, flip, rare_out);
    }
}
#else
size_t gb_bins_add_run_avx2(gb_bins_t bins, const float *const *src, const uint64_t *wt,
                            size_t ns, size_t j0, size_t i, size_t n, unsigned flip,
                            unsigned *rare_out)
{
    (void)bins, (void)src, (void)wt, (void)ns, (void)j0, (void)n, (void)flip, (void)rare_out;
    return i; /* never called: gb_bins_supported is 0 */
}
#endif

/* A bin's double (an integer number of units below 2^51) as that integer:
 * per_unit is 2^-unit_log2, so the product and the conversion are exact. */
static int64_t s_units(uint64_t word, double per_unit)
{
    double d;
    memcpy(&d, &word, sizeof d);
    return (int64_t)(d * per_unit);
}

/* gb_bins_fold of parameter j alone. */
static void s_fold_one(gb_bins_t bins, uint64_t *l1, uint64_t *l2, size_t j, int accumulate)
{
    /* in units of 2^-85: lo as it is, mid shifted by 38, hi by 77 (modulo
     * 2^128: the sum itself fits) */
    unsigned __int128 sum =
        (unsigned __int128)(__int128)s_units(bins.lo[j], 0x1p85) +
        ((unsigned __int128)(__int128)s_units(bins.mid[j], 0x1p47)
         << (S_MID_UNIT_LOG2 - S_LO_UNIT_LOG2)) +
        ((unsigned __int128)(__int128)s_units(bins.hi[j], 0x1p8)
         << (S_HI_UNIT_LOG2 - S_LO_UNIT_LOG2));
    if (accumulate)
        sum += ((unsigned __int128)l2[j] << 64) | l1[j];
    l1[j] = (uint64_t)sum;
    l2[j] = (uint64_t)(sum >> 64);
}

#if defined(__x86_64__)
/* The bins' doubles (integers of units below 2^51 once scaled) as 64-bit
 * integers: x + 1.5 * 2^52 holds the integer in its low bits exactly. */
S_AVX2 static inline __attribute__((always_inline)) __m256i s_units_avx2(__m256d x, __m256d scale)
{
    const __m256d magic = _mm256_set1_pd(0x1.8p52);
    return _mm256_sub_epi64(_mm256_castpd_si256(_mm256_fmadd_pd(x, scale, magic)),
                            _mm256_castpd_si256(magic));
}

/* (hi:lo) + (b_hi:b_lo), 128-bit, 4 lanes: the carry is an unsigned
 * compare, made signed by moving both sides by 2^63. */
S_AVX2 static inline __attribute__((always_inline)) void s_add128(__m256i *lo, __m256i *hi,
                                                                  __m256i b_lo, __m256i b_hi)
{
    const __m256i bias = _mm256_set1_epi64x((long long)0x8000000000000000ull);
    __m256i sum = _mm256_add_epi64(*lo, b_lo);
    __m256i carry = _mm256_cmpgt_epi64(_mm256_xor_si256(b_lo, bias), _mm256_xor_si256(sum, bias));
    *hi = _mm256_sub_epi64(_mm256_add_epi64(*hi, b_hi), carry); /* carry lanes are -1 */
    *lo = sum;
}

/* s_fold_one 4 parameters at a time from j0; returns where it stopped. */
S_AVX2 static size_t s_fold_avx2(gb_bins_t bins, uint64_t *l1, uint64_t *l2, size_t j0,
                                 size_t j1, int accumulate)
{
    const __m256d per_lo = _mm256_set1_pd(0x1p85), per_mid = _mm256_set1_pd(0x1p47);
    const __m256d per_hi = _mm256_set1_pd(0x1p8);
    const __m256i two51 = _mm256_set1_epi64x((long long)1 << 51);
    const __m256i two25 = _mm256_set1_epi64x((long long)1 << 25);
    size_t j = j0;
    for (; j + 4 <= j1; j += 4) {
        __m256i lo = s_units_avx2(_mm256_loadu_pd((const double *)(const void *)(bins.lo + j)), per_lo);
        __m256i mid = s_units_avx2(_mm256_loadu_pd((const double *)(const void *)(bins.mid + j)), per_mid);
        __m256i hi = s_units_avx2(_mm256_loadu_pd((const double *)(const void *)(bins.hi + j)), per_hi);
        /* lo, sign-extended to 128 bits */
        __m256i s_lo = lo, s_hi = _mm256_cmpgt_epi64(_mm256_setzero_si256(), lo);
        /* mid * 2^38: its high word is mid >> 26, arithmetic, which for
         * |mid| < 2^51 is ((mid + 2^51) >> 26) - 2^25 */
        __m256i mid_hi = _mm256_sub_epi64(_mm256_srli_epi64(_mm256_add_epi64(mid, two51), 26), two25);
        s_add128(&s_lo, &s_hi, _mm256_slli_epi64(mid, 38), mid_hi);
        /* hi * 2^77: nothing in the low word */
        s_hi = _mm256_add_epi64(s_hi, _mm256_slli_epi64(hi, 13));
        if (accumulate)
            s_add128(&s_lo, &s_hi, _mm256_loadu_si256((const __m256i *)(const void *)(l1 + j)),
                     _mm256_loadu_si256((const __m256i *)(const void *)(l2 + j)));
        _mm256_storeu_si256((__m256i *)(void *)(l1 + j), s_lo);
        _mm256_storeu_si256((__m256i *)(void *)(l2 + j), s_hi);
    }
    return j;
}
#endif

void gb_bins_fold(gb_bins_t bins, uint64_t *l1, uint64_t *l2, size_t j0, size_t j1,
                  int accumulate)
{
    size_t j = j0;
#if defined(__x86_64__)
    if (gb_bins_supported())
        j = s_fold_avx2(bins, l1, l2, j0, j1, accumulate);
#endif
    for (; j < j1; j++)
        s_fold_one(bins, l1, l2, j, accumulate);
}
