/* conv2d's fast path (im2col over the batch + one sgemm, col2im backward)
 * against a direct 7-loop convolution written here in double, for several
 * shapes: channels 1 and 3, stride 1, 2 and 3, padding 0, 1 and 2, square
 * and non-square inputs, kernels 1 to 5 including one as large as the padded
 * input. Forward outputs, input gradients, weight and bias gradients, by
 * the AVX-512 stride-1 path where the CPU has it and by the plain one.
 *
 * Tolerance: each float result a of the engine against the double result n
 * of the same sum: |a - n| <= 1e-5 * sum |terms| (+ 1e-30), i.e. relative to
 * the sum of the absolute values of the products that make it up, the scale
 * at which float rounding happens. The worst seen is 1.3e-7. */
#include "testutil.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kernels.h"
#include "engine/layer.h"
#include "engine/model.h"
#include "util/rng.h"

typedef struct {
    int C, H, W; /* input */
    int OC, K;   /* output channels, kernel */
    int S, P;    /* stride, padding */
} s_conv_t;

static const s_conv_t s_shapes[] = {
    {1, 5, 5, 2, 3, 1, 0},   /* stride 1 pad 0: im2col copies whole rows */
    {3, 7, 7, 4, 3, 1, 1},   /* "same" 3x3 */
    {3, 7, 7, 4, 3, 2, 1},   /* stride 2 pad 1 */
    {1, 9, 9, 3, 3, 2, 2},   /* pad 2 */
    {3, 8, 6, 2, 5, 1, 2},   /* non-square, 5x5 pad 2 */
    {3, 6, 7, 2, 2, 2, 0},   /* even kernel, stride 2: last column unused */
    {1, 4, 4, 1, 1, 1, 0},   /* 1x1 */
    {3, 5, 5, 3, 4, 1, 1},   /* even kernel with padding */
    {1, 3, 3, 2, 5, 1, 1},   /* kernel = padded input: one output pixel */
    {3, 10, 9, 2, 3, 3, 2},  /* stride 3 pad 2 */
    {1, 28, 28, 4, 5, 1, 0}, /* LeNet's first layer: one sgemm per image (P >= 256) */
    {2, 20, 20, 3, 3, 1, 1}, /* padded, two channels, per image too */
    {16, 12, 12, 32, 5, 1, 0}, /* LeNet's second layer: chunks of 2 images */
    {2, 5, 18, 2, 3, 1, 2},  /* rows wider than one 16-float vector, padded */
    {1, 6, 6, 2, 7, 1, 3},   /* kernel wider than the input */
    {8, 20, 20, 2, 5, 1, 2}, /* per image, one image a chunk (80,000 floats unrolled) */
    {2, 6, 14, 5, 3, 1, 0},  /* direct kernel: rows of 8 + 4 outputs, 5 channels (4 + 1) */
};

static const int s_batch = 3;

static void s_uniform(float *p, size_t n, gb_rng_t *rng)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (float)(2.0 * gb_rng_uniform(rng) - 1.0);
}

static int s_out_dim(int in, int k, int s, int p)
{
    return (in + 2 * p - k) / s + 1;
}

/* Direct convolution in double: y and its |term| sums, and the backward:
 * dx, dW, db and their |term| sums, for dy given. All arrays are NCHW /
 * [OC][C][K][K]. */
typedef struct {
    double *y, *ya;   /* outputs and sum |terms| */
    double *dx, *dxa; /* input gradient */
    double *dw, *dwa; /* weight gradient */
    double *db, *dba; /* bias gradient */
} s_ref_t;

