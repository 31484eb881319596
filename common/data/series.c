/* CSV table -> dataset (see series.h). The work is in three steps that share
 * one plan (s_plan_t): check the options against the file (label and input
 * columns, split point, window fit, class labels), compute the training
 * statistics in double precision, then allocate the dataset once and fill
 * it. A table copies its rows' inputs; a series copies the rows its windows
 * use once into a row table and records where each window starts, so a
 * window costs 4 bytes, not T x F floats. */
#include "data/series.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "util/alloc.h"
#include "util/log.h"

#define S_NAME_MAX (GB_CSV_MAX_NAME + 1)

typedef struct {
    gb_data_opts_t o; /* the options, defaults filled in */
    const char *file; /* the CSV's path, for messages */
    int label;        /* label column of the CSV */
    int *cols;        /* F input columns of the CSV, in input order */
    int F;            /* number of inputs */
    int target_col;   /* series: index of the label column in cols */
    int64_t b;        /* first test row */
    int64_t lo, hi;   /* rows of the CSV this split's samples use: [lo, hi) */
    int64_t n;        /* samples in this split */
    int64_t first;    /* table: first row; series: first target row */
    int n_classes;    /* classification: classes; else 0 */
    double *mean;     /* F training means (NULL when raw) */
    double *std;      /* F training standard deviations (NULL when raw) */
    double t_mean;    /* regression target mean (0 when raw) */
    double t_std;     /* regression target std (1 when raw) */
} s_plan_t;

int gb_series_split(int64_t n_rows, double test_fraction, int64_t *first_test, gb_error_t *err)
{
    if (first_test)
        *first_test = 0;
    if (!first_test)
        return gb_error_set(err, GB_EINVAL, "gb_series_split: NULL argument");
    if (!(test_fraction > 0.0 && test_fraction < 1.0))
        return gb_error_set(err, GB_EINVAL,
                            "test fraction %g: expected a number between 0 and 1 (exclusive)",
                            test_fraction);
    /* the epsilon keeps 0.8 x 10 at 8 whichever way the product rounds */
    double train = floor((1.0 - test_fraction) * (double)n_rows + 1e-9);
    if (train < 1.0)
        return gb_error_set(err, GB_EINVAL, "test fraction %g of %lld rows leaves no training rows",
                            test_fraction, (long long)n_rows);
    if (train >= (double)n_rows)
        return gb_error_set(err, GB_EINVAL, "test fraction %g of %lld rows leaves no test rows",
                            test_fraction, (long long)n_rows);
    *first_test = (int64_t)train;
    return 0;
}

/* Appends column `name` to the inputs, refusing unknown and repeated
 * columns and (for a table) the label column. */
static int s_add_input(const gb_csv_t *csv, s_plan_t *p, bool series, const char *name,
                       gb_error_t *err)
{
    int c;
    int rc = gb_csv_find(csv, name, &c, err);
    if (rc)
        return rc;
    if (c == p->label && !series)
        return gb_error_warn(err, GB_EINVAL,
                             "%s: the label column '%s' cannot also be an "
                             "input (it would give the answer away)",
                             p->file, name);
    for (int k = 0; k < p->F; k++)
        if (p->cols[k] == c)
            return gb_error_warn(err, GB_EINVAL, "%s: column '%s' is listed twice in the inputs",
                                 p->file, name);
    p->cols[p->F++] = c;
    return 0;
}

/* Chooses the input columns: the list in opts->features, or all (a table:
 * all but the label). A series always has the label column among them. */
