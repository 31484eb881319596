/* Tests for data/series: the time split point, tables (classification and
 * regression) and windowed series cut from CSV tables, input column choice,
 * standardisation with training statistics only, the time-split property
 * (no training window's input or target, nor the statistics, depends on a
 * test row: changing the test rows leaves the training split bit for bit the
 * same), every option and label error with its message, the last-value
 * baseline, allocation-failure injection, and the real sunspot series that
 * Debian's python3-statsmodels ships (skipped when absent), on which a linear
 * model trained by the engine must beat the last-value baseline. Doubles as
 * the usage example. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/dataset_load.h"
#include "data/series.h"
#include "engine/model.h"
#include "engine/optim.h"
#include "engine/train.h"
#include "util/alloc.h"
#include "util/log.h"

#define SUNSPOTS "/usr/lib/python3/dist-packages/statsmodels/datasets/sunspots/sunspots.csv"

static gb_csv_t *s_csv(const char *text)
{
    gb_error_t err = {0};
    gb_csv_t *csv = gb_csv_parse(text, strlen(text), "t.csv", &err);
    if (!csv)
        fail_msg("unexpected error: %s", err.msg);
    return csv;
}

static gb_dataset_t *s_load(const gb_csv_t *csv, gb_split_t split, const gb_data_opts_t *o)
{
    gb_error_t err = {0};
    gb_dataset_t *ds = NULL;
    if (gb_series_dataset(csv, NULL, split, o, &ds, &err) != 0)
        fail_msg("unexpected error: %s", err.msg);
    assert_non_null(ds);
    return ds;
}

/* Expects gb_series_dataset to fail with code and exactly msg. */
static void s_refuse(const gb_csv_t *csv, gb_split_t split, const gb_data_opts_t *o, int code,
                     const char *msg)
{
    gb_error_t err = {0};
    gb_dataset_t *ds = (gb_dataset_t *)1;
    assert_int_equal(gb_series_dataset(csv, NULL, split, o, &ds, &err), code);
    assert_null(ds);
    assert_string_equal(err.msg, msg);
}

/* Mean and population std of column c over rows [0, b), as series.c does. */
static void s_stats(const gb_csv_t *csv, int c, int64_t b, double *mean, double *std)
{
    double s = 0, ss = 0;
    for (int64_t r = 0; r < b; r++)
        s += gb_csv_value(csv, r, c);
    *mean = s / (double)b;
    for (int64_t r = 0; r < b; r++)
        ss += (gb_csv_value(csv, r, c) - *mean) * (gb_csv_value(csv, r, c) - *mean);
    *std = sqrt(ss / (double)b);
    if (*std == 0)
        *std = 1;
}

static void s_close(double a, double b)
{
    if (!(fabs(a - b) <= 1e-5 * fmax(1.0, fabs(b))))
        fail_msg("%.9g != %.9g", a, b);
}

static void test_split(void **state)
{
    (void)state;
    gb_error_t err = {0};
    int64_t b = -1;
    assert_int_equal(gb_series_split(10, 0.2, &b, &err), 0);
    assert_int_equal(b, 8);
    assert_int_equal(gb_series_split(309, 0.2, &b, &err), 0);
    assert_int_equal(b, 247);
    assert_int_equal(gb_series_split(5, 0.4, &b, &err), 0);
    assert_int_equal(b, 3);
    assert_int_equal(gb_series_split(3, 0.5, &b, &err), 0);
    assert_int_equal(b, 1); /* floor(1.5) */
    assert_int_equal(gb_series_split(2, 0.01, &b, &err), 0);
    assert_int_equal(b, 1);
    assert_int_equal(gb_series_split(1, 0.5, &b, &err), GB_EINVAL);
    assert_int_equal(b, 0);
    assert_string_equal(err.msg, "test fraction 0.5 of 1 rows leaves no training rows");
    assert_int_equal(gb_series_split(10, 1e-12, &b, &err), GB_EINVAL);
    assert_string_equal(err.msg, "test fraction 1e-12 of 10 rows leaves no test rows");
    const double bad[4] = {0.0, 1.0, -0.5, NAN};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(gb_series_split(10, bad[i], &b, &err), GB_EINVAL);
        assert_non_null(strstr(err.msg, "expected a number between 0 and 1 (exclusive)"));
    }
    assert_int_equal(gb_series_split(10, 0.2, NULL, &err), GB_EINVAL);
}

/* 10 rows: a, label, b; class 3 only in the test rows. */
static const char *s_table =
    "a,label,b\n"
    "1,0,10\n2,1,20\n3,2,30\n4,0,40\n5,1,50\n6,2,60\n7,0,70\n8,1,80\n9,3,90\n10,0,100\n";

