/* Datasets in memory and their batch gatherer. Loading an IDX split checks
 * the images header, reads the labels (widened to int32) and checks that the
 * two files describe the same samples, then streams the images one at a
 * time through a one-image buffer into a compressed store (data/pixels): the
 * peak is the compressed images, not the 47 MB payload of Fashion-MNIST's
 * training file, and the cheap checks come before the expensive read. csv:
 * names are handed to data/csv (reading) and data/series (cutting into
 * samples). gb_dataset_fill is the per-batch hot path: one pass over the
 * requested rows, a packed image decoded straight into floats, raw uint8 ->
 * float with restrict pointers so the compiler vectorises it, a window as
 * one memcpy out of the row table, no allocation. */
#include "data/dataset.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/idx.h"
#include "util/alloc.h"
#include "util/log.h"

#define S_PATH_MAX 4096

const char *gb_split_name(gb_split_t split)
{
    return split == GB_SPLIT_TEST ? "test" : "train";
}

size_t gb_dataset_sample_size(const gb_dataset_t *ds)
{
    return gb_shape_size(&ds->shape);
}

void gb_dataset_destroy(gb_dataset_t **ds)
{
    if (!ds || !*ds)
        return;
    gb_dataset_t *d = *ds;
    gb_free(d->pixels);
    gb_pixels_destroy(&d->packed);
    gb_free(d->features);
    gb_free(d->labels);
    gb_free(d->name);
    gb_free(d->targets);
    gb_free(d->rows);
    gb_free(d->starts);
    gb_free(d->in_mean);
    gb_free(d->in_std);
    gb_free(d);
    *ds = NULL;
}

/* A dataset with a copy of `name` and nothing else allocated. */
static gb_dataset_t *s_shell(const char *name, gb_error_t *err)
{
    gb_dataset_t *ds = gb_calloc(1, sizeof *ds);
    if (!ds) {
        gb_error_set(err, GB_ENOMEM, "out of memory for a dataset");
        return NULL;
    }
    size_t len = strlen(name);
    ds->name = gb_malloc(len + 1);
    if (!ds->name) {
        gb_free(ds);
        gb_error_set(err, GB_ENOMEM, "out of memory for a dataset");
        return NULL;
    }
    memcpy(ds->name, name, len + 1);
    return ds;
}

/* Checks n and shape and allocates labels and pixels or features (zeroed
 * when `zero`) into *out. */
static int s_new(const char *name, int64_t n, const gb_shape_t *shape, int n_classes,
                 bool features, bool zero, gb_dataset_t **out, gb_error_t *err)
{
    *out = NULL;
    if (!name || !shape)
        return gb_error_set(err, GB_EINVAL, "dataset: NULL name or shape");
    if (n < 0 || n > INT32_MAX)
        return gb_error_set(err, GB_EINVAL, "%s: %lld samples: expected 0..%d", name,
                            (long long)n, INT32_MAX);
    if (n_classes < 2)
        return gb_error_set(err, GB_EINVAL, "%s: %d classes: expected at least 2", name,
                            n_classes);
    if (shape->rank < 1 || shape->rank > GB_SHAPE_MAX_RANK)
        return gb_error_set(err, GB_EINVAL, "%s: shape rank %d: expected 1..%d", name,
                            shape->rank, GB_SHAPE_MAX_RANK);
    size_t size = 1;
    for (int i = 0; i < shape->rank; i++)
        if (shape->dim[i] < 1 || __builtin_mul_overflow(size, (size_t)shape->dim[i], &size))
            return gb_error_set(err, GB_EINVAL, "%s: bad shape dimension %d", name,
                                shape->dim[i]);
    size_t elem = features ? sizeof(float) : 1, row, bytes;
    if (__builtin_mul_overflow(size, elem, &row) ||
        __builtin_mul_overflow(row, (size_t)n, &bytes))
        return gb_error_set(err, GB_ERANGE, "%s: %lld samples of %zu values overflow memory",
                            name, (long long)n, size);
    gb_dataset_t *ds = s_shell(name, err);
    if (!ds)
        return GB_ENOMEM;
    ds->n = n;
    ds->shape = *shape;
    for (int i = shape->rank; i < GB_SHAPE_MAX_RANK; i++)
        ds->shape.dim[i] = 1;
    ds->n_classes = n_classes;
    ds->scale = features ? 1.0f : 1.0f / 255.0f;
    ds->labels = zero ? gb_calloc((size_t)n, sizeof(int32_t))
                      : gb_malloc((size_t)n * sizeof(int32_t));
    void *buf = zero ? gb_calloc(bytes, 1) : gb_malloc(bytes);
    if (features)
        ds->features = buf;
    else
        ds->pixels = buf;
    if (!ds->labels || !buf) {
        gb_dataset_destroy(&ds);
        return gb_error_set(err, GB_ENOMEM, "%s: out of memory for %lld samples (%zu bytes)",
                            name, (long long)n, bytes);
    }
    *out = ds;
    return 0;
}

