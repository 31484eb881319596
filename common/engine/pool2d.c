/* Max and average pooling over K x K windows with stride S, no padding
 * (PyTorch's MaxPool2d/AvgPool2d defaults: output size floor((H - K)/S) + 1).
 * Max pooling keeps the argmax of every output in its cache (as int32), so
 * backward is a scatter with no comparisons; ties go to the first maximum. */
#include "engine/layer.h"
#include "engine/kernels.h"
#include "engine/simd_kernels.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

static int s_plan(gb_layer_t *l, gb_error_t *err)
{
    int rc = gb_layer_require_image(l, err);
    if (rc)
        return rc;
    int H = l->in.dim[1], W = l->in.dim[2], K = l->cfg.kernel, S = l->cfg.stride;
    if (K > H || K > W)
        return gb_error_set(err, GB_ESHAPE, "spec line %d: %s kernel %d larger than the input %dx%d",
                            l->cfg.line, gb_layer_kind_name(l->cfg.kind), K, H, W);
    l->out.rank = 3;
    l->out.dim[0] = l->in.dim[0];
    l->out.dim[1] = (H - K) / S + 1;
    l->out.dim[2] = (W - K) / S + 1;
    l->param_len = 0;
    l->cache_per_sample = l->cfg.kind == GB_LAYER_MAXPOOL2D ? gb_shape_size(&l->out) : 0;
    return 0;
}

/* The common 2x2, stride 2 window on the portable path, as selects; the
 * AVX2 and AVX-512 paths take simd_kernels.h's gb_maxpool2x2_*, which do
 * the same comparisons in the same order a vector of windows at a time:
 * LeNet's rows of 12 and 4 windows are too short for the compiler's
 * vectorised loop, which left 40 instructions a window (a tenth of a
 * training step). */
static void s_max_forward_2x2(size_t planes, int H, int W, int OH, int OW, const float *x,
                              float *y, int32_t *arg)
{
    for (size_t pl = 0; pl < planes; pl++) {
        const float *in = x + pl * H * W;
        float *out = y + pl * OH * OW;
        int32_t *am = arg + pl * OH * OW;
        for (int oh = 0; oh < OH; oh++) {
            const float *r0 = in + (size_t)(2 * oh) * W, *r1 = r0 + W;
            float *o = out + (size_t)oh * OW;
            int32_t *a = am + (size_t)oh * OW;
            const int32_t base = 2 * oh * W;
            for (int ow = 0; ow < OW; ow++) {
                float v0 = r0[2 * ow], v1 = r0[2 * ow + 1], v2 = r1[2 * ow], v3 = r1[2 * ow + 1];
                int32_t i0 = base + 2 * ow;
                float best = v0;
                int32_t bi = i0;
                int take = v1 > best || v1 != v1;
                best = take ? v1 : best;
                bi = take ? i0 + 1 : bi;
                take = v2 > best || v2 != v2;
                best = take ? v2 : best;
                bi = take ? i0 + W : bi;
                take = v3 > best || v3 != v3;
                best = take ? v3 : best;
                bi = take ? i0 + W + 1 : bi;
                o[ow] = best;
                a[ow] = bi;
            }
        }
    }
}

static void s_max_forward(const gb_layer_t *l, const gb_pass_t *pass, float *cache,
                          const float *x, float *y)
{
    const int C = l->in.dim[0], H = l->in.dim[1], W = l->in.dim[2];
    const int OH = l->out.dim[1], OW = l->out.dim[2], K = l->cfg.kernel, S = l->cfg.stride;
    int32_t *arg = (int32_t *)cache;
    const size_t planes = (size_t)pass->batch * C;
    if (K == 2 && S == 2) {
#if GB_SIMD_KERNELS
        const gb_kernels_t k = gb_kernels();
        if (k == GB_KERNELS_AVX512) {
            gb_maxpool2x2_avx512(planes, H, W, x, y, arg);
            return;
        }
        if (k == GB_KERNELS_AVX2) {
            gb_maxpool2x2_avx2(planes, H, W, x, y, arg);
            return;
        }
#endif
        s_max_forward_2x2(planes, H, W, OH, OW, x, y, arg);
        return;
    }
    for (size_t pl = 0; pl < planes; pl++) {
        const float *in = x + pl * H * W;
        float *out = y + pl * OH * OW;
        int32_t *am = arg + pl * OH * OW;
        for (int oh = 0; oh < OH; oh++) {
            for (int ow = 0; ow < OW; ow++) {
                int best = (oh * S) * W + ow * S;
                float bv = in[best];
                for (int ki = 0; ki < K; ki++) {
                    const float *row = in + (size_t)(oh * S + ki) * W + ow * S;
                    for (int kj = 0; kj < K; kj++) {
                        /* `>` keeps the first maximum; a NaN wins, as in PyTorch. */
                        if (row[kj] > bv || isnan(row[kj])) {
                            bv = row[kj];
                            best = (oh * S + ki) * W + ow * S + kj;
                        }
                    }
                }
                out[oh * OW + ow] = bv;
                am[oh * OW + ow] = best;
            }
        }
    }
}

