/* Cross-check of the engine against PyTorch 1.13 (llm.c's test_gpt2.c idea):
 * tests/fixtures/torch_reference.py builds the lenet and mlp presets as an
 * nn.Sequential, and records its initial parameters, one batch of 8 images,
 * and what PyTorch computes from them: logits, the mean cross-entropy, the
 * parameter gradients, and the parameters after 3 SGD steps (momentum 0.9,
 * weight decay 5e-4), 3 Adam steps (torch defaults) and 3 Adam steps with
 * L2 weight decay, each on the same batch. ctest runs the script first (the
 * fixture engine/torch_fixtures, declared in tests/engine/torch.cmake) into
 * <build>/fixtures/torch_<preset>.bin; the file format is described at the
 * top of the script and in tests/support/torch_fixture.h, whose reader this
 * test uses.
 *
 * Every case runs with 1 and with 2 worker threads, which must give the same
 * answers within the same tolerances. A comparison of a record is
 *     max over elements of |glassbox - torch| / max(|glassbox|, |torch|, floor)
 * with floor = F x (largest |torch value| in the record):
 *     logits           <= 1e-5,  F = 0.25
 *     loss, step losses <= 1e-5, scalars, plain relative difference
 *     gradients        <= 1e-4,  F = 0.02
 *     params after SGD  <= 1e-4, F = 0.01
 *     params after Adam <= 1e-4, F = 1 (norm-wise), except eps-sensitive
 *                       elements (effective gradient non-zero and below 1e-6
 *                       at some step), which must agree within 0.25 x lr
 * The floors exist because float32 sums carry absolute, not relative,
 * rounding: a logit of 1e-3 that is a sum of terms of 0.05 is only known to
 * about 1e-8. Adam is measured norm-wise because it moves every parameter by
 * about lr however small its gradient is, so gradient rounding of 1e-4
 * relative becomes a 1e-4 x lr difference in any parameter; float32 and
 * float64 PyTorch themselves differ by 2e-4 element-wise there. The script
 * refuses to write fixtures whose float32 results are not within a quarter of
 * these tolerances of float64, so a failure here is Glassbox's. */
#include "testutil.h"
#include "torch_fixture.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/model.h"
#include "engine/optim.h"

#define BATCH 8
#define CLASSES 10
#define STEPS 3

#define TOL_LOGITS 1e-5
#define FLOOR_LOGITS 0.25
#define TOL_LOSS 1e-5
#define TOL_GRADS 1e-4
#define FLOOR_GRADS 0.02
#define TOL_PARAMS 1e-4
#define FLOOR_SGD 0.01
#define FLOOR_ADAM 1.0
#define SENSITIVE_GRAD 1e-6f
#define SENSITIVE_LR_FRACTION 0.25
#define SENSITIVE_MAX_SHARE 0.02 /* more than 2% eps-sensitive elements is a bug */

typedef struct {
    const char *preset; /* gb_model_new argument and fixture name */
    int threads;        /* gb_model_plan worker count */
} s_case_t;

static gb_test_fixture_t *s_fixtures[2]; /* lenet, mlp; loaded on first use */

/* The fixture <build>/fixtures/torch_<preset>.bin, read once; a missing or
 * defective file fails the test. */
static const gb_test_fixture_t *s_fixture(const char *preset)
{
    int i = strcmp(preset, "lenet") == 0 ? 0 : 1;
    if (!s_fixtures[i]) {
        char rel[128];
        snprintf(rel, sizeof rel, "fixtures/torch_%s.bin", preset);
        s_fixtures[i] = gb_test_fixture_load(
            rel, "ctest makes it with the engine/torch_fixtures test "
                 "(/usr/bin/python3 tests/fixtures/torch_reference.py <build>/fixtures)");
    }
    return s_fixtures[i];
}

static int s_teardown_all(void **state)
{
    (void)state;
    gb_test_fixture_destroy(&s_fixtures[0]);
    gb_test_fixture_destroy(&s_fixtures[1]);
    return 0;
}

