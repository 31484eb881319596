/* The recurrent layers against textbook versions, and their cell kernels.
 *
 * - lstm and gru (both output modes, 1 and 2 threads) against a per-sample,
 *   per-step, per-gate LSTM/GRU written here in double precision from the
 *   equations of PyTorch's documentation: 1e-5 relative to the largest
 *   output; for the LSTM also shapes that reach every partial block and row
 *   remainder of the fused AVX-512 kernels, on that path and (with
 *   gb_kernels_force) on the AVX2 and the portable sgemm ones;
 * - the best path against every lower one: outputs, input and
 *   parameter gradients of stacked models (1e-5 / 1e-4 relative), and the
 *   same bits from the same pass twice;
 * - the fused cell kernels (activations.h) rolled out over T = 4 steps from
 *   a NON-ZERO initial state (h0, c0), with the recurrent product written as
 *   plain loops: finite differences of L = sum r_t . h_t with respect to h0,
 *   c0 and every step's input pre-activation match the kernels' backward
 *   (h = 1e-3 in double around float values, tol 1e-3 relative). */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kernels.h"
#include "engine/layer.h"
#include "engine/activations.h"
#include "engine/model.h"
#include "util/rng.h"

static double s_sig(double x)
{
    return 1.0 / (1.0 + exp(-x));
}

static void s_fill(float *p, size_t n, float lo, float hi, uint64_t seed)
{
    gb_rng_t rng;
    gb_rng_seed(&rng, seed, 3);
    for (size_t i = 0; i < n; i++)
        p[i] = lo + (hi - lo) * (float)gb_rng_uniform(&rng);
}

/* Textbook LSTM (sequence output) of one sample: x (T x F) -> y (T x H). */
static void s_lstm_ref(const float *p, int T, int F, int H, const float *x, double *y)
{
    const float *Wih = p, *Whh = Wih + 4 * H * F, *bih = Whh + 4 * H * H, *bhh = bih + 4 * H;
    double *h = calloc((size_t)H, sizeof *h), *c = calloc((size_t)H, sizeof *c);
    double *g = malloc((size_t)4 * H * sizeof *g);
    assert_true(h && c && g);
    for (int t = 0; t < T; t++) {
        for (int k = 0; k < 4 * H; k++) {
            double s = (double)bih[k] + bhh[k];
            for (int f = 0; f < F; f++)
                s += (double)Wih[k * F + f] * x[t * F + f];
            for (int j = 0; j < H; j++)
                s += (double)Whh[k * H + j] * h[j];
            g[k] = s;
        }
        for (int j = 0; j < H; j++) {
            double i = s_sig(g[j]), f = s_sig(g[H + j]), gg = tanh(g[2 * H + j]);
            double o = s_sig(g[3 * H + j]);
            c[j] = f * c[j] + i * gg;
            h[j] = o * tanh(c[j]);
            y[t * H + j] = h[j];
        }
    }
    free(h);
    free(c);
    free(g);
}

/* Textbook GRU (sequence output) of one sample. */
static void s_gru_ref(const float *p, int T, int F, int H, const float *x, double *y)
{
    const float *Wih = p, *Whh = Wih + 3 * H * F, *bih = Whh + 3 * H * H, *bhh = bih + 3 * H;
    double *h = calloc((size_t)H, sizeof *h), *gx = malloc((size_t)3 * H * sizeof *gx);
    double *gh = malloc((size_t)3 * H * sizeof *gh);
    assert_true(h && gx && gh);
    for (int t = 0; t < T; t++) {
        for (int k = 0; k < 3 * H; k++) {
            double sx = bih[k], sh = bhh[k];
            for (int f = 0; f < F; f++)
                sx += (double)Wih[k * F + f] * x[t * F + f];
            for (int j = 0; j < H; j++)
                sh += (double)Whh[k * H + j] * h[j];
            gx[k] = sx;
            gh[k] = sh;
        }
        for (int j = 0; j < H; j++) {
            double r = s_sig(gx[j] + gh[j]), z = s_sig(gx[H + j] + gh[H + j]);
            double n = tanh(gx[2 * H + j] + r * gh[2 * H + j]);
            h[j] = (1.0 - z) * n + z * h[j];
            y[t * H + j] = h[j];
        }
    }
    free(h);
    free(gx);
    free(gh);
}

