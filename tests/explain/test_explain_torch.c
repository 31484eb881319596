/* Cross-check of the attributions against PyTorch 1.13 (torch.autograd), as
 * tests/engine/test_torch_crosscheck.c does for the engine.
 * tests/explain/torch_explain.py builds the presets `lenet` and `lstm` as
 * nn.Sequential models with PyTorch's seeded initialisation and records their
 * flat parameters, 6 inputs, a baseline, target classes and what PyTorch
 * computes for the target logits: integrated gradients (the 32-point
 * Gauss-Legendre rule, all path points in one batched backward), gradient x
 * input, and for lenet Grad-CAM on the last conv layer (signed, 8 x 8). ctest
 * runs the script first (the fixture explain_torch_fixtures, declared in
 * tests/explain/explain.cmake) into <build>/fixtures/explain_<preset>.bin;
 * the script's header describes the records.
 *
 * Here the same weights go into a Glassbox model planned for batches of 64
 * (IG's 6 x 33 rows then span 4 engine batches, crossing samples) on 1 and on
 * 2 threads, and gb_explain must reproduce every record:
 *     max over elements of |glassbox - torch| / max(|glassbox|, |torch|, floor)
 * with floor = 0.02 x the record's largest |torch value|, at most 1e-4 (the
 * script refuses fixtures whose float32 results are not within a quarter of
 * that of float64, so a failure is Glassbox's); IG's completeness errors
 * within 1e-4 absolute (IG runs without doubling: max_doublings 0, so both
 * sides use exactly 32 points); logits, a check that the weights loaded, 1e-5
 * with floor 0.25; Glassbox's Gauss-Legendre table equals numpy's leggauss
 * within 1e-7 (the fixture holds it in float32). The worst differences are
 * printed. */
#include "testutil.h"
#include "torch_fixture.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/model.h"
#include "explain/attribution.h"

#define BATCH 6
#define IN 784
#define CLASSES 10
#define STEPS 32
#define TOL 1e-4
#define FLOOR 0.02
#define TOL_COMPLETENESS 1e-4
#define TOL_LOGITS 1e-5
#define FLOOR_LOGITS 0.25

static const char s_how[] = "/usr/bin/python3 tests/explain/torch_explain.py <build>/fixtures";

/* The C test's measure (see the top); prints and returns it. */
static double s_compare(const char *what, const float *got, const float *want, size_t n,
                        double floor_fraction)
{
    double big = 0.0;
    for (size_t i = 0; i < n; i++)
        big = fmax(big, fabs(want[i]));
    double floor = floor_fraction * big, worst = 0.0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double scale = fmax(fmax(fabs(got[i]), fabs(want[i])), floor);
        double d = fabs((double)got[i] - want[i]) / scale;
        if (!(d <= worst)) {
            worst = isnan(d) ? INFINITY : d;
            at = i;
        }
    }
    printf("  %-28s worst %.2e at %zu (glassbox %.8g, torch %.8g)\n", what, worst, at,
           (double)got[at], (double)want[at]);
    return worst;
}