/* A model of the case's preset, planned for BATCH and the case's threads,
 * holding the fixture's initial parameters. */
static gb_model_t *s_model(const s_case_t *c, const gb_test_fixture_t *fx)
{
    gb_error_t err = {0};
    gb_model_t *m = gb_model_new(c->preset, &err);
    if (!m)
        fail_msg("gb_model_new(%s): %s", c->preset, err.msg);
    size_t n = gb_model_param_count(m);
    const float *p0 = gb_test_fixture_get(fx, "params", n);
    const float *shape = gb_test_fixture_get(fx, "input_shape", 4);
    assert_int_equal((int)shape[0], BATCH);
    gb_shape_t in = gb_model_input_shape(m), out = gb_model_output_shape(m);
    assert_int_equal(gb_shape_size(&in), (size_t)(shape[1] * shape[2] * shape[3]));
    assert_int_equal(gb_shape_size(&out), CLASSES);
    if (gb_model_plan(m, BATCH, c->threads, &err) != 0)
        fail_msg("gb_model_plan(%s, %d, %d): %s", c->preset, BATCH, c->threads, err.msg);
    assert_int_equal(gb_model_threads(m), c->threads);
    memcpy(gb_model_params(m), p0, n * sizeof(float));
    return m;
}

static void s_labels(const gb_test_fixture_t *fx, int32_t *labels)
{
    const float *y = gb_test_fixture_get(fx, "labels", BATCH);
    for (int i = 0; i < BATCH; i++) {
        assert_true(y[i] >= 0 && y[i] < CLASSES && y[i] == floorf(y[i]));
        labels[i] = (int32_t)y[i];
    }
}

static double s_max_abs(const float *v, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)v[i]));
    return m;
}

/* Names the layer that holds flat parameter index i, for failure messages. */
static void s_where(gb_model_t *m, size_t i, char *buf, size_t cap)
{
    snprintf(buf, cap, "?");
    if (!m)
        return;
    for (int l = 0; l < gb_model_layer_count(m); l++) {
        gb_layer_kind_t kind;
        size_t off, len;
        if (gb_model_layer_info(m, l, &kind, &off, &len) == 0 && i >= off && i < off + len) {
            snprintf(buf, cap, "layer %d (%s) +%zu", l, gb_layer_kind_name(kind), i - off);
            return;
        }
    }
}

/* Compares got against torch's want as the file comment says; m (may be
 * NULL) names the layer of the worst element on failure. Elements with
 * skip[i] set (skip may be NULL) are left out. */
static double s_compare(const s_case_t *c, const char *what, gb_model_t *m, const float *got,
                        const float *want, size_t n, const unsigned char *skip, double tol,
                        double floor_frac)
{
    double floor = floor_frac * s_max_abs(want, n);
    double worst = 0.0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        if (skip && skip[i])
            continue;
        double d = gb_test_max_rel_diff(&got[i], &want[i], 1, floor);
        if (!(d <= worst)) {
            worst = isnan(d) ? INFINITY : d;
            at = i;
        }
    }
    print_message("%s/%d thread(s): %-18s max rel diff %.2e (tol %.0e, floor %.2e)\n", c->preset,
                  c->threads, what, worst, tol, floor);
    if (!(worst <= tol)) {
        char where[96];
        s_where(m, at, where, sizeof where);
        fail_msg("%s/%d thread(s): %s differ from PyTorch by %.3e > %.0e at element %zu "
                 "[%s]: glassbox %.9g, torch %.9g",
                 c->preset, c->threads, what, worst, tol, at, where, (double)got[at],
                 (double)want[at]);
    }
    return worst;
}

static void s_compare_loss(const s_case_t *c, const char *what, double got, float want)
{
    double d = fabs(got - want) / fmax(fabs(got), fabs((double)want));
    if (!(d <= TOL_LOSS))
        fail_msg("%s/%d thread(s): %s %.9g, torch %.9g (rel diff %.3e > %.0e)", c->preset,
                 c->threads, what, got, (double)want, d, TOL_LOSS);
}

