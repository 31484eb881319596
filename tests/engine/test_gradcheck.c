/* Finite-difference gradient checks of every layer and loss, through the
 * public model API (Caffe's GradientChecker, ggml's test-backend-ops).
 *
 * Layers: a small model is built from spec text, initialised from a seed and
 * run forward on x; with a fixed random r as the output gradient the model's
 * backward gives dL/dx and dL/dparams of L = sum(r * y). Each input and each
 * parameter is then moved by +-h (in float), the model run forward again and
 * L accumulated in double; the central difference (L+ - L-) / (x+ - x-), with
 * the denominator taken from the float values actually used, must agree with
 * the analytic value:
 *
 *     |analytic - numeric| <= tol * max(|analytic|, |numeric|, 1)
 *
 * (Caffe's rule; Caffe uses tol = 1e-2). Each case states its h and tol,
 * all tighter than Caffe's: single layers and losses h = 1e-2, tol 5e-4;
 * compositions with kinks h = 1e-3, tol 1e-3; every case prints its worst
 * ratio (1e-7 .. 7e-5 when written).
 *
 * Kinks: a lone relu gets inputs at least 0.1 from 0 and a lone max-pool
 * inputs at least 0.05 apart, with h = 1e-2, so no step crosses a kink.
 * Composite models are checked on their actual activations (each prefix of
 * the model is run): every relu input, and the gap between the two largest
 * values of every max-pool window, is at least 0.01, ten times what one step
 * of h = 1e-3 can move them; a deterministic search over seeds finds such a
 * point.
 *
 * Losses: gb_model_train_step's parameter gradients against central
 * differences of the mean loss it reports. Whole models (lenet, mlp): one
 * random direction d over the flat parameter vector, grad . d against
 * (L(p + h d) - L(p - h d)) / 2h, at a point and direction where no relu
 * changes sign and no max-pool window changes its argmax along the step
 * (lenet: h = 1e-5, tol 1e-2, worst of 9 such seeds 2.5e-3; mlp: h = 1e-4,
 * tol 5e-3, worst 8.3e-4). */
#include "testutil.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/model.h"
#include "util/rng.h"

/* ------------------------------------------------------------------ helpers */

static gb_model_t *s_model(const char *spec, int batch, uint64_t seed)
{
    return gb_test_model(spec, batch, 1, seed);
}

static void s_uniform(float *p, size_t n, float lo, float hi, gb_rng_t *rng)
{
    for (size_t i = 0; i < n; i++)
        p[i] = lo + (hi - lo) * (float)gb_rng_uniform(rng);
}

/* Values with |v| in [0.1, 1.1] and a random sign: no relu kink within 0.1. */
static void s_away_from_zero(float *p, size_t n, gb_rng_t *rng)
{
    for (size_t i = 0; i < n; i++) {
        float mag = 0.1f + (float)gb_rng_uniform(rng);
        p[i] = gb_rng_below(rng, 2) ? mag : -mag;
    }
}

/* A random permutation of -n/2*gap .. n/2*gap in steps of gap: all values
 * distinct by at least gap, so max-pool has no near-ties. */
static void s_distinct(float *p, size_t n, float gap, gb_rng_t *rng)
{
    int32_t *idx = malloc(n * sizeof *idx);
    assert_non_null(idx);
    for (size_t i = 0; i < n; i++)
        idx[i] = (int32_t)i;
    gb_rng_shuffle(rng, idx, (int64_t)n);
    for (size_t i = 0; i < n; i++)
        p[i] = ((float)idx[i] - (float)n / 2.0f) * gap;
    free(idx);
}

/* spec on one line ("input 6 / dense 4") for messages; a static buffer. */
static const char *s_oneline(const char *spec)
{
    static char buf[256];
    size_t j = 0;
    for (size_t i = 0; spec[i] && j + 4 < sizeof buf; i++) {
        if (spec[i] != '\n') {
            buf[j++] = spec[i];
        } else if (spec[i + 1]) {
            memcpy(buf + j, " / ", 3);
            j += 3;
        }
    }
    buf[j] = '\0';
    return buf;
}

/* L = sum(r * y) over the whole batch, accumulated in double. */
static double s_objective(gb_model_t *m, const float *x, int batch, const float *r, float *y)
{
    gb_error_t err = {0};
    assert_int_equal(gb_model_forward(m, x, batch, y, &err), 0);
    size_t n = (size_t)batch * gb_test_model_out_size(m);
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += (double)r[i] * (double)y[i];
    return sum;
}

typedef struct {
    double h;   /* step */
    double tol; /* Caffe-style relative tolerance */
} s_fd_t;

