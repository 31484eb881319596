/* Divergence between explanation summaries (see divergence.h for the three
 * measures and their conventions).
 *
 * Each measure is computed so that equal inputs give exactly 0 (or an
 * overlap of exactly 1), not 1e-16: the cosine scales both vectors by their
 * largest magnitude and divides by sqrt(|a|^2 |b|^2), which for a == b is
 * |a|^2 exactly (the square root of a correctly rounded square is exact), and
 * Jensen-Shannon's terms are p log2(p / m) with m == p exactly when p == q.
 * Results are clamped into their ranges against the last bit of rounding. */
#include "explain/divergence.h"
#include "util/alloc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double s_max_abs(const double *v, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(v[i]) > m)
            m = fabs(v[i]);
    return m;
}

double gb_divergence_cosine(const double *a, const double *b, size_t n)
{
    double ma = s_max_abs(a, n), mb = s_max_abs(b, n);
    if (ma == 0 && mb == 0)
        return 0.0;
    if (ma == 0 || mb == 0)
        return 1.0;
    double dot = 0, na = 0, nb = 0;
    for (size_t i = 0; i < n; i++) {
        double x = a[i] / ma, y = b[i] / mb;
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    double c = dot / sqrt(na * nb);
    if (c > 1)
        c = 1;
    if (c < -1)
        c = -1;
    return 1.0 - c;
}

/* sum over i of p_i log2(p_i / m_i), p_i = |a_i| / sa, m_i = (p_i + q_i) / 2. */
static double s_kl_half(const double *a, double sa, const double *b, double sb, size_t n)
{
    double t = 0;
    for (size_t i = 0; i < n; i++) {
        double p = sa > 0 ? fabs(a[i]) / sa : 1.0 / (double)n;
        double q = sb > 0 ? fabs(b[i]) / sb : 1.0 / (double)n;
        if (p > 0)
            t += p * log2(p / (0.5 * (p + q)));
    }
    return t;
}

double gb_divergence_js(const double *a, const double *b, size_t n)
{
    if (n == 0)
        return 0.0;
    double sa = 0, sb = 0;
    for (size_t i = 0; i < n; i++) {
        sa += fabs(a[i]);
        sb += fabs(b[i]);
    }
    double js = 0.5 * s_kl_half(a, sa, b, sb, n) + 0.5 * s_kl_half(b, sb, a, sa, n);
    return js < 0 ? 0.0 : js > 1 ? 1.0 : js;
}

typedef struct {
    double v; /* value */
    size_t i; /* index */
} s_ranked_t;

/* Larger values first, then lower indices: a total order, so qsort's
 * instability cannot change the result. */
static int s_rank_cmp(const void *pa, const void *pb)
{
    const s_ranked_t *a = pa, *b = pb;
    if (a->v != b->v)
        return a->v > b->v ? -1 : 1;
    return a->i < b->i ? -1 : a->i > b->i;
}

static void s_rank(const double *v, size_t n, s_ranked_t *r)
{
    for (size_t i = 0; i < n; i++) {
        r[i].v = isnan(v[i]) ? -INFINITY : v[i];
        r[i].i = i;
    }
    qsort(r, n, sizeof *r, s_rank_cmp);
}

int gb_divergence_topk(const double *a, const double *b, size_t n, size_t k, double *overlap)
{
    if (k < 1 || k > n)
        return GB_EINVAL;
    s_ranked_t *r = gb_malloc(n * sizeof *r);
    unsigned char *in_a = gb_calloc(n, 1);
    if (!r || !in_a) {
        gb_free(r);
        gb_free(in_a);
        return GB_ENOMEM;
    }
    s_rank(a, n, r);
    for (size_t j = 0; j < k; j++)
        in_a[r[j].i] = 1;
    s_rank(b, n, r);
    size_t common = 0;
    for (size_t j = 0; j < k; j++)
        common += in_a[r[j].i];
    gb_free(r);
    gb_free(in_a);
    *overlap = (double)common / (double)k;
    return 0;
}

int gb_summary_divergence(const gb_summary_t *a, const gb_summary_t *b, int cls, int k,
                          gb_divergence_t *out, gb_error_t *err)
{
    gb_shape_t sa = gb_summary_shape(a), sb = gb_summary_shape(b);
    if (sa.rank != sb.rank || memcmp(sa.dim, sb.dim, sizeof sa.dim) != 0)
        return gb_error_set(err, GB_ESHAPE, "divergence: the summaries' map shapes differ");
    int nc = gb_summary_classes(a);
    if (nc != gb_summary_classes(b))
        return gb_error_set(err, GB_EINVAL, "divergence: %d and %d classes", nc,
                            gb_summary_classes(b));
    if (cls != GB_SUMMARY_ALL && (cls < 0 || cls >= nc))
        return gb_error_set(err, GB_EINVAL, "divergence: class %d outside 0..%d", cls, nc - 1);
    if (k < 1)
        return gb_error_set(err, GB_EINVAL, "divergence: k must be >= 1, got %d", k);
    int c0 = cls == GB_SUMMARY_ALL ? 0 : cls, c1 = cls == GB_SUMMARY_ALL ? nc : cls + 1;
    int used = 0;
    for (int c = c0; c < c1; c++)
        used += gb_summary_count(a, c) > 0 && gb_summary_count(b, c) > 0;
    if (used == 0)
        return cls == GB_SUMMARY_ALL
                   ? gb_error_set(err, GB_EINVAL, "divergence: no class has samples in both")
                   : gb_error_set(err, GB_EINVAL, "divergence: class %d has no samples in %s", cls,
                                  gb_summary_count(a, cls) ? "the second" : "the first");
    size_t cells = gb_summary_cells(a), n = (size_t)used * cells;
    double *buf = gb_malloc(4 * n * sizeof *buf);
    if (!buf)
        return gb_error_set(err, GB_ENOMEM, "divergence: out of memory");
    double *ma = buf, *mb = buf + n, *ia = buf + 2 * n, *ib = buf + 3 * n;
    int rc = 0;
    size_t off = 0;
    for (int c = c0; c < c1 && !rc; c++) {
        if (!gb_summary_count(a, c) || !gb_summary_count(b, c))
            continue;
        if ((rc = gb_summary_mean(a, c, ma + off, err)) ||
            (rc = gb_summary_mean(b, c, mb + off, err)) ||
            (rc = gb_summary_importance(a, c, ia + off, err)) ||
            (rc = gb_summary_importance(b, c, ib + off, err)))
            break;
        off += cells;
    }
    if (!rc) {
        size_t kk = (size_t)k < n ? (size_t)k : n;
        out->cosine_distance = gb_divergence_cosine(ma, mb, n);
        out->js_divergence = gb_divergence_js(ia, ib, n);
        out->k = (int)kk;
        out->classes = used;
        if ((rc = gb_divergence_topk(ia, ib, n, kk, &out->topk_overlap)))
            gb_error_set(err, rc, "divergence: out of memory");
    }
    gb_free(buf);
    return rc;
}
