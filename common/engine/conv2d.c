/* 2-D convolution (cross-correlation, no kernel flip) with PyTorch's weight
 * layout W[OC][C][K][K], as im2col and GEMMs over chunks of the (sub-)batch.
 *
 * Shapes: B samples, C input channels, OC output channels, KK = C*K*K rows of
 * the column matrix, P = OH*OW output pixels per image. The batch goes in
 * chunks of g images (s_chunk: about 64K unrolled floats, so each step reads
 * what the last one wrote while it is still in cache), Nc = g*P columns.
 * Forward unrolls a chunk into cols[KK x Nc] (kept in the layer's cache, so
 * backward needs no second im2col), computes Y'[OC x Nc] = W . cols, then
 * scatters Y' into NCHW while adding the bias (maps of at least
 * S_PER_IMAGE_MIN_P pixels: one GEMM per image straight into NCHW).
 * Backward gathers dy into dY'[OC x Nc], dW += dY' . cols^T, and, unless
 * this is the first layer, dcols = W^T . dY' followed by col2im.
 *
 * On x86-64 with AVX-512 or AVX2 and FMA, the three GEMMs (engine/gemm.h)
 * and stride-1 im2col and col2im run in the engine's own vector kernels
 * (simd_kernels.h) rather than OpenBLAS and the plain loops: these small
 * shapes lose a third of OpenBLAS's time to packing its operands. Other
 * CPUs take OpenBLAS and the plain loops (engine/kernels.h chooses;
 * GLASSBOX_KERNELS or gb_kernels_force picks a lower path). */
#include "engine/gemm.h"
#include "engine/simd_kernels.h"
#include "engine/vec_dispatch.h"
#include "engine/kernels.h"
#include "engine/layer.h"

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>


/* Output maps of at least this many pixels take one sgemm per image (wide
 * enough to run at full speed) and skip the layout passes; smaller maps are
 * batched into one sgemm and scattered. */
#define S_PER_IMAGE_MIN_P 256

typedef gb_conv_dims_t s_dims_t;

static s_dims_t s_dims(const gb_layer_t *l)
{
    s_dims_t d;
    d.C = l->in.dim[0];
    d.H = l->in.dim[1];
    d.W = l->in.dim[2];
    d.OC = l->cfg.units;
    d.K = l->cfg.kernel;
    d.S = l->cfg.stride;
    d.PAD = l->cfg.pad;
    d.OH = (d.H + 2 * d.PAD - d.K) / d.S + 1;
    d.OW = (d.W + 2 * d.PAD - d.K) / d.S + 1;
    d.P = d.OH * d.OW;
    d.KK = d.C * d.K * d.K;
    return d;
}

static int s_plan(gb_layer_t *l, gb_error_t *err)
{
    int rc = gb_layer_require_image(l, err);
    if (rc)
        return rc;
    /* Sizes in 64 bits first: kernel and pad come from outside and their
     * products must not wrap the int arithmetic of the kernels below. */
    int64_t C = l->in.dim[0], H = l->in.dim[1], W = l->in.dim[2];
    int64_t K = l->cfg.kernel, PAD = l->cfg.pad, S = l->cfg.stride;
    if (K > H + 2 * PAD || K > W + 2 * PAD)
        return gb_error_set(err, GB_ESHAPE,
                            "spec line %d: conv kernel %lld larger than the padded input %lldx%lld",
                            l->cfg.line, (long long)K, (long long)(H + 2 * PAD),
                            (long long)(W + 2 * PAD));
    int64_t OH = (H + 2 * PAD - K) / S + 1, OW = (W + 2 * PAD - K) / S + 1;
    int64_t KK = C * K * K, P = OH * OW;
    if (KK > GB_LAYER_MAX_FLOATS || P > GB_LAYER_MAX_FLOATS || KK * P > GB_LAYER_MAX_FLOATS ||
        P * l->cfg.units > GB_LAYER_MAX_FLOATS)
        return gb_error_set(err, GB_ESHAPE,
                            "spec line %d: conv too large: %lld x %lld unrolled input per sample "
                            "(at most %lld floats)",
                            l->cfg.line, (long long)KK, (long long)P,
                            (long long)GB_LAYER_MAX_FLOATS);
    s_dims_t d = s_dims(l);
    l->out.rank = 3;
    l->out.dim[0] = d.OC;
    l->out.dim[1] = d.OH;
    l->out.dim[2] = d.OW;
    l->param_len = (size_t)d.OC * d.KK + (size_t)d.OC;
    l->cache_per_sample = (size_t)d.KK * d.P;
    return 0;
}