/* Compares one analytic derivative with a central difference; returns the
 * error ratio |a - n| / max(|a|, |n|, 1) and fails the test above tol. */
static double s_compare(const char *spec, const char *what, size_t i, double a, double n,
                        double tol)
{
    double scale = fmax(fmax(fabs(a), fabs(n)), 1.0);
    double ratio = fabs(a - n) / scale;
    if (!(ratio <= tol))
        fail_msg("%s: d/d%s[%zu]: analytic %.9g numeric %.9g (ratio %.3g > tol %.3g)",
                 s_oneline(spec), what, i, a, n, ratio, tol);
    return ratio;
}

/* Central difference of L with respect to *v (a float inside x or the
 * model's parameters). */
static double s_central(gb_model_t *m, const float *x, int batch, const float *r, float *y,
                        float *v, double h)
{
    const float orig = *v;
    const float plus = (float)(orig + h), minus = (float)(orig - h);
    *v = plus;
    double lp = s_objective(m, x, batch, r, y);
    *v = minus;
    double lm = s_objective(m, x, batch, r, y);
    *v = orig;
    return (lp - lm) / ((double)plus - (double)minus);
}

/* Set while checking a model whose input is token ids (embedding first):
 * ids cannot be nudged, so only the parameters are checked. */
static bool s_tokens;

/* Full check of one model on input x (batch samples): every input and every
 * parameter. If train, dropout is active with a fixed seed (masks depend on
 * the seed and the sample index only, so every forward sees the same mask).
 * Returns the worst ratio seen. */
static double s_check_model(gb_model_t *m, const char *spec, float *x, int batch, s_fd_t fd,
                            bool train, uint64_t seed)
{
    const size_t in = gb_test_model_in_size(m) * (size_t)batch,
                 out = gb_test_model_out_size(m) * (size_t)batch;
    const size_t np = gb_model_param_count(m);
    float *r = malloc(out * sizeof *r), *y = malloc(out * sizeof *y);
    float *dx = malloc(in * sizeof *dx), *grads = malloc((np ? np : 1) * sizeof *grads);
    assert_true(r && y && dx && grads);
    gb_rng_t rng;
    gb_rng_seed(&rng, seed, 99);
    s_uniform(r, out, -1.0f, 1.0f, &rng);
    gb_model_set_train(m, train, seed);

    gb_error_t err = {0};
    s_objective(m, x, batch, r, y);
    memset(gb_model_grads(m), 0, np * sizeof(float));
    assert_int_equal(gb_model_backward(m, r, batch, dx, true, &err), 0);
    memcpy(grads, gb_model_grads(m), np * sizeof(float));

    double worst = 0.0;
    for (size_t i = 0; i < in && !s_tokens; i++) {
        double n = s_central(m, x, batch, r, y, &x[i], fd.h);
        worst = fmax(worst, s_compare(spec, "x", i, dx[i], n, fd.tol));
    }
    /* Token ids carry no gradient: the input gradient is exactly zero. */
    for (size_t i = 0; i < in && s_tokens; i++)
        assert_true(dx[i] == 0.0f);
    float *p = gb_model_params(m);
    for (size_t j = 0; j < np; j++) {
        double n = s_central(m, x, batch, r, y, &p[j], fd.h);
        worst = fmax(worst, s_compare(spec, "param", j, grads[j], n, fd.tol));
    }
    /* A check that compares nothing proves nothing. */
    assert_true(in > 0);
    free(r);
    free(y);
    free(dx);
    free(grads);
    return worst;
}

typedef enum { S_X_UNIFORM, S_X_AWAY_FROM_ZERO, S_X_DISTINCT } s_xkind_t;

/* Builds spec, draws x of the given kind and runs the full check. */
static double s_check_spec(const char *spec, int batch, s_xkind_t kind, float lo, float hi,
                           s_fd_t fd, bool train, uint64_t seed)
{
    gb_model_t *m = s_model(spec, batch, seed);
    size_t n = gb_test_model_in_size(m) * (size_t)batch;
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    gb_rng_t rng;
    gb_rng_seed(&rng, seed, 7);
    if (kind == S_X_UNIFORM)
        s_uniform(x, n, lo, hi, &rng);
    else if (kind == S_X_AWAY_FROM_ZERO)
        s_away_from_zero(x, n, &rng);
    else
        s_distinct(x, n, 0.05f, &rng);
    double worst = s_check_model(m, spec, x, batch, fd, train, seed);
    print_message("worst ratio %.2g (tol %.2g): %s\n", worst, fd.tol, s_oneline(spec));
    free(x);
    gb_model_destroy(&m);
    return worst;
}