static void s_max_backward(const gb_layer_t *l, const gb_pass_t *pass, const float *cache,
                           const float *x, const float *y, const float *dy, float *dx)
{
    (void)x;
    (void)y;
    if (!dx)
        return;
    const int C = l->in.dim[0], H = l->in.dim[1], W = l->in.dim[2];
    const int OHW = l->out.dim[1] * l->out.dim[2];
    const int32_t *arg = (const int32_t *)cache;
    const size_t planes = (size_t)pass->batch * C;
    memset(dx, 0, planes * H * W * sizeof(float));
    for (size_t pl = 0; pl < planes; pl++) {
        float *g = dx + pl * H * W;
        const float *d = dy + pl * OHW;
        const int32_t *am = arg + pl * OHW;
        for (int i = 0; i < OHW; i++)
            g[am[i]] += d[i];
    }
}

static void s_avg_forward(const gb_layer_t *l, const gb_pass_t *pass, float *cache,
                          const float *x, float *y)
{
    (void)cache;
    const int C = l->in.dim[0], H = l->in.dim[1], W = l->in.dim[2];
    const int OH = l->out.dim[1], OW = l->out.dim[2], K = l->cfg.kernel, S = l->cfg.stride;
    const float inv = 1.0f / (float)(K * K);
    const size_t planes = (size_t)pass->batch * C;
    for (size_t pl = 0; pl < planes; pl++) {
        const float *in = x + pl * H * W;
        float *out = y + pl * OH * OW;
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++) {
                float s = 0.0f;
                for (int ki = 0; ki < K; ki++)
                    for (int kj = 0; kj < K; kj++)
                        s += in[(size_t)(oh * S + ki) * W + ow * S + kj];
                out[oh * OW + ow] = s * inv;
            }
    }
}

static void s_avg_backward(const gb_layer_t *l, const gb_pass_t *pass, const float *cache,
                           const float *x, const float *y, const float *dy, float *dx)
{
    (void)cache;
    (void)x;
    (void)y;
    if (!dx)
        return;
    const int C = l->in.dim[0], H = l->in.dim[1], W = l->in.dim[2];
    const int OH = l->out.dim[1], OW = l->out.dim[2], K = l->cfg.kernel, S = l->cfg.stride;
    const float inv = 1.0f / (float)(K * K);
    const size_t planes = (size_t)pass->batch * C;
    memset(dx, 0, planes * H * W * sizeof(float));
    for (size_t pl = 0; pl < planes; pl++) {
        float *g = dx + pl * H * W;
        const float *d = dy + pl * OH * OW;
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++) {
                float v = d[oh * OW + ow] * inv;
                for (int ki = 0; ki < K; ki++)
                    for (int kj = 0; kj < K; kj++)
                        g[(size_t)(oh * S + ki) * W + ow * S + kj] += v;
            }
    }
}

static double s_flops(const gb_layer_t *l)
{
    (void)l;
    return 0.0;
}

const gb_layer_ops_t gb_maxpool2d_ops = {
    .plan = s_plan,
    .forward = s_max_forward,
    .backward = s_max_backward,
    .flops = s_flops,
};

const gb_layer_ops_t gb_avgpool2d_ops = {
    .plan = s_plan,
    .forward = s_avg_forward,
    .backward = s_avg_backward,
    .flops = s_flops,
};