gb_dataset_t *gb_dataset_new(const char *name, int64_t n, const gb_shape_t *shape, int n_classes,
                             bool features, gb_error_t *err)
{
    gb_dataset_t *ds;
    return s_new(name, n, shape, n_classes, features, true, &ds, err) == 0 ? ds : NULL;
}

gb_dataset_t *gb_dataset_new_regression(const char *name, int64_t n, const gb_shape_t *shape,
                                        int n_targets, gb_error_t *err)
{
    if (n_targets < 1) {
        gb_error_set(err, GB_EINVAL, "%s: %d targets: expected at least 1", name ? name : "dataset",
                     n_targets);
        return NULL;
    }
    gb_dataset_t *ds;
    if (s_new(name, n, shape, 2, true, true, &ds, err) != 0)
        return NULL;
    size_t bytes;
    if (__builtin_mul_overflow((size_t)n, (size_t)n_targets * sizeof(float), &bytes)) {
        gb_dataset_destroy(&ds);
        gb_error_set(err, GB_ERANGE, "%s: %lld samples of %d targets overflow memory", name,
                     (long long)n, n_targets);
        return NULL;
    }
    gb_free(ds->labels);
    ds->labels = NULL;
    ds->n_classes = 0;
    ds->n_targets = n_targets;
    ds->target_std = 1.0;
    ds->targets = gb_calloc(bytes, 1);
    if (!ds->targets) {
        gb_dataset_destroy(&ds);
        gb_error_set(err, GB_ENOMEM, "%s: out of memory for %lld targets", name, (long long)n);
        return NULL;
    }
    return ds;
}

/* dir/base or dir/base.gz, whichever exists (plain first), into path;
 * GB_EIO when neither does. Logs nothing: a missing optional file is fine. */
static int s_locate(const char *dir, const char *base, char *path, size_t cap, gb_error_t *err)
{
    static const char *const suffixes[2] = {"", ".gz"};
    for (int i = 0; i < 2; i++) {
        int len = snprintf(path, cap, "%s/%s%s", dir, base, suffixes[i]);
        if (len < 0 || (size_t)len >= cap)
            return gb_error_set(err, GB_EINVAL, "%s: path too long", dir);
        if (access(path, F_OK) == 0)
            return 0;
    }
    return gb_error_set(err, GB_EIO, "%s: neither %s nor %s.gz found", dir, base, base);
}

/* Finds dir/base[.gz] into `path` (S_PATH_MAX bytes); a file that must be
 * there, so its absence is logged. */
static int s_find(const char *dir, const char *base, char *path, gb_error_t *err)
{
    gb_error_t local = {0};
    int rc = s_locate(dir, base, path, S_PATH_MAX, &local);
    if (rc) {
        gb_log_warn("%s", local.msg);
        return gb_error_set(err, rc, "%s", local.msg);
    }
    return 0;
}

/* Finds and reads dir/base[.gz]; `path` receives the file's path. */
static int s_read_idx(const char *dir, const char *base, char *path, gb_idx_t *idx, gb_error_t *err)
{
    int rc = s_find(dir, base, path, err);
    return rc ? rc : gb_idx_read(path, idx, err);
}

/* Reads the n images of `size` bytes left in `stream` into a new packed
 * store at *out, one at a time, and finishes the stream (trailing data and
 * gzip integrity). */
