/* Tests for data/dataset: loading a synthetic idx:DIR (plain and gzipped),
 * class-count inference, every load error (missing files, count mismatch,
 * label out of range, wrong dimensions, bad names), fill/subset/limit/new,
 * regression datasets (targets through fill, subset and limit; task, outputs,
 * loss, units), gb_dataset_load_opts (csv:FILE, and csv: options refused for
 * image datasets), allocation-failure injection, and the real Fashion-MNIST
 * when the Debian package is installed (skipped otherwise). Windowed series
 * are tested in test_series.c. Doubles as the usage example. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "data/dataset.h"
#include "engine/train.h"
#include "util/alloc.h"
#include "util/log.h"

/* gb_dataset_fill must be a gb_fill_fn: this fails to compile otherwise. */
static const gb_fill_fn s_fill = gb_dataset_fill;

#define H 3
#define W 2

static void s_put32(uint8_t *b, uint32_t v)
{
    b[0] = (uint8_t)(v >> 24);
    b[1] = (uint8_t)(v >> 16);
    b[2] = (uint8_t)(v >> 8);
    b[3] = (uint8_t)v;
}

/* Writes dir/name (gzipped when gz) as an IDX ubyte file of dims and data. */
static void s_write_idx(const char *dir, const char *name, int gz, int ndims,
                        const uint32_t *dims, const uint8_t *data)
{
    size_t len = 1;
    for (int i = 0; i < ndims; i++)
        len *= dims[i];
    size_t head = 4 + 4 * (size_t)ndims;
    uint8_t *buf = malloc(head + len);
    assert_non_null(buf);
    buf[0] = 0;
    buf[1] = 0;
    buf[2] = 0x08;
    buf[3] = (uint8_t)ndims;
    for (int i = 0; i < ndims; i++)
        s_put32(buf + 4 + 4 * i, dims[i]);
    memcpy(buf + head, data, len);
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (gz) {
        gzFile f = gzopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(gzwrite(f, buf, (unsigned)(head + len)), (int)(head + len));
        assert_int_equal(gzclose(f), Z_OK);
    } else {
        free(gb_test_write_file(dir, name, buf, head + len));
    }
    free(buf);
}

/* Pixel of sample i at offset k. */
static uint8_t s_pixel(int split, int i, int k)
{
    return (uint8_t)(split * 100 + i * 7 + k * 13);
}

/* A split of n images HxW and labels; `ext` is "" or ".gz". */
static void s_write_split(const char *dir, const char *prefix, int split, int n,
                          const uint8_t *labels, int gz)
{
    uint8_t *img = malloc((size_t)n * H * W);
    assert_non_null(img);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < H * W; k++)
            img[i * H * W + k] = s_pixel(split, i, k);
    char name[128];
    uint32_t d3[3] = {(uint32_t)n, H, W};
    snprintf(name, sizeof name, "%s-images-idx3-ubyte%s", prefix, gz ? ".gz" : "");
    s_write_idx(dir, name, gz, 3, d3, img);
    uint32_t d1 = (uint32_t)n;
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte%s", prefix, gz ? ".gz" : "");
    s_write_idx(dir, name, gz, 1, &d1, labels);
    free(img);
}

static const uint8_t s_train_labels[6] = {0, 1, 2, 1, 0, 2};
static const uint8_t s_test_labels[4] = {3, 0, 1, 2}; /* max over both: 3 -> 4 classes */

/* A directory with a plain train split and a gzipped test split. */
static char *s_make_dir(void)
{
    char *dir = gb_test_mkdtemp();
    s_write_split(dir, "train", 0, 6, s_train_labels, 0);
    s_write_split(dir, "t10k", 1, 4, s_test_labels, 1);
    return dir;
}

static char *s_spec(const char *dir)
{
    size_t cap = strlen(dir) + 8;
    char *s = malloc(cap);
    assert_non_null(s);
    snprintf(s, cap, "idx:%s", dir);
    return s;
}

