/* The robust rules on a round's kept updates: coordinate-wise median and
 * trimmed mean (Yin et al. 2018), Krum and multi-Krum (Blanchard et al.
 * 2017). Pure arithmetic on a matrix and a caller-provided workspace, so the
 * aggregator (aggregate.c) decides when memory is taken and finish cannot
 * fail for want of it.
 *
 * Median and trimmed mean. Each value becomes a 32-bit key whose unsigned
 * order is the floats' total order (negative values flipped, -0 before +0):
 * comparisons are then integer compares, and which of two equal-comparing
 * floats ends up in the middle cannot depend on arrival order. Updates are
 * kept row by row (one per client); a column (one coordinate across
 * clients) is gathered for a block of coordinates at a time, so the
 * transposition reads each row sequentially. Each column is then cut with an
 * introselect: quickselect with a median-of-three pivot and a three-way
 * partition (many clients send identical values, e.g. zeros for a frozen
 * layer), falling back to a full sort when a hostile input makes it recurse
 * too deep; expected O(n) per coordinate, O(n log n) at worst. The trimmed
 * mean's kept values are summed exactly (gb_exact_sum_t), so their order
 * after selection does not matter.
 *
 * Krum. The n x n squared distances are computed once per pair, in double,
 * summed over coordinates in index order with four fixed partial sums (the
 * same arithmetic for a pair whatever the arrival order). Each update's
 * score is the sum of its n - F - 2 smallest distances to the others, added
 * in ascending order. Updates are ranked by score, then by content (the keys
 * of their values, lexicographically), then by weight: arrival order never
 * decides. Krum returns the best update itself; multi-Krum the exact
 * sample-weighted mean of the M best. */
#include "aggregate_robust.h"
#include "exact_sum.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define S_BLOCK 64     /* coordinates gathered per pass (median, trimmed mean) */
#define S_SMALL 16     /* ranges this short are insertion-sorted */

/* ---- keys: floats in total order as unsigned integers --------------------- */