/* Single layers: h = 1e-2 on inputs of order 1, tol 5e-4 (the worst ratio
 * seen is 2.2e-5, tanh's truncation error). */
static const s_fd_t s_layer_fd = {1e-2, 5e-4};

/* -------------------------------------------------------------- the layers */

static void test_dense(void **state)
{
    (void)state;
    s_check_spec("input 6\ndense 4\n", 3, S_X_UNIFORM, -1, 1, s_layer_fd, false, 1);
    /* Dense on an image input flattens it implicitly. */
    s_check_spec("input 2 3 3\ndense 5\n", 2, S_X_UNIFORM, -1, 1, s_layer_fd, false, 2);
    /* One output, one input, batch 1: degenerate sgemm shapes. */
    s_check_spec("input 1\ndense 1\n", 1, S_X_UNIFORM, -1, 1, s_layer_fd, false, 3);
}

static void test_conv2d_variants(void **state)
{
    (void)state;
    static const char *const specs[] = {
        "input 2 7 7\nconv 3 3\n",                  /* stride 1, pad 0 (row-copy path) */
        "input 2 7 7\nconv 3 3 stride 2 pad 1\n",   /* stride 2, pad 1 */
        "input 2 7 7\nconv 2 5 pad 2\n",            /* pad 2, "same" output */
        "input 2 7 7\nconv 3 2 stride 2\n",         /* last row/column unused: dx = 0 there */
        "input 2 7 7\nconv 2 3 stride 3 pad 2\n",   /* stride 3, pad 2 */
        "input 2 7 7\nconv 4 1\n",                  /* 1x1 kernel */
        "input 1 6 5\nconv 2 3 stride 2 pad 1\n",   /* one channel, non-square */
        "input 3 4 4\nconv 2 4 pad 1\n",            /* kernel as large as the input */
    };
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++)
        s_check_spec(specs[i], 2, S_X_UNIFORM, -1, 1, s_layer_fd, false, 10 + i);
}

static void test_maxpool2d(void **state)
{
    (void)state;
    /* Distinct inputs 0.05 apart and h = 1e-2: the argmax never changes. */
    s_check_spec("input 2 6 6\nmaxpool 2\n", 2, S_X_DISTINCT, 0, 0, s_layer_fd, false, 20);
    /* Overlapping windows: one input can be the max of two outputs. */
    s_check_spec("input 2 7 7\nmaxpool 3 stride 2\n", 2, S_X_DISTINCT, 0, 0, s_layer_fd, false,
                 21);
    /* Gaps between windows, odd size: some inputs feed nothing. */
    s_check_spec("input 1 7 8\nmaxpool 2 stride 3\n", 2, S_X_DISTINCT, 0, 0, s_layer_fd, false,
                 22);
}

static void test_avgpool2d(void **state)
{
    (void)state;
    s_check_spec("input 2 6 6\navgpool 2\n", 2, S_X_UNIFORM, -1, 1, s_layer_fd, false, 30);
    s_check_spec("input 2 7 7\navgpool 3 stride 2\n", 2, S_X_UNIFORM, -1, 1, s_layer_fd, false,
                 31);
    s_check_spec("input 1 7 8\navgpool 2 stride 3\n", 2, S_X_UNIFORM, -1, 1, s_layer_fd, false,
                 32);
}

static void test_flatten(void **state)
{
    (void)state;
    s_check_spec("input 2 3 4\nflatten\n", 3, S_X_UNIFORM, -1, 1, s_layer_fd, false, 40);
}

static void test_relu(void **state)
{
    (void)state;
    /* |x| >= 0.1 and h = 1e-2: no step crosses 0. */
    s_check_spec("input 2 4 4\nrelu\n", 2, S_X_AWAY_FROM_ZERO, 0, 0, s_layer_fd, false, 50);
    s_check_spec("input 17\nrelu\n", 3, S_X_AWAY_FROM_ZERO, 0, 0, s_layer_fd, false, 51);
}

static void test_tanh(void **state)
{
    (void)state;
    /* Inputs up to |x| = 3: the flat tails are checked too. Rank-2 input. */
    s_check_spec("input 3 5\ntanh\n", 2, S_X_UNIFORM, -3, 3, s_layer_fd, false, 60);
}

static void test_sigmoid(void **state)
{
    (void)state;
    s_check_spec("input 12\nsigmoid\n", 2, S_X_UNIFORM, -5, 5, s_layer_fd, false, 70);
}

/* Recurrent layers: T >= 3, inputs up to |x| = 1.5 so the gates leave their
 * linear range; last-state and whole-sequence outputs, stacked layers (the
 * upper layer sees a non-trivial input sequence), and a stack under a dense
 * layer. The cell kernels' own check with a non-zero initial state is in
 * test_rnn.c. */