static int s_inputs(const gb_csv_t *csv, s_plan_t *p, bool series, gb_error_t *err)
{
    p->cols = gb_malloc(((size_t)csv->n_cols + 1) * sizeof *p->cols);
    if (!p->cols)
        return gb_error_set(err, GB_ENOMEM, "%s: out of memory", p->file);
    p->F = 0;
    if (!p->o.features) {
        for (int c = 0; c < csv->n_cols; c++)
            if (series || c != p->label)
                p->cols[p->F++] = c;
    } else {
        const char *s = p->o.features;
        for (;;) {
            const char *comma = strchr(s, ',');
            size_t len = comma ? (size_t)(comma - s) : strlen(s);
            while (len > 0 && (*s == ' ' || *s == '\t'))
                s++, len--;
            while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
                len--;
            if (len == 0)
                return gb_error_warn(err, GB_EINVAL, "%s: empty column name in the inputs '%s'",
                                     p->file, p->o.features);
            char name[S_NAME_MAX];
            if (len >= sizeof name) /* cannot be a column: let find say so */
                len = sizeof name - 1;
            memcpy(name, s, len);
            name[len] = '\0';
            int rc = s_add_input(csv, p, series, name, err);
            if (rc)
                return rc;
            if (!comma)
                break;
            s = comma + 1;
        }
    }
    if (p->F == 0)
        return gb_error_warn(err, GB_EINVAL, "%s: no input columns: '%s' is the only column",
                             p->file, csv->cols[p->label].name);
    if (series) {
        p->target_col = -1;
        for (int k = 0; k < p->F; k++)
            if (p->cols[k] == p->label)
                p->target_col = k;
        if (p->target_col < 0) { /* not listed: first */
            memmove(p->cols + 1, p->cols, (size_t)p->F * sizeof *p->cols);
            p->cols[0] = p->label;
            p->F++;
            p->target_col = 0;
        }
    }
    return 0;
}

/* Checks that the label column holds classes 0..C-1 in every row. */
static int s_classes(const gb_csv_t *csv, s_plan_t *p, gb_error_t *err)
{
    const gb_csv_column_t *col = &csv->cols[p->label];
    int max = 0;
    for (int64_t r = 0; r < csv->n_rows; r++) {
        double v = r == col->nonint_row ? col->nonint_value : gb_csv_value(csv, r, p->label);
        if (v != floor(v))
            return gb_error_warn(err, GB_ERANGE,
                                 "%s line %lld, column %d (%s): %.15g is not an integer class "
                                 "(for a real-valued target, use regression)",
                                 p->file, (long long)gb_csv_line(r), p->label + 1, col->name, v);
        if (v < 0)
            return gb_error_warn(err, GB_ERANGE,
                                 "%s line %lld, column %d (%s): %.15g is not a class: classes "
                                 "are 0, 1, 2, ...",
                                 p->file, (long long)gb_csv_line(r), p->label + 1, col->name, v);
        if (v >= GB_DATA_MAX_CLASSES)
            return gb_error_warn(err, GB_ERANGE,
                                 "%s line %lld, column %d (%s): %.15g is too large a class (at "
                                 "most %d classes; for a real-valued target, use regression)",
                                 p->file, (long long)gb_csv_line(r), p->label + 1, col->name, v,
                                 GB_DATA_MAX_CLASSES);
        if ((int)v > max)
            max = (int)v;
    }
    p->n_classes = max + 1 < 2 ? 2 : max + 1;
    return 0;
}

/* Mean and population standard deviation of column c over rows [0, b);
 * a constant column gets std 1. */
static void s_stats(const gb_csv_t *csv, int c, int64_t b, double *mean, double *std)
{
    double sum = 0.0;
    for (int64_t r = 0; r < b; r++)
        sum += gb_csv_value(csv, r, c);
    double m = sum / (double)b, ss = 0.0;
    for (int64_t r = 0; r < b; r++) {
        double d = gb_csv_value(csv, r, c) - m;
        ss += d * d;
    }
    double s = sqrt(ss / (double)b);
    *mean = m;
    *std = s > 0.0 && isfinite(s) ? s : 1.0;
}

