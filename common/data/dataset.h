/* Datasets: labelled samples held in memory, loaded by name
 * ("fashion-mnist", "idx:DIR"), cut down to subsets (--limit, a client's
 * partition) and handed to the engine's training loop batch by batch through
 * gb_dataset_fill, which matches gb_fill_fn in engine/train.h.
 *
 * Images stay uint8 in memory (60000 Fashion-MNIST images are 47 MB as bytes,
 * 188 MB as floats) and are converted to float, pixel * scale, one batch at a
 * time, into the caller's batch buffer. Float features (CSV, later) are kept
 * as floats and copied.
 *
 * Ownership: gb_dataset_load, gb_dataset_new and gb_dataset_subset return a
 * dataset the caller owns and frees with gb_dataset_destroy; the dataset owns
 * every buffer it points to. Nothing here keeps a pointer to a caller's
 * memory. */
#ifndef GB_DATA_DATASET_H
#define GB_DATA_DATASET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/shape.h"
#include "util/error.h"

/* Where `fashion-mnist` is read from (Debian package dataset-fashion-mnist). */
#define GB_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

typedef enum { GB_SPLIT_TRAIN, GB_SPLIT_TEST } gb_split_t;

typedef struct {
    int64_t n;        /* number of samples, 0..INT32_MAX */
    gb_shape_t shape; /* per-sample shape, (1, H, W) for images */
    uint8_t *pixels;  /* n x size bytes, owned; or NULL when features is used */
    float *features;  /* n x size floats, owned; or NULL when pixels is used */
    float scale;      /* pixel -> float factor (1/255); unused for features */
    int32_t *labels;  /* n class indices in [0, n_classes), owned */
    int n_classes;    /* number of classes, >= 2 */
    char *name;       /* the name it was loaded by ("fashion-mnist"), owned */
} gb_dataset_t;

/* "train" or "test". */
const char *gb_split_name(gb_split_t split);

/* Loads one split of a dataset by name:
 *   fashion-mnist  idx:GB_FASHION_MNIST_DIR with exactly 10 classes;
 *   idx:DIR        DIR/{train,t10k}-{images-idx3,labels-idx1}-ubyte, each
 *                  plain or with .gz (plain preferred when both exist).
 * Images must be N x H x W unsigned bytes (shape 1 x H x W), labels N bytes.
 * For idx:DIR, n_classes is 1 + the largest label in DIR's train and test
 * label files (both, so the two splits agree; a missing or unreadable other
 * file is skipped with a warning), and at least 2. On failure *out is NULL
 * and err says which file and what is wrong. */
int gb_dataset_load(const char *name, gb_split_t split, gb_dataset_t **out, gb_error_t *err)
    GB_MUST_CHECK;

/* The idx:DIR loader with an explicit class count: n_classes > 0 makes any
 * label >= n_classes an error (GB_ERANGE); 0 infers it as gb_dataset_load
 * does. `name` (NULL: "idx:DIR") becomes the dataset's name. */
int gb_dataset_load_idx(const char *dir, gb_split_t split, int n_classes, const char *name,
                        gb_dataset_t **out, gb_error_t *err) GB_MUST_CHECK;

/* A dataset of n zeroed samples of `shape` (rank 1..3) and zero labels, for
 * readers and tests to fill: uint8 pixels with scale 1/255, or float features
 * with scale 1 when `features`. n_classes >= 2. Returns NULL and fills err. */
gb_dataset_t *gb_dataset_new(const char *name, int64_t n, const gb_shape_t *shape, int n_classes,
                             bool features, gb_error_t *err);

/* Frees the dataset and its buffers; sets *ds to NULL; safe on NULL. */
void gb_dataset_destroy(gb_dataset_t **ds);

/* Floats per sample (the product of shape). */
size_t gb_dataset_sample_size(const gb_dataset_t *ds);

/* gb_fill_fn for a gb_dataset_t *source: writes samples idx[0..n) into x
 * (n x sample size floats, pixel * scale) and their classes into labels (if
 * not NULL). `values` is unused (classification only) and may be NULL. No
 * allocation; an index outside [0, n) is GB_ERANGE, with x partly written. */
int gb_dataset_fill(void *source, const int32_t *idx, int n, float *x, int32_t *labels,
                    float *values, gb_error_t *err);

/* A new dataset holding copies of samples idx[0..n) (in that order; repeats
 * allowed), with the same shape, scale, n_classes and name. n may be 0. */
int gb_dataset_subset(const gb_dataset_t *ds, const int32_t *idx, int64_t n, gb_dataset_t **out,
                      gb_error_t *err) GB_MUST_CHECK;

/* Keeps only the first n samples (n >= 0; n >= ds->n changes nothing), in
 * place, giving the spare memory back when the allocator can. */
int gb_dataset_limit(gb_dataset_t *ds, int64_t n, gb_error_t *err) GB_MUST_CHECK;

#endif