static int s_pack_stream(gb_idx_stream_t *stream, int64_t n, size_t size, const char *name,
                         gb_pixels_t **out, gb_error_t *err)
{
    *out = NULL;
    gb_error_t local = {0};
    gb_pixels_t *store = gb_pixels_new(size, n, &local);
    if (!store)
        return gb_error_set(err, local.code, "%s: %s", name, local.msg);
    int rc = 0;
    uint8_t *img = gb_malloc(size);
    if (!img) {
        rc = gb_error_set(err, GB_ENOMEM, "%s: out of memory for a %zu-byte image", name, size);
        goto cleanup;
    }
    for (int64_t i = 0; i < n; i++) {
        if ((rc = gb_idx_stream_read(stream, img, size, err)) != 0)
            goto cleanup;
        if ((rc = gb_pixels_append(store, img, err)) != 0) {
            gb_error_prefix(err, rc, "%s: ", name);
            goto cleanup;
        }
    }
    if ((rc = gb_idx_stream_finish(stream, err)) != 0)
        goto cleanup;
    gb_pixels_trim(store);
    *out = store;
    store = NULL;

cleanup:
    gb_free(img);
    gb_pixels_destroy(&store);
    return rc;
}

static const char *s_prefix(gb_split_t split)
{
    return split == GB_SPLIT_TEST ? "t10k" : "train";
}

/* *max receives the largest label in the other split's labels file, or -1
 * when that file is absent or unreadable (with a warning: this split still
 * loads). Only running out of memory is an error. */
static int s_other_max_label(const char *dir, gb_split_t split, int *max, gb_error_t *err)
{
    char base[64], path[S_PATH_MAX];
    gb_split_t other = split == GB_SPLIT_TEST ? GB_SPLIT_TRAIN : GB_SPLIT_TEST;
    snprintf(base, sizeof base, "%s-labels-idx1-ubyte", s_prefix(other));
    gb_error_t local = {0};
    *max = -1;
    if (s_locate(dir, base, path, sizeof path, &local) != 0)
        return 0; /* a directory with one split is fine */
    gb_idx_t lab;
    int rc = gb_idx_read(path, &lab, &local);
    if (rc == GB_ENOMEM)
        return gb_error_set(err, rc, "%s", local.msg);
    if (rc) {
        gb_log_warn("%s: class count taken from the %s split only", dir, gb_split_name(split));
        return 0;
    }
    for (size_t i = 0; i < lab.len; i++)
        if (lab.data[i] > *max)
            *max = lab.data[i];
    gb_idx_free(&lab);
    return 0;
}

