/* Tests for engine/activations: the vectorised exp, sigmoid, tanh and relu
 * (and their backward helpers) against double-precision libm on dense grids,
 * at the ends of their ranges, on +-Inf and NaN, and for every vector length
 * up to 40 (the vectorised body and its scalar tail).
 *
 * Tolerances (the float result against the double function of the same
 * float input):
 *   exp      relative error <= 1e-6 on [-80, 80] (worst seen 2.4e-7) and on
 *            the whole normal range [-87.3, 88.72]; on the subnormal range
 *            down to the clamp at -104, absolute error <= 2^-148 (two
 *            subnormal steps; worst seen 1.8e-45 = 1.26 steps);
 *   sigmoid  absolute error <= 1e-6 on [-30, 30] (worst seen 1.6e-7);
 *   tanh     absolute error <= 1e-6 on [-30, 30] (worst seen 2.8e-7), and
 *            relative error <= 2e-6 for |x| < 1 where tanh is small (worst
 *            seen 6.8e-7; a 1% error in the x^3 term of the series is
 *            4e-6).
 * The fused LSTM step's own 16-lane sigmoid and tanh (AVX-512, inside
 * gb_lstm_step_forward) are held to the same bounds and must give the same
 * bits as gb_vec_sigmoid / gb_vec_tanh, and its cell the same bits as
 * gb_lstm_cell_forward. */
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/activations.h"

typedef void (*s_vec_fn)(const float *x, float *y, size_t n);

/* Evaluates fn over the float grid lo, lo + step, ... hi in one call
 * (the vector path) and returns the worst error against ref: relative
 * (|y - r| / |r|) when rel, else absolute. */
static double s_grid_error(s_vec_fn fn, double (*ref)(double), double lo, double hi, double step,
                           int rel, double *where)
{
    size_t n = (size_t)((hi - lo) / step) + 1;
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    assert_true(x && y);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(lo + (double)i * step);
    fn(x, y, n);
    double worst = 0.0;
    *where = lo;
    for (size_t i = 0; i < n; i++) {
        double r = ref((double)x[i]);
        double e = fabs((double)y[i] - r);
        if (rel)
            e /= fabs(r);
        if (!(e <= worst)) {
            worst = e;
            *where = x[i];
        }
    }
    free(x);
    free(y);
    return worst;
}

static double s_sigmoid_ref(double x)
{
    return 1.0 / (1.0 + exp(-x));
}

static double s_one(s_vec_fn fn, float x)
{
    float y;
    fn(&x, &y, 1);
    return y;
}

static void test_exp_accuracy(void **state)
{
    (void)state;
    double where, e;
    e = s_grid_error(gb_vec_exp, exp, -80.0, 80.0, 1e-3, 1, &where);
    print_message("exp [-80, 80]: max relative error %.3g at %g (tol 1e-6)\n", e, where);
    assert_true(e <= 1e-6);
    /* The whole range of normal results, finely around 0 too. */
    e = s_grid_error(gb_vec_exp, exp, -87.33, 88.72, 3e-3, 1, &where);
    assert_true(e <= 1e-6);
    e = s_grid_error(gb_vec_exp, exp, -1.0, 1.0, 1e-5, 1, &where);
    assert_true(e <= 1e-6);
    /* Subnormal results: two subnormal steps of absolute error (the scaling
     * by 2^k rounds twice). */
    e = s_grid_error(gb_vec_exp, exp, -103.9, -87.34, 1e-3, 0, &where);
    print_message("exp subnormal range: max absolute error %.3g at %g (tol 2^-148)\n", e, where);
    assert_true(e <= 0x1p-148);

    /* Exact points. */
    assert_true(s_one(gb_vec_exp, 0.0f) == 1.0f);
    assert_true(s_one(gb_vec_exp, -0.0f) == 1.0f);
    assert_true(fabs(s_one(gb_vec_exp, 1.0f) - M_E) <= 1e-6 * M_E);
    /* Just below the overflow threshold the result is finite and right. */
    double big = s_one(gb_vec_exp, 88.72f);
    assert_true(isfinite(big));
    assert_true(fabs(big - exp(88.72f)) <= 1e-6 * exp(88.72f));
}

static void test_sigmoid_accuracy(void **state)
{
    (void)state;
    double where;
    double e = s_grid_error(gb_vec_sigmoid, s_sigmoid_ref, -30.0, 30.0, 1e-3, 0, &where);
    print_message("sigmoid [-30, 30]: max absolute error %.3g at %g (tol 1e-6)\n", e, where);
    assert_true(e <= 1e-6);
    assert_true(s_one(gb_vec_sigmoid, 0.0f) == 0.5f);
    /* Symmetry: sigmoid(x) + sigmoid(-x) = 1. */
    for (float x = 0.0f; x < 20.0f; x += 0.37f)
        assert_true(fabs(s_one(gb_vec_sigmoid, x) + s_one(gb_vec_sigmoid, -x) - 1.0) <= 1e-6);
}