typedef void (*s_ref_fn)(const float *p, int T, int F, int H, const float *x, double *y);

static void s_against_textbook(const char *kind, s_ref_fn ref, int threads)
{
    const int B = 5, T = 6, F = 4, H = 7;
    char spec[2][64];
    snprintf(spec[0], sizeof spec[0], "input %d %d\n%s %d sequence\n", T, F, kind, H);
    snprintf(spec[1], sizeof spec[1], "input %d %d\n%s %d\n", T, F, kind, H);
    float x[5 * 6 * 4], y[5 * 6 * 7];
    double want[6 * 7];
    s_fill(x, sizeof x / sizeof x[0], -2.0f, 2.0f, 11);
    for (int last = 0; last < 2; last++) {
        gb_error_t err = {0};
        gb_model_t *m = gb_model_new(spec[last], &err);
        assert_non_null(m);
        gb_model_init(m, 5);
        assert_int_equal(gb_model_plan(m, B, threads, &err), 0);
        assert_int_equal(gb_model_forward(m, x, B, y, &err), 0);
        double worst = 0.0;
        for (int b = 0; b < B; b++) {
            ref(gb_model_params(m), T, F, H, x + b * T * F, want);
            for (int t = last ? T - 1 : 0; t < T; t++)
                for (int j = 0; j < H; j++) {
                    float got = last ? y[b * H + j] : y[(b * T + t) * H + j];
                    worst = fmax(worst, fabs(got - want[t * H + j]));
                }
        }
        if (!(worst <= 1e-5))
            fail_msg("%s threads %d: max |diff| %.3g against the textbook", spec[last], threads,
                     worst);
        gb_model_destroy(&m);
    }
}

static void test_lstm_against_textbook(void **state)
{
    (void)state;
    s_against_textbook("lstm", s_lstm_ref, 1);
    s_against_textbook("lstm", s_lstm_ref, 2);
}

/* The textbook comparison for shapes that reach every edge of the fused
 * LSTM kernels (several 16-unit blocks with a partial last one, row tiles of
 * 6 with every remainder 1..5, the 64-wide blocks of the backward products
 * with partial ones), on the fast path and on the portable one. */