static void test_lstm(void **state)
{
    (void)state;
    s_check_spec("input 4 3\nlstm 5\n", 3, S_X_UNIFORM, -1.5f, 1.5f, s_layer_fd, false, 80);
    s_check_spec("input 5 2\nlstm 3 sequence\n", 2, S_X_UNIFORM, -1.5f, 1.5f, s_layer_fd, false,
                 81);
    s_check_spec("input 3 2\nlstm 4 sequence\nlstm 3\n", 2, S_X_UNIFORM, -1.5f, 1.5f, s_layer_fd,
                 false, 82);
    s_check_spec("input 4 3\nlstm 4 sequence\ndense 2\n", 2, S_X_UNIFORM, -1.5f, 1.5f,
                 s_layer_fd, false, 83);
}

static void test_gru(void **state)
{
    (void)state;
    s_check_spec("input 4 3\ngru 5\n", 3, S_X_UNIFORM, -1.5f, 1.5f, s_layer_fd, false, 90);
    s_check_spec("input 5 2\ngru 3 sequence\n", 2, S_X_UNIFORM, -1.5f, 1.5f, s_layer_fd, false,
                 91);
    s_check_spec("input 3 2\ngru 4 sequence\nlstm 3\n", 2, S_X_UNIFORM, -1.5f, 1.5f, s_layer_fd,
                 false, 92);
}

static void test_embedding(void **state)
{
    (void)state;
    static const char spec[] = "input 5\nembedding 7 3\nlstm 4\n";
    const int batch = 3, T = 5;
    gb_model_t *m = s_model(spec, batch, 95);
    float x[15];
    for (int i = 0; i < batch * T; i++)
        x[i] = (float)((i * 5 + 2) % 7); /* repeats: one row gathers several steps */
    s_tokens = true;
    double worst = s_check_model(m, spec, x, batch, s_layer_fd, false, 95);
    s_tokens = false;
    print_message("worst ratio %.2g (tol %.2g): %s\n", worst, s_layer_fd.tol, s_oneline(spec));
    /* A bad id is refused before any pass, naming the sample and step. */
    x[7] = 7.0f;
    float y[12];
    gb_error_t err = {0};
    assert_int_equal(gb_model_forward(m, x, batch, y, &err), GB_ERANGE);
    assert_non_null(strstr(err.msg, "sample 1 step 2: token id 7 is not an integer in 0..6"));
    x[7] = 2.5f;
    assert_int_equal(gb_model_forward(m, x, batch, y, &err), GB_ERANGE);
    x[7] = NAN;
    assert_int_equal(gb_model_forward(m, x, batch, y, &err), GB_ERANGE);
    gb_model_destroy(&m);
}

static void test_dropout_train(void **state)
{
    (void)state;
    /* Training mode with a fixed seed: the mask is a constant of the
     * function, so the finite differences see it too. */
    s_check_spec("input 30\ndropout 0.4\n", 3, S_X_UNIFORM, -1, 1, s_layer_fd, true, 80);
    /* Parameter gradients through a dropout between two dense layers. */
    s_check_spec("input 6\ndense 8\ndropout 0.5\ndense 3\n", 2, S_X_UNIFORM, -1, 1, s_layer_fd,
                 true, 81);
    /* Evaluation mode: identity. */
    s_check_spec("input 30\ndropout 0.4\n", 2, S_X_UNIFORM, -1, 1, s_layer_fd, false, 82);
}

/* The mask itself: each output is 0 or x / (1 - p), about p of them are 0,
 * and dx is dy times the same factor. */
static void test_dropout_mask(void **state)
{
    (void)state;
    const int batch = 4, n = 2500;
    const float p = 0.3f;
    gb_model_t *m = s_model("input 2500\ndropout 0.3\n", batch, 1);
    float *x = malloc((size_t)batch * n * sizeof *x), *y = malloc((size_t)batch * n * sizeof *y);
    float *dx = malloc((size_t)batch * n * sizeof *dx);
    assert_true(x && y && dx);
    for (int i = 0; i < batch * n; i++)
        x[i] = 1.0f + (float)(i % 7);
    gb_error_t err = {0};
    gb_model_set_train(m, true, 1234);
    assert_int_equal(gb_model_forward(m, x, batch, y, &err), 0);
    int zeros = 0;
    const float keep = 1.0f / (1.0f - p);
    for (int i = 0; i < batch * n; i++) {
        if (y[i] == 0.0f)
            zeros++;
        else
            assert_true(y[i] == x[i] * keep);
    }
    /* Binomial(10000, 0.3): sd 46; allow 6 sd. */
    assert_in_range(zeros, 3000 - 275, 3000 + 275);
    /* Samples get different masks. */
    assert_true(memcmp(y, y + n, (size_t)n * sizeof *y) != 0);
    /* Backward: dx = dy * mask, here with dy = x, so dx == y. */
    assert_int_equal(gb_model_backward(m, x, batch, dx, true, &err), 0);
    assert_memory_equal(dx, y, (size_t)batch * n * sizeof *y);
    /* Evaluation mode is the identity. */
    gb_model_set_train(m, false, 1234);
    assert_int_equal(gb_model_forward(m, x, batch, y, &err), 0);
    assert_memory_equal(x, y, (size_t)batch * n * sizeof *y);
    free(x);
    free(y);
    free(dx);
    gb_model_destroy(&m);
}

