/* Inverted dropout: in training each element is kept with probability 1 - p
 * and scaled by 1/(1 - p); in evaluation it is the identity. The mask of a
 * sample depends only on (step seed, sample index in the batch), never on
 * which worker runs it, so the thread count does not change training. The
 * cache keeps the mask as the factor (0 or 1/(1-p)) applied to each element. */
#include "engine/layer.h"

#include <string.h>

static int s_plan(gb_layer_t *l, gb_error_t *err)
{
    (void)err;
    l->out = l->in;
    l->param_len = 0;
    l->cache_per_sample = gb_shape_size(&l->in);
    return 0;
}

static void s_forward(const gb_layer_t *l, const gb_pass_t *pass, float *cache, const float *x,
                      float *y)
{
    const size_t per = gb_shape_size(&l->in);
    const size_t n = per * (size_t)pass->batch;
    const float p = l->cfg.rate;
    if (!pass->train || p == 0.0f) {
        for (size_t i = 0; i < n; i++)
            cache[i] = 1.0f;
        memcpy(y, x, n * sizeof(float));
        return;
    }
    const float keep_scale = 1.0f / (1.0f - p);
    /* Keep when a 24-bit uniform integer is >= p * 2^24. */
    const uint32_t threshold = (uint32_t)((double)p * 16777216.0);
    for (int s = 0; s < pass->batch; s++) {
        gb_rng_t rng;
        gb_rng_seed(&rng, pass->seed, gb_hash2((uint64_t)l->param_off, (uint64_t)(pass->sample0 + s)) ^
                                          (uint64_t)l->cfg.line);
        float *m = cache + (size_t)s * per;
        for (size_t i = 0; i < per; i++)
            m[i] = (uint32_t)(gb_rng_next(&rng) >> 40) >= threshold ? keep_scale : 0.0f;
    }
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] * cache[i];
}

static void s_backward(const gb_layer_t *l, const gb_pass_t *pass, const float *cache,
                       const float *x, const float *y, const float *dy, float *dx)
{
    (void)x;
    (void)y;
    if (!dx)
        return;
    const size_t n = gb_shape_size(&l->in) * (size_t)pass->batch;
    for (size_t i = 0; i < n; i++)
        dx[i] = dy[i] * cache[i];
}

const gb_layer_ops_t gb_dropout_ops = {.plan = s_plan, .forward = s_forward, .backward = s_backward};
