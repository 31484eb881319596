/* Vectorisable exp, sigmoid and tanh (see activations.h).
 *
 * exp(x) = 2^k * exp(r), k = round(x / ln2), r = x - k ln2 in two parts
 * (Cody-Waite), exp(r) by a degree-6 polynomial (Taylor coefficients are
 * within 2 ulp on |r| <= ln2/2), 2^k put into the exponent bits. Everything is
 * branch-free so GCC vectorises the loops; -ffast-math is not needed. */
#include "engine/activations.h"
#include "engine/kernels.h"
#include "engine/simd_kernels.h"
#include "engine/vec_dispatch.h"

#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* On x86-64 each loop is also built for AVX2 and AVX-512 and chosen per
 * call by the engine's kernel path (vec_dispatch.h): 8 or 16 lanes instead
 * of SSE2's 4, with bit-identical results. */
/* The fused LSTM step is written with AVX-512 intrinsics in simd_avx512.c
 * and chosen at run time; other CPUs and compilers take the other paths in
 * lstm.c. */
#define GB_HAVE_AVX512_KERNELS GB_SIMD_KERNELS

static inline float s_exp(float x)
{
    /* Clamp: below -87.3 the result is subnormal or 0; we flush at -104. */
    const float hi = 88.72283f, lo = -103.97208f;
    float nan_guard = x; /* NaN fails both comparisons and survives below */
    x = x > hi ? hi : x;
    x = x < lo ? lo : x;
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
    /* Round to nearest by the 1.5 * 2^23 trick (SSE2 has no vector floor). */
    const float shifter = 12582912.0f;
    float kf = (x * log2e + shifter) - shifter;
    float r = x - kf * ln2_hi;
    r = r - kf * ln2_lo;
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    /* 2^k split into two factors so k down to -150 and up to 128 stay exact. */
    int32_t k = (int32_t)kf;
    int32_t k1 = k / 2, k2 = k - k / 2;
    uint32_t b1 = (uint32_t)(k1 + 127) << 23, b2 = (uint32_t)(k2 + 127) << 23;
    float s1, s2;
    memcpy(&s1, &b1, sizeof s1);
    memcpy(&s2, &b2, sizeof s2);
    float y = p * s1 * s2;
    /* Beyond the clamp float's exp is +Inf or 0; NaN stays NaN. */
    y = nan_guard > hi ? INFINITY : y;
    y = nan_guard < lo ? 0.0f : y;
    return nan_guard != nan_guard ? nan_guard : y;
}

GB_VEC_FN(, gb_vec_exp, (const float *restrict x, float *restrict y, size_t n), (x, y, n))
{
    for (size_t i = 0; i < n; i++)
        y[i] = s_exp(x[i]);
}



/* tanh as a rational function: x P(x^2) / Q(x^2) with P of degree 13 and Q
 * of degree 6 (the minimax coefficients published with Eigen), on x clamped
 * to +-7.9053..., where the ratio rounds to exactly +-1; below |x| = 4e-4
 * tanh(x) = x to float precision. One division and no exp: about half the
 * work of the exp route, and within 1e-7 of double precision (the test bounds
 * it). NaN stays NaN: both clamps and the tiny test are false for it. */
static inline float s_tanh(float x)
{
    const float clamp = 7.90531110763549805f;
    float c = x > clamp ? clamp : x;
    c = c < -clamp ? -clamp : c;
    float x2 = c * c;
    float p = -2.76076847742355e-16f;
    p = p * x2 + 2.00018790482477e-13f;
    p = p * x2 + -8.60467152213735e-11f;
    p = p * x2 + 5.12229709037114e-08f;
    p = p * x2 + 1.48572235717979e-05f;
    p = p * x2 + 6.37261928875436e-04f;
    p = p * x2 + 4.89352455891786e-03f;
    p = p * c;
    float q = 1.19825839466702e-06f;
    q = q * x2 + 1.18534705686654e-04f;
    q = q * x2 + 2.26843463243900e-03f;
    q = q * x2 + 4.89352518554385e-03f;
    float t = p / q;
    return fabsf(x) < 0.0004f ? x : t;
}

/* sigmoid(x) = (1 + tanh(x / 2)) / 2: the same single division. */
static inline float s_sigmoid(float x)
{
    return 0.5f + 0.5f * s_tanh(0.5f * x);
}

GB_VEC_FN(, gb_vec_tanh, (const float *restrict x, float *restrict y, size_t n), (x, y, n))
{
    for (size_t i = 0; i < n; i++)
        y[i] = s_tanh(x[i]);
}

GB_VEC_FN(, gb_vec_sigmoid, (const float *restrict x, float *restrict y, size_t n), (x, y, n))
{
    for (size_t i = 0; i < n; i++)
        y[i] = s_sigmoid(x[i]);
}

GB_VEC_FN(, gb_vec_relu, (const float *restrict x, float *restrict y, size_t n), (x, y, n))
{
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] < 0.0f ? 0.0f : x[i]; /* NaN passes through */
}