static void s_naive(const s_conv_t *c, int B, const float *x, const float *w, const float *b,
                    const float *dy, s_ref_t *r)
{
    const int OH = s_out_dim(c->H, c->K, c->S, c->P), OW = s_out_dim(c->W, c->K, c->S, c->P);
    const size_t nx = (size_t)B * c->C * c->H * c->W, nw = (size_t)c->OC * c->C * c->K * c->K;
    memset(r->dx, 0, nx * sizeof(double));
    memset(r->dxa, 0, nx * sizeof(double));
    memset(r->dw, 0, nw * sizeof(double));
    memset(r->dwa, 0, nw * sizeof(double));
    memset(r->db, 0, (size_t)c->OC * sizeof(double));
    memset(r->dba, 0, (size_t)c->OC * sizeof(double));
    for (int n = 0; n < B; n++)
        for (int oc = 0; oc < c->OC; oc++)
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++) {
                    size_t yi = (((size_t)n * c->OC + oc) * OH + oh) * OW + ow;
                    double s = b[oc], sa = fabs(b[oc]);
                    const double g = dy[yi];
                    r->db[oc] += g;
                    r->dba[oc] += fabs(g);
                    for (int ch = 0; ch < c->C; ch++)
                        for (int ki = 0; ki < c->K; ki++)
                            for (int kj = 0; kj < c->K; kj++) {
                                int ih = oh * c->S - c->P + ki, iw = ow * c->S - c->P + kj;
                                if (ih < 0 || ih >= c->H || iw < 0 || iw >= c->W)
                                    continue;
                                size_t xi = (((size_t)n * c->C + ch) * c->H + ih) * c->W + iw;
                                size_t wi = (((size_t)oc * c->C + ch) * c->K + ki) * c->K + kj;
                                s += (double)w[wi] * x[xi];
                                sa += fabs((double)w[wi] * x[xi]);
                                r->dx[xi] += g * w[wi];
                                r->dxa[xi] += fabs(g * w[wi]);
                                r->dw[wi] += g * x[xi];
                                r->dwa[wi] += fabs(g * x[xi]);
                            }
                    r->y[yi] = s;
                    r->ya[yi] = sa;
                }
}

/* Largest |a - n| / (sum |terms|) over n values; fails above tol. */
static double s_check(const char *what, const s_conv_t *c, const float *a, const double *n,
                      const double *abssum, size_t count, double tol)
{
    double worst = 0.0;
    for (size_t i = 0; i < count; i++) {
        double ratio = fabs(a[i] - n[i]) / (abssum[i] + 1e-30);
        if (!(ratio <= tol))
            fail_msg("conv C%d H%d W%d OC%d K%d S%d P%d: %s[%zu] fast %.9g naive %.9g "
                     "(|diff| / sum|terms| = %.3g > %.3g)",
                     c->C, c->H, c->W, c->OC, c->K, c->S, c->P, what, i, a[i], n[i], ratio, tol);
        worst = fmax(worst, ratio);
    }
    return worst;
}

static double *s_dalloc(size_t n)
{
    double *p = calloc(n ? n : 1, sizeof *p);
    assert_non_null(p);
    return p;
}

