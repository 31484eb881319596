/* Tests for data/dataset: loading a synthetic idx:DIR (plain and gzipped),
 * class-count inference, every load error (missing files, count mismatch,
 * label out of range, wrong dimensions, bad names, and the images payload
 * read as a stream: truncated, trailing data, corrupt gzip), fill/subset/
 * limit/new, packed images (loaded or packed with gb_dataset_pack) giving
 * the same floats through fill, subset and limit as the raw bytes read by
 * gb_idx_read, gb_dataset_sample_u8, a corrupt packed store, regression
 * datasets (targets through fill, subset and limit; task, outputs, loss,
 * units), gb_dataset_load_opts with image datasets (csv: options refused,
 * defaults taken; csv:FILE is tested in test_dataset_load.c),
 * allocation-failure injection, and the real Fashion-MNIST when
 * the Debian package is installed (skipped otherwise). Windowed series are
 * tested in test_series.c. Doubles as the usage example. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "data/dataset.h"
#include "data/dataset_load.h"
#include "data/idx.h"
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
    assert_null(ds->pixels); /* loaded images are held packed */
    assert_non_null(ds->packed);
    assert_int_equal(ds->packed->n, 6);
    assert_null(ds->features);
    assert_true(ds->scale == 1.0f / 255.0f);
    uint8_t img[H * W];
    for (int i = 0; i < 6; i++) {
        assert_int_equal(ds->labels[i], s_train_labels[i]);
        assert_int_equal(gb_dataset_sample_u8(ds, i, img, &err), 0);
        for (int k = 0; k < H * W; k++)
            assert_int_equal(img[k], s_pixel(0, i, k));
    }
    gb_dataset_destroy(&ds);
    assert_null(ds);
    gb_dataset_destroy(&ds); /* NULL-safe */
    gb_dataset_destroy(NULL);

    assert_int_equal(gb_dataset_load(spec, GB_SPLIT_TEST, &ds, &err), 0);
    assert_int_equal(ds->n, 4);
    assert_int_equal(ds->n_classes, 4);
    assert_int_equal(ds->labels[0], 3);
    assert_int_equal(gb_dataset_sample_u8(ds, 1, img, &err), 0);
    assert_int_equal(img[1], s_pixel(1, 1, 1));
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

    /* the images payload is read as a stream, with every check of the
     * whole-file reader: a header that says more images than the file has,
     * fewer (trailing data), and a gzip stream damaged after the payload */
    s_write_split(dir, "train", 0, 5, lab, 0);
    uint8_t pix[5 * H * W];
    for (int k = 0; k < 5 * H * W; k++)
        pix[k] = s_pixel(0, k / (H * W), k % (H * W));
    uint8_t bytes[16 + 5 * H * W + 1];
    memcpy(bytes, "\0\0\x08\x03\0\0\0\x05\0\0\0\x03\0\0\0\x02", 16);
    memcpy(bytes + 16, pix, sizeof pix);
    for (size_t cut = 16; cut < 16 + sizeof pix; cut += 5) {
        free(gb_test_write_file(dir, "train-images-idx3-ubyte", bytes, cut));
        ds = (gb_dataset_t *)1;
        assert_int_equal(gb_dataset_load_idx(dir, GB_SPLIT_TRAIN, 0, NULL, &ds, &err), GB_EFORMAT);
        assert_null(ds);
        char want[128];
        snprintf(want, sizeof want,
                 "train-images-idx3-ubyte: truncated: header says 5x3x2 = 30 bytes, file has "
                 "%zu after the 16-byte header",
                 cut - 16);
        if (!strstr(err.msg, want))
            fail_msg("cut %zu: '%s' lacks '%s'", cut, err.msg, want);
    }
    bytes[16 + sizeof pix] = 7;
    free(gb_test_write_file(dir, "train-images-idx3-ubyte", bytes, sizeof bytes));
    assert_int_equal(gb_dataset_load_idx(dir, GB_SPLIT_TRAIN, 0, NULL, &ds, &err), GB_EFORMAT);
    assert_null(ds);
    assert_non_null(strstr(err.msg, "train-images-idx3-ubyte: 1 byte of trailing data after the "
                                    "30 bytes that header 5x3x2 describes"));
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte", dir);
    remove(path);
    s_write_split(dir, "train", 0, 5, lab, 1); /* gzipped images and labels */
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", dir);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, -6, SEEK_END), 0); /* the CRC, checked after the payload */
    int c = fgetc(f);
    assert_int_equal(fseek(f, -6, SEEK_END), 0);
    fputc(c ^ 0xFF, f);
    fclose(f);
    assert_int_equal(gb_dataset_load_idx(dir, GB_SPLIT_TRAIN, 0, NULL, &ds, &err), GB_EFORMAT);
    assert_null(ds);
    assert_non_null(strstr(err.msg, "train-images-idx3-ubyte.gz: corrupt gzip data"));

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

