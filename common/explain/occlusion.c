/* Occlusion (Zeiler and Fergus): slide a window over the input, set the
 * features under it to the fill value (or the baseline's values), and credit
 * each feature with the mean of f(x) - f(occluded x) over the windows that
 * cover it, as Captum's Occlusion does. Forward passes only, so it needs no
 * gradient and works for any model; for recurrent models it is the check on
 * gradient maps, which lean toward recent timesteps.
 *
 * The input is viewed as (C, H, W) and every window spans all C: an image
 * (C, H, W) gets patch x patch windows; a sequence (T, F) is (1, T, F) with
 * windows of `patch` timesteps across all F features; a vector (N) is
 * (1, N, 1). Windows start at 0 and step by the stride; the last may be cut
 * off by the edge.
 *
 * Rows (sample, window), plus one plain row per sample for f(x), stream
 * through forward-only batches of the planned size. A sample's sums of f
 * over the windows covering each position are kept in slot i mod batch: a
 * batch holds at most batch/2 + 1 samples (each has >= 2 rows), so the
 * sample that used a slot before is finished when the slot is reused. */
#include "explain/explainer.h"

#include <string.h>

#include "util/alloc.h"
#include "util/log.h"

int gb_explain_occlusion_plan(gb_explainer_t *e, gb_error_t *err)
{
    const gb_shape_t *s = &e->in_shape;
    int k = e->cfg.patch, st = e->cfg.stride;
    e->occ_c = 1;
    e->occ_w = 1;
    e->occ_kw = e->occ_sw = 1;
    e->occ_kh = k;
    e->occ_sh = st;
    if (s->rank == 3) {
        e->occ_c = s->dim[0];
        e->occ_h = s->dim[1];
        e->occ_w = s->dim[2];
        e->occ_kw = k;
        e->occ_sw = st;
    } else if (s->rank == 2) {
        e->occ_h = s->dim[0];
        e->occ_w = e->occ_kw = e->occ_sw = s->dim[1];
    } else {
        e->occ_h = s->dim[0];
    }
    if (e->occ_kh > e->occ_h || e->occ_kw > e->occ_w)
        return gb_error_warn(err, GB_EINVAL,
                             "explain: occlusion patch %d larger than the input "
                             "(%d x %d)",
                             k, e->occ_h, e->occ_w);
    e->occ_nh = (e->occ_h - e->occ_kh + e->occ_sh - 1) / e->occ_sh + 1;
    e->occ_nw = (e->occ_w - e->occ_kw + e->occ_sw - 1) / e->occ_sw + 1;
    size_t hw = (size_t)e->occ_h * (size_t)e->occ_w;
    e->occ_count = gb_calloc(hw, sizeof *e->occ_count);
    e->occ_sum = gb_alloc_aligned((size_t)e->batch * hw * sizeof(double));
    e->occ_fx = gb_calloc((size_t)e->batch, sizeof *e->occ_fx);
    e->row_slot = gb_calloc((size_t)e->batch, sizeof *e->row_slot);
    e->row_point = gb_calloc((size_t)e->batch, sizeof *e->row_point);
    if (!e->occ_count || !e->occ_sum || !e->occ_fx || !e->row_slot || !e->row_point)
        return gb_error_set(err, GB_ENOMEM, "explain: out of memory for occlusion");
    for (int a = 0; a < e->occ_nh; a++)
        for (int b = 0; b < e->occ_nw; b++)
            for (int h = a * e->occ_sh; h < a * e->occ_sh + e->occ_kh && h < e->occ_h; h++)
                for (int w = b * e->occ_sw; w < b * e->occ_sw + e->occ_kw && w < e->occ_w; w++)
                    e->occ_count[(size_t)h * (size_t)e->occ_w + (size_t)w]++;
    return 0;
}

/* Window p's rows [*h0, *h1) and columns [*w0, *w1). */
static void s_window(const gb_explainer_t *e, int p, int *h0, int *h1, int *w0, int *w1)
{
    int a = p / e->occ_nw, b = p % e->occ_nw;
    *h0 = a * e->occ_sh;
    *h1 = *h0 + e->occ_kh < e->occ_h ? *h0 + e->occ_kh : e->occ_h;
    *w0 = b * e->occ_sw;
    *w1 = *w0 + e->occ_kw < e->occ_w ? *w0 + e->occ_kw : e->occ_w;
}

/* Sample xi with window p (p < 0: none) occluded, into row. */
static void s_fill_row(const gb_explainer_t *e, const float *xi, int p, float *row)
{
    memcpy(row, xi, e->in_size * sizeof(float));
    if (p < 0)
        return;
    int h0, h1, w0, w1;
    s_window(e, p, &h0, &h1, &w0, &w1);
    size_t hw = (size_t)e->occ_h * (size_t)e->occ_w;
    for (int c = 0; c < e->occ_c; c++)
        for (int h = h0; h < h1; h++)
            for (int w = w0; w < w1; w++) {
                size_t f = (size_t)c * hw + (size_t)h * (size_t)e->occ_w + (size_t)w;
                row[f] = e->cfg.baseline ? e->base[f] : e->cfg.fill;
            }
}

/* Sample i's map from its slot's sums. */
static void s_finish(const gb_explainer_t *e, int slot, float *out)
{
    size_t hw = (size_t)e->occ_h * (size_t)e->occ_w;
    const double *sum = e->occ_sum + (size_t)slot * hw;
    double fx = e->occ_fx[slot];
    for (size_t q = 0; q < hw; q++) {
        int cnt = e->occ_count[q];
        float v = cnt ? (float)(fx - sum[q] / cnt) : 0.0f;
        for (int c = 0; c < e->occ_c; c++)
            out[(size_t)c * hw + q] = v;
    }
}

int gb_explain_occlusion_run(gb_explainer_t *e, const float *x, const int32_t *target, int n,
                             float *attr, int *steps_used, gb_error_t *err)
{
    int windows = e->occ_nh * e->occ_nw;
    size_t hw = (size_t)e->occ_h * (size_t)e->occ_w;
    int cur_i = 0, cur_p = -1;
    while (cur_i < n) {
        int rows = 0;
        while (rows < e->batch && cur_i < n) {
            int slot = cur_i % e->batch;
            if (cur_p < 0)
                memset(e->occ_sum + (size_t)slot * hw, 0, hw * sizeof(double));
            s_fill_row(e, x + (size_t)cur_i * e->in_size, cur_p, e->xb + (size_t)rows * e->in_size);
            e->row_slot[rows] = cur_i;
            e->row_point[rows] = cur_p;
            rows++;
            if (++cur_p == windows) {
                cur_p = -1;
                cur_i++;
            }
        }
        int rc = gb_model_forward(e->model, e->xb, rows, e->logits, err);
        if (rc)
            return rc;
        for (int r = 0; r < rows; r++) {
            int i = e->row_slot[r], p = e->row_point[r], slot = i % e->batch;
            double f = e->logits[(size_t)r * e->out_size + (size_t)gb_explain_target(target, i)];
            if (p < 0) {
                e->occ_fx[slot] = f;
                continue;
            }
            int h0, h1, w0, w1;
            s_window(e, p, &h0, &h1, &w0, &w1);
            double *sum = e->occ_sum + (size_t)slot * hw;
            for (int h = h0; h < h1; h++)
                for (int w = w0; w < w1; w++)
                    sum[(size_t)h * (size_t)e->occ_w + (size_t)w] += f;
            if (p == windows - 1) {
                s_finish(e, slot, attr + (size_t)i * e->attr_size);
                if (steps_used)
                    steps_used[i] = windows + 1;
            }
        }
    }
    return 0;
}