/* Runs one shape through the model on `threads` workers and compares. */
static double s_run_shape(const s_conv_t *c, int threads, uint64_t seed)
{
    char spec[128];
    snprintf(spec, sizeof spec, "input %d %d %d\nconv %d %d stride %d pad %d\n", c->C, c->H, c->W,
             c->OC, c->K, c->S, c->P);
    gb_error_t err = {0};
    gb_model_t *m = gb_model_new(spec, &err);
    if (!m)
        fail_msg("%s: %s", spec, err.msg);
    assert_int_equal(gb_model_plan(m, s_batch, threads, &err), 0);

    const int OH = s_out_dim(c->H, c->K, c->S, c->P), OW = s_out_dim(c->W, c->K, c->S, c->P);
    gb_shape_t os = gb_model_output_shape(m);
    assert_int_equal(os.rank, 3);
    assert_int_equal(os.dim[0], c->OC);
    assert_int_equal(os.dim[1], OH);
    assert_int_equal(os.dim[2], OW);
    const size_t nw = (size_t)c->OC * c->C * c->K * c->K;
    assert_int_equal(gb_model_param_count(m), nw + (size_t)c->OC);
    assert_true(gb_model_flops_per_sample(m) == 2.0 * (double)nw * OH * OW);

    const size_t nx = (size_t)s_batch * c->C * c->H * c->W;
    const size_t ny = (size_t)s_batch * c->OC * OH * OW;
    float *x = malloc(nx * sizeof *x), *y = malloc(ny * sizeof *y), *dy = malloc(ny * sizeof *dy);
    float *dx = malloc(nx * sizeof *dx);
    assert_true(x && y && dy && dx);
    gb_rng_t rng;
    gb_rng_seed(&rng, seed, 1);
    s_uniform(x, nx, &rng);
    s_uniform(dy, ny, &rng);
    float *p = gb_model_params(m);
    s_uniform(p, nw + (size_t)c->OC, &rng);

    s_ref_t r = {s_dalloc(ny), s_dalloc(ny), s_dalloc(nx), s_dalloc(nx),
                 s_dalloc(nw), s_dalloc(nw), s_dalloc((size_t)c->OC), s_dalloc((size_t)c->OC)};
    s_naive(c, s_batch, x, p, p + nw, dy, &r);

    assert_int_equal(gb_model_forward(m, x, s_batch, y, &err), 0);
    double worst = s_check("y", c, y, r.y, r.ya, ny, 1e-5);

    /* Backward adds into the gradients: start from a known non-zero G0. */
    float *g = gb_model_grads(m);
    for (size_t i = 0; i < nw + (size_t)c->OC; i++)
        g[i] = 0.5f;
    memset(dx, 0xff, nx * sizeof *dx); /* NaN: every element must be written */
    assert_int_equal(gb_model_backward(m, dy, s_batch, dx, true, &err), 0);
    worst = fmax(worst, s_check("dx", c, dx, r.dx, r.dxa, nx, 1e-5));
    for (size_t i = 0; i < nw; i++) {
        r.dw[i] += 0.5;
        r.dwa[i] += 0.5;
    }
    for (int i = 0; i < c->OC; i++) {
        r.db[i] += 0.5;
        r.dba[i] += 0.5;
    }
    worst = fmax(worst, s_check("dW", c, g, r.dw, r.dwa, nw, 1e-5));
    worst = fmax(worst, s_check("db", c, g + nw, r.db, r.dba, (size_t)c->OC, 1e-5));

    /* Without dx (how a first layer is run by train_step) the parameter
     * gradients are the same. */
    float *g1 = malloc((nw + (size_t)c->OC) * sizeof *g1);
    assert_non_null(g1);
    memcpy(g1, g, (nw + (size_t)c->OC) * sizeof *g1);
    for (size_t i = 0; i < nw + (size_t)c->OC; i++)
        g[i] = 0.5f;
    assert_int_equal(gb_model_backward(m, dy, s_batch, NULL, true, &err), 0);
    assert_memory_equal(g, g1, (nw + (size_t)c->OC) * sizeof *g1);

    /* A train step's forward keeps the unrolled input for its gradients
     * (im2col), a plain one may not (the direct kernel on AVX2): both give
     * the same bits. */
    float *y2 = malloc(ny * sizeof *y2);
    assert_non_null(y2);
    gb_target_t target = {.kind = GB_LOSS_MSE, .values = dy};
    double loss = 0.0;
    assert_int_equal(gb_model_train_step(m, x, &target, s_batch, &loss, y2, &err), 0);
    assert_memory_equal(y2, y, ny * sizeof *y);
    free(y2);

    free(g1);
    free(r.y);
    free(r.ya);
    free(r.dx);
    free(r.dxa);
    free(r.dw);
    free(r.dwa);
    free(r.db);
    free(r.dba);
    free(x);
    free(y);
    free(dy);
    free(dx);
    gb_model_destroy(&m);
    return worst;
}