static void test_load_idx_dir(void **state)
{
    (void)state;
    char *dir = s_make_dir();
    char *spec = s_spec(dir);
    gb_dataset_t *ds = NULL;
    gb_error_t err = {0};

    assert_int_equal(gb_dataset_load(spec, GB_SPLIT_TRAIN, &ds, &err), 0);
    assert_non_null(ds);
    assert_int_equal(ds->n, 6);
    assert_int_equal(ds->shape.rank, 3);
    assert_int_equal(ds->shape.dim[0], 1);
    assert_int_equal(ds->shape.dim[1], H);
    assert_int_equal(ds->shape.dim[2], W);
    assert_int_equal(gb_dataset_sample_size(ds), H * W);
    assert_int_equal(ds->n_classes, 4); /* from the test split's label 3 */
    assert_string_equal(ds->name, spec);
    assert_non_null(ds->pixels);
    assert_null(ds->features);
    assert_true(ds->scale == 1.0f / 255.0f);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(ds->labels[i], s_train_labels[i]);
        for (int k = 0; k < H * W; k++)
            assert_int_equal(ds->pixels[i * H * W + k], s_pixel(0, i, k));
    }
    gb_dataset_destroy(&ds);
    assert_null(ds);
    gb_dataset_destroy(&ds); /* NULL-safe */
    gb_dataset_destroy(NULL);

    assert_int_equal(gb_dataset_load(spec, GB_SPLIT_TEST, &ds, &err), 0);
    assert_int_equal(ds->n, 4);
    assert_int_equal(ds->n_classes, 4);
    assert_int_equal(ds->labels[0], 3);
    assert_int_equal(ds->pixels[H * W + 1], s_pixel(1, 1, 1));
    gb_dataset_destroy(&ds);

    /* explicit class count and name */
    assert_int_equal(gb_dataset_load_idx(dir, GB_SPLIT_TRAIN, 7, "mine", &ds, &err), 0);
    assert_int_equal(ds->n_classes, 7);
    assert_string_equal(ds->name, "mine");
    gb_dataset_destroy(&ds);
    assert_int_equal(gb_dataset_load_idx(dir, GB_SPLIT_TRAIN, 0, NULL, &ds, &err), 0);
    assert_string_equal(ds->name, spec);
    gb_dataset_destroy(&ds);

    /* only one split present: classes from it alone; all-zero labels -> 2 */
    char *one = gb_test_mkdtemp();
    uint8_t zeros[3] = {0, 0, 0};
    s_write_split(one, "train", 0, 3, zeros, 1);
    assert_int_equal(gb_dataset_load_idx(one, GB_SPLIT_TRAIN, 0, NULL, &ds, &err), 0);
    assert_int_equal(ds->n_classes, 2);
    gb_dataset_destroy(&ds);
    /* the missing test split is an error naming the file */
    assert_int_equal(gb_dataset_load_idx(one, GB_SPLIT_TEST, 0, NULL, &ds, &err), GB_EIO);
    assert_null(ds);
    assert_non_null(strstr(err.msg, "neither t10k-images-idx3-ubyte nor "
                                    "t10k-images-idx3-ubyte.gz found"));
    /* a corrupt other-split labels file only costs the inference */
    free(gb_test_write_file(one, "t10k-labels-idx1-ubyte", "junk", 4));
    assert_int_equal(gb_dataset_load_idx(one, GB_SPLIT_TRAIN, 0, NULL, &ds, &err), 0);
    assert_int_equal(ds->n_classes, 2);
    gb_dataset_destroy(&ds);
    gb_test_rmtree(one);
    free(one);

    /* plain preferred when both plain and .gz exist */
    s_write_split(dir, "train", 0, 6, s_train_labels, 1); /* same content, gzipped */
    uint8_t other[6] = {5, 5, 5, 5, 5, 5};
    uint32_t d1 = 6;
    s_write_idx(dir, "train-labels-idx1-ubyte.gz", 1, 1, &d1, other);
    assert_int_equal(gb_dataset_load(spec, GB_SPLIT_TRAIN, &ds, &err), 0);
    assert_int_equal(ds->labels[0], 0);
    gb_dataset_destroy(&ds);

    free(spec);
    gb_test_rmtree(dir);
    free(dir);
}

