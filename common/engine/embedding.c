/* Embedding: token ids -> rows of a (V x D) table, PyTorch's nn.Embedding
 * layout. The input is T ids per sample carried as floats (exact below
 * 2^24); the model checks them (check_input) before any pass, so forward can
 * index without a bounds test. Ids carry no gradient: dx is zero. */
#include "engine/layer.h"

#include <math.h>
#include <string.h>

static int s_plan(gb_layer_t *l, gb_error_t *err)
{
    if (l->in.rank != 1) {
        char buf[64];
        return gb_error_set(err, GB_ESHAPE,
                            "spec line %d: embedding needs 'input T' (T token ids), got shape %s",
                            l->cfg.line, gb_shape_format(&l->in, buf, sizeof buf));
    }
    if (l->cfg.vocab > (1 << 24))
        return gb_error_set(err, GB_ESHAPE,
                            "spec line %d: embedding vocabulary %d above 16777216 (ids travel "
                            "as floats)",
                            l->cfg.line, l->cfg.vocab);
    if ((int64_t)l->cfg.vocab * l->cfg.units > GB_LAYER_MAX_FLOATS * 4)
        return gb_error_set(err, GB_ESHAPE, "spec line %d: embedding table too large",
                            l->cfg.line);
    l->out.rank = 2;
    l->out.dim[0] = l->in.dim[0];
    l->out.dim[1] = l->cfg.units;
    l->out.dim[2] = 1;
    l->param_len = (size_t)l->cfg.vocab * l->cfg.units;
    l->cache_per_sample = 0;
    return 0;
}

static void s_init(const gb_layer_t *l, float *p, gb_rng_t *rng)
{
    for (size_t i = 0; i < l->param_len; i++)
        p[i] = (float)gb_rng_normal(rng);
}

static int s_check_input(const gb_layer_t *l, const float *x, int batch, gb_error_t *err)
{
    const int T = l->in.dim[0];
    for (int b = 0; b < batch; b++)
        for (int t = 0; t < T; t++) {
            float v = x[(size_t)b * T + t];
            if (!(v >= 0.0f && v < (float)l->cfg.vocab) || v != floorf(v))
                return gb_error_set(err, GB_ERANGE,
                                    "sample %d step %d: token id %g is not an integer in 0..%d",
                                    b, t, (double)v, l->cfg.vocab - 1);
        }
    return 0;
}

static void s_forward(const gb_layer_t *l, const gb_pass_t *pass, float *cache, const float *x,
                      float *y)
{
    (void)cache;
    const int T = l->in.dim[0], D = l->cfg.units;
    const float *W = pass->params + l->param_off;
    for (size_t i = 0; i < (size_t)pass->batch * T; i++)
        memcpy(y + i * D, W + (size_t)x[i] * D, (size_t)D * sizeof(float));
}

static void s_backward(const gb_layer_t *l, const gb_pass_t *pass, const float *cache,
                       const float *x, const float *y, const float *dy, float *dx)
{
    (void)cache;
    (void)y;
    const int T = l->in.dim[0], D = l->cfg.units;
    const size_t n = (size_t)pass->batch * T;
    if (pass->grads) {
        float *dW = pass->grads + l->param_off;
        for (size_t i = 0; i < n; i++) {
            float *row = dW + (size_t)x[i] * D;
            const float *g = dy + i * D;
            for (int j = 0; j < D; j++)
                row[j] += g[j];
        }
    }
    if (dx)
        memset(dx, 0, n * sizeof(float));
}

static double s_flops(const gb_layer_t *l)
{
    (void)l;
    return 0.0;
}

const gb_layer_ops_t gb_embedding_ops = {
    .plan = s_plan,
    .init = s_init,
    .forward = s_forward,
    .backward = s_backward,
    .flops = s_flops,
    .check_input = s_check_input,
};
