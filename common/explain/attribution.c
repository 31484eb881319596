/* The explainer's configuration, construction and dispatch.
 *
 * gb_explainer_new checks a configuration against the model once, resolves
 * its defaults (Grad-CAM's last conv layer, SmoothGrad with sigma 0 as its
 * base method) and lets each method family plan its buffers at the model's
 * planned batch (explainer.h lists the families and their files), so that
 * gb_explain only validates targets, computes f(baseline) when IG needs it
 * and hands the work to the family. */
#include "explain/explainer.h"

#include <math.h>
#include <string.h>

#include "util/alloc.h"
#include "util/log.h"

static const char *const s_names[GB_EXPLAIN_METHOD_COUNT] = {
    [GB_EXPLAIN_IG] = "ig",
    [GB_EXPLAIN_SALIENCY] = "saliency",
    [GB_EXPLAIN_GRADXINPUT] = "gradxinput",
    [GB_EXPLAIN_SMOOTHGRAD] = "smoothgrad",
    [GB_EXPLAIN_GRADCAM] = "gradcam",
    [GB_EXPLAIN_OCCLUSION] = "occlusion",
};

gb_explain_cfg_t gb_explain_defaults(gb_explain_method_t method)
{
    gb_explain_cfg_t c = {
        .method = method,
        .steps = 32,
        .rule = GB_IG_GAUSS_LEGENDRE,
        .baseline = NULL,
        .max_doublings = 3,
        .completeness_tol = 0.05,
        .base = GB_EXPLAIN_SALIENCY,
        .samples = 16,
        .sigma = 0.15f,
        .seed = 0,
        .patch = 4,
        .stride = 4,
        .fill = 0.0f,
        .layer = -1,
    };
    return c;
}

int gb_explain_parse_method(const char *name, gb_explain_method_t *out)
{
    if (!name)
        return GB_EINVAL;
    for (int m = 0; m < GB_EXPLAIN_METHOD_COUNT; m++)
        if (strcmp(name, s_names[m]) == 0) {
            *out = (gb_explain_method_t)m;
            return 0;
        }
    return GB_EINVAL;
}

const char *gb_explain_method_name(gb_explain_method_t m)
{
    if ((int)m < 0 || (int)m >= GB_EXPLAIN_METHOD_COUNT)
        return "?";
    return s_names[m];
}

void gb_explainer_destroy(gb_explainer_t **pe)
{
    if (!pe || !*pe)
        return;
    gb_explainer_t *e = *pe;
    gb_free(e->base);
    gb_free(e->base_logits);
    gb_free_aligned(e->xb);
    gb_free(e->logits);
    gb_free(e->dout);
    gb_free_aligned(e->dx);
    for (int l = 0; e->alpha && l < e->levels; l++)
        gb_free(e->alpha[l]);
    for (int l = 0; e->weight && l < e->levels; l++)
        gb_free(e->weight[l]);
    gb_free(e->alpha);
    gb_free(e->weight);
    gb_free(e->level_n);
    gb_free(e->level_has_one);
    gb_free(e->slots);
    gb_free_aligned(e->acc);
    gb_free_aligned(e->h_base);
    gb_free_aligned(e->h_x);
    gb_free_aligned(e->hb);
    gb_free_aligned(e->dh);
    gb_free(e->started);
    gb_free(e->grad);
    gb_free_aligned(e->noisy);
    gb_free(e->queue);
    gb_free(e->free_slots);
    gb_free(e->row_slot);
    gb_free(e->row_point);
    gb_free(e->run_first);
    gb_free(e->run_end);
    gb_free(e->row_drained);
    gb_free(e->touched);
    gb_free(e->map);
    gb_free(e->sg_sum);
    gb_free_aligned(e->cap_out);
    gb_free_aligned(e->cap_grad);
    gb_free(e->occ_count);
    gb_free_aligned(e->occ_sum);
    gb_free(e->occ_fx);
    gb_free(e);
    *pe = NULL;
}

static bool s_gradient_method(gb_explain_method_t m)
{
    return m == GB_EXPLAIN_IG || m == GB_EXPLAIN_SALIENCY || m == GB_EXPLAIN_GRADXINPUT ||
           m == GB_EXPLAIN_SMOOTHGRAD;
}