static void test_load_errors(void **state)
{
    (void)state;
    gb_dataset_t *ds = (gb_dataset_t *)1; /* must be reset to NULL on failure */
    gb_error_t err = {0};

    assert_int_equal(gb_dataset_load("mnist-of-sorts", GB_SPLIT_TRAIN, &ds, &err), GB_EINVAL);
    assert_null(ds);
    assert_string_equal(err.msg, "unknown dataset 'mnist-of-sorts': expected fashion-mnist, "
                                 "idx:DIR or csv:FILE");
    assert_int_equal(gb_dataset_load("", GB_SPLIT_TRAIN, &ds, &err), GB_EINVAL);
    assert_int_equal(gb_dataset_load(NULL, GB_SPLIT_TRAIN, &ds, &err), GB_EINVAL);
    assert_int_equal(gb_dataset_load("idx:", GB_SPLIT_TRAIN, &ds, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "needs a directory"));
    assert_int_equal(gb_dataset_load("csv:/nonexistent/x.csv", GB_SPLIT_TRAIN, &ds, &err),
                     GB_EIO);
    assert_non_null(strstr(err.msg, "/nonexistent/x.csv"));
    assert_int_equal(gb_dataset_load("idx:/x", GB_SPLIT_TRAIN, NULL, &err), GB_EINVAL);
    assert_int_equal(gb_dataset_load("idx:/nonexistent/dir", GB_SPLIT_TRAIN, &ds, &err), GB_EIO);
    assert_non_null(strstr(err.msg, "/nonexistent/dir: cannot open dataset directory"));

    char *dir = gb_test_mkdtemp();
    assert_int_equal(gb_dataset_load_idx(dir, GB_SPLIT_TRAIN, 1, NULL, &ds, &err), GB_EINVAL);
    assert_int_equal(gb_dataset_load_idx(dir, GB_SPLIT_TRAIN, -1, NULL, &ds, &err), GB_EINVAL);
    assert_int_equal(gb_dataset_load_idx(dir, (gb_split_t)7, 0, NULL, &ds, &err), GB_EINVAL);
    assert_int_equal(gb_dataset_load_idx("", GB_SPLIT_TRAIN, 0, NULL, &ds, &err), GB_EINVAL);
    char *file = gb_test_write_file(dir, "plainfile", "x", 1);
    assert_int_equal(gb_dataset_load_idx(file, GB_SPLIT_TRAIN, 0, NULL, &ds, &err), GB_EIO);
    assert_non_null(strstr(err.msg, "not a directory"));
    free(file);

    /* empty directory */
    assert_int_equal(gb_dataset_load_idx(dir, GB_SPLIT_TRAIN, 0, NULL, &ds, &err), GB_EIO);
    assert_non_null(strstr(err.msg, "neither train-images-idx3-ubyte nor"));

    /* images but no labels */
    uint8_t lab[5] = {0, 1, 2, 3, 5};
    s_write_split(dir, "train", 0, 5, lab, 0);
    char path[512];
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte", dir);
    remove(path);
    assert_int_equal(gb_dataset_load_idx(dir, GB_SPLIT_TRAIN, 0, NULL, &ds, &err), GB_EIO);
    assert_non_null(strstr(err.msg, "neither train-labels-idx1-ubyte nor"));

    /* count mismatch: 5 images, 4 labels */
    uint32_t d1 = 4;
    s_write_idx(dir, "train-labels-idx1-ubyte", 0, 1, &d1, lab);
    assert_int_equal(gb_dataset_load_idx(dir, GB_SPLIT_TRAIN, 0, NULL, &ds, &err), GB_EFORMAT);
    assert_null(ds);
    assert_non_null(strstr(err.msg, "5 images in"));
    assert_non_null(strstr(err.msg, "but 4 labels in"));

    /* label out of range for a fixed class count */
    d1 = 5;
    s_write_idx(dir, "train-labels-idx1-ubyte", 0, 1, &d1, lab);
    assert_int_equal(gb_dataset_load_idx(dir, GB_SPLIT_TRAIN, 3, NULL, &ds, &err), GB_ERANGE);
    assert_null(ds);
    assert_non_null(strstr(err.msg, "train-labels-idx1-ubyte: sample 3 has label 3, "
                                    "expected 0..2"));
    assert_int_equal(gb_dataset_load_idx(dir, GB_SPLIT_TRAIN, 0, NULL, &ds, &err), 0);
    assert_int_equal(ds->n_classes, 6);
    gb_dataset_destroy(&ds);

    /* wrong dimension counts: labels file given as images, images as labels */
    uint32_t d2[2] = {5, 6};
    uint8_t flat[30] = {0};
    s_write_idx(dir, "train-images-idx3-ubyte", 0, 2, d2, flat);
    assert_int_equal(gb_dataset_load_idx(dir, GB_SPLIT_TRAIN, 0, NULL, &ds, &err), GB_EFORMAT);
    assert_non_null(strstr(err.msg, "images file has 2 dimensions, expected 3"));
    s_write_split(dir, "train", 0, 5, lab, 0);
    s_write_idx(dir, "train-labels-idx1-ubyte", 0, 2, d2, flat);
    assert_int_equal(gb_dataset_load_idx(dir, GB_SPLIT_TRAIN, 0, NULL, &ds, &err), GB_EFORMAT);
    assert_non_null(strstr(err.msg, "labels file has 2 dimensions, expected 1"));

    /* a damaged images file: the IDX reader's message comes through */
    free(gb_test_write_file(dir, "train-images-idx3-ubyte", "\0\0\x08\x03\0\0", 6));
    assert_int_equal(gb_dataset_load_idx(dir, GB_SPLIT_TRAIN, 0, NULL, &ds, &err), GB_EFORMAT);
    assert_non_null(strstr(err.msg, "train-images-idx3-ubyte: truncated header"));

    gb_test_rmtree(dir);
    free(dir);
}

