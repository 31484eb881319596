/* GRU layer with PyTorch's nn.GRU layout: W_ih (3H x F), W_hh (3H x H),
 * b_ih (3H), b_hh (3H), gates r, z, n, with the reset gate applied AFTER the
 * recurrent product: n = tanh(W_in x + b_in + r * (W_hn h + b_hn)); zero
 * initial state.
 *
 * Same skeleton as lstm.c (time-major inside; B samples, T steps, F inputs,
 * H units): the input projection of all steps is one sgemm; per step one
 * sgemm gives all three gates' recurrent products (the reset gate multiplies
 * after it, so one product serves), then one fused pointwise pass; backward
 * runs one pointwise pass and one sgemm per step and the weight gradients of
 * all steps in two large sgemms. The cache holds X (time-major), the
 * activated gates, W_hn h + b_hn per step, and h for steps 0..T. */
#include "engine/activations.h"
#include "engine/layer.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

typedef struct {
    int T, F, H;
} s_dims_t;

static s_dims_t s_dims(const gb_layer_t *l)
{
    s_dims_t d = {l->in.dim[0], l->in.dim[1], l->cfg.units};
    return d;
}

typedef struct {
    float *x;     /* T*B x F      time-major input */
    float *gates; /* T*B x 3H     r, z, n */
    float *hn;    /* T*B x H      W_hn h + b_hn */
    float *h;     /* (T+1)*B x H  slot 0 is the zero initial state */
} s_cache_t;

static s_cache_t s_cache(const s_dims_t *d, int B, float *base)
{
    s_cache_t c;
    size_t TB = (size_t)d->T * B;
    c.x = base;
    c.gates = c.x + TB * d->F;
    c.hn = c.gates + TB * 3 * d->H;
    c.h = c.hn + TB * d->H;
    return c;
}

static int s_plan(gb_layer_t *l, gb_error_t *err)
{
    if (l->in.rank != 2)
        return gb_layer_require_sequence(l, err);
    s_dims_t d = s_dims(l);
    return gb_layer_plan_recurrent(l, 3, (int64_t)d.T * (d.F + 5 * (int64_t)d.H) + d.H, err);
}

static void s_init(const gb_layer_t *l, float *p, gb_rng_t *rng)
{
    gb_layer_fill_uniform(p, l->param_len, 1.0f / sqrtf((float)l->cfg.units), rng);
}

static size_t s_work_floats(const gb_layer_t *l, int batch)
{
    s_dims_t d = s_dims(l);
    size_t TB = (size_t)d.T * batch, BH = (size_t)batch * d.H;
    size_t fwd = TB * 3 * d.H + 3 * BH;                       /* GX, gh */
    size_t bwd = 2 * TB * 3 * d.H + TB * d.F + 2 * BH;         /* dGX, dGH, dX, dh, dp */
    return fwd > bwd ? fwd : bwd;
}

static void s_forward(const gb_layer_t *l, const gb_pass_t *pass, float *cache, const float *x,
                      float *y)
{
    s_dims_t d = s_dims(l);
    const int B = pass->batch, T = d.T, F = d.F, H = d.H;
    const gb_recurrent_offsets_t o = gb_layer_recurrent_offsets(l, 3);
    const float *Wih = pass->params + o.w_ih, *Whh = pass->params + o.w_hh;
    const float *bih = pass->params + o.b_ih, *bhh = pass->params + o.b_hh;
    s_cache_t c = s_cache(&d, B, cache);
    const size_t TB = (size_t)T * B;
    float *GX = pass->work, *gh = GX + TB * 3 * H;
    gb_layer_to_time_major(x, c.x, B, T, F);
    for (size_t r = 0; r < TB; r++)
        memcpy(GX + r * 3 * H, bih, (size_t)3 * H * sizeof(float));
    /* GX[T*B x 3H] += X[T*B x F] . W_ih^T[F x 3H] */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)TB, 3 * H, F, 1.0f, c.x, F, Wih, F,
                1.0f, GX, 3 * H);
    memset(c.h, 0, (size_t)B * H * sizeof(float));
    for (int t = 0; t < T; t++) {
        const float *hp = c.h + (size_t)t * B * H;
        for (int b = 0; b < B; b++)
            memcpy(gh + (size_t)b * 3 * H, bhh, (size_t)3 * H * sizeof(float));
        /* gh[B x 3H] += h[t-1][B x H] . W_hh^T[H x 3H]; h[-1] = 0 skips it */
        if (t > 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, 3 * H, H, 1.0f, hp, H, Whh, H,
                        1.0f, gh, 3 * H);
        gb_gru_cell_forward(GX + (size_t)t * B * 3 * H, gh, hp, c.gates + (size_t)t * B * 3 * H,
                            c.hn + (size_t)t * B * H, c.h + (size_t)(t + 1) * B * H, B, H);
    }
    gb_layer_write_recurrent_output(l, c.h, y, B);
}