static void s_lstm_shapes_against_textbook(void)
{
    static const struct {
        int B, T, F, H, seq, threads;
    } cases[] = {
        {13, 4, 5, 37, 1, 1}, {11, 3, 3, 70, 0, 2}, {5, 5, 2, 16, 1, 1}, {8, 3, 28, 128, 0, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int B = cases[i].B, T = cases[i].T, F = cases[i].F, H = cases[i].H;
        char spec[64];
        snprintf(spec, sizeof spec, "input %d %d\nlstm %d%s\n", T, F, H,
                 cases[i].seq ? " sequence" : "");
        float *x = malloc((size_t)B * T * F * sizeof *x);
        float *y = malloc((size_t)B * T * H * sizeof *y);
        double *want = malloc((size_t)T * H * sizeof *want);
        assert_true(x && y && want);
        s_fill(x, (size_t)B * T * F, -2.0f, 2.0f, 40 + i);
        gb_error_t err = {0};
        gb_model_t *m = gb_model_new(spec, &err);
        assert_non_null(m);
        gb_model_init(m, 6 + i);
        assert_int_equal(gb_model_plan(m, B, cases[i].threads, &err), 0);
        assert_int_equal(gb_model_forward(m, x, B, y, &err), 0);
        double worst = 0.0;
        for (int b = 0; b < B; b++) {
            s_lstm_ref(gb_model_params(m), T, F, H, x + (size_t)b * T * F, want);
            for (int t = cases[i].seq ? 0 : T - 1; t < T; t++)
                for (int j = 0; j < H; j++) {
                    size_t at = cases[i].seq ? ((size_t)b * T + t) * H + j : (size_t)b * H + j;
                    float got = y[at];
                    worst = fmax(worst, fabs(got - want[t * H + j]));
                }
        }
        if (!(worst <= 1e-5))
            fail_msg("%s B %d threads %d fast %d: max |diff| %.3g against the textbook", spec, B,
                     cases[i].threads, gb_lstm_fast(), worst);
        gb_model_destroy(&m);
        free(x);
        free(y);
        free(want);
    }
}

static void test_lstm_against_textbook_fast_and_portable(void **state)
{
    (void)state;
    if (!gb_lstm_fast())
        print_message("no AVX-512 here: only the portable LSTM path is tested\n");
    s_lstm_shapes_against_textbook();
    /* every lower path: AVX2's GEMMs, then OpenBLAS */
    for (int k = (int)gb_kernels_best() - 1; k >= GB_KERNELS_PORTABLE; k--) {
        gb_kernels_force((gb_kernels_t)k);
        assert_int_equal(gb_lstm_fast(), 0);
        s_lstm_shapes_against_textbook();
        s_against_textbook("lstm", s_lstm_ref, 1);
        s_against_textbook("lstm", s_lstm_ref, 2);
    }
    gb_kernels_force(gb_kernels_best());
}

/* Forward, input and parameter gradients of one model; returns them in
 * fresh buffers (y: B x out, dx: B x in, g: params). */
static void s_lstm_pass(gb_model_t *m, const float *x, const float *dy, int B, float *y,
                        float *dx, float *g)
{
    gb_error_t err = {0};
    size_t n = gb_model_param_count(m);
    memset(gb_model_grads(m), 0, n * sizeof(float));
    assert_int_equal(gb_model_forward(m, x, B, y, &err), 0);
    assert_int_equal(gb_model_backward(m, dy, B, dx, true, &err), 0);
    memcpy(g, gb_model_grads(m), n * sizeof(float));
}

static double s_max_rel(const float *a, const float *b, size_t n)
{
    double scale = 0.0, worst = 0.0;
    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(b[i]));
    for (size_t i = 0; i < n; i++)
        worst = fmax(worst, fabs((double)a[i] - b[i]));
    return worst / fmax(scale, 1e-30);
}

/* The fused AVX-512 path against the portable one (sgemm + cell kernels,
 * whose gradients test_gradcheck checks by finite differences on both):
 * outputs, input gradients and every parameter gradient of a stacked model
 * whose shapes reach the kernels' partial blocks and row remainders. */