static void test_fill(void **state)
{
    (void)state;
    char *dir = s_make_dir();
    gb_dataset_t *ds = NULL;
    gb_error_t err = {0};
    assert_int_equal(gb_dataset_load_idx(dir, GB_SPLIT_TRAIN, 0, NULL, &ds, &err), 0);

    int32_t idx[4] = {5, 0, 5, 2};
    float x[4 * H * W];
    int32_t labels[4] = {-1, -1, -1, -1};
    assert_int_equal(s_fill(ds, idx, 4, x, labels, NULL, &err), 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(labels[i], s_train_labels[idx[i]]);
        for (int k = 0; k < H * W; k++)
            assert_true(x[i * H * W + k] == (float)s_pixel(0, idx[i], k) * (1.0f / 255.0f));
    }
    /* labels may be NULL; n = 0 touches nothing */
    assert_int_equal(gb_dataset_fill(ds, idx, 2, x, NULL, NULL, &err), 0);
    assert_int_equal(gb_dataset_fill(ds, NULL, 0, NULL, NULL, NULL, &err), 0);
    /* out of range */
    int32_t bad[2] = {1, 6};
    assert_int_equal(gb_dataset_fill(ds, bad, 2, x, labels, NULL, &err), GB_ERANGE);
    assert_non_null(strstr(err.msg, "sample index 6 out of range 0..5"));
    bad[1] = -1;
    assert_int_equal(gb_dataset_fill(ds, bad, 2, x, labels, NULL, &err), GB_ERANGE);
    assert_int_equal(gb_dataset_fill(ds, idx, -1, x, labels, NULL, &err), GB_EINVAL);
    assert_int_equal(gb_dataset_fill(NULL, idx, 1, x, labels, NULL, &err), GB_EINVAL);

    /* through the engine's batch description */
    gb_batches_t batches = {.source = ds, .fill = gb_dataset_fill, .n = ds->n};
    assert_int_equal(batches.fill(batches.source, idx, 1, x, labels, NULL, NULL), 0);
    assert_int_equal(labels[0], 2);

    gb_dataset_destroy(&ds);
    gb_test_rmtree(dir);
    free(dir);
}