static void test_table_classification(void **state)
{
    (void)state;
    gb_csv_t *csv = s_csv(s_table);
    gb_data_opts_t o = GB_DATA_OPTS_INIT;
    o.label = "label";
    gb_dataset_t *tr = s_load(csv, GB_SPLIT_TRAIN, &o);
    gb_dataset_t *te = s_load(csv, GB_SPLIT_TEST, &o);
    assert_string_equal(tr->name, "csv:t.csv");
    assert_int_equal(tr->n, 8); /* floor(0.8 x 10) */
    assert_int_equal(te->n, 2);
    assert_int_equal(tr->shape.rank, 1);
    assert_int_equal(tr->shape.dim[0], 2); /* a and b; never the label */
    assert_int_equal(gb_dataset_sample_size(tr), 2);
    assert_int_equal(tr->n_classes, 4); /* both splits see class 3 */
    assert_int_equal(te->n_classes, 4);
    assert_int_equal(gb_dataset_task(tr), GB_TASK_CLASSIFICATION);
    assert_int_equal(gb_dataset_outputs(tr), 4);
    assert_int_equal(gb_dataset_loss(tr), GB_LOSS_SOFTMAX_CE);
    assert_non_null(tr->features);
    assert_null(tr->pixels);
    assert_null(tr->rows);
    assert_null(tr->starts);
    assert_null(tr->targets);
    assert_int_equal(tr->n_targets, 0);
    assert_true(tr->scale == 1.0f);

    /* standardised with the statistics of the 8 training rows, in both splits */
    double ma, sa, mb, sb;
    s_stats(csv, 0, 8, &ma, &sa);
    s_stats(csv, 2, 8, &mb, &sb);
    s_close(ma, 4.5);
    for (int s = 0; s < 2; s++) {
        gb_dataset_t *ds = s ? te : tr;
        s_close(ds->in_mean[0], ma);
        s_close(ds->in_std[0], sa);
        s_close(ds->in_mean[1], mb);
        s_close(ds->in_std[1], sb);
        for (int64_t i = 0; i < ds->n; i++) {
            int64_t r = i + (s ? 8 : 0);
            s_close(ds->features[i * 2], (gb_csv_value(csv, r, 0) - ma) / sa);
            s_close(ds->features[i * 2 + 1], (gb_csv_value(csv, r, 2) - mb) / sb);
            assert_int_equal(ds->labels[i], (int)gb_csv_value(csv, r, 1));
        }
    }
    assert_int_equal(te->labels[0], 3);

    /* fill: classes into labels, values untouched */
    int32_t idx[2] = {1, 0}, labels[2] = {-1, -1};
    float x[4], values[2] = {42, 42};
    gb_error_t err = {0};
    assert_int_equal(gb_dataset_fill(te, idx, 2, x, labels, values, &err), 0);
    assert_int_equal(labels[0], 0);
    assert_int_equal(labels[1], 3);
    assert_true(values[0] == 42 && values[1] == 42);
    assert_true(x[0] == te->features[2]);
    gb_dataset_destroy(&tr);
    gb_dataset_destroy(&te);

    /* raw: file units */
    o.raw = true;
    o.features = "b";
    tr = s_load(csv, GB_SPLIT_TRAIN, &o);
    assert_null(tr->in_mean);
    assert_null(tr->in_std);
    assert_int_equal(tr->shape.dim[0], 1);
    for (int i = 0; i < 8; i++)
        assert_true(tr->features[i] == 10.0f * (float)(i + 1));
    gb_dataset_destroy(&tr);

    /* a named dataset */
    gb_dataset_t *ds = NULL;
    assert_int_equal(gb_series_dataset(csv, "mine", GB_SPLIT_TEST, &o, &ds, &err), 0);
    assert_string_equal(ds->name, "mine");
    gb_dataset_destroy(&ds);
    gb_csv_destroy(&csv);
}

static void test_table_regression(void **state)
{
    (void)state;
    gb_csv_t *csv = s_csv("x,y\n1,2.5\n2,4.5\n3,6.5\n4,8.5\n5,10.5\n");
    gb_data_opts_t o = GB_DATA_OPTS_INIT;
    o.label = "y";
    o.regression = true;
    o.test_fraction = 0.4;
    gb_dataset_t *tr = s_load(csv, GB_SPLIT_TRAIN, &o);
    gb_dataset_t *te = s_load(csv, GB_SPLIT_TEST, &o);
    assert_int_equal(tr->n, 3);
    assert_int_equal(te->n, 2);
    assert_int_equal(gb_dataset_task(tr), GB_TASK_REGRESSION);
    assert_int_equal(gb_dataset_outputs(tr), 1);
    assert_int_equal(gb_dataset_loss(tr), GB_LOSS_MSE);
    assert_null(tr->labels);
    assert_int_equal(tr->n_classes, 0);
    assert_int_equal(tr->n_targets, 1);
    /* y over the 3 training rows: mean 4.5, std sqrt(8/3) */
    double sd = sqrt(8.0 / 3.0);
    s_close(tr->target_mean, 4.5);
    s_close(tr->target_std, sd);
    s_close(te->target_std, sd);
    s_close(tr->targets[0], (2.5 - 4.5) / sd);
    s_close(te->targets[1], (10.5 - 4.5) / sd);
    s_close(gb_dataset_mse_units(te, 0.5), 0.5 * 8.0 / 3.0);

    /* fill: targets into values, labels untouched */
    int32_t idx[2] = {1, 1}, labels[2] = {-7, -7};
    float x[2], values[2] = {0, 0};
    gb_error_t err = {0};
    assert_int_equal(gb_dataset_fill(te, idx, 2, x, labels, values, &err), 0);
    assert_true(values[0] == te->targets[1] && values[1] == te->targets[1]);
    assert_int_equal(labels[0], -7);
    s_close(x[0], (5 - 2) / sqrt(2.0 / 3.0));
    assert_int_equal(gb_dataset_fill(te, idx, 2, x, NULL, NULL, &err), 0);
    gb_dataset_destroy(&tr);
    gb_dataset_destroy(&te);

    /* raw: targets as read, target_std 1 */
    o.raw = true;
    te = s_load(csv, GB_SPLIT_TEST, &o);
    assert_true(te->targets[0] == 8.5f);
    assert_true(te->target_mean == 0.0 && te->target_std == 1.0);
    assert_true(gb_dataset_mse_units(te, 0.25) == 0.25);
    gb_dataset_destroy(&te);

    /* a constant column has std 1, not a division by zero */
    gb_csv_destroy(&csv);
    csv = s_csv("c,y\n3,1\n3,2\n3,3\n3,4\n3,5\n");
    o.raw = false;
    te = s_load(csv, GB_SPLIT_TEST, &o);
    assert_true(te->in_std[0] == 1.0f);
    assert_true(te->features[0] == 0.0f);
    gb_dataset_destroy(&te);
    gb_csv_destroy(&csv);
}