static void s_backward(const gb_layer_t *l, const gb_pass_t *pass, const float *cache,
                       const float *x, const float *y, const float *dy, float *dx)
{
    (void)x;
    (void)y;
    s_dims_t d = s_dims(l);
    const int B = pass->batch, T = d.T, F = d.F, H = d.H;
    const gb_recurrent_offsets_t o = gb_layer_recurrent_offsets(l, 3);
    const float *Wih = pass->params + o.w_ih, *Whh = pass->params + o.w_hh;
    s_cache_t c = s_cache(&d, B, (float *)cache);
    const size_t TB = (size_t)T * B;
    float *dGX = pass->work, *dGH = dGX + TB * 3 * H, *dX = dGH + TB * 3 * H;
    float *dh = dX + TB * F, *dp = dh + (size_t)B * H;
    memset(dh, 0, (size_t)B * H * sizeof(float));
    for (int t = T - 1; t >= 0; t--) {
        gb_layer_add_step_gradient(l, dy, dh, B, t);
        float *dgx = dGX + (size_t)t * B * 3 * H, *dgh = dGH + (size_t)t * B * 3 * H;
        gb_gru_cell_backward(c.gates + (size_t)t * B * 3 * H, c.hn + (size_t)t * B * H,
                             c.h + (size_t)t * B * H, dh, dgx, dgh, dp, B, H);
        if (t > 0) {
            /* dh[t-1][B x H] = dh * z + dGH[t][B x 3H] . W_hh[3H x H] */
            memcpy(dh, dp, (size_t)B * H * sizeof(float));
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, H, 3 * H, 1.0f, dgh, 3 * H,
                        Whh, H, 1.0f, dh, H);
        }
    }
    if (pass->grads) {
        float *dWih = pass->grads + o.w_ih, *dWhh = pass->grads + o.w_hh;
        float *dbih = pass->grads + o.b_ih, *dbhh = pass->grads + o.b_hh;
        /* dW_ih[3H x F] += dGX^T[3H x T*B] . X[T*B x F] */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, 3 * H, F, (int)TB, 1.0f, dGX, 3 * H,
                    c.x, F, 1.0f, dWih, F);
        /* dW_hh[3H x H] += dGH^T[3H x T*B] . h[-1..T-2][T*B x H] */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, 3 * H, H, (int)TB, 1.0f, dGH, 3 * H,
                    c.h, H, 1.0f, dWhh, H);
        gb_layer_add_column_sums(dGX, TB, 3 * H, dbih);
        gb_layer_add_column_sums(dGH, TB, 3 * H, dbhh);
    }
    if (dx)
        gb_layer_recurrent_dx(dGX, Wih, B, T, F, 3 * H, dX, dx);
}

static double s_flops(const gb_layer_t *l)
{
    s_dims_t d = s_dims(l);
    return 2.0 * d.T * 3.0 * d.H * (d.F + d.H);
}

const gb_layer_ops_t gb_gru_ops = {
    .plan = s_plan,
    .init = s_init,
    .work_floats = s_work_floats,
    .forward = s_forward,
    .backward = s_backward,
    .flops = s_flops,
};
