/* Helpers shared by the layer kinds. */
#include "engine/layer.h"

#include <cblas.h>
#include <string.h>

void gb_layer_fill_uniform(float *p, size_t n, float bound, gb_rng_t *rng)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (float)((2.0 * gb_rng_uniform(rng) - 1.0) * bound);
}

int gb_layer_require_image(const gb_layer_t *l, gb_error_t *err)
{
    if (l->in.rank != 3) {
        char buf[64];
        return gb_error_set(err, GB_ESHAPE,
                            "spec line %d: %s needs an image input (channels height width), "
                            "got shape %s",
                            l->cfg.line, gb_layer_kind_name(l->cfg.kind),
                            gb_shape_format(&l->in, buf, sizeof buf));
    }
    return 0;
}

float gb_layer_sum(const float *x, size_t n)
{
    float acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            acc[k] += x[i + k];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < n; i++)
        s += x[i];
    return s;
}

int gb_layer_require_sequence(const gb_layer_t *l, gb_error_t *err)
{
    if (l->in.rank != 2) {
        char buf[64];
        return gb_error_set(err, GB_ESHAPE,
                            "spec line %d: %s needs a sequence input (steps features), got "
                            "shape %s",
                            l->cfg.line, gb_layer_kind_name(l->cfg.kind),
                            gb_shape_format(&l->in, buf, sizeof buf));
    }
    return 0;
}

void gb_layer_to_time_major(const float *x, float *xt, int B, int T, int F)
{
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            memcpy(xt + ((size_t)t * B + b) * F, x + ((size_t)b * T + t) * F,
                   (size_t)F * sizeof(float));
}

void gb_layer_from_time_major(const float *xt, float *x, int B, int T, int F)
{
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            memcpy(x + ((size_t)b * T + t) * F, xt + ((size_t)t * B + b) * F,
                   (size_t)F * sizeof(float));
}

void gb_layer_add_column_sums(const float *m, size_t rows, int cols, float *db)
{
    for (size_t r = 0; r < rows; r++) {
        const float *row = m + r * (size_t)cols;
        for (int j = 0; j < cols; j++)
            db[j] += row[j];
    }
}

gb_recurrent_offsets_t gb_layer_recurrent_offsets(const gb_layer_t *l, int gates)
{
    const size_t F = (size_t)l->in.dim[1], H = (size_t)l->cfg.units, G = (size_t)gates;
    gb_recurrent_offsets_t o;
    o.w_ih = l->param_off;
    o.w_hh = o.w_ih + G * H * F;
    o.b_ih = o.w_hh + G * H * H;
    o.b_hh = o.b_ih + G * H;
    return o;
}

void gb_layer_recurrent_dx(const float *dG, const float *w_ih, int B, int T, int F, int GH,
                           float *dX, float *dx)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T * B, F, GH, 1.0f, dG, GH, w_ih, F,
                0.0f, dX, F);
    gb_layer_from_time_major(dX, dx, B, T, F);
}

int gb_layer_plan_recurrent(gb_layer_t *l, int gates, int64_t cache_per_sample, gb_error_t *err)
{
    int rc = gb_layer_require_sequence(l, err);
    if (rc)
        return rc;
    const int64_t T = l->in.dim[0], F = l->in.dim[1], H = l->cfg.units;
    if (cache_per_sample > GB_LAYER_MAX_FLOATS || gates * H * (F + H) > GB_LAYER_MAX_FLOATS)
        return gb_error_set(err, GB_ESHAPE, "spec line %d: %s %lld on %lldx%lld inputs is too large",
                            l->cfg.line, gb_layer_kind_name(l->cfg.kind), (long long)H,
                            (long long)T, (long long)F);
    l->out.rank = l->cfg.sequence ? 2 : 1;
    l->out.dim[0] = l->cfg.sequence ? (int)T : (int)H;
    l->out.dim[1] = l->cfg.sequence ? (int)H : 1;
    l->out.dim[2] = 1;
    l->param_len = (size_t)(gates * H * (F + H) + 2 * gates * H);
    l->cache_per_sample = (size_t)cache_per_sample;
    return 0;
}

void gb_layer_add_step_gradient(const gb_layer_t *l, const float *dy, float *dh, int B, int t)
{
    const int T = l->in.dim[0], H = l->cfg.units;
    if (!l->cfg.sequence) {
        if (t == T - 1)
            memcpy(dh, dy, (size_t)B * H * sizeof(float)); /* dh is 0 at the last step */
        return;
    }
    for (int b = 0; b < B; b++) {
        const float *src = dy + ((size_t)b * T + t) * H;
        float *dst = dh + (size_t)b * H;
        for (int j = 0; j < H; j++)
            dst[j] += src[j];
    }
}

void gb_layer_write_recurrent_output(const gb_layer_t *l, const float *h, float *y, int B)
{
    const int T = l->in.dim[0], H = l->cfg.units;
    if (l->cfg.sequence)
        gb_layer_from_time_major(h + (size_t)B * H, y, B, T, H);
    else
        memcpy(y, h + (size_t)T * B * H, (size_t)B * H * sizeof(float));
}
