/* Tests for engine/optim: SGD (plain, momentum, weight decay, both) and
 * Adam (with and without weight decay) against the torch.optim update rules
 * computed here in double, step by step with changing gradients; the
 * configuration checks; reset; the step count; parse_kind; defaults; and
 * allocation-failure injection. Doubles as the usage example:
 *
 *     gb_optim_cfg_t cfg = gb_optim_defaults(GB_OPTIM_ADAM);
 *     gb_optim_t *opt = gb_optim_new(&cfg, n, &err);
 *     gb_optim_step(opt, params, grads);   // params -= update(grads)
 *     gb_optim_destroy(&opt);
 *
 * Tolerance: every parameter within 1e-6 * max(|expected|, 1) of the double
 * computation after each step (float rounding of O(1) values). */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/optim.h"
#include "util/alloc.h"

enum { N = 5, STEPS = 4 };

static const float s_p0[N] = {1.0f, -2.0f, 0.5f, 0.0f, 3.0f};
/* Gradients of each step (changing sign and size). */
static const float s_g[STEPS][N] = {
    {0.1f, 0.2f, -0.3f, 1.5f, -0.01f},
    {-0.2f, 0.25f, -0.1f, 1.0f, 0.02f},
    {0.05f, -0.4f, 0.3f, -2.0f, 0.0f},
    {0.3f, 0.1f, 0.2f, 0.5f, -0.03f},
};

/* torch.optim.SGD in double. */
static void s_sgd_ref(double lr, double mu, double wd, double p[N], double buf[N], int t,
                      const float g[N])
{
    for (int i = 0; i < N; i++) {
        double d = g[i] + wd * p[i];
        if (mu > 0.0) {
            buf[i] = t == 0 ? d : mu * buf[i] + d;
            d = buf[i];
        }
        p[i] -= lr * d;
    }
}

/* torch.optim.Adam in double (t counts from 1). */
static void s_adam_ref(double lr, double b1, double b2, double eps, double wd, double p[N],
                       double m[N], double v[N], int t, const float g[N])
{
    for (int i = 0; i < N; i++) {
        double d = g[i] + wd * p[i];
        m[i] = b1 * m[i] + (1 - b1) * d;
        v[i] = b2 * v[i] + (1 - b2) * d * d;
        double denom = sqrt(v[i]) / sqrt(1 - pow(b2, t)) + eps;
        p[i] -= lr / (1 - pow(b1, t)) * m[i] / denom;
    }
}

static void s_assert_params(const float *got, const double *want, const char *what, int step)
{
    for (int i = 0; i < N; i++)
        if (!(fabs(got[i] - want[i]) <= 1e-6 * fmax(fabs(want[i]), 1.0)))
            fail_msg("%s step %d: p[%d] = %.9g, want %.9g", what, step, i, got[i], want[i]);
}

/* Runs STEPS steps of cfg and of the reference side by side. */
static void s_run(const gb_optim_cfg_t *cfg, const char *what)
{
    gb_error_t err = {0};
    gb_optim_t *o = gb_optim_new(cfg, N, &err);
    if (!o)
        fail_msg("%s: %s", what, err.msg);
    float p[N];
    double rp[N], m[N] = {0}, v[N] = {0};
    memcpy(p, s_p0, sizeof p);
    for (int i = 0; i < N; i++)
        rp[i] = s_p0[i];
    assert_int_equal(gb_optim_steps(o), 0);
    for (int t = 0; t < STEPS; t++) {
        float g[N];
        memcpy(g, s_g[t], sizeof g);
        gb_optim_step(o, p, g);
        /* Gradients are read only. */
        assert_memory_equal(g, s_g[t], sizeof g);
        if (cfg->kind == GB_OPTIM_SGD)
            s_sgd_ref(cfg->lr, cfg->momentum, cfg->weight_decay, rp, m, t, s_g[t]);
        else
            s_adam_ref(cfg->lr, cfg->beta1, cfg->beta2, cfg->eps, cfg->weight_decay, rp, m, v,
                       t + 1, s_g[t]);
        s_assert_params(p, rp, what, t);
        assert_int_equal(gb_optim_steps(o), t + 1);
    }
    gb_optim_destroy(&o);
    assert_null(o);
}

