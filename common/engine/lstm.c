/* LSTM layer with PyTorch's nn.LSTM layout: W_ih (4H x F), W_hh (4H x H),
 * b_ih (4H), b_hh (4H), gates in the order i, f, g, o; zero initial state.
 *
 * Shapes: B samples, T steps, F input features, H hidden units, K = F + H.
 * Inside the layer everything is time-major (step t's rows for all samples
 * together), and each step's input rows are z_t = [x_t, h_{t-1}] (T*B x K,
 * h_{-1} = 0), so every per-step slice and every all-steps matrix is
 * contiguous and one product covers input and recurrence. Three paths
 * (engine/kernels.h) compute the same thing:
 *   fast (AVX-512, gb_lstm_fast(); its kernels in simd_avx512.c): the
 *     weights are packed once per pass and each step is ONE fused kernel (gb_lstm_step_forward: bias + z_t . W^T
 *     in registers, then the cell); backward runs per step the cell's
 *     backward and our own AVX-512 product dh[t-1] = dG[t] . W_hh, then the
 *     weight gradients of all steps as one product Z^T . dG (K x 4H, each
 *     row of dG read once per tile), added transposed into dW_ih and dW_hh.
 *     OpenBLAS is held to its AVX2 (Haswell) kernels on this CPU, so these
 *     run on twice its vector width.
 *   avx2 (gb_kernels() == GB_KERNELS_AVX2): W^T is laid out once per pass and
 *     each step's gates are ONE product z_t . W^T in the engine's AVX2 GEMM,
 *     then the cell pass; backward as portable but with that GEMM for dh and
 *     for Z^T . dG (simd_avx2.c).
 *   portable: G[T*B x 4H] = X . W_ih^T in ONE sgemm, per step one sgemm
 *     G[t] += h[t-1] . W_hh^T and one fused pointwise pass that adds the
 *     biases (gb_lstm_cell_forward); backward per step one pointwise pass
 *     and one sgemm for dh[t-1] = dG[t] . W_hh, then the weight gradients of
 *     all steps in two large sgemms.
 * dX, when asked for, is one sgemm on every path. The cache of a pass holds
 * Z, the activated gates, h and c for steps 0..T (slot 0 is the zero
 * initial state) and tanh(c). */
#include "engine/activations.h"
#include "engine/kernels.h"
#include "engine/layer.h"
#include "engine/simd_kernels.h"

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
    float *z;     /* T*B x K    time-major [x_t, h_{t-1}] */
    float *gates; /* T*B x 4H   activated gates */
    float *h;     /* (T+1)*B x H */
    float *c;     /* (T+1)*B x H */
    float *tc;    /* T*B x H    tanh(c) */
} s_cache_t;

static s_cache_t s_cache(const s_dims_t *d, int B, float *base)
{
    s_cache_t c;
    size_t TB = (size_t)d->T * B;
    c.z = base;
    c.gates = c.z + TB * (d->F + d->H);
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
    /* z (F + H), gates 4H, tanh(c) H per step; h and c H per step and one more */
    int64_t per_sample = (int64_t)d.T * (d.F + 8 * (int64_t)d.H) + 2 * (int64_t)d.H;
    return gb_layer_plan_recurrent(l, 4, per_sample, err);
}

static void s_init(const gb_layer_t *l, float *p, gb_rng_t *rng)
{
    gb_layer_fill_uniform(p, l->param_len, 1.0f / sqrtf((float)l->cfg.units), rng);
}

static size_t s_work_floats(const gb_layer_t *l, int batch)
{
    s_dims_t d = s_dims(l);
    size_t TB = (size_t)d.T * batch, K = (size_t)d.F + d.H;
    size_t fwd = gb_lstm_pack_floats(d.F, d.H) + (size_t)4 * d.H;          /* packed W, bias */
    size_t bwd = TB * 4 * d.H + TB * d.F + (size_t)2 * batch * d.H + (size_t)4 * d.H
                 + K * 4 * d.H;                                              /* dG dX dh dc db CT */
    return fwd > bwd ? fwd : bwd;
}

