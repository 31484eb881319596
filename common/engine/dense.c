/* Dense (fully connected) layer: y = x W^T + b with W stored (out x in) as
 * PyTorch's nn.Linear. The per-sample input is taken as one flat vector.
 * Shapes: B = samples, NI = inputs, NO = outputs (not I and O: complex.h, pulled in by cblas.h, defines I). */
#include "engine/layer.h"

#include <math.h>
#include <string.h>

#include "engine/gemm.h"

/* The three products go to the engine's own kernels where the CPU has them
 * (engine/gemm.h). */

static int s_plan(gb_layer_t *l, gb_error_t *err)
{
    (void)err;
    size_t in = gb_shape_size(&l->in);
    l->out.rank = 1;
    l->out.dim[0] = l->cfg.units;
    l->out.dim[1] = l->out.dim[2] = 1;
    l->param_len = in * (size_t)l->cfg.units + (size_t)l->cfg.units;
    l->cache_per_sample = 0;
    if (in * (size_t)l->cfg.units > (size_t)1 << 31)
        return gb_error_set(err, GB_ESHAPE, "spec line %d: dense %d on %zu inputs is too large",
                            l->cfg.line, l->cfg.units, in);
    return 0;
}

static void s_init(const gb_layer_t *l, float *p, gb_rng_t *rng)
{
    size_t in = gb_shape_size(&l->in);
    float bound = 1.0f / sqrtf((float)in);
    gb_layer_fill_uniform(p, l->param_len, bound, rng);
}

static void s_forward(const gb_layer_t *l, const gb_pass_t *pass, float *cache, const float *x,
                      float *y)
{
    (void)cache;
    const int B = pass->batch, NI = (int)gb_shape_size(&l->in), NO = l->cfg.units;
    const float *W = pass->params + l->param_off;
    const float *b = W + (size_t)NI * NO;
    for (int r = 0; r < B; r++)
        memcpy(y + (size_t)r * NO, b, (size_t)NO * sizeof(float));
    /* y[B x NO] += x[B x NI] . W^T */
    gb_gemm_nt(B, NO, NI, x, (size_t)NI, W, (size_t)NI, y, (size_t)NO);
}

static void s_backward(const gb_layer_t *l, const gb_pass_t *pass, const float *cache,
                       const float *x, const float *y, const float *dy, float *dx)
{
    (void)cache;
    (void)y;
    const int B = pass->batch, NI = (int)gb_shape_size(&l->in), NO = l->cfg.units;
    const float *W = pass->params + l->param_off;
    if (pass->grads) {
        float *dW = pass->grads + l->param_off;
        float *db = dW + (size_t)NI * NO;
        /* dW[NO x NI] += dy^T[NO x B] . x[B x NI] */
        gb_gemm_nn(NO, NI, B, dy, 1, x, (size_t)NI, dW, (size_t)NI, 1);
        for (int r = 0; r < B; r++) {
            const float *row = dy + (size_t)r * NO;
            for (int o = 0; o < NO; o++)
                db[o] += row[o];
        }
    }
    if (dx) {
        /* dx[B x NI] = dy[B x NO] . W[NO x NI] */
        gb_gemm_nn(B, NI, NO, dy, 0, W, (size_t)NI, dx, (size_t)NI, 0);
    }
}

static double s_flops(const gb_layer_t *l)
{
    return 2.0 * (double)gb_shape_size(&l->in) * l->cfg.units;
}

const gb_layer_ops_t gb_dense_ops = {
    .plan = s_plan,
    .init = s_init,
    .work_floats = NULL,
    .forward = s_forward,
    .backward = s_backward,
    .flops = s_flops,
};