static void test_defaults_and_parse(void **state)
{
    (void)state;
    gb_optim_cfg_t s = gb_optim_defaults(GB_OPTIM_SGD);
    assert_int_equal(s.kind, GB_OPTIM_SGD);
    assert_true(s.lr == 0.01f);
    assert_true(s.momentum == 0.0f);
    assert_true(s.weight_decay == 0.0f);
    gb_optim_cfg_t a = gb_optim_defaults(GB_OPTIM_ADAM);
    assert_int_equal(a.kind, GB_OPTIM_ADAM);
    assert_true(a.lr == 1e-3f);
    assert_true(a.beta1 == 0.9f);
    assert_true(a.beta2 == 0.999f);
    assert_true(a.eps == 1e-8f);
    assert_true(a.weight_decay == 0.0f);

    gb_optim_kind_t k = GB_OPTIM_ADAM;
    assert_int_equal(gb_optim_parse_kind("sgd", &k), 0);
    assert_int_equal(k, GB_OPTIM_SGD);
    assert_int_equal(gb_optim_parse_kind("adam", &k), 0);
    assert_int_equal(k, GB_OPTIM_ADAM);
    static const char *const bad[] = {"SGD", "Adam", "", "adamw", "sgd ", "rmsprop"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        k = GB_OPTIM_ADAM;
        assert_int_equal(gb_optim_parse_kind(bad[i], &k), GB_EINVAL);
        assert_int_equal(k, GB_OPTIM_ADAM); /* untouched */
    }
    assert_int_equal(gb_optim_parse_kind(NULL, &k), GB_EINVAL);
}

static void test_sgd_plain(void **state)
{
    (void)state;
    gb_optim_cfg_t c = gb_optim_defaults(GB_OPTIM_SGD);
    c.lr = 0.1f;
    /* One step by hand: p - lr g. */
    gb_error_t err = {0};
    gb_optim_t *o = gb_optim_new(&c, N, &err);
    assert_non_null(o);
    float p[N];
    memcpy(p, s_p0, sizeof p);
    gb_optim_step(o, p, s_g[0]);
    assert_true(fabs(p[0] - 0.99) <= 1e-7);   /* 1 - 0.1 * 0.1 */
    assert_true(fabs(p[1] - -2.02) <= 1e-7);  /* -2 - 0.1 * 0.2 */
    assert_true(fabs(p[2] - 0.53) <= 1e-7);   /* 0.5 + 0.1 * 0.3 */
    assert_true(fabs(p[3] - -0.15) <= 1e-7);  /* 0 - 0.1 * 1.5 */
    assert_true(fabs(p[4] - 3.001) <= 1e-6);  /* 3 + 0.1 * 0.01 */
    gb_optim_destroy(&o);
    s_run(&c, "sgd");
}

static void test_sgd_momentum(void **state)
{
    (void)state;
    gb_optim_cfg_t c = gb_optim_defaults(GB_OPTIM_SGD);
    c.lr = 0.1f;
    c.momentum = 0.9f;
    /* Two steps by hand for p[0]: buf = 0.1, p = 1 - 0.01 = 0.99; then
     * buf = 0.9 * 0.1 - 0.2 = -0.11, p = 0.99 + 0.011 = 1.001. */
    gb_error_t err = {0};
    gb_optim_t *o = gb_optim_new(&c, N, &err);
    assert_non_null(o);
    float p[N];
    memcpy(p, s_p0, sizeof p);
    gb_optim_step(o, p, s_g[0]);
    assert_true(fabs(p[0] - 0.99) <= 1e-7);
    gb_optim_step(o, p, s_g[1]);
    assert_true(fabs(p[0] - 1.001) <= 1e-7);
    gb_optim_destroy(&o);
    s_run(&c, "sgd momentum");
}

static void test_sgd_weight_decay(void **state)
{
    (void)state;
    gb_optim_cfg_t c = gb_optim_defaults(GB_OPTIM_SGD);
    c.lr = 0.1f;
    c.weight_decay = 0.01f;
    /* One step for p[4] = 3, g = -0.01: 3 - 0.1 * (-0.01 + 0.03) = 2.998. */
    gb_error_t err = {0};
    gb_optim_t *o = gb_optim_new(&c, N, &err);
    assert_non_null(o);
    float p[N];
    memcpy(p, s_p0, sizeof p);
    gb_optim_step(o, p, s_g[0]);
    assert_true(fabs(p[4] - 2.998) <= 1e-6);
    gb_optim_destroy(&o);
    s_run(&c, "sgd weight decay");
    c.momentum = 0.5f;
    s_run(&c, "sgd momentum + weight decay");
}