GB_VEC_FN(, gb_vec_relu_backward, (const float *restrict y, const float *restrict dy, float *restrict dx, size_t n), (y, dy, dx, n))
{
    /* A bit mask rather than a branch or a multiply: it vectorises, and an
     * infinite dy where y <= 0 still gives exactly 0 (Inf * 0 would be NaN). */
    for (size_t i = 0; i < n; i++) {
        uint32_t bits, mask = y[i] > 0.0f ? 0xffffffffu : 0u;
        memcpy(&bits, &dy[i], sizeof bits);
        bits &= mask;
        memcpy(&dx[i], &bits, sizeof bits);
    }
}

GB_VEC_FN(, gb_vec_tanh_backward, (const float *restrict y, const float *restrict dy, float *restrict dx, size_t n), (y, dy, dx, n))
{
    for (size_t i = 0; i < n; i++)
        dx[i] = dy[i] * (1.0f - y[i] * y[i]);
}

GB_VEC_FN(, gb_vec_sigmoid_backward, (const float *restrict y, const float *restrict dy, float *restrict dx, size_t n), (y, dy, dx, n))
{
    for (size_t i = 0; i < n; i++)
        dx[i] = dy[i] * y[i] * (1.0f - y[i]);
}

/* ---- recurrent cells ----------------------------------------------------
 * One time step of a batch, rows of gates contiguous; B rows, H units. */

GB_VEC_FN(, gb_lstm_cell_forward, (float *restrict gates, const float *restrict bias, const float *restrict c_prev, float *restrict c, float *restrict h, float *restrict tanh_c, int B, int H), (gates, bias, c_prev, c, h, tanh_c, B, H))
{
    const float *bi = bias, *bf = bi + H, *bg = bf + H, *bo = bg + H;
    for (int b = 0; b < B; b++) {
        float *gi = gates + (size_t)b * 4 * H, *gf = gi + H, *gg = gf + H, *go = gg + H;
        const float *cp = c_prev + (size_t)b * H;
        float *cb = c + (size_t)b * H, *hb = h + (size_t)b * H, *tb = tanh_c + (size_t)b * H;
        for (int j = 0; j < H; j++) {
            float i = s_sigmoid(gi[j] + bi[j]), f = s_sigmoid(gf[j] + bf[j]);
            float g = s_tanh(gg[j] + bg[j]), o = s_sigmoid(go[j] + bo[j]);
            float cj = f * cp[j] + i * g;
            float tj = s_tanh(cj);
            gi[j] = i;
            gf[j] = f;
            gg[j] = g;
            go[j] = o;
            cb[j] = cj;
            tb[j] = tj;
            hb[j] = o * tj;
        }
    }
}

GB_VEC_FN(, gb_lstm_cell_backward, (const float *restrict gates, const float *restrict c_prev, const float *restrict tanh_c, const float *restrict dh, float *restrict dc, float *restrict dgates, int B, int H), (gates, c_prev, tanh_c, dh, dc, dgates, B, H))
{
    for (int b = 0; b < B; b++) {
        const float *gi = gates + (size_t)b * 4 * H, *gf = gi + H, *gg = gf + H, *go = gg + H;
        float *di = dgates + (size_t)b * 4 * H, *df = di + H, *dg = df + H, *dO = dg + H;
        const float *cp = c_prev + (size_t)b * H, *tb = tanh_c + (size_t)b * H;
        const float *dhb = dh + (size_t)b * H;
        float *dcb = dc + (size_t)b * H;
        for (int j = 0; j < H; j++) {
            float i = gi[j], f = gf[j], g = gg[j], o = go[j], t = tb[j];
            float dcj = dcb[j] + dhb[j] * o * (1.0f - t * t);
            dO[j] = dhb[j] * t * o * (1.0f - o);
            di[j] = dcj * g * i * (1.0f - i);
            dg[j] = dcj * i * (1.0f - g * g);
            df[j] = dcj * cp[j] * f * (1.0f - f);
            dcb[j] = dcj * f;
        }
    }
}

GB_VEC_FN(, gb_gru_cell_forward, (const float *restrict gx, const float *restrict gh, const float *restrict h_prev, float *restrict gates, float *restrict hn, float *restrict h, int B, int H), (gx, gh, h_prev, gates, hn, h, B, H))
{
    for (int b = 0; b < B; b++) {
        const float *xr = gx + (size_t)b * 3 * H, *xz = xr + H, *xn = xz + H;
        const float *hr = gh + (size_t)b * 3 * H, *hz = hr + H, *hnn = hz + H;
        float *r = gates + (size_t)b * 3 * H, *z = r + H, *n = z + H;
        const float *hp = h_prev + (size_t)b * H;
        float *hb = h + (size_t)b * H, *hnb = hn + (size_t)b * H;
        for (int j = 0; j < H; j++) {
            float rj = s_sigmoid(xr[j] + hr[j]);
            float zj = s_sigmoid(xz[j] + hz[j]);
            float nj = s_tanh(xn[j] + rj * hnn[j]);
            r[j] = rj;
            z[j] = zj;
            n[j] = nj;
            hnb[j] = hnn[j];
            hb[j] = (1.0f - zj) * nj + zj * hp[j];
        }
    }
}

