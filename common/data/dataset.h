/* Datasets: labelled samples held in memory, loaded from IDX files (a CSV
 * table becomes one through data/series.h; both by name through
 * data/dataset_load.h: "fashion-mnist", "idx:DIR", "csv:FILE"), cut down to subsets (--limit, a
 * client's partition) and handed to the engine's training loop batch by batch
 * through gb_dataset_fill, which matches gb_fill_fn in engine/train.h.
 *
 * Images stay 8-bit in memory (60000 Fashion-MNIST images are 47 MB as bytes,
 * 188 MB as floats) and are converted to float, pixel * scale, one batch at a
 * time, into the caller's batch buffer. Loaded image datasets go further and
 * hold each image compressed (data/pixels.h: a zero-run code, 58% of the
 * bytes for Fashion-MNIST), decoded straight into the batch; the loader
 * streams the images file and compresses image by image, so the raw pixels
 * are never all in memory, not even while loading. Datasets made by
 * gb_dataset_new keep raw, writable bytes until gb_dataset_pack. Either way
 * gb_dataset_sample_u8 gives one image's bytes. Float features (a CSV table) are kept
 * as floats and copied. A windowed series (a CSV with a window) keeps its
 * rows once and an index of window starts: a window of T rows is T x F
 * contiguous floats of the row table, copied out by gb_dataset_fill, so T
 * times the memory is never spent.
 *
 * Two tasks: classification (labels set, n_classes >= 2; trained with
 * softmax cross-entropy) and regression (targets set, labels NULL, n_classes
 * 0; trained with MSE). CSV data is standardised by default with statistics
 * of the training rows only, and says so in in_mean/in_std and
 * target_mean/target_std, so results can be turned back into file units.
 *
 * Ownership: gb_dataset_load_idx, gb_dataset_new and gb_dataset_subset return a
 * dataset the caller owns and frees with gb_dataset_destroy; the dataset owns
 * every buffer it points to. Nothing here keeps a pointer to a caller's
 * memory. */
#ifndef GB_DATA_DATASET_H
#define GB_DATA_DATASET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "data/pixels.h"
#include "engine/loss.h"
#include "engine/shape.h"
#include "util/error.h"

/* Where `fashion-mnist` is read from (Debian package dataset-fashion-mnist). */
#define GB_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

typedef enum { GB_SPLIT_TRAIN, GB_SPLIT_TEST } gb_split_t;

typedef enum { GB_TASK_CLASSIFICATION, GB_TASK_REGRESSION } gb_task_t;

typedef struct {
    int64_t n;           /* number of samples, 0..INT32_MAX */
    gb_shape_t shape;    /* per-sample shape: (1, H, W) images, (F) tables, (T, F) windows */
    uint8_t *pixels;     /* n x size raw bytes, owned, writable (gb_dataset_new); or NULL when
                            packed, features or rows is used */
    gb_pixels_t *packed; /* n compressed images of size bytes (data/pixels.h), owned; or NULL.
                            What gb_dataset_load gives an image dataset */
    float *features;     /* n x size floats, owned; or NULL when pixels, packed or rows is used */
    float scale;         /* pixel -> float factor (1/255); unused for features and rows */
    int32_t *labels;     /* n class indices in [0, n_classes), owned; NULL for regression */
    int n_classes;       /* number of classes, >= 2; 0 for regression */
    char *name;          /* the name it was loaded by ("fashion-mnist"), owned */
    /* The fields below are for csv: data; image datasets leave them 0/NULL. */
    float *targets;     /* n x n_targets regression targets, owned; NULL for classification */
    int n_targets;      /* floats per target (1 for csv:); 0 for classification */
    float *rows;        /* windowed series: n_rows x F input rows in time order, owned; NULL
                           otherwise. Sample i is rows starts[i] .. starts[i] + T - 1 */
    int64_t n_rows;     /* windowed series: rows in `rows` */
    int32_t *starts;    /* windowed series: n first rows of the samples' windows, owned */
    int horizon;        /* windowed series: target row - last window row, >= 1 */
    int target_col;     /* windowed series: the column of `rows` that is the label column */
    float *in_mean;     /* F = last dim of shape floats, owned, or NULL: inputs are stored
                           standardised, x_stored = (x_file - in_mean) / in_std */
    float *in_std;      /* F floats > 0, owned; NULL when in_mean is */
    double target_mean; /* regression: y_stored = (y_file - target_mean) / target_std */
    double target_std;  /* regression: > 0, 1 when targets are in file units; else 0 */
} gb_dataset_t;

/* Options for gb_dataset_load_opts (data/dataset_load.h) and
 * gb_series_dataset (data/series.h); the csv: ones are refused for image
 * datasets (test_fraction is ignored there: they ship their own split).
 * Start from GB_DATA_OPTS_INIT. */
typedef struct {
    const char *label;    /* csv: the target column (--label); required */
    const char *features; /* csv: comma-separated input columns; NULL: every column but the
                             label (table) or every column (series; the label column is
                             always an input of a series, first when not listed) */
    int window;           /* csv: T >= 1 cuts the rows into windows of T rows; 0: a table,
                             one sample per row */
    int horizon;          /* csv with a window: K >= 1, the target is K rows after the
                             window's last row; must be 1 without a window */
    bool regression;      /* csv: the label is a real-valued target (MSE), not a class */
    double test_fraction; /* csv: the last fraction of the rows is test, in (0, 1) */
    bool raw;             /* csv: keep inputs and targets in file units (no standardising) */
} gb_data_opts_t;