/* The floats gb_dataset_fill must give for image j of an IDX payload. */
static void s_expect_floats(const float *x, const uint8_t *payload, int32_t j, size_t size)
{
    for (size_t k = 0; k < size; k++)
        if (x[k] != (float)payload[(size_t)j * size + k] * (1.0f / 255.0f))
            fail_msg("image %d pixel %zu: %g, expected %u / 255", j, k, x[k],
                     payload[(size_t)j * size + k]);
}

/* Checks that ds (loaded from images_path) fills, subsets and gives bytes
 * exactly as the raw payload read by gb_idx_read, for its first n images. */
static void s_check_against_idx(gb_dataset_t *ds, const char *images_path, int64_t n)
{
    gb_idx_t raw;
    gb_error_t err = {0};
    assert_int_equal(gb_idx_read(images_path, &raw, &err), 0);
    size_t size = gb_dataset_sample_size(ds);
    assert_int_equal(raw.len, (size_t)raw.dims[0] * size);
    assert_true(n <= ds->n && n <= raw.dims[0]);
    enum { B = 16 };
    int32_t idx[B];
    float *x = malloc(B * size * sizeof *x);
    uint8_t *img = malloc(size);
    assert_non_null(x);
    assert_non_null(img);
    for (int64_t i = 0; i < n; i += B) { /* in order, a batch at a time */
        int m = n - i < B ? (int)(n - i) : B;
        for (int b = 0; b < m; b++)
            idx[b] = (int32_t)(i + b);
        assert_int_equal(gb_dataset_fill(ds, idx, m, x, NULL, NULL, &err), 0);
        for (int b = 0; b < m; b++)
            s_expect_floats(x + b * size, raw.data, idx[b], size);
    }
    for (int b = 0; b < B; b++) /* shuffled, with repeats */
        idx[b] = (int32_t)((b * 7919) % n);
    assert_int_equal(gb_dataset_fill(ds, idx, B, x, NULL, NULL, &err), 0);
    for (int b = 0; b < B; b++)
        s_expect_floats(x + b * size, raw.data, idx[b], size);
    for (int64_t i = 0; i < n; i++) {
        assert_int_equal(gb_dataset_sample_u8(ds, i, img, &err), 0);
        assert_memory_equal(img, raw.data + i * size, size);
    }
    /* a subset (reversed, with a repeat) is packed too and fills the same */
    gb_dataset_t *sub = NULL;
    assert_int_equal(gb_dataset_subset(ds, idx, B, &sub, &err), 0);
    assert_non_null(sub->packed);
    assert_null(sub->pixels);
    int32_t seq[B];
    for (int b = 0; b < B; b++)
        seq[b] = b;
    assert_int_equal(gb_dataset_fill(sub, seq, B, x, NULL, NULL, &err), 0);
    for (int b = 0; b < B; b++)
        s_expect_floats(x + b * size, raw.data, idx[b], size);
    gb_dataset_destroy(&sub);
    free(img);
    free(x);
    gb_idx_free(&raw);
}

/* Image i of a set of sparse test images of `size` bytes: empty, full (stored
 * raw), and objects of every width, some with runs past the count fields. */
static uint8_t s_sparse(int i, size_t k, size_t size)
{
    if (i % 9 == 0)
        return 0;
    if (i % 9 == 1)
        return 255;
    size_t row = k / 28, col = k % 28;
    size_t lo = (size_t)(i * 3) % 20, hi = lo + (size_t)(i % 8) + 1;
    if (i % 9 == 2) /* one pixel */
        return k == size / 2 ? (uint8_t)i : 0;
    return (row > 3 && row < 25 && col >= lo && col < hi) ? (uint8_t)(1 + (i * 37 + k) % 254) : 0;
}