int gb_dataset_load_idx(const char *dir, gb_split_t split, int n_classes, const char *name,
                        gb_dataset_t **out, gb_error_t *err)
{
    if (!out)
        return gb_error_set(err, GB_EINVAL, "gb_dataset_load_idx: out is NULL");
    *out = NULL;
    if (!dir || !*dir)
        return gb_error_set(err, GB_EINVAL, "idx: empty directory name");
    if (split != GB_SPLIT_TRAIN && split != GB_SPLIT_TEST)
        return gb_error_set(err, GB_EINVAL, "%s: unknown split %d", dir, (int)split);
    if (n_classes < 0 || n_classes == 1)
        return gb_error_set(err, GB_EINVAL, "%s: %d classes: expected 0 (infer) or >= 2", dir,
                            n_classes);
    struct stat st;
    if (stat(dir, &st) != 0)
        return gb_error_warn(err, GB_EIO, "%s: cannot open dataset directory: %s", dir,
                      strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return gb_error_warn(err, GB_EIO, "%s: not a directory", dir);

    char base[64], img_path[S_PATH_MAX], lab_path[S_PATH_MAX], dname[S_PATH_MAX];
    if (!name) {
        int len = snprintf(dname, sizeof dname, "idx:%s", dir);
        if (len < 0 || (size_t)len >= sizeof dname)
            return gb_error_set(err, GB_EINVAL, "%s: path too long", dir);
        name = dname;
    }
    gb_idx_t img = {0}, lab = {0};
    gb_idx_stream_t *stream = NULL;
    gb_dataset_t *ds = NULL;
    int rc;

    /* the images header now, their payload last: the labels checks are cheap */
    snprintf(base, sizeof base, "%s-images-idx3-ubyte", s_prefix(split));
    if ((rc = s_find(dir, base, img_path, err)) != 0 ||
        (rc = gb_idx_stream_open(img_path, &img, &stream, err)) != 0)
        goto cleanup;
    if (img.ndims != 3) {
        rc = gb_error_warn(err, GB_EFORMAT,
                    "%s: images file has %d dimensions, expected 3 (count x height x width)",
                    img_path, img.ndims);
        goto cleanup;
    }
    snprintf(base, sizeof base, "%s-labels-idx1-ubyte", s_prefix(split));
    if ((rc = s_read_idx(dir, base, lab_path, &lab, err)) != 0)
        goto cleanup;
    if (lab.ndims != 1) {
        rc = gb_error_warn(err, GB_EFORMAT, "%s: labels file has %d dimensions, expected 1", lab_path,
                    lab.ndims);
        goto cleanup;
    }
    if (img.dims[0] != lab.dims[0]) {
        rc = gb_error_warn(err, GB_EFORMAT, "%s: %d images in %s but %d labels in %s", dir, img.dims[0],
                    img_path, lab.dims[0], lab_path);
        goto cleanup;
    }
    int64_t n = img.dims[0];
    int max = 0;
    for (int64_t i = 0; i < n; i++) {
        int y = lab.data[i];
        if (n_classes > 0 && y >= n_classes) {
            rc = gb_error_warn(err, GB_ERANGE, "%s: sample %lld has label %d, expected 0..%d",
                        lab_path, (long long)i, y, n_classes - 1);
            goto cleanup;
        }
        if (y > max)
            max = y;
    }
    if (n_classes == 0) {
        int other;
        if ((rc = s_other_max_label(dir, split, &other, err)) != 0)
            goto cleanup;
        if (other > max)
            max = other;
        n_classes = max + 1 < 2 ? 2 : max + 1;
    }

    if (!(ds = s_shell(name, err))) {
        rc = GB_ENOMEM;
        goto cleanup;
    }
    ds->labels = gb_malloc((size_t)n * sizeof(int32_t));
    if (!ds->labels) {
        rc = gb_error_set(err, GB_ENOMEM, "%s: out of memory for %lld labels", name,
                          (long long)n);
        goto cleanup;
    }
    for (int64_t i = 0; i < n; i++)
        ds->labels[i] = lab.data[i];
    gb_idx_free(&lab);
    size_t size = (size_t)img.dims[1] * (size_t)img.dims[2];
    if ((rc = s_pack_stream(stream, n, size, name, &ds->packed, err)) != 0)
        goto cleanup;
    ds->n = n;
    ds->shape = (gb_shape_t){.rank = 3, .dim = {1, img.dims[1], img.dims[2]}};
    ds->scale = 1.0f / 255.0f;
    ds->n_classes = n_classes;
    gb_log_debug("%s: %s split, %lld samples of 1x%dx%d, %d classes; images packed in %zu "
                 "bytes, %.1f%% of %zu",
                 name, gb_split_name(split), (long long)n, img.dims[1], img.dims[2], n_classes,
                 gb_pixels_bytes(ds->packed),
                 100.0 * (double)gb_pixels_bytes(ds->packed) / (double)img.len, img.len);
    *out = ds;
    ds = NULL;
    rc = 0;

cleanup:
    gb_dataset_destroy(&ds);
    gb_idx_stream_destroy(&stream);
    gb_idx_free(&lab);
    return rc;
}

gb_task_t gb_dataset_task(const gb_dataset_t *ds)
{
    return ds->targets ? GB_TASK_REGRESSION : GB_TASK_CLASSIFICATION;
}

int gb_dataset_outputs(const gb_dataset_t *ds)
{
    return ds->targets ? ds->n_targets : ds->n_classes;
}

gb_loss_kind_t gb_dataset_loss(const gb_dataset_t *ds)
{
    return ds->targets ? GB_LOSS_MSE : GB_LOSS_SOFTMAX_CE;
}

double gb_dataset_mse_units(const gb_dataset_t *ds, double mse)
{
    if (!ds->targets || !(ds->target_std > 0.0))
        return mse;
    return mse * ds->target_std * ds->target_std;
}

static inline void s_widen(float *restrict dst, const uint8_t *restrict src, size_t n,
                           float scale)
{
    for (size_t k = 0; k < n; k++)
        dst[k] = (float)src[k] * scale;
}

int gb_dataset_fill(void *source, const int32_t *idx, int n, float *x, int32_t *labels,
                    float *values, gb_error_t *err)
{
    const gb_dataset_t *ds = source;
    if (!ds || n < 0 || (n > 0 && (!idx || !x)))
        return gb_error_set(err, GB_EINVAL, "gb_dataset_fill: bad arguments");
    size_t size = gb_shape_size(&ds->shape);
    size_t width = (size_t)ds->shape.dim[ds->shape.rank - 1]; /* floats per row of a window */
    size_t nt = (size_t)ds->n_targets;
    const float scale = ds->scale;
    for (int i = 0; i < n; i++) {
        int32_t j = idx[i];
        if (j < 0 || j >= ds->n)
            return gb_error_set(err, GB_ERANGE, "%s: sample index %d out of range 0..%lld",
                                ds->name, j, (long long)ds->n - 1);
        float *dst = x + (size_t)i * size;
        if (ds->packed) {
            if (gb_pixels_get_float(ds->packed, j, scale, dst) != 0)
                return gb_error_set(err, GB_EFORMAT, "%s: sample %d: corrupt packed pixels",
                                    ds->name, j);
        } else if (ds->pixels)
            s_widen(dst, ds->pixels + (size_t)j * size, size, scale);
        else if (ds->starts) /* T rows from starts[j] on: contiguous */
            memcpy(dst, ds->rows + (size_t)ds->starts[j] * width, size * sizeof(float));
        else
            memcpy(dst, ds->features + (size_t)j * size, size * sizeof(float));
        if (ds->targets) {
            if (values)
                memcpy(values + (size_t)i * nt, ds->targets + (size_t)j * nt, nt * sizeof(float));
        } else if (labels) {
            labels[i] = ds->labels[j];
        }
    }
    return 0;
}

/* Copies n floats from src into a new buffer at *dst (NULL src: nothing). */
static bool s_dup_floats(float **dst, const float *src, size_t n)
{
    if (!src)
        return true;
    *dst = gb_malloc(n * sizeof(float));
    if (*dst)
        memcpy(*dst, src, n * sizeof(float));
    return *dst != NULL;
}

/* An empty dataset like ds for n samples: every buffer ds has, allocated
 * (uninitialised) for n samples; a series' row table and the
 * standardisation statistics are copied. */
static int s_new_like(const gb_dataset_t *ds, int64_t n, gb_dataset_t **out, gb_error_t *err)
{
    *out = NULL;
    size_t size = gb_shape_size(&ds->shape), nn = (size_t)n;
    size_t width = (size_t)ds->shape.dim[ds->shape.rank - 1];
    gb_dataset_t *sub = s_shell(ds->name, err);
    if (!sub)
        return GB_ENOMEM;
    sub->n = n;
    sub->shape = ds->shape;
    sub->scale = ds->scale;
    sub->n_classes = ds->n_classes;
    sub->n_targets = ds->n_targets;
    sub->n_rows = ds->n_rows;
    sub->horizon = ds->horizon;
    sub->target_col = ds->target_col;
    sub->target_mean = ds->target_mean;
    sub->target_std = ds->target_std;
    bool ok = true;
    if (ds->labels)
        ok = ok && (sub->labels = gb_malloc(nn * sizeof(int32_t))) != NULL;
    if (ds->targets)
        ok = ok && (sub->targets = gb_malloc(nn * (size_t)ds->n_targets * sizeof(float))) != NULL;
    if (ds->pixels)
        ok = ok && (sub->pixels = gb_malloc(nn * size)) != NULL;
    if (ds->features)
        ok = ok && (sub->features = gb_malloc(nn * size * sizeof(float))) != NULL;
    if (ds->starts)
        ok = ok && (sub->starts = gb_malloc(nn * sizeof(int32_t))) != NULL;
    ok = ok && s_dup_floats(&sub->rows, ds->rows, (size_t)ds->n_rows * width);
    ok = ok && s_dup_floats(&sub->in_mean, ds->in_mean, width);
    ok = ok && s_dup_floats(&sub->in_std, ds->in_std, width);
    if (!ok) {
        gb_dataset_destroy(&sub);
        return gb_error_set(err, GB_ENOMEM, "%s: out of memory for %lld samples", ds->name,
                            (long long)n);
    }
    *out = sub;
    return 0;
}

int gb_dataset_subset(const gb_dataset_t *ds, const int32_t *idx, int64_t n, gb_dataset_t **out,
                      gb_error_t *err)
{
    if (!out)
        return gb_error_set(err, GB_EINVAL, "gb_dataset_subset: out is NULL");
    *out = NULL;
    if (!ds || n < 0 || (n > 0 && !idx))
        return gb_error_set(err, GB_EINVAL, "gb_dataset_subset: bad arguments");
    for (int64_t i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= ds->n)
            return gb_error_set(err, GB_ERANGE,
                                "%s: subset index %lld is sample %d, out of range 0..%lld",
                                ds->name, (long long)i, idx[i], (long long)ds->n - 1);
    gb_dataset_t *sub;
    int rc = s_new_like(ds, n, &sub, err);
    if (rc)
        return rc;
    if (ds->packed && (rc = gb_pixels_subset(ds->packed, idx, n, &sub->packed, err)) != 0) {
        gb_dataset_destroy(&sub);
        return gb_error_prefix(err, rc, "%s: ", ds->name);
    }
    size_t size = gb_shape_size(&ds->shape), nt = (size_t)ds->n_targets;
    for (int64_t i = 0; i < n; i++) {
        size_t j = (size_t)idx[i];
        if (ds->features)
            memcpy(sub->features + (size_t)i * size, ds->features + j * size,
                   size * sizeof(float));
        if (ds->pixels)
            memcpy(sub->pixels + (size_t)i * size, ds->pixels + j * size, size);
        if (ds->starts)
            sub->starts[i] = ds->starts[j];
        if (ds->labels)
            sub->labels[i] = ds->labels[j];
        if (ds->targets)
            memcpy(sub->targets + (size_t)i * nt, ds->targets + j * nt, nt * sizeof(float));
    }
    *out = sub;
    return 0;
}

int gb_dataset_limit(gb_dataset_t *ds, int64_t n, gb_error_t *err)
{
    if (!ds || n < 0)
        return gb_error_set(err, GB_EINVAL, "gb_dataset_limit: bad arguments (n %lld)",
                            (long long)n);
    if (n >= ds->n)
        return 0;
    size_t size = gb_shape_size(&ds->shape);
    ds->n = n;
    /* Shrinking cannot fail in a way that matters: on failure the old, larger
     * block stays valid. */
    void *p;
    if (ds->labels && (p = gb_realloc(ds->labels, (size_t)n * sizeof(int32_t))) != NULL)
        ds->labels = p;
    if (ds->targets &&
        (p = gb_realloc(ds->targets, (size_t)n * (size_t)ds->n_targets * sizeof(float))) != NULL)
        ds->targets = p;
    if (ds->pixels && (p = gb_realloc(ds->pixels, (size_t)n * size)) != NULL)
        ds->pixels = p;
    if (ds->packed)
        gb_pixels_limit(ds->packed, n);
    if (ds->features && (p = gb_realloc(ds->features, (size_t)n * size * sizeof(float))) != NULL)
        ds->features = p;
    if (ds->starts && (p = gb_realloc(ds->starts, (size_t)n * sizeof(int32_t))) != NULL)
        ds->starts = p;
    return 0;
}

int gb_dataset_pack(gb_dataset_t *ds, gb_error_t *err)
{
    if (!ds)
        return gb_error_set(err, GB_EINVAL, "gb_dataset_pack: NULL dataset");
    if (!ds->pixels)
        return 0;
    size_t size = gb_shape_size(&ds->shape);
    gb_error_t local = {0};
    gb_pixels_t *store = gb_pixels_new(size, ds->n, &local);
    if (!store)
        return gb_error_set(err, local.code, "%s: %s", ds->name, local.msg);
    for (int64_t i = 0; i < ds->n; i++) {
        int rc = gb_pixels_append(store, ds->pixels + (size_t)i * size, err);
        if (rc) {
            gb_pixels_destroy(&store);
            return gb_error_prefix(err, rc, "%s: ", ds->name);
        }
    }
    gb_pixels_trim(store);
    gb_free(ds->pixels);
    ds->pixels = NULL;
    ds->packed = store;
    return 0;
}

int gb_dataset_sample_u8(const gb_dataset_t *ds, int64_t i, uint8_t *out, gb_error_t *err)
{
    if (!ds || !out)
        return gb_error_set(err, GB_EINVAL, "gb_dataset_sample_u8: bad arguments");
    if (!ds->pixels && !ds->packed)
        return gb_error_set(err, GB_EINVAL, "%s: not an image dataset: no pixels", ds->name);
    if (i < 0 || i >= ds->n)
        return gb_error_set(err, GB_ERANGE, "%s: sample index %lld out of range 0..%lld", ds->name,
                            (long long)i, (long long)ds->n - 1);
    size_t size = gb_shape_size(&ds->shape);
    if (!ds->packed) {
        memcpy(out, ds->pixels + (size_t)i * size, size);
        return 0;
    }
    if (gb_pixels_get(ds->packed, i, out) != 0)
        return gb_error_set(err, GB_EFORMAT, "%s: sample %lld: corrupt packed pixels", ds->name,
                            (long long)i);
    return 0;
}