static void test_inputs(void **state)
{
    (void)state;
    gb_csv_t *csv = s_csv(s_table);
    gb_data_opts_t o = GB_DATA_OPTS_INIT;
    o.label = "label";
    o.features = " b ,a"; /* order as listed, blanks ignored */
    gb_dataset_t *ds = s_load(csv, GB_SPLIT_TRAIN, &o);
    assert_int_equal(ds->shape.dim[0], 2);
    s_close(ds->in_mean[0], 45.0);
    s_close(ds->in_mean[1], 4.5);
    gb_dataset_destroy(&ds);

    o.features = "zz";
    s_refuse(csv, GB_SPLIT_TRAIN, &o, GB_EINVAL,
             "t.csv line 1: no column named 'zz' (columns: a, label, b)");
    o.features = "a,a";
    s_refuse(csv, GB_SPLIT_TRAIN, &o, GB_EINVAL, "t.csv: column 'a' is listed twice in the inputs");
    o.features = "a,label";
    s_refuse(csv, GB_SPLIT_TRAIN, &o, GB_EINVAL,
             "t.csv: the label column 'label' cannot also be an input (it would give the answer "
             "away)");
    o.features = "a,,b";
    s_refuse(csv, GB_SPLIT_TRAIN, &o, GB_EINVAL, "t.csv: empty column name in the inputs 'a,,b'");
    o.features = "";
    s_refuse(csv, GB_SPLIT_TRAIN, &o, GB_EINVAL, "t.csv: empty column name in the inputs ''");
    o.features = "a,";
    s_refuse(csv, GB_SPLIT_TRAIN, &o, GB_EINVAL, "t.csv: empty column name in the inputs 'a,'");

    /* a series: the label is always an input; first when not listed */
    o.window = 2;
    o.features = "b";
    ds = s_load(csv, GB_SPLIT_TRAIN, &o);
    assert_int_equal(ds->shape.rank, 2);
    assert_int_equal(ds->shape.dim[0], 2);
    assert_int_equal(ds->shape.dim[1], 2);
    assert_int_equal(ds->target_col, 0);
    s_close(ds->in_mean[1], 45.0);
    gb_dataset_destroy(&ds);
    o.features = "b,label";
    ds = s_load(csv, GB_SPLIT_TRAIN, &o);
    assert_int_equal(ds->target_col, 1);
    gb_dataset_destroy(&ds);
    o.features = NULL; /* every column, in file order */
    ds = s_load(csv, GB_SPLIT_TRAIN, &o);
    assert_int_equal(ds->shape.dim[1], 3);
    assert_int_equal(ds->target_col, 1);
    gb_dataset_destroy(&ds);
    o.features = "label";
    ds = s_load(csv, GB_SPLIT_TRAIN, &o);
    assert_int_equal(ds->shape.dim[1], 1);
    gb_dataset_destroy(&ds);
    gb_csv_destroy(&csv);

    /* a table whose only column is the label has no inputs */
    csv = s_csv("y\n1\n2\n3\n");
    o = GB_DATA_OPTS_INIT;
    o.label = "y";
    s_refuse(csv, GB_SPLIT_TRAIN, &o, GB_EINVAL, "t.csv: no input columns: 'y' is the only column");
    o.window = 1;           /* a series of it is fine: its own past */
    o.test_fraction = 0.33; /* B = 2 */
    ds = s_load(csv, GB_SPLIT_TEST, &o);
    assert_int_equal(ds->n, 1);
    gb_dataset_destroy(&ds);
    gb_csv_destroy(&csv);
}