static void test_packed(void **state)
{
    (void)state;
    enum { N = 45, SIZE = 28 * 28 };
    gb_error_t err = {0};
    char *dir = gb_test_mkdtemp();
    uint8_t *pix = malloc((size_t)N * SIZE);
    assert_non_null(pix);
    for (int i = 0; i < N; i++)
        for (size_t k = 0; k < SIZE; k++)
            pix[(size_t)i * SIZE + k] = s_sparse(i, k, SIZE);
    uint8_t labels[N];
    for (int i = 0; i < N; i++)
        labels[i] = (uint8_t)(i % 10);
    uint32_t d3[3] = {N, 28, 28}, d1 = N;
    s_write_idx(dir, "train-images-idx3-ubyte", 0, 3, d3, pix);
    s_write_idx(dir, "train-labels-idx1-ubyte", 0, 1, &d1, labels);
    s_write_idx(dir, "t10k-images-idx3-ubyte.gz", 1, 3, d3, pix);
    s_write_idx(dir, "t10k-labels-idx1-ubyte.gz", 1, 1, &d1, labels);
    char path[512];
    for (int split = 0; split < 2; split++) {
        gb_dataset_t *ds = NULL;
        assert_int_equal(
            gb_dataset_load_idx(dir, split ? GB_SPLIT_TEST : GB_SPLIT_TRAIN, 10, "p", &ds, &err),
            0);
        assert_non_null(ds->packed);
        /* held smaller than raw: empty images are nothing, full ones raw */
        assert_true(gb_pixels_bytes(ds->packed) < (size_t)N * SIZE / 2);
        snprintf(path, sizeof path, "%s/%s", dir,
                 split ? "t10k-images-idx3-ubyte.gz" : "train-images-idx3-ubyte");
        s_check_against_idx(ds, path, N);
        /* limit keeps the first images, packed */
        assert_int_equal(gb_dataset_limit(ds, 10, &err), 0);
        assert_int_equal(ds->n, 10);
        assert_int_equal(ds->packed->n, 10);
        s_check_against_idx(ds, path, 10);
        int32_t bad = 10;
        float x[SIZE];
        assert_int_equal(gb_dataset_fill(ds, &bad, 1, x, NULL, NULL, &err), GB_ERANGE);
        gb_dataset_destroy(&ds);
    }

    /* a dataset made raw and packed afterwards: the same batches, subsets,
     * limits and bytes; packing twice changes nothing */
    gb_shape_t shape = {.rank = 3, .dim = {1, 28, 28}};
    gb_dataset_t *raw = gb_dataset_new("raw", N, &shape, 10, false, &err);
    gb_dataset_t *packed = gb_dataset_new("raw", N, &shape, 10, false, &err);
    assert_non_null(raw);
    assert_non_null(packed);
    memcpy(raw->pixels, pix, (size_t)N * SIZE);
    memcpy(packed->pixels, pix, (size_t)N * SIZE);
    assert_int_equal(gb_dataset_pack(packed, &err), 0);
    assert_null(packed->pixels);
    assert_non_null(packed->packed);
    assert_int_equal(gb_dataset_pack(packed, &err), 0);
    int32_t idx[N];
    for (int i = 0; i < N; i++)
        idx[i] = (i * 17) % N;
    float *xr = malloc((size_t)N * SIZE * sizeof *xr), *xp = malloc((size_t)N * SIZE * sizeof *xp);
    int32_t yr[N], yp[N];
    assert_non_null(xr);
    assert_non_null(xp);
    assert_int_equal(gb_dataset_fill(raw, idx, N, xr, yr, NULL, &err), 0);
    assert_int_equal(gb_dataset_fill(packed, idx, N, xp, yp, NULL, &err), 0);
    assert_memory_equal(xr, xp, (size_t)N * SIZE * sizeof *xr);
    gb_dataset_t *sr = NULL, *sp = NULL;
    assert_int_equal(gb_dataset_subset(raw, idx, 7, &sr, &err), 0);
    assert_int_equal(gb_dataset_subset(packed, idx, 7, &sp, &err), 0);
    assert_int_equal(gb_dataset_limit(sr, 5, &err), 0);
    assert_int_equal(gb_dataset_limit(sp, 5, &err), 0);
    assert_int_equal(gb_dataset_fill(sr, idx, 5, xr, yr, NULL, &err), GB_ERANGE); /* idx[1] 17 */
    int32_t five[5] = {4, 3, 2, 1, 0};
    assert_int_equal(gb_dataset_fill(sr, five, 5, xr, yr, NULL, &err), 0);
    assert_int_equal(gb_dataset_fill(sp, five, 5, xp, yp, NULL, &err), 0);
    assert_memory_equal(xr, xp, 5 * SIZE * sizeof *xr);
    assert_memory_equal(yr, yp, sizeof five);
    uint8_t a[SIZE], b[SIZE];
    for (int i = 0; i < 5; i++) {
        assert_int_equal(gb_dataset_sample_u8(sr, i, a, &err), 0);
        assert_int_equal(gb_dataset_sample_u8(sp, i, b, &err), 0);
        assert_memory_equal(a, b, SIZE);
        assert_memory_equal(a, pix + (size_t)idx[i] * SIZE, SIZE);
    }
    gb_dataset_destroy(&sr);
    gb_dataset_destroy(&sp);

    /* gb_dataset_sample_u8's errors */
    assert_int_equal(gb_dataset_sample_u8(packed, N, a, &err), GB_ERANGE);
    assert_non_null(strstr(err.msg, "raw: sample index 45 out of range 0..44"));
    assert_int_equal(gb_dataset_sample_u8(packed, -1, a, &err), GB_ERANGE);
    assert_int_equal(gb_dataset_sample_u8(packed, 0, NULL, &err), GB_EINVAL);
    assert_int_equal(gb_dataset_sample_u8(NULL, 0, a, &err), GB_EINVAL);
    gb_shape_t vec = {.rank = 1, .dim = {3, 1, 1}};
    gb_dataset_t *feat = gb_dataset_new("floats", 2, &vec, 2, true, &err);
    assert_non_null(feat);
    assert_int_equal(gb_dataset_sample_u8(feat, 0, a, &err), GB_EINVAL);
    assert_non_null(strstr(err.msg, "floats: not an image dataset"));
    assert_int_equal(gb_dataset_pack(feat, &err), 0); /* nothing to pack */
    assert_null(feat->packed);
    assert_non_null(feat->features);
    gb_dataset_destroy(&feat);
    assert_int_equal(gb_dataset_pack(NULL, &err), GB_EINVAL);

    /* a corrupt packed store (only memory corruption can do this) is an
     * error from fill and sample_u8, never a write past the sample */
    int32_t one = 2; /* the one-pixel image: a token with a zero extension */
    uint32_t at = packed->packed->off[one];
    assert_true(packed->packed->off[one + 1] - at < 10);
    packed->packed->data[at] = 0xFF; /* 15 + n zeros, 15 + m literals: past the stream */
    float *guard = malloc((SIZE + 8) * sizeof *guard);
    assert_non_null(guard);
    for (int k = 0; k < SIZE + 8; k++)
        guard[k] = -1.0f;
    assert_int_equal(gb_dataset_fill(packed, &one, 1, guard, NULL, NULL, &err), GB_EFORMAT);
    assert_non_null(strstr(err.msg, "raw: sample 2: corrupt packed pixels"));
    for (int k = SIZE; k < SIZE + 8; k++)
        assert_true(guard[k] == -1.0f);
    assert_int_equal(gb_dataset_sample_u8(packed, one, a, &err), GB_EFORMAT);
    free(guard);

    free(xr);
    free(xp);
    gb_dataset_destroy(&raw);
    gb_dataset_destroy(&packed);
    free(pix);
    gb_test_rmtree(dir);
    free(dir);
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
    /* images reader, label payload, other split's labels, dataset, name,
     * labels, pixel store, its offsets, the one-image buffer, the encoded
     * bytes twice (4 incompressible images: half their size first, then all) */
    assert_int_equal(failures, 11);

    /* packing a raw dataset: on failure it is unchanged */
    gb_shape_t img_shape = {.rank = 2, .dim = {4, 5, 1}};
    gb_error_t err = {0};
    gb_dataset_t *ds = gb_dataset_new("img", 6, &img_shape, 2, false, &err);
    assert_non_null(ds);
    for (int k = 0; k < 6 * 20; k++)
        ds->pixels[k] = (uint8_t)(k % 7 == 0 ? k : 0);
    int packed = 0;
    for (long k = 1; k < 20 && !packed; k++) {
        gb_alloc_fail_after(k);
        int rc = gb_dataset_pack(ds, &err);
        gb_alloc_fail_after(0);
        if (rc == 0) {
            packed = 1;
            break;
        }
        assert_int_equal(rc, GB_ENOMEM);
        assert_non_null(ds->pixels);
        assert_null(ds->packed);
    }
    assert_true(packed);
    assert_null(ds->pixels);
    uint8_t img[20];
    for (int i = 0; i < 6; i++) {
        assert_int_equal(gb_dataset_sample_u8(ds, i, img, &err), 0);
        for (int k = 0; k < 20; k++)
            assert_int_equal(img[k], (uint8_t)((i * 20 + k) % 7 == 0 ? i * 20 + k : 0));
    }
    gb_dataset_destroy(&ds);

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

/* gb_dataset_load_opts with image data: csv: options refused, the defaults
 * taken (csv:FILE itself is tested in test_dataset_load.c). */
static void test_load_opts(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_dataset_t *ds = (gb_dataset_t *)1;
    gb_data_opts_t o;
    char want[600];

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

    /* packed, and the same floats as the raw bytes of the first 1000 images */
    assert_non_null(ds->packed);
    assert_true(gb_pixels_bytes(ds->packed) < 10000 * 784 * 6 / 10);
    const char *images = GB_FASHION_MNIST_DIR "/t10k-images-idx3-ubyte"; /* plain first */
    if (!gb_test_exists(images))
        images = GB_FASHION_MNIST_DIR "/t10k-images-idx3-ubyte.gz";
    s_check_against_idx(ds, images, 1000);

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
        cmocka_unit_test(test_packed),        cmocka_unit_test(test_alloc_failure),
        cmocka_unit_test(test_regression),    cmocka_unit_test(test_load_opts),
        cmocka_unit_test(test_fashion_mnist),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