/* Checks the options against the file and works out the split. */
static int s_plan(const gb_csv_t *csv, gb_split_t split, s_plan_t *p, gb_error_t *err)
{
    const gb_data_opts_t *o = &p->o;
    const bool series = o->window > 0;
    char list[GB_ERROR_MSG_MAX / 2];
    if (!o->label || !*o->label)
        return gb_error_warn(err, GB_EINVAL,
                             "%s: no label column given (--label NAME; columns: %s)", p->file,
                             gb_csv_format_columns(csv, list, sizeof list));
    if (o->window < 0)
        return gb_error_warn(err, GB_EINVAL,
                             "%s: window %d: expected at least 1 (or 0 for no windows)", p->file,
                             o->window);
    if (o->horizon < 1)
        return gb_error_warn(err, GB_EINVAL,
                             "%s: horizon %d: expected at least 1 (the target "
                             "is that many rows after the window)",
                             p->file, o->horizon);
    if (!series && o->horizon != 1)
        return gb_error_warn(err, GB_EINVAL, "%s: a horizon (%d) needs a window (--window T)",
                             p->file, o->horizon);
    int rc = gb_csv_find(csv, o->label, &p->label, err);
    if (rc || (rc = s_inputs(csv, p, series, err)))
        return rc;
    gb_error_t local = {0};
    if ((rc = gb_series_split(csv->n_rows, o->test_fraction, &p->b, &local)))
        return gb_error_warn(err, rc, "%s: %s", p->file, local.msg);
    if (series) {
        /* T + K - 1 rows precede the first target row */
        int64_t span = (int64_t)o->window + o->horizon - 1;
        if (span >= p->b)
            return gb_error_warn(err, GB_EINVAL,
                                 "%s: a window of %d rows and a horizon of %d need %lld training "
                                 "rows, the training part has %lld (of %lld rows)",
                                 p->file, o->window, o->horizon, (long long)span + 1,
                                 (long long)p->b, (long long)csv->n_rows);
        if (split == GB_SPLIT_TRAIN) {
            p->first = span;
            p->n = p->b - span;
            p->lo = 0;
            p->hi = p->b;
        } else {
            p->first = p->b;
            p->n = csv->n_rows - p->b;
            p->lo = p->b - span;
            p->hi = csv->n_rows;
        }
    } else {
        p->first = p->lo = split == GB_SPLIT_TRAIN ? 0 : p->b;
        p->hi = split == GB_SPLIT_TRAIN ? p->b : csv->n_rows;
        p->n = p->hi - p->lo;
    }
    if (p->n > INT32_MAX)
        return gb_error_warn(err, GB_ERANGE, "%s: %lld samples, more than %d", p->file,
                             (long long)p->n, INT32_MAX);
    if (!o->regression && (rc = s_classes(csv, p, err)))
        return rc;
    p->t_mean = 0.0;
    p->t_std = 1.0;
    if (!o->raw) {
        p->mean = gb_malloc((size_t)p->F * sizeof *p->mean);
        p->std = gb_malloc((size_t)p->F * sizeof *p->std);
        if (!p->mean || !p->std)
            return gb_error_set(err, GB_ENOMEM, "%s: out of memory", p->file);
        for (int k = 0; k < p->F; k++)
            s_stats(csv, p->cols[k], p->b, &p->mean[k], &p->std[k]);
        if (o->regression)
            s_stats(csv, p->label, p->b, &p->t_mean, &p->t_std);
    }
    return 0;
}

/* Copies rows [lo, hi) of the input columns, standardised, into dst. */
static void s_copy_rows(const gb_csv_t *csv, const s_plan_t *p, int64_t lo, int64_t hi, float *dst)
{
    for (int64_t r = lo; r < hi; r++)
        for (int k = 0; k < p->F; k++) {
            double v = gb_csv_value(csv, r, p->cols[k]);
            if (p->mean)
                v = (v - p->mean[k]) / p->std[k];
            *dst++ = (float)v;
        }
}

/* Allocates and fills the dataset the plan describes. */
static int s_build(const gb_csv_t *csv, const char *name, const s_plan_t *p, gb_dataset_t **out,
                   gb_error_t *err)
{
    const bool series = p->o.window > 0;
    const int T = p->o.window;
    const size_t n = (size_t)p->n, F = (size_t)p->F;
    gb_dataset_t *ds = gb_calloc(1, sizeof *ds);
    if (!ds)
        return gb_error_set(err, GB_ENOMEM, "%s: out of memory for a dataset", p->file);
    ds->n = p->n;
    ds->scale = 1.0f;
    ds->name = gb_strdup(name);
    bool ok = ds->name != NULL;
    if (series) {
        ds->shape = (gb_shape_t){.rank = 2, .dim = {T, p->F, 1}};
        ds->n_rows = p->hi - p->lo;
        ds->rows = gb_malloc((size_t)ds->n_rows * F * sizeof(float));
        ds->starts = gb_malloc(n * sizeof(int32_t));
        ds->horizon = p->o.horizon;
        ds->target_col = p->target_col;
        ok = ok && ds->rows && ds->starts;
    } else {
        ds->shape = (gb_shape_t){.rank = 1, .dim = {p->F, 1, 1}};
        ds->features = gb_malloc(n * F * sizeof(float));
        ok = ok && ds->features;
    }
    if (p->o.regression) {
        ds->n_targets = 1;
        ds->targets = gb_malloc(n * sizeof(float));
        ds->target_mean = p->t_mean;
        ds->target_std = p->t_std;
        ok = ok && ds->targets;
    } else {
        ds->n_classes = p->n_classes;
        ds->labels = gb_malloc(n * sizeof(int32_t));
        ok = ok && ds->labels;
    }
    if (p->mean) {
        ds->in_mean = gb_malloc(F * sizeof(float));
        ds->in_std = gb_malloc(F * sizeof(float));
        ok = ok && ds->in_mean && ds->in_std;
    }
    if (!ok) {
        gb_dataset_destroy(&ds);
        return gb_error_set(err, GB_ENOMEM, "%s: out of memory for %lld samples", p->file,
                            (long long)p->n);
    }
    if (p->mean)
        for (size_t k = 0; k < F; k++) {
            ds->in_mean[k] = (float)p->mean[k];
            ds->in_std[k] = (float)p->std[k];
        }
    if (series) {
        s_copy_rows(csv, p, p->lo, p->hi, ds->rows);
        /* windows are consecutive and the table starts at the first one's first
         * row (first - (T + K - 1) == lo), so window i starts at row i */
        for (size_t i = 0; i < n; i++)
            ds->starts[i] = (int32_t)i;
    } else {
        s_copy_rows(csv, p, p->lo, p->hi, ds->features);
    }
    for (size_t i = 0; i < n; i++) {
        int64_t r = p->first + (int64_t)i; /* the target's row */
        double y = gb_csv_value(csv, r, p->label);
        if (p->o.regression)
            ds->targets[i] = (float)((y - p->t_mean) / p->t_std);
        else
            ds->labels[i] = (int32_t)y;
    }
    *out = ds;
    return 0;
}

