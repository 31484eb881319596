/* What an update teaches, measured on the server's images (update_probe.h). */
#include "update_probe.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "engine/model.h"
#include "util/alloc.h"

/* Rows of one pass: each probe sample is repeated once per output, and row
 * (sample, output) back-propagates that output alone. */
#define S_PASS_ROWS 256
#define S_CELL 4 /* a cell's side, in pixels or steps and features */
#define S_DARK 0.10f /* a dark cell's mean |value|, at most, as a share of the brightest's */

struct gb_update_probe {
    gb_model_t *model;
    size_t n_params;
    int n_samples, n_out, per_pass; /* samples a pass: per_pass * n_out <= S_PASS_ROWS */
    size_t in_size, n_cells;
    int rank, rows, cols;           /* the input's picture: rows x cols cells of S_CELL */
    uint32_t *cell_of;              /* [in_size]: each input value's cell */
    float *cell_size;               /* [n_cells]: values in the cell */
    float *brightness;              /* [n_cells]: the samples' mean |value| there */
    unsigned char *dark;            /* [n_cells]: where a trigger would be looked for */
    float *samples;                 /* [n_samples * in_size] */
    float *x, *dout, *dx;           /* a pass's rows, their one-hot gradients, input gradients */
    double *map;                    /* [n_out * n_cells]: a model's importance */
    double *reference;              /* the global model's */
    float *params;                  /* the global model's, for global + delta */
    int begun;
};

static void s_layout(gb_update_probe_t *p, gb_shape_t in)
{
    /* the picture's rows and columns: the last two dimensions (channels
     * summed into their cell), or one row of a flat input */
    int h = in.rank >= 2 ? in.dim[in.rank - 2] : 1, w = in.dim[in.rank - 1];
    p->rank = in.rank;
    int side = in.rank >= 2 ? S_CELL : 1, wide = in.rank >= 2 ? S_CELL : S_CELL * S_CELL;
    p->rows = (h + side - 1) / side;
    p->cols = (w + wide - 1) / wide;
    p->n_cells = (size_t)p->rows * (size_t)p->cols;
    for (size_t i = 0; i < p->in_size; i++) {
        size_t plane = i % ((size_t)h * (size_t)w);
        size_t r = plane / (size_t)w, c = plane % (size_t)w;
        p->cell_of[i] = (uint32_t)((r / (size_t)side) * (size_t)p->cols + c / (size_t)wide);
    }
    for (size_t i = 0; i < p->in_size; i++)
        p->cell_size[p->cell_of[i]] += 1.0f;
}