static void test_tanh_accuracy(void **state)
{
    (void)state;
    double where;
    double e = s_grid_error(gb_vec_tanh, tanh, -30.0, 30.0, 1e-3, 0, &where);
    print_message("tanh [-30, 30]: max absolute error %.3g at %g (tol 1e-6)\n", e, where);
    assert_true(e <= 1e-6);
    /* Near 0, where the series and the exp formula meet (|x| = 0.0625),
     * relative accuracy too. */
    e = s_grid_error(gb_vec_tanh, tanh, -1.0, -1e-4, 1e-5, 1, &where);
    assert_true(e <= 2e-6);
    e = s_grid_error(gb_vec_tanh, tanh, 1e-4, 1.0, 1e-5, 1, &where);
    print_message("tanh [1e-4, 1]: max relative error %.3g at %g (tol 2e-6)\n", e, where);
    assert_true(e <= 2e-6);
    assert_true(s_one(gb_vec_tanh, 0.0f) == 0.0f);
    /* Odd: tanh(-x) = -tanh(x) exactly. */
    for (float x = 0.0f; x < 20.0f; x += 0.013f)
        assert_true(s_one(gb_vec_tanh, -x) == -s_one(gb_vec_tanh, x));
    /* Tiny inputs: tanh(x) = x in float. */
    assert_true(s_one(gb_vec_tanh, 1e-20f) == 1e-20f);
    assert_true(s_one(gb_vec_tanh, -FLT_MIN) == -FLT_MIN);
}

/* Saturation at huge inputs and at +-Inf: values stay finite where the
 * function is bounded and never overshoot their limits. */
static void test_saturation(void **state)
{
    (void)state;
    static const float huge[] = {40.0f, 100.0f, 1e4f, 1e30f, FLT_MAX, INFINITY};
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        float p = huge[i], n = -huge[i];
        assert_true(s_one(gb_vec_tanh, p) == 1.0f);
        assert_true(s_one(gb_vec_tanh, n) == -1.0f);
        assert_true(s_one(gb_vec_sigmoid, p) == 1.0f);
        double s = s_one(gb_vec_sigmoid, n);
        assert_true(s >= 0.0 && s <= 1e-17); /* sigmoid(-40) = 4.2e-18 */
        double e = s_one(gb_vec_exp, n);
        assert_true(e >= 0.0 && e <= 1e-17);
        /* exp beyond ln(FLT_MAX) = 88.72: (almost) the largest float or
         * more (whether it is +Inf: test_exp_overflow_is_inf). */
        if (p > 89.0f)
            assert_true(s_one(gb_vec_exp, p) >= 0.999 * FLT_MAX);
        assert_true(s_one(gb_vec_relu, p) == p);
        assert_true(s_one(gb_vec_relu, n) == 0.0f);
    }
    /* tanh and sigmoid reach exactly +-1 / 1 once float cannot tell. */
    assert_true(s_one(gb_vec_tanh, 9.1f) == 1.0f);
    assert_true(s_one(gb_vec_sigmoid, 17.0f) == 1.0f);
}

/* Beyond the float range exp is exactly +Inf and 0, as expf is, so
 * sigmoid saturates to exactly 0 and 1. */
static void test_exp_overflow_is_inf(void **state)
{
    (void)state;
    assert_true(isinf(s_one(gb_vec_exp, INFINITY)));
    assert_true(isinf(s_one(gb_vec_exp, 100.0f)));
    assert_true(s_one(gb_vec_exp, -INFINITY) == 0.0f);
    assert_true(s_one(gb_vec_exp, -104.0f) == 0.0f);
    assert_true(s_one(gb_vec_sigmoid, -INFINITY) == 0.0f);
}

static void test_nan_propagates(void **state)
{
    (void)state;
    const float x[5] = {1.0f, NAN, -NAN, -2.0f, NAN};
    float y[5];
    s_vec_fn fns[4] = {gb_vec_exp, gb_vec_sigmoid, gb_vec_tanh, gb_vec_relu};
    for (int f = 0; f < 4; f++) {
        fns[f](x, y, 5);
        assert_true(isnan(y[1]));
        assert_true(isnan(y[2]));
        assert_true(isnan(y[4]));
        assert_false(isnan(y[0]));
        assert_false(isnan(y[3]));
    }
}

static void test_relu(void **state)
{
    (void)state;
    const float x[6] = {-3.0f, -1e-30f, 0.0f, 1e-30f, 2.5f, -INFINITY};
    const float want[6] = {0.0f, 0.0f, 0.0f, 1e-30f, 2.5f, 0.0f};
    float y[6];
    gb_vec_relu(x, y, 6);
    assert_memory_equal(y, want, sizeof y);
}

