/* The dataset options that train and eval share (--data, --label,
 * --features, --window, --horizon, --regression, --test-fraction, --limit),
 * the partition options of a simulated federation's client (--partition,
 * --clients, --index, --partition-seed, --partition-test), loading both
 * splits, and checking that a model fits them.
 *
 * Partitioning (data/partition.h) cuts the TRAINING split, after --limit, so
 * that client K of N gets the same slice on every machine; the test split
 * stays whole unless partition_test asks for it to be cut the same way
 * (same scheme, clients, index and seed). With clients 1 nothing is cut. */
#ifndef GB_CLIENT_DATA_SOURCE_H
#define GB_CLIENT_DATA_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/args.h"
#include "data/dataset.h"
#include "data/partition.h"
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
    const char *partition; /* iid, dirichlet:ALPHA or shards:K */
    int clients;          /* clients the training split is cut for (1: not cut) */
    int index;            /* this client's slice, 0..clients-1 */
    uint64_t partition_seed; /* the partition's seed: the same on every client */
    bool partition_test;  /* cut the test split the same way too */
} gb_data_source_t;

#define GB_DATA_SOURCE_PARTITION_ARGS 5 /* entries gb_data_source_partition_args fills */

/* Defaults: fashion-mnist, horizon 1, test fraction 0.2, partition iid for
 * 1 client (nothing cut), partition seed 1. */
gb_data_source_t gb_data_source_defaults(void);

/* Writes the option table entries for d into opts[0..GB_DATA_SOURCE_ARGS). */
void gb_data_source_args(gb_data_source_t *d, gb_arg_t *opts);

/* Writes the partition options (--partition, --clients, --index,
 * --partition-seed, --partition-test) into
 * opts[0..GB_DATA_SOURCE_PARTITION_ARGS). */
void gb_data_source_partition_args(gb_data_source_t *d, gb_arg_t *opts);

/* Checks the partition options before anything is loaded: the scheme
 * parses, clients >= 1 and index in 0..clients-1. GB_EUSAGE with err naming
 * the flag and the value ("--index 4 is outside 0..2 for --clients 3"). */
int gb_data_source_check(const gb_data_source_t *d, gb_error_t *err) GB_MUST_CHECK;

/* A one-line description for Join.dataset and logs: the dataset name,
 * then for more than one client the scheme and "index/clients"
 * ("fashion-mnist iid 3/10", "idx:/data dirichlet:0.5 0/4"). Always
 * NUL-terminated (cut to cap); returns buf. */
char *gb_data_source_describe(const gb_data_source_t *d, char *buf, size_t cap);

/* Loads the training split (if train is not NULL) and the test split, with
 * --limit applied, then this client's partition (see the top of this
 * file), into new datasets the caller owns (gb_dataset_destroy). A
 * regression dataset can only be cut iid (dirichlet and shards need
 * classes: GB_EINVAL). On failure returns the error and frees what it
 * loaded. */
int gb_data_source_load(const gb_data_source_t *d, gb_dataset_t **train, gb_dataset_t **test,
                        gb_error_t *err) GB_MUST_CHECK;

/* What cutting a data set among clients needs: the parsed --partition and
 * the labels to partition by (all zeros, in one class, for a regression
 * data set, which only iid may cut). */
typedef struct {
    gb_partition_t partition; /* parsed --partition */
    const int32_t *labels;    /* ds->labels, or zeros below */
    int n_classes;            /* classes of labels */
    int32_t *zeros;           /* owned: n zeros for a regression data set, else NULL */
} gb_partition_plan_t;

/* Fills *plan for cutting ds as d says. Errors: a bad --partition, a
 * non-iid partition of a regression data set (GB_EINVAL), GB_ENOMEM. Free
 * with gb_data_source_partition_plan_free (also after a failure). */
int gb_data_source_partition_plan(const gb_data_source_t *d, const gb_dataset_t *ds,
                                  gb_partition_plan_t *plan, gb_error_t *err) GB_MUST_CHECK;
void gb_data_source_partition_plan_free(gb_partition_plan_t *plan);

/* Refuses a model whose input size or output count does not fit ds. */
int gb_data_source_check_model(const gb_model_t *m, const gb_dataset_t *ds, const char *what,
                               gb_error_t *err) GB_MUST_CHECK;

/* Fills the regression part of a report for the test split: the task, and
 * for a windowed series the last-value baseline. Call once; then per
 * evaluation gb_data_source_units(test, mse, x) sets x->mse_units. */
void gb_data_source_extra(const gb_dataset_t *test, gb_report_extra_t *x);
void gb_data_source_units(const gb_dataset_t *test, double mse, gb_report_extra_t *x);

#endif