gb_update_probe_t *gb_update_probe_new(const char *spec, const gb_dataset_t *test,
                                       int n_samples, int threads, gb_error_t *err)
{
    if (n_samples < 1 || n_samples > GB_UPDATE_PROBE_MAX_SAMPLES || !test ||
        test->n < n_samples) {
        gb_error_set(err, GB_EINVAL, "update probe: %d samples is outside 1..%d or more than "
                     "the %lld the test data holds", n_samples, GB_UPDATE_PROBE_MAX_SAMPLES,
                     test ? (long long)test->n : 0LL);
        return NULL;
    }
    gb_update_probe_t *p = gb_calloc(1, sizeof *p);
    if (!p) {
        gb_error_set(err, GB_ENOMEM, "update probe: out of memory");
        return NULL;
    }
    if (!(p->model = gb_model_new(spec, err)))
        goto fail;
    gb_shape_t in = gb_model_input_shape(p->model), out = gb_model_output_shape(p->model);
    p->in_size = gb_shape_size(&in);
    p->n_out = (int)gb_shape_size(&out);
    p->n_params = gb_model_param_count(p->model);
    p->n_samples = n_samples;
    if (p->in_size != gb_dataset_sample_size(test)) {
        gb_error_set(err, GB_ESHAPE, "update probe: the model takes %zu inputs, the test "
                     "samples have %zu", p->in_size, gb_dataset_sample_size(test));
        goto fail;
    }
    if (p->n_out > S_PASS_ROWS) {
        gb_error_set(err, GB_ESHAPE, "update probe: %d outputs, more than the %d a pass takes",
                     p->n_out, S_PASS_ROWS);
        goto fail;
    }
    p->per_pass = S_PASS_ROWS / p->n_out;
    if (p->per_pass > n_samples)
        p->per_pass = n_samples;
    int rows = p->per_pass * p->n_out;
    p->cell_of = gb_malloc(p->in_size * sizeof *p->cell_of);
    p->cell_size = gb_calloc(p->in_size, sizeof *p->cell_size);
    if (!p->cell_of || !p->cell_size) {
        gb_error_set(err, GB_ENOMEM, "update probe: out of memory");
        goto fail;
    }
    s_layout(p, in);
    size_t features = (size_t)p->n_out * p->n_cells;
    if (features > GB_UPDATE_PROBE_MAX_FEATURES) {
        gb_error_set(err, GB_ESHAPE, "update probe: %d outputs x %zu cells is more than %d",
                     p->n_out, p->n_cells, GB_UPDATE_PROBE_MAX_FEATURES);
        goto fail;
    }
    p->samples = gb_malloc((size_t)n_samples * p->in_size * sizeof *p->samples);
    p->x = gb_alloc_aligned((size_t)rows * p->in_size * sizeof *p->x);
    p->dx = gb_alloc_aligned((size_t)rows * p->in_size * sizeof *p->dx);
    p->dout = gb_calloc((size_t)rows * (size_t)p->n_out, sizeof *p->dout);
    p->map = gb_malloc(features * sizeof *p->map);
    p->reference = gb_malloc(features * sizeof *p->reference);
    p->params = gb_malloc(p->n_params * sizeof *p->params);
    int32_t *idx = gb_malloc((size_t)n_samples * sizeof *idx);
    if (!p->samples || !p->x || !p->dx || !p->dout || !p->map || !p->reference || !p->params ||
        !idx) {
        gb_free(idx);
        gb_error_set(err, GB_ENOMEM, "update probe: out of memory");
        goto fail;
    }
    /* evenly through the test data, so the classes mix as the data's do */
    for (int i = 0; i < n_samples; i++)
        idx[i] = (int32_t)(((int64_t)i * test->n) / n_samples);
    int rc = gb_dataset_fill((void *)test, idx, n_samples, p->samples, NULL, NULL, err);
    gb_free(idx);
    if (rc)
        goto fail;
    p->brightness = gb_calloc(p->n_cells, sizeof *p->brightness);
    if (!p->brightness) {
        gb_error_set(err, GB_ENOMEM, "update probe: out of memory");
        goto fail;
    }
    for (int i = 0; i < n_samples; i++)
        for (size_t k = 0; k < p->in_size; k++)
            p->brightness[p->cell_of[k]] += fabsf(p->samples[(size_t)i * p->in_size + k]);
    float brightest = 0;
    for (size_t c = 0; c < p->n_cells; c++) {
        p->brightness[c] /= (float)n_samples * p->cell_size[c];
        brightest = fmaxf(brightest, p->brightness[c]);
    }
    if (!(p->dark = gb_malloc(p->n_cells))) {
        gb_error_set(err, GB_ENOMEM, "update probe: out of memory");
        goto fail;
    }
    size_t n_dark = 0;
    for (size_t c = 0; c < p->n_cells; c++)
        n_dark += p->dark[c] = p->brightness[c] < S_DARK * brightest;
    for (size_t c = 0; n_dark == 0 && c < p->n_cells; c++)
        p->dark[c] = 1; /* no dark cell (standardised features): every cell counts */
    for (int r = 0; r < rows; r++)
        p->dout[(size_t)r * (size_t)p->n_out + (size_t)(r % p->n_out)] = 1.0f;
    if (gb_model_plan(p->model, rows, threads, err) != 0)
        goto fail;
    return p;
fail:
    gb_update_probe_destroy(&p);
    return NULL;
}

void gb_update_probe_destroy(gb_update_probe_t **pp)
{
    if (!pp || !*pp)
        return;
    gb_update_probe_t *p = *pp;
    gb_model_destroy(&p->model);
    gb_free(p->cell_of);
    gb_free(p->cell_size);
    gb_free(p->brightness);
    gb_free(p->dark);
    gb_free(p->samples);
    gb_free_aligned(p->x);
    gb_free_aligned(p->dx);
    gb_free(p->dout);
    gb_free(p->map);
    gb_free(p->reference);
    gb_free(p->params);
    gb_free(p);
    *pp = NULL;
}