/* The AVX-512 products of the backward pass live in simd_avx512.c. */
#if GB_SIMD_KERNELS
#define S_AVX512 1
#else
#define S_AVX512 0
#endif


/* dW_ih[4H x F] += CT[0..F)^T, dW_hh[4H x H] += CT[F..K)^T; CT is K x 4H.
 * Blocks of 16 rows of dW keep both sides in L1. */
static void s_add_transposed(const float *CT, float *dWih, float *dWhh, int F, int H)
{
    const int M4 = 4 * H, K = F + H;
    for (int mb = 0; mb < M4; mb += 16) {
        int me = mb + 16 < M4 ? mb + 16 : M4;
        for (int n = 0; n < K; n++) {
            const float *src = CT + (size_t)n * M4;
            float *dst = n < F ? dWih + n : dWhh + (n - F);
            size_t stride = n < F ? (size_t)F : (size_t)H;
            for (int m = mb; m < me; m++)
                dst[(size_t)m * stride] += src[m];
        }
    }
}

#if GB_SIMD_KERNELS
/* dst[k][j] = src[j][k] for src rows x cols (row-major), dst rows ld apart,
 * in 16 x 16 blocks that both sides keep in L1: a plain loop writes each
 * element to another cache line (a 2 KB stride for the LSTM's 4H = 512),
 * which was about 5% of an AVX2 LSTM training step. */
static void s_transpose_into(const float *src, int rows, int cols, float *dst, size_t ld)
{
    enum { TILE = 16 };
    for (int j0 = 0; j0 < rows; j0 += TILE) {
        const int j1 = j0 + TILE < rows ? j0 + TILE : rows;
        for (int k0 = 0; k0 < cols; k0 += TILE) {
            const int k1 = k0 + TILE < cols ? k0 + TILE : cols;
            for (int k = k0; k < k1; k++)
                for (int j = j0; j < j1; j++)
                    dst[(size_t)k * ld + j] = src[(size_t)j * cols + k];
        }
    }
}

/* The AVX2 forward: W^T = [W_ih | W_hh]^T (K x 4H, made once per pass into
 * wt) so that each step's gates are ONE row-major product of its rows
 * z_t = [x_t, h_{t-1}] (K = F on the first step, h_{-1} = 0) in the
 * engine's AVX2 GEMM, which reads both operands in place where OpenBLAS
 * packs them anew for every one of the T small products. */
static void s_forward_avx2(const s_dims_t *d, int B, const float *Wih, const float *Whh,
                           const float *bias, float *wt, const s_cache_t *c)
{
    const int T = d->T, F = d->F, H = d->H, K = F + H, H4 = 4 * H;
    const size_t BH = (size_t)B * H;
    s_transpose_into(Wih, H4, F, wt, (size_t)H4);
    s_transpose_into(Whh, H4, H, wt + (size_t)F * H4, (size_t)H4);
    for (int t = 0; t < T; t++) {
        float *g = c->gates + (size_t)t * B * H4;
        const float *zt = c->z + (size_t)t * B * K;
        gb_simd_gemm_avx2(B, H4, t == 0 ? F : K, zt, K, 1, wt, (size_t)H4, g, (size_t)H4, 0);
        float *ht = c->h + (size_t)(t + 1) * BH;
        gb_lstm_cell_forward(g, bias, c->c + (size_t)t * BH, c->c + (size_t)(t + 1) * BH, ht,
                             c->tc + (size_t)t * BH, B, H);
        if (t + 1 < T)
            for (int b = 0; b < B; b++)
                memcpy(c->z + ((size_t)(t + 1) * B + b) * K + F, ht + (size_t)b * H,
                       (size_t)H * sizeof(float));
    }
}

/* CT[K x 4H] += Z^T . dG over all T*B rows, in chunks of rows that stay in
 * the core's L2 while every tile reads them. */
static void s_dw_avx2(const float *dG, const float *Z, float *CT, size_t TB, int K, int H4)
{
    const size_t chunk = 256;
    for (size_t r0 = 0; r0 < TB; r0 += chunk) {
        const int rows = (int)(TB - r0 < chunk ? TB - r0 : chunk);
        gb_simd_gemm_avx2(K, H4, rows, Z + r0 * K, 1, K, dG + r0 * H4, (size_t)H4, CT,
                          (size_t)H4, 1);
    }
}
#endif