static void test_new_subset_limit(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_shape_t shape = {.rank = 2, .dim = {2, 3, 0}};
    gb_dataset_t *ds = gb_dataset_new("synthetic", 5, &shape, 3, false, &err);
    assert_non_null(ds);
    assert_int_equal(ds->shape.dim[2], 1); /* unused entries are 1 */
    assert_int_equal(gb_dataset_sample_size(ds), 6);
    assert_non_null(ds->pixels);
    assert_null(ds->features);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(ds->labels[i], 0);
        ds->labels[i] = i % 3;
        for (int k = 0; k < 6; k++) {
            assert_int_equal(ds->pixels[i * 6 + k], 0);
            ds->pixels[i * 6 + k] = (uint8_t)(10 * i + k);
        }
    }

    int32_t pick[4] = {4, 1, 1, 0};
    gb_dataset_t *sub = NULL;
    assert_int_equal(gb_dataset_subset(ds, pick, 4, &sub, &err), 0);
    assert_int_equal(sub->n, 4);
    assert_int_equal(sub->n_classes, 3);
    assert_string_equal(sub->name, "synthetic");
    assert_true(sub->scale == ds->scale);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(sub->labels[i], pick[i] % 3);
        assert_memory_equal(sub->pixels + i * 6, ds->pixels + pick[i] * 6, 6);
    }
    gb_dataset_destroy(&sub);

    assert_int_equal(gb_dataset_subset(ds, NULL, 0, &sub, &err), 0); /* empty is fine */
    assert_int_equal(sub->n, 0);
    gb_dataset_destroy(&sub);
    pick[2] = 5;
    assert_int_equal(gb_dataset_subset(ds, pick, 4, &sub, &err), GB_ERANGE);
    assert_null(sub);
    assert_non_null(strstr(err.msg, "subset index 2 is sample 5, out of range 0..4"));
    assert_int_equal(gb_dataset_subset(ds, pick, -1, &sub, &err), GB_EINVAL);
    assert_int_equal(gb_dataset_subset(NULL, pick, 1, &sub, &err), GB_EINVAL);
    assert_int_equal(gb_dataset_subset(ds, pick, 1, NULL, &err), GB_EINVAL);

    /* limit: in place, first n */
    assert_int_equal(gb_dataset_limit(ds, 10, &err), 0);
    assert_int_equal(ds->n, 5);
    assert_int_equal(gb_dataset_limit(ds, 2, &err), 0);
    assert_int_equal(ds->n, 2);
    assert_int_equal(ds->pixels[1 * 6 + 5], 15);
    assert_int_equal(ds->labels[1], 1);
    assert_int_equal(gb_dataset_limit(ds, -1, &err), GB_EINVAL);
    assert_int_equal(gb_dataset_limit(NULL, 1, &err), GB_EINVAL);
    assert_int_equal(gb_dataset_limit(ds, 0, &err), 0);
    assert_int_equal(ds->n, 0);
    gb_dataset_destroy(&ds);

    /* float features: copied, not scaled */
    gb_shape_t vec = {.rank = 1, .dim = {3, 1, 1}};
    ds = gb_dataset_new("floats", 3, &vec, 2, true, &err);
    assert_non_null(ds);
    assert_null(ds->pixels);
    assert_true(ds->scale == 1.0f);
    for (int i = 0; i < 9; i++)
        ds->features[i] = (float)i - 4.5f;
    ds->labels[2] = 1;
    int32_t two[2] = {2, 0};
    float x[6];
    int32_t y[2];
    assert_int_equal(gb_dataset_fill(ds, two, 2, x, y, NULL, &err), 0);
    assert_true(x[0] == 1.5f && x[2] == 3.5f && x[3] == -4.5f);
    assert_int_equal(y[0], 1);
    assert_int_equal(gb_dataset_subset(ds, two, 2, &sub, &err), 0);
    assert_non_null(sub->features);
    assert_memory_equal(sub->features, ds->features + 6, 3 * sizeof(float));
    gb_dataset_destroy(&sub);
    assert_int_equal(gb_dataset_limit(ds, 1, &err), 0);
    gb_dataset_destroy(&ds);

    /* bad constructor arguments */
    assert_null(gb_dataset_new("x", 2, &shape, 1, false, &err));
    assert_int_equal(err.code, GB_EINVAL);
    assert_null(gb_dataset_new("x", -1, &shape, 2, false, &err));
    assert_null(gb_dataset_new("x", (int64_t)INT32_MAX + 1, &shape, 2, false, &err));
    assert_null(gb_dataset_new(NULL, 2, &shape, 2, false, &err));
    assert_null(gb_dataset_new("x", 2, NULL, 2, false, &err));
    gb_shape_t bad = {.rank = 0, .dim = {1, 1, 1}};
    assert_null(gb_dataset_new("x", 2, &bad, 2, false, &err));
    bad = (gb_shape_t){.rank = 2, .dim = {4, 0, 1}};
    assert_null(gb_dataset_new("x", 2, &bad, 2, false, &err));
    assert_non_null(strstr(err.msg, "bad shape dimension 0"));

    assert_string_equal(gb_split_name(GB_SPLIT_TRAIN), "train");
    assert_string_equal(gb_split_name(GB_SPLIT_TEST), "test");
}

static void test_alloc_failure(void **state)
{
    (void)state;
    char *dir = s_make_dir();
    char *spec = s_spec(dir);
    int failures = 0, ok = 0;
    for (long k = 1; k < 200 && !ok; k++) {
        gb_dataset_t *ds = (gb_dataset_t *)1;
        gb_error_t err = {0};
        gb_alloc_fail_after(k);
        int rc = gb_dataset_load(spec, GB_SPLIT_TEST, &ds, &err);
        gb_alloc_fail_after(0);
        if (rc == 0) {
            ok = 1;
            assert_int_equal(ds->n, 4);
            /* now the subset's allocations */
            int32_t idx[2] = {1, 3};
            for (long j = 1; j < 50; j++) {
                gb_dataset_t *sub = (gb_dataset_t *)1;
                gb_alloc_fail_after(j);
                rc = gb_dataset_subset(ds, idx, 2, &sub, &err);
                gb_alloc_fail_after(0);
                if (rc == 0) {
                    assert_int_equal(sub->labels[1], 2);
                    gb_dataset_destroy(&sub);
                    break;
                }
                assert_int_equal(rc, GB_ENOMEM);
                assert_null(sub);
            }
            /* limit survives failed shrinking reallocations */
            for (long j = 1; j < 4; j++) {
                gb_alloc_fail_after(j);
                assert_int_equal(gb_dataset_limit(ds, 4 - j, &err), 0);
                gb_alloc_fail_after(0);
                assert_int_equal(ds->n, 4 - j);
                assert_int_equal(ds->labels[0], 3);
            }
            gb_dataset_destroy(&ds);
            break;
        }
        assert_int_equal(rc, GB_ENOMEM);
        assert_null(ds);
        failures++;
    }
    assert_true(ok);
    /* image payload, label payload, other split's labels, dataset, name, labels */
    assert_int_equal(failures, 6);

    gb_shape_t shape = {.rank = 1, .dim = {4, 1, 1}};
    for (long k = 1; k < 10; k++) {
        gb_error_t err = {0};
        gb_alloc_fail_after(k);
        gb_dataset_t *ds = gb_dataset_new("n", 3, &shape, 2, true, &err);
        gb_alloc_fail_after(0);
        if (ds) {
            gb_dataset_destroy(&ds);
            break;
        }
        assert_int_equal(err.code, GB_ENOMEM);
    }
    free(spec);
    gb_test_rmtree(dir);
    free(dir);
}

