/* Grad-CAM (Selvaraju et al.) on one conv layer, signed and at the layer's
 * own resolution: map = sum_k alpha_k A_k with alpha_k the mean over
 * positions of d logit / d A_k, A the conv layer's output (before any
 * activation that follows it), as Captum's LayerGradCam computes with
 * relu_attributions=False and no interpolation. Keeping the sign and the
 * native H' x W' is what aggregation wants (shared/research/
 * xai-and-privacy.md 1.2 f); ReLU and upsampling are for display.
 *
 * The engine copies the layer's output and the gradient arriving at it into
 * two buffers of the planned batch (gb_model_capture), so one forward and
 * one backward (no dx, no parameter gradients) per batch of samples is all
 * it costs; the capture is cleared again before returning. */
#include "explain/explainer.h"

#include <string.h>

#include "util/alloc.h"
#include "util/log.h"

int gb_explain_gradcam_plan(gb_explainer_t *e, gb_error_t *err)
{
    int layer = e->cfg.layer;
    int count = gb_model_layer_count(e->model);
    gb_layer_kind_t kind;
    if (layer < 0) {
        for (int i = 0; i < count; i++)
            if (gb_model_layer_info(e->model, i, &kind, NULL, NULL) == 0 && kind == GB_LAYER_CONV2D)
                layer = i;
        if (layer < 0)
            return gb_error_warn(err, GB_EINVAL,
                                 "explain: gradcam needs a conv layer and the "
                                 "model has none");
    } else if (gb_model_layer_info(e->model, layer, &kind, NULL, NULL) != 0 ||
               kind != GB_LAYER_CONV2D) {
        return gb_error_warn(err, GB_EINVAL,
                             "explain: gradcam layer %d is not a conv layer "
                             "(the model has layers 0..%d)",
                             layer, count - 1);
    }
    gb_shape_t s = gb_model_layer_output_shape(e->model, layer);
    e->cfg.layer = layer;
    e->cam_layer = layer;
    e->cam_channels = s.dim[0];
    e->cam_positions = (size_t)s.dim[1] * (size_t)s.dim[2];
    e->attr_shape.rank = 2;
    e->attr_shape.dim[0] = s.dim[1];
    e->attr_shape.dim[1] = s.dim[2];
    e->attr_shape.dim[2] = 1;
    e->attr_size = e->cam_positions;
    size_t per = (size_t)e->cam_channels * e->cam_positions;
    e->cap_out = gb_alloc_aligned((size_t)e->batch * per * sizeof(float));
    e->cap_grad = gb_alloc_aligned((size_t)e->batch * per * sizeof(float));
    e->sg_sum = gb_calloc(e->cam_positions, sizeof *e->sg_sum);
    if (!e->cap_out || !e->cap_grad || !e->sg_sum)
        return gb_error_set(err, GB_ENOMEM, "explain: out of memory for gradcam maps");
    return 0;
}

/* The map of one sample from its captured A and dA (K x Z each). */
static void s_cam(const gb_explainer_t *e, const float *a, const float *g, float *out)
{
    size_t z = e->cam_positions;
    double *sum = e->sg_sum; /* z doubles of scratch */
    memset(sum, 0, z * sizeof(double));
    for (int k = 0; k < e->cam_channels; k++) {
        const float *gk = g + (size_t)k * z, *ak = a + (size_t)k * z;
        double alpha = 0.0;
        for (size_t p = 0; p < z; p++)
            alpha += (double)gk[p];
        alpha /= (double)z;
        for (size_t p = 0; p < z; p++)
            sum[p] += alpha * (double)ak[p];
    }
    for (size_t p = 0; p < z; p++)
        out[p] = (float)sum[p];
}

int gb_explain_gradcam_run(gb_explainer_t *e, const float *x, const int32_t *target, int n,
                           float *attr, gb_error_t *err)
{
    int rc = gb_model_capture(e->model, e->cam_layer, e->cap_out, e->cap_grad, err);
    if (rc)
        return rc;
    size_t per = (size_t)e->cam_channels * e->cam_positions;
    for (int i0 = 0; i0 < n && !rc; i0 += e->batch) {
        int nb = n - i0 < e->batch ? n - i0 : e->batch;
        memset(e->dout, 0, (size_t)nb * e->out_size * sizeof(float));
        for (int b = 0; b < nb; b++)
            e->dout[(size_t)b * e->out_size + (size_t)gb_explain_target(target, i0 + b)] = 1.0f;
        rc = gb_model_forward(e->model, x + (size_t)i0 * e->in_size, nb, e->logits, err);
        if (!rc)
            rc = gb_model_backward(e->model, e->dout, nb, NULL, false, err);
        for (int b = 0; b < nb && !rc; b++)
            s_cam(e, e->cap_out + (size_t)b * per, e->cap_grad + (size_t)b * per,
                  attr + (size_t)(i0 + b) * e->attr_size);
    }
    /* Always stop capturing: the buffers belong to the explainer. */
    int rc2 = gb_model_capture(e->model, -1, NULL, NULL, NULL);
    return rc ? rc : rc2;
}
