/* Vectorisable exp, sigmoid and tanh (see activations.h).
 *
 * exp(x) = 2^k * exp(r), k = round(x / ln2), r = x - k ln2 in two parts
 * (Cody-Waite), exp(r) by a degree-6 polynomial (Taylor coefficients are
 * within 2 ulp on |r| <= ln2/2), 2^k put into the exponent bits. Everything is
 * branch-free so GCC vectorises the loops; -ffast-math is not needed. */
#include "engine/activations.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* On x86-64 each kernel is also built for AVX2 and picked at load time
 * (ifunc): 8 lanes instead of SSE2's 4. Without -ffast-math and with
 * -std=c11 (no FMA contraction) both clones give bit-identical results. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define GB_VEC_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define GB_VEC_CLONES
#endif

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

GB_VEC_CLONES
void gb_vec_exp(const float *restrict x, float *restrict y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = s_exp(x[i]);
}

GB_VEC_CLONES
void gb_vec_sigmoid(const float *restrict x, float *restrict y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = 1.0f / (1.0f + s_exp(-x[i]));
}

GB_VEC_CLONES
void gb_vec_tanh(const float *restrict x, float *restrict y, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        /* tanh(x) = sign(x) (1 - e) / (1 + e), e = exp(-2|x|): no overflow.
         * For small |x| use the odd series to keep relative accuracy. */
        float a = fabsf(x[i]);
        float e = s_exp(-2.0f * a);
        float t = (1.0f - e) / (1.0f + e);
        float x2 = x[i] * x[i];
        float small = x[i] * (1.0f + x2 * (-1.0f / 3.0f + x2 * (2.0f / 15.0f + x2 * (-17.0f / 315.0f))));
        float big = copysignf(t, x[i]);
        y[i] = a < 0.0625f ? small : big;
    }
}

GB_VEC_CLONES
void gb_vec_relu(const float *restrict x, float *restrict y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] < 0.0f ? 0.0f : x[i]; /* NaN passes through */
}

GB_VEC_CLONES
void gb_vec_relu_backward(const float *restrict y, const float *restrict dy, float *restrict dx,
                          size_t n)
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

GB_VEC_CLONES
void gb_vec_tanh_backward(const float *restrict y, const float *restrict dy, float *restrict dx,
                          size_t n)
{
    for (size_t i = 0; i < n; i++)
        dx[i] = dy[i] * (1.0f - y[i] * y[i]);
}

GB_VEC_CLONES
void gb_vec_sigmoid_backward(const float *restrict y, const float *restrict dy,
                             float *restrict dx, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dx[i] = dy[i] * y[i] * (1.0f - y[i]);
}