static void test_lstm_fast_matches_portable(void **state)
{
    (void)state;
    if (!gb_lstm_fast()) {
        print_message("no AVX-512 here: nothing to compare\n");
        return;
    }
    /* K = F + H takes every remainder modulo the 6-wide tiles of the
     * weight-gradient product, and the batches (whole or split over two
     * threads) every remainder of the 6-row tiles. */
    static const struct {
        const char *spec;
        int B;
    } cases[] = {
        {"input 6 5\nlstm 37 sequence\nlstm 70\n", 13},
        {"input 4 28\nlstm 128\n", 16},
        {"input 3 1\nlstm 9 sequence\n", 17},
        {"input 3 2\nlstm 17 sequence\nlstm 17\n", 9},
        {"input 2 3\nlstm 17\n", 20},
        {"input 2 4\nlstm 17\n", 6},
    };
    for (size_t s = 0; s < sizeof cases / sizeof cases[0]; s++) {
        const int B = cases[s].B;
        for (int threads = 1; threads <= 2; threads++) {
            gb_error_t err = {0};
            gb_model_t *m = gb_model_new(cases[s].spec, &err);
            assert_non_null(m);
            gb_model_init(m, 17 + s);
            assert_int_equal(gb_model_plan(m, B, threads, &err), 0);
            gb_shape_t is = gb_model_input_shape(m), os = gb_model_output_shape(m);
            size_t nin = gb_shape_size(&is), nout = gb_shape_size(&os);
            size_t np = gb_model_param_count(m);
            float *x = malloc(B * nin * sizeof *x), *dy = malloc(B * nout * sizeof *dy);
            float *y[2], *dx[2], *g[2];
            for (int k = 0; k < 2; k++) {
                y[k] = malloc(B * nout * sizeof(float));
                dx[k] = malloc(B * nin * sizeof(float));
                g[k] = malloc(np * sizeof(float));
                assert_true(y[k] && dx[k] && g[k]);
            }
            assert_true(x && dy);
            s_fill(x, B * nin, -2.0f, 2.0f, 50 + s);
            s_fill(dy, B * nout, -1.0f, 1.0f, 60 + s);
            s_lstm_pass(m, x, dy, B, y[0], dx[0], g[0]);
            for (int k = GB_KERNELS_PORTABLE; k < (int)gb_kernels_best(); k++) {
                gb_kernels_force((gb_kernels_t)k);
                s_lstm_pass(m, x, dy, B, y[1], dx[1], g[1]);
                double ey = s_max_rel(y[0], y[1], B * nout);
                double ex = s_max_rel(dx[0], dx[1], B * nin), eg = s_max_rel(g[0], g[1], np);
                if (!(ey <= 1e-5 && ex <= 1e-4 && eg <= 1e-4))
                    fail_msg("%s threads %d: %s vs %s: y %.3g, dx %.3g, grads %.3g",
                             cases[s].spec, threads, gb_kernels_name(gb_kernels_best()),
                             gb_kernels_name((gb_kernels_t)k), ey, ex, eg);
            }
            gb_kernels_force(gb_kernels_best());
            /* The same pass twice gives the same bits. */
            s_lstm_pass(m, x, dy, B, y[1], dx[1], g[1]);
            assert_memory_equal(y[0], y[1], B * nout * sizeof(float));
            assert_memory_equal(g[0], g[1], np * sizeof(float));
            for (int k = 0; k < 2; k++) {
                free(y[k]);
                free(dx[k]);
                free(g[k]);
            }
            free(x);
            free(dy);
            gb_model_destroy(&m);
        }
    }
}

static void test_gru_against_textbook(void **state)
{
    (void)state;
    s_against_textbook("gru", s_gru_ref, 1);
    s_against_textbook("gru", s_gru_ref, 2);
}

/* ---- cell kernels from a non-zero initial state ------------------------- */

enum { CB = 2, CT = 4, CH = 3 };

typedef struct {
    float gx[CT][CB * 4 * CH]; /* input pre-activations per step (incl. biases) */
    float whh[4 * CH * CH];    /* recurrent weights (4H x H) */
    float bias[4 * CH];        /* added by the cell to every row */
    float h0[CB * CH], c0[CB * CH];
    float r[CT][CB * CH]; /* L = sum_t r_t . h_t */
} s_lstm_case_t;

/* Rolls the cell out; returns L. Keeps what backward needs when asked. */
static double s_lstm_roll(const s_lstm_case_t *k, float gates[CT][CB * 4 * CH],
                          float c[CT + 1][CB * CH], float h[CT + 1][CB * CH],
                          float tc[CT][CB * CH])
{
    memcpy(h[0], k->h0, sizeof k->h0);
    memcpy(c[0], k->c0, sizeof k->c0);
    double L = 0.0;
    for (int t = 0; t < CT; t++) {
        for (int b = 0; b < CB; b++)
            for (int q = 0; q < 4 * CH; q++) {
                float s = k->gx[t][b * 4 * CH + q];
                for (int j = 0; j < CH; j++)
                    s += h[t][b * CH + j] * k->whh[q * CH + j];
                gates[t][b * 4 * CH + q] = s;
            }
        gb_lstm_cell_forward(gates[t], k->bias, c[t], c[t + 1], h[t + 1], tc[t], CB, CH);
        for (int i = 0; i < CB * CH; i++)
            L += (double)k->r[t][i] * h[t + 1][i];
    }
    return L;
}

