/* Explanation summaries in exact fixed point (see summary.h for the
 * representation, the clip and the overflow argument), their derived maps,
 * and summary.json.
 *
 * All sums live in one zeroed allocation of 8-byte words: counts and clipped
 * counts per class, then S, U, Q-high and Q-low per class and cell, so
 * clearing is one memset. The 128-bit sums of squares
 * are two uint64 words with a hand-carried carry: plain C11, no __int128.
 *
 * summary.json is built with jansson through util/json.h, which holds the
 * rules every Glassbox document follows (bad UTF-8 in a name becomes
 * U+FFFD, reals with 9 significant digits, keys in the order set); this
 * file refuses a NaN or an infinity itself, so the error names the value. */
#include "explain/summary.h"
#include "util/alloc.h"
#include "util/json.h"
#include "util/log.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define S_ONE ((int64_t)1 << GB_SUMMARY_FRAC_BITS) /* q of a value equal to clip */

struct gb_summary {
    gb_shape_t shape; /* map shape */
    size_t cells;     /* floats per map */
    int n_classes;    /* classes (groups) */
    double clip;      /* L2 clip of each map; also the fixed-point unit's scale */
    size_t words;     /* 8-byte words in block */
    uint64_t *block;  /* the one allocation below point into */
    int64_t *count;   /* n_classes samples per class */
    int64_t *clipped; /* n_classes samples scaled down by the clip */
    int64_t *sum;     /* n_classes x cells: S, sum of q */
    int64_t *abs_sum; /* n_classes x cells: U, sum of |q| */
    uint64_t *sq_hi;  /* n_classes x cells: Q high word */
    uint64_t *sq_lo;  /* n_classes x cells: Q low word */
};

/* ---- 128-bit helpers ---------------------------------------------------- */

static void s_u128_add(uint64_t *hi, uint64_t *lo, uint64_t bhi, uint64_t blo)
{
    uint64_t l = *lo + blo;
    *hi += bhi + (l < blo);
    *lo = l;
}

/* a < b for 128-bit (hi, lo) pairs. */
static bool s_u128_less(uint64_t ahi, uint64_t alo, uint64_t bhi, uint64_t blo)
{
    return ahi < bhi || (ahi == bhi && alo < blo);
}

static double s_u128_double(uint64_t hi, uint64_t lo)
{
    return (double)hi * 18446744073709551616.0 + (double)lo;
}

/* Is (n, S, U, Q) one class-cell that gb_summary_add could have produced?
 * |S| <= U <= n * 2^31 and Q <= n * 2^62 (n <= 2^31, so n * 2^62 < 2^93). */
static bool s_cell_valid(int64_t n, int64_t sum, int64_t abs_sum, uint64_t hi, uint64_t lo)
{
    if (n < 0 || n > GB_SUMMARY_MAX_COUNT || abs_sum < 0)
        return false;
    if (abs_sum > n * S_ONE)
        return false;
    if (sum > abs_sum || sum < -abs_sum)
        return false;
    uint64_t max_hi = (uint64_t)n >> 2, max_lo = ((uint64_t)n & 3u) << 62;
    return !s_u128_less(max_hi, max_lo, hi, lo);
}

/* ---- life cycle ---------------------------------------------------------- */

static void s_point(gb_summary_t *s)
{
    size_t nc = (size_t)s->n_classes, nd = nc * s->cells;
    s->count = (int64_t *)s->block;
    s->clipped = s->count + nc;
    s->sum = s->clipped + nc;
    s->abs_sum = s->sum + nd;
    s->sq_hi = (uint64_t *)(s->abs_sum + nd);
    s->sq_lo = s->sq_hi + nd;
}