#define GB_DATA_TEST_FRACTION 0.2 /* default test_fraction */
#define GB_DATA_MAX_CLASSES 10000 /* largest class count a csv: label may imply */
#define GB_DATA_OPTS_INIT                                                                          \
    ((gb_data_opts_t){.label = NULL,                                                               \
                      .features = NULL,                                                            \
                      .window = 0,                                                                 \
                      .horizon = 1,                                                                \
                      .regression = false,                                                         \
                      .test_fraction = GB_DATA_TEST_FRACTION,                                      \
                      .raw = false})

/* "train" or "test". */
const char *gb_split_name(gb_split_t split);

/* The idx:DIR loader with an explicit class count: n_classes > 0 makes any
 * label >= n_classes an error (GB_ERANGE); 0 infers it as gb_dataset_load
 * (data/dataset_load.h) does. `name` (NULL: "idx:DIR") becomes the dataset's name. */
int gb_dataset_load_idx(const char *dir, gb_split_t split, int n_classes, const char *name,
                        gb_dataset_t **out, gb_error_t *err) GB_MUST_CHECK;

/* A dataset of n zeroed samples of `shape` (rank 1..3) and zero labels, for
 * readers and tests to fill: raw uint8 pixels with scale 1/255 (compress them
 * afterwards with gb_dataset_pack), or float features with scale 1 when
 * `features`. n_classes >= 2. Returns NULL and fills err. */
gb_dataset_t *gb_dataset_new(const char *name, int64_t n, const gb_shape_t *shape, int n_classes,
                             bool features, gb_error_t *err);

/* A regression dataset of n zeroed samples of `shape` (rank 1..3, float
 * features) with n x n_targets zero targets (n_targets >= 1), labels NULL,
 * n_classes 0, target_std 1. Returns NULL and fills err. */
gb_dataset_t *gb_dataset_new_regression(const char *name, int64_t n, const gb_shape_t *shape,
                                        int n_targets, gb_error_t *err);

/* Classification when labels are set, regression when targets are. */
gb_task_t gb_dataset_task(const gb_dataset_t *ds);

/* Outputs a model needs: n_classes, or n_targets for regression. */
int gb_dataset_outputs(const gb_dataset_t *ds);

/* The loss for the task: GB_LOSS_SOFTMAX_CE or GB_LOSS_MSE. */
gb_loss_kind_t gb_dataset_loss(const gb_dataset_t *ds);

/* An MSE over this dataset's stored targets in file units: mse x
 * target_std^2 (mse unchanged when targets are not standardised). */
double gb_dataset_mse_units(const gb_dataset_t *ds, double mse);

/* Compresses raw pixels in place: ds->pixels becomes ds->packed (the raw
 * bytes are freed), with the same samples, fill and subset results. Does
 * nothing to a dataset without raw pixels (packed already, features, rows).
 * Needs the compressed and the raw images in memory at once; on failure
 * (GB_ENOMEM, or GB_ERANGE over GB_PIXELS_MAX_BYTES of images) the dataset is
 * unchanged. */
int gb_dataset_pack(gb_dataset_t *ds, gb_error_t *err) GB_MUST_CHECK;

/* Copies the sample_size bytes of image i (0 <= i < n) into out, from raw or
 * packed pixels alike: the accessor for code that wants an image's bytes
 * rather than a batch of floats. GB_EINVAL for a dataset without pixels
 * (features or rows), GB_ERANGE for i out of range, GB_EFORMAT for a corrupt
 * packed store (which only memory corruption can make). */
int gb_dataset_sample_u8(const gb_dataset_t *ds, int64_t i, uint8_t *out,
                         gb_error_t *err) GB_MUST_CHECK;

/* Frees the dataset and its buffers; sets *ds to NULL; safe on NULL. */
void gb_dataset_destroy(gb_dataset_t **ds);

/* Floats per sample (the product of shape). */
size_t gb_dataset_sample_size(const gb_dataset_t *ds);

/* gb_fill_fn for a gb_dataset_t *source: writes samples idx[0..n) into x
 * (n x sample size floats, pixel * scale; a window is copied out of the row
 * table) and their targets: classes into labels for classification (values
 * untouched), or n x n_targets floats into values for regression (labels
 * untouched); either buffer may be NULL to skip it. Packed images are
 * decoded straight into x, with the same floats as raw ones. No allocation;
 * an index outside [0, n) is GB_ERANGE, a corrupt packed store GB_EFORMAT,
 * with x partly written (never past n samples). */
int gb_dataset_fill(void *source, const int32_t *idx, int n, float *x, int32_t *labels,
                    float *values, gb_error_t *err);

/* A new dataset holding copies of samples idx[0..n) (in that order; repeats
 * allowed), with the same shape, scale, n_classes, name and every csv: field
 * (targets, standardisation; a windowed series copies its whole row table
 * and the chosen window starts). Packed images stay packed (copied as they
 * are, not re-encoded; n x sample size over GB_PIXELS_MAX_BYTES is
 * GB_ERANGE). n may be 0. */
int gb_dataset_subset(const gb_dataset_t *ds, const int32_t *idx, int64_t n, gb_dataset_t **out,
                      gb_error_t *err) GB_MUST_CHECK;

/* Keeps only the first n samples (n >= 0; n >= ds->n changes nothing), in
 * place, giving the spare memory back when the allocator can (labels or
 * targets, and pixels, packed images, features or window starts; a series
 * keeps its rows). */
int gb_dataset_limit(gb_dataset_t *ds, int64_t n, gb_error_t *err) GB_MUST_CHECK;

#endif
