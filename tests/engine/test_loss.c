/* Tests for engine/loss: softmax cross-entropy and mean squared error on
 * known values, their gradients against central differences of the loss
 * itself, the scale argument, and cross-entropy's stability at logits of
 * +-1e4 (finite loss, finite gradients summing to ~0 per row).
 *
 * Tolerances: known values to 1e-12 relative for the (double) losses and
 * 1e-7 absolute for the (float) gradients; finite differences (h = 1e-3 on
 * the float inputs, loss in double) |a - n| <= 1e-5 * max(|a|, |n|, 1e-2). */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/loss.h"
#include "util/rng.h"

static void s_close(double got, double want, double tol, const char *what)
{
    if (!(fabs(got - want) <= tol))
        fail_msg("%s: got %.12g, want %.12g (tol %.3g)", what, got, want, tol);
}

static void test_ce_uniform_logits(void **state)
{
    (void)state;
    /* Equal logits in a row: loss log(C) whatever their value, gradient
     * scale * (1/C - onehot). */
    enum { R = 4, C = 10 };
    float z[R * C], g[R * C];
    const float level[R] = {0.0f, 2.5f, 1e4f, -1e4f};
    const int32_t labels[R] = {0, 3, 9, 5};
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++)
            z[r * C + c] = level[r];
    double loss = gb_loss_softmax_ce(z, labels, R, C, 1.0f, g);
    s_close(loss, R * log(10.0), 1e-12 * R * log(10.0), "uniform loss");
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++)
            s_close(g[r * C + c], 0.1 - (c == labels[r]), 1e-7, "uniform gradient");
}

static void test_ce_known_value(void **state)
{
    (void)state;
    const float z[3] = {1.0f, 2.0f, 3.0f};
    const int32_t label = 2;
    float g[3];
    double loss = gb_loss_softmax_ce(z, &label, 1, 3, 1.0f, g);
    const double lse = log(exp(1.0) + exp(2.0) + exp(3.0));
    s_close(loss, lse - 3.0, 1e-12, "known loss"); /* 0.40760596444 */
    s_close(loss, 0.40760596444438, 1e-11, "known loss (literal)");
    s_close(g[0], exp(1.0 - lse), 1e-7, "g0"); /* 0.0900306 */
    s_close(g[1], exp(2.0 - lse), 1e-7, "g1"); /* 0.2447285 */
    s_close(g[2], exp(3.0 - lse) - 1.0, 1e-7, "g2");
    /* dlogits may be NULL: same loss. */
    assert_true(gb_loss_softmax_ce(z, &label, 1, 3, 1.0f, NULL) == loss);
    /* One class: loss 0, gradient 0. */
    float one = 7.0f, g1 = 5.0f;
    int32_t zero = 0;
    assert_true(gb_loss_softmax_ce(&one, &zero, 1, 1, 1.0f, &g1) == 0.0);
    assert_true(g1 == 0.0f);
    /* No rows: 0 and nothing written. */
    g1 = 5.0f;
    assert_true(gb_loss_softmax_ce(&one, &zero, 0, 1, 1.0f, &g1) == 0.0);
    assert_true(g1 == 5.0f);
}

/* The loss is the SUM over rows; the gradient is that of scale x sum, so
 * workers holding parts of a batch add up to the batch mean's gradient. */
static void test_ce_scale_and_sum(void **state)
{
    (void)state;
    enum { R = 5, C = 4 };
    float z[R * C], g1[R * C], gs[R * C], gpart[R * C];
    int32_t labels[R] = {0, 1, 2, 3, 1};
    gb_rng_t rng;
    gb_rng_seed(&rng, 1, 1);
    for (int i = 0; i < R * C; i++)
        z[i] = (float)(4.0 * gb_rng_uniform(&rng) - 2.0);
    double total = gb_loss_softmax_ce(z, labels, R, C, 1.0f, g1);
    double scaled = gb_loss_softmax_ce(z, labels, R, C, 0.2f, gs);
    assert_true(total == scaled); /* the loss does not depend on scale */
    double sum = 0.0;
    for (int r = 0; r < R; r++)
        sum += gb_loss_softmax_ce(z + r * C, labels + r, 1, C, 1.0f, NULL);
    s_close(total, sum, 1e-12 * total, "sum over rows");
    for (int i = 0; i < R * C; i++)
        s_close(gs[i], 0.2 * g1[i], 1e-7, "scaled gradient");
    /* Two parts (rows 0-1 and 2-4) give the whole. */
    double a = gb_loss_softmax_ce(z, labels, 2, C, 0.2f, gpart);
    double b = gb_loss_softmax_ce(z + 2 * C, labels + 2, 3, C, 0.2f, gpart + 2 * C);
    s_close(a + b, total, 1e-12 * total, "parts");
    assert_memory_equal(gpart, gs, sizeof gs);
}