int gb_series_dataset(const gb_csv_t *csv, const char *name, gb_split_t split,
                      const gb_data_opts_t *opts, gb_dataset_t **out, gb_error_t *err)
{
    if (!out)
        return gb_error_set(err, GB_EINVAL, "gb_series_dataset: out is NULL");
    *out = NULL;
    if (!csv || csv->n_rows < 1 || csv->n_cols < 1)
        return gb_error_set(err, GB_EINVAL, "gb_series_dataset: no table");
    if (split != GB_SPLIT_TRAIN && split != GB_SPLIT_TEST)
        return gb_error_set(err, GB_EINVAL, "%s: unknown split %d", csv->path, (int)split);
    s_plan_t p = {.o = opts ? *opts : GB_DATA_OPTS_INIT, .file = csv->path};
    char dname[4096];
    if (!name) {
        int len = snprintf(dname, sizeof dname, "csv:%s", csv->path);
        if (len < 0 || (size_t)len >= sizeof dname)
            return gb_error_set(err, GB_EINVAL, "%s: path too long", csv->path);
        name = dname;
    }
    int rc = s_plan(csv, split, &p, err);
    if (rc == 0)
        rc = s_build(csv, name, &p, out, err);
    if (rc == 0)
        gb_log_debug("%s: %s split, %lld samples of %d x %d (%s), rows %lld..%lld of %lld", name,
                     gb_split_name(split), (long long)p.n, p.o.window, p.F,
                     p.o.regression ? "regression" : "classification", (long long)p.lo,
                     (long long)p.hi - 1, (long long)csv->n_rows);
    gb_free(p.cols);
    gb_free(p.mean);
    gb_free(p.std);
    return rc;
}

int gb_series_last_value_mse(const gb_dataset_t *ds, double *mse, double *mse_units,
                             gb_error_t *err)
{
    if (mse)
        *mse = 0.0;
    if (mse_units)
        *mse_units = 0.0;
    if (!ds || !mse)
        return gb_error_set(err, GB_EINVAL, "gb_series_last_value_mse: NULL argument");
    if (!ds->starts || !ds->rows || !ds->targets || ds->n_targets != 1 || ds->shape.rank != 2)
        return gb_error_set(err, GB_EINVAL,
                            "%s: the last-value baseline needs a windowed "
                            "regression series (csv: with a window)",
                            ds->name);
    if (ds->n < 1)
        return gb_error_set(err, GB_EINVAL, "%s: no samples for the last-value baseline", ds->name);
    const int64_t T = ds->shape.dim[0], F = ds->shape.dim[1];
    double sum = 0.0;
    for (int64_t i = 0; i < ds->n; i++) {
        float last = ds->rows[(ds->starts[i] + T - 1) * F + ds->target_col];
        double d = (double)ds->targets[i] - (double)last;
        sum += d * d;
    }
    *mse = sum / (double)ds->n;
    if (mse_units)
        *mse_units = gb_dataset_mse_units(ds, *mse);
    return 0;
}