static void test_label_errors(void **state)
{
    (void)state;
    gb_data_opts_t o = GB_DATA_OPTS_INIT;
    gb_csv_t *csv = s_csv(s_table);
    s_refuse(csv, GB_SPLIT_TRAIN, &o, GB_EINVAL,
             "t.csv: no label column given (--label NAME; columns: a, label, b)");
    s_refuse(csv, GB_SPLIT_TRAIN, NULL, GB_EINVAL,
             "t.csv: no label column given (--label NAME; columns: a, label, b)");
    o.label = "";
    s_refuse(csv, GB_SPLIT_TRAIN, &o, GB_EINVAL,
             "t.csv: no label column given (--label NAME; columns: a, label, b)");
    o.label = "price";
    s_refuse(csv, GB_SPLIT_TEST, &o, GB_EINVAL,
             "t.csv line 1: no column named 'price' (columns: a, label, b)");
    gb_csv_destroy(&csv);

    o.label = "y";
    const char *pre = "t.csv line 5, column 2 (y): ";
    const struct {
        const char *text;
        const char *msg;
    } bad[] = {
        {"x,y\n1,0\n2,1\n3,0\n4,2.5\n5,1\n",
         "2.5 is not an integer class (for a real-valued target, use regression)"},
        {"x,y\n1,0\n2,1\n3,0\n4,2.0000001\n5,1\n",
         "2.0000001 is not an integer class (for a real-valued target, use regression)"},
        {"x,y\n1,0\n2,1\n3,0\n4,-1\n5,1\n", "-1 is not a class: classes are 0, 1, 2, ..."},
        {"x,y\n1,0\n2,1\n3,0\n4,10000\n5,1\n",
         "10000 is too large a class (at most 10000 classes; for a real-valued target, use "
         "regression)"},
        {"x,y\n1,0\n2,1\n3,0\n4,16777217\n5,1\n",
         "16777217 is too large a class (at most 10000 classes; for a real-valued target, use "
         "regression)"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        csv = s_csv(bad[k].text);
        char want[256];
        snprintf(want, sizeof want, "%s%s", pre, bad[k].msg);
        /* the label is checked in every row, so the train split fails too */
        for (int s = 0; s < 2; s++) {
            gb_error_t err = {0};
            gb_dataset_t *ds = (gb_dataset_t *)1;
            assert_int_equal(gb_series_dataset(csv, NULL, s, &o, &ds, &err), GB_ERANGE);
            assert_null(ds);
            assert_string_equal(err.msg, want);
        }
        /* the same column is a fine regression target */
        o.regression = true;
        gb_dataset_t *ds = s_load(csv, GB_SPLIT_TEST, &o);
        gb_dataset_destroy(&ds);
        o.regression = false;
        gb_csv_destroy(&csv);
    }
    /* the earliest bad row is reported */
    csv = s_csv("x,y\n1,0\n2,-3\n3,0.5\n4,1\n5,1\n");
    s_refuse(csv, GB_SPLIT_TRAIN, &o, GB_ERANGE,
             "t.csv line 3, column 2 (y): -3 is not a class: classes are 0, 1, 2, ...");
    gb_csv_destroy(&csv);
    /* one class only: still 2 outputs */
    csv = s_csv("x,y\n1,0\n2,0\n3,0\n4,0\n5,0\n");
    gb_dataset_t *ds = s_load(csv, GB_SPLIT_TRAIN, &o);
    assert_int_equal(ds->n_classes, 2);
    gb_dataset_destroy(&ds);
    gb_csv_destroy(&csv);
}

static void test_option_errors(void **state)
{
    (void)state;
    gb_csv_t *csv = s_csv(s_table); /* 10 rows: 8 train, 2 test */
    gb_data_opts_t o = GB_DATA_OPTS_INIT;
    o.label = "label";
    o.window = 3;
    o.horizon = 0;
    s_refuse(csv, GB_SPLIT_TRAIN, &o, GB_EINVAL,
             "t.csv: horizon 0: expected at least 1 (the target is that many rows after the "
             "window)");
    o.horizon = -2;
    s_refuse(csv, GB_SPLIT_TRAIN, &o, GB_EINVAL,
             "t.csv: horizon -2: expected at least 1 (the target is that many rows after the "
             "window)");
    o.window = 0;
    o.horizon = 2;
    s_refuse(csv, GB_SPLIT_TRAIN, &o, GB_EINVAL,
             "t.csv: a horizon (2) needs a window (--window T)");
    o.window = -1;
    o.horizon = 1;
    s_refuse(csv, GB_SPLIT_TRAIN, &o, GB_EINVAL,
             "t.csv: window -1: expected at least 1 (or 0 for no windows)");
    o.window = 0;
    o.test_fraction = 0;
    s_refuse(csv, GB_SPLIT_TRAIN, &o, GB_EINVAL,
             "t.csv: test fraction 0: expected a number between 0 and 1 (exclusive)");
    o.test_fraction = 1;
    s_refuse(csv, GB_SPLIT_TEST, &o, GB_EINVAL,
             "t.csv: test fraction 1: expected a number between 0 and 1 (exclusive)");
    o.test_fraction = 1e-12;
    s_refuse(csv, GB_SPLIT_TEST, &o, GB_EINVAL,
             "t.csv: test fraction 1e-12 of 10 rows leaves no test rows");

    /* a window larger than the training part, in both splits */
    o.test_fraction = 0.2;
    o.window = 8;
    const char *big = "t.csv: a window of 8 rows and a horizon of 1 need 9 training rows, the "
                      "training part has 8 (of 10 rows)";
    s_refuse(csv, GB_SPLIT_TRAIN, &o, GB_EINVAL, big);
    s_refuse(csv, GB_SPLIT_TEST, &o, GB_EINVAL, big);
    o.window = 50;
    s_refuse(csv, GB_SPLIT_TEST, &o, GB_EINVAL,
             "t.csv: a window of 50 rows and a horizon of 1 need 51 training rows, the "
             "training part has 8 (of 10 rows)");
    o.window = 6;
    o.horizon = 3;
    s_refuse(csv, GB_SPLIT_TRAIN, &o, GB_EINVAL,
             "t.csv: a window of 6 rows and a horizon of 3 need 9 training rows, the "
             "training part has 8 (of 10 rows)");
    /* the largest that fits: one training window */
    o.window = 7;
    o.horizon = 1;
    gb_dataset_t *ds = s_load(csv, GB_SPLIT_TRAIN, &o);
    assert_int_equal(ds->n, 1);
    gb_dataset_destroy(&ds);
    ds = s_load(csv, GB_SPLIT_TEST, &o);
    assert_int_equal(ds->n, 2);
    gb_dataset_destroy(&ds);

    /* API misuse */
    gb_error_t err = {0};
    assert_int_equal(gb_series_dataset(csv, NULL, GB_SPLIT_TRAIN, &o, NULL, &err), GB_EINVAL);
    ds = (gb_dataset_t *)1;
    assert_int_equal(gb_series_dataset(NULL, NULL, GB_SPLIT_TRAIN, &o, &ds, &err), GB_EINVAL);
    assert_null(ds);
    assert_int_equal(gb_series_dataset(csv, NULL, (gb_split_t)5, &o, &ds, &err), GB_EINVAL);
    assert_string_equal(err.msg, "t.csv: unknown split 5");
    gb_csv_destroy(&csv);
}

/* 20 rows t, y, x: y = t^2 / 10, x = 100 - t. */
static char *s_series_text(int rows, int change_from)
{
    size_t cap = 64 + (size_t)rows * 48;
    char *text = malloc(cap);
    assert_non_null(text);
    size_t len = (size_t)snprintf(text, cap, "t,y,x\n");
    for (int t = 0; t < rows; t++) {
        double y = t * t / 10.0, x = 100 - t;
        if (t >= change_from) { /* a different future */
            y = -1000 - t;
            x = 7;
        }
        len += (size_t)snprintf(text + len, cap - len, "%d,%g,%g\n", t, y, x);
    }
    return text;
}

static void test_series_regression(void **state)
{
    (void)state;
    const int R = 20, T = 3, K = 2;
    char *text = s_series_text(R, R);
    gb_csv_t *csv = s_csv(text);
    gb_data_opts_t o = GB_DATA_OPTS_INIT;
    o.label = "y";
    o.regression = true;
    o.window = T;
    o.horizon = K;
    o.test_fraction = 0.25; /* B = 15 */
    const int B = 15;
    gb_dataset_t *tr = s_load(csv, GB_SPLIT_TRAIN, &o);
    gb_dataset_t *te = s_load(csv, GB_SPLIT_TEST, &o);

    /* shapes and counts: B - (T + K - 1) and R - B windows */
    for (int s = 0; s < 2; s++) {
        gb_dataset_t *ds = s ? te : tr;
        assert_int_equal(ds->shape.rank, 2);
        assert_int_equal(ds->shape.dim[0], T);
        assert_int_equal(ds->shape.dim[1], 3);
        assert_int_equal(ds->shape.dim[2], 1);
        assert_int_equal(gb_dataset_sample_size(ds), T * 3);
        assert_null(ds->features);
        assert_null(ds->pixels);
        assert_null(ds->labels);
        assert_non_null(ds->rows);
        assert_non_null(ds->starts);
        assert_int_equal(ds->horizon, K);
        assert_int_equal(ds->target_col, 1);
        assert_int_equal(gb_dataset_task(ds), GB_TASK_REGRESSION);
    }
    assert_int_equal(tr->n, B - (T + K - 1));
    assert_int_equal(te->n, R - B);

    /* the time split: the training part holds rows 0..B-1 only, and every
     * training window's inputs and target lie in it */
    assert_int_equal(tr->n_rows, B);
    for (int64_t i = 0; i < tr->n; i++) {
        assert_in_range(tr->starts[i], 0, B - 1);
        assert_true(tr->starts[i] + T - 1 < B);
        assert_true(gb_series_target_row(tr, i) < B);
    }
    /* the test part's rows start with the first test window's first row,
     * B - (T + K - 1) = 11, so its window i has target row 15 + i */
    assert_int_equal(te->n_rows, R - (B - (T + K - 1)));

    /* values: standardised with the training rows' statistics */
    double mean[3], sd[3];
    for (int c = 0; c < 3; c++)
        s_stats(csv, c, B, &mean[c], &sd[c]);
    s_close(tr->target_mean, mean[1]);
    s_close(tr->target_std, sd[1]);
    float *x = malloc(sizeof(float) * T * 3 * 16);
    float values[16];
    int32_t idx[16];
    assert_non_null(x);
    gb_error_t err = {0};
    for (int s = 0; s < 2; s++) {
        gb_dataset_t *ds = s ? te : tr;
        int64_t row0 = s ? B - (T + K - 1) : 0; /* CSV row of the dataset's row 0 */
        for (int i = 0; i < ds->n; i++)
            idx[i] = (int32_t)(ds->n - 1 - i); /* any order */
        assert_int_equal(gb_dataset_fill(ds, idx, (int)ds->n, x, NULL, values, &err), 0);
        for (int i = 0; i < ds->n; i++) {
            int64_t w = idx[i], first = row0 + ds->starts[w], target = first + T - 1 + K;
            if (s)
                assert_int_equal(target, B + w);
            else
                assert_true(target < B);
            for (int t = 0; t < T; t++)
                for (int c = 0; c < 3; c++)
                    s_close(x[(i * T + t) * 3 + c],
                            (gb_csv_value(csv, first + t, c) - mean[c]) / sd[c]);
            s_close(values[i], (gb_csv_value(csv, target, 1) - mean[1]) / sd[1]);
        }
    }

    /* the last-value baseline, by hand */
    double base = 0, got, units;
    for (int i = 0; i < te->n; i++) {
        double last = (gb_csv_value(csv, B + i - K, 1) - mean[1]) / sd[1];
        double y = (gb_csv_value(csv, B + i, 1) - mean[1]) / sd[1];
        base += (y - last) * (y - last);
    }
    base /= (double)te->n;
    assert_int_equal(gb_series_last_value_mse(te, &got, &units, &err), 0);
    s_close(got, base);
    s_close(units, base * sd[1] * sd[1]);
    assert_int_equal(gb_series_last_value_mse(te, &got, NULL, &err), 0);
    /* in file units directly when raw */
    o.raw = true;
    gb_dataset_t *raw = s_load(csv, GB_SPLIT_TEST, &o);
    double raw_mse, raw_units;
    assert_int_equal(gb_series_last_value_mse(raw, &raw_mse, &raw_units, &err), 0);
    s_close(raw_mse, units);
    assert_true(raw_mse == raw_units);
    assert_true(raw->rows[0] == gb_csv_value(csv, B - (T + K - 1), 0));
    gb_dataset_destroy(&raw);
    o.raw = false;

    /* no leak from the future: a different test part changes nothing in the
     * training split, statistics included */
    char *other = s_series_text(R, B);
    gb_csv_t *csv2 = s_csv(other);
    gb_dataset_t *tr2 = s_load(csv2, GB_SPLIT_TRAIN, &o);
    assert_int_equal(tr2->n, tr->n);
    assert_int_equal(tr2->n_rows, tr->n_rows);
    assert_memory_equal(tr2->rows, tr->rows, (size_t)tr->n_rows * 3 * sizeof(float));
    assert_memory_equal(tr2->starts, tr->starts, (size_t)tr->n * sizeof(int32_t));
    assert_memory_equal(tr2->targets, tr->targets, (size_t)tr->n * sizeof(float));
    assert_memory_equal(tr2->in_mean, tr->in_mean, 3 * sizeof(float));
    assert_memory_equal(tr2->in_std, tr->in_std, 3 * sizeof(float));
    assert_true(tr2->target_mean == tr->target_mean && tr2->target_std == tr->target_std);
    /* ... and a change at row B - 1 does */
    gb_dataset_destroy(&tr2);
    gb_csv_destroy(&csv2);
    free(other);
    other = s_series_text(R, B - 1);
    csv2 = s_csv(other);
    tr2 = s_load(csv2, GB_SPLIT_TRAIN, &o);
    assert_true(tr2->target_mean != tr->target_mean);
    gb_dataset_destroy(&tr2);
    gb_csv_destroy(&csv2);
    free(other);

    /* subset and limit keep windows working */
    int32_t pick[3] = {4, 0, 4};
    gb_dataset_t *sub = NULL;
    assert_int_equal(gb_dataset_subset(te, pick, 3, &sub, &err), 0);
    assert_int_equal(sub->n, 3);
    assert_int_equal(sub->n_rows, te->n_rows);
    assert_true(sub->targets[0] == te->targets[4] && sub->targets[1] == te->targets[0]);
    assert_int_equal(sub->starts[2], te->starts[4]);
    float xs[T * 3], xt[T * 3];
    int32_t one = 0, four = 4;
    assert_int_equal(gb_dataset_fill(sub, &one, 1, xs, NULL, NULL, &err), 0);
    assert_int_equal(gb_dataset_fill(te, &four, 1, xt, NULL, NULL, &err), 0);
    assert_memory_equal(xs, xt, sizeof xs);
    s_close(sub->in_mean[2], te->in_mean[2]);
    assert_true(sub->target_std == te->target_std);
    double sub_mse;
    assert_int_equal(gb_series_last_value_mse(sub, &sub_mse, NULL, &err), 0);
    gb_dataset_destroy(&sub);
    assert_int_equal(gb_dataset_limit(te, 2, &err), 0);
    assert_int_equal(te->n, 2);
    assert_int_equal(gb_dataset_fill(te, &one, 1, xs, NULL, values, &err), 0);
    assert_int_equal(gb_dataset_fill(te, &four, 1, xs, NULL, values, &err), GB_ERANGE);

    free(x);
    free(text);
    gb_dataset_destroy(&tr);
    gb_dataset_destroy(&te);
    gb_csv_destroy(&csv);
}

static void test_series_classification(void **state)
{
    (void)state;
    /* a label that is 1 when the next value rises */
    gb_csv_t *csv = s_csv("v,up\n1,1\n3,0\n2,1\n5,1\n6,0\n4,0\n3,1\n7,0\n2,1\n8,0\n");
    gb_data_opts_t o = GB_DATA_OPTS_INIT;
    o.label = "up";
    o.window = 2;
    o.features = "v";
    gb_dataset_t *tr = s_load(csv, GB_SPLIT_TRAIN, &o);
    gb_dataset_t *te = s_load(csv, GB_SPLIT_TEST, &o);
    assert_int_equal(tr->n, 8 - 2);
    assert_int_equal(te->n, 2);
    assert_int_equal(tr->n_classes, 2);
    assert_null(tr->targets);
    assert_int_equal(tr->shape.dim[1], 2); /* up (first, not listed) and v */
    assert_int_equal(tr->target_col, 0);
    for (int i = 0; i < tr->n; i++)
        assert_int_equal(tr->labels[i], (int)gb_csv_value(csv, i + 2, 1));
    assert_int_equal(te->labels[0], 1);
    assert_int_equal(te->labels[1], 0);
    int32_t idx[2] = {1, 0}, labels[2];
    float x[8];
    gb_error_t err = {0};
    assert_int_equal(gb_dataset_fill(te, idx, 2, x, labels, NULL, &err), 0);
    assert_int_equal(labels[0], 0);
    /* no last-value baseline for classes */
    double mse = 1;
    assert_int_equal(gb_series_last_value_mse(te, &mse, NULL, &err), GB_EINVAL);
    assert_string_equal(err.msg, "csv:t.csv: the last-value baseline needs a windowed regression "
                                 "series (csv: with a window)");
    assert_true(mse == 0);
    gb_dataset_destroy(&tr);
    gb_dataset_destroy(&te);
    gb_csv_destroy(&csv);
}

static void test_last_value_errors(void **state)
{
    (void)state;
    gb_error_t err = {0};
    double mse;
    gb_csv_t *csv = s_csv("x,y\n1,2\n2,3\n3,4\n4,5\n5,6\n");
    gb_data_opts_t o = GB_DATA_OPTS_INIT;
    o.label = "y";
    o.regression = true;
    gb_dataset_t *ds = s_load(csv, GB_SPLIT_TEST, &o); /* a table */
    assert_int_equal(gb_series_last_value_mse(ds, &mse, NULL, &err), GB_EINVAL);
    gb_dataset_destroy(&ds);
    o.window = 1;
    ds = s_load(csv, GB_SPLIT_TEST, &o);
    assert_int_equal(gb_series_last_value_mse(ds, &mse, NULL, &err), 0);
    assert_true(mse > 0);
    assert_int_equal(gb_series_last_value_mse(ds, NULL, NULL, &err), GB_EINVAL);
    assert_int_equal(gb_series_last_value_mse(NULL, &mse, NULL, &err), GB_EINVAL);
    assert_int_equal(gb_dataset_limit(ds, 0, &err), 0);
    assert_int_equal(gb_series_last_value_mse(ds, &mse, NULL, &err), GB_EINVAL);
    assert_string_equal(err.msg, "csv:t.csv: no samples for the last-value baseline");
    gb_dataset_destroy(&ds);
    gb_csv_destroy(&csv);
}

static void test_alloc_failure(void **state)
{
    (void)state;
    char *text = s_series_text(20, 20);
    gb_csv_t *csv = s_csv(text);
    gb_data_opts_t opts[3] = {GB_DATA_OPTS_INIT, GB_DATA_OPTS_INIT, GB_DATA_OPTS_INIT};
    opts[0].label = "t"; /* table, classification */
    opts[1].label = "y";
    opts[1].regression = true;
    opts[1].window = 4; /* series, regression */
    opts[2].label = "t";
    opts[2].window = 2; /* series, classification, raw, listed inputs */
    opts[2].raw = true;
    opts[2].features = "x";
    for (int k = 0; k < 3; k++) {
        int failures = 0, ok = 0;
        for (long j = 1; j < 40 && !ok; j++) {
            gb_error_t err = {0};
            gb_dataset_t *ds = (gb_dataset_t *)1;
            gb_alloc_fail_after(j);
            int rc = gb_series_dataset(csv, NULL, GB_SPLIT_TEST, &opts[k], &ds, &err);
            gb_alloc_fail_after(0);
            if (rc == 0) {
                ok = 1;
                /* then the subset of it */
                int32_t idx[2] = {1, 0};
                for (long m = 1; m < 40; m++) {
                    gb_dataset_t *sub = (gb_dataset_t *)1;
                    gb_alloc_fail_after(m);
                    rc = gb_dataset_subset(ds, idx, 2, &sub, &err);
                    gb_alloc_fail_after(0);
                    if (rc == 0) {
                        gb_dataset_destroy(&sub);
                        break;
                    }
                    assert_int_equal(rc, GB_ENOMEM);
                    assert_null(sub);
                }
                gb_dataset_destroy(&ds);
                break;
            }
            assert_int_equal(rc, GB_ENOMEM);
            assert_int_equal(err.code, GB_ENOMEM);
            assert_null(ds);
            failures++;
        }
        assert_true(ok);
        assert_true(failures >= 4);
    }
    gb_csv_destroy(&csv);

    /* the whole load: file, table, dataset */
    char *dir = gb_test_mkdtemp();
    char name[512];
    char *path = gb_test_write_csv(dir, "s.csv", text, name, sizeof name);
    for (long j = 1; j < 60; j++) {
        gb_error_t err = {0};
        gb_dataset_t *ds = (gb_dataset_t *)1;
        gb_alloc_fail_after(j);
        int rc = gb_dataset_load_opts(name, GB_SPLIT_TRAIN, &opts[1], &ds, &err);
        gb_alloc_fail_after(0);
        if (rc == 0) {
            assert_int_equal(ds->n, 16 - 4);
            gb_dataset_destroy(&ds);
            break;
        }
        assert_int_equal(rc, GB_ENOMEM);
        assert_null(ds);
    }
    free(path);
    gb_test_rmtree(dir);
    free(dir);
    free(text);
}

/* Trains `dense 1` on flattened windows (a linear autoregression) with Adam
 * and returns the test MSE in standardised units. */
static double s_linear_forecast(gb_dataset_t *tr, gb_dataset_t *te)
{
    gb_error_t err = {0};
    char spec[128];
    snprintf(spec, sizeof spec, "input %d %d\nflatten\ndense 1\n", tr->shape.dim[0],
             tr->shape.dim[1]);
    gb_model_t *m = gb_model_new(spec, &err);
    if (!m)
        fail_msg("%s", err.msg);
    gb_model_init(m, 1);
    assert_int_equal(gb_model_plan(m, 32, 1, &err), 0);
    gb_optim_cfg_t cfg = gb_optim_defaults(GB_OPTIM_ADAM);
    cfg.lr = 0.01f;
    gb_optim_t *opt = gb_optim_new(&cfg, gb_model_param_count(m), &err);
    assert_non_null(opt);
    gb_batches_t train = {tr, gb_dataset_fill, tr->n, gb_dataset_loss(tr)};
    gb_batches_t test = {te, gb_dataset_fill, te->n, gb_dataset_loss(te)};
    gb_epoch_stats_t st;
    for (int e = 0; e < 40; e++) {
        gb_train_cfg_t tc = {.batch = 32, .seed = 7, .epoch = e};
        if (gb_train_epoch(m, opt, &train, &tc, &st, &err))
            fail_msg("%s", err.msg);
    }
    if (gb_evaluate(m, &test, 32, &st, &err))
        fail_msg("%s", err.msg);
    gb_optim_destroy(&opt);
    gb_model_destroy(&m);
    return st.mean_loss;
}

static void test_sunspots(void **state)
{
    (void)state;
    if (!gb_test_exists(SUNSPOTS)) { /* apt-get install python3-statsmodels */
        skip();
        return;
    }
    gb_error_t err = {0};
    gb_csv_t *csv = gb_csv_read(SUNSPOTS, &err);
    if (!csv)
        fail_msg("%s", err.msg);
    /* "YEAR","SUNACTIVITY": 1700..2008, quoted names */
    assert_int_equal(csv->n_cols, 2);
    assert_int_equal(csv->n_rows, 309);
    assert_string_equal(csv->cols[0].name, "YEAR");
    assert_string_equal(csv->cols[1].name, "SUNACTIVITY");
    assert_true(gb_csv_value(csv, 0, 0) == 1700.0f && gb_csv_value(csv, 308, 0) == 2008.0f);
    assert_true(gb_csv_value(csv, 0, 1) == 5.0f);
    gb_csv_destroy(&csv);

    const char *name = "csv:" SUNSPOTS;
    gb_data_opts_t o = GB_DATA_OPTS_INIT;
    o.label = "SUNACTIVITY";
    o.regression = true;
    o.window = 10;
    o.horizon = 1;
    o.features = "SUNACTIVITY";
    gb_dataset_t *tr = NULL, *te = NULL;
    assert_int_equal(gb_dataset_load_opts(name, GB_SPLIT_TRAIN, &o, &tr, &err), 0);
    assert_int_equal(gb_dataset_load_opts(name, GB_SPLIT_TEST, &o, &te, &err), 0);
    /* B = floor(0.8 x 309) = 247: 247 - 10 training windows, 309 - 247 test */
    assert_int_equal(tr->n, 237);
    assert_int_equal(te->n, 62);
    assert_int_equal(tr->shape.rank, 2);
    assert_int_equal(tr->shape.dim[0], 10);
    assert_int_equal(tr->shape.dim[1], 1);
    assert_int_equal(tr->n_rows, 247); /* no test row in the training split */
    for (int64_t i = 0; i < tr->n; i++)
        assert_true(gb_series_target_row(tr, i) < 247);
    assert_int_equal(te->n_rows, 72);
    /* the first window is 1700..1709: 5, 11, 16, 23, 36, 58, 29, 20, 10, 8 */
    float x[10], y;
    int32_t first = 0;
    assert_int_equal(gb_dataset_fill(tr, &first, 1, x, NULL, &y, &err), 0);
    s_close(x[0] * tr->in_std[0] + tr->in_mean[0], 5.0);
    s_close(x[9] * tr->in_std[0] + tr->in_mean[0], 8.0);
    s_close(y * tr->target_std + tr->target_mean, 3.0); /* 1710 */

    /* the last-value baseline on the held-out tail */
    double base, base_units;
    assert_int_equal(gb_series_last_value_mse(te, &base, &base_units, &err), 0);
    assert_true(base > 0.9 && base < 1.0);                   /* 0.9544 */
    assert_true(base_units > 1100.0 && base_units < 1115.0); /* 1107.3 */

    /* a linear autoregression trained by the engine beats it (~0.33) */
    double model = s_linear_forecast(tr, te);
    assert_true(model < 0.6 * base);
    gb_dataset_destroy(&tr);
    gb_dataset_destroy(&te);

    /* every column by default: (T, 2) windows, label second */
    o.features = NULL;
    assert_int_equal(gb_dataset_load_opts(name, GB_SPLIT_TEST, &o, &te, &err), 0);
    assert_int_equal(te->shape.dim[1], 2);
    assert_int_equal(te->target_col, 1);
    double base2;
    assert_int_equal(gb_series_last_value_mse(te, &base2, NULL, &err), 0);
    assert_true(base2 == base);
    gb_dataset_destroy(&te);
}

int main(void)
{
    if (!getenv("GLASSBOX_LOG"))
        gb_log_set_level(GB_LOG_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_table_classification),
        cmocka_unit_test(test_table_regression),
        cmocka_unit_test(test_inputs),
        cmocka_unit_test(test_label_errors),
        cmocka_unit_test(test_option_errors),
        cmocka_unit_test(test_series_regression),
        cmocka_unit_test(test_series_classification),
        cmocka_unit_test(test_last_value_errors),
        cmocka_unit_test(test_alloc_failure),
        cmocka_unit_test(test_sunspots),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