/* Checks what does not need the model's layers. */
static int s_check_cfg(const gb_explain_cfg_t *c, gb_explain_method_t kind, gb_error_t *err)
{
    if ((int)c->method < 0 || (int)c->method >= GB_EXPLAIN_METHOD_COUNT)
        return gb_error_warn(err, GB_EINVAL, "explain: method %d unknown", (int)c->method);
    if (c->method == GB_EXPLAIN_SMOOTHGRAD) {
        if (c->base != GB_EXPLAIN_SALIENCY && c->base != GB_EXPLAIN_GRADXINPUT &&
            c->base != GB_EXPLAIN_IG)
            return gb_error_warn(err, GB_EINVAL,
                                 "explain: smoothgrad base '%s' is not saliency, gradxinput or ig",
                                 gb_explain_method_name(c->base));
        if (c->samples < 1 || c->samples > GB_SMOOTHGRAD_MAX_SAMPLES)
            return gb_error_warn(err, GB_EINVAL, "explain: smoothgrad samples %d outside 1..%d",
                                 c->samples, GB_SMOOTHGRAD_MAX_SAMPLES);
        if (!(c->sigma >= 0.0f) || !isfinite(c->sigma))
            return gb_error_warn(err, GB_EINVAL,
                                 "explain: smoothgrad sigma %g is not a finite "
                                 "value >= 0",
                                 (double)c->sigma);
    }
    if (kind == GB_EXPLAIN_IG) {
        if (c->rule != GB_IG_GAUSS_LEGENDRE && c->rule != GB_IG_TRAPEZOID)
            return gb_error_warn(err, GB_EINVAL, "explain: ig rule %d unknown", (int)c->rule);
        int min = c->rule == GB_IG_TRAPEZOID ? 2 : 1;
        if (c->steps < min || c->steps > GB_IG_MAX_STEPS)
            return gb_error_warn(err, GB_EINVAL, "explain: ig steps %d outside %d..%d", c->steps,
                                 min, GB_IG_MAX_STEPS);
        if (c->max_doublings < 0 || c->max_doublings > GB_IG_MAX_DOUBLINGS ||
            ((long)c->steps << c->max_doublings) > GB_IG_MAX_STEPS)
            return gb_error_warn(err, GB_EINVAL,
                                 "explain: ig max_doublings %d: %d steps may not double beyond "
                                 "%d",
                                 c->max_doublings, c->steps, GB_IG_MAX_STEPS);
        if (!(c->completeness_tol >= 0.0) || !isfinite(c->completeness_tol))
            return gb_error_warn(err, GB_EINVAL,
                                 "explain: ig completeness_tol %g is not a "
                                 "finite value >= 0",
                                 c->completeness_tol);
    }
    if (c->method == GB_EXPLAIN_OCCLUSION && (c->patch < 1 || c->stride < 1))
        return gb_error_warn(err, GB_EINVAL,
                             "explain: occlusion patch %d and stride %d must be "
                             ">= 1",
                             c->patch, c->stride);
    if (c->method == GB_EXPLAIN_OCCLUSION && !isfinite(c->fill))
        return gb_error_warn(err, GB_EINVAL, "explain: occlusion fill %g is not finite",
                             (double)c->fill);
    return 0;
}