gb_summary_t *gb_summary_new(const gb_shape_t *shape, int n_classes, double clip, gb_error_t *err)
{
    if (!shape || shape->rank < 1 || shape->rank > GB_SHAPE_MAX_RANK) {
        gb_error_set(err, GB_EINVAL, "summary: map rank must be 1..%d", GB_SHAPE_MAX_RANK);
        return NULL;
    }
    for (int i = 0; i < shape->rank; i++)
        if (shape->dim[i] < 1) {
            gb_error_set(err, GB_EINVAL, "summary: map dimension %d is %d", i, shape->dim[i]);
            return NULL;
        }
    if (n_classes < 1 || n_classes > GB_SUMMARY_MAX_CLASSES) {
        gb_error_set(err, GB_EINVAL, "summary: class count %d outside 1..%d", n_classes,
                     GB_SUMMARY_MAX_CLASSES);
        return NULL;
    }
    if (!isfinite(clip) || clip <= 0) {
        gb_error_set(err, GB_EINVAL, "summary: clip must be a finite number > 0, got %g", clip);
        return NULL;
    }
    size_t cells = 1;
    for (int i = 0; i < shape->rank; i++) {
        cells *= (size_t)shape->dim[i];
        if (cells > GB_SUMMARY_MAX_CELLS)
            break;
    }
    if (cells > GB_SUMMARY_MAX_CELLS / (size_t)n_classes) {
        gb_error_set(err, GB_ERANGE, "summary: %d classes x %zu cells exceed %zu", n_classes, cells,
                     GB_SUMMARY_MAX_CELLS);
        return NULL;
    }
    gb_summary_t *s = gb_calloc(1, sizeof *s);
    if (!s) {
        gb_error_set(err, GB_ENOMEM, "summary: out of memory");
        return NULL;
    }
    s->shape = *shape;
    for (int i = shape->rank; i < GB_SHAPE_MAX_RANK; i++)
        s->shape.dim[i] = 1;
    s->cells = cells;
    s->n_classes = n_classes;
    s->clip = clip;
    s->words = 2 * (size_t)n_classes + 4 * (size_t)n_classes * cells;
    s->block = gb_calloc(s->words, sizeof(uint64_t));
    if (!s->block) {
        gb_error_set(err, GB_ENOMEM, "summary: out of memory for %zu sums", s->words);
        gb_free(s);
        return NULL;
    }
    s_point(s);
    return s;
}

void gb_summary_destroy(gb_summary_t **s)
{
    if (!s || !*s)
        return;
    gb_free((*s)->block);
    gb_free(*s);
    *s = NULL;
}

/* ---- accessors ----------------------------------------------------------- */

gb_shape_t gb_summary_shape(const gb_summary_t *s)
{
    return s->shape;
}
size_t gb_summary_cells(const gb_summary_t *s)
{
    return s->cells;
}
int gb_summary_classes(const gb_summary_t *s)
{
    return s->n_classes;
}
static int64_t s_total(const gb_summary_t *s, const int64_t *per_class)
{
    int64_t t = 0;
    for (int c = 0; c < s->n_classes; c++)
        t += per_class[c];
    return t;
}

int64_t gb_summary_count(const gb_summary_t *s, int cls)
{
    if (cls == GB_SUMMARY_ALL)
        return s_total(s, s->count);
    return cls >= 0 && cls < s->n_classes ? s->count[cls] : 0;
}

int64_t gb_summary_clipped(const gb_summary_t *s, int cls)
{
    if (cls == GB_SUMMARY_ALL)
        return s_total(s, s->clipped);
    return cls >= 0 && cls < s->n_classes ? s->clipped[cls] : 0;
}

/* ---- adding ----------------------------------------------------------------- */

int gb_summary_add(gb_summary_t *s, const float *map, int cls, gb_error_t *err)
{
    if (cls < 0 || cls >= s->n_classes)
        return gb_error_set(err, GB_EINVAL, "summary: class %d outside 0..%d", cls,
                            s->n_classes - 1);
    if (s_total(s, s->count) >= GB_SUMMARY_MAX_COUNT)
        return gb_error_set(err, GB_ERANGE, "summary: more than %lld samples",
                            (long long)GB_SUMMARY_MAX_COUNT);
    double norm2 = 0;
    for (size_t i = 0; i < s->cells; i++) {
        if (!isfinite(map[i]))
            return gb_error_set(err, GB_ERANGE, "summary: attribution cell %zu is %g", i,
                                (double)map[i]);
        norm2 += (double)map[i] * (double)map[i];
    }
    double norm = sqrt(norm2);
    /* q = v * min(1, clip / norm) / clip * 2^31 */
    double k = (double)S_ONE / s->clip;
    bool clipped = norm > s->clip;
    if (clipped)
        k = (double)S_ONE / norm;
    size_t base = (size_t)cls * s->cells;
    for (size_t i = 0; i < s->cells; i++) {
        long long q = llround((double)map[i] * k);
        if (q > S_ONE)
            q = S_ONE;
        else if (q < -S_ONE)
            q = -S_ONE;
        uint64_t q2 = (uint64_t)(q * q); /* <= 2^62 */
        s->sum[base + i] += q;
        s->abs_sum[base + i] += q < 0 ? -q : q;
        s_u128_add(&s->sq_hi[base + i], &s->sq_lo[base + i], 0, q2);
    }
    s->count[cls]++;
    s->clipped[cls] += clipped;
    return 0;
}