static void s_init(const gb_layer_t *l, float *p, gb_rng_t *rng)
{
    s_dims_t d = s_dims(l);
    float bound = 1.0f / sqrtf((float)d.KK);
    gb_layer_fill_uniform(p, l->param_len, bound, rng);
}

/* Images per chunk: the batch goes through im2col, the GEMMs and col2im in
 * chunks whose unrolled columns take about S_CHUNK_FLOATS, so that cols,
 * dY' and dcols are still in the core's cache when the next step reads
 * them (a whole sub-batch's would not be: LeNet's second conv unrolls 100 KB
 * per image). Depends on the shapes only, so results do not depend on the
 * batch's split. */
#define S_CHUNK_FLOATS (64 * 1024)

static int s_chunk(const s_dims_t *d)
{
    int64_t g = S_CHUNK_FLOATS / ((int64_t)d->KK * d->P);
    return g < 1 ? 1 : (int)g;
}

static size_t s_work_floats(const gb_layer_t *l, int batch)
{
    s_dims_t d = s_dims(l);
    int g = s_chunk(&d);
    size_t n = (size_t)(batch < g ? batch : g) * d.P;
    return (size_t)d.OC * n + (size_t)d.KK * n; /* a chunk's dY' and dcols */
}


/* y[M x N] (+)= W[M x K] . x[K x N] (accumulate: add to y), row-major with
 * leading dimensions ldx, ldy; W^T[M x K] when w_transposed (W is K x M). */
static void s_sgemm(int M, int N, int K, const float *w, int w_transposed, const float *x,
                    int ldx, float *y, int ldy, int accumulate)
{
    gb_gemm_nn(M, N, K, w, w_transposed, x, (size_t)ldx, y, (size_t)ldy, accumulate);
}

/* dW[OC x KK] += dy[OC x N] . cols^T[N x KK], dy rows ldd apart, cols rows
 * ldc apart. */
static void s_sgemm_dw(int OC, int KK, int N, const float *dy, int ldd, const float *cols, int ldc,
                       float *dW)
{
    gb_gemm_nt(OC, KK, N, dy, (size_t)ldd, cols, (size_t)ldc, dW, (size_t)KK);
}

/* cols[KK x B*P]: row k = (c, ki, kj), column n*P + oh*OW + ow. */
static void s_im2col(const s_dims_t *d, int B, const float *x, float *cols)
{
#if GB_SIMD_KERNELS
    if (d->S == 1 && gb_kernels() == GB_KERNELS_AVX512) {
        gb_conv_im2col_s1_avx512(d, B, x, cols);
        return;
    }
    if (d->S == 1 && gb_kernels() == GB_KERNELS_AVX2) {
        gb_conv_im2col_s1_avx2(d, B, x, cols);
        return;
    }
#endif
    const size_t N = (size_t)B * d->P;
    const size_t img = (size_t)d->C * d->H * d->W;
    for (int c = 0; c < d->C; c++) {
        for (int ki = 0; ki < d->K; ki++) {
            for (int kj = 0; kj < d->K; kj++) {
                float *row = cols + ((size_t)(c * d->K + ki) * d->K + kj) * N;
                for (int n = 0; n < B; n++) {
                    const float *plane = x + n * img + (size_t)c * d->H * d->W;
                    float *out = row + (size_t)n * d->P;
                    for (int oh = 0; oh < d->OH; oh++) {
                        int ih = oh * d->S - d->PAD + ki;
                        float *o = out + (size_t)oh * d->OW;
                        if ((unsigned)ih >= (unsigned)d->H) {
                            memset(o, 0, (size_t)d->OW * sizeof(float));
                            continue;
                        }
                        const float *src = plane + (size_t)ih * d->W;
                        if (d->S == 1 && d->PAD == 0) {
                            /* A loop, not memcpy: rows are short (24 floats in LeNet). */
                            const float *s = src + kj;
                            for (int ow = 0; ow < d->OW; ow++)
                                o[ow] = s[ow];
                            continue;
                        }
                        for (int ow = 0; ow < d->OW; ow++) {
                            int iw = ow * d->S - d->PAD + kj;
                            o[ow] = (unsigned)iw < (unsigned)d->W ? src[iw] : 0.0f;
                        }
                    }
                }
            }
        }
    }
}