gb_explainer_t *gb_explainer_new(gb_model_t *model, const gb_explain_cfg_t *cfg, gb_error_t *err)
{
    if (!model || !cfg) {
        gb_error_set(err, GB_EINVAL, "explain: no model or no configuration");
        return NULL;
    }
    if (gb_model_max_batch(model) < 1) {
        gb_error_set(err, GB_EINVAL, "explain: model not planned: call gb_model_plan first");
        return NULL;
    }
    gb_explain_method_t kind = cfg->method;
    int copies = 1;
    if (cfg->method == GB_EXPLAIN_SMOOTHGRAD) {
        kind = cfg->base;
        if (cfg->sigma > 0.0f)
            copies = cfg->samples;
    }
    if (s_check_cfg(cfg, kind, err))
        return NULL;
    gb_layer_kind_t first;
    if (gb_model_layer_info(model, 0, &first, NULL, NULL) == 0 && first == GB_LAYER_EMBEDDING &&
        s_gradient_method(cfg->method)) {
        gb_error_warn(err, GB_EINVAL,
                      "explain: %s needs input gradients, and the model's first "
                      "layer (embedding) reads token ids",
                      gb_explain_method_name(cfg->method));
        return NULL;
    }
    gb_explainer_t *e = gb_calloc(1, sizeof *e);
    if (!e) {
        gb_error_set(err, GB_ENOMEM, "explain: out of memory");
        return NULL;
    }
    e->model = model;
    e->cfg = *cfg;
    e->kind = kind;
    e->copies = copies;
    e->in_shape = gb_model_input_shape(model);
    e->attr_shape = e->in_shape;
    e->in_size = gb_shape_size(&e->in_shape);
    gb_shape_t out = gb_model_output_shape(model);
    e->out_size = gb_shape_size(&out);
    e->attr_size = e->in_size;
    e->batch = gb_model_max_batch(model);
    e->zero_base = cfg->baseline == NULL;
    size_t B = (size_t)e->batch;
    e->base = gb_calloc(e->in_size, sizeof(float));
    e->base_logits = gb_calloc(e->out_size, sizeof(float));
    e->xb = gb_alloc_aligned(B * e->in_size * sizeof(float));
    e->logits = gb_calloc(B * e->out_size, sizeof(float));
    e->dout = gb_calloc(B * e->out_size, sizeof(float));
    if (!e->base || !e->base_logits || !e->xb || !e->logits || !e->dout) {
        gb_error_set(err, GB_ENOMEM, "explain: out of memory for batch %d", e->batch);
        goto fail;
    }
    if (cfg->baseline)
        memcpy(e->base, cfg->baseline, e->in_size * sizeof(float));
    e->cfg.baseline = cfg->baseline ? e->base : NULL;
    int rc;
    if (s_gradient_method(cfg->method))
        rc = gb_explain_gradients_plan(e, err);
    else if (cfg->method == GB_EXPLAIN_GRADCAM)
        rc = gb_explain_gradcam_plan(e, err);
    else
        rc = gb_explain_occlusion_plan(e, err);
    if (rc)
        goto fail;
    return e;
fail:
    gb_explainer_destroy(&e);
    return NULL;
}

gb_shape_t gb_explainer_attr_shape(const gb_explainer_t *e)
{
    return e->attr_shape;
}

const gb_explain_cfg_t *gb_explainer_cfg(const gb_explainer_t *e)
{
    return &e->cfg;
}

int gb_explain(gb_explainer_t *e, const float *x, const int32_t *target, int n, float *attr,
               double *completeness, int *steps_used, gb_error_t *err)
{
    if (!e || n < 0 || (n > 0 && (!x || !attr)))
        return gb_error_set(err, GB_EINVAL, "explain: bad arguments (n %d)", n);
    for (int i = 0; target && i < n; i++)
        if (target[i] < 0 || (size_t)target[i] >= e->out_size)
            return gb_error_warn(err, GB_ERANGE, "explain: target %d of sample %d outside 0..%zu",
                                 (int)target[i], i, e->out_size - 1);
    if (n == 0)
        return 0;
    gb_model_set_train(e->model, false, 0);
    switch (e->cfg.method) {
    case GB_EXPLAIN_GRADCAM:
        if (completeness)
            memset(completeness, 0, (size_t)n * sizeof *completeness);
        if (steps_used)
            for (int i = 0; i < n; i++)
                steps_used[i] = 1;
        return gb_explain_gradcam_run(e, x, target, n, attr, err);
    case GB_EXPLAIN_OCCLUSION:
        if (completeness)
            memset(completeness, 0, (size_t)n * sizeof *completeness);
        return gb_explain_occlusion_run(e, x, target, n, attr, steps_used, err);
    default:
        if (e->kind == GB_EXPLAIN_IG) {
            int rc = gb_model_forward(e->model, e->base, 1, e->base_logits, err);
            if (rc)
                return rc;
        }
        return gb_explain_gradients_run(e, x, target, n, attr, completeness, steps_used, err);
    }
}
