/* The class drift tracker (class_drift.h). The client rows are one block of
 * n x classes floats (NaN: unmeasured) that only grows; the reference one
 * of classes x cells doubles with a flag per class. */
#include "class_drift.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "explain/divergence.h"
#include "net/wire.h"
#include "util/alloc.h"

struct gb_class_drift {
    int classes;       /* the round's */
    size_t cells;      /* per map */
    double *ref;       /* classes x cells: the last merge's class maps */
    bool *has_ref;     /* classes: the reference holds class c */
    int ref_classes;   /* shape of ref (0: none) */
    size_t ref_cells;
    double *mine;      /* cells: the client's map being measured */
    size_t mine_cap;
    float *rows;       /* rows_cap x classes divergences, NaN unmeasured */
    size_t rows_cap;   /* rows allocated */
    double *median;    /* classes: each class's median row divergence (NaN: none) */
    float *column;     /* rows_cap: scratch for the medians */
};

gb_class_drift_t *gb_class_drift_new(gb_error_t *err)
{
    gb_class_drift_t *d = gb_calloc(1, sizeof *d);
    if (!d)
        gb_error_set(err, GB_ENOMEM, "class drift: out of memory");
    return d;
}

void gb_class_drift_destroy(gb_class_drift_t **pd)
{
    if (!pd || !*pd)
        return;
    gb_class_drift_t *d = *pd;
    gb_free(d->ref);
    gb_free(d->has_ref);
    gb_free(d->mine);
    gb_free(d->rows);
    gb_free(d->median);
    gb_free(d->column);
    gb_free(d);
    *pd = NULL;
}

int gb_class_drift_begin(gb_class_drift_t *d, int n_classes, size_t cells, gb_error_t *err)
{
    if (n_classes < 1 || cells < 1)
        return gb_error_set(err, GB_EINVAL, "class drift: %d classes of %zu cells", n_classes,
                            cells);
    bool same = d->ref_classes == n_classes && d->ref_cells == cells;
    if (!same || d->classes != n_classes) {
        /* a new shape: the per-class scratch and reference start again */
        double *median = gb_malloc((size_t)n_classes * sizeof *median);
        double *mine = cells > d->mine_cap ? gb_malloc(cells * sizeof *mine) : NULL;
        if (!median || (cells > d->mine_cap && !mine)) {
            gb_free(median);
            gb_free(mine);
            return gb_error_set(err, GB_ENOMEM, "class drift: out of memory for %d classes",
                                n_classes);
        }
        gb_free(d->median);
        d->median = median;
        if (mine) {
            gb_free(d->mine);
            d->mine = mine;
            d->mine_cap = cells;
        }
        gb_free(d->rows); /* rows of the old class count mean nothing now */
        gb_free(d->column);
        d->rows = NULL;
        d->column = NULL;
        d->rows_cap = 0;
    }
    if (!same) {
        gb_free(d->ref);
        gb_free(d->has_ref);
        d->ref = NULL;
        d->has_ref = NULL;
        d->ref_classes = 0;
        d->ref_cells = 0;
    }
    d->classes = n_classes;
    d->cells = cells;
    return 0;
}

int gb_class_drift_reserve(gb_class_drift_t *d, size_t k, gb_error_t *err)
{
    size_t nc = (size_t)d->classes;
    if (k >= d->rows_cap) {
        size_t cap = d->rows_cap ? 2 * d->rows_cap : 16;
        if (cap <= k)
            cap = k + 1;
        if (cap > SIZE_MAX / sizeof(float) / nc)
            return gb_error_set(err, GB_ENOMEM, "class drift: %zu clients are too many", cap);
        float *rows = gb_realloc(d->rows, cap * nc * sizeof *rows);
        if (!rows)
            return gb_error_set(err, GB_ENOMEM, "class drift: out of memory for %zu clients",
                                cap);
        d->rows = rows;
        float *column = gb_realloc(d->column, cap * sizeof *column);
        if (!column)
            return gb_error_set(err, GB_ENOMEM, "class drift: out of memory for %zu clients",
                                cap);
        d->column = column;
        d->rows_cap = cap;
    }
    for (size_t c = 0; c < nc; c++)
        d->rows[k * nc + c] = NAN;
    return 0;
}

void gb_class_drift_add(gb_class_drift_t *d, size_t k, uint32_t c, const uint8_t *le)
{
    if (!d->ref || c >= (uint32_t)d->classes || !d->has_ref[c])
        return;
    for (size_t i = 0; i < d->cells; i++)
        d->mine[i] = gb_wire_float_le(le + 4 * i);
    double js = gb_divergence_js(d->mine, d->ref + (size_t)c * d->cells, d->cells);
    d->rows[k * (size_t)d->classes + c] = (float)(js > 0 ? js : 0);
}

static int s_float_cmp(const void *x, const void *y)
{
    float a = *(const float *)x, b = *(const float *)y;
    return (a > b) - (a < b);
}

void gb_class_drift_close(gb_class_drift_t *d, size_t n)
{
    size_t nc = (size_t)d->classes;
    for (size_t c = 0; c < nc; c++) {
        size_t m = 0;
        for (size_t k = 0; k < n; k++)
            if (!isnan(d->rows[k * nc + c]))
                d->column[m++] = d->rows[k * nc + c];
        if (m == 0) {
            d->median[c] = NAN;
            continue;
        }
        qsort(d->column, m, sizeof *d->column, s_float_cmp);
        d->median[c] = m % 2 ? d->column[m / 2]
                             : 0.5 * ((double)d->column[m / 2 - 1] + d->column[m / 2]);
    }
}

size_t gb_class_drift_top(const gb_class_drift_t *d, size_t k, uint32_t *classes, float *ratio)
{
    size_t kept = 0, nc = (size_t)d->classes;
    for (size_t c = 0; c < nc; c++) {
        double v = d->rows[k * nc + c], med = d->median[c];
        if (isnan(v) || isnan(med))
            continue;
        /* compared as kept, in float: a double would beat its own rounding */
        float r = (float)(v / (med > GB_CLASS_DRIFT_FLOOR ? med : GB_CLASS_DRIFT_FLOOR));
        if (!(r >= GB_CLASS_DRIFT_RATIO) ||
            (kept == GB_CLASS_DRIFT_TOP && r <= ratio[kept - 1]))
            continue;
        size_t at = kept < GB_CLASS_DRIFT_TOP ? kept++ : kept - 1;
        while (at > 0 && ratio[at - 1] < r) { /* strictly: the lower class wins a tie */
            ratio[at] = ratio[at - 1];
            classes[at] = classes[at - 1];
            at--;
        }
        ratio[at] = r;
        classes[at] = (uint32_t)c;
    }
    return kept;
}

void gb_class_drift_set_reference(gb_class_drift_t *d, uint32_t c, const uint8_t *le)
{
    if (c >= (uint32_t)d->classes)
        return;
    size_t nc = (size_t)d->classes;
    if (!d->ref) { /* out of memory: no reference, the next round names no class */
        d->ref = gb_malloc(nc * d->cells * sizeof *d->ref);
        d->has_ref = gb_calloc(nc, sizeof *d->has_ref);
        if (!d->ref || !d->has_ref) {
            gb_free(d->ref);
            gb_free(d->has_ref);
            d->ref = NULL;
            d->has_ref = NULL;
            return;
        }
        d->ref_classes = d->classes;
        d->ref_cells = d->cells;
    }
    d->has_ref[c] = le != NULL;
    for (size_t i = 0; le && i < d->cells; i++)
        d->ref[(size_t)c * d->cells + i] = gb_wire_float_le(le + 4 * i);
}