static void test_adam(void **state)
{
    (void)state;
    gb_optim_cfg_t c = gb_optim_defaults(GB_OPTIM_ADAM);
    c.lr = 0.01f;
    /* The first Adam step moves every parameter with |g| >> eps by lr,
     * against the gradient's sign: m/(1-b1) = g, sqrt(v/(1-b2)) = |g|. */
    gb_error_t err = {0};
    gb_optim_t *o = gb_optim_new(&c, N, &err);
    assert_non_null(o);
    float p[N];
    memcpy(p, s_p0, sizeof p);
    gb_optim_step(o, p, s_g[0]);
    for (int i = 0; i < N; i++) {
        double want = s_p0[i] - copysign(0.01, s_g[0][i]);
        assert_true(fabs(p[i] - want) <= 1e-6);
    }
    /* A zero gradient does not move (0 / (0 + eps)). */
    float q = 2.0f, zero = 0.0f;
    gb_optim_t *o1 = gb_optim_new(&c, 1, &err);
    assert_non_null(o1);
    gb_optim_step(o1, &q, &zero);
    assert_true(q == 2.0f);
    gb_optim_destroy(&o1);
    gb_optim_destroy(&o);

    s_run(&c, "adam");
    c.weight_decay = 0.1f;
    s_run(&c, "adam weight decay");
    c.weight_decay = 0.0f;
    c.beta1 = 0.0f;
    c.beta2 = 0.5f;
    c.eps = 1e-3f;
    s_run(&c, "adam beta1 0, beta2 0.5, eps 1e-3");
}

/* Reset: a reset optimiser steps exactly like a new one. */
static void test_reset_and_steps(void **state)
{
    (void)state;
    for (int kind = 0; kind < 3; kind++) {
        gb_optim_cfg_t c = gb_optim_defaults(kind == 2 ? GB_OPTIM_ADAM : GB_OPTIM_SGD);
        if (kind == 1)
            c.momentum = 0.9f;
        gb_error_t err = {0};
        gb_optim_t *a = gb_optim_new(&c, N, &err), *b = gb_optim_new(&c, N, &err);
        assert_true(a && b);
        float pa[N], pb[N];
        memcpy(pa, s_p0, sizeof pa);
        for (int t = 0; t < 3; t++)
            gb_optim_step(a, pa, s_g[t]);
        assert_int_equal(gb_optim_steps(a), 3);
        gb_optim_reset(a);
        assert_int_equal(gb_optim_steps(a), 0);
        memcpy(pa, s_p0, sizeof pa);
        memcpy(pb, s_p0, sizeof pb);
        for (int t = 1; t < STEPS; t++) {
            gb_optim_step(a, pa, s_g[t]);
            gb_optim_step(b, pb, s_g[t]);
            assert_memory_equal(pa, pb, sizeof pa);
        }
        assert_int_equal(gb_optim_steps(a), 3);
        gb_optim_destroy(&a);
        gb_optim_destroy(&b);
    }
    /* No parameters: steps are counted, nothing else happens. */
    gb_optim_cfg_t c = gb_optim_defaults(GB_OPTIM_ADAM);
    gb_error_t err = {0};
    gb_optim_t *o = gb_optim_new(&c, 0, &err);
    assert_non_null(o);
    gb_optim_step(o, NULL, NULL);
    assert_int_equal(gb_optim_steps(o), 1);
    gb_optim_reset(o);
    assert_int_equal(gb_optim_steps(o), 0);
    gb_optim_destroy(&o);
    gb_optim_destroy(&o);
    gb_optim_destroy(NULL);
}