static inline uint32_t s_key(float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

static inline float s_unkey(uint32_t k)
{
    uint32_t u = (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k;
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
}

static int s_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static int s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void s_insertion_sort(uint32_t *a, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        uint32_t v = a[i];
        size_t j = i;
        for (; j > 0 && a[j - 1] > v; j--)
            a[j] = a[j - 1];
        a[j] = v;
    }
}

static inline uint32_t s_median3(uint32_t a, uint32_t b, uint32_t c)
{
    if (a > b) {
        uint32_t t = a;
        a = b;
        b = t;
    }
    return c <= a ? a : (c >= b ? b : c);
}

/* Rearranges a[0..n) so that a[kth] is the value of rank kth, everything
 * before it <= and everything after it >= (nth_element). */
static void s_select(uint32_t *a, size_t n, size_t kth)
{
    size_t lo = 0, hi = n;
    int budget = 8;
    for (size_t m = n; m > 1; m >>= 1)
        budget += 2;
    while (hi - lo > S_SMALL) {
        if (budget-- == 0) {
            qsort(a + lo, hi - lo, sizeof *a, s_cmp_u32);
            return;
        }
        uint32_t pivot = s_median3(a[lo], a[lo + (hi - lo) / 2], a[hi - 1]);
        /* Three-way partition: [lo, lt) < pivot, [lt, i) == pivot, (gt, hi) > pivot. */
        size_t lt = lo, i = lo, gt = hi;
        while (i < gt) {
            uint32_t v = a[i];
            if (v < pivot) {
                a[i++] = a[lt];
                a[lt++] = v;
            } else if (v > pivot) {
                a[i] = a[--gt];
                a[gt] = v;
            } else {
                i++;
            }
        }
        if (kth < lt)
            hi = lt;
        else if (kth >= gt)
            lo = gt;
        else
            return;
    }
    s_insertion_sort(a + lo, hi - lo);
}

/* Median of the keys a[0..n) (rearranged): the middle value, or for even n
 * the mean of the two middle ones. */
static float s_median(uint32_t *a, size_t n)
{
    size_t h = n / 2;
    s_select(a, n, h);
    float upper = s_unkey(a[h]);
    if (n & 1)
        return upper;
    uint32_t lk = a[0];
    for (size_t i = 1; i < h; i++)
        if (a[i] > lk)
            lk = a[i];
    return (float)(((double)s_unkey(lk) + (double)upper) / 2);
}

/* Mean of the keys a[0..n) without the k smallest and k largest (n > 2k). */
static float s_trimmed(uint32_t *a, size_t n, size_t k)
{
    size_t keep = n - 2 * k;
    if (k > 0) {
        s_select(a, n, k);
        if (keep > 1)
            s_select(a + k + 1, n - k - 1, keep - 2);
    }
    gb_exact_sum_t sum;
    gb_exact_sum_clear(&sum);
    for (size_t i = k; i < k + keep; i++)
        gb_exact_sum_add(&sum, s_unkey(a[i]), 1);
    return gb_exact_sum_mean(&sum, keep);
}

static void s_coordinatewise(const gb_agg_spec_t *spec, const float *rows, size_t n, size_t p,
                             float *out, uint32_t *keys)
{
    /* floor(beta * n), forgiving the last bit of beta's decimal-to-binary
     * rounding (0.29 * 100 is 28.999999999999996 in double). */
    size_t k = spec->rule == GB_AGG_TRIMMED_MEAN ? (size_t)floor(spec->beta * (double)n + 1e-9) : 0;
    if (2 * k >= n) /* beta just below 0.5 and the allowance above */
        k = (n - 1) / 2;
    for (size_t j0 = 0; j0 < p; j0 += S_BLOCK) {
        size_t bw = p - j0 < S_BLOCK ? p - j0 : S_BLOCK;
        for (size_t i = 0; i < n; i++) {
            const float *row = rows + i * p + j0;
            for (size_t c = 0; c < bw; c++)
                keys[c * n + i] = s_key(row[c]);
        }
        for (size_t c = 0; c < bw; c++)
            out[j0 + c] = spec->rule == GB_AGG_MEDIAN ? s_median(keys + c * n, n)
                                                       : s_trimmed(keys + c * n, n, k);
    }
}

/* ---- Krum ------------------------------------------------------------------ */

/* Workspace layout for the Krum rules, all 8-byte items. */
typedef struct {
    double *dist;  /* n x n squared distances */
    double *near;  /* n: one update's distances to the others */
    double *score; /* n: Krum scores */
    size_t *order; /* n: ranking */
    size_t *tmp;   /* n: merge-sort buffer */
} s_krum_work_t;

static double s_sqdist(const float *a, const float *b, size_t p)
{
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t j = 0;
    for (; j + 4 <= p; j += 4) {
        double d0 = (double)a[j] - b[j], d1 = (double)a[j + 1] - b[j + 1];
        double d2 = (double)a[j + 2] - b[j + 2], d3 = (double)a[j + 3] - b[j + 3];
        s0 += d0 * d0;
        s1 += d1 * d1;
        s2 += d2 * d2;
        s3 += d3 * d3;
    }
    for (; j < p; j++) {
        double d = (double)a[j] - b[j];
        s0 += d * d;
    }
    return (s0 + s1) + (s2 + s3);
}

typedef struct {
    const float *rows;
    const uint64_t *weights;
    const double *score;
    size_t p;
} s_rank_ctx_t;

/* Orders updates i and j: lower score first, then content, then weight. */
static int s_rank_cmp(const s_rank_ctx_t *c, size_t i, size_t j)
{
    if (c->score[i] != c->score[j])
        return c->score[i] < c->score[j] ? -1 : 1;
    const float *a = c->rows + i * c->p, *b = c->rows + j * c->p;
    for (size_t k = 0; k < c->p; k++) {
        uint32_t x = s_key(a[k]), y = s_key(b[k]);
        if (x != y)
            return x < y ? -1 : 1;
    }
    return (c->weights[i] > c->weights[j]) - (c->weights[i] < c->weights[j]);
}

/* Stable bottom-up merge sort of idx[0..n) by s_rank_cmp; tmp holds n. */
static void s_rank_sort(const s_rank_ctx_t *c, size_t *idx, size_t *tmp, size_t n)
{
    for (size_t w = 1; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            size_t a = lo, b = mid, o = lo;
            while (a < mid && b < hi)
                tmp[o++] = s_rank_cmp(c, idx[b], idx[a]) < 0 ? idx[b++] : idx[a++];
            while (a < mid)
                tmp[o++] = idx[a++];
            while (b < hi)
                tmp[o++] = idx[b++];
        }
        memcpy(idx, tmp, n * sizeof *idx);
    }
}