/* ---- forward and backward ----------------------------------------------- */

static void s_forward(const gb_layer_t *l, const gb_pass_t *pass, float *cache, const float *x,
                      float *y)
{
    s_dims_t d = s_dims(l);
    const int B = pass->batch, T = d.T, F = d.F, H = d.H, K = F + H;
    const gb_recurrent_offsets_t o = gb_layer_recurrent_offsets(l, 4);
    const float *Wih = pass->params + o.w_ih, *Whh = pass->params + o.w_hh;
    const float *bih = pass->params + o.b_ih, *bhh = pass->params + o.b_hh;
    s_cache_t c = s_cache(&d, B, cache);
    const size_t TB = (size_t)T * B, BH = (size_t)B * H;
    /* z rows: x_t, then h_{t-1} (zero for t = 0; written by step t-1). */
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            memcpy(c.z + ((size_t)t * B + b) * K, x + ((size_t)b * T + t) * F,
                   (size_t)F * sizeof(float));
    for (int b = 0; b < B; b++)
        memset(c.z + (size_t)b * K + F, 0, (size_t)H * sizeof(float));
    memset(c.h, 0, BH * sizeof(float));
    memset(c.c, 0, BH * sizeof(float));
    if (gb_lstm_fast()) {
        float *wp = pass->work;
        gb_lstm_pack(Wih, Whh, bih, bhh, F, H, wp);
        for (int t = 0; t < T; t++)
            gb_lstm_step_forward(wp, c.z + (size_t)t * B * K, c.c + (size_t)t * BH,
                                 t + 1 < T ? c.z + (size_t)(t + 1) * B * K : NULL,
                                 c.gates + (size_t)t * B * 4 * H, c.c + (size_t)(t + 1) * BH,
                                 c.h + (size_t)(t + 1) * BH, c.tc + (size_t)t * BH, B, F, H,
                                 t == 0);
        gb_layer_write_recurrent_output(l, c.h, y, B);
        return;
    }
    /* The biases join in the cell pass, saving a pass over G. */
    float *bias = pass->work;
    for (int j = 0; j < 4 * H; j++)
        bias[j] = bih[j] + bhh[j];
#if GB_SIMD_KERNELS
    if (gb_kernels() == GB_KERNELS_AVX2) {
        s_forward_avx2(&d, B, Wih, Whh, bias, bias + 4 * H, &c);
        gb_layer_write_recurrent_output(l, c.h, y, B);
        return;
    }
#endif
    /* G[T*B x 4H] = X[T*B x F] . W_ih^T[F x 4H] (X is Z's first F columns) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)TB, 4 * H, F, 1.0f, c.z, K, Wih, F,
                0.0f, c.gates, 4 * H);
    for (int t = 0; t < T; t++) {
        float *g = c.gates + (size_t)t * B * 4 * H;
        const float *zt = c.z + (size_t)t * B * K;
        /* G[t][B x 4H] += h[t-1][B x H] . W_hh^T[H x 4H]; h[-1] = 0 skips it */
        if (t > 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, 4 * H, H, 1.0f, zt + F, K,
                        Whh, H, 1.0f, g, 4 * H);
        float *ht = c.h + (size_t)(t + 1) * BH;
        gb_lstm_cell_forward(g, bias, c.c + (size_t)t * BH, c.c + (size_t)(t + 1) * BH, ht,
                             c.tc + (size_t)t * BH, B, H);
        if (t + 1 < T)
            for (int b = 0; b < B; b++)
                memcpy(c.z + ((size_t)(t + 1) * B + b) * K + F, ht + (size_t)b * H,
                       (size_t)H * sizeof(float));
    }
    gb_layer_write_recurrent_output(l, c.h, y, B);
}

