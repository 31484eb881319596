/* From a CSV table to a dataset: a table (one sample per row) or a windowed
 * time series (one sample per window of rows), split by time, standardised
 * with training statistics, plus the last-value baseline a forecaster has to
 * beat.
 *
 * Rows are taken to be in time order, so the split never shuffles: with R
 * rows and test fraction f, the first B = floor((1 - f) x R) rows are the
 * training part and rows B..R-1 the test part.
 *
 * A table (window 0): sample i is row i's input columns (shape (F)), its
 * target the label column of the same row. Train is rows 0..B-1, test the
 * rest. The label column is never an input (it would give the answer away).
 *
 * A series (window T >= 1, horizon K >= 1): a sample's input is T
 * consecutive rows s..s+T-1 of the input columns (shape (T, F), row-major:
 * time outer), its target the label column at row s + T - 1 + K, K rows
 * after the last row it sees. The label column is always an input of a
 * series (a forecaster sees the past of the series it predicts); by default
 * every column is (a time index column such as YEAR is a legitimate input,
 * but one that only grows will be outside the training range in the test
 * part: list the inputs to leave it out). A window belongs to the part its
 * target row falls in. Training windows lie wholly in rows 0..B-1, input and
 * target, so nothing of the test part reaches training; test windows' targets
 * are rows B..R-1 and their inputs may reach back into the training rows
 * (that is the past, known at prediction time). So a series of R rows has
 * B - (T + K - 1) training windows and R - max(B, T + K - 1) test windows.
 * The dataset keeps only the rows its windows use (train: rows 0..B-1; test:
 * from the first test window's first row on) and an index of window starts.
 *
 * Targets: for classification the label column must hold integers 0..C-1
 * (checked in every row of the file, with line numbers; n_classes = max + 1,
 * at least 2, so both splits agree); for regression it is a real value.
 *
 * Standardising (unless opts->raw): each input column is stored as (x - mean)
 * / std with the mean and population standard deviation of the TRAINING rows
 * 0..B-1 only (std 1 for a constant column), the same for both splits; they
 * are kept in in_mean/in_std. A regression target is standardised with the
 * label column's statistics (target_mean/target_std), so the MSE the engine
 * reports is in standardised units: gb_dataset_mse_units turns it into file
 * units (x target_std^2). Classification labels are never changed.
 *
 * Ownership: gb_series_dataset returns a dataset the caller owns (free with
 * gb_dataset_destroy); it keeps no pointer into the CSV table. */
#ifndef GB_DATA_SERIES_H
#define GB_DATA_SERIES_H

#include <stdint.h>

#include "data/csv.h"
#include "data/dataset.h"
#include "util/error.h"

/* The first test row B = floor((1 - test_fraction) x n_rows) of a table of
 * n_rows rows, into *first_test. GB_EINVAL when test_fraction is not in
 * (0, 1) or when either part would be empty. */
int gb_series_split(int64_t n_rows, double test_fraction, int64_t *first_test,
                    gb_error_t *err) GB_MUST_CHECK;

/* One split of the CSV table as a dataset named `name` (NULL: "csv:" +
 * csv->path), cut as the file comment says. opts NULL means
 * GB_DATA_OPTS_INIT, which has no label, so it fails. Errors (GB_EINVAL for
 * options that do not fit the file, GB_ERANGE for a label that is not a class,
 * GB_ENOMEM) are logged when they are the input's fault and name the file,
 * line and column where there is one: "d.csv line 5, column 2 (y): 2.5 is
 * not an integer class ...", "d.csv line 1: no column named 'price'
 * (columns: a, b)", "d.csv: a window of 50 rows and a horizon of 1 need 51
 * training rows, the training part has 40 (of 50 rows)". */
int gb_series_dataset(const gb_csv_t *csv, const char *name, gb_split_t split,
                      const gb_data_opts_t *opts, gb_dataset_t **out,
                      gb_error_t *err) GB_MUST_CHECK;

/* The row of ds->rows that window sample i's target comes from (the
 * target itself is ds->targets[i] or ds->labels[i]). For a windowed
 * dataset; always < ds->n_rows. */
static inline int64_t gb_series_target_row(const gb_dataset_t *ds, int64_t i)
{
    return (int64_t)ds->starts[i] + ds->shape.dim[0] - 1 + ds->horizon;
}

/* The last-value (persistence) baseline on a windowed regression dataset:
 * predict each target as the label column's value in the last row of its
 * window. *mse receives its mean squared error over the dataset's samples in
 * the stored (standardised) units, directly comparable with the engine's
 * MSE on the same dataset; *mse_units (may be NULL) the same in file units.
 * GB_EINVAL for a dataset that is not a windowed regression series or has no
 * samples. */
int gb_series_last_value_mse(const gb_dataset_t *ds, double *mse, double *mse_units,
                             gb_error_t *err) GB_MUST_CHECK;

#endif