static double s_lstm_loss(const s_lstm_case_t *k)
{
    float gates[CT][CB * 4 * CH], c[CT + 1][CB * CH], h[CT + 1][CB * CH], tc[CT][CB * CH];
    return s_lstm_roll(k, gates, c, h, tc);
}

static void s_fd_check(s_lstm_case_t *k, float *v, double analytic, const char *what)
{
    const double step = 1e-3;
    float orig = *v, plus = (float)(orig + step), minus = (float)(orig - step);
    *v = plus;
    double lp = s_lstm_loss(k);
    *v = minus;
    double lm = s_lstm_loss(k);
    *v = orig;
    double numeric = (lp - lm) / ((double)plus - (double)minus);
    double scale = fmax(fmax(fabs(analytic), fabs(numeric)), 1.0);
    if (!(fabs(analytic - numeric) / scale <= 1e-3))
        fail_msg("lstm cell d/d%s: analytic %.8g numeric %.8g", what, analytic, numeric);
}

static void test_lstm_cells_nonzero_state(void **state)
{
    (void)state;
    s_lstm_case_t k;
    s_fill(&k.gx[0][0], sizeof k.gx / sizeof(float), -1.5f, 1.5f, 21);
    s_fill(k.whh, sizeof k.whh / sizeof(float), -0.6f, 0.6f, 22);
    s_fill(k.bias, 4 * CH, -0.5f, 0.5f, 26);
    s_fill(k.h0, CB * CH, -0.9f, 0.9f, 23);
    s_fill(k.c0, CB * CH, -1.5f, 1.5f, 24);
    s_fill(&k.r[0][0], sizeof k.r / sizeof(float), -1.0f, 1.0f, 25);
    float gates[CT][CB * 4 * CH], c[CT + 1][CB * CH], h[CT + 1][CB * CH], tc[CT][CB * CH];
    s_lstm_roll(&k, gates, c, h, tc);
    /* Backward through time with the kernels. */
    float dh[CB * CH] = {0}, dc[CB * CH] = {0}, dg[CT][CB * 4 * CH];
    for (int t = CT - 1; t >= 0; t--) {
        for (int i = 0; i < CB * CH; i++)
            dh[i] += k.r[t][i];
        gb_lstm_cell_backward(gates[t], c[t], tc[t], dh, dc, dg[t], CB, CH);
        for (int b = 0; b < CB; b++)
            for (int j = 0; j < CH; j++) {
                float s = 0.0f;
                for (int q = 0; q < 4 * CH; q++)
                    s += dg[t][b * 4 * CH + q] * k.whh[q * CH + j];
                dh[b * CH + j] = s;
            }
    }
    /* dh, dc now hold dL/dh0, dL/dc0. */
    for (int i = 0; i < CB * CH; i++) {
        s_fd_check(&k, &k.h0[i], dh[i], "h0");
        s_fd_check(&k, &k.c0[i], dc[i], "c0");
    }
    for (int t = 0; t < CT; t++)
        for (int q = 0; q < CB * 4 * CH; q++)
            s_fd_check(&k, &k.gx[t][q], dg[t][q], "gate pre-activation");
}

/* GRU cells: one step from a non-zero h_prev, checked against finite
 * differences of L = r . h with respect to h_prev (direct path plus the
 * recurrent projections, recomputed here) and the input projections. */