GB_VEC_FN(, gb_gru_cell_backward, (const float *restrict gates, const float *restrict hn, const float *restrict h_prev, const float *restrict dh, float *restrict dgx, float *restrict dgh, float *restrict dh_prev, int B, int H), (gates, hn, h_prev, dh, dgx, dgh, dh_prev, B, H))
{
    for (int b = 0; b < B; b++) {
        const float *r = gates + (size_t)b * 3 * H, *z = r + H, *n = z + H;
        float *dxr = dgx + (size_t)b * 3 * H, *dxz = dxr + H, *dxn = dxz + H;
        float *dhr = dgh + (size_t)b * 3 * H, *dhz = dhr + H, *dhn = dhz + H;
        const float *hp = h_prev + (size_t)b * H, *hnb = hn + (size_t)b * H;
        const float *dhb = dh + (size_t)b * H;
        float *dpb = dh_prev + (size_t)b * H;
        for (int j = 0; j < H; j++) {
            float d = dhb[j], rj = r[j], zj = z[j], nj = n[j];
            float dan = d * (1.0f - zj) * (1.0f - nj * nj);
            float daz = d * (hp[j] - nj) * zj * (1.0f - zj);
            float dar = dan * hnb[j] * rj * (1.0f - rj);
            dxr[j] = dar;
            dxz[j] = daz;
            dxn[j] = dan;
            dhr[j] = dar;
            dhz[j] = daz;
            dhn[j] = dan * rj;
            dpb[j] = d * zj;
        }
    }
}

/* ---- the fused LSTM step (AVX-512; the kernel is in simd_avx512.c) -------
 * One kernel per step does the whole recurrence for a tile of MR rows and 16
 * hidden units: the four gates' pre-activations bias + [x_t, h_{t-1}] . W^T
 * accumulate in 4 x MR zmm registers over K = F + H, then the gate
 * nonlinearities, c and h are computed from the registers and stored. The
 * gate pre-activations never reach memory and the input projection is not a
 * separate pass. The weights are packed once per pass (gb_lstm_pack) so that
 * each k reads 64 contiguous floats: for hidden block jb (units 16 jb ..
 * 16 jb + 15), a bias row then K rows of [i f g o] x 16 lanes; lanes past H
 * hold zeros. OpenBLAS is limited to its AVX2 kernels on this CPU
 * (OPENBLAS_CORETYPE=Haswell), so this doubles the width of the product. */

int gb_lstm_fast(void)
{
#if GB_HAVE_AVX512_KERNELS
    return gb_kernels() == GB_KERNELS_AVX512;
#else
    return 0;
#endif
}

size_t gb_lstm_pack_floats(int F, int H)
{
    return (size_t)((H + 15) / 16) * (size_t)(F + H + 1) * 64;
}

void gb_lstm_pack(const float *restrict Wih, const float *restrict Whh, const float *restrict bih,
                  const float *restrict bhh, int F, int H, float *restrict wp)
{
    const int K = F + H, nb = (H + 15) / 16;
    for (int jb = 0; jb < nb; jb++) {
        float *blk = wp + (size_t)jb * (K + 1) * 64;
        for (int g = 0; g < 4; g++)
            for (int lane = 0; lane < 16; lane++) {
                const int j = jb * 16 + lane, col = g * 16 + lane;
                float *dst = blk + col;
                if (j >= H) {
                    for (int k = 0; k <= K; k++)
                        dst[(size_t)k * 64] = 0.0f;
                    continue;
                }
                const size_t row = (size_t)g * H + j;
                const float *wi = Wih + row * F, *wh = Whh + row * H;
                dst[0] = bih[row] + bhh[row];
                for (int k = 0; k < F; k++)
                    dst[(size_t)(1 + k) * 64] = wi[k];
                for (int k = 0; k < H; k++)
                    dst[(size_t)(1 + F + k) * 64] = wh[k];
            }
    }
}


void gb_lstm_step_forward(const float *wp, const float *z, const float *c_prev, float *z_next,
                          float *gates, float *c, float *h, float *tanh_c, int B, int F, int H,
                          int first)
{
#if GB_HAVE_AVX512_KERNELS
    assert(gb_lstm_fast());
    gb_simd_lstm_step_avx512(wp, z, c_prev, z_next, gates, c, h, tanh_c, B, F, H, first);
#else
    (void)wp, (void)z, (void)c_prev, (void)z_next, (void)gates, (void)c, (void)h, (void)tanh_c;
    (void)B, (void)F, (void)H, (void)first;
    assert(!"gb_lstm_step_forward called without gb_lstm_fast()");
#endif
}