/* ----------------------------------------------------------- compositions */

/* Splits spec into lines; returns how many (at most max). */
static int s_lines(const char *spec, char lines[][64], int max)
{
    int n = 0;
    const char *p = spec;
    while (*p && n < max) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        assert_true(len < 64);
        memcpy(lines[n], p, len);
        lines[n][len] = '\0';
        n++;
        p += len + (nl ? 1 : 0);
    }
    return n;
}

/* Runs the prefix of spec made of its lines 0..j-1 with the first
 * parameters of `params` (a prefix of a model has a prefix of its flat
 * parameter vector). Returns the malloc'd outputs; *shape gets their shape. */
static float *s_prefix_forward(char lines[][64], int j, const float *params, const float *x,
                               int batch, gb_shape_t *shape)
{
    char prefix[2048] = "";
    size_t used = 0;
    for (int k = 0; k < j; k++)
        used += (size_t)snprintf(prefix + used, sizeof prefix - used, "%s\n", lines[k]);
    assert_true(used < sizeof prefix);
    gb_error_t err = {0};
    gb_model_t *m = gb_model_new(prefix, &err);
    assert_non_null(m);
    memcpy(gb_model_params(m), params, gb_model_param_count(m) * sizeof(float));
    assert_int_equal(gb_model_plan(m, batch, 1, &err), 0);
    *shape = gb_model_output_shape(m);
    size_t n = gb_shape_size(shape) * (size_t)batch;
    float *v = malloc(n * sizeof *v);
    assert_non_null(v);
    assert_int_equal(gb_model_forward(m, x, batch, v, &err), 0);
    gb_model_destroy(&m);
    return v;
}

/* Kernel and stride of a "maxpool K [stride S]" line. */
static void s_pool_args(const char *line, int *K, int *S)
{
    int got = sscanf(line, "maxpool %d stride %d", K, S);
    assert_true(got >= 1);
    if (got == 1)
        *S = *K;
}

/* For every window of a max-pool over v (batch*C planes of H x W): the
 * index of the first maximum (-1 when the window is all exactly 0, which
 * after a relu is no kink: small steps leave it 0) and the gap between its
 * two largest values. Calls fn(arg, window, argmax, gap). */
typedef void (*s_window_fn)(void *arg, size_t window, int argmax, double gap);
static void s_pool_windows(const float *v, int planes, gb_shape_t s, int K, int S, s_window_fn fn,
                           void *arg)
{
    assert_int_equal(s.rank, 3);
    const int H = s.dim[1], W = s.dim[2];
    size_t window = 0;
    for (int b = 0; b < planes * s.dim[0]; b++) {
        const float *pl = v + (size_t)b * H * W;
        for (int oh = 0; oh + K <= H; oh += S)
            for (int ow = 0; ow + K <= W; ow += S) {
                float v1 = -INFINITY, v2 = -INFINITY;
                int best = -1;
                for (int a = 0; a < K; a++)
                    for (int c = 0; c < K; c++) {
                        float t = pl[(oh + a) * W + ow + c];
                        if (t > v1) {
                            v2 = v1;
                            v1 = t;
                            best = a * K + c;
                        } else if (t > v2) {
                            v2 = t;
                        }
                    }
                if (v1 == 0.0f && v2 == 0.0f)
                    fn(arg, window++, -1, INFINITY);
                else
                    fn(arg, window++, best, (double)v1 - v2);
            }
    }
}

static void s_min_gap(void *arg, size_t window, int argmax, double gap)
{
    (void)window;
    (void)argmax;
    double *margin = arg;
    *margin = fmin(*margin, gap);
}

/* Smallest kink distance in the model on x: over every relu, the smallest
 * |input|; over every maxpool, the smallest gap between the two largest
 * values of a window. Runs each prefix of the model with the matching prefix
 * of its flat parameters. (Prefixes run in evaluation mode: no relu or
 * max-pool may follow a dropout in a model checked this way.) */