static double s_gru_step(const float *gx, const float *whh, const float *bhh, const float *hp,
                         const float *r)
{
    float gh[CB * 3 * CH], gates[CB * 3 * CH], hn[CB * CH], h[CB * CH];
    for (int b = 0; b < CB; b++)
        for (int q = 0; q < 3 * CH; q++) {
            float s = bhh[q];
            for (int j = 0; j < CH; j++)
                s += hp[b * CH + j] * whh[q * CH + j];
            gh[b * 3 * CH + q] = s;
        }
    gb_gru_cell_forward(gx, gh, hp, gates, hn, h, CB, CH);
    double L = 0.0;
    for (int i = 0; i < CB * CH; i++)
        L += (double)r[i] * h[i];
    return L;
}

static void test_gru_cells_nonzero_state(void **state)
{
    (void)state;
    float gx[CB * 3 * CH], whh[3 * CH * CH], bhh[3 * CH], hp[CB * CH], r[CB * CH];
    s_fill(gx, CB * 3 * CH, -1.5f, 1.5f, 31);
    s_fill(whh, 3 * CH * CH, -0.7f, 0.7f, 32);
    s_fill(bhh, 3 * CH, -0.5f, 0.5f, 33);
    s_fill(hp, CB * CH, -0.9f, 0.9f, 34);
    s_fill(r, CB * CH, -1.0f, 1.0f, 35);
    float gh[CB * 3 * CH], gates[CB * 3 * CH], hn[CB * CH], h[CB * CH];
    for (int b = 0; b < CB; b++)
        for (int q = 0; q < 3 * CH; q++) {
            float s = bhh[q];
            for (int j = 0; j < CH; j++)
                s += hp[b * CH + j] * whh[q * CH + j];
            gh[b * 3 * CH + q] = s;
        }
    gb_gru_cell_forward(gx, gh, hp, gates, hn, h, CB, CH);
    float dgx[CB * 3 * CH], dgh[CB * 3 * CH], dp[CB * CH];
    gb_gru_cell_backward(gates, hn, hp, r, dgx, dgh, dp, CB, CH);
    const double step = 1e-3;
    for (int i = 0; i < CB * CH; i++) {
        int b = i / CH, j = i % CH;
        double analytic = dp[i];
        for (int q = 0; q < 3 * CH; q++)
            analytic += (double)dgh[b * 3 * CH + q] * whh[q * CH + j];
        float orig = hp[i];
        hp[i] = (float)(orig + step);
        double lp = s_gru_step(gx, whh, bhh, hp, r);
        float plus = hp[i];
        hp[i] = (float)(orig - step);
        double lm = s_gru_step(gx, whh, bhh, hp, r);
        float minus = hp[i];
        hp[i] = orig;
        double numeric = (lp - lm) / ((double)plus - (double)minus);
        if (!(fabs(analytic - numeric) / fmax(fmax(fabs(analytic), fabs(numeric)), 1.0) <= 1e-3))
            fail_msg("gru cell d/dh_prev[%d]: analytic %.8g numeric %.8g", i, analytic, numeric);
    }
    for (int i = 0; i < CB * 3 * CH; i++) {
        float orig = gx[i];
        gx[i] = (float)(orig + step);
        double lp = s_gru_step(gx, whh, bhh, hp, r);
        float plus = gx[i];
        gx[i] = (float)(orig - step);
        double lm = s_gru_step(gx, whh, bhh, hp, r);
        float minus = gx[i];
        gx[i] = orig;
        double numeric = (lp - lm) / ((double)plus - (double)minus);
        if (!(fabs(dgx[i] - numeric) / fmax(fmax(fabs(dgx[i]), fabs(numeric)), 1.0) <= 1e-3))
            fail_msg("gru cell d/dgx[%d]: analytic %.8g numeric %.8g", i, dgx[i], numeric);
    }
}