/* The backward helpers: dx from the saved output y and dy. */
static void test_backward_helpers(void **state)
{
    (void)state;
    const float y[5] = {-0.5f, 0.0f, 0.25f, 0.5f, 1.0f};
    const float dy[5] = {2.0f, -3.0f, 4.0f, -1.0f, 0.5f};
    float dx[5];
    gb_vec_relu_backward(y, dy, dx, 5);
    const float relu[5] = {0.0f, 0.0f, 4.0f, -1.0f, 0.5f};
    assert_memory_equal(dx, relu, sizeof dx);
    gb_vec_tanh_backward(y, dy, dx, 5);
    for (int i = 0; i < 5; i++)
        assert_true(fabs(dx[i] - dy[i] * (1.0 - (double)y[i] * y[i])) <= 1e-7);
    gb_vec_sigmoid_backward(y, dy, dx, 5);
    for (int i = 0; i < 5; i++)
        assert_true(fabs(dx[i] - dy[i] * (double)y[i] * (1.0 - y[i])) <= 1e-7);
    /* n = 0 touches nothing. */
    float keep = 42.0f;
    gb_vec_relu_backward(y, dy, &keep, 0);
    assert_true(keep == 42.0f);
}

/* Every length 0..40 gives the same values as one-at-a-time calls: the
 * vectorised body and the scalar tail agree, and nothing past n is
 * written. */
static void test_lengths(void **state)
{
    (void)state;
    s_vec_fn fns[4] = {gb_vec_exp, gb_vec_sigmoid, gb_vec_tanh, gb_vec_relu};
    float x[41], y[41], one;
    for (int i = 0; i < 41; i++)
        x[i] = -10.0f + 0.5f * (float)i + 0.01f * (float)(i % 3);
    for (int f = 0; f < 4; f++) {
        for (size_t n = 0; n <= 40; n++) {
            for (int i = 0; i < 41; i++)
                y[i] = -7.0f;
            fns[f](x, y, n);
            for (size_t i = 0; i < n; i++) {
                fns[f](&x[i], &one, 1);
                assert_true(y[i] == one);
            }
            for (size_t i = n; i < 41; i++)
                assert_true(y[i] == -7.0f);
        }
    }
}

/* ---- the fused LSTM step's own sigmoid and tanh (AVX-512) --------------
 * gb_lstm_step_forward evaluates the gates in registers with its own 16-lane
 * copies of sigmoid and tanh. With F = 1, a zero W_hh and zero biases, the
 * input 1 makes every gate's pre-activation exactly its W_ih entry, so the
 * stored gates are sigmoid (i, f, o) and tanh (g) of chosen values. */
enum { S_FUSED_H = 256 };

static void s_fused(const float *x, float *y, size_t n, int tanh_gate)
{
    const int H = S_FUSED_H;
    float *wp = malloc(gb_lstm_pack_floats(1, H) * sizeof *wp);
    float *wih = calloc(4 * H, sizeof *wih), *whh = calloc((size_t)4 * H * H, sizeof *whh);
    float *b0 = calloc(4 * H, sizeof *b0), *z = calloc(1 + H, sizeof *z);
    float *gates = malloc(4 * H * sizeof *gates), *c0 = calloc(H, sizeof *c0);
    float *c = malloc(H * sizeof *c), *h = malloc(H * sizeof *h), *tc = malloc(H * sizeof *tc);
    assert_true(wp && wih && whh && b0 && z && gates && c0 && c && h && tc);
    z[0] = 1.0f;
    for (size_t i0 = 0; i0 < n; i0 += H) {
        size_t m = n - i0 < (size_t)H ? n - i0 : (size_t)H;
        for (int g = 0; g < 4; g++)
            for (size_t j = 0; j < (size_t)H; j++)
                wih[g * H + j] = j < m ? x[i0 + j] : 0.0f;
        gb_lstm_pack(wih, whh, b0, b0, 1, H, wp);
        gb_lstm_step_forward(wp, z, c0, NULL, gates, c, h, tc, 1, 1, H, 1);
        memcpy(y + i0, gates + (tanh_gate ? 2 * H : 0), m * sizeof *y);
        /* f and o are the same sigmoid as i, bit for bit. */
        assert_memory_equal(gates, gates + H, m * sizeof *y);
        assert_memory_equal(gates, gates + 3 * H, m * sizeof *y);
    }
    free(wp), free(wih), free(whh), free(b0), free(z), free(gates), free(c0), free(c), free(h);
    free(tc);
}

static void s_fused_sigmoid(const float *x, float *y, size_t n)
{
    s_fused(x, y, n, 0);
}

static void s_fused_tanh(const float *x, float *y, size_t n)
{
    s_fused(x, y, n, 1);
}