static void test_fast_vs_naive(void **state)
{
    (void)state;
    double worst = 0.0;
    for (size_t i = 0; i < sizeof s_shapes / sizeof s_shapes[0]; i++)
        worst = fmax(worst, s_run_shape(&s_shapes[i], 1, 100 + i));
    print_message("worst |diff| / sum|terms|: %.3g (tol 1e-5)\n", worst);
}

/* Two workers split the batch of 3 as 1 + 2: im2col over a sub-batch, the
 * per-worker gradients summed afterwards. Same tolerances. */
static void test_fast_vs_naive_two_threads(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof s_shapes / sizeof s_shapes[0]; i++)
        s_run_shape(&s_shapes[i], 2, 200 + i);
}

/* The tests above run the best kernel path of this CPU; every lower one
 * (engine/kernels.h: AVX2 and FMA, then the plain loops and OpenBLAS) must
 * pass the same checks, at 1 and 2 workers. */
static void test_every_path_vs_naive(void **state)
{
    (void)state;
    const gb_kernels_t best = gb_kernels_best();
    for (int k = GB_KERNELS_PORTABLE; k <= (int)best; k++) {
        gb_kernels_force((gb_kernels_t)k);
        assert_int_equal(gb_kernels(), k);
        double worst = 0.0;
        for (size_t i = 0; i < sizeof s_shapes / sizeof s_shapes[0]; i++) {
            worst = fmax(worst, s_run_shape(&s_shapes[i], 1, 300 + i));
            worst = fmax(worst, s_run_shape(&s_shapes[i], 2, 400 + i));
        }
        print_message("%s: worst |diff| / sum|terms|: %.3g (tol 1e-5)\n",
                      gb_kernels_name((gb_kernels_t)k), worst);
    }
    gb_kernels_force(best);
}

/* A conv that is not the first layer gets its dy from the layer above and
 * passes dx down: stack two convs and compare the first's weight gradient
 * with the naive chain (conv2 backward, then conv1 backward). */