static double s_kink_margin(gb_model_t *full, const char *spec, const float *x, int batch)
{
    char lines[32][64];
    int n = s_lines(spec, lines, 32);
    double margin = INFINITY;
    for (int j = 2; j < n; j++) {
        bool relu = strncmp(lines[j], "relu", 4) == 0;
        bool pool = strncmp(lines[j], "maxpool", 7) == 0;
        if (!relu && !pool)
            continue;
        gb_shape_t s;
        float *v = s_prefix_forward(lines, j, gb_model_params(full), x, batch, &s);
        if (relu) {
            for (size_t i = 0; i < gb_shape_size(&s) * (size_t)batch; i++)
                margin = fmin(margin, fabs(v[i]));
        } else {
            int K, S;
            s_pool_args(lines[j], &K, &S);
            s_pool_windows(v, batch, s, K, S, s_min_gap, &margin);
        }
        free(v);
    }
    return margin;
}

typedef struct {
    int *marks;    /* per window argmax at the reference point */
    int record;    /* 1: store into marks; 0: compare */
    long changes;  /* windows whose argmax differs */
} s_argmax_cmp_t;

static void s_argmax_cmp(void *arg, size_t window, int argmax, double gap)
{
    (void)gap;
    s_argmax_cmp_t *c = arg;
    if (c->record)
        c->marks[window] = argmax;
    else if (c->marks[window] != argmax)
        c->changes++;
}

/* Number of kinks crossed between the parameters p0 - h d and p0 + h d:
 * relu inputs whose sign differs from the one at p0, and max-pool windows
 * whose argmax differs, at either end. */
static long s_kinks_crossed(const char *spec, const float *p0, const float *d, size_t np,
                            double h, const float *x, int batch)
{
    char lines[32][64];
    int n = s_lines(spec, lines, 32);
    float *p = malloc(np * sizeof *p);
    assert_non_null(p);
    long changes = 0;
    for (int j = 2; j < n; j++) {
        bool relu = strncmp(lines[j], "relu", 4) == 0;
        bool pool = strncmp(lines[j], "maxpool", 7) == 0;
        if (!relu && !pool)
            continue;
        gb_shape_t s;
        float *v0 = s_prefix_forward(lines, j, p0, x, batch, &s);
        size_t count = gb_shape_size(&s) * (size_t)batch;
        int K = 0, S = 0;
        s_argmax_cmp_t cmp = {.marks = malloc(count * sizeof(int)), .record = 1};
        assert_non_null(cmp.marks);
        if (pool) {
            s_pool_args(lines[j], &K, &S);
            s_pool_windows(v0, batch, s, K, S, s_argmax_cmp, &cmp);
            cmp.record = 0;
        }
        for (int side = -1; side <= 1; side += 2) {
            for (size_t k = 0; k < np; k++)
                p[k] = (float)(p0[k] + side * h * d[k]);
            float *v = s_prefix_forward(lines, j, p, x, batch, &s);
            if (relu) {
                for (size_t i = 0; i < count; i++)
                    changes += (v[i] > 0.0f) != (v0[i] > 0.0f);
            } else {
                s_pool_windows(v, batch, s, K, S, s_argmax_cmp, &cmp);
            }
            free(v);
        }
        changes += cmp.changes;
        free(cmp.marks);
        free(v0);
    }
    free(p);
    return changes;
}

/* Checks a composite model: tries seeds from seed0 until every kink is at
 * least `margin` away (a deterministic search over at most 200 seeds), then
 * runs the full check. */
static void s_check_composite(const char *spec, int batch, uint64_t seed0, s_fd_t fd, bool train,
                              double margin)
{
    for (uint64_t seed = seed0; seed < seed0 + 200; seed++) {
        gb_model_t *m = s_model(spec, batch, seed);
        size_t n = gb_test_model_in_size(m) * (size_t)batch;
        float *x = malloc(n * sizeof *x);
        assert_non_null(x);
        gb_rng_t rng;
        gb_rng_seed(&rng, seed, 7);
        s_uniform(x, n, -1.0f, 1.0f, &rng);
        if (s_kink_margin(m, spec, x, batch) >= margin) {
            double worst = s_check_model(m, spec, x, batch, fd, train, seed);
            print_message("worst ratio %.2g (tol %.2g), seed %llu: %s\n", worst, fd.tol,
                          (unsigned long long)seed, s_oneline(spec));
            free(x);
            gb_model_destroy(&m);
            return;
        }
        free(x);
        gb_model_destroy(&m);
    }
    fail_msg("%s: no seed in 200 keeps every kink %g away", s_oneline(spec), margin);
}