static void test_forward(void **state)
{
    const s_case_t *c = *state;
    const gb_test_fixture_t *fx = s_fixture(c->preset);
    gb_model_t *m = s_model(c, fx);
    gb_error_t err = {0};
    const float *x = gb_test_fixture_get(fx, "x", (size_t)BATCH * 784);
    float logits[BATCH * CLASSES];
    if (gb_model_forward(m, x, BATCH, logits, &err) != 0)
        fail_msg("gb_model_forward: %s", err.msg);
    s_compare(c, "logits", NULL, logits, gb_test_fixture_get(fx, "logits", BATCH * CLASSES),
              BATCH * CLASSES, NULL, TOL_LOGITS, FLOOR_LOGITS);
    gb_model_destroy(&m);
    assert_null(m);
}

static void test_gradients(void **state)
{
    const s_case_t *c = *state;
    const gb_test_fixture_t *fx = s_fixture(c->preset);
    gb_model_t *m = s_model(c, fx);
    size_t n = gb_model_param_count(m);
    gb_error_t err = {0};
    int32_t labels[BATCH];
    s_labels(fx, labels);
    gb_target_t target = {.kind = GB_LOSS_SOFTMAX_CE, .labels = labels, .values = NULL};
    float logits[BATCH * CLASSES];
    double loss = NAN;
    /* Garbage in the gradient buffer first: train_step must zero it. */
    float *g = gb_model_grads(m);
    for (size_t i = 0; i < n; i++)
        g[i] = 1.0f;
    if (gb_model_train_step(m, gb_test_fixture_get(fx, "x", (size_t)BATCH * 784), &target, BATCH,
                            &loss, logits, &err) != 0)
        fail_msg("gb_model_train_step: %s", err.msg);
    s_compare_loss(c, "loss", loss, gb_test_fixture_get(fx, "loss", 1)[0]);
    s_compare(c, "train_step logits", NULL, logits,
              gb_test_fixture_get(fx, "logits", BATCH * CLASSES), BATCH * CLASSES, NULL, TOL_LOGITS,
              FLOOR_LOGITS);
    s_compare(c, "gradients", m, gb_model_grads(m), gb_test_fixture_get(fx, "grads", n), n, NULL,
              TOL_GRADS, FLOOR_GRADS);
    /* The parameters are untouched by a step without an optimiser. */
    assert_memory_equal(gb_model_params(m), gb_test_fixture_get(fx, "params", n),
                        n * sizeof(float));
    gb_model_destroy(&m);
}

