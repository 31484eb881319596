/* Loading a dataset by the name users give on the command line and in
 * configs: "fashion-mnist", "idx:DIR" or "csv:FILE". It is the one place that
 * knows every reader, so it sits above them: the IDX loader of
 * data/dataset.h and the CSV table of data/csv.h cut into samples by
 * data/series.h, which itself builds on data/dataset.h (a series is a
 * dataset). Keeping the dispatch out of dataset.c is what keeps dataset.c and
 * series.c from calling each other.
 *
 * Ownership: what gb_dataset_load and gb_dataset_load_opts return in *out is
 * the caller's, freed with gb_dataset_destroy (data/dataset.h). */
#ifndef GB_DATA_DATASET_LOAD_H
#define GB_DATA_DATASET_LOAD_H

#include "data/dataset.h"
#include "util/error.h"

/* Loads one split of a dataset by name:
 *   fashion-mnist  idx:GB_FASHION_MNIST_DIR with exactly 10 classes;
 *   idx:DIR        DIR/{train,t10k}-{images-idx3,labels-idx1}-ubyte, each
 *                  plain or with .gz (plain preferred when both exist).
 * Images must be N x H x W unsigned bytes (shape 1 x H x W), labels N bytes;
 * the images are held compressed in `packed` (pixels is NULL), read and
 * compressed one at a time, and every check of gb_idx_read is made (a short,
 * long or corrupt file is an error naming it).
 * For idx:DIR, n_classes is 1 + the largest label in DIR's train and test
 * label files (both, so the two splits agree; a missing or unreadable other
 * file is skipped with a warning), and at least 2. On failure *out is NULL
 * and err says which file and what is wrong. The same as
 * gb_dataset_load_opts with default options, so csv:FILE fails here for want
 * of a label column (the message lists the file's columns). */
int gb_dataset_load(const char *name, gb_split_t split, gb_dataset_t **out, gb_error_t *err)
    GB_MUST_CHECK;

/* gb_dataset_load with options (NULL: GB_DATA_OPTS_INIT), which also loads
 *   csv:FILE       a CSV table read by gb_csv_read (data/csv.h) and cut into
 *                  samples by gb_series_dataset (data/series.h): one per row,
 *                  or one per window; train is the first 1 - test_fraction
 *                  of the rows, test the rest, never shuffled across.
 * Options that do not apply to an image dataset (label, features, window,
 * horizon other than 1, regression, raw) are refused with GB_EINVAL rather
 * than ignored. */
int gb_dataset_load_opts(const char *name, gb_split_t split, const gb_data_opts_t *opts,
                         gb_dataset_t **out, gb_error_t *err) GB_MUST_CHECK;

#endif