/* ---- raw access ---------------------------------------------------------- */

int gb_summary_class_set(gb_summary_t *s, int cls, const gb_summary_class_t *in, gb_error_t *err)
{
    if (cls < 0 || cls >= s->n_classes)
        return gb_error_warn(err, GB_EINVAL, "summary: class %d outside 0..%d", cls,
                             s->n_classes - 1);
    if (in->count < 0 || in->count > GB_SUMMARY_MAX_COUNT || in->clipped < 0 ||
        in->clipped > in->count)
        return gb_error_warn(err, GB_ERANGE,
                             "summary: class %d: count %lld with %lld clipped is impossible", cls,
                             (long long)in->count, (long long)in->clipped);
    int64_t others = s_total(s, s->count) - s->count[cls];
    if (in->count > GB_SUMMARY_MAX_COUNT - others)
        return gb_error_warn(err, GB_ERANGE, "summary: class %d: %lld samples exceed %lld in all",
                             cls, (long long)in->count, (long long)GB_SUMMARY_MAX_COUNT);
    if (in->count > 0 && (!in->sum || !in->abs_sum || !in->sq_hi || !in->sq_lo))
        return gb_error_warn(err, GB_EINVAL, "summary: class %d: sums missing", cls);
    for (size_t i = 0; in->count > 0 && i < s->cells; i++)
        if (!s_cell_valid(in->count, in->sum[i], in->abs_sum[i], in->sq_hi[i], in->sq_lo[i]))
            return gb_error_warn(err, GB_ERANGE,
                                 "summary: class %d cell %zu: sums %lld, %lld are impossible "
                                 "for %lld samples",
                                 cls, i, (long long)in->sum[i], (long long)in->abs_sum[i],
                                 (long long)in->count);
    size_t base = (size_t)cls * s->cells, bytes = s->cells * sizeof(int64_t);
    s->count[cls] = in->count;
    s->clipped[cls] = in->clipped;
    if (in->count == 0) {
        memset(s->sum + base, 0, bytes);
        memset(s->abs_sum + base, 0, bytes);
        memset(s->sq_hi + base, 0, bytes);
        memset(s->sq_lo + base, 0, bytes);
        return 0;
    }
    memcpy(s->sum + base, in->sum, bytes);
    memcpy(s->abs_sum + base, in->abs_sum, bytes);
    memcpy(s->sq_hi + base, in->sq_hi, bytes);
    memcpy(s->sq_lo + base, in->sq_lo, bytes);
    return 0;
}

/* ---- derived maps -------------------------------------------------------- */

typedef enum { S_MEAN, S_VARIANCE, S_IMPORTANCE } s_derive_t;

static int s_derive(const gb_summary_t *s, int cls, s_derive_t what, double *out, gb_error_t *err)
{
    if (cls != GB_SUMMARY_ALL && (cls < 0 || cls >= s->n_classes))
        return gb_error_set(err, GB_EINVAL, "summary: class %d outside 0..%d", cls,
                            s->n_classes - 1);
    int c0 = cls == GB_SUMMARY_ALL ? 0 : cls, c1 = cls == GB_SUMMARY_ALL ? s->n_classes : cls + 1;
    int64_t n = 0;
    for (int c = c0; c < c1; c++)
        n += s->count[c];
    if (n == 0) {
        memset(out, 0, s->cells * sizeof *out);
        return 0;
    }
    const double unit = s->clip / (double)S_ONE, dn = (double)n;
    for (size_t i = 0; i < s->cells; i++) {
        /* Pooled sums are exact integers (bounded as in summary.h). */
        int64_t sum = 0, abs_sum = 0;
        uint64_t hi = 0, lo = 0;
        for (int c = c0; c < c1; c++) {
            size_t j = (size_t)c * s->cells + i;
            sum += s->sum[j];
            abs_sum += s->abs_sum[j];
            s_u128_add(&hi, &lo, s->sq_hi[j], s->sq_lo[j]);
        }
        double m = (double)sum / dn;
        switch (what) {
        case S_MEAN:
            out[i] = m * unit;
            break;
        case S_IMPORTANCE:
            out[i] = (double)abs_sum / dn * unit;
            break;
        case S_VARIANCE: {
            double v = s_u128_double(hi, lo) / dn - m * m;
            out[i] = v > 0 ? v * unit * unit : 0.0;
            break;
        }
        }
    }
    return 0;
}