/* dx = scatter-add of dcols (overwrites dx). */
static void s_col2im(const s_dims_t *d, int B, const float *dcols, float *dx)
{
#if GB_SIMD_KERNELS
    if (d->S == 1 && d->K <= GB_CONV_COL2IM_MAX_K && gb_kernels() == GB_KERNELS_AVX512) {
        gb_conv_col2im_s1_avx512(d, B, dcols, dx);
        return;
    }
    if (d->S == 1 && d->K <= GB_CONV_COL2IM_MAX_K && gb_kernels() == GB_KERNELS_AVX2) {
        gb_conv_col2im_s1_avx2(d, B, dcols, dx);
        return;
    }
#endif
    memset(dx, 0, (size_t)B * d->C * d->H * d->W * sizeof(float));
    const size_t N = (size_t)B * d->P;
    const size_t img = (size_t)d->C * d->H * d->W;
    for (int c = 0; c < d->C; c++) {
        for (int ki = 0; ki < d->K; ki++) {
            for (int kj = 0; kj < d->K; kj++) {
                const float *row = dcols + ((size_t)(c * d->K + ki) * d->K + kj) * N;
                for (int n = 0; n < B; n++) {
                    float *plane = dx + n * img + (size_t)c * d->H * d->W;
                    const float *in = row + (size_t)n * d->P;
                    for (int oh = 0; oh < d->OH; oh++) {
                        int ih = oh * d->S - d->PAD + ki;
                        if ((unsigned)ih >= (unsigned)d->H)
                            continue;
                        const float *g = in + (size_t)oh * d->OW;
                        float *dst = plane + (size_t)ih * d->W;
                        if (d->S == 1 && d->PAD == 0) {
                            float *dk = dst + kj;
                            for (int ow = 0; ow < d->OW; ow++)
                                dk[ow] += g[ow];
                            continue;
                        }
                        for (int ow = 0; ow < d->OW; ow++) {
                            int iw = ow * d->S - d->PAD + kj;
                            if ((unsigned)iw < (unsigned)d->W)
                                dst[iw] += g[ow];
                        }
                    }
                }
            }
        }
    }
}

/* y (g images, NCHW) = Y'[OC x Nc] scattered back per image, plus the bias
 * (built for each kernel path: the library's baseline is SSE2). */
GB_VEC_FN(static, s_scatter_bias,
          (int g, int OC, int P, int Nc, const float *restrict Yp, const float *restrict bias,
           float *restrict y),
          (g, OC, P, Nc, Yp, bias, y))
{
    for (int n = 0; n < g; n++) {
        for (int oc = 0; oc < OC; oc++) {
            const float *src = Yp + (size_t)oc * Nc + (size_t)n * P;
            float *dst = y + ((size_t)n * OC + oc) * P;
            const float b = bias[oc];
            for (int p = 0; p < P; p++)
                dst[p] = src[p] + b;
        }
    }
}

/* A forward without parameter gradients to follow (inference, explanations)
 * needs no unrolled input: on the AVX2 path the direct kernel reads the
 * input rows in place (stride 1, no padding): LeNet inference 56 against
 * 39 thousand images a second with im2col and the GEMM. With AVX-512 the
 * im2col path's 16-float GEMM is faster than 8-float direct products (68
 * against 60 thousand), so it stays. */
static bool s_direct(const s_dims_t *d, const gb_pass_t *pass)
{
#if GB_SIMD_KERNELS
    return !pass->full_cache && d->S == 1 && d->PAD == 0 && gb_kernels() == GB_KERNELS_AVX2;
#else
    (void)d;
    (void)pass;
    return false;
#endif
}

static void s_forward(const gb_layer_t *l, const gb_pass_t *pass, float *cols, const float *x,
                      float *y)
{
    s_dims_t d = s_dims(l);
    const int B = pass->batch, G = s_chunk(&d);
    const size_t img = (size_t)d.C * d.H * d.W, ccols = (size_t)d.KK * d.P;
    const float *Wt = pass->params + l->param_off;
    const float *bias = Wt + (size_t)d.OC * d.KK;
    float *Yp = pass->work;
#if GB_SIMD_KERNELS
    if (s_direct(&d, pass)) {
        gb_conv_direct_s1_avx2(&d, B, x, Wt, bias, d.P < S_PER_IMAGE_MIN_P, y);
        return;
    }
#endif
    for (int n0 = 0; n0 < B; n0 += G) {
        const int g = B - n0 < G ? B - n0 : G, Nc = g * d.P;
        float *cc = cols + (size_t)n0 * ccols;
        s_im2col(&d, g, x + (size_t)n0 * img, cc);
        if (d.P >= S_PER_IMAGE_MIN_P) {
            /* Wide maps: one sgemm per image writes NCHW directly, no scatter. */
            for (int n = n0; n < n0 + g; n++) {
                float *yn = y + (size_t)n * d.OC * d.P;
                for (int oc = 0; oc < d.OC; oc++)
                    for (int p = 0; p < d.P; p++)
                        yn[(size_t)oc * d.P + p] = bias[oc];
                /* y_n[OC x P] += W[OC x KK] . cc[:, (n - n0)*P ..)[KK x P] */
                s_sgemm(d.OC, d.P, d.KK, Wt, 0, cc + (size_t)(n - n0) * d.P, Nc, yn, d.P, 1);
            }
            continue;
        }
        /* Y'[OC x Nc] = W[OC x KK] . cc[KK x Nc] */
        s_sgemm(d.OC, Nc, d.KK, Wt, 0, cc, Nc, Yp, Nc, 0);
        s_scatter_bias(g, d.OC, d.P, Nc, Yp, bias, y + (size_t)n0 * d.OC * d.P);
    }
}