size_t gb_update_probe_features(const gb_update_probe_t *p)
{
    return (size_t)p->n_out * p->n_cells;
}

size_t gb_update_probe_cells(const gb_update_probe_t *p)
{
    return p->n_cells;
}

void gb_update_probe_cell_name(const gb_update_probe_t *p, size_t feature, char *out,
                               size_t cap)
{
    size_t cell = feature % p->n_cells;
    size_t r = cell / (size_t)p->cols, c = cell % (size_t)p->cols;
    if (p->rank == 1)
        snprintf(out, cap, "inputs %zu-%zu", c * S_CELL * S_CELL, c * S_CELL * S_CELL + 15);
    else
        snprintf(out, cap, "%s %zu-%zu, %s %zu-%zu", p->rank == 3 ? "rows" : "steps",
                 r * S_CELL, r * S_CELL + S_CELL - 1, p->rank == 3 ? "cols" : "features",
                 c * S_CELL, c * S_CELL + S_CELL - 1);
}

/* p->map = each output's mean |input gradient| per cell, of the model as
 * its parameters are now, over the probe samples. */
static int s_map(gb_update_probe_t *p, gb_error_t *err)
{
    size_t features = gb_update_probe_features(p);
    memset(p->map, 0, features * sizeof *p->map);
    for (int s0 = 0; s0 < p->n_samples; s0 += p->per_pass) {
        int k = p->n_samples - s0 < p->per_pass ? p->n_samples - s0 : p->per_pass;
        int rows = k * p->n_out;
        for (int r = 0; r < rows; r++)
            memcpy(p->x + (size_t)r * p->in_size,
                   p->samples + (size_t)(s0 + r / p->n_out) * p->in_size,
                   p->in_size * sizeof *p->x);
        int rc = gb_model_forward(p->model, p->x, rows, NULL, err);
        if (rc == 0)
            rc = gb_model_backward(p->model, p->dout, rows, p->dx, false, err);
        if (rc)
            return rc;
        for (int r = 0; r < rows; r++) {
            double *m = p->map + (size_t)(r % p->n_out) * p->n_cells;
            const float *g = p->dx + (size_t)r * p->in_size;
            for (size_t i = 0; i < p->in_size; i++)
                m[p->cell_of[i]] += fabsf(g[i]);
        }
    }
    for (size_t j = 0; j < features; j++) {
        p->map[j] /= (double)p->n_samples * (double)p->cell_size[j % p->n_cells];
        if (!isfinite(p->map[j]))
            return gb_error_set(err, GB_ERANGE, "update probe: the model's input gradient "
                                "is not finite");
    }
    return 0;
}

int gb_update_probe_begin(gb_update_probe_t *p, const float *params, size_t n,
                          gb_error_t *err)
{
    p->begun = 0;
    if (n != p->n_params)
        return gb_error_set(err, GB_ESHAPE, "update probe: %zu parameters, the model has %zu",
                            n, p->n_params);
    memcpy(p->params, params, n * sizeof *params);
    memcpy(gb_model_params(p->model), params, n * sizeof *params);
    int rc = s_map(p, err);
    if (rc)
        return rc;
    memcpy(p->reference, p->map, gb_update_probe_features(p) * sizeof *p->map);
    p->begun = 1;
    return 0;
}

int gb_update_probe_measure(gb_update_probe_t *p, const float *delta, size_t n, float *share,
                            gb_error_t *err)
{
    if (!p->begun)
        return gb_error_set(err, GB_EINVAL, "update probe: no reference measured");
    if (n != p->n_params)
        return gb_error_set(err, GB_ESHAPE, "update probe: %zu parameters, the model has %zu",
                            n, p->n_params);
    float *w = gb_model_params(p->model);
    for (size_t i = 0; i < n; i++)
        w[i] = p->params[i] + delta[i];
    int rc = s_map(p, err);
    if (rc)
        return rc;
    size_t features = gb_update_probe_features(p);
    double total = 0;
    for (size_t j = 0; j < features; j++)
        total += fabs(p->map[j] - p->reference[j]);
    for (size_t j = 0; j < features; j++)
        share[j] = total > 0 ? (float)((p->map[j] - p->reference[j]) / total) : 0.0f;
    for (size_t j = 0; j < features; j++)
        if (!p->dark[j % p->n_cells])
            share[j] = 0.0f;
    return 0;
}