static void test_stacked_convs(void **state)
{
    (void)state;
    const s_conv_t c1 = {2, 8, 8, 3, 3, 1, 1}, c2 = {3, 8, 8, 2, 3, 2, 1};
    const int B = 2;
    gb_error_t err = {0};
    gb_model_t *m = gb_model_new("input 2 8 8\nconv 3 3 pad 1\nconv 2 3 stride 2 pad 1\n", &err);
    assert_non_null(m);
    assert_int_equal(gb_model_plan(m, B, 1, &err), 0);
    const size_t nw1 = 3 * 2 * 9, nw2 = 2 * 3 * 9;
    assert_int_equal(gb_model_param_count(m), nw1 + 3 + nw2 + 2);
    const size_t nx = (size_t)B * 2 * 64, nh = (size_t)B * 3 * 64, ny = (size_t)B * 2 * 16;
    float *x = malloc(nx * sizeof *x), *y = malloc(ny * sizeof *y), *dy = malloc(ny * sizeof *dy);
    float *h = malloc(nh * sizeof *h), *dh = malloc(nh * sizeof *dh), *dx = malloc(nx * 4);
    assert_true(x && y && dy && h && dh && dx);
    gb_rng_t rng;
    gb_rng_seed(&rng, 5, 1);
    s_uniform(x, nx, &rng);
    s_uniform(dy, ny, &rng);
    float *p = gb_model_params(m);
    s_uniform(p, gb_model_param_count(m), &rng);
    float *p2 = p + nw1 + 3;

    s_ref_t r1 = {s_dalloc(nh), s_dalloc(nh), s_dalloc(nx), s_dalloc(nx),
                  s_dalloc(nw1), s_dalloc(nw1), s_dalloc(3), s_dalloc(3)};
    s_ref_t r2 = {s_dalloc(ny), s_dalloc(ny), s_dalloc(nh), s_dalloc(nh),
                  s_dalloc(nw2), s_dalloc(nw2), s_dalloc(2), s_dalloc(2)};
    /* First layer forward (dy unused yet), then the second with the float
     * hidden layer, then the first layer's backward from the float dh. */
    float *zero = calloc(nh, sizeof *zero);
    assert_non_null(zero);
    s_naive(&c1, B, x, p, p + nw1, zero, &r1);
    for (size_t i = 0; i < nh; i++)
        h[i] = (float)r1.y[i];
    s_naive(&c2, B, h, p2, p2 + nw2, dy, &r2);
    for (size_t i = 0; i < nh; i++)
        dh[i] = (float)r2.dx[i];
    s_naive(&c1, B, x, p, p + nw1, dh, &r1);

    assert_int_equal(gb_model_forward(m, x, B, y, &err), 0);
    s_check("y", &c2, y, r2.y, r2.ya, ny, 1e-5);
    memset(gb_model_grads(m), 0, gb_model_param_count(m) * sizeof(float));
    assert_int_equal(gb_model_backward(m, dy, B, dx, true, &err), 0);
    const float *g = gb_model_grads(m);
    /* The chain passes through float rounding of h and dh in both: allow
     * 1e-4 of the |term| sums here. */
    s_check("dW2", &c2, g + nw1 + 3, r2.dw, r2.dwa, nw2, 1e-4);
    s_check("dW1", &c1, g, r1.dw, r1.dwa, nw1, 1e-4);
    s_check("db1", &c1, g + nw1, r1.db, r1.dba, 3, 1e-4);
    s_check("dx", &c1, dx, r1.dx, r1.dxa, nx, 1e-4);

    free(zero);
    s_ref_t *rs[2] = {&r1, &r2};
    for (int k = 0; k < 2; k++) {
        free(rs[k]->y);
        free(rs[k]->ya);
        free(rs[k]->dx);
        free(rs[k]->dxa);
        free(rs[k]->dw);
        free(rs[k]->dwa);
        free(rs[k]->db);
        free(rs[k]->dba);
    }
    free(x);
    free(y);
    free(dy);
    free(h);
    free(dh);
    free(dx);
    gb_model_destroy(&m);
}

/* Shapes the conv layer refuses when the model is built. */
static void test_conv_shape_errors(void **state)
{
    (void)state;
    static const struct {
        const char *spec;
        const char *msg;
    } cases[] = {
        {"input 1 4 4\nconv 2 5\n", "spec line 2: conv kernel 5 larger than the padded input 4x4"},
        {"input 1 4 4\nconv 2 7 pad 1\n", "larger than the padded input 6x6"},
        {"input 1 4 9\nconv 2 5\n", "larger than the padded input 4x9"},
        {"input 16\nconv 2 3\n", "spec line 2: conv needs an image input"},
        {"input 4 4\nconv 2 3\n", "got shape 4x4"},
        {"input 1 8 8\nflatten\nconv 2 3\n", "spec line 3: conv needs an image input"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gb_error_t err = {0};
        gb_model_t *m = gb_model_new(cases[i].spec, &err);
        assert_null(m);
        assert_int_equal(err.code, GB_ESHAPE);
        if (!strstr(err.msg, cases[i].msg))
            fail_msg("%s: message '%s' lacks '%s'", cases[i].spec, err.msg, cases[i].msg);
    }
    /* The largest kernel that fits is accepted: output 1x1. */
    gb_error_t err = {0};
    gb_model_t *m = gb_model_new("input 1 4 4\nconv 2 6 pad 1\n", &err);
    assert_non_null(m);
    gb_shape_t s = gb_model_output_shape(m);
    assert_int_equal(s.dim[1], 1);
    assert_int_equal(s.dim[2], 1);
    gb_model_destroy(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fast_vs_naive),
        cmocka_unit_test(test_fast_vs_naive_two_threads),
        cmocka_unit_test(test_every_path_vs_naive),
        cmocka_unit_test(test_stacked_convs),
        cmocka_unit_test(test_conv_shape_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