static void s_backward(const gb_layer_t *l, const gb_pass_t *pass, const float *cache,
                       const float *x, const float *y, const float *dy, float *dx)
{
    (void)x;
    (void)y;
    s_dims_t d = s_dims(l);
    const int B = pass->batch, T = d.T, F = d.F, H = d.H, K = F + H;
    const gb_recurrent_offsets_t o = gb_layer_recurrent_offsets(l, 4);
    const float *Wih = pass->params + o.w_ih, *Whh = pass->params + o.w_hh;
    s_cache_t c = s_cache(&d, B, (float *)cache);
    const size_t TB = (size_t)T * B;
    const int fast = S_AVX512 && gb_lstm_fast();
    const int avx2 = gb_kernels() == GB_KERNELS_AVX2;
    float *dG = pass->work, *dX = dG + TB * 4 * H, *dh = dX + TB * F, *dc = dh + (size_t)B * H;
    float *dbsum = dc + (size_t)B * H;
    memset(dh, 0, (size_t)B * H * sizeof(float));
    memset(dc, 0, (size_t)B * H * sizeof(float));
    for (int t = T - 1; t >= 0; t--) {
        /* dh holds the recurrent gradient from step t+1; add the output's. */
        gb_layer_add_step_gradient(l, dy, dh, B, t);
        float *dg = dG + (size_t)t * B * 4 * H;
        gb_lstm_cell_backward(c.gates + (size_t)t * B * 4 * H, c.c + (size_t)t * B * H,
                              c.tc + (size_t)t * B * H, dh, dc, dg, B, H);
        if (t == 0)
            break;
        /* dh[t-1][B x H] = dG[t][B x 4H] . W_hh[4H x H] */
#if S_AVX512
        if (fast) {
            gb_simd_lstm_dh_avx512(dg, Whh, dh, B, H);
            continue;
        }
#endif
#if GB_SIMD_KERNELS
        if (avx2) {
            gb_simd_gemm_avx2(B, H, 4 * H, dg, 4 * H, 1, Whh, (size_t)H, dh, (size_t)H, 0);
            continue;
        }
#endif
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, H, 4 * H, 1.0f, dg, 4 * H, Whh,
                    H, 0.0f, dh, H);
    }
    if (pass->grads) {
        float *dWih = pass->grads + o.w_ih, *dWhh = pass->grads + o.w_hh;
        float *dbih = pass->grads + o.b_ih, *dbhh = pass->grads + o.b_hh;
#if S_AVX512
        if (fast) {
            /* CT[K x 4H] = Z^T[K x T*B] . dG[T*B x 4H]; dW_ih | dW_hh += CT^T */
            float *CT = dbsum + 4 * H;
            memset(CT, 0, (size_t)K * 4 * H * sizeof(float));
            gb_simd_lstm_dw_avx512(dG, c.z, CT, TB, K, 4 * H);
            s_add_transposed(CT, dWih, dWhh, F, H);
        }
#endif
#if GB_SIMD_KERNELS
        if (avx2) {
            float *CT = dbsum + 4 * H;
            memset(CT, 0, (size_t)K * 4 * H * sizeof(float));
            s_dw_avx2(dG, c.z, CT, TB, K, 4 * H);
            s_add_transposed(CT, dWih, dWhh, F, H);
        }
#endif
        if (!fast && !avx2) {
            /* dW_ih[4H x F] += dG^T[4H x T*B] . X[T*B x F] (Z's first F columns) */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, 4 * H, F, (int)TB, 1.0f, dG,
                        4 * H, c.z, K, 1.0f, dWih, F);
            /* dW_hh[4H x H] += dG^T[4H x T*B] . h[-1..T-2][T*B x H] (Z's last H) */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, 4 * H, H, (int)TB, 1.0f, dG,
                        4 * H, c.z + F, K, 1.0f, dWhh, H);
        }
        /* b_ih and b_hh enter the gates the same way: one column sum serves both. */
        memset(dbsum, 0, (size_t)4 * H * sizeof(float));
        gb_layer_add_column_sums(dG, TB, 4 * H, dbsum);
        for (int j = 0; j < 4 * H; j++) {
            dbih[j] += dbsum[j];
            dbhh[j] += dbsum[j];
        }
    }
    if (dx)
        gb_layer_recurrent_dx(dG, Wih, B, T, F, 4 * H, dX, dx);
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