/* Three optimiser steps on the same batch, as torch_reference.py takes them. */
static void s_optim_run(const s_case_t *c, const char *name)
{
    const gb_test_fixture_t *fx = s_fixture(c->preset);
    gb_model_t *m = s_model(c, fx);
    size_t n = gb_model_param_count(m);
    gb_error_t err = {0};
    char key[64];
    bool adam = strcmp(name, "sgd") != 0;

    gb_optim_cfg_t cfg = gb_optim_defaults(adam ? GB_OPTIM_ADAM : GB_OPTIM_SGD);
    snprintf(key, sizeof key, "%s_cfg", name);
    if (adam) {
        const float *a = gb_test_fixture_get(fx, key, 5);
        /* Glassbox's Adam defaults are PyTorch's. */
        assert_true(cfg.kind == GB_OPTIM_ADAM);
        assert_true(cfg.lr == a[0] && cfg.beta1 == a[1] && cfg.beta2 == a[2] && cfg.eps == a[3]);
        cfg.weight_decay = a[4];
    } else {
        const float *s = gb_test_fixture_get(fx, key, 3);
        assert_true(cfg.kind == GB_OPTIM_SGD);
        cfg.lr = s[0];
        cfg.momentum = s[1];
        cfg.weight_decay = s[2];
    }
    gb_optim_t *opt = gb_optim_new(&cfg, n, &err);
    if (!opt)
        fail_msg("gb_optim_new(%s): %s", name, err.msg);

    int32_t labels[BATCH];
    s_labels(fx, labels);
    gb_target_t target = {.kind = GB_LOSS_SOFTMAX_CE, .labels = labels, .values = NULL};
    const float *x = gb_test_fixture_get(fx, "x", (size_t)BATCH * 784);
    snprintf(key, sizeof key, "%s_losses", name);
    const float *losses = gb_test_fixture_get(fx, key, STEPS);
    unsigned char *sensitive = calloc(n, 1);
    assert_non_null(sensitive);
    float *params = gb_model_params(m);
    const float *grads = gb_model_grads(m);
    for (int s = 0; s < STEPS; s++) {
        double loss = NAN;
        if (gb_model_train_step(m, x, &target, BATCH, &loss, NULL, &err) != 0)
            fail_msg("%s step %d: gb_model_train_step: %s", name, s + 1, err.msg);
        char what[64];
        snprintf(what, sizeof what, "%s loss before step %d", name, s + 1);
        s_compare_loss(c, what, loss, losses[s]);
        for (size_t i = 0; adam && i < n; i++) {
            float geff = grads[i] + cfg.weight_decay * params[i];
            if (geff != 0.0f && fabsf(geff) < SENSITIVE_GRAD)
                sensitive[i] = 1;
        }
        gb_optim_step(opt, params, grads);
    }
    assert_int_equal(gb_optim_steps(opt), STEPS);

    snprintf(key, sizeof key, "%s_params", name);
    const float *want = gb_test_fixture_get(fx, key, n);
    char what[64];
    snprintf(what, sizeof what, "%s params", name);
    if (!adam) {
        s_compare(c, what, m, params, want, n, NULL, TOL_PARAMS, FLOOR_SGD);
    } else {
        s_compare(c, what, m, params, want, n, sensitive, TOL_PARAMS, FLOOR_ADAM);
        size_t count = 0;
        double worst = 0.0;
        for (size_t i = 0; i < n; i++) {
            if (!sensitive[i])
                continue;
            count++;
            worst = fmax(worst, fabs((double)params[i] - want[i]) / cfg.lr);
        }
        print_message("%s/%d thread(s): %s: %zu eps-sensitive elements, worst %.3f x lr\n",
                      c->preset, c->threads, what, count, worst);
        assert_true(count <= SENSITIVE_MAX_SHARE * (double)n);
        if (!(worst <= SENSITIVE_LR_FRACTION))
            fail_msg("%s/%d thread(s): eps-sensitive %s differ by %.3f x lr > %.2f", c->preset,
                     c->threads, what, worst, SENSITIVE_LR_FRACTION);
    }
    free(sensitive);
    gb_optim_destroy(&opt);
    assert_null(opt);
    gb_model_destroy(&m);
}

static void test_sgd(void **state)
{
    s_optim_run(*state, "sgd");
}

static void test_adam(void **state)
{
    s_optim_run(*state, "adam");
}

static void test_adam_weight_decay(void **state)
{
    s_optim_run(*state, "adam_wd");
}

static s_case_t s_lenet1 = {"lenet", 1}, s_lenet2 = {"lenet", 2};
static s_case_t s_mlp1 = {"mlp", 1}, s_mlp2 = {"mlp", 2};

#define s_cases(fn)                                                                                \
    cmocka_unit_test_prestate(fn, &s_lenet1), cmocka_unit_test_prestate(fn, &s_lenet2),            \
        cmocka_unit_test_prestate(fn, &s_mlp1), cmocka_unit_test_prestate(fn, &s_mlp2)

int main(void)
{
    const struct CMUnitTest tests[] = {
        s_cases(test_forward), s_cases(test_gradients),         s_cases(test_sgd),
        s_cases(test_adam),    s_cases(test_adam_weight_decay),
    };
    return cmocka_run_group_tests(tests, NULL, s_teardown_all);
}