static void s_check(const char *preset, int threads)
{
    char rel[64], what[64];
    snprintf(rel, sizeof rel, "fixtures/explain_%s.bin", preset);
    gb_test_fixture_t *fx = gb_test_fixture_load(rel, s_how);
    gb_error_t err = {0};
    gb_model_t *m = gb_model_new(preset, &err);
    if (!m)
        fail_msg("gb_model_new(%s): %s", preset, err.msg);
    size_t np = gb_model_param_count(m);
    memcpy(gb_model_params(m), gb_test_fixture_get(fx, "params", np), np * sizeof(float));
    assert_int_equal(gb_model_plan(m, 64, threads, &err), 0);
    const float *x = gb_test_fixture_get(fx, "x", BATCH * IN);
    const float *base = gb_test_fixture_get(fx, "baseline", IN);
    const float *tf = gb_test_fixture_get(fx, "targets", BATCH);
    int32_t target[BATCH];
    for (int i = 0; i < BATCH; i++)
        target[i] = (int32_t)tf[i];
    printf("%s, %d thread(s):\n", preset, threads);

    float logits[BATCH * CLASSES];
    assert_int_equal(gb_model_forward(m, x, BATCH, logits, &err), 0);
    snprintf(what, sizeof what, "%s logits", preset);
    assert_true(s_compare(what, logits, gb_test_fixture_get(fx, "logits", BATCH * CLASSES),
                          BATCH * CLASSES, FLOOR_LOGITS) <= TOL_LOGITS);

    double alpha[STEPS], weight[STEPS];
    assert_int_equal(gb_ig_rule_points(GB_IG_GAUSS_LEGENDRE, STEPS, alpha, weight, &err), 0);
    const float *na = gb_test_fixture_get(fx, "gl_alpha", STEPS);
    const float *nw = gb_test_fixture_get(fx, "gl_weight", STEPS);
    for (int k = 0; k < STEPS; k++) {
        assert_true(fabs(alpha[k] - na[k]) <= 1e-7);
        assert_true(fabs(weight[k] - nw[k]) <= 1e-7);
    }

    float *attr = malloc(BATCH * IN * sizeof *attr);
    assert_non_null(attr);
    double comp[BATCH];
    int steps[BATCH];
    gb_explain_cfg_t cfg = gb_explain_defaults(GB_EXPLAIN_IG);
    cfg.baseline = base;
    cfg.max_doublings = 0;
    gb_explainer_t *e = gb_explainer_new(m, &cfg, &err);
    assert_non_null(e);
    assert_int_equal(gb_explain(e, x, target, BATCH, attr, comp, steps, &err), 0);
    gb_explainer_destroy(&e);
    snprintf(what, sizeof what, "%s ig", preset);
    assert_true(
        s_compare(what, attr, gb_test_fixture_get(fx, "ig", BATCH * IN), BATCH * IN, FLOOR) <= TOL);
    const float *tc = gb_test_fixture_get(fx, "ig_completeness", BATCH);
    for (int i = 0; i < BATCH; i++) {
        printf("  %s ig completeness %d: glassbox %.6g, torch %.6g\n", preset, i, comp[i],
               (double)tc[i]);
        assert_true(fabs(comp[i] - tc[i]) <= TOL_COMPLETENESS);
        assert_int_equal(steps[i], STEPS);
    }

    cfg = gb_explain_defaults(GB_EXPLAIN_GRADXINPUT);
    e = gb_explainer_new(m, &cfg, &err);
    assert_non_null(e);
    assert_int_equal(gb_explain(e, x, target, BATCH, attr, NULL, NULL, &err), 0);
    gb_explainer_destroy(&e);
    snprintf(what, sizeof what, "%s gradxinput", preset);
    assert_true(s_compare(what, attr, gb_test_fixture_get(fx, "gradxinput", BATCH * IN), BATCH * IN,
                          FLOOR) <= TOL);

    size_t n_cam = 0;
    const float *cam = gb_test_fixture_find(fx, "gradcam", &n_cam);
    if (cam) {
        assert_int_equal(n_cam, BATCH * 64);
        cfg = gb_explain_defaults(GB_EXPLAIN_GRADCAM);
        e = gb_explainer_new(m, &cfg, &err);
        assert_non_null(e);
        assert_int_equal(gb_explainer_cfg(e)->layer, 3);
        gb_shape_t s = gb_explainer_attr_shape(e);
        assert_int_equal(s.dim[0], 8);
        assert_int_equal(s.dim[1], 8);
        assert_int_equal(gb_explain(e, x, target, BATCH, attr, NULL, NULL, &err), 0);
        gb_explainer_destroy(&e);
        snprintf(what, sizeof what, "%s gradcam", preset);
        assert_true(s_compare(what, attr, cam, n_cam, FLOOR) <= TOL);
    } else {
        assert_string_equal(preset, "lstm");
    }
    free(attr);
    gb_model_destroy(&m);
    gb_test_fixture_destroy(&fx);
}

static void test_lenet(void **state)
{
    (void)state;
    s_check("lenet", 1);
    s_check("lenet", 2);
}

static void test_lstm(void **state)
{
    (void)state;
    s_check("lstm", 1);
    s_check("lstm", 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lenet),
        cmocka_unit_test(test_lstm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