/* The same bounds as gb_vec_sigmoid and gb_vec_tanh (1e-6 absolute, 2e-6
 * relative near 0), and the same bits: the fused kernel uses the same
 * operations in the same order. */
static void test_lstm_step_accuracy(void **state)
{
    (void)state;
    if (!gb_lstm_fast()) {
        print_message("no AVX-512 here: the fused LSTM step is not used\n");
        return;
    }
    double where, e;
    e = s_grid_error(s_fused_sigmoid, s_sigmoid_ref, -30.0, 30.0, 1e-3, 0, &where);
    print_message("fused sigmoid [-30, 30]: max absolute error %.3g at %g (tol 1e-6)\n", e, where);
    assert_true(e <= 1e-6);
    e = s_grid_error(s_fused_tanh, tanh, -30.0, 30.0, 1e-3, 0, &where);
    print_message("fused tanh [-30, 30]: max absolute error %.3g at %g (tol 1e-6)\n", e, where);
    assert_true(e <= 1e-6);
    e = s_grid_error(s_fused_tanh, tanh, 1e-4, 1.0, 1e-5, 1, &where);
    assert_true(e <= 2e-6);
    e = s_grid_error(s_fused_tanh, tanh, -1.0, -1e-4, 1e-5, 1, &where);
    assert_true(e <= 2e-6);
    /* (No -0: the bias 0 + 1 * -0 reaches the gates as +0.) */
    static const float odd[] = {0.0f,  1e-20f,    -FLT_MIN, 3e-4f,    -5e-4f, 7.9f,
                                9.1f,  17.0f, -17.0f,    40.0f,    1e30f,    FLT_MAX,
                                -INFINITY, INFINITY, NAN, 0.37f, -2.5f};
    const size_t n = sizeof odd / sizeof odd[0];
    float got[sizeof odd / sizeof odd[0]], want[sizeof odd / sizeof odd[0]];
    s_fused_tanh(odd, got, n);
    gb_vec_tanh(odd, want, n);
    assert_memory_equal(got, want, sizeof got);
    s_fused_sigmoid(odd, got, n);
    gb_vec_sigmoid(odd, want, n);
    assert_memory_equal(got, want, sizeof got);
}

/* The cell part of the fused step against gb_lstm_cell_forward, bit for bit,
 * from a non-zero c_prev and pre-activations in every range. */
static void test_lstm_step_cell(void **state)
{
    (void)state;
    if (!gb_lstm_fast())
        return;
    enum { H = 21, B = 3 };
    float wih[4 * H], whh[4 * H * H] = {0}, b0[4 * H] = {0}, z[B * (1 + H)] = {0};
    float pre[B * 4 * H], cp[B * H], g1[B * 4 * H], c1[B * H], h1[B * H], t1[B * H];
    float g2[B * 4 * H], c2[B * H], h2[B * H], t2[B * H], zn[B * (1 + H)];
    for (int i = 0; i < 4 * H; i++)
        wih[i] = -9.0f + 18.0f * (float)((i * 37) % 101) / 100.0f;
    for (int b = 0; b < B; b++) {
        z[b * (1 + H)] = 1.0f;
        for (int i = 0; i < 4 * H; i++)
            pre[b * 4 * H + i] = wih[i];
        for (int j = 0; j < H; j++)
            cp[b * H + j] = -3.0f + 0.3f * (float)((b * H + j) % 21);
    }
    float *wp = malloc(gb_lstm_pack_floats(1, H) * sizeof *wp);
    assert_non_null(wp);
    gb_lstm_pack(wih, whh, b0, b0, 1, H, wp);
    gb_lstm_step_forward(wp, z, cp, zn, g1, c1, h1, t1, B, 1, H, 1);
    memcpy(g2, pre, sizeof pre);
    gb_lstm_cell_forward(g2, b0, cp, c2, h2, t2, B, H);
    assert_memory_equal(g1, g2, sizeof g1);
    assert_memory_equal(c1, c2, sizeof c1);
    assert_memory_equal(t1, t2, sizeof t1);
    assert_memory_equal(h1, h2, sizeof h1);
    for (int b = 0; b < B; b++)
        assert_memory_equal(zn + b * (1 + H) + 1, h1 + b * H, H * sizeof(float));
    free(wp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exp_accuracy),
        cmocka_unit_test(test_sigmoid_accuracy),
        cmocka_unit_test(test_tanh_accuracy),
        cmocka_unit_test(test_saturation),
        cmocka_unit_test(test_nan_propagates),
        cmocka_unit_test(test_relu),
        cmocka_unit_test(test_backward_helpers),
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_exp_overflow_is_inf),
        cmocka_unit_test(test_lstm_step_accuracy),
        cmocka_unit_test(test_lstm_step_cell),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