static void s_krum(const gb_agg_spec_t *spec, const float *rows, const uint64_t *weights, size_t n,
                   size_t p, float *out, size_t *selected, size_t *n_selected, s_krum_work_t *w)
{
    for (size_t i = 0; i < n; i++) {
        w->dist[i * n + i] = 0;
        for (size_t j = i + 1; j < n; j++)
            w->dist[i * n + j] = w->dist[j * n + i] = s_sqdist(rows + i * p, rows + j * p, p);
    }
    size_t q = n - spec->f - 2; /* neighbours scored; >= 1 as n > 2F + 2 */
    for (size_t i = 0; i < n; i++) {
        size_t m = 0;
        for (size_t j = 0; j < n; j++)
            if (j != i)
                w->near[m++] = w->dist[i * n + j];
        qsort(w->near, m, sizeof *w->near, s_cmp_double);
        double s = 0;
        for (size_t t = 0; t < q; t++)
            s += w->near[t];
        w->score[i] = s;
        w->order[i] = i;
    }
    s_rank_ctx_t ctx = {rows, weights, w->score, p};
    s_rank_sort(&ctx, w->order, w->tmp, n);
    size_t m = spec->rule == GB_AGG_KRUM ? 1 : spec->m;
    if (selected)
        memcpy(selected, w->order, m * sizeof *selected);
    if (n_selected)
        *n_selected = m;
    if (spec->rule == GB_AGG_KRUM) {
        memcpy(out, rows + w->order[0] * p, p * sizeof *out);
        return;
    }
    uint64_t total = 0;
    for (size_t t = 0; t < m; t++)
        total += weights[w->order[t]];
    gb_exact_sum_t acc[S_BLOCK];
    for (size_t j0 = 0; j0 < p; j0 += S_BLOCK) {
        size_t bw = p - j0 < S_BLOCK ? p - j0 : S_BLOCK;
        for (size_t c = 0; c < bw; c++)
            gb_exact_sum_clear(&acc[c]);
        for (size_t t = 0; t < m; t++) {
            const float *row = rows + w->order[t] * p + j0;
            uint64_t wt = weights[w->order[t]];
            for (size_t c = 0; c < bw; c++)
                gb_exact_sum_add(&acc[c], row[c], wt);
        }
        for (size_t c = 0; c < bw; c++)
            out[j0 + c] = gb_exact_sum_mean(&acc[c], total);
    }
}

/* ---- entry points ---------------------------------------------------------- */

/* a * b + c bytes, or SIZE_MAX on overflow. */
static size_t s_muladd(size_t a, size_t b, size_t c)
{
    if (b && a > (SIZE_MAX - c) / b)
        return SIZE_MAX;
    return a * b + c;
}

size_t gb_robust_work_bytes(gb_agg_rule_t rule, size_t n)
{
    switch (rule) {
    case GB_AGG_MEDIAN:
    case GB_AGG_TRIMMED_MEAN:
        return s_muladd(n, S_BLOCK * sizeof(uint32_t), 0);
    case GB_AGG_KRUM:
    case GB_AGG_MULTI_KRUM: {
        size_t sq = s_muladd(n, n, 0);
        if (sq == SIZE_MAX || sq > SIZE_MAX - 4 * n)
            return SIZE_MAX;
        return s_muladd(sq + 4 * n, 8, 0); /* dist, near, score, order, tmp */
    }
    default:
        return 0;
    }
}

int gb_robust_aggregate(const gb_agg_spec_t *spec, const float *rows, const uint64_t *weights,
                        size_t n, size_t p, float *out, size_t *selected, size_t *n_selected,
                        void *work, gb_error_t *err)
{
    if (spec->rule == GB_AGG_FEDAVG)
        return gb_error_set(err, GB_EINVAL, "robust aggregate: fedavg is not a robust rule");
    if (n == 0 || p == 0)
        return gb_error_set(err, GB_EINVAL, "robust aggregate: %zu updates of %zu parameters", n,
                            p);
    size_t need = gb_agg_spec_min_updates(spec);
    if (n < need)
        return gb_error_set(err, GB_EINVAL, "robust aggregate: needs at least %zu updates, got %zu",
                            need, n);
    if (n_selected)
        *n_selected = 0;
    if (spec->rule == GB_AGG_MEDIAN || spec->rule == GB_AGG_TRIMMED_MEAN) {
        s_coordinatewise(spec, rows, n, p, out, work);
        return 0;
    }
    _Static_assert(sizeof(size_t) <= sizeof(double), "krum workspace packs size_t in 8 bytes");
    s_krum_work_t w;
    w.dist = work;
    w.near = w.dist + n * n;
    w.score = w.near + n;
    w.order = (size_t *)(void *)(w.score + n);
    w.tmp = w.order + n;
    s_krum(spec, rows, weights, n, p, out, selected, n_selected, &w);
    return 0;
}