static void test_regression(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_shape_t vec = {.rank = 1, .dim = {3, 1, 1}};
    gb_dataset_t *ds = gb_dataset_new_regression("reg", 4, &vec, 2, &err);
    assert_non_null(ds);
    assert_null(ds->labels);
    assert_null(ds->pixels);
    assert_non_null(ds->features);
    assert_non_null(ds->targets);
    assert_int_equal(ds->n_classes, 0);
    assert_int_equal(ds->n_targets, 2);
    assert_true(ds->target_std == 1.0);
    assert_int_equal(gb_dataset_task(ds), GB_TASK_REGRESSION);
    assert_int_equal(gb_dataset_outputs(ds), 2);
    assert_int_equal(gb_dataset_loss(ds), GB_LOSS_MSE);
    assert_true(gb_dataset_mse_units(ds, 2.5) == 2.5);
    ds->target_std = 2.0; /* as if standardised */
    assert_true(gb_dataset_mse_units(ds, 2.5) == 10.0);
    for (int i = 0; i < 8; i++) {
        assert_true(ds->targets[i] == 0.0f);
        ds->targets[i] = (float)(i * 10);
    }
    for (int i = 0; i < 12; i++)
        ds->features[i] = (float)i;

    /* fill: targets into values (n x 2), labels untouched */
    int32_t idx[3] = {3, 0, 3}, labels[3] = {-1, -1, -1};
    float x[9], values[6];
    assert_int_equal(gb_dataset_fill(ds, idx, 3, x, labels, values, &err), 0);
    const float want[6] = {60, 70, 0, 10, 60, 70};
    assert_memory_equal(values, want, sizeof want);
    assert_int_equal(labels[0], -1);
    assert_true(x[0] == 9.0f && x[3] == 0.0f);
    assert_int_equal(gb_dataset_fill(ds, idx, 3, x, NULL, NULL, &err), 0);
    gb_batches_t batches = {.source = ds, .fill = s_fill, .n = ds->n, .loss = gb_dataset_loss(ds)};
    assert_int_equal(batches.fill(batches.source, idx, 1, x, NULL, values, NULL), 0);

    /* subset and limit carry the targets */
    int32_t pick[2] = {2, 1};
    gb_dataset_t *sub = NULL;
    assert_int_equal(gb_dataset_subset(ds, pick, 2, &sub, &err), 0);
    assert_null(sub->labels);
    assert_int_equal(sub->n_targets, 2);
    assert_int_equal(sub->n_classes, 0);
    assert_true(sub->target_std == 2.0);
    assert_true(sub->targets[0] == 40 && sub->targets[1] == 50 && sub->targets[2] == 20);
    assert_true(sub->features[0] == 6.0f);
    assert_int_equal(gb_dataset_task(sub), GB_TASK_REGRESSION);
    gb_dataset_destroy(&sub);
    assert_int_equal(gb_dataset_subset(ds, NULL, 0, &sub, &err), 0);
    assert_int_equal(sub->n, 0);
    assert_non_null(sub->targets);
    gb_dataset_destroy(&sub);
    assert_int_equal(gb_dataset_limit(ds, 2, &err), 0);
    assert_int_equal(ds->n, 2);
    assert_true(ds->targets[3] == 30);
    assert_int_equal(gb_dataset_fill(ds, idx, 1, x, NULL, values, &err), GB_ERANGE);
    gb_dataset_destroy(&ds);

    /* classification datasets: the old meaning */
    ds = gb_dataset_new("cls", 2, &vec, 3, true, &err);
    assert_int_equal(gb_dataset_task(ds), GB_TASK_CLASSIFICATION);
    assert_int_equal(gb_dataset_outputs(ds), 3);
    assert_int_equal(gb_dataset_loss(ds), GB_LOSS_SOFTMAX_CE);
    assert_true(gb_dataset_mse_units(ds, 1.5) == 1.5);
    assert_null(ds->targets);
    gb_dataset_destroy(&ds);

    /* bad arguments */
    assert_null(gb_dataset_new_regression("x", 2, &vec, 0, &err));
    assert_int_equal(err.code, GB_EINVAL);
    assert_null(gb_dataset_new_regression("x", -1, &vec, 1, &err));
    assert_null(gb_dataset_new_regression("x", 2, NULL, 1, &err));
    assert_null(gb_dataset_new_regression(NULL, 2, &vec, 1, &err));

    /* allocation failures */
    int failures = 0;
    for (long k = 1; k < 20; k++) {
        gb_alloc_fail_after(k);
        ds = gb_dataset_new_regression("r", 3, &vec, 1, &err);
        gb_alloc_fail_after(0);
        if (ds) {
            for (long j = 1; j < 20; j++) {
                gb_alloc_fail_after(j);
                int rc = gb_dataset_subset(ds, pick, 2, &sub, &err);
                gb_alloc_fail_after(0);
                if (rc == 0) {
                    gb_dataset_destroy(&sub);
                    break;
                }
                assert_int_equal(rc, GB_ENOMEM);
            }
            gb_dataset_destroy(&ds);
            break;
        }
        assert_int_equal(err.code, GB_ENOMEM);
        failures++;
    }
    assert_int_equal(failures, 5); /* dataset, name, labels, features, targets */
}