static void test_config_errors(void **state)
{
    (void)state;
    static const struct {
        gb_optim_kind_t kind;
        const char *field;
        float value;
        const char *msg;
    } cases[] = {
        {GB_OPTIM_SGD, "lr", 0.0f, "learning rate must be positive and finite, got 0"},
        {GB_OPTIM_SGD, "lr", -0.1f, "learning rate must be positive"},
        {GB_OPTIM_ADAM, "lr", NAN, "learning rate must be positive"},
        {GB_OPTIM_SGD, "lr", INFINITY, "learning rate must be positive and finite, got inf"},
        {GB_OPTIM_SGD, "momentum", 1.0f, "momentum must be in [0, 1), got 1"},
        {GB_OPTIM_SGD, "momentum", -0.1f, "momentum must be in [0, 1)"},
        {GB_OPTIM_SGD, "momentum", NAN, "momentum must be in [0, 1)"},
        {GB_OPTIM_SGD, "weight_decay", -1e-4f, "weight decay must be >= 0"},
        {GB_OPTIM_ADAM, "weight_decay", NAN, "weight decay must be >= 0"},
        {GB_OPTIM_SGD, "weight_decay", INFINITY, "weight decay must be >= 0"},
        {GB_OPTIM_ADAM, "beta1", 1.0f, "Adam betas must be in [0, 1), got 1 and 0.999"},
        {GB_OPTIM_ADAM, "beta1", -0.5f, "Adam betas must be in [0, 1)"},
        {GB_OPTIM_ADAM, "beta2", 1.5f, "Adam betas must be in [0, 1), got 0.9 and 1.5"},
        {GB_OPTIM_ADAM, "beta2", NAN, "Adam betas must be in [0, 1)"},
        {GB_OPTIM_ADAM, "eps", 0.0f, "Adam eps must be positive, got 0"},
        {GB_OPTIM_ADAM, "eps", -1e-8f, "Adam eps must be positive"},
        {GB_OPTIM_ADAM, "eps", NAN, "Adam eps must be positive"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gb_optim_cfg_t c = gb_optim_defaults(cases[i].kind);
        if (strcmp(cases[i].field, "lr") == 0)
            c.lr = cases[i].value;
        else if (strcmp(cases[i].field, "momentum") == 0)
            c.momentum = cases[i].value;
        else if (strcmp(cases[i].field, "weight_decay") == 0)
            c.weight_decay = cases[i].value;
        else if (strcmp(cases[i].field, "beta1") == 0)
            c.beta1 = cases[i].value;
        else if (strcmp(cases[i].field, "beta2") == 0)
            c.beta2 = cases[i].value;
        else
            c.eps = cases[i].value;
        gb_error_t err = {0};
        assert_null(gb_optim_new(&c, N, &err));
        assert_int_equal(err.code, GB_EINVAL);
        if (!strstr(err.msg, cases[i].msg))
            fail_msg("case %zu (%s = %g): message '%s' lacks '%s'", i, cases[i].field,
                     (double)cases[i].value, err.msg, cases[i].msg);
        assert_null(gb_optim_new(&c, N, NULL));
    }
    /* An unknown kind. */
    gb_optim_cfg_t c = gb_optim_defaults(GB_OPTIM_SGD);
    c.kind = (gb_optim_kind_t)7;
    gb_error_t err = {0};
    assert_null(gb_optim_new(&c, N, &err));
    assert_int_equal(err.code, GB_EINVAL);
    assert_non_null(strstr(err.msg, "unknown optimiser kind 7"));
    /* Betas and eps matter to Adam only: SGD ignores them. */
    c = gb_optim_defaults(GB_OPTIM_SGD);
    c.beta1 = 2.0f;
    c.eps = -1.0f;
    gb_optim_t *o = gb_optim_new(&c, N, &err);
    assert_non_null(o);
    gb_optim_destroy(&o);
}

/* Each failing allocation gives NULL and GB_ENOMEM and leaks nothing. */
static void test_alloc_failure(void **state)
{
    (void)state;
    static const int expect[3] = {2, 3, 4}; /* allocations + 1: sgd, momentum, adam */
    for (int kind = 0; kind < 3; kind++) {
        gb_optim_cfg_t c = gb_optim_defaults(kind == 2 ? GB_OPTIM_ADAM : GB_OPTIM_SGD);
        if (kind == 1)
            c.momentum = 0.9f;
        long k;
        gb_optim_t *o = NULL;
        for (k = 1; k < 20; k++) {
            gb_error_t err = {0};
            gb_alloc_fail_after(k);
            o = gb_optim_new(&c, 1000, &err);
            gb_alloc_fail_after(0);
            if (o)
                break;
            assert_int_equal(err.code, GB_ENOMEM);
            assert_non_null(strstr(err.msg, "out of memory for optimiser state of 1000"));
        }
        assert_non_null(o);
        assert_int_equal(k, expect[kind]);
        gb_optim_destroy(&o);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_parse),
        cmocka_unit_test(test_sgd_plain),
        cmocka_unit_test(test_sgd_momentum),
        cmocka_unit_test(test_sgd_weight_decay),
        cmocka_unit_test(test_adam),
        cmocka_unit_test(test_reset_and_steps),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_alloc_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