/* Logits of +-1e4: exp would overflow without the max subtraction. */
static void test_ce_stable_at_large_logits(void **state)
{
    (void)state;
    enum { R = 5, C = 3 };
    const float z[R * C] = {
        1e4f,  -1e4f, 0.0f,  /* label 1: loss 2e4 */
        1e4f,  -1e4f, 0.0f,  /* label 0: loss 0 */
        -1e4f, -1e4f, -1e4f, /* label 2: loss log 3 */
        1e4f,  1e4f,  -1e4f, /* label 2: loss 2e4 + log 2 */
        -1e4f, 1e4f,  1e4f,  /* label 1: loss log 2 */
    };
    const int32_t labels[R] = {1, 0, 2, 2, 1};
    const double want[R] = {2e4, 0.0, log(3.0), 2e4 + log(2.0), log(2.0)};
    float g[R * C];
    for (int r = 0; r < R; r++) {
        double loss = gb_loss_softmax_ce(z + r * C, labels + r, 1, C, 0.5f, g + r * C);
        assert_true(isfinite(loss));
        s_close(loss, want[r], 1e-9 * fmax(want[r], 1.0), "large-logit loss");
        double rowsum = 0.0;
        for (int c = 0; c < C; c++) {
            assert_true(isfinite(g[r * C + c]));
            assert_true(fabs(g[r * C + c]) <= 0.5f);
            rowsum += g[r * C + c];
        }
        s_close(rowsum, 0.0, 1e-7, "gradient row sum");
    }
    /* Row 0: softmax is (1, 0, 0), so the gradient is 0.5 * (1, -1, 0). */
    s_close(g[0], 0.5, 1e-7, "g[0]");
    s_close(g[1], -0.5, 1e-7, "g[1]");
    s_close(g[2], 0.0, 1e-7, "g[2]");
}

/* Central differences of the loss (double) against the gradient, for
 * cross-entropy (kind 0) or MSE (kind 1). */
static void s_fd_check(int kind)
{
    enum { R = 4, C = 5 };
    float z[R * C], t[R * C], g[R * C];
    int32_t labels[R] = {4, 0, 2, 2};
    gb_rng_t rng;
    gb_rng_seed(&rng, 7, (uint64_t)kind);
    for (int i = 0; i < R * C; i++) {
        z[i] = (float)(6.0 * gb_rng_uniform(&rng) - 3.0);
        t[i] = (float)(2.0 * gb_rng_uniform(&rng) - 1.0);
    }
    const float scale = 1.0f / R;
    if (kind == 0)
        gb_loss_softmax_ce(z, labels, R, C, scale, g);
    else
        gb_loss_mse(z, t, R, C, scale, g);
    double worst = 0.0;
    for (int i = 0; i < R * C; i++) {
        const float orig = z[i], plus = orig + 1e-3f, minus = orig - 1e-3f;
        z[i] = plus;
        double lp = kind == 0 ? gb_loss_softmax_ce(z, labels, R, C, scale, NULL)
                              : gb_loss_mse(z, t, R, C, scale, NULL);
        z[i] = minus;
        double lm = kind == 0 ? gb_loss_softmax_ce(z, labels, R, C, scale, NULL)
                              : gb_loss_mse(z, t, R, C, scale, NULL);
        z[i] = orig;
        /* The gradient is of scale x the summed loss. */
        double n = scale * (lp - lm) / ((double)plus - minus);
        double ratio = fabs(g[i] - n) / fmax(fmax(fabs(g[i]), fabs(n)), 1e-2);
        if (!(ratio <= 1e-5))
            fail_msg("%s d/dz[%d]: analytic %.9g numeric %.9g", kind ? "mse" : "ce", i, g[i], n);
        worst = fmax(worst, ratio);
    }
    print_message("%s: worst ratio %.2g (tol 1e-5)\n", kind ? "mse" : "softmax-ce", worst);
}

static void test_ce_gradient_fd(void **state)
{
    (void)state;
    s_fd_check(0);
}

static void test_mse_known_values(void **state)
{
    (void)state;
    const float y[4] = {1.0f, 2.0f, 0.5f, 0.5f}, t[4] = {0.0f, 4.0f, 0.5f, -0.5f};
    float g[4];
    /* Row 0: (1 + 4) / 2 = 2.5; row 1: (0 + 1) / 2 = 0.5; the sum 3. */
    double loss = gb_loss_mse(y, t, 2, 2, 0.5f, g);
    s_close(loss, 3.0, 1e-15, "mse sum");
    /* scale = 1/rows: loss / rows is PyTorch's MSELoss() (the mean over all
     * 4 elements, (1 + 4 + 0 + 1) / 4 = 1.5), and the gradient is its
     * gradient 2 (y - t) / 4. */
    s_close(loss / 2, 1.5, 1e-15, "mse mean");
    const float want[4] = {0.5f, -1.0f, 0.0f, 0.5f};
    for (int i = 0; i < 4; i++)
        s_close(g[i], want[i], 1e-7, "mse gradient");
    /* dy may be NULL; zero error gives zero loss and gradient. */
    assert_true(gb_loss_mse(y, t, 2, 2, 0.5f, NULL) == loss);
    assert_true(gb_loss_mse(y, y, 2, 2, 0.5f, g) == 0.0);
    for (int i = 0; i < 4; i++)
        assert_true(g[i] == 0.0f);
    /* No rows. */
    g[0] = 9.0f;
    assert_true(gb_loss_mse(y, t, 0, 2, 0.5f, g) == 0.0);
    assert_true(g[0] == 9.0f);
}

static void test_mse_gradient_fd(void **state)
{
    (void)state;
    s_fd_check(1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ce_uniform_logits),
        cmocka_unit_test(test_ce_known_value),
        cmocka_unit_test(test_ce_scale_and_sum),
        cmocka_unit_test(test_ce_stable_at_large_logits),
        cmocka_unit_test(test_ce_gradient_fd),
        cmocka_unit_test(test_mse_known_values),
        cmocka_unit_test(test_mse_gradient_fd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