static void test_specs(void **state)
{
    (void)state;
    gb_error_t err = {0};
    gb_model_t *m = gb_model_new("lstm", &err);
    assert_non_null(m);
    /* 4H(F + H) + 8H with F = 28, H = 128, then dense 128 -> 10. */
    assert_int_equal(gb_model_param_count(m), 4 * 128 * (28 + 128) + 8 * 128 + 128 * 10 + 10);
    gb_shape_t in = gb_model_input_shape(m);
    assert_int_equal(in.rank, 2);
    gb_model_destroy(&m);
    static const struct {
        const char *text;
        int code;
        const char *msg;
    } bad[] = {
        {"input 1 28 28\nlstm 8\n", GB_ESHAPE, "spec line 2: lstm needs a sequence input"},
        {"input 28\ngru 8\n", GB_ESHAPE, "spec line 2: gru needs a sequence input"},
        {"input 4 3\nlstm\n", GB_ESPEC, "spec line 2: lstm expects hidden [sequence]"},
        {"input 4 3\nlstm 8 seq\n", GB_ESPEC, "unexpected 'seq', expected 'sequence'"},
        {"input 4 3\ngru 0\n", GB_ESPEC, "spec line 2: gru: hidden must be an integer"},
        {"input 4\nembedding 10\n", GB_ESPEC, "embedding expects vocabulary dimension"},
        {"input 4 3\nembedding 10 4\n", GB_ESHAPE, "embedding needs 'input T'"},
        {"input 4 3\nlstm 4 sequence\nembedding 10 4\n", GB_ESPEC,
         "spec line 3: embedding must be the first layer"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gb_error_clear(&err);
        assert_null(gb_model_new(bad[i].text, &err));
        if (err.code != bad[i].code || !strstr(err.msg, bad[i].msg))
            fail_msg("'%s': got %d '%s'", bad[i].text, err.code, err.msg);
    }
}

/* The shared recurrent helpers (layer.h): the four parameter blocks tile the
 * layer's parameters exactly, in PyTorch's order, for both kinds; the input
 * gradient is dG . W_ih taken back to batch-major order. */
static void test_recurrent_helpers(void **state)
{
    (void)state;
    const int F = 3, H = 5, T = 4, B = 2;
    for (int gates = 3; gates <= 4; gates++) {
        gb_layer_t l;
        memset(&l, 0, sizeof l);
        l.in.rank = 2;
        l.in.dim[0] = T;
        l.in.dim[1] = F;
        l.cfg.units = H;
        l.param_off = 17;
        gb_recurrent_offsets_t o = gb_layer_recurrent_offsets(&l, gates);
        const size_t G = (size_t)gates * H;
        assert_int_equal(o.w_ih, 17);
        assert_int_equal(o.w_hh, 17 + G * F);
        assert_int_equal(o.b_ih, o.w_hh + G * H);
        assert_int_equal(o.b_hh, o.b_ih + G);
        /* the layer's parameter count as planned: W_ih, W_hh, b_ih, b_hh */
        assert_int_equal(o.b_hh + G - 17, G * (F + H + 2));
    }
    const int GH = 3 * H;
    float dG[T * B * 3 * H], w[3 * H * F], dX[T * B * F], dx[B * T * F];
    for (int i = 0; i < T * B * GH; i++)
        dG[i] = (float)((i * 7) % 11) - 5.0f;
    for (int i = 0; i < GH * F; i++)
        w[i] = (float)((i * 5) % 9) - 4.0f;
    gb_layer_recurrent_dx(dG, w, B, T, F, GH, dX, dx);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int f = 0; f < F; f++) {
                double want = 0.0; /* small integers: exact in float */
                for (int j = 0; j < GH; j++)
                    want += (double)dG[((size_t)t * B + b) * GH + j] * w[(size_t)j * F + f];
                assert_true(dx[((size_t)b * T + t) * F + f] == (float)want);
            }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lstm_against_textbook),
        cmocka_unit_test(test_lstm_against_textbook_fast_and_portable),
        cmocka_unit_test(test_lstm_fast_matches_portable),
        cmocka_unit_test(test_gru_against_textbook),
        cmocka_unit_test(test_lstm_cells_nonzero_state),
        cmocka_unit_test(test_gru_cells_nonzero_state),
        cmocka_unit_test(test_specs),
        cmocka_unit_test(test_recurrent_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
