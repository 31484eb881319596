/* The dataset options that train and eval share (--data, --label,
 * --features, --window, --horizon, --regression, --test-fraction, --limit),
 * loading both splits, and checking that a model fits them. */
#ifndef GB_CLIENT_DATA_SOURCE_H
#define GB_CLIENT_DATA_SOURCE_H

#include <stdbool.h>

#include "util/args.h"
#include "data/dataset.h"
#include "engine/model.h"
#include "report.h"

#define GB_DATA_SOURCE_ARGS 8 /* entries gb_data_source_args fills */

typedef struct {
    const char *data;     /* fashion-mnist, idx:DIR or csv:FILE */
    const char *label;    /* csv: target column */
    const char *features; /* csv: input columns, comma-separated */
    int window;           /* csv: steps per sample (0: one row per sample) */
    int horizon;          /* csv: steps ahead of the window's last row */
    bool regression;      /* csv: real-valued target, MSE */
    double test_fraction; /* csv: last fraction of rows held out */
    int limit;            /* first N samples of each split (0: all) */
} gb_data_source_t;

/* Defaults: fashion-mnist, horizon 1, test fraction 0.2. */
gb_data_source_t gb_data_source_defaults(void);

/* Writes the option table entries for d into opts[0..GB_DATA_SOURCE_ARGS). */
void gb_data_source_args(gb_data_source_t *d, gb_arg_t *opts);

/* Loads the training split (if train is not NULL) and the test split, with
 * --limit applied, into new datasets the caller owns (gb_dataset_destroy).
 * On failure returns the error and frees what it loaded. */
int gb_data_source_load(const gb_data_source_t *d, gb_dataset_t **train, gb_dataset_t **test,
                        gb_error_t *err) GB_MUST_CHECK;

/* Refuses a model whose input size or output count does not fit ds. */
int gb_data_source_check_model(const gb_model_t *m, const gb_dataset_t *ds, const char *what,
                               gb_error_t *err) GB_MUST_CHECK;

/* Fills the regression part of a report for the test split: the task, and
 * for a windowed series the last-value baseline. Call once; then per
 * evaluation gb_data_source_units(test, mse, x) sets x->mse_units. */
void gb_data_source_extra(const gb_dataset_t *test, gb_report_extra_t *x);
void gb_data_source_units(const gb_dataset_t *test, double mse, gb_report_extra_t *x);

#endif