static void test_composite_relu_maxpool(void **state)
{
    (void)state;
    /* Inputs in [-1, 1] and weights below 1: one step of h = 1e-3 moves a
     * relu input or a max-pool candidate by at most 1e-3, so a margin of
     * 0.01 leaves a factor 10. */
    const s_fd_t fd = {1e-3, 1e-3};
    s_check_composite("input 2 7 7\nconv 3 3 stride 2 pad 1\nrelu\nmaxpool 2\nflatten\n"
                      "dense 4\n",
                      2, 100, fd, false, 0.01);
    s_check_composite("input 6\ndense 5\nrelu\ndense 3\n", 3, 200, fd, false, 0.01);
    s_check_composite("input 1 8 8\nconv 2 3\nrelu\nconv 3 2\nmaxpool 3 stride 2\nrelu\n"
                      "flatten\ndense 2\n",
                      2, 300, fd, false, 0.01);
}

static void test_composite_smooth(void **state)
{
    (void)state;
    const s_fd_t fd = {1e-2, 5e-4};
    s_check_composite("input 1 8 8\nconv 2 3\ntanh\navgpool 2 stride 1\nconv 2 2 stride 2 pad 1\n"
                      "sigmoid\nflatten\ndense 3\ndropout 0.3\ndense 2\n",
                      2, 400, fd, true, 0.0);
}

/* ------------------------------------------------------------------ losses */

/* Mean loss of a train step at the current parameters. */
static double s_step_loss(gb_model_t *m, const float *x, const gb_target_t *t, int batch)
{
    gb_error_t err = {0};
    double loss = NAN;
    assert_int_equal(gb_model_train_step(m, x, t, batch, &loss, NULL, &err), 0);
    return loss;
}

/* gb_model_train_step's gradients against central differences of its mean
 * loss over every parameter. */
static void s_check_loss(const char *spec, const char *name, int batch, const gb_target_t *t,
                         uint64_t seed, s_fd_t fd)
{
    gb_model_t *m = s_model(spec, batch, seed);
    size_t n = gb_test_model_in_size(m) * (size_t)batch, np = gb_model_param_count(m);
    float *x = malloc(n * sizeof *x), *g = malloc(np * sizeof *g);
    assert_true(x && g);
    gb_rng_t rng;
    gb_rng_seed(&rng, seed, 7);
    s_uniform(x, n, -2.0f, 2.0f, &rng);
    /* Larger weights than the default init so the loss is not flat. */
    s_uniform(gb_model_params(m), np, -1.0f, 1.0f, &rng);
    s_step_loss(m, x, t, batch);
    memcpy(g, gb_model_grads(m), np * sizeof *g);
    float *p = gb_model_params(m);
    double worst = 0.0;
    for (size_t j = 0; j < np; j++) {
        const float orig = p[j];
        const float plus = (float)(orig + fd.h), minus = (float)(orig - fd.h);
        p[j] = plus;
        double lp = s_step_loss(m, x, t, batch);
        p[j] = minus;
        double lm = s_step_loss(m, x, t, batch);
        p[j] = orig;
        double r = s_compare(name, "param", j, g[j], (lp - lm) / ((double)plus - minus), fd.tol);
        worst = fmax(worst, r);
    }
    print_message("worst ratio %.2g (tol %.2g): %s\n", worst, fd.tol, name);
    free(x);
    free(g);
    gb_model_destroy(&m);
}

static void test_loss_softmax_ce(void **state)
{
    (void)state;
    const int32_t labels[4] = {0, 3, 1, 3};
    gb_target_t t = {.kind = GB_LOSS_SOFTMAX_CE, .labels = labels};
    s_check_loss("input 5\ndense 4\n", "softmax-ce", 4, &t, 1, s_layer_fd);
    /* Through a hidden smooth layer. */
    s_check_loss("input 5\ndense 6\ntanh\ndense 4\n", "softmax-ce deep", 4, &t, 2, s_layer_fd);
}

static void test_loss_mse(void **state)
{
    (void)state;
    const float values[3 * 3] = {0.5f, -1.0f, 2.0f, 0.0f, 0.25f, -0.75f, 1.5f, 1.0f, -2.0f};
    gb_target_t t = {.kind = GB_LOSS_MSE, .values = values};
    s_check_loss("input 5\ndense 3\n", "mse", 3, &t, 3, s_layer_fd);
    s_check_loss("input 5\ndense 3\nsigmoid\n", "mse sigmoid", 3, &t, 4, s_layer_fd);
}

/* ------------------------------------------------------------ whole models */