int gb_summary_mean(const gb_summary_t *s, int cls, double *out, gb_error_t *err)
{
    return s_derive(s, cls, S_MEAN, out, err);
}

int gb_summary_variance(const gb_summary_t *s, int cls, double *out, gb_error_t *err)
{
    return s_derive(s, cls, S_VARIANCE, out, err);
}

int gb_summary_importance(const gb_summary_t *s, int cls, double *out, gb_error_t *err)
{
    return s_derive(s, cls, S_IMPORTANCE, out, err);
}

int gb_summary_importance_axes(const gb_summary_t *s, int cls, double *rows, double *cols,
                               gb_error_t *err)
{
    if (s->shape.rank != 2) {
        char b[64];
        return gb_error_set(err, GB_ESHAPE, "summary: importance axes need a rank-2 map, not %s",
                            gb_shape_format(&s->shape, b, sizeof b));
    }
    double *imp = gb_malloc(s->cells * sizeof *imp);
    if (!imp)
        return gb_error_set(err, GB_ENOMEM, "summary: out of memory");
    int rc = gb_summary_importance(s, cls, imp, err);
    if (rc) {
        gb_free(imp);
        return rc;
    }
    int R = s->shape.dim[0], K = s->shape.dim[1];
    if (rows)
        for (int r = 0; r < R; r++) {
            double t = 0;
            for (int k = 0; k < K; k++)
                t += imp[(size_t)r * K + k];
            rows[r] = t;
        }
    if (cols)
        for (int k = 0; k < K; k++) {
            double t = 0;
            for (int r = 0; r < R; r++)
                t += imp[(size_t)r * K + k];
            cols[k] = t;
        }
    gb_free(imp);
    return 0;
}

/* ---- JSON ---------------------------------------------------------------- */

/* The document under construction and its first failure: GB_ERANGE with
 * the value it was about, or GB_ENOMEM (jansson returned NULL). */
typedef struct {
    int rc;           /* first error, 0 while fine */
    const char *what; /* what the GB_ERANGE was about */
} s_doc_t;

/* o[key] = v, taking v; records GB_ENOMEM when jansson fails (v NULL or the
 * set refused), unless an earlier error is already recorded. */
static void s_set(s_doc_t *d, json_t *o, const char *key, json_t *v)
{
    if (json_object_set_new(o, key, v) != 0 && !d->rc)
        d->rc = GB_ENOMEM;
}

/* A finite real, or NULL with GB_ERANGE recorded for `what`. */
static json_t *s_real(s_doc_t *d, double v, const char *what)
{
    if (!isfinite(v)) {
        if (!d->rc) {
            d->rc = GB_ERANGE;
            d->what = what;
        }
        return NULL;
    }
    return gb_json_real(v);
}

static json_t *s_reals(s_doc_t *d, const double *v, size_t n, const char *what)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n && !d->rc; i++)
        if (json_array_append_new(a, s_real(d, v[i], what)) != 0 && !d->rc)
            d->rc = GB_ENOMEM;
    return a;
}

