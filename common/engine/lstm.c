/* LSTM layer with PyTorch's nn.LSTM layout: W_ih (4H x F), W_hh (4H x H),
 * b_ih (4H), b_hh (4H), gates in the order i, f, g, o; zero initial state.
 *
 * Shapes: B samples, T steps, F input features, H hidden units. Inside the
 * layer everything is time-major (step t's rows for all samples together),
 * so every per-step slice and every all-steps matrix is contiguous:
 *   forward:  G[T*B x 4H] = X . W_ih^T (ONE sgemm for all steps), then
 *             per step one sgemm G[t] += h[t-1] . W_hh^T and one fused
 *             pointwise pass that adds the biases (gb_lstm_cell_forward);
 *   backward: per step one fused pointwise pass and one sgemm for the
 *             recurrent gradient dh[t-1] = dG[t] . W_hh; then the weight
 *             gradients of all steps in two large sgemms and dX in a third.
 * The cache of a pass holds X (time-major), the activated gates, h and c for
 * steps 0..T (slot 0 is the zero initial state) and tanh(c). */
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

/* Cache layout for B samples, in floats from the start. */
typedef struct {
    float *x;     /* T*B x F    time-major input */
    float *gates; /* T*B x 4H   activated gates */
    float *h;     /* (T+1)*B x H */
    float *c;     /* (T+1)*B x H */
    float *tc;    /* T*B x H    tanh(c) */
} s_cache_t;

static s_cache_t s_cache(const s_dims_t *d, int B, float *base)
{
    s_cache_t c;
    size_t TB = (size_t)d->T * B;
    c.x = base;
    c.gates = c.x + TB * d->F;
    c.h = c.gates + TB * 4 * d->H;
    c.c = c.h + (TB + B) * d->H;
    c.tc = c.c + (TB + B) * d->H;
    return c;
}

static int s_plan(gb_layer_t *l, gb_error_t *err)
{
    if (l->in.rank != 2)
        return gb_layer_require_sequence(l, err);
    s_dims_t d = s_dims(l);
    return gb_layer_plan_recurrent(l, 4, (int64_t)d.T * (d.F + 7 * (int64_t)d.H) + 2 * (int64_t)d.H, err);
}

static void s_init(const gb_layer_t *l, float *p, gb_rng_t *rng)
{
    gb_layer_fill_uniform(p, l->param_len, 1.0f / sqrtf((float)l->cfg.units), rng);
}

static size_t s_work_floats(const gb_layer_t *l, int batch)
{
    s_dims_t d = s_dims(l);
    size_t TB = (size_t)d.T * batch;
    return TB * 4 * d.H + TB * d.F + (size_t)2 * batch * d.H + (size_t)4 * d.H; /* dG dX dh dc db */
}

static void s_forward(const gb_layer_t *l, const gb_pass_t *pass, float *cache, const float *x,
                      float *y)
{
    s_dims_t d = s_dims(l);
    const int B = pass->batch, T = d.T, F = d.F, H = d.H;
    const float *Wih = pass->params + l->param_off;
    const float *Whh = Wih + (size_t)4 * H * F;
    const float *bih = Whh + (size_t)4 * H * H, *bhh = bih + 4 * H;
    s_cache_t c = s_cache(&d, B, cache);
    const size_t TB = (size_t)T * B;
    gb_layer_to_time_major(x, c.x, B, T, F);
    /* The biases join in the cell pass, saving a pass over G. */
    float *bias = pass->work;
    for (int j = 0; j < 4 * H; j++)
        bias[j] = bih[j] + bhh[j];
    /* G[T*B x 4H] = X[T*B x F] . W_ih^T[F x 4H] */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)TB, 4 * H, F, 1.0f, c.x, F, Wih, F,
                0.0f, c.gates, 4 * H);
    memset(c.h, 0, (size_t)B * H * sizeof(float));
    memset(c.c, 0, (size_t)B * H * sizeof(float));
    for (int t = 0; t < T; t++) {
        float *g = c.gates + (size_t)t * B * 4 * H;
        const float *hp = c.h + (size_t)t * B * H;
        /* G[t][B x 4H] += h[t-1][B x H] . W_hh^T[H x 4H]; h[-1] = 0 skips it */
        if (t > 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, 4 * H, H, 1.0f, hp, H, Whh, H,
                        1.0f, g, 4 * H);
        gb_lstm_cell_forward(g, bias, c.c + (size_t)t * B * H, c.c + (size_t)(t + 1) * B * H,
                             c.h + (size_t)(t + 1) * B * H, c.tc + (size_t)t * B * H, B, H);
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
    const float *Wih = pass->params + l->param_off;
    const float *Whh = Wih + (size_t)4 * H * F;
    s_cache_t c = s_cache(&d, B, (float *)cache);
    const size_t TB = (size_t)T * B;
    float *dG = pass->work, *dX = dG + TB * 4 * H, *dh = dX + TB * F, *dc = dh + (size_t)B * H;
    memset(dh, 0, (size_t)B * H * sizeof(float));
    memset(dc, 0, (size_t)B * H * sizeof(float));
    for (int t = T - 1; t >= 0; t--) {
        /* dh holds the recurrent gradient from step t+1; add the output's. */
        gb_layer_add_step_gradient(l, dy, dh, B, t);
        float *dg = dG + (size_t)t * B * 4 * H;
        gb_lstm_cell_backward(c.gates + (size_t)t * B * 4 * H, c.c + (size_t)t * B * H,
                              c.tc + (size_t)t * B * H, dh, dc, dg, B, H);
        /* dh[t-1][B x H] = dG[t][B x 4H] . W_hh[4H x H] */
        if (t > 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, H, 4 * H, 1.0f, dg, 4 * H,
                        Whh, H, 0.0f, dh, H);
    }
    if (pass->grads) {
        float *dWih = pass->grads + l->param_off;
        float *dWhh = dWih + (size_t)4 * H * F;
        float *dbih = dWhh + (size_t)4 * H * H, *dbhh = dbih + 4 * H;
        /* dW_ih[4H x F] += dG^T[4H x T*B] . X[T*B x F] */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, 4 * H, F, (int)TB, 1.0f, dG, 4 * H,
                    c.x, F, 1.0f, dWih, F);
        /* dW_hh[4H x H] += dG^T[4H x T*B] . h[-1..T-2][T*B x H] */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, 4 * H, H, (int)TB, 1.0f, dG, 4 * H,
                    c.h, H, 1.0f, dWhh, H);
        /* b_ih and b_hh enter the gates the same way: one column sum serves both. */
        float *dbsum = dc + (size_t)B * H;
        memset(dbsum, 0, (size_t)4 * H * sizeof(float));
        gb_layer_add_column_sums(dG, TB, 4 * H, dbsum);
        for (int j = 0; j < 4 * H; j++) {
            dbih[j] += dbsum[j];
            dbhh[j] += dbsum[j];
        }
    }
    if (dx) {
        /* dX[T*B x F] = dG[T*B x 4H] . W_ih[4H x F] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)TB, F, 4 * H, 1.0f, dG, 4 * H,
                    Wih, F, 0.0f, dX, F);
        gb_layer_from_time_major(dX, dx, B, T, F);
    }
}

static double s_flops(const gb_layer_t *l)
{
    s_dims_t d = s_dims(l);
    return 2.0 * d.T * 4.0 * d.H * (d.F + d.H);
}

const gb_layer_ops_t gb_lstm_ops = {
    .plan = s_plan,
    .init = s_init,
    .work_floats = s_work_floats,
    .forward = s_forward,
    .backward = s_backward,
    .flops = s_flops,
};