/* Whole-model directional check: grad . d against
 * (L(p + h d) - L(p - h d)) / 2h for one random direction d in U(-1, 1)^n
 * over all parameters, L = sum(r * y) on a batch of 2 images in U(0, 1).
 *
 * lenet has ~22000 relu and max-pool kinks per batch of 2; along d at
 * h = 1e-4 about 30 of them are crossed, which moves the difference quotient
 * by up to 25% (the analytic gradient itself agrees with a double-precision
 * reference to 8 digits). So the check first looks, seed by seed, for a
 * parameter point and direction where no relu changes sign and no max-pool
 * window changes its argmax between p - h d, p and p + h d (found within
 * a few seeds at h = 1e-5), and then requires agreement to tol. */
static void s_directional(const char *preset, double h, double tol, uint64_t seed0)
{
    const int batch = 2;
    const char *spec = gb_spec_preset(preset);
    assert_non_null(spec);
    for (uint64_t seed = seed0; seed < seed0 + 50; seed++) {
        gb_model_t *m = s_model(preset, batch, seed);
        size_t in = gb_test_model_in_size(m) * batch, out = gb_test_model_out_size(m) * batch;
        size_t np = gb_model_param_count(m);
        float *x = malloc(in * sizeof *x), *r = malloc(out * sizeof *r);
        float *y = malloc(out * sizeof *y), *d = malloc(np * sizeof *d);
        float *p0 = malloc(np * sizeof *p0);
        assert_true(x && r && y && d && p0);
        gb_rng_t rng;
        gb_rng_seed(&rng, seed, 7);
        s_uniform(x, in, 0.0f, 1.0f, &rng);
        s_uniform(r, out, -1.0f, 1.0f, &rng);
        s_uniform(d, np, -1.0f, 1.0f, &rng);
        float *p = gb_model_params(m);
        memcpy(p0, p, np * sizeof *p);
        bool found = s_kinks_crossed(spec, p0, d, np, h, x, batch) == 0;
        if (found) {
            gb_error_t err = {0};
            s_objective(m, x, batch, r, y);
            memset(gb_model_grads(m), 0, np * sizeof(float));
            assert_int_equal(gb_model_backward(m, r, batch, NULL, true, &err), 0);
            const float *g = gb_model_grads(m);
            double analytic = 0.0, gnorm = 0.0;
            for (size_t j = 0; j < np; j++) {
                analytic += (double)g[j] * d[j];
                gnorm += (double)g[j] * g[j];
            }
            /* A zero gradient would make the check vacuous. */
            assert_true(sqrt(gnorm) > 1e-2);
            for (size_t j = 0; j < np; j++)
                p[j] = (float)(p0[j] + h * d[j]);
            double lp = s_objective(m, x, batch, r, y);
            for (size_t j = 0; j < np; j++)
                p[j] = (float)(p0[j] - h * d[j]);
            double lm = s_objective(m, x, batch, r, y);
            memcpy(p, p0, np * sizeof *p);
            double numeric = (lp - lm) / (2.0 * h);
            double ratio = s_compare(preset, "direction", 0, analytic, numeric, tol);
            print_message("%s seed %llu: grad.d %.7g, difference quotient %.7g, ratio %.2g\n",
                          preset, (unsigned long long)seed, analytic, numeric, ratio);
        }
        free(x);
        free(r);
        free(y);
        free(d);
        free(p0);
        gb_model_destroy(&m);
        if (found)
            return;
    }
    fail_msg("%s: no kink-free direction in 50 seeds at h = %g", preset, h);
}

static void test_directional_lenet(void **state)
{
    (void)state;
    s_directional("lenet", 1e-5, 1e-2, 1);
}

static void test_directional_mlp(void **state)
{
    (void)state;
    s_directional("mlp", 1e-4, 5e-3, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dense),
        cmocka_unit_test(test_conv2d_variants),
        cmocka_unit_test(test_maxpool2d),
        cmocka_unit_test(test_avgpool2d),
        cmocka_unit_test(test_flatten),
        cmocka_unit_test(test_relu),
        cmocka_unit_test(test_tanh),
        cmocka_unit_test(test_sigmoid),
        cmocka_unit_test(test_lstm),
        cmocka_unit_test(test_gru),
        cmocka_unit_test(test_embedding),
        cmocka_unit_test(test_dropout_train),
        cmocka_unit_test(test_dropout_mask),
        cmocka_unit_test(test_composite_relu_maxpool),
        cmocka_unit_test(test_composite_smooth),
        cmocka_unit_test(test_loss_softmax_ce),
        cmocka_unit_test(test_loss_mse),
        cmocka_unit_test(test_directional_lenet),
        cmocka_unit_test(test_directional_mlp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