static json_t *s_shape_json(const gb_shape_t *shape)
{
    json_t *a = json_array();
    for (int i = 0; a && i < shape->rank; i++)
        if (json_array_append_new(a, json_integer(shape->dim[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

/* Sets the importance maps of class cls (or all) on o: "importance" and,
 * for sequences, "importance_time", "importance_features". */
static int s_json_importance(s_doc_t *d, json_t *o, const gb_summary_t *s, int cls,
                             bool sequence, double *buf, gb_error_t *err)
{
    int rc = gb_summary_importance(s, cls, buf, err);
    if (rc)
        return rc;
    s_set(d, o, "importance", s_reals(d, buf, s->cells, "importance"));
    if (!sequence || s->shape.rank != 2)
        return 0;
    double *cols = buf + s->shape.dim[0];
    if ((rc = gb_summary_importance_axes(s, cls, buf, cols, err)))
        return rc;
    s_set(d, o, "importance_time",
          s_reals(d, buf, (size_t)s->shape.dim[0], "importance over time"));
    s_set(d, o, "importance_features",
          s_reals(d, cols, (size_t)s->shape.dim[1], "importance over features"));
    return 0;
}

/* Class c's object, set on o's "classes" array (which it appends to). */
static int s_json_class(s_doc_t *d, json_t *classes, const gb_summary_t *s,
                        const gb_summary_info_t *info, int c, double *buf, gb_error_t *err)
{
    json_t *o = json_object();
    if (!o || json_array_append_new(classes, o) != 0) {
        d->rc = GB_ENOMEM;
        return 0;
    }
    s_set(d, o, "class", json_integer(c));
    if (info->class_names)
        s_set(d, o, "class_name", gb_json_string(info->class_names[c]));
    s_set(d, o, "count", json_integer(s->count[c]));
    s_set(d, o, "clipped", json_integer(s->clipped[c]));
    if (s->count[c] == 0)
        return 0;
    int rc = gb_summary_mean(s, c, buf, err);
    if (rc)
        return rc;
    s_set(d, o, "mean", s_reals(d, buf, s->cells, "mean"));
    if ((rc = gb_summary_variance(s, c, buf, err)))
        return rc;
    s_set(d, o, "variance", s_reals(d, buf, s->cells, "variance"));
    return s_json_importance(d, o, s, c, info->sequence, buf, err);
}

int gb_summary_json(const gb_summary_t *s, const gb_summary_info_t *info, char **out, size_t *len,
                    gb_error_t *err)
{
    *out = NULL;
    *len = 0;
    s_doc_t d = {0};
    json_t *o = json_object(), *classes = json_array(), *fixed = json_object();
    double *buf = gb_malloc((s->cells + 2) * sizeof *buf);
    int rc = 0;
    if (!o || !classes || !fixed || !buf) {
        json_decref(classes);
        json_decref(fixed);
        rc = gb_error_set(err, GB_ENOMEM, "summary json: out of memory");
        goto cleanup;
    }
    s_set(&d, o, "format", json_string("glassbox-explanation"));
    s_set(&d, o, "version", json_integer(1));
    s_set(&d, o, "method", gb_json_string(info->method));
    s_set(&d, o, "steps", info->steps > 0 ? json_integer(info->steps) : json_null());
    s_set(&d, o, "rule", gb_json_string(info->rule));
    s_set(&d, o, "baseline", gb_json_string(info->baseline));
    s_set(&d, o, "target", gb_json_string(info->target));
    s_set(&d, o, "dataset", gb_json_string(info->dataset));
    s_set(&d, o, "model", gb_json_string(info->model));
    s_set(&d, o, "task", json_string(info->regression ? "regression" : "classification"));
    s_set(&d, o, "input_shape", info->input_shape ? s_shape_json(info->input_shape) : json_null());
    s_set(&d, o, "attribution_shape", s_shape_json(&s->shape));
    s_set(&d, o, "samples", json_integer(gb_summary_count(s, GB_SUMMARY_ALL)));
    s_set(&d, o, "clip", s_real(&d, s->clip, "clip"));
    s_set(&d, o, "clipped", json_integer(gb_summary_clipped(s, GB_SUMMARY_ALL)));
    s_set(&d, o, "mean_completeness_error",
          info->has_completeness
              ? s_real(&d, info->mean_completeness_error, "mean_completeness_error")
              : json_null());
    s_set(&d, o, "mean_steps_used",
          info->mean_steps_used > 0 ? s_real(&d, info->mean_steps_used, "mean_steps_used")
                                    : json_null());
    s_set(&d, fixed, "fraction_bits", json_integer(GB_SUMMARY_FRAC_BITS));
    s_set(&d, fixed, "max_count", json_integer(GB_SUMMARY_MAX_COUNT));
    s_set(&d, o, "fixed_point", fixed);
    s_set(&d, o, "classes", classes);
    for (int c = 0; c < s->n_classes && !d.rc && !rc; c++)
        rc = s_json_class(&d, classes, s, info, c, buf, err);
    if (!rc && !d.rc)
        rc = s_json_importance(&d, o, s, GB_SUMMARY_ALL, info->sequence, buf, err);
    if (!rc && d.rc == GB_ERANGE)
        rc = gb_error_set(err, GB_ERANGE, "summary json: %s is not a finite number", d.what);
    else if (!rc && d.rc)
        rc = gb_error_set(err, d.rc, "summary json: out of memory");
    if (!rc)
        rc = gb_json_dump(o, out, len, err);
cleanup:
    json_decref(o);
    gb_free(buf);
    return rc;
}