/* Backward of one chunk of g images whose columns cc ([KK x g*P]) the
 * forward left; dy and dx point at the chunk's first image. Wide maps read
 * NCHW dy one image at a time; small ones gather it into dY' first. */
static void s_backward_chunk(const gb_layer_t *l, const gb_pass_t *pass, const s_dims_t *d, int g,
                             const float *cc, const float *x, const float *dy, float *dx)
{
    const int Nc = g * d->P;
    const float *Wt = pass->params + l->param_off;
    float *dW = pass->grads ? pass->grads + l->param_off : NULL;
    float *db = dW ? dW + (size_t)d->OC * d->KK : NULL;
    float *dYp = pass->work;
    float *dcols = pass->work + (size_t)d->OC * Nc;
    if (dW && !pass->full_cache) {
        /* A plain forward left no columns: unroll the chunk where dcols go,
         * which each image's dW reads before its dcols are written. */
        s_im2col(d, g, x, dcols);
        cc = dcols;
    }
    if (d->P >= S_PER_IMAGE_MIN_P) {
        for (int n = 0; n < g; n++) {
            const float *dyn = dy + (size_t)n * d->OC * d->P;
            if (dW) {
                /* dW[OC x KK] += dy_n[OC x P] . cc_n^T[P x KK] */
                s_sgemm_dw(d->OC, d->KK, d->P, dyn, d->P, cc + (size_t)n * d->P, Nc, dW);
                for (int oc = 0; oc < d->OC; oc++)
                    db[oc] += gb_layer_sum(dyn + (size_t)oc * d->P, (size_t)d->P);
            }
            if (dx)
                /* dcols[:, n*P ..)[KK x P] = W^T[KK x OC] . dy_n[OC x P] */
                s_sgemm(d->KK, d->P, d->OC, Wt, 1, dyn, d->P, dcols + (size_t)n * d->P, Nc, 0);
        }
    } else {
        for (int n = 0; n < g; n++)
            for (int oc = 0; oc < d->OC; oc++)
                memcpy(dYp + (size_t)oc * Nc + (size_t)n * d->P,
                       dy + ((size_t)n * d->OC + oc) * d->P, (size_t)d->P * sizeof(float));
        if (dW) {
            /* dW[OC x KK] += dY'[OC x Nc] . cc^T[Nc x KK] */
            s_sgemm_dw(d->OC, d->KK, Nc, dYp, Nc, cc, Nc, dW);
            for (int oc = 0; oc < d->OC; oc++)
                db[oc] += gb_layer_sum(dYp + (size_t)oc * Nc, (size_t)Nc);
        }
        if (dx)
            /* dcols[KK x Nc] = W^T[KK x OC] . dY'[OC x Nc] */
            s_sgemm(d->KK, Nc, d->OC, Wt, 1, dYp, Nc, dcols, Nc, 0);
    }
    if (dx)
        s_col2im(d, g, dcols, dx);
}

static void s_backward(const gb_layer_t *l, const gb_pass_t *pass, const float *cols,
                       const float *x, const float *y, const float *dy, float *dx)
{
    (void)y;
    s_dims_t d = s_dims(l);
    const int B = pass->batch, G = s_chunk(&d);
    const size_t img = (size_t)d.C * d.H * d.W, yimg = (size_t)d.OC * d.P;
    for (int n0 = 0; n0 < B; n0 += G) {
        const int g = B - n0 < G ? B - n0 : G;
        s_backward_chunk(l, pass, &d, g, cols + (size_t)n0 * d.KK * d.P, x + (size_t)n0 * img,
                         dy + (size_t)n0 * yimg, dx ? dx + (size_t)n0 * img : NULL);
    }
}

static double s_flops(const gb_layer_t *l)
{
    s_dims_t d = s_dims(l);
    return 2.0 * d.OC * (double)d.KK * d.P;
}

const gb_layer_ops_t gb_conv2d_ops = {
    .plan = s_plan,
    .init = s_init,
    .work_floats = s_work_floats,
    .forward = s_forward,
    .backward = s_backward,
    .flops = s_flops,
};