static void test_load_opts(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_dataset_t *ds = (gb_dataset_t *)1;
    char *dir = gb_test_mkdtemp();
    const char *text = "a,b,y\n1,2,0\n2,3,1\n3,4,0\n4,5,1\n5,6,1\n";
    char *path = gb_test_write_file(dir, "d.csv", text, strlen(text));
    char name[512];
    snprintf(name, sizeof name, "csv:%s", path);

    gb_data_opts_t o = GB_DATA_OPTS_INIT;
    assert_true(o.test_fraction == GB_DATA_TEST_FRACTION);
    assert_int_equal(o.horizon, 1);
    o.label = "y";
    assert_int_equal(gb_dataset_load_opts(name, GB_SPLIT_TRAIN, &o, &ds, &err), 0);
    assert_string_equal(ds->name, name);
    assert_int_equal(ds->n, 4);
    assert_int_equal(ds->n_classes, 2);
    assert_int_equal(gb_dataset_sample_size(ds), 2);
    gb_dataset_destroy(&ds);
    o.regression = true;
    assert_int_equal(gb_dataset_load_opts(name, GB_SPLIT_TEST, &o, &ds, &err), 0);
    assert_int_equal(ds->n, 1);
    assert_int_equal(gb_dataset_task(ds), GB_TASK_REGRESSION);
    gb_dataset_destroy(&ds);

    /* without options a csv: has no label: the message lists the columns */
    assert_int_equal(gb_dataset_load(name, GB_SPLIT_TRAIN, &ds, &err), GB_EINVAL);
    assert_null(ds);
    char want[600];
    snprintf(want, sizeof want, "%s: no label column given (--label NAME; columns: a, b, y)", path);
    assert_string_equal(err.msg, want);
    assert_int_equal(gb_dataset_load_opts(name, GB_SPLIT_TRAIN, NULL, &ds, &err), GB_EINVAL);
    assert_string_equal(err.msg, want);
    assert_int_equal(gb_dataset_load_opts("csv:", GB_SPLIT_TRAIN, &o, &ds, &err), GB_EINVAL);
    assert_string_equal(err.msg, "dataset 'csv:': csv: needs a file (csv:FILE)");
    assert_int_equal(gb_dataset_load_opts(name, GB_SPLIT_TRAIN, &o, NULL, &err), GB_EINVAL);
    /* the reader's message comes through */
    free(path);
    path = gb_test_write_file(dir, "d.csv", "a,y\n1,2\n3\n", 10);
    assert_int_equal(gb_dataset_load_opts(name, GB_SPLIT_TRAIN, &o, &ds, &err), GB_EFORMAT);
    assert_null(ds);
    snprintf(want, sizeof want, "%s line 3 has 1 cell, the header has 2", path);
    assert_string_equal(err.msg, want);

    /* csv: options are refused for image datasets, not ignored */
    char *idx_dir = s_make_dir();
    char *spec = s_spec(idx_dir);
    const struct {
        gb_data_opts_t o;
        const char *what;
    } cases[] = {
        {{.label = "y", .horizon = 1, .test_fraction = 0.2}, "a label column"},
        {{.features = "a", .horizon = 1, .test_fraction = 0.2}, "input columns"},
        {{.window = 4, .horizon = 1, .test_fraction = 0.2}, "a window"},
        {{.horizon = 2, .test_fraction = 0.2}, "a horizon"},
        {{.regression = true, .horizon = 1, .test_fraction = 0.2}, "regression"},
        {{.raw = true, .horizon = 1, .test_fraction = 0.2}, "raw (unstandardised) data"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        assert_int_equal(gb_dataset_load_opts(spec, GB_SPLIT_TRAIN, &cases[k].o, &ds, &err),
                         GB_EINVAL);
        snprintf(want, sizeof want, "dataset '%s': %s applies to csv:FILE data only", spec,
                 cases[k].what);
        assert_string_equal(err.msg, want);
        assert_int_equal(
            gb_dataset_load_opts("fashion-mnist", GB_SPLIT_TRAIN, &cases[k].o, &ds, &err),
            GB_EINVAL);
        assert_non_null(strstr(err.msg, "applies to csv:FILE data only"));
    }
    /* default options (test_fraction included) are fine */
    o = GB_DATA_OPTS_INIT;
    o.test_fraction = 0.5;
    assert_int_equal(gb_dataset_load_opts(spec, GB_SPLIT_TEST, &o, &ds, &err), 0);
    assert_int_equal(ds->n, 4);
    assert_null(ds->targets);
    assert_null(ds->rows);
    gb_dataset_destroy(&ds);

    free(spec);
    gb_test_rmtree(idx_dir);
    free(idx_dir);
    free(path);
    gb_test_rmtree(dir);
    free(dir);
}

static void test_fashion_mnist(void **state)
{
    (void)state;
    if (!gb_test_exists(GB_FASHION_MNIST_DIR)) {
        skip();
        return;
    }
    gb_dataset_t *ds = NULL;
    gb_error_t err = {0};
    assert_int_equal(gb_dataset_load("fashion-mnist", GB_SPLIT_TEST, &ds, &err), 0);
    assert_int_equal(ds->n, 10000);
    assert_int_equal(ds->shape.rank, 3);
    assert_int_equal(ds->shape.dim[0], 1);
    assert_int_equal(ds->shape.dim[1], 28);
    assert_int_equal(ds->shape.dim[2], 28);
    assert_int_equal(ds->n_classes, 10);
    assert_string_equal(ds->name, "fashion-mnist");
    int counts[10] = {0};
    for (int64_t i = 0; i < ds->n; i++) {
        assert_in_range(ds->labels[i], 0, 9);
        counts[ds->labels[i]]++;
    }
    for (int c = 0; c < 10; c++)
        assert_int_equal(counts[c], 1000); /* the test split is balanced */
    assert_int_equal(ds->labels[0], 9);    /* the first test image is an ankle boot */
    assert_int_equal(ds->labels[1], 2);    /* then a pullover */

    /* a batch of 32 through fill: values in [0, 1], not all zero */
    int32_t idx[32];
    for (int i = 0; i < 32; i++)
        idx[i] = i * 311;
    float *x = malloc(32 * 784 * sizeof *x);
    int32_t y[32];
    assert_non_null(x);
    assert_int_equal(gb_dataset_fill(ds, idx, 32, x, y, NULL, &err), 0);
    double sum = 0;
    for (int i = 0; i < 32 * 784; i++) {
        assert_true(x[i] >= 0.0f && x[i] <= 1.0f);
        sum += x[i];
    }
    assert_true(sum > 32 * 784 * 0.1); /* mean pixel of Fashion-MNIST is ~0.29 */
    assert_true(sum < 32 * 784 * 0.5);
    free(x);
    gb_dataset_destroy(&ds);
}

int main(void)
{
    if (!getenv("GLASSBOX_LOG"))
        gb_log_set_level(GB_LOG_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_idx_dir),  cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_fill),          cmocka_unit_test(test_new_subset_limit),
        cmocka_unit_test(test_alloc_failure), cmocka_unit_test(test_regression),
        cmocka_unit_test(test_load_opts),     cmocka_unit_test(test_fashion_mnist),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
